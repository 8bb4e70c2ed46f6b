//! WLED light controllers for Hearth, over WLED's JSON API.
//!
//! Layout: `json.rs` maps `/json/info` and `/json/state` to the model and commands back to state
//! patches, as pure functions; `adapter.rs` is the adapter and what an mDNS announcement is;
//! `session.rs` is one connection to a controller (HTTP, then the WebSocket `/ws`), run by
//! `hearth_mdns::lan`.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod json;
pub mod session;

pub use adapter::{WledAdapter, WledProtocol};
