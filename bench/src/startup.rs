//! Footprint with many devices, and start-up: a hub learns N simulated zigbee2mqtt temperature
//! sensors, is stopped, gets a year of history written straight into its database (the schema of
//! migration 10), and is started again: the time to the first `GET /healthz` that answers 200,
//! and to the API listing every device.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OptionalExtension, params};

use crate::hub::Hub;
use crate::z2m::{self, Bridge, Device, Kind};

/// The configuration of the start-up hub: no disk budget (a year of 1,000 sensors is more than
/// the default 512 MB, and the budget would start deleting the history being measured), no
/// scheduled backups (a copy of the seeded database would double its disk use).
pub const CONFIG: &str = "[history]\nmax_db_mb = 0\n\n[backup]\nenabled = false\n";

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// One sample every 10 minutes.
const SAMPLE_MS: i64 = 600_000;
/// The default retention (`[history]`): raw, 5-minute and hourly days.
const RAW_DAYS: i64 = 10;
const FIVE_MINUTE_DAYS: i64 = 90;
const HOURLY_DAYS: i64 = 730;
/// The roll-up watermark's key in `meta` (see the hub's `store/upkeep.rs`).
const WATERMARK: &str = "history_rolled_up_to";

/// What was written into the database.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    pub features: usize,
    pub days: u32,
    pub raw_rows: u64,
    pub five_minute_rows: u64,
    pub hourly_rows: u64,
    pub seconds: f64,
}

impl Seeded {
    pub fn rows(&self) -> u64 {
        self.raw_rows + self.five_minute_rows + self.hourly_rows
    }
}

/// What the footprint and start-up run gave.
#[derive(Debug, Clone, Default)]
pub struct StartupResult {
    pub devices: usize,
    /// How long the first hub took to list them after `bridge/devices`.
    pub listed_after_s: f64,
    /// Resident memory once every device reported once, after 3 idle seconds.
    pub rss_settled: u64,
    /// The history written, or why none was.
    pub seeded: Option<Seeded>,
    pub not_seeded: Option<String>,
    /// The database's file and write-ahead log before the restart.
    pub db_bytes: u64,
    /// `PRAGMA quick_check` of the database before the restart (the file freshly written, so
    /// mostly in the page cache, as it is for the hub's start right after).
    pub quick_check_ms: f64,
    pub healthz_ms: f64,
    pub listed_ms: f64,
    pub rss_after_start: u64,
    /// Rows `GET /api/v1/devices/{id}/history` gave for the first seeded sensor (limit 10,000).
    pub api_raw_rows: Option<usize>,
    pub api_hourly_rows: Option<usize>,
}

/// The entries of a history answer: the answer itself when it is a list, else its first list.
fn rows_in(answer: &serde_json::Value) -> usize {
    match answer {
        serde_json::Value::Array(a) => a.len(),
        serde_json::Value::Object(m) => m.values().find_map(|v| v.as_array().map(Vec::len)).unwrap_or(0),
        _ => 0,
    }
}

/// Runs it all: `devices` sensors; `features` of them with `days` of history.
pub fn run(bin: &Path, devices: usize, features: usize, days: u32, skip_startup: bool) -> Result<StartupResult> {
    let home = tempfile::tempdir().context("creating a temporary directory for the start-up hub")?;
    let mut hub = Hub::spawn(bin, home.path(), Some(CONFIG))?;
    hub.wait_healthy(Duration::from_millis(50), Duration::from_secs(60))?;
    let token = hub.onboard()?;
    let sensors = z2m::devices(Kind::Temperature, devices);
    let ids: Vec<String> = sensors.iter().map(Device::id).collect();
    let mut out = StartupResult { devices, ..StartupResult::default() };
    {
        let bridge = Bridge::start(hub.mqtt, &sensors, |_, _, _| {})?;
        eprintln!("hearth-bench: {devices} simulated zigbee2mqtt sensors on a fresh hub");
        out.listed_after_s = z2m::wait_listed(&hub, &token, &ids, Duration::from_secs(300))?.as_secs_f64();
        for (i, s) in sensors.iter().enumerate() {
            bridge.state(s, &serde_json::json!({"temperature": 20.0 + (i % 100) as f64 / 10.0}))?;
        }
        z2m::wait_reported(&hub, &token, &ids, "temperature", Duration::from_secs(180))?;
        std::thread::sleep(Duration::from_secs(3));
        out.rss_settled = hub.rss_bytes()?;
    }
    if skip_startup {
        hub.stop();
        return Ok(out);
    }
    if !hub.stop() {
        bail!("the hub did not stop cleanly on SIGTERM before seeding; its log:\n{}", hub.log_tail());
    }

    let db = hub.db_path();
    let mut conn = Connection::open(&db).with_context(|| format!("opening {}", db.display()))?;
    match missing_schema(&conn)? {
        Some(why) => out.not_seeded = Some(why),
        None => {
            eprintln!("hearth-bench: writing {days} days of history of {features} sensors into the database");
            let now = hearth_now_ms();
            let chosen: Vec<String> = ids.iter().take(features).cloned().collect();
            out.seeded = Some(seed(&mut conn, &chosen, "temperature", days, now)?);
        }
    }
    // The hub runs SQLite's quick_check on its database at every start: its cost alone.
    let started = Instant::now();
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    out.quick_check_ms = started.elapsed().as_secs_f64() * 1000.0;
    if check != "ok" {
        bail!("the seeded database fails SQLite's quick_check: {check}");
    }
    drop(conn);
    out.db_bytes = file_bytes(&db);

    // The restart, measured from the spawn.
    let mut hub = Hub::spawn(bin, home.path(), Some(CONFIG))?;
    let healthy = hub.wait_healthy(Duration::from_millis(10), Duration::from_secs(300))?;
    out.healthz_ms = healthy.duration_since(hub.spawned).as_secs_f64() * 1000.0;
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, answer) = hub.request("GET", "/api/v1/devices", Some(&token), None)?;
        let listed = answer
            .as_array()
            .map_or(0, |l| l.iter().filter(|d| d["id"].as_str().is_some_and(|id| wanted.contains(id))).count());
        if status == 200 && listed == wanted.len() {
            out.listed_ms = hub.spawned.elapsed().as_secs_f64() * 1000.0;
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after the restart the hub listed {listed} of {} devices within 300 s (status {status})",
                wanted.len()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    out.rss_after_start = hub.rss_bytes()?;
    // The hub reads the seeded history back: raw and hourly rows of the first sensor.
    if out.seeded.is_some() {
        let first = &ids[0];
        for (resolution, slot) in [("raw", &mut out.api_raw_rows), ("1h", &mut out.api_hourly_rows)] {
            let path =
                format!("/api/v1/devices/{first}/history?feature=temperature&resolution={resolution}&limit=10000");
            let (status, answer) = hub.request("GET", &path, Some(&token), None)?;
            if status != 200 {
                bail!("GET {path} on the seeded hub answered {status}: {answer}");
            }
            *slot = Some(rows_in(&answer));
        }
    }
    hub.stop();
    Ok(out)
}

fn hearth_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The database file and its write-ahead log, in bytes.
pub fn file_bytes(db: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    size(db) + size(&db.with_extension("db-wal"))
}

/// Why the history cannot be seeded in this database's schema, if it cannot: the tables and
/// columns of migration 10 (`series`; `history`, `history_5m` and `history_1h` keyed by series).
pub fn missing_schema(conn: &Connection) -> Result<Option<String>> {
    let columns = |table: &str| -> Result<Vec<String>> {
        let mut st = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
        let names = st.query_map([table], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (table, wanted) in [
        ("series", &["id", "device", "feature"][..]),
        ("history", &["id", "series", "kind", "value", "at", "context"][..]),
        ("history_5m", &["series", "at", "n", "low", "high", "total"][..]),
        ("history_1h", &["series", "at", "n", "low", "high", "total"][..]),
    ] {
        let have = columns(table)?;
        if let Some(c) = wanted.iter().find(|c| !have.iter().any(|h| h == *c)) {
            let what =
                if have.is_empty() { format!("no table `{table}`") } else { format!("`{table}` has no column `{c}`") };
            return Ok(Some(format!(
                "history not seeded: the database (schema version {version}) has {what}; the seeding writes the \
                 schema of migration 10 (series-keyed history), which this hearth binary does not have yet"
            )));
        }
    }
    Ok(None)
}

/// A sensor's temperature at a time: a daily swing and a slow drift, to 0.01 °C.
fn value(series: usize, at: i64) -> f64 {
    let day = (at as f64) / DAY_MS as f64;
    let phase = series as f64 * 0.37;
    let v = 20.0 + 3.0 * (std::f64::consts::TAU * day + phase).sin() + 1.5 * (day / 30.0 + phase).sin();
    (v * 100.0).round() / 100.0
}

/// Writes `days` of history of `feature` of each of `devices`, a sample every 10 minutes, as a hub
/// under the default retention would hold it at `now_ms`: raw rows for the last 10 days, 5-minute
/// aggregates for the last 90 and hourly ones for the last 730 (within `days`); the roll-up
/// watermark says every raw row is rolled up. Runs in one transaction without a journal: the
/// hub must be stopped.
pub fn seed(conn: &mut Connection, devices: &[String], feature: &str, days: u32, now_ms: i64) -> Result<Seeded> {
    if let Some(why) = missing_schema(conn)? {
        bail!("{why}");
    }
    let started = Instant::now();
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        bail!("the database stayed in journal mode {mode}: is a hub still running on it? stop it first");
    }
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -131072; PRAGMA foreign_keys = OFF;")?;
    let end = now_ms / SAMPLE_MS * SAMPLE_MS;
    let since = |d: i64| end - d.min(i64::from(days)) * DAY_MS + SAMPLE_MS;
    let mut out = Seeded { features: devices.len(), days, ..Seeded::default() };
    let tx = conn.transaction()?;
    let mut series = Vec::with_capacity(devices.len());
    for d in devices {
        tx.execute("INSERT OR IGNORE INTO series (device, feature) VALUES (?1, ?2)", params![d, feature])?;
        let id: i64 =
            tx.query_row("SELECT id FROM series WHERE device = ?1 AND feature = ?2", params![d, feature], |r| {
                r.get(0)
            })?;
        series.push(id);
    }
    {
        // Raw rows in the order they would have arrived: by time, then sensor.
        let mut st =
            tx.prepare("INSERT INTO history (series, kind, value, at, context) VALUES (?1, 0, ?2, ?3, NULL)")?;
        let mut at = since(RAW_DAYS);
        while at <= end {
            for (i, s) in series.iter().enumerate() {
                st.execute(params![s, serde_json::to_string(&value(i, at))?, at])?;
                out.raw_rows += 1;
            }
            at += SAMPLE_MS;
        }
        // Aggregates in key order: each 5-minute period holds one sample, each hour six.
        let mut five = tx.prepare(
            "INSERT OR REPLACE INTO history_5m (series, at, n, low, high, total) VALUES (?1, ?2, 1, ?3, ?3, ?3)",
        )?;
        let mut hourly = tx.prepare(
            "INSERT OR REPLACE INTO history_1h (series, at, n, low, high, total) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (i, s) in series.iter().enumerate() {
            let mut at = since(FIVE_MINUTE_DAYS);
            while at <= end {
                five.execute(params![s, at / 300_000 * 300_000, value(i, at)])?;
                out.five_minute_rows += 1;
                at += SAMPLE_MS;
            }
            let mut hour = since(HOURLY_DAYS) / 3_600_000 * 3_600_000;
            while hour <= end {
                let samples: Vec<f64> = (0..6)
                    .map(|k| hour + k * SAMPLE_MS)
                    .filter(|t| *t >= since(HOURLY_DAYS) && *t <= end)
                    .map(|t| value(i, t))
                    .collect();
                if !samples.is_empty() {
                    let low = samples.iter().copied().fold(f64::INFINITY, f64::min);
                    let high = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = samples.iter().sum();
                    hourly.execute(params![s, hour, samples.len() as i64, low, high, total])?;
                    out.hourly_rows += 1;
                }
                hour += 3_600_000;
            }
        }
    }
    let last: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM history", [], |r| r.get(0))?;
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", params![WATERMARK, last.to_string()])?;
    tx.commit()?;
    let mode: Option<String> = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).optional()?;
    if mode.as_deref().is_none_or(|m| !m.eq_ignore_ascii_case("wal")) {
        bail!("could not put the seeded database back in WAL mode (it says {mode:?})");
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables of migration 10 as the brief of this harness gives them, plus `meta`.
    const SCHEMA: &str = "
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE series (id INTEGER PRIMARY KEY, device TEXT NOT NULL, feature TEXT NOT NULL, UNIQUE (device, feature));
        CREATE TABLE history (id INTEGER PRIMARY KEY, series INTEGER NOT NULL, kind INTEGER NOT NULL,
            value TEXT NOT NULL, at INTEGER NOT NULL, context TEXT);
        CREATE TABLE history_5m (series INTEGER NOT NULL, at INTEGER NOT NULL, n INTEGER NOT NULL,
            low REAL NOT NULL, high REAL NOT NULL, total REAL NOT NULL, PRIMARY KEY (series, at)) WITHOUT ROWID;
        CREATE TABLE history_1h (series INTEGER NOT NULL, at INTEGER NOT NULL, n INTEGER NOT NULL,
            low REAL NOT NULL, high REAL NOT NULL, total REAL NOT NULL, PRIMARY KEY (series, at)) WITHOUT ROWID;";

    #[test]
    fn seeding_writes_raw_five_minute_and_hourly_rows_like_the_default_retention() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hearth.db");
        let mut conn = Connection::open(&path).expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute_batch("PRAGMA journal_mode = WAL;").expect("wal");
        assert_eq!(missing_schema(&conn).expect("check"), None);
        let devices = vec!["zigbee2mqtt:0x01".to_owned(), "zigbee2mqtt:0x02".to_owned()];
        let now = 1_780_000_000_000;
        let s = seed(&mut conn, &devices, "temperature", 30, now).expect("seed");

        // 144 samples a day: 10 days raw, 30 days of 5-minute periods, 30 days of hours.
        assert_eq!(s.raw_rows, 2 * 10 * 144);
        assert_eq!(s.five_minute_rows, 2 * 30 * 144);
        assert!((2 * 30 * 24..=2 * (30 * 24 + 1)).contains(&s.hourly_rows), "{}", s.hourly_rows);
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql) as u64;
        assert_eq!(count("SELECT COUNT(*) FROM history"), s.raw_rows);
        assert_eq!(count("SELECT COUNT(*) FROM history_5m"), s.five_minute_rows);
        assert_eq!(count("SELECT COUNT(*) FROM history_1h"), s.hourly_rows);
        assert_eq!(count("SELECT COUNT(*) FROM series WHERE feature = 'temperature'"), 2);
        // Raw rows are the last 10 days, in time order, JSON numbers, no context.
        assert!(count("SELECT MIN(at) FROM history") > (now - 10 * DAY_MS) as u64);
        assert!(count("SELECT MAX(at) FROM history") <= now as u64);
        assert_eq!(count("SELECT COUNT(*) FROM history WHERE context IS NOT NULL OR kind != 0"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM history WHERE json_type(value) != 'real'"), 0);
        let ordered: i64 = conn
            .query_row("SELECT COUNT(*) FROM history a JOIN history b ON b.id = a.id + 1 WHERE b.at < a.at", [], |r| {
                r.get(0)
            })
            .expect("order");
        assert_eq!(ordered, 0, "raw rows are in arrival order");
        // An hour's aggregate is its six samples; hours start on the hour; the mean lies within.
        assert_eq!(count("SELECT COUNT(*) FROM history_1h WHERE at % 3600000 != 0"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM history_1h WHERE n < 1 OR n > 6 OR low > high"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM history_1h WHERE total / n < low - 1e-9 OR total / n > high + 1e-9"), 0);
        assert!(count("SELECT MIN(at) FROM history_1h") >= (now - 30 * DAY_MS - 3_600_000) as u64);
        // Every raw row is rolled up, and the database is in WAL mode again for the hub.
        let mark: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'history_rolled_up_to'", [], |r| r.get(0))
            .expect("watermark");
        assert_eq!(mark.parse::<u64>().expect("a row id"), count("SELECT MAX(id) FROM history"));
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("mode");
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_database_without_series_is_not_seeded_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut conn = Connection::open(dir.path().join("hearth.db")).expect("open");
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE history (id INTEGER PRIMARY KEY, device TEXT NOT NULL, feature TEXT NOT NULL,
                 kind INTEGER NOT NULL, value TEXT NOT NULL, at INTEGER NOT NULL, context TEXT);",
        )
        .expect("old schema");
        let why = missing_schema(&conn).expect("check").expect("a reason");
        assert!(why.contains("no table `series`") && why.contains("migration 10"), "{why}");
        let err = seed(&mut conn, &["d".to_owned()], "temperature", 1, 1_780_000_000_000).expect_err("refused");
        assert!(err.to_string().contains("no table `series`"), "{err}");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0)).expect("count");
        assert_eq!(rows, 0);
    }
}
