//! One session with a miIO device over UDP, from the hello to the last poll.
//!
//! 1. A UDP socket connected to the device (the port it announced, else 54321). The hello gives
//!    its device id (which must be the one announced) and its clock; every request carries that
//!    clock moved on by the time since.
//! 2. Its token, from the adapter's secrets by its did. Without one the device is refused
//!    ([`Link::refused`]): the user is asked to enter it.
//! 3. `miIO.info`: the model (and firmware). A device that answered the hello but says nothing
//!    to a request made with the token has another token (miIO devices stay silent then): it
//!    is refused, asking for the right one.
//! 4. The model's MIoT spec (shipped, or from `specs_dir`); a model without one is refused,
//!    asking for a spec file. The device is described, read once (`get_properties`, at most
//!    [`MAX_PROPERTIES_PER_REQUEST`] at a time), online, and its state reported.
//! 5. Then it is read every `poll_secs` (miIO pushes nothing on the LAN), at least three times per
//!    `offline_after_secs`. Commands become `set_properties` (and `action` for triggers), then
//!    what they touched is read back and reported with the command's context as its cause.
//!
//! Every request is sent again when no answer comes ([`ATTEMPTS`] in all); a device silent for
//! `offline_after_secs` ends the session with `no answer from <address> for <n> s`. Nothing the
//! device sends can panic the session: a packet that cannot be read is counted
//! (`InputRejected`), logged once per session, and skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hearth_mdns::lan::Link;
use hearth_sdk::{AdapterEvent, Command, Context, DeviceDescriptor, Refresh, Value};
use serde_json::Value as Json;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::adapter::{MANUFACTURER, MiioProtocol, parse_name};
use crate::api::{self, Info, MAX_PROPERTIES_PER_REQUEST, Request, RpcError};
use crate::map::{Mapped, Target, map};
use crate::packet::{self, HEADER_LEN, Header, PORT, PacketError, Token};
use crate::spec::Catalogue;

/// How many times a request is sent before the device counts as silent.
pub const ATTEMPTS: u32 = 3;
/// The longest wait for one answer.
const MAX_WAIT: Duration = Duration::from_secs(2);
/// The shortest wait for one answer.
const MIN_WAIT: Duration = Duration::from_millis(200);

/// Why a request got no usable answer.
#[derive(Debug)]
enum CallError {
    /// Nothing came back after every attempt.
    NoAnswer,
    /// The device answered with an error.
    Device(RpcError),
    /// The answer had the wrong shape.
    Malformed(String),
    /// The hub stopped listening.
    Hub(String),
}

impl CallError {
    fn describe(&self) -> String {
        match self {
            CallError::NoAnswer => "no answer".into(),
            CallError::Device(e) => format!("error {} ({})", e.code, e.message),
            CallError::Malformed(e) => e.clone(),
            CallError::Hub(e) => e.clone(),
        }
    }
}

/// The device's clock, as the last packet from it set it.
#[derive(Debug, Clone, Copy)]
struct Clock {
    stamp: u32,
    at: Instant,
}

impl Clock {
    /// The stamp for a request now: the device's, moved on by the time since, and one more
    /// second (as python-miio sends it).
    fn now(&self) -> u32 {
        let secs = u32::try_from(self.at.elapsed().as_secs()).unwrap_or(u32::MAX);
        self.stamp.wrapping_add(secs).wrapping_add(1)
    }
}

struct Session {
    link: Link,
    socket: UdpSocket,
    to: SocketAddr,
    did: u32,
    did_text: String,
    token: Option<Token>,
    clock: Clock,
    next_id: u64,
    wait: Duration,
    buf: Vec<u8>,
    mapped: Mapped,
    /// Whether an unreadable packet was logged already (once per session).
    rejected_logged: bool,
    /// Properties whose read failed, logged once each.
    failing: BTreeSet<(u32, u32)>,
}

/// One session with the device `link` points at, until it fails (`Err`, a sentence for the log)
/// or the command channel closes (`Ok`).
pub async fn run(protocol: Arc<MiioProtocol>, link: Link) -> Result<(), String> {
    let port = if link.target.port == 0 { PORT } else { link.target.port };
    let to = SocketAddr::new(link.target.address, port);
    let did_text = link.target.key.clone();
    let did: u32 = did_text.parse().map_err(|_| format!("the inbox key {did_text} is not a miIO device id"))?;
    let bind: SocketAddr =
        if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(bind).await.map_err(|e| format!("cannot open a UDP socket for {to} ({e})"))?;
    socket.connect(to).await.map_err(|e| format!("cannot reach {to} over UDP ({e})"))?;
    let wait = (link.idle / 4).clamp(MIN_WAIT, MAX_WAIT);
    let mut s = Session {
        link,
        socket,
        to,
        did,
        did_text,
        token: None,
        clock: Clock { stamp: 0, at: Instant::now() },
        next_id: 1,
        wait,
        buf: vec![0; packet::MAX_PACKET],
        mapped: Mapped { features: Vec::new(), points: Vec::new(), skipped: Vec::new() },
        rejected_logged: false,
        failing: BTreeSet::new(),
    };
    s.hello().await?;
    let announced_model = parse_name(&s.link.target.name).map(|n| n.model);
    let what = match &announced_model {
        Some(m) => format!("Xiaomi {m} {}", s.did_text),
        None => format!("Xiaomi device {}", s.did_text),
    };
    let token = match s.link.secrets.get(&s.did_text) {
        None => {
            return Err(s.link.refused(format!(
                "{what} needs its token: enter it under the adapter's secrets, named {} (32 hex digits)",
                s.did_text
            )));
        }
        Some(secret) => Token::parse(secret.expose()).map_err(|e| {
            s.link.refused(format!(
                "the token entered for {what} cannot be used ({e}): enter it again under the adapter's secrets, named {}",
                s.did_text
            ))
        })?,
    };
    s.token = Some(token);
    let info = match s.call(api::info(0)).await {
        Ok(result) => Info::from_result(&result).unwrap_or_default(),
        Err(CallError::NoAnswer) => {
            return Err(s.link.refused(format!(
                "{what} at {to} answers its hello but not requests made with the token entered: enter its token under the adapter's secrets, named {} (resetting or pairing the device again changes it)",
                s.did_text
            )));
        }
        Err(CallError::Hub(e)) => return Err(e),
        // A device that keeps its info to itself: the model comes from its announcement.
        Err(e) => {
            tracing::debug!(device = %s.link.target.device, error = %e.describe(), "The device did not give its miIO.info.");
            Info::default()
        }
    };
    let Some(model) = info.model.clone().or(announced_model) else {
        return Err(format!("{what} at {to} says no model, and its announcement names none"));
    };
    let catalogue = protocol.catalogue().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "The MIoT specs directory cannot be read; only the shipped specs are used.");
        Catalogue::builtin()
    });
    let spec = match catalogue.get(&model) {
        None => {
            return Err(s
                .link
                .refused(format!("no MIoT spec for model {model}: add a spec file to specs_dir ({model}.json)")));
        }
        Some(Err(e)) => return Err(s.link.refused(format!("the MIoT spec for model {model} cannot be used: {e}"))),
        Some(Ok(spec)) => spec.clone(),
    };
    s.mapped = map(&spec);
    for skipped in &s.mapped.skipped {
        tracing::debug!(device = %s.link.target.device, %model, what = %skipped.what, why = %skipped.why, "A part of the MIoT spec is not a feature.");
    }
    let mut d = DeviceDescriptor::new(
        s.link.target.device.clone(),
        spec.description.as_deref().unwrap_or(&model),
        s.mapped.features.clone(),
    );
    d.manufacturer = Some(MANUFACTURER.to_owned());
    d.model = Some(model.clone());
    d.firmware = info.fw_ver.clone();
    s.link.events.device(d).await.map_err(|e| e.to_string())?;
    let first = match s.read(&s.mapped.readable()).await {
        Ok(values) => values,
        Err(CallError::NoAnswer) => return Err(s.link.no_answer()),
        Err(e) => return Err(format!("{what} at {to} could not be read ({})", e.describe())),
    };
    s.link.up().await.map_err(|e| e.to_string())?;
    tracing::info!(device = %s.link.target.device, %model, address = %to, "The Xiaomi device is connected.");
    s.report(first, None).await?;
    s.serve(protocol.poll).await
}

impl Session {
    /// Reads, polls and carries out commands until the device goes silent or the commands close.
    async fn serve(&mut self, poll: Duration) -> Result<(), String> {
        let every = poll.min(self.link.idle / 3).max(Duration::from_millis(100));
        let mut next = Instant::now() + every;
        loop {
            tokio::select! {
                command = self.link.commands.recv() => match command {
                    None => return Ok(()),
                    Some(c) => self.command(c).await?,
                },
                () = tokio::time::sleep_until(next) => {
                    match self.read(&self.mapped.readable()).await {
                        Ok(values) => self.report(values, None).await?,
                        Err(CallError::NoAnswer) => {}
                        Err(CallError::Hub(e)) => return Err(e),
                        Err(e) => tracing::warn!(device = %self.link.target.device, error = %e.describe(), "The Xiaomi device could not be read."),
                    }
                    if self.link.silence() >= self.link.idle {
                        return Err(self.link.no_answer());
                    }
                    next = Instant::now() + every;
                }
            }
        }
    }

    /// Sends the hello until the device answers with its id and clock.
    async fn hello(&mut self) -> Result<(), String> {
        for _ in 0..ATTEMPTS {
            self.send(&packet::HELLO).await;
            let deadline = Instant::now() + self.wait;
            while let Some(raw) = self.receive(deadline).await {
                let Ok(h) = Header::read(&raw) else { continue };
                if raw.len() != HEADER_LEN {
                    continue;
                }
                if h.device_id != self.did {
                    return Err(format!(
                        "the miIO device at {} is did {}, not the {} announced there",
                        self.to, h.device_id, self.did
                    ));
                }
                self.clock = Clock { stamp: h.stamp, at: Instant::now() };
                self.link.heard();
                return Ok(());
            }
        }
        Err(format!("no answer from {} to the miIO hello", self.to))
    }

    /// Sends a datagram; a failure (the port closed, the network down) is an unanswered attempt.
    async fn send(&self, raw: &[u8]) {
        if let Err(e) = self.socket.send(raw).await {
            tracing::debug!(address = %self.to, error = %e, "A miIO packet could not be sent.");
        }
    }

    /// The next datagram before `deadline`, or `None`.
    async fn receive(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        match tokio::time::timeout_at(deadline, self.socket.recv(&mut self.buf)).await {
            Err(_) => None,
            Ok(Ok(n)) => self.buf.get(..n).map(<[u8]>::to_vec),
            // The port is closed (an ICMP error came back): nothing will come this time.
            Ok(Err(e)) => {
                tracing::debug!(address = %self.to, error = %e, "No miIO answer could be received.");
                tokio::time::sleep_until(deadline).await;
                None
            }
        }
    }

    /// One request, sent up to [`ATTEMPTS`] times, and its answer's result.
    async fn call(&mut self, mut request: Request) -> Result<Json, CallError> {
        let token = self.token.clone().ok_or(CallError::Malformed("no token".into()))?;
        request.id = self.next_id;
        self.next_id += 1;
        let raw = packet::encode(&token, self.did, self.clock.now(), &request.to_bytes())
            .map_err(|e| CallError::Malformed(e.to_string()))?;
        tracing::debug!(device = %self.link.target.device, method = %request.method, id = request.id, "Sending a miIO request.");
        for _ in 0..ATTEMPTS {
            self.send(&raw).await;
            let deadline = Instant::now() + self.wait;
            while let Some(answer) = self.receive(deadline).await {
                if answer.len() == HEADER_LEN {
                    // A late answer to a hello.
                    continue;
                }
                let p = match packet::decode(&token, &answer) {
                    Ok(p) => p,
                    Err(e) => {
                        self.reject(reason_for(&e)).await.map_err(CallError::Hub)?;
                        continue;
                    }
                };
                let reply = match api::parse_reply(&p.payload) {
                    Ok(r) => r,
                    Err(e) => {
                        self.reject(e.to_string()).await.map_err(CallError::Hub)?;
                        continue;
                    }
                };
                self.link.heard();
                self.clock = Clock { stamp: p.header.stamp, at: Instant::now() };
                if reply.id != request.id {
                    // An answer to an earlier attempt of an earlier request.
                    continue;
                }
                return reply.outcome.map_err(CallError::Device);
            }
        }
        Err(CallError::NoAnswer)
    }

    /// Reads `points`, at most [`MAX_PROPERTIES_PER_REQUEST`] at a time: the values the device
    /// gave, in the model's units.
    async fn read(&mut self, points: &[(u32, u32)]) -> Result<BTreeMap<String, Value>, CallError> {
        let mut values = BTreeMap::new();
        for chunk in points.chunks(MAX_PROPERTIES_PER_REQUEST) {
            let result = self.call(api::get_properties(0, &self.did_text, chunk)).await?;
            let results = api::property_results(&result).map_err(|e| CallError::Malformed(e.to_string()))?;
            for r in results {
                let Some(point) = self.mapped.property(r.siid, r.piid).cloned() else { continue };
                if r.code != 0 {
                    if self.failing.insert((r.siid, r.piid)) {
                        tracing::warn!(device = %self.link.target.device, feature = %point.key, code = r.code, meaning = api::code_meaning(r.code), "The Xiaomi device did not give a property.");
                    }
                    continue;
                }
                let Some(wire) = r.value else { continue };
                match point.to_model(&wire) {
                    Ok(v) => {
                        values.insert(point.key.clone(), v);
                    }
                    Err(e) => {
                        self.reject(format!("siid {} piid {} ({}): {e}", r.siid, r.piid, point.key))
                            .await
                            .map_err(CallError::Hub)?;
                    }
                }
            }
        }
        Ok(values)
    }

    async fn report(&self, values: BTreeMap<String, Value>, cause: Option<Context>) -> Result<(), String> {
        if values.is_empty() {
            return Ok(());
        }
        self.link.events.state(&self.link.target.device, values, cause).await.map_err(|e| e.to_string())
    }

    /// Something the device sent that cannot be used: counted by the hub, logged once.
    async fn reject(&mut self, reason: String) -> Result<(), String> {
        let source = format!("udp://{}", self.to);
        if !self.rejected_logged {
            self.rejected_logged = true;
            tracing::warn!(device = %self.link.target.device, %source, %reason, "The Xiaomi device sent something that cannot be read; it was skipped (further ones are counted, not logged).");
        }
        self.link.events.send(AdapterEvent::InputRejected { source, reason }).await.map_err(|e| e.to_string())
    }

    /// Carries out a command: `set_properties`, actions, then reads back what it touched (all
    /// after an action or a full refresh) and reports it with the command's context.
    async fn command(&mut self, c: Command) -> Result<(), String> {
        let device = self.link.target.device.clone();
        if c.device != device {
            tracing::warn!(device = %c.device, connected = %device, "A command for another device reached this miIO session; it was dropped.");
            return Ok(());
        }
        let mut sets: Vec<(u32, u32, Json)> = Vec::new();
        let mut keys: BTreeMap<(u32, u32), String> = BTreeMap::new();
        let mut read_back: Vec<(u32, u32)> = Vec::new();
        let mut actions: Vec<(u32, u32, String)> = Vec::new();
        for (key, value) in &c.request.set {
            let Some(point) = self.mapped.point(key) else {
                tracing::warn!(%device, feature = %key, "A command names a feature this device does not have; it was skipped.");
                continue;
            };
            match (point.to_wire(value), point.target) {
                (Err(e), _) => tracing::warn!(%device, error = %e, "A command's value cannot be sent; it was skipped."),
                (Ok(None), _) => {}
                (Ok(Some(wire)), Target::Property { siid, piid }) => {
                    sets.push((siid, piid, wire));
                    keys.insert((siid, piid), key.clone());
                    if point.readable {
                        read_back.push((siid, piid));
                    }
                }
                (Ok(Some(_)), Target::Action { siid, aiid }) => actions.push((siid, aiid, key.clone())),
            }
        }
        let mut read_all = false;
        if !sets.is_empty() {
            match self.call(api::set_properties(0, &self.did_text, &sets)).await {
                Ok(result) => {
                    for r in api::property_results(&result).unwrap_or_default() {
                        if r.code != 0 && r.code != 1 {
                            let key = keys.get(&(r.siid, r.piid)).cloned().unwrap_or_default();
                            tracing::warn!(%device, feature = %key, code = r.code, meaning = api::code_meaning(r.code), "The Xiaomi device refused to set a feature.");
                        }
                    }
                }
                Err(CallError::Hub(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(%device, error = %e.describe(), "The Xiaomi device did not carry out a command.");
                    return Ok(());
                }
            }
        }
        for (siid, aiid, key) in actions {
            match self.call(api::action(0, &self.did_text, siid, aiid, Vec::new())).await {
                Ok(result) => {
                    let code = api::action_code(&result);
                    if code != 0 && code != 1 {
                        tracing::warn!(%device, feature = %key, code, meaning = api::code_meaning(code), "The Xiaomi device refused an action.");
                    }
                    read_all = true;
                }
                Err(CallError::Hub(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(%device, feature = %key, error = %e.describe(), "The Xiaomi device did not run an action.")
                }
            }
        }
        match &c.request.refresh {
            Some(Refresh::All(true)) => read_all = true,
            Some(Refresh::Features(list)) => {
                for key in list {
                    if let Some(p) = self.mapped.point(key)
                        && let Target::Property { siid, piid } = p.target
                        && p.readable
                    {
                        read_back.push((siid, piid));
                    }
                }
            }
            _ => {}
        }
        let to_read = if read_all { self.mapped.readable() } else { read_back };
        if to_read.is_empty() {
            return Ok(());
        }
        match self.read(&to_read).await {
            Ok(values) => self.report(values, Some(c.context)).await,
            Err(CallError::Hub(e)) => Err(e),
            Err(e) => {
                tracing::warn!(%device, error = %e.describe(), "The Xiaomi device could not be read after a command.");
                Ok(())
            }
        }
    }
}

/// Why a packet from the device cannot be read, for the hub's count.
fn reason_for(e: &PacketError) -> String {
    match e {
        PacketError::Checksum => {
            "a packet that does not check with the token entered (another token, or damaged)".into()
        }
        other => other.to_string(),
    }
}
