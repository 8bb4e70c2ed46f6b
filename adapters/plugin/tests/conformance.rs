//! The conformance kit against small throw-away plugins: Python scripts that speak the raw
//! protocol, one good and several broken in one way each.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hearth_plugin::conformance::{Options, Outcome, Report, STEPS, check};

/// A plugin that speaks protocol 1 by hand. Its first argument breaks it in one way:
/// `good`, `no_hello`, `wrong_id`, `bad_hello`, `no_cause`, `crash_unknown`, `no_exit`, `chatty`, `sloppy`
/// (bad device messages), `sensor` (nothing to set or refresh).
const PLUGIN: &str = r#"
import json
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else "good"
ID = "testplug"
DEV = ID + ":strip-1"
FEATURES = [
    {"key": "on", "capability": "on_off", "type": "bool",
     "access": {"observe": True, "set": True, "get": False}},
    {"key": "level", "capability": "brightness", "type": "number", "min": 0.0, "max": 100.0, "step": 1.0,
     "unit": "%", "access": {"observe": True, "set": True, "get": True}},
]
values = {"on": False, "level": 20.0}
if MODE == "sensor":
    FEATURES = [{"key": "temperature", "capability": "temperature", "type": "number", "unit": "°C",
                 "access": {"observe": True, "set": False, "get": False}}]
    values = {"temperature": 21.5}


def send(obj):
    sys.stdout.write(json.dumps(obj, allow_nan=False) + "\n")
    sys.stdout.flush()


def error(code, message, line, refused=None):
    e = {"type": "error", "code": code, "message": message, "line": line}
    if refused:
        e["refused_type"] = refused
    send(e)


def announce():
    send({"type": "device", "device": {"id": DEV, "name": "Test strip", "features": FEATURES}})
    if MODE == "sloppy":
        send({"type": "state", "device": DEV, "values": {"on": "yes", "level": 140.0}})
        send({"type": "state", "device": "elsewhere:strip-1", "values": {"on": True}})
        send({"type": "availability", "device": ID + ":never-announced", "availability": {"state": "online"}})
        return
    send({"type": "availability", "device": DEV, "availability": {"state": "online"}})
    send({"type": "state", "device": DEV, "values": values})


sys.stderr.write("test plugin starting in mode %s\n" % MODE)
sys.stderr.flush()
if MODE == "chatty":
    print("Loading the test plugin...", flush=True)
number = 0
while True:
    raw = sys.stdin.readline()
    if not raw:
        break
    number += 1
    text = raw.strip()
    if not text:
        continue
    try:
        msg = json.loads(text)
    except ValueError as e:
        error("not_json", "the line is not JSON: %s" % e, number)
        continue
    if not isinstance(msg, dict):
        error("not_an_object", "the line is not an object", number)
        continue
    kind = msg.get("type")
    if not isinstance(kind, str):
        error("no_type", "the object has no string field `type`", number)
        continue
    if kind == "hello":
        if MODE == "no_hello":
            continue
        send({"type": "log", "level": "info", "message": "starting"})
        hello = {"type": "hello", "protocol": 1, "id": "someone_else" if MODE == "wrong_id" else ID,
                 "name": "Test plugin", "version": "1.0.0", "discovers": {}}
        if MODE == "bad_hello":
            del hello["discovers"]
        send(hello)
    elif kind in ("secrets", "inbox", "config", "error", "bye"):
        pass
    elif kind in ("ready", "refresh"):
        announce()
    elif kind == "ping":
        send({"type": "pong", "id": msg.get("id")})
    elif kind == "command":
        if "context" not in msg or not isinstance(msg.get("device"), str):
            error("bad_message", "`command`: missing field `context`", number, "command")
            continue
        if msg["device"] != DEV:
            error("unknown_device", "there is no device %s" % msg["device"], number, "command")
            continue
        changed = {}
        for key, value in msg.get("set", {}).items():
            values[key] = value
            changed[key] = value
        refresh = msg.get("refresh")
        if refresh:
            for key in (refresh if isinstance(refresh, list) else ["level"]):
                changed[key] = values[key]
        state = {"type": "state", "device": DEV, "values": changed}
        if MODE != "no_cause":
            state["cause"] = msg["context"]
        send(state)
    elif kind == "shutdown":
        if MODE == "no_exit":
            continue
        send({"type": "log", "level": "info", "message": "stopped"})
        sys.exit(0)
    else:
        if MODE == "crash_unknown":
            raise RuntimeError("unknown message type %r" % kind)
        error("unknown_type", "unknown message type `%s`" % kind, number, kind)
"#;

/// A plugin directory under the temporary directory, removed when dropped.
struct PluginDir(PathBuf);

impl PluginDir {
    fn new(manifest: &str) -> PluginDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hearth-conformance-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a plugin directory");
        std::fs::write(dir.join("plugin.toml"), manifest).expect("plugin.toml");
        std::fs::write(dir.join("plugin.py"), PLUGIN).expect("plugin.py");
        PluginDir(dir)
    }

    /// A plugin running `plugin.py` in `mode`, with extra manifest lines.
    fn python(mode: &str, extra: &str) -> PluginDir {
        PluginDir::new(&format!(
            "id = \"testplug\"\nname = \"Test plugin\"\nversion = \"1.0.0\"\nprotocol = 1\ncommand = [\"python3\", \"plugin.py\", \"{mode}\"]\n{extra}"
        ))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PluginDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fast() -> Options {
    Options { hub_version: "0.1.0-test".into(), timeouts: 0.2, ..Options::default() }
}

async fn run(dir: &PluginDir, options: &Options) -> Report {
    let report = check(dir.path(), options).await;
    eprintln!("{report}\n");
    report
}

fn outcome<'a>(report: &'a Report, step: &str) -> &'a Outcome {
    &report.step(step).unwrap_or_else(|| panic!("no step {step}")).outcome
}

/// The step failed, and its reason or one of its further problems holds `words`.
#[track_caller]
fn fails_with(report: &Report, step: &str, words: &str) {
    let s = report.step(step).unwrap_or_else(|| panic!("no step {step}"));
    match &s.outcome {
        Outcome::Fail(reason) => assert!(
            reason.contains(words) || s.details.iter().any(|d| d.starts_with("problem: ") && d.contains(words)),
            "{step}: {reason:?} lacks {words:?}\n{report}"
        ),
        other => panic!("{step} is {other:?}, not a failure with {words:?}\n{report}"),
    }
}

#[track_caller]
fn skipped_after(report: &Report, first: &str, failed: &str) {
    let at = STEPS.iter().position(|s| *s == first).expect("a step name");
    for step in &STEPS[at..] {
        if *step == "output hygiene" {
            continue;
        }
        assert_eq!(outcome(report, step), &Outcome::Skip(format!("not reached: {failed} failed")), "{step}\n{report}");
    }
}

#[tokio::test]
async fn a_good_plugin_passes_every_step() {
    let dir = PluginDir::python("good", "");
    let report = run(&dir, &Options { hub_version: "0.1.0-test".into(), ..Options::default() }).await;
    assert!(report.passed(), "{report}");
    assert_eq!(report.counts(), (11, 0, 0), "{report}");
    assert!(report.stderr.is_empty(), "stderr is kept only for a failure");
    let text = report.to_string();
    assert!(text.contains("Hearth plugin conformance report: testplug 1.0.0"), "{text}");
    assert!(text.contains("hub:       0.1.0-test"), "{text}");
    assert!(text.ends_with("11 passed, 0 failed, 0 skipped"), "{text}");
    let command = report.step("command").unwrap();
    assert!(command.details.iter().any(|d| d.contains(r#""set":{"on":true}"#)), "{command:?}");
    assert!(report.step("shutdown").unwrap().details[0].starts_with("exited with status 0 after "));
    let malformed = &report.step("malformed input").unwrap().details;
    for code in ["not_json", "not_an_object", "unknown_type", "bad_message", "unknown_device"] {
        assert!(malformed.iter().any(|d| d.ends_with(&format!("error `{code}`"))), "{code}: {malformed:?}");
    }
    let json = report.to_json();
    assert_eq!(json["passed"], true);
    assert_eq!(json["plugin"]["id"], "testplug");
    assert_eq!(json["steps"].as_array().map(Vec::len), Some(11));
}

#[tokio::test]
async fn a_plugin_that_never_says_hello_times_out() {
    let dir = PluginDir::python("no_hello", "");
    let started = std::time::Instant::now();
    let report = run(&dir, &fast()).await;
    fails_with(&report, "handshake", "no `hello` within 2 s");
    skipped_after(&report, "devices", "handshake");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "{:?}", started.elapsed());
    assert!(report.stderr.iter().any(|l| l.contains("mode no_hello")), "{:?}", report.stderr);
    assert!(report.to_string().contains("  | test plugin starting in mode no_hello"));
}

#[tokio::test]
async fn a_plugin_with_another_id_is_refused() {
    let dir = PluginDir::python("wrong_id", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "handshake", "says id `someone_else`, but plugin.toml says `testplug`");
    fails_with(&report, "handshake", "id_mismatch");
    skipped_after(&report, "devices", "handshake");
}

#[tokio::test]
async fn a_malformed_hello_is_refused_at_once() {
    let dir = PluginDir::python("bad_hello", "");
    let report = run(&dir, &fast()).await;
    fails_with(
        &report,
        "handshake",
        "the plugin's `hello` (stdout line 2) is malformed: `hello`: missing field `discovers`",
    );
    skipped_after(&report, "devices", "handshake");
    fails_with(&report, "output hygiene", "stdout line 2 was refused (bad_message)");
}

#[tokio::test]
async fn a_plugin_that_drops_the_cause_fails_the_command() {
    let dir = PluginDir::python("no_cause", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "command", "a state came without `cause`");
    let (passed, failed, skipped) = report.counts();
    assert_eq!((passed, failed, skipped), (10, 1, 0), "{report}");
}

#[tokio::test]
async fn a_plugin_that_crashes_on_an_unknown_type_fails_with_its_exit_and_stderr() {
    let dir = PluginDir::python("crash_unknown", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "malformed input", "exited with status 1 after the kit sent an unknown type");
    assert_eq!(outcome(&report, "shutdown"), &Outcome::Skip("not reached: malformed input failed".into()));
    assert_eq!(outcome(&report, "output hygiene"), &Outcome::Pass, "{report}");
    assert!(
        report.stderr.iter().any(|l| l.contains("RuntimeError: unknown message type 'flush_everything'")),
        "{report}"
    );
    assert!(report.stderr.len() <= 20);
}

#[tokio::test]
async fn a_plugin_that_ignores_shutdown_is_killed() {
    let dir = PluginDir::python("no_exit", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "shutdown", "still running 1 s after `shutdown`; the kit killed it");
    assert_eq!(report.counts(), (10, 1, 0), "{report}");
}

#[tokio::test]
async fn text_on_stdout_fails_output_hygiene() {
    let dir = PluginDir::python("chatty", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "output hygiene", "line 1 is not JSON: Loading the test plugin...");
    assert_eq!(outcome(&report, "handshake"), &Outcome::Pass);
    let handshake = report.step("handshake").unwrap();
    assert!(handshake.details.iter().any(|d| d.contains("line 1, before `hello`, was not readable")), "{handshake:?}");
}

#[tokio::test]
async fn another_version_is_only_a_warning() {
    let dir = PluginDir::new(
        "id = \"testplug\"\nname = \"Test plugin\"\nversion = \"1.1.0\"\nprotocol = 1\ncommand = [\"python3\", \"plugin.py\"]\n",
    );
    let report = run(&dir, &fast()).await;
    assert!(report.passed(), "{report}");
    let handshake = report.step("handshake").unwrap();
    assert!(
        handshake
            .details
            .iter()
            .any(|d| d.starts_with("warning: the plugin says version 1.0.0, plugin.toml says 1.1.0")),
        "{handshake:?}"
    );
}

#[tokio::test]
async fn the_config_is_checked_against_the_schema_first() {
    let schema = "[config.station]\ntype = \"string\"\nrequired = true\n[config.interval_secs]\ntype = \"integer\"\ndefault = 30\n";
    let dir = PluginDir::python("good", schema);
    let report = run(&dir, &fast()).await;
    fails_with(&report, "manifest", "`station` is required (text)");
    skipped_after(&report, "start", "manifest");
    assert_eq!(outcome(&report, "output hygiene"), &Outcome::Skip("not reached: manifest failed".into()));

    let options = Options { config: Some(serde_json::json!({"station": "roof"})), ..fast() };
    let report = run(&dir, &options).await;
    assert!(report.passed(), "{report}");
    let manifest = report.step("manifest").unwrap();
    assert_eq!(manifest.details, [r#"config sent in `hello`: {"interval_secs":30,"station":"roof"}"#]);
}

#[tokio::test]
async fn a_missing_program_is_named() {
    let dir = PluginDir::new(
        "id = \"testplug\"\nname = \"T\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"hearth-no-such-program\"]\n",
    );
    let report = run(&dir, &fast()).await;
    fails_with(&report, "start", "the program `hearth-no-such-program` was not found on PATH");
    skipped_after(&report, "handshake", "start");

    let dir = PluginDir::new(
        "id = \"testplug\"\nname = \"T\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"./bin/plugin\", \"--x\"]\n",
    );
    let report = run(&dir, &fast()).await;
    fails_with(&report, "start", "bin/plugin` does not exist");
}

#[tokio::test]
async fn the_plugin_runs_in_its_directory_with_a_clean_environment() {
    let dir = PluginDir::new(
        "id = \"envcheck\"\nname = \"E\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"python3\", \"env.py\"]\n",
    );
    std::fs::write(
        dir.path().join("env.py"),
        r#"
import json, os, sys
sys.stdin.readline()
env = dict(os.environ)
sys.stderr.write(json.dumps({"env": env, "cwd": os.getcwd()}) + "\n")
sys.stderr.flush()
"#,
    )
    .unwrap();
    let report = run(&dir, &fast()).await;
    fails_with(&report, "handshake", "exited with status 0 before its `hello`");
    let line = report.stderr.iter().find(|l| l.starts_with("{\"env\"")).expect("the env line");
    let seen: serde_json::Value = serde_json::from_str(line).unwrap();
    let env = seen["env"].as_object().unwrap();
    // The kit's own environment does not reach the plugin, but PATH and LANG; a `python3` that
    // is a wrapper script (pyenv) may add variables of its own.
    let wrapper = |k: &str| k.contains("PYENV") || ["PWD", "SHLVL", "LC_CTYPE"].contains(&k);
    for (key, value) in std::env::vars() {
        if !["PATH", "LANG", "HOME"].contains(&key.as_str()) && !wrapper(&key) {
            assert!(env.get(&key).and_then(|v| v.as_str()) != Some(value.as_str()), "{key} leaked: {env:?}");
        }
    }
    for key in ["HEARTH_PLUGIN_DATA", "HEARTH_PLUGIN_ID", "HOME"] {
        assert!(env.contains_key(key), "{key}: {env:?}");
    }
    assert_eq!(env["HEARTH_PLUGIN_ID"], "envcheck");
    assert_eq!(env["HOME"], env["HEARTH_PLUGIN_DATA"]);
    let data = env["HOME"].as_str().unwrap();
    assert!(!Path::new(data).exists(), "the data directory {data} is removed");
    assert_eq!(Path::new(seen["cwd"].as_str().unwrap()), dir.path().canonicalize().unwrap());
}

#[tokio::test]
async fn bad_device_messages_fail_devices_and_state() {
    let dir = PluginDir::python("sloppy", "");
    let report = run(&dir, &fast()).await;
    fails_with(&report, "devices", "no `availability` within 1 s of `ready` for `testplug:strip-1`");
    fails_with(&report, "devices", "names `elsewhere:strip-1`, which is not one of the plugin's devices");
    fails_with(&report, "devices", "`availability` for `testplug:never-announced`, which was not announced");
    fails_with(&report, "state", "feature `on` takes true or false, not text \"yes\"");
    let state = report.step("state").expect("state");
    assert!(state.details.iter().any(|d| d.contains("feature `level` takes 0 to 100, not 140")), "{state:?}");
    fails_with(&report, "refresh", "`testplug:strip-1` (`device` but no `availability` after it)");
    // The rest still runs: the plugin is alive and answers.
    for step in ["ping", "command", "malformed input", "output hygiene", "shutdown"] {
        assert_eq!(outcome(&report, step), &Outcome::Pass, "{step}\n{report}");
    }
}

#[tokio::test]
async fn nothing_to_command_is_a_skip() {
    let dir = PluginDir::python("sensor", "");
    let report = run(&dir, &fast()).await;
    assert!(report.passed(), "{report}");
    assert!(
        matches!(outcome(&report, "command"), Outcome::Skip(r) if r.starts_with("no device has a feature the kit can set")),
        "{report}"
    );
    assert_eq!(report.counts(), (10, 0, 1));
}
