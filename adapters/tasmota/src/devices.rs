//! The adapter's picture of the Tasmota devices on the broker, as pure logic from MQTT messages
//! to model events and messages to publish, so it is tested without a broker.
//!
//! - Discovery (`<prefix>/<MAC>/config`, `.../sensors`) describes each device; an empty config
//!   removes it.
//! - Each device's topics come from its full topic (`ft`), prefixes (`tp`) and topic (`t`):
//!   `tele/<t>/STATE`, `SENSOR` and `LWT`; `stat/<t>/RESULT`, `POWER<n>`, `STATUS10`,
//!   `STATUS11`. The MQTT filters cover many devices at once (`tele/+/+`).
//! - When a device says it is online (its last will topic), the adapter asks it for its state
//!   (`cmnd/<t>/STATE`) and sensors (`cmnd/<t>/STATUS 10`).
//! - A command remembers which `RESULT` keys answer it (`POWER2`, `Dimmer`), and the report that
//!   carries them gets the command's context as its cause.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use hearth_sdk::{AdapterEvent, Availability, Command, Context, DeviceId, Refresh, Timestamp, Value};
use serde_json::{Map, Value as Json};

use crate::api::{DiscoveryConfig, DiscoveryTopic, Prefix, SensorsDiscovery, discovery_topic};
use crate::map::{Decoded, Mapping};

/// How long a command waits for the `RESULT` that answers it, for its context.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(10);

/// The key that marks the answer to `STATE` (it is in every `STATE` payload).
/// Commands kept while the broker is lost, all devices together (as many as zigbee2mqtt's
/// adapter keeps); beyond, the oldest of the device commanded are dropped.
pub const HELD_MAX: usize = 10_000;

const STATE_KEY: &str = "Uptime";

/// What the adapter should do after a message or a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Send this to the hub.
    Event(AdapterEvent),
    /// Input that could not be used: log it once per source, and count it.
    Rejected {
        /// The topic.
        source: String,
        /// Why.
        reason: String,
    },
    /// Parts of a device the adapter leaves out (shutters): log it once.
    Unsupported {
        /// The device.
        device: DeviceId,
        /// What is left out.
        what: String,
    },
    /// Publish this (not retained).
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: String,
    },
}

/// A command waiting for its answers: Tasmota answers each command of a `Backlog` with a
/// `RESULT` of its own (a light's holds the whole light state, so keys alone cannot tell which
/// command it answers).
#[derive(Debug, Clone)]
struct Cause {
    /// Keys an answer holds (`POWER2`, `Dimmer`, `StatusSNS`).
    keys: Vec<String>,
    /// Answers still to come.
    answers: usize,
    context: Context,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Dev {
    config: DiscoveryConfig,
    mapping: Mapping,
    cmnd: String,
    causes: Vec<Cause>,
    /// What its last will said last (`Some(true)`: online), so the same word again (the retained
    /// will sent once more) asks nothing again.
    online: Option<bool>,
    /// Commands that came while the broker was lost, in order: they go out once the device says
    /// it is online again (sent before it has subscribed again, the broker would drop them).
    held: Option<VecDeque<(u64, Out)>>,
}

impl Dev {
    fn id(&self) -> &DeviceId {
        &self.mapping.descriptor.id
    }

    /// The context of the oldest pending command that a message holding keys `has_key`
    /// answers. An answer (`RESULT`, `STATUS10`) uses one up; an echo (`stat/.../POWER1`, sent
    /// beside the `RESULT`) does not.
    ///
    /// The answer to `STATE` (it holds `Uptime`, and every `POWER<n>` too) answers only a
    /// refresh, never a command that set a relay: the adapter's own `STATE` poll may be
    /// answered while a command waits.
    fn take_cause(&mut self, has_key: impl Fn(&str) -> bool, answer: bool) -> Option<Context> {
        self.causes.retain(|c| c.at.elapsed() < CAUSE_WINDOW);
        let state_answer = has_key(STATE_KEY);
        let i = self.causes.iter().position(|c| {
            if state_answer {
                c.keys.iter().any(|k| k == STATE_KEY)
            } else {
                c.keys.iter().any(|k| k != STATE_KEY && has_key(k))
            }
        })?;
        let cause = &mut self.causes[i];
        let context = cause.context.clone();
        if answer {
            cause.answers = cause.answers.saturating_sub(1);
            if cause.answers == 0 {
                self.causes.remove(i);
            }
        }
        Some(context)
    }
}

/// Every Tasmota device the discovery topic announced.
#[derive(Debug)]
pub struct Devices {
    prefix: String,
    devices: BTreeMap<String, Dev>,
    /// The latest sensors object (`sn`) by MAC, kept also for devices not configured yet.
    sensors: BTreeMap<String, Map<String, Json>>,
    /// A device's topic base (`stat/huzzah_1/`) to its MAC and the prefix it stands for.
    routes: HashMap<String, (String, Prefix)>,
    /// Numbers commands held while the broker is lost, so the oldest of all can be dropped.
    held_seq: u64,
}

impl Devices {
    /// No devices yet; discovery on `<prefix>/<MAC>/config`.
    pub fn new(prefix: &str) -> Devices {
        Devices {
            prefix: prefix.trim_end_matches('/').to_owned(),
            devices: BTreeMap::new(),
            sensors: BTreeMap::new(),
            routes: HashMap::new(),
            held_seq: 0,
        }
    }

    /// The MQTT filters to be subscribed to: discovery, every device's stat and tele topics, and
    /// each device's own last will topic. The retained last will of a device can arrive (through
    /// the shared `tele/+/+`) before its discovery config, when it is not known yet and cannot
    /// be read; subscribing to its exact topic once the device is known has the broker send it
    /// again.
    pub fn filters(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::from([format!("{}/#", self.prefix)]);
        for d in self.devices.values() {
            out.insert(d.config.filter(Prefix::Stat));
            out.insert(d.config.filter(Prefix::Tele));
            out.insert(format!("{}LWT", d.config.base(Prefix::Tele)));
        }
        out
    }

    /// The ids of the known devices.
    pub fn ids(&self) -> Vec<DeviceId> {
        self.devices.values().map(|d| d.id().clone()).collect()
    }

    /// Handles one message from the broker.
    pub fn message(&mut self, topic: &str, payload: &[u8]) -> Vec<Out> {
        if let Some(rest) = topic.strip_prefix(&self.prefix).and_then(|r| r.strip_prefix('/')) {
            return match discovery_topic(rest) {
                Some(DiscoveryTopic::Config(mac)) => self.config(topic, &mac, payload),
                Some(DiscoveryTopic::Sensors(mac)) => self.sensors(topic, &mac, payload),
                None => vec![rejected(topic, "not a Tasmota discovery topic (<MAC>/config or <MAC>/sensors)")],
            };
        }
        let Some((base, suffix)) = topic.rsplit_once('/').map(|(b, s)| (&topic[..=b.len()], s)) else {
            return Vec::new();
        };
        let Some((mac, prefix)) = self.routes.get(base).cloned() else { return Vec::new() };
        let mut out = self.learn_sensors(&mac, prefix, suffix, payload);
        let Some(dev) = self.devices.get_mut(&mac) else { return out };
        out.extend(match prefix {
            Prefix::Tele => tele(dev, topic, suffix, payload),
            Prefix::Stat => stat(dev, topic, suffix, payload),
            Prefix::Cmnd => Vec::new(),
        });
        out
    }

    /// Before a `SENSOR` (or `STATUS10`) payload with values the sensors discovery did not list
    /// (sensors without a reading at boot), the device is described again with them.
    fn learn_sensors(&mut self, mac: &str, prefix: Prefix, suffix: &str, payload: &[u8]) -> Vec<Out> {
        let Some(dev) = self.devices.get(mac) else { return Vec::new() };
        let sn = match (prefix, suffix) {
            (Prefix::Tele, "SENSOR") => serde_json::from_slice::<Map<String, Json>>(payload).ok(),
            (Prefix::Stat, "STATUS10" | "STATUS8") => {
                serde_json::from_slice::<Json>(payload).ok().and_then(|j| j.get("StatusSNS")?.as_object().cloned())
            }
            _ => None,
        };
        let Some(sn) = sn else { return Vec::new() };
        if !dev.mapping.misses_sensors(&sn) {
            return Vec::new();
        }
        let merged = self.sensors.entry(mac.to_owned()).or_default();
        for (k, v) in sn {
            merged.insert(k, v);
        }
        self.describe(mac)
    }

    fn config(&mut self, topic: &str, mac: &str, payload: &[u8]) -> Vec<Out> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            let Some(dev) = self.devices.remove(mac) else { return Vec::new() };
            self.routes.retain(|_, (m, _)| m != mac);
            return vec![Out::Event(AdapterEvent::DeviceRemoved { device: dev.id().clone() })];
        }
        let config = match DiscoveryConfig::parse(payload) {
            Ok(c) => c,
            Err(reason) => return vec![rejected(topic, &reason)],
        };
        if !config.mac.eq_ignore_ascii_case(mac) {
            return vec![rejected(topic, &format!("the config is for MAC {}, not {mac}", config.mac))];
        }
        let mut out = Vec::new();
        for prefix in [Prefix::Stat, Prefix::Tele] {
            let base = config.base(prefix);
            if let Some((other, _)) = self.routes.get(&base).filter(|(m, _)| m != mac) {
                out.push(rejected(
                    topic,
                    &format!("devices {other} and {mac} share the topic `{base}`: give each its own MQTT topic"),
                ));
                return out;
            }
        }
        let mapping = Mapping::new(&config, self.sensors.get(mac));
        self.routes.retain(|_, (m, _)| m != mac);
        self.routes.insert(config.base(Prefix::Stat), (mac.to_owned(), Prefix::Stat));
        self.routes.insert(config.base(Prefix::Tele), (mac.to_owned(), Prefix::Tele));
        let (causes, online, held) = self.devices.remove(mac).map(|d| (d.causes, d.online, d.held)).unwrap_or_default();
        let dev = Dev { cmnd: config.base(Prefix::Cmnd), config, mapping, causes, online, held };
        out.push(Out::Event(AdapterEvent::Device { device: dev.mapping.descriptor.clone() }));
        for what in &dev.mapping.unsupported {
            out.push(Out::Unsupported { device: dev.id().clone(), what: what.clone() });
        }
        self.devices.insert(mac.to_owned(), dev);
        out
    }

    fn sensors(&mut self, topic: &str, mac: &str, payload: &[u8]) -> Vec<Out> {
        if payload.iter().all(u8::is_ascii_whitespace) {
            if self.sensors.remove(mac).is_none() {
                return Vec::new();
            }
        } else {
            match SensorsDiscovery::parse(payload) {
                Ok(s) => {
                    self.sensors.insert(mac.to_owned(), s.sn);
                }
                Err(reason) => return vec![rejected(topic, &reason)],
            }
        }
        self.describe(mac)
    }

    /// Rebuilds a configured device's mapping (its sensors changed) and announces it.
    fn describe(&mut self, mac: &str) -> Vec<Out> {
        let sensors = self.sensors.get(mac);
        let Some(dev) = self.devices.get_mut(mac) else { return Vec::new() };
        dev.mapping = Mapping::new(&dev.config, sensors);
        vec![Out::Event(AdapterEvent::Device { device: dev.mapping.descriptor.clone() })]
    }

    /// The mapping of a device, for decoding tests.
    pub fn mapping(&self, device: &DeviceId) -> Option<&Mapping> {
        self.devices.values().find(|d| d.id() == device).map(|d| &d.mapping)
    }

    /// Every device offline, because of `reason` (the broker is gone). Commands from now on wait
    /// for each device to say it is online again ([`HELD_MAX`] at most in all), and a device
    /// that does is asked for its state afresh.
    pub fn all_offline(&mut self, reason: &str) -> Vec<Out> {
        self.devices
            .values_mut()
            .map(|d| {
                d.online = None;
                d.held.get_or_insert_default();
                Out::Event(AdapterEvent::Availability {
                    device: d.id().clone(),
                    availability: Availability::offline(reason, Timestamp::now()).with_code("broker_unreachable"),
                })
            })
            .collect()
    }

    /// The messages that carry out a command, as Tasmota takes them: one command on
    /// `cmnd/<t>/<Command>`, several at once as `Backlog`; a refresh asks for `STATE` and, for
    /// sensors, `STATUS 10`.
    pub fn command(&mut self, cmd: &Command) -> Result<Vec<Out>, String> {
        let held_elsewhere: usize = self
            .devices
            .values()
            .filter(|d| d.id() != &cmd.device)
            .map(|d| d.held.as_ref().map_or(0, VecDeque::len))
            .sum();
        let dev = self
            .devices
            .values_mut()
            .find(|d| d.id() == &cmd.device)
            .ok_or_else(|| format!("no Tasmota device {}", cmd.device))?;
        let mut out = Vec::new();
        let mut expect = Vec::new();
        let mut answers = 0;
        if !cmd.request.set.is_empty() {
            let encoded = dev.mapping.encode(&cmd.request.set)?;
            answers += encoded.commands.len();
            match encoded.commands.as_slice() {
                [] => {}
                [(command, arg)] => {
                    out.push(Out::Publish { topic: format!("{}{command}", dev.cmnd), payload: arg.clone() })
                }
                many => {
                    let backlog: Vec<String> = many.iter().map(|(c, a)| format!("{c} {a}")).collect();
                    out.push(Out::Publish { topic: format!("{}Backlog", dev.cmnd), payload: backlog.join("; ") });
                }
            }
            expect.extend(encoded.expect);
        }
        let refresh: Vec<String> = match &cmd.request.refresh {
            None | Some(Refresh::All(false)) => Vec::new(),
            Some(Refresh::All(true)) => {
                dev.mapping.descriptor.features.iter().filter(|f| f.access.get).map(|f| f.key.clone()).collect()
            }
            Some(Refresh::Features(keys)) => keys.clone(),
        };
        if refresh.iter().any(|k| dev.mapping.is_state_feature(k)) {
            out.push(Out::Publish { topic: format!("{}STATE", dev.cmnd), payload: String::new() });
            expect.push(STATE_KEY.into());
            answers += 1;
        }
        if refresh.iter().any(|k| !dev.mapping.is_state_feature(k)) {
            out.push(Out::Publish { topic: format!("{}STATUS", dev.cmnd), payload: "10".into() });
            expect.push("StatusSNS".into());
            answers += 1;
        }
        if !expect.is_empty() {
            dev.causes.retain(|c| c.at.elapsed() < CAUSE_WINDOW);
            dev.causes.push(Cause { keys: expect, answers, context: cmd.context.clone(), at: Instant::now() });
        }
        let Some(held) = &mut dev.held else { return Ok(out) };
        for o in out {
            self.held_seq += 1;
            held.push_back((self.held_seq, o));
        }
        let mut total = held.len() + held_elsewhere;
        while total > HELD_MAX {
            // The oldest command of all goes first.
            let oldest = self
                .devices
                .values_mut()
                .filter_map(|d| d.held.as_mut().filter(|h| !h.is_empty()))
                .min_by_key(|h| h.front().map_or(u64::MAX, |(seq, _)| *seq));
            let Some(h) = oldest else { break };
            h.pop_front();
            total -= 1;
            tracing::warn!(
                "The MQTT broker is away: {HELD_MAX} commands wait for the devices; the oldest was dropped."
            );
        }
        Ok(Vec::new())
    }
}

fn rejected(topic: &str, reason: &str) -> Out {
    Out::Rejected { source: topic.to_owned(), reason: reason.to_owned() }
}

/// `POWER` is relay 1.
fn normalized(key: &str) -> &str {
    if key == "POWER" { "POWER1" } else { key }
}

fn object(topic: &str, payload: &[u8]) -> Result<Map<String, Json>, Box<Out>> {
    serde_json::from_slice::<Map<String, Json>>(payload)
        .map_err(|e| Box::new(rejected(topic, &format!("payload is not a JSON object: {e}"))))
}

/// How a message relates to the commands sent.
#[derive(Clone, Copy)]
enum Reply<'a> {
    /// Not an answer (telemetry).
    None,
    /// An answer holding these keys.
    Answer(&'a [&'a str]),
    /// An echo beside an answer, holding these keys.
    Echo(&'a [&'a str]),
}

/// A state report from what was decoded, with the cause when it answers a command, and the
/// problems as rejections.
fn report(dev: &mut Dev, topic: &str, decoded: Decoded, reply: Reply<'_>) -> Vec<Out> {
    let mut out = Vec::new();
    for (event, data) in decoded.events {
        out.push(Out::Event(AdapterEvent::Event {
            device: dev.id().clone(),
            feature: "action".into(),
            event,
            data: serde_json::from_value(data).ok(),
        }));
    }
    if !decoded.values.is_empty() {
        let cause = match reply {
            Reply::None => None,
            Reply::Answer(keys) => dev.take_cause(|k| keys.iter().any(|have| normalized(have) == k), true),
            Reply::Echo(keys) => dev.take_cause(|k| keys.iter().any(|have| normalized(have) == k), false),
        };
        out.push(Out::Event(AdapterEvent::State { device: dev.id().clone(), values: decoded.values, cause }));
    }
    if !decoded.problems.is_empty() {
        out.push(rejected(topic, &decoded.problems.join("; ")));
    }
    out
}

fn tele(dev: &mut Dev, topic: &str, suffix: &str, payload: &[u8]) -> Vec<Out> {
    match suffix {
        "LWT" => {
            let text = String::from_utf8_lossy(payload);
            let text = text.trim();
            let availability = if text == dev.config.onln {
                Availability::online(Timestamp::now())
            } else if text == dev.config.ofln {
                Availability::offline(
                    format!("its last will on {topic} says {text}: it lost power, Wi-Fi or the broker"),
                    Timestamp::now(),
                )
                .with_code("device_offline")
            } else {
                return vec![rejected(
                    topic,
                    &format!("last will `{text}` is neither `{}` nor `{}`", dev.config.onln, dev.config.ofln),
                )];
            };
            let online = availability.state == hearth_sdk::AvailabilityState::Online;
            let again = dev.online == Some(online);
            dev.online = Some(online);
            let mut out = vec![Out::Event(AdapterEvent::Availability { device: dev.id().clone(), availability })];
            if online && let Some(held) = dev.held.take() {
                // Back after the broker was lost: what was asked meanwhile, in order.
                out.extend(held.into_iter().map(|(_, o)| o));
            }
            if online && !again {
                // Ask for what it is now, instead of waiting for its next telemetry.
                out.push(Out::Publish { topic: format!("{}STATE", dev.cmnd), payload: String::new() });
                if dev.mapping.has_sensors() {
                    out.push(Out::Publish { topic: format!("{}STATUS", dev.cmnd), payload: "10".into() });
                }
            }
            out
        }
        "STATE" => match object(topic, payload) {
            Ok(obj) => {
                let mut d = Decoded::default();
                dev.mapping.decode_state(&obj, &mut d);
                report(dev, topic, d, Reply::None)
            }
            Err(e) => vec![*e],
        },
        "SENSOR" => match object(topic, payload) {
            Ok(obj) => {
                let mut d = Decoded::default();
                dev.mapping.decode_sensors(&obj, &mut d);
                report(dev, topic, d, Reply::None)
            }
            Err(e) => vec![*e],
        },
        // INFO1..3, UPTIME, MARGINS and the like say nothing the model holds.
        _ => Vec::new(),
    }
}

fn stat(dev: &mut Dev, topic: &str, suffix: &str, payload: &[u8]) -> Vec<Out> {
    if let Some(n) = suffix.strip_prefix("POWER")
        && let Ok(relay) = if n.is_empty() { Ok(1) } else { n.parse::<usize>() }
        && relay >= 1
        && !payload.starts_with(b"{")
    {
        let text = String::from_utf8_lossy(payload);
        let mut d = Decoded::default();
        dev.mapping.decode_power(relay - 1, text.trim(), &mut d);
        let key = format!("POWER{relay}");
        return report(dev, topic, d, Reply::Echo(&[key.as_str()]));
    }
    match suffix {
        "STATUS10" | "STATUS8" => match object(topic, payload) {
            Ok(obj) => {
                let Some(sns) = obj.get("StatusSNS").and_then(Json::as_object) else {
                    return vec![rejected(topic, "payload has no `StatusSNS` object")];
                };
                let mut d = Decoded::default();
                dev.mapping.decode_sensors(sns, &mut d);
                report(dev, topic, d, Reply::Answer(&["StatusSNS"]))
            }
            Err(e) => vec![*e],
        },
        "STATUS11" => match object(topic, payload) {
            Ok(obj) => {
                let Some(sts) = obj.get("StatusSTS").and_then(Json::as_object) else {
                    return vec![rejected(topic, "payload has no `StatusSTS` object")];
                };
                let mut d = Decoded::default();
                dev.mapping.decode_state(sts, &mut d);
                report(dev, topic, d, Reply::None)
            }
            Err(e) => vec![*e],
        },
        _ if suffix.starts_with("STATUS") => Vec::new(),
        // `RESULT`, or `<COMMAND>` with SetOption4: the command's answer.
        _ => match serde_json::from_slice::<Json>(payload) {
            Ok(Json::Object(obj)) => {
                let mut d = Decoded::default();
                dev.mapping.decode_state(&obj, &mut d);
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                report(dev, topic, d, Reply::Answer(&keys))
            }
            _ if suffix == "RESULT" => vec![rejected(topic, "payload is not a JSON object")],
            _ => Vec::new(),
        },
    }
}

/// The values of a state payload (`STATE` or `RESULT`) for a device, for benchmarks and tests.
pub fn decode_state(mapping: &Mapping, payload: &[u8]) -> Option<BTreeMap<String, Value>> {
    let obj: Map<String, Json> = serde_json::from_slice(payload).ok()?;
    let mut d = Decoded::default();
    mapping.decode_state(&obj, &mut d);
    Some(d.values)
}

#[cfg(test)]
mod tests;
