//! The automation task: drives the engine of `hearth-automations` with what happens in the hub,
//! and carries out what it asks.
//!
//! In: bus events, MQTT messages on the topics automations listen to, API requests (through
//! [`AutomationsHandle`]), webhook answers, and the clock (the engine says when it next has
//! something to do). Out: commands through the core (with the run's context, so loops can be
//! seen), MQTT publishes, webhook calls, UI notifications on the bus, and writes to the store:
//! waiting runs (so they survive a restart), traces, and the "alive" time used for catch-up.
//!
//! Definitions are saved to the store by the API first; the task is told after, so the store is
//! always at least as new as the engine.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hearth_automations::clock::{Clock, SystemClock};
use hearth_automations::engine::{DryRun, Engine, EngineError, Output, RunInfo, RunRecord, Settings};
use hearth_automations::model::{Automation, Scene};
use hearth_automations::trace::{EndKind, Trace};
use hearth_sdk::{Event, MqttSettings, Timestamp};
use rumqttc::{AsyncClient, Event as MqttEvent, Packet, QoS};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::core::CoreHandle;
use crate::store::automations as db;
use crate::store::{StoreError, StoreWriter, WriteOp};

/// How often the task records that it is alive (for catch-up after downtime).
pub const ALIVE_EVERY: Duration = Duration::from_secs(30);
/// How long an outgoing webhook call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// MQTT messages queued for the engine before the reader waits.
const MQTT_QUEUE: usize = 1024;

/// Counters, for `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct AutomationStats {
    /// Runs that ended, whatever the reason.
    pub runs: AtomicU64,
    /// Runs stopped as loops.
    pub loops: AtomicU64,
    /// Commands sent.
    pub commands: AtomicU64,
    /// Commands refused by the core.
    pub command_failures: AtomicU64,
    /// MQTT messages published.
    pub published: AtomicU64,
}

type Reply<T> = oneshot::Sender<T>;

enum Request {
    Upsert(Box<Automation>, u32),
    Remove(String),
    SetEnabled(String, bool, Reply<Result<(), EngineError>>),
    Trigger { id: String, by: String, skip_conditions: bool, reply: Reply<Result<u64, EngineError>> },
    DryRun(String, Reply<Result<DryRun, EngineError>>),
    Webhook { id: String, body: Option<String>, reply: Reply<usize> },
    Runs(Reply<Vec<RunInfo>>),
    UpsertScene(Box<Scene>),
    RemoveScene(String),
    Stop(Reply<()>),
}

/// A cheap handle to the automation task.
#[derive(Debug, Clone)]
pub struct AutomationsHandle {
    tx: mpsc::Sender<Request>,
    stats: Arc<AutomationStats>,
}

/// The task has stopped (the hub is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the automation engine has stopped")]
pub struct Stopped;

impl AutomationsHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// An automation was saved (as `version`): the engine takes it.
    pub async fn upsert(&self, automation: Automation, version: u32) -> Result<(), Stopped> {
        self.tx.send(Request::Upsert(Box::new(automation), version)).await.map_err(|_| Stopped)
    }

    /// An automation was deleted.
    pub async fn remove(&self, id: String) -> Result<(), Stopped> {
        self.tx.send(Request::Remove(id)).await.map_err(|_| Stopped)
    }

    /// Turns an automation on or off.
    pub async fn set_enabled(&self, id: String, enabled: bool) -> Result<Result<(), EngineError>, Stopped> {
        self.ask(|reply| Request::SetEnabled(id, enabled, reply)).await
    }

    /// Starts a run now; returns its id.
    pub async fn trigger(
        &self,
        id: String,
        by: String,
        skip_conditions: bool,
    ) -> Result<Result<u64, EngineError>, Stopped> {
        self.ask(|reply| Request::Trigger { id, by, skip_conditions, reply }).await
    }

    /// Conditions now, and the actions an automation would take.
    pub async fn dry_run(&self, id: String) -> Result<Result<DryRun, EngineError>, Stopped> {
        self.ask(|reply| Request::DryRun(id, reply)).await
    }

    /// A webhook was called; returns how many automations or waits it reached.
    pub async fn webhook(&self, id: String, body: Option<String>) -> Result<usize, Stopped> {
        self.ask(|reply| Request::Webhook { id, body, reply }).await
    }

    /// The runs going now.
    pub async fn runs(&self) -> Result<Vec<RunInfo>, Stopped> {
        self.ask(Request::Runs).await
    }

    /// A scene was saved.
    pub async fn upsert_scene(&self, scene: Scene) -> Result<(), Stopped> {
        self.tx.send(Request::UpsertScene(Box::new(scene))).await.map_err(|_| Stopped)
    }

    /// A scene was deleted.
    pub async fn remove_scene(&self, id: String) -> Result<(), Stopped> {
        self.tx.send(Request::RemoveScene(id)).await.map_err(|_| Stopped)
    }

    /// Stops the task: records the time (for catch-up) and ends. Waiting runs stay in the store.
    pub async fn stop(&self) {
        let _ = self.ask(Request::Stop).await;
    }

    /// The task's counters.
    pub fn stats(&self) -> &Arc<AutomationStats> {
        &self.stats
    }
}

/// What the task starts with.
#[derive(Debug)]
pub struct AutomationsInit {
    /// Time zone, location, loop depth.
    pub settings: Settings,
    /// The core, for commands and the bus.
    pub core: CoreHandle,
    /// The store's writer.
    pub writer: StoreWriter,
    /// The broker MQTT triggers and actions use.
    pub mqtt: Option<MqttSettings>,
    /// What the store holds.
    pub loaded: LoadedAutomations,
}

/// Automations, scenes and waiting runs as loaded from the store.
#[derive(Debug, Default)]
pub struct LoadedAutomations {
    /// Automations with their versions.
    pub automations: Vec<(Automation, u32)>,
    /// Scenes.
    pub scenes: Vec<Scene>,
    /// Waiting runs.
    pub runs: Vec<RunRecord>,
    /// The highest run id used.
    pub last_run_id: u64,
    /// When the hub was last known alive.
    pub alive_at: Option<i64>,
}

/// Loads automations, scenes and runs. A stored document this version cannot read is skipped
/// with an error in the log (the hub still starts; the API still lists it by its versions).
pub fn load(conn: &rusqlite::Connection) -> Result<LoadedAutomations, StoreError> {
    let mut out = LoadedAutomations::default();
    for a in db::load_automations(conn)? {
        match serde_json::from_value::<Automation>(a.definition) {
            Ok(mut def) => {
                def.enabled = a.enabled;
                out.automations.push((def, a.version));
            }
            Err(e) => {
                tracing::error!(automation = %a.id, error = %e, "A stored automation cannot be read; it is skipped.")
            }
        }
    }
    for s in db::load_scenes(conn)? {
        match serde_json::from_value::<Scene>(s.definition) {
            Ok(scene) => out.scenes.push(scene),
            Err(e) => tracing::error!(scene = %s.id, error = %e, "A stored scene cannot be read; it is skipped."),
        }
    }
    for r in db::load_runs(conn)? {
        match serde_json::from_value::<RunRecord>(r.record) {
            Ok(run) => out.runs.push(run),
            Err(e) => tracing::error!(run = r.run_id, error = %e, "A stored run cannot be read; it is dropped."),
        }
    }
    out.last_run_id = db::last_run_id(conn)?;
    out.alive_at = db::alive_at(conn)?;
    Ok(out)
}

/// Starts the automation task.
pub fn spawn(init: AutomationsInit) -> (AutomationsHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let stats = Arc::new(AutomationStats::default());
    let handle = AutomationsHandle { tx, stats: stats.clone() };
    let task = tokio::spawn(run(init, rx, stats));
    (handle, task)
}

struct Task {
    engine: Engine,
    core: CoreHandle,
    writer: StoreWriter,
    mqtt: Option<AsyncClient>,
    topics: Arc<std::sync::Mutex<BTreeSet<String>>>,
    calls: mpsc::Sender<(u64, usize, Result<String, String>)>,
    stats: Arc<AutomationStats>,
}

async fn run(init: AutomationsInit, mut requests: mpsc::Receiver<Request>, stats: Arc<AutomationStats>) {
    let AutomationsInit { settings, core, writer, mqtt, loaded } = init;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut engine = Engine::new(clock.clone(), settings);
    let (snapshot, mut bus) = match core.subscribe().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "The automation engine cannot start.");
            return;
        }
    };
    engine.set_devices(snapshot.devices);
    engine.set_last_run_id(loaded.last_run_id);
    for s in loaded.scenes {
        engine.upsert_scene(s);
    }
    let count = loaded.automations.len();
    for (a, v) in loaded.automations {
        engine.upsert(a, v);
    }
    let waiting = loaded.runs.len();
    engine.restore(loaded.runs);

    let (calls_tx, mut calls_rx) = mpsc::channel(64);
    let (mqtt_tx, mut mqtt_rx) = mpsc::channel::<(String, String)>(MQTT_QUEUE);
    let topics = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let client = match mqtt {
        Some(settings) => match connect(&settings, topics.clone(), mqtt_tx) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "Automations cannot use MQTT.");
                None
            }
        },
        None => None,
    };
    let mut task = Task { engine, core, writer, mqtt: client, topics, calls: calls_tx, stats };
    task.resubscribe().await;
    task.engine.start(loaded.alive_at.map(Timestamp::from_millis));
    task.drain().await;
    tracing::info!(automations = count, waiting, "The automation engine is running.");

    let mut alive = tokio::time::interval(ALIVE_EVERY);
    alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sleep = match task.engine.next_wakeup() {
            Some(at) => {
                let ms = (at.as_millis() - clock.now().as_millis()).clamp(0, 86_400_000);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0))
            }
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            ev = bus.recv() => match ev {
                Ok(ev) => task.engine.event(&ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "The automation engine fell behind the bus; it reloads the devices.");
                    if let Ok(s) = task.core.snapshot().await {
                        task.engine.set_devices(s.devices);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some((topic, payload)) = mqtt_rx.recv() => task.engine.mqtt(&topic, &payload),
            Some((run, thread, result)) = calls_rx.recv() => task.engine.call_done(run, thread, result),
            req = requests.recv() => match req {
                None => break,
                Some(Request::Stop(done)) => {
                    task.alive().await;
                    let _ = task.writer.flush().await;
                    let _ = done.send(());
                    break;
                }
                Some(req) => task.request(req).await,
            },
            _ = tokio::time::sleep(sleep) => task.engine.tick(),
            _ = alive.tick() => task.alive().await,
        }
        task.drain().await;
    }
    tracing::debug!("The automation engine has stopped.");
}

impl Task {
    async fn request(&mut self, req: Request) {
        match req {
            Request::Upsert(a, v) => {
                let (automation, enabled) = (a.id.clone(), a.enabled);
                self.engine.upsert(*a, v);
                self.changed(automation, Some(v), Some(enabled));
                self.resubscribe().await;
            }
            Request::Remove(id) => {
                self.engine.remove(&id);
                self.changed(id, None, None);
                self.resubscribe().await;
            }
            Request::SetEnabled(id, on, reply) => {
                let result = self.engine.set_enabled(&id, on);
                if result.is_ok() {
                    let version = self.engine.automation(&id).map(|(_, v)| v);
                    self.changed(id, version, Some(on));
                }
                let _ = reply.send(result);
                self.resubscribe().await;
            }
            Request::Trigger { id, by, skip_conditions, reply } => {
                let _ = reply.send(self.engine.trigger(&id, &by, skip_conditions));
            }
            Request::DryRun(id, reply) => {
                let _ = reply.send(self.engine.dry_run(&id));
            }
            Request::Webhook { id, body, reply } => {
                let _ = reply.send(self.engine.webhook(&id, body));
            }
            Request::Runs(reply) => {
                let _ = reply.send(self.engine.runs());
            }
            Request::UpsertScene(s) => self.engine.upsert_scene(*s),
            Request::RemoveScene(id) => {
                self.engine.remove_scene(&id);
            }
            Request::Stop(done) => {
                let _ = done.send(());
            }
        }
    }

    /// Tells the bus (and so every open UI) that an automation changed.
    fn changed(&self, automation: String, version: Option<u32>, enabled: Option<bool>) {
        self.core.bus().publish(Event::AutomationChanged { automation, version, enabled });
    }

    async fn alive(&self) {
        let now = Timestamp::now().as_millis();
        self.write(move |c| db::set_alive_at(c, now)).await;
    }

    async fn write(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<(), StoreError> + Send + 'static) {
        if let Err(e) = self.writer.send(WriteOp::Exec(Box::new(f))).await {
            tracing::error!(error = %e, "An automation write could not be queued.");
        }
    }

    /// Subscribes to the topics the automations listen to now (and drops the others).
    async fn resubscribe(&mut self) {
        let Some(client) = &self.mqtt else { return };
        let wanted: BTreeSet<String> = self.engine.mqtt_topics().into_iter().collect();
        let (add, remove) = {
            let Ok(mut current) = self.topics.lock() else { return };
            let add: Vec<String> = wanted.difference(&current).cloned().collect();
            let remove: Vec<String> = current.difference(&wanted).cloned().collect();
            *current = wanted;
            (add, remove)
        };
        for t in add {
            if let Err(e) = client.try_subscribe(&t, QoS::AtMostOnce) {
                tracing::warn!(topic = %t, error = %e, "Cannot subscribe for an MQTT trigger.");
            }
        }
        for t in remove {
            let _ = client.try_unsubscribe(&t);
        }
    }

    /// Carries out what the engine asked for, then stores finished traces.
    async fn drain(&mut self) {
        loop {
            let outputs = self.engine.take_outputs();
            if outputs.is_empty() {
                break;
            }
            for o in outputs {
                self.output(o).await;
            }
        }
        for t in self.engine.take_traces() {
            self.trace(t).await;
        }
    }

    async fn output(&mut self, o: Output) {
        match o {
            Output::Command { device, request, context, step } => {
                self.stats.commands.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.core.command_in(device.clone(), request, context).await {
                    self.stats.command_failures.fetch_add(1, Ordering::Relaxed);
                    self.engine.report(step, Err(format!("{device}: {e}")));
                }
            }
            Output::Publish { topic, payload, retain, step } => {
                let result = match &self.mqtt {
                    // Never wait on the broker: a full queue is a failed step, not a stuck engine.
                    Some(c) => c.try_publish(topic, QoS::AtLeastOnce, retain, payload).map_err(|e| e.to_string()),
                    None => Err("no MQTT broker: the built-in one is off and no external one is configured".into()),
                };
                match result {
                    Ok(()) => {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => self.engine.report(step, Err(e)),
                }
            }
            Output::Call { run, thread, method, url, body } => {
                let done = self.calls.clone();
                tokio::spawn(async move {
                    let result = tokio::task::spawn_blocking(move || call(&method, &url, body))
                        .await
                        .unwrap_or_else(|e| Err(format!("the call crashed: {e}")));
                    let _ = done.send((run, thread, result)).await;
                });
            }
            Output::Notify { context, title, message } => {
                self.core.bus().publish(Event::Notification { title, message, at: Timestamp::now(), context });
            }
            Output::SetEnabled { automation, enabled } => {
                let version = self.engine.automation(&automation).map(|(_, v)| v);
                self.changed(automation.clone(), version, Some(enabled));
                let now = Timestamp::now().as_millis();
                self.write(move |c| db::set_enabled(c, &automation, enabled, now).map(|_| ())).await;
                self.resubscribe().await;
            }
            Output::SaveRun(run) => {
                let now = Timestamp::now().as_millis();
                match serde_json::to_value(&*run) {
                    Ok(record) => {
                        self.write(move |c| db::save_run(c, run.id, &run.automation, &record, now).map(|_| ())).await;
                    }
                    Err(e) => tracing::error!(error = %e, "A waiting run cannot be saved."),
                }
            }
            Output::DropRun(id) => self.write(move |c| db::delete_run(c, id).map(|_| ())).await,
            Output::Alive(at) => {
                let ms = at.as_millis();
                self.write(move |c| db::set_alive_at(c, ms)).await;
            }
        }
    }

    async fn trace(&mut self, t: Trace) {
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        if let Some(end) = &t.ending {
            match end.kind {
                EndKind::Loop => {
                    self.stats.loops.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(automation = %t.automation, "An automation was stopped: {}.", end.message);
                }
                EndKind::Error => {
                    tracing::warn!(automation = %t.automation, "An automation run failed: {}.", end.message)
                }
                _ => {
                    tracing::debug!(automation = %t.automation, run = t.run, ending = ?end.kind, "An automation run ended.")
                }
            }
        }
        // Written once, straight to text: the trace goes to the database as it is.
        let record = match serde_json::to_string(&t) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "A trace cannot be saved.");
                return;
            }
        };
        if let Some(end) = &t.ending {
            let ending =
                serde_json::to_value(end.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
            self.core.bus().publish(Event::AutomationRan {
                automation: t.automation.clone(),
                run: t.run,
                ending,
                message: end.message.clone(),
                started_at: t.started_at,
                ended_at: t.ended_at.unwrap_or(t.started_at),
            });
        }
        let started = t.started_at.as_millis();
        self.write(move |c| db::save_trace(c, &t.automation, t.run, started, &record, db::TRACES_KEPT).map(|_| ()))
            .await;
    }
}

/// Connects to the broker for MQTT triggers and actions; messages on subscribed topics go to
/// `tx`. Reconnects by itself (rumqttc), subscribing again to `topics` each time.
fn connect(
    settings: &MqttSettings,
    topics: Arc<std::sync::Mutex<BTreeSet<String>>>,
    tx: mpsc::Sender<(String, String)>,
) -> Result<AsyncClient, String> {
    let opts = hearth_mqtt::options(&format!("hearth-automations-{}", std::process::id()), settings)?;
    let (client, mut eventloop) = hearth_mqtt::client(opts, 256);
    let resub = client.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(500);
                    let list: Vec<String> = topics.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default();
                    for t in list {
                        // Never awaited: this task is the one that empties the client's queue.
                        if let Err(e) = resub.try_subscribe(t.clone(), QoS::AtMostOnce) {
                            tracing::warn!(topic = %t, "An MQTT trigger could not subscribe again ({e}).");
                        }
                    }
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    if tx.send((p.topic, payload)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if tx.is_closed() {
                        return;
                    }
                    tracing::debug!(error = %e, "Automations' MQTT connection: reconnecting.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    });
    Ok(client)
}

/// One outgoing webhook call; the answer's status line, or why it failed.
fn call(method: &str, url: &str, body: Option<String>) -> Result<String, String> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(CALL_TIMEOUT)).http_status_as_error(false).build().into();
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("PUT", Some(b)) => agent.put(url).content_type("application/json").send(b),
        ("PUT", None) => agent.put(url).send_empty(),
        (_, Some(b)) => agent.post(url).content_type("application/json").send(b),
        (_, None) => agent.post(url).send_empty(),
    };
    match response {
        Ok(r) if r.status().is_success() => Ok(format!("{}", r.status())),
        Ok(r) => Err(format!("{url} answered {}", r.status())),
        Err(e) => Err(format!("{url}: {e}")),
    }
}
