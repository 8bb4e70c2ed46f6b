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
    // 2: automations and their versions, scenes, durable runs, traces (see `automations.rs`).
    // Every row carries a JSON document of a few hundred bytes or more, so no table is
    // WITHOUT ROWID (that layout suits rows under about a twentieth of a page). The children of
    // `automations` go with it (ON DELETE CASCADE); they lead with the automation's id in their
    // primary key or an index, so the cascade and the per-automation reads are index lookups.
    // Never upsert `automations` with INSERT OR REPLACE: the replace is a delete and would
    // cascade.
    "CREATE TABLE automations (
        id         TEXT PRIMARY KEY,
        definition TEXT NOT NULL,    -- JSON, the current version's
        version    INTEGER NOT NULL CHECK (version >= 1),
        enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
        created_at INTEGER NOT NULL, -- ms since 1970
        updated_at INTEGER NOT NULL  -- ms, last change of the definition or of enabled
    );
    CREATE TABLE automation_versions (
        automation TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
        version    INTEGER NOT NULL CHECK (version >= 1),
        definition TEXT NOT NULL,    -- JSON
        saved_at   INTEGER NOT NULL, -- ms since 1970
        saved_by   TEXT NOT NULL,    -- account name, 'import' or 'system'
        note       TEXT,
        PRIMARY KEY (automation, version)
    );
    CREATE TABLE scenes (
        id         TEXT PRIMARY KEY,
        definition TEXT NOT NULL,    -- JSON
        created_at INTEGER NOT NULL, -- ms since 1970
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE automation_runs (
        run_id     INTEGER PRIMARY KEY,
        automation TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
        record     TEXT NOT NULL,    -- JSON, the engine's durable run
        updated_at INTEGER NOT NULL  -- ms since 1970
    );
    CREATE INDEX automation_runs_automation ON automation_runs (automation);
    CREATE TABLE automation_traces (
        automation TEXT NOT NULL REFERENCES automations(id) ON DELETE CASCADE,
        run_id     INTEGER NOT NULL,
        started_at INTEGER NOT NULL, -- ms since 1970
        record     TEXT NOT NULL,    -- JSON
        PRIMARY KEY (automation, run_id)
    );
    CREATE INDEX automation_traces_newest ON automation_traces (automation, started_at DESC, run_id DESC);",
    // 3: accounts a household shares: members limited to areas, the audit log, token lookups.
    // `user_areas.area` has no foreign key to `areas` on purpose: a cascade on removing an area
    // would leave a member with no rows, which means every area. A removed area just matches
    // no device any more.
    "CREATE TABLE user_areas (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        area    TEXT NOT NULL, -- an area id
        PRIMARY KEY (user_id, area)
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        id     INTEGER PRIMARY KEY,
        at     INTEGER NOT NULL, -- ms since 1970
        actor  TEXT,             -- account name; NULL: an unknown name at a failed login, the command line
        action TEXT NOT NULL,    -- `auth.login`, `user.add`, `automation.update`, ...
        target TEXT,             -- what it was done to (an account, a token id, an automation id)
        detail TEXT,             -- a short note; never a secret
        ip     TEXT              -- the client's address
    );
    CREATE INDEX tokens_user ON tokens (user_id);
    CREATE INDEX tokens_expiry ON tokens (expires_at) WHERE expires_at IS NOT NULL;",
    // 4: the audit log's notes as data (a saying: `{"code": ..., ...}`), so the UI can show
    // them in the user's language; `detail` keeps the English words.
    "ALTER TABLE audit_log ADD COLUMN say TEXT; -- JSON, a saying of hearth_automations::say",
    // 5: the discovery inbox: what adapters found, and the user's decisions.
    "CREATE TABLE inbox (
        adapter    TEXT NOT NULL,
        key        TEXT NOT NULL,    -- the adapter's stable identity of the thing (a MAC, a device id)
        found      TEXT NOT NULL,    -- JSON, hearth_sdk::Found
        status     TEXT NOT NULL CHECK (status IN ('new', 'accepted', 'ignored')),
        first_seen INTEGER NOT NULL, -- ms since 1970
        last_seen  INTEGER NOT NULL, -- ms since 1970 (written at most every 10 minutes)
        PRIMARY KEY (adapter, key)
    ) WITHOUT ROWID;",
    // 6: adapters' secrets (bind keys, passwords), sealed with the key in `secrets.key`.
    "CREATE TABLE secrets (
        adapter    TEXT NOT NULL,
        name       TEXT NOT NULL,    -- what the adapter calls it (a device's address)
        nonce      BLOB NOT NULL,    -- 12 bytes
        sealed     BLOB NOT NULL,    -- AES-256-GCM of the value, with adapter and name as associated data
        updated_at INTEGER NOT NULL, -- ms since 1970
        PRIMARY KEY (adapter, name)
    ) WITHOUT ROWID;",
    // 7: adapter plugins: whether each is enabled, and its configuration as entered.
    "CREATE TABLE plugins (
        id         TEXT PRIMARY KEY,
        enabled    INTEGER NOT NULL DEFAULT 0,
        config     TEXT NOT NULL DEFAULT '{}', -- JSON object, as an administrator entered it
        updated_at INTEGER NOT NULL            -- ms since 1970
    ) WITHOUT ROWID;",
    // 8: the cloud outbox (see `cloud/outbox.rs`): messages for the cloud in the order of the
    // changes, written with them; `latest` marks the newest row of its kind per device (and
    // feature), which the drop policy keeps. `outbox_size` counts the rows.
    "CREATE TABLE outbox (
        id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the order of sending
        kind    TEXT NOT NULL,            -- device, device_removed, state, event, availability
        device  TEXT NOT NULL,
        feature TEXT NOT NULL DEFAULT '', -- state and events
        payload TEXT NOT NULL,            -- the hub's event, JSON
        at      INTEGER NOT NULL,         -- ms since 1970
        latest  INTEGER NOT NULL
    );
    CREATE INDEX outbox_latest ON outbox (kind, device, feature) WHERE latest = 1;
    CREATE TABLE outbox_size (n INTEGER NOT NULL);
    INSERT INTO outbox_size (n) VALUES (0);
    CREATE TRIGGER outbox_added AFTER INSERT ON outbox BEGIN UPDATE outbox_size SET n = n + 1; END;
    CREATE TRIGGER outbox_removed AFTER DELETE ON outbox BEGIN UPDATE outbox_size SET n = n - 1; END;",
    // 9: history aggregates (see `upkeep.rs`): per device, feature and period (its start), the
    // count, lowest, highest and total of the raw numbers and on/off values (1/0) in it.
    "CREATE TABLE history_5m (
        device  TEXT NOT NULL,
        feature TEXT NOT NULL,
        at      INTEGER NOT NULL, -- the period's start, ms since 1970
        n       INTEGER NOT NULL,
        low     REAL NOT NULL,
        high    REAL NOT NULL,
        total   REAL NOT NULL,
        PRIMARY KEY (device, feature, at)
    ) WITHOUT ROWID;
    CREATE INDEX history_5m_at ON history_5m (at);
    CREATE TABLE history_1h (
        device  TEXT NOT NULL,
        feature TEXT NOT NULL,
        at      INTEGER NOT NULL,
        n       INTEGER NOT NULL,
        low     REAL NOT NULL,
        high    REAL NOT NULL,
        total   REAL NOT NULL,
        PRIMARY KEY (device, feature, at)
    ) WITHOUT ROWID;
    CREATE INDEX history_1h_at ON history_1h (at);",
    // 10: history by series (issue 12: under 100 bytes a sample). A (device, feature) pair is
    // named once in `series`, and history and its aggregates carry its integer id instead of
    // both names in every row and in every index entry. A device's own report (origin device,
    // no parent) keeps no context: NULL, read back as `null`. Row ids of `history` are kept
    // (the budget removes the oldest by id, and the roll-up watermark is an id).
    "CREATE TABLE series (
        id      INTEGER PRIMARY KEY,
        device  TEXT NOT NULL,
        feature TEXT NOT NULL,
        UNIQUE (device, feature)
    );
    INSERT INTO series (device, feature)
        SELECT device, feature FROM history
        UNION SELECT device, feature FROM history_5m
        UNION SELECT device, feature FROM history_1h
        ORDER BY 1, 2;
    CREATE TABLE history_10 (
        id      INTEGER PRIMARY KEY,
        series  INTEGER NOT NULL, -- series.id
        kind    INTEGER NOT NULL, -- 0 state change, 1 event
        value   TEXT NOT NULL,    -- JSON
        at      INTEGER NOT NULL, -- ms since 1970
        context TEXT              -- JSON; NULL for a device's own report (origin device, no parent)
    );
    INSERT INTO history_10 (id, series, kind, value, at, context)
        SELECT h.id, s.id, h.kind, h.value, h.at,
               CASE
                 WHEN h.context IS NULL OR NOT json_valid(h.context) THEN h.context
                 WHEN json_extract(h.context, '$.origin.kind') = 'device'
                      AND COALESCE(json_type(h.context, '$.parent'), 'null') = 'null' THEN NULL
                 ELSE h.context
               END
        FROM history h JOIN series s ON s.device = h.device AND s.feature = h.feature
        ORDER BY h.id;
    DROP INDEX history_device_at;
    DROP TABLE history;
    ALTER TABLE history_10 RENAME TO history;
    CREATE INDEX history_series_at ON history (series, at);
    CREATE TABLE history_5m_10 (
        series INTEGER NOT NULL, -- series.id
        at     INTEGER NOT NULL, -- the period's start, ms since 1970
        n      INTEGER NOT NULL,
        low    REAL NOT NULL,
        high   REAL NOT NULL,
        total  REAL NOT NULL,
        PRIMARY KEY (series, at)
    ) WITHOUT ROWID;
    INSERT INTO history_5m_10 (series, at, n, low, high, total)
        SELECT s.id, a.at, a.n, a.low, a.high, a.total
        FROM history_5m a JOIN series s ON s.device = a.device AND s.feature = a.feature;
    DROP TABLE history_5m;
    ALTER TABLE history_5m_10 RENAME TO history_5m;
    CREATE INDEX history_5m_at ON history_5m (at);
    CREATE TABLE history_1h_10 (
        series INTEGER NOT NULL, -- series.id
        at     INTEGER NOT NULL,
        n      INTEGER NOT NULL,
        low    REAL NOT NULL,
        high   REAL NOT NULL,
        total  REAL NOT NULL,
        PRIMARY KEY (series, at)
    ) WITHOUT ROWID;
    INSERT INTO history_1h_10 (series, at, n, low, high, total)
        SELECT s.id, a.at, a.n, a.low, a.high, a.total
        FROM history_1h a JOIN series s ON s.device = a.device AND s.feature = a.feature;
    DROP TABLE history_1h;
    ALTER TABLE history_1h_10 RENAME TO history_1h;
    CREATE INDEX history_1h_at ON history_1h (at);",
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
    if current > 0 && current < LATEST {
        // Migrations that rewrite tables (10) leave the old ones' pages free: give them back.
        // Only space: a failure here leaves them for reuse.
        match super::upkeep::give_back_free_pages(conn, 0) {
            Ok(0) => {}
            Ok(pages) => tracing::info!(pages, "Gave the pages the upgrade freed back to the file system."),
            Err(e) => tracing::warn!(error = %e, "Could not give the pages the upgrade freed back; they are reused."),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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

    #[test]
    fn migration_2_applies_on_a_version_1_database_with_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(crate::store::DB_FILE);
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("migration 1");
        conn.pragma_update(None, "user_version", 1).expect("version 1");
        conn.execute_batch(
            "INSERT INTO meta (key, value) VALUES ('k', 'v');
             INSERT INTO areas (id, name, sort) VALUES ('kitchen', 'Kitchen', 1);
             INSERT INTO devices (id, adapter, name, area, descriptor, updated_at)
               VALUES ('demo.lamp', 'demo', 'Lamp', 'kitchen', '{}', 5);
             INSERT INTO users (name, password_hash, admin, created_at) VALUES ('ada', 'x', 1, 7);",
        )
        .expect("version 1 data");
        drop(conn);

        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("migrate to latest");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(v, LATEST);
        let area: String =
            conn.query_row("SELECT area FROM devices WHERE id = 'demo.lamp'", [], |r| r.get(0)).expect("device");
        assert_eq!(area, "kitchen");
        assert_eq!(crate::store::meta(&conn, "k").expect("meta").as_deref(), Some("v"));
        conn.execute_batch(
            "INSERT INTO automations (id, definition, version, enabled, created_at, updated_at)
               VALUES ('a', '{}', 1, 1, 1, 1);
             INSERT INTO automation_versions (automation, version, definition, saved_at, saved_by)
               VALUES ('a', 1, '{}', 1, 'ada');
             INSERT INTO automation_runs (run_id, automation, record, updated_at) VALUES (1, 'a', '{}', 1);
             INSERT INTO automation_traces (automation, run_id, started_at, record) VALUES ('a', 1, 1, '{}');
             DELETE FROM automations WHERE id = 'a';",
        )
        .expect("the new tables");
        let left: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM automation_versions) + (SELECT count(*) FROM automation_runs)
                   + (SELECT count(*) FROM automation_traces)",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0, "deleting an automation cascades to its versions, runs and traces");
        let orphan = conn.execute(
            "INSERT INTO automation_runs (run_id, automation, record, updated_at) VALUES (2, 'nobody', '{}', 1)",
            [],
        );
        assert!(orphan.is_err(), "a run must belong to a stored automation");
    }

    #[test]
    fn migrations_3_and_4_apply_on_a_version_2_database_with_accounts() {
        assert_eq!(LATEST, 10);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(crate::store::DB_FILE);
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("migration 1");
        conn.execute_batch(MIGRATIONS[1]).expect("migration 2");
        conn.pragma_update(None, "user_version", 2).expect("version 2");
        conn.execute_batch(
            "INSERT INTO users (name, password_hash, admin, created_at) VALUES ('ada', 'x', 1, 7);
             INSERT INTO users (name, password_hash, admin, created_at) VALUES ('bo', 'x', 0, 7);
             INSERT INTO tokens (user_id, name, kind, hash, created_at, expires_at) VALUES (1, 'web', 'session', 'h', 1, 2);",
        )
        .expect("version 2 data");
        drop(conn);

        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("migrate to latest");
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
        assert_eq!(v, LATEST);
        let tokens: i64 = conn.query_row("SELECT COUNT(*) FROM tokens", [], |r| r.get(0)).expect("tokens");
        assert_eq!(tokens, 1, "tokens survive");
        conn.execute_batch(
            "INSERT INTO user_areas (user_id, area) VALUES (2, 'kitchen');
             INSERT INTO audit_log (at, actor, action, ip, say) VALUES (1, 'ada', 'auth.login', '127.0.0.1', '{\"code\":\"audit_session\",\"session\":1}');
             DELETE FROM users WHERE id = 2;",
        )
        .expect("the new tables");
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM user_areas", [], |r| r.get(0)).expect("count");
        assert_eq!(left, 0, "removing an account removes its areas");
        let orphan = conn.execute("INSERT INTO user_areas (user_id, area) VALUES (99, 'x')", []);
        assert!(orphan.is_err(), "areas belong to an account");
    }

    #[test]
    fn a_database_of_every_earlier_version_upgrades_with_its_data() {
        for from in 1..LATEST {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join(crate::store::DB_FILE);
            let conn = Connection::open(&path).expect("open");
            for sql in &MIGRATIONS[..usize::try_from(from).expect("small")] {
                conn.execute_batch(sql).expect("an old migration");
            }
            conn.pragma_update(None, "user_version", from).expect("version");
            conn.execute_batch(
                "INSERT INTO areas (id, name, sort) VALUES ('kitchen', 'Kitchen', 0);
                 INSERT INTO devices (id, adapter, name, area, descriptor, updated_at)
                   VALUES ('demo:lamp', 'demo', 'Lamp', 'kitchen',
                     '{\"id\":\"demo:lamp\",\"name\":\"Lamp\",\"features\":[]}', 1);
                 INSERT INTO users (name, password_hash, admin, created_at) VALUES ('ada', 'x', 1, 7);
                 INSERT INTO history (id, device, feature, kind, value, at, context) VALUES
                   (5, 'demo:lamp', 'state', 0, 'true', 1000, '{\"id\":\"a-1\",\"origin\":{\"kind\":\"device\"}}'),
                   (6, 'demo:lamp', 'state', 0, 'false', 2000,
                     '{\"id\":\"a-2\",\"origin\":{\"kind\":\"user\",\"name\":\"ada\"}}'),
                   (7, 'demo:lamp', 'action', 1, '\"single\"', 3000,
                     '{\"id\":\"a-3\",\"origin\":{\"kind\":\"device\"},\"parent\":\"a-0\"}'),
                   (9, 'demo:lamp', 'brightness', 0, '40', 4000, NULL),
                   (12, 'demo:sensor', 'temperature', 0, '21.5', 5000,
                     '{\"id\":\"a-4\",\"origin\":{\"kind\":\"device\"}}');",
            )
            .expect("data of the old version");
            if from >= 9 {
                conn.execute_batch(
                    "INSERT INTO history_5m (device, feature, at, n, low, high, total)
                       VALUES ('demo:lamp', 'brightness', 0, 2, 30, 50, 80);
                     INSERT INTO history_1h (device, feature, at, n, low, high, total)
                       VALUES ('demo:lamp', 'brightness', 0, 2, 30, 50, 80), ('demo:gone', 'power', 0, 1, 7, 7, 7);",
                )
                .expect("aggregates of the old version");
            }
            drop(conn);
            let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("upgrade");
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
            assert_eq!(v, LATEST, "from version {from}");
            let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).expect("check");
            assert_eq!(ok, "ok", "from version {from}");
            let loaded = crate::store::load(&conn).expect("load");
            assert_eq!(loaded.devices.len(), 1, "from version {from}");
            assert_eq!(loaded.devices[0].area.as_deref(), Some("kitchen"), "from version {from}");
            let users: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0)).expect("users");
            assert_eq!(users, 1, "from version {from}");
            history_survives(&conn, from);
        }
    }

    #[test]
    fn an_upgrade_to_series_shrinks_the_database_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(crate::store::DB_FILE);
        // Made by the hub (incremental auto-vacuum), at version 9, with a month of a sensor's
        // reports as version 9 stored them.
        let conn = crate::store::open_connection(&path).expect("open");
        for sql in &MIGRATIONS[..9] {
            conn.execute_batch(sql).expect("an old migration");
        }
        conn.pragma_update(None, "user_version", 9).expect("version");
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 19999)
             INSERT INTO history (device, feature, kind, value, at, context)
             SELECT 'zigbee2mqtt:0x00158d0008d4e5f6', 'temperature', 0, printf('%.2f', 18 + (i % 700) / 100.0),
                    1764400000000 + i * 120000, '{\"id\":\"19ac4b2e1f3-' || i || '\",\"origin\":{\"kind\":\"device\"}}'
             FROM n",
            [],
        )
        .expect("history");
        drop(conn);
        let before = std::fs::metadata(&path).expect("file").len();

        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("upgrade");
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0)).expect("rows");
        assert_eq!(rows, 20_000);
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).expect("free");
        assert_eq!(free, 0, "the old tables' pages went back to the file system");
        drop(conn);
        let after = std::fs::metadata(&path).expect("file").len();
        eprintln!("20,000 samples: {before} bytes at version 9, {after} bytes after the upgrade");
        assert!(after < before / 2, "{before} bytes before the upgrade, {after} after");
    }

    /// The history written above, read back through the hub's own reads after the upgrade: every
    /// row with its id, a device's own reports without their context, and the aggregates.
    fn history_survives(conn: &Connection, from: i64) {
        use crate::store::{HistoryQuery, history, upkeep};
        let lamp = hearth_sdk::DeviceId::parse("demo:lamp").expect("id");
        let all = HistoryQuery { limit: 100, ..HistoryQuery::default() };
        let (entries, truncated) = history(conn, &lamp, &all).expect("history");
        assert!(!truncated);
        let got: Vec<(&str, &str, serde_json::Value, i64, Option<serde_json::Value>)> = entries
            .iter()
            .map(|e| (e.feature.as_str(), e.kind, e.value.clone(), e.at.as_millis(), e.context.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("state", "state", json!(true), 1000, None),
                (
                    "state",
                    "state",
                    json!(false),
                    2000,
                    Some(json!({"id": "a-2", "origin": {"kind": "user", "name": "ada"}}))
                ),
                (
                    "action",
                    "event",
                    json!("single"),
                    3000,
                    Some(json!({"id": "a-3", "origin": {"kind": "device"}, "parent": "a-0"}))
                ),
                ("brightness", "state", json!(40), 4000, None),
            ],
            "from version {from}"
        );
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM history ORDER BY id")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("ids")
            .collect::<Result<_, _>>()
            .expect("ids");
        assert_eq!(ids, [5, 6, 7, 9, 12], "row ids are kept, from version {from}");
        let named: Vec<(String, String)> = conn
            .prepare("SELECT s.device, s.feature FROM history h JOIN series s ON s.id = h.series ORDER BY h.id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("series")
            .collect::<Result<_, _>>()
            .expect("series");
        assert_eq!(named[4], ("demo:sensor".to_owned(), "temperature".to_owned()), "from version {from}");
        let old_index: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'history_device_at'", [], |r| r.get(0))
            .expect("index");
        assert_eq!(old_index, 0, "the old index is gone, from version {from}");
        let series: i64 = conn.query_row("SELECT COUNT(*) FROM series", [], |r| r.get(0)).expect("series");
        if from >= 9 {
            assert_eq!(series, 5, "history's four pairs and the aggregates' own one");
            let q = HistoryQuery { feature: Some("brightness".into()), ..all.clone() };
            let (five, _) = upkeep::aggregated(conn, "history_5m", &lamp, &q).expect("5m");
            assert_eq!(five.len(), 1);
            assert_eq!((five[0].count, five[0].min, five[0].max, five[0].mean), (2, 30.0, 50.0, 40.0));
            let gone = hearth_sdk::DeviceId::parse("demo:gone").expect("id");
            let (hourly, _) = upkeep::aggregated(conn, "history_1h", &gone, &all).expect("1h");
            assert_eq!((hourly.len(), hourly[0].feature.as_str(), hourly[0].count), (1, "power", 1));
        } else {
            assert_eq!(series, 4, "from version {from}");
        }
        // The upgraded tables take the roll-up: the rows not yet rolled up go into their periods.
        assert!(upkeep::rollup(conn).expect("rollup") > 0, "from version {from}");
        let temperature: f64 = conn
            .query_row(
                "SELECT a.total FROM history_5m a JOIN series s ON s.id = a.series WHERE s.device = 'demo:sensor'",
                [],
                |r| r.get(0),
            )
            .expect("rolled up");
        assert_eq!(temperature, 21.5, "from version {from}");
    }
}
