//! The messages of plugin protocol version 1, both ways, and how a line becomes one.
//!
//! Reading is in two steps, so that every refusal gets the right `error` code: the line must be
//! JSON, an object, with a string `type` the reader knows ([`parse_hub`], [`parse_plugin`]);
//! then the fields are read with serde, and a missing or malformed field is `bad_message`.
//! Unknown fields are ignored everywhere (PLUGINS.md §3), so the lenient [`CommandMessage`]
//! stands in for [`hearth_sdk::Command`], which refuses them.

use std::collections::BTreeMap;
use std::fmt;

use hearth_sdk::{
    ActionError, AdapterEvent, Command, CommandRequest, Context, Decision, DeviceId, Discovers, Refresh, Value,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The longest line either side writes or reads, not counting the `\n`.
pub const MAX_LINE: usize = 1 << 20;

/// The `error` codes of version 1. Receivers keep codes they do not know as they are.
pub mod codes {
    /// The line was longer than 1 MiB.
    pub const LINE_TOO_LONG: &str = "line_too_long";
    /// The line is not JSON (or not UTF-8, or has `NaN`).
    pub const NOT_JSON: &str = "not_json";
    /// The line is JSON, but not an object.
    pub const NOT_AN_OBJECT: &str = "not_an_object";
    /// The object has no string `type`.
    pub const NO_TYPE: &str = "no_type";
    /// The `type` is not one the receiver knows.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A required field is missing or has the wrong form.
    pub const BAD_MESSAGE: &str = "bad_message";
    /// The message is not allowed at this point.
    pub const OUT_OF_ORDER: &str = "out_of_order";
    /// The line went over the message rate.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// A device id is not the plugin's own.
    pub const FOREIGN_DEVICE: &str = "foreign_device";
    /// The device was not announced during this run, or the plugin has no such device.
    pub const UNKNOWN_DEVICE: &str = "unknown_device";
    /// All or part of the content was refused.
    pub const INVALID: &str = "invalid";
    /// An `action_result` nobody waits for.
    pub const UNKNOWN_ACTION: &str = "unknown_action";
}

/// Why a line could not be taken: the `error` code to answer with, and the words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// One of [`codes`].
    pub code: &'static str,
    /// What was wrong, naming the field.
    pub message: String,
    /// The message's `type`, when it could be read that far.
    pub refused_type: Option<String>,
}

impl ProtocolError {
    /// An error with this code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> ProtocolError {
        ProtocolError { code, message: message.into(), refused_type: None }
    }

    /// The `error` message answering line `line`.
    pub fn answer(&self, line: u64) -> ErrorMessage {
        ErrorMessage {
            code: self.code.to_owned(),
            message: self.message.clone(),
            line: Some(line),
            refused_type: self.refused_type.clone(),
        }
    }

    /// Whether the line could not be read at all (as opposed to read and refused).
    pub fn unreadable(&self) -> bool {
        [codes::LINE_TOO_LONG, codes::NOT_JSON, codes::NOT_AN_OBJECT, codes::NO_TYPE].contains(&self.code)
    }
}

/// An `error`, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// The code (see [`codes`]); unknown codes are kept as they are.
    pub code: String,
    /// What was wrong, in words.
    pub message: String,
    /// The number of the refused line on the sender's stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The `type` of the refused message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_type: Option<String>,
}

/// The hub's `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubHello {
    /// Every protocol version the hub speaks.
    pub protocol: Vec<u32>,
    /// The hub's version.
    pub hub: String,
    /// The device model's schema version.
    pub schema: u32,
    /// The plugin's configuration, validated against its schema, defaults filled in.
    pub config: serde_json::Value,
}

/// What a plugin says its secrets are, for people (the `SecretSpec` form without the check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretText {
    /// What a secret's name is.
    pub names: String,
    /// What its value is.
    pub values: String,
}

/// The plugin's `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginHello {
    /// The version the plugin chose.
    pub protocol: u32,
    /// The adapter id.
    pub id: String,
    /// The human name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// What it finds devices by.
    pub discovers: Discovers,
    /// The management actions it takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// The secrets it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretText>,
}

/// Whether `id` is a valid adapter id: lowercase ASCII letters, digits and `_`, starting with a
/// letter, at most 64 bytes.
pub fn valid_adapter_id(id: &str) -> bool {
    id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PluginHello {
    /// Checks what serde cannot: the id's form, and that the name and version are not empty.
    pub fn check(&self) -> Result<(), String> {
        if !valid_adapter_id(&self.id) {
            return Err(format!(
                "`id` {:?} is not an adapter id: lowercase letters, digits and `_`, starting with a letter",
                self.id
            ));
        }
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self.version.trim().is_empty() {
            return Err("`version` is empty".into());
        }
        if let Some(a) = self.actions.iter().find(|a| a.trim().is_empty()) {
            return Err(format!("`actions` holds an empty name ({a:?})"));
        }
        Ok(())
    }
}

/// The hub's `secrets`: the full current set, by name. Its `Debug` never shows a value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretsMessage {
    /// Name to value.
    pub secrets: BTreeMap<String, String>,
}

impl fmt::Debug for SecretsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsMessage").field("names", &self.secrets.keys().collect::<Vec<_>>()).finish()
    }
}

/// A `command` for one of the plugin's devices, read leniently (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// The device.
    pub device: DeviceId,
    /// Feature key to new value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// Seconds over which to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<f64>,
    /// Fresh values to ask the device for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    /// Why.
    pub context: Context,
}

impl From<Command> for CommandMessage {
    fn from(c: Command) -> CommandMessage {
        CommandMessage {
            device: c.device,
            set: c.request.set,
            transition: c.request.transition,
            refresh: c.request.refresh,
            context: c.context,
        }
    }
}

impl From<CommandMessage> for Command {
    fn from(c: CommandMessage) -> Command {
        Command {
            device: c.device,
            request: CommandRequest { set: c.set, transition: c.transition, refresh: c.refresh, toggle: Vec::new() },
            context: c.context,
        }
    }
}

/// An `action` for the plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionMessage {
    /// Opaque, unique within one run.
    pub id: String,
    /// The action's name.
    pub action: String,
    /// Its parameters (always an object).
    pub params: serde_json::Value,
    /// Who asked.
    pub context: Context,
}

/// What the hub writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HubMessage {
    /// The handshake's first line.
    Hello(HubHello),
    /// The secrets (full set).
    Secrets(SecretsMessage),
    /// The inbox decisions (full set).
    Inbox {
        /// Found key to decision.
        decisions: BTreeMap<String, Decision>,
    },
    /// The plugin may report.
    Ready,
    /// The `hello` was refused; the plugin should exit.
    Bye {
        /// Why, as a code.
        code: String,
        /// Why, in words.
        reason: String,
    },
    /// A new configuration.
    Config {
        /// The whole configuration.
        config: serde_json::Value,
    },
    /// A command for a device.
    Command(CommandMessage),
    /// Send the full picture again.
    Refresh,
    /// A management action.
    Action(ActionMessage),
    /// Liveness check.
    Ping {
        /// Counts up from 1.
        id: u64,
    },
    /// Stop within 5 seconds.
    Shutdown,
    /// A refusal of a plugin's line.
    Error(ErrorMessage),
}

const HUB_TYPES: &[&str] = &[
    "hello", "secrets", "inbox", "ready", "bye", "config", "command", "refresh", "action", "ping", "shutdown", "error",
];

/// The answer to an `action`: a result or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResultMessage {
    /// The `id` of the `action`.
    pub id: String,
    /// What the device or bridge said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionFailure>,
}

/// Why an action failed, in the protocol's form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionFailure {
    /// `bad_params`, `not_found`, `failed`, `timeout` or `unavailable`; others read as `failed`.
    pub code: String,
    /// In words.
    pub message: String,
}

impl From<&ActionError> for ActionFailure {
    fn from(e: &ActionError) -> ActionFailure {
        let code = match e {
            ActionError::BadParams(_) => "bad_params",
            ActionError::NotFound(_) => "not_found",
            ActionError::Failed(_) => "failed",
            ActionError::Timeout(_) => "timeout",
            ActionError::Unavailable(_) => "unavailable",
        };
        ActionFailure { code: code.to_owned(), message: e.to_string() }
    }
}

impl From<ActionFailure> for ActionError {
    fn from(f: ActionFailure) -> ActionError {
        match f.code.as_str() {
            "bad_params" => ActionError::BadParams(f.message),
            "not_found" => ActionError::NotFound(f.message),
            "timeout" => ActionError::Timeout(f.message),
            "unavailable" => ActionError::Unavailable(f.message),
            _ => ActionError::Failed(f.message),
        }
    }
}

/// A log line's level; an unknown one reads as `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but works.
    Warn,
    /// Detail for developers.
    Debug,
    /// Wire-level detail.
    Trace,
    /// What happened (and any level this reader does not know).
    #[serde(other)]
    Info,
}

/// A structured log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    /// The level.
    pub level: LogLevel,
    /// A sentence.
    pub message: String,
    /// Facts, each logged as a field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The plugin's messages that are not adapter events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginControl {
    /// The handshake's answer.
    Hello(PluginHello),
    /// A log line.
    Log(LogMessage),
    /// The answer to an action.
    ActionResult(ActionResultMessage),
    /// The answer to a ping.
    Pong {
        /// The ping's id.
        id: u64,
    },
    /// A refusal of a hub's line.
    Error(ErrorMessage),
}

/// What a plugin writes: an adapter event in its `hearth_sdk` JSON form, or a control message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PluginMessage {
    /// `device`, `device_removed`, `state`, `event`, `availability`, `input_rejected`, `status`,
    /// `found`.
    Adapter(AdapterEvent),
    /// `hello`, `log`, `action_result`, `pong`, `error`.
    Control(PluginControl),
}

const ADAPTER_TYPES: &[&str] =
    &["device", "device_removed", "state", "event", "availability", "input_rejected", "status", "found"];
const CONTROL_TYPES: &[&str] = &["hello", "log", "action_result", "pong", "error"];

impl PluginMessage {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginMessage::Adapter(e) => match e {
                AdapterEvent::Device { .. } => "device",
                AdapterEvent::DeviceRemoved { .. } => "device_removed",
                AdapterEvent::State { .. } => "state",
                AdapterEvent::Event { .. } => "event",
                AdapterEvent::Availability { .. } => "availability",
                AdapterEvent::InputRejected { .. } => "input_rejected",
                AdapterEvent::Status { .. } => "status",
                AdapterEvent::Found { .. } => "found",
            },
            PluginMessage::Control(c) => match c {
                PluginControl::Hello(_) => "hello",
                PluginControl::Log(_) => "log",
                PluginControl::ActionResult(_) => "action_result",
                PluginControl::Pong { .. } => "pong",
                PluginControl::Error(_) => "error",
            },
        }
    }
}

impl HubMessage {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            HubMessage::Hello(_) => "hello",
            HubMessage::Secrets(_) => "secrets",
            HubMessage::Inbox { .. } => "inbox",
            HubMessage::Ready => "ready",
            HubMessage::Bye { .. } => "bye",
            HubMessage::Config { .. } => "config",
            HubMessage::Command(_) => "command",
            HubMessage::Refresh => "refresh",
            HubMessage::Action(_) => "action",
            HubMessage::Ping { .. } => "ping",
            HubMessage::Shutdown => "shutdown",
            HubMessage::Error(_) => "error",
        }
    }
}

/// The object of a line and its `type`, or why the line is unreadable or of an unknown type.
fn object_of(line: &str, known: &[&str]) -> Result<(serde_json::Value, String), ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(line)
        .map_err(|e| ProtocolError::new(codes::NOT_JSON, format!("the line is not JSON: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(ProtocolError::new(
            codes::NOT_AN_OBJECT,
            format!("the line is JSON {}, not an object", kind(&value)),
        ));
    };
    let Some(t) = object.get("type").and_then(serde_json::Value::as_str) else {
        return Err(ProtocolError::new(codes::NO_TYPE, "the object has no string field `type`"));
    };
    let t = t.to_owned();
    if !known.contains(&t.as_str()) {
        let mut e = ProtocolError::new(codes::UNKNOWN_TYPE, format!("unknown message type `{}`", short(&t)));
        e.refused_type = Some(short(&t));
        return Err(e);
    }
    Ok((value, t))
}

fn fields<T: DeserializeOwned>(value: serde_json::Value, t: &str) -> Result<T, ProtocolError> {
    serde_json::from_value(value).map_err(|e| ProtocolError {
        code: codes::BAD_MESSAGE,
        message: format!("`{t}`: {e}"),
        refused_type: Some(t.to_owned()),
    })
}

/// Reads one line the hub wrote (as a plugin does).
pub fn parse_hub(line: &str) -> Result<HubMessage, ProtocolError> {
    let (value, t) = object_of(line, HUB_TYPES)?;
    fields(value, &t)
}

/// Reads one line a plugin wrote (as the hub does).
pub fn parse_plugin(line: &str) -> Result<PluginMessage, ProtocolError> {
    let all: Vec<&str> = ADAPTER_TYPES.iter().chain(CONTROL_TYPES).copied().collect();
    let (value, t) = object_of(line, &all)?;
    if ADAPTER_TYPES.contains(&t.as_str()) {
        fields(value, &t).map(PluginMessage::Adapter)
    } else {
        fields(value, &t).map(PluginMessage::Control)
    }
}

/// One message as a line: compact JSON and `\n`.
pub fn encode(message: &impl Serialize) -> String {
    let mut s = serde_json::to_string(message).unwrap_or_else(|e| {
        // Only a map with non-string keys fails, and no message has one; say so rather than panic.
        format!(r#"{{"type":"error","code":"bad_message","message":"cannot encode a message: {e}"}}"#)
    });
    s.push('\n');
    s
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// At most 64 characters of something a peer wrote, for messages and logs.
pub fn short(s: &str) -> String {
    if s.chars().count() <= 64 { s.to_owned() } else { format!("{}…", s.chars().take(64).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_code() {
        let code = |l: &str| parse_plugin(l).unwrap_err().code;
        assert_eq!(code("not json"), codes::NOT_JSON);
        assert_eq!(code(r#"{"type":"state","values":{"x":NaN}}"#), codes::NOT_JSON);
        assert_eq!(code("[1,2]"), codes::NOT_AN_OBJECT);
        assert_eq!(code(r#"{"kind":"state"}"#), codes::NO_TYPE);
        assert_eq!(code(r#"{"type":7}"#), codes::NO_TYPE);
        let e = parse_plugin(r#"{"type":"flush"}"#).unwrap_err();
        assert_eq!((e.code, e.refused_type.as_deref()), (codes::UNKNOWN_TYPE, Some("flush")));
        let e = parse_plugin(r#"{"type":"state","values":{}}"#).unwrap_err();
        assert_eq!((e.code, e.refused_type.as_deref()), (codes::BAD_MESSAGE, Some("state")));
        assert!(e.message.contains("device"), "{}", e.message);
        assert!(parse_plugin("{}").unwrap_err().unreadable());
        assert!(!e.unreadable());
    }

    #[test]
    fn plugin_messages_read_with_unknown_fields_ignored() {
        let m = parse_plugin(r#"{"type":"state","device":"ps:a","values":{"on":true},"extra":1}"#).unwrap();
        assert_eq!(m.kind(), "state");
        let m = parse_plugin(
            r#"{"type":"hello","protocol":1,"id":"powerstrip","name":"P","version":"1","discovers":{},"actions":["identify"],"new":true}"#,
        )
        .unwrap();
        let PluginMessage::Control(PluginControl::Hello(h)) = m else { panic!("{m:?}") };
        assert_eq!(h.actions, ["identify"]);
        assert!(h.check().is_ok());
        let bad = PluginHello { id: "Power-Strip".into(), ..h.clone() };
        assert!(bad.check().unwrap_err().contains("Power-Strip"));
        let m = parse_plugin(r#"{"type":"log","level":"notice","message":"hi"}"#).unwrap();
        let PluginMessage::Control(PluginControl::Log(l)) = m else { panic!() };
        assert_eq!(l.level, LogLevel::Info);
        // A null list is refused (PLUGINS.md §3).
        let e = parse_plugin(
            r#"{"type":"hello","protocol":1,"id":"a","name":"A","version":"1","discovers":{"mdns":null}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, codes::BAD_MESSAGE);
    }

    #[test]
    fn hub_messages_round_trip_and_commands_are_lenient() {
        let line = r#"{"type":"command","device":"powerstrip:vps-0001","set":{"state_l2":true},"context":{"id":"19ac4b2e1f3-2a","origin":{"kind":"user","name":"alice"}},"future":1}"#;
        let HubMessage::Command(c) = parse_hub(line).unwrap() else { panic!() };
        let command: Command = c.clone().into();
        assert_eq!(command.request.set.get("state_l2"), Some(&Value::Bool(true)));
        let again = encode(&HubMessage::Command(c));
        assert!(again.starts_with(r#"{"type":"command","device":"powerstrip:vps-0001""#), "{again}");
        assert!(again.ends_with("}\n") && !again.contains("future"));
        for m in [
            HubMessage::Ready,
            HubMessage::Ping { id: 3 },
            HubMessage::Shutdown,
            HubMessage::Refresh,
            HubMessage::Bye { code: "id_mismatch".into(), reason: "x".into() },
            HubMessage::Hello(HubHello {
                protocol: vec![1],
                hub: "0.1.0".into(),
                schema: 1,
                config: serde_json::json!({"a": 1}),
            }),
        ] {
            let line = encode(&m);
            assert_eq!(parse_hub(line.trim_end()).unwrap(), m, "{line}");
        }
        assert_eq!(encode(&HubMessage::Ready), "{\"type\":\"ready\"}\n");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let m = HubMessage::Secrets(SecretsMessage { secrets: [("k".to_owned(), "hunter2".to_owned())].into() });
        assert!(!format!("{m:?}").contains("hunter2"));
        assert!(encode(&m).contains("hunter2"));
    }

    #[test]
    fn action_errors_map_both_ways() {
        for e in
            [ActionError::BadParams("p".into()), ActionError::Timeout("t".into()), ActionError::Unavailable("u".into())]
        {
            assert_eq!(ActionError::from(ActionFailure::from(&e)), e);
        }
        let odd = ActionFailure { code: "melted".into(), message: "m".into() };
        assert_eq!(ActionError::from(odd), ActionError::Failed("m".into()));
    }
}
