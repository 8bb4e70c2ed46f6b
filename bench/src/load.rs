//! The MQTT side: a bare relay (the floor), and a generator that publishes paced 64-byte payloads
//! and measures how long each takes to come back on another topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::hub::Hub;

/// Every payload is this long.
pub const PAYLOAD_BYTES: usize = 64;
/// The run id of warm-up and readiness messages, never measured.
const UNMEASURED: u32 = 0;

fn options(id: &str, broker: std::net::SocketAddr) -> MqttOptions {
    let mut opts = MqttOptions::new(id, broker.ip().to_string(), broker.port());
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(true);
    opts
}

/// A client and its connection, Nagle's algorithm off (as the hub's own clients have it).
fn connect(id: &str, broker: std::net::SocketAddr) -> (Client, rumqttc::Connection) {
    connect_with(options(id, broker), 10_000)
}

/// A client with these options and request queue, Nagle's algorithm off.
pub fn connect_with(opts: MqttOptions, capacity: usize) -> (Client, rumqttc::Connection) {
    let (client, mut connection) = Client::new(opts, capacity);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(network);
    (client, connection)
}

/// Calls `each` with 0, 1, ... `count - 1`, `rate` times per second, on schedule from the first
/// call (a late call is not made up for by waiting less later, only by not waiting).
pub fn paced(rate: u32, count: u64, mut each: impl FnMut(u64) -> Result<()>) -> Result<()> {
    let start = Instant::now();
    let step_ns = 1_000_000_000 / u64::from(rate.max(1));
    for seq in 0..count {
        let due = start + Duration::from_nanos(seq * step_ns);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        each(seq)?;
    }
    Ok(())
}

/// Drives a connection on its own thread; `on_publish` sees each incoming publish.
pub fn drive(
    mut connection: rumqttc::Connection,
    stop: Arc<AtomicBool>,
    mut on_publish: impl FnMut(&str, &[u8]) + Send + 'static,
) {
    std::thread::spawn(move || {
        for event in connection.iter() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => on_publish(&p.topic, &p.payload),
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
}

/// A subscribe-and-republish client with no hub logic: the broker's own cost.
pub struct Relay {
    client: Client,
    stop: Arc<AtomicBool>,
}

impl Relay {
    pub fn start(broker: std::net::SocketAddr, from: &str, to: &'static str, qos: QoS) -> Result<Relay> {
        let (client, connection) = connect("hearth-bench-relay", broker);
        client.subscribe(from, QoS::AtMostOnce).context("relay: subscribing")?;
        let stop = Arc::new(AtomicBool::new(false));
        let publisher = client.clone();
        // try_publish: this thread also drives the connection, so it must never block on its own queue.
        drive(connection, stop.clone(), move |_, payload| {
            let _ = publisher.try_publish(to, qos, false, payload.to_vec());
        });
        Ok(Relay { client, stop })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// What one measured run gave.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub mode: &'static str,
    pub rate: u32,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub throughput: f64,
    pub cpu_ms_per_1000: f64,
}

/// Publishes on `in_topic` and listens on `out_topic`.
pub struct Generator {
    client: Client,
    in_topic: &'static str,
    received: Receiver<(Vec<u8>, Instant)>,
    base: Instant,
    next_run: u32,
    stop: Arc<AtomicBool>,
}

impl Generator {
    pub fn connect(
        broker: std::net::SocketAddr,
        id: &str,
        in_topic: &'static str,
        out_topic: &str,
    ) -> Result<Generator> {
        let (client, connection) = connect(id, broker);
        client.subscribe(out_topic, QoS::AtMostOnce).context("generator: subscribing")?;
        let (tx, received): (Sender<(Vec<u8>, Instant)>, _) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        drive(connection, stop.clone(), move |_, payload| {
            let now = Instant::now();
            let _ = tx.send((payload.to_vec(), now));
        });
        Ok(Generator { client, in_topic, received, base: Instant::now(), next_run: 1, stop })
    }

    fn payload(&self, run: u32, seq: u64) -> Vec<u8> {
        let sent_ns = self.base.elapsed().as_nanos();
        let mut p = format!("{run:05} {seq:012} {sent_ns:020} ").into_bytes();
        p.resize(PAYLOAD_BYTES, b'.');
        p
    }

    /// Publishes until something comes back (at most `within`), then drops whatever is queued.
    pub fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.client.publish(self.in_topic, QoS::AtMostOnce, false, self.payload(UNMEASURED, 0))?;
            if self.received.recv_timeout(Duration::from_millis(100)).is_ok() {
                std::thread::sleep(Duration::from_millis(200));
                while self.received.try_recv().is_ok() {}
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nothing came back on the output topic within {} s of publishing on {}",
                    within.as_secs(),
                    self.in_topic
                );
            }
        }
    }

    /// Publishes `count` messages of run `run`, `rate` per second.
    fn send_paced(&self, run: u32, rate: u32, count: u64) -> Result<()> {
        paced(rate, count, |seq| {
            self.client.publish(self.in_topic, QoS::AtMostOnce, false, self.payload(run, seq))?;
            Ok(())
        })
    }

    /// A warm-up second, then `seconds` at `rate`; waits for stragglers (until 2 s pass with none).
    pub fn run(
        &mut self,
        mode: &'static str,
        rate: u32,
        seconds: u64,
        hub: &Hub,
        ticks_per_s: u64,
    ) -> Result<RunResult> {
        self.send_paced(UNMEASURED, rate, u64::from(rate))?;
        std::thread::sleep(Duration::from_millis(300));
        while self.received.try_recv().is_ok() {}

        let run = self.next_run;
        self.next_run += 1;
        let count = u64::from(rate) * seconds;
        let cpu_before = hub.cpu_ticks()?;
        let started = Instant::now();
        self.send_paced(run, rate, count)?;

        let mut seen = vec![false; usize::try_from(count)?];
        let mut latencies_ns: Vec<u64> = Vec::with_capacity(seen.len());
        let mut last_arrival = started;
        let give_up = Instant::now() + Duration::from_secs(30);
        while (latencies_ns.len() as u64) < count && Instant::now() < give_up {
            let (payload, at) = match self.received.recv_timeout(Duration::from_secs(2)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => bail!("the generator's connection thread ended"),
            };
            let Some((r, seq, sent_ns)) = parse(&payload) else { continue };
            if r != run || seq >= count || seen[seq as usize] {
                continue;
            }
            seen[seq as usize] = true;
            let arrived_ns = u64::try_from(at.duration_since(self.base).as_nanos())?;
            latencies_ns.push(arrived_ns.saturating_sub(sent_ns));
            last_arrival = last_arrival.max(at);
        }
        let cpu_after = hub.cpu_ticks()?;

        latencies_ns.sort_unstable();
        let received = latencies_ns.len() as u64;
        let pick = |q: f64| percentile_ms(&latencies_ns, q);
        let window = last_arrival.duration_since(started).as_secs_f64();
        let cpu_ms = (cpu_after - cpu_before) as f64 * 1000.0 / ticks_per_s as f64;
        Ok(RunResult {
            mode,
            rate,
            sent: count,
            received,
            lost: count - received,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
            throughput: if window > 0.0 { received as f64 / window } else { f64::NAN },
            cpu_ms_per_1000: cpu_ms * 1000.0 / count as f64,
        })
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// The `q` quantile (0 to 1, nearest rank) of sorted nanoseconds, in milliseconds; NaN when empty.
pub fn percentile_ms(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len()) - 1;
    sorted_ns[i] as f64 / 1e6
}

/// Reads "run seq sent_ns" back from a payload.
fn parse(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
