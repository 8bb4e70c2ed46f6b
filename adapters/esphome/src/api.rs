//! The ESPHome native API as pure code: framing, the protobuf messages, the Noise handshake and
//! transport, and the mapping of entities to the model. No sockets: a connection task feeds
//! bytes in and writes the bytes out.
//!
//! - [`frame`]: plaintext frames and Noise frames, with incremental decoders.
//! - [`noise`]: the encryption key and the client side of the Noise handshake and transport.
//! - [`messages`]: the messages, hand-written from ESPHome's `api.proto`, and [`Message`].
//! - [`mapping`]: [`DeviceMap`], from the entity list to a `DeviceDescriptor`, state messages to
//!   values, commands to messages.
//!
//! Sources: ESPHome's `api.proto` and `api_frame_helper_noise.cpp`, aioesphomeapi's frame
//! helpers and their tests (the captured Noise bytes in the tests come from there).

pub mod frame;
pub mod mapping;
pub mod messages;
pub mod noise;
mod proto;

#[cfg(test)]
mod tests;

pub use frame::{Frame, FrameError, NoiseFrameDecoder, PlaintextDecoder, encode_noise_frame, encode_plaintext};
pub use mapping::{CommandMapError, DeviceMap, MapError, command_key, native_id, state_key};
pub use messages::Message;
pub use noise::{KeyError, NoiseClient, NoiseError, NoiseEvent, NoiseKey};
pub use proto::DecodeError;

/// The API version this client speaks (sent in [`messages::HelloRequest`]).
pub const API_VERSION: (u32, u32) = (1, 10);

/// The `HelloRequest` a client sends first, naming itself `client_info`.
pub fn hello(client_info: &str) -> Message {
    messages::HelloRequest {
        client_info: client_info.to_owned(),
        api_version_major: API_VERSION.0,
        api_version_minor: API_VERSION.1,
    }
    .into()
}

/// A message as a plaintext frame.
pub fn plaintext_frame(msg: &Message) -> Vec<u8> {
    encode_plaintext(msg.msg_type(), &msg.encode())
}
