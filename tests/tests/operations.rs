//! The operations surface from a terminal: `hearth status` on a running and a stopped hub, the
//! backups it names and what they take, MQTT passwords sealed instead of written in the file,
//! and logs in the journal's and in JSON form.
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
fn status_names_only_real_backups_and_every_figure_counts_what_backups_take() {
    let hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    let dir = hub.data_dir.join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Files named like backups that are not: a note, and an empty file.
    std::fs::write(dir.join("notes.hearth-backup"), b"buy more batteries").unwrap();
    std::fs::write(dir.join("empty.hearth-backup"), b"").unwrap();
    let (_, out, _) = status(&hub, &[]);
    assert!(out.contains("Last backup: none found."), "{out}");

    // A real one, then a file of junk with a newer time, and a copy made before an upgrade.
    let real = dir.join("home.hearth-backup");
    let (ok, out, err) = hub.cli(&["backup", real.to_str().unwrap()], None);
    assert!(ok, "{out}{err}");
    let junk = dir.join("zz-newest.hearth-backup");
    std::fs::write(&junk, vec![0u8; 4096]).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&junk).unwrap().set_modified(later).unwrap();
    std::fs::write(dir.join("hearth-2020-01-01T00-00-00-000Z-before-v9.db"), vec![1u8; 10_000]).unwrap();
    let expected: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(expected > 20_000, "{expected}");

    let (_, out, _) = status(&hub, &[]);
    assert!(out.contains(&format!("Last backup: {} (", real.display())), "{out}");
    assert!(out.contains(&format!("Backups: 5 files in {}, ", dir.display())), "{out}");
    let (_, out, _) = status(&hub, &["--json"]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["last_backup"]["file"], real.to_str().unwrap(), "{j}");
    assert_eq!(j["last_backup"]["encrypted"], false, "{j}");
    assert_eq!(j["backups"]["bytes"], expected, "{j}");
    assert_eq!(j["backups"]["files"], 5, "{j}");

    // The API and /metrics count them too, beside the database (whose budget they are not in).
    let storage = hub.get("/api/v1/storage", Some(&token));
    assert_eq!(storage.status, 200, "{}", storage.text);
    assert_eq!(storage.body["backups"]["bytes"], expected, "{}", storage.text);
    assert_eq!(storage.body["backups"]["dir"], dir.to_str().unwrap(), "{}", storage.text);
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.lines().any(|l| l == format!("hearth_backup_bytes {expected}")), "{metrics}");
}

/// Whether the broker at `addr` lets a client with `credentials` in (its refusal otherwise).
fn mqtt_connects(addr: std::net::SocketAddr, credentials: Option<(&str, &str)>) -> Result<(), String> {
    let mut opts = rumqttc::MqttOptions::new("operations-test", addr.ip().to_string(), addr.port());
    if let Some((user, password)) = credentials {
        opts.set_credentials(user, password);
    }
    let (_client, mut connection) = rumqttc::Client::new(opts, 10);
    for event in connection.iter().take(5) {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)))
                if a.code == rumqttc::ConnectReturnCode::Success =>
            {
                return Ok(());
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => return Err(format!("{:?}", a.code)),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no answer".into())
}

#[test]
fn mqtt_passwords_are_sealed_with_the_install_key_instead_of_written_in_the_file() {
    const PASSWORD: &str = "zigbee's own long password";
    let mut hub =
        Hub::start_with_config(&format!("[[mqtt.users]]\nusername = \"z2m\"\npassword = \"{PASSWORD}\"\n"), &[]);
    let addr = hub.mqtt.unwrap();
    // In the file in clear: it works, and the hub says to seal it.
    assert_eq!(mqtt_connects(addr, Some(("z2m", PASSWORD))), Ok(()));
    let log = hub.log();
    assert!(
        log.contains("the [[mqtt.users]] password of `z2m` is written in the configuration file in clear"),
        "{log}"
    );
    assert!(hub.stop());

    // Out of the file and sealed nowhere: the hub does not start, and says what to run.
    let file = std::path::PathBuf::from(&hub.args[1]);
    let config = file.to_str().unwrap();
    let text = std::fs::read_to_string(&file).unwrap().replace(&format!("password = \"{PASSWORD}\"\n"), "");
    assert!(!text.contains(PASSWORD) && text.contains("username = \"z2m\""), "{text}");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(hearth_bin())
        .args(["run", "--config", config, "--http", "127.0.0.1:0", "--mqtt", &addr.to_string(), "--data-dir"])
        .arg(&hub.data_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the [[mqtt.users]] account `z2m` has no password"), "{err}");
    assert!(err.contains("run `hearth secret set mqtt users.z2m.password`"), "{err}");

    // Sealed from the command line: names and lengths are checked, and the broker takes it.
    let (ok, _, err) = hub.cli(&["secret", "set", "mqtt", "users.zigbee.password", "--config", config], Some("x\n"));
    assert!(!ok);
    assert!(
        err.contains(
            "the MQTT broker keeps no secret `users.zigbee.password`; it keeps: users.z2m.password, external.password"
        ),
        "{err}"
    );
    let (ok, _, err) = hub.cli(&["secret", "set", "mqtt", "users.z2m.password", "--config", config], Some("short\n"));
    assert!(!ok && err.contains("too short"), "{err}");
    let (ok, out, err) =
        hub.cli(&["secret", "set", "mqtt", "users.z2m.password", "--config", config], Some(&format!("{PASSWORD}\n")));
    assert!(ok, "{out}{err}");
    assert!(out.contains("Sealed `users.z2m.password` of mqtt"), "{out}");
    let earlier = hub.log().len();
    hub.spawn();
    assert_eq!(mqtt_connects(addr, Some(("z2m", PASSWORD))), Ok(()));
    assert!(mqtt_connects(addr, Some(("z2m", "not the password at all"))).is_err());
    assert!(mqtt_connects(addr, None).is_err());
    assert!(!hub.log()[earlier..].contains("in clear"), "{}", hub.log());
    assert!(hub.stop());
    hub.assert_nowhere_in_clear(PASSWORD);
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
