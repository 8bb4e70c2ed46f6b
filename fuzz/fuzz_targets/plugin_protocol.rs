//! The plugin protocol: a byte stream from a plugin (or from the hub, as a plugin reads it) cut
//! into lines by the real `LineReader` with its length cap, each line read as a plugin message
//! and as a hub message; what reads must write back (`encode`) to a line that reads the same.
//! Also plugin manifests (`plugin.toml`) and a configuration checked against a manifest's
//! schema.
//!
//! Input: the first byte chooses.
//! - 0: the byte stream (the reader's cap lowered to 4 KiB, so over-long lines are reached).
//! - 1: a manifest, NUL, then a configuration as JSON.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use hearth_fuzz::{check_events, split_selector};
use hearth_plugin::lines::{Line, LineReader};
use hearth_plugin::manifest::Manifest;
use hearth_plugin::protocol::{PluginMessage, encode, parse_hub, parse_plugin};
use libfuzzer_sys::fuzz_target;

/// Runs a future that never waits (reading from a byte slice never does).
fn now<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("reading from memory waited"),
    }
}

fn line(text: &str) {
    if let Ok(m) = parse_plugin(text) {
        let _ = m.kind();
        let written = encode(&m);
        assert!(written.ends_with('\n') && !written[..written.len() - 1].contains('\n'), "one line: {written:?}");
        match parse_plugin(written.trim_end_matches('\n')) {
            Ok(again) => assert_eq!(encode(&again), written, "a plugin message changed on a round trip"),
            Err(e) => panic!("a plugin message does not read back: {e:?}\n{written}"),
        }
        if let PluginMessage::Adapter(e) = &m {
            check_events(std::slice::from_ref(e));
        }
    }
    if let Ok(m) = parse_hub(text) {
        let _ = m.kind();
        let written = encode(&m);
        match parse_hub(written.trim_end_matches('\n')) {
            Ok(again) => assert_eq!(encode(&again), written, "a hub message changed on a round trip"),
            Err(e) => panic!("a hub message does not read back: {e:?}\n{written}"),
        }
    }
}

fn stream(data: &[u8]) {
    let mut reader = LineReader::with_max(data, 4096);
    let mut last = 0;
    for _ in 0..256 {
        match now(reader.next()) {
            Ok(Some(l)) => {
                assert!(l.number() > last, "line numbers go up");
                last = l.number();
                if let Line::Text(_, text) = l {
                    assert!(text.len() <= 4096, "a line over the cap was returned");
                    line(&text);
                }
            }
            Ok(None) => return,
            Err(e) => panic!("reading from memory failed: {e}"),
        }
    }
}

fn manifest(data: &[u8]) {
    let (text, config) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let Ok(m) = Manifest::parse(text) else { return };
    let config = serde_json::from_slice(config).unwrap_or(serde_json::Value::Null);
    if let Ok(filled) = m.validate_config(&config) {
        // What validation gives back is itself a valid configuration, and stays as it is.
        match m.validate_config(&filled) {
            Ok(again) => assert_eq!(again, filled, "a checked configuration changed when checked again"),
            Err(e) => panic!("a checked configuration is refused when checked again: {e}\n{filled}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match split_selector(data, 2) {
        Some((0, rest)) => stream(rest),
        Some((_, rest)) => manifest(rest),
        None => {}
    }
});
