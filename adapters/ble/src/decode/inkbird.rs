//! Inkbird sensors: manufacturer data, recognised by the local name.
//!
//! - IBS-TH / IBS-TH1 (name `sps`, sometimes heard as `N0BYD`) and IBS-TH2 (name `tps`): 9 bytes
//!   counting the company id, which is not one: the first two bytes are the temperature. Layout,
//!   little-endian: temperature (0.01 °C, signed), humidity (0.01 %; 0 on the temperature-only
//!   IBS-TH2), probe (0 internal, 1 external), CRC-16/MODBUS of the five bytes before it, battery
//!   (%), one more byte. The CRC is checked. Because the "company id" changes with the
//!   temperature, a Bluetooth stack that keeps manufacturer data per company id may hand over
//!   several entries at once; which is current cannot be told, and that is reported as malformed.
//! - ITH-11-B, ITH-13-B, ITH-21-B (name as the model): 16 bytes after the company id; temperature
//!   (0.1 °C, signed) at 4, humidity (0.1 %) at 6, battery (%) at 8, little-endian.
//! - iBBQ / xBBQ grill thermometers (IBT-2X, IBT-4XS, IBT-6XS and kin; name containing `iBBQ` or
//!   `xBBQ`): company id 0 or 1, then two bytes, six bytes of address, and one little-endian
//!   temperature (0.1 °C, signed) per probe: `temperature`, `temperature_2`, ... by probe slot. A
//!   slot without a probe reads 0xFFF6 or 0xFFFF and is left out. xBBQ devices also send frames
//!   under company id 2 whose values are not probe temperatures; those are not read.

use hearth_sdk::Capability;

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// The format's name in errors.
const FORMAT: &str = "Inkbird";
/// The brand of decoded devices.
const BRAND: &str = "Inkbird";
/// Probe slots reading one of these have no probe in them.
const NO_PROBE: [u16; 2] = [0xFFF6, 0xFFFF];
/// The most probes an iBBQ frame is read with.
const MAX_PROBES: usize = 8;

/// Reads an Inkbird advertisement; `Ok(None)` when the name is not an Inkbird one or there is no
/// manufacturer data of the model's shape (a scan response with only the name, say).
pub fn decode(adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let Some(name) = adv.name.as_deref() else {
        return Ok(None);
    };
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "sps" | "n0byd" => ibs_th(adv, "IBS-TH", true),
        "tps" => ibs_th(adv, "IBS-TH2", false),
        "ith-11-b" => ith(adv, "ITH-11-B"),
        "ith-13-b" => ith(adv, "ITH-13-B"),
        "ith-21-b" => ith(adv, "ITH-21-B"),
        _ if lower.contains("ibbq") => bbq(adv, "iBBQ"),
        _ if lower.contains("xbbq") => bbq(adv, "xBBQ"),
        _ => Ok(None),
    }
}

/// A decoded Inkbird advertisement.
fn decoded(model: String, readings: Vec<Reading>) -> Option<Decoded> {
    Some(Decoded { brand: BRAND, model, readings, ..Decoded::default() })
}

/// The one entry of several that fits, or why none can be read: `Ok(None)` when none fits,
/// malformed when more than one does.
fn only<T>(mut fits: Vec<T>, what: &str) -> Result<Option<T>, DecodeError> {
    match fits.len() {
        0 | 1 => Ok(fits.pop()),
        n => Err(DecodeError::malformed(
            FORMAT,
            format!("{n} {what} in one advertisement: cannot tell which is current"),
        )),
    }
}

/// CRC-16/MODBUS (polynomial 0xA001 reflected, initial value 0xFFFF).
fn crc16_modbus(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0xFFFF, |crc, b| {
        (0..8).fold(crc ^ u16::from(*b), |crc, _| if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 })
    })
}

/// IBS-TH and IBS-TH2: the company id and 7 bytes of data make the 9-byte frame.
fn ibs_th(adv: &Advertisement, model: &str, has_humidity: bool) -> Result<Option<Decoded>, DecodeError> {
    let frames: Vec<[u8; 9]> = adv
        .manufacturer_data
        .iter()
        .filter_map(|(company, data)| {
            let [c0, c1] = company.to_le_bytes();
            let &[d0, d1, d2, d3, d4, d5, d6] = data.as_slice() else {
                return None;
            };
            Some([c0, c1, d0, d1, d2, d3, d4, d5, d6])
        })
        .collect();
    if frames.is_empty() {
        return Ok(None);
    }
    let valid: Vec<[u8; 9]> = frames
        .into_iter()
        .filter(|[t0, t1, h0, h1, probe, crc0, crc1, ..]| {
            crc16_modbus(&[*t0, *t1, *h0, *h1, *probe]) == u16::from_le_bytes([*crc0, *crc1])
        })
        .collect();
    if valid.is_empty() {
        return Err(DecodeError::malformed(FORMAT, format!("{model} frame with a wrong checksum")));
    }
    let Some([t0, t1, h0, h1, _probe, _, _, battery, _]) = only(valid, "IBS-TH frames")? else {
        return Ok(None);
    };
    let humidity = u16::from_le_bytes([h0, h1]);
    let mut readings = vec![Reading::number(
        "temperature",
        Capability::Temperature,
        round(f64::from(i16::from_le_bytes([t0, t1])) / 100.0, 2),
    )];
    // The temperature-only IBS-TH2 sends 0; its humidity variant sends the humidity.
    if has_humidity || humidity != 0 {
        readings.push(Reading::number("humidity", Capability::Humidity, round(f64::from(humidity) / 100.0, 2)));
    }
    readings.push(Reading::number("battery", Capability::Battery, f64::from(battery)));
    Ok(decoded(model.to_owned(), readings))
}

/// ITH-11-B, ITH-13-B, ITH-21-B: 16 bytes of manufacturer data.
fn ith(adv: &Advertisement, model: &str) -> Result<Option<Decoded>, DecodeError> {
    let fits = adv.manufacturer_data.values().filter_map(|data| <&[u8; 16]>::try_from(data.as_slice()).ok()).collect();
    let Some(&[_, _, _, _, t0, t1, h0, h1, battery, ..]) = only(fits, "ITH frames")? else {
        return Ok(None);
    };
    let readings = vec![
        Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(i16::from_le_bytes([t0, t1])) / 10.0, 1),
        ),
        Reading::number("humidity", Capability::Humidity, round(f64::from(u16::from_le_bytes([h0, h1])) / 10.0, 1)),
        Reading::number("battery", Capability::Battery, f64::from(battery)),
    ];
    Ok(decoded(model.to_owned(), readings))
}

/// iBBQ / xBBQ: 8 bytes, then two per probe, under company id 0 or 1.
fn bbq(adv: &Advertisement, family: &str) -> Result<Option<Decoded>, DecodeError> {
    let fits = adv
        .manufacturer_data
        .iter()
        .filter(|(company, data)| {
            **company <= 1 && data.len() > 8 && data.len() % 2 == 0 && data.len() <= 8 + 2 * MAX_PROBES
        })
        .map(|(_, data)| data.as_slice())
        .collect();
    let Some(probes) = only(fits, "iBBQ frames")?.and_then(|data| data.get(8..)) else {
        return Ok(None);
    };
    let count = probes.len() / 2;
    let readings = probes
        .chunks_exact(2)
        .enumerate()
        .filter_map(|(slot, pair)| {
            let raw = u16::from_le_bytes([*pair.first()?, *pair.get(1)?]);
            if NO_PROBE.contains(&raw) {
                return None;
            }
            let key = if slot == 0 { "temperature".to_owned() } else { format!("temperature_{}", slot + 1) };
            let celsius = round(f64::from(i16::from_le_bytes(raw.to_le_bytes())) / 10.0, 1);
            Some(Reading::number(&key, Capability::Temperature, celsius))
        })
        .collect();
    Ok(decoded(format!("{family}-{count}"), readings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::{XorShift, hex};

    fn adv(name: &str, entries: &[(u16, &str)]) -> Advertisement {
        let mut adv = Advertisement { name: Some(name.to_owned()), ..Advertisement::default() };
        for (company, data) in entries {
            adv.manufacturer_data.insert(*company, hex(data));
        }
        adv
    }

    fn read(name: &str, company: u16, data: &str) -> Decoded {
        decode(&adv(name, &[(company, data)]), None).expect("decodes").expect("is Inkbird")
    }

    fn check(d: &Decoded, model: &str, readings: &[(&str, Capability, f64)]) {
        assert_eq!(d.brand, "Inkbird");
        assert_eq!(d.model, model);
        assert_eq!((d.packet_id, d.encrypted, d.identity.as_deref()), (None, false, None));
        let expected: Vec<Reading> = readings.iter().map(|(k, c, v)| Reading::number(k, *c, *v)).collect();
        assert_eq!(d.readings, expected);
    }

    use Capability::{Battery, Humidity, Temperature};

    #[test]
    fn checksum() {
        // The frames below: the CRC of the first five bytes is the next two.
        assert_eq!(crc16_modbus(&hex("9c08f41000")), 0x4EBA);
        assert_eq!(crc16_modbus(&[]), 0xFFFF);
    }

    // ble_monitor's test suite (test_inkbird.py: test_inkbird_IBS_TH, test_inkbird_IBS_TH2_T_only,
    // _2): the manufacturer data of the HCI frames.
    #[test]
    fn ibs_th_ble_monitor() {
        let d = read("sps", 0x089C, "f41000ba4e6408");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, 22.04), ("humidity", Humidity, 43.4), ("battery", Battery, 100.0)],
        );
        let d = read("tps", 0x07FF, "00000031603306");
        check(&d, "IBS-TH2", &[("temperature", Temperature, 20.47), ("battery", Battery, 51.0)]);
        let d = read("tps", 0xF89E, "000000bcbc6406");
        check(&d, "IBS-TH2", &[("temperature", Temperature, -18.9), ("battery", Battery, 100.0)]);
    }

    // inkbird-ble's test suite (Bluetooth-Devices/inkbird-ble, tests/test_parser.py): test_sps,
    // test_sps_variant2, test_sps_th2, test_unknown_tps, test_corrupt_name.
    #[test]
    fn ibs_th_inkbird_ble() {
        let d = read("sps", 2044, "c71200c83d5606");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, 20.44), ("humidity", Humidity, 48.07), ("battery", Battery, 86.0)],
        );
        let d = read("sps", 2363, "d01300ce906406");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, 23.63), ("humidity", Humidity, 50.72), ("battery", Battery, 100.0)],
        );
        let d = read("sps", 2248, "84140088996406");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, 22.48), ("humidity", Humidity, 52.52), ("battery", Battery, 100.0)],
        );
        let d = read("tps", 2120, "000000c66e0d06");
        check(&d, "IBS-TH2", &[("temperature", Temperature, 21.2), ("battery", Battery, 13.0)]);
        let d = read("N0BYD", 63915, "1b1e0048e33708");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, -16.21), ("humidity", Humidity, 77.07), ("battery", Battery, 55.0)],
        );
    }

    #[test]
    fn ibs_th_unreadable() {
        // A damaged frame (its checksum does not match).
        assert!(matches!(decode(&adv("sps", &[(0x089C, "f41000ba4f6408")]), None), Err(DecodeError::Malformed { .. })));
        // Two valid frames at once (a stack that keeps every "company id" it heard).
        let both = adv("sps", &[(0x089C, "f41000ba4e6408"), (2044, "c71200c83d5606")]);
        assert!(matches!(decode(&both, None), Err(DecodeError::Malformed { .. })));
        // A valid frame beside entries of other shapes (inkbird-ble's test_unknown_sps, plus
        // its stale 6-byte entry): the valid one is read.
        let mixed = adv("sps", &[(0x089C, "f41000ba4e6408"), (2083, "120177086406")]);
        let d = decode(&mixed, None).expect("decodes").expect("is Inkbird");
        check(
            &d,
            "IBS-TH",
            &[("temperature", Temperature, 22.04), ("humidity", Humidity, 43.4), ("battery", Battery, 100.0)],
        );
        // The name alone (a scan response).
        assert_eq!(decode(&adv("sps", &[]), None), Ok(None));
    }

    // inkbird-ble: test_ith_11_b (two frames), test_ith_31_b (ITH-13-B, two frames), test_ith_21_b.
    #[test]
    fn ith() {
        let d = read("ITH-11-B", 9289, "0812005e00005d036400640800000000");
        check(
            &d,
            "ITH-11-B",
            &[("temperature", Temperature, 0.0), ("humidity", Humidity, 86.1), ("battery", Battery, 100.0)],
        );
        let d = read("ITH-11-B", 9289, "0812005efeff48036400640800000000");
        check(
            &d,
            "ITH-11-B",
            &[("temperature", Temperature, -0.2), ("humidity", Humidity, 84.0), ("battery", Battery, 100.0)],
        );
        let d = read("ITH-13-B", 9289, "1223052f0e0110026400000000000000");
        check(
            &d,
            "ITH-13-B",
            &[("temperature", Temperature, 27.0), ("humidity", Humidity, 52.8), ("battery", Battery, 100.0)],
        );
        let d = read("ITH-13-B", 9289, "1223052ff000f9016400000400000000");
        check(
            &d,
            "ITH-13-B",
            &[("temperature", Temperature, 24.0), ("humidity", Humidity, 50.5), ("battery", Battery, 100.0)],
        );
        let d = read("ITH-21-B", 9289, "07110098d80013026401900400000000");
        check(
            &d,
            "ITH-21-B",
            &[("temperature", Temperature, 21.6), ("humidity", Humidity, 53.1), ("battery", Battery, 100.0)],
        );
        assert_eq!(decode(&adv("ITH-11-B", &[(9289, "0812005e00005d0364006408")]), None), Ok(None));
    }

    // ble_monitor: test_inkbird_iBBQ_1_probes, _2_, _4_, _6_probes (an unplugged slot reads
    // 0xFFF6); inkbird-ble: test_ibbq_4, test_ibt_2x, test_xbbq_2a_adv1 (0xFFFF),
    // test_xbbq_multiple_mfr_data (company id 2 is not read).
    #[test]
    fn bbq() {
        let d = read("iBBQ", 0, "000028ec9a2e65d7f000");
        check(&d, "iBBQ-1", &[("temperature", Temperature, 24.0)]);
        let d = read("iBBQ", 0, "00003414b5abf47bc800d200");
        check(&d, "iBBQ-2", &[("temperature", Temperature, 20.0), ("temperature_2", Temperature, 21.0)]);
        let d = read("iBBQ", 0, "0000a8e2c171671e0000000000000000");
        check(
            &d,
            "iBBQ-4",
            &[
                ("temperature", Temperature, 0.0),
                ("temperature_2", Temperature, 0.0),
                ("temperature_3", Temperature, 0.0),
                ("temperature_4", Temperature, 0.0),
            ],
        );
        let d = read("iBBQ", 0, "00001893d7353559d200f6fff6fff6fff6fff6ff");
        check(&d, "iBBQ-6", &[("temperature", Temperature, 21.0)]);
        let d = read("iBBQ", 0, "000030e2837db5020401fa000401fa00");
        check(
            &d,
            "iBBQ-4",
            &[
                ("temperature", Temperature, 26.0),
                ("temperature_2", Temperature, 25.0),
                ("temperature_3", Temperature, 26.0),
                ("temperature_4", Temperature, 25.0),
            ],
        );
        let d = read("xBBQ", 1, "00002c1100006dd314011101");
        check(&d, "xBBQ-2", &[("temperature", Temperature, 27.6), ("temperature_2", Temperature, 27.3)]);
        let d = read("xBBQ", 1, "0000561100007f73f800ffff");
        check(&d, "xBBQ-2", &[("temperature", Temperature, 24.8)]);
        let both = adv("xBBQ", &[(1, "00002c1100006dd311011201"), (2, "00002c1100006dd3da03da03")]);
        let d = decode(&both, None).expect("decodes").expect("is Inkbird");
        check(&d, "xBBQ-2", &[("temperature", Temperature, 27.3), ("temperature_2", Temperature, 27.4)]);
        assert_eq!(decode(&adv("xBBQ", &[(2, "0000561100007f739a001300")]), None), Ok(None));
    }

    #[test]
    fn not_inkbird() {
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        // The right bytes under another name, or none.
        assert_eq!(decode(&adv("GVH5075_2762", &[(0x089C, "f41000ba4e6408")]), None), Ok(None));
        let unnamed =
            Advertisement { manufacturer_data: [(0x089C, hex("f41000ba4e6408"))].into(), ..Default::default() };
        assert_eq!(decode(&unnamed, None), Ok(None));
        // Shapes the models do not have.
        assert_eq!(decode(&adv("sps", &[(0x089C, "f41000ba4e64")]), None), Ok(None));
        assert_eq!(decode(&adv("iBBQ", &[(0, "000028ec9a2e65d7f0")]), None), Ok(None));
        assert_eq!(decode(&adv("iBBQ", &[(0, "000028ec9a2e65d7")]), None), Ok(None));
    }

    #[test]
    fn prefixes_never_panic() {
        let cases: [(&str, u16, &str); 5] = [
            ("sps", 0x089C, "f41000ba4e6408"),
            ("tps", 0x07FF, "00000031603306"),
            ("ITH-11-B", 9289, "0812005e00005d036400640800000000"),
            ("iBBQ", 0, "00001893d7353559d200f6fff6fff6fff6fff6ff"),
            ("xBBQ", 1, "00002c1100006dd314011101"),
        ];
        for (name, company, frame) in cases {
            let bytes = hex(frame);
            for n in 0..=bytes.len() {
                let mut a = adv(name, &[]);
                a.manufacturer_data.insert(company, bytes[..n].to_vec());
                let _ = decode(&a, None);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x1B5_7400_0000_0001);
        let names = ["sps", "tps", "N0BYD", "ITH-11-B", "ith-21-b", "iBBQ", "xBBQ", "", "Inkbird"];
        for i in 0..5000u64 {
            let name = names[(rng.next() % names.len() as u64) as usize];
            let mut a = adv(name, &[]);
            for _ in 0..=(i % 3) {
                let len = match rng.next() % 5 {
                    0 => 7,
                    1 => 16,
                    2 => 10 + 2 * (rng.next() % 8) as usize,
                    _ => (rng.next() % 30) as usize,
                };
                let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                a.manufacturer_data.insert((rng.next() % 4) as u16, data);
            }
            if let Ok(Some(d)) = decode(&a, None) {
                assert_eq!(d.brand, "Inkbird");
            }
        }
    }
}
