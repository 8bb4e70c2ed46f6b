//! Wire types of zigbee2mqtt's MQTT API: one type per topic the adapter reads or writes.
//!
//! Topics, under the base topic (`zigbee2mqtt` by default):
//! - `bridge/state` ([`BridgeState`]): retained, `{"state": "online"}`, or plain `online` before 1.22.
//! - `bridge/info` ([`BridgeInfo`]): retained; version, coordinator, `permit_join` and its end.
//! - `bridge/devices` ([`BridgeDevice`] list): retained; the coordinator first.
//! - `bridge/groups` ([`BridgeGroup`] list): retained.
//! - `bridge/event` ([`BridgeEvent`]): joins, interviews, leaves, announces.
//! - `bridge/request/<x>` ([`BridgeRequest`]) answered on `bridge/response/<x>` ([`BridgeResponse`]).
//! - `<friendly name>`: device state, a JSON object of properties.
//! - `<friendly name>/set`, `<friendly name>/get`: commands, JSON objects.
//! - `<friendly name>/availability` ([`Availability`]): `{"state": "online"}` or plain `online`.
//!
//! Every type keeps fields it does not know in `extra`, so a newer zigbee2mqtt never breaks
//! parsing and a round trip loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unknown fields, kept for round trips.
pub type Extra = BTreeMap<String, Value>;

/// `online` or `offline`, as the bridge and devices report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineState {
    /// Reachable.
    Online,
    /// Not reachable.
    Offline,
}

/// `bridge/state` and `<device>/availability`: `{"state": "online"}` (2.x, and 1.x with
/// `legacy_availability_payload: false`) or the plain string `online` (older 1.x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Availability {
    /// `{"state": "online"}`.
    Json {
        /// The state.
        state: OnlineState,
        /// Other fields.
        #[serde(flatten)]
        extra: Extra,
    },
    /// `online` (not valid JSON: read with [`Availability::parse`]).
    Plain(OnlineState),
}

impl Availability {
    /// Reads either form from a payload.
    pub fn parse(payload: &[u8]) -> Option<OnlineState> {
        if let Ok(a) = serde_json::from_slice::<Availability>(payload) {
            return Some(a.state());
        }
        match std::str::from_utf8(payload).ok()?.trim() {
            "online" => Some(OnlineState::Online),
            "offline" => Some(OnlineState::Offline),
            _ => None,
        }
    }

    /// The state.
    pub fn state(&self) -> OnlineState {
        match self {
            Availability::Json { state, .. } | Availability::Plain(state) => *state,
        }
    }
}

/// The bridge's state (`bridge/state`); the same shape as device availability.
pub type BridgeState = Availability;

/// `bridge/info`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BridgeInfo {
    /// zigbee2mqtt's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Git commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<Coordinator>,
    /// Whether joining is permitted now.
    #[serde(default)]
    pub permit_join: bool,
    /// 2.x: when permit join ends, milliseconds since 1970.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_join_end: Option<i64>,
    /// 1.x: seconds left of permit join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_join_timeout: Option<i64>,
    /// Whether a restart is needed to apply settings.
    #[serde(default)]
    pub restart_required: bool,
    /// Log level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Other fields (network, config, config_schema ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The coordinator in `bridge/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coordinator {
    /// Its IEEE address (2.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ieee_address: Option<String>,
    /// `zStack3x0`, `EmberZNet` ...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Firmware details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `type` of a device in `bridge/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceType {
    /// The coordinator (the hub's radio).
    Coordinator,
    /// A mains-powered router.
    Router,
    /// An end device (often on battery).
    EndDevice,
    /// A Green Power device.
    GreenPower,
    /// Not known.
    Unknown,
}

/// How far the interview of a device got (2.x `interview_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterviewState {
    /// Not started.
    Pending,
    /// Under way.
    InProgress,
    /// Done.
    Successful,
    /// Failed.
    Failed,
}

/// One entry of `bridge/devices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeDevice {
    /// The device's stable address, `0x00158d0001a2b3c4`.
    pub ieee_address: String,
    /// Coordinator, Router, EndDevice.
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// The 16-bit network address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<u32>,
    /// Whether zigbee2mqtt has a definition for it.
    #[serde(default)]
    pub supported: bool,
    /// The name the user gave it in zigbee2mqtt; its MQTT topic.
    pub friendly_name: String,
    /// Disabled in zigbee2mqtt.
    #[serde(default)]
    pub disabled: bool,
    /// Free text the user wrote in zigbee2mqtt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the device says it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// The device's model id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// `Mains (single phase)`, `Battery`, `DC Source` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_source: Option<String>,
    /// Firmware build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_build_id: Option<String>,
    /// Firmware date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_code: Option<String>,
    /// 2.x interview state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interview_state: Option<InterviewState>,
    /// 1.x: interview under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interviewing: Option<bool>,
    /// 1.x: interview done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interview_completed: Option<bool>,
    /// zigbee2mqtt's definition, `null` for unsupported devices.
    #[serde(default)]
    pub definition: Option<Definition>,
    /// Endpoints with bindings, reporting, clusters, scenes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Value>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl BridgeDevice {
    /// Whether the interview is finished (either version's fields).
    pub fn interviewed(&self) -> bool {
        match self.interview_state {
            Some(s) => s == InterviewState::Successful,
            None => self.interview_completed.unwrap_or(true) && !self.interviewing.unwrap_or(false),
        }
    }
}

/// A device definition from zigbee-herdsman-converters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// Model, as the vendor names it.
    pub model: String,
    /// Vendor.
    pub vendor: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// What it exposes.
    #[serde(default)]
    pub exposes: Vec<Expose>,
    /// Device-specific options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<Value>>,
    /// Whether it takes firmware updates.
    #[serde(default)]
    pub supports_ota: bool,
    /// `native`, `generated` or `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Other fields (icon ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Access bit: the property is published in state.
pub const ACCESS_STATE: u8 = 1;
/// Access bit: the property can be set with `/set`.
pub const ACCESS_SET: u8 = 2;
/// Access bit: the property can be read with `/get`.
pub const ACCESS_GET: u8 = 4;

/// Reads a list, or an object keyed by indices (`{"0": ..., "1": ...}`) in index order.
fn list_or_indexed_map<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        List(Vec<T>),
        Map(BTreeMap<String, T>),
    }
    Ok(match Option::<Either<T>>::deserialize(d)? {
        None => None,
        Some(Either::List(v)) => Some(v),
        Some(Either::Map(m)) => {
            let mut items: Vec<(u64, T)> = m.into_iter().map(|(k, v)| (k.parse().unwrap_or(u64::MAX), v)).collect();
            items.sort_by_key(|(k, _)| *k);
            Some(items.into_iter().map(|(_, v)| v).collect())
        }
    })
}

/// A preset of a numeric expose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: Value,
    /// What it means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A list's item type: an expose (2.x) or a type name (1.x: `"number"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ItemType {
    /// An expose.
    Expose(Box<Expose>),
    /// A type name.
    Name(String),
}

/// One expose: a generic type (`binary`, `numeric`, `enum`, `text`, `composite`, `list`) or a
/// specific type (`light`, `switch`, `fan`, `cover`, `lock`, `climate`) with `features`.
///
/// The type is kept as text, so an expose type added after this build parses and is reported as
/// unsupported instead of failing the device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Expose {
    /// `binary`, `numeric`, `enum`, `text`, `composite`, `list`, `light`, `switch` ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Its name (`brightness`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A human label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Its key in state payloads (`brightness_l2` when endpoint-scoped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// What it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Access bits ([`ACCESS_STATE`], [`ACCESS_SET`], [`ACCESS_GET`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<u8>,
    /// The endpoint it belongs to (`l1`, `left`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `config` or `diagnostic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Unit of a numeric (`°C`, `mired` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Binary: the value meaning on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_on: Option<Value>,
    /// Binary: the value meaning off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_off: Option<Value>,
    /// Binary: the value that toggles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_toggle: Option<Value>,
    /// Numeric: lowest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_min: Option<f64>,
    /// Numeric: highest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_max: Option<f64>,
    /// Numeric: resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_step: Option<f64>,
    /// Numeric: named values. A few definitions build the list in a way that serialises as an
    /// object keyed `"0"`, `"1"` ... (zigbee2mqtt publishes it so); both forms are read.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "list_or_indexed_map")]
    pub presets: Option<Vec<Preset>>,
    /// Enum: allowed values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<Value>>,
    /// Composite and specific types: the parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<Expose>>,
    /// List: the item type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_type: Option<ItemType>,
    /// List: fewest items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_min: Option<u32>,
    /// List: most items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_max: Option<u32>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Expose {
    /// Access bits, `published` when absent (specific types carry none).
    pub fn access_bits(&self) -> u8 {
        self.access.unwrap_or(ACCESS_STATE)
    }
}

/// One entry of `bridge/groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeGroup {
    /// The group id.
    pub id: u32,
    /// Its name; its MQTT topic.
    pub friendly_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its scenes.
    #[serde(default)]
    pub scenes: Vec<Value>,
    /// Its members.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    /// The member device.
    pub ieee_address: String,
    /// Its endpoint.
    pub endpoint: Value,
}

/// `bridge/event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeEvent {
    /// `device_joined`, `device_interview`, `device_leave`, `device_announce`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `friendly_name`, `ieee_address`, and for interviews `status` (started, successful, failed).
    #[serde(default)]
    pub data: Value,
}

impl BridgeEvent {
    /// The device's IEEE address, if the event names one.
    pub fn ieee_address(&self) -> Option<&str> {
        self.data.get("ieee_address").and_then(Value::as_str)
    }
}

/// A request on `bridge/request/<x>`: its fields and a transaction id echoed in the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeRequest {
    /// Matches the response to this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// The request's fields (`time`, `id`, `from`/`to`, `force` ...).
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

/// `ok` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseStatus {
    /// Done.
    Ok,
    /// Refused or failed; see `error`.
    Error,
}

/// A response on `bridge/response/<x>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeResponse {
    /// What was done.
    #[serde(default)]
    pub data: Value,
    /// Ok or error.
    pub status: ResponseStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The request's transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<Value>,
}

/// A device state payload: property to value (`{"state": "ON", "brightness": 254}`).
pub type DeviceState = serde_json::Map<String, Value>;
/// A `/set` payload.
pub type SetPayload = serde_json::Map<String, Value>;
/// A `/get` payload: property to `""`.
pub type GetPayload = serde_json::Map<String, Value>;
