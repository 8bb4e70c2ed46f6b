//! Tasmota devices, simulated over MQTT with their real wire format.
//!
//! [`TasmotaSim::start`] connects each device to a broker on a connection of its own, with
//! Tasmota's last will (`tele/<topic>/LWT` `Offline`, retained), and behaves like Tasmota 14.4
//! with its discovery on (`SetOption19 0`, the default): on connecting it publishes the retained
//! `LWT` `Online`, the retained discovery messages `tasmota/discovery/<MAC>/config` and
//! `.../sensors` (as `TasDiscoverMessage` in `xdrv_12_discovery.ino` writes them), then
//! `tele/<topic>/STATE` and `SENSOR`. It answers `cmnd/<topic>/<Command>` as Tasmota does:
//! `POWER<n>` on `stat/<topic>/RESULT` and `stat/<topic>/POWER<n>`; `Dimmer`, `CT`, `HSBColor`,
//! `HSBColor1..3` with the whole light state on `RESULT`; `Backlog` one command after the other;
//! `STATE` on `RESULT`; `STATUS 10` (or 8) on `stat/<topic>/STATUS10`, `STATUS 11` on `STATUS11`;
//! anything else `{"Command":"Unknown"}`.
//!
//! The devices ([`ALL`]): a Sonoff Dual R2 (two relays), an Athom Plug V2 (relay and BL0937
//! energy meter), an Athom 15W RGBCW bulb, and a Wemos D1 mini with an AM2301, a BME280 and a
//! button detached from any relay (SetOption73).
//!
//! Tests make things happen ([`TasmotaSim::press`], [`TasmotaSim::set_sensor`],
//! [`TasmotaSim::tele`], [`TasmotaSim::power_off`] and [`TasmotaSim::power_on`],
//! [`TasmotaSim::remove`]) and check what was asked ([`TasmotaSim::commands`],
//! [`TasmotaSim::wait_for_command`]).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Map, Value, json};

use super::client_id;

/// A simulated Tasmota device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Its device name (`DeviceName`, `dn`).
    pub name: &'static str,
    /// Its MAC, 12 upper-case hex digits, as Tasmota writes it in discovery.
    pub mac: &'static str,
    /// Its MQTT topic (`%topic%`).
    pub topic: &'static str,
    /// Its module or template name (`md`).
    pub model: &'static str,
}

impl Known {
    /// Its Hearth device id, `tasmota:<mac in lower case>`.
    pub fn id(&self) -> String {
        format!("tasmota:{}", self.mac.to_ascii_lowercase())
    }

    /// `cmnd/<topic>/<suffix>`.
    pub fn cmnd(&self, suffix: &str) -> String {
        format!("cmnd/{}/{suffix}", self.topic)
    }

    /// `stat/<topic>/<suffix>`.
    pub fn stat(&self, suffix: &str) -> String {
        format!("stat/{}/{suffix}", self.topic)
    }

    /// `tele/<topic>/<suffix>`.
    pub fn tele(&self, suffix: &str) -> String {
        format!("tele/{}/{suffix}", self.topic)
    }

    /// `tasmota/discovery/<MAC>/<kind>` (`config` or `sensors`).
    pub fn discovery(&self, kind: &str) -> String {
        format!("tasmota/discovery/{}/{kind}", self.mac)
    }
}

/// Sonoff Dual R2: two relays, named by [`DUAL_RELAYS`].
pub const DUAL: Known =
    Known { name: "Kitchen switch", mac: "A4CF12B2C3D4", topic: "tasmota_B2C3D4", model: "Sonoff Dual R2" };
/// The friendly names of the Dual's relays (`FriendlyName1`, `FriendlyName2`).
pub const DUAL_RELAYS: [&str; 2] = ["Ceiling", "Counter"];
/// Athom Plug V2: one relay and a BL0937 energy meter (`ENERGY`); its load draws
/// [`PLUG_LOAD_W`] when on.
pub const PLUG: Known =
    Known { name: "Washing machine", mac: "C8C9A35E6F70", topic: "tasmota_5E6F70", model: "Athom Plug V2" };
/// What the plug's load draws when the relay is on, W.
pub const PLUG_LOAD_W: f64 = 812.0;
/// Athom 15W bulb: an RGBCW light (`lt_st` 5, linked), CT 153..500 mired.
pub const BULB: Known =
    Known { name: "Living room bulb", mac: "E8DB84A1B2C3", topic: "tasmota_A1B2C3", model: "Athom 15W Bulb" };
/// Wemos D1 mini with an AM2301, a BME280 and a button detached from relays (SetOption73).
pub const SENSORS: Known =
    Known { name: "Hallway sensors", mac: "4CEBD6D1E2F3", topic: "tasmota_D1E2F3", model: "Wemos D1 mini" };
/// Every simulated device.
pub const ALL: [Known; 4] = [DUAL, PLUG, BULB, SENSORS];
/// The firmware version the devices claim.
pub const VERSION: &str = "14.4.1";

/// A message to publish.
struct Out {
    topic: String,
    payload: String,
    retain: bool,
}

fn out(topic: String, payload: impl Into<String>, retain: bool) -> Out {
    Out { topic, payload: payload.into(), retain }
}

/// An RGBCW light's channels, as Tasmota keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Light {
    /// `Dimmer`, 0-100.
    pub dimmer: u32,
    /// Hue, 0-360.
    pub hue: u32,
    /// Saturation, 0-100.
    pub saturation: u32,
    /// `CT`, 153-500 mired.
    pub ct: u32,
    /// Whether the white channels are lit (after `CT`) rather than the RGB ones.
    pub white: bool,
}

#[derive(Debug)]
struct Dev {
    known: Known,
    relays: Vec<bool>,
    light: Option<Light>,
    /// The sensors object (`SENSOR`, and `sn` of discovery) without `Time`.
    sensors: Map<String, Value>,
    buttons_detached: bool,
    commands: Vec<(String, String)>,
    online: bool,
}

fn hsv_to_rgb(hue: u32, saturation: u32, value: u32) -> (u8, u8, u8) {
    let (h, s, v) = (f64::from(hue % 360) / 60.0, f64::from(saturation) / 100.0, f64::from(value) / 100.0);
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let to8 = |u: f64| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to8(r), to8(g), to8(b))
}

const TIME: &str = "2025-03-14T09:26:53";

impl Dev {
    fn new(known: Known) -> Dev {
        let mut d = Dev {
            known,
            relays: Vec::new(),
            light: None,
            sensors: Map::new(),
            buttons_detached: false,
            commands: Vec::new(),
            online: false,
        };
        match known.mac {
            m if m == DUAL.mac => d.relays = vec![false, true],
            m if m == PLUG.mac => {
                d.relays = vec![true];
                d.sensors.insert(
                    "ENERGY".into(),
                    json!({"TotalStartTime": "2024-11-02T09:12:44", "Total": 152.318, "Yesterday": 1.204,
                           "Today": 0.386, "Period": 0, "Power": PLUG_LOAD_W, "ApparentPower": 845,
                           "ReactivePower": 236, "Factor": 0.96, "Voltage": 231, "Current": 3.661}),
                );
            }
            m if m == BULB.mac => {
                d.relays = vec![false];
                d.light = Some(Light { dimmer: 80, hue: 30, saturation: 40, ct: 250, white: true });
            }
            _ => {
                d.buttons_detached = true;
                d.sensors.insert("AM2301".into(), json!({"Temperature": 21.4, "Humidity": 45.2, "DewPoint": 9.1}));
                d.sensors.insert(
                    "BME280".into(),
                    json!({"Temperature": 21.9, "Humidity": 44.0, "DewPoint": 9.2, "Pressure": 1013.2}),
                );
                d.sensors.insert("PressureUnit".into(), json!("hPa"));
                d.sensors.insert("TempUnit".into(), json!("C"));
            }
        }
        d
    }

    fn power_key(&self, n: usize) -> String {
        if self.relays.len() == 1 { "POWER".into() } else { format!("POWER{n}") }
    }

    fn word(on: bool) -> &'static str {
        if on { "ON" } else { "OFF" }
    }

    /// `tasmota/discovery/<MAC>/config`, as `TasDiscoverMessage` writes it (discovery v1).
    fn config(&self) -> Value {
        let k = self.known;
        let mut fnames = vec![Value::Null; 8];
        let mut rl = vec![0; 8];
        for i in 0..self.relays.len() {
            rl[i] = if self.light.is_some() { 2 } else { 1 };
            fnames[i] = json!(if k.mac == DUAL.mac { DUAL_RELAYS[i].to_owned() } else { k.name.to_owned() });
        }
        if self.relays.is_empty() {
            fnames[0] = json!(k.name);
        }
        let mut btn = vec![0; 8];
        if self.buttons_detached {
            btn[0] = 1;
        }
        let suffix = &k.mac[6..];
        json!({
            "ip": format!("192.168.1.{}", 20 + u8::from_str_radix(&k.mac[10..], 16).unwrap_or(0) % 200),
            "dn": k.name,
            "fn": fnames,
            "hn": format!("tasmota-{suffix}-{}", u16::from_str_radix(&k.mac[8..], 16).unwrap_or(0) % 10_000),
            "mac": k.mac,
            "md": k.model,
            "ty": 0,
            "if": 0,
            "ofln": "Offline",
            "onln": "Online",
            "state": ["OFF", "ON", "TOGGLE", "HOLD"],
            "sw": VERSION,
            "t": k.topic,
            "ft": "%prefix%/%topic%/",
            "tp": ["cmnd", "stat", "tele"],
            "rl": rl,
            "swc": [-1, -1, -1, -1, -1, -1, -1, -1],
            "swn": [null, null, null, null, null, null, null, null],
            "btn": btn,
            "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0,
                   "73": u8::from(self.buttons_detached), "82": 0, "114": 0, "117": 0},
            "lk": 1,
            "lt_st": if self.light.is_some() { 5 } else { 0 },
            "bat": 0,
            "dslp": 0,
            "sho": [],
            "sht": [],
            "ver": 1,
        })
    }

    /// The `SENSOR` object (also `sn` of discovery and `StatusSNS`): `Time` first; the plug's
    /// meter reads nothing while its relay is off.
    fn sensor_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("Time".into(), json!(TIME));
        for (k, v) in &self.sensors {
            let mut v = v.clone();
            if k == "ENERGY" && self.relays.first() == Some(&false) {
                for field in ["Power", "ApparentPower", "ReactivePower", "Factor", "Current"] {
                    v[field] = json!(0);
                }
            }
            m.insert(k.clone(), v);
        }
        m
    }

    fn light_json(&self, m: &mut Map<String, Value>) {
        let Some(l) = &self.light else { return };
        let (r, g, b) = if l.white { (0, 0, 0) } else { hsv_to_rgb(l.hue, l.saturation, l.dimmer) };
        let (c, w) = if l.white {
            let warm = f64::from(l.ct.clamp(153, 500) - 153) / f64::from(500 - 153);
            let level = f64::from(l.dimmer) / 100.0 * 255.0;
            (((1.0 - warm) * level).round() as u8, (warm * level).round() as u8)
        } else {
            (0, 0)
        };
        let pct = |v: u8| (f64::from(v) * 100.0 / 255.0).round() as u32;
        m.insert("Dimmer".into(), json!(l.dimmer));
        m.insert("Color".into(), json!(format!("{r:02X}{g:02X}{b:02X}{c:02X}{w:02X}")));
        m.insert(
            "HSBColor".into(),
            json!(format!("{},{},{}", l.hue, l.saturation, if l.white { 0 } else { l.dimmer })),
        );
        m.insert("White".into(), json!(if l.white { l.dimmer } else { 0 }));
        m.insert("CT".into(), json!(l.ct));
        m.insert("Channel".into(), json!([pct(r), pct(g), pct(b), pct(c), pct(w)]));
    }

    /// `tele/<topic>/STATE` (also the answer to `STATE` and `StatusSTS`).
    fn state_json(&self, uptime: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("Time".into(), json!(TIME));
        m.insert(
            "Uptime".into(),
            json!(format!("{}T{:02}:{:02}:{:02}", uptime / 86_400, uptime / 3600 % 24, uptime / 60 % 60, uptime % 60)),
        );
        m.insert("UptimeSec".into(), json!(uptime));
        m.insert("Heap".into(), json!(26));
        m.insert("SleepMode".into(), json!("Dynamic"));
        m.insert("Sleep".into(), json!(50));
        m.insert("LoadAvg".into(), json!(19));
        m.insert("MqttCount".into(), json!(1));
        for (i, on) in self.relays.iter().enumerate() {
            m.insert(self.power_key(i + 1), json!(Dev::word(*on)));
        }
        self.light_json(&mut m);
        if self.light.is_some() {
            m.insert("Scheme".into(), json!(0));
            m.insert("Fade".into(), json!("OFF"));
            m.insert("Speed".into(), json!(1));
            m.insert("LedTable".into(), json!("ON"));
        }
        m.insert(
            "Wifi".into(),
            json!({"AP": 1, "SSId": "home", "BSSId": "5C:92:5E:65:43:21", "Channel": 6, "Mode": "11n",
                   "RSSI": 76, "Signal": -62, "LinkCount": 1, "Downtime": "0T00:00:03"}),
        );
        m
    }

    /// The whole light state, as Tasmota answers light commands.
    fn light_result(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(self.power_key(1), json!(Dev::word(self.relays[0])));
        self.light_json(&mut m);
        m
    }

    fn result(&self, body: Map<String, Value>) -> Out {
        out(self.known.stat("RESULT"), Value::Object(body).to_string(), false)
    }

    fn set_power(&mut self, n: usize, on: bool) -> Vec<Out> {
        self.relays[n - 1] = on;
        let key = self.power_key(n);
        let mut body = Map::new();
        body.insert(key.clone(), json!(Dev::word(on)));
        vec![self.result(body), out(self.known.stat(&key), Dev::word(on), false)]
    }

    /// Runs one command as Tasmota does; `Backlog` runs each of its commands.
    fn execute(&mut self, command: &str, arg: &str, uptime: u64) -> Vec<Out> {
        let upper = command.to_ascii_uppercase();
        let unknown = |d: &Dev| {
            let mut m = Map::new();
            m.insert("Command".into(), json!("Unknown"));
            vec![d.result(m)]
        };
        if upper == "BACKLOG" || upper == "BACKLOG0" {
            let mut outs = Vec::new();
            for part in arg.split(';').map(str::trim).filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("NoDelay")) {
                let (c, a) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
                outs.extend(self.execute(c, a.trim(), uptime));
            }
            return outs;
        }
        if let Some(n) = upper.strip_prefix("POWER") {
            let n: usize = if n.is_empty() { 1 } else { n.parse().unwrap_or(0) };
            if n == 0 || n > self.relays.len() {
                return unknown(self);
            }
            let current = self.relays[n - 1];
            let on = match arg.to_ascii_uppercase().as_str() {
                "" => current,
                "ON" | "1" => true,
                "OFF" | "0" => false,
                "TOGGLE" | "2" => !current,
                _ => {
                    let mut m = Map::new();
                    m.insert("Command".into(), json!("Error"));
                    return vec![self.result(m)];
                }
            };
            return self.set_power(n, on);
        }
        match upper.as_str() {
            "STATE" => vec![self.result(self.state_json(uptime))],
            "STATUS" => {
                let (suffix, key, body) = match arg.trim() {
                    "10" => ("STATUS10", "StatusSNS", self.sensor_json()),
                    "8" => ("STATUS8", "StatusSNS", self.sensor_json()),
                    "11" => ("STATUS11", "StatusSTS", self.state_json(uptime)),
                    _ => {
                        let mut m = Map::new();
                        m.insert("DeviceName".into(), json!(self.known.name));
                        m.insert("Topic".into(), json!(self.known.topic));
                        ("STATUS", "Status", m)
                    }
                };
                let mut wrapped = Map::new();
                wrapped.insert(key.into(), Value::Object(body));
                vec![out(self.known.stat(suffix), Value::Object(wrapped).to_string(), false)]
            }
            "DIMMER" | "CT" | "HSBCOLOR" | "HSBCOLOR1" | "HSBCOLOR2" | "HSBCOLOR3" if self.light.is_some() => {
                let mut light =
                    self.light.clone().unwrap_or(Light { dimmer: 0, hue: 0, saturation: 0, ct: 153, white: true });
                let number = |s: &str| s.trim().parse::<u32>().ok();
                let mut power = true;
                match upper.as_str() {
                    "DIMMER" => match number(arg) {
                        Some(v) => {
                            light.dimmer = v.min(100);
                            power = v > 0;
                        }
                        None if arg.is_empty() => power = self.relays[0],
                        None => return unknown(self),
                    },
                    "CT" => match number(arg) {
                        Some(v) => {
                            light.ct = v.clamp(153, 500);
                            light.white = true;
                        }
                        None => return unknown(self),
                    },
                    "HSBCOLOR" => {
                        let parts: Vec<Option<u32>> = arg.split(',').map(number).collect();
                        let [Some(h), Some(s), Some(b)] = parts[..] else { return unknown(self) };
                        (light.hue, light.saturation, light.dimmer, light.white) =
                            (h % 360, s.min(100), b.min(100), false);
                    }
                    _ => {
                        let Some(v) = number(arg) else { return unknown(self) };
                        match upper.as_str() {
                            "HSBCOLOR1" => light.hue = v % 360,
                            "HSBCOLOR2" => light.saturation = v.min(100),
                            _ => light.dimmer = v.min(100),
                        }
                        light.white = false;
                    }
                }
                self.light = Some(light);
                self.relays[0] = power;
                vec![self.result(self.light_result())]
            }
            _ => unknown(self),
        }
    }
}

/// A device's MQTT connection, on a thread of its own.
struct Conn {
    client: Client,
    stop: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Conn {
    /// Closes the connection: politely (DISCONNECT, no last will) or by dropping the socket (the
    /// broker then publishes the last will).
    fn close(mut self, politely: bool) {
        if politely {
            self.stop.store(true, Ordering::SeqCst);
        } else {
            self.cut.store(true, Ordering::SeqCst);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Inner {
    broker: SocketAddr,
    /// The account the devices log in with, if the broker wants one.
    credentials: Option<(String, String)>,
    started: Instant,
    devices: Mutex<BTreeMap<&'static str, Dev>>,
    /// Signals a command received (with `devices`).
    changed: Condvar,
    /// SUBACKs by MAC (the device listens to its commands once it has one).
    subscribed: Mutex<BTreeMap<&'static str, u64>>,
    /// Signals a SUBACK (with `subscribed`).
    subscribed_changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, Dev>> {
        self.devices.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs() + 17
    }

    /// What a device publishes on connecting: its last will online, discovery, state, sensors.
    fn hello(&self, mac: &str) -> Vec<Out> {
        let mut devices = self.lock();
        let Some(d) = devices.get_mut(mac) else { return Vec::new() };
        d.online = true;
        let k = d.known;
        let sn = json!({"sn": Value::Object(d.sensor_json()), "ver": 1});
        let mut outs = vec![
            out(k.tele("LWT"), "Online", true),
            out(k.discovery("config"), d.config().to_string(), true),
            out(k.discovery("sensors"), sn.to_string(), true),
            out(k.tele("STATE"), Value::Object(d.state_json(self.uptime())).to_string(), false),
        ];
        if !d.sensors.is_empty() {
            outs.push(out(k.tele("SENSOR"), Value::Object(d.sensor_json()).to_string(), false));
        }
        outs
    }

    fn command(&self, mac: &str, topic: &str, payload: &[u8]) -> Vec<Out> {
        let mut devices = self.lock();
        let Some(d) = devices.get_mut(mac) else { return Vec::new() };
        let Some(command) = topic.strip_prefix(&format!("cmnd/{}/", d.known.topic)) else { return Vec::new() };
        let arg = String::from_utf8_lossy(payload).trim().to_owned();
        d.commands.push((command.to_owned(), arg.clone()));
        let outs = d.execute(command, &arg, self.uptime());
        drop(devices);
        self.changed.notify_all();
        outs
    }
}

fn publish(client: &Client, outs: Vec<Out>) {
    for o in outs {
        // Blocks only while the request queue is full; the connection thread drains it.
        let _ = client.publish(o.topic, QoS::AtLeastOnce, o.retain, o.payload);
    }
}

fn connect(inner: &Arc<Inner>, known: Known) -> Conn {
    let suffix = &known.mac[6..];
    let mut opts =
        MqttOptions::new(client_id(&format!("DVES_{suffix}")), inner.broker.ip().to_string(), inner.broker.port());
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_clean_session(true);
    opts.set_last_will(LastWill::new(known.tele("LWT"), "Offline", QoS::AtLeastOnce, true));
    if let Some((user, password)) = &inner.credentials {
        opts.set_credentials(user, password);
    }
    let (client, mut connection) = Client::new(opts, 256);
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicBool::new(false));
    let (s, c, i, cl) = (stop.clone(), cut.clone(), inner.clone(), client.clone());
    let thread = std::thread::Builder::new()
        .name(format!("tasmota-sim-{suffix}"))
        .spawn(move || {
            let mut stop_deadline: Option<Instant> = None;
            // What this thread has to send: it also drives the connection, so it never waits for
            // room in the client's queue (it would wait for itself); the rest goes next time round.
            let mut backlog: VecDeque<Out> = VecDeque::new();
            loop {
                while let Some(o) = backlog.pop_front() {
                    if cl.try_publish(o.topic.clone(), QoS::AtLeastOnce, o.retain, o.payload.clone()).is_err() {
                        backlog.push_front(o);
                        break;
                    }
                }
                if c.load(Ordering::SeqCst) {
                    // Power lost: the socket closes without DISCONNECT.
                    return;
                }
                if s.load(Ordering::SeqCst) {
                    let deadline = *stop_deadline.get_or_insert_with(|| {
                        let _ = cl.try_disconnect();
                        Instant::now() + Duration::from_secs(2)
                    });
                    if Instant::now() > deadline {
                        return;
                    }
                }
                match connection.recv_timeout(Duration::from_millis(50)) {
                    Err(rumqttc::RecvTimeoutError::Timeout) => {}
                    Err(rumqttc::RecvTimeoutError::Disconnected) => return,
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        let _ = cl.subscribe(known.cmnd("#"), QoS::AtLeastOnce);
                        backlog.extend(i.hello(known.mac));
                    }
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        *i.subscribed
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .entry(known.mac)
                            .or_default() += 1;
                        i.subscribed_changed.notify_all();
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        backlog.extend(i.command(known.mac, &p.topic, &p.payload));
                    }
                    Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => return,
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => {
                        if s.load(Ordering::SeqCst) {
                            return;
                        }
                        // The broker is away: the next poll reconnects, as Tasmota retries.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
        .expect("spawn a Tasmota device thread");
    Conn { client, stop, cut, thread: Some(thread) }
}

/// Simulated Tasmota devices on an MQTT broker, each on its own connection. Disconnected
/// politely when dropped.
pub struct TasmotaSim {
    inner: Arc<Inner>,
    conns: Mutex<BTreeMap<&'static str, Conn>>,
}

impl std::fmt::Debug for TasmotaSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TasmotaSim").field("broker", &self.inner.broker).finish_non_exhaustive()
    }
}

impl TasmotaSim {
    /// Connects every device of [`ALL`] to `broker` and returns once each listens to its
    /// commands (its discovery messages are queued by then).
    pub fn start(broker: SocketAddr) -> TasmotaSim {
        TasmotaSim::start_with(broker, &ALL)
    }

    /// Connects these devices.
    pub fn start_with(broker: SocketAddr, devices: &[Known]) -> TasmotaSim {
        TasmotaSim::start_as(broker, devices, None)
    }

    /// Connects these devices, logging in as `user` with `password`.
    pub fn start_with_account(broker: SocketAddr, devices: &[Known], user: &str, password: &str) -> TasmotaSim {
        TasmotaSim::start_as(broker, devices, Some((user.to_owned(), password.to_owned())))
    }

    fn start_as(broker: SocketAddr, devices: &[Known], credentials: Option<(String, String)>) -> TasmotaSim {
        let inner = Arc::new(Inner {
            broker,
            credentials,
            started: Instant::now(),
            devices: Mutex::new(devices.iter().map(|k| (k.mac, Dev::new(*k))).collect()),
            changed: Condvar::new(),
            subscribed: Mutex::new(BTreeMap::new()),
            subscribed_changed: Condvar::new(),
        });
        let sim = TasmotaSim { inner, conns: Mutex::new(BTreeMap::new()) };
        for k in devices {
            sim.power_on(k);
        }
        sim
    }

    fn conns(&self) -> MutexGuard<'_, BTreeMap<&'static str, Conn>> {
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn send(&self, known: &Known, outs: Vec<Out>) {
        let conns = self.conns();
        let conn = conns.get(known.mac).unwrap_or_else(|| panic!("{} is powered off", known.name));
        publish(&conn.client, outs);
    }

    fn with<T>(&self, known: &Known, f: impl FnOnce(&mut Dev) -> T) -> T {
        let mut devices = self.inner.lock();
        let d = devices.get_mut(known.mac).unwrap_or_else(|| panic!("no simulated device {}", known.name));
        f(d)
    }

    /// The device powers up: it connects (with its last will), publishes `LWT` `Online`, its
    /// discovery, state and sensors; returns once it listens to its commands.
    pub fn power_on(&self, known: &Known) {
        let before = self
            .inner
            .subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(known.mac)
            .copied()
            .unwrap_or(0);
        let conn = connect(&self.inner, *known);
        if let Some(old) = self.conns().insert(known.mac, conn) {
            old.close(true);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut subs = self.inner.subscribed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while subs.get(known.mac).copied().unwrap_or(0) <= before {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} did not connect to {} within 15 s", known.name, self.inner.broker);
            subs = self
                .inner
                .subscribed_changed
                .wait_timeout(subs, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The device loses power: its connection drops without DISCONNECT, so the broker publishes
    /// its last will (`Offline`, retained).
    pub fn power_off(&self, known: &Known) {
        let conn = self.conns().remove(known.mac).unwrap_or_else(|| panic!("{} is already off", known.name));
        conn.close(false);
        self.with(known, |d| d.online = false);
    }

    /// Whether the device is connected.
    pub fn online(&self, known: &Known) -> bool {
        self.with(known, |d| d.online)
    }

    /// `SetOption19 1`: the device clears its retained discovery messages (empty payloads).
    pub fn remove(&self, known: &Known) {
        self.send(known, vec![out(known.discovery("config"), "", true), out(known.discovery("sensors"), "", true)]);
    }

    /// A press of button `n` (from 1): with the buttons detached (the sensor board),
    /// `{"Button<n>":{"Action":"SINGLE"}}` on `RESULT`; otherwise it toggles relay `n`, which
    /// reports like a `POWER<n>` command.
    pub fn press(&self, known: &Known, n: usize) {
        self.press_with(known, n, "SINGLE");
    }

    /// A press of button `n` with a given multi-press action (`DOUBLE`, `HOLD`...).
    pub fn press_with(&self, known: &Known, n: usize, action: &str) {
        let outs = self.with(known, |d| {
            if d.buttons_detached {
                let mut m = Map::new();
                m.insert(format!("Button{n}"), json!({"Action": action}));
                vec![d.result(m)]
            } else {
                let on = !d.relays[n - 1];
                d.set_power(n, on)
            }
        });
        self.send(known, outs);
    }

    /// New readings: `values` join the sensor's object (`"AM2301"`, `"ENERGY"`) and the device
    /// publishes `tele/<topic>/SENSOR`.
    pub fn set_sensor(&self, known: &Known, sensor: &str, values: Value) {
        let outs = self.with(known, |d| {
            let entry = d.sensors.entry(sensor.to_owned()).or_insert_with(|| json!({}));
            if let (Some(obj), Value::Object(new)) = (entry.as_object_mut(), values) {
                obj.extend(new);
            }
            vec![out(known.tele("SENSOR"), Value::Object(d.sensor_json()).to_string(), false)]
        });
        self.send(known, outs);
    }

    /// Its telemetry now (what it sends every `TelePeriod`): `STATE`, and `SENSOR` if it has
    /// sensors.
    pub fn tele(&self, known: &Known) {
        let uptime = self.inner.uptime();
        let outs = self.with(known, |d| {
            let mut outs = vec![out(known.tele("STATE"), Value::Object(d.state_json(uptime)).to_string(), false)];
            if !d.sensors.is_empty() {
                outs.push(out(known.tele("SENSOR"), Value::Object(d.sensor_json()).to_string(), false));
            }
            outs
        });
        self.send(known, outs);
    }

    /// Publishes anything from the device's connection, for malformed-input tests.
    pub fn publish_raw(&self, known: &Known, topic: &str, payload: &str, retain: bool) {
        self.send(known, vec![out(topic.to_owned(), payload, retain)]);
    }

    /// The discovery config the device publishes.
    pub fn config(&self, known: &Known) -> Value {
        self.with(known, |d| d.config())
    }

    /// Relay `n` (from 1).
    pub fn relay(&self, known: &Known, n: usize) -> bool {
        self.with(known, |d| d.relays[n - 1])
    }

    /// The bulb's light channels.
    pub fn light(&self, known: &Known) -> Light {
        self.with(known, |d| d.light.clone().unwrap_or_else(|| panic!("{} has no light", known.name)))
    }

    /// Every command received so far: (command as sent, e.g. `POWER2` or `Backlog`, payload).
    pub fn commands(&self, known: &Known) -> Vec<(String, String)> {
        self.with(known, |d| d.commands.clone())
    }

    /// The first command received for which `pred(command, payload)` holds, waiting up to
    /// `timeout`; panics with what arrived if none does.
    pub fn wait_for_command(
        &self,
        known: &Known,
        pred: impl Fn(&str, &str) -> bool,
        timeout: Duration,
    ) -> (String, String) {
        let deadline = Instant::now() + timeout;
        let mut devices = self.inner.lock();
        loop {
            let d = devices.get(known.mac).unwrap_or_else(|| panic!("no simulated device {}", known.name));
            if let Some(found) = d.commands.iter().find(|(c, p)| pred(c, p)) {
                return found.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{}: no matching command within {timeout:?}; got {:?}", known.name, d.commands);
            devices =
                self.inner.changed.wait_timeout(devices, left).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }

    /// Disconnects every device politely (no last will). Idempotent.
    pub fn stop(&self) {
        let conns = std::mem::take(&mut *self.conns());
        for (_, c) in conns {
            c.close(true);
        }
    }
}

impl Drop for TasmotaSim {
    fn drop(&mut self) {
        self.stop();
    }
}
