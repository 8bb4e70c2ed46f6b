//! Discovery configs as real firmwares generate them (`tests/fixtures/*.json`, each naming its
//! source): each becomes the right device and features, its states the right values in canonical
//! units, and commands the payloads the firmware takes. No broker: the registry is pure logic.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use hearth_mqtt_discovery::registry::{Publish, Registry};
use hearth_sdk::{
    Access, AdapterEvent, AvailabilityState, Capability, Category, Color, Command, CommandRequest, Context,
    DeviceDescriptor, DeviceId, Origin, Value, ValueType,
};
use serde_json::{Value as Json, json};

fn fixture(name: &str) -> Vec<(String, Vec<u8>)> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc: Json = serde_json::from_str(&text).unwrap();
    assert!(doc["source"].as_str().is_some_and(|s| !s.is_empty()), "{name} names its source");
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

/// A registry fed with a fixture's configs; every event they caused.
fn load(name: &str) -> (Registry, Vec<AdapterEvent>) {
    let mut r = Registry::new("homeassistant", &[]);
    let mut events = Vec::new();
    for (topic, payload) in fixture(name) {
        let out = r.config(&topic, &payload);
        assert_eq!(out.rejected, None, "{topic}");
        events.extend(out.events);
    }
    (r, events)
}

/// The last description of each device.
fn devices(events: &[AdapterEvent]) -> BTreeMap<String, DeviceDescriptor> {
    let mut out = BTreeMap::new();
    for e in events {
        match e {
            AdapterEvent::Device { device } => {
                out.insert(device.id.to_string(), device.clone());
            }
            AdapterEvent::DeviceRemoved { device } => {
                out.remove(device.as_str());
            }
            _ => {}
        }
    }
    out
}

fn keys(d: &DeviceDescriptor) -> Vec<&str> {
    d.features.iter().map(|f| f.key.as_str()).collect()
}

fn state(r: &mut Registry, topic: &str, payload: &str) -> BTreeMap<String, Value> {
    let out = r.message(topic, payload.as_bytes());
    assert_eq!(out.rejected, None, "{topic}: {payload}");
    let mut values = BTreeMap::new();
    for e in out.events {
        if let AdapterEvent::State { values: v, .. } = e {
            values.extend(v);
        }
    }
    values
}

fn num(v: f64) -> Value {
    Value::Number(v)
}

fn command(device: &str, set: Json, transition: Option<f64>) -> Command {
    let set: BTreeMap<String, Value> = serde_json::from_value(set).unwrap();
    Command {
        device: DeviceId::parse(device).unwrap(),
        request: CommandRequest { set, transition, ..CommandRequest::default() },
        context: Context::new("c1", Origin::User { name: "test".into() }),
    }
}

fn publishes(r: &mut Registry, cmd: &Command) -> Vec<(String, String)> {
    let (p, errors) = r.command(cmd);
    assert!(errors.is_empty(), "{errors:?}");
    p.into_iter().map(|Publish { topic, payload, .. }| (topic, payload)).collect()
}

fn availability(out: &[AdapterEvent]) -> Vec<(String, AvailabilityState, Option<String>)> {
    out.iter()
        .filter_map(|e| match e {
            AdapterEvent::Availability { device, availability } => {
                Some((device.to_string(), availability.state, availability.reason.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn zigbee2mqtt_bulb_is_a_json_schema_light() {
    let (mut r, events) = load("zigbee2mqtt_bulb");
    let all = devices(&events);
    assert_eq!(all.len(), 1);
    let d = &all["mqtt_discovery:zigbee2mqtt_0x000b57fffec6a5b2"];
    assert_eq!(d.name, "bulb");
    assert_eq!(d.manufacturer.as_deref(), Some("IKEA"));
    assert_eq!(d.model.as_deref(), Some("TRADFRI bulb E26/E27, white spectrum, globe, opal, 980 lm (LED1545G12)"));
    assert_eq!(d.via.as_ref().map(DeviceId::as_str), Some("mqtt_discovery:zigbee2mqtt_bridge_0x00124b00120144ae"));
    // The light is named after its component, so its parts keep their plain names; the
    // linkquality sensor is disabled by default and left out.
    assert_eq!(keys(d), ["state", "brightness", "color_temp", "effect"]);
    assert_eq!(d.feature("state").unwrap().capability, Capability::OnOff);
    assert_eq!(d.feature("state").unwrap().access, Access::READ_WRITE);
    assert_eq!(d.feature("brightness").unwrap().value_type, ValueType::range(0.0, 100.0, 1.0));
    let ct = d.feature("color_temp").unwrap();
    assert_eq!((ct.capability, ct.unit.as_deref()), (Capability::ColorTemperature, Some("K")));
    assert_eq!(ct.value_type, ValueType::range(2203.0, 4000.0, 1.0));
    assert_eq!(
        d.feature("effect").unwrap().value_type,
        ValueType::enumeration(["blink", "breathe", "okay", "channel_change", "finish_effect", "stop_effect"])
    );
    // Unknown until the bridge says it is online.
    assert!(availability(&events).is_empty());
    let out = r.message("zigbee2mqtt/bridge/state", br#"{"state":"online"}"#);
    assert_eq!(
        availability(&out.events),
        [("mqtt_discovery:zigbee2mqtt_0x000b57fffec6a5b2".into(), AvailabilityState::Online, None)]
    );
    let v = state(
        &mut r,
        "zigbee2mqtt/bulb",
        r#"{"brightness":254,"color_mode":"color_temp","color_temp":370,"linkquality":120,"state":"ON","update":{"state":"idle"}}"#,
    );
    assert_eq!(
        v,
        BTreeMap::from([
            ("state".into(), Value::Bool(true)),
            ("brightness".into(), num(100.0)),
            ("color_temp".into(), num(2703.0)),
        ])
    );
    let id = "mqtt_discovery:zigbee2mqtt_0x000b57fffec6a5b2";
    assert_eq!(
        publishes(&mut r, &command(id, json!({"brightness": 50}), Some(1.0))),
        [("zigbee2mqtt/bulb/set".into(), r#"{"brightness":127,"state":"ON","transition":1.0}"#.into())]
    );
    assert_eq!(
        publishes(&mut r, &command(id, json!({"state": false}), None)),
        [("zigbee2mqtt/bulb/set".into(), r#"{"state":"OFF"}"#.into())]
    );
    assert_eq!(
        publishes(&mut r, &command(id, json!({"color_temp": 4000, "effect": "blink"}), None)),
        [("zigbee2mqtt/bulb/set".into(), r#"{"color_temp":250,"effect":"blink","state":"ON"}"#.into())]
    );
    // The bridge goes away: offline, saying why.
    let out = r.message("zigbee2mqtt/bridge/state", br#"{"state":"offline"}"#);
    let a = availability(&out.events);
    assert_eq!(a[0].1, AvailabilityState::Offline);
    assert!(a[0].2.as_deref().unwrap().contains("zigbee2mqtt/bridge/state"), "{a:?}");
    let report = r.unsupported(Some(id)).unwrap();
    assert_eq!(report["devices"][0]["unsupported"][0]["option"], "enabled_by_default");
}

#[test]
fn zigbee2mqtt_climate_sensor_reports_in_canonical_units() {
    let (mut r, events) = load("zigbee2mqtt_climate_sensor");
    let all = devices(&events);
    let d = &all["mqtt_discovery:zigbee2mqtt_0x0017880104e45522"];
    assert_eq!(d.name, "weather_sensor");
    assert_eq!(d.manufacturer.as_deref(), Some("Aqara"));
    assert_eq!(d.model.as_deref(), Some("Temperature and humidity sensor (WSDCGQ11LM)"));
    assert_eq!(keys(d), ["battery", "humidity", "pressure", "temperature", "voltage"]);
    let cap = |k: &str| {
        let f = d.feature(k).unwrap();
        (f.capability, f.unit.clone(), f.category, f.access)
    };
    assert_eq!(cap("temperature"), (Capability::Temperature, Some("°C".into()), Category::Primary, Access::READ_ONLY));
    assert_eq!(cap("humidity").0, Capability::Humidity);
    assert_eq!(cap("pressure"), (Capability::Pressure, Some("hPa".into()), Category::Primary, Access::READ_ONLY));
    assert_eq!(cap("battery"), (Capability::Battery, Some("%".into()), Category::Diagnostic, Access::READ_ONLY));
    assert_eq!(cap("voltage"), (Capability::Voltage, Some("V".into()), Category::Diagnostic, Access::READ_ONLY));
    let v = state(
        &mut r,
        "zigbee2mqtt/weather_sensor",
        r#"{"battery":87,"humidity":45.21,"linkquality":80,"pressure":1012.3,"temperature":21.5,"voltage":2995}"#,
    );
    assert_eq!(
        v,
        BTreeMap::from([
            ("battery".into(), num(87.0)),
            ("humidity".into(), num(45.21)),
            ("pressure".into(), num(1012.3)),
            ("temperature".into(), num(21.5)),
            ("voltage".into(), num(2.995)),
        ])
    );
    // A report without some keys gives the ones it has.
    assert_eq!(
        state(&mut r, "zigbee2mqtt/weather_sensor", r#"{"temperature":20}"#),
        BTreeMap::from([("temperature".into(), num(20.0))])
    );
}

#[test]
fn zigbee2mqtt_button_fires_its_triggers_and_lists_the_event_template_as_unsupported() {
    let (mut r, events) = load("zigbee2mqtt_button");
    let all = devices(&events);
    let id = "mqtt_discovery:zigbee2mqtt_0x0017880104e45520";
    let d = &all[id];
    assert_eq!(keys(d), ["battery", "action"]);
    let action = d.feature("action").unwrap();
    assert_eq!(action.capability, Capability::Action);
    assert_eq!(action.access, Access::EVENT);
    // One feature for every trigger of the type, its events in the order of their config topics.
    assert_eq!(action.value_type, ValueType::enumeration(["double", "hold", "single"]));
    let out = r.message("zigbee2mqtt/button/action", b"double");
    assert_eq!(
        out.events,
        [AdapterEvent::Event {
            device: DeviceId::parse(id).unwrap(),
            feature: "action".into(),
            event: "double".into(),
            data: None
        }]
    );
    // zigbee2mqtt clears the action right after: not an event.
    assert!(r.message("zigbee2mqtt/button/action", b"").events.is_empty());
    assert!(r.message("zigbee2mqtt/button/action", b"triple").events.is_empty());
    // The state carries the battery; the action in it is not state.
    assert_eq!(
        state(&mut r, "zigbee2mqtt/button", r#"{"action":"single","battery":90,"linkquality":70}"#),
        BTreeMap::from([("battery".into(), num(90.0))])
    );
    let report = r.unsupported(None).unwrap();
    let items = report["devices"][0]["unsupported"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["entity"], "event/0x0017880104e45520/action");
    assert_eq!(items[0]["option"], "value_template");
    assert!(items[0]["template"].as_str().unwrap().starts_with("{% set patterns"));
    assert!(items[0]["reason"].as_str().unwrap().contains("statements"), "{}", items[0]["reason"]);
}

#[test]
fn tasmota_relay_sensors_status_and_button() {
    let (mut r, events) = load("tasmota");
    let all = devices(&events);
    assert_eq!(all.len(), 1);
    let id = "mqtt_discovery:1a2b3c";
    let d = &all[id];
    assert_eq!(d.name, "Tasmota");
    assert_eq!(d.manufacturer.as_deref(), Some("Tasmota"));
    assert_eq!(d.model.as_deref(), Some("Sonoff Pow R2"));
    assert_eq!(d.firmware.as_deref(), Some("9.1.0(tasmota)"));
    assert_eq!(
        keys(d),
        [
            "am2301_humidity",
            "am2301_temperature",
            "energy_power",
            "energy_total",
            "status",
            "status_attributes",
            "rl_1",
            "button_1"
        ]
    );
    let relay = d.feature("rl_1").unwrap();
    assert_eq!(
        (relay.capability, relay.access, relay.label.as_deref()),
        (Capability::OnOff, Access::READ_WRITE, Some("Kitchen plug"))
    );
    assert_eq!(d.feature("energy_power").unwrap().capability, Capability::Power);
    // Tasmota announces the energy total with the class `power` but the unit kWh.
    assert_eq!(d.feature("energy_total").unwrap().capability, Capability::Energy);
    assert_eq!(d.feature("status").unwrap().capability, Capability::Other);
    assert_eq!(d.feature("status").unwrap().unit.as_deref(), Some("%"));
    assert_eq!(d.feature("status_attributes").unwrap().value_type, ValueType::Object);
    assert_eq!(d.feature("button_1").unwrap().value_type, ValueType::enumeration(["short_press"]));

    let out = r.message("tele/tasmota_1A2B3C/LWT", b"Online");
    assert_eq!(availability(&out.events), [(id.into(), AvailabilityState::Online, None)]);
    assert_eq!(
        state(
            &mut r,
            "tele/tasmota_1A2B3C/STATE",
            r#"{"Time":"2021-03-01T10:00:00","Uptime":"0T00:10:00","POWER":"ON","Wifi":{"RSSI":76}}"#
        ),
        BTreeMap::from([("rl_1".into(), Value::Bool(true))])
    );
    assert_eq!(
        state(
            &mut r,
            "tele/tasmota_1A2B3C/SENSOR",
            r#"{"Time":"2021-03-01T10:00:00","ENERGY":{"TotalStartTime":"2021-01-01T00:00:00","Total":12.345,"Yesterday":0.5,"Today":0.2,"Power":60,"Voltage":231,"Current":0.26},"AM2301":{"Temperature":21.3,"Humidity":48.1},"TempUnit":"C"}"#
        ),
        BTreeMap::from([
            ("am2301_humidity".into(), num(48.1)),
            ("am2301_temperature".into(), num(21.3)),
            ("energy_power".into(), num(60.0)),
            ("energy_total".into(), num(12.345)),
        ])
    );
    let v = state(
        &mut r,
        "tele/tasmota_1A2B3C/HASS_STATE",
        r#"{"Version":"9.1.0(tasmota)","RSSI":"76","Signal (dBm)":"-62","IPAddress":"192.168.1.40"}"#,
    );
    assert_eq!(v["status"], num(76.0));
    let Value::Object(attrs) = &v["status_attributes"] else { panic!("{v:?}") };
    assert_eq!(attrs["Signal (dBm)"], Value::Text("-62".into()));
    let out = r.message("stat/tasmota_1A2B3C/BUTTON1T", br#"{"TRIG":"SINGLE"}"#);
    assert_eq!(
        out.events,
        [AdapterEvent::Event {
            device: DeviceId::parse(id).unwrap(),
            feature: "button_1".into(),
            event: "short_press".into(),
            data: None
        }]
    );
    assert!(r.message("stat/tasmota_1A2B3C/BUTTON1T", br#"{"TRIG":"DOUBLE"}"#).events.is_empty());
    assert_eq!(
        publishes(&mut r, &command(id, json!({"rl_1": false}), None)),
        [("cmnd/tasmota_1A2B3C/POWER".into(), "OFF".into())]
    );
    let out = r.message("tele/tasmota_1A2B3C/LWT", b"Offline");
    let a = availability(&out.events);
    assert_eq!(a[0].1, AvailabilityState::Offline);
    assert_eq!(a[0].2.as_deref(), Some("the device reports itself offline (`Offline` on tele/tasmota_1A2B3C/LWT)"));
}

#[test]
fn esphome_switch_sensor_and_json_light() {
    let (mut r, events) = load("esphome");
    let all = devices(&events);
    let id = "mqtt_discovery:a4cf12345678";
    let d = &all[id];
    assert_eq!(d.name, "livingroom");
    assert_eq!(d.manufacturer.as_deref(), Some("Espressif"));
    assert_eq!(d.model.as_deref(), Some("esp32dev"));
    assert_eq!(d.firmware.as_deref(), Some("2024.6.1 (config hash 0x5d1a2b3c)"));
    assert_eq!(
        keys(d),
        [
            "state_desk_lamp",
            "brightness_desk_lamp",
            "color_desk_lamp",
            "effect_desk_lamp",
            "living_room_temperature",
            "relay"
        ]
    );
    let lamp = d.feature("state_desk_lamp").unwrap();
    assert_eq!((lamp.endpoint.as_deref(), lamp.label.as_deref()), (Some("desk_lamp"), Some("Desk Lamp")));
    assert_eq!(d.feature("color_desk_lamp").unwrap().value_type, ValueType::Color);
    assert_eq!(d.feature("living_room_temperature").unwrap().capability, Capability::Temperature);
    assert_eq!(d.feature("relay").unwrap().capability, Capability::OnOff);

    r.message("livingroom/status", b"online");
    assert_eq!(
        state(&mut r, "livingroom/switch/relay/state", "ON"),
        BTreeMap::from([("relay".into(), Value::Bool(true))])
    );
    assert_eq!(
        state(&mut r, "livingroom/sensor/living_room_temperature/state", "21.50"),
        BTreeMap::from([("living_room_temperature".into(), num(21.5))])
    );
    assert_eq!(
        state(
            &mut r,
            "livingroom/light/desk_lamp/state",
            r#"{"state":"ON","color_mode":"rgb","brightness":255,"color":{"r":255,"g":0,"b":0},"effect":"None"}"#
        ),
        BTreeMap::from([
            ("state_desk_lamp".into(), Value::Bool(true)),
            ("brightness_desk_lamp".into(), num(100.0)),
            ("color_desk_lamp".into(), Value::Color(Color { hue: 0.0, saturation: 100.0 })),
            ("effect_desk_lamp".into(), Value::Text("None".into())),
        ])
    );
    assert_eq!(
        publishes(&mut r, &command(id, json!({"relay": false}), None)),
        [("livingroom/switch/relay/command".into(), "OFF".into())]
    );
    let green = json!({"color_desk_lamp": {"hue": 120.0, "saturation": 100.0}, "brightness_desk_lamp": 50});
    assert_eq!(
        publishes(&mut r, &command(id, green, None)),
        [(
            "livingroom/light/desk_lamp/command".into(),
            r#"{"brightness":128,"color":{"b":0,"g":255,"r":0},"state":"ON"}"#.into()
        )]
    );
}

#[test]
fn device_based_discovery_shares_its_options_and_an_empty_payload_removes_it() {
    let (mut r, events) = load("device_based");
    let all = devices(&events);
    let id = "mqtt_discovery:ea334450945afc";
    let d = &all[id];
    assert_eq!(d.name, "Kitchen");
    assert_eq!(d.manufacturer.as_deref(), Some("Bla electronics"));
    assert_eq!(d.firmware.as_deref(), Some("1.0"));
    assert_eq!(keys(d), ["some_unique_component_id1", "some_unique_id2"]);
    assert_eq!(d.feature("some_unique_component_id1").unwrap().capability, Capability::Temperature);
    assert_eq!(d.feature("some_unique_id2").unwrap().capability, Capability::Humidity);
    assert!(r.topics().contains("sensorBedroom/state"));
    assert_eq!(
        state(&mut r, "sensorBedroom/state", r#"{"temperature": 23.1, "humidity": 40}"#),
        BTreeMap::from([("some_unique_component_id1".into(), num(23.1)), ("some_unique_id2".into(), num(40.0))])
    );
    // An update without a component removes that component's feature.
    let mut payload: Json = serde_json::from_slice(&fixture("device_based")[0].1).unwrap();
    payload["cmps"].as_object_mut().unwrap().remove("some_unique_id2");
    let out = r.config("homeassistant/device/ea334450945afc/config", payload.to_string().as_bytes());
    assert_eq!(keys(&devices(&out.events)[id]), ["some_unique_component_id1"]);
    let out = r.config("homeassistant/device/ea334450945afc/config", b"");
    assert_eq!(out.events, [AdapterEvent::DeviceRemoved { device: DeviceId::parse(id).unwrap() }]);
    assert!(r.topics().is_empty());
}
