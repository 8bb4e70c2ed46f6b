//! Hearth's devices in Home Assistant, end to end: with `[home_assistant] publish = true`, a
//! client subscribed to the broker as Home Assistant is (`homeassistant/#`, `hearth/#`) finds a
//! discovery config for every demo device, their states and availability, and a command it
//! publishes reaches the device and comes back as state.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use hearth_tests::Hub;
use hearth_tests::sim::{MqttProbe, Msg};
use serde_json::{Value, json};

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

    // States and availability, as Home Assistant reads them.
    let states = retained(&probe, "hearth/#", |all| {
        all.contains_key("hearth/status")
            && nodes.iter().all(|node| {
                all.contains_key(&format!("hearth/{node}/availability"))
                    && all.contains_key(&format!("hearth/{node}/state"))
            })
    });
    assert_eq!(states["hearth/status"].text(), "online");
    assert_eq!(states["hearth/demo-living_lamp/availability"].text(), "online");
    let lamp_now = device(&hub, &token, "demo:living_lamp");
    let published = states["hearth/demo-living_lamp/state"].json();
    assert_eq!(published["state"], lamp_now["state"]["state"]["value"]);
    assert_eq!(published["brightness"], lamp_now["state"]["brightness"]["value"]);

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

    // Nonsense from the broker is refused and the hub runs on.
    probe.publish("hearth/demo-living_lamp/light/light/set", "not json", false);
    probe.publish("hearth/demo-nothing/set", r#"{"state": true}"#, false);
    assert_eq!(hub.get("/healthz", None).status, 200);

    // The hub's own discovery reader (on by default) leaves Hearth's configs alone: no device
    // came back as a copy of itself.
    let now = hub.get("/api/v1/devices", Some(&token)).body;
    assert_eq!(now.as_array().unwrap().len(), devices.len(), "{now}");
    assert!(hub.get("/api/v1/adapters", Some(&token)).text.contains("mqtt_discovery"));
}
