//! Automation benchmark: trigger-to-command latency with many automations loaded, under a steady
//! rate of state changes.
//!
//! In one process: the real core (state store, bus, command router, SQLite writer on a real file)
//! and the real automation task, with a bench adapter standing in for a radio. The adapter
//! reports temperature changes of N sensors at a fixed rate; automation i turns on light i when
//! sensor i's temperature changes (a state trigger). Latency is measured from the moment the
//! adapter hands a change to the hub to the moment the command for the matching light reaches
//! the adapter's command channel.
//!
//! Run: `cargo bench -p hearth --bench automations` (options after `--`: `--automations N`
//! `--rate N` per second, `--secs N`). Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hearth::automations::{AutomationsInit, LoadedAutomations};
use hearth::core::{self, AdapterSlot, Bus, CoreInit, Registry};
use hearth::store::{self, StoreWriter};
use hearth_automations::model::Automation;
use hearth_sdk::{
    Access, AdapterEvent, AdapterManifest, Capability, DeviceDescriptor, DeviceId, Feature, Value, ValueType,
};
use tokio::sync::{Mutex, mpsc};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn sensor(i: usize) -> DeviceDescriptor {
    DeviceDescriptor::new(
        DeviceId::new("bench", &format!("sensor_{i}")),
        &format!("Sensor {i}"),
        vec![Feature::new("temperature", Capability::Temperature, ValueType::number(), Access::READ_ONLY)],
    )
}

fn light(i: usize) -> DeviceDescriptor {
    DeviceDescriptor::new(
        DeviceId::new("bench", &format!("light_{i}")),
        &format!("Light {i}"),
        vec![Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE)],
    )
}

fn automation(i: usize) -> Automation {
    serde_json::from_value(serde_json::json!({
        "id": format!("a{i}"), "name": format!("Automation {i}"), "mode": "parallel", "max_runs": 100,
        "triggers": [{"state": {"devices": [format!("bench:sensor_{i}")], "feature": "temperature"}}],
        "actions": [{"set": {"devices": [format!("bench:light_{i}")], "values": {"state": true}}}]
    }))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let n = arg("--automations", 1000);
    let rate = arg("--rate", 10_000);
    let secs = arg("--secs", 5);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run(n, rate, secs));
}

async fn run(n: usize, rate: usize, secs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (conn, _db) = store::open_and_migrate(dir.path()).unwrap();
    let (writer, _thread) = StoreWriter::start(conn);
    let (etx, erx) = mpsc::channel(core::ADAPTER_QUEUE);
    let (ctx, mut crx) = mpsc::channel(core::COMMAND_QUEUE);
    let (atx, _arx) = mpsc::channel(4);
    let manifest =
        AdapterManifest { id: "bench", name: "Bench", discovers: Default::default(), actions: &[], secrets: None };
    let (handle, _core) = core::spawn(CoreInit {
        registry: Registry::default(),
        bus: Bus::new(),
        writer: writer.clone(),
        adapter_events: erx,
        adapters: vec![AdapterSlot { manifest, commands: ctx, actions: atx }],
        inbox: hearth::inbox::InboxState::new(Vec::new(), Default::default()),
        cloud: None,
    });
    for i in 0..n {
        etx.send(("bench", AdapterEvent::Device { device: sensor(i) })).await.unwrap();
        etx.send(("bench", AdapterEvent::Device { device: light(i) })).await.unwrap();
        let values = BTreeMap::from([("temperature".to_owned(), Value::Number(20.0))]);
        etx.send(("bench", AdapterEvent::State { device: sensor(i).id, values, cause: None })).await.unwrap();
    }
    while handle.snapshot().await.unwrap().devices.len() < 2 * n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let loaded = LoadedAutomations { automations: (0..n).map(|i| (automation(i), 1)).collect(), ..Default::default() };
    let (engine, _task) = hearth::automations::spawn(AutomationsInit {
        settings: Default::default(),
        core: handle.clone(),
        writer: writer.clone(),
        mqtt: None,
        loaded,
    });
    // Wait until the engine reacts at all.
    engine.runs().await.unwrap();

    // Send times per light, matched first-in first-out with its commands.
    let sent: Arc<Mutex<Vec<VecDeque<Instant>>>> = Arc::new(Mutex::new(vec![VecDeque::new(); n]));
    let total = rate * secs;
    let receiver_sent = sent.clone();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(total);
        let deadline = Instant::now() + Duration::from_secs(secs as u64 + 30);
        while latencies.len() < total && Instant::now() < deadline {
            let Ok(Some(cmd)) = tokio::time::timeout(Duration::from_secs(5), crx.recv()).await else { break };
            let at = Instant::now();
            let i: usize = cmd.device.native().trim_start_matches("light_").parse().unwrap();
            if let Some(t0) = receiver_sent.lock().await[i].pop_front() {
                latencies.push(at - t0);
            }
        }
        latencies
    });

    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut next = started;
    for k in 0..total {
        let i = k % n;
        let value = 20.0 + ((k / n) % 100) as f64 * 0.1 + 0.05;
        let values = BTreeMap::from([("temperature".to_owned(), Value::Number(value))]);
        sent.lock().await[i].push_back(Instant::now());
        etx.send(("bench", AdapterEvent::State { device: sensor(i).id, values, cause: None })).await.unwrap();
        next += interval;
        let now = Instant::now();
        if next > now + Duration::from_millis(1) {
            tokio::time::sleep(next - now).await;
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    let mut latencies = receiver.await.unwrap();
    latencies.sort();
    let stats = engine.stats();
    println!(
        "automations: {n} loaded; {total} state changes sent in {send_secs:.2} s ({:.0}/s)",
        total as f64 / send_secs
    );
    println!(
        "commands: {} received of {total}; runs ended {}; command failures {}",
        latencies.len(),
        stats.runs.load(Ordering::Relaxed),
        stats.command_failures.load(Ordering::Relaxed)
    );
    let drain = Instant::now();
    writer.flush().await.unwrap();
    println!(
        "store: {} writes committed in {} transactions; the last traces were on disk {:.0} ms after the last command",
        writer.stats().ops.load(Ordering::Relaxed),
        writer.stats().batches.load(Ordering::Relaxed),
        drain.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "trigger-to-command latency: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
}
