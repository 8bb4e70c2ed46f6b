//! Hearth's devices in Home Assistant, end to end: with `[home_assistant] publish = true`, a
//! client subscribed to the broker as Home Assistant is (`homeassistant/#`, `hearth/#`) finds a
//! discovery config for every demo device, their states and availability, and a command it
//! publishes reaches the device and comes back as state; nonsense changes nothing; a device
//! going offline is `offline` there, a removed one is forgotten (its configs emptied); a device
//! that describes itself to Home Assistant already is not published again; and Home Assistant
//! coming online gets everything again.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use hearth_tests::Hub;
use hearth_tests::sim::tasmota::{PLUG, TasmotaSim};
use hearth_tests::sim::{MqttProbe, Msg};
use serde_json::{Map, Value, json};

const T: Duration = Duration::from_secs(20);
const CONFIG: &str = "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n[home_assistant]\npublish = true\n";

/// Every retained message under `filter`, once `done` holds for what has come and the broker
/// has then been quiet for a moment (the hub publishes device by device, and a slow machine can
/// pause between two devices for longer than the quiet moment).
fn retained(probe: &MqttProbe, filter: &str, done: impl Fn(&HashMap<String, Msg>) -> bool) -> HashMap<String, Msg> {
    probe.subscribe(filter);
    let prefix = filter.trim_end_matches('#');
    let start = std::time::Instant::now();
    loop {
        let all: HashMap<String, Msg> = probe
            .settle(Duration::from_millis(500), T)
            .into_iter()
            .filter(|m| m.retain && m.topic.starts_with(prefix))
            .map(|m| (m.topic.clone(), m))
            .collect();
        if done(&all) || start.elapsed() > T {
            return all;
        }
    }
}

fn device(hub: &Hub, token: &str, id: &str) -> Value {
    hub.get(&format!("/api/v1/devices/{id}"), Some(token)).body
}

fn all_devices(hub: &Hub, token: &str) -> Vec<Value> {
    hub.get("/api/v1/devices", Some(token)).body.as_array().cloned().unwrap_or_default()
}

/// A device's values as the API gives them, `{"<feature>": value}`.
fn values(d: &Value) -> Value {
    let state = d["state"].as_object().cloned().unwrap_or_default();
    Value::Object(state.into_iter().map(|(k, s)| (k, s["value"].clone())).collect::<Map<_, _>>())
}

/// The node of a demo device (its id is topic-safe): `demo:living_lamp` is `demo-living_lamp`.
fn node_of(d: &Value) -> String {
    d["id"].as_str().unwrap().replacen(':', "-", 1)
}

#[test]
fn every_device_is_published_for_home_assistant_and_takes_its_commands() {
    let hub = Hub::start_with_config(CONFIG, &[]);
    let token = hub.onboard();
    let devices = hub.wait_for(T, || {
        let list = hub.get("/api/v1/devices", Some(&token)).body;
        let list = list.as_array().cloned().unwrap_or_default();
        (list.len() >= 13).then_some(list)
    });
    let probe = MqttProbe::connect(hub.mqtt.unwrap());
    let nodes: Vec<String> = devices.iter().map(|d| d["id"].as_str().unwrap().replacen(':', "-", 1)).collect();
    let configs = retained(&probe, "homeassistant/#", |all| {
        nodes.iter().all(|node| all.keys().any(|t| t.contains(&format!("/{node}/"))))
    });

    // Every device has its configs, under its own identifier, made by Hearth.
    for d in &devices {
        let node = d["id"].as_str().unwrap().replacen(':', "-", 1);
        let mine: Vec<&Msg> = configs.values().filter(|m| m.topic.contains(&format!("/{node}/"))).collect();
        assert!(!mine.is_empty(), "no config for {node}: {:?}", configs.keys().collect::<Vec<_>>());
        for m in mine {
            let c = m.json();
            assert!(m.retain, "{} is retained", m.topic);
            assert_eq!(c["device"]["identifiers"], json!([format!("hearth_{node}")]), "{}", m.topic);
            assert_eq!(c["device"]["name"], d["name"], "{}", m.topic);
            assert_eq!(c["origin"]["name"], "Hearth");
            assert_eq!(c["availability"][0]["topic"], "hearth/status");
        }
    }
    let config = |topic: &str| configs.get(topic).unwrap_or_else(|| panic!("no {topic}")).json();
    // A color light is one light, in the JSON schema; a thermometer's sensors have their class
    // and unit; a door sensor is a door; a button fires events; a blind is a cover.
    let lamp = config("homeassistant/light/demo-living_ceiling/light/config");
    assert_eq!(lamp["schema"], "json");
    assert_eq!(lamp["supported_color_modes"], json!(["hs", "color_temp"]));
    let dimmer = config("homeassistant/light/demo-living_lamp/light/config");
    assert_eq!(dimmer["supported_color_modes"], json!(["brightness"]));
    let climate = config("homeassistant/sensor/demo-living_climate/temperature/config");
    assert_eq!(
        (climate["device_class"].clone(), climate["unit_of_measurement"].clone()),
        (json!("temperature"), json!("°C"))
    );
    assert_eq!(config("homeassistant/binary_sensor/demo-front_door/contact/config")["device_class"], "door");
    assert_eq!(config("homeassistant/event/demo-hall_button/action/config")["device_class"], "button");
    assert!(configs.contains_key("homeassistant/cover/demo-bedroom_blind/cover_position/config"));

    // States and availability, as Home Assistant reads them: every device's values are the
    // API's, and every light's state (JSON schema) says what the API says.
    let lights: Vec<(String, String)> = configs
        .iter()
        .filter(|(t, _)| t.starts_with("homeassistant/light/"))
        .map(|(t, m)| (t.split('/').nth(2).unwrap().to_owned(), m.json()["state_topic"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(lights.len(), 4, "the demo's four lights: {lights:?}");
    let states = retained(&probe, "hearth/#", |all| {
        all.contains_key("hearth/status")
            && nodes.iter().all(|node| {
                all.contains_key(&format!("hearth/{node}/availability"))
                    && all.contains_key(&format!("hearth/{node}/state"))
            })
            && lights.iter().all(|(_, topic)| all.contains_key(topic))
    });
    assert_eq!(states["hearth/status"].text(), "online");
    let now = all_devices(&hub, &token);
    assert_eq!(now.len(), devices.len());
    for d in &now {
        let node = node_of(d);
        assert_eq!(states[&format!("hearth/{node}/availability")].text(), "online", "{node}");
        assert_eq!(states[&format!("hearth/{node}/state")].json(), values(d), "{node}");
    }
    for (node, topic) in &lights {
        let d = now.iter().find(|d| &node_of(d) == node).unwrap();
        let light = states[topic].json();
        let on = d["state"]["state"]["value"].as_bool().unwrap();
        assert_eq!(light["state"], if on { "ON" } else { "OFF" }, "{node}: {light}");
        assert_eq!(light["brightness"], d["state"]["brightness"]["value"], "{node}: {light}");
    }

    // Home Assistant turns the kitchen light on at 37 % warm white: it does it, and Home
    // Assistant sees it in the light's state.
    probe.publish_json(
        "hearth/demo-kitchen_light/light/light/set",
        &json!({"state": "ON", "brightness": 37, "color_temp": 2700}),
    );
    hub.wait_for(T, || {
        let d = device(&hub, &token, "demo:kitchen_light");
        (d["state"]["brightness"]["value"] == 37.0 && d["state"]["color_temperature"]["value"] == 2700.0).then_some(())
    });
    let light =
        probe.expect(T, |m| m.topic == "hearth/demo-kitchen_light/light/light/state" && m.json()["brightness"] == 37.0);
    assert_eq!(light.json()["state"], "ON");
    assert_eq!(light.json()["color_mode"], "color_temp");
    // And the kettle's plug switched, through its switch.
    let was = device(&hub, &token, "demo:plug_kettle")["state"]["state"]["value"].as_bool().unwrap();
    probe.publish("hearth/demo-plug_kettle/set", format!(r#"{{"state": {}}}"#, !was), false);
    hub.wait_for(T, || (device(&hub, &token, "demo:plug_kettle")["state"]["state"]["value"] == !was).then_some(()));
    // The history says who did it.
    let h = hub.get("/api/v1/devices/demo:plug_kettle/history?feature=state", Some(&token)).body;
    // (The demo kettle may switch itself off right after, so the change is found by its value.)
    let entries = h["entries"].as_array().unwrap();
    let switched = entries.iter().rev().find(|e| e["value"] == !was).unwrap_or_else(|| panic!("{h}"));
    assert_eq!(switched["context"]["origin"]["kind"], "home_assistant", "{h}");

    // A button press reaches Home Assistant as an event.
    probe.subscribe("hearth/demo-hall_button/event/#");
    let pressed = hub.post(
        "/api/v1/adapters/demo/actions/simulate",
        Some(&token),
        json!({"device": "hall_button", "event": "double"}),
    );
    assert_eq!(pressed.status, 200, "{}", pressed.text);
    let event = probe.expect_topic("hearth/demo-hall_button/event/action", T);
    assert_eq!(event.json(), json!({"event_type": "double"}));

    // Nonsense from the broker changes nothing: not JSON, a state neither ON nor OFF, values of
    // the wrong type or out of range, a feature or a light the lamp does not have, a device
    // Hearth does not have. The floor lamp is off, and stays so.
    let before: HashMap<String, Value> = all_devices(&hub, &token).iter().map(|d| (node_of(d), values(d))).collect();
    assert_eq!(before["demo-living_lamp"]["state"], false);
    let lamp = "hearth/demo-living_lamp";
    for (topic, payload) in [
        (format!("{lamp}/light/light/set"), "not json"),
        (format!("{lamp}/light/light/set"), r#"{"state": "MAYBE", "brightness": 90}"#),
        (format!("{lamp}/light/light/set"), r#"{"brightness": "bright"}"#),
        (format!("{lamp}/light/light_2/set"), r#"{"state": "ON"}"#),
        (format!("{lamp}/set"), r#"{"brightness": "bright"}"#),
        (format!("{lamp}/set"), r#"{"brightness": 250}"#),
        (format!("{lamp}/set"), r#"{"state": 1}"#),
        (format!("{lamp}/set"), r#"{"state": true, "no_such_feature": true}"#),
        (format!("{lamp}/set"), "[true]"),
        ("hearth/demo-nothing/set".to_owned(), r#"{"state": true}"#),
    ] {
        probe.publish(&topic, payload, false);
    }
    // Then a command that is right, after them on the same connection: once it has taken effect,
    // the hub has handled the nonsense before it.
    probe.publish("hearth/demo-thermostat/set", r#"{"setpoint": 23.5}"#, false);
    hub.wait_for(T, || (device(&hub, &token, "demo:thermostat")["state"]["setpoint"]["value"] == 23.5).then_some(()));
    let after: HashMap<String, Value> = all_devices(&hub, &token).iter().map(|d| (node_of(d), values(d))).collect();
    for (node, was) in &before {
        if node != "demo-thermostat" {
            assert_eq!(&after[node], was, "{node} changed");
        }
    }
    let h = hub.get("/api/v1/devices/demo:living_lamp/history", Some(&token)).body;
    let by_ha: Vec<&Value> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["context"]["origin"]["kind"] == "home_assistant")
        .collect();
    assert!(by_ha.is_empty(), "nothing from Home Assistant reached the lamp: {by_ha:?}");
    assert_eq!(hub.get("/healthz", None).status, 200);

    // Removed devices are forgotten by Home Assistant: each of their configs emptied (retained,
    // zero-length), and their states and availability too.
    for (id, node) in [("demo:front_door", "demo-front_door"), ("demo:bedroom_light", "demo-bedroom_light")] {
        let mine: Vec<String> = configs.keys().filter(|t| t.contains(&format!("/{node}/"))).cloned().collect();
        assert!(!mine.is_empty(), "{node}");
        let removed = hub.request("DELETE", &format!("/api/v1/devices/{id}"), Some(&token), None);
        assert!(removed.status == 200 || removed.status == 204, "{} {}", removed.status, removed.text);
        let mut emptied = mine.clone();
        emptied.extend(["state", "availability"].map(|t| format!("hearth/{node}/{t}")));
        if node == "demo-bedroom_light" {
            emptied.push(format!("hearth/{node}/light/light/state"));
        }
        for topic in &emptied {
            probe.expect(T, |m| &m.topic == topic && m.payload.is_empty());
        }
    }
    let fresh = MqttProbe::connect(hub.mqtt.unwrap());
    let left = retained(&fresh, "homeassistant/#", |all| all.keys().any(|t| t.contains("/demo-hall_button/")));
    let gone: Vec<&String> =
        left.keys().filter(|t| t.contains("/demo-front_door/") || t.contains("/demo-bedroom_light/")).collect();
    assert!(gone.is_empty(), "the removed devices' configs stay: {gone:?}");
    let states = retained(&fresh, "hearth/#", |all| all.contains_key("hearth/demo-hall_button/state"));
    let gone: Vec<&String> =
        states.keys().filter(|t| t.contains("/demo-front_door/") || t.contains("/demo-bedroom_light/")).collect();
    assert!(gone.is_empty(), "the removed devices' states stay: {gone:?}");

    // The hub's own discovery reader (on by default) leaves Hearth's configs alone: no device
    // came back as a copy of itself.
    let now = hub.get("/api/v1/devices", Some(&token)).body;
    assert_eq!(now.as_array().unwrap().len(), devices.len() - 2, "all but the two removed: {now}");
    assert!(hub.get("/api/v1/adapters", Some(&token)).text.contains("mqtt_discovery"));
}

#[test]
fn a_device_going_offline_is_offline_in_home_assistant() {
    // A Tasmota plug on the built-in broker, published for Home Assistant.
    let hub = Hub::start_with_config("[home_assistant]\npublish = true\n", &[]);
    let token = hub.onboard();
    let sim = TasmotaSim::start_with(hub.mqtt.unwrap(), &[PLUG]);
    let id = PLUG.id();
    let plug = hub.wait_for(T, || {
        let d = device(&hub, &token, &id);
        (d["availability"]["state"] == "online").then_some(d)
    });
    // Home Assistant finds the plug's availability topic in its configs.
    let probe = MqttProbe::connect(hub.mqtt.unwrap());
    let configs =
        retained(&probe, "homeassistant/#", |all| all.values().any(|m| m.json()["device"]["name"] == plug["name"]));
    let config = configs.values().find(|m| m.json()["device"]["name"] == plug["name"]).unwrap().json();
    assert_eq!(config["availability_mode"], "all");
    let topic = config["availability"][1]["topic"].as_str().unwrap().to_owned();
    let states = retained(&probe, "hearth/#", |all| all.contains_key(&topic));
    assert_eq!(states[&topic].text(), "online");

    // The plug loses power: Home Assistant is told it is offline, and a client that comes later
    // finds it so too (retained).
    sim.power_off(&PLUG);
    probe.expect(T, |m| m.topic == topic && m.text() == "offline");
    hub.wait_for(T, || (device(&hub, &token, &id)["availability"]["state"] == "offline").then_some(()));
    let later = MqttProbe::connect(hub.mqtt.unwrap());
    let now = retained(&later, "hearth/#", |all| all.contains_key(&topic));
    assert_eq!(now[&topic].text(), "offline");
    assert!(now[&topic].retain);

    // Back on: online again.
    sim.power_on(&PLUG);
    probe.expect(T, |m| m.topic == topic && m.text() == "online");
}

#[test]
fn a_device_that_describes_itself_to_home_assistant_is_not_published_again() {
    let hub = Hub::start_with_config(CONFIG, &[]);
    let token = hub.onboard();
    let node = "mqtt_discovery-a4cf12345678";
    // What an earlier version of Hearth published for this device, still retained.
    let firmware = MqttProbe::connect(hub.mqtt.unwrap());
    let stale = format!("homeassistant/switch/{node}/relay/config");
    let stale_config = json!({
        "name": "relay", "unique_id": format!("hearth_{node}_relay"), "state_topic": format!("hearth/{node}/state"),
        "device": {"identifiers": [format!("hearth_{node}")], "name": "livingroom"}, "origin": {"name": "Hearth"},
    });
    firmware.publish(&stale, stale_config.to_string(), true);
    // An ESPHome node in MQTT mode describes itself, as its firmware does (fixture from its source).
    let fixture = hearth_tests::repo_json("adapters/mqtt-discovery/tests/fixtures/esphome.json");
    let own: Vec<String> =
        fixture["messages"].as_array().unwrap().iter().map(|m| m["topic"].as_str().unwrap().to_owned()).collect();
    firmware.publish("livingroom/status", "online", true);
    for m in fixture["messages"].as_array().unwrap() {
        firmware.publish(m["topic"].as_str().unwrap(), m["payload"].as_str().unwrap(), true);
    }
    firmware.publish("livingroom/sensor/living_room_temperature/state", "21.7", true);
    let id = "mqtt_discovery:a4cf12345678";
    hub.wait_for(T, || (device(&hub, &token, id)["state"]["living_room_temperature"]["value"] == 21.7).then_some(()));

    // Something happens at a demo device after that: once Home Assistant sees it, the hub has
    // handled everything that came before from the ESPHome node.
    let probe = MqttProbe::connect(hub.mqtt.unwrap());
    probe.subscribe("hearth/demo-living_climate/state");
    let simulated = hub.post(
        "/api/v1/adapters/demo/actions/simulate",
        Some(&token),
        json!({"device": "living_climate", "values": {"temperature": 25.5}}),
    );
    assert_eq!(simulated.status, 200, "{}", simulated.text);
    probe.expect(T, |m| m.topic == "hearth/demo-living_climate/state" && m.json()["temperature"] == 25.5);

    // Home Assistant sees the node once, as it describes itself: Hearth publishes no config, no
    // state and no availability of its own for it (and the old ones are gone); the demo devices
    // are there.
    let demo: Vec<String> = all_devices(&hub, &token)
        .iter()
        .filter(|d| d["id"].as_str().unwrap().starts_with("demo:"))
        .map(node_of)
        .collect();
    assert_eq!(demo.len(), 13);
    let configs = retained(&probe, "homeassistant/#", |all| {
        demo.iter().all(|n| all.keys().any(|t| t.contains(&format!("/{n}/"))))
            && own.iter().all(|t| all.contains_key(t))
    });
    let again: Vec<&String> = configs
        .iter()
        .filter(|(t, m)| {
            t.contains(node) || m.json()["device"]["identifiers"].to_string().contains(&format!("hearth_{node}"))
        })
        .map(|(t, _)| t)
        .collect();
    assert!(again.is_empty(), "published again by Hearth: {again:?}");
    for t in &own {
        assert_eq!(configs[t].json()["origin"]["name"], Value::Null, "the node's own config stays: {t}");
    }
    let states =
        retained(&probe, "hearth/#", |all| demo.iter().all(|n| all.contains_key(&format!("hearth/{n}/state"))));
    let mine: Vec<&String> = states.keys().filter(|t| t.contains(node)).collect();
    assert!(mine.is_empty(), "{mine:?}");
}

#[test]
fn home_assistant_coming_online_gets_everything_again() {
    let hub = Hub::start_with_config(CONFIG, &[]);
    let token = hub.onboard();
    hub.wait_for(T, || (all_devices(&hub, &token).len() >= 13).then_some(()));
    let lamp = "homeassistant/light/demo-living_lamp/light/config";
    let probe = MqttProbe::connect(hub.mqtt.unwrap());
    let configs = retained(&probe, "homeassistant/#", |all| all.contains_key(lamp));
    assert!(configs.contains_key(lamp));
    // The broker loses the lamp's config (one that keeps nothing across a restart loses all).
    probe.publish(lamp, "", true);
    probe.expect(T, |m| m.topic == lamp && m.payload.is_empty());
    // Home Assistant starts and says so, as it does (not retained).
    let ha = MqttProbe::connect(hub.mqtt.unwrap());
    ha.subscribe(lamp);
    ha.publish("homeassistant/status", "online", false);
    let back = ha.expect(T, |m| m.topic == lamp && !m.payload.is_empty());
    assert_eq!(back.json()["device"]["identifiers"], json!(["hearth_demo-living_lamp"]));
    // And it is retained again for whoever comes later.
    let later = MqttProbe::connect(hub.mqtt.unwrap());
    let now = retained(&later, "homeassistant/#", |all| all.contains_key(lamp));
    assert!(now.contains_key(lamp), "{:?}", now.keys().collect::<Vec<_>>());
}
