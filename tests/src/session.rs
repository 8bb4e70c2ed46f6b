//! One session of a Wi-Fi adapter against a device (a simulator of `tests/sim/`), driven as the
//! `hearth_mdns::lan` runner drives it but without mDNS: a detached [`Link`] to the device on
//! loopback, the session on a runtime of its own, its events read from the channel and commands
//! sent into it.
//!
//! ```no_run
//! # use std::collections::BTreeMap;
//! # use std::time::Duration;
//! # use hearth_tests::session::{self, Session};
//! # let port = 80;
//! let target = session::target("shelly", "shellyplus1pm-a8032ab12345", port);
//! let mut s = Session::start(hearth_shelly::Shelly, target, BTreeMap::new(), Duration::from_secs(30));
//! let described = s.descriptor();
//! s.online();
//! let context = s.set("state", true);
//! let (values, cause) = s.state_with("state"); // with `cause == Some(context)`
//! s.close_commands();
//! assert_eq!(s.outcome(session::WAIT), Ok(()));
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_mdns::lan::{Link, Protocol, Target};
use hearth_sdk::{
    AdapterEvent, AvailabilityState, Command, CommandRequest, Context, DeviceDescriptor, DeviceId, EventSender, Origin,
    Secret, Secrets, Value,
};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long [`Session::expect`] waits for an event: generous for anything crossing loopback.
pub const WAIT: Duration = Duration::from_secs(10);

/// A device of `adapter` with key `key` at 127.0.0.1:`port`, announced under its key, without
/// TXT records (set `name` and `txt` on it for a protocol that reads them).
pub fn target(adapter: &str, key: &str, port: u16) -> Target {
    Target {
        key: key.to_owned(),
        device: DeviceId::new(adapter, key),
        name: key.to_owned(),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port,
        txt: BTreeMap::new(),
    }
}

/// A command request setting `values`.
pub fn setting(values: &[(&str, Value)]) -> CommandRequest {
    CommandRequest {
        set: values.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect(),
        ..CommandRequest::default()
    }
}

/// One session of an adapter against a device, on a runtime of its own; aborted when dropped.
#[derive(Debug)]
pub struct Session {
    /// The runtime the session runs on (a test may wait on it).
    pub rt: Runtime,
    /// The device the session is for.
    pub device: DeviceId,
    /// Every event read so far, in order.
    pub seen: Vec<AdapterEvent>,
    adapter: &'static str,
    events: mpsc::Receiver<(&'static str, AdapterEvent)>,
    commands: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<Result<(), String>>>,
    /// Keeps the secrets the session reads unchanged and open.
    _secrets: watch::Sender<BTreeMap<String, Secret>>,
    /// Contexts made by [`Session::command`] so far.
    contexts: u64,
}

impl Session {
    /// Starts `protocol`'s session to `target`, with the adapter's `secrets` (by name), giving up
    /// on a device silent for `idle`.
    pub fn start(
        protocol: impl Protocol,
        target: Target,
        secrets: BTreeMap<String, Secret>,
        idle: Duration,
    ) -> Session {
        let rt = Runtime::new().expect("a tokio runtime for the session");
        let adapter = protocol.adapter();
        let device = target.device.clone();
        let (tx, events) = mpsc::channel(256);
        let (secrets_tx, secrets) = Secrets::channel(secrets);
        let (link, commands) = Link::detached(target, EventSender::new(adapter, tx), secrets, idle);
        let task = rt.spawn(Arc::new(protocol).session(link));
        Session {
            rt,
            device,
            seen: Vec::new(),
            adapter,
            events,
            commands: Some(commands),
            task: Some(task),
            _secrets: secrets_tx,
            contexts: 0,
        }
    }

    /// The next event for which `pred` holds (the others are kept in `seen` too); panics with
    /// what was seen after [`WAIT`].
    pub fn expect(&mut self, what: &str, mut pred: impl FnMut(&AdapterEvent) -> bool) -> AdapterEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let events = &mut self.events;
            let next = self.rt.block_on(async { tokio::time::timeout(left, events.recv()).await });
            match next {
                Ok(Some((adapter, event))) => {
                    assert_eq!(adapter, self.adapter, "an event from another adapter: {event:?}");
                    self.seen.push(event.clone());
                    if pred(&event) {
                        return event;
                    }
                }
                Ok(None) => panic!("the event channel closed while waiting for {what}; seen: {:#?}", self.seen),
                Err(_) => {
                    let ended = !self.is_running();
                    panic!("no {what} within {WAIT:?} (session ended: {ended}); seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// The next description of the device.
    pub fn descriptor(&mut self) -> DeviceDescriptor {
        match self.expect("a device description", |e| matches!(e, AdapterEvent::Device { .. })) {
            AdapterEvent::Device { device } => device,
            _ => unreachable!("only a description is expected"),
        }
    }

    /// Waits until the device is reported online.
    pub fn online(&mut self) {
        let device = self.device.clone();
        self.expect("online", |e| {
            matches!(e, AdapterEvent::Availability { device: d, availability }
                if *d == device && availability.state == AvailabilityState::Online)
        });
    }

    /// The next state report of the device for which `pred` holds on its values: its values and
    /// cause.
    pub fn state(
        &mut self,
        what: &str,
        pred: impl Fn(&BTreeMap<String, Value>) -> bool,
    ) -> (BTreeMap<String, Value>, Option<Context>) {
        let device = self.device.clone();
        match self.expect(
            what,
            |e| matches!(e, AdapterEvent::State { device: d, values, .. } if *d == device && pred(values)),
        ) {
            AdapterEvent::State { values, cause, .. } => (values, cause),
            _ => unreachable!("only a state is expected"),
        }
    }

    /// The next state report holding `key`: its values and cause.
    pub fn state_with(&mut self, key: &str) -> (BTreeMap<String, Value>, Option<Context>) {
        self.state(&format!("state with {key}"), |values| values.contains_key(key))
    }

    /// Sends `request` for the device with `context`.
    pub fn send(&self, request: CommandRequest, context: &Context) {
        let command = Command { device: self.device.clone(), request, context: context.clone() };
        let commands = self.commands.clone().expect("the commands channel is open");
        self.rt.block_on(commands.send(command)).expect("the session takes commands");
    }

    /// Sends `request` with a new context (`ctx-<n>`, by user alice) and returns it.
    pub fn command(&mut self, request: CommandRequest) -> Context {
        self.contexts += 1;
        let context = Context::new(format!("ctx-{}", self.contexts), Origin::User { name: "alice".into() });
        self.send(request, &context);
        context
    }

    /// Sets `key` to `value` with a new context, returned.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> Context {
        self.command(setting(&[(key, value.into())]))
    }

    /// Closes the commands channel: the adapter is stopping, the session should end with `Ok`.
    pub fn close_commands(&mut self) {
        self.commands = None;
    }

    /// Whether the session still runs.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// How the session ended, waiting up to `within`; panics when it still runs then.
    pub fn outcome(&mut self, within: Duration) -> Result<(), String> {
        let task = self.task.take().expect("the session's outcome is read once");
        self.rt
            .block_on(async { tokio::time::timeout(within, task).await })
            .unwrap_or_else(|_| panic!("the session still runs after {within:?}; seen: {:#?}", self.seen))
            .expect("the session's task ran to its end")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
