//! `kill -9` during a stream of state changes loses nothing the hub reported as persisted, and
//! leaves a database that passes `PRAGMA integrity_check`.
//!
//! "Reported as persisted" means returned by the history API, which reads only committed rows.
//! Rounds: 3 by default; set `HEARTH_CRASH_ROUNDS` for a longer run.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hearth_tests::Hub;

fn history(hub: &Hub, token: &str) -> BTreeSet<(String, String, i64)> {
    let mut seen = BTreeSet::new();
    for id in ["demo:living_climate", "demo:bedroom_climate", "demo:thermostat"] {
        let a = hub.get(&format!("/api/v1/devices/{id}/history?limit=10000"), Some(token));
        assert_eq!(a.status, 200, "{}", a.text);
        for e in a.body["entries"].as_array().unwrap() {
            let at: hearth_sdk::Timestamp = serde_json::from_value(e["at"].clone()).unwrap();
            seen.insert((id.to_owned(), e["feature"].as_str().unwrap().to_owned(), at.as_millis()));
        }
    }
    seen
}

#[test]
fn kill_9_during_a_stream_of_changes_loses_nothing_reported_persisted() {
    let rounds: usize = std::env::var("HEARTH_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hearth.toml");
    std::fs::write(&config, "[adapters.demo]\nenabled = true\ninterval_secs = 0.01\n").unwrap();
    let mut hub = Hub::start(&["--config", config.to_str().unwrap()]);
    let token = hub.onboard();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let mut total = 0;
    for round in 0..rounds {
        // Let changes stream for a random while, reading what is persisted as we go.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(300 + seed % 1200);
        let start = Instant::now();
        let mut persisted = BTreeSet::new();
        while start.elapsed() < run_for {
            persisted.extend(history(&hub, &token));
        }
        hub.kill9();

        let conn = rusqlite::Connection::open(hub.db_path()).unwrap();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok", "round {round}");
        let mut stored = BTreeSet::new();
        let mut stmt =
            conn.prepare("SELECT s.device, s.feature, h.at FROM history h JOIN series s ON s.id = h.series").unwrap();
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap() {
            stored.insert(row.unwrap());
        }
        let lost: Vec<_> = persisted.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} persisted changes lost, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        assert!(!persisted.is_empty(), "round {round}: the stream produced no changes");
        total += persisted.len();
        drop(stmt);
        drop(conn);

        hub.spawn();
        let after = history(&hub, &token);
        assert!(persisted.is_subset(&after), "round {round}: the restarted hub does not show every persisted change");
    }
    eprintln!("{rounds} kills, {total} persisted changes checked, none lost");
}
