//! What an automation and a scene are: their JSON form, as the API takes it and stores it.
//!
//! An automation is triggers, conditions and actions with a run mode. Every part is one JSON
//! object with a single key naming its kind (`{"state": {...}}`, `{"delay": "30s"}`), the shape
//! Home Assistant users know from YAML. Validation against the devices that exist (with the
//! path of each fault) is separate from parsing.
//!
//! Reading refuses what it would otherwise lose: a key it does not know (with serde's
//! "unknown field `x`, expected one of ..." message), and a trigger or action with no kind or
//! with several. Serde cannot refuse unknown keys beside a `#[serde(flatten)]` field, so the
//! flattened parts are read by hand: [`Trigger`] and [`Action`] split their one kind key from
//! `id` or `alias` (and a wait's triggers, which are kinds alone, are read the same way), and
//! the kinds with a [`Target`] read its keys inline (`with_target!`). Every other kind refuses
//! unknown keys through `#[serde(deny_unknown_fields)]` on its enum ([`TriggerKind`],
//! [`Condition`], [`ActionKind`]), which is sound because no variant that the derived code reads
//! has a flattened field. Writing uses the derived `Serialize`, flattening as the attributes say.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use hearth_sdk::{AvailabilityState, Capability, DeviceId, Value};
use serde::de::value::{EnumAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::duration::{Duration, TimeOfDay};
use crate::sun::SunEvent;

/// What happens when an automation triggers while a run of it is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The new trigger is ignored (and the trace says so).
    #[default]
    Single,
    /// The running run stops; a new one starts.
    Restart,
    /// Runs wait their turn, up to `max_runs`.
    Queued,
    /// Runs go side by side, up to `max_runs`.
    Parallel,
}

/// What to do about a time trigger missed while the hub was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Nothing: the next occurrence counts.
    #[default]
    Skip,
    /// Run once at start, however many occurrences were missed.
    RunOnce,
}

fn yes() -> bool {
    true
}

fn ten() -> u32 {
    10
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// An automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Automation {
    /// Stable id (`porch_light`), lowercase letters, digits and `_`.
    pub id: String,
    /// What people call it.
    pub name: String,
    /// Whether it runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What a trigger does while a run is going.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: Mode,
    /// Most runs waiting or going at once (`queued`, `parallel`).
    #[serde(default = "ten")]
    pub max_runs: u32,
    /// Missed time triggers.
    #[serde(default, skip_serializing_if = "is_default")]
    pub catch_up: CatchUp,
    /// Any of these starts a run.
    pub triggers: Vec<Trigger>,
    /// All of these must hold for the run to act.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What it does, in order.
    pub actions: Vec<Action>,
}

/// Which devices a trigger, condition or action means: listed devices, or every device of an
/// area, narrowed to a capability (`{"area": "kitchen", "capability": "on_off"}`). Its keys are
/// written beside the kind's own; the kinds read them inline (see `with_target!`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Target {
    /// These devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceId>,
    /// Every device of this area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Only devices with a feature of this capability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<Capability>,
}

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// A trigger, with an optional id that conditions and `choose` can refer to: one mapping of
/// `id` and exactly one key naming the kind (`{"id": "motion", "state": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Its id within the automation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What starts a run.
    #[serde(flatten)]
    pub kind: TriggerKind,
}

/// What starts a run. The kinds with a target are read by `read_*` functions (the target's keys
/// inline, unknown keys refused), so their fields' attributes here are for writing only; the
/// other kinds refuse unknown keys by `deny_unknown_fields`, which needs every variant that the
/// derived code reads to be free of `flatten`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerKind {
    /// A feature's value changes (optionally from/to a value, crossing above/below a number,
    /// and staying so `for` a while).
    #[serde(deserialize_with = "read_state_trigger")]
    State {
        /// Whose feature.
        #[serde(flatten)]
        target: Target,
        /// The feature key.
        feature: String,
        /// The value before.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<Value>,
        /// The value after.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<Value>,
        /// Fires when the number rises above this.
        #[serde(skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// Fires when the number falls below this.
        #[serde(skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        /// ... and stays so this long.
        #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
        hold: Option<Duration>,
    },
    /// A momentary device event (a button's `single`).
    #[serde(deserialize_with = "read_event_trigger")]
    Event {
        /// Whose event.
        #[serde(flatten)]
        target: Target,
        /// The feature (`action`).
        feature: String,
        /// Only these events; any when empty.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        events: Vec<String>,
    },
    /// A device goes online, offline or unknown.
    #[serde(deserialize_with = "read_availability_trigger")]
    Availability {
        /// Which devices.
        #[serde(flatten)]
        target: Target,
        /// Only to this state.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<AvailabilityState>,
        /// ... and stays so this long.
        #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
        hold: Option<Duration>,
    },
    /// A time of day, on some weekdays (every day when empty).
    Time {
        /// The time, local.
        at: TimeOfDay,
        /// Only on these days.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        weekdays: Vec<Weekday>,
    },
    /// Every so often.
    Interval {
        /// How often.
        every: Duration,
    },
    /// Sunrise, sunset, dawn or dusk, moved by an offset in seconds (`"offset_secs": -1800` is
    /// half an hour before).
    Sun {
        /// Which.
        event: SunEvent,
        /// Seconds before (negative) or after, an integer; at most 12 hours either way.
        #[serde(default, skip_serializing_if = "is_default")]
        offset_secs: i64,
    },
    /// The hub started.
    Start {},
    /// A message on the hub's MQTT broker.
    Mqtt {
        /// The topic filter (`+` and `#` allowed).
        topic: String,
        /// Only this exact payload.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
    },
    /// An authenticated call of `POST /api/v1/webhooks/<id>`.
    Webhook {
        /// The webhook's id.
        id: String,
    },
}

fn action() -> String {
    "action".into()
}

/// Whether any or all of a target's devices must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Every device.
    #[default]
    All,
    /// At least one device.
    Any,
}

/// A condition: must hold for the run to act. `state` is read by `read_state_condition` (its
/// target's keys inline); the other kinds refuse unknown keys by `deny_unknown_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Feature values: equal to `is`, or a number above/below.
    #[serde(deserialize_with = "read_state_condition")]
    State {
        /// Whose feature.
        #[serde(flatten)]
        target: Target,
        /// The feature key.
        feature: String,
        /// Equal to this.
        #[serde(skip_serializing_if = "Option::is_none")]
        is: Option<Value>,
        /// A number above this.
        #[serde(skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// A number below this.
        #[serde(skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        /// All the target's devices, or any.
        #[serde(rename = "match", skip_serializing_if = "is_default")]
        matching: Match,
    },
    /// A time window (across midnight when `after` is later than `before`) and weekdays.
    Time {
        /// From this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<TimeOfDay>,
        /// Until this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<TimeOfDay>,
        /// On these days.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        weekdays: Vec<Weekday>,
    },
    /// The sun's elevation in degrees (up is above -0.833).
    Sun {
        /// Higher than this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// Lower than this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
    },
    /// The run was started by the trigger with this id.
    Trigger {
        /// The trigger's id.
        id: String,
    },
    /// All of these.
    And(Vec<Condition>),
    /// Any of these.
    Or(Vec<Condition>),
    /// Not this.
    Not(Box<Condition>),
}

/// An action, with an optional alias for traces: one mapping of `alias` and exactly one key
/// naming the kind (`{"alias": "lights off", "set": {...}}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// How traces name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// What it does.
    #[serde(flatten)]
    pub kind: ActionKind,
}

/// One option of `choose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Choice {
    /// When this option is taken.
    pub conditions: Vec<Condition>,
    /// What it does.
    pub actions: Vec<Action>,
}

/// What an action does. `set` is read by `read_set_action` (its target's keys inline), a wait's
/// `triggers` by `read_wait_triggers`; the other kinds refuse unknown keys by
/// `deny_unknown_fields`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionKind {
    /// Set features of the target's devices (and toggle bools), as one command each.
    #[serde(deserialize_with = "read_set_action")]
    Set {
        /// Which devices.
        #[serde(flatten)]
        target: Target,
        /// Feature key to value.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, Value>,
        /// Bool features to flip.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        toggle: Vec<String>,
        /// Seconds of transition.
        #[serde(skip_serializing_if = "Option::is_none")]
        transition: Option<f64>,
    },
    /// Apply a scene.
    Scene {
        /// The scene's id.
        id: String,
        /// Seconds of transition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transition: Option<f64>,
    },
    /// Wait this long (durable: survives a restart).
    Delay(Duration),
    /// Wait for a trigger, at most `timeout` (durable).
    Wait {
        /// Any of these ends the wait: each a mapping with one key naming its kind, no `id`.
        #[serde(deserialize_with = "read_wait_triggers")]
        triggers: Vec<TriggerKind>,
        /// The longest wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<Duration>,
        /// Go on after a timeout (else the run stops).
        #[serde(default, skip_serializing_if = "is_default")]
        continue_on_timeout: bool,
    },
    /// Branch on conditions.
    If {
        /// All must hold for `then`.
        conditions: Vec<Condition>,
        /// What to do when they hold.
        then: Vec<Action>,
        /// What to do otherwise.
        #[serde(rename = "else", default, skip_serializing_if = "Vec::is_empty")]
        otherwise: Vec<Action>,
    },
    /// The first option whose conditions hold, else `default`.
    Choose {
        /// The options, in order.
        options: Vec<Choice>,
        /// When none holds.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        default: Vec<Action>,
    },
    /// Repeat actions a number of times, while conditions hold, or until they do.
    Repeat {
        /// This many times.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u32>,
        /// While all of these hold (checked before each round).
        #[serde(rename = "while", default, skip_serializing_if = "Vec::is_empty")]
        while_all: Vec<Condition>,
        /// Until all of these hold (checked after each round).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        until: Vec<Condition>,
        /// What to repeat.
        actions: Vec<Action>,
    },
    /// Branches that run side by side; the action ends when all have.
    Parallel(Vec<Vec<Action>>),
    /// Publish on the hub's MQTT broker; `{{ trigger.payload }}` and the like take values of
    /// the trigger.
    Mqtt {
        /// The topic.
        topic: String,
        /// The payload.
        payload: String,
        /// Retained.
        #[serde(default, skip_serializing_if = "is_default")]
        retain: bool,
    },
    /// Call a URL.
    Webhook {
        /// Where.
        url: String,
        /// `POST` (default) or `GET`, `PUT`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// The body (JSON text).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// A message in the web UI.
    Notify {
        /// The text.
        message: String,
        /// A title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// Turn an automation on.
    Enable(String),
    /// Turn an automation off.
    Disable(String),
    /// End the run here, saying why.
    Stop {
        /// Why, for the trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A scene: target states to apply in one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Stable id.
    pub id: String,
    /// What people call it.
    pub name: String,
    /// Device to its values.
    pub devices: BTreeMap<DeviceId, BTreeMap<String, Value>>,
}

// ---------------------------------------------------------------------------------------------
// Reading the parts that `#[serde(flatten)]` would read too leniently.

/// The keys of a trigger: its own first, then its kinds, the variants of [`TriggerKind`] (keep
/// them in step; `every_kind_key_is_a_kind` checks one way, the round trips the other).
const TRIGGER_KEYS: &[&str] =
    &["id", "state", "event", "availability", "time", "interval", "sun", "start", "mqtt", "webhook"];

/// The keys of an action: its own first, then its kinds, the variants of [`ActionKind`].
const ACTION_KEYS: &[&str] = &[
    "alias", "set", "scene", "delay", "wait", "if", "choose", "repeat", "parallel", "mqtt", "webhook", "notify",
    "enable", "disable", "stop",
];

impl TriggerKind {
    /// The keys that name the kinds (`state`, `time` ...), in the order of the variants.
    pub const NAMES: &'static [&'static str] = match TRIGGER_KEYS.split_first() {
        Some((_, kinds)) => kinds,
        None => &[],
    };

    /// The key that names this kind.
    pub fn name(&self) -> &'static str {
        match self {
            TriggerKind::State { .. } => "state",
            TriggerKind::Event { .. } => "event",
            TriggerKind::Availability { .. } => "availability",
            TriggerKind::Time { .. } => "time",
            TriggerKind::Interval { .. } => "interval",
            TriggerKind::Sun { .. } => "sun",
            TriggerKind::Start {} => "start",
            TriggerKind::Mqtt { .. } => "mqtt",
            TriggerKind::Webhook { .. } => "webhook",
        }
    }
}

impl Condition {
    /// The keys that name the kinds, in the order of the variants.
    pub const NAMES: &'static [&'static str] = &["state", "time", "sun", "trigger", "and", "or", "not"];

    /// The key that names this kind.
    pub fn name(&self) -> &'static str {
        match self {
            Condition::State { .. } => "state",
            Condition::Time { .. } => "time",
            Condition::Sun { .. } => "sun",
            Condition::Trigger { .. } => "trigger",
            Condition::And(_) => "and",
            Condition::Or(_) => "or",
            Condition::Not(_) => "not",
        }
    }
}

impl ActionKind {
    /// The keys that name the kinds (`set`, `delay` ...), in the order of the variants.
    pub const NAMES: &'static [&'static str] = match ACTION_KEYS.split_first() {
        Some((_, kinds)) => kinds,
        None => &[],
    };

    /// The key that names this kind.
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::Set { .. } => "set",
            ActionKind::Scene { .. } => "scene",
            ActionKind::Delay(_) => "delay",
            ActionKind::Wait { .. } => "wait",
            ActionKind::If { .. } => "if",
            ActionKind::Choose { .. } => "choose",
            ActionKind::Repeat { .. } => "repeat",
            ActionKind::Parallel(_) => "parallel",
            ActionKind::Mqtt { .. } => "mqtt",
            ActionKind::Webhook { .. } => "webhook",
            ActionKind::Notify { .. } => "notify",
            ActionKind::Enable(_) => "enable",
            ActionKind::Disable(_) => "disable",
            ActionKind::Stop { .. } => "stop",
        }
    }
}

/// The motion light with `for`, `choose` and an area target (for tests).
#[cfg(test)]
pub(crate) fn motion_light_json() -> serde_json::Value {
    serde_json::json!({
        "id": "hall_motion_light", "name": "Hall light on motion", "enabled": true, "mode": "restart", "max_runs": 10,
        "triggers": [
            {"id": "motion", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": true}},
            {"id": "quiet", "state": {"devices": ["demo:hall_motion"], "feature": "occupancy", "to": false, "for": "2m"}}
        ],
        "conditions": [{"or": [{"sun": {"below": -0.833}}, {"time": {"after": "22:00", "before": "06:30"}}]}],
        "actions": [
            {"choose": {"options": [
                {"conditions": [{"trigger": {"id": "motion"}}],
                 "actions": [{"set": {"area": "hallway", "capability": "on_off", "values": {"state": true, "brightness": 60.0}, "transition": 1.0}}]}
            ], "default": [{"alias": "lights off", "set": {"area": "hallway", "capability": "on_off", "values": {"state": false}}}]}}
        ]
    })
}

/// The example that uses every kind of trigger, condition and action (for tests).
#[cfg(test)]
pub(crate) fn everything_json() -> serde_json::Value {
    serde_json::json!({
        "id": "everything", "name": "Everything", "enabled": false, "mode": "queued", "max_runs": 3, "catch_up": "run_once",
        "triggers": [
            {"state": {"devices": ["demo:living_climate"], "feature": "temperature", "above": 25.0, "for": "10m"}},
            {"event": {"devices": ["demo:hall_button"], "feature": "action", "events": ["single", "double"]}},
            {"availability": {"area": "kitchen", "to": "offline", "for": "5m"}},
            {"time": {"at": "07:30", "weekdays": ["mon", "fri"]}},
            {"interval": {"every": "15m"}},
            {"sun": {"event": "sunset", "offset_secs": -1800}},
            {"start": {}},
            {"mqtt": {"topic": "doorbell/+/pressed", "payload": "1"}},
            {"webhook": {"id": "garage"}}
        ],
        "conditions": [
            {"state": {"area": "bedroom", "capability": "contact", "feature": "contact", "is": false, "match": "any"}},
            {"not": {"time": {"weekdays": ["sat", "sun"]}}},
            {"and": [{"state": {"devices": ["demo:living_climate"], "feature": "temperature", "above": 18.0, "below": 26.0}}]},
            {"or": [{"sun": {"below": -6.0}}, {"trigger": {"id": "x"}}]}
        ],
        "actions": [
            {"set": {"devices": ["demo:living_lamp"], "toggle": ["state"]}},
            {"scene": {"id": "evening", "transition": 2.0}},
            {"delay": "30s"},
            {"wait": {"triggers": [{"state": {"devices": ["demo:front_door"], "feature": "contact", "to": true}}], "timeout": "10m", "continue_on_timeout": true}},
            {"if": {"conditions": [{"trigger": {"id": "x"}}], "then": [{"stop": {"reason": "done"}}], "else": [{"notify": {"message": "Door still open", "title": "Hall"}}]}},
            {"choose": {"options": [{"conditions": [{"trigger": {"id": "x"}}], "actions": [{"delay": "1s"}]}], "default": [{"delay": "2s"}]}},
            {"repeat": {"count": 3, "while": [{"sun": {"above": 0.0}}], "actions": [{"delay": "1s"}]}},
            {"parallel": [[{"mqtt": {"topic": "hearth/echo", "payload": "{{ trigger.payload }}", "retain": true}}], [{"webhook": {"url": "http://127.0.0.1:9/hook", "method": "PUT", "body": "{}"}}]]},
            {"enable": "porch_light"},
            {"disable": "porch_light"},
            {"stop": {}}
        ]
    })
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Trigger, D::Error> {
        let (id, kind) = d.deserialize_map(PartVisitor::new("a trigger", TRIGGER_KEYS))?;
        Ok(Trigger { id, kind })
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let (alias, kind) = d.deserialize_map(PartVisitor::new("an action", ACTION_KEYS))?;
        Ok(Action { alias, kind })
    }
}

/// A trigger's kind alone, as a wait's `triggers` hold it: read as a [`Trigger`] is, with its
/// errors (several kinds, none, an unknown key), but without an `id`.
struct BareTrigger(TriggerKind);

impl<'de> Deserialize<'de> for BareTrigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BareTrigger, D::Error> {
        let (_, kind) = d.deserialize_map(PartVisitor::bare("a trigger", TriggerKind::NAMES))?;
        Ok(BareTrigger(kind))
    }
}

/// Reads a wait's `triggers` (see [`BareTrigger`]).
fn read_wait_triggers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TriggerKind>, D::Error> {
    let list = Vec::<BareTrigger>::deserialize(d)?;
    Ok(list.into_iter().map(|BareTrigger(kind)| kind).collect())
}

/// Reads a trigger or action: its own optional text key (`id`, `alias`), if it has one, and
/// exactly one key naming its kind `K`, whose value is read straight from the mapping (so errors
/// inside keep their place). Any other key is refused as serde refuses unknown fields.
struct PartVisitor<K> {
    /// `a trigger`, for messages.
    what: &'static str,
    /// The own key, if any.
    own: Option<&'static str>,
    /// Every key allowed: the own one first, then the kinds (the list that an unknown field's
    /// error names).
    keys: &'static [&'static str],
    /// The kinds.
    kinds: &'static [&'static str],
    kind: PhantomData<K>,
}

impl<K> PartVisitor<K> {
    /// A part whose first key is its own (`id`), the others its kinds.
    fn new(what: &'static str, keys: &'static [&'static str]) -> Self {
        let (own, kinds) = keys.split_first().map_or((None, keys), |(own, kinds)| (Some(*own), kinds));
        PartVisitor { what, own, keys, kinds, kind: PhantomData }
    }

    /// A part that is its kind alone (a wait's trigger), without an own key.
    fn bare(what: &'static str, kinds: &'static [&'static str]) -> Self {
        PartVisitor { what, own: None, keys: kinds, kinds, kind: PhantomData }
    }
}

impl<'de, K: Deserialize<'de>> Visitor<'de> for PartVisitor<K> {
    type Value = (Option<String>, K);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: a mapping with one key naming its kind", self.what)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let keys = KeySeed(self.keys);
        let mut name: Option<Option<String>> = None;
        let mut read: Option<(&'static str, K)> = None;
        while let Some(key) = map.next_key_seed(keys)? {
            if Some(key) == self.own {
                if name.is_some() {
                    return Err(de::Error::duplicate_field(key));
                }
                name = Some(map.next_value()?);
            } else if let Some((first, _)) = read {
                // Name every kind given, not only the first two.
                map.next_value::<IgnoredAny>()?;
                let mut found = vec![first, key];
                while let Some(key) = map.next_key_seed(keys)? {
                    map.next_value::<IgnoredAny>()?;
                    if Some(key) != self.own {
                        found.push(key);
                    }
                }
                return Err(de::Error::custom(format!(
                    "{} has exactly one kind; found {}",
                    self.what,
                    quoted(&found, " and ")
                )));
            } else {
                let kind = K::deserialize(EnumAccessDeserializer::new(KindAccess { kind: key, map: &mut map }))?;
                read = Some((key, kind));
            }
        }
        match read {
            Some((_, kind)) => Ok((name.flatten(), kind)),
            None => {
                let kinds = quoted(self.kinds, " or ");
                Err(de::Error::custom(format!("{} has no kind; expected one of {kinds}", self.what)))
            }
        }
    }
}

/// `` `a`, `b` and `c` `` (with `last` as " and ").
fn quoted(names: &[&str], last: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match names.split_last() {
        Some((tail, rest)) if !rest.is_empty() => format!("{}{last}{tail}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Reads a key of a trigger or action as one of the given ones, else refuses it with serde's
/// unknown field error, listing them.
#[derive(Clone, Copy)]
struct KeySeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<&'static str, E> {
        self.0.iter().find(|k| **k == v).copied().ok_or_else(|| E::unknown_field(v, self.0))
    }
}

/// A kind as an externally tagged enum: the key already read is the variant, the mapping's
/// next value its content.
struct KindAccess<'a, A> {
    kind: &'static str,
    map: &'a mut A,
}

impl<'de, A: MapAccess<'de>> de::EnumAccess<'de> for KindAccess<'_, A> {
    type Error = A::Error;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), A::Error> {
        let variant = seed.deserialize(StrDeserializer::<A::Error>::new(self.kind))?;
        Ok((variant, self))
    }
}

impl<'de, A: MapAccess<'de>> de::VariantAccess<'de> for KindAccess<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.map.next_value()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(ContentSeed { shape: Shape::Tuple(len), visitor })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(ContentSeed { shape: Shape::Struct(self.kind, fields), visitor })
    }
}

/// The content of a tuple or struct variant.
enum Shape {
    Tuple(usize),
    /// The variant's name and fields.
    Struct(&'static str, &'static [&'static str]),
}

/// Reads a variant's content with the variant's visitor.
struct ContentSeed<V> {
    shape: Shape,
    visitor: V,
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for ContentSeed<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        match self.shape {
            Shape::Tuple(len) => d.deserialize_tuple(len, self.visitor),
            Shape::Struct(name, fields) => d.deserialize_struct(name, fields, self.visitor),
        }
    }
}

/// Declares how a kind with a [`Target`] is read: a form struct with the target's keys
/// (`devices`, `area`, `capability`) beside the kind's own fields, unknown keys refused, and a
/// function for the variant's `#[serde(deserialize_with)]` that gives the variant's fields as a
/// tuple. The target must be the variant's first field and the others must follow in the
/// variant's order (the round-trip tests hold each field a different value).
macro_rules! with_target {
    ($read:ident, $form:ident { $($(#[$attr:meta])* $field:ident: $ty:ty,)* }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $form {
            #[serde(default)]
            devices: Vec<DeviceId>,
            #[serde(default)]
            area: Option<String>,
            #[serde(default)]
            capability: Option<Capability>,
            $($(#[$attr])* $field: $ty,)*
        }

        fn $read<'de, D: Deserializer<'de>>(d: D) -> Result<(Target, $($ty),*), D::Error> {
            let form = $form::deserialize(d)?;
            let target = Target { devices: form.devices, area: form.area, capability: form.capability };
            Ok((target, $(form.$field),*))
        }
    };
}

with_target!(read_state_trigger, StateTriggerForm {
    feature: String,
    #[serde(default)]
    from: Option<Value>,
    #[serde(default)]
    to: Option<Value>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(rename = "for", default)]
    hold: Option<Duration>,
});

with_target!(read_event_trigger, EventTriggerForm {
    #[serde(default = "action")]
    feature: String,
    #[serde(default)]
    events: Vec<String>,
});

with_target!(read_availability_trigger, AvailabilityTriggerForm {
    #[serde(default)]
    to: Option<AvailabilityState>,
    #[serde(rename = "for", default)]
    hold: Option<Duration>,
});

with_target!(read_state_condition, StateConditionForm {
    feature: String,
    #[serde(default)]
    is: Option<Value>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(rename = "match", default)]
    matching: Match,
});

with_target!(read_set_action, SetActionForm {
    #[serde(default)]
    values: BTreeMap<String, Value>,
    #[serde(default)]
    toggle: Vec<String>,
    #[serde(default)]
    transition: Option<f64>,
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    fn round_trip<T: serde::de::DeserializeOwned + Serialize + std::fmt::Debug + PartialEq>(v: serde_json::Value) -> T {
        let parsed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
        parsed
    }

    #[test]
    fn a_motion_light_reads_and_writes_back_unchanged() {
        let a: Automation = round_trip(motion_light_json());
        assert_eq!(a.mode, Mode::Restart);
        match &a.triggers[1].kind {
            TriggerKind::State { hold, .. } => assert_eq!(*hold, Some(Duration::from_secs(120))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_trigger_and_action_kind_has_a_json_form() {
        let a: Automation = round_trip(everything_json());
        // The example names every kind, and `name()` agrees with `NAMES`.
        fn conditions(list: &[Condition], out: &mut BTreeSet<&'static str>) {
            for c in list {
                out.insert(c.name());
                match c {
                    Condition::And(l) | Condition::Or(l) => conditions(l, out),
                    Condition::Not(c) => conditions(std::slice::from_ref(c), out),
                    _ => {}
                }
            }
        }
        fn actions(list: &[Action], acts: &mut BTreeSet<&'static str>, conds: &mut BTreeSet<&'static str>) {
            for a in list {
                acts.insert(a.kind.name());
                match &a.kind {
                    ActionKind::If { conditions: c, then, otherwise } => {
                        conditions(c, conds);
                        actions(then, acts, conds);
                        actions(otherwise, acts, conds);
                    }
                    ActionKind::Choose { options, default } => {
                        for o in options {
                            conditions(&o.conditions, conds);
                            actions(&o.actions, acts, conds);
                        }
                        actions(default, acts, conds);
                    }
                    ActionKind::Repeat { while_all, until, actions: body, .. } => {
                        conditions(while_all, conds);
                        conditions(until, conds);
                        actions(body, acts, conds);
                    }
                    ActionKind::Parallel(branches) => branches.iter().for_each(|b| actions(b, acts, conds)),
                    _ => {}
                }
            }
        }
        let triggers: BTreeSet<&str> = a.triggers.iter().map(|t| t.kind.name()).collect();
        let (mut acts, mut conds) = (BTreeSet::new(), BTreeSet::new());
        conditions(&a.conditions, &mut conds);
        actions(&a.actions, &mut acts, &mut conds);
        assert_eq!(triggers, TriggerKind::NAMES.iter().copied().collect());
        assert_eq!(conds, Condition::NAMES.iter().copied().collect());
        assert_eq!(acts, ActionKind::NAMES.iter().copied().collect());
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let bad = json!({"id": "x", "name": "X", "triggers": [], "actions": [], "colour": "red"});
        assert!(serde_json::from_value::<Automation>(bad).unwrap_err().to_string().contains("unknown field `colour`"));
        let bad = json!({"id": "x", "name": "X", "triggers": [{"telepathy": {}}], "actions": []});
        assert!(serde_json::from_value::<Automation>(bad).is_err());
        let bad = json!({"id": "x", "name": "X", "triggers": [{"interval": {"every": "soon"}}], "actions": []});
        let e = serde_json::from_value::<Automation>(bad).unwrap_err().to_string();
        assert!(e.contains("`soon` is not a duration"), "{e}");
    }

    #[test]
    fn scenes() {
        let s: Scene = round_trip(json!({"id": "evening", "name": "Evening", "devices": {
            "demo:living_lamp": {"brightness": 30.0, "state": true},
            "demo:living_ceiling": {"state": false}}}));
        assert_eq!(s.devices.len(), 2);
    }

    fn trigger_error(v: serde_json::Value) -> String {
        serde_json::from_value::<Trigger>(v).unwrap_err().to_string()
    }

    fn action_error(v: serde_json::Value) -> String {
        serde_json::from_value::<Action>(v).unwrap_err().to_string()
    }

    fn condition_error(v: serde_json::Value) -> String {
        serde_json::from_value::<Condition>(v).unwrap_err().to_string()
    }

    #[test]
    fn a_trigger_or_action_with_several_kinds_is_refused() {
        let door = json!({"devices": ["demo:door"], "feature": "contact"});
        let e = trigger_error(json!({"state": door, "time": {"at": "07:00"}}));
        assert_eq!(e, "a trigger has exactly one kind; found `state` and `time`");
        // All of them are named (a JSON value's keys come sorted).
        let e = action_error(json!({"alias": "a", "delay": "1s", "stop": {}, "notify": {"message": "m"}}));
        assert_eq!(e, "an action has exactly one kind; found `delay`, `notify` and `stop`");
        // JSON text keeps its order; the own key is no kind.
        let e = serde_json::from_str::<Trigger>(r#"{"time": {"at": "07:00"}, "id": "t", "start": {}}"#).unwrap_err();
        assert!(e.to_string().starts_with("a trigger has exactly one kind; found `time` and `start`"), "{e}");
        let e = serde_json::from_str::<Trigger>(r#"{"id": "a", "id": "b", "start": {}}"#).unwrap_err();
        assert!(e.to_string().starts_with("duplicate field `id`"), "{e}");
    }

    #[test]
    fn a_trigger_or_action_without_a_kind_lists_the_kinds() {
        assert_eq!(
            trigger_error(json!({"id": "x"})),
            "a trigger has no kind; expected one of `state`, `event`, `availability`, `time`, `interval`, `sun`, \
             `start`, `mqtt` or `webhook`"
        );
        assert_eq!(
            action_error(json!({})),
            "an action has no kind; expected one of `set`, `scene`, `delay`, `wait`, `if`, `choose`, `repeat`, \
             `parallel`, `mqtt`, `webhook`, `notify`, `enable`, `disable` or `stop`"
        );
        assert_eq!(
            trigger_error(json!("state")),
            "invalid type: string \"state\", expected a trigger: a mapping with one key naming its kind"
        );
    }

    #[test]
    fn unknown_keys_beside_and_inside_kinds_are_refused() {
        let door = json!({"devices": ["demo:door"], "feature": "contact"});
        let target = "`devices`, `area`, `capability`";
        for (e, want) in [
            (
                trigger_error(json!({"bogus": 1, "state": door})),
                "unknown field `bogus`, expected one of `id`, `state`, `event`, `availability`, `time`, `interval`, \
                 `sun`, `start`, `mqtt`, `webhook`"
                    .to_owned(),
            ),
            (
                trigger_error(json!({"state": {"devices": ["demo:door"], "feature": "contact", "colour": 1}})),
                format!(
                    "unknown field `colour`, expected one of {target}, `feature`, `from`, `to`, `above`, `below`, `for`"
                ),
            ),
            (
                trigger_error(json!({"event": {"devices": ["demo:button"], "evnets": ["single"]}})),
                format!("unknown field `evnets`, expected one of {target}, `feature`, `events`"),
            ),
            (
                trigger_error(json!({"availability": {"area": "kitchen", "hold": "5m"}})),
                format!("unknown field `hold`, expected one of {target}, `to`, `for`"),
            ),
            (
                action_error(json!({"set": {"devices": ["demo:lamp"], "values": {"state": true}, "tansition": 2}})),
                format!("unknown field `tansition`, expected one of {target}, `values`, `toggle`, `transition`"),
            ),
            (
                action_error(json!({"alias": "a", "dealy": "1s"})),
                "unknown field `dealy`, expected one of `alias`, `set`, `scene`, `delay`, `wait`, `if`, `choose`, \
                 `repeat`, `parallel`, `mqtt`, `webhook`, `notify`, `enable`, `disable`, `stop`"
                    .to_owned(),
            ),
            (
                condition_error(json!({"state": {"area": "bedroom", "feature": "contact", "matching": "any"}})),
                format!(
                    "unknown field `matching`, expected one of {target}, `feature`, `is`, `above`, `below`, `match`"
                ),
            ),
        ] {
            assert_eq!(e, want);
        }

        // Also deep inside an automation, and from JSON text.
        let bad = json!({"id": "x", "name": "X", "triggers": [], "actions": [
            {"wait": {"triggers": [{"state": {"devices": ["demo:door"], "feature": "contact", "colour": 1}}]}}]});
        let e = serde_json::from_value::<Automation>(bad).unwrap_err().to_string();
        assert!(e.starts_with("unknown field `colour`"), "{e}");
        let bad = json!({"id": "x", "name": "X", "triggers": [], "actions": [
            {"if": {"conditions": [], "then": [{"set": {"area": "hall", "tansition": 2}}]}}]});
        let e = serde_json::from_value::<Automation>(bad).unwrap_err().to_string();
        assert!(e.starts_with("unknown field `tansition`"), "{e}");
        let e = serde_json::from_str::<Action>(r#"{"set": {"area": "hall", "tansition": 2}}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `tansition`"), "{e}");
    }

    #[test]
    fn unknown_keys_inside_kinds_without_a_target_are_refused() {
        let door = json!({"devices": ["demo:door"], "feature": "contact"});
        for (e, want) in [
            (
                trigger_error(json!({"time": {"at": "07:30", "weekday": ["mon"]}})),
                "unknown field `weekday`, expected `at` or `weekdays`",
            ),
            (
                trigger_error(json!({"interval": {"every": "1m", "evry": "2m"}})),
                "unknown field `evry`, expected `every`",
            ),
            (
                trigger_error(json!({"sun": {"event": "sunset", "offset": "-30m"}})),
                "unknown field `offset`, expected `event` or `offset_secs`",
            ),
            (trigger_error(json!({"start": {"x": 1}})), "unknown field `x`, there are no fields"),
            (
                trigger_error(json!({"mqtt": {"topic": "a/b", "qos": 1}})),
                "unknown field `qos`, expected `topic` or `payload`",
            ),
            (trigger_error(json!({"webhook": {"id": "w", "secret": "s"}})), "unknown field `secret`, expected `id`"),
            (
                condition_error(json!({"time": {"afterr": "22:00"}})),
                "unknown field `afterr`, expected one of `after`, `before`, `weekdays`",
            ),
            (condition_error(json!({"sun": {"abve": 0.0}})), "unknown field `abve`, expected `above` or `below`"),
            (condition_error(json!({"trigger": {"id": "t", "ids": ["u"]}})), "unknown field `ids`, expected `id`"),
            (
                condition_error(json!({"not": {"time": {"weekdays": ["sat"], "weekday": "sun"}}})),
                "unknown field `weekday`, expected one of `after`, `before`, `weekdays`",
            ),
            (
                action_error(json!({"scene": {"id": "evening", "transtion": 2}})),
                "unknown field `transtion`, expected `id` or `transition`",
            ),
            (
                action_error(json!({"wait": {"triggers": [{"state": door}], "timout": "1m"}})),
                "unknown field `timout`, expected one of `triggers`, `timeout`, `continue_on_timeout`",
            ),
            (
                action_error(json!({"if": {"conditions": [], "then": [], "elif": []}})),
                "unknown field `elif`, expected one of `conditions`, `then`, `else`",
            ),
            (
                action_error(json!({"choose": {"options": [], "otherwise": []}})),
                "unknown field `otherwise`, expected `options` or `default`",
            ),
            (
                action_error(json!({"repeat": {"count": 2, "actions": [], "whilst": []}})),
                "unknown field `whilst`, expected one of `count`, `while`, `until`, `actions`",
            ),
            (
                action_error(json!({"mqtt": {"topic": "a", "payload": "p", "qos": 1}})),
                "unknown field `qos`, expected one of `topic`, `payload`, `retain`",
            ),
            (
                action_error(json!({"webhook": {"url": "http://x", "headers": {}}})),
                "unknown field `headers`, expected one of `url`, `method`, `body`",
            ),
            (
                action_error(json!({"notify": {"message": "m", "titel": "t"}})),
                "unknown field `titel`, expected `message` or `title`",
            ),
            (action_error(json!({"stop": {"reason": "x", "colour": 1}})), "unknown field `colour`, expected `reason`"),
        ] {
            assert_eq!(e, want);
        }

        // Deep inside an automation, and from JSON text.
        let bad = json!({"id": "x", "name": "X", "triggers": [], "actions": [
            {"repeat": {"count": 2, "actions": [{"if": {"conditions": [{"or": [{"sun": {"above": 0.0, "colour": 1}}]}], "then": []}}]}}]});
        let e = serde_json::from_value::<Automation>(bad).unwrap_err().to_string();
        assert!(e.starts_with("unknown field `colour`, expected `above` or `below`"), "{e}");
        let e = serde_json::from_str::<Action>(r#"{"notify": {"message": "m", "titel": "t"}}"#).unwrap_err();
        assert!(e.to_string().starts_with("unknown field `titel`, expected `message` or `title` at line 1"), "{e}");
    }

    #[test]
    fn a_wait_trigger_is_one_kind_alone() {
        let wait = |triggers: serde_json::Value| action_error(json!({"wait": {"triggers": triggers}}));
        assert_eq!(
            wait(json!([{"time": {"at": "07:00"}, "start": {}, "webhook": {"id": "w"}}])),
            "a trigger has exactly one kind; found `start`, `time` and `webhook`"
        );
        assert_eq!(
            wait(json!([{"start": {}}, {}])),
            "a trigger has no kind; expected one of `state`, `event`, `availability`, `time`, `interval`, `sun`, \
             `start`, `mqtt` or `webhook`"
        );
        // No `id` there.
        assert_eq!(
            wait(json!([{"id": "t", "start": {}}])),
            "unknown field `id`, expected one of `state`, `event`, `availability`, `time`, `interval`, `sun`, \
             `start`, `mqtt`, `webhook`"
        );
        assert_eq!(wait(json!([{"start": {"x": 1}}])), "unknown field `x`, there are no fields");
        assert_eq!(
            wait(json!(["start"])),
            "invalid type: string \"start\", expected a trigger: a mapping with one key naming its kind"
        );
        // From JSON text, in its order.
        let e = serde_json::from_str::<Action>(r#"{"wait": {"triggers": [{"time": {"at": "07:00"}, "start": {}}]}}"#)
            .unwrap_err();
        assert!(e.to_string().starts_with("a trigger has exactly one kind; found `time` and `start`"), "{e}");
        // And a good one still reads.
        let a: Action = round_trip(json!({"wait": {"triggers": [{"start": {}}, {"time": {"at": "07:00"}}]}}));
        assert!(matches!(a.kind, ActionKind::Wait { ref triggers, .. } if triggers.len() == 2), "{a:?}");
    }

    #[test]
    fn a_sun_offset_is_whole_seconds() {
        let t: Trigger = round_trip(json!({"sun": {"event": "sunrise", "offset_secs": -1800}}));
        assert!(matches!(t.kind, TriggerKind::Sun { offset_secs: -1800, .. }), "{t:?}");
        let e = trigger_error(json!({"sun": {"event": "sunrise", "offset_secs": "-30m"}}));
        assert!(e.starts_with("invalid type: string \"-30m\", expected i64"), "{e}");
    }

    #[test]
    fn the_json_form_is_written_as_before() {
        // Key order as the fields', defaults left out, the target's keys first.
        for (part, text) in [
            (
                serde_json::to_string(&round_trip::<Action>(
                    json!({"wait": {"triggers": [{"state": {"feature": "f", "area": "a"}}], "timeout": "1m"}}),
                ))
                .unwrap(),
                r#"{"wait":{"triggers":[{"state":{"area":"a","feature":"f"}}],"timeout":"1m"}}"#,
            ),
            (
                serde_json::to_string(&round_trip::<Action>(json!({"alias": "s", "stop": {}}))).unwrap(),
                r#"{"alias":"s","stop":{}}"#,
            ),
            (
                serde_json::to_string(&round_trip::<Condition>(json!({"time": {"before": "06:00", "after": "22:00"}})))
                    .unwrap(),
                r#"{"time":{"after":"22:00","before":"06:00"}}"#,
            ),
            (
                serde_json::to_string(&round_trip::<Trigger>(json!({"id": "t", "sun": {"event": "dusk"}}))).unwrap(),
                r#"{"id":"t","sun":{"event":"dusk"}}"#,
            ),
        ] {
            assert_eq!(part, text);
        }
    }

    #[test]
    fn the_text_form_reports_typos_inside_kinds_and_wait_triggers_with_their_path() {
        use crate::text::{TextError, automation_from_yaml};
        for (part, want) in [
            (
                "actions: [{wait: {triggers: [{start: {}}], timout: 1m}}]",
                (4, 44, "actions[0].wait.timout", "unknown field `timout`, expected one of `triggers`, `timeout`, "),
            ),
            (
                "actions: [{stop: {reason: x, colour: 1}}]",
                (4, 30, "actions[0].stop.colour", "unknown field `colour`, expected `reason`"),
            ),
            (
                "conditions: [{time: {afterr: '22:00'}}]\nactions: []",
                (4, 22, "conditions[0].time.afterr", "unknown field `afterr`, expected one of `after`, "),
            ),
            (
                "actions: [{wait: {triggers: [{start: {x: 1}}]}}]",
                (4, 39, "actions[0].wait.triggers[0].start.x", "unknown field `x`, there are no fields"),
            ),
            // Several kinds in a wait's trigger are found before a fault inside the first.
            (
                "actions: [{wait: {triggers: [{state: {colour: 1}, time: {at: '07:00'}}]}}]",
                (4, 31, "actions[0].wait.triggers[0]", "expected one key naming the kind, found `state`, `time`"),
            ),
            (
                "actions: [{wait: {triggers: [{}]}}]",
                (4, 30, "actions[0].wait.triggers[0]", "expected one key naming the kind, found none"),
            ),
            (
                "actions: [{wait: {triggers: [{id: x, start: {}}]}}]",
                (4, 31, "actions[0].wait.triggers[0].id", "unknown field `id`, expected one of `state`, "),
            ),
        ] {
            let text = format!("id: x\nname: X\ntriggers: []\n{part}\n");
            match automation_from_yaml(&text) {
                Err(TextError::Invalid { line, column, path, message }) => {
                    assert_eq!((line, column, path.as_str()), (want.0, want.1, want.2), "{message}");
                    assert!(message.starts_with(want.3), "{message}");
                }
                other => panic!("{part}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_kind_key_is_a_kind() {
        for name in TriggerKind::NAMES {
            let e = trigger_error(json!({*name: true}));
            assert!(!e.contains("unknown"), "{name}: {e}");
        }
        for name in ActionKind::NAMES {
            let e = action_error(json!({*name: true}));
            assert!(!e.contains("unknown"), "{name}: {e}");
        }
    }

    #[test]
    fn every_field_of_a_kind_with_a_target_keeps_its_place() {
        let a: Automation = round_trip(json!({
            "id": "fields", "name": "Fields", "enabled": true, "max_runs": 10,
            "triggers": [
                {"id": "t", "state": {"devices": ["demo:a", "demo:b"], "area": "hall", "capability": "temperature",
                    "feature": "temperature", "from": 1.0, "to": 2.0, "above": 3.0, "below": 4.0, "for": "5s"}},
                {"event": {"area": "hall", "feature": "press", "events": ["long"]}},
                {"availability": {"devices": ["demo:c"], "capability": "on_off", "to": "online", "for": "6s"}}
            ],
            "conditions": [
                {"state": {"devices": ["demo:d"], "area": "den", "capability": "contact", "feature": "contact",
                    "is": true, "above": 7.0, "below": 8.0, "match": "any"}}
            ],
            "actions": [
                {"alias": "all", "set": {"devices": ["demo:e"], "area": "attic", "capability": "on_off",
                    "values": {"state": true}, "toggle": ["flag"], "transition": 9.0}}
            ]
        }));
        match &a.triggers[0].kind {
            TriggerKind::State { target, from, to, above, below, hold, .. } => {
                assert_eq!((target.devices.len(), target.area.as_deref()), (2, Some("hall")));
                assert_eq!((from, to), (&Some(Value::Number(1.0)), &Some(Value::Number(2.0))));
                assert_eq!((*above, *below, *hold), (Some(3.0), Some(4.0), Some(Duration::from_secs(5))));
            }
            other => panic!("{other:?}"),
        }
        // An event trigger's feature is `action` unless given.
        let t: Trigger = serde_json::from_value(json!({"event": {"devices": ["demo:button"]}})).unwrap();
        assert!(matches!(t.kind, TriggerKind::Event { ref feature, .. } if feature == "action"), "{t:?}");
    }

    #[test]
    fn a_typo_in_the_text_form_is_reported_with_its_path_and_place() {
        use crate::text::{TextError, automation_from_yaml};
        let at = |text: &str| match automation_from_yaml(text).unwrap_err() {
            TextError::Invalid { line, column, path, message } => (line, column, path, message),
            other => panic!("{other:?}"),
        };
        let text = "id: x\nname: X\ntriggers: []\nactions:\n  - alias: lights\n    set:\n      area: hall\n      tansition: 2\n";
        let (line, column, path, message) = at(text);
        assert_eq!((line, column, path.as_str()), (8, 7, "actions[0].set.tansition"));
        assert_eq!(
            message,
            "unknown field `tansition`, expected one of `devices`, `area`, `capability`, `values`, `toggle`, `transition`"
        );
        let text = "id: x\nname: X\ntriggers: []\nactions:\n  - if:\n      conditions: []\n      then: [{set: {area: hall, tansition: 2}}]\n";
        assert_eq!(at(text).2, "actions[0].if.then[0].set.tansition");

        let door = "{devices: [demo:door], feature: contact}";
        for (trigger, want) in [
            (format!("bogus: 1\n    state: {door}"), (4, 5, "triggers[0].bogus")),
            (
                "state: {devices: [demo:door], feature: contact, colour: 1}".to_owned(),
                (4, 53, "triggers[0].state.colour"),
            ),
            (format!("state: {door}\n    time: {{at: '07:00'}}"), (4, 5, "triggers[0]")),
        ] {
            let text = format!("id: x\nname: X\ntriggers:\n  - {trigger}\nactions: []\n");
            let (line, column, path, message) = at(&text);
            assert_eq!((line, column, path.as_str()), want, "{message}");
            let key = if path == "triggers[0]" { "`state`, `time`" } else { path.rsplit('.').next().unwrap_or("") };
            assert!(message.contains(key), "{message}");
        }
    }
}
