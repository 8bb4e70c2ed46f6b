//! The hub's core: the state store task (single owner of devices, areas and state), the event
//! bus, and the command router.
//!
//! Handle and owner: [`CoreHandle`] is a cheap clone that sends requests; one task ([`run`]) owns
//! the [`Registry`], applies what adapters send, publishes on the [`Bus`], queues writes for the
//! store, and routes commands to the adapter that owns the device.
//!
//! Shutdown: the task ends when the adapters' event channel closes and every handle is gone, or
//! when asked to stop; it then drops its store writer, so the writer commits what was queued.

pub mod bus;
pub mod registry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hearth_sdk::{
    ActionError, ActionRequest, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, Area, Command,
    CommandRequest, Context, Decision, Device, DeviceId, Event, InboxEntry, Origin, Timestamp,
};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use bus::Bus;
pub use registry::{ContextIds, Effects, Registry, RegistryError};

use crate::inbox::{InboxError, InboxState};
use crate::store::{StoreError, StoreWriter, WriteOp};

/// Events adapters may queue before they wait (backpressure).
pub const ADAPTER_QUEUE: usize = 1024;
/// Commands an adapter may have queued before new ones are refused as busy.
pub const COMMAND_QUEUE: usize = 64;
/// Management actions an adapter may have queued before new ones are refused as busy.
pub const ACTION_QUEUE: usize = 16;

/// A full picture for a new subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Every device with its state.
    pub devices: Vec<Device>,
    /// Every area.
    pub areas: Vec<Area>,
}

/// An adapter as `GET /api/v1/adapters` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// Its manifest.
    #[serde(flatten)]
    pub manifest: AdapterManifest,
    /// Its status.
    pub status: AdapterStatus,
    /// How many devices it has.
    pub devices: usize,
}

/// Why a request to the core failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The registry refused it.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The adapter cannot take commands now.
    #[error("adapter `{adapter}` is not running{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    AdapterNotRunning {
        /// The adapter.
        adapter: String,
        /// Why.
        reason: Option<String>,
    },
    /// No adapter with that id runs in this hub.
    #[error("no adapter `{0}` runs in this hub")]
    UnknownAdapter(String),
    /// The adapter takes no such action.
    #[error("adapter `{adapter}` has no action `{action}`; its actions are: {}", if known.is_empty() { "(none)".to_owned() } else { known.join(", ") })]
    UnknownAction {
        /// The adapter.
        adapter: String,
        /// The action asked for.
        action: String,
        /// Its actions.
        known: Vec<String>,
    },
    /// The adapter has too many commands queued.
    #[error("adapter `{0}` is busy with earlier commands; try again shortly")]
    AdapterBusy(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The inbox refused it.
    #[error(transparent)]
    Inbox(#[from] InboxError),
    /// The core has stopped (the hub is shutting down).
    #[error("the hub is shutting down")]
    Stopped,
}

/// Counters of the core, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct CoreStats {
    /// Adapter events applied.
    pub adapter_events: AtomicU64,
    /// State changes published.
    pub state_changes: AtomicU64,
    /// Device events published.
    pub device_events: AtomicU64,
    /// Reports refused (unknown device or feature, wrong type).
    pub refused: AtomicU64,
    /// Input adapters could not use (malformed payloads, unknown devices).
    pub input_rejected: AtomicU64,
    /// Commands routed to adapters.
    pub commands: AtomicU64,
    /// Devices in the registry.
    pub devices: AtomicU64,
    /// Adapter events waiting for the core, as of its last one.
    pub adapter_queue: AtomicU64,
    /// Requests (API, automations) waiting for the core, as of its last one.
    pub request_queue: AtomicU64,
}

type Reply<T> = oneshot::Sender<Result<T, CoreError>>;
type Ack = oneshot::Receiver<Result<(), String>>;
/// The adapter's answer to an action, once it comes.
pub type ActionReply = oneshot::Receiver<Result<serde_json::Value, ActionError>>;

enum Request {
    Snapshot(oneshot::Sender<Snapshot>),
    Subscribe(oneshot::Sender<(Snapshot, broadcast::Receiver<Arc<Event>>)>),
    Device(DeviceId, oneshot::Sender<Option<Device>>),
    PatchDevice { id: DeviceId, name: Option<String>, area: Option<Option<String>>, reply: Reply<(Device, Ack)> },
    RemoveDevice(DeviceId, Reply<((), Ack)>),
    CreateArea { name: String, order: Option<i64>, reply: Reply<(Area, Ack)> },
    PatchArea { id: String, name: Option<String>, order: Option<i64>, reply: Reply<(Area, Ack)> },
    RemoveArea(String, Reply<((), Ack)>),
    Command { device: DeviceId, request: CommandRequest, why: Why, reply: Reply<Context> },
    Batch { commands: Vec<(DeviceId, CommandRequest)>, origin: Origin, reply: oneshot::Sender<BatchResult> },
    Adapters(oneshot::Sender<Vec<AdapterInfo>>),
    Action { adapter: String, action: String, params: serde_json::Value, origin: Origin, reply: Reply<ActionReply> },
    AdapterEnded { adapter: &'static str, result: Result<(), String> },
    Register { slot: AdapterSlot, status: AdapterStatus, reply: oneshot::Sender<hearth_sdk::Inbox> },
    Manifest(AdapterManifest),
    Inbox(oneshot::Sender<Vec<InboxEntry>>),
    Decide { adapter: String, key: String, decision: Option<Decision>, reply: Reply<(Option<InboxEntry>, Ack)> },
    Stop(oneshot::Sender<()>),
}

/// Why a command is sent: a new context for this origin, or one the caller made (an automation
/// run's, so the changes it causes lead back to it).
#[derive(Debug, Clone)]
pub enum Why {
    /// A new context with this origin.
    Origin(Origin),
    /// This context.
    Context(Context),
}

/// The context of a batch of commands and how each went, in order.
pub type BatchResult = (Context, Vec<Result<(), CoreError>>);

/// A cheap handle to the core task.
#[derive(Debug, Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Request>,
    bus: Bus,
    stats: Arc<CoreStats>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

/// An adapter the core routes commands to.
#[derive(Debug)]
pub struct AdapterSlot {
    /// Its manifest.
    pub manifest: AdapterManifest,
    /// Where its commands go.
    pub commands: mpsc::Sender<Command>,
    /// Where its management actions go.
    pub actions: mpsc::Sender<ActionRequest>,
}

/// Everything the core task starts with.
#[derive(Debug)]
pub struct CoreInit {
    /// The registry as loaded from the store.
    pub registry: Registry,
    /// The bus to publish on.
    pub bus: Bus,
    /// The store's writer.
    pub writer: StoreWriter,
    /// Events from all adapters, tagged with the adapter id.
    pub adapter_events: mpsc::Receiver<(&'static str, AdapterEvent)>,
    /// The adapters, for routing commands.
    pub adapters: Vec<AdapterSlot>,
    /// The discovery inbox (each adapter's view of it already handed out).
    pub inbox: InboxState,
    /// What goes to the cloud outbox, and its cap, when the cloud link is on.
    pub cloud: Option<(crate::cloud::share::Share, u64)>,
}

impl CoreHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, CoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| CoreError::Stopped)?;
        rx.await.map_err(|_| CoreError::Stopped)
    }

    async fn ask_acked<T>(&self, make: impl FnOnce(Reply<(T, Ack)>) -> Request) -> Result<T, CoreError> {
        let (value, ack) = self.ask(make).await??;
        ack.await.map_err(|_| CoreError::Stopped)?.map_err(|e| CoreError::Store(StoreError::Write(e)))?;
        Ok(value)
    }

    /// Every device and area.
    pub async fn snapshot(&self) -> Result<Snapshot, CoreError> {
        self.ask(Request::Snapshot).await
    }

    /// A snapshot and a bus subscription starting right after it: nothing missed, nothing twice.
    pub async fn subscribe(&self) -> Result<(Snapshot, broadcast::Receiver<Arc<Event>>), CoreError> {
        self.ask(Request::Subscribe).await
    }

    /// One device.
    pub async fn device(&self, id: &DeviceId) -> Result<Option<Device>, CoreError> {
        self.ask(|tx| Request::Device(id.clone(), tx)).await
    }

    /// Renames a device or moves it to an area; returns once the change is on disk.
    pub async fn patch_device(
        &self,
        id: &DeviceId,
        name: Option<String>,
        area: Option<Option<String>>,
    ) -> Result<Device, CoreError> {
        self.ask_acked(|reply| Request::PatchDevice { id: id.clone(), name, area, reply }).await
    }

    /// Removes a device; returns once the change is on disk.
    pub async fn remove_device(&self, id: &DeviceId) -> Result<(), CoreError> {
        self.ask_acked(|reply| Request::RemoveDevice(id.clone(), reply)).await
    }

    /// Every area.
    pub async fn areas(&self) -> Result<Vec<Area>, CoreError> {
        Ok(self.snapshot().await?.areas)
    }

    /// Creates an area; returns once it is on disk.
    pub async fn create_area(&self, name: String, order: Option<i64>) -> Result<Area, CoreError> {
        self.ask_acked(|reply| Request::CreateArea { name, order, reply }).await
    }

    /// Renames or reorders an area; returns once the change is on disk.
    pub async fn patch_area(&self, id: String, name: Option<String>, order: Option<i64>) -> Result<Area, CoreError> {
        self.ask_acked(|reply| Request::PatchArea { id, name, order, reply }).await
    }

    /// Removes an area; returns once the change is on disk.
    pub async fn remove_area(&self, id: String) -> Result<(), CoreError> {
        self.ask_acked(|reply| Request::RemoveArea(id, reply)).await
    }

    /// Validates a command against the device's features and hands it to its adapter.
    /// Returns the context the command (and the changes it causes) carries.
    pub async fn command(
        &self,
        device: DeviceId,
        request: CommandRequest,
        origin: Origin,
    ) -> Result<Context, CoreError> {
        self.ask(|reply| Request::Command { device, request, why: Why::Origin(origin), reply }).await?
    }

    /// Like [`CoreHandle::command`], with a context the caller made (an automation run's).
    pub async fn command_in(
        &self,
        device: DeviceId,
        request: CommandRequest,
        context: Context,
    ) -> Result<(), CoreError> {
        self.ask(|reply| Request::Command { device, request, why: Why::Context(context), reply }).await?.map(|_| ())
    }

    /// Several commands with one context (a scene): each is validated and routed on its own.
    pub async fn batch(
        &self,
        commands: Vec<(DeviceId, CommandRequest)>,
        origin: Origin,
    ) -> Result<BatchResult, CoreError> {
        self.ask(|reply| Request::Batch { commands, origin, reply }).await
    }

    /// Hands a management action to an adapter; the receiver resolves with its answer.
    pub async fn action(
        &self,
        adapter: String,
        action: String,
        params: serde_json::Value,
        origin: Origin,
    ) -> Result<ActionReply, CoreError> {
        self.ask(|reply| Request::Action { adapter, action, params, origin, reply }).await?
    }

    /// Every adapter with its status.
    pub async fn adapters(&self) -> Result<Vec<AdapterInfo>, CoreError> {
        self.ask(Request::Adapters).await
    }

    /// Every entry of the discovery inbox.
    pub async fn inbox(&self) -> Result<Vec<InboxEntry>, CoreError> {
        self.ask(Request::Inbox).await
    }

    /// Accepts or ignores (`Some`) or forgets (`None`) an inbox entry; returns the entry as it is
    /// now (`None` when forgotten) once the decision is on disk. The adapter sees it then.
    pub async fn decide(
        &self,
        adapter: String,
        key: String,
        decision: Option<Decision>,
    ) -> Result<Option<InboxEntry>, CoreError> {
        self.ask_acked(|reply| Request::Decide { adapter, key, decision, reply }).await
    }

    /// Tells the core an adapter task has ended (its devices go offline with the reason).
    pub async fn adapter_ended(&self, adapter: &'static str, result: Result<(), String>) {
        let _ = self.tx.send(Request::AdapterEnded { adapter, result }).await;
    }

    /// Adds an adapter that starts after the hub (a plugin), or replaces its slot when it
    /// restarts: its commands and actions go to the new channels from now on. Returns the
    /// adapter's view of the discovery inbox.
    pub async fn register(&self, slot: AdapterSlot, status: AdapterStatus) -> Result<hearth_sdk::Inbox, CoreError> {
        self.ask(|reply| Request::Register { slot, status, reply }).await
    }

    /// Replaces an adapter's manifest (a plugin says its actions and secrets in its handshake).
    pub async fn set_manifest(&self, manifest: AdapterManifest) {
        let _ = self.tx.send(Request::Manifest(manifest)).await;
    }

    /// Stops the core: it applies every adapter event already queued, then ends.
    pub async fn stop(&self) {
        let _ = self.ask(Request::Stop).await;
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The core's counters.
    pub fn stats(&self) -> &Arc<CoreStats> {
        &self.stats
    }
}

/// Starts the core task; returns its handle and the task.
pub fn spawn(init: CoreInit) -> (CoreHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let stats = Arc::new(CoreStats::default());
    let handle = CoreHandle { tx, bus: init.bus.clone(), stats: stats.clone() };
    let task = tokio::spawn(run(init, rx, stats));
    (handle, task)
}

struct Core {
    registry: Registry,
    inbox: InboxState,
    bus: Bus,
    writer: StoreWriter,
    ids: ContextIds,
    adapters: Vec<(AdapterSlot, AdapterStatus)>,
    stats: Arc<CoreStats>,
    cloud: Option<(crate::cloud::share::Share, u64)>,
}

/// The core task: applies adapter events and requests until both channels close.
async fn run(init: CoreInit, mut requests: mpsc::Receiver<Request>, stats: Arc<CoreStats>) {
    let CoreInit { registry, bus, writer, mut adapter_events, adapters, inbox, cloud } = init;
    let mut core = Core {
        registry,
        inbox,
        bus,
        writer,
        ids: ContextIds::new(Timestamp::now()),
        adapters: adapters.into_iter().map(|s| (s, AdapterStatus::bare(AdapterState::Starting))).collect(),
        stats,
        cloud,
    };
    let mut adapters_open = true;
    let mut requests_open = true;
    while adapters_open || requests_open {
        tokio::select! {
            ev = adapter_events.recv(), if adapters_open => match ev {
                Some((adapter, event)) => {
                    core.stats.adapter_queue.store(adapter_events.len() as u64, Ordering::Relaxed);
                    core.stats.request_queue.store(requests.len() as u64, Ordering::Relaxed);
                    core.adapter_event(adapter, event).await
                }
                None => adapters_open = false,
            },
            req = requests.recv(), if requests_open => match req {
                Some(Request::Stop(done)) => {
                    while let Ok((adapter, event)) = adapter_events.try_recv() {
                        core.adapter_event(adapter, event).await;
                    }
                    let _ = done.send(());
                    break;
                }
                Some(req) => core.request(req).await,
                None => requests_open = false,
            },
        }
    }
    tracing::debug!("The state store has stopped.");
}

impl Core {
    /// Carries out `fx`: writes, then events. The acknowledgement of the last write, for a caller
    /// that waits for it; [`Core::effects_unacked`] when nobody does, so the writer may gather
    /// the writes with others into one commit.
    async fn effects(&mut self, fx: Effects) -> Option<Ack> {
        self.carry_out(fx, true).await
    }

    async fn effects_unacked(&mut self, fx: Effects) {
        self.carry_out(fx, false).await;
    }

    async fn carry_out(&mut self, fx: Effects, acked: bool) -> Option<Ack> {
        for why in &fx.refused {
            tracing::warn!("Refused a report: {why}.");
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.devices.store(self.registry.len() as u64, Ordering::Relaxed);
        let writes = self.with_outbox(fx.writes, &fx.events);
        let mut last_ack = None;
        let n = writes.len();
        for (i, op) in writes.into_iter().enumerate() {
            if acked && i + 1 == n {
                match self.writer.send_acked(op).await {
                    Ok(ack) => last_ack = Some(ack),
                    Err(e) => tracing::error!(error = %e, "Cannot queue a database write."),
                }
            } else if let Err(e) = self.writer.send(op).await {
                tracing::error!(error = %e, "Cannot queue a database write.");
            }
        }
        for ev in fx.events {
            match &ev {
                Event::StateChanged { .. } => self.stats.state_changes.fetch_add(1, Ordering::Relaxed),
                Event::DeviceEvent { .. } => self.stats.device_events.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            self.bus.publish(ev);
        }
        last_ack
    }

    async fn adapter_event(&mut self, adapter: &'static str, event: AdapterEvent) {
        self.stats.adapter_events.fetch_add(1, Ordering::Relaxed);
        match &event {
            AdapterEvent::Status { status } => {
                self.set_status(adapter, status.clone());
                return;
            }
            AdapterEvent::InputRejected { .. } => {
                self.stats.input_rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            AdapterEvent::Found { found } => {
                let fx = self.inbox.found(adapter, found.clone(), Timestamp::now());
                self.effects_unacked(fx).await;
                return;
            }
            _ => {}
        }
        let fx = self.registry.apply(adapter, event, Timestamp::now(), &mut self.ids);
        self.effects_unacked(fx).await;
    }

    /// With the cloud link on: each change's outbox row joins the write of that change (the
    /// same transaction); rows with no write of their own (availability) follow as their own.
    fn with_outbox(&self, writes: Vec<WriteOp>, events: &[Event]) -> Vec<WriteOp> {
        use crate::cloud::outbox::Kind;
        let Some((share, cap)) = &self.cloud else { return writes };
        let mut rows: Vec<crate::cloud::outbox::Row> =
            events.iter().filter_map(|e| share.rows(e, |id| self.registry.device_by_str(id))).collect();
        if rows.is_empty() {
            return writes;
        }
        let mut out = Vec::with_capacity(writes.len() + rows.len());
        for op in writes {
            let matching = |r: &crate::cloud::outbox::Row| match &op {
                WriteOp::State { device, feature, .. } => {
                    r.kind == Kind::State && r.device == device.as_str() && r.feature.as_deref() == Some(feature)
                }
                WriteOp::Event { device, feature, .. } => {
                    r.kind == Kind::Event && r.device == device.as_str() && r.feature.as_deref() == Some(feature)
                }
                WriteOp::UpsertDevice(d) => {
                    matches!(r.kind, Kind::Device | Kind::DeviceRemoved) && r.device == d.id.as_str()
                }
                WriteOp::DeleteDevice(id) => r.kind == Kind::DeviceRemoved && r.device == id.as_str(),
                _ => false,
            };
            match rows.iter().position(matching) {
                Some(i) => {
                    let row = rows.remove(i);
                    out.push(WriteOp::Shared(Box::new(op), row, *cap));
                }
                None => out.push(op),
            }
        }
        out.extend(rows.into_iter().map(|r| WriteOp::Outbox(r, *cap)));
        out
    }

    fn set_status(&mut self, adapter: &str, status: AdapterStatus) {
        if let Some((_, s)) = self.adapters.iter_mut().find(|(slot, _)| slot.manifest.id == adapter)
            && *s != status
        {
            *s = status.clone();
            tracing::info!(adapter, state = ?status.state, reason = status.reason.as_deref().unwrap_or(""), "Adapter status changed.");
            self.bus.publish(Event::AdapterStatusChanged { adapter: adapter.to_owned(), status });
        }
    }

    fn acked(ack: Option<Ack>) -> Ack {
        ack.unwrap_or_else(|| {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Ok(()));
            rx
        })
    }

    async fn request(&mut self, req: Request) {
        match req {
            Request::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Request::Subscribe(reply) => {
                let rx = self.bus.subscribe();
                let _ = reply.send((self.snapshot(), rx));
            }
            Request::Device(id, reply) => {
                let _ = reply.send(self.registry.device(&id).cloned());
            }
            Request::PatchDevice { id, name, area, reply } => {
                let r = match self.registry.patch_device(&id, name, area) {
                    Ok((device, fx)) => Ok((device, Self::acked(self.effects(fx).await))),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::RemoveDevice(id, reply) => {
                let r = match self.registry.remove_device(&id) {
                    Ok(mut fx) => {
                        // Forgotten before the adapter hears of it, so it does not announce it again.
                        let forgotten = self.inbox.device_removed(&id);
                        fx.writes.extend(forgotten.writes);
                        fx.events.extend(forgotten.events);
                        Ok(((), Self::acked(self.effects(fx).await)))
                    }
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::Inbox(reply) => {
                let _ = reply.send(self.inbox.entries());
            }
            Request::Decide { adapter, key, decision, reply } => {
                let r = match decision {
                    Some(d) => self.inbox.decide(&adapter, &key, d).map(|(entry, fx)| (Some(entry), fx)),
                    None => self.inbox.forget(&adapter, &key).map(|fx| (None, fx)),
                };
                let r = match r {
                    Ok((entry, fx)) => Ok((entry, Self::acked(self.effects(fx).await))),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::CreateArea { name, order, reply } => {
                let r = match self.registry.create_area(&name, order) {
                    Ok((area, fx)) => Ok((area, Self::acked(self.effects(fx).await))),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::PatchArea { id, name, order, reply } => {
                let r = match self.registry.patch_area(&id, name, order) {
                    Ok((area, fx)) => Ok((area, Self::acked(self.effects(fx).await))),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::RemoveArea(id, reply) => {
                let r = match self.registry.remove_area(&id) {
                    Ok(fx) => Ok(((), Self::acked(self.effects(fx).await))),
                    Err(e) => Err(e.into()),
                };
                let _ = reply.send(r);
            }
            Request::Command { device, request, why, reply } => {
                let context = match why {
                    Why::Origin(origin) => self.ids.context(origin),
                    Why::Context(c) => c,
                };
                let _ = reply.send(self.command(device, request, context));
            }
            Request::Batch { commands, origin, reply } => {
                let context = self.ids.context(origin);
                let results =
                    commands.into_iter().map(|(d, r)| self.command(d, r, context.clone()).map(|_| ())).collect();
                let _ = reply.send((context, results));
            }
            Request::Adapters(reply) => {
                let list = self
                    .adapters
                    .iter()
                    .map(|(slot, status)| AdapterInfo {
                        manifest: slot.manifest.clone(),
                        status: status.clone(),
                        devices: self.registry.devices_of(slot.manifest.id).len(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Request::Stop(done) => {
                let _ = done.send(());
            }
            Request::Register { slot, status, reply } => {
                let id = slot.manifest.id;
                match self.adapters.iter_mut().find(|(s, _)| s.manifest.id == id) {
                    Some(existing) => existing.0 = slot,
                    None => self.adapters.push((slot, AdapterStatus::bare(AdapterState::Stopped))),
                }
                self.set_status(id, status);
                let _ = reply.send(self.inbox.view_for(id));
            }
            Request::Manifest(manifest) => {
                if let Some((slot, _)) = self.adapters.iter_mut().find(|(s, _)| s.manifest.id == manifest.id) {
                    slot.manifest = manifest;
                }
            }
            Request::Action { adapter, action, params, origin, reply } => {
                let _ = reply.send(self.action(adapter, action, params, origin));
            }
            Request::AdapterEnded { adapter, result } => {
                let (status, reason, code) = match result {
                    Ok(()) => (
                        AdapterStatus::bare(AdapterState::Stopped),
                        format!("adapter `{adapter}` stopped"),
                        "adapter_stopped",
                    ),
                    Err(e) => (
                        AdapterStatus::with(AdapterState::Failed, e.clone()).with_code("failed"),
                        format!("adapter `{adapter}` failed: {e}"),
                        "adapter_failed",
                    ),
                };
                self.set_status(adapter, status);
                let fx = self.registry.adapter_down(adapter, &reason, code, Timestamp::now());
                self.effects_unacked(fx).await;
            }
        }
    }

    fn action(
        &mut self,
        adapter: String,
        action: String,
        params: serde_json::Value,
        origin: Origin,
    ) -> Result<ActionReply, CoreError> {
        let Some((slot, status)) = self.adapters.iter().find(|(s, _)| s.manifest.id == adapter) else {
            return Err(CoreError::UnknownAdapter(adapter));
        };
        if !slot.manifest.actions.contains(&action.as_str()) {
            let known = slot.manifest.actions.iter().map(|a| (*a).to_owned()).collect();
            return Err(CoreError::UnknownAction { adapter, action, known });
        }
        let (tx, rx) = oneshot::channel();
        let context = self.ids.context(origin);
        match slot.actions.try_send(ActionRequest { action, params, context, reply: tx }) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => Err(CoreError::AdapterBusy(adapter)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(CoreError::AdapterNotRunning { adapter, reason: status.reason.clone() })
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { devices: self.registry.devices(), areas: self.registry.areas() }
    }

    fn command(&mut self, device: DeviceId, request: CommandRequest, context: Context) -> Result<Context, CoreError> {
        let d = self.registry.device(&device).ok_or_else(|| RegistryError::NoDevice(device.to_string()))?;
        request.validate(&d.features).map_err(RegistryError::from)?;
        // Toggles become sets of the opposite of the current value: adapters only ever see `set`.
        let mut request = request;
        for key in std::mem::take(&mut request.toggle) {
            let current = d.value(&key).and_then(hearth_sdk::Value::as_bool);
            let current = current.ok_or_else(|| RegistryError::ToggleUnknown(key.clone()))?;
            request.set.insert(key, hearth_sdk::Value::Bool(!current));
        }
        let adapter = d.adapter.clone();
        let Some((slot, status)) = self.adapters.iter().find(|(s, _)| s.manifest.id == adapter) else {
            return Err(CoreError::AdapterNotRunning {
                adapter,
                reason: Some("it is not enabled in this hub's configuration".into()),
            });
        };
        let command = Command { device, request, context: context.clone() };
        match slot.commands.try_send(command) {
            Ok(()) => {
                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                Ok(context)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(CoreError::AdapterBusy(adapter)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(CoreError::AdapterNotRunning { adapter, reason: status.reason.clone() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Access, Capability, DeviceDescriptor, Feature, ValueType};

    #[tokio::test]
    async fn commands_are_validated_then_routed_with_a_context() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        let (writer, _thread) = StoreWriter::start(conn);
        let (etx, erx) = mpsc::channel(16);
        let (ctx, mut crx) = mpsc::channel(4);
        let manifest =
            AdapterManifest { id: "demo", name: "Demo", discovers: Default::default(), actions: &[], secrets: None };
        let (atx, _arx) = mpsc::channel(4);
        let (core, _task) = spawn(CoreInit {
            registry: Registry::default(),
            bus: Bus::new(),
            writer,
            adapter_events: erx,
            adapters: vec![AdapterSlot { manifest, commands: ctx, actions: atx }],
            inbox: InboxState::new(Vec::new(), Default::default()),
            cloud: None,
        });
        let id = DeviceId::new("demo", "lamp");
        let features = vec![Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE)];
        let device = DeviceDescriptor::new(id.clone(), "Lamp", features);
        etx.send(("demo", AdapterEvent::Device { device })).await.expect("send");
        // Adapter events and requests travel on separate channels: wait for the device.
        while core.device(&id).await.expect("device").is_none() {
            tokio::task::yield_now().await;
        }
        let req: CommandRequest = serde_json::from_str(r#"{"set": {"state": true}}"#).expect("json");
        let origin = Origin::User { name: "alice".into() };
        let context = core.command(id.clone(), req, origin.clone()).await.expect("routed");
        let cmd = crx.recv().await.expect("command");
        assert_eq!((cmd.device, cmd.context.clone()), (id.clone(), context));
        assert_eq!(cmd.context.origin, origin);
        // A toggle needs the current value.
        let toggle: CommandRequest = serde_json::from_str(r#"{"toggle": ["state"]}"#).expect("json");
        let err = core.command(id.clone(), toggle.clone(), Origin::System).await.expect_err("unknown state");
        assert_eq!(err.to_string(), "cannot toggle `state`: its current value is not known yet; set it instead");
        let values = std::collections::BTreeMap::from([("state".to_owned(), hearth_sdk::Value::Bool(true))]);
        etx.send(("demo", AdapterEvent::State { device: id.clone(), values, cause: None })).await.expect("send");
        while core.device(&id).await.expect("device").is_some_and(|d| d.value("state").is_none()) {
            tokio::task::yield_now().await;
        }
        core.command(id.clone(), toggle, Origin::System).await.expect("toggled");
        let cmd = crx.recv().await.expect("command");
        assert_eq!(cmd.request.set.get("state"), Some(&hearth_sdk::Value::Bool(false)));
        assert!(cmd.request.toggle.is_empty(), "adapters never see toggle");
        let bad: CommandRequest = serde_json::from_str(r#"{"set": {"state": 1}}"#).expect("json");
        let err = core.command(id, bad, Origin::System).await.expect_err("refused");
        assert_eq!(err.to_string(), "feature `state` takes true or false, not number 1.0");
    }
}
