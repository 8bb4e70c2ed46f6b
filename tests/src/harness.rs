//! An adapter under [`hearth_sdk::testing::Harness`] on a runtime of its own, driven from a plain
//! test thread: its events read with a deadline (and remembered: the latest description,
//! availability and values of each device), commands and management actions sent to it, and a
//! shutdown it must honour within a second.
//!
//! ```no_run
//! # use hearth_tests::harness::Run;
//! # use hearth_sdk::AvailabilityState;
//! # use serde_json::json;
//! # let adapter = hearth_tasmota::TasmotaAdapter::new();
//! # let mqtt = None;
//! let mut run = Run::start(adapter, json!({"enabled": true}), mqtt);
//! let lamp = run.device("tasmota:aabbccddeeff");
//! run.availability("tasmota:aabbccddeeff", AvailabilityState::Online);
//! let context = run.command("tasmota:aabbccddeeff", json!({"set": {"state": true}}), "c1");
//! let (values, cause) = run.state_with("tasmota:aabbccddeeff", "state"); // `cause == Some(context)`
//! run.stop();
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hearth_sdk::testing::Harness;
use hearth_sdk::{
    ActionError, ActionRequest, Adapter, AdapterError, AdapterEvent, AvailabilityState, Command, Context,
    DeviceDescriptor, DeviceId, MqttSettings, Origin, Value,
};
use serde_json::Value as Json;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// How long [`Run`] waits for an event (or an action's answer): generous for anything crossing
/// loopback.
pub const WAIT: Duration = Duration::from_secs(15);

/// How many of the last events a failure message lists.
const SHOWN: usize = 40;

/// The latest values of each device's features, by device id.
pub type Values = BTreeMap<String, BTreeMap<String, Value>>;

/// An adapter running under the harness; aborted when dropped without [`Run::stop`].
#[derive(Debug)]
pub struct Run {
    /// The runtime the adapter runs on.
    pub rt: Runtime,
    /// The adapter's channels.
    pub h: Harness,
    task: Option<JoinHandle<Result<(), AdapterError>>>,
    /// Every event read so far, in order.
    pub seen: Vec<AdapterEvent>,
    /// The latest description of each device, by id.
    pub devices: BTreeMap<String, DeviceDescriptor>,
    /// The latest value of each feature, by device, from every state report so far (a test may
    /// clear it).
    pub values: Values,
    /// The latest availability of each device, by id.
    availability: BTreeMap<String, AvailabilityState>,
}

impl Run {
    /// Starts `adapter` with `config` and the hub's broker `mqtt`.
    pub fn start(adapter: impl Adapter, config: Json, mqtt: Option<MqttSettings>) -> Run {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the adapter");
        let (h, run) = Harness::new(Box::new(adapter), config, mqtt);
        let task = rt.spawn(run);
        Run {
            rt,
            h,
            task: Some(task),
            seen: Vec::new(),
            devices: BTreeMap::new(),
            values: BTreeMap::new(),
            availability: BTreeMap::new(),
        }
    }

    /// The last events read, one a line, for failure messages.
    pub fn summary(&self) -> String {
        let skipped = self.seen.len().saturating_sub(SHOWN);
        let mut lines: Vec<String> = self.seen[skipped..]
            .iter()
            .map(|e| match e {
                AdapterEvent::Device { device } => format!("device {}", device.id),
                AdapterEvent::State { device, values, .. } => format!("state {device} {values:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        if skipped > 0 {
            lines.insert(0, format!("({skipped} earlier events)"));
        }
        lines.join("\n  ")
    }

    /// The next event (remembered), waiting up to `left`; `what` names what the test waits for.
    fn read(&mut self, what: &str, left: Duration) -> AdapterEvent {
        let next = self.h.next();
        let event = match self.rt.block_on(async { tokio::time::timeout(left, next).await }) {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the adapter stopped while waiting for {what}; events:\n  {}", self.summary()),
            Err(_) => panic!("no {what} within {WAIT:?}; events:\n  {}", self.summary()),
        };
        match &event {
            AdapterEvent::Device { device } => {
                self.devices.insert(device.id.to_string(), device.clone());
            }
            AdapterEvent::Availability { device, availability } => {
                self.availability.insert(device.to_string(), availability.state);
            }
            AdapterEvent::State { device, values, .. } => {
                self.values.entry(device.to_string()).or_default().extend(values.clone());
            }
            _ => {}
        }
        self.seen.push(event.clone());
        event
    }

    /// The next event, within [`WAIT`].
    pub fn next(&mut self, what: &str) -> AdapterEvent {
        self.read(what, WAIT)
    }

    /// The first event (from now on, within [`WAIT`] in all) for which `f` gives something.
    pub fn expect<X>(&mut self, what: &str, mut f: impl FnMut(&AdapterEvent) -> Option<X>) -> X {
        let deadline = Instant::now() + WAIT;
        loop {
            let event = self.read(what, deadline.saturating_duration_since(Instant::now()));
            if let Some(x) = f(&event) {
                return x;
            }
        }
    }

    /// The first event (from now on, within [`WAIT`] in all) for which `pick` holds.
    pub fn until(&mut self, what: &str, pick: impl Fn(&AdapterEvent) -> bool) -> AdapterEvent {
        self.expect(what, |e| pick(e).then(|| e.clone()))
    }

    /// Reads events until `pred` holds for the latest values (at once if it already does).
    pub fn until_values(&mut self, what: &str, pred: impl Fn(&Values) -> bool) {
        while !pred(&self.values) {
            self.next(what);
        }
    }

    /// The device's description once `pred` holds for it (at once if it already does).
    pub fn device_where(&mut self, id: &str, what: &str, pred: impl Fn(&DeviceDescriptor) -> bool) -> DeviceDescriptor {
        if let Some(d) = self.devices.get(id).filter(|d| pred(d)) {
            return d.clone();
        }
        self.expect(&format!("the device {id} {what}"), |e| match e {
            AdapterEvent::Device { device } if device.id.as_str() == id && pred(device) => Some(device.clone()),
            _ => None,
        })
    }

    /// The device's description (at once if it was described already).
    pub fn device(&mut self, id: &str) -> DeviceDescriptor {
        self.device_where(id, "described", |_| true)
    }

    /// The next report of `id` in `state`: its reason.
    pub fn availability(&mut self, id: &str, state: AvailabilityState) -> Option<String> {
        self.expect(&format!("{id} {state:?}"), |e| match e {
            AdapterEvent::Availability { device, availability }
                if device.as_str() == id && availability.state == state =>
            {
                Some(availability.reason.clone())
            }
            _ => None,
        })
    }

    /// Waits until each of `ids` has been reported online, in any order (at once for those whose
    /// latest report says so).
    pub fn all_online(&mut self, ids: &[&str]) {
        let mut left: Vec<&str> = ids.to_vec();
        left.retain(|x| self.availability.get(*x) != Some(&AvailabilityState::Online));
        while !left.is_empty() {
            let id = self.expect(&format!("{left:?} online"), |e| match e {
                AdapterEvent::Availability { device, availability }
                    if availability.state == AvailabilityState::Online =>
                {
                    Some(device.to_string())
                }
                _ => None,
            });
            left.retain(|x| *x != id);
        }
    }

    /// The next state report of `id` that has `key`: its values and cause.
    pub fn state_with(&mut self, id: &str, key: &str) -> (BTreeMap<String, Value>, Option<Context>) {
        self.expect(&format!("a state of {id} with {key}"), |e| match e {
            AdapterEvent::State { device, values, cause } if device.as_str() == id && values.contains_key(key) => {
                Some((values.clone(), cause.clone()))
            }
            _ => None,
        })
    }

    /// The next state report of `id` with `key` = `value`: its cause's id.
    pub fn state(&mut self, id: &str, key: &str, value: Value) -> Option<String> {
        self.expect(&format!("{id} {key} = {value}"), |e| match e {
            AdapterEvent::State { device, values, cause }
                if device.as_str() == id && values.get(key) == Some(&value) =>
            {
                Some(cause.as_ref().map(|c| c.id.clone()))
            }
            _ => None,
        })
    }

    /// Sends `request` (a `CommandRequest` as JSON: `{"set": {...}}`) for device `id`, with a
    /// context of id `context` by user alice; returns the context.
    pub fn command(&mut self, id: &str, request: Json, context: &str) -> Context {
        let context = Context::new(context, Origin::User { name: "alice".into() });
        let cmd = Command {
            device: DeviceId::parse(id).expect("a device id"),
            request: serde_json::from_value(request).expect("a command request"),
            context: context.clone(),
        };
        self.rt.block_on(self.h.commands.send(cmd)).expect("the adapter takes commands");
        context
    }

    /// Runs management action `action` with `params`; its answer within [`WAIT`].
    pub fn action(&mut self, action: &str, params: Json) -> Result<Json, ActionError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let context = Context::new("action", Origin::User { name: "alice".into() });
        let request = ActionRequest { action: action.into(), params, context, reply };
        self.rt.block_on(self.h.actions.send(request)).expect("the adapter takes actions");
        self.rt
            .block_on(async { tokio::time::timeout(WAIT, rx).await })
            .unwrap_or_else(|_| panic!("no answer to {action} within {WAIT:?}"))
            .expect("the adapter answers the action")
    }

    /// Shuts the adapter down; it must return `Ok` within a second. Its events are read (and
    /// dropped) meanwhile, so a last one never waits for room in the channel.
    pub fn stop(mut self) {
        self.h.shutdown.send_replace(true);
        let mut task = self.task.take().expect("the adapter is stopped once");
        let h = &mut self.h;
        let res = self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            loop {
                tokio::select! {
                    r = &mut task => return Some(r),
                    _ = h.next() => {}
                    _ = tokio::time::sleep_until(deadline) => return None,
                }
            }
        });
        let res = res.expect("the adapter did not return within a second of shutdown");
        assert!(matches!(res, Ok(Ok(()))), "{res:?}");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
