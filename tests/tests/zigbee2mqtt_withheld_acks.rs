//! zigbee2mqtt through a broker that stops acknowledging: the hub keeps working.
//!
//! A broker that takes the hub's QoS 1 commands but holds back their PUBACKs (overloaded, or a
//! bridge on a slow link) fills the MQTT client's in-flight window (100 for rumqttc), then its
//! request queue (64, given by the adapter). The adapter's one task both drives the client and
//! sends commands: if it ever waits for room in that queue, nothing drives the client again and
//! the adapter stops for good: zigbee2mqtt's state is no longer applied, no command goes out,
//! even once the broker answers again.
//!
//! The broker here is written in the test (MQTT 3.1.1 over TCP on loopback, hand framed), so it
//! can withhold acknowledgements on demand; it also plays zigbee2mqtt towards the hub (bridge
//! state, device list, device states). The hub is the real binary, pointed at it with
//! `[mqtt.external]`. Everything is checked through the HTTP API, as a user would see it.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::sim::zigbee2mqtt::{CLIMATE, COORDINATOR, PLUG};
use serde_json::{Value, json};

/// How long the hub gets to connect, show devices, and deliver commands once acknowledged.
const T: Duration = Duration::from_secs(60);
/// How long the hub gets to apply a state report while acknowledgements are withheld.
const STATE_DEADLINE: Duration = Duration::from_secs(20);
/// Commands sent while acknowledgements are withheld: well over rumqttc's in-flight window (100)
/// plus the adapter's client queue (64) plus the hub's command queue (64), and under the
/// adapter's outbox (10,000), so every command the hub accepts must reach the broker.
const COMMANDS: u32 = 1_500;
/// The adapter's MQTT client id starts so (`hearth-zigbee2mqtt-<pid>`).
const ADAPTER_CLIENT: &str = "hearth-zigbee2mqtt-";

/// The test broker's picture of the zigbee2mqtt adapter's connection.
#[derive(Default)]
struct State {
    /// Where to write to the adapter (its latest connection).
    adapter: Option<Arc<Mutex<TcpStream>>>,
    /// Connections the adapter made.
    adapter_connections: u32,
    /// Whether the adapter subscribed on its latest connection.
    subscribed: bool,
    /// Hold back PUBACKs to the adapter.
    withhold: bool,
    /// Packet ids of the adapter's QoS 1 PUBLISHes not acknowledged yet.
    withheld: Vec<u16>,
    /// Every PUBLISH from the adapter, in arrival order: topic and payload.
    published: Vec<(String, Vec<u8>)>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// An MQTT 3.1.1 broker for one test: answers CONNECT, SUBSCRIBE, PINGREQ and QoS 1 PUBLISH
/// from every client; records what the zigbee2mqtt adapter publishes, can withhold the
/// adapter's PUBACKs, and publishes to the adapter as zigbee2mqtt would (QoS 0).
struct Broker {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Broker {
    fn start() -> Broker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() });
        let accept = shared.clone();
        std::thread::Builder::new()
            .name("test-broker".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let shared = accept.clone();
                    let _ = std::thread::Builder::new().name("test-broker-conn".into()).spawn(move || {
                        let _ = serve(&shared, stream);
                    });
                }
            })
            .unwrap();
        Broker { addr, shared }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap()
    }

    /// Waits until `f` gives `Some` (re-checked whenever the broker's state changes).
    fn wait<R>(&self, timeout: Duration, mut f: impl FnMut(&State) -> Option<R>) -> Option<R> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(r) = f(&st) {
                return Some(r);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            st = self.shared.changed.wait_timeout(st, left.min(Duration::from_millis(200))).unwrap().0;
        }
    }

    /// Publishes to the adapter, as zigbee2mqtt does (QoS 0).
    fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let st = self.lock();
        let writer = st.adapter.as_ref().expect("the zigbee2mqtt adapter is connected");
        let packet = publish_packet(topic, payload.as_bytes(), retain);
        writer.lock().unwrap().write_all(&packet).unwrap_or_else(|e| panic!("publishing {topic} to the hub: {e}"));
    }

    fn withhold_acks(&self) {
        self.lock().withhold = true;
    }

    /// Acknowledges every withheld PUBLISH, and acknowledges at once from now on.
    fn release_acks(&self) -> usize {
        let mut st = self.lock();
        st.withhold = false;
        let ids = std::mem::take(&mut st.withheld);
        if let Some(writer) = &st.adapter {
            let mut w = writer.lock().unwrap();
            for id in &ids {
                let _ = w.write_all(&puback(*id));
            }
        }
        ids.len()
    }

    /// The values of `key` in the adapter's `zigbee2mqtt/<name>/set` PUBLISHes, in arrival order.
    fn sets(&self, name: &str, key: &str) -> Vec<Value> {
        sets(&self.lock(), name, key)
    }
}

fn sets(st: &State, name: &str, key: &str) -> Vec<Value> {
    let topic = format!("zigbee2mqtt/{name}/set");
    st.published
        .iter()
        .filter(|(t, _)| *t == topic)
        .filter_map(|(_, p)| serde_json::from_slice::<Value>(p).ok())
        .filter_map(|v| v.get(key).cloned())
        .collect()
}

/// One client connection, until it closes.
fn serve(shared: &Shared, stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    // A client that stops reading must not hang the test's writes for ever.
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = stream;
    let mut is_adapter = false;
    loop {
        let mut first = [0u8; 1];
        reader.read_exact(&mut first)?;
        let len = read_remaining_length(&mut reader)?;
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        match first[0] >> 4 {
            // CONNECT: protocol name, level, flags, keep-alive, then the client id.
            1 => {
                let name_len = u16_at(&body, 0)? as usize;
                let id_at = 2 + name_len + 4;
                let id_len = u16_at(&body, id_at)? as usize;
                let client_id = String::from_utf8_lossy(body.get(id_at + 2..id_at + 2 + id_len).unwrap_or_default());
                is_adapter = client_id.starts_with(ADAPTER_CLIENT);
                let mut st = shared.state.lock().unwrap();
                if is_adapter {
                    st.adapter = Some(writer.clone());
                    st.adapter_connections += 1;
                    st.subscribed = false;
                    st.withheld.clear();
                }
                writer.lock().unwrap().write_all(&[0x20, 0x02, 0x00, 0x00])?;
                shared.changed.notify_all();
            }
            // PUBLISH.
            3 => {
                let qos = (first[0] >> 1) & 0x03;
                let topic_len = u16_at(&body, 0)? as usize;
                let topic = String::from_utf8_lossy(body.get(2..2 + topic_len).unwrap_or_default()).into_owned();
                let mut at = 2 + topic_len;
                let id = if qos > 0 {
                    at += 2;
                    Some(u16_at(&body, at - 2)?)
                } else {
                    None
                };
                let payload = body.get(at..).unwrap_or_default().to_vec();
                let mut st = shared.state.lock().unwrap();
                if is_adapter {
                    st.published.push((topic, payload));
                }
                if let Some(id) = id {
                    if is_adapter && st.withhold {
                        st.withheld.push(id);
                    } else {
                        writer.lock().unwrap().write_all(&puback(id))?;
                    }
                }
                shared.changed.notify_all();
            }
            // SUBSCRIBE: packet id, then (filter, QoS) pairs; every filter granted QoS 1.
            8 => {
                let id = u16_at(&body, 0)?;
                let mut at = 2;
                let mut granted = Vec::new();
                while at < body.len() {
                    at += 2 + u16_at(&body, at)? as usize + 1;
                    granted.push(1u8);
                }
                let mut packet = vec![0x90];
                packet.extend(remaining_length(2 + granted.len()));
                packet.extend(id.to_be_bytes());
                packet.extend(granted);
                let mut st = shared.state.lock().unwrap();
                writer.lock().unwrap().write_all(&packet)?;
                if is_adapter {
                    st.subscribed = true;
                }
                shared.changed.notify_all();
            }
            // UNSUBSCRIBE.
            10 => {
                let id = u16_at(&body, 0)?;
                let mut packet = vec![0xb0, 0x02];
                packet.extend(id.to_be_bytes());
                writer.lock().unwrap().write_all(&packet)?;
            }
            // PINGREQ.
            12 => writer.lock().unwrap().write_all(&[0xd0, 0x00])?,
            // DISCONNECT.
            14 => return Ok(()),
            // PUBACK and the rest: nothing to answer (the broker only publishes at QoS 0).
            _ => {}
        }
    }
}

fn u16_at(body: &[u8], at: usize) -> std::io::Result<u16> {
    match body.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "a truncated MQTT packet")),
    }
}

fn read_remaining_length(r: &mut impl Read) -> std::io::Result<usize> {
    let mut len = 0usize;
    for shift in [0, 7, 14, 21] {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(len);
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "an MQTT remaining length over 4 bytes"))
}

fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            return out;
        }
    }
}

fn puback(id: u16) -> [u8; 4] {
    let [hi, lo] = id.to_be_bytes();
    [0x40, 0x02, hi, lo]
}

fn publish_packet(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut packet = vec![if retain { 0x31 } else { 0x30 }];
    packet.extend(remaining_length(2 + topic.len() + payload.len()));
    packet.extend(u16::try_from(topic.len()).unwrap().to_be_bytes());
    packet.extend(topic.as_bytes());
    packet.extend(payload);
    packet
}

/// `bridge/devices`: the coordinator, a temperature sensor, and a plug with a countdown (a
/// numeric setting, so every command can carry its own value).
fn devices() -> String {
    let exposes_climate = json!([
        {"type": "numeric", "name": "temperature", "property": "temperature", "access": 5, "unit": "°C",
         "label": "Temperature", "description": "Measured temperature value"},
        {"type": "numeric", "name": "humidity", "property": "humidity", "access": 5, "unit": "%",
         "label": "Humidity", "description": "Measured relative humidity"},
    ]);
    let exposes_plug = json!([
        {"type": "switch", "features": [
            {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF",
             "value_toggle": "TOGGLE", "label": "State", "description": "On/off state of the switch"}]},
        {"type": "numeric", "name": "countdown", "property": "countdown", "access": 7, "unit": "s",
         "value_min": 0, "value_max": 43200, "value_step": 1, "label": "Countdown",
         "description": "Countdown to turn the device off after a certain time"},
    ]);
    let device = |k: hearth_tests::sim::zigbee2mqtt::Known, ty: &str, description: &str, exposes: Value| {
        json!({
            "ieee_address": k.ieee, "type": ty, "network_address": 0x1234, "supported": true,
            "friendly_name": k.name, "disabled": false, "interview_state": "SUCCESSFUL",
            "definition": {"model": k.model, "vendor": k.vendor, "description": description,
                           "supports_ota": false, "exposes": exposes, "options": [], "source": "native"},
        })
    };
    json!([
        {"ieee_address": COORDINATOR.ieee, "type": "Coordinator", "network_address": 0, "supported": true,
         "friendly_name": COORDINATOR.name, "disabled": false, "interview_state": "SUCCESSFUL", "definition": null},
        device(CLIMATE, "EndDevice", "Temperature and humidity sensor", exposes_climate),
        device(PLUG, "Router", "Smart plug", exposes_plug),
    ])
    .to_string()
}

/// The device as the API shows it, once `pred` holds, or the last answer when `timeout` passes.
fn wait_device(
    hub: &Hub,
    token: &str,
    id: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let a = hub.get(&format!("/api/v1/devices/{id}"), Some(token));
        if a.status == 200 && pred(&a.body) {
            return Ok(a.body);
        }
        if Instant::now() > deadline {
            return Err(if a.status == 200 { a.body } else { json!(format!("HTTP {}: {}", a.status, a.text)) });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_tail(hub: &Hub) -> String {
    let log = hub.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn zigbee2mqtt_keeps_working_while_the_broker_withholds_acknowledgements() {
    let broker = Broker::start();
    let config =
        format!("[mqtt]\nenabled = false\n\n[mqtt.external]\nhost = \"127.0.0.1\"\nport = {}\n", broker.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, config).unwrap();
    let hub = Hub::start_without_broker(&["--config", file.to_str().unwrap()]);
    let token = hub.onboard();

    // zigbee2mqtt announces itself and its devices once the adapter subscribed.
    let subscribed = broker.wait(T, |st| st.subscribed.then_some(()));
    assert!(
        subscribed.is_some(),
        "the zigbee2mqtt adapter never subscribed at the broker within {T:?}\n{}",
        log_tail(&hub)
    );
    broker.publish("zigbee2mqtt/bridge/state", r#"{"state":"online"}"#, true);
    broker.publish("zigbee2mqtt/bridge/devices", &devices(), true);
    broker.publish(&format!("zigbee2mqtt/{}", CLIMATE.name), r#"{"temperature":21.0,"humidity":40}"#, false);
    broker.publish(&format!("zigbee2mqtt/{}", PLUG.name), r#"{"state":"ON","countdown":0}"#, false);
    let (climate, plug) = (CLIMATE.id(), PLUG.id());
    let temperature = |d: &Value| d["state"]["temperature"]["value"].as_f64();
    if let Err(last) = wait_device(&hub, &token, &climate, T, |d| temperature(d) == Some(21.0)) {
        panic!("the sensor did not appear with 21.0 °C within {T:?}; the API shows {last}\n{}", log_tail(&hub));
    }
    if let Err(last) = wait_device(&hub, &token, &plug, T, |d| d["availability"]["state"] == "online") {
        panic!("the plug did not appear online within {T:?}; the API shows {last}\n{}", log_tail(&hub));
    }

    // The broker stops acknowledging; the user keeps sending commands.
    broker.withhold_acks();
    let mut accepted = Vec::new();
    let mut busy = 0u64;
    for countdown in 1..=COMMANDS {
        let body = json!({"set": {"countdown": countdown}});
        let a = hub.post(&format!("/api/v1/devices/{plug}/commands"), Some(&token), body);
        match (a.status, a.body["error"]["code"].as_str()) {
            (202, _) => accepted.push(countdown),
            (503, Some("adapter_busy")) => busy += 1,
            _ => panic!("command {countdown} to the plug: HTTP {} {}", a.status, a.text),
        }
    }

    eprintln!("{} of {COMMANDS} commands accepted, {busy} refused as busy", accepted.len());

    // zigbee2mqtt reports a new temperature: the hub must still apply it.
    broker.publish(&format!("zigbee2mqtt/{}", CLIMATE.name), r#"{"temperature":23.5,"humidity":41}"#, false);
    if let Err(last) = wait_device(&hub, &token, &climate, STATE_DEADLINE, |d| temperature(d) == Some(23.5)) {
        let (withheld, connections) = {
            let st = broker.lock();
            (st.withheld.len(), st.adapter_connections)
        };
        panic!(
            "the hub stopped applying zigbee2mqtt state after the broker withheld acknowledgements: temperature \
             still {} after {} s ({} of {COMMANDS} commands accepted, {busy} refused as busy; {} withheld at the \
             broker; the adapter connected {} time(s))\nhub log tail:\n{}",
            last["state"]["temperature"]["value"],
            STATE_DEADLINE.as_secs(),
            accepted.len(),
            withheld,
            connections,
            log_tail(&hub)
        );
    }

    // The broker answers again: every command the hub accepted reaches it, in order.
    let released = broker.release_acks();
    let want: Vec<f64> = accepted.iter().map(|&c| f64::from(c)).collect();
    let got = broker
        .wait(T, |st| {
            let got = sets(st, PLUG.name, "countdown");
            (got.len() >= want.len()).then_some(got)
        })
        .unwrap_or_else(|| broker.sets(PLUG.name, "countdown"));
    assert!(
        got.len() == want.len(),
        "after the broker acknowledged again ({released} withheld acknowledgements sent), {} of the {} commands \
         the hub accepted reached zigbee2mqtt within {T:?}\nhub log tail:\n{}",
        got.len(),
        want.len(),
        log_tail(&hub)
    );
    if let Some(i) = (0..want.len()).find(|&i| got[i].as_f64() != Some(want[i])) {
        panic!(
            "the commands reached zigbee2mqtt out of order: command {} was countdown {}, the hub accepted {} there",
            i + 1,
            got[i],
            want[i]
        );
    }

    // And the next command goes straight through.
    let a = hub.post(&format!("/api/v1/devices/{plug}/commands"), Some(&token), json!({"set": {"state": false}}));
    assert_eq!(a.status, 202, "a command after the broker recovered: {}", a.text);
    let off = broker.wait(T, |st| sets(st, PLUG.name, "state").contains(&json!("OFF")).then_some(()));
    assert!(
        off.is_some(),
        "a command sent after the broker recovered did not reach zigbee2mqtt within {T:?}\nhub log tail:\n{}",
        log_tail(&hub)
    );
}
