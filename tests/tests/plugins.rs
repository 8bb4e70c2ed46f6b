//! Adapter plugins end to end, with the real binary: the two example plugins (a Python weather
//! station and a Rust power strip) installed in the plugins directory, enabled from the command
//! line and the API, configured through the API and controlled like any device; misbehaving
//! plugins (one that panics, one that exits, one that hangs, one that writes garbage, one that
//! claims other adapters' devices) restarted, quarantined or refused while the API answers
//! throughout; and `hearth plugin test` on the examples and on a broken plugin.
//!
//! The hub runs with `HEARTH_PLUGIN_TIMING=fast` (pings every 0.5 s, pongs within 2 s, restarts
//! after 0.2 s doubling to 2 s), so hangs and quarantine show within seconds.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hearth_tests::Hub;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The power strip example, built once.
fn powerstrip_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "hearth-plugin", "--example", "powerstrip"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the powerstrip example failed");
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().join("examples").join("powerstrip")
    })
    .clone()
}

/// Installs the two examples into `plugins` as a user would: the weather station with the
/// Python module beside it, the power strip's binary beside its plugin.toml.
fn install_examples(plugins: &Path) {
    let weather = plugins.join("weather");
    std::fs::create_dir_all(&weather).unwrap();
    let python = root().join("adapters/plugin/python");
    for f in ["plugin.toml", "weather.py"] {
        std::fs::copy(python.join("examples/weather").join(f), weather.join(f)).unwrap();
    }
    std::fs::copy(python.join("hearth_plugin.py"), weather.join("hearth_plugin.py")).unwrap();
    let strip = plugins.join("powerstrip");
    std::fs::create_dir_all(&strip).unwrap();
    std::fs::copy(root().join("adapters/plugin/examples/powerstrip/plugin.toml"), strip.join("plugin.toml")).unwrap();
    std::fs::copy(powerstrip_bin(), strip.join("powerstrip")).unwrap();
}

/// Installs a misbehaving plugin `id` running `tests/plugins/misbehave.py MODE`.
fn install_misbehaving(plugins: &Path, id: &str, mode: &str) {
    let dir = plugins.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let script = root().join("tests/plugins/misbehave.py");
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "id = \"{id}\"\nname = \"Misbehaving ({mode})\"\nversion = \"1.0.0\"\nprotocol = 1\ncommand = [\"python3\", {:?}, \"{mode}\"]\n",
            script.display().to_string()
        ),
    )
    .unwrap();
}

fn start() -> (Hub, String) {
    let hub = Hub::start_with_config_env(
        "[adapters.demo]\nenabled = true\ninterval_secs = 3600\n",
        &[("HEARTH_PLUGIN_TIMING", "fast")],
    );
    let token = hub.onboard();
    (hub, token)
}

fn plugin(hub: &Hub, token: &str, id: &str) -> Value {
    hub.get(&format!("/api/v1/plugins/{id}"), Some(token)).body
}

fn device(hub: &Hub, token: &str, id: &str) -> Value {
    hub.get(&format!("/api/v1/devices/{id}"), Some(token)).body
}

fn wait_device(hub: &Hub, token: &str, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let d = device(hub, token, id);
        if f(&d) {
            return d;
        }
        assert!(start.elapsed() < T, "{id}: {what}; it is {d}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_plugin(hub: &Hub, token: &str, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let p = plugin(hub, token, id);
        if f(&p) {
            return p;
        }
        assert!(start.elapsed() < T, "plugin {id}: {what}; it is {p}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value(d: &Value, feature: &str) -> Value {
    d["state"][feature]["value"].clone()
}

#[test]
fn both_example_plugins_run_and_their_devices_are_controlled_like_any_other() {
    let (mut hub, token) = start();
    let plugins = hub.data_dir.join("plugins");
    install_examples(&plugins);

    // The command line lists both, disabled; it enables the weather station, the API the strip.
    let (ok, out, err) = hub.cli(&["plugin", "list"], None);
    assert!(ok, "{err}");
    assert!(out.contains("weather\t1.0.0\tdisabled\tVirtual weather station"), "{out}");
    assert!(out.contains("powerstrip\t") && out.contains("disabled"), "{out}");
    let (ok, out, err) = hub.cli(&["plugin", "enable", "weather"], None);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Enabled plugin `weather`"), "{out}");
    let enabled = hub.post("/api/v1/plugins/powerstrip/enable", Some(&token), json!({}));
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    assert_eq!(enabled.body["enabled"], true);

    // Their devices arrive, online, with values.
    let station = wait_device(&hub, &token, "weather:station-1", "online with a temperature", |d| {
        d["availability"]["state"] == "online" && value(d, "temperature").is_number()
    });
    assert_eq!(station["name"], "Garden");
    assert_eq!(station["adapter"], "weather");
    let strip = wait_device(&hub, &token, "powerstrip:vps-0001", "online", |d| d["availability"]["state"] == "online");
    assert_eq!(value(&strip, "state_l2"), false);
    let listed = hub.get("/api/v1/plugins", Some(&token)).body;
    for p in listed["plugins"].as_array().unwrap() {
        assert_eq!(p["state"], "running", "{p}");
        assert!(p["pid"].as_u64().is_some(), "{p}");
    }
    let adapters = hub.get("/api/v1/adapters", Some(&token)).body;
    let strip_adapter = adapters.as_array().unwrap().iter().find(|a| a["id"] == "powerstrip").cloned().unwrap();
    assert_eq!(strip_adapter["status"]["state"], "running", "{strip_adapter}");
    assert_eq!(strip_adapter["actions"], json!(["identify"]), "{strip_adapter}");

    // A command through the API: the outlet turns on and draws the configured load, and the
    // history says who did it.
    let sent =
        hub.post("/api/v1/devices/powerstrip:vps-0001/commands", Some(&token), json!({"set": {"state_l2": true}}));
    assert_eq!(sent.status, 202, "{}", sent.text);
    wait_device(&hub, &token, "powerstrip:vps-0001", "outlet 2 on, 60 W", |d| {
        value(d, "state_l2") == true && value(d, "power") == 60.0
    });
    let h = hub.get("/api/v1/devices/powerstrip:vps-0001/history?feature=state_l2", Some(&token)).body;
    let last = h["entries"].as_array().unwrap().last().cloned().unwrap();
    assert_eq!(last["context"]["origin"], json!({"kind": "user", "name": "owner"}), "{last}");

    // The configuration goes through the API, checked against the schema.
    let bad = hub.request(
        "PUT",
        "/api/v1/plugins/powerstrip/config",
        Some(&token),
        Some(&json!({"load_watts": -5, "colour": "red"})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("load_watts") && bad.text.contains("colour"), "{}", bad.text);
    let good = hub.request("PUT", "/api/v1/plugins/powerstrip/config", Some(&token), Some(&json!({"load_watts": 100})));
    assert_eq!(good.status, 200, "{}", good.text);
    assert_eq!(good.body["config"], json!({"load_watts": 100}));
    wait_device(&hub, &token, "powerstrip:vps-0001", "100 W after the new load", |d| value(d, "power") == 100.0);
    let renamed =
        hub.request("PUT", "/api/v1/plugins/weather/config", Some(&token), Some(&json!({"station_name": "Roof"})));
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    wait_device(&hub, &token, "weather:station-1", "renamed Roof", |d| d["name"] == "Roof");

    // A refresh of the station is answered; the strip's management action works.
    let refresh =
        hub.post("/api/v1/devices/weather:station-1/commands", Some(&token), json!({"refresh": ["temperature"]}));
    assert_eq!(refresh.status, 202, "{}", refresh.text);
    let blink = hub.post("/api/v1/adapters/powerstrip/actions/identify", Some(&token), json!({"outlet": "l1"}));
    assert_eq!(blink.status, 200, "{}", blink.text);
    assert_eq!(blink.body["result"]["blinked"], "l1", "{}", blink.text);
    let wrong = hub.post("/api/v1/adapters/powerstrip/actions/identify", Some(&token), json!({"outlet": "l9"}));
    assert_eq!(wrong.status, 400, "{}", wrong.text);
    assert!(wrong.text.contains("l9"), "{}", wrong.text);

    // Disabled from the command line: the running hub stops it, and its device says why.
    let (ok, out, err) = hub.cli(&["plugin", "disable", "weather"], None);
    assert!(ok, "{out}{err}");
    let off = wait_device(&hub, &token, "weather:station-1", "offline because disabled", |d| {
        d["availability"]["state"] == "offline"
    });
    assert_eq!(off["availability"]["reason"], "plugin `weather` is disabled", "{off}");
    assert_eq!(plugin(&hub, &token, "weather")["state"], "disabled");
    let refused =
        hub.post("/api/v1/devices/weather:station-1/commands", Some(&token), json!({"refresh": ["humidity"]}));
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert!(refused.text.contains("adapter `weather` is not running: the plugin is disabled"), "{}", refused.text);

    // The hub stops its plugins politely when it stops.
    assert!(hub.stop(), "the hub stops cleanly:\n{}", hub.log());
    let log = hub.log();
    assert!(log.contains("Stopped plugin") && !log.contains("it was killed"), "{log}");
}

#[test]
fn misbehaving_plugins_are_restarted_or_quarantined_while_the_hub_keeps_serving() {
    let (hub, token) = start();
    let plugins = hub.data_dir.join("plugins");
    for (id, mode) in
        [("panicky", "panic"), ("quitter", "exit"), ("sleepy", "hang"), ("noisy", "garbage"), ("grabby", "foreign")]
    {
        install_misbehaving(&plugins, id, mode);
        let enabled = hub.post(&format!("/api/v1/plugins/{id}/enable"), Some(&token), json!({}));
        assert_eq!(enabled.status, 200, "{id}: {}", enabled.text);
    }
    let lamp_before = device(&hub, &token, "demo:living_lamp");

    // The API answers throughout, promptly.
    let start = Instant::now();
    let mut slowest = Duration::ZERO;
    let quarantined = loop {
        let t = Instant::now();
        assert_eq!(hub.get("/healthz", None).status, 200);
        let list = hub.get("/api/v1/devices", Some(&token));
        assert_eq!(list.status, 200);
        slowest = slowest.max(t.elapsed());
        let p = plugin(&hub, &token, "panicky");
        if p["state"] == "quarantined" {
            break p;
        }
        assert!(start.elapsed() < T, "panicky is not quarantined: {p}\n{}", hub.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(slowest < Duration::from_secs(5), "an API call took {slowest:?}");

    // The panicking one: quarantined after 5 crashes, with its traceback in the API, its device
    // offline with the reason, its adapter failed.
    assert_eq!(quarantined["crashes"], 5, "{quarantined}");
    assert!(quarantined["reason"].as_str().unwrap().starts_with("crashed 5 times in 10 minutes"), "{quarantined}");
    let stderr = quarantined["stderr"].as_array().unwrap();
    assert!(stderr.iter().any(|l| l.as_str().unwrap().contains("Traceback")), "{quarantined}");
    let d = wait_device(&hub, &token, "panicky:thing-1", "offline, quarantined", |d| {
        d["availability"]["reason"] == "plugin `panicky` is quarantined: it crashed 5 times in 10 minutes"
    });
    assert_eq!(d["availability"]["code"], "adapter_failed");
    let adapters = hub.get("/api/v1/adapters", Some(&token)).body;
    let a = adapters.as_array().unwrap().iter().find(|a| a["id"] == "panicky").cloned().unwrap();
    assert_eq!((a["status"]["state"].clone(), a["status"]["code"].clone()), (json!("failed"), json!("quarantined")));
    // It stays quarantined: no more starts.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(plugin(&hub, &token, "panicky")["crashes"], 5);

    // The one that exits and the one that hangs were restarted, each with its reason shown.
    let quitter = wait_plugin(&hub, &token, "quitter", "restarted", |p| p["restarts"].as_u64() >= Some(1));
    assert!(quitter["crashes"].as_u64() >= Some(2), "{quitter}");
    let sleepy = wait_plugin(&hub, &token, "sleepy", "restarted after hanging", |p| p["restarts"].as_u64() >= Some(1));
    assert!(sleepy["crashes"].as_u64() >= Some(1), "{sleepy}");
    // Why each stopped, as the hub says it (the devices are offline with it only between a stop
    // and the next start, a fraction of a second here).
    let said = |plugin: &str, reason: &str| {
        hub.log().lines().any(|l| {
            l.contains("A plugin stopped unexpectedly.")
                && l.contains(&format!("plugin=\"{plugin}\""))
                && l.contains(reason)
        })
    };
    assert!(said("sleepy", "reason=stopped answering (no pong within 2 s)"), "{}", hub.log());
    assert!(said("quitter", "reason=exited with status 0"), "{}", hub.log());
    assert!(said("panicky", "reason=exited with status 1"), "{}", hub.log());

    // The garbage writer: its lines counted and answered, and it was restarted after 10 in a row.
    let noisy = wait_plugin(&hub, &token, "noisy", "restarted for garbage", |p| p["crashes"].as_u64() >= Some(1));
    assert!(noisy["unreadable_lines"].as_u64() >= Some(10), "{noisy}");

    // The one claiming others' devices: refused, nothing of the demo's changed, no intruder, and
    // it runs on with its own device, which takes commands.
    let grabby = wait_plugin(&hub, &token, "grabby", "refusals counted", |p| p["refused_messages"].as_u64() >= Some(2));
    assert_eq!(grabby["state"], "running", "{grabby}");
    assert_eq!(grabby["crashes"], 0, "{grabby}");
    assert_eq!(device(&hub, &token, "demo:living_lamp")["state"], lamp_before["state"]);
    assert_eq!(hub.get("/api/v1/devices/shelly:intruder", Some(&token)).status, 404);
    assert!(hub.log().contains("not its own"), "{}", hub.log());
    let sent = hub.post("/api/v1/devices/grabby:thing-1/commands", Some(&token), json!({"set": {"state": true}}));
    assert_eq!(sent.status, 202, "{}", sent.text);
    wait_device(&hub, &token, "grabby:thing-1", "on", |d| value(d, "state") == true);

    // Enabled again, the quarantined plugin starts afresh.
    let again = hub.post("/api/v1/plugins/panicky/enable", Some(&token), json!({}));
    assert_eq!(again.status, 200, "{}", again.text);
    wait_plugin(&hub, &token, "panicky", "started again", |p| p["crashes"].as_u64() > Some(5));
    // Disabled, whatever it was doing (crashing, waiting to restart, quarantined): it says so.
    let off = hub.post("/api/v1/plugins/panicky/disable", Some(&token), json!({}));
    assert_eq!(off.status, 200, "{}", off.text);
    wait_plugin(&hub, &token, "panicky", "disabled", |p| p["state"] == "disabled");
    wait_device(&hub, &token, "panicky:thing-1", "offline as disabled", |d| {
        d["availability"]["reason"] == "plugin `panicky` is disabled"
    });
    assert_eq!(hub.get("/healthz", None).status, 200);
}

#[test]
fn a_plugin_with_a_bad_manifest_or_config_says_why_and_the_rest_run() {
    let (hub, token) = start();
    let plugins = hub.data_dir.join("plugins");
    install_misbehaving(&plugins, "fine", "normal");
    std::fs::create_dir_all(plugins.join("broken_toml")).unwrap();
    std::fs::write(plugins.join("broken_toml/plugin.toml"), "id = \"broken_toml\"\nname = 3\n").unwrap();
    let dir = plugins.join("needy");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        "id = \"needy\"\nname = \"Needy\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"python3\", \"x.py\"]\n[config.host]\ntype = \"string\"\nrequired = true\n",
    )
    .unwrap();
    assert_eq!(hub.post("/api/v1/plugins/fine/enable", Some(&token), json!({})).status, 200);
    let list = hub.get("/api/v1/plugins", Some(&token)).body;
    let broken = list["plugins"].as_array().unwrap().iter().find(|p| p["id"] == "broken_toml").cloned().unwrap();
    assert!(broken["problem"].as_str().unwrap().contains("plugin.toml"), "{broken}");
    let refused = hub.post("/api/v1/plugins/broken_toml/enable", Some(&token), json!({}));
    assert_eq!(refused.status, 409, "{}", refused.text);
    let needs = hub.post("/api/v1/plugins/needy/enable", Some(&token), json!({}));
    assert_eq!(needs.status, 400, "{}", needs.text);
    assert!(needs.text.contains("`host` is required"), "{}", needs.text);
    let (ok, _, err) = hub.cli(&["plugin", "enable", "needy"], None);
    assert!(!ok && err.contains("`host` is required"), "{err}");
    let (ok, _, err) = hub.cli(&["plugin", "enable", "nothing_here"], None);
    assert!(!ok && err.contains("no plugin `nothing_here`"), "{err}");
    assert_eq!(hub.get("/api/v1/plugins/nothing_here", Some(&token)).status, 404);
    wait_device(&hub, &token, "fine:thing-1", "online", |d| d["availability"]["state"] == "online");
    // Members may not manage plugins.
    let member = hub.member(&token, "kid");
    assert_eq!(hub.get("/api/v1/plugins", Some(&member)).status, 403);
    assert_eq!(hub.post("/api/v1/plugins/fine/disable", Some(&member), json!({})).status, 403);
}

#[test]
fn the_conformance_kit_passes_the_examples_and_fails_a_broken_plugin() {
    let dir = tempfile::tempdir().unwrap();
    install_examples(dir.path());
    install_misbehaving(dir.path(), "broken", "broken");
    let kit = |path: &Path, extra: &[&str]| {
        let out = Command::new(hearth_tests::hearth_bin())
            .args(["plugin", "test"])
            .arg(path)
            .args(extra)
            .output()
            .expect("run hearth plugin test");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    for example in ["weather", "powerstrip"] {
        let (code, report) = kit(&dir.path().join(example), &[]);
        assert_eq!(code, Some(0), "{example}:\n{report}");
        assert!(report.contains("PASS") && !report.contains("FAIL"), "{example}:\n{report}");
    }
    let (code, report) = kit(&dir.path().join("broken"), &[]);
    assert_eq!(code, Some(1), "{report}");
    // It fails where it is broken, and says why.
    assert!(report.contains("FAIL command") && report.contains("no `state` for `broken:thing-1`"), "{report}");
    assert!(report.contains("exited with status 3 after the kit sent an unknown type"), "{report}");
    assert!(report.contains("PASS handshake"), "{report}");
    let (code, json) = kit(&dir.path().join("powerstrip"), &["--json"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["passed"], true, "{v}");
}

#[test]
fn a_flooding_plugin_is_held_to_its_limits_and_a_stubborn_one_is_killed_at_shutdown() {
    let (mut hub, token) = start();
    let plugins = hub.data_dir.join("plugins");
    install_misbehaving(&plugins, "flood", "flood");
    install_misbehaving(&plugins, "stubborn", "stubborn");
    for id in ["flood", "stubborn"] {
        assert_eq!(hub.post(&format!("/api/v1/plugins/{id}/enable"), Some(&token), json!({})).status, 200);
    }
    // 2000 lines at once: the burst of 1000 passes, most of the rest is refused; the 2 MiB line
    // is unreadable. The plugin is neither restarted nor is anything else disturbed.
    let flood = wait_plugin(&hub, &token, "flood", "the long line counted", |p| p["unreadable_lines"] == 1);
    let refused = flood["refused_messages"].as_u64().unwrap();
    assert!((500..=1000).contains(&refused), "{flood}");
    assert_eq!(flood["crashes"], 0, "{flood}");
    assert_eq!(flood["state"], "running", "{flood}");
    assert!(hub.log().contains("lines are refused"), "{}", hub.log());
    let metrics = hub.get("/metrics", Some(&token)).text;
    assert!(metrics.contains(&format!("hearth_plugin_refused_total{{plugin=\"flood\"}} {refused}")), "{metrics}");
    assert!(metrics.contains("hearth_plugin_running{plugin=\"stubborn\"} 1"), "{metrics}");
    wait_device(&hub, &token, "stubborn:thing-1", "online", |d| d["availability"]["state"] == "online");

    // The stubborn one ignores `shutdown`: the hub kills it after its time and stops cleanly.
    let began = Instant::now();
    assert!(hub.stop(), "the hub stops cleanly:\n{}", hub.log());
    assert!(began.elapsed() < Duration::from_secs(15), "stopping took {:?}", began.elapsed());
    let log = hub.log();
    assert!(log.contains("plugin=\"stubborn\"") && log.contains("it was killed"), "{log}");
    assert!(log.contains("plugin=\"flood\" status=exited with status 0"), "{log}");
}

/// A plugin that writes one wrong message of each kind and reports on stderr every `error` the
/// hub answers: `ERR <code> <line> <refused type>`.
const PROBER: &str = r#"
import json, sys
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
THING = "probe:thing-1"
for raw in sys.stdin:
    m = json.loads(raw)
    t = m.get("type")
    if t == "hello":
        send({"type": "state", "device": THING, "values": {"state": True}})           # line 1: before ready
        send({"type": "hello", "protocol": 1, "id": "probe", "name": "Probe", "version": "1", "discovers": {}})
    elif t == "ready":
        send({"type": "device", "device": {"id": THING, "name": "Probe", "features": [
            {"key": "state", "capability": "on_off", "type": "bool", "access": {"observe": True, "set": True, "get": False}},
            {"key": "temp", "capability": "temperature", "type": "number", "unit": "°C", "access": {"observe": True, "set": False, "get": False}}]}})
        send({"type": "state", "device": "probe:ghost", "values": {"state": True}})   # line 4
        send({"type": "state", "device": THING, "values": {"state": "yes", "temp": 21.5, "nope": 1}})  # line 5
        send({"type": "hello", "protocol": 1, "id": "probe", "name": "Probe", "version": "1", "discovers": {}})  # 6
        send({"type": "action_result", "id": "zz", "result": 1})                      # line 7
        send({"type": "event", "device": THING, "feature": "nothing", "event": "x"})   # line 8
        send({"type": "device", "device": {"id": "probe:dup", "name": "Dup", "features": [
            {"key": "a", "capability": "on_off", "type": "bool", "access": {"observe": True, "set": False, "get": False}},
            {"key": "a", "capability": "on_off", "type": "bool", "access": {"observe": True, "set": False, "get": False}}]}})  # 9
        send({"type": "wibble"})                                                     # line 10
        send({"type": "state"})                                                      # line 11
        sys.stdout.write("[]\n"); sys.stdout.flush()                                 # line 12
        send({"type": "availability", "device": THING, "availability": {"state": "online"}})
    elif t == "ping":
        send({"type": "pong", "id": m["id"]})
    elif t == "error":
        sys.stderr.write("ERR %s %s %s\n" % (m["code"], m.get("line"), m.get("refused_type"))); sys.stderr.flush()
    elif t == "shutdown":
        break
"#;

#[test]
fn every_wrong_message_of_a_plugin_is_answered_with_its_error_and_the_rest_applied() {
    let (hub, token) = start();
    let dir = hub.data_dir.join("plugins/probe");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("probe.py"), PROBER).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        "id = \"probe\"\nname = \"Probe\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"python3\", \"probe.py\"]\n",
    )
    .unwrap();
    assert_eq!(hub.post("/api/v1/plugins/probe/enable", Some(&token), json!({})).status, 200);
    let expected = [
        "ERR out_of_order 1 state",
        "ERR unknown_device 4 state",
        "ERR invalid 5 state",
        "ERR out_of_order 6 hello",
        "ERR unknown_action 7 action_result",
        "ERR invalid 8 event",
        "ERR invalid 9 device",
        "ERR unknown_type 10 wibble",
        "ERR bad_message 11 state",
        "ERR not_an_object 12 None",
    ];
    let p = wait_plugin(&hub, &token, "probe", "every error answered", |p| {
        let lines: Vec<&str> =
            p["stderr"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        expected.iter().all(|e| lines.contains(e))
    });
    assert_eq!(p["state"], "running", "{p}");
    assert_eq!(p["crashes"], 0, "{p}");
    assert_eq!(p["unreadable_lines"], 1, "{p}");
    // What was right in the partly wrong report was applied; the wrong value was not.
    let d = wait_device(&hub, &token, "probe:thing-1", "online with its temperature", |d| {
        d["availability"]["state"] == "online" && value(d, "temp") == 21.5
    });
    assert!(value(&d, "state").is_null(), "{d}");
    assert_eq!(hub.get("/api/v1/devices/probe:dup", Some(&token)).status, 404);
    assert_eq!(hub.get("/api/v1/devices/probe:ghost", Some(&token)).status, 404);
}
