//! zigbee2mqtt: every message the adapter reads (bridge state, info, devices, groups, events,
//! device state and availability) through the same `Bridge` the adapter runs, in sequences, so
//! state payloads meet the mappings built from a `bridge/devices` list before them. Also the
//! wire types alone (each must reread its own JSON unchanged) and exposes to mapping to decoded
//! values for every device of every `bridge/devices` payload.
//!
//! Input: records `topic-after-base\npayload`, separated by NUL (see `hearth_fuzz::records`).
#![no_main]

use hearth_fuzz::{assert_json_fixed_point, check_events, finite, records};
use hearth_zigbee2mqtt::api::{Availability, BridgeDevice, BridgeEvent, BridgeGroup, BridgeInfo, BridgeResponse};
use hearth_zigbee2mqtt::bridge::Bridge;
use hearth_zigbee2mqtt::{decode_state, exposes};
use libfuzzer_sys::fuzz_target;

fn wire_types(payload: &[u8]) {
    let _ = Availability::parse(payload);
    if let Ok(v) = serde_json::from_slice::<BridgeInfo>(payload) {
        assert_json_fixed_point(&v, "BridgeInfo");
    }
    if let Ok(v) = serde_json::from_slice::<Vec<BridgeGroup>>(payload) {
        assert_json_fixed_point(&v, "BridgeGroup list");
    }
    if let Ok(v) = serde_json::from_slice::<BridgeEvent>(payload) {
        let _ = v.ieee_address();
        assert_json_fixed_point(&v, "BridgeEvent");
    }
    if let Ok(v) = serde_json::from_slice::<BridgeResponse>(payload) {
        assert_json_fixed_point(&v, "BridgeResponse");
    }
}

fuzz_target!(|data: &[u8]| {
    let messages = records(data);
    let mut bridge = Bridge::new("zigbee2mqtt");
    let mut mappings = Vec::new();
    for (topic, payload) in &messages {
        if let Ok(events) = bridge.message(topic, payload) {
            check_events(&events);
        }
        wire_types(payload);
        if let Ok(devices) = serde_json::from_slice::<Vec<BridgeDevice>>(payload) {
            assert_json_fixed_point(&devices, "BridgeDevice list");
            for d in &devices {
                let _ = d.interviewed();
                if let Some(def) = &d.definition {
                    mappings.push(exposes::map_exposes(&def.exposes));
                }
            }
        }
    }
    // Every state payload of the input against every mapping built from it.
    for m in mappings.iter().take(8) {
        for (_, payload) in &messages {
            if let Some(values) = decode_state(m, payload) {
                for (key, v) in &values {
                    assert!(finite(v), "feature `{key}` decoded to a number that is not finite: {v:?}");
                }
                // What was read can be written back in the device's terms.
                let _ = exposes::encode_set(m, &values, None);
            }
        }
    }
});
