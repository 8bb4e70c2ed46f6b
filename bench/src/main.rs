//! `hearth-bench`: runs the real `hearth` binary with its built-in broker and measures, on that
//! broker, a bare relay (the floor) and an automation that echoes MQTT payloads (the hub), then
//! prints one table for people and one line of JSON.

// A plain program of threads with no async runtime: blocking sleeps pace it and stall nothing else.
#![allow(clippy::disallowed_methods)]

mod hub;
mod load;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use hub::Hub;
use load::{Generator, PAYLOAD_BYTES, Relay, RunResult};

const USAGE: &str = "\
usage: hearth-bench [--hearth PATH] [--rates 100,1000] [--seconds 5] [--floor-qos 0] [--quick]

  --hearth PATH   the hearth binary to measure (default target/release/hearth)
  --rates LIST    messages per second, comma-separated (default 100,1000)
  --seconds N     measured seconds per rate, after a 1 s warm-up (default 5)
  --floor-qos N   QoS of the bare relay's republish, 0 or 1 (default 0; the hub's action
                  publishes with QoS 1)
  --quick         rates 100 and 1000, 2 s each (for CI)";

#[derive(Debug)]
struct Args {
    hearth: PathBuf,
    rates: Vec<u32>,
    seconds: u64,
    floor_qos: u8,
    quick: bool,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        hearth: PathBuf::from("target/release/hearth"),
        rates: vec![100, 1000],
        seconds: 5,
        floor_qos: 0,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--hearth" => args.hearth = PathBuf::from(value("--hearth")?),
            "--rates" => {
                let list = value("--rates")?;
                args.rates = list
                    .split(',')
                    .map(|r| match r.trim().parse::<u32>() {
                        Ok(n) if n > 0 => Ok(n),
                        _ => bail!("--rates {list}: {r:?} is not a positive whole number of messages per second"),
                    })
                    .collect::<Result<_>>()?;
            }
            "--seconds" => {
                let s = value("--seconds")?;
                args.seconds = match s.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => bail!("--seconds {s}: give a positive whole number of seconds"),
                };
            }
            "--floor-qos" => {
                args.floor_qos = match value("--floor-qos")?.as_str() {
                    "0" => 0,
                    "1" => 1,
                    other => bail!("--floor-qos {other}: give 0 or 1"),
                };
            }
            "--quick" => args.quick = true,
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if args.quick {
        args.rates = vec![100, 1000];
        args.seconds = 2;
    }
    Ok(Some(args))
}

fn main() -> ExitCode {
    match parse_args() {
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

fn bench(args: &Args) -> Result<()> {
    if !args.hearth.is_file() {
        bail!(
            "no hearth binary at {}: build it with `cargo build --release -p hearth`, or pass --hearth PATH",
            args.hearth.display()
        );
    }
    let binary_bytes = std::fs::metadata(&args.hearth)?.len();
    let (ticks_per_s, ticks_read) = hub::clock_ticks_per_second();
    if !ticks_read {
        eprintln!("hearth-bench: could not run `getconf CLK_TCK`; assuming 100 clock ticks per second");
    }

    let floor_qos = if args.floor_qos == 1 { rumqttc::QoS::AtLeastOnce } else { rumqttc::QoS::AtMostOnce };
    let mut hub = Hub::start(&args.hearth)?;
    let token = hub.onboard()?;
    // Idle: what the hub spends with nothing to do, so the per-message CPU below can be read against it.
    std::thread::sleep(Duration::from_secs(1));
    let idle_ticks = hub.cpu_ticks()?;
    std::thread::sleep(Duration::from_secs(3));
    let idle_cpu_ms_per_s = (hub.cpu_ticks()? - idle_ticks) as f64 * 1000.0 / ticks_per_s as f64 / 3.0;
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

    let mut runs: Vec<(RunResult, RunResult)> = Vec::new();
    for &rate in &args.rates {
        eprintln!("hearth-bench: {rate} msg/s for {} s, floor then echo", args.seconds);
        let f = floor.run("floor", rate, args.seconds, &hub, ticks_per_s)?;
        let e = echo.run("echo", rate, args.seconds, &hub, ticks_per_s)?;
        runs.push((f, e));
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = hub.rss_bytes()?;
    drop(floor);
    drop(echo);
    let clean = hub.stop();
    if !clean {
        eprintln!("hearth-bench: the hub did not exit cleanly on SIGTERM; its log:\n{}", hub.log_tail());
    }

    let mut out = std::io::stdout().lock();
    write_table(&mut out, &runs)?;
    writeln!(
        out,
        "\nbinary {:.1} MiB, resident {:.1} MiB idle, {:.1} MiB after the load; idle CPU {:.1} ms/s; {PAYLOAD_BYTES}-byte payloads, QoS 0 (floor republishes with QoS {}), \
         {} s per rate after 1 s of warm-up; CPU is the hub process's (broker included), {ticks_per_s} ticks/s{}",
        mib(binary_bytes),
        mib(rss_idle),
        mib(rss_after),
        idle_cpu_ms_per_s,
        args.floor_qos,
        args.seconds,
        if ticks_read { "" } else { " (assumed)" }
    )?;
    let run_json = |r: &RunResult| {
        json!({"mode": r.mode, "rate": r.rate, "sent": r.sent, "received": r.received, "lost": r.lost,
            "p50_ms": num(r.p50_ms), "p99_ms": num(r.p99_ms), "max_ms": num(r.max_ms),
            "throughput_per_s": num(r.throughput), "cpu_ms_per_1000": num(r.cpu_ms_per_1000)})
    };
    let line = json!({
        "bench": "hearth",
        "quick": args.quick,
        "seconds": args.seconds,
        "warmup_seconds": 1,
        "payload_bytes": PAYLOAD_BYTES,
        "qos": 0,
        "floor_republish_qos": args.floor_qos,
        "clock_ticks_per_s": ticks_per_s,
        "clock_ticks_assumed": !ticks_read,
        "binary_bytes": binary_bytes,
        "rss_idle_bytes": rss_idle,
        "idle_cpu_ms_per_s": num(idle_cpu_ms_per_s),
        "rss_after_load_bytes": rss_after,
        "stopped_cleanly": clean,
        "runs": runs.iter().flat_map(|(f, e)| [run_json(f), run_json(e)]).collect::<Vec<_>>(),
        "echo_to_floor": runs.iter().map(|(f, e)| json!({"rate": e.rate,
            "p50": num(e.p50_ms / f.p50_ms), "p99": num(e.p99_ms / f.p99_ms), "max": num(e.max_ms / f.max_ms),
            "throughput": num(e.throughput / f.throughput), "cpu": num(e.cpu_ms_per_1000 / f.cpu_ms_per_1000)}))
            .collect::<Vec<_>>(),
    });
    writeln!(out, "{line}")?;
    Ok(())
}

/// A figure for JSON: rounded to 4 decimals, null when it could not be measured.
fn num(x: f64) -> Value {
    if x.is_finite() { json!((x * 1e4).round() / 1e4) } else { Value::Null }
}

fn cell(x: f64, decimals: usize) -> String {
    if x.is_finite() { format!("{x:.decimals$}") } else { "-".to_owned() }
}

fn write_table(out: &mut impl Write, runs: &[(RunResult, RunResult)]) -> Result<()> {
    let header = ["mode", "rate/s", "sent", "received", "lost", "p50 ms", "p99 ms", "max ms", "msg/s", "CPU ms/1k msg"];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for r in runs.iter().flat_map(|(f, e)| [f, e]) {
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
    let mut ratios: Vec<Vec<String>> =
        vec![["rate/s", "p50", "p99", "max", "msg/s", "CPU"].iter().map(|h| (*h).to_owned()).collect()];
    for (f, e) in runs {
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
