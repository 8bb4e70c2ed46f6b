//! Hearth's adapter plugin protocol, version 1 (`adapters/sdk/PLUGINS.md`).
//!
//! - [`protocol`]: every message both sides write, as serde types, and the reader that turns a
//!   line into a message or into the `error` to answer it with.
//! - [`lines`]: line framing over any async reader, with the 1 MiB cap.
//! - [`manifest`]: `plugin.toml`, the package manifest, and its config schema.
//! - [`conformance`]: the conformance kit behind `hearth plugin test PATH`.
//! - [`runner`]: the plugin side in Rust: [`run`] makes a plugin of any `hearth_sdk::Adapter`.
//!
//! The hub's supervisor uses both. A plugin written in Rust uses [`run`] (see its docs): it
//! speaks the protocol on stdin and stdout and drives any [`hearth_sdk::Adapter`], so a plugin is
//! a trait implementation, the same one a built-in adapter is.
#![forbid(unsafe_code)]

pub mod conformance;
pub mod lines;
pub mod manifest;
pub mod protocol;
pub mod runner;

pub use protocol::{
    ActionFailure, ActionMessage, ActionResultMessage, CommandMessage, ErrorMessage, HubHello, HubMessage, LogLevel,
    LogMessage, PROTOCOL_VERSION, PluginControl, PluginHello, PluginMessage, ProtocolError, SecretText, SecretsMessage,
    codes, encode, parse_hub, parse_plugin,
};
pub use runner::{Exit, Log, log, run, serve};
