//! `hearth-bench`: runs the real `hearth` binary with its built-in broker and measures, on that
//! broker, a bare relay (the floor), an automation that echoes MQTT payloads, the reaction of
//! automations to simulated zigbee2mqtt devices, the throughput of state updates to the WebSocket
//! and history, memory with many devices, and start-up with a year of history; then prints tables
//! for people and one line of JSON.

// A plain program of threads with no async runtime: blocking sleeps pace it and stall nothing else.
#![allow(clippy::disallowed_methods)]

mod hub;
mod load;
mod reaction;
mod startup;
mod throughput;
mod z2m;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use hub::Hub;
use load::{Generator, PAYLOAD_BYTES, Relay, RunResult};
use reaction::{Reaction, ReactionResult};
use startup::StartupResult;
use throughput::{StepResult, Summary, Throughput};

const USAGE: &str = "\
usage: hearth-bench [--quick] [--hearth PATH] [options]

  --hearth PATH            the hearth binary to measure (default target/release/hearth)
  --quick                  short figures for CI (under about 90 s): the defaults in [brackets]
  --rates LIST             floor and echo: messages per second, comma-separated (100,1000)
  --seconds N              measured seconds per rate for the floor, echo and reaction, after
                           a 1 s warm-up (5) [2]
  --floor-qos N            QoS of the bare relay's republish, 0 or 1 (0; the hub's mqtt
                           action publishes with QoS 1)
  --pairs N                reaction: simulated motion sensor and light pairs (100)
  --reaction-rates LIST    reaction: sensor publishes per second (100,1000,5000) [100,1000]
  --devices N              throughput: simulated temperature sensors (1000)
  --steps LIST             throughput: rates to step through (2000,5000,10000,20000,40000)
                           [2000,5000]
  --step-seconds N         throughput: seconds per step (5) [2]
  --publishers N           throughput: generator MQTT clients, one thread each (4)
  --startup-devices N      footprint and start-up: simulated sensors (10000); 0 skips both
  --history-features N     start-up: sensor features with history (1000) [100]
  --history-days N         start-up: days of history, 1 to 730 (365) [30]
  --skip-reaction          no reaction workload
  --skip-throughput        no throughput workload (and no bytes per history sample)
  --skip-startup           footprint with many devices, but no seeding and no restart";

#[derive(Debug)]
struct Args {
    hearth: PathBuf,
    quick: bool,
    rates: Vec<u32>,
    seconds: u64,
    floor_qos: u8,
    pairs: usize,
    reaction_rates: Vec<u32>,
    devices: usize,
    steps: Vec<u32>,
    step_seconds: u64,
    publishers: usize,
    startup_devices: usize,
    history_features: usize,
    history_days: u32,
    skip_reaction: bool,
    skip_throughput: bool,
    skip_startup: bool,
}

fn rate_list(flag: &str, list: &str) -> Result<Vec<u32>> {
    list.split(',')
        .map(|r| match r.trim().parse::<u32>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => bail!("{flag} {list}: {r:?} is not a whole number of messages per second from 1 to 1,000,000"),
        })
        .collect()
}

fn whole(flag: &str, text: &str, min: u64, max: u64) -> Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => bail!("{flag} {text}: give a whole number from {min} to {max}"),
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>> {
    let mut given: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut flags = std::collections::HashSet::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" | "--skip-reaction" | "--skip-throughput" | "--skip-startup" => {
                flags.insert(arg);
            }
            "--hearth" | "--rates" | "--seconds" | "--floor-qos" | "--pairs" | "--reaction-rates" | "--devices"
            | "--steps" | "--step-seconds" | "--publishers" | "--startup-devices" | "--history-features"
            | "--history-days" => {
                let value = it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
                given.insert(arg, value);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let quick = flags.contains("--quick");
    let pick = |flag: &str, full: &str, fast: &str| -> String {
        given.get(flag).cloned().unwrap_or_else(|| if quick { fast } else { full }.to_owned())
    };
    let args = Args {
        hearth: PathBuf::from(pick("--hearth", "target/release/hearth", "target/release/hearth")),
        quick,
        rates: rate_list("--rates", &pick("--rates", "100,1000", "100,1000"))?,
        seconds: whole("--seconds", &pick("--seconds", "5", "2"), 1, 3600)?,
        floor_qos: match pick("--floor-qos", "0", "0").as_str() {
            "0" => 0,
            "1" => 1,
            other => bail!("--floor-qos {other}: give 0 or 1"),
        },
        pairs: whole("--pairs", &pick("--pairs", "100", "100"), 1, 2000)? as usize,
        reaction_rates: rate_list("--reaction-rates", &pick("--reaction-rates", "100,1000,5000", "100,1000"))?,
        devices: whole("--devices", &pick("--devices", "1000", "1000"), 1, 10_000)? as usize,
        steps: rate_list("--steps", &pick("--steps", "2000,5000,10000,20000,40000", "2000,5000"))?,
        step_seconds: whole("--step-seconds", &pick("--step-seconds", "5", "2"), 1, 3600)?,
        publishers: whole("--publishers", &pick("--publishers", "4", "4"), 1, 64)? as usize,
        startup_devices: whole("--startup-devices", &pick("--startup-devices", "10000", "10000"), 0, 10_000)? as usize,
        history_features: whole("--history-features", &pick("--history-features", "1000", "100"), 1, 10_000)? as usize,
        history_days: whole("--history-days", &pick("--history-days", "365", "30"), 1, 730)? as u32,
        skip_reaction: flags.contains("--skip-reaction"),
        skip_throughput: flags.contains("--skip-throughput"),
        skip_startup: flags.contains("--skip-startup"),
    };
    if args.publishers > args.devices {
        bail!(
            "--publishers {} is more than --devices {}: each generator client needs a sensor",
            args.publishers,
            args.devices
        );
    }
    if args.startup_devices > 0 && args.history_features > args.startup_devices {
        bail!(
            "--history-features {} is more than --startup-devices {}: the history is of those devices' sensors",
            args.history_features,
            args.startup_devices
        );
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match bench(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hearth-bench: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("hearth-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// What the first hub gave: idle figures, the floor, the echo and the reaction.
struct Relays {
    rss_idle: u64,
    idle_cpu_ms_per_s: f64,
    rss_after: u64,
    clean: bool,
    floor: Vec<RunResult>,
    echo: Vec<RunResult>,
    reaction: Vec<ReactionResult>,
    reaction_setup_s: f64,
    /// Why the reaction could not be measured (the figures of the others still print).
    reaction_error: Option<String>,
}

fn relays(args: &Args, ticks_per_s: u64) -> Result<Relays> {
    let floor_qos = if args.floor_qos == 1 { rumqttc::QoS::AtLeastOnce } else { rumqttc::QoS::AtMostOnce };
    let mut hub = Hub::start(&args.hearth)?;
    let token = hub.onboard()?;
    // Idle: what the hub spends with nothing to do, so the per-message CPU below can be read against it.
    std::thread::sleep(Duration::from_secs(1));
    let idle_ticks = hub.cpu_ticks()?;
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu_ms_per_s = (hub.cpu_ticks()? - idle_ticks) as f64 * 1000.0 / ticks_per_s as f64 / 3.0;
    // Idle means start-up is over: the hub gives back what start-up alone used 5 s after it
    // serves (`FIRST_RELEASE` in hub/src/runtime.rs). Measured 10 s after the start.
    if let Some(left) = Duration::from_secs(10).checked_sub(hub.spawned.elapsed()) {
        std::thread::sleep(left);
    }
    let rss_idle = hub.rss_bytes()?;

    let echo = json!({"id": "bench_echo", "name": "Bench echo", "mode": "parallel", "max_runs": 100,
        "triggers": [{"mqtt": {"topic": "bench/echo/in"}}],
        "actions": [{"mqtt": {"topic": "bench/echo/out", "payload": "{{ trigger.payload }}"}}]});
    let (status, answer) = hub.request("POST", "/api/v1/automations", Some(&token), Some(&echo))?;
    if status != 201 {
        bail!("creating the echo automation answered {status}: {answer}");
    }

    let _relay = Relay::start(hub.mqtt, "bench/floor/in", "bench/floor/out", floor_qos)?;
    let mut floor = Generator::connect(hub.mqtt, "hearth-bench-floor", "bench/floor/in", "bench/floor/out")?;
    floor.wait_ready(Duration::from_secs(15)).context("the bare relay")?;
    let mut echo = Generator::connect(hub.mqtt, "hearth-bench-echo", "bench/echo/in", "bench/echo/out")?;
    echo.wait_ready(Duration::from_secs(15)).context("the echo automation")?;

    let mut out = Relays {
        rss_idle,
        idle_cpu_ms_per_s,
        rss_after: 0,
        clean: true,
        floor: Vec::new(),
        echo: Vec::new(),
        reaction: Vec::new(),
        reaction_setup_s: 0.0,
        reaction_error: None,
    };
    for &rate in &args.rates {
        eprintln!("hearth-bench: {rate} msg/s for {} s, floor then echo", args.seconds);
        out.floor.push(floor.run("floor", rate, args.seconds, &hub, ticks_per_s)?);
        out.echo.push(echo.run("echo", rate, args.seconds, &hub, ticks_per_s)?);
    }
    if !args.skip_reaction {
        // The floor at each reaction rate the echo did not have.
        for &rate in &args.reaction_rates {
            if !args.rates.contains(&rate) {
                eprintln!("hearth-bench: {rate} msg/s for {} s, floor", args.seconds);
                out.floor.push(floor.run("floor", rate, args.seconds, &hub, ticks_per_s)?);
            }
        }
        eprintln!("hearth-bench: reaction, {} simulated motion sensors and lights", args.pairs);
        let started = Instant::now();
        let measured = Reaction::setup(&hub, &token, args.pairs).and_then(|mut reaction| {
            out.reaction_setup_s = started.elapsed().as_secs_f64();
            for &rate in &args.reaction_rates {
                eprintln!("hearth-bench: reaction, {rate} msg/s for {} s", args.seconds);
                out.reaction.push(reaction.run(rate, args.seconds, &hub, ticks_per_s)?);
            }
            Ok(())
        });
        out.reaction_error = measured.err().map(|e| format!("{e:#}"));
    }
    std::thread::sleep(Duration::from_secs(1));
    out.rss_after = hub.rss_bytes()?;
    drop(floor);
    drop(echo);
    out.clean = hub.stop();
    if !out.clean {
        eprintln!("hearth-bench: the hub did not exit cleanly on SIGTERM; its log:\n{}", hub.log_tail());
    }
    Ok(out)
}

/// What the throughput hub gave.
struct Flow {
    steps: Vec<StepResult>,
    summary: Summary,
    rss_settled: u64,
    listed_after_s: f64,
}

fn flow(args: &Args, ticks_per_s: u64) -> Result<Flow> {
    let mut hub = Hub::start(&args.hearth)?;
    let token = hub.onboard()?;
    eprintln!("hearth-bench: throughput, {} simulated temperature sensors", args.devices);
    let mut t = Throughput::setup(&hub, &token, args.devices, args.publishers)?;
    let (steps, summary) = t.run(&hub, &token, &args.steps, args.step_seconds, ticks_per_s)?;
    let out = Flow { steps, summary, rss_settled: t.rss_settled, listed_after_s: t.listed_after.as_secs_f64() };
    drop(t);
    if !hub.stop() {
        eprintln!("hearth-bench: the throughput hub did not exit cleanly on SIGTERM; its log:\n{}", hub.log_tail());
    }
    Ok(out)
}

fn bench(args: &Args) -> Result<()> {
    if !args.hearth.is_file() {
        bail!(
            "no hearth binary at {}: build it with `cargo build --release -p hearth`, or pass --hearth PATH",
            args.hearth.display()
        );
    }
    let began = Instant::now();
    let binary_bytes = std::fs::metadata(&args.hearth)?.len();
    let (ticks_per_s, ticks_read) = hub::clock_ticks_per_second();
    if !ticks_read {
        eprintln!("hearth-bench: could not run `getconf CLK_TCK`; assuming 100 clock ticks per second");
    }

    let r = relays(args, ticks_per_s)?;
    // A workload after the floor and echo that fails leaves the figures of the others standing.
    let mut failed: Vec<String> = Vec::new();
    if let Some(e) = &r.reaction_error {
        eprintln!("hearth-bench: reaction: {e}");
        failed.push(format!("reaction: {e}"));
    }
    let f = if args.skip_throughput { None } else { keep(&mut failed, "throughput", flow(args, ticks_per_s)) };
    let s = if args.startup_devices == 0 {
        None
    } else {
        keep(
            &mut failed,
            "footprint and start-up",
            startup::run(
                &args.hearth,
                args.startup_devices,
                args.history_features,
                args.history_days,
                args.skip_startup,
            ),
        )
    };
    let elapsed_s = began.elapsed().as_secs_f64();

    let mut out = std::io::stdout().lock();
    write_table(&mut out, &r.floor, &r.echo)?;
    writeln!(
        out,
        "\nbinary {:.1} MiB, resident {:.1} MiB idle, {:.1} MiB after the load; idle CPU {:.1} ms/s; {PAYLOAD_BYTES}-byte payloads, QoS 0 (floor republishes with QoS {}), \
         {} s per rate after 1 s of warm-up; CPU is the hub process's (broker included), {ticks_per_s} ticks/s{}",
        mib(binary_bytes),
        mib(r.rss_idle),
        mib(r.rss_after),
        r.idle_cpu_ms_per_s,
        args.floor_qos,
        args.seconds,
        if ticks_read { "" } else { " (assumed)" }
    )?;
    if !r.reaction.is_empty() {
        write_reaction(&mut out, &r.reaction, &r.floor, args.pairs)?;
    }
    if let Some(f) = &f {
        write_throughput(&mut out, f, args)?;
    }
    write_footprint(&mut out, binary_bytes, &r, f.as_ref(), s.as_ref(), args)?;
    if let Some(s) = &s
        && !args.skip_startup
    {
        write_startup(&mut out, s)?;
    }
    writeln!(out, "\nthe whole run took {elapsed_s:.0} s")?;

    let run_json = |r: &RunResult| {
        json!({"mode": r.mode, "rate": r.rate, "sent": r.sent, "received": r.received, "lost": r.lost,
            "p50_ms": num(r.p50_ms), "p99_ms": num(r.p99_ms), "max_ms": num(r.max_ms),
            "throughput_per_s": num(r.throughput), "cpu_ms_per_1000": num(r.cpu_ms_per_1000)})
    };
    let floor_at = |rate: u32| r.floor.iter().find(|x| x.rate == rate);
    let reaction_json = (!args.skip_reaction).then(|| {
        json!({
            "pairs": args.pairs,
            "setup_s": num(r.reaction_setup_s),
            "runs": r.reaction.iter().map(|x| {
                let f = floor_at(x.rate);
                json!({"rate": x.rate, "sent": x.sent, "received": x.received, "lost": x.lost,
                    "unmatched": x.unmatched, "p50_ms": num(x.p50_ms), "p99_ms": num(x.p99_ms),
                    "max_ms": num(x.max_ms), "cpu_ms_per_1000": num(x.cpu_ms_per_1000),
                    "to_floor": f.map(|f| json!({"p50": num(x.p50_ms / f.p50_ms), "p99": num(x.p99_ms / f.p99_ms),
                        "max": num(x.max_ms / f.max_ms), "p99_above_floor_ms": num(x.p99_ms - f.p99_ms)}))})
            }).collect::<Vec<_>>(),
        })
    });
    let throughput_json = f.as_ref().map(|f| {
        json!({
            "devices": args.devices,
            "publishers": args.publishers,
            "step_seconds": args.step_seconds,
            "listed_after_s": num(f.listed_after_s),
            "sustained_per_s": sustained(&f.steps).map(|x| num(x.generator_rate)),
            "sustained_step": sustained(&f.steps).map(|x| x.rate),
            "history_rows": f.summary.history_rows,
            "used_bytes_added": f.summary.used_bytes_added,
            "bytes_per_history_sample": num(bytes_per_sample(&f.summary)),
            "steps": f.steps.iter().map(|x| json!({"rate": x.rate, "sent": x.sent,
                "generator_per_s": num(x.generator_rate), "websocket": x.websocket, "history": x.history,
                "lagged": x.lagged, "drain_s": num(x.drain_s), "backlog": x.backlog,
                "cpu_ms_per_1000": num(x.cpu_ms_per_1000), "rss_bytes": x.rss_bytes, "complete": x.complete}))
                .collect::<Vec<_>>(),
        })
    });
    let footprint_json = json!({
        "binary_bytes": binary_bytes,
        "rss_idle_no_devices_bytes": r.rss_idle,
        "rss_devices_bytes": f.as_ref().map(|f| json!({"devices": args.devices, "bytes": f.rss_settled})),
        "rss_many_devices_bytes": s.as_ref().map(|s| json!({"devices": s.devices, "bytes": s.rss_settled})),
        "cpu_us_per_message": f.as_ref().and_then(|f| sustained(&f.steps)).map(|x| num(x.cpu_ms_per_1000)),
        "bytes_per_history_sample": f.as_ref().map(|f| num(bytes_per_sample(&f.summary))),
    });
    let startup_json = s.as_ref().filter(|_| !args.skip_startup).map(|s| {
        json!({
            "devices": s.devices,
            "listed_first_time_s": num(s.listed_after_s),
            "history_features": s.seeded.as_ref().map(|x| x.features),
            "history_days": s.seeded.as_ref().map(|x| x.days),
            "history_raw_rows": s.seeded.as_ref().map(|x| x.raw_rows),
            "history_five_minute_rows": s.seeded.as_ref().map(|x| x.five_minute_rows),
            "history_hourly_rows": s.seeded.as_ref().map(|x| x.hourly_rows),
            "seeding_s": s.seeded.as_ref().map(|x| num(x.seconds)),
            "not_seeded": s.not_seeded,
            "database_bytes": s.db_bytes,
            "quick_check_ms": num(s.quick_check_ms),
            "healthz_ms": num(s.healthz_ms),
            "all_devices_listed_ms": num(s.listed_ms),
            "rss_after_start_bytes": s.rss_after_start,
            "api_history_rows_first_sensor": s.seeded.as_ref().map(|_| json!({"raw": s.api_raw_rows, "hourly": s.api_hourly_rows})),
        })
    });
    let line = json!({
        "bench": "hearth",
        "quick": args.quick,
        "elapsed_s": num(elapsed_s),
        "seconds": args.seconds,
        "warmup_seconds": 1,
        "payload_bytes": PAYLOAD_BYTES,
        "qos": 0,
        "floor_republish_qos": args.floor_qos,
        "clock_ticks_per_s": ticks_per_s,
        "clock_ticks_assumed": !ticks_read,
        "binary_bytes": binary_bytes,
        "rss_idle_bytes": r.rss_idle,
        "idle_cpu_ms_per_s": num(r.idle_cpu_ms_per_s),
        "rss_after_load_bytes": r.rss_after,
        "stopped_cleanly": r.clean,
        "runs": r.floor.iter().chain(&r.echo).map(run_json).collect::<Vec<_>>(),
        "echo_to_floor": r.echo.iter().filter_map(|e| floor_at(e.rate).map(|f| json!({"rate": e.rate,
            "p50": num(e.p50_ms / f.p50_ms), "p99": num(e.p99_ms / f.p99_ms), "max": num(e.max_ms / f.max_ms),
            "throughput": num(e.throughput / f.throughput), "cpu": num(e.cpu_ms_per_1000 / f.cpu_ms_per_1000)})))
            .collect::<Vec<_>>(),
        "reaction": reaction_json,
        "throughput": throughput_json,
        "footprint": footprint_json,
        "startup": startup_json,
        "failed": failed,
    });
    writeln!(out, "{line}")?;
    if !failed.is_empty() {
        bail!("{} workload(s) failed:\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}

/// The figures of a workload, or none when it failed (said on stderr and kept in `failed`).
fn keep<T>(failed: &mut Vec<String>, what: &str, r: Result<T>) -> Option<T> {
    match r {
        Ok(x) => Some(x),
        Err(e) => {
            eprintln!("hearth-bench: {what}: {e:#}");
            failed.push(format!("{what}: {e:#}"));
            None
        }
    }
}

/// The highest complete step before the first incomplete one.
fn sustained(steps: &[StepResult]) -> Option<&StepResult> {
    steps.iter().take_while(|s| s.complete).last()
}

fn bytes_per_sample(s: &Summary) -> f64 {
    if s.history_rows == 0 { f64::NAN } else { s.used_bytes_added as f64 / s.history_rows as f64 }
}

/// A figure for JSON: rounded to 4 decimals, null when it could not be measured.
fn num(x: f64) -> Value {
    if x.is_finite() { json!((x * 1e4).round() / 1e4) } else { Value::Null }
}

fn cell(x: f64, decimals: usize) -> String {
    if x.is_finite() { format!("{x:.decimals$}") } else { "-".to_owned() }
}

fn strs(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|h| (*h).to_owned()).collect()
}

fn write_table(out: &mut impl Write, floor: &[RunResult], echo: &[RunResult]) -> Result<()> {
    let header = ["mode", "rate/s", "sent", "received", "lost", "p50 ms", "p99 ms", "max ms", "msg/s", "CPU ms/1k msg"];
    let mut rows: Vec<Vec<String>> = vec![strs(&header)];
    let mut ordered: Vec<&RunResult> = floor.iter().chain(echo).collect();
    ordered.sort_by_key(|r| (r.rate, r.mode != "floor"));
    for r in ordered {
        rows.push(vec![
            r.mode.to_owned(),
            r.rate.to_string(),
            r.sent.to_string(),
            r.received.to_string(),
            r.lost.to_string(),
            cell(r.p50_ms, 3),
            cell(r.p99_ms, 3),
            cell(r.max_ms, 3),
            cell(r.throughput, 0),
            cell(r.cpu_ms_per_1000, 1),
        ]);
    }
    write_rows(out, &rows)?;
    writeln!(out, "\necho as a multiple of the floor (latency and CPU: lower is better; msg/s: 1.00 keeps up)")?;
    let mut ratios: Vec<Vec<String>> = vec![strs(&["rate/s", "p50", "p99", "max", "msg/s", "CPU"])];
    for e in echo {
        let Some(f) = floor.iter().find(|f| f.rate == e.rate) else { continue };
        ratios.push(vec![
            e.rate.to_string(),
            cell(e.p50_ms / f.p50_ms, 2),
            cell(e.p99_ms / f.p99_ms, 2),
            cell(e.max_ms / f.max_ms, 2),
            cell(e.throughput / f.throughput, 2),
            cell(e.cpu_ms_per_1000 / f.cpu_ms_per_1000, 2),
        ]);
    }
    write_rows(out, &ratios)
}

fn write_reaction(out: &mut impl Write, runs: &[ReactionResult], floor: &[RunResult], pairs: usize) -> Result<()> {
    writeln!(
        out,
        "\nreaction: {pairs} zigbee2mqtt motion sensors and lights, one automation each; sensor publish to the \
         light's /set (x floor: as a multiple of the floor at the same rate)"
    )?;
    let mut rows = vec![strs(&[
        "rate/s",
        "sent",
        "answered",
        "lost",
        "unmatched",
        "p50 ms",
        "p99 ms",
        "max ms",
        "CPU ms/1k",
        "p50 x floor",
        "p99 x floor",
        "max x floor",
        "p99 - floor ms",
    ])];
    for r in runs {
        let f = floor.iter().find(|f| f.rate == r.rate);
        let ratio = |x: f64, fx: Option<f64>| fx.map_or("-".to_owned(), |fx| cell(x / fx, 1));
        rows.push(vec![
            r.rate.to_string(),
            r.sent.to_string(),
            r.received.to_string(),
            r.lost.to_string(),
            r.unmatched.to_string(),
            cell(r.p50_ms, 3),
            cell(r.p99_ms, 3),
            cell(r.max_ms, 3),
            cell(r.cpu_ms_per_1000, 1),
            ratio(r.p50_ms, f.map(|f| f.p50_ms)),
            ratio(r.p99_ms, f.map(|f| f.p99_ms)),
            ratio(r.max_ms, f.map(|f| f.max_ms)),
            f.map_or("-".to_owned(), |f| cell(r.p99_ms - f.p99_ms, 2)),
        ]);
    }
    write_rows(out, &rows)
}

fn write_throughput(out: &mut impl Write, f: &Flow, args: &Args) -> Result<()> {
    writeln!(
        out,
        "\nthroughput: {} zigbee2mqtt temperature sensors, a new value in every message, {} generator clients, {} s \
         per step; counted on a WebSocket (owner's token) and in history",
        args.devices, args.publishers, args.step_seconds
    )?;
    let mut rows = vec![strs(&[
        "rate/s",
        "sent",
        "generator/s",
        "websocket",
        "history",
        "lagged",
        "drain s",
        "backlog",
        "CPU ms/1k",
        "RSS MiB",
        "complete",
    ])];
    for s in &f.steps {
        rows.push(vec![
            s.rate.to_string(),
            s.sent.to_string(),
            cell(s.generator_rate, 0),
            s.websocket.to_string(),
            s.history.to_string(),
            s.lagged.to_string(),
            cell(s.drain_s, 1),
            if s.backlog { "yes" } else { "no" }.to_owned(),
            cell(s.cpu_ms_per_1000, 1),
            cell(mib(s.rss_bytes), 1),
            if s.complete { "yes" } else { "no" }.to_owned(),
        ]);
    }
    write_rows(out, &rows)?;
    match sustained(&f.steps) {
        Some(s) => writeln!(
            out,
            "sustained: {:.0} msg/s (step {}/s; the generator reached {:.0}/s){}",
            s.generator_rate,
            s.rate,
            s.generator_rate,
            if f.steps.iter().all(|x| x.complete) { "; every step was complete, so the limit is above it" } else { "" }
        )?,
        None => writeln!(out, "sustained: not even the first step was complete")?,
    }
    writeln!(
        out,
        "history: {} rows added, {} bytes more in use: {} bytes per sample",
        f.summary.history_rows,
        f.summary.used_bytes_added,
        cell(bytes_per_sample(&f.summary), 1)
    )?;
    Ok(())
}

fn write_footprint(
    out: &mut impl Write,
    binary: u64,
    r: &Relays,
    f: Option<&Flow>,
    s: Option<&StartupResult>,
    args: &Args,
) -> Result<()> {
    writeln!(out, "\nfootprint")?;
    let mut rows = vec![strs(&["figure", "value"])];
    rows.push(vec!["release binary".into(), format!("{:.1} MiB", mib(binary))]);
    rows.push(vec!["resident, idle, no devices".into(), format!("{:.1} MiB", mib(r.rss_idle))]);
    if let Some(f) = f {
        rows.push(vec![
            format!("resident, {} devices (listed after {:.1} s)", args.devices, f.listed_after_s),
            format!("{:.1} MiB", mib(f.rss_settled)),
        ]);
    }
    if let Some(s) = s {
        rows.push(vec![
            format!("resident, {} devices (listed after {:.1} s)", s.devices, s.listed_after_s),
            format!("{:.1} MiB", mib(s.rss_settled)),
        ]);
    }
    if let Some(f) = f {
        let cpu = sustained(&f.steps).map_or(f64::NAN, |x| x.cpu_ms_per_1000);
        rows.push(vec!["CPU per message at the sustained step".into(), format!("{} us", cell(cpu, 0))]);
        rows.push(vec!["bytes on disk per history sample".into(), cell(bytes_per_sample(&f.summary), 1)]);
    }
    write_rows(out, &rows)
}

fn write_startup(out: &mut impl Write, s: &StartupResult) -> Result<()> {
    writeln!(out, "\nstart-up: {} devices in the database", s.devices)?;
    let mut rows = vec![strs(&["figure", "value"])];
    match &s.seeded {
        Some(x) => {
            rows.push(vec![format!("history rows ({} sensors, {} days)", x.features, x.days), x.rows().to_string()]);
            rows.push(vec![
                "  raw, 5-minute, hourly".into(),
                format!("{}, {}, {}", x.raw_rows, x.five_minute_rows, x.hourly_rows),
            ]);
            rows.push(vec!["  written in".into(), format!("{:.1} s", x.seconds)]);
        }
        None => rows.push(vec!["history".into(), "none (below)".into()]),
    }
    rows.push(vec!["database".into(), format!("{:.1} MiB", mib(s.db_bytes))]);
    rows.push(vec![
        "PRAGMA quick_check alone (the hub runs it once serving)".into(),
        format!("{:.0} ms", s.quick_check_ms),
    ]);
    rows.push(vec!["spawn to GET /healthz 200".into(), format!("{:.0} ms", s.healthz_ms)]);
    rows.push(vec!["spawn to every device listed".into(), format!("{:.0} ms", s.listed_ms)]);
    rows.push(vec!["resident after start".into(), format!("{:.1} MiB", mib(s.rss_after_start))]);
    if let (Some(raw), Some(hourly)) = (s.api_raw_rows, s.api_hourly_rows) {
        rows.push(vec!["history API, first sensor: raw, hourly rows".into(), format!("{raw}, {hourly}")]);
    }
    write_rows(out, &rows)?;
    if let Some(why) = &s.not_seeded {
        writeln!(out, "{why}")?;
    }
    Ok(())
}

/// Right-aligned columns, the first left-aligned.
fn write_rows(out: &mut impl Write, rows: &[Vec<String>]) -> Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().filter_map(|r| r.get(c)).map(String::len).max().unwrap_or(0)).collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| if c == 0 { format!("{s:<w$}", w = widths[c]) } else { format!("{s:>w$}", w = widths[c]) })
            .collect();
        writeln!(out, "{}", cells.join("  "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", parse(args).expect_err("refused"))
    }

    #[test]
    fn quick_shortens_the_defaults_and_explicit_flags_win() {
        let a = parse(&["--quick", "--pairs", "20", "--steps", "1000"]).expect("valid").expect("args");
        assert!(a.quick);
        assert_eq!((a.seconds, a.step_seconds, a.history_days, a.history_features), (2, 2, 30, 100));
        assert_eq!(a.reaction_rates, vec![100, 1000]);
        assert_eq!((a.pairs, a.steps.clone()), (20, vec![1000]));
        let full = parse(&[]).expect("valid").expect("args");
        assert_eq!(full.reaction_rates, vec![100, 1000, 5000]);
        assert_eq!(full.steps, vec![2000, 5000, 10_000, 20_000, 40_000]);
        assert_eq!((full.devices, full.startup_devices, full.history_days), (1000, 10_000, 365));
        assert!(parse(&["--help"]).expect("valid").is_none());
    }

    #[test]
    fn bad_values_name_the_flag_and_what_it_takes() {
        assert!(error(&["--pairs", "0"]).contains("--pairs 0: give a whole number from 1 to 2000"));
        assert!(error(&["--steps", "2000,fast"]).contains("--steps 2000,fast: \"fast\" is not a whole number"));
        assert!(error(&["--history-days", "1000"]).contains("--history-days 1000: give a whole number from 1 to 730"));
        assert!(error(&["--floor-qos", "2"]).contains("--floor-qos 2: give 0 or 1"));
        assert!(error(&["--devices"]).contains("--devices needs a value"));
        assert!(error(&["--frobnicate"]).contains("unknown argument \"--frobnicate\""));
        assert!(error(&["--devices", "2", "--publishers", "4"]).contains("--publishers 4 is more than --devices 2"));
        assert!(
            error(&["--startup-devices", "50", "--history-features", "100"]).contains("more than --startup-devices 50")
        );
    }
}
