//! Home Assistant MQTT discovery: configs (abbreviations, `~`, device-based configs,
//! availability) and the state, attribute and availability messages they make the registry
//! read, through the adapter's own `Registry`; and the template engine alone.
//!
//! Input: the first byte chooses.
//! - even: records `topic\npayload` separated by NUL (see `hearth_fuzz::records`), prefix
//!   `homeassistant`; discovery topics go to `Registry::config`, others to `Registry::message`.
//! - odd: a template, NUL, then a payload: the template is parsed, and evaluated and rendered
//!   with the payload as `value` (and `value_json` when it is JSON) and as a command value.
#![no_main]

use hearth_fuzz::{check_events, records, split_selector};
use hearth_mqtt_discovery::config::{self, DiscoveryTopic};
use hearth_mqtt_discovery::registry::Registry;
use hearth_mqtt_discovery::template::{Template, Val, Vars};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};

fn registry(data: &[u8]) {
    let mut r = Registry::new("homeassistant", &["Ignored".to_owned()]);
    for (topic, payload) in records(data) {
        let out = if r.is_discovery(topic) { r.config(topic, payload) } else { r.message(topic, payload) };
        check_events(&out.events);
        if let Some(t) = DiscoveryTopic::parse("homeassistant", topic) {
            let _ = t.key();
        }
        // The config layer alone: abbreviations expanded, `~` applied, device configs split.
        if let Ok(Json::Object(map)) = serde_json::from_slice::<Json>(payload) {
            let mut expanded: Map<String, Json> = map.clone();
            config::expand(&mut expanded);
            config::apply_topic_base(&mut expanded);
            let entity = config::normalize(map.clone());
            let _ = (entity.device(), entity.availability(), entity.origin_name(), entity.qos());
            for key in ["value_template", "command_template", "json_attributes_template"] {
                let _ = entity.template(key);
            }
            let _ = config::split_device_config(map);
        }
    }
    for topic in r.topics() {
        let _ = r.reads(&topic);
    }
    let _ = r.broker_lost("fuzz");
    check_events(&r.broker_back());
    let _ = r.unsupported(None);
}

fn template(data: &[u8]) {
    let (source, payload) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let (Ok(source), Ok(text)) = (std::str::from_utf8(source), std::str::from_utf8(payload)) else { return };
    let Ok(t) = Template::parse(source) else { return };
    assert_eq!(Template::parse(t.source()).ok().as_ref(), Some(&t), "a template parses the same twice");
    let _ = t.variables();
    let _ = t.check_variables(&["value", "value_json"]);
    let json: Option<Json> = serde_json::from_str(text).ok();
    let vars = Vars::payload(text, json.as_ref());
    if let Ok(v) = t.eval(&vars) {
        let _ = (v.to_string(), v.to_json());
    }
    let _ = t.render(&vars);
    let number = text.trim().parse::<f64>().map_or(Val::Str(text.to_owned()), Val::number);
    let command = Vars::command(number).with("red", Val::Int(255)).with("position", Val::Float(42.5));
    let _ = t.eval(&command);
}

fuzz_target!(|data: &[u8]| {
    match split_selector(data, 2) {
        Some((0, rest)) => registry(rest),
        Some((_, rest)) => template(rest),
        None => {}
    }
});
