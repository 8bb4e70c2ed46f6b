//! The archive format: round trips (plain and encrypted), and every refusal.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::*;

const CONFIG: &str = "[http]\nlisten = \"127.0.0.1:8080\"\n";

/// A data directory with a database holding a little of everything, a key and a configuration.
struct Home {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

fn home(history_rows: usize) -> Home {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().to_path_buf();
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("dir");
    let (mut conn, _) = crate::store::open_and_migrate(&data).expect("db");
    crate::auth::insert_user(&conn, "owner", "a-hash", true).expect("user");
    crate::auth::insert_user(&conn, "kid", "another-hash", false).expect("user");
    conn.execute("INSERT INTO areas (id, name, sort) VALUES ('kitchen', 'Kitchen', 0)", []).expect("area");
    conn.execute(
        "INSERT INTO devices (id, adapter, name, descriptor, updated_at) VALUES ('demo:lamp', 'demo', 'Lamp', '{}', 0)",
        [],
    )
    .expect("device");
    let tx = conn.transaction().expect("tx");
    tx.execute("INSERT INTO series (id, device, feature) VALUES (1, 'demo:lamp', 'brightness')", []).expect("series");
    for i in 0..history_rows {
        tx.execute(
            "INSERT INTO history (series, kind, value, at) VALUES (1, 0, ?1, ?2)",
            rusqlite::params![format!("{}", i % 100), i as i64],
        )
        .expect("history");
    }
    tx.commit().expect("commit");
    drop(conn);
    std::fs::write(data.join(KEY_FILE), [7u8; 32]).expect("key");
    let config = root.join("hearth.toml");
    std::fs::write(&config, CONFIG).expect("config");
    Home { _tmp: tmp, root, data, config }
}

impl Home {
    fn sources(&self) -> Sources {
        Sources { data_dir: self.data.clone(), config_file: Some(self.config.clone()) }
    }

    fn backup(&self, name: &str, passphrase: Option<&str>) -> (PathBuf, Written) {
        let path = self.root.join(name);
        let p = passphrase.map(|p| Passphrase::new(p).expect("passphrase"));
        let w = write_file(&self.sources(), &path, p.as_ref(), &AtomicBool::new(false)).expect("backup");
        (path, w)
    }

    fn fresh_dir(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }
}

fn no_ask() -> Option<Passphrase> {
    None
}

fn check(path: &Path, passphrase: Option<&str>, into: &Path) -> Result<Verified, BackupError> {
    let p = passphrase.map(|p| Passphrase::new(p).expect("passphrase"));
    verify(path, p.as_ref(), &mut no_ask, into)
}

/// A directory's files with the SHA-256 of each.
fn listing(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        sha256_hex(&std::fs::read(e.path()).unwrap_or_default()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_plain_archive_round_trips_and_is_a_tar_file_with_the_manifest_first() {
    let h = home(50);
    let (path, w) = h.backup("plain.hearth-backup", None);
    assert!(!w.encrypted);
    assert_eq!(w.bytes, std::fs::metadata(&path).expect("file").len());
    assert_eq!(
        w.manifest.counts,
        Counts { devices: 1, areas: 1, automations: 0, scenes: 0, history_rows: 50, users: 2 }
    );
    assert_eq!(w.manifest.schema_version, crate::store::migrations::LATEST);
    assert!(w.manifest.secrets_key_included && !w.manifest.plugins_included);
    let names: Vec<&str> = w.manifest.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, [DB_FILE, CONFIG_ENTRY, KEY_FILE]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600);
    }
    // A tar file: the manifest's header first.
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.starts_with(b"manifest.json\0"));
    assert_eq!(&bytes[257..262], b"ustar");
    // Nothing but the archive is left beside it.
    let left: Vec<String> = listing(&h.root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["data", "hearth.toml", "plain.hearth-backup"]);

    let into = h.fresh_dir("check");
    let v = check(&path, None, &into).expect("verified");
    assert!(!v.encrypted);
    assert_eq!(v.counts, w.manifest.counts);
    assert_eq!(v.manifest, w.manifest);
    assert_eq!(std::fs::read(into.join(KEY_FILE)).expect("key"), [7u8; 32]);
    assert_eq!(std::fs::read_to_string(into.join(CONFIG_ENTRY)).expect("config"), CONFIG);
    let conn = rusqlite::Connection::open(into.join(DB_FILE)).expect("db");
    let n: i64 = conn.query_row("SELECT count(*) FROM history", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 50);
}

#[test]
fn an_encrypted_archive_of_several_chunks_round_trips_and_shows_nothing_in_clear() {
    let h = home(120_000);
    let (path, w) = h.backup("sealed.hearth-backup", Some("correct horse battery staple"));
    assert!(w.encrypted);
    assert!(w.manifest.files[0].size > 2 * format::CHUNK as u64, "{} bytes", w.manifest.files[0].size);
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.starts_with(format::MAGIC));
    for clear in [&b"SQLite format 3"[..], b"manifest.json", b"hearth-backup\"", b"listen"] {
        assert!(!bytes.windows(clear.len()).any(|w| w == clear), "{:?} in clear", String::from_utf8_lossy(clear));
    }
    let into = h.fresh_dir("check");
    let v = check(&path, Some("correct horse battery staple"), &into).expect("verified");
    assert!(v.encrypted);
    assert_eq!(v.counts.history_rows, 120_000);
    // Asked for when not given.
    let into2 = h.fresh_dir("check2");
    let mut asked = 0;
    let mut ask = || {
        asked += 1;
        Passphrase::new("correct horse battery staple").ok()
    };
    verify(&path, None, &mut ask, &into2).expect("verified with the asked passphrase");
    assert_eq!(asked, 1);
}

#[test]
fn the_envelope_round_trips_at_every_chunk_boundary() {
    let pass = Passphrase::new("a long enough passphrase").expect("pass");
    for len in [0, 1, format::CHUNK - 1, format::CHUNK, format::CHUNK + 1, 2 * format::CHUNK] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut enc = format::Encrypt::new(Vec::new(), &pass, len as u64).expect("enc");
        enc.write_all(&plain).expect("write");
        let sealed = enc.finish().expect("finish");
        let mut dec = format::Decrypt::open(&sealed[..], &pass, Some(sealed.len() as u64)).expect("open");
        let mut out = Vec::new();
        let mut buf = vec![0u8; 70_000];
        loop {
            let n = format::Source::read(&mut dec, &mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, plain, "{len} bytes");
        // The last chunk cut off at a chunk boundary is seen, even without the file's length.
        if len >= format::CHUNK {
            let cut = format::HEADER_LEN + format::CHUNK + 16;
            let mut dec = format::Decrypt::open(&sealed[..cut], &pass, None).expect("open");
            let mut sink = vec![0u8; 2 * format::CHUNK];
            let e = format::read_full(&mut dec, &mut sink).expect_err("cut");
            assert!(matches!(e, BackupError::Truncated(_)), "{e}");
        }
    }
    // Writing other than the length announced is an error, never a short archive.
    let enc = format::Encrypt::new(Vec::new(), &pass, 10).expect("enc");
    assert!(enc.finish().is_err());
}

#[test]
fn a_truncated_archive_is_refused_as_truncated_at_every_length() {
    let h = home(20);
    for (name, pass) in [("plain.hearth-backup", None), ("sealed.hearth-backup", Some("open sesame 123"))] {
        let (path, w) = h.backup(name, pass);
        let bytes = std::fs::read(&path).expect("read");
        assert!(w.manifest.files[0].size > 4096);
        let mut cuts = vec![1, 10, 23, 24, 72, 73, 100, 511, 512, 513, 1024, 2000, 4000];
        cuts.extend([bytes.len() / 2, bytes.len() - 1025, bytes.len() - 513, bytes.len() - 1]);
        for cut in cuts {
            let short = h.root.join("short.hearth-backup");
            std::fs::write(&short, &bytes[..cut]).expect("write");
            let into = h.fresh_dir(&format!("into-{cut}"));
            let e = check(&short, pass, &into).expect_err("truncated");
            assert!(matches!(e, BackupError::Truncated(_)), "{name} cut at {cut}: {e}");
            assert!(e.to_string().starts_with("the archive is truncated: "), "{e}");
            assert!(e.to_string().contains("Copy it again"), "{e}");
        }
        let empty = h.root.join("empty.hearth-backup");
        std::fs::write(&empty, b"").expect("write");
        let e = check(&empty, pass, &h.fresh_dir("into-empty")).expect_err("empty");
        assert!(e.to_string().contains("is empty"), "{e}");
    }
}

#[test]
fn a_changed_byte_is_refused_wherever_it_is() {
    let h = home(20);
    let (path, w) = h.backup("plain.hearth-backup", None);
    let bytes = std::fs::read(&path).expect("read");
    let tar_manifest_size =
        format::parse_header(bytes[..512].try_into().expect("block")).expect("header").expect("entry").size as usize;
    let db_header = 512 + tar_manifest_size + format::padding(tar_manifest_size as u64);
    let db_data = db_header + 512;
    let db_size = w.manifest.files[0].size as usize;
    let key_data = db_data + db_size + format::padding(db_size as u64) + 512 + CONFIG.len().div_ceil(512) * 512 + 512;
    for (at, expect) in [
        (db_data + 5000, "hearth.db's checksum does not match the manifest: the archive is damaged or was changed"),
        (db_data + db_size - 1, "hearth.db's checksum does not match the manifest"),
        (key_data + 3, "secrets.key's checksum does not match the manifest"),
        (db_header + 130, "the archive is damaged: a file header does not add up"),
        (140, "the archive is damaged: the manifest's header"),
    ] {
        let mut changed = bytes.clone();
        changed[at] ^= 0x20;
        let file = h.root.join("changed.hearth-backup");
        std::fs::write(&file, &changed).expect("write");
        let e = check(&file, None, &h.fresh_dir(&format!("into-{at}"))).expect_err("changed");
        assert!(e.to_string().contains(expect), "byte {at}: {e}");
    }
    // A change in the manifest's text (a checksum in it) is caught as a mismatch too.
    let text = String::from_utf8_lossy(&bytes[512..512 + tar_manifest_size]).into_owned();
    let sum = &w.manifest.files[0].sha256;
    let at = 512 + text.find(sum.as_str()).expect("the checksum is in the manifest");
    let mut changed = bytes.clone();
    changed[at] = if changed[at] == b'0' { b'1' } else { b'0' };
    let file = h.root.join("changed.hearth-backup");
    std::fs::write(&file, &changed).expect("write");
    let e = check(&file, None, &h.fresh_dir("into-manifest")).expect_err("changed");
    assert!(matches!(e, BackupError::Checksum(ref n) if n == DB_FILE), "{e}");
}

#[test]
fn an_encrypted_archive_refuses_a_wrong_passphrase_a_missing_one_and_any_change() {
    let h = home(30_000);
    let (path, _) = h.backup("sealed.hearth-backup", Some("open sesame 123"));
    let into = h.fresh_dir("into");
    let e = check(&path, Some("open sesame 124"), &into).expect_err("wrong");
    assert!(matches!(e, BackupError::WrongPassphrase));
    assert!(e.to_string().starts_with("the passphrase is wrong, or the archive was changed"), "{e}");
    let e = check(&path, None, &into).expect_err("none");
    assert!(
        e.to_string().ends_with("is encrypted: give its passphrase with --passphrase-file FILE or --passphrase-stdin"),
        "{e}"
    );
    let bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > format::HEADER_LEN + format::CHUNK + 5000, "several chunks");
    for (at, expect) in [
        (31, "its key derivation asks for"),
        (40, "the passphrase is wrong, or the archive was changed"),
        (format::HEADER_LEN + 100, "the passphrase is wrong, or the archive was changed"),
        (format::HEADER_LEN + format::CHUNK + 16 + 100, "does not authenticate"),
        (bytes.len() - 1, "does not authenticate"),
    ] {
        let mut changed = bytes.clone();
        changed[at] ^= 1;
        let file = h.root.join("changed.hearth-backup");
        std::fs::write(&file, &changed).expect("write");
        let e = check(&file, Some("open sesame 123"), &h.fresh_dir(&format!("into-{at}"))).expect_err("changed");
        assert!(e.to_string().contains(expect), "byte {at}: {e}");
    }
    // Bytes added at the end are refused too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"more");
    let file = h.root.join("longer.hearth-backup");
    std::fs::write(&file, &longer).expect("write");
    let e = check(&file, Some("open sesame 123"), &h.fresh_dir("into-longer")).expect_err("longer");
    assert!(e.to_string().contains("bytes more than its header announces"), "{e}");
    // A short passphrase does not protect a new archive.
    let short = Passphrase::new("short").expect("pass");
    let e = write_file(&h.sources(), &h.root.join("x.hearth-backup"), Some(&short), &AtomicBool::new(false))
        .expect_err("short");
    assert!(e.to_string().contains("shorter than 8 characters"), "{e}");
    assert!(format!("{short:?}").contains("redacted") && !format!("{short:?}").contains("short\""));
}

/// A tar file of these entries, as the format writes them.
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in entries {
        out.extend_from_slice(&format::header(name, bytes.len() as u64, 0));
        out.extend_from_slice(bytes);
        out.extend(std::iter::repeat_n(0u8, format::padding(bytes.len() as u64)));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The bytes of entry `name` of a tar file.
fn entry(tar: &[u8], name: &str) -> Vec<u8> {
    let mut at = 0;
    loop {
        let h = format::parse_header(tar[at..at + 512].try_into().expect("block")).expect("header").expect("entry");
        let size = h.size as usize;
        if h.name == name {
            return tar[at + 512..at + 512 + size].to_vec();
        }
        at += 512 + size + format::padding(h.size);
    }
}

#[test]
fn a_foreign_file_is_not_a_hearth_backup() {
    let h = home(1);
    let mut random = vec![0u8; 5000];
    OsRng.fill_bytes(&mut random);
    let other_tar = tar(&[("notes.txt", b"hello")]);
    for (name, bytes) in [
        ("random.bin", random.as_slice()),
        ("short.bin", b"hello, world".as_slice()),
        ("other.tar", other_tar.as_slice()),
        ("db.sqlite", &std::fs::read(h.data.join(DB_FILE)).expect("db")[..]),
    ] {
        let file = h.root.join(name);
        std::fs::write(&file, bytes).expect("write");
        let e = check(&file, None, &h.fresh_dir(&format!("into-{name}"))).expect_err("foreign");
        assert!(matches!(e, BackupError::NotHearth(_)), "{name}: {e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is not a Hearth backup: choose a file written by `hearth backup` (its name ends in .hearth-backup)",
                file.display()
            )
        );
    }
}

#[test]
fn a_manifest_that_cannot_be_trusted_is_refused() {
    let h = home(1);
    let (path, w) = h.backup("plain.hearth-backup", None);
    let db = entry(&std::fs::read(&path).expect("read"), DB_FILE);
    let good = serde_json::to_value(&w.manifest).expect("json");
    let with = |key: &str, value: serde_json::Value| {
        let mut m = good.clone();
        match key {
            "files.1.name" => m["files"][1]["name"] = value,
            k => m[k] = value,
        }
        m
    };
    // A manifest, the entries after it, zero bytes added at the end, what the refusal says.
    type Case<'a> = (serde_json::Value, Vec<(&'a str, &'a [u8])>, usize, &'a str);
    let cases: Vec<Case> = vec![
        (with("format_version", 2.into()), vec![(DB_FILE, &db)], 0, "archive format 2, which this hearth"),
        (with("format", "zip".into()), vec![(DB_FILE, &db)], 0, "names format `zip`"),
        (with("files.1.name", "../etc/passwd".into()), vec![(DB_FILE, &db)], 0, "unknown file `../etc/passwd`"),
        (good.clone(), vec![(DB_FILE, &db), ("extra.txt", b"x")], 4096, "which its manifest does not list"),
        (good.clone(), vec![(DB_FILE, &db)], 4096, "is listed in its manifest but not in it"),
        (good.clone(), vec![(DB_FILE, &db)], 0, "bytes of the"),
        (good.clone(), vec![(DB_FILE, &db[..db.len() - 512])], 4096, "bytes in it,"),
    ];
    for (i, (manifest, files, extra, expect)) in cases.into_iter().enumerate() {
        let text = serde_json::to_vec(&manifest).expect("json");
        let mut entries: Vec<(&str, &[u8])> = vec![(MANIFEST_ENTRY, &text)];
        entries.extend(files);
        let mut bytes = tar(&entries);
        bytes.extend(std::iter::repeat_n(0u8, extra));
        let file = h.root.join(format!("case-{i}.hearth-backup"));
        std::fs::write(&file, bytes).expect("write");
        let e = check(&file, None, &h.fresh_dir(&format!("into-{i}"))).expect_err("refused");
        assert!(e.to_string().contains(expect), "case {i}: {e}");
    }
    // Not JSON at all.
    let file = h.root.join("garbled.hearth-backup");
    std::fs::write(&file, tar(&[(MANIFEST_ENTRY, b"{not json")])).expect("write");
    let e = check(&file, None, &h.fresh_dir("into-garbled")).expect_err("garbled");
    assert!(e.to_string().contains("its manifest cannot be read"), "{e}");
}

#[test]
fn a_newer_schema_and_a_damaged_database_are_refused_with_what_to_do() {
    let h = home(1);
    let conn = rusqlite::Connection::open(h.data.join(DB_FILE)).expect("db");
    let newer = crate::store::migrations::LATEST + 1;
    conn.execute_batch(&format!("PRAGMA user_version = {newer};")).expect("version");
    drop(conn);
    let (path, _) = h.backup("newer.hearth-backup", None);
    let e = check(&path, None, &h.fresh_dir("into")).expect_err("newer");
    assert!(matches!(e, BackupError::TooNew { found, .. } if found == newer), "{e}");
    assert!(e.to_string().contains("install that version or newer, then restore"), "{e}");

    // A database with damaged pages cannot be backed up...
    let h = home(20_000);
    let db = h.data.join(DB_FILE);
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;").expect("checkpoint");
    drop(conn);
    let (path, w) = h.backup("good.hearth-backup", None);
    let mut damaged = std::fs::read(&db).expect("read");
    let end = damaged.len() - 4096;
    for b in &mut damaged[8192..end] {
        *b = 0x5a;
    }
    std::fs::write(&db, &damaged).expect("write");
    let e = write_file(&h.sources(), &h.root.join("x.hearth-backup"), None, &AtomicBool::new(false))
        .expect_err("damaged source");
    assert!(
        e.to_string().contains("cannot be backed up") && e.to_string().contains("restore an earlier backup"),
        "{e}"
    );
    // ...and one inside an archive, with checksums that match it, fails the integrity check.
    let mut manifest = serde_json::to_value(&w.manifest).expect("json");
    manifest["files"] = serde_json::json!([{"name": DB_FILE, "size": damaged.len(), "sha256": sha256_hex(&damaged)}]);
    let text = serde_json::to_vec(&manifest).expect("json");
    let file = h.root.join("damaged.hearth-backup");
    std::fs::write(&file, tar(&[(MANIFEST_ENTRY, &text), (DB_FILE, &damaged)])).expect("write");
    let e = check(&file, None, &h.fresh_dir("into-damaged")).expect_err("damaged");
    assert!(matches!(e, BackupError::Integrity(_)), "{e}");
    assert!(e.to_string().contains("fails SQLite's integrity check") && e.to_string().ends_with("use another backup"));
    drop(path);
}

#[test]
fn without_a_database_there_is_nothing_to_back_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sources = Sources { data_dir: tmp.path().join("nothing"), config_file: None };
    let e = write_file(&sources, &tmp.path().join("a.hearth-backup"), None, &AtomicBool::new(false)).expect_err("none");
    assert!(e.to_string().contains("there is no database at") && e.to_string().contains("--data-dir"), "{e}");
    assert!(!tmp.path().join("a.hearth-backup").exists());
    // A cancelled backup leaves no file either.
    let h = home(10);
    let target = h.root.join("c.hearth-backup");
    let e = write_file(&h.sources(), &target, None, &AtomicBool::new(true)).expect_err("cancelled");
    assert!(matches!(e, BackupError::Cancelled), "{e}");
    let left: Vec<String> = listing(&h.root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(left, ["data", "hearth.toml"]);
}

fn opts(file: &Path, data_dir: &Path) -> RestoreOptions {
    RestoreOptions {
        file: file.to_path_buf(),
        data_dir: data_dir.to_path_buf(),
        config_out: None,
        config_in_use: None,
        passphrase: None,
        dry_run: false,
        force: false,
    }
}

#[test]
fn restore_moves_a_database_with_data_aside_only_with_force_and_writes_the_configuration() {
    let h = home(5);
    let (path, _) = h.backup("a.hearth-backup", None);

    // Into a directory that does not exist yet.
    let fresh = h.root.join("fresh");
    let r = restore(&opts(&path, &fresh), &mut no_ask).expect("restored");
    assert!(r.previous.is_none() && r.moved_aside.is_empty());
    assert_eq!(r.config, restore::ConfigOutcome::NotWritten(PathBuf::from("/etc/hearth/hearth.toml")));
    assert_eq!(std::fs::read(fresh.join(KEY_FILE)).expect("key"), [7u8; 32]);
    let text = r.to_string();
    assert!(text.contains("Restored into") && text.contains("run again with --config"), "{text}");
    let names: Vec<String> = listing(&fresh).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [DB_FILE, LOCK_FILE, KEY_FILE], "no staging directory is left");

    // Over a database with data: refused without --force, and nothing changes.
    let other = home(1);
    std::fs::write(other.data.join(KEY_FILE), [9u8; 32]).expect("key");
    let before = listing(&other.data);
    let e = restore(&opts(&path, &other.data), &mut no_ask).expect_err("not empty");
    assert!(e.to_string().contains("already holds a database (1 device,") && e.to_string().contains("--force"), "{e}");
    assert_eq!(listing(&other.data), before, "untouched");

    // With --force it is moved aside, with the key, and the configuration goes to --config.
    let config_out = other.root.join("etc").join("hearth.toml");
    std::fs::create_dir_all(config_out.parent().expect("dir")).expect("dir");
    std::fs::write(&config_out, "# the old one\n").expect("old config");
    let mut o = opts(&path, &other.data);
    o.force = true;
    o.config_out = Some(config_out.clone());
    let r = restore(&o, &mut no_ask).expect("restored");
    let moved: Vec<PathBuf> = r.moved_aside.iter().map(|(from, _)| from.clone()).collect();
    for p in [other.data.join(DB_FILE), other.data.join(KEY_FILE), config_out.clone()] {
        assert!(moved.contains(&p), "{p:?} not in {moved:?}");
    }
    let aside = r.previous.as_ref().and_then(|p| p.aside.clone()).expect("aside");
    let old = rusqlite::Connection::open(&aside).expect("the old database is kept");
    let n: i64 = old.query_row("SELECT count(*) FROM history", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 1);
    let restored = rusqlite::Connection::open(other.data.join(DB_FILE)).expect("db");
    let n: i64 = restored.query_row("SELECT count(*) FROM history", [], |r| r.get(0)).expect("count");
    assert_eq!(n, 5);
    assert_eq!(std::fs::read(other.data.join(KEY_FILE)).expect("key"), [7u8; 32]);
    assert!(r.moved_aside.iter().any(|(_, to)| std::fs::read(to).ok() == Some(vec![9u8; 32])), "the old key is kept");
    assert_eq!(std::fs::read_to_string(&config_out).expect("config"), CONFIG);
    assert!(r.moved_aside.iter().any(|(_, to)| std::fs::read_to_string(to).ok().as_deref() == Some("# the old one\n")));
    let text = r.to_string();
    assert!(text.contains("aside to") && text.contains("wrote the backup's configuration to"), "{text}");

    // An empty database (a hub started once) is simply replaced.
    let blank = h.root.join("blank");
    std::fs::create_dir_all(&blank).expect("dir");
    drop(crate::store::open_and_migrate(&blank).expect("db"));
    let r = restore(&opts(&path, &blank), &mut no_ask).expect("restored");
    assert!(r.previous.as_ref().is_some_and(|p| p.aside.is_none()) && r.moved_aside.is_empty());
    assert!(r.to_string().contains("held nothing; it was replaced"));
}

#[test]
fn restore_refuses_while_the_directory_is_locked_and_a_dry_run_changes_nothing() {
    let h = home(5);
    let (path, _) = h.backup("a.hearth-backup", None);
    let target = home(2);
    let before = listing(&target.data);
    let lock = lock_data_dir(&target.data).expect("lock");
    let e = restore(&opts(&path, &target.data), &mut no_ask).expect_err("locked");
    assert!(matches!(e, BackupError::HubRunning(_)), "{e}");
    assert!(e.to_string().contains("stop it first"), "{e}");
    assert!(is_locked(&target.data));
    assert!(matches!(lock_data_dir(&target.data), Err(LockError::Held)));

    let mut o = opts(&path, &target.data);
    o.dry_run = true;
    let r = restore(&o, &mut no_ask).expect("dry run");
    assert!(r.dry_run && r.hub_running);
    let text = r.to_string();
    assert!(text.contains("Nothing was changed (--dry-run)") && text.contains("needs the hub stopped first"), "{text}");
    assert!(text.contains("(this needs --force)"), "{text}");
    drop(lock);
    let mut after = listing(&target.data);
    after.retain(|(n, _)| n != LOCK_FILE);
    assert_eq!(after, before, "a dry run changes nothing");
    assert!(!is_locked(&target.data));

    // A refused archive leaves a directory it created no trace.
    let bad = h.root.join("bad.hearth-backup");
    std::fs::write(&bad, b"not a backup at all, just some text that is long enough").expect("write");
    let nowhere = h.root.join("nowhere");
    assert!(restore(&opts(&bad, &nowhere), &mut no_ask).is_err());
    assert!(!nowhere.exists());
}

#[test]
fn scheduled_backups_are_named_by_time_and_only_their_own_are_pruned() {
    assert!(schedule::is_scheduled_name("hearth-2026-01-31T03-00-00-000Z.hearth-backup"));
    let named = schedule::scheduled_name(Timestamp::from_millis(1_769_828_400_123));
    assert_eq!(named, "hearth-2026-01-31T03-00-00-123Z.hearth-backup");
    assert!(schedule::is_scheduled_name(&named));
    for other in [
        "hearth-2026-01-31T03-00-00-000Z-before-v9.db",
        "hearth-backup-2026-01-31.hearth-backup",
        "hearth-2026-01-31.hearth-backup",
        "mine.hearth-backup",
        "hearth-2026-01-31T03-00-00-000Z.hearth-backup.partial-12",
    ] {
        assert!(!schedule::is_scheduled_name(other), "{other}");
    }

    let h = home(3);
    let mut config = crate::config::BackupConfig { keep: 2, ..Default::default() };
    config.dir = Some(h.root.join("backups"));
    let hub = schedule::HubBackups::new(config, &h.data, Some(h.config.clone()));
    let dir = h.root.join("backups");
    std::fs::create_dir_all(&dir).expect("dir");
    let keepers = ["hearth-2020-01-01T00-00-00-000Z-before-v9.db", "mine.hearth-backup"];
    for k in keepers {
        std::fs::write(dir.join(k), b"keep me").expect("write");
    }
    std::fs::write(dir.join("hearth-2020-01-01T00-00-00-000Z.hearth-backup.partial-1"), b"half").expect("write");
    let mut made = Vec::new();
    for _ in 0..4 {
        let w = hub.run_once(&AtomicBool::new(false)).expect("backup");
        made.push(w.path.file_name().expect("name").to_string_lossy().into_owned());
        // Names are by the millisecond; make the next one later.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut names: Vec<String> = listing(&dir).into_iter().map(|(n, _)| n).collect();
    names.sort();
    let mut want: Vec<String> = keepers.iter().map(|s| (*s).to_owned()).chain(made[2..].iter().cloned()).collect();
    want.sort();
    assert_eq!(names, want);
    let status = hub.status();
    assert_eq!(status.files.len(), 2);
    assert_eq!(status.files[0].name, made[3], "newest first");
    assert!(status.enabled && !status.encrypted && status.keep == 2);

    // A passphrase file that cannot be read stops the backup; it never falls back to clear.
    let config = crate::config::BackupConfig {
        dir: Some(h.root.join("sealed")),
        passphrase_file: Some(h.root.join("missing-passphrase")),
        ..Default::default()
    };
    let hub = schedule::HubBackups::new(config, &h.data, None);
    let e = hub.run_once(&AtomicBool::new(false)).expect_err("no passphrase");
    assert!(e.to_string().contains("cannot read the passphrase file"), "{e}");
    assert!(hub.files().is_empty());
}

#[test]
fn the_backup_section_has_defaults_and_is_checked() {
    use crate::config::Config;
    let c = Config::parse("", Path::new("x")).expect("defaults");
    assert!(c.backup.enabled && c.backup.keep == 7 && c.backup.dir.is_none() && c.backup.passphrase_file.is_none());
    assert!((c.backup.interval_hours - 24.0).abs() < f64::EPSILON);
    let c = Config::parse("[backup]\ninterval_hours = 6\nkeep = 3\ndir = \"/mnt/usb\"\n", Path::new("x")).expect("ok");
    assert!((c.backup.interval_hours - 6.0).abs() < f64::EPSILON && c.backup.keep == 3);
    let e = Config::parse("[backup]\ninterval_hours = 0\n", Path::new("hearth.toml")).expect_err("zero").to_string();
    assert!(e.starts_with("hearth.toml:2:1: [backup] interval_hours = 0 must be from one minute"), "{e}");
    let e = Config::parse("[backup]\nkeep = 0\n", Path::new("x")).expect_err("keep").to_string();
    assert!(e.contains("keep = 0 must be from 1 to 1000"), "{e}");
    let e = Config::parse("[backup]\nintervall_hours = 1\n", Path::new("x")).expect_err("typo").to_string();
    assert!(e.contains("did you mean `interval_hours`"), "{e}");
}

#[test]
fn what_an_interrupted_backup_left_is_removed_and_a_running_ones_is_not() {
    let h = home(1);
    let dead = ".hearth-snapshot-999999999-0.db";
    let alive = format!(".hearth-snapshot-{}-999.db", std::process::id());
    let partial = "a.hearth-backup.partial-999999999";
    for name in [dead, alive.as_str(), partial, "b.hearth-backup.partial-999999999"] {
        std::fs::write(h.root.join(name), b"left over").expect("write");
    }
    h.backup("a.hearth-backup", None);
    let names: Vec<String> = listing(&h.root).into_iter().map(|(n, _)| n).collect();
    assert!(!names.iter().any(|n| n == dead || n == partial), "{names:?}");
    assert!(names.contains(&alive), "a running process's scratch file stays: {names:?}");
    assert!(names.iter().any(|n| n == "b.hearth-backup.partial-999999999"), "another archive's is not ours to judge");
}
