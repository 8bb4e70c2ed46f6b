//! Hearth's SDK: the one device model, the adapter interface, and their JSON contract.
//!
//! # Layout
//! - [`model`]: [`Device`], [`DeviceDescriptor`], [`Feature`] (with its [`Capability`],
//!   [`ValueType`], canonical unit, [`Access`], endpoint and [`Category`]), [`Availability`],
//!   [`Area`], [`FeatureState`].
//! - [`value`]: [`Value`] and [`Color`].
//! - [`command`]: [`CommandRequest`], [`Command`] and their validation against features.
//! - [`event`]: the hub's closed [`Event`] enum and the [`Context`] that says why things happened.
//! - [`adapter`]: the [`Adapter`] trait, [`AdapterContext`] and [`AdapterEvent`].
//! - [`inbox`]: what adapters [`Found`], waiting in the discovery inbox, and the user's
//!   decisions an adapter sees through its [`Inbox`].
//! - [`testing`]: a harness that runs an adapter on channels a test controls.
//!
//! The JSON form of these types is the one contract of the REST API, the WebSocket, plugins and
//! cloud sync; `adapters/sdk/MODEL.md` documents it with examples. Its version is
//! [`SCHEMA_VERSION`]: additions keep the version, changes of meaning raise it.
//!
//! Invariant: this crate does no I/O and depends on no other crate of the workspace.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod command;
pub mod event;
pub mod inbox;
pub mod model;
pub mod secrets;
pub mod testing;
pub mod time;
pub mod value;

pub use adapter::{
    ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, BoxFuture,
    Discovers, EventSender, HubGone, MqttSettings, MqttTls, Shutdown,
};
pub use command::{Command, CommandError, CommandRequest, Refresh, check_value};
pub use event::{AdapterState, AdapterStatus, Context, Event, Origin};
pub use inbox::{Decision, Found, Inbox, InboxEntry, InboxStatus, Transport};
pub use model::{
    Access, Area, Availability, AvailabilityState, Capability, Category, Device, DeviceDescriptor, DeviceId, Feature,
    FeatureState, PowerSource, Preset, ValueType,
};
pub use secrets::{Secret, SecretSpec, Secrets};
pub use time::Timestamp;
pub use value::{Color, Value};

/// The version of the JSON contract (devices, features, values, events, commands).
pub const SCHEMA_VERSION: u32 = 1;
