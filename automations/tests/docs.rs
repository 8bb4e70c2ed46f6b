#![allow(clippy::unwrap_used)]
use std::sync::Arc;

use hearth_automations::clock::{Clock, ManualClock};
use hearth_automations::engine::{Engine, Output, Settings};
use hearth_automations::model::Automation;
use hearth_automations::trace::Trace;
use hearth_sdk::{
    Access, Availability, AvailabilityState, Capability, Context, Device, DeviceDescriptor, DeviceId, Event, Feature,
    FeatureState, Origin, Timestamp, Value, ValueType,
};
use serde_json::json;

fn t0() -> Timestamp {
    "2026-11-27T20:00:00Z".parse().unwrap()
}

fn dev(id: &str, area: &str, features: Vec<Feature>, state: &[(&str, Value)], at: Timestamp) -> Device {
    let mut d = Device::from_descriptor(DeviceDescriptor::new(DeviceId::new("demo", id), id, features));
    d.area = Some(area.into());
    d.availability = Availability { state: AvailabilityState::Online, reason: None, since: None };
    for (k, v) in state {
        d.state.insert((*k).into(), FeatureState { value: v.clone(), changed_at: at, reported_at: at });
    }
    d
}

fn home(at: Timestamp) -> Vec<Device> {
    let light = || {
        vec![
            Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
            Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
        ]
    };
    vec![
        dev(
            "hall_light",
            "hallway",
            light(),
            &[("state", Value::Bool(false)), ("brightness", Value::Number(10.0))],
            at,
        ),
        dev(
            "living_lamp",
            "living_room",
            vec![Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE)],
            &[("state", Value::Bool(true))],
            at,
        ),
        dev(
            "hall_motion",
            "hallway",
            vec![Feature::new("occupancy", Capability::Occupancy, ValueType::Bool, Access::READ_ONLY)],
            &[("occupancy", Value::Bool(false))],
            at,
        ),
        dev(
            "hall_button",
            "hallway",
            vec![Feature::new(
                "action",
                Capability::Action,
                ValueType::enumeration(["single", "double", "hold"]),
                Access::EVENT,
            )],
            &[],
            at,
        ),
    ]
}

struct Rig {
    clock: Arc<ManualClock>,
    engine: Engine,
    traces: Vec<Trace>,
}

impl Rig {
    fn new(at: Timestamp, dev_at: Timestamp) -> Rig {
        let clock = Arc::new(ManualClock::new(at));
        let mut engine = Engine::new(clock.clone(), Settings::default());
        engine.set_devices(home(dev_at));
        Rig { clock, engine, traces: Vec::new() }
    }
    fn add(&mut self, v: serde_json::Value, version: u32) {
        let a: Automation = serde_json::from_value(v).unwrap();
        self.engine.upsert(a, version);
    }
    fn out(&mut self) -> Vec<Output> {
        let o = self.engine.take_outputs();
        self.traces.extend(self.engine.take_traces());
        o
    }
    fn cmds(&mut self) -> Vec<String> {
        self.out()
            .into_iter()
            .filter_map(|o| match o {
                Output::Command { device, request, .. } => {
                    Some(format!("{device} {}", serde_json::to_string(&request).unwrap()))
                }
                Output::Publish { topic, payload, .. } => Some(format!("pub {topic} {payload}")),
                Output::Notify { message, .. } => Some(format!("notify {message}")),
                _ => None,
            })
            .collect()
    }
    fn adv(&mut self, s: i64) {
        self.clock.advance(s * 1000);
        self.engine.tick();
    }
    fn state(&mut self, id: &str, feature: &str, new: Value) {
        let device = DeviceId::new("demo", id);
        let old = self.engine.devices().find(|d| d.id == device).and_then(|d| d.value(feature).cloned());
        let now = self.clock.now();
        self.engine.event(&Event::StateChanged {
            device,
            feature: feature.into(),
            old,
            new,
            at: now,
            context: Context::new(format!("d{}", now.as_millis()), Origin::Device),
        });
    }
    fn press(&mut self, e: &str) {
        let now = self.clock.now();
        self.engine.event(&Event::DeviceEvent {
            device: DeviceId::new("demo", "hall_button"),
            feature: "action".into(),
            event: e.into(),
            data: None,
            at: now,
            context: Context::new("p", Origin::Device),
        });
    }
}

#[test]
fn a_for_without_to() {
    let mut r = Rig::new(t0(), t0());
    r.add(json!({"id": "a", "name": "A", "triggers": [{"state": {"devices": ["demo:hall_light"], "feature": "brightness", "for": "1m"}}],
        "actions": [{"notify": {"message": "{{ trigger.value }} {{ trigger.at }} {{ trigger.old }}"}}]}), 1);
    r.adv(1);
    r.state("hall_light", "brightness", Value::Number(20.0));
    r.adv(50);
    r.state("hall_light", "brightness", Value::Number(30.0));
    r.adv(11);
    println!("A after 61s from first change: {:?}", r.cmds());
    r.adv(60);
    println!("A later: {:?}", r.cmds());
}

#[test]
fn b_rearm_on_restart_and_edit() {
    let long_ago: Timestamp = "2026-11-20T20:00:00Z".parse().unwrap();
    let mut r = Rig::new(t0(), long_ago);
    let def = json!({"id": "b", "name": "B", "triggers": [{"state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": false, "for": "2m"}}],
        "actions": [{"notify": {"message": "off {{ trigger.description }} at {{ trigger.at }}"}}]});
    r.add(def.clone(), 1);
    r.engine.start(None);
    println!("B at start: {:?}", r.cmds());
    r.adv(1);
    println!("B after tick: {:?}", r.cmds());
    let mut d2 = def.clone();
    d2["name"] = json!("B2");
    r.add(d2, 2);
    r.adv(1);
    println!("B after edit: {:?}", r.cmds());
    r.engine.set_enabled("b", false).unwrap();
    r.engine.set_enabled("b", true).unwrap();
    r.adv(1);
    println!("B after off/on: {:?}", r.cmds());
}

#[test]
fn c_time_window_equal() {
    let mut r = Rig::new(t0(), t0());
    r.add(
        json!({"id": "c", "name": "C", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "conditions": [{"time": {"after": "08:00", "before": "08:00"}}],
        "actions": [{"notify": {"message": "yes"}}]}),
        1,
    );
    r.press("single");
    println!("C: {:?} {:?}", r.cmds(), r.traces.last().unwrap().conditions);
}

#[test]
fn d_wait_availability_for() {
    let mut r = Rig::new(t0(), t0());
    r.add(json!({"id": "d", "name": "D", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"wait": {"triggers": [{"availability": {"devices": ["demo:hall_motion"], "to": "offline", "for": "10s"}}]}}, {"notify": {"message": "went"}}]}), 1);
    r.press("single");
    r.engine.event(&Event::AvailabilityChanged {
        device: DeviceId::new("demo", "hall_motion"),
        availability: Availability { state: AvailabilityState::Offline, reason: None, since: None },
    });
    r.adv(60);
    println!("D: {:?} runs {:?}", r.cmds(), r.engine.runs().len());
}

#[test]
fn e_manual_disabled() {
    let mut r = Rig::new(t0(), t0());
    r.add(
        json!({"id": "e", "name": "E", "enabled": false, "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"notify": {"message": "ran {{ trigger.kind }} [{{ trigger.id }}]"}}]}),
        1,
    );
    let id = r.engine.trigger("e", "alice", false);
    println!("E: {id:?} {:?}", r.cmds());
    r.press("single");
    println!("E press: {:?}", r.cmds());
}

#[test]
fn g_devices_and_area() {
    let mut r = Rig::new(t0(), t0());
    r.add(
        json!({"id": "g", "name": "G", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "area": "hallway", "values": {"state": true}}},
                    {"set": {"area": "hallway", "values": {"state": true, "brightness": 50.0}}},
                    {"set": {"capability": "on_off", "values": {"brightness": 50.0}}}]}),
        1,
    );
    r.press("single");
    println!("G: {:?}", r.cmds());
    println!("G steps: {:?}", r.traces.last().unwrap().steps.iter().map(|s| &s.outcome).collect::<Vec<_>>());
}

#[test]
fn i_repeat() {
    let mut r = Rig::new(t0(), t0());
    r.add(json!({"id": "i", "name": "I", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"repeat": {"until": [{"state": {"devices": ["demo:hall_light"], "feature": "state", "is": false}}], "actions": [{"notify": {"message": "round"}}]}},
                    {"repeat": {"while": [{"state": {"devices": ["demo:hall_light"], "feature": "state", "is": true}}], "actions": [{"notify": {"message": "never"}}]}},
                    {"repeat": {"count": 2, "actions": [{"notify": {"message": "c"}}]}}]}), 1);
    r.press("single");
    println!("I: {:?}", r.cmds());
    println!(
        "I steps: {:?}",
        r.traces.last().unwrap().steps.iter().map(|s| (&s.path, &s.action, &s.outcome)).collect::<Vec<_>>()
    );
}

#[test]
fn j_wait_templates_and_queued_conditions() {
    let mut r = Rig::new(t0(), t0());
    r.add(json!({"id": "j", "name": "J", "mode": "queued", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "conditions": [{"state": {"devices": ["demo:hall_light"], "feature": "state", "is": false}}],
        "actions": [{"wait": {"triggers": [{"mqtt": {"topic": "x/y"}}], "timeout": "10s", "continue_on_timeout": true}}, {"notify": {"message": "{{ trigger.kind }} {{ trigger.event }} {{ trigger.payload }}"}}]}), 1);
    r.press("single");
    r.press("double");
    r.state("hall_light", "state", Value::Bool(true));
    r.engine.mqtt("x/y", "hello");
    println!("J1: {:?}", r.cmds());
    r.adv(11);
    println!("J2: {:?}", r.cmds());
    println!(
        "J traces: {:?}",
        r.traces
            .iter()
            .map(|t| (t.ending.clone(), t.steps.iter().map(|s| s.outcome.clone()).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn l_disable_self() {
    let mut r = Rig::new(t0(), t0());
    r.add(
        json!({"id": "l", "name": "L", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"disable": "l"}, {"notify": {"message": "after"}}]}),
        1,
    );
    r.press("single");
    println!("L: {:?} {:?}", r.cmds(), r.traces.last().unwrap().ending);
}

#[test]
fn p_availability() {
    let mut r = Rig::new(t0(), t0());
    r.add(json!({"id": "p", "name": "P", "triggers": [{"availability": {"area": "hallway", "to": "offline", "for": "10s"}}],
        "actions": [{"notify": {"message": "{{ trigger.device }} {{ trigger.description }}"}}]}), 1);
    r.engine.event(&Event::AvailabilityChanged {
        device: DeviceId::new("demo", "hall_motion"),
        availability: Availability { state: AvailabilityState::Offline, reason: None, since: None },
    });
    r.adv(5);
    r.engine.event(&Event::AvailabilityChanged {
        device: DeviceId::new("demo", "hall_motion"),
        availability: Availability { state: AvailabilityState::Offline, reason: Some("x".into()), since: None },
    });
    r.adv(6);
    println!("P: {:?}", r.cmds());
}

#[test]
fn f_yaml() {
    let y = "id: y\nname: Y\ntriggers:\n- time:\n    at: 07:30\n- state:\n    devices: [demo:hall_light]\n    feature: state\n    to: on\nactions:\n- delay: 30\n";
    println!("F: {:?}", hearth_automations::text::automation_from_yaml(y));
}
