//! Yeelight's LAN protocol: discovery datagrams (search answers and advertisements) to a bulb
//! and its abilities, then the control connection's byte stream split into lines, each line
//! read as an answer or a notification, and `props` notifications mapped to model values.
//!
//! Input: a datagram, NUL, then the bytes the bulb sends on the control connection (fed in two
//! parts, as reads split them).
#![no_main]

use std::collections::BTreeMap;

use hearth_fuzz::finite;
use hearth_yeelight::adapter::{announcement, identify};
use hearth_yeelight::api::{Incoming, parse_datagram, parse_line};
use hearth_yeelight::map::{Caps, ColorMemory, descriptor, features};
use hearth_yeelight::session::Lines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (datagram, stream) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[..0]),
    };
    let caps = match parse_datagram(datagram) {
        Ok(Some(bulb)) => {
            let _ = identify(&announcement(&bulb));
            Caps::new(bulb.header("model").unwrap_or_default(), bulb.header("support"))
        }
        _ => Caps::new("color", Some("get_prop set_power set_bright set_ct_abx set_rgb set_hsv")),
    };
    let _ = features(&caps);
    let device = hearth_sdk::DeviceId::new("yeelight", "fuzz");
    let _ = descriptor(&device, "Fuzz", &caps, Some("1.0"));
    let mut lines = Lines::default();
    let mut memory = ColorMemory::default();
    let half = stream.len() / 2;
    for part in [&stream[..half], &stream[half..]] {
        for line in lines.push(part).into_iter().flatten() {
            let props: BTreeMap<String, String> = match parse_line(&line) {
                Ok(Incoming::Props(props)) => props,
                _ => continue,
            };
            for (key, v) in memory.values(&caps, &props) {
                assert!(finite(&v), "feature `{key}` read a number that is not finite: {v:?}");
            }
        }
    }
});
