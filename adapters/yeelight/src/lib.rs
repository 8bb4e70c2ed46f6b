//! Yeelight lights for Hearth, over Yeelight's LAN control protocol ("Yeelight WiFi Light
//! Inter-Operation Specification"): bulbs found by a multicast search, controlled by JSON lines
//! over TCP, followed by their notifications. A bulb's LAN control must be switched on in the
//! Yeelight app (its "LAN Control" setting) for it to answer.
//!
//! Layout: `api.rs` is the wire format (discovery datagrams, request and answer lines);
//! `map.rs` maps properties to the model and commands to methods, as pure functions;
//! `budget.rs` keeps each bulb within its quota of requests, coalescing what exceeds it;
//! `discovery.rs` searches and listens on the multicast group; `adapter.rs` is the adapter, its
//! configuration and what a found bulb is; `session.rs` is one connection to a bulb, run by
//! `hearth_mdns::lan` (`run_on`).
#![forbid(unsafe_code)]

pub mod adapter;
pub mod api;
pub mod budget;
pub mod discovery;
pub mod map;
pub mod session;

pub use adapter::{Config, YeelightAdapter, YeelightProtocol};
