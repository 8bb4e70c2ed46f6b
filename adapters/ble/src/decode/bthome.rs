//! BTHome (<https://bthome.io>): the open format for sensors and buttons broadcasting over BLE.
//!
//! **v2** (service data UUID `0xFCD2`): a device-information byte (bit 0: encrypted, bit 1: the
//! sender's MAC follows, reversed — reserved in the current specification but still sent by
//! older firmware, bit 2: the device only sends on a trigger, bits 5-7: the version, which must
//! be 2), then object-id/value pairs, little-endian, whose lengths the object id fixes (text and
//! raw objects carry a length byte). Encrypted frames are AES-CCM with the device's 16-byte bind
//! key: the ciphertext, a 4-byte counter and a 4-byte MIC; the nonce is the MAC as written, the
//! UUID little-endian (`d2 fc`), the device-information byte and the counter.
//!
//! **v1** (legacy; `0x181C` plain, `0x181E` encrypted): each object starts with a byte whose
//! bits 0-4 are its length (object id included) and bits 5-7 its data format (0 unsigned, 1
//! signed, 2 float, 3 string, 4 MAC address; 5 is read as unsigned, the timestamp format of the
//! reference receiver), then the object id (numbered as in v2) and the value. Encrypted v1 is
//! AES-CCM with a 12-byte nonce (MAC, `1e 18`, counter), the associated data `0x11` and a 4-byte
//! MIC.
//!
//! What this decoder decides where the specification leaves it open:
//! - Keys: one per kind of value (`temperature` whether it came as object 0x02, 0x45, 0x57 or
//!   0x58); a second value of the same kind in one frame is `temperature_2`, a third
//!   `temperature_3`. Events count the same way (`button`, `button_2`, ...), and a button's
//!   "none" event fires nothing but keeps its place in the numbering.
//! - Values are in the model's canonical units; values no capability fits are
//!   `Capability::Other` with the specification's unit (mass, distance, speed, volume ...).
//!   Door, window, garage door and opening objects ("open") are `contact` (true = closed).
//! - An unknown v2 object id stops the parsing (its length is unknown). Objects come in
//!   ascending order and each one read before it had a known length, so what was read is kept;
//!   when nothing was read yet the frame is `Malformed` (naming the object id) rather than an
//!   empty success. v1 objects carry their length: unknown ones are skipped.
//! - An object running past the end of the frame makes the whole frame `Malformed`.
//! - `packet_id` is the packet id object (0x00) when there is one, else the encryption counter of
//!   an encrypted frame: both change with every new packet and repeat with a resent one.
//! - `model` is "BTHome v2 sensor" / "BTHome v1 sensor", or the product when the advertised name
//!   is one of a few known BTHome products (Shelly BLU). Free-form names are not copied into the
//!   model: they come and go between advertisements and often carry a per-device suffix.
//! - A plaintext frame is decoded even when a key is given (`encrypted` is false): refusing
//!   plaintext from a device that has a key is the adapter's policy, not the decoder's.

use std::borrow::Cow;
use std::collections::BTreeMap;

use aes::Aes128;
use ccm::aead::generic_array::{ArrayLength, GenericArray};
use ccm::aead::{AeadInPlace, KeyInit};
use ccm::consts::{U4, U12, U13};
use ccm::{Ccm, NonceSize};
use hearth_sdk::{Capability, Timestamp, Value};

use super::{Advertisement, BleEvent, DecodeError, Decoded, Reading, le_i, le_u, round};

/// The format's name in errors.
const FORMAT: &str = "BTHome";
/// The v1 format's name in errors.
const FORMAT_V1: &str = "BTHome v1";
/// Service data UUID of BTHome v2.
const UUID_V2: u16 = 0xFCD2;
/// Service data UUID of unencrypted BTHome v1.
const UUID_V1: u16 = 0x181C;
/// Service data UUID of encrypted BTHome v1.
const UUID_V1_ENCRYPTED: u16 = 0x181E;
/// Length of a bind key.
const KEY_LEN: usize = 16;

/// Every event a button (object 0x3A) can fire.
const BUTTON_EVENTS: &[&str] =
    &["press", "double_press", "triple_press", "long_press", "long_double_press", "long_triple_press", "hold_press"];
/// Every event a dimmer (object 0x3C) can fire.
const DIMMER_EVENTS: &[&str] = &["rotate_left", "rotate_right"];

/// Advertised names of BTHome products and their models (Shelly BLU devices).
const KNOWN_MODELS: &[(&str, &str)] = &[
    ("SBBT-002C", "Shelly BLU Button1"),
    ("SBBT-102C", "Shelly BLU Button1 ZB"),
    ("SBBT-004CEU", "Shelly BLU Wall Switch 4"),
    ("SBBT-004CUS", "Shelly BLU RC Button 4"),
    ("SBDW-002C", "Shelly BLU Door/Window"),
    ("SBHT-003C", "Shelly BLU H&T"),
    ("SBHT-103C", "Shelly BLU H&T Display ZB"),
    ("SBHT-203C", "Shelly BLU H&T ZB"),
    ("SBMO-003Z", "Shelly BLU Motion"),
    ("SBTR-001AEU", "Shelly BLU TRV"),
];

/// What an object's value means and how it becomes a reading or an event.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A number: the integer times `factor`, of `capability` (`Other` keeps `unit`).
    Number { capability: Capability, unit: Option<&'static str>, factor: f64 },
    /// A true/false (`1` true) of a capability (`Other` when none fits).
    Flag(Capability),
    /// "Open" (`1`) or closed: read as `contact`, true when closed.
    Open,
    /// `0` locked, `1` unlocked.
    Lock,
    /// The packet id, to `Decoded::packet_id`.
    PacketId,
    /// A button event.
    Button,
    /// A dimmer event: the event and a number of steps.
    Dimmer,
    /// UTF-8 text.
    Text,
    /// Bytes, shown in hex.
    Raw,
    /// Seconds since 1970-01-01 UTC.
    Timestamp,
    /// The device type id.
    DeviceType,
    /// A firmware version, one byte per part, least significant part first.
    Firmware,
}

/// One object id of the specification.
#[derive(Debug, Clone, Copy)]
struct Object {
    /// The object id.
    id: u8,
    /// The key of its reading or event (before a `_2` suffix).
    key: &'static str,
    /// The value's length in bytes (v2); 0 when a length byte follows the object id.
    len: u8,
    /// Whether the integer is signed (two's complement).
    signed: bool,
    /// What it means.
    kind: Kind,
}

/// Length marker of text and raw objects: a length byte follows the object id.
const VARIABLE: u8 = 0;
const U: bool = false;
const S: bool = true;

/// A number of a capability with a canonical unit.
const fn num(id: u8, key: &'static str, len: u8, signed: bool, factor: f64, capability: Capability) -> Object {
    Object { id, key, len, signed, kind: Kind::Number { capability, unit: None, factor } }
}

/// A number no capability fits, in its own unit.
const fn other(id: u8, key: &'static str, len: u8, signed: bool, factor: f64, unit: Option<&'static str>) -> Object {
    Object { id, key, len, signed, kind: Kind::Number { capability: Capability::Other, unit, factor } }
}

/// A one-byte binary sensor.
const fn flag(id: u8, key: &'static str, capability: Capability) -> Object {
    Object { id, key, len: 1, signed: U, kind: Kind::Flag(capability) }
}

/// Anything else.
const fn special(id: u8, key: &'static str, len: u8, kind: Kind) -> Object {
    Object { id, key, len, signed: U, kind }
}

/// Every object id of the BTHome v2 specification, sorted by id (v1 uses the same numbering).
const OBJECTS: &[Object] = {
    use Capability::*;
    &[
        special(0x00, "packet_id", 1, Kind::PacketId),
        num(0x01, "battery", 1, U, 1.0, Battery),
        num(0x02, "temperature", 2, S, 0.01, Temperature),
        num(0x03, "humidity", 2, U, 0.01, Humidity),
        num(0x04, "pressure", 3, U, 0.01, Pressure),
        num(0x05, "illuminance", 3, U, 0.01, Illuminance),
        other(0x06, "mass", 2, U, 0.01, Some("kg")),
        other(0x07, "mass", 2, U, 0.01, Some("lb")),
        other(0x08, "dew_point", 2, S, 0.01, Some("°C")),
        other(0x09, "count", 1, U, 1.0, None),
        num(0x0A, "energy", 3, U, 0.001, Energy),
        num(0x0B, "power", 3, U, 0.01, Power),
        num(0x0C, "voltage", 2, U, 0.001, Voltage),
        num(0x0D, "pm25", 2, U, 1.0, Pm25),
        num(0x0E, "pm10", 2, U, 1.0, Pm10),
        flag(0x0F, "generic", Other),
        flag(0x10, "on_off", OnOff),
        special(0x11, "opening", 1, Kind::Open),
        num(0x12, "co2", 2, U, 1.0, Co2),
        // Total VOC in µg/m³: the `voc` capability is in ppb, which needs the gas mixture.
        other(0x13, "tvoc", 2, U, 1.0, Some("µg/m³")),
        num(0x14, "moisture", 2, U, 0.01, Moisture),
        flag(0x15, "battery_low", BatteryLow),
        flag(0x16, "battery_charging", Other),
        flag(0x17, "carbon_monoxide", CarbonMonoxide),
        flag(0x18, "cold", Other),
        flag(0x19, "connectivity", Other),
        special(0x1A, "door", 1, Kind::Open),
        special(0x1B, "garage_door", 1, Kind::Open),
        flag(0x1C, "gas", Gas),
        flag(0x1D, "heat", Other),
        flag(0x1E, "light", Other),
        special(0x1F, "lock", 1, Kind::Lock),
        // The binary "moisture" object: wet (a leak sensor).
        flag(0x20, "water_leak", WaterLeak),
        flag(0x21, "motion", Occupancy),
        flag(0x22, "moving", Other),
        flag(0x23, "occupancy", Occupancy),
        flag(0x24, "plug", Other),
        flag(0x25, "presence", Other),
        flag(0x26, "problem", Other),
        flag(0x27, "running", Other),
        flag(0x28, "safety", Other),
        flag(0x29, "smoke", Smoke),
        flag(0x2A, "sound", Other),
        flag(0x2B, "tamper", Tamper),
        flag(0x2C, "vibration", Vibration),
        special(0x2D, "window", 1, Kind::Open),
        num(0x2E, "humidity", 1, U, 1.0, Humidity),
        num(0x2F, "moisture", 1, U, 1.0, Moisture),
        special(0x3A, "button", 1, Kind::Button),
        special(0x3C, "dimmer", 2, Kind::Dimmer),
        other(0x3D, "count", 2, U, 1.0, None),
        other(0x3E, "count", 4, U, 1.0, None),
        other(0x3F, "rotation", 2, S, 0.1, Some("°")),
        other(0x40, "distance", 2, U, 1.0, Some("mm")),
        other(0x41, "distance", 2, U, 0.1, Some("m")),
        num(0x42, "duration", 3, U, 0.001, Duration),
        num(0x43, "current", 2, U, 0.001, Current),
        other(0x44, "speed", 2, U, 0.01, Some("m/s")),
        num(0x45, "temperature", 2, S, 0.1, Temperature),
        other(0x46, "uv_index", 1, U, 0.1, None),
        other(0x47, "volume", 2, U, 0.1, Some("L")),
        other(0x48, "volume", 2, U, 1.0, Some("mL")),
        other(0x49, "volume_flow_rate", 2, U, 0.001, Some("m³/h")),
        num(0x4A, "voltage", 2, U, 0.1, Voltage),
        other(0x4B, "gas_volume", 3, U, 0.001, Some("m³")),
        other(0x4C, "gas_volume", 4, U, 0.001, Some("m³")),
        num(0x4D, "energy", 4, U, 0.001, Energy),
        other(0x4E, "volume", 4, U, 0.001, Some("L")),
        other(0x4F, "water", 4, U, 0.001, Some("L")),
        special(0x50, "timestamp", 4, Kind::Timestamp),
        other(0x51, "acceleration", 2, U, 0.001, Some("m/s²")),
        other(0x52, "gyroscope", 2, U, 0.001, Some("°/s")),
        special(0x53, "text", VARIABLE, Kind::Text),
        special(0x54, "raw", VARIABLE, Kind::Raw),
        other(0x55, "volume_storage", 4, U, 0.001, Some("L")),
        other(0x56, "conductivity", 2, U, 1.0, Some("µS/cm")),
        num(0x57, "temperature", 1, S, 1.0, Temperature),
        num(0x58, "temperature", 1, S, 0.35, Temperature),
        other(0x59, "count", 1, S, 1.0, None),
        other(0x5A, "count", 2, S, 1.0, None),
        other(0x5B, "count", 4, S, 1.0, None),
        num(0x5C, "power", 4, S, 0.01, Power),
        num(0x5D, "current", 2, S, 0.001, Current),
        other(0x5E, "direction", 2, U, 0.01, Some("°")),
        other(0x5F, "precipitation", 2, U, 0.1, Some("mm")),
        other(0x60, "channel", 1, U, 1.0, None),
        other(0x61, "rotational_speed", 2, U, 1.0, Some("rpm")),
        other(0x62, "speed", 4, S, 0.000_001, Some("m/s")),
        other(0x63, "acceleration", 4, S, 0.000_001, Some("m/s²")),
        // 0 dark, 1 twilight, 2 bright.
        other(0x64, "light_level", 1, U, 1.0, None),
        special(0xF0, "device_type_id", 2, Kind::DeviceType),
        special(0xF1, "firmware_version", 4, Kind::Firmware),
        special(0xF2, "firmware_version", 3, Kind::Firmware),
    ]
};

/// The object of an id, if the specification has it.
fn object(id: u8) -> Option<&'static Object> {
    OBJECTS.binary_search_by_key(&id, |o| o.id).ok().and_then(|i| OBJECTS.get(i))
}

/// Reads BTHome v2 (`0xFCD2`) or v1 (`0x181C`, `0x181E`) service data; `Ok(None)` when the
/// advertisement has none. `key` is the device's 16-byte bind key, needed for encrypted frames.
pub fn decode(adv: &Advertisement, key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    if let Some(data) = adv.service_data16(UUID_V2) {
        return decode_v2(adv, data, key).map(Some);
    }
    if let Some(data) = adv.service_data16(UUID_V1) {
        return decode_v1(adv, data, None).map(Some);
    }
    if let Some(data) = adv.service_data16(UUID_V1_ENCRYPTED) {
        let key = key.ok_or(DecodeError::NeedsKey { format: FORMAT_V1 })?;
        return decode_v1(adv, data, Some(key)).map(Some);
    }
    Ok(None)
}

/// Reads v2 service data (after the UUID).
fn decode_v2(adv: &Advertisement, data: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let (&info, rest) =
        data.split_first().ok_or_else(|| DecodeError::malformed(FORMAT, "no device information byte"))?;
    let version = info >> 5;
    if version != 2 {
        return Err(DecodeError::Unsupported {
            format: FORMAT,
            what: format!("version {version} in the 0xFCD2 service data (device information byte 0x{info:02X})"),
        });
    }
    let (mac, rest) = if info & 0b10 != 0 {
        let (reversed, rest) = rest.split_at_checked(6).ok_or_else(|| {
            DecodeError::malformed(FORMAT, "the MAC address flag is set but the address is cut short")
        })?;
        let mut mac = [0u8; 6];
        for (m, r) in mac.iter_mut().zip(reversed.iter().rev()) {
            *m = *r;
        }
        (mac, rest)
    } else {
        (adv.address.0, rest)
    };
    let mut frame = Frame::default();
    let encrypted = info & 1 != 0;
    let payload = if encrypted {
        let key = key.ok_or(DecodeError::NeedsKey { format: FORMAT })?;
        let [m0, m1, m2, m3, m4, m5] = mac;
        let (plain, counter) = open::<U13>(FORMAT, key, &[m0, m1, m2, m3, m4, m5, 0xD2, 0xFC, info], &[], rest)?;
        frame.counter = Some(counter);
        Cow::Owned(plain)
    } else {
        Cow::Borrowed(rest)
    };
    read_v2(&payload, &mut frame)?;
    Ok(frame.finish(model(adv, "BTHome v2 sensor"), encrypted))
}

/// Reads v1 service data (after the UUID), decrypting it with `key` when given.
fn decode_v1(adv: &Advertisement, data: &[u8], key: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let mut frame = Frame::default();
    let payload = match key {
        Some(key) => {
            let [m0, m1, m2, m3, m4, m5] = adv.address.0;
            let (plain, counter) = open::<U12>(FORMAT_V1, key, &[m0, m1, m2, m3, m4, m5, 0x1E, 0x18], &[0x11], data)?;
            frame.counter = Some(counter);
            Cow::Owned(plain)
        }
        None => Cow::Borrowed(data),
    };
    read_v1(&payload, &mut frame)?;
    Ok(frame.finish(model(adv, "BTHome v1 sensor"), key.is_some()))
}

/// Decrypts `data` (ciphertext, 4-byte counter, 4-byte MIC) with AES-CCM: the nonce is
/// `nonce_prefix` followed by the counter. Returns the plaintext and the counter.
fn open<N>(
    format: &'static str,
    key: &[u8],
    nonce_prefix: &[u8],
    associated: &[u8],
    data: &[u8],
) -> Result<(Vec<u8>, u32), DecodeError>
where
    N: ArrayLength<u8> + NonceSize,
{
    if key.len() != KEY_LEN {
        return Err(DecodeError::malformed(
            format,
            format!("the bind key must be {KEY_LEN} bytes (32 hex digits), this one has {}", key.len()),
        ));
    }
    let too_short = || {
        DecodeError::malformed(
            format,
            format!("{} bytes are too few for an encrypted frame (counter and MIC)", data.len()),
        )
    };
    let (rest, mic) = data.split_last_chunk::<4>().ok_or_else(too_short)?;
    let (ciphertext, counter) = rest.split_last_chunk::<4>().ok_or_else(too_short)?;
    let nonce = GenericArray::<u8, N>::from_exact_iter(nonce_prefix.iter().chain(counter.iter()).copied())
        .ok_or_else(|| DecodeError::malformed(format, "nonce of the wrong length"))?;
    let cipher = Ccm::<Aes128, U4, N>::new_from_slice(key)
        .map_err(|_| DecodeError::malformed(format, format!("the bind key must be {KEY_LEN} bytes")))?;
    let mut plain = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(&nonce, associated, &mut plain, &GenericArray::from(*mic))
        .map_err(|_| DecodeError::WrongKey { format })?;
    Ok((plain, u32::from_le_bytes(*counter)))
}

/// Reads v2 objects into `frame`.
fn read_v2(payload: &[u8], frame: &mut Frame) -> Result<(), DecodeError> {
    let mut at = 0;
    while let Some(&id) = payload.get(at) {
        let Some(obj) = object(id) else {
            if frame.objects == 0 {
                return Err(DecodeError::malformed(
                    FORMAT,
                    format!("unknown object id 0x{id:02X} at byte {at}: its length is unknown, nothing could be read"),
                ));
            }
            // Unknown ids are newer than this decoder and come after the known ones: keep what was read.
            break;
        };
        let (start, len) = if obj.len == VARIABLE {
            let len = payload.get(at + 1).ok_or_else(|| truncated(obj, at))?;
            (at + 2, usize::from(*len))
        } else {
            (at + 1, usize::from(obj.len))
        };
        let value = payload.get(start..start + len).ok_or_else(|| truncated(obj, at))?;
        let number = match obj.kind {
            Kind::Text | Kind::Raw => None,
            _ if obj.signed => Some(le_i(value) as f64),
            _ => Some(le_u(value) as f64),
        };
        frame.apply(obj, value, number);
        at = start + len;
    }
    Ok(())
}

/// The error of an object running past the end of the frame.
fn truncated(obj: &Object, at: usize) -> DecodeError {
    DecodeError::malformed(FORMAT, format!("object 0x{:02X} ({}) at byte {at} runs past the end", obj.id, obj.key))
}

/// Reads v1 objects into `frame`.
fn read_v1(payload: &[u8], frame: &mut Frame) -> Result<(), DecodeError> {
    let mut at = 0;
    while let Some(&control) = payload.get(at) {
        let len = usize::from(control & 0x1F);
        let format = control >> 5;
        let body = payload.get(at + 1..at + 1 + len).ok_or_else(|| {
            DecodeError::malformed(FORMAT_V1, format!("the object at byte {at} ({len} bytes) runs past the end"))
        })?;
        at += 1 + len;
        // An empty object (padding) has nothing to read; format 4 is the sender's MAC address,
        // not a measurement; 6 and 7 are not defined. Their lengths are known: skip them.
        let Some((&id, value)) = body.split_first() else { continue };
        let Some(obj) = object(id) else { continue };
        let number = match format {
            0 | 5 => int_v1(value, false)?,
            1 => int_v1(value, true)?,
            2 => float_v1(value)?,
            3 => None,
            _ => continue,
        };
        frame.apply(obj, value, number);
    }
    Ok(())
}

/// A v1 integer of 0 to 8 bytes (`None` when empty).
fn int_v1(value: &[u8], signed: bool) -> Result<Option<f64>, DecodeError> {
    match value.len() {
        0 => Ok(None),
        1..=8 if signed => Ok(Some(le_i(value) as f64)),
        1..=8 => Ok(Some(le_u(value) as f64)),
        n => Err(DecodeError::malformed(FORMAT_V1, format!("an integer of {n} bytes"))),
    }
}

/// A v1 float of 2, 4 or 8 bytes (`None` when empty or not a finite number).
fn float_v1(value: &[u8]) -> Result<Option<f64>, DecodeError> {
    let v = if let Ok(b) = <[u8; 2]>::try_from(value) {
        half_to_f64(u16::from_le_bytes(b))
    } else if let Ok(b) = <[u8; 4]>::try_from(value) {
        f64::from(f32::from_le_bytes(b))
    } else if let Ok(b) = <[u8; 8]>::try_from(value) {
        f64::from_le_bytes(b)
    } else if value.is_empty() {
        return Ok(None);
    } else {
        return Err(DecodeError::malformed(FORMAT_V1, format!("a float of {} bytes (2, 4 or 8)", value.len())));
    };
    Ok(v.is_finite().then_some(v))
}

/// An IEEE 754 half-precision float.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1F);
    let fraction = f64::from(bits & 0x3FF);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1F if fraction == 0.0 => sign * f64::INFINITY,
        0x1F => f64::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// Decimal places of a factor (0.01 → 2, 0.35 → 2, 1 → 0), to round its products to.
fn decimals(factor: f64) -> i32 {
    (0..9)
        .find(|&d| {
            let scaled = factor * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-9
        })
        .unwrap_or(9)
}

/// The model: a known product's, else the generic one.
fn model(adv: &Advertisement, generic: &str) -> String {
    let name = adv.name.as_deref().map(str::trim).unwrap_or_default();
    KNOWN_MODELS.iter().find(|(n, _)| *n == name).map_or(generic, |&(_, m)| m).to_owned()
}

/// What a frame said so far.
#[derive(Debug, Default)]
struct Frame {
    readings: Vec<Reading>,
    events: Vec<BleEvent>,
    packet_id: Option<u32>,
    /// The encryption counter, when encrypted.
    counter: Option<u32>,
    /// How many values of each key were seen (for the `_2` suffixes).
    seen: BTreeMap<&'static str, u32>,
    /// How many objects were read.
    objects: usize,
}

impl Frame {
    /// The key of the next value of `base`: `base`, then `base_2`, `base_3` ...
    fn key(&mut self, base: &'static str) -> String {
        let n = self.seen.entry(base).or_insert(0);
        *n += 1;
        if *n == 1 { base.to_owned() } else { format!("{base}_{n}") }
    }

    /// Adds what one object says: its bytes and, for integers and floats, its unscaled number.
    fn apply(&mut self, obj: &Object, bytes: &[u8], number: Option<f64>) {
        self.objects += 1;
        match obj.kind {
            Kind::Number { capability, unit, factor } => {
                let Some(n) = number else { return };
                let key = self.key(obj.key);
                let v = round(n * factor, decimals(factor));
                self.readings.push(match capability {
                    Capability::Other => Reading::other(&key, Value::Number(v), unit),
                    c => Reading::number(&key, c, v),
                });
            }
            Kind::Flag(capability) => {
                let Some(n) = number else { return };
                let key = self.key(obj.key);
                self.readings.push(match capability {
                    Capability::Other => Reading::other(&key, Value::Bool(n != 0.0), None),
                    c => Reading::flag(&key, c, n != 0.0),
                });
            }
            Kind::Open => {
                let Some(n) = number else { return };
                let key = self.key(obj.key);
                self.readings.push(Reading::flag(&key, Capability::Contact, n == 0.0));
            }
            Kind::Lock => {
                let Some(n) = number else { return };
                let key = self.key(obj.key);
                let state = if n == 0.0 { "locked" } else { "unlocked" };
                self.readings.push(Reading {
                    key,
                    capability: Capability::Lock,
                    value: Value::Text(state.to_owned()),
                    unit: None,
                });
            }
            Kind::PacketId => {
                if self.packet_id.is_none() {
                    // Saturating: a v1 packet id could be wider than 32 bits or negative.
                    self.packet_id = number.map(|n| n as u32);
                }
            }
            Kind::Button => {
                let key = self.key(obj.key);
                let event = match bytes.first().copied() {
                    Some(0x01) => "press",
                    Some(0x02) => "double_press",
                    Some(0x03) => "triple_press",
                    Some(0x04) => "long_press",
                    Some(0x05) => "long_double_press",
                    Some(0x06) => "long_triple_press",
                    // 0xFE: hold, as sent by Shelly BLU Button firmware before 1.0.20.
                    Some(0x80 | 0xFE) => "hold_press",
                    // 0x00 "none" (or an event this decoder does not know): nothing happened.
                    _ => return,
                };
                self.events.push(BleEvent { key, event, values: BUTTON_EVENTS });
            }
            Kind::Dimmer => {
                let key = self.key(obj.key);
                let event = match bytes.first().copied() {
                    Some(0x01) => "rotate_left",
                    Some(0x02) => "rotate_right",
                    _ => return,
                };
                let steps = bytes.get(1).copied().unwrap_or(0);
                self.readings.push(Reading::other(&format!("{key}_steps"), Value::Number(f64::from(steps)), None));
                self.events.push(BleEvent { key, event, values: DIMMER_EVENTS });
            }
            Kind::Text => {
                let key = self.key(obj.key);
                self.readings.push(Reading::other(
                    &key,
                    Value::Text(String::from_utf8_lossy(bytes).into_owned()),
                    None,
                ));
            }
            Kind::Raw => {
                let key = self.key(obj.key);
                let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
                self.readings.push(Reading::other(&key, Value::Text(hex), None));
            }
            Kind::Timestamp => {
                let Some(seconds) = number.filter(|s| s.abs() < 1e12) else { return };
                let key = self.key(obj.key);
                let at = Timestamp::from_millis((seconds as i64).saturating_mul(1000));
                self.readings.push(Reading::other(&key, Value::Text(at.to_string()), None));
            }
            Kind::DeviceType => {
                let Some(n) = number else { return };
                let key = self.key(obj.key);
                self.readings.push(Reading::other(&key, Value::Number(n), None));
            }
            Kind::Firmware => {
                let key = self.key(obj.key);
                let parts: Vec<String> = bytes.iter().rev().map(u8::to_string).collect();
                self.readings.push(Reading::other(&key, Value::Text(parts.join(".")), None));
            }
        }
    }

    /// The decoded frame.
    fn finish(self, model: String, encrypted: bool) -> Decoded {
        Decoded {
            brand: "BTHome",
            model,
            readings: self.readings,
            events: self.events,
            packet_id: self.packet_id.or(self.counter),
            encrypted,
            identity: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Address, uuid16};
    use super::*;
    use crate::decode::testing::{XorShift, hex};

    const SHELLY_MAC: &str = "54:48:E6:8F:80:A5";
    const ATC_MAC: &str = "A4:C1:38:8D:18:B2";
    /// The bind key of the examples on bthome.io and in the reference receiver's tests.
    const KEY: &str = "231d39c1d7cc1ab1aee224cd096db932";
    const WRONG_KEY: &str = "814aac74c4f17b6c1581e1ab87816b99";

    fn adv_with(uuid: u16, mac: &str, name: Option<&str>, data: &[u8]) -> Advertisement {
        let mut adv = Advertisement {
            address: mac.parse::<Address>().expect("address"),
            rssi: Some(-60),
            name: name.map(str::to_owned),
            ..Advertisement::default()
        };
        adv.service_data.insert(uuid16(uuid), data.to_vec());
        adv
    }

    fn v2(data: &str) -> Advertisement {
        adv_with(UUID_V2, ATC_MAC, None, &hex(data))
    }

    fn ok(adv: &Advertisement, key: Option<&str>) -> Decoded {
        let key = key.map(hex);
        decode(adv, key.as_deref()).expect("decodes").expect("is BTHome")
    }

    fn n(key: &str, capability: Capability, v: f64) -> Reading {
        Reading::number(key, capability, v)
    }

    fn o(key: &str, v: f64, unit: Option<&'static str>) -> Reading {
        Reading::other(key, Value::Number(v), unit)
    }

    fn b(key: &str, v: bool) -> Reading {
        Reading::other(key, Value::Bool(v), None)
    }

    fn t(key: &str, v: &str) -> Reading {
        Reading::other(key, Value::Text(v.to_owned()), None)
    }

    fn button(key: &str, event: &'static str) -> BleEvent {
        BleEvent { key: key.to_owned(), event, values: BUTTON_EVENTS }
    }

    /// bthome.io, format page: the example advertisement `0A16D2FC4002C40903BF13`.
    #[test]
    fn specification_example() {
        let d = ok(&adv_with(UUID_V2, ATC_MAC, Some("DIY-sensor"), &hex("4002C40903BF13")), None);
        assert_eq!(d.brand, "BTHome");
        assert_eq!(d.model, "BTHome v2 sensor");
        assert_eq!(
            d.readings,
            vec![n("temperature", Capability::Temperature, 25.0), n("humidity", Capability::Humidity, 50.55)]
        );
        assert_eq!(d.events, vec![]);
        assert_eq!(d.packet_id, None);
        assert!(!d.encrypted);
        assert_eq!(d.identity, None);
    }

    /// Every example of the bthome.io object tables (sensor, binary sensor, device information),
    /// each alone in a frame: object bytes, then the one reading it gives.
    #[test]
    fn every_object_of_the_specification_tables() {
        use Capability::*;
        let cases: Vec<(&str, Reading)> = vec![
            ("518756", o("acceleration", 22.151, Some("m/s²"))),
            ("0161", n("battery", Battery, 97.0)),
            ("12E204", n("co2", Co2, 1250.0)),
            ("56E803", o("conductivity", 1000.0, Some("µS/cm"))),
            ("0960", o("count", 96.0, None)),
            ("3D0960", o("count", 24585.0, None)),
            ("3E2A2C0960", o("count", 1_611_213_866.0, None)),
            ("59EA", o("count", -22.0, None)),
            ("5AEAEA", o("count", -5398.0, None)),
            ("5BEA0234EA", o("count", -365_690_134.0, None)),
            ("434E34", n("current", Current, 13.39)),
            ("5D02EA", n("current", Current, -5.63)),
            ("08CA06", o("dew_point", 17.38, Some("°C"))),
            ("400C00", o("distance", 12.0, Some("mm"))),
            ("414E00", o("distance", 7.8, Some("m"))),
            ("424E3400", n("duration", Duration, 13.39)),
            ("4D12138A14", n("energy", Energy, 344_593.17)),
            ("0A138A14", n("energy", Energy, 1346.067)),
            ("4B138A14", o("gas_volume", 1346.067, Some("m³"))),
            ("4C41018A01", o("gas_volume", 25821.505, Some("m³"))),
            ("528756", o("gyroscope", 22.151, Some("°/s"))),
            ("03BF13", n("humidity", Humidity, 50.55)),
            ("2E23", n("humidity", Humidity, 35.0)),
            ("05138A14", n("illuminance", Illuminance, 13460.67)),
            ("065E1F", o("mass", 80.3, Some("kg"))),
            ("073E1D", o("mass", 74.86, Some("lb"))),
            ("14020C", n("moisture", Moisture, 30.74)),
            ("2F23", n("moisture", Moisture, 35.0)),
            ("0D120C", n("pm25", Pm25, 3090.0)),
            ("0E021C", n("pm10", Pm10, 7170.0)),
            ("0B021B00", n("power", Power, 69.14)),
            ("5C02FBFFFF", n("power", Power, -12.78)),
            ("04138A01", n("pressure", Pressure, 1008.83)),
            ("540C48656C6C6F20576F726C6421", t("raw", "48656c6c6f20576f726c6421")),
            ("3F020C", o("rotation", 307.4, Some("°"))),
            ("444E34", o("speed", 133.9, Some("m/s"))),
            ("57EA", n("temperature", Temperature, -22.0)),
            ("58EA", n("temperature", Temperature, -7.7)),
            ("451101", n("temperature", Temperature, 27.3)),
            ("02CA09", n("temperature", Temperature, 25.06)),
            ("530C48656C6C6F20576F726C6421", t("text", "Hello World!")),
            ("505D396164", t("timestamp", "2023-05-14T19:41:17.000Z")),
            ("133301", o("tvoc", 307.0, Some("µg/m³"))),
            ("0C020C", n("voltage", Voltage, 3.074)),
            ("4A020C", n("voltage", Voltage, 307.4)),
            ("4E87562A01", o("volume", 19551.879, Some("L"))),
            ("478756", o("volume", 2215.1, Some("L"))),
            ("48DC87", o("volume", 34780.0, Some("mL"))),
            ("5587562A01", o("volume_storage", 19551.879, Some("L"))),
            ("49DC87", o("volume_flow_rate", 34.78, Some("m³/h"))),
            ("4632", o("uv_index", 5.0, None)),
            ("4F87562A01", o("water", 19551.879, Some("L"))),
            ("5E9F8C", o("direction", 359.99, Some("°"))),
            // Precipitation's factor is 0.1 mm since bthome.io PR #58 (the reference receiver's test).
            ("5F11D5", o("precipitation", 5454.5, Some("mm"))),
            // Objects added after the table above, with the reference receiver's test values.
            ("6001", o("channel", 1.0, None)),
            ("61AC0D", o("rotational_speed", 3500.0, Some("rpm"))),
            ("630057D0FF", o("acceleration", -3.123456, Some("m/s²"))),
            ("620057D0FF", o("speed", -3.123456, Some("m/s"))),
            ("6402", o("light_level", 2.0, None)),
            // Binary sensors.
            ("1501", Reading::flag("battery_low", BatteryLow, true)),
            ("1601", b("battery_charging", true)),
            ("1700", Reading::flag("carbon_monoxide", CarbonMonoxide, false)),
            ("1801", b("cold", true)),
            ("1900", b("connectivity", false)),
            ("1A00", Reading::flag("door", Contact, true)),
            ("1B01", Reading::flag("garage_door", Contact, false)),
            ("1C01", Reading::flag("gas", Gas, true)),
            ("0F01", b("generic", true)),
            ("1D00", b("heat", false)),
            ("1E01", b("light", true)),
            (
                "1F01",
                Reading { key: "lock".into(), capability: Lock, value: Value::Text("unlocked".into()), unit: None },
            ),
            ("2001", Reading::flag("water_leak", WaterLeak, true)),
            ("2100", Reading::flag("motion", Occupancy, false)),
            ("2201", b("moving", true)),
            ("2301", Reading::flag("occupancy", Occupancy, true)),
            ("1100", Reading::flag("opening", Contact, true)),
            ("2400", b("plug", false)),
            ("1001", Reading::flag("on_off", OnOff, true)),
            ("2500", b("presence", false)),
            ("2601", b("problem", true)),
            ("2701", b("running", true)),
            ("2800", b("safety", false)),
            ("2901", Reading::flag("smoke", Smoke, true)),
            ("2A00", b("sound", false)),
            ("2B00", Reading::flag("tamper", Tamper, false)),
            ("2C01", Reading::flag("vibration", Vibration, true)),
            ("2D01", Reading::flag("window", Contact, false)),
            // Device information.
            ("F00100", o("device_type_id", 1.0, None)),
            ("F100010204", t("firmware_version", "4.2.1.0")),
            ("F2000106", t("firmware_version", "6.1.0")),
        ];
        // Together with the packet id, button and dimmer tests below, every id of the table.
        let mut covered: Vec<u8> = cases.iter().map(|(bytes, _)| hex(bytes)[0]).chain([0x00, 0x3A, 0x3C]).collect();
        covered.sort_unstable();
        covered.dedup();
        assert_eq!(covered, OBJECTS.iter().map(|o| o.id).collect::<Vec<_>>());
        for (bytes, expected) in cases {
            let d = ok(&v2(&format!("40{bytes}")), None);
            assert_eq!(d.readings, vec![expected], "object {bytes}");
            assert_eq!(d.events, vec![], "object {bytes}");
            assert_eq!(d.packet_id, None, "object {bytes}");
        }
        // A locked lock and a closed window, the other way round.
        assert_eq!(
            ok(&v2("401F002D00"), None).readings,
            vec![
                Reading { key: "lock".into(), capability: Lock, value: Value::Text("locked".into()), unit: None },
                Reading::flag("window", Contact, true),
            ]
        );
    }

    /// The table is sorted (for the binary search) and has every id of the specification.
    #[test]
    fn the_table_is_sorted_and_complete() {
        assert!(OBJECTS.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(OBJECTS.len(), 93);
        assert!(object(0x3B).is_none());
        assert!(object(0x65).is_none());
        assert!(object(0xFF).is_none());
    }

    /// bthome.io, format page: packet id, and button and dimmer events.
    #[test]
    fn packet_id_and_events() {
        let d = ok(&v2("400009"), None);
        assert_eq!(d.packet_id, Some(9));
        assert_eq!(d.readings, vec![]);

        let presses = [
            ("01", "press"),
            ("02", "double_press"),
            ("03", "triple_press"),
            ("04", "long_press"),
            ("05", "long_double_press"),
            ("06", "long_triple_press"),
            ("80", "hold_press"),
        ];
        for (id, event) in presses {
            let d = ok(&v2(&format!("403A{id}")), None);
            assert_eq!(d.events, vec![button("button", event)], "button event {id}");
            assert_eq!(d.readings, vec![]);
        }
        assert_eq!(ok(&v2("403A00"), None).events, vec![]);

        let d = ok(&v2("403C0103"), None);
        assert_eq!(d.events, vec![BleEvent { key: "dimmer".into(), event: "rotate_left", values: DIMMER_EVENTS }]);
        assert_eq!(d.readings, vec![o("dimmer_steps", 3.0, None)]);
        let d = ok(&v2("403C020A"), None);
        assert_eq!(d.events, vec![BleEvent { key: "dimmer".into(), event: "rotate_right", values: DIMMER_EVENTS }]);
        assert_eq!(d.readings, vec![o("dimmer_steps", 10.0, None)]);
        let d = ok(&v2("403C0000"), None);
        assert_eq!((d.events, d.readings), (vec![], vec![]));

        // bthome.io: `3A003A01` is nothing for the first button and a press of the second.
        let d = ok(&v2("403A003A01"), None);
        assert_eq!(d.events, vec![button("button_2", "press")]);
    }

    /// bthome-ble tests: a device with three buttons, the second pressed, the third triple pressed.
    #[test]
    fn three_buttons() {
        let d = ok(&adv_with(UUID_V2, ATC_MAC, Some("SBBT-004CEU"), &hex("403A003A013A03")), None);
        assert_eq!(d.model, "Shelly BLU Wall Switch 4");
        assert_eq!(d.events, vec![button("button_2", "press"), button("button_3", "triple_press")]);
        assert_eq!(d.readings, vec![]);
    }

    /// bthome-ble tests: a Shelly BLU Button1 press, then its "none" event; and an old
    /// firmware's hold (0xFE, Shelly's documentation).
    #[test]
    fn shelly_button() {
        let adv = adv_with(UUID_V2, ATC_MAC, Some("SBBT-002C"), &hex("440021015E3A01"));
        let d = ok(&adv, None);
        assert_eq!(d.model, "Shelly BLU Button1");
        assert_eq!(d.packet_id, Some(33));
        assert_eq!(d.readings, vec![n("battery", Capability::Battery, 94.0)]);
        assert_eq!(d.events, vec![button("button", "press")]);

        let d = ok(&adv_with(UUID_V2, ATC_MAC, Some("SBBT-002C"), &hex("440023015E3A00")), None);
        assert_eq!(d.packet_id, Some(35));
        assert_eq!(d.readings, vec![n("battery", Capability::Battery, 94.0)]);
        assert_eq!(d.events, vec![]);

        let d = ok(&v2("40005201643A01"), None);
        assert_eq!(d.packet_id, Some(82));
        assert_eq!(d.readings, vec![n("battery", Capability::Battery, 100.0)]);
        assert_eq!(d.events, vec![button("button", "press")]);

        assert_eq!(ok(&v2("443AFE"), None).events, vec![button("button", "hold_press")]);
    }

    /// bthome-ble tests: repeated objects get `_2`, `_3`, whichever object id they came as.
    #[test]
    fn repeated_objects() {
        use Capability::*;
        let d = ok(&v2("4002CA0902CF0902CF0803B71803B717015D"), None);
        assert_eq!(
            d.readings,
            vec![
                n("temperature", Temperature, 25.06),
                n("temperature_2", Temperature, 25.11),
                n("temperature_3", Temperature, 22.55),
                n("humidity", Humidity, 63.27),
                n("humidity_2", Humidity, 60.71),
                n("battery", Battery, 93.0),
            ]
        );
        let d = ok(&v2("4000010B0000004A0D0901330CE90C"), None);
        assert_eq!(d.packet_id, Some(1));
        assert_eq!(
            d.readings,
            vec![
                n("power", Power, 0.0),
                n("voltage", Voltage, 231.7),
                n("battery", Battery, 51.0),
                n("voltage_2", Voltage, 3.305)
            ]
        );
    }

    /// bthome-ble tests: packet id, battery, temperature, humidity; and the Shelly BLU H&T
    /// Display ZB (objects out of order, a one-byte humidity, a 0.1 °C temperature).
    #[test]
    fn sensors_with_packet_id() {
        use Capability::*;
        let d = ok(&v2("400009015D025D0903B718"), None);
        assert_eq!(d.packet_id, Some(9));
        assert_eq!(
            d.readings,
            vec![n("battery", Battery, 93.0), n("temperature", Temperature, 23.97), n("humidity", Humidity, 63.27)]
        );

        let d = ok(&adv_with(UUID_V2, SHELLY_MAC, Some("SBHT-103C"), &hex("40002E01641E012E34451601")), None);
        assert_eq!(d.model, "Shelly BLU H&T Display ZB");
        assert_eq!(d.packet_id, Some(46));
        assert_eq!(
            d.readings,
            vec![
                n("battery", Battery, 100.0),
                b("light", true),
                n("humidity", Humidity, 52.0),
                n("temperature", Temperature, 27.8)
            ]
        );
        assert_eq!(d.events, vec![]);

        // bthome-ble tests: packet id, voltage and a binary power object.
        let d = ok(&v2("4000A70C780B1000"), None);
        assert_eq!(d.packet_id, Some(167));
        assert_eq!(d.readings, vec![n("voltage", Voltage, 2.936), Reading::flag("on_off", OnOff, false)]);
    }

    /// bthome.io, encryption page: the encrypted example with its key and MAC address.
    #[test]
    fn encrypted_specification_example() {
        let adv = adv_with(UUID_V2, SHELLY_MAC, None, &hex("41e445f3c9962b332211006c7c4519"));
        let d = ok(&adv, Some(KEY));
        assert!(d.encrypted);
        assert_eq!(
            d.readings,
            vec![n("temperature", Capability::Temperature, 25.06), n("humidity", Capability::Humidity, 50.55)]
        );
        assert_eq!(d.events, vec![]);
        // No packet id object: the counter 0x00112233 (1122867) tells packets apart.
        assert_eq!(d.packet_id, Some(1_122_867));
        assert_eq!(d.model, "BTHome v2 sensor");
    }

    /// bthome-ble tests: more encrypted frames with the same key (a Shelly BLU H&T, a Shelly BLU
    /// Motion, counters 0x33221100, 0x00112234, 0xFFFFFFFF and 0) and one with the MAC in the frame.
    #[test]
    fn encrypted_frames() {
        use Capability::*;
        let th = vec![n("temperature", Temperature, 25.06), n("humidity", Humidity, 50.55)];
        let adv = adv_with(UUID_V2, SHELLY_MAC, Some("SBHT-003C"), &hex("41a47266c95f730011223378237214"));
        let d = ok(&adv, Some(KEY));
        assert_eq!(d.model, "Shelly BLU H&T");
        assert_eq!((d.readings, d.events, d.packet_id, d.encrypted), (th.clone(), vec![], Some(0x3322_1100), true));

        // The reference tests check only the counters; the MIC proves these plaintexts authentic.
        for (frame, counter, temperature) in [
            ("413e932cc7175f34221100553876af", 1_122_868, 25.06),
            ("41723d3035fb88322211009e7414c0", 1_122_866, 25.06),
            ("41ba0db07aeef6ffffffff21fd4600", u32::MAX, 25.07),
            ("41de40b50e676600000000d7cb95de", 0, 25.07),
        ] {
            let d = ok(&adv_with(UUID_V2, SHELLY_MAC, None, &hex(frame)), Some(KEY));
            let expected = vec![n("temperature", Temperature, temperature), n("humidity", Humidity, 50.55)];
            assert_eq!(
                (d.readings, d.events, d.packet_id, d.encrypted),
                (expected, vec![], Some(counter), true),
                "{frame}"
            );
        }

        let d = ok(&adv_with(UUID_V2, SHELLY_MAC, Some("SBMO-003Z"), &hex("4187b90011223372b0231f")), Some(KEY));
        assert_eq!(d.model, "Shelly BLU Motion");
        assert_eq!(
            (d.readings, d.events, d.packet_id),
            (vec![Reading::flag("motion", Occupancy, true)], vec![], Some(0x3322_1100))
        );

        // The MAC address in the frame (bit 1), reversed, makes the nonce: the address heard does not matter.
        let frame = hex("43a5808fe64854f196c06ffb4900112233f08ecbde");
        let d = ok(&adv_with(UUID_V2, ATC_MAC, None, &frame), Some(KEY));
        assert_eq!((d.readings, d.encrypted), (th, true));
    }

    /// bthome-ble tests: the MAC address flag on a plaintext frame.
    #[test]
    fn plaintext_with_mac() {
        let d = ok(&v2("42b2188d38c1a404138a01"), None);
        assert_eq!(d.readings, vec![n("pressure", Capability::Pressure, 1008.83)]);
        assert!(!d.encrypted);
    }

    #[test]
    fn encrypted_without_key_or_with_the_wrong_one() {
        let adv = adv_with(UUID_V2, SHELLY_MAC, None, &hex("41e445f3c9962b332211006c7c4519"));
        assert_eq!(decode(&adv, None), Err(DecodeError::NeedsKey { format: FORMAT }));
        assert_eq!(decode(&adv, Some(&hex(WRONG_KEY))), Err(DecodeError::WrongKey { format: FORMAT }));
        // The right key, another device's address: the nonce differs.
        let other = adv_with(UUID_V2, ATC_MAC, None, &hex("41e445f3c9962b332211006c7c4519"));
        assert_eq!(decode(&other, Some(&hex(KEY))), Err(DecodeError::WrongKey { format: FORMAT }));
        // bthome-ble tests: the "key needed" frame, with the wrong key.
        let adv = adv_with(UUID_V2, ATC_MAC, None, &hex("41d2fcefe52eb212d600112233bc38c966"));
        assert_eq!(decode(&adv, None), Err(DecodeError::NeedsKey { format: FORMAT }));
        assert_eq!(decode(&adv, Some(&hex(WRONG_KEY))), Err(DecodeError::WrongKey { format: FORMAT }));
        // A key of the wrong length (24 bytes, as in the reference receiver's test).
        let adv = adv_with(UUID_V2, SHELLY_MAC, None, &hex("41a47266c95f730011223378237214"));
        let long = hex("231d39c1d7cc1ab1aee224cd096db932231d39c1d7cc1ab1");
        match decode(&adv, Some(&long)) {
            Err(DecodeError::Malformed { why, .. }) => assert!(why.contains("16 bytes") && why.contains("24"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Too short to hold a counter and a MIC.
        assert!(matches!(
            decode(&adv_with(UUID_V2, SHELLY_MAC, None, &hex("41ba0db07aeef600")), Some(&hex(KEY))),
            Err(DecodeError::Malformed { .. })
        ));
        // A plaintext frame decodes with or without a key.
        assert!(!ok(&v2("4002CA09"), Some(KEY)).encrypted);
    }

    /// bthome-ble tests: an unknown object id stops parsing; what was read before it is kept.
    #[test]
    fn unknown_object_ids() {
        let d = ok(&v2("40015DFE5D0903B718"), None);
        assert_eq!(d.readings, vec![n("battery", Capability::Battery, 93.0)]);
        match decode(&v2("40FECA09"), None) {
            Err(DecodeError::Malformed { why, .. }) => assert!(why.contains("0xFE"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A packet id counts as read.
        assert_eq!(ok(&v2("400007FE"), None).packet_id, Some(7));
    }

    #[test]
    fn bad_frames() {
        // bthome-ble tests: the humidity is one byte short.
        assert!(matches!(decode(&v2("4002CA0903BF"), None), Err(DecodeError::Malformed { .. })));
        // Versions other than 2 (bthome-ble tests: 0xE1 is version 7, 0x00 version 0).
        assert!(matches!(decode(&v2("E102000C0404138A01"), None), Err(DecodeError::Unsupported { .. })));
        assert!(matches!(decode(&v2("00"), None), Err(DecodeError::Unsupported { .. })));
        assert!(matches!(decode(&v2(""), None), Err(DecodeError::Malformed { .. })));
        // A text whose length runs past the end, invalid UTF-8 (replaced), an empty text.
        assert!(matches!(decode(&v2("40530548656C"), None), Err(DecodeError::Malformed { .. })));
        assert_eq!(ok(&v2("44530187"), None).readings, vec![t("text", "\u{FFFD}")]);
        assert_eq!(ok(&v2("445300"), None).readings, vec![t("text", "")]);
        // Just the device information byte: BTHome, nothing measured.
        let d = ok(&v2("40"), None);
        assert_eq!((d.readings, d.events, d.packet_id), (vec![], vec![], None));
        // Not BTHome.
        assert_eq!(decode(&adv_with(0x181A, ATC_MAC, None, &hex("4002CA09")), None), Ok(None));
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
    }

    /// bthome.io, v1 page: the example advertisement `0B161C182302C4090303BF13`.
    #[test]
    fn v1_specification_example() {
        let d = ok(&adv_with(UUID_V1, ATC_MAC, Some("DIY-sensor"), &hex("2302C4090303BF13")), None);
        assert_eq!(d.brand, "BTHome");
        assert_eq!(d.model, "BTHome v1 sensor");
        assert_eq!(
            d.readings,
            vec![n("temperature", Capability::Temperature, 25.0), n("humidity", Capability::Humidity, 50.55)]
        );
        assert_eq!((d.events, d.packet_id, d.encrypted), (vec![], None, false));
    }

    /// bthome.io, v1 page examples and bthome-ble v1 tests.
    #[test]
    fn v1_objects() {
        use Capability::*;
        let v1 = |s: &str| ok(&adv_with(UUID_V1, ATC_MAC, None, &hex(s)), None);
        let cases: Vec<(&str, Vec<Reading>)> = vec![
            ("020161", vec![n("battery", Battery, 97.0)]),
            ("2302CA09", vec![n("temperature", Temperature, 25.06)]),
            ("022E23", vec![n("humidity", Humidity, 35.0)]),
            ("0404138A01", vec![n("pressure", Pressure, 1008.83)]),
            ("0405138A14", vec![n("illuminance", Illuminance, 13460.67)]),
            ("03065E1F", vec![o("mass", 80.3, Some("kg"))]),
            ("03073E1D", vec![o("mass", 74.86, Some("lb"))]),
            ("2308CA06", vec![o("dew_point", 17.38, Some("°C"))]),
            ("020960", vec![o("count", 96.0, None)]),
            ("040A138A14", vec![n("energy", Energy, 1346.067)]),
            ("040B021B00", vec![n("power", Power, 69.14)]),
            ("030C020C", vec![n("voltage", Voltage, 3.074)]),
            ("030D120C030E021C", vec![n("pm25", Pm25, 3090.0), n("pm10", Pm10, 7170.0)]),
            ("0312E204", vec![n("co2", Co2, 1250.0)]),
            ("03133301", vec![o("tvoc", 307.0, Some("µg/m³"))]),
            ("0314020C", vec![n("moisture", Moisture, 30.74)]),
            ("022F23", vec![n("moisture", Moisture, 35.0)]),
            ("020F01", vec![b("generic", true)]),
            ("021001", vec![Reading::flag("on_off", OnOff, true)]),
            ("021100", vec![Reading::flag("opening", Contact, true)]),
            ("021501", vec![Reading::flag("battery_low", BatteryLow, true)]),
            ("021A00", vec![Reading::flag("door", Contact, true)]),
            ("022901", vec![Reading::flag("smoke", Smoke, true)]),
            // A half-precision float (format 2): 10224 × 0.01 kg.
            ("4306FE70", vec![o("mass", 102.24, Some("kg"))]),
            // The timestamp in format 5 (the reference receiver's).
            ("A5505D396164", vec![t("timestamp", "2023-05-14T19:41:17.000Z")]),
            // A MAC address object (format 4) is skipped; so are unknown ids and empty objects.
            ("86A5808FE64854 02FF01 00 020161", vec![n("battery", Battery, 97.0)]),
        ];
        for (frame, expected) in cases {
            let d = v1(&frame.replace(' ', ""));
            assert_eq!(d.readings, expected, "{frame}");
            assert_eq!((d.events, d.packet_id), (vec![], None), "{frame}");
        }

        // bthome-ble v1 tests: a packet id, a binary power object and a voltage.
        let d = v1("0200B4021000030CBE0B");
        assert_eq!(d.packet_id, Some(180));
        assert_eq!(d.readings, vec![Reading::flag("on_off", OnOff, false), n("voltage", Voltage, 3.006)]);

        // Events: a long press, a dimmer turned 3 steps left, "none" then a press.
        assert_eq!(v1("023A04").events, vec![button("button", "long_press")]);
        let d = v1("033C0103");
        assert_eq!(d.events, vec![BleEvent { key: "dimmer".into(), event: "rotate_left", values: DIMMER_EVENTS }]);
        assert_eq!(d.readings, vec![o("dimmer_steps", 3.0, None)]);
        assert_eq!(v1("023A00023A01").events, vec![button("button_2", "press")]);

        // Truncated.
        assert!(matches!(
            decode(&adv_with(UUID_V1, ATC_MAC, None, &hex("2302CA")), None),
            Err(DecodeError::Malformed { .. })
        ));
    }

    /// bthome-ble v1 tests: the encrypted frame (UUID 0x181E) with its key and MAC address.
    #[test]
    fn v1_encrypted() {
        let adv = adv_with(UUID_V1_ENCRYPTED, SHELLY_MAC, None, &hex("fba435e4d3c312fb0011223357d90a99"));
        let d = ok(&adv, Some(KEY));
        assert!(d.encrypted);
        assert_eq!(d.model, "BTHome v1 sensor");
        assert_eq!(
            d.readings,
            vec![n("temperature", Capability::Temperature, 25.06), n("humidity", Capability::Humidity, 50.55)]
        );
        assert_eq!((d.events, d.packet_id), (vec![], Some(0x3322_1100)));
        assert_eq!(decode(&adv, None), Err(DecodeError::NeedsKey { format: FORMAT_V1 }));
        assert_eq!(decode(&adv, Some(&hex(WRONG_KEY))), Err(DecodeError::WrongKey { format: FORMAT_V1 }));
        assert!(matches!(decode(&adv, Some(&hex("231d39c1"))), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn half_floats() {
        assert_eq!(half_to_f64(0x3C00), 1.0);
        assert_eq!(half_to_f64(0xC000), -2.0);
        assert_eq!(half_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(half_to_f64(0x7C00), f64::INFINITY);
        assert!(half_to_f64(0x7E00).is_nan());
        assert_eq!(decimals(0.35), 2);
        assert_eq!(decimals(0.000_001), 6);
        assert_eq!(decimals(1.0), 0);
    }

    /// Runs the decoder; it must return, whatever the bytes (a panic fails the test).
    fn survives(uuid: u16, data: &[u8]) {
        let keys = [None, Some(hex(KEY)), Some(hex(WRONG_KEY)), Some(vec![1, 2, 3])];
        for key in &keys {
            let adv = adv_with(uuid, SHELLY_MAC, Some("SBHT-003C"), data);
            let _ = decode(&adv, key.as_deref());
        }
    }

    /// Every prefix of every test frame errs or decodes, without panicking.
    #[test]
    fn every_prefix_of_the_test_frames() {
        let frames = [
            (UUID_V2, "4002C40903BF13"),
            (UUID_V2, "41e445f3c9962b332211006c7c4519"),
            (UUID_V2, "43a5808fe64854f196c06ffb4900112233f08ecbde"),
            (UUID_V2, "4002CA0902CF0902CF0803B71803B717015D"),
            (UUID_V2, "40530C48656C6C6F20576F726C6421540C48656C6C6F20576F726C6421"),
            (UUID_V2, "40003A003A013A033C0103505D396164F100010204F2000106F00100"),
            (UUID_V2, "42b2188d38c1a404138a01"),
            (UUID_V1, "2302C4090303BF13"),
            (UUID_V1, "4306FE70A5505D39616486A5808FE64854033C0103"),
            (UUID_V1_ENCRYPTED, "fba435e4d3c312fb0011223357d90a99"),
        ];
        for (uuid, frame) in frames {
            let bytes = hex(frame);
            for end in 0..=bytes.len() {
                survives(uuid, &bytes[..end]);
            }
        }
    }

    /// Thousands of pseudo-random byte strings, alone and after valid headers.
    #[test]
    fn random_bytes() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for round in 0..4000 {
            let mut data = rng.bytes(40);
            match round % 4 {
                0 => {}
                1 => data.insert(0, 0x40),
                2 => data.insert(0, 0x41),
                _ => data.insert(0, 0x43),
            }
            survives(UUID_V2, &data);
            survives(UUID_V1, &data);
            survives(UUID_V1_ENCRYPTED, &data);
        }
        // Every single object id followed by a few random bytes.
        for id in 0..=255u8 {
            for _ in 0..8 {
                let mut data = vec![0x40, id];
                data.extend(rng.bytes(6));
                survives(UUID_V2, &data);
            }
        }
    }
}
