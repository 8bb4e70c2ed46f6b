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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use hearth_mqtt::{Link, LinkEvent};
use hearth_sdk::{
    ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState,
    AdapterStatus, BoxFuture, Command, Discovers, MqttSettings, Refresh,
};
use rumqttc::QoS;
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
    // The link connects and retries in a task of its own (`hearth_mqtt::Link`): commands,
    // actions and ticks are served all the while, never disturb a connection being made (a
    // command that dropped a half-made connection made the client start another at once: 78
    // connections in 20 s of outage), and this task never waits for room in the client's queue
    // (it stopped for good at 5,000 commands a second, the task that empties the queue being
    // this one). Messages wait in the link, in order, until zigbee2mqtt can take them: after the
    // broker was lost, until its `bridge/state` says online, which it publishes once it has
    // subscribed again (sent before, the broker drops them). At most `WAITING` wait.
    let mut link = Link::start("zigbee2mqtt", opts, 64).with_waiting_limit(WAITING);
    let mut bridge = Bridge::new(&base);
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut next_transaction = 0u64;
    let mut warned: HashSet<String> = HashSet::new();
    let mut connected = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut subscribed = false;
    tracing::info!(broker = %format!("{}:{}", mqtt.host, mqtt.port), base = %base, "Connecting to zigbee2mqtt's broker.");

    loop {
        link.hold(!bridge.online());
        if connected && !subscribed {
            // Asked without waiting: a full queue asks again next time round.
            subscribed = link.subscribe(format!("{base}/#"), QoS::AtLeastOnce);
        }
        let step = tokio::select! {
            _ = ctx.shutdown.wait() => Step::Stop,
            event = link.next() => match event {
                Some(event) => Step::Link(event),
                None => Step::Stop,
            },
            Some(cmd) = ctx.commands.recv() => Step::Command(cmd),
            Some(req) = ctx.actions.recv() => Step::Action(req),
            _ = tick.tick() => Step::Tick,
        };
        match step {
            Step::Stop => break,
            Step::Link(LinkEvent::Connected) => {
                connected = true;
                subscribed = link.subscribe(format!("{base}/#"), QoS::AtLeastOnce);
                events
                    .status(
                        AdapterStatus::with(AdapterState::Running, "connected; waiting for the zigbee2mqtt bridge")
                            .with_code("waiting_for_bridge"),
                    )
                    .await?;
                tracing::info!("Connected to zigbee2mqtt's broker.");
            }
            Step::Link(LinkEvent::Message { topic, payload }) => {
                let Some(rest) = topic.strip_prefix(&base).and_then(|r| r.strip_prefix('/')) else { continue };
                if let Some(path) = rest.strip_prefix("bridge/response/") {
                    answer(&mut pending, path, &payload);
                    continue;
                }
                let was_online = bridge.online();
                match bridge.message(rest, &payload) {
                    Ok(out) => {
                        for ev in out {
                            events.send(ev).await?;
                        }
                    }
                    Err(reason) => {
                        if warned.insert(topic.clone()) {
                            tracing::warn!(topic = %topic, "Ignored a zigbee2mqtt message: {reason}.");
                        }
                        events.send(AdapterEvent::InputRejected { source: topic.clone(), reason }).await?;
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
            Step::Link(LinkEvent::Lost { reason, retry_in }) => {
                if std::mem::take(&mut connected) || warned.insert("broker".into()) {
                    tracing::warn!("Lost zigbee2mqtt's broker: {reason}; retrying in {:.0} s.", retry_in.as_secs_f64());
                }
                subscribed = false;
                for ev in bridge.all_offline(&reason) {
                    events.send(ev).await?;
                }
                events
                    .status(AdapterStatus::with(AdapterState::Degraded, reason).with_code("broker_unreachable"))
                    .await?;
            }
            Step::Command(cmd) => {
                if let Err(e) = command(&mut link, &mut bridge, &base, cmd) {
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
                        if let Err(e) = link.publish(topic, QoS::AtLeastOnce, false, Json::Object(body).to_string()) {
                            let _ = reply.send(Err(ActionError::BadParams(e)));
                            continue;
                        }
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
    link.close(Duration::from_millis(300)).await;
    let _ = events.status(AdapterStatus::bare(AdapterState::Stopped)).await;
    Ok(())
}

/// What woke the adapter's loop.
enum Step {
    Stop,
    Link(LinkEvent),
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

/// Messages that wait for zigbee2mqtt at most (a broker gone for long); then the oldest go.
const WAITING: usize = 10_000;

/// Sends a validated command: `/set` with values in zigbee2mqtt's units, or `/get`.
fn command(link: &mut Link, bridge: &mut Bridge, base: &str, cmd: Command) -> Result<(), String> {
    if let Some((path, body)) = bridge.bridge_command(&cmd) {
        let topic = format!("{base}/bridge/request/{path}");
        link.publish(topic, QoS::AtLeastOnce, false, body.to_string())?;
        return Ok(());
    }
    let (name, mapping) =
        bridge.target(&cmd.device).ok_or_else(|| format!("no zigbee2mqtt device `{}`", cmd.device))?;
    if !cmd.request.set.is_empty() {
        let payload = exposes::encode_set(mapping, &cmd.request.set, cmd.request.transition)
            .map_err(|key| format!("feature `{key}` of {} cannot be converted", cmd.device))?;
        let topic = format!("{base}/{name}/set");
        link.publish(topic, QoS::AtLeastOnce, false, Json::Object(payload).to_string())?;
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
            link.publish(topic, QoS::AtLeastOnce, false, Json::Object(payload).to_string())?;
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
