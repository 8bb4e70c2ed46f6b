//! The plugin side of the protocol: [`run`] makes a plugin of any [`hearth_sdk::Adapter`].
//!
//! A plugin written in Rust is an adapter, the same trait implementation a built-in adapter is,
//! and a `main` that hands it to [`run`]:
//!
//! ```no_run
//! # use hearth_sdk::{Adapter, AdapterContext, AdapterError, AdapterManifest, BoxFuture, Discovers};
//! # #[derive(Clone)] struct MyAdapter;
//! # impl Adapter for MyAdapter {
//! #     fn manifest(&self) -> AdapterManifest {
//! #         AdapterManifest { id: "mine", name: "Mine", discovers: Discovers::default(), actions: &[], secrets: None }
//! #     }
//! #     fn run(self: Box<Self>, mut ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
//! #         Box::pin(async move { ctx.shutdown.wait().await; Ok(()) })
//! #     }
//! # }
//! fn main() -> std::process::ExitCode {
//!     hearth_plugin::run(MyAdapter, "1.0.0")
//! }
//! ```
//!
//! The runner speaks `adapters/sdk/PLUGINS.md` on stdin and stdout:
//!
//! - It answers the hub's `hello` with the adapter's manifest and the plugin's version, takes
//!   `secrets` and `inbox` (the adapter sees them, and every later update, through
//!   [`AdapterContext::secrets`] and [`AdapterContext::inbox`]), and on `ready` starts
//!   [`Adapter::run`] with `config` from `hello` and no MQTT broker (plugins get none). On `bye` it
//!   writes the reason to stderr and exits with status 1.
//! - Every [`hearth_sdk::AdapterEvent`] the adapter sends goes out as one line. The event channel
//!   is bounded, and one task owns stdout and flushes after every line, so an adapter whose hub is
//!   busy waits (backpressure) and nothing is dropped.
//! - `command`s reach the adapter as [`hearth_sdk::Command`]s; one for a device the adapter has
//!   not announced in this run is answered with `error` `unknown_device`. `action`s reach it as
//!   [`ActionRequest`]s, and each is answered exactly once within 15 seconds (`timeout` if the
//!   adapter has not answered by then).
//! - It answers `ping` at once, whatever the adapter is doing, and `refresh` by itself, from the
//!   last descriptor, availability and values of every device that went out.
//! - On `shutdown`, or at the end of stdin, it fires [`AdapterContext::shutdown`], waits up to
//!   4.5 seconds for the adapter, writes what is left, and exits with status 0. If the adapter
//!   fails (`run` returns an error, or panics), it sends a `status` `failed` with the error and
//!   exits with status 1. If `run` returns `Ok` before it is asked to stop, the runner reports
//!   `status` `stopped` and keeps serving until the hub stops it, so that the hub sees no crash.
//!
//! # Configuration changes restart the adapter
//!
//! [`Adapter`] has no way to hand a running adapter a new configuration, so on `config` the
//! runner restarts it: it lets the running adapter take the commands and actions that came
//! before the `config` (messages are handled in the order they are written), fires its shutdown
//! signal, waits for it (up to 5 seconds each), and starts a fresh one with the new
//! configuration. That is why [`run`] takes an `A: Adapter + Clone`: the value passed in is a
//! template, and every start runs a clone of it. State that must outlive a restart (a connection
//! pool, a simulated device) goes behind an `Arc` in the adapter, so that clones share it.
//! Secrets and inbox decisions are carried over, and commands and actions that come after the
//! `config` wait for the new adapter. A `config` equal to the running one changes nothing.
//!
//! A fresh adapter announces its devices again. The hub already has them from this run, so after
//! a restart the runner holds back what only repeats what went out before: for each device, a
//! first `device` equal to the last descriptor, a first `availability` equal to the last one
//! (`since` aside), and from a first `state` without a cause the values that did not change; and
//! a first `status` equal to the last one. What changed goes out as usual.
//!
//! # stdout is the protocol's
//!
//! Everything a plugin writes to stdout is read as protocol, so **a plugin must not print to
//! stdout**: no `println!`, no library that prints there. Write to stderr (`eprintln!`), which the
//! hub keeps as the plugin's log, or send a structured `log` message with [`Log`]. An adapter that
//! logs with `tracing` needs a subscriber that writes to stderr
//! (`tracing_subscriber::fmt().with_writer(std::io::stderr)`): the default one writes to stdout.
//! Nothing in the runner writes to stdout but protocol lines. Secrets go to neither.

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hearth_sdk::{
    ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState,
    AdapterStatus, Availability, Command, Decision, DeviceDescriptor, DeviceId, EventSender, Inbox, Secret, Secrets,
    Shutdown, Value,
};
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::lines::{Line, LineReader, MAX_LINE};
use crate::protocol::{
    ActionFailure, ActionMessage, ActionResultMessage, ErrorMessage, HubMessage, LogLevel, LogMessage,
    PROTOCOL_VERSION, PluginControl, PluginHello, PluginMessage, ProtocolError, SecretText, codes, encode, parse_hub,
    short,
};

/// How long the runner waits for the adapter after `shutdown` (the hub allows 5 seconds in all).
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(4500);
/// How long the runner waits for the adapter to stop before it restarts it with a new `config`.
pub const RESTART_WAIT: Duration = Duration::from_secs(5);
/// How long an action may take before the runner answers `timeout` (the hub waits 15 seconds).
pub const ACTION_WAIT: Duration = Duration::from_millis(14_500);

/// After `shutdown`, everything (the adapter, the last lines) is over by then.
const EXIT_WITHIN: Duration = Duration::from_millis(4900);
/// After a `bye` or a failure, the last lines have this long to go out.
const LAST_WORDS: Duration = Duration::from_secs(1);
/// Events waiting between the adapter and the writer.
const EVENTS: usize = 64;
/// Lines waiting for stdout.
const LINES: usize = 64;
/// Answers (`pong`, `error`) waiting for stdout; they go before other lines.
const URGENT: usize = 16;
/// Hub messages the reader has handed on and the supervisor has not taken yet.
const INBOUND: usize = 1024;
/// Commands and actions waiting for the adapter to take them, beyond its own channels.
const WAITING: usize = 1024;
/// The adapter's command and action channels hold one each: the runner keeps the rest, so it
/// knows what the adapter has taken (room in the channel means it took the last one).
const HANDED: usize = 1;

/// The plugin runs.
const RUNNING: u8 = 0;
/// The adapter has been told to stop.
const STOPPING: u8 = 1;
/// The adapter has stopped, or has been abandoned.
const CLOSED: u8 = 2;

/// How a plugin's run ended, and so its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on `shutdown` or at the end of stdin: status 0.
    Done,
    /// The hub refused the plugin's `hello` with `bye`: status 1.
    Refused {
        /// `bye`'s code.
        code: String,
        /// `bye`'s reason.
        reason: String,
    },
    /// The adapter failed (its error, or a panic): status 1.
    Failed(String),
}

impl Exit {
    /// The process's exit status: 0 for [`Exit::Done`], 1 otherwise.
    pub fn code(&self) -> ExitCode {
        match self {
            Exit::Done => ExitCode::SUCCESS,
            Exit::Refused { .. } | Exit::Failed(_) => ExitCode::from(1),
        }
    }
}

/// Runs `adapter` as a plugin on stdin and stdout until the hub stops it; returns the exit status.
///
/// `version` is the plugin's own version, sent in `hello` (it should equal `plugin.toml`'s). This
/// blocks: it builds a multi-threaded tokio runtime, so call it from a plain `fn main`. See the
/// [module docs](self) for what it does, why `A` is `Clone`, and why a plugin must not print to
/// stdout.
pub fn run<A: Adapter + Clone>(adapter: A, version: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the plugin's async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let exit =
        runtime.block_on(serve(adapter, version, tokio::io::BufReader::new(tokio::io::stdin()), tokio::io::stdout()));
    // The thread still blocked reading stdin, and any task the adapter left behind, are not
    // waited for: the hub wants the process gone.
    runtime.shutdown_background();
    exit.code()
}

/// Runs `adapter` as a plugin over `reader` (the hub's lines) and `writer` (the plugin's), until
/// the hub stops it: [`run`] without the process, for tests (`tokio::io::duplex`) and for
/// embedding. Call it within a tokio runtime; it spawns tasks there.
///
/// When it returns, everything it wrote is flushed and `writer` is shut down.
pub async fn serve<A, R, W>(adapter: A, version: &str, reader: R, writer: W) -> Exit
where
    A: Adapter + Clone,
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let manifest = adapter.manifest();
    let (urgent_tx, urgent_rx) = mpsc::channel(URGENT);
    let (out_tx, out_rx) = mpsc::channel(LINES);
    let (close_tx, close_rx) = oneshot::channel();
    let writing = tokio::spawn(write_lines(writer, urgent_rx, out_rx, close_rx));

    let cache = Arc::new(Mutex::new(Cache::default()));
    let (fwd_tx, fwd_rx) = mpsc::channel(8);
    let forwarding = tokio::spawn(forward(fwd_rx, cache.clone(), out_tx.clone()));

    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND);
    let (stop_tx, stop_rx) = watch::channel(false);
    let reading = Reader {
        hello: hello_for(&manifest, version),
        urgent: urgent_tx,
        inbound: inbound_tx,
        stop: stop_tx,
        forwarder: fwd_tx.clone(),
        cache,
    };
    let reading = tokio::spawn(reading.run(LineReader::new(reader)));

    let supervisor = Supervisor::new(adapter, manifest, out_tx, fwd_tx.clone(), inbound_rx, stop_rx);
    let (exit, deadline) = supervisor.run().await;

    // The last events, then the last lines, within the deadline.
    let (ack_tx, ack_rx) = oneshot::channel();
    if tokio::time::timeout_at(deadline, fwd_tx.send(Fwd::Finish(ack_tx))).await.is_ok() {
        let _ = tokio::time::timeout_at(deadline, ack_rx).await;
    }
    let _ = close_tx.send(());
    let mut writing = writing;
    if tokio::time::timeout_at(deadline, &mut writing).await.is_err() {
        eprintln!("the last lines could not be written in time (is the hub reading?); leaving them");
        writing.abort();
    }
    reading.abort();
    forwarding.abort();
    exit
}

/// The plugin's `hello`: the manifest, the version, protocol 1.
fn hello_for(manifest: &AdapterManifest, version: &str) -> PluginHello {
    PluginHello {
        protocol: PROTOCOL_VERSION,
        id: manifest.id.to_owned(),
        name: manifest.name.to_owned(),
        version: version.to_owned(),
        discovers: manifest.discovers.clone(),
        actions: manifest.actions.iter().map(|a| (*a).to_owned()).collect(),
        secrets: manifest.secrets.map(|s| SecretText { names: s.names.to_owned(), values: s.values.to_owned() }),
    }
}

// --- Log -----------------------------------------------------------------------------------

tokio::task_local! {
    static LOG: Log;
}

/// Sends structured `log` messages to the hub, which writes them to its own log with the
/// plugin's id (PLUGINS.md §5 `log`).
///
/// Inside the future an adapter's `run` returns, [`Log::current`] (or the [`log`] function) is
/// connected to the runner. A task the adapter spawns does not inherit it: take
/// `Log::current()` before spawning, and move the handle in. Outside a runner it writes the line
/// to stderr instead. A log line may reach the hub ahead of device messages still queued. Never
/// log a secret.
#[derive(Debug, Clone)]
pub struct Log {
    out: Option<mpsc::Sender<PluginMessage>>,
}

impl Log {
    /// The log of the adapter this task runs in, or one that writes to stderr.
    pub fn current() -> Log {
        LOG.try_with(Clone::clone).unwrap_or(Log { out: None })
    }

    /// Sends one log line: a sentence, and facts as a JSON object (`serde_json::json!({"device":
    /// "powerstrip:vps-0001"})`; `null` or `{}` for none; any other value goes in as `value`).
    /// Waits while the hub is busy.
    pub async fn send(&self, level: LogLevel, message: impl Into<String>, fields: serde_json::Value) {
        let fields = match fields {
            serde_json::Value::Null => None,
            serde_json::Value::Object(map) if map.is_empty() => None,
            serde_json::Value::Object(map) => Some(map),
            other => Some(serde_json::Map::from_iter([("value".to_owned(), other)])),
        };
        let line = LogMessage { level, message: message.into(), fields };
        let sent = match &self.out {
            Some(out) => out.send(PluginMessage::Control(PluginControl::Log(line.clone()))).await.is_ok(),
            None => false,
        };
        if !sent {
            log_to_stderr(&line);
        }
    }
}

/// Sends one log line through [`Log::current`].
pub async fn log(level: LogLevel, message: impl Into<String>, fields: serde_json::Value) {
    Log::current().send(level, message, fields).await;
}

fn log_to_stderr(line: &LogMessage) {
    let level = serde_json::to_value(line.level).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    match &line.fields {
        Some(fields) => eprintln!("{level}: {} {}", line.message, serde_json::Value::Object(fields.clone())),
        None => eprintln!("{level}: {}", line.message),
    }
}

// --- Writer --------------------------------------------------------------------------------

/// Owns the output: writes each message as one whole line and flushes it. Answers go first.
/// On `close`, writes what is queued and stops.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut urgent: mpsc::Receiver<PluginMessage>,
    mut lines: mpsc::Receiver<PluginMessage>,
    mut close: oneshot::Receiver<()>,
) {
    let mut broken = false;
    let (mut urgent_open, mut lines_open) = (true, true);
    while urgent_open || lines_open {
        let message = tokio::select! {
            biased;
            m = urgent.recv(), if urgent_open => match m {
                Some(m) => m,
                None => {
                    urgent_open = false;
                    continue;
                }
            },
            m = lines.recv(), if lines_open => match m {
                Some(m) => m,
                None => {
                    lines_open = false;
                    continue;
                }
            },
            _ = &mut close => {
                while let Ok(m) = urgent.try_recv() {
                    write_line(&mut writer, &m, &mut broken).await;
                }
                while let Ok(m) = lines.try_recv() {
                    write_line(&mut writer, &m, &mut broken).await;
                }
                break;
            }
        };
        write_line(&mut writer, &message, &mut broken).await;
    }
    if !broken {
        let _ = writer.shutdown().await;
    }
}

async fn write_line<W: AsyncWrite + Unpin>(writer: &mut W, message: &PluginMessage, broken: &mut bool) {
    if *broken {
        return;
    }
    let line = encode(message);
    let written = async {
        writer.write_all(line.as_bytes()).await?;
        writer.flush().await
    };
    if let Err(e) = written.await {
        eprintln!("cannot write to stdout ({e}): the hub has gone; nothing more is written");
        *broken = true;
    }
}

// --- Events and the picture of the devices -------------------------------------------------

type Tagged = (&'static str, AdapterEvent);

/// What the forwarder is told.
enum Fwd {
    /// A new adapter instance sends on `events` from now on; `restarted` when one ran before.
    Switch { events: mpsc::Receiver<Tagged>, restarted: bool },
    /// Send the full picture (the hub's `refresh`).
    Refresh,
    /// Send what is queued, then stop.
    Finish(oneshot::Sender<()>),
}

/// Drains the adapter's events to the writer, keeping the picture of the devices on the way.
async fn forward(mut ctl: mpsc::Receiver<Fwd>, cache: Arc<Mutex<Cache>>, out: mpsc::Sender<PluginMessage>) {
    let mut events: Option<mpsc::Receiver<Tagged>> = None;
    loop {
        tokio::select! {
            biased;
            c = ctl.recv() => match c {
                Some(Fwd::Switch { events: new, restarted }) => {
                    if let Some(old) = events.as_mut() {
                        drain(old, &cache, &out).await;
                    }
                    if restarted {
                        lock(&cache).expect_repeats();
                    }
                    events = Some(new);
                }
                Some(Fwd::Refresh) => {
                    let picture = lock(&cache).picture();
                    for event in picture {
                        if out.send(PluginMessage::Adapter(event)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Fwd::Finish(ack)) => {
                    if let Some(old) = events.as_mut() {
                        drain(old, &cache, &out).await;
                    }
                    let _ = ack.send(());
                    return;
                }
                None => return,
            },
            e = recv_some(&mut events) => match e {
                Some((_, event)) => emit(event, &cache, &out).await,
                None => events = None,
            },
        }
    }
}

async fn drain(events: &mut mpsc::Receiver<Tagged>, cache: &Mutex<Cache>, out: &mpsc::Sender<PluginMessage>) {
    while let Ok((_, event)) = events.try_recv() {
        emit(event, cache, out).await;
    }
}

async fn emit(event: AdapterEvent, cache: &Mutex<Cache>, out: &mpsc::Sender<PluginMessage>) {
    let event = lock(cache).apply(event);
    if let Some(event) = event {
        let _ = out.send(PluginMessage::Adapter(event)).await;
    }
}

/// The next item of `rx`; `None` once it is closed; never, when there is no `rx`.
async fn recv_some<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn lock(cache: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What went out about each device, to answer `refresh` and to know which devices exist.
#[derive(Debug, Default)]
struct Cache {
    devices: BTreeMap<DeviceId, Entry>,
    announced: u64,
    status: Option<AdapterStatus>,
    status_repeat: bool,
}

#[derive(Debug)]
struct Entry {
    /// When it was first announced, to give the picture in that order.
    order: u64,
    descriptor: DeviceDescriptor,
    availability: Option<Availability>,
    values: BTreeMap<String, Value>,
    repeats: Repeats,
}

/// After a restart: which of a device's first messages may only repeat what went out before.
#[derive(Debug, Default, Clone, Copy)]
struct Repeats {
    device: bool,
    availability: bool,
    state: bool,
}

impl Cache {
    fn knows(&self, device: &DeviceId) -> bool {
        self.devices.contains_key(device)
    }

    /// A new instance of the adapter is starting: its first messages may repeat what went out.
    fn expect_repeats(&mut self) {
        for entry in self.devices.values_mut() {
            entry.repeats = Repeats { device: true, availability: true, state: true };
        }
        self.status_repeat = true;
    }

    /// Takes in an event on its way out; returns what of it is to go out.
    fn apply(&mut self, event: AdapterEvent) -> Option<AdapterEvent> {
        match event {
            AdapterEvent::Device { device } => {
                match self.devices.get_mut(&device.id) {
                    Some(entry) => {
                        if std::mem::take(&mut entry.repeats.device) && entry.descriptor == device {
                            return None;
                        }
                        entry.descriptor = device.clone();
                    }
                    None => {
                        self.announced += 1;
                        let entry = Entry {
                            order: self.announced,
                            descriptor: device.clone(),
                            availability: None,
                            values: BTreeMap::new(),
                            repeats: Repeats::default(),
                        };
                        self.devices.insert(device.id.clone(), entry);
                    }
                }
                Some(AdapterEvent::Device { device })
            }
            AdapterEvent::DeviceRemoved { device } => {
                self.devices.remove(&device);
                Some(AdapterEvent::DeviceRemoved { device })
            }
            AdapterEvent::State { device, mut values, cause } => {
                if let Some(entry) = self.devices.get_mut(&device) {
                    if std::mem::take(&mut entry.repeats.state) && cause.is_none() {
                        values.retain(|key, value| entry.values.get(key) != Some(value));
                        if values.is_empty() {
                            return None;
                        }
                    }
                    entry.values.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                Some(AdapterEvent::State { device, values, cause })
            }
            AdapterEvent::Availability { device, availability } => {
                if let Some(entry) = self.devices.get_mut(&device) {
                    let repeat = std::mem::take(&mut entry.repeats.availability);
                    if repeat && entry.availability.as_ref().is_some_and(|a| same_availability(a, &availability)) {
                        return None;
                    }
                    entry.availability = Some(availability.clone());
                }
                Some(AdapterEvent::Availability { device, availability })
            }
            AdapterEvent::Status { status } => {
                if std::mem::take(&mut self.status_repeat) && self.status.as_ref() == Some(&status) {
                    return None;
                }
                self.status = Some(status.clone());
                Some(AdapterEvent::Status { status })
            }
            other => Some(other),
        }
    }

    /// Every device, its availability and its values, in the order they were announced.
    fn picture(&self) -> Vec<AdapterEvent> {
        let mut entries: Vec<&Entry> = self.devices.values().collect();
        entries.sort_by_key(|e| e.order);
        let mut out = Vec::new();
        for entry in entries {
            let id = entry.descriptor.id.clone();
            out.push(AdapterEvent::Device { device: entry.descriptor.clone() });
            if let Some(availability) = &entry.availability {
                out.push(AdapterEvent::Availability { device: id.clone(), availability: availability.clone() });
            }
            // Only values of features the device still has.
            let values: BTreeMap<String, Value> = entry
                .values
                .iter()
                .filter(|(key, _)| entry.descriptor.feature(key).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !values.is_empty() {
                out.push(AdapterEvent::State { device: id, values, cause: None });
            }
        }
        out
    }
}

fn same_availability(a: &Availability, b: &Availability) -> bool {
    a.state == b.state && a.reason == b.reason && a.code == b.code
}

// --- Reader --------------------------------------------------------------------------------

/// What the reader hands the supervisor.
enum Inbound {
    Hello(serde_json::Value),
    Secrets(BTreeMap<String, String>),
    Inbox(BTreeMap<String, Decision>),
    Ready,
    Bye { code: String, reason: String },
    Config(serde_json::Value),
    Command(Command),
    Action(ActionMessage),
}

/// Reads the hub's lines, answers what it can at once (`ping`, `refresh`, refusals), and hands
/// the rest to the supervisor.
struct Reader {
    hello: PluginHello,
    urgent: mpsc::Sender<PluginMessage>,
    inbound: mpsc::Sender<Inbound>,
    /// `true` on `shutdown` or at the end of input.
    stop: watch::Sender<bool>,
    forwarder: mpsc::Sender<Fwd>,
    cache: Arc<Mutex<Cache>>,
}

impl Reader {
    async fn run<R: AsyncBufRead + Unpin>(self, mut lines: LineReader<R>) {
        // Before the plugin's `hello` nothing may be written; before `ready`, no device message.
        let mut greeted = false;
        let mut ready = false;
        loop {
            let line = match lines.next().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    self.stop.send_replace(true);
                    return;
                }
                Err(e) => {
                    eprintln!("cannot read stdin ({e}); stopping as if the hub had gone");
                    self.stop.send_replace(true);
                    return;
                }
            };
            let (number, text) = match line {
                Line::Text(number, text) => (number, text),
                Line::NotUtf8(number) => {
                    self.refuse(greeted, number, ProtocolError::new(codes::NOT_JSON, "the line is not UTF-8")).await;
                    continue;
                }
                Line::TooLong(number, length) => {
                    let message = format!("the line is {length} bytes; the limit is {MAX_LINE} bytes");
                    self.refuse(greeted, number, ProtocolError::new(codes::LINE_TOO_LONG, message)).await;
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            let message = match parse_hub(&text) {
                Ok(message) => message,
                Err(e) if e.refused_type.as_deref() == Some("error") => {
                    // Never an error for an error.
                    eprintln!("the hub's line {number} is an `error` this plugin cannot read: {}", e.message);
                    continue;
                }
                Err(e) => {
                    self.refuse(greeted, number, e).await;
                    continue;
                }
            };
            if !greeted && !matches!(message, HubMessage::Hello(_)) {
                eprintln!("the hub's line {number} (`{}`) came before its `hello`; ignored", message.kind());
                continue;
            }
            let handed = match message {
                HubMessage::Hello(hello) => {
                    if greeted {
                        self.refuse_type(number, codes::OUT_OF_ORDER, "hello", "a second `hello`").await;
                        continue;
                    }
                    if !hello.protocol.contains(&PROTOCOL_VERSION) {
                        eprintln!(
                            "the hub speaks protocol {:?}, and this plugin only {PROTOCOL_VERSION}; answering {PROTOCOL_VERSION} so that the hub can say so",
                            hello.protocol
                        );
                    }
                    greeted = true;
                    // On the reader's own queue, so that no answer of the reader can overtake it.
                    let answer = PluginMessage::Control(PluginControl::Hello(self.hello.clone()));
                    let _ = self.urgent.send(answer).await;
                    Inbound::Hello(hello.config)
                }
                HubMessage::Secrets(secrets) => Inbound::Secrets(secrets.secrets),
                HubMessage::Inbox { decisions } => Inbound::Inbox(decisions),
                HubMessage::Ready => {
                    if ready {
                        self.refuse_type(number, codes::OUT_OF_ORDER, "ready", "a second `ready`").await;
                        continue;
                    }
                    ready = true;
                    Inbound::Ready
                }
                HubMessage::Bye { code, reason } => {
                    let _ = self.inbound.send(Inbound::Bye { code, reason }).await;
                    return;
                }
                HubMessage::Config { config } => Inbound::Config(config),
                HubMessage::Command(command) => {
                    let known = lock(&self.cache).knows(&command.device);
                    if !known {
                        let message =
                            format!("no device `{}` was announced in this run", short(command.device.as_str()));
                        self.refuse_type(number, codes::UNKNOWN_DEVICE, "command", &message).await;
                        continue;
                    }
                    Inbound::Command(command.into())
                }
                HubMessage::Refresh => {
                    // One pending refresh answers any number of them.
                    let _ = self.forwarder.try_send(Fwd::Refresh);
                    continue;
                }
                HubMessage::Action(action) => Inbound::Action(action),
                HubMessage::Ping { id } => {
                    let _ = self.urgent.send(PluginMessage::Control(PluginControl::Pong { id })).await;
                    continue;
                }
                HubMessage::Shutdown => {
                    self.stop.send_replace(true);
                    return;
                }
                HubMessage::Error(e) => {
                    let about = match (e.line, &e.refused_type) {
                        (Some(line), Some(t)) => format!(" line {line} (`{t}`)"),
                        (Some(line), None) => format!(" line {line}"),
                        (None, Some(t)) => format!(" a `{t}`"),
                        (None, None) => String::new(),
                    };
                    eprintln!("the hub refused{about}: {}: {}", e.code, e.message);
                    continue;
                }
            };
            if self.inbound.send(handed).await.is_err() {
                return;
            }
        }
    }

    /// Answers a line with `error` (only once the plugin has said `hello`; stderr before).
    async fn refuse(&self, greeted: bool, number: u64, e: ProtocolError) {
        if !greeted {
            eprintln!("the hub's line {number} was refused before `hello`: {e}");
            return;
        }
        let _ = self.urgent.send(PluginMessage::Control(PluginControl::Error(e.answer(number)))).await;
    }

    async fn refuse_type(&self, number: u64, code: &str, refused: &str, message: &str) {
        let e = ErrorMessage {
            code: code.to_owned(),
            message: message.to_owned(),
            line: Some(number),
            refused_type: Some(refused.to_owned()),
        };
        let _ = self.urgent.send(PluginMessage::Control(PluginControl::Error(e))).await;
    }
}

// --- Supervisor ----------------------------------------------------------------------------

/// The channels of one running instance of the adapter.
struct Live {
    stop: watch::Sender<bool>,
    commands: mpsc::Sender<Command>,
    actions: mpsc::Sender<ActionRequest>,
    /// The instance's event channel, for the runner's own `status` after it ends.
    events: mpsc::Sender<Tagged>,
    secrets: watch::Sender<BTreeMap<String, Secret>>,
    inbox: watch::Sender<BTreeMap<String, Decision>>,
    /// The configuration it runs with.
    config: serde_json::Value,
}

type Run = Result<(), AdapterError>;

/// Starts, restarts and stops the adapter, and hands it commands and actions.
struct Supervisor<A> {
    template: A,
    manifest: AdapterManifest,
    config: serde_json::Value,
    secrets: BTreeMap<String, Secret>,
    inbox: BTreeMap<String, Decision>,
    out: mpsc::Sender<PluginMessage>,
    forwarder: mpsc::Sender<Fwd>,
    inbound: mpsc::Receiver<Inbound>,
    stop: watch::Receiver<bool>,
    /// `ready` came: the adapter has been started.
    started: bool,
    /// The running instance.
    task: Option<JoinHandle<Run>>,
    live: Option<Live>,
    /// The instance stopping for a restart, and when it is abandoned.
    old_task: Option<JoinHandle<Run>>,
    old_live: Option<Live>,
    old_deadline: Instant,
    /// A new `config` came: the running instance first takes what came before it.
    restart: Option<Restart>,
    commands: VecDeque<Command>,
    actions: VecDeque<ActionRequest>,
    /// One task per action waiting for its answer.
    answers: JoinSet<()>,
    /// Where the plugin is in stopping: unanswered actions are answered `unavailable` once
    /// it is [`CLOSED`], and a dropped one is `unavailable` rather than `failed` from
    /// [`STOPPING`] on.
    closing: watch::Sender<u8>,
}

impl<A: Adapter + Clone> Supervisor<A> {
    fn new(
        template: A,
        manifest: AdapterManifest,
        out: mpsc::Sender<PluginMessage>,
        forwarder: mpsc::Sender<Fwd>,
        inbound: mpsc::Receiver<Inbound>,
        stop: watch::Receiver<bool>,
    ) -> Supervisor<A> {
        Supervisor {
            template,
            manifest,
            config: serde_json::Value::Object(serde_json::Map::new()),
            secrets: BTreeMap::new(),
            inbox: BTreeMap::new(),
            out,
            forwarder,
            inbound,
            stop,
            started: false,
            task: None,
            live: None,
            old_task: None,
            old_live: None,
            old_deadline: Instant::now(),
            restart: None,
            commands: VecDeque::new(),
            actions: VecDeque::new(),
            answers: JoinSet::new(),
            closing: watch::channel(RUNNING).0,
        }
    }

    /// Runs until the plugin is to exit; returns how, and when its last lines must be out.
    async fn run(mut self) -> (Exit, Instant) {
        loop {
            let room = self.commands.len() + self.actions.len() < WAITING;
            let live = self.live.as_ref();
            // While a restart waits, only what came before the `config` goes to the old instance.
            let (commands_due, actions_due) = match &self.restart {
                Some(r) => (r.commands.min(self.commands.len()), r.actions.min(self.actions.len())),
                None => (self.commands.len(), self.actions.len()),
            };
            let taken = self.restart.is_some() && commands_due == 0 && actions_due == 0;
            let taken_by = self.restart.as_ref().map_or_else(Instant::now, |r| r.by);
            let step = tokio::select! {
                biased;
                message = self.inbound.recv(), if room => match message {
                    Some(message) => Step::Inbound(message),
                    None => Step::Stop,
                },
                () = stopped(&mut self.stop) => Step::Stop,
                ended = join(&mut self.task) => Step::Ended(ended),
                stopped = join_until(&mut self.old_task, self.old_deadline) => Step::Restart(stopped),
                () = deliver(live.map(|l| &l.commands), &mut self.commands), if commands_due > 0 => Step::Handed(1, 0),
                () = deliver(live.map(|l| &l.actions), &mut self.actions), if actions_due > 0 => Step::Handed(0, 1),
                () = all_taken(live, taken_by), if taken => Step::Taken,
            };
            match step {
                Step::Inbound(message) => {
                    if let Some(exit) = self.handle(message).await {
                        return exit;
                    }
                }
                Step::Stop => return self.shut_down().await,
                Step::Ended(ended) => {
                    self.task = None;
                    if let Some(exit) = self.ended(ended).await {
                        return exit;
                    }
                }
                Step::Handed(commands, actions) => {
                    if let Some(r) = &mut self.restart {
                        r.commands = r.commands.saturating_sub(commands);
                        r.actions = r.actions.saturating_sub(actions);
                    }
                }
                Step::Taken => {
                    self.restart = None;
                    if let Some(live) = self.live.take() {
                        live.stop.send_replace(true);
                        self.old_live = Some(live);
                        self.old_task = self.task.take();
                        self.old_deadline = Instant::now() + RESTART_WAIT;
                    }
                }
                Step::Restart(stopped) => {
                    self.old_task = None;
                    self.old_live = None;
                    match stopped {
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(e))) => eprintln!("the adapter failed while stopping for a restart: {e}"),
                        Some(Err(e)) => eprintln!("the adapter {} while stopping for a restart", crashed(&e)),
                        None => eprintln!(
                            "the adapter did not stop within {} s for a restart; it is abandoned",
                            RESTART_WAIT.as_secs_f64()
                        ),
                    }
                    self.start(true).await;
                }
            }
        }
    }

    async fn handle(&mut self, message: Inbound) -> Option<(Exit, Instant)> {
        match message {
            Inbound::Hello(config) => self.config = config,
            Inbound::Secrets(secrets) => {
                self.secrets = secrets.into_iter().map(|(name, value)| (name, Secret::new(value))).collect();
                if let Some(live) = &self.live {
                    live.secrets.send_replace(self.secrets.clone());
                }
            }
            Inbound::Inbox(decisions) => {
                self.inbox = decisions;
                if let Some(live) = &self.live {
                    live.inbox.send_replace(self.inbox.clone());
                }
            }
            Inbound::Ready => {
                if !self.started {
                    self.started = true;
                    self.start(false).await;
                }
            }
            Inbound::Bye { code, reason } => {
                eprintln!("the hub refused this plugin ({code}): {reason}");
                self.stop_everything();
                return Some((Exit::Refused { code, reason }, Instant::now() + LAST_WORDS));
            }
            Inbound::Config(config) => self.reconfigure(config).await,
            Inbound::Command(command) => {
                if self.live.is_some() || self.old_task.is_some() {
                    self.commands.push_back(command);
                } else {
                    eprintln!("a command for {} is dropped: the adapter is not running", command.device);
                }
            }
            Inbound::Action(action) => self.action(action),
        }
        None
    }

    /// Starts an instance of the adapter with the current configuration.
    async fn start(&mut self, restarted: bool) {
        let (events_tx, events_rx) = mpsc::channel(EVENTS);
        let (commands_tx, commands_rx) = mpsc::channel(HANDED);
        let (actions_tx, actions_rx) = mpsc::channel(HANDED);
        let (stop, shutdown) = Shutdown::channel();
        let (secrets_tx, secrets) = Secrets::channel(self.secrets.clone());
        let (inbox_tx, inbox) = Inbox::channel(self.inbox.clone());
        let _ = self.forwarder.send(Fwd::Switch { events: events_rx, restarted }).await;
        let ctx = AdapterContext {
            config: self.config.clone(),
            events: EventSender::new(self.manifest.id, events_tx.clone()),
            commands: commands_rx,
            actions: actions_rx,
            shutdown,
            mqtt: None,
            inbox,
            secrets,
        };
        let running = Box::new(self.template.clone()).run(ctx);
        let log = Log { out: Some(self.out.clone()) };
        self.task = Some(tokio::spawn(LOG.scope(log, running)));
        self.live = Some(Live {
            stop,
            commands: commands_tx,
            actions: actions_tx,
            events: events_tx,
            secrets: secrets_tx,
            inbox: inbox_tx,
            config: self.config.clone(),
        });
    }

    /// A new configuration: restart the adapter with it (once it runs, and if it changed), once
    /// the running instance has taken the commands and actions that came before it.
    async fn reconfigure(&mut self, config: serde_json::Value) {
        self.config = config;
        if !self.started {
            return;
        }
        if let Some(live) = &self.live {
            if self.restart.is_none() && live.config != self.config {
                // Commands and actions that came before the `config` are the old instance's.
                self.restart = Some(Restart {
                    commands: self.commands.len(),
                    actions: self.actions.len(),
                    by: Instant::now() + RESTART_WAIT,
                });
            }
        } else if self.old_task.is_none() {
            // It had stopped by itself: the new configuration may make it work again.
            self.start(true).await;
        }
        // Else it is stopping for a restart already, and starts with the newest configuration.
    }

    fn action(&mut self, message: ActionMessage) {
        while self.answers.try_join_next().is_some() {}
        let ActionMessage { id, action, params, context } = message;
        let (reply, answer) = oneshot::channel();
        if !self.manifest.actions.contains(&action.as_str()) {
            let _ = reply.send(Err(ActionError::NotFound(format!("this plugin has no action `{}`", short(&action)))));
        } else if self.live.is_none() && self.old_task.is_none() {
            let _ = reply.send(Err(ActionError::Unavailable("the adapter is not running".into())));
        } else {
            self.actions.push_back(ActionRequest { action, params, context, reply });
        }
        let out = self.out.clone();
        let mut closing = self.closing.subscribe();
        let stopping = self.closing.subscribe();
        self.answers.spawn(async move {
            let answer = tokio::select! {
                biased;
                answer = tokio::time::timeout(ACTION_WAIT, answer) => match answer {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) if *stopping.borrow() >= STOPPING => {
                        Err(ActionError::Unavailable("the plugin is stopping".into()))
                    }
                    Ok(Err(_)) => Err(ActionError::Failed("the adapter dropped the action without answering it".into())),
                    Err(_) => Err(ActionError::Timeout(format!(
                        "the adapter did not answer within {} s",
                        ACTION_WAIT.as_secs_f64()
                    ))),
                },
                () = closed(&mut closing) => Err(ActionError::Unavailable("the plugin is stopping".into())),
            };
            let message = match answer {
                Ok(result) => ActionResultMessage { id, result: Some(result), error: None },
                Err(e) => ActionResultMessage { id, result: None, error: Some(ActionFailure::from(&e)) },
            };
            let _ = out.send(PluginMessage::Control(PluginControl::ActionResult(message))).await;
        });
    }

    /// The running instance returned (or panicked) without being asked to.
    async fn ended(&mut self, ended: Result<Run, JoinError>) -> Option<(Exit, Instant)> {
        let error = match ended {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("the adapter {}", crashed(&e))),
        };
        if let Some(error) = error {
            return Some(self.fail(error).await);
        }
        eprintln!("the adapter stopped by itself; the plugin keeps answering until the hub stops it");
        if let Some(live) = self.live.take() {
            let status = AdapterStatus::with(AdapterState::Stopped, "the adapter stopped by itself");
            let _ = live.events.send((self.manifest.id, AdapterEvent::Status { status })).await;
        }
        if !self.commands.is_empty() {
            eprintln!("{} commands are dropped: the adapter has stopped", self.commands.len());
            self.commands.clear();
        }
        for action in self.actions.drain(..) {
            let _ = action.reply.send(Err(ActionError::Unavailable("the adapter has stopped".into())));
        }
        if self.restart.take().is_some() {
            // A new configuration was waiting for it to stop.
            self.start(true).await;
        }
        None
    }

    /// The adapter failed: say so in a `status`, and exit with status 1.
    async fn fail(&mut self, error: String) -> (Exit, Instant) {
        eprintln!("the adapter failed: {error}");
        let deadline = Instant::now() + LAST_WORDS;
        let status = AdapterEvent::Status { status: AdapterStatus::with(AdapterState::Failed, error.clone()) };
        // After the adapter's own events, when it has a channel; however busy the hub is, not
        // beyond the deadline.
        let _ = match self.live.take() {
            Some(live) => tokio::time::timeout_at(deadline, live.events.send((self.manifest.id, status))).await.is_ok(),
            None => tokio::time::timeout_at(deadline, self.out.send(PluginMessage::Adapter(status))).await.is_ok(),
        };
        self.stop_everything();
        self.close_actions(deadline).await;
        (Exit::Failed(error), deadline)
    }

    /// `shutdown` or the end of input: stop the adapter, within the hub's 5 seconds.
    async fn shut_down(&mut self) -> (Exit, Instant) {
        let began = Instant::now();
        let deadline = began + EXIT_WITHIN;
        self.closing.send_replace(STOPPING);
        self.restart = None;
        for live in [&self.live, &self.old_live].into_iter().flatten() {
            live.stop.send_replace(true);
        }
        self.commands.clear();
        for action in self.actions.drain(..) {
            let _ = action.reply.send(Err(ActionError::Unavailable("the plugin is stopping".into())));
        }
        let wait_until = began + SHUTDOWN_WAIT;
        let mut ended = None;
        while self.task.is_some() || self.old_task.is_some() {
            tokio::select! {
                r = join(&mut self.task) => {
                    self.task = None;
                    ended = Some(r);
                }
                _ = join(&mut self.old_task) => self.old_task = None,
                () = tokio::time::sleep_until(wait_until) => {
                    eprintln!(
                        "the adapter did not stop within {} s of the shutdown; it is abandoned",
                        SHUTDOWN_WAIT.as_secs_f64()
                    );
                    self.stop_everything();
                    break;
                }
            }
        }
        let error = match ended {
            Some(Ok(Err(e))) => Some(e.to_string()),
            Some(Err(e)) => Some(format!("the adapter {}", crashed(&e))),
            _ => None,
        };
        let exit = match error {
            Some(error) => {
                eprintln!("the adapter failed while stopping: {error}");
                let status = AdapterStatus::with(AdapterState::Failed, error.clone());
                if let Some(live) = self.live.take() {
                    let _ = tokio::time::timeout_at(
                        deadline,
                        live.events.send((self.manifest.id, AdapterEvent::Status { status })),
                    )
                    .await;
                }
                Exit::Failed(error)
            }
            None => Exit::Done,
        };
        self.live = None;
        self.old_live = None;
        self.close_actions(deadline).await;
        (exit, deadline)
    }

    /// Abandons every instance that still runs.
    fn stop_everything(&mut self) {
        for live in [&self.live, &self.old_live].into_iter().flatten() {
            live.stop.send_replace(true);
        }
        for task in [self.task.take(), self.old_task.take()].into_iter().flatten() {
            task.abort();
        }
    }

    /// Answers every action still waiting (`unavailable`), and waits for those answers to be queued.
    async fn close_actions(&mut self, deadline: Instant) {
        self.closing.send_replace(CLOSED);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.answers.join_next()).await {}
    }
}

fn crashed(e: &JoinError) -> &'static str {
    if e.is_panic() { "panicked" } else { "was cancelled" }
}

/// The end of `task`; never, when there is none.
async fn join(task: &mut Option<JoinHandle<Run>>) -> Result<Run, JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// The end of `task`, or `None` at `deadline`; never, when there is no task.
async fn join_until(task: &mut Option<JoinHandle<Run>>, deadline: Instant) -> Option<Result<Run, JoinError>> {
    match task {
        Some(task) => tokio::time::timeout_at(deadline, task).await.ok(),
        None => std::future::pending().await,
    }
}

/// What the supervisor does next.
enum Step {
    Inbound(Inbound),
    /// Commands and actions handed to the adapter.
    Handed(usize, usize),
    /// The running instance has taken all that came before a new `config`.
    Taken,
    Stop,
    Ended(Result<Run, JoinError>),
    Restart(Option<Result<Run, JoinError>>),
}

/// A restart for a new `config`, waiting for the running instance to take what came before it.
struct Restart {
    /// Queued commands that came before the `config`.
    commands: usize,
    /// Queued actions that came before the `config`.
    actions: usize,
    /// When the runner stops waiting for the instance to take them.
    by: Instant,
}

/// Resolves once `live` has taken every command and action handed to it, or at `by`.
async fn all_taken(live: Option<&Live>, by: Instant) {
    let Some(live) = live else {
        return;
    };
    let taken = async {
        let _ = live.commands.reserve().await;
        let _ = live.actions.reserve().await;
    };
    if tokio::time::timeout_at(by, taken).await.is_err() {
        eprintln!(
            "the adapter did not take its commands within {} s; restarting it all the same",
            RESTART_WAIT.as_secs_f64()
        );
    }
}

/// Resolves once the plugin has [`CLOSED`] (or the supervisor has gone).
async fn closed(closing: &mut watch::Receiver<u8>) {
    let _ = closing.wait_for(|c| *c >= CLOSED).await;
}

/// Resolves on `shutdown` or at the end of input (or when the reader has gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Something the adapter takes from the runner: a command or an action.
trait Deliver: Send {
    /// What becomes of it when the adapter takes no more.
    fn refuse(self);
}

impl Deliver for Command {
    fn refuse(self) {
        eprintln!("a command for {} is dropped: the adapter takes no more commands", self.device);
    }
}

impl Deliver for ActionRequest {
    fn refuse(self) {
        let _ = self.reply.send(Err(ActionError::Unavailable("the adapter takes no actions now".into())));
    }
}

/// Hands the first of `queue` to the adapter once its channel has room; if the adapter has
/// closed it, refuses the whole queue. Never resolves when there is no adapter.
async fn deliver<T: Deliver>(tx: Option<&mpsc::Sender<T>>, queue: &mut VecDeque<T>) {
    let Some(tx) = tx else {
        return std::future::pending().await;
    };
    match tx.reserve().await {
        Ok(permit) => {
            if let Some(item) = queue.pop_front() {
                permit.send(item);
            }
        }
        Err(_) => queue.drain(..).for_each(Deliver::refuse),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use hearth_sdk::{Access, AvailabilityState, BoxFuture, Capability, Discovers, Feature, SecretSpec, ValueType};
    use serde_json::{Value as Json, json};
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream, Lines};

    use super::*;

    /// How the probe adapter behaves.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    enum Mode {
        /// Announces its lamp, obeys, stops on shutdown.
        #[default]
        Normal,
        /// Ignores the shutdown signal.
        Stubborn,
        /// Returns `Ok` right after announcing.
        EndsAlone,
    }

    /// What the probe saw, shared by its clones (so it outlives restarts).
    #[derive(Debug, Default)]
    struct Seen {
        starts: usize,
        configs: Vec<Json>,
        secrets: Vec<(String, String)>,
        inbox: BTreeMap<String, Decision>,
        on: bool,
        /// The `level` of the instance that handled each command.
        handled: Vec<f64>,
    }

    #[derive(Debug, Clone, Default)]
    struct Probe {
        mode: Mode,
        seen: Arc<Mutex<Seen>>,
    }

    fn lamp() -> DeviceId {
        DeviceId::new("probe", "lamp")
    }

    fn values(seen: &Mutex<Seen>, level: f64) -> BTreeMap<String, Value> {
        BTreeMap::from([
            ("level".to_owned(), Value::Number(level)),
            ("on".to_owned(), Value::Bool(seen.lock().unwrap().on)),
        ])
    }

    impl Adapter for Probe {
        fn manifest(&self) -> AdapterManifest {
            AdapterManifest {
                id: "probe",
                name: "Probe",
                discovers: Discovers { mdns: vec!["_probe._tcp".into()], ..Discovers::default() },
                actions: &["echo", "refuse", "silent", "drop"],
                secrets: Some(SecretSpec { names: "a lamp id", values: "its key", check: |_, _| Ok(()) }),
            }
        }

        fn run(self: Box<Self>, mut ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
            Box::pin(async move {
                let level = ctx.config.get("level").and_then(Json::as_f64).unwrap_or(0.0);
                {
                    let mut seen = self.seen.lock().unwrap();
                    seen.starts += 1;
                    seen.configs.push(ctx.config.clone());
                    seen.secrets = ctx.secrets.all().into_iter().map(|(k, v)| (k, v.expose().to_owned())).collect();
                    seen.inbox = ctx.inbox.decisions();
                }
                log(LogLevel::Info, "Probe started.", json!({"level": level})).await;
                let features = vec![
                    Feature::new("on", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
                    Feature::new("level", Capability::Other, ValueType::number(), Access::READ_ONLY),
                ];
                ctx.events.device(DeviceDescriptor::new(lamp(), "Lamp", features)).await?;
                let online = Availability { state: AvailabilityState::Online, reason: None, code: None, since: None };
                ctx.events.availability(&lamp(), online).await?;
                ctx.events.state(&lamp(), values(&self.seen, level), None).await?;
                ctx.events.status(AdapterStatus::running()).await?;
                if self.mode == Mode::EndsAlone {
                    return Ok(());
                }
                let mut held = Vec::new();
                loop {
                    tokio::select! {
                        () = ctx.shutdown.wait() => {
                            if self.mode == Mode::Stubborn {
                                std::future::pending::<()>().await;
                            }
                            break;
                        }
                        Some(command) = ctx.commands.recv() => {
                            self.seen.lock().unwrap().handled.push(level);
                            if let Some(on) = command.request.set.get("on").and_then(Value::as_bool) {
                                self.seen.lock().unwrap().on = on;
                                let report = BTreeMap::from([("on".to_owned(), Value::Bool(on))]);
                                ctx.events.state(&command.device, report, Some(command.context)).await?;
                            } else if command.request.set.contains_key("fail") {
                                return Err(AdapterError("the lamp caught fire".into()));
                            } else if command.request.set.contains_key("busy") {
                                // Blocks its thread: the runner must answer pings all the same.
                                #[allow(clippy::disallowed_methods)]
                                std::thread::sleep(Duration::from_millis(1500));
                            }
                        }
                        Some(action) = ctx.actions.recv() => match action.action.as_str() {
                            "echo" => {
                                let _ = action.reply.send(Ok(action.params));
                            }
                            "refuse" => {
                                let _ = action.reply.send(Err(ActionError::BadParams("`outlet` must be l1, not l9".into())));
                            }
                            "silent" => held.push(action),
                            _ => drop(action),
                        },
                    }
                }
                log(LogLevel::Info, "Probe stopped.", Json::Null).await;
                Ok(())
            })
        }
    }

    /// The hub's end of a plugin served over in-memory pipes.
    struct Hub {
        to: Option<DuplexStream>,
        from: Lines<BufReader<DuplexStream>>,
        plugin: JoinHandle<Exit>,
    }

    impl Hub {
        fn start(adapter: Probe) -> Hub {
            let (to, plugin_in) = tokio::io::duplex(1 << 16);
            let (plugin_out, from) = tokio::io::duplex(1 << 16);
            let plugin =
                tokio::spawn(async move { serve(adapter, "9.9.9", BufReader::new(plugin_in), plugin_out).await });
            Hub { to: Some(to), from: BufReader::new(from).lines(), plugin }
        }

        async fn send(&mut self, line: &str) {
            let to = self.to.as_mut().expect("stdin is open");
            to.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        }

        /// The next line, parsed; `None` at the end of the plugin's output.
        async fn line(&mut self) -> Option<Json> {
            let line = tokio::time::timeout(Duration::from_secs(20), self.from.next_line())
                .await
                .expect("a line within 20 s")
                .unwrap()?;
            assert!(!line.contains('\r') && !line.contains("\n"), "{line:?}");
            Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")))
        }

        /// The next line that is not a `log`.
        async fn next(&mut self) -> Json {
            loop {
                let line = self.line().await.expect("a line, not the end of output");
                if line["type"] != "log" {
                    return line;
                }
            }
        }

        /// Hello to ready, and the probe's announcement.
        async fn handshake(&mut self, config: Json) {
            self.send(&format!(r#"{{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{config}}}"#))
                .await;
            assert_eq!(self.line().await.unwrap()["type"], "hello");
            self.send(r#"{"type":"secrets","secrets":{"lamp":"k3y"}}"#).await;
            self.send(r#"{"type":"inbox","decisions":{"lamp":"accepted"}}"#).await;
            self.send(r#"{"type":"ready"}"#).await;
            let log = self.line().await.unwrap();
            assert_eq!((log["type"].as_str(), log["message"].as_str()), (Some("log"), Some("Probe started.")));
            assert_eq!(self.next().await["type"], "device");
            assert_eq!(self.next().await["type"], "availability");
            assert_eq!(self.next().await["type"], "state");
            assert_eq!(self.next().await, json!({"type":"status","status":{"state":"running"}}));
        }

        async fn exit(self) -> Exit {
            tokio::time::timeout(Duration::from_secs(20), self.plugin).await.expect("the plugin ends").unwrap()
        }
    }

    const CONTEXT: &str = r#"{"id":"c1","origin":{"kind":"user","name":"alice"}}"#;

    #[tokio::test]
    async fn the_handshake_answers_with_the_manifest_and_hands_over_config_secrets_and_inbox() {
        let probe = Probe::default();
        let mut hub = Hub::start(probe.clone());
        // Nothing may be written before the plugin's hello: an early ping gets no answer.
        hub.send(r#"{"type":"ping","id":9}"#).await;
        hub.send(r#"{"type":"hello","protocol":[1,2],"hub":"0.1.0","schema":1,"config":{"level":3}}"#).await;
        // Answers the reader gives right after hello never overtake it.
        hub.send(r#"{"type":"ping","id":10}"#).await;
        assert_eq!(
            hub.line().await.unwrap(),
            json!({"type":"hello","protocol":1,"id":"probe","name":"Probe","version":"9.9.9",
                   "discovers":{"mdns":["_probe._tcp"]},"actions":["echo","refuse","silent","drop"],
                   "secrets":{"names":"a lamp id","values":"its key"}})
        );
        assert_eq!(hub.line().await.unwrap(), json!({"type":"pong","id":10}));
        hub.send(r#"{"type":"secrets","secrets":{"lamp":"k3y"}}"#).await;
        hub.send(r#"{"type":"inbox","decisions":{"lamp":"accepted"}}"#).await;
        assert_eq!(probe.seen.lock().unwrap().starts, 0, "nothing starts before ready");
        hub.send(r#"{"type":"ready"}"#).await;
        assert_eq!(
            hub.line().await.unwrap(),
            json!({"type":"log","level":"info","message":"Probe started.","fields":{"level":3.0}})
        );
        assert_eq!(hub.next().await["device"]["id"], "probe:lamp");
        assert_eq!(
            hub.next().await,
            json!({"type":"availability","device":"probe:lamp","availability":{"state":"online"}})
        );
        assert_eq!(hub.next().await, json!({"type":"state","device":"probe:lamp","values":{"level":3.0,"on":false}}));
        assert_eq!(hub.next().await["type"], "status");
        {
            let seen = probe.seen.lock().unwrap();
            assert_eq!(seen.configs, [json!({"level":3})]);
            assert_eq!(seen.secrets, [("lamp".to_owned(), "k3y".to_owned())]);
            assert_eq!(seen.inbox.get("lamp"), Some(&Decision::Accepted));
        }
        hub.send(r#"{"type":"ready"}"#).await;
        let e = hub.next().await;
        assert_eq!((e["code"].as_str(), e["refused_type"].as_str()), (Some("out_of_order"), Some("ready")));
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.line().await.unwrap()["message"], "Probe stopped.");
        assert_eq!(hub.line().await, None, "stdout is closed at the end");
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_ping_is_answered_at_once_while_the_adapter_is_busy() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({})).await;
        hub.send(&format!(r#"{{"type":"command","device":"probe:lamp","set":{{"busy":true}},"context":{CONTEXT}}}"#))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = std::time::Instant::now();
        hub.send(r#"{"type":"ping","id":1}"#).await;
        assert_eq!(hub.next().await, json!({"type":"pong","id":1}));
        assert!(asked.elapsed() < Duration::from_millis(1000), "{:?}", asked.elapsed());
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test]
    async fn commands_reach_the_adapter_and_refresh_is_answered_from_what_went_out() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({"level": 7})).await;
        hub.send(&format!(
            r#"{{"type":"command","device":"probe:lamp","set":{{"on":true}},"context":{CONTEXT},"future":"ignored"}}"#
        ))
        .await;
        assert_eq!(
            hub.next().await,
            json!({"type":"state","device":"probe:lamp","values":{"on":true},"cause":{"id":"c1","origin":{"kind":"user","name":"alice"}}})
        );
        hub.send(r#"{"type":"refresh"}"#).await;
        let device = hub.next().await;
        assert_eq!((device["type"].as_str(), device["device"]["id"].as_str()), (Some("device"), Some("probe:lamp")));
        assert_eq!(device["device"]["features"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            hub.next().await,
            json!({"type":"availability","device":"probe:lamp","availability":{"state":"online"}})
        );
        assert_eq!(hub.next().await, json!({"type":"state","device":"probe:lamp","values":{"level":7.0,"on":true}}));
        hub.send(r#"{"type":"ping","id":2}"#).await;
        assert_eq!(hub.next().await, json!({"type":"pong","id":2}), "nothing more");
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test]
    async fn refused_lines_are_answered_with_their_code_and_line_and_hub_errors_are_not() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({})).await;
        // Lines 1-4 were the handshake.
        hub.send(&format!(r#"{{"type":"command","device":"probe:ghost","set":{{"on":true}},"context":{CONTEXT}}}"#))
            .await;
        assert_eq!(
            hub.next().await,
            json!({"type":"error","code":"unknown_device","message":"no device `probe:ghost` was announced in this run","line":5,"refused_type":"command"})
        );
        hub.send(r#"{"type":"flush"}"#).await;
        assert_eq!(
            hub.next().await,
            json!({"type":"error","code":"unknown_type","message":"unknown message type `flush`","line":6,"refused_type":"flush"})
        );
        hub.send("").await; // line 7: blank, ignored
        hub.send(r#"{"type":"ping"}"#).await;
        let e = hub.next().await;
        assert_eq!(
            (e["code"].as_str(), e["line"].as_u64(), e["refused_type"].as_str()),
            (Some("bad_message"), Some(8), Some("ping"))
        );
        assert!(e["message"].as_str().unwrap().contains("id"), "{e}");
        hub.send("not json").await;
        let e = hub.next().await;
        assert_eq!((e["code"].as_str(), e["line"].as_u64()), (Some("not_json"), Some(9)));
        hub.send("[1]").await;
        assert_eq!(hub.next().await["code"], "not_an_object");
        hub.send(r#"{"type":"error","code":"invalid","message":"no such feature","line":3,"refused_type":"state"}"#)
            .await;
        hub.send(r#"{"type":"error","code":7}"#).await;
        hub.send(r#"{"type":"ping","id":5}"#).await;
        assert_eq!(hub.next().await, json!({"type":"pong","id":5}), "an error is never answered");
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn every_action_is_answered_exactly_once() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({})).await;
        let action = |id: &str, name: &str| {
            format!(
                r#"{{"type":"action","id":"{id}","action":"{name}","params":{{"outlet":"l1"}},"context":{CONTEXT}}}"#
            )
        };
        hub.send(&action("a1", "echo")).await;
        assert_eq!(hub.next().await, json!({"type":"action_result","id":"a1","result":{"outlet":"l1"}}));
        hub.send(&action("a2", "refuse")).await;
        assert_eq!(
            hub.next().await,
            json!({"type":"action_result","id":"a2","error":{"code":"bad_params","message":"`outlet` must be l1, not l9"}})
        );
        hub.send(&action("a3", "teleport")).await;
        assert_eq!(
            hub.next().await,
            json!({"type":"action_result","id":"a3","error":{"code":"not_found","message":"this plugin has no action `teleport`"}})
        );
        hub.send(&action("a4", "drop")).await;
        assert_eq!(hub.next().await["error"]["code"], "failed");
        let asked = Instant::now();
        hub.send(&action("a5", "silent")).await;
        let answer = hub.next().await;
        assert_eq!((answer["id"].as_str(), answer["error"]["code"].as_str()), (Some("a5"), Some("timeout")));
        let took = asked.elapsed();
        assert!(took >= ACTION_WAIT && took < Duration::from_secs(15), "{took:?}");
        hub.send(&action("a6", "silent")).await;
        hub.send(r#"{"type":"action","id":"a7"}"#).await;
        assert_eq!(hub.next().await["code"], "bad_message");
        hub.send(r#"{"type":"shutdown"}"#).await;
        // Shutting down answers what is still waiting.
        let answer = hub.next().await;
        assert_eq!((answer["id"].as_str(), answer["error"]["code"].as_str()), (Some("a6"), Some("unavailable")));
        assert_eq!(hub.line().await, None);
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_abandons_an_adapter_that_does_not_stop_within_the_limit() {
        let mut hub = Hub::start(Probe { mode: Mode::Stubborn, ..Probe::default() });
        hub.handshake(json!({})).await;
        let asked = Instant::now();
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.line().await, None);
        assert_eq!(hub.exit().await, Exit::Done);
        let took = asked.elapsed();
        assert!(took >= SHUTDOWN_WAIT && took < Duration::from_secs(5), "{took:?}");
    }

    #[tokio::test]
    async fn the_end_of_input_stops_the_plugin_at_once() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({})).await;
        let asked = std::time::Instant::now();
        hub.to = None;
        assert_eq!(hub.line().await.unwrap()["message"], "Probe stopped.");
        assert_eq!(hub.line().await, None);
        assert_eq!(hub.exit().await, Exit::Done);
        assert!(asked.elapsed() < Duration::from_secs(1));
        // Before hello too.
        let mut hub = Hub::start(Probe::default());
        hub.to = None;
        assert_eq!(hub.line().await, None);
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test]
    async fn bye_ends_the_plugin_with_status_1_and_nothing_starts() {
        let probe = Probe::default();
        let mut hub = Hub::start(probe.clone());
        hub.send(r#"{"type":"hello","protocol":[2],"hub":"9.0.0","schema":2,"config":{}}"#).await;
        assert_eq!(hub.line().await.unwrap()["protocol"], 1, "its own version when none is offered");
        hub.send(
            r#"{"type":"bye","code":"protocol_unsupported","reason":"the plugin chose protocol 1; this hub speaks 2"}"#,
        )
        .await;
        assert_eq!(hub.line().await, None);
        let exit = hub.exit().await;
        assert_eq!(
            exit,
            Exit::Refused {
                code: "protocol_unsupported".into(),
                reason: "the plugin chose protocol 1; this hub speaks 2".into()
            }
        );
        assert_eq!(exit.code(), ExitCode::from(1));
        assert_eq!(probe.seen.lock().unwrap().starts, 0);
    }

    #[tokio::test]
    async fn a_config_change_restarts_the_adapter_and_only_what_changed_goes_out() {
        let probe = Probe::default();
        let mut hub = Hub::start(probe.clone());
        let command =
            |on: bool| format!(r#"{{"type":"command","device":"probe:lamp","set":{{"on":{on}}},"context":{CONTEXT}}}"#);
        hub.handshake(json!({"level": 1})).await;
        hub.send(&command(true)).await;
        assert_eq!(hub.next().await["values"], json!({"on": true}));
        hub.send(r#"{"type":"config","config":{"level":2}}"#).await;
        assert_eq!(hub.line().await.unwrap()["message"], "Probe stopped.");
        assert_eq!(hub.line().await.unwrap()["message"], "Probe started.");
        assert_eq!(hub.line().await.unwrap(), json!({"type":"state","device":"probe:lamp","values":{"level":2.0}}));
        hub.send(r#"{"type":"ping","id":1}"#).await;
        assert_eq!(
            hub.line().await.unwrap(),
            json!({"type":"pong","id":1}),
            "no repeated device, availability or status"
        );
        {
            let seen = probe.seen.lock().unwrap();
            assert_eq!(seen.configs, [json!({"level": 1}), json!({"level": 2})]);
            assert_eq!(seen.secrets.len(), 1, "secrets are carried over");
        }
        // Messages are handled in order: a command before a `config` goes to the old instance,
        // one after it to the new one.
        hub.send(&command(false)).await;
        hub.send(r#"{"type":"config","config":{"level":3}}"#).await;
        hub.send(&command(true)).await;
        assert_eq!(hub.next().await["values"], json!({"on": false}));
        assert_eq!(hub.next().await, json!({"type":"state","device":"probe:lamp","values":{"level":3.0}}));
        assert_eq!(hub.next().await["values"], json!({"on": true}));
        assert_eq!(probe.seen.lock().unwrap().handled, [1.0, 2.0, 3.0]);
        // The same configuration again changes nothing.
        hub.send(r#"{"type":"config","config":{"level":3}}"#).await;
        hub.send(&command(false)).await;
        assert_eq!(hub.next().await["values"], json!({"on": false}));
        assert_eq!(probe.seen.lock().unwrap().starts, 3);
        hub.send(r#"{"type":"refresh"}"#).await;
        assert_eq!(hub.next().await["type"], "device");
        assert_eq!(hub.next().await["type"], "availability");
        assert_eq!(hub.next().await["values"], json!({"level": 3.0, "on": false}));
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test]
    async fn a_failing_adapter_reports_failed_and_exits_with_status_1() {
        let mut hub = Hub::start(Probe::default());
        hub.handshake(json!({})).await;
        hub.send(&format!(r#"{{"type":"command","device":"probe:lamp","set":{{"fail":true}},"context":{CONTEXT}}}"#))
            .await;
        assert_eq!(
            hub.next().await,
            json!({"type":"status","status":{"state":"failed","reason":"the lamp caught fire"}})
        );
        assert_eq!(hub.line().await, None);
        let exit = hub.exit().await;
        assert_eq!(exit, Exit::Failed("the lamp caught fire".into()));
        assert_eq!(exit.code(), ExitCode::from(1));
    }

    #[tokio::test]
    async fn an_adapter_that_ends_by_itself_leaves_the_plugin_answering() {
        let mut hub = Hub::start(Probe { mode: Mode::EndsAlone, ..Probe::default() });
        hub.handshake(json!({})).await;
        assert_eq!(
            hub.next().await,
            json!({"type":"status","status":{"state":"stopped","reason":"the adapter stopped by itself"}})
        );
        hub.send(r#"{"type":"ping","id":1}"#).await;
        assert_eq!(hub.next().await, json!({"type":"pong","id":1}));
        hub.send(r#"{"type":"action","id":"a1","action":"echo","params":{},"context":{"id":"c","origin":{"kind":"system"}}}"#)
            .await;
        assert_eq!(hub.next().await["error"]["code"], "unavailable");
        hub.send(r#"{"type":"shutdown"}"#).await;
        assert_eq!(hub.exit().await, Exit::Done);
    }

    #[tokio::test]
    async fn log_outside_a_runner_goes_to_stderr() {
        // No runner: nothing to send to, and no panic.
        log(LogLevel::Warn, "Nobody listens.", json!({"n": 1})).await;
        let sent = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::channel(1);
        let flag = sent.clone();
        LOG.scope(Log { out: Some(tx) }, async move {
            log(LogLevel::Debug, "Somebody listens.", json!("x")).await;
            flag.store(true, Ordering::SeqCst);
        })
        .await;
        assert!(sent.load(Ordering::SeqCst));
        let PluginMessage::Control(PluginControl::Log(line)) = rx.recv().await.unwrap() else { panic!() };
        assert_eq!(
            encode(&PluginMessage::Control(PluginControl::Log(line))),
            "{\"type\":\"log\",\"level\":\"debug\",\"message\":\"Somebody listens.\",\"fields\":{\"value\":\"x\"}}\n"
        );
    }
}
