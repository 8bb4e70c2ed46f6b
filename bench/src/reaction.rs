//! Reaction latency: pairs of a simulated zigbee2mqtt motion sensor and light, one automation per
//! pair (the sensor's `occupancy` changes, the light is `set` on), and the time from the sensor's
//! state publish to the hub's `zigbee2mqtt/<light>/set`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::hub::Hub;
use crate::load::percentile_ms;
use crate::z2m::{self, Bridge, Device, Kind};

/// What one measured rate gave.
#[derive(Debug, Clone)]
pub struct ReactionResult {
    pub rate: u32,
    pub sent: u64,
    /// Publishes answered with a `/set` of their light.
    pub received: u64,
    pub lost: u64,
    /// `/set` commands with no publish waiting for them (a command for a lost one, matched late).
    pub unmatched: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub cpu_ms_per_1000: f64,
}

/// Publish times waiting for their command, per light, and what came of them.
#[derive(Debug, Default)]
struct Book {
    waiting: Vec<VecDeque<Instant>>,
    latencies_ns: Vec<u64>,
    unmatched: u64,
    last_arrival: Option<Instant>,
}

/// The pairs on a running hub.
pub struct Reaction {
    bridge: Bridge,
    sensors: Vec<Device>,
    occupancy: Vec<bool>,
    book: Arc<Mutex<Book>>,
    next: usize,
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reaction {
    /// Simulates `pairs` sensors and lights, waits until the hub lists them, creates one
    /// automation per pair through the API and checks that a flip reaches a light.
    pub fn setup(hub: &Hub, token: &str, pairs: usize) -> Result<Reaction> {
        let sensors = z2m::devices(Kind::Motion, pairs);
        let lights = z2m::devices(Kind::Light, pairs);
        let index: HashMap<String, usize> = lights.iter().enumerate().map(|(i, l)| (l.name.clone(), i)).collect();
        let book = Arc::new(Mutex::new(Book { waiting: vec![VecDeque::new(); pairs], ..Book::default() }));
        let on_set = {
            let book = book.clone();
            move |name: &str, _payload: &[u8], at: Instant| {
                let Some(&i) = index.get(name) else { return };
                let mut b = lock(&book);
                match b.waiting[i].pop_front() {
                    Some(sent) => {
                        let ns = u64::try_from(at.duration_since(sent).as_nanos()).unwrap_or(u64::MAX);
                        b.latencies_ns.push(ns);
                    }
                    None => b.unmatched += 1,
                }
                b.last_arrival = Some(at);
            }
        };
        let all: Vec<Device> = sensors.iter().chain(&lights).cloned().collect();
        let bridge = Bridge::start(hub.mqtt, &all, on_set)?;
        let ids: Vec<String> = all.iter().map(Device::id).collect();
        z2m::wait_listed(hub, token, &ids, Duration::from_secs(60))?;
        for s in &sensors {
            bridge.state(s, &json!({"battery": 100, "linkquality": 120, "occupancy": false}))?;
        }
        for l in &lights {
            bridge.state(l, &json!({"brightness": 254, "linkquality": 140, "state": "OFF"}))?;
        }
        let sensor_ids: Vec<String> = sensors.iter().map(Device::id).collect();
        z2m::wait_reported(hub, token, &sensor_ids, "occupancy", Duration::from_secs(30))?;

        for (i, (s, l)) in sensors.iter().zip(&lights).enumerate() {
            let automation = json!({
                "id": format!("bench_reaction_{i:05}"), "name": format!("Bench reaction {i}"),
                "mode": "parallel", "max_runs": 100,
                "triggers": [{"state": {"devices": [s.id()], "feature": "occupancy"}}],
                "actions": [{"set": {"devices": [l.id()], "values": {"state": true}}}],
            });
            let (status, answer) = hub.request("POST", "/api/v1/automations", Some(token), Some(&automation))?;
            if status != 201 {
                bail!("creating the reaction automation of pair {i} answered {status}: {answer}");
            }
        }
        let occupancy = vec![false; pairs];
        let mut r = Reaction { bridge, sensors, occupancy, book, next: 0 };
        r.wait_ready(hub, Duration::from_secs(15))?;
        // Every light on before measuring: each command then finds its light on already, and
        // the hub must still send it.
        r.send_paced(1000, pairs as u64)?;
        r.settle(Duration::from_secs(2));
        let pending: usize = lock(&r.book).waiting.iter().map(VecDeque::len).sum();
        let light_ids: Vec<String> = lights.iter().map(Device::id).collect();
        z2m::wait_state(hub, token, &light_ids, "state", Some(&json!(true)), Duration::from_secs(30)).with_context(
            || {
                format!(
                    "turning every light on ({pending} of {pairs} sensor flips had no /set back); the hub's log:\n{}",
                    hub.log_tail()
                )
            },
        )?;
        r.reset();
        Ok(r)
    }

    /// Flips sensors until a command comes back (at most `within`), then forgets what is pending.
    fn wait_ready(&mut self, hub: &Hub, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.flip()?;
            std::thread::sleep(Duration::from_millis(100));
            if !lock(&self.book).latencies_ns.is_empty() {
                std::thread::sleep(Duration::from_millis(300));
                self.reset();
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "no zigbee2mqtt/<light>/set came back within {} s of flipping a motion sensor: the hub's \
                     automations did not command the lights; its log:\n{}",
                    within.as_secs(),
                    hub.log_tail()
                );
            }
        }
    }

    fn reset(&self) {
        let mut b = lock(&self.book);
        for q in &mut b.waiting {
            q.clear();
        }
        b.latencies_ns.clear();
        b.unmatched = 0;
        b.last_arrival = None;
    }

    /// Flips the next sensor's occupancy (round-robin) and notes when.
    fn flip(&mut self) -> Result<()> {
        let i = self.next;
        self.next = (self.next + 1) % self.sensors.len();
        self.occupancy[i] = !self.occupancy[i];
        let payload = json!({"battery": 100, "linkquality": 120, "occupancy": self.occupancy[i]});
        lock(&self.book).waiting[i].push_back(Instant::now());
        self.bridge.state(&self.sensors[i], &payload)
    }

    fn send_paced(&mut self, rate: u32, count: u64) -> Result<()> {
        crate::load::paced(rate, count, |_| self.flip())
    }

    /// A warm-up second, then `seconds` at `rate`; waits for stragglers until 2 s pass with none.
    pub fn run(&mut self, rate: u32, seconds: u64, hub: &Hub, ticks_per_s: u64) -> Result<ReactionResult> {
        self.send_paced(rate, u64::from(rate))?;
        self.settle(Duration::from_secs(2));
        self.reset();

        let count = u64::from(rate) * seconds;
        let cpu_before = hub.cpu_ticks()?;
        self.send_paced(rate, count)?;
        self.settle(Duration::from_secs(2));
        let cpu_after = hub.cpu_ticks()?;

        let mut b = lock(&self.book);
        let lost: u64 = b.waiting.iter().map(|q| q.len() as u64).sum();
        let unmatched = b.unmatched;
        let mut lat = std::mem::take(&mut b.latencies_ns);
        drop(b);
        self.reset();
        lat.sort_unstable();
        let cpu_ms = (cpu_after - cpu_before) as f64 * 1000.0 / ticks_per_s as f64;
        Ok(ReactionResult {
            rate,
            sent: count,
            received: lat.len() as u64,
            lost,
            unmatched,
            p50_ms: percentile_ms(&lat, 0.50),
            p99_ms: percentile_ms(&lat, 0.99),
            max_ms: percentile_ms(&lat, 1.0),
            cpu_ms_per_1000: cpu_ms * 1000.0 / count as f64,
        })
    }

    /// Waits until nothing is pending, or `quiet` passes with no command (at most 30 s).
    fn settle(&self, quiet: Duration) {
        let started = Instant::now();
        let give_up = started + Duration::from_secs(30);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let b = lock(&self.book);
            let pending: usize = b.waiting.iter().map(VecDeque::len).sum();
            let last = b.last_arrival.unwrap_or(started).max(started);
            drop(b);
            if pending == 0 || last.elapsed() >= quiet || Instant::now() > give_up {
                return;
            }
        }
    }
}
