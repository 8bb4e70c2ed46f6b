//! From Yeelight's properties and methods to the model and back, as pure functions.
//!
//! | Yeelight | feature | conversion |
//! |---|---|---|
//! | `power` `on`/`off`, `set_power` | `state` (on_off) | `on` is `true` |
//! | `bright` 1–100, `set_bright` | `brightness` 1–100 % | as it is |
//! | `ct` in K, `set_ct_abx` | `color_temperature`, the model's range (1700–6500 K, ceilings 2700–6500 K) | as it is, rounded and kept in the range |
//! | `rgb` (0xRRGGBB) or `hue` 0–359 + `sat` 0–100, `set_hsv` (else `set_rgb`) | `color` (hue, saturation) | the value of the bulb's `color_mode`: `rgb` in mode 1 (and 2), `hue`/`sat` in mode 3 |
//! | `color_mode` 1, 2, 3 | `color_mode` enum `color`, `color_temperature` | 1 (RGB) and 3 (HSV) are `color` |
//! | `name`, `set_name` | the device's name | |
//!
//! Which features a bulb has comes from the methods its discovery answer lists in `support`
//! (`set_bright`, `set_ct_abx`, `set_rgb`, `set_hsv`) and its `model` (the color temperature
//! range). Every feature can be refreshed (`get_prop`).
//!
//! Commands become one method each ([`Write`]), with the transition as the effect: none given is
//! `"smooth"` over 300 ms, 0 is `"sudden"`, else `"smooth"` over the transition in ms (at least the
//! 30 ms the bulb takes). A bulb takes brightness, color temperature and color only while on:
//! a command that sets one of them without `state` for a bulb that is off (or being turned off)
//! turns it on first, as setting a light's brightness does elsewhere; `state: false` is sent after
//! the other values.

use std::collections::BTreeMap;

use hearth_sdk::{
    Access, Capability, Color, CommandRequest, Context, DeviceDescriptor, DeviceId, Feature, Refresh, Value, ValueType,
};
use serde_json::{Value as Json, json};

/// The adapter id, also the prefix of its device ids.
pub const ADAPTER: &str = "yeelight";
/// The manufacturer every device gets.
pub const MANUFACTURER: &str = "Yeelight";
/// The properties a session reads (`get_prop`) and follows (`props`).
pub const PROPS: [&str; 8] = ["power", "bright", "ct", "rgb", "hue", "sat", "color_mode", "name"];
/// The transition when a command gives none, in ms.
pub const DEFAULT_TRANSITION_MS: u64 = 300;
/// The shortest smooth transition a bulb takes, in ms.
pub const MIN_TRANSITION_MS: u64 = 30;
/// The color temperature range of the specification, for models not known to differ.
pub const CT_RANGE: (u16, u16) = (1700, 6500);

/// What a bulb can do, from its model and the methods it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Its model (`color`, `ceiling3`, `mono`).
    pub model: String,
    /// `set_bright`.
    pub brightness: bool,
    /// `set_ct_abx`, with the model's range in K.
    pub ct: Option<(u16, u16)>,
    /// `set_rgb`.
    pub rgb: bool,
    /// `set_hsv`.
    pub hsv: bool,
}

impl Caps {
    /// The abilities of a bulb of `model` whose `support` lists these methods (space-separated).
    /// A bulb that lists none (no `support` known) is taken as a white bulb: on/off and
    /// brightness.
    pub fn new(model: &str, support: Option<&str>) -> Caps {
        let Some(support) = support.filter(|s| !s.trim().is_empty()) else {
            return Caps { model: model.to_owned(), brightness: true, ct: None, rgb: false, hsv: false };
        };
        let has = |m: &str| support.split_whitespace().any(|s| s == m);
        Caps {
            model: model.to_owned(),
            brightness: has("set_bright"),
            ct: has("set_ct_abx").then(|| ct_range(model)),
            rgb: has("set_rgb"),
            hsv: has("set_hsv"),
        }
    }

    /// Whether it takes a color.
    pub fn color(&self) -> bool {
        self.rgb || self.hsv
    }
}

/// The color temperature range of `model`, in K: the ceiling lights (`ceiling1`…, `ceila`),
/// `ct_bulb`, `color2`, `lamp` and `strip6` models go from 2700 K (`ceiling5` to 5700 K); every
/// other model, the specification's 1700–6500 K.
pub fn ct_range(model: &str) -> (u16, u16) {
    let m = model.to_ascii_lowercase();
    if m == "ceiling5" {
        (2700, 5700)
    } else if m.starts_with("ceil")
        || m.starts_with("ct_bulb")
        || m == "color2"
        || m.starts_with("lamp")
        || m == "strip6"
    {
        (2700, 6500)
    } else {
        CT_RANGE
    }
}

/// The name a bulb gets when it has none of its own: `Yeelight color 15243f`.
pub fn default_name(model: Option<&str>, key: &str) -> String {
    let tail = &key[key.len().saturating_sub(6)..];
    match model.filter(|m| !m.is_empty()) {
        Some(m) => format!("Yeelight {m} {tail}"),
        None => format!("Yeelight {tail}"),
    }
}

/// The features of a bulb that can do `caps`.
pub fn features(caps: &Caps) -> Vec<Feature> {
    let mut f = vec![Feature::new("state", Capability::OnOff, ValueType::Bool, Access::ALL)];
    if caps.brightness {
        f.push(Feature::new("brightness", Capability::Brightness, ValueType::range(1.0, 100.0, 1.0), Access::ALL));
    }
    if let Some((min, max)) = caps.ct {
        f.push(Feature::new(
            "color_temperature",
            Capability::ColorTemperature,
            ValueType::range(f64::from(min), f64::from(max), 1.0),
            Access::ALL,
        ));
    }
    if caps.color() {
        f.push(Feature::new("color", Capability::Color, ValueType::Color, Access::ALL));
    }
    if caps.color() && caps.ct.is_some() {
        f.push(
            Feature::new(
                "color_mode",
                Capability::Other,
                ValueType::enumeration(["color", "color_temperature"]),
                Access { observe: true, set: false, get: true },
            )
            .label("Color mode"),
        );
    }
    f
}

/// The description of bulb `device` named `name`.
pub fn descriptor(device: &DeviceId, name: &str, caps: &Caps, firmware: Option<&str>) -> DeviceDescriptor {
    let mut d = DeviceDescriptor::new(device.clone(), name, features(caps));
    d.manufacturer = Some(MANUFACTURER.to_owned());
    d.model = Some(caps.model.clone()).filter(|m| !m.is_empty());
    d.firmware = firmware.filter(|f| !f.is_empty()).map(str::to_owned);
    d.power_source = hearth_sdk::PowerSource::Mains;
    d
}

/// What a session remembers of the color properties, to make one color of `hue` and `sat`
/// reported apart, and to know which of `rgb` or `hue`/`sat` the bulb shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColorMemory {
    hue: Option<u16>,
    sat: Option<u8>,
    mode: Option<u8>,
}

impl ColorMemory {
    /// The model values of the properties in `props` (as text, as the bulb sent them), for the
    /// features `caps` gives; values that cannot be read or that no feature takes are left out.
    pub fn values(&mut self, caps: &Caps, props: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let num = |k: &str| get(k).and_then(|v| v.parse::<f64>().ok()).filter(|n| n.is_finite());
        let mut out = BTreeMap::new();
        match get("power") {
            Some("on") => {
                out.insert("state".to_owned(), Value::Bool(true));
            }
            Some("off") => {
                out.insert("state".to_owned(), Value::Bool(false));
            }
            _ => {}
        }
        if caps.brightness
            && let Some(b) = num("bright").filter(|b| (1.0..=100.0).contains(b))
        {
            out.insert("brightness".to_owned(), Value::Number(b.round()));
        }
        if caps.ct.is_some()
            && let Some(k) = num("ct").filter(|k| *k > 0.0)
        {
            out.insert("color_temperature".to_owned(), Value::Number(k.round()));
        }
        let mode = num("color_mode").filter(|m| (1.0..=3.0).contains(m)).map(|m| m as u8);
        if mode.is_some() {
            self.mode = mode;
        }
        if caps.color()
            && caps.ct.is_some()
            && let Some(m) = mode
        {
            let name = if m == 2 { "color_temperature" } else { "color" };
            out.insert("color_mode".to_owned(), Value::Text(name.to_owned()));
        }
        let hue = num("hue").filter(|h| (0.0..=360.0).contains(h)).map(|h| h as u16);
        let sat = num("sat").filter(|s| (0.0..=100.0).contains(s)).map(|s| s as u8);
        if hue.is_some() {
            self.hue = hue;
        }
        if sat.is_some() {
            self.sat = sat;
        }
        if caps.color() {
            let rgb = num("rgb").filter(|v| (0.0..=16_777_215.0).contains(v)).map(|v| v as u32);
            let hsv = || match (self.hue, self.sat) {
                (Some(h), Some(s)) => Some(Color { hue: f64::from(h), saturation: f64::from(s) }),
                _ => None,
            };
            let color = if self.mode == Some(3) && (hue.is_some() || sat.is_some()) {
                hsv()
            } else if let Some(v) = rgb.filter(|_| self.mode != Some(3)) {
                Some(Color::from_rgb((v >> 16) as u8, (v >> 8) as u8, v as u8))
            } else if rgb.is_none() && (hue.is_some() || sat.is_some()) {
                hsv()
            } else {
                None
            };
            if let Some(c) = color {
                out.insert("color".to_owned(), Value::Color(c));
            }
        }
        out
    }
}

/// Which of the bulb's settings a write changes: writes to the same slot replace each other
/// while they wait for the bulb (the latest wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// On or off.
    Power,
    /// The color temperature.
    Ct,
    /// The color.
    Color,
    /// The brightness.
    Bright,
}

/// One method call that sets something, waiting for the budget or sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// What it sets.
    pub slot: Slot,
    /// The method (`set_bright`).
    pub method: &'static str,
    /// Its parameters, effect and duration included.
    pub params: Vec<Json>,
    /// The property values that show it was carried out (`bright` = `40`).
    pub expect: Vec<(&'static str, String)>,
    /// The command it comes from.
    pub context: Context,
}

impl Write {
    /// Whether it turns the bulb on (or off, for `false`).
    pub fn power(&self) -> Option<bool> {
        (self.slot == Slot::Power).then(|| self.params.first().and_then(Json::as_str) == Some("on"))
    }

    /// Whether the properties of a notification or an answer show it was carried out: at least
    /// one of its properties is there, and each that is there has the value asked for.
    pub fn shown_by(&self, props: &BTreeMap<String, String>) -> bool {
        let mut any = false;
        for (k, v) in &self.expect {
            if let Some(now) = props.get(*k) {
                if now.trim() != v {
                    return false;
                }
                any = true;
            }
        }
        any
    }
}

/// The effect and duration parameters of a transition of `secs` seconds.
pub fn effect(secs: Option<f64>) -> [Json; 2] {
    match secs {
        None => [json!("smooth"), json!(DEFAULT_TRANSITION_MS)],
        Some(s) if !s.is_finite() || s <= 0.0 => [json!("sudden"), json!(MIN_TRANSITION_MS)],
        Some(s) => [json!("smooth"), json!(((s * 1000.0).round() as u64).max(MIN_TRANSITION_MS))],
    }
}

/// What a command asks of a bulb that can do `caps`: the writes in the order the bulb should
/// get them, and the properties a refresh reads. `power` is whether the bulb is (or will be) on,
/// when known. Values of features the bulb does not have are left out (the hub checked them).
pub fn plan(
    request: &CommandRequest,
    caps: &Caps,
    power: Option<bool>,
    context: &Context,
) -> (Vec<Write>, Vec<&'static str>) {
    let [fx, ms] = effect(request.transition);
    let write = |slot, method, mut params: Vec<Json>, expect: Vec<(&'static str, String)>| {
        params.push(fx.clone());
        params.push(ms.clone());
        Write { slot, method, params, expect, context: context.clone() }
    };
    let mut writes = Vec::new();
    let mut turn = None;
    for (key, value) in &request.set {
        match (key.as_str(), value) {
            ("state", Value::Bool(on)) => turn = Some(*on),
            ("brightness", Value::Number(n)) if caps.brightness => {
                let b = n.round().clamp(1.0, 100.0) as u8;
                writes.push(write(Slot::Bright, "set_bright", vec![json!(b)], vec![("bright", b.to_string())]));
            }
            ("color_temperature", Value::Number(n)) if caps.ct.is_some() => {
                let (min, max) = caps.ct.unwrap_or(CT_RANGE);
                let k = n.round().clamp(f64::from(min), f64::from(max)) as u16;
                writes.push(write(Slot::Ct, "set_ct_abx", vec![json!(k)], vec![("ct", k.to_string())]));
            }
            ("color", Value::Color(c)) if caps.hsv => {
                let hue = (c.hue.round() as i64).rem_euclid(360) as u16;
                let sat = c.saturation.round().clamp(0.0, 100.0) as u8;
                writes.push(write(
                    Slot::Color,
                    "set_hsv",
                    vec![json!(hue), json!(sat)],
                    vec![("hue", hue.to_string()), ("sat", sat.to_string())],
                ));
            }
            ("color", Value::Color(c)) if caps.rgb => {
                let (r, g, b) = c.to_rgb();
                let v = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
                writes.push(write(Slot::Color, "set_rgb", vec![json!(v)], vec![("rgb", v.to_string())]));
            }
            _ => tracing::debug!(feature = %key, value = %value, "A value this bulb cannot take was left out."),
        }
    }
    // Values are taken only while on: a bulb that is off is turned on for them.
    if turn.is_none() && !writes.is_empty() && power != Some(true) {
        turn = Some(true);
    }
    if let Some(on) = turn {
        let word = if on { "on" } else { "off" };
        let power = write(Slot::Power, "set_power", vec![json!(word)], vec![("power", word.to_owned())]);
        if on {
            writes.insert(0, power);
        } else {
            writes.push(power);
        }
    }
    let reads = match &request.refresh {
        None | Some(Refresh::All(false)) => Vec::new(),
        Some(Refresh::All(true)) => PROPS.to_vec(),
        Some(Refresh::Features(keys)) => {
            let mut props: Vec<&'static str> = Vec::new();
            for key in keys {
                let wanted: &[&'static str] = match key.as_str() {
                    "state" => &["power"],
                    "brightness" => &["bright"],
                    "color_temperature" => &["ct", "color_mode"],
                    "color" => &["rgb", "hue", "sat", "color_mode"],
                    "color_mode" => &["color_mode"],
                    _ => &[],
                };
                for p in wanted {
                    if !props.contains(p) {
                        props.push(p);
                    }
                }
            }
            props
        }
    };
    (writes, reads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::Origin;

    fn ctx() -> Context {
        Context::new("c1", Origin::User { name: "alice".into() })
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The `support` of the specification's example answer (a color bulb without `set_hsv`).
    const SPEC_SUPPORT: &str = "get_prop set_default set_power toggle set_bright start_cf stop_cf set_scene cron_add cron_get cron_del set_ct_abx set_rgb";

    fn color_bulb() -> Caps {
        Caps::new("color", Some(&format!("{SPEC_SUPPORT} set_hsv")))
    }

    #[test]
    fn features_follow_the_supported_methods_and_the_model() {
        let keys = |c: &Caps| features(c).iter().map(|f| f.key.clone()).collect::<Vec<_>>();
        let color = Caps::new("color", Some(SPEC_SUPPORT));
        assert_eq!(keys(&color), ["state", "brightness", "color_temperature", "color", "color_mode"]);
        assert_eq!((color.ct, color.rgb, color.hsv), (Some((1700, 6500)), true, false));
        let ceiling = Caps::new(
            "ceiling3",
            Some(
                "get_prop set_default set_power toggle set_bright set_scene cron_add cron_get cron_del start_cf stop_cf set_ct_abx set_name set_adjust adjust_bright adjust_ct",
            ),
        );
        assert_eq!(keys(&ceiling), ["state", "brightness", "color_temperature"]);
        let ct = features(&ceiling).into_iter().find(|f| f.key == "color_temperature").unwrap();
        assert_eq!(ct.value_type, ValueType::range(2700.0, 6500.0, 1.0));
        assert_eq!(ct.unit.as_deref(), Some("K"));
        let mono = Caps::new("mono", Some("get_prop set_default set_power toggle set_bright start_cf stop_cf"));
        assert_eq!(keys(&mono), ["state", "brightness"]);
        assert_eq!(keys(&Caps::new("mono", None)), ["state", "brightness"]);
        let brightness = &features(&mono)[1];
        assert_eq!(
            (brightness.value_type.clone(), brightness.unit.as_deref()),
            (ValueType::range(1.0, 100.0, 1.0), Some("%"))
        );
        assert_eq!(ct_range("ceiling5"), (2700, 5700));
        assert_eq!(ct_range("bslamp1"), (1700, 6500));
        assert_eq!(ct_range("ceila"), (2700, 6500));
    }

    #[test]
    fn the_descriptor_names_maker_model_and_firmware() {
        let d = descriptor(&DeviceId::new(ADAPTER, "000000000015243f"), "my_bulb", &color_bulb(), Some("18"));
        assert_eq!(d.id.as_str(), "yeelight:000000000015243f");
        assert_eq!(
            (d.name.as_str(), d.manufacturer.as_deref(), d.model.as_deref(), d.firmware.as_deref()),
            ("my_bulb", Some("Yeelight"), Some("color"), Some("18"))
        );
        assert_eq!(default_name(Some("color"), "000000000015243f"), "Yeelight color 15243f");
        assert_eq!(default_name(None, "000000000015243f"), "Yeelight 15243f");
    }

    #[test]
    fn the_specifications_properties_become_values_in_canonical_units() {
        let caps = color_bulb();
        let mut memory = ColorMemory::default();
        // The example answer: color temperature mode, the color it keeps in `rgb`.
        let v = memory.values(
            &caps,
            &props(&[
                ("power", "on"),
                ("bright", "100"),
                ("color_mode", "2"),
                ("ct", "4000"),
                ("rgb", "16711680"),
                ("hue", "100"),
                ("sat", "35"),
                ("name", "my_bulb"),
            ]),
        );
        assert_eq!(
            v,
            BTreeMap::from([
                ("state".into(), Value::Bool(true)),
                ("brightness".into(), Value::Number(100.0)),
                ("color_temperature".into(), Value::Number(4000.0)),
                ("color_mode".into(), Value::Text("color_temperature".into())),
                ("color".into(), Value::Color(Color { hue: 0.0, saturation: 100.0 })),
            ])
        );
        // The specification's notification: `{"power":"on","bright":"10"}`.
        let v = memory.values(&caps, &props(&[("power", "off"), ("bright", "10")]));
        assert_eq!(
            v,
            BTreeMap::from([("state".into(), Value::Bool(false)), ("brightness".into(), Value::Number(10.0))])
        );
        // HSV mode: hue and saturation reported apart make one color.
        let v = memory.values(&caps, &props(&[("hue", "120"), ("color_mode", "3")]));
        assert_eq!(v["color"], Value::Color(Color { hue: 120.0, saturation: 35.0 }));
        assert_eq!(v["color_mode"], Value::Text("color".into()));
        let v = memory.values(&caps, &props(&[("sat", "80")]));
        assert_eq!(v["color"], Value::Color(Color { hue: 120.0, saturation: 80.0 }));
        // RGB mode again.
        let v = memory.values(&caps, &props(&[("rgb", "65280"), ("color_mode", "1")]));
        assert_eq!(v["color"], Value::Color(Color { hue: 120.0, saturation: 100.0 }));
        // Unreadable or unknown values are left out; a white bulb reports no color.
        assert!(memory.values(&caps, &props(&[("bright", "bright"), ("power", "maybe"), ("ct", "")])).is_empty());
        let white = Caps::new("mono", Some("get_prop set_power set_bright"));
        assert_eq!(
            ColorMemory::default().values(&white, &props(&[("ct", "2700"), ("rgb", "0"), ("bright", "46")])),
            BTreeMap::from([("brightness".into(), Value::Number(46.0))])
        );
    }

    fn set(pairs: &[(&str, Value)], transition: Option<f64>) -> CommandRequest {
        CommandRequest {
            set: pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            transition,
            ..CommandRequest::default()
        }
    }

    fn lines(writes: &[Write]) -> Vec<String> {
        writes.iter().map(|w| crate::api::request(1, w.method, &w.params).trim_end().to_owned()).collect()
    }

    #[test]
    fn commands_become_the_bulbs_methods_in_its_units() {
        let caps = color_bulb();
        let (writes, reads) = plan(&set(&[("state", Value::Bool(true))], Some(0.5)), &caps, Some(false), &ctx());
        assert_eq!(lines(&writes), [r#"{"id":1,"method":"set_power","params":["on","smooth",500]}"#]);
        assert!(reads.is_empty());
        let (writes, _) = plan(
            &set(
                &[
                    ("brightness", Value::Number(40.4)),
                    ("color_temperature", Value::Number(9000.0)),
                    ("color", Value::Color(Color { hue: 359.6, saturation: 50.2 })),
                    ("state", Value::Bool(false)),
                ],
                Some(0.0),
            ),
            &caps,
            Some(true),
            &ctx(),
        );
        assert_eq!(
            lines(&writes),
            [
                r#"{"id":1,"method":"set_bright","params":[40,"sudden",30]}"#,
                r#"{"id":1,"method":"set_hsv","params":[0,50,"sudden",30]}"#,
                r#"{"id":1,"method":"set_ct_abx","params":[6500,"sudden",30]}"#,
                r#"{"id":1,"method":"set_power","params":["off","sudden",30]}"#,
            ],
            "off goes last; the temperature is kept in the model's range"
        );
        // Without set_hsv the color goes as RGB; no transition is smooth over 300 ms, a very
        // short one at least 30 ms.
        let rgb = Caps::new("color", Some(SPEC_SUPPORT));
        let red = Value::Color(Color { hue: 0.0, saturation: 100.0 });
        let (writes, _) = plan(&set(&[("color", red.clone())], None), &rgb, Some(true), &ctx());
        assert_eq!(lines(&writes), [r#"{"id":1,"method":"set_rgb","params":[16711680,"smooth",300]}"#]);
        assert_eq!(writes[0].expect, [("rgb", "16711680".to_owned())]);
        let (writes, _) = plan(&set(&[("brightness", Value::Number(1.0))], Some(0.001)), &rgb, Some(true), &ctx());
        assert_eq!(lines(&writes), [r#"{"id":1,"method":"set_bright","params":[1,"smooth",30]}"#]);
        // A bulb that is off (or not known on) is turned on for a value.
        let (writes, _) = plan(&set(&[("brightness", Value::Number(70.0))], None), &rgb, Some(false), &ctx());
        assert_eq!(
            lines(&writes),
            [
                r#"{"id":1,"method":"set_power","params":["on","smooth",300]}"#,
                r#"{"id":1,"method":"set_bright","params":[70,"smooth",300]}"#
            ]
        );
        assert_eq!(writes[0].power(), Some(true));
        assert_eq!(plan(&set(&[("brightness", Value::Number(70.0))], None), &rgb, None, &ctx()).0.len(), 2);
        // A white bulb has no color: it is left out.
        let white = Caps::new("mono", Some("get_prop set_power set_bright"));
        assert!(plan(&set(&[("color", red)], None), &white, Some(true), &ctx()).0.is_empty());
    }

    #[test]
    fn refreshes_read_the_properties_of_the_features_asked_for() {
        let caps = color_bulb();
        let refresh = |r| CommandRequest { refresh: Some(r), ..CommandRequest::default() };
        assert_eq!(plan(&refresh(Refresh::All(true)), &caps, None, &ctx()).1, PROPS);
        assert_eq!(
            plan(
                &refresh(Refresh::Features(vec!["state".into(), "color".into(), "color_mode".into()])),
                &caps,
                None,
                &ctx()
            )
            .1,
            ["power", "rgb", "hue", "sat", "color_mode"]
        );
    }

    #[test]
    fn a_write_is_shown_by_the_values_it_asked_for() {
        let caps = color_bulb();
        let (writes, _) = plan(
            &set(&[("color", Value::Color(Color { hue: 120.0, saturation: 50.0 }))], None),
            &caps,
            Some(true),
            &ctx(),
        );
        let w = &writes[0];
        assert!(w.shown_by(&props(&[("hue", "120"), ("sat", "50"), ("color_mode", "3")])));
        assert!(w.shown_by(&props(&[("hue", "120")])), "an unchanged saturation is not reported");
        assert!(!w.shown_by(&props(&[("hue", "121"), ("sat", "50")])));
        assert!(!w.shown_by(&props(&[("bright", "50")])));
    }
}
