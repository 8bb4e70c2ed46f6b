//! Devices that describe themselves over MQTT in Home Assistant's discovery format (ESPHome in
//! MQTT mode, Tasmota, zigbee2mqtt, OpenMQTTGateway, Shelly in MQTT mode, DIY firmwares): every
//! retained config on `<prefix>/<component>/[<node_id>/]<object_id>/config` and every
//! device-based config on `<prefix>/device/<id>/config` becomes a device of the one model,
//! readable and controllable, without a line of brand code. This is the read side; Hearth's own
//! devices published for Home Assistant (origin `Hearth`, identifiers `hearth_…`) are always
//! ignored, so the two sides never loop.
//!
//! # Layout
//! - [`config`]: discovery topics and payloads: abbreviations, `~`, device, origin, availability.
//! - [`template`]: the Jinja subset real devices use in `value_template` and its kin.
//! - [`convert`]: units to the canonical ones and back; colors.
//! - [`component`]: each component onto the model (the tables below).
//! - [`registry`]: configs grouped into devices, state messages to model events, commands to
//!   publishes, as pure logic tested without a broker.
//! - this file: the configuration and the adapter task (the MQTT connection, commands, actions).
//!
//! # Configuration: `[adapters.mqtt_discovery]`
//!
//! | key | type | default | what |
//! |---|---|---|---|
//! | `enabled` | bool | `false` | run the adapter |
//! | `prefix` | text | `"homeassistant"` | the discovery prefix |
//! | `ignore_origins` | list of text | `[]` | configs whose origin `name` is one of these (without case) are left out, e.g. `["Zigbee2MQTT"]` to leave zigbee2mqtt's devices to the zigbee2mqtt adapter |
//! | `mqtt` | `MqttSettings` | the hub's broker | another broker: `host`, `port`, `username`, `password`, `tls` |
//!
//! # Devices
//!
//! Configs are grouped into devices by `device.identifiers` (or `connections`, as
//! `<type>_<value>`); a config sharing any identity with a known device joins it. The device id is
//! `mqtt_discovery:<first identity>` in lowercase letters, digits, `_`, `-`, `.` and `:` (others
//! become `_`); a config without a device block is a device of its own,
//! `mqtt_discovery:entity_<unique_id>`. The device takes `name`, `manufacturer`, `model` (with
//! `model_id` in brackets), `sw_version` as firmware, `suggested_area`, and `via_device` as `via`.
//! Feature keys come from the object id of the discovery topic (the device's own id stripped
//! from its start, as in Tasmota's `1A2B3C_RL_1`): see [`registry::feature_key`]; a clash gets
//! `_<component>` or a number. Entities with `enabled_by_default: false` are left out, as Home
//! Assistant leaves them disabled. `json_attributes_topic` becomes one read-only `object`
//! feature `<name>_attributes` (diagnostic). Availability (`availability_topic`, the
//! `availability` list with its payloads and templates, `availability_mode` all/any/latest)
//! makes a device online when any of its entities is available, offline when all are not; a
//! device without availability is online. `expire_after`, `off_delay` and `force_update` are
//! not followed.
//!
//! # Mapping
//!
//! | component | features (key part) | capability, type | read | write |
//! |---|---|---|---|---|
//! | `sensor` with a device class and unit that fit | (name) | `temperature` (°C, °F, K), `humidity`, `moisture`, `battery`, `pressure` (hPa, mbar, Pa, kPa, bar, psi, inHg, mmHg), `illuminance` (lx), `power` (W, kW, mW), `energy` (kWh, Wh, MWh), `voltage` (V, mV, kV), `current` (A, mA), `co2`, `pm25`, `pm10`, `voc` (ppb, ppm), `signal_strength` (dBm), `duration` (s, ms, min, h, d) | `state_topic`, `value_template`, converted to the canonical unit | — |
//! | `sensor` with a unit only | (name) | by unit: °C/°F, lx, W, kWh, V, A, hPa, dBm, ppb, time units; `lqi` is `link_quality` (diagnostic); else `other` with its unit | same | — |
//! | `sensor` without unit, state class or numeric class | (name) | `other`, text (enum with `options` for class `enum`) | same | — |
//! | `binary_sensor` | (name) | door/window/garage_door/opening: `contact` (inverted: Home Assistant's on is open); motion/occupancy/presence/moving: `occupancy`; moisture: `water_leak`; smoke, gas, carbon_monoxide, tamper, vibration; battery: `battery_low`; others `other`; bool | `payload_on`/`payload_off` (default `ON`/`OFF`) | — |
//! | `switch` | `state` | `on_off`, bool | `state_on`/`state_off` (default the payloads) | `command_topic`, `payload_on`/`payload_off`, `command_template` |
//! | `light`, default schema | `state`, `brightness`, `color_temp`, `color`, `effect` | `on_off`; `brightness` 0-100 % from 0..`brightness_scale` (255); `color_temperature` K from mired (`min_mireds` 153, `max_mireds` 500) or kelvin (`color_temp_kelvin`); `color` hue/saturation from `hs_*`, `rgb_*` (`r,g,b`) or `xy_*`; `effect` enum of `effect_list` | each `*_state_topic` with its `*_value_template` | each `*_command_topic` with its `*_command_template` (`red`, `green`, `blue`; `hue`, `sat`; `x`, `y`); `on_command_type` first/last/brightness orders the power command |
//! | `light`, `schema: json` | the same | features by `supported_color_modes` (or the legacy `brightness`, `color_temp`, `hs`, `rgb`, `xy`, `effect` flags); colors sent as hs, else rgb, else xy | the JSON state (`state`, `brightness`, `color_temp`, `color` with `h`/`s`, `hue`/`saturation`, `r`/`g`/`b` or `x`/`y`, `effect`; by `color_mode`) | one JSON command with every part set and `transition` |
//! | `cover` | `state`, `position`, `tilt` | `cover_state` enum open/close/stop (the commands it has; opening/open read as open, closing/closed as close, stopped as stop); `cover_position` % from `position_closed`..`position_open`; `tilt` % from `tilt_min`..`tilt_max` | `state_topic`, `position_topic`, `tilt_status_topic` with templates | `command_topic` with `payload_open`/`close`/`stop`; `set_position_topic` (`set_position_template` with `position`); `tilt_command_topic` |
//! | `climate` | `mode`, `setpoint`, `setpoint_low`, `setpoint_high`, `temperature`, `humidity`, `target_humidity`, `action`, `fan_mode`, `swing_mode`, `preset`, `power` | `hvac_mode` enum of `modes`; `setpoint` °C (from `temperature_unit` F) with `min_temp`/`max_temp`/`temp_step`; `temperature`; `humidity`; `hvac_action` (heating→heat, cooling→cool, drying→dry, preheating→preheat, defrosting→defrost, idle, fan, off); `fan_mode` enum of `fan_modes`; `swing_mode`/`preset` `other` enums; `power` write-only `on_off` | each `*_state_topic`/`*_topic` with its template | each `*_command_topic` with its template |
//! | `fan` | `state`, `speed`, `preset`, `oscillating`, `direction` | `on_off`; `fan_speed` % from `speed_range_min`..`max`; `fan_mode` enum of `preset_modes`; `other` bool; `other` enum forward/reverse | the state topics with their templates | the command topics with their templates |
//! | `lock` | `lock` | `lock` enum locked/unlocked/locking/unlocking/jammed (+ open/opening with `payload_open`) | `state_*` payloads | `payload_lock`/`payload_unlock`/`payload_open` |
//! | `button` | (name) | `other` enum `press`, write-only | — | `payload_press` (`PRESS`), `command_template` |
//! | `number` | (name) | by device class and unit as a sensor, else `other` with its unit; number `min`..`max` step `step` (1..100, 1) | `state_topic`, `value_template` | `command_topic`, `command_template` |
//! | `select` | (name) | `other` enum of `options` | same | same |
//! | `text` | (name) | `other` text up to `max` (255) | same | same |
//! | `event` | (name) | `action` enum of `event_types`, events only | `{"event_type": …}` (after `value_template`); the other keys are the event's data | — |
//! | `device_automation` (triggers) | `type` (`action`), or `subtype` (`button_1`) for the standard `button_*` types | `action` enum, events only: `subtype`, or the `button_*` type without `button_` (`short_press`) | a message on `topic` (after `value_template`) equal to `payload` (any when absent) | — |
//!
//! Other components (`alarm_control_panel`, `vacuum`, `valve`, `siren`, `update`, …), the light
//! `template` schema, and templates outside the supported subset ([`template`]) are listed per
//! device by the management action `unsupported` (and logged once); a value whose template is
//! unusable is left out, a command whose template is unusable makes the feature read-only, and
//! the device works with the rest.
#![forbid(unsafe_code)]

pub mod component;
pub mod config;
pub mod convert;
pub mod registry;
pub mod template;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use hearth_mqtt::{Link as MqttLink, LinkEvent};
use hearth_sdk::{
    ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState,
    AdapterStatus, BoxFuture, Discovers, MqttSettings,
};
use rumqttc::QoS;
use serde::{Deserialize, Serialize};

use crate::registry::Registry;

/// The adapter id, also the prefix of its device ids.
pub const ADAPTER_ID: &str = "mqtt_discovery";
/// Management actions (`POST /api/v1/adapters/mqtt_discovery/actions/<action>`).
pub const ACTIONS: &[&str] = &["unsupported"];
/// Commands waiting for room in the MQTT client's queue, at most.
const MAX_OUTBOX: usize = 256;
/// Topics remembered as already logged, at most (then they may be logged again).
const MAX_WARNED: usize = 4096;

/// `[adapters.mqtt_discovery]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run the adapter (default `false`).
    pub enabled: bool,
    /// The discovery prefix (default `homeassistant`).
    pub prefix: String,
    /// Origins (`origin.name`, compared without case) whose configs are left out (default none),
    /// e.g. `["Zigbee2MQTT"]` when the zigbee2mqtt adapter has those devices.
    pub ignore_origins: Vec<String>,
    /// A broker other than the hub's (host, port, username, password, tls).
    pub mqtt: Option<MqttSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config { enabled: false, prefix: "homeassistant".into(), ignore_origins: Vec::new(), mqtt: None }
    }
}

impl Config {
    /// Reads the configuration; errors name the section and the key.
    pub fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        let c: Config = if json.is_null() {
            Config::default()
        } else {
            serde_json::from_value(json.clone()).map_err(|e| format!("[adapters.mqtt_discovery]: {e}"))?
        };
        let p = c.prefix.trim_end_matches('/');
        if p.is_empty() {
            return Err(
                "[adapters.mqtt_discovery] prefix must not be empty (Home Assistant's is `homeassistant`)".into()
            );
        }
        if p.contains(['+', '#', '\0']) {
            return Err(format!(
                "[adapters.mqtt_discovery] prefix `{}` must be a plain topic, without the wildcards + and #",
                c.prefix
            ));
        }
        if c.ignore_origins.iter().any(|o| o.trim().is_empty()) {
            return Err("[adapters.mqtt_discovery] ignore_origins must not hold an empty name".into());
        }
        Ok(c)
    }
}

/// The Home Assistant MQTT discovery adapter.
#[derive(Debug, Default)]
pub struct MqttDiscoveryAdapter;

impl MqttDiscoveryAdapter {
    /// A new adapter.
    pub fn new() -> MqttDiscoveryAdapter {
        MqttDiscoveryAdapter
    }
}

impl Adapter for MqttDiscoveryAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Home Assistant MQTT discovery",
            discovers: Discovers {
                mqtt: vec!["homeassistant/+/+/config".into(), "homeassistant/+/+/+/config".into()],
                ..Discovers::default()
            },
            actions: ACTIONS,
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

/// Whether `f` is a topic filter a broker takes: levels of text, `+` alone in a level, `#`
/// alone and last.
fn valid_filter(f: &str) -> bool {
    if f.is_empty() || f.contains('\0') || f.len() > 65_535 {
        return false;
    }
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| (*l == "#" && i == levels.len() - 1) || *l == "+" || !l.contains(['+', '#']))
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The connection's subscriptions: what the registry reads, as far as the client takes them.
struct Subscriptions {
    subscribed: BTreeSet<String>,
    refused: HashSet<String>,
}

impl Subscriptions {
    /// Brings the subscriptions in line with what the registry reads, as far as the client's
    /// queue takes them; `true` when something is left for later.
    fn flush(&mut self, link: &MqttLink, registry: &Registry) -> bool {
        let mut wanted = registry.topics();
        wanted.extend(registry.discovery_filters());
        for t in wanted.difference(&self.subscribed).cloned().collect::<Vec<_>>() {
            if self.refused.contains(&t) {
                continue;
            }
            if !valid_filter(&t) {
                self.refused.insert(t.clone());
                tracing::warn!(topic = %t, "A discovery config names a topic that is no valid MQTT topic; it is not followed.");
                continue;
            }
            if !link.subscribe(t.clone(), QoS::AtLeastOnce) {
                return true;
            }
            self.subscribed.insert(t);
        }
        for t in self.subscribed.difference(&wanted).cloned().collect::<Vec<_>>() {
            if !link.unsubscribe(t.clone()) {
                return true;
            }
            self.subscribed.remove(&t);
        }
        false
    }
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config).map_err(AdapterError)?;
    let events = ctx.events.clone();
    let Some(mqtt) = hearth_mqtt::broker_or_wait(
        &mut ctx,
        config.mqtt.clone(),
        "no MQTT broker: the built-in broker is off and no external broker is configured",
    )
    .await?
    else {
        return Ok(());
    };
    let opts =
        hearth_mqtt::options(&format!("hearth-mqtt-discovery-{}", std::process::id()), &mqtt).map_err(AdapterError)?;
    // The link connects and retries by itself (`hearth_mqtt::Link`): commands and actions are
    // served all the while, and never disturb a connection being made.
    let mut link = MqttLink::start("mqtt_discovery", opts, 256).with_waiting_limit(MAX_OUTBOX);
    let mut registry = Registry::new(&config.prefix, &config.ignore_origins);
    let mut subscriptions = Subscriptions { subscribed: BTreeSet::new(), refused: HashSet::new() };
    let mut warned: HashSet<String> = HashSet::new();
    let mut connected = false;
    let mut pending = false;
    tracing::info!(broker = %format!("{}:{}", mqtt.host, mqtt.port), prefix = %registry.prefix(),
        "Connecting to the broker for Home Assistant MQTT discovery.");

    loop {
        tokio::select! {
            _ = ctx.shutdown.wait() => break,
            event = link.next() => match event {
                None => break,
                Some(LinkEvent::Connected) => {
                    connected = true;
                    subscriptions.subscribed.clear();
                    events.status(AdapterStatus::running()).await?;
                    for ev in registry.broker_back() {
                        events.send(ev).await?;
                    }
                    tracing::info!("Connected; following Home Assistant MQTT discovery.");
                    pending = true;
                }
                Some(LinkEvent::Message { topic, payload }) => {
                    let out = if registry.is_discovery(&topic) {
                        pending = true;
                        registry.config(&topic, &payload)
                    } else {
                        registry.message(&topic, &payload)
                    };
                    for ev in out.events {
                        events.send(ev).await?;
                    }
                    if let Some(reason) = out.rejected {
                        if warned.len() > MAX_WARNED {
                            warned.clear();
                        }
                        if warned.insert(topic.clone()) {
                            tracing::warn!(topic = %topic, "Ignored an MQTT message: {reason}.");
                        }
                        events.send(AdapterEvent::InputRejected { source: topic, reason }).await?;
                    }
                }
                Some(LinkEvent::Lost { reason, retry_in }) => {
                    if std::mem::take(&mut connected) || warned.insert("\0broker".into()) {
                        tracing::warn!("Lost the broker of Home Assistant MQTT discovery: {reason}; retrying in {:.0} s.",
                            retry_in.as_secs_f64());
                    }
                    for ev in registry.broker_lost(&reason) {
                        events.send(ev).await?;
                    }
                    events
                        .status(AdapterStatus::with(AdapterState::Degraded, reason).with_code("broker_unreachable"))
                        .await?;
                }
            },
            Some(cmd) = ctx.commands.recv() => {
                let (publishes, errors) = registry.command(&cmd);
                for e in errors {
                    tracing::warn!(device = %cmd.device, "A command could not be sent: {e}.");
                }
                if !connected {
                    if !publishes.is_empty() {
                        tracing::warn!(device = %cmd.device, "A command was dropped: not connected to the MQTT broker.");
                    }
                } else {
                    for p in publishes {
                        tracing::debug!(topic = %p.topic, payload = %p.payload, "Sending a command.");
                        if let Err(e) = link.publish(p.topic, qos(p.qos), p.retain, p.payload) {
                            tracing::warn!(device = %cmd.device, "A command was dropped: {e}.");
                        }
                    }
                }
            }
            Some(req) = ctx.actions.recv() => {
                let ActionRequest { action, params, reply, .. } = req;
                let answer = match action.as_str() {
                    "unsupported" => {
                        let device = params.get("device").and_then(serde_json::Value::as_str);
                        if params.get("device").is_some_and(|d| !d.is_string() && !d.is_null()) {
                            Err(ActionError::BadParams("`device` must be a device id".into()))
                        } else {
                            registry.unsupported(device).map_err(ActionError::NotFound)
                        }
                    }
                    other => Err(ActionError::NotFound(format!("no action `{other}`"))),
                };
                let _ = reply.send(answer);
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if pending && connected => {}
        }
        if connected && pending {
            pending = subscriptions.flush(&link, &registry);
        }
    }
    // Say goodbye politely, within the second shutdown allows.
    link.close(Duration::from_millis(300)).await;
    let _ = events.status(AdapterStatus::bare(AdapterState::Stopped)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_section_gives_the_defaults_and_unknown_keys_are_refused() {
        assert_eq!(Config::from_json(&json!({})), Ok(Config::default()));
        assert_eq!(Config::from_json(&serde_json::Value::Null), Ok(Config::default()));
        let c = Config::default();
        assert!(!c.enabled);
        assert_eq!(c.prefix, "homeassistant");
        assert!(c.ignore_origins.is_empty());
        assert_eq!(c.mqtt, None);
        let e = Config::from_json(&json!({"prefx": "ha"})).unwrap_err();
        assert!(e.starts_with("[adapters.mqtt_discovery]") && e.contains("unknown field `prefx`"), "{e}");
        let e = Config::from_json(&json!({"prefix": ""})).unwrap_err();
        assert!(e.contains("prefix must not be empty"), "{e}");
        let e = Config::from_json(&json!({"prefix": "ha/#"})).unwrap_err();
        assert!(e.contains("wildcards"), "{e}");
        let e = Config::from_json(&json!({"ignore_origins": [""]})).unwrap_err();
        assert!(e.contains("ignore_origins"), "{e}");
        let c = Config::from_json(&json!({"enabled": true, "prefix": "ha", "ignore_origins": ["Zigbee2MQTT"],
            "mqtt": {"host": "broker", "port": 8883, "username": "u", "password": "secret"}}))
        .unwrap();
        assert_eq!(c.prefix, "ha");
        assert_eq!(c.mqtt.as_ref().map(|m| m.port), Some(8883));
    }

    #[test]
    fn the_broker_password_stays_out_of_debug() {
        let c = Config::from_json(&json!({"mqtt": {"host": "broker", "port": 1883, "username": "u",
            "password": "a very secret password"}}))
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("a very secret password"), "{dbg}");
        assert!(dbg.contains("<redacted>"), "{dbg}");
    }

    #[test]
    fn filters_are_checked_before_subscribing() {
        for ok in ["a/b", "a/+/c", "a/#", "#", "+", "tele/tasmota_1A2B3C/LWT"] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in ["", "a/b#", "a/#/c", "a+/b", "a\0b"] {
            assert!(!valid_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_manifest_names_what_it_watches() {
        let m = MqttDiscoveryAdapter::new().manifest();
        assert_eq!(m.id, "mqtt_discovery");
        assert_eq!(m.actions, ["unsupported"]);
        assert!(m.discovers.mqtt.contains(&"homeassistant/+/+/config".to_owned()));
    }
}
