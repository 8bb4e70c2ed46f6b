//! Numbered schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! A migration is never edited once released: add a new one instead.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;

/// The migrations; the database's `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: registry, state, history, accounts.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE areas (
        id   TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sort INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE devices (
        id           TEXT PRIMARY KEY,
        adapter      TEXT NOT NULL,
        name         TEXT NOT NULL,
        name_by_user INTEGER NOT NULL DEFAULT 0,
        area         TEXT REFERENCES areas(id) ON DELETE SET NULL,
        descriptor   TEXT NOT NULL,
        updated_at   INTEGER NOT NULL
    );
    CREATE TABLE state (
        device      TEXT NOT NULL,
        feature     TEXT NOT NULL,
        value       TEXT NOT NULL,
        changed_at  INTEGER NOT NULL,
        reported_at INTEGER NOT NULL,
        PRIMARY KEY (device, feature)
    ) WITHOUT ROWID;
    CREATE TABLE history (
        id      INTEGER PRIMARY KEY,
        device  TEXT NOT NULL,
        feature TEXT NOT NULL,
        kind    INTEGER NOT NULL, -- 0 state change, 1 event
        value   TEXT NOT NULL,    -- JSON
        at      INTEGER NOT NULL, -- ms since 1970
        context TEXT              -- JSON
    );
    CREATE INDEX history_device_at ON history (device, feature, at);
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        admin         INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        kind         TEXT NOT NULL, -- 'api' (long-lived) or 'session' (login)
        hash         TEXT NOT NULL UNIQUE, -- SHA-256 of the token, hex
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER
    );",
];

/// The schema version this build knows.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies every migration the database lacks, each in its own transaction.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST {
        return Err(StoreError::TooNew { path: path.to_owned(), found: current, known: LATEST });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "Applied database migration.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_a_new_database_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let mut conn = Connection::open(&path).expect("open");
        migrate(&mut conn, &path).expect("first");
        migrate(&mut conn, &path).expect("second");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(v, LATEST);
        conn.pragma_update(None, "user_version", LATEST + 1).expect("bump");
        let err = migrate(&mut conn, &path).expect_err("too new");
        assert!(err.to_string().contains("newer than this hearth knows"), "{err}");
    }
}
