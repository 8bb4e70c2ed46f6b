//! Hearth's devices in Home Assistant: with `[home_assistant] publish = true`, every device is
//! published on the MQTT broker in Home Assistant's discovery format, with its state, its
//! availability and a command topic, so a household already running Home Assistant sees and
//! controls every Hearth device there. Off by default.
//!
//! # Topics (`hearth` is `base_topic`, `homeassistant` is `prefix`)
//! - `homeassistant/<component>/<node>/<object>/config` (retained): one entity per feature, or
//!   one `light` for a light's on/off, brightness, color temperature and color together. `node`
//!   is the device id made topic-safe (`demo:living_lamp` is `demo-living_lamp`).
//! - `hearth/<node>/state` (retained): every value of the device as one JSON object, keyed by
//!   feature (`{"state": true, "brightness": 40}`); lights also on
//!   `hearth/<node>/light/<object>/state` in the JSON light schema.
//! - `hearth/<node>/availability` (retained): `online` or `offline`; `hearth/status` is the
//!   hub's own (`offline` as its last will). An entity is available when both say `online`.
//! - `hearth/<node>/event/<feature>`: a button's events, `{"event_type": "single"}`.
//! - Commands from Home Assistant: `hearth/<node>/set` with `{"<feature>": value}`, and
//!   `hearth/<node>/light/<object>/set` in the JSON light schema. They are validated like any
//!   command and carry the origin `home_assistant`.
//!
//! - `homeassistant/status` (Home Assistant's own): on `online`, Home Assistant has (re)started
//!   and everything is published again, as devices that describe themselves do.
//!
//! Every config says `"origin": {"name": "Hearth"}` and device identifiers `hearth_<node>`: the
//! hub's own discovery reader ignores them, so nothing loops. A removed device, or a feature a
//! device no longer has, gets an empty retained config (Home Assistant then forgets it).
//!
//! Devices of the `mqtt_discovery` adapter are left out ([`publishes`]): they describe themselves
//! to Home Assistant on the same broker already, and published again they would show twice. The
//! configs an earlier version published for them are emptied once per run. zigbee2mqtt's devices
//! are published: zigbee2mqtt describes them to Home Assistant only when its own `homeassistant`
//! option is on (it is off unless turned on), and the hub's discovery reader leaves those configs
//! to the zigbee2mqtt adapter; a household that turns it on sees them twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use hearth_mqtt::{Link, LinkEvent};
use hearth_sdk::{
    Access, AvailabilityState, Capability, Color, CommandRequest, Device, DeviceId, Event, Feature, MqttSettings,
    Origin, Value, ValueType,
};
use rumqttc::{LastWill, QoS};
use serde_json::{Value as Json, json};
use tokio::sync::broadcast::error::RecvError;

use crate::core::CoreHandle;

/// `[home_assistant]` as the task needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// The base of Hearth's state and command topics.
    pub base: String,
}

/// Adapters whose devices describe themselves to Home Assistant already (see the module's text).
const SELF_DESCRIBED: &[&str] = &["mqtt_discovery"];

/// Whether Hearth publishes this device for Home Assistant: every device but those that describe
/// themselves to it already (Home Assistant's MQTT discovery, read by the `mqtt_discovery`
/// adapter), which would otherwise show twice.
pub fn publishes(id: &DeviceId) -> bool {
    !SELF_DESCRIBED.contains(&id.adapter())
}

/// The topic-safe name of a device: `<adapter>-<native>`, the native id's characters other than
/// letters, digits, `_` and `-` made `_`, with a short hash of the id when any was changed (so two
/// ids never share a node).
pub fn node(id: &DeviceId) -> String {
    let native = id.native();
    let safe: String =
        native.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if safe == native {
        format!("{}-{safe}", id.adapter())
    } else {
        format!("{}-{safe}-{:06x}", id.adapter(), fnv(id.as_str()) & 0xff_ffff)
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One entity: its discovery topic and config.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `homeassistant/<component>/<node>/<object>/config`.
    pub topic: String,
    /// The config.
    pub config: Json,
}

/// A light: the features of one endpoint that Home Assistant shows as one light.
#[derive(Debug, Clone, Default, PartialEq)]
struct Light {
    object: String,
    state: Option<String>,
    brightness: Option<String>,
    color_temp: Option<(String, f64, f64)>,
    color: Option<String>,
}

/// The lights of a device: every endpoint with a settable brightness, color temperature or color.
fn lights(d: &Device) -> Vec<Light> {
    let mut by_endpoint: BTreeMap<Option<String>, Light> = BTreeMap::new();
    for f in d.features.iter().filter(|f| f.access.set) {
        let light_part =
            matches!(f.capability, Capability::Brightness | Capability::ColorTemperature | Capability::Color);
        if light_part {
            by_endpoint.entry(f.endpoint.clone()).or_default();
        }
    }
    for f in d.features.iter().filter(|f| f.access.set) {
        let Some(l) = by_endpoint.get_mut(&f.endpoint) else { continue };
        match f.capability {
            Capability::OnOff if l.state.is_none() => l.state = Some(f.key.clone()),
            Capability::Brightness if l.brightness.is_none() => l.brightness = Some(f.key.clone()),
            Capability::ColorTemperature if l.color_temp.is_none() => {
                let (lo, hi) = match f.value_type {
                    ValueType::Number { min, max, .. } => (min.unwrap_or(2000.0), max.unwrap_or(6500.0)),
                    _ => (2000.0, 6500.0),
                };
                l.color_temp = Some((f.key.clone(), lo, hi));
            }
            Capability::Color if l.color.is_none() => l.color = Some(f.key.clone()),
            _ => {}
        }
    }
    by_endpoint
        .into_iter()
        .map(|(endpoint, mut l)| {
            l.object = endpoint.map_or_else(|| "light".to_owned(), |e| format!("light_{}", safe(&e)));
            l
        })
        .collect()
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

impl Light {
    fn keys(&self) -> Vec<&str> {
        [
            self.state.as_deref(),
            self.brightness.as_deref(),
            self.color_temp.as_ref().map(|c| c.0.as_str()),
            self.color.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Home Assistant's sensor device class and state class of a capability.
fn sensor_class(c: Capability) -> Option<(&'static str, &'static str)> {
    use Capability::*;
    Some(match c {
        Temperature | Setpoint => ("temperature", "measurement"),
        Humidity => ("humidity", "measurement"),
        Pressure => ("atmospheric_pressure", "measurement"),
        Illuminance => ("illuminance", "measurement"),
        Battery => ("battery", "measurement"),
        Power => ("power", "measurement"),
        Energy => ("energy", "total_increasing"),
        Voltage => ("voltage", "measurement"),
        Current => ("current", "measurement"),
        Co2 => ("carbon_dioxide", "measurement"),
        Pm25 => ("pm25", "measurement"),
        Pm10 => ("pm10", "measurement"),
        Voc => ("volatile_organic_compounds_parts", "measurement"),
        Moisture => ("moisture", "measurement"),
        SignalStrength => ("signal_strength", "measurement"),
        Duration => ("duration", "measurement"),
        _ => return None,
    })
}

/// Home Assistant's binary sensor device class of a capability, and whether `true` means `ON`.
fn binary_class(c: Capability) -> (Option<&'static str>, bool) {
    use Capability::*;
    match c {
        // A contact is true when closed; Home Assistant's door is on when open.
        Contact => (Some("door"), false),
        Occupancy => (Some("occupancy"), true),
        WaterLeak => (Some("moisture"), true),
        Smoke => (Some("smoke"), true),
        Gas => (Some("gas"), true),
        CarbonMonoxide => (Some("carbon_monoxide"), true),
        Tamper => (Some("tamper"), true),
        Vibration => (Some("vibration"), true),
        BatteryLow => (Some("battery"), true),
        OnOff => (Some("power"), true),
        _ => (None, true),
    }
}

/// The discovery configs of a device.
pub fn entities(d: &Device, s: &Settings) -> Vec<Entity> {
    let node = node(&d.id);
    let base = format!("{}/{node}", s.base);
    let device = json!({
        "identifiers": [format!("hearth_{node}")],
        "name": d.name,
        "manufacturer": d.manufacturer,
        "model": d.model,
        "sw_version": d.firmware,
    });
    let availability = json!([
        {"topic": format!("{}/status", s.base)},
        {"topic": format!("{base}/availability")},
    ]);
    let common = |object: &str, name: Option<&str>| -> serde_json::Map<String, Json> {
        let mut m = serde_json::Map::new();
        m.insert("unique_id".into(), json!(format!("hearth_{node}_{object}")));
        m.insert("object_id".into(), json!(format!("{node}_{object}")));
        m.insert("name".into(), name.map_or(Json::Null, |n| json!(n)));
        m.insert("device".into(), device.clone());
        m.insert("availability".into(), availability.clone());
        m.insert("availability_mode".into(), json!("all"));
        m.insert("origin".into(), json!({"name": "Hearth", "sw_version": env!("CARGO_PKG_VERSION")}));
        m
    };
    let topic = |component: &str, object: &str| format!("{}/{component}/{node}/{object}/config", s.prefix);
    let mut out = Vec::new();
    let lights = lights(d);
    for l in &lights {
        let mut m = common(&l.object, if l.object == "light" { None } else { Some(&l.object) });
        m.insert("schema".into(), json!("json"));
        m.insert("state_topic".into(), json!(format!("{base}/light/{}/state", l.object)));
        m.insert("command_topic".into(), json!(format!("{base}/light/{}/set", l.object)));
        let mut modes = Vec::new();
        if l.color.is_some() {
            modes.push("hs");
        }
        if let Some((_, lo, hi)) = &l.color_temp {
            modes.push("color_temp");
            m.insert("color_temp_kelvin".into(), json!(true));
            m.insert("min_kelvin".into(), json!(lo.round() as i64));
            m.insert("max_kelvin".into(), json!(hi.round() as i64));
        }
        if modes.is_empty() {
            modes.push(if l.brightness.is_some() { "brightness" } else { "onoff" });
        }
        m.insert("supported_color_modes".into(), json!(modes));
        if l.brightness.is_some() {
            m.insert("brightness".into(), json!(true));
            m.insert("brightness_scale".into(), json!(100));
        }
        out.push(Entity { topic: topic("light", &l.object), config: Json::Object(m) });
    }
    let in_light: Vec<&str> = lights.iter().flat_map(Light::keys).collect();
    let cover_state = d.features.iter().find(|f| f.capability == Capability::CoverState && f.access.set);
    for f in &d.features {
        if in_light.contains(&f.key.as_str())
            || (!f.access.observe && !f.access.set && f.capability != Capability::Action)
        {
            continue;
        }
        let object = safe(&f.key);
        let label = f.label.clone().unwrap_or_else(|| f.key.replace('_', " "));
        let mut m = common(&object, Some(&label));
        let value = format!("value_json['{}']", f.key.replace('\'', ""));
        let set = format!("{base}/set");
        let key = json_key(&f.key);
        if f.category != hearth_sdk::Category::Primary {
            m.insert("entity_category".into(), json!(if f.access.set { "config" } else { "diagnostic" }));
        }
        let component = match (&f.value_type, f.capability, f.access) {
            (_, Capability::Action, _) => {
                m.insert("state_topic".into(), json!(format!("{base}/event/{object}")));
                let types = match &f.value_type {
                    ValueType::Enum { values } => values.clone(),
                    _ => Vec::new(),
                };
                m.insert("event_types".into(), json!(types));
                m.insert("device_class".into(), json!("button"));
                "event"
            }
            (_, Capability::CoverPosition, Access { set: true, .. }) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("position_topic".into(), json!(format!("{base}/state")));
                m.insert("position_template".into(), json!(format!("{{{{ {value} }}}}")));
                m.insert("set_position_topic".into(), json!(set));
                m.insert("set_position_template".into(), json!(format!("{{\"{key}\": {{{{ position }}}}}}")));
                m.insert("value_template".into(), json!(format!("{{{{ 'open' if {value} > 0 else 'closed' }}}}")));
                if let Some(c) = cover_state {
                    let k = json_key(&c.key);
                    m.insert("command_topic".into(), json!(set));
                    m.insert("payload_open".into(), json!(format!("{{\"{k}\": \"open\"}}")));
                    m.insert("payload_close".into(), json!(format!("{{\"{k}\": \"close\"}}")));
                    m.insert("payload_stop".into(), json!(format!("{{\"{k}\": \"stop\"}}")));
                }
                "cover"
            }
            (_, Capability::CoverState, _)
                if d.features.iter().any(|x| x.capability == Capability::CoverPosition && x.access.set) =>
            {
                continue;
            }
            (ValueType::Bool, c, Access { set: true, .. }) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ 'ON' if {value} else 'OFF' }}}}")));
                m.insert("command_topic".into(), json!(set));
                m.insert("payload_on".into(), json!(format!("{{\"{key}\": true}}")));
                m.insert("payload_off".into(), json!(format!("{{\"{key}\": false}}")));
                m.insert("state_on".into(), json!("ON"));
                m.insert("state_off".into(), json!("OFF"));
                if c == Capability::OnOff && f.category == hearth_sdk::Category::Primary {
                    m.insert("device_class".into(), json!("switch"));
                }
                "switch"
            }
            (ValueType::Bool, c, _) => {
                let (class, on_when_true) = binary_class(c);
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                let (t, f_) = if on_when_true { ("ON", "OFF") } else { ("OFF", "ON") };
                m.insert("value_template".into(), json!(format!("{{{{ '{t}' if {value} else '{f_}' }}}}")));
                if let Some(class) = class {
                    m.insert("device_class".into(), json!(class));
                }
                "binary_sensor"
            }
            (ValueType::Number { min, max, step }, _, Access { set: true, .. }) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                m.insert("command_topic".into(), json!(set));
                m.insert("command_template".into(), json!(format!("{{\"{key}\": {{{{ value }}}}}}")));
                m.insert("min".into(), json!(min.unwrap_or(0.0)));
                m.insert("max".into(), json!(max.unwrap_or(100.0)));
                if let Some(step) = step {
                    m.insert("step".into(), json!(step));
                }
                m.insert("mode".into(), json!("box"));
                if let Some(u) = unit(f) {
                    m.insert("unit_of_measurement".into(), json!(u));
                }
                if let Some((class, _)) = sensor_class(f.capability) {
                    m.insert("device_class".into(), json!(class));
                }
                "number"
            }
            (ValueType::Number { .. }, c, _) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                if let Some(u) = unit(f) {
                    m.insert("unit_of_measurement".into(), json!(u));
                }
                if let Some((class, state)) = sensor_class(c) {
                    m.insert("device_class".into(), json!(class));
                    m.insert("state_class".into(), json!(state));
                } else {
                    m.insert("state_class".into(), json!("measurement"));
                }
                "sensor"
            }
            (ValueType::Enum { values }, _, Access { set: true, .. }) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                m.insert("command_topic".into(), json!(set));
                m.insert("command_template".into(), json!(format!("{{\"{key}\": \"{{{{ value }}}}\"}}")));
                m.insert("options".into(), json!(values));
                "select"
            }
            (ValueType::Enum { values }, _, _) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                m.insert("device_class".into(), json!("enum"));
                m.insert("options".into(), json!(values));
                "sensor"
            }
            (ValueType::Text { .. }, _, Access { set: true, .. }) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                m.insert("command_topic".into(), json!(set));
                m.insert("command_template".into(), json!(format!("{{\"{key}\": {{{{ value | tojson }}}}}}")));
                "text"
            }
            (ValueType::Text { .. }, _, _) => {
                m.insert("state_topic".into(), json!(format!("{base}/state")));
                m.insert("value_template".into(), json!(format!("{{{{ {value} }}}}")));
                "sensor"
            }
            // Colors outside a light, lists: not shown.
            _ => continue,
        };
        out.push(Entity { topic: topic(component, &object), config: Json::Object(m) });
    }
    out
}

/// A feature key as it appears inside a JSON string literal of a template (keys are plain
/// identifiers; anything that could break the JSON is dropped).
fn json_key(k: &str) -> String {
    k.chars().filter(|c| *c != '"' && *c != '\\' && *c != '{' && *c != '}').collect()
}

fn unit(f: &Feature) -> Option<String> {
    f.unit.clone().or_else(|| f.capability.canonical_unit().map(str::to_owned))
}

/// The device's values as one JSON object (its state topic).
pub fn state(d: &Device) -> Json {
    Json::Object(
        d.state.iter().map(|(k, s)| (k.clone(), serde_json::to_value(&s.value).unwrap_or(Json::Null))).collect(),
    )
}

/// A light's state in the JSON light schema.
fn light_state(d: &Device, l: &Light) -> Json {
    let get = |k: &Option<String>| k.as_ref().and_then(|k| d.state.get(k)).map(|s| &s.value);
    let mut m = serde_json::Map::new();
    let on = match get(&l.state) {
        Some(Value::Bool(b)) => *b,
        _ => matches!(get(&l.brightness), Some(Value::Number(n)) if *n > 0.0),
    };
    m.insert("state".into(), json!(if on { "ON" } else { "OFF" }));
    if let Some(Value::Number(n)) = get(&l.brightness) {
        m.insert("brightness".into(), json!(n.round()));
    }
    let ct_state = l.color_temp.as_ref().and_then(|(k, _, _)| d.state.get(k));
    let color_state = l.color.as_ref().and_then(|k| d.state.get(k));
    let ct = ct_state.map(|s| &s.value);
    // A light that has both is in the mode it was last changed to.
    let color_newer = match (color_state, ct_state) {
        (Some(c), Some(t)) => c.changed_at >= t.changed_at,
        (Some(_), None) => true,
        _ => false,
    };
    if let (true, Some(Value::Color(c))) = (color_newer, get(&l.color)) {
        m.insert("color_mode".into(), json!("hs"));
        m.insert("color".into(), json!({"h": c.hue, "s": c.saturation}));
    } else if let Some(Value::Number(k)) = ct {
        m.insert("color_mode".into(), json!("color_temp"));
        m.insert("color_temp".into(), json!(k.round()));
    } else if l.brightness.is_some() {
        m.insert("color_mode".into(), json!("brightness"));
    } else {
        m.insert("color_mode".into(), json!("onoff"));
    }
    Json::Object(m)
}

/// A command from Home Assistant's JSON light schema (`{"state": "ON", "brightness": 40,
/// "color_temp": 3000, "color": {"h": 30, "s": 100}, "transition": 2}`) for the light `object`.
fn light_command(d: &Device, object: &str, payload: &Json) -> Result<CommandRequest, String> {
    let l = lights(d).into_iter().find(|l| l.object == object).ok_or_else(|| format!("no light {object}"))?;
    let o = payload.as_object().ok_or("not a JSON object")?;
    let mut req = CommandRequest::default();
    if let Some(s) = o.get("state").and_then(Json::as_str) {
        let on = match s {
            "ON" => true,
            "OFF" => false,
            other => return Err(format!("state {other:?} is neither ON nor OFF")),
        };
        match &l.state {
            Some(k) => {
                req.set.insert(k.clone(), Value::Bool(on));
            }
            None if !on => {
                if let Some(k) = &l.brightness {
                    req.set.insert(k.clone(), Value::Number(0.0));
                }
            }
            None => {}
        }
    }
    if let (Some(b), Some(k)) = (o.get("brightness").and_then(Json::as_f64), &l.brightness) {
        req.set.insert(k.clone(), Value::Number(b));
    }
    if let (Some(t), Some((k, _, _))) = (o.get("color_temp").and_then(Json::as_f64), &l.color_temp) {
        req.set.insert(k.clone(), Value::Number(t));
    }
    if let (Some(c), Some(k)) = (o.get("color"), &l.color) {
        let (Some(h), Some(s)) = (c.get("h").and_then(Json::as_f64), c.get("s").and_then(Json::as_f64)) else {
            return Err("color must be {\"h\": hue, \"s\": saturation}".into());
        };
        req.set.insert(k.clone(), Value::Color(Color { hue: h, saturation: s }));
    }
    req.transition = o.get("transition").and_then(Json::as_f64);
    if req.set.is_empty() {
        return Err("nothing this light can do".into());
    }
    Ok(req)
}

/// A command from the device's `set` topic: `{"<feature>": value}`.
fn set_command(payload: &Json) -> Result<CommandRequest, String> {
    let o = payload.as_object().ok_or("not a JSON object")?;
    let mut req = CommandRequest::default();
    for (k, v) in o {
        let value: Value = serde_json::from_value(v.clone()).map_err(|e| format!("{k}: {e}"))?;
        req.set.insert(k.clone(), value);
    }
    if req.set.is_empty() {
        return Err("no feature to set".into());
    }
    Ok(req)
}

/// Messages waiting for the broker at most (a full republish of a large home fits).
const WAITING: usize = 200_000;

/// What the task keeps per device: its node, and the config topics it published; and the
/// devices it does not publish whose configs it emptied.
#[derive(Debug, Default)]
struct Published {
    configs: HashMap<DeviceId, Vec<String>>,
    nodes: HashMap<String, DeviceId>,
    withdrawn: HashSet<DeviceId>,
}

/// Runs the publisher until the hub stops.
pub fn spawn(settings: Settings, core: CoreHandle, mqtt: &MqttSettings) -> Result<tokio::task::JoinHandle<()>, String> {
    let mut opts = hearth_mqtt::options(&format!("hearth-home-assistant-{}", std::process::id()), mqtt)?;
    opts.set_last_will(LastWill::new(format!("{}/status", settings.base), "offline", QoS::AtLeastOnce, true));
    // The link connects and retries in a task of its own and never makes this task wait
    // (`hearth_mqtt::Link`): this task used to await room in the client's queue while the task
    // polling the client waited for this one to take a command from Home Assistant.
    let mut link = Link::start("home_assistant", opts, 1024).with_waiting_limit(WAITING);
    Ok(tokio::spawn(async move {
        let Ok((_, mut bus)) = core.subscribe().await else { return };
        let mut published = Published::default();
        let ha_status = format!("{}/status", settings.prefix);
        loop {
            tokio::select! {
                event = link.next() => match event {
                    None => break,
                    Some(LinkEvent::Connected) => {
                        // (Re)connected: everything again, from a fresh snapshot; what waited
                        // from before is older than that.
                        link.discard_waiting();
                        let Ok((snapshot, fresh)) = core.subscribe().await else { break };
                        bus = fresh;
                        link.subscribe(format!("{}/+/set", settings.base), QoS::AtLeastOnce);
                        link.subscribe(format!("{}/+/light/+/set", settings.base), QoS::AtLeastOnce);
                        link.subscribe(&ha_status, QoS::AtLeastOnce);
                        let _ = link.publish(format!("{}/status", settings.base), QoS::AtLeastOnce, true, "online");
                        let n = publish_all(&mut link, &settings, &mut published, &snapshot.devices);
                        tracing::info!(devices = n, "Published the devices for Home Assistant.");
                    }
                    Some(LinkEvent::Message { topic, payload }) if topic == ha_status => {
                        // Home Assistant (re)started (`offline` is its last will): it may have
                        // lost what it knew (a broker that keeps no retained messages), so
                        // everything again, as devices that describe themselves do.
                        if payload.as_ref() != b"online" {
                            tracing::debug!("Home Assistant is away.");
                            continue;
                        }
                        let Ok((snapshot, fresh)) = core.subscribe().await else { break };
                        bus = fresh;
                        let n = publish_all(&mut link, &settings, &mut published, &snapshot.devices);
                        tracing::info!(devices = n, "Home Assistant came online: published the devices again.");
                    }
                    Some(LinkEvent::Message { topic, payload }) => {
                        command(&core, &settings, &published, &topic, &payload).await;
                    }
                    Some(LinkEvent::Lost { reason, .. }) => {
                        tracing::debug!("Home Assistant publishing: {reason}; reconnecting.");
                    }
                },
                e = bus.recv() => match e {
                    // While the broker is away nothing is kept: all is sent again on connecting.
                    Ok(_) if !link.connected() => {}
                    Ok(e) => on_event(&mut link, &settings, &core, &mut published, &e).await,
                    Err(RecvError::Lagged(_)) => {
                        let Ok((snapshot, fresh)) = core.subscribe().await else { break };
                        bus = fresh;
                        publish_all(&mut link, &settings, &mut published, &snapshot.devices);
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
        let _ = link.publish(format!("{}/status", settings.base), QoS::AtLeastOnce, true, "offline");
        link.close(Duration::from_millis(500)).await;
    }))
}

/// Publishes every device of a snapshot that Hearth publishes ([`publishes`]), empties, once,
/// what an earlier version published for the others, and forgets a device published before that
/// the snapshot no longer has (its removal was on the bus this task left for the snapshot's);
/// returns how many it published.
fn publish_all(link: &mut Link, s: &Settings, published: &mut Published, devices: &[Device]) -> usize {
    let now: HashSet<&DeviceId> = devices.iter().map(|d| &d.id).collect();
    let gone: Vec<DeviceId> = published.configs.keys().filter(|id| !now.contains(id)).cloned().collect();
    for id in gone {
        forget(link, s, published, &id);
    }
    let mut n = 0;
    for d in devices {
        if publishes(&d.id) {
            publish_device(link, s, published, d);
            n += 1;
        } else {
            withdraw(link, s, published, d);
        }
    }
    n
}

/// Empties (retained, zero-length) the configs, state and availability Hearth would publish for a
/// device it leaves out: a hub that published it before (earlier versions did) left them on the
/// broker, and Home Assistant would go on showing the device twice. Once per device and run.
fn withdraw(link: &mut Link, s: &Settings, published: &mut Published, d: &Device) {
    if !published.withdrawn.insert(d.id.clone()) {
        return;
    }
    let node = node(&d.id);
    let topics = entities(d, s).into_iter().map(|e| e.topic);
    let own = ["state", "availability"].map(|t| format!("{}/{node}/{t}", s.base));
    let lights = lights(d).into_iter().map(|l| format!("{}/{node}/light/{}/state", s.base, l.object));
    for t in topics.chain(own).chain(lights) {
        let _ = link.publish(t, QoS::AtLeastOnce, true, Vec::new());
    }
}

fn publish_device(link: &mut Link, s: &Settings, published: &mut Published, d: &Device) {
    let node = node(&d.id);
    published.nodes.insert(node.clone(), d.id.clone());
    let entities = entities(d, s);
    let topics: Vec<String> = entities.iter().map(|e| e.topic.clone()).collect();
    if let Some(before) = published.configs.get(&d.id) {
        for gone in before.iter().filter(|t| !topics.contains(t)) {
            let _ = link.publish(gone.clone(), QoS::AtLeastOnce, true, Vec::new());
        }
    }
    for e in entities {
        let _ = link.publish(e.topic, QoS::AtLeastOnce, true, e.config.to_string());
    }
    published.configs.insert(d.id.clone(), topics);
    publish_state(link, s, d);
    let online = d.availability.state != AvailabilityState::Offline;
    let _ = link.publish(
        format!("{}/{node}/availability", s.base),
        QoS::AtLeastOnce,
        true,
        if online { "online" } else { "offline" },
    );
}

fn publish_state(link: &mut Link, s: &Settings, d: &Device) {
    let node = node(&d.id);
    let _ = link.publish(format!("{}/{node}/state", s.base), QoS::AtMostOnce, true, state(d).to_string());
    for l in lights(d) {
        let _ = link.publish(
            format!("{}/{node}/light/{}/state", s.base, l.object),
            QoS::AtMostOnce,
            true,
            light_state(d, &l).to_string(),
        );
    }
}

/// A removed device: its configs, state and availability emptied (retained, zero-length), so Home
/// Assistant forgets it.
fn forget(link: &mut Link, s: &Settings, published: &mut Published, device: &DeviceId) {
    let node = node(device);
    let light_configs = format!("{}/light/{node}/", s.prefix);
    for t in published.configs.remove(device).unwrap_or_default() {
        // A light's state has a topic of its own: `<base>/<node>/light/<object>/state`.
        if let Some(object) = t.strip_prefix(&light_configs).and_then(|r| r.strip_suffix("/config")) {
            let _ = link.publish(format!("{}/{node}/light/{object}/state", s.base), QoS::AtLeastOnce, true, Vec::new());
        }
        let _ = link.publish(t, QoS::AtLeastOnce, true, Vec::new());
    }
    published.nodes.remove(&node);
    for t in ["state", "availability"] {
        let _ = link.publish(format!("{}/{node}/{t}", s.base), QoS::AtLeastOnce, true, Vec::new());
    }
}

async fn on_event(link: &mut Link, s: &Settings, core: &CoreHandle, published: &mut Published, e: &Event) {
    let id = match e {
        Event::DeviceAdded { device } | Event::DeviceUpdated { device } => &device.id,
        Event::DeviceRemoved { device }
        | Event::StateChanged { device, .. }
        | Event::AvailabilityChanged { device, .. }
        | Event::DeviceEvent { device, .. } => device,
        _ => return,
    };
    if !publishes(id) {
        if let Event::DeviceAdded { device } = e {
            withdraw(link, s, published, device);
        }
        return;
    }
    match e {
        Event::DeviceAdded { device } | Event::DeviceUpdated { device } => {
            publish_device(link, s, published, device);
        }
        Event::DeviceRemoved { device } => forget(link, s, published, device),
        Event::StateChanged { device, .. } => {
            if let Ok(Some(d)) = core.device(device).await {
                publish_state(link, s, &d);
            }
        }
        Event::AvailabilityChanged { device, availability } => {
            let online = availability.state != AvailabilityState::Offline;
            let _ = link.publish(
                format!("{}/{}/availability", s.base, node(device)),
                QoS::AtLeastOnce,
                true,
                if online { "online" } else { "offline" },
            );
        }
        Event::DeviceEvent { device, feature, event, .. } => {
            let _ = link.publish(
                format!("{}/{}/event/{}", s.base, node(device), safe(feature)),
                QoS::AtMostOnce,
                false,
                json!({"event_type": event}).to_string(),
            );
        }
        _ => {}
    }
}

/// A command from Home Assistant, to the device the topic names.
async fn command(core: &CoreHandle, s: &Settings, published: &Published, topic: &str, payload: &[u8]) {
    let Some(rest) = topic.strip_prefix(&format!("{}/", s.base)) else { return };
    let parts: Vec<&str> = rest.split('/').collect();
    let Some(device) = parts.first().and_then(|n| published.nodes.get(*n)) else {
        tracing::warn!(topic, "Home Assistant sent a command for a device Hearth does not publish.");
        return;
    };
    let json: Json = match serde_json::from_slice(payload) {
        Ok(j) => j,
        Err(e) => {
            tracing::warn!(topic, "Home Assistant sent a command that is not JSON ({e}).");
            return;
        }
    };
    let request = match parts.as_slice() {
        [_, "set"] => set_command(&json),
        [_, "light", object, "set"] => match core.device(device).await {
            Ok(Some(d)) => light_command(&d, object, &json),
            _ => return,
        },
        _ => return,
    };
    match request {
        Ok(r) => {
            if let Err(e) = core.command(device.clone(), r, Origin::HomeAssistant).await {
                tracing::warn!(%device, "A command from Home Assistant was refused: {e}");
            }
        }
        Err(e) => tracing::warn!(%device, topic, "A command from Home Assistant cannot be read: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Availability, Category, DeviceDescriptor, FeatureState, Timestamp};

    fn settings() -> Settings {
        Settings { prefix: "homeassistant".into(), base: "hearth".into() }
    }

    fn device(id: &str, features: Vec<Feature>, values: &[(&str, Value)]) -> Device {
        let mut d = Device::from_descriptor(DeviceDescriptor::new(DeviceId::parse(id).expect("id"), "Thing", features));
        d.availability = Availability::online(Timestamp(1));
        for (k, v) in values {
            d.state.insert(
                (*k).to_owned(),
                FeatureState { value: v.clone(), changed_at: Timestamp(1), reported_at: Timestamp(1) },
            );
        }
        d
    }

    fn num(min: f64, max: f64) -> ValueType {
        ValueType::Number { min: Some(min), max: Some(max), step: None }
    }

    fn by_topic(list: &[Entity], topic: &str) -> Json {
        list.iter()
            .find(|e| e.topic == topic)
            .map(|e| e.config.clone())
            .unwrap_or_else(|| panic!("no {topic} in {:?}", list.iter().map(|e| &e.topic).collect::<Vec<_>>()))
    }

    #[test]
    fn devices_that_describe_themselves_to_home_assistant_are_not_published_again() {
        let id = |s: &str| DeviceId::parse(s).expect("id");
        assert!(!publishes(&id("mqtt_discovery:a4cf12345678")));
        assert!(publishes(&id("demo:living_lamp")));
        assert!(publishes(&id("zigbee2mqtt:0x00158d0001a2b3c4")));
        assert!(publishes(&id("tasmota:A0B1C2D3E4F5")));
    }

    #[test]
    fn nodes_are_topic_safe_and_never_shared() {
        assert_eq!(node(&DeviceId::parse("demo:living_lamp").expect("id")), "demo-living_lamp");
        let a = node(&DeviceId::parse("ble:A4:C1:38:0A:1B:2C").expect("id"));
        assert!(a.starts_with("ble-A4_C1_38_0A_1B_2C-") && a.len() == "ble-A4_C1_38_0A_1B_2C-".len() + 6, "{a}");
        let b = node(&DeviceId::parse("ble:A4_C1_38_0A_1B_2C").expect("id"));
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    }

    #[test]
    fn a_color_light_is_one_light_entity_in_the_json_schema_and_commands_map_back() {
        let d = device(
            "demo:lamp",
            vec![
                Feature::new("state", Capability::OnOff, ValueType::Bool, Access::ALL),
                Feature::new("brightness", Capability::Brightness, num(0.0, 100.0), Access::ALL),
                Feature::new("color_temperature", Capability::ColorTemperature, num(2200.0, 6500.0), Access::ALL),
                Feature::new("color", Capability::Color, ValueType::Color, Access::ALL),
                Feature::new("power", Capability::Power, ValueType::number(), Access::READ_ONLY)
                    .category(Category::Diagnostic),
            ],
            &[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(40.0)),
                ("color_temperature", Value::Number(2700.0)),
            ],
        );
        let list = entities(&d, &settings());
        assert_eq!(list.len(), 2, "{list:?}");
        let light = by_topic(&list, "homeassistant/light/demo-lamp/light/config");
        assert_eq!(light["schema"], "json");
        assert_eq!(light["command_topic"], "hearth/demo-lamp/light/light/set");
        assert_eq!(light["supported_color_modes"], json!(["hs", "color_temp"]));
        assert_eq!((light["min_kelvin"].clone(), light["max_kelvin"].clone()), (json!(2200), json!(6500)));
        assert_eq!(light["brightness_scale"], 100);
        assert_eq!(light["device"]["identifiers"], json!(["hearth_demo-lamp"]));
        assert_eq!(light["origin"]["name"], "Hearth");
        let power = by_topic(&list, "homeassistant/sensor/demo-lamp/power/config");
        assert_eq!((power["device_class"].clone(), power["unit_of_measurement"].clone()), (json!("power"), json!("W")));
        assert_eq!(power["entity_category"], "diagnostic");
        assert_eq!(power["value_template"], "{{ value_json['power'] }}");

        let l = &lights(&d)[0];
        assert_eq!(
            light_state(&d, l),
            json!({"state": "ON", "brightness": 40.0, "color_mode": "color_temp", "color_temp": 2700.0})
        );
        // Both known: the mode is the one changed last.
        let mut both = d.clone();
        let at = |t: i64, value: Value| FeatureState { value, changed_at: Timestamp(t), reported_at: Timestamp(t) };
        both.state.insert("color".into(), at(5, Value::Color(Color { hue: 120.0, saturation: 80.0 })));
        both.state.insert("color_temperature".into(), at(3, Value::Number(2700.0)));
        assert_eq!(light_state(&both, l)["color_mode"], "hs");
        both.state.insert("color_temperature".into(), at(9, Value::Number(4000.0)));
        assert_eq!(light_state(&both, l)["color_mode"], "color_temp");
        assert_eq!(light_state(&both, l)["color_temp"], 4000.0);
        let req = light_command(
            &d,
            "light",
            &json!({"state": "ON", "brightness": 60, "color": {"h": 30, "s": 100}, "transition": 2}),
        )
        .expect("command");
        assert_eq!(req.set.get("state"), Some(&Value::Bool(true)));
        assert_eq!(req.set.get("brightness"), Some(&Value::Number(60.0)));
        assert_eq!(req.set.get("color"), Some(&Value::Color(Color { hue: 30.0, saturation: 100.0 })));
        assert_eq!(req.transition, Some(2.0));
        assert!(light_command(&d, "light", &json!({"state": "MAYBE"})).is_err());
        assert!(light_command(&d, "light_2", &json!({"state": "ON"})).is_err());
    }

    #[test]
    fn sensors_switches_and_selects_say_what_they_are() {
        let d = device(
            "demo:multi",
            vec![
                Feature::new("relay", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
                Feature::new("door", Capability::Contact, ValueType::Bool, Access::READ_ONLY),
                Feature::new("temperature", Capability::Temperature, ValueType::number(), Access::READ_ONLY),
                Feature::new("energy", Capability::Energy, ValueType::number(), Access::READ_ONLY),
                Feature::new("mode", Capability::Other, ValueType::enumeration(["eco", "boost"]), Access::READ_WRITE),
                Feature::new("action", Capability::Action, ValueType::enumeration(["single", "double"]), Access::EVENT),
            ],
            &[("relay", Value::Bool(false))],
        );
        let list = entities(&d, &settings());
        let relay = by_topic(&list, "homeassistant/switch/demo-multi/relay/config");
        assert_eq!(relay["payload_on"], r#"{"relay": true}"#);
        assert_eq!(relay["command_topic"], "hearth/demo-multi/set");
        let door = by_topic(&list, "homeassistant/binary_sensor/demo-multi/door/config");
        assert_eq!(door["device_class"], "door");
        assert_eq!(door["value_template"], "{{ 'OFF' if value_json['door'] else 'ON' }}", "closed is off");
        let t = by_topic(&list, "homeassistant/sensor/demo-multi/temperature/config");
        assert_eq!((t["unit_of_measurement"].clone(), t["state_class"].clone()), (json!("°C"), json!("measurement")));
        let e = by_topic(&list, "homeassistant/sensor/demo-multi/energy/config");
        assert_eq!((e["device_class"].clone(), e["state_class"].clone()), (json!("energy"), json!("total_increasing")));
        let mode = by_topic(&list, "homeassistant/select/demo-multi/mode/config");
        assert_eq!(mode["options"], json!(["eco", "boost"]));
        assert_eq!(mode["command_template"], r#"{"mode": "{{ value }}"}"#);
        let action = by_topic(&list, "homeassistant/event/demo-multi/action/config");
        assert_eq!(action["event_types"], json!(["single", "double"]));
        assert_eq!(action["state_topic"], "hearth/demo-multi/event/action");

        assert_eq!(set_command(&json!({"relay": true})).expect("set").set.get("relay"), Some(&Value::Bool(true)));
        assert!(set_command(&json!([1])).is_err());
        assert!(set_command(&json!({})).is_err());
        assert_eq!(state(&d), json!({"relay": false}));
    }
}
