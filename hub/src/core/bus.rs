//! The event bus: one broadcast channel of the closed [`Event`] enum.
//!
//! Subscribers: the automation engine, each WebSocket session, cloud sync, plugin bridges. The
//! SQLite writer is deliberately *not* a bus subscriber: a broadcast channel drops the oldest
//! events for a subscriber that falls behind, and history must lose nothing, so the state store
//! feeds the writer through its own bounded queue instead.
//!
//! On lag: a subscriber that falls more than [`CAPACITY`] events behind gets
//! `RecvError::Lagged(n)`; it must resynchronise from a fresh snapshot (the WebSocket does exactly
//! that, see `api::ws`).

use std::sync::Arc;

use hearth_sdk::Event;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind before it lags.
pub const CAPACITY: usize = 4096;

/// The sending side of the bus; cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new()
    }
}

impl Bus {
    /// A new bus of [`CAPACITY`].
    pub fn new() -> Bus {
        Bus::with_capacity(CAPACITY)
    }

    /// A new bus on which a subscriber lags after `capacity` unread events.
    pub fn with_capacity(capacity: usize) -> Bus {
        Bus { tx: broadcast::channel(capacity.max(1)).0 }
    }

    /// Publishes an event to every current subscriber.
    pub fn publish(&self, event: Event) {
        // No subscriber is not an error: the event is in state and history already.
        let _ = self.tx.send(Arc::new(event));
    }

    /// A new subscription, starting with the next event.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}
