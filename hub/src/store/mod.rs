//! SQLite storage: opening the database, numbered migrations, loading the registry at start,
//! read queries, and the one writer thread.
//!
//! Invariant: within the hub, only the writer thread ([`writer`]) writes. Readers open their own
//! read-only connections (WAL lets them read while the writer commits). Command-line tools that
//! run beside the hub (`hearth user`, `hearth token`) write through SQLite's own locking.

pub mod automations;
pub mod migrations;
pub mod upkeep;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hearth_sdk::{Area, Device, DeviceDescriptor, DeviceId, FeatureState, Timestamp, Value};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

pub use writer::{StoreWriter, WriteOp};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "hearth.db";

/// A storage error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON document could not be read.
    #[error("stored data is damaged: {0}")]
    Json(#[from] serde_json::Error),
    /// The database file could not be opened.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The database was written by a newer Hearth.
    #[error("database {path} has schema version {found}, newer than this hearth knows ({known}); upgrade hearth")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// The writer thread is gone.
    #[error("the database writer has stopped")]
    WriterGone,
    /// The writer reported a failed write.
    #[error("database write failed: {0}")]
    Write(String),
}

/// Opens a connection with the hub's pragmas (WAL, full sync, foreign keys, busy timeout).
pub fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // `auto_vacuum` takes effect only on a new database (before its first table): there, pages
    // freed by history upkeep can be given back to the file system.
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA journal_size_limit = 4194304;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// Opens the database for the running hub, safely:
///
/// - a database that fails SQLite's `quick_check` (or is not a database at all) is moved aside
///   as `hearth.db.damaged-<time>` (with its `-wal` and `-shm`), reported loudly, and the hub
///   starts on a fresh one: a household's home keeps working, and the damaged file is kept for
///   recovery;
/// - before migrations change an existing database, a copy of it is written to
///   `backups/hearth-<time>-before-v<new>.db` (`VACUUM INTO`, a consistent snapshot); the
///   newest [`PRE_UPGRADE_KEPT`] such copies are kept, older ones removed;
/// - each migration runs in a transaction of its own.
pub fn open_for_hub(data_dir: &Path) -> Result<(Connection, PathBuf), StoreError> {
    open_for_hub_recovering(data_dir, &mut |_| None)
}

/// [`open_for_hub`], where a damaged database, once moved aside, may be replaced by `recover`:
/// called with the data directory, it puts a good `hearth.db` there (from a backup) and says
/// what it restored, or returns `None` to start on a fresh database.
pub fn open_for_hub_recovering(
    data_dir: &Path,
    recover: &mut dyn FnMut(&Path) -> Option<String>,
) -> Result<(Connection, PathBuf), StoreError> {
    let path = data_dir.join(DB_FILE);
    if path.exists()
        && let Some(problem) = damaged(&path)
    {
        let stamp = Timestamp::now().to_string().replace([':', '.'], "-");
        let aside = data_dir.join(format!("{DB_FILE}.damaged-{stamp}"));
        for suffix in ["", "-wal", "-shm"] {
            let from = PathBuf::from(format!("{}{suffix}", path.display()));
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                std::fs::rename(&from, &to)
                    .map_err(|e| StoreError::Write(format!("cannot move the damaged database aside: {e}")))?;
            }
        }
        match recover(data_dir) {
            Some(restored) => tracing::error!(
                path = %path.display(),
                moved_to = %aside.display(),
                %problem,
                %restored,
                "THE DATABASE IS DAMAGED. It was moved aside and the hub starts on the last backup: \
                 changes since that backup are lost. The damaged file is kept for recovery."
            ),
            None => tracing::error!(
                path = %path.display(),
                moved_to = %aside.display(),
                %problem,
                "THE DATABASE IS DAMAGED. It was moved aside and the hub starts on a fresh, empty one. \
                 Restore a backup (see backups/ in the data directory) or send the damaged file for recovery."
            ),
        }
    }
    let mut conn = open_connection(&path)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > 0 && version < migrations::LATEST {
        let dir = data_dir.join("backups");
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Write(format!("cannot create {}: {e}", dir.display())))?;
        let stamp = Timestamp::now().to_string().replace([':', '.'], "-");
        let copy = dir.join(format!("hearth-{stamp}-before-v{}.db", migrations::LATEST));
        conn.execute("VACUUM INTO ?1", [copy.to_string_lossy()])?;
        tracing::info!(from = version, to = migrations::LATEST, backup = %copy.display(), "Copied the database before upgrading its schema.");
        prune_pre_upgrade_copies(&dir, PRE_UPGRADE_KEPT);
    }
    migrations::migrate(&mut conn, &path)?;
    Ok((conn, path))
}

/// How many copies made before schema upgrades are kept in `backups/` (the newest).
pub const PRE_UPGRADE_KEPT: usize = 2;

/// Whether `name` is a copy made before a schema upgrade:
/// `hearth-YYYY-MM-DDTHH-MM-SS-mmmZ-before-v<N>.db`.
pub fn is_pre_upgrade_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("hearth-").and_then(|r| r.strip_suffix(".db")) else { return false };
    let Some((stamp, version)) = rest.split_once("-before-v") else { return false };
    crate::backup::schedule::is_file_stamp(stamp) && !version.is_empty() && version.bytes().all(|c| c.is_ascii_digit())
}

/// Removes the copies made before schema upgrades in `dir` beyond the newest `keep` (their names
/// sort by time); nothing else there is touched. Each copy is a whole database, and a hub
/// upgraded often would otherwise fill the disk with them.
pub fn prune_pre_upgrade_copies(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut copies: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_pre_upgrade_name(n))
        .collect();
    copies.sort_by(|a, b| b.cmp(a));
    for old in copies.iter().skip(keep) {
        let path = dir.join(old);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(file = %path.display(), keep, "Removed an old copy made before an upgrade."),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "An old copy made before an upgrade could not be removed.")
            }
        }
    }
}

/// Tables whose check waits until the hub serves: history grows with time, and checking a year
/// of it before starting took 7 of a 7.8 s start-up (10,000 devices, 23 million rows, a 2-core
/// machine). Everything else (devices, state, automations, accounts) is checked before.
const CHECKED_AFTER_START: [&str; 3] = ["history", "history_5m", "history_1h"];

/// The file beside the database that asks the next start for a whole check: written when the
/// check after start finds damage the hub could not deal with while running.
pub const CHECK_NEXT_START: &str = "hearth.db.check-next-start";

/// Why the database file cannot be trusted, if it cannot. Checks every table but history's, or
/// the whole file when the last check after start asked for it ([`CHECK_NEXT_START`]).
fn damaged(path: &Path) -> Option<String> {
    let conn = match Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE) {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
    let marker = path.with_file_name(CHECK_NEXT_START);
    if marker.exists() {
        let problem = quick_check(&conn, None);
        // Checked whole now: what it found is dealt with by the caller either way.
        let _ = std::fs::remove_file(&marker);
        return problem;
    }
    let tables: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    let tables = match tables {
        Ok(t) => t,
        Err(e) => return Some(e.to_string()),
    };
    tables.iter().filter(|t| !CHECKED_AFTER_START.contains(&t.as_str())).find_map(|t| quick_check(&conn, Some(t)))
}

/// SQLite's `quick_check` of one table and its indexes, or of the whole file; what it found,
/// if anything.
fn quick_check(conn: &Connection, table: Option<&str>) -> Option<String> {
    let sql = match table {
        // A table name from sqlite_schema, quoted as an identifier.
        Some(t) => format!("PRAGMA quick_check(\"{}\")", t.replace('"', "\"\"")),
        None => "PRAGMA quick_check".to_owned(),
    };
    let rows: Result<Vec<String>, rusqlite::Error> =
        conn.prepare(&sql).and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match rows {
        Ok(r) if r.len() == 1 && r[0] == "ok" => None,
        Ok(r) => Some(r.into_iter().take(5).collect::<Vec<_>>().join("; ")),
        Err(e) => Some(e.to_string()),
    }
}

/// The whole-file check, after the hub serves: on its own read-only connection and thread, so
/// it holds up nothing. Damage found is reported loudly and leaves [`CHECK_NEXT_START`] behind,
/// so the next start checks the whole file and moves it aside (restoring the newest backup, as
/// for damage found at start). Returns the thread, which ends with what it found.
pub fn check_after_start(path: PathBuf) -> std::io::Result<std::thread::JoinHandle<Option<String>>> {
    std::thread::Builder::new().name("db-check".into()).spawn(move || {
        let conn = match Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Could not open the database to check it.");
                return None;
            }
        };
        let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
        let started = std::time::Instant::now();
        let problem = quick_check(&conn, None);
        match &problem {
            None => tracing::info!(
                path = %path.display(),
                ms = started.elapsed().as_millis() as u64,
                "The database passed its whole check."
            ),
            Some(problem) => {
                let marker = path.with_file_name(CHECK_NEXT_START);
                let written = std::fs::write(&marker, format!("{problem}\n"));
                tracing::error!(
                    path = %path.display(),
                    %problem,
                    marker_written = written.is_ok(),
                    "THE DATABASE IS DAMAGED (found by the check after start). The hub keeps running; \
                     restart it to move the damaged file aside and start on the newest backup \
                     (see backups/ in the data directory)."
                );
            }
        }
        problem
    })
}

/// Opens the database in `data_dir` (creating both if needed) and brings its schema up to date.
pub fn open_and_migrate(data_dir: &Path) -> Result<(Connection, PathBuf), StoreError> {
    let path = data_dir.join(DB_FILE);
    let mut conn = open_connection(&path)?;
    migrations::migrate(&mut conn, &path)?;
    Ok((conn, path))
}

/// What the hub loads at start: devices with their user names, areas and last state.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Areas, by id.
    pub areas: BTreeMap<String, Area>,
    /// Devices, availability unknown until their adapters report.
    pub devices: Vec<Device>,
}

/// Loads devices, areas and the latest state.
pub fn load(conn: &Connection) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    let mut stmt = conn.prepare("SELECT id, name, sort FROM areas")?;
    let areas = stmt.query_map([], |r| Ok(Area { id: r.get(0)?, name: r.get(1)?, order: r.get(2)? }))?;
    for a in areas {
        let a = a?;
        loaded.areas.insert(a.id.clone(), a);
    }
    let mut state: BTreeMap<String, BTreeMap<String, FeatureState>> = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT device, feature, value, changed_at, reported_at FROM state")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?))
    })?;
    for row in rows {
        let (device, feature, value, changed, reported) = row?;
        let value: Value = serde_json::from_str(&value)?;
        state.entry(device).or_default().insert(
            feature,
            FeatureState {
                value,
                changed_at: Timestamp::from_millis(changed),
                reported_at: Timestamp::from_millis(reported),
            },
        );
    }
    let mut stmt = conn.prepare("SELECT descriptor, name, name_by_user, area FROM devices ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, Option<String>>(3)?))
    })?;
    for row in rows {
        let (descriptor, name, name_by_user, area) = row?;
        let descriptor: DeviceDescriptor = serde_json::from_str(&descriptor)?;
        let mut device = Device::from_descriptor(descriptor);
        device.name = name;
        device.name_by_user = name_by_user;
        device.area = area;
        if let Some(s) = state.remove(device.id.as_str()) {
            device.last_seen = s.values().map(|f| f.reported_at).max();
            device.state = s;
        }
        loaded.devices.push(device);
    }
    Ok(loaded)
}

/// One entry of a device's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    /// The feature.
    pub feature: String,
    /// `state` for a value change, `event` for a momentary event.
    pub kind: &'static str,
    /// The value, or the event name for events.
    pub value: serde_json::Value,
    /// When.
    pub at: Timestamp,
    /// Why: `null` for a device's own report (origin device, no parent), which history stores
    /// without its context (issue 12), and for rows stored without one.
    pub context: Option<serde_json::Value>,
}

/// A history query.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this feature.
    pub feature: Option<String>,
    /// From this time (inclusive).
    pub from: Option<Timestamp>,
    /// Up to this time (inclusive).
    pub to: Option<Timestamp>,
    /// At most this many entries, the newest ones.
    pub limit: usize,
}

/// Read-only connections for API reads, reused between requests.
#[derive(Debug, Clone)]
pub struct Readers {
    path: PathBuf,
    pool: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes the database takes on disk: its file and its write-ahead log.
    pub fn bytes_on_disk(&self) -> u64 {
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        size(self.path.clone()) + size(PathBuf::from(format!("{}-wal", self.path.display())))
    }

    /// Readers of the database at `path`.
    pub fn new(path: PathBuf) -> Readers {
        Readers { path, pool: Arc::new(Mutex::new(Vec::new())) }
    }

    /// Runs `f` with a read-only connection on a blocking thread.
    pub async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match conn {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &this.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(|source| StoreError::Open { path: this.path.clone(), source })?;
                    c.busy_timeout(std::time::Duration::from_secs(10))?;
                    c
                }
            };
            let out = f(&conn);
            if let Ok(mut p) = this.pool.lock()
                && p.len() < 4
            {
                p.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Write(format!("reader task failed: {e}")))?
    }
}

/// Reads a device's history, oldest first; the newest `limit` entries when there are more.
/// Returns the entries and whether older ones were left out.
pub fn history(
    conn: &Connection,
    device: &DeviceId,
    q: &HistoryQuery,
) -> Result<(Vec<HistoryEntry>, bool), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.feature, h.kind, h.value, h.at, h.context FROM series s JOIN history h ON h.series = s.id
         WHERE s.device = ?1 AND (?2 IS NULL OR s.feature = ?2) AND h.at >= ?3 AND h.at <= ?4
         ORDER BY h.at DESC, h.id DESC LIMIT ?5",
    )?;
    let from = q.from.map_or(i64::MIN, Timestamp::as_millis);
    let to = q.to.map_or(i64::MAX, Timestamp::as_millis);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX).saturating_add(1);
    let rows = stmt.query_map(params![device.as_str(), q.feature, from, to, limit], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (feature, kind, value, at, context) = row?;
        out.push(HistoryEntry {
            feature,
            kind: if kind == 0 { "state" } else { "event" },
            value: serde_json::from_str(&value)?,
            at: Timestamp::from_millis(at),
            context: context.map(|c| serde_json::from_str(&c)).transpose()?,
        });
    }
    let truncated = out.len() > q.limit;
    out.truncate(q.limit);
    out.reverse();
    Ok((out, truncated))
}

/// Reads one value from the `meta` table.
pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose history index (and nothing else) is overwritten with garbage.
    fn with_damaged_history(dir: &Path) -> PathBuf {
        let (conn, path) = open_and_migrate(dir).expect("open");
        conn.execute("INSERT INTO series (id, device, feature) VALUES (1, 'demo:lamp', 'brightness')", [])
            .expect("series");
        for i in 0..20_000i64 {
            conn.execute("INSERT INTO history (series, kind, value, at) VALUES (1, 0, ?1, ?2)", [i % 100, i])
                .expect("history");
        }
        conn.execute("INSERT INTO areas (id, name, sort) VALUES ('kitchen', 'Kitchen', 0)", []).expect("area");
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).expect("page size");
        let root: i64 = conn
            .query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'history_series_at'", [], |r| r.get(0))
            .expect("root page");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").expect("checkpoint");
        drop(conn);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = usize::try_from((root - 1) * page_size).expect("offset");
        let size = usize::try_from(page_size).expect("page size");
        for b in &mut bytes[at..at + size] {
            *b = 0x5a;
        }
        std::fs::write(&path, bytes).expect("write");
        path
    }

    #[test]
    fn damage_in_history_is_found_after_start_and_makes_the_next_start_check_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = with_damaged_history(dir.path());

        assert_eq!(damaged(&path), None, "history waits for the check after start");
        let found = check_after_start(path.clone()).expect("thread").join().expect("check");
        assert!(found.is_some(), "the whole check finds the damaged index");
        assert!(dir.path().join(CHECK_NEXT_START).exists(), "and asks the next start for a whole check");

        let at_next_start = damaged(&path);
        assert!(at_next_start.is_some(), "the next start checks everything and finds it");
        assert!(!dir.path().join(CHECK_NEXT_START).exists(), "the request is used up");
    }

    #[test]
    fn only_the_newest_two_copies_made_before_upgrades_are_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&backups).expect("backups");
        let old = ["hearth-2020-01-01T00-00-00-000Z-before-v9.db", "hearth-2021-01-01T00-00-00-000Z-before-v10.db"];
        let others = ["hearth-2019-01-01T00-00-00-000Z.hearth-backup", "hearth-before-v9.db", "notes.txt"];
        for name in old.iter().chain(&others) {
            std::fs::write(backups.join(name), b"x").expect("write");
        }
        for _ in 0..2 {
            // An older schema (7, before the cloud outbox), as a hub of that version left it.
            let (conn, _) = open_and_migrate(dir.path()).expect("open");
            conn.execute_batch(
                "DROP TABLE outbox; DROP TABLE outbox_size; DROP TABLE history_5m; DROP TABLE history_1h;
                 DROP TABLE history; DROP TABLE series;
                 CREATE TABLE history (id INTEGER PRIMARY KEY, device TEXT NOT NULL, feature TEXT NOT NULL,
                   kind INTEGER NOT NULL, value TEXT NOT NULL, at INTEGER NOT NULL, context TEXT);
                 CREATE INDEX history_device_at ON history (device, feature, at);
                 PRAGMA user_version = 7;",
            )
            .expect("schema 7");
            drop(conn);
            let (conn, _) = open_for_hub(dir.path()).expect("upgrade");
            drop(conn);
        }
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let copies: Vec<&String> = names.iter().filter(|n| is_pre_upgrade_name(n)).collect();
        assert_eq!(copies.len(), 2, "{names:?}");
        assert!(copies.iter().all(|n| !old.contains(&n.as_str())), "the two upgrades' copies stay: {names:?}");
        for other in others {
            assert!(names.iter().any(|n| n == other), "{other} is not a copy made before an upgrade: {names:?}");
        }
    }

    #[test]
    fn a_sound_database_passes_both_checks_and_leaves_no_request() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, path) = open_and_migrate(dir.path()).expect("open");
        drop(conn);
        assert_eq!(damaged(&path), None);
        assert_eq!(check_after_start(path).expect("thread").join().expect("check"), None);
        assert!(!dir.path().join(CHECK_NEXT_START).exists());
    }
}
