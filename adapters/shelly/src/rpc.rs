//! The Shelly Gen2+ RPC (Plus, Pro, Gen3, Gen4) mapped onto Hearth's model: pure functions, no I/O.
//!
//! # Frames
//! The devices speak JSON-RPC-like frames over HTTP (`POST /rpc`), WebSocket (`/rpc`), MQTT and UDP:
//! a [`Request`] `{"id", "src", "method", "params"}`, answered by a [`Response`] carrying `result`
//! or `error: {code, message}`, and [`Notification`]s the device sends on its own
//! (`NotifyStatus`, `NotifyFullStatus`, `NotifyEvent`). [`parse_frame`] reads what a device sends
//! and never panics; its errors say what is wrong.
//!
//! # Identity
//! [`DeviceInfo`] is the result of `Shelly.GetDeviceInfo`. The device id is `shelly:<id>`, the
//! device's own id (`shellyplus1pm-a8032ab12345`), never its IP address. [`model_name`] names
//! the common model codes (`SNSW-001P16EU` is "Shelly Plus 1PM"); an unknown code keeps the
//! firmware's app name.
//!
//! # Devices and features
//! [`DeviceMapping::new`] reads `Shelly.GetConfig` and `Shelly.GetStatus` (or the params of a
//! `NotifyFullStatus`) and describes the device. Every component instance (`switch:1`, `cover:0`,
//! `input:0`, `em:0` with its `emdata:0` ...) becomes a group of features:
//!
//! | component | features (base keys) |
//! |---|---|
//! | `switch` | `state` (on/off, settable), and when the status has them `power` (W), `energy` and `energy_returned` (kWh from `aenergy.total` / `ret_aenergy.total` in Wh), `voltage` (V), `current` (A), `device_temperature` (°C, diagnostic) |
//! | `light` | `state`, `brightness` (%, settable), and the meters of a switch |
//! | `cover` | `cover_position` (%, 0 closed, 100 open; settable; only when `pos_control` is true), `cover_state` (`open`, `close`, `stop`; settable), and the meters of a switch |
//! | `input` | type `switch`: `input` (on/off, read-only); type `button`: `action` (events only); type `analog`: `input_level` (%) |
//! | `pm1` | `power`, `energy`, `energy_returned`, `voltage`, `current` |
//! | `em1` + `em1data` | `power` (`act_power`), `energy`, `energy_returned`, `voltage`, `current` |
//! | `em` + `emdata` | `power` (`total_act_power`), `current` (`total_current`), `energy` (`total_act`), `energy_returned` (`total_act_ret`), and per phase (`a`, `b`, `c`) `power`, `voltage`, `current`, `energy`, `energy_returned` on endpoints `phase_a` ... |
//! | `temperature`, `humidity`, `illuminance` | `temperature` (°C), `humidity` (%), `illuminance` (lx) |
//! | `smoke`, `flood` | `smoke`, `water_leak` |
//! | `devicepower` | `battery` (%), `battery_voltage` (V), `external_power` (diagnostic) |
//! | `wifi` | `signal_strength` (dBm, diagnostic) from `rssi` |
//!
//! **Keys and endpoints** follow the model: a component kind with one instance keeps the bare
//! keys (`state`, `power`); a kind with several instances puts each on an endpoint named after
//! the component key, `switch:1` becoming endpoint `switch_1`, and its keys become
//! `<key>_<endpoint>` (`state_switch_1`, `power_switch_1`). If two single instances would share a
//! key, both move to their endpoints. Phase features of an energy meter sit on `phase_a` (or
//! `em_0_phase_a` when the meter is on an endpoint): `power_phase_a`.
//!
//! **Labels** come from the component's `name` in the configuration: the main feature of a
//! component takes the name ("Kitchen"), the others the name and what they are ("Kitchen power").
//!
//! **Access**: everything read from the status can be refreshed (`Shelly.GetStatus`), except on
//! battery devices (those with a `devicepower` component), which sleep.
//!
//! # State and events
//! [`DeviceMapping::values`] reads a status object, whole (`Shelly.GetStatus`,
//! `NotifyFullStatus`) or partial (`NotifyStatus` carries only what changed), into feature values
//! in canonical units. [`DeviceMapping::events`] reads `NotifyEvent`: an input in button mode
//! fires its `action` feature with
//!
//! | Shelly event | Hearth event |
//! |---|---|
//! | `single_push` | `single` |
//! | `double_push` | `double` |
//! | `triple_push` | `triple` |
//! | `long_push` | `hold` |
//! | `btn_down` | `press` |
//! | `btn_up` | `release` |
//!
//! and a `config_changed` event of any component tells the adapter to read the configuration again.
//!
//! A cover's `state` maps to `cover_state` as: `open` and `opening` are `open`, `closed` and
//! `closing` are `close`, `stopped` is `stop`; `calibrating` reports nothing.
//!
//! # Commands
//! [`DeviceMapping::command`] turns a [`CommandRequest`] into [`Call`]s: `Switch.Set {id, on}`,
//! `Switch.Toggle`, `Light.Set {id, on, brightness, transition_duration}`, `Light.Toggle`,
//! `Cover.GoToPosition {id, pos}`, `Cover.Open`, `Cover.Close`, `Cover.Stop`, and a refresh is one
//! `Shelly.GetStatus`.

use std::collections::{BTreeMap, BTreeSet};

use hearth_sdk::{
    Access, AdapterEvent, Capability, Category, CommandRequest, DeviceDescriptor, DeviceId, Feature, PowerSource,
    Refresh, Value, ValueType,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The adapter's id, the prefix of every Shelly device id.
pub const ADAPTER_ID: &str = "shelly";

/// The manufacturer every descriptor names.
pub const MANUFACTURER: &str = "Shelly";

/// The values of a cover's `cover_state` feature.
pub const COVER_STATES: [&str; 3] = ["open", "close", "stop"];

/// The events of an input in button mode, in the order of the table in the module docs.
pub const BUTTON_EVENTS: [&str; 6] = ["single", "double", "triple", "hold", "press", "release"];

/// Why a frame or a result could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Json(String),
    /// Something that must be a JSON object is not.
    #[error("{0} is not a JSON object")]
    NotAnObject(&'static str),
    /// Something is missing or has the wrong form.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read (`response`, `Shelly.GetDeviceInfo result`).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A Gen1 device, which has no RPC API.
    #[error("device `{id}` is generation {generation}; only Gen2 and later devices speak the RPC API")]
    Generation {
        /// The device's id.
        id: String,
        /// Its generation.
        generation: u64,
    },
}

fn invalid(what: &'static str, reason: impl Into<String>) -> RpcError {
    RpcError::Invalid { what, reason: reason.into() }
}

// ------------------------------------------------------------------------------------------------
// Frames
// ------------------------------------------------------------------------------------------------

/// A method call, before the connection gives it an id: `Switch.Set` with `{"id": 0, "on": true}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method, as the device names it (`Switch.Set`).
    pub method: String,
    /// Its parameters; empty for none.
    pub params: Map<String, Json>,
}

impl Call {
    /// A call of `method` without parameters.
    pub fn new(method: &str) -> Call {
        Call { method: method.to_owned(), params: Map::new() }
    }

    /// The same call with one more parameter.
    pub fn param(mut self, key: &str, value: impl Into<Json>) -> Call {
        self.params.insert(key.to_owned(), value.into());
        self
    }

    /// `Shelly.GetDeviceInfo`: the device's identity.
    pub fn get_device_info() -> Call {
        Call::new("Shelly.GetDeviceInfo")
    }

    /// `Shelly.GetConfig`: the configuration of every component.
    pub fn get_config() -> Call {
        Call::new("Shelly.GetConfig")
    }

    /// `Shelly.GetStatus`: the status of every component.
    pub fn get_status() -> Call {
        Call::new("Shelly.GetStatus")
    }

    /// The request frame of this call with the connection's `id` and `src`.
    pub fn request(&self, id: u64, src: &str) -> Request {
        Request {
            id,
            src: src.to_owned(),
            method: self.method.clone(),
            params: if self.params.is_empty() { None } else { Some(self.params.clone()) },
        }
    }
}

/// A request frame: `{"id": 1, "src": "hearth", "method": "Switch.Set", "params": {"id": 0, "on": true}}`.
///
/// `src` names the caller; over a WebSocket the device sends its notifications to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Matches the response to the request.
    pub id: u64,
    /// Who asks.
    pub src: String,
    /// The method.
    pub method: String,
    /// Its parameters, left out when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Json>>,
}

impl Request {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        let mut frame = Map::new();
        frame.insert("id".into(), self.id.into());
        frame.insert("src".into(), self.src.clone().into());
        frame.insert("method".into(), self.method.clone().into());
        if let Some(params) = &self.params {
            frame.insert("params".into(), Json::Object(params.clone()));
        }
        Json::Object(frame).to_string()
    }
}

/// What a device sends: the answer to a request, or a notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The answer to a request.
    Response(Response),
    /// Something the device sends on its own.
    Notification(Notification),
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request.
    pub id: u64,
    /// The device's id, when given.
    pub src: Option<String>,
    /// The caller's `src`, when given.
    pub dst: Option<String>,
    /// `result` (`null` when the method returns nothing), or the device's `error`.
    pub result: Result<Json, RemoteError>,
}

/// An error the device answered with: `{"code": -105, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the device refused the call: {message} (error {code})")]
pub struct RemoteError {
    /// The error code (`-103` invalid argument, `-105` not found, `401` unauthorized ...).
    pub code: i64,
    /// The device's own words.
    pub message: String,
}

/// The method of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyMethod {
    /// `NotifyStatus`: what changed in the status of some components.
    Status,
    /// `NotifyFullStatus`: the whole status (battery devices when they wake up; WebSocket clients).
    FullStatus,
    /// `NotifyEvent`: events that are not status (button pushes, configuration changes).
    Event,
    /// A method this mapping does not know.
    Other(String),
}

impl NotifyMethod {
    /// The method's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            NotifyMethod::Status => "NotifyStatus",
            NotifyMethod::FullStatus => "NotifyFullStatus",
            NotifyMethod::Event => "NotifyEvent",
            NotifyMethod::Other(name) => name,
        }
    }

    fn parse(name: &str) -> NotifyMethod {
        match name {
            "NotifyStatus" => NotifyMethod::Status,
            "NotifyFullStatus" => NotifyMethod::FullStatus,
            "NotifyEvent" => NotifyMethod::Event,
            other => NotifyMethod::Other(other.to_owned()),
        }
    }
}

/// A notification: `{"src": "shellypro4pm-...", "dst": "user_1", "method": "NotifyStatus", "params": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The device's id.
    pub src: String,
    /// Who it is for, when given.
    pub dst: Option<String>,
    /// What it is.
    pub method: NotifyMethod,
    /// Its parameters, always a JSON object (empty when the frame has none): component statuses
    /// keyed `switch:0` with `ts`, or `{"ts": ..., "events": [...]}`.
    pub params: Json,
}

/// Reads a frame a device sent.
///
/// A frame with `result` or `error` is a response (it must have an `id`); one with `method` is a
/// notification (it must have `src`, and `params` must be an object; a `NotifyEvent`'s params
/// need an `events` array). Never panics.
pub fn parse_frame(text: &str) -> Result<Frame, RpcError> {
    let json: Json = serde_json::from_str(text).map_err(|e| RpcError::Json(e.to_string()))?;
    let frame = json.as_object().ok_or(RpcError::NotAnObject("the frame"))?;
    let text_field = |key: &str, what: &'static str| -> Result<Option<String>, RpcError> {
        match frame.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(what, format!("`{key}` is {}, not a string", kind_of(other)))),
        }
    };
    if frame.contains_key("result") || frame.contains_key("error") {
        let id = match frame.get("id") {
            Some(id) => id
                .as_u64()
                .ok_or_else(|| invalid("response", format!("`id` {id} is not a request id (a whole number from 0)")))?,
            None => return Err(invalid("response", "`id` is missing")),
        };
        let src = text_field("src", "response")?;
        let dst = text_field("dst", "response")?;
        let result = match frame.get("error") {
            Some(Json::Null) | None => Ok(frame.get("result").cloned().unwrap_or(Json::Null)),
            Some(Json::Object(error)) => {
                let code = error
                    .get("code")
                    .and_then(Json::as_i64)
                    .ok_or_else(|| invalid("response", "`error.code` is missing or not a whole number"))?;
                let message = error.get("message").and_then(Json::as_str).unwrap_or_default().to_owned();
                Err(RemoteError { code, message })
            }
            Some(other) => return Err(invalid("response", format!("`error` is {}, not an object", kind_of(other)))),
        };
        return Ok(Frame::Response(Response { id, src, dst, result }));
    }
    let method = match frame.get("method") {
        Some(Json::String(m)) => NotifyMethod::parse(m),
        Some(other) => return Err(invalid("notification", format!("`method` is {}, not a string", kind_of(other)))),
        None => {
            return Err(invalid(
                "the frame",
                "neither a response (no `result` or `error`) nor a notification (no `method`)",
            ));
        }
    };
    let src = text_field("src", "notification")?
        .ok_or_else(|| invalid("notification", format!("{} without `src`", method.name())))?;
    let dst = text_field("dst", "notification")?;
    let params = match frame.get("params") {
        None | Some(Json::Null) => Json::Object(Map::new()),
        Some(Json::Object(p)) => Json::Object(p.clone()),
        Some(other) => {
            return Err(invalid(
                "notification",
                format!("{} with `params` that is {}, not an object", method.name(), kind_of(other)),
            ));
        }
    };
    if method == NotifyMethod::Event && !params.get("events").is_some_and(Json::is_array) {
        return Err(invalid("notification", "NotifyEvent without an `events` array"));
    }
    Ok(Frame::Notification(Notification { src, dst, method, params }))
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

// ------------------------------------------------------------------------------------------------
// Identity
// ------------------------------------------------------------------------------------------------

/// The result of `Shelly.GetDeviceInfo`: who the device is.
///
/// ```json
/// {"name": null, "id": "shellyplus1pm-a8032ab12345", "mac": "A8032AB12345", "slot": 0,
///  "model": "SNSW-001P16EU", "gen": 2, "fw_id": "20231219-133934/1.1.0-g34b5d4f", "ver": "1.1.0",
///  "app": "Plus1PM", "auth_en": false, "auth_domain": null}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device's own id, `<app name>-<mac>` in lowercase: `shellyplus1pm-a8032ab12345`.
    pub id: String,
    /// The name the user gave it on the device, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its MAC address, as 12 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The model code: `SNSW-001P16EU`.
    pub model: String,
    /// The generation (`gen`): 2 (Plus, Pro), 3, 4.
    #[serde(rename = "gen")]
    pub generation: u64,
    /// The firmware build: `20231219-133934/1.1.0-g34b5d4f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw_id: Option<String>,
    /// The firmware version: `1.1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<String>,
    /// The firmware's application: `Plus1PM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Whether the device asks for a password (HTTP digest authentication).
    #[serde(default)]
    pub auth_en: bool,
    /// The active profile of a multi-profile device (`switch`, `cover`, `triphase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

impl DeviceInfo {
    /// Reads the result of `Shelly.GetDeviceInfo`, refusing Gen1 devices and ids that are empty
    /// or hold anything but ASCII letters, digits, `-` and `_`.
    pub fn parse(result: &Json) -> Result<DeviceInfo, RpcError> {
        const WHAT: &str = "Shelly.GetDeviceInfo result";
        if !result.is_object() {
            return Err(RpcError::NotAnObject(WHAT));
        }
        let info = DeviceInfo::deserialize(result).map_err(|e| invalid(WHAT, e.to_string()))?;
        if info.id.is_empty() {
            return Err(invalid(WHAT, "`id` is empty"));
        }
        if let Some(c) = info.id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            return Err(invalid(
                WHAT,
                format!("`id` {:?} holds {c:?}; a device id is letters, digits, `-` and `_`", info.id),
            ));
        }
        if info.generation < 2 {
            return Err(RpcError::Generation { id: info.id, generation: info.generation });
        }
        Ok(info)
    }

    /// The Hearth device id: `shelly:<id>`.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::new(ADAPTER_ID, &self.id)
    }

    /// A human model name: "Shelly Plus 1PM" for a known code, else the firmware's app name,
    /// else the code.
    pub fn model_name(&self) -> String {
        match (model_name(&self.model), &self.app) {
            (Some(name), _) => name.to_owned(),
            (None, Some(app)) if !app.is_empty() => app.clone(),
            (None, _) => self.model.clone(),
        }
    }

    /// The firmware version (`ver`), else the build (`fw_id`).
    pub fn firmware(&self) -> Option<String> {
        self.ver.clone().or_else(|| self.fw_id.clone()).filter(|f| !f.is_empty())
    }
}

/// Model codes and their names. Sources: the model codes in Shelly's Gen2+ API documentation
/// (shelly-api-docs.shelly.cloud, "Devices") and the model table of home-assistant-libs/aioshelly.
const MODELS: &[(&str, &str)] = &[
    // Gen2: Plus
    ("SNSW-001X16EU", "Shelly Plus 1"),
    ("SNSW-001X15UL", "Shelly Plus 1 UL"),
    ("SNSW-001X8EU", "Shelly Plus 1 Mini"),
    ("SNSW-001P16EU", "Shelly Plus 1PM"),
    ("SNSW-001P15UL", "Shelly Plus 1PM UL"),
    ("SNSW-001P8EU", "Shelly Plus 1PM Mini"),
    ("SNSW-002P16EU", "Shelly Plus 2PM"),
    ("SNSW-102P16EU", "Shelly Plus 2PM"),
    ("SNSW-002P15UL", "Shelly Plus 2PM UL"),
    ("SNPM-001PCEU16", "Shelly Plus PM Mini"),
    ("SNPL-00112EU", "Shelly Plus Plug S"),
    ("SNPL-10112EU", "Shelly Plus Plug S"),
    ("SNPL-00110IT", "Shelly Plus Plug IT"),
    ("SNPL-00112UK", "Shelly Plus Plug UK"),
    ("SNPL-00116US", "Shelly Plus Plug US"),
    ("SNSN-0013A", "Shelly Plus H&T"),
    ("SNSN-0024X", "Shelly Plus i4"),
    ("SNSN-0D24X", "Shelly Plus i4DC"),
    ("SNSN-0031Z", "Shelly Plus Smoke"),
    ("SNSN-0043X", "Shelly Plus Uni"),
    ("SNDC-0D4P10WW", "Shelly Plus RGBW PM"),
    ("SNDM-0013US", "Shelly Plus Wall Dimmer"),
    ("SNDM-00100WW", "Shelly Plus 0-10V Dimmer"),
    ("SNGW-BT01", "Shelly BLU Gateway"),
    // Gen2: Pro
    ("SPSW-001XE16EU", "Shelly Pro 1"),
    ("SPSW-101XE16EU", "Shelly Pro 1"),
    ("SPSW-201XE16EU", "Shelly Pro 1"),
    ("SPSW-001PE16EU", "Shelly Pro 1PM"),
    ("SPSW-101PE16EU", "Shelly Pro 1PM"),
    ("SPSW-201PE16EU", "Shelly Pro 1PM"),
    ("SPSW-002XE16EU", "Shelly Pro 2"),
    ("SPSW-102XE16EU", "Shelly Pro 2"),
    ("SPSW-202XE16EU", "Shelly Pro 2"),
    ("SPSW-002PE16EU", "Shelly Pro 2PM"),
    ("SPSW-102PE16EU", "Shelly Pro 2PM"),
    ("SPSW-202PE16EU", "Shelly Pro 2PM"),
    ("SPSW-003XE16EU", "Shelly Pro 3"),
    ("SPSW-004PE16EU", "Shelly Pro 4PM"),
    ("SPSW-104PE16EU", "Shelly Pro 4PM"),
    ("SPSW-204PE16EU", "Shelly Pro 4PM"),
    ("SPSH-002PE16EU", "Shelly Pro Dual Cover PM"),
    ("SPDM-001PE01EU", "Shelly Pro Dimmer 1PM"),
    ("SPDM-002PE01EU", "Shelly Pro Dimmer 2PM"),
    ("SPCC-001PE10EU", "Shelly Pro Dimmer 0/1-10V PM"),
    ("SPDC-0D5PE16EU", "Shelly Pro RGBWW PM"),
    ("SPEM-002CEBEU50", "Shelly Pro EM-50"),
    ("SPEM-003CEBEU", "Shelly Pro 3EM"),
    ("SPEM-003CEBEU120", "Shelly Pro 3EM"),
    ("SPEM-003CEBEU63", "Shelly Pro 3EM-3CT63"),
    ("SPEM-003CEBEU400", "Shelly Pro 3EM-400"),
    ("SAWD-0A1XX10EU1", "Shelly Wall Display"),
    // Gen3
    ("S3SW-001X16EU", "Shelly 1 Gen3"),
    ("S3SW-001X8EU", "Shelly 1 Mini Gen3"),
    ("S3SW-001P16EU", "Shelly 1PM Gen3"),
    ("S3SW-001P8EU", "Shelly 1PM Mini Gen3"),
    ("S3SW-0A1X1EUL", "Shelly 1L Gen3"),
    ("S3SW-0A2X4EUL", "Shelly 2L Gen3"),
    ("S3SW-002P16EU", "Shelly 2PM Gen3"),
    ("S3PM-001PCEU16", "Shelly PM Mini Gen3"),
    ("S3PL-00112EU", "Shelly Plug S Gen3"),
    ("S3PL-20112EU", "Shelly Outdoor Plug S Gen3"),
    ("S3SN-0U12A", "Shelly H&T Gen3"),
    ("S3SN-0024X", "Shelly i4 Gen3"),
    ("S3DM-0A101WWL", "Shelly Dimmer Gen3"),
    ("S3DM-0010WW", "Shelly Dimmer 0/1-10V PM Gen3"),
    ("S3EM-002CXCEU", "Shelly EM Gen3"),
    ("S3EM-003CXCEU63", "Shelly 3EM-63 Gen3"),
    ("S3SH-0A2P4EU", "Shelly Shutter"),
    ("S3GW-1DBT001", "Shelly BLU Gateway Gen3"),
    // Gen4
    ("S4SW-001X16EU", "Shelly 1 Gen4"),
    ("S4SW-001X8EU", "Shelly 1 Mini Gen4"),
    ("S4SW-001P16EU", "Shelly 1PM Gen4"),
    ("S4SW-001P8EU", "Shelly 1PM Mini Gen4"),
    ("S4SW-0A1X1EUL", "Shelly 1L Gen4"),
    ("S4SW-0A2X4EUL", "Shelly 2L Gen4"),
    ("S4SW-002P16EU", "Shelly 2PM Gen4"),
    ("S4DM-0A101WWL", "Shelly Dimmer Gen4"),
    ("S4EM-001PXCEU16", "Shelly EM Mini Gen4"),
    ("S4PL-00116US", "Shelly Plug US Gen4"),
    ("S4PL-00416EU", "Shelly Power Strip 4 Gen4"),
    ("S4PL-10416EU", "Shelly Power Strip 4 Gen4"),
    ("S4SN-0A24X", "Shelly i4 Gen4"),
    ("S4SN-0071A", "Shelly Flood Gen4"),
    ("S4SN-0U61X", "Shelly Presence Gen4"),
];

/// The human name of a model code (`SNSW-001P16EU` is "Shelly Plus 1PM"), for the common Gen2,
/// Gen3 and Gen4 models; `None` for a code not in the table.
pub fn model_name(code: &str) -> Option<&'static str> {
    MODELS.iter().find(|(c, _)| *c == code).map(|(_, name)| *name)
}

// ------------------------------------------------------------------------------------------------
// Components and their fields
// ------------------------------------------------------------------------------------------------

/// A component kind, in the order its features are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    Switch,
    Light,
    Cover,
    Pm1,
    Em1,
    Em,
    Input,
    Temperature,
    Humidity,
    Illuminance,
    Smoke,
    Flood,
    DevicePower,
    Wifi,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Switch => "switch",
            Kind::Light => "light",
            Kind::Cover => "cover",
            Kind::Pm1 => "pm1",
            Kind::Em1 => "em1",
            Kind::Em => "em",
            Kind::Input => "input",
            Kind::Temperature => "temperature",
            Kind::Humidity => "humidity",
            Kind::Illuminance => "illuminance",
            Kind::Smoke => "smoke",
            Kind::Flood => "flood",
            Kind::DevicePower => "devicepower",
            Kind::Wifi => "wifi",
        }
    }

    /// Whether `voltage`, `current` and the like are health information (a relay) rather than what
    /// the component is for (a meter).
    fn is_actuator(self) -> bool {
        matches!(self, Kind::Switch | Kind::Light | Kind::Cover)
    }
}

/// Which status object of a component a field lives in: `em:0` or its `emdata:0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Main,
    Data,
}

/// Reads a component key: `switch:0`, `emdata:0` (the data part of `em:0`), `wifi`.
fn parse_component(key: &str) -> Option<(Kind, u32, Part)> {
    if key == "wifi" {
        return Some((Kind::Wifi, 0, Part::Main));
    }
    let (name, id) = key.split_once(':')?;
    if id.is_empty() || id.len() > 9 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u32 = id.parse().ok()?;
    let (kind, part) = match name {
        "switch" => (Kind::Switch, Part::Main),
        "light" => (Kind::Light, Part::Main),
        "cover" => (Kind::Cover, Part::Main),
        "pm1" => (Kind::Pm1, Part::Main),
        "em1" => (Kind::Em1, Part::Main),
        "em1data" => (Kind::Em1, Part::Data),
        "em" => (Kind::Em, Part::Main),
        "emdata" => (Kind::Em, Part::Data),
        "input" => (Kind::Input, Part::Main),
        "temperature" => (Kind::Temperature, Part::Main),
        "humidity" => (Kind::Humidity, Part::Main),
        "illuminance" => (Kind::Illuminance, Part::Main),
        "smoke" => (Kind::Smoke, Part::Main),
        "flood" => (Kind::Flood, Part::Main),
        "devicepower" => (Kind::DevicePower, Part::Main),
        _ => return None,
    };
    Some((kind, id, part))
}

/// A phase of a three-phase meter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    A,
    B,
    C,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::A, Phase::B, Phase::C];

    fn lower(self) -> &'static str {
        match self {
            Phase::A => "a",
            Phase::B => "b",
            Phase::C => "c",
        }
    }

    fn upper(self) -> &'static str {
        match self {
            Phase::A => "A",
            Phase::B => "B",
            Phase::C => "C",
        }
    }
}

/// One value of a component's status, and the feature it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `output`: on or off.
    Output,
    /// `brightness`, %.
    Brightness,
    /// `apower`, W.
    Power,
    /// `aenergy.total`, Wh.
    Energy,
    /// `ret_aenergy.total`, Wh.
    ReturnedEnergy,
    /// `voltage`, V.
    Voltage,
    /// `current`, A.
    Current,
    /// `temperature.tC` of a relay, dimmer or cover.
    DeviceTemperature,
    /// `current_pos` of a calibrated cover, %.
    CoverPosition,
    /// `state` of a cover.
    CoverState,
    /// `state` of an input in switch mode.
    InputState,
    /// `percent` of an analog input.
    InputLevel,
    /// The pushes of an input in button mode (events only).
    Button,
    /// `tC` of a temperature sensor.
    Temperature,
    /// `rh`.
    Humidity,
    /// `lux`.
    Illuminance,
    /// `alarm` of a smoke detector.
    SmokeAlarm,
    /// `alarm` of a flood detector.
    FloodAlarm,
    /// `battery.percent`.
    Battery,
    /// `battery.V`.
    BatteryVoltage,
    /// `external.present`.
    ExternalPower,
    /// `rssi` of the Wi-Fi station.
    Signal,
    /// `total_act_power` of a three-phase meter, W.
    TotalPower,
    /// `total_current`, A.
    TotalCurrent,
    /// `<p>_act_power`, W.
    PhasePower(Phase),
    /// `<p>_voltage`, V.
    PhaseVoltage(Phase),
    /// `<p>_current`, A.
    PhaseCurrent(Phase),
    /// `emdata` `total_act`, Wh.
    TotalEnergy,
    /// `emdata` `total_act_ret`, Wh.
    TotalReturnedEnergy,
    /// `emdata` `<p>_total_act_energy`, Wh.
    PhaseEnergy(Phase),
    /// `emdata` `<p>_total_act_ret_energy`, Wh.
    PhaseReturnedEnergy(Phase),
    /// `act_power` of a single-phase meter, W.
    Em1Power,
    /// `em1data` `total_act_energy`, Wh.
    Em1Energy,
    /// `em1data` `total_act_ret_energy`, Wh.
    Em1ReturnedEnergy,
}

impl Field {
    fn part(self) -> Part {
        use Field::*;
        match self {
            TotalEnergy
            | TotalReturnedEnergy
            | PhaseEnergy(_)
            | PhaseReturnedEnergy(_)
            | Em1Energy
            | Em1ReturnedEnergy => Part::Data,
            _ => Part::Main,
        }
    }

    /// The status key whose presence means the component has this field.
    fn wire(self) -> String {
        use Field::*;
        match self {
            Output => "output".into(),
            Brightness => "brightness".into(),
            Power => "apower".into(),
            Energy => "aenergy".into(),
            ReturnedEnergy => "ret_aenergy".into(),
            Voltage => "voltage".into(),
            Current => "current".into(),
            DeviceTemperature => "temperature".into(),
            CoverPosition => "current_pos".into(),
            CoverState | InputState => "state".into(),
            InputLevel => "percent".into(),
            Button => String::new(),
            Temperature => "tC".into(),
            Humidity => "rh".into(),
            Illuminance => "lux".into(),
            SmokeAlarm | FloodAlarm => "alarm".into(),
            Battery | BatteryVoltage => "battery".into(),
            ExternalPower => "external".into(),
            Signal => "rssi".into(),
            TotalPower => "total_act_power".into(),
            TotalCurrent => "total_current".into(),
            PhasePower(p) => format!("{}_act_power", p.lower()),
            PhaseVoltage(p) => format!("{}_voltage", p.lower()),
            PhaseCurrent(p) => format!("{}_current", p.lower()),
            TotalEnergy => "total_act".into(),
            TotalReturnedEnergy => "total_act_ret".into(),
            PhaseEnergy(p) => format!("{}_total_act_energy", p.lower()),
            PhaseReturnedEnergy(p) => format!("{}_total_act_ret_energy", p.lower()),
            Em1Power => "act_power".into(),
            Em1Energy => "total_act_energy".into(),
            Em1ReturnedEnergy => "total_act_ret_energy".into(),
        }
    }

    /// Reads the field's value from its status object, in canonical units. `None` when the
    /// object does not carry it (a partial status) or carries `null` or the wrong type.
    fn read(self, status: &Map<String, Json>) -> Option<Value> {
        use Field::*;
        let wire = self.wire();
        let own = status.get(&wire);
        let number = || own.and_then(Json::as_f64);
        let nested = |inner: &str| own.and_then(|o| o.get(inner)).and_then(Json::as_f64);
        match self {
            Output | InputState | SmokeAlarm | FloodAlarm => own.and_then(Json::as_bool).map(Value::Bool),
            ExternalPower => own.and_then(|o| o.get("present")).and_then(Json::as_bool).map(Value::Bool),
            Energy | ReturnedEnergy => nested("total").map(|wh| Value::Number(wh_to_kwh(wh))),
            TotalEnergy
            | TotalReturnedEnergy
            | PhaseEnergy(_)
            | PhaseReturnedEnergy(_)
            | Em1Energy
            | Em1ReturnedEnergy => number().map(|wh| Value::Number(wh_to_kwh(wh))),
            DeviceTemperature => nested("tC").map(Value::Number),
            Battery => nested("percent").map(Value::Number),
            BatteryVoltage => nested("V").map(Value::Number),
            CoverState => own.and_then(Json::as_str).and_then(cover_motion).map(Value::from),
            Signal => number().filter(|rssi| *rssi < 0.0).map(Value::Number),
            Button => None,
            Brightness | Power | Voltage | Current | CoverPosition | InputLevel | Temperature | Humidity
            | Illuminance | TotalPower | TotalCurrent | PhasePower(_) | PhaseVoltage(_) | PhaseCurrent(_)
            | Em1Power => number().map(Value::Number),
        }
    }

    fn phase(self) -> Option<Phase> {
        use Field::*;
        match self {
            PhasePower(p) | PhaseVoltage(p) | PhaseCurrent(p) | PhaseEnergy(p) | PhaseReturnedEnergy(p) => Some(p),
            _ => None,
        }
    }

    /// The feature key before any endpoint.
    fn base_key(self) -> &'static str {
        use Field::*;
        match self {
            Output => "state",
            Brightness => "brightness",
            Power | TotalPower | PhasePower(_) | Em1Power => "power",
            Energy | TotalEnergy | PhaseEnergy(_) | Em1Energy => "energy",
            ReturnedEnergy | TotalReturnedEnergy | PhaseReturnedEnergy(_) | Em1ReturnedEnergy => "energy_returned",
            Voltage | PhaseVoltage(_) => "voltage",
            Current | TotalCurrent | PhaseCurrent(_) => "current",
            DeviceTemperature => "device_temperature",
            CoverPosition => "cover_position",
            CoverState => "cover_state",
            InputState => "input",
            InputLevel => "input_level",
            Button => "action",
            Temperature => "temperature",
            Humidity => "humidity",
            Illuminance => "illuminance",
            SmokeAlarm => "smoke",
            FloodAlarm => "water_leak",
            Battery => "battery",
            BatteryVoltage => "battery_voltage",
            ExternalPower => "external_power",
            Signal => "signal_strength",
        }
    }

    fn capability(self) -> Capability {
        use Field::*;
        match self {
            Output | InputState => Capability::OnOff,
            Brightness => Capability::Brightness,
            Power | TotalPower | PhasePower(_) | Em1Power => Capability::Power,
            Energy
            | ReturnedEnergy
            | TotalEnergy
            | TotalReturnedEnergy
            | PhaseEnergy(_)
            | PhaseReturnedEnergy(_)
            | Em1Energy
            | Em1ReturnedEnergy => Capability::Energy,
            Voltage | PhaseVoltage(_) | BatteryVoltage => Capability::Voltage,
            Current | TotalCurrent | PhaseCurrent(_) => Capability::Current,
            DeviceTemperature | Temperature => Capability::Temperature,
            CoverPosition => Capability::CoverPosition,
            CoverState => Capability::CoverState,
            InputLevel | ExternalPower => Capability::Other,
            Button => Capability::Action,
            Humidity => Capability::Humidity,
            Illuminance => Capability::Illuminance,
            SmokeAlarm => Capability::Smoke,
            FloodAlarm => Capability::WaterLeak,
            Battery => Capability::Battery,
            Signal => Capability::SignalStrength,
        }
    }

    fn value_type(self) -> ValueType {
        use Field::*;
        let non_negative = ValueType::Number { min: Some(0.0), max: None, step: None };
        match self {
            Output | InputState | SmokeAlarm | FloodAlarm | ExternalPower => ValueType::Bool,
            Brightness | CoverPosition | Battery => ValueType::range(0.0, 100.0, 1.0),
            InputLevel | Humidity => ValueType::Number { min: Some(0.0), max: Some(100.0), step: None },
            CoverState => ValueType::enumeration(COVER_STATES),
            Button => ValueType::enumeration(BUTTON_EVENTS),
            Energy
            | ReturnedEnergy
            | TotalEnergy
            | TotalReturnedEnergy
            | PhaseEnergy(_)
            | PhaseReturnedEnergy(_)
            | Em1Energy
            | Em1ReturnedEnergy
            | Illuminance => non_negative,
            _ => ValueType::number(),
        }
    }

    fn settable(self) -> bool {
        matches!(self, Field::Output | Field::Brightness | Field::CoverPosition | Field::CoverState)
    }

    fn category(self, kind: Kind) -> Category {
        use Field::*;
        match self {
            DeviceTemperature | Battery | BatteryVoltage | ExternalPower | Signal => Category::Diagnostic,
            Voltage | Current if kind.is_actuator() => Category::Diagnostic,
            _ => Category::Primary,
        }
    }

    /// What it is, for labels: "Power", "Phase A voltage".
    fn what(self) -> String {
        use Field::*;
        match self {
            Output => "State".into(),
            Brightness => "Brightness".into(),
            Power | TotalPower | Em1Power => "Power".into(),
            Energy | TotalEnergy | Em1Energy => "Energy".into(),
            ReturnedEnergy | TotalReturnedEnergy | Em1ReturnedEnergy => "Returned energy".into(),
            Voltage => "Voltage".into(),
            Current | TotalCurrent => "Current".into(),
            DeviceTemperature => "Device temperature".into(),
            CoverPosition => "Position".into(),
            CoverState => "Motion".into(),
            InputState => "Input".into(),
            InputLevel => "Input level".into(),
            Button => "Button".into(),
            Temperature => "Temperature".into(),
            Humidity => "Humidity".into(),
            Illuminance => "Illuminance".into(),
            SmokeAlarm => "Smoke".into(),
            FloodAlarm => "Water leak".into(),
            Battery => "Battery".into(),
            BatteryVoltage => "Battery voltage".into(),
            ExternalPower => "External power".into(),
            Signal => "Wi-Fi signal".into(),
            PhasePower(p) => format!("Phase {} power", p.upper()),
            PhaseVoltage(p) => format!("Phase {} voltage", p.upper()),
            PhaseCurrent(p) => format!("Phase {} current", p.upper()),
            PhaseEnergy(p) => format!("Phase {} energy", p.upper()),
            PhaseReturnedEnergy(p) => format!("Phase {} returned energy", p.upper()),
        }
    }

    /// Whether the key says it all, so that an unnamed component's feature needs no label.
    fn explains_itself(self) -> bool {
        use Field::*;
        !matches!(
            self,
            ReturnedEnergy
                | TotalReturnedEnergy
                | Em1ReturnedEnergy
                | DeviceTemperature
                | InputLevel
                | BatteryVoltage
                | ExternalPower
                | PhasePower(_)
                | PhaseVoltage(_)
                | PhaseCurrent(_)
                | PhaseEnergy(_)
                | PhaseReturnedEnergy(_)
        )
    }
}

/// Wh to kWh, rounded to the mWh the devices report, so a repeated report gives the same number.
fn wh_to_kwh(wh: f64) -> f64 {
    (wh * 1000.0).round() / 1_000_000.0
}

/// A cover's `state` as `cover_state`: see the module docs.
fn cover_motion(state: &str) -> Option<&'static str> {
    match state {
        "open" | "opening" => Some("open"),
        "closed" | "closing" => Some("close"),
        "stopped" => Some("stop"),
        _ => None,
    }
}

/// A Shelly input event as the model's action event.
fn button_event(event: &str) -> Option<&'static str> {
    match event {
        "single_push" => Some("single"),
        "double_push" => Some("double"),
        "triple_push" => Some("triple"),
        "long_push" => Some("hold"),
        "btn_down" => Some("press"),
        "btn_up" => Some("release"),
        _ => None,
    }
}

fn present(obj: Option<&Map<String, Json>>, key: &str) -> bool {
    obj.and_then(|o| o.get(key)).is_some_and(|v| !v.is_null())
}

/// The fields a component instance has, given its configuration and status (either may be
/// partial or missing). The main feature comes first.
fn candidate_fields(
    kind: Kind,
    config: Option<&Map<String, Json>>,
    main: Option<&Map<String, Json>>,
    data: Option<&Map<String, Json>>,
) -> Vec<Field> {
    use Field::*;
    let mut fields = Vec::new();
    let meters = |fields: &mut Vec<Field>| {
        for f in [Power, Energy, ReturnedEnergy, Voltage, Current, DeviceTemperature] {
            if present(main, &f.wire()) {
                fields.push(f);
            }
        }
    };
    match kind {
        Kind::Switch => {
            fields.push(Output);
            meters(&mut fields);
        }
        Kind::Light => {
            fields.extend([Output, Brightness]);
            meters(&mut fields);
        }
        Kind::Cover => {
            if main.and_then(|m| m.get("pos_control")).and_then(Json::as_bool) == Some(true) {
                fields.push(CoverPosition);
            }
            fields.push(CoverState);
            meters(&mut fields);
        }
        Kind::Pm1 => meters(&mut fields),
        Kind::Em1 => {
            for f in [Em1Power, Voltage, Current] {
                if present(main, &f.wire()) {
                    fields.push(f);
                }
            }
            for f in [Em1Energy, Em1ReturnedEnergy] {
                if present(data, &f.wire()) {
                    fields.push(f);
                }
            }
        }
        Kind::Em => {
            for f in [TotalPower, TotalCurrent] {
                if present(main, &f.wire()) {
                    fields.push(f);
                }
            }
            for f in [TotalEnergy, TotalReturnedEnergy] {
                if present(data, &f.wire()) {
                    fields.push(f);
                }
            }
            for p in Phase::ALL {
                for f in [PhasePower(p), PhaseVoltage(p), PhaseCurrent(p)] {
                    if present(main, &f.wire()) {
                        fields.push(f);
                    }
                }
                for f in [PhaseEnergy(p), PhaseReturnedEnergy(p)] {
                    if present(data, &f.wire()) {
                        fields.push(f);
                    }
                }
            }
        }
        Kind::Input => {
            if config.and_then(|c| c.get("enable")).and_then(Json::as_bool) == Some(false) {
                return fields;
            }
            match config.and_then(|c| c.get("type")).and_then(Json::as_str) {
                Some("switch") => fields.push(InputState),
                Some("button") => fields.push(Button),
                Some("analog") => fields.push(InputLevel),
                Some(_) => {}
                None => {
                    if main.and_then(|m| m.get("state")).is_some_and(Json::is_boolean) {
                        fields.push(InputState);
                    }
                }
            }
        }
        Kind::Temperature => fields.push(Temperature),
        Kind::Humidity => fields.push(Humidity),
        Kind::Illuminance => fields.push(Illuminance),
        Kind::Smoke => fields.push(SmokeAlarm),
        Kind::Flood => fields.push(FloodAlarm),
        Kind::DevicePower => {
            fields.extend([Battery, BatteryVoltage]);
            if present(main, "external") {
                fields.push(ExternalPower);
            }
        }
        Kind::Wifi => {
            if main.is_some() {
                fields.push(Signal);
            }
        }
    }
    fields
}

// ------------------------------------------------------------------------------------------------
// The mapping of one device
// ------------------------------------------------------------------------------------------------

/// Where a feature comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    kind: Kind,
    id: u32,
    field: Field,
}

/// A momentary event of a device: an input in button mode was pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonEvent {
    /// The feature (`action`, `action_input_1`).
    pub feature: String,
    /// The event: one of [`BUTTON_EVENTS`].
    pub event: String,
}

impl ButtonEvent {
    /// The adapter event that reports it.
    pub fn into_adapter_event(self, device: DeviceId) -> AdapterEvent {
        AdapterEvent::Event { device, feature: self.feature, event: self.event, data: None }
    }
}

/// What a `NotifyEvent` means for a device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Events {
    /// Button events, in the order the device sent them.
    pub buttons: Vec<ButtonEvent>,
    /// Some component's configuration changed: read `Shelly.GetConfig` again and rebuild.
    pub config_changed: bool,
}

/// Why a command cannot become RPC calls.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandMapError {
    /// Nothing to do.
    #[error("the command sets nothing, toggles nothing and asks for no refresh")]
    Empty,
    /// The device has no such feature.
    #[error("the device has no feature `{0}`")]
    UnknownFeature(String),
    /// The feature is reported, not set.
    #[error("feature `{0}` is read-only")]
    ReadOnly(String),
    /// The feature cannot be refreshed.
    #[error("feature `{0}` cannot be refreshed")]
    NotReadable(String),
    /// The feature is not a settable on/off.
    #[error("feature `{0}` cannot be toggled")]
    NotToggleable(String),
    /// The value has the wrong type or lies outside what the feature takes.
    #[error("feature `{feature}` takes {expected}, not {value}")]
    WrongValue {
        /// The feature.
        feature: String,
        /// What it takes.
        expected: &'static str,
        /// What it was given.
        value: Value,
    },
    /// Two features of one component ask for different things at once.
    #[error("features `{first}` and `{second}` of {component} cannot be changed in one command: {why}")]
    Conflict {
        /// The component (`cover:0`).
        component: String,
        /// One feature.
        first: String,
        /// The other.
        second: String,
        /// Why not.
        why: &'static str,
    },
}

/// How one Shelly device maps onto the model: its descriptor, and which component field each
/// feature comes from. Built from `Shelly.GetDeviceInfo`, `Shelly.GetConfig` and `Shelly.GetStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMapping {
    info: DeviceInfo,
    descriptor: DeviceDescriptor,
    /// The configuration of the mapped components, by component key.
    config: Map<String, Json>,
    by_component: BTreeMap<(Kind, u32), Vec<(Field, String)>>,
    by_key: BTreeMap<String, Binding>,
}

struct Instance {
    kind: Kind,
    id: u32,
    name: Option<String>,
    fields: Vec<Field>,
    on_endpoint: bool,
}

impl Instance {
    fn endpoint_name(&self) -> String {
        format!("{}_{}", self.kind.name(), self.id)
    }

    fn endpoint(&self, field: Field) -> Option<String> {
        match (self.on_endpoint, field.phase()) {
            (false, None) => None,
            (false, Some(p)) => Some(format!("phase_{}", p.lower())),
            (true, None) => Some(self.endpoint_name()),
            (true, Some(p)) => Some(format!("{}_phase_{}", self.endpoint_name(), p.lower())),
        }
    }

    fn key(&self, field: Field) -> String {
        match self.endpoint(field) {
            None => field.base_key().to_owned(),
            Some(endpoint) => format!("{}_{endpoint}", field.base_key()),
        }
    }
}

fn component_key(kind: Kind, id: u32, part: Part) -> String {
    match (kind, part) {
        (Kind::Wifi, _) => "wifi".to_owned(),
        (Kind::Em, Part::Data) => format!("emdata:{id}"),
        (Kind::Em1, Part::Data) => format!("em1data:{id}"),
        (kind, _) => format!("{}:{id}", kind.name()),
    }
}

fn non_empty(json: Option<&Json>) -> Option<String> {
    json.and_then(Json::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl DeviceMapping {
    /// Describes a device from its identity, its configuration (`Shelly.GetConfig`) and its
    /// status (`Shelly.GetStatus`, or the params of `NotifyFullStatus`). Components this mapping
    /// does not know (`sys`, `cloud`, `script:1` ...) are left out.
    pub fn new(info: DeviceInfo, config: &Json, status: &Json) -> Result<DeviceMapping, RpcError> {
        let config = config.as_object().ok_or(RpcError::NotAnObject("the configuration"))?;
        let status = status.as_object().ok_or(RpcError::NotAnObject("the status"))?;
        let mut keys: BTreeSet<(Kind, u32)> = BTreeSet::new();
        for key in status.keys().chain(config.keys()) {
            if let Some((kind, id, _)) = parse_component(key) {
                keys.insert((kind, id));
            }
        }
        let mut instances: Vec<Instance> = Vec::new();
        for (kind, id) in keys {
            let main_key = component_key(kind, id, Part::Main);
            let data_key = component_key(kind, id, Part::Data);
            let cfg = config.get(&main_key).and_then(Json::as_object);
            let main = status.get(&main_key).and_then(Json::as_object);
            let data = if data_key == main_key { None } else { status.get(&data_key).and_then(Json::as_object) };
            let fields = candidate_fields(kind, cfg, main, data);
            if fields.is_empty() {
                continue;
            }
            let name = non_empty(cfg.and_then(|c| c.get("name")));
            instances.push(Instance { kind, id, name, fields, on_endpoint: false });
        }
        // A kind with several instances puts each on its endpoint; single instances that would
        // share a key move to theirs too.
        let mut per_kind: BTreeMap<Kind, usize> = BTreeMap::new();
        for i in &instances {
            *per_kind.entry(i.kind).or_default() += 1;
        }
        for i in &mut instances {
            i.on_endpoint = per_kind.get(&i.kind).copied().unwrap_or(0) > 1;
        }
        let mut bare: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (n, i) in instances.iter().enumerate().filter(|(_, i)| !i.on_endpoint) {
            for f in &i.fields {
                bare.entry(i.key(*f)).or_default().insert(n);
            }
        }
        for owners in bare.values().filter(|owners| owners.len() > 1) {
            for n in owners {
                if let Some(i) = instances.get_mut(*n) {
                    i.on_endpoint = true;
                }
            }
        }

        let sleepy = instances.iter().any(|i| i.kind == Kind::DevicePower);
        let mut features = Vec::new();
        let mut by_component: BTreeMap<(Kind, u32), Vec<(Field, String)>> = BTreeMap::new();
        let mut by_key = BTreeMap::new();
        for i in &instances {
            for (n, field) in i.fields.iter().copied().enumerate() {
                let key = i.key(field);
                let access = match field {
                    Field::Button => Access::EVENT,
                    f => Access { observe: true, set: f.settable(), get: !sleepy },
                };
                let mut feature =
                    Feature::new(&key, field.capability(), field.value_type(), access).category(field.category(i.kind));
                if field == Field::InputLevel {
                    feature = feature.unit("%");
                }
                if let Some(endpoint) = i.endpoint(field) {
                    feature = feature.endpoint(&endpoint);
                }
                let label = match &i.name {
                    Some(name) if n == 0 => Some(name.clone()),
                    Some(name) => Some(format!("{name} {}", lower_first(&field.what()))),
                    None if field.explains_itself() => None,
                    None => Some(field.what()),
                };
                if let Some(label) = label {
                    feature = feature.label(&label);
                }
                features.push(feature);
                by_component.entry((i.kind, i.id)).or_default().push((field, key.clone()));
                by_key.insert(key, Binding { kind: i.kind, id: i.id, field });
            }
        }

        let device_name = config
            .get("sys")
            .and_then(|s| s.get("device"))
            .and_then(|d| non_empty(d.get("name")))
            .or_else(|| info.name.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| info.model_name());
        let mut descriptor = DeviceDescriptor::new(info.device_id(), &device_name, features);
        descriptor.manufacturer = Some(MANUFACTURER.to_owned());
        descriptor.model = Some(info.model_name());
        descriptor.firmware = info.firmware();
        descriptor.power_source = if sleepy { PowerSource::Battery } else { PowerSource::Mains };
        // Only the components' own configuration is kept (names, input types), nothing of the
        // network or cloud settings.
        let config =
            config.iter().filter(|(k, _)| parse_component(k).is_some()).map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(DeviceMapping { info, descriptor, config, by_component, by_key })
    }

    /// The device's identity.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device's description, to announce.
    pub fn descriptor(&self) -> &DeviceDescriptor {
        &self.descriptor
    }

    /// Whether the device sleeps (it runs on a battery): it cannot be asked for its status, and
    /// a silence of hours is normal.
    pub fn is_sleepy(&self) -> bool {
        self.descriptor.power_source == PowerSource::Battery
    }

    /// The feature values in a status object, in canonical units: the result of
    /// `Shelly.GetStatus`, or the params of `NotifyStatus` (only what changed) or
    /// `NotifyFullStatus`. Fields that are absent or `null` give no value; components and fields
    /// the device was not described with are skipped (see [`DeviceMapping::needs_rebuild`]).
    pub fn values(&self, status: &Json) -> Result<BTreeMap<String, Value>, RpcError> {
        let status = status.as_object().ok_or(RpcError::NotAnObject("the status"))?;
        let mut values = BTreeMap::new();
        for (key, object) in status {
            let Some((kind, id, part)) = parse_component(key) else { continue };
            let (Some(object), Some(bound)) = (object.as_object(), self.by_component.get(&(kind, id))) else {
                continue;
            };
            for (field, feature) in bound.iter().filter(|(f, _)| f.part() == part) {
                if let Some(value) = field.read(object) {
                    values.insert(feature.clone(), value);
                }
            }
        }
        Ok(values)
    }

    /// Whether a status (whole or partial) shows what the descriptor does not describe: a new
    /// component, a new meter, a cover that was calibrated or lost its calibration. The adapter
    /// then reads the configuration and status again and announces the new descriptor.
    pub fn needs_rebuild(&self, status: &Json) -> bool {
        let Some(status) = status.as_object() else { return false };
        for (key, object) in status {
            let Some((kind, id, part)) = parse_component(key) else { continue };
            let Some(object) = object.as_object() else { continue };
            let cfg = self.config.get(&component_key(kind, id, Part::Main)).and_then(Json::as_object);
            let (main, data) = match part {
                Part::Main => (Some(object), None),
                Part::Data => (None, Some(object)),
            };
            let bound = self.by_component.get(&(kind, id));
            let has = |field: Field| bound.is_some_and(|b| b.iter().any(|(f, _)| *f == field));
            let wanted = candidate_fields(kind, cfg, main, data);
            // Fields that only show up with a whole status object do not count as new when a
            // partial one lacks them.
            if wanted.iter().any(|f| f.part() == part && !has(*f)) {
                return true;
            }
            if kind == Kind::Cover
                && object.get("pos_control").and_then(Json::as_bool) == Some(false)
                && has(Field::CoverPosition)
            {
                return true;
            }
        }
        false
    }

    /// The events in the params of a `NotifyEvent`: button pushes of inputs in button mode, and
    /// whether a configuration changed. Events of other components and unknown events are skipped.
    pub fn events(&self, params: &Json) -> Events {
        let mut events = Events::default();
        let Some(list) = params.get("events").and_then(Json::as_array) else { return events };
        for event in list {
            let Some(name) = event.get("event").and_then(Json::as_str) else { continue };
            if name == "config_changed" {
                events.config_changed = true;
                continue;
            }
            let Some((Kind::Input, id, Part::Main)) =
                event.get("component").and_then(Json::as_str).and_then(parse_component)
            else {
                continue;
            };
            let Some(mapped) = button_event(name) else { continue };
            let feature = self
                .by_component
                .get(&(Kind::Input, id))
                .and_then(|b| b.iter().find(|(f, _)| *f == Field::Button))
                .map(|(_, key)| key.clone());
            if let Some(feature) = feature {
                events.buttons.push(ButtonEvent { feature, event: mapped.to_owned() });
            }
        }
        events
    }

    fn binding(&self, key: &str) -> Result<Binding, CommandMapError> {
        self.by_key.get(key).copied().ok_or_else(|| CommandMapError::UnknownFeature(key.to_owned()))
    }

    /// The RPC calls that carry out a command, in order: the sets and toggles of each component
    /// (in the order of the features), then `Shelly.GetStatus` for a refresh.
    ///
    /// A light's `state`, `brightness` and the `transition` go in one `Light.Set`; numbers are
    /// rounded to whole percent. A `transition` for anything but a light is ignored, as the
    /// devices cannot do it.
    pub fn command(&self, request: &CommandRequest) -> Result<Vec<Call>, CommandMapError> {
        let refresh = match &request.refresh {
            None | Some(Refresh::All(false)) => false,
            Some(Refresh::All(true)) => true,
            Some(Refresh::Features(keys)) => {
                for key in keys {
                    let binding = self.binding(key)?;
                    if binding.field == Field::Button || self.is_sleepy() {
                        return Err(CommandMapError::NotReadable(key.clone()));
                    }
                }
                !keys.is_empty()
            }
        };
        if request.set.is_empty() && request.toggle.is_empty() && !refresh {
            return Err(CommandMapError::Empty);
        }

        #[derive(Default)]
        struct Pending {
            on: Option<(String, bool)>,
            toggle: Option<String>,
            brightness: Option<(String, i64)>,
            position: Option<(String, i64)>,
            motion: Option<(String, &'static str)>,
        }
        let mut pending: BTreeMap<(Kind, u32), Pending> = BTreeMap::new();
        for (key, value) in &request.set {
            let b = self.binding(key)?;
            let p = pending.entry((b.kind, b.id)).or_default();
            match b.field {
                Field::Output => p.on = Some((key.clone(), want_bool(key, value)?)),
                Field::Brightness => p.brightness = Some((key.clone(), want_percent(key, value)?)),
                Field::CoverPosition => p.position = Some((key.clone(), want_percent(key, value)?)),
                Field::CoverState => p.motion = Some((key.clone(), want_motion(key, value)?)),
                _ => return Err(CommandMapError::ReadOnly(key.clone())),
            }
        }
        for key in &request.toggle {
            let b = self.binding(key)?;
            if b.field != Field::Output || request.set.contains_key(key) {
                return Err(CommandMapError::NotToggleable(key.clone()));
            }
            pending.entry((b.kind, b.id)).or_default().toggle = Some(key.clone());
        }

        let mut calls = Vec::new();
        for ((kind, id), p) in pending {
            let component = component_key(kind, id, Part::Main);
            let conflict = |first: &str, second: &str, why| CommandMapError::Conflict {
                component: component.clone(),
                first: first.to_owned(),
                second: second.to_owned(),
                why,
            };
            match kind {
                Kind::Switch => match (&p.on, &p.toggle) {
                    (Some((key, _)), Some(toggled)) => {
                        return Err(conflict(key, toggled, "a switch is either set or toggled"));
                    }
                    (Some((_, on)), None) => calls.push(Call::new("Switch.Set").param("id", id).param("on", *on)),
                    (None, Some(_)) => calls.push(Call::new("Switch.Toggle").param("id", id)),
                    (None, None) => {}
                },
                Kind::Light => {
                    if let Some(toggled) = &p.toggle {
                        if let Some((key, _)) = &p.brightness {
                            return Err(conflict(toggled, key, "a light is toggled without a new brightness"));
                        }
                        calls.push(Call::new("Light.Toggle").param("id", id));
                    } else {
                        let mut call = Call::new("Light.Set").param("id", id);
                        if let Some((_, on)) = p.on {
                            call = call.param("on", on);
                        }
                        if let Some((_, brightness)) = p.brightness {
                            call = call.param("brightness", brightness);
                        }
                        if let Some(t) = request.transition.filter(|t| t.is_finite() && *t >= 0.0) {
                            call = call.param("transition_duration", t);
                        }
                        calls.push(call);
                    }
                }
                Kind::Cover => match (&p.position, &p.motion) {
                    (Some((first, _)), Some((second, _))) => {
                        return Err(conflict(first, second, "a cover goes to a position or moves, not both"));
                    }
                    (Some((_, pos)), None) => {
                        calls.push(Call::new("Cover.GoToPosition").param("id", id).param("pos", *pos))
                    }
                    (None, Some((_, motion))) => {
                        let method = match *motion {
                            "open" => "Cover.Open",
                            "close" => "Cover.Close",
                            _ => "Cover.Stop",
                        };
                        calls.push(Call::new(method).param("id", id));
                    }
                    (None, None) => {}
                },
                _ => {
                    let key = p.on.map(|(k, _)| k).or(p.toggle).unwrap_or(component);
                    return Err(CommandMapError::ReadOnly(key));
                }
            }
        }
        if refresh {
            calls.push(Call::get_status());
        }
        Ok(calls)
    }
}

fn want_bool(key: &str, value: &Value) -> Result<bool, CommandMapError> {
    value.as_bool().ok_or_else(|| CommandMapError::WrongValue {
        feature: key.to_owned(),
        expected: "true or false",
        value: value.clone(),
    })
}

fn want_percent(key: &str, value: &Value) -> Result<i64, CommandMapError> {
    match value.as_f64() {
        Some(n) if n.is_finite() && (0.0..=100.0).contains(&n) => Ok(n.round() as i64),
        _ => Err(CommandMapError::WrongValue {
            feature: key.to_owned(),
            expected: "a number from 0 to 100",
            value: value.clone(),
        }),
    }
}

fn want_motion(key: &str, value: &Value) -> Result<&'static str, CommandMapError> {
    value.as_str().and_then(|s| COVER_STATES.iter().find(|m| **m == s)).copied().ok_or_else(|| {
        CommandMapError::WrongValue {
            feature: key.to_owned(),
            expected: "one of open, close, stop",
            value: value.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // --------------------------------------------------------------------------------------------
    // Payloads. Sources:
    // - DOC_*: the examples of the Shelly Gen2+ API documentation, shelly-api-docs.shelly.cloud/gen2:
    //   ComponentsAndServices/Shelly (GetDeviceInfo), Switch, Cover, Light, Input (status and
    //   config), General/Notifications (NotifyStatus, NotifyFullStatus of a Plus H&T, NotifyEvent).
    // - CAPTURE_*: real device dumps (ids and MACs redacted by their publishers):
    //   home-assistant-libs/aioshelly `fixtures/` (Plus 1PM fw 1.1.0, Pro 4PM fw 1.0.3, Pro 3EM
    //   fw 1.1.0) and `tests/rpc_device/fixtures/` (2PM Gen3 in cover mode, 1 Mini Gen4); the
    //   PM Mini Gen3 status posted on forum.openwb.de (viewtopic.php?p=117309).
    // --------------------------------------------------------------------------------------------

    const DOC_DEVICE_INFO: &str = r#"{"id": "shellypro4pm-f008d1d8b8b8", "mac": "F008D1D8B8B8",
        "model": "SPSW-004PE16EU", "gen": 2, "fw_id": "20210720-153353/0.6.7-gc36674b", "ver": "0.6.7",
        "app": "FourPro", "auth_en": true, "auth_domain": "shellypro4pm-f008d1d8b8b8"}"#;

    const DOC_SWITCH_CONFIG: &str = r#"{"id": 0, "name": "Switchdsds", "in_mode": "follow",
        "initial_state": "match_input", "auto_on": false, "auto_on_delay": 60, "auto_off": false,
        "auto_off_delay": 60, "power_limit": 4480, "voltage_limit": 280, "current_limit": 16}"#;

    const DOC_SWITCH_STATUS: &str = r#"{"id": 0, "source": "WS_in", "output": false, "apower": 0,
        "voltage": 225.9, "current": 0, "freq": 50,
        "aenergy": {"total": 11.679, "by_minute": [0, 0, 0], "minute_ts": 1654511972},
        "ret_aenergy": {"total": 5.817, "by_minute": [0, 0, 0], "minute_ts": 1654511615},
        "temperature": {"tC": 53.3, "tF": 127.9}}"#;

    const DOC_COVER_STATUS: &str = r#"{"id": 0, "source": "limit_switch", "state": "open", "apower": 0,
        "voltage": 233, "current": 0, "pf": 0, "freq": 50,
        "aenergy": {"total": 48.996, "by_minute": [0, 0, 0], "minute_ts": 1654604045},
        "temperature": {"tC": 55.4, "tF": 131.7}, "pos_control": true, "last_direction": "open",
        "current_pos": 100}"#;

    const DOC_LIGHT_STATUS: &str = r#"{"id": 0, "source": "timer", "output": false, "brightness": 50,
        "timer_started_at": 1626942399.36, "timer_duration": 60}"#;

    const DOC_INPUT_STATUS: &str = r#"{"id": 0, "state": false}"#;

    const DOC_NOTIFY_STATUS: &str = r#"{"src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1",
        "method": "NotifyStatus",
        "params": {"ts": 1631186545.04, "switch:0": {"id": 0, "output": true, "source": "button"}}}"#;

    const DOC_NOTIFY_FULL_STATUS_HT: &str = r#"{"src": "shellyplusht-f008d1d8b8b8", "dst": "user_1",
        "method": "NotifyFullStatus",
        "params": {"ts": 1631186545.04, "ble": {}, "cloud": {"connected": false}, "mqtt": {"connected": false},
          "sys": {"mac": "F008D1E62338", "restart_required": false, "time": null, "unixtime": null, "uptime": 41,
                  "ram_size": 254948, "ram_free": 146620, "fs_size": 458752, "fs_free": 229376, "cfg_rev": 0,
                  "available_updates": {}},
          "wifi": {"sta_ip": null, "status": "disconnected", "ssid": null, "rssi": 0},
          "temperature:0": {"id": 0, "tC": 20.0, "tF": 68.0},
          "humidity:0": {"id": 0, "rh": 50.0},
          "devicepower:0": {"id": 0, "battery": {"V": 4.59, "percent": 11}, "external": {"present": false}},
          "ht_ui": {}}}"#;

    const DOC_NOTIFY_EVENT: &str = r#"{"src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1",
        "method": "NotifyEvent",
        "params": {"ts": 1631266595.44,
                   "events": [{"component": "input:0", "id": 0, "event": "single_push", "ts": 1631266595.44}]}}"#;

    /// A response and a device error as documented (General/RPCProtocol) and as captured from a
    /// Plus 1 in a public client's tests.
    const DOC_RESPONSE: &str =
        r#"{"id": 1, "src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1", "result": {"was_on": true}}"#;
    const CAPTURE_ERROR: &str = r#"{"id": 1, "src": "shellyplus1-a8032abe54dc",
        "error": {"code": -105, "message": "Argument 'key', value 'item1' not found !"}}"#;

    const CAPTURE_PLUS_1PM: &str = r#"{
      "config": {
        "ble": {"enable": true, "rpc": {"enable": true}, "observer": {"enable": false}},
        "cloud": {"enable": true, "server": "shelly-9-eu.shelly.cloud:6022/jrpc"},
        "input:0": {"id": 0, "name": "Input Test Name 0", "type": "switch", "enable": true, "invert": false,
                    "factory_reset": true},
        "mqtt": {"enable": false, "server": null, "client_id": "shellyplus1pm-aabbccddeeff", "user": null,
                 "ssl_ca": null, "topic_prefix": null, "rpc_ntf": true, "status_ntf": false,
                 "use_client_cert": false, "enable_rpc": true, "enable_control": true},
        "script:1": {"id": 1, "name": "aioshelly_ble_integration", "enable": false},
        "switch:0": {"id": 0, "name": "Switch Test Name 0", "in_mode": "flip", "initial_state": "off",
                     "auto_on": false, "auto_on_delay": 60.0, "auto_off": false, "auto_off_delay": 60.0,
                     "power_limit": 4480, "voltage_limit": 280, "autorecover_voltage_errors": false,
                     "current_limit": 16.0},
        "sys": {"device": {"name": "Test Name", "mac": "AABBCCDDEEFF", "fw_id": "20231219-133934/1.1.0-g34b5d4f",
                           "discoverable": true, "eco_mode": true, "addon_type": null},
                "location": {"tz": "Europe/Rome", "lat": 45.45803, "lon": 7.87121},
                "debug": {"level": 2, "file_level": null, "mqtt": {"enable": false},
                          "websocket": {"enable": true}, "udp": {"addr": null}},
                "ui_data": {"consumption_types": ["Light"]},
                "rpc_udp": {"dst_addr": null, "listen_port": null},
                "sntp": {"server": "192.168.1.10"}, "cfg_rev": 35},
        "wifi": "Wifi-Network-Name",
        "ws": {"enable": true, "server": "ws://192.168.1.10:8123/api/shelly/ws", "ssl_ca": "ca.pem"}
      },
      "shelly": {"name": "Test Name", "id": "shellyplus1pm-aabbccddeeff", "mac": "AABBCCDDEEFF", "slot": 0,
                 "model": "SNSW-001P16EU", "gen": 2, "fw_id": "20231219-133934/1.1.0-g34b5d4f", "ver": "1.1.0",
                 "app": "Plus1PM", "auth_en": false, "auth_domain": null},
      "status": {
        "ble": {}, "cloud": {"connected": true},
        "input:0": {"id": 0, "state": false},
        "mqtt": {"connected": false},
        "script:1": {"id": 1, "running": true, "mem_used": 196, "mem_peak": 1064, "mem_free": 25004},
        "switch:0": {"id": 0, "source": "WS_in", "output": false, "apower": 0.0, "voltage": 227.7, "current": 0.0,
                     "aenergy": {"total": 110.046, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 1707310172},
                     "temperature": {"tC": 36.1, "tF": 97.0}},
        "sys": {"mac": "AABBCCDDEEFF", "restart_required": false, "time": "13:49", "unixtime": 1707310173,
                "uptime": 2605878, "ram_size": 260488, "ram_free": 116780, "fs_size": 458752, "fs_free": 135168,
                "cfg_rev": 35, "kvs_rev": 4, "schedule_rev": 0, "webhook_rev": 0,
                "available_updates": {"beta": {"version": "1.2.0-beta1"}}, "reset_reason": 3},
        "wifi": {"sta_ip": "192.168.1.52", "status": "got ip", "ssid": "Wifi-Network-Name", "rssi": -60},
        "ws": {"connected": true}
      }
    }"#;

    const CAPTURE_PRO_4PM: &str = r#"{
      "config": {
        "ble": {"enable": true, "observer": {"enable": false}, "rpc": {"enable": true}},
        "cloud": {"enable": true, "server": "shelly-91-eu.shelly.cloud:6022/jrpc"},
        "eth": {"enable": true, "gw": null, "ip": null, "ipv4mode": "dhcp", "nameserver": null, "netmask": null},
        "input:0": {"id": 0, "invert": false, "name": "input 0", "type": "switch"},
        "input:1": {"id": 1, "invert": false, "name": "input 1", "type": "switch"},
        "input:2": {"id": 2, "invert": false, "name": "input 2", "type": "switch"},
        "input:3": {"id": 3, "invert": false, "name": "input 3", "type": "switch"},
        "mqtt": {"client_id": "shellypro4pm-aabbccddeeff", "enable": false, "enable_control": true,
                 "enable_rpc": true, "rpc_ntf": true, "server": "mqtt.test.server", "status_ntf": false,
                 "topic_prefix": null, "use_client_cert": false, "user": null},
        "script:1": {"enable": false, "id": 1, "name": "script 1"},
        "switch:0": {"auto_off": false, "auto_off_delay": 60.0, "auto_on": false, "auto_on_delay": 60.0,
                     "autorecover_voltage_errors": false, "current_limit": 16.0, "id": 0, "in_mode": "follow",
                     "initial_state": "match_input", "name": "switch 0", "power_limit": 4480,
                     "undervoltage_limit": 0, "voltage_limit": 280},
        "switch:1": {"auto_off": false, "auto_off_delay": 60.0, "auto_on": false, "auto_on_delay": 60.0,
                     "autorecover_voltage_errors": false, "current_limit": 16.0, "id": 1, "in_mode": "follow",
                     "initial_state": "match_input", "name": "switch 1", "power_limit": 4480,
                     "undervoltage_limit": 0, "voltage_limit": 280},
        "switch:2": {"auto_off": false, "auto_off_delay": 60.0, "auto_on": false, "auto_on_delay": 60.0,
                     "autorecover_voltage_errors": false, "current_limit": 16.0, "id": 2, "in_mode": "follow",
                     "initial_state": "match_input", "name": "switch 2", "power_limit": 4480,
                     "undervoltage_limit": 0, "voltage_limit": 280},
        "switch:3": {"auto_off": false, "auto_off_delay": 60.0, "auto_on": false, "auto_on_delay": 60.0,
                     "autorecover_voltage_errors": false, "current_limit": 16.0, "id": 3, "in_mode": "follow",
                     "initial_state": "match_input", "name": "switch 3", "power_limit": 4480,
                     "undervoltage_limit": 0, "voltage_limit": 280},
        "sys": {"cfg_rev": 7,
                "debug": {"file_level": null, "level": 2, "mqtt": {"enable": false}, "udp": {"addr": null},
                          "websocket": {"enable": false}},
                "device": {"discoverable": true, "eco_mode": false, "fw_id": "20230912-082358/1.0.3-g6176478",
                           "mac": "AABBCCDDEEFF", "name": "Test Name"},
                "location": {"lat": 29.76078, "lon": -95.36952, "tz": "America/Chicago"},
                "rpc_udp": {"dst_addr": null, "listen_port": null}, "sntp": {"server": "sntp.test.server"},
                "ui_data": {}},
        "ui": {"idle_brightness": 30},
        "wifi": "Wifi-Network-Name",
        "ws": {"enable": false, "server": null, "ssl_ca": "ca.pem"}
      },
      "shelly": {"app": "Pro4PM", "auth_domain": null, "auth_en": false, "fw_id": "20230912-082358/1.0.3-g6176478",
                 "gen": 2, "id": "shellypro4pm-aabbccddeeff", "mac": "AABBCCDDEEFF", "model": "SPSW-004PE16EU",
                 "name": "Test Name", "slot": 0, "ver": "1.0.3"},
      "status": {
        "ble": {}, "cloud": {"connected": true}, "eth": {"ip": null},
        "input:0": {"id": 0, "state": false}, "input:1": {"id": 1, "state": false},
        "input:2": {"id": 2, "state": false}, "input:3": {"id": 3, "state": false},
        "mqtt": {"connected": false},
        "script:1": {"id": 1, "mem_free": 25200, "running": false},
        "switch:0": {"aenergy": {"by_minute": [0.0, 0.0, 0.0], "minute_ts": 1708381882, "total": 0.0},
                     "apower": 0.0, "current": 0.0, "freq": 60.0, "id": 0, "output": false, "pf": 0.0,
                     "source": "init", "temperature": {"tC": 25.6, "tF": 78.0}, "voltage": 121.7},
        "switch:1": {"aenergy": {"by_minute": [0.0, 0.0, 0.0], "minute_ts": 1708381882, "total": 0.0},
                     "apower": 0.0, "current": 0.0, "freq": 60.0, "id": 1, "output": false, "pf": 0.0,
                     "source": "SHC", "temperature": {"tC": 25.6, "tF": 78.0}, "voltage": 121.8},
        "switch:2": {"aenergy": {"by_minute": [0.0, 0.0, 0.0], "minute_ts": 1708381882, "total": 0.0},
                     "apower": 0.0, "current": 0.0, "freq": 60.0, "id": 2, "output": false, "pf": 0.0,
                     "source": "init", "temperature": {"tC": 25.6, "tF": 78.0}, "voltage": 121.8},
        "switch:3": {"aenergy": {"by_minute": [0.0, 0.0, 0.0], "minute_ts": 1708381882, "total": 0.0},
                     "apower": 0.0, "current": 0.0, "freq": 60.0, "id": 3, "output": false, "pf": 0.0,
                     "source": "init", "temperature": {"tC": 25.6, "tF": 78.0}, "voltage": 121.8},
        "sys": {"available_updates": {}, "cfg_rev": 7, "fs_free": 204800, "fs_size": 524288, "kvs_rev": 0,
                "mac": "AABBCCDDEEFF", "ram_free": 80320, "ram_size": 256388, "restart_required": false,
                "schedule_rev": 0, "time": "16:31", "unixtime": 1708381883, "uptime": 522703, "webhook_rev": 0},
        "ui": {},
        "wifi": {"rssi": -71, "ssid": "Wifi-Network-Name", "sta_ip": "192.168.212.172", "status": "got ip"},
        "ws": {"connected": false}
      }
    }"#;

    const CAPTURE_PRO_3EM: &str = r#"{
      "config": {
        "ble": {"enable": false, "rpc": {"enable": false}, "observer": {"enable": false}},
        "cloud": {"enable": true, "server": "shelly-9-eu.shelly.cloud:6022/jrpc"},
        "em:0": {"id": 0, "name": "Energy Monitor Test Name 0", "blink_mode_selector": "active_energy",
                 "phase_selector": "all", "monitor_phase_sequence": false, "reverse": {}},
        "emdata:0": {},
        "eth": {"enable": true, "ipv4mode": "dhcp", "ip": null, "netmask": null, "gw": null, "nameserver": null},
        "modbus": {"enable": true},
        "mqtt": {"enable": false, "server": null, "client_id": "shellypro3em-aabbccddeeff", "user": null,
                 "ssl_ca": null, "topic_prefix": "shellypro3em-aabbccddeeff", "rpc_ntf": true,
                 "status_ntf": false, "use_client_cert": false, "enable_rpc": true, "enable_control": true},
        "sys": {"device": {"name": "Test Name", "mac": "AABBCCDDEEFF", "fw_id": "20231219-134001/1.1.0-g34b5d4f",
                           "discoverable": true, "eco_mode": true, "profile": "triphase", "addon_type": null},
                "location": {"tz": "Europe/Rome", "lat": 45.45803, "lon": 7.87121},
                "debug": {"level": 2, "file_level": null, "mqtt": {"enable": false},
                          "websocket": {"enable": false}, "udp": {"addr": null}},
                "ui_data": {}, "rpc_udp": {"dst_addr": null, "listen_port": null},
                "sntp": {"server": "192.168.1.10"}, "cfg_rev": 29},
        "temperature:0": {"id": 0, "name": null, "report_thr_C": 5.0, "offset_C": 0.0},
        "wifi": "Wifi-Network-Name",
        "ws": {"enable": false, "server": "ws://192.168.1.10:8123/api/shelly/ws", "ssl_ca": "*"}
      },
      "shelly": {"name": "Test Name", "id": "shellypro3em-aabbccddeeff", "mac": "AABBCCDDEEFF", "slot": 0,
                 "model": "SPEM-003CEBEU", "gen": 2, "fw_id": "20231219-134001/1.1.0-g34b5d4f", "ver": "1.1.0",
                 "app": "Pro3EM", "auth_en": false, "auth_domain": null, "profile": "triphase"},
      "status": {
        "ble": {}, "cloud": {"connected": true},
        "em:0": {"id": 0, "a_current": 10.965, "a_voltage": 223.6, "a_act_power": 2367.6, "a_aprt_power": 2450.9,
                 "a_pf": 0.98, "a_freq": 50.0, "b_current": 0.966, "b_voltage": 223.7, "b_act_power": 149.7,
                 "b_aprt_power": 216.0, "b_pf": 0.77, "b_freq": 50.0, "c_current": 0.422, "c_voltage": 223.8,
                 "c_act_power": 13.7, "c_aprt_power": 94.3, "c_pf": 0.54, "c_freq": 50.0, "n_current": null,
                 "total_current": 12.354, "total_act_power": 2530.977, "total_aprt_power": 2761.177,
                 "user_calibrated_phase": []},
        "emdata:0": {"id": 0, "a_total_act_energy": 2031637.32, "a_total_act_ret_energy": 0.0,
                     "b_total_act_energy": 184947.57, "b_total_act_ret_energy": 40.7,
                     "c_total_act_energy": 369411.29, "c_total_act_ret_energy": 985.91,
                     "total_act": 2585996.18, "total_act_ret": 1026.61},
        "eth": {"ip": "192.168.1.105"}, "modbus": {}, "mqtt": {"connected": false},
        "sys": {"mac": "AABBCCDDEEFF", "restart_required": false, "time": "13:53", "unixtime": 1707310438,
                "uptime": 2069125, "ram_size": 241516, "ram_free": 123528, "fs_size": 524288, "fs_free": 184320,
                "cfg_rev": 29, "kvs_rev": 0, "schedule_rev": 0, "webhook_rev": 0,
                "available_updates": {"beta": {"version": "1.2.0-beta1"}}, "reset_reason": 1},
        "temperature:0": {"id": 0, "tC": 46.1, "tF": 115.0},
        "wifi": {"sta_ip": null, "status": "disconnected", "ssid": null, "rssi": 0},
        "ws": {"connected": false}
      }
    }"#;

    /// `Shelly.GetStatus` of a 2PM Gen3 in cover mode.
    const CAPTURE_2PM_GEN3_STATUS: &str = r#"{"ble":{},"bthome":{},"cloud":{"connected":false},"cover:0":{"aenergy":{"by_minute":[0.0,0.0,0.0],"minute_ts":1760364720,"total":314.614},"apower":0.0,"current":0.0,"current_pos":100,"freq":50.0,"id":0,"last_direction":"open","pf":0.0,"pos_control":true,"source":"limit_switch","state":"open","temperature":{"tC":52.0,"tF":125.7},"voltage":219.2},"input:0":{"id":0,"state":null},"input:1":{"id":1,"state":null},"knx":{},"matter":{"commissionable":false,"num_fabrics":0},"mqtt":{"connected":false},"number:200":{"value":4},"script:1":{"cpu":0,"id":1,"mem_free":25200,"running":false},"script:2":{"cpu":0,"id":2,"mem_free":25200,"running":false},"sys":{"available_updates":{},"bthc_rev":0,"btrelay_rev":0,"cfg_rev":37,"fs_free":290816,"fs_size":786432,"kvs_rev":0,"last_sync_ts":1760363153,"mac":"AABBCCDDEEFF","ram_free":81764,"ram_min_free":63092,"ram_size":257424,"reset_reason":3,"restart_required":false,"schedule_rev":1,"time":"17:12","unixtime":1760364737,"uptime":78962,"utc_offset":10800,"webhook_rev":1},"wifi":{"rssi":-38,"ssid":"Wifi-Network-Name","sta_ip":"192.168.2.186","status":"got ip"},"ws":{"connected":false}}"#;

    const CAPTURE_MINI_GEN4_INFO: &str = r#"{"name": "Shelly 1 Mini Gen4 [DDEEFF]", "id": "shelly1minig4-aabbccddeeff",
        "mac": "AABBCCDDEEFF", "slot": 1, "model": "S4SW-001X8EU", "gen": 4,
        "fw_id": "20250214-121701/1.5.99-g4prod1-gc32c24b", "ver": "1.5.99-g4prod1", "app": "Mini1G4ZB",
        "auth_en": false, "auth_domain": null}"#;

    const CAPTURE_MINI_GEN4_STATUS: &str = r#"{"ble": {}, "cloud": {"connected": false},
        "input:0": {"id": 0, "state": false}, "knx": {}, "mqtt": {"connected": false},
        "switch:0": {"id": 0, "source": "WS_in", "output": false, "temperature": {"tC": 64.4, "tF": 147.9}},
        "sys": {"mac": "AABBCCDDEEFF", "restart_required": false, "time": "15:34", "unixtime": 1745588095,
                "last_sync_ts": 1745587071, "uptime": 72831, "ram_size": 336152, "ram_free": 151636,
                "ram_min_free": 132592, "fs_size": 917504, "fs_free": 479232, "cfg_rev": 9, "kvs_rev": 0,
                "schedule_rev": 0, "webhook_rev": 0, "available_updates": {"beta": {"version": "1.6.0-beta1"}},
                "alt": {"Mini1G4": {"name": "Shelly Mini 1 Gen4", "desc": "Shelly Mini 1 Gen4 with Matter",
                        "beta": {"version": "1.6.0-beta1", "build_id": "20250410-085758/1.6.0-beta1-g2554734"}}},
                "reset_reason": 1, "utc_offset": 7200},
        "wifi": {"sta_ip": "192.168.2.186", "status": "got ip", "ssid": "WiFi-Network-Name", "rssi": -65},
        "ws": {"connected": false}, "zigbee": {}}"#;

    /// The `pm1:0` of a PM Mini Gen3, as posted on forum.openwb.de.
    const CAPTURE_PM_MINI_GEN3_PM1: &str = r#"{"id": 0, "voltage": 230.9, "current": 1, "apower": 230, "freq": 51,
        "aenergy": {"total": 3195.88, "by_minute": [0, 0, 0], "minute_ts": 1727857620},
        "ret_aenergy": {"total": 0, "by_minute": [0, 0, 0], "minute_ts": 1727857620}}"#;

    // --------------------------------------------------------------------------------------------
    // Helpers
    // --------------------------------------------------------------------------------------------

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    fn info(text: &str) -> DeviceInfo {
        DeviceInfo::parse(&parse(text)).unwrap()
    }

    /// A device from a dump with `shelly`, `config` and `status`.
    fn from_dump(text: &str) -> (DeviceMapping, Json) {
        let dump = parse(text);
        let info = DeviceInfo::parse(&dump["shelly"]).unwrap();
        (DeviceMapping::new(info, &dump["config"], &dump["status"]).unwrap(), dump["status"].clone())
    }

    fn keys(m: &DeviceMapping) -> Vec<&str> {
        m.descriptor().features.iter().map(|f| f.key.as_str()).collect()
    }

    fn feature<'a>(m: &'a DeviceMapping, key: &str) -> &'a Feature {
        m.descriptor().feature(key).unwrap_or_else(|| panic!("no feature {key}: {:?}", keys(m)))
    }

    fn n(v: f64) -> Value {
        Value::Number(v)
    }

    /// Every value the status maps to, whole, with the unit of each feature.
    fn check_values<K: AsRef<str>>(m: &DeviceMapping, status: &Json, expected: &[(K, Value, Option<&str>)]) {
        let got = m.values(status).unwrap();
        let want: BTreeMap<String, Value> =
            expected.iter().map(|(k, v, _)| (k.as_ref().to_owned(), v.clone())).collect();
        assert_eq!(got, want);
        for (key, value, unit) in expected {
            let key = key.as_ref();
            let f = feature(m, key);
            assert_eq!(f.unit.as_deref(), *unit, "unit of {key}");
            assert!(hearth_sdk::check_value(f, value).is_ok(), "{key} = {value}");
        }
    }

    const READ_GET: Access = Access { observe: true, set: false, get: true };

    fn request(json: Json) -> CommandRequest {
        serde_json::from_value(json).unwrap()
    }

    fn calls(m: &DeviceMapping, json: Json) -> Vec<Json> {
        let calls = m.command(&request(json)).unwrap();
        calls.iter().map(|c| json!({"method": c.method, "params": Json::Object(c.params.clone())})).collect()
    }

    fn one_component(component: &str, config: Json, status: &str) -> DeviceMapping {
        DeviceMapping::new(info(DOC_DEVICE_INFO), &json!({ component: config }), &json!({ component: parse(status) }))
            .unwrap()
    }

    // --------------------------------------------------------------------------------------------
    // Frames
    // --------------------------------------------------------------------------------------------

    #[test]
    fn requests_serialise_as_the_rpc_takes_them() {
        // The request example of General/RPCProtocol.
        let req = Call::new("Switch.Set").param("id", 1).param("on", true).request(1, "user_1");
        assert_eq!(
            parse(&req.to_json()),
            json!({"id": 1, "src": "user_1", "method": "Switch.Set", "params": {"id": 1, "on": true}})
        );
        let back: Request = serde_json::from_str(&req.to_json()).unwrap();
        assert_eq!(back, req);
        let req = Call::get_status().request(2, "hearth");
        assert_eq!(parse(&req.to_json()), json!({"id": 2, "src": "hearth", "method": "Shelly.GetStatus"}));
        assert_eq!(Call::get_device_info().method, "Shelly.GetDeviceInfo");
        assert_eq!(Call::get_config().method, "Shelly.GetConfig");
    }

    #[test]
    fn responses_carry_the_result_or_the_device_error() {
        let Frame::Response(r) = parse_frame(DOC_RESPONSE).unwrap() else { panic!("not a response") };
        assert_eq!(r.id, 1);
        assert_eq!(r.src.as_deref(), Some("shellypro4pm-f008d1d8b8b8"));
        assert_eq!(r.dst.as_deref(), Some("user_1"));
        assert_eq!(r.result, Ok(json!({"was_on": true})));

        let Frame::Response(r) = parse_frame(CAPTURE_ERROR).unwrap() else { panic!("not a response") };
        let expected = RemoteError { code: -105, message: "Argument 'key', value 'item1' not found !".into() };
        assert_eq!(r.result, Err(expected.clone()));
        assert_eq!(
            expected.to_string(),
            "the device refused the call: Argument 'key', value 'item1' not found ! (error -105)"
        );
        assert_eq!(r.dst, None);

        // Shelly.Reboot answers null.
        let Frame::Response(r) = parse_frame(r#"{"id": 3, "src": "x", "result": null}"#).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(r.result, Ok(Json::Null));
    }

    #[test]
    fn notifications_parse_with_their_method_and_params() {
        let Frame::Notification(n) = parse_frame(DOC_NOTIFY_STATUS).unwrap() else { panic!() };
        assert_eq!(
            (n.src.as_str(), n.dst.as_deref(), &n.method),
            ("shellypro4pm-f008d1d8b8b8", Some("user_1"), &NotifyMethod::Status)
        );
        assert_eq!(n.params["switch:0"], json!({"id": 0, "output": true, "source": "button"}));
        let Frame::Notification(n) = parse_frame(DOC_NOTIFY_FULL_STATUS_HT).unwrap() else { panic!() };
        assert_eq!(n.method, NotifyMethod::FullStatus);
        assert_eq!(n.src, "shellyplusht-f008d1d8b8b8");
        let Frame::Notification(n) = parse_frame(DOC_NOTIFY_EVENT).unwrap() else { panic!() };
        assert_eq!(n.method, NotifyMethod::Event);
        assert_eq!(n.method.name(), "NotifyEvent");
        let Frame::Notification(n) = parse_frame(r#"{"src": "x", "method": "NotifyWakeup"}"#).unwrap() else {
            panic!()
        };
        assert_eq!(n.method, NotifyMethod::Other("NotifyWakeup".into()));
        assert_eq!(n.params, json!({}));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let cases = [
            ("", "not JSON: EOF while parsing a value at line 1 column 0"),
            ("[1]", "the frame is not a JSON object"),
            (r#"{"id": 1}"#, "the frame: neither a response (no `result` or `error`) nor a notification (no `method`)"),
            (r#"{"result": {}}"#, "response: `id` is missing"),
            (r#"{"id": -1, "result": {}}"#, "response: `id` -1 is not a request id (a whole number from 0)"),
            (r#"{"id": "a", "result": {}}"#, "response: `id` \"a\" is not a request id (a whole number from 0)"),
            (r#"{"id": 1, "error": "bad"}"#, "response: `error` is a string, not an object"),
            (r#"{"id": 1, "error": {"message": "x"}}"#, "response: `error.code` is missing or not a whole number"),
            (r#"{"id": 1, "src": 5, "result": 1}"#, "response: `src` is a number, not a string"),
            (r#"{"method": "NotifyStatus", "params": {}}"#, "notification: NotifyStatus without `src`"),
            (r#"{"src": 1, "method": "NotifyStatus"}"#, "notification: `src` is a number, not a string"),
            (r#"{"src": "x", "method": 7}"#, "notification: `method` is a number, not a string"),
            (
                r#"{"src": "x", "method": "NotifyStatus", "params": [1]}"#,
                "notification: NotifyStatus with `params` that is an array, not an object",
            ),
            (
                r#"{"src": "x", "method": "NotifyEvent", "params": {}}"#,
                "notification: NotifyEvent without an `events` array",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse_frame(text).map(|_| ()).unwrap_err().to_string(), message, "{text}");
        }
        let truncated = &DOC_NOTIFY_STATUS[..DOC_NOTIFY_STATUS.len() / 2];
        assert!(parse_frame(truncated).unwrap_err().to_string().starts_with("not JSON: EOF while parsing"));
    }

    // --------------------------------------------------------------------------------------------
    // Identity
    // --------------------------------------------------------------------------------------------

    #[test]
    fn device_info_from_the_docs() {
        let i = info(DOC_DEVICE_INFO);
        assert_eq!(i.id, "shellypro4pm-f008d1d8b8b8");
        assert_eq!(i.mac.as_deref(), Some("F008D1D8B8B8"));
        assert_eq!(i.model, "SPSW-004PE16EU");
        assert_eq!(i.generation, 2);
        assert_eq!(i.fw_id.as_deref(), Some("20210720-153353/0.6.7-gc36674b"));
        assert_eq!(i.app.as_deref(), Some("FourPro"));
        assert!(i.auth_en);
        assert_eq!(i.name, None);
        assert_eq!(i.device_id().as_str(), "shelly:shellypro4pm-f008d1d8b8b8");
        assert_eq!(i.device_id().adapter(), ADAPTER_ID);
        assert_eq!(i.model_name(), "Shelly Pro 4PM");
        assert_eq!(i.firmware().as_deref(), Some("0.6.7"));
    }

    #[test]
    fn device_info_of_captured_devices() {
        let i = info(CAPTURE_MINI_GEN4_INFO);
        assert_eq!(i.device_id().as_str(), "shelly:shelly1minig4-aabbccddeeff");
        assert_eq!((i.generation, i.model_name().as_str()), (4, "Shelly 1 Mini Gen4"));
        assert_eq!(i.name.as_deref(), Some("Shelly 1 Mini Gen4 [DDEEFF]"));
        assert_eq!(i.firmware().as_deref(), Some("1.5.99-g4prod1"));
        assert!(!i.auth_en);
        let dump = parse(CAPTURE_PRO_3EM);
        let i = DeviceInfo::parse(&dump["shelly"]).unwrap();
        assert_eq!((i.model_name().as_str(), i.profile.as_deref()), ("Shelly Pro 3EM", Some("triphase")));
        // Round trip of the serde form, as the adapter may store it.
        let back: DeviceInfo = serde_json::from_value(serde_json::to_value(&i).unwrap()).unwrap();
        assert_eq!(back, i);
    }

    #[test]
    fn device_info_refuses_what_is_not_a_gen2_device() {
        let cases = [
            (
                json!({"id": "shelly1-34945475a1b2", "model": "SHSW-1", "gen": 1}),
                "device `shelly1-34945475a1b2` is generation 1; only Gen2 and later devices speak the RPC API",
            ),
            (json!({"model": "SNSW-001X16EU", "gen": 2}), "Shelly.GetDeviceInfo result: missing field `id`"),
            (
                json!({"id": "shellyplus1-a8032ab12345", "model": "SNSW-001X16EU", "gen": "2"}),
                "Shelly.GetDeviceInfo result: invalid type: string \"2\", expected u64",
            ),
            (json!({"id": "", "model": "x", "gen": 2}), "Shelly.GetDeviceInfo result: `id` is empty"),
            (
                json!({"id": "a/b", "model": "x", "gen": 2}),
                "Shelly.GetDeviceInfo result: `id` \"a/b\" holds '/'; a device id is letters, digits, `-` and `_`",
            ),
            (json!([1]), "Shelly.GetDeviceInfo result is not a JSON object"),
        ];
        for (json, message) in cases {
            assert_eq!(DeviceInfo::parse(&json).unwrap_err().to_string(), message, "{json}");
        }
    }

    #[test]
    fn model_names_of_common_codes() {
        for (code, name) in [
            ("SNSW-001X16EU", "Shelly Plus 1"),
            ("SNSW-001P16EU", "Shelly Plus 1PM"),
            ("SNSW-002P16EU", "Shelly Plus 2PM"),
            ("SPSW-004PE16EU", "Shelly Pro 4PM"),
            ("SNPL-00112EU", "Shelly Plus Plug S"),
            ("SNSN-0013A", "Shelly Plus H&T"),
            ("SNSN-0024X", "Shelly Plus i4"),
            ("SNDC-0D4P10WW", "Shelly Plus RGBW PM"),
            ("SNDM-0013US", "Shelly Plus Wall Dimmer"),
            ("S3SW-001X16EU", "Shelly 1 Gen3"),
            ("S3SW-001P16EU", "Shelly 1PM Gen3"),
            ("S3SW-002P16EU", "Shelly 2PM Gen3"),
            ("S3SW-001P8EU", "Shelly 1PM Mini Gen3"),
            ("S4SW-001P16EU", "Shelly 1PM Gen4"),
        ] {
            assert_eq!(model_name(code), Some(name), "{code}");
        }
        assert_eq!(model_name("XYZ-1"), None);
        let unknown = info(r#"{"id": "shellyfuture-a8032ab12345", "model": "S9XX-001", "gen": 9, "app": "Future9"}"#);
        assert_eq!(unknown.model_name(), "Future9");
        let bare = info(r#"{"id": "shellyfuture-a8032ab12345", "model": "S9XX-001", "gen": 9}"#);
        assert_eq!(bare.model_name(), "S9XX-001");
        assert_eq!(bare.firmware(), None);
        let codes: BTreeSet<&str> = MODELS.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes.len(), MODELS.len(), "a model code is listed twice");
    }

    // --------------------------------------------------------------------------------------------
    // Components, from the documentation's examples
    // --------------------------------------------------------------------------------------------

    #[test]
    fn switch_status_from_the_docs() {
        let m = one_component("switch:0", parse(DOC_SWITCH_CONFIG), DOC_SWITCH_STATUS);
        let d = m.descriptor();
        assert_eq!(d.id.as_str(), "shelly:shellypro4pm-f008d1d8b8b8");
        assert_eq!(d.name, "Shelly Pro 4PM");
        assert_eq!(d.manufacturer.as_deref(), Some("Shelly"));
        assert_eq!(d.model.as_deref(), Some("Shelly Pro 4PM"));
        assert_eq!(d.firmware.as_deref(), Some("0.6.7"));
        assert_eq!(d.power_source, PowerSource::Mains);
        assert_eq!(
            keys(&m),
            ["state", "power", "energy", "energy_returned", "voltage", "current", "device_temperature"]
        );
        let state = feature(&m, "state");
        assert_eq!(
            (state.capability, &state.value_type, state.access),
            (Capability::OnOff, &ValueType::Bool, Access::ALL)
        );
        assert_eq!((state.label.as_deref(), state.endpoint.as_deref()), (Some("Switchdsds"), None));
        assert_eq!(feature(&m, "power").label.as_deref(), Some("Switchdsds power"));
        assert_eq!(feature(&m, "energy_returned").label.as_deref(), Some("Switchdsds returned energy"));
        assert_eq!(feature(&m, "device_temperature").label.as_deref(), Some("Switchdsds device temperature"));
        for key in ["power", "energy", "energy_returned"] {
            assert_eq!((feature(&m, key).access, feature(&m, key).category), (READ_GET, Category::Primary), "{key}");
        }
        for key in ["voltage", "current", "device_temperature"] {
            assert_eq!(feature(&m, key).category, Category::Diagnostic, "{key}");
        }
        check_values(
            &m,
            &json!({"switch:0": parse(DOC_SWITCH_STATUS)}),
            &[
                ("state", Value::Bool(false), None),
                ("power", n(0.0), Some("W")),
                ("energy", n(0.011679), Some("kWh")),
                ("energy_returned", n(0.005817), Some("kWh")),
                ("voltage", n(225.9), Some("V")),
                ("current", n(0.0), Some("A")),
                ("device_temperature", n(53.3), Some("°C")),
            ],
        );
    }

    #[test]
    fn notify_status_from_the_docs_reports_only_what_changed() {
        let m = one_component("switch:0", parse(DOC_SWITCH_CONFIG), DOC_SWITCH_STATUS);
        let Frame::Notification(note) = parse_frame(DOC_NOTIFY_STATUS).unwrap() else { panic!() };
        check_values(&m, &note.params, &[("state", Value::Bool(true), None)]);
        assert!(!m.needs_rebuild(&note.params));
        // Energy counters arrive on their own once a minute.
        let energy = json!({"switch:0": {"id": 0, "aenergy": {"by_minute": [12.3, 0, 0], "minute_ts": 1654512000, "total": 11.691}}});
        check_values(&m, &energy, &[("energy", n(0.011691), Some("kWh"))]);
        // A null (a field that went away) and the wrong types give nothing.
        let odd = json!({"switch:0": {"id": 0, "apower": null, "output": "on", "voltage": "230", "aenergy": {"total": null}}});
        check_values::<&str>(&m, &odd, &[]);
    }

    #[test]
    fn cover_status_from_the_docs() {
        let m = one_component("cover:0", json!({"id": 0, "name": "Living room blinds"}), DOC_COVER_STATUS);
        assert_eq!(
            keys(&m),
            ["cover_position", "cover_state", "power", "energy", "voltage", "current", "device_temperature"]
        );
        let position = feature(&m, "cover_position");
        assert_eq!(position.capability, Capability::CoverPosition);
        assert_eq!(position.value_type, ValueType::range(0.0, 100.0, 1.0));
        assert_eq!((position.access, position.label.as_deref()), (Access::ALL, Some("Living room blinds")));
        let state = feature(&m, "cover_state");
        assert_eq!(state.capability, Capability::CoverState);
        assert_eq!(state.value_type, ValueType::enumeration(["open", "close", "stop"]));
        assert_eq!((state.access, state.label.as_deref()), (Access::ALL, Some("Living room blinds motion")));
        check_values(
            &m,
            &json!({"cover:0": parse(DOC_COVER_STATUS)}),
            &[
                ("cover_position", n(100.0), Some("%")),
                ("cover_state", Value::from("open"), None),
                ("power", n(0.0), Some("W")),
                ("energy", n(0.048996), Some("kWh")),
                ("voltage", n(233.0), Some("V")),
                ("current", n(0.0), Some("A")),
                ("device_temperature", n(55.4), Some("°C")),
            ],
        );
        for (shelly, hearth) in [
            ("opening", Some("open")),
            ("closed", Some("close")),
            ("closing", Some("close")),
            ("stopped", Some("stop")),
            ("calibrating", None),
        ] {
            let got = m.values(&json!({"cover:0": {"id": 0, "state": shelly}})).unwrap();
            assert_eq!(got.get("cover_state"), hearth.map(Value::from).as_ref(), "{shelly}");
        }
        // Not calibrated: no position to set or report, and losing the calibration means a rebuild.
        let mut uncalibrated = parse(DOC_COVER_STATUS);
        uncalibrated["pos_control"] = json!(false);
        uncalibrated["current_pos"] = Json::Null;
        let u = one_component("cover:0", json!({"id": 0, "name": null}), &uncalibrated.to_string());
        assert_eq!(keys(&u), ["cover_state", "power", "energy", "voltage", "current", "device_temperature"]);
        assert_eq!(feature(&u, "cover_state").label, None);
        assert!(m.needs_rebuild(&json!({"cover:0": {"id": 0, "pos_control": false}})));
        assert!(u.needs_rebuild(&json!({"cover:0": {"id": 0, "pos_control": true, "current_pos": 0}})));
        assert!(!m.needs_rebuild(&json!({"cover:0": {"id": 0, "current_pos": 40, "state": "closing"}})));
    }

    #[test]
    fn light_status_from_the_docs() {
        let m = one_component("light:0", json!({"id": 0, "name": null}), DOC_LIGHT_STATUS);
        assert_eq!(keys(&m), ["state", "brightness"]);
        let b = feature(&m, "brightness");
        assert_eq!(
            (b.capability, &b.value_type, b.access),
            (Capability::Brightness, &ValueType::range(0.0, 100.0, 1.0), Access::ALL)
        );
        assert_eq!(b.label, None);
        check_values(
            &m,
            &json!({"light:0": parse(DOC_LIGHT_STATUS)}),
            &[("state", Value::Bool(false), None), ("brightness", n(50.0), Some("%"))],
        );
    }

    #[test]
    fn inputs_from_the_docs_as_state_or_button_events() {
        let switch_type = json!({"id": 0, "name": null, "type": "switch", "invert": false, "factory_reset": true});
        let m = one_component("input:0", switch_type, DOC_INPUT_STATUS);
        assert_eq!(keys(&m), ["input"]);
        let f = feature(&m, "input");
        assert_eq!((f.capability, &f.value_type, f.access), (Capability::OnOff, &ValueType::Bool, READ_GET));
        check_values(&m, &json!({"input:0": parse(DOC_INPUT_STATUS)}), &[("input", Value::Bool(false), None)]);
        let Frame::Notification(note) = parse_frame(DOC_NOTIFY_EVENT).unwrap() else { panic!() };
        assert_eq!(m.events(&note.params), Events::default(), "a switch-type input fires no button events");

        let button_type =
            json!({"id": 0, "name": "Doorbell", "type": "button", "invert": false, "factory_reset": true});
        let m = one_component("input:0", button_type, r#"{"id": 0, "state": null}"#);
        assert_eq!(keys(&m), ["action"]);
        let f = feature(&m, "action");
        assert_eq!((f.capability, f.access, f.label.as_deref()), (Capability::Action, Access::EVENT, Some("Doorbell")));
        assert_eq!(f.value_type, ValueType::enumeration(BUTTON_EVENTS));
        check_values::<&str>(&m, &json!({"input:0": {"id": 0, "state": null}}), &[]);
        let events = m.events(&note.params);
        assert_eq!(events.buttons, [ButtonEvent { feature: "action".into(), event: "single".into() }]);
        assert!(!events.config_changed);
        let device = m.descriptor().id.clone();
        assert_eq!(
            events.buttons[0].clone().into_adapter_event(device.clone()),
            AdapterEvent::Event { device, feature: "action".into(), event: "single".into(), data: None }
        );
        // Every documented input event, in order.
        let all: Vec<Json> = ["single_push", "double_push", "triple_push", "long_push", "btn_down", "btn_up"]
            .iter()
            .map(|e| json!({"component": "input:0", "id": 0, "event": e, "ts": 1631266595.44}))
            .collect();
        let got: Vec<String> =
            m.events(&json!({"ts": 1.0, "events": all})).buttons.into_iter().map(|b| b.event).collect();
        assert_eq!(got, BUTTON_EVENTS);
    }

    #[test]
    fn plus_ht_full_status_from_the_docs() {
        let Frame::Notification(note) = parse_frame(DOC_NOTIFY_FULL_STATUS_HT).unwrap() else { panic!() };
        // The identity and configuration are composed: the documentation gives only the status.
        let ht = info(
            r#"{"id": "shellyplusht-f008d1d8b8b8", "mac": "F008D1E62338", "model": "SNSN-0013A", "gen": 2, "app": "PlusHT", "ver": "0.11.0"}"#,
        );
        let config = json!({
            "temperature:0": {"id": 0, "name": null, "report_thr_C": 1.0},
            "humidity:0": {"id": 0, "name": null, "report_thr": 5.0},
            "devicepower:0": {"id": 0},
            "sys": {"device": {"name": null, "mac": "F008D1E62338"}}
        });
        let m = DeviceMapping::new(ht, &config, &note.params).unwrap();
        let d = m.descriptor();
        assert_eq!((d.name.as_str(), d.model.as_deref()), ("Shelly Plus H&T", Some("Shelly Plus H&T")));
        assert_eq!(d.power_source, PowerSource::Battery);
        assert!(m.is_sleepy());
        assert_eq!(
            keys(&m),
            ["temperature", "humidity", "battery", "battery_voltage", "external_power", "signal_strength"]
        );
        for f in &d.features {
            assert_eq!(f.access, Access::READ_ONLY, "{} sleeps, so nothing can be asked for", f.key);
        }
        let battery = feature(&m, "battery");
        assert_eq!((battery.capability, battery.category), (Capability::Battery, Category::Diagnostic));
        assert_eq!(feature(&m, "external_power").label.as_deref(), Some("External power"));
        assert_eq!(feature(&m, "signal_strength").category, Category::Diagnostic);
        check_values(
            &m,
            &note.params,
            &[
                ("temperature", n(20.0), Some("°C")),
                ("humidity", n(50.0), Some("%")),
                ("battery", n(11.0), Some("%")),
                ("battery_voltage", n(4.59), Some("V")),
                ("external_power", Value::Bool(false), None),
                // rssi 0 while disconnected is no reading.
            ],
        );
        assert_eq!(
            m.command(&request(json!({"refresh": ["temperature"]}))),
            Err(CommandMapError::NotReadable("temperature".into()))
        );
    }

    // --------------------------------------------------------------------------------------------
    // Whole devices, from captures
    // --------------------------------------------------------------------------------------------

    #[test]
    fn plus_1pm_capture() {
        let (m, status) = from_dump(CAPTURE_PLUS_1PM);
        let d = m.descriptor();
        assert_eq!((d.id.as_str(), d.name.as_str()), ("shelly:shellyplus1pm-aabbccddeeff", "Test Name"));
        assert_eq!((d.model.as_deref(), d.firmware.as_deref()), (Some("Shelly Plus 1PM"), Some("1.1.0")));
        assert_eq!(
            keys(&m),
            ["state", "power", "energy", "voltage", "current", "device_temperature", "input", "signal_strength"]
        );
        assert_eq!(feature(&m, "state").label.as_deref(), Some("Switch Test Name 0"));
        assert_eq!(feature(&m, "input").label.as_deref(), Some("Input Test Name 0"));
        assert_eq!(feature(&m, "signal_strength").capability, Capability::SignalStrength);
        check_values(
            &m,
            &status,
            &[
                ("state", Value::Bool(false), None),
                ("power", n(0.0), Some("W")),
                ("energy", n(0.110046), Some("kWh")),
                ("voltage", n(227.7), Some("V")),
                ("current", n(0.0), Some("A")),
                ("device_temperature", n(36.1), Some("°C")),
                ("input", Value::Bool(false), None),
                ("signal_strength", n(-60.0), Some("dBm")),
            ],
        );
        assert!(!m.needs_rebuild(&status));
    }

    #[test]
    fn pro_4pm_capture_puts_each_channel_on_its_endpoint() {
        let (m, status) = from_dump(CAPTURE_PRO_4PM);
        let mut want = Vec::new();
        for i in 0..4 {
            for key in ["state", "power", "energy", "voltage", "current", "device_temperature"] {
                want.push(format!("{key}_switch_{i}"));
            }
        }
        for i in 0..4 {
            want.push(format!("input_input_{i}"));
        }
        want.push("signal_strength".into());
        assert_eq!(keys(&m), want);
        let s1 = feature(&m, "state_switch_1");
        assert_eq!(
            (s1.endpoint.as_deref(), s1.label.as_deref(), s1.access),
            (Some("switch_1"), Some("switch 1"), Access::ALL)
        );
        let p3 = feature(&m, "power_switch_3");
        assert_eq!((p3.endpoint.as_deref(), p3.label.as_deref()), (Some("switch_3"), Some("switch 3 power")));
        assert_eq!(feature(&m, "input_input_2").endpoint.as_deref(), Some("input_2"));
        let mut expected: Vec<(String, Value, Option<&str>)> = Vec::new();
        for (i, voltage) in [121.7, 121.8, 121.8, 121.8].into_iter().enumerate() {
            let k = |key: &str| format!("{key}_switch_{i}");
            expected.push((k("state"), Value::Bool(false), None));
            expected.push((k("power"), n(0.0), Some("W")));
            expected.push((k("energy"), n(0.0), Some("kWh")));
            expected.push((k("voltage"), n(voltage), Some("V")));
            expected.push((k("current"), n(0.0), Some("A")));
            expected.push((k("device_temperature"), n(25.6), Some("°C")));
        }
        for i in 0..4 {
            expected.push((format!("input_input_{i}"), Value::Bool(false), None));
        }
        expected.push(("signal_strength".into(), n(-71.0), Some("dBm")));
        check_values(&m, &status, &expected);
        assert_eq!(
            calls(&m, json!({"set": {"state_switch_2": true, "state_switch_0": false}})),
            [
                json!({"method": "Switch.Set", "params": {"id": 0, "on": false}}),
                json!({"method": "Switch.Set", "params": {"id": 2, "on": true}}),
            ]
        );
        assert_eq!(
            calls(&m, json!({"toggle": ["state_switch_3"]})),
            [json!({"method": "Switch.Toggle", "params": {"id": 3}})]
        );
    }

    #[test]
    fn pro_3em_capture_with_phases() {
        let (m, status) = from_dump(CAPTURE_PRO_3EM);
        let mut want: Vec<String> = ["power", "current", "energy", "energy_returned"].map(String::from).to_vec();
        for p in ["a", "b", "c"] {
            for key in ["power", "voltage", "current", "energy", "energy_returned"] {
                want.push(format!("{key}_phase_{p}"));
            }
        }
        want.extend(["temperature".to_owned(), "signal_strength".to_owned()]);
        assert_eq!(keys(&m), want);
        assert_eq!(feature(&m, "power").label.as_deref(), Some("Energy Monitor Test Name 0"));
        let pa = feature(&m, "power_phase_a");
        assert_eq!(
            (pa.endpoint.as_deref(), pa.label.as_deref()),
            (Some("phase_a"), Some("Energy Monitor Test Name 0 phase A power"))
        );
        assert_eq!(feature(&m, "voltage_phase_b").category, Category::Primary);
        assert_eq!(feature(&m, "temperature").label, None);
        check_values(
            &m,
            &status,
            &[
                ("power", n(2530.977), Some("W")),
                ("current", n(12.354), Some("A")),
                ("energy", n(2585.99618), Some("kWh")),
                ("energy_returned", n(1.02661), Some("kWh")),
                ("power_phase_a", n(2367.6), Some("W")),
                ("voltage_phase_a", n(223.6), Some("V")),
                ("current_phase_a", n(10.965), Some("A")),
                ("energy_phase_a", n(2031.63732), Some("kWh")),
                ("energy_returned_phase_a", n(0.0), Some("kWh")),
                ("power_phase_b", n(149.7), Some("W")),
                ("voltage_phase_b", n(223.7), Some("V")),
                ("current_phase_b", n(0.966), Some("A")),
                ("energy_phase_b", n(184.94757), Some("kWh")),
                ("energy_returned_phase_b", n(0.0407), Some("kWh")),
                ("power_phase_c", n(13.7), Some("W")),
                ("voltage_phase_c", n(223.8), Some("V")),
                ("current_phase_c", n(0.422), Some("A")),
                ("energy_phase_c", n(369.41129), Some("kWh")),
                ("energy_returned_phase_c", n(0.98591), Some("kWh")),
                ("temperature", n(46.1), Some("°C")),
            ],
        );
        assert_eq!(m.command(&request(json!({"set": {"power": 5}}))), Err(CommandMapError::ReadOnly("power".into())));
    }

    #[test]
    fn gen3_2pm_cover_capture() {
        let status = parse(CAPTURE_2PM_GEN3_STATUS);
        let config = json!({
            "cover:0": {"id": 0, "name": null},
            "input:0": {"id": 0, "name": null, "type": "button", "enable": true},
            "input:1": {"id": 1, "name": null, "type": "button", "enable": true},
            "number:200": {"id": 200, "name": "Virtual"}
        });
        let i = info(
            r#"{"id": "shelly2pmg3-aabbccddeeff", "model": "S3SW-002P16EU", "gen": 3, "app": "S2PMG3", "profile": "cover"}"#,
        );
        let m = DeviceMapping::new(i, &config, &status).unwrap();
        assert_eq!(m.descriptor().name, "Shelly 2PM Gen3");
        assert_eq!(
            keys(&m),
            [
                "cover_position",
                "cover_state",
                "power",
                "energy",
                "voltage",
                "current",
                "device_temperature",
                "action_input_0",
                "action_input_1",
                "signal_strength"
            ]
        );
        check_values(
            &m,
            &status,
            &[
                ("cover_position", n(100.0), Some("%")),
                ("cover_state", Value::from("open"), None),
                ("power", n(0.0), Some("W")),
                ("energy", n(0.314614), Some("kWh")),
                ("voltage", n(219.2), Some("V")),
                ("current", n(0.0), Some("A")),
                ("device_temperature", n(52.0), Some("°C")),
                ("signal_strength", n(-38.0), Some("dBm")),
            ],
        );
        let events = json!({"ts": 1.0, "events": [
            {"component": "input:1", "id": 1, "event": "double_push", "ts": 1.0},
            {"component": "input:0", "id": 0, "event": "long_push", "ts": 1.1}]});
        assert_eq!(
            m.events(&events).buttons,
            [
                ButtonEvent { feature: "action_input_1".into(), event: "double".into() },
                ButtonEvent { feature: "action_input_0".into(), event: "hold".into() },
            ]
        );
        assert_eq!(
            calls(&m, json!({"set": {"cover_position": 42.6}})),
            [json!({"method": "Cover.GoToPosition", "params": {"id": 0, "pos": 43}})]
        );
        for (motion, method) in [("open", "Cover.Open"), ("close", "Cover.Close"), ("stop", "Cover.Stop")] {
            assert_eq!(
                calls(&m, json!({"set": {"cover_state": motion}})),
                [json!({"method": method, "params": {"id": 0}})]
            );
        }
        assert_eq!(
            m.command(&request(json!({"set": {"cover_state": "stop", "cover_position": 10}}))).unwrap_err().to_string(),
            "features `cover_position` and `cover_state` of cover:0 cannot be changed in one command: a cover goes to a position or moves, not both"
        );
    }

    #[test]
    fn pm_mini_gen3_capture() {
        let m = one_component("pm1:0", json!({"id": 0, "name": null}), CAPTURE_PM_MINI_GEN3_PM1);
        assert_eq!(keys(&m), ["power", "energy", "energy_returned", "voltage", "current"]);
        assert_eq!(feature(&m, "voltage").category, Category::Primary);
        assert_eq!(feature(&m, "energy_returned").label.as_deref(), Some("Returned energy"));
        check_values(
            &m,
            &json!({"pm1:0": parse(CAPTURE_PM_MINI_GEN3_PM1)}),
            &[
                ("power", n(230.0), Some("W")),
                ("energy", n(3.19588), Some("kWh")),
                ("energy_returned", n(0.0), Some("kWh")),
                ("voltage", n(230.9), Some("V")),
                ("current", n(1.0), Some("A")),
            ],
        );
    }

    #[test]
    fn mini_gen4_capture_without_configuration() {
        let status = parse(CAPTURE_MINI_GEN4_STATUS);
        let m = DeviceMapping::new(info(CAPTURE_MINI_GEN4_INFO), &json!({}), &status).unwrap();
        let d = m.descriptor();
        assert_eq!((d.name.as_str(), d.model.as_deref()), ("Shelly 1 Mini Gen4 [DDEEFF]", Some("Shelly 1 Mini Gen4")));
        assert_eq!(keys(&m), ["state", "device_temperature", "input", "signal_strength"]);
        check_values(
            &m,
            &status,
            &[
                ("state", Value::Bool(false), None),
                ("device_temperature", n(64.4), Some("°C")),
                ("input", Value::Bool(false), None),
                ("signal_strength", n(-65.0), Some("dBm")),
            ],
        );
    }

    #[test]
    fn single_instances_sharing_a_key_move_to_their_endpoints() {
        // A Pro EM-50 shape: a contactor relay with no meter of its own and two clamps.
        let status = json!({
            "switch:0": {"id": 0, "output": true},
            "em1:0": {"id": 0, "current": 2.0, "voltage": 230.0, "act_power": 460.0, "aprt_power": 470.0, "pf": 0.97, "freq": 50.0},
            "em1:1": {"id": 1, "current": 0.5, "voltage": 230.0, "act_power": 120.0, "aprt_power": 125.0, "pf": 0.96, "freq": 50.0},
            "em1data:0": {"id": 0, "total_act_energy": 4200.0, "total_act_ret_energy": 0.0},
            "em1data:1": {"id": 1, "total_act_energy": 1800.0}
        });
        let config = json!({"em1:0": {"id": 0, "name": "Hot water"}, "em1:1": {"id": 1, "name": null}});
        let i = info(r#"{"id": "shellyproem50-aabbccddeeff", "model": "SPEM-002CEBEU50", "gen": 2}"#);
        let m = DeviceMapping::new(i, &config, &status).unwrap();
        assert_eq!(
            keys(&m),
            [
                "state",
                "power_em1_0",
                "voltage_em1_0",
                "current_em1_0",
                "energy_em1_0",
                "energy_returned_em1_0",
                "power_em1_1",
                "voltage_em1_1",
                "current_em1_1",
                "energy_em1_1"
            ]
        );
        assert_eq!(feature(&m, "power_em1_0").label.as_deref(), Some("Hot water"));
        assert_eq!(feature(&m, "energy_em1_0").label.as_deref(), Some("Hot water energy"));
        check_values(
            &m,
            &status,
            &[
                ("state", Value::Bool(true), None),
                ("power_em1_0", n(460.0), Some("W")),
                ("voltage_em1_0", n(230.0), Some("V")),
                ("current_em1_0", n(2.0), Some("A")),
                ("energy_em1_0", n(4.2), Some("kWh")),
                ("energy_returned_em1_0", n(0.0), Some("kWh")),
                ("power_em1_1", n(120.0), Some("W")),
                ("voltage_em1_1", n(230.0), Some("V")),
                ("current_em1_1", n(0.5), Some("A")),
                ("energy_em1_1", n(1.8), Some("kWh")),
            ],
        );
        // A metering relay next to a PM1 meter: both have `power`, so both go to endpoints.
        let status = json!({"switch:0": {"id": 0, "output": false, "apower": 1.5}, "pm1:0": {"id": 0, "apower": 7.0}});
        let m = DeviceMapping::new(info(DOC_DEVICE_INFO), &json!({}), &status).unwrap();
        assert_eq!(keys(&m), ["state_switch_0", "power_switch_0", "power_pm1_0"]);
        check_values(
            &m,
            &status,
            &[
                ("state_switch_0", Value::Bool(false), None),
                ("power_switch_0", n(1.5), Some("W")),
                ("power_pm1_0", n(7.0), Some("W")),
            ],
        );
    }

    #[test]
    fn sensors_and_alarms() {
        let status = json!({
            "illuminance:0": {"id": 0, "lux": 345, "illumination": "twilight"},
            "smoke:0": {"id": 0, "alarm": false, "mute": false},
            "flood:0": {"id": 0, "alarm": true, "mute": false},
            "temperature:100": {"id": 100, "tC": null, "tF": null, "errors": ["read"]},
            "input:2": {"id": 2, "percent": 42.5}
        });
        let config = json!({"input:2": {"id": 2, "name": null, "type": "analog"}, "temperature:100": {"id": 100, "name": "Outside"}});
        let m = DeviceMapping::new(info(DOC_DEVICE_INFO), &config, &status).unwrap();
        assert_eq!(keys(&m), ["input_level", "temperature", "illuminance", "smoke", "water_leak"]);
        assert_eq!(feature(&m, "input_level").capability, Capability::Other);
        assert_eq!(feature(&m, "temperature").label.as_deref(), Some("Outside"));
        assert_eq!(feature(&m, "water_leak").capability, Capability::WaterLeak);
        check_values(
            &m,
            &status,
            &[
                ("input_level", n(42.5), Some("%")),
                ("illuminance", n(345.0), Some("lx")),
                ("smoke", Value::Bool(false), None),
                ("water_leak", Value::Bool(true), None),
            ],
        );
    }

    // --------------------------------------------------------------------------------------------
    // Commands
    // --------------------------------------------------------------------------------------------

    #[test]
    fn commands_become_rpc_calls() {
        let light = one_component("light:0", json!({"id": 0, "name": null}), DOC_LIGHT_STATUS);
        assert_eq!(
            calls(&light, json!({"set": {"brightness": 40.4, "state": true}, "transition": 2})),
            [
                json!({"method": "Light.Set", "params": {"id": 0, "on": true, "brightness": 40, "transition_duration": 2.0}})
            ]
        );
        assert_eq!(
            calls(&light, json!({"set": {"state": false}})),
            [json!({"method": "Light.Set", "params": {"id": 0, "on": false}})]
        );
        assert_eq!(
            calls(&light, json!({"set": {"brightness": 99.6}})),
            [json!({"method": "Light.Set", "params": {"id": 0, "brightness": 100}})]
        );
        assert_eq!(
            calls(&light, json!({"toggle": ["state"]})),
            [json!({"method": "Light.Toggle", "params": {"id": 0}})]
        );
        assert_eq!(
            calls(&light, json!({"set": {"state": true}, "refresh": true})),
            [
                json!({"method": "Light.Set", "params": {"id": 0, "on": true}}),
                json!({"method": "Shelly.GetStatus", "params": {}})
            ]
        );
        assert_eq!(
            calls(&light, json!({"refresh": ["brightness"]})),
            [json!({"method": "Shelly.GetStatus", "params": {}})]
        );

        let switch = one_component("switch:0", parse(DOC_SWITCH_CONFIG), DOC_SWITCH_STATUS);
        assert_eq!(
            calls(&switch, json!({"set": {"state": true}, "transition": 3})),
            [json!({"method": "Switch.Set", "params": {"id": 0, "on": true}})]
        );
        let errors = [
            (json!({}), CommandMapError::Empty),
            (json!({"refresh": false}), CommandMapError::Empty),
            (json!({"refresh": []}), CommandMapError::Empty),
            (json!({"set": {"brightness": 3}}), CommandMapError::UnknownFeature("brightness".into())),
            (json!({"set": {"power": 3}}), CommandMapError::ReadOnly("power".into())),
            (json!({"refresh": ["nope"]}), CommandMapError::UnknownFeature("nope".into())),
            (json!({"toggle": ["power"]}), CommandMapError::NotToggleable("power".into())),
            (json!({"set": {"state": true}, "toggle": ["state"]}), CommandMapError::NotToggleable("state".into())),
            (
                json!({"set": {"state": "on"}}),
                CommandMapError::WrongValue {
                    feature: "state".into(),
                    expected: "true or false",
                    value: Value::from("on"),
                },
            ),
        ];
        for (json, error) in errors {
            assert_eq!(switch.command(&request(json.clone())), Err(error), "{json}");
        }
        assert_eq!(
            switch.command(&request(json!({"set": {"state": "on"}}))).unwrap_err().to_string(),
            "feature `state` takes true or false, not \"on\""
        );
        assert_eq!(
            light.command(&request(json!({"set": {"brightness": 140}}))).unwrap_err().to_string(),
            "feature `brightness` takes a number from 0 to 100, not 140.0"
        );
        let nan =
            CommandRequest { set: BTreeMap::from([("brightness".to_owned(), n(f64::NAN))]), ..Default::default() };
        assert!(matches!(light.command(&nan), Err(CommandMapError::WrongValue { .. })));
        assert_eq!(
            light.command(&request(json!({"set": {"brightness": 10}, "toggle": ["state"]}))).unwrap_err().to_string(),
            "features `state` and `brightness` of light:0 cannot be changed in one command: a light is toggled without a new brightness"
        );
        let cover = one_component("cover:0", json!({"id": 0}), DOC_COVER_STATUS);
        assert_eq!(
            cover.command(&request(json!({"set": {"cover_state": "up"}}))),
            Err(CommandMapError::WrongValue {
                feature: "cover_state".into(),
                expected: "one of open, close, stop",
                value: Value::from("up")
            })
        );
        let button = one_component("input:0", json!({"id": 0, "type": "button"}), r#"{"id": 0, "state": null}"#);
        assert_eq!(
            button.command(&request(json!({"refresh": ["action"]}))),
            Err(CommandMapError::NotReadable("action".into()))
        );
    }

    #[test]
    fn descriptors_accept_the_commands_the_hub_validates() {
        let light = one_component("light:0", json!({"id": 0, "name": null}), DOC_LIGHT_STATUS);
        let (pro4, _) = from_dump(CAPTURE_PRO_4PM);
        let cover = one_component("cover:0", json!({"id": 0}), DOC_COVER_STATUS);
        let cases = [
            (&light, json!({"set": {"brightness": 40, "state": true}, "transition": 2})),
            (&light, json!({"refresh": true})),
            (&pro4, json!({"set": {"state_switch_1": true}})),
            (&pro4, json!({"refresh": ["power_switch_1", "input_input_0", "signal_strength"]})),
            (&cover, json!({"set": {"cover_position": 0}})),
            (&cover, json!({"set": {"cover_state": "stop"}})),
        ];
        for (m, json) in cases {
            let req = request(json.clone());
            assert_eq!(req.validate(&m.descriptor().features), Ok(()), "{json}");
            assert!(m.command(&req).is_ok(), "{json}");
        }
        for (m, json) in [(&pro4, json!({"set": {"power_switch_0": 1}})), (&light, json!({"set": {"brightness": 101}}))]
        {
            assert!(request(json.clone()).validate(&m.descriptor().features).is_err(), "{json}");
        }
    }

    // --------------------------------------------------------------------------------------------
    // Units, keys, rebuilds, events
    // --------------------------------------------------------------------------------------------

    #[test]
    fn unit_conversions_at_their_edges() {
        assert_eq!(wh_to_kwh(0.0), 0.0);
        assert_eq!(wh_to_kwh(1.0), 0.001);
        assert_eq!(wh_to_kwh(0.0004), 0.0, "below a mWh");
        assert_eq!(wh_to_kwh(110.046), 0.110046);
        assert_eq!(wh_to_kwh(999_999_999.999), 999_999.999999);
        assert_eq!(wh_to_kwh(0.1 + 0.2), 0.0003, "float noise is rounded away");
        assert_eq!(want_percent("b", &n(0.0)), Ok(0));
        assert_eq!(want_percent("b", &n(100.0)), Ok(100));
        assert_eq!(want_percent("b", &n(0.5)), Ok(1));
        assert_eq!(want_percent("b", &n(99.4)), Ok(99));
        assert!(want_percent("b", &n(-0.1)).is_err());
        assert!(want_percent("b", &n(f64::INFINITY)).is_err());
        let signal = |rssi: Json| Field::Signal.read(json!({"rssi": rssi}).as_object().unwrap());
        assert_eq!(signal(json!(-38)), Some(n(-38.0)));
        assert_eq!(signal(json!(0)), None);
        assert_eq!(signal(json!(null)), None);
    }

    #[test]
    fn keys_are_unique_snake_case_with_canonical_units() {
        let mut mappings = vec![
            from_dump(CAPTURE_PLUS_1PM).0,
            from_dump(CAPTURE_PRO_4PM).0,
            from_dump(CAPTURE_PRO_3EM).0,
            one_component("cover:0", json!({"id": 0}), DOC_COVER_STATUS),
            one_component("light:0", json!({"id": 0}), DOC_LIGHT_STATUS),
        ];
        let status = parse(CAPTURE_MINI_GEN4_STATUS);
        mappings.push(DeviceMapping::new(info(CAPTURE_MINI_GEN4_INFO), &json!({}), &status).unwrap());
        for m in &mappings {
            let mut seen = BTreeSet::new();
            for f in &m.descriptor().features {
                assert!(seen.insert(f.key.clone()), "{} twice", f.key);
                assert!(f.key.starts_with(|c: char| c.is_ascii_lowercase()), "{}", f.key);
                assert!(f.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", f.key);
                if let Some(endpoint) = &f.endpoint {
                    assert!(f.key.ends_with(&format!("_{endpoint}")), "{} on {endpoint}", f.key);
                }
                if f.capability != Capability::Other {
                    assert_eq!(f.unit.as_deref(), f.capability.canonical_unit(), "{}", f.key);
                }
            }
            let json = serde_json::to_value(m.descriptor()).unwrap();
            let back: DeviceDescriptor = serde_json::from_value(json).unwrap();
            assert_eq!(&back, m.descriptor());
        }
    }

    #[test]
    fn needs_rebuild_when_the_status_shows_more_than_the_descriptor() {
        let (m, status) = from_dump(CAPTURE_PLUS_1PM);
        assert!(!m.needs_rebuild(&status));
        assert!(!m.needs_rebuild(&json!({"switch:0": {"id": 0, "apower": 12.5}, "ts": 1.0})));
        assert!(!m.needs_rebuild(&json!({"sys": {"uptime": 1}, "script:1": {"running": true}})));
        assert!(m.needs_rebuild(&json!({"switch:1": {"id": 1, "output": true}})), "a new component");
        assert!(m.needs_rebuild(&json!({"switch:0": {"id": 0, "ret_aenergy": {"total": 1.0}}})), "a new meter");
        assert!(m.needs_rebuild(&json!({"temperature:100": {"id": 100, "tC": 21.5}})), "an add-on sensor");
        assert!(!m.needs_rebuild(&json!([1, 2])));
    }

    #[test]
    fn events_skip_what_is_not_a_button_and_flag_configuration_changes() {
        let m = one_component("input:0", json!({"id": 0, "type": "button"}), r#"{"id": 0, "state": null}"#);
        let params = json!({"ts": 1.0, "events": [
            {"component": "sys", "event": "config_changed", "restart_required": false, "ts": 1.0, "cfg_rev": 36},
            {"component": "input:0", "id": 0, "event": "long_single_push", "ts": 1.0},
            {"component": "input:1", "id": 1, "event": "single_push", "ts": 1.0},
            {"component": "switch:0", "id": 0, "event": "single_push", "ts": 1.0},
            {"id": 0, "event": "single_push"},
            {"component": "input:0", "id": 0},
            "garbage",
            {"component": "input:0", "id": 0, "event": "btn_down", "ts": 1.2}
        ]});
        let events = m.events(&params);
        assert!(events.config_changed);
        assert_eq!(events.buttons, [ButtonEvent { feature: "action".into(), event: "press".into() }]);
        assert_eq!(m.events(&json!({"events": "x"})), Events::default());
        assert_eq!(m.events(&json!(null)), Events::default());
    }

    #[test]
    fn construction_refuses_what_is_not_an_object() {
        let i = info(DOC_DEVICE_INFO);
        assert_eq!(
            DeviceMapping::new(i.clone(), &json!(null), &json!({})).unwrap_err().to_string(),
            "the configuration is not a JSON object"
        );
        assert_eq!(
            DeviceMapping::new(i.clone(), &json!({}), &json!("x")).unwrap_err().to_string(),
            "the status is not a JSON object"
        );
        let m = DeviceMapping::new(i, &json!({}), &json!({})).unwrap();
        assert!(m.descriptor().features.is_empty());
        assert_eq!(m.values(&json!(3)).unwrap_err(), RpcError::NotAnObject("the status"));
        assert_eq!(m.info().id, "shellypro4pm-f008d1d8b8b8");
    }

    // --------------------------------------------------------------------------------------------
    // Fuzzing
    // --------------------------------------------------------------------------------------------

    /// A tiny xorshift generator: the same seed, the same run.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn random_json(rng: &mut XorShift, depth: u32) -> Json {
        match rng.below(if depth > 2 { 6 } else { 8 }) {
            0 => Json::Null,
            1 => json!(rng.below(2) == 0),
            2 => json!(rng.next() as i64),
            3 => json!(f64::from(rng.below(20_000) as u32) / 7.0 - 1000.0),
            4 => json!(["open", "closing", "single_push", "switch", "button", "", "config_changed"][rng.below(7)]),
            5 => json!(-(rng.below(100) as i64)),
            6 => Json::Array((0..rng.below(3)).map(|_| random_json(rng, depth + 1)).collect()),
            _ => {
                let keys = [
                    "id",
                    "output",
                    "apower",
                    "aenergy",
                    "total",
                    "state",
                    "tC",
                    "pos_control",
                    "current_pos",
                    "type",
                    "events",
                    "event",
                    "component",
                    "battery",
                    "percent",
                    "rssi",
                    "switch:0",
                    "input:0",
                    "em:0",
                    "emdata:0",
                    "a_act_power",
                    "total_act",
                ];
                Json::Object(
                    (0..rng.below(4))
                        .map(|_| (keys[rng.below(keys.len())].to_owned(), random_json(rng, depth + 1)))
                        .collect(),
                )
            }
        }
    }

    /// Replaces one node of the tree, or removes it, or adds a key.
    fn mutate(rng: &mut XorShift, json: &mut Json, depth: u32) {
        let descend = rng.below(4) != 0 && depth < 8;
        match json {
            Json::Object(map) if !map.is_empty() && descend => {
                let key = map.keys().nth(rng.below(map.len())).cloned().unwrap_or_default();
                match rng.below(8) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        map.insert(key, random_json(rng, depth));
                    }
                    _ => {
                        if let Some(child) = map.get_mut(&key) {
                            mutate(rng, child, depth + 1);
                        }
                    }
                }
            }
            Json::Array(items) if !items.is_empty() && descend => {
                let i = rng.below(items.len());
                mutate(rng, &mut items[i], depth + 1);
            }
            _ => *json = random_json(rng, depth),
        }
    }

    fn exercise(text: &str) {
        let _ = parse_frame(text);
        let Ok(json) = serde_json::from_str::<Json>(text) else { return };
        let _ = DeviceInfo::parse(&json);
        let _ = DeviceInfo::parse(&json["shelly"]);
        let info = DeviceInfo::parse(&json["shelly"]).unwrap_or_else(|_| info(DOC_DEVICE_INFO));
        let status = if json.get("status").is_some() { &json["status"] } else { json.get("params").unwrap_or(&json) };
        let config = json.get("config").unwrap_or(&json);
        if let Ok(m) = DeviceMapping::new(info, config, status) {
            let _ = m.values(status);
            let _ = m.needs_rebuild(status);
            let _ = m.events(status);
            let keys: Vec<String> = m.descriptor().features.iter().map(|f| f.key.clone()).collect();
            for (i, key) in keys.iter().enumerate() {
                let value =
                    [Value::Bool(true), n(f64::NAN), n(-5.0), n(50.0), Value::from("stop"), Value::List(vec![])][i % 6]
                        .clone();
                let req = CommandRequest {
                    set: BTreeMap::from([(key.clone(), value)]),
                    transition: Some(f64::INFINITY),
                    refresh: Some(Refresh::All(true)),
                    toggle: vec![key.clone()],
                };
                let _ = m.command(&req);
                let _ = m.command(&CommandRequest {
                    refresh: Some(Refresh::Features(vec![key.clone()])),
                    ..Default::default()
                });
            }
        }
    }

    #[test]
    fn mutated_payloads_never_panic() {
        let examples = [
            DOC_DEVICE_INFO,
            DOC_SWITCH_STATUS,
            DOC_COVER_STATUS,
            DOC_LIGHT_STATUS,
            DOC_INPUT_STATUS,
            DOC_NOTIFY_STATUS,
            DOC_NOTIFY_FULL_STATUS_HT,
            DOC_NOTIFY_EVENT,
            DOC_RESPONSE,
            CAPTURE_ERROR,
            CAPTURE_PLUS_1PM,
            CAPTURE_PRO_3EM,
            CAPTURE_2PM_GEN3_STATUS,
            CAPTURE_MINI_GEN4_STATUS,
        ];
        let mut rng = XorShift(0x5eed_1e55_c0ff_ee11);
        // Byte mutations: flips, cuts, insertions of JSON punctuation.
        for round in 0..2000 {
            let mut bytes = examples[round % examples.len()].as_bytes().to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, b"{}[],:\"0-e.n"[rng.below(12)]),
                    _ => {
                        bytes.remove(at);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            exercise(&String::from_utf8_lossy(&bytes));
        }
        // Structural mutations: valid JSON with nodes replaced, removed or added.
        for round in 0..2000 {
            let mut json = parse(examples[round % examples.len()]);
            for _ in 0..=rng.below(3) {
                mutate(&mut rng, &mut json, 0);
            }
            exercise(&json.to_string());
        }
    }
}
