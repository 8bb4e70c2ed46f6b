//! Backups: `hearth backup`, `hearth restore`, the hub's scheduled backups and the API download
//! all write and read one archive format.
//!
//! # The archive (`*.hearth-backup`, format 1)
//!
//! A POSIX tar file (ustar: `tar -tvf FILE` lists it, `tar -xf FILE` unpacks it), not
//! compressed, holding in this order:
//!
//! | entry           | what                                                                     |
//! |-----------------|--------------------------------------------------------------------------|
//! | `manifest.json` | what the archive holds (below); always the first entry                   |
//! | `hearth.db`     | the database: a consistent snapshot through SQLite's online backup API  |
//! | `hearth.toml`   | the configuration file in use, when there is one                         |
//! | `secrets.key`   | the key that seals adapters' secrets (`secrets.rs`), when there is one   |
//!
//! and the two zero blocks that end a tar file. `manifest.json`:
//!
//! ```json
//! {"format": "hearth-backup", "format_version": 1, "hearth_version": "0.1.0",
//!  "schema_version": 9, "created_at": "2026-01-31T03:00:00.000Z", "hostname": "pi",
//!  "archive_id": "<32 hex digits>", "secrets_key_included": true, "plugins_included": false,
//!  "note": "...", "counts": {"devices": 13, "areas": 4, "automations": 2, "scenes": 1,
//!  "history_rows": 51234, "users": 2},
//!  "files": [{"name": "hearth.db", "size": 1048576, "sha256": "<64 hex digits>"}, ...]}
//! ```
//!
//! Every file's size and SHA-256 are checked before anything is restored, so a damaged or
//! changed file is refused even without encryption (`sha256sum` after `tar -xf` checks the same
//! by hand). The plugins directory is not included: plugins are programs installed by hand, and
//! are installed again after a restore (their settings, in the database, come back).
//!
//! An archive without a passphrase opens every sealed secret (it holds their key) and holds the
//! accounts' password hashes: it is written readable by its owner only (0600). With a passphrase
//! the tar file is wrapped in an envelope:
//!
//! | offset | bytes | field                                                              |
//! |--------|-------|--------------------------------------------------------------------|
//! | 0      | 24    | magic `hearth-backup-encrypted\n`                                  |
//! | 24     | 1     | envelope version (1)                                               |
//! | 25     | 1     | key derivation (1: Argon2id, version 0x13)                         |
//! | 26     | 4     | Argon2 memory in KiB (big-endian; 65536 when written)              |
//! | 30     | 4     | Argon2 passes (3)                                                  |
//! | 34     | 4     | Argon2 lanes (1)                                                   |
//! | 38     | 16    | salt                                                               |
//! | 54     | 7     | nonce prefix                                                       |
//! | 61     | 4     | chunk size (1 MiB)                                                 |
//! | 65     | 8     | the tar file's length                                              |
//! | 73     |       | the tar file in chunks of the chunk size (the last one shorter, possibly empty), each sealed with AES-256-GCM: ciphertext then 16-byte tag |
//!
//! The key is Argon2id of the passphrase and salt; chunk `i`'s nonce is the prefix, `i` as four
//! big-endian bytes, then 1 for the last chunk and 0 for the others; the 73 header bytes are
//! every chunk's associated data. So a changed byte anywhere, chunks reordered, or a file cut
//! short is refused, and at most one chunk is in memory while writing or reading.
//!
//! # Where things run
//!
//! The snapshot is taken from a connection of its own, with one step of the online backup API:
//! in WAL mode it reads one consistent state while the hub's writer goes on. It is written to a
//! scratch file (removed from the directory at once, read through its open handle) beside the
//! archive, hashed, then copied into the archive. A running hub holds an exclusive lock on
//! `<data_dir>/hearth.lock` (`flock`), and so does `hearth restore` while it works: a restore
//! never replaces the database under a running hub, and a hub does not start in the middle of a
//! restore. The hub's scheduled backups run in [`schedule`]; the API handlers reach them through
//! [`schedule::hub`], since they live as long as the process.

mod format;
pub mod restore;
pub mod schedule;

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use hearth_sdk::Timestamp;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secrets::KEY_FILE;
use crate::store::DB_FILE;

pub use restore::{RestoreOptions, Restored, restore};

/// The archive format this hearth writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The archive's file name extension.
pub const EXTENSION: &str = "hearth-backup";
/// The lock file a running hub (and a restore) holds in the data directory.
pub const LOCK_FILE: &str = "hearth.lock";
/// The configuration's name inside the archive.
pub const CONFIG_ENTRY: &str = "hearth.toml";
/// The manifest's name inside the archive.
pub const MANIFEST_ENTRY: &str = "manifest.json";
/// What the manifest says about what is left out.
pub const NOTE: &str = "Plugins (the plugins directory) are not included: install them again after a restore; \
their settings are in hearth.db. Without a passphrase this archive opens every sealed secret: keep it like a password.";

const MANIFEST_MAX: u64 = 1 << 20;
const CONFIG_MAX: u64 = 16 << 20;
const KEY_MAX: u64 = 4096;

/// Why a backup could not be written, or an archive is refused. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file is something else.
    #[error("{0} is not a Hearth backup: choose a file written by `hearth backup` (its name ends in .hearth-backup)")]
    NotHearth(PathBuf),
    /// The file ends early.
    #[error("the archive is truncated: {0}. Copy it again from where it was made, or use another backup")]
    Truncated(String),
    /// The file is damaged in a way the format sees.
    #[error("the archive is damaged: {0}. Use another backup")]
    Damaged(String),
    /// A file's checksum differs from the manifest.
    #[error("{0}'s checksum does not match the manifest: the archive is damaged or was changed. Use another backup")]
    Checksum(String),
    /// Decryption failed at the first chunk.
    #[error(
        "the passphrase is wrong, or the archive was changed: check the passphrase (the first line of the file given, or of standard input) and try again"
    )]
    WrongPassphrase,
    /// An encrypted archive and no passphrase.
    #[error("{0} is encrypted: give its passphrase with --passphrase-file FILE or --passphrase-stdin")]
    NeedsPassphrase(PathBuf),
    /// A passphrase that cannot be used.
    #[error("{0}")]
    Passphrase(String),
    /// The archive was written by a newer Hearth.
    #[error(
        "the backup's database has schema version {found}, newer than this hearth knows ({known}); it was made by Hearth {by}: install that version or newer, then restore"
    )]
    TooNew {
        /// The database's version.
        found: i64,
        /// Ours.
        known: i64,
        /// The Hearth that wrote it.
        by: String,
    },
    /// The database inside fails SQLite's integrity check.
    #[error("the database in the backup fails SQLite's integrity check ({0}): use another backup")]
    Integrity(String),
    /// The database to back up cannot be read whole.
    #[error(
        "{path} cannot be backed up: {problem}. If the database is damaged, the hub moves it aside at its next start; restore an earlier backup"
    )]
    Unreadable {
        /// The database.
        path: PathBuf,
        /// What SQLite said.
        problem: String,
    },
    /// There is no database to back up.
    #[error("there is no database at {0}: give the data directory with --data-dir (or data_dir in the configuration)")]
    NoDatabase(PathBuf),
    /// A hub runs on the data directory.
    #[error(
        "a hub is running on {0} (it holds {LOCK_FILE} there): stop it first (e.g. `sudo systemctl stop hearth`), then restore again"
    )]
    HubRunning(PathBuf),
    /// The data directory holds a database with data, and `--force` was not given.
    #[error(
        "{path} already holds a database ({what}): run again with --force to move it aside (it is kept, as {aside}) and restore"
    )]
    NotEmpty {
        /// The database.
        path: PathBuf,
        /// What it holds.
        what: String,
        /// Where it would go.
        aside: String,
    },
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Stopped because the hub shuts down.
    #[error("stopped: the hub is shutting down")]
    Cancelled,
}

impl BackupError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> BackupError {
        BackupError::Io { context: context.into(), source }
    }
}

/// A passphrase; never printed.
#[derive(Clone)]
pub struct Passphrase(String);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// A passphrase from text: its first line, without the line end.
    pub fn new(text: &str) -> Result<Passphrase, BackupError> {
        let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(BackupError::Passphrase(
                "the passphrase is empty: put it on the first line of the file (or of standard input)".into(),
            ));
        }
        Ok(Passphrase(line.to_owned()))
    }

    /// The first line of `path`.
    pub fn from_file(path: &Path) -> Result<Passphrase, BackupError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BackupError::Passphrase(format!("cannot read the passphrase file {}: {e}", path.display())))?;
        Passphrase::new(&text).map_err(|_| {
            BackupError::Passphrase(format!(
                "the passphrase file {} is empty: put the passphrase on its first line",
                path.display()
            ))
        })
    }

    /// Checks it is long enough to protect a new archive.
    pub fn check_strength(&self) -> Result<(), BackupError> {
        if self.0.chars().count() < 8 {
            return Err(BackupError::Passphrase(
                "the passphrase is shorter than 8 characters: choose a longer one (several words are best)".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// What an archive holds, counted in its database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    /// Devices.
    pub devices: u64,
    /// Areas.
    pub areas: u64,
    /// Automations.
    pub automations: u64,
    /// Scenes.
    pub scenes: u64,
    /// Rows of history.
    pub history_rows: u64,
    /// Accounts.
    pub users: u64,
}

impl Counts {
    /// Counts what `conn`'s database holds (a table an older schema lacks counts 0).
    pub fn of(conn: &Connection) -> Result<Counts, rusqlite::Error> {
        let count = |table: &str| -> Result<u64, rusqlite::Error> {
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(0);
            }
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
        };
        Ok(Counts {
            devices: count("devices")?,
            areas: count("areas")?,
            automations: count("automations")?,
            scenes: count("scenes")?,
            history_rows: count("history")?,
            users: count("users")?,
        })
    }

    /// Whether the database holds nothing a household made.
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: u64, one: &str, many: &str| format!("{} {}", group(v), if v == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {}, {}, {}, {}",
            n(self.devices, "device", "devices"),
            n(self.areas, "area", "areas"),
            n(self.automations, "automation", "automations"),
            n(self.scenes, "scene", "scenes"),
            n(self.history_rows, "history row", "history rows"),
            n(self.users, "user", "users"),
        )
    }
}

/// A number with thousands separators.
fn group(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size for people: bytes, kB, MB or GB (powers of 1000).
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1000 => format!("{b} bytes"),
        b if b < 1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b if b < 1_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.2} GB", b as f64 / 1e9),
    }
}

/// One file of the archive, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its name in the archive.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, in lowercase hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `hearth-backup`.
    pub format: String,
    /// The archive format's version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The Hearth that wrote it.
    #[serde(default)]
    pub hearth_version: String,
    /// The database's schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// When it was made.
    pub created_at: Timestamp,
    /// The machine it was made on.
    #[serde(default)]
    pub hostname: String,
    /// A random id of this archive.
    #[serde(default)]
    pub archive_id: String,
    /// Whether `secrets.key` is in it.
    #[serde(default)]
    pub secrets_key_included: bool,
    /// Always false: plugins are not backed up.
    #[serde(default)]
    pub plugins_included: bool,
    /// What is left out, for people who open it.
    #[serde(default)]
    pub note: String,
    /// What the database holds.
    #[serde(default)]
    pub counts: Counts,
    /// Every file after the manifest, in order.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The entry of file `name`.
    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Checks what a manifest must hold; the problem otherwise.
    fn check(&self) -> Result<(), BackupError> {
        if self.format != "hearth-backup" {
            return Err(BackupError::Damaged(format!("its manifest names format `{}`", self.format)));
        }
        if self.format_version > FORMAT_VERSION || self.format_version == 0 {
            return Err(BackupError::Damaged(format!(
                "it is in archive format {}, which this hearth ({}) cannot read: restore it with Hearth {} or newer",
                self.format_version,
                env!("CARGO_PKG_VERSION"),
                self.hearth_version
            )));
        }
        if self.file(DB_FILE).is_none() {
            return Err(BackupError::Damaged("its manifest lists no hearth.db".into()));
        }
        for (i, f) in self.files.iter().enumerate() {
            if ![DB_FILE, CONFIG_ENTRY, KEY_FILE].contains(&f.name.as_str()) {
                return Err(BackupError::Damaged(format!("its manifest lists an unknown file `{}`", f.name)));
            }
            if self.files[..i].iter().any(|g| g.name == f.name) {
                return Err(BackupError::Damaged(format!("its manifest lists {} twice", f.name)));
            }
            if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BackupError::Damaged(format!("its manifest's checksum of {} is not SHA-256", f.name)));
            }
        }
        Ok(())
    }

    /// The length of the tar file this manifest (of `manifest_len` bytes) describes.
    fn tar_len(&self, manifest_len: u64) -> u64 {
        format::tar_len(std::iter::once(manifest_len).chain(self.files.iter().map(|f| f.size)))
    }
}

/// What a backup is taken of.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The data directory (its `hearth.db` and `secrets.key`).
    pub data_dir: PathBuf,
    /// The configuration file in use, if any.
    pub config_file: Option<PathBuf>,
}

/// A snapshot ready to be written into archives: the manifest, the database snapshot (an open
/// file whose name is already gone) and the small files.
#[derive(Debug)]
pub struct Snapshot {
    /// The manifest.
    pub manifest: Manifest,
    manifest_bytes: Vec<u8>,
    db: File,
    config: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new file readable by its owner only; refuses to replace one.
fn create_private(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether process `pid` still runs (on Linux; elsewhere every process counts as running).
fn pid_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

/// Removes what backups of processes that no longer run left in `dir`: files named
/// `<prefix><pid><rest>`.
fn remove_stale(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(pid) = digits.parse::<u32>()
            && !pid_alive(pid)
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Reads a small file the backup holds, at most `max` bytes.
fn read_small(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, BackupError> {
    let file = File::open(path).map_err(|e| {
        BackupError::io(format!("cannot read {what} {} (run as the hub's user, or as root)", path.display()), e)
    })?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| BackupError::io(format!("cannot read {}", path.display()), e))?;
    if bytes.len() as u64 > max {
        return Err(BackupError::Damaged(format!("{} is larger than {} bytes", path.display(), max)));
    }
    Ok(bytes)
}

impl Snapshot {
    /// Takes a consistent snapshot of the database in `sources.data_dir` (while a hub runs or
    /// not) into a scratch file in `scratch_dir`, and reads the configuration and key.
    pub fn take(sources: &Sources, scratch_dir: &Path) -> Result<Snapshot, BackupError> {
        let db_path = sources.data_dir.join(DB_FILE);
        if !db_path.is_file() {
            return Err(BackupError::NoDatabase(db_path));
        }
        let config = match &sources.config_file {
            Some(p) => Some(read_small(p, CONFIG_MAX, "the configuration")?),
            None => None,
        };
        let key_path = sources.data_dir.join(KEY_FILE);
        let key = if key_path.exists() { Some(read_small(&key_path, KEY_MAX, "the secrets key")?) } else { None };

        remove_stale(scratch_dir, ".hearth-snapshot-");
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        let scratch = scratch_dir.join(format!(".hearth-snapshot-{}-{n}.db", std::process::id()));
        let journal = PathBuf::from(format!("{}-journal", scratch.display()));
        let cleanup = || {
            let _ = std::fs::remove_file(&scratch);
            let _ = std::fs::remove_file(&journal);
        };
        create_private(&scratch)
            .map_err(|e| BackupError::io(format!("cannot write a scratch file in {}", scratch_dir.display()), e))?;
        let taken = snapshot_into(&db_path, &scratch);
        let file = taken.and_then(|(schema, counts)| {
            let file = File::open(&scratch).map_err(|e| BackupError::io("cannot read the snapshot", e))?;
            Ok((file, schema, counts))
        });
        cleanup();
        let (mut db, schema, counts) = file?;

        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = db.read(&mut buf).map_err(|e| BackupError::io("cannot read the snapshot", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        db.rewind().map_err(|e| BackupError::io("cannot read the snapshot", e))?;

        let mut files = vec![FileEntry { name: DB_FILE.into(), size, sha256: hex(&hasher.finalize()) }];
        if let Some(c) = &config {
            files.push(FileEntry { name: CONFIG_ENTRY.into(), size: c.len() as u64, sha256: sha256_hex(c) });
        }
        if let Some(k) = &key {
            files.push(FileEntry { name: KEY_FILE.into(), size: k.len() as u64, sha256: sha256_hex(k) });
        }
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let manifest = Manifest {
            format: "hearth-backup".into(),
            format_version: FORMAT_VERSION,
            hearth_version: env!("CARGO_PKG_VERSION").into(),
            schema_version: schema,
            created_at: Timestamp::now(),
            hostname: hostname(),
            archive_id: hex(&id),
            secrets_key_included: key.is_some(),
            plugins_included: false,
            note: NOTE.into(),
            counts,
            files,
        };
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Damaged(format!("the manifest could not be written: {e}")))?;
        Ok(Snapshot { manifest, manifest_bytes, db, config, key })
    }

    /// The length of the tar file (before any encryption).
    pub fn tar_len(&self) -> u64 {
        self.manifest.tar_len(self.manifest_bytes.len() as u64)
    }

    /// Writes the archive to `out` (encrypted when a passphrase is given); stops with
    /// [`BackupError::Cancelled`] when `cancel` is set.
    pub fn write_to<W: Write>(
        &mut self,
        out: W,
        passphrase: Option<&Passphrase>,
        cancel: &AtomicBool,
    ) -> Result<W, BackupError> {
        let out = Cancellable { inner: out, cancel };
        let result = match passphrase {
            Some(p) => {
                let mut enc = format::Encrypt::new(out, p, self.tar_len())?;
                self.write_tar(&mut enc).and_then(|()| enc.finish())
            }
            None => {
                let mut out = out;
                self.write_tar(&mut out).map(|()| out)
            }
        };
        match result {
            Ok(c) => Ok(c.inner),
            Err(_) if cancel.load(Ordering::Relaxed) => Err(BackupError::Cancelled),
            Err(e) => Err(BackupError::io("cannot write the archive", e)),
        }
    }

    fn write_tar(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        let mtime = u64::try_from(self.manifest.created_at.as_millis() / 1000).unwrap_or(0);
        let entry = |out: &mut dyn Write, name: &str, bytes: &[u8]| -> std::io::Result<()> {
            out.write_all(&format::header(name, bytes.len() as u64, mtime))?;
            out.write_all(bytes)?;
            out.write_all(&[0u8; format::BLOCK][..format::padding(bytes.len() as u64)])
        };
        entry(out, MANIFEST_ENTRY, &self.manifest_bytes)?;
        let size = self.manifest.files[0].size;
        out.write_all(&format::header(DB_FILE, size, mtime))?;
        self.db.rewind()?;
        let copied = std::io::copy(&mut (&mut self.db).take(size), out)?;
        if copied != size {
            return Err(std::io::Error::other("the snapshot changed size while it was copied"));
        }
        out.write_all(&[0u8; format::BLOCK][..format::padding(size)])?;
        if let Some(c) = &self.config {
            entry(out, CONFIG_ENTRY, c)?;
        }
        if let Some(k) = &self.key {
            entry(out, KEY_FILE, k)?;
        }
        out.write_all(&[0u8; 2 * format::BLOCK])?;
        out.flush()
    }
}

/// Copies the database at `db` into the (empty) file `to` with the online backup API, in one
/// step: one read transaction, so one consistent state, while the hub's writer goes on (WAL).
/// Returns its schema version and counts.
fn snapshot_into(db: &Path, to: &Path) -> Result<(i64, Counts), BackupError> {
    let unreadable =
        |e: &dyn std::fmt::Display| BackupError::Unreadable { path: db.to_path_buf(), problem: e.to_string() };
    let src = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| unreadable(&e))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut dst = Connection::open(to)?;
    dst.execute_batch("PRAGMA synchronous = OFF;")?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| unreadable(&e))?;
        let started = std::time::Instant::now();
        loop {
            match backup.step(-1).map_err(|e| unreadable(&e))? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ if started.elapsed() > std::time::Duration::from_secs(60) => {
                    return Err(unreadable(&"it stayed locked for a minute; try again"));
                }
                // Busy or locked: a checkpoint holds the file for a moment. This runs on a
                // thread of its own (the command line, or a blocking task), never the runtime.
                #[allow(clippy::disallowed_methods)]
                _ => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }
    drop(src);
    let schema: i64 = dst.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| unreadable(&e))?;
    let counts = Counts::of(&dst).map_err(|e| unreadable(&e))?;
    dst.close().map_err(|(_, e)| BackupError::Sqlite(e))?;
    Ok((schema, counts))
}

/// Passes writes through until `cancel` is set.
struct Cancellable<'a, W> {
    inner: W,
    cancel: &'a AtomicBool,
}

impl<W: Write> Write for Cancellable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(std::io::Error::other("cancelled"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// An archive written to a file.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The SHA-256 of the whole file, to compare copies with (`sha256sum`).
    pub sha256: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Its manifest.
    pub manifest: Manifest,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "Wrote {} ({}, {}, in {:.2} s).",
            self.path.display(),
            human_size(self.bytes),
            if self.encrypted { "encrypted with the passphrase" } else { "not encrypted: keep it private" },
            self.elapsed.as_secs_f64()
        )?;
        for file in &m.files {
            writeln!(f, "  {:<12} {:>10}  sha256 {}", file.name, human_size(file.size), file.sha256)?;
        }
        writeln!(f, "  holds {}; schema {}", m.counts, m.schema_version)?;
        if !m.secrets_key_included {
            writeln!(f, "  no secrets.key in the data directory: no secrets were sealed yet")?;
        }
        write!(f, "  archive sha256 {}", self.sha256)
    }
}

/// Where the temporary file for `path` goes.
fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{name}.partial-{}", std::process::id()))
}

/// Writes an archive of `sources` to `path`: to a temporary file beside it first, renamed into
/// place only when complete and on disk, so `path` never holds half an archive. Readable by its
/// owner only.
pub fn write_file(
    sources: &Sources,
    path: &Path,
    passphrase: Option<&Passphrase>,
    cancel: &AtomicBool,
) -> Result<Written, BackupError> {
    let started = std::time::Instant::now();
    if let Some(p) = passphrase {
        p.check_strength()?;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if path.is_dir() {
        return Err(BackupError::io(
            format!("{} is a directory", path.display()),
            std::io::Error::other("name the archive file, like hearth.hearth-backup"),
        ));
    }
    let mut snapshot = Snapshot::take(sources, &dir)?;
    if let Some(name) = path.file_name() {
        remove_stale(&dir, &format!("{}.partial-", name.to_string_lossy()));
    }
    let partial = partial_path(path);
    let _ = std::fs::remove_file(&partial);
    let file =
        create_private(&partial).map_err(|e| BackupError::io(format!("cannot write {}", partial.display()), e))?;
    let result = (|| {
        let out = Hashing { inner: BufWriter::with_capacity(256 * 1024, file), hasher: Sha256::new(), bytes: 0 };
        let mut out = snapshot.write_to(out, passphrase, cancel)?;
        out.flush().map_err(|e| BackupError::io("cannot write the archive", e))?;
        let file = out.inner.into_inner().map_err(|e| BackupError::io("cannot write the archive", e.into_error()))?;
        file.sync_all().map_err(|e| BackupError::io("cannot write the archive to disk", e))?;
        Ok((out.bytes, hex(&out.hasher.finalize())))
    })();
    let (bytes, sha256) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, path).map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        BackupError::io(format!("cannot move the archive to {}", path.display()), e)
    })?;
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(Written {
        path: path.to_path_buf(),
        bytes,
        sha256,
        encrypted: passphrase.is_some(),
        manifest: snapshot.manifest,
        elapsed: started.elapsed(),
    })
}

/// Hands written bytes to an HTTP body's channel.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the (unencrypted) archive of `snapshot` into `tx` in chunks, for an HTTP body; stops
/// when the receiver is gone. Blocking: run it on a blocking thread.
pub fn send_archive(mut snapshot: Snapshot, tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) {
    let out = BufWriter::with_capacity(64 * 1024, ChannelWriter(tx.clone()));
    let result = snapshot
        .write_to(out, None, &AtomicBool::new(false))
        .and_then(|mut w| w.flush().map_err(|e| BackupError::io("cannot send the archive", e)));
    drop(snapshot);
    if let Err(e) = result {
        tracing::warn!(error = %e, "A backup download stopped.");
        let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
    }
}

/// What kind of file an archive is, from its first bytes.
enum Kind {
    Plain,
    Encrypted,
}

/// Opens `path` and tells what it is: a truncated start of either kind is called truncated.
fn kind(path: &Path, file: &mut File, len: u64) -> Result<Kind, BackupError> {
    let mut first = [0u8; format::BLOCK];
    let got = format::read_full(&mut format::Plain(&mut *file), &mut first)?;
    file.rewind().map_err(|e| BackupError::io("cannot read the archive", e))?;
    if len == 0 {
        return Err(BackupError::Truncated(format!("{} is empty", path.display())));
    }
    let head = &first[..got];
    if head.len() >= format::MAGIC.len() && head.starts_with(format::MAGIC) {
        return Ok(Kind::Encrypted);
    }
    if head.len() < format::MAGIC.len() && format::MAGIC.starts_with(head) {
        return Err(BackupError::Truncated(format!("it ends after {got} bytes, inside its encryption header")));
    }
    let name = MANIFEST_ENTRY.as_bytes();
    let named = head.len() > name.len() && head.starts_with(name) && head[name.len()] == 0;
    if got < format::BLOCK {
        if named || (head.len() <= name.len() && name.starts_with(head)) {
            return Err(BackupError::Truncated(format!("it ends after {got} bytes, inside its first header")));
        }
        return Err(BackupError::NotHearth(path.to_path_buf()));
    }
    match format::parse_header(&first) {
        Ok(Some(h)) if h.name == MANIFEST_ENTRY => Ok(Kind::Plain),
        Err(e) if named => Err(BackupError::Damaged(format!("the manifest's header: {e}"))),
        _ => Err(BackupError::NotHearth(path.to_path_buf())),
    }
}

/// What the start of a file says of it, when it is a Hearth backup archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peeked {
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// When it was made, from its manifest (`None` when encrypted: the manifest is sealed).
    pub created_at: Option<Timestamp>,
}

/// A cheap look at the file at `path`, for listings such as `hearth status`: whether it is a
/// Hearth backup archive, from its first bytes only (an encrypted archive's envelope header; a
/// plain archive's manifest, which must read and pass its checks). Not a verification: the files
/// after the manifest are not read.
pub fn peek(path: &Path) -> Option<Peeked> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok().filter(std::fs::Metadata::is_file)?.len();
    match kind(path, &mut file, len).ok()? {
        Kind::Encrypted => (len >= format::HEADER_LEN as u64).then_some(Peeked { encrypted: true, created_at: None }),
        Kind::Plain => {
            let mut block = [0u8; format::BLOCK];
            file.read_exact(&mut block).ok()?;
            let header = format::parse_header(&block).ok()??;
            if header.name != MANIFEST_ENTRY || header.size > MANIFEST_MAX {
                return None;
            }
            let mut bytes = Vec::new();
            (&mut file).take(header.size).read_to_end(&mut bytes).ok()?;
            let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
            manifest.check().ok()?;
            Some(Peeked { encrypted: false, created_at: Some(manifest.created_at) })
        }
    }
}

/// A verified archive, its files written into a directory.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest.
    pub manifest: Manifest,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// The archive's size.
    pub archive_bytes: u64,
    /// The database's schema version, read from the database itself.
    pub schema: i64,
    /// What the database holds, counted in it.
    pub counts: Counts,
}

/// Reads the archive at `path` into directory `into` (which must exist): checks the format,
/// the manifest, every file's size and SHA-256, SQLite's `integrity_check` of the database, and
/// that its schema is not newer than this hearth knows. `ask` is called for a passphrase when
/// the archive is encrypted and none was given.
pub fn verify(
    path: &Path,
    passphrase: Option<&Passphrase>,
    ask: &mut dyn FnMut() -> Option<Passphrase>,
    into: &Path,
) -> Result<Verified, BackupError> {
    let mut file =
        File::open(path).map_err(|e| BackupError::io(format!("cannot open the archive {}", path.display()), e))?;
    let len = file.metadata().map_err(|e| BackupError::io("cannot read the archive", e))?.len();
    let encrypted = matches!(kind(path, &mut file, len)?, Kind::Encrypted);
    let reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let manifest = if encrypted {
        let asked;
        let pass = match passphrase {
            Some(p) => p,
            None => {
                asked = ask().ok_or_else(|| BackupError::NeedsPassphrase(path.to_path_buf()))?;
                &asked
            }
        };
        let mut src = format::Decrypt::open(reader, pass, Some(len))?;
        let inner_len = src.plain_len();
        extract(&mut src, into, &mut |want| {
            if want == inner_len {
                Ok(())
            } else {
                Err(BackupError::Damaged(format!(
                    "its manifest describes {want} bytes, its encryption header {inner_len}"
                )))
            }
        })?
    } else {
        extract(&mut format::Plain(reader), into, &mut |want| {
            if len < want {
                Err(BackupError::Truncated(format!("it has {len} bytes of the {want} its manifest describes")))
            } else {
                Ok(())
            }
        })?
    };
    let (schema, counts) = check_database(&into.join(DB_FILE), &manifest)?;
    Ok(Verified { manifest, encrypted, archive_bytes: len, schema, counts })
}

/// Reads the tar stream: the manifest first, then every file it lists into `into`, each checked
/// against its size and SHA-256. `check_len` gets the length the manifest implies.
fn extract(
    src: &mut dyn format::Source,
    into: &Path,
    check_len: &mut dyn FnMut(u64) -> Result<(), BackupError>,
) -> Result<Manifest, BackupError> {
    let mut block = [0u8; format::BLOCK];
    let mut next_header = |src: &mut dyn format::Source, after: &str| -> Result<Option<format::Header>, BackupError> {
        let got = format::read_full(src, &mut block)?;
        if got < format::BLOCK {
            return Err(BackupError::Truncated(format!("it ends after {after}")));
        }
        format::parse_header(&block).map_err(|e| BackupError::Damaged(format!("{e} (after {after})")))
    };
    let first = next_header(src, "its start")?
        .filter(|h| h.name == MANIFEST_ENTRY)
        .ok_or_else(|| BackupError::Damaged("its first entry is not manifest.json".into()))?;
    if first.size > MANIFEST_MAX {
        return Err(BackupError::Damaged(format!("its manifest is {} bytes, more than a manifest can be", first.size)));
    }
    let mut bytes = vec![0u8; first.size as usize];
    if format::read_full(src, &mut bytes)? < bytes.len() {
        return Err(BackupError::Truncated("it ends inside its manifest".into()));
    }
    skip(src, format::padding(first.size), MANIFEST_ENTRY)?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Damaged(format!("its manifest cannot be read ({e})")))?;
    manifest.check()?;
    check_len(manifest.tar_len(first.size))?;

    let mut seen: Vec<String> = Vec::new();
    let mut after = MANIFEST_ENTRY.to_owned();
    loop {
        let Some(h) = next_header(src, &after)? else {
            if format::read_full(src, &mut [0u8; format::BLOCK])? < format::BLOCK {
                return Err(BackupError::Truncated("it ends inside its end marker".into()));
            }
            break;
        };
        let Some(entry) = manifest.file(&h.name) else {
            return Err(BackupError::Damaged(format!("it holds `{}`, which its manifest does not list", h.name)));
        };
        if seen.contains(&h.name) {
            return Err(BackupError::Damaged(format!("it holds {} twice", h.name)));
        }
        if h.kind != b'0' && h.kind != 0 {
            return Err(BackupError::Damaged(format!("{} is not a regular file in it", h.name)));
        }
        if h.size != entry.size {
            return Err(BackupError::Damaged(format!(
                "{} has {} bytes in it, {} in its manifest",
                h.name, h.size, entry.size
            )));
        }
        let target = into.join(&h.name);
        let _ = std::fs::remove_file(&target);
        let out =
            create_private(&target).map_err(|e| BackupError::io(format!("cannot write {}", target.display()), e))?;
        let mut out = BufWriter::with_capacity(256 * 1024, out);
        let mut hasher = Sha256::new();
        let mut left = h.size;
        let mut buf = vec![0u8; 256 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = format::read_full(src, &mut buf[..want])?;
            if n == 0 {
                return Err(BackupError::Truncated(format!(
                    "it ends inside {} ({} of {} bytes)",
                    h.name,
                    h.size - left,
                    h.size
                )));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| BackupError::io(format!("cannot write {}", target.display()), e))?;
            left -= n as u64;
        }
        let file = out.into_inner().map_err(|e| BackupError::io("cannot write", e.into_error()))?;
        file.sync_all().map_err(|e| BackupError::io(format!("cannot write {}", target.display()), e))?;
        skip(src, format::padding(h.size), &h.name)?;
        if hex(&hasher.finalize()) != entry.sha256.to_ascii_lowercase() {
            return Err(BackupError::Checksum(h.name));
        }
        after.clone_from(&h.name);
        seen.push(h.name);
    }
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.name)) {
        return Err(BackupError::Truncated(format!("{} is listed in its manifest but not in it", missing.name)));
    }
    // Read to the end: an encrypted archive's last chunk authenticates only when read.
    let mut rest = [0u8; 4096];
    while src.read(&mut rest)? > 0 {}
    Ok(manifest)
}

fn skip(src: &mut dyn format::Source, n: usize, name: &str) -> Result<(), BackupError> {
    let mut pad = [0u8; format::BLOCK];
    if format::read_full(src, &mut pad[..n])? < n {
        return Err(BackupError::Truncated(format!("it ends after {name}")));
    }
    Ok(())
}

/// Checks the extracted database: SQLite's `integrity_check`, and a schema this hearth knows.
fn check_database(db: &Path, manifest: &Manifest) -> Result<(i64, Counts), BackupError> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| BackupError::Integrity(e.to_string()))?;
    let rows: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    match rows {
        Ok(r) if r.len() == 1 && r[0] == "ok" => {}
        Ok(r) => return Err(BackupError::Integrity(r.into_iter().take(3).collect::<Vec<_>>().join("; "))),
        Err(e) => return Err(BackupError::Integrity(e.to_string())),
    }
    let schema: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = crate::store::migrations::LATEST;
    if schema > known {
        return Err(BackupError::TooNew { found: schema, known, by: manifest.hearth_version.clone() });
    }
    if schema != manifest.schema_version {
        return Err(BackupError::Damaged(format!(
            "its database has schema version {schema}, its manifest says {}",
            manifest.schema_version
        )));
    }
    let counts = Counts::of(&conn)?;
    conn.close().map_err(|(_, e)| BackupError::Sqlite(e))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok((schema, counts))
}

/// The lock on a data directory: held by a running hub, and by a restore while it works.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Why a data directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Held,
    /// The lock file could not be opened.
    Io(std::io::Error),
}

/// Takes the exclusive lock of `data_dir` (creating `hearth.lock` there), without waiting.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, LockError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let path = data_dir.join(LOCK_FILE);
    // One made by another user (root, restoring) still locks when opened for reading.
    let file = match options.open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            File::open(&path).map_err(|_| LockError::Io(e))?
        }
        r => r.map_err(LockError::Io)?,
    };
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
    }
}

/// The running hub's lock of `data_dir`, or why it cannot run there.
pub fn lock_for_hub(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    lock_data_dir(data_dir).map_err(|e| match e {
        LockError::Held => anyhow::anyhow!(
            "another hub is running on {} (or `hearth restore` is working there): it holds {LOCK_FILE}; stop it, or give this one another --data-dir",
            data_dir.display()
        ),
        LockError::Io(e) => anyhow::anyhow!("cannot lock the data directory {} ({LOCK_FILE}): {e}", data_dir.display()),
    })
}

/// Whether a hub (or a restore) holds `data_dir`'s lock now; creates nothing.
pub fn is_locked(data_dir: &Path) -> bool {
    match File::open(data_dir.join(LOCK_FILE)) {
        Ok(f) => matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
