//! Every definition of zigbee2mqtt's device database maps onto the one model.
//!
//! The fixture `fixtures/definitions.json` holds the exposes of every definition of
//! zigbee-herdsman-converters as zigbee2mqtt publishes them in `bridge/devices` (see
//! `fixtures/README.md`; regenerate with `fixtures/generate/generate.mjs`). This test checks that:
//! - every expose set parses into [`Expose`]s;
//! - for every definition (and its fake-device variant, where the fixture has one):
//!   - nothing is unsupported;
//!   - every exposed property is mapped: the `property` of every top-level generic expose, of
//!     every feature of a specific type (`light`, `switch`, `fan`, `cover`, `lock`, `climate`),
//!     nested ones included, and of every composite (whose children are parts of one value, so
//!     they are not properties of their own), and of every list (whose item type is likewise part
//!     of the value);
//!   - every property's feature is a feature of the mapping, events included;
//!   - feature keys are unique.
//!
//! Failures are gathered over the whole corpus and reported together. Run with `--nocapture` to
//! see the counts, among them the properties that fall to `other`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hearth_sdk::Capability;
use hearth_zigbee2mqtt::api::Expose;
use hearth_zigbee2mqtt::exposes::{Mapping, map_exposes};
use serde_json::Value;

/// Expose types whose `features` are separate properties of the device.
const SPECIFIC: &[&str] = &["light", "switch", "fan", "cover", "lock", "climate"];

/// How many failures of one kind are printed in full.
const SHOWN: usize = 60;

/// One definition of the fixture.
struct Definition {
    vendor: String,
    model: String,
    /// The expose set zigbee2mqtt publishes without a real device (or for a static list).
    exposes_ref: Option<usize>,
    /// The expose set for a fake device, where it differs.
    device_exposes_ref: Option<usize>,
}

impl Definition {
    fn name(&self) -> String {
        format!("{} {}", self.vendor, self.model)
    }
}

struct Fixture {
    source: String,
    definitions: Vec<Definition>,
    expose_sets: Vec<Value>,
}

fn load() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("definitions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let root: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let text_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let index_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_u64).map(|n| n as usize);
    let definitions = root["definitions"]
        .as_array()
        .expect("`definitions` is an array")
        .iter()
        .map(|d| Definition {
            vendor: text_of(d, "vendor"),
            model: text_of(d, "model"),
            exposes_ref: index_of(d, "exposes_ref"),
            device_exposes_ref: index_of(d, "device_exposes_ref"),
        })
        .collect();
    let expose_sets = root["expose_sets"].as_array().expect("`expose_sets` is an array").clone();
    Fixture { source: text_of(&root, "source"), definitions, expose_sets }
}

/// The device-level properties of a list of exposes, in order, each once.
fn exposed_properties(exposes: &[Expose]) -> Vec<String> {
    fn walk(e: &Expose, out: &mut Vec<String>) {
        if SPECIFIC.contains(&e.kind.as_str()) {
            for f in e.features.iter().flatten() {
                walk(f, out);
            }
        } else if let Some(p) = &e.property {
            // A generic expose, a composite or a list: one value under one property.
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    let mut out = Vec::new();
    for e in exposes {
        walk(e, &mut out);
    }
    out
}

/// What is wrong with one mapping, one line each.
fn check(exposes: &[Expose], m: &Mapping) -> Vec<String> {
    let mut problems = Vec::new();
    for u in &m.unsupported {
        problems.push(format!("unsupported: {u}"));
    }
    let mapped: BTreeSet<&str> = m.properties.iter().map(|p| p.property.as_str()).collect();
    for p in exposed_properties(exposes) {
        if !mapped.contains(p.as_str()) {
            problems.push(format!("property `{p}` is not mapped"));
        }
    }
    let mut keys = BTreeSet::new();
    for f in &m.features {
        if !keys.insert(f.key.as_str()) {
            problems.push(format!("feature key `{}` is not unique", f.key));
        }
    }
    for p in &m.properties {
        if !keys.contains(p.feature.as_str()) {
            problems.push(format!(
                "property `{}` names feature `{}`, which does not exist{}",
                p.property,
                p.feature,
                if p.event { " (event)" } else { "" }
            ));
        }
    }
    problems
}

/// Prints the first [`SHOWN`] lines of a failure list and how many there are.
fn report(title: &str, lines: &[String]) -> String {
    let mut s = format!("{title}: {}\n", lines.len());
    for l in lines.iter().take(SHOWN) {
        s.push_str("  ");
        s.push_str(l);
        s.push('\n');
    }
    if lines.len() > SHOWN {
        s.push_str(&format!("  ... and {} more\n", lines.len() - SHOWN));
    }
    s
}

#[test]
fn every_definition_maps() {
    let fixture = load();
    assert!(!fixture.definitions.is_empty(), "the fixture has no definitions");

    // Which definitions use each set, for messages.
    let mut users: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in &fixture.definitions {
        for r in [d.exposes_ref, d.device_exposes_ref].into_iter().flatten() {
            users.entry(r).or_default().push(d.name());
        }
    }

    // 1. Every expose set parses.
    let mut parsed: Vec<Option<Vec<Expose>>> = Vec::with_capacity(fixture.expose_sets.len());
    let mut parse_failures = Vec::new();
    for (i, set) in fixture.expose_sets.iter().enumerate() {
        match serde_json::from_value::<Vec<Expose>>(set.clone()) {
            Ok(v) => parsed.push(Some(v)),
            Err(e) => {
                let who = users.get(&i).map(|u| u.join(", ")).unwrap_or_default();
                parse_failures.push(format!("expose set {i} ({who}): {e}"));
                parsed.push(None);
            }
        }
    }

    // 2. Every definition maps.
    let mut map_failures = Vec::new();
    let mut with_exposes = 0usize;
    let mut variants = 0usize;
    let mut features = 0usize;
    let mut other = 0usize;
    let mut events = 0usize;
    let mut properties = 0usize;
    let mut by_capability: BTreeMap<String, usize> = BTreeMap::new();
    let mut to_other: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in &fixture.definitions {
        for (variant, r) in [("", d.exposes_ref), (" [fake device]", d.device_exposes_ref)] {
            let Some(r) = r else { continue };
            let Some(exposes) = parsed.get(r).and_then(Option::as_ref) else { continue };
            let m = map_exposes(exposes);
            for p in check(exposes, &m) {
                map_failures.push(format!("{}{variant}: {p}", d.name()));
            }
            if !variant.is_empty() {
                variants += 1;
                continue;
            }
            // Counts over the definitions' own lists only.
            with_exposes += 1;
            features += m.features.len();
            properties += m.properties.len();
            events += m.properties.iter().filter(|p| p.event).count();
            for f in &m.features {
                let cap = serde_json::to_value(f.capability)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{:?}", f.capability));
                *by_capability.entry(cap).or_default() += 1;
                if f.capability == Capability::Other {
                    other += 1;
                    let unit = f.unit.clone().unwrap_or_else(|| "-".to_owned());
                    *to_other.entry((f.key.clone(), unit)).or_default() += 1;
                }
            }
        }
    }

    eprintln!("source: {}", fixture.source);
    eprintln!("definitions: {}", fixture.definitions.len());
    eprintln!("definitions with exposes: {with_exposes} (plus {variants} fake-device variants checked)");
    eprintln!("expose sets: {} ({} failed to parse)", fixture.expose_sets.len(), parse_failures.len());
    eprintln!("properties total: {properties}");
    eprintln!("features total: {features}");
    eprintln!("features whose capability is other: {other}");
    eprintln!("events: {events}");
    eprintln!("features by capability:");
    let mut caps: Vec<_> = by_capability.into_iter().collect();
    caps.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (cap, n) in caps {
        eprintln!("  {n:>7}  {cap}");
    }
    eprintln!("top 30 properties that fell to other (key, unit, definitions):");
    let mut top: Vec<_> = to_other.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for ((key, unit), n) in top.into_iter().take(30) {
        eprintln!("  {n:>6}  {key}  [{unit}]");
    }

    let mut message = String::new();
    if !parse_failures.is_empty() {
        message.push_str(&report("expose sets that do not parse", &parse_failures));
    }
    if !map_failures.is_empty() {
        message.push_str(&report("mapping problems", &map_failures));
    }
    assert!(message.is_empty(), "\n{message}");
}
