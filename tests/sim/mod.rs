//! Simulators of the systems Hearth talks to, speaking their real wire formats, so end-to-end
//! tests drive the real hub against something that behaves like the real thing.
//!
//! - [`zigbee2mqtt`](crate::sim::zigbee2mqtt): a zigbee2mqtt 2.x bridge with a realistic Zigbee network, over MQTT.
//! - [`shelly`](crate::sim::shelly), [`wled`](crate::sim::wled), [`esphome`](crate::sim::esphome): Wi-Fi devices on their local protocols (HTTP and
//!   WebSocket RPC, WLED's JSON API and WebSocket, the ESPHome native API with Noise), announced
//!   over mDNS.
//! - [`http`](crate::sim::http): the HTTP and WebSocket server side the Shelly and WLED simulators share.
//! - [`MqttProbe`](crate::sim::MqttProbe): a plain MQTT client for tests that watch or inject raw messages.
//!
//! Every simulator runs on plain threads (no async runtime) and is stopped when dropped.

pub mod esphome;
pub mod http;
pub mod miio;
pub mod shelly;
pub mod tasmota;
pub mod wled;
pub mod yeelight;
pub mod zigbee2mqtt;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::Value;

pub use zigbee2mqtt::Zigbee2mqttSim;

/// The largest MQTT packet the simulators send or accept (a big `bridge/devices` is a few MB).
const MAX_PACKET: usize = 8 * 1024 * 1024;

/// A message as it arrived from the broker.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The topic.
    pub topic: String,
    /// The raw payload.
    pub payload: Vec<u8>,
    /// Whether the broker marked it retained (a message stored before we subscribed).
    pub retain: bool,
}

impl Msg {
    /// The payload as JSON; a payload that is not JSON becomes a JSON string of its text.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&self.payload).into_owned()))
    }

    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// What the connection thread of a [`Link`] reports.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// A CONNACK arrived: (re)subscribe and (re)publish.
    Connected,
    /// A PUBLISH arrived.
    Message(Msg),
}

#[derive(Debug, Default)]
struct Counters {
    connacks: u64,
    subacks: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct LinkShared {
    stop: AtomicBool,
    disconnected: AtomicBool,
    counters: Mutex<Counters>,
    changed: Condvar,
}

/// An MQTT connection driven by its own thread, reconnecting on its own; incoming messages and
/// connections go to the channel given at start.
pub(crate) struct Link {
    pub(crate) client: Client,
    shared: Arc<LinkShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

static CLIENT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A client id unique within this test process.
pub(crate) fn client_id(prefix: &str) -> String {
    format!("{prefix}_{:x}_{}", std::process::id(), CLIENT_SEQ.fetch_add(1, Ordering::Relaxed))
}

impl Link {
    pub(crate) fn start(
        broker: SocketAddr,
        client_id: String,
        credentials: Option<(String, String)>,
        will: Option<LastWill>,
        events: Sender<LinkEvent>,
    ) -> Link {
        let mut opts = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        opts.set_clean_session(true);
        if let Some((user, password)) = credentials {
            opts.set_credentials(user, password);
        }
        if let Some(will) = will {
            opts.set_last_will(will);
        }
        let (client, mut connection) = Client::new(opts, 1024);
        let shared = Arc::new(LinkShared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mqtt-sim-link".into())
            .spawn(move || {
                let mut stop_deadline: Option<Instant> = None;
                loop {
                    if s.stop.load(Ordering::SeqCst) {
                        let deadline = *stop_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
                        if Instant::now() > deadline {
                            break;
                        }
                    }
                    match connection.recv_timeout(Duration::from_millis(100)) {
                        Err(rumqttc::RecvTimeoutError::Timeout) => {}
                        Err(rumqttc::RecvTimeoutError::Disconnected) => break,
                        Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                            s.counters.lock().unwrap().connacks += 1;
                            s.changed.notify_all();
                            if events.send(LinkEvent::Connected).is_err() {
                                break;
                            }
                        }
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                            s.counters.lock().unwrap().subacks += 1;
                            s.changed.notify_all();
                        }
                        Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                            let msg = Msg { topic: p.topic.clone(), payload: p.payload.to_vec(), retain: p.retain };
                            if events.send(LinkEvent::Message(msg)).is_err() {
                                break;
                            }
                        }
                        Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => {
                            s.disconnected.store(true, Ordering::SeqCst);
                            break;
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            if s.stop.load(Ordering::SeqCst) {
                                break;
                            }
                            s.counters.lock().unwrap().last_error = Some(e.to_string());
                            s.changed.notify_all();
                            // The next poll reconnects; do not spin while the broker is away.
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
            })
            .expect("spawn the MQTT link thread");
        Link { client, shared, thread: Mutex::new(Some(thread)) }
    }

    /// Waits until `pred` holds for the counters; panics with the last connection error if not.
    fn wait_counters(&self, what: &str, timeout: Duration, pred: impl Fn(&Counters) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.counters.lock().unwrap();
        while !pred(&c) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "MQTT: no {what} within {timeout:?} (last error: {:?})", c.last_error);
            c = self.shared.changed.wait_timeout(c, left).unwrap().0;
        }
    }

    pub(crate) fn subacks(&self) -> u64 {
        self.shared.counters.lock().unwrap().subacks
    }

    pub(crate) fn wait_connected(&self, timeout: Duration) {
        self.wait_counters("CONNACK", timeout, |c| c.connacks > 0);
    }

    pub(crate) fn wait_subacks(&self, at_least: u64, timeout: Duration) {
        self.wait_counters("SUBACK", timeout, |c| c.subacks >= at_least);
    }

    /// Sends DISCONNECT (after everything queued before it) and ends the thread.
    pub(crate) fn stop(&self) {
        let Some(thread) = self.thread.lock().unwrap().take() else { return };
        let _ = self.client.try_disconnect();
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = thread.join();
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain MQTT client for tests: subscribe, publish, and wait for messages.
///
/// ```no_run
/// # use hearth_tests::{Hub, sim::MqttProbe};
/// # use std::time::Duration;
/// let hub = Hub::start(&[]);
/// let probe = MqttProbe::connect(hub.mqtt.unwrap());
/// probe.subscribe("zigbee2mqtt/bridge/state");
/// let state = probe.expect_topic("zigbee2mqtt/bridge/state", Duration::from_secs(5));
/// assert_eq!(state.json()["state"], "online");
/// ```
pub struct MqttProbe {
    link: Link,
    rx: Mutex<Receiver<LinkEvent>>,
    seen: Mutex<Vec<Msg>>,
    unclaimed: Mutex<VecDeque<Msg>>,
}

impl std::fmt::Debug for MqttProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttProbe").finish_non_exhaustive()
    }
}

impl MqttProbe {
    /// Connects without credentials and waits for the broker's CONNACK.
    pub fn connect(broker: SocketAddr) -> MqttProbe {
        MqttProbe::connect_with(broker, None)
    }

    /// Connects with optional (username, password) and waits for the broker's CONNACK.
    pub fn connect_with(broker: SocketAddr, credentials: Option<(&str, &str)>) -> MqttProbe {
        let (tx, rx) = mpsc::channel();
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let link = Link::start(broker, client_id("hearth_probe"), credentials, None, tx);
        link.wait_connected(Duration::from_secs(15));
        MqttProbe { link, rx: Mutex::new(rx), seen: Mutex::new(Vec::new()), unclaimed: Mutex::new(VecDeque::new()) }
    }

    /// Subscribes to a topic filter and waits for the SUBACK.
    pub fn subscribe(&self, filter: &str) {
        let before = self.link.subacks();
        self.link.client.subscribe(filter, QoS::AtLeastOnce).expect("subscribe");
        self.link.wait_subacks(before + 1, Duration::from_secs(10));
    }

    /// Publishes raw bytes with QoS 1.
    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.link.client.publish(topic, QoS::AtLeastOnce, retain, payload).expect("publish");
    }

    /// Publishes JSON (not retained) with QoS 1.
    pub fn publish_json(&self, topic: &str, payload: &Value) {
        self.publish(topic, payload.to_string(), false);
    }

    /// Moves what arrived within `timeout` to the unclaimed messages.
    fn pump(&self, timeout: Duration) {
        match self.rx.lock().unwrap().recv_timeout(timeout) {
            Ok(LinkEvent::Message(m)) => {
                self.seen.lock().unwrap().push(m.clone());
                self.unclaimed.lock().unwrap().push_back(m);
            }
            Ok(LinkEvent::Connected) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("the MQTT probe's connection ended"),
        }
    }

    /// The oldest message not yet returned by `expect` for which `pred` holds, waiting up to
    /// `timeout` for it; messages that do not match stay for later calls. Panics with the
    /// topics that did arrive.
    pub fn expect(&self, timeout: Duration, mut pred: impl FnMut(&Msg) -> bool) -> Msg {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            {
                let mut unclaimed = self.unclaimed.lock().unwrap();
                while checked < unclaimed.len() {
                    if pred(&unclaimed[checked]) {
                        return unclaimed.remove(checked).expect("index checked");
                    }
                    checked += 1;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let seen: Vec<String> = self.seen.lock().unwrap().iter().map(|m| m.topic.clone()).collect();
                panic!("MQTT: no matching message within {timeout:?}; messages seen: {seen:?}");
            }
            self.pump(left.min(Duration::from_millis(200)));
        }
    }

    /// The next message on exactly `topic`.
    pub fn expect_topic(&self, topic: &str, timeout: Duration) -> Msg {
        self.expect(timeout, |m| m.topic == topic)
    }

    /// Waits until no message has arrived for `quiet` (retained messages come in a burst after a
    /// subscription), at most `timeout`; returns every message received so far.
    pub fn settle(&self, quiet: Duration, timeout: Duration) -> Vec<Msg> {
        let deadline = Instant::now() + timeout;
        let mut count = self.seen.lock().unwrap().len();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            self.pump(Duration::from_millis(50));
            let now = self.seen.lock().unwrap().len();
            if now != count {
                count = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        self.seen()
    }

    /// Every message received so far, matching or not, in order.
    pub fn seen(&self) -> Vec<Msg> {
        self.seen.lock().unwrap().clone()
    }

    /// Disconnects.
    pub fn stop(&self) {
        self.link.stop();
    }
}
