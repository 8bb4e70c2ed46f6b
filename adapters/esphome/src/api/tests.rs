//! Tests of the wire layer: framing, messages, the Noise handshake against a `snow` responder,
//! the mapping, and a small fuzzer.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use hearth_sdk::{Color, CommandRequest, Refresh, Value};

use super::frame::{MAX_NOISE_FRAME, decode_noise_plaintext};
use super::messages::*;
use super::noise::{NOISE_PATTERN, NOISE_PROLOGUE, parse_server_hello};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- framing

#[test]
fn plaintext_frames_round_trip_byte_by_byte_and_in_bulk() {
    let frames = vec![
        Frame { msg_type: 1, payload: vec![] },
        Frame { msg_type: 7, payload: vec![0x42; 3] },
        Frame { msg_type: 200, payload: vec![0x17; 300] },
        Frame { msg_type: 25, payload: (0..=255).collect() },
    ];
    let mut bytes = Vec::new();
    for f in &frames {
        bytes.extend(encode_plaintext(f.msg_type, &f.payload));
    }
    // One byte at a time: every partial frame is kept.
    let mut d = PlaintextDecoder::new();
    let mut got = Vec::new();
    for b in &bytes {
        d.push(std::slice::from_ref(b));
        while let Some(f) = d.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert_eq!(d.pending(), 0);
    // All at once.
    let mut d = PlaintextDecoder::new();
    d.push(&bytes);
    let mut got = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        got.push(f);
    }
    assert_eq!(got, frames);
}

#[test]
fn plaintext_frame_layout_is_preamble_length_type_payload() {
    // Multi-byte varints: 300 = ac 02, type 200 = c8 01.
    let f = encode_plaintext(200, &[0u8; 300]);
    assert_eq!(&f[..5], &[0x00, 0xac, 0x02, 0xc8, 0x01]);
    assert_eq!(f.len(), 305);
    // aioesphomeapi's plaintext helper test: `00 00 01` is an empty message of type 1.
    let mut d = PlaintextDecoder::new();
    d.push(&hex("000001"));
    assert_eq!(d.next_frame().unwrap(), Some(Frame { msg_type: 1, payload: vec![] }));
}

#[test]
fn plaintext_decoder_names_an_encrypted_device_and_bad_preambles() {
    let mut d = PlaintextDecoder::new();
    d.push(&hex("01000d01"));
    let e = d.next_frame().unwrap_err();
    assert_eq!(e, FrameError::RequiresEncryption);
    assert!(e.to_string().contains("requires encryption"), "{e}");
    let mut d = PlaintextDecoder::new();
    d.push(&[0x7f]);
    assert_eq!(d.next_frame().unwrap_err(), FrameError::BadPreamble(0x7f));
    let mut d = PlaintextDecoder::new();
    d.push(&hex("00ffffffff0f01"));
    assert!(matches!(d.next_frame().unwrap_err(), FrameError::TooLarge(_)));
}

#[test]
fn noise_frames_round_trip_and_limit_their_length() {
    let bodies = [vec![], vec![1, 2, 3], vec![9; 1000]];
    let mut bytes = Vec::new();
    for b in &bodies {
        bytes.extend(encode_noise_frame(b).unwrap());
    }
    let mut d = NoiseFrameDecoder::new();
    let mut got = Vec::new();
    for chunk in bytes.chunks(7) {
        d.push(chunk);
        while let Some(b) = d.next_body().unwrap() {
            got.push(b);
        }
    }
    assert_eq!(got, bodies);
    assert_eq!(encode_noise_frame(&[]).unwrap(), hex("010000"));
    assert!(encode_noise_frame(&vec![0; MAX_NOISE_FRAME + 1]).is_err());
    let mut d = NoiseFrameDecoder::new();
    d.push(&hex("000001"));
    assert_eq!(d.next_body().unwrap_err(), FrameError::RequiresPlaintext);
    // The encrypted plaintext layout: type and length as 2 bytes each, big-endian.
    let p = frame::encode_noise_plaintext(0x0102, &[7, 8]).unwrap();
    assert_eq!(p, hex("0102 0002 0708"));
    assert_eq!(decode_noise_plaintext(&p), Some(Frame { msg_type: 0x0102, payload: vec![7, 8] }));
    assert_eq!(decode_noise_plaintext(&hex("0102 0003 0708")), None);
}

// ---------------------------------------------------------------- messages

#[test]
fn hello_request_bytes_are_the_proto3_encoding() {
    // Worked out by hand from api.proto: field 1 string (0a len ...), field 2 varint (10 01),
    // field 3 varint (18 0a), in a frame 00 <len 0x13> <type 01>.
    let bytes = plaintext_frame(&hello("aioesphomeapi"));
    assert_eq!(to_hex(&bytes), format!("001301 0a0d{} 1001 180a", to_hex(b"aioesphomeapi")).replace(' ', ""));
}

#[test]
fn device_info_response_decodes_from_wire_bytes() {
    // A DeviceInfoResponse as ESPHome writes it (field order of the generated encoder), with an
    // unknown field 99 (varint) and 100 (fixed64) that must be skipped.
    let mut p = Vec::new();
    let s = |p: &mut Vec<u8>, tag: u8, v: &str| {
        p.push(tag);
        p.push(v.len() as u8);
        p.extend_from_slice(v.as_bytes());
    };
    s(&mut p, 0x12, "kitchen-node");
    s(&mut p, 0x1a, "AC:BC:32:89:0E:A9");
    s(&mut p, 0x22, "2025.5.0");
    s(&mut p, 0x2a, "May 20 2025, 10:00:00");
    s(&mut p, 0x32, "esp32dev");
    p.extend(hex("98 06 2a")); // field 99 varint 42
    p.extend(hex("a1 06 0102030405060708")); // field 100 fixed64
    s(&mut p, 0x62, "Espressif");
    s(&mut p, 0x6a, "Kitchen node");
    p.extend(hex("820108")); // field 16, len 8
    p.extend_from_slice(b"Kitchen!");
    let m = Message::decode(10, &p).unwrap();
    let Message::DeviceInfoResponse(info) = m else { panic!("{m:?}") };
    assert_eq!(info.name, "kitchen-node");
    assert_eq!(info.mac_address, "AC:BC:32:89:0E:A9");
    assert_eq!(info.esphome_version, "2025.5.0");
    assert_eq!(info.model, "esp32dev");
    assert_eq!(info.manufacturer, "Espressif");
    assert_eq!(info.friendly_name, "Kitchen node");
    assert_eq!(info.suggested_area, "Kitchen!");
    // Our encoding reads back the same.
    assert_eq!(DeviceInfoResponse::decode(&info.encode()).unwrap(), info);
}

#[test]
fn every_message_round_trips() {
    let msgs: Vec<Message> = vec![
        hello("hearth"),
        HelloResponse {
            api_version_major: 1,
            api_version_minor: 12,
            server_info: "esphome v2025.5.0".into(),
            name: "node".into(),
        }
        .into(),
        ConnectRequest { password: "pw".into() }.into(),
        ConnectResponse { invalid_password: true }.into(),
        DisconnectRequest::default().into(),
        DisconnectResponse::default().into(),
        PingRequest::default().into(),
        PingResponse::default().into(),
        DeviceInfoRequest::default().into(),
        ListEntitiesRequest::default().into(),
        ListEntitiesDoneResponse::default().into(),
        SubscribeStatesRequest::default().into(),
        FanStateResponse { key: 5, state: true, speed_level: -3, preset_mode: "eco".into(), ..Default::default() }
            .into(),
        LightCommandRequest {
            key: u32::MAX,
            has_rgb: true,
            red: 0.5,
            effect: "Rainbow".into(),
            has_effect: true,
            transition_length: 1500,
            has_transition_length: true,
            ..Default::default()
        }
        .into(),
        ListEntitiesLightResponse {
            supported_color_modes: vec![3, 35, 11],
            effects: vec!["None".into(), "Rainbow".into()],
            min_mireds: 153.0,
            max_mireds: 500.0,
            ..Default::default()
        }
        .into(),
        ClimateCommandRequest {
            key: 9,
            has_mode: true,
            mode: 3,
            has_target_temperature: true,
            target_temperature: 21.5,
            ..Default::default()
        }
        .into(),
        ButtonCommandRequest { key: 1, device_id: 0 }.into(),
        GetTimeRequest::default().into(),
        GetTimeResponse { epoch_seconds: 1_750_484_200 }.into(),
    ];
    for m in msgs {
        let back = Message::decode(m.msg_type(), &m.encode()).unwrap();
        assert_eq!(back, m, "{}", m.name());
    }
    // Unknown types are kept as they are.
    assert_eq!(Message::decode(9999, &[1, 2]).unwrap(), Message::Unknown { msg_type: 9999, payload: vec![1, 2] });
}

#[test]
fn repeated_enums_read_packed_and_unpacked() {
    // supported_color_modes (field 12): packed `62 02 03 23`, or one per field `60 03 60 23`.
    let packed = ListEntitiesLightResponse::decode(&hex("6202 0323")).unwrap();
    let unpacked = ListEntitiesLightResponse::decode(&hex("6003 6023")).unwrap();
    assert_eq!(packed.supported_color_modes, vec![3, 35]);
    assert_eq!(unpacked.supported_color_modes, vec![3, 35]);
}

#[test]
fn malformed_payloads_are_errors() {
    for (bytes, what) in [
        ("0a05616263", "string runs past the end"),
        ("08", "varint missing"),
        ("ffffffffffffffffffff01", "varint too long"),
        ("0b", "group wire type"),
        ("00", "field number 0"),
        ("0d0102", "fixed32 truncated"),
        ("0a01ff", "invalid UTF-8 name"),
        ("0801", "key as varint instead of fixed32"),
    ] {
        assert!(ListEntitiesSwitchResponse::decode(&hex(bytes)).is_err(), "{what}");
    }
    let e = SwitchStateResponse::decode(&hex("0801")).unwrap_err();
    assert_eq!(e.to_string(), "field 1 has wire type 0, expected 5");
}

// ---------------------------------------------------------------- noise

const CAPTURED_PSK: &str = "QRTIErOb/fcE9Ukd/5qA3RGYMn0Y+p06U58SCtOXvPc=";

fn responder(key: &NoiseKey) -> snow::HandshakeState {
    snow::Builder::new(NOISE_PATTERN.parse().unwrap())
        .prologue(NOISE_PROLOGUE)
        .unwrap()
        .psk(0, key.as_bytes())
        .unwrap()
        .build_responder()
        .unwrap()
}

/// The device's side: reads the client's hello and handshake, answers; `None` when the client's
/// key differs (then it answers as ESPHome does, with `01` and "Handshake MAC failure").
fn device_handshake(key: &NoiseKey, client_bytes: &[u8]) -> (Vec<u8>, Option<snow::TransportState>) {
    let mut d = NoiseFrameDecoder::new();
    d.push(client_bytes);
    assert_eq!(d.next_body().unwrap(), Some(vec![]), "the client hello is empty");
    let hs_body = d.next_body().unwrap().unwrap();
    assert_eq!(hs_body[0], 0x00, "the handshake frame starts with a zero byte");
    let mut out = encode_noise_frame(b"\x01kitchen-node\0acbc32890ea9\0").unwrap();
    let mut hs = responder(key);
    let mut buf = [0u8; 256];
    if hs.read_message(&hs_body[1..], &mut buf).is_err() {
        out.extend(encode_noise_frame(b"\x01Handshake MAC failure").unwrap());
        return (out, None);
    }
    let n = hs.write_message(&[], &mut buf).unwrap();
    let mut body = vec![0x00];
    body.extend_from_slice(&buf[..n]);
    out.extend(encode_noise_frame(&body).unwrap());
    (out, Some(hs.into_transport_mode().unwrap()))
}

#[test]
fn noise_handshake_and_transport_against_a_snow_device() {
    let key = NoiseKey::from_base64(CAPTURED_PSK).unwrap();
    let (mut client, first) = NoiseClient::start(&key).unwrap();
    assert_eq!(&first[..3], &hex("010000"), "hello first");
    assert_eq!(&first[3..6], &hex("010031"), "then a 49-byte handshake frame, as in the capture");
    let (answer, transport) = device_handshake(&key, &first);
    let mut device = transport.expect("same key");
    // Fed byte by byte, the client reports the hello, then ready.
    let mut events = Vec::new();
    for b in &answer {
        events.extend(client.receive(std::slice::from_ref(b)).unwrap());
    }
    assert_eq!(
        events,
        vec![
            NoiseEvent::ServerHello { name: "kitchen-node".into(), mac: Some("acbc32890ea9".into()) },
            NoiseEvent::Ready
        ]
    );
    assert!(client.is_ready());
    // Client → device.
    let ping = client.encrypt(PingRequest::TYPE, &[]).unwrap();
    let mut d = NoiseFrameDecoder::new();
    d.push(&ping);
    let body = d.next_body().unwrap().unwrap();
    let mut plain = [0u8; 64];
    let n = device.read_message(&body, &mut plain).unwrap();
    assert_eq!(decode_noise_plaintext(&plain[..n]), Some(Frame { msg_type: 7, payload: vec![] }));
    // Device → client, two frames in one read.
    let info = DeviceInfoResponse {
        name: "kitchen-node".into(),
        mac_address: "AC:BC:32:89:0E:A9".into(),
        ..Default::default()
    };
    let mut bytes = Vec::new();
    for (t, p) in [(10u16, info.encode()), (8, vec![])] {
        let plain = frame::encode_noise_plaintext(t, &p).unwrap();
        let mut buf = vec![0u8; plain.len() + 16];
        let n = device.write_message(&plain, &mut buf).unwrap();
        bytes.extend(encode_noise_frame(&buf[..n]).unwrap());
    }
    let events = client.receive(&bytes).unwrap();
    assert_eq!(events.len(), 2);
    let NoiseEvent::Frame(f) = &events[0] else { panic!("{events:?}") };
    assert_eq!(Message::decode(f.msg_type, &f.payload).unwrap(), Message::DeviceInfoResponse(info));
    assert_eq!(events[1], NoiseEvent::Frame(Frame { msg_type: 8, payload: vec![] }));
    // A tampered frame is an error, and the client is done.
    let mut bad = client_bound_frame(&mut device, 7);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(client.receive(&bad), Err(NoiseError::BadFrame(_))));
    assert_eq!(client.receive(&[]), Err(NoiseError::NotReady));
}

fn client_bound_frame(device: &mut snow::TransportState, t: u16) -> Vec<u8> {
    let plain = frame::encode_noise_plaintext(t, &[]).unwrap();
    let mut buf = vec![0u8; plain.len() + 16];
    let n = device.write_message(&plain, &mut buf).unwrap();
    encode_noise_frame(&buf[..n]).unwrap()
}

#[test]
fn a_wrong_key_is_named_as_such() {
    let device_key = NoiseKey::from_bytes([7; 32]);
    let client_key = NoiseKey::from_bytes([8; 32]);
    let (mut client, first) = NoiseClient::start(&client_key).unwrap();
    let (answer, transport) = device_handshake(&device_key, &first);
    assert!(transport.is_none());
    let err = client.receive(&answer).unwrap_err();
    assert_eq!(err, NoiseError::KeyMismatch);
    assert_eq!(err.to_string(), "the encryption key does not match the device's");
    assert!(!client.is_ready());
}

#[test]
fn captured_bytes_from_aioesphomeapi() {
    // aioesphomeapi's tests (test_noise_frame_helper_incorrect_key): what a device sent: its
    // hello (no MAC, older firmware), then the rejection of a client with another key.
    let key = NoiseKey::from_base64(CAPTURED_PSK).unwrap();
    let (mut client, _) = NoiseClient::start(&key).unwrap();
    let events = client.receive(&hex("01000d01736572766963657465737400")).unwrap();
    assert_eq!(events, vec![NoiseEvent::ServerHello { name: "servicetest".into(), mac: None }]);
    let err = client.receive(&hex("0100160148616e647368616b65204d4143206661696c757265")).unwrap_err();
    assert_eq!(err, NoiseError::KeyMismatch);
    // The client handshake frame of that capture has our layout: 01, length 49, 00, 48 bytes.
    let captured =
        hex("010031001ed7f7bb0b74085418258ed5928931bc36ade7cf06937fcff089044d4ab142643f1b2c9935bb77696f23d930836737a4");
    let mut d = NoiseFrameDecoder::new();
    d.push(&captured);
    let body = d.next_body().unwrap().unwrap();
    assert_eq!((body.len(), body[0]), (49, 0));
    // And a device with that key reads it: pattern, prologue and PSK position agree with what
    // aioesphomeapi sends.
    assert_eq!(responder(&key).read_message(&body[1..], &mut [0u8; 64]).unwrap(), 0);
    assert!(responder(&NoiseKey::from_bytes([0; 32])).read_message(&body[1..], &mut [0u8; 64]).is_err());
    // Another rejection reason is passed on.
    let (mut client, _) = NoiseClient::start(&key).unwrap();
    client.receive(&hex("01000d01736572766963657465737400")).unwrap();
    let reason = encode_noise_frame(b"\x01Bad handshake packet len").unwrap();
    assert_eq!(
        client.receive(&reason).unwrap_err().to_string(),
        "the device rejected the encryption handshake: Bad handshake packet len"
    );
}

#[test]
fn encryption_keys_parse_and_stay_secret() {
    let key = NoiseKey::from_base64(&format!("  {CAPTURED_PSK}\n")).unwrap();
    assert_eq!(key.as_bytes()[..4], [0x41, 0x14, 0xc8, 0x12]);
    assert_eq!(format!("{key:?}"), "NoiseKey(<redacted>)");
    assert_eq!(NoiseKey::from_base64("not base64!").unwrap_err(), KeyError::NotBase64);
    assert_eq!(NoiseKey::from_base64("AAAA").unwrap_err(), KeyError::WrongLength(3));
    assert_eq!(
        NoiseKey::from_base64("QRTIErOb").unwrap_err().to_string(),
        "the encryption key must be 32 bytes (44 base64 characters), not 6 bytes"
    );
    let (client, _) = NoiseClient::start(&key).unwrap();
    assert!(!format!("{client:?}").contains("QRTI"));
}

#[test]
fn server_hello_forms() {
    assert!(matches!(parse_server_hello(&[]), Err(NoiseError::BadServerHello(_))));
    assert_eq!(parse_server_hello(b"\x02x\0"), Err(NoiseError::UnsupportedProtocol(2)));
    assert!(matches!(parse_server_hello(b"\x01\0"), Err(NoiseError::BadServerHello(_))));
    assert_eq!(parse_server_hello(b"\x01node").unwrap(), NoiseEvent::ServerHello { name: "node".into(), mac: None });
}

// ---------------------------------------------------------------- mapping

fn device_info() -> DeviceInfoResponse {
    DeviceInfoResponse {
        name: "living-node".into(),
        friendly_name: "Living room node".into(),
        mac_address: "AC:BC:32:89:0E:A9".into(),
        esphome_version: "2025.5.0".into(),
        model: "esp32dev".into(),
        manufacturer: "Espressif".into(),
        suggested_area: "Living room".into(),
        ..Default::default()
    }
}

fn sensor(key: u32, id: &str, class: &str, unit: &str, decimals: i32) -> Message {
    ListEntitiesSensorResponse {
        key,
        object_id: id.into(),
        name: id.replace('_', " "),
        device_class: class.into(),
        unit_of_measurement: unit.into(),
        accuracy_decimals: decimals,
        ..Default::default()
    }
    .into()
}

fn binary(key: u32, id: &str, class: &str) -> Message {
    ListEntitiesBinarySensorResponse { key, object_id: id.into(), device_class: class.into(), ..Default::default() }
        .into()
}

fn entities() -> Vec<Message> {
    let mut v = vec![
        sensor(1, "temperature", "temperature", "°C", 1),
        sensor(2, "humidity", "humidity", "%", 0),
        sensor(3, "pressure", "pressure", "Pa", 0),
        sensor(4, "illuminance", "illuminance", "lx", 1),
        sensor(5, "power", "power", "W", 1),
        sensor(6, "energy", "energy", "Wh", 0),
        sensor(7, "voltage", "voltage", "V", 1),
        sensor(8, "current", "current", "mA", 0),
        sensor(9, "battery", "battery", "%", 0),
        sensor(10, "co2", "carbon_dioxide", "ppm", 0),
        sensor(11, "pm25", "pm25", "µg/m³", 0),
        sensor(12, "soil", "moisture", "%", 0),
        sensor(13, "wifi_signal", "signal_strength", "dBm", 0),
        sensor(14, "outside", "temperature", "°F", 1),
        sensor(15, "flow", "", "L/min", 2),
        binary(20, "motion", "motion"),
        binary(21, "front_door", "door"),
        binary(22, "leak", "moisture"),
        binary(23, "status", "connectivity"),
        ListEntitiesSwitchResponse { key: 30, object_id: "relay".into(), name: "Relay".into(), ..Default::default() }
            .into(),
        ListEntitiesLightResponse {
            key: 31,
            object_id: "lamp".into(),
            name: "Lamp".into(),
            supported_color_modes: vec![11, 35],
            min_mireds: 153.0,
            max_mireds: 500.0,
            effects: vec!["None".into(), "Rainbow".into()],
            ..Default::default()
        }
        .into(),
        ListEntitiesCoverResponse {
            key: 32,
            object_id: "blind".into(),
            supports_position: true,
            supports_stop: true,
            ..Default::default()
        }
        .into(),
        ListEntitiesFanResponse {
            key: 33,
            object_id: "fan".into(),
            supports_speed: true,
            supported_speed_count: 3,
            supports_oscillation: true,
            ..Default::default()
        }
        .into(),
        ListEntitiesClimateResponse {
            key: 34,
            object_id: "thermostat".into(),
            supports_current_temperature: true,
            supports_action: true,
            supported_modes: vec![0, 3],
            visual_min_temperature: 5.0,
            visual_max_temperature: 30.0,
            visual_target_temperature_step: 0.5,
            ..Default::default()
        }
        .into(),
        ListEntitiesNumberResponse {
            key: 35,
            object_id: "delay".into(),
            min_value: 0.0,
            max_value: 60.0,
            step: 0.5,
            unit_of_measurement: "s".into(),
            entity_category: 1,
            ..Default::default()
        }
        .into(),
        ListEntitiesSelectResponse {
            key: 36,
            object_id: "mode".into(),
            options: vec!["eco".into(), "boost".into()],
            ..Default::default()
        }
        .into(),
        ListEntitiesButtonResponse {
            key: 37,
            object_id: "restart".into(),
            device_class: "restart".into(),
            entity_category: 1,
            ..Default::default()
        }
        .into(),
        ListEntitiesTextSensorResponse {
            key: 38,
            object_id: "version".into(),
            entity_category: 2,
            ..Default::default()
        }
        .into(),
        // Same object_id in another domain, and a hidden entity.
        ListEntitiesTextSensorResponse { key: 39, object_id: "relay".into(), ..Default::default() }.into(),
        ListEntitiesSensorResponse {
            key: 40,
            object_id: "uptime".into(),
            disabled_by_default: true,
            ..Default::default()
        }
        .into(),
        ListEntitiesDoneResponse::default().into(),
    ];
    // Through the wire and back, as a device would send them.
    v = v.into_iter().map(|m| Message::decode(m.msg_type(), &m.encode()).unwrap()).collect();
    v
}

fn map() -> DeviceMap {
    DeviceMap::new(&device_info(), &entities()).unwrap()
}

#[test]
fn a_thermostat_described_by_its_feature_flags_alone_has_the_same_features() {
    // Firmware that sends only `feature_flags`: current temperature (bit 0), two setpoints
    // required (bit 2), action (bit 5).
    let flags_only = |flags: u32| -> Vec<String> {
        let list: Vec<Message> = vec![
            ListEntitiesClimateResponse {
                key: 34,
                object_id: "thermostat".into(),
                feature_flags: flags,
                supported_modes: vec![0, 1],
                visual_min_temperature: 5.0,
                visual_max_temperature: 30.0,
                ..Default::default()
            }
            .into(),
            ListEntitiesDoneResponse::default().into(),
        ];
        let m = DeviceMap::new(&device_info(), &list).unwrap();
        m.descriptor().features.iter().map(|f| f.key.clone()).collect()
    };
    assert_eq!(
        flags_only(1 | 4 | (1 << 5)),
        [
            "thermostat",
            "thermostat_setpoint_low",
            "thermostat_setpoint_high",
            "thermostat_temperature",
            "thermostat_action"
        ]
    );
    assert_eq!(flags_only(0), ["thermostat", "thermostat_setpoint"]);
}

#[test]
fn entity_list_gives_the_descriptor() {
    let m = map();
    let d = m.descriptor();
    assert_eq!(d.id.as_str(), "esphome:acbc32890ea9");
    assert_eq!(d.name, "Living room node");
    assert_eq!(d.manufacturer.as_deref(), Some("Espressif"));
    assert_eq!(d.model.as_deref(), Some("esp32dev"));
    assert_eq!(d.firmware.as_deref(), Some("2025.5.0"));
    assert_eq!(d.suggested_area.as_deref(), Some("Living room"));
    let rows: Vec<String> = d
        .features
        .iter()
        .map(|f| {
            let json = serde_json::to_value(f).unwrap();
            let limits = ["min", "max", "step", "values"]
                .iter()
                .filter_map(|k| json.get(*k).map(|v| format!(" {k}={v}")))
                .collect::<String>();
            let a = f.access;
            format!(
                "{} {} {}{} unit={} {}{}{} {}",
                f.key,
                json["capability"].as_str().unwrap(),
                f.value_type.name(),
                limits,
                f.unit.as_deref().unwrap_or("-"),
                if a.observe { "o" } else { "-" },
                if a.set { "s" } else { "-" },
                if a.get { "g" } else { "-" },
                json["category"].as_str().unwrap(),
            )
        })
        .collect();
    let expected = [
        "temperature temperature number unit=°C o-- primary",
        "humidity humidity number unit=% o-- primary",
        "pressure pressure number unit=hPa o-- primary",
        "illuminance illuminance number unit=lx o-- primary",
        "power power number unit=W o-- primary",
        "energy energy number unit=kWh o-- primary",
        "voltage voltage number unit=V o-- primary",
        "current current number unit=A o-- primary",
        "battery battery number unit=% o-- primary",
        "co2 co2 number unit=ppm o-- primary",
        "pm25 pm25 number unit=µg/m³ o-- primary",
        "soil moisture number unit=% o-- primary",
        "wifi_signal signal_strength number unit=dBm o-- primary",
        "outside temperature number unit=°C o-- primary",
        "flow other number unit=L/min o-- primary",
        "motion occupancy bool unit=- o-- primary",
        "front_door contact bool unit=- o-- primary",
        "leak water_leak bool unit=- o-- primary",
        "status other bool unit=- o-- primary",
        "relay on_off bool unit=- os- primary",
        "lamp on_off bool unit=- os- primary",
        "lamp_brightness brightness number min=0.0 max=100.0 step=1.0 unit=% os- primary",
        "lamp_color color color unit=- os- primary",
        "lamp_color_temperature color_temperature number min=2000.0 max=6536.0 step=1.0 unit=K os- primary",
        "lamp_effect effect enum values=[\"None\",\"Rainbow\"] unit=- os- primary",
        "blind cover_state enum values=[\"open\",\"close\",\"stop\"] unit=- os- primary",
        "blind_position cover_position number min=0.0 max=100.0 step=1.0 unit=% os- primary",
        "fan on_off bool unit=- os- primary",
        "fan_speed fan_speed number min=0.0 max=100.0 step=33.33 unit=% os- primary",
        "fan_oscillating other bool unit=- os- primary",
        "thermostat hvac_mode enum values=[\"off\",\"heat\"] unit=- os- primary",
        "thermostat_setpoint setpoint number min=5.0 max=30.0 step=0.5 unit=°C os- primary",
        "thermostat_temperature temperature number unit=°C o-- primary",
        "thermostat_action hvac_action enum values=[\"off\",\"cool\",\"heat\",\"idle\",\"dry\",\"fan\",\"defrost\"] unit=- o-- primary",
        "delay other number min=0.0 max=60.0 step=0.5 unit=s os- config",
        "mode other enum values=[\"eco\",\"boost\"] unit=- os- primary",
        "restart other enum values=[\"press\"] unit=- -s- config",
        "version other text unit=- o-- diagnostic",
        "relay_text_sensor other text unit=- o-- primary",
    ];
    assert_eq!(rows, expected);
    assert_eq!(d.feature("temperature").unwrap().label.as_deref(), Some("temperature"));
    // Keys are unique, as the hub requires.
    let mut keys: Vec<&str> = d.features.iter().map(|f| f.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), d.features.len());
}

#[test]
fn a_bad_mac_is_refused_and_separators_are_dropped() {
    assert_eq!(native_id("AC-BC-32-89-0E-A9").unwrap(), "acbc32890ea9");
    let info = DeviceInfoResponse { mac_address: "nope".into(), ..Default::default() };
    assert_eq!(
        DeviceMap::new(&info, &[]).unwrap_err().to_string(),
        "the device's MAC address `nope` is not 6 hexadecimal bytes"
    );
}

fn values(m: &DeviceMap, msg: impl Into<Message>) -> BTreeMap<String, Value> {
    // Through the wire, as the device sends it.
    let msg: Message = msg.into();
    let msg = Message::decode(msg.msg_type(), &msg.encode()).unwrap();
    m.values(&msg).unwrap()
}

fn one(k: &str, v: impl Into<Value>) -> BTreeMap<String, Value> {
    BTreeMap::from([(k.to_owned(), v.into())])
}

#[test]
fn states_give_values_in_canonical_units() {
    let m = map();
    let s = |key, state| SensorStateResponse { key, state, ..Default::default() };
    assert_eq!(values(&m, s(1, 21.3)), one("temperature", 21.3));
    assert_eq!(values(&m, s(3, 101_325.0)), one("pressure", 1013.25));
    assert_eq!(values(&m, s(6, 12_345.0)), one("energy", 12.345));
    assert_eq!(values(&m, s(6, 0.0)), one("energy", 0.0));
    assert_eq!(values(&m, s(8, 250.0)), one("current", 0.25));
    assert_eq!(values(&m, s(14, 70.0)), one("outside", 21.11));
    assert_eq!(values(&m, s(15, 1.25)), one("flow", 1.25));
    assert_eq!(values(&m, s(1, f32::NAN)), BTreeMap::new(), "NaN is no value");
    assert_eq!(values(&m, SensorStateResponse { key: 1, missing_state: true, ..Default::default() }), BTreeMap::new());
    let b = |key, state| BinarySensorStateResponse { key, state, ..Default::default() };
    assert_eq!(values(&m, b(20, true)), one("motion", true));
    assert_eq!(values(&m, b(21, true)), one("front_door", false), "door open → contact false");
    assert_eq!(values(&m, b(21, false)), one("front_door", true), "door closed → contact true");
    assert_eq!(values(&m, SwitchStateResponse { key: 30, state: true, ..Default::default() }), one("relay", true));
    assert_eq!(
        values(
            &m,
            LightStateResponse {
                key: 31,
                state: true,
                brightness: 0.4,
                red: 1.0,
                green: 0.5,
                blue: 0.0,
                color_temperature: 370.0,
                effect: "None".into(),
                ..Default::default()
            }
        ),
        BTreeMap::from([
            ("lamp".to_owned(), Value::Bool(true)),
            ("lamp_brightness".to_owned(), Value::Number(40.0)),
            ("lamp_color".to_owned(), Value::Color(Color::from_rgb(255, 128, 0))),
            ("lamp_color_temperature".to_owned(), Value::Number(2703.0)),
            ("lamp_effect".to_owned(), Value::from("None")),
        ])
    );
    assert_eq!(
        values(&m, CoverStateResponse { key: 32, position: 0.7, current_operation: 2, ..Default::default() }),
        BTreeMap::from([
            ("blind".to_owned(), Value::from("close")),
            ("blind_position".to_owned(), Value::Number(70.0))
        ])
    );
    assert_eq!(
        values(&m, FanStateResponse { key: 33, state: true, speed_level: 2, oscillating: true, ..Default::default() }),
        BTreeMap::from([
            ("fan".to_owned(), Value::Bool(true)),
            ("fan_oscillating".to_owned(), Value::Bool(true)),
            ("fan_speed".to_owned(), Value::Number(66.67)),
        ])
    );
    assert_eq!(
        values(
            &m,
            ClimateStateResponse {
                key: 34,
                mode: 3,
                current_temperature: 19.8,
                target_temperature: 21.5,
                action: 3,
                ..Default::default()
            }
        ),
        BTreeMap::from([
            ("thermostat".to_owned(), Value::from("heat")),
            ("thermostat_action".to_owned(), Value::from("heat")),
            ("thermostat_setpoint".to_owned(), Value::Number(21.5)),
            ("thermostat_temperature".to_owned(), Value::Number(19.8)),
        ])
    );
    assert_eq!(values(&m, NumberStateResponse { key: 35, state: 2.5, ..Default::default() }), one("delay", 2.5));
    assert_eq!(
        values(&m, SelectStateResponse { key: 36, state: "eco".into(), ..Default::default() }),
        one("mode", "eco")
    );
    assert_eq!(
        values(&m, TextSensorStateResponse { key: 38, state: "2025.5.0".into(), ..Default::default() }),
        one("version", "2025.5.0")
    );
    assert_eq!(
        values(&m, TextSensorStateResponse { key: 39, state: "x".into(), ..Default::default() }),
        one("relay_text_sensor", "x")
    );
    // Unknown and hidden entities, and messages that are no state.
    assert_eq!(m.values(&SensorStateResponse { key: 40, ..Default::default() }.into()), None);
    assert_eq!(m.values(&SensorStateResponse { key: 999, ..Default::default() }.into()), None);
    assert_eq!(m.values(&PingRequest::default().into()), None);
}

fn cmd(json: &str) -> CommandRequest {
    serde_json::from_str(json).unwrap()
}

#[test]
fn command_messages_name_their_entity() {
    let m = map();
    let out = m.commands(&cmd(r#"{"set": {"relay": true, "lamp_brightness": 10}, "refresh": true}"#)).unwrap();
    let keys: Vec<Option<u32>> = out.iter().map(command_key).collect();
    assert_eq!(keys.len(), 3);
    assert!(keys[..2].iter().all(Option::is_some), "{out:?}");
    assert_eq!(keys[2], None, "the refresh is a SubscribeStatesRequest");
    let every = m.entity_keys();
    assert!(keys[..2].iter().flatten().all(|k| every.contains(k)), "{every:?}");
}

#[test]
fn commands_give_command_messages() {
    let m = map();
    // Exact bytes of a switch command: 00, len 7, type 33 (0x21), key fixed32 LE, state.
    let out = m.commands(&cmd(r#"{"set": {"relay": true}}"#)).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(to_hex(&plaintext_frame(&out[0])), "0007210d1e0000001001");
    let out = m.commands(&cmd(r#"{"set": {"relay": false}}"#)).unwrap();
    assert_eq!(to_hex(&plaintext_frame(&out[0])), "0005210d1e000000");

    let out = m.commands(&cmd(r#"{"set": {"lamp": true, "lamp_brightness": 40, "lamp_color": {"hue": 0, "saturation": 100}, "lamp_effect": "Rainbow"}, "transition": 1.5}"#)).unwrap();
    assert_eq!(
        out,
        vec![Message::from(LightCommandRequest {
            key: 31,
            has_state: true,
            state: true,
            has_brightness: true,
            brightness: 0.4,
            has_rgb: true,
            red: 1.0,
            green: 0.0,
            blue: 0.0,
            has_effect: true,
            effect: "Rainbow".into(),
            has_transition_length: true,
            transition_length: 1500,
            ..Default::default()
        })]
    );
    let out = m.commands(&cmd(r#"{"set": {"lamp_color_temperature": 2500}}"#)).unwrap();
    assert_eq!(
        out,
        vec![Message::from(LightCommandRequest {
            key: 31,
            has_color_temperature: true,
            color_temperature: 400.0,
            ..Default::default()
        })]
    );

    let cover = |json| m.commands(&cmd(json)).unwrap();
    assert_eq!(
        cover(r#"{"set": {"blind": "open"}}"#),
        vec![Message::from(CoverCommandRequest { key: 32, has_position: true, position: 1.0, ..Default::default() })]
    );
    assert_eq!(
        cover(r#"{"set": {"blind": "stop"}}"#),
        vec![Message::from(CoverCommandRequest { key: 32, stop: true, ..Default::default() })]
    );
    assert_eq!(
        cover(r#"{"set": {"blind_position": 25}}"#),
        vec![Message::from(CoverCommandRequest { key: 32, has_position: true, position: 0.25, ..Default::default() })]
    );

    assert_eq!(
        m.commands(&cmd(r#"{"set": {"fan_speed": 50}}"#)).unwrap(),
        vec![Message::from(FanCommandRequest {
            key: 33,
            has_state: true,
            state: true,
            has_speed_level: true,
            speed_level: 2,
            ..Default::default()
        })]
    );
    assert_eq!(
        m.commands(&cmd(r#"{"set": {"fan_speed": 0}}"#)).unwrap(),
        vec![Message::from(FanCommandRequest { key: 33, has_state: true, state: false, ..Default::default() })]
    );
    assert_eq!(
        m.commands(&cmd(r#"{"set": {"thermostat": "heat", "thermostat_setpoint": 21.5}}"#)).unwrap(),
        vec![Message::from(ClimateCommandRequest {
            key: 34,
            has_mode: true,
            mode: 3,
            has_target_temperature: true,
            target_temperature: 21.5,
            ..Default::default()
        })]
    );
    // Several entities: one message each, in entity order; a refresh re-subscribes.
    assert_eq!(
        m.commands(&cmd(r#"{"set": {"restart": "press", "delay": 2.5, "mode": "boost"}, "refresh": true}"#)).unwrap(),
        vec![
            Message::from(NumberCommandRequest { key: 35, state: 2.5, ..Default::default() }),
            Message::from(SelectCommandRequest { key: 36, state: "boost".into(), ..Default::default() }),
            Message::from(ButtonCommandRequest { key: 37, ..Default::default() }),
            Message::from(SubscribeStatesRequest::default()),
        ]
    );
    assert_eq!(
        m.commands(&CommandRequest { refresh: Some(Refresh::All(true)), ..Default::default() }).unwrap(),
        vec![Message::from(SubscribeStatesRequest::default())]
    );
}

#[test]
fn commands_that_cannot_be_done_are_clear_errors() {
    let m = map();
    let err = |json| m.commands(&cmd(json)).unwrap_err().to_string();
    assert_eq!(err(r#"{"set": {"nope": 1}}"#), "the device has no feature `nope`");
    assert_eq!(err(r#"{"set": {"temperature": 1}}"#), "feature `temperature` is read-only");
    assert_eq!(err(r#"{"set": {"relay": "on"}}"#), "feature `relay` takes true or false, not \"on\"");
    assert_eq!(err(r#"{"set": {"restart": "hold"}}"#), "feature `restart` takes `press`, not \"hold\"");
    let info = device_info();
    let no_stop = DeviceMap::new(
        &info,
        &[ListEntitiesCoverResponse { key: 1, object_id: "garage".into(), ..Default::default() }.into()],
    )
    .unwrap();
    assert_eq!(
        no_stop.commands(&cmd(r#"{"set": {"garage": "stop"}}"#)).unwrap_err().to_string(),
        "feature `garage`: this cover cannot stop"
    );
    assert_eq!(
        no_stop.commands(&cmd(r#"{"set": {"garage_position": 50}}"#)).unwrap_err().to_string(),
        "feature `garage_position` is read-only"
    );
}

// ---------------------------------------------------------------- fuzz

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn no_panic_on_arbitrary_bytes() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let seeds: Vec<Vec<u8>> = entities().iter().map(|m| m.encode()).collect();
    let m = map();
    let key = NoiseKey::from_bytes([1; 32]);
    for round in 0..20_000 {
        // Random bytes, or a valid encoding with some bytes changed or cut.
        let mut input = if round % 2 == 0 {
            rng.bytes(64)
        } else {
            let mut s = seeds[rng.next() as usize % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 3 {
                if !s.is_empty() {
                    let i = rng.next() as usize % s.len();
                    s[i] = rng.next() as u8;
                }
            }
            s
        };
        if round % 5 == 0 && !input.is_empty() {
            input.truncate(rng.next() as usize % input.len());
        }
        for &t in KNOWN_TYPES {
            if let Ok(msg) = Message::decode(t, &input) {
                let _ = m.values(&msg);
            }
        }
        let mut d = PlaintextDecoder::new();
        d.push(&input);
        while let Ok(Some(_)) = d.next_frame() {}
        let mut d = NoiseFrameDecoder::new();
        d.push(&input);
        while let Ok(Some(_)) = d.next_body() {}
        let _ = parse_server_hello(&input);
        let _ = decode_noise_plaintext(&input);
        if round % 50 == 0 {
            let (mut client, _) = NoiseClient::start(&key).unwrap();
            let _ = client.receive(&input);
            let mut framed = encode_noise_frame(b"\x01dev\0").unwrap();
            framed.extend(encode_noise_frame(&input).unwrap());
            let (mut client, _) = NoiseClient::start(&key).unwrap();
            let _ = client.receive(&framed);
        }
    }
}

// ---------------------------------------------------------------- bytes worked out by hand
//
// Each frame below is written byte by byte from the field numbers and types of ESPHome's
// `api.proto` (a protobuf tag is `field << 3 | wire type`: 0 varint, 2 length-delimited,
// 5 fixed32; fixed32 and float are little-endian), not produced by this crate's encoder. A frame
// is `00`, the payload's length (varint), the message type (varint), the payload.

/// Reads exactly one plaintext frame from `bytes` with the crate's decoder, then its message.
fn one_message(bytes: &[u8]) -> Message {
    let mut d = PlaintextDecoder::new();
    d.push(bytes);
    let f = d.next_frame().unwrap().expect("a whole frame");
    assert_eq!(d.pending(), 0, "one frame, nothing left over");
    Message::decode(f.msg_type, &f.payload).unwrap()
}

#[test]
fn a_sensor_state_written_by_hand_decodes_to_its_value() {
    // SensorStateResponse, type 25 (0x19): `fixed32 key = 1; float state = 2; bool missing_state = 3;`
    let frame = hex("00 0a 19 \
         0d 01000000 \
         15 0000ac41");
    // 00 0a 19      preamble, 10 payload bytes, type 25
    // 0d 01000000   field 1 fixed32 (1<<3|5): key 1
    // 15 0000ac41   field 2 float (2<<3|5): 0x41ac0000 = 21.5
    let m = one_message(&frame);
    assert_eq!(m, Message::from(SensorStateResponse { key: 1, state: 21.5, ..Default::default() }));
    assert_eq!(map().values(&m).unwrap(), one("temperature", 21.5));

    // No reading yet: `missing_state` set, `state` left out (0.0 is proto3's default).
    let frame = hex("00 07 19 \
         0d 01000000 \
         18 01");
    // 18 01         field 3 varint (3<<3|0): missing_state true
    let m = one_message(&frame);
    assert_eq!(m, Message::from(SensorStateResponse { key: 1, missing_state: true, ..Default::default() }));

    // Newer firmware adds `uint32 device_id = 4` (20 05), older firmware never sends it; a field
    // this crate does not know (99, varint: 98 06 2a) is skipped.
    let frame = hex("00 0f 19 0d 01000000 15 0000ac41 20 05 98062a");
    assert_eq!(
        one_message(&frame),
        Message::from(SensorStateResponse { key: 1, state: 21.5, missing_state: false, device_id: 5 })
    );
}

#[test]
fn a_light_command_is_the_bytes_api_proto_gives() {
    // The lamp (key 31) on at 50 %, red, effect Rainbow, in 1 s: LightCommandRequest, type 32.
    let expected = hex("00 29 20 \
         0d 1f000000 \
         10 01 \
         18 01 \
         20 01 \
         2d 0000003f \
         30 01 \
         3d 0000803f \
         70 01 \
         78 e807 \
         9001 01 \
         9a01 07 5261696e626f77");
    // 00 29 20          preamble, 41 payload bytes, type 32
    // 0d 1f000000       field 1 fixed32: key 31
    // 10 01             field 2 varint: has_state
    // 18 01             field 3 varint: state on
    // 20 01             field 4 varint: has_brightness
    // 2d 0000003f       field 5 float: brightness 0.5 (0x3f000000)
    // 30 01             field 6 varint: has_rgb
    // 3d 0000803f       field 7 float: red 1.0 (0x3f800000); green (8) and blue (9) are 0.0, left out
    // 70 01             field 14 varint (14<<3 = 0x70): has_transition_length
    // 78 e807           field 15 varint: transition_length 1000 ms (0x3e8: e8 07)
    // 9001 01           field 18 varint (18<<3 = 144: 90 01): has_effect
    // 9a01 07 ...       field 19 string (19<<3|2 = 154: 9a 01): effect, 7 bytes "Rainbow"
    let out = map()
        .commands(&cmd(
            r#"{"set": {"lamp": true, "lamp_brightness": 50, "lamp_color": {"hue": 0, "saturation": 100}, "lamp_effect": "Rainbow"}, "transition": 1}"#,
        ))
        .unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(to_hex(&plaintext_frame(&out[0])), to_hex(&expected));
    // And the device side reads the hand-written bytes as the same command.
    assert_eq!(one_message(&expected), out[0]);
}

#[test]
fn a_climate_command_is_the_bytes_api_proto_gives() {
    // The thermostat (key 34) to heat at 21.5 °C: ClimateCommandRequest, type 48 (0x30).
    let expected = hex("00 10 30 \
         0d 22000000 \
         10 01 \
         18 03 \
         20 01 \
         2d 0000ac41");
    // 00 10 30          preamble, 16 payload bytes, type 48
    // 0d 22000000       field 1 fixed32: key 34
    // 10 01             field 2 varint: has_mode
    // 18 03             field 3 varint: mode CLIMATE_MODE_HEAT (3)
    // 20 01             field 4 varint: has_target_temperature
    // 2d 0000ac41       field 5 float: target_temperature 21.5
    let out = map().commands(&cmd(r#"{"set": {"thermostat": "heat", "thermostat_setpoint": 21.5}}"#)).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(to_hex(&plaintext_frame(&out[0])), to_hex(&expected));
    assert_eq!(one_message(&expected), out[0]);

    // Two setpoints and a fan mode, as a client such as Home Assistant sends them.
    let range = hex("00 17 30 \
         0d 22000000 \
         30 01 \
         3d 00009841 \
         40 01 \
         4d 0000c041 \
         60 01 \
         68 03");
    // 30 01             field 6 varint: has_target_temperature_low
    // 3d 00009841       field 7 float: target_temperature_low 19.0 (0x41980000)
    // 40 01             field 8 varint: has_target_temperature_high
    // 4d 0000c041       field 9 float: target_temperature_high 24.0 (0x41c00000)
    // 60 01             field 12 varint: has_fan_mode
    // 68 03             field 13 varint: fan_mode CLIMATE_FAN_LOW (3)
    assert_eq!(
        one_message(&range),
        Message::from(ClimateCommandRequest {
            key: 34,
            has_target_temperature_low: true,
            target_temperature_low: 19.0,
            has_target_temperature_high: true,
            target_temperature_high: 24.0,
            has_fan_mode: true,
            fan_mode: 3,
            ..Default::default()
        })
    );
}

#[test]
fn a_switch_listed_by_hand_written_bytes_is_read_whole() {
    // ListEntitiesSwitchResponse, type 17 (0x11), as firmware that still sends `unique_id`
    // (field 4, since removed) writes it.
    let frame = hex("00 3c 11 \
         0a 05 72656c6179 \
         15 01003a6f \
         1a 05 52656c6179 \
         22 10 6b69746368656e72656c61792d313233 \
         2a 09 6d64693a706f776572 \
         30 01 \
         40 01 \
         4a 06 6f75746c6574");
    // 00 3c 11          preamble, 60 payload bytes, type 17
    // 0a 05 ...         field 1 string: object_id "relay"
    // 15 01003a6f       field 2 fixed32: key 0x6f3a0001
    // 1a 05 ...         field 3 string: name "Relay"
    // 22 10 ...         field 4 string: unique_id "kitchenrelay-123" (16 bytes; not read)
    // 2a 09 ...         field 5 string: icon "mdi:power"
    // 30 01             field 6 varint: assumed_state
    //                   field 7 (disabled_by_default) false: left out
    // 40 01             field 8 varint: entity_category CONFIG (1)
    // 4a 06 ...         field 9 string: device_class "outlet"
    let m = one_message(&frame);
    assert_eq!(
        m,
        Message::from(ListEntitiesSwitchResponse {
            object_id: "relay".into(),
            key: 0x6f3a_0001,
            name: "Relay".into(),
            icon: "mdi:power".into(),
            assumed_state: true,
            disabled_by_default: false,
            entity_category: 1,
            device_class: "outlet".into(),
            device_id: 0,
        })
    );
    // It becomes the device's switch, commanded by its key.
    let m = DeviceMap::new(&device_info(), &[m, ListEntitiesDoneResponse::default().into()]).unwrap();
    let out = m.commands(&cmd(r#"{"set": {"relay": true}}"#)).unwrap();
    assert_eq!(to_hex(&plaintext_frame(&out[0])), "000721 0d01003a6f 1001".replace(' ', ""));
}

#[test]
fn a_number_whose_bounds_are_not_finite_has_no_bounds_and_its_description_reads_back_the_same() {
    // Found by fuzzing: a NaN minimum went out as JSON null and came back as "no minimum".
    let number = ListEntitiesNumberResponse {
        key: 7,
        object_id: "level".into(),
        min_value: f32::NAN,
        max_value: f32::INFINITY,
        step: f32::NEG_INFINITY,
        ..Default::default()
    };
    let m = DeviceMap::new(&device_info(), &[number.into(), ListEntitiesDoneResponse::default().into()]).unwrap();
    let f = &m.descriptor().features[0];
    assert_eq!(f.value_type, hearth_sdk::ValueType::Number { min: None, max: None, step: None });
    let json = serde_json::to_value(m.descriptor()).unwrap();
    let back: hearth_sdk::DeviceDescriptor = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
}
