//! From ESPHome entities to the Hearth model: the device descriptor, state values and commands.
//!
//! Each entity gives one main feature keyed by its `object_id` (made unique: a second entity
//! with the same `object_id` in another domain gets `<object_id>_<domain>`), and some give
//! more, keyed `<object_id>_<part>`:
//!
//! | entity | main feature | more |
//! |---|---|---|
//! | sensor | by `device_class` and unit: temperature, humidity, pressure, illuminance, power, energy (Wh → kWh), voltage, current, battery, co2, pm25, pm10, voc, moisture, signal_strength, duration; otherwise `other` in its own unit | |
//! | binary_sensor | by `device_class`: motion/occupancy/presence → occupancy; door/window/garage_door/opening → contact (`true` = closed, the inverse of the sensor's "open"); moisture → water_leak; smoke, gas, carbon_monoxide, tamper, vibration, battery (→ battery_low); otherwise `other` bool | |
//! | switch | on_off, settable | |
//! | light | on_off, settable | `_brightness` (0–1 → %), `_color` (RGB → hue/saturation), `_color_temperature` (mireds → K), `_effect` |
//! | cover | cover_state (`open`, `close`, `stop`; reports the motion: opening → `open`, closing → `close`, idle → `stop`) | `_position` (0–1 → %; settable when the cover supports positions), `_tilt` |
//! | fan | on_off | `_speed` (level 1..=count → %), `_oscillating`, `_direction`, `_preset` |
//! | climate | hvac_mode | `_setpoint` (or `_setpoint_low` and `_setpoint_high` for two-point devices), `_temperature`, `_action`, `_fan_mode` |
//! | number | `other` number within min/max/step, its own unit, settable | |
//! | select | `other` enum of its options, settable | |
//! | button | `other` enum with the one value `press`, write-only: `{"set": {"restart": "press"}}` presses it. A button is something the hub does, not something the device reports, so it is no `action` (which is for events a device sends) | |
//! | text_sensor | `other` text | |
//!
//! Entities `disabled_by_default` are left out (Home Assistant hides them too). ESPHome has no
//! per-entity read, so no feature has `get`; a `refresh` sends `SubscribeStatesRequest` again,
//! which makes the device send every state.

use std::collections::BTreeMap;

use hearth_sdk::{
    Access, Capability, Category, Color, CommandRequest, DeviceDescriptor, DeviceId, Feature, Refresh, Value, ValueType,
};

use super::messages::*;

/// Why a device's description could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// The MAC address is not 6 hex bytes.
    #[error("the device's MAC address `{0}` is not 6 hexadecimal bytes")]
    BadMac(String),
}

/// Why a command could not be turned into messages. The hub validates commands against the
/// features first, so these mean a feature that the device cannot do what its type allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandMapError {
    /// No feature with this key.
    #[error("the device has no feature `{0}`")]
    UnknownFeature(String),
    /// The feature cannot be set.
    #[error("feature `{0}` is read-only")]
    ReadOnly(String),
    /// The value has the wrong type or is not one the entity takes.
    #[error("feature `{feature}` takes {expected}, not {value}")]
    BadValue {
        /// The key.
        feature: String,
        /// What it takes.
        expected: String,
        /// What was given.
        value: Value,
    },
    /// The entity cannot do this.
    #[error("feature `{feature}`: {reason}")]
    Unsupported {
        /// The key.
        feature: String,
        /// Why, e.g. `this cover cannot stop`.
        reason: String,
    },
}

/// The lowercase hex MAC without separators (`acbc32890ea9`), the native id of the device.
pub fn native_id(mac: &str) -> Result<String, MapError> {
    let hex: String = mac.chars().filter(|c| !matches!(c, ':' | '-' | '.')).collect::<String>().to_ascii_lowercase();
    if hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(MapError::BadMac(mac.to_owned()))
    }
}

/// How a sensor's value becomes the capability's canonical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Conv {
    Same,
    Scale(f64),
    FahrenheitToCelsius,
    KelvinToCelsius,
}

impl Conv {
    fn apply(self, v: f64) -> f64 {
        match self {
            Conv::Same => v,
            Conv::Scale(f) => v * f,
            Conv::FahrenheitToCelsius => (v - 32.0) * 5.0 / 9.0,
            Conv::KelvinToCelsius => v - 273.15,
        }
    }

    /// Decimals the conversion adds to the device's.
    fn extra_decimals(self) -> i32 {
        match self {
            Conv::Same => 0,
            Conv::Scale(f) if f < 1.0 => (1.0 / f).log10().ceil() as i32,
            Conv::Scale(_) => 0,
            // 0.1 °F is 0.056 °C: one more decimal keeps the resolution.
            Conv::FahrenheitToCelsius => 1,
            Conv::KelvinToCelsius => 2,
        }
    }
}

fn sensor_capability(device_class: &str, unit: &str) -> Option<(Capability, Conv)> {
    use Capability as C;
    let same = |u: &[&str]| u.contains(&unit).then_some(Conv::Same);
    Some(match device_class {
        "temperature" => (
            C::Temperature,
            match unit {
                "°C" => Conv::Same,
                "°F" => Conv::FahrenheitToCelsius,
                "K" => Conv::KelvinToCelsius,
                _ => return None,
            },
        ),
        "humidity" => (C::Humidity, same(&["%"])?),
        "moisture" => (C::Moisture, same(&["%"])?),
        "battery" => (C::Battery, same(&["%"])?),
        "pressure" | "atmospheric_pressure" => (
            C::Pressure,
            match unit {
                "hPa" | "mbar" => Conv::Same,
                "Pa" => Conv::Scale(0.01),
                "kPa" => Conv::Scale(10.0),
                "bar" => Conv::Scale(1000.0),
                _ => return None,
            },
        ),
        "illuminance" => (C::Illuminance, same(&["lx"])?),
        "power" => (
            C::Power,
            match unit {
                "W" => Conv::Same,
                "kW" => Conv::Scale(1000.0),
                "mW" => Conv::Scale(0.001),
                _ => return None,
            },
        ),
        "energy" => (
            C::Energy,
            match unit {
                "kWh" => Conv::Same,
                "Wh" => Conv::Scale(0.001),
                "MWh" => Conv::Scale(1000.0),
                _ => return None,
            },
        ),
        "voltage" => (
            C::Voltage,
            match unit {
                "V" => Conv::Same,
                "mV" => Conv::Scale(0.001),
                "kV" => Conv::Scale(1000.0),
                _ => return None,
            },
        ),
        "current" => (
            C::Current,
            match unit {
                "A" => Conv::Same,
                "mA" => Conv::Scale(0.001),
                _ => return None,
            },
        ),
        "carbon_dioxide" => (C::Co2, same(&["ppm"])?),
        "pm25" => (C::Pm25, same(&["µg/m³", "μg/m³"])?),
        "pm10" => (C::Pm10, same(&["µg/m³", "μg/m³"])?),
        "volatile_organic_compounds_parts" => (C::Voc, same(&["ppb"])?),
        "signal_strength" => (C::SignalStrength, same(&["dBm"])?),
        "duration" => (
            C::Duration,
            match unit {
                "s" => Conv::Same,
                "ms" => Conv::Scale(0.001),
                "min" => Conv::Scale(60.0),
                "h" => Conv::Scale(3600.0),
                "d" => Conv::Scale(86400.0),
                _ => return None,
            },
        ),
        _ => return None,
    })
}

fn binary_capability(device_class: &str) -> (Capability, bool) {
    use Capability as C;
    match device_class {
        "motion" | "occupancy" | "presence" | "moving" => (C::Occupancy, false),
        "door" | "window" | "garage_door" | "opening" => (C::Contact, true),
        "moisture" => (C::WaterLeak, false),
        "smoke" => (C::Smoke, false),
        "gas" => (C::Gas, false),
        "carbon_monoxide" => (C::CarbonMonoxide, false),
        "tamper" => (C::Tamper, false),
        "vibration" => (C::Vibration, false),
        "battery" => (C::BatteryLow, false),
        _ => (C::Other, false),
    }
}

const CLIMATE_MODES: [&str; 7] = ["off", "heat_cool", "cool", "heat", "fan_only", "dry", "auto"];
const CLIMATE_FAN_MODES: [&str; 10] =
    ["on", "off", "auto", "low", "medium", "high", "middle", "focus", "diffuse", "quiet"];
const COVER_STATES: [&str; 3] = ["open", "close", "stop"];
const FAN_DIRECTIONS: [&str; 2] = ["forward", "reverse"];

fn climate_action(action: u32) -> Option<&'static str> {
    Some(match action {
        0 => "off",
        2 => "cool",
        3 => "heat",
        4 => "idle",
        5 => "dry",
        6 => "fan",
        7 => "defrost",
        _ => return None,
    })
}

/// An f32 off the wire as the shortest decimal that reads back as it (21.3, not
/// 21.299999237060547), so the same wire value always gives the same number.
fn clean(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(f64::from(v))
}

fn round(v: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals.clamp(0, 10));
    (v * p).round() / p
}

fn category(entity_category: u32) -> Category {
    match entity_category {
        1 => Category::Config,
        2 => Category::Diagnostic,
        _ => Category::Primary,
    }
}

/// Which part of an entity a feature is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Main,
    Brightness,
    Color,
    ColorTemperature,
    Effect,
    Position,
    Tilt,
    Speed,
    Oscillating,
    Direction,
    Preset,
    Setpoint,
    SetpointLow,
    SetpointHigh,
    Temperature,
    Action,
    FanMode,
}

/// What the mapping keeps of each entity.
#[derive(Debug, Clone)]
enum Kind {
    BinarySensor { invert: bool },
    Sensor { conv: Conv, decimals: i32 },
    Switch,
    Light,
    Cover { supports_stop: bool },
    Fan { speed_count: i32 },
    Climate { fan_modes: Vec<u32>, custom_fan_modes: Vec<String> },
    Number,
    Select,
    Button,
    TextSensor,
}

#[derive(Debug, Clone)]
struct Binding {
    key: u32,
    kind: Kind,
    /// Feature key of each part the entity has.
    parts: Vec<(Part, String)>,
}

impl Binding {
    fn feature(&self, part: Part) -> Option<&str> {
        self.parts.iter().find(|(p, _)| *p == part).map(|(_, k)| k.as_str())
    }
}

/// A device's entities mapped to the model: build it from the device info and the entity list,
/// then turn state messages into values and commands into messages.
#[derive(Debug, Clone)]
pub struct DeviceMap {
    descriptor: DeviceDescriptor,
    bindings: Vec<Binding>,
    by_key: BTreeMap<u32, usize>,
    by_feature: BTreeMap<String, (usize, Part)>,
}

struct Builder {
    features: Vec<Feature>,
    bindings: Vec<Binding>,
}

impl Builder {
    fn claim(&self, base: &str, domain: &str) -> String {
        let taken = |k: &str| self.features.iter().any(|f| f.key == k);
        if !taken(base) {
            return base.to_owned();
        }
        let with_domain = format!("{base}_{domain}");
        if !taken(&with_domain) {
            return with_domain;
        }
        let mut n = 2;
        loop {
            let k = format!("{with_domain}_{n}");
            if !taken(&k) {
                return k;
            }
            n += 1;
        }
    }

    /// Adds an entity: its main feature and its parts, each `(part, suffix, feature)`.
    fn add(
        &mut self,
        key: u32,
        kind: Kind,
        object_id: &str,
        domain: &str,
        name: &str,
        parts: Vec<(Part, &str, Feature)>,
    ) {
        let base = if object_id.is_empty() { format!("{domain}_{key:08x}") } else { object_id.to_owned() };
        let main_key = self.claim(&base, domain);
        let mut keys = Vec::new();
        for (part, suffix, mut feature) in parts {
            let k =
                if part == Part::Main { main_key.clone() } else { self.claim(&format!("{main_key}_{suffix}"), domain) };
            feature.key = k.clone();
            if feature.label.is_none() && !name.is_empty() {
                feature.label = Some(if part == Part::Main {
                    name.to_owned()
                } else {
                    format!("{name} {suffix}").replace('_', " ")
                });
            }
            self.features.push(feature);
            keys.push((part, k));
        }
        self.bindings.push(Binding { key, kind, parts: keys });
    }
}

fn feat(capability: Capability, value_type: ValueType, access: Access, entity_category: u32) -> Feature {
    Feature::new("", capability, value_type, access).category(category(entity_category))
}

impl DeviceMap {
    /// Maps a device: `info` names it, `entities` are the messages of its entity list
    /// (messages that are no `ListEntities*Response` are ignored).
    pub fn new(info: &DeviceInfoResponse, entities: &[Message]) -> Result<DeviceMap, MapError> {
        let id = DeviceId::new("esphome", &native_id(&info.mac_address)?);
        let mut b = Builder { features: Vec::new(), bindings: Vec::new() };
        for m in entities {
            add_entity(&mut b, m);
        }
        // A bound a device gives as NaN or infinity is no bound (found by fuzzing: it went out
        // as JSON null and came back as "none").
        for f in &mut b.features {
            if let ValueType::Number { min, max, step } = &mut f.value_type {
                for bound in [min, max, step] {
                    *bound = bound.filter(|v| v.is_finite());
                }
            }
        }
        let name = if info.friendly_name.is_empty() { &info.name } else { &info.friendly_name };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let mut descriptor = DeviceDescriptor::new(id, name, b.features);
        descriptor.manufacturer = non_empty(&info.manufacturer);
        descriptor.model = non_empty(&info.model);
        descriptor.firmware = non_empty(&info.esphome_version);
        descriptor.suggested_area = non_empty(&info.suggested_area);
        let mut by_key = BTreeMap::new();
        let mut by_feature = BTreeMap::new();
        for (i, binding) in b.bindings.iter().enumerate() {
            by_key.insert(binding.key, i);
            for (part, k) in &binding.parts {
                by_feature.insert(k.clone(), (i, *part));
            }
        }
        Ok(DeviceMap { descriptor, bindings: b.bindings, by_key, by_feature })
    }

    /// The device's description.
    pub fn descriptor(&self) -> &DeviceDescriptor {
        &self.descriptor
    }

    /// The keys of the entities the map keeps, in entity order.
    pub fn entity_keys(&self) -> Vec<u32> {
        self.bindings.iter().map(|b| b.key).collect()
    }

    /// The values of a state message, keyed by feature, in canonical units. `None` when the
    /// message is no state, or of an entity the map does not know (or left out); an empty map
    /// when the entity has no state yet.
    pub fn values(&self, msg: &Message) -> Option<BTreeMap<String, Value>> {
        let key = state_key(msg)?;
        let binding = self.bindings.get(*self.by_key.get(&key)?)?;
        let mut out = BTreeMap::new();
        let mut put = |part: Part, v: Value| {
            if let Some(k) = binding.feature(part)
                && !matches!(v, Value::Number(n) if !n.is_finite())
            {
                out.insert(k.to_owned(), v);
            }
        };
        match (msg, &binding.kind) {
            (Message::BinarySensorStateResponse(s), Kind::BinarySensor { invert }) if !s.missing_state => {
                put(Part::Main, Value::Bool(s.state != *invert));
            }
            (Message::SensorStateResponse(s), Kind::Sensor { conv, decimals }) if !s.missing_state => {
                put(Part::Main, Value::Number(round(conv.apply(clean(s.state)), *decimals)));
            }
            (Message::SwitchStateResponse(s), Kind::Switch) if !s.missing_state => {
                put(Part::Main, Value::Bool(s.state))
            }
            (Message::TextSensorStateResponse(s), Kind::TextSensor) if !s.missing_state => {
                put(Part::Main, Value::Text(s.state.clone()));
            }
            (Message::NumberStateResponse(s), Kind::Number) if !s.missing_state => {
                put(Part::Main, Value::Number(clean(s.state)));
            }
            (Message::SelectStateResponse(s), Kind::Select) if !s.missing_state => {
                put(Part::Main, Value::Text(s.state.clone()));
            }
            (Message::LightStateResponse(s), Kind::Light) => {
                put(Part::Main, Value::Bool(s.state));
                put(Part::Brightness, Value::Number(round(clean(s.brightness) * 100.0, 2)));
                if s.red > 0.0 || s.green > 0.0 || s.blue > 0.0 {
                    let to8 = |v: f32| (f64::from(v).clamp(0.0, 1.0) * 255.0).round() as u8;
                    put(Part::Color, Value::Color(Color::from_rgb(to8(s.red), to8(s.green), to8(s.blue))));
                }
                if s.color_temperature > 0.0 {
                    put(Part::ColorTemperature, Value::Number((1_000_000.0 / clean(s.color_temperature)).round()));
                }
                if !s.effect.is_empty() {
                    put(Part::Effect, Value::Text(s.effect.clone()));
                }
            }
            (Message::CoverStateResponse(s), Kind::Cover { .. }) => {
                let motion = match s.current_operation {
                    1 => "open",
                    2 => "close",
                    _ => "stop",
                };
                put(Part::Main, Value::from(motion));
                put(Part::Position, Value::Number(round(clean(s.position) * 100.0, 1)));
                put(Part::Tilt, Value::Number(round(clean(s.tilt) * 100.0, 1)));
            }
            (Message::FanStateResponse(s), Kind::Fan { speed_count }) => {
                put(Part::Main, Value::Bool(s.state));
                if *speed_count > 0 {
                    let pct = f64::from(s.speed_level.clamp(0, *speed_count)) * 100.0 / f64::from(*speed_count);
                    put(Part::Speed, Value::Number(round(pct, 2)));
                }
                put(Part::Oscillating, Value::Bool(s.oscillating));
                if let Some(d) = FAN_DIRECTIONS.get(s.direction as usize) {
                    put(Part::Direction, Value::from(*d));
                }
                if !s.preset_mode.is_empty() {
                    put(Part::Preset, Value::Text(s.preset_mode.clone()));
                }
            }
            (Message::ClimateStateResponse(s), Kind::Climate { .. }) if !s.missing_state => {
                if let Some(m) = CLIMATE_MODES.get(s.mode as usize) {
                    put(Part::Main, Value::from(*m));
                }
                put(Part::Setpoint, Value::Number(round(clean(s.target_temperature), 2)));
                put(Part::SetpointLow, Value::Number(round(clean(s.target_temperature_low), 2)));
                put(Part::SetpointHigh, Value::Number(round(clean(s.target_temperature_high), 2)));
                put(Part::Temperature, Value::Number(round(clean(s.current_temperature), 2)));
                if let Some(a) = climate_action(s.action) {
                    put(Part::Action, Value::from(a));
                }
                if !s.custom_fan_mode.is_empty() {
                    put(Part::FanMode, Value::Text(s.custom_fan_mode.clone()));
                } else if let Some(f) = CLIMATE_FAN_MODES.get(s.fan_mode as usize) {
                    put(Part::FanMode, Value::from(*f));
                }
            }
            _ => {}
        }
        Some(out)
    }

    /// The messages that carry out a command: one command message per entity it touches (in
    /// entity order), and a `SubscribeStatesRequest` for a refresh.
    pub fn commands(&self, req: &CommandRequest) -> Result<Vec<Message>, CommandMapError> {
        let mut pending: BTreeMap<usize, Message> = BTreeMap::new();
        for (feature, value) in &req.set {
            let &(i, part) =
                self.by_feature.get(feature).ok_or_else(|| CommandMapError::UnknownFeature(feature.clone()))?;
            let Some(binding) = self.bindings.get(i) else {
                return Err(CommandMapError::UnknownFeature(feature.clone()));
            };
            if !self.descriptor.feature(feature).is_some_and(|f| f.access.set) {
                return Err(CommandMapError::ReadOnly(feature.clone()));
            }
            let msg = pending.entry(i).or_insert_with(|| empty_command(binding));
            apply(msg, binding, part, feature, value)?;
        }
        if let Some(t) = req.transition {
            let ms = (t.clamp(0.0, 3600.0) * 1000.0).round() as u32;
            for msg in pending.values_mut() {
                if let Message::LightCommandRequest(c) = msg {
                    c.has_transition_length = true;
                    c.transition_length = ms;
                }
            }
        }
        let mut out: Vec<Message> = pending.into_values().collect();
        if matches!(req.refresh, Some(Refresh::All(true)))
            || matches!(&req.refresh, Some(Refresh::Features(k)) if !k.is_empty())
        {
            out.push(SubscribeStatesRequest::default().into());
        }
        Ok(out)
    }
}

/// The entity key of a state message.
pub fn state_key(msg: &Message) -> Option<u32> {
    Some(match msg {
        Message::BinarySensorStateResponse(s) => s.key,
        Message::CoverStateResponse(s) => s.key,
        Message::FanStateResponse(s) => s.key,
        Message::LightStateResponse(s) => s.key,
        Message::SensorStateResponse(s) => s.key,
        Message::SwitchStateResponse(s) => s.key,
        Message::TextSensorStateResponse(s) => s.key,
        Message::ClimateStateResponse(s) => s.key,
        Message::NumberStateResponse(s) => s.key,
        Message::SelectStateResponse(s) => s.key,
        _ => return None,
    })
}

/// The entity key of a command message.
pub fn command_key(msg: &Message) -> Option<u32> {
    Some(match msg {
        Message::SwitchCommandRequest(c) => c.key,
        Message::LightCommandRequest(c) => c.key,
        Message::CoverCommandRequest(c) => c.key,
        Message::FanCommandRequest(c) => c.key,
        Message::ClimateCommandRequest(c) => c.key,
        Message::NumberCommandRequest(c) => c.key,
        Message::SelectCommandRequest(c) => c.key,
        Message::ButtonCommandRequest(c) => c.key,
        _ => return None,
    })
}

fn empty_command(b: &Binding) -> Message {
    let key = b.key;
    match b.kind {
        Kind::Switch => SwitchCommandRequest { key, ..Default::default() }.into(),
        Kind::Light => LightCommandRequest { key, ..Default::default() }.into(),
        Kind::Cover { .. } => CoverCommandRequest { key, ..Default::default() }.into(),
        Kind::Fan { .. } => FanCommandRequest { key, ..Default::default() }.into(),
        Kind::Climate { .. } => ClimateCommandRequest { key, ..Default::default() }.into(),
        Kind::Number => NumberCommandRequest { key, ..Default::default() }.into(),
        Kind::Select => SelectCommandRequest { key, ..Default::default() }.into(),
        Kind::Button => ButtonCommandRequest { key, ..Default::default() }.into(),
        Kind::BinarySensor { .. } | Kind::Sensor { .. } | Kind::TextSensor => {
            Message::Unknown { msg_type: 0, payload: Vec::new() }
        }
    }
}

fn apply(msg: &mut Message, b: &Binding, part: Part, feature: &str, value: &Value) -> Result<(), CommandMapError> {
    let bad = |expected: &str| CommandMapError::BadValue {
        feature: feature.to_owned(),
        expected: expected.to_owned(),
        value: value.clone(),
    };
    let num = || value.as_f64().filter(|n| n.is_finite()).ok_or_else(|| bad("a number"));
    let boolean = || value.as_bool().ok_or_else(|| bad("true or false"));
    let text = || value.as_str().ok_or_else(|| bad("text"));
    match (msg, part) {
        (Message::SwitchCommandRequest(c), Part::Main) => c.state = boolean()?,
        (Message::LightCommandRequest(c), p) => match p {
            Part::Main => {
                c.has_state = true;
                c.state = boolean()?;
            }
            Part::Brightness => {
                c.has_brightness = true;
                c.brightness = (num()?.clamp(0.0, 100.0) / 100.0) as f32;
            }
            Part::Color => {
                let Value::Color(color) = value else { return Err(bad("a color")) };
                let (r, g, bl) = color.to_rgb();
                c.has_rgb = true;
                c.red = f32::from(r) / 255.0;
                c.green = f32::from(g) / 255.0;
                c.blue = f32::from(bl) / 255.0;
            }
            Part::ColorTemperature => {
                let k = num()?;
                if k <= 0.0 {
                    return Err(bad("a positive color temperature"));
                }
                c.has_color_temperature = true;
                c.color_temperature = (1_000_000.0 / k) as f32;
            }
            Part::Effect => {
                c.has_effect = true;
                c.effect = text()?.to_owned();
            }
            _ => return Err(CommandMapError::ReadOnly(feature.to_owned())),
        },
        (Message::CoverCommandRequest(c), p) => match p {
            Part::Main => match text()? {
                "open" => {
                    c.has_position = true;
                    c.position = 1.0;
                }
                "close" => {
                    c.has_position = true;
                    c.position = 0.0;
                }
                "stop" => {
                    if !matches!(b.kind, Kind::Cover { supports_stop: true }) {
                        return Err(CommandMapError::Unsupported {
                            feature: feature.to_owned(),
                            reason: "this cover cannot stop".into(),
                        });
                    }
                    c.stop = true;
                }
                _ => return Err(bad("one of open, close, stop")),
            },
            Part::Position => {
                c.has_position = true;
                c.position = (num()?.clamp(0.0, 100.0) / 100.0) as f32;
            }
            Part::Tilt => {
                c.has_tilt = true;
                c.tilt = (num()?.clamp(0.0, 100.0) / 100.0) as f32;
            }
            _ => return Err(CommandMapError::ReadOnly(feature.to_owned())),
        },
        (Message::FanCommandRequest(c), p) => match p {
            Part::Main => {
                c.has_state = true;
                c.state = boolean()?;
            }
            Part::Speed => {
                let Kind::Fan { speed_count } = b.kind else { return Err(bad("a number")) };
                let pct = num()?.clamp(0.0, 100.0);
                c.has_state = true;
                if pct <= 0.0 {
                    c.state = false;
                } else {
                    c.state = true;
                    c.has_speed_level = true;
                    let level = (pct * f64::from(speed_count) / 100.0 - 1e-9).ceil() as i32;
                    c.speed_level = level.clamp(1, speed_count.max(1));
                }
            }
            Part::Oscillating => {
                c.has_oscillating = true;
                c.oscillating = boolean()?;
            }
            Part::Direction => {
                let d = text()?;
                c.has_direction = true;
                c.direction =
                    FAN_DIRECTIONS.iter().position(|x| *x == d).ok_or_else(|| bad("forward or reverse"))? as u32;
            }
            Part::Preset => {
                c.has_preset_mode = true;
                c.preset_mode = text()?.to_owned();
            }
            _ => return Err(CommandMapError::ReadOnly(feature.to_owned())),
        },
        (Message::ClimateCommandRequest(c), p) => match p {
            Part::Main => {
                let m = text()?;
                c.has_mode = true;
                c.mode = CLIMATE_MODES.iter().position(|x| *x == m).ok_or_else(|| bad("a climate mode"))? as u32;
            }
            Part::Setpoint => {
                c.has_target_temperature = true;
                c.target_temperature = num()? as f32;
            }
            Part::SetpointLow => {
                c.has_target_temperature_low = true;
                c.target_temperature_low = num()? as f32;
            }
            Part::SetpointHigh => {
                c.has_target_temperature_high = true;
                c.target_temperature_high = num()? as f32;
            }
            Part::FanMode => {
                let f = text()?;
                let Kind::Climate { fan_modes, custom_fan_modes } = &b.kind else { return Err(bad("a fan mode")) };
                match CLIMATE_FAN_MODES.iter().position(|x| *x == f) {
                    Some(i) if fan_modes.contains(&(i as u32)) => {
                        c.has_fan_mode = true;
                        c.fan_mode = i as u32;
                    }
                    _ if custom_fan_modes.iter().any(|x| x == f) => {
                        c.has_custom_fan_mode = true;
                        c.custom_fan_mode = f.to_owned();
                    }
                    _ => return Err(bad("one of the device's fan modes")),
                }
            }
            _ => return Err(CommandMapError::ReadOnly(feature.to_owned())),
        },
        (Message::NumberCommandRequest(c), Part::Main) => c.state = num()? as f32,
        (Message::SelectCommandRequest(c), Part::Main) => c.state = text()?.to_owned(),
        (Message::ButtonCommandRequest(_), Part::Main) => {
            if text()? != "press" {
                return Err(bad("`press`"));
            }
        }
        _ => return Err(CommandMapError::ReadOnly(feature.to_owned())),
    }
    Ok(())
}

fn add_entity(b: &mut Builder, m: &Message) {
    use Capability as C;
    match m {
        Message::ListEntitiesBinarySensorResponse(e) if !e.disabled_by_default => {
            let (cap, invert) = binary_capability(&e.device_class);
            let cat = if e.is_status_binary_sensor { 2 } else { e.entity_category };
            let f = feat(cap, ValueType::Bool, Access::READ_ONLY, cat);
            b.add(
                e.key,
                Kind::BinarySensor { invert },
                &e.object_id,
                "binary_sensor",
                &e.name,
                vec![(Part::Main, "", f)],
            );
        }
        Message::ListEntitiesSensorResponse(e) if !e.disabled_by_default => {
            let decimals = e.accuracy_decimals.max(0);
            let (f, conv) = match sensor_capability(&e.device_class, &e.unit_of_measurement) {
                Some((cap, conv)) => (feat(cap, ValueType::number(), Access::READ_ONLY, e.entity_category), conv),
                None => {
                    let mut f = feat(C::Other, ValueType::number(), Access::READ_ONLY, e.entity_category);
                    if !e.unit_of_measurement.is_empty() {
                        f = f.unit(&e.unit_of_measurement);
                    }
                    (f, Conv::Same)
                }
            };
            let kind = Kind::Sensor { conv, decimals: decimals + conv.extra_decimals() };
            b.add(e.key, kind, &e.object_id, "sensor", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesSwitchResponse(e) if !e.disabled_by_default => {
            let f = feat(C::OnOff, ValueType::Bool, Access::READ_WRITE, e.entity_category);
            b.add(e.key, Kind::Switch, &e.object_id, "switch", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesTextSensorResponse(e) if !e.disabled_by_default => {
            let f = feat(C::Other, ValueType::Text { max_length: None }, Access::READ_ONLY, e.entity_category);
            b.add(e.key, Kind::TextSensor, &e.object_id, "text_sensor", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesNumberResponse(e) if !e.disabled_by_default => {
            let vt = ValueType::range(clean(e.min_value), clean(e.max_value), clean(e.step));
            let mut f = feat(C::Other, vt, Access::READ_WRITE, e.entity_category);
            if !e.unit_of_measurement.is_empty() {
                f = f.unit(&e.unit_of_measurement);
            }
            b.add(e.key, Kind::Number, &e.object_id, "number", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesSelectResponse(e) if !e.disabled_by_default => {
            let f = feat(
                C::Other,
                ValueType::enumeration(e.options.iter().cloned()),
                Access::READ_WRITE,
                e.entity_category,
            );
            b.add(e.key, Kind::Select, &e.object_id, "select", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesButtonResponse(e) if !e.disabled_by_default => {
            let f = feat(C::Other, ValueType::enumeration(["press"]), Access::WRITE_ONLY, e.entity_category);
            b.add(e.key, Kind::Button, &e.object_id, "button", &e.name, vec![(Part::Main, "", f)]);
        }
        Message::ListEntitiesLightResponse(e) if !e.disabled_by_default => {
            let any = |bit: u32| e.supported_color_modes.iter().any(|m| m & bit != 0);
            let cat = e.entity_category;
            let mut parts = vec![(Part::Main, "", feat(C::OnOff, ValueType::Bool, Access::READ_WRITE, cat))];
            if any(2) || e.legacy_supports_brightness {
                parts.push((
                    Part::Brightness,
                    "brightness",
                    feat(C::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE, cat),
                ));
            }
            if any(32) || e.legacy_supports_rgb {
                parts.push((Part::Color, "color", feat(C::Color, ValueType::Color, Access::READ_WRITE, cat)));
            }
            if any(8 | 16) || e.legacy_supports_color_temperature {
                let (lo, hi) = (clean(e.min_mireds), clean(e.max_mireds));
                let vt = if lo > 0.0 && hi >= lo {
                    ValueType::range((1_000_000.0 / hi).round(), (1_000_000.0 / lo).round(), 1.0)
                } else {
                    ValueType::number()
                };
                parts.push((
                    Part::ColorTemperature,
                    "color_temperature",
                    feat(C::ColorTemperature, vt, Access::READ_WRITE, cat),
                ));
            }
            if e.effects.iter().any(|x| x != "None") {
                parts.push((
                    Part::Effect,
                    "effect",
                    feat(C::Effect, ValueType::enumeration(e.effects.iter().cloned()), Access::READ_WRITE, cat),
                ));
            }
            b.add(e.key, Kind::Light, &e.object_id, "light", &e.name, parts);
        }
        Message::ListEntitiesCoverResponse(e) if !e.disabled_by_default => {
            let cat = e.entity_category;
            let pos_access = if e.supports_position { Access::READ_WRITE } else { Access::READ_ONLY };
            let mut parts = vec![
                (Part::Main, "", feat(C::CoverState, ValueType::enumeration(COVER_STATES), Access::READ_WRITE, cat)),
                (
                    Part::Position,
                    "position",
                    feat(C::CoverPosition, ValueType::range(0.0, 100.0, 1.0), pos_access, cat),
                ),
            ];
            if e.supports_tilt {
                parts.push((
                    Part::Tilt,
                    "tilt",
                    feat(C::Tilt, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE, cat),
                ));
            }
            b.add(e.key, Kind::Cover { supports_stop: e.supports_stop }, &e.object_id, "cover", &e.name, parts);
        }
        Message::ListEntitiesFanResponse(e) if !e.disabled_by_default => {
            let cat = e.entity_category;
            let mut parts = vec![(Part::Main, "", feat(C::OnOff, ValueType::Bool, Access::READ_WRITE, cat))];
            let count = if e.supports_speed { e.supported_speed_count.max(0) } else { 0 };
            if count > 0 {
                let step = round(100.0 / f64::from(count), 2);
                parts.push((
                    Part::Speed,
                    "speed",
                    feat(C::FanSpeed, ValueType::range(0.0, 100.0, step), Access::READ_WRITE, cat),
                ));
            }
            if e.supports_oscillation {
                parts.push((
                    Part::Oscillating,
                    "oscillating",
                    feat(C::Other, ValueType::Bool, Access::READ_WRITE, cat),
                ));
            }
            if e.supports_direction {
                parts.push((
                    Part::Direction,
                    "direction",
                    feat(C::Other, ValueType::enumeration(FAN_DIRECTIONS), Access::READ_WRITE, cat),
                ));
            }
            if !e.supported_preset_modes.is_empty() {
                let vt = ValueType::enumeration(e.supported_preset_modes.iter().cloned());
                parts.push((Part::Preset, "preset", feat(C::FanMode, vt, Access::READ_WRITE, cat)));
            }
            b.add(e.key, Kind::Fan { speed_count: count }, &e.object_id, "fan", &e.name, parts);
        }
        Message::ListEntitiesClimateResponse(e) if !e.disabled_by_default => {
            let cat = e.entity_category;
            let modes: Vec<&str> =
                e.supported_modes.iter().filter_map(|m| CLIMATE_MODES.get(*m as usize).copied()).collect();
            let mut parts =
                vec![(Part::Main, "", feat(C::HvacMode, ValueType::enumeration(modes), Access::READ_WRITE, cat))];
            let (min, max, step) = (
                clean(e.visual_min_temperature),
                clean(e.visual_max_temperature),
                clean(e.visual_target_temperature_step),
            );
            let vt = if max > min {
                ValueType::Number { min: Some(min), max: Some(max), step: (step > 0.0).then_some(step) }
            } else {
                ValueType::number()
            };
            // `feature_flags` (firmware since 2025.11) says it with bits: 0 current temperature,
            // 1 supports and 2 requires two setpoints, 5 action.
            if e.supports_two_point_target_temperature || e.feature_flags & (2 | 4) != 0 {
                parts.push((Part::SetpointLow, "setpoint_low", feat(C::Setpoint, vt.clone(), Access::READ_WRITE, cat)));
                parts.push((Part::SetpointHigh, "setpoint_high", feat(C::Setpoint, vt, Access::READ_WRITE, cat)));
            } else {
                parts.push((Part::Setpoint, "setpoint", feat(C::Setpoint, vt, Access::READ_WRITE, cat)));
            }
            if e.supports_current_temperature || e.feature_flags & 1 != 0 {
                parts.push((
                    Part::Temperature,
                    "temperature",
                    feat(C::Temperature, ValueType::number(), Access::READ_ONLY, cat),
                ));
            }
            if e.supports_action || e.feature_flags & (1 << 5) != 0 {
                let vt = ValueType::enumeration(["off", "cool", "heat", "idle", "dry", "fan", "defrost"]);
                parts.push((Part::Action, "action", feat(C::HvacAction, vt, Access::READ_ONLY, cat)));
            }
            let fan_names: Vec<String> = e
                .supported_fan_modes
                .iter()
                .filter_map(|m| CLIMATE_FAN_MODES.get(*m as usize).map(|s| (*s).to_owned()))
                .chain(e.supported_custom_fan_modes.iter().cloned())
                .collect();
            if !fan_names.is_empty() {
                parts.push((
                    Part::FanMode,
                    "fan_mode",
                    feat(C::FanMode, ValueType::enumeration(fan_names), Access::READ_WRITE, cat),
                ));
            }
            let kind = Kind::Climate {
                fan_modes: e.supported_fan_modes.clone(),
                custom_fan_modes: e.supported_custom_fan_modes.clone(),
            };
            b.add(e.key, kind, &e.object_id, "climate", &e.name, parts);
        }
        _ => {}
    }
}
