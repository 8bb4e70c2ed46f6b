//! The discovery inbox: what adapters found (`AdapterEvent::Found`), waiting for an
//! administrator to accept or ignore it, and the decisions each adapter sees through its
//! `hearth_sdk::Inbox`.
//!
//! The core task owns an [`InboxState`]; this module also reads and writes the `inbox` table.
//!
//! Invariants:
//! - An entry is keyed by adapter and the adapter's stable key (a MAC, a device id), never an
//!   address: a device that moves to a new IP address stays the same entry.
//! - Decisions are on disk before the adapter sees them; an accepted key stays accepted across
//!   restarts until it is forgotten, which also happens when its device is removed.
//! - Finding the same thing again (a BLE advertisement every second) writes nothing and sends no
//!   event unless something the user sees changed; `last_seen` goes to disk at most every
//!   [`LAST_SEEN_EVERY_MS`].

use std::collections::{BTreeMap, BTreeSet};

use hearth_sdk::{Decision, DeviceId, Event, Found, InboxEntry, InboxStatus, Timestamp};
use rusqlite::{Connection, params};
use tokio::sync::watch;

use crate::core::Effects;
use crate::store::{StoreError, WriteOp};

/// How often a refreshed `last_seen` alone is written.
pub const LAST_SEEN_EVERY_MS: i64 = 10 * 60 * 1000;
/// Entries kept per adapter; beyond it the oldest entries still new are dropped (a busy street
/// full of BLE tags must not fill the disk).
pub const MAX_PER_ADAPTER: usize = 500;

/// Why an inbox request failed.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// No such entry.
    #[error("adapter `{adapter}` has found nothing with the key `{key}`")]
    NotFound {
        /// The adapter.
        adapter: String,
        /// The key.
        key: String,
    },
    /// The adapter cannot make a device of it.
    #[error("`{0}` was found, but its adapter cannot make a device of it yet; you can ignore it")]
    Unsupported(String),
}

/// The inbox as the core task keeps it.
#[derive(Debug)]
pub struct InboxState {
    entries: BTreeMap<(String, String), Stored>,
    adapters: BTreeMap<String, watch::Sender<BTreeMap<String, Decision>>>,
    auto_accept: BTreeSet<String>,
}

#[derive(Debug)]
struct Stored {
    entry: InboxEntry,
    /// `last_seen` as on disk.
    saved_seen: Timestamp,
}

impl InboxState {
    /// The inbox with `entries` (as loaded), accepting at once what adapters in `auto_accept`
    /// find (`ble`: everything it supports; `ble:bthome`: that kind only).
    pub fn new(entries: Vec<InboxEntry>, auto_accept: BTreeSet<String>) -> InboxState {
        let entries = entries
            .into_iter()
            .map(|e| ((e.adapter.clone(), e.found.key.clone()), Stored { saved_seen: e.last_seen, entry: e }))
            .collect();
        InboxState { entries, adapters: BTreeMap::new(), auto_accept }
    }

    /// The decisions an adapter starts with, and the sender that keeps its view current.
    pub fn view_for(&mut self, adapter: &str) -> hearth_sdk::Inbox {
        let (tx, view) = hearth_sdk::Inbox::channel(self.decisions(adapter));
        self.adapters.insert(adapter.to_owned(), tx);
        view
    }

    fn decisions(&self, adapter: &str) -> BTreeMap<String, Decision> {
        self.entries
            .values()
            .filter(|s| s.entry.adapter == adapter)
            .filter_map(|s| {
                let d = match s.entry.status {
                    InboxStatus::Accepted => Decision::Accepted,
                    InboxStatus::Ignored => Decision::Ignored,
                    InboxStatus::New => return None,
                };
                Some((s.entry.found.key.clone(), d))
            })
            .collect()
    }

    fn tell(&self, adapter: &str) {
        if let Some(tx) = self.adapters.get(adapter) {
            let now = self.decisions(adapter);
            tx.send_if_modified(|d| {
                let changed = *d != now;
                *d = now;
                changed
            });
        }
    }

    /// Every entry, in adapter and key order.
    pub fn entries(&self) -> Vec<InboxEntry> {
        self.entries.values().map(|s| s.entry.clone()).collect()
    }

    /// An adapter found something.
    pub fn found(&mut self, adapter: &str, found: Found, now: Timestamp) -> Effects {
        let mut fx = Effects::default();
        let id = (adapter.to_owned(), found.key.clone());
        match self.entries.get_mut(&id) {
            Some(s) => {
                let visible = s.entry.found != found;
                s.entry.found = found;
                s.entry.last_seen = now;
                if visible || now.as_millis() - s.saved_seen.as_millis() >= LAST_SEEN_EVERY_MS {
                    s.saved_seen = now;
                    fx.writes.push(upsert_op(&s.entry));
                }
                if visible {
                    fx.events.push(Event::InboxChanged { entry: s.entry.clone() });
                }
            }
            None => {
                let by_kind = found.kind.as_ref().is_some_and(|k| self.auto_accept.contains(&format!("{adapter}:{k}")));
                let status = if (self.auto_accept.contains(adapter) || by_kind) && found.supported {
                    InboxStatus::Accepted
                } else {
                    InboxStatus::New
                };
                let entry = InboxEntry { adapter: adapter.to_owned(), found, status, first_seen: now, last_seen: now };
                fx.writes.push(upsert_op(&entry));
                fx.events.push(Event::InboxChanged { entry: entry.clone() });
                self.entries.insert(id, Stored { saved_seen: now, entry });
                self.trim(adapter, &mut fx);
                if status == InboxStatus::Accepted {
                    tracing::info!(adapter, "Accepted a found device by the configuration ([inbox] auto_accept).");
                    self.tell(adapter);
                }
            }
        }
        fx
    }

    fn trim(&mut self, adapter: &str, fx: &mut Effects) {
        let mine: Vec<&Stored> = self.entries.values().filter(|s| s.entry.adapter == adapter).collect();
        if mine.len() <= MAX_PER_ADAPTER {
            return;
        }
        let mut new: Vec<(Timestamp, String)> = mine
            .iter()
            .filter(|s| s.entry.status == InboxStatus::New)
            .map(|s| (s.entry.last_seen, s.entry.found.key.clone()))
            .collect();
        new.sort();
        for (_, key) in new.into_iter().take(mine.len() - MAX_PER_ADAPTER) {
            self.entries.remove(&(adapter.to_owned(), key.clone()));
            fx.writes.push(delete_op(adapter, &key));
            fx.events.push(Event::InboxRemoved { adapter: adapter.to_owned(), key });
        }
    }

    /// The user's decision; the entry as it is now.
    pub fn decide(
        &mut self,
        adapter: &str,
        key: &str,
        decision: Decision,
    ) -> Result<(InboxEntry, Effects), InboxError> {
        let s = self
            .entries
            .get_mut(&(adapter.to_owned(), key.to_owned()))
            .ok_or_else(|| InboxError::NotFound { adapter: adapter.to_owned(), key: key.to_owned() })?;
        if decision == Decision::Accepted && !s.entry.found.supported {
            return Err(InboxError::Unsupported(s.entry.found.name.clone()));
        }
        let mut fx = Effects::default();
        let status = InboxStatus::from(decision);
        if s.entry.status != status {
            s.entry.status = status;
            fx.writes.push(upsert_op(&s.entry));
            fx.events.push(Event::InboxChanged { entry: s.entry.clone() });
        }
        let entry = s.entry.clone();
        self.tell(adapter);
        Ok((entry, fx))
    }

    /// Forgets an entry: found again, it is new.
    pub fn forget(&mut self, adapter: &str, key: &str) -> Result<Effects, InboxError> {
        self.entries
            .remove(&(adapter.to_owned(), key.to_owned()))
            .ok_or_else(|| InboxError::NotFound { adapter: adapter.to_owned(), key: key.to_owned() })?;
        self.tell(adapter);
        let mut fx = Effects::default();
        fx.writes.push(delete_op(adapter, key));
        fx.events.push(Event::InboxRemoved { adapter: adapter.to_owned(), key: key.to_owned() });
        Ok(fx)
    }

    /// A device was removed: the entry it was accepted from is forgotten, so its adapter stops
    /// announcing it and offers it again when it finds it.
    pub fn device_removed(&mut self, device: &DeviceId) -> Effects {
        let keys: Vec<(String, String)> = self
            .entries
            .iter()
            .filter(|(_, s)| s.entry.found.device == *device && s.entry.status == InboxStatus::Accepted)
            .map(|(k, _)| k.clone())
            .collect();
        let mut fx = Effects::default();
        for (adapter, key) in keys {
            if let Ok(more) = self.forget(&adapter, &key) {
                fx.writes.extend(more.writes);
                fx.events.extend(more.events);
            }
        }
        fx
    }
}

fn upsert_op(e: &InboxEntry) -> WriteOp {
    let e = e.clone();
    WriteOp::Exec(Box::new(move |conn| upsert(conn, &e)))
}

fn delete_op(adapter: &str, key: &str) -> WriteOp {
    let (adapter, key) = (adapter.to_owned(), key.to_owned());
    WriteOp::Exec(Box::new(move |conn| {
        conn.prepare_cached("DELETE FROM inbox WHERE adapter = ?1 AND key = ?2")?.execute(params![adapter, key])?;
        Ok(())
    }))
}

fn status_name(s: InboxStatus) -> &'static str {
    match s {
        InboxStatus::New => "new",
        InboxStatus::Accepted => "accepted",
        InboxStatus::Ignored => "ignored",
    }
}

/// Writes an entry.
pub fn upsert(conn: &Connection, e: &InboxEntry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO inbox (adapter, key, found, status, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (adapter, key) DO UPDATE SET found = ?3, status = ?4, last_seen = ?6",
    )?
    .execute(params![
        e.adapter,
        e.found.key,
        serde_json::to_string(&e.found)?,
        status_name(e.status),
        e.first_seen.as_millis(),
        e.last_seen.as_millis()
    ])?;
    Ok(())
}

/// Every stored entry. A row that cannot be read (written by a newer hub) is skipped, with a
/// warning.
pub fn load(conn: &Connection) -> Result<Vec<InboxEntry>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT adapter, key, found, status, first_seen, last_seen FROM inbox ORDER BY adapter, key")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (adapter, key, found, status, first, last) = row?;
        let status = match status.as_str() {
            "new" => InboxStatus::New,
            "accepted" => InboxStatus::Accepted,
            "ignored" => InboxStatus::Ignored,
            other => {
                tracing::warn!(adapter, key, status = other, "Skipped an inbox entry with an unknown status.");
                continue;
            }
        };
        match serde_json::from_str::<Found>(&found) {
            Ok(found) if found.key == key => out.push(InboxEntry {
                adapter,
                found,
                status,
                first_seen: Timestamp::from_millis(first),
                last_seen: Timestamp::from_millis(last),
            }),
            _ => tracing::warn!(adapter, key, "Skipped an inbox entry that cannot be read."),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::Transport;

    fn thing(key: &str, supported: bool) -> Found {
        Found {
            key: key.into(),
            device: DeviceId::new("ble", key),
            name: format!("Thing {key}"),
            manufacturer: None,
            model: None,
            transport: Transport::Ble,
            address: Some("A4:C1:38:00:00:01".into()),
            supported,
            kind: Some(if key.starts_with("tv") { "beacon".into() } else { "bthome".into() }),
        }
    }

    #[test]
    fn finding_again_is_quiet_until_something_visible_changes() {
        let mut inbox = InboxState::new(Vec::new(), BTreeSet::new());
        let fx = inbox.found("ble", thing("a", true), Timestamp::from_millis(1_000));
        assert_eq!((fx.writes.len(), fx.events.len()), (1, 1), "new: stored and announced");
        let fx = inbox.found("ble", thing("a", true), Timestamp::from_millis(2_000));
        assert_eq!((fx.writes.len(), fx.events.len()), (0, 0), "the same again: nothing");
        let fx = inbox.found("ble", thing("a", true), Timestamp::from_millis(1_000 + LAST_SEEN_EVERY_MS));
        assert_eq!((fx.writes.len(), fx.events.len()), (1, 0), "last seen, now and then");
        let mut moved = thing("a", true);
        moved.address = Some("A4:C1:38:00:00:02".into());
        let fx = inbox.found("ble", moved, Timestamp::from_millis(3_000 + LAST_SEEN_EVERY_MS));
        assert_eq!((fx.writes.len(), fx.events.len()), (1, 1), "a new address is shown");
        assert_eq!(inbox.entries().len(), 1);
    }

    #[test]
    fn decisions_reach_the_adapter_and_removing_the_device_forgets_them() {
        let mut inbox = InboxState::new(Vec::new(), BTreeSet::new());
        let view = inbox.view_for("ble");
        inbox.found("ble", thing("a", true), Timestamp::from_millis(1));
        inbox.found("ble", thing("tv", false), Timestamp::from_millis(1));
        assert!(view.decisions().is_empty());
        let (entry, _) = inbox.decide("ble", "a", Decision::Accepted).expect("accept");
        assert_eq!(entry.status, InboxStatus::Accepted);
        assert!(view.is_accepted("a"));
        assert!(matches!(inbox.decide("ble", "tv", Decision::Accepted), Err(InboxError::Unsupported(_))));
        inbox.decide("ble", "tv", Decision::Ignored).expect("ignore");
        assert_eq!(view.decision("tv"), Some(Decision::Ignored));
        assert!(matches!(inbox.decide("ble", "zz", Decision::Ignored), Err(InboxError::NotFound { .. })));

        let fx = inbox.device_removed(&DeviceId::new("ble", "a"));
        assert_eq!(fx.events, vec![Event::InboxRemoved { adapter: "ble".into(), key: "a".into() }]);
        assert_eq!(view.decision("a"), None, "forgotten");
        let fx = inbox.found("ble", thing("a", true), Timestamp::from_millis(5));
        assert!(matches!(&fx.events[..], [Event::InboxChanged { entry }] if entry.status == InboxStatus::New));
    }

    #[test]
    fn auto_accept_accepts_what_is_supported() {
        let mut inbox = InboxState::new(Vec::new(), BTreeSet::from(["ble".to_owned()]));
        let view = inbox.view_for("ble");
        inbox.found("ble", thing("a", true), Timestamp::from_millis(1));
        inbox.found("ble", thing("tv", false), Timestamp::from_millis(1));
        assert!(view.is_accepted("a"));
        assert_eq!(view.decision("tv"), None);
    }

    #[test]
    fn auto_accept_can_name_a_kind() {
        let mut inbox = InboxState::new(Vec::new(), BTreeSet::from(["ble:bthome".to_owned()]));
        let view = inbox.view_for("ble");
        inbox.found("ble", thing("a", true), Timestamp::from_millis(1));
        let mut beacon = thing("tv2", true);
        beacon.kind = Some("beacon".into());
        inbox.found("ble", beacon, Timestamp::from_millis(1));
        assert!(view.is_accepted("a"));
        assert_eq!(view.decision("tv2"), None, "another kind waits");
    }

    #[test]
    fn a_crowd_of_new_things_is_trimmed_oldest_first() {
        let mut inbox = InboxState::new(Vec::new(), BTreeSet::new());
        for i in 0..(MAX_PER_ADAPTER + 3) {
            inbox.found("ble", thing(&format!("k{i:04}"), true), Timestamp::from_millis(i as i64));
        }
        let keys: Vec<String> = inbox.entries().into_iter().map(|e| e.found.key).collect();
        assert_eq!(keys.len(), MAX_PER_ADAPTER);
        assert!(!keys.contains(&"k0000".to_owned()) && keys.contains(&format!("k{:04}", MAX_PER_ADAPTER + 2)));
    }

    #[test]
    fn entries_survive_the_store() {
        let dir = tempfile::tempdir().expect("dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        let e = InboxEntry {
            adapter: "ble".into(),
            found: thing("a", true),
            status: InboxStatus::Ignored,
            first_seen: Timestamp::from_millis(5),
            last_seen: Timestamp::from_millis(9),
        };
        upsert(&conn, &e).expect("write");
        conn.execute("INSERT INTO inbox VALUES ('ble', 'bad', '{', 'new', 1, 1)", []).expect("a bad row");
        assert_eq!(load(&conn).expect("load"), vec![e]);
    }
}
