//! Keeping the database within bounds: history rolled up into 5-minute and hourly aggregates,
//! each resolution kept for its own time (per capability or device where configured), and a hard
//! disk budget.
//!
//! History is kept per series: a (device, feature) pair, named once in the `series` table, whose
//! id the raw rows and both aggregate tables carry.
//!
//! - **Roll-up.** Every raw state change of a number or an on/off value is added to its 5-minute
//!   and its hourly aggregate (count, low, high, total: the mean is total / count). Raw rows are
//!   taken in id order, from a watermark kept in `meta` (`history_rolled_up_to`) and committed in
//!   the same transaction as the aggregates they went into, so each row counts exactly once, and a
//!   late row (a device reporting an older time) still lands in its own period.
//! - **Retention.** For each series (a walk over `series`; its rule resolved once per round), rows
//!   older than its rule are deleted, by the `(series, at)` index, in chunks that leave the writer
//!   free for the home between them. Raw rows not yet rolled up are never removed by retention.
//!   Series with no rows left in any of the three tables are then removed.
//! - **Budget.** After each committed batch, the writer compares the pages in use with the budget;
//!   above 80 % it removes the oldest raw history (by id, which follows arrival) until use is
//!   back under 70 %, a bounded chunk at a time. Only when no raw history is left do the oldest
//!   5-minute, then hourly, aggregates go. Current state, devices, automations, accounts and the
//!   audit log are never removed: the hub never stops writing state. The remaining 20 % is room
//!   for the write-ahead log.
//!
//! Invariant: only the writer thread runs the deleting and rolling-up statements here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use hearth_sdk::{Capability, Timestamp};
use rusqlite::{Connection, params};

use super::{Readers, StoreError, StoreWriter};
use crate::config::{HistoryConfig, KeepRule};
use crate::core::CoreHandle;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// Raw rows rolled up per writer transaction.
const ROLLUP_CHUNK: i64 = 20_000;
/// Rows deleted per statement.
const DELETE_CHUNK: i64 = 5_000;
/// Raw rows removed per statement when over the budget.
const BUDGET_CHUNK: i64 = 2_000;
/// Statements one budget step may run before the writer goes back to its queue.
const BUDGET_STATEMENTS_PER_STEP: usize = 10;
/// The watermark's key in `meta`.
const WATERMARK: &str = "history_rolled_up_to";

/// The aggregate tables and their periods.
pub const AGGREGATES: [(&str, i64); 2] = [("history_5m", 300_000), ("history_1h", 3_600_000)];

/// Figures of the upkeep, for the API and `/metrics`.
#[derive(Debug, Default)]
pub struct UpkeepStats {
    /// The disk budget in bytes (0: none).
    pub budget_bytes: AtomicU64,
    /// Rows removed because they were older than their retention.
    pub removed_by_retention: AtomicU64,
    /// Rows removed to stay within the budget.
    pub removed_by_budget: AtomicU64,
    /// Raw history rows, as of the last upkeep.
    pub raw_rows: AtomicU64,
    /// 5-minute aggregate rows, as of the last upkeep.
    pub five_minute_rows: AtomicU64,
    /// Hourly aggregate rows, as of the last upkeep.
    pub hourly_rows: AtomicU64,
    /// When the last upkeep ended (ms since 1970; 0: not yet).
    pub last_run_ms: AtomicI64,
    /// Whether the database is over its budget with no history left to remove.
    pub over_budget: AtomicBool,
    /// Whether the last budget step stopped with more to remove.
    pub budget_more: AtomicBool,
}

impl UpkeepStats {
    /// Runs a budget step after a committed batch, and records what it did.
    pub fn after_batch(&self, conn: &Connection) {
        let budget = self.budget_bytes.load(Ordering::Relaxed);
        if budget == 0 {
            return;
        }
        match budget_step(conn, budget) {
            Ok(step) => {
                self.removed_by_budget.fetch_add(step.removed, Ordering::Relaxed);
                self.budget_more.store(step.more, Ordering::Relaxed);
                if step.stuck && !self.over_budget.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        budget_mb = budget / 1024 / 1024,
                        "The database is over its budget and has no history left to remove: raise [history] max_db_mb."
                    );
                } else if !step.stuck {
                    self.over_budget.store(false, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not keep the database within its budget."),
        }
    }
}

/// Retention in days for each resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// Raw rows.
    pub raw: u32,
    /// 5-minute aggregates.
    pub five_minute: u32,
    /// Hourly aggregates.
    pub hourly: u32,
}

impl Keep {
    fn with(self, rule: &KeepRule) -> Keep {
        Keep {
            raw: rule.raw_days.unwrap_or(self.raw),
            five_minute: rule.five_minute_days.unwrap_or(self.five_minute),
            hourly: rule.hourly_days.unwrap_or(self.hourly),
        }
    }

    fn days(self, table: &str) -> u32 {
        match table {
            "history" => self.raw,
            "history_5m" => self.five_minute,
            _ => self.hourly,
        }
    }
}

/// The retention rules, resolved for the devices the registry knows.
#[derive(Debug, Clone)]
pub struct Rules {
    general: Keep,
    config: HistoryConfig,
    capabilities: HashMap<(String, String), Capability>,
}

impl Rules {
    /// Rules from `[history]` and each known feature's capability.
    pub fn new(config: &HistoryConfig, devices: &[hearth_sdk::Device]) -> Rules {
        let general = Keep { raw: config.raw_days, five_minute: config.five_minute_days, hourly: config.hourly_days };
        let mut capabilities = HashMap::new();
        for d in devices {
            for f in &d.features {
                capabilities.insert((d.id.as_str().to_owned(), f.key.clone()), f.capability);
            }
        }
        Rules { general, config: config.clone(), capabilities }
    }

    /// How long this device's feature's history is kept: a `device/feature` rule, else a device
    /// rule, else its capability's rule, else the general setting; a rule leaves what it does not
    /// name to the next.
    pub fn keep(&self, device: &str, feature: &str) -> Keep {
        let mut keep = self.general;
        if let Some(cap) = self.capabilities.get(&(device.to_owned(), feature.to_owned()))
            && let Ok(serde_json::Value::String(name)) = serde_json::to_value(cap)
            && let Some(rule) = self.config.capabilities.get(&name)
        {
            keep = keep.with(rule);
        }
        if let Some(rule) = self.config.devices.get(device) {
            keep = keep.with(rule);
        }
        if let Some(rule) = self.config.devices.get(&format!("{device}/{feature}")) {
            keep = keep.with(rule);
        }
        keep
    }
}

/// Rolls up the next raw rows after the watermark, at most [`ROLLUP_CHUNK`]; returns how many ids
/// it covered (0 when it has caught up).
pub fn rollup(conn: &Connection) -> Result<i64, StoreError> {
    let from = watermark(conn)?;
    let last: i64 = conn.query_row("SELECT COALESCE(MAX(id), 0) FROM history", [], |r| r.get(0))?;
    if last <= from {
        return Ok(0);
    }
    let to = last.min(from + ROLLUP_CHUNK);
    for (table, period) in AGGREGATES {
        conn.prepare_cached(&format!(
            "INSERT INTO {table} (series, at, n, low, high, total)
             SELECT series, (at / ?3) * ?3 AS period, COUNT(*), MIN(v), MAX(v), SUM(v)
             FROM (SELECT series, at,
                     CASE json_type(value) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0 ELSE CAST(value AS REAL) END AS v
                   FROM history
                   WHERE id > ?1 AND id <= ?2 AND kind = 0
                     AND json_valid(value) AND json_type(value) IN ('integer', 'real', 'true', 'false'))
             WHERE true
             GROUP BY series, period
             ON CONFLICT (series, at) DO UPDATE SET
               n = {table}.n + excluded.n,
               low = MIN({table}.low, excluded.low),
               high = MAX({table}.high, excluded.high),
               total = {table}.total + excluded.total"
        ))?
        .execute(params![from, to, period])?;
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![WATERMARK, to.to_string()],
    )?;
    Ok(to - from)
}

/// The last raw history id already rolled up (0: none).
fn watermark(conn: &Connection) -> Result<i64, StoreError> {
    Ok(super::meta(conn, WATERMARK)?.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// One period of aggregated history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Period {
    /// The feature.
    pub feature: String,
    /// The period's start.
    pub at: Timestamp,
    /// How many values were reported in it.
    pub count: i64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// Their mean (for on/off: the share of reports that were on).
    pub mean: f64,
}

/// Reads a device's aggregated history from `table` (one of [`AGGREGATES`]), oldest first; the
/// newest `limit` periods when there are more. Returns them and whether older ones were left out.
pub fn aggregated(
    conn: &Connection,
    table: &str,
    device: &hearth_sdk::DeviceId,
    q: &super::HistoryQuery,
) -> Result<(Vec<Period>, bool), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT s.feature, a.at, a.n, a.low, a.high, a.total FROM series s JOIN {table} a ON a.series = s.id
         WHERE s.device = ?1 AND (?2 IS NULL OR s.feature = ?2) AND a.at >= ?3 AND a.at <= ?4
         ORDER BY a.at DESC, s.feature DESC LIMIT ?5"
    ))?;
    let from = q.from.map_or(i64::MIN, Timestamp::as_millis);
    let to = q.to.map_or(i64::MAX, Timestamp::as_millis);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX).saturating_add(1);
    let mut out = stmt
        .query_map(params![device.as_str(), q.feature, from, to, limit], |r| {
            let n: i64 = r.get(2)?;
            Ok(Period {
                feature: r.get(0)?,
                at: Timestamp::from_millis(r.get(1)?),
                count: n,
                min: r.get(3)?,
                max: r.get(4)?,
                mean: r.get::<_, f64>(5)? / n.max(1) as f64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let truncated = out.len() > q.limit;
    out.truncate(q.limit);
    out.reverse();
    Ok((out, truncated))
}

/// One series of history: a device's feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Its id, which history rows carry.
    pub id: i64,
    /// The device.
    pub device: String,
    /// The feature.
    pub feature: String,
}

/// Every series, in id order.
pub fn series(conn: &Connection) -> Result<Vec<Series>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, device, feature FROM series ORDER BY id")?;
    let rows = stmt.query_map([], |r| Ok(Series { id: r.get(0)?, device: r.get(1)?, feature: r.get(2)? }))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes at most [`DELETE_CHUNK`] rows of one series in `table` older than `cutoff` (and, for
/// raw history, with ids up to `rolled`, the roll-up watermark); returns how many.
fn sweep_series(conn: &Connection, table: &str, series: i64, cutoff: i64, rolled: i64) -> Result<u64, StoreError> {
    let n = if table == "history" {
        conn.prepare_cached(&format!(
            "DELETE FROM history WHERE rowid IN (SELECT rowid FROM history
               WHERE series = ?1 AND at < ?2 AND rowid <= ?3 LIMIT {DELETE_CHUNK})"
        ))?
        .execute(params![series, cutoff, rolled])?
    } else {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE series = ?1 AND at IN (SELECT at FROM {table}
               WHERE series = ?1 AND at < ?2 ORDER BY at LIMIT {DELETE_CHUNK})"
        ))?
        .execute(params![series, cutoff])?
    };
    Ok(n as u64)
}

/// The bytes of the database's pages in use (its file less its free pages).
pub fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    // Prepared once: the writer asks after every batch.
    let pragma = |sql: &str| -> Result<i64, rusqlite::Error> { conn.prepare_cached(sql)?.query_row([], |r| r.get(0)) };
    let page = pragma("PRAGMA page_size")?;
    let pages = pragma("PRAGMA page_count")?;
    let free = pragma("PRAGMA freelist_count")?;
    Ok(u64::try_from((pages - free).max(0) * page).unwrap_or(0))
}

/// What one budget step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BudgetStep {
    /// Rows removed.
    pub removed: u64,
    /// Whether more must go (the step stopped at its limit, still above the low mark).
    pub more: bool,
    /// Whether the database is above its budget's high mark with no history left.
    pub stuck: bool,
}

/// Keeps the database within `budget` bytes: when the pages in use pass 80 % of it, removes the
/// oldest raw history (then the oldest aggregates) until they are under 70 %, running at most a
/// few bounded statements (each its own transaction) so the writer is not held for long.
/// Runs outside any transaction.
pub fn budget_step(conn: &Connection, budget: u64) -> Result<BudgetStep, StoreError> {
    let mut step = BudgetStep::default();
    if budget == 0 {
        return Ok(step);
    }
    let (high, low) = (budget / 10 * 8, budget / 10 * 7);
    let mut used = used_bytes(conn)?;
    if used <= high {
        return Ok(step);
    }
    for _ in 0..BUDGET_STATEMENTS_PER_STEP {
        if used <= low {
            break;
        }
        let mut n = conn
            .prepare_cached("DELETE FROM history WHERE rowid IN (SELECT rowid FROM history ORDER BY rowid LIMIT ?1)")?
            .execute([BUDGET_CHUNK])?;
        for (table, _) in AGGREGATES {
            if n == 0 {
                n = conn
                    .prepare_cached(&format!(
                        "DELETE FROM {table} WHERE at IN (SELECT at FROM {table} ORDER BY at LIMIT 1)"
                    ))?
                    .execute([])?;
            }
        }
        if n == 0 {
            step.stuck = true;
            break;
        }
        step.removed += n as u64;
        used = used_bytes(conn)?;
    }
    step.more = !step.stuck && used > low;
    // A database made with incremental auto-vacuum gives its free pages back to the file system
    // when the file is above the budget (as after lowering it); others reuse them.
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if u64::try_from(pages * page).unwrap_or(0) > high {
        give_back_free_pages(conn, 2000)?;
    }
    Ok(step)
}

/// Gives up to `pages` free pages back to the file system, when the database was made with
/// incremental auto-vacuum (others keep them for reuse). The pragma frees one page per result
/// row, so it is stepped to its end. `pages` 0: all of them. Returns how many it gave back.
pub fn give_back_free_pages(conn: &Connection, pages: u32) -> Result<u64, StoreError> {
    if conn.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))? != 2 {
        return Ok(0);
    }
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while rows.next()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// The upkeep's settings.
#[derive(Debug)]
pub struct UpkeepInit {
    /// `[history]`.
    pub config: HistoryConfig,
    /// For each feature's capability.
    pub core: CoreHandle,
    /// Where the deletes and roll-ups run.
    pub writer: StoreWriter,
    /// For counting.
    pub readers: Readers,
}

/// How often the upkeep runs: every 5 minutes, or every second with
/// `HEARTH_UPKEEP_TIMING=fast` (tests).
fn period() -> Duration {
    if std::env::var("HEARTH_UPKEEP_TIMING").is_ok_and(|v| v == "fast") {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(300)
    }
}

/// Runs the upkeep at start and then periodically, until aborted.
pub fn spawn(init: UpkeepInit) -> tokio::task::JoinHandle<()> {
    let stats = init.writer.stats().clone();
    stats.upkeep.budget_bytes.store(init.config.max_db_mb * 1024 * 1024, Ordering::Relaxed);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = run_once(&init).await {
                tracing::warn!(error = %e, "History upkeep failed; it runs again later.");
            }
        }
    })
}

/// One round: roll up, apply retention, keep to the budget, count.
pub async fn run_once(init: &UpkeepInit) -> Result<(), StoreError> {
    let stats = &init.writer.stats().upkeep;
    while init.writer.exec(rollup).await? > 0 {}

    let devices = init.core.snapshot().await.map(|s| s.devices).unwrap_or_default();
    let rules = Rules::new(&init.config, &devices);
    let now = Timestamp::now().as_millis();
    // Each series' rule, resolved once: its id and its retention.
    let kept: Vec<(i64, Keep)> =
        init.readers.with(series).await?.into_iter().map(|s| (s.id, rules.keep(&s.device, &s.feature))).collect();
    let mut removed = 0u64;
    for table in ["history", "history_5m", "history_1h"] {
        // A few hundred series per writer transaction, each series' rows in bounded chunks.
        for group in kept.chunks(200) {
            let group = std::sync::Arc::new(group.to_vec());
            loop {
                let group = group.clone();
                let (n, more) = init
                    .writer
                    .exec(move |c| {
                        let rolled = if table == "history" { watermark(c)? } else { 0 };
                        let (mut n, mut more) = (0, false);
                        for (id, keep) in group.iter() {
                            let cutoff = now - i64::from(keep.days(table)) * DAY_MS;
                            let gone = sweep_series(c, table, *id, cutoff, rolled)?;
                            more |= gone == DELETE_CHUNK as u64;
                            n += gone;
                        }
                        Ok((n, more))
                    })
                    .await?;
                removed += n;
                if !more {
                    break;
                }
            }
        }
    }
    stats.removed_by_retention.fetch_add(removed, Ordering::Relaxed);
    if removed > 0 {
        tracing::info!(rows = removed, "Removed history older than its retention.");
    }
    // Series left with no rows anywhere (a removed device's, once its history has aged out).
    init.writer.write(super::WriteOp::ForgetEmptySeries).await?;

    // The writer checks the budget after each batch; an idle hub gets batches here until it is
    // within its budget (bounded, in case something keeps it above).
    for _ in 0..10_000 {
        init.writer.flush().await?;
        if !stats.budget_more.load(Ordering::Relaxed) {
            break;
        }
    }

    let counts = init
        .readers
        .with(|c| {
            let count = |t: &str| c.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get::<_, i64>(0));
            Ok((count("history")?, count("history_5m")?, count("history_1h")?))
        })
        .await?;
    stats.raw_rows.store(counts.0.max(0) as u64, Ordering::Relaxed);
    stats.five_minute_rows.store(counts.1.max(0) as u64, Ordering::Relaxed);
    stats.hourly_rows.store(counts.2.max(0) as u64, Ordering::Relaxed);
    stats.last_run_ms.store(Timestamp::now().as_millis(), Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("open");
        (dir, conn)
    }

    /// The id of a device's feature's series, made when needed.
    fn series_id(conn: &Connection, device: &str, feature: &str) -> i64 {
        conn.execute(
            "INSERT INTO series (device, feature) VALUES (?1, ?2) ON CONFLICT (device, feature) DO NOTHING",
            params![device, feature],
        )
        .expect("series");
        conn.query_row("SELECT id FROM series WHERE device = ?1 AND feature = ?2", params![device, feature], |r| {
            r.get(0)
        })
        .expect("series id")
    }

    fn add(conn: &Connection, device: &str, feature: &str, kind: i64, value: &str, at: i64) {
        let series = series_id(conn, device, feature);
        conn.execute(
            "INSERT INTO history (series, kind, value, at) VALUES (?1, ?2, ?3, ?4)",
            params![series, kind, value, at],
        )
        .expect("insert");
    }

    fn aggregates(conn: &Connection, table: &str) -> Vec<(String, String, i64, i64, f64, f64, f64)> {
        let mut s = conn
            .prepare(&format!(
                "SELECT s.device, s.feature, a.at, a.n, a.low, a.high, a.total FROM {table} a
                 JOIN series s ON s.id = a.series ORDER BY s.device, s.feature, a.at"
            ))
            .expect("prepare");
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    }

    #[test]
    fn numbers_and_on_off_roll_up_once_each_into_their_periods() {
        let (_dir, conn) = db();
        let t0 = 1_700_000_100_000; // 100 s into a 5-minute period
        add(&conn, "d:1", "temperature", 0, "20.5", t0);
        add(&conn, "d:1", "temperature", 0, "21", t0 + 60_000);
        add(&conn, "d:1", "temperature", 0, "23.5", t0 + 300_000); // the next 5 minutes
        add(&conn, "d:1", "state", 0, "true", t0);
        add(&conn, "d:1", "state", 0, "false", t0 + 1);
        add(&conn, "d:1", "state", 0, "true", t0 + 2);
        add(&conn, "d:1", "mode", 0, "\"heat\"", t0); // text: not rolled up
        add(&conn, "d:1", "action", 1, "\"single\"", t0); // an event: not rolled up
        add(&conn, "d:1", "color", 0, "{\"hue\":1,\"saturation\":2}", t0);
        add(&conn, "d:1", "broken", 0, "not json", t0);
        assert_eq!(rollup(&conn).expect("rollup"), 10);
        assert_eq!(rollup(&conn).expect("again"), 0, "caught up: nothing counts twice");
        let p = (t0 / 300_000) * 300_000;
        assert_eq!(
            aggregates(&conn, "history_5m"),
            vec![
                ("d:1".into(), "state".into(), p, 3, 0.0, 1.0, 2.0),
                ("d:1".into(), "temperature".into(), p, 2, 20.5, 21.0, 41.5),
                ("d:1".into(), "temperature".into(), p + 300_000, 1, 23.5, 23.5, 23.5),
            ]
        );
        let h = (t0 / 3_600_000) * 3_600_000;
        assert_eq!(
            aggregates(&conn, "history_1h"),
            vec![
                ("d:1".into(), "state".into(), h, 3, 0.0, 1.0, 2.0),
                ("d:1".into(), "temperature".into(), h, 3, 20.5, 23.5, 65.0),
            ]
        );
        // A row arriving later for an old period merges into it.
        add(&conn, "d:1", "temperature", 0, "19", t0 + 10);
        assert_eq!(rollup(&conn).expect("late"), 1);
        let five = aggregates(&conn, "history_5m");
        assert_eq!(five[1], ("d:1".into(), "temperature".into(), p, 3, 19.0, 21.0, 60.5));
    }

    #[test]
    fn a_long_backlog_rolls_up_in_bounded_chunks_with_the_same_result() {
        let (_dir, conn) = db();
        let n = ROLLUP_CHUNK * 2 + 7;
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..n {
            add(&conn, "d:1", "power", 0, &format!("{}", i % 10), 1_700_000_000_000 + i * 1_000);
        }
        conn.execute_batch("COMMIT").expect("commit");
        let mut rounds = Vec::new();
        loop {
            let done = rollup(&conn).expect("rollup");
            if done == 0 {
                break;
            }
            rounds.push(done);
        }
        assert_eq!(rounds, vec![ROLLUP_CHUNK, ROLLUP_CHUNK, 7]);
        let (count, total): (i64, f64) = conn
            .query_row("SELECT SUM(n), SUM(total) FROM history_5m", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("sum");
        assert_eq!(count, n);
        let expected: i64 = (0..n).map(|i| i % 10).sum();
        assert_eq!(total, expected as f64);
    }

    #[test]
    fn each_device_and_feature_is_one_series() {
        let (_dir, conn) = db();
        for (d, f) in [("b:2", "x"), ("a:1", "y"), ("a:1", "x"), ("a:1", "x"), ("b:2", "x")] {
            add(&conn, d, f, 0, "1", 1);
        }
        let found: Vec<(String, String)> =
            series(&conn).expect("series").into_iter().map(|s| (s.device, s.feature)).collect();
        let want: Vec<(String, String)> =
            [("b:2", "x"), ("a:1", "y"), ("a:1", "x")].iter().map(|(d, f)| ((*d).into(), (*f).into())).collect();
        assert_eq!(found, want, "in the order they first appeared");
    }

    fn device(id: &str, features: &[(&str, Capability)]) -> hearth_sdk::Device {
        let id = hearth_sdk::DeviceId::parse(id).expect("id");
        let features = features
            .iter()
            .map(|(k, c)| {
                hearth_sdk::Feature::new(
                    k,
                    *c,
                    hearth_sdk::ValueType::Number { min: None, max: None, step: None },
                    hearth_sdk::Access::READ_ONLY,
                )
            })
            .collect();
        hearth_sdk::Device::from_descriptor(hearth_sdk::DeviceDescriptor::new(id, "x", features))
    }

    #[test]
    fn rules_go_from_general_to_capability_to_device_to_feature() {
        let config: HistoryConfig = toml::from_str(
            r#"
            raw_days = 10
            [capabilities.power]
            raw_days = 2
            hourly_days = 5
            [devices."d:plug"]
            five_minute_days = 3
            [devices."d:plug/power"]
            raw_days = 1
            "#,
        )
        .expect("config");
        let devices = [
            device("d:plug", &[("power", Capability::Power), ("energy", Capability::Energy)]),
            device("d:meter", &[("power", Capability::Power)]),
        ];
        let rules = Rules::new(&config, &devices);
        assert_eq!(rules.keep("d:meter", "power"), Keep { raw: 2, five_minute: 90, hourly: 5 });
        assert_eq!(rules.keep("d:plug", "energy"), Keep { raw: 10, five_minute: 3, hourly: 730 });
        assert_eq!(rules.keep("d:plug", "power"), Keep { raw: 1, five_minute: 3, hourly: 5 });
        // A removed device's history has no capability: the general rule.
        assert_eq!(rules.keep("d:gone", "power"), Keep { raw: 10, five_minute: 90, hourly: 730 });
    }

    #[test]
    fn retention_removes_old_rows_but_never_raw_rows_not_yet_rolled_up() {
        let (_dir, conn) = db();
        let now = 1_800_000_000_000;
        add(&conn, "d:1", "power", 0, "5", now - 3 * DAY_MS);
        add(&conn, "d:1", "power", 0, "6", now - DAY_MS / 2);
        let power = series_id(&conn, "d:1", "power");
        let rolled = watermark(&conn).expect("watermark");
        assert_eq!(sweep_series(&conn, "history", power, now - DAY_MS, rolled).expect("sweep"), 0, "not rolled up");
        rollup(&conn).expect("rollup");
        let rolled = watermark(&conn).expect("watermark");
        assert_eq!(sweep_series(&conn, "history", power, now - DAY_MS, rolled).expect("sweep"), 1);
        let left: Vec<String> = conn
            .prepare("SELECT value FROM history")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        assert_eq!(left, vec!["6".to_owned()]);
        assert_eq!(sweep_series(&conn, "history_5m", power, now - DAY_MS, 0).expect("5m"), 1);
        assert_eq!(aggregates(&conn, "history_5m").len(), 1, "the recent period stays");
    }

    #[test]
    fn over_the_budget_the_oldest_raw_history_goes_and_state_stays() {
        let (_dir, conn) = db();
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..40_000 {
            add(&conn, "d:1", "power", 0, &format!("{i}"), 1_700_000_000_000 + i);
        }
        conn.execute(
            "INSERT INTO state (device, feature, value, changed_at, reported_at) VALUES ('d:1', 'power', '39999', 1, 1)",
            [],
        )
        .expect("state");
        conn.execute_batch("COMMIT").expect("commit");
        let used = used_bytes(&conn).expect("used");
        assert!(used > 1_000_000, "{used}");
        // A budget of about the current size: above 80 %, so it goes down to 70 %.
        let budget = used;
        let mut removed = 0;
        loop {
            let step = budget_step(&conn, budget).expect("step");
            assert!(!step.stuck);
            removed += step.removed;
            if !step.more {
                break;
            }
        }
        assert!(removed > 0);
        assert!(used_bytes(&conn).expect("used") <= budget / 10 * 7, "under the low mark");
        let file: i64 = conn
            .query_row("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", [], |r| r.get(0))
            .expect("file");
        assert!(
            file as u64 <= budget / 10 * 8,
            "the freed pages went back to the file system: {file} of {budget} bytes"
        );
        let oldest: i64 =
            conn.query_row("SELECT MIN(CAST(value AS INTEGER)) FROM history", [], |r| r.get(0)).expect("min");
        assert_eq!(oldest as u64, removed, "the oldest went first");
        let state: String =
            conn.query_row("SELECT value FROM state WHERE device = 'd:1'", [], |r| r.get(0)).expect("state");
        assert_eq!(state, "39999");
        // Within the budget, nothing more goes.
        assert_eq!(budget_step(&conn, budget).expect("step"), BudgetStep::default());
    }

    #[test]
    fn with_no_history_left_the_budget_says_it_is_stuck() {
        let (_dir, conn) = db();
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..20_000 {
            conn.execute(
                "INSERT INTO audit_log (at, actor, action, ip, say) VALUES (?1, 'ada', 'auth.login', '127.0.0.1', '{}')",
                [i],
            )
            .expect("audit");
        }
        conn.execute_batch("COMMIT").expect("commit");
        let step = budget_step(&conn, used_bytes(&conn).expect("used")).expect("step");
        assert!(step.stuck);
        assert_eq!(step.removed, 0);
        let audit: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).expect("count");
        assert_eq!(audit, 20_000, "only history is ever removed");
    }
}
