//! A zigbee2mqtt 2.x bridge, simulated over MQTT with its real wire format.
//!
//! [`Zigbee2mqttSim::start`] connects to a broker (the hub's built-in one in tests) and behaves
//! like zigbee2mqtt 2.1.3 with a z-Stack coordinator and a small but realistic network (see
//! [`ALL`]): it publishes the retained `bridge/state`, `bridge/info`, `bridge/devices` and
//! `bridge/groups`, each device's retained availability and its state; it applies `/set`
//! commands like the real devices would and publishes their new state; it answers
//! `bridge/request/...` on `bridge/response/...`. Tests can make things happen
//! ([`Zigbee2mqttSim::set_state`], [`Zigbee2mqttSim::press`], [`Zigbee2mqttSim::bridge_offline`],
//! [`Zigbee2mqttSim::join_device`], ...) and check what the hub asked for
//! ([`Zigbee2mqttSim::sets`], [`Zigbee2mqttSim::wait_for_set`], [`Zigbee2mqttSim::requests`]).
//!
//! The shapes of `definition.exposes` follow zigbee-herdsman-converters' `exposes.ts` presets
//! (labels, descriptions, categories, access bits, integer numbers where JavaScript writes
//! integers); object keys come out sorted, as zigbee2mqtt's stable stringify writes them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{LastWill, QoS};
use serde_json::{Map, Value, json};

use super::{Link, LinkEvent, Msg, client_id};

/// A device of the simulated network, by its zigbee2mqtt friendly name and IEEE address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// The friendly name (also its MQTT topic under the base topic).
    pub name: &'static str,
    /// The IEEE address, `0x` and 16 hex digits.
    pub ieee: &'static str,
    /// `definition.model` (the `model_id` for an unsupported device).
    pub model: &'static str,
    /// `definition.vendor` (the `manufacturer` for an unsupported device).
    pub vendor: &'static str,
}

impl Known {
    /// Its Hearth device id, `zigbee2mqtt:<ieee>`.
    pub fn id(&self) -> String {
        format!("zigbee2mqtt:{}", self.ieee)
    }
}

/// The coordinator (a Texas Instruments z-Stack 3.x stick).
pub const COORDINATOR: Known =
    Known { name: "Coordinator", ieee: "0x00124b0022a1b2c3", model: "zStack3x0", vendor: "Texas Instruments" };
/// Philips Hue white and color ambiance E26/E27 (LCA001): on/off, brightness, color temperature
/// 153–500 mired, color xy and hue/saturation, effects, power-on behavior.
pub const BULB: Known =
    Known { name: "Living room bulb", ieee: "0x001788010b2c3d4e", model: "9290022166", vendor: "Philips" };
/// Aqara WSDCGQ11LM temperature, humidity and pressure sensor (battery).
pub const CLIMATE: Known =
    Known { name: "Bedroom climate", ieee: "0x00158d0008a1b2c3", model: "WSDCGQ11LM", vendor: "Aqara" };
/// Aqara MCCGQ11LM door and window contact sensor (battery).
pub const DOOR: Known = Known { name: "Front door", ieee: "0x00158d0008d4e5f6", model: "MCCGQ11LM", vendor: "Aqara" };
/// Aqara WXKG11LM wireless mini switch; its name has a `/`, so its topics nest.
pub const BUTTON: Known = Known { name: "Hall/Button", ieee: "0x00158d00045a6b7c", model: "WXKG11LM", vendor: "Aqara" };
/// Tuya TS0002 two-gang switch module, endpoints `l1` and `l2`.
pub const SWITCH: Known = Known { name: "Kitchen switch", ieee: "0xa4c1380a1b2c3d4e", model: "TS0002", vendor: "Tuya" };
/// Tuya TS011F smart plug with power metering (power W, current A, voltage V, energy kWh).
pub const PLUG: Known =
    Known { name: "Washing machine plug", ieee: "0xa4c138f1e2d3c4b5", model: "TS011F_plug_1", vendor: "Tuya" };
/// SONOFF TRVZB radiator thermostat (climate: setpoint, local temperature, mode, running state).
pub const THERMOSTAT: Known =
    Known { name: "Living room radiator", ieee: "0x842e14fffe5a6b7c", model: "TRVZB", vendor: "SONOFF" };
/// IKEA FYRTUR roller blind (cover: OPEN/CLOSE/STOP and position).
pub const BLIND: Known = Known { name: "Bedroom blind", ieee: "0x680ae2fffe1a2b3c", model: "E1757", vendor: "IKEA" };
/// A Tuya TS0601 zigbee2mqtt does not support: `supported: false`, `definition: null`; its
/// friendly name is its address, as zigbee2mqtt names new devices.
pub const UNSUPPORTED: Known =
    Known { name: "0xa4c138d2e3f4a5b6", ieee: "0xa4c138d2e3f4a5b6", model: "TS0601", vendor: "_TZE200_3towulqd" };
/// Every device of the network but the coordinator, in `bridge/devices` order.
pub const ALL: [Known; 9] = [BULB, CLIMATE, DOOR, BUTTON, SWITCH, PLUG, THERMOSTAT, BLIND, UNSUPPORTED];
/// The one group at start (members: the bulb, endpoint 11, and the switch, endpoint 1).
pub const GROUP_NAME: &str = "Living room lights";
/// Its zigbee2mqtt group id.
pub const GROUP_ID: u64 = 1;
/// The zigbee2mqtt version the simulator claims.
pub const VERSION: &str = "2.1.3";

/// How the simulator connects and behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// zigbee2mqtt's `mqtt.base_topic`; default `zigbee2mqtt`.
    pub base_topic: String,
    /// MQTT username and password, when the broker needs them.
    pub credentials: Option<(String, String)>,
    /// Publish device state retained (zigbee2mqtt's per-device `retain: true`); default false,
    /// as zigbee2mqtt does: a client that subscribes late sees a device's state only when it
    /// next changes.
    pub retain_state: bool,
    /// Add `last_seen` (ISO 8601) to every state message (`advanced.last_seen: ISO_8601`).
    pub last_seen: bool,
    /// Publish the initial state of every device when connecting; default true.
    pub initial_state: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            base_topic: "zigbee2mqtt".into(),
            credentials: None,
            retain_state: false,
            last_seen: false,
            initial_state: true,
        }
    }
}

/// One device: its `bridge/devices` entry, cached state, availability.
#[derive(Debug, Clone)]
struct Dev {
    entry: Value,
    state: Map<String, Value>,
    online: bool,
}

impl Dev {
    fn name(&self) -> String {
        self.entry["friendly_name"].as_str().unwrap_or_default().to_owned()
    }

    fn ieee(&self) -> String {
        self.entry["ieee_address"].as_str().unwrap_or_default().to_owned()
    }

    fn is_coordinator(&self) -> bool {
        self.entry["type"] == "Coordinator"
    }

    fn exposes(&self) -> &[Value] {
        self.entry["definition"]["exposes"].as_array().map_or(&[], Vec::as_slice)
    }

    fn first_endpoint(&self) -> Option<u64> {
        self.entry["endpoints"].as_object()?.keys().filter_map(|k| k.parse().ok()).min()
    }
}

/// A message to publish, relative to the base topic.
struct Out {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

fn out(topic: impl Into<String>, payload: impl Into<Vec<u8>>, retain: bool) -> Out {
    Out { topic: topic.into(), payload: payload.into(), retain }
}

#[derive(Debug, Default)]
struct SimState {
    devices: Vec<Dev>,
    groups: Vec<Value>,
    bridge_online: bool,
    permit_join_end: Option<i64>,
    sets: Vec<(String, Value)>,
    requests: Vec<(String, Value)>,
    fail_next: HashMap<String, VecDeque<String>>,
    swallow_next: HashMap<String, usize>,
    next_group_id: u64,
}

impl SimState {
    fn device_index(&self, key: &str) -> Option<usize> {
        self.devices
            .iter()
            .position(|d| d.name() == key)
            .or_else(|| self.devices.iter().position(|d| d.ieee().eq_ignore_ascii_case(key)))
    }

    fn group_index(&self, key: &Value) -> Option<usize> {
        let text = match key {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let id = text.strip_prefix("zigbee2mqtt:group_").unwrap_or(&text).to_owned();
        self.groups
            .iter()
            .position(|g| g["friendly_name"] == text.as_str())
            .or_else(|| self.groups.iter().position(|g| g["id"].as_u64().is_some_and(|n| id.parse::<u64>() == Ok(n))))
    }

    fn name_in_use(&self, name: &str) -> bool {
        self.devices.iter().any(|d| d.name() == name) || self.groups.iter().any(|g| g["friendly_name"] == name)
    }
}

struct Inner {
    base: String,
    opts: SimOptions,
    broker: SocketAddr,
    link: Link,
    state: Mutex<SimState>,
    changed: Condvar,
    stopped: AtomicBool,
    /// Held from a change of state until its messages are queued, so that messages leave in
    /// the order the state changed (a test's `set_state` never overtakes a `/set` reply).
    sequence: Mutex<()>,
}

impl Inner {
    fn sequence(&self) -> MutexGuard<'_, ()> {
        self.sequence.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, msgs: Vec<Out>) {
        for m in msgs {
            let topic = format!("{}/{}", self.base, m.topic);
            // Blocks only while the link's queue is full; the link thread drains it.
            let _ = self.link.client.publish(topic, QoS::AtLeastOnce, m.retain, m.payload);
        }
    }
}

/// A simulated zigbee2mqtt bridge on an MQTT broker. Stopped (publishing `bridge/state`
/// offline, as zigbee2mqtt does on shutdown) when dropped.
pub struct Zigbee2mqttSim {
    inner: Arc<Inner>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Zigbee2mqttSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zigbee2mqttSim").field("base", &self.inner.base).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    hearth_sdk::Timestamp::now().as_millis()
}

impl Zigbee2mqttSim {
    /// Connects to `broker` with the default options (base topic `zigbee2mqtt`, no
    /// credentials) and returns once subscribed and the retained topics are queued.
    pub fn start(broker: SocketAddr) -> Zigbee2mqttSim {
        Zigbee2mqttSim::start_with(broker, SimOptions::default())
    }

    /// Connects with `opts`.
    pub fn start_with(broker: SocketAddr, opts: SimOptions) -> Zigbee2mqttSim {
        let base = opts.base_topic.trim_end_matches('/').to_owned();
        let (tx, rx) = mpsc::channel();
        // zigbee2mqtt's last will: the bridge is offline when its connection drops.
        let will = LastWill::new(format!("{base}/bridge/state"), r#"{"state":"offline"}"#, QoS::AtLeastOnce, true);
        let link = Link::start(broker, client_id("zigbee2mqtt"), opts.credentials.clone(), Some(will), tx);
        let state = SimState {
            devices: network(),
            groups: vec![json!({
                "friendly_name": GROUP_NAME,
                "id": GROUP_ID,
                "members": [{"endpoint": 11, "ieee_address": BULB.ieee}, {"endpoint": 1, "ieee_address": SWITCH.ieee}],
                "scenes": [],
            })],
            bridge_online: true,
            next_group_id: GROUP_ID + 1,
            ..SimState::default()
        };
        let inner = Arc::new(Inner {
            base,
            opts,
            broker,
            link,
            state: Mutex::new(state),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
            sequence: Mutex::new(()),
        });
        let worker_inner = inner.clone();
        let worker = std::thread::Builder::new()
            .name("zigbee2mqtt-sim".into())
            .spawn(move || worker_loop(&worker_inner, &rx))
            .expect("spawn the zigbee2mqtt simulator");
        let sim = Zigbee2mqttSim { inner, worker: Mutex::new(Some(worker)) };
        sim.inner.link.wait_subacks(1, Duration::from_secs(15));
        sim
    }

    /// The base topic.
    pub fn base_topic(&self) -> &str {
        &self.inner.base
    }

    /// `bridge/devices` as it is now (the coordinator first).
    pub fn devices(&self) -> Value {
        Value::Array(self.inner.lock().devices.iter().map(|d| d.entry.clone()).collect())
    }

    /// `bridge/groups` as it is now.
    pub fn groups(&self) -> Value {
        Value::Array(self.inner.lock().groups.clone())
    }

    /// The `bridge/devices` entry of a device, by friendly name or IEEE address.
    pub fn device(&self, name_or_ieee: &str) -> Option<Value> {
        let st = self.inner.lock();
        st.device_index(name_or_ieee).map(|i| st.devices[i].entry.clone())
    }

    /// The cached state of a device (what its next state message carries).
    pub fn state(&self, name_or_ieee: &str) -> Value {
        let st = self.inner.lock();
        let i = st.device_index(name_or_ieee).unwrap_or_else(|| panic!("no simulated device `{name_or_ieee}`"));
        Value::Object(st.devices[i].state.clone())
    }

    /// The device reports `values` (zigbee2mqtt's units: brightness 0–254, color_temp in
    /// mired, `state` "ON"/"OFF"); they join its cached state and the whole state is published on
    /// `<base>/<friendly name>`, as zigbee2mqtt does with `cache_state`.
    pub fn set_state(&self, name_or_ieee: &str, values: Value) {
        let _sequence = self.inner.sequence();
        let Value::Object(values) = values else { panic!("set_state takes a JSON object, not {values}") };
        let msgs = {
            let mut st = self.inner.lock();
            let i = st.device_index(name_or_ieee).unwrap_or_else(|| panic!("no simulated device `{name_or_ieee}`"));
            let dev = &mut st.devices[i];
            dev.state.extend(values);
            vec![state_out(&self.inner, dev, None)]
        };
        self.inner.send(msgs);
    }

    /// A button press: `{"action": "<action>", ...state}` and right after it the legacy empty
    /// `{"action": "", ...state}`, as zigbee2mqtt publishes them. The action never joins the
    /// cached state.
    pub fn press(&self, name_or_ieee: &str, action: &str) {
        let _sequence = self.inner.sequence();
        let msgs = {
            let st = self.inner.lock();
            let i = st.device_index(name_or_ieee).unwrap_or_else(|| panic!("no simulated device `{name_or_ieee}`"));
            let dev = &st.devices[i];
            vec![state_out(&self.inner, dev, Some(action)), state_out(&self.inner, dev, Some(""))]
        };
        self.inner.send(msgs);
    }

    /// Publishes any payload on `<base>/<topic>`, for malformed-input tests.
    pub fn publish_raw(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        let _sequence = self.inner.sequence();
        self.inner.send(vec![out(topic, payload, retain)]);
    }

    /// Retained `bridge/state` `{"state":"offline"}` (zigbee2mqtt stopped or lost its adapter).
    pub fn bridge_offline(&self) {
        let _sequence = self.inner.sequence();
        self.inner.lock().bridge_online = false;
        self.inner.send(vec![out("bridge/state", r#"{"state":"offline"}"#, true)]);
    }

    /// Retained `bridge/state` `{"state":"online"}`.
    pub fn bridge_online(&self) {
        let _sequence = self.inner.sequence();
        self.inner.lock().bridge_online = true;
        self.inner.send(vec![out("bridge/state", r#"{"state":"online"}"#, true)]);
    }

    fn set_availability(&self, name_or_ieee: &str, online: bool) {
        let _sequence = self.inner.sequence();
        let msgs = {
            let mut st = self.inner.lock();
            let i = st.device_index(name_or_ieee).unwrap_or_else(|| panic!("no simulated device `{name_or_ieee}`"));
            st.devices[i].online = online;
            vec![availability_out(&st.devices[i])]
        };
        self.inner.send(msgs);
    }

    /// Retained `<base>/<name>/availability` `{"state":"offline"}`.
    pub fn device_offline(&self, name_or_ieee: &str) {
        self.set_availability(name_or_ieee, false);
    }

    /// Retained `<base>/<name>/availability` `{"state":"online"}`.
    pub fn device_online(&self, name_or_ieee: &str) {
        self.set_availability(name_or_ieee, true);
    }

    /// A new device joins, as zigbee2mqtt reports it: `bridge/event` `device_joined`,
    /// `bridge/devices` with the device still interviewing, `device_interview` `started`, then
    /// `bridge/devices` with the full entry, `device_interview` `successful` (with `supported`
    /// and `definition`), its availability, and its first state. `entry` is a `bridge/devices`
    /// entry such as [`motion_sensor_entry`].
    pub fn join_device(&self, entry: Value, initial_state: Value) {
        let _sequence = self.inner.sequence();
        let mut dev =
            Dev { entry: entry.clone(), state: initial_state.as_object().cloned().unwrap_or_default(), online: true };
        let name = dev.name();
        let ieee = dev.ieee();
        let ident = json!({"friendly_name": name, "ieee_address": ieee});
        let mut interviewing = entry.clone();
        interviewing["definition"] = Value::Null;
        interviewing["supported"] = json!(false);
        interviewing["interview_state"] = json!("IN_PROGRESS");
        let mut msgs = Vec::new();
        {
            let mut st = self.inner.lock();
            st.devices.push(Dev { entry: interviewing, state: Map::new(), online: true });
            msgs.push(out("bridge/event", json!({"data": ident, "type": "device_joined"}).to_string(), false));
            msgs.push(out("bridge/devices", devices_payload(&st), true));
            let started = json!({"friendly_name": name, "ieee_address": ieee, "status": "started"});
            msgs.push(out("bridge/event", json!({"data": started, "type": "device_interview"}).to_string(), false));
            dev.entry["interview_state"] = json!("SUCCESSFUL");
            let last = st.devices.len() - 1;
            st.devices[last] = dev.clone();
            msgs.push(out("bridge/devices", devices_payload(&st), true));
            msgs.push(out("bridge/info", self.info_payload(&st), true));
            let done = json!({
                "definition": dev.entry["definition"],
                "friendly_name": name,
                "ieee_address": ieee,
                "status": "successful",
                "supported": dev.entry["supported"],
            });
            msgs.push(out("bridge/event", json!({"data": done, "type": "device_interview"}).to_string(), false));
            msgs.push(availability_out(&dev));
            if !dev.state.is_empty() {
                msgs.push(state_out(&self.inner, &dev, None));
            }
        }
        self.inner.send(msgs);
    }

    /// The device leaves the network by itself: `bridge/event` `device_leave`, then
    /// `bridge/devices` without it.
    pub fn leave_device(&self, name_or_ieee: &str) {
        let _sequence = self.inner.sequence();
        let msgs = {
            let mut st = self.inner.lock();
            let i = st.device_index(name_or_ieee).unwrap_or_else(|| panic!("no simulated device `{name_or_ieee}`"));
            let dev = st.devices.remove(i);
            let data = json!({"friendly_name": dev.name(), "ieee_address": dev.ieee()});
            vec![
                out("bridge/event", json!({"data": data, "type": "device_leave"}).to_string(), false),
                out("bridge/devices", devices_payload(&st), true),
            ]
        };
        self.inner.send(msgs);
    }

    /// Every `/set` and `/get` received so far: the full topic and the payload as JSON (for
    /// `<name>/set/<property>` the plain value, as JSON if it parses, else as a string).
    pub fn sets(&self) -> Vec<(String, Value)> {
        self.inner.lock().sets.clone()
    }

    /// Forgets the recorded `/set` and `/get` messages.
    pub fn clear_sets(&self) {
        self.inner.lock().sets.clear();
    }

    /// The first recorded `/set` or `/get` (since the last [`clear_sets`](Self::clear_sets))
    /// for which `pred(topic, payload)` holds, waiting up to `timeout` for it; panics with
    /// everything received if none comes.
    pub fn wait_for_set(&self, pred: impl Fn(&str, &Value) -> bool, timeout: Duration) -> (String, Value) {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if let Some(found) = st.sets.iter().find(|(t, v)| pred(t, v)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "zigbee2mqtt sim: no matching /set or /get within {timeout:?}; got {:?}", st.sets);
            st = self.inner.changed.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Every bridge request received so far: the path under `bridge/request/` and the payload.
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.inner.lock().requests.clone()
    }

    /// The first bridge request on `path` (e.g. `permit_join`, `device/rename`), waiting up to
    /// `timeout`.
    pub fn wait_for_request(&self, path: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut st = self.inner.lock();
        loop {
            if let Some((_, v)) = st.requests.iter().find(|(p, _)| p == path) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "zigbee2mqtt sim: no `{path}` request within {timeout:?}; got {:?}", st.requests);
            st = self.inner.changed.wait_timeout(st, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// The next request on `path` (e.g. `device/remove`) is answered with
    /// `{"data": {}, "status": "error", "error": <error>}` instead of being carried out.
    pub fn fail_next(&self, path: &str, error: &str) {
        self.inner.lock().fail_next.entry(path.to_owned()).or_default().push_back(error.to_owned());
    }

    /// The next request on `path` gets no answer at all (a bridge that hangs).
    pub fn swallow_next(&self, path: &str) {
        *self.inner.lock().swallow_next.entry(path.to_owned()).or_default() += 1;
    }

    /// Shuts down like zigbee2mqtt: retained `bridge/state` offline, then DISCONNECT.
    /// Idempotent.
    pub fn stop(&self) {
        if self.inner.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let sequence = self.inner.sequence();
        self.inner.send(vec![out("bridge/state", r#"{"state":"offline"}"#, true)]);
        drop(sequence);
        self.inner.link.stop();
        if let Some(worker) = self.worker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = worker.join();
        }
    }

    fn info_payload(&self, st: &SimState) -> String {
        info_payload(&self.inner, st)
    }
}

impl Drop for Zigbee2mqttSim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn availability_out(dev: &Dev) -> Out {
    let state = if dev.online { "online" } else { "offline" };
    out(format!("{}/availability", dev.name()), json!({"state": state}).to_string(), true)
}

fn devices_payload(st: &SimState) -> String {
    Value::Array(st.devices.iter().map(|d| d.entry.clone()).collect()).to_string()
}

fn groups_payload(st: &SimState) -> String {
    Value::Array(st.groups.clone()).to_string()
}

fn info_payload(inner: &Inner, st: &SimState) -> String {
    let now = now_ms();
    let permit = st.permit_join_end.is_some_and(|end| end > now);
    let devices: Map<String, Value> = st
        .devices
        .iter()
        .filter(|d| !d.is_coordinator())
        .map(|d| (d.ieee(), json!({"friendly_name": d.name()})))
        .collect();
    let groups: Map<String, Value> =
        st.groups.iter().map(|g| (g["id"].to_string(), json!({"friendly_name": g["friendly_name"]}))).collect();
    let server = format!("mqtt://{}", inner.broker);
    let mut info = json!({
        "commit": "0a3b5f1e",
        "config": {
            "advanced": {
                "cache_state": true,
                "cache_state_persistent": true,
                "cache_state_send_on_startup": true,
                "channel": 15,
                "elapsed": false,
                "ext_pan_id": [221, 221, 221, 221, 221, 221, 221, 221],
                "last_seen": if inner.opts.last_seen { "ISO_8601" } else { "disable" },
                "log_level": "info",
                "output": "json",
                "pan_id": 6754,
            },
            "availability": {"active": {"timeout": 10}, "enabled": true, "passive": {"timeout": 1500}},
            "blocklist": [],
            "device_options": {},
            "devices": devices,
            "frontend": {"enabled": false},
            "groups": groups,
            "homeassistant": {"enabled": false},
            "mqtt": {
                "base_topic": inner.base,
                "force_disable_retain": false,
                "include_device_information": false,
                "server": server,
            },
            "ota": {"disable_automatic_update_check": false, "update_check_interval": 1440},
            "passlist": [],
            "serial": {"adapter": "zstack", "disable_led": false, "port": "/dev/ttyUSB0"},
            "version": 4,
        },
        "config_schema": {"properties": {}, "required": [], "type": "object"},
        "coordinator": {
            "ieee_address": COORDINATOR.ieee,
            "meta": {"maintrel": 1, "majorrel": 2, "minorrel": 7, "product": 1, "revision": 20230507, "transportrev": 2},
            "type": "zStack3x0",
        },
        "log_level": "info",
        "mqtt": {"server": server, "version": 4},
        "network": {"channel": 15, "extended_pan_id": "0xdddddddddddddddd", "pan_id": 6754},
        "os": {"cpus": "Cortex-A72 (x4)", "memory_mb": 3794, "node_version": "v22.12.0", "version": "Linux - 6.6.62 - arm64"},
        "permit_join": permit,
        "restart_required": false,
        "version": VERSION,
        "zigbee_herdsman": {"version": "3.2.5"},
        "zigbee_herdsman_converters": {"version": "21.30.0"},
    });
    if permit {
        // 2.x: the end as epoch milliseconds; absent (undefined) when joining is not permitted.
        info["permit_join_end"] = json!(st.permit_join_end);
    }
    info.to_string()
}

/// A device's state message: its cached state (plus an action, which is never cached).
fn state_out(inner: &Inner, dev: &Dev, action: Option<&str>) -> Out {
    let mut payload = dev.state.clone();
    if let Some(action) = action {
        payload.insert("action".into(), json!(action));
    }
    if inner.opts.last_seen {
        payload.insert("last_seen".into(), json!(hearth_sdk::Timestamp::now().to_string()));
    }
    out(dev.name(), Value::Object(payload).to_string(), inner.opts.retain_state)
}

/// Everything zigbee2mqtt publishes when it (re)connects to the broker.
fn startup(inner: &Inner, st: &SimState) -> Vec<Out> {
    let bridge = if st.bridge_online { r#"{"state":"online"}"# } else { r#"{"state":"offline"}"# };
    let mut msgs = vec![
        out("bridge/state", bridge, true),
        out("bridge/info", info_payload(inner, st), true),
        out("bridge/devices", devices_payload(st), true),
        out("bridge/groups", groups_payload(st), true),
    ];
    for dev in st.devices.iter().filter(|d| !d.is_coordinator()) {
        msgs.push(availability_out(dev));
    }
    if inner.opts.initial_state {
        for dev in st.devices.iter().filter(|d| !d.is_coordinator() && !d.state.is_empty()) {
            msgs.push(state_out(inner, dev, None));
        }
    }
    msgs
}

fn worker_loop(inner: &Inner, rx: &Receiver<LinkEvent>) {
    loop {
        if inner.stopped.load(Ordering::SeqCst) && matches!(rx.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            // Drain what arrived before the stop, then end.
            return;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(LinkEvent::Connected) => {
                let _sequence = inner.sequence();
                let topics = ["+/set", "+/+/set", "+/set/+", "+/get", "+/+/get", "bridge/request/#"];
                let filters = topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(format!("{}/{t}", inner.base), QoS::AtLeastOnce));
                let _ = inner.link.client.subscribe_many(filters);
                let msgs = startup(inner, &inner.lock());
                inner.send(msgs);
            }
            Ok(LinkEvent::Message(msg)) => on_message(inner, &msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Permit join ends on its own: zigbee2mqtt republishes bridge/info.
        let _sequence = inner.sequence();
        let expired = {
            let mut st = inner.lock();
            match st.permit_join_end {
                Some(end) if end <= now_ms() => {
                    st.permit_join_end = None;
                    Some(info_payload(inner, &st))
                }
                _ => None,
            }
        };
        if let Some(info) = expired {
            inner.send(vec![out("bridge/info", info, true)]);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Set,
    Get,
}

/// `<name>/set`, `<name>/get`, `<name>/set/<property>`, `<name>/get/<property>`.
fn command_topic(rest: &str) -> Option<(&str, Verb, Option<&str>)> {
    if let Some(name) = rest.strip_suffix("/set") {
        return Some((name, Verb::Set, None));
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return Some((name, Verb::Get, None));
    }
    if let Some((name, prop)) = rest.rsplit_once("/set/") {
        return Some((name, Verb::Set, Some(prop)));
    }
    if let Some((name, prop)) = rest.rsplit_once("/get/") {
        return Some((name, Verb::Get, Some(prop)));
    }
    None
}

fn on_message(inner: &Inner, msg: &Msg) {
    let _sequence = inner.sequence();
    let prefix = format!("{}/", inner.base);
    let Some(rest) = msg.topic.strip_prefix(&prefix) else { return };
    if let Some(path) = rest.strip_prefix("bridge/request/") {
        on_request(inner, path, msg);
        return;
    }
    if rest.starts_with("bridge/") {
        return;
    }
    let Some((name, verb, prop)) = command_topic(rest) else { return };
    let parsed = msg.json();
    let body: Map<String, Value> = match (prop, &parsed) {
        (Some(p), v) => Map::from_iter([(p.to_owned(), v.clone())]),
        (None, Value::Object(m)) => m.clone(),
        // zigbee2mqtt also takes a bare "ON"/"OFF"/"TOGGLE" on /set as the state.
        (None, Value::String(s)) if verb == Verb::Set => Map::from_iter([("state".to_owned(), json!(s))]),
        _ => Map::new(),
    };
    let msgs = {
        let mut st = inner.lock();
        st.sets.push((msg.topic.clone(), parsed));
        let mut msgs = Vec::new();
        if let Some(i) = st.device_index(name) {
            let dev = &mut st.devices[i];
            let publish = match verb {
                Verb::Set => apply_set(dev, &body),
                Verb::Get => true,
            };
            if publish && !dev.is_coordinator() {
                msgs.push(state_out(inner, dev, None));
            }
        } else if let Some(g) = st.group_index(&json!(name)) {
            // A group command reaches every member; each reports its new state.
            let members: Vec<String> = st.groups[g]["members"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["ieee_address"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            if verb == Verb::Set {
                for ieee in members {
                    if let Some(i) = st.device_index(&ieee) {
                        let member_body = retarget_for_member(&st.devices[i], &body);
                        if apply_set(&mut st.devices[i], &member_body) {
                            msgs.push(state_out(inner, &st.devices[i], None));
                        }
                    }
                }
                let group_state: Map<String, Value> = body
                    .iter()
                    .filter(|(k, _)| k.as_str() != "transition")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                msgs.push(out(name, Value::Object(group_state).to_string(), false));
            }
        }
        msgs
    };
    inner.changed.notify_all();
    inner.send(msgs);
}

/// A group's `state` reaches a multi-gang member on its first endpoint's property.
fn retarget_for_member(dev: &Dev, body: &Map<String, Value>) -> Map<String, Value> {
    body.iter()
        .map(|(k, v)| {
            if find_expose(dev.exposes(), k).is_none() && find_expose(dev.exposes(), &format!("{k}_l1")).is_some() {
                (format!("{k}_l1"), v.clone())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// The expose whose `property` is `property`, looking into the features of specific exposes
/// (light, switch, cover, climate, lock, fan) but not into composites (their features are
/// parts of one value).
fn find_expose<'a>(exposes: &'a [Value], property: &str) -> Option<&'a Value> {
    for e in exposes {
        if e["property"] == property {
            return Some(e);
        }
        if e.get("property").is_none()
            && let Some(found) = e["features"].as_array().and_then(|f| find_expose(f, property))
        {
            return Some(found);
        }
    }
    None
}

fn has_expose_type(exposes: &[Value], ty: &str) -> bool {
    exposes.iter().any(|e| e["type"] == ty)
}

/// Applies a `/set` body like the device would; true when state changed (or was confirmed)
/// and the device reports it.
fn apply_set(dev: &mut Dev, body: &Map<String, Value>) -> bool {
    let exposes = dev.exposes().to_vec();
    if exposes.is_empty() {
        return false;
    }
    let is_light = has_expose_type(&exposes, "light");
    let mut reported = false;
    for (key, value) in body {
        if key == "transition" {
            continue;
        }
        let Some(expose) = find_expose(&exposes, key) else { continue };
        let access = expose["access"].as_u64().unwrap_or(0);
        if access & 2 == 0 {
            continue;
        }
        let current = dev.state.get(key).cloned();
        let Some(new) = convert(expose, value, current.as_ref()) else { continue };
        let stateful = access & 1 != 0;
        match (expose["type"].as_str(), key.as_str()) {
            (Some("composite"), "color") => {
                dev.state.insert("color".into(), new.clone());
                let mode = if value.get("hue").is_some() || value.get("h").is_some() { "hs" } else { "xy" };
                dev.state.insert("color_mode".into(), json!(mode));
            }
            (_, "brightness") if is_light => {
                let on = new.as_f64().unwrap_or(0.0) > 0.0;
                if on {
                    dev.state.insert(key.clone(), new);
                }
                if !body.contains_key("state") {
                    dev.state.insert("state".into(), json!(if on { "ON" } else { "OFF" }));
                }
            }
            (_, "color_temp") if is_light => {
                dev.state.insert(key.clone(), new);
                dev.state.insert("color_mode".into(), json!("color_temp"));
            }
            (_, "state") if has_expose_type(&exposes, "cover") => match new.as_str() {
                Some("OPEN") => {
                    dev.state.insert("state".into(), json!("OPEN"));
                    dev.state.insert("position".into(), json!(100));
                }
                Some("CLOSE") => {
                    dev.state.insert("state".into(), json!("CLOSE"));
                    dev.state.insert("position".into(), json!(0));
                }
                _ => {}
            },
            (_, "position") if has_expose_type(&exposes, "cover") => {
                let open = new.as_f64().unwrap_or(0.0) > 0.0;
                dev.state.insert(key.clone(), new);
                dev.state.insert("state".into(), json!(if open { "OPEN" } else { "CLOSE" }));
            }
            _ if stateful => {
                dev.state.insert(key.clone(), new);
            }
            _ => {}
        }
        reported |= stateful;
    }
    if has_expose_type(&exposes, "climate") && dev.state.contains_key("running_state") {
        let heating = dev.state.get("system_mode").and_then(Value::as_str) != Some("off")
            && dev.state.get("occupied_heating_setpoint").and_then(Value::as_f64).unwrap_or(0.0)
                > dev.state.get("local_temperature").and_then(Value::as_f64).unwrap_or(f64::MAX);
        dev.state.insert("running_state".into(), json!(if heating { "heat" } else { "idle" }));
    }
    reported
}

/// A JavaScript-style number: integral values as integers.
fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        let i = x as i64;
        json!(i)
    } else {
        json!(x)
    }
}

fn round_to(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// A `/set` value to the value the device then reports, by the expose's type; `None` when the
/// device would refuse it.
fn convert(expose: &Value, value: &Value, current: Option<&Value>) -> Option<Value> {
    match expose["type"].as_str()? {
        "binary" => {
            let on = &expose["value_on"];
            let off = &expose["value_off"];
            let same = |a: &Value, b: &Value| match (a, b) {
                (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
                _ => a == b,
            };
            if same(value, on) {
                Some(on.clone())
            } else if same(value, off) {
                Some(off.clone())
            } else if let Some(toggle) = expose.get("value_toggle")
                && same(value, toggle)
            {
                Some(if current == Some(on) { off.clone() } else { on.clone() })
            } else {
                match value {
                    Value::Bool(true) => Some(on.clone()),
                    Value::Bool(false) => Some(off.clone()),
                    _ => None,
                }
            }
        }
        "numeric" => {
            let x = match value {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) => match s.parse::<f64>() {
                    Ok(x) => x,
                    Err(_) => {
                        expose["presets"].as_array()?.iter().find(|p| p["name"] == s.as_str())?["value"].as_f64()?
                    }
                },
                _ => return None,
            };
            let min = expose["value_min"].as_f64().unwrap_or(f64::MIN);
            let max = expose["value_max"].as_f64().unwrap_or(f64::MAX);
            Some(num(x.clamp(min, max)))
        }
        "enum" => {
            let s = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            expose["values"]
                .as_array()?
                .iter()
                .find(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(&s)))
                .cloned()
        }
        "text" => value.as_str().map(|s| json!(s)),
        "composite" if expose["property"] == "color" => color_value(value),
        "composite" | "list" => Some(value.clone()),
        _ => None,
    }
}

// --- Color, as zigbee2mqtt converts it (sRGB with gamma, wide-gamut D65 matrix) ---

fn gamma(v: f64) -> f64 {
    if v > 0.04045 { ((v + 0.055) / 1.055).powf(2.4) } else { v / 12.92 }
}

fn inverse_gamma(v: f64) -> f64 {
    if v <= 0.003_130_8 { 12.92 * v } else { 1.055 * v.powf(1.0 / 2.4) - 0.055 }
}

fn rgb_to_xy(r: f64, g: f64, b: f64) -> (f64, f64) {
    let (r, g, b) = (gamma(r), gamma(g), gamma(b));
    let x = r * 0.4124 + g * 0.3576 + b * 0.1805;
    let y = r * 0.2126 + g * 0.7152 + b * 0.0722;
    let z = r * 0.0193 + g * 0.1192 + b * 0.9505;
    let sum = x + y + z;
    if sum == 0.0 { (0.0, 0.0) } else { (x / sum, y / sum) }
}

fn xy_to_rgb(x: f64, y: f64) -> (f64, f64, f64) {
    let y = y.max(1e-6);
    let (cx, cy, cz) = (x / y, 1.0, (1.0 - x - y) / y);
    let r = cx * 3.2406 - cy * 1.5372 - cz * 0.4986;
    let g = -cx * 0.9689 + cy * 1.8758 + cz * 0.0415;
    let b = cx * 0.0557 - cy * 0.2040 + cz * 1.0570;
    let (r, g, b) = (inverse_gamma(r.max(0.0)), inverse_gamma(g.max(0.0)), inverse_gamma(b.max(0.0)));
    let m = r.max(g).max(b).max(1e-9);
    (r / m, g / m, b / m)
}

fn hsv_to_rgb(h: f64, s: f64) -> (f64, f64, f64) {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h {
        h if h < 1.0 => (c, x, 0.0),
        h if h < 2.0 => (x, c, 0.0),
        h if h < 3.0 => (0.0, c, x),
        h if h < 4.0 => (0.0, x, c),
        h if h < 5.0 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = 1.0 - c;
    (r + m, g + m, b + m)
}

fn rgb_to_hs(r: f64, g: f64, b: f64) -> (f64, f64) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    (h, s * 100.0)
}

/// A `color` of a `/set` (`{x, y}`, `{hue, saturation}`, `{h, s}`, `{hex}`, `{r, g, b}`,
/// `{rgb: "r,g,b"}` or `"#rrggbb"`) to the state zigbee2mqtt reports: `{hue, saturation, x, y}`.
fn color_value(value: &Value) -> Option<Value> {
    let f = |k: &str| value.get(k).and_then(Value::as_f64);
    let hex_rgb = |hex: &str| -> Option<(f64, f64, f64)> {
        let h = hex.trim_start_matches('#');
        if h.len() != 6 {
            return None;
        }
        let c = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).ok().map(|v| f64::from(v) / 255.0);
        Some((c(0)?, c(2)?, c(4)?))
    };
    let rgb = if let (Some(x), Some(y)) = (f("x"), f("y")) {
        let (hue, sat) = {
            let (r, g, b) = xy_to_rgb(x, y);
            rgb_to_hs(r, g, b)
        };
        return Some(json!({"hue": num(hue.round()), "saturation": num(sat.round()), "x": x, "y": y}));
    } else if let (Some(h), Some(s)) = (f("hue").or_else(|| f("h")), f("saturation").or_else(|| f("s"))) {
        let (r, g, b) = hsv_to_rgb(h, (s / 100.0).clamp(0.0, 1.0));
        let (x, y) = rgb_to_xy(r, g, b);
        return Some(
            json!({"hue": num(h.round()), "saturation": num(s.round()), "x": round_to(x, 4), "y": round_to(y, 4)}),
        );
    } else if let (Some(r), Some(g), Some(b)) = (f("r"), f("g"), f("b")) {
        (r / 255.0, g / 255.0, b / 255.0)
    } else if let Some(hex) = value.get("hex").and_then(Value::as_str).or_else(|| value.as_str()) {
        hex_rgb(hex)?
    } else if let Some(rgb) = value.get("rgb").and_then(Value::as_str) {
        let parts: Vec<f64> = rgb.split(',').filter_map(|p| p.trim().parse().ok()).collect();
        let [r, g, b] = parts[..] else { return None };
        (r / 255.0, g / 255.0, b / 255.0)
    } else {
        return None;
    };
    let (x, y) = rgb_to_xy(rgb.0, rgb.1, rgb.2);
    let (hue, sat) = rgb_to_hs(rgb.0, rgb.1, rgb.2);
    Some(json!({"hue": num(hue.round()), "saturation": num(sat.round()), "x": round_to(x, 4), "y": round_to(y, 4)}))
}

// --- Bridge requests ---

fn invalid() -> String {
    "Invalid payload".into()
}

/// Called by [`on_message`], which holds the sequence lock.
fn on_request(inner: &Inner, path: &str, msg: &Msg) {
    let payload = msg.json();
    let transaction = payload.get("transaction").cloned();
    let (result, mut msgs) = {
        let mut st = inner.lock();
        st.requests.push((path.to_owned(), payload.clone()));
        if let Some(n) = st.swallow_next.get_mut(path)
            && *n > 0
        {
            *n -= 1;
            drop(st);
            inner.changed.notify_all();
            return;
        }
        if let Some(error) = st.fail_next.get_mut(path).and_then(VecDeque::pop_front) {
            (Err(error), Vec::new())
        } else {
            let mut msgs = Vec::new();
            match request(inner, &mut st, path, &payload, &mut msgs) {
                // zigbee2mqtt leaves requests it does not know unanswered.
                None => {
                    drop(st);
                    inner.changed.notify_all();
                    return;
                }
                Some(r) => (r, msgs),
            }
        }
    };
    inner.changed.notify_all();
    let mut response = match result {
        Ok(data) => json!({"data": data, "status": "ok"}),
        Err(error) => json!({"data": {}, "error": error, "status": "error"}),
    };
    if let Some(t) = transaction {
        response["transaction"] = t;
    }
    // The response comes after the bridge topics it changed, as in zigbee2mqtt.
    msgs.push(out(format!("bridge/response/{path}"), response.to_string(), false));
    inner.send(msgs);
}

fn field<'a>(payload: &'a Value, key: &str) -> Result<&'a Value, String> {
    payload.get(key).filter(|v| !v.is_null()).ok_or_else(invalid)
}

fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn resolve_device(st: &SimState, key: &Value) -> Result<usize, String> {
    let text = key_text(key);
    st.device_index(&text).ok_or_else(|| format!("Device '{text}' does not exist"))
}

fn check_name(st: &SimState, name: &str) -> Result<(), String> {
    if name.contains('+') || name.contains('#') {
        return Err(format!("MQTT wildcard (+ and #) not allowed in friendly_name ('{name}')"));
    }
    if name.is_empty() || name.ends_with('/') || name.starts_with('/') {
        return Err(format!("Friendly name cannot end or start with a slash ('{name}')"));
    }
    if st.name_in_use(name) {
        return Err(format!("friendly_name '{name}' is already in use"));
    }
    Ok(())
}

/// Carries out a request; `None` for a request zigbee2mqtt does not know.
fn request(
    inner: &Inner,
    st: &mut SimState,
    path: &str,
    payload: &Value,
    msgs: &mut Vec<Out>,
) -> Option<Result<Value, String>> {
    let result = match path {
        "health_check" => Ok(json!({"healthy": true})),
        "restart" => Ok(json!({})),
        "permit_join" => (|| {
            let time = field(payload, "time")?.as_f64().ok_or_else(invalid)?.clamp(0.0, 254.0);
            let mut data = json!({"time": num(time)});
            if let Some(device) = payload.get("device").filter(|d| !d.is_null()) {
                resolve_device(st, device)?;
                data["device"] = device.clone();
            }
            #[allow(clippy::cast_possible_truncation)]
            let ms = (time * 1000.0) as i64;
            st.permit_join_end = (ms > 0).then(|| now_ms() + ms);
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            Ok(data)
        })(),
        "device/rename" => (|| {
            let from = field(payload, "from")?;
            let to = field(payload, "to")?.as_str().ok_or_else(invalid)?.to_owned();
            let i = resolve_device(st, from)?;
            let old = st.devices[i].name();
            if old != to {
                check_name(st, &to)?;
            }
            // Clear the retained messages of the old name, then carry on under the new one.
            msgs.push(out(old.clone(), "", true));
            msgs.push(out(format!("{old}/availability"), "", true));
            st.devices[i].entry["friendly_name"] = json!(to);
            msgs.push(out("bridge/devices", devices_payload(st), true));
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            msgs.push(availability_out(&st.devices[i]));
            if !st.devices[i].state.is_empty() {
                msgs.push(state_out(inner, &st.devices[i], None));
            }
            let ha = payload.get("homeassistant_rename").and_then(Value::as_bool).unwrap_or(false);
            Ok(json!({"from": old, "homeassistant_rename": ha, "to": to}))
        })(),
        "device/remove" => (|| {
            let id = if payload.is_string() { payload } else { field(payload, "id")? };
            let i = resolve_device(st, id)?;
            let force = payload.get("force").and_then(Value::as_bool).unwrap_or(false);
            let block = payload.get("block").and_then(Value::as_bool).unwrap_or(false);
            if st.devices[i].is_coordinator() {
                return Err(format!(
                    "Failed to remove device '{}' (block: {block}, force: {force})",
                    st.devices[i].name()
                ));
            }
            let dev = st.devices.remove(i);
            let ieee = dev.ieee();
            for g in &mut st.groups {
                if let Some(members) = g["members"].as_array_mut() {
                    members.retain(|m| m["ieee_address"] != ieee.as_str());
                }
            }
            if !force {
                let data = json!({"friendly_name": dev.name(), "ieee_address": ieee});
                msgs.push(out("bridge/event", json!({"data": data, "type": "device_leave"}).to_string(), false));
            }
            msgs.push(out(dev.name(), "", true));
            msgs.push(out(format!("{}/availability", dev.name()), "", true));
            msgs.push(out("bridge/groups", groups_payload(st), true));
            msgs.push(out("bridge/devices", devices_payload(st), true));
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            Ok(json!({"block": block, "force": force, "id": id}))
        })(),
        "device/options" => (|| {
            let id = field(payload, "id")?;
            resolve_device(st, id)?;
            let options = field(payload, "options")?;
            Ok(json!({"from": {}, "id": id, "restart_required": false, "to": options}))
        })(),
        "device/ota_update/check" | "device/ota_update/update" => (|| {
            let id = if payload.is_string() { payload } else { field(payload, "id")? };
            let i = resolve_device(st, id)?;
            let dev = &st.devices[i];
            if dev.entry["definition"]["supports_ota"] != true {
                return Err(format!("Device '{}' does not support OTA updates", dev.name()));
            }
            if path.ends_with("update") {
                return Err(format!("Update of '{}' failed (No new image available)", dev.name()));
            }
            Ok(json!({"id": id, "update_available": false}))
        })(),
        "group/add" => (|| {
            let name = if let Some(s) = payload.as_str() {
                s
            } else {
                field(payload, "friendly_name")?.as_str().ok_or_else(invalid)?
            };
            check_name(st, name)?;
            let id = match payload.get("id").and_then(Value::as_u64) {
                Some(id) if st.groups.iter().any(|g| g["id"] == id) => {
                    return Err(format!("Group ID '{id}' is already in use"));
                }
                Some(id) => id,
                None => st.next_group_id,
            };
            st.next_group_id = st.next_group_id.max(id + 1);
            st.groups.push(json!({"friendly_name": name, "id": id, "members": [], "scenes": []}));
            msgs.push(out("bridge/groups", groups_payload(st), true));
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            Ok(json!({"friendly_name": name, "id": id}))
        })(),
        "group/remove" => (|| {
            let id = if payload.is_string() { payload } else { field(payload, "id")? };
            let g = st.group_index(id).ok_or_else(|| format!("Group '{}' does not exist", key_text(id)))?;
            let group = st.groups.remove(g);
            let force = payload.get("force").and_then(Value::as_bool).unwrap_or(false);
            msgs.push(out(group["friendly_name"].as_str().unwrap_or_default(), "", true));
            msgs.push(out("bridge/groups", groups_payload(st), true));
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            Ok(json!({"force": force, "id": id}))
        })(),
        "group/rename" => (|| {
            let from = field(payload, "from")?;
            let to = field(payload, "to")?.as_str().ok_or_else(invalid)?.to_owned();
            let g = st.group_index(from).ok_or_else(|| format!("Group '{}' does not exist", key_text(from)))?;
            check_name(st, &to)?;
            let old = st.groups[g]["friendly_name"].clone();
            st.groups[g]["friendly_name"] = json!(to);
            msgs.push(out("bridge/groups", groups_payload(st), true));
            msgs.push(out("bridge/info", info_payload(inner, st), true));
            Ok(json!({"from": old, "homeassistant_rename": false, "to": to}))
        })(),
        "group/members/add" | "group/members/remove" => (|| {
            let group = field(payload, "group")?;
            let device = field(payload, "device")?;
            let g = st.group_index(group).ok_or_else(|| format!("Group '{}' does not exist", key_text(group)))?;
            // `device` is a name or address, optionally with `/<endpoint>`.
            let text = key_text(device);
            let (i, endpoint_key) = match st.device_index(&text) {
                Some(i) => (i, payload.get("endpoint").cloned()),
                None => match text.rsplit_once('/') {
                    Some((d, ep)) if st.device_index(d).is_some() => {
                        (st.device_index(d).unwrap_or_default(), Some(json!(ep)))
                    }
                    _ => return Err(format!("Device '{text}' does not exist")),
                },
            };
            let ieee = st.devices[i].ieee();
            let endpoint = endpoint_key
                .as_ref()
                .and_then(|e| key_text(e).parse::<u64>().ok())
                .or_else(|| st.devices[i].first_endpoint());
            let members = st.groups[g]["members"].as_array_mut().ok_or_else(invalid)?;
            let is_member =
                |m: &Value| m["ieee_address"] == ieee.as_str() && endpoint.is_none_or(|e| m["endpoint"] == e);
            if path.ends_with("add") {
                if !members.iter().any(is_member) {
                    members.push(json!({"endpoint": endpoint, "ieee_address": ieee}));
                }
            } else {
                members.retain(|m| !is_member(m));
            }
            msgs.push(out("bridge/groups", groups_payload(st), true));
            Ok(json!({"device": text, "endpoint": endpoint_key.unwrap_or_else(|| json!("default")), "group": group}))
        })(),
        "networkmap" => {
            let ty = payload.get("type").cloned().unwrap_or_else(|| json!("raw"));
            let routes = payload.get("routes").and_then(Value::as_bool).unwrap_or(false);
            let nodes: Vec<Value> = st
                .devices
                .iter()
                .map(|d| {
                    json!({
                        "friendlyName": d.name(),
                        "ieeeAddr": d.ieee(),
                        "networkAddress": d.entry["network_address"],
                        "type": d.entry["type"],
                    })
                })
                .collect();
            let links: Vec<Value> = st
                .devices
                .iter()
                .filter(|d| !d.is_coordinator())
                .map(|d| {
                    json!({
                        "depth": 1, "linkquality": d.state.get("linkquality").cloned().unwrap_or(json!(100)),
                        "lqi": d.state.get("linkquality").cloned().unwrap_or(json!(100)), "relationship": 1,
                        "routes": [], "source": {"ieeeAddr": d.ieee(), "networkAddress": d.entry["network_address"]},
                        "sourceIeeeAddr": d.ieee(), "sourceNwkAddr": d.entry["network_address"],
                        "target": {"ieeeAddr": COORDINATOR.ieee, "networkAddress": 0}, "targetIeeeAddr": COORDINATOR.ieee,
                    })
                })
                .collect();
            Ok(json!({"routes": routes, "type": ty, "value": {"links": links, "nodes": nodes}}))
        }
        _ => return None,
    };
    Some(result)
}

// --- The network: bridge/devices entries with exposes as zigbee-herdsman-converters makes them ---

/// A zigbee2mqtt expose under construction (the builder of `exposes.ts`).
#[derive(Debug, Clone)]
struct X(Map<String, Value>);

/// Access bits: published in state, settable with /set, readable with /get.
const STATE: u8 = 1;
const SET: u8 = 2;
const STATE_SET: u8 = 3;
const STATE_GET: u8 = 5;
const ALL_ACCESS: u8 = 7;

fn label_from_name(name: &str) -> String {
    let label = name.replace('_', " ");
    let mut chars = label.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_default()
}

impl X {
    fn generic(ty: &str, name: &str, access: u8) -> X {
        let mut m = Map::new();
        m.insert("access".into(), json!(access));
        m.insert("label".into(), json!(label_from_name(name)));
        m.insert("name".into(), json!(name));
        m.insert("property".into(), json!(name));
        m.insert("type".into(), json!(ty));
        X(m)
    }
    fn numeric(name: &str, access: u8) -> X {
        X::generic("numeric", name, access)
    }
    fn binary(name: &str, access: u8, on: Value, off: Value) -> X {
        X::generic("binary", name, access).with("value_on", on).with("value_off", off)
    }
    fn enumeration(name: &str, access: u8, values: &[&str]) -> X {
        X::generic("enum", name, access).with("values", json!(values))
    }
    fn composite(name: &str, property: &str, access: u8) -> X {
        X::generic("composite", name, access).with("property", json!(property)).with("features", json!([]))
    }
    /// A specific expose (light, switch, cover, climate): a type and features, no property.
    fn specific(ty: &str) -> X {
        let mut m = Map::new();
        m.insert("features".into(), json!([]));
        m.insert("type".into(), json!(ty));
        X(m)
    }
    fn with(mut self, key: &str, value: impl Into<Value>) -> X {
        self.0.insert(key.into(), value.into());
        self
    }
    fn unit(self, unit: &str) -> X {
        self.with("unit", unit)
    }
    fn range(self, min: f64, max: f64) -> X {
        self.with("value_min", num(min)).with("value_max", num(max))
    }
    fn min(self, min: f64) -> X {
        self.with("value_min", num(min))
    }
    fn step(self, step: f64) -> X {
        self.with("value_step", num(step))
    }
    fn desc(self, d: &str) -> X {
        self.with("description", d)
    }
    fn cat(self, c: &str) -> X {
        self.with("category", c)
    }
    fn label(self, l: &str) -> X {
        self.with("label", l)
    }
    fn toggle(self) -> X {
        self.with("value_toggle", "TOGGLE")
    }
    fn preset(mut self, name: &str, value: f64, description: &str) -> X {
        let presets = self.0.entry("presets").or_insert_with(|| json!([]));
        if let Some(p) = presets.as_array_mut() {
            p.push(json!({"description": description, "name": name, "value": num(value)}));
        }
        self
    }
    fn feature(mut self, f: X) -> X {
        if let Some(features) = self.0.get_mut("features").and_then(Value::as_array_mut) {
            features.push(Value::Object(f.0));
        }
        self
    }
    /// `withEndpoint`: the expose and its features get the endpoint, properties get `_<ep>`.
    fn endpoint(mut self, ep: &str) -> X {
        self.0.insert("endpoint".into(), json!(ep));
        if let Some(p) = self.0.get("property").and_then(Value::as_str).map(str::to_owned) {
            self.0.insert("property".into(), json!(format!("{p}_{ep}")));
        }
        if let Some(features) = self.0.get_mut("features").and_then(Value::as_array_mut) {
            for f in features {
                if let Some(p) = f["property"].as_str().map(str::to_owned) {
                    f["property"] = json!(format!("{p}_{ep}"));
                    f["endpoint"] = json!(ep);
                }
            }
        }
        self
    }
    fn v(self) -> Value {
        Value::Object(self.0)
    }
}

fn color_temp_x(name: &str, description: &str, min: f64, max: f64, previous: bool) -> X {
    let mut x = X::numeric(name, ALL_ACCESS).unit("mired").range(min, max).desc(description);
    for (p, v, d) in [
        ("coolest", min, "Coolest temperature supported"),
        ("cool", 250.0, "Cool temperature (250 mireds / 4000 Kelvin)"),
        ("neutral", 370.0, "Neutral temperature (370 mireds / 2700 Kelvin)"),
        ("warm", 454.0, "Warm temperature (454 mireds / 2200 Kelvin)"),
        ("warmest", max, "Warmest temperature supported"),
    ] {
        if (min..=max).contains(&v) {
            x = x.preset(p, v, d);
        }
    }
    if previous {
        x = x.preset("previous", 65535.0, "Restore previous color_temp on cold power on");
    }
    x
}

fn light(min_mired: f64, max_mired: f64) -> Value {
    X::specific("light")
        .feature(X::binary("state", ALL_ACCESS, json!("ON"), json!("OFF")).toggle().desc("On/off state of this light"))
        .feature(X::numeric("brightness", ALL_ACCESS).range(0.0, 254.0).desc("Brightness of this light"))
        .feature(color_temp_x("color_temp", "Color temperature of this light", min_mired, max_mired, false))
        .feature(color_temp_x(
            "color_temp_startup",
            "Color temperature after cold power on of this light",
            min_mired,
            max_mired,
            true,
        ))
        .feature(
            X::composite("color_xy", "color", ALL_ACCESS)
                .label("Color (X/Y)")
                .feature(X::numeric("x", ALL_ACCESS))
                .feature(X::numeric("y", ALL_ACCESS))
                .desc("Color of this light in the CIE 1931 color space (x/y)"),
        )
        .feature(
            X::composite("color_hs", "color", ALL_ACCESS)
                .label("Color (HS)")
                .feature(X::numeric("hue", ALL_ACCESS))
                .feature(X::numeric("saturation", ALL_ACCESS))
                .desc("Color of this light expressed as hue/saturation"),
        )
        .v()
}

fn switch() -> X {
    X::specific("switch")
        .feature(X::binary("state", ALL_ACCESS, json!("ON"), json!("OFF")).toggle().desc("On/off state of the switch"))
}

fn linkquality() -> Value {
    X::numeric("linkquality", STATE)
        .unit("lqi")
        .range(0.0, 255.0)
        .desc("Link quality (signal strength)")
        .cat("diagnostic")
        .v()
}

fn battery() -> X {
    X::numeric("battery", STATE)
        .unit("%")
        .range(0.0, 100.0)
        .desc("Remaining battery in %, can take up to 24 hours before reported")
        .cat("diagnostic")
}

fn battery_voltage() -> Value {
    X::numeric("voltage", STATE).unit("mV").desc("Voltage of the battery in millivolts").cat("diagnostic").v()
}

fn device_temperature() -> Value {
    X::numeric("device_temperature", STATE).unit("°C").desc("Temperature of the device").cat("diagnostic").v()
}

fn power_outage_count(since_pairing: bool) -> Value {
    let d = if since_pairing { "Number of power outages (since last pairing)" } else { "Number of power outages" };
    X::numeric("power_outage_count", STATE).desc(d).cat("diagnostic").v()
}

fn power_on_behavior(values: &[&str]) -> Value {
    X::enumeration("power_on_behavior", ALL_ACCESS, values)
        .label("Power-on behavior")
        .desc("Controls the behavior when the device is powered on after power loss")
        .cat("config")
        .v()
}

fn option_calibration(name: &str) -> Value {
    X::numeric(&format!("{name}_calibration"), SET)
        .desc(&format!("Calibrates the {name} value (absolute offset), takes into effect on next report of device."))
        .v()
}

fn option_precision(name: &str) -> Value {
    X::numeric(&format!("{name}_precision"), SET)
        .range(0.0, 3.0)
        .desc(&format!(
            "Number of digits after decimal point for {name}, takes into effect on next report of device. This option can only decrease the precision, not increase it."
        ))
        .v()
}

fn endpoint(input: &[&str], output: &[&str]) -> Value {
    json!({
        "bindings": [],
        "clusters": {"input": input, "output": output},
        "configured_reportings": [],
        "scenes": [],
    })
}

#[allow(clippy::too_many_arguments)]
fn entry(
    k: Known,
    ty: &str,
    network_address: u64,
    power_source: &str,
    manufacturer: &str,
    model_id: &str,
    sw: &str,
    date_code: &str,
    definition: Value,
    endpoints: Value,
) -> Value {
    json!({
        "date_code": date_code,
        "definition": definition,
        "disabled": false,
        "endpoints": endpoints,
        "friendly_name": k.name,
        "ieee_address": k.ieee,
        "interview_state": "SUCCESSFUL",
        "manufacturer": manufacturer,
        "model_id": model_id,
        "network_address": network_address,
        "power_source": power_source,
        "software_build_id": sw,
        "supported": true,
        "type": ty,
    })
}

fn definition(k: Known, description: &str, supports_ota: bool, exposes: Vec<Value>, options: Vec<Value>) -> Value {
    json!({
        "description": description,
        "exposes": exposes,
        "model": k.model,
        "options": options,
        "source": "native",
        "supports_ota": supports_ota,
        "vendor": k.vendor,
    })
}

fn lumi_endpoint() -> Value {
    json!({"1": endpoint(&["genBasic", "genIdentify", "genOta"], &["genBasic", "genGroups", "genOta"])})
}

/// The network at start, coordinator first, with each device's state.
fn network() -> Vec<Dev> {
    let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
    let mut devices = Vec::new();

    devices.push(Dev {
        entry: json!({
            "definition": null,
            "disabled": false,
            "endpoints": {
                "1": endpoint(&[], &[]),
                "2": endpoint(&[], &[]),
                "3": endpoint(&[], &[]),
                "4": endpoint(&[], &[]),
                "5": endpoint(&[], &[]),
                "6": endpoint(&[], &[]),
                "8": endpoint(&[], &[]),
                "10": endpoint(&[], &[]),
                "11": endpoint(&["ssIasAce"], &["ssIasZone", "ssIasWd"]),
                "12": endpoint(&[], &[]),
                "13": endpoint(&["genOta"], &[]),
                "47": endpoint(&[], &[]),
                "110": endpoint(&[], &[]),
                "242": endpoint(&[], &[]),
            },
            "friendly_name": COORDINATOR.name,
            "ieee_address": COORDINATOR.ieee,
            "interview_state": "SUCCESSFUL",
            "network_address": 0,
            "supported": true,
            "type": "Coordinator",
        }),
        state: Map::new(),
        online: true,
    });

    let hue_effects = [
        "blink",
        "breathe",
        "okay",
        "channel_change",
        "candle",
        "fireplace",
        "colorloop",
        "sunrise",
        "sparkle",
        "opal",
        "glisten",
        "finish_effect",
        "stop_effect",
        "stop_hue_effect",
    ];
    let bulb_def = definition(
        BULB,
        "Hue white and color ambiance E26/E27",
        true,
        vec![
            light(153.0, 500.0),
            power_on_behavior(&["off", "on", "toggle", "previous"]),
            X::enumeration("effect", SET, &hue_effects)
                .desc("Triggers an effect on the light (e.g. make light blink for a few seconds)")
                .v(),
            linkquality(),
        ],
        vec![
            X::numeric("transition", SET).min(0.0).step(0.1).desc(
                "Controls the transition time (in seconds) of on/off, brightness, color temperature (if applicable) and color (if applicable) changes. Defaults to `0` (no transition).",
            ).v(),
            X::binary("color_sync", SET, json!(true), json!(false)).desc(
                "When enabled colors will be synced, e.g. if the light supports both color x/y and color temperature a conversion from color x/y to color temperature will be done when setting the x/y color (default true).",
            ).v(),
            X::binary("state_action", SET, json!(true), json!(false))
                .desc("State actions will also be published as 'action' when true (default false).")
                .v(),
        ],
    );
    devices.push(Dev {
        entry: entry(
            BULB,
            "Router",
            0x3f2a,
            "Mains (single phase)",
            "Signify Netherlands B.V.",
            "LCA001",
            "1.104.2",
            "20230206",
            bulb_def,
            json!({
                "11": endpoint(
                    &["genBasic", "genIdentify", "genGroups", "genScenes", "genOnOff", "genLevelCtrl", "touchlink",
                      "manuSpecificPhilips2", "lightingColorCtrl", "manuSpecificUbisysDimmerSetup"],
                    &["genOta"],
                ),
                "242": endpoint(&[], &["greenPower"]),
            }),
        ),
        state: obj(json!({
            "brightness": 254,
            "color": {"hue": 35, "saturation": 75, "x": 0.4599, "y": 0.4106},
            "color_mode": "color_temp",
            "color_temp": 366,
            "linkquality": 142,
            "power_on_behavior": "previous",
            "state": "OFF",
        })),
        online: true,
    });

    let climate_def = definition(
        CLIMATE,
        "Temperature, humidity and pressure sensor",
        false,
        vec![
            battery().v(),
            battery_voltage(),
            X::numeric("temperature", STATE).unit("°C").desc("Measured temperature value").v(),
            X::numeric("humidity", STATE).unit("%").desc("Measured relative humidity").v(),
            X::numeric("pressure", STATE).unit("hPa").desc("The measured atmospheric pressure").v(),
            power_outage_count(false),
            linkquality(),
        ],
        vec![
            option_calibration("temperature"),
            option_precision("temperature"),
            option_calibration("humidity"),
            option_precision("humidity"),
            option_calibration("pressure"),
            option_precision("pressure"),
        ],
    );
    devices.push(Dev {
        entry: entry(
            CLIMATE,
            "EndDevice",
            0x8c41,
            "Battery",
            "LUMI",
            "lumi.weather",
            "3000-0001",
            "20191205",
            climate_def,
            json!({"1": endpoint(
                &["genBasic", "genIdentify", "msTemperatureMeasurement", "msPressureMeasurement", "msRelativeHumidity"],
                &["genBasic", "genGroups"],
            )}),
        ),
        state: obj(json!({
            "battery": 91,
            "humidity": 45.62,
            "linkquality": 87,
            "power_outage_count": 12,
            "pressure": 1012.4,
            "temperature": 21.37,
            "voltage": 3015,
        })),
        online: true,
    });

    let door_def = definition(
        DOOR,
        "Door and window sensor",
        false,
        vec![
            battery().v(),
            X::binary("contact", STATE, json!(false), json!(true))
                .desc("Indicates if the contact is closed (= true) or open (= false)")
                .v(),
            device_temperature(),
            battery_voltage(),
            power_outage_count(false),
            X::numeric("trigger_count", STATE)
                .desc("Indicates how many times the sensor was triggered (since last scheduled report)")
                .cat("diagnostic")
                .v(),
            linkquality(),
        ],
        vec![option_calibration("device_temperature")],
    );
    devices.push(Dev {
        entry: entry(
            DOOR,
            "EndDevice",
            0x1b7e,
            "Battery",
            "LUMI",
            "lumi.sensor_magnet.aq2",
            "3000-0001",
            "20161128",
            door_def,
            lumi_endpoint(),
        ),
        state: obj(json!({
            "battery": 100,
            "contact": true,
            "device_temperature": 23,
            "linkquality": 112,
            "power_outage_count": 3,
            "trigger_count": 0,
            "voltage": 3045,
        })),
        online: true,
    });

    let button_def = definition(
        BUTTON,
        "Wireless mini switch",
        false,
        vec![
            battery().v(),
            battery_voltage(),
            X::enumeration("action", STATE, &["single", "double", "triple", "quadruple", "hold", "release"])
                .desc("Triggered action (e.g. a button click)")
                .cat("diagnostic")
                .v(),
            device_temperature(),
            power_outage_count(true),
            linkquality(),
        ],
        vec![option_calibration("device_temperature")],
    );
    devices.push(Dev {
        entry: entry(
            BUTTON,
            "EndDevice",
            0x6d02,
            "Battery",
            "LUMI",
            "lumi.sensor_switch.aq2",
            "3000-0001",
            "20170627",
            button_def,
            lumi_endpoint(),
        ),
        state: obj(json!({
            "battery": 97,
            "device_temperature": 22,
            "linkquality": 69,
            "power_outage_count": 5,
            "voltage": 3042,
        })),
        online: true,
    });

    let switch_def = definition(
        SWITCH,
        "2 gang switch module",
        false,
        vec![
            switch().endpoint("l1").v(),
            switch().endpoint("l2").v(),
            X::enumeration("power_on_behavior", ALL_ACCESS, &["off", "on", "previous"])
                .label("Power-on behavior")
                .desc("Controls the behavior when the device is powered on after power loss")
                .cat("config")
                .v(),
            linkquality(),
        ],
        vec![],
    );
    devices.push(Dev {
        entry: entry(
            SWITCH,
            "Router",
            0xd4b9,
            "Mains (single phase)",
            "_TZ3000_01gpyda5",
            "TS0002",
            "",
            "",
            switch_def,
            json!({
                "1": endpoint(&["genBasic", "genIdentify", "genGroups", "genScenes", "genOnOff"], &["genOta", "genTime"]),
                "2": endpoint(&["genIdentify", "genGroups", "genScenes", "genOnOff"], &[]),
            }),
        ),
        state: obj(json!({"linkquality": 156, "power_on_behavior": "off", "state_l1": "OFF", "state_l2": "ON"})),
        online: true,
    });

    let plug_def = definition(
        PLUG,
        "Smart plug (with power monitoring)",
        true,
        vec![
            switch().v(),
            X::enumeration("power_outage_memory", ALL_ACCESS, &["on", "off", "restore"])
                .desc("Recover state after power outage")
                .cat("config")
                .v(),
            X::enumeration("indicator_mode", ALL_ACCESS, &["off", "off/on", "on/off", "on"])
                .desc("LED indicator mode")
                .cat("config")
                .v(),
            X::binary("child_lock", STATE_SET, json!("LOCK"), json!("UNLOCK"))
                .desc("Enables/disables physical input on the device")
                .v(),
            X::numeric("power", STATE_GET).unit("W").desc("Instantaneous measured power").v(),
            X::numeric("current", STATE_GET).unit("A").desc("Instantaneous measured electrical current").v(),
            X::numeric("voltage", STATE_GET).unit("V").desc("Measured electrical potential value").v(),
            X::numeric("energy", STATE_GET).unit("kWh").desc("Sum of consumed energy").v(),
            linkquality(),
        ],
        vec![
            option_calibration("power"),
            option_precision("power"),
            option_calibration("current"),
            option_precision("current"),
            option_calibration("voltage"),
            option_precision("voltage"),
            option_calibration("energy"),
            option_precision("energy"),
            X::numeric("measurement_poll_interval", SET).min(-1.0).desc(
                "This device does not support reporting electric measurements so it is polled instead. The default poll interval is 60 seconds, set to -1 to disable.",
            ).v(),
        ],
    );
    devices.push(Dev {
        entry: entry(
            PLUG,
            "Router",
            0x2e95,
            "Mains (single phase)",
            "_TZ3000_gjnozsaz",
            "TS011F",
            "",
            "",
            plug_def,
            json!({"1": endpoint(
                &["genBasic", "genIdentify", "genGroups", "genScenes", "genOnOff", "seMetering", "haElectricalMeasurement",
                  "manuSpecificTuya3"],
                &["genOta", "genTime"],
            )}),
        ),
        state: obj(json!({
            "child_lock": "UNLOCK",
            "current": 0.02,
            "energy": 12.34,
            "indicator_mode": "off/on",
            "linkquality": 198,
            "power": 1.2,
            "power_outage_memory": "restore",
            "state": "ON",
            "voltage": 231,
        })),
        online: true,
    });

    let trv_def = definition(
        THERMOSTAT,
        "Thermostatic radiator valve",
        true,
        vec![
            X::specific("climate")
                .feature(
                    X::numeric("occupied_heating_setpoint", ALL_ACCESS)
                        .range(4.0, 35.0)
                        .step(0.5)
                        .unit("°C")
                        .desc("Temperature setpoint"),
                )
                .feature(
                    X::numeric("local_temperature", STATE_GET)
                        .unit("°C")
                        .desc("Current temperature measured on the device"),
                )
                .feature(
                    X::numeric("local_temperature_calibration", ALL_ACCESS)
                        .range(-12.8, 12.7)
                        .step(0.2)
                        .unit("°C")
                        .desc("Offset to add/subtract to the local temperature"),
                )
                .feature(
                    X::enumeration("system_mode", ALL_ACCESS, &["off", "auto", "heat"]).desc("Mode of this device"),
                )
                .feature(
                    X::enumeration("running_state", STATE_GET, &["idle", "heat"]).desc("The current running state"),
                )
                .v(),
            X::binary("child_lock", ALL_ACCESS, json!(true), json!(false))
                .desc("Enables/disables physical input on the device")
                .v(),
            X::binary("open_window", ALL_ACCESS, json!(true), json!(false))
                .desc("Automatically turns off the radiator when local temperature drops by more than 1.5°C in 4.5 minutes.")
                .v(),
            X::numeric("frost_protection_temperature", ALL_ACCESS)
                .range(4.0, 35.0)
                .step(0.5)
                .unit("°C")
                .desc("Minimum temperature at which to automatically turn on the radiator, if system mode is off, to prevent pipes freezing.")
                .cat("config")
                .v(),
            battery().with("access", STATE_GET).v(),
            linkquality(),
        ],
        vec![],
    );
    devices.push(Dev {
        entry: entry(
            THERMOSTAT,
            "EndDevice",
            0x77c3,
            "Battery",
            "SONOFF",
            "TRVZB",
            "1.3.0",
            "20240301",
            trv_def,
            json!({"1": endpoint(
                &["genBasic", "genPowerCfg", "genIdentify", "genPollCtrl", "hvacThermostat", "customClusterEwelink"],
                &["genOta", "genTime"],
            )}),
        ),
        state: obj(json!({
            "battery": 80,
            "child_lock": false,
            "frost_protection_temperature": 7,
            "linkquality": 120,
            "local_temperature": 19.5,
            "local_temperature_calibration": 0,
            "occupied_heating_setpoint": 21,
            "open_window": true,
            "running_state": "heat",
            "system_mode": "heat",
        })),
        online: true,
    });

    let blind_def = definition(
        BLIND,
        "FYRTUR roller blind",
        true,
        vec![
            X::specific("cover")
                .feature(X::enumeration("state", STATE_SET, &["OPEN", "CLOSE", "STOP"]))
                .feature(X::numeric("position", ALL_ACCESS).range(0.0, 100.0).desc("Position of this cover").unit("%"))
                .v(),
            battery().with("access", STATE_GET).v(),
            linkquality(),
        ],
        vec![
            X::binary("invert_cover", SET, json!(true), json!(false))
                .desc("Inverts the cover position, false: open=100,close=0, true: open=0,close=100 (default false).")
                .v(),
        ],
    );
    devices.push(Dev {
        entry: entry(
            BLIND,
            "EndDevice",
            0x4f10,
            "Battery",
            "IKEA of Sweden",
            "FYRTUR block-out roller blind",
            "2.3.088",
            "20200707",
            blind_def,
            json!({
                "1": endpoint(
                    &["genBasic", "genPowerCfg", "genIdentify", "genGroups", "genScenes", "genPollCtrl",
                      "closuresWindowCovering", "64636"],
                    &["genOta"],
                ),
            }),
        ),
        state: obj(json!({"battery": 74, "linkquality": 91, "position": 100, "state": "OPEN"})),
        online: true,
    });

    devices.push(Dev {
        entry: json!({
            "date_code": "",
            "definition": null,
            "disabled": false,
            "endpoints": {"1": endpoint(&["genBasic", "genGroups", "genScenes", "manuSpecificTuya"], &["genOta", "genTime"])},
            "friendly_name": UNSUPPORTED.name,
            "ieee_address": UNSUPPORTED.ieee,
            "interview_state": "SUCCESSFUL",
            "manufacturer": UNSUPPORTED.vendor,
            "model_id": UNSUPPORTED.model,
            "network_address": 0xa1b9,
            "power_source": "Battery",
            "supported": false,
            "type": "EndDevice",
        }),
        state: obj(json!({"linkquality": 54})),
        online: true,
    });
    devices
}

/// A `bridge/devices` entry of an Aqara RTCGQ11LM motion sensor (occupancy, illuminance,
/// battery), for [`Zigbee2mqttSim::join_device`]. Its first state could be
/// `{"occupancy": false, "illuminance": 28, "battery": 100, "voltage": 3055, "linkquality": 102}`.
pub fn motion_sensor_entry(ieee: &str, friendly_name: &str) -> Value {
    let k = Known { name: "", ieee: "", model: "RTCGQ11LM", vendor: "Aqara" };
    let def = definition(
        k,
        "Motion sensor",
        false,
        vec![
            X::binary("occupancy", STATE, json!(true), json!(false))
                .desc("Indicates whether the device detected occupancy")
                .v(),
            X::numeric("illuminance", STATE).desc("Measured illuminance").unit("lx").v(),
            device_temperature(),
            battery().v(),
            battery_voltage(),
            power_outage_count(false),
            linkquality(),
        ],
        vec![
            X::numeric("occupancy_timeout", SET)
                .min(0.0)
                .desc("Time in seconds after which occupancy is cleared after detecting it (default 90 seconds).")
                .v(),
        ],
    );
    let mut e = entry(
        k,
        "EndDevice",
        0x9e21,
        "Battery",
        "LUMI",
        "lumi.sensor_motion.aq2",
        "3000-0001",
        "20170627",
        def,
        lumi_endpoint(),
    );
    e["friendly_name"] = json!(friendly_name);
    e["ieee_address"] = json!(ieee);
    e
}
