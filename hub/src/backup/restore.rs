//! `hearth restore`: verify an archive completely, then put its files in place.
//!
//! Order: lock the data directory (refused while a hub holds it), unpack and verify into a
//! staging directory inside it (same file system, so the last step is renames), move the
//! database that was there aside (never deleted, unless it holds nothing), rename the new files
//! into place, write the configuration where `--config` says. A refusal at any step before the
//! renames leaves the data directory as it was. `--dry-run` unpacks into a temporary directory
//! elsewhere and changes nothing.

use std::path::{Path, PathBuf};

use hearth_sdk::Timestamp;

use super::{
    BackupError, CONFIG_ENTRY, Counts, LockError, Passphrase, Verified, human_size, is_locked, lock_data_dir, verify,
};
use crate::secrets::KEY_FILE;
use crate::store::DB_FILE;

/// What `hearth restore` was asked.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The archive.
    pub file: PathBuf,
    /// The data directory to restore into.
    pub data_dir: PathBuf,
    /// Where to write the archive's configuration (`--config`), if anywhere.
    pub config_out: Option<PathBuf>,
    /// The configuration file this machine's hub reads now, if there is one (for the message
    /// when `config_out` is not given).
    pub config_in_use: Option<PathBuf>,
    /// The passphrase of an encrypted archive.
    pub passphrase: Option<Passphrase>,
    /// Only verify.
    pub dry_run: bool,
    /// Move a database that holds data aside and restore anyway.
    pub force: bool,
}

/// What happened to the configuration in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The archive holds none.
    NoneInArchive,
    /// Written to this file.
    Written(PathBuf),
    /// The file there already held the same bytes.
    Unchanged(PathBuf),
    /// Not written (no `--config`); where this machine's hub reads its configuration.
    NotWritten(PathBuf),
}

/// What a restore did (or, with `--dry-run`, would do).
#[derive(Debug, Clone)]
pub struct Restored {
    /// The archive.
    pub file: PathBuf,
    /// What it holds, verified.
    pub verified: Verified,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// What the database there held before (`None`: there was none).
    pub previous: Option<Previous>,
    /// Files moved aside: from, to.
    pub moved_aside: Vec<(PathBuf, PathBuf)>,
    /// The configuration.
    pub config: ConfigOutcome,
    /// Whether a hub holds the data directory now (dry runs only).
    pub hub_running: bool,
    /// Things to look at.
    pub warnings: Vec<String>,
}

/// The database a restore found in the data directory.
#[derive(Debug, Clone)]
pub struct Previous {
    /// What it held (`None`: it could not be read).
    pub counts: Option<Counts>,
    /// Where it goes (or went); `None` when it held nothing and was replaced.
    pub aside: Option<PathBuf>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn stamp() -> String {
    Timestamp::now().to_string().replace([':', '.'], "-")
}

/// What the database at `db` holds; `None` when it cannot be read. Creates, changes and
/// removes no file: with a write-ahead log there (a hub runs, or was stopped hard) it is read
/// through it; without one the file alone is the whole database, read as immutable.
fn counts_of(db: &Path) -> Option<Counts> {
    use rusqlite::OpenFlags;
    let logged = with_suffix(db, "-wal").exists() && with_suffix(db, "-shm").exists();
    let conn = if logged {
        rusqlite::Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?
    } else {
        let mut uri = String::from("file:");
        for c in db.to_str()?.chars() {
            match c {
                '?' | '#' | '%' => uri.push_str(&format!("%{:02X}", c as u32)),
                c => uri.push(c),
            }
        }
        uri.push_str("?immutable=1");
        rusqlite::Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
            .ok()?
    };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    Counts::of(&conn).ok()
}

fn previous_of(data_dir: &Path, stamp: &str) -> Option<Previous> {
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        return None;
    }
    let counts = counts_of(&db);
    let empty = counts.is_some_and(|c| c.is_empty());
    Some(Previous { counts, aside: (!empty).then(|| data_dir.join(format!("{DB_FILE}.before-restore-{stamp}"))) })
}

/// Makes `path` belong to the owner and group of `like` (the data directory), as it must when
/// root restores for the hub's user. Best effort: a warning when it cannot.
fn match_owner(path: &Path, like: &Path, warnings: &mut Vec<String>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(m), Ok(l)) = (std::fs::metadata(path), std::fs::metadata(like)) else { return };
        if (m.uid(), m.gid()) != (l.uid(), l.gid())
            && let Err(e) = std::os::unix::fs::chown(path, Some(l.uid()), Some(l.gid()))
        {
            warnings.push(format!(
                "{} could not be given to the owner of {} ({e}): make sure the hub's user can read it",
                path.display(),
                like.display()
            ));
        }
    }
}

/// Records the restore of `archive` (with `manifest`) in the audit log of the database at `db`,
/// the restored one before it is put in place, so the hub that serves it says when and from what
/// it was restored: by `hearth restore`, or by the hub itself at start (`at_start`) when its
/// database was damaged. `Ok(false)`: the database predates the audit log (schema 1 and 2).
pub(crate) fn record_restore(
    db: &Path,
    archive: &Path,
    manifest: &super::Manifest,
    at_start: bool,
) -> Result<bool, String> {
    use hearth_automations::say::Say;
    use rusqlite::OpenFlags;
    let conn =
        rusqlite::Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| e.to_string())?;
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('audit_log')")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect())
        .map_err(|e| e.to_string())?;
    if columns.is_empty() {
        return Ok(false);
    }
    let made = Say::AuditRestored { made: manifest.created_at, hostname: manifest.hostname.clone() };
    let note = if at_start {
        Say::AuditRestoredAtStart { made: manifest.created_at, hostname: manifest.hostname.clone() }
    } else {
        Say::AuditFromCommandLine { note: Box::new(made) }
    };
    let name = archive.file_name().map_or_else(|| archive.display().to_string(), |n| n.to_string_lossy().into_owned());
    let entry = crate::audit::Entry::new(None, "backup.restore").target(name).note(note);
    if columns.iter().any(|c| c == "say") {
        crate::audit::record(&conn, &entry).map_err(|e| e.to_string())?;
    } else {
        // Schema 3: the log without its sayings.
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?1, NULL, ?2, ?3, ?4)",
            rusqlite::params![entry.at.as_millis(), entry.action, entry.target, entry.detail],
        )
        .map_err(|e| e.to_string())?;
    }
    // The last connection's close checkpoints the write-ahead log into the file.
    conn.close().map_err(|(_, e)| e.to_string())?;
    if with_suffix(db, "-wal").exists() {
        return Err("the database's write-ahead log was left behind".into());
    }
    let _ = std::fs::remove_file(with_suffix(db, "-shm"));
    Ok(true)
}

/// Verifies the archive and restores it (see the module's documentation). `ask` is called for
/// the passphrase of an encrypted archive when none was given.
pub fn restore(opts: &RestoreOptions, ask: &mut dyn FnMut() -> Option<Passphrase>) -> Result<Restored, BackupError> {
    if opts.dry_run {
        return dry_run(opts, ask);
    }
    let data_dir = &opts.data_dir;
    let created_dir = !data_dir.exists();
    std::fs::create_dir_all(data_dir)
        .map_err(|e| BackupError::io(format!("cannot create the data directory {}", data_dir.display()), e))?;
    let lock_existed = data_dir.join(super::LOCK_FILE).exists();
    let lock = match lock_data_dir(data_dir) {
        Ok(l) => l,
        Err(LockError::Held) => return Err(BackupError::HubRunning(data_dir.clone())),
        Err(LockError::Io(e)) => {
            return Err(BackupError::io(format!("cannot lock the data directory {}", data_dir.display()), e));
        }
    };
    if !lock_existed {
        match_owner(&data_dir.join(super::LOCK_FILE), data_dir, &mut Vec::new());
    }
    let staging = data_dir.join(format!(".restore-{}", std::process::id()));
    let result = restore_locked(opts, ask, &staging);
    let _ = std::fs::remove_dir_all(&staging);
    if result.is_err() {
        // Leave the directory as it was found.
        if !lock_existed {
            let _ = std::fs::remove_file(data_dir.join(super::LOCK_FILE));
        }
        if created_dir {
            let _ = std::fs::remove_dir(data_dir);
        }
    }
    drop(lock);
    result
}

fn make_private_dir(dir: &Path) -> Result<(), BackupError> {
    let _ = std::fs::remove_dir_all(dir);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| BackupError::io(format!("cannot create {}", dir.display()), e))
}

fn restore_locked(
    opts: &RestoreOptions,
    ask: &mut dyn FnMut() -> Option<Passphrase>,
    staging: &Path,
) -> Result<Restored, BackupError> {
    let data_dir = &opts.data_dir;
    make_private_dir(staging)?;
    let verified = verify(&opts.file, opts.passphrase.as_ref(), ask, staging)?;
    let stamp = stamp();
    let previous = previous_of(data_dir, &stamp);
    if let Some(p) = &previous
        && let Some(aside) = &p.aside
        && !opts.force
    {
        return Err(BackupError::NotEmpty {
            path: data_dir.join(DB_FILE),
            what: p.counts.map_or_else(|| "it cannot be read".to_owned(), |c| c.to_string()),
            aside: aside.display().to_string(),
        });
    }

    let mut warnings = Vec::new();
    match record_restore(&staging.join(DB_FILE), &opts.file, &verified.manifest, false) {
        Ok(true) => {}
        Ok(false) => {
            warnings.push("the backup's database predates the audit log: this restore is not recorded in it".into());
        }
        Err(e) => warnings.push(format!("this restore could not be recorded in the audit log ({e})")),
    }

    // From here on, files move.
    let mut moved_aside = Vec::new();
    let db = data_dir.join(DB_FILE);
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to)
            .map_err(|e| BackupError::io(format!("cannot move {} to {}", from.display(), to.display()), e))
    };
    if let Some(p) = &previous {
        for suffix in ["", "-wal", "-shm"] {
            let from = with_suffix(&db, suffix);
            if !from.exists() {
                continue;
            }
            match &p.aside {
                Some(aside) => {
                    let to = with_suffix(aside, suffix);
                    rename(&from, &to)?;
                    moved_aside.push((from, to));
                }
                None => std::fs::remove_file(&from)
                    .map_err(|e| BackupError::io(format!("cannot remove the empty {}", from.display()), e))?,
            }
        }
    }
    if let Err(e) = rename(&staging.join(DB_FILE), &db) {
        // Put back what was moved, so the directory is as it was.
        for (from, to) in moved_aside.iter().rev() {
            let _ = std::fs::rename(to, from);
        }
        return Err(e);
    }
    match_owner(&db, data_dir, &mut warnings);
    if verified.manifest.file(KEY_FILE).is_some() {
        let key = data_dir.join(KEY_FILE);
        let new = std::fs::read(staging.join(KEY_FILE)).unwrap_or_default();
        match std::fs::read(&key) {
            Ok(old) if old == new => {}
            Ok(_) => {
                let to = data_dir.join(format!("{KEY_FILE}.before-restore-{stamp}"));
                rename(&key, &to)?;
                moved_aside.push((key.clone(), to));
                rename(&staging.join(KEY_FILE), &key)?;
            }
            Err(_) => rename(&staging.join(KEY_FILE), &key)?,
        }
        match_owner(&key, data_dir, &mut warnings);
    }
    if let Ok(d) = std::fs::File::open(data_dir) {
        let _ = d.sync_all();
    }

    let config = place_config(opts, &verified, staging, &stamp, &mut moved_aside, &mut warnings)?;
    check_restored_config(opts, staging, &verified, &mut warnings);
    Ok(Restored {
        file: opts.file.clone(),
        verified,
        data_dir: data_dir.clone(),
        dry_run: false,
        previous,
        moved_aside,
        config,
        hub_running: false,
        warnings,
    })
}

/// Writes the archive's configuration to `--config`, moving a different file there aside.
fn place_config(
    opts: &RestoreOptions,
    verified: &Verified,
    staging: &Path,
    stamp: &str,
    moved_aside: &mut Vec<(PathBuf, PathBuf)>,
    warnings: &mut Vec<String>,
) -> Result<ConfigOutcome, BackupError> {
    if verified.manifest.file(CONFIG_ENTRY).is_none() {
        return Ok(ConfigOutcome::NoneInArchive);
    }
    let Some(target) = &opts.config_out else {
        let here = opts.config_in_use.clone().unwrap_or_else(|| PathBuf::from("/etc/hearth/hearth.toml"));
        return Ok(ConfigOutcome::NotWritten(here));
    };
    let new =
        std::fs::read(staging.join(CONFIG_ENTRY)).map_err(|e| BackupError::io("cannot read the configuration", e))?;
    let old = std::fs::read(target).ok();
    if old.as_deref() == Some(new.as_slice()) {
        return Ok(ConfigOutcome::Unchanged(target.clone()));
    }
    let old_meta = std::fs::metadata(target).ok();
    let dir =
        target.parent().filter(|d| !d.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    std::fs::create_dir_all(&dir).map_err(|e| BackupError::io(format!("cannot create {}", dir.display()), e))?;
    let partial = with_suffix(target, &format!(".partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    std::fs::copy(staging.join(CONFIG_ENTRY), &partial)
        .map_err(|e| BackupError::io(format!("cannot write {}", partial.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The file it replaces keeps its mode and owner (a packaged /etc/hearth/hearth.toml is
        // root's, readable by the hub's group); a new one is its writer's only: it may hold
        // passwords.
        let mode = old_meta.as_ref().map_or(0o600, |m| m.mode() & 0o777);
        let _ = std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(mode));
        if let Some(m) = &old_meta
            && std::os::unix::fs::chown(&partial, Some(m.uid()), Some(m.gid())).is_err()
        {
            warnings.push(format!(
                "{} could not keep the owner of the file it replaces: check that the hub's user can read it",
                target.display()
            ));
        }
    }
    if old.is_some() {
        let aside = with_suffix(target, &format!(".before-restore-{stamp}"));
        std::fs::rename(target, &aside)
            .map_err(|e| BackupError::io(format!("cannot move {} aside", target.display()), e))?;
        moved_aside.push((target.clone(), aside));
    }
    std::fs::rename(&partial, target).map_err(|e| BackupError::io(format!("cannot write {}", target.display()), e))?;
    Ok(ConfigOutcome::Written(target.clone()))
}

/// Warns when the archive's configuration does not pass this hearth's check, or names another
/// data directory than the one restored into.
fn check_restored_config(opts: &RestoreOptions, staging: &Path, verified: &Verified, warnings: &mut Vec<String>) {
    if verified.manifest.file(CONFIG_ENTRY).is_none() {
        return;
    }
    let Ok(text) = std::fs::read_to_string(staging.join(CONFIG_ENTRY)) else { return };
    let name = opts.config_out.clone().unwrap_or_else(|| PathBuf::from("the backup's hearth.toml"));
    match crate::config::Config::parse(&text, &name) {
        Err(e) => warnings.push(format!("the backup's configuration does not pass this hearth's check: {e}")),
        Ok(c) => {
            if let Some(d) = c.data_dir {
                let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
                    (Ok(x), Ok(y)) => x == y,
                    _ => a == b,
                };
                if !same(&d, &opts.data_dir) {
                    warnings.push(format!(
                        "the backup's configuration names data_dir = \"{}\", but this restore went to {}: \
                         change data_dir, or start the hub with --data-dir {}",
                        d.display(),
                        opts.data_dir.display(),
                        opts.data_dir.display()
                    ));
                }
            }
        }
    }
}

fn dry_run(opts: &RestoreOptions, ask: &mut dyn FnMut() -> Option<Passphrase>) -> Result<Restored, BackupError> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = std::env::temp_dir().join(format!("hearth-restore-check-{}-{n}", std::process::id()));
    make_private_dir(&staging)?;
    let result = verify(&opts.file, opts.passphrase.as_ref(), ask, &staging);
    let mut warnings = Vec::new();
    if let Ok(v) = &result {
        check_restored_config(opts, &staging, v, &mut warnings);
    }
    let _ = std::fs::remove_dir_all(&staging);
    let verified = result?;
    let config = if verified.manifest.file(CONFIG_ENTRY).is_none() {
        ConfigOutcome::NoneInArchive
    } else {
        match &opts.config_out {
            Some(p) => ConfigOutcome::Written(p.clone()),
            None => ConfigOutcome::NotWritten(
                opts.config_in_use.clone().unwrap_or_else(|| PathBuf::from("/etc/hearth/hearth.toml")),
            ),
        }
    };
    Ok(Restored {
        file: opts.file.clone(),
        verified,
        data_dir: opts.data_dir.clone(),
        dry_run: true,
        previous: previous_of(&opts.data_dir, "<time>"),
        moved_aside: Vec::new(),
        config,
        hub_running: is_locked(&opts.data_dir),
        warnings,
    })
}

impl std::fmt::Display for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = &self.verified;
        let m = &v.manifest;
        writeln!(
            f,
            "{} is a sound Hearth backup ({}, {}): made {} on `{}` by Hearth {}.",
            self.file.display(),
            human_size(v.archive_bytes),
            if v.encrypted { "encrypted" } else { "not encrypted" },
            m.created_at,
            m.hostname,
            m.hearth_version
        )?;
        for file in &m.files {
            writeln!(f, "  {:<12} {:>10}  sha256 {}  matches", file.name, human_size(file.size), file.sha256)?;
        }
        writeln!(f, "  the database passes SQLite's integrity check; it holds {}", v.counts)?;
        let latest = crate::store::migrations::LATEST;
        if v.schema < latest {
            writeln!(
                f,
                "  its schema (version {}) is older than this hearth's ({latest}): the hub upgrades it at its next start, after copying it to backups/",
                v.schema
            )?;
        }
        if !m.secrets_key_included {
            writeln!(f, "  it holds no secrets.key: no secrets had been sealed")?;
        }
        writeln!(f, "  plugins are not in backups: install them again in the plugins directory")?;
        let db = self.data_dir.join(DB_FILE);
        if self.dry_run {
            writeln!(f, "Nothing was changed (--dry-run). A restore into {}:", self.data_dir.display())?;
            match &self.previous {
                None => writeln!(f, "  writes {} (there is none yet)", db.display())?,
                Some(Previous { aside: None, .. }) => {
                    writeln!(f, "  replaces {}, which holds nothing yet", db.display())?;
                }
                Some(Previous { aside: Some(a), counts }) => writeln!(
                    f,
                    "  moves the database there ({}) aside to {} (this needs --force)",
                    counts.map_or_else(|| "it cannot be read".to_owned(), |c| c.to_string()),
                    a.display()
                )?,
            }
            match &self.config {
                ConfigOutcome::Written(p) => writeln!(f, "  writes the backup's configuration to {}", p.display())?,
                ConfigOutcome::NotWritten(p) => writeln!(
                    f,
                    "  does not write the backup's configuration unless given --config (the hub here reads {})",
                    p.display()
                )?,
                _ => {}
            }
            if self.hub_running {
                writeln!(f, "  needs the hub stopped first: one is running on {}", self.data_dir.display())?;
            }
        } else {
            writeln!(f, "Restored into {}.", self.data_dir.display())?;
            if let Some(Previous { aside: None, .. }) = &self.previous {
                writeln!(f, "  the database that was there held nothing; it was replaced")?;
            }
            for (from, to) in &self.moved_aside {
                writeln!(f, "  moved {} aside to {} (kept)", from.display(), to.display())?;
            }
            match &self.config {
                ConfigOutcome::Written(p) => writeln!(f, "  wrote the backup's configuration to {}", p.display())?,
                ConfigOutcome::Unchanged(p) => {
                    writeln!(f, "  {} already held the backup's configuration", p.display())?
                }
                ConfigOutcome::NotWritten(p) => writeln!(
                    f,
                    "  the backup's configuration was not written: it would go to {}; run again with --config {} to write it",
                    p.display(),
                    p.display()
                )?,
                ConfigOutcome::NoneInArchive => writeln!(f, "  the backup holds no configuration file")?,
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if !self.dry_run {
            write!(f, "Start the hub (e.g. `sudo systemctl start hearth`); it serves the restored home.")?;
        }
        Ok(())
    }
}
