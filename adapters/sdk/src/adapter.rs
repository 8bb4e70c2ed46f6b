//! The adapter interface: what an adapter gets from the hub and what it sends back.
//!
//! An adapter runs as one task. It owns its connection (an MQTT client, a BLE scanner, HTTP
//! sessions), maps what it hears onto the model, and sends [`AdapterEvent`]s through a bounded
//! channel: when the hub is busy the adapter waits (backpressure), nothing is dropped. It receives
//! the [`Command`]s for its devices, already validated against their features, and stops when the
//! shutdown signal fires. The rules every adapter follows are in `adapters/sdk/ADAPTERS.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::Command;
use crate::event::{AdapterStatus, Context};
use crate::inbox::{Found, Inbox};
use crate::model::{Availability, DeviceDescriptor, DeviceId};
use crate::secrets::{SecretSpec, Secrets};
use crate::value::Value;

/// A boxed future, as adapters return from [`Adapter::run`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an adapter tells the hub.
///
/// JSON form (as plugins send it) is tagged by `type`:
/// `{"type": "state", "device": "demo:lamp", "values": {"state": true}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum AdapterEvent {
    /// A device was found, or its description changed.
    Device {
        /// The description.
        device: DeviceDescriptor,
    },
    /// A device is gone (unpaired, removed at the bridge).
    DeviceRemoved {
        /// Its id.
        device: DeviceId,
    },
    /// The device reported these values (a report of an unchanged value only refreshes its time).
    State {
        /// The device.
        device: DeviceId,
        /// Feature key to value, in canonical units.
        values: BTreeMap<String, Value>,
        /// The context of the command that caused this report, when the adapter knows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Context>,
    },
    /// A momentary event (a button press).
    Event {
        /// The device.
        device: DeviceId,
        /// The feature it belongs to (`action`).
        feature: String,
        /// The event (`single`, `double`, `hold`).
        event: String,
        /// Extra data sent with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
    },
    /// The device went online or offline.
    Availability {
        /// The device.
        device: DeviceId,
        /// Its availability, with the reason when offline.
        availability: Availability,
    },
    /// Input the adapter could not use (malformed payload, unknown device): counted by the hub.
    /// The adapter logs it itself, once per source.
    InputRejected {
        /// Where it came from (an MQTT topic, an address).
        source: String,
        /// Why it was refused.
        reason: String,
    },
    /// The adapter's own status (connected, reconnecting, no hardware ...).
    Status {
        /// The status.
        status: AdapterStatus,
    },
    /// Something the adapter found, for the discovery inbox: the adapter announces its device
    /// once the user accepts it (see [`crate::inbox`]). Sending it again refreshes when it was
    /// last seen and its address.
    Found {
        /// What was found.
        found: Found,
    },
}

/// The adapter's side of the event channel; clone it freely.
///
/// Sending waits while the hub is busy (the channel is bounded): backpressure, never a silent drop.
#[derive(Clone)]
pub struct EventSender {
    adapter: &'static str,
    tx: mpsc::Sender<(&'static str, AdapterEvent)>,
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender").field("adapter", &self.adapter).finish_non_exhaustive()
    }
}

/// The hub has stopped listening: the adapter should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the hub is shutting down")]
pub struct HubGone;

impl EventSender {
    /// A sender that tags every event with the adapter's id.
    pub fn new(adapter: &'static str, tx: mpsc::Sender<(&'static str, AdapterEvent)>) -> EventSender {
        EventSender { adapter, tx }
    }

    /// Sends one event, waiting while the channel is full.
    pub async fn send(&self, event: AdapterEvent) -> Result<(), HubGone> {
        self.tx.send((self.adapter, event)).await.map_err(|_| HubGone)
    }

    /// Announces a device.
    pub async fn device(&self, device: DeviceDescriptor) -> Result<(), HubGone> {
        self.send(AdapterEvent::Device { device }).await
    }

    /// Reports values of a device.
    pub async fn state(
        &self,
        device: &DeviceId,
        values: BTreeMap<String, Value>,
        cause: Option<Context>,
    ) -> Result<(), HubGone> {
        self.send(AdapterEvent::State { device: device.clone(), values, cause }).await
    }

    /// Fires a momentary event.
    pub async fn event(&self, device: &DeviceId, feature: &str, event: &str) -> Result<(), HubGone> {
        self.send(AdapterEvent::Event {
            device: device.clone(),
            feature: feature.to_owned(),
            event: event.to_owned(),
            data: None,
        })
        .await
    }

    /// Reports a device's availability.
    pub async fn availability(&self, device: &DeviceId, availability: Availability) -> Result<(), HubGone> {
        self.send(AdapterEvent::Availability { device: device.clone(), availability }).await
    }

    /// Reports the adapter's own status.
    pub async fn status(&self, status: AdapterStatus) -> Result<(), HubGone> {
        self.send(AdapterEvent::Status { status }).await
    }

    /// Offers something found to the discovery inbox.
    pub async fn found(&self, found: Found) -> Result<(), HubGone> {
        self.send(AdapterEvent::Found { found }).await
    }

    /// The adapter id this sender tags events with.
    pub fn adapter(&self) -> &'static str {
        self.adapter
    }
}

/// Fires once when the hub shuts down.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A signal driven by `rx` (true means stop).
    pub fn new(rx: watch::Receiver<bool>) -> Shutdown {
        Shutdown { rx }
    }

    /// A pair: the trigger (send `true` to stop) and the signal.
    pub fn channel() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown begins (at once if it has; also if the trigger is dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Where an adapter that speaks MQTT connects: the built-in broker or the configured external one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MqttSettings {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name, when the broker wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password, when the broker wants one. Never logged (see the `Debug` impl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// TLS: when present, the connection is encrypted and the broker's certificate and host name
    /// are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<MqttTls>,
}

/// TLS settings of an MQTT connection (files are read by the adapter).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MqttTls {
    /// PEM file of the certificate authority to trust; the system's roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM file of a client certificate, for brokers that ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// PEM file of the client certificate's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why an adapter action failed. The API turns each into a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The parameters are wrong (400).
    #[error("{0}")]
    BadParams(String),
    /// The thing the action names does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The device or bridge refused or failed (502), with its own words.
    #[error("{0}")]
    Failed(String),
    /// No answer in time (504).
    #[error("{0}")]
    Timeout(String),
    /// The adapter cannot do it now (503): not connected, bridge offline.
    #[error("{0}")]
    Unavailable(String),
}

/// A management action for an adapter (permit join, rename or remove at the bridge ...),
/// answered once through `reply`. Which actions an adapter takes is in its manifest.
#[derive(Debug)]
pub struct ActionRequest {
    /// The action, one of the manifest's `actions`.
    pub action: String,
    /// Its parameters, as the API caller sent them.
    pub params: serde_json::Value,
    /// Who asked.
    pub context: Context,
    /// Where the answer goes: JSON for the caller, or why it failed.
    pub reply: oneshot::Sender<Result<serde_json::Value, ActionError>>,
}

/// What the hub hands an adapter when it starts it.
#[derive(Debug)]
pub struct AdapterContext {
    /// The adapter's section of the configuration (`[adapters.<id>]`), as JSON.
    pub config: serde_json::Value,
    /// Where to send what the adapter learns.
    pub events: EventSender,
    /// Validated commands for the adapter's devices.
    pub commands: mpsc::Receiver<Command>,
    /// Management actions named in the manifest.
    pub actions: mpsc::Receiver<ActionRequest>,
    /// Fires when the hub shuts down; return soon after.
    pub shutdown: Shutdown,
    /// The MQTT broker adapters use, if there is one.
    pub mqtt: Option<MqttSettings>,
    /// The user's decisions about what this adapter found (the discovery inbox).
    pub inbox: Inbox,
    /// Secrets an administrator entered for this adapter (bind keys, passwords).
    pub secrets: Secrets,
}

/// What an adapter finds devices by, for discovery and the docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovers {
    /// mDNS service types (`_shelly._tcp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mdns: Vec<String>,
    /// BLE service UUIDs (`0000fcd2-0000-1000-8000-00805f9b34fb`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ble: Vec<String>,
    /// MQTT topic filters (`zigbee2mqtt/#`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mqtt: Vec<String>,
}

/// An adapter's manifest: who it is, what it discovers, which management actions it takes.
///
/// Built-in adapters write it as constants; it is serialised for `GET /api/v1/adapters`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterManifest {
    /// The id, also the prefix of its device ids: lowercase letters, digits and `_`.
    pub id: &'static str,
    /// A human name.
    pub name: &'static str,
    /// What it finds devices by.
    pub discovers: Discovers,
    /// Management actions (`POST /api/v1/adapters/<id>/actions/<action>`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub actions: &'static [&'static str],
    /// The secrets it takes (`PUT /api/v1/adapters/<id>/secrets/<name>`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<SecretSpec>,
}

/// Why an adapter stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AdapterError(pub String);

impl From<HubGone> for AdapterError {
    fn from(e: HubGone) -> Self {
        AdapterError(e.to_string())
    }
}

/// A device integration. Built-in adapters implement it; out-of-process plugins are driven
/// through the same interface by the hub's plugin supervisor.
pub trait Adapter: Send + 'static {
    /// The adapter's manifest.
    fn manifest(&self) -> AdapterManifest;

    /// Runs the adapter until shutdown. An error marks the adapter failed (its devices go
    /// offline with the error as the reason); the hub runs on.
    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>>;
}
