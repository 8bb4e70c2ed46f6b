//! How many zigbee2mqtt device state messages per second the adapter decodes and maps.
//!
//! Run: `cargo bench -p hearth-zigbee2mqtt --bench decode`. Prints figures; asserts nothing.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use hearth_zigbee2mqtt::api::Expose;
use hearth_zigbee2mqtt::bridge::Bridge;
use serde_json::json;

fn main() {
    let bulb: Vec<Expose> = serde_json::from_value(json!([
        {"type": "light", "features": [
            {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"},
            {"type": "numeric", "name": "brightness", "property": "brightness", "access": 7, "value_min": 0, "value_max": 254},
            {"type": "numeric", "name": "color_temp", "property": "color_temp", "access": 7, "unit": "mired", "value_min": 153, "value_max": 500},
            {"type": "composite", "name": "color_xy", "property": "color", "access": 7, "features": [
                {"type": "numeric", "name": "x", "property": "x", "access": 7},
                {"type": "numeric", "name": "y", "property": "y", "access": 7}]}]},
        {"type": "numeric", "name": "linkquality", "property": "linkquality", "access": 1, "unit": "lqi"}
    ]))
    .unwrap();
    let sensor: Vec<Expose> = serde_json::from_value(json!([
        {"type": "numeric", "name": "temperature", "property": "temperature", "access": 1, "unit": "°C"},
        {"type": "numeric", "name": "humidity", "property": "humidity", "access": 1, "unit": "%"},
        {"type": "numeric", "name": "pressure", "property": "pressure", "access": 1, "unit": "hPa"},
        {"type": "numeric", "name": "battery", "property": "battery", "access": 1, "unit": "%"},
        {"type": "numeric", "name": "voltage", "property": "voltage", "access": 1, "unit": "mV"},
        {"type": "numeric", "name": "linkquality", "property": "linkquality", "access": 1, "unit": "lqi"}
    ]))
    .unwrap();
    let devices: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            let exposes = if i % 2 == 0 { &bulb } else { &sensor };
            json!({"ieee_address": format!("0x{i:016x}"), "type": "Router", "network_address": i, "supported": true,
                   "friendly_name": format!("device {i}"), "disabled": false, "interview_state": "SUCCESSFUL",
                   "definition": {"model": "M", "vendor": "V", "description": "d", "exposes": exposes, "supports_ota": false}})
        })
        .collect();
    let mut bridge = Bridge::new("zigbee2mqtt");
    bridge.message("bridge/state", br#"{"state":"online"}"#).unwrap();
    let t = Instant::now();
    bridge.message("bridge/devices", serde_json::to_vec(&devices).unwrap().as_slice()).unwrap();
    let load = t.elapsed();

    let n = 200_000;
    let payloads: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            let p = if i % 2 == 0 {
                json!({"state": "ON", "brightness": i % 254, "color_temp": 250, "color": {"x": 0.3, "y": 0.3}, "linkquality": 120, "last_seen": "2026-11-28T21:00:00.000Z"})
            } else {
                json!({"temperature": 21.5, "humidity": 48.2, "pressure": 1012.3, "battery": 97, "voltage": 3010, "linkquality": 80})
            };
            (format!("device {i}"), serde_json::to_vec(&p).unwrap())
        })
        .collect();
    let t = Instant::now();
    let mut events = 0usize;
    for k in 0..n {
        let (topic, payload) = &payloads[k % payloads.len()];
        events += bridge.message(topic, payload).unwrap().len();
    }
    let dt = t.elapsed().as_secs_f64();
    println!("zigbee2mqtt decode benchmark (1,000 devices: half color bulbs, half climate sensors)");
    println!("  bridge/devices of 1,000 devices parsed and mapped in {:.1} ms", load.as_secs_f64() * 1000.0);
    println!(
        "  {n} state messages decoded and mapped in {dt:.2} s: {:.0} messages/s ({events} adapter events)",
        n as f64 / dt
    );
}
