//! End-to-end tests of the foundation, against the real binary over real HTTP and WebSocket.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hearth::api::routes::{Access, ROUTES};
use hearth_tests::{Hub, Ws};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(15);

fn state_of(hub: &Hub, token: &str, id: &str, feature: &str) -> Value {
    let a = hub.get(&format!("/api/v1/devices/{id}"), Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["state"][feature]["value"].clone()
}

#[test]
fn quick_start_onboarding_token_devices_command_and_websocket() {
    let hub = Hub::start(&["--demo"]);
    // No account exists and nothing but the allow-list answers.
    assert_eq!(hub.get("/api/v1/onboarding", None).body, json!({"needed": true}));
    assert_eq!(hub.get("/api/v1/devices", None).status, 401);
    let session = hub.onboard();
    assert_eq!(hub.get("/api/v1/onboarding", None).body, json!({"needed": false}));
    let again = hub.post("/api/v1/onboarding", None, json!({"name": "mallory", "password": "another password"}));
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (409, Some("already_onboarded")));

    // A long-lived token from the command line, alone on the last line of stdout.
    let (ok, out, err) = hub.cli(&["token", "create", "--user", "owner", "--name", "test"], None);
    assert!(ok, "{err}");
    let token = out.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("hearth_"), "{out}");
    assert_eq!(hub.get("/api/v1/auth/me", Some(&token)).body["name"], "owner");
    assert_eq!(hub.get("/api/v1/auth/me", Some(&session)).body["name"], "owner");

    // The demo home is there, in areas.
    let devices = hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices", Some(&token)).body;
        (d.as_array().map_or(0, Vec::len) >= 12).then_some(d)
    });
    let lamp = devices.as_array().unwrap().iter().find(|d| d["id"] == "demo:living_lamp").expect("living lamp").clone();
    assert_eq!(lamp["area"], "living_room");
    let areas = hub.get("/api/v1/areas", Some(&token)).body;
    assert!(areas.as_array().unwrap().iter().any(|a| a["name"] == "Living room"), "{areas}");
    let adapters = hub.get("/api/v1/adapters", Some(&token)).body;
    assert_eq!(adapters[0]["id"], "demo");

    // A command to a light, seen as a state change over the WebSocket, with its cause.
    let mut ws = hub.ws(&token);
    ws.send(json!({"type": "subscribe"}));
    let snapshot = ws.recv_type("snapshot", T);
    assert!(snapshot["devices"].as_array().unwrap().len() >= 12);
    let before = state_of(&hub, &token, "demo:living_lamp", "brightness");
    let target = if before == json!(40.0) { 41.0 } else { 40.0 };
    let a = hub.post(
        "/api/v1/devices/demo:living_lamp/commands",
        Some(&token),
        json!({"set": {"state": true, "brightness": target}}),
    );
    assert_eq!(a.status, 202, "{}", a.text);
    let context_id = a.body["context"]["id"].as_str().unwrap().to_owned();
    let change = ws.recv_until(T, |m| {
        m["type"] == "event"
            && m["event"]["type"] == "state_changed"
            && m["event"]["device"] == "demo:living_lamp"
            && m["event"]["feature"] == "brightness"
    });
    assert_eq!(change["event"]["new"], json!(target));
    assert_eq!(change["event"]["context"]["id"], context_id.as_str());
    assert_eq!(change["event"]["context"]["origin"], json!({"kind": "user", "name": "owner"}));
    assert_eq!(state_of(&hub, &token, "demo:living_lamp", "brightness"), json!(target));

    // Commands over the socket, and refusals that name the feature and what it allows.
    ws.send(json!({"type": "command", "id": 5, "device": "demo:living_lamp", "set": {"brightness": 140}}));
    let r = ws.recv_type("result", T);
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["message"], "feature `brightness` takes 0 to 100, not 140");
    let bad = hub.post("/api/v1/devices/demo:living_lamp/commands", Some(&token), json!({"set": {"colour": 1}}));
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (422, Some("unknown_feature")));
    assert!(
        bad.body["error"]["message"].as_str().unwrap().contains("its features are: state, brightness"),
        "{}",
        bad.text
    );
    let ro = hub.post("/api/v1/devices/demo:living_climate/commands", Some(&token), json!({"set": {"temperature": 3}}));
    assert_eq!((ro.status, ro.body["error"]["code"].as_str()), (422, Some("read_only")));
    let garbage = hub.request("POST", "/api/v1/devices/demo:living_lamp/commands", Some(&token), Some(&json!("on")));
    assert_eq!(garbage.status, 400, "{}", garbage.text);

    // History says what changed and why.
    let h = hub.get("/api/v1/devices/demo:living_lamp/history?feature=brightness", Some(&token));
    let last = h.body["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["value"].clone(), last["context"]["id"].clone()), (json!(target), json!(context_id)));

    // Logout ends the session token.
    assert_eq!(hub.post("/api/v1/auth/logout", Some(&session), json!({})).status, 204);
    assert_eq!(hub.get("/api/v1/auth/me", Some(&session)).status, 401);
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.contains("hearth_commands_total 1"), "{metrics}");
    assert!(metrics.contains("hearth_adapter_state{adapter=\"demo\",state=\"running\"} 1"), "{metrics}");
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_database_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(bytes > 4096, "the database's size: {bytes}");
}

#[test]
fn restart_keeps_devices_names_areas_and_last_state() {
    let mut hub = Hub::start(&["--demo"]);
    let token = hub.onboard();
    hub.wait_for(T, || (hub.get("/api/v1/devices/demo:kitchen_light", Some(&token)).status == 200).then_some(()));
    let area = hub.post("/api/v1/areas", Some(&token), json!({"name": "Studio"}));
    assert_eq!(area.status, 201, "{}", area.text);
    let patch = hub.request(
        "PATCH",
        "/api/v1/devices/demo:kitchen_light",
        Some(&token),
        Some(&json!({"name": "Worktop light", "area": "studio"})),
    );
    assert_eq!(patch.status, 200, "{}", patch.text);
    let a = hub.post(
        "/api/v1/devices/demo:kitchen_light/commands",
        Some(&token),
        json!({"set": {"state": true, "brightness": 55}}),
    );
    assert_eq!(a.status, 202);
    hub.wait_for(T, || (state_of(&hub, &token, "demo:kitchen_light", "brightness") == json!(55.0)).then_some(()));
    let removed = hub.request("DELETE", "/api/v1/devices/demo:hall_button", Some(&token), None);
    assert_eq!(removed.status, 204);

    // Restart without the demo adapter: what is shown comes from the database alone.
    hub.args.clear();
    hub.restart();
    let d = hub.get("/api/v1/devices/demo:kitchen_light", Some(&token)).body;
    assert_eq!(d["name"], "Worktop light");
    assert_eq!(d["area"], "studio");
    assert_eq!(d["state"]["brightness"]["value"], json!(55.0));
    assert_eq!(d["state"]["state"]["value"], json!(true));
    assert_eq!(d["availability"]["state"], "unknown");
    let areas = hub.get("/api/v1/areas", Some(&token)).body;
    assert!(areas.as_array().unwrap().iter().any(|a| a["id"] == "studio" && a["name"] == "Studio"), "{areas}");
    assert_eq!(hub.get("/api/v1/devices/demo:hall_button", Some(&token)).status, 404);
    // A command to a device whose adapter is not running says so.
    let c = hub.post("/api/v1/devices/demo:kitchen_light/commands", Some(&token), json!({"set": {"state": false}}));
    assert_eq!((c.status, c.body["error"]["code"].as_str()), (503, Some("adapter_not_running")));

    // With the adapter back, the user's name and area survive re-discovery.
    hub.args = vec!["--demo".into()];
    hub.restart();
    hub.wait_for(T, || {
        let d = hub.get("/api/v1/devices/demo:kitchen_light", Some(&token)).body;
        (d["availability"]["state"] == "online").then_some(())
    });
    let d = hub.get("/api/v1/devices/demo:kitchen_light", Some(&token)).body;
    assert_eq!((d["name"].as_str(), d["area"].as_str()), (Some("Worktop light"), Some("studio")));
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "demo:living_lamp")
}

#[test]
fn every_route_in_the_table_needs_a_token_unless_on_the_allow_list() {
    let hub = Hub::start(&["--demo"]);
    let allow_list = ["/healthz", "/api/v1/onboarding", "/api/v1/auth/login"];
    for route in ROUTES {
        let public = route.access == Access::Public;
        assert_eq!(
            public,
            allow_list.contains(&route.path),
            "{} {} is public but not on the allow-list",
            route.method,
            route.path
        );
        if public {
            continue;
        }
        let body = (route.method != "GET" && route.method != "DELETE").then(|| json!({}));
        for token in [None, Some("hearth_0123"), Some("not-even-a-token")] {
            let a = hub.request(route.method, &concrete(route.path), token, body.as_ref());
            assert_eq!(a.status, 401, "{} {} with {token:?}: {}", route.method, route.path, a.text);
            assert_eq!(a.body["error"]["code"], "unauthorized");
        }
    }
    // Unknown API paths reveal nothing without a token either.
    assert_eq!(hub.get("/api/v1/secret-route", None).status, 401);

    // With a token, every route of the table exists (no "no route" 404, no 405).
    let token = hub.onboard();
    hub.wait_for(T, || (hub.get("/api/v1/devices/demo:living_lamp", Some(&token)).status == 200).then_some(()));
    hub.post("/api/v1/areas", Some(&token), json!({"name": "Spare"}));
    for route in ROUTES.iter().filter(|r| r.path != "/api/v1/auth/logout") {
        let path = if route.path.starts_with("/api/v1/areas/") {
            route.path.replace("{id}", "spare")
        } else {
            concrete(route.path)
        };
        let body = match route.path {
            "/api/v1/devices/{id}/commands" => Some(json!({"set": {"state": true}})),
            "/api/v1/onboarding" | "/api/v1/auth/login" => Some(json!({"name": "owner", "password": "x"})),
            _ if route.method == "POST" || route.method == "PATCH" => Some(json!({"name": "Spare room"})),
            _ => None,
        };
        let a = hub.request(route.method, &path, Some(&token), body.as_ref());
        let no_route =
            a.status == 405 || a.body["error"]["message"].as_str().is_some_and(|m| m.starts_with("no route"));
        let refused = a.status == 401 && route.access != Access::Public;
        assert!(!no_route && !refused, "{} {path}: {} {}", route.method, a.status, a.text);
    }

    // The WebSocket authenticates with its first message.
    let mut ws = Ws::connect(hub.http);
    ws.send(json!({"type": "subscribe"}));
    assert_eq!(ws.recv(T).unwrap()["type"], "auth_failed");
    assert_eq!(ws.recv(T), None, "the socket closes after a failed authentication");
    let mut ws = Ws::connect(hub.http);
    ws.send(json!({"type": "auth", "token": "hearth_0000"}));
    assert_eq!(ws.recv(T).unwrap()["type"], "auth_failed");
    // Static UI files need no token.
    let ui = hub.get("/", None);
    assert!(ui.status == 200 && ui.text.contains("<title>Hearth</title>"));
}

#[test]
fn bad_configuration_names_file_line_column_and_nearest_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:0\"\n\n[mqtt]\nlisen = \"127.0.0.1:1883\"\n").unwrap();
    let hub = Hub::start(&[]);
    let path = file.to_str().unwrap();
    let (ok, _, err) = hub.cli(&["check-config", "--config", path], None);
    assert!(!ok);
    let expected = format!(
        "error: {path}:5:1: unknown key `lisen`; did you mean `listen`? (valid keys here: enabled, listen, users, external)"
    );
    assert!(err.starts_with(&expected), "{err}");
    let (ok, _, err) = hub.cli(&["run", "--config", path, "--http", "127.0.0.1:0"], None);
    assert!(!ok && err.starts_with(&expected), "the hub must not start: {err}");

    std::fs::write(&file, "[adapters.demo]\nenabled = \"yes\"\n").unwrap();
    let (ok, _, err) = hub.cli(&["check-config", "--config", path], None);
    assert!(!ok);
    assert!(
        err.starts_with(&format!(
            "error: {path}:2:11: `adapters.demo.enabled`: invalid type: string \"yes\", expected a boolean"
        )),
        "{err}"
    );

    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
    let (ok, out, err) = hub.cli(&["check-config", "--config", path], None);
    assert!(ok, "{err}");
    assert!(out.contains("the configuration is valid"), "{out}");

    // Flags are checked by the same rules: a broker on the LAN needs accounts.
    let (ok, _, err) = hub.cli(&["run", "--mqtt", "0.0.0.0:1", "--http", "127.0.0.1:0"], None);
    assert!(!ok && err.contains("needs at least one account"), "{err}");
}

#[test]
fn users_and_tokens_from_the_command_line_while_the_hub_runs() {
    let hub = Hub::start(&[]);
    let (ok, _, err) = hub.cli(&["user", "add", "alice", "--admin", "--password-stdin"], Some("s3cret-passphrase\n"));
    assert!(ok, "{err}");
    let (ok, _, err) = hub.cli(&["user", "add", "bob", "--password-stdin"], Some("short\n"));
    assert!(!ok && err.contains("at least 8 characters"), "{err}");
    let (ok, _, err) = hub.cli(&["user", "add", "alice", "--password-stdin"], Some("another-passphrase\n"));
    assert!(!ok && err.contains("exists already"), "{err}");
    // Onboarding is over once an account exists, however it was made.
    assert_eq!(hub.get("/api/v1/onboarding", None).body, json!({"needed": false}));
    let login = hub.post("/api/v1/auth/login", None, json!({"name": "alice", "password": "s3cret-passphrase"}));
    assert_eq!(login.status, 200, "{}", login.text);
    let wrong = hub.post("/api/v1/auth/login", None, json!({"name": "alice", "password": "guess"}));
    assert_eq!(wrong.status, 401);

    let (_, out, _) = hub.cli(&["token", "create", "--user", "alice"], None);
    let token = out.lines().last().unwrap().to_owned();
    assert_eq!(hub.get("/api/v1/devices", Some(&token)).status, 200);
    let (_, list, _) = hub.cli(&["token", "list"], None);
    assert!(!list.contains(&token), "token list must never show secrets");
    let id = list.lines().find(|l| l.contains("\tapi\t")).unwrap().split('\t').next().unwrap().to_owned();
    let (ok, _, _) = hub.cli(&["token", "revoke", &id], None);
    assert!(ok);
    assert_eq!(hub.get("/api/v1/devices", Some(&token)).status, 401);
    let (_, users, _) = hub.cli(&["user", "list"], None);
    assert!(users.starts_with("alice\tadmin"), "{users}");
}

#[test]
fn the_built_in_broker_carries_messages() {
    let hub = Hub::start(&[]);
    let addr = hub.mqtt.unwrap();
    let mut opts = rumqttc::MqttOptions::new("hearth-test", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    client.subscribe("zigbee2mqtt/#", rumqttc::QoS::AtLeastOnce).unwrap();
    let mut published = false;
    for event in conn.iter().take(50) {
        match event.unwrap() {
            rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) if !published => {
                client
                    .publish("zigbee2mqtt/bridge/state", rumqttc::QoS::AtLeastOnce, true, r#"{"state":"online"}"#)
                    .unwrap();
                published = true;
            }
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                assert_eq!(p.topic, "zigbee2mqtt/bridge/state");
                assert_eq!(&p.payload[..], br#"{"state":"online"}"#);
                return;
            }
            _ => {}
        }
    }
    panic!("no message came back through the broker");
}

fn mqtt_connects(addr: std::net::SocketAddr, credentials: Option<(&str, &str)>) -> Result<(), String> {
    let mut opts = rumqttc::MqttOptions::new("hearth-auth-test", addr.ip().to_string(), addr.port());
    if let Some((u, p)) = credentials {
        opts.set_credentials(u, p);
    }
    let (_client, mut conn) = rumqttc::Client::new(opts, 10);
    for event in conn.iter().take(5) {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                return if a.code == rumqttc::ConnectReturnCode::Success {
                    Ok(())
                } else {
                    Err(format!("{:?}", a.code))
                };
            }
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("no answer".into())
}

#[test]
fn a_broker_with_accounts_refuses_clients_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hearth.toml");
    std::fs::write(&file, "[[mqtt.users]]\nusername = \"zigbee2mqtt\"\npassword = \"a long enough password\"\n")
        .unwrap();
    let hub = Hub::start(&["--config", file.to_str().unwrap()]);
    let addr = hub.mqtt.unwrap();
    assert_eq!(mqtt_connects(addr, Some(("zigbee2mqtt", "a long enough password"))), Ok(()));
    assert!(mqtt_connects(addr, Some(("zigbee2mqtt", "wrong password"))).is_err());
    assert!(mqtt_connects(addr, None).is_err());
    assert!(!hub.log().contains("a long enough password"), "secrets must not be logged");
}

#[test]
fn every_subcommand_has_help_and_data_commands_work_without_a_running_hub() {
    let hub = Hub::start(&[]);
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["check-config", "--help"],
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
        vec!["user", "passwd", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "remove", "--help"],
        vec!["token", "--help"],
        vec!["token", "create", "--help"],
        vec!["token", "list", "--help"],
        vec!["token", "revoke", "--help"],
        vec!["version", "--help"],
    ] {
        let out = std::process::Command::new(hearth_tests::hearth_bin()).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Usage: hearth"), "{args:?}: {text}");
    }
    let out = std::process::Command::new(hearth_tests::hearth_bin()).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hearth 0."));

    // The same data directory, with the hub stopped.
    let mut hub = hub;
    assert!(hub.stop());
    let (ok, _, err) = hub.cli(&["user", "add", "carol", "--password-stdin"], Some("carols-passphrase\n"));
    assert!(ok, "{err}");
    let (ok, out, _) = hub.cli(&["token", "create", "--user", "carol", "--name", "offline"], None);
    assert!(ok);
    let token = out.lines().last().unwrap().to_owned();
    hub.spawn();
    assert_eq!(hub.get("/api/v1/auth/me", Some(&token)).body["name"], "carol");
    let (ok, _, err) = hub.cli(&["user", "remove", "carol"], None);
    assert!(ok, "{err}");
    assert_eq!(hub.get("/api/v1/auth/me", Some(&token)).status, 401);
}
