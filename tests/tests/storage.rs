//! Bounded storage, end to end with the real binary and its SQLite file: history retention per
//! capability and device, the 5-minute and hourly aggregates, and the disk budget under a flood.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::sim::Zigbee2mqttSim;
use hearth_tests::sim::zigbee2mqtt::CLIMATE;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const DAY: i64 = 86_400_000;
const MB: u64 = 1024 * 1024;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The database's bytes on disk, as `ls` shows them: its file and its write-ahead log.
fn on_disk(hub: &Hub) -> u64 {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(hub.db_path()) + size(hub.data_dir.join("hearth.db-wal"))
}

/// Waits for an upkeep round that ended after now.
fn wait_upkeep(hub: &Hub, token: &str) -> Value {
    let after = now_ms();
    hub.wait_for(T, || {
        let s = hub.get("/api/v1/storage", Some(token));
        assert_eq!(s.status, 200, "{}", s.text);
        let at = s.body["history"]["counted_at"].as_str()?;
        let at: hearth_sdk::Timestamp = at.parse().ok()?;
        (at.as_millis() > after).then_some(s.body)
    })
}

fn history(hub: &Hub, token: &str, device: &str, query: &str) -> Value {
    let a = hub.get(&format!("/api/v1/devices/{device}/history?{query}"), Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// Inserts history rows straight into the stopped hub's database file, as an older hub would
/// have written them.
fn insert(hub: &Hub, rows: &[(&str, &str, &str, i64)]) {
    let conn = rusqlite::Connection::open(hub.db_path()).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for (device, feature, value, at) in rows {
        tx.execute(
            "INSERT INTO series (device, feature) VALUES (?1, ?2) ON CONFLICT (device, feature) DO NOTHING",
            rusqlite::params![device, feature],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO history (series, kind, value, at, context)
             SELECT id, 0, ?3, ?4, NULL FROM series WHERE device = ?1 AND feature = ?2",
            rusqlite::params![device, feature, value, at],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn history_is_kept_per_rule_and_rolled_up_into_5_minute_and_hourly_figures() {
    let config = r#"
[adapters.demo]
enabled = true
interval_secs = 3600

[history]
raw_days = 10
five_minute_days = 90
hourly_days = 730

[history.capabilities.humidity]
raw_days = 1

[history.devices."demo:bedroom_climate"]
raw_days = 30
"#;
    let mut hub = Hub::start_with_config_env(config, &[("HEARTH_UPKEEP_TIMING", "fast")]);
    let token = hub.onboard();
    assert!(hub.stop());

    // Periods well inside 5-minute and hourly boundaries, so the expected figures are exact.
    let base = |days: i64| (now_ms() - days * DAY) / 3_600_000 * 3_600_000 + 60_000;
    let (d2, d20, d100, d800) = (base(2), base(20), base(100), base(800));
    let living = "demo:living_climate";
    let bedroom = "demo:bedroom_climate";
    insert(
        &hub,
        &[
            // Two days old: temperature is within 10 days; humidity keeps 1 day raw.
            (living, "temperature", "20", d2),
            (living, "humidity", "40", d2),
            // Twenty days old: the living room's raw rows go, the bedroom keeps 30 days.
            (living, "temperature", "18", d20),
            (living, "temperature", "19", d20 + 60_000),
            (living, "temperature", "23", d20 + 400_000), // the next 5 minutes, same hour
            (bedroom, "temperature", "17.5", d20),
            // A hundred days old: only the hourly figure is kept.
            (living, "temperature", "15", d100),
            (living, "temperature", "16", d100 + 400_000),
            // Older than two years: nothing is kept.
            (living, "temperature", "12", d800),
        ],
    );
    hub.spawn();
    let storage = wait_upkeep(&hub, &token);

    let raw = history(&hub, &token, living, "feature=temperature&from=1970-01-01T00:00:00Z");
    let at = |e: &Value| e["at"].as_str().unwrap().parse::<hearth_sdk::Timestamp>().unwrap().as_millis();
    let values: Vec<(i64, Value)> = raw["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| at(e) < now_ms() - DAY)
        .map(|e| (at(e), e["value"].clone()))
        .collect();
    assert_eq!(values, vec![(d2, json!(20))], "only the raw row within 10 days stays: {raw}");
    let humidity = history(&hub, &token, living, "feature=humidity");
    assert!(
        humidity["entries"].as_array().unwrap().iter().all(|e| at(e) > now_ms() - DAY),
        "humidity keeps one day of raw history: {humidity}"
    );
    let bedroom_raw = history(&hub, &token, bedroom, "feature=temperature");
    assert!(
        bedroom_raw["entries"].as_array().unwrap().iter().any(|e| at(e) == d20 && e["value"] == json!(17.5)),
        "the bedroom's device rule keeps 30 days: {bedroom_raw}"
    );

    // The 5-minute figures of twenty days ago survive their raw rows; those of 100 days do not.
    let five = history(&hub, &token, living, "feature=temperature&resolution=5m&to=2099-01-01T00:00:00Z");
    let period = |v: &Value, start: i64| -> Option<Value> {
        v["periods"].as_array().unwrap().iter().find(|p| at(p) == start).cloned()
    };
    let p = period(&five, d20 - 60_000).unwrap_or_else(|| panic!("the 5-minute period of 20 days ago: {five}"));
    assert_eq!(
        (p["count"].clone(), p["min"].clone(), p["max"].clone(), p["mean"].clone()),
        (json!(2), json!(18.0), json!(19.0), json!(18.5))
    );
    let p = period(&five, d20 - 60_000 + 300_000).expect("the next 5 minutes");
    assert_eq!(p["count"], json!(1));
    assert!(period(&five, d100 - 60_000).is_none(), "5-minute figures are kept 90 days: {five}");
    let hourly = history(&hub, &token, living, "feature=temperature&resolution=1h");
    let h = period(&hourly, d20 - 60_000).unwrap_or_else(|| panic!("the hour of 20 days ago: {hourly}"));
    assert_eq!(
        (h["count"].clone(), h["min"].clone(), h["max"].clone(), h["mean"].clone()),
        (json!(3), json!(18.0), json!(23.0), json!(20.0))
    );
    let h = period(&hourly, d100 - 60_000).unwrap_or_else(|| panic!("the hour of 100 days ago: {hourly}"));
    assert_eq!((h["count"].clone(), h["mean"].clone()), (json!(2), json!(15.5)));
    assert!(period(&hourly, d800 - 60_000).is_none(), "hourly figures are kept 730 days: {hourly}");

    // What was removed shows in the API and /metrics.
    assert!(storage["history"]["removed_by_retention"].as_u64().unwrap() >= 5, "{storage}");
    assert_eq!(storage["budget_bytes"], json!(512 * MB), "the default budget: {storage}");
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.contains("hearth_database_budget_bytes 536870912"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l.starts_with("hearth_history_removed_by_retention_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // A resolution that does not exist is refused, saying which do.
    let bad = hub.get(&format!("/api/v1/devices/{living}/history?resolution=10m"), Some(&token));
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("`resolution` is raw (every change), 5m or 1h"), "{}", bad.text);
    assert!(hub.stop());
}

#[test]
fn under_a_flood_of_history_the_database_stays_within_its_budget_and_state_is_intact() {
    const BUDGET_MB: u64 = 40;
    let config = format!(
        r#"
[adapters.demo]
enabled = true

[history]
max_db_mb = {BUDGET_MB}
"#
    );
    let mut hub = Hub::start_with_config_env(&config, &[("HEARTH_UPKEEP_TIMING", "fast")]);
    let token = hub.onboard();
    assert!(hub.stop());

    // A database already near its budget: nine days of a removed sensor's readings, one every
    // 0.95 s (a sensor's own reports store no context).
    const STEP: i64 = 950;
    let conn = rusqlite::Connection::open(hub.db_path()).unwrap();
    let start = now_ms() - 9 * DAY;
    conn.execute("INSERT INTO series (device, feature) VALUES ('zigbee2mqtt:0x00000000000000ff', 'power')", [])
        .unwrap();
    let series = conn.last_insert_rowid();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 809999)
         INSERT INTO history (series, kind, value, at, context)
         SELECT ?2, 0, CAST(i % 3000 AS TEXT), ?1 + i * ?3, NULL
         FROM n",
        rusqlite::params![start, series, STEP],
    )
    .unwrap();
    drop(conn);
    let before = on_disk(&hub);
    assert!(before > 30 * MB && before < BUDGET_MB * MB, "prefilled to {before} bytes");

    hub.spawn();
    let sim = Zigbee2mqttSim::start(hub.mqtt.unwrap());
    let climate = CLIMATE.id();
    hub.wait_for(T, || (hub.get(&format!("/api/v1/devices/{climate}"), Some(&token)).status == 200).then_some(()));

    // The flood: 15,000 reports of six changing values, about 90,000 history rows, a few MB more
    // than the budget leaves. The file is measured all along.
    let mut largest = 0;
    let mut last = json!({});
    let started = Instant::now();
    for i in 0..15_000u32 {
        last = json!({
            "temperature": f64::from(1500 + i % 1000) / 100.0,
            "humidity": f64::from(300 + i % 500) / 10.0,
            "pressure": f64::from(9900 + i % 400) / 10.0,
            "battery": 50 + i % 50,
            "voltage": 2900 + i % 300,
            "linkquality": 10 + i % 200,
        });
        sim.publish_raw(CLIMATE.name, last.to_string(), false);
        if i % 200 == 0 {
            largest = largest.max(on_disk(&hub));
        }
    }
    let flood_secs = started.elapsed().as_secs_f64();
    // Everything arrives: the device's state is the last report's.
    hub.wait_for(T * 4, || {
        largest = largest.max(on_disk(&hub));
        let d = hub.get(&format!("/api/v1/devices/{climate}"), Some(&token)).body;
        let same = |k: &str| d["state"][k]["value"].as_f64() == last[k].as_f64();
        (same("temperature") && same("humidity") && same("linkquality")).then_some(())
    });
    let storage = wait_upkeep(&hub, &token);
    largest = largest.max(on_disk(&hub));
    eprintln!("flood: {flood_secs:.1} s, largest on disk {:.1} MB, storage {storage}", largest as f64 / MB as f64);
    assert!(largest <= BUDGET_MB * MB, "the database reached {largest} bytes, over its {BUDGET_MB} MB budget");
    assert!(storage["used_bytes"].as_u64().unwrap() <= BUDGET_MB * MB, "{storage}");
    assert!(storage["history"]["removed_by_budget"].as_u64().unwrap() > 50_000, "{storage}");
    assert_eq!(storage["over_budget"], json!(false));

    // The oldest raw history went first; the flood's newest rows and every current state stayed.
    let conn = rusqlite::Connection::open(hub.db_path()).unwrap();
    let oldest: i64 = conn
        .query_row(
            "SELECT MIN(h.at) FROM history h JOIN series s ON s.id = h.series
             WHERE s.device = 'zigbee2mqtt:0x00000000000000ff'",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .unwrap()
        .unwrap_or(i64::MAX);
    assert!(oldest > start + STEP * 50_000, "the oldest rows went first (oldest left: {oldest})");
    let states: i64 = conn.query_row("SELECT COUNT(*) FROM state", [], |r| r.get(0)).unwrap();
    assert!(states > 40, "current state of every device is kept ({states} rows)");
    let recent = history(&hub, &token, &climate, "feature=temperature&limit=1");
    assert_eq!(recent["entries"][0]["value"].as_f64(), last["temperature"].as_f64(), "{recent}");
    let lamp = hub.get("/api/v1/devices/demo:living_lamp", Some(&token));
    assert_eq!(lamp.status, 200);
    assert!(lamp.body["state"]["state"]["value"].is_boolean(), "{}", lamp.text);

    // The hub still writes: a command changes state, and history has it.
    let cmd = hub.post("/api/v1/devices/demo:living_lamp/commands", Some(&token), json!({"set": {"state": false}}));
    assert_eq!(cmd.status, 202, "{}", cmd.text);
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices/demo:living_lamp", Some(&token)).body;
        (d["state"]["state"]["value"] == json!(false)).then_some(())
    });
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.contains(&format!("hearth_database_budget_bytes {}", BUDGET_MB * MB)), "{metrics}");
    sim.stop();
    assert!(hub.stop());
}
