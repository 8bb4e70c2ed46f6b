//! Round trips of zigbee2mqtt's wire types through payloads in its real format (1.x and 2.x).
#![recursion_limit = "256"]

use hearth_zigbee2mqtt::api::{
    Availability, BridgeDevice, BridgeEvent, BridgeGroup, BridgeInfo, BridgeRequest, BridgeResponse, OnlineState,
    ResponseStatus,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Numbers as JSON means them (zigbee2mqtt is JavaScript: 254 and 254.0 are one number).
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

/// Parses `v` as `T`, writes it back, and checks nothing was lost or changed.
fn round_trip<T: DeserializeOwned + Serialize>(v: Value) -> T {
    let parsed: T = serde_json::from_value(v.clone()).expect("parses");
    let back = serde_json::to_value(&parsed).expect("serialises");
    assert_eq!(normalise(back), normalise(v), "round trip changed the payload");
    parsed
}

#[test]
fn bridge_state_and_availability_in_both_shapes() {
    let a: Availability = round_trip(json!({"state": "online"}));
    assert_eq!(a.state(), OnlineState::Online);
    assert_eq!(Availability::parse(b"offline"), Some(OnlineState::Offline), "1.x plain payload");
    assert_eq!(Availability::parse(br#"{"state":"offline"}"#), Some(OnlineState::Offline));
    assert_eq!(Availability::parse(b"maybe"), None);
}

#[test]
fn bridge_info_2x_and_1x() {
    let info: BridgeInfo = round_trip(json!({
        "version": "2.1.3", "commit": "a1b2c3d",
        "coordinator": {"ieee_address": "0x00124b0024c1a2b3", "type": "zStack3x0", "meta": {"maintrel": 1, "majorrel": 2, "minorrel": 7, "product": 1, "revision": 20240710, "transportrev": 2}},
        "network": {"channel": 11, "pan_id": 6754, "extended_pan_id": "0xdddddddddddddddd"},
        "log_level": "info", "permit_join": true, "permit_join_end": 1_795_900_846_123_i64, "restart_required": false,
        "config": {"homeassistant": {"enabled": false}, "mqtt": {"base_topic": "zigbee2mqtt"}},
        "config_schema": {"type": "object"}
    }));
    assert!(info.permit_join);
    assert_eq!(info.permit_join_end, Some(1_795_900_846_123));
    let old: BridgeInfo = round_trip(json!({
        "version": "1.35.1", "commit": "f00ba47",
        "coordinator": {"type": "zStack3x0", "meta": {"revision": 20230507}},
        "network": {"channel": 15, "pan_id": 6754, "extended_pan_id": [221, 221, 221, 221, 221, 221, 221, 221]},
        "log_level": "info", "permit_join": true, "permit_join_timeout": 120, "restart_required": false,
        "config": {}, "config_schema": {}
    }));
    assert_eq!(old.permit_join_timeout, Some(120));
}

#[test]
fn bridge_devices_entries_2x_and_1x() {
    let bulb: BridgeDevice = round_trip(json!({
        "ieee_address": "0x0017880104e45517", "type": "Router", "network_address": 29159, "supported": true,
        "friendly_name": "Living room/Ceiling", "disabled": false, "description": "Over the sofa",
        "manufacturer": "Signify Netherlands B.V.", "model_id": "LCT015", "power_source": "Mains (single phase)",
        "software_build_id": "1.50.2_r30933", "date_code": "20191218", "interview_state": "SUCCESSFUL",
        "definition": {
            "model": "9290012573A", "vendor": "Philips", "description": "Hue white and color ambiance E26/E27/E14",
            "supports_ota": true, "source": "native", "options": [],
            "exposes": [
                {"type": "light", "features": [
                    {"type": "binary", "name": "state", "label": "State", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE", "description": "On/off state of this light"},
                    {"type": "numeric", "name": "brightness", "label": "Brightness", "property": "brightness", "access": 7, "value_min": 0, "value_max": 254, "description": "Brightness of this light"},
                    {"type": "numeric", "name": "color_temp", "label": "Color temp", "property": "color_temp", "access": 7, "unit": "mired", "value_min": 150, "value_max": 500,
                     "presets": [{"name": "coolest", "value": 150, "description": "Coolest temperature supported"}]},
                    {"type": "composite", "name": "color_xy", "label": "Color (X/Y)", "property": "color", "access": 7, "features": [
                        {"type": "numeric", "name": "x", "label": "X", "property": "x", "access": 7},
                        {"type": "numeric", "name": "y", "label": "Y", "property": "y", "access": 7}]}
                ]},
                {"type": "enum", "name": "power_on_behavior", "label": "Power-on behavior", "property": "power_on_behavior", "access": 7, "values": ["off", "on", "toggle", "previous"], "category": "config"},
                {"type": "numeric", "name": "linkquality", "label": "Linkquality", "property": "linkquality", "access": 1, "unit": "lqi", "value_min": 0, "value_max": 255, "category": "diagnostic"}
            ]
        },
        "endpoints": {"11": {"bindings": [], "configured_reportings": [], "clusters": {"input": ["genOnOff"], "output": []}, "scenes": []}}
    }));
    assert!(bulb.interviewed());
    let old: BridgeDevice = round_trip(json!({
        "ieee_address": "0x00158d0001a2b3c4", "type": "EndDevice", "network_address": 4242, "supported": true,
        "friendly_name": "Bathroom sensor", "disabled": false, "manufacturer": "LUMI", "model_id": "lumi.weather",
        "power_source": "Battery", "interviewing": false, "interview_completed": true,
        "definition": {"model": "WSDCGQ11LM", "vendor": "Xiaomi", "description": "Aqara temperature, humidity and pressure sensor",
            "supports_ota": false, "options": [], "exposes": [
                {"type": "numeric", "name": "temperature", "property": "temperature", "access": 1, "unit": "°C", "description": "Measured temperature value"}]}
    }));
    assert!(old.interviewed());
    let interviewing: BridgeDevice = serde_json::from_value(json!({
        "ieee_address": "0x01", "type": "EndDevice", "friendly_name": "0x01", "supported": false,
        "interviewing": true, "interview_completed": false, "definition": null}))
    .expect("parses");
    assert!(!interviewing.interviewed());
}

#[test]
fn groups_events_requests_and_responses() {
    let groups: Vec<BridgeGroup> = round_trip(json!([
        {"id": 1, "friendly_name": "Downstairs", "description": "All lights downstairs",
         "scenes": [{"id": 1, "name": "Evening"}],
         "members": [{"ieee_address": "0x0017880104e45517", "endpoint": 11}]}
    ]));
    assert_eq!(groups[0].members.len(), 1);
    let ev: BridgeEvent = round_trip(json!({"type": "device_interview",
        "data": {"friendly_name": "0x0017880104e45517", "ieee_address": "0x0017880104e45517", "status": "successful",
                 "supported": true, "definition": {"model": "9290012573A", "vendor": "Philips"}}}));
    assert_eq!(ev.ieee_address(), Some("0x0017880104e45517"));
    let _: BridgeEvent =
        round_trip(json!({"type": "device_leave", "data": {"ieee_address": "0x01", "friendly_name": "Old"}}));
    let req: BridgeRequest = round_trip(json!({"time": 254, "transaction": "hearth-1"}));
    assert_eq!(req.fields["time"], 254);
    let ok: BridgeResponse = round_trip(json!({"data": {"time": 254}, "status": "ok", "transaction": "hearth-1"}));
    assert_eq!(ok.status, ResponseStatus::Ok);
    let err: BridgeResponse = round_trip(json!({"data": {}, "status": "error",
        "error": "Device 'Nope' does not exist", "transaction": "hearth-2"}));
    assert_eq!(err.error.as_deref(), Some("Device 'Nope' does not exist"));
}
