//! One connection to a Yeelight bulb (TCP, JSON lines ending in `\r\n`), from its first
//! `get_prop` to the last line.
//!
//! 1. What the bulb can do comes from its discovery answer (the target's TXT records: `model`,
//!    `support`, `fw_ver`, `name`). The session connects and asks `get_prop` for
//!    [`PROPS`]; the answer describes the device (named by its `name`, else as found), makes it
//!    online ([`Link::up`]) and is its first state.
//! 2. The bulb sends `props` notifications to every connection when something changes (its
//!    app, its switch, this hub): each becomes a state report. A change of `name` describes the
//!    device again.
//! 3. Commands become one method each ([`crate::map::plan`]), spent from the device's command
//!    budget ([`crate::budget`]): what finds the budget empty waits in the outbox, where a
//!    newer value of the same setting replaces it, and goes out as the budget refills. Requests
//!    carry ids; results and errors are matched to them. A refusal is logged in the bulb's own
//!    words (`{"code":-1,"message":"…"}`); `client quota exceeded` empties the budget and the
//!    write waits for it again. The first notification within [`CAUSE_WINDOW`] that shows what
//!    a write asked for carries its command's context.
//! 4. Keep-alive: after a third of [`Link::idle`] without a word from the bulb (at least 2 s,
//!    at most half of it, so keep-alives do not eat the budget) the session asks `get_prop`
//!    (answered with the state, reported too); after [`Link::idle`] of silence it fails with
//!    `no answer from <address> for <n> s`.
//!
//! Music mode (the bulb connecting back to a server of the hub's, without quota) is not used.
//! Nothing the bulb sends can panic the session: a line that cannot be read is sent as
//! `InputRejected` (logged once per session) and the session goes on.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hearth_mdns::lan::Link;
use hearth_sdk::{AdapterEvent, Command, Context, DeviceId};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::api::{Incoming, parse_line, request, text};
use crate::budget::{Budget, Outbox};
use crate::map::{Caps, ColorMemory, PROPS, Slot, Write, default_name, descriptor, plan};

/// How long after a write a notification showing its result is attributed to it.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(5);
/// The most writes waiting for the notification that shows them; older ones are forgotten.
const MAX_AWAITING: usize = 32;
/// The longest line read from a bulb; a longer one is skipped.
pub const MAX_LINE: usize = 16 * 1024;

/// A read waiting for the budget or sent.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    props: Vec<&'static str>,
    /// The refresh it answers, if any.
    cause: Option<Context>,
    /// The session's first read: its answer describes the device.
    first: bool,
}

impl Read {
    /// Takes another read's properties (and its cause, the newer one).
    fn merge(&mut self, other: Read) {
        for p in other.props {
            if !self.props.contains(&p) {
                self.props.push(p);
            }
        }
        if other.cause.is_some() {
            self.cause = other.cause;
        }
        self.first |= other.first;
    }
}

/// What a request in flight was.
#[derive(Debug, Clone)]
enum Sent {
    Write(Write),
    Read(Read),
}

/// Splits what the bulb sends into lines, skipping any longer than [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    skipping: bool,
}

impl Lines {
    /// Takes `bytes`; returns the complete lines (without `\r\n`, empty ones left out), or an
    /// error for each line too long.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut out = Vec::new();
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            let (head, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            if self.skipping {
                self.skipping = false;
                self.buf.clear();
                continue;
            }
            self.buf.extend_from_slice(head);
            let mut line = std::mem::take(&mut self.buf);
            while line.last().is_some_and(|b| *b == b'\r' || b.is_ascii_whitespace()) {
                line.pop();
            }
            if line.len() > MAX_LINE {
                out.push(Err(format!("a line longer than {} KiB", MAX_LINE / 1024)));
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                out.push(Ok(line));
            }
        }
        if !self.skipping {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                self.skipping = true;
                out.push(Err(format!("a line longer than {} KiB", MAX_LINE / 1024)));
            }
        }
        out
    }
}

/// How long the bulb may be silent before a keep-alive: a third of `idle`, at least 2 s (so
/// keep-alives stay well within the budget), at most half of `idle`.
pub fn keepalive_period(idle: Duration) -> Duration {
    (idle / 3).max(Duration::from_secs(2)).min(idle / 2)
}

/// The state of one session.
struct Session {
    link: Link,
    device: DeviceId,
    address: SocketAddr,
    caps: Caps,
    firmware: Option<String>,
    name: String,
    memory: ColorMemory,
    /// Whether the first answer came (the device is described and online).
    up: bool,
    /// Whether the bulb said it is on, when it did.
    power: Option<bool>,
    budget: Arc<Mutex<Budget>>,
    outbox: Outbox,
    read: Option<Read>,
    inflight: HashMap<u64, (Sent, Instant)>,
    /// Writes sent whose result no notification has shown yet, oldest first.
    awaiting: Vec<(Write, Instant)>,
    next_id: u64,
    wr: OwnedWriteHalf,
    /// Whether an unreadable line was logged already (once per session).
    rejected_logged: bool,
    /// Where lines come from, for `InputRejected` and the log.
    source: String,
}

/// One connection to the bulb at `link.target`, spending from `budget`, until it fails (`Err`,
/// a sentence for the log) or the command channel closes (`Ok`).
pub async fn run(link: Link, budget: Arc<Mutex<Budget>>) -> Result<(), String> {
    let txt = |k: &str| link.target.txt.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let model = txt("model").unwrap_or_default();
    let caps = Caps::new(&model, txt("support").as_deref());
    let firmware = txt("fw_ver");
    let name = txt("name")
        .or_else(|| Some(link.target.name.trim().to_owned()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| default_name(Some(&model), &link.target.key));
    let stream = link
        .connect()
        .await
        .map_err(|e| format!("{e}; a bulb answers only with \"LAN Control\" switched on in the Yeelight app"))?;
    let (rd, wr) = stream.into_split();
    let address = link.target.socket();
    let mut session = Session {
        device: link.target.device.clone(),
        source: format!("yeelight://{address}"),
        link,
        address,
        caps,
        firmware,
        name,
        memory: ColorMemory::default(),
        up: false,
        power: None,
        budget,
        outbox: Outbox::new(),
        read: Some(Read { props: PROPS.to_vec(), cause: None, first: true }),
        inflight: HashMap::new(),
        awaiting: Vec::new(),
        next_id: 1,
        wr,
        rejected_logged: false,
    };
    let result = session.stream(rd).await;
    let unsent = session.outbox.drain();
    if !unsent.is_empty() && result.is_err() {
        tracing::warn!(device = %session.device, writes = unsent.len(), "Commands waiting for the bulb's budget were not sent: the connection ended.");
    }
    result
}

impl Session {
    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.budget.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads lines, carries out commands and keeps the bulb talking, until the connection
    /// fails, the bulb goes silent, or the commands close.
    async fn stream(&mut self, mut rd: OwnedReadHalf) -> Result<(), String> {
        let idle = self.link.idle;
        let ping_every = keepalive_period(idle);
        let mut lines = Lines::default();
        let mut chunk = vec![0u8; 4096];
        let mut last_heard = Instant::now();
        let mut last_ping = last_heard;
        loop {
            let now = Instant::now();
            self.expire(now);
            let send_at = self.send_ready(now).await?;
            let give_up = last_heard + idle;
            // A keep-alive only when nothing else would make the bulb answer.
            let reading = self.read.is_some() || self.inflight.values().any(|(s, _)| matches!(s, Sent::Read(_)));
            let ping_at = (self.outbox.is_empty() && !reading).then(|| last_heard.max(last_ping) + ping_every);
            let wake = [Some(give_up), ping_at, send_at].into_iter().flatten().min().unwrap_or(give_up);
            tokio::select! {
                r = rd.read(&mut chunk) => {
                    let n = match r {
                        Ok(0) if self.up => return Err(format!("the Yeelight bulb at {} closed the connection", self.address)),
                        Ok(0) => return Err(format!(
                            "the Yeelight bulb at {} closed the connection before answering (a bulb keeps at most 4 connections: another app may hold them all)",
                            self.address
                        )),
                        Ok(n) => n,
                        Err(e) => return Err(format!("reading from the Yeelight bulb at {} failed ({e})", self.address)),
                    };
                    last_heard = Instant::now();
                    self.link.heard();
                    for line in lines.push(&chunk[..n]) {
                        match line {
                            Ok(line) => self.line(&line).await?,
                            Err(reason) => self.reject(reason).await?,
                        }
                    }
                }
                command = self.link.commands.recv() => {
                    let Some(command) = command else {
                        let _ = self.wr.shutdown().await;
                        return Ok(());
                    };
                    self.command(command);
                }
                () = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(self.link.no_answer());
                    }
                    if ping_at.is_some_and(|p| now >= p) {
                        last_ping = now;
                        self.read = Some(Read { props: PROPS.to_vec(), cause: None, first: false });
                    }
                }
            }
        }
    }

    /// Forgets requests the bulb never answered and writes no notification showed in time.
    fn expire(&mut self, now: Instant) {
        let idle = self.link.idle;
        self.inflight.retain(|_, (_, at)| now.duration_since(*at) <= idle);
        self.awaiting.retain(|(_, at)| now.duration_since(*at) <= CAUSE_WINDOW);
    }

    /// Sends what waits as far as the budget allows; returns when the budget allows the next,
    /// if something still waits.
    async fn send_ready(&mut self, now: Instant) -> Result<Option<Instant>, String> {
        loop {
            let first = self.read.as_ref().is_some_and(|r| r.first);
            if self.read.is_none() && self.outbox.is_empty() {
                return Ok(None);
            }
            {
                let mut budget = self.budget();
                if !budget.try_take(now) {
                    return Ok(Some(budget.ready_at(now)));
                }
            }
            // The first read before anything; then writes; then other reads.
            let sent = if first {
                self.read.take().map(Sent::Read)
            } else {
                self.outbox.pop().map(Sent::Write).or_else(|| self.read.take().map(Sent::Read))
            };
            let Some(sent) = sent else { return Ok(None) };
            self.send(sent, now).await?;
        }
    }

    /// Sends one request.
    async fn send(&mut self, sent: Sent, now: Instant) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let line = match &sent {
            Sent::Write(w) => request(id, w.method, &w.params),
            Sent::Read(r) => request(id, "get_prop", &r.props.iter().map(|p| json!(p)).collect::<Vec<_>>()),
        };
        tracing::debug!(device = %self.device, line = line.trim_end(), "Sending a request to the Yeelight bulb.");
        if let Sent::Write(w) = &sent {
            if self.awaiting.len() >= MAX_AWAITING {
                self.awaiting.remove(0);
            }
            self.awaiting.push((w.clone(), now));
        }
        self.inflight.insert(id, (sent, now));
        self.wr
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot send to the Yeelight bulb at {} ({e})", self.address))
    }

    /// Whether the bulb is, or is about to be, on.
    fn power_intent(&self) -> Option<bool> {
        self.outbox.power().or_else(|| self.awaiting.iter().rev().find_map(|(w, _)| w.power())).or(self.power)
    }

    /// Queues a command's writes and reads.
    fn command(&mut self, command: Command) {
        if command.device != self.device {
            tracing::warn!(device = %command.device, connected = %self.device, "A command for another device reached this Yeelight session; it was dropped.");
            return;
        }
        let (writes, reads) = plan(&command.request, &self.caps, self.power_intent(), &command.context);
        for w in writes {
            if let Some(older) = self.outbox.push(w) {
                tracing::debug!(device = %self.device, method = older.method, "A newer value replaced one waiting for the bulb's budget.");
            }
        }
        if !reads.is_empty() {
            let read = Read { props: reads, cause: Some(command.context), first: false };
            match &mut self.read {
                Some(r) => r.merge(read),
                None => self.read = Some(read),
            }
        }
        if !self.outbox.is_empty() && self.budget().left(Instant::now()) == 0 {
            tracing::debug!(device = %self.device, waiting = self.outbox.len(), "The bulb's command budget is spent; the latest values wait for it.");
        }
    }

    /// One line of the bulb.
    async fn line(&mut self, line: &[u8]) -> Result<(), String> {
        let incoming = match parse_line(line) {
            Ok(i) => i,
            Err(e) => return self.reject(e.to_string()).await,
        };
        match incoming {
            Incoming::Result { id, result } => match self.inflight.remove(&id) {
                Some((Sent::Read(read), _)) => {
                    let props: BTreeMap<String, String> = read
                        .props
                        .iter()
                        .zip(result.iter())
                        .filter_map(|(p, v)| Some(((*p).to_owned(), text(v)?)))
                        .collect();
                    self.props(props, read.cause).await
                }
                Some((Sent::Write(w), _)) => {
                    if result.first() != Some(&json!("ok")) {
                        tracing::debug!(device = %self.device, method = w.method, ?result, "The bulb answered a write with something else than ok.");
                    }
                    Ok(())
                }
                None => {
                    tracing::debug!(device = %self.device, id, "The bulb answered a request this session does not know (it was given up on).");
                    Ok(())
                }
            },
            Incoming::Error { id, code, message } => self.refused(id, code, message).await,
            Incoming::Props(props) => self.props(props, None).await,
            Incoming::Other(method) => {
                tracing::debug!(device = %self.device, method, "The bulb sent a notification this adapter does not read.");
                Ok(())
            }
        }
    }

    /// The bulb refused request `id`, in its own words.
    async fn refused(&mut self, id: Option<u64>, code: i64, message: String) -> Result<(), String> {
        let quota = message.to_ascii_lowercase().contains("quota");
        let sent = id.and_then(|id| self.inflight.remove(&id)).map(|(s, _)| s);
        if quota {
            self.budget().exhaust(Instant::now());
        }
        match sent {
            Some(Sent::Write(w)) => {
                self.awaiting.retain(|(a, _)| !(a.slot == w.slot && a.context == w.context && a.params == w.params));
                if quota {
                    tracing::warn!(device = %self.device, method = w.method, code, %message, "The Yeelight bulb refused a command for its quota ({message}); it is sent again when the budget allows.");
                    self.outbox.retry(w);
                } else {
                    tracing::warn!(device = %self.device, method = w.method, params = %Json::from(w.params.clone()), code, %message, "The Yeelight bulb refused a command: {message}.");
                }
                Ok(())
            }
            Some(Sent::Read(r)) => {
                if quota {
                    tracing::warn!(device = %self.device, code, %message, "The Yeelight bulb refused to be read for its quota ({message}); it is asked again when the budget allows.");
                    match &mut self.read {
                        Some(waiting) => waiting.merge(r),
                        None => self.read = Some(r),
                    }
                    Ok(())
                } else if r.first {
                    Err(format!("the Yeelight bulb at {} refused get_prop: {message} (code {code})", self.address))
                } else {
                    tracing::warn!(device = %self.device, code, %message, "The Yeelight bulb refused to be read: {message}.");
                    Ok(())
                }
            }
            None => {
                tracing::warn!(device = %self.device, ?id, code, %message, "The Yeelight bulb reported an error: {message}.");
                Ok(())
            }
        }
    }

    /// Properties the bulb reported (a notification, or the answer of a read for `cause`).
    async fn props(&mut self, props: BTreeMap<String, String>, cause: Option<Context>) -> Result<(), String> {
        match props.get("power").map(|p| p.trim()) {
            Some("on") => self.power = Some(true),
            Some("off") => self.power = Some(false),
            _ => {}
        }
        let renamed = props.get("name").map(|n| n.trim()).filter(|n| !n.is_empty() && *n != self.name);
        if let Some(n) = renamed {
            self.name = n.to_owned();
        }
        let values = self.memory.values(&self.caps, &props);
        let cause = cause.or_else(|| self.cause(&props));
        let gone = |e: hearth_sdk::HubGone| e.to_string();
        if !self.up || renamed.is_some() {
            let d = descriptor(&self.device, &self.name, &self.caps, self.firmware.as_deref());
            self.link.events.device(d).await.map_err(gone)?;
        }
        if !self.up {
            self.up = true;
            self.link.up().await.map_err(gone)?;
            tracing::info!(device = %self.device, address = %self.address, "The Yeelight bulb is connected.");
        }
        if !values.is_empty() {
            self.link.events.state(&self.device, values, cause).await.map_err(gone)?;
        }
        Ok(())
    }

    /// The context of the latest write `props` shows; it, and the writes of the same settings
    /// sent before it, stop waiting.
    fn cause(&mut self, props: &BTreeMap<String, String>) -> Option<Context> {
        let now = Instant::now();
        self.awaiting.retain(|(_, at)| now.duration_since(*at) <= CAUSE_WINDOW);
        let latest = self.awaiting.iter().rposition(|(w, _)| w.shown_by(props))?;
        let context = self.awaiting[latest].0.context.clone();
        let shown: Vec<Slot> =
            self.awaiting[..=latest].iter().filter(|(w, _)| w.shown_by(props)).map(|(w, _)| w.slot).collect();
        let mut i = 0;
        self.awaiting.retain(|(w, _)| {
            i += 1;
            i > latest + 1 || !shown.contains(&w.slot)
        });
        Some(context)
    }

    /// A line that cannot be read: counted by the hub, logged once per session.
    async fn reject(&mut self, reason: String) -> Result<(), String> {
        if !self.rejected_logged {
            self.rejected_logged = true;
            tracing::warn!(device = %self.device, source = %self.source, %reason, "The Yeelight bulb sent a line that cannot be read; it was skipped (further ones are counted, not logged).");
        }
        self.link
            .events
            .send(AdapterEvent::InputRejected { source: self.source.clone(), reason })
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_at_line_feeds_and_long_ones_skipped() {
        let mut l = Lines::default();
        assert!(l.push(b"{\"id\":1,").is_empty());
        assert_eq!(l.push(b"\"result\":[\"ok\"]}\r\n\r\n{\"a\"").len(), 1);
        assert_eq!(l.push(b":1}\n"), vec![Ok(b"{\"a\":1}".to_vec())]);
        let long = vec![b'x'; MAX_LINE + 10];
        let out = l.push(&long);
        assert!(matches!(out.as_slice(), [Err(e)] if e.contains("longer than 16 KiB")), "{out:?}");
        assert!(l.push(b"more of it").is_empty(), "the rest of the long line is skipped");
        assert_eq!(l.push(b"tail\r\n{\"b\":2}\r\n"), vec![Ok(b"{\"b\":2}".to_vec())]);
    }

    #[test]
    fn keepalives_come_at_a_third_of_the_idle_time_within_bounds() {
        assert_eq!(keepalive_period(Duration::from_secs(60)), Duration::from_secs(20));
        assert_eq!(keepalive_period(Duration::from_secs(3)), Duration::from_millis(1500));
        assert_eq!(keepalive_period(Duration::from_secs(6)), Duration::from_secs(2));
        assert_eq!(keepalive_period(Duration::from_secs(9)), Duration::from_secs(3));
    }
}
