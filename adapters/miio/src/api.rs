//! The JSON-RPC carried inside miIO packets, and the MIoT methods on it. Pure, no I/O.
//!
//! Requests are `{"id": <n>, "method": "...", "params": ...}`; answers are `{"id": <n>,
//! "result": ...}` or `{"id": <n>, "error": {"code": <n>, "message": "..."}}`. Some devices add
//! NUL bytes after the JSON; they are ignored.
//!
//! - `miIO.info`, no params: `{"model": "zhimi.airpurifier.mb3", "fw_ver": "2.1.7", "mac": ..., ...}`.
//! - `get_properties`, params `[{"did": "<did>", "siid": 2, "piid": 2}, ...]`: result
//!   `[{"did", "siid", "piid", "code": 0, "value": true}, ...]`.
//! - `set_properties`, params `[{"did", "siid", "piid", "value"}, ...]`: result
//!   `[{"did", "siid", "piid", "code": 0}, ...]`.
//! - `action`, params `{"did", "siid", "aiid", "in": [...]}`: result `{"code": 0, "out": [...]}`.
//!
//! Codes of MIoT operations (Xiaomi's MCU SDK, `operation_code.h`): 0 done, 1 accepted and not
//! done yet, -4001 not readable, -4002 not writable, -4003 no such property, action or event,
//! -4004 internal error, -4005 bad value, -4006 bad action input, -4007 bad did.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

/// How many properties one `get_properties` asks for at most (devices refuse long lists).
pub const MAX_PROPERTIES_PER_REQUEST: usize = 15;

/// Why an answer cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Not JSON, or not the shape of an answer.
    #[error("not a miIO answer ({0})")]
    Malformed(String),
}

/// A request, as sent (and as the simulator reads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Matches the answer to the request.
    pub id: u64,
    /// The method.
    pub method: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Json,
}

impl Request {
    /// The request as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a request (trailing NUL bytes ignored).
    pub fn from_bytes(raw: &[u8]) -> Result<Request, ApiError> {
        serde_json::from_slice(trim_nul(raw)).map_err(|e| ApiError::Malformed(e.to_string()))
    }
}

/// `miIO.info`.
pub fn info(id: u64) -> Request {
    Request { id, method: "miIO.info".into(), params: json!([]) }
}

/// `get_properties` of `(siid, piid)` pairs.
pub fn get_properties(id: u64, did: &str, points: &[(u32, u32)]) -> Request {
    let params: Vec<Json> = points.iter().map(|(siid, piid)| json!({"did": did, "siid": siid, "piid": piid})).collect();
    Request { id, method: "get_properties".into(), params: Json::Array(params) }
}

/// `set_properties` of `(siid, piid, value)`.
pub fn set_properties(id: u64, did: &str, values: &[(u32, u32, Json)]) -> Request {
    let params: Vec<Json> = values
        .iter()
        .map(|(siid, piid, value)| json!({"did": did, "siid": siid, "piid": piid, "value": value}))
        .collect();
    Request { id, method: "set_properties".into(), params: Json::Array(params) }
}

/// `action` `aiid` of service `siid`, with inputs `inputs`.
pub fn action(id: u64, did: &str, siid: u32, aiid: u32, inputs: Vec<Json>) -> Request {
    Request { id, method: "action".into(), params: json!({"did": did, "siid": siid, "aiid": aiid, "in": inputs}) }
}

/// An error a device answered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// Its code.
    pub code: i64,
    /// Its words.
    #[serde(default)]
    pub message: String,
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The request it answers.
    pub id: u64,
    /// The result, or the device's error.
    pub outcome: Result<Json, RpcError>,
}

/// Reads an answer (trailing NUL bytes ignored).
pub fn parse_reply(raw: &[u8]) -> Result<Reply, ApiError> {
    let v: Json = serde_json::from_slice(trim_nul(raw)).map_err(|e| ApiError::Malformed(e.to_string()))?;
    let id = v.get("id").and_then(Json::as_u64).ok_or_else(|| ApiError::Malformed("no numeric `id`".into()))?;
    if let Some(e) = v.get("error") {
        let e: RpcError = serde_json::from_value(e.clone())
            .map_err(|e| ApiError::Malformed(format!("`error` is not {{code, message}}: {e}")))?;
        return Ok(Reply { id, outcome: Err(e) });
    }
    match v.get("result") {
        Some(r) => Ok(Reply { id, outcome: Ok(r.clone()) }),
        None => Err(ApiError::Malformed("neither `result` nor `error`".into())),
    }
}

/// A result as the device writes it, for the simulator.
pub fn result_bytes(id: u64, result: &Json) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "result": result})).unwrap_or_default()
}

/// An error as the device writes it, for the simulator.
pub fn error_bytes(id: u64, code: i64, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "error": {"code": code, "message": message}})).unwrap_or_default()
}

fn trim_nul(raw: &[u8]) -> &[u8] {
    let end = raw.iter().rposition(|b| *b != 0 && !b.is_ascii_whitespace()).map_or(0, |p| p + 1);
    &raw[..end]
}

/// What `miIO.info` says (the fields Hearth uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Info {
    /// The model (`zhimi.airpurifier.mb3`).
    #[serde(default)]
    pub model: Option<String>,
    /// The firmware version.
    #[serde(default)]
    pub fw_ver: Option<String>,
    /// The hardware (`esp32`, `MW300`).
    #[serde(default)]
    pub hw_ver: Option<String>,
    /// The MAC address.
    #[serde(default)]
    pub mac: Option<String>,
}

impl Info {
    /// Reads the result of `miIO.info`.
    pub fn from_result(result: &Json) -> Result<Info, ApiError> {
        serde_json::from_value(result.clone()).map_err(|e| ApiError::Malformed(format!("miIO.info: {e}")))
    }
}

/// One property in the result of `get_properties` or `set_properties`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropertyResult {
    /// The service.
    pub siid: u32,
    /// The property.
    pub piid: u32,
    /// 0 when it worked.
    #[serde(default)]
    pub code: i64,
    /// The value (`get_properties`, when the code is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Json>,
}

/// Reads the result of `get_properties` or `set_properties`.
pub fn property_results(result: &Json) -> Result<Vec<PropertyResult>, ApiError> {
    serde_json::from_value(result.clone())
        .map_err(|e| ApiError::Malformed(format!("not a list of {{siid, piid, code, value}}: {e}")))
}

/// The code of an `action` result (`{"code": 0, "out": []}`); a result without one counts as done.
pub fn action_code(result: &Json) -> i64 {
    result.get("code").and_then(Json::as_i64).unwrap_or(0)
}

/// What a MIoT operation code means, for the log.
pub fn code_meaning(code: i64) -> &'static str {
    match code {
        0 => "done",
        1 => "accepted, not done yet",
        -4001 => "the property cannot be read",
        -4002 => "the property cannot be written",
        -4003 => "no such property, action or event",
        -4004 => "an internal error of the device",
        -4005 => "the value is not one the property takes",
        -4006 => "the action's inputs are wrong",
        -4007 => "the did is wrong",
        _ => "an error the device did not explain",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn requests_are_written_as_devices_read_them() {
        let r = get_properties(5, "123", &[(2, 2), (3, 6)]);
        assert_eq!(
            serde_json::from_slice::<Json>(&r.to_bytes()).unwrap(),
            json!({"id": 5, "method": "get_properties", "params": [
                {"did": "123", "siid": 2, "piid": 2}, {"did": "123", "siid": 3, "piid": 6}]})
        );
        let r = set_properties(6, "123", &[(2, 5, json!(1))]);
        assert_eq!(r.params, json!([{"did": "123", "siid": 2, "piid": 5, "value": 1}]));
        let r = action(7, "123", 4, 1, vec![]);
        assert_eq!(
            (r.method.as_str(), r.params.clone()),
            ("action", json!({"did": "123", "siid": 4, "aiid": 1, "in": []}))
        );
        assert_eq!(info(1).to_bytes(), br#"{"id":1,"method":"miIO.info","params":[]}"#);
        assert_eq!(Request::from_bytes(&info(9).to_bytes()).unwrap(), info(9));
    }

    #[test]
    fn answers_are_read_with_their_results_or_errors() {
        // As a Mi Air Purifier 3H answers (python-miio's test fixtures have the same shape).
        let raw = br#"{"id":12,"result":[{"did":"123","siid":2,"piid":2,"code":0,"value":true},{"did":"123","siid":9,"piid":9,"code":-4003}]}"#;
        let reply = parse_reply(raw).unwrap();
        assert_eq!(reply.id, 12);
        let props = property_results(&reply.outcome.unwrap()).unwrap();
        assert_eq!(
            props,
            [
                PropertyResult { siid: 2, piid: 2, code: 0, value: Some(json!(true)) },
                PropertyResult { siid: 9, piid: 9, code: -4003, value: None },
            ]
        );
        let e = parse_reply(br#"{"id":3,"error":{"code":-32601,"message":"Method not found."}}"#).unwrap();
        assert_eq!(e.outcome, Err(RpcError { code: -32601, message: "Method not found.".into() }));
        // Trailing NUL bytes, as some firmwares send.
        let info_raw = b"{\"id\":1,\"result\":{\"model\":\"zhimi.airpurifier.mb3\",\"fw_ver\":\"2.1.7\",\"hw_ver\":\"esp32\"}}\0\0";
        let r = parse_reply(info_raw).unwrap();
        let i = Info::from_result(&r.outcome.unwrap()).unwrap();
        assert_eq!((i.model.as_deref(), i.fw_ver.as_deref()), (Some("zhimi.airpurifier.mb3"), Some("2.1.7")));
        assert_eq!(action_code(&json!({"code": 0, "out": []})), 0);
        assert_eq!(action_code(&json!({"code": -4006})), -4006);
    }

    #[test]
    fn malformed_answers_are_errors() {
        for raw in [&b""[..], b"\0\0", b"not json", br#"{"result": 1}"#, br#"{"id": 1}"#, br#"{"id": 1, "error": 5}"#] {
            assert!(parse_reply(raw).is_err(), "{}", String::from_utf8_lossy(raw));
        }
        assert!(property_results(&json!({"siid": 1})).is_err());
        assert!(property_results(&json!([{"siid": "x", "piid": 1}])).is_err());
        assert_eq!(code_meaning(-4005), "the value is not one the property takes");
    }
}
