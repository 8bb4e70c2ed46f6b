//! The generic MQTT profile: Hearth's topics and the device model's JSON, on any MQTT 5 broker.
//!
//! Under `<prefix>/<hub id>/` (`p/h/`):
//!
//! | topic | retained | payload |
//! |---|---|---|
//! | `p/h/status` | yes | `online`, or `offline` (also the last will) |
//! | `p/h/devices/<device id>` | yes | the device (`device_updated` event: the device with its shared features and state); empty when removed |
//! | `p/h/devices/<device id>/availability` | yes | the `availability_changed` event; empty when removed |
//! | `p/h/devices/<device id>/state` | no | each `state_changed` event |
//! | `p/h/devices/<device id>/events` | no | each `device_event` event |
//! | `p/h/devices/<device id>/set` | | commands from the cloud, as `POST /api/v1/devices/{id}/commands` takes them (when `accept_commands`) |
//! | `p/h/devices/<device id>/set/result` | no | `{"ok": true, "context": …}` or `{"ok": false, "error": {"code", "message"}}` |
//!
//! A device id's `/`, `+` and `#` (which ids should not hold) are written `%2F`, `%2B`, `%23`.

use super::outbox::{Kind, Row};

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Whether the broker keeps it for new subscribers.
    pub retain: bool,
}

/// The topics of one hub.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

/// A device id as one topic level.
pub fn level(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F").replace('+', "%2B").replace('#', "%23")
}

/// The device id of a topic level.
pub fn unlevel(level: &str) -> String {
    level.replace("%2F", "/").replace("%2B", "+").replace("%23", "#").replace("%25", "%")
}

impl Topics {
    /// The topics under `<prefix>/<hub_id>`.
    pub fn new(prefix: &str, hub_id: &str) -> Topics {
        Topics { base: format!("{prefix}/{hub_id}") }
    }

    /// The hub's availability (and last will).
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// A device's document.
    pub fn device(&self, id: &str) -> String {
        format!("{}/devices/{}", self.base, level(id))
    }

    /// The filter of every command to this hub.
    pub fn commands(&self) -> String {
        format!("{}/devices/+/set", self.base)
    }

    /// The device a command topic is for, when it is one of this hub's.
    pub fn command_device(&self, topic: &str) -> Option<String> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix("/devices/")?;
        let device = rest.strip_suffix("/set")?;
        (!device.is_empty() && !device.contains('/')).then(|| unlevel(device))
    }

    /// Where a command's result goes.
    pub fn result(&self, id: &str) -> String {
        format!("{}/set/result", self.device(id))
    }

    /// The messages of one outbox row.
    pub fn messages(&self, row: &Row) -> Vec<Message> {
        let device = self.device(&row.device);
        let payload = row.payload.clone().into_bytes();
        match row.kind {
            Kind::Device => vec![Message { topic: device, payload, retain: true }],
            Kind::DeviceRemoved => vec![
                Message { topic: format!("{device}/availability"), payload: Vec::new(), retain: true },
                Message { topic: device, payload: Vec::new(), retain: true },
            ],
            Kind::State => vec![Message { topic: format!("{device}/state"), payload, retain: false }],
            Kind::Event => vec![Message { topic: format!("{device}/events"), payload, retain: false }],
            Kind::Availability => vec![Message { topic: format!("{device}/availability"), payload, retain: true }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_under_the_hub_and_ids_stay_one_level() {
        let t = Topics::new("hearth", "home-1");
        assert_eq!(t.status(), "hearth/home-1/status");
        assert_eq!(t.device("zigbee2mqtt:0x00158d"), "hearth/home-1/devices/zigbee2mqtt:0x00158d");
        assert_eq!(t.device("odd:a/b+c#d%"), "hearth/home-1/devices/odd:a%2Fb%2Bc%23d%25");
        assert_eq!(t.command_device("hearth/home-1/devices/odd:a%2Fb/set").as_deref(), Some("odd:a/b"));
        assert_eq!(t.command_device("hearth/home-2/devices/demo:x/set"), None, "another hub's");
        assert_eq!(t.command_device("hearth/home-1/devices/demo:x/state"), None);
        assert_eq!(t.command_device("hearth/home-1/devices//set"), None);
        assert_eq!(t.commands(), "hearth/home-1/devices/+/set");
    }

    #[test]
    fn each_kind_has_its_topic_and_retain_flag() {
        let t = Topics::new("p", "h");
        let row = |kind| Row { kind, device: "demo:a".into(), feature: None, payload: "{}".into(), at: 0 };
        let m = t.messages(&row(Kind::State));
        assert_eq!((m[0].topic.as_str(), m[0].retain), ("p/h/devices/demo:a/state", false));
        let m = t.messages(&row(Kind::Availability));
        assert_eq!((m[0].topic.as_str(), m[0].retain), ("p/h/devices/demo:a/availability", true));
        let m = t.messages(&row(Kind::DeviceRemoved));
        assert!(m.iter().all(|m| m.retain && m.payload.is_empty()) && m.len() == 2);
        let m = t.messages(&row(Kind::Device));
        assert_eq!((m[0].topic.as_str(), m[0].retain), ("p/h/devices/demo:a", true));
    }
}
