//! The discovery inbox: what an adapter found that is not a device of the home yet (a BLE
//! thermometer heard nearby, a Shelly announced over mDNS), waiting for the user to accept or
//! ignore it.
//!
//! An adapter that asks before adding devices sends [`AdapterEvent::Found`](crate::AdapterEvent)
//! for each thing it finds, keyed by a stable identity (a MAC or the device's own id, never an IP
//! address, which DHCP may change), and announces a device only once its key is accepted. The hub
//! keeps the inbox, stores the user's decisions, and hands each adapter a live view of its own
//! ([`Inbox`]): accepted keys stay accepted across restarts; ignored ones stay out of the way;
//! forgetting a key (or removing its device) makes it new again the next time it is found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::model::DeviceId;
use crate::time::Timestamp;

/// How a found thing is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Wi-Fi or Ethernet on the LAN.
    Wifi,
    /// Bluetooth Low Energy.
    Ble,
    /// Zigbee.
    Zigbee,
    /// Anything else.
    Other,
}

/// Something an adapter found.
///
/// JSON form: `{"key": "a4c1380a1b2c", "device": "ble:a4c1380a1b2c", "name": "ATC_0A1B2C",
/// "manufacturer": "Xiaomi", "model": "LYWSD03MMC", "transport": "ble", "address":
/// "A4:C1:38:0A:1B:2C", "supported": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Its stable identity within the adapter (a MAC, the device's own id).
    pub key: String,
    /// The id its device gets when accepted.
    pub device: DeviceId,
    /// What it calls itself, or a name made from its model.
    pub name: String,
    /// Its maker, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Its model, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// How it is reached.
    pub transport: Transport,
    /// Where it is now (an IP address, a BLE address); it may change, `key` does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether the adapter can make a device of it (`false`: seen, not supported yet).
    pub supported: bool,
    /// Its kind within the adapter (`bthome`, `ruuvi`, `shelly`), so `[inbox] auto_accept` can
    /// name `adapter:kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// The user's decision about a found thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Make a device of it.
    Accepted,
    /// Leave it out, and stop offering it.
    Ignored,
}

/// Where an inbox entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxStatus {
    /// Found, waiting for the user.
    New,
    /// Accepted: a device of the home.
    Accepted,
    /// Ignored.
    Ignored,
}

impl From<Decision> for InboxStatus {
    fn from(d: Decision) -> InboxStatus {
        match d {
            Decision::Accepted => InboxStatus::Accepted,
            Decision::Ignored => InboxStatus::Ignored,
        }
    }
}

/// One entry of the hub's inbox, as the API and the WebSocket give it.
///
/// JSON form: the [`Found`] fields, and `adapter`, `status`, `first_seen`, `last_seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// The adapter that found it.
    pub adapter: String,
    /// What was found.
    #[serde(flatten)]
    pub found: Found,
    /// Where it stands.
    pub status: InboxStatus,
    /// When it was first found.
    pub first_seen: Timestamp,
    /// When it was last found.
    pub last_seen: Timestamp,
}

/// An adapter's live view of the user's decisions about what it found: key to decision.
#[derive(Debug, Clone)]
pub struct Inbox {
    rx: watch::Receiver<BTreeMap<String, Decision>>,
}

impl Inbox {
    /// A view fed by the returned sender (the hub's end), starting with `decisions`.
    pub fn channel(decisions: BTreeMap<String, Decision>) -> (watch::Sender<BTreeMap<String, Decision>>, Inbox) {
        let (tx, rx) = watch::channel(decisions);
        (tx, Inbox { rx })
    }

    /// A view with no decisions that never changes (for adapters that do not ask).
    pub fn none() -> Inbox {
        Inbox::channel(BTreeMap::new()).1
    }

    /// The decision about `key`, if the user made one.
    pub fn decision(&self, key: &str) -> Option<Decision> {
        self.rx.borrow().get(key).copied()
    }

    /// Whether `key` is accepted.
    pub fn is_accepted(&self, key: &str) -> bool {
        self.decision(key) == Some(Decision::Accepted)
    }

    /// Every decision now.
    pub fn decisions(&self) -> BTreeMap<String, Decision> {
        self.rx.borrow().clone()
    }

    /// Waits for the decisions to change; returns them, or `None` once the hub has gone (then
    /// it waits no more).
    pub async fn changed(&mut self) -> Option<BTreeMap<String, Decision>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_adapter_sees_each_decision_as_it_is_made() {
        let (tx, mut inbox) = Inbox::channel(BTreeMap::from([("a".to_owned(), Decision::Ignored)]));
        assert_eq!(inbox.decision("a"), Some(Decision::Ignored));
        assert!(!inbox.is_accepted("b"));
        tx.send_modify(|d| {
            d.insert("b".into(), Decision::Accepted);
        });
        let now = inbox.changed().await.expect("changed");
        assert_eq!(now.get("b"), Some(&Decision::Accepted));
        assert!(inbox.is_accepted("b"));
        drop(tx);
        assert_eq!(inbox.changed().await, None, "the hub has gone");
    }
}
