//! WLED light controllers for Hearth, over WLED's JSON API.
//!
//! Layout: `json.rs` maps `/json/info` and `/json/state` to the model and commands back to state
//! patches, as pure functions. The connection (HTTP, WebSocket) arrives with the adapter.
#![forbid(unsafe_code)]

pub mod json;
