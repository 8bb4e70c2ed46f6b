//! The conformance kit behind `hearth plugin test PATH`.
//!
//! [`check`] runs a plugin exactly as the hub does (its `plugin.toml` command in its own directory,
//! a cleared environment, a data directory of its own) and takes it through the protocol of
//! `adapters/sdk/PLUGINS.md` step by step: the handshake, its devices and their state, a refresh, a
//! ping, a command round trip, malformed input from the hub's side, and shutdown, watching every
//! line it writes on the way. Every wait has a deadline, and the process is killed at the end
//! whatever happened. The [`Report`] reads as text a brand can attach to a release (its
//! [`Display`](fmt::Display)) and as JSON for machines ([`Report::to_json`]).
//!
//! ```no_run
//! # async fn demo() {
//! use hearth_plugin::conformance::{Options, check};
//! let report = check(std::path::Path::new("plugins/weather"), &Options::default()).await;
//! eprintln!("{report}");
//! assert!(report.passed());
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_sdk::{
    AdapterEvent, AvailabilityState, CommandError, CommandRequest, Context, DeviceDescriptor, DeviceId, Feature,
    Origin, Refresh, Value, ValueType, check_value,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::lines::{Line, LineReader};
use crate::manifest::Manifest;
use crate::protocol::{
    ErrorMessage, HubHello, HubMessage, PROTOCOL_VERSION, PluginControl, PluginHello, PluginMessage, ProtocolError,
    SecretsMessage, codes, encode, parse_plugin, short,
};

/// The steps of a run, in the order the report lists them.
pub const STEPS: [&str; 11] = [
    "manifest",
    "start",
    "handshake",
    "devices",
    "state",
    "refresh",
    "ping",
    "command",
    "malformed input",
    "output hygiene",
    "shutdown",
];

/// How many of the plugin's last stderr lines a failed report shows.
pub const STDERR_LINES: usize = 20;

/// The context of the kit's command round trip; the plugin must send it back as `cause`.
pub const COMMAND_CONTEXT_ID: &str = "conformance-1";

/// How a run is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The configuration to send in `hello`, checked against `plugin.toml` first (defaults
    /// filled in). `None` sends `{}` with the defaults filled in.
    pub config: Option<serde_json::Value>,
    /// The hub version the kit says it is in `hello`, and that the report names.
    pub hub_version: String,
    /// A factor on every deadline of the protocol (10 s for `hello`, 5 s for devices and
    /// shutdown, ...): `1.0` waits as long as the hub does; tests use less. Anything that is not a
    /// positive number counts as `1.0`.
    pub timeouts: f64,
}

impl Default for Options {
    /// No configuration, this crate's version as the hub's (they are released together), real
    /// deadlines.
    fn default() -> Options {
        Options { config: None, hub_version: env!("CARGO_PKG_VERSION").to_owned(), timeouts: 1.0 }
    }
}

/// How one step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin did what the protocol asks.
    Pass,
    /// It did not; why, in words.
    Fail(String),
    /// The step did not run (or had nothing to check); why.
    Skip(String),
}

impl Outcome {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "SKIP",
        }
    }

    /// The reason of a failure or a skip.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Pass => None,
            Outcome::Fail(r) | Outcome::Skip(r) => Some(r),
        }
    }
}

/// One step of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its name, one of [`STEPS`].
    pub name: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// What the kit saw: facts, warnings, and every problem when there were several.
    pub details: Vec<String>,
}

/// The plugin as its `plugin.toml` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The adapter id.
    pub id: String,
    /// The human name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The plugin's directory, as given.
    pub dir: PathBuf,
    /// The plugin, when its manifest could be read.
    pub plugin: Option<PluginInfo>,
    /// The hub version the kit played.
    pub hub_version: String,
    /// Every step of [`STEPS`], in that order.
    pub steps: Vec<Step>,
    /// The plugin's last stderr lines (at most [`STDERR_LINES`]), kept when a step failed.
    pub stderr: Vec<String>,
}

impl Report {
    /// Whether no step failed.
    pub fn passed(&self) -> bool {
        !self.steps.iter().any(|s| matches!(s.outcome, Outcome::Fail(_)))
    }

    /// How many steps passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.steps.iter().filter(|s| f(&s.outcome)).count();
        (
            count(|o| matches!(o, Outcome::Pass)),
            count(|o| matches!(o, Outcome::Fail(_))),
            count(|o| matches!(o, Outcome::Skip(_))),
        )
    }

    /// The step with this name.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The report for machines:
    /// `{"plugin": {"id", "name", "version", "protocol"}, "directory", "hub", "passed",
    /// "summary": {"passed", "failed", "skipped"}, "steps": [{"name", "outcome", "reason",
    /// "details"}], "stderr": [...]}`. `outcome` is `pass`, `fail` or `skip`; `reason` is left out
    /// for a pass, and `plugin` when the manifest could not be read.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let (passed, failed, skipped) = self.counts();
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut step = json!({
                    "name": s.name,
                    "outcome": s.outcome.label().to_ascii_lowercase(),
                    "details": s.details,
                });
                if let (Some(reason), Some(o)) = (s.outcome.reason(), step.as_object_mut()) {
                    o.insert("reason".into(), json!(reason));
                }
                step
            })
            .collect();
        let mut out = json!({
            "directory": self.dir.display().to_string(),
            "hub": self.hub_version,
            "passed": self.passed(),
            "summary": {"passed": passed, "failed": failed, "skipped": skipped},
            "steps": steps,
            "stderr": self.stderr,
        });
        if let (Some(p), Some(o)) = (&self.plugin, out.as_object_mut()) {
            o.insert(
                "plugin".into(),
                json!({"id": p.id, "name": p.name, "version": p.version, "protocol": p.protocol}),
            );
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plugin {
            Some(p) => {
                writeln!(f, "Hearth plugin conformance report: {} {}", p.id, p.version)?;
                writeln!(f, "  plugin:    {} ({})", p.name, p.id)?;
                writeln!(f, "  version:   {}", p.version)?;
                writeln!(f, "  protocol:  {}", p.protocol)?;
            }
            None => writeln!(f, "Hearth plugin conformance report")?,
        }
        writeln!(
            f,
            "  hub:       {} (protocol {PROTOCOL_VERSION}, schema {})",
            self.hub_version,
            hearth_sdk::SCHEMA_VERSION
        )?;
        writeln!(f, "  directory: {}", self.dir.display())?;
        writeln!(f)?;
        let width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for s in &self.steps {
            match s.outcome.reason() {
                Some(reason) => writeln!(f, "{} {:width$}  {reason}", s.outcome.label(), s.name)?,
                None => writeln!(f, "{} {}", s.outcome.label(), s.name)?,
            }
            for d in &s.details {
                writeln!(f, "       - {d}")?;
            }
        }
        if !self.stderr.is_empty() {
            writeln!(f)?;
            let n = self.stderr.len();
            writeln!(f, "The plugin's stderr (its last {n} {}):", if n == 1 { "line" } else { "lines" })?;
            for l in &self.stderr {
                writeln!(f, "  | {l}")?;
            }
        }
        writeln!(f)?;
        let (passed, failed, skipped) = self.counts();
        write!(f, "{passed} passed, {failed} failed, {skipped} skipped")
    }
}

/// Runs the plugin in `dir` and checks it against protocol version 1. Never hangs: every wait has
/// a deadline (scaled by [`Options::timeouts`]), and the process is killed at the end.
pub async fn check(dir: &Path, options: &Options) -> Report {
    let mut run = Run::new(dir, options);
    Box::pin(run.go()).await;
    run.finish().await
}

// ---------------------------------------------------------------------------------------------
// Steps and their bookkeeping.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum S {
    Manifest,
    Start,
    Handshake,
    Devices,
    State,
    Refresh,
    Ping,
    Command,
    Malformed,
    Hygiene,
    Shutdown,
}

const ORDER: [S; 11] = [
    S::Manifest,
    S::Start,
    S::Handshake,
    S::Devices,
    S::State,
    S::Refresh,
    S::Ping,
    S::Command,
    S::Malformed,
    S::Hygiene,
    S::Shutdown,
];

impl S {
    fn name(self) -> &'static str {
        STEPS[self as usize]
    }
}

/// What a step collected before it becomes a [`Step`].
#[derive(Debug, Default)]
struct Record {
    problems: Vec<String>,
    details: Vec<String>,
    skip: Option<String>,
}

impl Record {
    fn into_step(self, s: S) -> Step {
        let Record { problems, mut details, skip } = self;
        let outcome = match (skip, problems.len()) {
            (Some(reason), _) => Outcome::Skip(reason),
            (None, 0) => Outcome::Pass,
            (None, 1) => Outcome::Fail(problems.concat()),
            (None, n) => {
                let more = if n == 2 { "1 more problem".to_owned() } else { format!("{} more problems", n - 1) };
                let reason = format!("{}; and {more} (see below)", problems[0]);
                let mut all: Vec<String> = problems.into_iter().skip(1).map(|p| format!("problem: {p}")).collect();
                all.append(&mut details);
                details = all;
                Outcome::Fail(reason)
            }
        };
        Step { name: s.name(), outcome, details }
    }
}

/// A list of problems of one kind, capped so a chatty plugin cannot flood the report.
#[derive(Debug, Default)]
struct Problems {
    list: Vec<String>,
    more: usize,
}

impl Problems {
    const CAP: usize = 20;

    fn push(&mut self, p: String) {
        if self.list.len() < Self::CAP {
            self.list.push(p);
        } else {
            self.more += 1;
        }
    }

    fn take(&mut self) -> Vec<String> {
        let mut out = std::mem::take(&mut self.list);
        if self.more > 0 {
            out.push(format!("and {} more like these", self.more));
            self.more = 0;
        }
        out
    }
}

/// Why a handshake failed, and the `bye` (code, reason) the hub would answer with, if any.
type Refusal = (String, Option<(&'static str, String)>);

struct Run {
    dir: PathBuf,
    options: Options,
    scale: f64,
    records: BTreeMap<S, Record>,
    manifest: Option<Manifest>,
    session: Option<Session>,
    data_dir: Option<PathBuf>,
    /// The step whose failure stops the run, for "not reached: ... failed".
    stopped_by: Option<S>,
}

impl Run {
    fn new(dir: &Path, options: &Options) -> Run {
        let scale = if options.timeouts.is_finite() && options.timeouts > 0.0 { options.timeouts } else { 1.0 };
        Run {
            dir: dir.to_owned(),
            options: options.clone(),
            scale,
            records: BTreeMap::new(),
            manifest: None,
            session: None,
            data_dir: None,
            stopped_by: None,
        }
    }

    fn dur(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.scale).max(0.001))
    }

    fn rec(&mut self, s: S) -> &mut Record {
        self.records.entry(s).or_default()
    }

    fn fail(&mut self, s: S, problem: impl Into<String>) {
        self.rec(s).problems.push(problem.into());
    }

    fn detail(&mut self, s: S, detail: impl Into<String>) {
        self.rec(s).details.push(detail.into());
    }

    fn skip(&mut self, s: S, reason: impl Into<String>) {
        self.rec(s).skip = Some(reason.into());
    }

    /// Stops the run at `s`: every step not yet recorded is skipped as not reached.
    fn stop(&mut self, s: S) {
        if self.stopped_by.is_none() {
            self.stopped_by = Some(s);
        }
    }

    fn not_reached(&self) -> Option<String> {
        self.stopped_by.map(|s| format!("not reached: {} failed", s.name()))
    }

    /// Whether the process is gone; if so the current step fails with why, and the run stops.
    fn check_alive(&mut self, s: S, doing: &str) -> bool {
        let Some(gone) = self.session.as_ref().and_then(|x| x.gone.clone()) else { return true };
        self.fail(s, format!("the plugin {gone} {doing} (see its stderr below)"));
        self.stop(s);
        false
    }

    async fn go(&mut self) {
        let Some(config) = self.manifest_step() else {
            self.stop(S::Manifest);
            return;
        };
        if !self.start_step() {
            self.stop(S::Start);
            return;
        }
        if !self.handshake_step(config).await {
            self.stop(S::Handshake);
            return;
        }
        let has_devices = self.devices_step().await;
        if self.stopped_by.is_some() {
            return;
        }
        if has_devices {
            self.refresh_step().await;
            if self.stopped_by.is_some() {
                return;
            }
        } else {
            let why = "not reached: devices failed (no device)";
            self.skip(S::State, why);
            self.skip(S::Refresh, why);
            self.skip(S::Command, why);
        }
        if !self.ping_step(S::Ping, 1).await {
            return;
        }
        if has_devices {
            self.command_step().await;
            if self.stopped_by.is_some() {
                return;
            }
        }
        self.malformed_step().await;
        if self.stopped_by.is_some() {
            return;
        }
        self.shutdown_step().await;
    }

    // 1. manifest
    fn manifest_step(&mut self) -> Option<serde_json::Value> {
        let manifest = match Manifest::load(&self.dir) {
            Ok(m) => m,
            Err(e) => {
                self.fail(S::Manifest, e.to_string());
                return None;
            }
        };
        self.manifest = Some(manifest.clone());
        if manifest.protocol != PROTOCOL_VERSION {
            self.fail(
                S::Manifest,
                format!(
                    "plugin.toml says `protocol = {}`, but this hub speaks protocol {PROTOCOL_VERSION}",
                    manifest.protocol
                ),
            );
            return None;
        }
        let given = self.options.config.clone().unwrap_or_else(|| serde_json::json!({}));
        match manifest.validate_config(&given) {
            Ok(config) => {
                self.detail(S::Manifest, format!("config sent in `hello`: {config}"));
                Some(config)
            }
            Err(e) => {
                let source =
                    if self.options.config.is_some() { "the given configuration" } else { "an empty configuration" };
                self.fail(S::Manifest, format!("{source} does not fit the config schema of plugin.toml: {e}"));
                None
            }
        }
    }

    // 2. start
    fn start_step(&mut self) -> bool {
        let Some(manifest) = self.manifest.clone() else { return false };
        let dir = match self.dir.canonicalize() {
            Ok(d) => d,
            Err(e) => {
                self.fail(S::Start, format!("cannot use the directory {}: {e}", self.dir.display()));
                return false;
            }
        };
        let data = match make_data_dir(&manifest.id) {
            Ok(d) => d,
            Err(e) => {
                self.fail(S::Start, e);
                return false;
            }
        };
        self.data_dir = Some(data.clone());
        let (program, args) = manifest.program(&dir);
        let mut command = Command::new(&program);
        command
            .args(&args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()))
            .env("HEARTH_PLUGIN_ID", &manifest.id)
            .env("HEARTH_PLUGIN_DATA", &data)
            .env("HOME", &data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(lang) = std::env::var_os("LANG") {
            command.env("LANG", lang);
        }
        match command.spawn() {
            Ok(child) => {
                let session = Session::new(child, &manifest.id, self.scale);
                self.detail(
                    S::Start,
                    format!(
                        "ran {} in {}{}",
                        shell_words(&manifest.command),
                        dir.display(),
                        session.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                    ),
                );
                self.session = Some(session);
                true
            }
            Err(e) => {
                let program_text = program.display().to_string();
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound if manifest.command[0].contains('/') => {
                        format!("`{program_text}` does not exist")
                    }
                    std::io::ErrorKind::NotFound => {
                        format!("the program `{program_text}` was not found on PATH")
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        format!("`{program_text}` cannot be run (permission denied: is it executable?)")
                    }
                    _ => format!("`{program_text}` cannot be started: {e}"),
                };
                self.fail(S::Start, format!("{why} (command = {} in plugin.toml)", shell_words(&manifest.command)));
                false
            }
        }
    }

    async fn handshake_step(&mut self, config: serde_json::Value) -> bool {
        let (Some(manifest), Some(_)) = (self.manifest.clone(), self.session.as_ref()) else { return false };
        let wait = self.dur(10.0);
        let window = self.dur(0.2);
        let Some(session) = self.session.as_mut() else { return false };
        let hello = HubMessage::Hello(HubHello {
            protocol: vec![PROTOCOL_VERSION],
            hub: self.options.hub_version.clone(),
            schema: hearth_sdk::SCHEMA_VERSION,
            config,
        });
        let started = Instant::now();
        if let Err(e) = session.send(&hello).await {
            self.fail(S::Handshake, e);
            return false;
        }
        let deadline = started + wait;
        let answer: Result<PluginHello, Refusal> = loop {
            match session.next(deadline).await {
                Got::Msg(_, PluginMessage::Control(PluginControl::Hello(h))) => break Ok(h),
                Got::Msg(_, PluginMessage::Control(PluginControl::Log(_))) => {}
                Got::Msg(n, PluginMessage::Control(PluginControl::Error(e))) => {
                    break Err((
                        format!(
                            "the plugin answered the kit's `hello` with error `{}` (stdout line {n}): {}",
                            e.code, e.message
                        ),
                        None,
                    ));
                }
                Got::Msg(n, m) => {
                    break Err((
                        format!(
                            "the plugin wrote `{}` (stdout line {n}) before its `hello`; only `log` may come first",
                            m.kind()
                        ),
                        Some(("bad_hello", format!("`{}` came before `hello`", m.kind()))),
                    ));
                }
                Got::BadHello(n, why) => {
                    break Err((
                        format!("the plugin's `hello` (stdout line {n}) is malformed: {why}"),
                        Some(("bad_hello", format!("the hello is malformed: {why}"))),
                    ));
                }
                Got::Timeout => {
                    break Err((
                        format!("no `hello` within {}", secs(wait)),
                        Some(("no_hello", format!("no hello within {}", secs(wait)))),
                    ));
                }
                Got::Gone => {
                    let gone = session.gone.clone().unwrap_or_default();
                    break Err((format!("the plugin {gone} before its `hello` (see its stderr below)"), None));
                }
            }
        };
        let unreadable = session.unreadable_before_hello();
        let hello = match answer {
            Ok(h) => h,
            Err((problem, bye)) => {
                if let Some((code, reason)) = bye {
                    session.bye(code, &reason).await;
                }
                self.fail(S::Handshake, problem);
                return false;
            }
        };
        let elapsed = started.elapsed();
        let refusal = if hello.protocol != PROTOCOL_VERSION {
            Some((
                "protocol_unsupported",
                format!("the plugin chose protocol {}; the kit offered [{PROTOCOL_VERSION}]", hello.protocol),
            ))
        } else if let Err(e) = hello.check() {
            Some(("bad_hello", format!("the plugin's `hello` is malformed: {e}")))
        } else if hello.id != manifest.id {
            Some((
                "id_mismatch",
                format!("the plugin's `hello` says id `{}`, but plugin.toml says `{}`", hello.id, manifest.id),
            ))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            session.bye(code, &reason).await;
            self.fail(S::Handshake, format!("{reason} (the hub answers `bye` `{code}`)"));
            return false;
        }
        self.detail(
            S::Handshake,
            format!(
                "`hello` after {}: {} \"{}\" {}, protocol {}",
                millis(elapsed),
                hello.id,
                hello.name,
                hello.version,
                hello.protocol
            ),
        );
        if hello.version != manifest.version {
            self.detail(
                S::Handshake,
                format!(
                    "warning: the plugin says version {}, plugin.toml says {}; the hub logs a warning and shows {}",
                    hello.version, manifest.version, hello.version
                ),
            );
        }
        if let Some(n) = unreadable {
            self.detail(
                S::Handshake,
                format!("warning: stdout line {n}, before `hello`, was not readable (see output hygiene)"),
            );
        }
        let Some(session) = self.session.as_mut() else { return false };
        // A plugin that waits for `ready` writes nothing but `log` (or `error`) in this window;
        // what it writes anyway is refused as out_of_order, and counted by the devices step.
        let _ = session.drain_for(window).await;
        let handshake = [
            HubMessage::Secrets(SecretsMessage { secrets: BTreeMap::new() }),
            HubMessage::Inbox { decisions: BTreeMap::new() },
        ];
        for m in &handshake {
            if let Err(e) = session.send(m).await {
                self.fail(S::Handshake, e);
                return false;
            }
        }
        session.io.ready = true;
        if let Err(e) = session.send(&HubMessage::Ready).await {
            self.fail(S::Handshake, e);
            return false;
        }
        true
    }

    // 4. devices
    async fn devices_step(&mut self) -> bool {
        let wait = self.dur(5.0);
        let quiet = self.dur(0.3);
        let Some(session) = self.session.as_mut() else { return false };
        let started = Instant::now();
        let deadline = started + wait;
        let mut last = Instant::now();
        loop {
            let complete = session.io.all_available();
            let until = if complete { (last + quiet).min(deadline) } else { deadline };
            match session.next(until).await {
                Got::Msg(..) | Got::BadHello(..) => last = Instant::now(),
                Got::Timeout | Got::Gone => break,
            }
        }
        let io = &session.io;
        let count = io.order.len();
        let missing: Vec<String> =
            io.order.iter().filter(|d| !io.available.contains(*d)).map(|d| format!("`{d}`")).collect();
        let listed: Vec<String> = io
            .order
            .iter()
            .filter_map(|d| io.devices.get(d))
            .map(|d| format!("{} \"{}\" ({} features)", d.id, d.name, d.features.len()))
            .collect();
        if !self.check_alive(S::Devices, "while the kit waited for its devices") {
            return count > 0;
        }
        if count == 0 {
            self.fail(S::Devices, format!("no `device` within {} of `ready`", secs(wait)));
            return false;
        }
        self.detail(S::Devices, format!("{count} device(s) announced: {}", listed.join(", ")));
        if !missing.is_empty() {
            self.fail(
                S::Devices,
                format!(
                    "no `availability` within {} of `ready` for {}: report every device's availability after every start",
                    secs(wait),
                    missing.join(", ")
                ),
            );
        }
        true
    }

    // 6. refresh
    async fn refresh_step(&mut self) {
        let wait = self.dur(5.0);
        let Some(session) = self.session.as_mut() else { return };
        let expected: Vec<String> = session.io.order.clone();
        session.io.refresh = Some(expected.iter().map(|d| (d.clone(), (false, false))).collect());
        let started = Instant::now();
        if let Err(e) = session.send(&HubMessage::Refresh).await {
            self.fail(S::Refresh, e);
            self.stop(S::Refresh);
            return;
        }
        let deadline = started + wait;
        loop {
            if session.io.refresh.as_ref().is_some_and(|r| r.values().all(|(d, a)| *d && *a)) {
                break;
            }
            match session.next(deadline).await {
                Got::Msg(..) | Got::BadHello(..) => {}
                Got::Timeout | Got::Gone => break,
            }
        }
        let seen = session.io.refresh.take().unwrap_or_default();
        if !self.check_alive(S::Refresh, "after the kit sent `refresh`") {
            return;
        }
        let mut missing = Vec::new();
        for (d, (device, availability)) in &seen {
            match (device, availability) {
                (false, _) => missing.push(format!("`{d}` (no `device`)")),
                (true, false) => missing.push(format!("`{d}` (`device` but no `availability` after it)")),
                _ => {}
            }
        }
        if missing.is_empty() {
            self.detail(
                S::Refresh,
                format!(
                    "all {} device(s) again with their availability after {}",
                    seen.len(),
                    millis(started.elapsed())
                ),
            );
        } else {
            self.fail(S::Refresh, format!("within {} of `refresh`, missing: {}", secs(wait), missing.join(", ")));
        }
    }

    // 7. ping (also after the malformed input)
    async fn ping_step(&mut self, s: S, id: u64) -> bool {
        let wait = self.dur(10.0);
        let Some(session) = self.session.as_mut() else { return false };
        let started = Instant::now();
        if let Err(e) = session.send(&HubMessage::Ping { id }).await {
            self.fail(s, e);
            self.stop(s);
            return false;
        }
        let deadline = started + wait;
        let answered = loop {
            if session.io.pongs.contains(&id) {
                break true;
            }
            match session.next(deadline).await {
                Got::Msg(..) | Got::BadHello(..) => {}
                Got::Timeout | Got::Gone => break false,
            }
        };
        let others: Vec<String> = session.io.pongs.iter().filter(|p| **p != id).map(u64::to_string).collect();
        if answered {
            self.detail(s, format!("`pong` {id} after {}", millis(started.elapsed())));
            return true;
        }
        if !self.check_alive(s, &format!("after the kit sent `ping` {id}")) {
            return false;
        }
        let mut problem = format!("no `pong` with id {id} within {} of `ping` {id}", secs(wait));
        if !others.is_empty() {
            problem.push_str(&format!(" (pongs came with id {}: answer with the ping's id)", others.join(", ")));
        }
        self.fail(s, problem);
        true
    }

    // 8. command round trip
    async fn command_step(&mut self) {
        let wait = self.dur(5.0);
        let Some(session) = self.session.as_mut() else { return };
        let devices: Vec<&DeviceDescriptor> =
            session.io.order.iter().filter_map(|d| session.io.devices.get(d)).collect();
        let Some(probe) = choose_command(&devices, |d, k| session.io.last.get(&(d.to_owned(), k.to_owned()))) else {
            self.skip(
                S::Command,
                "no device has a feature the kit can set (bool, number or enum with set access) or refresh (get access)",
            );
            return;
        };
        let context = Context::new(COMMAND_CONTEXT_ID, Origin::System);
        let request = probe.request();
        if let Some(features) = session.io.devices.get(probe.device.as_str()).map(|d| d.features.clone())
            && let Err(e) = request.validate(&features)
        {
            // The kit chose from the device's own features; a refusal here is the kit's bug.
            self.detail(S::Command, format!("warning: the kit's own command does not validate: {e}"));
        }
        let message = HubMessage::Command(crate::protocol::CommandMessage {
            device: probe.device.clone(),
            set: request.set.clone(),
            transition: None,
            refresh: request.refresh.clone(),
            context: context.clone(),
        });
        let line = encode(&message);
        self.detail(S::Command, format!("sent: {}", line.trim_end()));
        let Some(session) = self.session.as_mut() else { return };
        let started = Instant::now();
        let sent = match session.send(&message).await {
            Ok(n) => n,
            Err(e) => {
                self.fail(S::Command, e);
                self.stop(S::Command);
                return;
            }
        };
        let deadline = started + wait;
        let mut with_cause_wrong: Option<String> = None;
        let mut without_cause = false;
        let mut other_cause: Option<String> = None;
        let result = loop {
            match session.next(deadline).await {
                Got::Msg(n, PluginMessage::Adapter(AdapterEvent::State { device, values, cause })) => match cause {
                    Some(c) if c == context && device == probe.device => match probe.judge(&values) {
                        Ok(()) => break Ok(n),
                        Err(why) => with_cause_wrong = Some(format!("stdout line {n}: {why}")),
                    },
                    Some(c) if c == context => {
                        other_cause =
                            Some(format!("stdout line {n} carried the cause for `{device}`, not `{}`", probe.device));
                    }
                    Some(c) if c.id == context.id => {
                        other_cause = Some(format!(
                            "stdout line {n} carried a changed context as cause ({}); copy it unchanged",
                            serde_json::to_string(&c).unwrap_or_default()
                        ));
                    }
                    _ if device == probe.device => without_cause = true,
                    _ => {}
                },
                Got::Msg(n, PluginMessage::Control(PluginControl::Error(e))) if e.line == Some(sent) => {
                    break Err(Some(format!(
                        "the plugin refused the command (stdin line {sent}) with error `{}` (stdout line {n}): {}",
                        e.code, e.message
                    )));
                }
                Got::Msg(..) | Got::BadHello(..) => {}
                Got::Timeout => break Err(None),
                Got::Gone => break Err(Some(String::new())),
            }
        };
        match result {
            Ok(n) => {
                self.detail(
                    S::Command,
                    format!(
                        "`state` with the command's context as `cause` (stdout line {n}) after {}",
                        millis(started.elapsed())
                    ),
                );
            }
            Err(Some(refused)) if !refused.is_empty() => self.fail(S::Command, refused),
            Err(Some(_)) => {
                self.check_alive(S::Command, "after the kit sent a command");
            }
            Err(None) => {
                let problem = match (with_cause_wrong, other_cause) {
                    (Some(w), _) => format!(
                        "within {} of the command, the state with its cause was not what was asked: {w}",
                        secs(wait)
                    ),
                    (None, Some(o)) => format!(
                        "no `state` for `{}` with the command's context as `cause` within {}: {o}",
                        probe.device,
                        secs(wait)
                    ),
                    (None, None) if without_cause => format!(
                        "no `state` for `{}` with the command's context as `cause` within {}; a state came without `cause`: copy the command's `context` into the resulting state's `cause`",
                        probe.device,
                        secs(wait)
                    ),
                    (None, None) => format!(
                        "no `state` for `{}` within {} of the command ({})",
                        probe.device,
                        secs(wait),
                        probe.describe()
                    ),
                };
                self.fail(S::Command, problem);
            }
        }
    }

    // 9. malformed input
    async fn malformed_step(&mut self) {
        let wait = self.dur(5.0);
        let Some(session) = self.session.as_mut() else { return };
        let id = session.io.id.clone();
        let device = session.io.order.first().cloned().unwrap_or_else(|| format!("{id}:conformance"));
        let stray = serde_json::json!({"id": "conformance-2", "origin": {"kind": "system"}});
        let probes: [(&str, String, &str); 5] = [
            ("a line that is not JSON", "this line is not JSON".to_owned(), codes::NOT_JSON),
            ("a JSON array", "[1,2,3]".to_owned(), codes::NOT_AN_OBJECT),
            ("an unknown type", r#"{"type":"flush_everything"}"#.to_owned(), codes::UNKNOWN_TYPE),
            (
                "a command without `context`",
                serde_json::json!({"type": "command", "device": device, "refresh": true}).to_string(),
                codes::BAD_MESSAGE,
            ),
            (
                "a command for an unknown device",
                serde_json::json!({"type": "command", "device": format!("{id}:no-such-device"), "refresh": true, "context": stray})
                    .to_string(),
                codes::UNKNOWN_DEVICE,
            ),
        ];
        let mut problems = Vec::new();
        let mut details = Vec::new();
        let mut died: Option<String> = None;
        for (what, text, code) in &probes {
            let line = match session.send_raw(text, "malformed").await {
                Ok(n) => n,
                Err(e) => {
                    died = Some(format!("{e} (after {what})"));
                    break;
                }
            };
            session.io.probe = Some(line);
            let deadline = Instant::now() + wait;
            let answer = loop {
                match session.next(deadline).await {
                    Got::Msg(_, PluginMessage::Control(PluginControl::Error(e)))
                        if e.line == Some(line) || e.line.is_none() =>
                    {
                        break Some(e);
                    }
                    Got::Msg(..) | Got::BadHello(..) => {}
                    Got::Timeout => break None,
                    Got::Gone => {
                        died = Some(format!(
                            "the plugin {} after the kit sent {what} (stdin line {line}: {})",
                            session.gone.clone().unwrap_or_default(),
                            short(text)
                        ));
                        break None;
                    }
                }
            };
            session.io.probe = None;
            if died.is_some() {
                break;
            }
            match answer {
                None => problems.push(format!(
                    "no `error` within {} for {what} (stdin line {line}); expected code `{code}`",
                    secs(wait)
                )),
                Some(ErrorMessage { code: got, message, line: at, .. }) => {
                    if got != *code {
                        problems.push(format!(
                            "{what} (stdin line {line}) was answered with error `{got}`, expected `{code}` ({message})"
                        ));
                    } else {
                        details.push(format!("{what} (stdin line {line}): error `{got}`"));
                    }
                    if at.is_none() {
                        details.push(format!(
                            "the `error` for {what} has no `line`; give the refused line's number ({line})"
                        ));
                    }
                }
            }
        }
        for p in problems {
            self.fail(S::Malformed, p);
        }
        for d in details {
            self.detail(S::Malformed, d);
        }
        if let Some(d) = died {
            self.fail(S::Malformed, format!("{d}; a receiver MUST NOT crash on bad input (see its stderr below)"));
            self.stop(S::Malformed);
            return;
        }
        self.ping_step(S::Malformed, 2).await;
    }

    // 11. shutdown
    async fn shutdown_step(&mut self) {
        let wait = self.dur(5.0);
        let Some(session) = self.session.as_mut() else { return };
        let started = Instant::now();
        if let Err(e) = session.send(&HubMessage::Shutdown).await {
            self.fail(S::Shutdown, e);
            return;
        }
        let deadline = started + wait;
        let status = session.wait_exit(deadline).await;
        let elapsed = started.elapsed();
        match status {
            Some(status) if status.success() => {
                self.detail(S::Shutdown, format!("exited with status 0 after {}", millis(elapsed)));
            }
            Some(status) => {
                self.fail(
                    S::Shutdown,
                    format!(
                        "the plugin {} after `shutdown` (after {}); exit with status 0",
                        describe_exit(status),
                        millis(elapsed)
                    ),
                );
            }
            None => {
                self.fail(
                    S::Shutdown,
                    format!(
                        "the plugin was still running {} after `shutdown`; the kit killed it (exit within 5 s)",
                        secs(wait)
                    ),
                );
            }
        }
    }

    /// Ends the process, settles the steps that watch the whole run, and builds the report.
    async fn finish(mut self) -> Report {
        let mut stderr = Vec::new();
        if let Some(mut session) = self.session.take() {
            session.close().await;
            stderr = session.stderr_tail();
            let io = &mut session.io;
            // 4. devices: problems found at any time.
            let device_problems = io.device_problems.take();
            // 5. state
            let state_problems = io.state_problems.take();
            let state_details = io.state_details.take();
            let states = io.states_checked;
            // 10. hygiene
            let hygiene = io.hygiene.take();
            let lines = io.lines_read;
            if self.stopped_by.is_none_or(|s| s > S::Handshake) {
                for p in device_problems {
                    self.fail(S::Devices, p);
                }
                if self.records.get(&S::State).is_none_or(|r| r.skip.is_none()) {
                    for p in state_problems {
                        self.fail(S::State, p);
                    }
                    for d in state_details {
                        self.detail(S::State, d);
                    }
                    let rec = self.rec(S::State);
                    if states == 0 && rec.problems.is_empty() {
                        rec.details.insert(0, "no state reports to check".into());
                    } else {
                        rec.details.insert(0, format!("{states} state report(s) checked"));
                    }
                }
            }
            if self.stopped_by.is_none_or(|s| s > S::Start) {
                for p in hygiene {
                    self.fail(S::Hygiene, p);
                }
                self.rec(S::Hygiene).details.insert(0, format!("{lines} line(s) read from the plugin's stdout"));
            }
        }
        if let Some(dir) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let not_reached = self.not_reached();
        let mut steps = Vec::with_capacity(ORDER.len());
        for s in ORDER {
            let mut record = self.records.remove(&s).unwrap_or_default();
            let untouched = record.problems.is_empty() && record.skip.is_none();
            if untouched
                && let Some(stop) = self.stopped_by
                && s > stop
                && !(s == S::Hygiene && stop > S::Start)
                && !(s == S::State && stop > S::Devices)
            {
                record.skip = not_reached.clone();
            }
            steps.push(record.into_step(s));
        }
        let plugin = self.manifest.as_ref().map(|m| PluginInfo {
            id: m.id.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
            protocol: m.protocol,
        });
        let mut report =
            Report { dir: self.dir.clone(), plugin, hub_version: self.options.hub_version.clone(), steps, stderr };
        if report.passed() {
            report.stderr.clear();
        }
        report
    }
}

// ---------------------------------------------------------------------------------------------
// The running plugin.

enum Incoming {
    Line(Line),
    End(Option<String>),
}

/// What waiting for the plugin gave; a message is handed on at once, never stored.
#[allow(clippy::large_enum_variant)]
enum Got {
    Msg(u64, PluginMessage),
    /// A `hello` that could not be read, before any good one: its line and the parser's words.
    BadHello(u64, String),
    Timeout,
    Gone,
}

struct Session {
    child: Child,
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    io: Io,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stdout_task: JoinHandle<()>,
    stderr_task: JoinHandle<()>,
    /// Why the process is gone, once it is.
    gone: Option<String>,
    exit: Option<ExitStatus>,
    scale: f64,
}

impl Session {
    fn new(mut child: Child, id: &str, scale: f64) -> Session {
        let pid = child.id();
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel(256);
        let stdout_task = match child.stdout.take() {
            Some(out) => tokio::spawn(read_stdout(out, tx)),
            None => tokio::spawn(async move {
                let _ = tx.send(Incoming::End(Some("no stdout pipe".into()))).await;
            }),
        };
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_task = match child.stderr.take() {
            Some(err) => tokio::spawn(read_stderr(err, stderr.clone())),
            None => tokio::spawn(async {}),
        };
        Session {
            child,
            pid,
            stdin,
            io: Io::with_incoming(id, rx),
            stderr,
            stdout_task,
            stderr_task,
            gone: None,
            exit: None,
            scale,
        }
    }

    fn dur(&self, secs: f64) -> Duration {
        Duration::from_secs_f64((secs * self.scale).max(0.001))
    }

    async fn send(&mut self, message: &HubMessage) -> Result<u64, String> {
        let line = encode(message);
        self.send_raw(line.trim_end(), message.kind()).await
    }

    /// Writes one line; its number on the plugin's stdin, or why it could not be written.
    async fn send_raw(&mut self, text: &str, kind: &'static str) -> Result<u64, String> {
        let wait = self.dur(5.0);
        let Some(stdin) = self.stdin.as_mut() else { return Err("the kit has closed the plugin's stdin".into()) };
        self.io.sent.push(kind);
        let number = self.io.sent.len() as u64;
        if kind == "malformed" {
            self.io.malformed.insert(number);
        }
        let mut bytes = text.as_bytes().to_vec();
        bytes.push(b'\n');
        let written = tokio::time::timeout(wait, async {
            stdin.write_all(&bytes).await?;
            stdin.flush().await
        })
        .await;
        let why = match written {
            Ok(Ok(())) => return Ok(number),
            Ok(Err(e)) => format!("the kit could not write `{kind}` to the plugin's stdin: {e}"),
            Err(_) => format!("the plugin did not read its stdin for {} (writing `{kind}`)", secs(wait)),
        };
        // A broken pipe usually means the process is gone: say how.
        let settle = Instant::now() + self.dur(1.0).min(Duration::from_secs(1));
        while !matches!(self.next(settle).await, Got::Timeout | Got::Gone) {}
        Err(match &self.gone {
            Some(gone) => format!("the plugin {gone} (see its stderr below); {why}"),
            None => why,
        })
    }

    /// The next readable message before `deadline`, having checked it; unreadable lines are
    /// recorded for the hygiene step and skipped.
    async fn next(&mut self, deadline: Instant) -> Got {
        if self.gone.is_some() {
            return Got::Gone;
        }
        loop {
            let item = match tokio::time::timeout_at(deadline, self.io.incoming.recv()).await {
                Err(_) => return Got::Timeout,
                Ok(None) => Incoming::End(None),
                Ok(Some(item)) => item,
            };
            match item {
                Incoming::Line(line) => {
                    if let Some((n, m)) = self.io.take(line) {
                        return Got::Msg(n, m);
                    }
                    if let Some((n, why)) = self.io.bad_hello.take() {
                        return Got::BadHello(n, why);
                    }
                }
                Incoming::End(error) => {
                    self.reap(error).await;
                    return Got::Gone;
                }
            }
        }
    }

    /// Reads (and checks) whatever comes for `d`.
    async fn drain_for(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            match self.next(until).await {
                Got::Msg(..) | Got::BadHello(..) => {}
                Got::Timeout => return true,
                Got::Gone => return false,
            }
        }
    }

    /// stdout has closed: wait a little for the process to exit, and note why it is gone.
    async fn reap(&mut self, error: Option<String>) {
        let wait = Duration::from_secs(2);
        match tokio::time::timeout(wait, self.child.wait()).await {
            Ok(Ok(status)) => {
                self.exit = Some(status);
                self.gone = Some(describe_exit(status));
            }
            Ok(Err(e)) => self.gone = Some(format!("could not be waited for ({e})")),
            Err(_) => {
                self.gone = Some(match error {
                    Some(e) => format!("broke its stdout ({e})"),
                    None => "closed its stdout but kept running".into(),
                })
            }
        }
    }

    /// Waits until `deadline` for the process to exit, reading stdout meanwhile.
    async fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if let Some(status) = self.exit {
            return Some(status);
        }
        let mut reading = self.gone.is_none();
        loop {
            tokio::select! {
                status = self.child.wait() => {
                    let status = status.ok()?;
                    self.exit = Some(status);
                    // Read what it wrote before it went (a final `log`), briefly.
                    let until = Instant::now() + Duration::from_millis(200);
                    while reading {
                        match tokio::time::timeout_at(until, self.io.incoming.recv()).await {
                            Ok(Some(Incoming::Line(line))) => { let _ = self.io.take(line); }
                            _ => reading = false,
                        }
                    }
                    self.gone = Some(describe_exit(status));
                    return Some(status);
                }
                item = tokio::time::timeout_at(deadline, self.io.incoming.recv()), if reading => {
                    match item {
                        Err(_) => return None,
                        Ok(Some(Incoming::Line(line))) => { let _ = self.io.take(line); }
                        Ok(Some(Incoming::End(_)) | None) => reading = false,
                    }
                }
                () = tokio::time::sleep_until(deadline), if !reading => return None,
            }
        }
    }

    /// Sends `bye` and gives the plugin a moment to leave.
    async fn bye(&mut self, code: &str, reason: &str) {
        let bye = HubMessage::Bye { code: code.to_owned(), reason: reason.to_owned() };
        if self.gone.is_none() && self.send(&bye).await.is_ok() {
            let until = Instant::now() + self.dur(1.0).min(Duration::from_secs(1));
            let _ = self.wait_exit(until).await;
        }
    }

    /// Kills the process if it still runs, and stops reading from it.
    async fn close(&mut self) {
        drop(self.stdin.take());
        if self.exit.is_none() {
            let _ = self.child.start_kill();
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
                self.exit = Some(status);
            }
        }
        // stderr ends when the process (and whatever inherited the pipe) is gone.
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.stderr_task).await;
        self.stderr_task.abort();
        self.stdout_task.abort();
    }

    fn stderr_tail(&self) -> Vec<String> {
        match self.stderr.lock() {
            Ok(lines) => lines.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }

    fn unreadable_before_hello(&self) -> Option<u64> {
        self.io.first_unreadable
    }
}

async fn read_stdout(out: impl AsyncRead + Unpin, tx: mpsc::Sender<Incoming>) {
    let mut reader = LineReader::new(BufReader::new(out));
    loop {
        let item = match reader.next().await {
            Ok(Some(line)) => Incoming::Line(line),
            Ok(None) => Incoming::End(None),
            Err(e) => Incoming::End(Some(e.to_string())),
        };
        let end = matches!(item, Incoming::End(_));
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

/// Keeps the last [`STDERR_LINES`] lines, each cut to 4096 bytes, invalid UTF-8 replaced.
async fn read_stderr(err: impl AsyncRead + Unpin, keep: Arc<Mutex<VecDeque<String>>>) {
    const MAX: usize = 4096;
    let mut reader = BufReader::new(err);
    let mut line: Vec<u8> = Vec::new();
    let push = |line: &mut Vec<u8>| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let text = String::from_utf8_lossy(line).into_owned();
        line.clear();
        let mut lines = match keep.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if lines.len() == STDERR_LINES {
            lines.pop_front();
        }
        lines.push_back(text);
    };
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(c) if !c.is_empty() => c,
            _ => break,
        };
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let room = MAX.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            push(&mut line);
        }
    }
    if !line.is_empty() {
        push(&mut line);
    }
}

// ---------------------------------------------------------------------------------------------
// What the kit learns from every line the plugin writes.

#[derive(Debug)]
struct Io {
    incoming: mpsc::Receiver<Incoming>,
    id: String,
    prefix: String,
    /// Whether the kit has sent `ready`.
    ready: bool,
    hellos: usize,
    /// A `hello` line that was refused, before any good one.
    bad_hello: Option<(u64, String)>,
    lines_read: u64,
    first_unreadable: Option<u64>,
    /// Announced devices, by id, and their order.
    devices: BTreeMap<String, DeviceDescriptor>,
    order: Vec<String>,
    /// Devices whose availability came.
    available: BTreeSet<String>,
    /// The last value of each (device, feature).
    last: BTreeMap<(String, String), Value>,
    states_checked: usize,
    /// During the refresh step: device → (`device` again, `availability` after it).
    refresh: Option<BTreeMap<String, (bool, bool)>>,
    pongs: Vec<u64>,
    /// The type of each line the kit wrote (index: line number - 1).
    sent: Vec<&'static str>,
    /// The numbers of the kit's deliberately malformed lines.
    malformed: BTreeSet<u64>,
    /// The malformed line now waiting for its `error`.
    probe: Option<u64>,
    device_problems: Problems,
    state_problems: Problems,
    state_details: Problems,
    hygiene: Problems,
}

impl Io {
    fn with_incoming(id: &str, incoming: mpsc::Receiver<Incoming>) -> Io {
        Io {
            incoming,
            id: id.to_owned(),
            prefix: format!("{id}:"),
            ready: false,
            hellos: 0,
            bad_hello: None,
            lines_read: 0,
            first_unreadable: None,
            devices: BTreeMap::new(),
            order: Vec::new(),
            available: BTreeSet::new(),
            last: BTreeMap::new(),
            states_checked: 0,
            refresh: None,
            pongs: Vec::new(),
            sent: Vec::new(),
            malformed: BTreeSet::new(),
            probe: None,
            device_problems: Problems::default(),
            state_problems: Problems::default(),
            state_details: Problems::default(),
            hygiene: Problems::default(),
        }
    }

    fn all_available(&self) -> bool {
        !self.order.is_empty() && self.order.iter().all(|d| self.available.contains(d))
    }

    /// Reads one line: the message if it is readable, after checking it.
    fn take(&mut self, line: Line) -> Option<(u64, PluginMessage)> {
        self.lines_read += 1;
        match line {
            Line::Text(n, text) => {
                if text.trim().is_empty() {
                    return None;
                }
                match parse_plugin(&text) {
                    Ok(m) => {
                        self.observe(n, &m);
                        Some((n, m))
                    }
                    Err(e) => {
                        self.unreadable(n, &text, &e);
                        None
                    }
                }
            }
            Line::NotUtf8(n) => {
                self.first_unreadable.get_or_insert(n);
                self.hygiene.push(format!("stdout line {n} is not UTF-8 (the hub answers not_json)"));
                None
            }
            Line::TooLong(n, length) => {
                self.first_unreadable.get_or_insert(n);
                self.hygiene.push(format!(
                    "stdout line {n} is {length} bytes long, over the 1 MiB limit (the hub discards it: line_too_long)"
                ));
                None
            }
        }
    }

    fn unreadable(&mut self, n: u64, text: &str, e: &ProtocolError) {
        if e.unreadable() {
            self.first_unreadable.get_or_insert(n);
        }
        if self.hellos == 0 && e.refused_type.as_deref() == Some("hello") {
            self.bad_hello = Some((n, e.message.clone()));
        }
        let nan = e.code == codes::NOT_JSON && has_non_finite(text);
        let problem = if nan {
            format!(
                "stdout line {n} has NaN or Infinity, which JSON does not have (the hub answers not_json): {}",
                short(text)
            )
        } else if e.code == codes::NOT_JSON {
            format!(
                "stdout line {n} is not JSON: {} (stdout is for protocol only; write anything else to stderr)",
                short(text)
            )
        } else {
            format!("stdout line {n} was refused ({}): {}", e.code, e.message)
        };
        // A message about devices that does not parse is also a devices problem.
        if e.code == codes::BAD_MESSAGE
            && matches!(
                e.refused_type.as_deref(),
                Some("device" | "device_removed" | "state" | "event" | "availability" | "found")
            )
        {
            self.device_problems.push(format!("stdout line {n}: {} (the hub answers bad_message)", e.message));
        }
        self.hygiene.push(problem);
    }

    fn own(&mut self, n: u64, kind: &str, id: &DeviceId) -> bool {
        if id.as_str().starts_with(&self.prefix) && id.as_str().len() > self.prefix.len() {
            return true;
        }
        self.device_problems.push(format!(
            "stdout line {n}: `{kind}` names `{id}`, which is not one of the plugin's devices: its ids start with `{}` (the hub refuses it: foreign_device)",
            self.prefix
        ));
        false
    }

    fn announced(&mut self, n: u64, kind: &str, id: &DeviceId) -> bool {
        if self.devices.contains_key(id.as_str()) {
            return true;
        }
        self.device_problems.push(format!(
            "stdout line {n}: `{kind}` for `{id}`, which was not announced with `device` first (the hub refuses it: unknown_device)"
        ));
        false
    }

    fn observe(&mut self, n: u64, m: &PluginMessage) {
        match m {
            PluginMessage::Adapter(e) => {
                if !self.ready {
                    self.device_problems.push(format!(
                        "stdout line {n}: `{}` came before the kit sent `ready` (the hub refuses it: out_of_order); wait for `ready`",
                        m.kind()
                    ));
                    return;
                }
                self.observe_event(n, e);
            }
            PluginMessage::Control(c) => match c {
                PluginControl::Hello(_) => {
                    self.hellos += 1;
                    if self.hellos > 1 {
                        self.hygiene.push(format!("stdout line {n}: a second `hello` (the hub refuses it: out_of_order)"));
                    }
                }
                PluginControl::Log(_) => {}
                PluginControl::ActionResult(r) => self.hygiene.push(format!(
                    "stdout line {n}: `action_result` for action `{}`, but the kit sent no action (the hub answers unknown_action)",
                    short(&r.id)
                )),
                PluginControl::Pong { id } => self.pongs.push(*id),
                PluginControl::Error(e) => self.plugin_error(n, e),
            },
        }
    }

    fn plugin_error(&mut self, n: u64, e: &ErrorMessage) {
        match e.line {
            Some(l) if self.malformed.contains(&l) => {}
            None if self.probe.is_some() => {}
            Some(l) => {
                let what = usize::try_from(l)
                    .ok()
                    .and_then(|i| i.checked_sub(1))
                    .and_then(|i| self.sent.get(i))
                    .map_or_else(|| "a line the kit never wrote".to_owned(), |k| format!("the kit's `{k}`"));
                self.hygiene.push(format!(
                    "stdout line {n}: the plugin refused stdin line {l} ({what}) with error `{}`: {}",
                    e.code,
                    short(&e.message)
                ));
            }
            None => self.hygiene.push(format!(
                "stdout line {n}: the plugin sent error `{}` about none of the kit's lines: {}",
                e.code,
                short(&e.message)
            )),
        }
    }

    fn observe_event(&mut self, n: u64, e: &AdapterEvent) {
        match e {
            AdapterEvent::Device { device } => {
                if !self.own(n, "device", &device.id) {
                    return;
                }
                if let Some(via) = &device.via
                    && !self.own(n, "device` (its `via`", via)
                {
                    return;
                }
                let mut keys = BTreeSet::new();
                let duplicates: BTreeSet<&str> =
                    device.features.iter().filter(|f| !keys.insert(f.key.as_str())).map(|f| f.key.as_str()).collect();
                if !duplicates.is_empty() {
                    self.device_problems.push(format!(
                        "stdout line {n}: device `{}` has the feature key(s) {} more than once (the hub refuses it: invalid)",
                        device.id,
                        duplicates.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ));
                    return;
                }
                let id = device.id.as_str().to_owned();
                if !self.devices.contains_key(&id) {
                    self.order.push(id.clone());
                }
                self.devices.insert(id.clone(), device.clone());
                if let Some(r) = self.refresh.as_mut()
                    && let Some(seen) = r.get_mut(&id)
                {
                    seen.0 = true;
                }
            }
            AdapterEvent::DeviceRemoved { device } => {
                if self.own(n, "device_removed", device) && self.announced(n, "device_removed", device) {
                    self.devices.remove(device.as_str());
                    self.order.retain(|d| d != device.as_str());
                    self.available.remove(device.as_str());
                }
            }
            AdapterEvent::State { device, values, .. } => {
                if !(self.own(n, "state", device) && self.announced(n, "state", device)) {
                    return;
                }
                self.states_checked += 1;
                let Some(descriptor) = self.devices.get(device.as_str()) else { return };
                let features = descriptor.features.clone();
                for (key, value) in values {
                    let Some(feature) = features.iter().find(|f| &f.key == key) else {
                        self.state_problems.push(format!(
                            "stdout line {n}: `state` for `{device}` names feature `{key}`, which the device does not have (the hub refuses it: invalid)"
                        ));
                        continue;
                    };
                    match check_value(feature, value) {
                        Ok(()) => {}
                        Err(e @ CommandError::WrongType { .. }) => {
                            self.state_problems.push(format!(
                                "stdout line {n}: `state` for `{device}`: {e} (the hub refuses the value: invalid)"
                            ));
                            continue;
                        }
                        Err(e) => self.state_details.push(format!(
                            "stdout line {n}: `state` for `{device}`: {e} (applied anyway: devices report such values)"
                        )),
                    }
                    self.last.insert((device.as_str().to_owned(), key.clone()), value.clone());
                }
            }
            AdapterEvent::Event { device, feature, .. } => {
                if !(self.own(n, "event", device) && self.announced(n, "event", device)) {
                    return;
                }
                if self.devices.get(device.as_str()).is_some_and(|d| d.feature(feature).is_none()) {
                    self.state_problems.push(format!(
                        "stdout line {n}: `event` for `{device}` names feature `{feature}`, which the device does not have (the hub refuses it: invalid)"
                    ));
                }
            }
            AdapterEvent::Availability { device, availability } => {
                if !(self.own(n, "availability", device) && self.announced(n, "availability", device)) {
                    return;
                }
                if availability.state == AvailabilityState::Offline
                    && availability.reason.as_deref().is_none_or(|r| r.trim().is_empty())
                {
                    self.device_problems.push(format!(
                        "stdout line {n}: `{device}` is reported offline without a `reason`: say why, in a sentence a user understands"
                    ));
                }
                self.available.insert(device.as_str().to_owned());
                if let Some(r) = self.refresh.as_mut()
                    && let Some(seen) = r.get_mut(device.as_str())
                    && seen.0
                {
                    seen.1 = true;
                }
            }
            AdapterEvent::Found { found } => {
                let _ = self.own(n, "found", &found.device);
            }
            AdapterEvent::InputRejected { .. } | AdapterEvent::Status { .. } => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command round trip.

/// The command the kit sends, and what it expects back.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    device: DeviceId,
    key: String,
    /// `None` for a refresh.
    value: Option<Value>,
    step: Option<f64>,
}

impl Probe {
    fn request(&self) -> CommandRequest {
        match &self.value {
            Some(v) => CommandRequest { set: [(self.key.clone(), v.clone())].into(), ..CommandRequest::default() },
            None => {
                CommandRequest { refresh: Some(Refresh::Features(vec![self.key.clone()])), ..CommandRequest::default() }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.value {
            Some(v) => format!("set `{}` to {v}", self.key),
            None => format!("refresh `{}`", self.key),
        }
    }

    /// Whether a state carrying the command's cause reports what was asked.
    fn judge(&self, values: &BTreeMap<String, Value>) -> Result<(), String> {
        let Some(want) = &self.value else { return Ok(()) };
        let Some(got) = values.get(&self.key) else {
            return Err(format!("it does not report `{}`, which the command set", self.key));
        };
        let same = match (want, got) {
            (Value::Number(a), Value::Number(b)) => {
                let tolerance = self.step.map_or(1e-9 * a.abs().max(1.0), |s| (s / 2.0).abs());
                (a - b).abs() <= tolerance
            }
            _ => want == got,
        };
        if same { Ok(()) } else { Err(format!("it reports `{}` = {got}, not the {want} asked for", self.key)) }
    }
}

/// Picks the command: a settable bool (set to the opposite of its last value), else a settable
/// number (within its range), else a settable enum, else a refresh of a readable feature.
fn choose_command<'a>(devices: &[&DeviceDescriptor], last: impl Fn(&str, &str) -> Option<&'a Value>) -> Option<Probe> {
    let settable = |f: &Feature| f.access.set;
    let make = |d: &DeviceDescriptor, f: &Feature, value: Option<Value>| Probe {
        device: d.id.clone(),
        key: f.key.clone(),
        value,
        step: match f.value_type {
            ValueType::Number { step, .. } => step,
            _ => None,
        },
    };
    for d in devices {
        if let Some(f) = d.features.iter().find(|f| settable(f) && f.value_type == ValueType::Bool) {
            let previous = last(d.id.as_str(), &f.key).and_then(Value::as_bool);
            return Some(make(d, f, Some(Value::Bool(!previous.unwrap_or(false)))));
        }
    }
    for d in devices {
        for f in d.features.iter().filter(|f| settable(f)) {
            if let ValueType::Number { min, max, step } = f.value_type {
                let previous = last(d.id.as_str(), &f.key).and_then(Value::as_f64);
                if let Some(v) = pick_number(min, max, step, previous)
                    && check_value(f, &Value::Number(v)).is_ok()
                {
                    return Some(make(d, f, Some(Value::Number(v))));
                }
            }
        }
    }
    for d in devices {
        for f in d.features.iter().filter(|f| settable(f)) {
            if let ValueType::Enum { values } = &f.value_type {
                let previous = last(d.id.as_str(), &f.key).and_then(Value::as_str);
                if let Some(v) = values.iter().find(|v| Some(v.as_str()) != previous).or(values.first()) {
                    return Some(make(d, f, Some(Value::Text(v.clone()))));
                }
            }
        }
    }
    for d in devices {
        if let Some(f) = d.features.iter().find(|f| f.access.get) {
            return Some(make(d, f, None));
        }
    }
    None
}

/// A number within `min`..`max`, on a step from `min`, different from `previous` if it can be.
fn pick_number(min: Option<f64>, max: Option<f64>, step: Option<f64>, previous: Option<f64>) -> Option<f64> {
    let step = step.filter(|s| s.is_finite() && *s > 0.0);
    let snap = |v: f64, from: f64| match step {
        Some(s) => from + ((v - from) / s).round() * s,
        None => v,
    };
    let candidates: Vec<f64> = match (min, max) {
        (Some(lo), Some(hi)) if lo <= hi => {
            let mid = snap(lo + (hi - lo) / 2.0, lo);
            vec![if mid > hi { lo } else { mid }, lo, hi]
        }
        (Some(_), Some(_)) => vec![],
        (Some(lo), None) => vec![lo + step.unwrap_or(1.0), lo],
        (None, Some(hi)) => vec![hi - step.unwrap_or(1.0), hi],
        (None, None) => vec![1.0, 0.0],
    };
    let usable: Vec<f64> = candidates.into_iter().filter(|v| v.is_finite()).collect();
    usable.iter().copied().find(|v| previous != Some(*v)).or(usable.first().copied())
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// A new, empty data directory for the plugin under the system's temporary directory.
fn make_data_dir(id: &str) -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let base = std::env::temp_dir();
    for _ in 0..8 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("hearth-plugin-test-{id}-{}-{n}-{nanos}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create a data directory for the plugin in {}: {e}", base.display())),
        }
    }
    Err(format!("cannot create a data directory for the plugin in {}: every name tried exists", base.display()))
}

fn describe_exit(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("was ended by a signal ({status})"),
    }
}

/// Whether a line that is not JSON holds `NaN` or `Infinity` outside strings.
fn has_non_finite(text: &str) -> bool {
    let mut outside = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            outside.push(' ');
        } else {
            outside.push(c);
        }
    }
    outside.contains("NaN") || outside.contains("Infinity")
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round())
    } else if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn shell_words(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("{w:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Access, Capability};

    fn device(features: Vec<Feature>) -> DeviceDescriptor {
        DeviceDescriptor::new(DeviceId::new("t", "a"), "A", features)
    }

    #[test]
    fn the_command_prefers_a_bool_and_flips_it() {
        let d = device(vec![
            Feature::new("level", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
            Feature::new("on", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
        ]);
        let on = Value::Bool(true);
        let p = choose_command(&[&d], |_, k| (k == "on").then_some(&on)).unwrap();
        assert_eq!((p.key.as_str(), p.value), ("on", Some(Value::Bool(false))));
        let p = choose_command(&[&d], |_, _| None).unwrap();
        assert_eq!(p.value, Some(Value::Bool(true)));
    }

    #[test]
    fn the_command_falls_back_to_numbers_enums_and_refresh() {
        let level =
            Feature::new("level", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE);
        let fifty = Value::Number(50.0);
        let p = choose_command(&[&device(vec![level.clone()])], |_, _| Some(&fifty)).unwrap();
        assert_eq!(p.value, Some(Value::Number(0.0)));
        assert_eq!(p.step, Some(1.0));
        let p = choose_command(&[&device(vec![level])], |_, _| None).unwrap();
        assert_eq!(p.value, Some(Value::Number(50.0)));
        let mode = Feature::new("mode", Capability::HvacMode, ValueType::enumeration(["off", "heat"]), Access::ALL);
        let off = Value::Text("off".into());
        let p = choose_command(&[&device(vec![mode])], |_, _| Some(&off)).unwrap();
        assert_eq!(p.value, Some(Value::Text("heat".into())));
        let temp = Feature::new(
            "t",
            Capability::Temperature,
            ValueType::number(),
            Access { observe: true, set: false, get: true },
        );
        let p = choose_command(&[&device(vec![temp])], |_, _| None).unwrap();
        assert_eq!(p.value, None);
        assert_eq!(p.request().refresh, Some(Refresh::Features(vec!["t".into()])));
        let color = Feature::new("c", Capability::Color, ValueType::Color, Access::READ_WRITE);
        let sensor = Feature::new("s", Capability::Temperature, ValueType::number(), Access::READ_ONLY);
        assert_eq!(choose_command(&[&device(vec![color, sensor])], |_, _| None), None);
    }

    #[test]
    fn numbers_stay_in_range_and_on_step() {
        assert_eq!(pick_number(Some(5.0), Some(30.0), Some(0.5), None), Some(17.5));
        assert_eq!(pick_number(Some(0.0), Some(3.0), Some(2.0), None), Some(2.0));
        assert_eq!(pick_number(Some(0.0), Some(1.0), Some(2.0), None), Some(0.0));
        assert_eq!(pick_number(Some(4.0), None, None, Some(5.0)), Some(4.0));
        assert_eq!(pick_number(None, Some(-3.0), Some(1.0), None), Some(-4.0));
        assert_eq!(pick_number(None, None, None, Some(1.0)), Some(0.0));
        assert_eq!(pick_number(Some(3.0), Some(1.0), None, None), None);
        assert_eq!(pick_number(Some(2.0), Some(2.0), None, Some(2.0)), Some(2.0));
    }

    #[test]
    fn a_state_is_judged_by_the_value_asked_for() {
        let p = Probe {
            device: DeviceId::new("t", "a"),
            key: "level".into(),
            value: Some(Value::Number(50.0)),
            step: Some(1.0),
        };
        assert!(p.judge(&[("level".to_owned(), Value::Number(50.4))].into()).is_ok());
        assert!(p.judge(&[("level".to_owned(), Value::Number(52.0))].into()).unwrap_err().contains("not the 50.0"));
        assert!(p.judge(&BTreeMap::new()).unwrap_err().contains("does not report `level`"));
        let refresh = Probe { value: None, ..p };
        assert!(refresh.judge(&BTreeMap::new()).is_ok());
    }

    fn io() -> Io {
        let (_, rx) = mpsc::channel(1);
        let mut io = Io::with_incoming("t", rx);
        io.ready = true;
        io
    }

    fn feed(io: &mut Io, lines: &[&str]) {
        for (i, l) in lines.iter().enumerate() {
            let _ = io.take(Line::Text(i as u64 + 1, (*l).to_owned()));
        }
    }

    const DEVICE: &str = r#"{"type":"device","device":{"id":"t:a","name":"A","features":[{"key":"on","capability":"on_off","type":"bool","access":{"observe":true,"set":true,"get":false}},{"key":"level","capability":"brightness","type":"number","min":0,"max":100,"access":{"observe":true,"set":true,"get":false}}]}}"#;

    #[test]
    fn device_messages_are_checked_as_the_hub_checks_them() {
        let mut i = io();
        feed(
            &mut i,
            &[
                r#"{"type":"state","device":"t:a","values":{"on":true}}"#,
                DEVICE,
                r#"{"type":"availability","device":"other:a","availability":{"state":"online"}}"#,
                r#"{"type":"availability","device":"t:a","availability":{"state":"offline"}}"#,
                r#"{"type":"device","device":{"id":"t:b","name":"B","features":[{"key":"x","capability":"other","type":"bool","access":{"observe":true,"set":false,"get":false}},{"key":"x","capability":"other","type":"bool","access":{"observe":true,"set":false,"get":false}}]}}"#,
                r#"{"type":"state","device":"t:a","values":{"on":"yes","level":140,"nope":1}}"#,
                r#"{"type":"event","device":"t:a","feature":"button","event":"single"}"#,
            ],
        );
        let devices = i.device_problems.take().join("\n");
        assert!(devices.contains("line 1: `state` for `t:a`, which was not announced"), "{devices}");
        assert!(devices.contains("line 3: `availability` names `other:a`"), "{devices}");
        assert!(devices.contains("line 4: `t:a` is reported offline without a `reason`"), "{devices}");
        assert!(devices.contains("line 5: device `t:b` has the feature key(s) `x` more than once"), "{devices}");
        assert_eq!(i.order, ["t:a"]);
        let state = i.state_problems.take().join("\n");
        assert!(state.contains("feature `on` takes true or false, not text \"yes\""), "{state}");
        assert!(state.contains("names feature `nope`"), "{state}");
        assert!(state.contains("line 7: `event` for `t:a` names feature `button`"), "{state}");
        let details = i.state_details.take().join("\n");
        assert!(details.contains("feature `level` takes 0 to 100, not 140"), "{details}");
        assert_eq!(i.last.get(&("t:a".to_owned(), "level".to_owned())), Some(&Value::Number(140.0)));
        assert!(i.hygiene.list.is_empty());
    }

    #[test]
    fn hygiene_catches_garbage_nan_long_lines_and_stray_errors() {
        let mut i = io();
        i.sent = vec!["hello", "secrets", "inbox", "ready", "malformed"];
        i.malformed.insert(5);
        feed(
            &mut i,
            &[
                "Starting up...",
                r#"{"type":"state","device":"t:a","values":{"level":NaN}}"#,
                r#"{"type":"error","code":"not_json","message":"x","line":5}"#,
                r#"{"type":"error","code":"unknown_type","message":"what is ready?","line":4}"#,
                r#"{"type":"log","level":"info","message":"NaN is fine in a string"}"#,
                r#"{"type":"pong"}"#,
                "",
            ],
        );
        let _ = i.take(Line::TooLong(8, 2 << 20));
        let h = i.hygiene.take().join("\n");
        assert!(h.contains("line 1 is not JSON: Starting up... (stdout is for protocol only"), "{h}");
        assert!(h.contains("line 2 has NaN or Infinity"), "{h}");
        assert!(!h.contains("line 3"), "{h}");
        assert!(
            h.contains("stdout line 4: the plugin refused stdin line 4 (the kit's `ready`) with error `unknown_type`"),
            "{h}"
        );
        assert!(!h.contains("line 5"), "{h}");
        assert!(h.contains("line 6 was refused (bad_message)"), "{h}");
        assert!(h.contains("line 8 is 2097152 bytes long"), "{h}");
        assert_eq!(i.first_unreadable, Some(1));
        assert!(!has_non_finite(r#"{"a":"NaN"}"#));
        assert!(has_non_finite(r#"{"a":"x\"","b":-Infinity}"#));
    }

    #[test]
    fn problems_are_capped() {
        let mut p = Problems::default();
        for i in 0..25 {
            p.push(i.to_string());
        }
        let all = p.take();
        assert_eq!(all.len(), 21);
        assert_eq!(all[20], "and 5 more like these");
    }

    fn report() -> Report {
        let mut steps: Vec<Step> =
            STEPS.iter().map(|name| Step { name, outcome: Outcome::Pass, details: vec![] }).collect();
        steps[2].outcome = Outcome::Fail("no `hello` within 10 s".into());
        steps[2].details.push("a detail".into());
        steps[3].outcome = Outcome::Skip("not reached: handshake failed".into());
        Report {
            dir: PathBuf::from("/plugins/weather"),
            plugin: Some(PluginInfo {
                id: "weather".into(),
                name: "Weather".into(),
                version: "1.2.0".into(),
                protocol: 1,
            }),
            hub_version: "0.1.0".into(),
            steps,
            stderr: vec!["Traceback (most recent call last):".into()],
        }
    }

    #[test]
    fn the_report_reads_for_people_and_machines() {
        let r = report();
        assert!(!r.passed());
        assert_eq!(r.counts(), (9, 1, 1));
        let text = r.to_string();
        assert!(text.starts_with("Hearth plugin conformance report: weather 1.2.0\n"), "{text}");
        assert!(text.contains("  hub:       0.1.0 (protocol 1, schema 1)"), "{text}");
        assert!(text.contains("\nFAIL handshake        no `hello` within 10 s\n       - a detail\n"), "{text}");
        assert!(text.contains("\nSKIP devices          not reached: handshake failed\n"), "{text}");
        assert!(text.contains("\nPASS manifest\n"), "{text}");
        assert!(text.contains("  | Traceback (most recent call last):"), "{text}");
        assert!(text.ends_with("\n9 passed, 1 failed, 1 skipped"), "{text}");
        let json = r.to_json();
        assert_eq!(json["plugin"]["id"], "weather");
        assert_eq!(json["passed"], false);
        assert_eq!(json["summary"], serde_json::json!({"passed": 9, "failed": 1, "skipped": 1}));
        assert_eq!(
            json["steps"][2],
            serde_json::json!({"name": "handshake", "outcome": "fail", "reason": "no `hello` within 10 s", "details": ["a detail"]})
        );
        assert_eq!(json["steps"][0], serde_json::json!({"name": "manifest", "outcome": "pass", "details": []}));
        assert_eq!(r.step("devices").map(|s| s.outcome.label()), Some("SKIP"));
    }

    #[test]
    fn records_become_steps() {
        let r = Record { problems: vec!["a".into()], details: vec!["d".into()], ..Record::default() };
        assert_eq!(
            r.into_step(S::Ping),
            Step { name: "ping", outcome: Outcome::Fail("a".into()), details: vec!["d".into()] }
        );
        let r = Record { problems: vec!["a".into(), "b".into()], ..Record::default() };
        assert_eq!(r.into_step(S::Ping).outcome, Outcome::Fail("a; and 1 more problem (see below)".into()));
        let r = Record {
            problems: (0..5).map(|i| i.to_string()).collect(),
            details: vec!["d".into()],
            ..Record::default()
        };
        let s = r.into_step(S::State);
        assert_eq!(s.outcome, Outcome::Fail("0; and 4 more problems (see below)".into()));
        assert_eq!(s.details, ["problem: 1", "problem: 2", "problem: 3", "problem: 4", "d"]);
        assert_eq!(S::Malformed.name(), "malformed input");
        assert_eq!(ORDER.map(S::name), STEPS);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
        assert_eq!(secs(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(secs(Duration::from_millis(500)), "500 ms");
    }

    #[test]
    fn a_run_can_be_spawned() {
        fn send<T: Send>(_: &T) {}
        let options = Options::default();
        let run = check(Path::new("/nonexistent"), &options);
        send(&run);
        assert_eq!(options.timeouts, 1.0);
        assert_eq!(options.hub_version, env!("CARGO_PKG_VERSION"));
    }

    #[tokio::test]
    async fn a_missing_directory_fails_the_manifest_and_skips_the_rest() {
        let r = check(Path::new("/nonexistent/hearth/plugin"), &Options::default()).await;
        assert!(!r.passed());
        assert!(matches!(&r.steps[0].outcome, Outcome::Fail(m) if m.contains("cannot read it")), "{r}");
        assert!(r.steps[1..].iter().all(|s| s.outcome == Outcome::Skip("not reached: manifest failed".into())), "{r}");
        assert_eq!(r.counts(), (0, 1, 10));
    }
}
