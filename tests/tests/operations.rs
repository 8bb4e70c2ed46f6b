//! The operations surface from a terminal: `hearth status` on a running and a stopped hub, and
//! logs in the journal's and in JSON form.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::process::Command;
use std::time::Duration;

use hearth_tests::{Hub, hearth_bin};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);

/// `hearth status ARGS` against `hub`: (exit code, stdout, stderr).
fn status(hub: &Hub, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(hearth_bin())
        .arg("status")
        .arg("--data-dir")
        .arg(&hub.data_dir)
        .arg("--http")
        .arg(hub.http.to_string())
        .args(args)
        .env_remove("HEARTH_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hearth_status_summarises_a_running_and_a_stopped_hub() {
    let mut hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    hub.wait_for(T, || (hub.get("/api/v1/devices", Some(&token)).body.as_array()?.len() >= 13).then_some(()));
    let (code, out, err) = status(&hub, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(out.starts_with(&format!("Hearth {version} is running at http://{}/ (up 0d 0h ", hub.http)), "{out}");
    assert!(out.contains("Devices: 13 (demo 13); areas 4; automations 0; accounts 1; plugins enabled 0."), "{out}");
    assert!(out.contains("in use of a 512.0 MB budget"), "{out}");
    assert!(out.contains("Last backup: none found."), "{out}");
    assert!(out.contains("Adapters: give a token"), "{out}");

    // With a token, each adapter's state; as JSON for scripts.
    let (code, out, _) = status(&hub, &["--token", &token]);
    assert_eq!(code, 0);
    assert!(out.contains("Adapters:\n") && out.contains("\n  demo running"), "{out}");
    let (_, out, _) = status(&hub, &["--token", "not-a-token"]);
    assert!(out.contains("Adapters: the token was refused."), "{out}");
    let (_, out, _) = status(&hub, &["--json", "--token", &token]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["running"], true);
    assert_eq!(j["database"]["devices"], 13);
    assert_eq!(j["database"]["schema_version"], hearth::store::migrations::LATEST);
    assert!(j["adapters"].as_array().unwrap().iter().any(|a| a["id"] == "demo" && a["state"] == "running"), "{j}");

    // Queue depths are in /metrics.
    let metrics = hub.get("/metrics", Some(&token)).text;
    for name in ["hearth_adapter_queue ", "hearth_core_request_queue ", "hearth_store_queue ", "hearth_history_rows "] {
        assert!(metrics.lines().any(|l| l.starts_with(name)), "{name} in {metrics}");
    }

    // Stopped: it says so, still reads the database, and exits 3 for scripts.
    assert!(hub.stop());
    let (code, out, _) = status(&hub, &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with(&format!("Hearth is NOT running: no hub answers at http://{}/", hub.http)), "{out}");
    assert!(out.contains("Devices: 13 (demo 13)"), "{out}");
}

#[test]
fn logs_carry_the_journal_priority_under_systemd_and_are_json_when_asked() {
    // Under systemd (JOURNAL_STREAM set), the automatic format starts lines with the priority.
    let mut hub = Hub::start_with_config_env("[adapters.demo]\nenabled = true\n", &[("JOURNAL_STREAM", "8:12345")]);
    hub.onboard();
    assert!(hub.stop());
    let log = hub.log();
    let serving = log.lines().find(|l| l.contains("Hearth is serving")).unwrap_or_else(|| panic!("{log}"));
    assert!(serving.starts_with("<6> INFO hearth::runtime: Hearth is serving on http://"), "{serving}");
    assert!(log.lines().filter(|l| !l.trim().is_empty()).all(|l| l.starts_with('<')), "{log}");

    // JSON: every line is one object with the level, the target and the fields.
    let mut hub = Hub::start_with_config_env("[log]\nformat = \"json\"\n[adapters.demo]\nenabled = true\n", &[]);
    hub.onboard();
    assert!(hub.stop());
    let log = hub.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let serving = lines
        .iter()
        .find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("Hearth is serving")))
        .unwrap();
    assert_eq!(serving["level"], "INFO");
    assert_eq!(serving["target"], "hearth::runtime");
    assert!(serving["fields"]["http"].as_str().is_some_and(|h| h.starts_with("127.0.0.1:")), "{serving}");

    // A format that does not exist stops the hub with the key named.
    let (ok, _, err) = {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hearth.toml");
        std::fs::write(&file, "[log]\nformat = \"xml\"\n").unwrap();
        let out = Command::new(hearth_bin()).args(["check-config", "--config"]).arg(&file).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(!ok);
    assert!(
        err.contains("`log.format`: unknown variant `xml`, expected one of `auto`, `text`, `journal`, `json`"),
        "{err}"
    );
}
