//! ESPHome devices for Hearth, over the ESPHome native API (TCP 6053, plaintext or Noise).
//!
//! Layout: `api.rs` is the wire format (frames, the protobuf messages, the Noise handshake and
//! transport) and the mapping of entities to the model, as pure code. The connection arrives with
//! the adapter.
#![forbid(unsafe_code)]

pub mod api;
