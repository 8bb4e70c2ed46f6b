//! `plugin.toml`: a plugin's package manifest, and its config schema.
//!
//! ```toml
//! id = "powerstrip"
//! name = "Virtual power strip"
//! version = "1.0.0"
//! protocol = 1
//! command = ["./powerstrip"]
//!
//! [config.load_watts]
//! type = "number"
//! default = 60
//! min = 0
//! ```
//!
//! Every error names the file and the key, and says what would be right.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::protocol::valid_adapter_id;

/// The manifest's file name in a plugin's directory.
pub const FILE: &str = "plugin.toml";

/// A plugin's manifest, checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The adapter id; every device id of the plugin starts with `<id>:`.
    pub id: String,
    /// The human name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
    /// The command to run: argv, in the plugin's directory.
    pub command: Vec<String>,
    /// One sentence about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The config schema: key to its rule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, ConfigKey>,
}

/// The type of a config key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// One of `values`.
    Enum,
}

/// The rule for one config key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    /// Its type.
    #[serde(rename = "type")]
    pub key_type: KeyType,
    /// What it is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its value when none is entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Whether a value must be entered (a key with a default never misses one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Smallest value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value (numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The allowed values (enum).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ManifestError {
    /// The file.
    pub file: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl Manifest {
    /// Reads and checks `<dir>/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(FILE);
        let file = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ManifestError { file: file.clone(), message: format!("cannot read it: {e}") })?;
        Manifest::parse(&text).map_err(|message| ManifestError { file, message })
    }

    /// Reads and checks a manifest's text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        if !valid_adapter_id(&self.id) {
            return Err(format!(
                "`id` {:?} is not an adapter id: use lowercase letters, digits and `_`, starting with a letter (for example `acme_plug`)",
                self.id
            ));
        }
        if self.name.trim().is_empty() {
            return Err("`name` is empty: give the plugin a human name".into());
        }
        if self.version.trim().is_empty() {
            return Err("`version` is empty: give the plugin's version (for example \"1.0.0\")".into());
        }
        if self.command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(
                "`command` is empty: give the program and its arguments, for example [\"python3\", \"plugin.py\"]"
                    .into(),
            );
        }
        for (key, rule) in &self.config {
            rule.check().map_err(|e| format!("[config.{key}]: {e}"))?;
        }
        Ok(())
    }

    /// The program and its arguments, resolved against the plugin's directory: a program with a
    /// `/` is relative to it, any other is looked up on `PATH` when the process starts.
    pub fn program(&self, dir: &Path) -> (PathBuf, Vec<String>) {
        let first = &self.command[0];
        let program = if first.contains('/') { dir.join(first) } else { PathBuf::from(first) };
        (program, self.command[1..].to_vec())
    }

    /// Checks a configuration against the schema and fills in the defaults. The error names
    /// every key that is wrong and says what it should be.
    pub fn validate_config(&self, config: &serde_json::Value) -> Result<serde_json::Value, String> {
        let empty = serde_json::Map::new();
        let given = match config {
            serde_json::Value::Object(o) => o,
            serde_json::Value::Null => &empty,
            other => return Err(format!("the configuration must be an object of keys, not {other}")),
        };
        let mut problems = Vec::new();
        let mut out = serde_json::Map::new();
        for key in given.keys().filter(|k| !self.config.contains_key(*k)) {
            let known: Vec<&str> = self.config.keys().map(String::as_str).collect();
            problems.push(format!(
                "`{key}` is not a setting of plugin `{}` (its settings: {})",
                self.id,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
        }
        for (key, rule) in &self.config {
            match given.get(key).filter(|v| !v.is_null()).or(rule.default.as_ref()) {
                Some(v) => match rule.accepts(v) {
                    Ok(v) => {
                        out.insert(key.clone(), v);
                    }
                    Err(e) => problems.push(format!("`{key}` {e}")),
                },
                None if rule.required => problems.push(format!("`{key}` is required ({})", rule.describe())),
                None => {}
            }
        }
        if problems.is_empty() { Ok(serde_json::Value::Object(out)) } else { Err(problems.join("; ")) }
    }
}

impl ConfigKey {
    fn check(&self) -> Result<(), String> {
        match self.key_type {
            KeyType::Enum if self.values.is_empty() => return Err("an enum needs `values`".into()),
            KeyType::Enum => {}
            _ if !self.values.is_empty() => return Err("`values` belongs only to `type = \"enum\"`".into()),
            _ => {}
        }
        if (self.min.is_some() || self.max.is_some()) && !matches!(self.key_type, KeyType::Number | KeyType::Integer) {
            return Err("`min` and `max` belong only to numbers".into());
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err(format!("`min` {min} is above `max` {max}"));
        }
        if let Some(d) = &self.default {
            self.accepts(d).map_err(|e| format!("the default {e}"))?;
        }
        Ok(())
    }

    /// What a value must be, for messages.
    pub fn describe(&self) -> String {
        let range = match (self.min, self.max) {
            (Some(a), Some(b)) => format!(" from {a} to {b}"),
            (Some(a), None) => format!(" of at least {a}"),
            (None, Some(b)) => format!(" of at most {b}"),
            (None, None) => String::new(),
        };
        match self.key_type {
            KeyType::String => "text".into(),
            KeyType::Number => format!("a number{range}"),
            KeyType::Integer => format!("a whole number{range}"),
            KeyType::Boolean => "true or false".into(),
            KeyType::Enum => format!("one of {}", self.values.join(", ")),
        }
    }

    /// The value if it fits the rule (integers given as `3.0` become `3`).
    pub fn accepts(&self, v: &serde_json::Value) -> Result<serde_json::Value, String> {
        let wrong = || format!("must be {}, not {v}", self.describe());
        match self.key_type {
            KeyType::String => v.is_string().then(|| v.clone()).ok_or_else(wrong),
            KeyType::Boolean => v.is_boolean().then(|| v.clone()).ok_or_else(wrong),
            KeyType::Enum => match v.as_str() {
                Some(s) if self.values.iter().any(|x| x == s) => Ok(v.clone()),
                _ => Err(wrong()),
            },
            KeyType::Number | KeyType::Integer => {
                let n = v.as_f64().filter(|n| n.is_finite()).ok_or_else(wrong)?;
                let integer = self.key_type == KeyType::Integer;
                if integer && n.fract() != 0.0 {
                    return Err(wrong());
                }
                if self.min.is_some_and(|m| n < m) || self.max.is_some_and(|m| n > m) {
                    return Err(wrong());
                }
                Ok(if integer { serde_json::json!(n as i64) } else { v.clone() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STRIP: &str = r#"
id = "powerstrip"
name = "Virtual power strip"
version = "1.0.0"
protocol = 1
command = ["./powerstrip", "--quiet"]

[config.load_watts]
type = "number"
default = 60
min = 0
max = 3000
[config.outlets]
type = "integer"
default = 2
min = 1
max = 8
[config.mode]
type = "enum"
values = ["eco", "full"]
[config.host]
type = "string"
required = true
"#;

    #[test]
    fn a_manifest_reads_and_resolves_its_command() {
        let m = Manifest::parse(STRIP).unwrap();
        assert_eq!(m.id, "powerstrip");
        let (program, args) = m.program(Path::new("/srv/plugins/powerstrip"));
        assert_eq!(program, Path::new("/srv/plugins/powerstrip/./powerstrip"));
        assert_eq!(args, ["--quiet"]);
        let py = Manifest { command: vec!["python3".into(), "w.py".into()], ..m };
        assert_eq!(py.program(Path::new("/x")).0, Path::new("python3"));
    }

    #[test]
    fn bad_manifests_say_what_is_wrong() {
        let err = |t: &str| Manifest::parse(t).unwrap_err();
        assert!(err(&STRIP.replace("\"powerstrip\"\nname", "\"Power Strip\"\nname")).contains("not an adapter id"));
        assert!(err(&STRIP.replace("[\"./powerstrip\", \"--quiet\"]", "[]")).contains("`command` is empty"));
        assert!(err(&STRIP.replace("protocol = 1", "protocol = 1\nfavourite = 3")).contains("favourite"));
        assert!(err(&STRIP.replace("default = 60", "default = \"lots\"")).contains("[config.load_watts]: the default"));
        assert!(err(&STRIP.replace("values = [\"eco\", \"full\"]", "")).contains("an enum needs `values`"));
        assert!(err("id = ").contains("line 1"), "{}", err("id = "));
    }

    #[test]
    fn configs_are_checked_and_defaults_filled_in() {
        let m = Manifest::parse(STRIP).unwrap();
        let ok = m.validate_config(&json!({"host": "10.0.0.2", "outlets": 4.0})).unwrap();
        assert_eq!(ok, json!({"host": "10.0.0.2", "outlets": 4, "load_watts": 60}));
        let e = m.validate_config(&json!({"outlets": 9, "mode": "turbo", "colour": "red"})).unwrap_err();
        assert!(e.contains("`colour` is not a setting of plugin `powerstrip`"), "{e}");
        assert!(e.contains("`outlets` must be a whole number from 1 to 8, not 9"), "{e}");
        assert!(e.contains("`mode` must be one of eco, full, not \"turbo\""), "{e}");
        assert!(e.contains("`host` is required (text)"), "{e}");
        assert!(m.validate_config(&json!([1])).is_err());
        assert!(m.validate_config(&json!({"host": "h", "outlets": 2.5})).is_err());
    }
}
