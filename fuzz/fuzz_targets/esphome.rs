//! ESPHome's native API: the plaintext frame decoder, every protobuf message this crate reads
//! (each must re-encode to bytes that decode to the same message), the entity list to device
//! mapping and state messages through it; the Noise transport's frame decoder, server hello and
//! handshake answers; and the plaintext inside an encrypted frame.
//!
//! Input: the first byte chooses.
//! - 0: a plaintext byte stream from a device (fed in two parts, as reads split it).
//! - 1: a Noise byte stream from a device, to a client that started a handshake.
//! - 2: the plaintext of one encrypted data frame.
#![no_main]

use hearth_esphome::api::frame::decode_noise_plaintext;
use hearth_esphome::api::{DeviceMap, Message, NoiseClient, NoiseKey, PlaintextDecoder, command_key, state_key};
use hearth_fuzz::{check_events, finite, split_selector};
use hearth_sdk::{AdapterEvent, CommandRequest};
use libfuzzer_sys::fuzz_target;

/// Decodes a message; checks its encoding is a fixed point.
fn message(msg_type: u32, payload: &[u8]) -> Option<Message> {
    let m = Message::decode(msg_type, payload).ok()?;
    assert_eq!(m.msg_type(), msg_type);
    let encoded = m.encode();
    let again = match Message::decode(msg_type, &encoded) {
        Ok(again) => again,
        Err(e) => panic!("{}: its own encoding does not decode: {e}", m.name()),
    };
    assert_eq!(again.encode(), encoded, "{}: encoding changed on a round trip", m.name());
    let _ = (state_key(&m), command_key(&m));
    Some(m)
}

fn plaintext(data: &[u8]) {
    let mut decoder = PlaintextDecoder::new();
    let mut messages = Vec::new();
    let half = data.len() / 2;
    for part in [&data[..half], &data[half..]] {
        decoder.push(part);
        while let Ok(Some(frame)) = decoder.next_frame() {
            if let Some(m) = message(frame.msg_type, &frame.payload) {
                messages.push(m);
            }
            if messages.len() > 256 {
                return;
            }
        }
    }
    let Some(info) = messages.iter().find_map(|m| match m {
        Message::DeviceInfoResponse(info) => Some(info.clone()),
        _ => None,
    }) else {
        return;
    };
    let Ok(map) = DeviceMap::new(&info, &messages) else { return };
    check_events(&[AdapterEvent::Device { device: map.descriptor().clone() }]);
    let _ = map.entity_keys();
    for m in &messages {
        if let Some(values) = map.values(m) {
            for (key, v) in &values {
                assert!(finite(v), "feature `{key}` read a number that is not finite: {v:?}");
            }
        }
    }
    for f in &map.descriptor().features {
        let request: CommandRequest =
            serde_json::from_value(serde_json::json!({"refresh": [f.key]})).unwrap_or_default();
        let _ = map.commands(&request);
    }
}

fn noise(data: &[u8]) {
    let Ok((mut client, _hello)) = NoiseClient::start(&NoiseKey::from_bytes([0x5A; 32])) else { return };
    let half = data.len() / 2;
    for part in [&data[..half], &data[half..]] {
        if client.receive(part).is_err() {
            // A failed client refuses everything after.
            assert!(client.receive(&[0x01, 0x00, 0x00]).is_err(), "a failed client refuses more input");
            return;
        }
    }
    let _ = client.is_ready();
}

fuzz_target!(|data: &[u8]| {
    match split_selector(data, 3) {
        Some((0, rest)) => plaintext(rest),
        Some((1, rest)) => noise(rest),
        Some((_, rest)) => {
            if let Some(frame) = decode_noise_plaintext(rest) {
                let _ = message(frame.msg_type, &frame.payload);
            }
        }
        None => {}
    }
});
