//! The Alink profile in the link: the hub as a gateway of Alibaba Cloud IoT (`ALINK.md`).
//!
//! At each connection it adds its sub-devices to the gateway's topology (`thing.topo.add`) and
//! logs them in (`combine/batch_login`); then each shared state change goes up as a property
//! post of the sub-device, with the feature mapped to its TSL identifier, each device event as
//! an event post, and each property set from the cloud comes back as a command. Every reply is
//! checked; an error shows in the link's status.
//!
//! A Hearth device goes to the cloud only when `[cloud.alink.devices]` gives its sub-device
//! triple (the device must be defined in the cloud console, with its thing model).

use std::collections::{BTreeMap, HashMap};

use hearth_sdk::{DeviceId, Event, Feature, Timestamp};

use super::alink::{self, Credentials, IncomingKind, MessageIds};
use super::generic::Message;
use super::outbox::{Kind, Row};
use crate::config::AlinkConfig;

/// The gateway's state over a link's life.
#[derive(Debug)]
pub struct Gateway {
    /// The gateway's triple.
    pub gateway: Credentials,
    subs: HashMap<String, Credentials>,
    by_ref: HashMap<(String, String), String>,
    features: HashMap<String, Vec<Feature>>,
    ids: MessageIds,
    warned: std::collections::HashSet<String>,
}

/// What a message from the cloud asks.
#[derive(Debug, PartialEq)]
pub enum Asked {
    /// Set these features of a device; answer on `reply_topic` with the message `id`.
    Set {
        /// The Hearth device.
        device: String,
        /// Feature key to value.
        set: BTreeMap<String, hearth_sdk::Value>,
        /// The message id to answer.
        id: String,
        /// Where the answer goes.
        reply_topic: String,
    },
    /// A property set that could not be read or mapped; answer it with this code.
    Refuse {
        /// The message id (empty when unreadable).
        id: String,
        /// Where the answer goes.
        reply_topic: String,
        /// Why, for the log and the status.
        why: String,
    },
    /// A reply that says something failed.
    Failed(String),
    /// Nothing to do.
    Nothing,
}

impl Gateway {
    /// From `[cloud.alink]`.
    pub fn new(c: &AlinkConfig) -> Gateway {
        let mut subs = HashMap::new();
        let mut by_ref = HashMap::new();
        for (id, d) in &c.devices {
            subs.insert(id.clone(), Credentials::new(&d.product_key, &d.device_name, &d.device_secret));
            by_ref.insert((d.product_key.clone(), d.device_name.clone()), id.clone());
        }
        let start = u32::try_from(Timestamp::now().as_millis() % 1_000_000_000).unwrap_or(1);
        Gateway {
            gateway: Credentials::new(&c.product_key, &c.device_name, &c.device_secret),
            subs,
            by_ref,
            features: HashMap::new(),
            ids: MessageIds::starting_at(start),
            warned: Default::default(),
        }
    }

    /// The connection's client id, user name and password (signed now).
    pub fn connect(&self, client_id: &str) -> alink::ConnectParams {
        alink::connect_params(&self.gateway, client_id, Timestamp::now().as_millis() as u64)
    }

    /// What the gateway subscribes to.
    pub fn subscriptions(&self) -> Vec<String> {
        let (pk, dn) = (&self.gateway.product_key, &self.gateway.device_name);
        vec![
            alink::topo_add_reply_topic(pk, dn),
            alink::batch_login_reply_topic(pk, dn),
            "/sys/+/+/thing/service/property/set".into(),
            "/sys/+/+/thing/event/property/post_reply".into(),
            "/sys/+/+/thing/event/+/post_reply".into(),
        ]
    }

    /// The topology add and the login of every sub-device, after each connection.
    pub fn hello(&self) -> Vec<Message> {
        if self.subs.is_empty() {
            return Vec::new();
        }
        let now = Timestamp::now().as_millis() as u64;
        let subs: Vec<(&Credentials, u64)> = self.subs.values().map(|c| (c, now)).collect();
        let (pk, dn) = (&self.gateway.product_key, &self.gateway.device_name);
        vec![
            Message {
                topic: alink::topo_add_topic(pk, dn),
                payload: alink::topo_add(&self.ids.next_id(), &subs).into_bytes(),
                retain: false,
            },
            Message {
                topic: alink::batch_login_topic(pk, dn),
                payload: alink::batch_login(&self.ids.next_id(), &subs, false).into_bytes(),
                retain: false,
            },
        ]
    }

    /// Learns a device's features (from a snapshot or a description row).
    pub fn learn(&mut self, id: &str, features: Vec<Feature>) {
        self.features.insert(id.to_owned(), features);
    }

    fn warn_once(&mut self, key: String, message: String) {
        if self.warned.insert(key) {
            tracing::warn!("{message}");
        }
    }

    /// The messages of one outbox row.
    pub fn messages(&mut self, row: &Row) -> Vec<Message> {
        let Ok(event) = serde_json::from_str::<Event>(&row.payload) else { return Vec::new() };
        match (row.kind, event) {
            (Kind::Device, Event::DeviceUpdated { device } | Event::DeviceAdded { device }) => {
                self.learn(device.id.as_str(), device.features);
                Vec::new()
            }
            (Kind::State, Event::StateChanged { device, feature, new, at, .. }) => {
                let Some((sub, f)) = self.target(&device, &feature) else { return Vec::new() };
                let map = alink::tsl_identifiers(self.features.get(device.as_str()).map_or(&[][..], |v| v));
                let Some(tsl) = map.get(&feature) else { return Vec::new() };
                let Some(value) = alink::to_tsl(&f, &new) else { return Vec::new() };
                let params = BTreeMap::from([(tsl.identifier.clone(), (value, at.as_millis() as u64))]);
                vec![Message {
                    topic: alink::property_post_topic(&sub.product_key, &sub.device_name),
                    payload: alink::property_post(&self.ids.next_id(), &params).into_bytes(),
                    retain: false,
                }]
            }
            (Kind::Event, Event::DeviceEvent { device, feature, event, data, at, .. }) => {
                let Some((sub, _)) = self.target(&device, &feature) else { return Vec::new() };
                let identifier = alink::derived_identifier(&feature);
                let mut params = BTreeMap::from([("event".to_owned(), serde_json::json!(event))]);
                if let Some(d) = data {
                    params.insert("data".into(), serde_json::to_value(d).unwrap_or_default());
                }
                vec![Message {
                    topic: alink::event_post_topic(&sub.product_key, &sub.device_name, &identifier),
                    payload: alink::event_post(&self.ids.next_id(), &identifier, &params, at.as_millis() as u64)
                        .into_bytes(),
                    retain: false,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// The properties of every device it knows, after the backlog: the cloud's picture is
    /// complete after each connection.
    pub fn snapshot(&mut self, devices: &[hearth_sdk::Device]) -> Vec<Message> {
        let mut out = Vec::new();
        for d in devices {
            self.learn(d.id.as_str(), d.features.clone());
            let Some(sub) = self.subs.get(d.id.as_str()).cloned() else { continue };
            let map = alink::tsl_identifiers(&d.features);
            let mut params = BTreeMap::new();
            for f in &d.features {
                let (Some(tsl), Some(st)) = (map.get(&f.key), d.state.get(&f.key)) else { continue };
                if let Some(v) = alink::to_tsl(f, &st.value) {
                    params.insert(tsl.identifier.clone(), (v, st.changed_at.as_millis() as u64));
                }
            }
            if !params.is_empty() {
                out.push(Message {
                    topic: alink::property_post_topic(&sub.product_key, &sub.device_name),
                    payload: alink::property_post(&self.ids.next_id(), &params).into_bytes(),
                    retain: false,
                });
            }
        }
        out
    }

    fn target(&mut self, device: &DeviceId, feature: &str) -> Option<(Credentials, Feature)> {
        let Some(sub) = self.subs.get(device.as_str()).cloned() else {
            self.warn_once(
                device.to_string(),
                format!(
                    "`{device}` is shared but has no sub-device in [cloud.alink.devices]; it is not sent to Alink."
                ),
            );
            return None;
        };
        let f = self.features.get(device.as_str())?.iter().find(|f| f.key == feature)?.clone();
        Some((sub, f))
    }

    /// What a message from the cloud asks.
    pub fn incoming(&self, topic: &str, payload: &[u8]) -> Asked {
        let Some(incoming) = alink::classify(topic, &self.gateway) else { return Asked::Nothing };
        let (pk, dn) = (incoming.device.product_key.clone(), incoming.device.device_name.clone());
        match incoming.kind {
            IncomingKind::PropertySet => {
                let reply_topic = alink::property_set_reply_topic(&pk, &dn);
                let (id, params) = match alink::parse_property_set(payload) {
                    Ok(p) => p,
                    Err(why) => return Asked::Refuse { id: String::new(), reply_topic, why },
                };
                let Some(device) = self.by_ref.get(&(pk.clone(), dn.clone())).cloned() else {
                    let why = format!("a property set for {pk}/{dn}, which is no sub-device of this hub");
                    return Asked::Refuse { id, reply_topic, why };
                };
                let features = self.features.get(&device).cloned().unwrap_or_default();
                let map = alink::tsl_identifiers(&features);
                let mut set = BTreeMap::new();
                for (identifier, json) in params {
                    let Some((key, _)) = map.iter().find(|(_, t)| t.identifier == identifier) else {
                        let why = format!("`{identifier}` is not a property of {device}");
                        return Asked::Refuse { id, reply_topic, why };
                    };
                    let Some(f) = features.iter().find(|f| &f.key == key) else { continue };
                    match alink::from_tsl(f, &json) {
                        Ok(v) => {
                            set.insert(key.clone(), v);
                        }
                        Err(e) => {
                            return Asked::Refuse { id, reply_topic, why: format!("`{identifier}`: {e}") };
                        }
                    }
                }
                Asked::Set { device, set, id, reply_topic }
            }
            _ => match alink::parse_reply(payload) {
                Ok(r) => match r.error() {
                    Some(e) => Asked::Failed(format!("Alink refused a message ({topic}): {e}")),
                    None => Asked::Nothing,
                },
                Err(e) => Asked::Failed(format!("Alink sent a reply that cannot be read ({topic}): {e}")),
            },
        }
    }
}
