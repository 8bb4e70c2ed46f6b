//! The engine: matches triggers, checks conditions, and steps runs through their actions.
//!
//! It does no I/O. The hub feeds it what happens ([`Engine::event`], [`Engine::mqtt`],
//! [`Engine::webhook`], [`Engine::tick`] at [`Engine::next_wakeup`]) and carries out what it asks
//! ([`Engine::take_outputs`]): commands, MQTT messages, webhook calls, notifications, and the
//! records that make runs durable. Finished traces come from [`Engine::take_traces`], after the
//! hub has reported how the commands went ([`Engine::report`]).
//!
//! A run is data, not a task: a stack of positions per thread (a `parallel` action has one thread
//! per branch) and what each thread waits for. So a run waiting in a `delay` or a `wait` is saved
//! as a [`RunRecord`] and continues after a restart with the time that was left.
//!
//! Loop protection: every run has a context whose parent is the context of what triggered it;
//! the engine remembers how deep each of its contexts is in the chain. A change caused by an
//! automation's command carries that command's context, so a trigger it fires starts a run one
//! level deeper. Beyond [`Settings::max_depth`] the run is stopped, and its trace says so.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use hearth_sdk::{
    AvailabilityState, CommandRequest, Context, Device, DeviceId, Event, FeatureState, Origin, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::matching::{self, StateTest, in_range, resolve, same};
use crate::model::{Action, ActionKind, Automation, CatchUp, Condition, Match, Mode, Scene, Trigger, TriggerKind};
use crate::say::Say;
use crate::schedule;
use crate::sun::{self, Location};
use crate::trace::{ConditionResult, EndKind, Fired, Step, Trace};
use crate::zone::Zone;

/// Default depth of the context chain beyond which a run is stopped as a loop.
pub const MAX_DEPTH: u32 = 5;
/// Actions a run may take without waiting before it is stopped (a `repeat` without a delay).
pub const MAX_STEPS_WITHOUT_WAIT: u32 = 1000;
/// Contexts whose depth the engine remembers.
const DEPTHS_KEPT: usize = 4096;

/// What the engine needs to know about the home beyond its devices.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The household's time zone.
    pub zone: Zone,
    /// Where the home is, for sun triggers and conditions.
    pub location: Option<Location>,
    /// Deepest context chain allowed.
    pub max_depth: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { zone: Zone::utc(), location: None, max_depth: MAX_DEPTH }
    }
}

/// Where a step's outcome goes when the hub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StepRef {
    /// The run.
    pub run: u64,
    /// The step's index in the trace (`None` past the trace's cap).
    pub step: Option<usize>,
}

/// Something the hub must do for the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a command.
    Command {
        /// To this device.
        device: DeviceId,
        /// This command.
        request: CommandRequest,
        /// With this context (the run's).
        context: Context,
        /// Report failures here.
        step: StepRef,
    },
    /// Publish on the MQTT broker.
    Publish {
        /// Topic.
        topic: String,
        /// Payload.
        payload: String,
        /// Retained.
        retain: bool,
        /// Report failures here.
        step: StepRef,
    },
    /// Call a URL; report the result with [`Engine::call_done`].
    Call {
        /// The run.
        run: u64,
        /// The thread waiting for it.
        thread: usize,
        /// `POST`, `GET`, `PUT`.
        method: String,
        /// Where.
        url: String,
        /// The body.
        body: Option<String>,
    },
    /// Show a message in the web UI.
    Notify {
        /// The run's context (its origin names the automation).
        context: Context,
        /// A title.
        title: Option<String>,
        /// The message.
        message: String,
    },
    /// An automation was turned on or off by an action: store it.
    SetEnabled {
        /// The automation.
        automation: String,
        /// On or off.
        enabled: bool,
    },
    /// A run is waiting: store its record (replacing an older one).
    SaveRun(Box<RunRecord>),
    /// A stored run has ended: forget it.
    DropRun(u64),
    /// A scheduled trigger (time, interval, sun, or a catch-up) fired: store the time as the
    /// last moment the engine was alive, so a crash right after does not catch it up again.
    Alive(Timestamp),
}

/// Why the engine refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No such automation.
    #[error("no automation `{0}`")]
    NoAutomation(String),
}

/// A durable run as stored: enough to continue it after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub id: u64,
    /// The automation.
    pub automation: String,
    /// The version it runs.
    pub version: u32,
    /// What started it.
    pub fired: Fired,
    /// Its context.
    pub context: Context,
    /// Its depth in the context chain.
    pub depth: u32,
    /// The automations of the chain, for loop messages.
    #[serde(default)]
    pub chain: Vec<String>,
    /// Waiting for an earlier run to end (mode `queued`).
    #[serde(default)]
    pub queued: bool,
    /// Its threads; 0 is the main one.
    pub threads: Vec<Thread>,
    /// Its trace so far.
    pub trace: Trace,
}

/// One line of execution of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// Positions, outermost first.
    pub stack: Vec<Frame>,
    /// What it is doing.
    pub state: ThreadState,
    /// The thread that waits for this one (a `parallel` branch's parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<usize>,
}

/// A position in a list of actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Which list: the path from the automation's `actions`.
    pub block: Vec<Seg>,
    /// The action in it.
    pub index: usize,
    /// The round of a `repeat`.
    #[serde(default)]
    pub round: u32,
}

/// One step of a path to a list of actions: the action's index and which of its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seg {
    /// `if`'s `then`.
    Then(usize),
    /// `if`'s `else`.
    Else(usize),
    /// `choose`'s option.
    Option(usize, usize),
    /// `choose`'s `default`.
    Default(usize),
    /// `repeat`'s actions.
    Body(usize),
    /// A `parallel` branch.
    Branch(usize, usize),
}

/// What a thread is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ThreadState {
    /// Ready to go on.
    Ready,
    /// In a `delay`, until then.
    Sleeping {
        /// When it goes on.
        until: Timestamp,
    },
    /// In a `wait`.
    Waiting {
        /// When it times out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Timestamp>,
        /// For each of the wait's triggers with a time (time, interval, sun): when it fires.
        #[serde(default)]
        times: Vec<Option<Timestamp>>,
    },
    /// Waiting for its `parallel` branches.
    Joining {
        /// The branch threads.
        children: Vec<usize>,
    },
    /// Waiting for a webhook call to answer.
    Calling,
    /// Done.
    Done,
}

struct Entry {
    def: Arc<Automation>,
    version: u32,
    /// Next firing of each trigger with a time.
    next: Vec<Option<Timestamp>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Trigger(String, usize),
    Wait(u64, usize),
}

/// A `for` in progress: fires at `deadline` unless the value changes first.
#[derive(Debug, Clone)]
struct Hold {
    owner: Owner,
    device: DeviceId,
    deadline: Timestamp,
    fired: Fired,
}

/// Which automation triggers a device's changes can fire: those that list the device, and those
/// with an area or capability target (checked against the device each time).
#[derive(Debug, Default)]
struct TriggerIndex {
    by_device: HashMap<DeviceId, Vec<(String, usize)>>,
    wide: Vec<(String, usize)>,
}

impl TriggerIndex {
    fn add(&mut self, id: &str, def: &Automation) {
        for (i, t) in def.triggers.iter().enumerate() {
            let target = match &t.kind {
                TriggerKind::State { target, .. }
                | TriggerKind::Event { target, .. }
                | TriggerKind::Availability { target, .. } => target,
                _ => continue,
            };
            if target.devices.is_empty() {
                self.wide.push((id.to_owned(), i));
            }
            for d in &target.devices {
                let list = self.by_device.entry(d.clone()).or_default();
                if !list.iter().any(|(a, j)| a == id && *j == i) {
                    list.push((id.to_owned(), i));
                }
            }
        }
    }

    fn remove(&mut self, id: &str) {
        self.by_device.retain(|_, list| {
            list.retain(|(a, _)| a != id);
            !list.is_empty()
        });
        self.wide.retain(|(a, _)| a != id);
    }

    fn candidates(&self, device: &DeviceId) -> Vec<(String, usize)> {
        let mut out = self.by_device.get(device).cloned().unwrap_or_default();
        out.extend(self.wide.iter().cloned());
        out
    }
}

/// The automation engine. See the module documentation.
pub struct Engine {
    clock: Arc<dyn Clock>,
    settings: Settings,
    home: BTreeMap<DeviceId, Device>,
    automations: BTreeMap<String, Entry>,
    index: TriggerIndex,
    scenes: BTreeMap<String, Scene>,
    runs: BTreeMap<u64, RunRecord>,
    holds: Vec<Hold>,
    next_run: u64,
    ctx_prefix: String,
    ctx_seq: u64,
    depths: HashMap<String, (u32, Vec<String>)>,
    depth_order: VecDeque<String>,
    outputs: Vec<Output>,
    traces: Vec<Trace>,
    /// Runs saved to the store (so their end must drop them).
    stored: std::collections::BTreeSet<u64>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("automations", &self.automations.len())
            .field("runs", &self.runs.len())
            .field("holds", &self.holds.len())
            .finish_non_exhaustive()
    }
}

/// A run that is going, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// The run.
    pub run: u64,
    /// The automation.
    pub automation: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Waiting for an earlier run.
    pub queued: bool,
    /// What its threads do.
    pub threads: Vec<ThreadState>,
}

/// What a dry run found: the conditions now, and the actions the automation would take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// Whether the conditions hold now.
    pub would_run: bool,
    /// Each condition's result.
    pub conditions: Vec<ConditionResult>,
    /// The actions it would take, in order, in words, indented by nesting.
    pub actions: Vec<String>,
    /// The same as data: each line's nesting, alias and saying.
    pub plan: Vec<PlanLine>,
}

/// One line of a dry run's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanLine {
    /// How deep it is nested (0 for the automation's own actions).
    pub depth: usize,
    /// The action's alias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// What it would do.
    pub say: Say,
}

impl fmt::Display for PlanLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.depth {
            f.write_str("  ")?;
        }
        if let Some(alias) = &self.alias {
            write!(f, "{alias}: ")?;
        }
        write!(f, "{}", self.say)
    }
}

/// The list of actions at a path.
fn block<'a>(actions: &'a [Action], path: &[Seg]) -> Option<&'a [Action]> {
    let mut list = actions;
    for seg in path {
        list = match (*seg, list) {
            (Seg::Then(i), l) => match &l.get(i)?.kind {
                ActionKind::If { then, .. } => then,
                _ => return None,
            },
            (Seg::Else(i), l) => match &l.get(i)?.kind {
                ActionKind::If { otherwise, .. } => otherwise,
                _ => return None,
            },
            (Seg::Option(i, k), l) => match &l.get(i)?.kind {
                ActionKind::Choose { options, .. } => &options.get(k)?.actions,
                _ => return None,
            },
            (Seg::Default(i), l) => match &l.get(i)?.kind {
                ActionKind::Choose { default, .. } => default,
                _ => return None,
            },
            (Seg::Body(i), l) => match &l.get(i)?.kind {
                ActionKind::Repeat { actions, .. } => actions,
                _ => return None,
            },
            (Seg::Branch(i, k), l) => match &l.get(i)?.kind {
                ActionKind::Parallel(branches) => branches.get(k)?,
                _ => return None,
            },
        };
    }
    Some(list)
}

/// `actions[2].then[0]` for a frame stack.
fn path_text(block: &[Seg], index: usize) -> String {
    let mut s = String::from("actions");
    for seg in block {
        match seg {
            Seg::Then(i) => s.push_str(&format!("[{i}].if.then")),
            Seg::Else(i) => s.push_str(&format!("[{i}].if.else")),
            Seg::Option(i, k) => s.push_str(&format!("[{i}].choose.options[{k}].actions")),
            Seg::Default(i) => s.push_str(&format!("[{i}].choose.default")),
            Seg::Body(i) => s.push_str(&format!("[{i}].repeat.actions")),
            Seg::Branch(i, k) => s.push_str(&format!("[{i}].parallel[{k}]")),
        }
    }
    s.push_str(&format!("[{index}]"));
    s
}

fn plus(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp::from_millis(t.as_millis().saturating_add(ms))
}

impl Engine {
    /// An engine with no automations, telling time by `clock`.
    pub fn new(clock: Arc<dyn Clock>, settings: Settings) -> Engine {
        let start = clock.now().as_millis();
        Engine {
            clock,
            settings,
            home: BTreeMap::new(),
            automations: BTreeMap::new(),
            index: TriggerIndex::default(),
            scenes: BTreeMap::new(),
            runs: BTreeMap::new(),
            holds: Vec::new(),
            next_run: 1,
            ctx_prefix: format!("r{start:x}"),
            ctx_seq: 0,
            depths: HashMap::new(),
            depth_order: VecDeque::new(),
            outputs: Vec::new(),
            traces: Vec::new(),
            stored: Default::default(),
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ----- what the engine is told -------------------------------------------------------------

    /// The devices as they are now (at start, or after the hub lost events).
    pub fn set_devices(&mut self, devices: Vec<Device>) {
        self.home = devices.into_iter().map(|d| (d.id.clone(), d)).collect();
    }

    /// Run ids start after this one (the store's highest), so traces never share an id.
    pub fn set_last_run_id(&mut self, last: u64) {
        self.next_run = self.next_run.max(last + 1);
    }

    /// The devices the engine knows, with their state.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.home.values()
    }

    /// Adds or replaces an automation. A changed automation's runs are cancelled.
    pub fn upsert(&mut self, automation: Automation, version: u32) {
        let id = automation.id.clone();
        if let Some(old) = self.automations.get(&id) {
            if *old.def == automation && old.version == version {
                return;
            }
            let why = if !automation.enabled && old.def.enabled { Say::TurnedOffMidRun } else { Say::Changed };
            self.cancel_runs(&id, &why);
        }
        let now = self.now();
        let next = self.schedule(&automation, now);
        self.holds.retain(|h| !matches!(&h.owner, Owner::Trigger(a, _) if *a == id));
        self.index.remove(&id);
        self.index.add(&id, &automation);
        self.automations.insert(id.clone(), Entry { def: Arc::new(automation), version, next });
        self.arm_holds_from_state(&id, now, None);
    }

    /// Removes an automation; its runs are cancelled.
    pub fn remove(&mut self, id: &str) -> bool {
        self.cancel_runs(id, &Say::Removed);
        self.holds.retain(|h| !matches!(&h.owner, Owner::Trigger(a, _) if a == id));
        self.index.remove(id);
        self.automations.remove(id).is_some()
    }

    /// Turns an automation on or off (off cancels its runs).
    pub fn set_enabled(&mut self, id: &str, enabled: bool) -> Result<(), EngineError> {
        let entry = self.automations.get(id).ok_or_else(|| EngineError::NoAutomation(id.to_owned()))?;
        let mut def = (*entry.def).clone();
        def.enabled = enabled;
        let version = entry.version;
        self.upsert(def, version);
        Ok(())
    }

    /// The automation and its version.
    pub fn automation(&self, id: &str) -> Option<(&Automation, u32)> {
        self.automations.get(id).map(|e| (&*e.def, e.version))
    }

    /// Adds or replaces a scene.
    pub fn upsert_scene(&mut self, scene: Scene) {
        self.scenes.insert(scene.id.clone(), scene);
    }

    /// Removes a scene.
    pub fn remove_scene(&mut self, id: &str) -> bool {
        self.scenes.remove(id).is_some()
    }

    /// Restores runs saved before a restart (call before [`Engine::start`]). Runs of automations
    /// that changed or are gone are dropped, and their traces say why.
    pub fn restore(&mut self, records: Vec<RunRecord>) {
        let now = self.now();
        for mut run in records {
            self.next_run = self.next_run.max(run.id + 1);
            self.stored.insert(run.id);
            let current = self.automations.get(&run.automation).map(|e| (e.version, e.def.enabled));
            let why = match current {
                None => Some(Say::RemovedWhileDown),
                Some((v, _)) if v != run.version => Some(Say::ChangedWhileDown),
                Some((_, false)) => Some(Say::TurnedOffWhileDown),
                Some(_) => None,
            };
            if let Some(why) = why {
                run.trace.end(now, EndKind::Cancelled, why);
                self.end_run(run);
                continue;
            }
            for t in &mut run.threads {
                if t.state == ThreadState::Calling {
                    // The call's answer was lost with the restart; go on after it.
                    if let Some(top) = t.stack.last_mut() {
                        top.index += 1;
                    }
                    t.state = ThreadState::Ready;
                }
            }
            self.remember_depth(&run.context.id, run.depth, run.chain.clone());
            self.runs.insert(run.id, run);
        }
    }

    /// The hub has started: catches up on time triggers missed since `alive_at` (for automations
    /// that ask to), fires `start` triggers, and goes on with restored runs that are due.
    pub fn start(&mut self, alive_at: Option<Timestamp>) {
        let now = self.now();
        let ids: Vec<String> = self.automations.keys().cloned().collect();
        for id in &ids {
            let Some(entry) = self.automations.get(id) else { continue };
            let def = entry.def.clone();
            if !def.enabled {
                continue;
            }
            if def.catch_up == CatchUp::RunOnce
                && let Some(since) = alive_at
            {
                // Once, for the latest occurrence missed by any of its triggers.
                let missed = def
                    .triggers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, t)| {
                        schedule::missed(&t.kind, &self.settings.zone, self.settings.location, since, now)
                            .map(|at| (i, t, at))
                    })
                    .max_by_key(|(_, _, at)| *at);
                if let Some((i, t, at)) = missed {
                    let fired = Fired {
                        index: Some(i),
                        id: t.id.clone(),
                        kind: "catch_up".into(),
                        at: now,
                        ..Fired::from(Say::CaughtUp { trigger: i, kind: t.kind.name().into(), due: at })
                    };
                    self.fire(id, fired, false);
                    self.outputs.push(Output::Alive(now));
                }
            }
            if let Some(since) = alive_at {
                self.arm_holds_from_state(id, now, Some(since));
            }
            for (i, t) in def.triggers.iter().enumerate() {
                if matches!(t.kind, TriggerKind::Start {}) {
                    let fired = Fired {
                        index: Some(i),
                        id: t.id.clone(),
                        kind: "start".into(),
                        at: now,
                        ..Fired::from(Say::HubStarted)
                    };
                    self.fire(id, fired, false);
                }
            }
        }
        self.tick();
    }

    /// Something happened in the home: the engine's picture is updated and triggers matched.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::DeviceAdded { device } | Event::DeviceUpdated { device } => {
                self.home.insert(device.id.clone(), device.clone());
            }
            Event::DeviceRemoved { device } => {
                self.home.remove(device);
            }
            Event::AreaRemoved { area } => {
                for d in self.home.values_mut().filter(|d| d.area.as_ref() == Some(area)) {
                    d.area = None;
                }
            }
            Event::StateChanged { device, feature, old, new, at, context } => {
                if let Some(d) = self.home.get_mut(device) {
                    d.state.insert(
                        feature.clone(),
                        FeatureState { value: new.clone(), changed_at: *at, reported_at: *at },
                    );
                }
                self.state_changed(device, feature, old.as_ref(), new, *at, context);
            }
            Event::DeviceEvent { device, feature, event, at, context, .. } => {
                self.device_event(device, feature, event, *at, context);
            }
            Event::AvailabilityChanged { device, availability } => {
                let old = self.home.get(device).map(|d| d.availability.state);
                if let Some(d) = self.home.get_mut(device) {
                    d.availability = availability.clone();
                }
                if old != Some(availability.state) {
                    self.availability_changed(device, old, availability.state);
                }
            }
            _ => {}
        }
    }

    /// A message arrived on the broker.
    pub fn mqtt(&mut self, topic: &str, payload: &str) {
        let now = self.now();
        let make = |i: usize, t: &Trigger| Fired {
            index: Some(i),
            id: t.id.clone(),
            kind: "mqtt".into(),
            at: now,
            topic: Some(topic.to_owned()),
            payload: Some(payload.to_owned()),
            ..Fired::from(Say::MqttMessage { topic: topic.to_owned() })
        };
        let matches = |k: &TriggerKind| match k {
            TriggerKind::Mqtt { topic: filter, payload: want } => {
                matching::topic_matches(filter, topic) && want.as_ref().is_none_or(|w| w == payload)
            }
            _ => false,
        };
        self.fire_matching(&matches, &make);
        self.wake_waits(&matches, &|_| Fired {
            kind: "mqtt".into(),
            at: now,
            topic: Some(topic.to_owned()),
            payload: Some(payload.to_owned()),
            ..Fired::from(Say::MqttMessage { topic: topic.to_owned() })
        });
    }

    /// A webhook was called; returns how many automations it started or woke.
    pub fn webhook(&mut self, hook: &str, body: Option<String>) -> usize {
        let now = self.now();
        let matches = |k: &TriggerKind| matches!(k, TriggerKind::Webhook { id } if id == hook);
        let make = |i: usize, t: &Trigger| Fired {
            index: Some(i),
            id: t.id.clone(),
            kind: "webhook".into(),
            at: now,
            body: body.clone(),
            ..Fired::from(Say::WebhookCalled { hook: hook.to_owned() })
        };
        let n = self.fire_matching(&matches, &make);
        let woken = Fired {
            kind: "webhook".into(),
            at: now,
            body: body.clone(),
            ..Fired::from(Say::WebhookCalled { hook: hook.to_owned() })
        };
        n + self.wake_waits(&matches, &|_| woken.clone())
    }

    /// Starts a run now, as if triggered (conditions are checked unless `skip_conditions`).
    pub fn trigger(&mut self, id: &str, by: &str, skip_conditions: bool) -> Result<u64, EngineError> {
        if !self.automations.contains_key(id) {
            return Err(EngineError::NoAutomation(id.to_owned()));
        }
        let fired =
            Fired { kind: "manual".into(), at: self.now(), ..Fired::from(Say::StartedByHand { by: by.to_owned() }) };
        Ok(self.start_run(id, fired, skip_conditions, true).unwrap_or(0))
    }

    /// Time has passed: fires due time triggers and `for` holds, and wakes runs whose delay or
    /// wait is over.
    pub fn tick(&mut self) {
        let now = self.now();
        let mut fired_any = false;
        // Time triggers.
        let due: Vec<(String, usize, Timestamp)> = self
            .automations
            .iter()
            .flat_map(|(id, e)| {
                e.next.iter().enumerate().filter_map(move |(i, n)| n.filter(|t| *t <= now).map(|t| (id.clone(), i, t)))
            })
            .collect();
        for (id, i, at) in due {
            let Some(entry) = self.automations.get_mut(&id) else { continue };
            let def = entry.def.clone();
            let t = &def.triggers[i];
            entry.next[i] = schedule::next_fire(&t.kind, &self.settings.zone, self.settings.location, now);
            let say = match &t.kind {
                TriggerKind::Time { at: tod, .. } => Say::TimeIs { time: tod.to_string() },
                TriggerKind::Interval { every } => Say::Every { every: *every },
                TriggerKind::Sun { event, offset_secs } => {
                    Say::SunEvent { event: format!("{event:?}").to_lowercase(), offset_secs: *offset_secs }
                }
                other => Say::TriggerKind { kind: other.name().to_owned() },
            };
            let fired = Fired { index: Some(i), id: t.id.clone(), kind: t.kind.name().into(), at, ..Fired::from(say) };
            self.fire(&id, fired, false);
            fired_any = true;
        }
        if fired_any {
            self.outputs.push(Output::Alive(now));
        }
        // Holds (`for`).
        let (due, keep): (Vec<Hold>, Vec<Hold>) =
            std::mem::take(&mut self.holds).into_iter().partition(|h| h.deadline <= now);
        self.holds = keep;
        for h in due {
            match h.owner {
                Owner::Trigger(id, _) => self.fire(&id, h.fired, false),
                Owner::Wait(run, thread) => self.resume_wait(run, thread, h.fired),
            }
        }
        // Delays, waits' timeouts and waits' time triggers.
        let ids: Vec<u64> = self.runs.keys().copied().collect();
        for id in ids {
            let mut woke = false;
            let mut timed_out = Vec::new();
            let mut time_fired = Vec::new();
            if let Some(run) = self.runs.get_mut(&id) {
                for (ti, t) in run.threads.iter_mut().enumerate() {
                    match &t.state {
                        ThreadState::Sleeping { until } if *until <= now => {
                            t.state = ThreadState::Ready;
                            woke = true;
                        }
                        ThreadState::Waiting { times, .. } if times.iter().flatten().any(|at| *at <= now) => {
                            time_fired.push(ti);
                        }
                        ThreadState::Waiting { until: Some(until), .. } if *until <= now => timed_out.push(ti),
                        _ => {}
                    }
                }
            }
            for ti in time_fired {
                let fired = Fired { kind: "time".into(), at: now, ..Fired::from(Say::TimeCame) };
                self.resume_wait(id, ti, fired);
            }
            for ti in timed_out {
                self.wait_timed_out(id, ti);
            }
            if woke {
                self.advance(id);
            }
        }
    }

    /// When [`Engine::tick`] next has something to do.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        let schedules = self.automations.values().flat_map(|e| e.next.iter().flatten().copied());
        let holds = self.holds.iter().map(|h| h.deadline);
        let runs = self.runs.values().flat_map(|r| r.threads.iter()).flat_map(|t| match &t.state {
            ThreadState::Sleeping { until } => vec![*until],
            ThreadState::Waiting { until, times } => until.iter().chain(times.iter().flatten()).copied().collect(),
            _ => Vec::new(),
        });
        schedules.chain(holds).chain(runs).min()
    }

    /// Reports how a command or publish went (only failures need reporting).
    pub fn report(&mut self, step: StepRef, result: Result<(), String>) {
        let Some(i) = step.step else { return };
        let Err(e) = result else { return };
        let trace = match self.runs.get_mut(&step.run) {
            Some(r) => &mut r.trace,
            None => match self.traces.iter_mut().find(|t| t.run == step.run) {
                Some(t) => t,
                None => return,
            },
        };
        if let Some(s) = trace.steps.get_mut(i) {
            s.failed(&e);
        }
    }

    /// A webhook call the engine asked for has answered.
    pub fn call_done(&mut self, run: u64, thread: usize, result: Result<String, String>) {
        let now = self.now();
        let Some(r) = self.runs.get_mut(&run) else { return };
        let Some(t) = r.threads.get_mut(thread) else { return };
        if t.state != ThreadState::Calling {
            return;
        }
        let path = t.stack.last().map(|f| path_text(&f.block, f.index)).unwrap_or_default();
        if let Some(top) = t.stack.last_mut() {
            top.index += 1;
        }
        t.state = ThreadState::Ready;
        let (ok, say) = match result {
            Ok(status) => (true, Say::Answered { status }),
            Err(error) => (false, Say::CallFailed { error }),
        };
        r.trace.step(Step::new(path, "webhook (answer)", now, ok, say));
        self.advance(run);
    }

    /// What the hub must do now.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// Traces of runs that ended (take after carrying out [`Engine::take_outputs`] and reporting).
    pub fn take_traces(&mut self) -> Vec<Trace> {
        std::mem::take(&mut self.traces)
    }

    /// The runs going now.
    pub fn runs(&self) -> Vec<RunInfo> {
        self.runs
            .values()
            .map(|r| RunInfo {
                run: r.id,
                automation: r.automation.clone(),
                started_at: r.trace.started_at,
                queued: r.queued,
                threads: r.threads.iter().map(|t| t.state.clone()).collect(),
            })
            .collect()
    }

    /// MQTT topic filters the engine's triggers and waits listen to.
    pub fn mqtt_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .automations
            .values()
            .filter(|e| e.def.enabled)
            .flat_map(|e| e.def.triggers.iter().map(|t| &t.kind).chain(wait_triggers(&e.def.actions)))
            .filter_map(|k| match k {
                TriggerKind::Mqtt { topic, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Checks the automation's conditions now and lists what it would do, doing nothing.
    pub fn dry_run(&self, id: &str) -> Result<DryRun, EngineError> {
        let entry = self.automations.get(id).ok_or_else(|| EngineError::NoAutomation(id.to_owned()))?;
        let fired = Fired { kind: "manual".into(), at: self.now(), ..Fired::from(Say::DryRun) };
        let mut conditions = Vec::new();
        let would_run = self.check_all(&entry.def.conditions, "conditions", &fired, &mut conditions);
        let mut plan = Vec::new();
        self.describe(&entry.def.actions, &fired, 0, &mut plan);
        let actions = plan.iter().map(ToString::to_string).collect();
        Ok(DryRun { would_run, conditions, actions, plan })
    }

    // ----- triggers ----------------------------------------------------------------------------

    fn schedule(&self, a: &Automation, now: Timestamp) -> Vec<Option<Timestamp>> {
        a.triggers
            .iter()
            .map(|t| {
                if a.enabled {
                    schedule::next_fire(&t.kind, &self.settings.zone, self.settings.location, now)
                } else {
                    None
                }
            })
            .collect()
    }

    /// After a (re)load, `for` holds whose condition is already true start from when the value
    /// last changed: a light on for ten minutes before a restart still turns off on time.
    fn arm_holds_from_state(&mut self, id: &str, now: Timestamp, missed_since: Option<Timestamp>) {
        let Some(entry) = self.automations.get(id) else { return };
        if !entry.def.enabled {
            return;
        }
        let def = entry.def.clone();
        for (i, t) in def.triggers.iter().enumerate() {
            let TriggerKind::State { target, feature, from, to, above, below, hold: Some(hold) } = &t.kind else {
                continue;
            };
            if from.is_some() {
                continue;
            }
            let test = StateTest { from: None, to: to.as_ref(), above: *above, below: *below };
            for d in resolve(&self.home, target) {
                let Some(st) = d.state.get(feature) else { continue };
                if !test.holds(&st.value) {
                    continue;
                }
                let due = plus(st.changed_at, hold.as_millis());
                // A countdown still going is picked up where it is; one that ran out while the
                // hub was down fires now; one that ran out while the hub was up has fired then.
                let deadline = match missed_since {
                    None if due > now => due,
                    Some(since) if due <= now && due > since => now,
                    _ => continue,
                };
                let fired = Fired {
                    index: Some(i),
                    id: t.id.clone(),
                    kind: "state".into(),
                    at: deadline,
                    device: Some(d.id.clone()),
                    feature: Some(feature.clone()),
                    new: Some(st.value.clone()),
                    ..Fired::from(Say::StateHeld {
                        device: d.id.to_string(),
                        feature: feature.clone(),
                        value: st.value.clone(),
                        hold: *hold,
                    })
                };
                let owner = Owner::Trigger(id.to_owned(), i);
                if !self.holds.iter().any(|h| h.owner == owner && h.device == d.id) {
                    self.holds.push(Hold { owner, device: d.id.clone(), deadline, fired });
                }
            }
        }
    }

    /// Fires every enabled automation trigger `matches` accepts; returns how many runs started.
    fn fire_matching(
        &mut self,
        matches: &dyn Fn(&TriggerKind) -> bool,
        make: &dyn Fn(usize, &Trigger) -> Fired,
    ) -> usize {
        let hits: Vec<(String, Fired)> = self
            .automations
            .iter()
            .filter(|(_, e)| e.def.enabled)
            .flat_map(|(id, e)| {
                e.def
                    .triggers
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| matches(&t.kind))
                    .map(|(i, t)| (id.clone(), make(i, t)))
            })
            .collect();
        let n = hits.len();
        for (id, fired) in hits {
            self.fire(&id, fired, false);
        }
        n
    }

    /// Ends the waits whose triggers `matches` accepts; returns how many.
    fn wake_waits(&mut self, matches: &dyn Fn(&TriggerKind) -> bool, make: &dyn Fn(&TriggerKind) -> Fired) -> usize {
        let mut hits = Vec::new();
        for (id, ti, def) in self.waiting() {
            if let Some(ActionKind::Wait { triggers, .. }) = current_action_at(&def, &self.runs, id, ti)
                && let Some(k) = triggers.iter().find(|k| matches(k))
            {
                hits.push((id, ti, make(k)));
            }
        }
        let n = hits.len();
        for (run, ti, fired) in hits {
            self.resume_wait(run, ti, fired);
        }
        n
    }

    fn state_changed(
        &mut self,
        device: &DeviceId,
        feature: &str,
        old: Option<&hearth_sdk::Value>,
        new: &hearth_sdk::Value,
        at: Timestamp,
        context: &Context,
    ) {
        let Some(d) = self.home.get(device) else { return };
        let describe = |i: Option<usize>, id: Option<String>, held: Option<crate::duration::Duration>| Fired {
            index: i,
            id,
            kind: "state".into(),
            at,
            device: Some(device.clone()),
            feature: Some(feature.to_owned()),
            old: old.cloned(),
            new: Some(new.clone()),
            context: Some(context.clone()),
            ..Fired::from(match held {
                None => Say::StateChanged {
                    device: device.to_string(),
                    feature: feature.to_owned(),
                    old: old.cloned(),
                    new: new.clone(),
                },
                Some(hold) => {
                    Say::StateStayed { device: device.to_string(), feature: feature.to_owned(), new: new.clone(), hold }
                }
            })
        };
        // Automations' triggers.
        let mut fire = Vec::new();
        let mut arm = Vec::new();
        let mut cancel = Vec::new();
        for (id, i) in self.index.candidates(device) {
            let Some(e) = self.automations.get(&id).filter(|e| e.def.enabled) else { continue };
            {
                let Some(t) = e.def.triggers.get(i) else { continue };
                let TriggerKind::State { target, feature: f, from, to, above, below, hold } = &t.kind else { continue };
                if f != feature || !matching::in_target(d, target) {
                    continue;
                }
                let test = StateTest { from: from.as_ref(), to: to.as_ref(), above: *above, below: *below };
                let owner = Owner::Trigger(id.clone(), i);
                match hold {
                    None if test.fires(old, new) => fire.push((id.clone(), describe(Some(i), t.id.clone(), None))),
                    None => {}
                    Some(h) if test.fires(old, new) => {
                        if test.any_change() {
                            // "Changed, then stayed unchanged for": every change starts over.
                            cancel.push(owner.clone());
                        }
                        let fired = describe(Some(i), t.id.clone(), Some(*h));
                        arm.push((owner, plus(at, h.as_millis()), fired));
                    }
                    Some(_) if !test.holds(new) => cancel.push(owner),
                    Some(_) => {}
                }
            }
        }
        // Waits' triggers.
        let mut wake = Vec::new();
        for (rid, ti, def) in self.waiting() {
            {
                let Some(ActionKind::Wait { triggers, .. }) = current_action_at(&def, &self.runs, rid, ti) else {
                    continue;
                };
                for k in triggers {
                    let TriggerKind::State { target, feature: f, from, to, above, below, hold } = k else { continue };
                    if f != feature || !matching::in_target(d, target) {
                        continue;
                    }
                    let test = StateTest { from: from.as_ref(), to: to.as_ref(), above: *above, below: *below };
                    let owner = Owner::Wait(rid, ti);
                    match hold {
                        None if test.fires(old, new) => wake.push((rid, ti, describe(None, None, None))),
                        Some(h) if test.fires(old, new) => {
                            if test.any_change() {
                                cancel.push(owner.clone());
                            }
                            arm.push((owner, plus(at, h.as_millis()), describe(None, None, Some(*h))))
                        }
                        Some(_) if !test.holds(new) => cancel.push(owner),
                        _ => {}
                    }
                }
            }
        }
        self.holds.retain(|h| !(h.device == *device && cancel.contains(&h.owner)));
        for (owner, deadline, fired) in arm {
            if !self.holds.iter().any(|h| h.owner == owner && h.device == *device) {
                self.holds.push(Hold { owner, device: device.clone(), deadline, fired });
            }
        }
        for (id, fired) in fire {
            self.fire(&id, fired, false);
        }
        for (run, ti, fired) in wake {
            self.resume_wait(run, ti, fired);
        }
    }

    fn device_event(&mut self, device: &DeviceId, feature: &str, event: &str, at: Timestamp, context: &Context) {
        let Some(d) = self.home.get(device).cloned() else { return };
        let matches = |k: &TriggerKind| match k {
            TriggerKind::Event { target, feature: f, events } => {
                f == feature
                    && matching::in_target(&d, target)
                    && (events.is_empty() || events.iter().any(|e| e == event))
            }
            _ => false,
        };
        let make = |i: Option<usize>, id: Option<String>| Fired {
            index: i,
            id,
            kind: "event".into(),
            at,
            device: Some(device.clone()),
            feature: Some(feature.to_owned()),
            event: Some(event.to_owned()),
            context: Some(context.clone()),
            ..Fired::from(Say::DeviceEvent {
                device: device.to_string(),
                feature: feature.to_owned(),
                event: event.to_owned(),
            })
        };
        let hits: Vec<(String, Fired)> = self
            .index
            .candidates(device)
            .into_iter()
            .filter_map(|(id, i)| {
                let e = self.automations.get(&id).filter(|e| e.def.enabled)?;
                let t = e.def.triggers.get(i).filter(|t| matches(&t.kind))?;
                Some((id, make(Some(i), t.id.clone())))
            })
            .collect();
        for (id, fired) in hits {
            self.fire(&id, fired, false);
        }
        self.wake_waits(&matches, &|_| make(None, None));
    }

    fn availability_changed(&mut self, device: &DeviceId, old: Option<AvailabilityState>, new: AvailabilityState) {
        let Some(d) = self.home.get(device).cloned() else { return };
        let now = self.now();
        let describe = |i: Option<usize>, id: Option<String>| Fired {
            index: i,
            id,
            kind: "availability".into(),
            at: now,
            device: Some(device.clone()),
            ..Fired::from(Say::WentOnOff { device: device.to_string(), state: format!("{new:?}").to_lowercase() })
        };
        let _ = old;
        let mut fire = Vec::new();
        let mut arm = Vec::new();
        let mut cancel = Vec::new();
        for (id, e) in self.automations.iter().filter(|(_, e)| e.def.enabled) {
            for (i, t) in e.def.triggers.iter().enumerate() {
                let TriggerKind::Availability { target, to, hold } = &t.kind else { continue };
                if !matching::in_target(&d, target) {
                    continue;
                }
                let owner = Owner::Trigger(id.clone(), i);
                let ok = to.is_none_or(|to| to == new);
                match (ok, hold) {
                    (true, None) => fire.push((id.clone(), describe(Some(i), t.id.clone()))),
                    (true, Some(h)) => arm.push((owner, plus(now, h.as_millis()), describe(Some(i), t.id.clone()))),
                    (false, _) => cancel.push(owner),
                }
            }
        }
        // Waits' availability triggers with `for` count down like the automations' own.
        for (rid, ti, def) in self.waiting() {
            {
                let Some(ActionKind::Wait { triggers, .. }) = current_action_at(&def, &self.runs, rid, ti) else {
                    continue;
                };
                for k in triggers {
                    let TriggerKind::Availability { target, to, hold: Some(h) } = k else { continue };
                    if !matching::in_target(&d, target) {
                        continue;
                    }
                    let owner = Owner::Wait(rid, ti);
                    if to.is_none_or(|to| to == new) {
                        arm.push((owner, plus(now, h.as_millis()), describe(None, None)));
                    } else {
                        cancel.push(owner);
                    }
                }
            }
        }
        self.holds.retain(|h| !(h.device == *device && cancel.contains(&h.owner)));
        for (owner, deadline, fired) in arm {
            self.holds.retain(|h| !(h.owner == owner && h.device == *device));
            self.holds.push(Hold { owner, device: device.clone(), deadline, fired });
        }
        for (id, fired) in fire {
            self.fire(&id, fired, false);
        }
        let matches = |k: &TriggerKind| match k {
            TriggerKind::Availability { target, to, hold: None } => {
                matching::in_target(&d, target) && to.is_none_or(|to| to == new)
            }
            _ => false,
        };
        self.wake_waits(&matches, &|_| describe(None, None));
    }

    // ----- runs --------------------------------------------------------------------------------

    /// Every thread that waits in a `wait`: its run, its index and the run's automation.
    fn waiting(&self) -> Vec<(u64, usize, Arc<Automation>)> {
        let mut out = Vec::new();
        for (id, run) in &self.runs {
            let Some(entry) = self.automations.get(&run.automation) else { continue };
            for (ti, t) in run.threads.iter().enumerate() {
                if matches!(t.state, ThreadState::Waiting { .. }) {
                    out.push((*id, ti, entry.def.clone()));
                }
            }
        }
        out
    }

    fn next_context(&mut self, automation: &str, parent: Option<&Context>) -> Context {
        self.ctx_seq += 1;
        let id = format!("{}-{:x}", self.ctx_prefix, self.ctx_seq);
        let origin = Origin::Automation { id: automation.to_owned() };
        match parent {
            Some(p) => Context::child_of(id, origin, p),
            None => Context::new(id, origin),
        }
    }

    fn remember_depth(&mut self, context: &str, depth: u32, chain: Vec<String>) {
        if self.depths.insert(context.to_owned(), (depth, chain)).is_none() {
            self.depth_order.push_back(context.to_owned());
            if self.depth_order.len() > DEPTHS_KEPT
                && let Some(old) = self.depth_order.pop_front()
            {
                self.depths.remove(&old);
            }
        }
    }

    fn fire(&mut self, id: &str, fired: Fired, skip_conditions: bool) {
        self.start_run(id, fired, skip_conditions, false);
    }

    /// Starts (or queues, ignores, drops) a run; returns its id when one was made.
    fn start_run(&mut self, id: &str, fired: Fired, skip_conditions: bool, by_hand: bool) -> Option<u64> {
        let entry = self.automations.get(id)?;
        if !entry.def.enabled && !by_hand {
            return None;
        }
        let def = entry.def.clone();
        let version = entry.version;
        let now = self.now();
        let (depth, mut chain) = fired
            .context
            .as_ref()
            .and_then(|c| self.depths.get(&c.id).cloned())
            .map_or((1, Vec::new()), |(d, c)| (d + 1, c));
        chain.push(id.to_owned());
        let context = self.next_context(id, fired.context.as_ref());
        let run_id = self.next_run;
        self.next_run += 1;
        let trace = Trace {
            run: run_id,
            automation: id.to_owned(),
            version,
            started_at: now,
            trigger: fired.clone(),
            context: context.id.clone(),
            conditions: Vec::new(),
            steps: Vec::new(),
            steps_dropped: 0,
            ended_at: None,
            ending: None,
        };
        let mut run = RunRecord {
            id: run_id,
            automation: id.to_owned(),
            version,
            fired,
            context,
            depth,
            chain,
            queued: false,
            threads: vec![Thread {
                stack: vec![Frame { block: Vec::new(), index: 0, round: 0 }],
                state: ThreadState::Ready,
                parent: None,
            }],
            trace,
        };
        if depth > self.settings.max_depth {
            let say = Say::Loop { chain: run.chain.join(" → "), depth, max: self.settings.max_depth };
            run.trace.end(now, EndKind::Loop, say);
            self.traces.push(run.trace);
            return Some(run_id);
        }
        if !skip_conditions {
            let mut results = Vec::new();
            let ok = self.check_all(&def.conditions, "conditions", &run.fired, &mut results);
            run.trace.conditions = results;
            if !ok {
                run.trace.end(now, EndKind::ConditionsFailed, Say::ConditionsFailed);
                self.traces.push(run.trace);
                return Some(run_id);
            }
        }
        let active = self.runs.values().filter(|r| r.automation == id && !r.queued).count();
        let queued = self.runs.values().filter(|r| r.automation == id && r.queued).count();
        let max = def.max_runs as usize;
        match def.mode {
            Mode::Single if active > 0 => {
                run.trace.end(now, EndKind::Ignored, Say::IgnoredSingle);
                self.traces.push(run.trace);
                return Some(run_id);
            }
            Mode::Restart if active > 0 => {
                self.cancel_runs_with(id, EndKind::Restarted, &Say::Restarted);
            }
            Mode::Queued if active + queued >= max => {
                run.trace.end(now, EndKind::Dropped, Say::DroppedQueued { max });
                self.traces.push(run.trace);
                return Some(run_id);
            }
            Mode::Queued if active > 0 => {
                run.queued = true;
                self.remember_depth(&run.context.id, depth, run.chain.clone());
                self.save(&run);
                self.runs.insert(run_id, run);
                return Some(run_id);
            }
            Mode::Parallel if active >= max => {
                run.trace.end(now, EndKind::Dropped, Say::DroppedParallel { max });
                self.traces.push(run.trace);
                return Some(run_id);
            }
            _ => {}
        }
        self.remember_depth(&run.context.id, depth, run.chain.clone());
        self.runs.insert(run_id, run);
        self.advance(run_id);
        Some(run_id)
    }

    fn save(&mut self, run: &RunRecord) {
        self.stored.insert(run.id);
        self.outputs.push(Output::SaveRun(Box::new(run.clone())));
    }

    fn cancel_runs(&mut self, id: &str, why: &Say) {
        self.cancel_runs_with(id, EndKind::Cancelled, why);
    }

    fn cancel_runs_with(&mut self, id: &str, kind: EndKind, why: &Say) {
        let now = self.now();
        // Take them all out first, so ending one does not start a queued one.
        let ids: Vec<u64> = self.runs.values().filter(|r| r.automation == id).map(|r| r.id).collect();
        let runs: Vec<RunRecord> = ids.iter().filter_map(|rid| self.runs.remove(rid)).collect();
        for mut run in runs {
            run.trace.end(now, kind, why.clone());
            self.end_run(run);
        }
    }

    fn end_run(&mut self, run: RunRecord) {
        if self.stored.remove(&run.id) {
            self.outputs.push(Output::DropRun(run.id));
        }
        self.holds.retain(|h| !matches!(h.owner, Owner::Wait(r, _) if r == run.id));
        let automation = run.automation.clone();
        self.traces.push(run.trace);
        // The next queued run of the automation, if any, goes now.
        let next = self.runs.values().filter(|r| r.automation == automation && r.queued).map(|r| r.id).min();
        let active = self.runs.values().any(|r| r.automation == automation && !r.queued);
        if let Some(next) = next
            && !active
        {
            if let Some(r) = self.runs.get_mut(&next) {
                r.queued = false;
            }
            self.advance(next);
        }
    }

    fn resume_wait(&mut self, run: u64, thread: usize, fired: Fired) {
        let now = self.now();
        let Some(r) = self.runs.get_mut(&run) else { return };
        let Some(t) = r.threads.get_mut(thread) else { return };
        if !matches!(t.state, ThreadState::Waiting { .. }) {
            return;
        }
        let path = t.stack.last().map(|f| path_text(&f.block, f.index)).unwrap_or_default();
        if let Some(top) = t.stack.last_mut() {
            top.index += 1;
        }
        t.state = ThreadState::Ready;
        let why = fired.say.clone().unwrap_or(Say::TriggerKind { kind: fired.kind.clone() });
        r.trace.step(Step::new(path, "wait (ended)", now, true, Say::WaitEnded { why: Box::new(why) }));
        self.holds.retain(|h| h.owner != Owner::Wait(run, thread));
        self.advance(run);
    }

    fn wait_timed_out(&mut self, run: u64, thread: usize) {
        let now = self.now();
        let Some(entry_def) =
            self.runs.get(&run).and_then(|r| self.automations.get(&r.automation)).map(|e| e.def.clone())
        else {
            return;
        };
        let Some(r) = self.runs.get_mut(&run) else { return };
        let Some(t) = r.threads.get_mut(thread) else { return };
        let go_on = matches!(
            current_action(&entry_def, t).map(|a| &a.kind),
            Some(ActionKind::Wait { continue_on_timeout: true, .. })
        );
        let path = t.stack.last().map(|f| path_text(&f.block, f.index)).unwrap_or_default();
        self.holds.retain(|h| h.owner != Owner::Wait(run, thread));
        if go_on {
            if let Some(top) = t.stack.last_mut() {
                top.index += 1;
            }
            t.state = ThreadState::Ready;
            r.trace.step(Step::new(path, "wait (timeout)", now, true, Say::WaitTimedOutGoingOn));
            self.advance(run);
        } else if let Some(mut r) = self.runs.remove(&run) {
            r.trace.end(now, EndKind::Timeout, Say::WaitTimedOut { path });
            self.end_run(r);
        }
    }

    /// Steps a run until every thread waits or is done; saves or ends it.
    fn advance(&mut self, id: u64) {
        let Some(mut run) = self.runs.remove(&id) else { return };
        if run.queued {
            self.runs.insert(id, run);
            return;
        }
        let Some(def) = self.automations.get(&run.automation).map(|e| e.def.clone()) else {
            let now = self.now();
            run.trace.end(now, EndKind::Cancelled, Say::Removed);
            self.end_run(run);
            return;
        };
        let mut budget = MAX_STEPS_WITHOUT_WAIT;
        let mut ended = false;
        while let Some(ti) = run.threads.iter().position(|t| t.state == ThreadState::Ready) {
            if budget == 0 {
                let now = self.now();
                run.trace.end(now, EndKind::Error, Say::TooManySteps { max: MAX_STEPS_WITHOUT_WAIT });
                ended = true;
                break;
            }
            budget -= 1;
            if self.step(&mut run, ti, &def) {
                ended = true;
                break;
            }
        }
        let main_done = run.threads.first().is_none_or(|t| t.state == ThreadState::Done);
        if ended || main_done {
            let now = self.now();
            run.trace.end(now, EndKind::Finished, Say::EveryActionRan);
            self.end_run(run);
        } else {
            self.save(&run);
            self.runs.insert(id, run);
        }
    }

    /// One step of one thread. Returns true when the whole run must end (a `stop`, a timeout).
    fn step(&mut self, run: &mut RunRecord, ti: usize, def: &Automation) -> bool {
        let now = self.now();
        let Some(frame) = run.threads[ti].stack.last().cloned() else {
            run.threads[ti].state = ThreadState::Done;
            return false;
        };
        let Some(list) = block(&def.actions, &frame.block) else {
            run.trace.end(now, EndKind::Error, Say::PositionGone);
            return true;
        };
        if frame.index >= list.len() {
            self.pop_frame(run, ti, def);
            return false;
        }
        let action = &list[frame.index];
        let path = path_text(&frame.block, frame.index);
        let step = |run: &mut RunRecord, ok: bool, say: Say| {
            let mut s = Step::new(path.clone(), action.kind.name(), now, ok, say);
            s.alias = action.alias.clone();
            run.trace.step(s)
        };
        let thread = &mut run.threads[ti];
        let advance = |thread: &mut Thread| {
            if let Some(top) = thread.stack.last_mut() {
                top.index += 1;
            }
        };
        match &action.kind {
            ActionKind::Set { target, values, toggle, transition } => {
                advance(thread);
                let devices: Vec<Device> = resolve(&self.home, target).into_iter().cloned().collect();
                let explicit = !target.devices.is_empty();
                let mut sent = Vec::new();
                let mut commands = Vec::new();
                for d in &devices {
                    let mut req = CommandRequest { transition: *transition, ..Default::default() };
                    for (k, v) in values {
                        if explicit || d.feature(k).is_some() {
                            req.set.insert(k.clone(), v.clone());
                        }
                    }
                    for k in toggle {
                        if explicit || d.feature(k).is_some() {
                            req.toggle.push(k.clone());
                        }
                    }
                    if req.set.is_empty() && req.toggle.is_empty() {
                        continue;
                    }
                    sent.push(d.id.to_string());
                    commands.push((d.id.clone(), req));
                }
                let missing: Vec<String> =
                    target.devices.iter().filter(|id| !self.home.contains_key(*id)).map(ToString::to_string).collect();
                let ok = missing.is_empty();
                let say = match (sent.is_empty(), ok) {
                    (true, true) => Say::NoDeviceMatched,
                    (true, false) => Say::NoSuchDevice { missing },
                    (false, true) => Say::Sent { devices: sent },
                    (false, false) => Say::SentButMissing { devices: sent, missing },
                };
                let idx = step(run, ok, say);
                for (device, request) in commands {
                    self.outputs.push(Output::Command {
                        device,
                        request,
                        context: run.context.clone(),
                        step: StepRef { run: run.id, step: idx },
                    });
                }
            }
            ActionKind::Scene { id, transition } => {
                advance(thread);
                let Some(scene) = self.scenes.get(id).cloned() else {
                    step(run, false, Say::NoScene { scene: id.clone() });
                    run.trace.end(now, EndKind::Error, Say::SceneGone { path: path.clone(), scene: id.clone() });
                    return true;
                };
                let names: Vec<String> = scene.devices.keys().map(ToString::to_string).collect();
                let idx = step(run, true, Say::SceneApplied { name: scene.name.clone(), devices: names });
                for (device, values) in scene.devices {
                    let request = CommandRequest { set: values, transition: *transition, ..Default::default() };
                    self.outputs.push(Output::Command {
                        device,
                        request,
                        context: run.context.clone(),
                        step: StepRef { run: run.id, step: idx },
                    });
                }
            }
            ActionKind::Delay(d) => {
                advance(thread);
                let until = plus(now, d.as_millis());
                thread.state = ThreadState::Sleeping { until };
                step(run, true, Say::Waiting { delay: *d, until });
            }
            ActionKind::Wait { triggers, timeout, .. } => {
                let until = timeout.map(|t| plus(now, t.as_millis()));
                let times = triggers
                    .iter()
                    .map(|k| schedule::next_fire(k, &self.settings.zone, self.settings.location, now))
                    .collect();
                thread.state = ThreadState::Waiting { until, times };
                let kinds: Vec<String> = triggers.iter().map(|k| k.name().to_owned()).collect();
                step(
                    run,
                    true,
                    match until {
                        Some(until) => Say::WaitingForUntil { kinds, until },
                        None => Say::WaitingFor { kinds },
                    },
                );
            }
            ActionKind::If { conditions, then, otherwise } => {
                let mut results = Vec::new();
                let ok = self.check_all(conditions, &format!("{path}.if.conditions"), &run.fired, &mut results);
                let thread = &mut run.threads[ti];
                let (seg, list, branch) = if ok {
                    (Seg::Then(frame.index), then, Say::TookThen)
                } else {
                    (Seg::Else(frame.index), otherwise, Say::TookElse)
                };
                if list.is_empty() {
                    advance(thread);
                } else {
                    thread.stack.push(Frame { block: with(&frame.block, seg), index: 0, round: 0 });
                }
                run.trace.conditions.extend(results);
                step(run, true, branch);
            }
            ActionKind::Choose { options, default } => {
                let mut taken = None;
                let mut all = Vec::new();
                for (k, opt) in options.iter().enumerate() {
                    let mut results = Vec::new();
                    let ok = self.check_all(
                        &opt.conditions,
                        &format!("{path}.choose.options[{k}].conditions"),
                        &run.fired,
                        &mut results,
                    );
                    all.extend(results);
                    if ok {
                        taken = Some(k);
                        break;
                    }
                }
                let thread = &mut run.threads[ti];
                let outcome = match taken {
                    Some(k) => {
                        thread.stack.push(Frame {
                            block: with(&frame.block, Seg::Option(frame.index, k)),
                            index: 0,
                            round: 0,
                        });
                        Say::TookOption { option: k }
                    }
                    None if !default.is_empty() => {
                        thread.stack.push(Frame {
                            block: with(&frame.block, Seg::Default(frame.index)),
                            index: 0,
                            round: 0,
                        });
                        Say::TookDefault
                    }
                    None => {
                        advance(thread);
                        Say::NoOptionHeld
                    }
                };
                run.trace.conditions.extend(all);
                step(run, true, outcome);
            }
            ActionKind::Repeat { count, while_all, actions, .. } => {
                let mut results = Vec::new();
                let go = count.is_none_or(|c| c > 0)
                    && !actions.is_empty()
                    && self.check_all(while_all, &format!("{path}.repeat.while"), &run.fired, &mut results);
                let thread = &mut run.threads[ti];
                if go {
                    thread.stack.push(Frame { block: with(&frame.block, Seg::Body(frame.index)), index: 0, round: 0 });
                } else {
                    advance(thread);
                }
                step(run, true, if go { Say::RoundOne } else { Say::NothingToRepeat });
            }
            ActionKind::Parallel(branches) => {
                let mut children = Vec::new();
                let base = run.threads.len();
                for (k, b) in branches.iter().enumerate() {
                    if b.is_empty() {
                        continue;
                    }
                    children.push(base + children.len());
                    run.threads.push(Thread {
                        stack: vec![Frame {
                            block: with(&frame.block, Seg::Branch(frame.index, k)),
                            index: 0,
                            round: 0,
                        }],
                        state: ThreadState::Ready,
                        parent: Some(ti),
                    });
                }
                let n = children.len();
                if children.is_empty() {
                    advance(&mut run.threads[ti]);
                } else {
                    run.threads[ti].state = ThreadState::Joining { children };
                }
                step(run, true, Say::StartedBranches { count: n });
            }
            ActionKind::Mqtt { topic, payload, retain } => {
                advance(thread);
                let topic = matching::render(topic, &run.fired);
                let payload = matching::render(payload, &run.fired);
                let idx = step(run, true, Say::Published { topic: topic.clone() });
                self.outputs.push(Output::Publish {
                    topic,
                    payload,
                    retain: *retain,
                    step: StepRef { run: run.id, step: idx },
                });
            }
            ActionKind::Webhook { url, method, body } => {
                thread.state = ThreadState::Calling;
                let method = method.clone().unwrap_or_else(|| "POST".into()).to_uppercase();
                let body = body.as_ref().map(|b| matching::render(b, &run.fired));
                step(run, true, Say::Calling { method: method.clone(), url: url.clone() });
                self.outputs.push(Output::Call { run: run.id, thread: ti, method, url: url.clone(), body });
            }
            ActionKind::Notify { message, title } => {
                advance(thread);
                let message = matching::render(message, &run.fired);
                let title = title.as_ref().map(|t| matching::render(t, &run.fired));
                step(run, true, Say::Notified { message: message.clone() });
                self.outputs.push(Output::Notify { context: run.context.clone(), title, message });
            }
            ActionKind::Enable(other) | ActionKind::Disable(other) => {
                advance(thread);
                let enabled = matches!(action.kind, ActionKind::Enable(_));
                let said = |automation: String| {
                    if enabled { Say::TurnedOn { automation } } else { Say::TurnedOff { automation } }
                };
                if other == &run.automation && !enabled {
                    // Turning itself off ends this run too, once the trace says so.
                    step(run, true, said(other.clone()));
                    run.trace.end(now, EndKind::Stopped, Say::TurnedItselfOff);
                    let _ = self.set_enabled(other, false);
                    self.outputs.push(Output::SetEnabled { automation: other.clone(), enabled });
                    return true;
                }
                match self.set_enabled(other, enabled) {
                    Ok(()) => {
                        self.outputs.push(Output::SetEnabled { automation: other.clone(), enabled });
                        step(run, true, said(other.clone()));
                    }
                    Err(EngineError::NoAutomation(automation)) => {
                        step(run, false, Say::NoAutomation { automation });
                    }
                }
            }
            ActionKind::Stop { reason } => {
                let (said, why) = match reason {
                    Some(reason) => {
                        (Say::StoppedBecause { reason: reason.clone() }, Say::StopReason { reason: reason.clone() })
                    }
                    None => (Say::StoppedByAction, Say::StopAction),
                };
                step(run, true, said);
                run.trace.end(now, EndKind::Stopped, why);
                return true;
            }
        }
        false
    }

    /// The end of a list of actions: back to the action that opened it.
    fn pop_frame(&mut self, run: &mut RunRecord, ti: usize, def: &Automation) {
        let thread = &mut run.threads[ti];
        thread.stack.pop();
        let Some(parent) = thread.stack.last().cloned() else {
            thread.state = ThreadState::Done;
            if let Some(p) = thread.parent
                && let ThreadState::Joining { children } = &run.threads[p].state
                && children.iter().all(|c| run.threads[*c].state == ThreadState::Done)
            {
                run.threads[p].state = ThreadState::Ready;
                if let Some(top) = run.threads[p].stack.last_mut() {
                    top.index += 1;
                }
            }
            return;
        };
        let action = block(&def.actions, &parent.block).and_then(|l| l.get(parent.index));
        if let Some(Action { kind: ActionKind::Repeat { count, while_all, until, .. }, .. }) = action {
            let round = parent.round + 1;
            let path = path_text(&parent.block, parent.index);
            let mut results = Vec::new();
            let more = count.is_none_or(|c| round < c)
                && (until.is_empty()
                    || !self.check_all(until, &format!("{path}.repeat.until"), &run.fired, &mut results))
                && self.check_all(while_all, &format!("{path}.repeat.while"), &run.fired, &mut results);
            let thread = &mut run.threads[ti];
            if let Some(top) = thread.stack.last_mut() {
                if more {
                    top.round = round;
                    thread.stack.push(Frame {
                        block: with(&parent.block, Seg::Body(parent.index)),
                        index: 0,
                        round: 0,
                    });
                } else {
                    top.index += 1;
                    top.round = 0;
                }
            }
            if !more {
                let now = self.now();
                run.trace.step(Step::new(
                    path,
                    "repeat (ended)",
                    now,
                    true,
                    if round == 1 { Say::RepeatEndedAfterOne } else { Say::RepeatEnded { rounds: round } },
                ));
            }
        } else if let Some(top) = thread.stack.last_mut() {
            top.index += 1;
        }
    }

    // ----- conditions --------------------------------------------------------------------------

    fn check_all(&self, list: &[Condition], path: &str, fired: &Fired, out: &mut Vec<ConditionResult>) -> bool {
        for (i, c) in list.iter().enumerate() {
            if !self.check(c, &format!("{path}[{i}]"), fired, out) {
                return false;
            }
        }
        true
    }

    fn check(&self, c: &Condition, path: &str, fired: &Fired, out: &mut Vec<ConditionResult>) -> bool {
        let (result, say) = match c {
            Condition::State { target, feature, is, above, below, matching: m } => {
                let devices: Vec<&Device> = resolve(&self.home, target)
                    .into_iter()
                    .filter(|d| !target.devices.is_empty() || d.feature(feature).is_some())
                    .collect();
                let mut parts = Vec::new();
                let mut oks = Vec::new();
                for d in &devices {
                    let v = d.value(feature);
                    let ok = is.as_ref().is_none_or(|want| v.is_some_and(|v| same(v, want)))
                        && ((above.is_none() && below.is_none()) || in_range(v, *above, *below));
                    parts.push(Say::Reading { device: d.id.to_string(), feature: feature.clone(), value: v.cloned() });
                    oks.push(ok);
                }
                let result = !oks.is_empty()
                    && match m {
                        Match::All => oks.iter().all(|o| *o),
                        Match::Any => oks.iter().any(|o| *o),
                    };
                let mut wanted = Vec::new();
                if let Some(v) = is {
                    wanted.push(Say::Equals { value: v.clone() });
                }
                if let Some(a) = above {
                    wanted.push(Say::Above { limit: *a });
                }
                if let Some(b) = below {
                    wanted.push(Say::Below { limit: *b });
                }
                let say = match m {
                    _ if parts.is_empty() => Say::NoReadings { wanted },
                    Match::All => Say::StateAll { readings: parts, wanted },
                    Match::Any => Say::StateAny { readings: parts, wanted },
                };
                (result, say)
            }
            Condition::Time { after, before, weekdays } => {
                let now = self.now();
                let local = self.settings.zone.local(now);
                let s = local.seconds;
                let in_window = match (after, before) {
                    (Some(a), Some(b)) if a.seconds() <= b.seconds() => s >= a.seconds() && s < b.seconds(),
                    (Some(a), Some(b)) => s >= a.seconds() || s < b.seconds(),
                    (Some(a), None) => s >= a.seconds(),
                    (None, Some(b)) => s < b.seconds(),
                    (None, None) => true,
                };
                let day_ok = weekdays.is_empty() || weekdays.contains(&local.weekday);
                let hh = s / 3600;
                let mm = (s / 60) % 60;
                let weekday = format!("{:?}", local.weekday).to_lowercase();
                (in_window && day_ok, Say::LocalTime { time: format!("{hh:02}:{mm:02}"), weekday })
            }
            Condition::Sun { above, below } => match self.settings.location {
                None => (false, Say::NoLocation),
                Some(loc) => {
                    let e = sun::elevation(loc, self.now());
                    let elevation = (e * 10.0).round() / 10.0;
                    (above.is_none_or(|a| e > a) && below.is_none_or(|b| e < b), Say::SunAt { elevation })
                }
            },
            Condition::Trigger { id } => {
                let ok = fired.id.as_deref() == Some(id.as_str());
                let say = match &fired.id {
                    Some(trigger) => Say::StartedByTrigger { trigger: trigger.clone() },
                    None => Say::StartedWithoutTriggerId,
                };
                (ok, say)
            }
            Condition::And(list) => {
                let ok = self.check_all(list, &format!("{path}.and"), fired, out);
                (ok, Say::AllOf)
            }
            Condition::Or(list) => {
                let mut ok = false;
                for (i, c) in list.iter().enumerate() {
                    if self.check(c, &format!("{path}.or[{i}]"), fired, out) {
                        ok = true;
                        break;
                    }
                }
                (ok, Say::AnyOf)
            }
            Condition::Not(inner) => {
                let ok = !self.check(inner, &format!("{path}.not"), fired, out);
                (ok, Say::Not)
            }
        };
        out.push(ConditionResult::new(path, result, say));
        result
    }

    // ----- dry run -----------------------------------------------------------------------------

    fn describe(&self, list: &[Action], fired: &Fired, depth: usize, out: &mut Vec<PlanLine>) {
        for a in list {
            let mut line = |say: Say| out.push(PlanLine { depth, alias: a.alias.clone(), say });
            match &a.kind {
                ActionKind::Set { target, values, toggle, transition } => {
                    let devices: Vec<String> = resolve(&self.home, target).iter().map(|d| d.id.to_string()).collect();
                    let mut changes: Vec<Say> =
                        values.iter().map(|(k, v)| Say::SetValue { feature: k.clone(), value: v.clone() }).collect();
                    changes.extend(toggle.iter().map(|k| Say::Toggle { feature: k.clone() }));
                    line(match transition {
                        _ if devices.is_empty() => Say::PlanSetNoDevice { changes },
                        Some(seconds) => Say::PlanSetOver { changes, devices, seconds: *seconds },
                        None => Say::PlanSet { changes, devices },
                    });
                }
                ActionKind::Scene { id, .. } => line(Say::PlanScene { scene: id.clone() }),
                ActionKind::Delay(d) => line(Say::PlanDelay { delay: *d }),
                ActionKind::Wait { triggers, timeout, .. } => {
                    let kinds: Vec<String> = triggers.iter().map(|k| k.name().to_owned()).collect();
                    line(match timeout {
                        Some(timeout) => Say::PlanWaitAtMost { kinds, timeout: *timeout },
                        None => Say::PlanWait { kinds },
                    });
                }
                ActionKind::If { conditions, then, otherwise } => {
                    let ok = self.check_all(conditions, "", fired, &mut Vec::new());
                    line(if ok { Say::PlanIfHolds } else { Say::PlanIfNot });
                    self.describe(if ok { then } else { otherwise }, fired, depth + 1, out);
                }
                ActionKind::Choose { options, default } => {
                    let taken = options.iter().position(|o| self.check_all(&o.conditions, "", fired, &mut Vec::new()));
                    match taken {
                        Some(k) => {
                            line(Say::PlanOption { option: k });
                            self.describe(&options[k].actions, fired, depth + 1, out);
                        }
                        None => {
                            line(Say::PlanDefault);
                            self.describe(default, fired, depth + 1, out);
                        }
                    }
                }
                ActionKind::Repeat { count, actions, .. } => {
                    line(match count {
                        Some(count) => Say::PlanRepeatTimes { count: *count },
                        None => Say::PlanRepeatWhile,
                    });
                    self.describe(actions, fired, depth + 1, out);
                }
                ActionKind::Parallel(branches) => {
                    line(Say::PlanParallel);
                    for b in branches {
                        self.describe(b, fired, depth + 1, out);
                    }
                }
                ActionKind::Mqtt { topic, payload, .. } => {
                    line(Say::PlanPublish { payload: payload.clone(), topic: topic.clone() })
                }
                ActionKind::Webhook { url, method, .. } => {
                    line(Say::PlanCall { method: method.as_deref().unwrap_or("POST").to_uppercase(), url: url.clone() })
                }
                ActionKind::Notify { message, .. } => line(Say::PlanNotify { message: message.clone() }),
                ActionKind::Enable(id) => line(Say::PlanEnable { automation: id.clone() }),
                ActionKind::Disable(id) => line(Say::PlanDisable { automation: id.clone() }),
                ActionKind::Stop { reason } => line(match reason {
                    Some(reason) => Say::PlanStopBecause { reason: reason.clone() },
                    None => Say::PlanStop,
                }),
            }
        }
    }
}

fn with(block: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut b = block.to_vec();
    b.push(seg);
    b
}

/// The action a thread of a run is at, as its kind.
fn current_action_at<'a>(
    def: &'a Automation,
    runs: &BTreeMap<u64, RunRecord>,
    run: u64,
    thread: usize,
) -> Option<&'a ActionKind> {
    current_action(def, runs.get(&run)?.threads.get(thread)?).map(|a| &a.kind)
}

fn current_action<'a>(def: &'a Automation, t: &Thread) -> Option<&'a Action> {
    let f = t.stack.last()?;
    block(&def.actions, &f.block)?.get(f.index)
}

/// Every trigger of every `wait` in a list of actions, nested ones too.
fn wait_triggers(list: &[Action]) -> Vec<&TriggerKind> {
    let mut out = Vec::new();
    for a in list {
        match &a.kind {
            ActionKind::Wait { triggers, .. } => out.extend(triggers.iter()),
            ActionKind::If { then, otherwise, .. } => {
                out.extend(wait_triggers(then));
                out.extend(wait_triggers(otherwise));
            }
            ActionKind::Choose { options, default } => {
                for o in options {
                    out.extend(wait_triggers(&o.actions));
                }
                out.extend(wait_triggers(default));
            }
            ActionKind::Repeat { actions, .. } => out.extend(wait_triggers(actions)),
            ActionKind::Parallel(branches) => {
                for b in branches {
                    out.extend(wait_triggers(b));
                }
            }
            _ => {}
        }
    }
    out
}
