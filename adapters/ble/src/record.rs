//! Recorded advertisements: one JSON object a line, so a user can send what their device says
//! and a developer can replay it without the device (`hearth ble replay FILE`, or the adapter's
//! `replay` option).
//!
//! A line: `{"at": 12.5, "address": "A4:C1:38:0A:1B:2C", "rssi": -67, "name": "ATC_0A1B2C",
//! "service_data": {"181a": "a4c1380a1b2c00e52e5a0b7f64"}, "manufacturer_data": {"0499": "05..."},
//! "service_uuids": ["fcd2"]}`. `at` is seconds since the start of the recording (optional; a
//! replay waits for it). Byte strings are hex; 16-bit UUIDs are 4 hex digits, others written in
//! full; manufacturer ids are 4 hex digits. Blank lines and lines starting with `#` are skipped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::decode::{Address, Advertisement, uuid16};

/// One recorded advertisement.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Seconds since the start of the recording, when known.
    pub at: Option<f64>,
    /// The advertisement.
    pub adv: Advertisement,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<f64>,
    address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rssi: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    service_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    manufacturer_data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    service_uuids: Vec<String>,
}

/// Reads hex (`"0a1B"`, spaces allowed between bytes) into bytes.
pub fn from_hex(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean.len().is_multiple_of(2) {
        return Err(format!("`{s}` is not hex bytes: it has an odd number of digits"));
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| {
            clean
                .get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("`{s}` is not hex bytes"))
        })
        .collect()
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A UUID as written in a recording: 4 hex digits for the SIG's 16-bit ones, else in full.
pub fn parse_uuid(s: &str) -> Result<u128, String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let bad = || format!("`{s}` is not a UUID: write 4 hex digits (`fcd2`) or a full UUID");
    match hex.len() {
        4 => u16::from_str_radix(&hex, 16).map(uuid16).map_err(|_| bad()),
        32 => u128::from_str_radix(&hex, 16).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A UUID as a recording writes it.
pub fn uuid_text(u: u128) -> String {
    let short = (u >> 96) as u16;
    if uuid16(short) == u {
        return format!("{short:04x}");
    }
    let h = format!("{u:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Reads one line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<Recorded>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let l: Line = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let mut adv = Advertisement { address: l.address, rssi: l.rssi, name: l.name, ..Advertisement::default() };
    for (uuid, data) in &l.service_data {
        adv.service_data.insert(parse_uuid(uuid)?, from_hex(data)?);
    }
    for (id, data) in &l.manufacturer_data {
        let company =
            u16::from_str_radix(id, 16).map_err(|_| format!("`{id}` is not a manufacturer id: write 4 hex digits"))?;
        adv.manufacturer_data.insert(company, from_hex(data)?);
    }
    for uuid in &l.service_uuids {
        adv.service_uuids.push(parse_uuid(uuid)?);
    }
    Ok(Some(Recorded { at: l.at, adv }))
}

/// Reads a whole recording; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Recorded>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => return Err(format!("line {}: {e}", n + 1)),
        }
    }
    Ok(out)
}

/// One advertisement as a line of a recording.
pub fn to_line(r: &Recorded) -> String {
    let a = &r.adv;
    let line = Line {
        at: r.at,
        address: a.address,
        rssi: a.rssi,
        name: a.name.clone(),
        service_data: a.service_data.iter().map(|(u, d)| (uuid_text(*u), to_hex(d))).collect(),
        manufacturer_data: a.manufacturer_data.iter().map(|(c, d)| (format!("{c:04x}"), to_hex(d))).collect(),
        service_uuids: a.service_uuids.iter().map(|u| uuid_text(*u)).collect(),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_and_writes_back_the_same() {
        let text = r#"{"at":1.5,"address":"A4:C1:38:0A:1B:2C","rssi":-67,"name":"ATC_0A1B2C","service_data":{"181a":"a4c1380a1b2c00e5"},"manufacturer_data":{"0499":"05"},"service_uuids":["0000fcd2-0000-1000-8000-00805f9b34fb","12345678-1234-5678-1234-56789abcdef0"]}"#;
        let r = parse_line(text).expect("valid").expect("a record");
        assert_eq!(r.at, Some(1.5));
        assert_eq!(r.adv.address.to_string(), "A4:C1:38:0A:1B:2C");
        assert_eq!(r.adv.rssi, Some(-67));
        assert_eq!(r.adv.service_data16(0x181A), Some(&[0xa4, 0xc1, 0x38, 0x0a, 0x1b, 0x2c, 0x00, 0xe5][..]));
        assert_eq!(r.adv.manufacturer(0x0499), Some(&[0x05][..]));
        assert_eq!(r.adv.service_uuids[0], uuid16(0xFCD2));
        let again = parse_line(&to_line(&r)).expect("valid").expect("a record");
        assert_eq!(again, r);
        assert!(to_line(&r).contains(r#""service_uuids":["fcd2","12345678-1234-5678-1234-56789abcdef0"]"#));
    }

    #[test]
    fn errors_say_what_and_where() {
        let bad = parse("# a comment\n\n{\"address\": \"A4:C1:38:0A:1B\"}\n").expect_err("bad address");
        assert!(bad.starts_with("line 3:") && bad.contains("Bluetooth address"), "{bad}");
        let bad = parse(r#"{"address": "A4:C1:38:0A:1B:2C", "service_data": {"181a": "abc"}}"#).expect_err("odd hex");
        assert!(bad.contains("odd number of digits"), "{bad}");
        let bad = parse(r#"{"address": "A4:C1:38:0A:1B:2C", "colour": 1}"#).expect_err("unknown key");
        assert!(bad.contains("unknown field `colour`"), "{bad}");
        assert_eq!(parse("").expect("empty"), vec![]);
    }
}
