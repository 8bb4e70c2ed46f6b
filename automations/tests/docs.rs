//! The examples of `AUTOMATIONS.md`, checked against the model and the validator.
//!
//! Every ```` ```json Type ```` block (Type: `Automation`, `Scene`, `Trigger`, `Condition`,
//! `Action`) must parse as that type of `hearth_automations::model` and be valid against the
//! demo home (`hearth run --demo`, with a location): a trigger, condition or action example is
//! checked inside a small automation. A ```` ```json Automation invalid ```` block must parse and
//! have faults, and the ```` ```json error ```` block after it must be the API's answer for them.
//! A ```` ```yaml Automation ```` block must read with `text::automation_from_yaml`, be exactly
//! what `text::automation_to_yaml` writes for it, and equal the JSON example with the same id.
//! `json` and `yaml` blocks without a word after the language are not checked.
//!
//! Further tests: every trigger, condition and action kind has an example (exhaustive matches,
//! so a new kind fails to compile here until it is documented), and the tables of endings,
//! template names and API routes list exactly what the code has.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use hearth_automations::matching::TEMPLATE_NAMES;
use hearth_automations::model::{Action, ActionKind, Automation, Condition, Scene, Trigger, TriggerKind};
use hearth_automations::text;
use hearth_automations::trace::EndKind;
use hearth_automations::validate::{Catalog, Fault, validate, validate_scene};
use hearth_sdk::{Access, Area, Capability, Device, DeviceDescriptor, DeviceId, Feature, ValueType};
use serde_json::json;

const DOC: &str = include_str!("../AUTOMATIONS.md");

/// One fenced block of the document.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// The language (`json`, `yaml`, ...).
    lang: String,
    /// The words after the language.
    tags: Vec<String>,
    body: String,
}

fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in DOC.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None => {
                // As in CommonMark, an info string with a backtick is inline code, not a fence.
                if let Some(info) = trimmed.strip_prefix("```").filter(|info| !info.contains('`')) {
                    let mut words = info.split_whitespace().map(str::to_owned);
                    open = Some(Block {
                        line: i + 1,
                        lang: words.next().unwrap_or_default(),
                        tags: words.collect(),
                        body: String::new(),
                    });
                }
            }
            Some(mut block) => {
                if trimmed == "```" {
                    blocks.push(block);
                } else {
                    block.body.push_str(line);
                    block.body.push('\n');
                    open = Some(block);
                }
            }
        }
    }
    assert!(open.is_none(), "AUTOMATIONS.md ends inside a fenced block");
    blocks
}

/// A tested example, parsed.
#[derive(Debug)]
enum Example {
    Automation(Automation),
    /// Must have faults; the answer the API gives for them.
    Invalid(Automation, serde_json::Value),
    /// With the text of its block.
    Yaml(Automation, String),
    Scene(Scene),
    Trigger(Trigger),
    Condition(Condition),
    Action(Action),
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| format!("does not parse: {e}"))
}

/// Every tested block, parsed, with its line; failures as `AUTOMATIONS.md:<line>: ...`.
fn examples() -> (Vec<(usize, Example)>, Vec<String>) {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let blocks = blocks();
    let mut i = 0;
    while i < blocks.len() {
        let b = &blocks[i];
        i += 1;
        let tags: Vec<&str> = b.tags.iter().map(String::as_str).collect();
        let parsed = match (b.lang.as_str(), tags.as_slice()) {
            (_, []) => continue,
            ("json", ["Automation"]) => parse(&b.body).map(Example::Automation),
            ("json", ["Scene"]) => parse(&b.body).map(Example::Scene),
            ("json", ["Trigger"]) => parse(&b.body).map(Example::Trigger),
            ("json", ["Condition"]) => parse(&b.body).map(Example::Condition),
            ("json", ["Action"]) => parse(&b.body).map(Example::Action),
            ("json", ["Automation", "invalid"]) => {
                let answer = match blocks.get(i) {
                    Some(next) if next.lang == "json" && next.tags == ["error"] => {
                        i += 1;
                        parse::<serde_json::Value>(&next.body).map_err(|e| format!("its error block {e}"))
                    }
                    _ => Err("must be followed by a ```json error block".to_owned()),
                };
                parse(&b.body).and_then(|a| Ok(Example::Invalid(a, answer?)))
            }
            ("json", ["error"]) => Err("an error block must follow a ```json Automation invalid block".to_owned()),
            ("yaml", ["Automation"]) => text::automation_from_yaml(&b.body)
                .map(|a| Example::Yaml(a, b.body.clone()))
                .map_err(|e| format!("does not read: {e}")),
            (lang, tags) => Err(format!("`{lang} {}` is not a tested kind of block", tags.join(" "))),
        };
        match parsed {
            Ok(e) => out.push((b.line, e)),
            Err(e) => failures.push(format!("AUTOMATIONS.md:{}: {e}", b.line)),
        }
    }
    (out, failures)
}

// ----- the demo home -----------------------------------------------------------------------------

fn feature(key: &str, capability: Capability, value_type: ValueType, access: Access) -> Feature {
    Feature::new(key, capability, value_type, access)
}

/// The devices of the demo adapter (`adapters/demo/src/catalog.rs`), in their areas.
fn demo_home() -> (Vec<Device>, Vec<Area>) {
    use Capability as C;
    let rw = Access::READ_WRITE;
    let ro = Access::READ_ONLY;
    let state = || feature("state", C::OnOff, ValueType::Bool, rw);
    let brightness = || feature("brightness", C::Brightness, ValueType::range(0.0, 100.0, 1.0), rw);
    let color_temperature =
        || feature("color_temperature", C::ColorTemperature, ValueType::range(2200.0, 6500.0, 1.0), rw);
    let color = || feature("color", C::Color, ValueType::Color, rw);
    let temperature = || feature("temperature", C::Temperature, ValueType::range(-40.0, 80.0, 0.1), ro);
    let humidity = || feature("humidity", C::Humidity, ValueType::range(0.0, 100.0, 1.0), ro);
    let battery = || feature("battery", C::Battery, ValueType::range(0.0, 100.0, 1.0), ro);
    let power = || feature("power", C::Power, ValueType::range(0.0, 3600.0, 0.1), ro);
    let energy =
        || feature("energy", C::Energy, ValueType::Number { min: Some(0.0), max: None, step: Some(0.001) }, ro);
    let devices = [
        ("living_ceiling", "living_room", vec![state(), brightness(), color_temperature(), color()]),
        ("living_lamp", "living_room", vec![state(), brightness()]),
        ("kitchen_light", "kitchen", vec![state(), brightness(), color_temperature()]),
        ("bedroom_light", "bedroom", vec![state(), brightness(), color_temperature(), color()]),
        (
            "plug_tv",
            "living_room",
            vec![
                state(),
                power(),
                energy(),
                feature("voltage", C::Voltage, ValueType::range(0.0, 260.0, 0.1), ro),
                feature("current", C::Current, ValueType::range(0.0, 16.0, 0.01), ro),
            ],
        ),
        ("plug_kettle", "kitchen", vec![state(), power(), energy()]),
        (
            "living_climate",
            "living_room",
            vec![
                temperature(),
                humidity(),
                battery(),
                feature("signal_strength", C::SignalStrength, ValueType::range(-120.0, 0.0, 1.0), ro),
            ],
        ),
        (
            "bedroom_climate",
            "bedroom",
            vec![
                temperature(),
                humidity(),
                feature("pressure", C::Pressure, ValueType::range(300.0, 1100.0, 0.1), ro),
                battery(),
            ],
        ),
        ("front_door", "hallway", vec![feature("contact", C::Contact, ValueType::Bool, ro), battery()]),
        (
            "hall_motion",
            "hallway",
            vec![
                feature("occupancy", C::Occupancy, ValueType::Bool, ro),
                feature("illuminance", C::Illuminance, ValueType::range(0.0, 100_000.0, 1.0), ro),
                battery(),
            ],
        ),
        (
            "hall_button",
            "hallway",
            vec![
                feature("action", C::Action, ValueType::enumeration(["single", "double", "hold"]), Access::EVENT),
                battery(),
            ],
        ),
        (
            "thermostat",
            "living_room",
            vec![
                temperature(),
                feature("setpoint", C::Setpoint, ValueType::range(5.0, 30.0, 0.5), rw),
                feature("hvac_mode", C::HvacMode, ValueType::enumeration(["off", "heat", "auto"]), rw),
                feature("hvac_action", C::HvacAction, ValueType::enumeration(["idle", "heat"]), ro),
            ],
        ),
        (
            "bedroom_blind",
            "bedroom",
            vec![
                feature("cover_position", C::CoverPosition, ValueType::range(0.0, 100.0, 1.0), rw),
                feature(
                    "cover_state",
                    C::CoverState,
                    ValueType::enumeration(["open", "close", "stop"]),
                    Access { observe: true, set: true, get: false },
                ),
            ],
        ),
    ];
    let devices = devices
        .into_iter()
        .map(|(native, area, features)| {
            let mut d = Device::from_descriptor(DeviceDescriptor::new(DeviceId::new("demo", native), native, features));
            d.area = Some(area.to_owned());
            d
        })
        .collect();
    let areas =
        [("living_room", "Living room"), ("kitchen", "Kitchen"), ("bedroom", "Bedroom"), ("hallway", "Hallway")]
            .into_iter()
            .zip(0..)
            .map(|((id, name), order)| Area { id: id.to_owned(), name: name.to_owned(), order })
            .collect();
    (devices, areas)
}

#[test]
fn the_demo_home_here_is_the_demo_adapters() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/demo/src/catalog.rs");
    let catalog = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (devices, _) = demo_home();
    assert_eq!(devices.len(), 13);
    for d in &devices {
        assert!(catalog.contains(&format!("\"{}\"", d.id.native())), "catalog.rs has no device `{}`", d.id);
        for f in &d.features {
            assert!(catalog.contains(&format!("\"{}\"", f.key)), "catalog.rs has no feature `{}`", f.key);
        }
    }
}

// ----- kinds ---------------------------------------------------------------------------------------

// The model names its kinds (`name()`, exhaustive, and `NAMES`, tied together by the model's
// tests): a new kind fails `every_kind_has_an_example` until AUTOMATIONS.md shows it.
const TRIGGER_KINDS: &[&str] = TriggerKind::NAMES;
const CONDITION_KINDS: &[&str] = Condition::NAMES;
const ACTION_KINDS: &[&str] = ActionKind::NAMES;

fn end_kind(k: EndKind) -> &'static str {
    match k {
        EndKind::Finished => "finished",
        EndKind::ConditionsFailed => "conditions_failed",
        EndKind::Ignored => "ignored",
        EndKind::Dropped => "dropped",
        EndKind::Restarted => "restarted",
        EndKind::Stopped => "stopped",
        EndKind::Timeout => "timeout",
        EndKind::Loop => "loop",
        EndKind::Cancelled => "cancelled",
        EndKind::Error => "error",
    }
}
const END_KINDS: [EndKind; 10] = [
    EndKind::Finished,
    EndKind::ConditionsFailed,
    EndKind::Ignored,
    EndKind::Dropped,
    EndKind::Restarted,
    EndKind::Stopped,
    EndKind::Timeout,
    EndKind::Loop,
    EndKind::Cancelled,
    EndKind::Error,
];

/// The one key of a part's JSON form besides `id` and `alias`: its kind as written.
fn json_kind<T: serde::Serialize>(part: &T) -> String {
    let v = serde_json::to_value(part).unwrap();
    let keys: Vec<&String> =
        v.as_object().map(|o| o.keys().filter(|k| *k != "id" && *k != "alias").collect()).unwrap_or_default();
    assert_eq!(keys.len(), 1, "{v}");
    keys[0].clone()
}

/// The kinds an example uses, nested ones too, and the trigger ids its conditions name.
#[derive(Debug, Default)]
struct Seen {
    triggers: BTreeSet<&'static str>,
    conditions: BTreeSet<&'static str>,
    actions: BTreeSet<&'static str>,
    trigger_ids: BTreeSet<String>,
}

impl Seen {
    fn automation(&mut self, a: &Automation) {
        for t in &a.triggers {
            self.trigger(&t.kind);
        }
        self.conditions(&a.conditions);
        self.actions(&a.actions);
    }

    fn trigger(&mut self, k: &TriggerKind) {
        let name = k.name();
        assert_eq!(json_kind(k), name);
        self.triggers.insert(name);
    }

    fn conditions(&mut self, list: &[Condition]) {
        for c in list {
            self.condition(c);
        }
    }

    fn condition(&mut self, c: &Condition) {
        let name = c.name();
        assert_eq!(json_kind(c), name);
        self.conditions.insert(name);
        match c {
            Condition::Trigger { id } => {
                self.trigger_ids.insert(id.clone());
            }
            Condition::And(list) | Condition::Or(list) => self.conditions(list),
            Condition::Not(inner) => self.condition(inner),
            Condition::State { .. } | Condition::Time { .. } | Condition::Sun { .. } => {}
        }
    }

    fn actions(&mut self, list: &[Action]) {
        for a in list {
            self.action(a);
        }
    }

    fn action(&mut self, a: &Action) {
        let name = a.kind.name();
        assert_eq!(json_kind(a), name);
        self.actions.insert(name);
        match &a.kind {
            ActionKind::Wait { triggers, .. } => {
                for t in triggers {
                    self.trigger(t);
                }
            }
            ActionKind::If { conditions, then, otherwise } => {
                self.conditions(conditions);
                self.actions(then);
                self.actions(otherwise);
            }
            ActionKind::Choose { options, default } => {
                for o in options {
                    self.conditions(&o.conditions);
                    self.actions(&o.actions);
                }
                self.actions(default);
            }
            ActionKind::Repeat { while_all, until, actions, .. } => {
                self.conditions(while_all);
                self.conditions(until);
                self.actions(actions);
            }
            ActionKind::Parallel(branches) => {
                for b in branches {
                    self.actions(b);
                }
            }
            ActionKind::Set { .. }
            | ActionKind::Scene { .. }
            | ActionKind::Delay(_)
            | ActionKind::Mqtt { .. }
            | ActionKind::Webhook { .. }
            | ActionKind::Notify { .. }
            | ActionKind::Enable(_)
            | ActionKind::Disable(_)
            | ActionKind::Stop { .. } => {}
        }
    }
}

// ----- the examples ----------------------------------------------------------------------------------

/// A trigger, condition or action example inside an automation that is otherwise valid: the
/// trigger ids its conditions name become `start` triggers.
fn wrap(example: &Example) -> Option<Automation> {
    let mut seen = Seen::default();
    let (triggers, conditions, actions) = match example {
        Example::Trigger(t) => (vec![serde_json::to_value(t).unwrap()], vec![], None),
        Example::Condition(c) => {
            seen.condition(c);
            (vec![], vec![serde_json::to_value(c).unwrap()], None)
        }
        Example::Action(a) => {
            seen.action(a);
            (vec![], vec![], Some(serde_json::to_value(a).unwrap()))
        }
        Example::Automation(_) | Example::Invalid(..) | Example::Yaml(..) | Example::Scene(_) => return None,
    };
    let mut triggers = triggers;
    triggers.extend(seen.trigger_ids.iter().map(|id| json!({"id": id, "start": {}})));
    if triggers.is_empty() {
        triggers.push(json!({"start": {}}));
    }
    let actions = actions.unwrap_or_else(|| json!({"notify": {"message": "it happened"}}));
    let a = json!({"id": "example", "name": "Example", "triggers": triggers, "conditions": conditions, "actions": [actions]});
    Some(serde_json::from_value(a).unwrap())
}

/// The answer of the API (`hub/src/api/automations.rs`, `faults_error`) for these faults.
fn error_answer(faults: &[Fault]) -> serde_json::Value {
    let list: Vec<String> = faults.iter().map(ToString::to_string).collect();
    json!({"error": {
        "code": "invalid_definition",
        "message": format!("the automation is not valid: {}", list.join("; ")),
        "details": {"faults": faults.iter().map(|f| json!({"path": f.path, "message": f.message})).collect::<Vec<_>>()},
    }})
}

#[test]
fn every_example_parses_and_is_valid_in_the_demo_home() {
    let (examples, mut failures) = examples();
    let (devices, areas) = demo_home();
    let mut scenes = Vec::new();
    let mut automations = vec!["example".to_owned()];
    for (_, e) in &examples {
        match e {
            Example::Scene(s) => scenes.push(s.id.clone()),
            Example::Automation(a) | Example::Yaml(a, _) => automations.push(a.id.clone()),
            Example::Invalid(..) | Example::Trigger(_) | Example::Condition(_) | Example::Action(_) => {}
        }
    }
    let catalog =
        Catalog { devices: &devices, areas: &areas, scenes: &scenes, automations: &automations, location: true };
    let json_automations: Vec<&Automation> = examples
        .iter()
        .filter_map(|(_, e)| match e {
            Example::Automation(a) => Some(a),
            _ => None,
        })
        .collect();
    for (line, e) in &examples {
        let mut fail = |what: String| failures.push(format!("AUTOMATIONS.md:{line}: {what}"));
        let faults = match e {
            Example::Automation(a) => validate(a, catalog),
            Example::Scene(s) => validate_scene(s, catalog),
            Example::Invalid(a, answer) => {
                let faults = validate(a, catalog);
                if faults.is_empty() {
                    fail("is marked invalid but has no faults".into());
                } else if error_answer(&faults) != *answer {
                    fail(format!("the error block after it should read:\n{:#}", error_answer(&faults)));
                }
                Vec::new()
            }
            Example::Yaml(a, body) => {
                let written = text::automation_to_yaml(a);
                if written != *body {
                    fail(format!("is not what Hearth writes for it, which is:\n{written}"));
                }
                if let Some(j) = json_automations.iter().find(|j| j.id == a.id)
                    && *j != a
                {
                    fail(format!("differs from the JSON example of `{}`", a.id));
                }
                validate(a, catalog)
            }
            Example::Trigger(_) | Example::Condition(_) | Example::Action(_) => {
                wrap(e).map(|a| validate(&a, catalog)).unwrap_or_default()
            }
        };
        if !faults.is_empty() {
            let list: Vec<String> = faults.iter().map(ToString::to_string).collect();
            fail(format!("is not valid in the demo home: {}", list.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} examples fail:\n{}", failures.len(), failures.join("\n"));
    assert!(
        examples.len() >= 40,
        "AUTOMATIONS.md has only {} tested examples; were the fences renamed?",
        examples.len()
    );
}

#[test]
fn every_kind_has_an_example() {
    let (examples, _) = examples();
    let mut seen = Seen::default();
    for (_, e) in &examples {
        match e {
            Example::Automation(a) | Example::Yaml(a, _) => seen.automation(a),
            Example::Trigger(t) => seen.trigger(&t.kind),
            Example::Condition(c) => seen.condition(c),
            Example::Action(a) => seen.action(a),
            Example::Invalid(..) | Example::Scene(_) => {}
        }
    }
    let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<&str>>();
    assert_eq!(seen.triggers, set(TRIGGER_KINDS), "trigger kinds with an example");
    assert_eq!(seen.conditions, set(CONDITION_KINDS), "condition kinds with an example");
    assert_eq!(seen.actions, set(ACTION_KINDS), "action kinds with an example");
    // Each kind also has a section of its own.
    for kind in TRIGGER_KINDS.iter().chain(CONDITION_KINDS).chain(ACTION_KINDS) {
        assert!(DOC.contains(&format!("\n### `{kind}`")), "AUTOMATIONS.md has no section `### `{kind}``");
    }
}

#[test]
fn the_tables_name_every_ending_and_template_name() {
    for k in END_KINDS {
        let name = end_kind(k);
        assert_eq!(serde_json::to_value(k).unwrap(), name);
        assert!(DOC.contains(&format!("| `{name}` |")), "the endings table has no row for `{name}`");
    }
    for name in TEMPLATE_NAMES {
        assert!(DOC.contains(&format!("| `trigger.{name}` |")), "the templates table has no row for `trigger.{name}`");
    }
}

/// `(method, path)` of every route of `hub/src/api/routes.rs` about automations, scenes and
/// webhooks.
fn automation_routes() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/src/api/routes.rs");
    let routes = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    routes
        .split("route!(")
        .skip(1)
        .filter_map(|rest| {
            let quoted: Vec<&str> = rest.split('"').collect();
            Some((quoted.get(1)?.to_string(), quoted.get(3)?.to_string()))
        })
        .filter(|(_, p)| ["/api/v1/automation", "/api/v1/scenes", "/api/v1/webhooks"].iter().any(|s| p.starts_with(s)))
        .collect()
}

#[test]
fn the_api_table_lists_exactly_the_routes() {
    let routes = automation_routes();
    assert!(routes.len() >= 20, "{routes:?}");
    let rows: BTreeSet<(String, String)> = DOC
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let method = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let path = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with("/api/"))
                .then(|| (method.to_owned(), path.to_owned()))
        })
        .collect();
    let missing: Vec<_> = routes.difference(&rows).collect();
    let extra: Vec<_> = rows.difference(&routes).collect();
    assert!(missing.is_empty(), "routes missing from the API table: {missing:?}");
    assert!(extra.is_empty(), "rows of the API table that are no route: {extra:?}");
}

#[test]
fn the_checks_can_fail() {
    let (devices, areas) = demo_home();
    let catalog = Catalog { devices: &devices, areas: &areas, scenes: &[], automations: &[], location: false };
    let sun: Trigger = parse(r#"{"sun": {"event": "sunset"}}"#).unwrap();
    assert!(!validate(&wrap(&Example::Trigger(sun)).unwrap(), catalog).is_empty(), "no location");
    let cond: Condition = parse(r#"{"trigger": {"id": "press"}}"#).unwrap();
    assert_eq!(validate(&wrap(&Example::Condition(cond)).unwrap(), catalog), [], "the id becomes a trigger");
    let lamp: Action = parse(r#"{"set": {"devices": ["demo:living_lamp"], "values": {"color": 1}}}"#).unwrap();
    assert!(!validate(&wrap(&Example::Action(lamp)).unwrap(), catalog).is_empty(), "the lamp has no color");
    assert!(parse::<Trigger>(r#"{"telepathy": {}}"#).is_err());
}
