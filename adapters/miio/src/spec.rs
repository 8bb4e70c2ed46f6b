//! MIoT-Spec descriptions of device models, kept as data: the ones shipped in
//! `adapters/miio/specs/<model>.json`, and those a user drops in the configured `specs_dir`.
//! Pure parsing; reading a directory is [`Catalogue::with_dir`].
//!
//! # The file format
//!
//! One file per model, named after it (`zhimi.airpurifier.mb3.json`). It is the MIoT-Spec
//! instance Xiaomi publishes (`miot-spec.org/miot-spec-v2/instance?type=...`), kept to what a
//! hub uses; a file saved whole from the spec server is read as well (`iid` is taken for
//! `siid`/`piid`/`aiid`, and keys this format does not use, such as `events`, are ignored):
//!
//! ```json
//! {
//!   "model": "zhimi.airpurifier.mb3",
//!   "type": "urn:miot-spec-v2:device:air-purifier:0000A007:zhimi-mb3:2",
//!   "description": "Mi Air Purifier 3H",
//!   "services": [
//!     {"siid": 2, "type": "urn:miot-spec-v2:service:air-purifier:00007811:zhimi-mb3:1",
//!      "description": "Air Purifier",
//!      "properties": [
//!        {"piid": 2, "type": "urn:miot-spec-v2:property:on:00000006:zhimi-mb3:1",
//!         "description": "Switch Status", "format": "bool", "access": ["read", "write", "notify"]},
//!        {"piid": 5, "type": "urn:miot-spec-v2:property:mode:00000008:zhimi-mb3:1",
//!         "format": "uint8", "access": ["read", "write", "notify"],
//!         "value-list": [{"value": 0, "description": "Auto"}, {"value": 1, "description": "Sleep"}]}
//!      ],
//!      "actions": [{"aiid": 1, "type": "urn:miot-spec-v2:action:toggle:00002811:zhimi-mb3:1", "in": []}]}
//!   ]
//! }
//! ```
//!
//! - `model` (optional) must be the file's name without `.json`; `type` and `description` are
//!   optional.
//! - `services` (required, not empty): `siid` (1 and up, unique), `type` (a `urn:...:service:<name>:...`),
//!   `description`, `properties`, `actions`.
//! - a property: `piid` (1 and up, unique in its service), `type` (`urn:...:property:<name>:...`),
//!   `format` (`bool`, `uint8`, `uint16`, `uint32`, `uint64`, `int8`, `int16`, `int32`,
//!   `int64`, `float`, `string`, `hex`, `tlv8`), `access` (of `read`, `write`, `notify`), `unit`
//!   (MIoT's: `percentage`, `celsius`, `kelvin`, `rgb`, `seconds`, `hours`, `μg/m3` ...),
//!   `value-range` (`[min, max, step]`, numbers only), `value-list` (`[{"value": 0,
//!   "description": "Auto"}]`).
//! - an action: `aiid` (1 and up, unique in its service), `type` (`urn:...:action:<name>:...`),
//!   `in` and `out` (lists of piids).
//!
//! A file that breaks a rule is refused whole, with its name, where in it, and what is wrong:
//! `zz.json: services[0] (siid 2): properties[1] (piid 5): format: "int128" is not a MIoT format; it is one of bool, uint8, ...`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// The longest spec file read.
pub const MAX_SPEC_FILE: u64 = 1 << 20;

/// The specs shipped with Hearth: (model, file contents).
pub const BUILTIN: &[(&str, &str)] = &[
    ("cuco.plug.cp1", include_str!("../specs/cuco.plug.cp1.json")),
    ("yeelink.light.colorc", include_str!("../specs/yeelink.light.colorc.json")),
    ("zhimi.airpurifier.mb3", include_str!("../specs/zhimi.airpurifier.mb3.json")),
    ("zhimi.humidifier.ca4", include_str!("../specs/zhimi.humidifier.ca4.json")),
];

/// A spec file that cannot be used: which file, where in it, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file (its path, or `<builtin>/<model>.json`).
    pub file: String,
    /// Where in it (`services[0] (siid 2): properties[1] (piid 5): format`), empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

/// The format of a property's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `bool`.
    Bool,
    /// `uint8` .. `uint64`, `int8` .. `int64`.
    Integer {
        /// Whether negative values exist.
        signed: bool,
        /// The width in bits.
        bits: u8,
    },
    /// `float`.
    Float,
    /// `string`.
    String,
    /// `hex`.
    Hex,
    /// `tlv8`.
    Tlv8,
}

const FORMATS: &[(&str, Format)] = &[
    ("bool", Format::Bool),
    ("uint8", Format::Integer { signed: false, bits: 8 }),
    ("uint16", Format::Integer { signed: false, bits: 16 }),
    ("uint32", Format::Integer { signed: false, bits: 32 }),
    ("uint64", Format::Integer { signed: false, bits: 64 }),
    ("int8", Format::Integer { signed: true, bits: 8 }),
    ("int16", Format::Integer { signed: true, bits: 16 }),
    ("int32", Format::Integer { signed: true, bits: 32 }),
    ("int64", Format::Integer { signed: true, bits: 64 }),
    ("float", Format::Float),
    ("string", Format::String),
    ("hex", Format::Hex),
    ("tlv8", Format::Tlv8),
];

impl Format {
    /// Whether values are numbers.
    pub fn is_number(self) -> bool {
        matches!(self, Format::Integer { .. } | Format::Float)
    }

    /// The format's name in a spec.
    pub fn name(self) -> &'static str {
        FORMATS.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }
}

/// A MIoT type, `urn:<namespace>:<kind>:<name>:<id>:<model>:<version>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urn {
    /// The whole urn.
    pub raw: String,
    /// `miot-spec-v2` for Xiaomi's standard types, the vendor's (`zhimi-spec`) otherwise.
    pub namespace: String,
    /// `device`, `service`, `property`, `action`, `event`.
    pub kind: String,
    /// The type's name (`air-purifier`, `on`, `pm2.5-density`).
    pub name: String,
}

impl Urn {
    /// Reads a urn of `kind`.
    pub fn parse(raw: &str, kind: &str) -> Result<Urn, String> {
        let parts: Vec<&str> = raw.split(':').collect();
        match parts.as_slice() {
            ["urn", namespace, k, name, ..] if !namespace.is_empty() && !name.is_empty() => {
                if *k != kind {
                    return Err(format!("`{raw}` is a {k} type, not a {kind} type"));
                }
                Ok(Urn {
                    raw: raw.to_owned(),
                    namespace: (*namespace).to_owned(),
                    kind: kind.to_owned(),
                    name: (*name).to_owned(),
                })
            }
            _ => Err(format!("`{raw}` is not a MIoT type (urn:<namespace>:{kind}:<name>:<id>:...)")),
        }
    }

    /// Whether it is one of Xiaomi's standard types (namespace `miot-spec-v2`).
    pub fn is_standard(&self) -> bool {
        self.namespace == "miot-spec-v2"
    }
}

/// `read`, `write`, `notify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PropAccess {
    /// `get_properties` answers it.
    pub read: bool,
    /// `set_properties` takes it.
    pub write: bool,
    /// The device reports changes (to the cloud; not over the LAN).
    pub notify: bool,
}

/// `value-range`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// The lowest value.
    pub min: f64,
    /// The highest value.
    pub max: f64,
    /// The resolution.
    pub step: f64,
}

/// One entry of a `value-list`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumValue {
    /// The number on the wire.
    pub value: f64,
    /// What it means.
    pub description: String,
}

/// A property of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Its id in the service.
    pub piid: u32,
    /// Its type.
    pub urn: Urn,
    /// Its description.
    pub description: String,
    /// The format of its values.
    pub format: Format,
    /// How it can be used.
    pub access: PropAccess,
    /// Its MIoT unit (`percentage`, `celsius`), when it has one (`none` is none).
    pub unit: Option<String>,
    /// Its range.
    pub range: Option<Range>,
    /// Its values, when they are a list.
    pub list: Vec<EnumValue>,
}

/// An action of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its id in the service.
    pub aiid: u32,
    /// Its type.
    pub urn: Urn,
    /// Its description.
    pub description: String,
    /// The piids it takes as inputs.
    pub inputs: Vec<u32>,
    /// The piids it answers with.
    pub outputs: Vec<u32>,
}

/// A service of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its id.
    pub siid: u32,
    /// Its type.
    pub urn: Urn,
    /// Its description.
    pub description: String,
    /// Its properties, in the file's order.
    pub properties: Vec<Property>,
    /// Its actions, in the file's order.
    pub actions: Vec<Action>,
}

/// A model's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The model (`zhimi.airpurifier.mb3`).
    pub model: String,
    /// The device type, when the file gives it.
    pub urn: Option<Urn>,
    /// A name for the model (`Mi Air Purifier 3H`), when the file gives one.
    pub description: Option<String>,
    /// Its services, by siid.
    pub services: Vec<Service>,
}

impl Spec {
    /// The service `siid`.
    pub fn service(&self, siid: u32) -> Option<&Service> {
        self.services.iter().find(|s| s.siid == siid)
    }

    /// The property `piid` of service `siid`.
    pub fn property(&self, siid: u32, piid: u32) -> Option<&Property> {
        self.service(siid)?.properties.iter().find(|p| p.piid == piid)
    }
}

/// Reads the spec of `model` from `text`; `file` names it in errors.
pub fn parse(file: &str, model: &str, text: &str) -> Result<Spec, SpecError> {
    let err = |path: &str, message: String| SpecError { file: file.to_owned(), path: path.to_owned(), message };
    let json: Json = serde_json::from_str(text).map_err(|e| err("", format!("not JSON ({e})")))?;
    let Json::Object(top) = &json else {
        return Err(err("", "the file must hold one JSON object, with `services`".into()));
    };
    if let Some(m) = top.get("model") {
        let m = m.as_str().ok_or_else(|| err("model", "must be text".into()))?;
        if m != model {
            return Err(err(
                "model",
                format!("`{m}` does not match the file's name: name the file {m}.json, or the model {model}"),
            ));
        }
    }
    let urn = match top.get("type") {
        None => None,
        Some(t) => {
            let t = t.as_str().ok_or_else(|| err("type", "must be text".into()))?;
            Some(Urn::parse(t, "device").map_err(|m| err("type", m))?)
        }
    };
    let description = opt_text(top.get("description")).map_err(|m| err("description", m))?;
    let services = top
        .get("services")
        .ok_or_else(|| err("services", "missing: a spec lists the device's services".into()))?
        .as_array()
        .ok_or_else(|| err("services", "must be a list of services".into()))?;
    if services.is_empty() {
        return Err(err("services", "is empty: a spec lists the device's services".into()));
    }
    let mut out = Vec::new();
    let mut siids = BTreeSet::new();
    for (i, s) in services.iter().enumerate() {
        let service = parse_service(s, i).map_err(|(path, message)| err(&path, message))?;
        if !siids.insert(service.siid) {
            return Err(err(&format!("services[{i}]"), format!("siid {} appears twice", service.siid)));
        }
        out.push(service);
    }
    out.sort_by_key(|s| s.siid);
    Ok(Spec { model: model.to_owned(), urn, description, services: out })
}

type Failure = (String, String);

fn opt_text(v: Option<&Json>) -> Result<Option<String>, String> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err("must be text".into()),
    }
}

/// Reads `siid`/`piid`/`aiid` (or `iid`).
fn iid(o: &serde_json::Map<String, Json>, name: &str, at: &str) -> Result<u32, Failure> {
    let v = o.get(name).or_else(|| o.get("iid")).ok_or_else(|| (at.to_owned(), format!("missing `{name}`")))?;
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n >= 1 => Ok(n),
        _ => Err((format!("{at}: {name}"), format!("must be a whole number from 1, not {v}"))),
    }
}

fn urn_of(o: &serde_json::Map<String, Json>, kind: &str, at: &str) -> Result<Urn, Failure> {
    let t = o.get("type").ok_or_else(|| (at.to_owned(), "missing `type`".to_owned()))?;
    let t = t.as_str().ok_or_else(|| (format!("{at}: type"), "must be text".to_owned()))?;
    Urn::parse(t, kind).map_err(|m| (format!("{at}: type"), m))
}

fn parse_service(v: &Json, i: usize) -> Result<Service, Failure> {
    let at = format!("services[{i}]");
    let o = v.as_object().ok_or_else(|| (at.clone(), "must be an object".to_owned()))?;
    let siid = iid(o, "siid", &at)?;
    let at = format!("services[{i}] (siid {siid})");
    let urn = urn_of(o, "service", &at)?;
    let description =
        opt_text(o.get("description")).map_err(|m| (format!("{at}: description"), m))?.unwrap_or_default();
    let mut properties = Vec::new();
    let mut piids = BTreeSet::new();
    for (j, p) in list(o, "properties", &at)?.iter().enumerate() {
        let p = parse_property(p, &format!("{at}: properties[{j}]"))?;
        if !piids.insert(p.piid) {
            return Err((format!("{at}: properties[{j}]"), format!("piid {} appears twice", p.piid)));
        }
        properties.push(p);
    }
    let mut actions = Vec::new();
    let mut aiids = BTreeSet::new();
    for (j, a) in list(o, "actions", &at)?.iter().enumerate() {
        let a = parse_action(a, &format!("{at}: actions[{j}]"))?;
        if !aiids.insert(a.aiid) {
            return Err((format!("{at}: actions[{j}]"), format!("aiid {} appears twice", a.aiid)));
        }
        actions.push(a);
    }
    Ok(Service { siid, urn, description, properties, actions })
}

fn list<'a>(o: &'a serde_json::Map<String, Json>, key: &str, at: &str) -> Result<&'a [Json], Failure> {
    match o.get(key) {
        None | Some(Json::Null) => Ok(&[]),
        Some(Json::Array(a)) => Ok(a),
        Some(_) => Err((format!("{at}: {key}"), "must be a list".to_owned())),
    }
}

fn parse_property(v: &Json, at: &str) -> Result<Property, Failure> {
    let o = v.as_object().ok_or_else(|| (at.to_owned(), "must be an object".to_owned()))?;
    let piid = iid(o, "piid", at)?;
    let at = format!("{at} (piid {piid})");
    let urn = urn_of(o, "property", &at)?;
    let description =
        opt_text(o.get("description")).map_err(|m| (format!("{at}: description"), m))?.unwrap_or_default();
    let format = {
        let f = o.get("format").ok_or_else(|| (at.clone(), "missing `format`".to_owned()))?;
        let name = f.as_str().unwrap_or_default();
        FORMATS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).ok_or_else(|| {
            let all: Vec<&str> = FORMATS.iter().map(|(n, _)| *n).collect();
            (format!("{at}: format"), format!("{f} is not a MIoT format; it is one of {}", all.join(", ")))
        })?
    };
    let access = {
        let a = o.get("access").ok_or_else(|| (at.clone(), "missing `access`".to_owned()))?;
        let items = a
            .as_array()
            .ok_or_else(|| (format!("{at}: access"), "must be a list of read, write, notify".to_owned()))?;
        let mut access = PropAccess::default();
        for item in items {
            match item.as_str() {
                Some("read") => access.read = true,
                Some("write") => access.write = true,
                Some("notify") => access.notify = true,
                _ => return Err((format!("{at}: access"), format!("{item} is not one of read, write, notify"))),
            }
        }
        access
    };
    let unit =
        opt_text(o.get("unit")).map_err(|m| (format!("{at}: unit"), m))?.filter(|u| u != "none" && !u.is_empty());
    let range = match o.get("value-range") {
        None | Some(Json::Null) => None,
        Some(r) => {
            let nums: Option<Vec<f64>> = r.as_array().map(|a| a.iter().map(Json::as_f64).collect()).unwrap_or(None);
            match nums.as_deref() {
                Some([min, max, step]) if min <= max && *step > 0.0 && min.is_finite() && max.is_finite() => {
                    if !format.is_number() {
                        return Err((
                            format!("{at}: value-range"),
                            format!("a {} property takes no range", format.name()),
                        ));
                    }
                    Some(Range { min: *min, max: *max, step: *step })
                }
                _ => {
                    return Err((
                        format!("{at}: value-range"),
                        format!("must be [min, max, step] with min no more than max and a step above 0, not {r}"),
                    ));
                }
            }
        }
    };
    let mut values = Vec::new();
    for (k, e) in list(o, "value-list", &at)?.iter().enumerate() {
        let here = format!("{at}: value-list[{k}]");
        let value = e
            .get("value")
            .and_then(Json::as_f64)
            .ok_or_else(|| (here.clone(), "needs a numeric `value`".to_owned()))?;
        let description =
            opt_text(e.get("description")).map_err(|m| (format!("{here}: description"), m))?.unwrap_or_default();
        if !format.is_number() {
            return Err((format!("{at}: value-list"), format!("a {} property takes no value list", format.name())));
        }
        if values.iter().any(|v: &EnumValue| v.value == value) {
            return Err((here, format!("value {value} appears twice")));
        }
        values.push(EnumValue { value, description });
    }
    Ok(Property { piid, urn, description, format, access, unit, range, list: values })
}

fn parse_action(v: &Json, at: &str) -> Result<Action, Failure> {
    let o = v.as_object().ok_or_else(|| (at.to_owned(), "must be an object".to_owned()))?;
    let aiid = iid(o, "aiid", at)?;
    let at = format!("{at} (aiid {aiid})");
    let urn = urn_of(o, "action", &at)?;
    let description =
        opt_text(o.get("description")).map_err(|m| (format!("{at}: description"), m))?.unwrap_or_default();
    let piids = |key: &str| -> Result<Vec<u32>, Failure> {
        list(o, key, &at)?
            .iter()
            .map(|p| {
                p.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| (format!("{at}: {key}"), format!("must list piids (whole numbers), not {p}")))
            })
            .collect()
    };
    Ok(Action { aiid, urn, description, inputs: piids("in")?, outputs: piids("out")? })
}

/// The specs Hearth knows: the shipped ones, and those of the user's `specs_dir` (which win).
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    specs: BTreeMap<String, Result<Spec, SpecError>>,
}

impl Catalogue {
    /// The shipped specs.
    pub fn builtin() -> Catalogue {
        let mut specs = BTreeMap::new();
        for (model, text) in BUILTIN {
            specs.insert((*model).to_owned(), parse(&format!("<builtin>/{model}.json"), model, text));
        }
        Catalogue { specs }
    }

    /// The shipped specs and every `<model>.json` in `dir` (a file there replaces the shipped
    /// spec of its model). Files that cannot be used are kept as their errors, so a device of
    /// that model says why; the second value lists them. A directory that cannot be read is an
    /// error.
    pub fn with_dir(dir: &Path) -> Result<(Catalogue, Vec<SpecError>), SpecError> {
        let mut catalogue = Catalogue::builtin();
        let mut bad = Vec::new();
        let shown = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| SpecError {
            file: shown.clone(),
            path: String::new(),
            message: format!("the specs_dir cannot be read ({e})"),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in files {
            let Some(model) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
            let parsed = read_file(&path).and_then(|text| parse(&path.display().to_string(), &model, &text));
            if let Err(e) = &parsed {
                bad.push(e.clone());
            }
            catalogue.specs.insert(model, parsed);
        }
        Ok((catalogue, bad))
    }

    /// The spec of `model`: `None` when there is none, an error when its file cannot be used.
    pub fn get(&self, model: &str) -> Option<&Result<Spec, SpecError>> {
        self.specs.get(model)
    }

    /// Every model with a spec file (usable or not).
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }
}

fn read_file(path: &Path) -> Result<String, SpecError> {
    let err = |message: String| SpecError { file: path.display().to_string(), path: String::new(), message };
    let len = std::fs::metadata(path).map_err(|e| err(format!("cannot be read ({e})")))?.len();
    if len > MAX_SPEC_FILE {
        return Err(err(format!("is {len} bytes, more than a spec file takes ({MAX_SPEC_FILE})")));
    }
    std::fs::read_to_string(path).map_err(|e| err(format!("cannot be read ({e})")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_shipped_spec_is_read() {
        let c = Catalogue::builtin();
        assert_eq!(
            c.models().collect::<Vec<_>>(),
            ["cuco.plug.cp1", "yeelink.light.colorc", "zhimi.airpurifier.mb3", "zhimi.humidifier.ca4"]
        );
        for model in c.models() {
            let spec = c.get(model).unwrap().as_ref().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spec.model, model);
            assert!(spec.description.is_some(), "{model} has a name");
            assert!(spec.urn.as_ref().is_some_and(|u| u.kind == "device"), "{model}");
        }
        let mb3 = c.get("zhimi.airpurifier.mb3").unwrap().as_ref().unwrap();
        let pm25 = mb3.property(3, 6).unwrap();
        assert_eq!((pm25.urn.name.as_str(), pm25.format, pm25.access.write), ("pm2.5-density", Format::Float, false));
        assert_eq!(pm25.range, Some(Range { min: 0.0, max: 600.0, step: 1.0 }));
        let mode = mb3.property(2, 5).unwrap();
        assert_eq!(
            mode.list.iter().map(|v| (v.value, v.description.as_str())).collect::<Vec<_>>(),
            [(0.0, "Auto"), (1.0, "Sleep"), (2.0, "Favorite"), (3.0, "None")]
        );
        assert_eq!(mb3.service(4).unwrap().actions[0].urn.name, "reset-filter-life");
        let temp = mb3.property(3, 8).unwrap();
        assert_eq!((temp.unit.as_deref(), temp.range.map(|r| r.step)), (Some("celsius"), Some(0.1)));
    }

    #[test]
    fn a_spec_saved_whole_from_the_spec_server_is_read() {
        // The shape `miot-spec.org/miot-spec-v2/instance` answers with: `iid` everywhere, and
        // events, which a hub on the LAN does not use.
        let text = r#"{
          "type": "urn:miot-spec-v2:device:outlet:0000A002:chuangmi-212a01:1",
          "description": "Outlet",
          "services": [
            {"iid": 1, "type": "urn:miot-spec-v2:service:device-information:00007801:chuangmi-212a01:1",
             "description": "Device Information",
             "properties": [{"iid": 1, "type": "urn:miot-spec-v2:property:manufacturer:00000001:chuangmi-212a01:1",
                             "description": "Device Manufacturer", "format": "string", "access": ["read"]}]},
            {"iid": 2, "type": "urn:miot-spec-v2:service:switch:0000780C:chuangmi-212a01:1",
             "description": "Switch",
             "properties": [{"iid": 1, "type": "urn:miot-spec-v2:property:on:00000006:chuangmi-212a01:1",
                             "description": "Switch Status", "format": "bool", "access": ["read", "write", "notify"],
                             "unit": "none"}],
             "actions": [{"iid": 1, "type": "urn:miot-spec-v2:action:toggle:00002811:chuangmi-212a01:1",
                          "description": "Toggle", "in": [], "out": []}],
             "events": [{"iid": 1, "type": "urn:miot-spec-v2:event:x:00005001:chuangmi-212a01:1", "arguments": []}]}
          ]
        }"#;
        let spec = parse("chuangmi.plug.212a01.json", "chuangmi.plug.212a01", text).unwrap();
        assert_eq!(spec.services.len(), 2);
        let on = spec.property(2, 1).unwrap();
        assert_eq!((on.format, on.unit.as_deref()), (Format::Bool, None), "`none` is no unit");
        assert_eq!(spec.service(2).unwrap().actions[0].aiid, 1);
    }

    #[test]
    fn a_bad_file_names_itself_the_place_and_the_rule() {
        let service = |prop: &str| {
            format!(
                r#"{{"services": [{{"siid": 2, "type": "urn:miot-spec-v2:service:switch:0000780C:x:1",
                "properties": [{{"piid": 1, "type": "urn:miot-spec-v2:property:on:00000006:x:1", "format": "bool", "access": ["read"]}}, {prop}]}}]}}"#
            )
        };
        let cases: Vec<(String, &str)> = vec![
            ("nope".into(), "m.json: not JSON (expected ident at line 1 column 2)"),
            ("[]".into(), "m.json: the file must hold one JSON object, with `services`"),
            ("{}".into(), "m.json: services: missing: a spec lists the device's services"),
            (r#"{"services": []}"#.into(), "m.json: services: is empty: a spec lists the device's services"),
            (
                r#"{"model": "other", "services": [{}]}"#.into(),
                "m.json: model: `other` does not match the file's name: name the file other.json, or the model m",
            ),
            (r#"{"services": [{"type": "x"}]}"#.into(), "m.json: services[0]: missing `siid`"),
            (
                r#"{"services": [{"siid": 0, "type": "x"}]}"#.into(),
                "m.json: services[0]: siid: must be a whole number from 1, not 0",
            ),
            (
                r#"{"services": [{"siid": 2, "type": "urn:miot-spec-v2:property:on:1"}]}"#.into(),
                "m.json: services[0] (siid 2): type: `urn:miot-spec-v2:property:on:1` is a property type, not a service type",
            ),
            (
                r#"{"services": [{"siid": 2, "type": "switch"}]}"#.into(),
                "m.json: services[0] (siid 2): type: `switch` is not a MIoT type (urn:<namespace>:service:<name>:<id>:...)",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:mode:8:x:1", "format": "int128", "access": []}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): format: \"int128\" is not a MIoT format; it is one of bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float, string, hex, tlv8",
            ),
            (
                service(r#"{"piid": 1, "type": "urn:miot-spec-v2:property:mode:8:x:1", "format": "uint8", "access": []}"#),
                "m.json: services[0] (siid 2): properties[1]: piid 1 appears twice",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:mode:8:x:1", "format": "uint8", "access": ["rw"]}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): access: \"rw\" is not one of read, write, notify",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:b:8:x:1", "format": "uint8", "access": ["read"], "value-range": [100, 0, 1]}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): value-range: must be [min, max, step] with min no more than max and a step above 0, not [100,0,1]",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:b:8:x:1", "format": "bool", "access": ["read"], "value-range": [0, 1, 1]}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): value-range: a bool property takes no range",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:b:8:x:1", "format": "uint8", "access": ["read"], "value-list": [{"description": "x"}]}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): value-list[0]: needs a numeric `value`",
            ),
            (
                service(r#"{"piid": 2, "type": "urn:miot-spec-v2:property:b:8:x:1", "access": ["read"]}"#),
                "m.json: services[0] (siid 2): properties[1] (piid 2): missing `format`",
            ),
            (
                r#"{"services": [{"siid": 2, "type": "urn:a:service:s:1", "actions": [{"aiid": 1, "type": "urn:a:action:go:1", "in": ["x"]}]}]}"#.into(),
                "m.json: services[0] (siid 2): actions[0] (aiid 1): in: must list piids (whole numbers), not \"x\"",
            ),
            (
                r#"{"services": [{"siid": 2, "type": "urn:a:service:s:1"}, {"siid": 2, "type": "urn:a:service:t:1"}]}"#.into(),
                "m.json: services[1]: siid 2 appears twice",
            ),
        ];
        for (text, expected) in cases {
            let e = parse("m.json", "m", &text).unwrap_err();
            assert_eq!(e.to_string(), expected, "{text}");
        }
    }

    #[test]
    fn a_specs_dir_adds_and_replaces_models_and_keeps_bad_files_as_errors() {
        let dir = std::env::temp_dir().join(format!("hearth-miio-specs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let plug = r#"{"description": "My plug", "services": [{"siid": 2, "type": "urn:miot-spec-v2:service:switch:0000780C:x:1",
            "properties": [{"piid": 1, "type": "urn:miot-spec-v2:property:on:00000006:x:1", "format": "bool", "access": ["read", "write"]}]}]}"#;
        std::fs::write(dir.join("acme.plug.v1.json"), plug).unwrap();
        std::fs::write(dir.join("cuco.plug.cp1.json"), plug).unwrap();
        std::fs::write(dir.join("broken.model.json"), r#"{"services": [{"siid": "two"}]}"#).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a spec").unwrap();
        let (c, bad) = Catalogue::with_dir(&dir).unwrap();
        assert_eq!(c.get("acme.plug.v1").unwrap().as_ref().unwrap().description.as_deref(), Some("My plug"));
        assert_eq!(c.get("cuco.plug.cp1").unwrap().as_ref().unwrap().description.as_deref(), Some("My plug"));
        assert!(c.get("zhimi.airpurifier.mb3").unwrap().is_ok(), "the shipped ones stay");
        let broken = c.get("broken.model").unwrap().as_ref().unwrap_err();
        assert_eq!(broken.file, dir.join("broken.model.json").display().to_string());
        assert_eq!(
            broken.to_string(),
            format!("{}: services[0]: siid: must be a whole number from 1, not \"two\"", broken.file)
        );
        assert_eq!(bad, std::slice::from_ref(broken));
        assert!(c.get("notes").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        let e = Catalogue::with_dir(&dir).unwrap_err().to_string();
        assert!(e.starts_with(&dir.display().to_string()) && e.contains("the specs_dir cannot be read"), "{e}");
    }
}
