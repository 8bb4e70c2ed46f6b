//! The built-in adapters: one explicit list, one line each, each behind its cargo feature.
//!
//! To add an adapter: add its crate under `adapters/`, a feature in `hub/Cargo.toml`, a
//! `[adapters.<id>]` section in `config.rs`, and one entry here.

use hearth_sdk::Adapter;

use crate::config::Config;

/// A built-in adapter: how to tell whether it is enabled, its config section, and how to make it.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// Its id (also the prefix of its device ids).
    pub id: &'static str,
    /// Whether the configuration enables it.
    pub enabled: fn(&Config) -> bool,
    /// Its `[adapters.<id>]` section as JSON.
    pub config: fn(&Config) -> serde_json::Value,
    /// A new instance.
    pub make: fn() -> Box<dyn Adapter>,
}

/// Every built-in adapter compiled into this binary, in start order.
pub fn builtin() -> Vec<Builtin> {
    vec![
        #[cfg(feature = "demo")]
        Builtin {
            id: "demo",
            enabled: |c| c.adapters.demo.enabled,
            config: |c| serde_json::to_value(&c.adapters.demo).unwrap_or_default(),
            make: || Box::new(hearth_demo::DemoAdapter::new()),
        },
        #[cfg(feature = "zigbee2mqtt")]
        Builtin {
            id: "zigbee2mqtt",
            enabled: |c| c.adapters.zigbee2mqtt.enabled,
            config: |c| serde_json::to_value(&c.adapters.zigbee2mqtt).unwrap_or_default(),
            make: || Box::new(hearth_zigbee2mqtt::Zigbee2mqttAdapter::new()),
        },
        #[cfg(feature = "ble")]
        Builtin {
            id: "ble",
            enabled: |c| c.adapters.ble.enabled,
            config: |c| serde_json::to_value(&c.adapters.ble).unwrap_or_default(),
            make: || Box::new(hearth_ble::BleAdapter::new()),
        },
        #[cfg(feature = "mdns")]
        Builtin {
            id: "mdns",
            enabled: |c| c.adapters.mdns.enabled,
            config: |c| serde_json::to_value(&c.adapters.mdns).unwrap_or_default(),
            make: || Box::new(hearth_mdns::adapter::MdnsAdapter::new()),
        },
        #[cfg(feature = "shelly")]
        Builtin {
            id: "shelly",
            enabled: |c| c.adapters.shelly.enabled,
            config: |c| serde_json::to_value(&c.adapters.shelly).unwrap_or_default(),
            make: || Box::new(hearth_shelly::ShellyAdapter::new()),
        },
        #[cfg(feature = "wled")]
        Builtin {
            id: "wled",
            enabled: |c| c.adapters.wled.enabled,
            config: |c| serde_json::to_value(&c.adapters.wled).unwrap_or_default(),
            make: || Box::new(hearth_wled::WledAdapter::new()),
        },
        #[cfg(feature = "esphome")]
        Builtin {
            id: "esphome",
            enabled: |c| c.adapters.esphome.enabled,
            config: |c| serde_json::to_value(&c.adapters.esphome).unwrap_or_default(),
            make: || Box::new(hearth_esphome::EsphomeAdapter::new()),
        },
        #[cfg(feature = "mqtt_discovery")]
        Builtin {
            id: "mqtt_discovery",
            enabled: |c| c.adapters.mqtt_discovery.enabled,
            config: |c| serde_json::to_value(&c.adapters.mqtt_discovery).unwrap_or_default(),
            make: || Box::new(hearth_mqtt_discovery::MqttDiscoveryAdapter::new()),
        },
        #[cfg(feature = "tasmota")]
        Builtin {
            id: "tasmota",
            enabled: |c| c.adapters.tasmota.enabled,
            config: |c| serde_json::to_value(&c.adapters.tasmota).unwrap_or_default(),
            make: || Box::new(hearth_tasmota::TasmotaAdapter::new()),
        },
        #[cfg(feature = "yeelight")]
        Builtin {
            id: "yeelight",
            enabled: |c| c.adapters.yeelight.enabled,
            config: |c| serde_json::to_value(&c.adapters.yeelight).unwrap_or_default(),
            make: || Box::new(hearth_yeelight::YeelightAdapter::new()),
        },
        #[cfg(feature = "miio")]
        Builtin {
            id: "miio",
            enabled: |c| c.adapters.miio.enabled,
            config: |c| serde_json::to_value(&c.adapters.miio).unwrap_or_default(),
            make: || Box::new(hearth_miio::MiioAdapter::new()),
        },
    ]
}
