//! RuuviTag: manufacturer data of company 0x0499 (Ruuvi Innovations), read in data format 3
//! (RAWv1) and data format 5 (RAWv2) of the Ruuvi sensor protocols.
//!
//! Both are big-endian. Format 3 (14 bytes): format, humidity (0.5 %), temperature (sign and
//! magnitude: whole degrees with the sign in the top bit, then hundredths), pressure (Pa above
//! 50 000), acceleration x/y/z (mg, signed), battery (mV). Format 5 (24 bytes): format,
//! temperature (0.005 °C, signed), humidity (0.0025 %), pressure (Pa above 50 000), acceleration
//! x/y/z (mg, signed), power info (11 bits battery mV above 1600, 5 bits tx power in 2 dBm steps
//! above -40 dBm), movement counter, measurement sequence, MAC. Format 5 marks a value "not
//! available" with the largest unsigned / smallest signed number (all ones for the MAC); such
//! values are left out. Format 3 has no such marker: every value is reported.

use hearth_sdk::{Capability, Value};

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// Ruuvi Innovations' Bluetooth company id.
const COMPANY: u16 = 0x0499;
/// The format's name in errors.
const FORMAT: &str = "Ruuvi";
/// The shortest Ruuvi payload (format 3). Anything shorter under the Ruuvi company id is not a
/// Ruuvi frame (an Inkbird IBS-TH puts its temperature where the company id goes, and at 11.77 °C
/// that is 0x0499), so it is left to the other decoders.
const SHORTEST: usize = 14;

/// Reads a RuuviTag advertisement (data format 3 or 5); `Ok(None)` when there is no Ruuvi
/// manufacturer data, `Unsupported` for the other Ruuvi formats (6, E1, encrypted 8, C5, ...).
pub fn decode(adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let Some(data) = adv.manufacturer(COMPANY) else {
        return Ok(None);
    };
    if data.len() < SHORTEST {
        return Ok(None);
    }
    let (readings, packet_id) = match data.first() {
        Some(3) => (rawv1(data)?, None),
        Some(5) => rawv2(data)?,
        Some(other) => {
            return Err(DecodeError::Unsupported { format: FORMAT, what: format!("data format {other:#04x}") });
        }
        None => return Ok(None),
    };
    Ok(Some(Decoded { brand: "Ruuvi", model: "RuuviTag".to_owned(), readings, packet_id, ..Decoded::default() }))
}

/// Big-endian unsigned 16 bits at `at` of a fixed-size frame.
fn be_u16<const N: usize>(d: &[u8; N], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Big-endian signed 16 bits at `at` of a fixed-size frame.
fn be_i16<const N: usize>(d: &[u8; N], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// An acceleration reading in g from milli-g.
fn acceleration(key: &str, milli_g: i16) -> Reading {
    Reading::other(key, Value::Number(round(f64::from(milli_g) / 1000.0, 3)), Some("g"))
}

/// A pressure reading in hPa from the raw value (Pa above 50 000).
fn pressure(raw: u16) -> Reading {
    Reading::number("pressure", Capability::Pressure, round((f64::from(raw) + 50_000.0) / 100.0, 2))
}

/// Data format 3 (RAWv1).
fn rawv1(data: &[u8]) -> Result<Vec<Reading>, DecodeError> {
    let d: &[u8; 14] = data
        .try_into()
        .map_err(|_| DecodeError::malformed(FORMAT, format!("data format 3 is 14 bytes, not {}", data.len())))?;
    let [_, humidity, temp_whole, temp_hundredths, ..] = *d;
    if temp_hundredths > 99 {
        return Err(DecodeError::malformed(FORMAT, format!("temperature hundredths {temp_hundredths} above 99")));
    }
    let magnitude = f64::from(u16::from(temp_whole & 0x7F) * 100 + u16::from(temp_hundredths)) / 100.0;
    let temperature = if temp_whole & 0x80 != 0 { -magnitude } else { magnitude };
    let short = || DecodeError::malformed(FORMAT, "short frame");
    Ok(vec![
        Reading::number("temperature", Capability::Temperature, round(temperature, 2)),
        Reading::number("humidity", Capability::Humidity, round(f64::from(humidity) / 2.0, 1)),
        pressure(be_u16(d, 4).ok_or_else(short)?),
        acceleration("acceleration_x", be_i16(d, 6).ok_or_else(short)?),
        acceleration("acceleration_y", be_i16(d, 8).ok_or_else(short)?),
        acceleration("acceleration_z", be_i16(d, 10).ok_or_else(short)?),
        Reading::number("voltage", Capability::Voltage, round(f64::from(be_u16(d, 12).ok_or_else(short)?) / 1000.0, 3)),
    ])
}

/// Data format 5 (RAWv2): readings and the measurement sequence.
fn rawv2(data: &[u8]) -> Result<(Vec<Reading>, Option<u32>), DecodeError> {
    let d: &[u8; 24] = data
        .try_into()
        .map_err(|_| DecodeError::malformed(FORMAT, format!("data format 5 is 24 bytes, not {}", data.len())))?;
    let short = || DecodeError::malformed(FORMAT, "short frame");
    let u16_at = |at| be_u16(d, at).ok_or_else(short);
    let i16_at = |at| be_i16(d, at).ok_or_else(short);
    let mut readings = Vec::new();

    let temperature = i16_at(1)?;
    if temperature != i16::MIN {
        readings.push(Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(temperature) / 200.0, 3),
        ));
    }
    let humidity = u16_at(3)?;
    if humidity != u16::MAX {
        readings.push(Reading::number("humidity", Capability::Humidity, round(f64::from(humidity) / 400.0, 4)));
    }
    let raw_pressure = u16_at(5)?;
    if raw_pressure != u16::MAX {
        readings.push(pressure(raw_pressure));
    }
    for (key, at) in [("acceleration_x", 7), ("acceleration_y", 9), ("acceleration_z", 11)] {
        let milli_g = i16_at(at)?;
        if milli_g != i16::MIN {
            readings.push(acceleration(key, milli_g));
        }
    }
    let power = u16_at(13)?;
    let battery_above_1600 = power >> 5;
    if battery_above_1600 != 0x07FF {
        let volts = (f64::from(battery_above_1600) + 1600.0) / 1000.0;
        readings.push(Reading::number("voltage", Capability::Voltage, round(volts, 3)));
    }
    let tx_steps = power & 0x1F;
    if tx_steps != 0x1F {
        let dbm = f64::from(tx_steps) * 2.0 - 40.0;
        readings.push(Reading::other("tx_power", Value::Number(dbm), Some("dBm")));
    }
    let [.., movement, seq_hi, seq_lo, m0, m1, m2, m3, m4, m5] = *d;
    if movement != u8::MAX {
        readings.push(Reading::other("movement_counter", Value::Number(f64::from(movement)), None));
    }
    let mac = [m0, m1, m2, m3, m4, m5];
    if mac != [0xFF; 6] {
        let text = mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
        readings.push(Reading::other("mac", Value::Text(text), None));
    }
    let sequence = u16::from_be_bytes([seq_hi, seq_lo]);
    let packet_id = (sequence != u16::MAX).then_some(u32::from(sequence));
    Ok((readings, packet_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::{XorShift, hex};

    fn adv(data: &[u8]) -> Advertisement {
        let mut adv = Advertisement::default();
        adv.manufacturer_data.insert(COMPANY, data.to_vec());
        adv
    }

    fn read(data: &str) -> Decoded {
        decode(&adv(&hex(data)), None).expect("decodes").expect("is Ruuvi")
    }

    fn num(key: &str, capability: Capability, value: f64) -> Reading {
        Reading::number(key, capability, value)
    }

    fn other(key: &str, value: f64, unit: Option<&'static str>) -> Reading {
        Reading::other(key, Value::Number(value), unit)
    }

    fn mac(text: &str) -> Reading {
        Reading::other("mac", Value::Text(text.to_owned()), None)
    }

    // Test vectors of the Ruuvi specification, dataformat_03.md.
    #[test]
    fn format_3_valid() {
        let d = read("03291A1ECE1EFC18F94202CA0B53");
        assert_eq!((d.brand, d.model.as_str(), d.packet_id, d.encrypted), ("Ruuvi", "RuuviTag", None, false));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 26.3),
                num("humidity", Capability::Humidity, 20.5),
                num("pressure", Capability::Pressure, 1027.66),
                other("acceleration_x", -1.0, Some("g")),
                other("acceleration_y", -1.726, Some("g")),
                other("acceleration_z", 0.714, Some("g")),
                num("voltage", Capability::Voltage, 2.899),
            ]
        );
    }

    #[test]
    fn format_3_maximum() {
        let d = read("03FF7F63FFFF7FFF7FFF7FFFFFFF");
        assert_eq!(d.packet_id, None);
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 127.99),
                num("humidity", Capability::Humidity, 127.5),
                num("pressure", Capability::Pressure, 1155.35),
                other("acceleration_x", 32.767, Some("g")),
                other("acceleration_y", 32.767, Some("g")),
                other("acceleration_z", 32.767, Some("g")),
                num("voltage", Capability::Voltage, 65.535),
            ]
        );
    }

    #[test]
    fn format_3_minimum() {
        let d = read("0300FF6300008001800180010000");
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, -127.99),
                num("humidity", Capability::Humidity, 0.0),
                num("pressure", Capability::Pressure, 500.0),
                other("acceleration_x", -32.767, Some("g")),
                other("acceleration_y", -32.767, Some("g")),
                other("acceleration_z", -32.767, Some("g")),
                num("voltage", Capability::Voltage, 0.0),
            ]
        );
    }

    // Test vectors of the Ruuvi specification, dataformat_05.md.
    #[test]
    fn format_5_valid() {
        let d = read("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F");
        assert_eq!((d.brand, d.model.as_str(), d.packet_id, d.encrypted), ("Ruuvi", "RuuviTag", Some(205), false));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 24.3),
                num("humidity", Capability::Humidity, 53.49),
                num("pressure", Capability::Pressure, 1000.44),
                other("acceleration_x", 0.004, Some("g")),
                other("acceleration_y", -0.004, Some("g")),
                other("acceleration_z", 1.036, Some("g")),
                num("voltage", Capability::Voltage, 2.977),
                other("tx_power", 4.0, Some("dBm")),
                other("movement_counter", 66.0, None),
                mac("CB:B8:33:4C:88:4F"),
            ]
        );
    }

    #[test]
    fn format_5_maximum() {
        let d = read("057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F");
        assert_eq!(d.packet_id, Some(65534));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, 163.835),
                num("humidity", Capability::Humidity, 163.835),
                num("pressure", Capability::Pressure, 1155.34),
                other("acceleration_x", 32.767, Some("g")),
                other("acceleration_y", 32.767, Some("g")),
                other("acceleration_z", 32.767, Some("g")),
                num("voltage", Capability::Voltage, 3.646),
                other("tx_power", 20.0, Some("dBm")),
                other("movement_counter", 254.0, None),
                mac("CB:B8:33:4C:88:4F"),
            ]
        );
    }

    #[test]
    fn format_5_minimum() {
        let d = read("058001000000008001800180010000000000CBB8334C884F");
        assert_eq!(d.packet_id, Some(0));
        assert_eq!(
            d.readings,
            vec![
                num("temperature", Capability::Temperature, -163.835),
                num("humidity", Capability::Humidity, 0.0),
                num("pressure", Capability::Pressure, 500.0),
                other("acceleration_x", -32.767, Some("g")),
                other("acceleration_y", -32.767, Some("g")),
                other("acceleration_z", -32.767, Some("g")),
                num("voltage", Capability::Voltage, 1.6),
                other("tx_power", -40.0, Some("dBm")),
                other("movement_counter", 0.0, None),
                mac("CB:B8:33:4C:88:4F"),
            ]
        );
    }

    #[test]
    fn format_5_invalid_values_are_left_out() {
        let d = read("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF");
        assert_eq!((d.brand, d.model.as_str()), ("Ruuvi", "RuuviTag"));
        assert_eq!(d.readings, vec![]);
        assert_eq!(d.packet_id, None);
    }

    #[test]
    fn not_ruuvi_or_not_readable() {
        // No Ruuvi manufacturer data.
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        let mut other_company = Advertisement::default();
        other_company.manufacturer_data.insert(0x004C, hex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F"));
        assert_eq!(decode(&other_company, None), Ok(None));
        // An Inkbird IBS-TH at 11.77 °C: its temperature is the company id 0x0499.
        assert_eq!(decode(&adv(&hex("f41000ba4e6408")), None), Ok(None));
        // A Ruuvi Air (format 6) and an encrypted format 8 frame.
        assert!(matches!(
            decode(&adv(&hex("06170C5668C79E007000C90501D9FFCD004C884F")), None),
            Err(DecodeError::Unsupported { .. })
        ));
        assert!(matches!(
            decode(&adv(&hex("08ff00112233445566778899aabbccddeeff0011223344")), None),
            Err(DecodeError::Unsupported { .. })
        ));
        // Wrong lengths and out-of-range hundredths.
        assert!(matches!(
            decode(&adv(&hex("03291A1ECE1EFC18F94202CA0B5300")), None),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode(&adv(&hex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C88")), None),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(decode(&adv(&hex("03291A64CE1EFC18F94202CA0B53")), None), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn same_bytes_same_values() {
        let frame = "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F";
        assert_eq!(read(frame), read(frame));
    }

    #[test]
    fn prefixes_never_panic() {
        for frame in [
            "03291A1ECE1EFC18F94202CA0B53",
            "03FF7F63FFFF7FFF7FFF7FFFFFFF",
            "0300FF6300008001800180010000",
            "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
            "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F",
            "058001000000008001800180010000000000CBB8334C884F",
            "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF",
        ] {
            let bytes = hex(frame);
            for n in 0..=bytes.len() {
                let _ = decode(&adv(&bytes[..n]), None);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x5EED_0499_0305_0001);
        for i in 0..5000 {
            let mut data = rng.bytes(40);
            if let Some(first) = data.first_mut() {
                // Mostly the formats read here, sometimes anything.
                *first = match i % 3 {
                    0 => 3,
                    1 => 5,
                    _ => *first,
                };
            }
            if i % 2 == 0 && data.len() > 24 {
                data.truncate(if data.first() == Some(&3) { 14 } else { 24 });
            }
            if let Ok(Some(d)) = decode(&adv(&data), None) {
                assert_eq!(d.brand, "Ruuvi");
            }
        }
    }
}
