//! The engine on a hand-moved clock: triggers (state with `for`, event, time, interval, sun,
//! MQTT, start), run modes, durable delays across a restart, catch-up, waits, loop protection,
//! traces and dry runs. Deterministic: no test reads the system clock or sleeps.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use hearth_automations::clock::ManualClock;
use hearth_automations::engine::{Engine, Output, RunRecord, Settings, ThreadState};
use hearth_automations::model::{Automation, Scene};
use hearth_automations::sun::{self, Location, SunEvent};
use hearth_automations::trace::{EndKind, Trace};
use hearth_automations::zone::Zone;
use hearth_sdk::{
    Access, Availability, AvailabilityState, Capability, Context, Device, DeviceDescriptor, DeviceId, Event, Feature,
    FeatureState, Origin, Timestamp, Value, ValueType,
};
use serde_json::json;

/// Friday 2026-11-27 20:00 UTC.
fn friday_evening() -> Timestamp {
    "2026-11-27T20:00:00Z".parse().unwrap()
}

fn device(id: &str, area: &str, features: Vec<Feature>, state: &[(&str, Value)], at: Timestamp) -> Device {
    let mut d = Device::from_descriptor(DeviceDescriptor::new(DeviceId::new("demo", id), id, features));
    d.area = Some(area.into());
    d.availability = Availability { state: AvailabilityState::Online, reason: None, code: None, since: None };
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
        device("hall_light", "hallway", light(), &[("state", Value::Bool(false))], at),
        device("hall_lamp", "hallway", light(), &[("state", Value::Bool(false))], at),
        device("living_lamp", "living_room", light(), &[("state", Value::Bool(true))], at),
        device(
            "hall_motion",
            "hallway",
            vec![Feature::new("occupancy", Capability::Occupancy, ValueType::Bool, Access::READ_ONLY)],
            &[("occupancy", Value::Bool(false))],
            at,
        ),
        device(
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
        device(
            "living_climate",
            "living_room",
            vec![Feature::new("temperature", Capability::Temperature, ValueType::number(), Access::READ_ONLY)],
            &[("temperature", Value::Number(21.0))],
            at,
        ),
    ]
}

struct Rig {
    clock: Arc<ManualClock>,
    engine: Engine,
    traces: Vec<Trace>,
    saved: BTreeMap<u64, RunRecord>,
}

impl Rig {
    fn new(at: Timestamp, settings: Settings) -> Rig {
        let clock = Arc::new(ManualClock::new(at));
        let mut engine = Engine::new(clock.clone(), settings);
        engine.set_devices(home(at));
        Rig { clock, engine, traces: Vec::new(), saved: BTreeMap::new() }
    }

    fn add(&mut self, v: serde_json::Value) {
        let a: Automation = serde_json::from_value(v).unwrap();
        self.engine.upsert(a, 1);
    }

    /// Outputs so far, keeping saved runs and traces on the side like the hub's store would.
    fn outputs(&mut self) -> Vec<Output> {
        let out = self.engine.take_outputs();
        for o in &out {
            match o {
                Output::SaveRun(r) => {
                    self.saved.insert(r.id, (**r).clone());
                }
                Output::DropRun(id) => {
                    self.saved.remove(id);
                }
                _ => {}
            }
        }
        self.traces.extend(self.engine.take_traces());
        out
    }

    /// Commands sent, as (device native id, the set/toggle JSON).
    fn commands(&mut self) -> Vec<(String, serde_json::Value)> {
        self.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Command { device, request, .. } => {
                    Some((device.native().to_owned(), serde_json::to_value(&request).unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    fn advance_secs(&mut self, s: i64) {
        self.clock.advance(s * 1000);
        self.engine.tick();
    }

    fn now(&self) -> Timestamp {
        use hearth_automations::clock::Clock;
        self.clock.now()
    }

    fn state(&mut self, id: &str, feature: &str, new: Value, context: Option<Context>) {
        let device = DeviceId::new("demo", id);
        let old = self.engine.devices().find(|d| d.id == device).and_then(|d| d.value(feature).cloned());
        let context =
            context.unwrap_or_else(|| Context::new(format!("dev-{}", self.now().as_millis()), Origin::Device));
        self.engine.event(&Event::StateChanged { device, feature: feature.into(), old, new, at: self.now(), context });
    }

    fn press(&mut self, id: &str, event: &str) {
        self.engine.event(&Event::DeviceEvent {
            device: DeviceId::new("demo", id),
            feature: "action".into(),
            event: event.into(),
            data: None,
            at: self.now(),
            context: Context::new("press", Origin::Device),
        });
    }

    fn endings(&self) -> Vec<EndKind> {
        self.traces.iter().filter_map(|t| t.ending.as_ref().map(|e| e.kind)).collect()
    }
}

#[test]
fn a_button_press_toggles_a_light_with_the_automations_context() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "button", "name": "Button", "triggers": [{"event": {"devices": ["demo:hall_button"], "events": ["single"]}}],
        "actions": [{"set": {"devices": ["demo:hall_light"], "toggle": ["state"]}}]}));
    rig.press("hall_button", "double");
    assert!(rig.commands().is_empty(), "a double press is not a single press");
    rig.press("hall_button", "single");
    let out = rig.outputs();
    let [Output::Command { device, request, context, .. }] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(device.to_string(), "demo:hall_light");
    assert_eq!(request.toggle, ["state"]);
    assert_eq!(context.origin, Origin::Automation { id: "button".into() });
    assert_eq!(context.parent.as_deref(), Some("press"), "the context chain leads back to the press");
    let t = &rig.traces[0];
    assert_eq!(t.trigger.description, "demo:hall_button action: single");
    assert_eq!(t.steps[0].outcome, "sent to demo:hall_light");
    assert_eq!(t.ending.as_ref().unwrap().kind, EndKind::Finished);
}

#[test]
fn motion_turns_the_light_on_and_it_goes_off_after_the_for_duration_without_motion() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "motion", "name": "Motion", "mode": "restart",
        "triggers": [
            {"id": "moving", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": true}},
            {"id": "still", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": false, "for": "2m"}}],
        "actions": [{"choose": {"options": [
            {"conditions": [{"trigger": {"id": "moving"}}], "actions": [{"set": {"area": "hallway", "capability": "on_off", "values": {"state": true}}}]}],
            "default": [{"set": {"area": "hallway", "capability": "on_off", "values": {"state": false}}}]}}]}));
    rig.state("hall_motion", "occupancy", Value::Bool(true), None);
    let on = rig.commands();
    assert_eq!(on.len(), 2, "both hallway lights: {on:?}");
    assert!(on.iter().all(|(_, r)| r["set"]["state"] == json!(true)));
    rig.advance_secs(10);
    rig.state("hall_motion", "occupancy", Value::Bool(false), None);
    assert_eq!(rig.engine.next_wakeup(), Some(Timestamp::from_millis(rig.now().as_millis() + 120_000)));
    rig.advance_secs(60);
    assert!(rig.commands().is_empty(), "still within the two minutes");
    // Motion again: the countdown is cancelled, and starts over when it stops.
    rig.state("hall_motion", "occupancy", Value::Bool(true), None);
    assert_eq!(rig.commands().len(), 2);
    rig.state("hall_motion", "occupancy", Value::Bool(false), None);
    rig.advance_secs(119);
    assert!(rig.commands().is_empty(), "119 s after the motion stopped");
    rig.advance_secs(1);
    let off = rig.commands();
    assert_eq!(off.len(), 2, "{off:?}");
    assert!(off.iter().all(|(_, r)| r["set"]["state"] == json!(false)));
    let last = rig.traces.last().unwrap();
    assert_eq!(last.trigger.id.as_deref(), Some("still"));
    assert!(last.trigger.description.contains("stayed so for 2m"), "{}", last.trigger.description);
}

#[test]
fn time_triggers_fire_on_their_weekdays_in_the_households_zone() {
    // Berlin is UTC+1 in November: 07:30 local is 06:30 UTC.
    let zone = Zone::named("Europe/Berlin").unwrap();
    let mut rig = Rig::new(friday_evening(), Settings { zone, ..Settings::default() });
    rig.add(json!({"id": "wake", "name": "Wake", "triggers": [{"time": {"at": "07:30", "weekdays": ["mon", "tue", "wed", "thu", "fri"]}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "values": {"state": true}}}]}));
    let monday: Timestamp = "2026-11-30T06:30:00Z".parse().unwrap();
    assert_eq!(rig.engine.next_wakeup(), Some(monday), "not on the weekend");
    rig.clock.set(Timestamp::from_millis(monday.as_millis() - 1));
    rig.engine.tick();
    assert!(rig.commands().is_empty());
    rig.advance_secs(1);
    assert_eq!(rig.commands().len(), 1);
    assert_eq!(rig.engine.next_wakeup(), Some("2026-12-01T06:30:00Z".parse().unwrap()));
}

#[test]
fn intervals_fire_on_their_boundaries() {
    let mut rig = Rig::new("2026-11-27T20:07:00Z".parse().unwrap(), Settings::default());
    rig.add(json!({"id": "tick", "name": "Tick", "triggers": [{"interval": {"every": "15m"}}],
        "actions": [{"mqtt": {"topic": "hearth/tick", "payload": "{{ trigger.kind }}"}}]}));
    assert_eq!(rig.engine.next_wakeup(), Some("2026-11-27T20:15:00Z".parse().unwrap()));
    let mut published = 0;
    for _ in 0..60 {
        rig.advance_secs(60);
        published += rig
            .outputs()
            .iter()
            .filter(|o| matches!(o, Output::Publish { payload, .. } if payload == "interval"))
            .count();
    }
    assert_eq!(published, 4, "20:15, 20:30, 20:45, 21:00 within the hour up to 21:07");
}

#[test]
fn sun_triggers_use_the_location_and_the_offset() {
    let berlin = Location::new(52.52, 13.405).unwrap();
    let mut rig = Rig::new(friday_evening(), Settings { location: Some(berlin), ..Settings::default() });
    rig.add(json!({"id": "dusk", "name": "Dusk", "triggers": [{"sun": {"event": "sunset", "offset_secs": -1800}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "values": {"state": true}}}]}));
    let sunset = sun::next_event(berlin, SunEvent::Sunset, friday_evening()).unwrap();
    let expected = Timestamp::from_millis(sunset.as_millis() - 1_800_000);
    assert_eq!(rig.engine.next_wakeup(), Some(expected));
    rig.clock.set(expected);
    rig.engine.tick();
    assert_eq!(rig.commands().len(), 1);
}

#[test]
fn a_run_in_a_delay_survives_a_restart_and_acts_once_at_the_right_time() {
    let t0 = friday_evening();
    let def = json!({"id": "later", "name": "Later", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"set": {"devices": ["demo:hall_light"], "values": {"state": true}}},
                    {"delay": "30s"},
                    {"set": {"devices": ["demo:hall_light"], "values": {"state": false}}}]});
    let mut rig = Rig::new(t0, Settings::default());
    rig.add(def.clone());
    rig.press("hall_button", "single");
    assert_eq!(rig.commands().len(), 1, "the first set");
    assert_eq!(rig.saved.len(), 1, "the waiting run is saved");
    rig.advance_secs(10);
    assert!(rig.commands().is_empty());
    // The hub stops here; it comes back 12 s later with a new engine and the saved record.
    let record = serde_json::to_value(rig.saved.values().next().unwrap()).unwrap();
    let mut after = Rig::new(Timestamp::from_millis(t0.as_millis() + 22_000), Settings::default());
    after.add(def);
    after.engine.restore(vec![serde_json::from_value(record).unwrap()]);
    after.saved = rig.saved.clone();
    after.engine.start(Some(Timestamp::from_millis(t0.as_millis() + 10_000)));
    assert!(after.commands().is_empty(), "8 s are left");
    assert_eq!(after.engine.next_wakeup(), Some(Timestamp::from_millis(t0.as_millis() + 30_000)));
    after.advance_secs(7);
    assert!(after.commands().is_empty());
    after.advance_secs(1);
    let cmds = after.commands();
    assert_eq!(cmds, vec![("hall_light".to_owned(), json!({"set": {"state": false}}))]);
    assert!(after.saved.is_empty(), "the finished run is dropped from the store");
    after.advance_secs(60);
    assert!(after.commands().is_empty(), "once");
    let t = after.traces.last().unwrap();
    assert_eq!(t.steps.len(), 3, "{:?}", t.steps);
    assert_eq!(t.ending.as_ref().unwrap().kind, EndKind::Finished);
}

#[test]
fn a_changed_automation_does_not_resume_old_runs() {
    let t0 = friday_evening();
    let def = json!({"id": "later", "name": "Later", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"delay": "30s"}, {"set": {"devices": ["demo:hall_light"], "values": {"state": false}}}]});
    let mut rig = Rig::new(t0, Settings::default());
    rig.add(def.clone());
    rig.press("hall_button", "single");
    rig.outputs();
    let record = rig.saved.values().next().unwrap().clone();
    let mut after = Rig::new(t0, Settings::default());
    after.engine.upsert(serde_json::from_value(def).unwrap(), 2);
    after.engine.restore(vec![record]);
    after.engine.start(None);
    let out = after.outputs();
    assert!(out.iter().any(|o| matches!(o, Output::DropRun(_))), "{out:?}");
    assert_eq!(after.endings(), [EndKind::Cancelled]);
    assert!(after.traces[0].ending.as_ref().unwrap().message.contains("changed while the hub was down"));
}

#[test]
fn missed_schedules_follow_the_catch_up_policy() {
    let t0: Timestamp = "2026-11-28T09:00:00Z".parse().unwrap();
    let down_since: Timestamp = "2026-11-28T07:00:00Z".parse().unwrap();
    let mut rig = Rig::new(t0, Settings::default());
    rig.add(json!({"id": "once", "name": "Once", "catch_up": "run_once", "triggers": [{"time": {"at": "07:30"}}, {"time": {"at": "08:30"}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "values": {"state": true}}}]}));
    rig.add(json!({"id": "skip", "name": "Skip", "triggers": [{"time": {"at": "07:30"}}],
        "actions": [{"set": {"devices": ["demo:hall_lamp"], "values": {"state": true}}}]}));
    rig.add(json!({"id": "boot", "name": "Boot", "triggers": [{"start": {}}],
        "actions": [{"notify": {"message": "Hearth started ({{ trigger.kind }})"}}]}));
    rig.engine.start(Some(down_since));
    let out = rig.outputs();
    let cmds: Vec<&Output> = out.iter().filter(|o| matches!(o, Output::Command { .. })).collect();
    assert_eq!(cmds.len(), 1, "run_once runs once for two missed times; skip does not: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Notify { message, .. } if message == "Hearth started (start)")));
    let caught = rig.traces.iter().find(|t| t.automation == "once").unwrap();
    assert_eq!(caught.trigger.kind, "catch_up");
    assert_eq!(caught.trigger.index, Some(1), "the latest missed occurrence (08:30) is the one reported");
    assert!(caught.trigger.description.contains("2026-11-28T08:30:00"), "{}", caught.trigger.description);
    // Nothing was missed when the hub was down for no occurrence.
    let mut again = Rig::new(t0, Settings::default());
    again.add(json!({"id": "once", "name": "Once", "catch_up": "run_once", "triggers": [{"time": {"at": "07:30"}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "values": {"state": true}}}]}));
    again.engine.start(Some("2026-11-28T08:00:00Z".parse().unwrap()));
    assert!(again.commands().is_empty());
}

#[test]
fn run_modes_decide_what_a_trigger_does_while_a_run_goes() {
    let modes = |mode: &str, max: u32| {
        json!({"id": mode, "name": mode, "mode": mode, "max_runs": max, "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
            "actions": [{"delay": "10s"}, {"mqtt": {"topic": format!("done/{mode}"), "payload": "{{ trigger.event }}"}}]})
    };
    let mut rig = Rig::new(friday_evening(), Settings::default());
    for (m, max) in [("single", 1), ("restart", 1), ("queued", 3), ("parallel", 2)] {
        rig.add(modes(m, max));
    }
    for e in ["single", "double", "hold"] {
        rig.press("hall_button", e);
    }
    let mut done: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..40 {
        rig.advance_secs(1);
        for o in rig.outputs() {
            if let Output::Publish { topic, payload, .. } = o {
                done.entry(topic).or_default().push(payload);
            }
        }
    }
    assert_eq!(done["done/single"], ["single"], "later presses ignored");
    assert_eq!(done["done/restart"], ["hold"], "only the last press finishes");
    assert_eq!(done["done/queued"], ["single", "double", "hold"], "one after the other");
    assert_eq!(done["done/parallel"], ["single", "double"], "two at once; the third dropped");
    let kinds = rig.endings();
    assert_eq!(kinds.iter().filter(|k| **k == EndKind::Ignored).count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == EndKind::Restarted).count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == EndKind::Dropped).count(), 1);
}

#[test]
fn an_automation_that_retriggers_itself_is_stopped_as_a_loop() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "flip", "name": "Flip", "mode": "parallel", "triggers": [{"state": {"devices": ["demo:hall_light"], "feature": "state"}}],
        "actions": [{"set": {"devices": ["demo:hall_light"], "toggle": ["state"]}}]}));
    rig.state("hall_light", "state", Value::Bool(true), None);
    let mut value = true;
    let mut rounds = 0;
    loop {
        let out = rig.outputs();
        let Some(Output::Command { context, .. }) = out.into_iter().find(|o| matches!(o, Output::Command { .. }))
        else {
            break;
        };
        rounds += 1;
        assert!(rounds < 20, "the loop must be stopped");
        // The adapter carries out the command: the change carries the command's context.
        value = !value;
        rig.state("hall_light", "state", Value::Bool(value), Some(context));
    }
    assert_eq!(rounds, 5, "five runs deep, then stopped");
    let last = rig.traces.last().unwrap();
    assert_eq!(last.ending.as_ref().unwrap().kind, EndKind::Loop);
    assert!(last.ending.as_ref().unwrap().message.contains("flip → flip → flip"), "{:?}", last.ending);
    // A change by a person starts a fresh chain.
    rig.state("hall_light", "state", Value::Bool(!value), None);
    assert_eq!(rig.commands().len(), 1);
}

#[test]
fn waits_end_on_their_trigger_or_time_out() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "door", "name": "Door", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [
            {"wait": {"triggers": [{"state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": true}}], "timeout": "1m"}},
            {"set": {"devices": ["demo:hall_light"], "values": {"state": true}}}]}));
    rig.press("hall_button", "single");
    rig.advance_secs(30);
    rig.state("hall_motion", "occupancy", Value::Bool(true), None);
    assert_eq!(rig.commands().len(), 1, "motion within the minute");
    rig.state("hall_motion", "occupancy", Value::Bool(false), None);
    rig.press("hall_button", "single");
    rig.advance_secs(61);
    assert!(rig.commands().is_empty());
    assert_eq!(rig.endings(), [EndKind::Finished, EndKind::Timeout]);
}

#[test]
fn traces_record_conditions_with_what_was_compared() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "warm", "name": "Warm", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "conditions": [{"state": {"devices": ["demo:living_climate"], "feature": "temperature", "above": 22.0}}],
        "actions": [{"set": {"devices": ["demo:hall_light"], "values": {"state": true}}}]}));
    rig.press("hall_button", "single");
    assert!(rig.commands().is_empty());
    let t = &rig.traces[0];
    assert_eq!(t.ending.as_ref().unwrap().kind, EndKind::ConditionsFailed);
    assert_eq!(t.conditions[0].path, "conditions[0]");
    assert!(!t.conditions[0].result);
    assert_eq!(t.conditions[0].detail, "demo:living_climate temperature is 21 (wanted all > 22)");
    rig.state("living_climate", "temperature", Value::Number(23.5), None);
    rig.press("hall_button", "single");
    assert_eq!(rig.commands().len(), 1);
}

#[test]
fn repeat_parallel_and_stop() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "blink", "name": "Blink", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [
            {"repeat": {"count": 3, "actions": [{"set": {"devices": ["demo:hall_light"], "toggle": ["state"]}}, {"delay": "1s"}]}},
            {"parallel": [[{"delay": "2s"}, {"mqtt": {"topic": "a", "payload": "1"}}], [{"mqtt": {"topic": "b", "payload": "2"}}]]},
            {"mqtt": {"topic": "c", "payload": "3"}},
            {"stop": {"reason": "enough"}},
            {"mqtt": {"topic": "never", "payload": "x"}}]}));
    rig.press("hall_button", "single");
    let mut log = Vec::new();
    for _ in 0..10 {
        for o in rig.outputs() {
            match o {
                Output::Command { .. } => log.push("toggle".to_owned()),
                Output::Publish { topic, .. } => log.push(topic),
                _ => {}
            }
        }
        rig.advance_secs(1);
    }
    assert_eq!(log, ["toggle", "toggle", "toggle", "b", "a", "c"]);
    let t = rig.traces.last().unwrap();
    assert_eq!(t.ending.as_ref().unwrap().kind, EndKind::Stopped);
    assert_eq!(t.ending.as_ref().unwrap().message, "enough");
    assert!(t.steps.iter().any(|s| s.outcome == "ended after 3 rounds"), "{:?}", t.steps);
}

#[test]
fn mqtt_triggers_echo_the_payload_unchanged() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "echo", "name": "Echo", "mode": "parallel", "max_runs": 100,
        "triggers": [{"mqtt": {"topic": "bench/in/+"}}],
        "actions": [{"mqtt": {"topic": "bench/out", "payload": "{{ trigger.payload }}"}}]}));
    assert_eq!(rig.engine.mqtt_topics(), ["bench/in/+"]);
    rig.engine.mqtt("bench/in/7", r#"{"seq": 7, "t": 1.5}"#);
    rig.engine.mqtt("bench/other", "no");
    let out = rig.outputs();
    let pubs: Vec<(&str, &str)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Publish { topic, payload, .. } => Some((topic.as_str(), payload.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(pubs, [("bench/out", r#"{"seq": 7, "t": 1.5}"#)]);
}

#[test]
fn scenes_apply_as_one_batch_with_one_context() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    let scene: Scene = serde_json::from_value(json!({"id": "evening", "name": "Evening", "devices": {
        "demo:hall_light": {"state": true, "brightness": 30.0}, "demo:living_lamp": {"state": false}}}))
    .unwrap();
    rig.engine.upsert_scene(scene);
    rig.add(json!({"id": "eve", "name": "Eve", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"scene": {"id": "evening", "transition": 2.0}}]}));
    rig.press("hall_button", "hold");
    let out = rig.outputs();
    let contexts: Vec<&Context> = out
        .iter()
        .filter_map(|o| match o {
            Output::Command { context, request, .. } => {
                assert_eq!(request.transition, Some(2.0));
                Some(context)
            }
            _ => None,
        })
        .collect();
    assert_eq!(contexts.len(), 2);
    assert_eq!(contexts[0], contexts[1]);
}

#[test]
fn a_dry_run_lists_what_would_happen_and_does_nothing() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "plan", "name": "Plan", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "conditions": [{"state": {"devices": ["demo:living_lamp"], "feature": "state", "is": true}}],
        "actions": [
            {"if": {"conditions": [{"state": {"devices": ["demo:living_climate"], "feature": "temperature", "below": 19.0}}],
                    "then": [{"notify": {"message": "cold"}}], "else": [{"set": {"area": "hallway", "capability": "on_off", "values": {"brightness": 40.0}}}]}},
            {"delay": "5m"}]}));
    let dry = rig.engine.dry_run("plan").unwrap();
    assert!(dry.would_run);
    assert_eq!(
        dry.actions,
        [
            "if: the conditions do not hold now, so:",
            "  set brightness = 40 on demo:hall_lamp, demo:hall_light",
            "wait 5m"
        ]
    );
    assert!(rig.outputs().is_empty());
    assert!(rig.engine.runs().is_empty());
}

#[test]
fn disabling_an_automation_cancels_its_waiting_runs() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "later", "name": "Later", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"delay": "30s"}, {"set": {"devices": ["demo:hall_light"], "values": {"state": true}}}]}));
    rig.press("hall_button", "single");
    assert!(matches!(rig.engine.runs()[0].threads[0], ThreadState::Sleeping { .. }));
    rig.engine.set_enabled("later", false).unwrap();
    rig.advance_secs(40);
    assert!(rig.commands().is_empty());
    assert_eq!(rig.endings(), [EndKind::Cancelled]);
    assert!(rig.saved.is_empty(), "its record is dropped");
    rig.press("hall_button", "single");
    rig.advance_secs(40);
    assert!(rig.commands().is_empty(), "off means off");
}

#[test]
fn for_countdowns_after_a_restart_resume_or_fire_once_for_what_was_missed() {
    // The lamp has been on since t0; "on for 10m" turns it off.
    let t0 = friday_evening();
    let def = json!({"id": "auto_off", "name": "Auto off", "triggers": [{"state": {"devices": ["demo:hall_lamp"], "feature": "state", "to": true, "for": "10m"}}],
        "actions": [{"set": {"devices": ["demo:hall_lamp"], "values": {"state": false}}}]});
    let on = |at: Timestamp| {
        let mut rig = Rig::new(at, Settings::default());
        let mut devices = home(t0);
        let lamp = devices.iter_mut().find(|d| d.id.native() == "hall_lamp").unwrap();
        lamp.state.insert("state".into(), FeatureState { value: Value::Bool(true), changed_at: t0, reported_at: t0 });
        rig.engine.set_devices(devices);
        rig.add(def.clone());
        rig
    };
    // Back after 4 minutes: the countdown goes on and ends at t0 + 10m.
    let mut rig = on(Timestamp::from_millis(t0.as_millis() + 240_000));
    rig.engine.start(Some(Timestamp::from_millis(t0.as_millis() + 200_000)));
    assert!(rig.commands().is_empty());
    assert_eq!(rig.engine.next_wakeup(), Some(Timestamp::from_millis(t0.as_millis() + 600_000)));
    // Back after 15 minutes, down since minute 5: the end was missed; it acts now, once.
    let mut rig = on(Timestamp::from_millis(t0.as_millis() + 900_000));
    rig.engine.start(Some(Timestamp::from_millis(t0.as_millis() + 300_000)));
    assert_eq!(rig.commands().len(), 1);
    rig.advance_secs(3600);
    assert!(rig.commands().is_empty());
    // Down only from minute 12: the hub was up when the 10 minutes ran out, so that was handled.
    let mut rig = on(Timestamp::from_millis(t0.as_millis() + 900_000));
    rig.engine.start(Some(Timestamp::from_millis(t0.as_millis() + 720_000)));
    assert!(rig.commands().is_empty(), "no second action for the same countdown");
    // Editing the automation does not fire countdowns that ran out long ago either.
    let mut edited = def.clone();
    edited["name"] = json!("Auto off (edited)");
    rig.add(edited);
    rig.advance_secs(1);
    assert!(rig.commands().is_empty());
}

#[test]
fn for_without_a_value_means_changed_then_unchanged_for_that_long() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "settled", "name": "Settled", "triggers": [{"state": {"devices": ["demo:living_climate"], "feature": "temperature", "for": "1m"}}],
        "actions": [{"notify": {"message": "settled at {{ trigger.value }}"}}]}));
    rig.state("living_climate", "temperature", Value::Number(21.5), None);
    rig.advance_secs(40);
    rig.state("living_climate", "temperature", Value::Number(22.0), None);
    rig.advance_secs(40);
    assert!(rig.outputs().is_empty(), "the second change started the minute over");
    rig.advance_secs(20);
    let out = rig.outputs();
    assert!(matches!(out.as_slice(), [Output::Notify { message, .. }] if message == "settled at 22"), "{out:?}");
}

#[test]
fn a_wait_for_availability_with_for_ends_when_it_held_long_enough() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "watch", "name": "Watch", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"wait": {"triggers": [{"availability": {"devices": ["demo:hall_motion"], "to": "offline", "for": "30s"}}], "timeout": "10m"}},
                    {"notify": {"message": "the motion sensor is gone"}}]}));
    rig.press("hall_button", "single");
    let offline = |rig: &mut Rig, state: AvailabilityState| {
        rig.engine.event(&Event::AvailabilityChanged {
            device: DeviceId::new("demo", "hall_motion"),
            availability: Availability { state, reason: None, code: None, since: None },
        });
    };
    offline(&mut rig, AvailabilityState::Offline);
    rig.advance_secs(10);
    offline(&mut rig, AvailabilityState::Online);
    rig.advance_secs(60);
    assert!(!rig.outputs().iter().any(|o| matches!(o, Output::Notify { .. })), "it came back within 30 s");
    offline(&mut rig, AvailabilityState::Offline);
    rig.advance_secs(30);
    assert!(rig.outputs().iter().any(|o| matches!(o, Output::Notify { .. })));
}

#[test]
fn scheduled_triggers_record_that_the_engine_was_alive() {
    let mut rig = Rig::new("2026-11-27T20:14:00Z".parse().unwrap(), Settings::default());
    rig.add(json!({"id": "tick", "name": "Tick", "triggers": [{"interval": {"every": "15m"}}],
        "actions": [{"mqtt": {"topic": "t", "payload": "x"}}]}));
    rig.advance_secs(60);
    let out = rig.outputs();
    assert!(out.contains(&Output::Alive("2026-11-27T20:15:00Z".parse().unwrap())), "{out:?}");
}

#[test]
fn area_triggers_follow_devices_into_and_out_of_the_area() {
    let mut rig = Rig::new(friday_evening(), Settings::default());
    rig.add(json!({"id": "living_warm", "name": "Living warm", "mode": "parallel",
        "triggers": [{"state": {"area": "living_room", "capability": "temperature", "feature": "temperature", "above": 25}}],
        "actions": [{"notify": {"message": "{{ trigger.device }}"}}]}));
    let notes = |rig: &mut Rig| -> Vec<String> {
        rig.outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Notify { message, .. } => Some(message),
                _ => None,
            })
            .collect()
    };
    rig.state("living_climate", "temperature", Value::Number(26.0), None);
    assert_eq!(notes(&mut rig), ["demo:living_climate"]);
    // Moved to the hallway: no longer in the target.
    let mut moved = rig.engine.devices().find(|d| d.id.native() == "living_climate").unwrap().clone();
    moved.area = Some("hallway".into());
    rig.engine.event(&Event::DeviceUpdated { device: moved.clone() });
    rig.state("living_climate", "temperature", Value::Number(20.0), None);
    rig.state("living_climate", "temperature", Value::Number(27.0), None);
    assert!(notes(&mut rig).is_empty());
    moved.area = Some("living_room".into());
    rig.engine.event(&Event::DeviceUpdated { device: moved });
    rig.state("living_climate", "temperature", Value::Number(20.0), None);
    rig.state("living_climate", "temperature", Value::Number(27.5), None);
    assert_eq!(notes(&mut rig), ["demo:living_climate"]);
}
