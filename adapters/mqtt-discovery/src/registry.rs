//! The adapter's picture of the broker, as pure logic: discovery configs and state messages in,
//! model events and MQTT publishes out, so it is tested without a broker.
//!
//! Entities are grouped into devices by `device.identifiers` (or `connections`); a device's id is
//! `mqtt_discovery:<first identifier, sanitized>`, and a config without a device block is a
//! device of its own, by `unique_id`. Feature keys are unique within a device (see
//! [`feature_key`]). An empty retained config removes its entity, and the device with its last
//! entity. What a config has that cannot be used is kept per device ([`Registry::unsupported`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use hearth_sdk::{
    AdapterEvent, Availability, AvailabilityState, Capability, Command, Context, DeviceDescriptor, DeviceId, Feature,
    PowerSource, Timestamp, Value, ValueType,
};
use serde_json::{Map, Value as Json, json};

use crate::ADAPTER_ID;
use crate::component::{self, Component, Decoded, Encode, LightPart, Mapped, Message, OnCommand, Unsupported};
use crate::config::{self, AvailabilityConfig, AvailabilityMode, DeviceInfo, DiscoveryTopic, EntityConfig};
use crate::template::Vars;

/// How long after a command its context is given to the device's reports.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(5);
/// The largest discovery config accepted, in bytes.
pub const MAX_CONFIG_PAYLOAD: usize = 256 * 1024;
/// The largest state payload accepted, in bytes.
pub const MAX_STATE_PAYLOAD: usize = 256 * 1024;

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: String,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Retained.
    pub retain: bool,
}

/// Lowercase letters, digits, `_`, `-`, `.` and `:`; anything else becomes `_`.
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | ':') { c } else { '_' }
        })
        .collect();
    if out.is_empty() { "_".into() } else { out }
}

/// `snake_case`: lowercase letters and digits joined by single `_`.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The key and endpoint of an entity's feature: from the entity's name in its discovery topic
/// (`base`), its component and the feature's part.
///
/// - A component with parts (light, cover, climate, fan): the part (`state`, `brightness`) when
///   the entity is named after its component (`light`), `<part>_<endpoint>` otherwise, where the
///   endpoint is what follows `<component>_` (`light_l2` gives `state_l2`) or the whole name
///   (`kitchen` gives `state_kitchen`).
/// - A switch or lock named after its component: `state` (`state_<endpoint>` for `switch_left`),
///   `lock`; any other single-feature entity: its name (`temperature`, `relay`).
pub fn feature_key(component: Component, base: &str, part: &str) -> (String, Option<String>) {
    let name = match component {
        Component::DeviceTrigger => "action",
        other => other.name(),
    };
    let endpoint = if base == name {
        None
    } else {
        Some(base.strip_prefix(name).and_then(|r| r.strip_prefix('_')).filter(|r| !r.is_empty()).unwrap_or(base))
    };
    if component.has_parts() {
        return match endpoint {
            None => (part.to_owned(), None),
            Some(e) => (format!("{part}_{e}"), Some(e.to_owned())),
        };
    }
    let main = match component {
        Component::Switch => "state",
        Component::Lock => "lock",
        _ => return (base.to_owned(), None),
    };
    match endpoint {
        None => (main.to_owned(), None),
        Some(e) if base.starts_with(name) => (format!("{main}_{e}"), Some(e.to_owned())),
        Some(_) => (base.to_owned(), None),
    }
}

#[derive(Debug)]
struct Entity {
    /// The discovery id (`sensor/0x00158d…/temperature`).
    key: String,
    component: Option<Component>,
    /// The name features are named after.
    base: String,
    /// The device's native id.
    device: String,
    /// The config as it came, to tell a change.
    raw: Map<String, Json>,
    name: Option<String>,
    mapped: Mapped,
    availability: AvailabilityConfig,
    /// Per availability entry: the last verdict.
    avail: Vec<Option<bool>>,
    latest: Option<bool>,
    offline_because: Option<String>,
    /// Final feature keys, by index of `mapped.features`.
    keys: Vec<String>,
    attributes_key: Option<String>,
}

impl Entity {
    fn has_model(&self) -> bool {
        !self.mapped.features.is_empty() || !self.mapped.triggers.is_empty() || self.mapped.attributes.is_some()
    }

    /// Whether the entity is available: `None` when it cannot tell yet.
    fn available(&self) -> Option<bool> {
        if self.availability.entries.is_empty() {
            return Some(true);
        }
        match self.availability.mode {
            AvailabilityMode::Latest => self.latest,
            AvailabilityMode::Any => {
                if self.avail.contains(&Some(true)) {
                    Some(true)
                } else if self.avail.iter().all(Option::is_some) {
                    Some(false)
                } else {
                    None
                }
            }
            AvailabilityMode::All => {
                if self.avail.contains(&Some(false)) {
                    Some(false)
                } else if self.avail.iter().all(|a| *a == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
        }
    }
}

#[derive(Debug)]
struct DeviceEntry {
    id: DeviceId,
    entities: BTreeSet<String>,
    info: DeviceInfo,
    /// Trigger feature (`action`) to its key.
    trigger_keys: BTreeMap<String, String>,
    /// The descriptor last announced.
    described: Option<DeviceDescriptor>,
    /// The availability last reported.
    shown: Option<(AvailabilityState, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    Feature(usize),
    Attributes,
    Trigger(usize),
    Availability(usize),
}

/// The adapter's picture of what the broker's discovery configs describe.
#[derive(Debug)]
pub struct Registry {
    prefix: String,
    ignore_origins: Vec<String>,
    entities: BTreeMap<String, Entity>,
    /// Device-based config (its discovery id) to the entities it made.
    device_configs: BTreeMap<String, BTreeSet<String>>,
    devices: BTreeMap<String, DeviceEntry>,
    /// Every identity (identifier or connection) to its device's native id.
    identities: HashMap<String, String>,
    /// Topic (or filter) to who reads it.
    topics: BTreeMap<String, Vec<(String, Sub)>>,
    warned: HashSet<String>,
    causes: HashMap<DeviceId, (Context, Instant)>,
    broker_down: Option<String>,
}

/// What a config message did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Events for the hub.
    pub events: Vec<AdapterEvent>,
    /// Why the message was not used, when it was not.
    pub rejected: Option<String>,
}

fn offline(reason: &str, code: &str) -> Availability {
    Availability::offline(reason, Timestamp::now()).with_code(code)
}

impl Registry {
    /// A registry for discovery under `prefix`, leaving out configs whose origin is one of
    /// `ignore_origins` (compared without case).
    pub fn new(prefix: &str, ignore_origins: &[String]) -> Registry {
        Registry {
            prefix: prefix.trim_end_matches('/').to_owned(),
            ignore_origins: ignore_origins.iter().map(|o| o.to_lowercase()).collect(),
            entities: BTreeMap::new(),
            device_configs: BTreeMap::new(),
            devices: BTreeMap::new(),
            identities: HashMap::new(),
            topics: BTreeMap::new(),
            warned: HashSet::new(),
            causes: HashMap::new(),
            broker_down: None,
        }
    }

    /// The discovery prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic filters for discovery configs.
    pub fn discovery_filters(&self) -> Vec<String> {
        let p = &self.prefix;
        vec![format!("{p}/+/+/config"), format!("{p}/+/+/+/config")]
    }

    /// Every state, attribute, trigger and availability topic the entities read.
    pub fn topics(&self) -> BTreeSet<String> {
        self.topics.keys().cloned().collect()
    }

    /// Whether a topic is a discovery config topic.
    pub fn is_discovery(&self, topic: &str) -> bool {
        DiscoveryTopic::parse(&self.prefix, topic).is_some()
    }

    /// The ids of every announced device.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        self.devices.values().filter(|d| d.described.is_some()).map(|d| d.id.clone()).collect()
    }

    /// A discovery config message (empty removes).
    pub fn config(&mut self, topic: &str, payload: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let Some(t) = DiscoveryTopic::parse(&self.prefix, topic) else {
            out.rejected = Some("not a discovery topic (`<prefix>/<component>/[<node_id>/]<object_id>/config`)".into());
            return out;
        };
        if payload.len() > MAX_CONFIG_PAYLOAD {
            out.rejected = Some(format!("a config of {} bytes is larger than {MAX_CONFIG_PAYLOAD}", payload.len()));
            return out;
        }
        let mut touched = BTreeSet::new();
        if t.component == "device" {
            let dkey = t.key();
            let old: BTreeSet<String> = self.device_configs.remove(&dkey).unwrap_or_default();
            let mut now = BTreeSet::new();
            if !payload.is_empty() {
                let map = match parse_object(payload) {
                    Ok(m) => m,
                    Err(e) => {
                        self.device_configs.insert(dkey, old);
                        out.rejected = Some(e);
                        return out;
                    }
                };
                let components = match config::split_device_config(map) {
                    Ok(c) => c,
                    Err(e) => {
                        self.device_configs.insert(dkey, old);
                        out.rejected = Some(e);
                        return out;
                    }
                };
                let node = match &t.node_id {
                    Some(n) => format!("{n}/{}", t.object_id),
                    None => t.object_id.clone(),
                };
                for comp in components {
                    let key = format!("{}/{node}/{}", comp.platform, comp.id);
                    let Some(cfg) = comp.config else { continue };
                    now.insert(key.clone());
                    self.upsert(&key, &comp.platform, &slug(&comp.id), cfg, &mut touched);
                }
            }
            for gone in old.difference(&now) {
                self.remove_entity(gone, &mut touched);
            }
            if !now.is_empty() {
                self.device_configs.insert(dkey, now);
            }
        } else if payload.is_empty() {
            self.remove_entity(&t.key(), &mut touched);
        } else {
            match parse_object(payload) {
                Ok(map) => {
                    let cfg = config::normalize(map);
                    let base = slug(&t.object_id);
                    self.upsert(&t.key(), &t.component, &base, cfg, &mut touched);
                }
                Err(e) => {
                    out.rejected = Some(e);
                    return out;
                }
            }
        }
        for native in touched {
            self.describe(&native, &mut out.events);
        }
        self.index();
        out
    }

    fn ignored(&self, cfg: &EntityConfig) -> Option<String> {
        let origin = cfg.origin_name().unwrap_or("");
        if origin.eq_ignore_ascii_case("hearth") {
            return Some("published by Hearth itself".into());
        }
        if let Some(d) = cfg.device()
            && d.identities().iter().any(|i| i.to_lowercase().starts_with("hearth_"))
        {
            return Some("a device of Hearth itself".into());
        }
        if !origin.is_empty() && self.ignore_origins.contains(&origin.to_lowercase()) {
            return Some(format!("its origin `{origin}` is in ignore_origins"));
        }
        None
    }

    fn upsert(
        &mut self,
        key: &str,
        component_name: &str,
        base: &str,
        cfg: EntityConfig,
        touched: &mut BTreeSet<String>,
    ) {
        if let Some(why) = self.ignored(&cfg) {
            tracing::debug!(entity = key, "Ignoring a discovery config: {why}.");
            self.remove_entity(key, touched);
            return;
        }
        if self.entities.get(key).is_some_and(|e| e.raw == cfg.0) {
            return;
        }
        let info = cfg.device();
        let identities = info.as_ref().map(DeviceInfo::identities).unwrap_or_default();
        let native = identities
            .iter()
            .find_map(|i| self.identities.get(i).cloned())
            .or_else(|| identities.first().map(|i| sanitize(i)))
            .unwrap_or_else(|| {
                let own = cfg.str("unique_id").unwrap_or(key);
                format!("entity_{}", sanitize(own))
            });
        if let Some(old) = self.entities.get(key)
            && old.device != native
        {
            self.remove_entity(key, touched);
        }
        let component = Component::parse(component_name);
        let mut mapped = match component {
            Some(c) => component::map(c, &cfg),
            None => Mapped {
                unsupported: vec![Unsupported {
                    option: "component".into(),
                    template: None,
                    reason: format!("the component `{component_name}` is not supported; it is left out"),
                }],
                ..Mapped::default()
            },
        };
        if cfg.bool("enabled_by_default") == Some(false) {
            mapped = Mapped {
                unsupported: vec![Unsupported {
                    option: "enabled_by_default".into(),
                    template: None,
                    reason: "the entity is disabled by default (as in Home Assistant); it is left out".into(),
                }],
                ..Mapped::default()
            };
        }
        for u in &mapped.unsupported {
            if self.warned.len() > 4096 {
                self.warned.clear();
            }
            if self.warned.insert(format!("{key}\u{0}{}", u.option)) {
                tracing::warn!(entity = key, option = %u.option, "A discovery config is not fully supported: {}.", u.reason);
            }
        }
        // Strip the device's own id from names like Tasmota's `1A2B3C_RL_1`.
        let mut base = base.to_owned();
        for i in &identities {
            let s = slug(i);
            if !s.is_empty()
                && let Some(rest) = base.strip_prefix(&format!("{s}_"))
                && !rest.is_empty()
            {
                base = rest.to_owned();
                break;
            }
        }
        if base.is_empty() {
            base = component_name.to_owned();
        }
        let availability = cfg.availability();
        let entries = availability.entries.len();
        for i in &identities {
            self.identities.insert(i.clone(), native.clone());
        }
        let old = self.entities.remove(key);
        let entity = Entity {
            key: key.to_owned(),
            component,
            base,
            device: native.clone(),
            raw: cfg.0.clone(),
            name: cfg.str("name").map(str::to_owned),
            mapped,
            // Keep what availability messages already said when the sources stay the same.
            avail: match &old {
                Some(o) if o.availability == availability => o.avail.clone(),
                _ => vec![None; entries],
            },
            latest: old.as_ref().filter(|o| o.availability == availability).and_then(|o| o.latest),
            offline_because: old.as_ref().and_then(|o| o.offline_because.clone()),
            availability,
            keys: Vec::new(),
            attributes_key: None,
        };
        self.entities.insert(key.to_owned(), entity);
        let dev = self.devices.entry(native.clone()).or_insert_with(|| DeviceEntry {
            id: DeviceId::new(ADAPTER_ID, &native),
            entities: BTreeSet::new(),
            info: DeviceInfo::default(),
            trigger_keys: BTreeMap::new(),
            described: None,
            shown: None,
        });
        dev.entities.insert(key.to_owned());
        if let Some(i) = info {
            merge_info(&mut dev.info, i);
        }
        touched.insert(native);
    }

    fn remove_entity(&mut self, key: &str, touched: &mut BTreeSet<String>) {
        let Some(e) = self.entities.remove(key) else { return };
        if let Some(d) = self.devices.get_mut(&e.device) {
            d.entities.remove(key);
        }
        touched.insert(e.device);
    }

    /// Names the device's features and announces it if its description changed (or removes it
    /// when it has nothing left).
    fn describe(&mut self, native: &str, events: &mut Vec<AdapterEvent>) {
        let Some(dev) = self.devices.get(native) else { return };
        let keys: Vec<String> = dev.entities.iter().cloned().collect();
        let any_model = keys.iter().filter_map(|k| self.entities.get(k)).any(Entity::has_model);
        if !any_model {
            if let Some(d) = self.devices.get_mut(native) {
                let id = d.id.clone();
                let was = d.described.take();
                d.shown = None;
                if dev_empty(d) {
                    self.devices.remove(native);
                    self.identities.retain(|_, n| n != native);
                }
                if was.is_some() {
                    tracing::info!(device = %id, "A discovered device is gone.");
                    events.push(AdapterEvent::DeviceRemoved { device: id });
                }
            }
            return;
        }
        let mut features: Vec<Feature> = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut claim = |wanted: String, component: &str| -> String {
            let mut key = wanted.clone();
            if taken.contains(&key) {
                key = format!("{wanted}_{component}");
            }
            let mut n = 2;
            while taken.contains(&key) {
                key = format!("{wanted}_{n}");
                n += 1;
            }
            taken.insert(key.clone());
            key
        };
        let mut trigger_events: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut trigger_keys: BTreeMap<String, String> = BTreeMap::new();
        let mut names: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
        let mut first_name: Option<String> = None;
        for k in &keys {
            let Some(e) = self.entities.get(k) else { continue };
            let Some(component) = e.component else {
                names.push((k.clone(), Vec::new(), None));
                continue;
            };
            if first_name.is_none() && e.has_model() {
                first_name = e.name.clone();
            }
            let mut own = Vec::new();
            for (i, m) in e.mapped.features.iter().enumerate() {
                let (wanted, endpoint) = feature_key(component, &e.base, m.part);
                let key = claim(wanted, component.name());
                let mut f = m.feature.clone();
                f.key = key.clone();
                f.endpoint = endpoint;
                if i == 0 {
                    f.label = e.name.clone();
                }
                features.push(f);
                own.push(key);
            }
            let mut attr = None;
            if e.mapped.attributes.is_some() {
                let key = claim(format!("{}_attributes", e.base), component.name());
                let mut f = Feature::new(&key, Capability::Other, ValueType::Object, hearth_sdk::Access::READ_ONLY)
                    .category(hearth_sdk::Category::Diagnostic);
                f.label = e.name.as_ref().map(|n| format!("{n} attributes"));
                features.push(f);
                attr = Some(key);
            }
            for t in &e.mapped.triggers {
                let list = trigger_events.entry(t.feature.clone()).or_default();
                if !list.contains(&t.event) {
                    list.push(t.event.clone());
                }
            }
            names.push((k.clone(), own, attr));
        }
        for (feature, list) in &trigger_events {
            let wanted = match slug(feature) {
                s if s.is_empty() => "action".to_owned(),
                s => s,
            };
            let key = claim(wanted, "trigger");
            features.push(Feature::new(
                &key,
                Capability::Action,
                ValueType::enumeration(list.iter().cloned()),
                hearth_sdk::Access::EVENT,
            ));
            trigger_keys.insert(feature.clone(), key);
        }
        for (k, own, attr) in names {
            if let Some(e) = self.entities.get_mut(&k) {
                e.keys = own;
                e.attributes_key = attr;
            }
        }
        let Some(dev) = self.devices.get(native) else { return };
        let info = &dev.info;
        let model = match (&info.model, &info.model_id) {
            (Some(m), Some(id)) if m != id => Some(format!("{m} ({id})")),
            (Some(m), _) => Some(m.clone()),
            (None, id) => id.clone(),
        };
        let via = info.via_device.as_ref().map(|v| self.identities.get(v).cloned().unwrap_or_else(|| sanitize(v)));
        let descriptor = DeviceDescriptor {
            id: dev.id.clone(),
            name: info.name.clone().or(first_name).unwrap_or_else(|| native.to_owned()),
            suggested_area: info.suggested_area.clone(),
            manufacturer: info.manufacturer.clone(),
            model,
            firmware: info.sw_version.clone(),
            via: via.filter(|v| v != native).map(|v| DeviceId::new(ADAPTER_ID, &v)),
            power_source: PowerSource::Unknown,
            features,
        };
        let first = dev.described.is_none();
        let changed = dev.described.as_ref() != Some(&descriptor);
        if let Some(d) = self.devices.get_mut(native) {
            d.trigger_keys = trigger_keys;
            if changed {
                if first {
                    tracing::info!(device = %descriptor.id, name = %descriptor.name, "Discovered a device.");
                }
                d.described = Some(descriptor.clone());
                events.push(AdapterEvent::Device { device: descriptor });
            }
        }
        if first || changed {
            if let Some(d) = self.devices.get_mut(native)
                && first
            {
                d.shown = None;
            }
            self.availability(native, events);
        }
    }

    fn index(&mut self) {
        let mut topics: BTreeMap<String, Vec<(String, Sub)>> = BTreeMap::new();
        for (k, e) in &self.entities {
            if !e.has_model() {
                continue;
            }
            let mut add = |t: &str, s: Sub| topics.entry(t.to_owned()).or_default().push((k.clone(), s));
            for (i, m) in e.mapped.features.iter().enumerate() {
                if let Some(r) = &m.read {
                    add(&r.topic, Sub::Feature(i));
                }
            }
            if let Some(r) = &e.mapped.attributes {
                add(&r.topic, Sub::Attributes);
            }
            for (i, t) in e.mapped.triggers.iter().enumerate() {
                add(&t.topic, Sub::Trigger(i));
            }
            for (i, a) in e.availability.entries.iter().enumerate() {
                add(&a.topic, Sub::Availability(i));
            }
        }
        // Never read discovery topics as state.
        let prefix = self.prefix.clone();
        topics.retain(|t, _| DiscoveryTopic::parse(&prefix, t).is_none());
        self.topics = topics;
    }

    /// The device's availability, reported when it changed.
    fn availability(&mut self, native: &str, events: &mut Vec<AdapterEvent>) {
        let Some(dev) = self.devices.get(native) else { return };
        if dev.described.is_none() {
            return;
        }
        let decided: Option<Availability> = if let Some(reason) = &self.broker_down {
            Some(offline(reason, "broker_unreachable"))
        } else {
            let ents: Vec<&Entity> = dev
                .entities
                .iter()
                .filter_map(|k| self.entities.get(k))
                .filter(|e| e.has_model() && !e.availability.entries.is_empty())
                .collect();
            if ents.is_empty() {
                Some(Availability::online(Timestamp::now()))
            } else {
                let verdicts: Vec<Option<bool>> = ents.iter().map(|e| e.available()).collect();
                if verdicts.contains(&Some(true)) {
                    Some(Availability::online(Timestamp::now()))
                } else if verdicts.iter().all(|v| *v == Some(false)) {
                    let reason = ents
                        .iter()
                        .find_map(|e| e.offline_because.clone())
                        .unwrap_or_else(|| "the device reports itself offline".into());
                    Some(offline(&reason, "device_offline"))
                } else {
                    None
                }
            }
        };
        let Some(a) = decided else { return };
        let shown = (a.state, a.reason.clone());
        let id = dev.id.clone();
        if let Some(d) = self.devices.get_mut(native)
            && d.shown.as_ref() != Some(&shown)
        {
            d.shown = Some(shown);
            events.push(AdapterEvent::Availability { device: id, availability: a });
        }
    }

    /// Every device offline because the broker is gone.
    pub fn broker_lost(&mut self, reason: &str) -> Vec<AdapterEvent> {
        self.broker_down = Some(reason.to_owned());
        let mut events = Vec::new();
        let natives: Vec<String> = self.devices.keys().cloned().collect();
        for n in natives {
            self.availability(&n, &mut events);
        }
        events
    }

    /// The broker is back: availability as the devices last said (retained messages follow).
    pub fn broker_back(&mut self) -> Vec<AdapterEvent> {
        self.broker_down = None;
        let mut events = Vec::new();
        let natives: Vec<String> = self.devices.keys().cloned().collect();
        for n in natives {
            self.availability(&n, &mut events);
        }
        events
    }

    fn subscribers(&self, topic: &str) -> Vec<(String, Sub)> {
        let mut out = Vec::new();
        for (filter, subs) in &self.topics {
            if filter == topic || (filter.contains(['+', '#']) && topic_matches(filter, topic)) {
                out.extend(subs.iter().cloned());
            }
        }
        out
    }

    /// Whether anything reads this topic.
    pub fn reads(&self, topic: &str) -> bool {
        !self.subscribers(topic).is_empty()
    }

    /// A message on a state, attribute, trigger or availability topic.
    pub fn message(&mut self, topic: &str, payload: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let subs = self.subscribers(topic);
        if subs.is_empty() {
            return out;
        }
        if payload.len() > MAX_STATE_PAYLOAD {
            out.rejected = Some(format!("a payload of {} bytes is larger than {MAX_STATE_PAYLOAD}", payload.len()));
            return out;
        }
        if payload.is_empty() {
            return out; // a cleared retained message
        }
        let text = String::from_utf8_lossy(payload);
        let json: Option<Json> = match text.trim_start().chars().next() {
            Some('{' | '[' | '"') => serde_json::from_str(&text).ok(),
            _ => serde_json::from_str(text.trim()).ok(),
        };
        let msg = Message { text: &text, json: json.as_ref() };
        let mut values: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut fired: Vec<(String, String, String, Option<Value>)> = Vec::new();
        let mut avail_touched: BTreeSet<String> = BTreeSet::new();
        let mut errors: Vec<String> = Vec::new();
        for (k, sub) in subs {
            let Some(e) = self.entities.get_mut(&k) else { continue };
            match sub {
                Sub::Availability(i) => {
                    let Some(entry) = e.availability.entries.get(i) else { continue };
                    let rendered = match &entry.template {
                        // An older firmware may send plain `online` where the template expects JSON.
                        Some(Ok(t)) => match t.eval(&Vars::payload(&text, json.as_ref())) {
                            Ok(v) => v.to_string(),
                            Err(_) => text.to_string(),
                        },
                        Some(Err(_)) => continue,
                        None => text.to_string(),
                    };
                    let verdict = if rendered == entry.payload_available {
                        true
                    } else if rendered == entry.payload_not_available {
                        false
                    } else {
                        continue;
                    };
                    if let Some(slot) = e.avail.get_mut(i) {
                        *slot = Some(verdict);
                    }
                    e.latest = Some(verdict);
                    if !verdict {
                        e.offline_because =
                            Some(format!("the device reports itself offline (`{rendered}` on {})", entry.topic));
                    }
                    avail_touched.insert(e.device.clone());
                }
                Sub::Feature(i) => {
                    let (Some(m), Some(key)) = (e.mapped.features.get(i), e.keys.get(i)) else { continue };
                    let Some(read) = &m.read else { continue };
                    match read.decode(msg) {
                        Ok(Some(Decoded::Value(v))) => {
                            values.entry(e.device.clone()).or_default().insert(key.clone(), v);
                        }
                        Ok(Some(Decoded::Event(ev, data))) => fired.push((e.device.clone(), key.clone(), ev, data)),
                        Ok(None) => {}
                        Err(reason) => errors.push(format!("{} ({}): {reason}", key, e.key)),
                    }
                }
                Sub::Attributes => {
                    let (Some(read), Some(key)) = (&e.mapped.attributes, &e.attributes_key) else { continue };
                    match read.decode(msg) {
                        Ok(Some(Decoded::Value(v))) => {
                            values.entry(e.device.clone()).or_default().insert(key.clone(), v);
                        }
                        Ok(_) => {}
                        Err(reason) => errors.push(format!("{key} ({}): {reason}", e.key)),
                    }
                }
                Sub::Trigger(i) => {
                    let Some(t) = e.mapped.triggers.get(i) else { continue };
                    let rendered = match component::render(t.template.as_ref(), msg) {
                        Ok(Some(v)) => v.to_string(),
                        Ok(None) => continue,
                        Err(reason) => {
                            errors.push(format!("trigger {} ({}): {reason}", t.event, e.key));
                            continue;
                        }
                    };
                    if t.payload.as_ref().is_none_or(|p| *p == rendered) {
                        let key = self.devices.get(&e.device).and_then(|d| d.trigger_keys.get(&t.feature)).cloned();
                        if let Some(key) = key {
                            fired.push((e.device.clone(), key, t.event.clone(), None));
                        }
                    }
                }
            }
        }
        for native in avail_touched {
            self.availability(&native, &mut out.events);
        }
        for (native, vals) in values {
            let Some(d) = self.devices.get(&native) else { continue };
            if d.described.is_none() {
                continue;
            }
            let cause = self.causes.get(&d.id).filter(|(_, at)| at.elapsed() < CAUSE_WINDOW).map(|(c, _)| c.clone());
            out.events.push(AdapterEvent::State { device: d.id.clone(), values: vals, cause });
        }
        for (native, feature, event, data) in fired {
            let Some(d) = self.devices.get(&native) else { continue };
            if d.described.is_some() {
                out.events.push(AdapterEvent::Event { device: d.id.clone(), feature, event, data });
            }
        }
        if !errors.is_empty() {
            out.rejected = Some(errors.join("; "));
        }
        out
    }

    /// The messages that carry out a validated command, and why any of its values could not be
    /// sent.
    pub fn command(&mut self, cmd: &Command) -> (Vec<Publish>, Vec<String>) {
        let mut publishes = Vec::new();
        let mut errors = Vec::new();
        let native = cmd.device.native().to_owned();
        let Some(dev) = self.devices.get(&native) else {
            errors.push(format!("no discovered device `{}`", cmd.device));
            return (publishes, errors);
        };
        // Per entity: the features it sets, in the entity's order.
        let mut by_entity: BTreeMap<&str, Vec<(usize, &Value)>> = BTreeMap::new();
        for (key, value) in &cmd.request.set {
            let found = dev
                .entities
                .iter()
                .filter_map(|k| self.entities.get(k))
                .find_map(|e| e.keys.iter().position(|x| x == key).map(|i| (e.key.as_str(), i)));
            match found {
                Some((ek, i)) => by_entity.entry(ek).or_default().push((i, value)),
                None => errors.push(format!("`{key}` of {} cannot be set", cmd.device)),
            }
        }
        for (ek, mut sets) in by_entity {
            let Some(e) = self.entities.get(ek) else { continue };
            sets.sort_by_key(|(i, _)| *i);
            let mut json_parts: Vec<(&LightPart, &Value)> = Vec::new();
            let mut json_write = None;
            let mut plain: Vec<(usize, Publish)> = Vec::new();
            for (i, value) in &sets {
                let Some(m) = e.mapped.features.get(*i) else { continue };
                let key = e.keys.get(*i).map_or("", String::as_str);
                let Some(w) = &m.write else {
                    errors.push(format!("`{key}` of {} cannot be set", cmd.device));
                    continue;
                };
                if let Encode::LightJson(part) = &w.encode {
                    json_parts.push((part, value));
                    json_write = Some(w);
                    continue;
                }
                match w.payload(value) {
                    Ok(payload) => {
                        plain.push((*i, Publish { topic: w.topic.clone(), payload, qos: w.qos, retain: w.retain }))
                    }
                    Err(reason) => errors.push(format!("`{key}` of {} {reason}", cmd.device)),
                }
            }
            if let Some(w) = json_write {
                match component::light_json_command(&json_parts, cmd.request.transition) {
                    Ok(body) => publishes.push(Publish {
                        topic: w.topic.clone(),
                        payload: body.to_string(),
                        qos: w.qos,
                        retain: w.retain,
                    }),
                    Err(reason) => errors.push(reason),
                }
            }
            // A default-schema light: power before or after the rest, or not at all with a brightness.
            if e.component == Some(Component::Light)
                && let Some(pos) =
                    plain.iter().position(|(i, _)| e.mapped.features.get(*i).is_some_and(|m| m.part == "state"))
            {
                let turning_on = sets.iter().any(|(i, v)| {
                    e.mapped.features.get(*i).is_some_and(|m| m.part == "state") && **v == Value::Bool(true)
                });
                let has_brightness =
                    plain.iter().any(|(i, _)| e.mapped.features.get(*i).is_some_and(|m| m.part == "brightness"));
                let state = plain.remove(pos);
                match (e.mapped.on_command, turning_on) {
                    (OnCommand::Brightness, true) if has_brightness => {}
                    (OnCommand::Last, true) => plain.push(state),
                    _ => plain.insert(0, state),
                }
            }
            publishes.extend(plain.into_iter().map(|(_, p)| p));
        }
        if !publishes.is_empty() {
            self.causes.retain(|_, (_, at)| at.elapsed() < CAUSE_WINDOW);
            self.causes.insert(cmd.device.clone(), (cmd.context.clone(), Instant::now()));
        }
        (publishes, errors)
    }

    /// What the configs have that cannot be used, per device (all devices, or the one named by
    /// its id or native id).
    pub fn unsupported(&self, device: Option<&str>) -> Result<Json, String> {
        let mut list = Vec::new();
        for (native, d) in &self.devices {
            if let Some(want) = device
                && want != d.id.as_str()
                && want != native
            {
                continue;
            }
            let mut items = Vec::new();
            for k in &d.entities {
                let Some(e) = self.entities.get(k) else { continue };
                for u in &e.mapped.unsupported {
                    let mut item = json!({"entity": k, "option": u.option, "reason": u.reason});
                    if let (Some(t), Some(o)) = (&u.template, item.as_object_mut()) {
                        o.insert("template".into(), json!(t));
                    }
                    items.push(item);
                }
            }
            if items.is_empty() && device.is_none() {
                continue;
            }
            let name = d.described.as_ref().map(|x| x.name.clone()).or_else(|| d.info.name.clone());
            list.push(json!({"device": d.id.as_str(), "name": name, "announced": d.described.is_some(), "unsupported": items}));
        }
        if let Some(want) = device
            && list.is_empty()
        {
            return Err(format!("no discovered device `{want}`"));
        }
        Ok(json!({"devices": list}))
    }
}

fn dev_empty(d: &DeviceEntry) -> bool {
    d.entities.is_empty()
}

fn merge_info(into: &mut DeviceInfo, new: DeviceInfo) {
    fn take(a: &mut Option<String>, b: Option<String>) {
        if b.is_some() {
            *a = b;
        }
    }
    for i in new.identifiers {
        if !into.identifiers.contains(&i) {
            into.identifiers.push(i);
        }
    }
    for c in new.connections {
        if !into.connections.contains(&c) {
            into.connections.push(c);
        }
    }
    take(&mut into.name, new.name);
    take(&mut into.manufacturer, new.manufacturer);
    take(&mut into.model, new.model);
    take(&mut into.model_id, new.model_id);
    take(&mut into.sw_version, new.sw_version);
    take(&mut into.hw_version, new.hw_version);
    take(&mut into.suggested_area, new.suggested_area);
    take(&mut into.via_device, new.via_device);
    take(&mut into.configuration_url, new.configuration_url);
}

fn parse_object(payload: &[u8]) -> Result<Map<String, Json>, String> {
    match serde_json::from_slice::<Json>(payload) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err("the config is not a JSON object".into()),
        Err(e) => Err(format!("the config is not JSON ({e})")),
    }
}

/// Whether an MQTT topic filter (`a/+/c`, `a/#`) matches a topic.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{CommandRequest, Origin};

    fn cfg(r: &mut Registry, topic: &str, payload: Json) -> Outcome {
        r.config(topic, payload.to_string().as_bytes())
    }

    fn described(out: &Outcome) -> Vec<DeviceDescriptor> {
        out.events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Device { device } => Some(device.clone()),
                _ => None,
            })
            .collect()
    }

    fn keys(d: &DeviceDescriptor) -> Vec<&str> {
        d.features.iter().map(|f| f.key.as_str()).collect()
    }

    fn sensor(id: &str, object: &str) -> Json {
        json!({"stat_t": format!("{id}/state"), "unit_of_meas": "°C", "dev_cla": "temperature",
               "val_tpl": format!("{{{{ value_json.{object} }}}}"), "uniq_id": format!("{id}_{object}"),
               "dev": {"ids": [id], "name": "Thermo"}})
    }

    #[test]
    fn names_are_sanitized_and_slugged() {
        assert_eq!(sanitize("zigbee2mqtt_0x00158D0001"), "zigbee2mqtt_0x00158d0001");
        assert_eq!(sanitize("AA:BB:CC dd/ee"), "aa:bb:cc_dd_ee");
        assert_eq!(sanitize(""), "_");
        assert_eq!(slug("1A2B3C_AM2301_Temperature"), "1a2b3c_am2301_temperature");
        assert_eq!(slug("  Living Room -- Lamp!"), "living_room_lamp");
        assert_eq!(feature_key(Component::Light, "light", "brightness"), ("brightness".into(), None));
        assert_eq!(feature_key(Component::Light, "light_l2", "state"), ("state_l2".into(), Some("l2".into())));
        assert_eq!(feature_key(Component::Light, "desk", "state"), ("state_desk".into(), Some("desk".into())));
        assert_eq!(feature_key(Component::Switch, "switch", ""), ("state".into(), None));
        assert_eq!(feature_key(Component::Switch, "switch_left", ""), ("state_left".into(), Some("left".into())));
        assert_eq!(feature_key(Component::Switch, "relay", ""), ("relay".into(), None));
        assert_eq!(feature_key(Component::Lock, "lock", ""), ("lock".into(), None));
        assert_eq!(feature_key(Component::Sensor, "temperature", ""), ("temperature".into(), None));
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("a/b", "a/c"));
    }

    #[test]
    fn hearths_own_configs_and_ignored_origins_are_left_out() {
        let mut r = Registry::new("homeassistant", &["Zigbee2MQTT".to_owned()]);
        let mut own = sensor("x", "t");
        own["o"] = json!({"name": "Hearth"});
        assert!(cfg(&mut r, "homeassistant/sensor/x/t/config", own).events.is_empty());
        let mut own = sensor("hearth_demo_lamp", "t");
        own["o"] = json!({"name": "other"});
        assert!(cfg(&mut r, "homeassistant/sensor/hearth_demo_lamp/t/config", own).events.is_empty());
        let mut z = sensor("zigbee2mqtt_0x1", "t");
        z["origin"] = json!({"name": "zigbee2mqtt"});
        assert!(cfg(&mut r, "homeassistant/sensor/0x1/t/config", z).events.is_empty());
        assert!(r.topics().is_empty());
        assert!(r.device_ids().is_empty());
        // A known entity whose config turns into one to ignore is removed.
        let out = cfg(&mut r, "homeassistant/sensor/y/t/config", sensor("y", "t"));
        assert_eq!(described(&out).len(), 1);
        let mut y = sensor("y", "t");
        y["o"] = json!({"name": "Hearth"});
        let out = cfg(&mut r, "homeassistant/sensor/y/t/config", y);
        assert_eq!(out.events, [AdapterEvent::DeviceRemoved { device: DeviceId::new(ADAPTER_ID, "y") }]);
    }

    #[test]
    fn configs_group_into_devices_change_and_go() {
        let mut r = Registry::new("homeassistant", &[]);
        let out = cfg(&mut r, "homeassistant/sensor/dev1/temperature/config", sensor("dev1", "temperature"));
        let d = described(&out);
        assert_eq!(d[0].id.as_str(), "mqtt_discovery:dev1");
        assert_eq!(keys(&d[0]), ["temperature"]);
        // No availability: online at once.
        assert!(out.events.iter().any(|e| matches!(e, AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online)));
        let out = cfg(&mut r, "homeassistant/sensor/dev1/outside/config", sensor("dev1", "outside"));
        assert_eq!(keys(&described(&out)[0]), ["outside", "temperature"]);
        // The same config again changes nothing.
        assert!(cfg(&mut r, "homeassistant/sensor/dev1/outside/config", sensor("dev1", "outside")).events.is_empty());
        // A changed config re-describes the device.
        let mut changed = sensor("dev1", "outside");
        changed["unit_of_meas"] = json!("°F");
        changed["name"] = json!("Outside");
        let out = cfg(&mut r, "homeassistant/sensor/dev1/outside/config", changed);
        let d = described(&out);
        assert_eq!(d[0].feature("outside").and_then(|f| f.label.as_deref()), Some("Outside"));
        let out = r.message("dev1/state", br#"{"outside": 212, "temperature": 20}"#);
        let AdapterEvent::State { values, .. } = &out.events[0] else { panic!("{:?}", out.events) };
        assert_eq!(values["outside"], Value::Number(100.0));
        // An empty config removes its entity; the last one removes the device.
        let out = r.config("homeassistant/sensor/dev1/outside/config", b"");
        assert_eq!(keys(&described(&out)[0]), ["temperature"]);
        let out = r.config("homeassistant/sensor/dev1/temperature/config", b"");
        assert_eq!(out.events, [AdapterEvent::DeviceRemoved { device: DeviceId::new(ADAPTER_ID, "dev1") }]);
        assert!(r.topics().is_empty());
        // Removing what is not there is nothing.
        assert!(r.config("homeassistant/sensor/dev1/temperature/config", b"").events.is_empty());
    }

    #[test]
    fn a_config_without_a_device_is_a_device_by_its_unique_id() {
        let mut r = Registry::new("homeassistant", &[]);
        let out = cfg(
            &mut r,
            "homeassistant/switch/plug/config",
            json!({"name": "Plug", "cmd_t": "plug/set", "stat_t": "plug", "uniq_id": "Plug 1"}),
        );
        let d = &described(&out)[0];
        assert_eq!(d.id.as_str(), "mqtt_discovery:entity_plug_1");
        assert_eq!(d.name, "Plug");
        assert_eq!(keys(d), ["plug"]);
    }

    #[test]
    fn bad_configs_are_refused_and_unknown_components_listed() {
        let mut r = Registry::new("homeassistant", &[]);
        assert!(r.config("homeassistant/sensor/x/config", b"{not json").rejected.unwrap().contains("not JSON"));
        assert!(r.config("homeassistant/sensor/x/config", b"[1]").rejected.unwrap().contains("not a JSON object"));
        assert!(r.config("homeassistant/device/x/config", b"{}").rejected.unwrap().contains("components"));
        let big = vec![b' '; MAX_CONFIG_PAYLOAD + 1];
        assert!(r.config("homeassistant/sensor/x/config", &big).rejected.is_some());
        let out =
            cfg(&mut r, "homeassistant/vacuum/v1/config", json!({"cmd_t": "v", "dev": {"ids": "v1", "name": "Robot"}}));
        assert!(out.events.is_empty(), "a device with nothing usable is not announced");
        let report = r.unsupported(None).unwrap();
        assert_eq!(report["devices"][0]["device"], "mqtt_discovery:v1");
        assert_eq!(report["devices"][0]["announced"], false);
        assert!(report["devices"][0]["unsupported"][0]["reason"].as_str().unwrap().contains("`vacuum`"));
        assert!(r.unsupported(Some("mqtt_discovery:nope")).is_err());
        // The same device gains a sensor: announced, and the vacuum stays listed.
        let out = cfg(
            &mut r,
            "homeassistant/sensor/v1/battery/config",
            json!({"stat_t": "v/bat", "dev_cla": "battery", "unit_of_meas": "%", "dev": {"ids": "v1"}}),
        );
        assert_eq!(keys(&described(&out)[0]), ["battery"]);
        assert_eq!(r.unsupported(Some("v1")).unwrap()["devices"][0]["unsupported"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn clashing_keys_get_a_suffix() {
        let mut r = Registry::new("homeassistant", &[]);
        let dev = json!({"ids": ["c1"]});
        cfg(
            &mut r,
            "homeassistant/sensor/c1/battery/config",
            json!({"stat_t": "s", "unit_of_meas": "%", "dev_cla": "battery", "dev": dev}),
        );
        let out = cfg(
            &mut r,
            "homeassistant/binary_sensor/c1/battery/config",
            json!({"stat_t": "b", "dev_cla": "battery", "dev": dev}),
        );
        assert_eq!(keys(&described(&out)[0]), ["battery", "battery_sensor"]);
    }

    #[test]
    fn availability_all_and_any() {
        let mut r = Registry::new("homeassistant", &[]);
        let avty =
            json!([{"topic": "bridge"}, {"topic": "node", "payload_available": "up", "payload_not_available": "down"}]);
        let mut c = sensor("a1", "t");
        c["avty"] = avty.clone();
        c["avty_mode"] = json!("all");
        let out = cfg(&mut r, "homeassistant/sensor/a1/t/config", c);
        assert!(!out.events.iter().any(|e| matches!(e, AdapterEvent::Availability { .. })), "unknown until told");
        assert!(r.message("bridge", b"online").events.is_empty(), "all: one of two is not enough");
        let out = r.message("node", b"up");
        assert!(
            matches!(&out.events[0], AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Online)
        );
        let out = r.message("node", b"down");
        assert!(
            matches!(&out.events[0], AdapterEvent::Availability { availability, .. } if availability.state == AvailabilityState::Offline)
        );
        let mut c = sensor("a2", "t");
        c["avty"] = avty;
        c["avty_mode"] = json!("any");
        cfg(&mut r, "homeassistant/sensor/a2/t/config", c);
        let out = r.message("bridge", b"offline");
        // a1 stays offline, now for this reason; a2 waits for its other source.
        let a: Vec<(String, Option<String>)> = out
            .events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Availability { device, availability } => {
                    Some((device.to_string(), availability.reason.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            a,
            [(
                "mqtt_discovery:a1".to_owned(),
                Some("the device reports itself offline (`offline` on bridge)".to_owned())
            )]
        );
        let out = r.message("node", b"up");
        let online: Vec<String> = out
            .events
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Availability { device, availability }
                    if availability.state == AvailabilityState::Online =>
                {
                    Some(device.to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(online, ["mqtt_discovery:a2"]);
        // The broker goes: everything offline with the reason; back: as the devices last said.
        let out = r.broker_lost("MQTT broker unreachable");
        assert_eq!(out.len(), 2);
        let out = r.broker_back();
        let back: Vec<AvailabilityState> = out
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Availability { availability, .. } => Some(availability.state),
                _ => None,
            })
            .collect();
        assert_eq!(back, [AvailabilityState::Offline, AvailabilityState::Online]);
    }

    #[test]
    fn an_availability_template_falls_back_to_the_plain_payload() {
        let mut r = Registry::new("homeassistant", &[]);
        let mut c = sensor("z1", "t");
        c["availability"] = json!([{"topic": "zigbee2mqtt/bridge/state", "value_template": "{{ value_json.state }}"}]);
        cfg(&mut r, "homeassistant/sensor/z1/t/config", c);
        let state = |out: Outcome| match out.events.first() {
            Some(AdapterEvent::Availability { availability, .. }) => Some(availability.state),
            _ => None,
        };
        assert_eq!(
            state(r.message("zigbee2mqtt/bridge/state", br#"{"state":"online"}"#)),
            Some(AvailabilityState::Online)
        );
        // zigbee2mqtt before 1.29 sent the bare word.
        assert_eq!(state(r.message("zigbee2mqtt/bridge/state", b"offline")), Some(AvailabilityState::Offline));
        assert_eq!(state(r.message("zigbee2mqtt/bridge/state", b"something else")), None);
    }

    #[test]
    fn a_command_goes_out_and_the_report_it_causes_carries_its_context() {
        let mut r = Registry::new("homeassistant", &[]);
        cfg(
            &mut r,
            "homeassistant/light/l1/light/config",
            json!({
            "cmd_t": "l1/set", "stat_t": "l1", "bri_cmd_t": "l1/bri/set", "bri_stat_t": "l1/bri", "on_cmd_type": "last",
            "dev": {"ids": "l1"}}),
        );
        let ctx = Context::new("c9", Origin::User { name: "u".into() });
        let cmd = Command {
            device: DeviceId::new(ADAPTER_ID, "l1"),
            request: CommandRequest {
                set: BTreeMap::from([("state".into(), Value::Bool(true)), ("brightness".into(), Value::Number(100.0))]),
                ..CommandRequest::default()
            },
            context: ctx.clone(),
        };
        let (p, errors) = r.command(&cmd);
        assert!(errors.is_empty());
        let sent: Vec<(&str, &str)> = p.iter().map(|p| (p.topic.as_str(), p.payload.as_str())).collect();
        assert_eq!(sent, [("l1/bri/set", "255"), ("l1/set", "ON")], "on_command_type last: power after brightness");
        let out = r.message("l1", b"ON");
        assert!(matches!(&out.events[0], AdapterEvent::State { cause: Some(c), .. } if c.id == "c9"));
        let mut bad = cmd.clone();
        bad.request.set = BTreeMap::from([("nope".into(), Value::Bool(true))]);
        let (p, errors) = r.command(&bad);
        assert!(p.is_empty());
        assert_eq!(errors, ["`nope` of mqtt_discovery:l1 cannot be set"]);
    }

    #[test]
    fn a_bad_state_payload_is_refused_and_the_rest_of_the_message_used() {
        let mut r = Registry::new("homeassistant", &[]);
        let dev = json!({"ids": "m1"});
        cfg(
            &mut r,
            "homeassistant/sensor/m1/a/config",
            json!({"stat_t": "m1", "unit_of_meas": "W", "val_tpl": "{{ value_json.a }}", "dev": dev}),
        );
        cfg(
            &mut r,
            "homeassistant/sensor/m1/b/config",
            json!({"stat_t": "m1", "unit_of_meas": "W", "val_tpl": "{{ value_json.b }}", "dev": dev}),
        );
        let out = r.message("m1", br#"{"a": "lots", "b": 5}"#);
        assert!(out.rejected.unwrap().contains("`lots` is not a number"));
        let AdapterEvent::State { values, .. } = &out.events[0] else { panic!() };
        assert_eq!(values.keys().collect::<Vec<_>>(), ["b"]);
        assert!(r.message("m1", &vec![b'1'; MAX_STATE_PAYLOAD + 1]).rejected.is_some());
        assert!(r.message("unrelated", b"1").events.is_empty());
        assert!(r.message("m1", &[0xff, 0xfe]).rejected.unwrap().contains("is not JSON"));
    }
}
