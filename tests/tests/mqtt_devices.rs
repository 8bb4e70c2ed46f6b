//! Devices that speak MQTT themselves, end to end through the hub's API, on its built-in broker:
//! Tasmota devices (a simulator of four, in Tasmota's native discovery format) appear without
//! any setup, show their state live, take commands, and go offline by their last will.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_tests::Hub;
use hearth_tests::sim::tasmota::{BULB, DUAL, PLUG, SENSORS, TasmotaSim};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

fn device_when(hub: &Hub, token: &str, id: &str, mut ready: impl FnMut(&Value) -> bool) -> Value {
    let start = std::time::Instant::now();
    loop {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(token));
        if d.status == 200 && ready(&d.body) {
            return d.body;
        }
        assert!(start.elapsed() < T, "{id} not as expected within {T:?}: {} {}", d.status, d.text);
        #[allow(clippy::disallowed_methods)] // the test's own thread, polling the API
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn command(hub: &Hub, token: &str, id: &str, body: Value) {
    let a = hub.post(&format!("/api/v1/devices/{id}/commands"), Some(token), body);
    assert!(a.status == 200 || a.status == 202, "{} {}", a.status, a.text);
}

#[test]
fn tasmota_devices_appear_on_the_built_in_broker_and_are_controlled() {
    // The hub's defaults: the built-in broker, Tasmota listened for.
    let hub = Hub::start(&[]);
    let token = hub.onboard();
    let sim = TasmotaSim::start(hub.mqtt.unwrap());

    // Every device, with what it has, its state, online.
    let dual = device_when(&hub, &token, &DUAL.id(), |d| d["state"]["state_relay_2"]["value"].is_boolean());
    assert_eq!(dual["name"], "Kitchen switch");
    assert_eq!(dual["model"], "Sonoff Dual R2");
    assert_eq!(dual["availability"]["state"], "online");
    let plug = device_when(&hub, &token, &PLUG.id(), |d| d["state"]["power"]["value"].is_number());
    assert_eq!(plug["manufacturer"], "Tasmota");
    let bulb = device_when(&hub, &token, &BULB.id(), |d| d["state"]["brightness"]["value"].is_number());
    let keys: Vec<&str> = bulb["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    for k in ["state", "brightness", "color_temperature", "color"] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    // Two sensors measure humidity: each on its own endpoint.
    device_when(&hub, &token, &SENSORS.id(), |d| {
        d["state"]["humidity_am2301"]["value"].is_number() && d["state"]["humidity_bme280"]["value"].is_number()
    });

    // A command reaches the device (its own command topic), and the state comes back.
    command(&hub, &token, &DUAL.id(), json!({"set": {"state_relay_2": true}}));
    sim.wait_for_command(&DUAL, |c, p| c.eq_ignore_ascii_case("POWER2") && p.eq_ignore_ascii_case("ON"), T);
    device_when(&hub, &token, &DUAL.id(), |d| d["state"]["state_relay_2"]["value"] == true);
    command(&hub, &token, &BULB.id(), json!({"set": {"brightness": 40}}));
    device_when(&hub, &token, &BULB.id(), |d| d["state"]["brightness"]["value"] == 40.0);

    // The plug loses power: offline by its last will, saying so; back when it returns.
    sim.power_off(&PLUG);
    let d = device_when(&hub, &token, &PLUG.id(), |d| d["availability"]["state"] == "offline");
    assert!(d["availability"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{d}");
    sim.power_on(&PLUG);
    device_when(&hub, &token, &PLUG.id(), |d| d["availability"]["state"] == "online");
}

#[test]
fn a_device_that_describes_itself_for_home_assistant_is_a_device_of_the_hub() {
    // An ESPHome node in MQTT mode, as its firmware publishes itself (fixture from its source).
    let fixture = hearth_tests::repo_json("adapters/mqtt-discovery/tests/fixtures/esphome.json");
    let hub = Hub::start(&[]);
    let token = hub.onboard();
    let node = hearth_tests::sim::MqttProbe::connect(hub.mqtt.unwrap());
    node.publish("livingroom/status", "online", true);
    for m in fixture["messages"].as_array().unwrap() {
        node.publish(m["topic"].as_str().unwrap(), m["payload"].as_str().unwrap(), true);
    }
    node.publish("livingroom/sensor/living_room_temperature/state", "21.7", true);
    node.publish("livingroom/switch/relay/state", "OFF", true);
    let id = "mqtt_discovery:a4cf12345678";
    let d = device_when(&hub, &token, id, |d| {
        d["state"]["living_room_temperature"]["value"] == 21.7 && d["availability"]["state"] == "online"
    });
    assert_eq!(d["name"], "livingroom");
    assert_eq!(d["manufacturer"], "Espressif");

    // A command goes to the node's command topic in its own words; its state comes back.
    node.subscribe("livingroom/switch/relay/command");
    command(&hub, &token, id, json!({"set": {"relay": true}}));
    let sent = node.expect_topic("livingroom/switch/relay/command", T);
    assert_eq!(sent.text(), "ON");
    node.publish("livingroom/switch/relay/state", "ON", true);
    device_when(&hub, &token, id, |d| d["state"]["relay"]["value"] == true);

    // The node goes away: offline; its configs removed: the device is gone.
    node.publish("livingroom/status", "offline", true);
    device_when(&hub, &token, id, |d| d["availability"]["state"] == "offline");
    for m in fixture["messages"].as_array().unwrap() {
        node.publish(m["topic"].as_str().unwrap(), "", true);
    }
    hub.wait_for(T, || (hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).status == 404).then_some(()));
}
