//! Govee thermo-hygrometers: manufacturer data, told apart by company id, length and (where the
//! company id is not Govee's own) the local name.
//!
//! - Company 0xEC88, 6 bytes (H5072, H5075): `00`, temperature and humidity packed into three
//!   big-endian bytes, battery. The 23 low bits are `tenths of °C × 1000 + tenths of %`, the top
//!   bit is the sign of the temperature; the battery byte's top bit flags a sensor error.
//! - Company 0x0001, 6 bytes (H5100, H5101, H5102, H5103, H5104, H5105, H5174, H5177) and 8 bytes
//!   (H5108): `01 01`, the same three packed bytes, battery. 0x0001 is not Govee's company id and
//!   other devices use it, so these are read only with a Govee name naming one of these models.
//! - Company 0x0001, 9 bytes (H5178, indoor unit and outdoor sensor): `01 01`, sensor (0 the
//!   unit, 1 the outdoor sensor, read as `temperature_2`, `humidity_2`, `battery_2`), the packed
//!   bytes, battery.
//! - Company 0xEC88, 7 bytes (H5074) and 9 bytes (H5051, H5052, H5071): `00`, temperature
//!   (0.01 °C, signed) and humidity (0.01 %) little-endian, battery.
//! - Company 0x8801, 9 bytes (H5179): 4 bytes, then temperature and humidity as the H5074's,
//!   battery.
//!
//! The model comes from the local name (`GVH5075_2762` → `H5075`, `Govee_H5074_5FF4` → `H5074`,
//! `GV51085242` → `H5108`, `B51782BC8` → `H5178`) when there is one. An advertisement with a name
//! that is not a Govee one is not Govee's. Packed readings with the error flag or an impossible
//! temperature are left out (the battery still counts). Govee frames carry no packet counter.

use hearth_sdk::Capability;

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// The format's name in errors.
const FORMAT: &str = "Govee";
/// The company id Govee's own frames use.
const GOVEE: u16 = 0xEC88;
/// The company id (Nokia's, borrowed) of the H5100 family.
const BORROWED: u16 = 0x0001;
/// The company id of the H5179.
const H5179: u16 = 0x8801;
/// Models read from 6 bytes of 0x0001 manufacturer data.
const PACKED_0001: [&str; 8] = ["H5100", "H5101", "H5102", "H5103", "H5104", "H5105", "H5174", "H5177"];
/// The lowest and highest temperature (°C) a packed reading may have; others are errors.
const PLAUSIBLE: (f64, f64) = (-40.0, 100.0);

/// Reads a Govee thermo-hygrometer's advertisement; `Ok(None)` when it is none of the formats
/// above.
pub fn decode(adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let name = adv.name.as_deref().filter(|n| !n.is_empty());
    if name.is_some_and(|n| !is_govee_name(n)) {
        return Ok(None);
    }
    let named = name.and_then(model_from_name);
    let model = |default: &str| named.clone().unwrap_or_else(|| default.to_owned());

    if let Some(data) = adv.manufacturer(GOVEE).map(unglue) {
        let read = match data.len() {
            6 => packed(data, 1, "").map(|r| (model("H5072/H5075"), r)),
            7 => little_endian(data, 1).map(|r| (model("H5074"), r)),
            9 => little_endian(data, 1).map(|r| (model("H5051"), r)),
            _ => None,
        };
        if let Some((model, readings)) = read {
            return Ok(Some(decoded(model, readings)));
        }
    }
    if let Some(data) = adv.manufacturer(H5179).map(unglue)
        && data.len() == 9
        && let Some(readings) = little_endian(data, 4)
    {
        return Ok(Some(decoded(model("H5179"), readings)));
    }
    if let (Some(_), Some(data)) = (name, adv.manufacturer(BORROWED).map(unglue)) {
        let read = match (data.len(), named.as_deref()) {
            (6, Some(m)) if PACKED_0001.contains(&m) => packed(data, 2, ""),
            (8, Some("H5108")) => packed(data, 2, ""),
            (9, Some("H5178")) => match data.get(2) {
                Some(0) => packed(data, 3, ""),
                Some(1) => packed(data, 3, "_2"),
                Some(other) => {
                    return Err(DecodeError::Unsupported { format: FORMAT, what: format!("H5178 sensor {other}") });
                }
                None => None,
            },
            _ => None,
        };
        if let (Some(readings), Some(model)) = (read, named) {
            return Ok(Some(decoded(model, readings)));
        }
    }
    Ok(None)
}

/// A decoded Govee advertisement.
fn decoded(model: String, readings: Vec<Reading>) -> Decoded {
    Decoded { brand: "Govee", model, readings, ..Decoded::default() }
}

/// Whether a local name is one Govee gives its sensors (`GVH5075_2762`, `GV51085242`,
/// `Govee_H5074_5FF4`, `B51782BC8`, `H5178...`).
fn is_govee_name(name: &str) -> bool {
    ["GV", "Govee", "B5178", "H5"].iter().any(|p| name.starts_with(p))
}

/// The model a Govee name carries (`GVH5075_2762` → `H5075`).
fn model_from_name(name: &str) -> Option<String> {
    let rest = ["GVH", "Govee_H", "GV", "B", "H"].iter().find_map(|p| name.strip_prefix(p))?;
    let digits = rest.get(..4)?;
    digits.bytes().all(|b| b.is_ascii_digit()).then(|| format!("H{digits}"))
}

/// The manufacturer data without the iBeacon structure (Apple's id, then `INTELLI_ROCKS...`)
/// that some Bluetooth stacks glue onto the end of Govee's.
fn unglue(data: &[u8]) -> &[u8] {
    const GLUED: usize = 25;
    const START: &[u8] = b"\x4c\x00\x02\x15INTELLI_ROCKS";
    match data.len().checked_sub(GLUED).map(|at| data.split_at(at)) {
        Some((head, tail)) if !head.is_empty() && tail.starts_with(START) => head,
        _ => data,
    }
}

/// Temperature, humidity and battery from the three packed bytes at `at` and the battery byte
/// after them; `suffix` on the keys (`_2` for a second sensor).
fn packed(data: &[u8], at: usize, suffix: &str) -> Option<Vec<Reading>> {
    let &[a, b, c, battery] = data.get(at..at + 4)? else {
        return None;
    };
    let value = u32::from_be_bytes([0, a & 0x7F, b, c]);
    let tenths = f64::from(value / 1000) / 10.0;
    let temperature = if a & 0x80 != 0 { -tenths } else { tenths };
    let humidity = f64::from(value % 1000) / 10.0;
    let error = battery & 0x80 != 0;
    let mut readings = Vec::new();
    if !error && (PLAUSIBLE.0..=PLAUSIBLE.1).contains(&temperature) {
        readings.push(Reading::number(&format!("temperature{suffix}"), Capability::Temperature, round(temperature, 1)));
        readings.push(Reading::number(&format!("humidity{suffix}"), Capability::Humidity, round(humidity, 1)));
    }
    readings.push(Reading::number(&format!("battery{suffix}"), Capability::Battery, f64::from(battery & 0x7F)));
    Some(readings)
}

/// Temperature (0.01 °C, signed) and humidity (0.01 %) little-endian at `at`, then the battery.
fn little_endian(data: &[u8], at: usize) -> Option<Vec<Reading>> {
    let &[t0, t1, h0, h1, battery] = data.get(at..at + 5)? else {
        return None;
    };
    Some(vec![
        Reading::number(
            "temperature",
            Capability::Temperature,
            round(f64::from(i16::from_le_bytes([t0, t1])) / 100.0, 2),
        ),
        Reading::number("humidity", Capability::Humidity, round(f64::from(u16::from_le_bytes([h0, h1])) / 100.0, 2)),
        Reading::number("battery", Capability::Battery, f64::from(battery)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::{XorShift, hex};

    /// The iBeacon structure glued onto some captures (govee-ble's fixtures).
    const GLUE: &[u8] = b"L\x00\x02\x15INTELLI_ROCKS_HWPu\xf2\xff\x0c";

    fn adv(name: &str, entries: &[(u16, &[u8])]) -> Advertisement {
        let mut adv = Advertisement { name: Some(name.to_owned()), ..Advertisement::default() };
        for (company, data) in entries {
            adv.manufacturer_data.insert(*company, data.to_vec());
        }
        adv
    }

    fn read(name: &str, company: u16, data: &[u8]) -> Decoded {
        decode(&adv(name, &[(company, data)]), None).expect("decodes").expect("is Govee")
    }

    fn thb(suffix: &str, t: f64, h: f64, b: f64) -> Vec<Reading> {
        vec![
            Reading::number(&format!("temperature{suffix}"), Capability::Temperature, t),
            Reading::number(&format!("humidity{suffix}"), Capability::Humidity, h),
            Reading::number(&format!("battery{suffix}"), Capability::Battery, b),
        ]
    }

    fn battery_only(suffix: &str, b: f64) -> Vec<Reading> {
        vec![Reading::number(&format!("battery{suffix}"), Capability::Battery, b)]
    }

    fn check(d: &Decoded, model: &str, readings: Vec<Reading>) {
        assert_eq!(d.brand, "Govee");
        assert_eq!(d.model, model);
        assert_eq!((d.packet_id, d.encrypted, d.identity.as_deref()), (None, false, None));
        assert_eq!(d.readings, readings);
    }

    // govee-ble's test suite (Bluetooth-Devices/govee-ble, tests/test_parser.py): GVH5075_*.
    #[test]
    fn h5075() {
        let glued = [hex("000341c26400"), GLUE.to_vec()].concat();
        check(&read("GVH5075_2762", GOVEE, &glued), "H5075", thb("", 21.3, 44.2, 100.0));
        check(&read("GVH5075_DBF8", GOVEE, &hex("00034db26400")), "H5075", thb("", 21.6, 49.8, 100.0));
        check(&read("GVH5075_2762", GOVEE, &hex("00030fc93500")), "H5075", thb("", 20.0, 64.9, 53.0));
        // Impossible temperatures (-393.2 °C and 484.9 °C): only the battery is read.
        check(&read("GVH5075_2762", GOVEE, &hex("00bc00043e27")), "H5075", battery_only("", 62.0));
        check(&read("GVH5075_2762", GOVEE, &hex("004a00283b00")), "H5075", battery_only("", 59.0));
    }

    // ble_monitor's test suite (test_govee_parser.py: test_Govee_H5075, _double).
    #[test]
    fn h5075_ble_monitor() {
        check(&read("GVH5075_CB9B", GOVEE, &hex("0003215d6400")), "H5075", thb("", 20.5, 14.9, 100.0));
        check(&read("GVH5075_6C11", GOVEE, &hex("00012d6e6400")), "H5075", thb("", 7.7, 16.6, 100.0));
        // Without a name: the format's models.
        let d = decode(
            &Advertisement { manufacturer_data: [(GOVEE, hex("0003215d6400"))].into(), ..Default::default() },
            None,
        );
        check(&d.expect("decodes").expect("is Govee"), "H5072/H5075", thb("", 20.5, 14.9, 100.0));
    }

    #[test]
    fn packed_negative_and_error_flag() {
        // -5.1 °C, 23.4 %: 51 234 with the sign bit.
        check(&read("GVH5075_0001", GOVEE, &hex("0080c8225a00")), "H5075", thb("", -5.1, 23.4, 90.0));
        // The battery byte's top bit flags a sensor error.
        check(&read("GVH5075_0001", GOVEE, &hex("0003215de400")), "H5075", battery_only("", 100.0));
    }

    // govee-ble: GVH5074_SERVICE_INFO (with Apple's iBeacon data beside it); ble_monitor:
    // test_Govee_H5074.
    #[test]
    fn h5074() {
        let d = decode(&adv("Govee_H5074_5FF4", &[(GOVEE, &hex("00e609bc126402")), (0x004C, &GLUE[2..])]), None);
        check(&d.expect("decodes").expect("is Govee"), "H5074", thb("", 25.34, 47.96, 100.0));
        check(&read("Govee_H5074_1D12", GOVEE, &hex("0088078c116402")), "H5074", thb("", 19.28, 44.92, 100.0));
    }

    // govee-ble: GVH5051 (no name), GVH5052, GVH5071; ble_monitor: test_Govee_H5051.
    #[test]
    fn h5051_h5052_h5071() {
        let h5051 = Advertisement {
            name: Some(String::new()),
            manufacturer_data: [(GOVEE, hex("00ba0af90f63020101"))].into(),
            ..Advertisement::default()
        };
        check(&decode(&h5051, None).expect("decodes").expect("is Govee"), "H5051", thb("", 27.46, 40.89, 99.0));
        check(&read("Govee_H5052_E81B", GOVEE, &hex("001c01a7143b000002")), "H5052", thb("", 2.84, 52.87, 59.0));
        check(&read("Govee_H5071_FD12", GOVEE, &hex("00210ab61218c80001")), "H5071", thb("", 25.93, 47.9, 24.0));
    }

    // govee-ble: GVH5177, GVH5100, GVH5103, GVH5105 (two), GVH5108; ble_monitor: test_Govee_H5102;
    // a published GVH5104 frame (checked there against Home Assistant's reading).
    #[test]
    fn h5100_family() {
        let glued = |frame: &str| [hex(frame), GLUE.to_vec()].concat();
        check(&read("GVH5177_2EC8", BORROWED, &glued("010103362664")), "H5177", thb("", 21.0, 47.0, 100.0));
        check(&read("GVH5100_7738", BORROWED, &hex("010103465464")), "H5100", thb("", 21.4, 61.2, 100.0));
        check(&read("GVH5103_5A4E", BORROWED, &glued("010103513e64")), "H5103", thb("", 21.7, 40.6, 100.0));
        check(&read("GVH5105_7336", BORROWED, &glued("0101033aed64")), "H5105", thb("", 21.1, 69.3, 100.0));
        check(&read("GVH5105_7336", BORROWED, &hex("010103325e64")), "H5105", thb("", 20.9, 50.2, 100.0));
        check(&read("GVH5102_CB9B", BORROWED, &hex("010103cb0164")), "H5102", thb("", 24.8, 57.7, 100.0));
        check(&read("GVH5104_6D7B", BORROWED, &hex("010104a4652b")), "H5104", thb("", 30.4, 22.9, 43.0));
        check(&read("GV51085242", BORROWED, &glued("010103c730640000")), "H5108", thb("", 24.7, 60.0, 100.0));
    }

    // govee-ble: GVH5178 (outdoor sensor, and its error frame); ble_monitor: test_Govee_H5178_
    // sensor_0 and _1.
    #[test]
    fn h5178() {
        check(&read("B51782BC8", BORROWED, &hex("010101002af7640003")), "H5178", thb("_2", 1.0, 99.9, 100.0));
        check(&read("B51782BC8", BORROWED, &hex("0101010003e7e40001")), "H5178", battery_only("_2", 100.0));
        check(&read("B5178C545", BORROWED, &hex("01010003a00f640000")), "H5178", thb("", 23.7, 58.3, 100.0));
        check(&read("B5178C545", BORROWED, &hex("01010102fc87640002")), "H5178", thb("_2", 19.5, 71.9, 100.0));
        assert!(matches!(
            decode(&adv("B5178C545", &[(BORROWED, &hex("01010202fc87640002"))]), None),
            Err(DecodeError::Unsupported { .. })
        ));
    }

    // govee-ble: GVH5179_SERVICE_INFO; ble_monitor: test_Govee_H5179.
    #[test]
    fn h5179() {
        check(&read("Govee_H5179_3CD5", H5179, &hex("ec0001010a0aa40664")), "H5179", thb("", 25.7, 17.0, 100.0));
        check(&read("Govee_H5179_186F", H5179, &hex("ec000101a00aa2175b")), "H5179", thb("", 27.2, 60.5, 91.0));
    }

    #[test]
    fn not_govee() {
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        // govee-ble's NOT_GVH5106: another maker's device on company id 0x0001.
        assert_eq!(
            decode(&adv("RZSS", &[(0x0409, &hex("8c645f64")), (BORROWED, &hex("01010b005864"))]), None),
            Ok(None)
        );
        // 0x0001 data without a name, and a Govee air-quality monitor (H5106, not read here).
        let unnamed =
            Advertisement { manufacturer_data: [(BORROWED, hex("010103465464"))].into(), ..Default::default() };
        assert_eq!(decode(&unnamed, None), Ok(None));
        assert_eq!(decode(&adv("GVH5106_4E05", &[(BORROWED, &hex("01010ed13298"))]), None), Ok(None));
        // An Inkbird whose temperature (-50 °C) makes its company id 0xEC88: its name says so.
        assert_eq!(decode(&adv("sps", &[(GOVEE, &hex("f41000ba4e6408"))]), None), Ok(None));
        // Other lengths (a Govee button's 12 bytes).
        assert_eq!(decode(&adv("GV51255367", &[(GOVEE, &hex("010a2eafd930383553670101"))]), None), Ok(None));
    }

    #[test]
    fn names() {
        assert_eq!(model_from_name("GVH5075_2762").as_deref(), Some("H5075"));
        assert_eq!(model_from_name("Govee_H5074_5FF4").as_deref(), Some("H5074"));
        assert_eq!(model_from_name("GV51085242").as_deref(), Some("H5108"));
        assert_eq!(model_from_name("B51782BC8").as_deref(), Some("H5178"));
        assert_eq!(model_from_name("GVPROBE"), None);
        assert_eq!(model_from_name("GVH5"), None);
        assert_eq!(model_from_name("GVH5é7"), None);
        assert!(!is_govee_name("ATC_8D18B2"));
    }

    #[test]
    fn prefixes_never_panic() {
        let cases: [(&str, u16, &str); 6] = [
            ("GVH5075_2762", GOVEE, "000341c26400"),
            ("Govee_H5074_5FF4", GOVEE, "00e609bc126402"),
            ("Govee_H5052_E81B", GOVEE, "001c01a7143b000002"),
            ("GV51085242", BORROWED, "010103c730640000"),
            ("B51782BC8", BORROWED, "010101002af7640003"),
            ("Govee_H5179_3CD5", H5179, "ec0001010a0aa40664"),
        ];
        for (name, company, frame) in cases {
            let bytes = [hex(frame), GLUE.to_vec()].concat();
            for n in 0..=bytes.len() {
                let _ = decode(&adv(name, &[(company, &bytes[..n])]), None);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x6075_EC88_0001_8801);
        let names = ["GVH5075_2762", "GVH5100_7738", "GV51085242", "B51782BC8", "Govee_H5179_3CD5", "", "GVH5é", "GV"];
        for i in 0..5000u64 {
            let len = match i % 4 {
                0 => 6,
                1 => 9,
                2 => 6 + 25,
                _ => (rng.next() % 40) as usize,
            };
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 8 == 2 && data.len() >= 25 {
                let at = data.len() - 25;
                data[at..at + 17].copy_from_slice(&GLUE[..17]);
            }
            let company = [GOVEE, BORROWED, H5179, 0x004C][(rng.next() % 4) as usize];
            let name = names[(rng.next() % names.len() as u64) as usize];
            if let Ok(Some(d)) = decode(&adv(name, &[(company, &data)]), None) {
                assert_eq!(d.brand, "Govee");
            }
        }
    }
}
