//! Home Assistant MQTT discovery through a real broker: a mosquitto on a free loopback port, the
//! adapter running under `hearth_sdk::testing::Harness`, and a plain MQTT client playing the
//! devices (retained discovery configs as real firmwares publish them, from
//! `adapters/mqtt-discovery/tests/fixtures/`, then states, availability and triggers). Commands
//! come back as the payloads the firmwares take; an empty retained config removes a device; the
//! broker going away makes the devices offline and they come back with it. End-to-end tests
//! through the hub's API are the lead's, once the adapter is wired into the hub.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use hearth_mqtt_discovery::MqttDiscoveryAdapter;
use hearth_sdk::{ActionError, AdapterEvent, AdapterState, AvailabilityState, Value};
use hearth_tests::harness::Run;
use hearth_tests::mosquitto::Mosquitto;
use hearth_tests::sim::MqttProbe;
use serde_json::{Value as Json, json};

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(15);

const BULB: &str = "mqtt_discovery:zigbee2mqtt_0x000b57fffec6a5b2";
const WEATHER: &str = "mqtt_discovery:zigbee2mqtt_0x0017880104e45522";
const TASMOTA: &str = "mqtt_discovery:1a2b3c";
const ESPHOME: &str = "mqtt_discovery:a4cf12345678";

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

#[test]
fn real_firmware_configs_states_and_commands_round_trip_through_the_broker() {
    let broker = Mosquitto::start();
    let probe = MqttProbe::connect(broker.addr());
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

    let mut run = Run::start(MqttDiscoveryAdapter::new(), json!({"enabled": true}), Some(broker.settings()));
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
    let (v, _) = run.state_with(WEATHER, "voltage");
    assert_eq!(v["voltage"], Value::Number(2.995));
    assert_eq!(v["temperature"], Value::Number(21.5));
    probe.publish(
        "tele/tasmota_1A2B3C/SENSOR",
        r#"{"AM2301":{"Temperature":19.5,"Humidity":50},"ENERGY":{"Total":3.5,"Power":12}}"#,
        false,
    );
    let (v, _) = run.state_with(TASMOTA, "energy_total");
    assert_eq!(v["energy_total"], Value::Number(3.5));
    assert_eq!(v["am2301_temperature"], Value::Number(19.5));

    // A command goes out in the device's units; the report it causes carries its context.
    let ctx = run.command(BULB, json!({"set": {"brightness": 50, "color_temp": 4000}}), "c1");
    let msg = probe.expect_topic("zigbee2mqtt/bulb/set", T);
    assert_eq!(msg.json(), json!({"state": "ON", "brightness": 127, "color_temp": 250}));
    probe.publish(
        "zigbee2mqtt/bulb",
        r#"{"state":"ON","brightness":127,"color_temp":250,"color_mode":"color_temp"}"#,
        false,
    );
    let (v, cause) = run.state_with(BULB, "brightness");
    assert_eq!(v["brightness"], Value::Number(50.0));
    assert_eq!(v["color_temp"], Value::Number(4000.0));
    assert_eq!(cause, Some(ctx));
    run.command(TASMOTA, json!({"set": {"rl_1": false}}), "c2");
    assert_eq!(probe.expect_topic("cmnd/tasmota_1A2B3C/POWER", T).text(), "OFF");
    run.command(ESPHOME, json!({"set": {"relay": true}}), "c3");
    assert_eq!(probe.expect_topic("livingroom/switch/relay/command", T).text(), "ON");
    run.command(ESPHOME, json!({"set": {"color_desk_lamp": {"hue": 240.0, "saturation": 100.0}}}), "c4");
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
    let mut broker = Mosquitto::start();
    let probe = MqttProbe::connect(broker.addr());
    publish_fixture(&probe, "zigbee2mqtt_climate_sensor");
    publish_fixture(&probe, "device_based");

    // The broker from the adapter's own `mqtt` key; zigbee2mqtt's devices left to its adapter.
    let config = json!({"enabled": true, "ignore_origins": ["Zigbee2MQTT"], "mqtt": {"host": "127.0.0.1", "port": broker.addr().port()}});
    let mut run = Run::start(MqttDiscoveryAdapter::new(), config, None);
    let kitchen = "mqtt_discovery:ea334450945afc";
    let d = run.device(kitchen);
    assert_eq!(d.name, "Kitchen");
    run.availability(kitchen, AvailabilityState::Online);

    // Followed as soon as it is described (a retained state comes whenever it subscribed).
    probe.publish("sensorBedroom/state", r#"{"temperature": -1, "humidity": 40}"#, true);
    let (v, _) = run.state_with(kitchen, "some_unique_component_id1");
    assert_eq!(v["some_unique_component_id1"], Value::Number(-1.0));
    // A flood while nobody reads: nothing is lost.
    for i in 0..300 {
        probe.publish("sensorBedroom/state", format!(r#"{{"temperature": {i}, "humidity": 40}}"#), false);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut last = -1.0;
    for _ in 0..300 {
        let (v, _) = run.state_with(kitchen, "some_unique_component_id1");
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
    broker.restart();
    run.availability(kitchen, AvailabilityState::Online);
    // It follows the state topic again (a retained state reaches it whenever it resubscribed).
    probe.publish("sensorBedroom/state", r#"{"temperature": 18.5, "humidity": 41}"#, true);
    let (v, _) = run.state_with(kitchen, "some_unique_id2");
    assert_eq!(v["some_unique_id2"], Value::Number(41.0));
    run.stop();
    drop(probe);
}
