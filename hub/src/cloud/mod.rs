//! Optional cloud sync: the hub's devices, state, events and availability on a cloud MQTT
//! broker, and commands back, without ever depending on it.
//!
//! - [`outbox`]: every message for the cloud is a row of the SQLite outbox, written in the same
//!   transaction as the change that caused it (the core's `WriteOp::Shared`), sent in order at
//!   QoS 1 and deleted only when the broker acknowledged it. A cap with a documented drop policy.
//! - [`share`]: `[cloud.share]`, what the cloud gets.
//! - [`generic`]: the generic MQTT profile's topics.
//! - [`alink`]: Alibaba Cloud IoT's Alink protocol; [`gateway`]: the Alink profile (the hub as
//!   a gateway: topology, logins, property posts, events, property sets as commands).
//! - this module: the link task. It connects (TLS with the broker's certificate and host name
//!   verified, credentials, a last will), sends the backlog at `drain_per_sec`, then a snapshot
//!   of every shared device (retained), then keeps up with the outbox; it takes commands when
//!   `accept_commands`; it reconnects with jittered exponential backoff (1 s doubling to 60 s);
//!   and it says how it is in [`LinkStatus`] (the API and `/metrics`).

pub mod alink;
pub mod gateway;
pub mod generic;
pub mod outbox;
pub mod share;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_sdk::{CommandRequest, DeviceId, Event, Origin, Shutdown, Timestamp};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, ConnectionError, Event as MqttEvent, MqttOptions};
use serde::Serialize;

use crate::config::CloudConfig;
use crate::core::CoreHandle;
use crate::store::{Readers, StoreWriter};

/// Messages sent and not yet acknowledged, at most.
const WINDOW: usize = 100;
/// The longest wait between two connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The secrets' slot of the cloud link's credentials (`hearth secret set cloud NAME`).
pub const SECRETS: &str = "cloud";

/// The names the cloud's credentials may be sealed under: `password` (the broker's), and for
/// Alink `alink.device_secret` (the gateway's) and `alink.<device id>.device_secret` (each
/// sub-device's).
pub fn secret_names(config: &CloudConfig) -> Vec<String> {
    let mut names = vec!["password".to_owned(), "alink.device_secret".to_owned()];
    if let Some(a) = &config.alink {
        names.extend(a.devices.keys().map(|id| format!("alink.{id}.device_secret")));
    }
    names
}

/// Completes the cloud's credentials from the sealed secrets where the configuration file leaves
/// them out, and says (without values) which are still written in the file in clear. Fails, naming
/// the command that fixes it, when an Alink secret is in neither place.
pub fn with_sealed_credentials(
    mut config: CloudConfig,
    sealed: &hearth_sdk::Secrets,
) -> Result<(CloudConfig, Vec<String>), String> {
    let mut in_clear = Vec::new();
    match &config.password {
        Some(p) if !p.is_empty() => in_clear.push("[cloud] password".to_owned()),
        _ => config.password = sealed.get("password").map(|s| s.expose().to_owned()),
    }
    if let Some(a) = config.alink.as_mut() {
        let mut fill = |value: &mut String, key: String, name: String| -> Result<(), String> {
            if !value.is_empty() {
                in_clear.push(key);
                return Ok(());
            }
            match sealed.get(&name) {
                Some(s) => {
                    *value = s.expose().to_owned();
                    Ok(())
                }
                None if config.profile == crate::config::CloudProfile::Alink => Err(format!(
                    "{key} is neither in the configuration file nor sealed in the hub: run `hearth secret set cloud {name}`"
                )),
                None => Ok(()),
            }
        };
        fill(&mut a.device_secret, "[cloud.alink] device_secret".into(), "alink.device_secret".into())?;
        for (id, d) in a.devices.iter_mut() {
            fill(
                &mut d.device_secret,
                format!("[cloud.alink.devices.\"{id}\"] device_secret"),
                format!("alink.{id}.device_secret"),
            )?;
        }
    }
    Ok((config, in_clear))
}

/// The link as the API and `/metrics` show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkStatus {
    /// Whether the link is configured on.
    pub enabled: bool,
    /// `mqtt` or `alink`.
    pub profile: &'static str,
    /// `host:port` of the broker.
    pub broker: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Since when it is connected or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Messages waiting in the outbox.
    pub backlog: u64,
    /// When the oldest waiting message was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest: Option<Timestamp>,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Messages the broker acknowledged.
    pub sent: u64,
    /// Messages dropped (outbox over its cap, or refused by the broker).
    pub dropped: u64,
    /// Connections made.
    pub connects: u64,
    /// Commands received from the cloud.
    pub commands: u64,
    /// Commands from the cloud that were refused.
    pub commands_refused: u64,
}

/// A cheap handle to the link's status.
#[derive(Debug, Clone, Default)]
pub struct CloudHandle {
    status: Arc<Mutex<LinkStatus>>,
    dropped_by_writer: Option<Arc<crate::store::writer::WriterStats>>,
}

impl CloudHandle {
    /// The status now.
    pub fn status(&self) -> LinkStatus {
        let mut s = self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(w) = &self.dropped_by_writer {
            s.dropped += w.outbox_dropped.load(std::sync::atomic::Ordering::Relaxed);
        }
        s
    }

    fn update(&self, f: impl FnOnce(&mut LinkStatus)) {
        f(&mut self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }
}

/// What the link starts with.
#[derive(Debug)]
pub struct CloudInit {
    /// `[cloud]`.
    pub config: CloudConfig,
    /// The core (snapshots, commands).
    pub core: CoreHandle,
    /// To read the outbox.
    pub readers: Readers,
    /// To delete what was acknowledged.
    pub writer: StoreWriter,
    /// The hub's shutdown.
    pub shutdown: Shutdown,
}

/// A handle for a hub without the link (its status says it is off).
pub fn disabled() -> CloudHandle {
    CloudHandle::default()
}

/// Starts the link.
pub fn spawn(init: CloudInit) -> (CloudHandle, tokio::task::JoinHandle<()>) {
    let (host, port, _) = init.config.endpoint().unwrap_or_default();
    let handle = CloudHandle {
        status: Arc::new(Mutex::new(LinkStatus {
            enabled: true,
            profile: match init.config.profile {
                crate::config::CloudProfile::Mqtt => "mqtt",
                crate::config::CloudProfile::Alink => "alink",
            },
            broker: format!("{host}:{port}"),
            reason: Some("connecting".into()),
            ..LinkStatus::default()
        })),
        dropped_by_writer: Some(init.writer.stats().clone()),
    };
    let gateway = match (init.config.profile, &init.config.alink) {
        (crate::config::CloudProfile::Alink, Some(a)) => Some(gateway::Gateway::new(a)),
        _ => None,
    };
    let link = Link {
        gateway,
        share: share::Share::new(&init.config.share),
        topics: generic::Topics::new(&init.config.topic_prefix, &init.config.hub_id),
        init,
        handle: handle.clone(),
    };
    (handle, tokio::spawn(link.run()))
}

struct Link {
    /// The Alink profile's state, when that is the profile.
    gateway: Option<gateway::Gateway>,
    init: CloudInit,
    share: share::Share,
    topics: generic::Topics,
    handle: CloudHandle,
}

/// How a session ended.
enum Ended {
    Shutdown,
    Lost(String),
}

impl Link {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut shutdown = self.init.shutdown.clone();
        loop {
            self.refresh_backlog().await;
            match self.session().await {
                Ended::Shutdown => break,
                Ended::Lost(reason) => {
                    // A link that was up starts its backoff again from the shortest wait: a blip
                    // after weeks connected is retried in about a second, not in a minute.
                    if self.handle.status().connected {
                        attempt = 0;
                    }
                    tracing::warn!(broker = %self.handle.status().broker, %reason, "The cloud link is down; the outbox keeps every message.");
                    self.handle.update(|s| {
                        if s.connected || s.reason.as_deref() != Some(reason.as_str()) {
                            s.since = Some(Timestamp::now());
                        }
                        s.connected = false;
                        s.reason = Some(reason.clone());
                        s.last_error = Some(reason.clone());
                    });
                }
            }
            attempt = attempt.saturating_add(1);
            // 1, 2, 4 ... 32, then 60 s: doubling up to BACKOFF_MAX.
            let base = Duration::from_secs(1 << attempt.min(7).saturating_sub(1)).min(BACKOFF_MAX);
            let wait = crate::jitter::jittered(base);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => break,
            }
        }
        self.refresh_backlog().await;
        tracing::info!("The cloud link has stopped.");
    }

    async fn refresh_backlog(&self) {
        let counts = self.init.readers.with(|c| Ok((outbox::len(c)?, outbox::oldest_at(c)?))).await;
        if let Ok((n, oldest)) = counts {
            self.handle.update(|s| {
                s.backlog = n;
                s.oldest = oldest.map(Timestamp);
            });
        }
    }

    fn options(&self) -> Result<MqttOptions, String> {
        let c = &self.init.config;
        let (host, port, tls) = c.endpoint()?;
        let mut o = MqttOptions::new(format!("hearth-{}", c.hub_id), host, port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(86_400));
        o.set_connection_timeout(15);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        o.set_network_options(network);
        o.set_last_will(LastWill::new(self.topics.status(), "offline", QoS::AtLeastOnce, true, None));
        if let Some(g) = &self.gateway {
            let p = g.connect(&c.hub_id);
            o.set_client_id(p.client_id.clone());
            o.set_credentials(p.username.clone(), p.password.clone());
        } else if let Some(u) = &c.username {
            o.set_credentials(u.clone(), c.password.clone().unwrap_or_default());
        }
        if tls {
            let files = c.tls.clone().unwrap_or_default();
            let t = hearth_sdk::MqttTls {
                ca_file: files.ca_file,
                client_cert_file: files.client_cert_file,
                client_key_file: files.client_key_file,
            };
            let config = hearth_mqtt::tls_config(&t).map_err(|e| format!("TLS to the cloud broker: {e}"))?;
            o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(config))));
        }
        Ok(o)
    }

    /// One connection, from connecting to losing it (or the hub stopping).
    async fn session(&mut self) -> Ended {
        let options = match self.options() {
            Ok(o) => o,
            Err(e) => return Ended::Lost(e),
        };
        let (client, mut events) = AsyncClient::new(options, 512);
        let mut shutdown = self.init.shutdown.clone();
        // Wait for the broker's answer.
        let connected = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match events.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(explain(&e, &self.init.config)),
                }
            }
        });
        let connected = tokio::select! {
            r = connected => r,
            _ = shutdown.wait() => return Ended::Shutdown,
        };
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Ended::Lost(e),
            Err(_) => return Ended::Lost("the broker did not answer within 20 s".into()),
        }
        tracing::info!(broker = %self.handle.status().broker, "The cloud link is up.");
        self.handle.update(|s| {
            s.connected = true;
            s.reason = None;
            s.since = Some(Timestamp::now());
            s.connects += 1;
        });
        let mut session = Session {
            client,
            pending: VecDeque::new(),
            inflight: HashMap::new(),
            remaining: HashMap::new(),
            acked: Vec::new(),
            cursor: 0,
            snapshot_sent: false,
            tokens: 0.0,
            refilled: Instant::now(),
        };
        if let Some(g) = &self.gateway {
            for topic in g.subscriptions() {
                let _ = session.client.try_subscribe(topic, QoS::AtLeastOnce);
            }
            for m in g.hello() {
                session.publish(m.topic, m.payload, m.retain, None);
            }
        } else {
            session.publish(self.topics.status(), b"online".to_vec(), true, None);
            if self.init.config.accept_commands {
                let _ = session.client.try_subscribe(self.topics.commands(), QoS::AtLeastOnce);
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backlog_every = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = events.poll() => match ev {
                    Ok(ev) => {
                        if let Some(lost) = self.on_event(&mut session, ev).await {
                            self.settle(&mut session).await;
                            return Ended::Lost(lost);
                        }
                    }
                    Err(e) => {
                        self.settle(&mut session).await;
                        return Ended::Lost(explain(&e, &self.init.config));
                    }
                },
                _ = tick.tick() => self.feed(&mut session).await,
                _ = backlog_every.tick() => self.refresh_backlog().await,
                _ = shutdown.wait() => {
                    // Say goodbye: the retained status, the acknowledgements in flight.
                    if self.gateway.is_none() {
                        session.publish(self.topics.status(), b"offline".to_vec(), true, None);
                    }
                    let until = Instant::now() + Duration::from_secs(2);
                    while Instant::now() < until && !(session.pending.is_empty() && session.inflight.is_empty()) {
                        match tokio::time::timeout(Duration::from_millis(200), events.poll()).await {
                            Ok(Ok(ev)) => { let _ = self.on_event(&mut session, ev).await; }
                            Ok(Err(_)) => break,
                            Err(_) => {}
                        }
                    }
                    let _ = session.client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
                    self.settle(&mut session).await;
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Deletes what the broker acknowledged.
    async fn settle(&self, session: &mut Session) {
        if session.acked.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut session.acked);
        let n = ids.len() as u64;
        match self.init.writer.exec(move |c| outbox::delete(c, &ids)).await {
            Ok(()) => self.handle.update(|s| s.sent += n),
            Err(e) => tracing::warn!(error = %e, "Cannot delete acknowledged cloud messages; they will be sent again."),
        }
    }

    async fn on_event(&mut self, session: &mut Session, ev: MqttEvent) -> Option<String> {
        match ev {
            MqttEvent::Outgoing(rumqttc::Outgoing::Publish(pkid)) => {
                if let Some(row) = session.pending.pop_front()
                    && let Some(id) = row
                {
                    session.inflight.insert(pkid, id);
                }
            }
            MqttEvent::Incoming(Packet::PubAck(ack)) => {
                if let Some(id) = session.inflight.remove(&ack.pkid) {
                    let ok = matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers);
                    if !ok {
                        let why = format!("the broker refused a message: {:?}", ack.reason);
                        tracing::warn!(%why, "A cloud message was refused by the broker and dropped.");
                        self.handle.update(|s| {
                            s.last_error = Some(why);
                            s.dropped += 1;
                        });
                    }
                    let left = session.remaining.entry(id).or_insert(1);
                    *left = left.saturating_sub(1);
                    if *left == 0 {
                        session.remaining.remove(&id);
                        session.acked.push(id);
                    }
                }
            }
            MqttEvent::Incoming(Packet::Publish(p)) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                if self.gateway.is_some() {
                    self.alink_incoming(session, &topic, &p.payload).await;
                } else {
                    self.command(session, &topic, &p.payload).await;
                }
            }
            MqttEvent::Incoming(Packet::Disconnect(d)) => {
                return Some(format!("the broker closed the connection: {:?}", d.reason_code));
            }
            _ => {}
        }
        None
    }

    /// Sends what is due: the backlog within the window and the rate, then (once caught up)
    /// the snapshot.
    async fn feed(&mut self, session: &mut Session) {
        self.settle(session).await;
        let now = Instant::now();
        let rate = f64::from(self.init.config.drain_per_sec);
        session.tokens =
            (session.tokens + now.duration_since(session.refilled).as_secs_f64() * rate).min(rate.max(1.0));
        session.refilled = now;
        let room = WINDOW.saturating_sub(session.pending.len() + session.inflight.len());
        let take = room.min(session.tokens as usize);
        if take == 0 {
            return;
        }
        let cursor = session.cursor;
        let rows = match self.init.readers.with(move |c| outbox::after(c, cursor, take)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the cloud outbox.");
                return;
            }
        };
        let fewer = rows.len() < take;
        for stored in rows {
            session.cursor = stored.id;
            let messages = match &mut self.gateway {
                Some(g) => g.messages(&stored.row),
                None => self.topics.messages(&stored.row),
            };
            if messages.is_empty() {
                // Nothing to send for it in this profile: done.
                session.acked.push(stored.id);
                session.tokens -= 1.0;
                continue;
            }
            session.remaining.insert(stored.id, messages.len());
            for m in messages {
                session.publish(m.topic, m.payload, m.retain, Some(stored.id));
            }
            session.tokens -= 1.0;
        }
        if fewer && !session.snapshot_sent {
            session.snapshot_sent = true;
            self.snapshot(session).await;
        }
    }

    /// Every shared device, retained, after the backlog: the cloud's picture is complete and
    /// current after every connection, even for devices that changed before the link existed.
    async fn snapshot(&mut self, session: &mut Session) {
        let Ok(snapshot) = self.init.core.snapshot().await else { return };
        if let Some(g) = &mut self.gateway {
            let shared: Vec<hearth_sdk::Device> =
                snapshot.devices.iter().filter(|d| self.share.device(d)).map(|d| self.share.view(d)).collect();
            for m in g.snapshot(&shared) {
                session.publish(m.topic, m.payload, m.retain, None);
            }
            return;
        }
        for d in snapshot.devices.iter().filter(|d| self.share.device(d)) {
            let doc = Event::DeviceUpdated { device: self.share.view(d) };
            let availability =
                Event::AvailabilityChanged { device: d.id.clone(), availability: d.availability.clone() };
            let topic = self.topics.device(d.id.as_str());
            session.publish(topic.clone(), serde_json::to_vec(&doc).unwrap_or_default(), true, None);
            session.publish(
                format!("{topic}/availability"),
                serde_json::to_vec(&availability).unwrap_or_default(),
                true,
                None,
            );
        }
    }

    /// A command from the cloud: checked like any other, with the cloud as its origin; the
    /// result goes back on `.../set/result`.
    async fn command(&self, session: &mut Session, topic: &str, payload: &[u8]) {
        let Some(id) = self.topics.command_device(topic) else { return };
        if !self.init.config.accept_commands {
            return;
        }
        self.handle.update(|s| s.commands += 1);
        let result = self.carry_out(&id, payload).await;
        let body = match &result {
            Ok(context) => serde_json::json!({"ok": true, "context": context}),
            Err((code, message)) => {
                tracing::info!(device = %id, %message, "Refused a command from the cloud.");
                self.handle.update(|s| s.commands_refused += 1);
                serde_json::json!({"ok": false, "error": {"code": code, "message": message}})
            }
        };
        session.publish(self.topics.result(&id), body.to_string().into_bytes(), false, None);
    }

    /// A message from Alink: a property set becomes a command; a failed reply shows in the
    /// status.
    async fn alink_incoming(&self, session: &mut Session, topic: &str, payload: &[u8]) {
        let Some(g) = &self.gateway else { return };
        match g.incoming(topic, payload) {
            gateway::Asked::Nothing => {}
            gateway::Asked::Failed(why) => {
                tracing::warn!(%why, "Alibaba Cloud IoT refused a message.");
                self.handle.update(|s| s.last_error = Some(why));
            }
            gateway::Asked::Refuse { id, reply_topic, why } => {
                tracing::info!(%why, "Refused a property set from Alibaba Cloud IoT.");
                self.handle.update(|s| {
                    s.commands += 1;
                    s.commands_refused += 1;
                });
                session.publish(reply_topic, alink::property_set_reply(&id, 460).into_bytes(), false, None);
            }
            gateway::Asked::Set { device, set, id, reply_topic } => {
                self.handle.update(|s| s.commands += 1);
                let code = if !self.init.config.accept_commands {
                    tracing::info!(%device, "A property set from Alibaba Cloud IoT was refused: [cloud] accept_commands is off.");
                    self.handle.update(|s| s.commands_refused += 1);
                    400
                } else {
                    let request = CommandRequest { set, ..CommandRequest::default() };
                    let body = serde_json::to_vec(&request).unwrap_or_default();
                    match self.carry_out(&device, &body).await {
                        Ok(_) => 200,
                        Err((_, message)) => {
                            tracing::info!(%device, %message, "Refused a property set from Alibaba Cloud IoT.");
                            self.handle.update(|s| s.commands_refused += 1);
                            400
                        }
                    }
                };
                session.publish(reply_topic, alink::property_set_reply(&id, code).into_bytes(), false, None);
            }
        }
    }

    async fn carry_out(&self, id: &str, payload: &[u8]) -> Result<hearth_sdk::Context, (&'static str, String)> {
        let device = DeviceId::parse(id).ok_or(("not_found", format!("`{id}` is not a device id")))?;
        let request: CommandRequest = serde_json::from_slice(payload)
            .map_err(|e| ("invalid_body", format!("the command is not valid JSON of a command: {e}")))?;
        let shared = match self.init.core.device(&device).await {
            Ok(Some(d)) if self.share.device(&d) => d,
            _ => return Err(("not_found", format!("no device `{id}` is shared with the cloud"))),
        };
        let keys = request.set.keys().chain(request.toggle.iter());
        if let Some(k) = keys.clone().find(|k| !self.share.feature(&shared, k)) {
            return Err(("not_shared", format!("feature `{k}` of `{id}` is not shared with the cloud")));
        }
        self.init.core.command(device, request, Origin::Cloud).await.map_err(|e| ("refused", e.to_string()))
    }
}

/// One connection's bookkeeping.
struct Session {
    client: AsyncClient,
    /// Publishes handed to the client, in order: the outbox row each belongs to, if any.
    pending: VecDeque<Option<i64>>,
    /// Packet id to outbox row, until acknowledged.
    inflight: HashMap<u16, i64>,
    /// Messages of a row still to be acknowledged.
    remaining: HashMap<i64, usize>,
    /// Rows acknowledged, to delete.
    acked: Vec<i64>,
    /// The last row handed out in this session.
    cursor: i64,
    snapshot_sent: bool,
    tokens: f64,
    refilled: Instant,
}

impl Session {
    fn publish(&mut self, topic: String, payload: Vec<u8>, retain: bool, row: Option<i64>) {
        if self.client.try_publish(topic, QoS::AtLeastOnce, retain, payload).is_ok() {
            self.pending.push_back(row);
        } else if let Some(id) = row {
            // The client's queue is full (it never is within the window): sent again next session.
            self.remaining.remove(&id);
        }
    }
}

/// A connection error in words a user can act on.
fn explain(e: &ConnectionError, c: &CloudConfig) -> String {
    let (host, port, _) = c.endpoint().unwrap_or_default();
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let code = format!("{code:?}");
            if code.contains("BadUserNamePassword") || code.contains("NotAuthorized") {
                format!("the broker refused the user name or password ({code})")
            } else {
                format!("the broker refused the connection ({code})")
            }
        }
        ConnectionError::Tls(_) | ConnectionError::Io(_) => {
            let text = e.to_string();
            let t = text.to_lowercase().replace(' ', "");
            if t.contains("unknownissuer") || t.contains("badsignature") {
                format!(
                    "the broker's certificate is not signed by a trusted authority (set [cloud.tls] ca_file): {text}"
                )
            } else if t.contains("notvalidforname") {
                format!("the broker's certificate is not valid for the host name `{host}`: {text}")
            } else if t.contains("certificate") || matches!(e, ConnectionError::Tls(_)) {
                format!("TLS with {host}:{port} failed: {text}")
            } else {
                format!("cannot reach {host}:{port}: {text}")
            }
        }
        other => format!("the connection to {host}:{port} failed: {other}"),
    }
}
