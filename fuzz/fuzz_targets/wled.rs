//! WLED's JSON API: `/json`, `/json/si`, `/json/state`, `/json/info`, effect and palette name
//! lists and WebSocket messages, through the controller mapping the adapter keeps (device,
//! features, values), and a command's patch checked against each state read.
//!
//! Input: records separated by NUL (the text before a record's first newline is ignored, see
//! `hearth_fuzz::records`); the first that describes a controller makes it, the others update
//! it.
#![no_main]

use hearth_fuzz::{check_events, finite, records};
use hearth_sdk::{AdapterEvent, CommandRequest};
use hearth_wled::json::{Controller, Info, Message, State, device_id, parse_names};
use hearth_wled::session::reflects;
use libfuzzer_sys::fuzz_target;

fn values(c: &Controller, state: Option<&State>, info: Option<&Info>) {
    for (key, v) in c.values(state, info) {
        assert!(finite(&v), "feature `{key}` read a number that is not finite: {v:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let request: CommandRequest =
        serde_json::from_str(r#"{"set": {"state": true, "brightness": 40}, "transition": 1.5}"#).unwrap_or_default();
    let mut controller: Option<Controller> = None;
    for (_, payload) in records(data) {
        let _ = parse_names(payload);
        if let Ok(info) = Info::from_json(payload) {
            let _ = device_id(&info);
            if let Ok(c) = Controller::new(&info) {
                values(&c, None, Some(&info));
            }
        }
        let state = State::from_json(payload).ok();
        let Ok(message) = Message::from_json(payload) else { continue };
        match &mut controller {
            None => controller = Controller::from_message(&message).ok(),
            Some(c) => {
                c.update(&message);
                if let Some(names) = &message.effects {
                    c.set_effects(names);
                }
            }
        }
        let Some(c) = &controller else { continue };
        check_events(&[AdapterEvent::Device { device: c.descriptor().clone() }]);
        values(c, message.state.as_ref().or(state.as_ref()), message.info.as_ref());
        if let (Ok(patch), Some(s)) = (c.patch(&request), message.state.as_ref().or(state.as_ref())) {
            let _ = (patch.to_json(), reflects(&patch, s, c.main_segment()));
        }
    }
});
