//! Shelly Gen2+ RPC: frames a device sends (responses and notifications), its device info,
//! configuration and status as the adapter maps them, notifications against that mapping, and
//! the digest challenges of password-protected devices (HTTP header and WebSocket 401).
//!
//! Input: records separated by NUL (the text before a record's first newline is ignored, see
//! `hearth_fuzz::records`): the first three are the device info, configuration and status
//! (results of `Shelly.GetDeviceInfo`, `Shelly.GetConfig`, `Shelly.GetStatus`); every record is
//! also read as a frame, and as a notification to the mapping when it is one.
#![no_main]

use hearth_fuzz::{check_events, finite, records};
use hearth_sdk::DeviceId;
use hearth_shelly::digest::{HttpChallenge, WsChallenge};
use hearth_shelly::rpc::{DeviceInfo, DeviceMapping, Frame, NotifyMethod, parse_frame};
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;

fn json(payload: &[u8]) -> Json {
    serde_json::from_slice(payload).unwrap_or(Json::Null)
}

fn values(mapping: &DeviceMapping, status: &Json) {
    let _ = mapping.needs_rebuild(status);
    if let Ok(values) = mapping.values(status) {
        for (key, v) in &values {
            assert!(finite(v), "feature `{key}` read a number that is not finite: {v:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let records = records(data);
    let texts: Vec<&str> = records.iter().filter_map(|(_, p)| std::str::from_utf8(p).ok()).collect();
    for text in &texts {
        let _ = HttpChallenge::parse(text);
        if let Ok(c) = WsChallenge::parse(text) {
            let _ = c.nonce_text();
        }
    }
    let mapping = match (records.first(), records.get(1), records.get(2)) {
        (Some((_, info)), Some((_, config)), Some((_, status))) => {
            let status = json(status);
            DeviceInfo::parse(&json(info)).ok().and_then(|info| {
                let _ = (info.device_id(), info.model_name(), info.firmware());
                DeviceMapping::new(info, &json(config), &status).ok()
            })
        }
        _ => None,
    };
    if let Some(m) = &mapping {
        assert_json_descriptor(m);
        values(m, &json(records[2].1));
    }
    for text in &texts {
        let Ok(frame) = parse_frame(text) else { continue };
        let (Some(m), Frame::Notification(n)) = (&mapping, frame) else { continue };
        match n.method {
            NotifyMethod::Status | NotifyMethod::FullStatus => values(m, &n.params),
            NotifyMethod::Event => {
                let events = m.events(&n.params);
                let device = DeviceId::new("shelly", "fuzz");
                let events: Vec<_> = events.buttons.into_iter().map(|b| b.into_adapter_event(device.clone())).collect();
                check_events(&events);
            }
            NotifyMethod::Other(_) => {}
        }
    }
});

fn assert_json_descriptor(m: &DeviceMapping) {
    check_events(&[hearth_sdk::AdapterEvent::Device { device: m.descriptor().clone() }]);
}
