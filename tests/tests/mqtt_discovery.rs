//! Home Assistant MQTT discovery through a real broker: a mosquitto on a free loopback port, the
//! adapter running under `hearth_sdk::testing::Harness`, and a plain MQTT client playing the
//! devices (retained discovery configs as real firmwares publish them, from
//! `adapters/mqtt-discovery/tests/fixtures/`, then states, availability and triggers). Commands
//! come back as the payloads the firmwares take; an empty retained config removes a device; the
//! broker going away makes the devices offline and they come back with it. End-to-end tests
//! through the hub's API are the lead's, once the adapter is wired into the hub.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use hearth_mqtt_discovery::MqttDiscoveryAdapter;
use hearth_sdk::testing::Harness;
use hearth_sdk::{
    ActionError, ActionRequest, AdapterError, AdapterEvent, AdapterState, AvailabilityState, Command, CommandRequest,
    Context, DeviceDescriptor, DeviceId, MqttSettings, Origin, Value,
};
use hearth_tests::free_port;
use hearth_tests::sim::MqttProbe;
use serde_json::{Value as Json, json};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(15);

const BULB: &str = "mqtt_discovery:zigbee2mqtt_0x000b57fffec6a5b2";
const WEATHER: &str = "mqtt_discovery:zigbee2mqtt_0x0017880104e45522";
const TASMOTA: &str = "mqtt_discovery:1a2b3c";
const ESPHOME: &str = "mqtt_discovery:a4cf12345678";

/// A mosquitto of the test's own on a free loopback port; killed when dropped.
struct Broker {
    conf: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("per_listener_settings false\npersistence false\nlog_dest stderr\nuser root\nlistener {} 127.0.0.1\nallow_anonymous true\n", addr.port()),
        )
        .unwrap();
        let mut b = Broker { conf, addr, child: None };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let child = Process::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (tests/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + T;
        while TcpStream::connect(self.addr).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn settings(&self) -> MqttSettings {
        MqttSettings { host: "127.0.0.1".into(), port: self.addr.port(), username: None, password: None, tls: None }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The messages of a fixture of the adapter's crate: (topic, payload).
fn fixture(name: &str) -> Vec<(String, Vec<u8>)> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../adapters/mqtt-discovery/tests/fixtures/{name}.json"));
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let payload = match &m["payload"] {
                Json::String(s) => s.clone().into_bytes(),
                other => serde_json::to_vec(other).unwrap(),
            };
            (m["topic"].as_str().unwrap().to_owned(), payload)
        })
        .collect()
}

fn publish_fixture(probe: &MqttProbe, name: &str) {
    for (topic, payload) in fixture(name) {
        probe.publish(&topic, payload, true);
    }
}

/// The adapter on a runtime of its own, its events read as a test needs them.
struct Run {
    rt: Runtime,
    h: Harness,
    task: Option<JoinHandle<Result<(), AdapterError>>>,
    seen: Vec<AdapterEvent>,
    /// The latest description and availability of each device seen so far.
    latest: BTreeMap<String, DeviceDescriptor>,
    avail: BTreeMap<String, AvailabilityState>,
    contexts: u32,
}

impl Run {
    fn start(config: Json, mqtt: Option<MqttSettings>) -> Run {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (h, run) = Harness::new(Box::new(MqttDiscoveryAdapter::new()), config, mqtt);
        let task = rt.spawn(run);
        Run { rt, h, task: Some(task), seen: Vec::new(), latest: BTreeMap::new(), avail: BTreeMap::new(), contexts: 0 }
    }

    fn summary(&self) -> String {
        self.seen
            .iter()
            .map(|e| match e {
                AdapterEvent::Device { device } => format!("device {}", device.id),
                AdapterEvent::State { device, values, .. } => format!("state {device} {values:?}"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join("\n  ")
    }

    /// The first event (from now on) for which `f` gives something.
    fn expect<X>(&mut self, what: &str, mut f: impl FnMut(&AdapterEvent) -> Option<X>) -> X {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = self.h.next();
            match self.rt.block_on(async { tokio::time::timeout(left, next).await }) {
                Ok(Some(ev)) => {
                    match &ev {
                        AdapterEvent::Device { device } => {
                            self.latest.insert(device.id.to_string(), device.clone());
                        }
                        AdapterEvent::Availability { device, availability } => {
                            self.avail.insert(device.to_string(), availability.state);
                        }
                        _ => {}
                    }
                    self.seen.push(ev.clone());
                    if let Some(x) = f(&ev) {
                        return x;
                    }
                }
                Ok(None) => panic!("the adapter stopped while waiting for {what}; events:\n  {}", self.summary()),
                Err(_) => panic!("no {what} within {T:?}; events:\n  {}", self.summary()),
            }
        }
    }

    /// The device's description once `pred` holds for it (at once if it already does).
    fn device_where(&mut self, id: &str, what: &str, pred: impl Fn(&DeviceDescriptor) -> bool) -> DeviceDescriptor {
        if let Some(d) = self.latest.get(id).filter(|d| pred(d)) {
            return d.clone();
        }
        self.expect(&format!("the device {id} {what}"), |e| match e {
            AdapterEvent::Device { device } if device.id.as_str() == id && pred(device) => Some(device.clone()),
            _ => None,
        })
    }

    fn device(&mut self, id: &str) -> DeviceDescriptor {
        self.device_where(id, "described", |_| true)
    }

    fn availability(&mut self, id: &str, state: AvailabilityState) -> Option<String> {
        self.expect(&format!("{id} {state:?}"), |e| match e {
            AdapterEvent::Availability { device, availability }
                if device.as_str() == id && availability.state == state =>
            {
                Some(availability.reason.clone())
            }
            _ => None,
        })
    }

    /// Waits until each of `ids` has been reported online, in any order.
    fn all_online(&mut self, ids: &[&str]) {
        let mut left: Vec<&str> = ids.to_vec();
        left.retain(|x| self.avail.get(*x) != Some(&AvailabilityState::Online));
        while !left.is_empty() {
            let id = self.expect(&format!("{left:?} online"), |e| match e {
                AdapterEvent::Availability { device, availability }
                    if availability.state == AvailabilityState::Online =>
                {
                    Some(device.to_string())
                }
                _ => None,
            });
            left.retain(|x| *x != id);
        }
    }

    /// The next state report of `id` that has `key`: its values and cause.
    fn state(&mut self, id: &str, key: &str) -> (BTreeMap<String, Value>, Option<Context>) {
        self.expect(&format!("a state of {id} with {key}"), |e| match e {
            AdapterEvent::State { device, values, cause } if device.as_str() == id && values.contains_key(key) => {
                Some((values.clone(), cause.clone()))
            }
            _ => None,
        })
    }

    fn command(&mut self, id: &str, set: Json) -> Context {
        self.contexts += 1;
        let context = Context::new(format!("ctx{}", self.contexts), Origin::User { name: "test".into() });
        let set: BTreeMap<String, Value> = serde_json::from_value(set).unwrap();
        let cmd = Command {
            device: DeviceId::parse(id).unwrap(),
            request: CommandRequest { set, ..CommandRequest::default() },
            context: context.clone(),
        };
        self.h.commands.blocking_send(cmd).unwrap();
        context
    }

    fn action(&mut self, action: &str, params: Json) -> Result<Json, ActionError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let context = Context::new("action", Origin::User { name: "test".into() });
        self.h.actions.blocking_send(ActionRequest { action: action.into(), params, context, reply }).unwrap();
        self.rt.block_on(async { tokio::time::timeout(T, rx).await }).unwrap().unwrap()
    }

    /// Shuts the adapter down; it must return within a second.
    fn stop(mut self) {
        self.h.shutdown.send(true).unwrap();
        let task = self.task.take().unwrap();
        let res = self.rt.block_on(async {
            let mut task = task;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            // Keep reading, so a last status never waits for room in the channel.
            loop {
                tokio::select! {
                    r = &mut task => return Some(r),
                    _ = self.h.next() => {}
                    _ = tokio::time::sleep_until(deadline) => return None,
                }
            }
        });
        let res = res.expect("the adapter did not return within a second of shutdown");
        assert!(matches!(res, Ok(Ok(()))), "{res:?}");
    }
}

#[test]
fn real_firmware_configs_states_and_commands_round_trip_through_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let probe = MqttProbe::connect(broker.addr);
    for name in ["zigbee2mqtt_bulb", "zigbee2mqtt_climate_sensor", "zigbee2mqtt_button", "tasmota", "esphome"] {
        publish_fixture(&probe, name);
    }
    // Hearth's own write side: never read back.
    probe.publish(
        "homeassistant/light/hearth_demo_lamp/light/config",
        json!({"name": null, "schema": "json", "command_topic": "hearth/demo_lamp/set", "state_topic": "hearth/demo_lamp",
               "unique_id": "hearth_demo_lamp_light", "origin": {"name": "Hearth"},
               "device": {"identifiers": ["hearth_demo_lamp"], "name": "Lamp"}})
        .to_string(),
        true,
    );
    probe.publish("zigbee2mqtt/bridge/state", r#"{"state":"online"}"#, true);
    probe.publish("tele/tasmota_1A2B3C/LWT", "Online", true);
    probe.publish("livingroom/status", "online", true);
    probe.subscribe("zigbee2mqtt/+/set");
    probe.subscribe("cmnd/#");
    probe.subscribe("livingroom/+/+/command");

    let mut run = Run::start(json!({"enabled": true}), Some(broker.settings()));
    run.expect("the adapter running", |e| match e {
        AdapterEvent::Status { status } if status.state == AdapterState::Running => Some(()),
        _ => None,
    });
    // Each device described as its configs arrive, in whatever order the broker sends them.
    let bulb = run.device_where(BULB, "with its effects", |d| d.feature("effect").is_some());
    assert_eq!(bulb.name, "bulb");
    run.device_where(TASMOTA, "with all its features", |d| d.features.len() == 8);
    run.device_where(WEATHER, "with all its features", |d| d.features.len() == 5);
    run.device_where(ESPHOME, "with all its features", |d| d.features.len() == 6);
    run.all_online(&[BULB, WEATHER, TASMOTA, ESPHOME]);

    // States in, in canonical units.
    probe.publish(
        "zigbee2mqtt/weather_sensor",
        r#"{"temperature":21.5,"humidity":45,"pressure":1012,"battery":87,"voltage":2995}"#,
        false,
    );
    let (v, _) = run.state(WEATHER, "voltage");
    assert_eq!(v["voltage"], Value::Number(2.995));
    assert_eq!(v["temperature"], Value::Number(21.5));
    probe.publish(
        "tele/tasmota_1A2B3C/SENSOR",
        r#"{"AM2301":{"Temperature":19.5,"Humidity":50},"ENERGY":{"Total":3.5,"Power":12}}"#,
        false,
    );
    let (v, _) = run.state(TASMOTA, "energy_total");
    assert_eq!(v["energy_total"], Value::Number(3.5));
    assert_eq!(v["am2301_temperature"], Value::Number(19.5));

    // A command goes out in the device's units; the report it causes carries its context.
    let ctx = run.command(BULB, json!({"brightness": 50, "color_temp": 4000}));
    let msg = probe.expect_topic("zigbee2mqtt/bulb/set", T);
    assert_eq!(msg.json(), json!({"state": "ON", "brightness": 127, "color_temp": 250}));
    probe.publish(
        "zigbee2mqtt/bulb",
        r#"{"state":"ON","brightness":127,"color_temp":250,"color_mode":"color_temp"}"#,
        false,
    );
    let (v, cause) = run.state(BULB, "brightness");
    assert_eq!(v["brightness"], Value::Number(50.0));
    assert_eq!(v["color_temp"], Value::Number(4000.0));
    assert_eq!(cause, Some(ctx));
    run.command(TASMOTA, json!({"rl_1": false}));
    assert_eq!(probe.expect_topic("cmnd/tasmota_1A2B3C/POWER", T).text(), "OFF");
    run.command(ESPHOME, json!({"relay": true}));
    assert_eq!(probe.expect_topic("livingroom/switch/relay/command", T).text(), "ON");
    run.command(ESPHOME, json!({"color_desk_lamp": {"hue": 240.0, "saturation": 100.0}}));
    let msg = probe.expect_topic("livingroom/light/desk_lamp/command", T);
    assert_eq!(msg.json(), json!({"state": "ON", "color": {"r": 0, "g": 0, "b": 255}}));

    // Triggers fire events, never state.
    probe.publish("stat/tasmota_1A2B3C/BUTTON1T", r#"{"TRIG":"SINGLE"}"#, false);
    let (feature, event) = run.expect("the button's press", |e| match e {
        AdapterEvent::Event { device, feature, event, .. } if device.as_str() == TASMOTA => {
            Some((feature.clone(), event.clone()))
        }
        _ => None,
    });
    assert_eq!((feature.as_str(), event.as_str()), ("button_1", "short_press"));
    probe.publish("zigbee2mqtt/button/action", "hold", false);
    let event = run.expect("the zigbee button's hold", |e| match e {
        AdapterEvent::Event { device, feature, event, .. }
            if device.as_str().ends_with("0x0017880104e45520") && feature == "action" =>
        {
            Some(event.clone())
        }
        _ => None,
    });
    assert_eq!(event, "hold");

    // What is not supported is listed per device.
    let report = run.action("unsupported", json!({"device": "mqtt_discovery:zigbee2mqtt_0x0017880104e45520"})).unwrap();
    assert_eq!(report["devices"][0]["unsupported"][0]["option"], "value_template");
    assert!(matches!(
        run.action("unsupported", json!({"device": "mqtt_discovery:nope"})),
        Err(ActionError::NotFound(_))
    ));

    // The device says it is offline, then online again.
    probe.publish("tele/tasmota_1A2B3C/LWT", "Offline", true);
    let reason = run.availability(TASMOTA, AvailabilityState::Offline).unwrap_or_default();
    assert!(reason.contains("tele/tasmota_1A2B3C/LWT"), "{reason}");
    probe.publish("tele/tasmota_1A2B3C/LWT", "Online", true);
    run.availability(TASMOTA, AvailabilityState::Online);

    // An empty retained config removes the entity, and the device with its last one.
    for (topic, _) in fixture("esphome") {
        probe.publish(&topic, "", true);
    }
    run.expect("the ESPHome device removed", |e| match e {
        AdapterEvent::DeviceRemoved { device } if device.as_str() == ESPHOME => Some(()),
        _ => None,
    });
    assert!(
        !run.seen.iter().any(|e| matches!(e, AdapterEvent::Device { device } if device.id.as_str().contains("hearth")))
    );
    run.stop();
    drop(probe);
}

#[test]
fn ignored_origins_a_flood_and_a_broker_outage() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let probe = MqttProbe::connect(broker.addr);
    publish_fixture(&probe, "zigbee2mqtt_climate_sensor");
    publish_fixture(&probe, "device_based");

    // The broker from the adapter's own `mqtt` key; zigbee2mqtt's devices left to its adapter.
    let config = json!({"enabled": true, "ignore_origins": ["Zigbee2MQTT"], "mqtt": {"host": "127.0.0.1", "port": broker.addr.port()}});
    let mut run = Run::start(config, None);
    let kitchen = "mqtt_discovery:ea334450945afc";
    let d = run.device(kitchen);
    assert_eq!(d.name, "Kitchen");
    run.availability(kitchen, AvailabilityState::Online);

    // Followed as soon as it is described (a retained state comes whenever it subscribed).
    probe.publish("sensorBedroom/state", r#"{"temperature": -1, "humidity": 40}"#, true);
    let (v, _) = run.state(kitchen, "some_unique_component_id1");
    assert_eq!(v["some_unique_component_id1"], Value::Number(-1.0));
    // A flood while nobody reads: nothing is lost.
    for i in 0..300 {
        probe.publish("sensorBedroom/state", format!(r#"{{"temperature": {i}, "humidity": 40}}"#), false);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut last = -1.0;
    for _ in 0..300 {
        let (v, _) = run.state(kitchen, "some_unique_component_id1");
        let t = v["some_unique_component_id1"].as_f64().unwrap();
        assert_eq!(t, last + 1.0, "in order, none lost");
        last = t;
    }
    assert!(!run.seen.iter().any(|e| matches!(e, AdapterEvent::Device { device } if device.id.as_str() == WEATHER)));

    // The broker goes away: offline with the reason; it comes back, and so do the devices.
    broker.kill();
    let reason = run.availability(kitchen, AvailabilityState::Offline).unwrap_or_default();
    assert!(reason.contains("unreachable"), "{reason}");
    run.expect("the adapter degraded", |e| match e {
        AdapterEvent::Status { status } if status.state == AdapterState::Degraded => Some(()),
        _ => None,
    });
    broker.spawn();
    run.availability(kitchen, AvailabilityState::Online);
    // It follows the state topic again (a retained state reaches it whenever it resubscribed).
    probe.publish("sensorBedroom/state", r#"{"temperature": 18.5, "humidity": 41}"#, true);
    let (v, _) = run.state(kitchen, "some_unique_id2");
    assert_eq!(v["some_unique_id2"], Value::Number(41.0));
    run.stop();
    drop(probe);
}
