//! The hub's events and the context that says why each happened.

use serde::{Deserialize, Serialize};

use crate::inbox::InboxEntry;
use crate::model::{Area, Availability, Device, DeviceId};
use crate::time::Timestamp;
use crate::value::Value;

/// Who or what caused something.
///
/// JSON form: `{"kind": "user", "name": "alice"}`, `{"kind": "automation", "id": "porch_light"}`,
/// `{"kind": "device"}`, `{"kind": "cloud"}`, `{"kind": "system"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The device itself (a wall switch, a sensor reading).
    Device,
    /// A person, through the UI or the API, by account name.
    User {
        /// The account name.
        name: String,
    },
    /// An automation or scene, by id.
    Automation {
        /// The automation id.
        id: String,
    },
    /// The cloud link.
    Cloud,
    /// Home Assistant, through Hearth's devices published for its MQTT discovery.
    HomeAssistant,
    /// An adapter plugin or the hub itself.
    System,
}

/// Why a change happened: an id, its origin, and the context that caused it (its parent).
///
/// Every command and every state change carries one, so history can explain why a light
/// turned on, and automations can see that a change was their own doing (no silent loops).
///
/// JSON form: `{"id": "19ac4b2e1f3-2a", "origin": {"kind": "user", "name": "alice"}}`, with
/// `"parent": "<id>"` when another context caused it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Context {
    /// Unique id of this context.
    pub id: String,
    /// Who or what caused it.
    pub origin: Origin,
    /// The id of the context that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Context {
    /// A context with this id and origin, no parent.
    pub fn new(id: impl Into<String>, origin: Origin) -> Context {
        Context { id: id.into(), origin, parent: None }
    }

    /// A child context caused by `parent`.
    pub fn child_of(id: impl Into<String>, origin: Origin, parent: &Context) -> Context {
        Context { id: id.into(), origin, parent: Some(parent.id.clone()) }
    }
}

/// The status of an adapter, as shown under `GET /api/v1/adapters`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterState {
    /// Configured, not started yet.
    #[default]
    Starting,
    /// Working.
    Running,
    /// Working in part (e.g. reconnecting).
    Degraded,
    /// Cannot work (no hardware, unreachable bridge); see the reason.
    Unavailable,
    /// Stopped (on shutdown, or it ended).
    Stopped,
    /// It failed; see the reason.
    Failed,
}

/// An adapter's status with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterStatus {
    /// The state.
    pub state: AdapterState,
    /// Why, when not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason as a stable code (`no_broker`), so a UI can say it in the user's language;
    /// optional (an adapter may give only the words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl AdapterStatus {
    /// Running, no reason.
    pub fn running() -> AdapterStatus {
        AdapterStatus { state: AdapterState::Running, reason: None, code: None }
    }

    /// This state with this reason.
    pub fn with(state: AdapterState, reason: impl Into<String>) -> AdapterStatus {
        AdapterStatus { state, reason: Some(reason.into()), code: None }
    }

    /// This state, no reason.
    pub fn bare(state: AdapterState) -> AdapterStatus {
        AdapterStatus { state, reason: None, code: None }
    }

    /// With the reason's code.
    pub fn with_code(mut self, code: &str) -> AdapterStatus {
        self.code = Some(code.to_owned());
        self
    }
}

/// Everything that happens in the hub, as it goes on the bus and over the WebSocket.
///
/// One closed enum: every subscriber (the automation engine, each WebSocket session, cloud sync,
/// plugin bridges) matches on it. JSON form is tagged by `type`, e.g.
/// `{"type": "state_changed", "device": "demo:living_lamp", "feature": "state", "old": false,
///   "new": true, "at": "2026-...", "context": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A device appeared in the registry.
    DeviceAdded {
        /// The device, with its state.
        device: Device,
    },
    /// A device's description, name or area changed (state changes are separate events).
    DeviceUpdated {
        /// The device, with its state.
        device: Device,
    },
    /// A device was removed from the registry.
    DeviceRemoved {
        /// Its id.
        device: DeviceId,
    },
    /// A feature's value changed. A report of the value it already had fires nothing.
    StateChanged {
        /// The device.
        device: DeviceId,
        /// The feature key.
        feature: String,
        /// The value before, `None` for the first value.
        old: Option<Value>,
        /// The new value.
        new: Value,
        /// When.
        at: Timestamp,
        /// Why.
        context: Context,
    },
    /// A momentary event of a device (a button's `single`); never part of state.
    DeviceEvent {
        /// The device.
        device: DeviceId,
        /// The feature it belongs to (`action`).
        feature: String,
        /// The event (`single`, `double`, `hold`).
        event: String,
        /// Extra data the device sent with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
        /// When.
        at: Timestamp,
        /// Why.
        context: Context,
    },
    /// A device went online, offline or unknown.
    AvailabilityChanged {
        /// The device.
        device: DeviceId,
        /// The new availability with its reason.
        availability: Availability,
    },
    /// An area was created or changed.
    AreaUpdated {
        /// The area.
        area: Area,
    },
    /// An area was removed; its devices are now in no area.
    AreaRemoved {
        /// Its id.
        area: String,
    },
    /// An adapter's status changed.
    AdapterStatusChanged {
        /// The adapter id.
        adapter: String,
        /// Its status.
        status: AdapterStatus,
    },
    /// An automation's run ended; its trace is stored (`GET /api/v1/automations/{id}/traces/{run}`).
    AutomationRan {
        /// The automation.
        automation: String,
        /// The run's id.
        run: u64,
        /// How it ended: `finished`, `conditions_failed`, `ignored`, `dropped`, `restarted`,
        /// `stopped`, `timeout`, `loop`, `cancelled` or `error`.
        ending: String,
        /// Why, in words.
        message: String,
        /// When it started.
        started_at: Timestamp,
        /// When it ended.
        ended_at: Timestamp,
    },
    /// An automation was saved, turned on or off, or deleted.
    AutomationChanged {
        /// The automation.
        automation: String,
        /// Its version now; absent when it was deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// Whether it is on; absent when it was deleted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enabled: Option<bool>,
    },
    /// Something was found for the discovery inbox, or its entry changed (a decision, a new
    /// address). Only administrators receive it.
    InboxChanged {
        /// The entry.
        entry: InboxEntry,
    },
    /// An inbox entry was forgotten (by the user, or because its device was removed).
    InboxRemoved {
        /// The adapter.
        adapter: String,
        /// The entry's key.
        key: String,
    },
    /// A message for the people using the web UI (an automation's `notify`).
    Notification {
        /// A title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// The message.
        message: String,
        /// When.
        at: Timestamp,
        /// Who sent it (an automation).
        context: Context,
    },
}
