//! Tasmota devices over their native MQTT protocol: every device with Tasmota's discovery on
//! (`SetOption19 0`, the default since Tasmota 9.2) becomes a device of the one model, with its
//! relays, lights, fan, buttons, switches and sensors, controllable both ways, with no
//! configuration per device.
//!
//! As with zigbee2mqtt, what is on the broker is the user's own choice: devices found there are
//! announced at once, without the discovery inbox.
//!
//! - Availability follows each device's last will (`tele/<topic>/LWT`, `onln`/`ofln`); a lost
//!   broker makes every device offline with the reason. A device that comes online is asked for
//!   its state (`STATE`) and sensors (`STATUS 10`) at once.
//! - Commands go to `cmnd/<topic>/<Command>`, several at once as one `Backlog`; each `RESULT`
//!   that answers them reports state with the command's context as its cause. A refresh asks
//!   for `STATE` and, for sensors, `STATUS 10`.
//! - A transition is ignored: Tasmota's `Fade` and `Speed` are settings of the device, not of
//!   one command, and the adapter does not change them behind the user's back.
//! - An empty retained discovery config (`SetOption19 1`) removes the device.
//!
//! # Layout
//! - [`api`]: serde types of the discovery messages, and how a device's topics are built from
//!   its full topic (`%prefix%/%topic%/`).
//! - [`map`]: discovery to features (relays, dimmers, color temperature and color lights, the
//!   energy meter, sensors by their driver's key names), and values both ways.
//! - [`devices`]: the adapter's picture of the devices, as pure logic from MQTT messages to model
//!   events and messages to publish, so it is tested without a broker.
//! - this file: the adapter task: configuration, the MQTT connection, subscriptions, commands.
//!
//! # Configuration (`[adapters.tasmota]`)
//! `{"enabled": false, "discovery_prefix": "tasmota/discovery", "mqtt": null}`: see [`Config`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod devices;
pub mod map;
#[cfg(test)]
mod testdata;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use hearth_mqtt::{Link, LinkEvent};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, BoxFuture,
    Discovers, MqttSettings,
};
use rumqttc::QoS;
use serde::Deserialize;

use crate::devices::{Devices, Out};

/// The adapter id, also the prefix of its device ids (`tasmota:84f3eb487d21`).
pub const ADAPTER_ID: &str = "tasmota";

/// Where Tasmota publishes its discovery messages unless told otherwise.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "tasmota/discovery";

/// How many requests to the MQTT connection may wait; the adapter never waits on it (it would
/// stop reading the connection that drains it), so a full queue drops a request with a warning.
const REQUEST_CAPACITY: usize = 1024;

/// Sources of refused input remembered for logging once each; past this, the memory restarts.
const WARNED_MAX: usize = 1000;

/// `[adapters.tasmota]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run the adapter. Default `false`.
    pub enabled: bool,
    /// The topic Tasmota publishes discovery under (`<prefix>/<MAC>/config`). Default
    /// `"tasmota/discovery"`, which is fixed in Tasmota's firmware.
    pub discovery_prefix: String,
    /// A broker other than the hub's (host, port, username, password, tls). Default: the hub's.
    pub mqtt: Option<MqttSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Config { enabled: false, discovery_prefix: DEFAULT_DISCOVERY_PREFIX.into(), mqtt: None }
    }
}

impl Config {
    /// Reads `[adapters.tasmota]`; an absent section (`null`) gives the defaults. Errors name
    /// the section and the key.
    pub fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        let mut c: Config = if json.is_null() {
            Config::default()
        } else {
            serde_json::from_value(json.clone()).map_err(|e| format!("[adapters.tasmota]: {e}"))?
        };
        let prefix = c.discovery_prefix.trim().trim_end_matches('/');
        if prefix.is_empty() || prefix.contains(['+', '#']) {
            return Err(format!(
                "[adapters.tasmota] discovery_prefix must be an MQTT topic without the wildcards + and #, \
                 like \"{DEFAULT_DISCOVERY_PREFIX}\", not {:?}",
                c.discovery_prefix
            ));
        }
        c.discovery_prefix = prefix.to_owned();
        Ok(c)
    }
}

/// The Tasmota adapter.
#[derive(Debug, Default)]
pub struct TasmotaAdapter;

impl TasmotaAdapter {
    /// A new adapter.
    pub fn new() -> TasmotaAdapter {
        TasmotaAdapter
    }
}

impl Adapter for TasmotaAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Tasmota",
            discovers: Discovers {
                mqtt: vec!["tasmota/discovery/#".into(), "tele/+/+".into(), "stat/+/+".into()],
                ..Discovers::default()
            },
            actions: &[],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

/// Logs refused input once per source and counts every occurrence.
struct Warned(HashSet<String>);

impl Warned {
    fn first(&mut self, source: &str) -> bool {
        if self.0.len() >= WARNED_MAX {
            self.0.clear();
        }
        self.0.insert(source.to_owned())
    }
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config).map_err(AdapterError)?;
    let events = ctx.events.clone();
    let Some(mqtt) = hearth_mqtt::broker_or_wait(
        &mut ctx,
        config.mqtt.clone(),
        "no MQTT broker: the built-in broker is off and [adapters.tasmota] mqtt is not set",
    )
    .await?
    else {
        return Ok(());
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let client_id = format!("hearth-tasmota-{}-{:x}", std::process::id(), nanos);
    let opts = hearth_mqtt::options(&client_id, &mqtt).map_err(AdapterError)?;
    let mut link = Link::start("tasmota", opts, REQUEST_CAPACITY);
    let mut devices = Devices::new(&config.discovery_prefix);
    let mut subscribed: BTreeSet<String> = BTreeSet::new();
    let mut warned = Warned(HashSet::new());
    let mut connected = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let broker = format!("{}:{}", mqtt.host, mqtt.port);
    tracing::info!(broker = %broker, prefix = %config.discovery_prefix, "Connecting to the broker for Tasmota devices.");

    // The link connects and retries by itself (`hearth_mqtt::Link`): commands and ticks are
    // served all the while, and never disturb a connection being made.
    loop {
        tokio::select! {
            _ = ctx.shutdown.wait() => break,
            event = link.next() => match event {
                None => break,
                Some(LinkEvent::Connected) => {
                    connected = true;
                    subscribed.clear();
                    sync_subscriptions(&link, &devices, &mut subscribed);
                    events.status(AdapterStatus::running()).await?;
                    tracing::info!(broker = %broker, "Connected; following Tasmota discovery.");
                }
                Some(LinkEvent::Message { topic, payload }) => {
                    for out in devices.message(&topic, &payload) {
                        handle(&mut link, &events, &mut warned, out).await?;
                    }
                    sync_subscriptions(&link, &devices, &mut subscribed);
                }
                Some(LinkEvent::Lost { reason, retry_in }) => {
                    if std::mem::take(&mut connected) || warned.first("broker") {
                        tracing::warn!("Lost the broker of the Tasmota devices: {reason}; retrying in {:.0} s.",
                            retry_in.as_secs_f64());
                    }
                    subscribed.clear();
                    for out in devices.all_offline(&reason) {
                        handle(&mut link, &events, &mut warned, out).await?;
                    }
                    events
                        .status(AdapterStatus::with(AdapterState::Degraded, reason).with_code("broker_unreachable"))
                        .await?;
                }
            },
            cmd = ctx.commands.recv() => {
                let Some(cmd) = cmd else { break };
                match devices.command(&cmd) {
                    Ok(outs) => {
                        for out in outs {
                            handle(&mut link, &events, &mut warned, out).await?;
                        }
                    }
                    Err(e) => tracing::warn!(device = %cmd.device, "A command could not be sent to the Tasmota device: {e}."),
                }
            }
            _ = tick.tick() => {
                if link.connected() {
                    // Subscriptions a full request queue refused before.
                    sync_subscriptions(&link, &devices, &mut subscribed);
                }
            }
        }
    }
    // Let the DISCONNECT go out, but never wait long: shutdown has a one-second budget.
    link.close(Duration::from_millis(200)).await;
    let _ = events.status(AdapterStatus::bare(AdapterState::Stopped)).await;
    Ok(())
}

/// Subscribes to what the devices need and drops what they no longer do, without waiting: a
/// request the queue refuses is tried again on the next message or tick.
fn sync_subscriptions(link: &Link, devices: &Devices, subscribed: &mut BTreeSet<String>) {
    let wanted = devices.filters();
    for filter in wanted.difference(&subscribed.clone()) {
        if link.subscribe(filter.clone(), QoS::AtLeastOnce) {
            subscribed.insert(filter.clone());
        } else {
            tracing::debug!(filter = %filter, "Subscription postponed.");
        }
    }
    for filter in subscribed.clone().difference(&wanted) {
        if link.unsubscribe(filter.clone()) {
            subscribed.remove(filter);
        }
    }
}

async fn handle(
    link: &mut Link,
    events: &hearth_sdk::EventSender,
    warned: &mut Warned,
    out: Out,
) -> Result<(), AdapterError> {
    match out {
        Out::Event(event) => {
            match &event {
                AdapterEvent::Device { device } => {
                    tracing::info!(device = %device.id, name = %device.name, "Tasmota device described.");
                }
                AdapterEvent::DeviceRemoved { device } => {
                    tracing::info!(device = %device, "Tasmota device removed (its discovery config was cleared).");
                }
                _ => {}
            }
            events.send(event).await?;
        }
        Out::Rejected { source, reason } => {
            if warned.first(&source) {
                tracing::warn!(topic = %source, "Ignored a Tasmota message: {reason}.");
            }
            events.send(AdapterEvent::InputRejected { source, reason }).await?;
        }
        Out::Unsupported { device, what } => {
            if warned.first(&format!("{device}: {what}")) {
                tracing::warn!(device = %device, "Part of a Tasmota device is left out: {what}.");
            }
        }
        Out::Publish { topic, payload } => {
            tracing::debug!(topic = %topic, payload = %payload, "Sending a Tasmota command.");
            if let Err(e) = link.publish(topic.clone(), QoS::AtLeastOnce, false, payload) {
                tracing::warn!(topic = %topic, "A Tasmota command could not be sent: {e}.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_section_gives_the_defaults_and_unknown_keys_are_refused() {
        assert_eq!(Config::from_json(&json!(null)).unwrap(), Config::default());
        assert_eq!(Config::from_json(&json!({})).unwrap(), Config::default());
        let c = Config::default();
        assert_eq!((c.enabled, c.discovery_prefix.as_str(), c.mqtt), (false, "tasmota/discovery", None));
        let err = Config::from_json(&json!({"enabled": true, "prefix": "x"})).unwrap_err();
        assert!(err.starts_with("[adapters.tasmota]: unknown field `prefix`"), "{err}");
        let err = Config::from_json(&json!({"enabled": "yes"})).unwrap_err();
        assert!(err.starts_with("[adapters.tasmota]: invalid type"), "{err}");
    }

    #[test]
    fn the_discovery_prefix_is_a_topic_without_wildcards() {
        let c = Config::from_json(&json!({"discovery_prefix": "home/tasmota/discovery/"})).unwrap();
        assert_eq!(c.discovery_prefix, "home/tasmota/discovery");
        for bad in ["", "/", "tasmota/+", "#"] {
            let err = Config::from_json(&json!({"discovery_prefix": bad})).unwrap_err();
            assert!(err.starts_with("[adapters.tasmota] discovery_prefix must be an MQTT topic"), "{err}");
        }
    }

    #[test]
    fn the_broker_password_stays_out_of_debug() {
        let c = Config::from_json(&json!({"mqtt": {"host": "broker", "port": 1883, "username": "hub",
                                                  "password": "s3cret-pass"}}))
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret-pass"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn the_manifest_names_the_adapter_and_its_topics() {
        let m = TasmotaAdapter::new().manifest();
        assert_eq!((m.id, m.name), ("tasmota", "Tasmota"));
        assert!(m.discovers.mqtt.contains(&"tasmota/discovery/#".to_owned()));
    }

    #[test]
    fn without_a_broker_the_adapter_says_so_and_waits_for_shutdown() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut h, run) = hearth_sdk::testing::Harness::new(Box::new(TasmotaAdapter::new()), json!({}), None);
            let run = tokio::spawn(run);
            let Some(AdapterEvent::Status { status }) = h.next().await else { panic!("no status") };
            assert_eq!(status.state, AdapterState::Unavailable);
            assert_eq!(status.code.as_deref(), Some("no_broker"));
            h.shutdown.send_replace(true);
            let stopped = tokio::time::timeout(Duration::from_secs(1), run).await;
            assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        });
    }

    #[test]
    fn an_unreadable_section_stops_the_adapter_with_the_reason() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (_h, run) =
            hearth_sdk::testing::Harness::new(Box::new(TasmotaAdapter::new()), json!({"discovery_prefix": 3}), None);
        let err = rt.block_on(run).unwrap_err();
        assert!(err.0.starts_with("[adapters.tasmota]: invalid type"), "{}", err.0);
    }
}
