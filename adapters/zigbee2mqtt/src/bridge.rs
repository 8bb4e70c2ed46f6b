//! The adapter's picture of a zigbee2mqtt bridge, as pure logic: MQTT messages in, model events
//! out. Devices by IEEE address (their ids never change, whatever the user renames them to in
//! zigbee2mqtt), groups as devices, availability from the bridge and from each device, the
//! permit-join countdown, and the context of the last command per device.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hearth_sdk::{
    Access, AdapterEvent, Availability, AvailabilityState, Capability, Category, Command, Context, DeviceDescriptor,
    DeviceId, Feature, PowerSource, Timestamp, Value, ValueType,
};
use serde_json::{Value as Json, json};

use crate::api::{self, BridgeDevice, BridgeGroup, BridgeInfo, DeviceType, OnlineState};
use crate::exposes::{self, Mapping};

/// The reason devices are offline when the bridge is.
pub const BRIDGE_OFFLINE: &str = "zigbee2mqtt bridge offline";
/// The reason a device is offline when zigbee2mqtt says so.
pub const DEVICE_OFFLINE: &str = "zigbee2mqtt reports the device offline (it stopped answering)";
/// How long after a command its context is given to the device's reports.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(5);
/// The largest device state payload accepted.
pub const MAX_STATE_PAYLOAD: usize = 256 * 1024;

/// The diagnostic feature saying how the device stands in zigbee2mqtt.
pub const STATUS_FEATURE: &str = "zigbee_status";
/// Values of [`STATUS_FEATURE`].
pub const STATUS_VALUES: &[&str] = &["ready", "interviewing", "interview_failed", "unsupported", "disabled"];

struct Entry {
    id: DeviceId,
    name: String,
    mapping: Mapping,
    own: Option<OnlineState>,
    shown: Option<Shown>,
    status: &'static str,
}

struct Group {
    id: DeviceId,
    name: String,
    mapping: Mapping,
    shown: Option<Shown>,
}

/// The availability last reported: state and reason.
type Shown = (AvailabilityState, Option<String>);

/// What the adapter knows of the bridge.
pub struct Bridge {
    base: String,
    online: Option<bool>,
    coordinator: Option<Entry>,
    devices: HashMap<String, Entry>,
    names: HashMap<String, String>,
    groups: HashMap<u32, Group>,
    permit_join_end: Option<i64>,
    permit_join_shown: Option<(bool, i64)>,
    causes: HashMap<DeviceId, (Context, Instant)>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("base", &self.base).field("devices", &self.devices.len()).finish()
    }
}

fn id(native: &str) -> DeviceId {
    DeviceId::new(crate::ADAPTER_ID, native)
}

fn power_source(s: Option<&str>) -> PowerSource {
    match s {
        Some(s) if s.starts_with("Mains") => PowerSource::Mains,
        Some("Battery") => PowerSource::Battery,
        Some("DC Source") => PowerSource::Dc,
        _ => PowerSource::Unknown,
    }
}

fn status_of(d: &BridgeDevice) -> &'static str {
    if d.disabled {
        "disabled"
    } else if d.interview_state == Some(api::InterviewState::Failed) {
        "interview_failed"
    } else if !d.interviewed() {
        "interviewing"
    } else if !d.supported || d.definition.is_none() {
        "unsupported"
    } else {
        "ready"
    }
}

impl Bridge {
    /// A bridge under `base` (the base topic, for log lines).
    pub fn new(base: &str) -> Bridge {
        Bridge {
            base: base.to_owned(),
            online: None,
            coordinator: None,
            devices: HashMap::new(),
            names: HashMap::new(),
            groups: HashMap::new(),
            permit_join_end: None,
            permit_join_shown: None,
            causes: HashMap::new(),
        }
    }

    /// Whether the bridge said it is online.
    pub fn online(&self) -> bool {
        self.online == Some(true)
    }

    /// Handles one message (`rest` is the topic after the base topic). An error is the reason
    /// the message was not used.
    pub fn message(&mut self, rest: &str, payload: &[u8]) -> Result<Vec<AdapterEvent>, String> {
        match rest {
            "bridge/state" => {
                let state = api::Availability::parse(payload)
                    .ok_or_else(|| "bridge/state is neither {\"state\": \"online\"} nor online/offline".to_owned())?;
                self.online = Some(state == OnlineState::Online);
                Ok(self.availability_all())
            }
            "bridge/info" => {
                let info: BridgeInfo = parse(payload)?;
                Ok(self.info(&info))
            }
            "bridge/devices" => {
                let list: Vec<BridgeDevice> = parse(payload)?;
                Ok(self.devices(list))
            }
            "bridge/groups" => {
                let list: Vec<BridgeGroup> = parse(payload)?;
                Ok(self.groups(list))
            }
            "bridge/event" => {
                let ev: api::BridgeEvent = parse(payload)?;
                tracing::info!(kind = %ev.kind, device = ev.ieee_address().unwrap_or(""), "zigbee2mqtt bridge event.");
                Ok(Vec::new())
            }
            _ if rest.starts_with("bridge/") => Ok(Vec::new()),
            _ if rest.ends_with("/set")
                || rest.ends_with("/get")
                || rest.contains("/set/")
                || rest.contains("/get/") =>
            {
                Ok(Vec::new())
            }
            _ => {
                if let Some(name) = rest.strip_suffix("/availability")
                    && (self.names.contains_key(name) || self.group_by_name(name).is_some())
                {
                    let state = api::Availability::parse(payload).ok_or_else(|| {
                        "an availability payload is neither {\"state\": ...} nor online/offline".to_owned()
                    })?;
                    return Ok(self.device_availability(name, state));
                }
                self.state(rest, payload)
            }
        }
    }

    fn info(&mut self, info: &BridgeInfo) -> Vec<AdapterEvent> {
        let now = Timestamp::now().as_millis();
        self.permit_join_end = if !info.permit_join {
            None
        } else if let Some(end) = info.permit_join_end {
            Some(end)
        } else {
            info.permit_join_timeout.map(|s| now + s * 1000).or(Some(i64::MAX))
        };
        let mut out = Vec::new();
        if let Some(c) = &mut self.coordinator {
            let firmware = info
                .coordinator
                .as_ref()
                .and_then(|c| c.meta.as_ref())
                .and_then(|m| m.get("revision"))
                .map(|r| r.to_string().trim_matches('"').to_owned());
            if firmware.is_some() {
                out.push(AdapterEvent::Device {
                    device: coordinator_descriptor(&c.id, info.version.as_deref(), firmware),
                });
            }
        }
        out.extend(self.tick(Timestamp::now()));
        out
    }

    /// The permit-join countdown, once a second.
    pub fn tick(&mut self, now: Timestamp) -> Vec<AdapterEvent> {
        let Some(c) = &self.coordinator else { return Vec::new() };
        let (open, remaining) = match self.permit_join_end {
            Some(i64::MAX) => (true, -1),
            Some(end) => {
                let left = ((end - now.as_millis()) as f64 / 1000.0).ceil().max(0.0) as i64;
                (left > 0, left)
            }
            None => (false, 0),
        };
        if !open {
            self.permit_join_end = None;
        }
        if self.permit_join_shown == Some((open, remaining)) {
            return Vec::new();
        }
        self.permit_join_shown = Some((open, remaining));
        let mut values = BTreeMap::from([("permit_join".to_owned(), Value::Bool(open))]);
        if remaining >= 0 {
            values.insert("permit_join_remaining".into(), Value::Number(remaining as f64));
        }
        vec![AdapterEvent::State { device: c.id.clone(), values, cause: None }]
    }

    fn devices(&mut self, list: Vec<BridgeDevice>) -> Vec<AdapterEvent> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for d in list {
            if d.kind == DeviceType::Coordinator {
                let cid = id(&d.ieee_address);
                if self.coordinator.as_ref().is_none_or(|c| c.id != cid) {
                    out.push(AdapterEvent::Device { device: coordinator_descriptor(&cid, None, None) });
                    self.coordinator = Some(Entry {
                        id: cid,
                        name: d.friendly_name.clone(),
                        mapping: Mapping::default(),
                        own: None,
                        shown: None,
                        status: "ready",
                    });
                    self.permit_join_shown = None;
                    out.extend(self.tick(Timestamp::now()));
                }
                continue;
            }
            seen.push(d.ieee_address.clone());
            let mut mapping = d.definition.as_ref().map(|def| exposes::map_exposes(&def.exposes)).unwrap_or_default();
            for line in &mapping.unsupported {
                tracing::warn!(device = %d.friendly_name, "zigbee2mqtt device: {line}.");
            }
            add_diagnostics(&mut mapping, d.definition.as_ref().is_some_and(|def| def.supports_ota));
            let status = status_of(&d);
            let descriptor = DeviceDescriptor {
                id: id(&d.ieee_address),
                name: d.friendly_name.clone(),
                suggested_area: None,
                manufacturer: d.definition.as_ref().map(|x| x.vendor.clone()).or(d.manufacturer.clone()),
                model: d.definition.as_ref().map(|x| x.model.clone()).or(d.model_id.clone()),
                firmware: d.software_build_id.clone(),
                via: self.coordinator.as_ref().map(|c| c.id.clone()),
                power_source: power_source(d.power_source.as_deref()),
                features: mapping.features.clone(),
            };
            if let Some(old) = self.devices.get(&d.ieee_address)
                && old.name != d.friendly_name
            {
                self.names.remove(&old.name);
            }
            self.names.insert(d.friendly_name.clone(), d.ieee_address.clone());
            let entry = self.devices.entry(d.ieee_address.clone()).or_insert_with(|| Entry {
                id: descriptor.id.clone(),
                name: d.friendly_name.clone(),
                mapping: Mapping::default(),
                own: None,
                shown: None,
                status,
            });
            entry.name = d.friendly_name.clone();
            entry.mapping = mapping;
            let status_changed = entry.status != status;
            entry.status = status;
            let first = entry.shown.is_none();
            out.push(AdapterEvent::Device { device: descriptor });
            if first || status_changed {
                out.push(AdapterEvent::State {
                    device: entry.id.clone(),
                    values: BTreeMap::from([(STATUS_FEATURE.to_owned(), Value::Text(status.to_owned()))]),
                    cause: None,
                });
            }
        }
        let gone: Vec<String> = self.devices.keys().filter(|k| !seen.contains(k)).cloned().collect();
        for ieee in gone {
            if let Some(e) = self.devices.remove(&ieee) {
                self.names.remove(&e.name);
                out.push(AdapterEvent::DeviceRemoved { device: e.id });
            }
        }
        out.extend(self.availability_all());
        out
    }

    fn groups(&mut self, list: Vec<BridgeGroup>) -> Vec<AdapterEvent> {
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for g in list {
            seen.push(g.id);
            let members: Vec<&Entry> = g.members.iter().filter_map(|m| self.devices.get(&m.ieee_address)).collect();
            let mut mapping = Mapping::default();
            for key in ["state", "brightness", "color_temp", "color"] {
                if let Some(e) = members.iter().find(|e| e.mapping.property(key).is_some())
                    && let (Some(p), Some(f)) = (e.mapping.property(key), e.mapping.feature(key))
                {
                    let mut f = f.clone();
                    f.access = Access { observe: true, set: true, get: false };
                    mapping.features.push(f);
                    mapping.properties.push(p.clone());
                }
            }
            let member_ids: Vec<Value> = members.iter().map(|e| Value::Text(e.id.to_string())).collect();
            mapping.features.push(
                Feature::new("members", Capability::Other, ValueType::List, Access::READ_ONLY)
                    .category(Category::Diagnostic)
                    .label("Members"),
            );
            let gid = id(&format!("group_{}", g.id));
            out.push(AdapterEvent::Device {
                device: DeviceDescriptor {
                    id: gid.clone(),
                    name: g.friendly_name.clone(),
                    suggested_area: None,
                    manufacturer: Some("zigbee2mqtt".into()),
                    model: Some("Zigbee group".into()),
                    firmware: None,
                    via: self.coordinator.as_ref().map(|c| c.id.clone()),
                    power_source: PowerSource::Unknown,
                    features: mapping.features.clone(),
                },
            });
            out.push(AdapterEvent::State {
                device: gid.clone(),
                values: BTreeMap::from([("members".to_owned(), Value::List(member_ids))]),
                cause: None,
            });
            let shown = self.groups.get(&g.id).and_then(|x| x.shown.clone());
            self.groups.insert(g.id, Group { id: gid, name: g.friendly_name.clone(), mapping, shown });
        }
        let gone: Vec<u32> = self.groups.keys().filter(|k| !seen.contains(k)).copied().collect();
        for k in gone {
            if let Some(g) = self.groups.remove(&k) {
                out.push(AdapterEvent::DeviceRemoved { device: g.id });
            }
        }
        out.extend(self.availability_all());
        out
    }

    fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.values().find(|g| g.name == name)
    }

    fn device_availability(&mut self, name: &str, state: OnlineState) -> Vec<AdapterEvent> {
        if let Some(ieee) = self.names.get(name).cloned()
            && let Some(e) = self.devices.get_mut(&ieee)
        {
            e.own = Some(state);
        }
        self.availability_all()
    }

    /// Availability of everything, emitted where it changed.
    fn availability_all(&mut self) -> Vec<AdapterEvent> {
        let now = Timestamp::now();
        let mut out = Vec::new();
        let bridge = self.online;
        let decide = |own: Option<OnlineState>| -> Option<Availability> {
            match (bridge, own) {
                (None, _) => None,
                (Some(false), _) => Some(Availability::offline(BRIDGE_OFFLINE, now).with_code("bridge_offline")),
                (Some(true), Some(OnlineState::Offline)) => {
                    Some(Availability::offline(DEVICE_OFFLINE, now).with_code("device_offline"))
                }
                (Some(true), _) => Some(Availability::online(now)),
            }
        };
        let entries = self.coordinator.iter_mut().map(|e| (e.own, &mut e.shown, &e.id));
        let entries = entries.chain(self.devices.values_mut().map(|e| (e.own, &mut e.shown, &e.id)));
        let entries = entries.chain(self.groups.values_mut().map(|g| (None, &mut g.shown, &g.id)));
        for (own, shown, id) in entries {
            if let Some(a) = decide(own)
                && shown.as_ref() != Some(&(a.state, a.reason.clone()))
            {
                *shown = Some((a.state, a.reason.clone()));
                out.push(AdapterEvent::Availability { device: id.clone(), availability: a });
            }
        }
        out
    }

    /// Every device offline with this reason (the broker is gone); they come back with the bridge.
    pub fn all_offline(&mut self, reason: &str) -> Vec<AdapterEvent> {
        let now = Timestamp::now();
        self.online = None;
        let mut out = Vec::new();
        let ids = self
            .coordinator
            .iter_mut()
            .chain(self.devices.values_mut())
            .map(|e| (&mut e.shown, e.id.clone()))
            .chain(self.groups.values_mut().map(|g| (&mut g.shown, g.id.clone())));
        for (shown, id) in ids {
            let new = (AvailabilityState::Offline, Some(reason.to_owned()));
            if shown.as_ref() != Some(&new) {
                *shown = Some(new);
                out.push(AdapterEvent::Availability {
                    device: id,
                    availability: Availability::offline(reason, now).with_code("broker_unreachable"),
                });
            }
        }
        out
    }

    fn state(&mut self, name: &str, payload: &[u8]) -> Result<Vec<AdapterEvent>, String> {
        let (dev_id, mapping) = if let Some(e) = self.names.get(name).and_then(|ieee| self.devices.get(ieee)) {
            (e.id.clone(), &e.mapping)
        } else if let Some(g) = self.group_by_name(name) {
            (g.id.clone(), &g.mapping)
        } else {
            return Err(format!("no device or group named `{name}` in bridge/devices"));
        };
        if payload.len() > MAX_STATE_PAYLOAD {
            return Err(format!("a state payload of {} bytes is larger than {MAX_STATE_PAYLOAD}", payload.len()));
        }
        if payload.is_empty() {
            return Ok(Vec::new()); // a cleared retained message
        }
        let obj: serde_json::Map<String, Json> =
            serde_json::from_slice(payload).map_err(|e| format!("the payload is not a JSON object ({e})"))?;
        let (mut values, events, unknown) = exposes::decode(mapping, &obj);
        if !unknown.is_empty() {
            tracing::debug!(device = %name, properties = ?unknown, "zigbee2mqtt reported properties it does not expose.");
        }
        if let Some(update) = obj.get("update").and_then(Json::as_object) {
            if let Some(s) = update.get("state").and_then(Json::as_str) {
                values.insert("update_state".into(), Value::Text(s.to_owned()));
            }
            if let Some(p) = update.get("progress").and_then(Json::as_f64) {
                values.insert("update_progress".into(), Value::Number(p));
            }
            if mapping.feature("update_state").is_none() {
                values.remove("update_state");
                values.remove("update_progress");
            }
        }
        let cause = self.causes.get(&dev_id).filter(|(_, at)| at.elapsed() < CAUSE_WINDOW).map(|(c, _)| c.clone());
        let mut out = Vec::new();
        if !values.is_empty() {
            out.push(AdapterEvent::State { device: dev_id.clone(), values, cause });
        }
        for (feature, event, data) in events {
            out.push(AdapterEvent::Event { device: dev_id.clone(), feature, event, data });
        }
        Ok(out)
    }

    /// The friendly name of a device given by Hearth id, IEEE address or friendly name.
    pub fn friendly_name(&self, id: &str) -> Option<String> {
        let native = id.strip_prefix("zigbee2mqtt:").unwrap_or(id);
        if let Some(e) = self.devices.get(native) {
            return Some(e.name.clone());
        }
        self.names.contains_key(id).then(|| id.to_owned())
    }

    /// How zigbee2mqtt names a group given by Hearth id, number or name.
    pub fn group_ref(&self, id: &str) -> Option<Json> {
        let native = id.strip_prefix("zigbee2mqtt:group_").or_else(|| id.strip_prefix("group_")).unwrap_or(id);
        native.parse::<u32>().ok().and_then(|n| self.groups.get(&n)).map(|g| json!(g.name))
    }

    /// The topic name and mapping of a device or group.
    pub fn target(&self, device: &DeviceId) -> Option<(&str, &Mapping)> {
        let native = device.native();
        if let Some(e) = self.devices.get(native) {
            return Some((&e.name, &e.mapping));
        }
        let n: u32 = native.strip_prefix("group_")?.parse().ok()?;
        self.groups.get(&n).map(|g| (g.name.as_str(), &g.mapping))
    }

    /// A command to the coordinator (permit join) as a bridge request.
    pub fn bridge_command(&self, cmd: &Command) -> Option<(&'static str, Json)> {
        let c = self.coordinator.as_ref()?;
        if cmd.device != c.id {
            return None;
        }
        let open = cmd.request.set.get("permit_join").and_then(Value::as_bool)?;
        Some(("permit_join", json!({"time": if open { 254 } else { 0 }})))
    }

    /// Remembers the context of a command, for the reports it causes.
    pub fn remember_cause(&mut self, device: &DeviceId, context: Context) {
        self.causes.retain(|_, (_, at)| at.elapsed() < CAUSE_WINDOW);
        self.causes.insert(device.clone(), (context, Instant::now()));
    }

    /// The base topic.
    pub fn base(&self) -> &str {
        &self.base
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| format!("the payload does not have zigbee2mqtt's shape ({e})"))
}

fn coordinator_descriptor(id: &DeviceId, version: Option<&str>, firmware: Option<String>) -> DeviceDescriptor {
    DeviceDescriptor {
        id: id.clone(),
        name: "Zigbee2MQTT bridge".into(),
        suggested_area: None,
        manufacturer: Some("zigbee2mqtt".into()),
        model: Some(version.map_or_else(|| "Coordinator".to_owned(), |v| format!("Coordinator (zigbee2mqtt {v})"))),
        firmware,
        via: None,
        power_source: PowerSource::Mains,
        features: vec![
            Feature::new("permit_join", Capability::Other, ValueType::Bool, Access::READ_WRITE).label("Permit join"),
            Feature::new(
                "permit_join_remaining",
                Capability::Duration,
                ValueType::range(0.0, 254.0, 1.0),
                Access::READ_ONLY,
            )
            .label("Permit join time left"),
        ],
    }
}

/// Diagnostics every zigbee2mqtt device gets: its standing, and firmware updates when supported.
fn add_diagnostics(m: &mut Mapping, ota: bool) {
    let status = Feature::new(
        STATUS_FEATURE,
        Capability::Other,
        ValueType::enumeration(STATUS_VALUES.iter().copied()),
        Access::READ_ONLY,
    )
    .category(Category::Diagnostic)
    .label("Zigbee status");
    if m.feature(STATUS_FEATURE).is_none() {
        m.features.push(status);
    }
    if ota && m.feature("update_state").is_none() {
        m.features.push(
            Feature::new(
                "update_state",
                Capability::Other,
                ValueType::enumeration(["idle", "available", "updating", "scheduled"]),
                Access::READ_ONLY,
            )
            .category(Category::Diagnostic)
            .label("Firmware update"),
        );
        m.features.push(
            Feature::new("update_progress", Capability::Other, ValueType::range(0.0, 100.0, 0.01), Access::READ_ONLY)
                .unit("%")
                .category(Category::Diagnostic)
                .label("Firmware update progress"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::Origin;

    fn devices(names: &[(&str, &str)]) -> Vec<u8> {
        let mut list = vec![json!({"ieee_address": "0x00124b0000000001", "type": "Coordinator", "network_address": 0,
                                   "supported": true, "friendly_name": "Coordinator", "disabled": false,
                                   "interview_state": "SUCCESSFUL", "definition": null})];
        for (ieee, name) in names {
            list.push(json!({
                "ieee_address": ieee, "type": "Router", "network_address": 1, "supported": true, "friendly_name": name,
                "disabled": false, "interview_state": "SUCCESSFUL", "power_source": "Mains (single phase)",
                "manufacturer": "Signify Netherlands B.V.", "model_id": "LCT015",
                "definition": {"model": "9290012573A", "vendor": "Philips", "description": "Hue bulb", "supports_ota": true,
                    "exposes": [
                        {"type": "light", "features": [
                            {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"},
                            {"type": "numeric", "name": "brightness", "property": "brightness", "access": 7, "value_min": 0, "value_max": 254}]},
                        {"type": "enum", "name": "action", "property": "action", "access": 1, "values": ["on", "off"]}]}
            }));
        }
        list.push(json!({"ieee_address": "0x0000000000000bad", "type": "EndDevice", "supported": false,
                         "friendly_name": "Mystery", "disabled": false, "interview_state": "SUCCESSFUL",
                         "model_id": "XYZ-1", "manufacturer": "Nobody", "definition": null}));
        serde_json::to_vec(&list).expect("json")
    }

    fn kinds(out: &[AdapterEvent]) -> Vec<String> {
        out.iter().map(|e| serde_json::to_value(e).expect("json")["type"].as_str().unwrap_or("").to_owned()).collect()
    }

    fn availability(out: &[AdapterEvent], device: &str) -> Option<(AvailabilityState, Option<String>)> {
        out.iter().rev().find_map(|e| match e {
            AdapterEvent::Availability { device: d, availability } if d.as_str() == device => {
                Some((availability.state, availability.reason.clone()))
            }
            _ => None,
        })
    }

    #[test]
    fn devices_appear_with_features_and_follow_the_bridge() {
        let mut b = Bridge::new("zigbee2mqtt");
        let out = b.message("bridge/devices", &devices(&[("0x0017880100000001", "Living room bulb")])).expect("ok");
        let descriptors: Vec<&DeviceDescriptor> = out
            .iter()
            .filter_map(|e| match e {
                AdapterEvent::Device { device } => Some(device),
                _ => None,
            })
            .collect();
        assert_eq!(descriptors.len(), 3, "coordinator, bulb, unsupported device");
        let bulb = descriptors.iter().find(|d| d.name == "Living room bulb").expect("bulb");
        assert_eq!(bulb.id.as_str(), "zigbee2mqtt:0x0017880100000001");
        assert_eq!((bulb.manufacturer.as_deref(), bulb.model.as_deref()), (Some("Philips"), Some("9290012573A")));
        assert_eq!(bulb.via.as_ref().map(DeviceId::as_str), Some("zigbee2mqtt:0x00124b0000000001"));
        let keys: Vec<&str> = bulb.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["state", "brightness", "action", "zigbee_status", "update_state", "update_progress"]);
        let mystery = descriptors.iter().find(|d| d.name == "Mystery").expect("unsupported device");
        assert_eq!(mystery.model.as_deref(), Some("XYZ-1"));
        assert!(out.iter().any(|e| matches!(e, AdapterEvent::State { device, values, .. }
            if device.native() == "0x0000000000000bad" && values["zigbee_status"] == Value::Text("unsupported".into()))));
        // Availability is unknown until the bridge says something.
        assert_eq!(availability(&out, "zigbee2mqtt:0x0017880100000001"), None);

        let out = b.message("bridge/state", br#"{"state":"online"}"#).expect("ok");
        assert_eq!(availability(&out, "zigbee2mqtt:0x0017880100000001"), Some((AvailabilityState::Online, None)));
        let out = b.message("Living room bulb/availability", b"offline").expect("legacy payload");
        assert_eq!(
            availability(&out, "zigbee2mqtt:0x0017880100000001"),
            Some((AvailabilityState::Offline, Some(DEVICE_OFFLINE.into())))
        );
        let out = b.message("bridge/state", br#"{"state":"offline"}"#).expect("ok");
        assert_eq!(
            availability(&out, "zigbee2mqtt:0x0017880100000001"),
            Some((AvailabilityState::Offline, Some(BRIDGE_OFFLINE.into())))
        );
        assert_eq!(
            availability(&out, "zigbee2mqtt:0x0000000000000bad"),
            Some((AvailabilityState::Offline, Some(BRIDGE_OFFLINE.into())))
        );
        let out = b.all_offline("MQTT broker unreachable");
        assert_eq!(
            availability(&out, "zigbee2mqtt:0x0017880100000001"),
            Some((AvailabilityState::Offline, Some("MQTT broker unreachable".into())))
        );
    }

    #[test]
    fn state_events_renames_and_removal() {
        let mut b = Bridge::new("zigbee2mqtt");
        b.message("bridge/devices", &devices(&[("0x0017880100000001", "Living room bulb")])).expect("ok");
        let id = DeviceId::new("zigbee2mqtt", "0x0017880100000001");
        let cause = Context::new("c1", Origin::User { name: "alice".into() });
        b.remember_cause(&id, cause.clone());
        let out = b.message("Living room bulb", br#"{"state":"ON","brightness":127,"linkquality":90}"#).expect("ok");
        match &out[..] {
            [AdapterEvent::State { values, cause: Some(c), .. }] => {
                assert_eq!(values["state"], Value::Bool(true));
                assert_eq!(values["brightness"], Value::Number(50.0));
                assert_eq!(c, &cause);
            }
            other => panic!("unexpected {other:?}"),
        }
        let out = b.message("Living room bulb", br#"{"action":"on"}"#).expect("ok");
        assert_eq!(kinds(&out), ["event"]);
        assert!(b.message("Living room bulb", br#"{"action":""}"#).expect("ok").is_empty());
        assert!(b.message("Living room bulb/set", br#"{"state":"ON"}"#).expect("own command").is_empty());

        // Bad input: refused with a reason, never a panic.
        assert!(b.message("Living room bulb", b"{not json").unwrap_err().contains("not a JSON object"));
        assert!(b.message("Living room bulb", b"[1,2]").is_err());
        assert!(b.message("Nobody here", b"{}").unwrap_err().contains("no device or group named `Nobody here`"));
        assert!(b.message("bridge/devices", br#"{"oops": true}"#).unwrap_err().contains("zigbee2mqtt's shape"));
        assert!(b.message("Living room bulb", &vec![b' '; MAX_STATE_PAYLOAD + 1]).is_err());

        // A rename in zigbee2mqtt keeps the id; the old topic is forgotten.
        let out = b.message("bridge/devices", &devices(&[("0x0017880100000001", "Kitchen bulb")])).expect("ok");
        assert!(
            out.iter().any(
                |e| matches!(e, AdapterEvent::Device { device } if device.id == id && device.name == "Kitchen bulb")
            )
        );
        assert_eq!(b.friendly_name("zigbee2mqtt:0x0017880100000001").as_deref(), Some("Kitchen bulb"));
        assert!(b.message("Living room bulb", br#"{"state":"OFF"}"#).is_err());
        assert_eq!(b.target(&id).map(|(n, _)| n), Some("Kitchen bulb"));
        // A device that leaves is removed.
        let out = b.message("bridge/devices", &devices(&[])).expect("ok");
        assert!(out.iter().any(|e| matches!(e, AdapterEvent::DeviceRemoved { device } if *device == id)));
    }

    #[test]
    fn groups_become_devices_listing_their_members() {
        let mut b = Bridge::new("zigbee2mqtt");
        b.message("bridge/devices", &devices(&[("0x01", "A"), ("0x02", "B")])).expect("ok");
        let groups = json!([{"id": 3, "friendly_name": "Downstairs", "scenes": [],
                             "members": [{"ieee_address": "0x01", "endpoint": 11}, {"ieee_address": "0x02", "endpoint": 11}]}]);
        let out = b.message("bridge/groups", groups.to_string().as_bytes()).expect("ok");
        let group = out
            .iter()
            .find_map(|e| match e {
                AdapterEvent::Device { device } => Some(device.clone()),
                _ => None,
            })
            .expect("group device");
        assert_eq!(group.id.as_str(), "zigbee2mqtt:group_3");
        let keys: Vec<&str> = group.features.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["state", "brightness", "members"]);
        assert!(out.iter().any(|e| matches!(e, AdapterEvent::State { values, .. }
            if values["members"] == Value::List(vec![Value::Text("zigbee2mqtt:0x01".into()), Value::Text("zigbee2mqtt:0x02".into())]))));
        assert_eq!(b.group_ref("zigbee2mqtt:group_3"), Some(json!("Downstairs")));
        let out = b.message("Downstairs", br#"{"state":"OFF"}"#).expect("group state");
        assert_eq!(kinds(&out), ["state"]);
    }

    #[test]
    fn permit_join_counts_down_on_the_coordinator() {
        let mut b = Bridge::new("zigbee2mqtt");
        b.message("bridge/devices", &devices(&[])).expect("ok");
        let now = Timestamp::now();
        let info = json!({"version": "2.1.3", "permit_join": true, "permit_join_end": now.as_millis() + 60_000,
                          "coordinator": {"ieee_address": "0x00124b0000000001", "type": "zStack3x0", "meta": {"revision": 20240710}}});
        let out = b.message("bridge/info", info.to_string().as_bytes()).expect("ok");
        let remaining = |out: &[AdapterEvent]| {
            out.iter().find_map(|e| match e {
                AdapterEvent::State { values, .. } => {
                    Some((values.get("permit_join").cloned(), values.get("permit_join_remaining").cloned()))
                }
                _ => None,
            })
        };
        assert_eq!(remaining(&out), Some((Some(Value::Bool(true)), Some(Value::Number(60.0)))));
        let out = b.tick(now.plus_millis(30_000));
        assert_eq!(remaining(&out), Some((Some(Value::Bool(true)), Some(Value::Number(30.0)))));
        assert!(b.tick(now.plus_millis(30_000)).is_empty(), "no change, nothing sent");
        let out = b.tick(now.plus_millis(61_000));
        assert_eq!(remaining(&out), Some((Some(Value::Bool(false)), Some(Value::Number(0.0)))));
        // 1.x shape: a timeout in seconds.
        let info = json!({"permit_join": true, "permit_join_timeout": 10});
        let out = b.message("bridge/info", info.to_string().as_bytes()).expect("1.x info");
        assert_eq!(remaining(&out), Some((Some(Value::Bool(true)), Some(Value::Number(10.0)))));
    }
}
