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
///   `backups/hearth-<time>-before-v<new>.db` (`VACUUM INTO`, a consistent snapshot);
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
    }
    migrations::migrate(&mut conn, &path)?;
    Ok((conn, path))
}

/// Why the database file cannot be trusted, if it cannot.
fn damaged(path: &Path) -> Option<String> {
    let conn = match Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE) {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(10));
    let rows: Result<Vec<String>, rusqlite::Error> =
        conn.prepare("PRAGMA quick_check").and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match rows {
        Ok(r) if r.len() == 1 && r[0] == "ok" => None,
        Ok(r) => Some(r.into_iter().take(5).collect::<Vec<_>>().join("; ")),
        Err(e) => Some(e.to_string()),
    }
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
