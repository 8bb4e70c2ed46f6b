//! Devices on the network, end to end, inside a network namespace of the test's own (the test
//! re-runs itself under `unshare -n`; multicast never reaches the machine's network): the hub's
//! network discovery lists a HomeKit accessory it cannot control yet in the inbox, keyed by its
//! device id, and follows it to a new address instead of listing it twice.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

use hearth_mdns::Browser;
use hearth_tests::Hub;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);
const INSIDE: &str = "HEARTH_TEST_INSIDE_NETNS";

/// Runs `test` inside a fresh network namespace whose only interface is its loopback.
fn in_namespace(name: &str, test: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        test();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--", "sh", "-c", r#"ip link set lo up && exec "$0" --exact "$1" --nocapture"#])
        .arg(&exe)
        .arg(name)
        .env(INSIDE, "1")
        .output()
        .expect("unshare (util-linux) and ip (iproute2), as root");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "inside the namespace:\n{text}");
}

fn entries(hub: &Hub, token: &str) -> Vec<Value> {
    hub.get("/api/v1/inbox", Some(token)).body["entries"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_device_seen_on_the_network_waits_in_the_inbox_as_not_supported_yet() {
    in_namespace("a_device_seen_on_the_network_waits_in_the_inbox_as_not_supported_yet", || {
        let hub = Hub::start_with_config("[adapters.mdns]\nenabled = true\ninterfaces = [\"lo\"]\n", &[]);
        let token = hub.onboard();
        let tv = Browser::start(&["lo".to_owned()]).unwrap();
        let announce = |ip: Ipv4Addr| {
            tv.announce(
                "_hap._tcp.local.",
                "Living room TV",
                "living-room-tv.local.",
                IpAddr::V4(ip),
                8080,
                &[("id", "AA:BB:CC:DD:EE:01"), ("md", "LG TV")],
            )
            .unwrap();
        };
        announce(Ipv4Addr::LOCALHOST);
        let entry = hub.wait_for(T, || entries(&hub, &token).into_iter().find(|e| e["adapter"] == "mdns"));
        assert_eq!(entry["key"], "homekit:aa:bb:cc:dd:ee:01");
        assert_eq!(entry["name"], "Living room TV");
        assert_eq!(entry["manufacturer"], "HomeKit accessory");
        assert_eq!(entry["model"], "LG TV");
        assert_eq!(entry["transport"], "wifi");
        assert_eq!(entry["address"], "127.0.0.1");
        assert_eq!(entry["supported"], false);

        // It cannot be added, only ignored.
        let refused = hub.post("/api/v1/inbox/mdns/homekit:aa:bb:cc:dd:ee:01/accept", Some(&token), json!({}));
        assert_eq!(refused.status, 409, "{}", refused.text);

        // A new address (DHCP): the same entry follows it.
        drop(tv);
        let tv = Browser::start(&["lo".to_owned()]).unwrap();
        tv.announce(
            "_hap._tcp.local.",
            "Living room TV",
            "living-room-tv.local.",
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            8080,
            &[("id", "AA:BB:CC:DD:EE:01"), ("md", "LG TV")],
        )
        .unwrap();
        hub.wait_for(T, || {
            let list = entries(&hub, &token);
            (list.len() == 1 && list[0]["address"] == "127.0.0.2").then_some(())
        });
    });
}
