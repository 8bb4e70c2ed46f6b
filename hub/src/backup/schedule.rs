//! The hub's scheduled backups (`[backup]`), and what the API says of them.
//!
//! A tokio task sleeps until the next backup is due and writes it on a blocking thread:
//! `hearth-<UTC time>.hearth-backup` in the backup directory, then removes the oldest of its own
//! files beyond `keep`. Its own files are those named exactly so; pre-migration copies
//! (`hearth-<time>-before-v<N>.db`, pruned by the store where it makes them) and anything else
//! there are never touched. The first
//! backup is due one interval after the newest one there (a restart does not add one), or a
//! quarter of an hour after the first start; an overdue one runs a minute after start.
//!
//! `HEARTH_BACKUP_INTERVAL_SECS` (seconds, for tests) overrides `interval_hours`.
//!
//! The settings and the last result live as long as the process, in [`hub`], for the API's
//! download and status routes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hearth_sdk::Timestamp;
use serde::Serialize;

use super::{BackupError, EXTENSION, Passphrase, Sources, Written, write_file};
use crate::config::BackupConfig;

/// The backups of this hub: where they go, how often, and how the last one went.
#[derive(Debug)]
pub struct HubBackups {
    /// What a backup is taken of.
    pub sources: Sources,
    /// `[backup]`.
    pub config: BackupConfig,
    /// The backup directory.
    pub dir: PathBuf,
    /// Time between backups.
    pub interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    last_success: Option<Made>,
    last_error: Option<Failed>,
    next_at: Option<Timestamp>,
    made: u64,
}

/// A backup that was written.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    /// When it finished.
    pub at: Timestamp,
    /// The file.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// How long it took.
    pub seconds: f64,
}

/// A backup that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failed {
    /// When.
    pub at: Timestamp,
    /// Why, and what to do.
    pub message: String,
}

/// One of the hub's backup files.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// Its name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
}

/// `GET /api/v1/backup/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether the hub makes backups by itself.
    pub enabled: bool,
    /// The backup directory.
    pub dir: String,
    /// `[backup] interval_hours`.
    pub interval_hours: f64,
    /// Seconds between backups, as applied.
    pub interval_secs: f64,
    /// `[backup] keep`.
    pub keep: u32,
    /// Whether they are encrypted.
    pub encrypted: bool,
    /// The last one written since the hub started.
    pub last_success: Option<Made>,
    /// The last failure since the hub started (cleared by a success).
    pub last_error: Option<Failed>,
    /// When the next one is due.
    pub next_at: Option<Timestamp>,
    /// How many were written since the hub started.
    pub made_since_start: u64,
    /// The hub's backup files in the directory, newest first.
    pub files: Vec<Listed>,
}

static HUB: Mutex<Option<Arc<HubBackups>>> = Mutex::new(None);

/// The running hub's backups (`None` outside a hub).
pub fn hub() -> Option<Arc<HubBackups>> {
    HUB.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Whether `name` is one of the scheduled backups' names: `hearth-YYYY-MM-DDTHH-MM-SS-mmmZ.hearth-backup`.
pub fn is_scheduled_name(name: &str) -> bool {
    let Some(stamp) = name.strip_prefix("hearth-").and_then(|r| r.strip_suffix(&format!(".{EXTENSION}"))) else {
        return false;
    };
    is_file_stamp(stamp)
}

/// Whether `stamp` is a time as file names carry it: `YYYY-MM-DDTHH-MM-SS-mmmZ`.
pub fn is_file_stamp(stamp: &str) -> bool {
    let b = stamp.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 | 13 | 16 | 19 => c == b'-',
            10 => c == b'T',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Puts the newest scheduled backup in `dir` that verifies into `data_dir` as its database (and
/// its secrets key, when the data directory has none), for a hub whose database was found damaged
/// and moved aside. Returns which archive it restored, or `None` (logged) when none would do.
pub fn recover_database(config: &BackupConfig, data_dir: &Path) -> Option<String> {
    if !config.restore_on_damage {
        return None;
    }
    let dir = config.dir.clone().unwrap_or_else(|| data_dir.join("backups"));
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .filter(|e| is_scheduled_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    // The names sort by time.
    archives.sort();
    let passphrase = match config.passphrase_file.as_deref().map(Passphrase::from_file).transpose() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "Cannot restore the last backup: its passphrase cannot be read.");
            return None;
        }
    };
    for archive in archives.iter().rev() {
        let staging = data_dir.join(format!(".recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        if std::fs::create_dir_all(&staging).is_err() {
            return None;
        }
        let verified = super::verify(archive, passphrase.as_ref(), &mut || None, &staging);
        let placed = verified.and_then(|v| {
            if let Err(e) = super::restore::record_restore(&staging.join(super::DB_FILE), archive, &v.manifest, true) {
                tracing::warn!(archive = %archive.display(), error = %e, "This restore could not be recorded in the audit log.");
            }
            std::fs::rename(staging.join(super::DB_FILE), data_dir.join(super::DB_FILE))
                .map_err(|e| BackupError::io("cannot put the restored database in place", e))?;
            let key = data_dir.join(crate::secrets::KEY_FILE);
            if !key.exists() && staging.join(crate::secrets::KEY_FILE).exists() {
                let _ = std::fs::rename(staging.join(crate::secrets::KEY_FILE), &key);
            }
            Ok(v)
        });
        let _ = std::fs::remove_dir_all(&staging);
        match placed {
            Ok(v) => {
                return Some(format!("{} (made {})", archive.display(), v.manifest.created_at));
            }
            Err(e) => {
                tracing::warn!(archive = %archive.display(), error = %e, "This backup cannot be restored; trying an older one.")
            }
        }
    }
    tracing::error!(dir = %dir.display(), "No backup to restore the damaged database from.");
    None
}

/// What backups take on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskUse {
    /// The backup directory.
    pub dir: String,
    /// Files counted.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What the files in the backup directory `dir` take (scheduled archives, copies made before
/// schema upgrades, anything else put there; not what is in its subdirectories), with the
/// copies made before upgrades in `<data_dir>/backups` when that is another directory (they
/// always go there). Reads directories: call it off the async runtime.
pub fn disk_use(dir: &Path, data_dir: &Path) -> DiskUse {
    let mut used = DiskUse { dir: dir.display().to_string(), ..DiskUse::default() };
    let mut count = |d: &Path, only: &dyn Fn(&str) -> bool| {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if let Ok(m) = e.metadata()
                && m.is_file()
                && only(&e.file_name().to_string_lossy())
            {
                used.files += 1;
                used.bytes += m.len();
            }
        }
    };
    count(dir, &|_| true);
    let upgrades = data_dir.join("backups");
    let same = match (dir.canonicalize(), upgrades.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => dir == upgrades,
    };
    if !same {
        count(&upgrades, &crate::store::is_pre_upgrade_name);
    }
    used
}

/// The scheduled backup's name for a time.
pub fn scheduled_name(at: Timestamp) -> String {
    format!("hearth-{}.{EXTENSION}", at.to_string().replace([':', '.'], "-"))
}

impl HubBackups {
    /// The settings for a hub on `data_dir` reading `config_file`.
    pub fn new(config: BackupConfig, data_dir: &Path, config_file: Option<PathBuf>) -> HubBackups {
        let dir = config.dir.clone().unwrap_or_else(|| data_dir.join("backups"));
        let interval = std::env::var("HEARTH_BACKUP_INTERVAL_SECS")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(config.interval_hours * 3600.0);
        HubBackups {
            sources: Sources { data_dir: data_dir.to_path_buf(), config_file },
            dir,
            interval: Duration::from_secs_f64(interval),
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hub's own backup files in the directory, newest first (names sort by time).
    pub fn files(&self) -> Vec<Listed> {
        let mut out: Vec<Listed> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
                        is_scheduled_name(&name).then_some(Listed { name, bytes: meta.len() })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| b.name.cmp(&a.name));
        out
    }

    /// What backups take on disk (see [`disk_use`]; reads directories).
    pub fn disk_use(&self) -> DiskUse {
        disk_use(&self.dir, &self.sources.data_dir)
    }

    /// The status (reads the directory: call it off the async runtime).
    pub fn status(&self) -> Status {
        let s = self.state().clone();
        Status {
            enabled: self.config.enabled,
            dir: self.dir.display().to_string(),
            interval_hours: self.config.interval_hours,
            interval_secs: self.interval.as_secs_f64(),
            keep: self.config.keep,
            encrypted: self.config.passphrase_file.is_some(),
            last_success: s.last_success,
            last_error: s.last_error,
            next_at: if self.config.enabled { s.next_at } else { None },
            made_since_start: s.made,
            files: self.files(),
        }
    }

    /// Writes one backup now and removes the oldest beyond `keep`. Blocking.
    pub fn run_once(&self, cancel: &AtomicBool) -> Result<Written, BackupError> {
        if !self.dir.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&self.dir).map_err(|e| {
                BackupError::io(format!("cannot create the backup directory {}", self.dir.display()), e)
            })?;
        }
        // What an interrupted backup of ours left behind.
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some((base, _)) = name.split_once(".partial-")
                    && is_scheduled_name(base)
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let passphrase = self.config.passphrase_file.as_deref().map(Passphrase::from_file).transpose()?;
        let path = self.dir.join(scheduled_name(Timestamp::now()));
        let written = write_file(&self.sources, &path, passphrase.as_ref(), cancel)?;
        for old in self.files().into_iter().skip(self.config.keep as usize) {
            let p = self.dir.join(&old.name);
            match std::fs::remove_file(&p) {
                Ok(()) => {
                    tracing::info!(file = %p.display(), keep = self.config.keep, "Removed an old scheduled backup.")
                }
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "An old scheduled backup could not be removed.")
                }
            }
        }
        Ok(written)
    }

    /// When the first backup is due: one interval after the newest one there, at the earliest
    /// a minute from now; a quarter of an hour from now when there is none (never later than
    /// one interval).
    fn first_wait(&self) -> Duration {
        let newest = std::fs::read_dir(&self.dir).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| is_scheduled_name(&e.file_name().to_string_lossy()))
                .filter_map(|e| e.metadata().ok()?.modified().ok())
                .max()
        });
        let soonest = self.interval.min(Duration::from_secs(60));
        match newest {
            Some(t) => {
                let due = t + self.interval;
                due.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).max(soonest)
            }
            None => self.interval.min(Duration::from_secs(15 * 60)),
        }
    }

    fn set_next(&self, wait: Duration) {
        self.state().next_at = Some(Timestamp::now().plus_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)));
    }

    fn record(&self, result: Result<Written, BackupError>) {
        let mut s = self.state();
        match result {
            Ok(w) => {
                tracing::info!(
                    file = %w.path.display(),
                    bytes = w.bytes,
                    secs = w.elapsed.as_secs_f64(),
                    encrypted = w.encrypted,
                    "Wrote a scheduled backup."
                );
                s.made += 1;
                s.last_error = None;
                s.last_success = Some(Made {
                    at: Timestamp::now(),
                    file: w.path.display().to_string(),
                    bytes: w.bytes,
                    seconds: w.elapsed.as_secs_f64(),
                });
            }
            Err(BackupError::Cancelled) => {}
            Err(e) => {
                tracing::error!(error = %e, dir = %self.dir.display(), "A scheduled backup failed.");
                s.last_error = Some(Failed { at: Timestamp::now(), message: e.to_string() });
            }
        }
    }
}

/// What the hub needs to back itself up.
#[derive(Debug)]
pub struct ScheduleInit {
    /// `[backup]`.
    pub config: BackupConfig,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The configuration file the hub read, if any.
    pub config_file: Option<PathBuf>,
}

/// The scheduled backups' task; [`Scheduled::stop`] ends it (a backup being written stops and
/// its temporary file is removed).
#[derive(Debug)]
pub struct Scheduled {
    task: Option<tokio::task::JoinHandle<()>>,
    cancel: Arc<AtomicBool>,
}

impl Scheduled {
    /// Stops the task.
    pub fn stop(self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Registers this hub's backups (for the API) and starts the task when they are enabled.
pub fn spawn(init: ScheduleInit) -> Scheduled {
    let hub = Arc::new(HubBackups::new(init.config, &init.data_dir, init.config_file));
    *HUB.lock().unwrap_or_else(PoisonError::into_inner) = Some(hub.clone());
    let cancel = Arc::new(AtomicBool::new(false));
    if !hub.config.enabled {
        tracing::info!("Scheduled backups are off ([backup] enabled = false).");
        return Scheduled { task: None, cancel };
    }
    let flag = cancel.clone();
    let task = tokio::spawn(async move {
        let h = hub.clone();
        let mut wait = tokio::task::spawn_blocking(move || h.first_wait()).await.unwrap_or(hub.interval);
        tracing::info!(
            dir = %hub.dir.display(),
            every_hours = hub.interval.as_secs_f64() / 3600.0,
            keep = hub.config.keep,
            first_in_secs = wait.as_secs(),
            "Scheduled backups are on."
        );
        loop {
            hub.set_next(wait);
            tokio::time::sleep(wait).await;
            let (h, c) = (hub.clone(), flag.clone());
            match tokio::task::spawn_blocking(move || h.run_once(&c)).await {
                Ok(result) => hub.record(result),
                Err(e) => {
                    hub.record(Err(BackupError::io("the backup task failed", std::io::Error::other(e.to_string()))))
                }
            }
            wait = hub.interval;
        }
    });
    Scheduled { task: Some(task), cancel }
}
