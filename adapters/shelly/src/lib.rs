//! Shelly Gen2 and later (Plus, Pro, Gen3, Gen4) for Hearth, over the devices' local RPC API.
//!
//! Layout: `rpc.rs` maps the RPC's JSON (device info, config, status, notifications) to the
//! model and commands back to RPC calls, as pure functions; `digest.rs` is the digest
//! authentication of password-protected devices, also pure; `session.rs` is one connection to a
//! device (HTTP RPC to describe it, then the WebSocket RPC for live updates and commands);
//! `adapter.rs` plugs it into the Wi-Fi runner (`hearth_mdns::lan`): which mDNS announcements
//! are Shelly devices, the secrets (device passwords) and the manifest.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod digest;
pub mod rpc;
mod session;

pub use adapter::{Shelly, ShellyAdapter};
