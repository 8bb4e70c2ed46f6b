//! A Xiaomi miIO device, simulated over UDP: the real packets (hello, AES-128-CBC with its
//! token, MD5 checksums), answering `miIO.info` and the MIoT methods `get_properties`,
//! `set_properties` and `action` for the properties of one MIoT spec (by default the shipped
//! Mi Air Purifier 3H, `zhimi.airpurifier.mb3`).
//!
//! ```no_run
//! # use hearth_tests::sim::miio::{MiioSim, MiioOptions};
//! # use std::time::Duration;
//! let sim = MiioSim::start(MiioOptions::default()); // did 123456789, token MiioOptions::TOKEN
//! // sim.announce(&browser): `_miio._udp`, named `zhimi-airpurifier-mb3_miio123456789`.
//! // sim.target(): where a session talks to it, as the Wi-Fi runner hands it over.
//! sim.wait_for_call("set_properties", Duration::from_secs(5), |c| c.params[0]["piid"] == 2);
//! sim.set_physically(3, 6, serde_json::json!(35)); // PM2.5 went up: read at the next poll
//! sim.drop_requests(1); // the next request is lost on the way
//! sim.freeze(true); // hears everything, answers nothing
//! ```
//!
//! What it does, as a device does:
//! - a hello (`21310020` + 0xFF × 28) is answered with a bare header: its did, its clock (seconds
//!   since it started, from a base), 0xFF in the checksum field (a paired device keeps its token);
//! - any other packet must check with its token: one made with another token is dropped in
//!   silence (counted, [`MiioSim::refused`]), as a real device does;
//! - `miIO.info` answers its model, firmware, hardware and MAC;
//! - `get_properties` answers each `{did, siid, piid}` with `code` 0 and the value, -4001 for a
//!   property that cannot be read, -4003 for one the spec does not have;
//! - `set_properties` stores values of writable properties that fit their format, list and
//!   range (code 0), else -4002 (not writable), -4003 (unknown) or -4005 (bad value);
//! - `action` of the purifier: `reset-filter-life` (4.1) sets the filter to 100 % and 0 h,
//!   `toggle` (8.1) flips the power, `toggle-mode` (8.2) steps the mode; another action of the
//!   spec answers code 0 and changes nothing; an unknown one -4003;
//! - any other method: error -32601 `Method not found.`;
//! - every request read is recorded ([`MiioSim::calls`]), in order.
//!
//! The device runs on a plain thread and stops when dropped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_mdns::lan::Target;
use hearth_mdns::{Announcement, Browser};
use hearth_miio::api::{self, Request};
use hearth_miio::packet::{self, Token};
use hearth_miio::spec::{Catalogue, Format, Spec};
use hearth_sdk::DeviceId;
use serde_json::{Value as Json, json};

/// The service type it announces.
pub const SERVICE_TYPE: &str = "_miio._udp.local.";

/// How the device is set up.
#[derive(Debug, Clone)]
pub struct MiioOptions {
    /// Its device id.
    pub did: u32,
    /// Its token, 32 hex digits.
    pub token: String,
    /// Its model, as `miIO.info` and its announced name give it.
    pub model: String,
    /// Its firmware version.
    pub fw_ver: String,
    /// The spec whose properties it has; `None`: the shipped spec of `model`.
    pub spec: Option<Spec>,
    /// Values that differ from each property's first (the lowest of its range or list).
    pub values: Vec<((u32, u32), Json)>,
}

impl MiioOptions {
    /// The token of the default device.
    pub const TOKEN: &'static str = "9e4b2dbb2f2e1c6a6a5b7c8d9e0f1a2b";
    /// The did of the default device.
    pub const DID: u32 = 123_456_789;
}

impl Default for MiioOptions {
    /// A Mi Air Purifier 3H, on, in auto mode at level 2, in a room at 21.5 °C, 45 %, 12 µg/m³,
    /// its filter at 87 % after 412 h.
    fn default() -> MiioOptions {
        MiioOptions {
            did: MiioOptions::DID,
            token: MiioOptions::TOKEN.to_owned(),
            model: "zhimi.airpurifier.mb3".to_owned(),
            fw_ver: "2.1.7".to_owned(),
            spec: None,
            values: vec![
                ((2, 2), json!(true)),
                ((2, 4), json!(2)),
                ((2, 5), json!(0)),
                ((3, 6), json!(12.0)),
                ((3, 7), json!(45)),
                ((3, 8), json!(21.5)),
                ((4, 3), json!(87)),
                ((4, 5), json!(412)),
                ((5, 1), json!(true)),
                ((6, 6), json!(true)),
                ((10, 8), json!(780)),
                ((10, 10), json!(5)),
                ((12, 1), json!(5_000_000)),
            ],
        }
    }
}

/// A request the device read.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method.
    pub method: String,
    /// Its parameters.
    pub params: Json,
}

struct Inner {
    opts: MiioOptions,
    token: Token,
    spec: Spec,
    values: Mutex<BTreeMap<(u32, u32), Json>>,
    calls: Mutex<Vec<Call>>,
    changed: Condvar,
    frozen: AtomicBool,
    stop: AtomicBool,
    drop_next: AtomicU32,
    hellos: AtomicU64,
    refused: AtomicU64,
    started: Instant,
}

impl Inner {
    /// Its clock: seconds since it started, from a base a real device might show.
    fn stamp(&self) -> u32 {
        1_000 + self.started.elapsed().as_secs() as u32
    }

    fn handle(&self, raw: &[u8]) -> Option<Vec<u8>> {
        if self.frozen.load(Ordering::SeqCst) {
            return None;
        }
        if packet::is_hello(raw) {
            self.hellos.fetch_add(1, Ordering::SeqCst);
            return Some(packet::hello_answer(self.opts.did, self.stamp()).to_vec());
        }
        let Ok(p) = packet::decode(&self.token, raw) else {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return None;
        };
        if self.drop_next.load(Ordering::SeqCst) > 0 {
            self.drop_next.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let request = Request::from_bytes(&p.payload).ok()?;
        {
            let mut calls = self.calls.lock().unwrap();
            calls.push(Call { method: request.method.clone(), params: request.params.clone() });
            self.changed.notify_all();
        }
        let answer = match request.method.as_str() {
            "miIO.info" => api::result_bytes(
                request.id,
                &json!({
                    "model": self.opts.model, "fw_ver": self.opts.fw_ver, "hw_ver": "esp32",
                    "mac": "64:90:C1:12:34:56", "life": self.started.elapsed().as_secs(),
                    "ap": {"ssid": "home", "rssi": -48}
                }),
            ),
            "get_properties" => api::result_bytes(request.id, &self.get_properties(&request.params)),
            "set_properties" => api::result_bytes(request.id, &self.set_properties(&request.params)),
            "action" => api::result_bytes(request.id, &self.action(&request.params)),
            _ => api::error_bytes(request.id, -32601, "Method not found."),
        };
        packet::encode(&self.token, self.opts.did, self.stamp(), &answer).ok()
    }

    fn ids(item: &Json) -> (Json, u32, u32) {
        let n = |k: &str| item.get(k).and_then(Json::as_u64).unwrap_or(0) as u32;
        (item.get("did").cloned().unwrap_or(Json::Null), n("siid"), n("piid"))
    }

    fn get_properties(&self, params: &Json) -> Json {
        let values = self.values.lock().unwrap();
        let items = params.as_array().cloned().unwrap_or_default();
        Json::Array(
            items
                .iter()
                .map(|item| {
                    let (did, siid, piid) = Self::ids(item);
                    match self.spec.property(siid, piid) {
                        None => json!({"did": did, "siid": siid, "piid": piid, "code": -4003}),
                        Some(p) if !p.access.read => json!({"did": did, "siid": siid, "piid": piid, "code": -4001}),
                        Some(_) => {
                            let value = values.get(&(siid, piid)).cloned().unwrap_or(Json::Null);
                            json!({"did": did, "siid": siid, "piid": piid, "code": 0, "value": value})
                        }
                    }
                })
                .collect(),
        )
    }

    fn set_properties(&self, params: &Json) -> Json {
        let mut values = self.values.lock().unwrap();
        let items = params.as_array().cloned().unwrap_or_default();
        Json::Array(
            items
                .iter()
                .map(|item| {
                    let (did, siid, piid) = Self::ids(item);
                    let value = item.get("value").cloned().unwrap_or(Json::Null);
                    let code = match self.spec.property(siid, piid) {
                        None => -4003,
                        Some(p) if !p.access.write => -4002,
                        Some(p) if !fits(p, &value) => -4005,
                        Some(_) => {
                            values.insert((siid, piid), value);
                            0
                        }
                    };
                    json!({"did": did, "siid": siid, "piid": piid, "code": code})
                })
                .collect(),
        )
    }

    fn action(&self, params: &Json) -> Json {
        let n = |k: &str| params.get(k).and_then(Json::as_u64).unwrap_or(0) as u32;
        let (siid, aiid) = (n("siid"), n("aiid"));
        let known = self.spec.service(siid).is_some_and(|s| s.actions.iter().any(|a| a.aiid == aiid));
        if !known {
            return json!({"code": -4003});
        }
        let mut values = self.values.lock().unwrap();
        if self.opts.model == "zhimi.airpurifier.mb3" {
            match (siid, aiid) {
                (4, 1) => {
                    values.insert((4, 3), json!(100));
                    values.insert((4, 5), json!(0));
                }
                (8, 1) => {
                    let on = values.get(&(2, 2)).and_then(Json::as_bool).unwrap_or(false);
                    values.insert((2, 2), json!(!on));
                }
                (8, 2) => {
                    let mode = values.get(&(2, 5)).and_then(Json::as_u64).unwrap_or(0);
                    values.insert((2, 5), json!((mode + 1) % 3));
                }
                _ => {}
            }
        }
        json!({"code": 0, "out": []})
    }
}

/// Whether `value` is one property `p` takes: its format, list and range.
fn fits(p: &hearth_miio::spec::Property, value: &Json) -> bool {
    match p.format {
        Format::Bool => value.is_boolean(),
        Format::String => value.is_string(),
        Format::Integer { .. } | Format::Float => {
            let Some(v) = value.as_f64() else { return false };
            if matches!(p.format, Format::Integer { .. }) && !(value.is_i64() || value.is_u64()) {
                return false;
            }
            let in_list = p.list.is_empty() || p.list.iter().any(|e| e.value == v);
            let in_range = p.range.is_none_or(|r| v >= r.min && v <= r.max);
            in_list && in_range
        }
        Format::Hex | Format::Tlv8 => false,
    }
}

/// A simulated miIO device; see the module documentation.
pub struct MiioSim {
    inner: Arc<Inner>,
    port: u16,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MiioSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiioSim").field("model", &self.inner.opts.model).field("port", &self.port).finish()
    }
}

impl MiioSim {
    /// Starts the device on a free UDP port of 127.0.0.1.
    pub fn start(opts: MiioOptions) -> MiioSim {
        MiioSim::start_on(0, opts)
    }

    /// Starts the device on UDP `port` of 127.0.0.1.
    pub fn start_on(port: u16, opts: MiioOptions) -> MiioSim {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the miIO simulator");
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let port = socket.local_addr().unwrap().port();
        let spec = opts.spec.clone().unwrap_or_else(|| {
            Catalogue::builtin()
                .get(&opts.model)
                .unwrap_or_else(|| panic!("no shipped spec for {}: give MiioOptions::spec", opts.model))
                .clone()
                .expect("a usable shipped spec")
        });
        let mut values = BTreeMap::new();
        for s in &spec.services {
            for p in &s.properties {
                let first = match p.format {
                    Format::Bool => json!(false),
                    Format::String | Format::Hex | Format::Tlv8 => json!(""),
                    _ => match (p.list.first(), p.range) {
                        (Some(e), _) => json!(e.value as i64),
                        (None, Some(r)) if matches!(p.format, Format::Float) => json!(r.min),
                        (None, Some(r)) => json!(r.min as i64),
                        (None, None) => json!(0),
                    },
                };
                values.insert((s.siid, p.piid), first);
            }
        }
        for (at, v) in &opts.values {
            values.insert(*at, v.clone());
        }
        let token = Token::parse(&opts.token).expect("a valid simulator token");
        let inner = Arc::new(Inner {
            opts,
            token,
            spec,
            values: Mutex::new(values),
            calls: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            frozen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            drop_next: AtomicU32::new(0),
            hellos: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            started: Instant::now(),
        });
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("miio-sim".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !i.stop.load(Ordering::SeqCst) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                    if let Some(answer) = i.handle(&buf[..n]) {
                        let _ = socket.send_to(&answer, from);
                    }
                }
            })
            .unwrap();
        MiioSim { inner, port, thread: Some(thread) }
    }

    /// The UDP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// Its did, in decimal: its inbox key and the name of its token secret.
    pub fn key(&self) -> String {
        self.inner.opts.did.to_string()
    }

    /// Its Hearth device id, `miio:<did>`.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::new("miio", &self.key())
    }

    /// Its model.
    pub fn model(&self) -> &str {
        &self.inner.opts.model
    }

    /// Its mDNS instance name: the model with `-` for `.`, `_miio` and the did.
    pub fn instance_name(&self) -> String {
        format!("{}_miio{}", self.inner.opts.model.replace('.', "-"), self.inner.opts.did)
    }

    /// Its announcement as a browser resolves it.
    pub fn announcement(&self) -> Announcement {
        let name = self.instance_name();
        Announcement {
            service_type: SERVICE_TYPE.into(),
            instance: format!("{name}.{SERVICE_TYPE}"),
            host: format!("{name}.local."),
            name,
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: self.port,
            txt: BTreeMap::new(),
        }
    }

    /// Where a session finds it, as the Wi-Fi runner hands it over after the announcement.
    pub fn target(&self) -> Target {
        let a = self.announcement();
        Target {
            key: self.key(),
            device: self.device_id(),
            name: a.name,
            address: a.addresses[0],
            port: a.port,
            txt: a.txt,
        }
    }

    /// Announces it over mDNS on `browser`: `_miio._udp`, its instance name, 127.0.0.1, its port.
    pub fn announce(&self, browser: &Browser) {
        let name = self.instance_name();
        browser
            .announce(SERVICE_TYPE, &name, &format!("{name}.local."), IpAddr::V4(Ipv4Addr::LOCALHOST), self.port, &[])
            .expect("announce the miIO simulator");
    }

    /// Every request read, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Waits for a call of `method` for which `pred` holds; panics with the calls read if none
    /// comes within `timeout`.
    pub fn wait_for_call(&self, method: &str, timeout: Duration, pred: impl Fn(&Call) -> bool) -> Call {
        let deadline = Instant::now() + timeout;
        let mut calls = self.inner.calls.lock().unwrap();
        loop {
            if let Some(c) = calls.iter().find(|c| c.method == method && pred(c)) {
                return c.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "miIO simulator: no such {method} within {timeout:?}; calls: {:#?}", *calls);
            calls = self.inner.changed.wait_timeout(calls, left).unwrap().0;
        }
    }

    /// The value of a property now.
    pub fn value(&self, siid: u32, piid: u32) -> Option<Json> {
        self.inner.values.lock().unwrap().get(&(siid, piid)).cloned()
    }

    /// A property changed at the device (its button, the room): the next read gives it.
    pub fn set_physically(&self, siid: u32, piid: u32, value: Json) {
        self.inner.values.lock().unwrap().insert((siid, piid), value);
    }

    /// Freezes (hears everything, answers nothing, hellos included) or thaws.
    pub fn freeze(&self, frozen: bool) {
        self.inner.frozen.store(frozen, Ordering::SeqCst);
    }

    /// Loses the next `n` requests (not hellos) before reading them.
    pub fn drop_requests(&self, n: u32) {
        self.inner.drop_next.store(n, Ordering::SeqCst);
    }

    /// How many hellos it answered.
    pub fn hellos(&self) -> u64 {
        self.inner.hellos.load(Ordering::SeqCst)
    }

    /// How many packets it dropped because they did not check with its token.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::SeqCst)
    }
}

impl Drop for MiioSim {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
