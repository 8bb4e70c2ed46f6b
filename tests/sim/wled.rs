//! A WLED controller (firmware 0.15.0 on an ESP32) speaking WLED's JSON API over HTTP and its
//! WebSocket, on plain threads, for the adapter's session tests and the end-to-end tests.
//!
//! ```no_run
//! # use hearth_tests::sim::wled::{WledOptions, WledSim};
//! # use serde_json::json;
//! let sim = WledSim::start(WledOptions { segments: 2, ..WledOptions::default() });
//! // sim.announce(&browser): `_wled._tcp.local.` instance `wled-0455f0`, TXT `mac=8813bf0455f0`.
//! sim.set_physically(json!({"bri": 40}));        // as the button or the WLED app would
//! let patches = sim.patches();                    // state patches the hub sent
//! sim.freeze(true);                               // accept, read, never answer
//! drop(sim);                                      // listener and every connection closed
//! ```
//!
//! # What it serves (as WLED does; kno.wled.ge/interfaces/json-api and /websocket)
//!
//! - `GET /json`: `{"state", "info", "effects", "palettes"}`; `GET /json/state`, `/json/info`,
//!   `/json/si` (state and info), `/json/eff`, `/json/pal`. Anything else is 404.
//! - `POST /json/state` (or `/json`, `/json/si`) with a state patch: applied; the answer is the
//!   full state when the patch has `"v": true`, else `{"success":true}`; a body that is not a
//!   JSON object gets 400 `{"error":9}`.
//! - The WebSocket `/ws`: on connect `{"state": …, "info": …}`; a text message that is a state
//!   patch is applied, and when it changed anything the new `{"state", "info"}` goes to every
//!   client (else the sender gets the full message for `"v": true`, `{"success":true}` without).
//!   `{"v":true}` alone asks for the state and info; `p` is answered `pong`; `{"lv": …}` (the
//!   live LED stream) is ignored. A physical change ([`WledSim::set_physically`]) is pushed to
//!   every client.
//!
//! A patch takes `on` (`true`, `false`, `"t"`), `bri` 0–255 (0 turns off, more turns on; the
//! state always reports the brightness it turns on with), `transition`, `mainseg`, and `seg`: a
//! list (or one object) of segments by `id` (else by position) with `on`, `bri` (0 turns the
//! segment off and keeps its brightness, as the top level does), `col` (from the
//! primary on: `[r, g, b]`, `[r, g, b, w]` or hex `RRGGBB`), `fx`, `sx`, `ix`, `pal`, `cct`,
//! `n`, `sel`, `rev`, `mi`, `frz`. `tt`, `v`, `ps`, `pl`, `nl`, `udpn` are read and ignored.
//! Effect and palette ids out of range are ignored, as WLED keeps its mode then.
//!
//! # The test's handles
//!
//! [`WledSim::patches`] lists every state patch received (HTTP bodies and WebSocket messages;
//! a bare `{"v":true}` is a request for the state, counted by [`WledSim::state_requests`]
//! instead), [`WledSim::state`] is the current `/json/state`, [`WledSim::freeze`] makes it accept
//! and read but answer nothing (no HTTP answer, no WebSocket message) until unfrozen,
//! [`WledSim::push_raw`] sends any text frame to every WebSocket client, and
//! [`WledOptions::malformed`] sends a burst of unreadable frames after every greeting. Dropping
//! it closes the listener and every connection; [`WledSim::start_on`] starts it again on the
//! same port (a reboot: its state is the options' again).
#![allow(clippy::disallowed_methods)] // std::thread::sleep: this runs on threads of its own.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tungstenite::Message;

use super::http::{self, Control, Request, Server, WhileFrozen};

/// The mDNS service type WLED announces.
pub const SERVICE_TYPE: &str = "_wled._tcp.local.";

/// WLED 0.15.0's first 60 effects, the index being the id (`/json/eff`). Id 53 is a placeholder
/// for an effect this build does not have, as WLED writes it.
pub const EFFECTS: &[&str] = &[
    "Solid",
    "Blink",
    "Breathe",
    "Wipe",
    "Wipe Random",
    "Random Colors",
    "Sweep",
    "Dynamic",
    "Colorloop",
    "Rainbow",
    "Scan",
    "Scan Dual",
    "Fade",
    "Theater",
    "Theater Rainbow",
    "Running",
    "Saw",
    "Twinkle",
    "Dissolve",
    "Dissolve Rnd",
    "Sparkle",
    "Sparkle Dark",
    "Sparkle+",
    "Strobe",
    "Strobe Rainbow",
    "Strobe Mega",
    "Blink Rainbow",
    "Android",
    "Chase",
    "Chase Random",
    "Chase Rainbow",
    "Chase Flash",
    "Chase Flash Rnd",
    "Rainbow Runner",
    "Colorful",
    "Traffic Light",
    "Sweep Random",
    "Chase 2",
    "Aurora",
    "Stream",
    "Scanner",
    "Lighthouse",
    "Fireworks",
    "Rain",
    "Tetrix",
    "Fire Flicker",
    "Gradient",
    "Loading",
    "Rolling Balls",
    "Fairy",
    "Two Dots",
    "Fairytwinkle",
    "Running Dual",
    "RSVD",
    "Chase 3",
    "Tri Wipe",
    "Tri Fade",
    "Lightning",
    "ICU",
    "Multi Comet",
];

/// WLED 0.15.0's built-in palettes, the index being the id (`/json/pal`).
pub const PALETTES: &[&str] = &[
    "Default",
    "* Random Cycle",
    "* Color 1",
    "* Colors 1&2",
    "* Color Gradient",
    "* Colors Only",
    "Party",
    "Cloud",
    "Lava",
    "Ocean",
    "Forest",
    "Rainbow",
    "Rainbow Bands",
    "Sunset",
    "Rivendell",
    "Breeze",
    "Red & Blue",
    "Yellowout",
    "Analogous",
    "Splash",
    "Pastel",
    "Sunset 2",
    "Beach",
    "Vintage",
    "Departure",
    "Landscape",
    "Beech",
    "Sherbet",
    "Hult",
    "Hult 64",
    "Drywet",
    "Jul",
    "Grintage",
    "Rewhi",
    "Tertiary",
    "Fire",
    "Icefire",
    "Cyane",
    "Light Pink",
    "Autumn",
    "Magenta",
    "Magred",
    "Yelmag",
    "Yelblu",
    "Orange & Teal",
    "Tiamat",
    "April Night",
    "Orangery",
    "C9",
    "Sakura",
    "Aurora",
    "Atlantica",
    "C9 2",
    "C9 New",
    "Temperature",
    "Aurora 2",
    "Retro Clown",
    "Candy",
    "Toxy Reaf",
    "Fairy Reaf",
    "Semi Blue",
    "Pink Candy",
    "Red Reaf",
    "Aqua Flash",
    "Yelblu Hot",
    "Lite Light",
    "Red Flash",
    "Blink Red",
    "Red Shift",
    "Red Tide",
    "Candy2",
];

/// Frames [`WledOptions::malformed`] sends after every greeting: none is a message WLED could
/// send, each must be skipped by a client.
pub const MALFORMED_FRAMES: &[&str] = &[
    "this is not JSON",
    "[1, 2, 3]",
    r#"{"state": {"on": true, "bri": 300}}"#,
    r#"{"state": {"seg": [{"id": 0, "col": [["red"]]}]}}"#,
    r#"{"state": "on"}"#,
    r#"{"state": {"on": tru"#,
];

/// How the simulated controller is set up.
#[derive(Debug, Clone)]
pub struct WledOptions {
    /// Its MAC, as WLED writes it: 12 lowercase hex digits.
    pub mac: String,
    /// The name the user gave it (`info.name`).
    pub name: String,
    /// Its mDNS host and instance name; `wled-<last 6 hex of the MAC>` when `None`, as WLED
    /// names itself.
    pub mdns_name: Option<String>,
    /// Number of LEDs.
    pub leds: u32,
    /// A strip with a white channel (colors have four channels).
    pub rgbw: bool,
    /// Number of segments (1 to 4), the LEDs split evenly; segment 0 is the main one.
    pub segments: u8,
    /// After the greeting of every WebSocket client, send [`MALFORMED_FRAMES`] and a binary frame.
    pub malformed: bool,
}

impl Default for WledOptions {
    fn default() -> WledOptions {
        WledOptions {
            mac: "8813bf0455f0".to_owned(),
            name: "WLED Kitchen".to_owned(),
            mdns_name: None,
            leds: 30,
            rgbw: false,
            segments: 1,
            malformed: false,
        }
    }
}

impl WledOptions {
    /// The mDNS name it announces.
    pub fn mdns_name(&self) -> String {
        self.mdns_name.clone().unwrap_or_else(|| format!("wled-{}", &self.mac[self.mac.len().saturating_sub(6)..]))
    }
}

/// One segment of the strip.
#[derive(Debug, Clone)]
struct Seg {
    id: u8,
    start: u32,
    stop: u32,
    on: bool,
    bri: u8,
    cct: u8,
    col: [[u8; 4]; 3],
    fx: u16,
    sx: u8,
    ix: u8,
    pal: u16,
    sel: bool,
    rev: bool,
    mi: bool,
    frz: bool,
    n: Option<String>,
}

/// The light as the controller keeps it.
#[derive(Debug, Clone)]
struct Light {
    on: bool,
    /// The brightness it shows when on (WLED's `briLast`), never 0.
    bri: u8,
    transition: u32,
    mainseg: u8,
    segs: Vec<Seg>,
}

impl Light {
    fn new(o: &WledOptions) -> Light {
        let n = u32::from(o.segments.clamp(1, 4));
        let per = (o.leds / n).max(1);
        let colors = [[255, 160, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
        let segs = (0..n)
            .map(|i| Seg {
                id: i as u8,
                start: i * per,
                stop: if i + 1 == n { o.leds.max(i * per + 1) } else { (i + 1) * per },
                on: true,
                bri: 255,
                cct: 127,
                col: colors,
                fx: 0,
                sx: 128,
                ix: 128,
                pal: 0,
                sel: i == 0,
                rev: false,
                mi: false,
                frz: false,
                n: None,
            })
            .collect();
        Light { on: true, bri: 128, transition: 7, mainseg: 0, segs }
    }

    /// `/json/state` as WLED 0.15 writes it.
    fn json(&self, rgbw: bool) -> Value {
        let segs: Vec<Value> = self
            .segs
            .iter()
            .map(|s| {
                let col: Vec<Value> =
                    s.col.iter().map(|c| if rgbw { json!(c) } else { json!([c[0], c[1], c[2]]) }).collect();
                let mut seg = json!({
                    "id": s.id, "start": s.start, "stop": s.stop, "len": s.stop - s.start, "grp": 1, "spc": 0,
                    "of": 0, "on": s.on, "frz": s.frz, "bri": s.bri, "cct": s.cct, "set": 0, "col": col,
                    "fx": s.fx, "sx": s.sx, "ix": s.ix, "pal": s.pal, "c1": 128, "c2": 128, "c3": 16,
                    "sel": s.sel, "rev": s.rev, "mi": s.mi, "o1": false, "o2": false, "o3": false, "si": 0,
                    "m12": 0
                });
                if let (Some(n), Some(o)) = (&s.n, seg.as_object_mut()) {
                    o.insert("n".into(), json!(n));
                }
                seg
            })
            .collect();
        json!({
            "on": self.on, "bri": self.bri, "transition": self.transition, "ps": -1, "pl": -1, "ledmap": 0,
            "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
            "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1},
            "lor": 0, "mainseg": self.mainseg, "seg": segs
        })
    }

    /// Applies a state patch as WLED's `deserializeState` does; `true` when anything changed.
    fn apply(&mut self, patch: &Map<String, Value>) -> bool {
        let before = format!("{self:?}");
        let was_on = self.on;
        if let Some(bri) = patch.get("bri").and_then(Value::as_u64) {
            let bri = bri.min(255) as u8;
            if bri == 0 {
                self.on = false;
            } else {
                self.bri = bri;
                self.on = true;
            }
        }
        match patch.get("on") {
            Some(Value::Bool(on)) => self.on = *on,
            // Not toggled off again when the same patch's `bri` just turned it on.
            Some(Value::String(t)) if t.starts_with('t') && (was_on || self.on == was_on) => self.on = !was_on,
            _ => {}
        }
        if let Some(t) = patch.get("transition").and_then(Value::as_u64) {
            self.transition = t.min(65535) as u32;
        }
        if let Some(m) = patch.get("mainseg").and_then(Value::as_u64)
            && self.segs.iter().any(|s| u64::from(s.id) == m)
        {
            self.mainseg = m as u8;
        }
        let segs: Vec<&Map<String, Value>> = match patch.get("seg") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_object).collect(),
            Some(Value::Object(one)) => vec![one],
            _ => Vec::new(),
        };
        for (index, p) in segs.into_iter().enumerate() {
            let id = p.get("id").and_then(Value::as_u64).unwrap_or(index as u64);
            let Some(seg) = self.segs.iter_mut().find(|s| u64::from(s.id) == id) else { continue };
            seg.apply(p);
        }
        format!("{self:?}") != before
    }
}

impl Seg {
    fn apply(&mut self, p: &Map<String, Value>) {
        let byte = |key: &str| p.get(key).and_then(Value::as_u64).map(|v| v.min(255) as u8);
        let flag = |key: &str, now: bool| match p.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(t)) if t.starts_with('t') => !now,
            _ => now,
        };
        // A segment's brightness 0 turns it off and keeps its opacity, as WLED does.
        if let Some(b) = byte("bri") {
            if b > 0 {
                self.bri = b;
            }
            self.on = b > 0;
        }
        self.on = flag("on", self.on);
        self.sel = flag("sel", self.sel);
        self.rev = flag("rev", self.rev);
        self.mi = flag("mi", self.mi);
        self.frz = flag("frz", self.frz);
        if let Some(c) = byte("cct") {
            self.cct = c;
        }
        if let Some(s) = byte("sx") {
            self.sx = s;
        }
        if let Some(i) = byte("ix") {
            self.ix = i;
        }
        if let Some(fx) = p.get("fx").and_then(Value::as_u64)
            && (fx as usize) < EFFECTS.len()
        {
            self.fx = fx as u16;
        }
        if let Some(pal) = p.get("pal").and_then(Value::as_u64)
            && (pal as usize) < PALETTES.len()
        {
            self.pal = pal as u16;
        }
        if let Some(Value::String(n)) = p.get("n") {
            self.n = Some(n.clone()).filter(|n| !n.is_empty());
        }
        if let Some(Value::Array(colors)) = p.get("col") {
            for (slot, c) in self.col.iter_mut().zip(colors) {
                if let Some(rgbw) = color(c) {
                    *slot = rgbw;
                }
            }
        }
    }
}

/// A color as WLED takes it: `[r, g, b]`, `[r, g, b, w]` or hex `RRGGBB` / `WWRRGGBB`.
fn color(c: &Value) -> Option<[u8; 4]> {
    match c {
        Value::Array(ch) if ch.len() >= 3 => {
            let mut out = [0u8; 4];
            for (slot, v) in out.iter_mut().zip(ch) {
                *slot = v.as_u64()?.min(255) as u8;
            }
            Some(out)
        }
        Value::String(hex) if hex.len() == 6 || hex.len() == 8 => {
            let v = u32::from_str_radix(hex, 16).ok()?;
            let [w, r, g, b] = v.to_be_bytes();
            Some([r, g, b, w])
        }
        _ => None,
    }
}

/// How often connection threads look at their queue and the switches (stopped, frozen).
const TICK: Duration = Duration::from_millis(50);

/// The headers of every answer, as WLED sends them.
const HEADERS: [(&str, &str); 2] =
    [("Content-Type", "application/json; charset=utf-8"), ("Access-Control-Allow-Origin", "*")];

/// What the threads share.
struct Shared {
    options: WledOptions,
    started: Instant,
    control: Arc<Control>,
    device: Mutex<Device>,
}

/// The controller's mutable side.
struct Device {
    light: Light,
    patches: Vec<Value>,
    state_requests: usize,
    /// Outgoing frames of each WebSocket client, by connection number.
    clients: Vec<(u64, Sender<Message>)>,
}

impl Shared {
    fn device(&self) -> MutexGuard<'_, Device> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state_json(&self, d: &Device) -> Value {
        d.light.json(self.options.rgbw)
    }

    /// `/json/info` as WLED 0.15 writes it.
    fn info_json(&self, d: &Device) -> Value {
        let o = &self.options;
        let lc: u8 = if o.rgbw { 3 } else { 1 };
        let uptime = self.started.elapsed().as_secs();
        json!({
            "ver": "0.15.0", "vid": 2412100, "cn": "Kōsen", "release": "ESP32",
            "leds": {"count": o.leds, "pwr": if d.light.on { 470 } else { 0 }, "fps": 42, "maxpwr": 850,
                     "maxseg": 32, "bootps": 0, "seglc": vec![lc; d.light.segs.len()], "lc": lc,
                     "rgbw": o.rgbw, "wv": lc & 2, "cct": 0},
            "str": false, "name": o.name, "udpport": 21324, "simplifiedui": false, "live": false,
            "liveseg": -1, "lm": "", "lip": "", "ws": d.clients.len(),
            "fxcount": EFFECTS.len(), "palcount": PALETTES.len(), "cpalcount": 0, "maps": [{"id": 0}],
            "wifi": {"bssid": "82:22:1D:9A:7F:66", "rssi": -56, "signal": 88, "channel": 6, "ap": false},
            "fs": {"u": 12, "t": 983, "pmt": 0}, "ndc": 0, "arch": "esp32", "core": "v3.3.6-16-gcc5440f6a2",
            "clock": 240, "flash": 4, "lwip": 0, "freeheap": 180364, "uptime": uptime,
            "time": "1970-1-1, 00:00:00", "opt": 79, "brand": "WLED", "product": "FOSS",
            "mac": o.mac, "ip": "127.0.0.1"
        })
    }

    /// `{"state": …, "info": …}`, what the WebSocket sends (and `/json/si`).
    fn si(&self, d: &Device) -> Value {
        json!({"state": self.state_json(d), "info": self.info_json(d)})
    }

    /// Sends `{"state", "info"}` to every WebSocket client.
    fn broadcast(&self, d: &mut Device) {
        let text = self.si(d).to_string();
        d.clients.retain(|(_, tx)| tx.send(Message::text(text.clone())).is_ok());
    }
}

/// A simulated WLED controller on `127.0.0.1`; stopped when dropped.
pub struct WledSim {
    shared: Arc<Shared>,
    /// Stopped (the listener and every connection closed) when the simulator is dropped.
    server: Server,
}

impl std::fmt::Debug for WledSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WledSim").field("port", &self.port()).field("mac", &self.shared.options.mac).finish()
    }
}

impl WledSim {
    /// Starts it on a free port.
    pub fn start(options: WledOptions) -> WledSim {
        WledSim::start_on(0, options)
    }

    /// Starts it on `port` (0: a free one), e.g. again after a stop.
    pub fn start_on(port: u16, options: WledOptions) -> WledSim {
        let control = Arc::new(Control::new(TICK));
        let shared = Arc::new(Shared {
            started: Instant::now(),
            control: control.clone(),
            device: Mutex::new(Device {
                light: Light::new(&options),
                patches: Vec::new(),
                state_requests: 0,
                clients: Vec::new(),
            }),
            options,
        });
        let s = shared.clone();
        let server = Server::start(port, "wled-sim", control, move |conn, stream| serve(conn, stream, &s));
        WledSim { shared, server }
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Its MAC (the mDNS `mac` TXT record and `info.mac`).
    pub fn mac(&self) -> &str {
        &self.shared.options.mac
    }

    /// The device id the hub gives it: `wled:<mac>`.
    pub fn device_id(&self) -> String {
        format!("wled:{}", self.shared.options.mac)
    }

    /// Its mDNS instance name.
    pub fn mdns_name(&self) -> String {
        self.shared.options.mdns_name()
    }

    /// Announces it over mDNS as WLED does: `_wled._tcp.local.`, instance and host its mDNS name,
    /// at 127.0.0.1 on its port, TXT `mac=<mac>`.
    pub fn announce(&self, browser: &hearth_mdns::Browser) {
        let name = self.mdns_name();
        browser
            .announce(
                SERVICE_TYPE,
                &name,
                &format!("{name}.local."),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                self.port(),
                &[("mac", self.mac())],
            )
            .expect("announce the WLED simulator");
    }

    /// Every state patch received, in order (HTTP bodies and WebSocket messages; not the bare
    /// `{"v":true}` requests for the state).
    pub fn patches(&self) -> Vec<Value> {
        self.shared.device().patches.clone()
    }

    /// Waits up to `timeout` for at least `n` patches; returns them all (maybe fewer).
    pub fn wait_patches(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let patches = self.patches();
            if patches.len() >= n || Instant::now() >= deadline {
                return patches;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many bare `{"v":true}` requests for the state the WebSocket received.
    pub fn state_requests(&self) -> usize {
        self.shared.device().state_requests
    }

    /// Its current `/json/state`.
    pub fn state(&self) -> Value {
        let d = self.shared.device();
        self.shared.state_json(&d)
    }

    /// How many WebSocket clients are connected.
    pub fn ws_clients(&self) -> usize {
        self.shared.device().clients.len()
    }

    /// Changes its state as its button or the WLED app would (a state patch, not recorded in
    /// [`WledSim::patches`]), and pushes the new state and info to every WebSocket client.
    pub fn set_physically(&self, patch: Value) {
        let mut d = self.shared.device();
        if let Some(p) = patch.as_object() {
            d.light.apply(p);
        }
        self.shared.broadcast(&mut d);
    }

    /// Sends `text` as one text frame to every WebSocket client (for malformed-input tests).
    pub fn push_raw(&self, text: &str) {
        let mut d = self.shared.device();
        d.clients.retain(|(_, tx)| tx.send(Message::text(text)).is_ok());
    }

    /// Frozen, it accepts connections and reads requests but answers nothing, and sends nothing
    /// over its WebSockets (what happens meanwhile is lost), until unfrozen.
    pub fn freeze(&self, frozen: bool) {
        self.shared.control.freeze(frozen);
    }
}

impl Drop for WledSim {
    fn drop(&mut self) {
        self.server.stop();
        self.shared.device().clients.clear();
    }
}

/// One connection: an HTTP request, or a WebSocket upgrade.
fn serve(conn: u64, mut stream: TcpStream, shared: &Arc<Shared>) {
    let Some(req) = http::read_request(&mut stream, &shared.control) else { return };
    // Frozen: the request was read; no answer until thawed.
    if !shared.control.wait_thawed() {
        return;
    }
    let path = req.path().trim_end_matches('/');
    if req.is_websocket_upgrade() && path == "/ws" {
        if let Some(ws) = http::accept_websocket(stream, &req, &HEADERS) {
            websocket(conn, ws, shared);
        }
        return;
    }
    let (status, body) = route(&req, path, shared);
    http::respond(&mut stream, status, &HEADERS, &body);
}

/// Answers an HTTP request: status and JSON body.
fn route(req: &Request, path: &str, shared: &Shared) -> (u16, String) {
    const OK: u16 = 200;
    let mut d = shared.device();
    match (req.method.as_str(), path) {
        ("GET", "/json") => {
            let all = json!({
                "state": shared.state_json(&d), "info": shared.info_json(&d),
                "effects": EFFECTS, "palettes": PALETTES
            });
            (OK, all.to_string())
        }
        ("GET", "/json/state") => (OK, shared.state_json(&d).to_string()),
        ("GET", "/json/info") => (OK, shared.info_json(&d).to_string()),
        ("GET", "/json/si") => (OK, shared.si(&d).to_string()),
        ("GET", "/json/eff") => (OK, json!(EFFECTS).to_string()),
        ("GET", "/json/pal") => (OK, json!(PALETTES).to_string()),
        ("POST", "/json" | "/json/state" | "/json/si") => {
            let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, r#"{"error":9}"#.to_owned());
            };
            d.patches.push(Value::Object(patch.clone()));
            if d.light.apply(&patch) {
                shared.broadcast(&mut d);
            }
            if patch.get("v").and_then(Value::as_bool) == Some(true) {
                (OK, shared.state_json(&d).to_string())
            } else {
                (OK, r#"{"success":true}"#.to_owned())
            }
        }
        _ => (404, r#"{"error":"Not Found"}"#.to_owned()),
    }
}

/// A WebSocket client, until it leaves or the simulator stops.
fn websocket(conn: u64, mut ws: tungstenite::WebSocket<TcpStream>, shared: &Arc<Shared>) {
    let (tx, rx): (Sender<Message>, Receiver<Message>) = mpsc::channel();
    {
        let mut d = shared.device();
        d.clients.push((conn, tx.clone()));
        // The greeting, as WLED sends on connect (with this client counted in `info.ws`).
        let _ = tx.send(Message::text(shared.si(&d).to_string()));
    }
    if shared.options.malformed {
        for frame in MALFORMED_FRAMES {
            let _ = tx.send(Message::text(*frame));
        }
        let _ = tx.send(Message::binary(vec![0xde, 0xad, 0xbe, 0xef]));
    }
    // Frozen, it reads and drops what the client sends and sends nothing.
    http::serve_websocket(&mut ws, &shared.control, WhileFrozen::Drop, &rx, |text| {
        ws_message(text, &tx, shared);
        None
    });
    shared.device().clients.retain(|(i, _)| *i != conn);
}

/// A text message from a WebSocket client, as WLED's `wsEvent` takes it.
fn ws_message(text: &str, reply: &Sender<Message>, shared: &Shared) {
    if !text.is_empty() && text.len() < 10 && text.starts_with('p') {
        let _ = reply.send(Message::text("pong"));
        return;
    }
    let Ok(Value::Object(patch)) = serde_json::from_str::<Value>(text) else { return };
    let mut d = shared.device();
    let verbose = patch.get("v").and_then(Value::as_bool) == Some(true);
    if verbose && patch.len() == 1 {
        d.state_requests += 1;
        let _ = reply.send(Message::text(shared.si(&d).to_string()));
        return;
    }
    if patch.contains_key("lv") {
        return;
    }
    d.patches.push(Value::Object(patch.clone()));
    if d.light.apply(&patch) {
        shared.broadcast(&mut d);
    } else if verbose {
        let _ = reply.send(Message::text(shared.si(&d).to_string()));
    } else {
        let _ = reply.send(Message::text(r#"{"success":true}"#));
    }
}
