//! The audit log: who did what, when, from where. Logins (successes and failures), logouts,
//! lockouts, password changes, accounts, tokens, and administrators' changes to adapters,
//! automations, scenes, areas and devices, backups and restores.
//!
//! Invariant: no secret is ever recorded: no password, no token (a token is named by its id),
//! no request body. A failed login records the name tried only when such an account exists, so
//! a password typed into the name field does not end up here.
//!
//! The log keeps the newest [`KEPT`] entries; older ones are dropped as new ones arrive.

use hearth_automations::say::Say;
use hearth_sdk::Timestamp;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::store::StoreError;

/// How many entries are kept.
pub const KEPT: i64 = 10_000;

/// Every action an entry can record. The web UI shows each in the user's language (its
/// vocabulary `audit`, with `_` for `.`); a test checks that it knows them all.
pub const ACTIONS: &[&str] = &[
    "adapter.action",
    "area.create",
    "area.remove",
    "area.update",
    "auth.lockout",
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.onboarding",
    "auth.password",
    "auth.password_failed",
    "automation.create",
    "automation.delete",
    "automation.disable",
    "automation.enable",
    "automation.import",
    "automation.rollback",
    "automation.trigger",
    "automation.update",
    "backup",
    "backup.restore",
    "device.remove",
    "device.update",
    "inbox.accept",
    "inbox.forget",
    "inbox.ignore",
    "plugin.config",
    "plugin.disable",
    "plugin.enable",
    "scene.create",
    "scene.delete",
    "scene.update",
    "secret.delete",
    "secret.set",
    "token.create",
    "token.revoke",
    "user.add",
    "user.change",
    "user.remove",
];

/// One entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Entry {
    /// Its id (newer entries have larger ids).
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// The account that acted (`null` for an unknown name at a failed login, and for the
    /// command line).
    pub actor: Option<String>,
    /// What: `auth.login`, `auth.login_failed`, `user.add`, `automation.update`, ...
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// A short note, in English.
    pub detail: Option<String>,
    /// The note as data, for the UI to say in the user's language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
    /// The client's address.
    pub ip: Option<String>,
}

impl Entry {
    /// An entry of `action` by `actor`, now.
    pub fn new(actor: Option<&str>, action: &str) -> Entry {
        debug_assert!(ACTIONS.contains(&action), "audit action `{action}` is not in ACTIONS");
        Entry { at: Timestamp::now(), actor: actor.map(str::to_owned), action: action.to_owned(), ..Entry::default() }
    }

    /// With a target.
    pub fn target(mut self, target: impl Into<String>) -> Entry {
        self.target = Some(target.into());
        self
    }

    /// With a note.
    pub fn note(mut self, say: Say) -> Entry {
        self.detail = Some(say.to_string());
        self.say = Some(say);
        self
    }

    /// With the client's address.
    pub fn ip(mut self, ip: Option<std::net::IpAddr>) -> Entry {
        self.ip = ip.map(|i| i.to_string());
        self
    }
}

/// Appends an entry (in the caller's transaction) and drops what is beyond [`KEPT`].
pub fn record(conn: &Connection, e: &Entry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target, detail, ip, say) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        e.at.as_millis(),
        e.actor,
        e.action,
        e.target,
        e.detail,
        e.ip,
        e.say.as_ref().and_then(|s| serde_json::to_string(s).ok())
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("DELETE FROM audit_log WHERE id <= ?1")?.execute([id - KEPT])?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn list(conn: &Connection, limit: usize) -> Result<Vec<Entry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, target, detail, ip, say FROM audit_log ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(Entry {
            id: r.get(0)?,
            at: Timestamp::from_millis(r.get(1)?),
            actor: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            detail: r.get(5)?,
            ip: r.get(6)?,
            say: r.get::<_, Option<String>>(7)?.and_then(|s| serde_json::from_str(&s).ok()),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_known_and_the_ui_says_each() {
        for r in crate::api::routes::ROUTES {
            if let Some(a) = r.audit {
                assert!(ACTIONS.contains(&a), "{} {} records `{a}`, which ACTIONS lacks", r.method, r.path);
            }
        }
        let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
        let vocab = std::fs::read_to_string(ui.join("js/vocab.js")).expect("vocab.js");
        let line = vocab.lines().find(|l| l.trim_start().starts_with("audit:")).expect("the `audit` vocabulary");
        let list: Vec<String> =
            serde_json::from_str(line.trim().trim_start_matches("audit:").trim().trim_end_matches(','))
                .expect("the `audit` vocabulary is a list of strings on one line");
        let wanted: Vec<String> = ACTIONS.iter().map(|a| a.replace('.', "_")).collect();
        assert_eq!(list, wanted, "ui/js/vocab.js `audit` differs from ACTIONS");
        for file in ["i18n/en.js", "i18n/zh.js"] {
            let text = std::fs::read_to_string(ui.join(file)).expect("catalog");
            for a in &wanted {
                assert!(text.contains(&format!("\"audit.{a}\":")), "ui/{file} has no \"audit.{a}\"");
            }
        }
    }

    #[test]
    fn newest_first_and_bounded() {
        let dir = tempfile::tempdir().expect("dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        conn.execute_batch("BEGIN").expect("begin");
        for i in 0..(KEPT + 5) {
            let e = Entry::new(Some("ada"), "auth.login").target(format!("n{i}")).ip(Some([127, 0, 0, 1].into()));
            record(&conn, &e).expect("record");
        }
        conn.execute_batch("COMMIT").expect("commit");
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0)).expect("count");
        assert_eq!(n, KEPT);
        let newest = list(&conn, 2).expect("list");
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[0].target.as_deref(), Some(format!("n{}", KEPT + 4).as_str()));
        assert_eq!(newest[0].ip.as_deref(), Some("127.0.0.1"));
        assert!(newest[0].id > newest[1].id);
    }
}
