//! Crash safety: `kill -9` at random moments while about 1,000 state changes a second stream in.
//!
//! One hub with its built-in broker, the zigbee2mqtt simulator on it (the climate sensor's
//! temperature changes on every message, paced at [`RATE`] a second by a generator thread), the
//! demo home, a durable automation run, and the cloud link to a mosquitto of the test's own (TLS,
//! an account) sharing the climate sensor, with a persistent QoS 1 subscriber playing the cloud
//! service. Each round streams for a random while, reading history as it goes, then kills the
//! hub with SIGKILL and checks, before and after starting it again:
//!
//! - the database file passes `PRAGMA integrity_check`;
//! - every change history had returned before the kill is in the file and shown again after the
//!   restart ("reported as persisted" = returned by the history API, which flushes the writer
//!   first and reads only committed rows);
//! - a run waiting in a `delay` when the hub died is listed again after the restart, and acts
//!   exactly once: at its deadline while the hub is up, or at start when the deadline passed
//!   while the hub was down (both are played, in turn). Kills avoid the instant a run acts while
//!   the hub is up: a kill between an action and the record of its end is another question
//!   (the action may or may not have reached the device) and would make "once" unobservable;
//! - after the last round, once the cloud link's backlog is empty, every change of the shared
//!   sensor that history holds reached the cloud subscriber, first arrivals in order, none lost.
//!   The link is at-least-once (QoS 1, an outbox row is deleted when the broker acknowledged it),
//!   so a change sent just before a kill may arrive twice: duplicates are counted, not refused.
//!
//! The outbox cap and the drain rate are raised for the test (`outbox_max`, `drain_per_sec`), so
//! the only way to lose a change for the cloud is a crash, not the documented drop policy.
//!
//! Rounds: 5 by default (about 40 s); `HEARTH_CRASH_ROUNDS=200` is the issue's
//! long run.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use hearth_tests::mosquitto::Mosquitto;
use hearth_tests::sim::Zigbee2mqttSim;
use hearth_tests::sim::zigbee2mqtt::CLIMATE;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);
const USER: &str = "hub";
const PASSWORD: &str = "a long cloud password";
const HUB_ID: &str = "crash";
/// State changes a second the generator aims at.
const RATE: u64 = 1000;
/// The durable run's delay.
const DELAY_MS: i64 = 6_000;
/// A run that is to act at start is killed at least this long before its deadline.
const DOWN_BEFORE_MS: i64 = 2_000;
/// The automation whose runs cross the kills.
const AUTOMATION: &str = "durable";
/// The light it toggles.
const LIGHT: &str = "demo:kitchen_light";

/// One state change: (feature, at in ms, value normalised).
type Change = (String, i64, String);

fn now_ms() -> i64 {
    hearth_sdk::Timestamp::now().as_millis()
}

fn at_ms(v: &Value) -> i64 {
    serde_json::from_value::<hearth_sdk::Timestamp>(v.clone()).unwrap().as_millis()
}

/// A value as text, numbers to three decimals (a number read back from JSON text may gain or
/// lose a `.0`).
fn norm(v: &Value) -> String {
    match v.as_f64() {
        Some(f) => format!("{f:.3}"),
        None => v.to_string(),
    }
}

fn random(seed: &mut u64, below: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed % below
}

/// Every state change of the climate sensor at or after `from`, oldest first. History answers
/// with the newest entries of a range and says when older ones were left out: it is read page
/// after page, back in time.
fn history(hub: &Hub, token: &str, from: i64) -> Vec<Change> {
    let mut pages: Vec<Vec<Change>> = Vec::new();
    let mut seen = HashSet::new();
    let mut to = i64::MAX;
    loop {
        let a =
            hub.get(&format!("/api/v1/devices/{}/history?from={from}&to={to}&limit=10000", CLIMATE.id()), Some(token));
        assert_eq!(a.status, 200, "{}", a.text);
        let entries = a.body["entries"].as_array().unwrap();
        let mut page = Vec::new();
        for e in entries.iter().filter(|e| e["kind"] == "state") {
            let c = (e["feature"].as_str().unwrap().to_owned(), at_ms(&e["at"]), norm(&e["value"]));
            if seen.insert(c.clone()) {
                page.push(c);
            }
        }
        pages.push(page);
        if a.body["truncated"] != true {
            return pages.into_iter().rev().flatten().collect();
        }
        let oldest = at_ms(&entries[0]["at"]);
        // A page full of one millisecond would never end: history never holds that many.
        assert!(oldest < to, "a page of 10,000 changes in one millisecond");
        to = oldest;
    }
}

/// The climate sensor's changes at or after `from` in the database file, which must pass
/// `PRAGMA integrity_check`.
fn in_file(db: &Path, from: i64, round: usize) -> BTreeSet<Change> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok", "round {round}: the database is damaged");
    let mut stmt = conn
        .prepare(
            "SELECT s.feature, h.at, h.value FROM history h JOIN series s ON s.id = h.series \
             WHERE s.device = ?1 AND h.at >= ?2",
        )
        .unwrap();
    let rows = stmt
        .query_map(rusqlite::params![CLIMATE.id(), from], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
        })
        .unwrap();
    rows.map(|r| {
        let (feature, at, value) = r.unwrap();
        (feature, at, norm(&serde_json::from_str(&value).unwrap()))
    })
    .collect()
}

/// When the durable automation acted: the `at` of each change of the light it caused.
fn acted(hub: &Hub, token: &str) -> Vec<i64> {
    let a = hub.get(&format!("/api/v1/devices/{LIGHT}/history?feature=state&limit=10000"), Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["context"]["origin"] == json!({"kind": "automation", "id": AUTOMATION}))
        .map(|e| at_ms(&e["at"]))
        .collect()
}

fn waiting_runs(hub: &Hub, token: &str) -> Vec<Value> {
    let a = hub.get("/api/v1/automation-runs", Some(token));
    assert_eq!(a.status, 200, "{}", a.text);
    a.body.as_array().unwrap().clone()
}

/// A run of the durable automation, started by a call of its webhook.
struct Run {
    /// Its deadline is not before this (the press was sent after it).
    due_from: i64,
    /// Nor after this (it was listed, so started, before it).
    due_by: i64,
    /// Whether the hub is down when the deadline passes (it then acts at start): killed in the
    /// round after the one the run started in, and started again after the deadline.
    at_start: bool,
    /// The round it started in.
    round: usize,
}

/// The load: the simulator's climate sensor reports a new temperature [`RATE`] times a second
/// while `go` is set.
struct Load {
    sim: Zigbee2mqttSim,
    go: AtomicBool,
    stop: AtomicBool,
    sent: AtomicU64,
}

fn generator(load: Arc<Load>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n: u64 = 0;
        let mut started: Option<(Instant, u64)> = None;
        while !load.stop.load(Ordering::SeqCst) {
            if !load.go.load(Ordering::SeqCst) {
                started = None;
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let (t0, n0) = *started.get_or_insert((Instant::now(), n));
            let due = n0 + t0.elapsed().as_millis() as u64 * RATE / 1000;
            while n < due && load.go.load(Ordering::SeqCst) {
                n += 1;
                // 10.00 to 29.99 °C: each value differs from the one before.
                let t = 10.0 + (n % 2000) as f64 / 100.0;
                load.sim.set_state(CLIMATE.name, json!({"temperature": t}));
                load.sent.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// The cloud service: a persistent session (clean session off), QoS 1, on the broker's plain
/// listener; collects the sensor's state changes in the order they arrive.
fn cloud_subscriber(broker: SocketAddr) -> Arc<Mutex<Vec<Change>>> {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscribed = Arc::new(AtomicBool::new(false));
    let (out, sub) = (seen.clone(), subscribed.clone());
    let mut opts = MqttOptions::new("crash-cloud-service", broker.ip().to_string(), broker.port());
    opts.set_clean_session(false);
    opts.set_credentials(USER, PASSWORD);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = Client::new(opts, 100);
    let topic = format!("hearth/{HUB_ID}/devices/{}/state", CLIMATE.id());
    std::thread::spawn(move || {
        for ev in connection.iter() {
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(topic.clone(), QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => sub.store(true, Ordering::SeqCst),
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                    if v["type"] == "state_changed" {
                        let c =
                            (v["feature"].as_str().unwrap_or_default().to_owned(), at_ms(&v["at"]), norm(&v["new"]));
                        out.lock().unwrap().push(c);
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    let deadline = Instant::now() + T;
    while !subscribed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the cloud subscriber did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

fn config(broker: &Mosquitto, ca: &Path) -> String {
    format!(
        "[adapters.demo]\nenabled = true\ninterval_secs = 1\n\n\
         [cloud]\nenabled = true\nurl = \"mqtts://localhost:{}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n\
         hub_id = \"{HUB_ID}\"\ndrain_per_sec = 5000\noutbox_max = 10000000\n\n\
         [cloud.share]\ndevices = [\"{}\"]\n\n[cloud.tls]\nca_file = \"{}\"\n",
        broker.addrs()[1].port(),
        CLIMATE.id(),
        ca.display()
    )
}

/// Waits until history holds a temperature the hub received after `since`: the simulator is
/// connected again and the stream flows.
fn wait_flowing(hub: &Hub, token: &str, since: i64) {
    hub.wait_for(T, || history(hub, token, since).iter().any(|c| c.0 == "temperature").then_some(()));
}

#[test]
fn kill_9_during_1000_changes_a_second_loses_nothing_reported_persisted() {
    let rounds: usize = std::env::var("HEARTH_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    // No cap on a client's queue: the broker must not be the one that drops messages.
    let broker = Mosquitto::start_tls_configured(
        dir.path(),
        USER,
        PASSWORD,
        "DNS:localhost,IP:127.0.0.1",
        "max_queued_messages 0\n",
        "",
    );
    let cloud = cloud_subscriber(broker.addrs()[0]);
    let mut hub = Hub::start_with_config(&config(&broker, &dir.path().join("ca.pem")), &[]);
    let token = hub.onboard();
    let a = hub.post(
        "/api/v1/automations",
        Some(&token),
        json!({"id": AUTOMATION, "name": "Durable", "triggers": [{"webhook": {"id": AUTOMATION}}],
               "actions": [{"delay": format!("{}s", DELAY_MS / 1000)},
                           {"set": {"devices": [LIGHT], "toggle": ["state"]}}]}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    let load = Arc::new(Load {
        sim: Zigbee2mqttSim::start(hub.mqtt.unwrap()),
        go: AtomicBool::new(true),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
    });
    hub.wait_for(T, || {
        (hub.get(&format!("/api/v1/devices/{}", CLIMATE.id()), Some(&token)).status == 200).then_some(())
    });
    let thread = generator(load.clone());
    let started_at = Instant::now();

    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let (mut checked, mut kills, mut resumed) = (0usize, 0usize, 0usize);
    let mut runs: Vec<Run> = Vec::new();
    let mut pending: Option<usize> = None;
    let mut rates: Vec<f64> = Vec::new();
    let mut since = now_ms();
    for round in 0..rounds {
        wait_flowing(&hub, &token, since);
        let stream_from = now_ms();
        let mut run_for = Duration::from_millis(300 + random(&mut seed, 1200));

        // A durable run: started shortly before a kill, alternately acting while the hub is up
        // and at start after its deadline passed while the hub was down.
        if pending.is_none() && round % 3 == 0 {
            let due_from = now_ms() + DELAY_MS;
            // A webhook, not a button: the demo's button also presses itself now and then.
            let a = hub.request_text("POST", &format!("/api/v1/webhooks/{AUTOMATION}"), Some(&token), "");
            assert_eq!(a.status, 202, "{}", a.text);
            hub.wait_for(T, || (waiting_runs(&hub, &token).len() == 1).then_some(()));
            runs.push(Run { due_from, due_by: now_ms() + DELAY_MS, at_start: runs.len() % 2 == 1, round });
            pending = Some(runs.len() - 1);
            run_for = Duration::from_millis(50 + random(&mut seed, 300));
        } else if let Some(i) = pending {
            let left = runs[i].due_by - now_ms();
            if runs[i].at_start {
                // Kill well before the deadline; the hub stays down past it.
                run_for = run_for.min(Duration::from_millis((left - DOWN_BEFORE_MS).max(50) as u64));
            } else if !runs[i].at_start && left < run_for.as_millis() as i64 + 5000 {
                // Let it act while the hub is up, then kill a little later.
                hub.wait_for(Duration::from_millis(left.max(0) as u64) + T, || {
                    (acted(&hub, &token).len() > i && waiting_runs(&hub, &token).is_empty()).then_some(())
                });
                pending = None;
                run_for = Duration::from_millis(100 + random(&mut seed, 500));
            }
        }

        // Stream, reading what is persisted as it goes; then SIGKILL.
        let start = Instant::now();
        let mut persisted = BTreeSet::new();
        while start.elapsed() < run_for {
            persisted.extend(history(&hub, &token, since));
            std::thread::sleep(Duration::from_millis(50));
        }
        hub.kill9();
        let killed = now_ms();
        load.go.store(false, Ordering::SeqCst);
        kills += 1;

        let stored = in_file(&hub.db_path(), since, round);
        let lost: Vec<_> = persisted.difference(&stored).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} changes history had returned are not in the file after kill -9, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        assert!(persisted.iter().any(|c| c.0 == "temperature"), "round {round}: the stream produced no changes");
        checked += persisted.len();
        let streamed = stored.iter().filter(|c| c.0 == "temperature" && c.1 >= stream_from && c.1 <= killed).count();
        let rate = streamed as f64 * 1000.0 / (killed - stream_from).max(1) as f64;
        rates.push(rate);
        eprintln!(
            "crash round {round}: killed after {} ms of stream; {streamed} changes persisted in it ({rate:.0}/s); \
             {} reported before the kill, all in the file",
            killed - stream_from,
            persisted.len()
        );

        if let Some(i) = pending
            && runs[i].at_start
            && runs[i].round < round
        {
            // Down past the deadline.
            while now_ms() < runs[i].due_by + 500 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        hub.spawn();
        load.go.store(true, Ordering::SeqCst);
        let after: BTreeSet<Change> = history(&hub, &token, since).into_iter().collect();
        let missing: Vec<_> = persisted.difference(&after).collect();
        assert!(
            missing.is_empty(),
            "round {round}: the restarted hub does not show {} persisted changes, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        if let Some(i) = pending {
            if now_ms() > runs[i].due_by {
                // Its deadline passed while the hub was down: it acts at start, once.
                hub.wait_for(T, || {
                    (acted(&hub, &token).len() > i && waiting_runs(&hub, &token).is_empty()).then_some(())
                });
                let acts = acted(&hub, &token);
                assert_eq!(acts.len(), i + 1, "round {round}: a run resumed at start acted more than once: {acts:?}");
                pending = None;
            } else {
                let listed = waiting_runs(&hub, &token);
                assert!(
                    listed.len() == 1 && listed[0].to_string().contains(AUTOMATION),
                    "round {round}: the waiting run is not back after kill -9: {listed:?}"
                );
                assert!(acted(&hub, &token).len() == i, "round {round}: the run acted before its deadline");
            }
            resumed += 1;
        }
        since = killed;
    }

    // The last waiting run acts once, when due.
    if let Some(i) = pending {
        let left = (runs[i].due_by - now_ms()).max(0) as u64;
        hub.wait_for(Duration::from_millis(left) + T, || {
            (acted(&hub, &token).len() > i && waiting_runs(&hub, &token).is_empty()).then_some(())
        });
    }
    load.go.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    let acts = acted(&hub, &token);
    assert_eq!(acts.len(), runs.len(), "each durable run acts exactly once: {acts:?}");
    for (i, (run, at)) in runs.iter().zip(&acts).enumerate() {
        assert!(
            *at >= run.due_from,
            "durable run {i} (started in round {}, {}) acted at {at}, {} ms before its deadline",
            run.round,
            if run.at_start { "to act at start" } else { "to act while up" },
            run.due_from - at
        );
    }

    // The cloud got every change of the shared sensor that history holds, in order.
    let status = hub.wait_for(Duration::from_secs(120), || {
        let s = hub.get("/api/v1/cloud", Some(&token)).body;
        (s["connected"] == true && s["backlog"] == 0).then_some(s)
    });
    assert_eq!(status["dropped"], 0, "{status}");
    let all = history(&hub, &token, 0);
    let shared: Vec<&Change> = all.iter().filter(|c| c.0 == "temperature").collect();
    let deadline = Instant::now() + T;
    let got = loop {
        let got = cloud.lock().unwrap().clone();
        let known: HashSet<&Change> = got.iter().collect();
        let missing: Vec<&&Change> = shared.iter().filter(|c| !known.contains(**c)).collect();
        if missing.is_empty() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} changes of the shared sensor never reached the cloud, e.g. {:?}",
            missing.len(),
            shared.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut first = HashSet::new();
    let order: Vec<&Change> = got.iter().filter(|c| first.insert(*c)).collect();
    let wanted: HashSet<&Change> = shared.iter().copied().collect();
    let order: Vec<&Change> = order.into_iter().filter(|c| wanted.contains(c)).collect();
    assert!(order.windows(2).all(|w| w[0].1 <= w[1].1), "the cloud got the changes out of order");
    let twice = got.len() - first.len();

    load.stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    let rate = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    eprintln!(
        "crash: {rounds} rounds, {kills} kills in {:.0} s; {} changes sent by the simulator, {} persisted \
         (history), {checked} reported before a kill and checked in the file and after the restart; \
         persisted {rate:.0} changes/s on average per round (slowest round {slowest:.0}/s); the cloud got \
         {} of {} shared changes ({twice} twice); {} durable runs, resumed after a kill {resumed} times, each \
         acted once; lost: 0",
        started_at.elapsed().as_secs_f64(),
        load.sent.load(Ordering::Relaxed),
        all.len(),
        shared.len(),
        shared.len(),
        runs.len(),
    );
}
