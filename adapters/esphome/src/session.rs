//! One connection to an ESPHome device over the native API (TCP, plaintext or Noise), from the
//! hello to the state stream, as a [`hearth_mdns::lan::Protocol`] session.
//!
//! The sequence: (Noise handshake, when the device's key is among the adapter's secrets or its
//! announcement says it encrypts) `HelloRequest`, then `ConnectRequest` with an empty password
//! and `DeviceInfoRequest`, `ListEntitiesRequest` until `ListEntitiesDoneResponse`; the device is
//! then described ([`DeviceMap`]), online, and `SubscribeStatesRequest` makes it send every state
//! and each change. Commands become command messages ([`DeviceMap::commands`]); the state the
//! device reports next for the entity a command touched carries the command's context (within
//! 5 s; an entity's first report after the subscription never does: it is what the entity was
//! before). A refresh subscribes again, and the states it brings carry its context.
//!
//! Keep-alive: the device's `PingRequest` is answered, and after a third of the idle time
//! without a word from the device it is pinged (again every third); after the whole idle time of
//! silence the session ends with the runner's "no answer" reason. The device's `GetTimeRequest`
//! is answered with the time and its `DisconnectRequest` with `DisconnectResponse`, which ends
//! the session (it is restarting); so does a closed connection. Either way the runner
//! reconnects.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use hearth_mdns::lan::Link;
use hearth_sdk::{AdapterEvent, Command, Context, DeviceId, Secrets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use crate::api::messages::{
    ConnectRequest, DeviceInfoRequest, DeviceInfoResponse, DisconnectRequest, DisconnectResponse, GetTimeResponse,
    ListEntitiesRequest, PingRequest, PingResponse, SubscribeStatesRequest,
};
use crate::api::{
    self, DeviceMap, Frame, FrameError, Message, NoiseClient, NoiseError, NoiseEvent, NoiseKey, PlaintextDecoder,
    command_key, native_id, state_key,
};

/// How the client names itself to the device (its logs show it).
const CLIENT_INFO: &str = "Hearth";

/// How long a command's context waits for the state report it causes.
const CAUSE_WINDOW: Duration = Duration::from_secs(5);

/// The TXT record a device sets when its API is encrypted.
pub const TXT_ENCRYPTION: &str = "api_encryption";

/// The device's encryption key among the adapter's secrets: the secret named by its MAC, in any
/// notation (`acbc32890ea9`, `AC:BC:32:89:0E:A9`). `mac_key` is the device's key (lowercase hex).
pub fn find_key(secrets: &Secrets, mac_key: &str) -> Option<hearth_sdk::Secret> {
    if let Some(s) = secrets.get(mac_key) {
        return Some(s);
    }
    secrets.all().into_iter().find(|(name, _)| native_id(name).is_ok_and(|n| n == mac_key)).map(|(_, s)| s)
}

/// How the bytes of one connection are framed.
enum Codec {
    Plain(PlaintextDecoder),
    Noise(Box<NoiseClient>),
}

/// What the device's bytes gave.
enum Incoming {
    /// The Noise handshake is done.
    Ready,
    /// A message frame.
    Frame(Frame),
}

/// Why the byte stream could not be read.
enum WireError {
    Frame(FrameError),
    Noise(NoiseError),
}

/// The connection: its two halves, its framing and a read buffer.
struct Wire {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    codec: Codec,
    buf: Vec<u8>,
}

impl Wire {
    /// The frames (and handshake steps) the first `n` bytes of the buffer complete.
    fn decode(&mut self, n: usize) -> Result<Vec<Incoming>, WireError> {
        let bytes = self.buf.get(..n).unwrap_or_default();
        match &mut self.codec {
            Codec::Plain(d) => {
                d.push(bytes);
                let mut out = Vec::new();
                while let Some(f) = d.next_frame().map_err(WireError::Frame)? {
                    out.push(Incoming::Frame(f));
                }
                Ok(out)
            }
            Codec::Noise(c) => Ok(c
                .receive(bytes)
                .map_err(WireError::Noise)?
                .into_iter()
                .filter_map(|e| match e {
                    NoiseEvent::ServerHello { .. } => None,
                    NoiseEvent::Ready => Some(Incoming::Ready),
                    NoiseEvent::Frame(f) => Some(Incoming::Frame(f)),
                })
                .collect()),
        }
    }
}

/// One session's state.
struct Session {
    link: Link,
    /// The node name, for messages.
    node: String,
    /// The name of the secret that holds the key, for messages.
    key_name: String,
    wire: Wire,
    last_heard: Instant,
    last_ping: Option<Instant>,
    /// Whether the device is described and streaming (malformed payloads are then skipped, not
    /// fatal).
    up: bool,
    map: Option<DeviceMap>,
    /// The context of the last command per entity key, waiting for the state it causes.
    causes: HashMap<u32, (Context, Instant)>,
    /// Entities whose first state since the subscription has not come yet: that report is
    /// what the entity was, not what a command sent meanwhile made of it.
    initial: HashSet<u32>,
    /// What was read but not handled yet.
    pending: VecDeque<Incoming>,
    rejected_logged: bool,
}

/// Runs one session with the device `link` points at.
pub async fn run(link: Link) -> Result<(), String> {
    let node = link.target.name.clone();
    let key_name = link.target.key.clone();
    let key = match find_key(&link.secrets, &link.target.key) {
        Some(secret) => Some(NoiseKey::from_base64(secret.expose()).map_err(|e| {
            link.refused(format!("the key entered for esphome node {node} (secret {key_name}) cannot be used: {e}"))
        })?),
        None if link.target.txt.contains_key(TXT_ENCRYPTION) => {
            return Err(link.refused(missing_key(&node, &key_name)));
        }
        None => None,
    };
    let stream = link.connect().await?;
    let (reader, writer) = stream.into_split();
    let mut first = Vec::new();
    let codec = match &key {
        Some(k) => {
            let (client, hello) = NoiseClient::start(k).map_err(|e| format!("esphome node {node}: {e}"))?;
            first = hello;
            Codec::Noise(Box::new(client))
        }
        None => Codec::Plain(PlaintextDecoder::new()),
    };
    let mut s = Session {
        link,
        node,
        key_name,
        wire: Wire { reader, writer, codec, buf: vec![0; 8192] },
        last_heard: Instant::now(),
        last_ping: None,
        up: false,
        map: None,
        causes: HashMap::new(),
        initial: HashSet::new(),
        pending: VecDeque::new(),
        rejected_logged: false,
    };
    if !first.is_empty() {
        s.write(&first).await?;
        while !matches!(s.next_incoming().await?, Incoming::Ready) {}
    }
    s.setup().await?;
    s.stream().await
}

fn missing_key(node: &str, key_name: &str) -> String {
    format!(
        "esphome node {node} encrypts its API: enter its key under the adapter's secrets, named {key_name} (the `api: encryption: key:` of its YAML)"
    )
}

impl Session {
    fn device(&self) -> &DeviceId {
        &self.link.target.device
    }

    fn heard(&mut self) {
        self.last_heard = Instant::now();
        self.link.heard();
    }

    /// Hello, login, device info and entity list; then the device is described and online, and
    /// its states are asked for.
    async fn setup(&mut self) -> Result<(), String> {
        self.send(&api::hello(CLIENT_INFO)).await?;
        let hello = self
            .expect_msg(|m| match m {
                Message::HelloResponse(h) => Some(h),
                _ => None,
            })
            .await?;
        if hello.api_version_major != api::API_VERSION.0 {
            return Err(format!(
                "esphome node {} speaks native API version {}.{}, this adapter speaks {}.x",
                self.node,
                hello.api_version_major,
                hello.api_version_minor,
                api::API_VERSION.0
            ));
        }
        // Firmware since 2026.1 no longer answers ConnectRequest (a client without a password is
        // logged in by its hello), so the device info is asked for at once and a
        // ConnectResponse is only checked if one comes.
        self.send(&ConnectRequest::default().into()).await?;
        self.send(&DeviceInfoRequest::default().into()).await?;
        let mut refused = false;
        let info: DeviceInfoResponse = self
            .expect_msg(|m| match m {
                Message::ConnectResponse(c) => {
                    refused |= c.invalid_password;
                    None
                }
                Message::DeviceInfoResponse(i) => Some(i),
                _ => None,
            })
            .await?;
        let node = self.node.clone();
        if refused {
            return Err(self.link.refused(format!(
                "esphome node {node} wants an API password, which Hearth does not send: remove `api: password:` from its YAML (use `api: encryption:` instead)"
            )));
        }
        let mac = native_id(&info.mac_address).map_err(|e| format!("esphome node {node}: {e}"))?;
        if mac != self.link.target.key {
            return Err(format!(
                "the device at {} is esphome node {} ({mac}), not {}: waiting for that device's next announcement",
                self.link.target.socket(),
                info.name,
                self.link.target.key
            ));
        }
        self.send(&ListEntitiesRequest::default().into()).await?;
        let mut entities = Vec::new();
        self.expect_msg(|m| match m {
            Message::ListEntitiesDoneResponse(_) => Some(()),
            other => {
                entities.push(other);
                None
            }
        })
        .await?;
        let map = DeviceMap::new(&info, &entities).map_err(|e| format!("esphome node {node}: {e}"))?;
        let mut descriptor = map.descriptor().clone();
        descriptor.id = self.device().clone();
        tracing::debug!(device = %self.device(), features = descriptor.features.len(), "Connected to the ESPHome device.");
        self.initial = map.entity_keys().into_iter().collect();
        self.map = Some(map);
        self.link.events.device(descriptor).await.map_err(|e| e.to_string())?;
        self.link.up().await.map_err(|e| e.to_string())?;
        self.up = true;
        self.send(&SubscribeStatesRequest::default().into()).await
    }

    /// The state stream: reports, commands and keep-alive, until the connection ends.
    async fn stream(&mut self) -> Result<(), String> {
        while let Some(i) = self.pending.pop_front() {
            self.handle(i).await?;
        }
        loop {
            let wake = self.next_wake();
            tokio::select! {
                r = self.wire.reader.read(&mut self.wire.buf) => {
                    let n = self.read_result(r)?;
                    self.heard();
                    let got = self.wire.decode(n).map_err(|e| self.wire_error(e))?;
                    for i in got {
                        self.handle(i).await?;
                    }
                }
                c = self.link.commands.recv() => match c {
                    Some(c) => self.command(c).await?,
                    None => {
                        // The adapter is stopping: say goodbye, as clients do.
                        let _ = self.send(&DisconnectRequest::default().into()).await;
                        return Ok(());
                    }
                },
                () = tokio::time::sleep_until(wake) => self.tick().await?,
            }
        }
    }

    /// When to look at the silence next: the next ping, or the end of the idle time.
    fn next_wake(&self) -> Instant {
        let third = self.link.idle / 3;
        let ping_at = match self.last_ping {
            Some(p) if p >= self.last_heard => p + third,
            _ => self.last_heard + third,
        };
        ping_at.min(self.last_heard + self.link.idle)
    }

    /// Gives up on a device silent for the idle time; pings one silent for a third of it.
    async fn tick(&mut self) -> Result<(), String> {
        let now = Instant::now();
        if now >= self.last_heard + self.link.idle {
            return Err(self.link.no_answer());
        }
        if now >= self.next_wake() {
            self.last_ping = Some(now);
            self.send(&PingRequest::default().into()).await?;
        }
        Ok(())
    }

    /// One thing read while streaming.
    async fn handle(&mut self, incoming: Incoming) -> Result<(), String> {
        let Incoming::Frame(frame) = incoming else { return Ok(()) };
        let Some(msg) = self.decode(frame).await? else { return Ok(()) };
        if self.answer(&msg).await? {
            return Ok(());
        }
        let Some(map) = &self.map else { return Ok(()) };
        let Some(values) = map.values(&msg) else {
            tracing::trace!(device = %self.device(), message = msg.name(), "A message was not used.");
            return Ok(());
        };
        let key = state_key(&msg);
        let first = key.is_some_and(|k| self.initial.remove(&k));
        if values.is_empty() {
            return Ok(());
        }
        let cause = match key {
            Some(k) if !first => {
                self.causes.remove(&k).and_then(|(context, at)| (at.elapsed() <= CAUSE_WINDOW).then_some(context))
            }
            _ => None,
        };
        let device = self.device().clone();
        self.link.events.state(&device, values, cause).await.map_err(|e| e.to_string())
    }

    /// Carries out a command: its messages go to the device; the context waits for the states.
    async fn command(&mut self, c: Command) -> Result<(), String> {
        let Some(map) = &self.map else { return Ok(()) };
        let messages = match map.commands(&c.request) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(device = %self.device(), error = %e, "A command could not be sent to the ESPHome device.");
                return Ok(());
            }
        };
        let now = Instant::now();
        self.causes.retain(|_, (_, at)| at.elapsed() <= CAUSE_WINDOW);
        let every = map.entity_keys();
        for m in &messages {
            if let Some(k) = command_key(m) {
                self.causes.insert(k, (c.context.clone(), now));
            }
            if matches!(m, Message::SubscribeStatesRequest(_)) {
                // A refresh: every state comes again.
                for k in &every {
                    self.causes.insert(*k, (c.context.clone(), now));
                }
            }
        }
        for m in &messages {
            self.send(m).await?;
        }
        Ok(())
    }

    /// Answers what the device asks of any client; `true` when the message was one of those.
    async fn answer(&mut self, msg: &Message) -> Result<bool, String> {
        match msg {
            Message::PingRequest(_) => self.send(&PingResponse::default().into()).await?,
            Message::PingResponse(_) => {}
            Message::GetTimeRequest(_) => {
                let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                let epoch_seconds = u32::try_from(now).unwrap_or(u32::MAX);
                self.send(&GetTimeResponse { epoch_seconds }.into()).await?;
            }
            Message::DisconnectRequest(_) => {
                let _ = self.send(&DisconnectResponse::default().into()).await;
                return Err(format!(
                    "esphome node {} ended the connection (it is restarting or shutting down)",
                    self.node
                ));
            }
            Message::DisconnectResponse(_) => {
                return Err(format!("esphome node {} ended the connection", self.node));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads a frame's message. A malformed payload is fatal while setting up; once streaming it
    /// is rejected (counted by the hub, logged once) and skipped.
    async fn decode(&mut self, frame: Frame) -> Result<Option<Message>, String> {
        match Message::decode(frame.msg_type, &frame.payload) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                let reason = format!("message type {} is malformed: {e}", frame.msg_type);
                if !self.up {
                    return Err(format!("esphome node {} sent a malformed answer ({reason})", self.node));
                }
                let source = format!("esphome node {} ({})", self.node, self.link.target.socket());
                if !self.rejected_logged {
                    self.rejected_logged = true;
                    tracing::warn!(device = %self.device(), %reason, "The ESPHome device sent a message that could not be read; it is skipped.");
                }
                self.link
                    .events
                    .send(AdapterEvent::InputRejected { source, reason })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(None)
            }
        }
    }

    /// The next thing the device sent, waiting at most the idle time since it was last heard.
    async fn next_incoming(&mut self) -> Result<Incoming, String> {
        loop {
            if let Some(i) = self.pending.pop_front() {
                return Ok(i);
            }
            let deadline = self.last_heard + self.link.idle;
            let r = match tokio::time::timeout_at(deadline, self.wire.reader.read(&mut self.wire.buf)).await {
                Ok(r) => r,
                Err(_) => return Err(self.link.no_answer()),
            };
            let n = self.read_result(r)?;
            self.heard();
            let got = self.wire.decode(n).map_err(|e| self.wire_error(e))?;
            self.pending.extend(got);
        }
    }

    /// Reads messages until `pick` takes one, answering the device's own requests meanwhile.
    async fn expect_msg<T>(&mut self, mut pick: impl FnMut(Message) -> Option<T>) -> Result<T, String> {
        loop {
            let Incoming::Frame(frame) = self.next_incoming().await? else { continue };
            let Some(msg) = self.decode(frame).await? else { continue };
            if self.answer(&msg).await? {
                continue;
            }
            if let Some(t) = pick(msg) {
                return Ok(t);
            }
        }
    }

    fn read_result(&self, r: std::io::Result<usize>) -> Result<usize, String> {
        match r {
            Ok(0) => Err(format!("esphome node {} closed the connection (it may be restarting)", self.node)),
            Ok(n) => Ok(n),
            Err(e) => {
                Err(format!("lost the connection to esphome node {} at {} ({e})", self.node, self.link.target.socket()))
            }
        }
    }

    /// The sentence for bytes that cannot be read, saying what to do when the user can.
    fn wire_error(&self, e: WireError) -> String {
        let node = &self.node;
        let key = &self.key_name;
        match e {
            WireError::Frame(FrameError::RequiresEncryption)
            | WireError::Noise(NoiseError::Frame(FrameError::RequiresEncryption)) => {
                self.link.refused(missing_key(node, key))
            }
            WireError::Frame(FrameError::RequiresPlaintext)
            | WireError::Noise(NoiseError::Frame(FrameError::RequiresPlaintext)) => self.link.refused(format!(
                "esphome node {node} does not encrypt its API, but a key is entered for it: remove the secret {key} of the adapter (or turn on `api: encryption:` on the device)"
            )),
            WireError::Noise(NoiseError::KeyMismatch) => self.link.refused(format!(
                "the key entered for esphome node {node} does not match the device's: enter the `api: encryption: key:` of its YAML under the adapter's secrets, named {key}"
            )),
            WireError::Noise(e) => format!("esphome node {node}: {e}"),
            WireError::Frame(e) => format!("esphome node {node} sent a malformed frame ({e})"),
        }
    }

    async fn send(&mut self, msg: &Message) -> Result<(), String> {
        let bytes = match &mut self.wire.codec {
            Codec::Plain(_) => api::plaintext_frame(msg),
            Codec::Noise(c) => c
                .encrypt(msg.msg_type(), &msg.encode())
                .map_err(|e| format!("cannot send {} to esphome node {}: {e}", msg.name(), self.node))?,
        };
        self.write(&bytes).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(self.link.idle, self.wire.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                Err(format!("lost the connection to esphome node {} at {} ({e})", self.node, self.link.target.socket()))
            }
            Err(_) => Err(self.link.no_answer()),
        }
    }
}
