//! Pipeline benchmark: adapter events per second through the state store, the bus and the
//! SQLite writer, and resident memory with N devices.
//!
//! Run: `cargo bench -p hearth --bench pipeline` (options after `--`: `--devices N`
//! `--reports N`). Prints figures; asserts nothing about time.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hearth::core::{self, AdapterSlot, Bus, CoreInit, Registry};
use hearth::store::{self, StoreWriter};
use hearth_sdk::{
    Access, AdapterEvent, AdapterManifest, Capability, Category, DeviceDescriptor, DeviceId, Feature, PowerSource,
    Value, ValueType,
};
use tokio::sync::mpsc;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn sensor(i: usize) -> DeviceDescriptor {
    DeviceDescriptor {
        id: DeviceId::new("bench", &format!("0x{i:016x}")),
        name: format!("Sensor {i}"),
        suggested_area: Some(format!("Room {}", i % 20)),
        manufacturer: Some("Bench".into()),
        model: Some("TH-1".into()),
        firmware: Some("1.0".into()),
        via: None,
        power_source: PowerSource::Battery,
        features: vec![
            Feature::new("temperature", Capability::Temperature, ValueType::range(-40.0, 80.0, 0.1), Access::READ_ONLY),
            Feature::new("humidity", Capability::Humidity, ValueType::range(0.0, 100.0, 1.0), Access::READ_ONLY),
            Feature::new("battery", Capability::Battery, ValueType::range(0.0, 100.0, 1.0), Access::READ_ONLY)
                .category(Category::Diagnostic),
            Feature::new("state", Capability::OnOff, ValueType::Bool, Access::READ_WRITE),
        ],
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let devices = arg("--devices", 1000);
    let reports = arg("--reports", 200_000);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run(devices, reports));
}

async fn run(devices: usize, reports: usize) {
    let dir = tempfile::tempdir().unwrap();
    let rss_start = rss_kib();
    let (conn, db) = store::open_and_migrate(dir.path()).unwrap();
    let (writer, _thread) = StoreWriter::start(conn);
    let (etx, erx) = mpsc::channel(core::ADAPTER_QUEUE);
    let (ctx, _crx) = mpsc::channel(core::COMMAND_QUEUE);
    let manifest =
        AdapterManifest { id: "bench", name: "Bench", discovers: Default::default(), actions: &[], secrets: None };
    let (atx, _arx) = mpsc::channel(4);
    let bus = Bus::new();
    // One bus subscriber standing in for a WebSocket session: it must see every change.
    let seen = Arc::new(AtomicU64::new(0));
    let mut sub = bus.subscribe();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok(_ev) = sub.recv().await {
            seen2.fetch_add(1, Ordering::Relaxed);
        }
    });
    let (handle, _task) = core::spawn(CoreInit {
        registry: Registry::default(),
        bus,
        writer: writer.clone(),
        adapter_events: erx,
        adapters: vec![AdapterSlot { manifest, commands: ctx, actions: atx }],
        inbox: hearth::inbox::InboxState::new(Vec::new(), Default::default()),
        cloud: None,
    });

    let t = Instant::now();
    for i in 0..devices {
        etx.send(("bench", AdapterEvent::Device { device: sensor(i) })).await.unwrap();
    }
    writer.flush().await.unwrap();
    while handle.snapshot().await.unwrap().devices.len() < devices {
        tokio::task::yield_now().await;
    }
    writer.flush().await.unwrap();
    let discover = t.elapsed();

    // Each report changes one device's temperature and humidity: two state changes.
    let before_ops = writer.stats().ops.load(Ordering::Relaxed);
    let before_tx = writer.stats().batches.load(Ordering::Relaxed);
    let t = Instant::now();
    for n in 0..reports {
        let i = n % devices;
        let round = (n / devices) as f64;
        let values = BTreeMap::from([
            ("temperature".to_owned(), Value::Number(20.0 + (round % 100.0) / 10.0 + 0.01)),
            ("humidity".to_owned(), Value::Number(40.0 + (round % 50.0))),
        ]);
        etx.send(("bench", AdapterEvent::State { device: sensor_id(i), values, cause: None })).await.unwrap();
    }
    let queued = t.elapsed();
    // Wait until the state store has applied every report, then until every write is committed.
    let expected = 2 * reports as u64;
    while handle.stats().state_changes.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    writer.flush().await.unwrap();
    let done = t.elapsed();
    let ops = writer.stats().ops.load(Ordering::Relaxed) - before_ops;
    let txs = writer.stats().batches.load(Ordering::Relaxed) - before_tx;
    let changes = handle.stats().state_changes.load(Ordering::Relaxed);
    let rss_end = rss_kib();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM history", [], |r| r.get(0)).unwrap();
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();

    println!("pipeline benchmark: {devices} devices, {reports} adapter reports (2 changed features each)");
    println!("  discovery of {devices} devices, committed: {:.0} ms", discover.as_secs_f64() * 1000.0);
    println!(
        "  adapter events through the state store: {:.0} events/s (all queued in {:.2} s)",
        reports as f64 / queued.as_secs_f64(),
        queued.as_secs_f64()
    );
    println!(
        "  end to end, state + bus + history committed: {:.0} events/s, {:.0} state changes/s ({:.2} s)",
        reports as f64 / done.as_secs_f64(),
        (ops as f64) / done.as_secs_f64(),
        done.as_secs_f64()
    );
    println!(
        "  writes committed: {ops} in {txs} transactions ({:.0} per transaction); history rows: {rows}",
        ops as f64 / txs.max(1) as f64
    );
    println!("  state changes published: {changes}; seen by a bus subscriber: {}", seen.load(Ordering::Relaxed));
    println!("  database size: {:.1} MiB", (pages * page_size) as f64 / 1_048_576.0);
    println!("  resident memory: {} KiB at start, {} KiB with {devices} devices after the run", rss_start, rss_end);
}

fn sensor_id(i: usize) -> DeviceId {
    DeviceId::new("bench", &format!("0x{i:016x}"))
}
