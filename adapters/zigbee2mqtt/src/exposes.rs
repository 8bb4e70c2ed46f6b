//! zigbee2mqtt exposes to features of the one model, and values both ways.
//!
//! Every exposed property becomes exactly one feature, keyed by its zigbee2mqtt property
//! (`brightness`, `state_l2`), so nothing is dropped. The capability comes from the property's
//! name, type and unit; values convert to the capability's canonical unit at the edge
//! (brightness 0-254 to %, mired to K, mV to V, Wh to kWh ...) and back for `/set`. A property
//! that fits no capability, or whose unit cannot be converted, keeps its own unit as `other`.
//! `action` and the `action_*` properties that come with it are events, never state.

use std::collections::BTreeMap;

use hearth_sdk::{Access, Capability, Category, Color, Feature, Value, ValueType};
use serde_json::{Value as Json, json};

use crate::api::{ACCESS_GET, ACCESS_SET, ACCESS_STATE, Expose, ItemType};

/// How a property's raw value converts to and from the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Convert {
    /// Numbers, text and enum values as they are.
    Identity,
    /// A number times `factor` (mV to V: 0.001); divided on the way back.
    Scale(f64),
    /// Degrees Fahrenheit to Celsius.
    Fahrenheit,
    /// Brightness `0..=max` to 0-100 %.
    Brightness {
        /// The raw maximum (254 for most lights).
        max: f64,
    },
    /// Mired to kelvin (1,000,000 / mired), within the device's raw range.
    Mired {
        /// Lowest raw value.
        min: Option<f64>,
        /// Highest raw value.
        max: Option<f64>,
    },
    /// A binary's raw values to `true`/`false`.
    Binary {
        /// Raw value for true.
        on: Json,
        /// Raw value for false.
        off: Json,
    },
    /// Raw enum values to the model's (`OPEN` to `open`).
    Enum(Vec<(Json, String)>),
    /// `{x, y}` or `{hue, saturation}` to a color; sets go as hue/saturation when the device
    /// exposes `color_hs`, else as xy.
    Color {
        /// The device takes hue/saturation.
        hs: bool,
    },
    /// Lists and objects as JSON.
    Json,
}

/// One exposed property and how it maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The zigbee2mqtt property (its key in state and `/set` payloads).
    pub property: String,
    /// The feature key (the same text).
    pub feature: String,
    /// Momentary: fired as an event, never kept in state.
    pub event: bool,
    /// Value conversion.
    pub convert: Convert,
    /// Presets: raw value, name, and whether the value is a number of the model. A command may
    /// send any preset's name; a preset that is no number of the model (zigbee2mqtt's `previous`
    /// = 65535 for `color_temp_startup`) is also reported as its name.
    pub named: Vec<(f64, String, bool)>,
}

/// A device's exposes mapped onto the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    /// The features, keys unique.
    pub features: Vec<Feature>,
    /// Every exposed property.
    pub properties: Vec<Property>,
    /// Exposes this build does not understand (kept as `other` object features when they name
    /// a property): one line each, for the device's diagnostics and the log.
    pub unsupported: Vec<String>,
}

impl Mapping {
    /// The mapping of a property.
    pub fn property(&self, property: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.property == property)
    }

    /// The feature of a key.
    pub fn feature(&self, key: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.key == key)
    }
}

/// Maps a device's exposes.
pub fn map_exposes(exposes: &[Expose]) -> Mapping {
    let mut m = Mapping::default();
    for e in exposes {
        walk(e, None, None, &mut m);
    }
    m
}

const SPECIFIC: &[&str] = &["light", "switch", "fan", "cover", "lock", "climate"];

fn walk(e: &Expose, parent: Option<&str>, endpoint: Option<&str>, m: &mut Mapping) {
    let endpoint = e.endpoint.as_deref().or(endpoint);
    if SPECIFIC.contains(&e.kind.as_str()) {
        let has_hs = e.features.iter().flatten().any(|f| f.name.as_deref() == Some("color_hs"));
        for f in e.features.iter().flatten() {
            if f.kind == "composite" && f.property.as_deref() == Some("color") {
                add_color(f, has_hs, m);
            } else {
                walk(f, Some(&e.kind), endpoint, m);
            }
        }
        return;
    }
    let Some(property) = e.property.clone().or_else(|| e.name.clone()) else {
        m.unsupported.push(format!("a `{}` expose without a property or name", e.kind));
        return;
    };
    if m.property(&property).is_some() {
        return; // exposed twice (e.g. color_xy and color_hs): one feature
    }
    let base = base_name(e, &property);
    let mapped = match e.kind.as_str() {
        "binary" => Some(binary(e, &base, parent)),
        "numeric" => Some(numeric(e, &base)),
        "enum" => Some(enumeration(e, &base, parent)),
        "text" => Some((Capability::Other, ValueType::Text { max_length: None }, Convert::Identity, None)),
        "composite" if property == "color" || base.starts_with("color_xy") || base.starts_with("color_hs") => {
            add_color(e, e.name.as_deref() == Some("color_hs"), m);
            return;
        }
        "composite" => Some((Capability::Other, ValueType::Object, Convert::Json, None)),
        "list" => Some((Capability::Other, ValueType::List, Convert::Json, None)),
        _ => None,
    };
    let (capability, value_type, convert, unit) = mapped.unwrap_or_else(|| {
        m.unsupported.push(format!("expose type `{}` of property `{property}` is not supported yet", e.kind));
        (Capability::Other, ValueType::Object, Convert::Json, None)
    });
    let event = is_event(&base);
    let mut feature = Feature::new(&property, capability, value_type, access(e));
    if capability == Capability::Other {
        feature.unit = unit.or_else(|| e.unit.clone());
    }
    feature.category = category(e);
    feature.label = e.label.clone();
    feature.endpoint = endpoint.map(str::to_owned);
    if event {
        // Momentary: events, never state (MODEL.md, Access).
        feature.access = Access { observe: false, set: feature.access.set, get: false };
    }
    let mut named = Vec::new();
    if let (Some(presets), ValueType::Number { min, max, .. }) = (&e.presets, &feature.value_type) {
        for p in presets {
            let Some(raw) = p.value.as_f64() else { continue };
            let value = to_model(
                &Property {
                    property: String::new(),
                    feature: String::new(),
                    event: false,
                    convert: convert.clone(),
                    named: Vec::new(),
                },
                &p.value,
            )
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && min.is_none_or(|lo| *v >= lo) && max.is_none_or(|hi| *v <= hi));
            named.push((raw, p.name.clone(), value.is_some()));
            feature.presets.push(hearth_sdk::Preset {
                name: p.name.clone(),
                value,
                description: p.description.clone(),
            });
        }
    }
    m.features.push(feature);
    m.properties.push(Property { feature: property.clone(), property, event, convert, named });
}

/// The property without its endpoint suffix (`state_l2` with endpoint `l2` is `state`).
fn base_name(e: &Expose, property: &str) -> String {
    let name = e.name.clone().unwrap_or_else(|| property.to_owned());
    match &e.endpoint {
        Some(ep) => name.strip_suffix(&format!("_{ep}")).map_or(name.clone(), str::to_owned),
        None => name,
    }
}

fn is_event(base: &str) -> bool {
    base == "action" || base == "click" || base.starts_with("action_")
}

fn access(e: &Expose) -> Access {
    let bits = e.access_bits();
    Access { observe: bits & ACCESS_STATE != 0, set: bits & ACCESS_SET != 0, get: bits & ACCESS_GET != 0 }
}

fn category(e: &Expose) -> Category {
    match e.category.as_deref() {
        Some("config") => Category::Config,
        Some("diagnostic") => Category::Diagnostic,
        _ if matches!(e.name.as_deref(), Some("linkquality")) => Category::Diagnostic,
        _ => Category::Primary,
    }
}

type Mapped = (Capability, ValueType, Convert, Option<String>);

fn binary(e: &Expose, base: &str, parent: Option<&str>) -> Mapped {
    let capability = match (base, parent) {
        ("state", Some("lock")) => Capability::Lock,
        ("state", _) => Capability::OnOff,
        ("contact", _) => Capability::Contact,
        ("occupancy" | "presence" | "motion", _) => Capability::Occupancy,
        ("water_leak", _) => Capability::WaterLeak,
        ("smoke", _) => Capability::Smoke,
        ("gas", _) => Capability::Gas,
        ("carbon_monoxide", _) => Capability::CarbonMonoxide,
        ("tamper", _) => Capability::Tamper,
        ("vibration", _) => Capability::Vibration,
        ("battery_low", _) => Capability::BatteryLow,
        _ => Capability::Other,
    };
    // zigbee2mqtt's `contact` is true when closed but declares value_on = false (on = alarm);
    // the model's contact is true when closed too, so it is taken as it is.
    let (on, off) = if capability == Capability::Contact {
        (Json::Bool(true), Json::Bool(false))
    } else {
        (e.value_on.clone().unwrap_or(Json::Bool(true)), e.value_off.clone().unwrap_or(Json::Bool(false)))
    };
    (capability, ValueType::Bool, Convert::Binary { on, off }, None)
}

/// A unit's conversion to a canonical unit: (canonical unit, conversion). Device definitions
/// spell units many ways (`sec`, `Seconds`, `Hr`, `℃`, `lux`); all the spellings in
/// zigbee-herdsman-converters that mean a canonical unit are here.
fn unit_conversion(unit: &str) -> Option<(&'static str, Convert)> {
    Some(match unit.trim() {
        "°C" | "C" | "ºC" | "℃" => ("°C", Convert::Identity),
        "°F" | "F" | "℉" => ("°C", Convert::Fahrenheit),
        "%" => ("%", Convert::Identity),
        "hPa" | "mbar" => ("hPa", Convert::Identity),
        "kPa" => ("hPa", Convert::Scale(10.0)),
        "Pa" => ("hPa", Convert::Scale(0.01)),
        "bar" => ("hPa", Convert::Scale(1000.0)),
        "psi" => ("hPa", Convert::Scale(68.947_572_93)),
        "lx" | "lux" | "Lx" => ("lx", Convert::Identity),
        "W" | "w" | "watt" => ("W", Convert::Identity),
        "kW" => ("W", Convert::Scale(1000.0)),
        "kWh" => ("kWh", Convert::Identity),
        "Wh" => ("kWh", Convert::Scale(0.001)),
        "V" | "Volt" | "volt" => ("V", Convert::Identity),
        "mV" => ("V", Convert::Scale(0.001)),
        "A" => ("A", Convert::Identity),
        "mA" => ("A", Convert::Scale(0.001)),
        "ppm" => ("ppm", Convert::Identity),
        "ppb" => ("ppb", Convert::Identity),
        "µg/m³" | "μg/m³" | "ug/m3" => ("µg/m³", Convert::Identity),
        "mg/m³" => ("mg/m³", Convert::Identity),
        "dBm" => ("dBm", Convert::Identity),
        "s" | "sec" | "sec." | "Sec" | "seconds" | "Seconds" | "S" => ("s", Convert::Identity),
        "ms" => ("s", Convert::Scale(0.001)),
        "10 ms" => ("s", Convert::Scale(0.01)),
        "10s" => ("s", Convert::Scale(10.0)),
        "min" | "min." | "minute" | "minutes" => ("s", Convert::Scale(60.0)),
        "h" | "H" | "Hr" | "hour" | "hours" | "Hours" => ("s", Convert::Scale(3600.0)),
        "d" | "day" | "days" | "Day" => ("s", Convert::Scale(86_400.0)),
        "K" => ("K", Convert::Identity),
        _ => return None,
    })
}

/// Names that count a clock position (`start_hour = 6`), not a duration, despite a time unit.
fn is_clock_field(base: &str) -> bool {
    ["hour", "minute", "month", "year", "day", "_h", "_m"].iter().any(|s| base.ends_with(s))
}

/// A property name without a phase or channel suffix (`power_phase_b`, `voltage_a`, `energy_l2`).
fn without_phase(base: &str) -> &str {
    for suffix in ["_phase_a", "_phase_b", "_phase_c", "_a", "_b", "_c", "_l1", "_l2", "_l3"] {
        if let Some(stem) = base.strip_suffix(suffix) {
            return stem;
        }
    }
    base
}

/// The capability a numeric property means, by its name.
fn numeric_capability(base: &str) -> Option<Capability> {
    use Capability as C;
    Some(match base {
        "brightness" | "brightness_white" | "brightness_rgb" => C::Brightness,
        "color_temp" | "color_temp_startup" => C::ColorTemperature,
        "temperature"
        | "local_temperature"
        | "device_temperature"
        | "soil_temperature"
        | "external_temperature"
        | "temperature_probe" => C::Temperature,
        "occupied_heating_setpoint"
        | "current_heating_setpoint"
        | "unoccupied_heating_setpoint"
        | "occupied_cooling_setpoint"
        | "unoccupied_cooling_setpoint" => C::Setpoint,
        "humidity" => C::Humidity,
        "soil_moisture" | "moisture" => C::Moisture,
        "pressure" => C::Pressure,
        "illuminance" | "illuminance_lux" => C::Illuminance,
        "battery" => C::Battery,
        "voltage" | "battery_voltage" | "voltage_phase_b" | "voltage_phase_c" => C::Voltage,
        "power" | "active_power" | "power_phase_b" | "power_phase_c" => C::Power,
        "energy" | "produced_energy" => C::Energy,
        "current" | "current_phase_b" | "current_phase_c" => C::Current,
        "co2" | "eco2" => C::Co2,
        "pm25" | "pm2_5" => C::Pm25,
        "pm10" => C::Pm10,
        "voc" | "voc_index" => C::Voc,
        "formaldehyd" | "formaldehyde" | "hcho" => C::Formaldehyde,
        "position" => C::CoverPosition,
        "tilt" => C::Tilt,
        "linkquality" => C::LinkQuality,
        "rssi" => C::SignalStrength,
        "fan_speed" => C::FanSpeed,
        _ => return None,
    })
}

fn scaled(v: Option<f64>, c: &Convert) -> Option<f64> {
    let v = v?;
    Some(match c {
        Convert::Scale(f) => v * f,
        Convert::Fahrenheit => (v - 32.0) * 5.0 / 9.0,
        _ => v,
    })
}

fn numeric(e: &Expose, base: &str) -> Mapped {
    let unit = e.unit.as_deref();
    let capability = numeric_capability(base).or_else(|| numeric_capability(without_phase(base)));
    match capability {
        Some(Capability::Brightness) if unit.is_none() || unit == Some("%") => {
            let max = if unit == Some("%") { 100.0 } else { e.value_max.unwrap_or(254.0) };
            let vt = ValueType::range(0.0, 100.0, 1.0);
            return (Capability::Brightness, vt, Convert::Brightness { max }, None);
        }
        Some(Capability::ColorTemperature) if unit.is_none() || unit == Some("mired") => {
            let to_k = |m: f64| (1_000_000.0 / m).round();
            let min = e.value_max.filter(|v| *v > 0.0).map(to_k);
            let max = e.value_min.filter(|v| *v > 0.0).map(to_k);
            let vt = ValueType::Number { min, max, step: Some(1.0) };
            return (Capability::ColorTemperature, vt, Convert::Mired { min: e.value_min, max: e.value_max }, None);
        }
        Some(Capability::LinkQuality) => {
            let vt = ValueType::Number { min: e.value_min, max: e.value_max, step: e.value_step };
            return (Capability::LinkQuality, vt, Convert::Identity, None);
        }
        _ => {}
    }
    let conversion = unit.and_then(unit_conversion);
    let fits = |cap: Capability| match (cap.canonical_unit(), &conversion) {
        (Some(canonical), Some((to, _))) => canonical == *to,
        (None, _) => false,
        (Some(_), None) => unit.is_none() && matches!(cap, Capability::Battery | Capability::Humidity),
    };
    let (capability, convert) = match capability {
        Some(cap) if fits(cap) => (cap, conversion.map_or(Convert::Identity, |(_, c)| c)),
        // A duration in any time unit becomes seconds.
        _ if conversion.as_ref().is_some_and(|(to, _)| *to == "s") && !is_clock_field(base) => {
            (Capability::Duration, conversion.map_or(Convert::Identity, |(_, c)| c))
        }
        _ => (Capability::Other, Convert::Identity),
    };
    let step = match (&convert, e.value_step) {
        (Convert::Scale(f), Some(s)) => Some(s * f),
        (Convert::Fahrenheit, Some(s)) => Some(s * 5.0 / 9.0),
        (_, s) => s,
    };
    let (lo, hi) = (scaled(e.value_min, &convert), scaled(e.value_max, &convert));
    let vt = ValueType::Number { min: lo, max: hi, step };
    (capability, vt, convert, None)
}

fn enumeration(e: &Expose, base: &str, parent: Option<&str>) -> Mapped {
    let raw: Vec<Json> = e.values.clone().unwrap_or_default();
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let capability = match (base, parent) {
        ("action" | "click", _) => Capability::Action,
        ("state", Some("cover")) => Capability::CoverState,
        ("state", Some("lock")) | ("lock_state", _) => Capability::Lock,
        ("system_mode", _) => Capability::HvacMode,
        ("running_state", _) => Capability::HvacAction,
        ("fan_mode", _) => Capability::FanMode,
        ("effect", _) => Capability::Effect,
        _ => Capability::Other,
    };
    let pairs: Vec<(Json, String)> = raw
        .iter()
        .map(|v| {
            let t = text(v);
            let model = if capability == Capability::CoverState { t.to_lowercase() } else { t };
            (v.clone(), model)
        })
        .collect();
    let values: Vec<String> = pairs.iter().map(|(_, m)| m.clone()).collect();
    let identity = pairs.iter().all(|(r, m)| r.as_str() == Some(m.as_str()));
    let convert = if identity { Convert::Identity } else { Convert::Enum(pairs) };
    (capability, ValueType::Enum { values }, convert, None)
}

fn add_color(e: &Expose, hs: bool, m: &mut Mapping) {
    let property = e.property.clone().unwrap_or_else(|| "color".into());
    if let Some(p) = m.properties.iter_mut().find(|p| p.property == property) {
        if hs {
            p.convert = Convert::Color { hs: true };
        }
        return;
    }
    let mut feature = Feature::new(&property, Capability::Color, ValueType::Color, access(e));
    feature.label = e.label.clone();
    feature.endpoint = e.endpoint.clone();
    m.features.push(feature);
    m.properties.push(Property {
        feature: property.clone(),
        property,
        event: false,
        convert: Convert::Color { hs },
        named: Vec::new(),
    });
}

fn round_to(v: f64, step: f64) -> f64 {
    (v / step).round() * step
}

/// A raw value from a state payload to the model's value; `None` when it does not fit (logged by
/// the caller) or means nothing (an empty `action`).
pub fn to_model(p: &Property, raw: &Json) -> Option<Value> {
    if let Some(n) = raw.as_f64()
        && let Some((_, name, _)) = p.named.iter().find(|(r, _, number)| *r == n && !number)
    {
        return Some(Value::Text(name.clone()));
    }
    match (&p.convert, raw) {
        (_, Json::Null) => None,
        (Convert::Identity, Json::Number(n)) => n.as_f64().map(Value::Number),
        (Convert::Identity, Json::String(s)) if p.event && s.is_empty() => None,
        (Convert::Identity, Json::String(s)) => Some(Value::Text(s.clone())),
        (Convert::Identity, Json::Bool(b)) => Some(Value::Bool(*b)),
        (Convert::Identity | Convert::Json, other) => serde_json::from_value(other.clone()).ok(),
        (Convert::Scale(f), Json::Number(n)) => n.as_f64().map(|v| Value::Number(round_to(v * f, 1e-6))),
        (Convert::Fahrenheit, Json::Number(n)) => {
            n.as_f64().map(|v| Value::Number(round_to((v - 32.0) * 5.0 / 9.0, 0.01)))
        }
        (Convert::Brightness { max }, Json::Number(n)) => {
            n.as_f64().map(|v| Value::Number((v / max * 100.0).round().clamp(0.0, 100.0)))
        }
        (Convert::Mired { .. }, Json::Number(n)) => {
            n.as_f64().filter(|v| *v > 0.0).map(|v| Value::Number((1_000_000.0 / v).round()))
        }
        (Convert::Binary { on, off }, v) => {
            if v == on {
                Some(Value::Bool(true))
            } else if v == off {
                Some(Value::Bool(false))
            } else {
                None
            }
        }
        (Convert::Enum(pairs), v) => pairs.iter().find(|(r, _)| r == v).map(|(_, m)| Value::Text(m.clone())),
        (Convert::Color { .. }, Json::Object(o)) => color_from(o),
        _ => None,
    }
}

fn color_from(o: &serde_json::Map<String, Json>) -> Option<Value> {
    let num = |k: &str| o.get(k).and_then(Json::as_f64);
    if let (Some(h), Some(s)) = (num("hue").or(num("h")), num("saturation").or(num("s"))) {
        return Some(Value::Color(Color { hue: h.clamp(0.0, 360.0), saturation: s.clamp(0.0, 100.0) }));
    }
    let (x, y) = (num("x")?, num("y")?);
    let (r, g, b) = xy_to_rgb(x, y);
    Some(Value::Color(Color::from_rgb(r, g, b)))
}

/// CIE 1931 xy (at full brightness) to sRGB.
pub fn xy_to_rgb(x: f64, y: f64) -> (u8, u8, u8) {
    if y <= 0.0 {
        return (255, 255, 255);
    }
    let z = 1.0 - x - y;
    let (cx, cy, cz) = (x / y, 1.0, z / y);
    let r = cx * 3.2406 - cy * 1.5372 - cz * 0.4986;
    let g = -cx * 0.9689 + cy * 1.8758 + cz * 0.0415;
    let b = cx * 0.0557 - cy * 0.2040 + cz * 1.0570;
    let max = r.max(g).max(b).max(1e-9);
    let gamma = |c: f64| {
        let c = (c / max).max(0.0);
        let c = if c <= 0.003_130_8 { 12.92 * c } else { 1.055 * c.powf(1.0 / 2.4) - 0.055 };
        (c * 255.0).round().clamp(0.0, 255.0) as u8
    };
    (gamma(r), gamma(g), gamma(b))
}

/// sRGB to CIE 1931 xy.
pub fn rgb_to_xy(r: u8, g: u8, b: u8) -> (f64, f64) {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let (r, g, b) = (lin(r), lin(g), lin(b));
    let x = r * 0.4124 + g * 0.3576 + b * 0.1805;
    let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
    let z = r * 0.0193 + g * 0.1192 + b * 0.9505;
    let sum = x + y + z;
    if sum <= 0.0 { (0.3127, 0.3290) } else { (round_to(x / sum, 1e-4), round_to(y / sum, 1e-4)) }
}

/// A model value to the raw value for a `/set` payload.
pub fn to_raw(p: &Property, v: &Value) -> Option<Json> {
    if let Value::Text(name) = v
        && let Some((raw, _, _)) = p.named.iter().find(|(_, n, _)| n == name)
    {
        return Some(json!(raw));
    }
    Some(match (&p.convert, v) {
        (Convert::Identity | Convert::Json, v) => serde_json::to_value(v).ok()?,
        (Convert::Scale(f), Value::Number(n)) => json!(round_to(n / f, 1e-6)),
        (Convert::Fahrenheit, Value::Number(n)) => json!(round_to(n * 9.0 / 5.0 + 32.0, 0.01)),
        (Convert::Brightness { max }, Value::Number(n)) => json!((n / 100.0 * max).round()),
        (Convert::Mired { min, max }, Value::Number(k)) if *k > 0.0 => {
            let mut m = (1_000_000.0 / k).round();
            if let Some(lo) = min {
                m = m.max(*lo);
            }
            if let Some(hi) = max {
                m = m.min(*hi);
            }
            json!(m)
        }
        (Convert::Binary { on, off }, Value::Bool(b)) => {
            if *b {
                on.clone()
            } else {
                off.clone()
            }
        }
        (Convert::Enum(pairs), Value::Text(t)) => pairs.iter().find(|(_, m)| m == t)?.0.clone(),
        (Convert::Color { hs: true }, Value::Color(c)) => json!({"hue": c.hue, "saturation": c.saturation}),
        (Convert::Color { hs: false }, Value::Color(c)) => {
            let (r, g, b) = c.to_rgb();
            let (x, y) = rgb_to_xy(r, g, b);
            json!({"x": x, "y": y})
        }
        _ => return None,
    })
}

/// A state payload to model values and events: `(values, events)`, plus the properties it did
/// not know (for the log). Events are `(feature, event name, data)`; `action_*` values ride
/// along as the data of the `action` event in the same payload.
pub type Decoded = (BTreeMap<String, Value>, Vec<(String, String, Option<Value>)>, Vec<String>);

/// Decodes one state payload.
pub fn decode(m: &Mapping, payload: &serde_json::Map<String, Json>) -> Decoded {
    let mut values = BTreeMap::new();
    let mut events = Vec::new();
    let mut unknown = Vec::new();
    let mut event_data = BTreeMap::new();
    for (key, raw) in payload {
        let Some(p) = m.property(key) else {
            if !IGNORED_STATE_KEYS.contains(&key.as_str()) {
                unknown.push(key.clone());
            }
            continue;
        };
        let Some(v) = to_model(p, raw) else { continue };
        if p.event {
            if is_event(key) && key.starts_with("action_") {
                event_data.insert(key.clone(), v);
            } else {
                events.push((p.feature.clone(), value_text(&v), None));
            }
        } else {
            values.insert(p.feature.clone(), v);
        }
    }
    if !event_data.is_empty() {
        if let Some(first) = events.first_mut() {
            first.2 = Some(Value::Object(event_data));
        } else {
            for (k, v) in event_data {
                events.push((k, value_text(&v), None));
            }
        }
    }
    (values, events, unknown)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Keys zigbee2mqtt adds to state payloads that are not exposes.
const IGNORED_STATE_KEYS: &[&str] = &[
    "last_seen",
    "update",
    "update_available",
    "elapsed",
    "color_mode",
    "device",
    "power_on_behavior_startup",
    "linkquality_unit",
];

/// Builds a `/set` payload from model values: the raw payload, or the first key that cannot be
/// converted.
pub fn encode_set(
    m: &Mapping,
    values: &BTreeMap<String, Value>,
    transition: Option<f64>,
) -> Result<serde_json::Map<String, Json>, String> {
    let mut out = serde_json::Map::new();
    for (key, v) in values {
        let p = m.property(key).ok_or_else(|| key.clone())?;
        out.insert(p.property.clone(), to_raw(p, v).ok_or_else(|| key.clone())?);
    }
    if let Some(t) = transition {
        out.insert("transition".into(), json!(t));
    }
    Ok(out)
}

/// Item type names of 1.x lists, for completeness of [`ItemType`].
pub fn item_type_name(t: &ItemType) -> &str {
    match t {
        ItemType::Expose(e) => &e.kind,
        ItemType::Name(n) => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposes(json: Json) -> Vec<Expose> {
        serde_json::from_value(json).expect("exposes")
    }

    fn hue_bulb() -> Vec<Expose> {
        exposes(json!([
            {"type": "light", "features": [
                {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"},
                {"type": "numeric", "name": "brightness", "property": "brightness", "access": 7, "value_min": 0, "value_max": 254},
                {"type": "numeric", "name": "color_temp", "property": "color_temp", "access": 7, "unit": "mired", "value_min": 153, "value_max": 500,
                 "presets": [{"name": "coolest", "value": 153, "description": "Coolest temperature supported"}]},
                {"type": "composite", "name": "color_xy", "property": "color", "access": 7, "features": [
                    {"type": "numeric", "name": "x", "property": "x", "access": 7},
                    {"type": "numeric", "name": "y", "property": "y", "access": 7}]},
                {"type": "composite", "name": "color_hs", "property": "color", "access": 7, "features": [
                    {"type": "numeric", "name": "hue", "property": "hue", "access": 7},
                    {"type": "numeric", "name": "saturation", "property": "saturation", "access": 7}]}
            ]},
            {"type": "enum", "name": "effect", "property": "effect", "access": 2, "values": ["blink", "breathe", "okay"]},
            {"type": "numeric", "name": "linkquality", "property": "linkquality", "access": 1, "unit": "lqi", "value_min": 0, "value_max": 255, "category": "diagnostic"}
        ]))
    }

    #[test]
    fn a_color_bulb_maps_to_canonical_features() {
        let m = map_exposes(&hue_bulb());
        assert!(m.unsupported.is_empty(), "{:?}", m.unsupported);
        let caps: Vec<(&str, Capability, Option<&str>)> =
            m.features.iter().map(|f| (f.key.as_str(), f.capability, f.unit.as_deref())).collect();
        assert_eq!(
            caps,
            [
                ("state", Capability::OnOff, None),
                ("brightness", Capability::Brightness, Some("%")),
                ("color_temp", Capability::ColorTemperature, Some("K")),
                ("color", Capability::Color, None),
                ("effect", Capability::Effect, None),
                ("linkquality", Capability::LinkQuality, None),
            ]
        );
        assert_eq!(
            m.feature("color_temp").map(|f| f.value_type.clone()),
            Some(ValueType::Number { min: Some(2000.0), max: Some(6536.0), step: Some(1.0) })
        );
        assert!(m.feature("effect").is_some_and(|f| f.access.set && !f.access.observe));
        assert_eq!(m.feature("linkquality").map(|f| f.category), Some(Category::Diagnostic));
    }

    #[test]
    fn values_convert_both_ways() {
        let m = map_exposes(&hue_bulb());
        let payload = json!({"state": "ON", "brightness": 254, "color_temp": 250, "color": {"x": 0.3127, "y": 0.329},
                             "linkquality": 87, "last_seen": "2026-11-28T21:00:00Z"});
        let (values, events, unknown) = decode(&m, payload.as_object().expect("object"));
        assert!(events.is_empty() && unknown.is_empty(), "{events:?} {unknown:?}");
        assert_eq!(values["state"], Value::Bool(true));
        assert_eq!(values["brightness"], Value::Number(100.0));
        assert_eq!(values["color_temp"], Value::Number(4000.0));
        assert_eq!(values["linkquality"], Value::Number(87.0));
        let set = BTreeMap::from([
            ("brightness".to_owned(), Value::Number(50.0)),
            ("state".to_owned(), Value::Bool(false)),
            ("color_temp".to_owned(), Value::Number(9000.0)),
            ("color".to_owned(), Value::Color(Color { hue: 120.0, saturation: 100.0 })),
        ]);
        let raw = encode_set(&m, &set, Some(2.0)).expect("encodes");
        assert_eq!(
            Json::Object(raw),
            json!({"brightness": 127.0, "state": "OFF", "color_temp": 153.0, "color": {"hue": 120.0, "saturation": 100.0}, "transition": 2.0})
        );
    }

    #[test]
    fn sensors_switches_covers_and_buttons() {
        let m = map_exposes(&exposes(json!([
            {"type": "numeric", "name": "temperature", "property": "temperature", "access": 1, "unit": "°C"},
            {"type": "numeric", "name": "pressure", "property": "pressure", "access": 1, "unit": "kPa"},
            {"type": "numeric", "name": "voltage", "property": "voltage", "access": 1, "unit": "mV", "category": "diagnostic"},
            {"type": "numeric", "name": "energy", "property": "energy", "access": 1, "unit": "Wh"},
            {"type": "numeric", "name": "weird", "property": "weird", "access": 1, "unit": "furlongs"},
            {"type": "numeric", "name": "occupancy_timeout", "property": "occupancy_timeout", "access": 7, "unit": "min", "value_min": 0, "value_max": 60},
            {"type": "binary", "name": "contact", "property": "contact", "access": 1, "value_on": false, "value_off": true},
            {"type": "switch", "endpoint": "l2", "features": [
                {"type": "binary", "name": "state", "property": "state_l2", "access": 7, "value_on": "ON", "value_off": "OFF", "endpoint": "l2"}]},
            {"type": "cover", "features": [
                {"type": "enum", "name": "state", "property": "state", "access": 3, "values": ["OPEN", "CLOSE", "STOP"]},
                {"type": "numeric", "name": "position", "property": "position", "access": 7, "unit": "%", "value_min": 0, "value_max": 100}]},
            {"type": "enum", "name": "action", "property": "action", "access": 1, "values": ["single", "double", "hold"]},
            {"type": "numeric", "name": "action_angle", "property": "action_angle", "access": 1, "unit": "°"},
            {"type": "gizmo", "name": "future", "property": "future", "access": 1}
        ])));
        let cap = |k: &str| m.feature(k).map(|f| (f.capability, f.unit.clone()));
        assert_eq!(cap("temperature"), Some((Capability::Temperature, Some("°C".into()))));
        assert_eq!(cap("pressure"), Some((Capability::Pressure, Some("hPa".into()))));
        assert_eq!(cap("voltage"), Some((Capability::Voltage, Some("V".into()))));
        assert_eq!(cap("energy"), Some((Capability::Energy, Some("kWh".into()))));
        assert_eq!(cap("weird"), Some((Capability::Other, Some("furlongs".into()))));
        assert_eq!(cap("occupancy_timeout"), Some((Capability::Duration, Some("s".into()))));
        assert_eq!(cap("state_l2"), Some((Capability::OnOff, None)));
        assert_eq!(m.feature("state_l2").and_then(|f| f.endpoint.clone()).as_deref(), Some("l2"));
        assert_eq!(cap("state"), Some((Capability::CoverState, None)));
        assert_eq!(cap("position"), Some((Capability::CoverPosition, Some("%".into()))));
        assert_eq!(cap("action"), Some((Capability::Action, None)));
        assert_eq!(m.unsupported, ["expose type `gizmo` of property `future` is not supported yet"]);
        assert_eq!(cap("future"), Some((Capability::Other, None)), "kept, not dropped");

        let payload = json!({"temperature": 21.53, "pressure": 101.3, "voltage": 3012, "energy": 1500, "contact": true,
                             "state": "OPEN", "action": "double", "action_angle": 30, "occupancy_timeout": 2, "mystery": 1});
        let (values, events, unknown) = decode(&m, payload.as_object().expect("object"));
        assert_eq!(values["pressure"], Value::Number(1013.0));
        assert_eq!(values["voltage"], Value::Number(3.012));
        assert_eq!(values["energy"], Value::Number(1.5));
        assert_eq!(values["contact"], Value::Bool(true), "contact true means closed, in zigbee2mqtt and in the model");
        assert_eq!(values["state"], Value::Text("open".into()));
        assert_eq!(values["occupancy_timeout"], Value::Number(120.0));
        assert!(!values.contains_key("action"));
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].0.as_str(), events[0].1.as_str()), ("action", "double"));
        assert_eq!(unknown, ["mystery"]);
        // The empty action zigbee2mqtt publishes after each press means nothing.
        let (_, events, _) = decode(&m, json!({"action": ""}).as_object().expect("object"));
        assert!(events.is_empty());
        let raw = encode_set(&m, &BTreeMap::from([("state".to_owned(), Value::Text("close".into()))]), None);
        assert_eq!(raw.map(Json::Object), Ok(json!({"state": "CLOSE"})));
    }

    #[test]
    fn presets_are_named_values_both_ways() {
        let m = map_exposes(&exposes(json!([
            {"type": "numeric", "name": "color_temp_startup", "property": "color_temp_startup", "access": 7, "unit": "mired",
             "value_min": 153, "value_max": 500, "presets": [
                {"name": "coolest", "value": 153, "description": "Coolest temperature supported"},
                {"name": "previous", "value": 65535, "description": "Restore previous color_temp on cold power on"}]}
        ])));
        let f = m.feature("color_temp_startup").expect("feature");
        let presets: Vec<(&str, Option<f64>)> = f.presets.iter().map(|p| (p.name.as_str(), p.value)).collect();
        assert_eq!(presets, [("coolest", Some(6536.0)), ("previous", None)]);
        let (values, _, _) = decode(&m, json!({"color_temp_startup": 65535}).as_object().expect("object"));
        assert_eq!(values["color_temp_startup"], Value::Text("previous".into()));
        let (values, _, _) = decode(&m, json!({"color_temp_startup": 153}).as_object().expect("object"));
        assert_eq!(values["color_temp_startup"], Value::Number(6536.0));
        for (name, raw) in [("previous", 65535.0), ("coolest", 153.0)] {
            let set = BTreeMap::from([("color_temp_startup".to_owned(), Value::Text(name.into()))]);
            assert_eq!(encode_set(&m, &set, None).map(Json::Object), Ok(json!({"color_temp_startup": raw})));
        }
        // The hub's validation takes the names too.
        let req: hearth_sdk::CommandRequest =
            serde_json::from_value(json!({"set": {"color_temp_startup": "previous"}})).expect("request");
        assert!(req.validate(&m.features).is_ok());
    }

    #[test]
    fn xy_and_rgb_agree() {
        let (x, y) = rgb_to_xy(255, 0, 0);
        assert!((x - 0.64).abs() < 0.01 && (y - 0.33).abs() < 0.01, "{x} {y}");
        assert_eq!(xy_to_rgb(0.64, 0.33).0, 255);
    }
}
