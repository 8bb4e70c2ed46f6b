//! Hearth's BLE adapter: passive sensors heard in their advertisements (BTHome, Xiaomi MiBeacon,
//! ATC/PVVX, RuuviTag, Govee, Inkbird, SwitchBot, iBeacon and Eddystone) as devices of the one
//! model.
//!
//! Layout: `decode/` holds one pure decoder per format (bytes in, readings out); `tracker.rs`
//! turns decoded advertisements, the user's inbox decisions and the clock into adapter events;
//! `source.rs` feeds advertisements from the radio (`bluez.rs`, btleplug) or from a recording
//! (`record.rs`, JSON lines); this file runs them together.
//!
//! Configuration (`[adapters.ble]`, as JSON in [`AdapterContext::config`]):
//! `{"enabled": true, "adapter": "hci0", "replay": "advertisements.jsonl", "replay_speed": 1.0,
//! "offline_after_secs": 600, "keys": {"A4:C1:38:0A:1B:2C": "<32 hex digits>"}}`; every key is
//! optional. Without `replay` it scans with the system's Bluetooth adapter (the first, unless
//! `adapter` names one); without Bluetooth it reports itself unavailable, saying why.
#![forbid(unsafe_code)]

#[cfg(feature = "bluez")]
mod bluez;
pub mod control;
pub mod decode;
pub mod record;
pub mod source;
pub mod tracker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, BoxFuture,
    Discovers, SecretSpec, Timestamp,
};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::source::Heard;
use crate::tracker::{ADAPTER_ID, Keys, Timeouts, Tracker};

/// How often devices are checked for having gone quiet.
const TICK: Duration = Duration::from_secs(5);

/// The BLE adapter.
#[derive(Debug, Clone, Default)]
pub struct BleAdapter;

impl BleAdapter {
    /// The adapter.
    pub fn new() -> BleAdapter {
        BleAdapter
    }
}

/// Service UUIDs the decoders read (for the manifest and the docs).
const SERVICES: &[&str] = &[
    "0000fcd2-0000-1000-8000-00805f9b34fb", // BTHome v2
    "0000181c-0000-1000-8000-00805f9b34fb", // BTHome v1
    "0000181e-0000-1000-8000-00805f9b34fb", // BTHome v1, encrypted
    "0000fe95-0000-1000-8000-00805f9b34fb", // Xiaomi MiBeacon
    "0000181a-0000-1000-8000-00805f9b34fb", // ATC/PVVX
    "0000fd3d-0000-1000-8000-00805f9b34fb", // SwitchBot
    "0000feaa-0000-1000-8000-00805f9b34fb", // Eddystone
];

impl Adapter for BleAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Bluetooth",
            discovers: Discovers { ble: SERVICES.iter().map(|s| (*s).to_owned()).collect(), ..Discovers::default() },
            actions: &[],
            secrets: Some(SecretSpec {
                names: "a device's Bluetooth address, like A4:C1:38:0A:1B:2C, for its bind key; the address and .password for a SwitchBot's password",
                values: "a bind key: 32 hex digits (24 for old Xiaomi devices); a password as set in the SwitchBot app",
                check: check_secret,
            }),
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

/// The adapter's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run the adapter.
    pub enabled: bool,
    /// The Bluetooth adapter to scan with (`hci0`); the first when absent.
    pub adapter: Option<String>,
    /// A recording to replay instead of scanning.
    pub replay: Option<PathBuf>,
    /// How fast to replay: 1 as recorded, 0 as fast as possible.
    pub replay_speed: f64,
    /// Seconds without an advertisement before a device is offline (beacons: away); by kind
    /// when absent.
    pub offline_after_secs: Option<u64>,
    /// Bind keys of encrypted devices, by address (hex).
    pub keys: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: false,
            adapter: None,
            replay: None,
            replay_speed: 1.0,
            offline_after_secs: None,
            keys: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Reads the configuration; errors say which key is wrong and how.
    pub fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        let c: Config = if json.is_null() {
            Config::default()
        } else {
            serde_json::from_value(json.clone()).map_err(|e| format!("[adapters.ble]: {e}"))?
        };
        if !(c.replay_speed.is_finite() && c.replay_speed >= 0.0) {
            return Err(format!("[adapters.ble] replay_speed = {} must be 0 or more", c.replay_speed));
        }
        if c.offline_after_secs == Some(0) {
            return Err("[adapters.ble] offline_after_secs must be at least 1".into());
        }
        c.keys()?;
        Ok(c)
    }

    /// The bind keys as bytes, by address as written (`A4:C1:...`).
    pub fn keys(&self) -> Result<Keys, String> {
        let mut out = Keys::new();
        for (address, hex) in &self.keys {
            let a: decode::Address = address.parse().map_err(|e| format!("[adapters.ble.keys] {e}"))?;
            let bytes = key_bytes(hex).ok_or_else(|| {
                format!("[adapters.ble.keys] the key of {a} must be 32 hex digits (or 24 for old Xiaomi devices)")
            })?;
            out.insert(a.to_string(), bytes);
        }
        Ok(out)
    }
}

/// The secret name of a device's password (a SwitchBot Bot's), beside its bind key's.
const PASSWORD_SUFFIX: &str = ".password";

/// Checks a secret entered through the API: a bind key under the device's address, or a
/// password under `<address>.password`.
fn check_secret(name: &str, value: &str) -> Result<(), String> {
    if let Some(address) = name.strip_suffix(PASSWORD_SUFFIX) {
        let parsed: decode::Address = address.parse()?;
        if parsed.to_string() != address {
            return Err(format!("write the address in capitals, as {parsed}{PASSWORD_SUFFIX}"));
        }
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "the password of {parsed} is the one set in the SwitchBot app: letters, digits and signs"
            ));
        }
        return Ok(());
    }
    let address: decode::Address = name.parse()?;
    if address.to_string() != name {
        return Err(format!("write the address in capitals, as {address}"));
    }
    key_bytes(value)
        .map(|_| ())
        .ok_or_else(|| format!("the bind key of {address} must be 32 hex digits (or 24 for old Xiaomi devices)"))
}

fn key_bytes(hex: &str) -> Option<Vec<u8>> {
    record::from_hex(hex).ok().filter(|b| b.len() == 16 || b.len() == 12)
}

/// The configuration's keys, and the ones entered through the API over them.
fn all_keys(config: &Keys, secrets: &hearth_sdk::Secrets) -> Keys {
    let mut keys = config.clone();
    for (name, secret) in secrets.all() {
        if let Some(bytes) = key_bytes(secret.expose()) {
            keys.insert(name, bytes);
        }
    }
    keys
}

fn now_ms() -> i64 {
    Timestamp::now().as_millis()
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config).map_err(AdapterError)?;
    let configured = config.keys().map_err(AdapterError)?;
    let mut keys = all_keys(&configured, &ctx.secrets);
    let mut secrets_open = true;
    let events = ctx.events.clone();
    let (tx, mut heard) = mpsc::channel(256);
    let source = match &config.replay {
        Some(file) => source::replay(file.clone(), config.replay_speed, tx),
        None => radio(config.adapter.clone(), tx),
    };
    let mut tracker = Tracker::new(Timeouts { all: config.offline_after_secs });
    let controller = control::Controller::new(link(&config));
    let (done_tx, mut done) = mpsc::channel::<Done>(64);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard_open = true;
    let mut inbox_open = true;
    let result = loop {
        let batch: Vec<AdapterEvent> = tokio::select! {
            biased;
            () = ctx.shutdown.wait() => break Ok(()),
            h = heard.recv(), if heard_open => match h {
                Some(Heard::Advertisement(adv)) => {
                    let inbox = &ctx.inbox;
                    tracker.heard(&adv, now_ms(), &keys, &|k| inbox.decision(k))
                }
                Some(Heard::Running) => vec![AdapterEvent::Status { status: AdapterStatus::running() }],
                Some(Heard::Finished) => vec![AdapterEvent::Status {
                    status: AdapterStatus::with(AdapterState::Running, "the recording has been replayed to its end")
                        .with_code("replay_finished"),
                }],
                Some(Heard::Unavailable(why)) => {
                    tracing::warn!("BLE: {why}; the hub runs on without it.");
                    vec![AdapterEvent::Status {
                        status: AdapterStatus::with(AdapterState::Unavailable, why).with_code("no_bluetooth"),
                    }]
                }
                None => {
                    heard_open = false;
                    Vec::new()
                }
            },
            decided = ctx.inbox.changed(), if inbox_open => match decided {
                Some(_) => {
                    let inbox = &ctx.inbox;
                    tracker.decided(&|k| inbox.decision(k), now_ms())
                }
                None => {
                    inbox_open = false;
                    Vec::new()
                }
            },
            _ = ticker.tick() => tracker.tick(now_ms()),
            changed = ctx.secrets.changed(), if secrets_open => {
                match changed {
                    Some(_) => keys = all_keys(&configured, &ctx.secrets),
                    None => secrets_open = false,
                }
                Vec::new()
            }
            Some(command) = ctx.commands.recv() => {
                match tracker.controllable(&command.device) {
                    Some(c) => {
                        let settings = control::BotSettings {
                            mode: c.mode.as_deref().and_then(control::BotMode::parse),
                            password_protected: c.protected,
                            password: ctx.secrets.get(&format!("{}{PASSWORD_SUFFIX}", c.address)),
                        };
                        let target = control::Target::bot(c.address, settings);
                        let controller = controller.clone();
                        let tx = done_tx.clone();
                        tokio::spawn(async move {
                            let result = controller.execute(&target, &command.request).await;
                            let _ = tx.send(Done { device: command.device, context: command.context, result }).await;
                        });
                    }
                    None => tracing::warn!(device = %command.device, "BLE: a command for a device that takes none."),
                }
                Vec::new()
            }
            Some(d) = done.recv() => match d.result {
                Ok(values) if values.is_empty() => Vec::new(),
                Ok(values) => vec![AdapterEvent::State { device: d.device, values, cause: Some(d.context) }],
                Err(e) => {
                    tracing::warn!(device = %d.device, "BLE: the command failed: {e}");
                    if e.is_unreachable() {
                        vec![AdapterEvent::Availability {
                            device: d.device,
                            availability: hearth_sdk::Availability::offline(e.to_string(), Timestamp::now())
                                .with_code("unreachable"),
                        }]
                    } else {
                        Vec::new()
                    }
                }
            },
        };
        let mut gone = false;
        for e in batch {
            if events.send(e).await.is_err() {
                gone = true;
                break;
            }
        }
        if gone {
            break Ok(());
        }
    };
    source.abort();
    result
}

/// What each advertisement of a recording says, one line each (`hearth ble replay`):
/// `1.5s A4:C1:38:0A:1B:2C Xiaomi LYWSD03MMC: temperature 22.9 °C, humidity 51 %`, or why it
/// cannot be read, or that no decoder knows it.
pub fn describe_recording(text: &str, keys: &Keys) -> Result<Vec<String>, String> {
    let records = record::parse(text)?;
    let mut out = Vec::new();
    for r in records {
        let at = r.at.map(|a| format!("{a}s ")).unwrap_or_default();
        let address = r.adv.address.to_string();
        let key = keys.get(&address).map(Vec::as_slice);
        let said = match decode::decode(&r.adv, key) {
            Ok(Some(d)) => {
                let mut parts: Vec<String> = d
                    .readings
                    .iter()
                    .map(|x| {
                        let unit =
                            x.unit.or(x.capability.canonical_unit()).map(|u| format!(" {u}")).unwrap_or_default();
                        let value = match &x.value {
                            hearth_sdk::Value::Number(n) => n.to_string(),
                            other => serde_json::to_string(other).unwrap_or_default(),
                        };
                        format!("{} {value}{unit}", x.key)
                    })
                    .collect();
                parts.extend(d.events.iter().map(|e| format!("{} {}", e.key, e.event)));
                let what =
                    [d.brand, d.model.as_str()].iter().filter(|s| !s.is_empty()).copied().collect::<Vec<_>>().join(" ");
                let id = d.identity.map(|i| format!(" [{i}]")).unwrap_or_default();
                let packet = d.packet_id.map(|p| format!(" (packet {p})")).unwrap_or_default();
                format!(
                    "{what}{id}{packet}: {}",
                    if parts.is_empty() { "no readings".to_owned() } else { parts.join(", ") }
                )
            }
            Ok(None) => "not a format this hub reads".to_owned(),
            Err(e) => format!("cannot be read: {e}"),
        };
        out.push(format!("{at}{address} {said}"));
    }
    Ok(out)
}

/// A command's outcome, back in the adapter's loop.
struct Done {
    device: hearth_sdk::DeviceId,
    context: hearth_sdk::Context,
    result: Result<control::Values, control::ControlError>,
}

/// A link that cannot reach devices: a replay, or a hub built without Bluetooth.
#[derive(Debug)]
struct NoLink(&'static str);

impl control::GattLink for NoLink {
    fn connect(&self, _: decode::Address) -> control::LinkFuture<'_, ()> {
        let why = self.0;
        Box::pin(async move { Err(control::LinkError::Unavailable(why.to_owned())) })
    }
    fn subscribe(&self, a: decode::Address, _: u128) -> control::LinkFuture<'_, ()> {
        self.connect(a)
    }
    fn write<'a>(&'a self, a: decode::Address, _: u128, _: &'a [u8], _: bool) -> control::LinkFuture<'a, ()> {
        self.connect(a)
    }
    fn notification(&self, _: decode::Address, _: u128) -> control::LinkFuture<'_, Vec<u8>> {
        let why = self.0;
        Box::pin(async move { Err(control::LinkError::Unavailable(why.to_owned())) })
    }
    fn disconnect(&self, _: decode::Address) -> control::LinkFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}

fn link(config: &Config) -> Box<dyn control::GattLink> {
    if config.replay.is_some() {
        return Box::new(NoLink("replaying a recording: commands cannot reach devices"));
    }
    #[cfg(feature = "bluez")]
    return Box::new(control::BluezLink::new(config.adapter.clone()));
    #[cfg(not(feature = "bluez"))]
    Box::new(NoLink("this hub was built without Bluetooth"))
}

#[cfg(feature = "bluez")]
fn radio(adapter: Option<String>, tx: mpsc::Sender<Heard>) -> tokio::task::JoinHandle<()> {
    source::radio(adapter, tx)
}

#[cfg(not(feature = "bluez"))]
fn radio(_adapter: Option<String>, tx: mpsc::Sender<Heard>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = tx.send(Heard::Unavailable("this hub was built without Bluetooth scanning".into())).await;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_configuration_is_checked_with_clear_errors() {
        assert_eq!(Config::from_json(&serde_json::Value::Null).expect("defaults"), Config::default());
        let ok = Config::from_json(&json!({"enabled": true, "replay": "a.jsonl", "replay_speed": 0,
            "keys": {"a4:c1:38:0a:1b:2c": "231d39c1d7cc1ab1aee224cd096db932"}}))
        .expect("valid");
        assert_eq!(ok.keys().expect("keys").keys().collect::<Vec<_>>(), ["A4:C1:38:0A:1B:2C"]);
        let e = Config::from_json(&json!({"replay_sped": 2})).expect_err("typo");
        assert!(e.contains("unknown field `replay_sped`"), "{e}");
        let e = Config::from_json(&json!({"keys": {"A4:C1:38:0A:1B:2C": "abcd"}})).expect_err("short key");
        assert!(e.contains("32 hex digits"), "{e}");
        let e = Config::from_json(&json!({"offline_after_secs": 0})).expect_err("zero");
        assert!(e.contains("at least 1"), "{e}");
        let e = Config::from_json(&json!({"replay_speed": -1})).expect_err("negative");
        assert!(e.contains("0 or more"), "{e}");
    }
}
