//! What a run records about itself: why it started, each condition's result, each action with
//! its time and outcome, and why it stopped. Served by the API so a household can see why an
//! automation did or did not do something.

use hearth_sdk::{Context, DeviceId, Timestamp, Value};
use serde::{Deserialize, Serialize};

use crate::say::Say;

/// Steps a trace keeps; a run that does more (a long `repeat`) records that it stopped counting.
pub const MAX_STEPS: usize = 200;

/// What started a run, with the values templates can use (`{{ trigger.payload }}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Fired {
    /// Index of the trigger in the automation (`None` when started by hand or by catch-up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The trigger's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The kind: `state`, `event`, `availability`, `time`, `interval`, `sun`, `start`, `mqtt`,
    /// `webhook`, `manual`, `catch_up`.
    pub kind: String,
    /// In words: `demo:hall_motion occupancy changed from true to false`.
    pub description: String,
    /// When.
    pub at: Timestamp,
    /// The device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// The feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The value before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The value after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// The device event (`single`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The MQTT topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The MQTT payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The webhook's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The context of what caused it (a state change's context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// `description` as data, for the UI to say in the user's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
}

impl From<Say> for Fired {
    /// A `Fired` described by `say` (its other fields empty).
    fn from(say: Say) -> Fired {
        Fired { description: say.to_string(), say: Some(say), ..Fired::default() }
    }
}

/// One condition's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionResult {
    /// Where it is (`conditions[0].or[1]`).
    pub path: String,
    /// Whether it held.
    pub result: bool,
    /// What was compared: `demo:hall_lamp state is false (wanted true)`.
    pub detail: String,
    /// `detail` as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
}

impl ConditionResult {
    /// The result at `path`, described by `say`.
    pub fn new(path: &str, result: bool, say: Say) -> ConditionResult {
        ConditionResult { path: path.to_owned(), result, detail: say.to_string(), say: Some(say) }
    }
}

/// One action as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Where it is (`actions[2].then[0]`).
    pub path: String,
    /// Its alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Its kind (`set`, `delay`, ...).
    pub action: String,
    /// When it ran.
    pub at: Timestamp,
    /// Whether it did what it should.
    pub ok: bool,
    /// What happened: `sent to demo:living_lamp`, `waiting 30s, until ...`.
    pub outcome: String,
    /// `outcome` as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
}

impl Step {
    /// A step of `action` at `path`, described by `say`.
    pub fn new(path: String, action: &str, at: Timestamp, ok: bool, say: Say) -> Step {
        Step { path, alias: None, action: action.to_owned(), at, ok, outcome: say.to_string(), say: Some(say) }
    }

    /// Marks the step failed with `error` (an adapter's words).
    pub fn failed(&mut self, error: &str) {
        self.ok = false;
        let was = self.say.take();
        let say = match was {
            Some(step) => Say::Failed { step: Box::new(step), error: error.to_owned() },
            None => Say::CallFailed { error: format!("{}; {error}", self.outcome) },
        };
        self.outcome = say.to_string();
        self.say = Some(say);
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKind {
    /// Every action ran.
    Finished,
    /// A condition did not hold; nothing was done.
    ConditionsFailed,
    /// Mode `single` and a run was going: this trigger was ignored.
    Ignored,
    /// `max_runs` runs were already going or waiting.
    Dropped,
    /// A new trigger restarted the automation (mode `restart`).
    Restarted,
    /// A `stop` action ended it.
    Stopped,
    /// A wait timed out (without `continue_on_timeout`).
    Timeout,
    /// The context chain was too deep: automations were triggering each other in a loop.
    Loop,
    /// The automation was edited, turned off or removed while the run was going.
    Cancelled,
    /// Something went wrong (a scene that is gone, too many actions without waiting).
    Error,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    /// Why, as a kind.
    pub kind: EndKind,
    /// Why, in words.
    pub message: String,
    /// `message` as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub say: Option<Say>,
}

/// A run's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The run's id.
    pub run: u64,
    /// The automation.
    pub automation: String,
    /// The automation's version the run used.
    pub version: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// What started it.
    pub trigger: Fired,
    /// The run's context id (commands it sent carry it).
    pub context: String,
    /// Each condition's result, in the order they were checked.
    #[serde(default)]
    pub conditions: Vec<ConditionResult>,
    /// Each action as it ran.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Steps not recorded (beyond [`MAX_STEPS`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps_dropped: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ending: Option<Ending>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Trace {
    /// Records a step; returns its index (for outcomes reported later), `None` past the cap.
    pub fn step(&mut self, step: Step) -> Option<usize> {
        if self.steps.len() >= MAX_STEPS {
            self.steps_dropped += 1;
            return None;
        }
        self.steps.push(step);
        Some(self.steps.len() - 1)
    }

    /// Ends the trace.
    pub fn end(&mut self, at: Timestamp, kind: EndKind, say: Say) {
        if self.ending.is_none() {
            self.ended_at = Some(at);
            self.ending = Some(Ending { kind, message: say.to_string(), say: Some(say) });
        }
    }
}
