//! A virtual power strip: the example plugin of `adapters/sdk/PLUGINS.md` §11, written in Rust.
//!
//! The plugin is an ordinary [`hearth_sdk::Adapter`]; [`hearth_plugin::run`] speaks the protocol
//! on stdin and stdout for it. One device, `powerstrip:vps-0001`, has `outlets` switchable
//! outlets (`state_l1` … `state_lN`) and reports `power`: `load_watts` for every outlet that is
//! on. Its `identify` action "blinks" an outlet.
//!
//! A configuration change restarts the adapter (see `hearth_plugin::runner`), so the strip's
//! outlets live behind an `Arc`, shared by every instance: like real hardware, they keep their
//! state while the plugin restarts.
//!
//! Build: `cargo build --release -p hearth-plugin --example powerstrip`, then see `README.md`.
//! Like every plugin, it never prints to stdout: stdout carries only protocol lines.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use hearth_plugin::{Log, LogLevel};
use hearth_sdk::{
    Access, ActionError, ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest,
    AdapterState, AdapterStatus, Availability, AvailabilityState, BoxFuture, Capability, Command, DeviceDescriptor,
    DeviceId, Discovers, EventSender, Feature, PowerSource, Refresh, Shutdown, Value, ValueType,
};
use serde::Deserialize;
use serde_json::json;

/// The plugin's version, as in `plugin.toml`.
const VERSION: &str = "1.0.0";
/// The adapter id, as in `plugin.toml`.
const ID: &str = "powerstrip";
/// The strip's own id.
const NATIVE_ID: &str = "vps-0001";
/// The most outlets a strip has.
const MAX_OUTLETS: usize = 8;
/// The most watts an outlet draws.
const MAX_LOAD_WATTS: f64 = 3000.0;
/// How long `identify` blinks an outlet, in seconds.
const BLINK_SECS: f64 = 3.0;

fn main() -> ExitCode {
    hearth_plugin::run(PowerStrip::default(), VERSION)
}

/// The adapter. Its clones share the strip.
#[derive(Debug, Clone, Default)]
struct PowerStrip {
    strip: Arc<Mutex<Strip>>,
}

/// The simulated hardware: which outlets are on, and whether it has run before.
#[derive(Debug, Default)]
struct Strip {
    on: [bool; MAX_OUTLETS],
    started: bool,
}

/// The configuration (`[config.*]` in `plugin.toml`; the hub fills in the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Watts each outlet that is on draws, 0 to 3000.
    load_watts: f64,
    /// How many outlets the strip has, 1 to 8.
    outlets: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { load_watts: 60.0, outlets: 2 }
    }
}

impl Config {
    /// Reads the configuration; the error names the key and what is allowed.
    fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        let config = match json {
            serde_json::Value::Null => Config::default(),
            json => Config::deserialize(json).map_err(|e| format!("the configuration cannot be read: {e}"))?,
        };
        if !(0.0..=MAX_LOAD_WATTS).contains(&config.load_watts) {
            return Err(format!("`load_watts` must be from 0 to {MAX_LOAD_WATTS}, not {}", config.load_watts));
        }
        if !(1..=MAX_OUTLETS).contains(&config.outlets) {
            return Err(format!("`outlets` must be from 1 to {MAX_OUTLETS}, not {}", config.outlets));
        }
        Ok(config)
    }
}

impl Adapter for PowerStrip {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ID,
            name: "Virtual power strip",
            discovers: Discovers::default(),
            actions: &["identify"],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(self.strip, ctx))
    }
}

/// Shutdown began, or the hub has gone: time to return.
struct Stop;

/// Sends one event, giving up when shutdown begins while the hub applies backpressure.
async fn send(events: &EventSender, shutdown: &mut Shutdown, event: AdapterEvent) -> Result<(), Stop> {
    tokio::select! {
        biased;
        () = shutdown.wait() => Err(Stop),
        sent = events.send(event) => sent.map_err(|_| Stop),
    }
}

async fn run(strip: Arc<Mutex<Strip>>, mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let log = Log::current();
    let events = ctx.events.clone();
    let mut shutdown = ctx.shutdown.clone();
    let config = match Config::from_json(&ctx.config) {
        Ok(config) => config,
        Err(reason) => {
            // The plugin refuses a value it cannot use, and says which (ADAPTERS.md §3).
            log.send(LogLevel::Error, "The configuration cannot be used.", json!({"error": reason})).await;
            let status = AdapterStatus::with(AdapterState::Unavailable, reason).with_code("bad_config");
            if send(&events, &mut shutdown, AdapterEvent::Status { status }).await.is_ok() {
                shutdown.wait().await;
            }
            return Ok(());
        }
    };
    let first = !std::mem::replace(&mut lock(&strip).started, true);
    let n = config.outlets;
    let message = if first {
        format!("Virtual power strip started with {n} outlets.")
    } else {
        format!("Virtual power strip restarted with {n} outlets.")
    };
    log.send(LogLevel::Info, message, json!({"load_watts": config.load_watts})).await;

    let id = DeviceId::new(ID, NATIVE_ID);
    let online = Availability { state: AvailabilityState::Online, reason: None, code: None, since: None };
    let announce = [
        AdapterEvent::Device { device: descriptor(&id, n) },
        AdapterEvent::Availability { device: id.clone(), availability: online },
        AdapterEvent::State { device: id.clone(), values: all_values(&lock(&strip), &config), cause: None },
        AdapterEvent::Status { status: AdapterStatus::running() },
    ];
    for event in announce {
        if send(&events, &mut shutdown, event).await.is_err() {
            return Ok(());
        }
    }

    loop {
        let event = tokio::select! {
            biased;
            () = shutdown.wait() => break,
            Some(command) = ctx.commands.recv() => command_result(&strip, &config, command),
            Some(action) = ctx.actions.recv() => {
                identify(action, &config);
                None
            }
            else => break,
        };
        if let Some(event) = event
            && send(&events, &mut shutdown, event).await.is_err()
        {
            break;
        }
    }
    log.send(LogLevel::Info, "Virtual power strip stopped.", serde_json::Value::Null).await;
    Ok(())
}

fn lock(strip: &Mutex<Strip>) -> std::sync::MutexGuard<'_, Strip> {
    strip.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The strip's description: one on/off feature per outlet, and its power.
fn descriptor(id: &DeviceId, outlets: usize) -> DeviceDescriptor {
    let mut features: Vec<Feature> = (1..=outlets)
        .map(|i| {
            Feature::new(&format!("state_l{i}"), Capability::OnOff, ValueType::Bool, Access::READ_WRITE)
                .endpoint(&format!("l{i}"))
                .label(&format!("Outlet {i}"))
        })
        .collect();
    let power = ValueType::Number { min: Some(0.0), max: None, step: None };
    features.push(Feature::new("power", Capability::Power, power, Access { observe: true, set: false, get: true }));
    let mut d = DeviceDescriptor::new(id.clone(), "Virtual power strip", features);
    d.manufacturer = Some("Hearth examples".into());
    d.model = Some(format!("VPS-{outlets}"));
    d.firmware = Some(VERSION.into());
    d.power_source = PowerSource::Mains;
    d
}

/// What the strip draws now.
fn power(strip: &Strip, config: &Config) -> f64 {
    let on = strip.on.iter().take(config.outlets).filter(|on| **on).count();
    config.load_watts * on as f64
}

/// Every feature's value.
fn all_values(strip: &Strip, config: &Config) -> BTreeMap<String, Value> {
    let mut values: BTreeMap<String, Value> =
        (0..config.outlets).map(|i| (format!("state_l{}", i + 1), Value::Bool(strip.on[i]))).collect();
    values.insert("power".into(), Value::Number(power(strip, config)));
    values
}

/// The outlet a feature key or an endpoint names (`state_l2` or `l2` is 1), if the strip has it.
fn outlet(name: &str, config: &Config) -> Option<usize> {
    let n: usize = name.strip_prefix("state_").unwrap_or(name).strip_prefix('l')?.parse().ok()?;
    (1..=config.outlets).contains(&n).then(|| n - 1)
}

/// Carries out a command; returns the resulting state, with the command's context as cause.
fn command_result(strip: &Mutex<Strip>, config: &Config, command: Command) -> Option<AdapterEvent> {
    let mut values = BTreeMap::new();
    let mut strip = lock(strip);
    for (key, value) in &command.request.set {
        // The hub has validated the command; anything else is not for this strip.
        match (outlet(key, config), value.as_bool()) {
            (Some(i), Some(on)) => {
                strip.on[i] = on;
                values.insert(key.clone(), Value::Bool(on));
            }
            _ => eprintln!("ignoring `{key}` = {value} in a command for {}: not a switchable outlet", command.device),
        }
    }
    let refresh_power = match &command.request.refresh {
        Some(Refresh::All(all)) => *all,
        Some(Refresh::Features(keys)) => keys.iter().any(|k| k == "power"),
        None => false,
    };
    if !values.is_empty() || refresh_power {
        values.insert("power".into(), Value::Number(power(&strip, config)));
    }
    if values.is_empty() {
        return None;
    }
    Some(AdapterEvent::State { device: command.device, values, cause: Some(command.context) })
}

/// `identify`: blinks the outlet named in `{"outlet": "l1"}`.
fn identify(action: ActionRequest, config: &Config) {
    let answer = match action.action.as_str() {
        "identify" => {
            let named = action.params.get("outlet");
            match named.and_then(serde_json::Value::as_str) {
                Some(name) if name.starts_with('l') && outlet(name, config).is_some() => {
                    Ok(json!({"blinked": name, "seconds": BLINK_SECS}))
                }
                Some(name) => Err(ActionError::BadParams(format!("`outlet` must be {}, not {name}", choices(config)))),
                None => {
                    Err(ActionError::BadParams(format!("`outlet` is missing: name an outlet, {}", choices(config))))
                }
            }
        }
        other => Err(ActionError::NotFound(format!("there is no action `{other}`"))),
    };
    let _ = action.reply.send(answer);
}

/// The outlets' names, for people: `l1`, `l1 or l2`, `l1, l2 or l3`.
fn choices(config: &Config) -> String {
    let names: Vec<String> = (1..=config.outlets).map(|i| format!("l{i}")).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.join(""),
    }
}
