//! The `powerstrip` example as a real process over pipes: it plays the exchange of
//! `adapters/sdk/PLUGINS.md` §11, line for line where the runner allows.
// A test of a real process over pipes, from plain threads: waiting with std::thread::sleep is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use hearth_plugin::manifest::Manifest;
use serde_json::{Value, json};

/// The example's directory.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("powerstrip")
}

/// The built example (`cargo test` builds examples; built here, once, if it is missing).
fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate_or_build).clone()
}

fn locate_or_build() -> PathBuf {
    let name = format!("powerstrip{}", std::env::consts::EXE_SUFFIX);
    // This test runs from target/<profile>/deps/, and examples land in target/<profile>/examples/.
    let profile_dir = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()));
    let profile_dir = profile_dir.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug"));
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "hearth-plugin", "--example", "powerstrip"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example powerstrip failed");
    }
    assert!(path.exists(), "no example binary at {}", path.display());
    path
}

/// The plugin process, seen from the hub.
struct Plugin {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Plugin {
    fn start() -> Plugin {
        let mut child = Command::new(binary())
            .current_dir(example_dir())
            .env("HEARTH_PLUGIN_ID", "powerstrip")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the powerstrip example");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let keep = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            keep.lock().unwrap().push_str(&text);
        });
        Plugin { stdin: child.stdin.take(), child, lines, stderr }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next raw line, or `None` at the end of stdout.
    fn raw(&mut self) -> Option<String> {
        match self.lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line from the plugin within 10 s; its stderr: {}", self.stderr.lock().unwrap())
            }
        }
    }

    /// The next line, which must be exactly `expected` (§11's text).
    fn expect(&mut self, expected: &str) {
        assert_eq!(self.raw().as_deref(), Some(expected));
    }

    /// The next line that is not a `log`, parsed.
    fn next(&mut self) -> Value {
        loop {
            let line = self.raw().expect("a line, not the end of stdout");
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
            if value["type"] != "log" {
                return value;
            }
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DEVICE: &str = r#"{"type":"device","device":{"id":"powerstrip:vps-0001","name":"Virtual power strip","manufacturer":"Hearth examples","model":"VPS-2","firmware":"1.0.0","power_source":"mains","features":[{"key":"state_l1","capability":"on_off","type":"bool","access":{"observe":true,"set":true,"get":false},"endpoint":"l1","category":"primary","label":"Outlet 1"},{"key":"state_l2","capability":"on_off","type":"bool","access":{"observe":true,"set":true,"get":false},"endpoint":"l2","category":"primary","label":"Outlet 2"},{"key":"power","capability":"power","type":"number","min":0.0,"unit":"W","access":{"observe":true,"set":false,"get":true},"category":"primary"}]}}"#;
const ONLINE: &str = r#"{"type":"availability","device":"powerstrip:vps-0001","availability":{"state":"online"}}"#;

#[test]
fn the_powerstrip_plays_the_example_exchange_of_plugins_md() {
    let mut p = Plugin::start();
    p.send(r#"{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{"load_watts":60}}"#);
    p.expect(
        r#"{"type":"hello","protocol":1,"id":"powerstrip","name":"Virtual power strip","version":"1.0.0","discovers":{},"actions":["identify"]}"#,
    );
    p.send(r#"{"type":"secrets","secrets":{}}"#);
    p.send(r#"{"type":"inbox","decisions":{}}"#);
    p.send(r#"{"type":"ready"}"#);
    p.expect(
        r#"{"type":"log","level":"info","message":"Virtual power strip started with 2 outlets.","fields":{"load_watts":60.0}}"#,
    );
    p.expect(DEVICE);
    p.expect(ONLINE);
    p.expect(
        r#"{"type":"state","device":"powerstrip:vps-0001","values":{"power":0.0,"state_l1":false,"state_l2":false}}"#,
    );
    p.expect(r#"{"type":"status","status":{"state":"running"}}"#);
    p.send(r#"{"type":"ping","id":1}"#);
    p.expect(r#"{"type":"pong","id":1}"#);

    // Alice turns on outlet 2: the state carries her context as cause.
    p.send(
        r#"{"type":"command","device":"powerstrip:vps-0001","set":{"state_l2":true},"context":{"id":"19ac4b2e1f3-2a","origin":{"kind":"user","name":"alice"}}}"#,
    );
    p.expect(
        r#"{"type":"state","device":"powerstrip:vps-0001","values":{"power":60.0,"state_l2":true},"cause":{"id":"19ac4b2e1f3-2a","origin":{"kind":"user","name":"alice"}}}"#,
    );
    // An automation asks for a fresh power reading.
    p.send(
        r#"{"type":"command","device":"powerstrip:vps-0001","refresh":["power"],"context":{"id":"19ac4b2e1f3-2c","origin":{"kind":"automation","id":"night_check"},"parent":"19ac4b2e1f3-2b"}}"#,
    );
    p.expect(
        r#"{"type":"state","device":"powerstrip:vps-0001","values":{"power":60.0},"cause":{"id":"19ac4b2e1f3-2c","origin":{"kind":"automation","id":"night_check"},"parent":"19ac4b2e1f3-2b"}}"#,
    );
    p.send(r#"{"type":"ping","id":2}"#);
    p.expect(r#"{"type":"pong","id":2}"#);

    // The administrator changes the load: the plugin applies it while running. (The runner
    // restarts the adapter for it, which shows in two log lines, skipped here.)
    p.send(r#"{"type":"config","config":{"load_watts":100}}"#);
    assert_eq!(p.next(), json!({"type":"state","device":"powerstrip:vps-0001","values":{"power":100.0}}));
    p.send(r#"{"type":"ping","id":3}"#);
    assert_eq!(p.next(), json!({"type":"pong","id":3}), "nothing is repeated after the restart");

    // The identify action, and one with an outlet the strip does not have.
    p.send(
        r#"{"type":"action","id":"a1","action":"identify","params":{"outlet":"l1"},"context":{"id":"19ac4b2e1f3-30","origin":{"kind":"user","name":"alice"}}}"#,
    );
    p.expect(r#"{"type":"action_result","id":"a1","result":{"blinked":"l1","seconds":3.0}}"#);
    p.send(
        r#"{"type":"action","id":"a2","action":"identify","params":{"outlet":"l3"},"context":{"id":"19ac4b2e1f3-31","origin":{"kind":"user","name":"alice"}}}"#,
    );
    p.expect(
        r#"{"type":"action_result","id":"a2","error":{"code":"bad_params","message":"`outlet` must be l1 or l2, not l3"}}"#,
    );

    // The hub's refresh: the full picture, from the runner.
    p.send(r#"{"type":"refresh"}"#);
    p.expect(DEVICE);
    p.expect(ONLINE);
    p.expect(
        r#"{"type":"state","device":"powerstrip:vps-0001","values":{"power":100.0,"state_l1":false,"state_l2":true}}"#,
    );

    // What the plugin refuses.
    p.send(r#"{"type":"flush"}"#);
    p.expect(r#"{"type":"error","code":"unknown_type","message":"unknown message type `flush`","line":14,"refused_type":"flush"}"#);
    p.send(
        r#"{"type":"command","device":"powerstrip:vps-0002","set":{"state_l1":true},"context":{"id":"x","origin":{"kind":"system"}}}"#,
    );
    let e = p.next();
    assert_eq!((e["code"].as_str(), e["line"].as_u64()), (Some("unknown_device"), Some(15)));

    // The hub stops: a last log, then exit 0 well within 5 seconds.
    let asked = Instant::now();
    p.send(r#"{"type":"shutdown"}"#);
    p.expect(r#"{"type":"log","level":"info","message":"Virtual power strip stopped."}"#);
    assert_eq!(p.raw(), None, "stdout closes");
    let status = loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            break status;
        }
        assert!(asked.elapsed() < Duration::from_secs(5), "the plugin did not exit within 5 s");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}; stderr: {}", p.stderr.lock().unwrap());
    assert!(asked.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_powerstrip_exits_at_once_when_the_hub_goes_and_with_1_after_bye() {
    let mut p = Plugin::start();
    p.send(r#"{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{}}"#);
    assert_eq!(p.next()["type"], "hello");
    let asked = Instant::now();
    p.stdin = None; // end of file on its stdin
    assert_eq!(p.raw(), None);
    assert!(p.child.wait().unwrap().success());
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());

    let mut p = Plugin::start();
    p.send(r#"{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{}}"#);
    assert_eq!(p.next()["type"], "hello");
    p.send(r#"{"type":"bye","code":"id_mismatch","reason":"the plugin says its id is `powerstrip`; plugin.toml says `strip`"}"#);
    assert_eq!(p.raw(), None);
    assert_eq!(p.child.wait().unwrap().code(), Some(1));
    // bye's reason goes to stderr (read by a thread: give it a moment).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !p.stderr.lock().unwrap().contains("plugin.toml says `strip`") {
        assert!(Instant::now() < deadline, "stderr: {}", p.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_powerstrip_manifest_is_valid_and_its_config_has_the_documented_defaults() {
    let m = Manifest::load(&example_dir()).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((m.id.as_str(), m.version.as_str(), m.protocol), ("powerstrip", "1.0.0", 1));
    assert_eq!(m.command, ["./powerstrip"]);
    assert_eq!(m.validate_config(&json!({})).unwrap(), json!({"load_watts": 60, "outlets": 2}));
    assert!(m.validate_config(&json!({"outlets": 9})).is_err());
    assert!(m.validate_config(&json!({"load_watts": -1})).is_err());
    assert!(m.validate_config(&json!({"outlets": 1.5})).is_err());
}

#[test]
fn the_powerstrip_refuses_a_configuration_it_cannot_use_and_names_the_key() {
    let mut p = Plugin::start();
    p.send(r#"{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{"load_watts":60,"outlets":12}}"#);
    assert_eq!(p.next()["type"], "hello");
    p.send(r#"{"type":"secrets","secrets":{}}"#);
    p.send(r#"{"type":"inbox","decisions":{}}"#);
    p.send(r#"{"type":"ready"}"#);
    assert_eq!(
        p.next(),
        json!({"type":"status","status":{"state":"unavailable","reason":"`outlets` must be from 1 to 8, not 12","code":"bad_config"}})
    );
    // A good configuration brings the strip up, with three outlets this time.
    p.send(r#"{"type":"config","config":{"load_watts":60,"outlets":3}}"#);
    let device = p.next();
    assert_eq!(device["device"]["model"], "VPS-3");
    assert_eq!(device["device"]["features"].as_array().map(Vec::len), Some(4));
    assert_eq!(p.next()["type"], "availability");
    assert_eq!(
        p.next(),
        json!({"type":"state","device":"powerstrip:vps-0001","values":{"power":0.0,"state_l1":false,"state_l2":false,"state_l3":false}})
    );
    assert_eq!(p.next(), json!({"type":"status","status":{"state":"running"}}));
    p.send(r#"{"type":"shutdown"}"#);
    assert!(p.child.wait().unwrap().success());
}
