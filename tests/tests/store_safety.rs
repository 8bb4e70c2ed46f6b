//! The database at start: a damaged file is moved aside with the time in its name, reported
//! loudly, and the hub serves on a fresh one; an older schema is copied to `backups/` before
//! its migrations run, and what it held is still there after.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::Path;

use hearth_tests::Hub;

fn damaged_copies(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("hearth.db.damaged-"))
        .collect()
}

#[test]
fn a_file_that_is_not_a_database_is_moved_aside_and_the_hub_serves() {
    let mut hub = Hub::start(&["--demo"]);
    let data = hub.data_dir.clone();
    assert!(hub.stop());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("hearth.db{suffix}")));
    }
    std::fs::write(data.join("hearth.db"), vec![b'x'; 8192]).unwrap();
    hub.spawn();
    let log = hub.log();
    assert!(log.contains("THE DATABASE IS DAMAGED"), "{log}");
    assert_eq!(damaged_copies(&data).len(), 1, "moved aside, kept");
    assert_eq!(hub.get("/healthz", None).status, 200);
    hub.onboard();
}

#[test]
fn a_database_with_damaged_pages_is_moved_aside_and_the_hub_serves() {
    let mut hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    assert!(hub.get("/api/v1/devices", Some(&token)).body.as_array().unwrap().len() >= 13);
    let data = hub.data_dir.clone();
    assert!(hub.stop());
    // Overwrite pages in the middle of the file, header intact (what a failing SD card does).
    let file = data.join("hearth.db");
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    let end = bytes.len() - 4096;
    for b in &mut bytes[4096..end] {
        *b = 0x5a;
    }
    std::fs::write(&file, bytes).unwrap();
    hub.spawn();
    assert!(hub.log().contains("THE DATABASE IS DAMAGED"), "{}", hub.log());
    assert_eq!(damaged_copies(&data).len(), 1);
    // A fresh start: no accounts yet, and the demo home comes back from the adapter.
    hub.onboard();
}

#[test]
fn an_older_schema_is_copied_before_it_is_upgraded_and_keeps_its_data() {
    let mut hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    let renamed = hub.request(
        "PATCH",
        "/api/v1/devices/demo:living_lamp",
        Some(&token),
        Some(&serde_json::json!({"name": "Reading lamp"})),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let data = hub.data_dir.clone();
    assert!(hub.stop());
    // Make it the schema before the cloud outbox (version 7).
    let conn = rusqlite::Connection::open(data.join("hearth.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE outbox; DROP TABLE outbox_size; DROP TABLE history_5m; DROP TABLE history_1h;
         DROP TABLE history; DROP TABLE series;
         CREATE TABLE history (id INTEGER PRIMARY KEY, device TEXT NOT NULL, feature TEXT NOT NULL,
           kind INTEGER NOT NULL, value TEXT NOT NULL, at INTEGER NOT NULL, context TEXT);
         CREATE INDEX history_device_at ON history (device, feature, at);
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(conn);
    hub.spawn();
    let backups: Vec<_> = std::fs::read_dir(data.join("backups")).unwrap().filter_map(Result::ok).collect();
    assert_eq!(backups.len(), 1, "one copy before the upgrade");
    let name = backups[0].file_name().to_string_lossy().into_owned();
    assert!(
        name.starts_with("hearth-") && name.ends_with(&format!("-before-v{}.db", hearth::store::migrations::LATEST)),
        "{name}"
    );
    let copy = rusqlite::Connection::open(backups[0].path()).unwrap();
    let v: i64 = copy.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, 7, "the copy is the database as it was");
    // Upgraded, with its data and accounts.
    let lamp = hub.get("/api/v1/devices/demo:living_lamp", Some(&token)).body;
    assert_eq!(lamp["name"], "Reading lamp");
    let conn = rusqlite::Connection::open(data.join("hearth.db")).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, hearth::store::migrations::LATEST);
}

#[test]
fn a_damaged_database_is_replaced_by_the_newest_backup_that_verifies() {
    let mut hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    let rename = |hub: &Hub, name: &str| {
        let a = hub.request(
            "PATCH",
            "/api/v1/devices/demo:living_lamp",
            Some(&token),
            Some(&serde_json::json!({"name": name})),
        );
        assert_eq!(a.status, 200, "{}", a.text);
    };
    rename(&hub, "Reading lamp");
    let data = hub.data_dir.clone();
    let backups = data.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // The newest backup is damaged; the one before it is good.
    let good = backups.join("hearth-2026-01-01T03-00-00-000Z.hearth-backup");
    let (ok, out, err) = hub.cli(&["backup", good.to_str().unwrap()], None);
    assert!(ok, "{out}{err}");
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(backups.join("hearth-2026-01-02T03-00-00-000Z.hearth-backup"), bytes).unwrap();
    rename(&hub, "Renamed after the backup");
    assert!(hub.stop());

    std::fs::write(data.join("hearth.db"), vec![b'x'; 8192]).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("hearth.db{suffix}")));
    }
    hub.spawn();
    let log = hub.log();
    assert!(log.contains("starts on the last backup"), "{log}");
    assert!(log.contains("2026-01-02T03-00-00-000Z.hearth-backup") && log.contains("trying an older one"), "{log}");
    assert_eq!(damaged_copies(&data).len(), 1, "the damaged file is kept");
    // The home as it was at the good backup: the account, its session and the lamp's name.
    let lamp = hub.get("/api/v1/devices/demo:living_lamp", Some(&token));
    assert_eq!(lamp.status, 200, "{}", lamp.text);
    assert_eq!(lamp.body["name"], "Reading lamp");
}
