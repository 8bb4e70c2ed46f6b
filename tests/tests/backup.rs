//! Backups end to end, with the real binary: `hearth backup` while the hub runs, `hearth
//! restore` into a fresh data directory and a hub started there that serves the same home (its
//! devices, automations, history, accounts and a sealed secret that still opens); the API's
//! download; refusals of damaged, foreign and wrongly locked archives that leave the target as
//! it was; no restore under a running hub; scheduled backups and their retention; restores,
//! by `hearth restore` and by the hub itself at start, in the restored hub's audit log.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hearth_tests::{Hub, hearth_bin};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(30);
const OWNER_PASSWORD: &str = "correct horse battery";
const KID_PASSWORD: &str = "kid's own long password";

/// Runs `hearth <args>` with `stdin`; (succeeded, stdout, stderr).
fn hearth(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(hearth_bin());
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every file under `dir` (relative path) with the SHA-256 of its bytes.
fn listing(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let rel = e.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push((format!("{rel}/"), String::new()));
                walk(root, &e.path(), out);
            } else {
                let sum: String =
                    Sha256::digest(std::fs::read(e.path()).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
                out.push((rel, sum));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Where entry `name`'s data starts in a tar file, and its size.
fn tar_entry(bytes: &[u8], name: &str) -> (usize, usize) {
    let mut at = 0;
    loop {
        let header = &bytes[at..at + 512];
        let end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let entry = std::str::from_utf8(&header[..end]).unwrap();
        let size_text = std::str::from_utf8(&header[124..136]).unwrap().trim_matches(|c: char| c == '\0' || c == ' ');
        let size = usize::from_str_radix(size_text, 8).unwrap();
        if entry == name {
            return (at + 512, size);
        }
        assert!(!entry.is_empty(), "no {name} in the archive");
        at += 512 + size.div_ceil(512) * 512;
    }
}

/// The manifest of a plain archive.
fn manifest(archive: &Path) -> Value {
    let bytes = std::fs::read(archive).unwrap();
    let (at, size) = tar_entry(&bytes, "manifest.json");
    serde_json::from_slice(&bytes[at..at + size]).unwrap()
}

/// The newest entry of `action` in the hub's audit log.
fn audited(hub: &Hub, token: &str, action: &str) -> Option<Value> {
    let audit = hub.get("/api/v1/audit?limit=50", Some(token));
    assert_eq!(audit.status, 200, "{}", audit.text);
    audit.body.as_array().unwrap().iter().find(|e| e["action"] == action).cloned()
}

fn login(hub: &Hub, name: &str, password: &str) -> String {
    let a = hub.post("/api/v1/auth/login", None, json!({"name": name, "password": password}));
    assert_eq!(a.status, 200, "{name}: {}", a.text);
    a.body["token"].as_str().unwrap().to_owned()
}

/// What the API shows of a home, to compare before a backup and after its restore.
#[derive(Debug, PartialEq)]
struct Seen {
    devices: BTreeSet<(String, String, Option<String>)>,
    automations: BTreeSet<String>,
    users: BTreeSet<(String, String)>,
    secrets: Vec<String>,
}

fn seen(hub: &Hub, token: &str) -> Seen {
    let devices = hub.get("/api/v1/devices", Some(token)).body;
    let automations = hub.get("/api/v1/automations", Some(token)).body;
    let users = hub.get("/api/v1/users", Some(token)).body;
    let secrets = hub.get("/api/v1/adapters/ble/secrets", Some(token)).body;
    Seen {
        devices: devices
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["name"].as_str().unwrap().to_owned(),
                    d["area"].as_str().map(str::to_owned),
                )
            })
            .collect(),
        automations: automations
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{} version {}", a["automation"], a["version"]))
            .collect(),
        users: users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["name"].as_str().unwrap().to_owned(), u["role"].as_str().unwrap().to_owned()))
            .collect(),
        secrets: secrets["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect(),
    }
}

fn history(hub: &Hub, token: &str, device: &str) -> Vec<Value> {
    let a = hub.get(&format!("/api/v1/devices/{device}/history?limit=10000"), Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["entries"].as_array().unwrap().clone()
}

/// The encrypted examples of the BTHome specification (a Shelly sensor) and its bind key.
const SHELLY: &str = "54:48:E6:8F:80:A5";
const BIND_KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";

/// A recording of the sensor's three encrypted frames, over and over for two minutes.
fn recording(dir: &Path) -> PathBuf {
    let frames = ["41e445f3c9962b332211006c7c4519", "413e932cc7175f34221100553876af", "41ba0db07aeef6ffffffff21fd4600"];
    let lines: Vec<String> = (0..60)
        .map(|i| {
            format!(
                r#"{{"at": {}, "address": "{SHELLY}", "rssi": -55, "service_data": {{"fcd2": "{}"}}}}"#,
                f64::from(i) * 2.0,
                frames[i as usize % 3]
            )
        })
        .collect();
    let file = dir.join("shelly.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    file
}

/// A temperature reading of the sensor reported after `after` (an RFC 3339 time).
fn read_after(hub: &Hub, token: &str, after: &str) {
    hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/ble:{SHELLY}"), Some(token)).body;
        let at = d["state"]["temperature"]["reported_at"].as_str().unwrap_or("").to_owned();
        (d["state"]["temperature"]["value"].is_number() && at.as_str() > after).then_some(())
    });
}

/// Now, as the hub writes times (it runs on this machine's clock).
fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    hearth_sdk::Timestamp::from_millis(ms).to_string()
}

#[test]
fn a_backup_taken_while_the_hub_runs_restores_the_same_home_into_a_fresh_directory() {
    let work = tempfile::tempdir().unwrap();
    let config = format!(
        "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n[adapters.ble]\nenabled = true\nreplay = \"{}\"\n",
        s(&recording(work.path()))
    );
    let mut hub = Hub::start_with_config(&config, &[]);
    let config_file = PathBuf::from(&hub.args[1]);
    let owner = hub.onboard();

    // A sealed secret that the sensor's readings need.
    hub.wait_for(T, || {
        let a = hub.get("/api/v1/inbox?all=true", Some(&owner)).body;
        a["entries"].as_array().unwrap().iter().any(|e| e["key"] == SHELLY).then_some(())
    });
    assert_eq!(hub.post(&format!("/api/v1/inbox/ble/{SHELLY}/accept"), Some(&owner), json!({})).status, 200);
    let put = hub.request(
        "PUT",
        &format!("/api/v1/adapters/ble/secrets/{SHELLY}"),
        Some(&owner),
        Some(&json!({"value": BIND_KEY})),
    );
    assert_eq!(put.status, 204, "{}", put.text);
    read_after(&hub, &owner, "");

    // A member added on the command line, an automation, a renamed device in another area,
    // and history from state changes through the API.
    let (ok, _, err) =
        hub.cli(&["user", "add", "kid", "--member", "--password-stdin"], Some(&format!("{KID_PASSWORD}\n")));
    assert!(ok, "{err}");
    let made = hub.post(
        "/api/v1/automations",
        Some(&owner),
        json!({"id": "hall_button", "name": "Hall button toggles the light",
               "triggers": [{"event": {"devices": ["demo:hall_button"], "events": ["single"]}}],
               "actions": [{"set": {"devices": ["demo:kitchen_light"], "toggle": ["state"]}}]}),
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let renamed = hub.request(
        "PATCH",
        "/api/v1/devices/demo:living_lamp",
        Some(&owner),
        Some(&json!({"name": "Reading lamp", "area": "kitchen"})),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    for (on, brightness) in [(true, 30.0), (false, 30.0), (true, 75.0)] {
        let a = hub.post(
            "/api/v1/devices/demo:living_lamp/commands",
            Some(&owner),
            json!({"set": {"state": on, "brightness": brightness}}),
        );
        assert_eq!(a.status, 202, "{}", a.text);
        hub.wait_for(T, || {
            let d = hub.get("/api/v1/devices/demo:living_lamp", Some(&owner)).body;
            (d["state"]["state"]["value"] == json!(on)
                && d["state"]["brightness"]["value"].as_f64() == Some(brightness))
            .then_some(())
        });
    }
    let before = seen(&hub, &owner);
    assert_eq!(before.users.len(), 2);
    assert!(before.devices.contains(&("demo:living_lamp".into(), "Reading lamp".into(), Some("kitchen".into()))));
    assert_eq!(before.secrets, [SHELLY]);
    let lamp_history = history(&hub, &owner, "demo:living_lamp");
    assert!(lamp_history.len() >= 6, "{lamp_history:?}");

    // The backup, while the hub runs; and the API's download.
    let archive = work.path().join("home.hearth-backup");
    let (ok, out, err) = hub.cli(&["backup", s(&archive), "--config", s(&config_file)], None);
    assert!(ok, "{err}");
    assert!(out.starts_with(&format!("Wrote {} (", archive.display())), "{out}");
    for part in ["hearth.db", "hearth.toml", "secrets.key", "2 users", "1 automation", "history rows", "archive sha256"]
    {
        assert!(out.contains(part), "{part} in {out}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let leftovers: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains("snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let audit = hub.get("/api/v1/audit?limit=20", Some(&owner)).body;
    let entry =
        audit.as_array().unwrap().iter().find(|e| e["action"] == "backup").expect("the backup is audited").clone();
    assert_eq!((entry["actor"].clone(), entry["target"].as_str()), (Value::Null, archive.to_str()), "{entry}");
    let download = hub.get("/api/v1/backup", Some(&owner));
    assert_eq!(download.status, 200, "{}", download.text);
    let disposition = download.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"hearth-backup-20") && disposition.ends_with(".hearth-backup\""),
        "{disposition}"
    );
    let from_api = work.path().join("from-api.hearth-backup");
    std::fs::write(&from_api, &download.bytes).unwrap();
    assert!(hub.stop());

    // Restored into a directory that does not exist yet, with the configuration written.
    let fresh = work.path().join("elsewhere").join("data");
    let fresh_config = work.path().join("elsewhere").join("etc").join("hearth.toml");
    let (ok, out, err) = hearth(&["restore", s(&archive), "--data-dir", s(&fresh), "--config", s(&fresh_config)], None);
    assert!(ok, "{err}");
    assert!(out.contains("is a sound Hearth backup") && out.contains("passes SQLite's integrity check"), "{out}");
    assert!(out.contains(&format!("wrote the backup's configuration to {}", fresh_config.display())), "{out}");
    assert_eq!(std::fs::read(&fresh_config).unwrap(), std::fs::read(&config_file).unwrap());
    assert_eq!(
        std::fs::read(fresh.join("secrets.key")).unwrap(),
        std::fs::read(hub.data_dir.join("secrets.key")).unwrap()
    );

    // A hub there serves the same home.
    hub.data_dir = fresh.clone();
    hub.args = vec!["--config".into(), s(&fresh_config).to_owned()];
    hub.log.lock().unwrap().clear();
    let started = now_rfc3339();
    hub.spawn();
    let owner = login(&hub, "owner", OWNER_PASSWORD);
    let kid = login(&hub, "kid", KID_PASSWORD);
    assert_eq!(hub.get("/api/v1/auth/me", Some(&kid)).body["role"], "member");
    assert_eq!(seen(&hub, &owner), before);
    // Its audit log says it was restored, from which archive, made when and where.
    let made = manifest(&archive);
    let entry = audited(&hub, &owner, "backup.restore").expect("the restore is in the restored hub's audit log");
    assert_eq!(entry["target"], "home.hearth-backup", "{entry}");
    assert_eq!(entry["actor"], Value::Null, "{entry}");
    assert_eq!(
        entry["say"],
        json!({"code": "audit_from_command_line",
               "note": {"code": "audit_restored", "made": made["created_at"], "hostname": made["hostname"]}}),
        "{entry}"
    );
    let detail = entry["detail"].as_str().unwrap();
    assert!(
        detail.contains(made["created_at"].as_str().unwrap()) && detail.contains("from the command line"),
        "{entry}"
    );
    let after = history(&hub, &owner, "demo:living_lamp");
    for e in &lamp_history {
        assert!(after.contains(e), "{e} is missing after the restore");
    }
    let automation = hub.get("/api/v1/automations/hall_button", Some(&owner));
    assert_eq!(automation.status, 200, "{}", automation.text);
    // The sealed bind key opens with the restored key file: the sensor is read again.
    read_after(&hub, &owner, &started);
    assert!(!hub.log().contains("does not open with this hub's key file"), "{}", hub.log());

    // The API's archive restores too.
    assert!(hub.stop());
    let third = work.path().join("third");
    let (ok, out, err) = hearth(&["restore", s(&from_api), "--data-dir", s(&third)], None);
    assert!(ok, "{err}");
    assert!(out.contains("the backup's configuration was not written: it would go to"), "{out}");
    hub.data_dir = third;
    hub.args = vec!["--config".into(), s(&fresh_config).to_owned()];
    hub.spawn();
    let owner = login(&hub, "owner", OWNER_PASSWORD);
    login(&hub, "kid", KID_PASSWORD);
    assert_eq!(seen(&hub, &owner), before);
}

#[test]
fn the_hubs_own_restore_of_a_damaged_database_is_in_the_audit_log() {
    let mut hub = Hub::start(&["--demo"]);
    let owner = hub.onboard();
    let backups = hub.data_dir.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let name = "hearth-2026-01-01T03-00-00-000Z.hearth-backup";
    let (ok, out, err) = hub.cli(&["backup", s(&backups.join(name))], None);
    assert!(ok, "{out}{err}");
    let made = manifest(&backups.join(name));
    assert!(audited(&hub, &owner, "backup.restore").is_none());
    assert!(hub.stop());

    std::fs::write(hub.db_path(), vec![b'x'; 8192]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(hub.data_dir.join(format!("hearth.db{suffix}")));
    }
    hub.spawn();
    assert!(hub.log().contains("starts on the last backup"), "{}", hub.log());
    // The session came back with the backup; the log says the hub restored it, and why.
    let entry = audited(&hub, &owner, "backup.restore").expect("the restore at start is audited");
    assert_eq!(entry["target"], name, "{entry}");
    assert_eq!(entry["actor"], Value::Null, "{entry}");
    assert_eq!(
        entry["say"],
        json!({"code": "audit_restored_at_start", "made": made["created_at"], "hostname": made["hostname"]}),
        "{entry}"
    );
    assert!(entry["detail"].as_str().unwrap().contains("the database was damaged"), "{entry}");
}

#[test]
fn damaged_foreign_and_wrongly_locked_archives_are_refused_and_leave_the_target_as_it_was() {
    let work = tempfile::tempdir().unwrap();
    let mut hub = Hub::start(&["--demo"]);
    hub.onboard();
    let plain = work.path().join("plain.hearth-backup");
    let sealed = work.path().join("sealed.hearth-backup");
    let passphrase = work.path().join("passphrase");
    std::fs::write(&passphrase, "a long backup passphrase\n").unwrap();
    assert!(hub.cli(&["backup", s(&plain)], None).0);
    let (ok, out, err) = hub.cli(&["backup", s(&sealed), "--passphrase-file", s(&passphrase)], None);
    assert!(ok && out.contains("encrypted with the passphrase"), "{out}{err}");
    assert!(hub.stop());
    let target = hub.data_dir.clone();
    // SQLite's shared-memory index (`-shm`) is rewritten by anyone who reads the database (the
    // restore reads what the database there holds): its bytes are not compared, its presence is.
    let listing = |dir: &Path| -> Vec<(String, String)> {
        listing(dir).into_iter().map(|(n, h)| if n.ends_with("-shm") { (n, String::new()) } else { (n, h) }).collect()
    };
    let before = listing(&target);

    let bytes = std::fs::read(&plain).unwrap();
    let (db_at, db_len) = tar_entry(&bytes, "hearth.db");
    let write = |name: &str, b: &[u8]| {
        let p = work.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let truncated = write("truncated.hearth-backup", &bytes[..bytes.len() / 2]);
    let mut flipped = bytes.clone();
    flipped[db_at + db_len / 2] ^= 0x01;
    let flipped = write("flipped.hearth-backup", &flipped);
    let random: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let random = write("random.bin", &random);
    let sealed_cut = write("sealed-cut.hearth-backup", &std::fs::read(&sealed).unwrap()[..50_000]);

    let dd = s(&target).to_owned();
    for (args, stdin, message) in [
        (vec!["restore", s(&truncated), "--force"], None, "the archive is truncated: it has"),
        (
            vec!["restore", s(&flipped), "--force"],
            None,
            "hearth.db's checksum does not match the manifest: the archive is damaged or was changed",
        ),
        (vec!["restore", s(&random), "--force"], None, &*format!("{} is not a Hearth backup", random.display())),
        (
            vec!["restore", s(&sealed), "--force", "--passphrase-stdin"],
            Some("not the passphrase\n"),
            "the passphrase is wrong, or the archive was changed",
        ),
        (vec!["restore", s(&sealed), "--force"], None, "is encrypted: give its passphrase with --passphrase-file"),
        (
            vec!["restore", s(&sealed_cut), "--force", "--passphrase-file", s(&passphrase)],
            None,
            "the archive is truncated",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--data-dir", dd.as_str()]);
        let (ok, out, err) = hearth(&all, stdin);
        assert!(!ok, "{args:?} was accepted: {out}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
        assert_eq!(listing(&target), before, "{args:?} changed the target");
    }

    // A newer schema: refused with what to do.
    let newer_dir = work.path().join("newer");
    std::fs::create_dir_all(&newer_dir).unwrap();
    for f in ["hearth.db", "hearth.db-wal"] {
        if target.join(f).exists() {
            std::fs::copy(target.join(f), newer_dir.join(f)).unwrap();
        }
    }
    let conn = rusqlite::Connection::open(newer_dir.join("hearth.db")).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {};", hearth::store::migrations::LATEST + 1)).unwrap();
    drop(conn);
    let newer = work.path().join("newer.hearth-backup");
    assert!(hearth(&["backup", s(&newer), "--data-dir", s(&newer_dir)], None).0);
    let (ok, _, err) = hearth(&["restore", s(&newer), "--force", "--data-dir", &dd], None);
    assert!(!ok && err.contains("newer than this hearth knows") && err.contains("then restore"), "{err}");
    assert_eq!(listing(&target), before);

    // Over a database with data, without --force: refused, saying where it would go.
    let (ok, _, err) = hearth(&["restore", s(&plain), "--data-dir", &dd], None);
    assert!(!ok && err.contains("already holds a database") && err.contains("run again with --force"), "{err}");
    assert_eq!(listing(&target), before);

    // A dry run verifies and changes nothing.
    let (ok, out, err) =
        hearth(&["restore", s(&sealed), "--dry-run", "--passphrase-file", s(&passphrase), "--data-dir", &dd], None);
    assert!(ok, "{err}");
    assert!(out.contains("is a sound Hearth backup") && out.contains(", encrypted):"), "{out}");
    assert!(out.contains("Nothing was changed (--dry-run)") && out.contains("this needs --force"), "{out}");
    assert_eq!(listing(&target), before);

    // With the passphrase and --force it restores, and says where the old database went.
    let (ok, out, err) = hearth(
        &["restore", s(&sealed), "--force", "--passphrase-stdin", "--data-dir", &dd],
        Some("a long backup passphrase\n"),
    );
    assert!(ok, "{err}");
    let aside = out
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("moved {} aside to ", target.join("hearth.db").display())))
        .expect("where the old database went")
        .trim_end_matches(" (kept)")
        .to_owned();
    assert!(Path::new(&aside).exists(), "{aside}");
    hub.spawn();
    login(&hub, "owner", OWNER_PASSWORD);
}

#[test]
fn restore_refuses_while_a_hub_runs_on_the_target_and_a_second_hub_does_not_start_there() {
    let work = tempfile::tempdir().unwrap();
    let hub = Hub::start(&["--demo"]);
    hub.onboard();
    let archive = work.path().join("a.hearth-backup");
    assert!(hub.cli(&["backup", s(&archive)], None).0);
    let (ok, _, err) = hub.cli(&["restore", s(&archive), "--force"], None);
    assert!(!ok);
    assert!(err.contains(&format!("a hub is running on {}", hub.data_dir.display())), "{err}");
    assert!(err.contains("stop it first"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&hub.data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restore"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(hub.get("/healthz", None).status, 200);
    // A dry run says so too, and passes.
    let (ok, out, _) = hub.cli(&["restore", s(&archive), "--dry-run"], None);
    assert!(ok && out.contains("needs the hub stopped first"), "{out}");

    // The same lock keeps a second hub off the data directory.
    let out = Command::new(hearth_bin())
        .args(["run", "--data-dir", s(&hub.data_dir), "--http", "127.0.0.1:0", "--mqtt", "off"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another hub is running on"), "{err}");
    assert_eq!(hub.get("/healthz", None).status, 200);
}

#[test]
fn scheduled_backups_are_written_encrypted_and_only_the_newest_keep_are_kept() {
    let work = tempfile::tempdir().unwrap();
    let passphrase = work.path().join("passphrase");
    std::fs::write(&passphrase, "scheduled backup passphrase\n").unwrap();
    let dir = work.path().join("backups");
    std::fs::create_dir_all(&dir).unwrap();
    // Files that are not the hub's own scheduled backups stay; an old one of its own goes.
    let keepers = ["hearth-2020-01-01T00-00-00-000Z-before-v9.db", "mine.hearth-backup"];
    for k in keepers {
        std::fs::write(dir.join(k), b"not ours to remove").unwrap();
    }
    std::fs::write(dir.join("hearth-2020-01-01T00-00-00-000Z.hearth-backup"), b"an old one of ours").unwrap();
    let config = format!(
        "[adapters.demo]\nenabled = true\n[backup]\nkeep = 2\ndir = \"{}\"\npassphrase_file = \"{}\"\n",
        s(&dir),
        s(&passphrase)
    );
    let hub = Hub::start_with_config_env(&config, &[("HEARTH_BACKUP_INTERVAL_SECS", "1")]);
    let owner = hub.onboard();
    let status = hub.wait_for(T, || {
        let st = hub.get("/api/v1/backup/status", Some(&owner)).body;
        (st["made_since_start"].as_u64() >= Some(4)).then_some(st)
    });
    assert_eq!(status["enabled"], true);
    assert_eq!(status["keep"], 2);
    assert_eq!(status["encrypted"], true);
    assert_eq!(status["dir"], s(&dir));
    assert!(status["last_error"].is_null(), "{status}");
    assert!(status["next_at"].is_string(), "{status}");
    assert!(status["last_success"]["file"].as_str().unwrap().starts_with(s(&dir)), "{status}");
    assert!(status["last_success"]["bytes"].as_u64().unwrap() > 10_000, "{status}");
    let metrics = hub.get("/metrics", Some(&owner)).text;
    let last = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_backup_last_success_timestamp_seconds "))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - last).abs() < 120, "the last backup's time in /metrics: {last}, now {now}");
    assert!(metrics.contains("\nhearth_backup_failing 0\n"), "{metrics}");
    let listed: Vec<&str> = status["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(listed.len() <= 2, "{listed:?}");

    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains(".partial-"))
        .collect();
    let ours: Vec<&String> = names.iter().filter(|n| !keepers.contains(&n.as_str())).collect();
    assert_eq!(ours.len(), 2, "{names:?}");
    for k in keepers {
        assert!(names.contains(k), "{k} was removed: {names:?}");
        assert_eq!(std::fs::read(dir.join(k)).unwrap(), b"not ours to remove");
    }
    assert!(!names.contains("hearth-2020-01-01T00-00-00-000Z.hearth-backup"), "the oldest of its own goes first");
    assert!(ours.iter().all(|n| n.starts_with("hearth-20") && n.ends_with(".hearth-backup")), "{ours:?}");
    assert!(hub.log().contains("Wrote a scheduled backup.") && hub.log().contains("Removed an old scheduled backup."));

    // Each is an encrypted archive that verifies.
    let newest = dir.join(ours.iter().max().unwrap());
    assert!(std::fs::read(&newest).unwrap().starts_with(b"hearth-backup-encrypted\n"));
    let x = work.path().join("x");
    let (ok, out, err) =
        hearth(&["restore", s(&newest), "--dry-run", "--passphrase-file", s(&passphrase), "--data-dir", s(&x)], None);
    assert!(ok, "{err}");
    assert!(out.contains("is a sound Hearth backup") && out.contains(", encrypted):"), "{out}");
    assert!(!x.exists(), "a dry run creates nothing");
}
