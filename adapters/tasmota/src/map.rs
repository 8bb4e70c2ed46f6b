//! A Tasmota device on the model: its discovery messages become a [`DeviceDescriptor`] and a
//! [`Mapping`] that reads its `STATE`, `SENSOR` and `RESULT` payloads into feature values and
//! turns commands back into Tasmota commands (`POWER2 ON`, `Dimmer 40`, `CT 250`, `HSBColor1 120`).
//!
//! # Mapping
//!
//! Device: id `tasmota:<mac in lower case>`, name `dn` (else `fn[0]`, else `hn`), manufacturer
//! `Tasmota`, model `md`, firmware `sw`, power source battery when `bat` is 1, else mains.
//! Keys of a device with more than one relay position in use (`rl` 1 or 2) carry the endpoint
//! `relay_<n>` (`state_relay_2`), labelled with the relay's friendly name (`fn`).
//!
//! | Tasmota | feature | conversion |
//! |---|---|---|
//! | `rl` 1 (relay), `rl` 2 without light channels | `state` (on_off) | `POWER<n>`/`POWER` with the `state` words, both ways |
//! | `rl` 2 with `lt_st` ≥ 1 | `state`, `brightness` | `Dimmer` 0-100 = %; TuyaMCU (`ty`) sets with `Dimmer3` |
//! | `lt_st` 2 or 5 | `color_temperature` | `CT` mired ↔ K (1,000,000 / mired), range 153-500 mired (200-380 with SetOption82), sets clamped |
//! | `lt_st` ≥ 3 | `color` | `HSBColor` `h,s,b` → hue, saturation; sets `HSBColor1 <h>`, `HSBColor2 <s>` (brightness stays) |
//! | `lk` 0 and `lt_st` ≥ 4 | two lights: RGB (`Dimmer1`, `color`) and white (`Dimmer2`, `color_temperature`) | |
//! | SetOption68 | a dimmer per PWM channel | `Channel<n>` both ways |
//! | `if` 1 (iFan) | `state` (the light), `fan_mode` off/low/medium/high | `FanSpeed` 0-3 |
//! | `btn` with SetOption73 | `action` events `single` … `penta`, `hold` (data `{"button": n}`) | `{"Button<n>":{"Action":…}}` |
//! | `swc` ≠ -1 (SetOption114), `Switch<n>` in `SENSOR` | `switch_<n>` (bool, other), label `swn` | `ON`/`OFF`; other switch actions are `action` events (data `{"switch": n}`) |
//! | `Wifi.Signal` of `STATE` | `signal_strength` (diagnostic) | dBm |
//! | `ENERGY` `Total`, `Power`, `Voltage`, `Current` | `energy`, `power`, `voltage`, `current` | kWh, W, V, A |
//! | `ENERGY` `Today`, `Yesterday` | `energy_today`, `energy_yesterday` (energy, diagnostic) | kWh |
//! | `ENERGY` `ApparentPower`, `ReactivePower`, `Factor`, `Frequency`, `Period` | other, diagnostic | VA, var, –, Hz, Wh |
//! | an array (a meter with channels) | one feature per entry, `<key>_channel_<n>`, endpoint `channel_<n>` | |
//! | `Temperature`, `DewPoint` | temperature | °C; `TempUnit` F or K converted |
//! | `Humidity`, `Pressure`/`SeaPressure`, `Illuminance`/`Ambient`, `Moisture`, `Battery` | humidity, pressure, illuminance, moisture, battery | %, hPa (`PressureUnit` mmHg, inHg converted), lx |
//! | `CarbonDioxide`/`eCO2`, `TVOC`, `PM2.5`, `PM10` | co2, voc, pm25, pm10 | ppm, ppb, µg/m³ |
//! | `PM1`, `CF*`, `PB*`, `Distance`, `Weight`, `CCT`, `Speed` | other with their unit | µg/m³, ppd, cm, kg, K, `SpeedUnit` |
//! | any other number | other, no unit, key in snake case | |
//!
//! A sensor quantity's key is the quantity alone (`temperature`) when one sensor has it, else
//! with the sensor as endpoint (`temperature_am2301`, `temperature_bme280`); the energy meter
//! keeps the plain keys. Text values (`Id`, `TotalStartTime`) are not features. Shutters
//! (`rl` 3) are not supported yet and are logged as such.

use std::collections::{BTreeMap, BTreeSet};

use hearth_sdk::{
    Access, Capability, Category, Color, DeviceDescriptor, DeviceId, Feature, PowerSource, Value, ValueType,
};
use serde_json::{Map, Value as Json};

use crate::api::{DiscoveryConfig, LightSubtype, RelayType};

/// The coldest color temperature Tasmota lights take, in mired (`CT 153`).
pub const CT_MIN: u32 = 153;
/// The warmest, in mired (`CT 500`).
pub const CT_MAX: u32 = 500;
/// The CT range with SetOption82 (reduced for Alexa).
pub const CT_REDUCED: (u32, u32) = (200, 380);

/// Fan speeds of an iFan (`FanSpeed 0..3`), as `fan_mode` values.
pub const FAN_MODES: [&str; 4] = ["off", "low", "medium", "high"];

/// Button actions (SetOption73), lower case, as `action` events.
pub const BUTTON_ACTIONS: [&str; 6] = ["single", "double", "triple", "quad", "penta", "hold"];

/// Keys of `sn` that are not sensors.
const NOT_SENSORS: [&str; 5] = ["Time", "TempUnit", "PressureUnit", "SpeedUnit", "Epoch"];

/// What the Tasmota discovery offered, readied for decoding and encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// The device as the model describes it.
    pub descriptor: DeviceDescriptor,
    on: String,
    off: String,
    powers: Vec<PowerOut>,
    lights: Vec<LightOut>,
    fan: Option<String>,
    actions: bool,
    switches: Vec<(usize, String)>,
    sensors: Vec<SensorOut>,
    temp_unit: String,
    pressure_unit: String,
    targets: BTreeMap<String, Target>,
    ct_range: (u32, u32),
    /// Why parts of the device are left out (shutters), for the log.
    pub unsupported: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct PowerOut {
    /// 0-based relay index: `POWER<relay + 1>`.
    relay: usize,
    key: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Dim {
    /// `Dimmer`, `Dimmer1`, `Dimmer2` in state; the command may differ (`Dimmer3` on TuyaMCU).
    Dimmer { state: String, command: String },
    /// `Channel<n>` in state and command (SetOption68, one light per PWM channel).
    Channel(usize),
}

impl Dim {
    fn state_key(&self) -> String {
        match self {
            Dim::Dimmer { state, .. } => state.clone(),
            Dim::Channel(n) => format!("Channel{n}"),
        }
    }

    fn command(&self) -> String {
        match self {
            Dim::Dimmer { command, .. } => command.clone(),
            Dim::Channel(n) => format!("Channel{n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LightOut {
    brightness: Option<(String, Dim)>,
    ct: Option<String>,
    color: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Power(usize),
    Brightness(usize),
    Ct(usize),
    Color(usize),
    Fan,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conv {
    Plain,
    Temperature,
    Pressure,
}

#[derive(Debug, Clone, PartialEq)]
struct SensorOut {
    path: Vec<Step>,
    key: String,
    conv: Conv,
}

/// What one payload said, in the model's terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Feature values, in canonical units.
    pub values: BTreeMap<String, Value>,
    /// Momentary events: (`action` value, data such as `{"button": 1}`).
    pub events: Vec<(String, Json)>,
    /// Parts of the payload that could not be read, each saying why.
    pub problems: Vec<String>,
}

/// Tasmota commands for a model command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded {
    /// (command, argument) pairs in the order to run them.
    pub commands: Vec<(String, String)>,
    /// Keys of the `RESULT` payloads that answer them (for the command's context).
    pub expect: Vec<String>,
}

/// A name in snake case: `CarbonDioxide` → `carbon_dioxide`, `DS18B20-1` → `ds18b20_1`,
/// `PB0.3` → `pb0_3`.
pub fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            let prev = i.checked_sub(1).and_then(|p| chars.get(p));
            let next = chars.get(i + 1);
            let boundary = c.is_ascii_uppercase()
                && prev.is_some_and(|p| {
                    p.is_ascii_lowercase() || (p.is_ascii_uppercase() && next.is_some_and(char::is_ascii_lowercase))
                });
            if boundary && !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    if out.is_empty() { "value".to_owned() } else { out }
}

/// How one sensor quantity maps: its key, capability, own unit (for `other`), conversion,
/// category and a readable name.
struct Quantity {
    key: String,
    capability: Capability,
    unit: Option<String>,
    conv: Conv,
    category: Category,
    name: String,
}

fn quantity(sensor: &str, name: &str, speed_unit: &str) -> Quantity {
    use Capability as C;
    let energy = sensor == "ENERGY";
    let q = |key: &str, capability: Capability, unit: Option<&str>, conv: Conv, category: Category| Quantity {
        key: key.to_owned(),
        capability,
        unit: unit.map(str::to_owned),
        conv,
        category,
        name: name.to_owned(),
    };
    let (p, d) = (Category::Primary, Category::Diagnostic);
    match name {
        "Temperature" => q("temperature", C::Temperature, None, Conv::Temperature, p),
        "DewPoint" => q("dew_point", C::Temperature, None, Conv::Temperature, p),
        "Humidity" => q("humidity", C::Humidity, None, Conv::Plain, p),
        "Pressure" => q("pressure", C::Pressure, None, Conv::Pressure, p),
        "SeaPressure" => q("sea_pressure", C::Pressure, None, Conv::Pressure, p),
        "Illuminance" | "Ambient" => q("illuminance", C::Illuminance, None, Conv::Plain, p),
        "CarbonDioxide" => q("co2", C::Co2, None, Conv::Plain, p),
        "eCO2" => q("eco2", C::Co2, None, Conv::Plain, p),
        "TVOC" => q("voc", C::Voc, None, Conv::Plain, p),
        "PM2.5" => q("pm25", C::Pm25, None, Conv::Plain, p),
        "PM10" => q("pm10", C::Pm10, None, Conv::Plain, p),
        "PM1" => q("pm1", C::Other, Some("µg/m³"), Conv::Plain, p),
        "Moisture" => q("moisture", C::Moisture, None, Conv::Plain, p),
        "Battery" => q("battery", C::Battery, None, Conv::Plain, d),
        "Power" => q("power", C::Power, None, Conv::Plain, p),
        "Voltage" => q("voltage", C::Voltage, None, Conv::Plain, p),
        "Current" => q("current", C::Current, None, Conv::Plain, p),
        "Total" if energy => q("energy", C::Energy, None, Conv::Plain, p),
        "Today" if energy => q("energy_today", C::Energy, None, Conv::Plain, d),
        "Yesterday" if energy => q("energy_yesterday", C::Energy, None, Conv::Plain, d),
        "ExportActive" if energy => q("energy_exported", C::Energy, None, Conv::Plain, p),
        "ImportActive" if energy => q("energy_imported", C::Energy, None, Conv::Plain, p),
        "Factor" => q("power_factor", C::Other, None, Conv::Plain, d),
        "ApparentPower" => q("apparent_power", C::Other, Some("VA"), Conv::Plain, d),
        "ReactivePower" => q("reactive_power", C::Other, Some("var"), Conv::Plain, d),
        "Frequency" => q("frequency", C::Other, Some("Hz"), Conv::Plain, d),
        "Period" => q("energy_period", C::Other, Some("Wh"), Conv::Plain, d),
        "Distance" => q("distance", C::Other, Some("cm"), Conv::Plain, p),
        "Weight" => q("weight", C::Other, Some("kg"), Conv::Plain, p),
        "CCT" => q("cct", C::Other, Some("K"), Conv::Plain, p),
        "Speed" => q("speed", C::Other, Some(speed_unit), Conv::Plain, p),
        "CF1" | "CF2.5" | "CF10" => q(&snake(name), C::Other, Some("µg/m³"), Conv::Plain, d),
        "PB0.3" | "PB0.5" | "PB1" | "PB2.5" | "PB5" | "PB10" => q(&snake(name), C::Other, Some("ppd"), Conv::Plain, d),
        _ if name.ends_with("Tariff") => q(&snake(name), C::Other, Some("kWh"), Conv::Plain, d),
        _ => q(&snake(name), C::Other, None, Conv::Plain, p),
    }
}

/// One numeric value of the sensors object, before keys are made unique.
struct Candidate {
    path: Vec<Step>,
    sensor: String,
    quantity: Quantity,
    /// `channel_2` for the second entry of an array, `act` for a nested `Speed.Act`.
    qualifier: Option<String>,
}

fn candidates(sn: &Map<String, Json>) -> Vec<Candidate> {
    let speed_unit = sn.get("SpeedUnit").and_then(Json::as_str).unwrap_or("km/h").to_owned();
    let mut out = Vec::new();
    for (sensor, body) in sn {
        if NOT_SENSORS.contains(&sensor.as_str()) {
            continue;
        }
        let Json::Object(fields) = body else { continue };
        for (name, value) in fields {
            let base = vec![Step::Key(sensor.clone()), Step::Key(name.clone())];
            match value {
                Json::Number(_) => out.push(Candidate {
                    path: base,
                    sensor: sensor.clone(),
                    quantity: quantity(sensor, name, &speed_unit),
                    qualifier: None,
                }),
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if item.is_number() {
                            let mut path = base.clone();
                            path.push(Step::Index(i));
                            out.push(Candidate {
                                path,
                                sensor: sensor.clone(),
                                quantity: quantity(sensor, name, &speed_unit),
                                qualifier: Some(format!("channel_{}", i + 1)),
                            });
                        }
                    }
                }
                Json::Object(nested) => {
                    // `Speed: {Act, Avg}` is a speed, qualified; `BL09XX: {Temperature}` (a
                    // chip inside ENERGY) is a temperature, qualified by the chip.
                    let outer = quantity(sensor, name, &speed_unit);
                    for (sub, item) in nested {
                        if !item.is_number() {
                            continue;
                        }
                        let mut path = base.clone();
                        path.push(Step::Key(sub.clone()));
                        let inner = quantity(sensor, sub, &speed_unit);
                        let (quantity, qualifier) = if outer.capability == Capability::Other
                            && outer.unit.is_none()
                            && (inner.capability != Capability::Other || inner.unit.is_some())
                        {
                            (inner, snake(name))
                        } else {
                            (quantity(sensor, name, &speed_unit), snake(sub))
                        };
                        out.push(Candidate { path, sensor: sensor.clone(), quantity, qualifier: Some(qualifier) });
                    }
                }
                _ => {}
            }
        }
    }
    // By path, so the features come in the same order whichever map serde_json uses.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn switch_number(key: &str) -> Option<usize> {
    key.strip_prefix("Switch").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1)
}

fn button_number(key: &str) -> Option<usize> {
    key.strip_prefix("Button").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n >= 1)
}

/// Collects features with unique keys: a key already taken gets `_2`, `_3`...
#[derive(Default)]
struct Features {
    list: Vec<Feature>,
    taken: BTreeSet<String>,
}

impl Features {
    fn unique(&self, key: &str) -> String {
        if !self.taken.contains(key) {
            return key.to_owned();
        }
        (2..).map(|n| format!("{key}_{n}")).find(|k| !self.taken.contains(k)).unwrap_or_else(|| key.to_owned())
    }

    fn add(&mut self, mut f: Feature) -> String {
        f.key = self.unique(&f.key);
        self.taken.insert(f.key.clone());
        let key = f.key.clone();
        self.list.push(f);
        key
    }
}

fn mired_to_kelvin(mired: f64) -> f64 {
    (1_000_000.0 / mired).round()
}

impl Mapping {
    /// The mapping of a device from its discovery config and, when it sent one, its sensors
    /// (`sn` of the sensors message, or the sensors seen since).
    pub fn new(config: &DiscoveryConfig, sensors: Option<&Map<String, Json>>) -> Mapping {
        let mut features = Features::default();
        let mut targets = BTreeMap::new();
        let mut powers = Vec::new();
        let mut lights = Vec::new();
        let mut unsupported = Vec::new();
        let relays = config.relays();
        let used: Vec<usize> =
            (0..relays.len()).filter(|i| matches!(relays[*i], RelayType::Relay | RelayType::Light)).collect();
        let many = used.len() > 1;
        let endpoint = |i: usize| many.then(|| format!("relay_{}", i + 1));
        let keyed = |base: &str, i: usize| match endpoint(i) {
            Some(ep) => format!("{base}_{ep}"),
            None => base.to_owned(),
        };
        let label = |i: usize| {
            let name = config.friendly_names.get(i).cloned().flatten().filter(|n| !n.trim().is_empty());
            if many { Some(name.unwrap_or_else(|| format!("Relay {}", i + 1))) } else { None }
        };
        let with = |f: Feature, i: usize, what: Option<&str>| {
            let f = match endpoint(i) {
                Some(ep) => f.endpoint(&ep),
                None => f,
            };
            match (label(i), what) {
                (Some(l), Some(w)) => f.label(&format!("{l} {w}")),
                (Some(l), None) => f.label(&l),
                (None, _) => f,
            }
        };

        let subtype = config.light_subtype();
        let ct_range = if config.option("82") { CT_REDUCED } else { (CT_MIN, CT_MAX) };
        let light_relays: Vec<usize> = used.iter().copied().filter(|i| relays[*i] == RelayType::Light).collect();
        let multi_channel = config.option("68");
        let split = config.lk == 0 && subtype >= LightSubtype::Rgbw && !multi_channel;
        let dimmer_cmd = if config.ty == 1 { "Dimmer3" } else { "Dimmer" };
        // Which light relays are lights with channels, and how each is driven.
        let mut light_plan: BTreeMap<usize, (Dim, bool, bool)> = BTreeMap::new();
        if subtype != LightSubtype::None {
            let ifan_light = config.ifan == 1;
            let lights_here: Vec<usize> = light_relays.iter().copied().filter(|i| !(ifan_light && *i == 0)).collect();
            if multi_channel {
                for i in &lights_here {
                    light_plan.insert(*i, (Dim::Channel(i + 1), false, false));
                }
            } else if split {
                if let Some(first) = lights_here.first() {
                    let dim = Dim::Dimmer { state: "Dimmer1".into(), command: "Dimmer1".into() };
                    light_plan.insert(*first, (dim, false, true));
                }
                if let Some(second) = lights_here.get(1) {
                    let dim = Dim::Dimmer { state: "Dimmer2".into(), command: "Dimmer2".into() };
                    light_plan.insert(*second, (dim, subtype == LightSubtype::Rgbcw, false));
                }
            } else if let Some(first) = lights_here.first() {
                let dim = Dim::Dimmer { state: "Dimmer".into(), command: dimmer_cmd.into() };
                light_plan.insert(*first, (dim, subtype.has_ct(), subtype.has_color()));
            }
        }

        for i in used.iter().copied() {
            let on_off = Feature::new(&keyed("state", i), Capability::OnOff, ValueType::Bool, Access::ALL);
            let key = features.add(with(on_off, i, None));
            targets.insert(key.clone(), Target::Power(i));
            powers.push(PowerOut { relay: i, key });
            if let Some((dim, ct, color)) = light_plan.get(&i) {
                let index = lights.len();
                let mut light = LightOut { brightness: None, ct: None, color: None };
                let f = Feature::new(
                    &keyed("brightness", i),
                    Capability::Brightness,
                    ValueType::range(0.0, 100.0, 1.0),
                    Access::ALL,
                );
                let key = features.add(with(f, i, Some("brightness")));
                targets.insert(key.clone(), Target::Brightness(index));
                light.brightness = Some((key, dim.clone()));
                if *ct {
                    let (lo, hi) = ct_range;
                    let f = Feature::new(
                        &keyed("color_temperature", i),
                        Capability::ColorTemperature,
                        ValueType::range(mired_to_kelvin(f64::from(hi)), mired_to_kelvin(f64::from(lo)), 1.0),
                        Access::ALL,
                    );
                    let key = features.add(with(f, i, Some("color temperature")));
                    targets.insert(key.clone(), Target::Ct(index));
                    light.ct = Some(key);
                }
                if *color {
                    let f = Feature::new(&keyed("color", i), Capability::Color, ValueType::Color, Access::ALL);
                    let key = features.add(with(f, i, Some("color")));
                    targets.insert(key.clone(), Target::Color(index));
                    light.color = Some(key);
                }
                lights.push(light);
            }
        }
        let shutters = relays.iter().filter(|r| **r == RelayType::Shutter).count();
        if shutters > 0 {
            unsupported.push(format!("{shutters} shutter relays (shutters are not supported yet)"));
        }

        let fan = (config.ifan == 1).then(|| {
            let f = Feature::new("fan_mode", Capability::FanMode, ValueType::enumeration(FAN_MODES), Access::ALL);
            let key = features.add(f);
            targets.insert(key.clone(), Target::Fan);
            key
        });

        // Switches detached from the relays (SetOption114), and any the sensors show.
        let mut switch_numbers: BTreeSet<usize> =
            config.swc.iter().enumerate().filter(|(_, m)| **m != -1).map(|(i, _)| i + 1).collect();
        if let Some(sn) = sensors {
            switch_numbers.extend(sn.iter().filter(|(_, v)| v.is_string()).filter_map(|(k, _)| switch_number(k)));
        }
        let buttons = config.option("73") && config.btn.contains(&1);
        let mut action_values: Vec<String> = Vec::new();
        if buttons {
            action_values.extend(BUTTON_ACTIONS.iter().map(|s| (*s).to_owned()));
        }
        if !switch_numbers.is_empty() && config.option("114") {
            for a in ["toggle", "hold", "inc_dec", "inv", "clear"] {
                // A button's `hold` and a switch's are the same event.
                if !action_values.iter().any(|v| v == a) {
                    action_values.push(a.to_owned());
                }
            }
        }
        let actions = !action_values.is_empty();
        if actions {
            features.add(Feature::new(
                "action",
                Capability::Action,
                ValueType::Enum { values: action_values },
                Access::EVENT,
            ));
        }
        let mut switches = Vec::new();
        for n in switch_numbers {
            let name = config.swn.get(n - 1).cloned().flatten().unwrap_or_else(|| format!("Switch{n}"));
            let f = Feature::new(&format!("switch_{n}"), Capability::Other, ValueType::Bool, READ_GET).label(&name);
            switches.push((n, features.add(f)));
        }

        // Sensors: a quantity's key alone when only one sensor has it, else with the sensor's
        // name as endpoint (`temperature_am2301`); the energy meter keeps the plain keys.
        let mut sensor_outs = Vec::new();
        let (mut temp_unit, mut pressure_unit) = ("C".to_owned(), "hPa".to_owned());
        if let Some(sn) = sensors {
            temp_unit = sn.get("TempUnit").and_then(Json::as_str).unwrap_or("C").to_owned();
            pressure_unit = sn.get("PressureUnit").and_then(Json::as_str).unwrap_or("hPa").to_owned();
            let found = candidates(sn);
            let plain = |c: &Candidate| match &c.qualifier {
                Some(q) => format!("{}_{q}", c.quantity.key),
                None => c.quantity.key.clone(),
            };
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for c in &found {
                *counts.entry(plain(c)).or_default() += 1;
            }
            for c in found {
                let base = plain(&c);
                let shared = counts.get(&base).copied().unwrap_or(0) > 1 && c.sensor != "ENERGY";
                let key = if shared { format!("{base}_{}", snake(&c.sensor)) } else { base };
                let q = &c.quantity;
                let mut f = Feature::new(&key, q.capability, ValueType::number(), READ_GET).category(q.category);
                if let Some(unit) = &q.unit {
                    f = f.unit(unit);
                }
                if shared {
                    f = f.endpoint(&snake(&c.sensor));
                } else if let Some(channel) = c.qualifier.as_deref().filter(|q| q.starts_with("channel_")) {
                    f = f.endpoint(channel);
                }
                let readable = q.name.clone();
                let label = match &c.qualifier {
                    Some(qual) => format!("{} {readable} {qual}", c.sensor),
                    None => format!("{} {readable}", c.sensor),
                };
                let key = features.add(f.label(&label));
                sensor_outs.push(SensorOut { path: c.path, key, conv: q.conv });
            }
        }

        features.add(
            Feature::new("signal_strength", Capability::SignalStrength, ValueType::number(), READ_GET)
                .category(Category::Diagnostic)
                .label("Wi-Fi signal"),
        );

        let name = [config.dn.clone(), config.friendly_names.first().cloned().flatten(), config.hn.clone()]
            .into_iter()
            .flatten()
            .find(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Tasmota {}", config.mac));
        let mut descriptor =
            DeviceDescriptor::new(DeviceId::new(crate::ADAPTER_ID, &config.native_id()), &name, features.list);
        descriptor.manufacturer = Some("Tasmota".into());
        descriptor.model = config.md.clone().filter(|m| !m.is_empty());
        descriptor.firmware = config.sw.clone().filter(|s| !s.is_empty());
        descriptor.power_source = if config.bat == 1 { PowerSource::Battery } else { PowerSource::Mains };

        Mapping {
            descriptor,
            on: config.on_word().to_owned(),
            off: config.off_word().to_owned(),
            powers,
            lights,
            fan,
            actions,
            switches,
            sensors: sensor_outs,
            temp_unit,
            pressure_unit,
            targets,
            ct_range,
            unsupported,
        }
    }

    /// Whether the device has sensors (then a refresh asks for `STATUS 10`).
    pub fn has_sensors(&self) -> bool {
        !self.sensors.is_empty() || !self.switches.is_empty()
    }

    /// Whether `sn` (a `SENSOR` payload) holds sensor values this mapping does not know.
    pub fn misses_sensors(&self, sn: &Map<String, Json>) -> bool {
        let known: BTreeSet<&Vec<Step>> = self.sensors.iter().map(|s| &s.path).collect();
        candidates(sn).iter().any(|c| !known.contains(&c.path))
            || sn
                .iter()
                .filter(|(_, v)| v.is_string())
                .filter_map(|(k, _)| switch_number(k))
                .any(|n| !self.switches.iter().any(|(m, _)| *m == n))
    }

    fn power_value(&self, key: &str, v: &Json, out: &mut Decoded) -> Option<Value> {
        match v.as_str() {
            Some(s) if s == self.on || s.eq_ignore_ascii_case("ON") => Some(Value::Bool(true)),
            Some(s) if s == self.off || s.eq_ignore_ascii_case("OFF") => Some(Value::Bool(false)),
            _ => {
                out.problems.push(format!("`{key}` is {v}, neither {} nor {}", self.on, self.off));
                None
            }
        }
    }

    /// Reads a `STATE`, `RESULT` or `StatusSTS` object: power, dimmer, color, color
    /// temperature, fan speed, Wi-Fi signal, button and switch actions.
    pub fn decode_state(&self, obj: &Map<String, Json>, out: &mut Decoded) {
        for p in &self.powers {
            let numbered = format!("POWER{}", p.relay + 1);
            let v = obj.get(&numbered).map(|v| (numbered.as_str(), v));
            let v = v.or_else(|| (p.relay == 0).then(|| obj.get("POWER").map(|v| ("POWER", v))).flatten());
            if let Some((name, v)) = v
                && let Some(value) = self.power_value(name, v, out)
            {
                out.values.insert(p.key.clone(), value);
            }
        }
        for light in &self.lights {
            if let Some((key, dim)) = &light.brightness
                && let Some(v) = obj.get(&dim.state_key())
            {
                match v.as_f64() {
                    Some(n) if (0.0..=100.0).contains(&n) => {
                        out.values.insert(key.clone(), Value::Number(n.round()));
                    }
                    _ => out.problems.push(format!("`{}` is {v}, not a number from 0 to 100", dim.state_key())),
                }
            }
            if let Some(key) = &light.ct
                && let Some(v) = obj.get("CT")
            {
                match v.as_f64() {
                    Some(m) if m > 0.0 => {
                        out.values.insert(key.clone(), Value::Number(mired_to_kelvin(m)));
                    }
                    _ => out.problems.push(format!("`CT` is {v}, not a color temperature in mired")),
                }
            }
            if let Some(key) = &light.color
                && let Some(v) = obj.get("HSBColor")
            {
                match v.as_str().and_then(parse_hsb) {
                    Some((hue, saturation, _)) => {
                        out.values.insert(key.clone(), Value::Color(Color { hue, saturation }));
                    }
                    None => out.problems.push(format!("`HSBColor` is {v}, not \"hue,saturation,brightness\"")),
                }
            }
        }
        if let Some(key) = &self.fan
            && let Some(v) = obj.get("FanSpeed")
        {
            match v.as_u64().and_then(|n| FAN_MODES.get(n as usize)) {
                Some(mode) => {
                    out.values.insert(key.clone(), Value::Text((*mode).to_owned()));
                }
                None => out.problems.push(format!("`FanSpeed` is {v}, not 0 to 3")),
            }
        }
        if let Some(signal) = obj.get("Wifi").and_then(|w| w.get("Signal")).and_then(Json::as_f64) {
            out.values.insert("signal_strength".into(), Value::Number(signal));
        }
        for (k, v) in obj {
            let action = v.get("Action").and_then(Json::as_str);
            if let (Some(n), Some(action)) = (button_number(k), action) {
                if self.actions {
                    out.events.push((action.to_ascii_lowercase(), serde_json::json!({"button": n})));
                }
            } else if let (Some(n), Some(action)) = (switch_number(k), action) {
                let feature = self.switches.iter().find(|(m, _)| *m == n).map(|(_, key)| key);
                match (feature, action) {
                    (Some(key), a) if a == self.on || a == self.off => {
                        out.values.insert(key.clone(), Value::Bool(a == self.on));
                    }
                    _ if self.actions => {
                        out.events.push((action.to_ascii_lowercase(), serde_json::json!({"switch": n})));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads a `SENSOR` or `StatusSNS` object: every sensor value, in canonical units, and the
    /// state of detached switches.
    pub fn decode_sensors(&self, obj: &Map<String, Json>, out: &mut Decoded) {
        let temp_unit = obj.get("TempUnit").and_then(Json::as_str).unwrap_or(&self.temp_unit);
        let pressure_unit = obj.get("PressureUnit").and_then(Json::as_str).unwrap_or(&self.pressure_unit);
        for s in &self.sensors {
            let Some(v) = lookup(obj, &s.path) else { continue };
            let Some(n) = v.as_f64() else {
                out.problems.push(format!("`{}` is {v}, not a number", path_text(&s.path)));
                continue;
            };
            let converted = match s.conv {
                Conv::Plain => Some(n),
                Conv::Temperature => match temp_unit {
                    "C" => Some(n),
                    "F" => Some(round2((n - 32.0) * 5.0 / 9.0)),
                    "K" => Some(round2(n - 273.15)),
                    other => {
                        out.problems.push(format!("temperature unit `{other}` is not C, F or K"));
                        None
                    }
                },
                Conv::Pressure => match pressure_unit {
                    "hPa" | "mbar" => Some(n),
                    "mmHg" => Some(round2(n * 1.333_224)),
                    "inHg" => Some(round2(n * 33.863_886)),
                    other => {
                        out.problems.push(format!("pressure unit `{other}` is not hPa, mmHg or inHg"));
                        None
                    }
                },
            };
            if let Some(n) = converted {
                out.values.insert(s.key.clone(), Value::Number(n));
            }
        }
        for (n, key) in &self.switches {
            if let Some(v) = obj.get(&format!("Switch{n}")) {
                match v.as_str() {
                    Some(s) if s == self.on || s.eq_ignore_ascii_case("ON") => {
                        out.values.insert(key.clone(), Value::Bool(true));
                    }
                    Some(s) if s == self.off || s.eq_ignore_ascii_case("OFF") => {
                        out.values.insert(key.clone(), Value::Bool(false));
                    }
                    _ => out.problems.push(format!("`Switch{n}` is {v}, neither {} nor {}", self.on, self.off)),
                }
            }
        }
    }

    /// Reads `stat/<topic>/POWER<n>` (plain `ON`/`OFF`); `relay` is 0-based.
    pub fn decode_power(&self, relay: usize, text: &str, out: &mut Decoded) {
        let Some(p) = self.powers.iter().find(|p| p.relay == relay) else {
            out.problems.push(format!("the device has no relay {}", relay + 1));
            return;
        };
        if let Some(value) = self.power_value(&format!("POWER{}", relay + 1), &Json::String(text.to_owned()), out) {
            out.values.insert(p.key.clone(), value);
        }
    }

    /// The Tasmota commands that set `set` (values already validated against the features).
    /// Power on goes first and power off last, so the light ends as asked.
    pub fn encode(&self, set: &BTreeMap<String, Value>) -> Result<Encoded, String> {
        // In the order they run: power on, color, color temperature, dimmer, fan, power off.
        let mut slots: [Encoded; 6] = Default::default();
        for (key, value) in set {
            let target = self.targets.get(key).ok_or_else(|| format!("the device has no settable feature `{key}`"))?;
            let wrong = |what: &str| format!("feature `{key}` takes {what}, not {value}");
            let (slot, commands, expect): (usize, Vec<(String, String)>, String) = match *target {
                Target::Power(relay) => {
                    let on = value.as_bool().ok_or_else(|| wrong("true or false"))?;
                    let word = if on { &self.on } else { &self.off };
                    let command = format!("POWER{}", relay + 1);
                    (if on { 0 } else { 5 }, vec![(command.clone(), word.clone())], command)
                }
                Target::Color(_) => {
                    let Value::Color(c) = value else { return Err(wrong("a color")) };
                    let hue = (c.hue.round() as i64).rem_euclid(360);
                    let saturation = c.saturation.round().clamp(0.0, 100.0) as u32;
                    // Hue and saturation alone: the brightness stays the light's own.
                    let commands = vec![
                        ("HSBColor1".to_owned(), hue.to_string()),
                        ("HSBColor2".to_owned(), saturation.to_string()),
                    ];
                    (1, commands, "HSBColor".to_owned())
                }
                Target::Ct(_) => {
                    let kelvin = value.as_f64().filter(|k| *k > 0.0).ok_or_else(|| wrong("a number of kelvin"))?;
                    let (lo, hi) = self.ct_range;
                    let mired = (1_000_000.0 / kelvin).round().clamp(f64::from(lo), f64::from(hi)) as u32;
                    (2, vec![("CT".to_owned(), mired.to_string())], "CT".to_owned())
                }
                Target::Brightness(light) => {
                    let n = value.as_f64().ok_or_else(|| wrong("a number"))?;
                    let Some((_, dim)) = self.lights.get(light).and_then(|l| l.brightness.as_ref()) else {
                        return Err(format!("feature `{key}` has no dimmer"));
                    };
                    let level = n.round().clamp(0.0, 100.0) as u32;
                    (3, vec![(dim.command(), level.to_string())], dim.state_key())
                }
                Target::Fan => {
                    let mode = value.as_str().ok_or_else(|| wrong("one of off, low, medium, high"))?;
                    let n =
                        FAN_MODES.iter().position(|m| *m == mode).ok_or_else(|| wrong("off, low, medium or high"))?;
                    (4, vec![("FanSpeed".to_owned(), n.to_string())], "FanSpeed".to_owned())
                }
            };
            slots[slot].commands.extend(commands);
            slots[slot].expect.push(expect);
        }
        let mut out = Encoded::default();
        for slot in slots {
            out.commands.extend(slot.commands);
            out.expect.extend(slot.expect);
        }
        Ok(out)
    }

    /// Whether `key` is answered by `STATE` (power, lights, fan, signal) rather than by
    /// `STATUS 10` (sensors, switches).
    pub fn is_state_feature(&self, key: &str) -> bool {
        self.targets.contains_key(key) || key == "signal_strength"
    }
}

/// Observed, and readable on request (sensors, switches, the signal).
const READ_GET: Access = Access { observe: true, set: false, get: true };

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The value at `path` in a sensors object.
fn lookup<'a>(obj: &'a Map<String, Json>, path: &[Step]) -> Option<&'a Json> {
    let (first, rest) = path.split_first()?;
    let Step::Key(first) = first else { return None };
    let mut v = obj.get(first)?;
    for step in rest {
        v = match step {
            Step::Key(k) => v.get(k)?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

fn path_text(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// `"120,100,50"` → hue 120°, saturation 100 %, brightness 50 %.
fn parse_hsb(s: &str) -> Option<(f64, f64, f64)> {
    let mut parts = s.split(',').map(|p| p.trim().parse::<f64>().ok());
    let (h, sat, b) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || !(0.0..=360.0).contains(&h) || !(0.0..=100.0).contains(&sat) {
        return None;
    }
    Some((h, sat, b))
}

#[cfg(test)]
mod tests;
