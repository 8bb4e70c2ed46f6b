//! Commands: what the UI, the API, automations and the cloud ask of a device, and their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Context;
use crate::model::{DeviceId, Feature, ValueType};
use crate::value::Value;

/// The longest transition a command may ask for, in seconds.
pub const MAX_TRANSITION_SECS: f64 = 3600.0;

/// Which features a refresh asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Refresh {
    /// `true`: every feature the device can be asked for.
    All(bool),
    /// These features.
    Features(Vec<String>),
}

/// What a command asks: set features (with an optional transition), or refresh them.
///
/// JSON form, as `POST /api/v1/devices/{id}/commands` takes it:
/// `{"set": {"state": true, "brightness": 40}, "transition": 2}` or `{"refresh": ["temperature"]}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Feature key to new value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, Value>,
    /// Seconds over which to change (lights, covers), when the device supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<f64>,
    /// Ask the device for fresh values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    /// Bool features to flip (`["state"]`). The hub turns each into a `set` of the opposite of
    /// the current value before the command reaches the adapter, so adapters never see it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub toggle: Vec<String>,
}

/// A validated command on its way to the adapter that owns the device.
///
/// JSON form (as plugins receive it): the request's fields plus `device` and `context`:
/// `{"device": "demo:living_lamp", "set": {"brightness": 40}, "transition": 2, "context": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "CommandJson")]
pub struct Command {
    /// The device.
    pub device: DeviceId,
    /// What to do.
    #[serde(flatten)]
    pub request: CommandRequest,
    /// Why.
    pub context: Context,
}

/// The JSON form of a [`Command`], read with every field explicit so that unknown fields are
/// refused (`flatten` would silently accept them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandJson {
    device: DeviceId,
    #[serde(default)]
    set: BTreeMap<String, Value>,
    #[serde(default)]
    transition: Option<f64>,
    #[serde(default)]
    refresh: Option<Refresh>,
    #[serde(default)]
    toggle: Vec<String>,
    context: Context,
}

impl From<CommandJson> for Command {
    fn from(c: CommandJson) -> Command {
        Command {
            device: c.device,
            request: CommandRequest { set: c.set, transition: c.transition, refresh: c.refresh, toggle: c.toggle },
            context: c.context,
        }
    }
}

/// Why a command was refused. Each message names the feature and what it allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// Nothing to do.
    #[error(
        "the command sets nothing and asks for no refresh: give `set` (e.g. {{\"set\": {{\"state\": true}}}}) or `refresh`"
    )]
    Empty,
    /// No such feature on the device.
    #[error("the device has no feature `{feature}`; its features are: {}", list(available))]
    UnknownFeature {
        /// The key asked for.
        feature: String,
        /// The device's feature keys.
        available: Vec<String>,
    },
    /// The feature cannot be set.
    #[error("feature `{feature}` is read-only; settable features are: {}", list(settable))]
    ReadOnly {
        /// The key asked for.
        feature: String,
        /// The device's settable feature keys.
        settable: Vec<String>,
    },
    /// The feature cannot be asked for.
    #[error("feature `{feature}` cannot be refreshed; refreshable features are: {}", list(readable))]
    NotReadable {
        /// The key asked for.
        feature: String,
        /// The device's readable feature keys.
        readable: Vec<String>,
    },
    /// The value has the wrong type.
    #[error("feature `{feature}` takes {expected}, not {got} {value}")]
    WrongType {
        /// The key.
        feature: String,
        /// What it takes (`a number`, `true or false` ...).
        expected: String,
        /// The kind of value given.
        got: &'static str,
        /// The value given.
        value: Value,
    },
    /// The number is outside the feature's range.
    #[error("feature `{feature}` takes {} to {}, not {value}", num(*min), num(*max))]
    OutOfRange {
        /// The key.
        feature: String,
        /// The value given.
        value: f64,
        /// Lowest allowed (or -inf).
        min: f64,
        /// Highest allowed (or +inf).
        max: f64,
    },
    /// The text is not one of the enum's values.
    #[error("feature `{feature}` takes one of {}, not `{value}`", list(allowed))]
    UnknownEnumValue {
        /// The key.
        feature: String,
        /// The value given.
        value: String,
        /// The allowed values.
        allowed: Vec<String>,
    },
    /// The text is too long.
    #[error("feature `{feature}` takes at most {max_length} characters, not {length}")]
    TooLong {
        /// The key.
        feature: String,
        /// Characters given.
        length: usize,
        /// Characters allowed.
        max_length: usize,
    },
    /// The feature cannot be toggled (not a settable bool).
    #[error("feature `{feature}` cannot be toggled; toggleable features are: {}", list(toggleable))]
    NotToggleable {
        /// The key asked for.
        feature: String,
        /// The device's settable bool features.
        toggleable: Vec<String>,
    },
    /// The transition is negative, not finite or too long.
    #[error("transition must be from 0 to {MAX_TRANSITION_SECS} seconds, not {0}")]
    BadTransition(f64),
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "(none)".to_owned() } else { items.join(", ") }
}

fn num(v: f64) -> String {
    if v.is_infinite() { if v > 0.0 { "∞".into() } else { "-∞".into() } } else { format!("{v}") }
}

impl CommandError {
    /// A short machine-readable code (`unknown_feature`, `read_only` ...).
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Empty => "empty_command",
            CommandError::UnknownFeature { .. } => "unknown_feature",
            CommandError::ReadOnly { .. } => "read_only",
            CommandError::NotReadable { .. } => "not_readable",
            CommandError::WrongType { .. } => "wrong_type",
            CommandError::OutOfRange { .. } => "out_of_range",
            CommandError::UnknownEnumValue { .. } => "unknown_enum_value",
            CommandError::TooLong { .. } => "too_long",
            CommandError::NotToggleable { .. } => "not_toggleable",
            CommandError::BadTransition(_) => "bad_transition",
        }
    }

    /// The facts behind the message, as JSON (the feature, what is allowed).
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            CommandError::Empty => json!({}),
            CommandError::UnknownFeature { feature, available } => {
                json!({"feature": feature, "available": available})
            }
            CommandError::ReadOnly { feature, settable } => json!({"feature": feature, "settable": settable}),
            CommandError::NotReadable { feature, readable } => json!({"feature": feature, "readable": readable}),
            CommandError::WrongType { feature, expected, got, .. } => {
                json!({"feature": feature, "expected": expected, "got": got})
            }
            CommandError::OutOfRange { feature, value, min, max } => json!({
                "feature": feature, "value": value,
                "min": if min.is_finite() { json!(min) } else { json!(null) },
                "max": if max.is_finite() { json!(max) } else { json!(null) },
            }),
            CommandError::UnknownEnumValue { feature, value, allowed } => {
                json!({"feature": feature, "value": value, "allowed": allowed})
            }
            CommandError::TooLong { feature, length, max_length } => {
                json!({"feature": feature, "length": length, "max_length": max_length})
            }
            CommandError::NotToggleable { feature, toggleable } => {
                json!({"feature": feature, "toggleable": toggleable})
            }
            CommandError::BadTransition(t) => json!({"transition": t, "max": MAX_TRANSITION_SECS}),
        }
    }
}

impl CommandRequest {
    /// Checks the request against a device's features: every key exists and is settable (or
    /// readable, for a refresh), every value has the feature's type and lies in its range.
    ///
    /// ```
    /// use hearth_sdk::{Access, Capability, CommandRequest, Feature, ValueType};
    /// let features = [Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE)];
    /// let ok: CommandRequest = serde_json::from_str(r#"{"set": {"brightness": 40}}"#).unwrap();
    /// assert!(ok.validate(&features).is_ok());
    /// let bad: CommandRequest = serde_json::from_str(r#"{"set": {"brightness": 140}}"#).unwrap();
    /// assert_eq!(bad.validate(&features).unwrap_err().to_string(), "feature `brightness` takes 0 to 100, not 140");
    /// ```
    pub fn validate(&self, features: &[Feature]) -> Result<(), CommandError> {
        let refresh_nothing = match &self.refresh {
            None | Some(Refresh::All(false)) => true,
            Some(Refresh::Features(keys)) => keys.is_empty(),
            Some(Refresh::All(true)) => false,
        };
        if self.set.is_empty() && self.toggle.is_empty() && refresh_nothing {
            return Err(CommandError::Empty);
        }
        if let Some(t) = self.transition
            && (!t.is_finite() || !(0.0..=MAX_TRANSITION_SECS).contains(&t))
        {
            return Err(CommandError::BadTransition(t));
        }
        let find = |key: &str| {
            features.iter().find(|f| f.key == key).ok_or_else(|| CommandError::UnknownFeature {
                feature: key.to_owned(),
                available: features.iter().map(|f| f.key.clone()).collect(),
            })
        };
        for (key, value) in &self.set {
            let feature = find(key)?;
            if !feature.access.set {
                return Err(CommandError::ReadOnly {
                    feature: key.clone(),
                    settable: features.iter().filter(|f| f.access.set).map(|f| f.key.clone()).collect(),
                });
            }
            check_value(feature, value)?;
        }
        for key in &self.toggle {
            let feature = find(key)?;
            if !(feature.access.set && feature.value_type == ValueType::Bool) || self.set.contains_key(key) {
                return Err(CommandError::NotToggleable {
                    feature: key.clone(),
                    toggleable: features
                        .iter()
                        .filter(|f| f.access.set && f.value_type == ValueType::Bool)
                        .map(|f| f.key.clone())
                        .collect(),
                });
            }
        }
        if let Some(Refresh::Features(keys)) = &self.refresh {
            for key in keys {
                let feature = find(key)?;
                if !feature.access.get {
                    return Err(CommandError::NotReadable {
                        feature: key.clone(),
                        readable: features.iter().filter(|f| f.access.get).map(|f| f.key.clone()).collect(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Checks one value against a feature's value type.
pub fn check_value(feature: &Feature, value: &Value) -> Result<(), CommandError> {
    let wrong = |expected: &str| CommandError::WrongType {
        feature: feature.key.clone(),
        expected: expected.to_owned(),
        got: value.kind(),
        value: value.clone(),
    };
    match (&feature.value_type, value) {
        (ValueType::Bool, Value::Bool(_)) => Ok(()),
        (ValueType::Bool, _) => Err(wrong("true or false")),
        (ValueType::Number { min, max, .. }, Value::Number(n)) => {
            let lo = min.unwrap_or(f64::NEG_INFINITY);
            let hi = max.unwrap_or(f64::INFINITY);
            if *n < lo || *n > hi {
                Err(CommandError::OutOfRange { feature: feature.key.clone(), value: *n, min: lo, max: hi })
            } else {
                Ok(())
            }
        }
        (ValueType::Number { .. }, Value::Text(name)) if feature.presets.iter().any(|p| &p.name == name) => Ok(()),
        (ValueType::Number { .. }, Value::Text(name)) if !feature.presets.is_empty() => {
            Err(CommandError::UnknownEnumValue {
                feature: feature.key.clone(),
                value: name.clone(),
                allowed: feature.presets.iter().map(|p| p.name.clone()).collect(),
            })
        }
        (ValueType::Number { .. }, _) if !feature.presets.is_empty() => {
            let names: Vec<String> = feature.presets.iter().map(|p| p.name.clone()).collect();
            Err(wrong(&format!("a number or one of {}", list(&names))))
        }
        (ValueType::Number { .. }, _) => Err(wrong("a number")),
        (ValueType::Enum { values }, Value::Text(s)) => {
            if values.iter().any(|v| v == s) {
                Ok(())
            } else {
                Err(CommandError::UnknownEnumValue {
                    feature: feature.key.clone(),
                    value: s.clone(),
                    allowed: values.clone(),
                })
            }
        }
        (ValueType::Enum { values }, _) => Err(wrong(&format!("one of {}", list(values)))),
        (ValueType::Text { max_length }, Value::Text(s)) => match max_length {
            Some(max) if s.chars().count() > *max => {
                Err(CommandError::TooLong { feature: feature.key.clone(), length: s.chars().count(), max_length: *max })
            }
            _ => Ok(()),
        },
        (ValueType::Text { .. }, _) => Err(wrong("text")),
        (ValueType::Color, Value::Color(c)) => {
            if !(0.0..=360.0).contains(&c.hue) {
                Err(CommandError::OutOfRange {
                    feature: format!("{}.hue", feature.key),
                    value: c.hue,
                    min: 0.0,
                    max: 360.0,
                })
            } else if !(0.0..=100.0).contains(&c.saturation) {
                Err(CommandError::OutOfRange {
                    feature: format!("{}.saturation", feature.key),
                    value: c.saturation,
                    min: 0.0,
                    max: 100.0,
                })
            } else {
                Ok(())
            }
        }
        (ValueType::Color, _) => Err(wrong("a color {\"hue\": 0-360, \"saturation\": 0-100}")),
        (ValueType::List, Value::List(_)) => Ok(()),
        (ValueType::List, _) => Err(wrong("a list")),
        (ValueType::Object, Value::Object(_)) => Ok(()),
        (ValueType::Object, _) => Err(wrong("an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Access, Capability};

    fn features() -> Vec<Feature> {
        vec![
            Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
            Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
            Feature::new("mode", Capability::HvacMode, ValueType::enumeration(["off", "heat"]), Access::ALL),
            Feature::new("color", Capability::Color, ValueType::Color, Access::READ_WRITE),
            Feature::new("temperature", Capability::Temperature, ValueType::number(), Access::READ_ONLY),
            Feature::new("label", Capability::Other, ValueType::Text { max_length: Some(4) }, Access::READ_WRITE),
            Feature {
                presets: vec![crate::model::Preset { name: "previous".into(), value: None, description: None }],
                ..Feature::new(
                    "startup",
                    Capability::ColorTemperature,
                    ValueType::range(2000.0, 6500.0, 1.0),
                    Access::READ_WRITE,
                )
            },
        ]
    }

    fn check(json: &str) -> Result<(), String> {
        let req: CommandRequest = serde_json::from_str(json).map_err(|e| format!("parse: {e}"))?;
        req.validate(&features()).map_err(|e| format!("{}: {e}", e.code()))
    }

    #[test]
    fn valid_commands_pass() {
        for ok in [
            r#"{"set": {"state": true}}"#,
            r#"{"set": {"state": false, "brightness": 40}, "transition": 2}"#,
            r#"{"set": {"mode": "heat"}}"#,
            r#"{"set": {"color": {"hue": 120, "saturation": 50}}}"#,
            r#"{"refresh": true}"#,
            r#"{"refresh": ["mode"]}"#,
            r#"{"set": {"label": "abcd"}}"#,
            r#"{"set": {"startup": "previous"}}"#,
            r#"{"set": {"startup": 2700}}"#,
            r#"{"toggle": ["state"]}"#,
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn each_refusal_names_the_feature_and_what_it_allows() {
        let cases = [
            (
                r#"{}"#,
                "empty_command: the command sets nothing and asks for no refresh: give `set` (e.g. {\"set\": {\"state\": true}}) or `refresh`",
            ),
            (
                r#"{"set": {"brightnes": 4}}"#,
                "unknown_feature: the device has no feature `brightnes`; its features are: state, brightness, mode, color, temperature, label, startup",
            ),
            (
                r#"{"set": {"temperature": 20}}"#,
                "read_only: feature `temperature` is read-only; settable features are: state, brightness, mode, color, label, startup",
            ),
            (r#"{"set": {"state": "on"}}"#, "wrong_type: feature `state` takes true or false, not text \"on\""),
            (r#"{"set": {"brightness": true}}"#, "wrong_type: feature `brightness` takes a number, not bool true"),
            (r#"{"set": {"brightness": 101}}"#, "out_of_range: feature `brightness` takes 0 to 100, not 101"),
            (r#"{"set": {"brightness": -1}}"#, "out_of_range: feature `brightness` takes 0 to 100, not -1"),
            (r#"{"set": {"mode": "cool"}}"#, "unknown_enum_value: feature `mode` takes one of off, heat, not `cool`"),
            (r#"{"set": {"mode": 1}}"#, "wrong_type: feature `mode` takes one of off, heat, not number 1.0"),
            (
                r#"{"set": {"color": {"hue": 400, "saturation": 50}}}"#,
                "out_of_range: feature `color.hue` takes 0 to 360, not 400",
            ),
            (r#"{"set": {"label": "abcde"}}"#, "too_long: feature `label` takes at most 4 characters, not 5"),
            (
                r#"{"set": {"state": true}, "transition": -1}"#,
                "bad_transition: transition must be from 0 to 3600 seconds, not -1",
            ),
            (
                r#"{"refresh": ["brightness"]}"#,
                "not_readable: feature `brightness` cannot be refreshed; refreshable features are: mode",
            ),
            (
                r#"{"refresh": false}"#,
                "empty_command: the command sets nothing and asks for no refresh: give `set` (e.g. {\"set\": {\"state\": true}}) or `refresh`",
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(check(json), Err(expected.to_owned()), "{json}");
        }
    }

    #[test]
    fn unknown_fields_in_a_request_are_rejected() {
        let err = serde_json::from_str::<CommandRequest>(r#"{"sett": {}}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `sett`"), "{err}");
    }

    #[test]
    fn command_json_flattens_the_request() {
        let cmd = Command {
            device: DeviceId::new("demo", "lamp"),
            request: CommandRequest {
                set: BTreeMap::from([("state".into(), Value::Bool(true))]),
                ..Default::default()
            },
            context: Context::new("c1", crate::event::Origin::User { name: "alice".into() }),
        };
        let json = serde_json::to_value(&cmd).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"device": "demo:lamp", "set": {"state": true},
                               "context": {"id": "c1", "origin": {"kind": "user", "name": "alice"}}})
        );
    }
}
