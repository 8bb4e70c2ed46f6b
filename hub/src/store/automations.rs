//! SQLite storage of automations and their versions, scenes, durable runs, traces and the
//! engine's last sign of life (schema: migration 2 in [`super::migrations`]).
//!
//! Documents are stored as JSON text and handed in and out as [`serde_json::Value`]: this module
//! does not know the automation engine's types, only plain columns around the documents. A
//! stored document that does not parse is a [`StoreError::Json`] naming the automation (or
//! scene) it belongs to.
//!
//! Every function takes a `&Connection`, so it runs in the writer thread
//! ([`StoreWriter::exec`](super::StoreWriter::exec)) and, for reads, on a read-only connection
//! ([`Readers::with`](super::Readers::with)); a `&rusqlite::Transaction` derefs to one. Functions
//! that write more than one statement wrap them in a savepoint of their own, so each call is
//! atomic inside or outside a surrounding transaction.
//!
//! Versions: every save that changes an automation's definition adds a version (1 for a new
//! automation, then the previous plus one) and keeps all earlier ones; a rollback saves an old
//! definition as a new version, so history is never rewritten. Enabling or disabling is not an
//! edit and adds no version. Deleting an automation deletes its versions, runs and traces too: an
//! id used again starts a new history at version 1.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value;

use super::StoreError;

/// How many traces are kept per automation unless the caller says otherwise.
pub const TRACES_KEPT: usize = 20;

/// The `meta` key holding the last time the engine was alive (ms since 1970).
pub const ALIVE_AT_KEY: &str = "automations.alive_at";

/// An automation as stored: its current definition and the columns around it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredAutomation {
    /// The automation's id.
    pub id: String,
    /// The current definition (the JSON document of version [`version`](Self::version)).
    pub definition: Value,
    /// The current version, 1 or more.
    pub version: u32,
    /// Whether the engine runs it.
    pub enabled: bool,
    /// When it was first saved (ms since 1970).
    pub created_at: i64,
    /// The last change of its definition or of `enabled` (ms since 1970). When the current
    /// definition was saved is its version's [`VersionInfo::saved_at`].
    pub updated_at: i64,
}

/// One saved version of an automation, without its definition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VersionInfo {
    /// The version number, 1 for the first.
    pub version: u32,
    /// When it was saved (ms since 1970).
    pub saved_at: i64,
    /// Who saved it: an account name, `import` or `system`.
    pub saved_by: String,
    /// What the save was about (for a rollback, `rollback to vN`).
    pub note: Option<String>,
}

/// A scene as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredScene {
    /// The scene's id.
    pub id: String,
    /// Its definition.
    pub definition: Value,
    /// When it was first saved (ms since 1970).
    pub created_at: i64,
    /// When its definition last changed (ms since 1970).
    pub updated_at: i64,
}

/// A durable run: one waiting in a delay or a wait, to be resumed after a restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredRun {
    /// The run's id, unique among runs.
    pub run_id: u64,
    /// The automation it runs.
    pub automation: String,
    /// The engine's record of the run.
    pub record: Value,
    /// When the record was last saved (ms since 1970).
    pub updated_at: i64,
}

/// The trace of one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredTrace {
    /// The run's id.
    pub run_id: u64,
    /// When the run started (ms since 1970); traces are ordered and pruned by it.
    pub started_at: i64,
    /// The engine's trace.
    pub record: Value,
}

// ---- automations ----

/// Saves an automation's definition, creating the automation if it is new, and returns its
/// current version.
///
/// A changed definition becomes a new version (1 for a new automation, else the previous plus
/// one), recorded with `by` (an account name, `import` or `system`) and the optional `note`.
/// A definition equal to the current one (as JSON values, so key order and spacing do not
/// matter) adds no version and returns the current one; `enabled` is still applied. A current
/// definition that no longer parses counts as different, so saving repairs it.
pub fn save_automation(
    conn: &Connection,
    id: &str,
    definition: &Value,
    enabled: bool,
    by: &str,
    note: Option<&str>,
    now_ms: i64,
) -> Result<u32, StoreError> {
    atomically(conn, |conn| {
        let text = serde_json::to_string(definition)?;
        let current: Option<(String, u32, bool)> = conn
            .prepare_cached("SELECT definition, version, enabled FROM automations WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let version = match current {
            None => {
                conn.prepare_cached(
                    "INSERT INTO automations (id, definition, version, enabled, created_at, updated_at)
                     VALUES (?1, ?2, 1, ?3, ?4, ?4)",
                )?
                .execute(params![id, text, enabled, now_ms])?;
                1
            }
            Some((stored, version, was_enabled)) => {
                let same = stored == text || serde_json::from_str::<Value>(&stored).is_ok_and(|v| v == *definition);
                if same {
                    if was_enabled != enabled {
                        set_enabled(conn, id, enabled, now_ms)?;
                    }
                    return Ok(version);
                }
                // Saturating: four billion saves later the version row's key collides, an error.
                let next = version.saturating_add(1);
                conn.prepare_cached(
                    "UPDATE automations SET definition = ?2, version = ?3, enabled = ?4, updated_at = ?5
                     WHERE id = ?1",
                )?
                .execute(params![id, text, next, enabled, now_ms])?;
                next
            }
        };
        conn.prepare_cached(
            "INSERT INTO automation_versions (automation, version, definition, saved_at, saved_by, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![id, version, text, now_ms, by, note])?;
        Ok(version)
    })
}

/// Enables or disables an automation; returns whether it exists.
///
/// This is not an edit: it adds no version, and a rollback keeps the current state. It moves
/// `updated_at` only when the state changes.
pub fn set_enabled(conn: &Connection, id: &str, enabled: bool, now_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE automations
             SET enabled = ?2, updated_at = CASE WHEN enabled = ?2 THEN updated_at ELSE ?3 END
             WHERE id = ?1",
        )?
        .execute(params![id, enabled, now_ms])?;
    Ok(n > 0)
}

/// Deletes an automation with all its versions, durable runs and traces; returns whether it
/// existed.
pub fn delete_automation(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    // The foreign keys cascade too, but only on connections with `foreign_keys = ON`; deleting
    // the children explicitly leaves no orphans on any connection.
    atomically(conn, |conn| {
        conn.execute("DELETE FROM automation_traces WHERE automation = ?1", [id])?;
        conn.execute("DELETE FROM automation_runs WHERE automation = ?1", [id])?;
        conn.execute("DELETE FROM automation_versions WHERE automation = ?1", [id])?;
        Ok(conn.execute("DELETE FROM automations WHERE id = ?1", [id])? > 0)
    })
}

const AUTOMATION_COLUMNS: &str = "id, definition, version, enabled, created_at, updated_at";

fn automation_row(r: &Row<'_>) -> rusqlite::Result<(String, String, u32, bool, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn stored_automation(row: (String, String, u32, bool, i64, i64)) -> Result<StoredAutomation, StoreError> {
    let (id, definition, version, enabled, created_at, updated_at) = row;
    let definition = parse(&definition, || format!("the definition of automation {id:?}"))?;
    Ok(StoredAutomation { id, definition, version, enabled, created_at, updated_at })
}

/// Loads every automation, by id.
pub fn load_automations(conn: &Connection) -> Result<Vec<StoredAutomation>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {AUTOMATION_COLUMNS} FROM automations ORDER BY id"))?;
    let rows = stmt.query_map([], automation_row)?;
    rows.map(|row| stored_automation(row?)).collect()
}

/// Loads one automation.
pub fn automation(conn: &Connection, id: &str) -> Result<Option<StoredAutomation>, StoreError> {
    conn.prepare_cached(&format!("SELECT {AUTOMATION_COLUMNS} FROM automations WHERE id = ?1"))?
        .query_row([id], automation_row)
        .optional()?
        .map(stored_automation)
        .transpose()
}

/// Lists an automation's versions, newest first (empty for an unknown automation).
pub fn versions(conn: &Connection, id: &str) -> Result<Vec<VersionInfo>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, saved_at, saved_by, note FROM automation_versions
         WHERE automation = ?1 ORDER BY version DESC",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(VersionInfo { version: r.get(0)?, saved_at: r.get(1)?, saved_by: r.get(2)?, note: r.get(3)? })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Loads one version of an automation with its definition.
pub fn version(conn: &Connection, id: &str, version: u32) -> Result<Option<(VersionInfo, Value)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT version, saved_at, saved_by, note, definition FROM automation_versions
             WHERE automation = ?1 AND version = ?2",
        )?
        .query_row(params![id, version], |r| {
            let info = VersionInfo { version: r.get(0)?, saved_at: r.get(1)?, saved_by: r.get(2)?, note: r.get(3)? };
            Ok((info, r.get::<_, String>(4)?))
        })
        .optional()?;
    let Some((info, text)) = row else { return Ok(None) };
    let definition = parse(&text, || format!("version {version} of automation {id:?}"))?;
    Ok(Some((info, definition)))
}

/// Rolls an automation back to version `to`: saves that version's definition as a new version
/// with the note `rollback to v{to}`, and returns the automation's current version afterwards.
/// History is never rewritten. `enabled` stays as it is. When version `to` holds the current
/// definition, nothing is saved and the current version is returned (as for any identical save).
/// Returns `None` when the automation or the version does not exist.
pub fn rollback(conn: &Connection, id: &str, to: u32, by: &str, now_ms: i64) -> Result<Option<u32>, StoreError> {
    atomically(conn, |conn| {
        let enabled: Option<bool> = conn
            .prepare_cached("SELECT enabled FROM automations WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(enabled) = enabled else { return Ok(None) };
        let Some((_, definition)) = version(conn, id, to)? else { return Ok(None) };
        let note = format!("rollback to v{to}");
        save_automation(conn, id, &definition, enabled, by, Some(&note), now_ms).map(Some)
    })
}

// ---- scenes ----

/// Saves a scene; returns whether it is new. `updated_at` moves only when the definition changes.
pub fn save_scene(conn: &Connection, id: &str, definition: &Value, now_ms: i64) -> Result<bool, StoreError> {
    let text = serde_json::to_string(definition)?;
    atomically(conn, |conn| {
        let exists = conn
            .prepare_cached("SELECT 1 FROM scenes WHERE id = ?1")?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some();
        conn.prepare_cached(
            "INSERT INTO scenes (id, definition, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at
             WHERE definition <> excluded.definition",
        )?
        .execute(params![id, text, now_ms])?;
        Ok(!exists)
    })
}

/// Deletes a scene; returns whether it existed.
pub fn delete_scene(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM scenes WHERE id = ?1", [id])? > 0)
}

fn scene_row(r: &Row<'_>) -> rusqlite::Result<(String, String, i64, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn stored_scene(row: (String, String, i64, i64)) -> Result<StoredScene, StoreError> {
    let (id, definition, created_at, updated_at) = row;
    let definition = parse(&definition, || format!("the definition of scene {id:?}"))?;
    Ok(StoredScene { id, definition, created_at, updated_at })
}

/// Loads every scene, by id.
pub fn load_scenes(conn: &Connection) -> Result<Vec<StoredScene>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT id, definition, created_at, updated_at FROM scenes ORDER BY id")?;
    let rows = stmt.query_map([], scene_row)?;
    rows.map(|row| stored_scene(row?)).collect()
}

/// Loads one scene.
pub fn scene(conn: &Connection, id: &str) -> Result<Option<StoredScene>, StoreError> {
    conn.prepare_cached("SELECT id, definition, created_at, updated_at FROM scenes WHERE id = ?1")?
        .query_row([id], scene_row)
        .optional()?
        .map(stored_scene)
        .transpose()
}

// ---- durable runs ----

/// Saves (inserts or replaces) a durable run's record. Returns `false`, storing nothing, when
/// the automation is not stored (say, deleted while the run was in flight).
pub fn save_run(
    conn: &Connection,
    run_id: u64,
    automation: &str,
    record: &Value,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO automation_runs (run_id, automation, record, updated_at)
             SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM automations WHERE id = ?2)
             ON CONFLICT (run_id) DO UPDATE
             SET automation = excluded.automation, record = excluded.record, updated_at = excluded.updated_at",
        )?
        .execute(params![sql_run_id(run_id)?, automation, serde_json::to_string(record)?, now_ms])?;
    Ok(n > 0)
}

/// Deletes a durable run (it finished or was cancelled); returns whether it was stored.
pub fn delete_run(conn: &Connection, run_id: u64) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM automation_runs WHERE run_id = ?1", [sql_run_id(run_id)?])? > 0)
}

/// Loads every durable run, by run id.
pub fn load_runs(conn: &Connection) -> Result<Vec<StoredRun>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT run_id, automation, record, updated_at FROM automation_runs ORDER BY run_id")?;
    let rows = stmt.query_map([], |r| {
        Ok((row_run_id(r, 0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
    })?;
    rows.map(|row| {
        let (run_id, automation, record, updated_at) = row?;
        let record = parse(&record, || format!("run {run_id} of automation {automation:?}"))?;
        Ok(StoredRun { run_id, automation, record, updated_at })
    })
    .collect()
}

/// The highest run id stored in runs or traces (0 when there are none), so that a restarted
/// engine can number its new runs above it.
pub fn last_run_id(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT max(coalesce((SELECT max(run_id) FROM automation_runs), 0),
                    coalesce((SELECT max(run_id) FROM automation_traces), 0))",
        [],
        |r| row_run_id(r, 0),
    )?)
}

// ---- traces ----

/// Saves (inserts or replaces) the trace of a run, then keeps only the newest `keep` traces of
/// that automation (by start time, then run id; [`TRACES_KEPT`] is the usual `keep`; 0 keeps
/// none). Other automations' traces are untouched. Returns `false`, storing nothing, when the
/// automation is not stored.
pub fn save_trace(
    conn: &Connection,
    automation: &str,
    run_id: u64,
    started_at: i64,
    record: &str,
    keep: usize,
) -> Result<bool, StoreError> {
    let run_id = sql_run_id(run_id)?;
    atomically(conn, |conn| {
        let n = conn
            .prepare_cached(
                "INSERT INTO automation_traces (automation, run_id, started_at, record)
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM automations WHERE id = ?1)
                 ON CONFLICT (automation, run_id) DO UPDATE
                 SET started_at = excluded.started_at, record = excluded.record",
            )?
            .execute(params![automation, run_id, started_at, record])?;
        if n == 0 {
            return Ok(false);
        }
        if keep == 0 {
            conn.prepare_cached("DELETE FROM automation_traces WHERE automation = ?1")?.execute([automation])?;
            return Ok(true);
        }
        // Everything older than the `keep`-th newest. Both halves walk the index
        // `automation_traces_newest`: the subquery `keep` entries, the delete only what goes (one
        // row, usually). Sorting the automation's traces on every run showed in profiles.
        conn.prepare_cached(
            "DELETE FROM automation_traces WHERE automation = ?1 AND (started_at, run_id) < (
                 SELECT started_at, run_id FROM automation_traces WHERE automation = ?1
                 ORDER BY started_at DESC, run_id DESC LIMIT 1 OFFSET ?2)",
        )?
        .execute(params![automation, i64::try_from(keep - 1).unwrap_or(i64::MAX)])?;
        Ok(true)
    })
}

fn stored_trace(automation: &str, row: (u64, i64, String)) -> Result<StoredTrace, StoreError> {
    let (run_id, started_at, record) = row;
    let record = parse(&record, || format!("the trace of run {run_id} of automation {automation:?}"))?;
    Ok(StoredTrace { run_id, started_at, record })
}

/// The newest `limit` traces of an automation, newest first.
pub fn traces(conn: &Connection, automation: &str, limit: usize) -> Result<Vec<StoredTrace>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT run_id, started_at, record FROM automation_traces WHERE automation = ?1
         ORDER BY started_at DESC, run_id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![automation, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok((row_run_id(r, 0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.map(|row| stored_trace(automation, row?)).collect()
}

/// The trace of one run of an automation.
pub fn trace(conn: &Connection, automation: &str, run_id: u64) -> Result<Option<StoredTrace>, StoreError> {
    conn.prepare_cached(
        "SELECT run_id, started_at, record FROM automation_traces WHERE automation = ?1 AND run_id = ?2",
    )?
    .query_row(params![automation, sql_run_id(run_id)?], |r| Ok((row_run_id(r, 0)?, r.get(1)?, r.get(2)?)))
    .optional()?
    .map(|row| stored_trace(automation, row))
    .transpose()
}

// ---- liveness ----

/// The last time the engine said it was alive (ms since 1970), for catching up on what was
/// missed while the hub was down; `None` before the first time.
pub fn alive_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    super::meta(conn, ALIVE_AT_KEY)?
        .map(|text| serde_json::from_str::<i64>(&text).map_err(|e| damaged(format_args!("meta {ALIVE_AT_KEY}"), &e)))
        .transpose()
}

/// Records that the engine is alive at `ms` (ms since 1970). The value is stored as given, even
/// if it is earlier than the one stored (the clock may have been set back).
pub fn set_alive_at(conn: &Connection, ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![ALIVE_AT_KEY, ms.to_string()])?;
    Ok(())
}

// ---- helpers ----

/// A run id as an SQLite integer: ids above `i64::MAX` cannot be stored.
fn sql_run_id(run_id: u64) -> Result<i64, StoreError> {
    i64::try_from(run_id).map_err(|_| {
        StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(
            format!("run id {run_id} is larger than the largest integer SQLite stores").into(),
        ))
    })
}

/// A run id read from column `idx`.
fn row_run_id(r: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let n: i64 = r.get(idx)?;
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, n))
}

/// Parses a stored document; the error names what it belongs to.
fn parse(text: &str, what: impl FnOnce() -> String) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| damaged(format_args!("{}", what()), &e))
}

fn damaged(what: std::fmt::Arguments<'_>, e: &serde_json::Error) -> StoreError {
    StoreError::Json(<serde_json::Error as serde::de::Error>::custom(format_args!("{what}: {e}")))
}

/// Runs `f` in a savepoint: all of its writes are kept, or none. Works on a plain connection
/// (the savepoint is then the transaction) and inside a transaction or savepoint.
fn atomically<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
    let outermost = conn.is_autocommit();
    // Prepared once per connection: a trace is saved on every run, and parsing these each time
    // showed in profiles.
    conn.prepare_cached("SAVEPOINT hearth_automations")?.execute([])?;
    let result = f(conn).and_then(|value| {
        conn.prepare_cached("RELEASE hearth_automations")?.execute([])?;
        Ok(value)
    });
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = conn.execute_batch("ROLLBACK TO hearth_automations; RELEASE hearth_automations");
        if outermost && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        (dir, conn)
    }

    fn light(brightness: u32) -> Value {
        json!({"id": "porch", "triggers": [{"at": "sunset"}], "actions": [{"light": "porch", "brightness": brightness}]})
    }

    #[test]
    fn versions_increment_and_identical_saves_do_not() {
        let (_dir, conn) = db();
        assert_eq!(save_automation(&conn, "porch", &light(50), true, "ada", None, 1_000).unwrap(), 1);
        assert_eq!(save_automation(&conn, "porch", &light(60), true, "ada", Some("brighter"), 2_000).unwrap(), 2);
        // The same document with other key order and spacing is identical.
        let same: Value = serde_json::from_str(
            r#"{ "actions": [{"brightness": 60, "light": "porch"}], "triggers": [{"at": "sunset"}], "id": "porch" }"#,
        )
        .unwrap();
        assert_eq!(save_automation(&conn, "porch", &same, true, "bob", None, 3_000).unwrap(), 2);
        let a = automation(&conn, "porch").unwrap().unwrap();
        assert_eq!((a.version, a.enabled, a.created_at, a.updated_at), (2, true, 1_000, 2_000));

        // An identical save still applies `enabled`, without a version.
        assert_eq!(save_automation(&conn, "porch", &light(60), false, "bob", None, 4_000).unwrap(), 2);
        let a = automation(&conn, "porch").unwrap().unwrap();
        assert_eq!((a.version, a.enabled, a.updated_at), (2, false, 4_000));
        assert_eq!(a.definition, light(60));

        let v = versions(&conn, "porch").unwrap();
        assert_eq!(
            v,
            vec![
                VersionInfo { version: 2, saved_at: 2_000, saved_by: "ada".into(), note: Some("brighter".into()) },
                VersionInfo { version: 1, saved_at: 1_000, saved_by: "ada".into(), note: None },
            ]
        );
        assert_eq!(version(&conn, "porch", 1).unwrap().unwrap().1, light(50));
        assert!(version(&conn, "porch", 3).unwrap().is_none());
        assert!(versions(&conn, "nobody").unwrap().is_empty());

        save_automation(&conn, "attic", &json!({"id": "attic"}), true, "import", None, 5_000).unwrap();
        let all = load_automations(&conn).unwrap();
        assert_eq!(all.iter().map(|a| (a.id.as_str(), a.version)).collect::<Vec<_>>(), [("attic", 1), ("porch", 2)]);
    }

    #[test]
    fn enabling_is_not_an_edit() {
        let (_dir, conn) = db();
        save_automation(&conn, "porch", &light(50), true, "ada", None, 1_000).unwrap();
        assert!(set_enabled(&conn, "porch", false, 2_000).unwrap());
        assert!(set_enabled(&conn, "porch", false, 3_000).unwrap(), "already disabled, still exists");
        assert!(!set_enabled(&conn, "nobody", true, 3_000).unwrap());
        let a = automation(&conn, "porch").unwrap().unwrap();
        assert_eq!((a.version, a.enabled, a.updated_at), (1, false, 2_000));
        assert_eq!(versions(&conn, "porch").unwrap().len(), 1);
    }

    #[test]
    fn rollback_saves_the_old_definition_as_a_new_version() {
        let (_dir, conn) = db();
        save_automation(&conn, "porch", &light(50), true, "ada", None, 1_000).unwrap();
        save_automation(&conn, "porch", &light(60), true, "ada", None, 2_000).unwrap();
        save_automation(&conn, "porch", &light(70), false, "ada", None, 3_000).unwrap();

        assert_eq!(rollback(&conn, "porch", 1, "bob", 4_000).unwrap(), Some(4));
        let a = automation(&conn, "porch").unwrap().unwrap();
        assert_eq!((a.version, a.enabled), (4, false), "a rollback keeps enabled as it is");
        assert_eq!(a.definition, light(50));
        let (info, definition) = version(&conn, "porch", 4).unwrap().unwrap();
        assert_eq!(definition, light(50));
        assert_eq!(
            (info.saved_by.as_str(), info.note.as_deref(), info.saved_at),
            ("bob", Some("rollback to v1"), 4_000)
        );
        // History is kept as it was.
        assert_eq!(versions(&conn, "porch").unwrap().iter().map(|v| v.version).collect::<Vec<_>>(), [4, 3, 2, 1]);
        assert_eq!(version(&conn, "porch", 3).unwrap().unwrap().1, light(70));

        // Rolling back to what is current saves nothing.
        assert_eq!(rollback(&conn, "porch", 4, "bob", 5_000).unwrap(), Some(4));
        assert_eq!(rollback(&conn, "porch", 1, "bob", 5_000).unwrap(), Some(4));
        assert_eq!(versions(&conn, "porch").unwrap().len(), 4);

        assert_eq!(rollback(&conn, "porch", 9, "bob", 5_000).unwrap(), None);
        assert_eq!(rollback(&conn, "nobody", 1, "bob", 5_000).unwrap(), None);
    }

    #[test]
    fn traces_are_pruned_to_the_newest_per_automation() {
        let (_dir, conn) = db();
        for id in ["porch", "attic"] {
            save_automation(&conn, id, &json!({"id": id}), true, "ada", None, 0).unwrap();
        }
        for run in 1..=5u64 {
            assert!(
                save_trace(&conn, "attic", 100 + run, run as i64, &json!({"run": 100 + run}).to_string(), 10).unwrap()
            );
        }
        // Started out of order: pruning goes by start time, not by run id.
        for (run, started) in [(1u64, 10i64), (2, 30), (3, 20), (4, 50), (5, 40)] {
            assert!(save_trace(&conn, "porch", run, started, &json!({"run": run}).to_string(), 3).unwrap());
        }
        let porch = traces(&conn, "porch", 10).unwrap();
        assert_eq!(porch.iter().map(|t| t.run_id).collect::<Vec<_>>(), [4, 5, 2]);
        assert_eq!(porch[0].record, json!({"run": 4}));
        assert_eq!(traces(&conn, "porch", 2).unwrap().len(), 2);
        assert!(trace(&conn, "porch", 1).unwrap().is_none());
        assert_eq!(trace(&conn, "porch", 2).unwrap().unwrap().started_at, 30);
        assert_eq!(traces(&conn, "attic", 10).unwrap().len(), 5, "other automations keep theirs");

        // Saving a run's trace again replaces it.
        save_trace(&conn, "porch", 4, 50, &json!({"run": 4, "done": true}).to_string(), TRACES_KEPT).unwrap();
        assert_eq!(trace(&conn, "porch", 4).unwrap().unwrap().record, json!({"run": 4, "done": true}));
        assert_eq!(traces(&conn, "porch", 10).unwrap().len(), 3);

        // A trace of an automation that is not stored is dropped.
        assert!(!save_trace(&conn, "nobody", 9, 1, &json!({}).to_string(), TRACES_KEPT).unwrap());
        assert!(traces(&conn, "nobody", 10).unwrap().is_empty());
        assert_eq!(last_run_id(&conn).unwrap(), 105);
    }

    #[test]
    fn runs_round_trip() {
        let (_dir, conn) = db();
        assert_eq!(last_run_id(&conn).unwrap(), 0);
        save_automation(&conn, "porch", &light(50), true, "ada", None, 0).unwrap();
        let big = u64::try_from(i64::MAX).unwrap();
        assert!(save_run(&conn, 7, "porch", &json!({"step": 1, "until": 9_000}), 1_000).unwrap());
        assert!(save_run(&conn, big, "porch", &json!({"step": 0}), 1_500).unwrap());
        assert!(save_run(&conn, 7, "porch", &json!({"step": 2, "until": 9_500}), 2_000).unwrap());
        assert!(!save_run(&conn, 8, "nobody", &json!({}), 2_000).unwrap());
        assert!(save_run(&conn, big + 1, "porch", &json!({}), 2_000).is_err(), "out of SQLite's range");
        assert_eq!(
            load_runs(&conn).unwrap(),
            vec![
                StoredRun {
                    run_id: 7,
                    automation: "porch".into(),
                    record: json!({"step": 2, "until": 9_500}),
                    updated_at: 2_000
                },
                StoredRun { run_id: big, automation: "porch".into(), record: json!({"step": 0}), updated_at: 1_500 },
            ]
        );
        assert_eq!(last_run_id(&conn).unwrap(), big);
        assert!(delete_run(&conn, 7).unwrap());
        assert!(!delete_run(&conn, 7).unwrap());
        assert_eq!(load_runs(&conn).unwrap().len(), 1);
    }

    #[test]
    fn delete_removes_versions_runs_and_traces() {
        let (_dir, conn) = db();
        for id in ["porch", "attic"] {
            save_automation(&conn, id, &json!({"id": id}), true, "ada", None, 0).unwrap();
            save_automation(&conn, id, &json!({"id": id, "v": 2}), true, "ada", None, 1).unwrap();
        }
        save_run(&conn, 1, "porch", &json!({}), 1).unwrap();
        save_run(&conn, 2, "attic", &json!({}), 1).unwrap();
        save_trace(&conn, "porch", 1, 1, &json!({}).to_string(), TRACES_KEPT).unwrap();
        save_trace(&conn, "attic", 2, 1, &json!({}).to_string(), TRACES_KEPT).unwrap();

        // Without the foreign keys' help too.
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        assert!(delete_automation(&conn, "porch").unwrap());
        assert!(!delete_automation(&conn, "porch").unwrap());
        assert!(automation(&conn, "porch").unwrap().is_none());
        assert!(versions(&conn, "porch").unwrap().is_empty());
        assert!(traces(&conn, "porch", 10).unwrap().is_empty());
        let runs = load_runs(&conn).unwrap();
        assert_eq!(runs.iter().map(|r| r.automation.as_str()).collect::<Vec<_>>(), ["attic"]);
        assert_eq!(traces(&conn, "attic", 10).unwrap().len(), 1);
        assert_eq!(versions(&conn, "attic").unwrap().len(), 2);

        // The id starts a new history.
        assert_eq!(save_automation(&conn, "porch", &json!({"id": "porch"}), true, "ada", None, 5).unwrap(), 1);
    }

    #[test]
    fn scenes_round_trip() {
        let (_dir, conn) = db();
        let evening = json!({"id": "evening", "states": {"demo.lamp": {"on": true}}});
        assert!(save_scene(&conn, "evening", &evening, 1_000).unwrap());
        assert!(!save_scene(&conn, "evening", &evening, 2_000).unwrap());
        let s = scene(&conn, "evening").unwrap().unwrap();
        assert_eq!((s.created_at, s.updated_at), (1_000, 1_000), "an identical save changes nothing");
        let dim = json!({"id": "evening", "states": {"demo.lamp": {"on": true, "brightness": 20}}});
        assert!(!save_scene(&conn, "evening", &dim, 3_000).unwrap());
        save_scene(&conn, "away", &json!({"id": "away"}), 4_000).unwrap();
        let all = load_scenes(&conn).unwrap();
        assert_eq!(all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["away", "evening"]);
        assert_eq!(all[1], StoredScene { id: "evening".into(), definition: dim, created_at: 1_000, updated_at: 3_000 });
        assert!(delete_scene(&conn, "evening").unwrap());
        assert!(!delete_scene(&conn, "evening").unwrap());
        assert!(scene(&conn, "evening").unwrap().is_none());
    }

    #[test]
    fn alive_at_round_trip() {
        let (_dir, conn) = db();
        assert_eq!(alive_at(&conn).unwrap(), None);
        set_alive_at(&conn, 1_700_000_000_000).unwrap();
        set_alive_at(&conn, 1_700_000_060_000).unwrap();
        assert_eq!(alive_at(&conn).unwrap(), Some(1_700_000_060_000));
        conn.execute("UPDATE meta SET value = 'soon' WHERE key = ?1", [ALIVE_AT_KEY]).unwrap();
        let err = alive_at(&conn).unwrap_err().to_string();
        assert!(err.contains("automations.alive_at"), "{err}");
    }

    #[test]
    fn damaged_documents_name_their_owner() {
        let (_dir, conn) = db();
        save_automation(&conn, "porch", &light(50), true, "ada", None, 0).unwrap();
        save_run(&conn, 3, "porch", &json!({}), 0).unwrap();
        save_trace(&conn, "porch", 3, 0, &json!({}).to_string(), TRACES_KEPT).unwrap();
        save_scene(&conn, "evening", &json!({}), 0).unwrap();
        conn.execute_batch(
            "UPDATE automations SET definition = '{\"id\": ';
             UPDATE automation_versions SET definition = 'nope';
             UPDATE automation_runs SET record = '';
             UPDATE automation_traces SET record = '[';
             UPDATE scenes SET definition = '}';",
        )
        .unwrap();
        let errors = [
            load_automations(&conn).unwrap_err(),
            automation(&conn, "porch").unwrap_err(),
            version(&conn, "porch", 1).unwrap_err(),
            load_runs(&conn).unwrap_err(),
            traces(&conn, "porch", 5).unwrap_err(),
            trace(&conn, "porch", 3).unwrap_err(),
            load_scenes(&conn).unwrap_err(),
            scene(&conn, "evening").unwrap_err(),
        ];
        let names = ["porch", "porch", "porch", "run 3", "run 3", "run 3", "evening", "evening"];
        for (err, name) in errors.iter().zip(names) {
            let text = err.to_string();
            assert!(matches!(err, StoreError::Json(_)), "{text}");
            assert!(text.starts_with("stored data is damaged: ") && text.contains(name), "{text}");
        }
        assert_eq!(
            errors[0].to_string(),
            "stored data is damaged: the definition of automation \"porch\": EOF while parsing a value at line 1 column 7"
        );
        // Saving a good definition repairs a damaged one.
        assert_eq!(save_automation(&conn, "porch", &light(50), true, "ada", None, 1).unwrap(), 2);
        assert_eq!(automation(&conn, "porch").unwrap().unwrap().definition, light(50));
    }

    #[test]
    fn a_failed_call_leaves_nothing_behind() {
        let (_dir, conn) = db();
        let err = atomically(&conn, |conn| {
            save_automation(conn, "porch", &light(50), true, "ada", None, 0)?;
            conn.execute("INSERT INTO nowhere VALUES (1)", [])?;
            Ok(())
        });
        assert!(err.is_err());
        assert!(conn.is_autocommit(), "no transaction is left open");
        assert!(automation(&conn, "porch").unwrap().is_none());
        assert!(versions(&conn, "porch").unwrap().is_empty());

        // Inside a caller's transaction, only the failed part is undone.
        let mut conn = conn;
        let tx = conn.transaction().unwrap();
        save_automation(&tx, "attic", &json!({"id": "attic"}), true, "ada", None, 0).unwrap();
        assert!(
            atomically(&tx, |c| -> Result<(), StoreError> {
                save_automation(c, "porch", &light(50), true, "ada", None, 0)?;
                Err(StoreError::WriterGone)
            })
            .is_err()
        );
        tx.commit().unwrap();
        assert!(automation(&conn, "attic").unwrap().is_some());
        assert!(automation(&conn, "porch").unwrap().is_none());
    }

    #[tokio::test]
    async fn works_through_the_writer_and_the_readers() {
        let (dir, conn) = db();
        let path = dir.path().join(crate::store::DB_FILE);
        let (writer, thread) = crate::store::StoreWriter::start(conn);
        let version = writer
            .exec(|tx| {
                save_automation(tx, "porch", &json!({"id": "porch"}), true, "ada", None, 1)?;
                save_automation(tx, "porch", &json!({"id": "porch", "v": 2}), true, "ada", None, 2)
            })
            .await
            .unwrap();
        assert_eq!(version, 2);
        writer.exec(|tx| save_trace(tx, "porch", 1, 1, &json!({"ok": true}).to_string(), TRACES_KEPT)).await.unwrap();
        let readers = crate::store::Readers::new(path);
        let (a, t) = readers.with(|conn| Ok((automation(conn, "porch")?, traces(conn, "porch", 5)?))).await.unwrap();
        assert_eq!(a.unwrap().version, 2);
        assert_eq!(t.len(), 1);
        drop(writer);
        thread.join().unwrap();
    }
}
