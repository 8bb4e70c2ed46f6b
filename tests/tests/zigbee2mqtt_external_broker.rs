//! zigbee2mqtt through an external broker (mosquitto) over TLS with an account: the hub's
//! built-in broker is off, the adapter verifies the broker's certificate, devices appear, go
//! offline with the reason when the broker dies, and come back on their own when it returns.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::mosquitto::Mosquitto;
use hearth_tests::sim::Zigbee2mqttSim;
use hearth_tests::sim::zigbee2mqtt::{BULB, SimOptions};
use serde_json::Value;

const T: Duration = Duration::from_secs(30);
const USER: &str = "zigbee";
const PASSWORD: &str = "a long test password";

/// The broker's plain listener, in [`Mosquitto::addrs`].
const PLAIN: usize = 0;
/// The broker's TLS listener, in [`Mosquitto::addrs`].
const TLS: usize = 1;

fn tls_broker(dir: &Path) -> Mosquitto {
    Mosquitto::start_tls_with_account(dir, USER, PASSWORD)
}

/// A configuration with the built-in broker off and the external one over TLS, trusting `ca`.
fn hub_config(dir: &Path, broker: &Mosquitto, ca: &Path) -> PathBuf {
    let config = dir.join("hearth.toml");
    let text = format!(
        "[mqtt]\nenabled = false\n\n[mqtt.external]\nhost = \"localhost\"\nport = {}\nusername = \"{USER}\"\n\
         password = \"{PASSWORD}\"\n\n[mqtt.external.tls]\nca_file = \"{}\"\n",
        broker.addrs()[TLS].port(),
        ca.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn wait_device(hub: &Hub, token: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let a = hub.get(&format!("/api/v1/devices/{id}"), Some(token));
        if a.status == 200 && pred(&a.body) {
            return a.body;
        }
        assert!(Instant::now() < deadline, "{id}: not {what} within {T:?}; last {}\n{}", a.text, hub.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tls_broker_with_an_account_outage_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = tls_broker(dir.path());
    let config = hub_config(dir.path(), &broker, &dir.path().join("ca.pem"));
    let hub = Hub::start_without_broker(&["--config", config.to_str().unwrap()]);
    let token = hub.onboard();
    let options = SimOptions { credentials: Some((USER.into(), PASSWORD.into())), ..SimOptions::default() };
    let sim = Zigbee2mqttSim::start_with(broker.addrs()[PLAIN], options);

    let bulb = BULB.id();
    let d = wait_device(&hub, &token, &bulb, "online", |d| d["availability"]["state"] == "online");
    assert_eq!(d["name"], BULB.name);
    assert!(!hub.log().contains(PASSWORD), "the broker password must never be logged");

    // The broker dies: devices go offline saying why, and the hub keeps serving.
    broker.kill();
    let d = wait_device(&hub, &token, &bulb, "offline", |d| d["availability"]["state"] == "offline");
    let reason = d["availability"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("MQTT broker") && reason.contains("unreachable"), "{reason}");
    let adapters = hub.get("/api/v1/adapters", Some(&token)).body;
    let z2m = adapters.as_array().unwrap().iter().find(|a| a["id"] == "zigbee2mqtt").unwrap().clone();
    assert_eq!(z2m["status"]["state"], "degraded", "{z2m}");

    // It comes back: the adapter reconnects with backoff and the bridge reports again.
    broker.restart();
    wait_device(&hub, &token, &bulb, "back online", |d| d["availability"]["state"] == "online");
    drop(sim);
}

#[test]
fn a_broker_certificate_from_another_authority_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = tls_broker(dir.path());
    // A second, unrelated CA: the broker's certificate does not chain to it.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    hearth_tests::mosquitto::certificates(&other, "DNS:localhost,IP:127.0.0.1");
    let config = hub_config(dir.path(), &broker, &other.join("ca.pem"));
    let hub = Hub::start_without_broker(&["--config", config.to_str().unwrap()]);
    let token = hub.onboard();
    let deadline = Instant::now() + T;
    loop {
        let adapters = hub.get("/api/v1/adapters", Some(&token)).body;
        let z2m = adapters.as_array().unwrap().iter().find(|a| a["id"] == "zigbee2mqtt").unwrap().clone();
        let reason = z2m["status"]["reason"].as_str().unwrap_or_default().to_lowercase();
        if z2m["status"]["state"] == "degraded" && reason.contains("certificate") {
            break;
        }
        assert!(Instant::now() < deadline, "the adapter did not refuse the certificate: {z2m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
