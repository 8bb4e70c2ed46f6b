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
    assert_eq!(garden["kind"], "bthome");
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

/// The encrypted examples of the BTHome specification and the reference receiver's tests: a
/// Shelly sensor at 54:48:E6:8F:80:A5 with the bind key below.
const SHELLY: &str = "54:48:E6:8F:80:A5";
const BIND_KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";

#[test]
fn bind_keys_are_entered_through_the_api_sealed_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("encrypted.jsonl");
    let line = |at: f64, frame: &str| {
        format!(r#"{{"at": {at}, "address": "{SHELLY}", "rssi": -55, "service_data": {{"fcd2": "{frame}"}}}}"#)
    };
    let recording = [
        line(0.0, "41e445f3c9962b332211006c7c4519"),
        line(6.0, "413e932cc7175f34221100553876af"),
        line(12.0, "41ba0db07aeef6ffffffff21fd4600"),
    ]
    .join("\n");
    std::fs::write(&file, recording).unwrap();
    let config =
        format!("[adapters.ble]\nenabled = true\nreplay = \"{}\"\n[adapters.demo]\nenabled = true\n", file.display());
    let hub = Hub::start_with_config(&config, &[]);
    let token = hub.onboard();

    // Found although it cannot be read yet; accepted, it has no readings.
    hub.wait_for(T, || inbox(&hub, &token).into_iter().find(|e| e["key"] == SHELLY));
    let accepted = hub.post(&format!("/api/v1/inbox/ble/{SHELLY}/accept"), Some(&token), json!({}));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let id = format!("ble:{SHELLY}");
    let d = hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token));
        (d.status == 200).then_some(d.body)
    });
    assert!(d["state"]["temperature"].is_null(), "nothing is read without the key: {d}");

    // Bad input is refused with what to do.
    let secrets = |path: &str| format!("/api/v1/adapters/ble/secrets{path}");
    let put = |name: &str, value: Value| hub.request("PUT", &secrets(&format!("/{name}")), Some(&token), Some(&value));
    let bad = put(SHELLY, json!({"value": "1234"}));
    assert_eq!((bad.status, bad.body["error"]["code"].clone()), (400, json!("invalid_secret")), "{}", bad.text);
    assert!(bad.text.contains("32 hex digits"), "{}", bad.text);
    let bad = put("54:48:e6:8f:80:a5", json!({"value": BIND_KEY}));
    assert!(bad.status == 400 && bad.text.contains("capitals"), "{}", bad.text);
    assert_eq!(put(SHELLY, json!({"key": BIND_KEY})).status, 400);
    let none = hub.request(
        "PUT",
        &format!("/api/v1/adapters/demo/secrets/{SHELLY}"),
        Some(&token),
        Some(&json!({"value": BIND_KEY})),
    );
    assert_eq!(none.status, 404, "{}", none.text);

    // Set: the device is read from its next advertisement on.
    let set = put(SHELLY, json!({"value": BIND_KEY}));
    assert_eq!(set.status, 204, "{}", set.text);
    hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        d["state"]["temperature"]["value"].is_number().then_some(())
    });
    let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
    assert_eq!(d["state"]["humidity"]["value"], 50.55);

    // Listed by name, never by value; not anywhere else either.
    let listed = hub.get(&secrets(""), Some(&token));
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body["secrets"][0]["name"], SHELLY);
    assert!(listed.body["secrets"][0]["updated_at"].is_string());
    assert!(listed.body["values"].as_str().unwrap().contains("32 hex digits"));
    let audit = hub.get("/api/v1/audit?limit=50", Some(&token));
    assert!(audit.text.contains(&format!("ble/{SHELLY}")) && audit.text.contains("secret.set"), "{}", audit.text);
    for text in [listed.text.as_str(), audit.text.as_str(), hub.log().as_str()] {
        assert!(!text.contains(BIND_KEY), "the key leaked");
    }
    let db = std::fs::read(hub.db_path()).unwrap();
    let wal = std::fs::read(hub.db_path().with_extension("db-wal")).unwrap_or_default();
    let raw: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&BIND_KEY[2 * i..2 * i + 2], 16).unwrap()).collect();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(BIND_KEY.len()).any(|w| w == BIND_KEY.as_bytes()), "stored in the clear");
        assert!(!bytes.windows(16).any(|w| w == raw.as_slice()), "stored in the clear");
    }

    // Members may not; removing works once.
    let member = hub.member(&token, "kid");
    assert_eq!(hub.get(&secrets(""), Some(&member)).status, 403);
    assert_eq!(hub.request("DELETE", &secrets(&format!("/{SHELLY}")), Some(&token), None).status, 204);
    assert_eq!(hub.request("DELETE", &secrets(&format!("/{SHELLY}")), Some(&token), None).status, 404);
}

#[test]
fn through_bluez_an_advertised_sensor_is_found_and_read() {
    let bluez = hearth_tests::bluez::MockBluez::start();
    bluez.add_device("A4:C1:38:00:00:07", "Balcony");
    let (key, value) = bluez.env();
    let hub = Hub::start_with_config_env("[adapters.ble]\nenabled = true\n", &[(key, &value)]);
    let token = hub.onboard();
    hub.wait_for(T, || (ble_status(&hub, &token)["status"]["state"] == "running").then_some(()));

    // BlueZ reports the service data; the BTHome decoder reads it; the inbox offers it.
    bluez.advertise("A4:C1:38:00:00:07", 0xFCD2, "4000010164 02ca09 03bf13".replace(' ', "").as_str(), -58);
    let entry = hub.wait_for(T, || inbox(&hub, &token).into_iter().find(|e| e["key"] == "A4:C1:38:00:00:07"));
    assert_eq!(entry["name"], "Balcony");
    assert_eq!(entry["manufacturer"], "BTHome");
    let accepted = hub.post("/api/v1/inbox/ble/A4:C1:38:00:00:07/accept", Some(&token), json!({}));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    let d = hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices/ble:A4:C1:38:00:00:07", Some(&token));
        (d.status == 200 && d.body["state"]["temperature"]["value"] == 25.06).then_some(d.body)
    });
    // The signal strength is the one BlueZ holds for the device (the mock applies the new RSSI
    // after the service data).
    let rssi = d["state"]["signal_strength"]["value"].as_f64().unwrap();
    assert!((-100.0..0.0).contains(&rssi), "{rssi}");

    // A new packet updates it live.
    bluez.advertise("A4:C1:38:00:00:07", 0xFCD2, "40000201640292090 3bf13".replace(' ', "").as_str(), -57);
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices/ble:A4:C1:38:00:00:07", Some(&token)).body;
        (d["state"]["temperature"]["value"] == 24.5).then_some(())
    });
}

#[test]
fn a_kind_named_in_auto_accept_becomes_a_device_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("advertisements.jsonl");
    std::fs::write(&file, recording()).unwrap();
    let config = format!(
        "[inbox]\nauto_accept = [\"ble:bthome\"]\n[adapters.ble]\nenabled = true\nreplay = \"{}\"\nreplay_speed = 0\n",
        file.display()
    );
    let hub = Hub::start_with_config(&config, &[]);
    let token = hub.onboard();
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices/ble:A4:C1:38:00:00:01", Some(&token));
        (d.status == 200 && d.body["state"]["temperature"]["value"].is_number()).then_some(())
    });
    // The ATC thermometer is another kind: it waits.
    let atc = hub.wait_for(T, || inbox(&hub, &token).into_iter().find(|e| e["key"] == "A4:C1:38:0A:1B:2C"));
    assert_eq!((atc["kind"].clone(), atc["status"].clone()), (json!("atc"), json!("new")));
}
