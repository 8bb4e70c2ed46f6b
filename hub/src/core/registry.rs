//! The registry: devices, areas and their latest state, as pure logic.
//!
//! Each change returns its [`Effects`] (events for the bus, writes for SQLite) instead of doing
//! I/O, so the rules are tested on their own: a repeated equal value fires nothing, names and
//! areas given by the user survive re-discovery, reports for unknown features are refused.

use std::collections::{BTreeMap, HashMap};

use hearth_sdk::{
    AdapterEvent, Area, Availability, AvailabilityState, CommandError, Context, Device, DeviceDescriptor, DeviceId,
    Event, FeatureState, Origin, Timestamp, Value, ValueType, check_value,
};

use crate::store::WriteOp;

/// What a change leads to: events to publish and writes to commit.
#[derive(Debug, Default)]
pub struct Effects {
    /// Events for the bus, in order.
    pub events: Vec<Event>,
    /// Writes for the store, in order.
    pub writes: Vec<WriteOp>,
    /// Reports refused, with why (logged and counted, never fatal).
    pub refused: Vec<String>,
}

/// Makes context ids: unique within a run, and across runs as long as the clock moves forward.
#[derive(Debug)]
pub struct ContextIds {
    prefix: String,
    next: u64,
}

impl ContextIds {
    /// Ids prefixed with the start time.
    pub fn new(start: Timestamp) -> ContextIds {
        ContextIds { prefix: format!("{:x}", start.as_millis()), next: 0 }
    }

    /// A fresh id.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("{}-{:x}", self.prefix, self.next)
    }

    /// A fresh context of this origin.
    pub fn context(&mut self, origin: Origin) -> Context {
        Context::new(self.next_id(), origin)
    }
}

/// Devices, areas and state.
#[derive(Debug, Default)]
pub struct Registry {
    devices: HashMap<DeviceId, Device>,
    areas: BTreeMap<String, Area>,
}

/// Errors of registry edits from the API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// No such device.
    #[error("no device `{0}`")]
    NoDevice(String),
    /// No such area.
    #[error("no area `{0}`; create it first with POST /api/v1/areas")]
    NoArea(String),
    /// A bad name.
    #[error("{0}")]
    BadName(String),
    /// The command does not fit the device.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A toggle of a feature whose value is not known yet.
    #[error("cannot toggle `{0}`: its current value is not known yet; set it instead")]
    ToggleUnknown(String),
}

/// Checks a user-given name: 1 to 100 characters, not blank, no control characters.
pub fn check_name(what: &str, name: &str) -> Result<String, RegistryError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(RegistryError::BadName(format!("{what} name must not be empty")));
    }
    if trimmed.chars().count() > 100 {
        return Err(RegistryError::BadName(format!("{what} name must be at most 100 characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(RegistryError::BadName(format!("{what} name must not contain control characters")));
    }
    Ok(trimmed.to_owned())
}

/// A slug for an area id: lowercase letters and digits joined by `_`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_owned();
    if out.is_empty() { "area".to_owned() } else { out }
}

impl Registry {
    /// A registry holding what the store loaded.
    pub fn new(devices: Vec<Device>, areas: BTreeMap<String, Area>) -> Registry {
        Registry { devices: devices.into_iter().map(|d| (d.id.clone(), d)).collect(), areas }
    }

    /// A device by id.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.get(id)
    }

    /// A device by its id as text.
    pub fn device_by_str(&self, id: &str) -> Option<&Device> {
        DeviceId::parse(id).and_then(|id| self.devices.get(&id))
    }

    /// All devices, by id.
    pub fn devices(&self) -> Vec<Device> {
        let mut v: Vec<Device> = self.devices.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether there are no devices.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// All areas, in display order.
    pub fn areas(&self) -> Vec<Area> {
        let mut v: Vec<Area> = self.areas.values().cloned().collect();
        v.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.name.cmp(&b.name)));
        v
    }

    /// Ids of the devices of an adapter.
    pub fn devices_of(&self, adapter: &str) -> Vec<DeviceId> {
        self.devices.values().filter(|d| d.adapter == adapter).map(|d| d.id.clone()).collect()
    }

    /// Applies what an adapter sent.
    pub fn apply(&mut self, adapter: &str, event: AdapterEvent, now: Timestamp, ids: &mut ContextIds) -> Effects {
        let mut fx = Effects::default();
        match event {
            AdapterEvent::Device { device } => self.discovered(adapter, device, &mut fx),
            AdapterEvent::DeviceRemoved { device } => {
                if device.adapter() == adapter && self.devices.remove(&device).is_some() {
                    fx.writes.push(WriteOp::DeleteDevice(device.clone()));
                    fx.events.push(Event::DeviceRemoved { device });
                }
            }
            AdapterEvent::State { device, values, cause } => {
                self.report(adapter, &device, values, cause, now, ids, &mut fx);
            }
            AdapterEvent::Event { device, feature, event, data } => {
                let Some(d) = self.owned(adapter, &device, &mut fx) else { return fx };
                if d.feature(&feature).is_none() {
                    fx.refused.push(format!("{device}: event `{event}` for unknown feature `{feature}`"));
                    return fx;
                }
                d.last_seen = Some(now);
                let context = ids.context(Origin::Device);
                fx.writes.push(WriteOp::Event {
                    device: device.clone(),
                    feature: feature.clone(),
                    event: event.clone(),
                    at: now,
                    context: context.clone(),
                });
                fx.events.push(Event::DeviceEvent { device, feature, event, data, at: now, context });
            }
            AdapterEvent::Availability { device, availability } => {
                let Some(d) = self.owned(adapter, &device, &mut fx) else { return fx };
                let mut availability = availability;
                if availability.since.is_none() {
                    availability.since = Some(now);
                }
                if availability.state == AvailabilityState::Online {
                    d.last_seen = Some(now);
                }
                if d.availability.state != availability.state || d.availability.reason != availability.reason {
                    d.availability = availability.clone();
                    fx.events.push(Event::AvailabilityChanged { device, availability });
                }
            }
            AdapterEvent::Status { .. } | AdapterEvent::InputRejected { .. } | AdapterEvent::Found { .. } => {}
        }
        fx
    }

    /// The device, if it exists and belongs to `adapter`; records a refusal otherwise.
    fn owned(&mut self, adapter: &str, id: &DeviceId, fx: &mut Effects) -> Option<&mut Device> {
        match self.devices.get_mut(id) {
            Some(d) if d.adapter == adapter => Some(d),
            Some(_) => {
                fx.refused.push(format!("adapter `{adapter}` reported for `{id}`, a device of another adapter"));
                None
            }
            None => {
                fx.refused.push(format!("adapter `{adapter}` reported for unknown device `{id}`"));
                None
            }
        }
    }

    fn discovered(&mut self, adapter: &str, descriptor: DeviceDescriptor, fx: &mut Effects) {
        if descriptor.id.adapter() != adapter {
            fx.refused.push(format!(
                "adapter `{adapter}` announced `{}`: device ids of this adapter must start with `{adapter}:`",
                descriptor.id
            ));
            return;
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = descriptor.features.iter().find(|f| !seen.insert(f.key.as_str())) {
            fx.refused.push(format!("{}: feature key `{}` appears twice", descriptor.id, dup.key));
            return;
        }
        let suggested_area = descriptor.suggested_area.clone();
        let id = descriptor.id.clone();
        match self.devices.get_mut(&id) {
            Some(existing) => {
                let before = existing.clone();
                existing.apply_descriptor(descriptor);
                if *existing != before {
                    fx.writes.push(WriteOp::UpsertDevice(Box::new(existing.clone())));
                    fx.events.push(Event::DeviceUpdated { device: existing.clone() });
                }
            }
            None => {
                let mut device = Device::from_descriptor(descriptor);
                if let Some(name) = suggested_area {
                    device.area = Some(self.area_for_name(&name, fx));
                }
                fx.writes.push(WriteOp::UpsertDevice(Box::new(device.clone())));
                fx.events.push(Event::DeviceAdded { device: device.clone() });
                self.devices.insert(id, device);
            }
        }
    }

    /// The id of the area with this name, created when there is none.
    fn area_for_name(&mut self, name: &str, fx: &mut Effects) -> String {
        if let Some(a) = self.areas.values().find(|a| a.name.eq_ignore_ascii_case(name.trim())) {
            return a.id.clone();
        }
        let area = self.new_area(name.trim(), self.areas.len() as i64);
        fx.writes.push(WriteOp::UpsertArea(area.clone()));
        fx.events.push(Event::AreaUpdated { area: area.clone() });
        area.id
    }

    fn new_area(&mut self, name: &str, order: i64) -> Area {
        let base = slug(name);
        let mut id = base.clone();
        let mut n = 2;
        while self.areas.contains_key(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        let area = Area { id: id.clone(), name: name.to_owned(), order };
        self.areas.insert(id, area.clone());
        area
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        adapter: &str,
        id: &DeviceId,
        values: BTreeMap<String, Value>,
        cause: Option<Context>,
        now: Timestamp,
        ids: &mut ContextIds,
        fx: &mut Effects,
    ) {
        let Some(device) = self.owned(adapter, id, fx) else { return };
        device.last_seen = Some(now);
        let mut context: Option<Context> = cause;
        for (key, value) in values {
            let Some(feature) = device.feature(&key) else {
                fx.refused.push(format!("{id}: report for unknown feature `{key}`"));
                continue;
            };
            // A device may report a value outside its declared range or an enum value newer
            // than its description; only a value of the wrong type is refused.
            match check_value(feature, &value) {
                Err(CommandError::WrongType { .. }) => {
                    fx.refused.push(format!(
                        "{id}: feature `{key}` is {}, the report was {} {value}",
                        feature.value_type.name(),
                        value.kind()
                    ));
                    continue;
                }
                _ if matches!(feature.value_type, ValueType::Number { .. })
                    && value.as_f64().is_some_and(|n| !n.is_finite()) =>
                {
                    continue;
                }
                _ => {}
            }
            match device.state.get_mut(&key) {
                Some(st) if st.value == value => st.reported_at = now,
                existing => {
                    let old = existing.map(|s| std::mem::replace(&mut s.value, value.clone()));
                    let ctx = context.get_or_insert_with(|| ids.context(Origin::Device)).clone();
                    device
                        .state
                        .insert(key.clone(), FeatureState { value: value.clone(), changed_at: now, reported_at: now });
                    fx.writes.push(WriteOp::State {
                        device: id.clone(),
                        feature: key.clone(),
                        value: value.clone(),
                        at: now,
                        context: ctx.clone(),
                    });
                    fx.events.push(Event::StateChanged {
                        device: id.clone(),
                        feature: key,
                        old,
                        new: value,
                        at: now,
                        context: ctx,
                    });
                }
            }
        }
    }

    /// Marks every device of an adapter offline with a reason and its code (the adapter failed
    /// or stopped).
    pub fn adapter_down(&mut self, adapter: &str, reason: &str, code: &str, now: Timestamp) -> Effects {
        let mut fx = Effects::default();
        for d in self.devices.values_mut().filter(|d| d.adapter == adapter) {
            if d.availability.state != AvailabilityState::Offline {
                d.availability = Availability::offline(reason, now).with_code(code);
                fx.events
                    .push(Event::AvailabilityChanged { device: d.id.clone(), availability: d.availability.clone() });
            }
        }
        fx
    }

    /// Renames a device and/or moves it to an area (`Some(None)` takes it out of any area).
    /// An empty name gives the device back the adapter's name at its next discovery.
    pub fn patch_device(
        &mut self,
        id: &DeviceId,
        name: Option<String>,
        area: Option<Option<String>>,
    ) -> Result<(Device, Effects), RegistryError> {
        if let Some(Some(area)) = &area
            && !self.areas.contains_key(area)
        {
            return Err(RegistryError::NoArea(area.clone()));
        }
        let name = name.map(|n| check_name("device", &n)).transpose()?;
        let device = self.devices.get_mut(id).ok_or_else(|| RegistryError::NoDevice(id.to_string()))?;
        if let Some(name) = name {
            device.name = name;
            device.name_by_user = true;
        }
        if let Some(area) = area {
            device.area = area;
        }
        let mut fx = Effects::default();
        fx.writes.push(WriteOp::UpsertDevice(Box::new(device.clone())));
        fx.events.push(Event::DeviceUpdated { device: device.clone() });
        Ok((device.clone(), fx))
    }

    /// Removes a device from the registry (it comes back if its adapter finds it again).
    pub fn remove_device(&mut self, id: &DeviceId) -> Result<Effects, RegistryError> {
        self.devices.remove(id).ok_or_else(|| RegistryError::NoDevice(id.to_string()))?;
        let mut fx = Effects::default();
        fx.writes.push(WriteOp::DeleteDevice(id.clone()));
        fx.events.push(Event::DeviceRemoved { device: id.clone() });
        Ok(fx)
    }

    /// Creates an area.
    pub fn create_area(&mut self, name: &str, order: Option<i64>) -> Result<(Area, Effects), RegistryError> {
        let name = check_name("area", name)?;
        if self.areas.values().any(|a| a.name.eq_ignore_ascii_case(&name)) {
            return Err(RegistryError::BadName(format!("an area named `{name}` exists already")));
        }
        let order = order.unwrap_or(self.areas.values().map(|a| a.order + 1).max().unwrap_or(0));
        let area = self.new_area(&name, order);
        let mut fx = Effects::default();
        fx.writes.push(WriteOp::UpsertArea(area.clone()));
        fx.events.push(Event::AreaUpdated { area: area.clone() });
        Ok((area, fx))
    }

    /// Renames or reorders an area (its id stays).
    pub fn patch_area(
        &mut self,
        id: &str,
        name: Option<String>,
        order: Option<i64>,
    ) -> Result<(Area, Effects), RegistryError> {
        let name = name.map(|n| check_name("area", &n)).transpose()?;
        if let Some(n) = &name
            && self.areas.values().any(|a| a.id != id && a.name.eq_ignore_ascii_case(n))
        {
            return Err(RegistryError::BadName(format!("an area named `{n}` exists already")));
        }
        let area = self.areas.get_mut(id).ok_or_else(|| RegistryError::NoArea(id.to_owned()))?;
        if let Some(n) = name {
            area.name = n;
        }
        if let Some(o) = order {
            area.order = o;
        }
        let mut fx = Effects::default();
        fx.writes.push(WriteOp::UpsertArea(area.clone()));
        fx.events.push(Event::AreaUpdated { area: area.clone() });
        Ok((area.clone(), fx))
    }

    /// Removes an area; its devices are left in no area.
    pub fn remove_area(&mut self, id: &str) -> Result<Effects, RegistryError> {
        self.areas.remove(id).ok_or_else(|| RegistryError::NoArea(id.to_owned()))?;
        let mut fx = Effects::default();
        fx.writes.push(WriteOp::DeleteArea(id.to_owned()));
        for d in self.devices.values_mut().filter(|d| d.area.as_deref() == Some(id)) {
            d.area = None;
            fx.events.push(Event::DeviceUpdated { device: d.clone() });
        }
        fx.events.push(Event::AreaRemoved { area: id.to_owned() });
        Ok(fx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{Access, Capability, Feature};

    fn lamp(name: &str) -> DeviceDescriptor {
        let features = vec![
            Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
            Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::READ_WRITE),
            Feature::new("action", Capability::Action, ValueType::enumeration(["single"]), Access::EVENT),
        ];
        DeviceDescriptor {
            suggested_area: Some("Living room".into()),
            model: Some("Lamp".into()),
            ..DeviceDescriptor::new(DeviceId::new("demo", "lamp"), name, features)
        }
    }

    fn kinds(fx: &Effects) -> Vec<String> {
        fx.events
            .iter()
            .map(|e| {
                serde_json::to_value(e).ok().and_then(|v| v["type"].as_str().map(str::to_owned)).unwrap_or_default()
            })
            .collect()
    }

    fn state(values: &[(&str, Value)]) -> AdapterEvent {
        AdapterEvent::State {
            device: DeviceId::new("demo", "lamp"),
            values: values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
            cause: None,
        }
    }

    #[test]
    fn discovery_creates_the_device_and_its_suggested_area() {
        let mut r = Registry::default();
        let mut ids = ContextIds::new(Timestamp(0));
        let fx = r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(1), &mut ids);
        assert_eq!(kinds(&fx), ["area_updated", "device_added"]);
        assert_eq!(
            r.device(&DeviceId::new("demo", "lamp")).and_then(|d| d.area.clone()).as_deref(),
            Some("living_room")
        );
        // The same description again changes nothing.
        let fx = r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(2), &mut ids);
        assert!(fx.events.is_empty() && fx.writes.is_empty());
    }

    #[test]
    fn a_repeated_equal_value_fires_nothing_and_only_bumps_reported_at() {
        let mut r = Registry::default();
        let mut ids = ContextIds::new(Timestamp(0));
        r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(1), &mut ids);
        let fx = r.apply("demo", state(&[("state", true.into())]), Timestamp(10), &mut ids);
        assert_eq!(kinds(&fx), ["state_changed"]);
        assert_eq!(fx.writes.len(), 1);
        let fx = r.apply("demo", state(&[("state", true.into())]), Timestamp(20), &mut ids);
        assert!(fx.events.is_empty() && fx.writes.is_empty());
        let st = &r.device(&DeviceId::new("demo", "lamp")).expect("lamp").state["state"];
        assert_eq!((st.changed_at, st.reported_at), (Timestamp(10), Timestamp(20)));
        let fx =
            r.apply("demo", state(&[("state", false.into()), ("brightness", 40.0.into())]), Timestamp(30), &mut ids);
        assert_eq!(kinds(&fx), ["state_changed", "state_changed"]);
        match &fx.events[1] {
            Event::StateChanged { feature, old, new, .. } => {
                assert_eq!((feature.as_str(), old, new), ("state", &Some(Value::Bool(true)), &Value::Bool(false)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reports_of_the_wrong_type_or_unknown_features_are_refused() {
        let mut r = Registry::default();
        let mut ids = ContextIds::new(Timestamp(0));
        r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(1), &mut ids);
        let fx = r.apply("demo", state(&[("state", "ON".into()), ("nope", 1.0.into())]), Timestamp(2), &mut ids);
        assert!(fx.events.is_empty());
        assert_eq!(
            fx.refused,
            [
                "demo:lamp: report for unknown feature `nope`",
                "demo:lamp: feature `state` is bool, the report was text \"ON\""
            ]
        );
        let fx = r.apply("other", state(&[("state", true.into())]), Timestamp(2), &mut ids);
        assert_eq!(fx.refused, ["adapter `other` reported for `demo:lamp`, a device of another adapter"]);
    }

    #[test]
    fn user_names_and_areas_survive_rediscovery() {
        let mut r = Registry::default();
        let mut ids = ContextIds::new(Timestamp(0));
        r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(1), &mut ids);
        let (kitchen, _) = r.create_area("Kitchen", None).expect("area");
        let id = DeviceId::new("demo", "lamp");
        r.patch_device(&id, Some("Reading lamp".into()), Some(Some(kitchen.id.clone()))).expect("patch");
        let fx = r.apply("demo", AdapterEvent::Device { device: lamp("Lamp v2") }, Timestamp(3), &mut ids);
        assert!(fx.events.is_empty(), "{:?}", kinds(&fx));
        let d = r.device(&id).expect("lamp");
        assert_eq!((d.name.as_str(), d.area.as_deref()), ("Reading lamp", Some("kitchen")));
        let err = r.patch_device(&id, None, Some(Some("attic".into()))).expect_err("no attic");
        assert_eq!(err.to_string(), "no area `attic`; create it first with POST /api/v1/areas");
        r.remove_area("kitchen").expect("remove");
        assert_eq!(r.device(&id).and_then(|d| d.area.clone()), None);
    }

    #[test]
    fn events_go_to_history_never_to_state() {
        let mut r = Registry::default();
        let mut ids = ContextIds::new(Timestamp(0));
        r.apply("demo", AdapterEvent::Device { device: lamp("Lamp") }, Timestamp(1), &mut ids);
        let ev = AdapterEvent::Event {
            device: DeviceId::new("demo", "lamp"),
            feature: "action".into(),
            event: "single".into(),
            data: None,
        };
        let fx = r.apply("demo", ev, Timestamp(2), &mut ids);
        assert_eq!(kinds(&fx), ["device_event"]);
        assert!(matches!(fx.writes[..], [WriteOp::Event { .. }]));
        assert!(r.device(&DeviceId::new("demo", "lamp")).is_some_and(|d| d.state.is_empty()));
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Living room"), "living_room");
        assert_eq!(slug("  Kid's Room #2 "), "kid_s_room_2");
        assert_eq!(slug("Küche"), "küche");
        assert_eq!(slug("!!!"), "area");
    }
}
