//! ATC/PVVX custom thermometer firmware (atc1441's and pvvx's firmware for the Xiaomi
//! LYWSD03MMC, MHO-C401, CGG1, CGDK2 and kin): service data of the 16-bit UUID 0x181A
//! (Environmental Sensing), told apart by length.
//!
//! - 13 bytes, "atc1441" format, big-endian: MAC (as written), temperature (0.1 °C, signed),
//!   humidity (%), battery (%), battery (mV), frame counter.
//! - 15 bytes, pvvx "custom" format, little-endian: MAC (reversed), temperature (0.01 °C,
//!   signed), humidity (0.01 %), battery (mV), battery (%), counter, flags (GPIO / trigger
//!   bits, not read here). Firmware built without the trigger sends the same 14 bytes without
//!   the flags.
//! - 11 bytes, pvvx custom format encrypted: counter, then AES-CCM ciphertext of temperature
//!   (0.01 °C), humidity (0.01 %), battery (%) and flags, then a 4-byte tag.
//! - 8 bytes, atc1441 format encrypted: counter, then the ciphertext of temperature
//!   (0.5 °C above -40 °C), humidity (0.5 %) and battery (% in 7 bits, trigger in the top bit),
//!   then a 4-byte tag.
//!
//! Encryption is AES-128-CCM with the device's 16-byte bind key, a 4-byte tag, one byte of
//! associated data (0x11) and an 11-byte nonce: the device address least significant byte first,
//! then the advertising structure's header (its length, type 0x16, UUID 0x181A little-endian) and
//! the counter. Any other length of 0x181A service data is not this firmware's and is left alone.

use aes::Aes128;
use ccm::aead::AeadInPlace;
use ccm::consts::{U4, U11};
use ccm::{Ccm, KeyInit};
use hearth_sdk::Capability;

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// The format's name in errors.
const FORMAT: &str = "ATC/PVVX";
/// The brand of decoded devices.
const BRAND: &str = "ATC/PVVX";
/// Environmental Sensing, the service UUID the firmware advertises under.
const UUID: u16 = 0x181A;
/// The associated data of the encrypted formats.
const AAD: [u8; 1] = [0x11];

/// AES-128-CCM with a 4-byte tag and an 11-byte nonce.
type Cipher = Ccm<Aes128, U4, U11>;

/// Reads an ATC/PVVX advertisement; `Ok(None)` when there is no 0x181A service data of one of
/// the firmware's lengths. The encrypted formats need the device's bind key.
pub fn decode(adv: &Advertisement, key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let Some(data) = adv.service_data16(UUID) else {
        return Ok(None);
    };
    let read = match data.len() {
        13 => data.try_into().ok().map(atc1441),
        14 | 15 => data.get(..14).and_then(|d| d.try_into().ok()).map(pvvx),
        11 => decrypt(adv, data, key)?.as_slice().try_into().ok().map(pvvx_encrypted),
        8 => decrypt(adv, data, key)?.as_slice().try_into().ok().map(atc1441_encrypted),
        _ => None,
    };
    let Some((readings, counter)) = read else {
        return Ok(None);
    };
    // The encrypted frames start with the counter, outside the ciphertext.
    let encrypted = matches!(data.len(), 8 | 11);
    let counter = if encrypted { data.first().copied() } else { counter };
    Ok(Some(Decoded {
        brand: BRAND,
        model: format!("{} (ATC firmware)", device(adv.name.as_deref())),
        readings,
        packet_id: counter.map(u32::from),
        encrypted,
        ..Decoded::default()
    }))
}

/// The device the firmware runs on, from the default name it gives it (`ATC_0A1B2C`,
/// `MHO_...`, `CGG_...`, `CGD_...`). `ATC_` is the name on the LYWSD03MMC (and on a few rarer
/// boards); a renamed device is just a thermometer.
fn device(name: Option<&str>) -> &'static str {
    const PREFIXES: [(&str, &str); 4] =
        [("ATC_", "LYWSD03MMC"), ("MHO_", "MHO-C401"), ("CGG_", "CGG1"), ("CGD_", "CGDK2")];
    name.and_then(|n| PREFIXES.iter().find(|(prefix, _)| n.starts_with(prefix)))
        .map_or("Thermometer", |(_, device)| device)
}

/// Readings and the frame counter (when the frame carries it in the clear).
type Read = (Vec<Reading>, Option<u8>);

/// The atc1441 format (13 bytes, big-endian).
fn atc1441(d: &[u8; 13]) -> Read {
    let [_, _, _, _, _, _, t0, t1, humidity, battery, mv0, mv1, counter] = *d;
    let readings = vec![
        Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(i16::from_be_bytes([t0, t1])) / 10.0, 1),
        ),
        Reading::number("humidity", Capability::Humidity, f64::from(humidity)),
        Reading::number("battery", Capability::Battery, f64::from(battery)),
        Reading::number("voltage", Capability::Voltage, round(f64::from(u16::from_be_bytes([mv0, mv1])) / 1000.0, 3)),
    ];
    (readings, Some(counter))
}

/// The pvvx custom format (its first 14 bytes; the 15th, the flags, is not read).
fn pvvx(d: &[u8; 14]) -> Read {
    let [_, _, _, _, _, _, t0, t1, h0, h1, mv0, mv1, battery, counter] = *d;
    let readings = vec![
        Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(i16::from_le_bytes([t0, t1])) / 100.0, 2),
        ),
        Reading::number("humidity", Capability::Humidity, round(f64::from(u16::from_le_bytes([h0, h1])) / 100.0, 2)),
        Reading::number("battery", Capability::Battery, f64::from(battery)),
        Reading::number("voltage", Capability::Voltage, round(f64::from(u16::from_le_bytes([mv0, mv1])) / 1000.0, 3)),
    ];
    (readings, Some(counter))
}

/// The decrypted pvvx custom format (temperature, humidity, battery, flags).
fn pvvx_encrypted(plain: &[u8; 6]) -> Read {
    let [t0, t1, h0, h1, battery, _flags] = *plain;
    let readings = vec![
        Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(i16::from_le_bytes([t0, t1])) / 100.0, 2),
        ),
        Reading::number("humidity", Capability::Humidity, round(f64::from(u16::from_le_bytes([h0, h1])) / 100.0, 2)),
        Reading::number("battery", Capability::Battery, f64::from(battery)),
    ];
    (readings, None)
}

/// The decrypted atc1441 format (temperature, humidity, battery with the trigger in its top bit).
fn atc1441_encrypted(plain: &[u8; 3]) -> Read {
    let [temperature, humidity, battery] = *plain;
    let readings = vec![
        Reading::number("temperature", Capability::Temperature, round(f64::from(temperature) / 2.0 - 40.0, 1)),
        Reading::number("humidity", Capability::Humidity, round(f64::from(humidity) / 2.0, 1)),
        Reading::number("battery", Capability::Battery, f64::from(battery & 0x7F)),
    ];
    (readings, None)
}

/// Decrypts an encrypted frame (counter, ciphertext, 4-byte tag) with the bind key.
fn decrypt(adv: &Advertisement, data: &[u8], key: Option<&[u8]>) -> Result<Vec<u8>, DecodeError> {
    let key = key.ok_or(DecodeError::NeedsKey { format: FORMAT })?;
    let cipher = Cipher::new_from_slice(key).map_err(|_| DecodeError::WrongKey { format: FORMAT })?;
    let short = || DecodeError::malformed(FORMAT, "encrypted frame too short");
    let (&counter, rest) = data.split_first().ok_or_else(short)?;
    let split = rest.len().checked_sub(4).ok_or_else(short)?;
    let (ciphertext, tag) = rest.split_at(split);
    let tag: [u8; 4] = tag.try_into().map_err(|_| short())?;

    let mut nonce = [0u8; 11];
    for (n, b) in nonce.iter_mut().zip(adv.address.0.iter().rev()) {
        *n = *b;
    }
    // The advertising structure's header: length (type, UUID and data), type, UUID.
    let header_len = u8::try_from(data.len() + 3).map_err(|_| short())?;
    let [uuid_lo, uuid_hi] = UUID.to_le_bytes();
    let tail = [header_len, 0x16, uuid_lo, uuid_hi, counter];
    for (n, b) in nonce.iter_mut().skip(6).zip(tail) {
        *n = b;
    }

    let mut plain = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(&nonce.into(), &AAD, &mut plain, &tag.into())
        .map_err(|_| DecodeError::WrongKey { format: FORMAT })?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Address;
    use crate::decode::testing::{XorShift, hex};

    fn adv(address: &str, name: Option<&str>, data: &[u8]) -> Advertisement {
        let mut adv = Advertisement {
            address: address.parse::<Address>().expect("address"),
            name: name.map(str::to_owned),
            ..Advertisement::default()
        };
        adv.service_data.insert(super::super::uuid16(UUID), data.to_vec());
        adv
    }

    fn read(address: &str, name: Option<&str>, data: &str, key: Option<&[u8]>) -> Decoded {
        decode(&adv(address, name, &hex(data)), key).expect("decodes").expect("is ATC")
    }

    fn num(key: &str, capability: Capability, value: f64) -> Reading {
        Reading::number(key, capability, value)
    }

    /// The bind key of the encrypted vectors (atc-ble and ble_monitor test suites).
    fn bind_key() -> Vec<u8> {
        hex("b9ea895fac7eea6d30532432a516f3a3")
    }

    // atc-ble's test suite (Bluetooth-Devices/atc-ble, test_atc1441_no_encryption).
    #[test]
    fn atc1441_atc_ble() {
        let d = read("A4:C1:38:8D:18:B2", Some("ATC_8D18B2"), "a4c1388d18b201122f640ca025", None);
        assert_eq!(d.brand, "ATC/PVVX");
        assert_eq!(d.model, "LYWSD03MMC (ATC firmware)");
        assert_eq!((d.packet_id, d.encrypted), (Some(0x25), false));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 27.4),
                num("humidity", Capability::Humidity, 47.0),
                num("battery", Capability::Battery, 100.0),
                num("voltage", Capability::Voltage, 3.232),
            ]
        );
    }

    // ble_monitor's test suite (test_atc_parser.py, test_atc_atc1441 and its extended-advertising
    // twin): the service data of the HCI frames.
    #[test]
    fn atc1441_ble_monitor() {
        let d = read("A4:C1:38:02:83:F4", None, "a4c1380283f400a22f5f0bf819", None);
        assert_eq!((d.model.as_str(), d.packet_id), ("Thermometer (ATC firmware)", Some(25)));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 16.2),
                num("humidity", Capability::Humidity, 47.0),
                num("battery", Capability::Battery, 95.0),
                num("voltage", Capability::Voltage, 3.064),
            ]
        );
        let d = read("A4:C1:38:BC:7C:4E", None, "a4c138bc7c4e0102284f0b6720", None);
        assert_eq!(d.packet_id, Some(32));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 25.8),
                num("humidity", Capability::Humidity, 40.0),
                num("battery", Capability::Battery, 79.0),
                num("voltage", Capability::Voltage, 2.919),
            ]
        );
    }

    // atc-ble's test suite (test_atc_pvvx_no_encryption).
    #[test]
    fn pvvx_atc_ble() {
        let d = read("A4:C1:38:8D:18:B2", Some("ATC_8D18B2"), "b2188d38c1a4590aad13b6091f1e05", None);
        assert_eq!((d.model.as_str(), d.packet_id, d.encrypted), ("LYWSD03MMC (ATC firmware)", Some(0x1e), false));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 26.49),
                num("humidity", Capability::Humidity, 50.37),
                num("battery", Capability::Battery, 31.0),
                num("voltage", Capability::Voltage, 2.486),
            ]
        );
    }

    // ble_monitor's test suite (test_atc_custom, test_atc_custom_v2_9, test_atc_custom_ext).
    #[test]
    fn pvvx_ble_monitor() {
        let cases = [
            ("A4:C1:38:02:83:F4", "f4830238c1a4a9066911b60b58f70d", 247, [17.05, 44.57, 88.0, 2.998]),
            ("A4:C1:38:8D:18:B2", "b2188d38c1a42b089011f70a43200f", 32, [20.91, 44.96, 67.0, 2.807]),
            ("A4:C1:38:63:37:8B", "8b376338c1a4ce0913107f0b521204", 18, [25.1, 41.15, 82.0, 2.943]),
        ];
        for (address, frame, counter, [t, h, b, v]) in cases {
            let d = read(address, Some("MHO_8D18B2"), frame, None);
            assert_eq!((d.model.as_str(), d.packet_id), ("MHO-C401 (ATC firmware)", Some(counter)));
            assert_eq!(
                d.readings,
                vec![
                    num("temperature", Capability::Temperature, t),
                    num("humidity", Capability::Humidity, h),
                    num("battery", Capability::Battery, b),
                    num("voltage", Capability::Voltage, v),
                ]
            );
        }
    }

    #[test]
    fn pvvx_without_flags() {
        // The 14-byte frame of firmware built without the trigger: the same frame less its flags.
        let d = read("A4:C1:38:8D:18:B2", Some("CGG_8D18B2"), "b2188d38c1a4590aad13b6091f1e", None);
        assert_eq!((d.model.as_str(), d.packet_id), ("CGG1 (ATC firmware)", Some(0x1e)));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 26.49),
                num("humidity", Capability::Humidity, 50.37),
                num("battery", Capability::Battery, 31.0),
                num("voltage", Capability::Voltage, 2.486),
            ]
        );
    }

    // atc-ble's test_atc_pvvx_with_encryption and ble_monitor's test_atc_custom_encrypted (the
    // same frame and key).
    #[test]
    fn pvvx_encrypted() {
        let key = bind_key();
        let d = read("A4:C1:38:8D:18:B2", Some("ATC_8D18B2"), "11d603fbfa7b6dfb1e26fd", Some(&key));
        assert_eq!((d.model.as_str(), d.packet_id, d.encrypted), ("LYWSD03MMC (ATC firmware)", Some(17), true));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 23.45),
                num("humidity", Capability::Humidity, 41.73),
                num("battery", Capability::Battery, 61.0),
            ]
        );
    }

    // atc-ble's test_atc1441_with_encryption.
    #[test]
    fn atc1441_encrypted() {
        let key = bind_key();
        let d = read("A4:C1:38:8D:18:B2", Some("ATC_8D18B2"), "58e9e6556581b3f9", Some(&key));
        assert_eq!((d.packet_id, d.encrypted), (Some(0x58), true));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 26.5),
                num("humidity", Capability::Humidity, 47.0),
                num("battery", Capability::Battery, 100.0),
            ]
        );
    }

    #[test]
    fn encrypted_without_or_with_a_wrong_key() {
        let frame = adv("A4:C1:38:8D:18:B2", None, &hex("11d603fbfa7b6dfb1e26fd"));
        assert_eq!(decode(&frame, None), Err(DecodeError::NeedsKey { format: FORMAT }));
        let wrong = hex("00000000000000000000000000000000");
        assert_eq!(decode(&frame, Some(&wrong)), Err(DecodeError::WrongKey { format: FORMAT }));
        assert_eq!(decode(&frame, Some(&[1, 2, 3])), Err(DecodeError::WrongKey { format: FORMAT }));
        // The right key, another device's address (the nonce carries it).
        let elsewhere = adv("A4:C1:38:8D:18:B3", None, &hex("11d603fbfa7b6dfb1e26fd"));
        assert_eq!(decode(&elsewhere, Some(&bind_key())), Err(DecodeError::WrongKey { format: FORMAT }));
        // A damaged tag.
        let damaged = adv("A4:C1:38:8D:18:B2", None, &hex("58e9e6556581b3f8"));
        assert_eq!(decode(&damaged, Some(&bind_key())), Err(DecodeError::WrongKey { format: FORMAT }));
    }

    #[test]
    fn not_atc() {
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        // 0x181A service data of other lengths is some other device's.
        for len in [0, 1, 5, 7, 9, 10, 12, 16, 20] {
            assert_eq!(decode(&adv("A4:C1:38:8D:18:B2", None, &vec![0x42; len]), None), Ok(None), "{len} bytes");
        }
        // The right bytes under another UUID.
        let mut other = Advertisement::default();
        other.service_data.insert(super::super::uuid16(0x181C), hex("a4c1388d18b201122f640ca025"));
        assert_eq!(decode(&other, None), Ok(None));
    }

    #[test]
    fn prefixes_never_panic() {
        let key = bind_key();
        for frame in [
            "a4c1388d18b201122f640ca025",
            "b2188d38c1a4590aad13b6091f1e05",
            "11d603fbfa7b6dfb1e26fd",
            "58e9e6556581b3f9",
        ] {
            let bytes = hex(frame);
            for n in 0..=bytes.len() {
                for k in [None, Some(key.as_slice())] {
                    let _ = decode(&adv("A4:C1:38:8D:18:B2", None, &bytes[..n]), k);
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x0A7C_181A_0000_0001);
        let key = bind_key();
        for i in 0..5000u64 {
            // Mostly the lengths read here, sometimes any length up to 31.
            let len = match i % 6 {
                0 => 13,
                1 => 14,
                2 => 15,
                3 => 11,
                4 => 8,
                _ => (rng.next() % 32) as usize,
            };
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let address = Address(rng.next().to_le_bytes()[..6].try_into().expect("6 bytes"));
            let mut frame = adv("00:00:00:00:00:00", Some("ATC_000000"), &data);
            frame.address = address;
            let k = if i % 2 == 0 { Some(key.as_slice()) } else { None };
            if let Ok(Some(d)) = decode(&frame, k) {
                assert_eq!(d.brand, "ATC/PVVX");
                assert!(d.packet_id.is_some());
            }
        }
    }
}
