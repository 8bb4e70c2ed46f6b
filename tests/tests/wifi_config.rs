//! The Wi-Fi adapters' configuration, through the real `hearth` binary: they are off unless
//! enabled (a hub never speaks to the network's devices by surprise), and a device that may never
//! be silent (`offline_after_secs = 0`) is refused with the section and the key named.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use hearth_mdns::testing::in_namespace;
use hearth_tests::{Hub, hearth_bin};

const WIFI: [&str; 3] = ["shelly", "wled", "esphome"];

/// `hearth check-config --config <file>` on `toml`: (succeeded, stdout, stderr).
fn check_config(toml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(hearth_bin()).args(["check-config", "--config"]).arg(&file).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn offline_after_zero_seconds_is_refused_for_each_wifi_adapter() {
    for id in WIFI {
        let (ok, out, err) = check_config(&format!("[adapters.{id}]\nenabled = true\noffline_after_secs = 0\n"));
        assert!(!ok, "[adapters.{id}] offline_after_secs = 0 was accepted: {out}");
        assert!(err.contains(&format!("[adapters.{id}] offline_after_secs must be at least 1")), "{id}: {err}");

        let (ok, out, err) = check_config(&format!("[adapters.{id}]\nenabled = true\noffline_after_secs = 1\n"));
        assert!(ok && out.contains("the configuration is valid"), "{id}: {out}{err}");
    }
}

/// The ids of the adapters the hub runs.
fn running(hub: &Hub, token: &str) -> Vec<String> {
    let adapters = hub.get("/api/v1/adapters", Some(token));
    assert_eq!(adapters.status, 200, "{}", adapters.text);
    adapters.body.as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_wifi_adapters_are_off_unless_enabled() {
    // Inside a network namespace of the test's own, so an adapter that did start would speak
    // mDNS on its loopback only.
    in_namespace("the_wifi_adapters_are_off_unless_enabled", || {
        // No Wi-Fi section at all, and a section that says nothing of `enabled`: both valid, and
        // no Wi-Fi adapter runs.
        let unsaid: String = WIFI.iter().map(|id| format!("[adapters.{id}]\noffline_after_secs = 30\n")).collect();
        for config in ["", unsaid.as_str()] {
            let (ok, out, err) = check_config(config);
            assert!(ok && out.contains("the configuration is valid"), "{out}{err}");
            let hub = Hub::start_with_config(config, &[]);
            let token = hub.onboard();
            let ids = running(&hub, &token);
            for id in WIFI {
                assert!(!ids.iter().any(|i| i == id), "{id} runs without being enabled ({config:?}): {ids:?}");
            }
        }
        // Enabled, each one runs.
        let enabled: String = WIFI.iter().map(|id| format!("[adapters.{id}]\nenabled = true\n")).collect();
        let hub = Hub::start_with_config(&enabled, &[]);
        let token = hub.onboard();
        let ids = running(&hub, &token);
        for id in WIFI {
            assert!(ids.iter().any(|i| i == id), "{id} is enabled but does not run: {ids:?}");
        }
    });
}
