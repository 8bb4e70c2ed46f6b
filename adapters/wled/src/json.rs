//! WLED's JSON API and its mapping to Hearth's model, as pure functions (no I/O).
//!
//! # Wire format
//!
//! - [`Message`] reads `GET /json` (state, info, effect and palette names), `GET /json/si` (state and
//!   info), and every text message of the WebSocket at `/ws`: `{"state": …, "info": …}` on connect
//!   and on every change, `{"success": true}` or `{"error": 3}` in answer to a command, `pong` in
//!   answer to `p`.
//! - [`State`] reads `/json/state`, also the answer to a `POST /json/state` with `"v": true`.
//! - [`Info`] reads `/json/info`.
//! - [`parse_names`] reads `/json/eff` and `/json/pal`, arrays of names whose index is the id.
//!
//! Unknown fields are ignored, every field is optional (a WebSocket push or an old firmware may
//! leave any out), and a payload that cannot be read gives an [`Error`] naming the payload and
//! what is wrong in it, never a panic.
//!
//! # Mapping
//!
//! A [`Controller`] is one WLED instance. Its id is `wled:<MAC>` (`info.mac`: lowercase hex
//! without separators; never the IP address, which DHCP may change). Features, in canonical units:
//!
//! | key | capability | from | conversion |
//! |---|---|---|---|
//! | `state` | `on_off` | `on` | |
//! | `brightness` | `brightness`, % | `bri` 0–255 | × 100 / 255 to one decimal: 128 → 50.2, 255 → 100.0 |
//! | `color` | `color` | main segment's `col[0]` | RGB → hue/saturation ([`Color::from_rgb`]); brightness and white dropped; only for segments with RGB |
//! | `color_temperature` | `color_temperature`, K | main segment's `cct` 0–255 | 1900 + 32 × cct, WLED's own Kelvin scale; only for segments with CCT |
//! | `effect` | `effect`, enum | main segment's `fx` | index ↔ name of `/json/eff`; `RSVD` and `-` left out |
//! | `palette` | `other`, enum | main segment's `pal` | index ↔ name of `/json/pal`, custom palettes `~ Custom 0 ~` …; only for segments with RGB |
//! | `transition` | `duration`, s (config) | `transition`, 100 ms units | ÷ 10 |
//! | `state_seg<N>`, `brightness_seg<N>`, `color_seg<N>`, `color_temperature_seg<N>`, `effect_seg<N>`, `palette_seg<N>` | as above, endpoint `seg<N>` | segment `N`'s `on`, `bri`, `col[0]`, `cct`, `fx`, `pal` | as above |
//! | `signal_strength` | `signal_strength`, dBm (diagnostic) | `info.wifi.rssi` | |
//!
//! The main segment is `state.mainseg`: the one WLED's own single-segment interfaces control.
//! Every other active segment is an endpoint `seg<N>`, `N` its WLED id. A segment's light
//! capabilities (`seg.lc`, else `info.leds.seglc`, else `info.leds.lc`; bit 0 RGB, bit 2 CCT)
//! decide whether it has `color`, `palette` and `color_temperature`.
//!
//! A [`CommandRequest`] becomes a [`StatePatch`], the body of `POST /json/state`:
//! `{"on": true, "bri": 128, "transition": 7, "seg": [{"id": 1, "col": [[255, 0, 0]], "fx": 9}]}`.
//! The request's `transition` goes as `tt` (this call only); the `transition` feature sets WLED's
//! default. `toggle` goes as WLED's own toggle, `"t"`.
//!
//! # Sources
//!
//! The WLED JSON API documentation (kno.wled.ge/interfaces/json-api, `wled/WLED-Docs`
//! `docs/interfaces/json-api.md` and `websocket.md`), WLED's `wled00/json.cpp` (how state and
//! info are written and read) and `Segment::setCCT` (Kelvin ↔ 0–255), and the captures named in
//! the tests.

use std::collections::BTreeMap;
use std::fmt;

use hearth_sdk::{
    Access, Capability, Category, Color, CommandRequest, DeviceDescriptor, DeviceId, Feature, PowerSource, Value,
    ValueType,
};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The adapter id: the prefix of every device id.
pub const ADAPTER: &str = "wled";

/// The manufacturer every WLED controller is announced with.
pub const MANUFACTURER: &str = "WLED";

// ------------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------------

/// What went wrong reading a payload or mapping a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A payload is not the JSON it should be.
    #[error("reading {what}: {source}")]
    Parse {
        /// Which payload (`/json/state`, a WebSocket message …).
        what: &'static str,
        /// serde's words, with the line and column.
        source: serde_json::Error,
    },
    /// A payload that should be a JSON object is something else.
    #[error("reading {what}: expected a JSON object, found {found}")]
    NotObject {
        /// Which payload.
        what: &'static str,
        /// What it is instead: `an array`, `a string` …
        found: &'static str,
    },
    /// A message that should carry `info` does not.
    #[error("{what} has no `info` object; the device's identity comes from it")]
    NoInfo {
        /// Which payload.
        what: &'static str,
    },
    /// `info.mac` is missing or not a MAC address.
    #[error(
        "info has no usable MAC address (`mac` is {found}); a WLED device's id comes from its MAC, never from its IP address"
    )]
    NoMac {
        /// What `mac` held, quoted, or `missing`.
        found: String,
    },
    /// A command names a feature the device does not have.
    #[error("the device has no feature `{feature}`; its features are: {}", available.join(", "))]
    UnknownFeature {
        /// The key asked for.
        feature: String,
        /// The device's feature keys.
        available: Vec<String>,
    },
    /// A command sets a feature that cannot be set.
    #[error("feature `{feature}` is read-only")]
    ReadOnly {
        /// The key asked for.
        feature: String,
    },
    /// A command gives a value of the wrong type.
    #[error("feature `{feature}` takes {expected}, not {got} {value}")]
    WrongType {
        /// The key.
        feature: String,
        /// What it takes.
        expected: &'static str,
        /// The kind of value given.
        got: &'static str,
        /// The value given, as JSON.
        value: String,
    },
    /// A command names an effect or palette the device does not have.
    #[error("feature `{feature}` has no {kind} named `{name}`; the {kind}s are: {}", sample(known))]
    UnknownName {
        /// The key.
        feature: String,
        /// `effect` or `palette`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names the device has.
        known: Vec<String>,
    },
    /// A command toggles a feature that is not an on/off switch, or also sets it.
    #[error("feature `{feature}` cannot be toggled; toggleable features are: {}", toggleable.join(", "))]
    NotToggleable {
        /// The key.
        feature: String,
        /// The device's toggleable feature keys.
        toggleable: Vec<String>,
    },
}

/// The first names of a long list, for messages.
fn sample(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = names.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

fn parse<T: de::DeserializeOwned>(what: &'static str, json: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(json).map_err(|source| Error::Parse { what, source })
}

/// Reads a payload that must be a JSON object (serde would take an array for a struct).
fn parse_object<T: de::DeserializeOwned>(what: &'static str, json: &[u8]) -> Result<T, Error> {
    let found = match json.trim_ascii_start().first() {
        None | Some(b'{') => return parse(what, json),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a bool",
        Some(b'n') => "null",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(_) => return parse(what, json),
    };
    Err(Error::NotObject { what, found })
}

// ------------------------------------------------------------------------------------------------
// Wire types
// ------------------------------------------------------------------------------------------------

/// `GET /json`, `GET /json/si`, or a text message of the WebSocket: any of state, info, effect
/// names and palette names, or the answer to a command.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Message {
    /// The light's state.
    pub state: Option<State>,
    /// The controller's description.
    pub info: Option<Info>,
    /// Effect names, the index being the effect id (`/json` only).
    pub effects: Option<Vec<String>>,
    /// Built-in palette names, the index being the palette id (`/json` only).
    pub palettes: Option<Vec<String>>,
    /// `true` in `{"success": true}`, the WebSocket's answer to a command.
    pub success: Option<bool>,
    /// An error code: `{"error": 3}` when the device is out of JSON buffers, `9` for a message
    /// split across WebSocket frames.
    pub error: Option<i64>,
    /// The message was the text `pong`, the answer to `p`.
    #[serde(skip)]
    pub pong: bool,
}

impl Message {
    /// Reads `/json`, `/json/si` or a WebSocket text message (also the plain `pong`).
    pub fn from_json(json: &[u8]) -> Result<Message, Error> {
        if json.trim_ascii() == b"pong" {
            return Ok(Message { pong: true, ..Message::default() });
        }
        parse_object("the WLED JSON message", json)
    }
}

/// `/json/state`: the light's state. Every field is optional, so a partial state reads too.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct State {
    /// On or off.
    pub on: Option<bool>,
    /// Master brightness 0–255; when off, the brightness it turns on with.
    pub bri: Option<u8>,
    /// Default crossfade time, in 100 ms units.
    pub transition: Option<u32>,
    /// The current preset, -1 for none.
    pub ps: Option<i32>,
    /// The current playlist, -1 for none.
    pub pl: Option<i32>,
    /// The main segment's id.
    pub mainseg: Option<u8>,
    /// The active segments (a single object reads as a one-segment list).
    #[serde(deserialize_with = "segments")]
    pub seg: Option<Vec<Segment>>,
    /// An error the device reports once.
    pub error: Option<i64>,
}

impl State {
    /// Reads `/json/state`.
    pub fn from_json(json: &[u8]) -> Result<State, Error> {
        parse_object("/json/state", json)
    }
}

/// One segment of `state.seg`: a part of the strip with its own colors and effect.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Segment {
    /// Its id; when left out, its index in `seg`.
    pub id: Option<u8>,
    /// First LED.
    pub start: Option<u32>,
    /// LED after the last; `0` (or not above `start`) means the segment is deleted.
    pub stop: Option<u32>,
    /// Number of LEDs.
    pub len: Option<u32>,
    /// On or off (since 0.10).
    pub on: Option<bool>,
    /// Segment brightness (opacity) 0–255.
    pub bri: Option<u8>,
    /// White color temperature: 0 (warmest) to 255 (coldest), or Kelvin.
    pub cct: Option<u16>,
    /// Primary, secondary and tertiary color.
    pub col: Option<Vec<SegmentColor>>,
    /// Effect id, the index into `/json/eff`.
    pub fx: Option<u16>,
    /// Effect speed 0–255.
    pub sx: Option<u8>,
    /// Effect intensity 0–255.
    pub ix: Option<u8>,
    /// Palette id.
    pub pal: Option<u16>,
    /// Selected.
    pub sel: Option<bool>,
    /// Reversed.
    pub rev: Option<bool>,
    /// Mirrored.
    pub mi: Option<bool>,
    /// Effect frozen.
    pub frz: Option<bool>,
    /// Its name, when the user gave one.
    pub n: Option<String>,
    /// Light capabilities: bit 0 RGB, bit 1 white channel, bit 2 color temperature.
    pub lc: Option<u8>,
}

/// One color of a segment's `col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentColor {
    /// `[r, g, b]`, `[r, g, b, w]`, or a hex string `RRGGBB` / `WWRRGGBB`.
    Rgbw(Rgbw),
    /// A color temperature in Kelvin (`0` is black); WLED takes it in commands.
    Kelvin(u32),
}

impl SegmentColor {
    /// The red, green and blue channels, if this is a channel color.
    pub fn rgb(&self) -> Option<(u8, u8, u8)> {
        match self {
            SegmentColor::Rgbw(c) => Some((c.r, c.g, c.b)),
            SegmentColor::Kelvin(_) => None,
        }
    }
}

/// Channel values of a color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgbw {
    /// Red 0–255.
    pub r: u8,
    /// Green 0–255.
    pub g: u8,
    /// Blue 0–255.
    pub b: u8,
    /// White 0–255, on strips with a white channel.
    pub w: Option<u8>,
}

impl<'de> Deserialize<'de> for SegmentColor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ColorVisitor;
        impl<'de> Visitor<'de> for ColorVisitor {
            type Value = SegmentColor;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a color: [r, g, b] or [r, g, b, w] with channels from 0 to 255, a hex string RRGGBB or WWRRGGBB, or Kelvin",
                )
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SegmentColor, A::Error> {
                let mut channels = [0u8; 4];
                let mut n = 0usize;
                while let Some(c) = seq.next_element::<u8>()? {
                    if let Some(slot) = channels.get_mut(n) {
                        *slot = c;
                    }
                    n += 1;
                }
                if n < 3 {
                    return Err(de::Error::invalid_length(n, &self));
                }
                let [r, g, b, w] = channels;
                Ok(SegmentColor::Rgbw(Rgbw { r, g, b, w: (n > 3).then_some(w) }))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<SegmentColor, E> {
                hex_color(s).map(SegmentColor::Rgbw).ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }

            fn visit_u64<E: de::Error>(self, k: u64) -> Result<SegmentColor, E> {
                u32::try_from(k).map(SegmentColor::Kelvin).map_err(|_| E::invalid_value(Unexpected::Unsigned(k), &self))
            }
        }
        d.deserialize_any(ColorVisitor)
    }
}

/// `RRGGBB` or `WWRRGGBB`, as WLED reads hex colors.
fn hex_color(s: &str) -> Option<Rgbw> {
    if !(s.len() == 6 || s.len() == 8) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(s, 16).ok()?;
    let [w, r, g, b] = v.to_be_bytes();
    Some(Rgbw { r, g, b, w: (s.len() == 8).then_some(w) })
}

/// `seg` as an array of segments or one segment object; `null` as absent.
fn segments<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Segment>>, D::Error> {
    struct SegmentsVisitor;
    impl<'de> Visitor<'de> for SegmentsVisitor {
        type Value = Option<Vec<Segment>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of segment objects, or one segment object")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut list = Vec::new();
            while let Some(s) = seq.next_element::<Segment>()? {
                list.push(s);
            }
            Ok(Some(list))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Segment::deserialize(de::value::MapAccessDeserializer::new(map)).map(|s| Some(vec![s]))
        }
    }
    d.deserialize_any(SegmentsVisitor)
}

/// A flag WLED writes as a bool in some versions and a number in others (`info.leds.cct` is
/// `true` in 0.13 and `4` in 0.15): non-zero is `true`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct FlagVisitor;
    impl<'de> Visitor<'de> for FlagVisitor {
        type Value = Option<bool>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("true, false or a number (0 is false)")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v != 0))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v != 0))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v != 0.0))
        }
    }
    d.deserialize_any(FlagVisitor)
}

/// `/json/info`: what the controller is. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Info {
    /// Firmware version: `0.15.0`, `16.0.1`, `14.5.1-dev` (a fork).
    pub ver: Option<String>,
    /// Build id, `YYMMDDB`.
    pub vid: Option<u64>,
    /// The name the user gave the controller.
    pub name: Option<String>,
    /// MAC address, lowercase hex without separators.
    pub mac: Option<String>,
    /// IP address; empty when not connected.
    pub ip: Option<String>,
    /// Platform: `esp8266`, `esp32`, `ESP32-S3` …
    pub arch: Option<String>,
    /// Version of the Arduino core or SDK.
    pub core: Option<String>,
    /// Vendor, `WLED` in standard builds.
    pub brand: Option<String>,
    /// Product, `FOSS` in standard builds.
    pub product: Option<String>,
    /// The LED setup.
    pub leds: Option<Leds>,
    /// Number of effects.
    pub fxcount: Option<u16>,
    /// Number of palettes, custom ones included.
    pub palcount: Option<u16>,
    /// Number of custom palettes (since 0.14).
    pub cpalcount: Option<u16>,
    /// Most custom palettes the device takes (since 16.0.0, which also moved their ids).
    pub cpalmax: Option<u16>,
    /// Number of palettes registered by usermods (since 16.0.0).
    pub umpalcount: Option<u16>,
    /// Names of the usermod palettes, the first being id 255 (since 16.0.0).
    pub umpalnames: Option<Vec<String>>,
    /// The Wi-Fi connection.
    pub wifi: Option<Wifi>,
    /// Free heap in bytes.
    pub freeheap: Option<u64>,
    /// Seconds since boot.
    pub uptime: Option<u64>,
    /// Receiving realtime data (UDP, E1.31 …).
    pub live: Option<bool>,
    /// Connected WebSocket clients, -1 without WebSocket support.
    pub ws: Option<i32>,
}

impl Info {
    /// Reads `/json/info`.
    pub fn from_json(json: &[u8]) -> Result<Info, Error> {
        parse_object("/json/info", json)
    }
}

/// `info.leds`: the LED setup.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Leds {
    /// Number of LEDs.
    pub count: Option<u32>,
    /// Estimated current in mA, 0 without the brightness limiter.
    pub pwr: Option<u32>,
    /// The limiter's budget in mA.
    pub maxpwr: Option<u32>,
    /// Frames per second.
    pub fps: Option<u32>,
    /// Most segments the build takes.
    pub maxseg: Option<u16>,
    /// Light capabilities of all active segments together (bit 0 RGB, bit 1 white, bit 2 CCT).
    pub lc: Option<u8>,
    /// Light capabilities of each active segment, in order.
    pub seglc: Option<Vec<u8>>,
    /// Has a four-channel bus (deprecated for `lc`).
    #[serde(deserialize_with = "flag")]
    pub rgbw: Option<bool>,
    /// Shows a white slider (deprecated for `lc`).
    #[serde(deserialize_with = "flag")]
    pub wv: Option<bool>,
    /// Supports color temperature (deprecated for `lc`).
    #[serde(deserialize_with = "flag")]
    pub cct: Option<bool>,
}

/// `info.wifi`: the Wi-Fi connection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Wifi {
    /// The access point's BSSID.
    pub bssid: Option<String>,
    /// Signal strength in dBm.
    pub rssi: Option<i32>,
    /// Signal quality 0–100 %.
    pub signal: Option<u8>,
    /// Channel.
    pub channel: Option<u16>,
}

/// Reads `/json/eff` or `/json/pal`: an array of names, the index being the id.
pub fn parse_names(json: &[u8]) -> Result<Vec<String>, Error> {
    parse("the name list (/json/eff or /json/pal)", json)
}

// ------------------------------------------------------------------------------------------------
// Conversions
// ------------------------------------------------------------------------------------------------

/// Brightness 0–255 in %, to one decimal: 128 is 50.2, 255 exactly 100.0.
pub fn percent_from_bri(bri: u8) -> f64 {
    (f64::from(bri) * 1000.0 / 255.0).round() / 10.0
}

/// % to brightness 0–255, rounded and clamped; the inverse of [`percent_from_bri`].
pub fn bri_from_percent(percent: f64) -> u8 {
    (percent * 255.0 / 100.0).round().clamp(0.0, 255.0) as u8
}

/// WLED's transition (100 ms units) in seconds.
pub fn seconds_from_transition(units: u32) -> f64 {
    f64::from(units) / 10.0
}

/// Seconds to WLED's transition units (100 ms), rounded and clamped to 0–65535.
pub fn transition_from_seconds(seconds: f64) -> u16 {
    (seconds * 10.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// Warmest color temperature on WLED's Kelvin scale (relative 0).
pub const CCT_MIN_K: f64 = 1900.0;
/// Kelvin per step of WLED's relative 0–255 scale (`Segment::setCCT`: `(K - 1900) >> 5`).
pub const CCT_STEP_K: f64 = 32.0;
/// Coldest color temperature on WLED's Kelvin scale (relative 255).
pub const CCT_MAX_K: f64 = CCT_MIN_K + 255.0 * CCT_STEP_K;

/// A segment's `cct` in Kelvin: 0–255 on WLED's scale (1900 K + 32 K per step), larger values
/// already Kelvin.
pub fn kelvin_from_cct(cct: u16) -> f64 {
    if cct <= 255 { CCT_MIN_K + f64::from(cct) * CCT_STEP_K } else { f64::from(cct) }
}

/// Kelvin to WLED's relative 0–255, rounded and clamped; the inverse of [`kelvin_from_cct`].
pub fn cct_from_kelvin(kelvin: f64) -> u8 {
    ((kelvin - CCT_MIN_K) / CCT_STEP_K).round().clamp(0.0, 255.0) as u8
}

/// A MAC address as WLED writes it (lowercase hex, no separators), from any common spelling.
pub fn normalize_mac(mac: &str) -> Option<String> {
    let hex: String =
        mac.chars().filter(|c| !matches!(c, ':' | '-' | '.' | ' ')).map(|c| c.to_ascii_lowercase()).collect();
    (hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && hex.bytes().any(|b| b != b'0')).then_some(hex)
}

/// The device id of the controller `info` describes: `wled:<mac>`.
pub fn device_id(info: &Info) -> Result<DeviceId, Error> {
    match info.mac.as_deref() {
        Some(mac) => normalize_mac(mac)
            .map(|m| DeviceId::new(ADAPTER, &m))
            .ok_or_else(|| Error::NoMac { found: format!("{mac:?}") }),
        None => Err(Error::NoMac { found: "missing".to_owned() }),
    }
}

/// The major number of a version string (`0.15.0` → 0, `16.0.1` → 16).
fn major_version(ver: &str) -> Option<u32> {
    ver.trim().trim_start_matches(['v', 'V']).split(['.', '-']).next()?.parse().ok()
}

// ------------------------------------------------------------------------------------------------
// Effect and palette names
// ------------------------------------------------------------------------------------------------

/// Names for ids, unique: a repeated name gets its id appended (`Chase (28)`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Names(Vec<(u16, String)>);

impl Names {
    fn push(&mut self, id: u16, name: &str) {
        let name = name.trim();
        if name.is_empty() || self.name(id).is_some() {
            return;
        }
        let unique = if self.id(name).is_some() { format!("{name} ({id})") } else { name.to_owned() };
        if self.id(&unique).is_none() {
            self.0.push((id, unique));
        }
    }

    fn name(&self, id: u16) -> Option<&str> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, n)| n.as_str())
    }

    fn id(&self, name: &str) -> Option<u16> {
        self.0.iter().find(|(_, n)| n == name).map(|(i, _)| *i)
    }

    fn list(&self) -> Vec<String> {
        self.0.iter().map(|(_, n)| n.clone()).collect()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Effects by id; WLED's placeholders for effects missing from a build (`RSVD`, `-`) are left out,
/// as its documentation asks.
fn effect_names(list: &[String]) -> Names {
    let mut names = Names::default();
    for (id, name) in list.iter().enumerate() {
        let Ok(id) = u16::try_from(id) else { break };
        if !matches!(name.trim(), "RSVD" | "-") {
            names.push(id, name);
        }
    }
    names
}

/// Where custom and usermod palettes sit, which changed in 16.0.0.
#[derive(Debug, Clone, Default, PartialEq)]
struct PaletteFacts {
    /// Number of custom palettes.
    custom: u16,
    /// Ids as in 16.0.0 and later: custom from 200 down, usermod from 255 down. Before: custom
    /// from 255 down.
    ids_since_16: bool,
    /// Usermod palette names (16.0.0 and later), the first being id 255.
    usermod: Vec<String>,
}

/// Palettes by id: the built-in ones of `/json/pal`, then custom palettes (named as WLED's UI
/// names them, `~ Custom 0 ~`) and usermod palettes.
fn palette_names(list: &[String], facts: &PaletteFacts) -> Names {
    let mut names = Names::default();
    for (id, name) in list.iter().enumerate() {
        let Ok(id) = u16::try_from(id) else { break };
        names.push(id, name);
    }
    let builtin = u16::try_from(list.len()).unwrap_or(u16::MAX);
    let first_custom: u16 = if facts.ids_since_16 { 200 } else { 255 };
    for i in 0..facts.custom.min(256) {
        match first_custom.checked_sub(i) {
            Some(id) if id >= builtin => names.push(id, &format!("~ Custom {i} ~")),
            _ => break,
        }
    }
    if facts.ids_since_16 {
        for (i, name) in facts.usermod.iter().enumerate() {
            match u16::try_from(i).ok().and_then(|i| 255u16.checked_sub(i)) {
                Some(id) if id > 200 => names.push(id, name),
                _ => break,
            }
        }
    }
    names
}

// ------------------------------------------------------------------------------------------------
// Commands
// ------------------------------------------------------------------------------------------------

/// On, off or toggle, as WLED takes them: `true`, `false`, `"t"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `true`.
    On,
    /// `false`.
    Off,
    /// `"t"`: the opposite of now.
    Toggle,
}

impl From<bool> for Switch {
    fn from(on: bool) -> Switch {
        if on { Switch::On } else { Switch::Off }
    }
}

impl Serialize for Switch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Switch::On => s.serialize_bool(true),
            Switch::Off => s.serialize_bool(false),
            Switch::Toggle => s.serialize_str("t"),
        }
    }
}

/// The body of `POST /json/state` (or a WebSocket text message) that carries out a command.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatePatch {
    /// Turn on, off, or toggle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<Switch>,
    /// Master brightness 0–255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bri: Option<u8>,
    /// New default transition, 100 ms units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition: Option<u16>,
    /// Transition of this call only, 100 ms units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tt: Option<u16>,
    /// Changes of segments, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seg: Vec<SegmentPatch>,
    /// `true` asks for the full state in the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<bool>,
}

impl StatePatch {
    /// Whether it changes nothing (a command that only asks for a refresh).
    pub fn is_empty(&self) -> bool {
        self.on.is_none() && self.bri.is_none() && self.transition.is_none() && self.seg.is_empty()
    }

    /// Its JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Changes of one segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SegmentPatch {
    /// The segment's id.
    pub id: u8,
    /// Turn on, off, or toggle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on: Option<Switch>,
    /// Segment brightness 0–255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bri: Option<u8>,
    /// Color temperature, relative 0–255.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cct: Option<u8>,
    /// Colors from the primary on; the rest are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<Vec<[u8; 3]>>,
    /// Effect id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fx: Option<u16>,
    /// Palette id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pal: Option<u16>,
}

// ------------------------------------------------------------------------------------------------
// The controller
// ------------------------------------------------------------------------------------------------

/// What a feature controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    On,
    Brightness,
    Color,
    ColorTemperature,
    Effect,
    Palette,
    Transition,
    Signal,
}

/// Where a feature lives: the top level of the state, or a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Top,
    Segment(u8),
}

#[derive(Debug, Clone, PartialEq)]
struct Binding {
    key: String,
    target: Target,
    kind: Kind,
}

/// What the descriptor needs from a segment.
#[derive(Debug, Clone, Default, PartialEq)]
struct SegmentFacts {
    name: Option<String>,
    lc: Option<u8>,
}

/// What the descriptor needs from the info.
#[derive(Debug, Clone, Default, PartialEq)]
struct InfoFacts {
    name: String,
    firmware: Option<String>,
    arch: Option<String>,
    lc: Option<u8>,
    seglc: Vec<u8>,
    legacy_cct: bool,
    signal: bool,
    palettes: PaletteFacts,
}

impl InfoFacts {
    fn apply(&mut self, info: &Info) {
        if let Some(name) = &info.name {
            name.trim().clone_into(&mut self.name);
        }
        if let Some(ver) = &info.ver {
            self.firmware = Some(ver.trim().to_owned()).filter(|v| !v.is_empty());
        }
        if let Some(arch) = &info.arch {
            self.arch = Some(arch.trim().to_owned()).filter(|a| !a.is_empty());
        }
        if let Some(leds) = &info.leds {
            if leds.lc.is_some() {
                self.lc = leds.lc;
            }
            if let Some(seglc) = &leds.seglc {
                seglc.clone_into(&mut self.seglc);
            }
            if let Some(cct) = leds.cct {
                self.legacy_cct = cct;
            }
        }
        if info.wifi.as_ref().is_some_and(|w| w.rssi.is_some()) {
            self.signal = true;
        }
        if let Some(n) = info.cpalcount {
            self.palettes.custom = n;
        }
        let since_16 = info.ver.as_deref().and_then(major_version).is_some_and(|m| m >= 16);
        if since_16 || info.cpalmax.is_some() || info.umpalcount.is_some() {
            self.palettes.ids_since_16 = true;
        }
        if let Some(names) = &info.umpalnames {
            names.clone_into(&mut self.palettes.usermod);
        }
    }
}

/// Color abilities of a segment.
#[derive(Debug, Clone, Copy)]
struct Caps {
    rgb: bool,
    cct: bool,
}

/// The features of a controller as they are built.
#[derive(Default)]
struct Builder {
    features: Vec<Feature>,
    bindings: Vec<Binding>,
}

impl Builder {
    fn add(&mut self, feature: Feature, target: Target, kind: Kind) {
        self.bindings.push(Binding { key: feature.key.clone(), target, kind });
        self.features.push(feature);
    }
}

/// One WLED controller: its identity, segments, effect and palette names, and the mapping
/// between its JSON and Hearth's model.
///
/// Build it from the first `/json` (or `/json/si` plus `/json/eff` and `/json/pal`), feed it every
/// later message ([`Controller::update`]), and announce [`Controller::descriptor`] again when an
/// update says it changed (a segment added, a name changed).
#[derive(Debug, Clone, PartialEq)]
pub struct Controller {
    id: DeviceId,
    info: InfoFacts,
    main: u8,
    segments: BTreeMap<u8, SegmentFacts>,
    effect_list: Vec<String>,
    palette_list: Vec<String>,
    effects: Names,
    palettes: Names,
    descriptor: DeviceDescriptor,
    bindings: Vec<Binding>,
}

impl Controller {
    /// The controller `info` describes, with no segments and no effect or palette names yet.
    pub fn new(info: &Info) -> Result<Controller, Error> {
        let id = device_id(info)?;
        let mut facts = InfoFacts::default();
        facts.apply(info);
        let mut controller = Controller {
            descriptor: DeviceDescriptor::new(id.clone(), "", Vec::new()),
            id,
            info: facts,
            main: 0,
            segments: BTreeMap::new(),
            effect_list: Vec::new(),
            palette_list: Vec::new(),
            effects: Names::default(),
            palettes: Names::default(),
            bindings: Vec::new(),
        };
        controller.rebuild();
        Ok(controller)
    }

    /// The controller of a `/json` or `/json/si` message, which must carry `info`.
    pub fn from_message(message: &Message) -> Result<Controller, Error> {
        let info = message.info.as_ref().ok_or(Error::NoInfo { what: "the WLED JSON message" })?;
        let mut controller = Controller::new(info)?;
        controller.update(message);
        Ok(controller)
    }

    /// Takes what a message says (state, info, names); `true` when the descriptor changed and
    /// must be announced again.
    pub fn update(&mut self, message: &Message) -> bool {
        self.change(|c| {
            if let Some(info) = &message.info {
                c.info.apply(info);
            }
            if let Some(state) = &message.state {
                c.apply_layout(state);
            }
            if let Some(effects) = &message.effects {
                effects.clone_into(&mut c.effect_list);
            }
            if let Some(palettes) = &message.palettes {
                palettes.clone_into(&mut c.palette_list);
            }
        })
    }

    /// Takes a state's segments and main segment; `true` when the descriptor changed.
    pub fn update_state(&mut self, state: &State) -> bool {
        self.change(|c| c.apply_layout(state))
    }

    /// Takes a new info; `true` when the descriptor changed. The id stays what it was.
    pub fn update_info(&mut self, info: &Info) -> bool {
        self.change(|c| c.info.apply(info))
    }

    /// Takes the effect names of `/json/eff`; `true` when the descriptor changed.
    pub fn set_effects(&mut self, names: &[String]) -> bool {
        self.change(|c| names.clone_into(&mut c.effect_list))
    }

    /// Takes the palette names of `/json/pal`; `true` when the descriptor changed.
    pub fn set_palettes(&mut self, names: &[String]) -> bool {
        self.change(|c| names.clone_into(&mut c.palette_list))
    }

    /// Its device id, `wled:<mac>`.
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The main segment's id.
    pub fn main_segment(&self) -> u8 {
        self.main
    }

    /// Its description: identity and features.
    pub fn descriptor(&self) -> &DeviceDescriptor {
        &self.descriptor
    }

    /// The values a state and an info report, feature key to value in canonical units. Either
    /// may be partial; only features of the descriptor are reported.
    pub fn values(&self, state: Option<&State>, info: Option<&Info>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        let mut put = |key: String, value: Value| {
            if self.binding(&key).is_some() {
                out.insert(key, value);
            }
        };
        if let Some(state) = state {
            if let Some(on) = state.on {
                put("state".into(), Value::Bool(on));
            }
            if let Some(bri) = state.bri {
                put("brightness".into(), Value::Number(percent_from_bri(bri)));
            }
            if let Some(t) = state.transition {
                put("transition".into(), Value::Number(seconds_from_transition(t)));
            }
            let main = state.mainseg.unwrap_or(self.main);
            for (index, seg) in state.seg.iter().flatten().enumerate() {
                let Some(id) = seg.id.or_else(|| u8::try_from(index).ok()) else { continue };
                if deleted(seg) {
                    continue;
                }
                let key = |base: &str| if id == main { base.to_owned() } else { format!("{base}_{}", endpoint(id)) };
                if id != main {
                    if let Some(on) = seg.on {
                        put(key("state"), Value::Bool(on));
                    }
                    if let Some(bri) = seg.bri {
                        put(key("brightness"), Value::Number(percent_from_bri(bri)));
                    }
                }
                if let Some((r, g, b)) = seg.col.as_ref().and_then(|c| c.first()).and_then(SegmentColor::rgb) {
                    put(key("color"), Value::Color(Color::from_rgb(r, g, b)));
                }
                if let Some(cct) = seg.cct {
                    put(key("color_temperature"), Value::Number(kelvin_from_cct(cct)));
                }
                if let Some(name) = seg.fx.and_then(|fx| self.effects.name(fx)) {
                    put(key("effect"), Value::Text(name.to_owned()));
                }
                if let Some(name) = seg.pal.and_then(|pal| self.palettes.name(pal)) {
                    put(key("palette"), Value::Text(name.to_owned()));
                }
            }
        }
        if let Some(rssi) = info.and_then(|i| i.wifi.as_ref()).and_then(|w| w.rssi) {
            put("signal_strength".into(), Value::Number(f64::from(rssi)));
        }
        out
    }

    /// The state patch that carries out a command. A command that only asks for a refresh gives
    /// an empty patch ([`StatePatch::is_empty`]): the adapter answers it by reading `/json/si`.
    pub fn patch(&self, request: &CommandRequest) -> Result<StatePatch, Error> {
        let mut top = StatePatch::default();
        let mut segs: BTreeMap<u8, SegmentPatch> = BTreeMap::new();
        for (key, value) in &request.set {
            let binding = self.binding(key).ok_or_else(|| self.unknown(key))?;
            let wrong = |expected: &'static str| Error::WrongType {
                feature: key.clone(),
                expected,
                got: value.kind(),
                value: value.to_string(),
            };
            let seg = |segs: &mut BTreeMap<u8, SegmentPatch>, id: u8| -> SegmentPatch {
                segs.remove(&id).unwrap_or(SegmentPatch { id, ..SegmentPatch::default() })
            };
            match (binding.kind, binding.target) {
                (Kind::Signal, _) => return Err(Error::ReadOnly { feature: key.clone() }),
                (Kind::On, target) => {
                    let on = Switch::from(value.as_bool().ok_or_else(|| wrong("true or false"))?);
                    match target {
                        Target::Top => top.on = Some(on),
                        Target::Segment(id) => {
                            let mut s = seg(&mut segs, id);
                            s.on = Some(on);
                            segs.insert(id, s);
                        }
                    }
                }
                (Kind::Brightness, target) => {
                    let bri = bri_from_percent(value.as_f64().ok_or_else(|| wrong("a number from 0 to 100"))?);
                    match target {
                        Target::Top => top.bri = Some(bri),
                        Target::Segment(id) => {
                            let mut s = seg(&mut segs, id);
                            s.bri = Some(bri);
                            segs.insert(id, s);
                        }
                    }
                }
                (Kind::Transition, _) => {
                    let t = value.as_f64().ok_or_else(|| wrong("a number of seconds"))?;
                    top.transition = Some(transition_from_seconds(t));
                }
                (Kind::Color, Target::Segment(id)) => {
                    let Value::Color(c) = value else {
                        return Err(wrong("a color {\"hue\": …, \"saturation\": …}"));
                    };
                    let (r, g, b) = c.to_rgb();
                    let mut s = seg(&mut segs, id);
                    s.col = Some(vec![[r, g, b]]);
                    segs.insert(id, s);
                }
                (Kind::ColorTemperature, Target::Segment(id)) => {
                    let k = value.as_f64().ok_or_else(|| wrong("a number of kelvin"))?;
                    let mut s = seg(&mut segs, id);
                    s.cct = Some(cct_from_kelvin(k));
                    segs.insert(id, s);
                }
                (Kind::Effect, Target::Segment(id)) => {
                    let name = value.as_str().ok_or_else(|| wrong("an effect name"))?;
                    let fx = self.effects.id(name).ok_or_else(|| Error::UnknownName {
                        feature: key.clone(),
                        kind: "effect",
                        name: name.to_owned(),
                        known: self.effects.list(),
                    })?;
                    let mut s = seg(&mut segs, id);
                    s.fx = Some(fx);
                    segs.insert(id, s);
                }
                (Kind::Palette, Target::Segment(id)) => {
                    let name = value.as_str().ok_or_else(|| wrong("a palette name"))?;
                    let pal = self.palettes.id(name).ok_or_else(|| Error::UnknownName {
                        feature: key.clone(),
                        kind: "palette",
                        name: name.to_owned(),
                        known: self.palettes.list(),
                    })?;
                    let mut s = seg(&mut segs, id);
                    s.pal = Some(pal);
                    segs.insert(id, s);
                }
                // Built only on segments.
                (Kind::Color | Kind::ColorTemperature | Kind::Effect | Kind::Palette, Target::Top) => {
                    return Err(self.unknown(key));
                }
            }
        }
        for key in &request.toggle {
            let binding = self.binding(key).ok_or_else(|| self.unknown(key))?;
            if binding.kind != Kind::On || request.set.contains_key(key) {
                return Err(Error::NotToggleable {
                    feature: key.clone(),
                    toggleable: self.bindings.iter().filter(|b| b.kind == Kind::On).map(|b| b.key.clone()).collect(),
                });
            }
            match binding.target {
                Target::Top => top.on = Some(Switch::Toggle),
                Target::Segment(id) => {
                    segs.entry(id).or_insert_with(|| SegmentPatch { id, ..SegmentPatch::default() }).on =
                        Some(Switch::Toggle);
                }
            }
        }
        if let Some(t) = request.transition {
            top.tt = Some(transition_from_seconds(t));
        }
        top.seg = segs.into_values().collect();
        Ok(top)
    }

    fn binding(&self, key: &str) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.key == key)
    }

    fn unknown(&self, key: &str) -> Error {
        Error::UnknownFeature {
            feature: key.to_owned(),
            available: self.bindings.iter().map(|b| b.key.clone()).collect(),
        }
    }

    fn change(&mut self, f: impl FnOnce(&mut Controller)) -> bool {
        let before = self.descriptor.clone();
        f(self);
        self.rebuild();
        self.descriptor != before
    }

    /// Takes the main segment and the segments of a state. A full state (WLED always writes
    /// `mainseg` in one) lists every active segment; a partial one adds the segments it gives
    /// bounds for and removes those it deletes (`stop` 0).
    fn apply_layout(&mut self, state: &State) {
        if let Some(main) = state.mainseg {
            self.main = main;
        }
        let Some(list) = &state.seg else { return };
        let full = state.mainseg.is_some();
        let mut next = if full { BTreeMap::new() } else { self.segments.clone() };
        for (index, seg) in list.iter().enumerate() {
            let Some(id) = seg.id.or_else(|| u8::try_from(index).ok()) else { continue };
            if deleted(seg) {
                next.remove(&id);
                continue;
            }
            if !full && seg.stop.is_none() && !next.contains_key(&id) {
                continue;
            }
            let facts = next.entry(id).or_default();
            if let Some(name) = &seg.n {
                facts.name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
            }
            if seg.lc.is_some() {
                facts.lc = seg.lc;
            }
        }
        self.segments = next;
    }

    /// What a segment can show: from its own `lc`, else `info.leds.seglc`, else `info.leds.lc`,
    /// else the deprecated flags (RGB assumed).
    fn caps(&self, id: u8) -> Caps {
        let lc = self
            .segments
            .get(&id)
            .and_then(|s| s.lc)
            .or_else(|| self.segments.keys().position(|k| *k == id).and_then(|i| self.info.seglc.get(i).copied()))
            .or(self.info.lc);
        match lc {
            Some(lc) => Caps { rgb: lc & 1 != 0, cct: lc & 4 != 0 },
            None => Caps { rgb: true, cct: self.info.legacy_cct },
        }
    }

    fn rebuild(&mut self) {
        self.effects = effect_names(&self.effect_list);
        self.palettes = palette_names(&self.palette_list, &self.info.palettes);
        let mut b = Builder::default();
        b.add(Feature::new("state", Capability::OnOff, ValueType::Bool, Access::ALL), Target::Top, Kind::On);
        b.add(
            Feature::new("brightness", Capability::Brightness, ValueType::range(0.0, 100.0, 1.0), Access::ALL),
            Target::Top,
            Kind::Brightness,
        );
        self.look_features(&mut b, self.main, None);
        b.add(
            Feature::new(
                "transition",
                Capability::Duration,
                ValueType::range(0.0, seconds_from_transition(u32::from(u16::MAX)), 0.1),
                Access::ALL,
            )
            .category(Category::Config)
            .label("Default transition"),
            Target::Top,
            Kind::Transition,
        );
        for (id, facts) in &self.segments {
            if *id == self.main {
                continue;
            }
            let label = facts.name.clone().unwrap_or_else(|| format!("Segment {id}"));
            let ep = endpoint(*id);
            b.add(
                Feature::new(&format!("state_{ep}"), Capability::OnOff, ValueType::Bool, Access::ALL)
                    .endpoint(&ep)
                    .label(&label),
                Target::Segment(*id),
                Kind::On,
            );
            b.add(
                Feature::new(
                    &format!("brightness_{ep}"),
                    Capability::Brightness,
                    ValueType::range(0.0, 100.0, 1.0),
                    Access::ALL,
                )
                .endpoint(&ep)
                .label(&format!("{label} brightness")),
                Target::Segment(*id),
                Kind::Brightness,
            );
            self.look_features(&mut b, *id, Some(&label));
        }
        if self.info.signal {
            b.add(
                Feature::new(
                    "signal_strength",
                    Capability::SignalStrength,
                    ValueType::number(),
                    Access { observe: true, set: false, get: true },
                )
                .category(Category::Diagnostic)
                .label("Wi-Fi signal"),
                Target::Top,
                Kind::Signal,
            );
        }
        let model = match &self.info.arch {
            Some(arch) => format!("WLED on {arch}"),
            None => "WLED".to_owned(),
        };
        let name = if self.info.name.is_empty() { model.clone() } else { self.info.name.clone() };
        self.descriptor = DeviceDescriptor {
            manufacturer: Some(MANUFACTURER.to_owned()),
            model: Some(model),
            firmware: self.info.firmware.clone(),
            power_source: PowerSource::Dc,
            ..DeviceDescriptor::new(self.id.clone(), &name, b.features)
        };
        self.bindings = b.bindings;
    }

    /// Color, color temperature, effect and palette of a segment: the device's own for the main
    /// segment (`label` `None`), on the segment's endpoint for the others.
    fn look_features(&self, b: &mut Builder, id: u8, label: Option<&str>) {
        let caps = self.caps(id);
        let ep = label.map(|_| endpoint(id));
        let make = |base: &str, capability: Capability, value_type: ValueType, what: &str| {
            let key = match &ep {
                Some(ep) => format!("{base}_{ep}"),
                None => base.to_owned(),
            };
            let feature = Feature::new(&key, capability, value_type, Access::ALL);
            match (&ep, label) {
                (Some(ep), Some(label)) => feature.endpoint(ep).label(&format!("{label} {what}")),
                _ if capability == Capability::Other => feature.label("Palette"),
                _ => feature,
            }
        };
        let target = Target::Segment(id);
        if caps.rgb {
            b.add(make("color", Capability::Color, ValueType::Color, "color"), target, Kind::Color);
        }
        if caps.cct {
            b.add(
                make(
                    "color_temperature",
                    Capability::ColorTemperature,
                    ValueType::range(CCT_MIN_K, CCT_MAX_K, CCT_STEP_K),
                    "color temperature",
                ),
                target,
                Kind::ColorTemperature,
            );
        }
        if !self.effects.is_empty() {
            b.add(
                make("effect", Capability::Effect, ValueType::enumeration(self.effects.list()), "effect"),
                target,
                Kind::Effect,
            );
        }
        if caps.rgb && !self.palettes.is_empty() {
            b.add(
                make("palette", Capability::Other, ValueType::enumeration(self.palettes.list()), "palette"),
                target,
                Kind::Palette,
            );
        }
    }
}

/// The endpoint of segment `id`: `seg<id>`.
fn endpoint(id: u8) -> String {
    format!("seg{id}")
}

/// Whether a segment object deletes its segment: `stop` 0, or not above `start`.
fn deleted(seg: &Segment) -> bool {
    match (seg.start, seg.stop) {
        (_, Some(0)) => true,
        (Some(start), Some(stop)) => stop <= start,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::check_value;
    use serde_json::Value as Json;

    // -------------------------------------------------------------------------------------------
    // Captured payloads. Whitespace is compacted; content is as published.
    // -------------------------------------------------------------------------------------------

    /// The sample `/json` response of the WLED JSON API documentation
    /// (kno.wled.ge/interfaces/json-api; wled/WLED-Docs docs/interfaces/json-api.md). Old style:
    /// no `mainseg`, no segment `id`, `on` or `bri`; RGBW colors; no `wifi`; "Chase" twice.
    const DOCS_JSON: &str = r#"{
      "state": {"on": true, "bri": 127, "transition": 7, "ps": -1, "pl": -1,
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0}, "udpn": {"send": false, "recv": true},
        "seg": [{"start": 0, "stop": 20, "len": 20, "col": [[255, 160, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
          "fx": 0, "sx": 127, "ix": 127, "pal": 0, "sel": true, "rev": false, "cln": -1}]},
      "info": {"ver": "0.15.0", "vid": 1903252,
        "leds": {"count": 20, "rgbw": true, "pwr": 0, "maxpwr": 65000, "maxseg": 16},
        "name": "WLED Light", "udpport": 21324, "live": false, "fxcount": 80, "palcount": 47, "arch": "esp8266",
        "core": "2_4_2", "freeheap": 13264, "uptime": 17985, "opt": 127, "brand": "WLED", "product": "DIY light",
        "mac": "60019423b441"},
      "effects": [
        "Solid", "Blink", "Breathe", "Wipe", "Wipe Random", "Random Colors", "Sweep", "Dynamic", "Colorloop", "Rainbow",
        "Scan", "Dual Scan", "Fade", "Chase", "Chase Rainbow", "Running", "Saw", "Twinkle", "Dissolve", "Dissolve Rnd",
        "Sparkle", "Dark Sparkle", "Sparkle+", "Strobe", "Strobe Rainbow", "Mega Strobe", "Blink Rainbow", "Android", "Chase", "Chase Random",
        "Chase Rainbow", "Chase Flash", "Chase Flash Rnd", "Rainbow Runner", "Colorful", "Traffic Light", "Sweep Random", "Running 2", "Red & Blue","Stream",
        "Scanner", "Lighthouse", "Fireworks", "Rain", "Merry Christmas", "Fire Flicker", "Gradient", "Loading", "In Out", "In In",
        "Out Out", "Out In", "Circus", "Halloween", "Tri Chase", "Tri Wipe", "Tri Fade", "Lightning", "ICU", "Multi Comet",
        "Dual Scanner", "Stream 2", "Oscillate", "Pride 2015", "Juggle", "Palette", "Fire 2012", "Colorwaves", "BPM", "Fill Noise", "Noise 1",
        "Noise 2", "Noise 3", "Noise 4", "Colortwinkle", "Lake", "Meteor", "Smooth Meteor", "Railway", "Ripple"],
      "palettes": [
        "Default", "Random Cycle", "Primary Color", "Based on Primary", "Set Colors", "Based on Set", "Party", "Cloud", "Lava", "Ocean",
        "Forest", "Rainbow", "Rainbow Bands", "Sunset", "Rivendell", "Breeze", "Red & Blue", "Yellowout", "Analogous", "Splash",
        "Pastel", "Sunset 2", "Beech", "Vintage", "Departure", "Landscape", "Beach", "Sherbet", "Hult", "Hult 64",
        "Drywet", "Jul", "Grintage", "Rewhi", "Tertiary", "Fire", "Icefire", "Cyane", "Light Pink", "Autumn",
        "Magenta", "Magred", "Yelmag", "Yelblu", "Orange & Teal", "Tiamat", "April Night"]
    }"#;

    /// `/json` of a WLED 0.15.0 ESP32 (Plain build from install.wled.me), captured by
    /// frenck/python-wled, tests/fixtures/versions/0.15.0.json.
    const V0_15_0_JSON: &str = r#"{
      "state": {"on": true, "bri": 128, "transition": 7, "ps": -1, "pl": -1, "ledmap": 0,
        "AudioReactive": {"on": false}, "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 30, "len": 30, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false,
          "bri": 255, "cct": 127, "set": 0, "col": [[255, 160, 0], [0, 0, 0], [0, 0, 0]], "fx": 0, "sx": 128, "ix": 128,
          "pal": 0, "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": false, "mi": false, "o1": false, "o2": false,
          "o3": false, "si": 0, "m12": 0}]},
      "info": {"ver": "0.15.0", "vid": 2412100, "cn": "Kōsen", "release": "ESP32",
        "leds": {"count": 30, "pwr": 470, "fps": 3, "maxpwr": 850, "maxseg": 32, "bootps": 0, "seglc": [1], "lc": 1,
          "rgbw": false, "wv": 0, "cct": 0},
        "str": false, "name": "WLED", "udpport": 21324, "simplifiedui": false, "live": false, "liveseg": -1, "lm": "",
        "lip": "", "ws": 0, "fxcount": 187, "palcount": 71, "cpalcount": 0, "maps": [{"id": 0}],
        "wifi": {"bssid": "82:22:1D:9A:7F:66", "rssi": -56, "signal": 88, "channel": 6, "ap": false},
        "fs": {"u": 12, "t": 983, "pmt": 0}, "ndc": 1, "arch": "esp32", "core": "v3.3.6-16-gcc5440f6a2", "clock": 240,
        "flash": 4, "lwip": 0, "freeheap": 180364, "uptime": 12, "time": "1970-1-1, 00:00:12",
        "u": {"AudioReactive": ["\u003Cbutton class=\"btn btn-xs\" onclick=\"requestJson({AudioReactive:{enabled:true}});\"\u003E\u003Ci class=\"icons off\"\u003E&#xe08f;\u003C/i\u003E\u003C/button\u003E"]},
        "opt": 79, "brand": "WLED", "product": "FOSS", "mac": "8813bf0455f0", "ip": "10.10.10.120"},
      "effects": ["Solid", "Blink", "Breathe", "Wipe", "Wipe Random", "Random Colors", "Sweep", "Dynamic", "Colorloop",
        "Rainbow", "Scan", "Scan Dual", "Fade", "Theater", "Theater Rainbow", "Running", "Saw", "Twinkle", "Dissolve",
        "Dissolve Rnd", "Sparkle", "Sparkle Dark", "Sparkle+", "Strobe", "Strobe Rainbow", "Strobe Mega", "Blink Rainbow",
        "Android", "Chase", "Chase Random", "Chase Rainbow", "Chase Flash", "Chase Flash Rnd", "Rainbow Runner",
        "Colorful", "Traffic Light", "Sweep Random", "Chase 2", "Aurora", "Stream", "Scanner", "Lighthouse", "Fireworks",
        "Rain", "Tetrix", "Fire Flicker", "Gradient", "Loading", "Rolling Balls", "Fairy", "Two Dots", "Fairytwinkle",
        "Running Dual", "RSVD", "Chase 3", "Tri Wipe", "Tri Fade", "Lightning", "ICU", "Multi Comet", "Scanner Dual",
        "Stream 2", "Oscillate", "Pride 2015", "Juggle", "Palette", "Fire 2012", "Colorwaves", "Bpm", "Fill Noise",
        "Noise 1", "Noise 2", "Noise 3", "Noise 4", "Colortwinkles", "Lake", "Meteor", "Meteor Smooth", "Railway",
        "Ripple", "Twinklefox", "Twinklecat", "Halloween Eyes", "Solid Pattern", "Solid Pattern Tri", "Spots",
        "Spots Fade", "Glitter", "Candle", "Fireworks Starburst", "Fireworks 1D", "Bouncing Balls", "Sinelon",
        "Sinelon Dual", "Sinelon Rainbow", "Popcorn", "Drip", "Plasma", "Percent", "Ripple Rainbow", "Heartbeat",
        "Pacifica", "Candle Multi", "Solid Glitter", "Sunrise", "Phased", "Twinkleup", "Noise Pal", "Sine",
        "Phased Noise", "Flow", "Chunchun", "Dancing Shadows", "Washing Machine", "Rotozoomer", "Blends",
        "TV Simulator", "Dynamic Smooth", "Spaceships", "Crazy Bees", "Ghost Rider", "Blobs", "Scrolling Text",
        "Drift Rose", "Distortion Waves", "Soap", "Octopus", "Waving Cell", "Pixels", "Pixelwave", "Juggles",
        "Matripix", "Gravimeter", "Plasmoid", "Puddles", "Midnoise", "Noisemeter", "Freqwave", "Freqmatrix", "GEQ",
        "Waterfall", "Freqpixels", "RSVD", "Noisefire", "Puddlepeak", "Noisemove", "Noise2D", "Perlin Move",
        "Ripple Peak", "Firenoise", "Squared Swirl", "RSVD", "DNA", "Matrix", "Metaballs", "Freqmap", "Gravcenter",
        "Gravcentric", "Gravfreq", "DJ Light", "Funky Plank", "RSVD", "Pulser", "Blurz", "Drift", "Waverly",
        "Sun Radiation", "Colored Bursts", "Julia", "RSVD", "RSVD", "RSVD", "Game Of Life", "Tartan", "Polar Lights",
        "Swirl", "Lissajous", "Frizzles", "Plasma Ball", "Flow Stripe", "Hiphotic", "Sindots", "DNA Spiral",
        "Black Hole", "Wavesins", "Rocktaves", "Akemi"],
      "palettes": ["Default", "* Random Cycle", "* Color 1", "* Colors 1&2", "* Color Gradient", "* Colors Only",
        "Party", "Cloud", "Lava", "Ocean", "Forest", "Rainbow", "Rainbow Bands", "Sunset", "Rivendell", "Breeze",
        "Red & Blue", "Yellowout", "Analogous", "Splash", "Pastel", "Sunset 2", "Beach", "Vintage", "Departure",
        "Landscape", "Beech", "Sherbet", "Hult", "Hult 64", "Drywet", "Jul", "Grintage", "Rewhi", "Tertiary", "Fire",
        "Icefire", "Cyane", "Light Pink", "Autumn", "Magenta", "Magred", "Yelmag", "Yelblu", "Orange & Teal", "Tiamat",
        "April Night", "Orangery", "C9", "Sakura", "Aurora", "Atlantica", "C9 2", "C9 New", "Temperature", "Aurora 2",
        "Retro Clown", "Candy", "Toxy Reaf", "Fairy Reaf", "Semi Blue", "Pink Candy", "Red Reaf", "Aqua Flash",
        "Yelblu Hot", "Lite Light", "Red Flash", "Blink Red", "Red Shift", "Red Tide", "Candy2"]
    }"#;

    /// State and info of a two-segment 0.14.4 controller whose main segment is 1
    /// (home-assistant/core, tests/components/wled/fixtures/rgb.json; its effect and palette
    /// lists match 0.15.0's at the ids used here).
    const TWO_SEGMENTS_SI: &str = r#"{
      "state": {"on": true, "bri": 128, "transition": 7, "ps": -1, "pl": -1,
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 1,
        "seg": [
          {"id": 0, "start": 0, "stop": 15, "len": 15, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false, "bri": 255,
           "cct": 127, "set": 0, "col": [[127, 172, 255], [0, 0, 0], [0, 0, 0]], "fx": 0, "sx": 32, "ix": 128, "pal": 0,
           "c1": 128, "c2": 128, "c3": 16, "sel": false, "rev": false, "mi": false, "o1": false, "o2": false, "o3": false,
           "si": 0, "m12": 0},
          {"id": 1, "start": 15, "stop": 30, "len": 15, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false, "bri": 255,
           "cct": 127, "set": 0, "col": [[255, 170, 0], [0, 0, 0], [0, 0, 0]], "fx": 3, "sx": 16, "ix": 64, "pal": 1,
           "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": true, "mi": false, "o1": false, "o2": false, "o3": false,
           "si": 0, "m12": 0}]},
      "info": {"ver": "0.14.4", "vid": 2405180,
        "leds": {"count": 30, "pwr": 515, "fps": 5, "maxpwr": 850, "maxseg": 32, "seglc": [1, 1], "lc": 1,
          "rgbw": false, "wv": 0, "cct": 0},
        "str": false, "name": "WLED RGB Light", "udpport": 21324, "live": false, "liveseg": -1, "lm": "", "lip": "",
        "ws": -1, "fxcount": 187, "palcount": 71, "cpalcount": 0, "maps": [{"id": 0}],
        "wifi": {"bssid": "AA:AA:AA:AA:AA:BB", "rssi": -43, "signal": 100, "channel": 11},
        "fs": {"u": 12, "t": 983, "pmt": 1718827787}, "ndc": 1, "arch": "esp32", "core": "v3.3.6-16-gcc5440f6a2",
        "lwip": 0, "freeheap": 198384, "uptime": 966, "time": "2024-6-19, 20:10:38", "opt": 79, "brand": "WLED",
        "product": "FOSS", "mac": "aabbccddeeff", "ip": "127.0.0.1"}
    }"#;

    /// State and info of a 0.15.0-b3 RGBW strip with white-spectrum (CCT) control and four custom
    /// palettes (home-assistant/core, tests/components/wled/fixtures/cct.json).
    const CCT_SI: &str = r#"{
      "state": {"on": true, "bri": 255, "transition": 7, "ps": 2, "pl": -1,
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 178, "len": 178, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false,
          "bri": 255, "cct": 53, "set": 0, "col": [[0, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 0]], "fx": 0, "sx": 128,
          "ix": 128, "pal": 0, "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": false, "mi": false, "o1": false,
          "o2": false, "o3": false, "si": 0, "m12": 0}]},
      "info": {"ver": "0.15.0-b3", "vid": 2405180, "cn": "Kōsen", "release": "ESP32",
        "leds": {"count": 178, "pwr": 0, "fps": 0, "maxpwr": 0, "maxseg": 32, "bootps": 1, "seglc": [7], "lc": 7,
          "rgbw": true, "wv": 2, "cct": 4},
        "str": false, "name": "WLED CCT light", "udpport": 21324, "simplifiedui": false, "live": false, "liveseg": -1,
        "lm": "", "lip": "", "ws": 1, "fxcount": 187, "palcount": 75, "cpalcount": 4, "maps": [{"id": 0}],
        "wifi": {"bssid": "AA:AA:AA:AA:AA:BB", "rssi": -44, "signal": 100, "channel": 11},
        "fs": {"u": 20, "t": 983, "pmt": 1721752272}, "ndc": 1, "arch": "esp32", "core": "v3.3.6-16-gcc5440f6a2",
        "clock": 240, "flash": 4, "lwip": 0, "freeheap": 164804, "uptime": 79769, "time": "2024-7-24, 14:34:00",
        "opt": 79, "brand": "WLED", "product": "FOSS", "mac": "aabbccddeeff", "ip": "127.0.0.1"}
    }"#;

    /// State and info of an RGBW strip (home-assistant/core, tests/components/wled/fixtures/rgbw.json).
    const RGBW_SI: &str = r#"{
      "state": {"on": true, "bri": 128, "transition": 7, "ps": -1, "pl": -1,
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 30, "len": 30, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false,
          "bri": 255, "cct": 127, "set": 0, "col": [[255, 0, 0, 139], [0, 0, 0, 0], [0, 0, 0, 0]], "fx": 0, "sx": 128,
          "ix": 128, "pal": 0, "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": false, "mi": false, "o1": false,
          "o2": false, "o3": false, "si": 0, "m12": 0}]},
      "info": {"ver": "0.99.0b1", "vid": 2405180,
        "leds": {"count": 30, "pwr": 536, "fps": 5, "maxpwr": 850, "maxseg": 32, "seglc": [3], "lc": 3, "rgbw": true,
          "wv": 0, "cct": 0},
        "str": false, "name": "WLED RGBW Light", "udpport": 21324, "live": false, "liveseg": -1, "lm": "", "lip": "",
        "ws": -1, "fxcount": 187, "palcount": 71, "cpalcount": 0, "maps": [{"id": 0}],
        "wifi": {"bssid": "AA:AA:AA:AA:AA:BB", "rssi": -44, "signal": 100, "channel": 11},
        "fs": {"u": 12, "t": 983, "pmt": 0}, "ndc": 1, "arch": "esp32", "core": "v3.3.6-16-gcc5440f6a2", "lwip": 0,
        "freeheap": 196960, "uptime": 461, "time": "1970-1-1, 00:07:41", "opt": 79, "brand": "WLED",
        "product": "FOSS", "mac": "aabbccddeeff", "ip": "127.0.0.1"}
    }"#;

    /// State and info of a 0.12.0-b2 ESP8266 as its WebSocket pushes them: booleans for the
    /// deprecated LED flags, no `lc` (home-assistant/core, tests/components/wled/fixtures/rgb_websocket.json).
    const WEBSOCKET_0_12: &str = r#"{
      "state": {"on": true, "bri": 255, "transition": 7, "ps": -1, "pl": -1,
        "ccnf": {"min": 1, "max": 5, "time": 12},
        "nl": {"on": false, "dur": 60, "fade": true, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 13, "len": 13, "grp": 1, "spc": 0, "on": true, "bri": 255,
          "col": [[255, 181, 218], [0, 0, 0], [0, 0, 0]], "fx": 0, "sx": 43, "ix": 128, "pal": 2, "sel": true,
          "rev": false, "mi": false}]},
      "info": {"ver": "0.12.0-b2", "version_latest_stable": "0.11.0", "version_latest_beta": "0.12.0-b2", "vid": 2103220,
        "leds": {"count": 13, "rgbw": false, "wv": false, "pin": [2], "pwr": 266, "fps": 2, "maxpwr": 1000,
          "maxseg": 12, "seglock": false},
        "str": false, "name": "WLED WebSocket", "udpport": 21324, "live": false, "lm": "", "lip": "", "ws": 0,
        "fxcount": 118, "palcount": 56,
        "wifi": {"bssid": "AA:AA:AA:AA:AA:BB", "rssi": -68, "signal": 64, "channel": 6},
        "fs": {"u": 40, "t": 1024, "pmt": 1623156685}, "ndc": 1, "arch": "esp8266", "core": "2_7_4_7", "lwip": 1,
        "freeheap": 22752, "uptime": 258411, "opt": 127, "brand": "WLED", "product": "FOSS", "mac": "aabbccddeeff"}
    }"#;

    /// State and info of WLED 16.0.1 on an ESP32: new version numbering, new palette ids
    /// (`cpalmax`), a preset active (frenck/python-wled, tests/fixtures/versions/16.0.1.json).
    const V16_0_1_SI: &str = r#"{
      "state": {"on": true, "bri": 255, "transition": 30, "bs": 0, "ps": 3, "pl": -1, "ledmap": 0,
        "AudioReactive": {"on": false}, "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 480, "len": 480, "grp": 1, "spc": 0, "of": 0, "on": true, "frz": false,
          "bri": 255, "cct": 127, "set": 0, "lc": 1, "col": [[0, 0, 255], [0, 0, 0], [0, 0, 0]], "fx": 0, "sx": 128,
          "ix": 128, "pal": 0, "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": false, "mi": false, "o1": false,
          "o2": false, "o3": false, "si": 0, "m12": 0, "bm": 0}]},
      "info": {"ver": "16.0.1", "vid": 2606300, "cn": "Niji", "release": "ESP32", "repo": "wled/WLED",
        "deviceId": "3da565f16dd0f544cce266b7c12581748e500291b8",
        "leds": {"count": 480, "pwr": 850, "fps": 43, "maxpwr": 850, "maxseg": 32, "bootps": 0, "seglc": [1], "lc": 1,
          "rgbw": false, "wv": 0, "cct": 0},
        "str": false, "name": "WLED", "udpport": 21324, "simplifiedui": false, "live": false, "liveseg": -1, "lm": "",
        "lip": "", "ws": 0, "fxcount": 220, "palcount": 72, "cpalcount": 0, "umpalcount": 0, "cpalmax": 129,
        "maps": [{"id": 0}], "wifi": {"bssid": "82:22:1D:9A:7F:66", "rssi": -55, "signal": 90, "channel": 6, "ap": false},
        "fs": {"u": 20, "t": 983, "pmt": 163}, "ndc": -1, "arch": "esp32", "core": "4.4.8.240628", "clock": 240,
        "flash": 8, "lwip": 0, "bootloaderSHA256": "b97d154765ea69ca895a33de59adb4b322509aa2a3e2c7c8409b31cbc1bcc2cd",
        "freeheap": 113748, "uptime": 202, "time": "1970-1-1, 00:03:22", "um": [32],
        "u": {"AudioReactive": ["<button class=\"btn btn-xs\" onclick=\"requestJson({AudioReactive:{enabled:true}});\"><i class=\"icons off\">&#xe08f;</i></button>"]},
        "opt": 79, "brand": "WLED", "product": "FOSS", "mac": "8813bf0455f0", "ip": "10.10.10.120"}
    }"#;

    /// State and info of the WLED-MM fork 14.5.1-dev on an ESP32-S3 driving a 64×64 matrix, its
    /// segment on the first custom palette (id 255) (frenck/python-wled,
    /// tests/fixtures/forks/wled-mm-14.5.1-dev.json).
    const WLED_MM_SI: &str = r#"{
      "state": {"on": true, "bri": 64, "transition": 7, "ps": -1, "pl": -1, "AudioReactive": {"on": false},
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": true, "sgrp": 1, "rgrp": 1}, "lor": 0, "mainseg": 0,
        "seg": [{"id": 0, "start": 0, "stop": 64, "startY": 0, "stopY": 64, "len": 64, "grp": 1, "spc": 0, "of": 0,
          "on": true, "frz": false, "bri": 255, "cct": 127, "set": 0, "col": [[255, 160, 0], [0, 0, 0], [0, 0, 0]],
          "fx": 0, "sx": 128, "ix": 128, "pal": 255, "c1": 128, "c2": 128, "c3": 16, "sel": true, "rev": false,
          "mi": false, "rY": false, "mY": false, "tp": false, "o1": false, "o2": false, "o3": false, "si": 0, "m12": 0}],
        "ledmap": 0},
      "info": {"ver": "14.5.1-dev", "vid": 2501170, "release": "Apollo_M-1-Rev2", "rel": "Apollo_M-1-Rev2",
        "leds": {"count": 4096, "countP": 4096, "pwr": 0, "fps": 67, "maxpwr": 0, "maxseg": 32,
          "matrix": {"w": 64, "h": 64}, "seglc": [1], "lc": 1, "rgbw": false, "wv": 0, "cct": 0},
        "str": false, "name": "WLED", "udpport": 21324, "live": false, "liveseg": -1, "lm": "", "lip": "", "ws": 1,
        "fxcount": 228, "palcount": 75, "cpalcount": 1, "maps": [{"id": 0}], "outputs": [4096],
        "wifi": {"bssid": "82:22:1D:9A:7F:66", "rssi": -54, "signal": 92, "channel": 6},
        "fs": {"u": 16, "t": 4063, "pmt": 0}, "ndc": 0, "arch": "ESP32-S3", "core": "v4.4.6-dirty", "clock": 240,
        "flash": 16, "lwip": 0, "totalheap": 297676, "getflash": 16777216, "freeheap": 119936, "freestack": 5768,
        "minfreeheap": 97452, "e32model": "ESP32-S3 rev.0", "e32cores": 2, "uptime": 38, "opt": 9, "brand": "WLED",
        "product": "MoonModules", "mac": "8813bf0455f0", "ip": "10.10.10.120"}
    }"#;

    /// Every captured payload, for the tests that run over all of them.
    const ALL: [&str; 8] =
        [DOCS_JSON, V0_15_0_JSON, TWO_SEGMENTS_SI, CCT_SI, RGBW_SI, WEBSOCKET_0_12, V16_0_1_SI, WLED_MM_SI];

    // -------------------------------------------------------------------------------------------
    // Helpers
    // -------------------------------------------------------------------------------------------

    fn message(json: &str) -> Message {
        Message::from_json(json.as_bytes()).unwrap()
    }

    /// The 0.15.0 effect and palette names, for captures that carry only state and info.
    fn names() -> (Vec<String>, Vec<String>) {
        let m = message(V0_15_0_JSON);
        (m.effects.unwrap(), m.palettes.unwrap())
    }

    /// A controller of a capture; state-and-info captures get the 0.15.0 names.
    fn controller(json: &str) -> (Controller, Message) {
        let mut m = message(json);
        if m.effects.is_none() {
            let (effects, palettes) = names();
            m.effects = Some(effects);
            m.palettes = Some(palettes);
        }
        (Controller::from_message(&m).unwrap(), m)
    }

    fn values_of(json: &str) -> (Controller, BTreeMap<String, Value>) {
        let (c, m) = controller(json);
        let values = c.values(m.state.as_ref(), m.info.as_ref());
        (c, values)
    }

    fn color(hue: f64, saturation: f64) -> Value {
        Value::Color(Color { hue, saturation })
    }

    fn map(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn keys(c: &Controller) -> Vec<&str> {
        c.descriptor().features.iter().map(|f| f.key.as_str()).collect()
    }

    fn enum_values<'a>(c: &'a Controller, key: &str) -> &'a [String] {
        match &c.descriptor().feature(key).unwrap().value_type {
            ValueType::Enum { values } => values,
            other => panic!("{key} is {other:?}"),
        }
    }

    fn request(json: &str) -> CommandRequest {
        serde_json::from_str(json).unwrap()
    }

    fn patch_json(c: &Controller, req: &str) -> Json {
        serde_json::from_str(&c.patch(&request(req)).unwrap().to_json()).unwrap()
    }

    // -------------------------------------------------------------------------------------------
    // Captures → identity, descriptor, values
    // -------------------------------------------------------------------------------------------

    #[test]
    fn the_documentation_sample_maps_every_value() {
        let (c, values) = values_of(DOCS_JSON);
        let d = c.descriptor();
        assert_eq!(d.id.as_str(), "wled:60019423b441");
        assert_eq!(d.name, "WLED Light");
        assert_eq!(d.manufacturer.as_deref(), Some("WLED"));
        assert_eq!(d.model.as_deref(), Some("WLED on esp8266"));
        assert_eq!(d.firmware.as_deref(), Some("0.15.0"));
        assert_eq!(d.power_source, PowerSource::Dc);
        // No `lc` and no CCT flag: RGB only. No `wifi`: no signal.
        assert_eq!(keys(&c), ["state", "brightness", "color", "effect", "palette", "transition"]);
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(49.8)), // 127 / 255
                ("transition", Value::Number(0.7)),  // 7 × 100 ms
                ("color", color(37.65, 100.0)),      // [255, 160, 0, 0]
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("Default".into())),
            ])
        );
    }

    #[test]
    fn repeated_effect_names_get_their_id() {
        let (c, _) = controller(DOCS_JSON);
        let effects = enum_values(&c, "effect");
        assert_eq!(effects.len(), 80);
        assert_eq!(effects[13], "Chase");
        assert_eq!(effects[28], "Chase (28)");
        assert_eq!(effects[30], "Chase Rainbow (30)");
        assert_eq!(
            patch_json(&c, r#"{"set": {"effect": "Chase (28)"}}"#),
            serde_json::json!({"seg": [{"id": 0, "fx": 28}]})
        );
        assert_eq!(
            patch_json(&c, r#"{"set": {"effect": "Chase"}}"#),
            serde_json::json!({"seg": [{"id": 0, "fx": 13}]})
        );
        let state = State::from_json(br#"{"seg": [{"id": 0, "fx": 30}]}"#).unwrap();
        assert_eq!(c.values(Some(&state), None), map(&[("effect", Value::Text("Chase Rainbow (30)".into()))]));
    }

    #[test]
    fn a_0_15_0_controller_maps_every_value() {
        let (c, values) = values_of(V0_15_0_JSON);
        let d = c.descriptor();
        assert_eq!(d.id.as_str(), "wled:8813bf0455f0");
        assert_eq!(d.name, "WLED");
        assert_eq!(d.model.as_deref(), Some("WLED on esp32"));
        assert_eq!(d.firmware.as_deref(), Some("0.15.0"));
        assert_eq!(keys(&c), ["state", "brightness", "color", "effect", "palette", "transition", "signal_strength"]);
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(50.2)), // 128 / 255
                ("transition", Value::Number(0.7)),
                ("color", color(37.65, 100.0)), // [255, 160, 0]
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("Default".into())),
                ("signal_strength", Value::Number(-56.0)), // dBm
            ])
        );
        // 187 effects less 7 `RSVD` placeholders; ids stay WLED's.
        let effects = enum_values(&c, "effect");
        assert_eq!(effects.len(), 180);
        assert!(!effects.iter().any(|e| e == "RSVD"));
        assert_eq!(patch_json(&c, r#"{"set": {"effect": "Chase 3"}}"#)["seg"][0]["fx"], 54);
        assert_eq!(patch_json(&c, r#"{"set": {"effect": "Akemi"}}"#)["seg"][0]["fx"], 186);
        assert_eq!(enum_values(&c, "palette").len(), 71);
        // Features in their canonical units and categories.
        let f = |k: &str| d.feature(k).unwrap();
        assert_eq!(f("brightness").unit.as_deref(), Some("%"));
        assert_eq!(f("brightness").value_type, ValueType::range(0.0, 100.0, 1.0));
        assert_eq!(f("transition").unit.as_deref(), Some("s"));
        assert_eq!(f("transition").category, Category::Config);
        assert_eq!(f("signal_strength").unit.as_deref(), Some("dBm"));
        assert_eq!(f("signal_strength").category, Category::Diagnostic);
        assert!(!f("signal_strength").access.set);
        assert_eq!(f("palette").capability, Capability::Other);
        assert_eq!(f("effect").capability, Capability::Effect);
    }

    #[test]
    fn segments_beyond_the_main_one_are_endpoints() {
        let (c, values) = values_of(TWO_SEGMENTS_SI);
        assert_eq!(c.main_segment(), 1);
        assert_eq!(
            keys(&c),
            [
                "state",
                "brightness",
                "color",
                "effect",
                "palette",
                "transition",
                "state_seg0",
                "brightness_seg0",
                "color_seg0",
                "effect_seg0",
                "palette_seg0",
                "signal_strength"
            ]
        );
        let seg0 = c.descriptor().feature("color_seg0").unwrap();
        assert_eq!(seg0.endpoint.as_deref(), Some("seg0"));
        assert_eq!(seg0.label.as_deref(), Some("Segment 0 color"));
        assert_eq!(c.descriptor().feature("state_seg0").unwrap().label.as_deref(), Some("Segment 0"));
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(50.2)),
                ("transition", Value::Number(0.7)),
                // Main segment 1: [255, 170, 0], Wipe, * Random Cycle.
                ("color", color(40.0, 100.0)),
                ("effect", Value::Text("Wipe".into())),
                ("palette", Value::Text("* Random Cycle".into())),
                // Segment 0: on, opacity 255, [127, 172, 255], Solid, Default.
                ("state_seg0", Value::Bool(true)),
                ("brightness_seg0", Value::Number(100.0)),
                ("color_seg0", color(218.91, 50.2)),
                ("effect_seg0", Value::Text("Solid".into())),
                ("palette_seg0", Value::Text("Default".into())),
                ("signal_strength", Value::Number(-43.0)),
            ])
        );
    }

    #[test]
    fn a_cct_strip_has_color_temperature_and_custom_palettes() {
        let (c, values) = values_of(CCT_SI);
        assert_eq!(c.descriptor().name, "WLED CCT light");
        assert_eq!(c.descriptor().firmware.as_deref(), Some("0.15.0-b3"));
        assert_eq!(
            keys(&c),
            ["state", "brightness", "color", "color_temperature", "effect", "palette", "transition", "signal_strength"]
        );
        let cct = c.descriptor().feature("color_temperature").unwrap();
        assert_eq!(cct.unit.as_deref(), Some("K"));
        assert_eq!(cct.value_type, ValueType::range(1900.0, 10060.0, 32.0));
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(100.0)), // 255
                ("transition", Value::Number(0.7)),
                ("color", color(0.0, 0.0)), // [0, 0, 0, 255]: white channel only
                ("color_temperature", Value::Number(3596.0)), // 1900 + 32 × 53
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("Default".into())),
                ("signal_strength", Value::Number(-44.0)),
            ])
        );
        // Four custom palettes from id 255 down, named as WLED's UI names them.
        let palettes = enum_values(&c, "palette");
        assert_eq!(palettes.len(), 75);
        assert_eq!(&palettes[71..], ["~ Custom 0 ~", "~ Custom 1 ~", "~ Custom 2 ~", "~ Custom 3 ~"]);
        assert_eq!(
            patch_json(&c, r#"{"set": {"palette": "~ Custom 3 ~"}}"#),
            serde_json::json!({"seg": [{"id": 0, "pal": 252}]})
        );
        assert_eq!(
            patch_json(&c, r#"{"set": {"color_temperature": 2700}}"#),
            serde_json::json!({"seg": [{"id": 0, "cct": 25}]})
        );
    }

    #[test]
    fn an_rgbw_strip_maps_every_value() {
        let (c, values) = values_of(RGBW_SI);
        assert_eq!(c.descriptor().name, "WLED RGBW Light");
        assert_eq!(keys(&c), ["state", "brightness", "color", "effect", "palette", "transition", "signal_strength"]);
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(50.2)),
                ("transition", Value::Number(0.7)),
                ("color", color(0.0, 100.0)), // [255, 0, 0, 139]: the white channel is not a hue
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("Default".into())),
                ("signal_strength", Value::Number(-44.0)),
            ])
        );
    }

    #[test]
    fn a_websocket_push_of_0_12_maps_every_value() {
        let m = message(WEBSOCKET_0_12);
        assert!(m.effects.is_none() && m.palettes.is_none());
        assert_eq!(m.info.as_ref().unwrap().leds.as_ref().unwrap().rgbw, Some(false));
        let (c, values) = values_of(WEBSOCKET_0_12);
        assert_eq!(c.descriptor().model.as_deref(), Some("WLED on esp8266"));
        assert_eq!(c.descriptor().firmware.as_deref(), Some("0.12.0-b2"));
        assert_eq!(keys(&c), ["state", "brightness", "color", "effect", "palette", "transition", "signal_strength"]);
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(100.0)),
                ("transition", Value::Number(0.7)),
                ("color", color(330.0, 29.02)), // [255, 181, 218]
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("* Color 1".into())),
                ("signal_strength", Value::Number(-68.0)),
            ])
        );
    }

    #[test]
    fn a_16_0_1_controller_maps_every_value() {
        let (c, values) = values_of(V16_0_1_SI);
        assert_eq!(c.descriptor().firmware.as_deref(), Some("16.0.1"));
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(100.0)),
                ("transition", Value::Number(3.0)), // 30 × 100 ms
                ("color", color(240.0, 100.0)),     // [0, 0, 255]
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("Default".into())),
                ("signal_strength", Value::Number(-55.0)),
            ])
        );
    }

    #[test]
    fn the_wled_mm_fork_reports_its_custom_palette() {
        let (c, values) = values_of(WLED_MM_SI);
        assert_eq!(c.descriptor().model.as_deref(), Some("WLED on ESP32-S3"));
        assert_eq!(c.descriptor().firmware.as_deref(), Some("14.5.1-dev"));
        assert_eq!(
            values,
            map(&[
                ("state", Value::Bool(true)),
                ("brightness", Value::Number(25.1)), // 64 / 255
                ("transition", Value::Number(0.7)),
                ("color", color(37.65, 100.0)),
                ("effect", Value::Text("Solid".into())),
                ("palette", Value::Text("~ Custom 0 ~".into())), // id 255, before 16.0.0
                ("signal_strength", Value::Number(-54.0)),
            ])
        );
    }

    #[test]
    fn palette_ids_moved_in_16_0_0() {
        let info = Info::from_json(
            br#"{"ver": "16.0.1", "mac": "8813bf0455f0", "palcount": 75, "cpalcount": 2, "cpalmax": 129,
                 "umpalcount": 1, "umpalnames": ["Sound Reactive"]}"#,
        )
        .unwrap();
        let mut c = Controller::new(&info).unwrap();
        c.set_palettes(&names().1);
        let palettes = enum_values(&c, "palette");
        assert_eq!(&palettes[71..], ["~ Custom 0 ~", "~ Custom 1 ~", "Sound Reactive"]);
        let pal = |name: &str| c.patch(&request(&format!(r#"{{"set": {{"palette": "{name}"}}}}"#))).unwrap().seg[0].pal;
        assert_eq!(pal("~ Custom 0 ~"), Some(200));
        assert_eq!(pal("~ Custom 1 ~"), Some(199));
        assert_eq!(pal("Sound Reactive"), Some(255));
    }

    #[test]
    fn every_reported_value_fits_its_feature() {
        for json in ALL {
            let (c, values) = values_of(json);
            let d = c.descriptor();
            let mut seen = std::collections::BTreeSet::new();
            for f in &d.features {
                assert!(seen.insert(f.key.as_str()), "duplicate key {} in {}", f.key, d.id);
                assert_eq!(f.unit.as_deref(), f.capability.canonical_unit(), "{}", f.key);
                if let Some(ep) = &f.endpoint {
                    assert!(f.key.ends_with(&format!("_{ep}")), "{} on {ep}", f.key);
                }
            }
            for (key, value) in &values {
                let feature = d.feature(key).unwrap();
                assert_eq!(check_value(feature, value), Ok(()), "{key} = {value} in {}", d.id);
            }
            // The descriptor's JSON is what the hub reads.
            let back: DeviceDescriptor = serde_json::from_value(serde_json::to_value(d).unwrap()).unwrap();
            assert_eq!(&back, d);
        }
    }

    #[test]
    fn name_lists_read_on_their_own() {
        let all = message(DOCS_JSON);
        let eff = serde_json::to_vec(&all.effects).unwrap();
        let pal = serde_json::to_vec(&all.palettes).unwrap();
        let effects = parse_names(&eff).unwrap();
        let palettes = parse_names(&pal).unwrap();
        assert_eq!(effects.len(), 80);
        assert_eq!(palettes[46], "April Night");
        let mut c = Controller::new(all.info.as_ref().unwrap()).unwrap();
        assert_eq!(keys(&c), ["state", "brightness", "color", "transition"]);
        assert!(!c.update_state(all.state.as_ref().unwrap()), "one segment, the main one: nothing new");
        assert!(c.set_effects(&effects));
        assert!(c.set_palettes(&palettes));
        assert!(!c.set_palettes(&palettes));
        assert_eq!(keys(&c), ["state", "brightness", "color", "effect", "palette", "transition"]);
        let err = parse_names(br#"["Solid", 3]"#).unwrap_err().to_string();
        assert!(err.starts_with("reading the name list (/json/eff or /json/pal): invalid type: integer `3`"), "{err}");
    }

    // -------------------------------------------------------------------------------------------
    // Partial states, WebSocket answers, layout changes
    // -------------------------------------------------------------------------------------------

    #[test]
    fn partial_states_report_what_they_carry() {
        let (c, _) = controller(TWO_SEGMENTS_SI);
        let ws = |json: &str| {
            let m = message(json);
            c.values(m.state.as_ref(), m.info.as_ref())
        };
        assert_eq!(ws(r#"{"state": {"bri": 10}}"#), map(&[("brightness", Value::Number(3.9))]));
        assert_eq!(
            ws(r#"{"state": {"on": false, "transition": 0}}"#),
            map(&[("state", Value::Bool(false)), ("transition", Value::Number(0.0))])
        );
        assert_eq!(
            ws(r#"{"state": {"seg": [{"id": 0, "bri": 0, "fx": 9}, {"id": 1, "col": [[0, 255, 0]]}]}}"#),
            map(&[
                ("brightness_seg0", Value::Number(0.0)),
                ("effect_seg0", Value::Text("Rainbow".into())),
                ("color", color(120.0, 100.0)),
            ])
        );
        assert_eq!(ws(r#"{"info": {"wifi": {"rssi": -71}}}"#), map(&[("signal_strength", Value::Number(-71.0))]));
        // A segment the descriptor does not have, an effect id without a name: nothing.
        assert_eq!(ws(r#"{"state": {"seg": [{"id": 7, "on": true}, {"id": 1, "fx": 53}]}}"#), BTreeMap::new());
        // A single segment object reads as a list.
        assert_eq!(ws(r#"{"state": {"seg": {"id": 1, "pal": 6}}}"#), map(&[("palette", Value::Text("Party".into()))]));
        assert_eq!(ws(r#"{"state": {"seg": null}}"#), BTreeMap::new());
        assert_eq!(ws("{}"), BTreeMap::new());
    }

    #[test]
    fn websocket_answers_read() {
        assert_eq!(message(r#"{"success": true}"#), Message { success: Some(true), ..Message::default() });
        assert_eq!(message(r#"{"error": 3}"#), Message { error: Some(3), ..Message::default() });
        assert_eq!(message(" pong\n"), Message { pong: true, ..Message::default() });
        let err = Controller::from_message(&message(r#"{"success": true}"#)).unwrap_err();
        assert_eq!(err.to_string(), "the WLED JSON message has no `info` object; the device's identity comes from it");
    }

    #[test]
    fn segments_added_renamed_and_deleted_change_the_descriptor() {
        let (mut c, m) = controller(V0_15_0_JSON);
        assert!(!c.update(&m), "the same message again changes nothing");
        let two = State::from_json(
            br#"{"mainseg": 0, "seg": [{"id": 0, "start": 0, "stop": 15, "lc": 1},
                                        {"id": 1, "start": 15, "stop": 30, "n": "Shelf", "lc": 1}]}"#,
        )
        .unwrap();
        assert!(c.update_state(&two));
        assert_eq!(c.descriptor().feature("state_seg1").unwrap().label.as_deref(), Some("Shelf"));
        assert_eq!(c.descriptor().feature("brightness_seg1").unwrap().label.as_deref(), Some("Shelf brightness"));
        assert!(!c.update_state(&two));
        // A segment without RGB (an on/off or white-only bus) has no color or palette.
        let white = State::from_json(br#"{"seg": [{"id": 1, "lc": 2}]}"#).unwrap();
        assert!(c.update_state(&white));
        assert!(c.descriptor().feature("color_seg1").is_none());
        assert!(c.descriptor().feature("palette_seg1").is_none());
        assert!(c.descriptor().feature("effect_seg1").is_some());
        // A partial state deletes with `stop` 0.
        assert!(c.update_state(&State::from_json(br#"{"seg": [{"id": 1, "stop": 0}]}"#).unwrap()));
        assert!(c.descriptor().feature("state_seg1").is_none());
        // A new main segment moves the device's own features.
        let moved = State::from_json(
            br#"{"mainseg": 2, "seg": [{"id": 0, "start": 0, "stop": 10}, {"id": 2, "start": 10, "stop": 30}]}"#,
        )
        .unwrap();
        assert!(c.update_state(&moved));
        assert_eq!(c.main_segment(), 2);
        assert!(c.descriptor().feature("state_seg0").is_some());
        assert!(c.descriptor().feature("state_seg2").is_none());
        assert_eq!(patch_json(&c, r#"{"set": {"effect": "Blink"}}"#), serde_json::json!({"seg": [{"id": 2, "fx": 1}]}));
        // A renamed controller.
        assert!(c.update_info(&Info::from_json(br#"{"name": "Kitchen strip"}"#).unwrap()));
        assert_eq!(c.descriptor().name, "Kitchen strip");
        assert_eq!(c.id().as_str(), "wled:8813bf0455f0");
    }

    // -------------------------------------------------------------------------------------------
    // Conversions and identity
    // -------------------------------------------------------------------------------------------

    #[test]
    fn brightness_converts_at_its_edges_and_round_trips() {
        assert_eq!(percent_from_bri(0), 0.0);
        assert_eq!(percent_from_bri(1), 0.4);
        assert_eq!(percent_from_bri(127), 49.8);
        assert_eq!(percent_from_bri(128), 50.2);
        assert_eq!(percent_from_bri(254), 99.6);
        assert_eq!(percent_from_bri(255), 100.0);
        assert_eq!(bri_from_percent(0.0), 0);
        assert_eq!(bri_from_percent(50.0), 128);
        assert_eq!(bri_from_percent(100.0), 255);
        assert_eq!(bri_from_percent(140.0), 255);
        assert_eq!(bri_from_percent(-3.0), 0);
        assert_eq!(bri_from_percent(f64::NAN), 0);
        for bri in 0..=255u8 {
            assert_eq!(bri_from_percent(percent_from_bri(bri)), bri);
        }
    }

    #[test]
    fn transition_and_color_temperature_convert_at_their_edges() {
        assert_eq!(seconds_from_transition(0), 0.0);
        assert_eq!(seconds_from_transition(7), 0.7);
        assert_eq!(seconds_from_transition(65535), 6553.5);
        assert_eq!(transition_from_seconds(0.7), 7);
        assert_eq!(transition_from_seconds(2.0), 20);
        assert_eq!(transition_from_seconds(3600.0), 36000);
        assert_eq!(transition_from_seconds(1e9), 65535);
        assert_eq!(transition_from_seconds(-1.0), 0);
        assert_eq!(kelvin_from_cct(0), 1900.0);
        assert_eq!(kelvin_from_cct(255), 10060.0);
        assert_eq!(kelvin_from_cct(2700), 2700.0); // already Kelvin
        assert_eq!(cct_from_kelvin(1900.0), 0);
        assert_eq!(cct_from_kelvin(1000.0), 0);
        assert_eq!(cct_from_kelvin(6500.0), 144);
        assert_eq!(cct_from_kelvin(10091.0), 255);
        for cct in 0..=255u16 {
            assert_eq!(u16::from(cct_from_kelvin(kelvin_from_cct(cct))), cct);
        }
    }

    #[test]
    fn the_id_comes_from_the_mac() {
        assert_eq!(normalize_mac("60019423b441").as_deref(), Some("60019423b441"));
        assert_eq!(normalize_mac("A8:03:2A:B1:23:45").as_deref(), Some("a8032ab12345"));
        assert_eq!(normalize_mac("a8-03-2a-b1-23-45").as_deref(), Some("a8032ab12345"));
        assert_eq!(normalize_mac("000000000000"), None);
        assert_eq!(normalize_mac("10.10.10.120"), None);
        assert_eq!(normalize_mac("a8032ab1234"), None);
        let no_mac = Info::from_json(br#"{"name": "WLED", "ip": "10.10.10.120"}"#).unwrap();
        assert_eq!(
            Controller::new(&no_mac).unwrap_err().to_string(),
            "info has no usable MAC address (`mac` is missing); a WLED device's id comes from its MAC, never from its IP address"
        );
        let bad = Info::from_json(br#"{"mac": "zz"}"#).unwrap();
        assert!(device_id(&bad).unwrap_err().to_string().contains(r#"(`mac` is "zz")"#));
        // No name: the model names it.
        let bare = Controller::new(&Info::from_json(br#"{"mac": "8813BF0455F0"}"#).unwrap()).unwrap();
        assert_eq!(bare.id().as_str(), "wled:8813bf0455f0");
        assert_eq!(bare.descriptor().name, "WLED");
        assert_eq!(bare.descriptor().model.as_deref(), Some("WLED"));
    }

    #[test]
    fn colors_read_in_every_form_wled_writes() {
        let seg: Segment =
            serde_json::from_str(r#"{"col": [[1, 2, 3], [1, 2, 3, 4], "FFAA00", "11223344", 2700, [9, 8, 7, 6, 5]]}"#)
                .unwrap();
        assert_eq!(
            seg.col.unwrap(),
            [
                SegmentColor::Rgbw(Rgbw { r: 1, g: 2, b: 3, w: None }),
                SegmentColor::Rgbw(Rgbw { r: 1, g: 2, b: 3, w: Some(4) }),
                SegmentColor::Rgbw(Rgbw { r: 255, g: 170, b: 0, w: None }),
                SegmentColor::Rgbw(Rgbw { r: 0x22, g: 0x33, b: 0x44, w: Some(0x11) }),
                SegmentColor::Kelvin(2700),
                SegmentColor::Rgbw(Rgbw { r: 9, g: 8, b: 7, w: Some(6) }),
            ]
        );
        // A Kelvin primary color has no hue to report.
        let (c, _) = controller(V0_15_0_JSON);
        let state = State::from_json(br#"{"seg": [{"id": 0, "col": [2700]}]}"#).unwrap();
        assert_eq!(c.values(Some(&state), None), BTreeMap::new());
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let err = |r: Result<State, Error>| r.unwrap_err().to_string();
        assert_eq!(
            err(State::from_json(br#"{"on": true, "bri": 300}"#)),
            "reading /json/state: invalid value: integer `300`, expected u8 at line 1 column 23"
        );
        assert_eq!(
            err(State::from_json(br#"{"seg": [{"col": [[255, 0]]}]}"#)),
            "reading /json/state: invalid length 2, expected a color: [r, g, b] or [r, g, b, w] with channels from 0 to 255, a hex string RRGGBB or WWRRGGBB, or Kelvin at line 1 column 26"
        );
        assert_eq!(
            err(State::from_json(br#"{"seg": [{"col": ["orange"]}]}"#)),
            "reading /json/state: invalid value: string \"orange\", expected a color: [r, g, b] or [r, g, b, w] with channels from 0 to 255, a hex string RRGGBB or WWRRGGBB, or Kelvin at line 1 column 26"
        );
        assert_eq!(
            err(State::from_json(br#"{"seg": 5}"#)),
            "reading /json/state: invalid type: integer `5`, expected an array of segment objects, or one segment object at line 1 column 9"
        );
        assert_eq!(err(State::from_json(b" [] ")), "reading /json/state: expected a JSON object, found an array");
        assert_eq!(err(State::from_json(b"\"on\"")), "reading /json/state: expected a JSON object, found a string");
        assert_eq!(
            Message::from_json(b"[\"Solid\"]").unwrap_err().to_string(),
            "reading the WLED JSON message: expected a JSON object, found an array"
        );
        assert_eq!(
            err(State::from_json(br#"{"on": tru"#)),
            "reading /json/state: EOF while parsing a value at line 1 column 10"
        );
        assert_eq!(
            Info::from_json(br#"{"leds": {"cct": "yes"}}"#).unwrap_err().to_string(),
            "reading /json/info: invalid type: string \"yes\", expected true, false or a number (0 is false) at line 1 column 22"
        );
        assert_eq!(
            Message::from_json(b"").unwrap_err().to_string(),
            "reading the WLED JSON message: EOF while parsing a value at line 1 column 0"
        );
    }

    // -------------------------------------------------------------------------------------------
    // Commands
    // -------------------------------------------------------------------------------------------

    #[test]
    fn a_command_becomes_a_state_patch() {
        let (c, _) = controller(TWO_SEGMENTS_SI);
        // The main segment is 1: its color and effect go to segment 1.
        let req = r#"{"set": {"state": true, "brightness": 50.2, "transition": 0.7,
                              "color": {"hue": 0, "saturation": 100}, "effect": "Rainbow"}}"#;
        assert_eq!(
            c.patch(&request(req)).unwrap().to_json(),
            r#"{"on":true,"bri":128,"transition":7,"seg":[{"id":1,"col":[[255,0,0]],"fx":9}]}"#
        );
        assert_eq!(
            patch_json(
                &c,
                r#"{"set": {"state_seg0": false, "brightness_seg0": 40, "palette_seg0": "Party",
                            "color_seg0": {"hue": 218.91, "saturation": 50.2}, "palette": "Default"},
                    "transition": 2}"#
            ),
            serde_json::json!({"tt": 20, "seg": [
                {"id": 0, "on": false, "bri": 102, "col": [[127, 172, 255]], "pal": 6},
                {"id": 1, "pal": 0}]})
        );
        assert_eq!(
            patch_json(&c, r#"{"toggle": ["state", "state_seg0"]}"#),
            serde_json::json!({"on": "t", "seg": [{"id": 0, "on": "t"}]})
        );
        let refresh = c.patch(&request(r#"{"refresh": true}"#)).unwrap();
        assert!(refresh.is_empty());
        assert_eq!(refresh.to_json(), "{}");
        let mut verbose = c.patch(&request(r#"{"set": {"brightness": 0}}"#)).unwrap();
        verbose.v = Some(true);
        assert_eq!(verbose.to_json(), r#"{"bri":0,"v":true}"#);
    }

    #[test]
    fn every_command_the_hub_lets_through_maps() {
        for json in ALL {
            let (c, m) = controller(json);
            let d = c.descriptor();
            let values = c.values(m.state.as_ref(), m.info.as_ref());
            for f in d.features.iter().filter(|f| f.access.set) {
                let value = match &f.value_type {
                    ValueType::Bool => Value::Bool(false),
                    ValueType::Number { max, .. } => Value::Number(max.unwrap_or(1.0)),
                    ValueType::Enum { values } => Value::Text(values.last().unwrap().clone()),
                    ValueType::Color => color(300.0, 40.0),
                    other => panic!("{} is {other:?}", f.key),
                };
                let req = CommandRequest {
                    set: BTreeMap::from([(f.key.clone(), value)]),
                    transition: Some(1.5),
                    ..CommandRequest::default()
                };
                assert_eq!(req.validate(&d.features), Ok(()), "{}", f.key);
                let patch = c.patch(&req).unwrap();
                assert!(!patch.is_empty(), "{}", f.key);
                assert_eq!(patch.tt, Some(15));
            }
            // Setting what the device reports gives back the wire values it reported.
            let settable: BTreeMap<String, Value> =
                values.into_iter().filter(|(k, _)| d.feature(k).unwrap().access.set).collect();
            let patch = c.patch(&CommandRequest { set: settable, ..CommandRequest::default() }).unwrap();
            let state = m.state.as_ref().unwrap();
            assert_eq!(patch.bri, state.bri);
            assert_eq!(patch.transition.map(u32::from), state.transition);
            let main = state.seg.as_ref().unwrap().iter().find(|s| s.id.unwrap_or(0) == c.main_segment()).unwrap();
            let main_patch = patch.seg.iter().find(|s| s.id == c.main_segment()).unwrap();
            assert_eq!(main_patch.fx, main.fx);
            assert_eq!(main_patch.pal, main.pal);
        }
    }

    #[test]
    fn command_errors_are_clear() {
        let (c, _) = controller(V0_15_0_JSON);
        let err = |req: &str| c.patch(&request(req)).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"set": {"brightnes": 40}}"#),
            "the device has no feature `brightnes`; its features are: state, brightness, color, effect, palette, transition, signal_strength"
        );
        assert_eq!(err(r#"{"set": {"signal_strength": -40}}"#), "feature `signal_strength` is read-only");
        assert_eq!(err(r#"{"set": {"state": "on"}}"#), "feature `state` takes true or false, not text \"on\"");
        assert_eq!(
            err(r#"{"set": {"brightness": true}}"#),
            "feature `brightness` takes a number from 0 to 100, not bool true"
        );
        assert_eq!(err(r#"{"set": {"effect": 9}}"#), "feature `effect` takes an effect name, not number 9.0");
        assert_eq!(
            err(r#"{"set": {"effect": "Disco"}}"#),
            "feature `effect` has no effect named `Disco`; the effects are: Solid, Blink, Breathe, Wipe, Wipe Random, Random Colors, Sweep, Dynamic, Colorloop, Rainbow, Scan, Scan Dual and 168 more"
        );
        assert!(
            err(r#"{"set": {"palette": "RSVD"}}"#)
                .starts_with("feature `palette` has no palette named `RSVD`; the palettes are: Default, ")
        );
        assert_eq!(
            err(r#"{"set": {"effect": "RSVD"}}"#).split(';').next(),
            Some("feature `effect` has no effect named `RSVD`")
        );
        assert_eq!(
            err(r#"{"toggle": ["brightness"]}"#),
            "feature `brightness` cannot be toggled; toggleable features are: state"
        );
        assert_eq!(
            err(r#"{"set": {"state": true}, "toggle": ["state"]}"#),
            "feature `state` cannot be toggled; toggleable features are: state"
        );
        assert_eq!(
            err(r#"{"set": {"color_seg3": {"hue": 1, "saturation": 2}}}"#).split(';').next(),
            Some("the device has no feature `color_seg3`")
        );
    }

    // -------------------------------------------------------------------------------------------
    // Robustness
    // -------------------------------------------------------------------------------------------

    /// A xorshift generator: the same seed, the same mutations.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % (n.max(1) as u64)) as usize
        }
    }

    /// Reads a payload every way and maps whatever reads; must never panic.
    fn exercise(base: &Controller, bytes: &[u8], rng: &mut XorShift) {
        let _ = State::from_json(bytes);
        let _ = Info::from_json(bytes);
        let _ = parse_names(bytes);
        let Ok(m) = Message::from_json(bytes) else { return };
        if let Ok(fresh) = Controller::from_message(&m) {
            let _ = fresh.values(m.state.as_ref(), m.info.as_ref());
        }
        let mut c = base.clone();
        c.update(&m);
        let _ = c.values(m.state.as_ref(), m.info.as_ref());
        let d = c.descriptor().clone();
        for _ in 0..3 {
            let Some(f) = d.features.get(rng.below(d.features.len())) else { break };
            let value = match rng.below(7) {
                0 => Value::Bool(rng.below(2) == 0),
                1 => Value::Number([f64::NAN, f64::INFINITY, -1e300, -1.0, 0.0, 50.0, 1e9][rng.below(7)]),
                2 => Value::Text(["Solid", "", "RSVD", "~ Custom 0 ~", "Default"][rng.below(5)].into()),
                3 => color(
                    [f64::NAN, -720.0, 0.0, 359.9, 1e12][rng.below(5)],
                    [f64::NAN, -5.0, 0.0, 100.0][rng.below(4)],
                ),
                4 => Value::List(vec![]),
                5 => Value::Object(BTreeMap::new()),
                _ => Value::Text(format!("{}", rng.next())),
            };
            let req = CommandRequest {
                set: BTreeMap::from([(f.key.clone(), value)]),
                toggle: if rng.below(4) == 0 { vec![f.key.clone()] } else { vec![] },
                transition: [None, Some(f64::NAN), Some(-1.0), Some(1e12)][rng.below(4)],
                ..CommandRequest::default()
            };
            if let Ok(p) = c.patch(&req) {
                let _ = p.to_json();
            }
        }
    }

    #[test]
    fn mutated_bytes_never_panic() {
        let (base, _) = controller(TWO_SEGMENTS_SI);
        let mut rng = XorShift(0x5EED_0057_1ED0_0001);
        const TOKENS: &[&[u8]] = &[
            b"{", b"}", b"[", b"]", b",", b":", b"\"", b"null", b"-1", b"255", b"256", b"65536", b"1e400", b"0.5",
            b"\\u0000", b"true", b"\"t\"",
        ];
        for round in 0..3000 {
            let mut bytes = ALL[round % ALL.len()].as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(5) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => {
                        let end = (at + 1 + rng.below(40)).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    2 => {
                        let token = TOKENS[rng.below(TOKENS.len())];
                        bytes.splice(at..at, token.iter().copied());
                    }
                    3 => bytes.truncate(at),
                    _ => {
                        let end = (at + rng.below(200)).min(bytes.len());
                        let copy = bytes[at..end].to_vec();
                        bytes.splice(at..at, copy);
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            exercise(&base, &bytes, &mut rng);
        }
    }

    /// Replaces a random node of a JSON tree with an odd value.
    fn mutate(v: &mut Json, rng: &mut XorShift, depth: usize) {
        let children = match v {
            Json::Object(o) => o.len(),
            Json::Array(a) => a.len(),
            _ => 0,
        };
        if children == 0 || depth > 8 || rng.below(4) == 0 {
            let odd = [
                Json::Null,
                Json::Bool(true),
                serde_json::json!(-1),
                serde_json::json!(0),
                serde_json::json!(255),
                serde_json::json!(256),
                serde_json::json!(65535),
                serde_json::json!(4_294_967_296u64),
                serde_json::json!(-99999),
                serde_json::json!(1.5),
                serde_json::json!("x"),
                serde_json::json!("FFAA00"),
                serde_json::json!([]),
                serde_json::json!({}),
                serde_json::json!([1, 2]),
                serde_json::json!([[1, 2, 3, 4, 5]]),
                serde_json::json!({"id": 300, "stop": 0}),
                serde_json::json!([{"id": 255, "start": 5, "stop": 1}, {"stop": 9}]),
            ];
            *v = odd[rng.below(odd.len())].clone();
            return;
        }
        let i = rng.below(children);
        match v {
            Json::Object(o) => {
                if let Some((_, child)) = o.iter_mut().nth(i) {
                    mutate(child, rng, depth + 1);
                }
            }
            Json::Array(a) => mutate(&mut a[i], rng, depth + 1),
            _ => {}
        }
    }

    #[test]
    fn mutated_values_never_panic() {
        let (base, _) = controller(TWO_SEGMENTS_SI);
        let mut rng = XorShift(0x5EED_0057_1ED0_0002);
        let trees: Vec<Json> = ALL.iter().map(|j| serde_json::from_str(j).unwrap()).collect();
        for round in 0..3000 {
            let mut tree = trees[round % trees.len()].clone();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut tree, &mut rng, 0);
            }
            let bytes = serde_json::to_vec(&tree).unwrap();
            exercise(&base, &bytes, &mut rng);
        }
    }
}
