//! WLED: the simulator's own tests (`sim_*`), then the adapter's session against it over
//! loopback TCP (`session_*`), driven as the `hearth_mdns::lan` runner drives it: a detached
//! `Link`, events read from the channel, commands sent into it. No mDNS here; the hub and
//! discovery end to end are in `wifi.rs`.
//!
//! `cargo test -p hearth-tests --test wled -- sim_` runs the simulator's tests alone.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use hearth_mdns::lan::{Protocol, Target};
use hearth_mdns::testing::in_namespace;
use hearth_sdk::{AdapterEvent, Color, Context, DeviceDescriptor, Origin, Value, ValueType};
use hearth_tests::session::{self, Session, setting};
use hearth_tests::sim::wled::{EFFECTS, MALFORMED_FRAMES, PALETTES, WledOptions, WledSim};
use hearth_wled::WledProtocol;
use serde_json::{Value as Json, json};

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------------
// The simulator
// ------------------------------------------------------------------------------------------------

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(T)).build().into()
}

fn get(sim: &WledSim, path: &str) -> (u16, Json) {
    let mut r = agent().get(&format!("http://127.0.0.1:{}{path}", sim.port())).call().unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_json().unwrap())
}

fn post(sim: &WledSim, path: &str, body: &Json) -> (u16, Json) {
    let mut r = agent().post(&format!("http://127.0.0.1:{}{path}", sim.port())).send_json(body).unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_json().unwrap())
}

type Client = tungstenite::WebSocket<TcpStream>;

fn ws_connect(sim: &WledSim) -> Client {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, sim.port())).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let (ws, _) = tungstenite::client::client(format!("ws://127.0.0.1:{}/ws", sim.port()), stream).unwrap();
    ws
}

fn ws_next(ws: &mut Client) -> Json {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => {
                return serde_json::from_str(t.as_str()).unwrap_or_else(|_| Json::String(t.as_str().to_owned()));
            }
            tungstenite::Message::Binary(b) => return json!({"binary": b.len()}),
            _ => {}
        }
    }
}

#[test]
fn sim_serves_the_json_api_as_wled_does() {
    let sim = WledSim::start(WledOptions { segments: 2, ..WledOptions::default() });
    let (status, all) = get(&sim, "/json");
    assert_eq!(status, 200);
    assert_eq!(all["info"]["mac"], "8813bf0455f0");
    assert_eq!(all["info"]["name"], "WLED Kitchen");
    assert_eq!(all["info"]["leds"]["count"], 30);
    assert_eq!(all["info"]["fxcount"], EFFECTS.len());
    assert_eq!(all["effects"].as_array().unwrap().len(), EFFECTS.len());
    assert_eq!(all["palettes"].as_array().unwrap().len(), PALETTES.len());
    assert_eq!(all["state"]["mainseg"], 0);
    let segs = all["state"]["seg"].as_array().unwrap();
    assert_eq!(
        segs.iter().map(|s| (s["id"].clone(), s["start"].clone(), s["stop"].clone())).collect::<Vec<_>>(),
        [(json!(0), json!(0), json!(15)), (json!(1), json!(15), json!(30))]
    );
    assert_eq!(segs[0]["col"][0], json!([255, 160, 0]));
    assert_eq!(get(&sim, "/json/eff").1[9], "Rainbow");
    assert_eq!(get(&sim, "/json/pal").1[6], "Party");
    assert_eq!(get(&sim, "/json/info").1["brand"], "WLED");
    assert_eq!(get(&sim, "/json/state").1["bri"], 128);
    assert_eq!(get(&sim, "/json/si").1["info"]["arch"], "esp32");
    assert_eq!(get(&sim, "/nothing").0, 404);

    // A patch without "v" is acknowledged; with it the full state comes back.
    let (status, answer) = post(&sim, "/json/state", &json!({"on": false}));
    assert_eq!((status, answer), (200, json!({"success": true})));
    let (_, state) =
        post(&sim, "/json/state", &json!({"bri": 60, "seg": [{"id": 1, "col": ["00FF00"], "fx": 9}], "v": true}));
    assert_eq!((state["on"].clone(), state["bri"].clone()), (json!(true), json!(60)), "a brightness turns it on");
    assert_eq!((state["seg"][1]["col"][0].clone(), state["seg"][1]["fx"].clone()), (json!([0, 255, 0]), json!(9)));
    // Brightness 0 turns off and keeps the brightness it turns on with; "t" toggles.
    assert_eq!(post(&sim, "/json/state", &json!({"bri": 0, "v": true})).1["on"], false);
    assert_eq!(sim.state()["bri"], 60);
    assert_eq!(post(&sim, "/json/state", &json!({"on": "t", "v": true})).1["on"], true);
    assert_eq!(
        sim.patches(),
        [
            json!({"on": false}),
            json!({"bri": 60, "seg": [{"id": 1, "col": ["00FF00"], "fx": 9}], "v": true}),
            json!({"bri": 0, "v": true}),
            json!({"on": "t", "v": true})
        ]
    );
    let r = agent()
        .post(&format!("http://127.0.0.1:{}/json/state", sim.port()))
        .content_type("application/json")
        .send("not json")
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[test]
fn sim_pushes_every_change_over_its_websocket_and_stops_when_dropped() {
    let sim = WledSim::start(WledOptions { rgbw: true, ..WledOptions::default() });
    let mut ws = ws_connect(&sim);
    let greeting = ws_next(&mut ws);
    assert_eq!(greeting["info"]["mac"], "8813bf0455f0");
    assert_eq!(greeting["info"]["ws"], 1);
    assert_eq!(greeting["state"]["seg"][0]["col"][0], json!([255, 160, 0, 0]), "RGBW colors have four channels");
    assert_eq!(greeting["info"]["leds"]["lc"], 3);

    // The button: a push to every client.
    sim.set_physically(json!({"on": false}));
    assert_eq!(ws_next(&mut ws)["state"]["on"], false);
    // A patch over the socket: applied and pushed.
    ws.send(tungstenite::Message::text(r#"{"on": true, "seg": [{"id": 0, "pal": 6}], "v": true}"#)).unwrap();
    let pushed = ws_next(&mut ws);
    assert_eq!((pushed["state"]["on"].clone(), pushed["state"]["seg"][0]["pal"].clone()), (json!(true), json!(6)));
    // A change over HTTP reaches the socket too.
    post(&sim, "/json/state", &json!({"bri": 7}));
    assert_eq!(ws_next(&mut ws)["state"]["bri"], 7);
    // `{"v":true}` asks for the state; `p` is a heartbeat; nothing changed is acknowledged.
    ws.send(tungstenite::Message::text(r#"{"v":true}"#)).unwrap();
    assert_eq!(ws_next(&mut ws)["state"]["bri"], 7);
    assert_eq!(sim.state_requests(), 1);
    ws.send(tungstenite::Message::text("p")).unwrap();
    assert_eq!(ws_next(&mut ws), json!("pong"));
    ws.send(tungstenite::Message::text(r#"{"bri": 7}"#)).unwrap();
    assert_eq!(ws_next(&mut ws), json!({"success": true}));
    assert_eq!(sim.patches().len(), 3, "{:?}", sim.patches());

    // Frozen: requests are read, nothing is answered or pushed.
    sim.freeze(true);
    sim.set_physically(json!({"bri": 99}));
    ws.get_ref().set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    assert!(ws.read().is_err(), "a frozen controller sends nothing");
    sim.freeze(false);
    let port = sim.port();
    drop(sim);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "the listener is closed");
    ws.get_ref().set_read_timeout(Some(T)).unwrap();
    assert!(ws.read().is_err(), "the open WebSocket is closed");

    // Started again on the same port, as after a reboot.
    let again = WledSim::start_on(port, WledOptions::default());
    assert_eq!(get(&again, "/json/state").1["bri"], 128);
}

#[test]
fn sim_sends_malformed_frames_when_asked() {
    let sim = WledSim::start(WledOptions { malformed: true, ..WledOptions::default() });
    let mut ws = ws_connect(&sim);
    assert!(ws_next(&mut ws)["state"].is_object());
    for frame in MALFORMED_FRAMES {
        let got = ws_next(&mut ws);
        let expected = serde_json::from_str(frame).unwrap_or_else(|_| Json::String((*frame).to_owned()));
        assert_eq!(got, expected);
    }
    assert_eq!(ws_next(&mut ws), json!({"binary": 4}));
    sim.push_raw("{\"state\":");
    assert_eq!(ws_next(&mut ws), json!("{\"state\":"));
}

// ------------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------------

/// The controller as its announcement names it, with `mac` in its TXT records.
fn target(sim: &WledSim, mac: &str) -> Target {
    Target {
        name: sim.mdns_name(),
        txt: BTreeMap::from([("mac".to_owned(), mac.to_owned())]),
        ..session::target("wled", mac, sim.port())
    }
}

/// A session of the adapter to the simulated controller.
fn start(sim: &WledSim, idle: Duration) -> Session {
    start_for(target(sim, sim.mac()), idle)
}

fn start_for(target: Target, idle: Duration) -> Session {
    Session::start(WledProtocol, target, BTreeMap::new(), idle)
}

/// Connected: described, online, first values.
fn up(s: &mut Session) -> DeviceDescriptor {
    let d = s.descriptor();
    s.online();
    s.state("the first state", |v| v.contains_key("state"));
    d
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn color(v: &Value) -> (f64, f64) {
    match v {
        Value::Color(c) => ((c.hue * 10.0).round() / 10.0, (c.saturation * 10.0).round() / 10.0),
        other => panic!("not a color: {other:?}"),
    }
}

fn enum_values(d: &DeviceDescriptor, key: &str) -> Vec<String> {
    match &d.feature(key).unwrap_or_else(|| panic!("no feature {key}")).value_type {
        ValueType::Enum { values } => values.clone(),
        other => panic!("{key} is {other:?}"),
    }
}

#[test]
fn session_describes_the_controller_with_its_features_and_state() {
    let sim = WledSim::start(WledOptions { segments: 2, ..WledOptions::default() });
    let mut s = start(&sim, T);
    let d = up(&mut s);
    assert_eq!(d.id.to_string(), "wled:8813bf0455f0");
    assert_eq!(d.name, "WLED Kitchen");
    assert_eq!((d.manufacturer.as_deref(), d.model.as_deref()), (Some("WLED"), Some("WLED on esp32")));
    assert_eq!(d.firmware.as_deref(), Some("0.15.0"));
    let keys: Vec<&str> = d.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "state",
            "brightness",
            "color",
            "effect",
            "palette",
            "transition",
            "state_seg1",
            "brightness_seg1",
            "color_seg1",
            "effect_seg1",
            "palette_seg1",
            "signal_strength"
        ]
    );
    let effects = enum_values(&d, "effect");
    assert_eq!(effects.len(), EFFECTS.len() - 1, "RSVD is left out");
    assert!(effects.iter().any(|e| e == "Rainbow") && !effects.iter().any(|e| e == "RSVD"));
    assert_eq!(enum_values(&d, "palette").len(), PALETTES.len());
    assert_eq!(d.feature("state_seg1").unwrap().endpoint.as_deref(), Some("seg1"));

    let (values, cause) = s.state("the first state", |v| v.contains_key("effect_seg1"));
    assert_eq!(cause, None);
    assert_eq!(values["state"], Value::Bool(true));
    assert_eq!(values["brightness"], Value::Number(50.2));
    assert_eq!(color(&values["color"]), (37.7, 100.0));
    assert_eq!(values["effect"], text("Solid"));
    assert_eq!(values["palette"], text("Default"));
    assert_eq!(values["transition"], Value::Number(0.7));
    assert_eq!(values["state_seg1"], Value::Bool(true));
    assert_eq!(values["signal_strength"], Value::Number(-56.0));
    assert_eq!(sim.ws_clients(), 1);
}

#[test]
fn session_reports_a_physical_change_live() {
    let sim = WledSim::start(WledOptions { segments: 2, ..WledOptions::default() });
    let mut s = start(&sim, T);
    up(&mut s);
    sim.set_physically(json!({"on": false, "seg": [{"id": 1, "fx": 9, "pal": 6, "col": [[0, 0, 255]]}]}));
    let (values, cause) = s.state("the physical change", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!(cause, None);
    assert_eq!(values["effect_seg1"], text("Rainbow"));
    assert_eq!(values["palette_seg1"], text("Party"));
    assert_eq!(color(&values["color_seg1"]), (240.0, 100.0));
    assert_eq!(values["effect"], text("Solid"), "the main segment did not change");
}

#[test]
fn session_carries_out_a_command_and_reports_its_result_with_the_cause() {
    let sim = WledSim::start(WledOptions::default());
    let mut s = start(&sim, T);
    up(&mut s);
    let context = Context::new("ctx-wled-1", Origin::User { name: "alice".into() });
    s.send(
        setting(&[
            ("brightness", Value::Number(40.0)),
            ("color", Value::Color(Color { hue: 0.0, saturation: 100.0 })),
            ("effect", text("Rainbow")),
            ("palette", text("Party")),
        ]),
        &context,
    );
    let patches = sim.wait_patches(1, T);
    assert_eq!(patches, [json!({"bri": 102, "seg": [{"id": 0, "col": [[255, 0, 0]], "fx": 9, "pal": 6}], "v": true})]);
    let (values, cause) = s.state("the command's result", |v| v.get("effect") == Some(&text("Rainbow")));
    assert_eq!(cause, Some(context));
    assert_eq!(values["brightness"], Value::Number(40.0));
    assert_eq!(color(&values["color"]), (0.0, 100.0));
    assert_eq!(values["palette"], text("Party"));
    assert_eq!(sim.state()["seg"][0]["fx"], 9);

    // Off by an automation, then on by the button: only the command's report has a cause.
    let off = Context::new("ctx-wled-2", Origin::Automation { id: "night".into() });
    s.send(setting(&[("state", Value::Bool(false))]), &off);
    let (_, cause) = s.state("off", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!(cause, Some(off));
    sim.set_physically(json!({"on": true}));
    let (_, cause) = s.state("on by the button", |v| v.get("state") == Some(&Value::Bool(true)));
    assert_eq!(cause, None);

    // The command channel closing ends the session cleanly.
    s.close_commands();
    assert_eq!(s.outcome(T), Ok(()));
}

#[test]
fn session_keeps_a_quiet_controller_alive_by_asking_for_its_state() {
    let sim = WledSim::start(WledOptions::default());
    let idle = Duration::from_millis(1500);
    let mut s = start(&sim, idle);
    up(&mut s);
    std::thread::sleep(idle * 2);
    assert!(s.is_running(), "a quiet but answering controller keeps its session");
    assert!(sim.state_requests() >= 2, "keep-alive requests: {}", sim.state_requests());
    assert!(sim.patches().is_empty(), "keep-alives are no patches: {:?}", sim.patches());
}

#[test]
fn session_fails_with_the_reason_when_the_controller_stops_answering() {
    let sim = WledSim::start(WledOptions::default());
    let mut s = start(&sim, Duration::from_secs(2));
    up(&mut s);
    sim.freeze(true);
    let started = Instant::now();
    assert_eq!(s.outcome(Duration::from_secs(6)), Err("no answer from 127.0.0.1 for 2 s".to_owned()));
    assert!(started.elapsed() >= Duration::from_millis(1500), "gave up after {:?}", started.elapsed());
}

#[test]
fn session_fails_when_the_controller_is_stopped() {
    let sim = WledSim::start(WledOptions::default());
    let mut s = start(&sim, T);
    up(&mut s);
    drop(sim);
    let e = s.outcome(T).unwrap_err();
    assert!(e.contains("127.0.0.1") && e.contains("WebSocket"), "{e}");
}

#[test]
fn session_refuses_another_controller_at_the_announced_address() {
    let sim = WledSim::start(WledOptions::default());
    let mut s = start_for(target(&sim, "aabbccddeeff"), T);
    assert_eq!(
        s.outcome(T),
        Err("the WLED controller at 127.0.0.1 is wled:8813bf0455f0, not the wled:aabbccddeeff announced there".into())
    );
}

#[test]
fn session_skips_malformed_frames_and_goes_on() {
    let sim = WledSim::start(WledOptions { malformed: true, ..WledOptions::default() });
    let mut s = start(&sim, T);
    up(&mut s);
    for _ in MALFORMED_FRAMES {
        let rejected = s.expect("a rejected frame", |e| matches!(e, AdapterEvent::InputRejected { .. }));
        let AdapterEvent::InputRejected { source, reason } = rejected else { unreachable!() };
        assert_eq!(source, format!("ws://127.0.0.1:{}/ws", sim.port()));
        assert!(reason.starts_with("reading the WLED JSON message"), "{reason}");
    }
    sim.push_raw(r#"{"state": {"seg": 5}}"#);
    s.expect("the pushed bad frame", |e| matches!(e, AdapterEvent::InputRejected { .. }));
    assert!(s.is_running());
    // Still working: a command and its result.
    let context = Context::new("ctx-after-garbage", Origin::User { name: "bob".into() });
    s.send(setting(&[("effect", text("Fireworks"))]), &context);
    let (values, cause) = s.state("the command's result", |v| v.get("effect") == Some(&text("Fireworks")));
    assert_eq!((cause, values["state"].clone()), (Some(context), Value::Bool(true)));
}

#[test]
fn session_announces_the_device_again_when_its_layout_changes() {
    let sim = WledSim::start(WledOptions { segments: 2, ..WledOptions::default() });
    let mut s = start(&sim, T);
    up(&mut s);
    sim.set_physically(json!({"seg": [{"id": 1, "n": "Shelf"}]}));
    let d = s.descriptor();
    assert_eq!(d.feature("state_seg1").unwrap().label.as_deref(), Some("Shelf"));
    s.state("the renamed segment's state", |v| v.contains_key("state_seg1"));
}

// ------------------------------------------------------------------------------------------------
// Discovery to session, without the hub
// ------------------------------------------------------------------------------------------------

#[test]
fn session_connects_to_the_controller_its_mdns_announcement_names() {
    in_namespace("session_connects_to_the_controller_its_mdns_announcement_names", || {
        let sim = WledSim::start(WledOptions { mac: "a8032ab12345".into(), ..WledOptions::default() });
        let lo = ["lo".to_owned()];
        let device_side = hearth_mdns::Browser::start(&lo).unwrap();
        sim.announce(&device_side);
        let hub_side = hearth_mdns::Browser::start(&lo).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let announcement = rt.block_on(async {
            let mut seen = hub_side.browse(WledProtocol.service_types()).unwrap();
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
        assert_eq!(announcement.name, "wled-b12345");
        assert_eq!(announcement.txt.get("mac").map(String::as_str), Some("a8032ab12345"));
        let found = WledProtocol.identify(&announcement).unwrap();
        assert_eq!(found.device.to_string(), sim.device_id());
        assert_eq!((found.name.as_str(), found.manufacturer.as_deref()), ("wled-b12345", Some("WLED")));
        let target = hearth_mdns::lan::target(&found, &announcement).unwrap();
        assert_eq!(target.socket().to_string(), format!("127.0.0.1:{}", sim.port()));
        drop(rt);
        let mut s = start_for(target, T);
        let d = up(&mut s);
        assert_eq!(d.id, found.device, "the session announces the device the inbox offered");
    });
}
