//! What the cloud gets: `[cloud.share]` as a filter, and the hub's events as outbox rows.
//!
//! The core calls [`Share::rows`] with each batch of events it publishes and stores the rows in
//! the same database write as the change that caused them (`WriteOp::Shared`).

use std::collections::BTreeSet;

use hearth_sdk::{Capability, Device, Event};

use super::outbox::{Kind, Row};
use crate::config::ShareConfig;

/// The sharing rule.
#[derive(Debug, Clone, Default)]
pub struct Share {
    areas: BTreeSet<String>,
    devices: BTreeSet<String>,
    capabilities: BTreeSet<Capability>,
}

impl Share {
    /// The rule of `[cloud.share]`.
    pub fn new(c: &ShareConfig) -> Share {
        Share {
            areas: c.areas.iter().cloned().collect(),
            devices: c.devices.iter().cloned().collect(),
            capabilities: c
                .capabilities
                .iter()
                .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.clone())).ok())
                .collect(),
        }
    }

    /// Whether the device is shared.
    pub fn device(&self, d: &Device) -> bool {
        (self.areas.is_empty() && self.devices.is_empty())
            || self.devices.contains(d.id.as_str())
            || d.area.as_ref().is_some_and(|a| self.areas.contains(a))
    }

    /// Whether a feature of a shared device is shared.
    pub fn feature(&self, d: &Device, key: &str) -> bool {
        self.capabilities.is_empty() || d.feature(key).is_some_and(|f| self.capabilities.contains(&f.capability))
    }

    /// The device as the cloud sees it: only its shared features and their state.
    pub fn view(&self, d: &Device) -> Device {
        let mut d = d.clone();
        if !self.capabilities.is_empty() {
            d.features.retain(|f| self.capabilities.contains(&f.capability));
            let keys: BTreeSet<String> = d.features.iter().map(|f| f.key.clone()).collect();
            d.state.retain(|k, _| keys.contains(k));
        }
        d
    }

    /// The outbox rows of one event; `device` finds a device by id (the registry after the
    /// change). A device that stops being shared (moved to another area) is removed for the cloud.
    pub fn rows<'a>(&self, e: &Event, device: impl Fn(&str) -> Option<&'a Device>) -> Option<Row> {
        let json = |v: &Event| serde_json::to_string(v).unwrap_or_default();
        let at = hearth_sdk::Timestamp::now().as_millis();
        match e {
            Event::DeviceAdded { device: d } | Event::DeviceUpdated { device: d } => {
                if self.device(d) {
                    let view = Event::DeviceUpdated { device: self.view(d) };
                    Some(Row { kind: Kind::Device, device: d.id.to_string(), feature: None, payload: json(&view), at })
                } else if !self.areas.is_empty() || !self.devices.is_empty() {
                    let gone = Event::DeviceRemoved { device: d.id.clone() };
                    Some(Row {
                        kind: Kind::DeviceRemoved,
                        device: d.id.to_string(),
                        feature: None,
                        payload: json(&gone),
                        at,
                    })
                } else {
                    None
                }
            }
            Event::DeviceRemoved { device: id } => {
                Some(Row { kind: Kind::DeviceRemoved, device: id.to_string(), feature: None, payload: json(e), at })
            }
            Event::StateChanged { device: id, feature, at, .. } => {
                let d = device(id.as_str())?;
                (self.device(d) && self.feature(d, feature)).then(|| Row {
                    kind: Kind::State,
                    device: id.to_string(),
                    feature: Some(feature.clone()),
                    payload: json(e),
                    at: at.as_millis(),
                })
            }
            Event::DeviceEvent { device: id, feature, at, .. } => {
                let d = device(id.as_str())?;
                (self.device(d) && self.feature(d, feature)).then(|| Row {
                    kind: Kind::Event,
                    device: id.to_string(),
                    feature: Some(feature.clone()),
                    payload: json(e),
                    at: at.as_millis(),
                })
            }
            Event::AvailabilityChanged { device: id, .. } => {
                let d = device(id.as_str())?;
                self.device(d).then(|| Row {
                    kind: Kind::Availability,
                    device: id.to_string(),
                    feature: None,
                    payload: json(e),
                    at,
                })
            }
            _ => None,
        }
    }
}
