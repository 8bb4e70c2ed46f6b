//! Xiaomi miIO: the simulator's own tests (`sim_*`), then the adapter's session against it over
//! loopback UDP (`session_*`), driven as the `hearth_mdns::lan` runner drives it (a detached
//! `Link`, events read from the channel, commands sent into it), then the whole adapter under
//! `hearth_sdk::testing::Harness` with the device announced over mDNS inside a network namespace
//! of the test's own.
//!
//! `cargo test -p hearth-tests --test miio -- sim_` runs the simulator's tests alone.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use hearth_mdns::testing::in_namespace;
use hearth_miio::api::{self, Request};
use hearth_miio::packet::{self, Token};
use hearth_miio::{Config, MiioProtocol};
use hearth_sdk::{
    AdapterEvent, AvailabilityState, Capability, Command, CommandRequest, Context, DeviceDescriptor, Origin, Secret,
    Value,
};
use hearth_tests::session::{Session, setting};
use hearth_tests::sim::miio::{MiioOptions, MiioSim};
use serde_json::{Value as Json, json};

/// Generous bound for anything crossing loopback.
const T: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------------------------
// The simulator
// ------------------------------------------------------------------------------------------------

fn client(sim: &MiioSim) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(sim.addr()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Sends `request` made with `token` and reads the answer's JSON.
fn exchange(s: &UdpSocket, token: &Token, request: &Request) -> Json {
    s.send(&packet::encode(token, MiioOptions::DID, 1_001, &request.to_bytes()).unwrap()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.recv(&mut buf).unwrap();
    let p = packet::decode(token, &buf[..n]).unwrap();
    assert_eq!(p.header.device_id, MiioOptions::DID);
    serde_json::from_slice(&p.payload).unwrap()
}

#[test]
fn sim_answers_the_hello_with_its_id_and_clock() {
    let sim = MiioSim::start(MiioOptions::default());
    let s = client(&sim);
    // The hello as every miIO tool sends it, written out byte by byte.
    s.send(&unhex("21310020ffffffffffffffffffffffffffffffffffffffffffffffffffffffff")).unwrap();
    let mut buf = [0u8; 64];
    let n = s.recv(&mut buf).unwrap();
    assert_eq!(n, 32, "a bare header");
    assert_eq!(&buf[..4], &[0x21, 0x31, 0x00, 0x20], "magic, then the length 32");
    assert_eq!(&buf[4..8], &[0, 0, 0, 0], "unknown is 0 in an answer");
    assert_eq!(u32::from_be_bytes(buf[8..12].try_into().unwrap()), 123_456_789, "the did");
    let stamp = u32::from_be_bytes(buf[12..16].try_into().unwrap());
    assert!((1_000..1_100).contains(&stamp), "its clock: {stamp}");
    assert_eq!(&buf[16..32], &[0xFF; 16], "a paired device keeps its token to itself");
    assert_eq!(sim.hellos(), 1);
    assert_eq!(sim.instance_name(), "zhimi-airpurifier-mb3_miio123456789");
}

#[test]
fn sim_answers_miot_requests_made_with_its_token() {
    let sim = MiioSim::start(MiioOptions::default());
    let s = client(&sim);
    let token = Token::parse(MiioOptions::TOKEN).unwrap();
    let info = exchange(&s, &token, &api::info(1));
    assert_eq!((info["id"].clone(), info["result"]["model"].clone()), (json!(1), json!("zhimi.airpurifier.mb3")));
    assert_eq!(info["result"]["fw_ver"], "2.1.7");

    let got = exchange(&s, &token, &api::get_properties(2, "d", &[(2, 2), (3, 8), (9, 9)]));
    assert_eq!(
        got["result"],
        json!([
            {"did": "d", "siid": 2, "piid": 2, "code": 0, "value": true},
            {"did": "d", "siid": 3, "piid": 8, "code": 0, "value": 21.5},
            {"did": "d", "siid": 9, "piid": 9, "code": -4003}
        ])
    );
    let set = exchange(
        &s,
        &token,
        &api::set_properties(
            3,
            "d",
            &[(2, 5, json!(1)), (3, 6, json!(5)), (2, 4, json!(9)), (2, 2, json!(1)), (9, 1, json!(true))],
        ),
    );
    let codes: Vec<i64> = set["result"].as_array().unwrap().iter().map(|r| r["code"].as_i64().unwrap()).collect();
    assert_eq!(codes, [0, -4002, -4005, -4005, -4003], "set, not writable, not in the list, not a bool, unknown");
    assert_eq!(sim.value(2, 5), Some(json!(1)));
    assert_eq!(sim.value(2, 4), Some(json!(2)), "a refused value is not stored");

    let reset = exchange(&s, &token, &api::action(4, "d", 4, 1, vec![]));
    assert_eq!(reset["result"], json!({"code": 0, "out": []}));
    assert_eq!((sim.value(4, 3), sim.value(4, 5)), (Some(json!(100)), Some(json!(0))));
    assert_eq!(exchange(&s, &token, &api::action(5, "d", 8, 1, vec![]))["result"]["code"], 0);
    assert_eq!(sim.value(2, 2), Some(json!(false)), "the button's toggle");
    assert_eq!(exchange(&s, &token, &api::action(6, "d", 4, 9, vec![]))["result"]["code"], -4003);
    let unknown = exchange(&s, &token, &Request { id: 7, method: "set_power".into(), params: json!(["on"]) });
    assert_eq!(unknown["error"], json!({"code": -32601, "message": "Method not found."}));

    let methods: Vec<String> = sim.calls().into_iter().map(|c| c.method).collect();
    assert_eq!(methods, ["miIO.info", "get_properties", "set_properties", "action", "action", "action", "set_power"]);
}

#[test]
fn sim_stays_silent_to_another_token_and_when_frozen_or_losing_requests() {
    let sim = MiioSim::start(MiioOptions::default());
    let s = client(&sim);
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    let mut buf = [0u8; 4096];
    let other = Token::parse("00000000000000000000000000000001").unwrap();
    s.send(&packet::encode(&other, MiioOptions::DID, 1, &api::info(1).to_bytes()).unwrap()).unwrap();
    assert!(s.recv(&mut buf).is_err(), "no answer to another token");
    assert_eq!(sim.refused(), 1);
    assert!(sim.calls().is_empty());

    let token = Token::parse(MiioOptions::TOKEN).unwrap();
    sim.drop_requests(1);
    s.send(&packet::encode(&token, MiioOptions::DID, 1, &api::info(2).to_bytes()).unwrap()).unwrap();
    assert!(s.recv(&mut buf).is_err(), "the lost request");
    s.set_read_timeout(Some(T)).unwrap();
    assert_eq!(exchange(&s, &token, &api::info(3))["id"], 3, "the next one is answered");

    sim.freeze(true);
    s.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
    s.send(&packet::HELLO).unwrap();
    assert!(s.recv(&mut buf).is_err(), "a frozen device answers nothing");
    sim.freeze(false);
    s.send(&packet::HELLO).unwrap();
    assert_eq!(s.recv(&mut buf).unwrap(), 32);
}

// ------------------------------------------------------------------------------------------------
// The session
// ------------------------------------------------------------------------------------------------

fn config(poll_secs: u64, specs_dir: Option<PathBuf>) -> Config {
    Config { poll_secs, specs_dir, ..Config::default() }
}

fn token_of(sim: &MiioSim, token: &str) -> BTreeMap<String, Secret> {
    BTreeMap::from([(sim.key(), Secret::new(token))])
}

/// A session of the adapter to the simulated device, with its token.
fn start(sim: &MiioSim, config: &Config, idle: Duration) -> Session {
    Session::start(MiioProtocol::new(config), sim.target(), token_of(sim, MiioOptions::TOKEN), idle)
}

/// Connected: described, online, first values.
fn up(s: &mut Session) -> (DeviceDescriptor, BTreeMap<String, Value>) {
    let d = s.descriptor();
    s.online();
    let (values, cause) = s.state_with("state");
    assert_eq!(cause, None);
    (d, values)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

#[test]
fn session_describes_the_purifier_and_reports_its_state_in_canonical_units() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = start(&sim, &config(10, None), T);
    let (d, values) = up(&mut s);
    assert_eq!(d.id.to_string(), "miio:123456789");
    assert_eq!(d.name, "Mi Air Purifier 3H");
    assert_eq!((d.manufacturer.as_deref(), d.model.as_deref()), (Some("Xiaomi"), Some("zhimi.airpurifier.mb3")));
    assert_eq!(d.firmware.as_deref(), Some("2.1.7"));
    let keys: Vec<&str> = d.features.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "fault",
            "state",
            "fan_level",
            "mode",
            "pm25",
            "humidity",
            "temperature",
            "filter_life",
            "filter_used_time",
            "reset_filter_life",
            "alarm",
            "indicator_light_brightness",
            "indicator_light_state",
            "child_lock",
            "button_toggle",
            "button_toggle_mode",
            "motor_speed",
            "motor_speed_favorite_fan_level",
            "use_time"
        ]
    );
    let f = |k: &str| d.feature(k).unwrap();
    assert_eq!((f("state").capability, f("mode").capability), (Capability::OnOff, Capability::FanMode));
    assert_eq!((f("pm25").capability, f("pm25").unit.as_deref()), (Capability::Pm25, Some("µg/m³")));
    assert_eq!(f("temperature").unit.as_deref(), Some("°C"));

    assert_eq!(values["state"], Value::Bool(true));
    assert_eq!(values["mode"], text("auto"));
    assert_eq!(values["fan_level"], text("level2"));
    assert_eq!(values["pm25"], Value::Number(12.0));
    assert_eq!(values["humidity"], Value::Number(45.0));
    assert_eq!(values["temperature"], Value::Number(21.5));
    assert_eq!(values["filter_life"], Value::Number(87.0));
    assert_eq!(values["filter_used_time"], Value::Number(412.0 * 3600.0), "hours become seconds");
    assert_eq!(values["fault"], text("no_faults"));
    assert_eq!(values.len(), 16, "every readable property: {values:?}");

    // The hello, the info, then the 16 properties in two requests (15 at most per request).
    assert_eq!(sim.hellos(), 1);
    let calls = sim.calls();
    assert_eq!(calls[0].method, "miIO.info");
    let reads: Vec<usize> =
        calls.iter().filter(|c| c.method == "get_properties").map(|c| c.params.as_array().unwrap().len()).collect();
    assert_eq!(reads, [15, 1]);
    assert_eq!(calls[1].params[0], json!({"did": "123456789", "siid": 2, "piid": 1}));

    s.close_commands();
    assert_eq!(s.outcome(T), Ok(()));
}

#[test]
fn session_polls_and_reports_what_changed_at_the_device() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = start(&sim, &config(1, None), T);
    up(&mut s);
    sim.set_physically(3, 6, json!(35.0));
    sim.set_physically(2, 2, json!(false));
    let (values, cause) = s.state("the next poll", |v| v.get("pm25") == Some(&Value::Number(35.0)));
    assert_eq!(cause, None);
    assert_eq!(values["state"], Value::Bool(false));
}

#[test]
fn session_sends_commands_and_reports_their_result_with_their_cause() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = start(&sim, &config(10, None), T);
    up(&mut s);

    let off = Context::new("ctx-miio-1", Origin::User { name: "alice".into() });
    s.send(setting(&[("state", Value::Bool(false)), ("mode", text("sleep"))]), &off);
    let call = sim.wait_for_call("set_properties", T, |_| true);
    let mut sent: Vec<(u64, u64, Json)> = call
        .params
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["siid"].as_u64().unwrap(), p["piid"].as_u64().unwrap(), p["value"].clone()))
        .collect();
    sent.sort_by_key(|(s, p, _)| (*s, *p));
    assert_eq!(sent, [(2, 2, json!(false)), (2, 5, json!(1))], "the device's own values: false, and 1 for sleep");
    let (values, cause) = s.state("the command's result", |v| v.get("mode") == Some(&text("sleep")));
    assert_eq!(cause, Some(off));
    assert_eq!(values, BTreeMap::from([("state".into(), Value::Bool(false)), ("mode".into(), text("sleep"))]));
    assert_eq!((sim.value(2, 2), sim.value(2, 5)), (Some(json!(false)), Some(json!(1))));

    // An action: the filter is reset at the device, and everything is read back with the cause.
    let reset = Context::new("ctx-miio-2", Origin::Automation { id: "filter".into() });
    s.send(setting(&[("reset_filter_life", Value::Bool(true))]), &reset);
    let call = sim.wait_for_call("action", T, |_| true);
    assert_eq!(call.params, json!({"did": "123456789", "siid": 4, "aiid": 1, "in": []}));
    let (values, cause) = s.state("the action's result", |v| v.get("filter_life") == Some(&Value::Number(100.0)));
    assert_eq!(cause, Some(reset));
    assert_eq!(values["filter_used_time"], Value::Number(0.0));

    // A refresh of one feature: read and reported with its cause.
    let refresh = Context::new("ctx-miio-3", Origin::User { name: "bob".into() });
    sim.set_physically(3, 8, json!(19.2));
    s.send(serde_json::from_value::<CommandRequest>(json!({"refresh": ["temperature"]})).unwrap(), &refresh);
    let (values, cause) = s.state("the refresh", |v| v.contains_key("temperature") && v.len() == 1);
    assert_eq!((values["temperature"].clone(), cause), (Value::Number(19.2), Some(refresh)));
}

#[test]
fn session_sends_a_lost_request_again() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = start(&sim, &config(10, None), T);
    up(&mut s);
    sim.drop_requests(1);
    let context = s.set("state", false);
    let (_, cause) = s.state("the result despite the lost packet", |v| v.get("state") == Some(&Value::Bool(false)));
    assert_eq!(cause, Some(context));
    let sets = sim.calls().iter().filter(|c| c.method == "set_properties").count();
    assert_eq!(sets, 1, "the first copy was lost, the second carried out");
}

#[test]
fn session_without_a_token_is_refused_saying_to_enter_it() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = Session::start(MiioProtocol::new(&config(10, None)), sim.target(), BTreeMap::new(), T);
    assert_eq!(
        s.outcome(T),
        Err("Xiaomi zhimi.airpurifier.mb3 123456789 needs its token: enter it under the adapter's secrets, named 123456789 (32 hex digits)".into())
    );
    assert_eq!(sim.hellos(), 1, "the device was there");
    assert!(sim.calls().is_empty());
    assert!(s.seen.is_empty(), "nothing described: {:?}", s.seen);
}

#[test]
fn session_with_another_token_is_refused_saying_to_enter_the_right_one() {
    let sim = MiioSim::start(MiioOptions::default());
    let secrets = token_of(&sim, "00000000000000000000000000000001");
    let idle = Duration::from_secs(2);
    let mut s = Session::start(MiioProtocol::new(&config(10, None)), sim.target(), secrets, idle);
    let e = s.outcome(T).unwrap_err();
    assert!(
        e.contains("answers its hello but not requests made with the token entered")
            && e.contains("enter its token under the adapter's secrets, named 123456789"),
        "{e}"
    );
    assert!(!e.contains("00000000000000000000000000000001"), "the token is never shown: {e}");
    assert_eq!(sim.refused(), 3, "sent three times, dropped in silence each time");

    let mut bad =
        Session::start(MiioProtocol::new(&config(10, None)), sim.target(), token_of(&sim, "not a token"), idle);
    let e = bad.outcome(T).unwrap_err();
    assert!(e.contains("cannot be used (a miIO token is 32 hex digits") && !e.contains("not a token"), "{e}");
}

/// The shipped purifier spec under another model's name, as a user's file would be.
fn renamed_spec(model: &str) -> String {
    let text = hearth_miio::spec::BUILTIN.iter().find(|(m, _)| *m == "zhimi.airpurifier.mb3").unwrap().1;
    text.replace("\"model\": \"zhimi.airpurifier.mb3\"", &format!("\"model\": \"{model}\""))
}

#[test]
fn session_of_a_model_without_a_spec_is_refused_until_its_file_is_in_specs_dir() {
    let model = "acme.airpurifier.x1";
    let spec = hearth_miio::spec::parse("x.json", model, &renamed_spec(model)).unwrap();
    let sim = MiioSim::start(MiioOptions { model: model.into(), spec: Some(spec), ..MiioOptions::default() });
    assert_eq!(sim.target().name, "acme-airpurifier-x1_miio123456789");
    let mut s = start(&sim, &config(10, None), T);
    assert_eq!(
        s.outcome(T),
        Err("no MIoT spec for model acme.airpurifier.x1: add a spec file to specs_dir (acme.airpurifier.x1.json)"
            .into())
    );

    let dir = std::env::temp_dir().join(format!("hearth-miio-test-specs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{model}.json"));
    std::fs::write(&file, renamed_spec(model).replace("\"format\": \"float\"", "\"format\": \"double\"")).unwrap();
    let mut s = start(&sim, &config(10, Some(dir.clone())), T);
    let e = s.outcome(T).unwrap_err();
    assert_eq!(
        e,
        format!(
            "the MIoT spec for model acme.airpurifier.x1 cannot be used: {}: services[1] (siid 3): properties[0] (piid 6): format: \"double\" is not a MIoT format; it is one of bool, uint8, uint16, uint32, uint64, int8, int16, int32, int64, float, string, hex, tlv8",
            file.display()
        )
    );

    std::fs::write(&file, renamed_spec(model)).unwrap();
    let mut s = start(&sim, &config(10, Some(dir.clone())), T);
    let (d, values) = up(&mut s);
    assert_eq!((d.name.as_str(), d.model.as_deref()), ("Mi Air Purifier 3H", Some(model)));
    assert_eq!(values["pm25"], Value::Number(12.0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn session_skips_a_value_it_cannot_read_and_goes_on() {
    let sim = MiioSim::start(MiioOptions::default());
    let mut s = start(&sim, &config(1, None), T);
    up(&mut s);
    sim.set_physically(2, 5, json!(9));
    sim.set_physically(3, 7, json!(51));
    let rejected = s.expect("a rejected value", |e| matches!(e, AdapterEvent::InputRejected { .. }));
    let AdapterEvent::InputRejected { source, reason } = rejected else { unreachable!() };
    assert_eq!(source, format!("udp://127.0.0.1:{}", sim.port()));
    assert_eq!(reason, "siid 2 piid 5 (mode): 9 is not in the value list (0 auto, 1 sleep, 2 favorite, 3 none)");
    let (values, _) = s.state("the rest of the poll", |v| v.get("humidity") == Some(&Value::Number(51.0)));
    assert!(!values.contains_key("mode"));
}

#[test]
fn session_gives_up_on_a_silent_device_and_on_a_device_with_another_id() {
    let sim = MiioSim::start(MiioOptions::default());
    let idle = Duration::from_secs(2);
    let mut s = start(&sim, &config(10, None), idle);
    up(&mut s);
    sim.freeze(true);
    assert_eq!(s.outcome(T), Err("no answer from 127.0.0.1 for 2 s".into()));

    sim.freeze(false);
    let mut target = sim.target();
    target.key = "987654321".into();
    target.device = hearth_sdk::DeviceId::new("miio", "987654321");
    let mut s = Session::start(MiioProtocol::new(&config(10, None)), target, token_of(&sim, MiioOptions::TOKEN), T);
    assert_eq!(
        s.outcome(T),
        Err(format!("the miIO device at 127.0.0.1:{} is did 123456789, not the 987654321 announced there", sim.port()))
    );

    drop(sim);
    let nobody = MiioSim::start(MiioOptions::default());
    let target = nobody.target();
    drop(nobody);
    let mut s = Session::start(MiioProtocol::new(&config(10, None)), target.clone(), BTreeMap::new(), idle);
    assert_eq!(s.outcome(T), Err(format!("no answer from 127.0.0.1:{} to the miIO hello", target.port)));
}

// ------------------------------------------------------------------------------------------------
// The adapter, found over mDNS, inside a network namespace
// ------------------------------------------------------------------------------------------------

/// The adapter as the hub runs it: the announced purifier waits in the inbox, is accepted, is
/// refused without its token (offline, code `refused`), connects once the token is entered,
/// reports its state, takes a command with its cause, and goes offline when it stops answering;
/// the adapter stops within a second.
#[test]
fn the_adapter_finds_asks_for_the_token_connects_and_follows_a_device() {
    in_namespace("the_adapter_finds_asks_for_the_token_connects_and_follows_a_device", || {
        use hearth_sdk::Decision;
        use hearth_sdk::testing::Harness;

        let sim = MiioSim::start(MiioOptions::default());
        let announcer = hearth_mdns::Browser::start(&["lo".to_owned()]).unwrap();
        sim.announce(&announcer);
        let rt = tokio::runtime::Runtime::new().unwrap();
        // A specs_dir with a broken file: said once at the start, the rest goes on.
        let dir = std::env::temp_dir().join(format!("hearth-miio-adapter-specs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let broken = dir.join("acme.plug.p1.json");
        std::fs::write(&broken, r#"{"services": "switch"}"#).unwrap();
        let config =
            json!({"enabled": true, "interfaces": ["lo"], "offline_after_secs": 2, "poll_secs": 1, "specs_dir": dir});
        let (mut h, run) = Harness::new(Box::new(hearth_miio::MiioAdapter::new()), config, None);
        let run = rt.spawn(run);
        let mut next = |what: &str| {
            rt.block_on(async { tokio::time::timeout(T, h.events.recv()).await })
                .unwrap_or_else(|_| panic!("no {what} within {T:?}"))
                .expect("the adapter runs")
                .1
        };
        let mut until = |what: &str, pick: &dyn Fn(&AdapterEvent) -> bool| loop {
            let e = next(what);
            if pick(&e) {
                return e;
            }
        };
        let rejected = until("the broken spec file", &|e| matches!(e, AdapterEvent::InputRejected { .. }));
        let AdapterEvent::InputRejected { source, reason } = rejected else { unreachable!() };
        assert_eq!(source, broken.display().to_string());
        assert_eq!(reason, format!("{source}: services: must be a list of services"));
        let found = until("found", &|e| matches!(e, AdapterEvent::Found { .. }));
        let AdapterEvent::Found { found } = found else { unreachable!() };
        assert_eq!((found.key.as_str(), found.name.as_str()), ("123456789", "Mi Air Purifier 3H"));
        assert_eq!(
            (found.manufacturer.as_deref(), found.model.as_deref()),
            (Some("Xiaomi"), Some("zhimi.airpurifier.mb3"))
        );
        assert_eq!(found.device, sim.device_id());

        h.inbox.send_replace(BTreeMap::from([(found.key.clone(), Decision::Accepted)]));
        let offline = until(
            "refused",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Offline),
        );
        let AdapterEvent::Availability { availability, .. } = offline else { unreachable!() };
        assert_eq!(availability.code.as_deref(), Some("refused"));
        assert_eq!(
            availability.reason.as_deref(),
            Some(
                "Xiaomi zhimi.airpurifier.mb3 123456789 needs its token: enter it under the adapter's secrets, named 123456789 (32 hex digits)"
            )
        );

        h.secrets.send_replace(BTreeMap::from([(sim.key(), Secret::new(MiioOptions::TOKEN))]));
        let described = until(
            "the description",
            &|e| matches!(e, AdapterEvent::Device { device } if device.id == sim.device_id() && !device.features.is_empty()),
        );
        let AdapterEvent::Device { device } = described else { unreachable!() };
        assert_eq!((device.name.as_str(), device.firmware.as_deref()), ("Mi Air Purifier 3H", Some("2.1.7")));
        until(
            "online",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online),
        );
        until(
            "the state",
            &|e| matches!(e, AdapterEvent::State { values, .. } if values.get("pm25") == Some(&Value::Number(12.0))),
        );
        sim.set_physically(3, 6, json!(48.0));
        until(
            "the polled state",
            &|e| matches!(e, AdapterEvent::State { values, .. } if values.get("pm25") == Some(&Value::Number(48.0))),
        );

        let context = Context::new("c1", Origin::User { name: "alice".into() });
        let command = Command {
            device: sim.device_id(),
            request: serde_json::from_value(json!({"set": {"mode": "favorite"}})).unwrap(),
            context: context.clone(),
        };
        rt.block_on(h.commands.send(command)).unwrap();
        sim.wait_for_call("set_properties", T, |c| c.params[0]["piid"] == 5 && c.params[0]["value"] == 2);
        until(
            "the mode's state",
            &|e| matches!(e, AdapterEvent::State { values, cause: Some(c), .. } if values.get("mode") == Some(&text("favorite")) && c.id == "c1"),
        );

        drop(sim);
        let offline = until(
            "offline",
            &|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Offline),
        );
        let AdapterEvent::Availability { availability, .. } = offline else { unreachable!() };
        assert_eq!(availability.reason.as_deref(), Some("no answer from 127.0.0.1 for 2 s"));
        assert_eq!(availability.code.as_deref(), Some("no_answer"));

        h.shutdown.send_replace(true);
        let stopped = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), run).await });
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

// ------------------------------------------------------------------------------------------------
// The configuration
// ------------------------------------------------------------------------------------------------

/// `hearth check-config` with `[adapters.miio]` of `poll_secs` and `offline_after_secs`: whether
/// it passed, and what it said.
fn check_config(poll_secs: u64, offline_after_secs: u64) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    let config = format!(
        "[adapters.miio]\nenabled = true\npoll_secs = {poll_secs}\noffline_after_secs = {offline_after_secs}\n"
    );
    std::fs::write(&file, config).unwrap();
    let out = std::process::Command::new(hearth_tests::hearth_bin())
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

/// A device read every `poll_secs` but offline after `offline_after_secs` without an answer would
/// be offline between two reads when `poll_secs` is not the shorter: `hearth check-config` refuses
/// it, naming both keys, their values, how they must relate and why.
#[test]
fn check_config_refuses_a_poll_as_long_as_the_offline_time_naming_both_keys() {
    for (poll, offline) in [(60, 60), (120, 30)] {
        let (ok, text) = check_config(poll, offline);
        assert!(!ok, "poll_secs = {poll}, offline_after_secs = {offline} accepted: {text}");
        assert!(
            text.contains(&format!(
                "[adapters.miio] poll_secs = {poll} must be less than offline_after_secs = {offline}"
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "a device is read every poll_secs, and offline when it has not answered for offline_after_secs"
            ),
            "{text}"
        );
    }
    // A read every 59 s, offline after 60 s without an answer: fine.
    let (ok, text) = check_config(59, 60);
    assert!(ok, "{text}");
    assert!(text.contains("the configuration is valid"), "{text}");
}
