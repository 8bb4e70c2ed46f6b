//! Tasmota's native MQTT protocol: discovery configs and sensor lists (`tasmota/discovery/<MAC>/
//! config` and `/sensors`), then the device's `tele/` and `stat/` messages (LWT, STATE, SENSOR,
//! RESULT, STATUS10, POWER ...) through the same `Devices` the adapter runs, in sequences, so
//! state payloads meet the mapping built from a config before them.
//!
//! Input: records `topic\npayload` separated by NUL (see `hearth_fuzz::records`).
#![no_main]

use hearth_fuzz::{check_events, records};
use hearth_tasmota::DEFAULT_DISCOVERY_PREFIX;
use hearth_tasmota::api::{DiscoveryConfig, SensorsDiscovery, discovery_topic};
use hearth_tasmota::devices::{Devices, Out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut devices = Devices::new(DEFAULT_DISCOVERY_PREFIX);
    for (topic, payload) in records(data) {
        if let Some(rest) = topic.strip_prefix("tasmota/discovery/") {
            let _ = discovery_topic(rest);
        }
        if let Ok(config) = DiscoveryConfig::parse(payload) {
            let _ = (config.check(), config.native_id(), config.relays(), config.light_subtype());
        }
        let _ = SensorsDiscovery::parse(payload);
        let events: Vec<_> = devices
            .message(topic, payload)
            .into_iter()
            .filter_map(|out| match out {
                Out::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        check_events(&events);
    }
    let _ = devices.filters();
    check_events(
        &devices
            .all_offline("fuzz")
            .into_iter()
            .filter_map(|out| match out {
                Out::Event(e) => Some(e),
                _ => None,
            })
            .collect::<Vec<_>>(),
    );
});
