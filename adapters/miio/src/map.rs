//! From a MIoT-Spec ([`crate::spec::Spec`]) to the device model: one feature per property (or
//! parameterless action), with its capability, canonical unit and value type, and the
//! conversions of values both ways. Pure; the table is in the crate's documentation.

use hearth_sdk::{Access, Capability, Category, Color, Feature, Value, ValueType};
use serde_json::Value as Json;

use crate::spec::{Format, Property, Range, Service, Spec};

/// Where a feature lives on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// Property `piid` of service `siid`.
    Property {
        /// The service.
        siid: u32,
        /// The property.
        piid: u32,
    },
    /// Action `aiid` of service `siid`.
    Action {
        /// The service.
        siid: u32,
        /// The action.
        aiid: u32,
    },
}

/// How a device's number becomes the model's: `model = device × factor`, or °F to °C.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Multiplied by this.
    Factor(f64),
    /// Fahrenheit to Celsius.
    Fahrenheit,
}

impl Scale {
    fn to_model(self, v: f64) -> f64 {
        match self {
            Scale::Factor(f) => v * f,
            Scale::Fahrenheit => (v - 32.0) * 5.0 / 9.0,
        }
    }

    fn to_device(self, v: f64) -> f64 {
        match self {
            Scale::Factor(f) => v / f,
            Scale::Fahrenheit => v * 9.0 / 5.0 + 32.0,
        }
    }

    fn step(self, step: f64) -> f64 {
        match self {
            Scale::Factor(f) => step * f.abs(),
            Scale::Fahrenheit => step * 5.0 / 9.0,
        }
    }
}

/// How values convert between the device and the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// `true`/`false` (a device's 0/1 read as false/true).
    Bool,
    /// A number, scaled; written back in the device's format, on its steps, within its range.
    Number {
        /// Device to model.
        scale: Scale,
        /// The device's format.
        format: Format,
        /// The device's range.
        range: Option<Range>,
    },
    /// A number of a value list, shown by its name.
    Enum(Vec<(f64, String)>),
    /// A 24-bit RGB number, as hue and saturation.
    Color {
        /// The device's range.
        range: Option<Range>,
    },
    /// Text.
    Text,
    /// An action without inputs, run by setting the feature to `true`.
    Trigger,
}

/// One feature and where it lives.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The feature's key.
    pub key: String,
    /// The property or action.
    pub target: Target,
    /// How values convert.
    pub conversion: Conversion,
    /// Whether `get_properties` answers it.
    pub readable: bool,
}

/// Something of the spec that is not a feature, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What (`siid 1 (device-information)`, `siid 2 piid 9 (button-pressed)`).
    pub what: String,
    /// Why.
    pub why: String,
}

/// A spec mapped onto the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    /// The device's features, in the spec's order.
    pub features: Vec<Feature>,
    /// Where each feature lives, in the same order.
    pub points: Vec<Point>,
    /// What was left out, and why.
    pub skipped: Vec<Skipped>,
}

/// Services whose `mode` is a fan's mode.
const FAN_LIKE: &[&str] = &["air-purifier", "fan", "humidifier", "dehumidifier", "air-fresh", "ceiling-fan"];
/// Services of settings.
const SETTINGS: &[&str] = &["indicator-light", "screen", "alarm", "physical-controls-locked"];
/// Properties of a device's health.
const HEALTH: &[&str] =
    &["fault", "filter-life-level", "filter-used-time", "filter-left-time", "use-time", "motor-speed"];

/// Maps a spec: every readable or writable property becomes a feature, and every action
/// without inputs a write-only trigger; the rest is listed in [`Mapped::skipped`].
pub fn map(spec: &Spec) -> Mapped {
    let main = main_service(spec);
    let mut features: Vec<Feature> = Vec::new();
    let mut points: Vec<Point> = Vec::new();
    let mut skipped = Vec::new();
    for service in &spec.services {
        if service.urn.name == "device-information" {
            skipped.push(Skipped {
                what: format!("siid {} (device-information)", service.siid),
                why: "the model and firmware come from miIO.info".into(),
            });
            continue;
        }
        let is_main = Some(service.siid) == main;
        for p in &service.properties {
            match property_feature(service, p, is_main) {
                Ok((feature, conversion)) => {
                    let point = Point {
                        key: feature.key.clone(),
                        target: Target::Property { siid: service.siid, piid: p.piid },
                        conversion,
                        readable: p.access.read,
                    };
                    push(&mut features, &mut points, feature, point);
                }
                Err(why) => skipped
                    .push(Skipped { what: format!("siid {} piid {} ({})", service.siid, p.piid, p.urn.name), why }),
            }
        }
        for a in &service.actions {
            if !a.inputs.is_empty() {
                skipped.push(Skipped {
                    what: format!("siid {} aiid {} ({})", service.siid, a.aiid, a.urn.name),
                    why: format!(
                        "the action takes inputs (piids {:?}); only actions without inputs are offered",
                        a.inputs
                    ),
                });
                continue;
            }
            let key = key_for(service, &a.urn.name, snake(&a.urn.name), is_main);
            let label = label(service, &a.description, &a.urn.name);
            let feature = Feature::new(&key, Capability::Other, ValueType::Bool, Access::WRITE_ONLY)
                .category(Category::Config)
                .label(&format!("{label} (set to true to run)"));
            let point = Point {
                key,
                target: Target::Action { siid: service.siid, aiid: a.aiid },
                conversion: Conversion::Trigger,
                readable: false,
            };
            push(&mut features, &mut points, feature, point);
        }
    }
    Mapped { features, points, skipped }
}

/// Adds a feature; a key already taken gets where it comes from (`state_3_1`).
fn push(features: &mut Vec<Feature>, points: &mut Vec<Point>, mut feature: Feature, mut point: Point) {
    if features.iter().any(|f| f.key == feature.key) {
        let suffix = match point.target {
            Target::Property { siid, piid } => format!("{siid}_{piid}"),
            Target::Action { siid, aiid } => format!("{siid}_a{aiid}"),
        };
        feature.key = format!("{}_{suffix}", feature.key);
        point.key = feature.key.clone();
    }
    features.push(feature);
    points.push(point);
}

/// The service whose properties keep their plain keys: the one of the device's own type, else
/// the first after the device information.
fn main_service(spec: &Spec) -> Option<u32> {
    let kind = spec.urn.as_ref().map(|u| u.name.as_str());
    spec.services
        .iter()
        .find(|s| Some(s.urn.name.as_str()) == kind)
        .or_else(|| spec.services.iter().find(|s| s.urn.name != "device-information"))
        .map(|s| s.siid)
}

/// `pm2.5-density` → `pm2_5_density`: lowercase ASCII letters, digits and `_`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The plain key of a property.
fn base_key(name: &str) -> String {
    match name {
        "on" => "state".into(),
        "relative-humidity" => "humidity".into(),
        "pm2.5-density" => "pm25".into(),
        "pm10-density" => "pm10".into(),
        "co2-density" => "co2".into(),
        "tvoc-density" => "voc".into(),
        "hcho-density" => "formaldehyde".into(),
        "filter-life-level" => "filter_life".into(),
        "physical-controls-locked" => "child_lock".into(),
        other => snake(other),
    }
}

/// The key: plain in the main and the environment services, and where the name already says the
/// service (`filter-life-level` of `filter`); `<service>_<key>` elsewhere (`indicator_light_state`).
fn key_for(service: &Service, name: &str, base: String, is_main: bool) -> String {
    let s = service.urn.name.as_str();
    if is_main || s == "environment" || name.contains(s) { base } else { format!("{}_{base}", snake(s)) }
}

fn label(service: &Service, description: &str, name: &str) -> String {
    let what = if description.trim().is_empty() { name } else { description.trim() };
    if service.description.trim().is_empty() || what.eq_ignore_ascii_case(service.description.trim()) {
        what.to_owned()
    } else {
        format!("{}: {what}", service.description.trim())
    }
}

/// The model's name of a MIoT unit, for features that keep their own unit.
fn display_unit(unit: &str) -> String {
    match unit {
        "percentage" => "%".into(),
        "celsius" => "°C".into(),
        "fahrenheit" => "°F".into(),
        "kelvin" => "K".into(),
        "lux" => "lx".into(),
        "μg/m3" | "ug/m3" | "µg/m3" => "µg/m³".into(),
        "mg/m3" => "mg/m³".into(),
        "watt" => "W".into(),
        "pascal" => "Pa".into(),
        "seconds" => "s".into(),
        "minutes" => "min".into(),
        "hours" => "h".into(),
        "days" => "d".into(),
        "litre" => "L".into(),
        "arcdegrees" => "°".into(),
        other => other.to_owned(),
    }
}

/// How a MIoT unit converts to a capability's canonical unit; `None` when it does not.
fn scale_for(capability: Capability, unit: Option<&str>) -> Option<Scale> {
    use Capability::*;
    let one = Some(Scale::Factor(1.0));
    match (capability, unit) {
        (Temperature | Setpoint, None | Some("celsius")) => one,
        (Temperature | Setpoint, Some("fahrenheit")) => Some(Scale::Fahrenheit),
        (Humidity | Battery | Moisture, None | Some("percentage")) => one,
        (Pm25 | Pm10, None | Some("μg/m3" | "ug/m3" | "µg/m3")) => one,
        (Co2, None | Some("ppm")) => one,
        (Voc, Some("ppb")) => one,
        (Formaldehyde, Some("mg/m3")) => one,
        (Illuminance, None | Some("lux")) => one,
        (Power, None | Some("watt" | "W")) => one,
        (Power, Some("kW")) => Some(Scale::Factor(1000.0)),
        (Current, Some("A" | "ampere")) => one,
        (Current, Some("mA")) => Some(Scale::Factor(0.001)),
        (Voltage, Some("V" | "volt")) => one,
        (Voltage, Some("mV")) => Some(Scale::Factor(0.001)),
        (Energy, Some("kWh")) => one,
        (Energy, Some("Wh")) => Some(Scale::Factor(0.001)),
        (Pressure, Some("hPa")) => one,
        (Pressure, Some("pascal" | "Pa")) => Some(Scale::Factor(0.01)),
        (Pressure, Some("kPa")) => Some(Scale::Factor(10.0)),
        (Duration, Some("seconds")) => one,
        (Duration, Some("minutes")) => Some(Scale::Factor(60.0)),
        (Duration, Some("hours")) => Some(Scale::Factor(3600.0)),
        (Duration, Some("days")) => Some(Scale::Factor(86400.0)),
        (ColorTemperature, None | Some("kelvin")) => one,
        _ => None,
    }
}

/// The capability a numeric property takes by its name (or its time unit).
fn numeric_capability(service: &str, name: &str, unit: Option<&str>) -> Option<Capability> {
    use Capability::*;
    Some(match name {
        "temperature" | "indoor-temperature" => Temperature,
        "target-temperature" => Setpoint,
        "relative-humidity" => Humidity,
        "pm2.5-density" => Pm25,
        "pm10-density" => Pm10,
        "co2-density" => Co2,
        "tvoc-density" => Voc,
        "hcho-density" => Formaldehyde,
        "illumination" => Illuminance,
        "battery-level" => Battery,
        "electric-power" => Power,
        "electric-current" => Current,
        "voltage" => Voltage,
        "power-consumption" => Energy,
        "atmospheric-pressure" => Pressure,
        "color-temperature" => ColorTemperature,
        "soil-moisture" if service != "environment" || unit == Some("percentage") => Moisture,
        _ if matches!(unit, Some("seconds" | "minutes" | "hours" | "days")) => Duration,
        _ => return None,
    })
}

fn property_feature(service: &Service, p: &Property, is_main: bool) -> Result<(Feature, Conversion), String> {
    if !p.access.read && !p.access.write {
        return Err("the device only notifies it (to the cloud); it cannot be read or written over the LAN".into());
    }
    if matches!(p.format, Format::Hex | Format::Tlv8) {
        return Err(format!("its values are {} data, which the model does not show", p.format.name()));
    }
    let name = p.urn.name.as_str();
    let sname = service.urn.name.as_str();
    let access = Access { observe: p.access.read, set: p.access.write, get: p.access.read };
    let key = key_for(service, name, base_key(name), is_main);
    let vendor = !p.urn.is_standard();
    let category = if HEALTH.contains(&name) || (vendor && !p.access.write) {
        Category::Diagnostic
    } else if SETTINGS.contains(&sname) || SETTINGS.contains(&name) || vendor {
        Category::Config
    } else {
        Category::Primary
    };
    let unit = p.unit.as_deref();
    let generic_label = label(service, &p.description, name);

    // Booleans: on/off, or a generic switch.
    if p.format == Format::Bool {
        let capability = if name == "on" { Capability::OnOff } else { Capability::Other };
        let mut f = Feature::new(&key, capability, ValueType::Bool, access).category(category);
        if capability == Capability::Other {
            f = f.label(&generic_label);
        }
        return Ok((f, Conversion::Bool));
    }
    if p.format == Format::String {
        let f = Feature::new(&key, Capability::Other, ValueType::Text { max_length: None }, access)
            .category(category)
            .label(&generic_label);
        return Ok((f, Conversion::Text));
    }
    // Value lists: enums by name; a fan's level and mode are fan modes.
    if !p.list.is_empty() {
        let values = enum_names(&p.list);
        let capability = match name {
            "fan-level" => Capability::FanMode,
            "mode" if FAN_LIKE.contains(&sname) => Capability::FanMode,
            _ => Capability::Other,
        };
        let mut f =
            Feature::new(&key, capability, ValueType::enumeration(values.iter().map(|(_, n)| n.clone())), access)
                .category(category);
        if capability == Capability::Other {
            f = f.label(&generic_label);
        }
        return Ok((f, Conversion::Enum(values)));
    }
    // Numbers.
    if name == "color" && unit.is_none_or(|u| u == "rgb") {
        let f = Feature::new(&key, Capability::Color, ValueType::Color, access).category(category);
        return Ok((f, Conversion::Color { range: p.range }));
    }
    if name == "brightness"
        && unit.is_none_or(|u| u == "percentage")
        && let Some(r) = p.range
        && r.max > 0.0
    {
        let scale = Scale::Factor(if r.max == 100.0 { 1.0 } else { 100.0 / r.max });
        let f = Feature::new(&key, Capability::Brightness, number_type(Some(r), scale), access).category(category);
        return Ok((f, Conversion::Number { scale, format: p.format, range: p.range }));
    }
    if let Some(capability) = numeric_capability(sname, name, unit)
        && let Some(scale) = scale_for(capability, unit)
    {
        let mut f = Feature::new(&key, capability, number_type(p.range, scale), access).category(category);
        if capability == Capability::Duration {
            f = f.label(&generic_label);
        }
        return Ok((f, Conversion::Number { scale, format: p.format, range: p.range }));
    }
    let scale = Scale::Factor(1.0);
    let mut f = Feature::new(&key, Capability::Other, number_type(p.range, scale), access)
        .category(category)
        .label(&generic_label);
    if let Some(u) = unit {
        f = f.unit(&display_unit(u));
    }
    Ok((f, Conversion::Number { scale, format: p.format, range: p.range }))
}

fn number_type(range: Option<Range>, scale: Scale) -> ValueType {
    match range {
        None => ValueType::number(),
        Some(r) => {
            let (a, b) = (tidy(scale.to_model(r.min)), tidy(scale.to_model(r.max)));
            ValueType::range(a.min(b), a.max(b), tidy(scale.step(r.step)))
        }
    }
}

/// Enum names from a value list: its descriptions in lowercase with `_` between words
/// (`No faults` → `no_faults`), the number when there is none, made unique with `_<value>`.
fn enum_names(list: &[crate::spec::EnumValue]) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = Vec::new();
    for v in list {
        let mut name = String::new();
        for c in v.description.trim().chars() {
            if c.is_alphanumeric() {
                name.extend(c.to_lowercase());
            } else if !name.is_empty() && !name.ends_with('_') {
                name.push('_');
            }
        }
        let mut name = name.trim_end_matches('_').to_owned();
        if name.is_empty() {
            name = number_text(v.value);
        }
        if out.iter().any(|(_, n)| *n == name) {
            name = format!("{name}_{}", number_text(v.value));
        }
        out.push((v.value, name));
    }
    out
}

fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

/// Rounds away floating-point noise (21.500000000001 → 21.5).
fn tidy(v: f64) -> f64 {
    let r = (v * 1e9).round() / 1e9;
    if r == 0.0 { 0.0 } else { r }
}

/// How many decimals a resolution of `step` needs (0.1: 1, 0.39: 1, 0.0556: 2, 5: 0).
fn decimals(step: f64) -> i32 {
    if step <= 0.0 || step >= 1.0 { 0 } else { (-step.log10() - 1e-9).ceil() as i32 }
}

fn round_to_decimals(v: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    tidy((v * f).round() / f)
}

/// `v` on the grid of `step` from `origin`.
fn on_step(v: f64, origin: f64, step: f64) -> f64 {
    if step > 0.0 { tidy(origin + ((v - origin) / step).round() * step) } else { tidy(v) }
}

impl Mapped {
    /// The point of feature `key`.
    pub fn point(&self, key: &str) -> Option<&Point> {
        self.points.iter().find(|p| p.key == key)
    }

    /// The point of property `piid` of service `siid`.
    pub fn property(&self, siid: u32, piid: u32) -> Option<&Point> {
        self.points.iter().find(|p| p.target == Target::Property { siid, piid })
    }

    /// Every property `get_properties` answers, as `(siid, piid)`.
    pub fn readable(&self) -> Vec<(u32, u32)> {
        self.points
            .iter()
            .filter(|p| p.readable)
            .filter_map(|p| match p.target {
                Target::Property { siid, piid } => Some((siid, piid)),
                Target::Action { .. } => None,
            })
            .collect()
    }
}

impl Point {
    /// A device's value as the model's; the error says why it cannot be.
    pub fn to_model(&self, wire: &Json) -> Result<Value, String> {
        match &self.conversion {
            Conversion::Bool => match wire {
                Json::Bool(b) => Ok(Value::Bool(*b)),
                Json::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::Bool(false)),
                Json::Number(n) if n.as_f64() == Some(1.0) => Ok(Value::Bool(true)),
                other => Err(format!("{other} is not true or false")),
            },
            Conversion::Number { scale, range, .. } => {
                let v = wire.as_f64().ok_or_else(|| format!("{wire} is not a number"))?;
                let model = scale.to_model(v);
                Ok(Value::Number(match range {
                    Some(r) => round_to_decimals(model, decimals(scale.step(r.step))),
                    None => tidy(model),
                }))
            }
            Conversion::Enum(values) => {
                let v = wire.as_f64().ok_or_else(|| format!("{wire} is not a number of the value list"))?;
                values.iter().find(|(n, _)| (n - v).abs() < 1e-9).map(|(_, name)| Value::Text(name.clone())).ok_or_else(
                    || {
                        let known: Vec<String> =
                            values.iter().map(|(n, name)| format!("{} {name}", number_text(*n))).collect();
                        format!("{} is not in the value list ({})", number_text(v), known.join(", "))
                    },
                )
            }
            Conversion::Color { .. } => {
                let v = wire
                    .as_u64()
                    .filter(|v| *v <= 0xFF_FFFF)
                    .ok_or_else(|| format!("{wire} is not a 24-bit RGB number"))?;
                Ok(Value::Color(Color::from_rgb((v >> 16) as u8, (v >> 8) as u8, v as u8)))
            }
            Conversion::Text => match wire {
                Json::String(s) => Ok(Value::Text(s.clone())),
                Json::Number(n) => Ok(Value::Text(n.to_string())),
                other => Err(format!("{other} is not text")),
            },
            Conversion::Trigger => Err("an action has no value to read".into()),
        }
    }

    /// The model's value as the device takes it. For a trigger, `Ok(None)` means "do not run"
    /// (`false`), `Ok(Some(true))` "run".
    pub fn to_wire(&self, value: &Value) -> Result<Option<Json>, String> {
        let wrong = |what: &str| format!("{} takes {what}, not {value:?}", self.key);
        Ok(Some(match (&self.conversion, value) {
            (Conversion::Bool, Value::Bool(b)) => Json::Bool(*b),
            (Conversion::Number { scale, format, range }, Value::Number(v)) => {
                let mut d = scale.to_device(*v);
                if let Some(r) = range {
                    d = on_step(d, r.min, r.step).clamp(r.min, r.max);
                }
                number_json(d, *format)
            }
            (Conversion::Enum(values), Value::Text(name)) => {
                let (n, _) = values.iter().find(|(_, v)| v == name).ok_or_else(|| wrong("a name of its value list"))?;
                number_json(*n, Format::Integer { signed: true, bits: 64 })
            }
            (Conversion::Color { range }, Value::Color(c)) => {
                let (r, g, b) = c.to_rgb();
                let mut rgb = (u64::from(r) << 16 | u64::from(g) << 8 | u64::from(b)) as f64;
                if let Some(range) = range {
                    rgb = rgb.clamp(range.min, range.max);
                }
                number_json(rgb, Format::Integer { signed: false, bits: 32 })
            }
            (Conversion::Text, Value::Text(s)) => Json::String(s.clone()),
            (Conversion::Trigger, Value::Bool(run)) => {
                return Ok(run.then_some(Json::Bool(true)));
            }
            (Conversion::Bool | Conversion::Trigger, _) => return Err(wrong("true or false")),
            (Conversion::Number { .. }, _) => return Err(wrong("a number")),
            (Conversion::Enum(_), _) => return Err(wrong("a name of its value list")),
            (Conversion::Color { .. }, _) => return Err(wrong("a color")),
            (Conversion::Text, _) => return Err(wrong("text")),
        }))
    }
}

fn number_json(v: f64, format: Format) -> Json {
    match format {
        Format::Integer { .. } => Json::from(v.round() as i64),
        _ => serde_json::Number::from_f64(tidy(v)).map_or(Json::Null, Json::Number),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::spec::Catalogue;

    fn mapped(model: &str) -> Mapped {
        map(Catalogue::builtin().get(model).unwrap().as_ref().unwrap())
    }

    /// `key capability type unit access category` per feature, one line each.
    fn table(m: &Mapped) -> Vec<String> {
        m.features
            .iter()
            .map(|f| {
                let t = match &f.value_type {
                    ValueType::Number { min, max, step } => format!(
                        "number[{}..{} /{}]",
                        min.map(|v| v.to_string()).unwrap_or_default(),
                        max.map(|v| v.to_string()).unwrap_or_default(),
                        step.map(|v| v.to_string()).unwrap_or_default()
                    ),
                    ValueType::Enum { values } => format!("enum[{}]", values.join("|")),
                    other => other.name().to_owned(),
                };
                let a = f.access;
                let access = format!(
                    "{}{}{}",
                    if a.observe { "o" } else { "-" },
                    if a.set { "s" } else { "-" },
                    if a.get { "g" } else { "-" }
                );
                format!(
                    "{} {} {} {} {} {:?}",
                    f.key,
                    serde_json::to_value(f.capability).unwrap().as_str().unwrap(),
                    t,
                    f.unit.as_deref().unwrap_or("-"),
                    access,
                    f.category
                )
            })
            .collect()
    }

    #[test]
    fn the_air_purifier_maps_to_a_fan_with_its_sensors_and_filter() {
        let m = mapped("zhimi.airpurifier.mb3");
        assert_eq!(
            table(&m),
            [
                "fault other enum[no_faults|m1_run|m1_stuck|no_sensor|error_hum|error_temp] - o-g Diagnostic",
                "state on_off bool - osg Primary",
                "fan_level fan_mode enum[level1|level2|level3] - osg Primary",
                "mode fan_mode enum[auto|sleep|favorite|none] - osg Primary",
                "pm25 pm25 number[0..600 /1] µg/m³ o-g Primary",
                "humidity humidity number[0..100 /1] % o-g Primary",
                "temperature temperature number[-40..125 /0.1] °C o-g Primary",
                "filter_life other number[0..100 /1] % o-g Diagnostic",
                "filter_used_time duration number[0..36000000 /3600] s o-g Diagnostic",
                "reset_filter_life other bool - -s- Config",
                "alarm other bool - osg Config",
                "indicator_light_brightness other enum[brightest|glimmer|led_closed] - osg Config",
                "indicator_light_state on_off bool - osg Config",
                "child_lock other bool - osg Config",
                "button_toggle other bool - -s- Config",
                "button_toggle_mode other bool - -s- Config",
                "motor_speed other number[0..3000 /1] - o-g Diagnostic",
                "motor_speed_favorite_fan_level other number[0..14 /1] - osg Config",
                "use_time duration number[0..2147483600 /1] s o-g Diagnostic",
            ]
        );
        assert_eq!(m.readable().len(), 16);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(m.point("reset_filter_life").unwrap().target, Target::Action { siid: 4, aiid: 1 });
        assert_eq!(m.property(2, 5).unwrap().key, "mode");
        assert_eq!(m.features[9].label.as_deref(), Some("Filter: Reset Filter Life (set to true to run)"));
    }

    #[test]
    fn the_plug_the_lamp_and_the_humidifier_map_too() {
        assert_eq!(
            table(&mapped("cuco.plug.cp1")),
            [
                "state on_off bool - osg Primary",
                "toggle other bool - -s- Config",
                "indicator_light_state on_off bool - osg Config"
            ]
        );
        assert_eq!(
            table(&mapped("yeelink.light.colorc")),
            [
                "state on_off bool - osg Primary",
                "brightness brightness number[1..100 /1] % osg Primary",
                "color_temperature color_temperature number[2700..6500 /1] K osg Primary",
                "color color color - osg Primary",
                "mode other enum[color|ct] - osg Primary",
            ]
        );
        assert_eq!(
            table(&mapped("zhimi.humidifier.ca4")),
            [
                "state on_off bool - osg Primary",
                "fault other number[0..15 /1] - o-g Diagnostic",
                "fan_level fan_mode enum[auto|level1|level2|level3] - osg Primary",
                "target_humidity other number[30..80 /1] % osg Primary",
                "water_level other number[0..128 /1] - o-g Primary",
                "dry other bool - osg Config",
                "use_time other number[0..2147483600 /1] - o-g Diagnostic",
                "speed_level other number[200..2000 /10] - osg Primary",
                "temperature temperature number[-40..125 /0.1] °C o-g Primary",
                "humidity humidity number[0..100 /1] % o-g Primary",
                "alarm other bool - osg Config",
                "screen_brightness other enum[dark|glimmer|brightest] - osg Config",
                "child_lock other bool - osg Config",
            ]
        );
    }

    #[test]
    fn values_convert_both_ways_in_canonical_units() {
        let purifier = mapped("zhimi.airpurifier.mb3");
        let p = |k: &str| purifier.point(k).unwrap().clone();
        assert_eq!(p("state").to_model(&json!(true)), Ok(Value::Bool(true)));
        assert_eq!(p("state").to_model(&json!(0)), Ok(Value::Bool(false)));
        assert!(p("state").to_model(&json!("on")).is_err());
        assert_eq!(p("mode").to_model(&json!(1)), Ok(Value::Text("sleep".into())));
        assert_eq!(p("mode").to_wire(&Value::Text("favorite".into())), Ok(Some(json!(2))));
        assert_eq!(
            p("mode").to_model(&json!(7)),
            Err("7 is not in the value list (0 auto, 1 sleep, 2 favorite, 3 none)".into())
        );
        assert_eq!(p("temperature").to_model(&json!(21.500000001)), Ok(Value::Number(21.5)));
        assert_eq!(p("temperature").to_model(&json!(-3.26)), Ok(Value::Number(-3.3)));
        assert_eq!(p("pm25").to_model(&json!(12.0)), Ok(Value::Number(12.0)));
        assert_eq!(p("filter_used_time").to_model(&json!(412)), Ok(Value::Number(1_483_200.0)), "hours in s");
        assert_eq!(p("filter_used_time").to_wire(&Value::Number(7200.0)), Ok(Some(json!(2))));
        assert_eq!(p("motor_speed_favorite_fan_level").to_wire(&Value::Number(20.0)), Ok(Some(json!(14))), "clamped");
        assert_eq!(p("reset_filter_life").to_wire(&Value::Bool(true)), Ok(Some(json!(true))));
        assert_eq!(p("reset_filter_life").to_wire(&Value::Bool(false)), Ok(None));
        assert!(p("reset_filter_life").to_model(&json!(true)).is_err());

        let lamp = mapped("yeelink.light.colorc");
        let l = |k: &str| lamp.point(k).unwrap().clone();
        assert_eq!(l("brightness").to_wire(&Value::Number(0.0)), Ok(Some(json!(1))), "the lamp's lowest is 1 %");
        assert_eq!(l("brightness").to_wire(&Value::Number(55.4)), Ok(Some(json!(55))));
        assert_eq!(l("color_temperature").to_model(&json!(4000)), Ok(Value::Number(4000.0)));
        assert_eq!(l("color").to_model(&json!(0xFF0000)), Ok(Value::Color(Color { hue: 0.0, saturation: 100.0 })));
        assert_eq!(
            l("color").to_wire(&Value::Color(Color { hue: 120.0, saturation: 100.0 })),
            Ok(Some(json!(0x00FF00)))
        );
        assert!(l("color").to_model(&json!(0x1000000)).is_err());
    }

    #[test]
    fn other_units_scale_and_unknown_things_are_generic_or_skipped() {
        let text = r#"{"type": "urn:miot-spec-v2:device:thing:0000A0FF:acme-t1:1", "services": [
          {"siid": 1, "type": "urn:miot-spec-v2:service:device-information:00007801:acme-t1:1", "properties": [
            {"piid": 1, "type": "urn:miot-spec-v2:property:manufacturer:00000001:acme-t1:1", "format": "string", "access": ["read"]}]},
          {"siid": 2, "type": "urn:miot-spec-v2:service:thing:00007FFF:acme-t1:1", "description": "Thing", "properties": [
            {"piid": 1, "type": "urn:miot-spec-v2:property:temperature:00000020:acme-t1:1", "format": "float", "access": ["read"], "unit": "fahrenheit", "value-range": [32, 212, 0.1]},
            {"piid": 2, "type": "urn:miot-spec-v2:property:brightness:0000000D:acme-t1:1", "format": "uint8", "access": ["read", "write"], "value-range": [0, 255, 1]},
            {"piid": 3, "type": "urn:miot-spec-v2:property:electric-current:00000030:acme-t1:1", "format": "uint16", "access": ["read"], "unit": "mA", "value-range": [0, 16000, 1]},
            {"piid": 4, "type": "urn:miot-spec-v2:property:tvoc-density:00000040:acme-t1:1", "format": "float", "access": ["read"], "unit": "mg/m3"},
            {"piid": 5, "type": "urn:acme-spec:property:secret-blob:00000001:acme-t1:1", "format": "hex", "access": ["read"]},
            {"piid": 6, "type": "urn:acme-spec:property:event-only:00000002:acme-t1:1", "format": "uint8", "access": ["notify"]},
            {"piid": 7, "type": "urn:acme-spec:property:nickname:00000003:acme-t1:1", "description": "Nickname", "format": "string", "access": ["read", "write"]},
            {"piid": 8, "type": "urn:miot-spec-v2:property:countdown-time:00000050:acme-t1:1", "format": "uint16", "access": ["read", "write"], "unit": "minutes", "value-range": [0, 480, 1]}],
           "actions": [{"aiid": 1, "type": "urn:miot-spec-v2:action:play-text:00002810:acme-t1:1", "in": [7]}]}]}"#;
        let spec = crate::spec::parse("acme.thing.t1.json", "acme.thing.t1", text).unwrap();
        let m = map(&spec);
        assert_eq!(
            table(&m),
            [
                "temperature temperature number[0..100 /0.055555556] °C o-g Primary",
                "brightness brightness number[0..100 /0.392156863] % osg Primary",
                "electric_current current number[0..16 /0.001] A o-g Primary",
                "voc other number[.. /] mg/m³ o-g Primary",
                "nickname other text - osg Config",
                "countdown_time duration number[0..28800 /60] s osg Primary",
            ]
        );
        assert_eq!(
            m.skipped,
            [
                Skipped {
                    what: "siid 1 (device-information)".into(),
                    why: "the model and firmware come from miIO.info".into()
                },
                Skipped {
                    what: "siid 2 piid 5 (secret-blob)".into(),
                    why: "its values are hex data, which the model does not show".into()
                },
                Skipped {
                    what: "siid 2 piid 6 (event-only)".into(),
                    why: "the device only notifies it (to the cloud); it cannot be read or written over the LAN".into()
                },
                Skipped {
                    what: "siid 2 aiid 1 (play-text)".into(),
                    why: "the action takes inputs (piids [7]); only actions without inputs are offered".into()
                },
            ]
        );
        let p = |k: &str| m.point(k).unwrap().clone();
        assert_eq!(p("temperature").to_model(&json!(212.0)), Ok(Value::Number(100.0)));
        assert_eq!(p("temperature").to_model(&json!(70.0)), Ok(Value::Number(21.11)));
        assert_eq!(p("brightness").to_model(&json!(255)), Ok(Value::Number(100.0)));
        assert_eq!(p("brightness").to_model(&json!(128)), Ok(Value::Number(50.2)));
        assert_eq!(p("brightness").to_wire(&Value::Number(50.0)), Ok(Some(json!(128))));
        assert_eq!(p("electric_current").to_model(&json!(1234)), Ok(Value::Number(1.234)));
        assert_eq!(
            p("countdown_time").to_wire(&Value::Number(90.0)),
            Ok(Some(json!(2))),
            "90 s is 1.5 min: on the step"
        );
    }

    #[test]
    fn duplicate_keys_get_the_place_they_come_from() {
        let text = r#"{"services": [
          {"siid": 2, "type": "urn:miot-spec-v2:service:switch:0000780C:x:1", "properties": [
            {"piid": 1, "type": "urn:miot-spec-v2:property:on:00000006:x:1", "format": "bool", "access": ["read", "write"]}]},
          {"siid": 3, "type": "urn:miot-spec-v2:service:switch:0000780C:x:1", "properties": [
            {"piid": 1, "type": "urn:miot-spec-v2:property:on:00000006:x:1", "format": "bool", "access": ["read", "write"]}]}]}"#;
        let m = map(&crate::spec::parse("x.json", "x", text).unwrap());
        let keys: Vec<&str> = m.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["state", "switch_state"]);
    }
}
