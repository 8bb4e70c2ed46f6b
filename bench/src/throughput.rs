//! Throughput: simulated zigbee2mqtt temperature sensors whose value changes with every message,
//! stepped up in rate; each step checks that every update reached a WebSocket client (signed in
//! with the owner's token) and history, and that nothing was still arriving 2 s after the last
//! publish.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rumqttc::{Client, QoS};
use serde_json::{Value, json};

use crate::hub::Hub;
use crate::z2m::{self, Bridge, Device, Kind};

/// Events still arriving this long after the last publish are a backlog.
pub const BACKLOG_AFTER: Duration = Duration::from_secs(2);

/// What one step gave.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub rate: u32,
    pub sent: u64,
    /// What the generator reached: messages over the time from the first to the last publish.
    pub generator_rate: f64,
    pub websocket: u64,
    pub history: u64,
    /// `snapshot` messages with reason `lagged`: the hub's bus dropped events for the socket.
    pub lagged: u64,
    /// From the last publish to the last event or history row seen.
    pub drain_s: f64,
    pub backlog: bool,
    pub cpu_ms_per_1000: f64,
    pub rss_bytes: u64,
    pub complete: bool,
}

/// The WebSocket client: counts `state_changed` events of `temperature`.
struct WsCounter {
    count: Arc<AtomicU64>,
    lagged: Arc<AtomicU64>,
    /// Nanoseconds after `base` of the last counted event.
    last_ns: Arc<AtomicU64>,
    base: Instant,
    stop: Arc<AtomicBool>,
}

impl WsCounter {
    fn connect(addr: SocketAddr, token: &str) -> Result<WsCounter> {
        use tungstenite::Message;
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr} for the WebSocket"))?;
        let url = format!("ws://{addr}/api/v1/ws");
        let (mut socket, _) = tungstenite::client::client(url.as_str(), stream)
            .map_err(|e| anyhow!("the WebSocket handshake with {url} failed: {e}"))?;
        socket.send(Message::text(json!({"type": "auth", "token": token}).to_string()))?;
        socket.get_mut().set_read_timeout(Some(Duration::from_secs(10)))?;
        let next_json = |socket: &mut tungstenite::WebSocket<TcpStream>| -> Result<Value> {
            loop {
                match socket.read().context("reading from the WebSocket")? {
                    Message::Text(t) => return Ok(serde_json::from_str(&t).unwrap_or(Value::Null)),
                    Message::Close(_) => bail!("the hub closed the WebSocket"),
                    _ => {}
                }
            }
        };
        let ok = next_json(&mut socket)?;
        if ok["type"] != "auth_ok" {
            bail!("the WebSocket refused the owner's token: {ok}");
        }
        socket.send(Message::text(json!({"type": "subscribe"}).to_string()))?;
        loop {
            let m = next_json(&mut socket)?;
            if m["type"] == "snapshot" {
                break;
            }
        }
        socket.get_mut().set_read_timeout(Some(Duration::from_millis(200)))?;
        let w = WsCounter {
            count: Arc::new(AtomicU64::new(0)),
            lagged: Arc::new(AtomicU64::new(0)),
            last_ns: Arc::new(AtomicU64::new(0)),
            base: Instant::now(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (count, lagged, last_ns, base, stop) =
            (w.count.clone(), w.lagged.clone(), w.last_ns.clone(), w.base, w.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match socket.read() {
                    Ok(Message::Text(t)) => {
                        let t = t.as_str();
                        if t.contains("\"state_changed\"") && t.contains("\"feature\":\"temperature\"") {
                            count.fetch_add(1, Ordering::Relaxed);
                            let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                            last_ns.store(ns, Ordering::Relaxed);
                        } else if t.contains("\"snapshot\"") && t.contains("\"lagged\"") {
                            lagged.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(Message::Close(_)) => return,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                    Err(_) => return,
                }
            }
            let _ = socket.close(None);
        });
        Ok(w)
    }

    fn last_event(&self) -> Option<Instant> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(self.base + Duration::from_nanos(ns)),
        }
    }
}

impl Drop for WsCounter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One generator client and its share of the sensors, with each sensor's next value.
struct Publisher {
    client: Client,
    topics: Vec<String>,
    counters: Vec<u32>,
    next: usize,
    stop: Arc<AtomicBool>,
}

impl Publisher {
    /// The next sensor's next value: 15.00 to 24.99 °C in steps of 0.01, never twice the same in a row.
    fn publish_next(&mut self) -> Result<()> {
        let i = self.next;
        self.next = (self.next + 1) % self.topics.len();
        self.counters[i] = self.counters[i].wrapping_add(1);
        let hundredths = 1500 + self.counters[i] % 1000;
        let payload = format!("{{\"temperature\":{}.{:02}}}", hundredths / 100, hundredths % 100);
        self.client.publish(self.topics[i].as_str(), QoS::AtMostOnce, false, payload).context("publishing a state")
    }

    /// Publishes `count` messages at `rate` per second (in 1 ms batches); returns when the last went.
    fn run(&mut self, rate: f64, count: u64) -> Result<Instant> {
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(count);
            while sent < due {
                self.publish_next()?;
                sent += 1;
            }
            if sent < count {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        Ok(Instant::now())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// Raw history rows in the hub's database, read through a read-only connection.
struct HistoryRows {
    path: PathBuf,
}

impl HistoryRows {
    fn conn(&self) -> Result<rusqlite::Connection> {
        let c = rusqlite::Connection::open_with_flags(&self.path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read-only", self.path.display()))?;
        c.busy_timeout(Duration::from_secs(10))?;
        Ok(c)
    }

    fn last_id(&self) -> Result<i64> {
        Ok(self.conn()?.query_row("SELECT COALESCE(MAX(id), 0) FROM history", [], |r| r.get(0))?)
    }

    fn since(&self, id: i64) -> Result<u64> {
        let n: i64 = self.conn()?.query_row("SELECT COUNT(*) FROM history WHERE id > ?1", [id], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// `used_bytes` of `GET /api/v1/storage`: the database's pages in use.
pub fn used_bytes(hub: &Hub, token: &str) -> Result<u64> {
    let (status, answer) = hub.request("GET", "/api/v1/storage", Some(token), None)?;
    if status != 200 {
        bail!("GET /api/v1/storage answered {status}: {answer}");
    }
    answer["used_bytes"].as_u64().ok_or_else(|| anyhow!("GET /api/v1/storage has no used_bytes: {answer}"))
}

/// The sensors on a running hub, the generator's clients and the WebSocket client.
pub struct Throughput {
    _bridge: Bridge,
    publishers: Vec<Publisher>,
    ws: WsCounter,
    history: HistoryRows,
    /// Resident memory once every sensor reported once, after 3 idle seconds.
    pub rss_settled: u64,
    /// How long the hub took to list the sensors.
    pub listed_after: Duration,
    pub devices: usize,
}

/// What the whole run gave beside its steps.
#[derive(Debug, Clone)]
pub struct Summary {
    pub history_rows: u64,
    pub used_bytes_added: i64,
}

impl Throughput {
    /// Simulates `devices` temperature sensors, waits until the hub lists them and has a value of
    /// each, measures memory after 3 idle seconds, and connects the WebSocket client and the
    /// generator's `publishers` clients.
    pub fn setup(hub: &Hub, token: &str, devices: usize, publishers: usize) -> Result<Throughput> {
        let sensors = z2m::devices(Kind::Temperature, devices);
        let bridge = Bridge::start(hub.mqtt, &sensors, |_, _, _| {})?;
        let ids: Vec<String> = sensors.iter().map(Device::id).collect();
        let listed_after = z2m::wait_listed(hub, token, &ids, Duration::from_secs(120))?;
        let mut pubs = Vec::new();
        for p in 0..publishers {
            let (client, connection) =
                crate::load::connect_with(z2m::options(&format!("hearth-bench-generator-{p}"), hub.mqtt), 10_000);
            let stop = Arc::new(AtomicBool::new(false));
            crate::load::drive(connection, stop.clone(), |_, _| {});
            let topics: Vec<String> = sensors.iter().skip(p).step_by(publishers).map(Device::topic).collect();
            let counters = vec![0; topics.len()];
            pubs.push(Publisher { client, topics, counters, next: 0, stop });
        }
        // Each sensor reports once.
        for p in &mut pubs {
            for _ in 0..p.topics.len() {
                p.publish_next()?;
            }
        }
        z2m::wait_reported(hub, token, &ids, "temperature", Duration::from_secs(60))?;
        std::thread::sleep(Duration::from_secs(3));
        let rss_settled = hub.rss_bytes()?;
        let ws = WsCounter::connect(hub.http, token)?;
        Ok(Throughput {
            _bridge: bridge,
            publishers: pubs,
            ws,
            history: HistoryRows { path: hub.db_path() },
            rss_settled,
            listed_after,
            devices,
        })
    }

    /// Runs the steps in order and stops after the first that is not complete; returns them and
    /// the history rows and bytes added over all of them.
    pub fn run(
        &mut self,
        hub: &Hub,
        token: &str,
        rates: &[u32],
        seconds: u64,
        ticks_per_s: u64,
    ) -> Result<(Vec<StepResult>, Summary)> {
        let first_id = self.history.last_id()?;
        let used_before = used_bytes(hub, token)?;
        let mut steps = Vec::new();
        for &rate in rates {
            eprintln!("hearth-bench: throughput, {rate} msg/s for {seconds} s over {} sensors", self.devices);
            let step = self.step(hub, rate, seconds, ticks_per_s)?;
            let complete = step.complete;
            steps.push(step);
            if !complete {
                break;
            }
        }
        let history_rows = self.history.since(first_id)?;
        let used_after = used_bytes(hub, token)?;
        let used_bytes_added = i64::try_from(used_after).unwrap_or(i64::MAX) - i64::try_from(used_before).unwrap_or(0);
        Ok((steps, Summary { history_rows, used_bytes_added }))
    }

    fn step(&mut self, hub: &Hub, rate: u32, seconds: u64, ticks_per_s: u64) -> Result<StepResult> {
        let ws0 = self.ws.count.load(Ordering::Relaxed);
        let lagged0 = self.ws.lagged.load(Ordering::Relaxed);
        let id0 = self.history.last_id()?;
        let cpu0 = hub.cpu_ticks()?;
        let n = self.publishers.len() as u64;
        let total = u64::from(rate) * seconds;
        let started = Instant::now();
        let rss = Arc::new(AtomicU64::new(0));
        let ends: Vec<Result<Instant>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .publishers
                .iter_mut()
                .enumerate()
                .map(|(i, p)| {
                    let count = total / n + u64::from((i as u64) < total % n);
                    let share = f64::from(rate) * count as f64 / total.max(1) as f64;
                    s.spawn(move || p.run(share, count))
                })
                .collect();
            // Resident memory near the end of the publishing.
            std::thread::sleep(Duration::from_millis(seconds * 1000 * 9 / 10));
            rss.store(hub.rss_bytes().unwrap_or(0), Ordering::Relaxed);
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a generator thread panicked"))))
                .collect()
        });
        let mut last_publish = started;
        for e in ends {
            last_publish = last_publish.max(e?);
        }
        let generator_rate = total as f64 / last_publish.duration_since(started).as_secs_f64().max(1e-9);

        // Drain: until everything arrived, or nothing more for 2 s (at most 30 s).
        let (mut ws, mut hist) = (0u64, 0u64);
        let mut last_progress = Instant::now();
        let mut hist_last_change = last_publish;
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let w = self.ws.count.load(Ordering::Relaxed) - ws0;
            let h = self.history.since(id0)?;
            if w != ws || h != hist {
                last_progress = Instant::now();
            }
            if h != hist {
                hist_last_change = Instant::now();
            }
            (ws, hist) = (w, h);
            let done = ws >= total && hist >= total;
            if done || last_progress.elapsed() > BACKLOG_AFTER || last_publish.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        let cpu1 = hub.cpu_ticks()?;
        let last_event = self.ws.last_event().unwrap_or(last_publish).max(last_publish);
        let drain = last_event.max(hist_last_change).duration_since(last_publish);
        let lagged = self.ws.lagged.load(Ordering::Relaxed) - lagged0;
        let backlog = drain > BACKLOG_AFTER;
        let cpu_ms = (cpu1 - cpu0) as f64 * 1000.0 / ticks_per_s as f64;
        Ok(StepResult {
            rate,
            sent: total,
            generator_rate,
            websocket: ws,
            history: hist,
            lagged,
            drain_s: drain.as_secs_f64(),
            backlog,
            cpu_ms_per_1000: cpu_ms * 1000.0 / total.max(1) as f64,
            rss_bytes: rss.load(Ordering::Relaxed),
            complete: ws == total && hist == total && lagged == 0 && !backlog,
        })
    }
}
