use super::*;
use crate::testdata::*;
use hearth_sdk::{AvailabilityState, CommandRequest, Origin};
use serde_json::json;

const BASIC: &str = "tasmota:84f3eb487d21";

fn devices_with(configs: &[(&str, &str)]) -> Devices {
    let mut d = Devices::new("tasmota/discovery");
    for (mac, config) in configs {
        let out = d.message(&format!("tasmota/discovery/{mac}/config"), config.as_bytes());
        assert!(matches!(out.as_slice(), [Out::Event(AdapterEvent::Device { .. })]), "{out:?}");
    }
    d
}

fn basic() -> Devices {
    devices_with(&[("84F3EB487D21", SONOFF_BASIC)])
}

fn states(out: &[Out]) -> Vec<(String, BTreeMap<String, Value>, Option<String>)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Event(AdapterEvent::State { device, values, cause }) => {
                Some((device.to_string(), values.clone(), cause.as_ref().map(|c| c.id.clone())))
            }
            _ => None,
        })
        .collect()
}

fn publishes(out: &[Out]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Publish { topic, payload } => Some((topic.clone(), payload.clone())),
            _ => None,
        })
        .collect()
}

fn rejections(out: &[Out]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Out::Rejected { source, reason } => Some((source.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn values(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn command(device: &str, request: Json, id: &str) -> Command {
    Command {
        device: DeviceId::parse(device).unwrap(),
        request: serde_json::from_value::<CommandRequest>(request).unwrap(),
        context: Context::new(id, Origin::User { name: "alice".into() }),
    }
}

#[test]
fn a_discovered_device_is_announced_and_its_topics_followed() {
    let d = basic();
    assert_eq!(d.ids(), [DeviceId::parse(BASIC).unwrap()]);
    assert_eq!(
        d.filters().into_iter().collect::<Vec<_>>(),
        ["stat/+/+", "tasmota/discovery/#", "tele/+/+", "tele/Basic-3/LWT"].map(str::to_owned),
        "its own last will too, so the broker sends the retained one again once it is known"
    );
    // A second device with the same full topic pattern needs no more subscriptions.
    let d = devices_with(&[("84F3EB487D21", SONOFF_BASIC), ("D8F15BB3DB2D", SONOFF_T1_2CH)]);
    assert_eq!(d.filters().len(), 3 + 2, "the shared filters, and each device's last will");
}

#[test]
fn the_last_will_makes_a_device_online_and_asks_for_its_state() {
    let mut d = basic();
    let out = d.message("tele/Basic-3/LWT", b"Online");
    let [Out::Event(AdapterEvent::Availability { device, availability }), ..] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((device.as_str(), availability.state), (BASIC, AvailabilityState::Online));
    // No sensors: STATE alone.
    assert_eq!(publishes(&out), [("cmnd/Basic-3/STATE".to_owned(), String::new())]);
    // The same retained will again (its own subscription): nothing asked twice.
    let out = d.message("tele/Basic-3/LWT", b"Online");
    assert!(publishes(&out).is_empty(), "{out:?}");

    let out = d.message("tele/Basic-3/LWT", b"Offline");
    let [Out::Event(AdapterEvent::Availability { availability, .. })] = out.as_slice() else { panic!("{out:?}") };
    assert_eq!(availability.state, AvailabilityState::Offline);
    assert_eq!(
        availability.reason.as_deref(),
        Some("its last will on tele/Basic-3/LWT says Offline: it lost power, Wi-Fi or the broker")
    );
    assert_eq!(availability.code.as_deref(), Some("device_offline"));

    let out = d.message("tele/Basic-3/LWT", b"Maybe");
    assert_eq!(
        rejections(&out),
        [("tele/Basic-3/LWT".to_owned(), "last will `Maybe` is neither `Online` nor `Offline`".to_owned())]
    );
}

#[test]
fn a_device_with_sensors_is_also_asked_for_them() {
    let mut d = basic();
    let out = d.message("tasmota/discovery/84F3EB487D21/sensors", sensors_message(DHT11_SENSOR).as_bytes());
    let [Out::Event(AdapterEvent::Device { device })] = out.as_slice() else { panic!("{out:?}") };
    assert!(device.feature("temperature").is_some());
    let out = d.message("tele/Basic-3/LWT", b"Online");
    assert_eq!(
        publishes(&out),
        [("cmnd/Basic-3/STATE".to_owned(), String::new()), ("cmnd/Basic-3/STATUS".to_owned(), "10".to_owned())]
    );
    let out = d.message("stat/Basic-3/STATUS10", DHT11_STATUS10.as_bytes());
    assert_eq!(
        states(&out),
        [(
            BASIC.to_owned(),
            values(&[("temperature", 19.0.into()), ("humidity", 16.0.into()), ("dew_point", (-7.5).into())]),
            None
        )]
    );
    let out = d.message("tele/Basic-3/SENSOR", DHT11_SENSOR.as_bytes());
    assert_eq!(states(&out)[0].1["temperature"], Value::Number(19.0));
}

#[test]
fn sensors_that_arrive_first_join_the_config() {
    let mut d = Devices::new("tasmota/discovery");
    let out = d.message("tasmota/discovery/84F3EB487D21/sensors", sensors_message(POW_SENSOR).as_bytes());
    assert!(out.is_empty(), "{out:?}");
    let out = d.message("tasmota/discovery/84F3EB487D21/config", SONOFF_BASIC.as_bytes());
    let [Out::Event(AdapterEvent::Device { device })] = out.as_slice() else { panic!("{out:?}") };
    assert!(device.feature("power").is_some() && device.feature("energy").is_some());
    // An empty sensors message takes them away again.
    let out = d.message("tasmota/discovery/84F3EB487D21/sensors", b"");
    let [Out::Event(AdapterEvent::Device { device })] = out.as_slice() else { panic!("{out:?}") };
    assert!(device.feature("power").is_none());
}

#[test]
fn sensors_the_discovery_did_not_list_are_added_when_they_report() {
    let mut d = basic();
    d.message("tasmota/discovery/84F3EB487D21/sensors", sensors_message(r#"{"Time":"x"}"#).as_bytes());
    let out = d.message("tele/Basic-3/SENSOR", DHT11_SENSOR.as_bytes());
    let [Out::Event(AdapterEvent::Device { device }), Out::Event(AdapterEvent::State { values, .. })] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert!(device.feature("humidity").is_some());
    assert_eq!(values["humidity"], Value::Number(16.0));
    // Known now: the next report is a state alone.
    let out = d.message("tele/Basic-3/SENSOR", DHT11_SENSOR.as_bytes());
    assert!(matches!(out.as_slice(), [Out::Event(AdapterEvent::State { .. })]), "{out:?}");
}

#[test]
fn state_comes_from_telemetry_results_and_power_topics() {
    let mut d = basic();
    let out = d.message("tele/Basic-3/STATE", SONOFF_BASIC_STATE.as_bytes());
    assert_eq!(
        states(&out),
        [(BASIC.to_owned(), values(&[("state", false.into()), ("signal_strength", (-82.0).into())]), None)]
    );
    let out = d.message("stat/Basic-3/RESULT", br#"{"POWER":"ON"}"#);
    assert_eq!(states(&out)[0].1, values(&[("state", true.into())]));
    let out = d.message("stat/Basic-3/POWER", b"OFF");
    assert_eq!(states(&out)[0].1, values(&[("state", false.into())]));
    let out = d.message("stat/Basic-3/POWER1", b"ON");
    assert_eq!(states(&out)[0].1, values(&[("state", true.into())]));
    let sts = json!({"StatusSTS": serde_json::from_str::<Json>(SONOFF_BASIC_STATE).unwrap()}).to_string();
    let out = d.message("stat/Basic-3/STATUS11", sts.as_bytes());
    assert_eq!(states(&out)[0].1["state"], Value::Bool(false));
    // SetOption4: the answer on stat/<topic>/<COMMAND>.
    let out = d.message("stat/Basic-3/POWER1", br#"{"POWER1":"ON"}"#);
    assert_eq!(states(&out)[0].1, values(&[("state", true.into())]));
    // Other status and telemetry topics say nothing the model holds.
    assert!(d.message("stat/Basic-3/STATUS5", br#"{"StatusNET":{}}"#).is_empty());
    assert!(d.message("tele/Basic-3/INFO1", br#"{"Info1":{}}"#).is_empty());
    assert!(d.message("stat/Basic-3/RESULT", br#"{"Command":"Unknown"}"#).is_empty());
    // Topics of devices nobody announced are not ours.
    assert!(d.message("tele/other/STATE", br#"{"POWER":"ON"}"#).is_empty());
    assert!(d.message("zigbee2mqtt/lamp", b"{}").is_empty());
}

#[test]
fn malformed_payloads_are_rejected_with_the_reason_and_the_rest_goes_on() {
    let mut d = basic();
    let out = d.message("tele/Basic-3/STATE", b"{\"POWER\":");
    let [(source, reason)] = rejections(&out).try_into().unwrap();
    assert_eq!(source, "tele/Basic-3/STATE");
    assert!(reason.starts_with("payload is not a JSON object"), "{reason}");
    assert_eq!(rejections(&d.message("stat/Basic-3/RESULT", b"ON")).len(), 1);
    assert_eq!(rejections(&d.message("stat/Basic-3/STATUS10", br#"{"Status":{}}"#)).len(), 1);
    let out = d.message("tele/Basic-3/STATE", br#"{"POWER":"ON","Wifi":{"Signal":"weak"},"Dimmer":5}"#);
    assert_eq!(states(&out)[0].1, values(&[("state", true.into())]));
    let out = d.message("stat/Basic-3/POWER", b"BROKEN");
    assert_eq!(rejections(&out)[0].1, "`POWER1` is \"BROKEN\", neither ON nor OFF");
    for payload in [&b"\xff\xfe"[..], b"[1]", b"null", b"{\"POWER\":[]}"] {
        let _ = d.message("tele/Basic-3/STATE", payload);
        let _ = d.message("stat/Basic-3/RESULT", payload);
        let _ = d.message("tele/Basic-3/SENSOR", payload);
        let _ = d.message("tele/Basic-3/LWT", payload);
    }
}

#[test]
fn discovery_messages_that_cannot_be_used_are_rejected() {
    let mut d = Devices::new("tasmota/discovery");
    let out = d.message("tasmota/discovery/D8F15BB3DB2D/config", SONOFF_BASIC.as_bytes());
    assert_eq!(
        rejections(&out),
        [(
            "tasmota/discovery/D8F15BB3DB2D/config".to_owned(),
            "the config is for MAC 84F3EB487D21, not D8F15BB3DB2D".to_owned()
        )]
    );
    let out = d.message("tasmota/discovery/84F3EB487D21/config", b"{not json");
    assert!(rejections(&out)[0].1.starts_with("not a Tasmota discovery config"), "{out:?}");
    let out = d.message("tasmota/discovery/84F3EB487D21/sensors", b"[]");
    assert!(rejections(&out)[0].1.starts_with("not a Tasmota sensors discovery"), "{out:?}");
    let out = d.message("tasmota/discovery/84F3EB487D21/status", b"{}");
    assert_eq!(rejections(&out)[0].1, "not a Tasmota discovery topic (<MAC>/config or <MAC>/sensors)");
    assert!(d.ids().is_empty());
    // Two devices on one topic: the second is refused, the first keeps it.
    let mut d = basic();
    let mut twin: Json = serde_json::from_str(SONOFF_T1_2CH).unwrap();
    twin["t"] = json!("Basic-3");
    let out = d.message("tasmota/discovery/D8F15BB3DB2D/config", twin.to_string().as_bytes());
    assert_eq!(
        rejections(&out)[0].1,
        "devices 84F3EB487D21 and D8F15BB3DB2D share the topic `stat/Basic-3/`: give each its own MQTT topic"
    );
    assert_eq!(d.ids().len(), 1);
}

#[test]
fn an_empty_retained_config_removes_the_device() {
    let mut d = basic();
    let out = d.message("tasmota/discovery/84F3EB487D21/config", b"");
    assert_eq!(out, [Out::Event(AdapterEvent::DeviceRemoved { device: DeviceId::parse(BASIC).unwrap() })]);
    assert!(d.ids().is_empty());
    assert_eq!(d.filters().len(), 1, "only discovery is left");
    assert!(d.message("tele/Basic-3/STATE", SONOFF_BASIC_STATE.as_bytes()).is_empty());
    // Removing it again, or a device never seen, is nothing.
    assert!(d.message("tasmota/discovery/84F3EB487D21/config", b"").is_empty());
    assert!(d.command(&command(BASIC, json!({"set": {"state": true}}), "c1")).is_err());
}

#[test]
fn a_changed_config_moves_the_topics() {
    let mut d = basic();
    let mut moved: Json = serde_json::from_str(SONOFF_BASIC).unwrap();
    moved["t"] = json!("kitchen");
    moved["ft"] = json!("%topic%/%prefix%/");
    let out = d.message("tasmota/discovery/84F3EB487D21/config", moved.to_string().as_bytes());
    assert!(matches!(out.as_slice(), [Out::Event(AdapterEvent::Device { .. })]));
    assert!(d.message("tele/Basic-3/STATE", SONOFF_BASIC_STATE.as_bytes()).is_empty());
    assert_eq!(states(&d.message("kitchen/tele/STATE", SONOFF_BASIC_STATE.as_bytes())).len(), 1);
    assert!(d.filters().contains("+/stat/+"));
    assert!(!d.filters().contains("stat/+/+"));
}

#[test]
fn a_command_goes_out_and_its_answer_carries_its_context() {
    let mut d = basic();
    let out = d.command(&command(BASIC, json!({"set": {"state": true}}), "c1")).unwrap();
    assert_eq!(publishes(&out), [("cmnd/Basic-3/POWER1".to_owned(), "ON".to_owned())]);
    // Telemetry that does not answer it keeps no cause; nor does the answer to the adapter's
    // own `STATE` poll, though it holds `POWER`.
    let out = d.message("tele/Basic-3/SENSOR", br#"{"Time":"x"}"#);
    assert!(states(&out).is_empty());
    let out = d.message("stat/Basic-3/RESULT", SONOFF_BASIC_STATE.as_bytes());
    assert_eq!(states(&out)[0].2, None);
    let out = d.message("stat/Basic-3/RESULT", br#"{"POWER":"ON"}"#);
    assert_eq!(states(&out), [(BASIC.to_owned(), values(&[("state", true.into())]), Some("c1".into()))]);
    // Answered once: the `stat/.../POWER` echo that follows, and a later button press, are
    // the device's own.
    let out = d.message("stat/Basic-3/POWER", b"ON");
    assert_eq!(states(&out)[0].2, None);
}

#[test]
fn several_settings_go_as_one_backlog_and_each_answer_carries_the_context() {
    let mut d = devices_with(&[("6001946F966E", H801_RGBCW)]);
    let cmd = command(
        "tasmota:6001946f966e",
        json!({"set": {"state": true, "brightness": 40, "color": {"hue": 120, "saturation": 100}}}),
        "c2",
    );
    let out = d.command(&cmd).unwrap();
    assert_eq!(
        publishes(&out),
        [("cmnd/SONOFF_RGBW1/Backlog".to_owned(), "POWER1 ON; HSBColor1 120; HSBColor2 100; Dimmer 40".to_owned())]
    );
    let out = d.message("stat/SONOFF_RGBW1/RESULT", br#"{"POWER":"ON"}"#);
    assert_eq!(states(&out)[0].2.as_deref(), Some("c2"));
    // Each command of the backlog answers with the whole light state.
    for answer in [
        &br#"{"POWER":"ON","Dimmer":100,"Color":"00FF000000","HSBColor":"120,0,100","White":0,"CT":153,"Channel":[0,100,0,0,0]}"#[..],
        br#"{"POWER":"ON","Dimmer":100,"Color":"00FF000000","HSBColor":"120,100,100","White":0,"CT":153,"Channel":[0,100,0,0,0]}"#,
    ] {
        let out = d.message("stat/SONOFF_RGBW1/RESULT", answer);
        assert_eq!(states(&out)[0].2.as_deref(), Some("c2"));
    }
    let out = d.message("stat/SONOFF_RGBW1/RESULT", br#"{"POWER":"ON","Dimmer":40,"HSBColor":"120,100,40"}"#);
    let [(_, values, cause)] = states(&out).try_into().unwrap();
    assert_eq!(cause.as_deref(), Some("c2"));
    assert_eq!(values["color"], Value::Color(hearth_sdk::Color { hue: 120.0, saturation: 100.0 }));
    // Every command answered: what follows is the device's own.
    let out = d.message("stat/SONOFF_RGBW1/RESULT", br#"{"POWER":"OFF"}"#);
    assert_eq!(states(&out)[0].2, None);
}

#[test]
fn a_refresh_asks_for_state_and_sensors_and_their_answers_carry_its_context() {
    let mut d = basic();
    d.message("tasmota/discovery/84F3EB487D21/sensors", sensors_message(DHT11_SENSOR).as_bytes());
    let out = d.command(&command(BASIC, json!({"refresh": true}), "r1")).unwrap();
    assert_eq!(
        publishes(&out),
        [("cmnd/Basic-3/STATE".to_owned(), String::new()), ("cmnd/Basic-3/STATUS".to_owned(), "10".to_owned())]
    );
    let out = d.message("stat/Basic-3/STATUS10", DHT11_STATUS10.as_bytes());
    assert_eq!(states(&out)[0].2.as_deref(), Some("r1"));
    let out = d.message("stat/Basic-3/RESULT", SONOFF_BASIC_STATE.as_bytes());
    assert_eq!(states(&out)[0].2.as_deref(), Some("r1"));
    // Only the sensors: STATUS 10 alone.
    let out = d.command(&command(BASIC, json!({"refresh": ["humidity"]}), "r2")).unwrap();
    assert_eq!(publishes(&out), [("cmnd/Basic-3/STATUS".to_owned(), "10".to_owned())]);
    let out = d.command(&command(BASIC, json!({"refresh": ["state"]}), "r3")).unwrap();
    assert_eq!(publishes(&out), [("cmnd/Basic-3/STATE".to_owned(), String::new())]);
}

#[test]
fn buttons_give_events() {
    let mut d = Devices::new("tasmota/discovery");
    let out = d.message("tasmota/discovery/112233445566/config", ALL_CLASSES.as_bytes());
    assert_eq!(
        out[1..],
        [Out::Unsupported {
            device: DeviceId::parse("tasmota:112233445566").unwrap(),
            what: "2 shutter relays (shutters are not supported yet)".into(),
        }]
    );
    let out = d.message("stat/all_classes/RESULT", br#"{"Button1":{"Action":"SINGLE"}}"#);
    assert_eq!(
        out,
        [Out::Event(AdapterEvent::Event {
            device: DeviceId::parse("tasmota:112233445566").unwrap(),
            feature: "action".into(),
            event: "single".into(),
            data: Some(Value::Object(BTreeMap::from([("button".to_owned(), Value::Number(1.0))]))),
        })]
    );
}

#[test]
fn losing_the_broker_makes_every_device_offline_with_the_reason() {
    let mut d = devices_with(&[("84F3EB487D21", SONOFF_BASIC), ("D8F15BB3DB2D", SONOFF_T1_2CH)]);
    let out = d.all_offline("MQTT broker 127.0.0.1:1883 unreachable (connection refused)");
    assert_eq!(out.len(), 2);
    for o in out {
        let Out::Event(AdapterEvent::Availability { availability, .. }) = o else { panic!("{o:?}") };
        assert_eq!(availability.state, AvailabilityState::Offline);
        assert_eq!(availability.reason.as_deref(), Some("MQTT broker 127.0.0.1:1883 unreachable (connection refused)"));
        assert_eq!(availability.code.as_deref(), Some("broker_unreachable"));
    }
}

#[test]
fn commands_while_the_broker_is_lost_wait_for_the_device_and_go_out_in_order_when_it_is_back() {
    let mut d = basic();
    assert_eq!(
        publishes(&d.message("tele/Basic-3/LWT", b"Online")),
        [("cmnd/Basic-3/STATE".to_owned(), String::new())]
    );
    d.all_offline("MQTT broker 127.0.0.1:1883 unreachable (connection refused)");
    // Sent now, the broker (back, but before the device has subscribed again) would drop them.
    for (i, on) in [true, false, true].into_iter().enumerate() {
        let out = d.command(&command(BASIC, json!({"set": {"state": on}}), &format!("c{i}"))).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }
    // The retained will of before, or the device's own once it is back: in order, then a fresh
    // look at its state (asked again, though its will says the same word as before).
    let out = d.message("tele/Basic-3/LWT", b"Online");
    assert_eq!(
        publishes(&out),
        [
            ("cmnd/Basic-3/POWER1".to_owned(), "ON".to_owned()),
            ("cmnd/Basic-3/POWER1".to_owned(), "OFF".to_owned()),
            ("cmnd/Basic-3/POWER1".to_owned(), "ON".to_owned()),
            ("cmnd/Basic-3/STATE".to_owned(), String::new()),
        ]
    );
    // From now on commands go at once again.
    let out = d.command(&command(BASIC, json!({"set": {"state": false}}), "c3")).unwrap();
    assert_eq!(publishes(&out), [("cmnd/Basic-3/POWER1".to_owned(), "OFF".to_owned())]);
    // A long outage keeps the newest HELD_MAX.
    d.all_offline("MQTT broker 127.0.0.1:1883 unreachable (connection refused)");
    for i in 0..=HELD_MAX {
        assert!(d.command(&command(BASIC, json!({"set": {"state": i % 2 == 0}}), "c")).unwrap().is_empty());
    }
    let out = publishes(&d.message("tele/Basic-3/LWT", b"Online"));
    assert_eq!(out.len(), HELD_MAX + 1, "the newest {HELD_MAX}, then the state asked for");
    // The bound is for all devices together: a second device's commands push out the oldest.
    let mut two = devices_with(&[("84F3EB487D21", SONOFF_BASIC), ("D8F15BB3DB2D", SONOFF_T1_2CH)]);
    two.all_offline("MQTT broker 127.0.0.1:1883 unreachable (connection refused)");
    for i in 0..HELD_MAX {
        assert!(two.command(&command(BASIC, json!({"set": {"state": i % 2 == 0}}), "c")).unwrap().is_empty());
    }
    let t1 = "tasmota:d8f15bb3db2d";
    let queued = two.command(&command(t1, json!({"set": {"state_relay_1": true}}), "t")).unwrap();
    assert!(queued.is_empty(), "{queued:?}");
    let basic = publishes(&two.message("tele/Basic-3/LWT", b"Online"));
    assert_eq!((basic.len(), basic[0].1.as_str()), (HELD_MAX, "OFF"), "Basic's oldest (ON) made room");
    let t1_out = publishes(&two.message("tele/tasmota_B3DB2D/LWT", b"Online"));
    assert_eq!(t1_out[0], ("cmnd/tasmota_B3DB2D/POWER1".to_owned(), "ON".to_owned()));
    assert_eq!(out[0].1, "OFF", "the first command (ON) was the one dropped");
}

#[test]
fn a_full_topic_with_the_prefix_last_is_followed() {
    let mut config: Json = serde_json::from_str(SONOFF_BASIC).unwrap();
    config["ft"] = json!("%topic%/%prefix%/");
    let mut d = devices_with(&[("84F3EB487D21", &config.to_string())]);
    let out = d.message("Basic-3/tele/LWT", b"Online");
    assert_eq!(publishes(&out), [("Basic-3/cmnd/STATE".to_owned(), String::new())]);
    assert_eq!(states(&d.message("Basic-3/stat/POWER", b"ON")).len(), 1);
}

#[test]
fn a_custom_discovery_prefix_is_used() {
    let mut d = Devices::new("home/discovery/");
    assert!(d.filters().contains("home/discovery/#"));
    let out = d.message("home/discovery/84F3EB487D21/config", SONOFF_BASIC.as_bytes());
    assert!(matches!(out.as_slice(), [Out::Event(AdapterEvent::Device { .. })]));
    assert!(d.message("tasmota/discovery/84F3EB487D21/config", b"").is_empty());
}

#[test]
fn decode_state_reads_a_payload_for_a_mapping() {
    let d = basic();
    let m = d.mapping(&DeviceId::parse(BASIC).unwrap()).unwrap();
    assert_eq!(decode_state(m, br#"{"POWER":"ON"}"#), Some(values(&[("state", true.into())])));
    assert_eq!(decode_state(m, b"nope"), None);
}
