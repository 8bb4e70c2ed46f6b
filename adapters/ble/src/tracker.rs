//! What the adapter knows of each advertiser, as pure logic: advertisements, the user's
//! decisions and the clock in, `AdapterEvent`s out. No I/O, so it is tested without radios.
//!
//! - An advertiser a decoder reads becomes a find in the discovery inbox (`Found`), keyed by its
//!   address (or by its identity, for beacons whose address changes). Only once the user accepts
//!   it is it announced as a device; its features grow as it reports new kinds of readings.
//! - A repeated packet (the same packet id) refreshes when it was heard, nothing else.
//! - A device not heard for its kind's timeout goes offline with the reason; a presence beacon
//!   instead reports that it is away (it is not broken, just gone).
//! - Advertisements no decoder recognises (phones, headphones) are ignored; ones a decoder
//!   recognises but cannot read are rejected once per advertiser, with why.

use std::collections::{BTreeMap, BTreeSet};

use hearth_sdk::{
    Access, AdapterEvent, Availability, Capability, Category, Decision, DeviceDescriptor, DeviceId, Feature, Found,
    PowerSource, Transport, Value, ValueType,
};

use crate::decode::{self, Advertisement, DecodeError, Decoded};

/// The adapter id, also the prefix of every device id.
pub const ADAPTER_ID: &str = "ble";

/// How often a find not yet decided is offered again (the hub refreshes when it was seen).
const OFFER_EVERY_MS: i64 = 10 * 60 * 1000;
/// The key of the presence feature of beacons.
const PRESENCE: &str = "presence";
/// The key of the signal strength feature every device has.
const SIGNAL: &str = "signal_strength";

/// Timeouts after which an advertiser not heard is offline (or away), per decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Seconds for every kind, when the configuration sets one.
    pub all: Option<u64>,
}

impl Timeouts {
    /// The timeout of a decoder's devices, in seconds: beacons are presence, so they go away
    /// soon; sensors that advertise every few seconds get some minutes; sleepy ones longer.
    pub fn secs(&self, decoder: &str) -> u64 {
        if let Some(s) = self.all {
            return s;
        }
        match decoder {
            "beacon" => 120,
            "ruuvi" | "atc" | "govee" | "inkbird" | "switchbot" => 600,
            _ => 1800,
        }
    }
}

#[derive(Debug)]
struct Tracked {
    found: Found,
    decoder: &'static str,
    features: BTreeMap<String, Feature>,
    latest: BTreeMap<String, Value>,
    last_packet: Option<u32>,
    last_heard_ms: i64,
    offered_ms: Option<i64>,
    announced: bool,
    away: bool,
    /// Whether its advertisement says it has a password (SwitchBot).
    protected: bool,
}

/// What the adapter needs to control a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controllable {
    /// Its address.
    pub address: decode::Address,
    /// The decoder that reads it (`switchbot`).
    pub decoder: &'static str,
    /// Its model (`Bot`).
    pub model: String,
    /// Its `mode` as last heard.
    pub mode: Option<String>,
    /// Whether it has a password.
    pub protected: bool,
}

/// How a feature of a device that can be controlled is used (`None`: read-only, as heard).
fn control_access(decoder: &str, model: Option<&str>, key: &str) -> Option<(Access, Option<Category>)> {
    match (decoder, model, key) {
        ("switchbot", Some("Bot"), "state") => Some((Access::ALL, None)),
        ("switchbot", Some("Bot"), "mode") => {
            Some((Access { observe: true, set: false, get: true }, Some(Category::Config)))
        }
        ("switchbot", Some("Bot"), "battery") => {
            Some((Access { observe: true, set: false, get: true }, Some(Category::Diagnostic)))
        }
        _ => None,
    }
}

/// Every advertiser heard.
#[derive(Debug)]
pub struct Tracker {
    devices: BTreeMap<String, Tracked>,
    rejected: BTreeSet<String>,
    timeouts: Timeouts,
}

/// The bind key of a device, if one is known (by its address as written, `A4:C1:...`).
pub type Keys = BTreeMap<String, Vec<u8>>;

impl Tracker {
    /// A tracker with no advertiser yet.
    pub fn new(timeouts: Timeouts) -> Tracker {
        Tracker { devices: BTreeMap::new(), rejected: BTreeSet::new(), timeouts }
    }

    /// How many advertisers it knows.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The device `id`, when it can be controlled and is accepted.
    pub fn controllable(&self, id: &DeviceId) -> Option<Controllable> {
        let t = self.devices.values().find(|t| t.found.device == *id && t.announced)?;
        let model = t.found.model.clone()?;
        control_access(t.decoder, Some(&model), "state")?;
        Some(Controllable {
            address: t.found.address.as_deref()?.parse().ok()?,
            decoder: t.decoder,
            model,
            mode: match t.latest.get("mode") {
                Some(Value::Text(m)) => Some(m.clone()),
                _ => None,
            },
            protected: t.protected,
        })
    }

    /// An advertisement was heard at `now_ms`; `decision` is the user's decision about a key.
    pub fn heard(
        &mut self,
        adv: &Advertisement,
        now_ms: i64,
        keys: &Keys,
        decision: &dyn Fn(&str) -> Option<Decision>,
    ) -> Vec<AdapterEvent> {
        let address = adv.address.to_string();
        let key = keys.get(&address).map(Vec::as_slice);
        let (decoded, failure) = match decode::decode_with(adv, key) {
            Ok(found) => (found, None),
            Err(failure) => (None, Some(failure)),
        };
        let mut out = Vec::new();
        let (decoder, decoded) = match (decoded, failure) {
            (Some(d), _) => d,
            // Encrypted and no key (or the wrong one): offered all the same, so the user can
            // add it and enter its key; nothing is read meanwhile.
            (None, Some((name, e @ (DecodeError::NeedsKey { .. } | DecodeError::WrongKey { .. })))) => {
                self.reject_once(&address, &e, &mut out);
                (name, Decoded { brand: brand_of(name), model: String::new(), ..Decoded::default() })
            }
            (None, Some((_, e))) => {
                self.reject_once(&address, &e, &mut out);
                return out;
            }
            (None, None) => return out,
        };
        let dkey = decoded.identity.clone().unwrap_or_else(|| address.clone());
        let entry = self.devices.entry(dkey.clone()).or_insert_with(|| Tracked {
            found: Found {
                key: dkey.clone(),
                device: DeviceId::new(ADAPTER_ID, &dkey),
                name: String::new(),
                manufacturer: None,
                model: None,
                transport: Transport::Ble,
                address: None,
                supported: true,
                kind: Some(decoder.to_owned()),
            },
            decoder,
            features: BTreeMap::new(),
            latest: BTreeMap::new(),
            last_packet: None,
            last_heard_ms: now_ms,
            offered_ms: None,
            announced: false,
            away: false,
            protected: false,
        });
        entry.protected = decoder == "switchbot"
            && adv
                .service_data16(0xFD3D)
                .or_else(|| adv.service_data16(0x0D00))
                .and_then(|d| d.first())
                .is_some_and(|b| b & 0x80 != 0);
        entry.last_heard_ms = now_ms;
        let before = entry.found.clone();
        entry.found.address = Some(address);
        if !decoded.model.is_empty() {
            entry.found.model = Some(decoded.model.clone());
        }
        entry.found.manufacturer = Some(decoded.brand.to_owned());
        entry.found.name = adv
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| entry.found.model.clone().map(|m| format!("{} {m}", decoded.brand)))
            .unwrap_or_else(|| format!("{} device", decoded.brand));

        let repeat = decoded.packet_id.is_some() && decoded.packet_id == entry.last_packet;
        entry.last_packet = decoded.packet_id.or(entry.last_packet);
        let mut values = BTreeMap::new();
        let mut grew = false;
        if !repeat {
            let model = entry.found.model.clone();
            for r in &decoded.readings {
                grew |= add_feature(&mut entry.features, &r.key, || {
                    let mut f = reading_feature(r);
                    if let Some((access, category)) = control_access(decoder, model.as_deref(), &r.key) {
                        f.access = access;
                        if let Some(c) = category {
                            f = f.category(c);
                        }
                    }
                    f
                });
                values.insert(r.key.clone(), r.value.clone());
            }
            for e in &decoded.events {
                grew |= add_feature(&mut entry.features, &e.key, || {
                    Feature::new(
                        &e.key,
                        Capability::Action,
                        ValueType::enumeration(e.values.iter().copied()),
                        Access::EVENT,
                    )
                });
            }
        }
        if decoder == "beacon" {
            grew |= add_feature(&mut entry.features, PRESENCE, || {
                Feature::new(PRESENCE, Capability::Occupancy, ValueType::Bool, Access::READ_ONLY)
            });
            values.insert(PRESENCE.into(), Value::Bool(true));
        }
        if let Some(rssi) = adv.rssi {
            grew |= add_feature(&mut entry.features, SIGNAL, || {
                Feature::new(SIGNAL, Capability::SignalStrength, ValueType::range(-127.0, 20.0, 1.0), Access::READ_ONLY)
                    .category(Category::Diagnostic)
            });
            values.insert(SIGNAL.into(), Value::Number(f64::from(rssi)));
        }
        entry.latest.extend(values.clone());

        let id = entry.found.device.clone();
        match decision(&dkey) {
            Some(Decision::Accepted) => {
                if !entry.announced || grew {
                    out.push(AdapterEvent::Device { device: descriptor(entry) });
                }
                if !entry.announced {
                    values = entry.latest.clone();
                }
                if !values.is_empty() {
                    out.push(AdapterEvent::State { device: id.clone(), values, cause: None });
                }
                if !repeat {
                    for e in &decoded.events {
                        out.push(AdapterEvent::Event {
                            device: id.clone(),
                            feature: e.key.clone(),
                            event: e.event.to_owned(),
                            data: None,
                        });
                    }
                }
                if !entry.announced || entry.away {
                    out.push(AdapterEvent::Availability {
                        device: id,
                        availability: Availability::online(hearth_sdk::Timestamp::from_millis(now_ms)),
                    });
                }
                entry.announced = true;
                entry.away = false;
            }
            Some(Decision::Ignored) => {}
            None => {
                let changed = before != entry.found;
                if changed || entry.offered_ms.is_none_or(|t| now_ms - t >= OFFER_EVERY_MS) {
                    entry.offered_ms = Some(now_ms);
                    out.push(AdapterEvent::Found { found: entry.found.clone() });
                }
            }
        }
        out
    }

    fn reject_once(&mut self, address: &str, e: &DecodeError, out: &mut Vec<AdapterEvent>) {
        if self.rejected.insert(address.to_owned()) {
            tracing::info!(address, "BLE: {e}.");
            out.push(AdapterEvent::InputRejected { source: address.to_owned(), reason: e.to_string() });
        }
    }

    /// The user's decisions changed: accepted advertisers are announced, ones no longer
    /// accepted leave and are offered again.
    pub fn decided(&mut self, decision: &dyn Fn(&str) -> Option<Decision>, now_ms: i64) -> Vec<AdapterEvent> {
        let mut out = Vec::new();
        for (key, t) in &mut self.devices {
            match (decision(key), t.announced) {
                (Some(Decision::Accepted), false) => {
                    let id = t.found.device.clone();
                    out.push(AdapterEvent::Device { device: descriptor(t) });
                    if !t.latest.is_empty() {
                        out.push(AdapterEvent::State { device: id.clone(), values: t.latest.clone(), cause: None });
                    }
                    out.push(AdapterEvent::Availability {
                        device: id,
                        availability: Availability::online(hearth_sdk::Timestamp::from_millis(t.last_heard_ms)),
                    });
                    t.announced = true;
                }
                (Some(Decision::Accepted), true) | (Some(Decision::Ignored), false) => {}
                (d, true) => {
                    // No longer accepted: the device was removed, or the entry forgotten.
                    out.push(AdapterEvent::DeviceRemoved { device: t.found.device.clone() });
                    t.announced = false;
                    if d.is_none() {
                        t.offered_ms = Some(now_ms);
                        out.push(AdapterEvent::Found { found: t.found.clone() });
                    }
                }
                (None, false) => {
                    if t.offered_ms.is_some() {
                        t.offered_ms = Some(now_ms);
                        out.push(AdapterEvent::Found { found: t.found.clone() });
                    }
                }
            }
        }
        out
    }

    /// Time passed: devices not heard for their timeout go offline (beacons: away).
    pub fn tick(&mut self, now_ms: i64) -> Vec<AdapterEvent> {
        let mut out = Vec::new();
        for t in self.devices.values_mut().filter(|t| t.announced && !t.away) {
            let secs = self.timeouts.secs(t.decoder);
            if now_ms - t.last_heard_ms < i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000) {
                continue;
            }
            t.away = true;
            let id = t.found.device.clone();
            if t.decoder == "beacon" {
                t.latest.insert(PRESENCE.into(), Value::Bool(false));
                out.push(AdapterEvent::State {
                    device: id,
                    values: BTreeMap::from([(PRESENCE.to_owned(), Value::Bool(false))]),
                    cause: None,
                });
            } else {
                let reason = format!("no advertisement for {}", minutes(secs));
                out.push(AdapterEvent::Availability {
                    device: id,
                    availability: Availability::offline(reason, hearth_sdk::Timestamp::from_millis(now_ms))
                        .with_code("no_advertisement"),
                });
            }
        }
        out
    }
}

fn minutes(secs: u64) -> String {
    match secs {
        60 => "1 minute".to_owned(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn brand_of(decoder: &str) -> &'static str {
    match decoder {
        "bthome" => "BTHome",
        "mibeacon" => "Xiaomi",
        "atc" => "ATC/PVVX",
        "ruuvi" => "Ruuvi",
        "govee" => "Govee",
        "inkbird" => "Inkbird",
        "switchbot" => "SwitchBot",
        _ => "Beacon",
    }
}

/// Adds a feature unless it is there; whether it was added.
fn add_feature(features: &mut BTreeMap<String, Feature>, key: &str, make: impl FnOnce() -> Feature) -> bool {
    if features.contains_key(key) {
        return false;
    }
    features.insert(key.to_owned(), make());
    true
}

fn reading_feature(r: &decode::Reading) -> Feature {
    let value_type = match &r.value {
        Value::Bool(_) => ValueType::Bool,
        Value::Number(_) => ValueType::Number { min: None, max: None, step: None },
        Value::Text(_) => ValueType::Text { max_length: None },
        Value::Color(_) => ValueType::Color,
        Value::List(_) => ValueType::List,
        Value::Object(_) => ValueType::Object,
    };
    let mut f = Feature::new(&r.key, r.capability, value_type, Access::READ_ONLY);
    if matches!(r.capability, Capability::Battery | Capability::BatteryLow | Capability::SignalStrength) {
        f = f.category(Category::Diagnostic);
    }
    if let Some(unit) = r.unit {
        f = f.unit(unit);
    }
    f
}

fn descriptor(t: &Tracked) -> DeviceDescriptor {
    DeviceDescriptor {
        id: t.found.device.clone(),
        name: t.found.name.clone(),
        suggested_area: None,
        manufacturer: t.found.manufacturer.clone(),
        model: t.found.model.clone(),
        firmware: None,
        via: None,
        power_source: PowerSource::Battery,
        features: t.features.values().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::uuid16;

    fn bthome(packet: u8, temperature_centi: i16) -> Advertisement {
        let t = temperature_centi.to_le_bytes();
        let mut adv = Advertisement {
            address: "A4:C1:38:00:00:01".parse().expect("address"),
            rssi: Some(-61),
            name: Some("Garden".into()),
            ..Advertisement::default()
        };
        adv.service_data.insert(uuid16(0xFCD2), vec![0x40, 0x00, packet, 0x01, 0x64, 0x02, t[0], t[1]]);
        adv
    }

    fn value(events: &[AdapterEvent], key: &str) -> Option<Value> {
        events.iter().find_map(|e| match e {
            AdapterEvent::State { values, .. } => values.get(key).cloned(),
            _ => None,
        })
    }

    #[test]
    fn a_sensor_is_offered_then_announced_when_accepted_and_goes_offline_when_quiet() {
        let mut t = Tracker::new(Timeouts { all: Some(60) });
        let keys = Keys::new();
        let none = |_: &str| None;
        let out = t.heard(&bthome(1, 2506), 0, &keys, &none);
        assert!(matches!(&out[..], [AdapterEvent::Found { found }]
            if found.key == "A4:C1:38:00:00:01" && found.name == "Garden" && found.device.as_str() == "ble:A4:C1:38:00:00:01"));
        assert!(t.heard(&bthome(2, 2510), 1_000, &keys, &none).is_empty(), "offered once, not every time");

        // Accepted: the device with what it last said, then online.
        let accepted = |_: &str| Some(Decision::Accepted);
        let out = t.decided(&accepted, 2_000);
        match &out[..] {
            [
                AdapterEvent::Device { device },
                AdapterEvent::State { values, .. },
                AdapterEvent::Availability { .. },
            ] => {
                let keys: Vec<&str> = device.features.iter().map(|f| f.key.as_str()).collect();
                assert_eq!(keys, ["battery", "signal_strength", "temperature"]);
                assert_eq!(values.get("temperature"), Some(&Value::Number(25.1)));
            }
            other => panic!("{other:?}"),
        }
        // A repeated packet changes nothing; a new one reports.
        let out = t.heard(&bthome(2, 2600), 3_000, &keys, &accepted);
        assert_eq!(value(&out, "temperature"), None, "packet 2 again is a repeat");
        let out = t.heard(&bthome(3, 2600), 4_000, &keys, &accepted);
        assert_eq!(value(&out, "temperature"), Some(Value::Number(26.0)));

        // Quiet for the timeout: offline, with why; heard again: online.
        assert!(t.tick(63_000).is_empty());
        let out = t.tick(64_000);
        assert!(matches!(&out[..], [AdapterEvent::Availability { availability, .. }]
            if availability.reason.as_deref() == Some("no advertisement for 1 minute")
                && availability.code.as_deref() == Some("no_advertisement")));
        assert!(t.tick(70_000).is_empty(), "said once");
        let out = t.heard(&bthome(4, 2600), 71_000, &keys, &accepted);
        assert!(out.iter().any(|e| matches!(e, AdapterEvent::Availability { availability, .. }
            if availability.state == hearth_sdk::AvailabilityState::Online)));

        // No longer accepted (the device was removed): it leaves and is offered again.
        let out = t.decided(&none, 80_000);
        assert!(matches!(&out[..], [AdapterEvent::DeviceRemoved { .. }, AdapterEvent::Found { .. }]), "{out:?}");
    }

    #[test]
    fn unreadable_frames_are_rejected_once_and_strangers_ignored() {
        let mut t = Tracker::new(Timeouts { all: None });
        let keys = Keys::new();
        let none = |_: &str| None;
        let mut broken = bthome(1, 0);
        broken.service_data.insert(uuid16(0xFCD2), vec![0x40, 0x02]);
        let out = t.heard(&broken, 0, &keys, &none);
        assert!(matches!(&out[..], [AdapterEvent::InputRejected { source, .. }] if source == "A4:C1:38:00:00:01"));
        assert!(t.heard(&broken, 1, &keys, &none).is_empty(), "rejected once");
        let mut phone = bthome(1, 0);
        phone.service_data.clear();
        phone.manufacturer_data.insert(0x0006, vec![1, 9, 32, 10]);
        assert!(t.heard(&phone, 2, &keys, &none).is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn a_switchbot_bot_can_be_switched_once_accepted() {
        let mut t = Tracker::new(Timeouts { all: None });
        let mut bot =
            Advertisement { address: "C0:11:22:33:44:55".parse().expect("address"), ..Advertisement::default() };
        // Switch mode, off, 100 %, with a password (bit 7 of the first byte).
        bot.service_data.insert(uuid16(0xFD3D), vec![0xC8, 0xC0, 0x64]);
        let id = DeviceId::new(ADAPTER_ID, "C0:11:22:33:44:55");
        t.heard(&bot, 0, &Keys::new(), &|_| None);
        assert_eq!(t.controllable(&id), None, "not before it is accepted");
        let out = t.heard(&bot, 1, &Keys::new(), &|_| Some(Decision::Accepted));
        let AdapterEvent::Device { device } = &out[0] else { panic!("{out:?}") };
        let state = device.features.iter().find(|f| f.key == "state").expect("state");
        assert_eq!(state.access, Access::ALL);
        let mode = device.features.iter().find(|f| f.key == "mode").expect("mode");
        assert!(!mode.access.set && mode.category == Category::Config);
        let c = t.controllable(&id).expect("controllable");
        assert_eq!((c.mode.as_deref(), c.protected, c.model.as_str()), (Some("switch"), true, "Bot"));
        assert_eq!(t.controllable(&DeviceId::new(ADAPTER_ID, "A4:C1:38:00:00:01")), None);
    }

    #[test]
    fn kinds_have_their_own_timeouts() {
        let t = Timeouts { all: None };
        assert_eq!((t.secs("beacon"), t.secs("ruuvi"), t.secs("bthome")), (120, 600, 1800));
        assert_eq!(Timeouts { all: Some(5) }.secs("beacon"), 5);
    }
}
