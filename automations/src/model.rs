//! What an automation and a scene are: their JSON form, as the API takes it and stores it.
//!
//! An automation is triggers, conditions and actions with a run mode. Every part is one JSON
//! object with a single key naming its kind (`{"state": {...}}`, `{"delay": "30s"}`), the shape
//! Home Assistant users know from YAML. Validation against the devices that exist (with the
//! path of each fault) is separate from parsing.

use std::collections::BTreeMap;

use hearth_sdk::{AvailabilityState, Capability, DeviceId, Value};
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
/// area, narrowed to a capability (`{"area": "kitchen", "capability": "on_off"}`).
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

/// A trigger, with an optional id that conditions and `choose` can refer to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// Its id within the automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What starts a run.
    #[serde(flatten)]
    pub kind: TriggerKind,
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A feature's value changes (optionally from/to a value, crossing above/below a number,
    /// and staying so `for` a while).
    State {
        /// Whose feature.
        #[serde(flatten)]
        target: Target,
        /// The feature key.
        feature: String,
        /// The value before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Value>,
        /// The value after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Value>,
        /// Fires when the number rises above this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// Fires when the number falls below this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        /// ... and stays so this long.
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        hold: Option<Duration>,
    },
    /// A momentary device event (a button's `single`).
    Event {
        /// Whose event.
        #[serde(flatten)]
        target: Target,
        /// The feature (`action`).
        #[serde(default = "action")]
        feature: String,
        /// Only these events; any when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        events: Vec<String>,
    },
    /// A device goes online, offline or unknown.
    Availability {
        /// Which devices.
        #[serde(flatten)]
        target: Target,
        /// Only to this state.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<AvailabilityState>,
        /// ... and stays so this long.
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
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
    /// Sunrise, sunset, dawn or dusk, moved by an offset (`-30m` is half an hour before).
    Sun {
        /// Which.
        event: SunEvent,
        /// Seconds before (negative) or after.
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

/// A condition: must hold for the run to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Feature values: equal to `is`, or a number above/below.
    State {
        /// Whose feature.
        #[serde(flatten)]
        target: Target,
        /// The feature key.
        feature: String,
        /// Equal to this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is: Option<Value>,
        /// A number above this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        /// A number below this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        /// All the target's devices, or any.
        #[serde(default, rename = "match", skip_serializing_if = "is_default")]
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

/// An action, with an optional alias for traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// How traces name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// What an action does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Set features of the target's devices (and toggle bools), as one command each.
    Set {
        /// Which devices.
        #[serde(flatten)]
        target: Target,
        /// Feature key to value.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, Value>,
        /// Bool features to flip.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        toggle: Vec<String>,
        /// Seconds of transition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
        /// Any of these ends the wait.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip<T: serde::de::DeserializeOwned + Serialize + std::fmt::Debug + PartialEq>(v: serde_json::Value) -> T {
        let parsed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), v);
        parsed
    }

    #[test]
    fn a_motion_light_reads_and_writes_back_unchanged() {
        let a: Automation = round_trip(json!({
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
        }));
        assert_eq!(a.mode, Mode::Restart);
        match &a.triggers[1].kind {
            TriggerKind::State { hold, .. } => assert_eq!(*hold, Some(Duration::from_secs(120))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_trigger_and_action_kind_has_a_json_form() {
        let _: Automation = round_trip(json!({
            "id": "everything", "name": "Everything", "enabled": false, "mode": "queued", "max_runs": 3, "catch_up": "run_once",
            "triggers": [
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
                {"and": [{"state": {"devices": ["demo:living_climate"], "feature": "temperature", "above": 18.0, "below": 26.0}}]}
            ],
            "actions": [
                {"set": {"devices": ["demo:living_lamp"], "toggle": ["state"]}},
                {"scene": {"id": "evening", "transition": 2.0}},
                {"delay": "30s"},
                {"wait": {"triggers": [{"state": {"devices": ["demo:front_door"], "feature": "contact", "to": true}}], "timeout": "10m", "continue_on_timeout": true}},
                {"if": {"conditions": [{"trigger": {"id": "x"}}], "then": [{"stop": {"reason": "done"}}], "else": [{"notify": {"message": "Door still open", "title": "Hall"}}]}},
                {"repeat": {"count": 3, "while": [{"sun": {"above": 0.0}}], "actions": [{"delay": "1s"}]}},
                {"parallel": [[{"mqtt": {"topic": "hearth/echo", "payload": "{{ trigger.payload }}", "retain": true}}], [{"webhook": {"url": "http://127.0.0.1:9/hook", "method": "PUT", "body": "{}"}}]]},
                {"enable": "porch_light"},
                {"disable": "porch_light"},
                {"stop": {}}
            ]
        }));
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
}
