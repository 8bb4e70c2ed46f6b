//! The runner every Wi-Fi adapter shares: devices found by mDNS, offered in the discovery inbox,
//! and once accepted kept connected, each by its own task.
//!
//! A [`Protocol`] (Shelly, WLED, ESPHome) says which service types it browses, what an
//! announcement is ([`Protocol::identify`]: a [`Found`] keyed by the device's stable identity,
//! its MAC or own id, never its address), and how one connection to a device goes
//! ([`Protocol::session`]). [`run`] does the rest:
//!
//! - every announcement is offered to the inbox (again on each announcement, so the inbox shows
//!   the current address);
//! - a device accepted while the adapter runs is listed at once by the name it was found by
//!   (without features until its session describes it);
//! - every accepted device gets a supervisor task of its own, so a slow or misbehaving device
//!   never delays another. The supervisor runs sessions one after the other: when one ends it
//!   waits a jittered, growing delay (1 s doubling to 30 s, each between half and all of it) and
//!   connects again; an announcement at a new address (DHCP), or any announcement while the
//!   device is not online (it rebooted), reconnects at once to the address announced;
//! - a device that sleeps on battery (the session says so with [`Link::sleeps`]) is kept
//!   online through two of its wake periods, and connected the moment it announces itself awake;
//! - a device that has not answered for `offline_after_secs` (60 s by default) goes offline
//!   with the reason, `no answer from 192.168.1.23 for 60 s` (code `no_answer`), and comes back
//!   online when a session is up again;
//! - a device that answers but refuses the hub (a password or key missing or wrong: the session
//!   says so with [`Link::refused`]) is offline at once with that reason (code `refused`); a
//!   change of the adapter's secrets makes every device not online try again at once;
//! - commands go to the device's current session; while it has none, the command is refused
//!   in the log (the device is offline or about to be).
//!
//! Configuration shared by these adapters (`[adapters.<id>]`):
//! `{"enabled": false, "interfaces": ["eth0"], "offline_after_secs": 60}`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_sdk::{
    AdapterContext, AdapterError, AdapterEvent, AdapterState, AdapterStatus, Availability, BoxFuture, Command,
    DeviceDescriptor, DeviceId, EventSender, Found, HubGone, Secrets, Timestamp,
};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{Announcement, Browser, Seen};

/// How long a TCP connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Commands that may wait for one device (a burst from an automation or a slider): beyond it a
/// command is refused in the log, so one slow device never holds up the others' commands.
const COMMAND_QUEUE: usize = 256;
/// The first wait before reconnecting.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest wait before reconnecting.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The configuration every Wi-Fi adapter takes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanConfig {
    /// Run the adapter.
    pub enabled: bool,
    /// The interfaces to speak mDNS on (`["eth0"]`); every interface when empty.
    pub interfaces: Vec<String>,
    /// Seconds without an answer before a device is offline.
    pub offline_after_secs: u64,
}

impl Default for LanConfig {
    fn default() -> LanConfig {
        LanConfig { enabled: false, interfaces: Vec::new(), offline_after_secs: 60 }
    }
}

impl LanConfig {
    /// Reads `[adapters.<adapter>]`; errors name the section and the key.
    pub fn from_json(adapter: &str, json: &serde_json::Value) -> Result<LanConfig, String> {
        let c: LanConfig = if json.is_null() {
            LanConfig::default()
        } else {
            serde_json::from_value(json.clone()).map_err(|e| format!("[adapters.{adapter}]: {e}"))?
        };
        if c.offline_after_secs == 0 {
            return Err(format!("[adapters.{adapter}] offline_after_secs must be at least 1"));
        }
        Ok(c)
    }
}

/// Where a device is now, and what it announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its stable identity (the inbox key).
    pub key: String,
    /// Its device id.
    pub device: DeviceId,
    /// The name it announced.
    pub name: String,
    /// Its address now.
    pub address: IpAddr,
    /// The port it announced.
    pub port: u16,
    /// Its TXT records.
    pub txt: BTreeMap<String, String>,
}

impl Target {
    /// The address and port.
    pub fn socket(&self) -> SocketAddr {
        SocketAddr::new(self.address, self.port)
    }
}

/// A Wi-Fi protocol: what it browses, what an announcement is, and one connection to a device.
pub trait Protocol: Send + Sync + 'static {
    /// The adapter id (the prefix of its device ids).
    fn adapter(&self) -> &'static str;

    /// The mDNS service types it browses (`_wled._tcp.local.`).
    fn service_types(&self) -> &'static [&'static str];

    /// What an announcement is, for the inbox: `None` when it is not this protocol's device (a
    /// `_http._tcp` service that is not a Shelly). The key is the device's stable identity, and
    /// `device` is `<adapter>:<key>`, the id its session announces.
    fn identify(&self, announcement: &Announcement) -> Option<Found>;

    /// One connection to a device, until it fails: connect, describe the device
    /// ([`AdapterEvent::Device`]), call [`Link::up`], then report state and events and carry
    /// out [`Link::commands`]. Call [`Link::heard`] on everything the device sends, and fail
    /// with [`Link::no_answer`] when it has been silent for [`Link::idle`] (ask it something,
    /// or ping it, well before). Return `Ok` only when the command channel closes (the adapter
    /// is stopping); any failure is an `Err` saying what happened, in a sentence for the log.
    fn session(self: Arc<Self>, link: Link) -> BoxFuture<Result<(), String>>;
}

/// What a session gets: where the device is, where to report, its commands and secrets.
#[derive(Debug)]
pub struct Link {
    /// The device, where it is now.
    pub target: Target,
    /// Where to send what the device says.
    pub events: EventSender,
    /// Commands for this device.
    pub commands: mpsc::Receiver<Command>,
    /// The adapter's secrets (passwords, encryption keys).
    pub secrets: Secrets,
    /// How long the device may be silent before the session gives up.
    pub idle: Duration,
    shared: Arc<Shared>,
}

const UNKNOWN: u8 = 0;
const ONLINE: u8 = 1;
const OFFLINE: u8 = 2;

#[derive(Debug)]
struct Shared {
    last_heard: Mutex<Instant>,
    /// What was last reported: [`UNKNOWN`], [`ONLINE`] or [`OFFLINE`].
    reported: AtomicU8,
    /// Why the device refused the last session, when it did (a password or key missing or wrong).
    refusal: Mutex<Option<String>>,
    /// The refusal the device's availability says now.
    said: Mutex<Option<String>>,
    /// How long the device may sleep (battery devices), when longer than the idle time.
    sleep: Mutex<Option<Duration>>,
    /// Whether a session is up now.
    connected: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            last_heard: Mutex::new(Instant::now()),
            reported: AtomicU8::new(UNKNOWN),
            refusal: Mutex::new(None),
            said: Mutex::new(None),
            sleep: Mutex::new(None),
            connected: AtomicBool::new(false),
        }
    }

    /// How long the device may be silent before it is offline: the idle time, or its sleep.
    fn window(&self, idle: Duration) -> Duration {
        self.sleep.lock().ok().and_then(|s| *s).map_or(idle, |s| s.max(idle))
    }
}

impl Link {
    /// The device answered (any frame at all).
    pub fn heard(&self) {
        if let Ok(mut t) = self.shared.last_heard.lock() {
            *t = Instant::now();
        }
    }

    /// The device answered but refuses this hub, for a reason only the user can fix (a password
    /// or an encryption key missing or wrong): returns `reason`, for the session to fail with, and
    /// makes the device offline at once with it (code `refused`) instead of waiting for silence.
    /// A change of the adapter's secrets reconnects at once.
    pub fn refused(&self, reason: String) -> String {
        if let Ok(mut r) = self.shared.refusal.lock() {
            *r = Some(reason.clone());
        }
        reason
    }

    /// The device sleeps (on battery) and wakes on its own, at least every `period`: it is not
    /// offline until it has missed two wakes (and the idle time); when it wakes and announces
    /// itself, it is connected at once.
    pub fn sleeps(&self, period: Duration) {
        if let Ok(mut s) = self.shared.sleep.lock() {
            *s = Some(period * 2);
        }
    }

    /// How long the device has been silent.
    pub fn silence(&self) -> Duration {
        last_heard(&self.shared).elapsed()
    }

    /// The session is up (the device is described and streaming): the device is online.
    pub async fn up(&self) -> Result<(), HubGone> {
        self.heard();
        if let Ok(mut said) = self.shared.said.lock() {
            *said = None;
        }
        self.shared.connected.store(true, Ordering::SeqCst);
        if self.shared.reported.swap(ONLINE, Ordering::SeqCst) != ONLINE {
            self.events.availability(&self.target.device, Availability::online(Timestamp::now())).await?;
        }
        Ok(())
    }

    /// Why a silent device is given up: `no answer from 192.168.1.23 for 60 s`.
    pub fn no_answer(&self) -> String {
        no_answer(self.target.address, self.idle)
    }

    /// Opens a TCP connection to the device, within [`CONNECT_TIMEOUT`].
    pub async fn connect(&self) -> Result<TcpStream, String> {
        let to = self.target.socket();
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
            Ok(Err(e)) => Err(format!("cannot connect to {to} ({e})")),
            Err(_) => Err(format!("cannot connect to {to} (no answer in {} s)", CONNECT_TIMEOUT.as_secs())),
        }
    }

    /// A new link for tests and tools: the returned sender feeds its commands.
    pub fn detached(
        target: Target,
        events: EventSender,
        secrets: Secrets,
        idle: Duration,
    ) -> (Link, mpsc::Sender<Command>) {
        let (tx, commands) = mpsc::channel(16);
        let shared = Arc::new(Shared::new());
        (Link { target, events, commands, secrets, idle, shared }, tx)
    }
}

/// A WebSocket to a device.
pub type WebSocket = tokio_tungstenite::WebSocketStream<TcpStream>;
pub use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The longest HTTP answer read from a device.
pub const MAX_HTTP_BODY: usize = 1 << 20;

/// An HTTP answer from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers, names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

impl Link {
    /// How long one HTTP exchange may take: the idle time, at most 10 s.
    fn http_timeout(&self) -> Duration {
        self.idle.min(Duration::from_secs(10))
    }

    /// One HTTP/1.1 request on a fresh connection (`Connection: close`), answered within the
    /// idle time (at most 10 s). `path` starts with `/`; `body` is sent with its length. The
    /// answer is read whole (chunked or not, at most [`MAX_HTTP_BODY`]); any status is returned.
    pub async fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<HttpResponse, String> {
        let to = self.target.socket();
        let exchange = async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = self.connect().await?;
            let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            if let Some(b) = body {
                head.push_str(&format!("Content-Length: {}\r\n", b.len()));
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            out.extend_from_slice(body.unwrap_or_default());
            stream.write_all(&out).await.map_err(|e| format!("cannot send to {to} ({e})"))?;
            let mut raw = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = stream.read(&mut chunk).await.map_err(|e| format!("cannot read from {to} ({e})"))?;
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() > MAX_HTTP_BODY + 64 * 1024 {
                    return Err(format!("{to} sent more than {} KiB", MAX_HTTP_BODY / 1024));
                }
                if let Some(done) = complete_response(&raw) {
                    raw.truncate(done);
                    break;
                }
            }
            self.heard();
            parse_response(&raw).map_err(|e| format!("{to} sent a malformed HTTP answer ({e})"))
        };
        match tokio::time::timeout(self.http_timeout(), exchange).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer from {to} in {} s", self.http_timeout().as_secs())),
        }
    }

    /// Opens a WebSocket to the device at `path`, with extra handshake `headers`.
    pub async fn websocket(&self, path: &str, headers: &[(&str, &str)]) -> Result<WebSocket, String> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let to = self.target.socket();
        let url = format!("ws://{to}{path}");
        let mut request =
            url.as_str().into_client_request().map_err(|e| format!("bad WebSocket address {url} ({e})"))?;
        for (name, value) in headers {
            let (Ok(n), Ok(v)) = (
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()),
                tokio_tungstenite::tungstenite::http::HeaderValue::from_str(value),
            ) else {
                return Err(format!("bad WebSocket header {name}"));
            };
            request.headers_mut().insert(n, v);
        }
        let handshake = async {
            let stream = self.connect().await?;
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(MAX_HTTP_BODY))
                .max_frame_size(Some(MAX_HTTP_BODY));
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map(|(ws, _)| ws)
                .map_err(|e| format!("WebSocket to {url} refused ({e})"))
        };
        match tokio::time::timeout(self.http_timeout(), handshake).await {
            Ok(Ok(ws)) => {
                self.heard();
                Ok(ws)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer from {to} in {} s", self.http_timeout().as_secs())),
        }
    }
}

/// Where a response in `raw` ends, once it is complete (by its length or its last chunk); an
/// answer without either ends when the connection closes.
fn complete_response(raw: &[u8]) -> Option<usize> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        let len: usize = len.trim().parse().ok()?;
        return (raw.len() >= head_end + len).then_some(head_end + len);
    }
    if head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked")) {
        return raw[head_end..].windows(5).position(|w| w == b"0\r\n\r\n").and_then(|p| {
            let at = head_end + p;
            // Only a last chunk that starts a line (not a body ending in "0").
            (at == head_end || raw[..at].ends_with(b"\r\n")).then_some(at + 5)
        });
    }
    None
}

/// Reads an HTTP/1.1 answer: status, headers, and the body (de-chunked).
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("the headers never end")? + 4;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "the headers are not text")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("status line {status_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = code.parse().map_err(|_| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut body = raw[head_end..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
        if body.len() < len {
            return Err(format!("the body ends after {} of {len} bytes", body.len()));
        }
        body.truncate(len);
    }
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("a chunk size never ends")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).map_err(|_| "a chunk size is not text")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("chunk size {size_text:?}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// The reason a silent device is offline.
pub fn no_answer(address: IpAddr, idle: Duration) -> String {
    format!("no answer from {address} for {} s", idle.as_secs())
}

/// The target an announcement points at, for a device `found` identifies; `None` without an
/// address.
pub fn target(found: &Found, a: &Announcement) -> Option<Target> {
    let address = *a.addresses.first()?;
    Some(Target {
        key: found.key.clone(),
        device: found.device.clone(),
        name: a.name.clone(),
        address,
        port: a.port,
        txt: a.txt.clone(),
    })
}

/// A wait between `d/2` and `d`, chosen at random, so devices that failed together do not
/// retry together.
fn jittered(d: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(d.as_nanos() as u64);
    let fraction = (h.finish() % 1000) as f64 / 1000.0;
    d.mul_f64(0.5 + fraction / 2.0)
}

/// One accepted device's supervisor, as the runner sees it.
struct Supervised {
    target: watch::Sender<Option<Target>>,
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<()>,
}

/// Runs a Wi-Fi adapter: browses, fills the inbox, and keeps every accepted device connected.
pub async fn run<P: Protocol>(protocol: P, mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let adapter = protocol.adapter();
    let protocol = Arc::new(protocol);
    let config = LanConfig::from_json(adapter, &ctx.config).map_err(AdapterError)?;
    let idle = Duration::from_secs(config.offline_after_secs);
    let browser = match Browser::start(&config.interfaces) {
        Ok(b) => b,
        Err(e) => {
            let status = AdapterStatus::with(AdapterState::Unavailable, e.to_string()).with_code("no_network");
            ctx.events.status(status).await?;
            ctx.shutdown.wait().await;
            return Ok(());
        }
    };
    let seen = browser.browse(protocol.service_types()).map_err(|e| AdapterError(e.to_string()))?;
    let result = run_on(protocol, ctx, idle, seen).await;
    drop(browser);
    result
}

/// Runs a Wi-Fi adapter on announcements from elsewhere (a protocol with a discovery of its
/// own, such as Yeelight's multicast search, turns its answers into [`Seen`]s): fills the inbox
/// and keeps every accepted device connected, as [`run`] does; `idle` is the configuration's
/// `offline_after_secs`.
pub async fn run_on<P: Protocol>(
    protocol: Arc<P>,
    mut ctx: AdapterContext,
    idle: Duration,
    mut seen: mpsc::Receiver<Seen>,
) -> Result<(), AdapterError> {
    let adapter = protocol.adapter();
    ctx.events.status(AdapterStatus::running()).await?;

    // Where each device was last announced, by key.
    let mut targets: HashMap<String, Target> = HashMap::new();
    let mut finds: HashMap<String, Found> = HashMap::new();
    let mut running: HashMap<DeviceId, Supervised> = HashMap::new();
    let mut inbox_open = true;
    let mut secrets_open = true;

    let start = |target: Option<Target>, device: DeviceId, ctx: &AdapterContext| -> Supervised {
        let (target_tx, target_rx) = watch::channel(target);
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let shared = Arc::new(Shared::new());
        let task = tokio::spawn(supervise(
            protocol.clone(),
            device,
            target_rx,
            commands_rx,
            (ctx.events.clone(), ctx.secrets.clone(), idle),
            shared.clone(),
        ));
        Supervised { target: target_tx, shared, commands, task }
    };

    // Devices accepted before this start are kept connected once they are announced.
    for (key, decision) in ctx.inbox.decisions() {
        if decision == hearth_sdk::Decision::Accepted {
            let device = DeviceId::new(adapter, &key);
            running.insert(device.clone(), start(None, device, &ctx));
        }
    }

    let result = loop {
        tokio::select! {
            biased;
            () = ctx.shutdown.wait() => break Ok(()),
            s = seen.recv() => match s {
                Some(Seen::Resolved(a)) => {
                    let Some(found) = protocol.identify(&a) else { continue };
                    let Some(t) = target(&found, &a) else { continue };
                    targets.insert(found.key.clone(), t.clone());
                    finds.insert(found.key.clone(), found.clone());
                    if let Some(s) = running.get(&found.device) {
                        // Announced at another address (DHCP), or announced again while not
                        // online (it rebooted): reconnect at once, at the address announced. A
                        // device that is online and where it was is left alone (devices announce
                        // themselves often, and under several service types).
                        let at = |t: &Target| (t.address, t.port);
                        let moved = s.target.borrow().as_ref().map(at) != Some(at(&t));
                        if moved || !s.shared.connected.load(Ordering::SeqCst) {
                            s.target.send_replace(Some(t));
                        } else {
                            // Its records, kept for the next session, without disturbing this one.
                            s.target.send_if_modified(|now| {
                                *now = Some(t);
                                false
                            });
                        }
                    }
                    if ctx.events.send(AdapterEvent::Found { found }).await.is_err() {
                        break Ok(());
                    }
                }
                // A goodbye changes nothing: a device that left stops answering, and is offline
                // when its time is up; one that says goodbye to reboot is back soon.
                Some(Seen::Removed { .. }) => {}
                None => break Ok(()),
            },
            decided = ctx.inbox.changed(), if inbox_open => match decided {
                Some(decisions) => {
                    // Newly accepted: supervise. No longer accepted (forgotten, removed): stop.
                    let mut gone = false;
                    for (key, decision) in &decisions {
                        if *decision != hearth_sdk::Decision::Accepted {
                            continue;
                        }
                        let device = DeviceId::new(adapter, key);
                        if running.contains_key(&device) {
                            continue;
                        }
                        // Added just now: the device is listed at once under the name it was
                        // found by (its session describes it fully), so a device that refuses
                        // the hub can say why on its page.
                        if let Some(found) = finds.get(key) {
                            let mut d = DeviceDescriptor::new(device.clone(), &found.name, Vec::new());
                            d.manufacturer = found.manufacturer.clone();
                            d.model = found.model.clone();
                            if ctx.events.device(d).await.is_err() {
                                gone = true;
                                break;
                            }
                        }
                        running.insert(device.clone(), start(targets.get(key).cloned(), device, &ctx));
                    }
                    if gone {
                        break Ok(());
                    }
                    let accepted: Vec<DeviceId> = decisions
                        .iter()
                        .filter(|(_, d)| **d == hearth_sdk::Decision::Accepted)
                        .map(|(k, _)| DeviceId::new(adapter, k))
                        .collect();
                    running.retain(|device, s| {
                        let keep = accepted.contains(device);
                        if !keep {
                            s.task.abort();
                        }
                        keep
                    });
                }
                None => inbox_open = false,
            },
            changed = ctx.secrets.changed(), if secrets_open => match changed {
                // A password or key entered: devices not online try again at once.
                Some(_) => {
                    for s in running.values() {
                        if s.shared.reported.load(Ordering::SeqCst) != ONLINE {
                            s.target.send_modify(|_| {});
                        }
                    }
                }
                None => secrets_open = false,
            },
            Some(command) = ctx.commands.recv() => {
                match running.get(&command.device) {
                    Some(s) => {
                        if s.commands.try_send(command).is_err() {
                            tracing::warn!(adapter, "a command was refused: the device has too many waiting");
                        }
                    }
                    None => tracing::warn!(adapter, device = %command.device, "a command for a device this adapter does not keep"),
                }
            }
        }
    };
    for (_, s) in running {
        s.task.abort();
    }
    result
}

/// Keeps one device connected: sessions one after the other, with backoff, availability from
/// what the device answers.
async fn supervise<P: Protocol>(
    protocol: Arc<P>,
    device: DeviceId,
    mut target: watch::Receiver<Option<Target>>,
    mut commands: mpsc::Receiver<Command>,
    (events, secrets, idle): (EventSender, Secrets, Duration),
    shared: Arc<Shared>,
) {
    let adapter = protocol.adapter();
    let mut backoff = BACKOFF_START;
    let mut last_error = String::new();
    loop {
        let now = target.borrow_and_update().clone();
        let mut reconnect_now = false;
        if let Some(t) = now {
            let (session_tx, session_rx) = mpsc::channel(COMMAND_QUEUE);
            let link = Link {
                target: t.clone(),
                events: events.clone(),
                commands: session_rx,
                secrets: secrets.clone(),
                idle,
                shared: shared.clone(),
            };
            let mut session = tokio::spawn(protocol.clone().session(link));
            let outcome = loop {
                tokio::select! {
                    r = &mut session => break Some(r),
                    changed = target.changed() => {
                        if changed.is_err() {
                            session.abort();
                            return;
                        }
                        session.abort();
                        reconnect_now = true;
                        break None;
                    }
                    c = commands.recv() => match c {
                        Some(c) => {
                            if session_tx.try_send(c).is_err() {
                                tracing::warn!(adapter, %device, "a command was refused: the device has too many waiting");
                            }
                        }
                        None => {
                            session.abort();
                            return;
                        }
                    },
                    () = offline_deadline(&shared, idle) => {
                        if go_offline(&shared, &events, &device, t.address, idle).await.is_err() {
                            session.abort();
                            return;
                        }
                    }
                }
            };
            shared.connected.store(false, Ordering::SeqCst);
            if shared.reported.load(Ordering::SeqCst) == ONLINE && last_heard(&shared).elapsed() < idle {
                // The session was up (or the device answered lately): start the waits again.
                backoff = BACKOFF_START;
            }
            match outcome {
                Some(Ok(Ok(()))) => return,
                Some(Ok(Err(e))) => {
                    let refusal = shared.refusal.lock().ok().and_then(|mut r| r.take());
                    if let Some(reason) = refusal
                        && refuse(&shared, &events, &device, reason).await.is_err()
                    {
                        return;
                    }
                    if e != last_error {
                        tracing::warn!(adapter, %device, "{e}; reconnecting");
                        last_error = e;
                    } else {
                        tracing::debug!(adapter, %device, "{e}; reconnecting");
                    }
                }
                Some(Err(join)) if join.is_panic() => {
                    tracing::error!(adapter, %device, "the connection task failed ({join}); reconnecting");
                }
                _ => {}
            }
        }
        if reconnect_now {
            continue;
        }
        // Wait before the next attempt; a new announcement ends the wait.
        let wait = tokio::time::sleep(jittered(backoff));
        tokio::pin!(wait);
        backoff = (backoff * 2).min(BACKOFF_MAX);
        loop {
            tokio::select! {
                () = &mut wait => break,
                changed = target.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    backoff = BACKOFF_START;
                    break;
                }
                c = commands.recv() => match c {
                    Some(c) => tracing::warn!(adapter, device = %c.device, "a command was not sent: the device is not connected"),
                    None => return,
                },
                () = offline_deadline(&shared, idle) => {
                    let address = target.borrow().as_ref().map(|t| t.address);
                    let gone = match address {
                        Some(a) => go_offline(&shared, &events, &device, a, idle).await,
                        None => go_unseen(&shared, &events, &device, idle).await,
                    };
                    if gone.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

fn last_heard(shared: &Shared) -> Instant {
    shared.last_heard.lock().map(|t| *t).unwrap_or_else(|_| Instant::now())
}

/// Resolves when a device not known to be offline has been silent for `idle`; never while it is offline.
async fn offline_deadline(shared: &Shared, idle: Duration) {
    if shared.reported.load(Ordering::SeqCst) == OFFLINE {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep_until(last_heard(shared) + shared.window(idle)).await;
}

async fn go_offline(
    shared: &Shared,
    events: &EventSender,
    device: &DeviceId,
    address: IpAddr,
    idle: Duration,
) -> Result<(), HubGone> {
    let idle = shared.window(idle);
    if last_heard(shared).elapsed() < idle || shared.reported.swap(OFFLINE, Ordering::SeqCst) == OFFLINE {
        return Ok(());
    }
    let reason = no_answer(address, idle);
    tracing::warn!(%device, "{reason}: offline");
    events.availability(device, Availability::offline(reason, Timestamp::now()).with_code("no_answer")).await
}

/// Offline at once with why the device refused this hub (once per reason).
async fn refuse(shared: &Shared, events: &EventSender, device: &DeviceId, reason: String) -> Result<(), HubGone> {
    let already = shared.said.lock().map(|s| s.as_deref() == Some(reason.as_str())).unwrap_or(false);
    if already && shared.reported.load(Ordering::SeqCst) == OFFLINE {
        return Ok(());
    }
    shared.reported.store(OFFLINE, Ordering::SeqCst);
    if let Ok(mut s) = shared.said.lock() {
        *s = Some(reason.clone());
    }
    events.availability(device, Availability::offline(reason, Timestamp::now()).with_code("refused")).await
}

async fn go_unseen(shared: &Shared, events: &EventSender, device: &DeviceId, idle: Duration) -> Result<(), HubGone> {
    if last_heard(shared).elapsed() < idle || shared.reported.swap(OFFLINE, Ordering::SeqCst) == OFFLINE {
        return Ok(());
    }
    let reason = format!("not announced on the network (mDNS) for {} s", idle.as_secs());
    events.availability(device, Availability::offline(reason, Timestamp::now()).with_code("not_announced")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_jittered_between_half_and_all() {
        let d = Duration::from_secs(8);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(d)).collect();
        assert!(waits.iter().all(|w| *w >= d / 2 && *w <= d), "{waits:?}");
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 50, "only {} distinct waits", distinct.len());
    }

    #[test]
    fn the_configuration_is_checked() {
        assert_eq!(LanConfig::from_json("wled", &serde_json::Value::Null), Ok(LanConfig::default()));
        let e = LanConfig::from_json("wled", &serde_json::json!({"interface": ["lo"]})).expect_err("typo");
        assert!(e.contains("[adapters.wled]") && e.contains("unknown field `interface`"), "{e}");
        let e = LanConfig::from_json("wled", &serde_json::json!({"offline_after_secs": 0})).expect_err("zero");
        assert!(e.contains("at least 1"), "{e}");
    }

    #[test]
    fn http_answers_are_read_with_a_length_chunked_or_to_the_end() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"on\":true}";
        assert_eq!(complete_response(plain), Some(plain.len()));
        assert_eq!(complete_response(&plain[..plain.len() - 1]), None);
        let r = parse_response(plain).expect("parsed");
        assert_eq!(
            (r.status, r.header("content-type"), r.body.as_slice()),
            (200, Some("application/json"), &b"{\"on\":true}"[..])
        );
        let chunked = b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nWWW-Authenticate: Digest qop=\"auth\"\r\n\r\n4\r\nab\r\n\r\n3\r\ncde\r\n0\r\n\r\n";
        assert_eq!(complete_response(chunked), Some(chunked.len()));
        let r = parse_response(chunked).expect("parsed");
        assert_eq!((r.status, r.body.as_slice()), (401, &b"ab\r\ncde"[..]));
        assert_eq!(r.header("WWW-Authenticate"), Some("Digest qop=\"auth\""));
        let to_the_end = b"HTTP/1.0 200 OK\r\n\r\nhello";
        assert_eq!(complete_response(to_the_end), None);
        assert_eq!(parse_response(to_the_end).expect("parsed").body, b"hello");
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
        ] {
            assert!(parse_response(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }

    #[test]
    fn the_offline_reason_names_the_address_and_the_time() {
        assert_eq!(
            no_answer("192.168.1.23".parse().expect("ip"), Duration::from_secs(60)),
            "no answer from 192.168.1.23 for 60 s"
        );
    }
}
