//! ESPHome devices for Hearth, over the ESPHome native API (TCP 6053, plaintext or Noise).
//!
//! Layout: `api.rs` is the wire format (frames, the protobuf messages, the Noise handshake and
//! transport) and the mapping of entities to the model, as pure code. `session.rs` is one
//! connection to a device (hello, entity list, state stream, commands, keep-alive);
//! `adapter.rs` is the adapter: what an mDNS announcement is, its secrets, and the Wi-Fi
//! runner of `hearth-mdns` that keeps every accepted device connected.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod api;
pub mod session;

pub use adapter::{ADAPTER_ID, EsphomeAdapter, EsphomeProtocol, SERVICE_TYPE, check_secret, identify};
