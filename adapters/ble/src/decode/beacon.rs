//! Presence beacons: Apple iBeacon and Google Eddystone.
//!
//! These say who is there, rarely what is measured, and many rotate their address: the decoded
//! [`Decoded::identity`] is what keys the device. Whether a beacon is present (seen lately or not)
//! is the adapter's to say, not a decoder's.
//!
//! iBeacon (manufacturer data of Apple, company `0x004C`): type `0x02`, length `0x15`, the 16-byte
//! proximity UUID, major and minor (big-endian u16), the measured power (i8, dBm at 1 m).
//! Identity `ibeacon:<uuid, lowercase with dashes>:<major>:<minor>`. Apple's other
//! manufacturer-data types (Handoff, Nearby, Find My, ...) are not beacons: `Ok(None)`.
//!
//! Eddystone (service data of UUID `0xFEAA`; all multi-byte values big-endian), by frame type:
//!
//! - `0x00` UID: tx power (i8, dBm at 0 m), 10-byte namespace, 6-byte instance (and 2 reserved
//!   bytes, often left out). Identity `eddystone:<namespace hex>:<instance hex>`.
//! - `0x10` URL: tx power, a scheme prefix byte (`http://www.`, `https://www.`, `http://`,
//!   `https://`), then the URL in printable ASCII with bytes `0x00`-`0x0D` standing for `.com/`,
//!   `.org/`, ... `.gov`. Identity `eddystone-url:<url>`.
//! - `0x20` TLM, version `0x00`: battery in mV (0: not measured), temperature in signed 8.8 fixed
//!   point °C (`0x8000`: not measured), advertisement count, time since boot in 0.1 s. TLM frames
//!   carry no id: they belong to the address that also sends the UID or URL frames. Version `0x01`
//!   (encrypted with the EID identity key) is [`DecodeError::Unsupported`].
//! - `0x30` EID: an encrypted identifier that changes every few minutes and only its registered
//!   resolver can map to a beacon: [`DecodeError::Unsupported`], as are frame types not listed.

use hearth_sdk::{Capability, Value};

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// Apple's company id.
const APPLE: u16 = 0x004C;
/// The Eddystone service UUID.
const EDDYSTONE: u16 = 0xFEAA;
/// The Eddystone-URL scheme prefixes, by code.
const SCHEMES: [&str; 4] = ["http://www.", "https://www.", "http://", "https://"];
/// The Eddystone-URL expansions of the bytes `0x00` to `0x0D`.
const EXPANSIONS: [&str; 14] = [
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net", ".info", ".biz",
    ".gov",
];
/// The TLM temperature that means "not measured" (-128 °C).
const TLM_NO_TEMPERATURE: u16 = 0x8000;

/// Reads an iBeacon or Eddystone advertisement; `Ok(None)` when the advertisement has neither.
pub fn decode(adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    if let Some(decoded) = adv.manufacturer(APPLE).map(ibeacon).transpose()?.flatten() {
        return Ok(Some(decoded));
    }
    adv.service_data16(EDDYSTONE).map(eddystone).transpose()
}

/// Lowercase hex of bytes.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The tx power reading (`key`: `measured_power` at 1 m for iBeacon, `tx_power` at 0 m for
/// Eddystone).
fn power(key: &str, raw: u8) -> Reading {
    Reading::other(key, Value::Number(f64::from(i8::from_le_bytes([raw]))), Some("dBm"))
}

/// An iBeacon in Apple's manufacturer data; `Ok(None)` for Apple's other types.
fn ibeacon(data: &[u8]) -> Result<Option<Decoded>, DecodeError> {
    let malformed = |why: String| DecodeError::malformed("iBeacon", why);
    let [0x02, length, rest @ ..] = data else {
        return Ok(None);
    };
    if *length != 0x15 {
        return Err(malformed(format!("length byte 0x{length:02X}, expected 0x15")));
    }
    let Some(&[ref uuid @ .., major_hi, major_lo, minor_hi, minor_lo, measured]) = rest.get(..21) else {
        return Err(malformed(format!("{} bytes after the header, expected 21", rest.len())));
    };
    let uuid = hex(uuid);
    let (major, minor) = (u16::from_be_bytes([major_hi, major_lo]), u16::from_be_bytes([minor_hi, minor_lo]));
    // 8-4-4-4-12 hex digits; `uuid` is 32 ASCII digits, so the ranges are in bounds.
    let dashed =
        [0..8, 8..12, 12..16, 16..20, 20..32].into_iter().filter_map(|r| uuid.get(r)).collect::<Vec<_>>().join("-");
    Ok(Some(Decoded {
        brand: "iBeacon",
        model: "iBeacon".to_owned(),
        readings: vec![power("measured_power", measured)],
        identity: Some(format!("ibeacon:{dashed}:{major}:{minor}")),
        ..Decoded::default()
    }))
}

/// An Eddystone frame.
fn eddystone(data: &[u8]) -> Result<Decoded, DecodeError> {
    let malformed = |why: String| DecodeError::malformed("Eddystone", why);
    let unsupported = |what: String| DecodeError::Unsupported { format: "Eddystone", what };
    let decoded = |model: &str, readings, identity| Decoded {
        brand: "Eddystone",
        model: model.to_owned(),
        readings,
        identity,
        ..Decoded::default()
    };
    match data {
        [] => Err(malformed("empty service data".to_owned())),
        [0x00, tx, rest @ ..] => {
            let ids = rest.get(..16).and_then(|id| id.split_at_checked(10));
            let Some((namespace, instance)) = ids else {
                return Err(malformed(format!("UID frame of {} bytes, expected 18 or 20", data.len())));
            };
            let identity = format!("eddystone:{}:{}", hex(namespace), hex(instance));
            Ok(decoded("Eddystone UID", vec![power("tx_power", *tx)], Some(identity)))
        }
        [0x10, tx, scheme, encoded @ ..] => {
            let prefix = SCHEMES
                .get(usize::from(*scheme))
                .ok_or_else(|| malformed(format!("URL scheme prefix 0x{scheme:02X}")))?;
            let mut url = (*prefix).to_owned();
            for &b in encoded {
                match b {
                    0x21..=0x7E => url.push(char::from(b)),
                    _ => url.push_str(
                        EXPANSIONS.get(usize::from(b)).ok_or_else(|| malformed(format!("URL byte 0x{b:02X}")))?,
                    ),
                }
            }
            let identity = format!("eddystone-url:{url}");
            Ok(decoded("Eddystone URL", vec![power("tx_power", *tx)], Some(identity)))
        }
        [0x20, 0x00, rest @ ..] => {
            let Some(&[v0, v1, t0, t1, a0, a1, a2, a3, s0, s1, s2, s3]) = rest.get(..12) else {
                return Err(malformed(format!("TLM frame of {} bytes, expected 14", data.len())));
            };
            let millivolts = u16::from_be_bytes([v0, v1]);
            let temperature = u16::from_be_bytes([t0, t1]);
            let count = u32::from_be_bytes([a0, a1, a2, a3]);
            let tenths = u32::from_be_bytes([s0, s1, s2, s3]);
            let mut readings = Vec::with_capacity(4);
            if millivolts != 0 {
                readings.push(Reading::number("voltage", Capability::Voltage, f64::from(millivolts) / 1000.0));
            }
            if temperature != TLM_NO_TEMPERATURE {
                let celsius = f64::from(i16::from_be_bytes([t0, t1])) / 256.0;
                readings.push(Reading::number("temperature", Capability::Temperature, round(celsius, 2)));
            }
            readings.push(Reading::other("advertisement_count", Value::Number(f64::from(count)), None));
            readings.push(Reading::number("uptime", Capability::Duration, f64::from(tenths) / 10.0));
            Ok(decoded("Eddystone TLM", readings, None))
        }
        [0x20, 0x01, ..] => Err(unsupported("encrypted TLM frames (they need the EID identity key)".to_owned())),
        [0x20, version, ..] => Err(unsupported(format!("TLM version 0x{version:02X}"))),
        [0x30, ..] => Err(unsupported("EID frames (their ephemeral id needs the registered resolver)".to_owned())),
        [frame, ..] if matches!(frame, 0x00 | 0x10 | 0x20) => {
            Err(malformed(format!("frame type 0x{frame:02X} of {} bytes", data.len())))
        }
        [frame, ..] => Err(unsupported(format!("frame type 0x{frame:02X}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::uuid16;

    /// Bytes of a hex string (whitespace ignored).
    fn bytes(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()).collect()
    }

    fn apple(data: &str) -> Advertisement {
        Advertisement {
            address: "4C:7F:00:11:22:33".parse().unwrap(),
            rssi: Some(-70),
            manufacturer_data: [(APPLE, bytes(data))].into(),
            ..Advertisement::default()
        }
    }

    fn eddy(data: &[u8]) -> Advertisement {
        Advertisement { service_data: [(uuid16(EDDYSTONE), data.to_vec())].into(), ..Advertisement::default() }
    }

    /// Decodes and checks the whole result: brand, model, every reading in order, identity, no
    /// events, no packet id, not encrypted.
    fn check(adv: &Advertisement, brand: &str, model: &str, readings: Vec<Reading>, identity: Option<&str>) {
        let decoded = decode(adv, None).unwrap().expect("recognised");
        assert_eq!(decoded.brand, brand);
        assert_eq!(
            decoded,
            Decoded {
                brand: decoded.brand,
                model: model.to_owned(),
                readings,
                events: vec![],
                packet_id: None,
                encrypted: false,
                identity: identity.map(str::to_owned),
            }
        );
    }

    fn dbm(key: &str, v: f64) -> Reading {
        Reading::other(key, Value::Number(v), Some("dBm"))
    }

    // Vectors: beacontools tests/test_parser.py (citruz/beacontools), the SwitchBotAPI-BLE
    // iBeacon-mode description, and frames built from the Eddystone specification (google/eddystone
    // eddystone-uid, eddystone-url, eddystone-tlm/tlm-plain.md) where marked.

    #[test]
    fn ibeacon() {
        // beacontools test_ibeacon.
        let a = apple("0215 41424344454647484940414243444546 0001 0002 f8");
        check(
            &a,
            "iBeacon",
            "iBeacon",
            vec![dbm("measured_power", -8.0)],
            Some("ibeacon:41424344-4546-4748-4940-414243444546:1:2"),
        );
        // beacontools test_cypress_beacon (a Cypress sensor beacon; minor 0x6c66 = 27750).
        let a = apple("0215 00050001000010008000 00805f9b0131 0002 6c66 c3");
        check(
            &a,
            "iBeacon",
            "iBeacon",
            vec![dbm("measured_power", -61.0)],
            Some("ibeacon:00050001-0000-1000-8000-00805f9b0131:2:27750"),
        );
        // A SwitchBot device in iBeacon mode (SwitchBotAPI-BLE bot.md: its UUID, tx 0xc3;
        // major and minor built from that page's MAC-byte table).
        let a = apple("0215 cba20d00224d11e69fb80002a5d5c51b 00dd ddee c3");
        check(
            &a,
            "iBeacon",
            "iBeacon",
            vec![dbm("measured_power", -61.0)],
            Some("ibeacon:cba20d00-224d-11e6-9fb8-0002a5d5c51b:221:56814"),
        );
    }

    #[test]
    fn other_apple_data_and_other_advertisements_are_none() {
        // Apple Nearby (0x10) and Find My (0x12) frames, an empty one.
        assert_eq!(decode(&apple("1005031c0e9a2b"), None), Ok(None));
        assert_eq!(decode(&apple("12199800aabbccddeeff00112233445566778899aabbccdd0100"), None), Ok(None));
        assert_eq!(decode(&apple(""), None), Ok(None));
        assert_eq!(decode(&apple("02"), None), Ok(None));
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        // The iBeacon layout under another company id is not an iBeacon.
        let a = Advertisement {
            manufacturer_data: [(0x0059, bytes("0215 41424344454647484940414243444546 0001 0002 f8"))].into(),
            ..Advertisement::default()
        };
        assert_eq!(decode(&a, None), Ok(None));
    }

    #[test]
    fn malformed_ibeacon() {
        let is_malformed = |a: &Advertisement| matches!(decode(a, None), Err(DecodeError::Malformed { .. }));
        assert!(is_malformed(&apple("0214 41424344454647484940414243444546 0001 0002")));
        assert!(is_malformed(&apple("0215 41424344454647484940414243444546 0001 0002")));
    }

    #[test]
    fn eddystone_uid() {
        // beacontools test_eddystone_uid (with the two reserved bytes).
        let frame = bytes("00 e3 12345678901234678901 000000000001 0000");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone UID",
            vec![dbm("tx_power", -29.0)],
            Some("eddystone:12345678901234678901:000000000001"),
        );
        // Without the reserved bytes, as older beacons send it.
        check(
            &eddy(&frame[..18]),
            "Eddystone",
            "Eddystone UID",
            vec![dbm("tx_power", -29.0)],
            Some("eddystone:12345678901234678901:000000000001"),
        );
        // Built from the UID specification: the elided-UUID namespace example
        // (8b0ca750095477cb3e77), tx +18 dBm (0x12, the spec's own tx example).
        let frame = bytes("00 12 8b0ca750095477cb3e77 a1b2c3d4e5f6 0000");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone UID",
            vec![dbm("tx_power", 18.0)],
            Some("eddystone:8b0ca750095477cb3e77:a1b2c3d4e5f6"),
        );
    }

    #[test]
    fn eddystone_url() {
        // beacontools test_eddystone_url.
        let mut frame = bytes("10 f8 03");
        frame.extend_from_slice(b"github\x00citruz");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone URL",
            vec![dbm("tx_power", -8.0)],
            Some("eddystone-url:https://github.com/citruz"),
        );
        // Built from the URL specification: the spec's `https://goo.gl/S6zT6P` (a TLD spelt out),
        // tx -18 dBm (0xEE, the spec's example).
        let mut frame = bytes("10 ee 03");
        frame.extend_from_slice(b"goo.gl/S6zT6P");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone URL",
            vec![dbm("tx_power", -18.0)],
            Some("eddystone-url:https://goo.gl/S6zT6P"),
        );
        // Every scheme prefix and expansion code.
        let cases: [(&str, &[u8], &str); 6] = [
            ("00", b"example\x07", "http://www.example.com"),
            ("01", b"a\x01b\x02c\x03", "https://www.a.org/b.edu/c.net/"),
            ("02", b"d\x04e\x05f\x06", "http://d.info/e.biz/f.gov/"),
            ("03", b"g\x08h\x09i\x0a", "https://g.orgh.edui.net"),
            ("03", b"j\x0bk\x0cl\x0d", "https://j.infok.bizl.gov"),
            ("02", b"", "http://"),
        ];
        for (scheme, encoded, url) in cases {
            let mut frame = bytes(&format!("10 00 {scheme}"));
            frame.extend_from_slice(encoded);
            check(
                &eddy(&frame),
                "Eddystone",
                "Eddystone URL",
                vec![dbm("tx_power", 0.0)],
                Some(&format!("eddystone-url:{url}")),
            );
        }
    }

    #[test]
    fn eddystone_tlm() {
        // beacontools test_eddystone_tlm: 2840 mV, 19 °C, 5223 frames, 10948 tenths of a second.
        let frame = bytes("20 00 0b18 1300 00001467 00002ac4");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone TLM",
            vec![
                Reading::number("voltage", Capability::Voltage, 2.84),
                Reading::number("temperature", Capability::Temperature, 19.0),
                Reading::other("advertisement_count", Value::Number(5223.0), None),
                Reading::number("uptime", Capability::Duration, 1094.8),
            ],
            None,
        );
        // Built from the TLM specification: USB powered (0 mV), no sensor (0x8000).
        let frame = bytes("20 00 0000 8000 000000ff 00000064");
        check(
            &eddy(&frame),
            "Eddystone",
            "Eddystone TLM",
            vec![
                Reading::other("advertisement_count", Value::Number(255.0), None),
                Reading::number("uptime", Capability::Duration, 10.0),
            ],
            None,
        );
        // Built from the TLM specification: a negative 8.8 temperature, -2.5 °C = 0xFD80, and
        // 25.4 °C = 0x1966 (25 + 102/256 = 25.3984..., rounded to 25.4).
        let frame = bytes("20 00 0bb8 fd80 00000001 00000001");
        let decoded = decode(&eddy(&frame), None).unwrap().unwrap();
        assert_eq!(decoded.readings[1], Reading::number("temperature", Capability::Temperature, -2.5));
        assert_eq!(decoded.readings[0], Reading::number("voltage", Capability::Voltage, 3.0));
        let frame = bytes("20 00 0bb8 1966 00000001 00000001");
        let decoded = decode(&eddy(&frame), None).unwrap().unwrap();
        assert_eq!(decoded.readings[1], Reading::number("temperature", Capability::Temperature, 25.4));
    }

    #[test]
    fn unsupported_eddystone_frames() {
        let unsupported = |data: &[u8]| matches!(decode(&eddy(data), None), Err(DecodeError::Unsupported { .. }));
        // beacontools test_eddystone_tlm_enc (encrypted TLM) and test_eddystone_eid.
        assert!(unsupported(&bytes("20 01 414141414141414141414141 dead beff")));
        let mut eid = bytes("30 e3");
        eid.extend_from_slice(b"EID_test");
        assert!(unsupported(&eid));
        assert!(unsupported(&bytes("20 02 0b18 1300 00001467 00002ac4")));
        assert!(unsupported(&bytes("40 00")));
    }

    #[test]
    fn malformed_eddystone_frames() {
        let is_malformed = |data: &[u8]| matches!(decode(&eddy(data), None), Err(DecodeError::Malformed { .. }));
        assert!(is_malformed(&[]));
        assert!(is_malformed(&bytes("00")));
        assert!(is_malformed(&bytes("00 e3 12345678901234678901 0000000000")));
        assert!(is_malformed(&bytes("10 f8")));
        assert!(is_malformed(&bytes("10 f8 04 41")));
        assert!(is_malformed(&bytes("10 f8 03 41 0e")));
        assert!(is_malformed(&bytes("10 f8 03 41 20")));
        assert!(is_malformed(&bytes("10 f8 03 41 7f")));
        assert!(is_malformed(&bytes("20 00 0b18 1300 00001467 00002a")));
        assert!(is_malformed(&bytes("20")));
    }

    #[test]
    fn ibeacon_is_read_before_eddystone() {
        let mut a = apple("0215 41424344454647484940414243444546 0001 0002 f8");
        a.service_data.insert(uuid16(EDDYSTONE), bytes("00 e3 12345678901234678901 000000000001"));
        assert_eq!(decode(&a, None).unwrap().unwrap().model, "iBeacon");
        // Apple data that is not an iBeacon leaves the Eddystone frame to be read.
        let mut a = apple("1005031c0e9a2b");
        a.service_data.insert(uuid16(EDDYSTONE), bytes("00 e3 12345678901234678901 000000000001"));
        assert_eq!(decode(&a, None).unwrap().unwrap().model, "Eddystone UID");
    }

    /// Published frames, for the prefix and random-input tests: (Apple data, Eddystone data).
    const FRAMES: &[(&str, &str)] = &[
        ("021541424344454647484940414243444546 00010002f8", ""),
        ("02150005000100001000800000805f9b0131 00026c66c3", ""),
        ("", "00e312345678901234678901000000000001 0000"),
        ("", "10f803 676974687562 00 63697472757a"),
        ("", "20000b18130000001467 00002ac4"),
        ("", "2001414141414141414141414141deadbeff"),
        ("", "30e3 4549445f74657374"),
    ];

    #[test]
    fn every_prefix_of_the_frames_is_safe() {
        for (apple_data, eddystone_data) in FRAMES {
            for data in [bytes(apple_data), bytes(eddystone_data)] {
                for n in 0..=data.len() {
                    let a = Advertisement {
                        manufacturer_data: [(APPLE, data[..n].to_vec())].into(),
                        service_data: [(uuid16(EDDYSTONE), data[..n].to_vec())].into(),
                        ..Advertisement::default()
                    };
                    let _ = decode(&a, None);
                    let _ = decode(&eddy(&data[..n]), None);
                }
            }
        }
    }

    #[test]
    fn random_bytes_are_safe() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let heads: [&[u8]; 6] = [&[0x02, 0x15], &[0x00], &[0x10], &[0x20, 0x00], &[0x20, 0x01], &[0x30]];
        for i in 0..4000 {
            let len = next() % 26;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Most inputs start like a real frame, so the deeper paths are reached.
            if i % 4 != 0 {
                let head = heads[(next() % heads.len() as u64) as usize];
                data.splice(0..head.len().min(data.len()), head.iter().copied());
            }
            let a = if i % 2 == 0 {
                Advertisement { manufacturer_data: [(APPLE, data)].into(), ..Advertisement::default() }
            } else {
                eddy(&data)
            };
            let _ = decode(&a, None);
        }
    }
}
