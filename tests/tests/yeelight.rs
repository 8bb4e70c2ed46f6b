//! Yeelight: the simulator's own tests (`sim_*`), the adapter's session against it over loopback
//! TCP (`session_*`), driven as the `hearth_mdns::lan` runner drives it (a detached `Link`,
//! events read from the channel, commands sent into it), and the adapter as the hub runs it,
//! finding bulbs by multicast inside a network namespace (`adapter_*`).
//!
//! `cargo test -p hearth-tests --test yeelight -- sim_` runs the simulator's tests alone.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::time::Duration;

use hearth_mdns::testing::in_namespace;
use hearth_sdk::{
    AdapterEvent, AvailabilityState, Color, Command, Context, DeviceDescriptor, Origin, Refresh, Value, ValueType,
};
use hearth_tests::session::{Session, setting};
use hearth_tests::sim::yeelight::{YeelightOptions, YeelightSim, headers};
use hearth_yeelight::YeelightProtocol;
use serde_json::{Value as Json, json};

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------------
// The simulator
// ------------------------------------------------------------------------------------------------

/// A plain client of the bulb's control port.
struct Client {
    out: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Client {
    fn connect(sim: &YeelightSim) -> Client {
        let out = TcpStream::connect((Ipv4Addr::LOCALHOST, sim.port())).unwrap();
        out.set_read_timeout(Some(T)).unwrap();
        Client { lines: BufReader::new(out.try_clone().unwrap()), out }
    }

    fn send(&mut self, line: &str) {
        self.out.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    fn next(&mut self) -> Json {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "a line ends in CRLF: {line:?}");
        serde_json::from_str(line.trim_end()).unwrap_or(Json::String(line))
    }

    /// Sends a request and reads lines until its answer (notifications before it are returned too).
    fn ask(&mut self, id: u64, method: &str, params: Json) -> (Json, Vec<Json>) {
        self.send(&json!({"id": id, "method": method, "params": params}).to_string());
        let mut notes = Vec::new();
        loop {
            let m = self.next();
            if m["id"] == json!(id) || m["id"] == json!(0) {
                return (m, notes);
            }
            notes.push(m);
        }
    }

    fn closed(&mut self) -> bool {
        self.out.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut line = String::new();
        matches!(self.lines.read_line(&mut line), Ok(0) | Err(_))
    }
}

#[test]
fn sim_speaks_the_control_protocol_and_notifies_every_connection() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut a = Client::connect(&sim);
    let mut b = Client::connect(&sim);
    let (answer, _) = a.ask(1, "get_prop", json!(["power", "not_exist", "bright", "ct", "name"]));
    assert_eq!(answer, json!({"id": 1, "result": ["on", "", "100", "4000", "my_bulb"]}));

    let (answer, _) = a.ask(2, "set_bright", json!([40, "smooth", 500]));
    assert_eq!(answer, json!({"id": 2, "result": ["ok"]}));
    assert_eq!(a.next(), json!({"method": "props", "params": {"bright": 40}}));
    assert_eq!(b.next(), json!({"method": "props", "params": {"bright": 40}}), "every connection hears it");
    let (_, _) = a.ask(3, "set_hsv", json!([120, 50, "sudden", 30]));
    assert_eq!(a.next(), json!({"method": "props", "params": {"hue": 120, "sat": 50, "color_mode": 3}}));
    assert_eq!(b.next()["params"]["color_mode"], 3);

    // Its rules: effects, ranges, values only while on, methods it does not support.
    for (id, method, params) in [
        (4, "set_bright", json!([40, "smooth", 10])),
        (5, "set_bright", json!([0, "sudden", 30])),
        (6, "set_ct_abx", json!([9000, "sudden", 30])),
        (7, "set_rgb", json!([255, "fade", 30])),
    ] {
        let (answer, _) = a.ask(id, method, params);
        assert_eq!(answer, json!({"id": id, "error": {"code": -5000, "message": "general error"}}), "{method}");
    }
    let (answer, _) = a.ask(8, "set_music", json!([1, "127.0.0.1", 5000]));
    assert_eq!(answer, json!({"id": 8, "error": {"code": -1, "message": "unsupported method"}}));
    let (answer, _) = a.ask(9, "set_power", json!(["off", "smooth", 500]));
    assert_eq!(answer["result"], json!(["ok"]));
    assert_eq!(a.next(), json!({"method": "props", "params": {"power": "off"}}));
    assert_eq!(b.next(), json!({"method": "props", "params": {"power": "off"}}));
    let (answer, _) = a.ask(10, "set_bright", json!([30, "smooth", 500]));
    assert_eq!(answer["error"]["code"], -5000, "no brightness while off");
    a.send("not json");
    assert_eq!(a.next(), json!({"id": 0, "error": {"code": -1, "message": "invalid command"}}));

    // A change at the bulb reaches every connection; the record has every request.
    sim.set_physically(json!({"power": "on", "ct": 2700, "color_mode": 2}));
    assert_eq!(a.next(), json!({"method": "props", "params": {"power": "on", "ct": 2700, "color_mode": 2}}));
    assert_eq!(b.next()["params"]["ct"], 2700);
    assert_eq!(sim.requests().len(), 11);
    assert_eq!(sim.requests_of("set_bright").len(), 4);
    assert_eq!(sim.refusals().len(), 7);
    assert_eq!(sim.props()["bright"], 40);
    assert_eq!(sim.connections(), 2);
}

#[test]
fn sim_keeps_its_quota_and_its_connection_limit() {
    let sim = YeelightSim::start(YeelightOptions { quota: 3, ..YeelightOptions::ceiling() });
    let mut a = Client::connect(&sim);
    for id in 1..=3 {
        assert_eq!(a.ask(id, "get_prop", json!(["power"])).0["result"], json!(["off"]));
    }
    let (refused, _) = a.ask(4, "set_power", json!(["on", "smooth", 500]));
    assert_eq!(refused, json!({"id": 4, "error": {"code": -1, "message": "client quota exceeded"}}));
    assert_eq!(sim.props()["power"], "off", "a refused request is not carried out");
    // The quota is per connection.
    let mut others: Vec<Client> = (0..3).map(|_| Client::connect(&sim)).collect();
    assert_eq!(others[0].ask(1, "get_prop", json!(["power"])).0["result"], json!(["off"]));
    sim.wait_connections(4, T);
    // A fifth connection is closed as it opens.
    let mut fifth = Client::connect(&sim);
    assert!(fifth.closed(), "a fifth connection is refused");
    assert_eq!(sim.turned_away(), 1);
    drop(others.pop());
    sim.wait_connections(3, T);
    let mut again = Client::connect(&sim);
    assert_eq!(again.ask(1, "get_prop", json!(["bright"])).0["result"], json!(["99"]));
}

#[test]
fn sim_freezes_stops_and_starts_again_on_its_port() {
    let mut opts = YeelightOptions::color();
    let sim = YeelightSim::start(opts.clone());
    let mut a = Client::connect(&sim);
    sim.freeze(true);
    a.send(&json!({"id": 1, "method": "get_prop", "params": ["power"]}).to_string());
    a.out.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut line = String::new();
    assert!(a.lines.read_line(&mut line).is_err(), "a frozen bulb answers nothing: {line:?}");
    sim.freeze(false);
    a.out.set_read_timeout(Some(T)).unwrap();
    let port = sim.port();
    drop(sim);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "the listener is closed");
    assert!(a.closed(), "the open connection is closed");
    opts.bright = 7;
    let again = YeelightSim::start_on(port, opts);
    let mut b = Client::connect(&again);
    assert_eq!(b.ask(1, "get_prop", json!(["bright"])).0["result"], json!(["7"]));
}

#[test]
fn sim_answers_searches_and_advertises_on_the_group() {
    in_namespace("sim_answers_searches_and_advertises_on_the_group", || {
        let listener = hearth_yeelight::discovery::group_socket(&[Ipv4Addr::LOCALHOST]).unwrap();
        listener.set_read_timeout(Some(T)).unwrap();
        let sim = YeelightSim::start(YeelightOptions { multicast: true, ..YeelightOptions::color() });
        let mut buf = [0u8; 2048];
        let (n, _) = listener.recv_from(&mut buf).unwrap();
        let notify = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(notify.starts_with("NOTIFY * HTTP/1.1\r\n"), "{notify}");
        let h = headers(&notify);
        assert_eq!(h["location"], format!("yeelight://127.0.0.1:{}", sim.port()));
        assert_eq!(
            (h["id"].as_str(), h["model"].as_str(), h["nts"].as_str()),
            ("0x000000000015243f", "color", "ssdp:alive")
        );

        let searcher = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        searcher.set_read_timeout(Some(T)).unwrap();
        hearth_yeelight::discovery::send_to_group(
            &searcher,
            Some(Ipv4Addr::LOCALHOST),
            hearth_yeelight::api::SEARCH.as_bytes(),
        )
        .unwrap();
        let (n, from) = searcher.recv_from(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert_eq!(from.ip(), Ipv4Addr::LOCALHOST);
        let bulb = hearth_yeelight::api::parse_datagram(answer.as_bytes()).unwrap().unwrap();
        assert_eq!((bulb.key.as_str(), bulb.address.port()), ("000000000015243f", sim.port()));
        assert_eq!(bulb.header("support"), Some(YeelightOptions::color().support.as_str()));
        assert_eq!(sim.searches(), 1);
        // Another app's search for something else is not answered (the next search is, and
        // the simulator reads them in order).
        hearth_yeelight::discovery::send_to_group(
            &searcher,
            Some(Ipv4Addr::LOCALHOST),
            b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n",
        )
        .unwrap();
        hearth_yeelight::discovery::send_to_group(
            &searcher,
            Some(Ipv4Addr::LOCALHOST),
            hearth_yeelight::api::SEARCH.as_bytes(),
        )
        .unwrap();
        searcher.recv_from(&mut buf).unwrap();
        assert_eq!(sim.searches(), 2);
        // Frozen, it answers no search.
        sim.freeze(true);
        hearth_yeelight::discovery::send_to_group(
            &searcher,
            Some(Ipv4Addr::LOCALHOST),
            hearth_yeelight::api::SEARCH.as_bytes(),
        )
        .unwrap();
        searcher.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        assert!(searcher.recv_from(&mut buf).is_err(), "a frozen bulb answers no search");
    });
}

// ------------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------------

fn start(sim: &YeelightSim, idle: Duration) -> Session {
    Session::start(YeelightProtocol::new(), sim.target(), BTreeMap::new(), idle)
}

/// Connected: described, online, first values.
fn up(s: &mut Session) -> (DeviceDescriptor, BTreeMap<String, Value>) {
    let d = s.descriptor();
    s.online();
    let (values, cause) = s.state("the first state", |v| v.contains_key("state"));
    assert_eq!(cause, None);
    (d, values)
}

fn keys(d: &DeviceDescriptor) -> Vec<&str> {
    d.features.iter().map(|f| f.key.as_str()).collect()
}

fn ctx(id: &str) -> Context {
    Context::new(id, Origin::User { name: "alice".into() })
}

fn n(v: f64) -> Value {
    Value::Number(v)
}

#[test]
fn session_describes_a_color_bulb_with_its_state() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    let (d, values) = up(&mut s);
    assert_eq!(d.id.as_str(), "yeelight:000000000015243f");
    assert_eq!(
        (d.name.as_str(), d.manufacturer.as_deref(), d.model.as_deref(), d.firmware.as_deref()),
        ("my_bulb", Some("Yeelight"), Some("color"), Some("18"))
    );
    assert_eq!(keys(&d), ["state", "brightness", "color_temperature", "color", "color_mode"]);
    assert_eq!(d.feature("color_temperature").unwrap().value_type, ValueType::range(1700.0, 6500.0, 1.0));
    assert_eq!(d.feature("brightness").unwrap().value_type, ValueType::range(1.0, 100.0, 1.0));
    assert_eq!(
        values,
        BTreeMap::from([
            ("state".to_owned(), Value::Bool(true)),
            ("brightness".to_owned(), n(100.0)),
            ("color_temperature".to_owned(), n(4000.0)),
            ("color".to_owned(), Value::Color(Color { hue: 0.0, saturation: 100.0 })),
            ("color_mode".to_owned(), Value::Text("color_temperature".into())),
        ])
    );
    let first = &sim.requests()[0];
    assert_eq!(first["method"], "get_prop");
    assert_eq!(first["params"], json!(["power", "bright", "ct", "rgb", "hue", "sat", "color_mode", "name"]));
    assert_eq!(sim.connections(), 1);
}

#[test]
fn session_describes_a_ceiling_light_by_its_model_and_a_white_bulb_by_its_methods() {
    let sim = YeelightSim::start(YeelightOptions::ceiling());
    let mut s = start(&sim, T);
    let (d, values) = up(&mut s);
    assert_eq!(d.name, "Yeelight ceiling3 eb9f61", "no name of its own: model and id");
    assert_eq!(keys(&d), ["state", "brightness", "color_temperature"]);
    assert_eq!(d.feature("color_temperature").unwrap().value_type, ValueType::range(2700.0, 6500.0, 1.0));
    assert_eq!(values.get("state"), Some(&Value::Bool(false)));
    assert_eq!(values.get("color_temperature"), Some(&n(3802.0)));
    assert!(!values.contains_key("color"));

    let mono = YeelightSim::start(YeelightOptions::mono());
    let mut s = start(&mono, T);
    let (d, values) = up(&mut s);
    assert_eq!((d.name.as_str(), keys(&d)), ("sampleBulb", vec!["state", "brightness"]));
    assert_eq!(values, BTreeMap::from([("state".to_owned(), Value::Bool(true)), ("brightness".to_owned(), n(46.0))]));
}

#[test]
fn session_reports_a_change_at_the_bulb_and_a_new_name() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    sim.set_physically(json!({"power": "off", "bright": 20}));
    let (values, cause) = s.state("the change", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!((values.get("brightness"), cause), (Some(&n(20.0)), None));
    sim.set_physically(json!({"rgb": 255, "color_mode": 1}));
    let (values, _) = s.state("the color", |v| v.contains_key("color"));
    assert_eq!(values["color"], Value::Color(Color { hue: 240.0, saturation: 100.0 }));
    assert_eq!(values["color_mode"], Value::Text("color".into()));
    sim.set_physically(json!({"name": "Desk"}));
    assert_eq!(s.descriptor().name, "Desk");
}

#[test]
fn session_carries_out_a_command_and_reports_its_result_with_the_cause() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    let context = ctx("ctx-yeelight-1");
    let mut request =
        setting(&[("brightness", n(40.0)), ("color", Value::Color(Color { hue: 120.0, saturation: 50.0 }))]);
    request.transition = Some(1.0);
    s.send(request, &context);
    let (values, cause) = s.state("the color", |v| v.contains_key("color"));
    assert_eq!(cause, Some(context.clone()));
    assert_eq!(values["color"], Value::Color(Color { hue: 120.0, saturation: 50.0 }));
    let (values, cause) = s.state("the brightness", |v| v.contains_key("brightness"));
    assert_eq!((values["brightness"].clone(), cause), (n(40.0), Some(context)));
    let writes: Vec<Json> = sim.requests().into_iter().filter(|r| r["method"] != "get_prop").collect();
    assert_eq!(
        writes.iter().map(|r| (r["method"].clone(), r["params"].clone())).collect::<Vec<_>>(),
        [(json!("set_hsv"), json!([120, 50, "smooth", 1000])), (json!("set_bright"), json!([40, "smooth", 1000])),]
    );
    // Off without a transition: smooth over 300 ms; a color temperature at once: sudden.
    let off = Context::new("ctx-yeelight-2", Origin::Automation { id: "night".into() });
    s.send(setting(&[("state", Value::Bool(false))]), &off);
    let (_, cause) = s.state("off", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!(cause, Some(off));
    assert_eq!(sim.requests_of("set_power").last().unwrap()["params"], json!(["off", "smooth", 300]));
    assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
    s.close_commands();
    assert_eq!(s.outcome(T), Ok(()));
}

#[test]
fn session_turns_an_off_bulb_on_for_a_value() {
    let sim = YeelightSim::start(YeelightOptions::ceiling());
    let mut s = start(&sim, T);
    up(&mut s);
    let mut request = setting(&[("color_temperature", n(2000.0))]);
    request.transition = Some(0.0);
    let context = s.command(request);
    let (values, cause) = s.state("the temperature", |v| v.contains_key("color_temperature"));
    assert_eq!((values["color_temperature"].clone(), cause), (n(2700.0), Some(context)), "kept in the model's range");
    sim.wait_props("on at 2700 K", T, |p| p["power"] == "on" && p["ct"] == 2700);
    let methods: Vec<Json> = sim.requests().into_iter().skip(1).map(|r| r["method"].clone()).collect();
    assert_eq!(methods, [json!("set_power"), json!("set_ct_abx")]);
    assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
}

#[test]
fn session_coalesces_a_burst_of_commands_within_the_bulbs_quota() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    let mut last = None;
    for b in 1..=100 {
        last = Some(s.set("brightness", f64::from(b)));
    }
    let (_, cause) = s.state("the last brightness", |v| v.get("brightness") == Some(&n(100.0)));
    assert_eq!(cause, last, "the last command's context");
    sim.wait_props("the last brightness applied", T, |p| p["bright"] == 100);
    assert!(sim.refusals().is_empty(), "no quota refusals: {:?}", sim.refusals());
    let sent = sim.requests_of("set_bright");
    assert!(sent.len() < 30, "a burst is coalesced, not sent whole: {} sent", sent.len());
    assert_eq!(sent.last().unwrap()["params"][0], 100);
}

#[test]
fn session_sends_again_what_the_bulb_refused_for_its_quota() {
    // A bulb whose quota another app spends: three requests in any two seconds.
    let sim = YeelightSim::start(YeelightOptions {
        quota: 3,
        quota_window: Duration::from_secs(2),
        ..YeelightOptions::color()
    });
    let mut s = start(&sim, T);
    up(&mut s);
    let context = s.command(setting(&[
        ("brightness", n(10.0)),
        ("color_temperature", n(3000.0)),
        ("color", Value::Color(Color { hue: 60.0, saturation: 100.0 })),
    ]));
    sim.wait_props("every value applied", T, |p| {
        p["bright"] == 10 && p["hue"] == 60 && p["sat"] == 100 && p["ct"] == 3000 && p["color_mode"] == 3
    });
    let refused: Vec<Json> = sim.refusals();
    assert!(
        refused.iter().any(|r| r["error"]["message"] == "client quota exceeded"),
        "the bulb refused for its quota: {refused:?}"
    );
    let (_, cause) = s.state("a result", |v| v.contains_key("brightness") || v.contains_key("color"));
    assert_eq!(cause, Some(context));
    assert!(s.is_running());
}

#[test]
fn session_refreshes_and_logs_a_refusal_without_failing() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    // The bulb was turned off while the session heard nothing of it: a brightness is refused.
    sim.freeze(true);
    sim.set_physically(json!({"power": "off"}));
    sim.freeze(false);
    s.set("brightness", 50.0);
    sim.wait("the refusal", T, |r| !r.refusals.is_empty());
    assert_eq!(sim.refusals()[0]["error"], json!({"code": -5000, "message": "general error"}));
    assert!(s.is_running(), "a refusal is logged, the session goes on");
    let refresh = s.command(hearth_sdk::CommandRequest {
        refresh: Some(Refresh::Features(vec!["state".into()])),
        ..Default::default()
    });
    let (values, cause) = s.state("the refreshed state", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!(cause, Some(refresh));
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(sim.requests_of("get_prop").last().unwrap()["params"], json!(["power"]));
    let on = s.set("state", true);
    let (_, cause) = s.state("on", |v| v.get("state") == Some(&Value::Bool(true)));
    assert_eq!(cause, Some(on));
}

#[test]
fn session_skips_lines_it_cannot_read_and_goes_on() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    for line in ["not json", r#"{"method":"props"}"#, "[1,2,3]"] {
        sim.push_raw(line);
        let rejected = s.expect("a rejected line", |e| matches!(e, AdapterEvent::InputRejected { .. }));
        let AdapterEvent::InputRejected { source, .. } = rejected else { unreachable!() };
        assert_eq!(source, format!("yeelight://127.0.0.1:{}", sim.port()));
    }
    sim.set_physically(json!({"bright": 33}));
    let (values, _) = s.state("the change after", |v| v.contains_key("brightness"));
    assert_eq!(values["brightness"], n(33.0));
}

#[test]
fn session_keeps_a_quiet_bulb_online_and_gives_up_on_a_silent_one() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let idle = Duration::from_secs(3);
    let mut s = start(&sim, idle);
    up(&mut s);
    std::thread::sleep(idle * 2);
    assert!(s.is_running(), "a quiet but answering bulb keeps its session");
    assert!(sim.requests_of("get_prop").len() >= 3, "keep-alives: {:?}", sim.requests_of("get_prop"));
    sim.freeze(true);
    assert_eq!(s.outcome(T), Err("no answer from 127.0.0.1 for 3 s".to_owned()));
}

#[test]
fn session_says_why_when_the_bulb_has_no_connection_left() {
    let sim = YeelightSim::start(YeelightOptions { max_connections: 1, ..YeelightOptions::color() });
    let _other_app = Client::connect(&sim);
    sim.wait_connections(1, T);
    let mut s = start(&sim, T);
    let e = s.outcome(T).unwrap_err();
    assert!(e.contains("closed the connection before answering") && e.contains("4 connections"), "{e}");
}

#[test]
fn session_fails_when_the_bulb_is_stopped() {
    let sim = YeelightSim::start(YeelightOptions::color());
    let mut s = start(&sim, T);
    up(&mut s);
    drop(sim);
    let e = s.outcome(T).unwrap_err();
    assert!(e.starts_with("the Yeelight bulb at 127.0.0.1:") && e.ends_with("closed the connection"), "{e}");
}

// ------------------------------------------------------------------------------------------------
// The adapter, discovering by multicast inside a namespace
// ------------------------------------------------------------------------------------------------

/// The adapter as the hub runs it: both bulbs found by the multicast search, one accepted,
/// described, controlled (a burst of 100 brightness commands ends with the last one applied and
/// no refusal), offline with the reason when it is stopped, online again when it restarts and
/// advertises itself, and the adapter stops within a second.
#[test]
fn adapter_finds_accepts_controls_and_follows_a_bulb() {
    in_namespace("adapter_finds_accepts_controls_and_follows_a_bulb", || {
        use hearth_sdk::Decision;
        use hearth_sdk::testing::Harness;

        let color_opts = YeelightOptions { multicast: true, ..YeelightOptions::color() };
        let color = YeelightSim::start(color_opts.clone());
        let ceiling = YeelightSim::start(YeelightOptions { multicast: true, ..YeelightOptions::ceiling() });
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = json!({"enabled": true, "interfaces": ["lo"], "offline_after_secs": 3});
        let (mut h, run) = Harness::new(Box::new(hearth_yeelight::YeelightAdapter::new()), config, None);
        let run = rt.spawn(run);
        let mut seen: Vec<AdapterEvent> = Vec::new();
        // Events keep coming (keep-alive reads are reported too): each wait has a deadline of
        // its own.
        let mut until = |what: &str, pick: &dyn Fn(&AdapterEvent) -> bool| {
            let deadline = tokio::time::Instant::now() + T;
            loop {
                let e = rt
                    .block_on(async { tokio::time::timeout_at(deadline, h.events.recv()).await })
                    .unwrap_or_else(|_| panic!("no {what} within {T:?}; seen: {seen:#?}"))
                    .expect("the adapter runs")
                    .1;
                seen.push(e.clone());
                if pick(&e) {
                    return (e, seen.clone());
                }
            }
        };
        let device = color.device_id();
        let found_key =
            |key: String| move |e: &AdapterEvent| matches!(e, AdapterEvent::Found { found } if found.key == key);
        let (found, _) = until("the color bulb", &found_key(color.key()));
        let AdapterEvent::Found { found } = found else { unreachable!() };
        assert_eq!(
            (found.name.as_str(), found.model.as_deref(), found.manufacturer.as_deref(), found.address.as_deref()),
            ("my_bulb", Some("color"), Some("Yeelight"), Some("127.0.0.1"))
        );
        assert_eq!(found.device, device);
        until("the ceiling light", &found_key(ceiling.key()));
        assert!(color.searches() >= 1, "found by the search (and the advertisement)");

        h.inbox.send_replace(BTreeMap::from([(color.key(), Decision::Accepted)]));
        let described = |e: &AdapterEvent| matches!(e, AdapterEvent::Device { device: d } if d.id == color.device_id() && !d.features.is_empty());
        let (d, _) = until("the description", &described);
        let AdapterEvent::Device { device: d } = d else { unreachable!() };
        assert_eq!(keys(&d), ["state", "brightness", "color_temperature", "color", "color_mode"]);
        let online = |e: &AdapterEvent| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online);
        until("online", &online);
        until(
            "the first state",
            &|e| matches!(e, AdapterEvent::State { values, .. } if values.contains_key("brightness")),
        );

        let send = |id: &str, request: hearth_sdk::CommandRequest| {
            let context = ctx(id);
            let command = Command { device: device.clone(), request, context: context.clone() };
            rt.block_on(h.commands.send(command)).unwrap();
            context
        };
        send("c0", setting(&[("brightness", n(40.0))]));
        let with_cause = |id: &'static str, b: f64| move |e: &AdapterEvent| matches!(e, AdapterEvent::State { values, cause: Some(c), .. } if c.id == id && values.get("brightness") == Some(&Value::Number(b)));
        until("the command's result", &with_cause("c0", 40.0));
        assert_eq!(color.props()["bright"], 40);

        // A burst, far beyond the bulb's 60 a minute. (Paced by a millisecond or two: the Wi-Fi
        // runner hands a device at most 48 commands waiting at once and drops the rest.)
        for b in 1..=100 {
            send(&format!("c{b}"), setting(&[("brightness", n(f64::from(b)))]));
            std::thread::sleep(Duration::from_millis(2));
        }
        until("the burst's last result", &with_cause("c100", 100.0));
        color.wait_props("the last brightness", T, |p| p["bright"] == 100);
        assert!(color.refusals().is_empty(), "no refusal from the bulb: {:?}", color.refusals());
        assert!(color.requests_of("set_bright").len() < 40, "{} sent", color.requests_of("set_bright").len());

        let port = color.port();
        drop(color);
        let offline = |e: &AdapterEvent| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Offline);
        let (e, _) = until("offline", &offline);
        let AdapterEvent::Availability { device: d, availability } = e else { unreachable!() };
        assert_eq!(d, device);
        assert_eq!(availability.reason.as_deref(), Some("no answer from 127.0.0.1 for 3 s"));
        assert_eq!(availability.code.as_deref(), Some("no_answer"));

        let _color = YeelightSim::start_on(port, color_opts);
        until("online again", &online);
        let (_, seen) = until(
            "its state again",
            &|e| matches!(e, AdapterEvent::State { values, .. } if values.get("brightness") == Some(&Value::Number(100.0))),
        );
        assert!(
            !seen
                .iter()
                .any(|e| matches!(e, AdapterEvent::Device { device } if device.id.as_str().ends_with(&ceiling.key()))),
            "the bulb not accepted is not a device"
        );

        h.shutdown.send_replace(true);
        let stopped = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), run).await });
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    });
}
