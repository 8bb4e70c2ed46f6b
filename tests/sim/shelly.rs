//! A Shelly Gen2 device, simulated over HTTP and WebSocket with the real RPC wire format.
//!
//! [`ShellySim::start`] binds `127.0.0.1:0` ([`ShellySim::start_on`] a given port, to come back
//! on the same one after a stop) and behaves like a Shelly Plus 1PM ([`Model::Plus1Pm`]: `switch:0`
//! with power and energy metering, `input:0` in button mode) or a Plus 2PM in cover mode
//! ([`Model::Plus2PmCover`]: a calibrated `cover:0` with metering, `input:0` and `input:1` as
//! switches) or a Plus H&T on battery ([`Model::PlusHt`]: temperature, humidity, battery; a test
//! makes it sleep by dropping it and wake by starting it again), firmware 1.0.8:
//!
//! - HTTP: `POST /rpc` with a JSON-RPC frame (answered with a frame), `GET /rpc/<Method>?k=v`
//!   (answered with the result alone, or an HTTP error with `{"code", "message"}`), `GET /shelly`
//!   (the device info), and the WebSocket at `/rpc`;
//! - methods: `Shelly.GetDeviceInfo`, `Shelly.GetConfig`, `Shelly.GetStatus`, `Sys.GetStatus`,
//!   `Switch.GetStatus`, `Switch.Set {id, on}`, `Switch.Toggle {id}` (1PM), `Cover.GetStatus`,
//!   `Cover.GoToPosition {id, pos}`, `Cover.Open`, `Cover.Close`, `Cover.Stop` (2PM); anything
//!   else is error 404 `No handler for <method>`;
//! - with a password ([`ShellyOptions::with_password`]), every method but
//!   `Shelly.GetDeviceInfo` needs digest authentication (user `admin`, realm the device id,
//!   SHA-256): over HTTP a `401` with `WWW-Authenticate: Digest qop="auth", realm, nonce,
//!   algorithm=SHA-256`, checked against `Authorization` with `HA2 = H(method:uri)`; over the
//!   WebSocket (and in a POSTed frame) an error 401 whose message is the JSON challenge
//!   `{auth_type, nonce, nc, realm, algorithm}`, checked against the request's `auth` object with
//!   `HA2 = H("dummy_method:dummy_uri")`. The digests are computed here with `sha2` directly,
//!   not with the adapter's code;
//! - a WebSocket client that sent a request with a `src` (and passed authentication) gets
//!   `NotifyStatus` (what changed) when the state changes and `NotifyEvent` for button pushes,
//!   addressed to that `src`.
//!
//! Tests read what it was asked ([`ShellySim::calls`], [`ShellySim::wait_for_call`]), use it
//! physically ([`ShellySim::toggle_physically`], [`ShellySim::set_power`],
//! [`ShellySim::press_button`], [`ShellySim::move_cover_physically`], [`ShellySim::rename`]),
//! make it misbehave
//! ([`ShellySim::freeze`]: sockets stay open, nothing is answered or sent;
//! [`ShellySim::send_raw`]: a frame of any text to the subscribed clients), and announce it over
//! mDNS ([`ShellySim::announce`], `_shelly._tcp`; [`ShellySim::announce_http`], `_http._tcp`),
//! with the TXT records a real device sends. Dropping it closes the listener and every
//! connection.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tungstenite::Message;

use super::http::{self, Control, Request, Server, WhileFrozen};

/// The firmware every simulated device runs.
const FW_ID: &str = "20230913-112003/1.0.8-gb2b1d2a";
const VER: &str = "1.0.8";
/// The mains voltage the meters read.
const VOLTAGE: f64 = 230.4;
/// How often connection threads look at their queue and the switches (stopped, frozen).
const TICK: Duration = Duration::from_millis(20);

/// Which device to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Shelly Plus 1PM (`SNSW-001P16EU`): `switch:0` with metering, `input:0` in button mode.
    Plus1Pm,
    /// Shelly Plus 2PM (`SNSW-002P16EU`) in cover mode: calibrated `cover:0` with metering,
    /// `input:0` and `input:1` as switches.
    Plus2PmCover,
    /// Shelly Plus H&T (`SNSN-0013A`) on battery: `temperature:0`, `humidity:0` and
    /// `devicepower:0`. It sleeps: a test stops it (drop) and starts it again (a wake) with new
    /// readings ([`ShellyOptions::with_reading`]); its status says its `sys.wakeup_period`.
    PlusHt,
}

/// How the simulated device is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellyOptions {
    /// The model.
    pub model: Model,
    /// The device id, `<app>-<mac>` in lowercase: also its mDNS instance name and realm.
    pub id: String,
    /// The password (user `admin`); `None`: no authentication.
    pub password: Option<String>,
    /// The name the user gave it (`sys.device.name`), if any.
    pub name: Option<String>,
    /// What a Plus H&T reads: temperature (°C) and humidity (%).
    pub reading: (f64, f64),
    /// How often a Plus H&T wakes, in seconds (`sys.wakeup_period`).
    pub wakeup_period: u64,
}

impl Default for ShellyOptions {
    fn default() -> ShellyOptions {
        ShellyOptions::plus_1pm()
    }
}

impl ShellyOptions {
    /// A Plus 1PM, `shellyplus1pm-a8032ab12345`, no password, no name.
    pub fn plus_1pm() -> ShellyOptions {
        ShellyOptions {
            model: Model::Plus1Pm,
            id: "shellyplus1pm-a8032ab12345".into(),
            password: None,
            name: None,
            reading: (0.0, 0.0),
            wakeup_period: 0,
        }
    }

    /// A Plus 2PM in cover mode, `shellyplus2pm-a8032ab54321`, no password, no name.
    pub fn plus_2pm_cover() -> ShellyOptions {
        ShellyOptions {
            model: Model::Plus2PmCover,
            id: "shellyplus2pm-a8032ab54321".into(),
            password: None,
            name: None,
            reading: (0.0, 0.0),
            wakeup_period: 0,
        }
    }

    /// A Plus H&T, `shellyplusht-08b61fcb7f3c`, reading 21.5 °C and 48 %, waking every 600 s.
    pub fn plus_ht() -> ShellyOptions {
        ShellyOptions {
            model: Model::PlusHt,
            id: "shellyplusht-08b61fcb7f3c".into(),
            password: None,
            name: None,
            reading: (21.5, 48.0),
            wakeup_period: 600,
        }
    }

    /// The same reading `celsius` and `humidity` (a Plus H&T).
    pub fn with_reading(mut self, celsius: f64, humidity: f64) -> ShellyOptions {
        self.reading = (celsius, humidity);
        self
    }

    /// The same waking every `seconds` (a Plus H&T).
    pub fn with_wakeup_period(mut self, seconds: u64) -> ShellyOptions {
        self.wakeup_period = seconds;
        self
    }

    /// The same with another device id.
    pub fn with_id(mut self, id: &str) -> ShellyOptions {
        self.id = id.to_owned();
        self
    }

    /// The same, protected by `password`.
    pub fn with_password(mut self, password: &str) -> ShellyOptions {
        self.password = Some(password.to_owned());
        self
    }

    /// The same with a device name.
    pub fn with_name(mut self, name: &str) -> ShellyOptions {
        self.name = Some(name.to_owned());
        self
    }

    fn app(&self) -> &'static str {
        match self.model {
            Model::Plus1Pm => "Plus1PM",
            Model::Plus2PmCover => "Plus2PM",
            Model::PlusHt => "PlusHT",
        }
    }

    fn mac(&self) -> String {
        let tail = self.id.rsplit('-').next().unwrap_or_default();
        if tail.len() == 12 && tail.chars().all(|c| c.is_ascii_hexdigit()) {
            tail.to_ascii_uppercase()
        } else {
            "A8032AB12345".into()
        }
    }
}

/// A WebSocket client of the device.
struct Client {
    conn: u64,
    /// Set by its first authorised request with a `src`: it then gets notifications.
    src: Option<String>,
    tx: Sender<String>,
}

struct Shared {
    opts: ShellyOptions,
    control: Arc<Control>,
    /// The status of every component, as `Shelly.GetStatus` returns it.
    status: Mutex<Value>,
    /// The device's name (`sys.device.name`), which [`ShellySim::rename`] changes.
    name: Mutex<Option<String>>,
    /// The load on the switch (W), drawn while it is on.
    load_w: Mutex<f64>,
    calls: Mutex<Vec<(String, Value)>>,
    calls_changed: Condvar,
    clients: Mutex<Vec<Client>>,
    nonces: Mutex<HashSet<u64>>,
    next_nonce: AtomicU64,
}

/// A simulated Shelly Gen2 device; see the module docs.
pub struct ShellySim {
    shared: Arc<Shared>,
    /// Stopped (the listener and every connection closed) when the simulator is dropped.
    server: Server,
}

impl std::fmt::Debug for ShellySim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellySim")
            .field("id", &self.shared.opts.id)
            .field("port", &self.port())
            .finish_non_exhaustive()
    }
}

impl ShellySim {
    /// Starts the device on a free port of 127.0.0.1.
    pub fn start(opts: ShellyOptions) -> ShellySim {
        ShellySim::start_on(0, opts)
    }

    /// Starts the device on `port` of 127.0.0.1 (0: a free one); panics when it is taken.
    pub fn start_on(port: u16, opts: ShellyOptions) -> ShellySim {
        let control = Arc::new(Control::new(TICK));
        let shared = Arc::new(Shared {
            status: Mutex::new(initial_status(&opts)),
            name: Mutex::new(opts.name.clone()),
            opts,
            control: control.clone(),
            load_w: Mutex::new(60.0),
            calls: Mutex::new(Vec::new()),
            calls_changed: Condvar::new(),
            clients: Mutex::new(Vec::new()),
            nonces: Mutex::new(HashSet::new()),
            next_nonce: AtomicU64::new(unix_time() as u64),
        });
        let s = shared.clone();
        let server = Server::start(port, "shelly-sim", control, move |conn, stream| serve(&s, conn, stream));
        ShellySim { shared, server }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port())
    }

    /// Its device id (`shellyplus1pm-a8032ab12345`).
    pub fn id(&self) -> &str {
        &self.shared.opts.id
    }

    /// Its Hearth device id, `shelly:<id>`.
    pub fn device_id(&self) -> String {
        format!("shelly:{}", self.shared.opts.id)
    }

    /// The TXT records a real device announces.
    fn txt(&self) -> Vec<(&'static str, String)> {
        vec![
            ("gen", "2".into()),
            ("app", self.shared.opts.app().into()),
            ("ver", VER.into()),
            ("id", self.shared.opts.id.clone()),
            ("fw_id", FW_ID.into()),
            ("arch", "esp8266".into()),
        ]
    }

    fn announce_as(&self, browser: &hearth_mdns::Browser, service_type: &str) {
        let txt = self.txt();
        let txt: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let id = &self.shared.opts.id;
        browser
            .announce(service_type, id, &format!("{id}.local."), IpAddr::V4(Ipv4Addr::LOCALHOST), self.port(), &txt)
            .expect("announce the Shelly simulator");
    }

    /// Announces `_shelly._tcp` as `<id>` on `<id>.local.` at 127.0.0.1 with the real TXT
    /// records (`gen=2`, `app`, `ver`, `id`, `fw_id`, `arch`).
    pub fn announce(&self, browser: &hearth_mdns::Browser) {
        self.announce_as(browser, "_shelly._tcp.local.");
    }

    /// Announces `_http._tcp` the same way (real devices announce both).
    pub fn announce_http(&self, browser: &hearth_mdns::Browser) {
        self.announce_as(browser, "_http._tcp.local.");
    }

    /// Every RPC call received, in order, over any transport (those refused for a missing
    /// password too): method and params (`null` without).
    pub fn calls(&self) -> Vec<(String, Value)> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the calls received; panics with them after `timeout`.
    pub fn wait_for_calls(&self, timeout: Duration, pred: impl Fn(&[(String, Value)]) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut calls = self.shared.calls.lock().unwrap();
        while !pred(&calls) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "Shelly simulator: the calls expected did not arrive within {timeout:?}: {calls:?}"
            );
            calls = self.shared.calls_changed.wait_timeout(calls, left).unwrap().0;
        }
    }

    /// The params of the latest call of `method`, waiting up to `timeout` for one.
    pub fn wait_for_call(&self, method: &str, timeout: Duration) -> Value {
        self.wait_for_calls(timeout, |calls| calls.iter().any(|(m, _)| m == method));
        self.calls().into_iter().rev().find(|(m, _)| m == method).map(|(_, p)| p).unwrap()
    }

    /// How many WebSocket clients get notifications.
    pub fn subscribers(&self) -> usize {
        self.shared.clients.lock().unwrap().iter().filter(|c| c.src.is_some()).count()
    }

    /// Waits until some WebSocket client gets notifications.
    pub fn wait_for_subscriber(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.subscribers() == 0 {
            assert!(Instant::now() < deadline, "Shelly simulator: no WebSocket client subscribed within {timeout:?}");
            std::thread::sleep(TICK);
        }
    }

    /// The whole status, as `Shelly.GetStatus` returns it.
    pub fn status(&self) -> Value {
        self.shared.status.lock().unwrap().clone()
    }

    /// Whether the switch is on (Plus 1PM).
    pub fn is_on(&self) -> bool {
        self.status()["switch:0"]["output"].as_bool().unwrap_or(false)
    }

    /// The cover's position (Plus 2PM).
    pub fn cover_position(&self) -> i64 {
        self.status()["cover:0"]["current_pos"].as_i64().unwrap_or(-1)
    }

    /// Flips the switch as its wall button would (Plus 1PM): notifies `output`, `source`
    /// `button`, and the power drawn.
    pub fn toggle_physically(&self) {
        assert_eq!(self.shared.opts.model, Model::Plus1Pm, "only the Plus 1PM has a switch");
        let on = !self.is_on();
        self.shared.set_output(on, "button");
    }

    /// Sets the load on the switch (W): the power it reports while on (Plus 1PM).
    pub fn set_power(&self, watts: f64) {
        assert_eq!(self.shared.opts.model, Model::Plus1Pm, "only the Plus 1PM meters a switch");
        *self.shared.load_w.lock().unwrap() = watts;
        if self.is_on() {
            self.shared.patch("switch:0", self.shared.meter(watts));
        }
    }

    /// A button push on `input:0` (`single_push`, `double_push`, `triple_push`, `long_push`,
    /// `btn_down`, `btn_up`): a `NotifyEvent`.
    pub fn press(&self, event: &str) {
        let ts = unix_time();
        self.shared.notify(
            "NotifyEvent",
            json!({"ts": ts, "events": [{"component": "input:0", "id": 0, "event": event, "ts": ts}]}),
        );
    }

    /// A single push on `input:0`.
    pub fn press_button(&self) {
        self.press("single_push");
    }

    /// Moves the cover as its wall switch would (Plus 2PM), to `pos` (0 closed, 100 open).
    pub fn move_cover_physically(&self, pos: i64) {
        assert_eq!(self.shared.opts.model, Model::Plus2PmCover, "only the Plus 2PM drives a cover");
        self.shared.move_cover(pos, "switch");
    }

    /// Renames the device (`sys.device.name`) as its web page would: a `NotifyEvent` with
    /// `config_changed` follows.
    pub fn rename(&self, name: &str) {
        *self.shared.name.lock().unwrap() = Some(name.to_owned());
        let ts = unix_time();
        self.shared.notify(
            "NotifyEvent",
            json!({"ts": ts, "events": [{"component": "sys", "event": "config_changed", "restart_required": false,
                                          "ts": ts, "cfg_rev": 11}]}),
        );
    }

    /// Freezes the device (`true`): connections are accepted and kept open, but nothing is
    /// answered or sent until it thaws (`false`).
    pub fn freeze(&self, frozen: bool) {
        self.shared.control.freeze(frozen);
    }

    /// Sends `text` as it is to every subscribed WebSocket client (bad frames for tests).
    pub fn send_raw(&self, text: &str) {
        for c in self.shared.clients.lock().unwrap().iter().filter(|c| c.src.is_some()) {
            let _ = c.tx.send(text.to_owned());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The device's data
// ------------------------------------------------------------------------------------------------

fn unix_time() -> f64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    (t * 100.0).round() / 100.0
}

fn meter_block(energy_wh: f64) -> Value {
    json!({"total": energy_wh, "by_minute": [0.0, 0.0, 0.0], "minute_ts": unix_time() as u64})
}

fn initial_status(opts: &ShellyOptions) -> Value {
    let mac = opts.mac();
    let mut status = json!({
        "ble": {},
        "cloud": {"connected": false},
        "mqtt": {"connected": false},
        "sys": {"mac": mac, "restart_required": false, "time": "12:00", "unixtime": unix_time() as u64,
                "uptime": 1234, "ram_size": 246680, "ram_free": 141636, "fs_size": 458752, "fs_free": 135168,
                "cfg_rev": 10, "kvs_rev": 0, "schedule_rev": 0, "webhook_rev": 0, "available_updates": {}},
        "wifi": {"sta_ip": "127.0.0.1", "status": "got ip", "ssid": "Home", "rssi": -58},
        "ws": {"connected": false},
    });
    let components = match opts.model {
        Model::Plus1Pm => json!({
            "input:0": {"id": 0, "state": null},
            "switch:0": {"id": 0, "source": "init", "output": false, "apower": 0.0, "voltage": VOLTAGE,
                         "current": 0.0, "aenergy": meter_block(1234.5),
                         "temperature": {"tC": 41.2, "tF": 106.2}},
        }),
        Model::PlusHt => {
            let (t, rh) = opts.reading;
            status["sys"]["wakeup_period"] = json!(opts.wakeup_period);
            status["sys"]["wakeup_reason"] = json!({"boot": "deepsleep_wake", "cause": "status_update"});
            json!({
                "temperature:0": {"id": 0, "tC": t, "tF": ((t * 9.0 / 5.0 + 32.0) * 10.0).round() / 10.0},
                "humidity:0": {"id": 0, "rh": rh},
                "devicepower:0": {"id": 0, "battery": {"V": 5.86, "percent": 87}, "external": {"present": false}},
            })
        }
        Model::Plus2PmCover => json!({
            "input:0": {"id": 0, "state": false},
            "input:1": {"id": 1, "state": false},
            "cover:0": {"id": 0, "source": "init", "state": "stopped", "apower": 0.0, "voltage": VOLTAGE,
                        "current": 0.0, "pf": 0.0, "freq": 50.0, "aenergy": meter_block(321.0),
                        "temperature": {"tC": 38.5, "tF": 101.3}, "pos_control": true,
                        "last_direction": null, "current_pos": 50},
        }),
    };
    if let (Some(s), Value::Object(c)) = (status.as_object_mut(), components) {
        s.extend(c);
    }
    status
}

impl Shared {
    fn device_info(&self) -> Value {
        let o = &self.opts;
        let name = self.name.lock().unwrap().clone();
        let mut info = json!({
            "name": name, "id": o.id, "mac": o.mac(), "slot": 0,
            "model": match o.model {
                Model::Plus1Pm => "SNSW-001P16EU",
                Model::Plus2PmCover => "SNSW-002P16EU",
                Model::PlusHt => "SNSN-0013A",
            },
            "gen": 2, "fw_id": FW_ID, "ver": VER, "app": o.app(),
            "auth_en": o.password.is_some(), "auth_domain": o.password.as_ref().map(|_| o.id.clone()),
        });
        if o.model == Model::Plus2PmCover {
            info["profile"] = json!("cover");
        }
        info
    }

    fn config(&self) -> Value {
        let o = &self.opts;
        let name = self.name.lock().unwrap().clone();
        let mut config = json!({
            "ble": {"enable": true, "rpc": {"enable": true}, "observer": {"enable": false}},
            "cloud": {"enable": false, "server": "iot.shelly.cloud:6012/jrpc"},
            "mqtt": {"enable": false, "server": null, "client_id": o.id, "user": null, "ssl_ca": null,
                     "topic_prefix": o.id, "rpc_ntf": true, "status_ntf": false, "use_client_cert": false,
                     "enable_rpc": true, "enable_control": true},
            "sys": {"device": {"name": name, "mac": o.mac(), "fw_id": FW_ID, "discoverable": true,
                               "eco_mode": false, "addon_type": null},
                    "location": {"tz": "Europe/Berlin", "lat": 52.52, "lon": 13.40},
                    "debug": {"level": 2, "file_level": null, "mqtt": {"enable": false},
                              "websocket": {"enable": false}, "udp": {"addr": null}},
                    "ui_data": {}, "rpc_udp": {"dst_addr": null, "listen_port": null},
                    "sntp": {"server": "time.google.com"}, "cfg_rev": 10},
            "wifi": {"ap": {"ssid": o.id.clone(), "is_open": true, "enable": false},
                     "sta": {"ssid": "Home", "is_open": false, "enable": true, "ipv4mode": "dhcp"}},
            "ws": {"enable": false, "server": null, "ssl_ca": "ca.pem"},
        });
        let components = match o.model {
            Model::Plus1Pm => json!({
                "input:0": {"id": 0, "name": null, "type": "button", "enable": true, "invert": false,
                            "factory_reset": true},
                "switch:0": {"id": 0, "name": null, "in_mode": "detached", "initial_state": "match_input",
                             "auto_on": false, "auto_on_delay": 60.0, "auto_off": false, "auto_off_delay": 60.0,
                             "power_limit": 4480, "voltage_limit": 280, "autorecover_voltage_errors": false,
                             "current_limit": 16.0},
            }),
            Model::PlusHt => json!({
                "temperature:0": {"id": 0, "name": null, "report_thr_C": 1.0, "offset_C": 0.0},
                "humidity:0": {"id": 0, "name": null, "report_thr": 5.0, "offset": 0.0},
                "devicepower:0": {"id": 0},
                "ht_ui": {"temperature_unit": "C"},
            }),
            Model::Plus2PmCover => json!({
                "input:0": {"id": 0, "name": null, "type": "switch", "enable": true, "invert": false,
                            "factory_reset": true},
                "input:1": {"id": 1, "name": null, "type": "switch", "enable": true, "invert": false},
                "cover:0": {"id": 0, "name": null, "motor": {"idle_power_thr": 2.0, "idle_confirm_period": 0.25},
                            "maxtime_open": 60.0, "maxtime_close": 60.0, "initial_state": "stopped",
                            "invert_directions": false, "in_mode": "dual", "swap_inputs": false,
                            "safety_switch": {"enable": false, "direction": "both", "action": "stop",
                                              "allowed_move": null},
                            "power_limit": 2800, "voltage_limit": 280, "undervoltage_limit": 0,
                            "current_limit": 10.0,
                            "obstruction_detection": {"enable": false, "direction": "both", "action": "stop",
                                                      "power_thr": 1000, "holdoff": 1.0}},
            }),
        };
        if let (Some(c), Value::Object(extra)) = (config.as_object_mut(), components) {
            c.extend(extra);
        }
        config
    }

    fn frame_from(&self, dst: Option<&str>, mut frame: Map<String, Value>) -> String {
        frame.insert("src".into(), self.opts.id.clone().into());
        if let Some(dst) = dst {
            frame.insert("dst".into(), dst.into());
        }
        Value::Object(frame).to_string()
    }

    /// Sends a notification to every subscribed client, unless frozen.
    fn notify(&self, method: &str, params: Value) {
        if self.control.frozen() {
            return;
        }
        for c in self.clients.lock().unwrap().iter() {
            if let Some(src) = &c.src {
                let mut frame = Map::new();
                frame.insert("method".into(), method.into());
                frame.insert("params".into(), params.clone());
                let _ = c.tx.send(self.frame_from(Some(src), frame));
            }
        }
    }

    /// Merges `fields` into a component's status and notifies what changed.
    fn patch(&self, component: &str, fields: Value) {
        let id = component.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
        let mut changed = Map::new();
        changed.insert("id".into(), id.into());
        {
            let mut status = self.status.lock().unwrap();
            let Some(target) = status.get_mut(component).and_then(Value::as_object_mut) else { return };
            if let Value::Object(fields) = fields {
                for (k, v) in fields {
                    if target.get(&k) != Some(&v) {
                        target.insert(k.clone(), v.clone());
                        changed.insert(k, v);
                    }
                }
            }
        }
        if changed.len() > 1 {
            let mut params = Map::new();
            params.insert("ts".into(), unix_time().into());
            params.insert(component.into(), Value::Object(changed));
            self.notify("NotifyStatus", Value::Object(params));
        }
    }

    fn meter(&self, watts: f64) -> Value {
        json!({"apower": watts, "current": ((watts / VOLTAGE) * 1000.0).round() / 1000.0})
    }

    fn set_output(&self, on: bool, source: &str) -> bool {
        let was_on = self.status.lock().unwrap()["switch:0"]["output"].as_bool().unwrap_or(false);
        let watts = if on { *self.load_w.lock().unwrap() } else { 0.0 };
        let mut fields = json!({"output": on, "source": source});
        if let (Some(f), Value::Object(m)) = (fields.as_object_mut(), self.meter(watts)) {
            f.extend(m);
        }
        self.patch("switch:0", fields);
        was_on
    }

    fn move_cover(&self, pos: i64, source: &str) {
        let now = self.status.lock().unwrap()["cover:0"]["current_pos"].as_i64().unwrap_or(0);
        if pos == now {
            self.patch("cover:0", json!({"state": end_state(pos), "source": source}));
            return;
        }
        let (moving, direction) = if pos > now { ("opening", "open") } else { ("closing", "close") };
        self.patch("cover:0", json!({"state": moving, "source": source, "apower": 85.0}));
        self.patch(
            "cover:0",
            json!({"state": end_state(pos), "current_pos": pos, "last_direction": direction, "apower": 0.0}),
        );
    }

    fn record(&self, method: &str, params: &Value) {
        self.calls.lock().unwrap().push((method.to_owned(), params.clone()));
        self.calls_changed.notify_all();
    }

    // --------------------------------------------------------------------------------------------
    // Methods
    // --------------------------------------------------------------------------------------------

    /// Carries out a method (authentication already checked).
    fn call(&self, method: &str, params: &Value, source: &str) -> Result<Value, (i64, String)> {
        let cover = self.opts.model == Model::Plus2PmCover;
        let switch = self.opts.model == Model::Plus1Pm;
        let id = params.get("id").and_then(Value::as_i64);
        let component = |kind: &str, present: bool| -> Result<(), (i64, String)> {
            match id {
                None => Err((-103, "Missing required argument 'id'!".into())),
                Some(0) if present => Ok(()),
                Some(i) => Err((-105, format!("Argument 'id', value {i} not found! ({kind})"))),
            }
        };
        match method {
            "Shelly.GetDeviceInfo" => Ok(self.device_info()),
            "Shelly.GetConfig" => Ok(self.config()),
            "Shelly.GetStatus" => Ok(self.status.lock().unwrap().clone()),
            "Sys.GetStatus" => Ok(self.status.lock().unwrap()["sys"].clone()),
            "Switch.GetStatus" => {
                component("switch", switch)?;
                Ok(self.status.lock().unwrap()["switch:0"].clone())
            }
            "Switch.Set" => {
                component("switch", switch)?;
                let on = params
                    .get("on")
                    .and_then(Value::as_bool)
                    .ok_or((-103, "Missing required argument 'on'!".to_owned()))?;
                Ok(json!({"was_on": self.set_output(on, source)}))
            }
            "Switch.Toggle" => {
                component("switch", switch)?;
                let on = !self.status.lock().unwrap()["switch:0"]["output"].as_bool().unwrap_or(false);
                Ok(json!({"was_on": self.set_output(on, source)}))
            }
            "Cover.GetStatus" => {
                component("cover", cover)?;
                Ok(self.status.lock().unwrap()["cover:0"].clone())
            }
            "Cover.GoToPosition" => {
                component("cover", cover)?;
                let pos = params
                    .get("pos")
                    .and_then(Value::as_i64)
                    .filter(|p| (0..=100).contains(p))
                    .ok_or((-103, "Invalid argument 'pos'!".to_owned()))?;
                self.move_cover(pos, source);
                Ok(Value::Null)
            }
            "Cover.Open" | "Cover.Close" => {
                component("cover", cover)?;
                self.move_cover(if method == "Cover.Open" { 100 } else { 0 }, source);
                Ok(Value::Null)
            }
            "Cover.Stop" => {
                component("cover", cover)?;
                self.patch("cover:0", json!({"state": "stopped", "source": source}));
                Ok(Value::Null)
            }
            other => Err((404, format!("No handler for {other}"))),
        }
    }

    // --------------------------------------------------------------------------------------------
    // Authentication (computed here with sha2, independently of the adapter's code)
    // --------------------------------------------------------------------------------------------

    fn new_nonce(&self) -> u64 {
        let n = self.next_nonce.fetch_add(1, Ordering::SeqCst);
        self.nonces.lock().unwrap().insert(n);
        n
    }

    fn issued(&self, nonce: u64) -> bool {
        self.nonces.lock().unwrap().contains(&nonce)
    }

    fn ha1(&self) -> Option<String> {
        self.opts.password.as_ref().map(|p| sha256(&format!("admin:{}:{p}", self.opts.id)))
    }

    fn www_authenticate(&self) -> String {
        format!("Digest qop=\"auth\", realm=\"{}\", nonce=\"{}\", algorithm=SHA-256", self.opts.id, self.new_nonce())
    }

    fn ws_challenge(&self) -> String {
        json!({"auth_type": "digest", "nonce": self.new_nonce(), "nc": 1, "realm": self.opts.id,
               "algorithm": "SHA-256"})
        .to_string()
    }

    /// Whether an `Authorization: Digest ...` header answers one of our challenges for
    /// `method` on `uri`.
    fn http_authorized(&self, header: Option<&str>, method: &str, uri: &str) -> bool {
        let Some(ha1) = self.ha1() else { return true };
        let Some(params) = header.and_then(|h| h.strip_prefix("Digest ")).map(header_params) else { return false };
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
        let nonce_ok = get("nonce").parse::<u64>().is_ok_and(|n| self.issued(n));
        let ha2 = sha256(&format!("{method}:{uri}"));
        let expected = sha256(&format!("{ha1}:{}:{}:{}:auth:{ha2}", get("nonce"), get("nc"), get("cnonce")));
        get("username") == "admin"
            && get("realm") == self.opts.id
            && get("uri") == uri
            && get("qop") == "auth"
            && get("algorithm").eq_ignore_ascii_case("SHA-256")
            && nonce_ok
            && get("response") == expected
    }

    /// Whether a request frame's `auth` object answers one of our WebSocket challenges.
    fn frame_authorized(&self, auth: Option<&Value>) -> bool {
        let Some(ha1) = self.ha1() else { return true };
        let Some(auth) = auth.and_then(Value::as_object) else { return false };
        let text = |k: &str| match auth.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let nonce_ok = text("nonce").parse::<u64>().is_ok_and(|n| self.issued(n));
        let ha2 = sha256("dummy_method:dummy_uri");
        let expected = sha256(&format!("{ha1}:{}:1:{}:auth:{ha2}", text("nonce"), text("cnonce")));
        text("username") == "admin"
            && text("realm") == self.opts.id
            && text("algorithm") == "SHA-256"
            && nonce_ok
            && text("response") == expected
    }

    /// Answers a request frame (WebSocket, or POSTed): the response frame, and the `src` it
    /// subscribes when it was let in.
    fn answer_frame(&self, text: &str, source: &str) -> (Option<String>, Option<String>) {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return (None, None);
        };
        let id = frame.get("id").cloned().unwrap_or(Value::Null);
        let src = frame.get("src").and_then(Value::as_str).map(str::to_owned);
        let Some(method) = frame.get("method").and_then(Value::as_str) else {
            return (None, None);
        };
        let params = frame.get("params").cloned().unwrap_or(Value::Null);
        self.record(method, &params);
        let mut response = Map::new();
        response.insert("id".into(), id.clone());
        let result = if method != "Shelly.GetDeviceInfo" && !self.frame_authorized(frame.get("auth")) {
            Err((401, self.ws_challenge()))
        } else {
            self.call(method, &params, source)
        };
        let let_in = !matches!(result, Err((401, _)));
        match result {
            Ok(r) => {
                response.insert("result".into(), r);
            }
            Err((code, message)) => {
                response.insert("error".into(), json!({"code": code, "message": message}));
            }
        }
        if id.is_null() {
            return (None, if let_in { src } else { None });
        }
        (Some(self.frame_from(src.as_deref(), response)), if let_in { src } else { None })
    }
}

fn end_state(pos: i64) -> &'static str {
    match pos {
        100 => "open",
        0 => "closed",
        _ => "stopped",
    }
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `k=v, k="v"` pairs of an `Authorization` header (no escapes: ours never have them).
fn header_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { break };
        let key = key.trim().trim_start_matches(',').trim().to_owned();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (quoted.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(key, value);
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

// ------------------------------------------------------------------------------------------------
// HTTP and WebSocket
// ------------------------------------------------------------------------------------------------

/// The headers of every answer, as the device sends them.
const HEADERS: [(&str, &str); 2] = [("Server", "ShellyHTTP/1.0.0"), ("Content-Type", "application/json")];

fn respond(stream: &mut TcpStream, status: u16, body: &str) {
    http::respond(stream, status, &HEADERS, body);
}

/// `401` with a new digest challenge.
fn challenge(stream: &mut TcpStream, shared: &Shared) {
    let challenge = shared.www_authenticate();
    let [server, content_type] = HEADERS;
    http::respond(stream, 401, &[server, content_type, ("WWW-Authenticate", &challenge)], "");
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One connection: an HTTP request, or a WebSocket.
fn serve(shared: &Arc<Shared>, conn: u64, mut stream: TcpStream) {
    let Some(request) = http::read_request(&mut stream, &shared.control) else { return };
    // Frozen: the request was read; no answer until thawed.
    if !shared.control.wait_thawed() {
        return;
    }
    if request.is_websocket_upgrade() && request.target == "/rpc" {
        return websocket(shared, conn, stream, &request);
    }
    match (request.method.as_str(), request.path()) {
        ("POST", "/rpc") => {
            let text = String::from_utf8_lossy(&request.body).into_owned();
            let method = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|f| f.get("method").and_then(Value::as_str).map(str::to_owned));
            let Some(method) = method else {
                return respond(&mut stream, 400, r#"{"code": -32700, "message": "Invalid JSON-RPC frame"}"#);
            };
            let header = request.header("authorization");
            // A frame may carry its own `auth` object instead of the header.
            let frame_auth = serde_json::from_str::<Value>(&text).ok().and_then(|f| f.get("auth").cloned());
            let open = method == "Shelly.GetDeviceInfo"
                || shared.http_authorized(header, "POST", "/rpc")
                || (frame_auth.is_some() && shared.frame_authorized(frame_auth.as_ref()));
            if !open {
                let params = serde_json::from_str::<Value>(&text).ok().and_then(|f| f.get("params").cloned());
                shared.record(&method, &params.unwrap_or(Value::Null));
                return challenge(&mut stream, shared);
            }
            // Authorised: answer as over the WebSocket, without its own check.
            let mut frame: Map<String, Value> = serde_json::from_str(&text).unwrap_or_default();
            frame.remove("auth");
            let (answer, failed) = shared.answer_frame_open(&Value::Object(frame), "HTTP_in");
            respond(&mut stream, if failed { 500 } else { 200 }, &answer);
        }
        ("GET", "/shelly") => respond(&mut stream, 200, &shared.device_info().to_string()),
        ("GET", p) if p.starts_with("/rpc/") => {
            let method = &p["/rpc/".len()..];
            let mut params = Map::new();
            for pair in request.query().split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_decode(v);
                params.insert(percent_decode(k), serde_json::from_str(&v).unwrap_or(Value::String(v)));
            }
            let params = if params.is_empty() { Value::Null } else { Value::Object(params) };
            shared.record(method, &params);
            let header = request.header("authorization");
            if method != "Shelly.GetDeviceInfo" && !shared.http_authorized(header, "GET", &request.target) {
                return challenge(&mut stream, shared);
            }
            match shared.call(method, &params, "HTTP_in") {
                Ok(result) => respond(&mut stream, 200, &result.to_string()),
                Err((code, message)) => {
                    let status = if code == 404 { 404 } else { 400 };
                    respond(&mut stream, status, &json!({"code": code, "message": message}).to_string());
                }
            }
        }
        _ => respond(&mut stream, 404, ""),
    }
}

impl Shared {
    /// Answers a frame already let in (POST /rpc): the response frame, and whether it is an
    /// error.
    fn answer_frame_open(&self, frame: &Value, source: &str) -> (String, bool) {
        let id = frame.get("id").cloned().unwrap_or(Value::Null);
        let src = frame.get("src").and_then(Value::as_str).map(str::to_owned);
        let method = frame.get("method").and_then(Value::as_str).unwrap_or_default();
        let params = frame.get("params").cloned().unwrap_or(Value::Null);
        self.record(method, &params);
        let mut response = Map::new();
        response.insert("id".into(), id);
        let failed = match self.call(method, &params, source) {
            Ok(r) => {
                response.insert("result".into(), r);
                false
            }
            Err((code, message)) => {
                response.insert("error".into(), json!({"code": code, "message": message}));
                true
            }
        };
        (self.frame_from(src.as_deref(), response), failed)
    }
}

/// The WebSocket at `/rpc`: requests answered by id, notifications to a subscribed client.
fn websocket(shared: &Arc<Shared>, conn: u64, stream: TcpStream, request: &Request) {
    let Some(mut ws) = http::accept_websocket(stream, request, &HEADERS) else { return };
    let (tx, rx): (Sender<String>, Receiver<String>) = mpsc::channel();
    shared.clients.lock().unwrap().push(Client { conn, src: None, tx });
    http::serve_websocket(&mut ws, &shared.control, WhileFrozen::Wait, &rx, |text| {
        let (answer, src) = shared.answer_frame(text, "WS_in");
        if let Some(src) = src
            && let Some(c) = shared.clients.lock().unwrap().iter_mut().find(|c| c.conn == conn)
        {
            c.src = Some(src);
        }
        answer.map(Message::text)
    });
    shared.clients.lock().unwrap().retain(|c| c.conn != conn);
}
