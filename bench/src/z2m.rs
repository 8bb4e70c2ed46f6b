//! A zigbee2mqtt bridge, simulated on the hub's built-in broker: the retained `bridge/state`
//! and `bridge/devices` (a coordinator and N devices with `definition.exposes` shaped as
//! zigbee2mqtt 2.x writes them), then device state as JSON on `zigbee2mqtt/<friendly_name>`.
//! The hub's zigbee2mqtt adapter (on by default, base topic `zigbee2mqtt`) adds the devices by
//! itself as `zigbee2mqtt:<ieee_address>`; the bridge hears the commands it sends on
//! `zigbee2mqtt/<friendly_name>/set`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rumqttc::{Client, QoS};
use serde_json::{Value, json};

use crate::hub::Hub;

/// zigbee2mqtt's base topic (the adapter's default).
pub const BASE: &str = "zigbee2mqtt";
/// The largest payload the hub's built-in broker takes (its `max_payload_size`).
pub const BROKER_MAX_PAYLOAD: usize = 4 * 1024 * 1024;

/// What a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An Aqara RTCGQ11LM motion sensor: `occupancy` (true/false), battery, link quality.
    Motion,
    /// A Philips Hue white bulb: a `light` with `state` (ON/OFF, settable) and brightness.
    Light,
    /// An Aqara WSDCGQ11LM-like sensor reduced to `temperature` (°C) and its entry to the fields
    /// the hub reads, so `bridge/devices` of 10,000 of them stays within the broker's payload
    /// limit (4 MiB).
    Temperature,
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub ieee: String,
    pub kind: Kind,
}

impl Device {
    /// Its Hearth device id.
    pub fn id(&self) -> String {
        format!("{BASE}:{}", self.ieee)
    }

    /// Its state topic.
    pub fn topic(&self) -> String {
        format!("{BASE}/{}", self.name)
    }
}

/// `n` devices of one kind, named `<prefix>_<i>` with distinct IEEE addresses per kind.
pub fn devices(kind: Kind, n: usize) -> Vec<Device> {
    let (prefix, base): (&str, u64) = match kind {
        Kind::Motion => ("motion", 0x0015_8d00_0100_0000),
        Kind::Light => ("light", 0x0017_8801_0200_0000),
        Kind::Temperature => ("temperature", 0x0015_8d00_0300_0000),
    };
    (0..n)
        .map(|i| Device { name: format!("{prefix}_{i:05}"), ieee: format!("0x{:016x}", base + i as u64), kind })
        .collect()
}

const COORDINATOR_IEEE: &str = "0x00124b0022a1b2c3";

fn coordinator_entry() -> Value {
    json!({"definition": null, "disabled": false, "endpoints": {}, "friendly_name": "Coordinator",
        "ieee_address": COORDINATOR_IEEE, "interview_state": "SUCCESSFUL", "network_address": 0,
        "supported": true, "type": "Coordinator"})
}

fn linkquality() -> Value {
    json!({"access": 1, "category": "diagnostic", "description": "Link quality (signal strength)",
        "label": "Linkquality", "name": "linkquality", "property": "linkquality", "type": "numeric",
        "unit": "lqi", "value_max": 255, "value_min": 0})
}

fn battery() -> Value {
    json!({"access": 1, "category": "diagnostic", "description": "Remaining battery in %", "label": "Battery",
        "name": "battery", "property": "battery", "type": "numeric", "unit": "%", "value_max": 100, "value_min": 0})
}

/// A device's `bridge/devices` entry.
pub fn entry(d: &Device, network_address: usize) -> Value {
    let (exposes, model, vendor, description, power, ty) = match d.kind {
        Kind::Motion => (
            json!([
                {"access": 1, "description": "Indicates whether the device detected occupancy", "label": "Occupancy",
                 "name": "occupancy", "property": "occupancy", "type": "binary", "value_off": false, "value_on": true},
                battery(),
                linkquality(),
            ]),
            "RTCGQ11LM",
            "Aqara",
            "Motion sensor",
            "Battery",
            "EndDevice",
        ),
        Kind::Light => (
            json!([
                {"features": [
                    {"access": 7, "description": "On/off state of this light", "label": "State", "name": "state",
                     "property": "state", "type": "binary", "value_off": "OFF", "value_on": "ON", "value_toggle": "TOGGLE"},
                    {"access": 7, "description": "Brightness of this light", "label": "Brightness", "name": "brightness",
                     "property": "brightness", "type": "numeric", "value_max": 254, "value_min": 0},
                 ], "type": "light"},
                linkquality(),
            ]),
            "9290024896",
            "Philips",
            "Hue white A60 bulb E27",
            "Mains (single phase)",
            "Router",
        ),
        Kind::Temperature => (
            json!([{"access": 1, "label": "Temperature", "name": "temperature", "property": "temperature",
                "type": "numeric", "unit": "°C"}]),
            "WSDCGQ11LM",
            "Aqara",
            "Temperature sensor",
            "Battery",
            "EndDevice",
        ),
    };
    let mut e = json!({
        "definition": {"description": description, "exposes": exposes, "model": model, "options": [],
            "source": "native", "supports_ota": false, "vendor": vendor},
        "disabled": false,
        "friendly_name": d.name,
        "ieee_address": d.ieee,
        "interview_state": "SUCCESSFUL",
        "network_address": network_address % 0xfff8 + 1,
        "power_source": power,
        "supported": true,
        "type": ty,
    });
    if d.kind == Kind::Temperature {
        // Fields whose absence zigbee2mqtt's readers take as their defaults, left out so that
        // 10,000 entries fit in one message of the built-in broker.
        for key in ["options", "source", "supports_ota"] {
            e["definition"].as_object_mut().map(|m| m.remove(key));
        }
        e.as_object_mut().map(|m| m.remove("disabled"));
    }
    e
}

/// The `bridge/devices` payload: the coordinator, then the devices.
pub fn bridge_devices(devices: &[Device]) -> Vec<u8> {
    let mut list = vec![coordinator_entry()];
    list.extend(devices.iter().enumerate().map(|(i, d)| entry(d, i)));
    Value::Array(list).to_string().into_bytes()
}

/// MQTT options for the simulator's clients: large packets (`bridge/devices` is megabytes).
pub fn options(id: &str, broker: SocketAddr) -> rumqttc::MqttOptions {
    let mut opts = rumqttc::MqttOptions::new(id, broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_max_packet_size(BROKER_MAX_PAYLOAD + 1024, BROKER_MAX_PAYLOAD + 1024);
    opts
}

/// The simulated bridge: one MQTT client that owns the bridge topics and hears `/set`.
pub struct Bridge {
    client: Client,
    stop: Arc<AtomicBool>,
}

impl Bridge {
    /// Connects, publishes the retained bridge state and device list; `on_set` sees every
    /// `zigbee2mqtt/<name>/set` (the name and payload) with the time it arrived. A light then
    /// reports its new state, as zigbee2mqtt does once the bulb confirms.
    pub fn start(
        broker: SocketAddr,
        devices: &[Device],
        on_set: impl FnMut(&str, &[u8], Instant) + Send + 'static,
    ) -> Result<Bridge> {
        let payload = bridge_devices(devices);
        if payload.len() > BROKER_MAX_PAYLOAD {
            bail!(
                "bridge/devices for {} devices is {} bytes, more than the {} the hub's built-in broker takes: \
                 use fewer devices",
                devices.len(),
                payload.len(),
                BROKER_MAX_PAYLOAD
            );
        }
        let lights: HashSet<String> =
            devices.iter().filter(|d| d.kind == Kind::Light).map(|d| d.name.clone()).collect();
        let (client, connection) = crate::load::connect_with(options("hearth-bench-zigbee2mqtt", broker), 10_000);
        let stop = Arc::new(AtomicBool::new(false));
        let mut on_set = on_set;
        let reporter = client.clone();
        crate::load::drive(connection, stop.clone(), move |topic, payload| {
            let at = Instant::now();
            let Some(name) =
                topic.strip_prefix(BASE).and_then(|t| t.strip_prefix('/')).and_then(|t| t.strip_suffix("/set"))
            else {
                return;
            };
            on_set(name, payload, at);
            if lights.contains(name) {
                let set: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                if let Some(state) = set["state"].as_str() {
                    let report = json!({"brightness": 254, "linkquality": 140, "state": state});
                    // try_publish: this thread drives the connection and must not wait on its own queue.
                    let _ = reporter.try_publish(format!("{BASE}/{name}"), QoS::AtMostOnce, false, report.to_string());
                }
            }
        });
        client.subscribe(format!("{BASE}/+/set"), QoS::AtMostOnce).context("zigbee2mqtt simulator: subscribing")?;
        client
            .publish(format!("{BASE}/bridge/state"), QoS::AtLeastOnce, true, json!({"state": "online"}).to_string())
            .context("zigbee2mqtt simulator: publishing bridge/state")?;
        client
            .publish(format!("{BASE}/bridge/devices"), QoS::AtLeastOnce, true, payload)
            .context("zigbee2mqtt simulator: publishing bridge/devices")?;
        Ok(Bridge { client, stop })
    }

    /// Publishes a device's state (QoS 0, not retained, as zigbee2mqtt does by default).
    pub fn state(&self, device: &Device, payload: &Value) -> Result<()> {
        self.client
            .publish(device.topic(), QoS::AtMostOnce, false, payload.to_string())
            .context("zigbee2mqtt simulator: publishing a state")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// Waits until `GET /api/v1/devices` lists every device of `ids` (at most `within`); returns how
/// long it took.
pub fn wait_listed(hub: &Hub, token: &str, ids: &[String], within: Duration) -> Result<Duration> {
    let started = Instant::now();
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut listed = 0;
    loop {
        let (status, answer) = hub.request("GET", "/api/v1/devices", Some(token), None)?;
        if status == 200 {
            listed = answer.as_array().map_or(0, |list| {
                list.iter().filter(|d| d["id"].as_str().is_some_and(|id| wanted.contains(id))).count()
            });
            if listed == wanted.len() {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > within {
            bail!(
                "the hub listed {listed} of the {} simulated zigbee2mqtt devices within {} s (GET /api/v1/devices \
                 answered {status}); is its zigbee2mqtt adapter on with base topic `{BASE}`? its log:\n{}",
                wanted.len(),
                within.as_secs(),
                hub.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until every device of `ids` has a value for `feature` in `GET /api/v1/devices`.
pub fn wait_reported(hub: &Hub, token: &str, ids: &[String], feature: &str, within: Duration) -> Result<()> {
    wait_state(hub, token, ids, feature, None, within)
}

/// Waits until every device of `ids` has `feature` at `value` (any value when `None`) in
/// `GET /api/v1/devices` (at most `within`).
pub fn wait_state(
    hub: &Hub,
    token: &str,
    ids: &[String],
    feature: &str,
    value: Option<&Value>,
    within: Duration,
) -> Result<()> {
    let started = Instant::now();
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let fits = |d: &Value| {
        let v = &d["state"][feature]["value"];
        !v.is_null() && value.is_none_or(|want| v == want)
    };
    let mut seen = 0;
    loop {
        let (status, answer) = hub.request("GET", "/api/v1/devices", Some(token), None)?;
        if status == 200 {
            seen = answer.as_array().map_or(0, |list| {
                list.iter().filter(|d| d["id"].as_str().is_some_and(|id| wanted.contains(id)) && fits(d)).count()
            });
            if seen == wanted.len() {
                return Ok(());
            }
        }
        if started.elapsed() > within {
            let what = value.map_or_else(|| "a value".to_owned(), |v| format!("the value {v}"));
            bail!(
                "{seen} of the {} simulated devices had {what} for `{feature}` in GET /api/v1/devices within {} s",
                wanted.len(),
                within.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_devices_lists_the_coordinator_then_devices_with_their_exposes() {
        let mut all = devices(Kind::Motion, 2);
        all.extend(devices(Kind::Light, 1));
        let list: Value = serde_json::from_slice(&bridge_devices(&all)).expect("json");
        let list = list.as_array().expect("a list");
        assert_eq!(list.len(), 4);
        assert_eq!(list[0]["type"], "Coordinator");
        let motion = &list[1];
        assert_eq!(motion["friendly_name"], "motion_00000");
        assert_eq!(all[0].id(), format!("zigbee2mqtt:{}", motion["ieee_address"].as_str().expect("ieee")));
        let occupancy = &motion["definition"]["exposes"][0];
        assert_eq!(
            (&occupancy["property"], &occupancy["type"], &occupancy["value_on"], &occupancy["value_off"]),
            (&json!("occupancy"), &json!("binary"), &json!(true), &json!(false))
        );
        assert_ne!(list[1]["ieee_address"], list[2]["ieee_address"]);
        let state = &list[3]["definition"]["exposes"][0]["features"][0];
        assert_eq!(list[3]["definition"]["exposes"][0]["type"], "light");
        assert_eq!(
            (&state["property"], &state["access"], &state["value_on"]),
            (&json!("state"), &json!(7), &json!("ON"))
        );
    }

    #[test]
    fn ten_thousand_temperature_sensors_fit_in_one_message_of_the_built_in_broker() {
        let sensors = devices(Kind::Temperature, 10_000);
        let payload = bridge_devices(&sensors);
        assert!(payload.len() <= BROKER_MAX_PAYLOAD, "{} bytes", payload.len());
        let list: Value = serde_json::from_slice(&payload).expect("json");
        let t = &list[10_000]["definition"]["exposes"][0];
        assert_eq!((&t["property"], &t["unit"]), (&json!("temperature"), &json!("°C")));
        let ids: HashSet<&str> =
            list.as_array().expect("list").iter().filter_map(|d| d["ieee_address"].as_str()).collect();
        assert_eq!(ids.len(), 10_001, "every address is distinct");
    }
}
