//! Yeelight's wire formats, as the "Yeelight WiFi Light Inter-Operation Specification" (v1.x)
//! writes them: the discovery datagrams on the multicast group 239.255.255.250:1982 (a search,
//! the bulbs' answers and their advertisements), and the JSON lines of the control connection
//! (TCP 55443).
//!
//! Discovery is SSDP-like, with headers of Yeelight's own:
//!
//! ```text
//! M-SEARCH * HTTP/1.1                      HTTP/1.1 200 OK              (or NOTIFY * HTTP/1.1
//! HOST: 239.255.255.250:1982               Cache-Control: max-age=3600   with Host and NTS, sent
//! MAN: "ssdp:discover"                     Location: yeelight://192.168.1.239:55443  to the group)
//! ST: wifi_bulb                            id: 0x000000000015243f
//!                                          model: color
//!                                          fw_ver: 18
//!                                          support: get_prop set_power set_bright ...
//!                                          power: on, bright: 100, color_mode: 2, ct: 4000,
//!                                          rgb: 16711680, hue: 100, sat: 35, name: my_bulb
//! ```
//!
//! Control messages are JSON objects, one per line ending in `\r\n`: a request
//! `{"id":1,"method":"set_power","params":["on","smooth",500]}`, its result
//! `{"id":1,"result":["ok"]}` or error `{"id":1,"error":{"code":-1,"message":"unsupported method"}}`,
//! and notifications the bulb sends to every connection when something changed,
//! `{"method":"props","params":{"power":"on","bright":"10"}}` (firmwares write the values as
//! strings or as numbers).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value as Json;

/// The multicast group bulbs listen and advertise on.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The discovery port (not SSDP's 1900).
pub const DISCOVERY_PORT: u16 = 1982;
/// The control port a bulb announces in its `Location` (and the one used when it names none).
pub const CONTROL_PORT: u16 = 55443;
/// The search request, sent to [`GROUP`]:[`DISCOVERY_PORT`]; every bulb answers it unicast.
pub const SEARCH: &str =
    "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1982\r\nMAN: \"ssdp:discover\"\r\nST: wifi_bulb\r\n";

/// What cannot be read off the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not UTF-8 text.
    #[error("not text")]
    NotText,
    /// A datagram that starts with none of the discovery messages.
    #[error("a datagram starting with {0:?} is no Yeelight search, answer or advertisement")]
    UnknownStart(String),
    /// An answer or advertisement without a usable `id`.
    #[error("no usable `id` header (got {0:?})")]
    NoId(Option<String>),
    /// An answer or advertisement without a usable `Location`.
    #[error("no usable `Location` header, `yeelight://<IPv4>:<port>` (got {0:?})")]
    NoLocation(Option<String>),
    /// A control line that is not JSON.
    #[error("a line that is not JSON ({0})")]
    NotJson(String),
    /// A control line that is JSON but no result, error or notification.
    #[error("a message that is no result, error or notification: {0}")]
    Unexpected(String),
}

/// A bulb as it answered a search or advertised itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bulb {
    /// Its id as 16 lowercase hex digits without `0x` (`000000000015243f`): the inbox key.
    pub key: String,
    /// Where its control port is (from `Location`).
    pub address: SocketAddr,
    /// Every header, names in lowercase, values trimmed.
    pub headers: BTreeMap<String, String>,
    /// Whether it was an advertisement (`NOTIFY`) rather than an answer to a search.
    pub advertised: bool,
}

impl Bulb {
    /// The value of header `name` (lowercase), when present and not empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

/// Reads a datagram heard on the discovery port: `Ok(Some)` for a bulb's answer or
/// advertisement, `Ok(None)` for a search (this hub's own, or another app's), an error for
/// anything else.
pub fn parse_datagram(bytes: &[u8]) -> Result<Option<Bulb>, WireError> {
    let text = std::str::from_utf8(bytes).map_err(|_| WireError::NotText)?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let start = lines.next().unwrap_or_default().trim();
    let advertised = match start.to_ascii_uppercase().as_str() {
        "HTTP/1.1 200 OK" => false,
        "NOTIFY * HTTP/1.1" => true,
        "M-SEARCH * HTTP/1.1" => return Ok(None),
        _ => return Err(WireError::UnknownStart(start.chars().take(40).collect())),
    };
    let mut headers = BTreeMap::new();
    for line in lines {
        // Lines without a colon (a trailing blank, stray text) carry nothing.
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if !name.is_empty() {
                headers.entry(name).or_insert_with(|| value.trim().to_owned());
            }
        }
    }
    let id = headers.get("id").cloned();
    let key = id.as_deref().and_then(normalize_id).ok_or(WireError::NoId(id))?;
    let location = headers.get("location").cloned();
    let address = location.as_deref().and_then(parse_location).ok_or(WireError::NoLocation(location))?;
    Ok(Some(Bulb { key, address, headers, advertised }))
}

/// A bulb's id as the inbox key: `0x000000000015243f` (any case, with or without `0x`) is
/// `000000000015243f`. `None` for anything that is not a non-zero 64-bit hex number.
pub fn normalize_id(id: &str) -> Option<String> {
    let id = id.trim();
    let hex = id.strip_prefix("0x").or_else(|| id.strip_prefix("0X")).unwrap_or(id);
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    let n = u64::from_str_radix(hex, 16).ok()?;
    (n != 0).then(|| format!("{n:016x}"))
}

/// The control address of `yeelight://192.168.1.239:55443` (port 55443 when it names none).
pub fn parse_location(location: &str) -> Option<SocketAddr> {
    let location = location.trim();
    let scheme = "yeelight://";
    // `get`: a location with a character across the scheme's end is no location (found by fuzzing).
    if !location.get(..scheme.len()).is_some_and(|head| head.eq_ignore_ascii_case(scheme)) {
        return None;
    }
    let rest = location[scheme.len()..].trim_end_matches('/');
    if let Ok(a) = rest.parse::<SocketAddr>() {
        return Some(a);
    }
    rest.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, CONTROL_PORT))
}

/// One request line: `{"id":1,"method":"get_prop","params":["power"]}\r\n`.
pub fn request(id: u64, method: &str, params: &[Json]) -> String {
    let mut line = serde_json::json!({"id": id, "method": method, "params": params}).to_string();
    line.push_str("\r\n");
    line
}

/// One line the bulb sent on the control connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The result of request `id` (`["ok"]`, or the values `get_prop` asked for).
    Result {
        /// The request's id.
        id: u64,
        /// Its result.
        result: Vec<Json>,
    },
    /// The bulb refused request `id` (`None` when it could not read the request at all).
    Error {
        /// The request's id, when the bulb gives one.
        id: Option<u64>,
        /// Its code (`-1` for most).
        code: i64,
        /// Its words: `unsupported method`, `client quota exceeded`.
        message: String,
    },
    /// Properties that changed (`props` notification), values as text.
    Props(BTreeMap<String, String>),
    /// A notification of another kind.
    Other(String),
}

/// Reads one line of the control connection (without its line ending).
pub fn parse_line(line: &[u8]) -> Result<Incoming, WireError> {
    let json: Json = serde_json::from_slice(line).map_err(|e| WireError::NotJson(e.to_string()))?;
    let short = || {
        let text = json.to_string();
        if text.len() > 120 { format!("{}…", text.chars().take(120).collect::<String>()) } else { text }
    };
    let Some(object) = json.as_object() else { return Err(WireError::Unexpected(short())) };
    let id = object.get("id").and_then(Json::as_u64);
    if let Some(error) = object.get("error") {
        let code = error.get("code").and_then(Json::as_i64).unwrap_or(0);
        let message = match error.get("message") {
            Some(Json::String(m)) => m.clone(),
            Some(other) => other.to_string(),
            None => error.to_string(),
        };
        return Ok(Incoming::Error { id, code, message });
    }
    if let Some(result) = object.get("result") {
        let Some(id) = id else { return Err(WireError::Unexpected(short())) };
        let result = match result {
            Json::Array(list) => list.clone(),
            other => vec![other.clone()],
        };
        return Ok(Incoming::Result { id, result });
    }
    match object.get("method").and_then(Json::as_str) {
        Some("props") => {
            let Some(params) = object.get("params").and_then(Json::as_object) else {
                return Err(WireError::Unexpected(short()));
            };
            Ok(Incoming::Props(params.iter().filter_map(|(k, v)| Some((k.clone(), text(v)?))).collect()))
        }
        Some(method) => Ok(Incoming::Other(method.to_owned())),
        None => Err(WireError::Unexpected(short())),
    }
}

/// A property value as text: `"10"` and `10` are both `10`; other JSON is left out.
pub fn text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_location_with_a_character_across_the_schemes_end_is_refused_not_a_panic() {
        // Found by fuzzing: the scheme was cut at byte 11, inside a two-byte character.
        assert_eq!(parse_location("yeelight:/\u{070C}1.2.3.4"), None);
        let datagram = SPEC_ANSWER.replace("yeelight://192.168.1.239:55443", "yeelight:/\u{070C}");
        assert!(parse_datagram(datagram.as_bytes()).is_err());
        assert_eq!(parse_location("YEELIGHT://10.0.0.2"), Some("10.0.0.2:55443".parse().unwrap()));
    }

    /// The answer printed in the specification (section 3.1), lines as a bulb sends them.
    const SPEC_ANSWER: &str = "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nDate: \r\nExt: \r\n\
        Location: yeelight://192.168.1.239:55443\r\nServer: POSIX UPnP/1.0 YGLC/1\r\n\
        id: 0x000000000015243f\r\nmodel: color\r\nfw_ver: 18\r\n\
        support: get_prop set_default set_power toggle set_bright start_cf stop_cf set_scene cron_add cron_get cron_del set_ct_abx set_rgb\r\n\
        power: on\r\nbright: 100\r\ncolor_mode: 2\r\nct: 4000\r\nrgb: 16711680\r\nhue: 100\r\nsat: 35\r\nname: my_bulb\r\n";

    /// The advertisement printed in the specification (section 3.2).
    const SPEC_ADVERTISEMENT: &str = "NOTIFY * HTTP/1.1\r\nHost: 239.255.255.250:1982\r\n\
        Cache-Control: max-age=3600\r\nLocation: yeelight://192.168.1.239:55443\r\nNTS: ssdp:alive\r\n\
        Server: POSIX, UPnP/1.0 YGLC/1\r\nid: 0x000000000015243f\r\nmodel: color\r\nfw_ver: 18\r\n\
        support: get_prop set_default set_power toggle set_bright start_cf stop_cf set_scene cron_add cron_get cron_del set_ct_abx set_rgb\r\n\
        power: on\r\nbright: 100\r\ncolor_mode: 2\r\nct: 4000\r\nrgb: 16711680\r\nhue: 100\r\nsat: 35\r\nname: my_bulb\r\n";

    #[test]
    fn the_specifications_answer_and_advertisement_are_read() {
        for (datagram, advertised) in [(SPEC_ANSWER, false), (SPEC_ADVERTISEMENT, true)] {
            let bulb = parse_datagram(datagram.as_bytes()).unwrap().unwrap();
            assert_eq!(bulb.key, "000000000015243f");
            assert_eq!(bulb.address, "192.168.1.239:55443".parse().unwrap());
            assert_eq!(bulb.advertised, advertised);
            assert_eq!(bulb.header("model"), Some("color"));
            assert_eq!(bulb.header("fw_ver"), Some("18"));
            assert_eq!(bulb.header("name"), Some("my_bulb"));
            assert_eq!(bulb.header("ct"), Some("4000"));
            assert_eq!(bulb.header("date"), None, "an empty header is none");
            assert!(bulb.header("support").unwrap().split(' ').any(|m| m == "set_ct_abx"));
            assert_eq!(bulb.headers["location"], "yeelight://192.168.1.239:55443", "names are lowercase");
        }
    }

    #[test]
    fn searches_are_skipped_and_other_datagrams_refused() {
        assert_eq!(parse_datagram(SEARCH.as_bytes()), Ok(None));
        assert_eq!(
            parse_datagram(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"),
            Ok(None),
            "another app's search is no bulb"
        );
        assert!(matches!(parse_datagram(b"hello"), Err(WireError::UnknownStart(s)) if s == "hello"));
        assert_eq!(parse_datagram(&[0xff, 0xfe]), Err(WireError::NotText));
        assert_eq!(
            parse_datagram(b"HTTP/1.1 200 OK\r\nLocation: yeelight://10.0.0.2:55443\r\n"),
            Err(WireError::NoId(None))
        );
        assert_eq!(
            parse_datagram(b"HTTP/1.1 200 OK\r\nid: 0x0\r\nLocation: yeelight://10.0.0.2:55443\r\n"),
            Err(WireError::NoId(Some("0x0".into())))
        );
        assert_eq!(
            parse_datagram(b"HTTP/1.1 200 OK\r\nid: 0x1\r\nLocation: http://10.0.0.2/\r\n"),
            Err(WireError::NoLocation(Some("http://10.0.0.2/".into())))
        );
        // Bare line feeds and a Location without a port are read as well.
        let bulb = parse_datagram(b"HTTP/1.1 200 OK\nID: 0X15243F\nLOCATION: Yeelight://10.0.0.2\n").unwrap().unwrap();
        assert_eq!((bulb.key.as_str(), bulb.address), ("000000000015243f", "10.0.0.2:55443".parse().unwrap()));
    }

    #[test]
    fn ids_are_sixteen_lowercase_hex_digits() {
        assert_eq!(normalize_id("0x000000000015243f").as_deref(), Some("000000000015243f"));
        assert_eq!(normalize_id(" 0X0000000002EB9F61 ").as_deref(), Some("0000000002eb9f61"));
        assert_eq!(normalize_id("15243f").as_deref(), Some("000000000015243f"));
        for bad in ["", "0x", "0x0000000000000000", "0xzz", "0x1000000000000000f"] {
            assert_eq!(normalize_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_are_one_json_line_each() {
        assert_eq!(
            request(1, "set_power", &[json!("on"), json!("smooth"), json!(500)]),
            "{\"id\":1,\"method\":\"set_power\",\"params\":[\"on\",\"smooth\",500]}\r\n"
        );
        assert_eq!(
            request(7, "get_prop", &[json!("power"), json!("bright")]),
            "{\"id\":7,\"method\":\"get_prop\",\"params\":[\"power\",\"bright\"]}\r\n"
        );
    }

    #[test]
    fn results_errors_and_notifications_are_read_as_the_specification_writes_them() {
        assert_eq!(
            parse_line(br#"{"id":1, "result":["ok"]}"#),
            Ok(Incoming::Result { id: 1, result: vec![json!("ok")] })
        );
        assert_eq!(
            parse_line(br#"{"id":1, "result":["on", "", "100"]}"#),
            Ok(Incoming::Result { id: 1, result: vec![json!("on"), json!(""), json!("100")] })
        );
        assert_eq!(
            parse_line(br#"{"id":2, "error":{"code":-1, "message":"unsupported method"}}"#),
            Ok(Incoming::Error { id: Some(2), code: -1, message: "unsupported method".into() })
        );
        assert_eq!(
            parse_line(br#"{"id":9,"error":{"code":-1,"message":"client quota exceeded"}}"#),
            Ok(Incoming::Error { id: Some(9), code: -1, message: "client quota exceeded".into() })
        );
        let props = |pairs: &[(&str, &str)]| {
            Ok(Incoming::Props(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()))
        };
        assert_eq!(
            parse_line(br#"{"method":"props","params":{"power":"on", "bright":"10"}}"#),
            props(&[("power", "on"), ("bright", "10")])
        );
        // Firmwares also write numbers, and properties the adapter does not read.
        assert_eq!(
            parse_line(br#"{"method":"props","params":{"ct":6500,"color_mode":2,"flowing":0,"x":[1]}}"#),
            props(&[("color_mode", "2"), ("ct", "6500"), ("flowing", "0")])
        );
        assert_eq!(parse_line(br#"{"method":"hello","params":{}}"#), Ok(Incoming::Other("hello".into())));
        for bad in [&b"{\"id\":1,"[..], b"[1,2]", b"{\"result\":[\"ok\"]}", b"{\"method\":\"props\"}", b"{}"] {
            assert!(parse_line(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
