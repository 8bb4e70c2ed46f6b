//! Tests of the demo adapter driven through the SDK's harness, as the hub drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hearth_sdk::testing::Harness;
use hearth_sdk::{
    Adapter, AdapterError, AdapterEvent, AdapterState, AdapterStatus, AvailabilityState, Capability, Category, Command,
    CommandRequest, Context, DeviceDescriptor, DeviceId, Origin, PowerSource, Value, check_value,
};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use crate::DemoAdapter;
use crate::sim::{BLIND_STEP, KETTLE_TICKS};

/// An interval long enough that no tick happens during a test.
const QUIET: f64 = 3600.0;
/// The fastest interval the adapter accepts.
const FAST: f64 = 0.01;

const EXPECTED_IDS: [&str; 13] = [
    "living_ceiling",
    "living_lamp",
    "kitchen_light",
    "bedroom_light",
    "plug_tv",
    "plug_kettle",
    "living_climate",
    "bedroom_climate",
    "front_door",
    "hall_motion",
    "hall_button",
    "thermostat",
    "bedroom_blind",
];

type Values = BTreeMap<String, Value>;

/// A started adapter and what it announced.
struct Started {
    h: Harness,
    task: JoinHandle<Result<(), AdapterError>>,
    /// Devices in announcement order.
    devices: Vec<DeviceDescriptor>,
    initial: Vec<(DeviceId, Values, Option<Context>)>,
    online: Vec<DeviceId>,
}

impl Started {
    fn descriptor(&self, id: &DeviceId) -> &DeviceDescriptor {
        self.devices.iter().find(|d| &d.id == id).expect("an announced device")
    }

    fn initial(&self, native: &str) -> &Values {
        let id = demo(native);
        self.initial.iter().find(|(d, _, _)| *d == id).map(|(_, v, _)| v).expect("an initial state")
    }

    /// A command as the hub would send it, checked against the device's features like the hub does.
    fn command(&self, native: &str, request: serde_json::Value, context_id: &str) -> Command {
        let device = demo(native);
        let request: CommandRequest = serde_json::from_value(request).expect("a well-formed request");
        request.validate(&self.descriptor(&device).features).expect("the hub accepts the command");
        Command { device, request, context: Context::new(context_id, Origin::User { name: "alice".into() }) }
    }

    async fn send(&self, command: Command) {
        self.h.commands.send(command).await.expect("the adapter takes commands");
    }

    async fn next(&mut self) -> AdapterEvent {
        next(&mut self.h).await
    }

    /// The next state report of `native`.
    async fn state_of(&mut self, native: &str) -> (Values, Option<Context>) {
        let id = demo(native);
        loop {
            if let AdapterEvent::State { device, values, cause } = self.next().await {
                self.assert_declared(&device, &values);
                if device == id {
                    return (values, cause);
                }
            }
        }
    }

    /// The first state report of `native` caused by the context `context_id`, skipping reports of
    /// ticks that were on their way before the command arrived.
    async fn state_caused_by(&mut self, native: &str, context_id: &str) -> Values {
        loop {
            let (values, cause) = self.state_of(native).await;
            if cause.as_ref().is_some_and(|c| c.id == context_id) {
                return values;
            }
            assert_eq!(cause, None, "{native}: a report caused by something else");
        }
    }

    /// Every value is of an observed, declared, non-action feature and passes the feature's checks.
    fn assert_declared(&self, device: &DeviceId, values: &Values) {
        let descriptor = self.descriptor(device);
        assert!(!values.is_empty(), "{device}: empty report");
        for (key, value) in values {
            let feature = descriptor.feature(key).unwrap_or_else(|| panic!("{device} reports undeclared `{key}`"));
            assert!(feature.access.observe, "{device}: `{key}` is not observed");
            assert_ne!(feature.capability, Capability::Action, "{device}: action `{key}` reported as state");
            assert_eq!(check_value(feature, value), Ok(()), "{device}: `{key}` = {value}");
        }
    }
}

fn demo(native: &str) -> DeviceId {
    DeviceId::new("demo", native)
}

async fn next(h: &mut Harness) -> AdapterEvent {
    timeout(Duration::from_secs(5), h.next()).await.expect("an event within 5 s").expect("the adapter is running")
}

/// Starts the demo home with a fixed seed and reads its start-up sequence up to "running".
async fn start(interval_secs: f64) -> Started {
    let config = json!({"enabled": true, "interval_secs": interval_secs, "finds": false});
    let (h, run) = Harness::new(Box::new(DemoAdapter::with_seed(7)), config, None);
    let task = tokio::spawn(run);
    let mut s = Started { h, task, devices: Vec::new(), initial: Vec::new(), online: Vec::new() };
    loop {
        match s.next().await {
            AdapterEvent::Device { device } => {
                assert!(s.initial.is_empty() && s.online.is_empty(), "devices come first");
                s.devices.push(device);
            }
            AdapterEvent::State { device, values, cause } => {
                assert!(s.online.is_empty(), "initial states come before availability");
                s.initial.push((device, values, cause));
            }
            AdapterEvent::Availability { device, availability } => {
                assert_eq!(availability.state, AvailabilityState::Online, "{device}");
                assert!(availability.since.is_some(), "{device}");
                s.online.push(device);
            }
            AdapterEvent::Status { status } => {
                assert_eq!(status, AdapterStatus::running());
                return s;
            }
            other => panic!("unexpected event during start-up: {other:?}"),
        }
    }
}

#[test]
fn manifest_names_the_demo_home() {
    let m = DemoAdapter::new().manifest();
    assert_eq!((m.id, m.name), ("demo", "Demo home"));
    assert_eq!(DemoAdapter::default().manifest(), m);
}

#[tokio::test]
async fn announces_the_home_with_valid_initial_state_and_all_online() {
    let s = start(QUIET).await;

    let ids: Vec<String> = s.devices.iter().map(|d| d.id.to_string()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "device ids are unique: {ids:?}");
    let expected: BTreeSet<String> = EXPECTED_IDS.iter().map(|n| format!("demo:{n}")).collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);

    let areas = ["Living room", "Kitchen", "Bedroom", "Hallway"];
    for d in &s.devices {
        assert_eq!(d.id.adapter(), "demo");
        assert!(areas.contains(&d.suggested_area.as_deref().unwrap_or("")), "{}: {:?}", d.id, d.suggested_area);
        assert_eq!(d.manufacturer.as_deref(), Some("Hearth"), "{}", d.id);
        assert!(d.model.as_deref().is_some_and(|m| m.starts_with("Demo ")), "{}: {:?}", d.id, d.model);
        assert_ne!(d.power_source, PowerSource::Unknown, "{}", d.id);
        assert!(!d.name.is_empty());
        let keys: BTreeSet<&str> = d.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys.len(), d.features.len(), "{}: feature keys are unique", d.id);
        for f in &d.features {
            assert_eq!(f.unit.as_deref(), f.capability.canonical_unit(), "{} {}: canonical unit", d.id, f.key);
            if matches!(f.capability, Capability::Battery | Capability::SignalStrength) {
                assert_eq!(f.category, Category::Diagnostic, "{} {}", d.id, f.key);
                assert_eq!(d.power_source, PowerSource::Battery, "{} has a battery", d.id);
            }
        }
    }
    let area_of = |n: &str| s.descriptor(&demo(n)).suggested_area.clone();
    assert_eq!(area_of("plug_tv").as_deref(), Some("Living room"));
    assert_eq!(area_of("plug_kettle").as_deref(), Some("Kitchen"));
    assert_eq!(area_of("front_door").as_deref(), Some("Hallway"));
    assert_eq!(area_of("bedroom_blind").as_deref(), Some("Bedroom"));

    // One initial report per device, with every observed feature but actions, all valid.
    let reported: Vec<&DeviceId> = s.initial.iter().map(|(d, _, _)| d).collect();
    assert_eq!(reported, s.devices.iter().map(|d| &d.id).collect::<Vec<_>>());
    for (device, values, cause) in &s.initial {
        assert_eq!(cause, &None, "{device}: nobody caused the initial state");
        s.assert_declared(device, values);
        let observed: BTreeSet<&str> = s
            .descriptor(device)
            .features
            .iter()
            .filter(|f| f.access.observe && f.capability != Capability::Action)
            .map(|f| f.key.as_str())
            .collect();
        assert_eq!(values.keys().map(String::as_str).collect::<BTreeSet<_>>(), observed, "{device}");
    }

    assert_eq!(s.online, s.devices.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), "every device goes online");

    let button = s.descriptor(&demo("hall_button"));
    let action = button.feature("action").expect("the button has an action");
    assert_eq!(action.capability, Capability::Action);
    assert_eq!(action.access, hearth_sdk::Access::EVENT, "presses are events, never state");
}

#[tokio::test]
async fn turning_the_lamp_on_at_40_reports_with_the_command_as_cause() {
    let mut s = start(QUIET).await;
    assert_eq!(s.initial("living_lamp").get("state"), Some(&Value::Bool(false)), "the lamp starts off");
    let command = s.command("living_lamp", json!({"set": {"state": true, "brightness": 40}}), "lamp-on");
    let context = command.context.clone();
    s.send(command).await;
    let (values, cause) = s.state_of("living_lamp").await;
    assert_eq!(values.get("state"), Some(&Value::Bool(true)));
    assert_eq!(values.get("brightness"), Some(&Value::Number(40.0)));
    assert_eq!(cause, Some(context));

    // Brightness alone turns an off light on; with state false it stays off.
    s.send(s.command("bedroom_light", json!({"set": {"brightness": 55}}), "b1")).await;
    let (values, _) = s.state_of("bedroom_light").await;
    assert_eq!((values.get("state"), values.get("brightness")), (Some(&true.into()), Some(&55.0.into())));
    s.send(s.command("kitchen_light", json!({"set": {"state": false, "brightness": 30}}), "k1")).await;
    let (values, _) = s.state_of("kitchen_light").await;
    assert_eq!((values.get("state"), values.get("brightness")), (Some(&false.into()), Some(&30.0.into())));

    // A refresh re-reports the current values.
    s.send(s.command("living_lamp", json!({"refresh": true}), "r1")).await;
    let (values, cause) = s.state_of("living_lamp").await;
    assert_eq!(values, BTreeMap::from([("brightness".into(), 40.0.into()), ("state".into(), true.into())]));
    assert_eq!(cause.map(|c| c.id).as_deref(), Some("r1"));
}

#[tokio::test]
async fn a_transition_ramps_brightness_and_ends_exactly() {
    let mut s = start(QUIET).await;
    assert_eq!(s.initial("living_ceiling").get("brightness"), Some(&Value::Number(80.0)));
    assert_eq!(s.initial("living_ceiling").get("state"), Some(&Value::Bool(true)));
    let command = s.command("living_ceiling", json!({"set": {"brightness": 20}, "transition": 0.6}), "dim");
    let context = command.context.clone();
    let sent_at = Instant::now();
    s.send(command).await;
    let mut seen = Vec::new();
    loop {
        let (values, cause) = s.state_of("living_ceiling").await;
        assert_eq!(cause.as_ref(), Some(&context));
        if let Some(b) = values.get("brightness").and_then(Value::as_f64) {
            seen.push(b);
            if b == 20.0 {
                break;
            }
        }
    }
    let elapsed = sent_at.elapsed();
    assert!(seen.len() > 1, "intermediate reports: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] < w[0]), "dims steadily: {seen:?}");
    assert!(seen.iter().all(|b| (20.0..80.0).contains(b)), "{seen:?}");
    assert!(elapsed >= Duration::from_millis(550), "takes the transition time: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_kettle_switched_on_draws_kilowatts() {
    let mut s = start(QUIET).await;
    assert_eq!(s.initial("plug_kettle").get("power"), Some(&Value::Number(0.0)));
    let command = s.command("plug_kettle", json!({"set": {"state": true}}), "tea");
    let context = command.context.clone();
    s.send(command).await;
    let (values, cause) = s.state_of("plug_kettle").await;
    assert_eq!(values.get("state"), Some(&Value::Bool(true)));
    let power = values.get("power").and_then(Value::as_f64).expect("power reported");
    assert!(power > 1000.0, "{power} W");
    assert_eq!(cause, Some(context));
}

#[tokio::test]
async fn the_kettle_switches_itself_off_after_three_simulated_minutes() {
    let mut s = start(FAST).await;
    s.send(s.command("plug_kettle", json!({"set": {"state": true}}), "tea")).await;
    let values = s.state_caused_by("plug_kettle", "tea").await;
    assert_eq!(values.get("state"), Some(&true.into()));
    let energy_on = values.get("energy").and_then(Value::as_f64).expect("energy");
    let mut ticks_on = 0;
    let values = loop {
        let (values, cause) = s.state_of("plug_kettle").await;
        assert_eq!(cause, None, "the device switches itself off");
        if values.get("state") == Some(&Value::Bool(false)) {
            break values;
        }
        ticks_on += 1;
    };
    assert_eq!(ticks_on, KETTLE_TICKS - 1, "off on the {KETTLE_TICKS}th tick");
    assert_eq!(values.get("power"), Some(&Value::Number(0.0)));
    let energy_off = values.get("energy").and_then(Value::as_f64).expect("energy");
    // 2 kW for 3 simulated minutes is 0.1 kWh.
    assert!((energy_off - energy_on - 0.1).abs() < 0.005, "{energy_on} -> {energy_off}");
}

#[tokio::test]
async fn the_button_fires_events_never_state_and_every_tick_report_is_valid() {
    let mut s = start(FAST).await;
    let allowed = ["single", "double", "hold"];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut presses = Vec::new();
    let mut reports = 0;
    while presses.len() < 5 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let event = timeout(remaining, s.h.next())
            .await
            .unwrap_or_else(|_| panic!("only {presses:?} presses before the deadline"))
            .expect("the adapter is running");
        match event {
            AdapterEvent::Event { device, feature, event, data } => {
                assert_eq!(device, demo("hall_button"));
                assert_eq!(feature, "action");
                assert!(allowed.contains(&event.as_str()), "{event}");
                assert_eq!(data, None);
                presses.push(event);
            }
            AdapterEvent::State { device, values, .. } => {
                assert!(!values.contains_key("action"), "{device}: action in state");
                s.assert_declared(&device, &values);
                reports += 1;
            }
            other => panic!("unexpected event: {other:?}"),
        }
    }
    assert!(reports > 20, "sensors report every tick: {reports}");
}

#[tokio::test]
async fn the_blind_moves_ten_percent_per_tick_and_stops_at_its_target() {
    let mut s = start(FAST).await;
    assert_eq!(s.initial("bedroom_blind").get("cover_position"), Some(&Value::Number(100.0)));
    assert_eq!(s.initial("bedroom_blind").get("cover_state"), Some(&Value::from("stop")));
    s.send(s.command("bedroom_blind", json!({"set": {"cover_position": 65}}), "blind")).await;
    let values = s.state_caused_by("bedroom_blind", "blind").await;
    assert_eq!(values.get("cover_state"), Some(&Value::from("close")));
    assert_eq!(values.get("cover_position"), Some(&Value::Number(100.0)));
    let mut positions = Vec::new();
    loop {
        let (values, cause) = s.state_of("bedroom_blind").await;
        assert_eq!(cause.as_ref().map(|c| c.id.as_str()), Some("blind"), "motion reports carry the command");
        let position = values.get("cover_position").and_then(Value::as_f64).expect("position");
        positions.push(position);
        if values.get("cover_state") == Some(&Value::from("stop")) {
            break;
        }
        assert_eq!(values.get("cover_state"), Some(&Value::from("close")));
    }
    assert_eq!(positions, [100.0 - BLIND_STEP, 80.0, 70.0, 65.0]);
}

#[tokio::test]
async fn shutdown_returns_ok_within_a_second() {
    let s = start(QUIET).await;
    s.h.shutdown.send(true).expect("the adapter listens");
    let result = timeout(Duration::from_secs(1), s.task).await.expect("returns within a second");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

#[tokio::test]
async fn shutdown_returns_promptly_even_while_the_hub_applies_backpressure() {
    let s = start(FAST).await;
    // Nobody reads events: the bounded channel fills and the adapter waits to send.
    let full = timeout(Duration::from_secs(5), async {
        while s.h.events.len() < s.h.events.max_capacity() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(full.is_ok(), "the event channel fills up");
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.h.shutdown.send(true).expect("the adapter listens");
    let result = timeout(Duration::from_secs(1), s.task).await.expect("returns within a second");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

#[tokio::test]
async fn returns_ok_when_the_hub_is_gone() {
    let s = start(FAST).await;
    let Started {
        h: Harness { events, commands: _commands, actions: _actions, shutdown: _shutdown, inbox: _inbox, secrets: _ },
        task,
        ..
    } = s;
    drop(events);
    let result = timeout(Duration::from_secs(1), task).await.expect("returns within a second");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

#[tokio::test]
async fn disabled_it_announces_nothing_and_waits_for_shutdown() {
    let (mut h, run) = Harness::new(Box::new(DemoAdapter::new()), json!({"enabled": false}), None);
    let task = tokio::spawn(run);
    match next_event(&mut h).await {
        AdapterEvent::Status { status } => assert_eq!(status.state, AdapterState::Stopped),
        other => panic!("expected a status, got {other:?}"),
    }
    assert!(timeout(Duration::from_millis(100), h.next()).await.is_err(), "nothing else is sent");
    h.shutdown.send(true).expect("the adapter listens");
    let result = timeout(Duration::from_secs(1), task).await.expect("returns within a second");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
}

#[tokio::test]
async fn finds_wait_in_the_inbox_join_the_home_when_accepted_and_leave_when_forgotten() {
    let config = json!({"enabled": true, "interval_secs": 3600.0});
    let (mut h, run) = Harness::new(Box::new(DemoAdapter::with_seed(7)), config, None);
    let _task = tokio::spawn(run);
    // The home, then its status, then the three finds.
    while !matches!(next_event(&mut h).await, AdapterEvent::Status { .. }) {}
    let mut found = Vec::new();
    for _ in 0..3 {
        match next_event(&mut h).await {
            AdapterEvent::Found { found: f } => found.push((f.key, f.supported, f.transport)),
            other => panic!("expected a find, got {other:?}"),
        }
    }
    use hearth_sdk::Transport::{Ble, Wifi};
    assert_eq!(
        found,
        [("garden_thermometer".into(), true, Ble), ("desk_plug".into(), true, Wifi), ("living_tv".into(), false, Wifi)]
    );

    // Accepted: the thermometer is announced with its readings, online.
    h.inbox.send_modify(|d| {
        d.insert("garden_thermometer".into(), hearth_sdk::Decision::Accepted);
        d.insert("living_tv".into(), hearth_sdk::Decision::Ignored);
    });
    let id = demo("garden_thermometer");
    match next_event(&mut h).await {
        AdapterEvent::Device { device } => {
            assert_eq!((device.id.clone(), device.name.as_str()), (id.clone(), "Garden thermometer"))
        }
        other => panic!("expected the device, got {other:?}"),
    }
    match next_event(&mut h).await {
        AdapterEvent::State { device, values, .. } => {
            assert_eq!(device, id);
            assert_eq!(values.get("temperature"), Some(&Value::Number(8.4)));
        }
        other => panic!("expected its state, got {other:?}"),
    }
    assert!(matches!(next_event(&mut h).await, AdapterEvent::Availability { device, .. } if device == id));
    // The plug, still undecided, is offered again (the hub ignores what it already has).
    assert!(matches!(next_event(&mut h).await, AdapterEvent::Found { found } if found.key == "desk_plug"));

    // Forgotten: it leaves the home and is offered again.
    h.inbox.send_modify(|d| {
        d.remove("garden_thermometer");
    });
    assert!(matches!(next_event(&mut h).await, AdapterEvent::DeviceRemoved { device } if device == id));
    assert!(matches!(next_event(&mut h).await, AdapterEvent::Found { found } if found.key == "garden_thermometer"));
}

async fn next_event(h: &mut Harness) -> AdapterEvent {
    timeout(Duration::from_secs(5), h.next()).await.expect("in time").expect("running")
}
