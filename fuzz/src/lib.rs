//! Helpers shared by the fuzz targets: how one fuzz input is cut into several messages, and the
//! properties checked beyond "no panic".
//!
//! Message streams (MQTT and line protocols) use one text form, so a seed is readable and the
//! fuzzer's mutations stay meaningful: records separated by a NUL byte, each a topic, a newline
//! and the payload (`zigbee2mqtt/bridge/devices\n[...]\0zigbee2mqtt/Lamp\n{"state":"ON"}`).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// At most this many records of one input are used, so one input stays quick.
pub const MAX_RECORDS: usize = 32;

/// The records of an input: `(topic, payload)`; records whose topic is not UTF-8 are skipped.
pub fn records(data: &[u8]) -> Vec<(&str, &[u8])> {
    data.split(|b| *b == 0)
        .take(MAX_RECORDS)
        .filter_map(|record| {
            let (topic, payload) = match record.iter().position(|b| *b == b'\n') {
                Some(at) => (&record[..at], &record[at + 1..]),
                None => (record, &record[..0]),
            };
            Some((std::str::from_utf8(topic).ok()?, payload))
        })
        .collect()
}

/// The first byte of an input chooses what the rest is fed to (`selector % choices`).
pub fn split_selector(data: &[u8], choices: u8) -> Option<(u8, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((first % choices, rest))
}

/// Serialising a value read from JSON, reading that back and serialising again gives the same
/// JSON: what the hub writes out of a parsed value it can read in again, unchanged. Numbers are
/// compared to 12 significant digits: serde_json (without its `float_roundtrip` feature) may
/// read a long decimal back one unit off in the last digit (`1.1279298782444028e42` as
/// `1.127929878244403e42`), which is not a loss that matters to anyone.
pub fn assert_json_fixed_point<T: Serialize + DeserializeOwned>(value: &T, what: &str) {
    let Ok(first) = serde_json::to_value(value) else { return };
    let again: T = match serde_json::from_value(first.clone()) {
        Ok(v) => v,
        Err(e) => panic!("{what}: its own JSON does not read back: {e}\n{first}"),
    };
    let second = serde_json::to_value(&again).unwrap_or_default();
    assert!(json_close(&first, &second), "{what}: JSON changed on a round trip\n  {first}\n  {second}");
    // And through text, as it travels.
    let text = first.to_string();
    match serde_json::from_str::<T>(&text) {
        Ok(v) => {
            let third = serde_json::to_value(&v).unwrap_or_default();
            assert!(json_close(&first, &third), "{what}: JSON changed through text\n  {first}\n  {third}");
        }
        Err(e) => panic!("{what}: its own JSON text does not read back: {e}\n{text}"),
    }
}

/// Equal JSON, numbers to 12 significant digits.
pub fn json_close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
            _ => x == y,
        },
        (J::Array(x), J::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y)),
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// Whether every number in a model value is finite (JSON cannot carry the others).
pub fn finite(v: &hearth_sdk::Value) -> bool {
    match v {
        hearth_sdk::Value::Number(n) => n.is_finite(),
        hearth_sdk::Value::Color(c) => c.hue.is_finite() && c.saturation.is_finite(),
        hearth_sdk::Value::List(l) => l.iter().all(finite),
        hearth_sdk::Value::Object(o) => o.values().all(finite),
        hearth_sdk::Value::Bool(_) | hearth_sdk::Value::Text(_) => true,
    }
}

/// What every adapter's events must be, whatever the input: numbers in values finite, and each
/// event the same after a JSON round trip (events cross the plugin protocol and the API as
/// JSON).
pub fn check_events(events: &[hearth_sdk::AdapterEvent]) {
    for e in events {
        match e {
            hearth_sdk::AdapterEvent::State { device, values, .. } => {
                for (key, v) in values {
                    assert!(finite(v), "{device}: feature `{key}` got a number that is not finite: {v:?}");
                }
            }
            hearth_sdk::AdapterEvent::Event { device, data: Some(v), feature, .. } => {
                assert!(finite(v), "{device}: event of `{feature}` has a number that is not finite: {v:?}");
            }
            _ => {}
        }
        assert_json_fixed_point(e, "an adapter event");
    }
}
