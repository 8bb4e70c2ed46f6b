//! A Yeelight bulb speaking the LAN control protocol ("Yeelight WiFi Light Inter-Operation
//! Specification"), on plain threads, for the adapter's session tests and the end-to-end tests:
//! a color bulb (model `color`), a ceiling light with white tones (model `ceiling3`) or a white
//! bulb (model `mono`).
//!
//! ```no_run
//! # use hearth_tests::sim::yeelight::{YeelightOptions, YeelightSim};
//! # use serde_json::json;
//! let sim = YeelightSim::start(YeelightOptions::color());      // TCP on a free port of 127.0.0.1
//! let target = sim.target();                                    // where a session finds it
//! sim.set_physically(json!({"power": "off"}));                  // as its app or switch would
//! let asked = sim.requests();                                   // every request received
//! sim.freeze(true);                                             // accept, read, never answer
//! drop(sim);                                                    // listener and connections closed
//! ```
//!
//! # What it serves
//!
//! - Control (TCP, JSON lines ending in `\r\n`, on the port its `Location` names): `get_prop`
//!   (values as text, `""` for a property it does not have), `set_power` (`on`/`off`, effect,
//!   duration, optional mode), `toggle`, `set_bright` (1–100), `set_ct_abx` (the model's
//!   range), `set_rgb` (1–0xFFFFFF), `set_hsv` (hue 0–359, saturation 0–100), `set_name`. Each is
//!   answered `{"id":N,"result":["ok"]}`; what changed goes to every connection as
//!   `{"method":"props","params":{…}}` (numbers as numbers, as firmwares write them). Effects
//!   are `"sudden"` or `"smooth"` with a duration of at least 30 ms; anything else, a value out
//!   of range, or a brightness, temperature or color while off, is refused
//!   `{"code":-5000,"message":"general error"}`; a method the bulb's `support` does not list,
//!   `{"code":-1,"message":"unsupported method"}`; a line that is not a request,
//!   `{"id":0,"error":{"code":-1,"message":"invalid command"}}`.
//! - Limits, as real bulbs have them: a connection may send [`YeelightOptions::quota`] requests
//!   (60) in any [`YeelightOptions::quota_window`] (60 s); beyond it each request is refused
//!   `{"id":N,"error":{"code":-1,"message":"client quota exceeded"}}` and not carried out. A
//!   fifth connection at once ([`YeelightOptions::max_connections`]) is closed as it opens.
//! - Discovery, only with [`YeelightOptions::multicast`] (inside a network namespace): it joins
//!   239.255.255.250 on the loopback (port 1982, shared), answers each `M-SEARCH` whose `ST` is
//!   `wifi_bulb` with its `HTTP/1.1 200 OK` headers, unicast, and advertises itself with `NOTIFY`
//!   when it starts and on [`YeelightSim::advertise`].
//!
//! # The test's handles
//!
//! [`YeelightSim::requests`] lists every request line received (refused ones too),
//! [`YeelightSim::refusals`] every error it answered, [`YeelightSim::props`] its properties now,
//! [`YeelightSim::set_physically`] changes them as its app would (notifying every connection),
//! [`YeelightSim::freeze`] makes it accept and read but answer nothing (nor search answers) until
//! thawed, [`YeelightSim::push_raw`] sends any line to every connection. Dropping it closes the
//! listener and every connection; [`YeelightSim::start_on`] starts it again on the same port (a
//! power cut: its properties are the options' again).
#![allow(clippy::disallowed_methods)] // std::thread::sleep: this runs on threads of its own.

use std::collections::{BTreeMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_mdns::Announcement;
use hearth_mdns::lan::Target;
use hearth_sdk::DeviceId;
use serde_json::{Map, Value, json};

/// What the simulated bulb is.
#[derive(Debug, Clone)]
pub struct YeelightOptions {
    /// Its model (`color`, `ceiling3`, `mono`).
    pub model: String,
    /// Its id.
    pub id: u64,
    /// Its name (empty: none given in its app).
    pub name: String,
    /// Its firmware version.
    pub fw_ver: String,
    /// The methods it supports, space-separated.
    pub support: String,
    /// Its color temperature range in K.
    pub ct_range: (u16, u16),
    /// On.
    pub power: bool,
    /// Brightness 1–100.
    pub bright: u8,
    /// Color temperature in K.
    pub ct: u16,
    /// Color as 0xRRGGBB.
    pub rgb: u32,
    /// Hue 0–359.
    pub hue: u16,
    /// Saturation 0–100.
    pub sat: u8,
    /// 1 RGB, 2 color temperature, 3 HSV.
    pub color_mode: u8,
    /// Requests a connection may send in [`YeelightOptions::quota_window`].
    pub quota: usize,
    /// The window of the quota.
    pub quota_window: Duration,
    /// Connections it keeps at once.
    pub max_connections: usize,
    /// Answer searches and advertise on the multicast group (only inside a network namespace).
    pub multicast: bool,
}

impl YeelightOptions {
    /// A color bulb (model `color`, firmware 18), as the specification's example answer, with
    /// `set_hsv` and `set_name` too; on, color temperature 4000 K.
    pub fn color() -> YeelightOptions {
        YeelightOptions {
            model: "color".into(),
            id: 0x0000_0000_0015_243f,
            name: "my_bulb".into(),
            fw_ver: "18".into(),
            support: "get_prop set_default set_power toggle set_bright start_cf stop_cf set_scene cron_add cron_get cron_del set_ct_abx set_rgb set_hsv set_name".into(),
            ct_range: (1700, 6500),
            power: true,
            bright: 100,
            ct: 4000,
            rgb: 16_711_680,
            hue: 100,
            sat: 35,
            color_mode: 2,
            quota: 60,
            quota_window: Duration::from_secs(60),
            max_connections: 4,
            multicast: false,
        }
    }

    /// A ceiling light with white tones (model `ceiling3`, firmware 43, 2700–6500 K), without a
    /// name; off.
    pub fn ceiling() -> YeelightOptions {
        YeelightOptions {
            model: "ceiling3".into(),
            id: 0x0000_0000_02eb_9f61,
            name: String::new(),
            fw_ver: "43".into(),
            support: "get_prop set_default set_power toggle set_bright set_scene cron_add cron_get cron_del start_cf stop_cf set_ct_abx set_name set_adjust adjust_bright adjust_ct".into(),
            ct_range: (2700, 6500),
            power: false,
            bright: 99,
            ct: 3802,
            rgb: 0,
            hue: 0,
            sat: 0,
            color_mode: 2,
            ..YeelightOptions::color()
        }
    }

    /// A white bulb (model `mono`): on/off and brightness only.
    pub fn mono() -> YeelightOptions {
        YeelightOptions {
            model: "mono".into(),
            id: 0x0000_0000_0ece_955f,
            name: "sampleBulb".into(),
            fw_ver: "9".into(),
            support: "get_prop set_default set_power toggle set_bright set_scene cron_add cron_get cron_del start_cf stop_cf set_name set_adjust adjust_bright".into(),
            ct_range: (2700, 2700),
            power: true,
            bright: 46,
            ct: 2700,
            rgb: 0,
            hue: 0,
            sat: 0,
            color_mode: 2,
            ..YeelightOptions::color()
        }
    }
}

/// What the bulb received and answered.
#[derive(Debug, Default)]
pub struct Record {
    /// Every request line, parsed (a line that is not JSON as a JSON string), in order.
    pub requests: Vec<Value>,
    /// Every error answered, whole.
    pub refusals: Vec<Value>,
    /// Searches answered.
    pub searches: usize,
    /// Connections closed at once for being one too many.
    pub turned_away: usize,
}

/// One client connection.
struct Conn {
    id: u64,
    stream: TcpStream,
    out: Mutex<()>,
}

impl Conn {
    fn send(&self, line: &str) {
        let _guard = self.out.lock().unwrap();
        let mut s = &self.stream;
        let _ = s.write_all(format!("{line}\r\n").as_bytes());
    }

    fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

struct Inner {
    opts: YeelightOptions,
    port: u16,
    props: Mutex<Map<String, Value>>,
    conns: Mutex<Vec<Arc<Conn>>>,
    record: Mutex<Record>,
    changed: Condvar,
    frozen: AtomicBool,
    stop: AtomicBool,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn note(&self, f: impl FnOnce(&mut Record)) {
        f(&mut self.record.lock().unwrap());
        self.changed.notify_all();
    }

    fn key(&self) -> String {
        format!("{:016x}", self.opts.id)
    }

    /// The discovery headers, after the start line.
    fn headers(&self, advertised: bool) -> String {
        let o = &self.opts;
        let p = self.props.lock().unwrap().clone();
        let v = |k: &str| p.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
        let mut h = String::new();
        if advertised {
            h.push_str("NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1982\r\nCache-Control: max-age=3600\r\n");
            h.push_str(&format!("Location: yeelight://127.0.0.1:{}\r\nNTS: ssdp:alive\r\n", self.port));
            h.push_str("Server: POSIX, UPnP/1.0 YGLC/1\r\n");
        } else {
            h.push_str("HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nDate: \r\nExt: \r\n");
            h.push_str(&format!("Location: yeelight://127.0.0.1:{}\r\n", self.port));
            h.push_str("Server: POSIX UPnP/1.0 YGLC/1\r\n");
        }
        h.push_str(&format!(
            "id: 0x{:016x}\r\nmodel: {}\r\nfw_ver: {}\r\nsupport: {}\r\n",
            o.id, o.model, o.fw_ver, o.support
        ));
        for k in ["power", "bright", "color_mode", "ct", "rgb", "hue", "sat", "name"] {
            h.push_str(&format!("{k}: {}\r\n", v(k)));
        }
        h
    }

    fn supports(&self, method: &str) -> bool {
        self.opts.support.split_whitespace().any(|m| m == method)
    }

    /// Applies `changes` and notifies every connection of what changed (not while frozen).
    fn apply(&self, changes: Map<String, Value>) {
        let changed = self.change(changes);
        self.notify(changed);
    }

    /// Applies `changes`; returns what changed.
    fn change(&self, changes: Map<String, Value>) -> Map<String, Value> {
        let mut changed = Map::new();
        let mut props = self.props.lock().unwrap();
        for (k, v) in changes {
            if props.get(&k) != Some(&v) {
                props.insert(k.clone(), v.clone());
                changed.insert(k, v);
            }
        }
        changed
    }

    /// Tells every connection what changed (not while frozen).
    fn notify(&self, changed: Map<String, Value>) {
        if !changed.is_empty() && !self.frozen.load(Ordering::SeqCst) {
            let line = json!({"method": "props", "params": changed}).to_string();
            for c in self.conns.lock().unwrap().iter() {
                c.send(&line);
            }
        }
    }

    fn prop_text(&self, name: &str) -> String {
        match self.props.lock().unwrap().get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    }
}

/// A simulated Yeelight bulb; see the module documentation.
pub struct YeelightSim {
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
    group: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for YeelightSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YeelightSim").field("model", &self.inner.opts.model).field("port", &self.inner.port).finish()
    }
}

impl YeelightSim {
    /// Starts the bulb on a free port of 127.0.0.1.
    pub fn start(opts: YeelightOptions) -> YeelightSim {
        YeelightSim::start_on(0, opts)
    }

    /// Starts the bulb on `port` of 127.0.0.1 (again after a stop: the same address).
    pub fn start_on(port: u16, opts: YeelightOptions) -> YeelightSim {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the Yeelight simulator");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let props = json!({
            "power": if opts.power { "on" } else { "off" },
            "bright": opts.bright,
            "ct": opts.ct,
            "rgb": opts.rgb,
            "hue": opts.hue,
            "sat": opts.sat,
            "color_mode": opts.color_mode,
            "name": opts.name,
        });
        let inner = Arc::new(Inner {
            props: Mutex::new(props.as_object().cloned().unwrap_or_default()),
            opts,
            port,
            conns: Mutex::new(Vec::new()),
            record: Mutex::new(Record::default()),
            changed: Condvar::new(),
            frozen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
        });
        let i = inner.clone();
        let accept = std::thread::Builder::new()
            .name("yeelight-sim-accept".into())
            .spawn(move || accept_loop(&i, &listener))
            .unwrap();
        let group = inner.opts.multicast.then(|| {
            let socket = hearth_yeelight::discovery::group_socket(&[Ipv4Addr::LOCALHOST])
                .expect("join the Yeelight group on the loopback (inside a network namespace)");
            socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let i = inner.clone();
            std::thread::Builder::new()
                .name("yeelight-sim-group".into())
                .spawn(move || group_loop(&i, &socket))
                .unwrap()
        });
        let sim = YeelightSim { inner, accept: Some(accept), group };
        if sim.inner.opts.multicast {
            sim.advertise();
        }
        sim
    }

    /// The port its control connection listens on.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Its inbox key: its id as 16 lowercase hex digits.
    pub fn key(&self) -> String {
        self.inner.key()
    }

    /// Its Hearth device id, `yeelight:<key>`.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::new("yeelight", &self.key())
    }

    /// Its answer to a search, as sent.
    pub fn answer(&self) -> String {
        self.inner.headers(false)
    }

    /// Its advertisement, as sent.
    pub fn advertisement(&self) -> String {
        self.inner.headers(true)
    }

    /// Its answer as the adapter's discovery turns it into an announcement.
    pub fn announcement(&self) -> Announcement {
        let bulb = hearth_yeelight::api::parse_datagram(self.answer().as_bytes())
            .expect("the simulator's answer reads")
            .expect("the simulator's answer is a bulb");
        hearth_yeelight::adapter::announcement(&bulb)
    }

    /// Where a session finds it, as the Wi-Fi runner hands it over after its answer.
    pub fn target(&self) -> Target {
        let a = self.announcement();
        Target {
            key: self.key(),
            device: self.device_id(),
            name: a.name,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: self.port(),
            txt: a.txt,
        }
    }

    /// Sends its advertisement to the group (with [`YeelightOptions::multicast`]).
    pub fn advertise(&self) {
        if !self.inner.opts.multicast {
            return;
        }
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a socket to advertise from");
        hearth_yeelight::discovery::send_to_group(&socket, Some(Ipv4Addr::LOCALHOST), self.advertisement().as_bytes())
            .expect("advertise on the Yeelight group");
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.inner.record.lock().unwrap().requests.clone()
    }

    /// The requests of `method` received, in order.
    pub fn requests_of(&self, method: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r["method"] == method).collect()
    }

    /// Every error answered, in order.
    pub fn refusals(&self) -> Vec<Value> {
        self.inner.record.lock().unwrap().refusals.clone()
    }

    /// How many searches it answered.
    pub fn searches(&self) -> usize {
        self.inner.record.lock().unwrap().searches
    }

    /// How many connections it closed for being one too many.
    pub fn turned_away(&self) -> usize {
        self.inner.record.lock().unwrap().turned_away
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.inner.conns.lock().unwrap().len()
    }

    /// Waits until `n` connections are open; panics if they are not.
    pub fn wait_connections(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.connections() != n {
            assert!(Instant::now() < deadline, "Yeelight simulator: {} connections, not {n}", self.connections());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its properties now: `power`, `bright`, `ct`, `rgb`, `hue`, `sat`, `color_mode`, `name`.
    pub fn props(&self) -> Value {
        Value::Object(self.inner.props.lock().unwrap().clone())
    }

    /// Waits until `pred` holds for what it received; panics with the record if not.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Record) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut r = self.inner.record.lock().unwrap();
        while !pred(&r) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "Yeelight simulator: no {what} within {timeout:?}; record: {r:#?}");
            r = self.inner.changed.wait_timeout(r, left).unwrap().0;
        }
    }

    /// Waits until its properties satisfy `pred`; panics with them if not.
    pub fn wait_props(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.props();
            if pred(&now) {
                return;
            }
            assert!(Instant::now() < deadline, "Yeelight simulator: not {what} within {timeout:?}; props: {now}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Changes its properties as its app or wall switch would (`{"power": "off", "bright": 20}`)
    /// and notifies every connection.
    pub fn set_physically(&self, changes: Value) {
        self.inner.apply(changes.as_object().cloned().expect("an object of properties"));
    }

    /// Sends `line` as it is to every connection.
    pub fn push_raw(&self, line: &str) {
        for c in self.inner.conns.lock().unwrap().iter() {
            c.send(line);
        }
    }

    /// Freezes (reads everything, answers nothing, notifies nothing, answers no search;
    /// connections are still accepted) or thaws. What arrives while frozen is dropped.
    pub fn freeze(&self, frozen: bool) {
        self.inner.frozen.store(frozen, Ordering::SeqCst);
    }

    /// Stops: closes the listener, the group socket and every connection (also on drop).
    pub fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for c in self.inner.conns.lock().unwrap().drain(..) {
            c.close();
        }
        for t in [self.accept.take(), self.group.take()].into_iter().flatten() {
            let _ = t.join();
        }
        let threads: Vec<JoinHandle<()>> = self.inner.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for YeelightSim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn group_loop(inner: &Arc<Inner>, socket: &UdpSocket) {
    let mut buf = [0u8; 2048];
    while !inner.stop.load(Ordering::SeqCst) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let search = text.starts_with("M-SEARCH * HTTP/1.1")
            && text.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("st") && v.trim() == "wifi_bulb")
            });
        if search && !inner.frozen.load(Ordering::SeqCst) {
            inner.note(|r| r.searches += 1);
            let _ = socket.send_to(inner.headers(false).as_bytes(), from);
        }
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    while !inner.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if inner.conns.lock().unwrap().len() >= inner.opts.max_connections {
                    inner.note(|r| r.turned_away += 1);
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                let Ok(write_side) = stream.try_clone() else { continue };
                let conn = Arc::new(Conn {
                    id: inner.next_id.fetch_add(1, Ordering::SeqCst),
                    stream: write_side,
                    out: Mutex::new(()),
                });
                inner.conns.lock().unwrap().push(conn.clone());
                inner.changed.notify_all();
                let i = inner.clone();
                let t = std::thread::Builder::new()
                    .name("yeelight-sim-conn".into())
                    .spawn(move || {
                        serve(&i, &conn, stream);
                        conn.close();
                        i.conns.lock().unwrap().retain(|c| c.id != conn.id);
                        i.changed.notify_all();
                    })
                    .unwrap();
                let mut threads = inner.threads.lock().unwrap();
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn serve(inner: &Arc<Inner>, conn: &Arc<Conn>, mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let mut spent: VecDeque<Instant> = VecDeque::new();
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(_) => return,
        };
        if inner.frozen.load(Ordering::SeqCst) {
            pending.clear();
            continue;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            if !line.is_empty() {
                request(inner, conn, &mut spent, &line);
            }
        }
    }
}

/// One request line of a connection.
fn request(inner: &Inner, conn: &Conn, spent: &mut VecDeque<Instant>, line: &str) {
    let parsed: Value = serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.to_owned()));
    inner.note(|r| r.requests.push(parsed.clone()));
    let refuse = |id: &Value, code: i64, message: &str| {
        let answer = json!({"id": id, "error": {"code": code, "message": message}});
        inner.note(|r| r.refusals.push(answer.clone()));
        conn.send(&answer.to_string());
    };
    let (Some(id), Some(method)) =
        (parsed.get("id").filter(|i| i.is_u64()), parsed.get("method").and_then(Value::as_str))
    else {
        refuse(&json!(0), -1, "invalid command");
        return;
    };
    let now = Instant::now();
    while spent.front().is_some_and(|t| now.duration_since(*t) >= inner.opts.quota_window) {
        spent.pop_front();
    }
    if spent.len() >= inner.opts.quota {
        refuse(id, -1, "client quota exceeded");
        return;
    }
    spent.push_back(now);
    if !inner.supports(method) {
        refuse(id, -1, "unsupported method");
        return;
    }
    let params = parsed.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
    match carry_out(inner, method, &params) {
        Ok(Reply::Values(values)) => conn.send(&json!({"id": id, "result": values}).to_string()),
        Ok(Reply::Changes(changes)) => {
            // Carried out, answered, then told to every connection, as a bulb does.
            let changed = inner.change(changes);
            conn.send(&json!({"id": id, "result": ["ok"]}).to_string());
            inner.notify(changed);
        }
        Err(()) => refuse(id, -5000, "general error"),
    }
}

/// What a request does.
enum Reply {
    /// Values read (`get_prop`).
    Values(Vec<Value>),
    /// Properties to change.
    Changes(Map<String, Value>),
}

/// Checks a request's parameters and says what it does; `Err` is a refusal.
fn carry_out(inner: &Inner, method: &str, params: &[Value]) -> Result<Reply, ()> {
    let on = inner.prop_text("power") == "on";
    let int = |i: usize| params.get(i).and_then(Value::as_u64);
    // Effect and duration after `at` values.
    let effect_ok = |at: usize| match (params.get(at).and_then(Value::as_str), int(at + 1)) {
        (Some("sudden"), Some(_)) => true,
        (Some("smooth"), Some(ms)) => ms >= 30,
        _ => false,
    };
    let change =
        |pairs: &[(&str, Value)]| Ok(Reply::Changes(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()));
    match method {
        "get_prop" => Ok(Reply::Values(
            params.iter().map(|p| Value::String(p.as_str().map(|p| inner.prop_text(p)).unwrap_or_default())).collect(),
        )),
        "set_power" => match params.first().and_then(Value::as_str) {
            Some(p @ ("on" | "off")) if effect_ok(1) => change(&[("power", json!(p))]),
            _ => Err(()),
        },
        "toggle" => change(&[("power", json!(if on { "off" } else { "on" }))]),
        "set_bright" => match int(0) {
            Some(b @ 1..=100) if on && effect_ok(1) => change(&[("bright", json!(b))]),
            _ => Err(()),
        },
        "set_ct_abx" => {
            let (min, max) = inner.opts.ct_range;
            match int(0) {
                Some(k) if on && effect_ok(1) && (u64::from(min)..=u64::from(max)).contains(&k) => {
                    change(&[("ct", json!(k)), ("color_mode", json!(2))])
                }
                _ => Err(()),
            }
        }
        "set_rgb" => match int(0) {
            Some(v @ 1..=0xFF_FFFF) if on && effect_ok(1) => change(&[("rgb", json!(v)), ("color_mode", json!(1))]),
            _ => Err(()),
        },
        "set_hsv" => match (int(0), int(1)) {
            (Some(h @ 0..=359), Some(s @ 0..=100)) if on && effect_ok(2) => {
                change(&[("hue", json!(h)), ("sat", json!(s)), ("color_mode", json!(3))])
            }
            _ => Err(()),
        },
        "set_name" => match params.first().and_then(Value::as_str) {
            Some(name) => change(&[("name", json!(name))]),
            None => Err(()),
        },
        // Listed in `support` but not simulated (flows, scenes, timers, defaults): accepted.
        _ => Ok(Reply::Values(vec![json!("ok")])),
    }
}

/// The headers of a discovery datagram, names in lowercase (for tests reading them).
pub fn headers(datagram: &str) -> BTreeMap<String, String> {
    datagram
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

/// The address of the simulator's control port.
pub fn control_address(sim: &YeelightSim) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), sim.port())
}
