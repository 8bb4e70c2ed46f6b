//! Tasmota's wire format: the serde types of its native discovery messages
//! (`tasmota/discovery/<MAC>/config` and `.../sensors`) and how its topics are built.
//!
//! Source: Tasmota's `tasmota/tasmota_xdrv_driver/xdrv_12_discovery.ino` (`TasDiscoverMessage`,
//! discovery version 1), read together with hatasmota, the library Home Assistant uses to read
//! the same messages. Unknown keys are ignored (newer firmware adds some); keys older firmware
//! leaves out get Tasmota's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The discovery version this adapter reads (`"ver": 1`).
pub const DISCOVERY_VERSION: u64 = 1;

/// Which of the three topic prefixes (`tp`) a topic uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// Commands to the device (`cmnd`).
    Cmnd,
    /// Answers and status (`stat`).
    Stat,
    /// Telemetry and the last will (`tele`).
    Tele,
}

impl Prefix {
    fn index(self) -> usize {
        match self {
            Prefix::Cmnd => 0,
            Prefix::Stat => 1,
            Prefix::Tele => 2,
        }
    }
}

/// What a relay position of `rl` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayType {
    /// Nothing (`0`).
    None,
    /// A plain relay (`1`).
    Relay,
    /// A light (`2`).
    Light,
    /// Half of a shutter's relay pair (`3`).
    Shutter,
}

impl RelayType {
    /// The type of an `rl` number; numbers this version does not know read as `None`.
    pub fn from_code(code: u8) -> RelayType {
        match code {
            1 => RelayType::Relay,
            2 => RelayType::Light,
            3 => RelayType::Shutter,
            _ => RelayType::None,
        }
    }
}

/// The light subtype (`lt_st`): how many channels the light has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LightSubtype {
    /// No light (`0`).
    None,
    /// One channel: a dimmer (`1`).
    Single,
    /// Cold and warm white: color temperature (`2`).
    ColdWarm,
    /// Red, green, blue (`3`).
    Rgb,
    /// RGB and one white (`4`).
    Rgbw,
    /// RGB, cold and warm white (`5`).
    Rgbcw,
}

impl LightSubtype {
    /// The subtype of an `lt_st` number; larger numbers read as the largest known.
    pub fn from_code(code: u8) -> LightSubtype {
        match code {
            0 => LightSubtype::None,
            1 => LightSubtype::Single,
            2 => LightSubtype::ColdWarm,
            3 => LightSubtype::Rgb,
            4 => LightSubtype::Rgbw,
            _ => LightSubtype::Rgbcw,
        }
    }

    /// Whether the light has a color temperature (CT) channel pair.
    pub fn has_ct(self) -> bool {
        matches!(self, LightSubtype::ColdWarm | LightSubtype::Rgbcw)
    }

    /// Whether the light has RGB channels.
    pub fn has_color(self) -> bool {
        self >= LightSubtype::Rgb
    }
}

fn offline() -> String {
    "Offline".into()
}

fn online() -> String {
    "Online".into()
}

fn states() -> Vec<String> {
    ["OFF", "ON", "TOGGLE", "HOLD"].iter().map(|s| (*s).to_owned()).collect()
}

/// `tasmota/discovery/<MAC>/config`: what a Tasmota device is and where its topics are.
///
/// ```json
/// {"ip":"10.211.10.103","dn":"x3","fn":["Basic-3 x3",null,null,null,null,null,null,null],
///  "hn":"ESP-Basic-3","mac":"84F3EB487D21","md":"Sonoff Basic","ty":0,"if":0,"ofln":"Offline",
///  "onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"9.2.0","t":"Basic-3",
///  "ft":"%prefix%/%topic%/","tp":["cmnd","stat","tele"],"rl":[1,0,0,0,0,0,0,0],
///  "swc":[-1,-1,-1,-1,-1,-1,-1,-1],"swn":[null,null,null,null,null,null,null,null],
///  "btn":[0,0,0,0],"so":{"4":0,"11":0,"13":0,"17":1,"20":0,"30":0,"68":0,"73":0,"82":0,"114":0},
///  "lk":1,"lt_st":0,"sho":[0,0,0,0],"ver":1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryConfig {
    /// IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Device name (`DeviceName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
    /// Friendly names, one per relay (`FriendlyName1`...); `null` past the relays.
    #[serde(rename = "fn", default)]
    pub friendly_names: Vec<Option<String>>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hn: Option<String>,
    /// The MAC address as 12 upper-case hex digits: the device's identity.
    pub mac: String,
    /// Module or template name: the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md: Option<String>,
    /// 1 on TuyaMCU modules.
    #[serde(default)]
    pub ty: u8,
    /// 1 on Sonoff iFan02/iFan03 fan controllers.
    #[serde(rename = "if", default)]
    pub ifan: u8,
    /// Last will payload when offline.
    #[serde(default = "offline")]
    pub ofln: String,
    /// Last will payload when online.
    #[serde(default = "online")]
    pub onln: String,
    /// The words for OFF, ON, TOGGLE and HOLD (`StateText1`..`4`).
    #[serde(default = "states")]
    pub state: Vec<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw: Option<String>,
    /// The device's MQTT topic (`%topic%`).
    pub t: String,
    /// The full topic pattern (`%prefix%/%topic%/`).
    pub ft: String,
    /// The three prefixes: command, stat, telemetry.
    pub tp: Vec<String>,
    /// Relay types (see [`RelayType`]).
    #[serde(default)]
    pub rl: Vec<u8>,
    /// Switch modes, `-1` when the switch is not used or not detached (SetOption114).
    #[serde(default)]
    pub swc: Vec<i32>,
    /// Switch names.
    #[serde(default)]
    pub swn: Vec<Option<String>>,
    /// Buttons: 1 when present and detached from the relays (SetOption73).
    #[serde(default)]
    pub btn: Vec<u8>,
    /// SetOptions by number: `"4"` MQTT responses on `%COMMAND%` instead of `RESULT`, `"13"`
    /// single press only, `"17"` colors as decimals, `"20"` dimmer changes do not switch power,
    /// `"30"` relays as lights, `"68"` one light per PWM channel, `"73"` detached buttons, `"82"`
    /// CT range reduced to 200..380, `"114"` detached switches, `"117"` fixed fade duration.
    #[serde(default)]
    pub so: BTreeMap<String, i64>,
    /// 1 when the RGB and white channels are one light.
    #[serde(default = "one")]
    pub lk: u8,
    /// Light subtype (see [`LightSubtype`]).
    #[serde(default)]
    pub lt_st: u8,
    /// 1 when battery powered.
    #[serde(default)]
    pub bat: u8,
    /// 1 when deep sleep is configured.
    #[serde(default)]
    pub dslp: u8,
    /// Shutter options.
    #[serde(default)]
    pub sho: Vec<i64>,
    /// Discovery version; this adapter reads version 1.
    pub ver: u64,
}

fn one() -> u8 {
    1
}

impl DiscoveryConfig {
    /// Reads a config payload; the error says what is missing or wrong.
    pub fn parse(payload: &[u8]) -> Result<DiscoveryConfig, String> {
        let config: DiscoveryConfig =
            serde_json::from_slice(payload).map_err(|e| format!("not a Tasmota discovery config: {e}"))?;
        config.check()?;
        Ok(config)
    }

    /// Checks what the adapter relies on: the version, three prefixes, topics without MQTT
    /// wildcards, the ON and OFF words.
    pub fn check(&self) -> Result<(), String> {
        if self.ver != DISCOVERY_VERSION {
            return Err(format!(
                "discovery version {} is not supported (this adapter reads version {DISCOVERY_VERSION})",
                self.ver
            ));
        }
        if self.mac.len() != 12 || !self.mac.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("`mac` must be 12 hex digits, not `{}`", self.mac));
        }
        if self.tp.len() < 3 || self.tp.iter().take(3).any(|p| p.is_empty()) {
            return Err(format!("`tp` must name the cmnd, stat and tele prefixes, not {:?}", self.tp));
        }
        if self.t.is_empty() {
            return Err("`t` (the device's topic) is empty".into());
        }
        if self.state.len() < 2 || self.state.iter().take(2).any(|s| s.is_empty()) {
            return Err(format!("`state` must give the OFF and ON words, not {:?}", self.state));
        }
        for prefix in [Prefix::Cmnd, Prefix::Stat, Prefix::Tele] {
            let base = self.base(prefix);
            if base.contains(['+', '#']) {
                return Err(format!("topic `{base}` holds an MQTT wildcard"));
            }
        }
        if self.base(Prefix::Stat) == self.base(Prefix::Tele) {
            return Err(format!("the stat and tele topics are both `{}`", self.base(Prefix::Stat)));
        }
        Ok(())
    }

    /// The device id part: the MAC in lower case.
    pub fn native_id(&self) -> String {
        self.mac.to_ascii_lowercase()
    }

    /// The word for ON.
    pub fn on_word(&self) -> &str {
        self.state.get(1).map_or("ON", String::as_str)
    }

    /// The word for OFF.
    pub fn off_word(&self) -> &str {
        self.state.first().map_or("OFF", String::as_str)
    }

    /// A SetOption as 0 or 1 (0 when absent).
    pub fn option(&self, number: &str) -> bool {
        self.so.get(number).is_some_and(|v| *v != 0)
    }

    /// The relay types, in relay order.
    pub fn relays(&self) -> Vec<RelayType> {
        self.rl.iter().map(|c| RelayType::from_code(*c)).collect()
    }

    /// The light subtype.
    pub fn light_subtype(&self) -> LightSubtype {
        LightSubtype::from_code(self.lt_st)
    }

    /// The full topic with its tokens filled in, ending in `/`: `cmnd/huzzah_1/`.
    pub fn base(&self, prefix: Prefix) -> String {
        self.expand(prefix, &self.t, self.hn.as_deref().unwrap_or_default(), &self.mac_suffix())
    }

    /// The MQTT filter that covers this device's topics of `prefix` and those of every other
    /// device with the same full topic pattern: the topic tokens become `+` (`stat/+/+`). Many
    /// devices share it, so the adapter needs few subscriptions. A topic token holding `/` (which
    /// `+` cannot match) stays literal.
    pub fn filter(&self, prefix: Prefix) -> String {
        let hostname = self.hn.as_deref().unwrap_or_default();
        let wild = |s: &str| if s.contains('/') || s.is_empty() { s.to_owned() } else { "+".to_owned() };
        format!("{}+", self.expand(prefix, &wild(&self.t), &wild(hostname), "+"))
    }

    fn mac_suffix(&self) -> String {
        self.mac.get(self.mac.len().saturating_sub(6)..).unwrap_or_default().to_owned()
    }

    fn expand(&self, prefix: Prefix, topic: &str, hostname: &str, id: &str) -> String {
        let word = self.tp.get(prefix.index()).map_or("", String::as_str);
        let mut full = self
            .ft
            .replace("%prefix%", word)
            .replace("%topic%", topic)
            .replace("%hostname%", hostname)
            .replace("%id%", id);
        if !full.ends_with('/') {
            full.push('/');
        }
        full
    }
}

/// `tasmota/discovery/<MAC>/sensors`: the device's sensors as its `tele/.../SENSOR` shows them.
///
/// ```json
/// {"sn":{"Time":"2021-02-24T10:40:13","DHT11":{"Temperature":19.0,"Humidity":16.0,"DewPoint":-7.5},
///        "TempUnit":"C"},"ver":1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorsDiscovery {
    /// The sensors: one object per sensor driver (`AM2301`, `ENERGY`), plus `Time` and the
    /// units (`TempUnit`, `PressureUnit`, `SpeedUnit`).
    pub sn: Map<String, Json>,
    /// Discovery version.
    #[serde(default)]
    pub ver: Option<u64>,
}

impl SensorsDiscovery {
    /// Reads a sensors payload.
    pub fn parse(payload: &[u8]) -> Result<SensorsDiscovery, String> {
        serde_json::from_slice(payload).map_err(|e| format!("not a Tasmota sensors discovery: {e}"))
    }
}

/// What a discovery topic is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryTopic {
    /// `<prefix>/<MAC>/config`.
    Config(String),
    /// `<prefix>/<MAC>/sensors`.
    Sensors(String),
}

/// Reads the part of a discovery topic after the prefix (`84F3EB487D21/config`).
pub fn discovery_topic(rest: &str) -> Option<DiscoveryTopic> {
    let (mac, kind) = rest.split_once('/')?;
    if mac.is_empty() || mac.contains('/') {
        return None;
    }
    match kind {
        "config" => Some(DiscoveryTopic::Config(mac.to_ascii_uppercase())),
        "sensors" => Some(DiscoveryTopic::Sensors(mac.to_ascii_uppercase())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testdata::SONOFF_BASIC;

    #[test]
    fn a_captured_config_reads_with_its_topics() {
        let c = DiscoveryConfig::parse(SONOFF_BASIC.as_bytes()).unwrap();
        assert_eq!(c.native_id(), "84f3eb487d21");
        assert_eq!(c.dn.as_deref(), Some("x3"));
        assert_eq!(c.md.as_deref(), Some("Sonoff Basic"));
        assert_eq!(c.sw.as_deref(), Some("9.2.0"));
        assert_eq!(c.friendly_names[0].as_deref(), Some("Basic-3 x3"));
        assert_eq!(c.relays()[..2], [RelayType::Relay, RelayType::None]);
        assert_eq!(c.base(Prefix::Cmnd), "cmnd/Basic-3/");
        assert_eq!(c.base(Prefix::Stat), "stat/Basic-3/");
        assert_eq!(c.base(Prefix::Tele), "tele/Basic-3/");
        assert_eq!(c.filter(Prefix::Tele), "tele/+/+");
        assert!(c.option("17"));
        assert!(!c.option("4"));
        assert_eq!((c.on_word(), c.off_word()), ("ON", "OFF"));
    }

    #[test]
    fn full_topic_tokens_are_filled_in() {
        let mut c = DiscoveryConfig::parse(SONOFF_BASIC.as_bytes()).unwrap();
        // Home Assistant's test config puts the prefix after the topic.
        c.ft = "%topic%/%prefix%/".into();
        assert_eq!(c.base(Prefix::Stat), "Basic-3/stat/");
        assert_eq!(c.filter(Prefix::Stat), "+/stat/+");
        c.ft = "home/%hostname%/%id%/%prefix%".into();
        assert_eq!(c.base(Prefix::Tele), "home/ESP-Basic-3/487D21/tele/");
        assert_eq!(c.filter(Prefix::Tele), "home/+/+/tele/+");
    }

    #[test]
    fn configs_the_adapter_cannot_follow_are_refused_with_the_reason() {
        let base: Json = serde_json::from_str(SONOFF_BASIC).unwrap();
        let cases = [
            ("ver", serde_json::json!(2), "discovery version 2 is not supported (this adapter reads version 1)"),
            ("tp", serde_json::json!(["cmnd", "stat"]), "`tp` must name the cmnd, stat and tele prefixes"),
            ("t", serde_json::json!("a+b"), "holds an MQTT wildcard"),
            ("mac", serde_json::json!("84:F3:EB:48:7D:21"), "`mac` must be 12 hex digits"),
            ("state", serde_json::json!([]), "`state` must give the OFF and ON words"),
        ];
        for (key, value, reason) in cases {
            let mut c = base.clone();
            c[key] = value;
            let err = DiscoveryConfig::parse(c.to_string().as_bytes()).unwrap_err();
            assert!(err.contains(reason), "{key}: {err}");
        }
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove("t");
        assert!(DiscoveryConfig::parse(c.to_string().as_bytes()).unwrap_err().contains("missing field `t`"));
        assert!(DiscoveryConfig::parse(b"{\"ip\":").is_err());
        assert!(DiscoveryConfig::parse(b"[1,2]").is_err());
    }

    #[test]
    fn older_configs_without_newer_keys_get_tasmota_defaults() {
        // Tasmota 8.4 sent neither `if` nor `swn`; Home Assistant's tests keep such a config.
        let old = r#"{"ip":"192.168.15.10","dn":"Tasmota","fn":["Test","Beer","Milk","Four",null],"hn":"tasmota_49A3BC-0956","lk":1,"mac":"00000049A3BC","md":"Sonoff Basic","ofln":"Offline","onln":"Online","state":["OFF","ON","TOGGLE","HOLD"],"sw":"8.4.0.2","t":"tasmota_49A3BC","ft":"%topic%/%prefix%/","tp":["cmnd","stat","tele"],"rl":[0,0,0,0,0,0,0,0],"swc":[-1,-1,-1,-1,-1,-1,-1,-1],"btn":[0,0,0,0],"so":{"11":0,"13":0,"17":1,"20":0,"30":0,"68":0,"73":0,"80":0,"82":0},"ty":0,"lt_st":0,"ver":1}"#;
        let c = DiscoveryConfig::parse(old.as_bytes()).unwrap();
        assert_eq!(c.ifan, 0);
        assert!(c.swn.is_empty());
        assert_eq!(c.base(Prefix::Tele), "tasmota_49A3BC/tele/");
    }

    #[test]
    fn discovery_topics_name_the_mac_and_the_kind() {
        assert_eq!(discovery_topic("84F3EB487D21/config"), Some(DiscoveryTopic::Config("84F3EB487D21".into())));
        assert_eq!(discovery_topic("84f3eb487d21/sensors"), Some(DiscoveryTopic::Sensors("84F3EB487D21".into())));
        assert_eq!(discovery_topic("84F3EB487D21/other"), None);
        assert_eq!(discovery_topic("a/b/config"), None);
        assert_eq!(discovery_topic("config"), None);
    }

    #[test]
    fn a_captured_sensors_message_reads() {
        let s = SensorsDiscovery::parse(
            br#"{"sn":{"Time":"2021-02-24T10:40:13","DHT11":{"Temperature":19.0,"Humidity":16.0,"DewPoint":-7.5},"TempUnit":"C"},"ver":1}"#,
        )
        .unwrap();
        assert_eq!(s.sn["DHT11"]["Humidity"], 16.0);
        assert_eq!(s.ver, Some(1));
        assert!(SensorsDiscovery::parse(b"{\"ver\":1}").is_err());
    }
}
