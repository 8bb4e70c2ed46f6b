//! Checks an automation against the home as it is: every fault with its path
//! (`actions[2].set.brightness: feature `brightness` takes 0 to 100, not 140`), including
//! devices, areas, features, scenes and automations that do not exist.

use std::fmt;

use hearth_sdk::{Area, CommandError, Device, Feature, Value, ValueType, check_value};
use serde::Serialize;

use crate::model::{Action, ActionKind, Automation, Condition, Scene, Target, Trigger, TriggerKind};
use crate::say::Say;

/// What an automation may refer to.
#[derive(Debug, Clone, Copy)]
pub struct Catalog<'a> {
    /// Every device.
    pub devices: &'a [Device],
    /// Every area.
    pub areas: &'a [Area],
    /// Ids of every scene.
    pub scenes: &'a [String],
    /// Ids of every automation (the one being checked included).
    pub automations: &'a [String],
    /// Whether the home's location is known (sun triggers and conditions need it).
    pub location: bool,
}

/// One fault: where and what. JSON form: `{"path", "message", "say"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// The path in the automation's JSON (`actions[2].set.brightness`).
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
    /// `message` as data, for the UI to say in the user's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
}

impl Fault {
    /// The fault at `path`, described by `say`.
    pub fn new(path: impl Into<String>, say: Say) -> Fault {
        Fault { path: path.into(), message: say.to_string(), say: Some(say) }
    }
}

/// A value a feature refused, as a saying.
fn refused(f: &Feature, e: &CommandError) -> Say {
    match e {
        CommandError::WrongType { feature, value, .. } => Say::WrongType {
            feature: feature.clone(),
            value_type: f.value_type.name().to_owned(),
            value: value.clone(),
            error: e.to_string(),
        },
        CommandError::OutOfRange { feature, value, min, max } => match (min.is_finite(), max.is_finite()) {
            (true, true) => Say::OutOfRange { feature: feature.clone(), value: *value, min: *min, max: *max },
            (true, false) => Say::TooLow { feature: feature.clone(), value: *value, min: *min },
            _ => Say::TooHigh { feature: feature.clone(), value: *value, max: *max },
        },
        CommandError::UnknownEnumValue { feature, value, allowed } => {
            Say::NotAllowed { feature: feature.clone(), value: value.clone(), allowed: allowed.clone() }
        }
        CommandError::TooLong { feature, length, max_length } => {
            Say::TooLong { feature: feature.clone(), length: *length, max_length: *max_length }
        }
        other => Say::Refused { error: other.to_string() },
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct Checker<'a> {
    catalog: Catalog<'a>,
    faults: Vec<Fault>,
    trigger_ids: Vec<String>,
    own_id: String,
}

/// Every fault of `a`, in document order; empty when it is valid.
pub fn validate(a: &Automation, catalog: Catalog<'_>) -> Vec<Fault> {
    let mut c = Checker {
        catalog,
        faults: Vec::new(),
        trigger_ids: a.triggers.iter().filter_map(|t| t.id.clone()).collect(),
        own_id: a.id.clone(),
    };
    if a.id.is_empty() || !a.id.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_') {
        c.fault("id", Say::NotAnId { id: a.id.clone() });
    }
    if a.name.trim().is_empty() {
        c.fault("name", Say::EmptyName);
    }
    if a.max_runs == 0 {
        c.fault("max_runs", Say::MaxRunsZero);
    }
    if a.triggers.is_empty() {
        c.fault("triggers", Say::NoTriggers);
    }
    if a.actions.is_empty() {
        c.fault("actions", Say::NoActions);
    }
    for (i, t) in a.triggers.iter().enumerate() {
        c.trigger(&format!("triggers[{i}]"), t);
    }
    c.conditions("conditions", &a.conditions);
    c.actions("actions", &a.actions);
    c.faults
}

impl<'a> Checker<'a> {
    fn fault(&mut self, path: &str, say: Say) {
        self.faults.push(Fault::new(path, say));
    }

    /// The devices a target means; faults for what does not exist, and for listed devices
    /// beside an area or capability (which would narrow nothing).
    fn target(&mut self, path: &str, t: &Target) -> Vec<&'a Device> {
        if t.devices.is_empty() && t.area.is_none() && t.capability.is_none() {
            self.fault(path, Say::NamesNoDevice);
            return Vec::new();
        }
        if !t.devices.is_empty() && (t.area.is_some() || t.capability.is_some()) {
            let say = match (&t.area, &t.capability) {
                (Some(_), Some(_)) => Say::DevicesAndAreaAndCapability,
                (Some(_), None) => Say::DevicesAndArea,
                _ => Say::DevicesAndCapability,
            };
            self.fault(path, say);
        }
        let mut out = Vec::new();
        for (i, id) in t.devices.iter().enumerate() {
            match self.catalog.devices.iter().find(|d| &d.id == id) {
                Some(d) => out.push(d),
                None => self.fault(&format!("{path}.devices[{i}]"), Say::NoDevice { device: id.to_string() }),
            }
        }
        if let Some(area) = &t.area
            && !self.catalog.areas.iter().any(|a| &a.id == area)
        {
            let areas = self.catalog.areas.iter().map(|a| a.id.clone()).collect();
            self.fault(&format!("{path}.area"), Say::NoArea { area: area.clone(), areas });
            return out;
        }
        if t.devices.is_empty() {
            let cap = t.capability;
            out.extend(self.catalog.devices.iter().filter(|d| {
                t.area.as_ref().is_none_or(|a| d.area.as_ref() == Some(a))
                    && cap.is_none_or(|c| d.features.iter().any(|f| f.capability == c))
            }));
            if out.is_empty() {
                self.fault(path, Say::NoDeviceMatchesTarget);
            }
        }
        out
    }

    /// The feature on each device (at least one, for area targets).
    fn features(&mut self, path: &str, devices: &[&'a Device], key: &str, explicit: bool) -> Vec<&'a Feature> {
        let mut found = Vec::new();
        for d in devices {
            match d.feature(key) {
                Some(f) => found.push(f),
                None if explicit => {
                    let features = d.features.iter().map(|f| f.key.clone()).collect();
                    self.fault(path, Say::NoFeature { device: d.id.to_string(), feature: key.to_owned(), features });
                }
                None => {}
            }
        }
        if !explicit && found.is_empty() && !devices.is_empty() {
            self.fault(path, Say::NoFeatureInTarget { feature: key.to_owned() });
        }
        found
    }

    /// Values compared with features must have their type; `above`/`below` need numbers.
    fn compare(&mut self, path: &str, features: &[&Feature], values: &[(&str, &Option<Value>)], numeric: bool) {
        for f in features {
            for (key, value) in values {
                if let Some(v) = value
                    && let Err(e @ CommandError::WrongType { .. }) = check_value(f, v)
                {
                    self.fault(&format!("{path}.{key}"), refused(f, &e));
                }
            }
            if numeric && !matches!(f.value_type, ValueType::Number { .. }) {
                let value_type = f.value_type.name().to_owned();
                self.fault(path, Say::NeedsNumber { feature: f.key.clone(), value_type });
            }
        }
    }

    fn trigger(&mut self, path: &str, t: &Trigger) {
        self.trigger_kind(path, &t.kind);
    }

    fn trigger_kind(&mut self, path: &str, t: &TriggerKind) {
        match t {
            TriggerKind::State { target, feature, from, to, above, below, .. } => {
                let p = format!("{path}.state");
                let devices = self.target(&p, target);
                let feats = self.features(&format!("{p}.feature"), &devices, feature, !target.devices.is_empty());
                self.compare(&p, &feats, &[("from", from), ("to", to)], above.is_some() || below.is_some());
            }
            TriggerKind::Event { target, feature, events } => {
                let p = format!("{path}.event");
                let devices = self.target(&p, target);
                let feats = self.features(&format!("{p}.feature"), &devices, feature, !target.devices.is_empty());
                for f in feats {
                    if let ValueType::Enum { values } = &f.value_type {
                        for (i, e) in events.iter().enumerate() {
                            if !values.contains(e) {
                                self.fault(
                                    &format!("{p}.events[{i}]"),
                                    Say::NotAnEvent {
                                        event: e.clone(),
                                        feature: f.key.clone(),
                                        events: values.clone(),
                                    },
                                );
                            }
                        }
                    }
                }
            }
            TriggerKind::Availability { target, .. } => {
                self.target(&format!("{path}.availability"), target);
            }
            TriggerKind::Interval { every } if every.as_millis() < 1000 => {
                self.fault(&format!("{path}.interval.every"), Say::TooOften { every: *every });
            }
            TriggerKind::Sun { offset_secs, .. } => {
                if offset_secs.abs() > 12 * 3600 {
                    self.fault(&format!("{path}.sun.offset_secs"), Say::OffsetTooLarge);
                }
                if !self.catalog.location {
                    self.fault(&format!("{path}.sun"), Say::SunNeedsLocation);
                }
            }
            TriggerKind::Mqtt { topic, .. } => {
                let ok = !topic.is_empty()
                    && topic.split('/').enumerate().all(|(i, level)| {
                        (level == "#" && i == topic.split('/').count() - 1)
                            || level == "+"
                            || !(level.contains('#') || level.contains('+'))
                    });
                if !ok {
                    self.fault(&format!("{path}.mqtt.topic"), Say::NotATopicFilter { topic: topic.clone() });
                }
            }
            _ => {}
        }
    }

    fn conditions(&mut self, path: &str, list: &[Condition]) {
        for (i, c) in list.iter().enumerate() {
            self.condition(&format!("{path}[{i}]"), c);
        }
    }

    fn condition(&mut self, path: &str, c: &Condition) {
        match c {
            Condition::State { target, feature, is, above, below, .. } => {
                let p = format!("{path}.state");
                if is.is_none() && above.is_none() && below.is_none() {
                    self.fault(&p, Say::AlwaysHolds);
                }
                let devices = self.target(&p, target);
                let feats = self.features(&format!("{p}.feature"), &devices, feature, !target.devices.is_empty());
                self.compare(&p, &feats, &[("is", is)], above.is_some() || below.is_some());
            }
            Condition::Time { after: Some(after), before: Some(before), .. } if after == before => {
                self.fault(&format!("{path}.time"), Say::EmptyWindow { time: after.to_string() });
            }
            Condition::Sun { above, below } => {
                if !self.catalog.location {
                    self.fault(&format!("{path}.sun"), Say::SunNeedsLocation);
                }
                for (k, v) in [("above", above), ("below", below)] {
                    if v.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
                        self.fault(&format!("{path}.sun.{k}"), Say::BadElevation);
                    }
                }
            }
            Condition::Trigger { id } if !self.trigger_ids.contains(id) => {
                let triggers = self.trigger_ids.clone();
                self.fault(&format!("{path}.trigger.id"), Say::NoTriggerId { trigger: id.clone(), triggers });
            }
            Condition::And(all) => self.conditions(&format!("{path}.and"), all),
            Condition::Or(any) => self.conditions(&format!("{path}.or"), any),
            Condition::Not(inner) => self.condition(&format!("{path}.not"), inner),
            _ => {}
        }
    }

    fn actions(&mut self, path: &str, list: &[Action]) {
        for (i, a) in list.iter().enumerate() {
            self.action(&format!("{path}[{i}]"), a);
        }
    }

    fn action(&mut self, path: &str, a: &Action) {
        match &a.kind {
            ActionKind::Set { target, values, toggle, transition } => {
                let p = format!("{path}.set");
                if values.is_empty() && toggle.is_empty() {
                    self.fault(&p, Say::SetsNothingGive);
                }
                let devices = self.target(&p, target);
                let explicit = !target.devices.is_empty();
                for (key, v) in values {
                    for f in self.features(&format!("{p}.{key}"), &devices, key, explicit) {
                        if !f.access.set {
                            self.fault(&format!("{p}.{key}"), Say::ReadOnly { feature: key.clone() });
                        } else if let Err(e) = check_value(f, v) {
                            self.fault(&format!("{p}.{key}"), refused(f, &e));
                        }
                    }
                }
                for key in toggle {
                    for f in self.features(&format!("{p}.toggle"), &devices, key, explicit) {
                        if !(f.access.set && f.value_type == ValueType::Bool) {
                            self.fault(&format!("{p}.toggle"), Say::NotToggleable { feature: key.clone() });
                        }
                    }
                }
                if transition.is_some_and(|t| !(0.0..=3600.0).contains(&t)) {
                    self.fault(&format!("{p}.transition"), Say::BadTransition);
                }
            }
            ActionKind::Scene { id, .. } if !self.catalog.scenes.contains(id) => {
                self.fault(&format!("{path}.scene.id"), Say::NoScene { scene: id.clone() });
            }
            ActionKind::Wait { triggers, .. } => {
                if triggers.is_empty() {
                    self.fault(&format!("{path}.wait.triggers"), Say::WaitNeedsTrigger);
                }
                for (i, t) in triggers.iter().enumerate() {
                    self.trigger_kind(&format!("{path}.wait.triggers[{i}]"), t);
                }
            }
            ActionKind::If { conditions, then, otherwise } => {
                self.conditions(&format!("{path}.if.conditions"), conditions);
                self.actions(&format!("{path}.if.then"), then);
                self.actions(&format!("{path}.if.else"), otherwise);
            }
            ActionKind::Choose { options, default } => {
                for (i, o) in options.iter().enumerate() {
                    self.conditions(&format!("{path}.choose.options[{i}].conditions"), &o.conditions);
                    self.actions(&format!("{path}.choose.options[{i}].actions"), &o.actions);
                }
                self.actions(&format!("{path}.choose.default"), default);
            }
            ActionKind::Repeat { count, while_all, until, actions } => {
                if count.is_none() && while_all.is_empty() && until.is_empty() {
                    self.fault(&format!("{path}.repeat"), Say::NeverEnds);
                }
                self.conditions(&format!("{path}.repeat.while"), while_all);
                self.conditions(&format!("{path}.repeat.until"), until);
                self.actions(&format!("{path}.repeat.actions"), actions);
            }
            ActionKind::Parallel(branches) => {
                for (i, b) in branches.iter().enumerate() {
                    self.actions(&format!("{path}.parallel[{i}]"), b);
                }
            }
            ActionKind::Mqtt { topic, payload, .. } => {
                if topic.is_empty() || topic.contains(['+', '#']) {
                    self.fault(&format!("{path}.mqtt.topic"), Say::NotPublishable { topic: topic.clone() });
                }
                self.template(&format!("{path}.mqtt.topic"), topic);
                self.template(&format!("{path}.mqtt.payload"), payload);
            }
            ActionKind::Webhook { url, method, body } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    self.fault(&format!("{path}.webhook.url"), Say::NotAnAddress { url: url.clone() });
                }
                if let Some(m) = method
                    && !["GET", "POST", "PUT", "DELETE"].contains(&m.to_uppercase().as_str())
                {
                    self.fault(&format!("{path}.webhook.method"), Say::NotAMethod { method: m.clone() });
                }
                if let Some(b) = body {
                    self.template(&format!("{path}.webhook.body"), b);
                }
            }
            ActionKind::Notify { message, title } => {
                self.template(&format!("{path}.notify.message"), message);
                if let Some(t) = title {
                    self.template(&format!("{path}.notify.title"), t);
                }
            }
            ActionKind::Enable(id) | ActionKind::Disable(id)
                if !self.catalog.automations.contains(id) && *id != self.own_id =>
            {
                let verb = if matches!(a.kind, ActionKind::Enable(_)) { "enable" } else { "disable" };
                self.fault(&format!("{path}.{verb}"), Say::NoAutomation { automation: id.clone() });
            }
            _ => {}
        }
    }
}

impl Checker<'_> {
    fn template(&mut self, path: &str, text: &str) {
        if let Err(e) = crate::matching::template_names(text) {
            self.fault(path, e);
        }
    }
}

/// Every fault of a scene: devices and features that do not exist or cannot be set, values that
/// do not fit.
pub fn validate_scene(scene: &Scene, catalog: Catalog<'_>) -> Vec<Fault> {
    let mut faults = Vec::new();
    let mut fault = |path: String, say: Say| faults.push(Fault::new(path, say));
    if scene.id.is_empty() || !scene.id.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_') {
        fault("id".into(), Say::NotAnId { id: scene.id.clone() });
    }
    if scene.name.trim().is_empty() {
        fault("name".into(), Say::EmptyName);
    }
    if scene.devices.is_empty() {
        fault("devices".into(), Say::SceneNeedsDevice);
    }
    for (id, values) in &scene.devices {
        let Some(d) = catalog.devices.iter().find(|d| &d.id == id) else {
            fault(format!("devices.{id}"), Say::NoDevice { device: id.to_string() });
            continue;
        };
        if values.is_empty() {
            fault(format!("devices.{id}"), Say::SetsNothing);
        }
        for (key, v) in values {
            let path = format!("devices.{id}.{key}");
            match d.feature(key) {
                None => {
                    let features = d.features.iter().map(|f| f.key.clone()).collect();
                    fault(path, Say::NoFeature { device: id.to_string(), feature: key.clone(), features });
                }
                Some(f) if !f.access.set => fault(path, Say::ReadOnly { feature: key.clone() }),
                Some(f) => {
                    if let Err(e) = check_value(f, v) {
                        fault(path, refused(f, &e));
                    }
                }
            }
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Access, Capability, DeviceDescriptor, DeviceId};
    use serde_json::json;

    fn home() -> (Vec<Device>, Vec<Area>) {
        let lamp = DeviceDescriptor::new(
            DeviceId::new("demo", "living_lamp"),
            "Lamp",
            vec![
                Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
                Feature::new(
                    "brightness",
                    Capability::Brightness,
                    ValueType::range(0.0, 100.0, 1.0),
                    Access::READ_WRITE,
                ),
            ],
        );
        let action = ValueType::enumeration(["single", "double", "hold"]);
        let button = DeviceDescriptor::new(
            DeviceId::new("demo", "hall_button"),
            "Button",
            vec![Feature::new("action", Capability::Action, action, Access::EVENT)],
        );
        let mut lamp = Device::from_descriptor(lamp);
        lamp.area = Some("living_room".into());
        let button = Device::from_descriptor(button);
        (vec![lamp, button], vec![Area { id: "living_room".into(), name: "Living room".into(), order: 0 }])
    }

    fn faults(v: serde_json::Value) -> Vec<String> {
        let (devices, areas) = home();
        let a: Automation = serde_json::from_value(v).expect("parses");
        let ids = vec![a.id.clone()];
        validate(
            &a,
            Catalog {
                devices: &devices,
                areas: &areas,
                scenes: &["evening".into()],
                automations: &ids,
                location: false,
            },
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn a_valid_automation_has_no_faults() {
        let f = faults(json!({"id": "button_toggles_lamp", "name": "Button toggles the lamp",
            "triggers": [{"id": "press", "event": {"devices": ["demo:hall_button"], "events": ["single"]}}],
            "conditions": [{"trigger": {"id": "press"}}],
            "actions": [{"set": {"devices": ["demo:living_lamp"], "toggle": ["state"]}},
                        {"set": {"area": "living_room", "capability": "brightness", "values": {"brightness": 40.0}}},
                        {"scene": {"id": "evening"}}]}));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn each_fault_names_its_path() {
        let f = faults(json!({"id": "Bad Id", "name": " ",
        "triggers": [
            {"event": {"devices": ["demo:hall_button"], "events": ["triple"]}},
            {"state": {"devices": ["demo:nope"], "feature": "state"}},
            {"mqtt": {"topic": "a/#/b"}}
        ],
        "conditions": [{"not": {"trigger": {"id": "ghost"}}}, {"state": {"area": "attic", "feature": "state", "is": true}}],
        "actions": [
            {"delay": "1s"},
            {"delay": "1s"},
            {"set": {"devices": ["demo:living_lamp"], "values": {"brightness": 140.0, "colour": 1}}},
            {"if": {"conditions": [], "then": [{"scene": {"id": "party"}}]}},
            {"repeat": {"actions": [{"enable": "elsewhere"}]}},
            {"mqtt": {"topic": "hearth/#", "payload": "x"}}
        ]}));
        assert_eq!(
            f,
            [
                "id: `Bad Id` is not an id: use lowercase letters, digits and _",
                "name: must not be empty",
                "triggers[0].event.events[0]: `triple` is not an event of `action`; its events are: single, double, hold",
                "triggers[1].state.devices[0]: no device `demo:nope`",
                "triggers[2].mqtt.topic: `a/#/b` is not a topic filter: `+` stands for a whole level, `#` only at the end",
                "conditions[0].not.trigger.id: no trigger has the id `ghost`; trigger ids are: (none)",
                "conditions[1].state.area: no area `attic`; areas are: living_room",
                "actions[2].set.brightness: feature `brightness` takes 0 to 100, not 140",
                "actions[2].set.colour: device `demo:living_lamp` has no feature `colour`; its features are: state, brightness",
                "actions[3].if.then[0].scene.id: no scene `party`",
                "actions[4].repeat: give `count`, `while` or `until`, or it would never end",
                "actions[4].repeat.actions[0].enable: no automation `elsewhere`",
                "actions[5].mqtt.topic: `hearth/#` cannot be published to: a topic has no `+` or `#`",
            ]
        );
    }

    #[test]
    fn compared_values_must_fit_the_feature() {
        let f = faults(json!({"id": "x", "name": "X",
            "triggers": [{"state": {"devices": ["demo:living_lamp"], "feature": "state", "to": "yes"}}],
            "conditions": [{"state": {"devices": ["demo:living_lamp"], "feature": "state", "above": 3.0}},
                           {"state": {"area": "living_room", "feature": "brightness", "is": true}}],
            "actions": [{"delay": "1s"}]}));
        assert_eq!(
            f,
            [
                "triggers[0].state.to: feature `state` takes true or false, not text \"yes\"",
                "conditions[0].state: `above` and `below` need a number feature; `state` is bool",
                "conditions[1].state.is: feature `brightness` takes a number, not bool true",
            ]
        );
    }

    #[test]
    fn templates_and_the_sun_are_checked() {
        let f = faults(json!({"id": "t", "name": "T",
            "triggers": [{"sun": {"event": "sunset"}}],
            "conditions": [{"sun": {"below": 0.0}}],
            "actions": [{"mqtt": {"topic": "out/{{ trigger.topic }}", "payload": "{{ trigger.colour }}"}},
                        {"notify": {"message": "{{ now() }}"}},
                        {"webhook": {"url": "http://127.0.0.1:9/x", "method": "BREW"}},
                        {"disable": "t"}]}));
        assert_eq!(
            f,
            [
                "triggers[0].sun: the sun needs the home's location: set latitude and longitude under [location] in hearth.toml",
                "conditions[0].sun: the sun needs the home's location: set latitude and longitude under [location] in hearth.toml",
                "actions[0].mqtt.payload: `trigger.colour` is not known; use one of: id, kind, device, feature, value, old, event, topic, payload, body, at, description",
                "actions[1].notify.message: `{{ now() }}`: only `trigger.<name>` can be used here",
                "actions[2].webhook.method: `BREW` is not GET, POST, PUT or DELETE",
            ]
        );
    }

    #[test]
    fn listed_devices_take_no_area_or_capability() {
        let f = faults(json!({"id": "x", "name": "X",
        "triggers": [
            {"state": {"devices": ["demo:living_lamp"], "area": "living_room", "feature": "state"}},
            {"availability": {"devices": ["demo:hall_button"], "capability": "action"}},
            {"event": {"area": "living_room", "capability": "on_off", "feature": "state"}}
        ],
        "conditions": [{"state": {"devices": ["demo:living_lamp"], "area": "living_room", "capability": "on_off",
            "feature": "state", "is": true}}],
        "actions": [
            {"set": {"devices": ["demo:living_lamp"], "capability": "on_off", "values": {"state": true}}},
            {"set": {"area": "living_room", "capability": "on_off", "values": {"state": true}}},
            {"wait": {"triggers": [{"event": {"devices": ["demo:hall_button"], "area": "hall"}}]}}
        ]}));
        let either = "give either `devices`, or an `area` and/or a `capability`";
        assert_eq!(
            f,
            [
                format!("triggers[0].state: names `devices` and also an `area`: {either}"),
                format!("triggers[1].availability: names `devices` and also a `capability`: {either}"),
                format!("conditions[0].state: names `devices` and also an `area` and a `capability`: {either}"),
                format!("actions[0].set: names `devices` and also a `capability`: {either}"),
                format!("actions[2].wait.triggers[0].event: names `devices` and also an `area`: {either}"),
                "actions[2].wait.triggers[0].event.area: no area `hall`; areas are: living_room".to_owned(),
            ]
        );
    }

    #[test]
    fn a_time_window_must_not_be_empty() {
        let f = faults(json!({"id": "x", "name": "X",
            "triggers": [{"start": {}}],
            "conditions": [
                {"time": {"after": "22:00", "before": "22:00"}},
                {"not": {"time": {"after": "07:30:15", "before": "07:30:15", "weekdays": ["mon"]}}},
                {"time": {"after": "22:00", "before": "06:00"}},
                {"time": {"after": "06:00", "before": "22:00"}},
                {"time": {"after": "22:00"}},
                {"time": {"before": "22:00"}}
            ],
            "actions": [{"if": {"conditions": [{"time": {"after": "00:00", "before": "00:00"}}], "then": []}}]}));
        assert_eq!(
            f,
            [
                "conditions[0].time: `after` and `before` are both 22:00: an empty window that never holds (leave \
                 both out for the whole day)",
                "conditions[1].not.time: `after` and `before` are both 07:30:15: an empty window that never holds \
                 (leave both out for the whole day)",
                "actions[0].if.conditions[0].time: `after` and `before` are both 00:00: an empty window that never \
                 holds (leave both out for the whole day)",
            ]
        );
    }

    #[test]
    fn a_state_condition_compares_something() {
        let f = faults(json!({"id": "x", "name": "X",
            "triggers": [{"start": {}}],
            "conditions": [
                {"state": {"devices": ["demo:living_lamp"], "feature": "state"}},
                {"or": [{"state": {"area": "living_room", "feature": "brightness", "match": "any"}}]},
                {"state": {"devices": ["demo:living_lamp"], "feature": "state", "is": false}},
                {"state": {"devices": ["demo:living_lamp"], "feature": "brightness", "above": 10.0}},
                {"state": {"devices": ["demo:living_lamp"], "feature": "brightness", "below": 90.0}}
            ],
            "actions": [{"repeat": {"until": [{"state": {"devices": ["demo:living_lamp"], "feature": "state"}}],
                "actions": [{"delay": "1s"}]}}]}));
        assert_eq!(
            f,
            [
                "conditions[0].state: always holds: give `is`, `above` or `below`",
                "conditions[1].or[0].state: always holds: give `is`, `above` or `below`",
                "actions[0].repeat.until[0].state: always holds: give `is`, `above` or `below`",
            ]
        );
    }

    #[test]
    fn a_state_trigger_with_only_for_means_unchanged_that_long() {
        // "Changed, and then stayed unchanged for 5m": allowed, as are the usual forms.
        let f = faults(json!({"id": "x", "name": "X",
            "triggers": [
                {"state": {"devices": ["demo:living_lamp"], "feature": "brightness", "for": "5m"}},
                {"state": {"area": "living_room", "feature": "state", "for": "1m"}},
                {"state": {"devices": ["demo:living_lamp"], "feature": "state"}},
                {"state": {"devices": ["demo:living_lamp"], "feature": "state", "to": true, "for": "1m"}}
            ],
            "actions": [{"wait": {"triggers": [{"state": {"devices": ["demo:living_lamp"], "feature": "state", "for": "10s"}}]}}]}));
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn scenes_are_checked_against_the_devices() {
        let (devices, areas) = home();
        let catalog = Catalog { devices: &devices, areas: &areas, scenes: &[], automations: &[], location: false };
        let scene: Scene = serde_json::from_value(json!({"id": "evening", "name": "Evening", "devices": {
            "demo:living_lamp": {"brightness": 140.0, "colour": "red"},
            "demo:hall_button": {"action": "single"},
            "demo:gone": {"state": true}}}))
        .expect("parses");
        let f: Vec<String> = validate_scene(&scene, catalog).iter().map(ToString::to_string).collect();
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f[0], "devices.demo:gone: no device `demo:gone`");
        assert_eq!(f[1], "devices.demo:hall_button.action: feature `action` is read-only");
        assert!(f[2].starts_with("devices.demo:living_lamp.brightness: "), "{f:?}");
        assert!(f[3].starts_with("devices.demo:living_lamp.colour: device `demo:living_lamp` has no feature `colour`"));
    }
}
