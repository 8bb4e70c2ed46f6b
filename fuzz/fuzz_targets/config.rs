//! The configuration file: TOML text to a validated `Config`, as `hearth` reads
//! `/etc/hearth/hearth.toml` (error positions, "did you mean" suggestions, checks across keys),
//! then each adapter's section as the hub hands it to the adapter, read by the adapter's own
//! configuration reader.
//!
//! Property: a configuration that was accepted is still accepted after a JSON round trip (the
//! form the hub hands sections on in), and writes the same JSON again.
//!
//! Input: the TOML text.
#![no_main]

use std::path::Path;

use hearth::config::Config;
use hearth_fuzz::assert_json_fixed_point;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let config = match Config::parse(text, Path::new("hearth.toml")) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert_json_fixed_point(&config, "the configuration");
    let json = serde_json::to_value(&config).unwrap_or_default();
    match serde_json::from_value::<Config>(json) {
        Ok(back) => {
            if let Err(e) = back.validate() {
                panic!("an accepted configuration is refused after a JSON round trip: {e}");
            }
        }
        Err(e) => panic!("an accepted configuration does not read back from its JSON: {e}"),
    }
    let a = &config.adapters;
    let _ = hearth_ble::Config::from_json(&section(&a.ble));
    let _ = hearth_mqtt_discovery::Config::from_json(&section(&a.mqtt_discovery));
    let _ = hearth_tasmota::Config::from_json(&section(&a.tasmota));
    let _ = hearth_yeelight::Config::from_json(&section(&a.yeelight));
    let _ = hearth_miio::Config::from_json(&section(&a.miio));
    let _ = serde_json::from_value::<hearth_zigbee2mqtt::Config>(section(&a.zigbee2mqtt));
    let _ = config.cloud.endpoint();
});

/// A configuration section as the hub hands it to its adapter.
fn section<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
