//! Small pure pieces the engine is made of: MQTT topic filters, which devices a target means,
//! whether a change matches a state trigger, and the `{{ trigger.* }}` templates.

use std::collections::BTreeMap;

use hearth_sdk::{Device, DeviceId, Value};

use crate::model::Target;
use crate::say::Say;
use crate::trace::Fired;

/// Whether `topic` matches the MQTT filter (`+` one level, `#` the rest).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return !topic.starts_with('$') || filter.starts_with('$'),
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The devices a target means now (areas and capabilities are looked up at the time).
pub fn resolve<'a>(home: &'a BTreeMap<DeviceId, Device>, target: &Target) -> Vec<&'a Device> {
    if !target.devices.is_empty() {
        return target.devices.iter().filter_map(|id| home.get(id)).collect();
    }
    home.values().filter(|d| in_target(d, target)).collect()
}

/// Whether a device is part of a target.
pub fn in_target(d: &Device, target: &Target) -> bool {
    if !target.devices.is_empty() {
        return target.devices.contains(&d.id);
    }
    if target.area.is_none() && target.capability.is_none() {
        return false;
    }
    target.area.as_ref().is_none_or(|a| d.area.as_ref() == Some(a))
        && target.capability.is_none_or(|c| d.features.iter().any(|f| f.capability == c))
}

/// Numbers are equal when they are (within a rounding error); other values when identical.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if matches!(a, Value::Number(_)) && matches!(b, Value::Number(_)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

/// Whether a value is in the range `above`/`below` (each optional, exclusive).
pub fn in_range(v: Option<&Value>, above: Option<f64>, below: Option<f64>) -> bool {
    let Some(n) = v.and_then(Value::as_f64) else { return false };
    above.is_none_or(|a| n > a) && below.is_none_or(|b| n < b)
}

/// A state trigger's test, as data.
#[derive(Debug, Clone, Copy)]
pub struct StateTest<'a> {
    /// The value before.
    pub from: Option<&'a Value>,
    /// The value after.
    pub to: Option<&'a Value>,
    /// Above this.
    pub above: Option<f64>,
    /// Below this.
    pub below: Option<f64>,
}

impl StateTest<'_> {
    /// No `from`, `to` or range: any change fires (and with `for`, the value must then stay).
    pub fn any_change(&self) -> bool {
        self.from.is_none() && self.to.is_none() && !self.ranged()
    }

    fn ranged(&self) -> bool {
        self.above.is_some() || self.below.is_some()
    }

    /// Whether the new value is one this trigger waits for (ignoring `from`).
    pub fn holds(&self, new: &Value) -> bool {
        if let Some(to) = self.to
            && !same(new, to)
        {
            return false;
        }
        if self.ranged() && !in_range(Some(new), self.above, self.below) {
            return false;
        }
        if self.to.is_none()
            && !self.ranged()
            && let Some(from) = self.from
        {
            return !same(new, from);
        }
        true
    }

    /// Whether the change from `old` to `new` fires the trigger: the new value holds, the old
    /// one is `from` (when given), and a range is crossed into (not moved within).
    pub fn fires(&self, old: Option<&Value>, new: &Value) -> bool {
        if !self.holds(new) {
            return false;
        }
        if let Some(from) = self.from
            && !old.is_some_and(|o| same(o, from))
        {
            return false;
        }
        if self.ranged() && in_range(old, self.above, self.below) {
            return false;
        }
        true
    }
}

/// A value as text: strings bare, whole numbers without a fraction, the rest as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// The names `{{ trigger.<name> }}` may use.
pub const TEMPLATE_NAMES: &[&str] =
    &["id", "kind", "device", "feature", "value", "old", "event", "topic", "payload", "body", "at", "description"];

/// Each `{{ ... }}` of a text: the name inside, or an error saying what is wrong. A name may be
/// followed by `| json`, which writes the value as a JSON string (quotes and escapes), for JSON
/// bodies and payloads.
pub fn template_names(text: &str) -> Result<Vec<String>, Say> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(Say::TemplateNotClosed { at: text.len() - rest.len() + start });
        };
        let inner = after[..end].trim();
        let (expr, filter) = match inner.split_once('|') {
            Some((e, f)) => (e.trim(), Some(f.trim())),
            None => (inner, None),
        };
        if let Some(f) = filter
            && f != "json"
        {
            return Err(Say::TemplateFilter { inner: inner.to_owned(), filter: f.to_owned() });
        }
        let Some(name) = expr.strip_prefix("trigger.") else {
            return Err(Say::TemplateNotTrigger { inner: inner.to_owned() });
        };
        if !TEMPLATE_NAMES.contains(&name) {
            return Err(Say::TemplateUnknown {
                name: name.to_owned(),
                names: TEMPLATE_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            });
        }
        names.push(name.to_owned());
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Fills `{{ trigger.<name> }}` from what started the run; unknown or missing values become "".
pub fn render(text: &str, fired: &Fired) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end].trim();
        let (expr, json) = match inner.split_once('|') {
            Some((e, f)) => (e.trim(), f.trim() == "json"),
            None => (inner, false),
        };
        let value = field(fired, expr.strip_prefix("trigger.").unwrap_or("")).unwrap_or_default();
        if json {
            out.push_str(&serde_json::Value::String(value).to_string());
        } else {
            out.push_str(&value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn field(f: &Fired, name: &str) -> Option<String> {
    Some(match name {
        "id" => f.id.clone()?,
        "kind" => f.kind.clone(),
        "device" => f.device.as_ref()?.to_string(),
        "feature" => f.feature.clone()?,
        "value" => value_text(f.new.as_ref()?),
        "old" => value_text(f.old.as_ref()?),
        "event" => f.event.clone()?,
        "topic" => f.topic.clone()?,
        "payload" => f.payload.clone()?,
        "body" => f.body.clone()?,
        "at" => f.at.to_string(),
        "description" => f.description.clone(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(!topic_matches("a/+/c", "a/b/d"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("#", "$SYS/x"));
        assert!(topic_matches("a/b", "a/b"));
    }

    #[test]
    fn state_tests_fire_on_crossing_not_within() {
        let t = StateTest { from: None, to: None, above: Some(25.0), below: None };
        assert!(t.fires(Some(&Value::Number(24.0)), &Value::Number(26.0)));
        assert!(!t.fires(Some(&Value::Number(26.0)), &Value::Number(27.0)), "already above");
        assert!(t.fires(None, &Value::Number(30.0)), "first value above");
        let t = StateTest { from: Some(&Value::Bool(true)), to: Some(&Value::Bool(false)), above: None, below: None };
        assert!(t.fires(Some(&Value::Bool(true)), &Value::Bool(false)));
        assert!(!t.fires(None, &Value::Bool(false)));
        assert!(t.holds(&Value::Bool(false)));
        assert!(!t.holds(&Value::Bool(true)));
        let only_from = StateTest { from: Some(&Value::Bool(true)), to: None, above: None, below: None };
        assert!(only_from.holds(&Value::Bool(false)));
        assert!(!only_from.holds(&Value::Bool(true)));
    }

    #[test]
    fn templates_fill_from_the_trigger() {
        let f = Fired {
            kind: "mqtt".into(),
            topic: Some("doorbell/front".into()),
            payload: Some(r#"{"pressed": 1}"#.into()),
            new: Some(Value::Number(21.0)),
            ..Default::default()
        };
        assert_eq!(render("{{ trigger.payload }}", &f), r#"{"pressed": 1}"#);
        assert_eq!(render("t={{trigger.value}} on {{ trigger.topic }}!", &f), "t=21 on doorbell/front!");
        assert_eq!(render("{{ trigger.event }}x", &f), "x");
        assert_eq!(render(r#"{"p": {{ trigger.payload | json }}}"#, &f), r#"{"p": "{\"pressed\": 1}"}"#);
        assert_eq!(template_names("{{ trigger.payload|json }}").unwrap(), ["payload"]);
        assert!(
            template_names("{{ trigger.payload | upper }}")
                .unwrap_err()
                .to_string()
                .contains("the only filter is `json`")
        );
        assert_eq!(template_names("{{ trigger.payload }} {{ trigger.value }}").unwrap(), ["payload", "value"]);
        assert!(
            template_names("{{ trigger.colour }}").unwrap_err().to_string().contains("`trigger.colour` is not known")
        );
        assert!(template_names("{{ states('x') }}").unwrap_err().to_string().contains("only `trigger.<name>`"));
        assert!(template_names("{{ trigger.payload").unwrap_err().to_string().contains("never closed"));
    }
}
