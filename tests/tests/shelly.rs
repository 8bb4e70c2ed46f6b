//! The Shelly adapter's session against the simulated device (`tests/sim/shelly.rs`), over
//! loopback TCP without mDNS: described from its RPC, its switch following commands and its wall
//! button, its power meter, button pushes as events, a cover going to a position, a password
//! entered or missing or wrong, a device that goes silent or sends garbage. The `sim_` tests
//! check the simulator's own HTTP side.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hearth_sdk::{AdapterEvent, CommandRequest, DeviceDescriptor, DeviceId, Refresh, Secret, Value};
use hearth_shelly::Shelly;
use hearth_tests::session::{self, Session};
use hearth_tests::sim::shelly::{ShellyOptions, ShellySim};
use serde_json::json;

const T: Duration = Duration::from_secs(10);

/// A session of the adapter to the simulated device, with `password` under its id.
fn start(sim: &ShellySim, password: Option<&str>, idle: Duration) -> Session {
    start_to(sim.id(), sim.port(), password, idle)
}

/// A session to device `id` at 127.0.0.1:`port`.
fn start_to(id: &str, port: u16, password: Option<&str>, idle: Duration) -> Session {
    let secrets = password.map(|p| BTreeMap::from([(id.to_owned(), Secret::new(p))])).unwrap_or_default();
    Session::start(Shelly, session::target("shelly", id, port), secrets, idle)
}

fn keys(d: &DeviceDescriptor) -> Vec<&str> {
    d.features.iter().map(|f| f.key.as_str()).collect()
}

#[test]
fn a_plus_1pm_is_described_and_follows_commands_and_its_wall_button() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_name("Kitchen lights"));
    let mut s = start(&sim, None, Duration::from_secs(30));

    let d = s.descriptor();
    assert_eq!(d.id.as_str(), "shelly:shellyplus1pm-a8032ab12345");
    assert_eq!(d.name, "Kitchen lights");
    assert_eq!((d.manufacturer.as_deref(), d.model.as_deref()), (Some("Shelly"), Some("Shelly Plus 1PM")));
    assert_eq!(d.firmware.as_deref(), Some("1.0.8"));
    let k = keys(&d);
    for key in ["state", "power", "energy", "voltage", "current", "device_temperature", "action", "signal_strength"] {
        assert!(k.contains(&key), "{key} missing from {k:?}");
    }
    let state = d.features.iter().find(|f| f.key == "state").unwrap();
    assert!(state.access.set, "{state:?}");
    let action = d.features.iter().find(|f| f.key == "action").unwrap();
    assert!(!action.access.set && !action.access.observe, "{action:?}");

    let (values, cause) = s.state_with("state");
    assert_eq!(values["state"], Value::Bool(false));
    assert_eq!(values["energy"], Value::Number(1.2345));
    assert_eq!(cause, None);
    s.online();
    sim.wait_for_subscriber(T);

    // A command reaches the device; the state it reports carries the command's context.
    let context = s.set("state", true);
    assert_eq!(sim.wait_for_call("Switch.Set", T), json!({"id": 0, "on": true}));
    let (values, cause) = s.state_with("state");
    assert_eq!(values["state"], Value::Bool(true));
    assert_eq!(values["power"], Value::Number(60.0));
    assert_eq!(cause, Some(context));
    assert!(sim.is_on());

    // The wall button: a live update without a cause.
    sim.toggle_physically();
    let (values, cause) = s.state_with("state");
    assert_eq!(
        (values["state"].clone(), values["power"].clone(), cause),
        (Value::Bool(false), Value::Number(0.0), None)
    );

    // The meter.
    sim.toggle_physically();
    s.state_with("state");
    sim.set_power(1500.0);
    let (values, _) = s.state_with("power");
    assert_eq!(values["power"], Value::Number(1500.0));

    // A button push is an event, never state.
    sim.press_button();
    let e = s.expect("button event", |e| matches!(e, AdapterEvent::Event { .. }));
    assert_eq!(
        e,
        AdapterEvent::Event {
            device: DeviceId::new("shelly", sim.id()),
            feature: "action".into(),
            event: "single".into(),
            data: None
        }
    );
    sim.press("long_push");
    let e = s.expect("hold event", |e| matches!(e, AdapterEvent::Event { .. }));
    assert!(matches!(e, AdapterEvent::Event { event, .. } if event == "hold"));

    // A new name on the device: described again.
    sim.rename("Hall lights");
    let d = s.descriptor();
    assert_eq!((d.name.as_str(), d.features.len()), ("Hall lights", k.len()));
    let (values, cause) = s.state_with("energy");
    assert_eq!((values["state"].clone(), cause), (Value::Bool(true), None));

    // A refresh asks for the status and reports it with the command's context.
    let context = s.command(CommandRequest { refresh: Some(Refresh::All(true)), ..Default::default() });
    let (values, cause) = s.state_with("energy");
    assert_eq!((values["state"].clone(), cause), (Value::Bool(true), Some(context)));

    // The commands channel closing ends the session cleanly.
    s.close_commands();
    assert_eq!(s.outcome(T), Ok(()));
    assert!(
        sim.calls()
            .iter()
            .all(|(m, _)| ["Shelly.GetDeviceInfo", "Shelly.GetConfig", "Shelly.GetStatus", "Switch.Set",]
                .contains(&m.as_str())),
        "{:?}",
        sim.calls()
    );
}

#[test]
fn a_plus_2pm_cover_goes_to_a_position_and_moves_by_hand() {
    let sim = ShellySim::start(ShellyOptions::plus_2pm_cover());
    let mut s = start(&sim, None, Duration::from_secs(30));
    let d = s.descriptor();
    assert_eq!(d.model.as_deref(), Some("Shelly Plus 2PM"));
    let k = keys(&d);
    for key in ["cover_position", "cover_state", "power", "energy"] {
        assert!(k.contains(&key), "{key} missing from {k:?}");
    }
    let (values, _) = s.state_with("cover_position");
    assert_eq!(values["cover_position"], Value::Number(50.0));
    s.online();

    let context = s.set("cover_position", 40.0);
    assert_eq!(sim.wait_for_call("Cover.GoToPosition", T), json!({"id": 0, "pos": 40}));
    let (values, cause) = s.state_with("cover_position");
    assert_eq!((values["cover_position"].clone(), cause), (Value::Number(40.0), Some(context)));

    s.set("cover_state", "open");
    sim.wait_for_call("Cover.Open", T);
    let (values, _) = s.state_with("cover_position");
    assert_eq!(values["cover_position"], Value::Number(100.0));
    assert_eq!(values["cover_state"], Value::Text("open".into()));

    sim.move_cover_physically(0);
    let (values, cause) = s.state_with("cover_position");
    assert_eq!((values["cover_position"].clone(), cause), (Value::Number(0.0), None));
}

#[test]
fn a_password_protected_device_is_reached_with_the_right_password() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_password("correct horse"));
    let mut s = start(&sim, Some("correct horse"), Duration::from_secs(30));
    let d = s.descriptor();
    assert!(keys(&d).contains(&"state"));
    s.online();
    sim.wait_for_subscriber(T);

    // Commands over the WebSocket carry the auth object the device checks.
    let context = s.set("state", true);
    let (values, cause) = s.state_with("state");
    assert_eq!((values["state"].clone(), cause), (Value::Bool(true), Some(context)));
    sim.press_button();
    s.expect("button event", |e| matches!(e, AdapterEvent::Event { .. }));
    assert!(sim.is_on());
}

#[test]
fn a_device_asking_for_a_missing_password_ends_the_session_with_a_clear_sentence() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_password("correct horse"));
    let mut s = start(&sim, None, Duration::from_secs(30));
    assert_eq!(
        s.outcome(T),
        Err("shellyplus1pm-a8032ab12345 asks for a password: enter it under the adapter's secrets, \
             named shellyplus1pm-a8032ab12345"
            .into())
    );
    // It asked once, and did not insist.
    let config_calls = sim.calls().iter().filter(|(m, _)| m == "Shelly.GetConfig").count();
    assert_eq!(config_calls, 1, "{:?}", sim.calls());
    assert!(!s.seen.iter().any(|e| matches!(e, AdapterEvent::Device { .. })), "{:?}", s.seen);
}

#[test]
fn a_device_refusing_the_password_ends_the_session_with_a_clear_sentence() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_password("correct horse"));
    let mut s = start(&sim, Some("battery staple"), Duration::from_secs(30));
    assert_eq!(
        s.outcome(T),
        Err("shellyplus1pm-a8032ab12345 refused the password: correct it under the adapter's secrets, \
             named shellyplus1pm-a8032ab12345"
            .into())
    );
    let config_calls = sim.calls().iter().filter(|(m, _)| m == "Shelly.GetConfig").count();
    assert_eq!(config_calls, 2, "one try without, one with the password: {:?}", sim.calls());
}

#[test]
fn a_silent_device_ends_the_session_with_no_answer_after_the_idle_time() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm());
    let mut s = start(&sim, None, Duration::from_secs(2));
    s.descriptor();
    s.online();
    // While it answers, the session asks a silent device for its status and goes on.
    s.rt.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    assert!(sim.calls().iter().filter(|(m, _)| m == "Shelly.GetStatus").count() >= 3, "{:?}", sim.calls());
    assert!(s.is_running());

    sim.freeze(true);
    let frozen_at = Instant::now();
    assert_eq!(s.outcome(Duration::from_secs(5)), Err("no answer from 127.0.0.1 for 2 s".into()));
    let took = frozen_at.elapsed();
    assert!(took <= Duration::from_secs(3), "gave up after {took:?}");
}

#[test]
fn a_frozen_device_is_not_described() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm());
    sim.freeze(true);
    let mut s = start(&sim, None, Duration::from_secs(1));
    let e = s.outcome(Duration::from_secs(5)).expect_err("a frozen device");
    assert!(e.starts_with("no answer from 127.0.0.1:"), "{e}");
}

#[test]
fn bad_frames_are_rejected_and_the_session_goes_on() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm());
    let mut s = start(&sim, None, Duration::from_secs(30));
    s.online();
    sim.wait_for_subscriber(T);
    for bad in [
        "not json",
        "[1, 2]",
        r#"{"src": "x", "method": 5}"#,
        r#"{"src": "x", "method": "NotifyEvent", "params": {"events": 3}}"#,
        r#"{"id": -1, "result": {}}"#,
        r#"{"src": "x", "method": "NotifyStatus", "params": {"switch:0": {"output": "yes", "apower": "much"}}}"#,
        r#"{"src": "x", "method": "NotifyStatus", "params": {"switch:7": {"output": true}}}"#,
        r#"{"src": "x", "method": "NotifyMystery", "params": {}}"#,
    ] {
        sim.send_raw(bad);
    }
    for _ in 0..5 {
        let e = s.expect("a rejected frame", |e| matches!(e, AdapterEvent::InputRejected { .. }));
        let AdapterEvent::InputRejected { source, reason } = e else { unreachable!() };
        assert_eq!(source, format!("ws://127.0.0.1:{}/rpc", sim.port()));
        assert!(!reason.is_empty());
    }
    sim.press_button();
    s.expect("button event after the garbage", |e| matches!(e, AdapterEvent::Event { .. }));
    assert!(s.is_running());
}

#[test]
fn a_stopped_device_cannot_be_reached_and_a_restarted_one_can() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm());
    let port = sim.port();
    let mut s = start(&sim, None, Duration::from_secs(30));
    s.online();
    drop(sim);
    let e = s.outcome(T).expect_err("the device stopped");
    assert!(e.contains("closed the connection") || e.starts_with("the connection to"), "{e}");

    let id = "shellyplus1pm-a8032ab12345";
    let mut s = start_to(id, port, None, Duration::from_secs(30));
    let e = s.outcome(T).expect_err("nothing listens");
    assert!(e.starts_with(&format!("cannot connect to 127.0.0.1:{port}")), "{e}");

    let sim = ShellySim::start_on(port, ShellyOptions::plus_1pm());
    let mut s = start(&sim, None, Duration::from_secs(30));
    s.online();
    sim.toggle_physically();
    let (values, _) = s.state_with("state");
    assert_eq!(values["state"], Value::Bool(true));
}

#[test]
fn a_device_with_another_id_at_the_address_is_refused() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_id("shellyplus1pm-000000000001"));
    let mut s = start_to("shellyplus1pm-a8032ab12345", sim.port(), None, Duration::from_secs(10));
    assert_eq!(
        s.outcome(T),
        Err("the device at 127.0.0.1 is shellyplus1pm-000000000001, not shellyplus1pm-a8032ab12345: \
             another device has its address now"
            .into())
    );
}

// ------------------------------------------------------------------------------------------------
// The simulator itself
// ------------------------------------------------------------------------------------------------

fn http(sim: &ShellySim, method: &str, path: &str, body: Option<&str>) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(sim.address()).unwrap();
    let body = body.unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn sim_answers_get_and_post_rpc_and_asks_for_the_password() {
    let sim = ShellySim::start(ShellyOptions::plus_1pm());
    let (status, _, body) = http(&sim, "GET", "/rpc/Shelly.GetDeviceInfo", None);
    assert_eq!(status, 200);
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((info["id"].as_str(), info["gen"].as_u64()), (Some("shellyplus1pm-a8032ab12345"), Some(2)));

    let (status, _, body) = http(&sim, "GET", "/rpc/Switch.Set?id=0&on=true", None);
    assert_eq!((status, body.as_str()), (200, r#"{"was_on":false}"#));
    assert!(sim.is_on());
    let (status, _, body) = http(&sim, "GET", "/rpc/Switch.Set?id=3&on=true", None);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = http(&sim, "GET", "/rpc/Light.Set?id=0", None);
    assert_eq!((status, body.contains("No handler for Light.Set")), (404, true));

    let (status, _, body) = http(
        &sim,
        "POST",
        "/rpc",
        Some(r#"{"id": 7, "src": "t", "method": "Switch.Set", "params": {"id": 0, "on": false}}"#),
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"id": 7, "src": "shellyplus1pm-a8032ab12345", "dst": "t", "result": {"was_on": true}})
    );
    assert_eq!(
        sim.calls().iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
        ["Shelly.GetDeviceInfo", "Switch.Set", "Switch.Set", "Light.Set", "Switch.Set"]
    );

    let locked = ShellySim::start(ShellyOptions::plus_1pm().with_password("pw"));
    let (status, _, _) = http(&locked, "GET", "/rpc/Shelly.GetDeviceInfo", None);
    assert_eq!(status, 200, "the device info is never protected");
    let (status, head, _) =
        http(&locked, "POST", "/rpc", Some(r#"{"id": 1, "src": "t", "method": "Shelly.GetStatus"}"#));
    assert_eq!(status, 401);
    let challenge = head.lines().find(|l| l.to_ascii_lowercase().starts_with("www-authenticate:")).unwrap();
    assert!(
        challenge.contains(r#"Digest qop="auth", realm="shellyplus1pm-a8032ab12345", nonce=""#)
            && challenge.ends_with("algorithm=SHA-256"),
        "{challenge}"
    );
    let (status, _, _) = http(&locked, "GET", "/rpc/Shelly.GetStatus", None);
    assert_eq!(status, 401);
}

#[test]
fn sim_checks_the_websocket_auth_object_computed_by_hand() {
    use sha2::{Digest, Sha256};
    let hex = |s: &str| Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    let sim = ShellySim::start(ShellyOptions::plus_1pm().with_password("pw"));
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/rpc", sim.address())).unwrap();
    let mut ask = |frame: serde_json::Value| -> serde_json::Value {
        ws.send(tungstenite::Message::text(frame.to_string())).unwrap();
        loop {
            if let tungstenite::Message::Text(t) = ws.read().unwrap() {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    };
    let refused = ask(json!({"id": 1, "src": "probe", "method": "Shelly.GetStatus"}));
    assert_eq!(refused["error"]["code"], 401);
    let challenge: serde_json::Value = serde_json::from_str(refused["error"]["message"].as_str().unwrap()).unwrap();
    assert_eq!(challenge["auth_type"], "digest");
    assert_eq!(sim.subscribers(), 0, "a refused client gets no notifications");
    let nonce = challenge["nonce"].as_u64().unwrap();
    let ha1 = hex("admin:shellyplus1pm-a8032ab12345:pw");
    let ha2 = hex("dummy_method:dummy_uri");
    let auth = json!({"realm": "shellyplus1pm-a8032ab12345", "username": "admin", "nonce": nonce, "cnonce": 42,
                      "response": hex(&format!("{ha1}:{nonce}:1:42:auth:{ha2}")), "algorithm": "SHA-256"});
    let ok = ask(json!({"id": 2, "src": "probe", "method": "Shelly.GetStatus", "auth": auth}));
    assert_eq!(ok["result"]["switch:0"]["output"], false, "{ok}");
    assert_eq!(ok["dst"], "probe");
    assert_eq!(sim.subscribers(), 1);
    let mut wrong = auth.clone();
    wrong["response"] = json!(hex("something else"));
    let refused = ask(json!({"id": 3, "src": "probe", "method": "Shelly.GetStatus", "auth": wrong}));
    assert_eq!(refused["error"]["code"], 401);
}
