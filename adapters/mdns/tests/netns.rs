//! Discovery finds what is announced, with its addresses, port and TXT records, and hears it
//! leave. Multicast never touches the machine's network: each test re-runs itself inside a new
//! network namespace (`unshare -n`, root only) whose loopback is the only interface, and the
//! browser is limited to it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hearth_mdns::testing::in_namespace;
use hearth_mdns::{Browser, Seen};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn an_announced_device_is_resolved_with_its_records_and_heard_leaving() {
    in_namespace("an_announced_device_is_resolved_with_its_records_and_heard_leaving", || {
        runtime().block_on(async {
            let lo = vec!["lo".to_owned()];
            let device = Browser::start(&lo).expect("device side");
            let hub = Browser::start(&lo).expect("hub side");
            let mut seen = hub.browse(&["_wled._tcp.local.", "_shelly._tcp.local."]).expect("browse");
            let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
            device
                .announce(
                    "_wled._tcp.local.",
                    "wled-kitchen",
                    "wled-kitchen.local.",
                    ip,
                    80,
                    &[("mac", "a8032ab12345")],
                )
                .expect("announce");
            let a = loop {
                match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
                    Ok(Some(Seen::Resolved(a))) => break a,
                    Ok(Some(_)) => continue,
                    other => panic!("nothing resolved: {other:?}"),
                }
            };
            assert_eq!(a.service_type, "_wled._tcp.local.");
            assert_eq!(a.name, "wled-kitchen");
            assert_eq!(a.instance, "wled-kitchen._wled._tcp.local.");
            assert_eq!(a.host, "wled-kitchen.local.");
            assert_eq!(a.port, 80);
            assert!(a.addresses.contains(&ip), "{:?}", a.addresses);
            assert_eq!(a.txt.get("mac").map(String::as_str), Some("a8032ab12345"));

            // Gone: the device's responder stops and says goodbye.
            drop(device);
            loop {
                match tokio::time::timeout(Duration::from_secs(10), seen.recv()).await {
                    Ok(Some(Seen::Removed { instance, .. })) => {
                        assert_eq!(instance, "wled-kitchen._wled._tcp.local.");
                        break;
                    }
                    Ok(Some(_)) => continue,
                    other => panic!("no goodbye: {other:?}"),
                }
            }
        });
    });
}
