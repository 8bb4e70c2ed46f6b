//! SwitchBot advertisements (OpenWonderLabs "SwitchBotAPI-BLE").
//!
//! A SwitchBot device answers an active scan with service data under the 16-bit UUID `0xFD3D`
//! (`0x0D00` before Bot 6.4 / Curtain 4.6 / Meter 2.7). Its first byte is the device type in
//! bits 0-6 (bit 7: the device is password protected, which does not hide the advertisement);
//! byte 1 is a status byte whose meaning depends on the type; bits 0-6 of byte 2 are the battery
//! in %. Newer firmware also sends manufacturer data under company `0x0969`: the device's MAC
//! (6 bytes), a sequence byte, then state bytes that for some types are the only place the
//! measurement is (Outdoor Meter, Meter Pro, Plug Mini).
//!
//! Read here, by device type:
//!
//! | type | model | from |
//! |---|---|---|
//! | `T` | Meter | temperature, humidity (manufacturer data bytes 8-10 when sent, else service data bytes 3-5), battery |
//! | `i` | Meter Plus | as Meter |
//! | `w` | Outdoor Meter | temperature, humidity from manufacturer data bytes 8-10; battery |
//! | `4` | Meter Pro | as Outdoor Meter |
//! | `5` | Meter Pro CO2 | as Outdoor Meter, and CO2 (ppm, big-endian) in manufacturer data bytes 13-14 |
//! | `d` | Contact Sensor | contact, motion, light, left open, button counter, battery |
//! | `s` | Motion Sensor | motion, light, battery |
//! | `H` | Bot | on/off (in switch mode), mode, battery |
//! | `g`, `j` | Plug Mini (`j`: Japanese model) | on/off, power, overload, Wi-Fi signal (all in manufacturer data) |
//!
//! Temperature is sign and magnitude: bits 0-3 of the first byte are tenths (0-9), bits 0-6 of
//! the second the whole degrees, its bit 7 the sign (1: above zero); bits 0-6 of the third are
//! the humidity in % (bit 7 only says the display shows °F). The values are always °C.
//!
//! Where both carry a value (contact and motion sensors, meters) the manufacturer data is read
//! first: it comes in every advertisement, the service data only in scan responses. The
//! manufacturer-data layouts of the meters and sensors are not in the official document; they are
//! those read by the maintained open-source integrations and agree with the service data in
//! every published example frame.
//!
//! Not derived here: button *events* (the contact sensor's 4-bit press counter is reported as the
//! number `button_count`; a change between two frames is a press, which is the adapter's to see),
//! the contact sensor's entry/exit counters and seconds since the last trigger, alert flags and
//! the °F display flag. Manufacturer data without service data names no device type and is left
//! to other decoders (`Ok(None)`).

use hearth_sdk::{Capability, Value};

use super::{Advertisement, DecodeError, Decoded, Reading, round};

/// The format's name in errors.
const FORMAT: &str = "SwitchBot";
/// SwitchBot's service data UUID.
const SERVICE_UUID: u16 = 0xFD3D;
/// The service data UUID of older firmware.
const LEGACY_SERVICE_UUID: u16 = 0x0D00;
/// Wonderlabs' company id.
const COMPANY_ID: u16 = 0x0969;
/// The highest CO2 value the Meter Pro CO2 reports (its range is 400-9999 ppm); higher values are
/// glitches and are dropped.
const CO2_MAX_PPM: u16 = 9999;

/// Reads a SwitchBot advertisement; `Ok(None)` when the advertisement has no SwitchBot service
/// data (or old-UUID service data of a type not read here). A device type this decoder does not
/// read under the current UUID is [`DecodeError::Unsupported`].
pub fn decode(adv: &Advertisement, _key: Option<&[u8]>) -> Result<Option<Decoded>, DecodeError> {
    let (service, legacy) = match (adv.service_data16(SERVICE_UUID), adv.service_data16(LEGACY_SERVICE_UUID)) {
        (Some(service), _) => (service, false),
        (None, Some(service)) => (service, true),
        (None, None) => return Ok(None),
    };
    let Some(&first) = service.first() else {
        return if legacy { Ok(None) } else { Err(malformed("empty service data")) };
    };
    let kind = first & 0x7F;
    let Some(model) = model(kind) else {
        // 0x0D00 is not SwitchBot's registered UUID: an unknown type there may not be SwitchBot.
        return if legacy { Ok(None) } else { Err(DecodeError::Unsupported { format: FORMAT, what: describe(kind) }) };
    };
    if service.len() < 3 {
        return Err(malformed(format!("service data of {} bytes, the header alone is 3", service.len())));
    }
    let mfr = adv.manufacturer(COMPANY_ID);
    let readings = match kind {
        b'T' | b'i' => meter(service, mfr)?,
        b'w' | b'4' => meter_from_mfr(service, mfr, false)?,
        b'5' => meter_from_mfr(service, mfr, true)?,
        b'd' => contact(service, mfr)?,
        b's' => motion(service, mfr)?,
        b'H' => bot(service)?,
        _ => plug(mfr)?,
    };
    Ok(Some(Decoded { brand: "SwitchBot", model: model.to_owned(), readings, ..Decoded::default() }))
}

/// The model of a device type read here.
fn model(kind: u8) -> Option<&'static str> {
    Some(match kind {
        b'T' => "Meter",
        b'i' => "Meter Plus",
        b'w' => "Outdoor Meter",
        b'4' => "Meter Pro",
        b'5' => "Meter Pro CO2",
        b'd' => "Contact Sensor",
        b's' => "Motion Sensor",
        b'H' => "Bot",
        b'g' => "Plug Mini",
        b'j' => "Plug Mini (JP)",
        _ => return None,
    })
}

/// A device type not read here, for the error message.
fn describe(kind: u8) -> String {
    let name = match kind {
        b'c' => "Curtain",
        b'{' => "Curtain 3",
        b'o' => "Lock",
        b'$' => "Lock Pro",
        b'u' => "Color Bulb",
        b'r' => "LED Strip Light",
        b'v' => "Hub 2",
        b'e' => "Humidifier",
        b'x' => "Blind Tilt",
        b'&' => "Leak Detector",
        b'y' => "Keypad",
        b'b' => "Remote",
        b'q' | b'n' => "Ceiling Light",
        b'<' | b';' => "Relay Switch",
        b'l' | b'L' | b'm' | b'M' | b'p' | b'P' => "Hub",
        b't' => "Meter in pairing mode",
        b'D' => "Contact Sensor in pairing mode",
        b'S' => "Motion Sensor in pairing mode",
        _ => "",
    };
    let shown = if kind.is_ascii_graphic() { format!("'{}'", char::from(kind)) } else { format!("0x{kind:02X}") };
    if name.is_empty() { format!("device type {shown}") } else { format!("device type {shown} ({name})") }
}

/// A malformed-frame error of this format.
fn malformed(why: impl Into<String>) -> DecodeError {
    DecodeError::malformed(FORMAT, why)
}

/// The battery (bits 0-6 of service data byte 2).
fn battery(service: &[u8]) -> Result<Reading, DecodeError> {
    let level = service.get(2).map(|b| b & 0x7F).ok_or_else(|| malformed("no battery byte"))?;
    if level > 100 {
        return Err(malformed(format!("battery {level} %")));
    }
    Ok(Reading::number("battery", Capability::Battery, f64::from(level)))
}

/// Temperature (°C) and humidity (%) from their three bytes (see the module documentation).
fn climate(bytes: [u8; 3]) -> Result<(f64, f64), DecodeError> {
    let [low, high, humid] = bytes;
    let (tenths, whole, humidity) = (low & 0x0F, high & 0x7F, humid & 0x7F);
    if tenths > 9 {
        return Err(malformed(format!("temperature tenths digit {tenths}")));
    }
    if humidity > 100 {
        return Err(malformed(format!("humidity {humidity} %")));
    }
    let magnitude = round(f64::from(whole) + f64::from(tenths) / 10.0, 1);
    // Bit 7 set: above zero. A cleared bit with a zero magnitude is 0 °C, not -0.
    let celsius = if high & 0x80 != 0 || (whole == 0 && tenths == 0) { magnitude } else { -magnitude };
    Ok((celsius, f64::from(humidity)))
}

/// Temperature and humidity readings, or none when the device has nothing yet (all zero with a
/// zero battery, as a meter sends right after power-up).
fn climate_readings(bytes: [u8; 3], battery: Reading) -> Result<Vec<Reading>, DecodeError> {
    let (celsius, humidity) = climate(bytes)?;
    if bytes.iter().all(|b| b & 0x7F == 0) && battery.value == Value::Number(0.0) {
        return Ok(Vec::new());
    }
    Ok(vec![
        Reading::number("temperature", Capability::Temperature, celsius),
        Reading::number("humidity", Capability::Humidity, humidity),
        battery,
    ])
}

/// The temperature/humidity bytes (8-10) of the manufacturer data, when it is long enough.
fn mfr_climate(mfr: Option<&[u8]>) -> Option<[u8; 3]> {
    match mfr?.get(8..11)? {
        &[a, b, c] => Some([a, b, c]),
        _ => None,
    }
}

/// Meter and Meter Plus: the values in manufacturer data when sent, else in the service data.
fn meter(service: &[u8], mfr: Option<&[u8]>) -> Result<Vec<Reading>, DecodeError> {
    let battery = battery(service)?;
    let bytes = match (mfr_climate(mfr), service.get(3..6)) {
        (Some(bytes), _) => bytes,
        (None, Some(&[a, b, c])) => [a, b, c],
        _ => return Err(malformed(format!("meter service data of {} bytes, needs 6", service.len()))),
    };
    climate_readings(bytes, battery)
}

/// Outdoor Meter and Meter Pro (CO2): the values only in manufacturer data; without it, the
/// battery alone.
fn meter_from_mfr(service: &[u8], mfr: Option<&[u8]>, co2: bool) -> Result<Vec<Reading>, DecodeError> {
    let battery = battery(service)?;
    let Some(mfr) = mfr else {
        return Ok(vec![battery]);
    };
    let bytes = mfr_climate(Some(mfr))
        .ok_or_else(|| malformed(format!("meter manufacturer data of {} bytes, needs 11", mfr.len())))?;
    let mut readings = climate_readings(bytes, battery)?;
    if co2
        && !readings.is_empty()
        && let Some(&[hi, lo]) = mfr.get(13..15)
        && u16::from_be_bytes([hi, lo]) <= CO2_MAX_PPM
    {
        readings.push(Reading::number("co2", Capability::Co2, f64::from(u16::from_be_bytes([hi, lo]))));
    }
    Ok(readings)
}

/// A light level as text (`bright` or `dark`).
fn light(bright: bool) -> Reading {
    Reading::other("light", Value::Text(if bright { "bright" } else { "dark" }.to_owned()), None)
}

/// Contact Sensor.
///
/// Manufacturer data (13 bytes): byte 7 bit 7 motion, bit 6 bright, bit 5 left open past the
/// timeout, bit 4 open; byte 12 bits 0-3 the button counter. Service data (9 bytes): byte 1 bit 6
/// motion; byte 3 bit 0 bright, bits 1-2 the door (0 closed, 1 open, 2 open past the timeout);
/// byte 8 bits 0-3 the button counter.
fn contact(service: &[u8], mfr: Option<&[u8]>) -> Result<Vec<Reading>, DecodeError> {
    let battery = battery(service)?;
    let (motion, bright, open, left_open, button) = match (mfr.and_then(|m| m.get(..13)), service.get(..9)) {
        (Some(&[_, _, _, _, _, _, _, state, _, _, _, _, counters]), _) => {
            let left_open = state & 0x20 != 0;
            (state & 0x80 != 0, state & 0x40 != 0, state & 0x10 != 0 || left_open, left_open, counters & 0x0F)
        }
        (_, Some(&[_, status, _, sensors, _, _, _, _, counters])) => {
            let (open, left_open) = match (sensors >> 1) & 0x03 {
                0 => (false, false),
                1 => (true, false),
                2 => (true, true),
                _ => return Err(malformed("door state 3")),
            };
            (status & 0x40 != 0, sensors & 0x01 != 0, open, left_open, counters & 0x0F)
        }
        _ => return Err(malformed(format!("contact sensor service data of {} bytes, needs 9", service.len()))),
    };
    Ok(vec![
        Reading::flag("contact", Capability::Contact, !open),
        Reading::other("left_open", Value::Bool(left_open), None),
        Reading::flag("motion", Capability::Occupancy, motion),
        light(bright),
        Reading::other("button_count", Value::Number(f64::from(button)), None),
        battery,
    ])
}

/// Motion Sensor.
///
/// Manufacturer data (8+ bytes): byte 7 bit 6 motion, bit 5 bright. Service data (6 bytes): byte 1
/// bit 6 motion; byte 5 bits 0-1 the light (1 dark, 2 bright; 0 and 3 reserved).
fn motion(service: &[u8], mfr: Option<&[u8]>) -> Result<Vec<Reading>, DecodeError> {
    let battery = battery(service)?;
    let (motion, bright) = match (mfr.and_then(|m| m.get(7)), service.get(..6)) {
        (Some(&state), _) => (state & 0x40 != 0, Some(state & 0x20 != 0)),
        (None, Some(&[_, status, _, _, _, sensors])) => {
            let bright = match sensors & 0x03 {
                1 => Some(false),
                2 => Some(true),
                _ => None,
            };
            (status & 0x40 != 0, bright)
        }
        _ => return Err(malformed(format!("motion sensor service data of {} bytes, needs 6", service.len()))),
    };
    let mut readings = vec![Reading::flag("motion", Capability::Occupancy, motion)];
    readings.extend(bright.map(light));
    readings.push(battery);
    Ok(readings)
}

/// Bot: service data byte 1 bit 7 the mode (1: switch, on and off; 0: press, momentary), bit 6
/// the state in switch mode (0: on). In press mode the Bot is at rest between presses: off.
fn bot(service: &[u8]) -> Result<Vec<Reading>, DecodeError> {
    let battery = battery(service)?;
    let status = service.get(1).copied().unwrap_or(0);
    let switch_mode = status & 0x80 != 0;
    let on = switch_mode && status & 0x40 == 0;
    Ok(vec![
        Reading::flag("state", Capability::OnOff, on),
        Reading::other("mode", Value::Text(if switch_mode { "switch" } else { "press" }.to_owned()), None),
        battery,
    ])
}

/// Plug Mini: manufacturer data byte 7 bit 7 on; byte 9 the Wi-Fi signal as -dBm (0: none); byte
/// 10 bit 7 overload (over 15 A), bits 0-6 and byte 11 the power in 0.1 W. The sequence byte (6)
/// is not a packet id: it stays while the power changes. Without manufacturer data, nothing.
fn plug(mfr: Option<&[u8]>) -> Result<Vec<Reading>, DecodeError> {
    let Some(mfr) = mfr else {
        return Ok(Vec::new());
    };
    let Some(&[state, _flags, wifi, hi, lo]) = mfr.get(7..12) else {
        return Err(malformed(format!("plug manufacturer data of {} bytes, needs 12", mfr.len())));
    };
    let tenths = u16::from_be_bytes([hi & 0x7F, lo]);
    let mut readings = vec![
        Reading::flag("state", Capability::OnOff, state & 0x80 != 0),
        Reading::number("power", Capability::Power, round(f64::from(tenths) / 10.0, 1)),
        Reading::other("overload", Value::Bool(hi & 0x80 != 0), None),
    ];
    if wifi != 0 {
        readings.push(Reading::number("wifi_signal", Capability::SignalStrength, -f64::from(wifi)));
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::testing::hex;
    use crate::decode::uuid16;

    /// An advertisement with the given service data (by 16-bit UUID) and manufacturer data.
    fn adv(service: &[(u16, &str)], mfr: &[(u16, &str)]) -> Advertisement {
        Advertisement {
            address: "AA:BB:CC:DD:EE:FF".parse().unwrap(),
            rssi: Some(-60),
            service_data: service.iter().map(|(u, d)| (uuid16(*u), hex(d))).collect(),
            manufacturer_data: mfr.iter().map(|(c, d)| (*c, hex(d))).collect(),
            ..Advertisement::default()
        }
    }

    /// Decodes and checks the whole result: brand, model, every reading in order, no events, no
    /// packet id, not encrypted, no identity.
    fn check(adv: &Advertisement, model: &str, readings: Vec<Reading>) {
        let decoded = decode(adv, None).unwrap().expect("recognised");
        assert_eq!(
            decoded,
            Decoded {
                brand: "SwitchBot",
                model: model.to_owned(),
                readings,
                events: vec![],
                packet_id: None,
                encrypted: false,
                identity: None,
            }
        );
    }

    fn temperature(v: f64) -> Reading {
        Reading::number("temperature", Capability::Temperature, v)
    }
    fn humidity(v: f64) -> Reading {
        Reading::number("humidity", Capability::Humidity, v)
    }
    fn battery(v: f64) -> Reading {
        Reading::number("battery", Capability::Battery, v)
    }
    fn motion(v: bool) -> Reading {
        Reading::flag("motion", Capability::Occupancy, v)
    }
    fn contact_readings(
        closed: bool,
        left_open: bool,
        moving: bool,
        bright: bool,
        button: f64,
        bat: f64,
    ) -> Vec<Reading> {
        vec![
            Reading::flag("contact", Capability::Contact, closed),
            Reading::other("left_open", Value::Bool(left_open), None),
            motion(moving),
            light(bright),
            Reading::other("button_count", Value::Number(button), None),
            battery(bat),
        ]
    }

    // Vectors: pySwitchbot tests/test_adv_parser.py (sblibs/pySwitchbot), Home Assistant
    // tests/components/switchbot/__init__.py, SwitchBotAPI-BLE issues #3 and #10 (Plug Mini
    // captures), and frames built from the SwitchBotAPI-BLE field tables where marked.

    #[test]
    fn meter_with_manufacturer_and_service_data() {
        // pySwitchbot test_wosensor_passive_and_active.
        let a = adv(&[(0xFD3D, "5400e4069835")], &[(0x0969, "d7c17d5deb43de03069835")]);
        check(&a, "Meter", vec![temperature(24.6), humidity(53.0), battery(100.0)]);
        // pySwitchbot test_wosensor_active: the same from the service data alone.
        let a = adv(&[(0xFD3D, "5400e4069835")], &[]);
        check(&a, "Meter", vec![temperature(24.6), humidity(53.0), battery(100.0)]);
    }

    #[test]
    fn meter_with_fahrenheit_display() {
        // Home Assistant WOSENSORTH_SERVICE_INFO: display in °F (humidity bit 7), values in °C.
        let a = adv(&[(0xFD3D, "540064 0096ac")], &[(0x0969, "da2c1eb1864175030096ac")]);
        check(&a, "Meter", vec![temperature(22.0), humidity(44.0), battery(100.0)]);
    }

    #[test]
    fn meter_below_zero_and_meter_plus() {
        // Built from the Meter field table: sign bit clear = below zero, 5.3 °C, 50 %, 87 %.
        let a = adv(&[(0xFD3D, "5400d7030532")], &[]);
        check(&a, "Meter", vec![temperature(-5.3), humidity(50.0), battery(87.0)]);
        // Sign bit clear with a zero magnitude is 0 °C.
        let a = adv(&[(0xFD3D, "5400d7000032")], &[]);
        check(&a, "Meter", vec![temperature(0.0), humidity(50.0), battery(87.0)]);
        // Meter Plus ('i') shares the Meter layout (the pySwitchbot vector with the type byte 'i').
        let a = adv(&[(0xFD3D, "6900e4069835")], &[]);
        check(&a, "Meter Plus", vec![temperature(24.6), humidity(53.0), battery(100.0)]);
    }

    #[test]
    fn meter_not_ready_has_no_readings() {
        // pySwitchbot test_wosensor_active_zero_data.
        let a = adv(&[(0xFD3D, "540000000000")], &[]);
        check(&a, "Meter", vec![]);
    }

    #[test]
    fn outdoor_meter() {
        // pySwitchbot test_woiosensor_passive_and_active.
        let a = adv(&[(0xFD3D, "7700e4")], &[(0x0969, "aabbccddeeffe00f06983500")]);
        check(&a, "Outdoor Meter", vec![temperature(24.6), humidity(53.0), battery(100.0)]);
        // Scan response alone: the battery.
        let a = adv(&[(0xFD3D, "7700e4")], &[]);
        check(&a, "Outdoor Meter", vec![battery(100.0)]);
    }

    #[test]
    fn meter_pro_and_meter_pro_co2() {
        // pySwitchbot test_meter_pro_active.
        let a = adv(&[(0xFD3D, "340064")], &[(0x0969, "b0e9fe52dd840664 08972c 0005")]);
        check(&a, "Meter Pro", vec![temperature(23.8), humidity(44.0), battery(100.0)]);
        // pySwitchbot test_meter_pro_c_active and Home Assistant WOMETERTHPC_SERVICE_INFO
        // (display in °F; CO2 725 ppm).
        let a = adv(&[(0xFD3D, "350064")], &[(0x0969, "b0e9fe543215b7e4079ba4 0037 02d5 00")]);
        check(
            &a,
            "Meter Pro CO2",
            vec![temperature(27.7), humidity(36.0), battery(100.0), Reading::number("co2", Capability::Co2, 725.0)],
        );
        // A CO2 value past the sensor's range is dropped, the rest kept.
        let a = adv(&[(0xFD3D, "350064")], &[(0x0969, "b0e9fe543215b7e4079ba4 0037 ffff 00")]);
        check(&a, "Meter Pro CO2", vec![temperature(27.7), humidity(36.0), battery(100.0)]);
    }

    #[test]
    fn contact_sensor() {
        // pySwitchbot test_parse_advertisement_data_contact: manufacturer data too short (11
        // bytes), read from the service data: open past the timeout, motion, bright, button 2.
        let a = adv(&[(0xFD3D, "64406405007500f812")], &[(0x0969, "e7ab46ac8f927c0f001104")]);
        check(&a, "Contact Sensor", contact_readings(false, true, true, true, 2.0, 100.0));
        // pySwitchbot test_contact_sensor_mfr and test_contact_sensor_srv.
        let a = adv(&[(0xFD3D, "6400da040046018fc4")], &[(0x0969, "cb39cdc43d46412c0046018fc4")]);
        check(&a, "Contact Sensor", contact_readings(false, true, false, false, 4.0, 90.0));
        let a = adv(&[(0xFD3D, "6400da040046018fc4")], &[]);
        check(&a, "Contact Sensor", contact_readings(false, true, false, false, 4.0, 90.0));
        // pySwitchbot test_contact_sensor_open (and its service data alone).
        let a = adv(&[(0xFD3D, "6440da020017005144")], &[(0x0969, "cb39cdc43d46849c0017005144")]);
        check(&a, "Contact Sensor", contact_readings(false, false, true, false, 4.0, 90.0));
        let a = adv(&[(0xFD3D, "6440da020017005144")], &[]);
        check(&a, "Contact Sensor", contact_readings(false, false, true, false, 4.0, 90.0));
        // pySwitchbot test_contact_sensor_closed (and its service data alone).
        let a = adv(&[(0xFD3D, "6440da00002b001984")], &[(0x0969, "cb39cdc43d46898c002b001984")]);
        check(&a, "Contact Sensor", contact_readings(true, false, true, false, 4.0, 90.0));
        let a = adv(&[(0xFD3D, "6440da00002b001984")], &[]);
        check(&a, "Contact Sensor", contact_readings(true, false, true, false, 4.0, 90.0));
    }

    #[test]
    fn motion_sensor() {
        let dark = light(false);
        let bright = light(true);
        // pySwitchbot test_motion_sensor_clear.
        let a = adv(&[(0xFD3D, "7300e2006601")], &[(0x0969, "c0219ae8bc496a1c0066")]);
        check(&a, "Motion Sensor", vec![motion(false), dark.clone(), battery(98.0)]);
        // pySwitchbot test_motion_sensor_motion.
        let a = adv(&[(0xFD3D, "7340e2003801")], &[(0x0969, "c0219ae8bc49695c0038")]);
        check(&a, "Motion Sensor", vec![motion(true), dark.clone(), battery(98.0)]);
        // pySwitchbot test_motion_sensor_is_light_passive and _active.
        let a = adv(&[(0xFD3D, "7300e2046702")], &[(0x0969, "c0219ae8bc49732c0467")]);
        check(&a, "Motion Sensor", vec![motion(false), bright.clone(), battery(98.0)]);
        let a = adv(&[(0xFD3D, "7300e2046702")], &[]);
        check(&a, "Motion Sensor", vec![motion(false), bright.clone(), battery(98.0)]);
        // pySwitchbot test_motion_with_light_detected.
        let a = adv(&[(0xFD3D, "7340e2002c02")], &[(0x0969, "c0219ae8bc49766c002c")]);
        check(&a, "Motion Sensor", vec![motion(true), bright, battery(98.0)]);
        // Reserved light level (0) in the service data: no light reading.
        let a = adv(&[(0xFD3D, "7340e2002c00")], &[]);
        check(&a, "Motion Sensor", vec![motion(true), battery(98.0)]);
    }

    #[test]
    fn bot() {
        let on_off = |on| Reading::flag("state", Capability::OnOff, on);
        let mode = |m: &str| Reading::other("mode", Value::Text(m.to_owned()), None);
        // Home Assistant WOHAND_SERVICE_INFO (old UUID 0x0D00): switch mode, on, 89 %.
        let a = adv(&[(0x0D00, "4890d9")], &[(0x0059, "fd6030559257")]);
        check(&a, "Bot", vec![on_off(true), mode("switch"), battery(89.0)]);
        // pySwitchbot test_new_bot_firmware: press mode, 97 %.
        let a = adv(&[(0x0D00, "4810e1")], &[(0x0059, "d82eadcd0d85")]);
        check(&a, "Bot", vec![on_off(false), mode("press"), battery(97.0)]);
        // Home Assistant WOHAND_ENCRYPTED_SERVICE_INFO: password bit set, still readable, 79 %.
        let a = adv(&[(0x0D00, "c810cf")], &[]);
        check(&a, "Bot", vec![on_off(false), mode("press"), battery(79.0)]);
        // Built from the Bot field table: switch mode, off.
        let a = adv(&[(0xFD3D, "48c064")], &[]);
        check(&a, "Bot", vec![on_off(false), mode("switch"), battery(100.0)]);
    }

    #[test]
    fn plug_mini() {
        let readings = |on, watts, overload| {
            vec![
                Reading::flag("state", Capability::OnOff, on),
                Reading::number("power", Capability::Power, watts),
                Reading::other("overload", Value::Bool(overload), None),
            ]
        };
        // Service data from SwitchBotAPI-BLE issue #10 (JP plug), manufacturer data from issue #3
        // (`690934b4720e18720180000000cc` with the company id): on, 20.4 W, no Wi-Fi signal.
        let a = adv(&[(0xFD3D, "6a0064")], &[(0x0969, "34b4720e1872 01 80 00 00 00cc")]);
        check(&a, "Plug Mini (JP)", readings(true, 20.4, false));
        let a = adv(&[(0xFD3D, "670064")], &[(0x0969, "34b4720e1872 01 80 00 00 0095")]);
        check(&a, "Plug Mini", readings(true, 14.9, false));
        // Built from the Plug Mini table: off, overload, 3276.7 W, Wi-Fi at -46 dBm.
        let a = adv(&[(0xFD3D, "670064")], &[(0x0969, "34b4720e1872 07 00 04 2e ffff")]);
        let mut expected = readings(false, 3276.7, true);
        expected.push(Reading::number("wifi_signal", Capability::SignalStrength, -46.0));
        check(&a, "Plug Mini", expected);
        // Scan response alone: the device, no values.
        let a = adv(&[(0xFD3D, "6a0064")], &[]);
        check(&a, "Plug Mini (JP)", vec![]);
    }

    #[test]
    fn not_switchbot_is_none() {
        assert_eq!(decode(&Advertisement::default(), None), Ok(None));
        // Manufacturer data alone names no device type.
        let a = adv(&[], &[(0x0969, "aabbccddeeffe00f06983500")]);
        assert_eq!(decode(&a, None), Ok(None));
        // Someone else's service data and company.
        let a = adv(&[(0xFCD2, "4002c409")], &[(0x004C, "0215")]);
        assert_eq!(decode(&a, None), Ok(None));
        // The unregistered old UUID with a type not read here, or empty.
        assert_eq!(decode(&adv(&[(0x0D00, "0a0b0c")], &[]), None), Ok(None));
        assert_eq!(decode(&adv(&[(0x0D00, "")], &[]), None), Ok(None));
    }

    #[test]
    fn other_device_types_are_unsupported() {
        // pySwitchbot test_parse_advertisement_data_curtain.
        let a = adv(&[(0xFD3D, "63c058001104")], &[(0x0969, "e7ab46ac8f927c0f001104")]);
        assert_eq!(
            decode(&a, None),
            Err(DecodeError::Unsupported { format: FORMAT, what: "device type 'c' (Curtain)".into() })
        );
        let a = adv(&[(0xFD3D, "000064")], &[]);
        assert_eq!(decode(&a, None), Err(DecodeError::Unsupported { format: FORMAT, what: "device type 0x00".into() }));
    }

    #[test]
    fn malformed_frames() {
        let is_malformed = |a: &Advertisement| matches!(decode(a, None), Err(DecodeError::Malformed { .. }));
        assert!(is_malformed(&adv(&[(0xFD3D, "")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "5400")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "5400e40698")], &[])));
        // Tenths digit 10, humidity 101 %, battery 101 %.
        assert!(is_malformed(&adv(&[(0xFD3D, "5400e40a9835")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "5400e4069865")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "5400e5069835")], &[])));
        // Door state 3, short contact and motion service data, short plug manufacturer data.
        assert!(is_malformed(&adv(&[(0xFD3D, "6440da06002b001984")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "6440da06002b0019")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "7340e2002c")], &[])));
        assert!(is_malformed(&adv(&[(0xFD3D, "670064")], &[(0x0969, "34b4720e18720180000000")])));
        assert!(is_malformed(&adv(&[(0xFD3D, "7700e4")], &[(0x0969, "aabbccddeeffe00f0698")])));
    }

    /// Every published frame above, for the prefix and random-input tests.
    const FRAMES: &[(u16, &str, &str)] = &[
        (0xFD3D, "5400e4069835", "d7c17d5deb43de03069835"),
        (0xFD3D, "5400640096ac", "da2c1eb1864175030096ac"),
        (0xFD3D, "7700e4", "aabbccddeeffe00f06983500"),
        (0xFD3D, "340064", "b0e9fe52dd84066408972c0005"),
        (0xFD3D, "350064", "b0e9fe543215b7e4079ba4003702d500"),
        (0xFD3D, "64406405007500f812", "e7ab46ac8f927c0f001104"),
        (0xFD3D, "6440da020017005144", "cb39cdc43d46849c0017005144"),
        (0xFD3D, "7340e2002c02", "c0219ae8bc49766c002c"),
        (0x0D00, "4890d9", ""),
        (0xFD3D, "6a0064", "34b4720e18720180000000cc"),
    ];

    #[test]
    fn every_prefix_of_the_frames_is_safe() {
        for (uuid, service, mfr) in FRAMES {
            let (service, mfr) = (hex(service), hex(mfr));
            for s in 0..=service.len() {
                for m in 0..=mfr.len() {
                    let a = Advertisement {
                        service_data: [(uuid16(*uuid), service[..s].to_vec())].into(),
                        manufacturer_data: [(COMPANY_ID, mfr[..m].to_vec())].into(),
                        ..Advertisement::default()
                    };
                    let _ = decode(&a, None);
                }
            }
        }
    }

    #[test]
    fn random_bytes_are_safe() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let types = b"Tiw45dsHgjc\x00";
        for i in 0..4000 {
            let mut bytes = |max: u64| -> Vec<u8> { (0..next() % max).map(|_| next() as u8).collect() };
            let mut service = bytes(12);
            let mfr = bytes(20);
            // Most frames start with a type read here, so the deeper paths are reached.
            if i % 4 != 0
                && let Some(first) = service.first_mut()
            {
                *first = types[(next() % types.len() as u64) as usize];
            }
            let uuid = if i % 2 == 0 { SERVICE_UUID } else { LEGACY_SERVICE_UUID };
            let a = Advertisement {
                service_data: [(uuid16(uuid), service)].into(),
                manufacturer_data: [(COMPANY_ID, mfr)].into(),
                ..Advertisement::default()
            };
            let _ = decode(&a, None);
        }
    }
}
