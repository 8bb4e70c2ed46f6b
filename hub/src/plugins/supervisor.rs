//! One plugin's life: start the process, shake hands, carry messages both ways with every check
//! of `adapters/sdk/PLUGINS.md`, and restart, quarantine or stop it.
//!
//! The plugin's lines are read on a task of their own into a channel of a few lines, so when the
//! core is busy the supervisor stops taking lines, the pipe fills, and the plugin's writes block
//! (backpressure); the time spent waiting on the core does not count against the plugin's pong.
//! Nothing a plugin writes reaches the core unchecked: unreadable lines, foreign or unknown
//! devices, values of the wrong type and floods are answered with `error` and counted.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_plugin::lines::{Line, LineReader};
use hearth_plugin::manifest::Manifest;
use hearth_plugin::protocol::{
    ActionMessage, ErrorMessage, HubHello, HubMessage, LogLevel, LogMessage, PluginControl, PluginHello, PluginMessage,
    ProtocolError, SecretsMessage, codes, encode, parse_plugin, short,
};
use hearth_sdk::{
    ActionError, ActionRequest, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, Availability,
    AvailabilityState, Command, DeviceId, EventSender, Feature, Inbox, SCHEMA_VERSION, Secrets, Shutdown, Timestamp,
    check_value,
};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::core::{self, AdapterSlot, CoreHandle};

/// The protocol's timing. [`Timing::standard`] is what PLUGINS.md promises; tests may run faster
/// (`HEARTH_PLUGIN_TIMING=fast`).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Time for the plugin's `hello`.
    pub hello: Duration,
    /// Between two pings.
    pub ping: Duration,
    /// Time for a `pong`.
    pub pong: Duration,
    /// Time to exit after `shutdown` or `bye`, or after stdout closed.
    pub exit: Duration,
    /// Time for an `action_result`.
    pub action: Duration,
    /// The first restart's delay (doubling up to `backoff_max`).
    pub backoff: Duration,
    /// The longest restart delay.
    pub backoff_max: Duration,
}

impl Timing {
    /// The protocol's timing.
    pub fn standard() -> Timing {
        Timing {
            hello: Duration::from_secs(10),
            ping: Duration::from_secs(10),
            pong: Duration::from_secs(10),
            exit: Duration::from_secs(5),
            action: Duration::from_secs(15),
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }

    /// The standard timing, or a fast one for tests when `HEARTH_PLUGIN_TIMING=fast`.
    pub fn from_env() -> Timing {
        if std::env::var("HEARTH_PLUGIN_TIMING").is_ok_and(|v| v == "fast") {
            Timing {
                hello: Duration::from_secs(3),
                ping: Duration::from_millis(500),
                pong: Duration::from_secs(2),
                exit: Duration::from_secs(2),
                action: Duration::from_secs(3),
                backoff: Duration::from_millis(200),
                backoff_max: Duration::from_secs(2),
            }
        } else {
            Timing::standard()
        }
    }
}

/// Crashes within [`CRASH_WINDOW`] that quarantine a plugin.
pub const CRASH_LIMIT: usize = 5;
/// The window of [`CRASH_LIMIT`].
pub const CRASH_WINDOW: Duration = Duration::from_secs(600);
/// A run this long after `ready` resets the restart count.
pub const STABLE_RUN: Duration = Duration::from_secs(600);
/// Unreadable lines in a row that restart a plugin.
pub const UNREADABLE_LIMIT: u32 = 10;
/// Seconds in a row with refused lines that restart a plugin.
pub const RATE_LIMITED_SECONDS: u64 = 30;
/// Lines a plugin may burst.
pub const RATE_BURST: f64 = 1000.0;
/// Lines a plugin may send per second, sustained.
pub const RATE_PER_SEC: f64 = 200.0;
/// Lines waiting for the plugin to read before it counts as hung.
pub const STDIN_QUEUE: usize = 1000;
/// Lines of stderr kept.
pub const STDERR_KEPT: usize = 100;
/// Bytes of one stderr line kept.
pub const STDERR_LINE: usize = 4096;

/// What a plugin is doing, as the API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Live {
    /// `disabled`, `starting`, `running`, `restarting`, `quarantined`, `refused`, `failed`,
    /// `stopped`.
    pub state: &'static str,
    /// Why, when not running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The process id while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The version the plugin said in its `hello`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_version: Option<String>,
    /// When the current run became ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Timestamp>,
    /// Restarts since the hub started.
    pub restarts: u64,
    /// Crashes since the hub started.
    pub crashes: u64,
    /// Lines the hub could not read.
    pub unreadable_lines: u64,
    /// Messages the hub refused (foreign or unknown devices, invalid content, out of order,
    /// over the rate).
    pub refused_messages: u64,
    /// `error` messages the plugin sent.
    pub errors_from_plugin: u64,
    /// The last lines the plugin wrote to stderr.
    pub stderr: VecDeque<String>,
}

/// What the host and the API see of a supervisor.
#[derive(Debug, Default)]
pub struct Shared {
    live: Mutex<Live>,
}

impl Shared {
    /// A copy of what the plugin is doing.
    pub fn live(&self) -> Live {
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Changes it.
    pub fn update(&self, f: impl FnOnce(&mut Live)) {
        f(&mut self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    fn set(&self, state: &'static str, reason: Option<String>) {
        self.update(|l| {
            l.state = state;
            l.reason = reason;
        });
    }

    fn stderr(&self, line: String) {
        self.update(|l| {
            if l.stderr.len() == STDERR_KEPT {
                l.stderr.pop_front();
            }
            l.stderr.push_back(line);
        });
    }
}

/// What the host tells a supervisor.
#[derive(Debug)]
pub enum Control {
    /// A new configuration (validated, defaults filled in).
    Config(serde_json::Value),
    /// Stop the plugin: it was disabled.
    Stop,
    /// Stop waiting in quarantine (or after a refused handshake): a new supervisor takes over.
    Restart,
}

/// Everything a supervisor runs with.
#[derive(Debug)]
pub struct Supervisor {
    /// The plugin's id, as adapter ids are kept.
    pub id: &'static str,
    /// Its manifest.
    pub manifest: Manifest,
    /// Its directory.
    pub dir: PathBuf,
    /// The directory it may write to.
    pub data: PathBuf,
    /// Its configuration (validated, defaults filled in).
    pub config: serde_json::Value,
    /// The adapter channel to the core.
    pub events: EventSender,
    /// The core, to register the plugin's command and action channels at each start.
    pub core: CoreHandle,
    /// Its secrets.
    pub secrets: Secrets,
    /// What the host says.
    pub control: mpsc::Receiver<Control>,
    /// The hub's shutdown.
    pub shutdown: Shutdown,
    /// What the API sees.
    pub shared: Arc<Shared>,
    /// The protocol's timing.
    pub timing: Timing,
    /// Every device of the plugin the hub knows (from the registry, and announced since).
    pub known: BTreeSet<DeviceId>,
}

/// How one run of the plugin ended.
enum Outcome {
    /// Disabled, or the hub stops: not a crash.
    Stopped { disabled: bool },
    /// The handshake was refused: a restart cannot help.
    Refused(String),
    /// A crash: restart, or quarantine.
    Crashed { reason: String, hung: bool, ran: Duration },
}

impl Supervisor {
    /// Runs the plugin until it is disabled, quarantined or refused, or the hub stops.
    pub async fn run(mut self) {
        let id = self.id;
        let mut crashes: VecDeque<Instant> = VecDeque::new();
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.run_once().await;
            match outcome {
                Outcome::Stopped { disabled } => {
                    if disabled {
                        self.disabled().await;
                    }
                    return;
                }
                Outcome::Refused(reason) => {
                    tracing::error!(plugin = id, %reason, "The plugin's handshake was refused; it is not restarted until it is enabled again.");
                    self.down(&format!("plugin `{id}` was refused: {reason}"), "adapter_failed").await;
                    self.status(
                        AdapterStatus::with(AdapterState::Failed, reason.clone()).with_code("handshake_refused"),
                    )
                    .await;
                    self.shared.set("refused", Some(reason));
                    self.wait_for_stop().await;
                    return;
                }
                Outcome::Crashed { .. } if self.shutdown.is_triggered() => return,
                Outcome::Crashed { reason, hung, ran } => {
                    let lines: Vec<String> = self.shared.live().stderr.iter().rev().take(20).rev().cloned().collect();
                    tracing::warn!(plugin = id, %reason, stderr = %lines.join("\n"), "A plugin stopped unexpectedly.");
                    self.shared.update(|l| {
                        l.crashes += 1;
                        l.pid = None;
                        l.ready_at = None;
                    });
                    if ran >= STABLE_RUN {
                        attempt = 0;
                    }
                    let now = Instant::now();
                    crashes.push_back(now);
                    while crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
                        crashes.pop_front();
                    }
                    if crashes.len() >= CRASH_LIMIT {
                        let why = format!("crashed {CRASH_LIMIT} times in 10 minutes; the last time it {reason}");
                        tracing::error!(plugin = id, reason = %why, "A plugin is quarantined: it is not restarted until an administrator enables it again.");
                        self.down(
                            &format!("plugin `{id}` is quarantined: it crashed {CRASH_LIMIT} times in 10 minutes"),
                            "adapter_failed",
                        )
                        .await;
                        self.status(AdapterStatus::with(AdapterState::Failed, why.clone()).with_code("quarantined"))
                            .await;
                        self.shared.set("quarantined", Some(why));
                        self.wait_for_stop().await;
                        return;
                    }
                    attempt += 1;
                    let delay = backoff(self.timing, attempt);
                    let what =
                        if hung { "stopped answering".to_owned() } else { format!("stopped unexpectedly ({reason})") };
                    self.down(&format!("plugin `{id}` {what}; restarting"), "adapter_failed").await;
                    let status = format!("{reason}; restarting in {:.1} s", delay.as_secs_f64());
                    self.status(AdapterStatus::with(AdapterState::Starting, status.clone()).with_code("restarting"))
                        .await;
                    self.shared.set("restarting", Some(status));
                    if !self.wait(delay).await {
                        return;
                    }
                    self.shared.update(|l| l.restarts += 1);
                }
            }
        }
    }

    /// Marks every known device of the plugin offline with this reason.
    async fn down(&self, reason: &str, code: &str) {
        for d in &self.known {
            let availability = Availability::offline(reason, Timestamp::now()).with_code(code);
            let _ = self.events.send(AdapterEvent::Availability { device: d.clone(), availability }).await;
        }
    }

    async fn status(&self, status: AdapterStatus) {
        let _ = self.events.send(AdapterEvent::Status { status }).await;
    }

    /// Waits for the plugin to be disabled or the hub to stop, taking new configurations.
    async fn wait_for_stop(&mut self) {
        loop {
            tokio::select! {
                _ = self.shutdown.wait() => return,
                c = self.control.recv() => match c {
                    Some(Control::Config(v)) => self.config = v,
                    Some(Control::Restart) | None => return,
                    Some(Control::Stop) => {
                        self.disabled().await;
                        return;
                    }
                },
            }
        }
    }

    /// Marks the plugin disabled: its status, and its devices offline with the reason.
    async fn disabled(&self) {
        let reason = format!("plugin `{}` is disabled", self.id);
        self.down(&reason, "adapter_stopped").await;
        self.status(AdapterStatus::with(AdapterState::Stopped, "the plugin is disabled").with_code("disabled")).await;
        self.shared.set("disabled", None);
    }

    /// Waits `d`; false when the plugin was disabled (its devices marked) or the hub stops.
    async fn wait(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                _ = self.shutdown.wait() => return false,
                c = self.control.recv() => match c {
                    Some(Control::Config(v)) => self.config = v,
                    Some(Control::Stop) | None => {
                        self.disabled().await;
                        return false;
                    }
                    Some(Control::Restart) => return false,
                },
            }
        }
    }

    /// Starts the process and serves it until it ends.
    async fn run_once(&mut self) -> Outcome {
        let id = self.id;
        self.shared.set("starting", None);
        let (program, args) = self.manifest.program(&self.dir);
        if let Err(e) = std::fs::create_dir_all(&self.data) {
            return crashed(format!("could not start: cannot create its data directory {}: {e}", self.data.display()));
        }
        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(&args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
            .env("LANG", std::env::var_os("LANG").unwrap_or_else(|| "C.UTF-8".into()))
            .env("HOME", &self.data)
            .env("HEARTH_PLUGIN_ID", id)
            .env("HEARTH_PLUGIN_DATA", &self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal (or a signal to the hub's group) does
        // not reach it; the hub stops it with `shutdown`, in order.
        cmd.process_group(0);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return crashed(format!("could not start `{}`: {e}", program.display())),
        };
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return crashed("could not start: its pipes could not be opened".into());
        };
        self.shared.update(|l| l.pid = child.id());
        tracing::info!(plugin = id, pid = child.id().unwrap_or(0), "Started plugin.");

        // stderr: kept, and logged at debug.
        let shared = self.shared.clone();
        let stderr_task = tokio::spawn(async move {
            let mut r = BufReader::new(stderr);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut line = String::from_utf8_lossy(&buf).trim_end_matches(['\r', '\n']).to_owned();
                        if line.len() > STDERR_LINE {
                            let mut cut = STDERR_LINE;
                            while !line.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            line.truncate(cut);
                        }
                        tracing::debug!(plugin = id, "stderr: {line}");
                        shared.stderr(line);
                    }
                }
            }
        });
        // stdout: lines into a small channel (backpressure).
        let (line_tx, lines) = mpsc::channel::<std::io::Result<Line>>(4);
        let reader_task = tokio::spawn(async move {
            let mut r = LineReader::new(BufReader::new(stdout));
            loop {
                let next = r.next().await.transpose();
                let Some(next) = next else { break };
                let failed = next.is_err();
                if line_tx.send(next).await.is_err() || failed {
                    break;
                }
            }
        });
        // stdin: one writer, fed by a bounded queue.
        let (out_tx, mut out_rx) = mpsc::channel::<String>(STDIN_QUEUE);
        let writer_task = tokio::spawn(async move {
            let mut stdin = stdin;
            while let Some(line) = out_rx.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });

        let mut session = Session::new(self, out_tx, lines);
        let outcome = session.serve(&mut child).await;
        drop(session);
        let _ = child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        reader_task.abort();
        writer_task.abort();
        let _ = tokio::time::timeout(Duration::from_millis(500), stderr_task).await;
        outcome
    }
}

fn crashed(reason: String) -> Outcome {
    Outcome::Crashed { reason, hung: false, ran: Duration::ZERO }
}

/// The delay before the `n`-th restart in a row: min(2^(n-1), max) times the base, times a
/// random factor between 0.5 and 1.5.
pub fn backoff(t: Timing, n: u32) -> Duration {
    let factor = 2f64.powi(n.saturating_sub(1).min(20) as i32);
    let d = t.backoff.mul_f64(factor).min(t.backoff_max);
    crate::jitter::jittered(d)
}

/// What went wrong in a session.
struct Crash {
    reason: String,
    hung: bool,
}

fn crash(reason: impl Into<String>) -> Crash {
    Crash { reason: reason.into(), hung: false }
}

/// One run of the plugin, from its first line to its exit.
struct Session<'a> {
    sup: &'a mut Supervisor,
    out: mpsc::Sender<String>,
    lines: mpsc::Receiver<std::io::Result<Line>>,
    ready_at: Option<Instant>,
    started: Instant,
    /// Devices announced in this run, with their features.
    announced: HashMap<DeviceId, Vec<Feature>>,
    commands: Option<mpsc::Receiver<Command>>,
    actions: Option<mpsc::Receiver<ActionRequest>>,
    inbox: Option<Inbox>,
    pending: HashMap<String, (oneshot::Sender<Result<serde_json::Value, ActionError>>, Instant)>,
    next_action: u64,
    next_ping: u64,
    ping_due: Instant,
    /// The ping waiting for its pong, and its deadline.
    awaiting: Option<(u64, Instant)>,
    unreadable_in_a_row: u32,
    warned_unreadable: bool,
    tokens: f64,
    refilled: Instant,
    /// The second (since the start) of the last refusal for rate, and how many seconds in a row.
    rate_second: Option<u64>,
    rate_seconds_in_a_row: u64,
}

impl<'a> Session<'a> {
    fn new(sup: &'a mut Supervisor, out: mpsc::Sender<String>, lines: mpsc::Receiver<std::io::Result<Line>>) -> Self {
        let now = Instant::now();
        Session {
            sup,
            out,
            lines,
            ready_at: None,
            started: now,
            announced: HashMap::new(),
            commands: None,
            actions: None,
            inbox: None,
            pending: HashMap::new(),
            next_action: 0,
            next_ping: 0,
            ping_due: now,
            awaiting: None,
            unreadable_in_a_row: 0,
            warned_unreadable: false,
            tokens: RATE_BURST,
            refilled: now,
            rate_second: None,
            rate_seconds_in_a_row: 0,
        }
    }

    fn id(&self) -> &'static str {
        self.sup.id
    }

    fn ran(&self) -> Duration {
        self.ready_at.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Queues a line for the plugin; a full queue means the plugin does not read: hung.
    fn send(&mut self, m: &HubMessage) -> Result<(), Crash> {
        match self.out.try_send(encode(m)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(Crash { reason: format!("did not read its input ({STDIN_QUEUE} messages waiting)"), hung: true })
            }
        }
    }

    fn answer(&mut self, e: &ProtocolError, line: u64) -> Result<(), Crash> {
        self.send(&HubMessage::Error(e.answer(line)))
    }

    async fn serve(&mut self, child: &mut tokio::process::Child) -> Outcome {
        let hello = HubMessage::Hello(HubHello {
            protocol: vec![hearth_plugin::PROTOCOL_VERSION],
            hub: env!("CARGO_PKG_VERSION").to_owned(),
            schema: SCHEMA_VERSION,
            config: self.sup.config.clone(),
        });
        let hello_by = Instant::now() + self.sup.timing.hello;
        if let Err(c) = self.send(&hello) {
            return self.crashed(c);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ready = self.ready_at.is_some();
            let step: Result<Option<Outcome>, Crash> = tokio::select! {
                _ = self.sup.shutdown.wait() => return self.stop(child, false).await,
                c = self.sup.control.recv() => match c {
                    Some(Control::Config(v)) => {
                        self.sup.config = v.clone();
                        if ready { self.send(&HubMessage::Config { config: v }).map(|_| None) } else { Ok(None) }
                    }
                    Some(Control::Stop) | None => return self.stop(child, true).await,
                    Some(Control::Restart) => return self.stop(child, false).await,
                },
                line = self.lines.recv() => match line {
                    Some(Ok(line)) => self.on_line(line).await,
                    Some(Err(e)) => Err(crash(format!("closed its output ({e})"))),
                    None => {
                        // stdout closed: the process should be exiting.
                        match tokio::time::timeout(self.sup.timing.exit, child.wait()).await {
                            Ok(Ok(status)) => Err(crash(exited(status))),
                            _ => Err(crash("closed its output but kept running")),
                        }
                    }
                },
                status = child.wait() => {
                    // Take what it wrote before it went.
                    while let Ok(Some(Ok(line))) = tokio::time::timeout(Duration::from_millis(500), self.lines.recv()).await {
                        if let Err(c) = self.on_line(line).await {
                            return self.crashed(c);
                        }
                    }
                    Err(crash(match status { Ok(s) => exited(s), Err(e) => format!("could not be waited for ({e})") }))
                }
                Some(cmd) = recv(&mut self.commands), if ready => {
                    self.send(&HubMessage::Command(cmd.into())).map(|_| None)
                }
                Some(req) = recv(&mut self.actions), if ready => self.action(req).map(|_| None),
                Some(s) = self.sup.secrets.changed(), if ready => {
                    let secrets = s.into_iter().map(|(k, v)| (k, v.expose().to_owned())).collect();
                    self.send(&HubMessage::Secrets(SecretsMessage { secrets })).map(|_| None)
                }
                Some(d) = inbox_changed(&mut self.inbox), if ready => {
                    self.send(&HubMessage::Inbox { decisions: d }).map(|_| None)
                }
                _ = tick.tick() => self.on_tick(hello_by),
            };
            match step {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    // A refused handshake: `bye` went out; give it its time to exit.
                    let _ = tokio::time::timeout(self.sup.timing.exit, child.wait()).await;
                    return outcome;
                }
                Err(c) => return self.crashed(c),
            }
        }
    }

    fn crashed(&self, c: Crash) -> Outcome {
        Outcome::Crashed { reason: c.reason, hung: c.hung, ran: self.ran() }
    }

    /// Sends `shutdown`, applies what the plugin still writes, and kills it after the limit.
    async fn stop(&mut self, child: &mut tokio::process::Child, disabled: bool) -> Outcome {
        let id = self.id();
        let _ = self.send(&HubMessage::Shutdown);
        let until = tokio::time::Instant::now() + self.sup.timing.exit;
        let mut open = true;
        let status = loop {
            tokio::select! {
                status = child.wait() => {
                    while let Ok(Some(Ok(line))) = tokio::time::timeout(Duration::from_millis(200), self.lines.recv()).await {
                        let _ = self.on_line(line).await;
                    }
                    break status.ok();
                }
                line = self.lines.recv(), if open => match line {
                    Some(Ok(line)) => {
                        let _ = self.on_line(line).await;
                    }
                    _ => open = false,
                },
                _ = tokio::time::sleep_until(until) => break None,
            }
        };
        match status {
            Some(s) => tracing::info!(plugin = id, status = %exited(s), "Stopped plugin."),
            None => {
                let _ = child.start_kill();
                tracing::warn!(
                    plugin = id,
                    "The plugin did not exit within {:?} of `shutdown`; it was killed.",
                    self.sup.timing.exit
                );
            }
        }
        for (_, (reply, _)) in self.pending.drain() {
            let _ = reply.send(Err(ActionError::Unavailable(format!("plugin `{id}` stopped"))));
        }
        self.sup.shared.update(|l| {
            l.pid = None;
            l.ready_at = None;
        });
        Outcome::Stopped { disabled }
    }

    /// The clock: the hello's deadline, pings and their pongs, actions' answers.
    fn on_tick(&mut self, hello_by: Instant) -> Result<Option<Outcome>, Crash> {
        let now = Instant::now();
        if self.ready_at.is_none() {
            if now >= hello_by {
                let reason = format!("no hello within {} s", self.sup.timing.hello.as_secs_f64());
                self.send(&HubMessage::Bye { code: "no_hello".into(), reason: reason.clone() })?;
                return Err(crash(format!("said no hello within {} s", self.sup.timing.hello.as_secs_f64())));
            }
            return Ok(None);
        }
        if let Some((_, deadline)) = self.awaiting
            && now >= deadline
        {
            return Err(Crash {
                reason: format!("stopped answering (no pong within {} s)", self.sup.timing.pong.as_secs_f64()),
                hung: true,
            });
        }
        if self.awaiting.is_none() && now >= self.ping_due {
            self.next_ping += 1;
            self.awaiting = Some((self.next_ping, now + self.sup.timing.pong));
            self.ping_due = now + self.sup.timing.ping;
            self.send(&HubMessage::Ping { id: self.next_ping })?;
        }
        let late: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= self.sup.timing.action)
            .map(|(k, _)| k.clone())
            .collect();
        for k in late {
            if let Some((reply, _)) = self.pending.remove(&k) {
                let _ = reply.send(Err(ActionError::Timeout(format!(
                    "plugin `{}` did not answer within {} s",
                    self.id(),
                    self.sup.timing.action.as_secs()
                ))));
            }
        }
        Ok(None)
    }

    fn action(&mut self, req: ActionRequest) -> Result<(), Crash> {
        self.next_action += 1;
        let id = format!("a{}", self.next_action);
        let m = HubMessage::Action(ActionMessage {
            id: id.clone(),
            action: req.action,
            params: req.params,
            context: req.context,
        });
        self.pending.insert(id, (req.reply, Instant::now()));
        self.send(&m)
    }

    /// Whether the line fits the rate; answers a refusal at most once a second, and restarts a
    /// plugin refused for [`RATE_LIMITED_SECONDS`] seconds in a row.
    fn rate(&mut self, line: u64) -> Result<bool, Crash> {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.refilled).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(true);
        }
        let second = now.duration_since(self.started).as_secs();
        if self.rate_second != Some(second) {
            self.rate_seconds_in_a_row =
                if self.rate_second.is_some_and(|s| s + 1 == second) { self.rate_seconds_in_a_row + 1 } else { 1 };
            self.rate_second = Some(second);
            if self.rate_seconds_in_a_row >= RATE_LIMITED_SECONDS {
                return Err(crash(format!("went over the message rate for {RATE_LIMITED_SECONDS} s in a row")));
            }
            tracing::warn!(
                plugin = self.id(),
                line,
                "A plugin writes faster than {RATE_PER_SEC} lines per second; lines are refused."
            );
            let e = ProtocolError::new(
                codes::RATE_LIMITED,
                format!(
                    "more than {RATE_PER_SEC} lines per second (bursts of {RATE_BURST}); this line and others in this second were refused"
                ),
            );
            self.answer(&e, line)?;
        }
        self.sup.shared.update(|l| l.refused_messages += 1);
        Ok(false)
    }

    async fn on_line(&mut self, line: Line) -> Result<Option<Outcome>, Crash> {
        let n = line.number();
        let parsed = match line {
            Line::Text(_, text) if text.trim().is_empty() => return Ok(None),
            Line::Text(_, text) => parse_plugin(&text),
            Line::NotUtf8(_) => Err(ProtocolError::new(codes::NOT_JSON, "the line is not UTF-8")),
            Line::TooLong(_, len) => Err(ProtocolError::new(
                codes::LINE_TOO_LONG,
                format!("the line is {len} bytes; the limit is {} bytes", hearth_plugin::lines::MAX_LINE),
            )),
        };
        if !matches!(parsed, Ok(PluginMessage::Control(PluginControl::Pong { .. }))) && !self.rate(n)? {
            return Ok(None);
        }
        let message = match parsed {
            Ok(m) => {
                self.unreadable_in_a_row = 0;
                m
            }
            Err(e) => {
                if e.unreadable() {
                    self.unreadable_in_a_row += 1;
                    self.sup.shared.update(|l| l.unreadable_lines += 1);
                    if !self.warned_unreadable {
                        self.warned_unreadable = true;
                        tracing::warn!(plugin = self.id(), line = n, error = %e, "A plugin wrote a line that is not a protocol message; it is counted, and the plugin is restarted after {UNREADABLE_LIMIT} in a row.");
                    }
                    if self.unreadable_in_a_row >= UNREADABLE_LIMIT {
                        return Err(crash(format!(
                            "wrote {UNREADABLE_LIMIT} unreadable lines in a row ({})",
                            e.message
                        )));
                    }
                } else {
                    self.refused(&e, n);
                }
                self.answer(&e, n)?;
                return Ok(None);
            }
        };
        match message {
            PluginMessage::Control(PluginControl::Hello(h)) => {
                if self.ready_at.is_some() {
                    return self.refuse(
                        codes::OUT_OF_ORDER,
                        "a second `hello`; the handshake is done".into(),
                        "hello",
                        n,
                    );
                }
                return self.hello(h, n).await;
            }
            PluginMessage::Control(PluginControl::Log(l)) => self.log(l),
            PluginMessage::Control(PluginControl::Error(e)) => self.plugin_error(e),
            _ if self.ready_at.is_none() => {
                let kind = message.kind();
                return self.refuse(
                    codes::OUT_OF_ORDER,
                    format!("`{kind}` before `ready`: answer `hello` and wait for `ready` first"),
                    kind,
                    n,
                );
            }
            PluginMessage::Control(PluginControl::Pong { id }) => {
                if self.awaiting.is_some_and(|(want, _)| want == id) {
                    self.awaiting = None;
                }
            }
            PluginMessage::Control(PluginControl::ActionResult(r)) => match self.pending.remove(&r.id) {
                Some((reply, _)) => {
                    let answer = match r.error {
                        Some(f) => Err(ActionError::from(f)),
                        None => Ok(r.result.unwrap_or(serde_json::Value::Null)),
                    };
                    let _ = reply.send(answer);
                }
                None => {
                    let message = format!(
                        "no action `{}` is waiting for an answer (unknown, answered, or past its time)",
                        short(&r.id)
                    );
                    return self.refuse(codes::UNKNOWN_ACTION, message, "action_result", n);
                }
            },
            PluginMessage::Adapter(event) => {
                let kind = PluginMessage::Adapter(event.clone()).kind();
                let (forward, refusal) = self.check(event);
                if let Some(event) = forward {
                    self.forward(event).await;
                }
                if let Some((code, message)) = refusal {
                    return self.refuse(code, message, kind, n);
                }
            }
        }
        Ok(None)
    }

    fn refused(&self, e: &ProtocolError, line: u64) {
        self.sup.shared.update(|l| l.refused_messages += 1);
        tracing::info!(plugin = self.id(), line, code = e.code, "Refused a plugin's message: {}", e.message);
    }

    fn refuse(&mut self, code: &'static str, message: String, kind: &str, line: u64) -> Result<Option<Outcome>, Crash> {
        let e = ProtocolError { code, message, refused_type: Some(kind.to_owned()) };
        self.refused(&e, line);
        self.answer(&e, line)?;
        Ok(None)
    }

    /// Sends an event to the core, waiting while it is busy; the wait does not count against
    /// the plugin's pong.
    async fn forward(&mut self, event: AdapterEvent) {
        let began = Instant::now();
        let _ = self.sup.events.send(event).await;
        let waited = began.elapsed();
        if waited > Duration::from_millis(50)
            && let Some((_, deadline)) = &mut self.awaiting
        {
            *deadline += waited;
        }
    }

    async fn hello(&mut self, h: PluginHello, line: u64) -> Result<Option<Outcome>, Crash> {
        let id = self.id();
        let refusal = if let Err(e) = h.check() {
            Some(("bad_hello", e))
        } else if h.protocol != hearth_plugin::PROTOCOL_VERSION {
            Some((
                "protocol_unsupported",
                format!(
                    "the plugin chose protocol {}; this hub speaks {}",
                    h.protocol,
                    hearth_plugin::PROTOCOL_VERSION
                ),
            ))
        } else if h.protocol != self.sup.manifest.protocol {
            Some((
                "protocol_unsupported",
                format!(
                    "the plugin chose protocol {}, but its plugin.toml names protocol {}",
                    h.protocol, self.sup.manifest.protocol
                ),
            ))
        } else if h.id != id {
            Some((
                "id_mismatch",
                format!("the plugin says its id is `{}`, but its plugin.toml says `{id}`", short(&h.id)),
            ))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            tracing::warn!(plugin = id, line, code, %reason, "Refused a plugin's hello.");
            self.send(&HubMessage::Bye { code: code.into(), reason: reason.clone() })?;
            return Ok(Some(Outcome::Refused(reason)));
        }
        if h.version != self.sup.manifest.version {
            tracing::warn!(plugin = id, plugin_toml = %self.sup.manifest.version, hello = %h.version, "The plugin's version differs from its plugin.toml; showing the one it said.");
        }
        // A fresh command and action channel for this run, under the manifest it declared.
        let manifest = AdapterManifest {
            id,
            name: super::intern(&h.name),
            discovers: h.discovers.clone(),
            actions: super::intern_list(&h.actions),
            secrets: h.secrets.as_ref().map(|s| hearth_sdk::SecretSpec {
                names: super::intern(&s.names),
                values: super::intern(&s.values),
                check: super::check_plugin_secret,
            }),
        };
        let (cmd_tx, cmd_rx) = mpsc::channel(core::COMMAND_QUEUE);
        let (act_tx, act_rx) = mpsc::channel(core::ACTION_QUEUE);
        let slot = AdapterSlot { manifest, commands: cmd_tx, actions: act_tx };
        let Ok(inbox) = self.sup.core.register(slot, AdapterStatus::running()).await else {
            return Err(crash("could not be registered: the hub is stopping"));
        };
        self.commands = Some(cmd_rx);
        self.actions = Some(act_rx);
        let secrets = self.sup.secrets.all().into_iter().map(|(k, v)| (k, v.expose().to_owned())).collect();
        self.send(&HubMessage::Secrets(SecretsMessage { secrets }))?;
        self.send(&HubMessage::Inbox { decisions: inbox.decisions() })?;
        self.inbox = Some(inbox);
        self.send(&HubMessage::Ready)?;
        let now = Instant::now();
        self.ready_at = Some(now);
        self.ping_due = now + self.sup.timing.ping;
        self.sup.shared.update(|l| {
            l.state = "running";
            l.reason = None;
            l.reported_version = Some(h.version.clone());
            l.ready_at = Some(Timestamp::now());
        });
        tracing::info!(plugin = id, version = %h.version, "The plugin is running.");
        Ok(None)
    }

    fn log(&self, l: LogMessage) {
        let id = self.id();
        let fields = l
            .fields
            .map(|f| {
                f.into_iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let message = l.message;
        match l.level {
            LogLevel::Error => tracing::error!(plugin = id, fields, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin = id, fields, "{message}"),
            LogLevel::Info => tracing::info!(plugin = id, fields, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin = id, fields, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin = id, fields, "{message}"),
        }
    }

    fn plugin_error(&self, e: ErrorMessage) {
        self.sup.shared.update(|l| l.errors_from_plugin += 1);
        tracing::warn!(plugin = self.id(), code = %e.code, line = e.line.unwrap_or(0), "The plugin refused a message of the hub: {}", e.message);
    }

    /// Ownership and content checks: what goes to the core, and the refusal to answer.
    fn check(&mut self, event: AdapterEvent) -> (Option<AdapterEvent>, Option<(&'static str, String)>) {
        let id = self.id();
        let prefix = format!("{id}:");
        let mine = |d: &DeviceId| d.as_str().strip_prefix(&prefix).is_some_and(|native| !native.is_empty());
        let ids: Vec<&DeviceId> = match &event {
            AdapterEvent::Device { device } => std::iter::once(&device.id).chain(device.via.as_ref()).collect(),
            AdapterEvent::DeviceRemoved { device }
            | AdapterEvent::State { device, .. }
            | AdapterEvent::Event { device, .. }
            | AdapterEvent::Availability { device, .. } => vec![device],
            AdapterEvent::Found { found } => vec![&found.device],
            AdapterEvent::InputRejected { .. } | AdapterEvent::Status { .. } => vec![],
        };
        if let Some(foreign) = ids.into_iter().find(|d| !mine(d)) {
            tracing::warn!(plugin = id, device = %foreign, "Refused a plugin's message about a device that is not its own.");
            return (
                None,
                Some((
                    codes::FOREIGN_DEVICE,
                    format!(
                        "device ids of plugin `{id}` must start with `{prefix}`, not `{}`",
                        short(foreign.as_str())
                    ),
                )),
            );
        }
        let unknown = |d: &DeviceId| {
            (
                codes::UNKNOWN_DEVICE,
                format!("`{}` was not announced with `device` since the plugin started", short(d.as_str())),
            )
        };
        match event {
            AdapterEvent::Device { device } => {
                let mut seen = BTreeSet::new();
                if let Some(dup) = device.features.iter().find(|f| !seen.insert(f.key.as_str())) {
                    return (
                        None,
                        Some((codes::INVALID, format!("{}: feature key `{}` appears twice", device.id, dup.key))),
                    );
                }
                self.announced.insert(device.id.clone(), device.features.clone());
                self.sup.known.insert(device.id.clone());
                (Some(AdapterEvent::Device { device }), None)
            }
            AdapterEvent::DeviceRemoved { device } => {
                if self.announced.remove(&device).is_none() {
                    return (None, Some(unknown(&device)));
                }
                self.sup.known.remove(&device);
                (Some(AdapterEvent::DeviceRemoved { device }), None)
            }
            AdapterEvent::State { device, values, cause } => {
                let Some(features) = self.announced.get(&device) else { return (None, Some(unknown(&device))) };
                let mut kept = BTreeMap::new();
                let mut wrong = Vec::new();
                for (key, value) in values {
                    match features.iter().find(|f| f.key == key) {
                        None => wrong.push(format!("`{key}` is not a feature of {device}")),
                        Some(f) => match check_value(f, &value) {
                            Err(hearth_sdk::CommandError::WrongType { .. }) => {
                                wrong.push(format!("`{key}` is {}, not {} {value}", f.value_type.name(), value.kind()));
                            }
                            _ => {
                                kept.insert(key, value);
                            }
                        },
                    }
                }
                let forward =
                    (!kept.is_empty()).then_some(AdapterEvent::State { device: device.clone(), values: kept, cause });
                let refusal = (!wrong.is_empty()).then(|| (codes::INVALID, format!("{device}: {}", wrong.join("; "))));
                (forward, refusal)
            }
            AdapterEvent::Event { device, feature, event, data } => {
                let Some(features) = self.announced.get(&device) else { return (None, Some(unknown(&device))) };
                if !features.iter().any(|f| f.key == feature) {
                    return (
                        None,
                        Some((
                            codes::INVALID,
                            format!("{device}: event for `{feature}`, which is not a feature of the device"),
                        )),
                    );
                }
                (Some(AdapterEvent::Event { device, feature, event, data }), None)
            }
            AdapterEvent::Availability { device, availability } => {
                if !self.announced.contains_key(&device) {
                    return (None, Some(unknown(&device)));
                }
                if availability.state == AvailabilityState::Offline
                    && availability.reason.as_deref().is_none_or(str::is_empty)
                {
                    tracing::debug!(plugin = id, %device, "A plugin reported a device offline without a reason.");
                }
                (Some(AdapterEvent::Availability { device, availability }), None)
            }
            other => (Some(other), None),
        }
    }
}

async fn recv<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn inbox_changed(inbox: &mut Option<Inbox>) -> Option<BTreeMap<String, hearth_sdk::Decision>> {
    match inbox {
        Some(i) => match i.changed().await {
            Some(d) => Some(d),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

fn exited(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "exited".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let t = Timing::standard();
        for n in 1..=12u32 {
            let d = backoff(t, n).as_secs_f64();
            let base = 2f64.powi(n as i32 - 1).min(300.0);
            assert!(d >= base * 0.5 && d <= base * 1.5, "restart {n}: {d} s");
        }
    }
}
