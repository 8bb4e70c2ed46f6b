//! Shelly Gen2 and later (Plus, Pro, Gen3, Gen4) for Hearth, over the devices' local RPC API.
//!
//! Layout: `rpc.rs` maps the RPC's JSON (device info, config, status, notifications) to the
//! model and commands back to RPC calls, as pure functions. The connection (HTTP, WebSocket,
//! digest authentication) arrives with the adapter.
#![forbid(unsafe_code)]

pub mod rpc;
