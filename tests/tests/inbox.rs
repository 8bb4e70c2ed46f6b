//! The discovery inbox end to end, against the real binary with the demo adapter's finds (a BLE
//! thermometer, a Wi-Fi plug, a TV it cannot control): found things wait in the inbox, an
//! accepted one becomes a device with live state, decisions survive a restart, removing the
//! device or forgetting the entry offers it again, and only administrators see or decide.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_tests::{Answer, Hub};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);
const QUIET_DEMO: &str = "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n";
const THERMOMETER: &str = "demo:garden_thermometer";

fn inbox(hub: &Hub, token: &str, query: &str) -> Vec<Value> {
    let a = hub.get(&format!("/api/v1/inbox{query}"), Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["entries"].as_array().unwrap().clone()
}

/// Waits for the entry `key` to have `status`; returns it.
fn wait_entry(hub: &Hub, token: &str, key: &str, status: &str) -> Value {
    hub.wait_for(T, || inbox(hub, token, "?all=true").into_iter().find(|e| e["key"] == key && e["status"] == status))
}

fn device(hub: &Hub, token: &str, id: &str) -> Answer {
    hub.get(&format!("/api/v1/devices/{id}"), Some(token))
}

fn decide(hub: &Hub, token: &str, key: &str, what: &str) -> Answer {
    hub.post(&format!("/api/v1/inbox/demo/{key}/{what}"), Some(token), json!({}))
}

#[test]
fn found_devices_wait_for_the_user_and_decisions_last() {
    let mut hub = Hub::start_with_config(QUIET_DEMO, &[]);
    let token = hub.onboard();

    // Three finds, new, with what a user needs to decide.
    let entries = hub.wait_for(T, || {
        let e = inbox(&hub, &token, "");
        (e.len() == 3).then_some(e)
    });
    let thermometer = entries.iter().find(|e| e["key"] == "garden_thermometer").unwrap();
    assert_eq!(thermometer["adapter"], "demo");
    assert_eq!(thermometer["device"], THERMOMETER);
    assert_eq!(thermometer["name"], "Garden thermometer");
    assert_eq!(thermometer["transport"], "ble");
    assert_eq!(thermometer["address"], "A4:C1:38:00:00:01");
    assert_eq!(thermometer["supported"], true);
    assert_eq!(thermometer["status"], "new");
    assert!(thermometer["first_seen"].as_str().is_some() && thermometer["last_seen"].as_str().is_some());
    let tv = entries.iter().find(|e| e["key"] == "living_tv").unwrap();
    assert_eq!((tv["transport"].clone(), tv["supported"].clone()), (json!("wifi"), json!(false)));
    assert_eq!(device(&hub, &token, THERMOMETER).status, 404, "not a device before it is accepted");

    // Accepting makes it a device, with its readings, live on the WebSocket.
    let mut ws = hub.ws(&token);
    ws.send(json!({"type": "subscribe"}));
    ws.recv_type("snapshot", T);
    let accepted = decide(&hub, &token, "garden_thermometer", "accept");
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    assert_eq!(accepted.body["status"], "accepted");
    let changed = ws.recv_until(T, |m| m["event"]["type"] == "inbox_changed");
    assert_eq!(changed["event"]["entry"]["status"], "accepted");
    let added = ws.recv_until(T, |m| m["event"]["type"] == "device_added");
    assert_eq!(added["event"]["device"]["id"], THERMOMETER);
    let d = hub.wait_for(T, || {
        let d = device(&hub, &token, THERMOMETER);
        (d.status == 200 && d.body["state"]["temperature"]["value"].is_number()).then_some(d.body)
    });
    assert_eq!(d["name"], "Garden thermometer");
    assert_eq!(d["availability"]["state"], "online");

    // The inbox lists what is still undecided; `all` also what became a device.
    let keys = |list: Vec<Value>| list.iter().map(|e| e["key"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(keys(inbox(&hub, &token, "")), ["desk_plug", "living_tv"]);
    assert_eq!(keys(inbox(&hub, &token, "?all=true")), ["desk_plug", "garden_thermometer", "living_tv"]);

    // What cannot be a device can only be ignored; unknown keys and bad queries are refused.
    let refused = decide(&hub, &token, "living_tv", "accept");
    assert_eq!(
        (refused.status, refused.body["error"]["code"].clone()),
        (409, json!("unsupported")),
        "{}",
        refused.text
    );
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("ignore"), "{}", refused.text);
    assert_eq!(decide(&hub, &token, "living_tv", "ignore").body["status"], "ignored");
    let missing = decide(&hub, &token, "nothing_here", "accept");
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("nothing_here"), "{}", missing.text);
    assert_eq!(hub.get("/api/v1/inbox?all=maybe", Some(&token)).status, 400);
    assert_eq!(hub.get("/api/v1/inbox?everything=true", Some(&token)).status, 400);

    // Administrators only.
    let member = hub.member(&token, "kid");
    assert_eq!(hub.get("/api/v1/inbox", Some(&member)).status, 403);
    assert_eq!(decide(&hub, &member, "desk_plug", "accept").status, 403);

    // The audit log names who decided what.
    let audit = hub.get("/api/v1/audit?limit=50", Some(&token)).body;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("inbox."))
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        actions,
        [
            ("inbox.ignore".to_owned(), "demo/living_tv".to_owned()),
            ("inbox.accept".into(), "demo/garden_thermometer".into())
        ]
    );

    // Decisions survive a restart: the thermometer is a device again at once, the TV ignored.
    hub.restart();
    let token = hub.post("/api/v1/auth/login", None, json!({"name": "owner", "password": "correct horse battery"}));
    let token = token.body["token"].as_str().unwrap().to_owned();
    wait_entry(&hub, &token, "garden_thermometer", "accepted");
    wait_entry(&hub, &token, "living_tv", "ignored");
    wait_entry(&hub, &token, "desk_plug", "new");
    hub.wait_for(T, || (device(&hub, &token, THERMOMETER).body["availability"]["state"] == "online").then_some(()));

    // Removing the device forgets the decision: found again, it is offered again.
    let removed = hub.request("DELETE", &format!("/api/v1/devices/{THERMOMETER}"), Some(&token), None);
    assert_eq!(removed.status, 204, "{}", removed.text);
    wait_entry(&hub, &token, "garden_thermometer", "new");
    assert_eq!(device(&hub, &token, THERMOMETER).status, 404, "the adapter stopped announcing it");

    // Forgetting an ignored entry offers it again.
    let forgot = hub.request("DELETE", "/api/v1/inbox/demo/living_tv", Some(&token), None);
    assert_eq!(forgot.status, 204, "{}", forgot.text);
    wait_entry(&hub, &token, "living_tv", "new");
    assert_eq!(hub.request("DELETE", "/api/v1/inbox/demo/living_tv_2", Some(&token), None).status, 404);
}

#[test]
fn auto_accept_makes_devices_of_what_an_adapter_can_support() {
    let hub = Hub::start_with_config(&format!("{QUIET_DEMO}[inbox]\nauto_accept = [\"demo\"]\n"), &[]);
    let token = hub.onboard();
    for id in [THERMOMETER, "demo:desk_plug"] {
        hub.wait_for(T, || (device(&hub, &token, id).status == 200).then_some(()));
    }
    wait_entry(&hub, &token, "living_tv", "new");
    let keys: Vec<Value> = inbox(&hub, &token, "").iter().map(|e| e["key"].clone()).collect();
    assert_eq!(keys, [json!("living_tv")], "what it cannot support still waits");
}

#[test]
fn auto_accept_must_name_an_adapter_of_this_hub() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, "[inbox]\nauto_accept = [\"blu\"]\n").unwrap();
    let out = std::process::Command::new(hearth_tests::hearth_bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[inbox] auto_accept names `blu`") && text.contains("demo, zigbee2mqtt"), "{text}");
}
