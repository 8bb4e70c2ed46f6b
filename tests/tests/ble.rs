//! The BLE adapter end to end, against the real binary: on a machine without Bluetooth the hub
//! starts and serves, and the adapter says why it is unavailable; with a recording of
//! advertisements replayed, sensors appear in the discovery inbox, are accepted, update their
//! state, and go offline after their timeout. `hearth ble replay` prints what a recording says.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth_tests::{Hub, hearth_bin};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

/// A BTHome v2 sensor (unencrypted): packet 1 then 2; battery 100 %, 25.06 °C then 24.5 °C,
/// humidity 50.55 %. An ATC thermometer in PVVX format. A phone (nothing we read). A BTHome frame
/// cut short (rejected, once).
fn recording() -> String {
    [
        r#"{"at": 0.0, "address": "A4:C1:38:00:00:01", "rssi": -61, "name": "Garden", "service_data": {"fcd2": "4000010164 02ca09 03bf13"}}"#,
        r#"{"at": 0.1, "address": "A4:C1:38:00:00:01", "rssi": -61, "name": "Garden", "service_data": {"fcd2": "4000010164 02ca09 03bf13"}}"#,
        r#"{"at": 0.2, "address": "A4:C1:38:0A:1B:2C", "rssi": -70, "service_data": {"181a": "2c1b0a38c1a4 fa08 1414 a60b 55 2a 04"}}"#,
        r#"{"at": 0.3, "address": "11:22:33:44:55:66", "rssi": -50, "name": "Phone", "manufacturer_data": {"0006": "0109200a"}}"#,
        r#"{"at": 0.4, "address": "A4:C1:38:00:00:09", "service_data": {"fcd2": "4002"}}"#,
        r#"{"at": 8.0, "address": "A4:C1:38:00:00:01", "rssi": -60, "name": "Garden", "service_data": {"fcd2": "4000020164 029209 03bf13"}}"#,
    ]
    .join("\n")
        + "\n"
}

fn inbox(hub: &Hub, token: &str) -> Vec<Value> {
    let a = hub.get("/api/v1/inbox?all=true", Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["entries"].as_array().unwrap().clone()
}

fn ble_status(hub: &Hub, token: &str) -> Value {
    let list = hub.get("/api/v1/adapters", Some(token)).body;
    list.as_array().unwrap().iter().find(|a| a["id"] == "ble").cloned().unwrap_or(Value::Null)
}

#[test]
fn without_bluetooth_the_hub_runs_and_the_adapter_says_why() {
    let hub = Hub::start_with_config("[adapters.ble]\nenabled = true\n", &[]);
    let token = hub.onboard();
    let status = hub.wait_for(T, || {
        let s = ble_status(&hub, &token);
        (s["status"]["state"] == "unavailable").then_some(s)
    });
    let reason = status["status"]["reason"].as_str().unwrap();
    assert!(reason.contains("Bluetooth"), "{reason}");
    assert_eq!(status["status"]["code"], "no_bluetooth");
    assert_eq!(hub.get("/healthz", None).status, 200, "the hub serves on");
    assert_eq!(hub.get("/api/v1/devices", Some(&token)).status, 200);
}

#[test]
fn replayed_sensors_are_found_accepted_updated_and_go_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("advertisements.jsonl");
    std::fs::write(&file, recording()).unwrap();
    let config = format!(
        "[adapters.ble]\nenabled = true\nreplay = \"{}\"\nreplay_speed = 1.0\noffline_after_secs = 3\n",
        file.display()
    );
    let hub = Hub::start_with_config(&config, &[]);
    let token = hub.onboard();

    // Both sensors wait in the inbox; the phone and the broken frame do not.
    let entries = hub.wait_for(T, || {
        let e = inbox(&hub, &token);
        (e.len() == 2).then_some(e)
    });
    let garden = entries.iter().find(|e| e["key"] == "A4:C1:38:00:00:01").unwrap();
    assert_eq!(garden["device"], "ble:A4:C1:38:00:00:01");
    assert_eq!(garden["name"], "Garden");
    assert_eq!(garden["manufacturer"], "BTHome");
    assert_eq!(garden["transport"], "ble");
    assert_eq!(garden["address"], "A4:C1:38:00:00:01");
    assert_eq!(garden["status"], "new");
    let atc = entries.iter().find(|e| e["key"] == "A4:C1:38:0A:1B:2C").unwrap();
    assert_eq!(atc["manufacturer"], "ATC/PVVX");
    // The broken frame is counted, once.
    hub.wait_for(T, || {
        let metrics = hub.get("/metrics", Some(&token)).text;
        metrics.lines().any(|l| l == "hearth_adapter_input_rejected_total 1").then_some(())
    });

    // Accepted: a device with what it last said, in canonical units.
    let accepted = hub.post("/api/v1/inbox/ble/A4:C1:38:00:00:01/accept", Some(&token), json!({}));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let id = "ble:A4:C1:38:00:00:01";
    let device = hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token));
        (d.status == 200 && d.body["state"]["humidity"]["value"].is_number()).then_some(d.body)
    });
    assert_eq!(device["manufacturer"], "BTHome");
    assert_eq!(device["state"]["battery"]["value"], 100.0);
    assert_eq!(device["state"]["humidity"]["value"], 50.55);
    let rssi = device["state"]["signal_strength"]["value"].as_f64().unwrap();
    assert!(rssi == -61.0 || rssi == -60.0, "{rssi}");
    let features: Vec<&str> =
        device["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
    for key in ["battery", "humidity", "signal_strength", "temperature"] {
        assert!(features.contains(&key), "{features:?}");
    }

    // The next advertisement (8 s into the recording) updates it.
    hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        (d["state"]["temperature"]["value"] == 24.5).then_some(())
    });

    // Then silence: offline after 3 s, saying why.
    let offline = hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        (d["availability"]["state"] == "offline").then_some(d)
    });
    assert_eq!(offline["availability"]["reason"], "no advertisement for 3 seconds");
    assert_eq!(offline["availability"]["code"], "no_advertisement");
    assert_eq!(ble_status(&hub, &token)["status"]["code"], "replay_finished");
}

#[test]
fn hearth_ble_replay_prints_what_each_advertisement_says() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("advertisements.jsonl");
    std::fs::write(&file, recording()).unwrap();
    let out = std::process::Command::new(hearth_bin()).args(["ble", "replay"]).arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].starts_with("0s A4:C1:38:00:00:01 BTHome"), "{}", lines[0]);
    assert!(lines[0].contains("temperature 25.06 °C") && lines[0].contains("humidity 50.55 %"), "{}", lines[0]);
    assert!(lines[3].ends_with("not a format this hub reads"), "{}", lines[3]);
    assert!(lines[4].contains("cannot be read"), "{}", lines[4]);

    std::fs::write(&file, "{\"address\": \"nope\"}\n").unwrap();
    let out = std::process::Command::new(hearth_bin()).args(["ble", "replay"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("line 1") && err.contains("Bluetooth address"), "{err}");
}
