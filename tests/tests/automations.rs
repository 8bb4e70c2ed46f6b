//! Automations and scenes end to end: the real binary, its API, and the demo home driven through
//! the demo adapter's `simulate` action (a press, a motion report) so nothing depends on chance.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::sim::MqttProbe;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

/// A demo home whose own simulation is quiet (one tick an hour), so only the test moves things.
fn quiet_demo() -> (Hub, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n").unwrap();
    let hub = Hub::start(&["--config", file.to_str().unwrap()]);
    let token = hub.onboard();
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices", Some(&token)).body;
        (d.as_array().map_or(0, Vec::len) >= 13).then_some(())
    });
    (hub, token, dir)
}

fn value(hub: &Hub, token: &str, id: &str, feature: &str) -> Value {
    hub.get(&format!("/api/v1/devices/{id}"), Some(token)).body["state"][feature]["value"].clone()
}

fn wait_value(hub: &Hub, token: &str, id: &str, feature: &str, want: &Value) {
    hub.wait_for(T, || (value(hub, token, id, feature) == *want).then_some(()));
}

fn simulate(hub: &Hub, token: &str, params: Value) {
    let a = hub.post("/api/v1/adapters/demo/actions/simulate", Some(token), params);
    assert_eq!(a.status, 200, "{}", a.text);
}

fn set(hub: &Hub, token: &str, id: &str, values: Value) {
    let a = hub.post(&format!("/api/v1/devices/{id}/commands"), Some(token), json!({"set": values}));
    assert_eq!(a.status, 202, "{}", a.text);
}

fn create(hub: &Hub, token: &str, def: Value) -> Value {
    let a = hub.post("/api/v1/automations", Some(token), def);
    assert_eq!(a.status, 201, "{}", a.text);
    a.body
}

fn traces(hub: &Hub, token: &str, id: &str) -> Vec<Value> {
    hub.get(&format!("/api/v1/automations/{id}/traces"), Some(token)).body.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_button_press_toggles_a_light_and_the_trace_says_why() {
    let (hub, token, _dir) = quiet_demo();
    set(&hub, &token, "demo:kitchen_light", json!({"state": false}));
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(false));
    create(
        &hub,
        &token,
        json!({"id": "hall_button", "name": "Hall button toggles the light",
        "triggers": [{"event": {"devices": ["demo:hall_button"], "events": ["single"]}}],
        "actions": [{"set": {"devices": ["demo:kitchen_light"], "toggle": ["state"]}}]}),
    );
    simulate(&hub, &token, json!({"device": "hall_button", "event": "double"}));
    simulate(&hub, &token, json!({"device": "hall_button", "event": "single"}));
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(true));
    simulate(&hub, &token, json!({"device": "hall_button", "event": "single"}));
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(false));
    // Two runs, each explained; the double press started none.
    let t = hub.wait_for(T, || {
        let t = traces(&hub, &token, "hall_button");
        (t.len() == 2).then_some(t)
    });
    assert_eq!(t[0]["trigger"]["description"], "demo:hall_button action: single");
    assert_eq!(t[0]["steps"][0]["outcome"], "sent to demo:kitchen_light");
    assert_eq!(t[0]["ending"]["kind"], "finished");
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.contains("hearth_automation_runs_total 2"), "{metrics}");
    assert!(metrics.contains("hearth_automation_commands_total 2"), "{metrics}");
    // History says an automation turned the light on, through the context chain.
    hub.wait_for(T, || {
        let history = hub.get("/api/v1/devices/demo:kitchen_light/history?feature=state", Some(&token)).body;
        let changes = history["entries"].as_array().cloned().unwrap_or_default();
        let by_automation: Vec<&Value> = changes
            .iter()
            .filter(|e| e["context"]["origin"] == json!({"kind": "automation", "id": "hall_button"}))
            .collect();
        (by_automation.len() == 2).then_some(())
    });
}

#[test]
fn motion_turns_the_light_on_and_off_after_the_for_duration_without_motion() {
    let (hub, token, _dir) = quiet_demo();
    set(&hub, &token, "demo:kitchen_light", json!({"state": false}));
    create(
        &hub,
        &token,
        json!({"id": "hall_motion", "name": "Hall light on motion", "mode": "restart",
        "triggers": [
            {"id": "moving", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": true}},
            {"id": "still", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": false, "for": "3s"}}],
        "actions": [{"choose": {
            "options": [{"conditions": [{"trigger": {"id": "moving"}}],
                         "actions": [{"set": {"devices": ["demo:kitchen_light"], "values": {"state": true}}}]}],
            "default": [{"set": {"devices": ["demo:kitchen_light"], "values": {"state": false}}}]}}]}),
    );
    simulate(&hub, &token, json!({"device": "hall_motion", "values": {"occupancy": true}}));
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(true));
    simulate(&hub, &token, json!({"device": "hall_motion", "values": {"occupancy": false}}));
    let still_at = Instant::now();
    // Motion again within the 3 s: the light stays on and the countdown starts over.
    std::thread::sleep(Duration::from_millis(1500));
    simulate(&hub, &token, json!({"device": "hall_motion", "values": {"occupancy": true}}));
    simulate(&hub, &token, json!({"device": "hall_motion", "values": {"occupancy": false}}));
    let restarted_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(
        value(&hub, &token, "demo:kitchen_light", "state"),
        json!(true),
        "3 s after the first stop had not passed"
    );
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(false));
    let off_after = restarted_at.elapsed();
    assert!(off_after >= Duration::from_secs(3), "off {off_after:?} after the motion stopped");
    assert!(still_at.elapsed() >= Duration::from_millis(4500));
    // Traces are written in the background: the newest becomes the `for` trigger's run.
    let t = hub.wait_for(T, || {
        traces(&hub, &token, "hall_motion").into_iter().next().filter(|t| t["trigger"]["id"] == "still")
    });
    assert!(t["trigger"]["description"].as_str().unwrap().contains("stayed so for 3s"), "{t}");
}

#[test]
fn a_scene_captured_from_current_state_restores_it_later() {
    let (hub, token, _dir) = quiet_demo();
    set(&hub, &token, "demo:living_lamp", json!({"state": true, "brightness": 30.0}));
    set(&hub, &token, "demo:plug_tv", json!({"state": false}));
    wait_value(&hub, &token, "demo:living_lamp", "brightness", &json!(30.0));
    wait_value(&hub, &token, "demo:plug_tv", "state", &json!(false));
    let a = hub.post(
        "/api/v1/scenes",
        Some(&token),
        json!({"name": "Reading", "capture": ["demo:living_lamp", "demo:plug_tv"], "features": ["state", "brightness"]}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["id"], "reading");
    assert_eq!(a.body["devices"]["demo:living_lamp"], json!({"state": true, "brightness": 30.0}));
    set(&hub, &token, "demo:living_lamp", json!({"state": false, "brightness": 90.0}));
    set(&hub, &token, "demo:plug_tv", json!({"state": true}));
    wait_value(&hub, &token, "demo:living_lamp", "brightness", &json!(90.0));
    wait_value(&hub, &token, "demo:plug_tv", "state", &json!(true));
    let applied = hub.post("/api/v1/scenes/reading/apply", Some(&token), json!({}));
    assert_eq!(applied.status, 200, "{}", applied.text);
    assert!(applied.body["results"].as_array().unwrap().iter().all(|r| r["ok"] == true), "{}", applied.text);
    wait_value(&hub, &token, "demo:living_lamp", "brightness", &json!(30.0));
    wait_value(&hub, &token, "demo:living_lamp", "state", &json!(true));
    wait_value(&hub, &token, "demo:plug_tv", "state", &json!(false));
    // One context for the whole batch.
    let ctx = applied.body["context"]["id"].clone();
    let has = |path: &str| {
        let h = hub.get(path, Some(&token)).body;
        h["entries"].as_array().is_some_and(|e| e.iter().any(|e| e["context"]["id"] == ctx))
    };
    hub.wait_for(T, || {
        (has("/api/v1/devices/demo:living_lamp/history?feature=brightness")
            && has("/api/v1/devices/demo:plug_tv/history?feature=state"))
        .then_some(())
    });
    // An automation can apply it too.
    set(&hub, &token, "demo:living_lamp", json!({"brightness": 70.0}));
    wait_value(&hub, &token, "demo:living_lamp", "brightness", &json!(70.0));
    create(
        &hub,
        &token,
        json!({"id": "reading_time", "name": "Reading time", "triggers": [{"webhook": {"id": "reading"}}],
        "actions": [{"scene": {"id": "reading"}}]}),
    );
    let hook = hub.post("/api/v1/webhooks/reading", Some(&token), json!({}));
    assert_eq!(hook.status, 202, "{}", hook.text);
    wait_value(&hub, &token, "demo:living_lamp", "brightness", &json!(30.0));
    assert_eq!(hub.post("/api/v1/webhooks/reading", None, json!({})).status, 401, "webhooks need a token");
    assert_eq!(hub.post("/api/v1/webhooks/nothing", Some(&token), json!({})).status, 404);
}

#[test]
fn an_invalid_automation_is_refused_with_the_path_of_each_fault() {
    let (hub, token, _dir) = quiet_demo();
    let a = hub.post(
        "/api/v1/automations",
        Some(&token),
        json!({"id": "bad", "name": "Bad",
        "triggers": [{"state": {"devices": ["demo:no_such_thing"], "feature": "state"}}],
        "actions": [{"delay": "1s"}, {"wait": {"triggers": [{"start": {}}]}},
                    {"set": {"devices": ["demo:living_lamp"], "values": {"brightness": 140.0}}}]}),
    );
    assert_eq!(a.status, 422, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "invalid_definition");
    let faults = a.body["error"]["details"]["faults"].as_array().unwrap();
    let paths: Vec<&str> = faults.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["triggers[0].state.devices[0]", "actions[2].set.brightness"], "{}", a.text);
    let message = a.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("actions[2].set.brightness: "), "{message}");
    assert!(message.contains("140"), "{message}");
    // A body that is not an automation at all says where.
    let a = hub.request(
        "POST",
        "/api/v1/automations",
        Some(&token),
        Some(&json!({"id": "x", "name": "X",
        "triggers": [{"interval": {"every": "soon"}}], "actions": []})),
    );
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(a.body["error"]["details"]["path"], "triggers[0].interval.every", "{}", a.text);
    assert!(hub.get("/api/v1/automations", Some(&token)).body.as_array().unwrap().is_empty(), "nothing was saved");
}

#[test]
fn versions_yaml_dry_run_and_enable() {
    let (hub, token, _dir) = quiet_demo();
    let def = json!({"id": "evening", "name": "Evening", "triggers": [{"time": {"at": "18:00"}}],
        "actions": [{"set": {"devices": ["demo:living_lamp"], "values": {"state": true}}}]});
    create(&hub, &token, def.clone());
    let mut changed = def.clone();
    changed["actions"][0]["set"]["values"]["brightness"] = json!(40.0);
    let put = hub.request("PUT", "/api/v1/automations/evening", Some(&token), Some(&changed));
    assert_eq!((put.status, put.body["version"].clone()), (200, json!(2)), "{}", put.text);
    let versions = hub.get("/api/v1/automations/evening/versions", Some(&token)).body;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["saved_by"], "owner");
    let diff = hub.get("/api/v1/automations/evening/diff", Some(&token)).body;
    assert!(diff["unified"].as_str().unwrap().contains("+        brightness: 40"), "{}", diff["unified"]);
    let back = hub.post("/api/v1/automations/evening/rollback", Some(&token), json!({"version": 1}));
    assert_eq!(back.body["version"], 3, "{}", back.text);
    assert_eq!(hub.get("/api/v1/automations/evening", Some(&token)).body["automation"]["actions"], def["actions"]);
    // The YAML form, and an import of it under another id.
    let yaml = hub.get("/api/v1/automations/evening/yaml", Some(&token)).text;
    assert!(yaml.contains("at: '18:00'"), "{yaml}");
    let imported = yaml.replace("id: evening", "id: evening_copy");
    let a = hub.request_text("POST", "/api/v1/automations/import", Some(&token), &imported);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["saved"][0], json!({"id": "evening_copy", "version": 1}));
    let export = hub.get("/api/v1/automations/export", Some(&token)).text;
    assert_eq!(export.matches("---").count(), 2, "{export}");
    // A dry run acts on nothing.
    set(&hub, &token, "demo:living_lamp", json!({"state": false}));
    wait_value(&hub, &token, "demo:living_lamp", "state", &json!(false));
    let dry = hub.post("/api/v1/automations/evening/dry-run", Some(&token), json!({}));
    assert_eq!(dry.body["would_run"], true, "{}", dry.text);
    assert_eq!(dry.body["actions"], json!(["set state = true on demo:living_lamp"]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(value(&hub, &token, "demo:living_lamp", "state"), json!(false));
    // Off means a trigger does nothing; triggering by hand still runs it.
    let off = hub.post("/api/v1/automations/evening/disable", Some(&token), json!({}));
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(hub.get("/api/v1/automations/evening", Some(&token)).body["enabled"], false);
    let run = hub.post("/api/v1/automations/evening/trigger", Some(&token), json!({}));
    assert_eq!(run.status, 202, "{}", run.text);
    wait_value(&hub, &token, "demo:living_lamp", "state", &json!(true));
    let id = run.body["run"].as_u64().unwrap();
    let trace = hub.wait_for(T, || {
        let t = hub.get(&format!("/api/v1/automations/evening/traces/{id}"), Some(&token));
        (t.status == 200).then_some(t.body)
    });
    assert_eq!(trace["trigger"]["description"], "started by hand by owner");
}

#[test]
fn a_run_waiting_in_a_delay_survives_a_restart_and_acts_once_on_time() {
    let (mut hub, token, _dir) = quiet_demo();
    set(&hub, &token, "demo:kitchen_light", json!({"state": false}));
    wait_value(&hub, &token, "demo:kitchen_light", "state", &json!(false));
    create(
        &hub,
        &token,
        json!({"id": "later", "name": "Later", "triggers": [{"event": {"devices": ["demo:hall_button"]}}],
        "actions": [{"delay": "30s"}, {"set": {"devices": ["demo:kitchen_light"], "toggle": ["state"]}}]}),
    );
    // The clock starts before the press, so the run's delay cannot start before it.
    let pressed = Instant::now();
    simulate(&hub, &token, json!({"device": "hall_button", "event": "hold"}));
    let runs = hub.wait_for(T, || {
        let r = hub.get("/api/v1/automation-runs", Some(&token)).body;
        (r.as_array().map_or(0, Vec::len) == 1).then_some(r)
    });
    assert_eq!(runs[0]["threads"][0]["state"], "sleeping", "{runs}");
    std::thread::sleep(Duration::from_secs(3));
    hub.restart();
    let back = pressed.elapsed();
    let runs = hub.get("/api/v1/automation-runs", Some(&token)).body;
    assert_eq!(runs.as_array().unwrap().len(), 1, "the run came back: {runs}");
    assert_eq!(value(&hub, &token, "demo:kitchen_light", "state"), json!(false));
    wait_value_within(&hub, &token, "demo:kitchen_light", &json!(true), Duration::from_secs(45));
    let at = pressed.elapsed();
    assert!(at >= Duration::from_secs(30), "acted {at:?} after the press, before the delay was over");
    // On time: at the deadline, or at start when the hub came back after it (on a busy machine).
    let due = back.max(Duration::from_secs(30));
    assert!(at < due + Duration::from_secs(5), "acted {at:?} after the press; due at {due:?}");
    // Once: a toggle twice would have turned it off again.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(value(&hub, &token, "demo:kitchen_light", "state"), json!(true));
    let t = traces(&hub, &token, "later");
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t[0]["ending"]["kind"], "finished");
    assert!(hub.get("/api/v1/automation-runs", Some(&token)).body.as_array().unwrap().is_empty());
}

fn wait_value_within(hub: &Hub, token: &str, id: &str, want: &Value, within: Duration) {
    hub.wait_for(within, || (value(hub, token, id, "state") == *want).then_some(()));
}

#[test]
fn an_mqtt_trigger_echoes_the_payload_unchanged() {
    let (hub, token, _dir) = quiet_demo();
    create(
        &hub,
        &token,
        json!({"id": "echo", "name": "Echo", "mode": "parallel", "max_runs": 50,
        "triggers": [{"mqtt": {"topic": "bench/in"}}],
        "actions": [{"mqtt": {"topic": "bench/out", "payload": "{{ trigger.payload }}"}}]}),
    );
    let probe = MqttProbe::connect(hub.mqtt.unwrap());
    probe.subscribe("bench/out");
    let payload = r#"{"seq": 7, "text": "héllo {{ not a template }}"}"#;
    // Retained, so it reaches the engine whether or not its subscription is in place yet.
    probe.publish("bench/in", payload, true);
    let echoed = probe.expect_topic("bench/out", T);
    assert_eq!(echoed.text(), payload);
    let t = hub.wait_for(T, || traces(&hub, &token, "echo").into_iter().next());
    assert_eq!(t["trigger"]["payload"], payload);
}

#[test]
fn a_notify_action_reaches_the_web_ui_over_the_websocket() {
    let (hub, token, _dir) = quiet_demo();
    create(
        &hub,
        &token,
        json!({"id": "door_note", "name": "Door note", "triggers": [{"webhook": {"id": "door"}}],
        "actions": [{"notify": {"title": "Hall", "message": "Someone at the door: {{ trigger.body }}"}}]}),
    );
    let mut ws = hub.ws(&token);
    ws.send(json!({"type": "subscribe"}));
    ws.recv_type("snapshot", T);
    let a = hub.request_text("POST", "/api/v1/webhooks/door", Some(&token), "the postman");
    assert_eq!(a.status, 202, "{}", a.text);
    let note = ws.recv_until(T, |m| m["type"] == "event" && m["event"]["type"] == "notification");
    assert_eq!(note["event"]["message"], "Someone at the door: the postman");
    assert_eq!(note["event"]["title"], "Hall");
    assert_eq!(note["event"]["context"]["origin"], json!({"kind": "automation", "id": "door_note"}));
    // It carries the run's context, so the trace explains it.
    let trace = hub.wait_for(T, || traces(&hub, &token, "door_note").into_iter().next());
    assert_eq!(note["event"]["context"]["id"], trace["context"], "{note} vs {trace}");
    // The run's end and changes of the automation reach open pages too.
    let ran = ws.recv_until(T, |m| m["type"] == "event" && m["event"]["type"] == "automation_ran");
    assert_eq!(
        (ran["event"]["automation"].as_str(), ran["event"]["ending"].as_str()),
        (Some("door_note"), Some("finished"))
    );
    assert_eq!(hub.post("/api/v1/automations/door_note/disable", Some(&token), json!({})).status, 200);
    let changed = ws.recv_until(T, |m| m["type"] == "event" && m["event"]["type"] == "automation_changed");
    assert_eq!(
        changed["event"],
        json!({"type": "automation_changed", "automation": "door_note", "version": 1, "enabled": false})
    );
}

/// A one-request HTTP server: returns its address and a receiver of (request line, body).
fn http_sink() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<(String, String)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        tx.send((line.trim().to_owned(), String::from_utf8(body).unwrap())).unwrap();
    });
    (addr, rx)
}

#[test]
fn an_outgoing_webhook_carries_the_trigger_as_valid_json_and_its_answer_is_traced() {
    let (hub, token, _dir) = quiet_demo();
    let (addr, requests) = http_sink();
    create(
        &hub,
        &token,
        json!({"id": "forward", "name": "Forward", "triggers": [{"webhook": {"id": "in"}}],
        "actions": [{"webhook": {"url": format!("http://{addr}/hook"), "body": "{\"got\": {{ trigger.body | json }}}"}},
                    {"notify": {"message": "forwarded"}}]}),
    );
    let body = r#"He said "hi" \ then left"#;
    let a = hub.request_text("POST", "/api/v1/webhooks/in", Some(&token), body);
    assert_eq!(a.status, 202, "{}", a.text);
    let (line, sent) = requests.recv_timeout(T).unwrap();
    assert_eq!(line, "POST /hook HTTP/1.1");
    let sent: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent, json!({"got": body}));
    let t = hub.wait_for(T, || traces(&hub, &token, "forward").into_iter().next());
    let steps: Vec<&str> = t["steps"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(steps[0], format!("calling POST http://{addr}/hook"));
    assert_eq!(steps[1], "answered 200 OK", "{t}");
    assert_eq!(t["ending"]["kind"], "finished");
}
