//! Xiaomi miIO: packets as they arrive (header, hello, checksum, AES-CBC with the token, its
//! padding), the JSON-RPC answers inside (`miIO.info`, `get_properties`, `action`), MIoT-Spec
//! files (a user's `specs_dir`) mapped to features, and property values both ways through that
//! mapping.
//!
//! Input: the first byte chooses.
//! - 0: a raw datagram, read with a fixed token (and decrypted alone, as ciphertext).
//! - 1: a payload, sealed into a packet with the token then opened (it must come back
//!   unchanged), then read as an answer.
//! - 2: a spec file, NUL, then a JSON list of wire values read through every property's
//!   conversion (and written back).
#![no_main]

use hearth_fuzz::{finite, split_selector};
use hearth_miio::api::{Info, action_code, parse_reply, property_results};
use hearth_miio::map::map;
use hearth_miio::packet::{self, Header, Token};
use hearth_miio::spec;
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

const TOKEN: [u8; 16] = *b"0123456789abcdef";

fn answer(payload: &[u8]) {
    let Ok(reply) = parse_reply(payload) else { return };
    let Ok(result) = reply.outcome else { return };
    let _ = Info::from_result(&result);
    let _ = property_results(&result);
    let _ = action_code(&result);
}

fn spec_file(data: &[u8]) {
    let (text, values) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(spec) = spec::parse("fuzz.json", "fuzz.model.v1", text) else { return };
    let mapped = map(&spec);
    let _ = mapped.readable();
    let wires: Vec<Json> = serde_json::from_slice(values).unwrap_or_default();
    for point in mapped.points.iter().take(32) {
        for wire in wires.iter().take(8) {
            if let Ok(v) = point.to_model(wire) {
                assert!(finite(&v), "`{}` read a number that is not finite: {v:?} from {wire}", point.key);
                let _ = point.to_wire(&v);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let token = Token::new(TOKEN);
    match split_selector(data, 3) {
        Some((0, rest)) => {
            let _ = (Header::read(rest), packet::is_hello(rest));
            if let Ok(p) = packet::decode(&token, rest) {
                answer(&p.payload);
            }
            let _ = packet::decrypt(&token, rest);
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = Token::parse(text);
            }
        }
        Some((1, rest)) => {
            let Ok(sealed) = packet::encode(&token, 0x1234_5678, 1_000, rest) else { return };
            match packet::decode(&token, &sealed) {
                Ok(p) => assert_eq!(p.payload, rest, "a sealed payload opens unchanged"),
                Err(e) => panic!("a packet sealed with the token does not open: {e}"),
            }
            answer(rest);
        }
        Some((_, rest)) => spec_file(rest),
        None => {}
    }
});
