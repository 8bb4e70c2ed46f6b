//! The Alink profile against a real mosquitto, message by message: the gateway connects with the
//! signed client id and user name, adds its sub-device to the topology and logs it in (each sign
//! checked here with Python's own HMAC), posts the lamp's properties under their TSL
//! identifiers, takes a property set from the cloud as a command and answers it, and shows a
//! refusal from the cloud in the link's status.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::process::Command;
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::mosquitto::Mosquitto;
use hearth_tests::sim::{MqttProbe, Msg};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn config(broker: &Mosquitto) -> String {
    format!(
        r#"[adapters.demo]
enabled = true
interval_secs = 3600

[cloud]
enabled = true
profile = "alink"
url = "mqtt://127.0.0.1:{}"
hub_id = "hearth-gw"
accept_commands = true

[cloud.alink]
product_key = "a1GwProd"
device_name = "gw1"
device_secret = "gwSecret0123"

[cloud.alink.devices."demo:living_lamp"]
product_key = "a1LampProd"
device_name = "lamp1"
device_secret = "lampSecret456"
"#,
        broker.addr().port()
    )
}

/// HMAC-SHA256 in hex, by Python's standard library: an implementation that is not ours.
fn python_hmac(key: &str, message: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            key,
            message,
        ])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn status(hub: &Hub, token: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let s = hub.get("/api/v1/cloud", Some(token)).body;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "the Alink link is not {what}: {s}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_alink_gateway_session_message_by_message() {
    let broker = Mosquitto::start();
    let cloud = MqttProbe::connect(broker.addr());
    cloud.subscribe("/sys/#");
    cloud.subscribe("/ext/#");
    let hub = Hub::start_with_config(&config(&broker), &[]);
    let token = hub.onboard();
    let s = status(&hub, &token, "connected", |s| s["connected"] == true);
    assert_eq!(s["profile"], "alink");

    // The connection: Alink's client id and user name (the broker logs both).
    let log = broker.log();
    assert!(log.contains("as hearth-gw|securemode=2,signmethod=hmacsha256,timestamp="), "{log}");
    assert!(log.contains("u'gw1&a1GwProd'"), "{log}");

    // Topology add, then batch login, each with the sub-device's sign.
    let topo = cloud.expect_topic("/sys/a1GwProd/gw1/thing/topo/add", T).json();
    assert_eq!((topo["method"].clone(), topo["version"].clone()), (json!("thing.topo.add"), json!("1.0")));
    let sub = &topo["params"][0];
    assert_eq!((sub["productKey"].clone(), sub["deviceName"].clone()), (json!("a1LampProd"), json!("lamp1")));
    assert_eq!(sub["clientId"], "a1LampProd.lamp1");
    let ts = sub["timestamp"].as_str().unwrap();
    let expected = python_hmac(
        "lampSecret456",
        &format!("clientIda1LampProd.lamp1deviceNamelamp1productKeya1LampProdtimestamp{ts}"),
    );
    assert_eq!(sub["sign"].as_str().unwrap().to_lowercase(), expected);
    let login = cloud.expect_topic("/ext/session/a1GwProd/gw1/combine/batch_login", T).json();
    let entry = &login["params"]["deviceList"][0];
    assert_eq!(entry["deviceName"], "lamp1", "{login}");
    assert_eq!(
        entry["sign"].as_str().unwrap().to_lowercase(),
        python_hmac(
            "lampSecret456",
            &format!(
                "clientIda1LampProd.lamp1deviceNamelamp1productKeya1LampProdtimestamp{}",
                entry["timestamp"].as_str().unwrap()
            )
        )
    );

    // The lamp's properties go up under their TSL identifiers; other demo devices have no
    // sub-device and stay home.
    let post = |m: &Msg| m.topic == "/sys/a1LampProd/lamp1/thing/event/property/post";
    let first = cloud.expect(T, post).json();
    assert_eq!(first["method"], "thing.event.property.post");
    assert!(first["params"].as_object().unwrap().keys().any(|k| k == "powerstate" || k == "Brightness"), "{first}");
    let sent = hub.post("/api/v1/devices/demo:living_lamp/commands", Some(&token), json!({"set": {"brightness": 42}}));
    assert_eq!(sent.status, 202);
    let change = cloud.expect(T, |m| post(m) && m.json()["params"]["Brightness"]["value"] == 42).json();
    assert!(change["params"]["Brightness"]["time"].as_u64().is_some(), "{change}");
    assert!(cloud.seen().iter().all(|m| !m.topic.contains("kitchen")), "only mapped devices go up");

    // A property set from the cloud is a command, answered with code 200.
    cloud.publish(
        "/sys/a1LampProd/lamp1/thing/service/property/set",
        r#"{"id":"4711","version":"1.0","params":{"powerstate":0},"method":"thing.service.property.set"}"#,
        false,
    );
    let reply = cloud.expect_topic("/sys/a1LampProd/lamp1/thing/service/property/set_reply", T).json();
    assert_eq!((reply["id"].clone(), reply["code"].clone()), (json!("4711"), json!(200)), "{reply}");
    let deadline = Instant::now() + T;
    while hub.get("/api/v1/devices/demo:living_lamp", Some(&token)).body["state"]["state"]["value"] != false {
        assert!(Instant::now() < deadline, "the lamp did not turn off");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One for a property the lamp does not have: refused with 460.
    cloud.publish(
        "/sys/a1LampProd/lamp1/thing/service/property/set",
        r#"{"id":"4712","version":"1.0","params":{"Nonsense":1},"method":"thing.service.property.set"}"#,
        false,
    );
    let refused = cloud.expect(T, |m| m.topic.ends_with("property/set_reply") && m.json()["id"] == "4712").json();
    assert_eq!(refused["code"], 460, "{refused}");

    // A refusal from the cloud shows in the status.
    cloud.publish(
        "/sys/a1GwProd/gw1/thing/topo/add_reply",
        r#"{"id":"1","code":6100,"message":"device not found","data":{}}"#,
        false,
    );
    let s = status(&hub, &token, "showing the refusal", |s| {
        s["last_error"].as_str().is_some_and(|e| e.contains("6100") && e.contains("device not found"))
    });
    assert_eq!(s["connected"], true, "{s}");
    assert!(!hub.log().contains("gwSecret0123") && !hub.log().contains("lampSecret456"), "secrets never logged");
}
