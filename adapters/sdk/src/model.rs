//! The one device model: devices, their features, availability and state.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::value::Value;

/// A device's stable id: `<adapter>:<native id>`, e.g. `zigbee2mqtt:0x00158d0001a2b3c4`.
///
/// The adapter part never contains `:`; the native part may (BLE addresses do).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    /// The id of the device `native` of adapter `adapter`.
    pub fn new(adapter: &str, native: &str) -> DeviceId {
        DeviceId(format!("{adapter}:{native}"))
    }

    /// Reads `<adapter>:<native id>`; `None` when either part is empty.
    pub fn parse(s: &str) -> Option<DeviceId> {
        let (adapter, native) = s.split_once(':')?;
        if adapter.is_empty() || native.is_empty() {
            return None;
        }
        Some(DeviceId(s.to_owned()))
    }

    /// The adapter part, before the first `:`.
    pub fn adapter(&self) -> &str {
        self.0.split_once(':').map_or(self.0.as_str(), |(a, _)| a)
    }

    /// The native part, after the first `:`.
    pub fn native(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, n)| n)
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a feature means, from a closed list, so that automations and the UI never care
/// which brand a device is. Each capability fixes its canonical unit ([`Capability::canonical_unit`]).
///
/// JSON form: the snake_case name, e.g. `"color_temperature"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Capability {
    /// Switched on or off (bool).
    OnOff,
    /// Light or dimmer level, % 0-100.
    Brightness,
    /// White color temperature, K.
    ColorTemperature,
    /// Hue and saturation.
    Color,
    /// A light effect or animation, by name (enum).
    Effect,
    /// Temperature, °C.
    Temperature,
    /// Relative humidity, %.
    Humidity,
    /// Air pressure, hPa.
    Pressure,
    /// Illuminance, lx.
    Illuminance,
    /// Battery level, %.
    Battery,
    /// Battery low warning (bool).
    BatteryLow,
    /// Door or window closed (true) or open (false).
    Contact,
    /// Someone present or moving (bool).
    Occupancy,
    /// Water detected (bool).
    WaterLeak,
    /// Smoke detected (bool).
    Smoke,
    /// Gas detected (bool).
    Gas,
    /// Carbon monoxide detected (bool).
    CarbonMonoxide,
    /// Tampered with (bool).
    Tamper,
    /// Vibration detected (bool).
    Vibration,
    /// Active power, W.
    Power,
    /// Energy consumed, kWh.
    Energy,
    /// Voltage, V.
    Voltage,
    /// Current, A.
    Current,
    /// Carbon dioxide, ppm.
    Co2,
    /// Particulate matter 2.5 µm, µg/m³.
    Pm25,
    /// Particulate matter 10 µm, µg/m³.
    Pm10,
    /// Volatile organic compounds, ppb.
    Voc,
    /// Formaldehyde, mg/m³.
    Formaldehyde,
    /// Soil moisture, %.
    Moisture,
    /// Lock state, enum (`locked`, `unlocked`, ...).
    Lock,
    /// Cover position, % open (0 closed, 100 open).
    CoverPosition,
    /// Cover motion, enum (`open`, `close`, `stop`).
    CoverState,
    /// Slat tilt, % (0 closed, 100 open).
    Tilt,
    /// Heating/cooling mode, enum (`off`, `heat`, `cool`, `auto`, ...).
    HvacMode,
    /// What the heating/cooling is doing now, enum (`idle`, `heat`, `cool`).
    HvacAction,
    /// Target temperature, °C.
    Setpoint,
    /// Fan mode, enum.
    FanMode,
    /// Fan speed, %.
    FanSpeed,
    /// Momentary actions of a button or remote (`single`, `double`, `hold` ...), events only.
    Action,
    /// Radio signal strength, dBm.
    SignalStrength,
    /// Zigbee-style link quality, 0-255.
    LinkQuality,
    /// A duration, s.
    Duration,
    /// Anything else; the feature keeps its own unit. A capability this version does not know
    /// (from a newer peer) reads as `other`.
    #[serde(other)]
    Other,
}

impl Capability {
    /// The unit every value of this capability is expressed in, or `None` when unitless.
    pub fn canonical_unit(self) -> Option<&'static str> {
        use Capability::*;
        Some(match self {
            Brightness | Humidity | Battery | CoverPosition | Tilt | FanSpeed | Moisture => "%",
            ColorTemperature => "K",
            Temperature | Setpoint => "°C",
            Pressure => "hPa",
            Illuminance => "lx",
            Power => "W",
            Energy => "kWh",
            Voltage => "V",
            Current => "A",
            Co2 => "ppm",
            Pm25 | Pm10 => "µg/m³",
            Voc => "ppb",
            Formaldehyde => "mg/m³",
            SignalStrength => "dBm",
            Duration => "s",
            OnOff | Color | Effect | BatteryLow | Contact | Occupancy | WaterLeak | Smoke | Gas | CarbonMonoxide
            | Tamper | Vibration | Lock | CoverState | HvacMode | HvacAction | FanMode | Action | LinkQuality
            | Other => return None,
        })
    }

    /// Every capability, in declaration order.
    pub const ALL: &'static [Capability] = &[
        Capability::OnOff,
        Capability::Brightness,
        Capability::ColorTemperature,
        Capability::Color,
        Capability::Effect,
        Capability::Temperature,
        Capability::Humidity,
        Capability::Pressure,
        Capability::Illuminance,
        Capability::Battery,
        Capability::BatteryLow,
        Capability::Contact,
        Capability::Occupancy,
        Capability::WaterLeak,
        Capability::Smoke,
        Capability::Gas,
        Capability::CarbonMonoxide,
        Capability::Tamper,
        Capability::Vibration,
        Capability::Power,
        Capability::Energy,
        Capability::Voltage,
        Capability::Current,
        Capability::Co2,
        Capability::Pm25,
        Capability::Pm10,
        Capability::Voc,
        Capability::Formaldehyde,
        Capability::Moisture,
        Capability::Lock,
        Capability::CoverPosition,
        Capability::CoverState,
        Capability::Tilt,
        Capability::HvacMode,
        Capability::HvacAction,
        Capability::Setpoint,
        Capability::FanMode,
        Capability::FanSpeed,
        Capability::Action,
        Capability::SignalStrength,
        Capability::LinkQuality,
        Capability::Duration,
        Capability::Other,
    ];
}

/// The type of a feature's values, with its limits.
///
/// JSON form: flattened into the feature with a `type` tag, e.g.
/// `"type": "number", "min": 0, "max": 100, "step": 1` or `"type": "enum", "values": ["heat", "off"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ValueType {
    /// `true` or `false`.
    Bool,
    /// A number, optionally bounded and stepped.
    Number {
        /// Lowest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        /// Highest allowed value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        /// Resolution of the value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    /// One text value from a fixed list.
    Enum {
        /// The allowed values.
        values: Vec<String>,
    },
    /// Free text.
    Text {
        /// Longest allowed text, in characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<usize>,
    },
    /// A [`crate::Color`].
    Color,
    /// A list of values.
    List,
    /// A structured value.
    Object,
}

impl ValueType {
    /// A number without limits.
    pub const fn number() -> ValueType {
        ValueType::Number { min: None, max: None, step: None }
    }

    /// A number from `min` to `max` in steps of `step`.
    pub const fn range(min: f64, max: f64, step: f64) -> ValueType {
        ValueType::Number { min: Some(min), max: Some(max), step: Some(step) }
    }

    /// An enum of these values.
    pub fn enumeration<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> ValueType {
        ValueType::Enum { values: values.into_iter().map(Into::into).collect() }
    }

    /// The `type` tag of this value type.
    pub fn name(&self) -> &'static str {
        match self {
            ValueType::Bool => "bool",
            ValueType::Number { .. } => "number",
            ValueType::Enum { .. } => "enum",
            ValueType::Text { .. } => "text",
            ValueType::Color => "color",
            ValueType::List => "list",
            ValueType::Object => "object",
        }
    }
}

/// How a feature can be used. JSON form: `{"observe": true, "set": true, "get": false}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    /// The device reports this feature's value on its own (it appears in state).
    pub observe: bool,
    /// A command can set it.
    pub set: bool,
    /// A refresh can ask the device for it.
    pub get: bool,
}

impl Access {
    /// Reported, not settable, not readable on request (most sensors).
    pub const READ_ONLY: Access = Access { observe: true, set: false, get: false };
    /// Reported and settable.
    pub const READ_WRITE: Access = Access { observe: true, set: true, get: false };
    /// Reported, settable and readable on request.
    pub const ALL: Access = Access { observe: true, set: true, get: true };
    /// Settable only: nothing is reported back (a write-only trigger).
    pub const WRITE_ONLY: Access = Access { observe: false, set: true, get: false };
    /// A momentary event (a button's `action`): fired as events, never in state.
    pub const EVENT: Access = Access { observe: false, set: false, get: false };
}

/// Where a feature belongs in a user interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// What the device is for: shown on its card.
    #[default]
    Primary,
    /// A setting of the device.
    Config,
    /// Health information: signal, battery, firmware state.
    Diagnostic,
}

/// One typed property of a device.
///
/// ```
/// use hearth_sdk::{Access, Capability, Feature, ValueType};
/// let f = Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE);
/// assert_eq!(f.unit.as_deref(), Some("%"));
/// let json = serde_json::to_value(&f).unwrap();
/// assert_eq!(json["type"], "number");
/// assert_eq!(json["max"], 100.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Unique within the device: `state`, `brightness`, `state_l2`.
    pub key: String,
    /// What it means.
    pub capability: Capability,
    /// Its value type and limits.
    #[serde(flatten)]
    pub value_type: ValueType,
    /// Its unit: the capability's canonical unit, or the device's own for `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// How it can be used.
    pub access: Access,
    /// The device endpoint it belongs to (`l2`, `left`), for multi-channel devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Where it belongs in a user interface.
    #[serde(default)]
    pub category: Category,
    /// A human label, when the key is not self-explanatory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Named values of a number feature (`coolest` = 6535 K, `previous` = keep the last value).
    /// A command may set the preset's name instead of a number, and a device may report it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<Preset>,
}

/// A named value of a number feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// Its name, also what a command may send instead of a number.
    pub name: String,
    /// Its number in the feature's unit, when it is one (`previous` has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Feature {
    /// A feature in the capability's canonical unit.
    pub fn new(key: &str, capability: Capability, value_type: ValueType, access: Access) -> Feature {
        Feature {
            key: key.to_owned(),
            capability,
            value_type,
            unit: capability.canonical_unit().map(str::to_owned),
            access,
            endpoint: None,
            category: Category::Primary,
            label: None,
            presets: Vec::new(),
        }
    }

    /// The same feature in another category.
    pub fn category(mut self, category: Category) -> Feature {
        self.category = category;
        self
    }

    /// The same feature with a label.
    pub fn label(mut self, label: &str) -> Feature {
        self.label = Some(label.to_owned());
        self
    }

    /// The same feature on an endpoint.
    pub fn endpoint(mut self, endpoint: &str) -> Feature {
        self.endpoint = Some(endpoint.to_owned());
        self
    }

    /// The same feature with its own unit (for [`Capability::Other`]).
    pub fn unit(mut self, unit: &str) -> Feature {
        self.unit = Some(unit.to_owned());
        self
    }
}

/// Where a device's power comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerSource {
    /// Mains powered (usually a router in a mesh).
    Mains,
    /// Battery powered (sleeps, reports rarely).
    Battery,
    /// Powered over USB or a DC supply.
    Dc,
    /// Not known.
    #[default]
    Unknown,
}

/// Whether a device can be reached now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityState {
    /// Reachable.
    Online,
    /// Not reachable; see the reason.
    Offline,
    /// Not known yet (after a restart, until the adapter reports).
    #[default]
    Unknown,
}

/// A device's availability with why and since when.
///
/// JSON form: `{"state": "offline", "reason": "zigbee2mqtt bridge is offline", "since": "2026-..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Online, offline or unknown.
    pub state: AvailabilityState,
    /// Why, in a sentence a user understands; always set when offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason as a stable code (`bridge_offline`), so a UI can say it in the user's
    /// language; optional (an adapter may give only the words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// When it became so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
}

impl Availability {
    /// Online since `at`.
    pub fn online(at: Timestamp) -> Availability {
        Availability { state: AvailabilityState::Online, reason: None, code: None, since: Some(at) }
    }

    /// Offline since `at`, because of `reason`.
    pub fn offline(reason: impl Into<String>, at: Timestamp) -> Availability {
        Availability { state: AvailabilityState::Offline, reason: Some(reason.into()), code: None, since: Some(at) }
    }

    /// With the reason's code.
    pub fn with_code(mut self, code: &str) -> Availability {
        self.code = Some(code.to_owned());
        self
    }

    /// Unknown, e.g. after a restart.
    pub fn unknown() -> Availability {
        Availability { state: AvailabilityState::Unknown, reason: None, code: None, since: None }
    }
}

impl Default for Availability {
    fn default() -> Self {
        Availability::unknown()
    }
}

/// What an adapter knows about a device: everything but the user's choices.
///
/// Adapters send it when they find a device and whenever it changes. `name` is the adapter's
/// suggestion; once the user renames the device, re-discovery no longer changes its name or area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceDescriptor {
    /// Stable id, `<adapter>:<native id>`.
    pub id: DeviceId,
    /// The name the adapter suggests (the device's own name, or its model).
    pub name: String,
    /// The area the adapter suggests (e.g. from the device's own configuration), by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_area: Option<String>,
    /// Manufacturer, as the device or its database names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The gateway or bridge device this one hangs from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<DeviceId>,
    /// Where its power comes from.
    #[serde(default)]
    pub power_source: PowerSource,
    /// Its features, keys unique.
    pub features: Vec<Feature>,
}

impl DeviceDescriptor {
    /// A description with only what every device has: its id, suggested name and features.
    pub fn new(id: DeviceId, name: &str, features: Vec<Feature>) -> DeviceDescriptor {
        DeviceDescriptor {
            id,
            name: name.to_owned(),
            suggested_area: None,
            manufacturer: None,
            model: None,
            firmware: None,
            via: None,
            power_source: PowerSource::Unknown,
            features,
        }
    }

    /// The feature with this key.
    pub fn feature(&self, key: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.key == key)
    }
}

/// An area of the home (a room, the garden).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    /// Stable id, a slug of the first name (`living_room`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Position in lists (lower first).
    #[serde(default)]
    pub order: i64,
}

/// The latest value of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureState {
    /// The value.
    pub value: Value,
    /// When the value last became different.
    pub changed_at: Timestamp,
    /// When it was last reported, equal or not.
    pub reported_at: Timestamp,
}

/// A device as the hub knows it: the adapter's description, the user's name and area,
/// availability and the latest state. This is the JSON the API, the WebSocket and cloud sync show.
///
/// ```json
/// {
///   "id": "demo:living_ceiling", "name": "Ceiling light", "name_by_user": false, "area": "living_room",
///   "adapter": "demo", "manufacturer": "Hearth", "model": "Demo color light",
///   "power_source": "mains",
///   "availability": {"state": "online", "since": "2026-11-28T21:19:46.123Z"},
///   "last_seen": "2026-11-28T21:19:46.123Z",
///   "features": [{"key": "state", "capability": "on_off", "type": "bool",
///                 "access": {"observe": true, "set": true, "get": false}, "category": "primary"}],
///   "state": {"state": {"value": true, "changed_at": "2026-...", "reported_at": "2026-..."}}
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Stable id, `<adapter>:<native id>`.
    pub id: DeviceId,
    /// The name shown to users: the user's if they gave one, else the adapter's.
    pub name: String,
    /// Whether `name` was given by the user (then re-discovery keeps it).
    #[serde(default)]
    pub name_by_user: bool,
    /// The area id, if the device is placed in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// The adapter that owns it.
    pub adapter: String,
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// The gateway or bridge it hangs from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<DeviceId>,
    /// Where its power comes from.
    #[serde(default)]
    pub power_source: PowerSource,
    /// Whether it can be reached now.
    #[serde(default)]
    pub availability: Availability,
    /// When the hub last heard from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Its features.
    pub features: Vec<Feature>,
    /// The latest value of each observed feature.
    #[serde(default)]
    pub state: BTreeMap<String, FeatureState>,
}

impl Device {
    /// A new device from an adapter's description, with no state yet.
    pub fn from_descriptor(d: DeviceDescriptor) -> Device {
        Device {
            adapter: d.id.adapter().to_owned(),
            id: d.id,
            name: d.name,
            name_by_user: false,
            area: None,
            manufacturer: d.manufacturer,
            model: d.model,
            firmware: d.firmware,
            via: d.via,
            power_source: d.power_source,
            availability: Availability::unknown(),
            last_seen: None,
            features: d.features,
            state: BTreeMap::new(),
        }
    }

    /// Takes a new description from the adapter, keeping the user's name and area and the state
    /// of features that still exist.
    pub fn apply_descriptor(&mut self, d: DeviceDescriptor) {
        if !self.name_by_user {
            self.name = d.name;
        }
        self.manufacturer = d.manufacturer;
        self.model = d.model;
        self.firmware = d.firmware;
        self.via = d.via;
        self.power_source = d.power_source;
        self.features = d.features;
        let keys: Vec<String> = self.features.iter().map(|f| f.key.clone()).collect();
        self.state.retain(|k, _| keys.contains(k));
    }

    /// The feature with this key.
    pub fn feature(&self, key: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.key == key)
    }

    /// The current value of a feature.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.state.get(key).map(|s| &s.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_capability_reads_as_other() {
        let c: Capability = serde_json::from_str("\"laser\"").expect("other");
        assert_eq!(c, Capability::Other);
        assert_eq!(serde_json::to_string(&Capability::ColorTemperature).ok().as_deref(), Some("\"color_temperature\""));
    }
}
