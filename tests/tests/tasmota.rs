//! Tasmota: the simulator's own tests (`sim_*`), then the adapter under
//! `hearth_sdk::testing::Harness` against the simulated devices on a real mosquitto broker
//! (loopback, a free port, one broker per test): devices described from their discovery, live
//! state, commands with their context as cause, buttons, last will offline and online, a
//! removed device, a lost broker, malformed input.
//!
//! `cargo test -p hearth-tests --test tasmota -- sim_` runs the simulator's tests alone.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_sdk::{AdapterEvent, AdapterState, AvailabilityState, Color, DeviceDescriptor, MqttSettings, Value};
use hearth_tasmota::TasmotaAdapter;
use hearth_tasmota::api::DiscoveryConfig;
use hearth_tests::free_port;
use hearth_tests::harness::Run;
use hearth_tests::mosquitto::Mosquitto;
use hearth_tests::sim::MqttProbe;
use hearth_tests::sim::tasmota::{ALL, BULB, DUAL, DUAL_RELAYS, PLUG, PLUG_LOAD_W, SENSORS, TasmotaSim};
use serde_json::json;

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(15);

fn keys(d: &DeviceDescriptor) -> Vec<&str> {
    d.features.iter().map(|f| f.key.as_str()).collect()
}

fn number(v: f64) -> Value {
    Value::Number(v)
}

/// A broker, the four devices, the adapter; returns once every device is online and has
/// answered the adapter's first questions (`STATE`, and `STATUS 10` for sensors).
fn started() -> (Mosquitto, TasmotaSim, Run) {
    let broker = Mosquitto::start();
    let sim = TasmotaSim::start(broker.addr());
    let mut run = Run::start(TasmotaAdapter::new(), json!({"enabled": true}), Some(broker.settings()));
    let ids = ALL.map(|d| d.id());
    let ids = ids.each_ref().map(String::as_str);
    run.all_online(&ids);
    for id in ids {
        run.device(id);
    }
    run.until_values("every device's first answers", |v| {
        let has = |d: &str, k: &str| v.get(d).is_some_and(|m| m.contains_key(k));
        has(&DUAL.id(), "state_relay_1")
            && has(&PLUG.id(), "state")
            && has(&PLUG.id(), "energy")
            && has(&BULB.id(), "brightness")
            && has(&SENSORS.id(), "signal_strength")
            && has(&SENSORS.id(), "pressure")
    });
    (broker, sim, run)
}

// ------------------------------------------------------------------------------------------------
// The simulator
// ------------------------------------------------------------------------------------------------

#[test]
fn sim_publishes_discovery_and_answers_commands_as_tasmota_does() {
    let broker = Mosquitto::start();
    let sim = TasmotaSim::start(broker.addr());
    let probe = MqttProbe::connect(broker.addr());
    probe.subscribe("tasmota/discovery/#");
    probe.subscribe("tele/#");
    probe.subscribe("stat/#");

    let config = probe.expect_topic(&DUAL.discovery("config"), T);
    assert!(config.retain, "discovery is retained");
    let parsed = DiscoveryConfig::parse(&config.payload).unwrap();
    assert_eq!((parsed.mac.as_str(), parsed.t.as_str(), parsed.ver), (DUAL.mac, DUAL.topic, 1));
    assert_eq!(parsed.rl[..3], [1, 1, 0]);
    assert_eq!(parsed.friendly_names[..2], DUAL_RELAYS.map(|n| Some(n.to_owned())));
    let sensors = probe.expect_topic(&SENSORS.discovery("sensors"), T).json();
    assert_eq!(sensors["sn"]["BME280"]["Pressure"], 1013.2);
    assert_eq!(sensors["ver"], 1);
    let lwt = probe.expect_topic(&PLUG.tele("LWT"), T);
    assert_eq!((lwt.text().as_str(), lwt.retain), ("Online", true));

    probe.publish(&DUAL.cmnd("POWER1"), "ON", false);
    assert_eq!(probe.expect_topic(&DUAL.stat("RESULT"), T).json(), json!({"POWER1": "ON"}));
    assert_eq!(probe.expect_topic(&DUAL.stat("POWER1"), T).text(), "ON");
    assert!(sim.relay(&DUAL, 1));
    // One relay: the key has no number.
    probe.publish(&PLUG.cmnd("Power"), "TOGGLE", false);
    assert_eq!(probe.expect_topic(&PLUG.stat("RESULT"), T).json(), json!({"POWER": "OFF"}));

    probe.publish(&BULB.cmnd("Backlog"), "Dimmer 40; HSBColor1 240; NoDelay; HSBColor2 100", false);
    let last = (0..3).map(|_| probe.expect_topic(&BULB.stat("RESULT"), T).json()).last().unwrap();
    assert_eq!((&last["POWER"], &last["Dimmer"], &last["HSBColor"]), (&json!("ON"), &json!(40), &json!("240,100,40")));
    assert_eq!(last["Color"], "0000660000");
    assert_eq!(
        sim.commands(&BULB),
        [("Backlog".to_owned(), "Dimmer 40; HSBColor1 240; NoDelay; HSBColor2 100".to_owned())]
    );

    probe.publish(&SENSORS.cmnd("STATUS"), "10", false);
    let status = probe.expect_topic(&SENSORS.stat("STATUS10"), T).json();
    assert_eq!(status["StatusSNS"]["AM2301"]["Temperature"], 21.4);
    probe.publish(&SENSORS.cmnd("Dimmer"), "10", false);
    assert_eq!(probe.expect_topic(&SENSORS.stat("RESULT"), T).json(), json!({"Command": "Unknown"}));

    sim.press(&SENSORS, 1);
    assert_eq!(probe.expect_topic(&SENSORS.stat("RESULT"), T).json(), json!({"Button1": {"Action": "SINGLE"}}));

    // Power lost: the broker publishes the last will; discovery cleared: empty payloads. Both
    // are retained, so a client that comes later sees them.
    sim.power_off(&PLUG);
    probe.expect(T, |m| m.topic == PLUG.tele("LWT") && m.text() == "Offline");
    sim.remove(&BULB);
    probe.expect(T, |m| m.topic == BULB.discovery("config") && m.payload.is_empty());
    let later = MqttProbe::connect(broker.addr());
    later.subscribe(&PLUG.tele("LWT"));
    let lwt = later.expect_topic(&PLUG.tele("LWT"), T);
    assert_eq!((lwt.text().as_str(), lwt.retain), ("Offline", true));
    later.subscribe("tasmota/discovery/+/config");
    let configs: Vec<String> =
        (0..ALL.len() - 1).map(|_| later.expect(T, |m| m.topic.ends_with("/config")).topic).collect();
    assert!(!configs.contains(&BULB.discovery("config")), "{configs:?}");
}

// ------------------------------------------------------------------------------------------------
// The adapter
// ------------------------------------------------------------------------------------------------

#[test]
fn devices_are_described_from_their_discovery_and_their_state_is_live() {
    let (_broker, sim, mut run) = started();
    let dual = run.devices[&DUAL.id()].clone();
    assert_eq!(
        (dual.name.as_str(), dual.model.as_deref(), dual.firmware.as_deref()),
        (DUAL.name, Some(DUAL.model), Some("14.4.1"))
    );
    assert_eq!(keys(&dual), ["state_relay_1", "state_relay_2", "signal_strength"]);
    assert_eq!(dual.feature("state_relay_2").unwrap().label.as_deref(), Some(DUAL_RELAYS[1]));
    assert_eq!(dual.feature("state_relay_2").unwrap().endpoint.as_deref(), Some("relay_2"));

    let plug = &run.devices[&PLUG.id()];
    for key in ["state", "power", "energy", "voltage", "current", "energy_today"] {
        assert!(plug.feature(key).is_some(), "{key} in {:?}", keys(plug));
    }
    assert_eq!(plug.feature("energy").unwrap().unit.as_deref(), Some("kWh"));

    let bulb = &run.devices[&BULB.id()];
    assert_eq!(keys(bulb), ["state", "brightness", "color_temperature", "color", "signal_strength"]);

    let board = &run.devices[&SENSORS.id()];
    for key in ["temperature_am2301", "temperature_bme280", "humidity_am2301", "pressure", "action"] {
        assert!(board.feature(key).is_some(), "{key} in {:?}", keys(board));
    }
    assert!(board.feature("state").is_none(), "the board has no relay");

    // Online, each is asked for its state and sensors at once.
    run.until_values("every device's state", |v| {
        let get = |d: &str, k: &str| v.get(d).and_then(|m| m.get(k)).cloned();
        get(&DUAL.id(), "state_relay_2") == Some(Value::Bool(true))
            && get(&PLUG.id(), "power") == Some(number(PLUG_LOAD_W))
            && get(&BULB.id(), "color_temperature").is_some()
            && get(&SENSORS.id(), "pressure").is_some()
    });
    let v = &run.values;
    assert_eq!(v[&DUAL.id()]["state_relay_1"], Value::Bool(false));
    assert_eq!(v[&DUAL.id()]["signal_strength"], number(-62.0));
    assert_eq!(v[&PLUG.id()]["energy"], number(152.318));
    assert_eq!(v[&PLUG.id()]["voltage"], number(231.0));
    assert_eq!(v[&BULB.id()]["state"], Value::Bool(false));
    assert_eq!(v[&BULB.id()]["brightness"], number(80.0));
    assert_eq!(v[&BULB.id()]["color_temperature"], number(4000.0));
    assert_eq!(v[&SENSORS.id()]["temperature_am2301"], number(21.4));
    assert_eq!(v[&SENSORS.id()]["humidity_bme280"], number(44.0));
    assert_eq!(v[&SENSORS.id()]["pressure"], number(1013.2));

    // Telemetry is followed as it comes.
    sim.set_sensor(&SENSORS, "AM2301", json!({"Temperature": 23.5}));
    assert_eq!(run.state(&SENSORS.id(), "temperature_am2301", number(23.5)), None);
    sim.set_sensor(&PLUG, "ENERGY", json!({"Voltage": 229}));
    assert_eq!(run.state(&PLUG.id(), "voltage", number(229.0)), None);
    run.stop();
}

#[test]
fn commands_reach_the_devices_and_their_results_carry_the_context() {
    let (_broker, sim, mut run) = started();

    run.command(&DUAL.id(), json!({"set": {"state_relay_2": false}}), "c1");
    sim.wait_for_command(&DUAL, |c, p| c == "POWER2" && p == "OFF", T);
    assert_eq!(run.state(&DUAL.id(), "state_relay_2", Value::Bool(false)).as_deref(), Some("c1"));
    assert!(!sim.relay(&DUAL, 2));

    // Several at once: one Backlog; every answer carries the context.
    run.command(
        &BULB.id(),
        json!({"set": {"state": true, "brightness": 40, "color": {"hue": 240, "saturation": 100}}}),
        "c2",
    );
    let (_, backlog) = sim.wait_for_command(&BULB, |c, _| c == "Backlog", T);
    assert_eq!(backlog, "POWER1 ON; HSBColor1 240; HSBColor2 100; Dimmer 40");
    assert_eq!(run.state(&BULB.id(), "brightness", number(40.0)).as_deref(), Some("c2"));
    assert_eq!(run.values[&BULB.id()]["color"], Value::Color(Color { hue: 240.0, saturation: 100.0 }));
    assert_eq!(run.values[&BULB.id()]["state"], Value::Bool(true));
    let light = sim.light(&BULB);
    assert_eq!((light.dimmer, light.hue, light.saturation, light.white), (40, 240, 100, false));

    // Kelvin to mired and back: 2700 K is CT 370, which reads as 2703 K.
    run.command(&BULB.id(), json!({"set": {"color_temperature": 2700}}), "c3");
    sim.wait_for_command(&BULB, |c, p| c == "CT" && p == "370", T);
    assert_eq!(run.state(&BULB.id(), "color_temperature", number(2703.0)).as_deref(), Some("c3"));

    run.command(&PLUG.id(), json!({"set": {"state": false}}), "c4");
    sim.wait_for_command(&PLUG, |c, p| c == "POWER1" && p == "OFF", T);
    assert_eq!(run.state(&PLUG.id(), "state", Value::Bool(false)).as_deref(), Some("c4"));

    // A refresh asks the board for its sensors; the answer carries the context.
    sim.set_sensor(&SENSORS, "BME280", json!({"Pressure": 1009.7}));
    run.state(&SENSORS.id(), "pressure", number(1009.7));
    run.command(&SENSORS.id(), json!({"refresh": ["pressure"]}), "c5");
    sim.wait_for_command(&SENSORS, |c, p| c == "STATUS" && p == "10", T);
    assert_eq!(run.state(&SENSORS.id(), "pressure", number(1009.7)).as_deref(), Some("c5"));
    run.stop();
}

#[test]
fn button_presses_and_physical_changes_are_the_devices_own() {
    let (_broker, sim, mut run) = started();

    // The Dual's button toggles its relay: a state change without a command's context.
    sim.press(&DUAL, 1);
    assert_eq!(run.state(&DUAL.id(), "state_relay_1", Value::Bool(true)), None);

    // The board's button is detached: a momentary event, never state.
    sim.press(&SENSORS, 1);
    let e = run.until("the button event", |e| matches!(e, AdapterEvent::Event { .. }));
    let AdapterEvent::Event { device, feature, event, data } = e else { unreachable!() };
    assert_eq!((device.as_str(), feature.as_str(), event.as_str()), (SENSORS.id().as_str(), "action", "single"));
    assert_eq!(data, Some(Value::Object(BTreeMap::from([("button".to_owned(), number(1.0))]))));
    sim.press_with(&SENSORS, 1, "DOUBLE");
    let e = run.until("the double press", |e| matches!(e, AdapterEvent::Event { .. }));
    assert!(matches!(e, AdapterEvent::Event { event, .. } if event == "double"));

    // The plug switched off at the plug: its meter reads nothing at the next telemetry.
    sim.press(&PLUG, 1);
    run.state(&PLUG.id(), "state", Value::Bool(false));
    sim.tele(&PLUG);
    sim.set_sensor(&PLUG, "ENERGY", json!({"Total": 152.401}));
    assert_eq!(run.state(&PLUG.id(), "energy", number(152.401)), None);
    assert_eq!(run.values[&PLUG.id()]["power"], number(0.0));
    run.stop();
}

#[test]
fn a_device_that_loses_power_goes_offline_and_comes_back() {
    let (_broker, sim, mut run) = started();
    sim.power_off(&PLUG);
    let e = run.until("the plug offline", |e| {
        matches!(e, AdapterEvent::Availability { device, availability } if device.as_str() == PLUG.id() && availability.state == AvailabilityState::Offline)
    });
    let AdapterEvent::Availability { availability, .. } = e else { unreachable!() };
    assert_eq!(
        availability.reason.as_deref(),
        Some("its last will on tele/tasmota_5E6F70/LWT says Offline: it lost power, Wi-Fi or the broker")
    );
    assert_eq!(availability.code.as_deref(), Some("device_offline"));

    run.values.clear();
    sim.power_on(&PLUG);
    run.until("the plug online", |e| {
        matches!(e, AdapterEvent::Availability { device, availability } if device.as_str() == PLUG.id() && availability.state == AvailabilityState::Online)
    });
    // Back, it is asked for its state again.
    run.until_values("the plug's state", |v| v.get(&PLUG.id()).is_some_and(|m| m.contains_key("state")));
    run.stop();
}

#[test]
fn a_device_whose_discovery_is_cleared_is_removed() {
    let (_broker, sim, mut run) = started();
    sim.remove(&BULB);
    let e = run.until("the bulb removed", |e| matches!(e, AdapterEvent::DeviceRemoved { .. }));
    assert!(matches!(e, AdapterEvent::DeviceRemoved { device } if device.as_str() == BULB.id()));
    // Its messages are no longer followed; the others are.
    sim.tele(&BULB);
    sim.press(&DUAL, 2);
    loop {
        let e = run.next("the Dual's relay");
        if let AdapterEvent::State { device, .. } = &e {
            assert_eq!(device.as_str(), DUAL.id(), "{e:?}");
            break;
        }
    }
    run.stop();
}

#[test]
fn losing_the_broker_makes_every_device_offline_until_it_returns() {
    let (mut broker, sim, mut run) = started();
    broker.kill();
    let mut offline = std::collections::BTreeSet::new();
    let mut degraded = false;
    while offline.len() < ALL.len() || !degraded {
        match run.next("every device offline") {
            AdapterEvent::Availability { device, availability } if availability.state == AvailabilityState::Offline => {
                let reason = availability.reason.unwrap_or_default();
                assert!(reason.starts_with("MQTT broker 127.0.0.1:") && reason.contains("unreachable"), "{reason}");
                assert_eq!(availability.code.as_deref(), Some("broker_unreachable"));
                offline.insert(device.to_string());
            }
            AdapterEvent::Status { status } if status.state == AdapterState::Degraded => degraded = true,
            _ => {}
        }
    }
    broker.restart();
    // The devices reconnect by themselves, the adapter too, and all are online again.
    let mut online = std::collections::BTreeSet::new();
    while online.len() < ALL.len() {
        if let AdapterEvent::Availability { device, availability } = run.next("every device online again")
            && availability.state == AvailabilityState::Online
        {
            online.insert(device.to_string());
        }
    }
    run.command(&DUAL.id(), json!({"set": {"state_relay_1": true}}), "after");
    assert_eq!(run.state(&DUAL.id(), "state_relay_1", Value::Bool(true)).as_deref(), Some("after"));
    drop(sim);
    run.stop();
}

#[test]
fn malformed_input_is_rejected_and_the_adapter_goes_on() {
    let (_broker, sim, mut run) = started();
    sim.publish_raw(&DUAL, &DUAL.stat("RESULT"), "{\"POWER1\":", false);
    let e = run.until("a rejection", |e| matches!(e, AdapterEvent::InputRejected { .. }));
    let AdapterEvent::InputRejected { source, reason } = e else { unreachable!() };
    assert_eq!(source, DUAL.stat("RESULT"));
    assert!(reason.starts_with("payload is not a JSON object"), "{reason}");

    sim.publish_raw(&DUAL, "tasmota/discovery/001122334455/config", "{\"mac\":\"001122334455\"}", true);
    let e = run.until("a rejected config", |e| matches!(e, AdapterEvent::InputRejected { .. }));
    let AdapterEvent::InputRejected { source, reason } = e else { unreachable!() };
    assert_eq!(source, "tasmota/discovery/001122334455/config");
    assert!(reason.starts_with("not a Tasmota discovery config: missing field"), "{reason}");

    sim.publish_raw(&DUAL, &DUAL.tele("LWT"), "Rebooting", false);
    let e = run.until("a rejected last will", |e| matches!(e, AdapterEvent::InputRejected { .. }));
    assert!(
        matches!(e, AdapterEvent::InputRejected { reason, .. } if reason == "last will `Rebooting` is neither `Online` nor `Offline`")
    );

    run.command(&DUAL.id(), json!({"set": {"state_relay_1": true}}), "still");
    assert_eq!(run.state(&DUAL.id(), "state_relay_1", Value::Bool(true)).as_deref(), Some("still"));
    run.stop();
}

#[test]
fn a_flood_while_the_hub_is_busy_loses_nothing() {
    let (_broker, sim, mut run) = started();
    // Nobody reads the adapter's events while the board sends 400 readings: the adapter waits
    // (backpressure), the broker holds the rest.
    for i in 0..400 {
        sim.set_sensor(&SENSORS, "AM2301", json!({"Temperature": f64::from(i) / 10.0}));
    }
    let mut seen = Vec::new();
    while seen.last() != Some(&number(39.9)) {
        if let AdapterEvent::State { device, values, .. } = run.next("every reading")
            && device.as_str() == SENSORS.id()
            && let Some(v) = values.get("temperature_am2301")
        {
            seen.push(v.clone());
        }
    }
    let expected: Vec<Value> = (0..400).map(|i| number(f64::from(i) / 10.0)).collect();
    assert_eq!(seen, expected, "every reading, in order");
    run.stop();
}

#[test]
fn the_mqtt_key_points_the_adapter_at_another_broker() {
    let broker = Mosquitto::start();
    let _sim = TasmotaSim::start_with(broker.addr(), &[DUAL]);
    let config = json!({"enabled": true, "mqtt": {"host": "127.0.0.1", "port": broker.addr().port()}});
    // The hub's broker (here: nothing listens) is not used when the section names one.
    let elsewhere = MqttSettings { port: free_port(), ..broker.settings() };
    let mut run = Run::start(TasmotaAdapter::new(), config, Some(elsewhere));
    run.until("the Dual", |e| matches!(e, AdapterEvent::Device { device } if device.id.as_str() == DUAL.id()));
    run.stop();
}
