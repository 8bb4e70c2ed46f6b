//! Devices on the network, end to end, inside a network namespace of the test's own (the test
//! re-runs itself under `unshare -n`; multicast never reaches the machine's network), driven only
//! through the hub's API:
//! - the network discovery lists a HomeKit accessory it cannot control yet in the inbox, keyed
//!   by its device id, and follows it to a new address instead of listing it twice;
//! - a WLED controller, a Shelly and an ESPHome device (simulators speaking the real protocols,
//!   announced over real mDNS) are found, added, show their state live, take commands, go
//!   offline with the reason when they stop, and come back when they return;
//! - a password entered for a device that refuses the hub is tried at once, not at the
//!   backoff's next try.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hearth_mdns::Browser;
use hearth_mdns::testing::in_namespace;
use hearth_tests::Hub;
use hearth_tests::browser::Browser as WebBrowser;
use hearth_tests::sim::esphome::{EsphomeOptions, EsphomeSim, RELAY, TEMPERATURE};
use hearth_tests::sim::miio::{MiioOptions, MiioSim};
use hearth_tests::sim::shelly::{ShellyOptions, ShellySim};
use hearth_tests::sim::wled::{WledOptions, WledSim};
use hearth_tests::sim::yeelight::{YeelightOptions, YeelightSim};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(20);

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

/// A hub with the Wi-Fi adapters on, speaking mDNS on the namespace's loopback only, giving up
/// on a silent device after 3 s.
fn wifi_hub() -> (Hub, String) {
    let mut config = String::new();
    for id in ["shelly", "wled", "esphome", "yeelight", "miio"] {
        config.push_str(&format!("[adapters.{id}]\nenabled = true\ninterfaces = [\"lo\"]\noffline_after_secs = 3\n"));
    }
    // miIO devices are polled: well within the time they may be silent.
    config.push_str("poll_secs = 1\n");
    let hub = Hub::start_with_config(&config, &[]);
    let token = hub.onboard();
    (hub, token)
}

/// Waits for `adapter`'s find to wait in the inbox, and adds it.
fn accept(hub: &Hub, token: &str, adapter: &str, key: &str) -> Value {
    let entry =
        hub.wait_for(T, || entries(hub, token).into_iter().find(|e| e["adapter"] == adapter && e["key"] == key));
    let accepted = hub.post(&format!("/api/v1/inbox/{adapter}/{key}/accept"), Some(token), json!({}));
    assert_eq!(accepted.status, 200, "{}", accepted.text);
    entry
}

/// Waits until the device answers `ready`.
fn device_when(hub: &Hub, token: &str, id: &str, mut ready: impl FnMut(&Value) -> bool) -> Value {
    hub.wait_for(T, || {
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(token));
        (d.status == 200 && ready(&d.body)).then_some(d.body)
    })
}

fn command(hub: &Hub, token: &str, id: &str, body: Value) {
    let a = hub.post(&format!("/api/v1/devices/{id}/commands"), Some(token), body);
    assert!(a.status == 200 || a.status == 202, "{} {}", a.status, a.text);
}

#[test]
fn a_wled_controller_is_found_added_controlled_and_followed_through_a_restart() {
    in_namespace("a_wled_controller_is_found_added_controlled_and_followed_through_a_restart", || {
        let (hub, token) = wifi_hub();
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let options = WledOptions { segments: 2, ..WledOptions::default() };
        let sim = WledSim::start(options.clone());
        sim.announce(&net);
        let id = sim.device_id();

        // Found, with its brand, name and address; added.
        let entry = accept(&hub, &token, "wled", sim.mac());
        assert_eq!(entry["device"], id.as_str());
        assert_eq!(entry["name"], "wled-0455f0");
        assert_eq!(entry["manufacturer"], "WLED");
        // Its announcement names no hardware: the model is read once it is connected.
        assert_eq!(entry["model"], "WLED");
        assert_eq!(entry["address"], "127.0.0.1");
        assert_eq!(entry["transport"], "wifi");
        assert_eq!(entry["supported"], true);

        // A device with its features and its state, online.
        let d = device_when(&hub, &token, &id, |d| d["state"]["effect"]["value"].is_string());
        assert_eq!(d["name"], "WLED Kitchen");
        assert_eq!(d["model"], "WLED on esp32");
        assert_eq!(d["availability"]["state"], "online");
        assert_eq!(d["state"]["state"]["value"], true);
        assert_eq!(d["state"]["effect"]["value"], "Solid");
        let features: Vec<&str> =
            d["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        for key in ["state", "brightness", "color", "effect", "palette", "state_seg1", "effect_seg1"] {
            assert!(features.contains(&key), "{key} in {features:?}");
        }

        // A command reaches the controller; its new state comes back.
        command(&hub, &token, &id, json!({"set": {"brightness": 40, "effect": "Rainbow"}}));
        let patches = sim.wait_patches(1, T);
        assert_eq!(patches[0]["bri"], 102, "{patches:?}");
        assert_eq!(patches[0]["seg"][0]["fx"], 9, "{patches:?}");
        device_when(&hub, &token, &id, |d| {
            d["state"]["effect"]["value"] == "Rainbow" && d["state"]["brightness"]["value"] == 40.0
        });

        // Someone uses the controller's own button: the hub sees it live.
        sim.set_physically(json!({"on": false}));
        device_when(&hub, &token, &id, |d| d["state"]["state"]["value"] == false);

        // The controller stops: offline after 3 s of silence, saying why.
        let port = sim.port();
        drop(sim);
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 3 s");
        assert_eq!(d["availability"]["code"], "no_answer");

        // It comes back (and announces itself): online again with its state.
        let sim = WledSim::start_on(port, options);
        sim.announce(&net);
        device_when(&hub, &token, &id, |d| {
            d["availability"]["state"] == "online" && d["state"]["state"]["value"] == true
        });
    });
}

#[test]
fn an_encrypted_esphome_device_asks_for_its_key_then_is_controlled_through_reboots() {
    in_namespace("an_encrypted_esphome_device_asks_for_its_key_then_is_controlled_through_reboots", || {
        let (hub, token) = wifi_hub();
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let sim = EsphomeSim::start(EsphomeOptions::encrypted());
        sim.announce(&net);
        let id = sim.device_id().to_string();
        let mac = id.strip_prefix("esphome:").unwrap().to_owned();

        let entry = accept(&hub, &token, "esphome", &mac);
        assert_eq!(entry["name"], "Kitchen node");
        assert_eq!(entry["address"], "127.0.0.1");

        // Listed at once, and offline saying what to do: the device encrypts its API.
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["name"], "Kitchen node");
        assert_eq!(d["availability"]["code"], "refused");
        let reason = d["availability"]["reason"].as_str().unwrap();
        assert!(reason.contains("encrypts its API") && reason.contains(&mac), "{reason}");

        // The key entered: connected at once (no waiting for a retry), described, live.
        let put = hub.request(
            "PUT",
            &format!("/api/v1/adapters/esphome/secrets/{mac}"),
            Some(&token),
            Some(&json!({"value": EsphomeOptions::KEY})),
        );
        assert_eq!(put.status, 204, "{}", put.text);
        let d = device_when(&hub, &token, &id, |d| {
            d["availability"]["state"] == "online" && d["state"]["temperature"]["value"].is_number()
        });
        let features: Vec<&str> =
            d["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
        for key in ["relay", "ceiling_light", "temperature", "motion", "blind", "restart", "target_temperature", "mode"]
        {
            assert!(features.contains(&key), "{key} in {features:?}");
        }
        assert_eq!(d["state"]["relay"]["value"], false);

        // A command reaches the device; its new state comes back. The device's own changes too.
        command(&hub, &token, &id, json!({"set": {"relay": true}}));
        sim.wait_for_command("switch relay state=true", T);
        device_when(&hub, &token, &id, |d| d["state"]["relay"]["value"] == true);
        sim.set_sensor(TEMPERATURE, 23.5);
        device_when(&hub, &token, &id, |d| d["state"]["temperature"]["value"] == 23.5);

        // A reboot: reconnected before anyone notices (it stays online), state still live.
        sim.reboot();
        sim.set_switch_physically(RELAY, false);
        device_when(&hub, &token, &id, |d| d["state"]["relay"]["value"] == false);
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        assert_eq!(d["availability"]["state"], "online");

        // Powered off: offline after 3 s of silence, saying why; back when it returns.
        let port = sim.port();
        drop(sim);
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 3 s");
        let sim = EsphomeSim::start_on(port, EsphomeOptions::encrypted());
        sim.announce(&net);
        device_when(&hub, &token, &id, |d| d["availability"]["state"] == "online");
    });
}

#[test]
fn a_shelly_with_a_password_is_added_and_controlled_and_a_silent_one_does_not_hold_up_the_others() {
    in_namespace(
        "a_shelly_with_a_password_is_added_and_controlled_and_a_silent_one_does_not_hold_up_the_others",
        || {
            let (hub, token) = wifi_hub();
            let net = Browser::start(&["lo".to_owned()]).unwrap();
            let options = ShellyOptions::plus_1pm().with_name("Kettle").with_password("correct horse");
            let sim = ShellySim::start(options.clone());
            sim.announce(&net);
            let id = sim.device_id();
            let key = sim.id().to_owned();
            // A second Shelly, announced the older way (`_http._tcp`), with no password.
            let cover = ShellySim::start(ShellyOptions::plus_2pm_cover());
            cover.announce_http(&net);
            let cover_id = cover.device_id();

            let entry = accept(&hub, &token, "shelly", &key);
            assert_eq!(entry["manufacturer"], "Shelly");
            assert_eq!(entry["address"], "127.0.0.1");
            accept(&hub, &token, "shelly", cover.id());

            // The Kettle asks for a password: listed at once, offline, saying what to do.
            let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
            assert_eq!(d["availability"]["code"], "refused", "{d}");
            let reason = d["availability"]["reason"].as_str().unwrap();
            assert!(reason.contains("password"), "{reason}");
            // A wrong one is refused in its own words; the right one connects at once.
            let put = |value: &str| {
                let a = hub.request(
                    "PUT",
                    &format!("/api/v1/adapters/shelly/secrets/{key}"),
                    Some(&token),
                    Some(&json!({"value": value})),
                );
                assert_eq!(a.status, 204, "{}", a.text);
            };
            put("wrong horse");
            device_when(&hub, &token, &id, |d| {
                d["availability"]["reason"] != reason && d["availability"]["code"] == "refused"
            });
            put("correct horse");
            let d = device_when(&hub, &token, &id, |d| {
                d["availability"]["state"] == "online" && d["state"]["power"]["value"].is_number()
            });
            assert_eq!(d["name"], "Kettle");
            let features: Vec<&str> =
                d["features"].as_array().unwrap().iter().map(|f| f["key"].as_str().unwrap()).collect();
            for key in ["state", "power", "energy", "action"] {
                assert!(features.contains(&key), "{key} in {features:?}");
            }

            // A command reaches the device (authenticated); its state and power come back live.
            command(&hub, &token, &id, json!({"set": {"state": true}}));
            let params = sim.wait_for_call("Switch.Set", T);
            assert_eq!((params["id"].clone(), params["on"].clone()), (json!(0), json!(true)));
            device_when(&hub, &token, &id, |d| d["state"]["state"]["value"] == true);
            sim.set_power(1850.0);
            device_when(&hub, &token, &id, |d| d["state"]["power"]["value"] == 1850.0);
            // Its button, pushed: an event in the history.
            sim.press_button();
            hub.wait_for(T, || {
                let h = hub.get(&format!("/api/v1/devices/{id}/history?feature=action"), Some(&token));
                let entries = h.body["entries"].as_array().cloned().unwrap_or_default();
                entries.iter().any(|e| e["kind"] == "event" && e["value"] == "single").then_some(())
            });

            // The Kettle freezes (connected, silent). The cover is served meanwhile; then the
            // Kettle is offline with the reason.
            device_when(&hub, &token, &cover_id, |d| d["availability"]["state"] == "online");
            sim.freeze(true);
            command(&hub, &token, &cover_id, json!({"set": {"cover_position": 30}}));
            let params = cover.wait_for_call("Cover.GoToPosition", T);
            assert_eq!(params["pos"], 30);
            device_when(&hub, &token, &cover_id, |d| d["state"]["cover_position"]["value"] == 30.0);
            let kettle = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
            assert_eq!(
                kettle["availability"]["state"], "online",
                "the cover was served before the Kettle was given up"
            );
            let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
            assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 3 s");
            assert_eq!(d["availability"]["code"], "no_answer");

            // Unfrozen (or restarted): back.
            let port = sim.port();
            drop(sim);
            let sim = ShellySim::start_on(port, options);
            sim.announce(&net);
            device_when(&hub, &token, &id, |d| d["availability"]["state"] == "online");
            drop(cover);
        },
    );
}

#[test]
fn a_shelly_on_battery_stays_online_while_it_sleeps_and_is_read_when_it_wakes() {
    in_namespace("a_shelly_on_battery_stays_online_while_it_sleeps_and_is_read_when_it_wakes", || {
        let (hub, token) = wifi_hub();
        let options = ShellyOptions::plus_ht().with_wakeup_period(5);
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let sim = ShellySim::start(options.clone());
        sim.announce(&net);
        let id = sim.device_id();
        accept(&hub, &token, "shelly", sim.id());
        let d = device_when(&hub, &token, &id, |d| d["state"]["temperature"]["value"] == 21.5);
        assert_eq!(d["availability"]["state"], "online");
        assert_eq!(d["power_source"], "battery");
        assert_eq!(d["state"]["humidity"]["value"], 48.0);
        assert_eq!(d["state"]["battery"]["value"], 87.0);

        // Asleep (gone from the network) for longer than the 3 s a mains device may be silent:
        // still online, as it wakes every 5 s.
        let port = sim.port();
        drop(sim);
        drop(net);
        #[allow(clippy::disallowed_methods)] // a test's own thread, waiting through the sleep
        std::thread::sleep(Duration::from_secs(5));
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        assert_eq!(d["availability"]["state"], "online", "{d}");

        // Awake, announcing itself with a new reading: read at once.
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let sim = ShellySim::start_on(port, options.with_reading(19.0, 55.0));
        sim.announce(&net);
        device_when(&hub, &token, &id, |d| {
            d["state"]["temperature"]["value"] == 19.0 && d["state"]["humidity"]["value"] == 55.0
        });

        // It never wakes again: offline once two wakes are missed.
        drop(sim);
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 10 s");
    });
}

#[test]
fn a_shelly_password_entered_on_the_device_page_brings_it_online() {
    in_namespace("a_shelly_password_entered_on_the_device_page_brings_it_online", || {
        let (hub, token) = wifi_hub();
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let sim = ShellySim::start(ShellyOptions::plus_1pm().with_name("Kettle").with_password("correct horse"));
        sim.announce(&net);
        let id = sim.device_id();
        accept(&hub, &token, "shelly", sim.id());
        device_when(&hub, &token, &id, |d| d["availability"]["code"] == "refused");

        // The owner opens the device's page (a headless Chromium inside the namespace too).
        let b = WebBrowser::options().start();
        b.sign_in_with_session(&hub, &token);
        b.find("[data-testid=home-screen]");
        b.exec(&format!("location.hash = '#/device/{}'", id.replace(':', "%3A")), &[]);
        b.wait_text("[data-testid=diag-reason]", "asks for a password");
        b.wait_text("[data-testid=bind-key-section]", "Device password");

        // A wrong password is saved, and refused by the device in its words; the right one
        // brings the device online with its state.
        b.find("[data-testid=bind-key-input]").send_keys("wrong horse");
        b.find("[data-testid=bind-key-save]").click();
        b.wait_text("[data-testid=diag-reason]", "refused the password");

        // The device goes on refusing until the hub's next try is at least 15 s away: the save
        // made it try at once, then it waits 0.5–1, 1–2, 2–4, 4–8 and 8–16 s between tries, and
        // 15–30 s after the sixth. The right password then brings it online at once, long before
        // that (a wide margin, so a loaded machine's slow browser does not matter).
        let tries = |calls: &[(String, Value)]| calls.iter().filter(|(m, _)| m == "Shelly.GetDeviceInfo").count();
        let after_save = tries(&sim.calls());
        // (At most 30 s between tries, whatever happened before.)
        sim.wait_for_calls(Duration::from_secs(130), |calls| tries(calls) >= after_save + 5);
        let last_refusal = Instant::now();
        let input = b.find("[data-testid=bind-key-input]");
        input.clear();
        input.send_keys("correct horse");
        b.find("[data-testid=bind-key-save]").click();
        b.wait_text("[data-testid=diag-availability]", "Online");
        let waited = last_refusal.elapsed();
        assert!(
            waited < Duration::from_secs(15),
            "online {waited:?} after the last refusal: the new password waited for the backoff's next try"
        );
        b.wait_text("[data-testid=device-detail]", "W");
        assert!(!b.page_source().contains("correct horse"), "the password is not in the page");
        b.screenshot("shelly-password");
        let d = hub.get(&format!("/api/v1/devices/{id}"), Some(&token)).body;
        assert_eq!(d["availability"]["state"], "online", "{d}");
    });
}

#[test]
fn a_xiaomi_purifier_asks_for_its_token_then_is_read_and_controlled() {
    in_namespace("a_xiaomi_purifier_asks_for_its_token_then_is_read_and_controlled", || {
        let (hub, token) = wifi_hub();
        let net = Browser::start(&["lo".to_owned()]).unwrap();
        let sim = MiioSim::start(MiioOptions::default());
        sim.announce(&net);
        let id = sim.device_id().to_string();
        let did = sim.key();

        let entry = accept(&hub, &token, "miio", &did);
        assert_eq!(entry["manufacturer"], "Xiaomi");
        assert_eq!(entry["model"], "zhimi.airpurifier.mb3");
        assert_eq!(entry["address"], "127.0.0.1");

        // Without its token it cannot be spoken to: offline, saying so.
        let d = device_when(&hub, &token, &id, |d| d["availability"]["code"] == "refused");
        let reason = d["availability"]["reason"].as_str().unwrap();
        assert!(reason.contains("token") && reason.contains(&did), "{reason}");

        // The token entered: read (encrypted, over UDP), then live by polling.
        let put = hub.request(
            "PUT",
            &format!("/api/v1/adapters/miio/secrets/{did}"),
            Some(&token),
            Some(&json!({"value": MiioOptions::TOKEN})),
        );
        assert_eq!(put.status, 204, "{}", put.text);
        let d = device_when(&hub, &token, &id, |d| {
            d["availability"]["state"] == "online" && d["state"]["pm25"]["value"].is_number()
        });
        assert_eq!(d["name"], "Mi Air Purifier 3H");
        assert_eq!(d["state"]["pm25"]["value"], 12.0);
        sim.set_physically(3, 6, json!(48));
        device_when(&hub, &token, &id, |d| d["state"]["pm25"]["value"] == 48.0);

        // A command: the mode, set on the device.
        command(&hub, &token, &id, json!({"set": {"mode": "favorite"}}));
        sim.wait_for_call("set_properties", T, |c| c.params[0]["piid"] == 5 && c.params[0]["value"] == 2);
        device_when(&hub, &token, &id, |d| d["state"]["mode"]["value"] == "favorite");

        // Unplugged: offline with the reason.
        drop(sim);
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 3 s");
    });
}

#[test]
fn a_yeelight_found_by_its_search_is_controlled_within_its_quota() {
    in_namespace("a_yeelight_found_by_its_search_is_controlled_within_its_quota", || {
        let (hub, token) = wifi_hub();
        let options = YeelightOptions { multicast: true, ..YeelightOptions::color() };
        let sim = YeelightSim::start(options.clone());
        let id = sim.device_id().to_string();

        let entry = accept(&hub, &token, "yeelight", &sim.key());
        assert_eq!(entry["manufacturer"], "Yeelight");
        assert_eq!(entry["model"], "color");
        let d = device_when(&hub, &token, &id, |d| d["state"]["brightness"]["value"].is_number());
        assert_eq!(d["availability"]["state"], "online");

        // A slider dragged: 100 brightness commands at once. The bulb takes 60 a minute per
        // connection; the last value is applied and the bulb never refuses one.
        for b in 1..=100 {
            command(&hub, &token, &id, json!({"set": {"brightness": b}}));
        }
        device_when(&hub, &token, &id, |d| d["state"]["brightness"]["value"] == 100.0);
        assert!(sim.refusals().is_empty(), "{:?}", sim.refusals());
        let sent = sim.requests_of("set_bright").len();
        assert!(sent < 60, "{sent} set_bright sent: the excess was coalesced");

        // Switched off at the wall: offline after 3 s, saying why; back when it returns.
        let port = sim.port();
        drop(sim);
        let d = device_when(&hub, &token, &id, |d| d["availability"]["state"] == "offline");
        assert_eq!(d["availability"]["reason"], "no answer from 127.0.0.1 for 3 s");
        let _sim = YeelightSim::start_on(port, options);
        device_when(&hub, &token, &id, |d| d["availability"]["state"] == "online");
    });
}
