//! The cloud outbox: every message for the cloud, written in the same transaction as the change
//! that caused it, sent in order, deleted once the broker acknowledged it.
//!
//! Rows hold the hub's own event (the device model's JSON form), not a profile's message: the
//! profile (generic MQTT, Alink) turns a row into topics and payloads when it sends it, so a
//! change of provider never loses the backlog.
//!
//! Drop policy, when the outbox holds more than its cap: first the oldest rows that are not the
//! latest of their kind for their device (and feature): older state samples, older
//! availability, older descriptions; then the oldest momentary events. The latest state of each
//! feature, the latest availability and the latest description of each device are never dropped,
//! so the cloud always ends up with the current picture.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::StoreError;

/// What a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A device's description (added or changed).
    Device,
    /// A device is gone.
    DeviceRemoved,
    /// A feature's value changed.
    State,
    /// A momentary event.
    Event,
    /// A device's availability.
    Availability,
}

impl Kind {
    /// Its name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Device => "device",
            Kind::DeviceRemoved => "device_removed",
            Kind::State => "state",
            Kind::Event => "event",
            Kind::Availability => "availability",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "device" => Kind::Device,
            "device_removed" => Kind::DeviceRemoved,
            "state" => Kind::State,
            "event" => Kind::Event,
            "availability" => Kind::Availability,
            _ => return None,
        })
    }

    /// Whether only the newest row of this kind per device (and feature) must be kept.
    fn superseded(self) -> bool {
        !matches!(self, Kind::Event)
    }
}

/// One message for the cloud, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What it is.
    pub kind: Kind,
    /// The device.
    pub device: String,
    /// The feature (state and events).
    pub feature: Option<String>,
    /// The hub's event, as JSON.
    pub payload: String,
    /// When it happened (ms since 1970).
    pub at: i64,
}

/// A stored row, with its place in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// Its id: the order of sending.
    pub id: i64,
    /// The row.
    pub row: Row,
}

/// Stores a row: the rows it supersedes stop being the latest. Keeps the outbox within `cap`
/// rows; returns how many rows were dropped for it.
pub fn insert(tx: &Connection, row: &Row, cap: u64) -> Result<u64, StoreError> {
    let kind = row.kind.as_str();
    let feature = row.feature.as_deref().unwrap_or("");
    if row.kind.superseded() {
        // A removal supersedes the device's description; a description supersedes a removal.
        let same: &[&str] = match row.kind {
            Kind::Device | Kind::DeviceRemoved => &["device", "device_removed"],
            _ => &[kind],
        };
        for k in same {
            tx.prepare_cached(
                "UPDATE outbox SET latest = 0 WHERE latest = 1 AND kind = ?1 AND device = ?2 AND feature = ?3",
            )?
            .execute(params![k, row.device, feature])?;
        }
    }
    tx.prepare_cached(
        "INSERT INTO outbox (kind, device, feature, payload, at, latest) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![kind, row.device, feature, row.payload, row.at, row.kind.superseded()])?;
    trim(tx, cap)
}

/// Drops rows down to `cap`, by the policy in the module docs; returns how many.
pub fn trim(tx: &Connection, cap: u64) -> Result<u64, StoreError> {
    let count = len(tx)?;
    if count <= cap {
        return Ok(0);
    }
    let excess = count - cap;
    let superseded = tx.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE latest = 0 AND kind <> 'event' ORDER BY id LIMIT ?1)",
        [i64::try_from(excess).unwrap_or(i64::MAX)],
    )? as u64;
    let mut dropped = superseded;
    if dropped < excess {
        dropped += tx.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = 'event' ORDER BY id LIMIT ?1)",
            [i64::try_from(excess - dropped).unwrap_or(i64::MAX)],
        )? as u64;
    }
    Ok(dropped)
}

/// Rows waiting (kept by triggers in `outbox_size`, so it costs no scan).
pub fn len(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.prepare_cached("SELECT n FROM outbox_size")?.query_row([], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Up to `limit` rows after `after`, in order.
pub fn after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<Stored>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, kind, device, feature, payload, at FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = st.query_map(params![after, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (id, kind, device, feature, payload, at) = r?;
        let Some(kind) = Kind::parse(&kind) else { continue };
        let feature = (!feature.is_empty()).then_some(feature);
        out.push(Stored { id, row: Row { kind, device, feature, payload, at } });
    }
    Ok(out)
}

/// Deletes acknowledged rows.
pub fn delete(tx: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
    for id in ids {
        st.execute([id])?;
    }
    Ok(())
}

/// The oldest row's time, for the status (how far behind the cloud is).
pub fn oldest_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT at FROM outbox ORDER BY id LIMIT 1", [], |r| r.get(0)).optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        (dir, conn)
    }

    fn row(kind: Kind, device: &str, feature: Option<&str>, n: i64) -> Row {
        Row { kind, device: device.into(), feature: feature.map(Into::into), payload: format!("{{\"n\":{n}}}"), at: n }
    }

    #[test]
    fn rows_come_back_in_order_and_go_when_acknowledged() {
        let (_d, conn) = db();
        for n in 0..5 {
            insert(&conn, &row(Kind::State, "demo:a", Some("x"), n), 100).expect("insert");
        }
        let all = after(&conn, 0, 10).expect("read");
        assert_eq!(all.iter().map(|s| s.row.at).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        let first_two: Vec<i64> = all[..2].iter().map(|s| s.id).collect();
        delete(&conn, &first_two).expect("delete");
        assert_eq!(len(&conn).expect("len"), 3);
        assert_eq!(after(&conn, all[2].id, 10).expect("read").len(), 2);
        assert_eq!(oldest_at(&conn).expect("oldest"), Some(2));
    }

    #[test]
    fn over_the_cap_old_samples_go_first_then_events_and_the_latest_state_stays() {
        let (_d, conn) = db();
        let cap = 6;
        // Two features with a long history, a few events, one availability per device.
        let mut n = 0;
        for _ in 0..4 {
            for f in ["x", "y"] {
                n += 1;
                insert(&conn, &row(Kind::State, "demo:a", Some(f), n), 1000).expect("insert");
            }
        }
        for _ in 0..3 {
            n += 1;
            insert(&conn, &row(Kind::Event, "demo:b", Some("action"), n), 1000).expect("insert");
        }
        n += 1;
        insert(&conn, &row(Kind::Availability, "demo:a", None, n), 1000).expect("insert");
        assert_eq!(len(&conn).expect("len"), 12);
        let dropped = trim(&conn, cap).expect("trim");
        assert_eq!(dropped, 6, "the six older samples of x and y");
        let kept: Vec<(String, i64)> = after(&conn, 0, 100)
            .expect("read")
            .into_iter()
            .map(|s| (format!("{}/{}", s.row.kind.as_str(), s.row.feature.unwrap_or_default()), s.row.at))
            .collect();
        assert_eq!(
            kept,
            [
                ("state/x".into(), 7),
                ("state/y".into(), 8),
                ("event/action".into(), 9),
                ("event/action".into(), 10),
                ("event/action".into(), 11),
                ("availability/".into(), 12)
            ]
        );
        // Tighter still: events go, oldest first; the latest state and availability never.
        assert_eq!(trim(&conn, 2).expect("trim"), 3);
        assert_eq!(len(&conn).expect("len"), 3);
        assert_eq!(trim(&conn, 0).expect("trim"), 0, "nothing left that may be dropped");
    }

    #[test]
    fn ids_grow_even_after_the_outbox_was_emptied() {
        let (_d, conn) = db();
        insert(&conn, &row(Kind::State, "demo:a", Some("x"), 1), 100).expect("insert");
        let first = after(&conn, 0, 10).expect("read");
        delete(&conn, &[first[0].id]).expect("delete");
        insert(&conn, &row(Kind::State, "demo:a", Some("x"), 2), 100).expect("insert");
        let next = after(&conn, first[0].id, 10).expect("read");
        assert_eq!(next.len(), 1, "a sender's cursor past the old id still finds the new row");
    }

    #[test]
    fn insert_keeps_the_cap_by_itself() {
        let (_d, conn) = db();
        let mut dropped = 0;
        for n in 0..50 {
            dropped += insert(&conn, &row(Kind::State, "demo:a", Some("x"), n), 10).expect("insert");
        }
        assert_eq!(len(&conn).expect("len"), 10);
        assert_eq!(dropped, 40);
        assert_eq!(after(&conn, 0, 100).expect("read").last().map(|s| s.row.at), Some(49));
    }
}
