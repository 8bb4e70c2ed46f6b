//! Hearth's demo adapter: a simulated home of thirteen devices, for trying Hearth without hardware.
//!
//! [`DemoAdapter`] announces lights, plugs, climate sensors, a door contact, a motion sensor, a
//! button, a thermostat and a blind in four areas (Living room, Kitchen, Bedroom, Hallway), all
//! with ids `demo:<native id>`. It obeys commands (reporting with the command's context as cause,
//! ramping brightness over a transition) and every `interval_secs` lets its sensors drift,
//! someone walk through the hallway, the door open and the button be pressed. Its `simulate`
//! action makes such things happen on demand (a press, a sensor value), for trying automations.
//!
//! With `finds` (on by default) it also "finds" a BLE thermometer, a Wi-Fi plug and a TV it
//! cannot control, for the discovery inbox: an accepted one joins the home, a forgotten one
//! leaves it and is offered again.
//!
//! Configuration (`[adapters.demo]`, as JSON in [`AdapterContext::config`]):
//! `{"enabled": true, "interval_secs": 10.0, "finds": true}`. Missing keys take those defaults; a
//! bad value is logged and replaced by its default.
#![forbid(unsafe_code)]

mod catalog;
mod rng;
mod sim;
#[cfg(test)]
mod tests;

use std::time::Duration;

use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, BoxFuture,
    Discovers, EventSender, Shutdown,
};
use tokio::time::{Instant, MissedTickBehavior};

use crate::rng::Rng;
use crate::sim::Home;

/// The demo adapter. `DemoAdapter::new()` seeds its noise from the clock;
/// [`DemoAdapter::with_seed`] makes the simulation's randomness repeatable.
#[derive(Debug, Clone, Default)]
pub struct DemoAdapter {
    seed: Option<u64>,
}

impl DemoAdapter {
    /// A demo home whose noise is seeded from the clock.
    pub fn new() -> DemoAdapter {
        DemoAdapter { seed: None }
    }

    /// A demo home whose noise follows `seed` (for tests and reproducible demos).
    pub fn with_seed(seed: u64) -> DemoAdapter {
        DemoAdapter { seed: Some(seed) }
    }
}

impl Adapter for DemoAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: catalog::ADAPTER_ID,
            name: "Demo home",
            discovers: Discovers::default(),
            actions: &["simulate"],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        let rng = self.seed.map_or_else(Rng::from_clock, Rng::new);
        Box::pin(run(ctx, rng))
    }
}

/// The adapter's configuration, read leniently.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Config {
    enabled: bool,
    interval: Duration,
    finds: bool,
}

impl Config {
    const DEFAULT_INTERVAL_SECS: f64 = 10.0;
    const MIN_INTERVAL_SECS: f64 = 0.01;
    const MAX_INTERVAL_SECS: f64 = 86_400.0;

    fn from_json(json: &serde_json::Value) -> Config {
        let mut config =
            Config { enabled: true, interval: Duration::from_secs_f64(Self::DEFAULT_INTERVAL_SECS), finds: true };
        let map = match json {
            serde_json::Value::Null => return config,
            serde_json::Value::Object(map) => map,
            other => {
                tracing::warn!(config = %other, "demo adapter: configuration is not a table; using the defaults");
                return config;
            }
        };
        for (key, value) in map {
            match (key.as_str(), value) {
                ("enabled", serde_json::Value::Bool(enabled)) => config.enabled = *enabled,
                ("enabled", other) => {
                    tracing::warn!(value = %other, "demo adapter: `enabled` must be true or false; using true");
                }
                ("finds", serde_json::Value::Bool(finds)) => config.finds = *finds,
                ("finds", other) => {
                    tracing::warn!(value = %other, "demo adapter: `finds` must be true or false; using true");
                }
                ("interval_secs", value) => match value.as_f64() {
                    Some(secs) if (Self::MIN_INTERVAL_SECS..=Self::MAX_INTERVAL_SECS).contains(&secs) => {
                        config.interval = Duration::from_secs_f64(secs);
                    }
                    _ => tracing::warn!(
                        value = %value,
                        "demo adapter: `interval_secs` must be a number of seconds from {} to {}; using {}",
                        Self::MIN_INTERVAL_SECS,
                        Self::MAX_INTERVAL_SECS,
                        Self::DEFAULT_INTERVAL_SECS,
                    ),
                },
                (other, _) => tracing::warn!(key = other, "demo adapter: ignoring an unknown configuration key"),
            }
        }
        config
    }
}

/// Shutdown began or the hub stopped listening: time to return.
#[derive(Debug)]
struct Stop;

/// Sends events, giving up as soon as shutdown begins even while the hub applies backpressure.
#[derive(Debug)]
struct Outbox {
    events: EventSender,
    shutdown: Shutdown,
}

impl Outbox {
    async fn send_all(&mut self, batch: Vec<AdapterEvent>) -> Result<(), Stop> {
        for event in batch {
            tokio::select! {
                biased;
                () = self.shutdown.wait() => return Err(Stop),
                sent = self.events.send(event) => sent.map_err(|_| Stop)?,
            }
        }
        Ok(())
    }
}

async fn run(mut ctx: AdapterContext, rng: Rng) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config);
    let mut outbox = Outbox { events: ctx.events.clone(), shutdown: ctx.shutdown.clone() };
    if !config.enabled {
        let status = AdapterStatus::with(AdapterState::Stopped, "disabled in the configuration").with_code("disabled");
        if outbox.send_all(vec![AdapterEvent::Status { status }]).await.is_ok() {
            ctx.shutdown.wait().await;
        }
        return Ok(());
    }
    let mut home = Home::new(rng);
    if outbox.send_all(home.announce()).await.is_err() {
        return Ok(());
    }
    let finds = if config.finds { catalog::finds() } else { Vec::new() };
    let mut inbox_open = !finds.is_empty();
    if outbox.send_all(follow_inbox(&mut home, &finds, &ctx.inbox, true)).await.is_err() {
        return Ok(());
    }
    tracing::debug!(interval = ?config.interval, "demo adapter running");
    let mut ticker = tokio::time::interval_at(Instant::now() + config.interval, config.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut commands_open = true;
    loop {
        let next_ramp = home.next_ramp_at();
        let batch = tokio::select! {
            biased;
            () = ctx.shutdown.wait() => return Ok(()),
            command = ctx.commands.recv(), if commands_open => match command {
                Some(command) => home.command(&command, Instant::now()),
                None => {
                    commands_open = false;
                    Vec::new()
                }
            },
            () = tokio::time::sleep_until(next_ramp.unwrap_or_else(Instant::now)), if next_ramp.is_some() => {
                home.advance_ramps(Instant::now())
            }
            _ = ticker.tick() => home.tick(),
            decided = ctx.inbox.changed(), if inbox_open => match decided {
                Some(_) => follow_inbox(&mut home, &finds, &ctx.inbox, false),
                None => {
                    inbox_open = false;
                    Vec::new()
                }
            },
            Some(action) = ctx.actions.recv() => {
                // `simulate` is the only action (the hub checks the name against the manifest).
                match home.simulate(&action.params) {
                    Ok(events) => {
                        let _ = action.reply.send(Ok(serde_json::json!({"simulated": events.len()})));
                        events
                    }
                    Err(e) => {
                        let _ = action.reply.send(Err(hearth_sdk::ActionError::BadParams(e)));
                        Vec::new()
                    }
                }
            }
        };
        if outbox.send_all(batch).await.is_err() {
            return Ok(());
        }
    }
}

/// Brings the home in line with the user's decisions: accepted finds join it, forgotten ones
/// leave it and are offered again. At `start` every find not yet a device is offered.
fn follow_inbox(
    home: &mut Home,
    finds: &[(hearth_sdk::Found, Option<(hearth_sdk::DeviceDescriptor, sim::Kind)>)],
    inbox: &hearth_sdk::Inbox,
    start: bool,
) -> Vec<AdapterEvent> {
    let mut events = Vec::new();
    for (found, device) in finds {
        let decision = inbox.decision(&found.key);
        let here = home.has(&found.device);
        match (decision, device) {
            (Some(hearth_sdk::Decision::Accepted), Some((descriptor, kind))) => {
                events.extend(home.add(descriptor.clone(), kind.clone()));
            }
            (None, _) if here => {
                home.remove(&found.device);
                events.push(AdapterEvent::DeviceRemoved { device: found.device.clone() });
                events.push(AdapterEvent::Found { found: found.clone() });
            }
            // Offered (again): the hub writes and announces nothing for what it already has.
            (None, _) => events.push(AdapterEvent::Found { found: found.clone() }),
            // Ignored: left alone. At start an accepted or ignored find is still seen.
            _ if start => events.push(AdapterEvent::Found { found: found.clone() }),
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_keys_take_defaults_and_bad_values_fall_back() {
        let default = Config { enabled: true, interval: Duration::from_secs(10), finds: true };
        assert_eq!(Config::from_json(&serde_json::Value::Null), default);
        assert_eq!(Config::from_json(&json!({})), default);
        assert_eq!(Config::from_json(&json!([1, 2])), default);
        assert_eq!(
            Config::from_json(&json!({"enabled": false, "interval_secs": 0.5})),
            Config { enabled: false, interval: Duration::from_millis(500), finds: true }
        );
        assert_eq!(Config::from_json(&json!({"interval_secs": 2})).interval, Duration::from_secs(2));
        for bad in [json!("fast"), json!(-1.0), json!(0.0), json!(0.001), json!(1e9), json!(null)] {
            assert_eq!(Config::from_json(&json!({"interval_secs": bad})), default, "{bad}");
        }
        assert_eq!(Config::from_json(&json!({"enabled": "yes", "colour": 1})), default);
    }
}
