//! Zigbee devices through zigbee2mqtt: every device in its database becomes a device of the one
//! model, controllable both ways, with no mapping written by the user.
//!
//! # Layout
//! - [`api`]: serde types of every zigbee2mqtt topic the adapter reads or writes.
//! - [`exposes`]: exposes to features, and values both ways.
//! - [`bridge`]: the adapter's picture of the bridge (devices, groups, availability) as pure
//!   logic from messages to model events, so it is tested without a broker.
//! - this file: the adapter task: the MQTT connection, commands, management actions.

pub mod api;
pub mod bridge;
pub mod exposes;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use hearth_sdk::{
    ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState,
    AdapterStatus, BoxFuture, Command, Discovers, MqttSettings, Refresh,
};
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use crate::bridge::Bridge;

/// The adapter id, also the prefix of its device ids.
pub const ADAPTER_ID: &str = "zigbee2mqtt";
/// How long zigbee2mqtt gets to answer a bridge request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest MQTT payload the adapter reads (`bridge/devices` of a big network is a few MB).
pub const MAX_PAYLOAD: usize = hearth_mqtt::MAX_PAYLOAD;

/// Management actions (`POST /api/v1/adapters/zigbee2mqtt/actions/<action>`).
pub const ACTIONS: &[&str] = &[
    "permit_join",
    "rename",
    "remove",
    "ota_check",
    "ota_update",
    "group_add",
    "group_remove",
    "group_members_add",
    "group_members_remove",
];

/// `[adapters.zigbee2mqtt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Run the adapter.
    pub enabled: bool,
    /// zigbee2mqtt's base topic.
    pub base_topic: String,
    /// A broker other than the hub's (host, port, username, password).
    pub mqtt: Option<MqttSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config { enabled: true, base_topic: "zigbee2mqtt".into(), mqtt: None }
    }
}

/// The zigbee2mqtt adapter.
#[derive(Debug, Default)]
pub struct Zigbee2mqttAdapter;

impl Zigbee2mqttAdapter {
    /// A new adapter.
    pub fn new() -> Zigbee2mqttAdapter {
        Zigbee2mqttAdapter
    }
}

impl Adapter for Zigbee2mqttAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Zigbee (zigbee2mqtt)",
            discovers: Discovers { mqtt: vec!["zigbee2mqtt/#".into()], ..Discovers::default() },
            actions: ACTIONS,
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

struct Pending {
    action: String,
    reply: tokio::sync::oneshot::Sender<Result<Json, ActionError>>,
    deadline: Instant,
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config: Config = match serde_json::from_value(ctx.config.clone()) {
        Ok(c) => c,
        Err(e) => return Err(AdapterError(format!("invalid [adapters.zigbee2mqtt] configuration: {e}"))),
    };
    let events = ctx.events.clone();
    let Some(mqtt) = hearth_mqtt::broker_or_wait(
        &mut ctx,
        config.mqtt.clone(),
        "no MQTT broker: the built-in broker is off and no external broker is configured",
    )
    .await?
    else {
        return Ok(());
    };
    let base = config.base_topic.trim_end_matches('/').to_owned();
    let opts =
        hearth_mqtt::options(&format!("hearth-zigbee2mqtt-{}", std::process::id()), &mqtt).map_err(AdapterError)?;
    let (client, mut eventloop) = hearth_mqtt::client(opts, 64);
    let mut bridge = Bridge::new(&base);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut next_transaction = 0u64;
    let mut warned: HashSet<String> = HashSet::new();
    let mut connected = false;
    let mut backoff = Duration::from_millis(500);
    // When the next connection attempt is due, after one failed.
    let mut retry_at: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outbox = Outbox::default();
    let mut subscribed = false;
    tracing::info!(broker = %format!("{}:{}", mqtt.host, mqtt.port), base = %base, "Connecting to zigbee2mqtt's broker.");

    loop {
        // Whatever waited goes first (the poll below made room). Only while zigbee2mqtt is there
        // to take it: after the broker was lost, commands wait for its `bridge/state` online,
        // which it publishes once it has subscribed again; sent before, the broker drops them.
        outbox.open = connected && bridge.online();
        outbox.flush(&client);
        if connected && !subscribed {
            subscribed = client.try_subscribe(format!("{base}/#"), QoS::AtLeastOnce).is_ok();
        }
        // While a connection is being made, only shutdown interrupts it: a command or a tick that
        // dropped the half-made connection made the client start another at once (the broker's
        // address counted 78 connections in 20 s of outage with commands arriving). While
        // waiting to retry, commands, actions and ticks are served (they used to queue up behind
        // the wait and find the adapter busy).
        let step = if !connected && retry_at.is_none() {
            tokio::select! {
                _ = ctx.shutdown.wait() => Step::Stop,
                polled = eventloop.poll() => Step::Polled(polled),
            }
        } else {
            tokio::select! {
                _ = ctx.shutdown.wait() => Step::Stop,
                polled = eventloop.poll(), if connected => Step::Polled(polled),
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => Step::Retry,
                Some(cmd) = ctx.commands.recv() => Step::Command(cmd),
                Some(req) = ctx.actions.recv() => Step::Action(req),
                _ = tick.tick() => Step::Tick,
            }
        };
        match step {
            Step::Stop => break,
            Step::Retry => retry_at = None,
            Step::Polled(polled) => match polled {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    backoff = Duration::from_millis(500);
                    // Queued, never awaited: see `Outbox`. A full queue retries next time round.
                    subscribed = client.try_subscribe(format!("{base}/#"), QoS::AtLeastOnce).is_ok();
                    events
                        .status(
                            AdapterStatus::with(AdapterState::Running, "connected; waiting for the zigbee2mqtt bridge")
                                .with_code("waiting_for_bridge"),
                        )
                        .await?;
                    tracing::info!("Connected to zigbee2mqtt's broker.");
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let Some(rest) = p.topic.strip_prefix(&base).and_then(|r| r.strip_prefix('/')) else { continue };
                    if let Some(path) = rest.strip_prefix("bridge/response/") {
                        answer(&mut pending, path, &p.payload);
                        continue;
                    }
                    let was_online = bridge.online();
                    match bridge.message(rest, &p.payload) {
                        Ok(out) => {
                            for ev in out {
                                events.send(ev).await?;
                            }
                        }
                        Err(reason) => {
                            if warned.insert(p.topic.clone()) {
                                tracing::warn!(topic = %p.topic, "Ignored a zigbee2mqtt message: {reason}.");
                            }
                            events.send(AdapterEvent::InputRejected { source: p.topic.clone(), reason }).await?;
                        }
                    }
                    if was_online != bridge.online() {
                        let status = if bridge.online() {
                            AdapterStatus::running()
                        } else {
                            AdapterStatus::with(AdapterState::Degraded, "zigbee2mqtt bridge offline")
                                .with_code("bridge_offline")
                        };
                        events.status(status).await?;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let reason = format!("MQTT broker {}:{} unreachable ({e})", mqtt.host, mqtt.port);
                    if connected || warned.insert("broker".into()) {
                        tracing::warn!("Lost zigbee2mqtt's broker: {reason}; retrying.");
                    }
                    connected = false;
                    subscribed = false;
                    for ev in bridge.all_offline(&reason) {
                        events.send(ev).await?;
                    }
                    events
                        .status(AdapterStatus::with(AdapterState::Degraded, reason).with_code("broker_unreachable"))
                        .await?;
                    // Up to half the backoff again, so hubs that lost the same broker do not
                    // all come back in the same instant.
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_nanos();
                    let jitter = backoff.mul_f64(f64::from(nanos % 1000) / 2000.0);
                    retry_at = Some(Instant::now() + backoff + jitter);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
            Step::Command(cmd) => {
                if let Err(e) = command(&mut outbox, &client, &mut bridge, &base, cmd) {
                    tracing::warn!("A command could not be sent to zigbee2mqtt: {e}.");
                }
            }
            Step::Action(req) => {
                let ActionRequest { action, params, reply, .. } = req;
                match action_request(&bridge, &action, &params) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(_) if !connected => {
                        let _ = reply
                            .send(Err(ActionError::Unavailable("not connected to zigbee2mqtt's MQTT broker".into())));
                    }
                    Ok(_) if !bridge.online() => {
                        let _ = reply.send(Err(ActionError::Unavailable("the zigbee2mqtt bridge is offline".into())));
                    }
                    Ok((path, mut body)) => {
                        next_transaction += 1;
                        let transaction = format!("hearth-{next_transaction}");
                        body.insert("transaction".into(), json!(transaction));
                        let topic = format!("{base}/bridge/request/{path}");
                        outbox.publish(&client, topic, Json::Object(body).to_string());
                        pending
                            .insert(transaction, Pending { action, reply, deadline: Instant::now() + REQUEST_TIMEOUT });
                    }
                }
            }
            Step::Tick => {
                let now = Instant::now();
                let expired: Vec<String> =
                    pending.iter().filter(|(_, p)| p.deadline <= now).map(|(k, _)| k.clone()).collect();
                for key in expired {
                    if let Some(p) = pending.remove(&key) {
                        let _ = p.reply.send(Err(ActionError::Timeout(format!(
                            "zigbee2mqtt did not answer `{}` within {} seconds",
                            p.action,
                            REQUEST_TIMEOUT.as_secs()
                        ))));
                    }
                }
                for ev in bridge.tick(hearth_sdk::Timestamp::now()) {
                    events.send(ev).await?;
                }
            }
        }
    }
    let _ = client.disconnect().await;
    let _ = events.status(AdapterStatus::bare(AdapterState::Stopped)).await;
    Ok(())
}

/// What woke the adapter's loop.
enum Step {
    Stop,
    /// The backoff after a failed connection is over: connect again.
    Retry,
    Polled(Result<MqttEvent, rumqttc::ConnectionError>),
    Command(Command),
    Action(ActionRequest),
    Tick,
}

/// Matches a bridge response to its request and answers the caller.
fn answer(pending: &mut HashMap<String, Pending>, path: &str, payload: &[u8]) {
    let Ok(resp) = serde_json::from_slice::<api::BridgeResponse>(payload) else {
        tracing::warn!(path, "A zigbee2mqtt bridge response was not valid JSON.");
        return;
    };
    let Some(transaction) = resp.transaction.as_ref().and_then(Json::as_str) else { return };
    let Some(p) = pending.remove(transaction) else { return };
    let result = match resp.status {
        api::ResponseStatus::Ok => Ok(resp.data),
        api::ResponseStatus::Error => Err(ActionError::Failed(
            resp.error.unwrap_or_else(|| format!("zigbee2mqtt refused `{}` without saying why", p.action)),
        )),
    };
    let _ = p.reply.send(result);
}

fn text<'a>(params: &'a Json, key: &str) -> Result<&'a str, ActionError> {
    params
        .get(key)
        .and_then(Json::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ActionError::BadParams(format!("`{key}` is required and must be text")))
}

/// An action to a bridge request: its path under `bridge/request/` and body.
fn action_request(
    bridge: &Bridge,
    action: &str,
    params: &Json,
) -> Result<(&'static str, serde_json::Map<String, Json>), ActionError> {
    let device = |key: &str| -> Result<String, ActionError> {
        let id = text(params, key)?;
        bridge.friendly_name(id).ok_or_else(|| ActionError::NotFound(format!("no zigbee2mqtt device `{id}`")))
    };
    let group = |key: &str| -> Result<Json, ActionError> {
        let id = text(params, key)?;
        Ok(bridge.group_ref(id).unwrap_or_else(|| json!(id)))
    };
    let mut body = serde_json::Map::new();
    let path = match action {
        "permit_join" => {
            let time = params.get("time").and_then(Json::as_u64).unwrap_or(254);
            if time > 254 {
                return Err(ActionError::BadParams(format!("`time` must be 0 to 254 seconds, not {time}")));
            }
            body.insert("time".into(), json!(time));
            if params.get("device").is_some() {
                body.insert("device".into(), json!(device("device")?));
            }
            "permit_join"
        }
        "rename" => {
            body.insert("from".into(), json!(device("device")?));
            body.insert("to".into(), json!(text(params, "to")?));
            body.insert("homeassistant_rename".into(), json!(false));
            "device/rename"
        }
        "remove" => {
            body.insert("id".into(), json!(device("device")?));
            body.insert("force".into(), json!(params.get("force").and_then(Json::as_bool).unwrap_or(false)));
            body.insert("block".into(), json!(params.get("block").and_then(Json::as_bool).unwrap_or(false)));
            "device/remove"
        }
        "ota_check" => {
            body.insert("id".into(), json!(device("device")?));
            "device/ota_update/check"
        }
        "ota_update" => {
            body.insert("id".into(), json!(device("device")?));
            "device/ota_update/update"
        }
        "group_add" => {
            body.insert("friendly_name".into(), json!(text(params, "name")?));
            if let Some(id) = params.get("id").and_then(Json::as_u64) {
                body.insert("id".into(), json!(id));
            }
            "group/add"
        }
        "group_remove" => {
            body.insert("id".into(), group("group")?);
            "group/remove"
        }
        "group_members_add" | "group_members_remove" => {
            body.insert("group".into(), group("group")?);
            body.insert("device".into(), json!(device("device")?));
            if let Some(ep) = params.get("endpoint") {
                body.insert("endpoint".into(), ep.clone());
            }
            if action == "group_members_add" { "group/members/add" } else { "group/members/remove" }
        }
        other => return Err(ActionError::NotFound(format!("no action `{other}`"))),
    };
    Ok((path, body))
}

/// Publishes waiting for room in the MQTT client's request queue.
///
/// The adapter's one task both drives the client's event loop and publishes. Awaiting a publish
/// while the queue is full waits for the event loop, which that same task no longer polls: the
/// adapter stopped for good (seen at 5,000 commands a second in hearth-bench). So publishes are
/// only ever tried; what finds the queue full waits here, in order, and goes out after the next
/// poll. While zigbee2mqtt cannot take them (the broker lost, the bridge offline) they wait too,
/// and go out in order once its bridge is online again. At most [`Outbox::MAX`] wait (a broker
/// gone for long): then the oldest is dropped.
#[derive(Debug, Default)]
struct Outbox {
    waiting: VecDeque<(String, bytes::Bytes)>,
    dropped: u64,
    /// Whether zigbee2mqtt can take messages now (connected, bridge online); when not, they wait.
    open: bool,
}

impl Outbox {
    const MAX: usize = 10_000;

    fn publish(&mut self, client: &AsyncClient, topic: String, payload: String) {
        self.waiting.push_back((topic, bytes::Bytes::from(payload)));
        self.flush(client);
    }

    fn flush(&mut self, client: &AsyncClient) {
        while self.open
            && let Some((topic, payload)) = self.waiting.pop_front()
        {
            match client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                Ok(()) => {}
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p))) => {
                    self.waiting.push_front((p.topic, p.payload));
                    break;
                }
                // The event loop is gone: the adapter is stopping.
                Err(_) => break,
            }
        }
        while self.waiting.len() > Self::MAX {
            self.waiting.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "zigbee2mqtt's broker takes no messages; the oldest commands were dropped."
                );
            }
        }
    }
}

/// Sends a validated command: `/set` with values in zigbee2mqtt's units, or `/get`.
fn command(
    outbox: &mut Outbox,
    client: &AsyncClient,
    bridge: &mut Bridge,
    base: &str,
    cmd: Command,
) -> Result<(), String> {
    if let Some((path, body)) = bridge.bridge_command(&cmd) {
        let topic = format!("{base}/bridge/request/{path}");
        outbox.publish(client, topic, body.to_string());
        return Ok(());
    }
    let (name, mapping) =
        bridge.target(&cmd.device).ok_or_else(|| format!("no zigbee2mqtt device `{}`", cmd.device))?;
    if !cmd.request.set.is_empty() {
        let payload = exposes::encode_set(mapping, &cmd.request.set, cmd.request.transition)
            .map_err(|key| format!("feature `{key}` of {} cannot be converted", cmd.device))?;
        let topic = format!("{base}/{name}/set");
        outbox.publish(client, topic, Json::Object(payload).to_string());
    }
    if let Some(refresh) = &cmd.request.refresh {
        let keys: Vec<String> = match refresh {
            Refresh::All(false) => Vec::new(),
            Refresh::All(true) => mapping.features.iter().filter(|f| f.access.get).map(|f| f.key.clone()).collect(),
            Refresh::Features(keys) => keys.clone(),
        };
        if !keys.is_empty() {
            let payload: serde_json::Map<String, Json> = keys.into_iter().map(|k| (k, json!(""))).collect();
            let topic = format!("{base}/{name}/get");
            outbox.publish(client, topic, Json::Object(payload).to_string());
        }
    }
    bridge.remember_cause(&cmd.device, cmd.context.clone());
    Ok(())
}

/// The values of a state report, for tests and benchmarks of decoding.
pub fn decode_state(mapping: &exposes::Mapping, payload: &[u8]) -> Option<BTreeMap<String, hearth_sdk::Value>> {
    let obj: serde_json::Map<String, Json> = serde_json::from_slice(payload).ok()?;
    Some(exposes::decode(mapping, &obj).0)
}
