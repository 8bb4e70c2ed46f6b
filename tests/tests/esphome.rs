//! ESPHome native API sessions against the simulator (`tests/sim/esphome.rs`), over loopback
//! TCP, plaintext and Noise: what the hub is told (the device, its features, its states, why a
//! session ended), what reaches the device, and how the session answers the device's own
//! requests. The session is driven directly through `Link::detached`, without mDNS.
#![allow(clippy::unwrap_used)]
// The tests drive the session's runtime from a plain thread: blocking sleeps are fine here.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hearth_esphome::EsphomeProtocol;
use hearth_mdns::lan::{Link, Protocol, Target};
use hearth_mdns::testing::in_namespace;
use hearth_sdk::{
    AdapterEvent, AvailabilityState, Capability, Command, CommandRequest, Context, DeviceDescriptor, EventSender,
    Origin, Secret, Secrets, Transport, Value, ValueType,
};
use hearth_tests::sim::esphome::{EsphomeOptions, EsphomeSim, LIGHT, MOTION, NOISE, RELAY, TEMPERATURE, THERMOSTAT};
use serde_json::json;
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(10);

/// One session on a runtime of its own, with its event channel and command sender.
struct Run {
    rt: tokio::runtime::Runtime,
    events: mpsc::Receiver<(&'static str, AdapterEvent)>,
    commands: Option<mpsc::Sender<Command>>,
    session: Option<tokio::task::JoinHandle<Result<(), String>>>,
    device: hearth_sdk::DeviceId,
    seen: Vec<AdapterEvent>,
}

fn run(sim: &EsphomeSim, secrets: &[(&str, &str)], idle_secs: u64) -> Run {
    run_target(sim.target(), secrets, idle_secs)
}

fn run_target(target: Target, secrets: &[(&str, &str)], idle_secs: u64) -> Run {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, events) = mpsc::channel(256);
    let secrets: BTreeMap<String, Secret> = secrets.iter().map(|(n, v)| ((*n).to_owned(), Secret::new(*v))).collect();
    let (secrets_tx, secrets) = Secrets::channel(secrets);
    // The hub's end of the secrets lives as long as the runtime.
    std::mem::forget(secrets_tx);
    let device = target.device.clone();
    let (link, commands) =
        Link::detached(target, EventSender::new("esphome", tx), secrets, Duration::from_secs(idle_secs));
    let session = rt.spawn(Arc::new(EsphomeProtocol).session(link));
    Run { rt, events, commands: Some(commands), session: Some(session), device, seen: Vec::new() }
}

impl Run {
    /// The next event, within `T`.
    fn next(&mut self) -> AdapterEvent {
        let e = self
            .rt
            .block_on(async { tokio::time::timeout(T, self.events.recv()).await })
            .unwrap_or_else(|_| panic!("no event within {T:?}; seen: {:#?}", self.seen))
            .expect("the event channel is open");
        self.seen.push(e.1.clone());
        e.1
    }

    /// Skips events until `pick` takes one.
    fn until<R>(&mut self, mut pick: impl FnMut(&AdapterEvent) -> Option<R>) -> R {
        loop {
            let e = self.next();
            if let Some(r) = pick(&e) {
                return r;
            }
        }
    }

    /// The device's description, then its online availability.
    fn described(&mut self) -> DeviceDescriptor {
        let d = self.until(|e| match e {
            AdapterEvent::Device { device } => Some(device.clone()),
            _ => None,
        });
        let online = self.next();
        assert!(
            matches!(&online, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online),
            "{online:?}"
        );
        d
    }

    /// Waits for a state report that has `feature`; returns its values and cause.
    fn state_of(&mut self, feature: &str) -> (BTreeMap<String, Value>, Option<Context>) {
        let device = self.device.clone();
        self.until(|e| match e {
            AdapterEvent::State { device: d, values, cause } if *d == device && values.contains_key(feature) => {
                Some((values.clone(), cause.clone()))
            }
            _ => None,
        })
    }

    /// Collects reported values until every one of `keys` has been seen.
    fn values(&mut self, keys: &[&str]) -> BTreeMap<String, Value> {
        let mut all = BTreeMap::new();
        while !keys.iter().all(|k| all.contains_key(*k)) {
            if let AdapterEvent::State { values, .. } = self.next() {
                all.extend(values);
            }
        }
        all
    }

    /// Sends a command (`{"set": ...}`) with a context of its own; returns the context.
    fn command(&self, id: &str, request: serde_json::Value) -> Context {
        let request: CommandRequest = serde_json::from_value(request).unwrap();
        let context = Context::new(id, Origin::User { name: "alice".into() });
        let c = Command { device: self.device.clone(), request, context: context.clone() };
        self.rt.block_on(self.commands.as_ref().unwrap().send(c)).unwrap();
        context
    }

    /// How the session ended, within `within`.
    fn ended_within(&mut self, within: Duration) -> Result<(), String> {
        let session = self.session.take().expect("the session runs");
        self.rt
            .block_on(async { tokio::time::timeout(within, session).await })
            .expect("the session ended in time")
            .unwrap()
    }

    fn ended(&mut self) -> Result<(), String> {
        self.ended_within(T)
    }

    /// Whether the session is still running.
    fn running(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.is_finished())
    }
}

fn n(v: f64) -> Value {
    Value::Number(v)
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

/// The default simulator's features, as the hub sees them, and its first states.
fn check_default_device(r: &mut Run, sim: &EsphomeSim) {
    let d = r.described();
    assert_eq!(d.id, sim.device_id());
    assert_eq!(d.name, "Kitchen node");
    assert_eq!(d.firmware.as_deref(), Some("2025.5.0"));
    let keys: Vec<&str> = d.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "relay",
            "ceiling_light",
            "ceiling_light_brightness",
            "temperature",
            "motion",
            "blind",
            "blind_position",
            "restart",
            "target_temperature",
            "mode",
            "status",
            "fan",
            "fan_speed",
            "fan_oscillating",
            "thermostat",
            "thermostat_setpoint",
            "thermostat_temperature",
            "thermostat_action",
            "thermostat_fan_mode"
        ]
    );
    let f = |k: &str| d.feature(k).unwrap();
    assert_eq!((f("relay").capability, f("relay").access.set), (Capability::OnOff, true));
    assert_eq!(f("ceiling_light_brightness").capability, Capability::Brightness);
    assert_eq!((f("temperature").capability, f("temperature").access.set), (Capability::Temperature, false));
    assert_eq!(f("motion").capability, Capability::Occupancy);
    assert_eq!(f("blind").capability, Capability::CoverState);
    assert_eq!(f("blind_position").capability, Capability::CoverPosition);
    assert!(f("restart").access.set && !f("restart").access.observe);
    assert!(f("mode").access.set);
    assert_eq!((f("thermostat").capability, f("thermostat").access.set), (Capability::HvacMode, true));

    let v = r.values(&[
        "relay",
        "ceiling_light",
        "ceiling_light_brightness",
        "temperature",
        "motion",
        "blind",
        "blind_position",
        "target_temperature",
        "mode",
        "status",
        "fan",
        "thermostat",
    ]);
    assert_eq!(v["relay"], Value::Bool(false));
    assert_eq!(v["ceiling_light"], Value::Bool(false));
    assert_eq!(v["ceiling_light_brightness"], n(50.0));
    assert_eq!(v["temperature"], n(21.5));
    assert_eq!(v["motion"], Value::Bool(false));
    assert_eq!((&v["blind"], &v["blind_position"]), (&t("stop"), &n(0.0)));
    assert_eq!(v["target_temperature"], n(21.0));
    assert_eq!(v["mode"], t("eco"));
    assert_eq!(v["status"], t("ok"));
    assert_eq!(v["fan"], Value::Bool(false));
    assert_eq!(v["thermostat"], t("off"));
}

#[test]
fn a_plaintext_device_is_described_with_every_entity_and_reports_its_states() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    check_default_device(&mut r, &sim);
    assert_eq!(sim.hellos(), ["Hearth"]);
    assert_eq!(sim.subscriptions(), 1);
    assert!(r.running());
}

#[test]
fn a_device_that_no_longer_answers_connect_requests_is_reached_too() {
    let sim = EsphomeSim::start(EsphomeOptions { connect_response: false, ..EsphomeOptions::default() });
    let mut r = run(&sim, &[], 30);
    r.described();
    assert_eq!(r.state_of("temperature").0["temperature"], n(21.5));
}

#[test]
fn an_encrypted_device_is_reached_with_its_key_named_by_its_mac() {
    let sim = EsphomeSim::start(EsphomeOptions::encrypted());
    let mut r = run(&sim, &[(&sim.key(), EsphomeOptions::KEY)], 30);
    check_default_device(&mut r, &sim);
    assert_eq!(sim.hellos(), ["Hearth"]);
    // The MAC with colons names the key as well.
    let mut r = run(&sim, &[("AC:BC:32:89:0E:A9", EsphomeOptions::KEY)], 30);
    r.described();
    assert_eq!(r.state_of("temperature").0["temperature"], n(21.5));
}

#[test]
fn an_encrypting_device_without_its_key_says_what_to_do() {
    let sim = EsphomeSim::start(EsphomeOptions::encrypted());
    let expected = "esphome node kitchen-node encrypts its API: enter its key under the adapter's secrets, named acbc32890ea9 (the `api: encryption: key:` of its YAML)";
    // Announced with `api_encryption`: no attempt without the key.
    assert_eq!(sim.target().txt.get("api_encryption").map(String::as_str), Some(NOISE));
    let mut r = run(&sim, &[], 30);
    assert_eq!(r.ended().unwrap_err(), expected);
    assert!(sim.hellos().is_empty());
    // Not announced (an old firmware): plaintext is tried, the device answers that it wants
    // encryption, and the sentence is the same.
    let mut target = sim.target();
    target.txt.remove("api_encryption");
    let mut r = run_target(target, &[], 30);
    assert_eq!(r.ended().unwrap_err(), expected);
    assert!(sim.hellos().is_empty());
}

#[test]
fn a_wrong_key_and_a_key_for_a_plaintext_device_are_named() {
    let sim = EsphomeSim::start(EsphomeOptions::encrypted());
    let other = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let mut r = run(&sim, &[(&sim.key(), other)], 30);
    let e = r.ended().unwrap_err();
    assert_eq!(
        e,
        "the key entered for esphome node kitchen-node does not match the device's: enter the `api: encryption: key:` of its YAML under the adapter's secrets, named acbc32890ea9"
    );
    assert!(!e.contains(other) && !e.contains(EsphomeOptions::KEY));

    let plain = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&plain, &[(&plain.key(), EsphomeOptions::KEY)], 30);
    let e = r.ended().unwrap_err();
    assert!(e.starts_with("esphome node kitchen-node does not encrypt its API, but a key is entered for it"), "{e}");
    assert!(plain.hellos().is_empty());
}

/// Commands reach the device as it takes them, and the state it reports back carries the
/// command's context; over plaintext and over Noise.
#[test]
fn commands_reach_the_device_and_their_state_comes_back_with_their_context() {
    for opts in [EsphomeOptions::default(), EsphomeOptions::encrypted()] {
        let encrypted = opts.key.is_some();
        let sim = EsphomeSim::start(opts);
        let key = sim.key();
        let secrets: &[(&str, &str)] = if encrypted { &[(&key, EsphomeOptions::KEY)] } else { &[] };
        let mut r = run(&sim, secrets, 30);
        r.described();
        r.values(&["relay", "temperature", "fan"]);

        let ctx = r.command("c1", json!({"set": {"relay": true}}));
        sim.wait_for_command("switch relay state=true", T);
        let (v, cause) = r.state_of("relay");
        assert_eq!((v["relay"].clone(), cause), (Value::Bool(true), Some(ctx)));

        let ctx = r.command("c2", json!({"set": {"ceiling_light": true, "ceiling_light_brightness": 40}}));
        sim.wait_for_command("light ceiling_light state=true brightness=0.4", T);
        let (v, cause) = r.state_of("ceiling_light_brightness");
        assert_eq!((&v["ceiling_light"], &v["ceiling_light_brightness"]), (&Value::Bool(true), &n(40.0)));
        assert_eq!(cause, Some(ctx));

        let ctx = r.command("c3", json!({"set": {"blind_position": 30}}));
        sim.wait_for_command("cover blind position=0.3", T);
        let (v, cause) = r.state_of("blind_position");
        assert_eq!((v["blind_position"].clone(), cause), (n(30.0), Some(ctx)));

        let ctx = r.command("c4", json!({"set": {"target_temperature": 22.5}}));
        sim.wait_for_command("number target_temperature state=22.5", T);
        assert_eq!(
            r.state_of("target_temperature"),
            (BTreeMap::from([("target_temperature".into(), n(22.5))]), Some(ctx))
        );

        let ctx = r.command("c5", json!({"set": {"mode": "comfort"}}));
        sim.wait_for_command("select mode state=comfort", T);
        assert_eq!(r.state_of("mode"), (BTreeMap::from([("mode".into(), t("comfort"))]), Some(ctx)));

        let ctx = r.command("c6", json!({"set": {"fan_speed": 50}}));
        sim.wait_for_command("fan fan state=true speed_level=2", T);
        let (v, cause) = r.state_of("fan_speed");
        assert_eq!((&v["fan"], &v["fan_speed"], cause), (&Value::Bool(true), &n(66.67), Some(ctx)));

        r.command("c7", json!({"set": {"restart": "press"}}));
        sim.wait_for_command("button restart press", T);

        // A refresh subscribes again: every state comes back, with the refresh's context.
        let ctx = r.command("c8", json!({"refresh": true}));
        let (v, cause) = r.state_of("temperature");
        assert_eq!((v["temperature"].clone(), cause), (n(21.5), Some(ctx)));
        assert_eq!(sim.subscriptions(), 2);
        assert!(r.running());
    }
}

/// The states the subscription brings are what the device was: a command sent before they
/// arrive gets its context on the state it causes, not on them.
#[test]
fn a_command_sent_before_the_first_states_is_not_credited_with_them() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    r.described();
    let ctx = r.command("c1", json!({"set": {"relay": true}}));
    assert_eq!(r.state_of("relay"), (BTreeMap::from([("relay".into(), Value::Bool(false))]), None));
    assert_eq!(r.state_of("relay"), (BTreeMap::from([("relay".into(), Value::Bool(true))]), Some(ctx)));
}

#[test]
fn a_change_at_the_device_reaches_the_hub_without_a_cause() {
    let sim = EsphomeSim::start(EsphomeOptions::encrypted());
    let mut r = run(&sim, &[(&sim.key(), EsphomeOptions::KEY)], 30);
    r.described();
    r.values(&["relay", "temperature", "motion", "fan"]);
    sim.set_switch_physically(RELAY, true);
    assert_eq!(r.state_of("relay"), (BTreeMap::from([("relay".into(), Value::Bool(true))]), None));
    sim.set_sensor(TEMPERATURE, 22.5);
    assert_eq!(r.state_of("temperature").0["temperature"], n(22.5));
    sim.set_binary_sensor(MOTION, true);
    assert_eq!(r.state_of("motion").0["motion"], Value::Bool(true));
    // A command's context is not given to a later change at the device.
    let ctx = r.command("c1", json!({"set": {"ceiling_light": true}}));
    assert_eq!(r.state_of("ceiling_light").1, Some(ctx));
    sim.set_state(hearth_esphome::api::messages::LightStateResponse {
        key: LIGHT,
        state: false,
        brightness: 0.5,
        color_mode: 2,
        ..Default::default()
    });
    assert_eq!(
        r.state_of("ceiling_light"),
        (
            BTreeMap::from([
                ("ceiling_light".into(), Value::Bool(false)),
                ("ceiling_light_brightness".into(), n(50.0))
            ]),
            None
        )
    );
}

/// A thermostat (a single-setpoint `climate`): its mode, setpoint, room temperature, action and
/// fan mode are features. A mode and a setpoint set together reach it as one command, and the
/// state it answers (now heating) carries the command's context; the room warming up and the
/// thermostat going idle reach the hub without a cause.
#[test]
fn a_thermostat_is_described_takes_a_mode_and_a_setpoint_and_reports_the_room() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    let d = r.described();
    let f = |k: &str| d.feature(k).unwrap_or_else(|| panic!("no feature {k}"));
    let mode = f("thermostat");
    assert_eq!((mode.capability, mode.access.set), (Capability::HvacMode, true));
    assert_eq!(mode.value_type, ValueType::enumeration(["off", "cool", "heat", "auto"]));
    assert_eq!(mode.label.as_deref(), Some("Thermostat"));
    let setpoint = f("thermostat_setpoint");
    assert_eq!((setpoint.capability, setpoint.access.set), (Capability::Setpoint, true));
    assert_eq!(setpoint.value_type, ValueType::Number { min: Some(5.0), max: Some(30.0), step: Some(0.5) });
    assert_eq!(setpoint.unit.as_deref(), Some("°C"));
    let room = f("thermostat_temperature");
    assert_eq!((room.capability, room.access.set), (Capability::Temperature, false));
    let action = f("thermostat_action");
    assert_eq!((action.capability, action.access.set), (Capability::HvacAction, false));
    let fan = f("thermostat_fan_mode");
    assert_eq!((fan.capability, fan.access.set), (Capability::FanMode, true));
    assert_eq!(fan.value_type, ValueType::enumeration(["auto", "low", "high"]));
    // One setpoint: no low and high ones.
    assert!(d.feature("thermostat_setpoint_low").is_none() && d.feature("thermostat_setpoint_high").is_none());

    let (v, cause) = r.state_of("thermostat");
    let thermostat = |mode: &str, setpoint: f64, room: f64, action: &str, fan: &str| {
        BTreeMap::from([
            ("thermostat".to_owned(), t(mode)),
            ("thermostat_setpoint".to_owned(), n(setpoint)),
            ("thermostat_temperature".to_owned(), n(room)),
            ("thermostat_action".to_owned(), t(action)),
            ("thermostat_fan_mode".to_owned(), t(fan)),
        ])
    };
    assert_eq!((v, cause), (thermostat("off", 21.0, 20.5, "off", "auto"), None));

    // Mode and setpoint in one command: one `ClimateCommandRequest`; the room is colder than
    // the setpoint, so it heats.
    let ctx = r.command("c1", json!({"set": {"thermostat": "heat", "thermostat_setpoint": 22.5}}));
    sim.wait_for_command("climate thermostat mode=heat target_temperature=22.5", T);
    assert_eq!(r.state_of("thermostat"), (thermostat("heat", 22.5, 20.5, "heat", "auto"), Some(ctx)));
    // The fan mode alone: only it changes.
    let ctx = r.command("c2", json!({"set": {"thermostat_fan_mode": "low"}}));
    sim.wait_for_command("climate thermostat fan_mode=low", T);
    assert_eq!(r.state_of("thermostat"), (thermostat("heat", 22.5, 20.5, "heat", "low"), Some(ctx)));

    // At the device: the room warms up, then it stops heating.
    sim.set_climate(THERMOSTAT, 21.8, "heating");
    assert_eq!(r.state_of("thermostat"), (thermostat("heat", 22.5, 21.8, "heat", "low"), None));
    sim.set_climate(THERMOSTAT, 22.6, "idle");
    assert_eq!(r.state_of("thermostat"), (thermostat("heat", 22.5, 22.6, "idle", "low"), None));
    assert_eq!(
        sim.commands(),
        ["climate thermostat mode=heat target_temperature=22.5", "climate thermostat fan_mode=low"]
    );
    assert!(r.running());
}

#[test]
fn a_reboot_ends_the_session_and_the_next_session_works() {
    let mut sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    r.described();
    sim.reboot();
    let e = r.ended().unwrap_err();
    assert_eq!(e, "esphome node kitchen-node closed the connection (it may be restarting)");
    let mut r = run(&sim, &[], 30);
    r.described();
    assert_eq!(r.state_of("temperature").0["temperature"], n(21.5));

    // Stopped: the session ends; nothing answers at the address. Started again on the same
    // port: a new session works.
    let port = sim.port();
    sim.stop();
    assert!(r.ended().is_err());
    let mut r = run(&sim, &[], 30);
    let e = r.ended().unwrap_err();
    assert!(e.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{e}");
    let sim = EsphomeSim::start_on(port, EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    r.described();
}

#[test]
fn a_device_that_stops_answering_is_given_up_with_the_reason() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 2);
    r.described();
    // Quiet but answering pings: the session stays.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(r.running(), "the session ended: {:?}", r.ended());
    sim.freeze(true);
    let started = std::time::Instant::now();
    assert_eq!(r.ended_within(Duration::from_secs(5)).unwrap_err(), "no answer from 127.0.0.1 for 2 s");
    assert!(started.elapsed() <= Duration::from_secs(4), "{:?}", started.elapsed());

    // Frozen before the session: it never gets past the hello.
    let mut r = run(&sim, &[], 2);
    assert_eq!(r.ended_within(Duration::from_secs(5)).unwrap_err(), "no answer from 127.0.0.1 for 2 s");
    assert_eq!(sim.hellos(), ["Hearth"]);
}

#[test]
fn the_devices_own_requests_are_answered() {
    let sim = EsphomeSim::start(EsphomeOptions::encrypted());
    let mut r = run(&sim, &[(&sim.key(), EsphomeOptions::KEY)], 30);
    r.described();
    sim.wait_subscriptions(1, T);
    sim.ping_clients();
    sim.wait_pongs(1, T);
    sim.request_time();
    sim.wait_times(1, T);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let told = u64::from(sim.times()[0]);
    assert!(now.abs_diff(told) <= 5, "told {told}, now {now}");
    assert!(r.running());
    // The device asks to disconnect (it is about to restart): answered, and the session ends.
    sim.disconnect_clients();
    sim.wait_disconnect_responses(1, T);
    assert_eq!(
        r.ended().unwrap_err(),
        "esphome node kitchen-node ended the connection (it is restarting or shutting down)"
    );
}

#[test]
fn a_malformed_message_is_rejected_and_the_session_goes_on_but_a_broken_frame_ends_it() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    r.described();
    r.values(&["temperature"]);
    sim.wait_subscriptions(1, T);
    // A SensorStateResponse whose key is a varint instead of fixed32.
    sim.send_raw(25, &[0x08, 0x01]);
    let (source, reason) = r.until(|e| match e {
        AdapterEvent::InputRejected { source, reason } => Some((source.clone(), reason.clone())),
        _ => None,
    });
    assert_eq!(source, format!("esphome node kitchen-node (127.0.0.1:{})", sim.port()));
    assert_eq!(reason, "message type 25 is malformed: field 1 has wire type 0, expected 5");
    sim.set_sensor(TEMPERATURE, 19.0);
    assert_eq!(r.state_of("temperature").0["temperature"], n(19.0));
    // A message type the adapter does not read is skipped quietly.
    sim.send_raw(29, &[0x08, 0x03, 0x1a, 0x02, b'h', b'i']);
    sim.set_sensor(TEMPERATURE, 18.0);
    assert_eq!(r.state_of("temperature").0["temperature"], n(18.0));
    // Bytes that are no frame at all end the session with a sentence.
    sim.send_bytes(b"\x07garbage");
    assert_eq!(r.ended().unwrap_err(), "esphome node kitchen-node sent a malformed frame (bad frame preamble 0x07)");
}

#[test]
fn the_session_ends_cleanly_when_the_adapter_stops() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let mut r = run(&sim, &[], 30);
    r.described();
    r.commands = None;
    assert_eq!(r.ended(), Ok(()));
}

#[test]
fn the_simulators_announcement_is_identified_as_its_session_expects() {
    let sim = EsphomeSim::start(EsphomeOptions::default());
    let found = hearth_esphome::identify(&sim.announcement()).unwrap();
    assert_eq!(found.key, "acbc32890ea9");
    assert_eq!(found.device, sim.device_id());
    assert_eq!(found.name, "Kitchen node");
    assert_eq!((found.manufacturer.as_deref(), found.model.as_deref()), (Some("ESPHome"), Some("esp32dev")));
    assert_eq!(found.kind.as_deref(), Some("esphome"));
    assert_eq!(found.address.as_deref(), Some("127.0.0.1"));
    assert_eq!((found.transport, found.supported), (Transport::Wifi, true));
    let target = hearth_mdns::lan::target(&found, &sim.announcement()).unwrap();
    assert_eq!(target, sim.target());

    let opts =
        EsphomeOptions { project: Some(("athom.smart-plug-v2".into(), "1.0.3".into())), ..EsphomeOptions::encrypted() };
    let plug = EsphomeSim::start(opts);
    let found = hearth_esphome::identify(&plug.announcement()).unwrap();
    assert_eq!((found.manufacturer.as_deref(), found.model.as_deref()), (Some("athom"), Some("smart-plug-v2")));
}

#[test]
fn sim_announces_itself_over_mdns_as_a_device_does() {
    in_namespace("sim_announces_itself_over_mdns_as_a_device_does", || {
        let sim = EsphomeSim::start(EsphomeOptions::encrypted());
        let device = hearth_mdns::Browser::start(&["lo".to_owned()]).unwrap();
        sim.announce(&device);
        let hub = hearth_mdns::Browser::start(&["lo".to_owned()]).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut seen = hub.browse(&[hearth_esphome::SERVICE_TYPE]).unwrap();
        let announced = rt.block_on(async {
            tokio::time::timeout(T, async {
                loop {
                    if let Some(hearth_mdns::Seen::Resolved(a)) = seen.recv().await {
                        return a;
                    }
                }
            })
            .await
            .expect("the announcement within 10 s")
        });
        let expected = sim.announcement();
        assert_eq!(
            (&announced.instance, &announced.name, &announced.host, announced.port, &announced.txt),
            (&expected.instance, &expected.name, &expected.host, expected.port, &expected.txt)
        );
        assert!(announced.addresses.contains(&"127.0.0.1".parse().unwrap()), "{:?}", announced.addresses);
        let found = hearth_esphome::identify(&announced).unwrap();
        assert_eq!((found.key.as_str(), found.name.as_str()), ("acbc32890ea9", "Kitchen node"));
        assert_eq!(found.device, sim.device_id());
    });
}

/// The adapter as the hub runs it, inside a namespace: the announced device waits in the inbox,
/// is accepted, connects with its key, takes a command, goes offline with the reason when it
/// stops answering, comes back, and the adapter stops within a second.
#[test]
fn the_adapter_finds_connects_and_follows_an_announced_device() {
    in_namespace("the_adapter_finds_connects_and_follows_an_announced_device", || {
        use hearth_sdk::Decision;
        use hearth_sdk::testing::Harness;

        let sim = EsphomeSim::start(EsphomeOptions::encrypted());
        let announcer = hearth_mdns::Browser::start(&["lo".to_owned()]).unwrap();
        sim.announce(&announcer);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = json!({"enabled": true, "interfaces": ["lo"], "offline_after_secs": 2});
        let (mut h, run) = Harness::new(Box::new(hearth_esphome::EsphomeAdapter::new()), config, None);
        h.secrets.send_replace(BTreeMap::from([(sim.key(), Secret::new(EsphomeOptions::KEY))]));
        let run = rt.spawn(run);
        let mut next = |what: &str| {
            rt.block_on(async { tokio::time::timeout(T, h.events.recv()).await })
                .unwrap_or_else(|_| panic!("no {what} within {T:?}"))
                .expect("the adapter runs")
                .1
        };
        let mut until = |what: &str, pick: &dyn Fn(&AdapterEvent) -> bool| loop {
            let e = next(what);
            if pick(&e) {
                return e;
            }
        };
        let found = until("found", &|e| matches!(e, AdapterEvent::Found { .. }));
        let AdapterEvent::Found { found } = found else { unreachable!() };
        assert_eq!((found.key.as_str(), found.name.as_str()), ("acbc32890ea9", "Kitchen node"));

        h.inbox.send_replace(BTreeMap::from([(found.key.clone(), Decision::Accepted)]));
        until("the device", &|e| matches!(e, AdapterEvent::Device { device } if device.id == sim.device_id()));
        until(
            "online",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online),
        );
        let context = Context::new("c1", Origin::User { name: "alice".into() });
        let command = Command {
            device: sim.device_id(),
            request: serde_json::from_value(json!({"set": {"relay": true}})).unwrap(),
            context: context.clone(),
        };
        rt.block_on(h.commands.send(command)).unwrap();
        sim.wait_for_command("switch relay state=true", T);
        until(
            "the relay's state",
            &|e| matches!(e, AdapterEvent::State { values, cause: Some(c), .. } if values.get("relay") == Some(&Value::Bool(true)) && c.id == "c1"),
        );

        sim.freeze(true);
        let offline = until(
            "offline",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Offline),
        );
        let AdapterEvent::Availability { availability, .. } = offline else { unreachable!() };
        assert_eq!(availability.reason.as_deref(), Some("no answer from 127.0.0.1 for 2 s"));
        assert_eq!(availability.code.as_deref(), Some("no_answer"));
        sim.reboot();
        until(
            "online again",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online),
        );

        h.shutdown.send_replace(true);
        let stopped = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), run).await });
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    });
}
