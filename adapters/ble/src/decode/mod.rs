//! Decoders: each a pure function from one advertisement (and the device's key, for encrypted
//! formats) to readings and events in the model's canonical units. No I/O, no clock, no state:
//! de-duplication by packet id and everything over time is the adapter's.
//!
//! Every decoder module has one entry point,
//! `pub fn decode(adv: &Advertisement, key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError>`:
//! `Ok(None)` when the advertisement is not its format, `Ok(Some(_))` with what it says, `Err`
//! when it is its format but cannot be read (and why). A decoder never panics, whatever the
//! bytes (`tests/fuzz.rs` feeds every decoder arbitrary input).

pub mod atc;
pub mod beacon;
pub mod bthome;
pub mod govee;
pub mod inkbird;
pub mod mibeacon;
pub mod ruuvi;
pub mod switchbot;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::fmt;

use hearth_sdk::{Capability, Value};
use serde::{Deserialize, Serialize};

/// A Bluetooth device address, `AA:BB:CC:DD:EE:FF` as written (most significant byte first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// Lowercase hex without separators (`a4c1380a1b2c`): the native part of device ids.
    pub fn compact(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{g:02X}")
    }
}

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Address, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let mut out = [0u8; 6];
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a Bluetooth address like AA:BB:CC:DD:EE:FF"));
        }
        for (o, p) in out.iter_mut().zip(&parts) {
            *o = u8::from_str_radix(p, 16)
                .ok()
                .filter(|_| p.len() == 2)
                .ok_or_else(|| format!("`{s}` is not a Bluetooth address like AA:BB:CC:DD:EE:FF"))?;
        }
        Ok(Address(out))
    }
}

impl Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The 128-bit form of a 16-bit Bluetooth SIG UUID (`0000xxxx-0000-1000-8000-00805f9b34fb`).
pub const fn uuid16(short: u16) -> u128 {
    ((short as u128) << 96) | 0x0000_0000_0000_1000_8000_0080_5f9b_34fb
}

/// One advertisement as heard: who sent it, how loud, and its data.
///
/// JSON form (one line of a recording): `{"address": "A4:C1:38:0A:1B:2C", "rssi": -67, "name":
/// "ATC_0A1B2C", "service_data": {"181a": "..."}, "manufacturer_data": {"1177": "..."},
/// "service_uuids": ["fcd2"]}`; byte strings in hex, 16-bit UUIDs as 4 hex digits, others in
/// full (`0000fcd2-0000-1000-8000-00805f9b34fb`), manufacturer ids in hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// The sender's address.
    pub address: Address,
    /// Signal strength in dBm, when known.
    pub rssi: Option<i16>,
    /// The advertised local name.
    pub name: Option<String>,
    /// Service data by 128-bit service UUID.
    pub service_data: BTreeMap<u128, Vec<u8>>,
    /// Manufacturer data by company id.
    pub manufacturer_data: BTreeMap<u16, Vec<u8>>,
    /// Advertised service UUIDs (128-bit).
    pub service_uuids: Vec<u128>,
}

impl Advertisement {
    /// The service data of a 16-bit service UUID (`0xFCD2` for BTHome).
    pub fn service_data16(&self, short: u16) -> Option<&[u8]> {
        self.service_data.get(&uuid16(short)).map(Vec::as_slice)
    }

    /// The manufacturer data of a company id (`0x0499` for Ruuvi).
    pub fn manufacturer(&self, company: u16) -> Option<&[u8]> {
        self.manufacturer_data.get(&company).map(Vec::as_slice)
    }
}

/// A measured value, in the capability's canonical unit (°C, %, hPa, lx, V, dBm, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The feature key (`temperature`, `humidity`, `battery`, `button`, `temperature_2` for a
    /// second probe). Stable: the same decoder always uses the same key for the same thing.
    pub key: String,
    /// What it means.
    pub capability: Capability,
    /// The value (a number in the canonical unit, a bool, a text of an enum).
    pub value: Value,
    /// The unit, for `Capability::Other` only (the others have their canonical unit).
    pub unit: Option<&'static str>,
}

impl Reading {
    /// A number of a capability with a canonical unit.
    pub fn number(key: &str, capability: Capability, value: f64) -> Reading {
        Reading { key: key.to_owned(), capability, value: Value::Number(value), unit: None }
    }

    /// A true/false of a capability.
    pub fn flag(key: &str, capability: Capability, value: bool) -> Reading {
        Reading { key: key.to_owned(), capability, value: Value::Bool(value), unit: None }
    }

    /// A value no capability fits, in its own unit (`Capability::Other`).
    pub fn other(key: &str, value: Value, unit: Option<&'static str>) -> Reading {
        Reading { key: key.to_owned(), capability: Capability::Other, value, unit }
    }
}

/// A momentary event (a button press, a dimmer turn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BleEvent {
    /// The feature key (`button`, `button_2`, `dimmer`).
    pub key: String,
    /// The event (`press`, `double_press`, `long_press`, `rotate_left`, ...), one of `values`.
    pub event: &'static str,
    /// Every event this feature can fire (the feature's enum).
    pub values: &'static [&'static str],
}

/// What one advertisement says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Who makes the format or the device (`BTHome`, `Xiaomi`, `Ruuvi`, `Govee`).
    pub brand: &'static str,
    /// The model, as precise as the advertisement allows (`LYWSD03MMC`, `RuuviTag`, `H5075`).
    pub model: String,
    /// Measured values.
    pub readings: Vec<Reading>,
    /// Momentary events.
    pub events: Vec<BleEvent>,
    /// A counter the device increments per new packet (BTHome packet id, MiBeacon frame
    /// counter, Ruuvi measurement sequence): the same id again is a repeat, not a new reading.
    pub packet_id: Option<u32>,
    /// Whether the frame was encrypted (and decrypted with the key).
    pub encrypted: bool,
    /// A stable identity other than the address, for senders whose address changes (an
    /// iBeacon's `uuid-major-minor`, an Eddystone UID's `namespace-instance`): the device is
    /// keyed by it. `None`: the address is the identity.
    pub identity: Option<String>,
}

/// Why an advertisement of a known format cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Too short, a wrong length or a value out of the format's range.
    #[error("malformed {format} advertisement: {why}")]
    Malformed {
        /// The format.
        format: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Encrypted, and no key is known for this device.
    #[error("the {format} advertisement is encrypted: enter the device's bind key")]
    NeedsKey {
        /// The format.
        format: &'static str,
    },
    /// Encrypted, and the key does not open it (wrong key, or a damaged frame).
    #[error("the {format} advertisement does not decrypt with the key given: check the bind key")]
    WrongKey {
        /// The format.
        format: &'static str,
    },
    /// A version or variant of the format this hub does not read.
    #[error("{format}: {what} is not supported")]
    Unsupported {
        /// The format.
        format: &'static str,
        /// What.
        what: String,
    },
}

impl DecodeError {
    /// A malformed-frame error.
    pub fn malformed(format: &'static str, why: impl Into<String>) -> DecodeError {
        DecodeError::Malformed { format, why: why.into() }
    }
}

/// A decoder's entry point.
pub type DecodeFn = fn(&Advertisement, Option<&[u8]>) -> Result<Option<Decoded>, DecodeError>;

/// What the decoders look at, for fuzzing and property tests to aim at: 16-bit service UUIDs,
/// company ids and local names that select a format (and, last in each, some that select none).
pub mod aims {
    /// Service data UUIDs.
    pub const SERVICE_UUIDS: &[u16] = &[0xFCD2, 0x181C, 0x181E, 0xFE95, 0x181A, 0xFD3D, 0x0D00, 0xFEAA, 0x1234];
    /// Manufacturer-data company ids.
    pub const COMPANY_IDS: &[u16] =
        &[0x0499, 0xEC88, 0x8801, 0x0001, 0x0002, 0x004C, 0x0969, 0x0059, 0x089C, 0x0006, 0x0000];
    /// Local names.
    pub const NAMES: &[&str] = &[
        "sps",
        "tps",
        "N0BYD",
        "iBBQ",
        "xBBQ",
        "GVH5075_1A2B",
        "Govee_H5074_1A2B",
        "GV5108",
        "B5178",
        "ATC_0A1B2C",
        "SBBT-002C",
        "ITH-11-B",
        "",
    ];
}

/// Every decoder, most specific first: the first that recognises an advertisement reads it.
pub const DECODERS: &[(&str, DecodeFn)] = &[
    ("bthome", bthome::decode),
    ("mibeacon", mibeacon::decode),
    ("atc", atc::decode),
    ("ruuvi", ruuvi::decode),
    ("govee", govee::decode),
    ("inkbird", inkbird::decode),
    ("switchbot", switchbot::decode),
    ("beacon", beacon::decode),
];

/// Reads an advertisement with the first decoder that can; when none can but one recognised it,
/// that one's error (an advertisement may carry several formats: an encrypted MiBeacon frame
/// with no key beside readable ATC data is read as ATC).
pub fn decode(adv: &Advertisement, key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    decode_with(adv, key).map(|found| found.map(|(_, d)| d)).map_err(|(_, e)| e)
}

/// Like [`decode`], also naming the decoder.
pub fn decode_with(
    adv: &Advertisement,
    key: Option<&[u8]>,
) -> Result<Option<(&'static str, Decoded)>, (&'static str, DecodeError)> {
    let mut first_error = None;
    for (name, d) in DECODERS {
        match d(adv, key) {
            Ok(Some(decoded)) => return Ok(Some((name, decoded))),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert((*name, e));
            }
        }
    }
    first_error.map_or(Ok(None), Err)
}

/// Little-endian unsigned integer of `bytes` (at most 8).
pub fn le_u(bytes: &[u8]) -> u64 {
    bytes.iter().rev().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Little-endian signed (two's complement) integer of `bytes` (1 to 8).
pub fn le_i(bytes: &[u8]) -> i64 {
    let n = bytes.len().min(8);
    if n == 0 {
        return 0;
    }
    let u = le_u(&bytes[..n]);
    let shift = 64 - 8 * n as u32;
    ((u << shift) as i64) >> shift
}

/// Rounds to `dp` decimals, so the same bytes always give the same model value.
pub fn round(v: f64, dp: i32) -> f64 {
    let f = 10f64.powi(dp);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_integers() {
        let a: Address = "A4:C1:38:0A:1B:2C".parse().expect("address");
        assert_eq!(a.to_string(), "A4:C1:38:0A:1B:2C");
        assert_eq!(a.compact(), "a4c1380a1b2c");
        assert!("A4:C1:38:0A:1B".parse::<Address>().is_err());
        assert!("A4:C1:38:0A:1B:2G".parse::<Address>().is_err());
        assert_eq!(le_u(&[0x34, 0x12]), 0x1234);
        assert_eq!(le_i(&[0xFF, 0xFF]), -1);
        assert_eq!(le_i(&[0x00, 0x80]), -32768);
        assert_eq!(le_i(&[0xCA, 0x09]), 2506);
        assert_eq!(uuid16(0xFCD2), 0x0000_fcd2_0000_1000_8000_0080_5f9b_34fb);
        assert_eq!(round(25.055_000_1, 2), 25.06);
    }
}
