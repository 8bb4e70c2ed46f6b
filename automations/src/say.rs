//! What the hub says to people, as data: a code and its values. Traces (why a run started, each
//! step, each condition, how it ended), dry runs, validation faults and the notes of the audit
//! log carry a saying next to their English words (`description`, `outcome`, `detail`,
//! `message`), and the web UI says it in the user's language from the same code and values (its
//! catalogs hold a `say.<code>` text for every code here; a test checks both ways).
//!
//! Each saying is declared once, with its English words: `{name}` stands for a value. A value is
//! written as its text; a list as its items joined by `, `; a saying inside a saying as its words;
//! a missing value as `unknown`.

use std::fmt;

use hearth_sdk::{Timestamp, Value};
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// One kind of saying: its code, the names of its values, and its English words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saying {
    /// The code (`sent`), as the API gives it in `"code"`.
    pub code: &'static str,
    /// The names of its values.
    pub fields: &'static [&'static str],
    /// The English words, with `{name}` for each value.
    pub english: &'static str,
}

macro_rules! sayings {
    ($( $(#[doc = $doc:literal])* $variant:ident $({ $($field:ident : $ty:ty),* $(,)? })? = $code:literal => $en:literal; )*) => {
        /// A saying: see the module's documentation.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "code")]
        #[allow(missing_docs)]
        pub enum Say {
            $( $(#[doc = $doc])* #[serde(rename = $code)] $variant $({ $($field: $ty),* })? ),*
        }

        /// Every saying, in declaration order.
        pub const SAYINGS: &[Saying] = &[
            $( Saying { code: $code, fields: &[$($(stringify!($field)),*)?], english: $en } ),*
        ];
    };
}

sayings! {
    // ----- what started a run -----------------------------------------------------------------
    /// A trigger that was due while the hub was down (`kind` is the trigger's kind).
    CaughtUp { trigger: usize, kind: String, due: Timestamp } = "caught_up"
        => "caught up: triggers[{trigger}] ({kind}) was due at {due} while the hub was down";
    HubStarted = "hub_started" => "the hub started";
    MqttMessage { topic: String } = "mqtt_message" => "MQTT message on `{topic}`";
    WebhookCalled { hook: String } = "webhook_called" => "webhook `{hook}` was called";
    StartedByHand { by: String } = "started_by_hand" => "started by hand by {by}";
    TimeIs { time: String } = "time_is" => "it is {time}";
    Every { every: Duration } = "every" => "every {every}";
    /// `event` is `sunrise`, `sunset`, `dawn` or `dusk`.
    SunEvent { event: String, offset_secs: i64 } = "sun_event" => "{event} with offset {offset_secs}s";
    TimeCame = "time_came" => "the time came";
    DryRun = "dry_run" => "dry run";
    StateHeld { device: String, feature: String, value: Value, hold: Duration } = "state_held"
        => "{device} {feature} has been {value} for {hold}";
    StateChanged { device: String, feature: String, old: Option<Value>, new: Value } = "state_changed"
        => "{device} {feature} changed from {old} to {new}";
    StateStayed { device: String, feature: String, new: Value, hold: Duration } = "state_stayed"
        => "{device} {feature} changed to {new} and stayed so for {hold}";
    DeviceEvent { device: String, feature: String, event: String } = "device_event"
        => "{device} {feature}: {event}";
    /// `state` is `online`, `offline` or `unknown`.
    WentOnOff { device: String, state: String } = "went" => "{device} went {state}";
    TriggerKind { kind: String } = "trigger_kind" => "{kind}";

    // ----- what a step did -----------------------------------------------------------------------
    Sent { devices: Vec<String> } = "sent" => "sent to {devices}";
    NoDeviceMatched = "no_device_matched" => "no device matched";
    SentButMissing { devices: Vec<String>, missing: Vec<String> } = "sent_but_missing"
        => "sent to {devices}; no such device: {missing}";
    NoSuchDevice { missing: Vec<String> } = "no_such_device" => "no device matched; no such device: {missing}";
    NoScene { scene: String } = "no_scene" => "no scene `{scene}`";
    SceneApplied { name: String, devices: Vec<String> } = "scene_applied" => "applied `{name}` to {devices}";
    Waiting { delay: Duration, until: Timestamp } = "waiting" => "waiting {delay}, until {until}";
    /// `kinds` are trigger kinds.
    WaitingFor { kinds: Vec<String> } = "waiting_for" => "waiting for {kinds}";
    WaitingForUntil { kinds: Vec<String>, until: Timestamp } = "waiting_for_until"
        => "waiting for {kinds}, at most until {until}";
    WaitEnded { why: Box<Say> } = "wait_ended" => "the wait ended: {why}";
    WaitTimedOutGoingOn = "wait_timed_out_going_on" => "timed out; going on (continue_on_timeout)";
    TookThen = "took_then" => "took `then`";
    TookElse = "took_else" => "took `else`";
    TookOption { option: usize } = "took_option" => "took option {option}";
    TookDefault = "took_default" => "took `default`";
    NoOptionHeld = "no_option_held" => "no option held; nothing to do";
    RoundOne = "round_one" => "round 1";
    NothingToRepeat = "nothing_to_repeat" => "nothing to repeat";
    RepeatEndedAfterOne = "repeat_ended_after_one" => "ended after 1 round";
    RepeatEnded { rounds: u32 } = "repeat_ended" => "ended after {rounds} rounds";
    StartedBranches { count: usize } = "started_branches" => "started {count} branches";
    Published { topic: String } = "published" => "published on `{topic}`";
    Calling { method: String, url: String } = "calling" => "calling {method} {url}";
    Answered { status: String } = "answered" => "answered {status}";
    CallFailed { error: String } = "call_failed" => "failed: {error}";
    Notified { message: String } = "notified" => "notified: {message}";
    TurnedOn { automation: String } = "turned_on" => "turned on `{automation}`";
    TurnedOff { automation: String } = "turned_off" => "turned off `{automation}`";
    NoAutomation { automation: String } = "no_automation" => "no automation `{automation}`";
    StoppedBecause { reason: String } = "stopped_because" => "stopped: {reason}";
    StoppedByAction = "stopped_by_action" => "stopped: a stop action";
    /// A step whose result came back as a failure (`error` is the adapter's words).
    Failed { step: Box<Say>, error: String } = "failed" => "{step}; failed: {error}";

    // ----- how a run ended -------------------------------------------------------------------------
    EveryActionRan = "every_action_ran" => "every action ran";
    ConditionsFailed = "conditions_failed" => "a condition did not hold; nothing was done";
    IgnoredSingle = "ignored_single" => "a run was still going (mode single); this trigger was ignored";
    Restarted = "restarted" => "restarted by a new trigger (mode restart)";
    DroppedQueued { max: usize } = "dropped_queued" => "{max} runs were already going or waiting (max_runs)";
    DroppedParallel { max: usize } = "dropped_parallel" => "{max} runs were already going (max_runs)";
    /// `chain` is the automations' ids joined by ` → `.
    Loop { chain: String, depth: u32, max: u32 } = "loop"
        => "stopped as a loop: the chain of automations {chain} is {depth} deep, more than {max} allowed";
    Changed = "changed" => "the automation was changed";
    TurnedOffMidRun = "turned_off_mid_run" => "the automation was turned off";
    Removed = "removed" => "the automation was removed";
    RemovedWhileDown = "removed_while_down" => "the automation was removed while the hub was down";
    ChangedWhileDown = "changed_while_down" => "the automation was changed while the hub was down";
    TurnedOffWhileDown = "turned_off_while_down" => "the automation was turned off while the hub was down";
    WaitTimedOut { path: String } = "wait_timed_out" => "{path}: the wait timed out";
    TooManySteps { max: u32 } = "too_many_steps"
        => "stopped after {max} actions without waiting (a repeat without a delay?)";
    PositionGone = "position_gone" => "the run's position no longer exists in the automation";
    SceneGone { path: String, scene: String } = "scene_gone" => "{path}: no scene `{scene}`";
    TurnedItselfOff = "turned_itself_off" => "the automation turned itself off";
    /// A `stop` action's reason.
    StopReason { reason: String } = "stop_reason" => "{reason}";
    StopAction = "stop_action" => "a stop action";

    // ----- what a condition found ------------------------------------------------------------------
    Reading { device: String, feature: String, value: Option<Value> } = "reading" => "{device} {feature} is {value}";
    Equals { value: Value } = "equals" => "= {value}";
    Above { limit: f64 } = "above" => "> {limit}";
    Below { limit: f64 } = "below" => "< {limit}";
    StateAll { readings: Vec<Say>, wanted: Vec<Say> } = "state_all" => "{readings} (wanted all {wanted})";
    StateAny { readings: Vec<Say>, wanted: Vec<Say> } = "state_any" => "{readings} (wanted any {wanted})";
    NoReadings { wanted: Vec<Say> } = "no_readings" => "no device matched (wanted {wanted})";
    /// `weekday` is `mon` ... `sun`.
    LocalTime { time: String, weekday: String } = "local_time" => "local time is {time} on {weekday}";
    NoLocation = "no_location" => "no location is set ([location] in the configuration)";
    SunAt { elevation: f64 } = "sun_at" => "the sun is at {elevation}°";
    StartedByTrigger { trigger: String } = "started_by_trigger" => "started by trigger `{trigger}`";
    StartedWithoutTriggerId = "started_without_trigger_id" => "started by trigger without an id";
    AllOf = "all_of" => "all of";
    AnyOf = "any_of" => "any of";
    Not = "not" => "not";

    // ----- what is wrong with an automation or a scene (validation faults) ------------------------
    NotAnId { id: String } = "not_an_id" => "`{id}` is not an id: use lowercase letters, digits and _";
    EmptyName = "empty_name" => "must not be empty";
    MaxRunsZero = "max_runs_zero" => "must be at least 1";
    NoTriggers = "no_triggers" => "an automation needs at least one trigger";
    NoActions = "no_actions" => "an automation needs at least one action";
    NamesNoDevice = "names_no_device" => "names no device: give `devices`, or an `area` and/or a `capability`";
    DevicesAndAreaAndCapability = "devices_and_area_and_capability"
        => "names `devices` and also an `area` and a `capability`: give either `devices`, or an `area` and/or a `capability`";
    DevicesAndArea = "devices_and_area"
        => "names `devices` and also an `area`: give either `devices`, or an `area` and/or a `capability`";
    DevicesAndCapability = "devices_and_capability"
        => "names `devices` and also a `capability`: give either `devices`, or an `area` and/or a `capability`";
    NoDevice { device: String } = "no_device" => "no device `{device}`";
    NoArea { area: String, areas: Vec<String> } = "no_area" => "no area `{area}`; areas are: {areas}";
    NoDeviceMatchesTarget = "no_device_matches_target" => "no device matches this area and capability";
    NoFeature { device: String, feature: String, features: Vec<String> } = "no_feature"
        => "device `{device}` has no feature `{feature}`; its features are: {features}";
    NoFeatureInTarget { feature: String } = "no_feature_in_target" => "no device of the target has a feature `{feature}`";
    /// `value_type` is `bool`, `number`, `enum`, `text`, `color`, `list`, `object`.
    NeedsNumber { feature: String, value_type: String } = "needs_number"
        => "`above` and `below` need a number feature; `{feature}` is {value_type}";
    NotAnEvent { event: String, feature: String, events: Vec<String> } = "not_an_event"
        => "`{event}` is not an event of `{feature}`; its events are: {events}";
    TooOften { every: Duration } = "too_often" => "{every} is too often: at least 1s";
    OffsetTooLarge = "offset_too_large" => "an offset is at most 12 hours either way";
    SunNeedsLocation = "sun_needs_location"
        => "the sun needs the home's location: set latitude and longitude under [location] in hearth.toml";
    NotATopicFilter { topic: String } = "not_a_topic_filter"
        => "`{topic}` is not a topic filter: `+` stands for a whole level, `#` only at the end";
    AlwaysHolds = "always_holds" => "always holds: give `is`, `above` or `below`";
    EmptyWindow { time: String } = "empty_window"
        => "`after` and `before` are both {time}: an empty window that never holds (leave both out for the whole day)";
    BadElevation = "bad_elevation" => "an elevation is from -90 to 90 degrees";
    NoTriggerId { trigger: String, triggers: Vec<String> } = "no_trigger_id"
        => "no trigger has the id `{trigger}`; trigger ids are: {triggers}";
    SetsNothingGive = "sets_nothing_give" => "sets nothing: give `values` or `toggle`";
    SetsNothing = "sets_nothing" => "sets nothing";
    ReadOnly { feature: String } = "read_only" => "feature `{feature}` is read-only";
    NotToggleable { feature: String } = "not_toggleable" => "feature `{feature}` is not a settable true/false feature";
    BadTransition = "bad_transition" => "a transition is from 0 to 3600 seconds";
    WaitNeedsTrigger = "wait_needs_trigger" => "a wait needs at least one trigger";
    NeverEnds = "never_ends" => "give `count`, `while` or `until`, or it would never end";
    NotPublishable { topic: String } = "not_publishable" => "`{topic}` cannot be published to: a topic has no `+` or `#`";
    NotAnAddress { url: String } = "not_an_address" => "`{url}` is not an http:// or https:// address";
    NotAMethod { method: String } = "not_a_method" => "`{method}` is not GET, POST, PUT or DELETE";
    SceneNeedsDevice = "scene_needs_device" => "a scene needs at least one device";
    TwiceInImport { id: String } = "twice_in_import" => "`{id}` appears twice in the import";
    /// `value_type` is the type the feature takes (as in `needs_number`).
    /// `error` is the SDK's English words.
    WrongType { feature: String, value_type: String, value: Value, error: String } = "wrong_type" => "{error}";
    OutOfRange { feature: String, value: f64, min: f64, max: f64 } = "out_of_range"
        => "feature `{feature}` takes {min} to {max}, not {value}";
    TooLow { feature: String, value: f64, min: f64 } = "too_low" => "feature `{feature}` takes at least {min}, not {value}";
    TooHigh { feature: String, value: f64, max: f64 } = "too_high" => "feature `{feature}` takes at most {max}, not {value}";
    NotAllowed { feature: String, value: String, allowed: Vec<String> } = "not_allowed"
        => "feature `{feature}` takes one of {allowed}, not `{value}`";
    TooLong { feature: String, length: usize, max_length: usize } = "too_long"
        => "feature `{feature}` takes at most {max_length} characters, not {length}";
    /// Another refusal, in the SDK's English.
    Refused { error: String } = "refused" => "{error}";
    TemplateNotClosed { at: usize } = "template_not_closed" => "`{{` at byte {at} is never closed with `}}`";
    TemplateFilter { inner: String, filter: String } = "template_filter"
        => "`{{ {inner} }}`: the only filter is `json`, not `{filter}`";
    TemplateNotTrigger { inner: String } = "template_not_trigger" => "`{{ {inner} }}`: only `trigger.<name>` can be used here";
    TemplateUnknown { name: String, names: Vec<String> } = "template_unknown"
        => "`trigger.{name}` is not known; use one of: {names}";

    // ----- notes of the audit log (the hub's, beside its action codes) -----------------------------
    AuditVersion { version: u64 } = "audit_version" => "version {version}";
    AuditSession { session: i64 } = "audit_session" => "session {session}";
    AuditUnknownAccount = "audit_unknown_account" => "unknown account";
    /// `scope` is `account` or `address`.
    AuditLocked { scope: String, secs: u64 } = "audit_locked" => "{scope} locked for {secs} s";
    AuditOtherSessionsEnded = "audit_other_sessions_ended" => "other sessions ended";
    /// `role` is `admin` or `member`.
    AuditRole { role: String } = "audit_role" => "role {role}";
    AuditAreas { areas: Vec<String> } = "audit_areas" => "areas {areas}";
    AuditEveryArea = "audit_every_area" => "every area";
    AuditPasswordSet = "audit_password_set" => "password set, sessions ended";
    /// Several notes of one entry.
    AuditChanges { changes: Vec<Say> } = "audit_changes" => "{changes}";
    /// A token's name, as its owner wrote it.
    AuditLabel { label: String } = "audit_label" => "{label}";
    /// `token_kind` is a token's kind (`api`, `session`).
    AuditToken { token_kind: String, name: String, user: String } = "audit_token" => "{token_kind} `{name}` of {user}";
    AuditCommandLine = "audit_command_line" => "from the command line";
    AuditFromCommandLine { note: Box<Say> } = "audit_from_command_line" => "{note}; from the command line";
    /// A restored backup: when and on which machine it was made.
    AuditRestored { made: Timestamp, hostname: String } = "audit_restored" => "backup made {made} on `{hostname}`";
    AuditRestoredAtStart { made: Timestamp, hostname: String } = "audit_restored_at_start"
        => "backup made {made} on `{hostname}`, restored at start: the database was damaged";

    // ----- what a dry run would do ----------------------------------------------------------------
    SetValue { feature: String, value: Value } = "set_value" => "{feature} = {value}";
    Toggle { feature: String } = "toggle" => "toggle {feature}";
    PlanSet { changes: Vec<Say>, devices: Vec<String> } = "plan_set" => "set {changes} on {devices}";
    PlanSetOver { changes: Vec<Say>, devices: Vec<String>, seconds: f64 } = "plan_set_over"
        => "set {changes} on {devices} over {seconds}s";
    PlanSetNoDevice { changes: Vec<Say> } = "plan_set_no_device" => "set {changes} on no device";
    PlanScene { scene: String } = "plan_scene" => "apply scene `{scene}`";
    PlanDelay { delay: Duration } = "plan_delay" => "wait {delay}";
    PlanWait { kinds: Vec<String> } = "plan_wait" => "wait for {kinds}";
    PlanWaitAtMost { kinds: Vec<String>, timeout: Duration } = "plan_wait_at_most" => "wait for {kinds} (at most {timeout})";
    PlanIfHolds = "plan_if_holds" => "if: the conditions hold now, so:";
    PlanIfNot = "plan_if_not" => "if: the conditions do not hold now, so:";
    PlanOption { option: usize } = "plan_option" => "choose: option {option} holds now, so:";
    PlanDefault = "plan_default" => "choose: no option holds now, so the default:";
    PlanRepeatTimes { count: u32 } = "plan_repeat_times" => "repeat {count} times:";
    PlanRepeatWhile = "plan_repeat_while" => "repeat while its conditions say:";
    PlanParallel = "plan_parallel" => "at the same time:";
    PlanPublish { payload: String, topic: String } = "plan_publish" => "publish `{payload}` on `{topic}`";
    PlanCall { method: String, url: String } = "plan_call" => "call {method} {url}";
    PlanNotify { message: String } = "plan_notify" => "notify: {message}";
    PlanEnable { automation: String } = "plan_enable" => "turn on automation `{automation}`";
    PlanDisable { automation: String } = "plan_disable" => "turn off automation `{automation}`";
    PlanStop = "plan_stop" => "stop";
    PlanStopBecause { reason: String } = "plan_stop_because" => "stop: {reason}";
}

impl fmt::Display for Say {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(&english(&json))
    }
}

/// The English words of a saying as JSON (its code and values).
fn english(json: &serde_json::Value) -> String {
    let Some(code) = json.get("code").and_then(serde_json::Value::as_str) else { return value_words(json) };
    let Some(saying) = SAYINGS.iter().find(|s| s.code == code) else { return code.to_owned() };
    let mut out = String::new();
    let mut rest = saying.english;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if after[..close].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                let name = &after[..close];
                let value = json.get(name).unwrap_or(&serde_json::Value::Null);
                match value.as_array() {
                    // Notes of several kinds, whose own words may hold commas.
                    Some(items) if name == "changes" => {
                        out.push_str(&items.iter().map(value_words).collect::<Vec<_>>().join("; "))
                    }
                    _ => out.push_str(&value_words(value)),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn value_words(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unknown".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "(none)".to_owned(),
        serde_json::Value::Array(items) => items.iter().map(value_words).collect::<Vec<_>>().join(", "),
        serde_json::Value::Object(o) if o.contains_key("code") => english(v),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_fills_values_lists_and_inner_sayings() {
        let s = Say::SentButMissing { devices: vec!["demo:a".into(), "demo:b".into()], missing: vec!["demo:x".into()] };
        assert_eq!(s.to_string(), "sent to demo:a, demo:b; no such device: demo:x");
        let inner = Say::WaitEnded { why: Box::new(Say::MqttMessage { topic: "a/b".into() }) };
        assert_eq!(inner.to_string(), "the wait ended: MQTT message on `a/b`");
        let reading = Say::Reading { device: "demo:t".into(), feature: "temperature".into(), value: None };
        assert_eq!(reading.to_string(), "demo:t temperature is unknown");
        let changed = Say::StateChanged {
            device: "demo:l".into(),
            feature: "on".into(),
            old: Some(Value::Bool(false)),
            new: Value::Bool(true),
        };
        assert_eq!(changed.to_string(), "demo:l on changed from false to true");
        assert_eq!(Say::Every { every: "5m".parse().unwrap() }.to_string(), "every 5m");
    }

    #[test]
    fn the_api_gives_the_code_and_values() {
        let s = Say::Sent { devices: vec!["demo:a".into()] };
        assert_eq!(serde_json::to_value(&s).unwrap(), serde_json::json!({"code": "sent", "devices": ["demo:a"]}));
        let back: Say = serde_json::from_value(serde_json::json!({"code": "hub_started"})).unwrap();
        assert_eq!(back, Say::HubStarted);
    }

    #[test]
    fn every_saying_has_a_distinct_code_and_its_words_name_only_its_values() {
        let mut codes: Vec<&str> = SAYINGS.iter().map(|s| s.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), SAYINGS.len(), "two sayings share a code");
        for s in SAYINGS {
            for part in s.english.split('{').skip(1) {
                let Some((name, _)) = part.split_once('}') else { continue };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                assert!(s.fields.contains(&name), "`{}` names `{name}`, which it does not have", s.code);
            }
        }
    }
}
