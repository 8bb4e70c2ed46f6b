"""hearth_plugin.py, the weather example and the misbehaving test plugins, over real pipes.

Run from the repository root:

    python3 -m unittest discover -s adapters/plugin/python/tests -v

Each test starts a plugin as a child process, writes the hub's side of PLUGINS.md to its stdin
and reads its stdout line by line. Every line a plugin writes is parsed strictly (no NaN, no
Infinity); a line that is not a JSON object fails the test, except in the `garbage` mode.
"""

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import unittest.mock
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
SDK_DIR = REPO / "adapters" / "plugin" / "python"
WEATHER_DIR = SDK_DIR / "examples" / "weather"
MISBEHAVE = REPO / "tests" / "plugins" / "misbehave.py"

CONTEXT = {"id": "19ac4b2e1f3-2c", "origin": {"kind": "automation", "id": "night_check"}, "parent": "19ac4b2e1f3-2b"}
ALICE = {"id": "19ac4b2e1f3-2a", "origin": {"kind": "user", "name": "alice"}}


def strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


class Garbage:
    """A line on stdout that is not a JSON object."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Garbage({self.text!r})"


class Plugin:
    """A plugin process with the hub's end of the pipes."""

    def __init__(self, test, argv, cwd=None, env=None, garbage_ok=False):
        self.test = test
        self.garbage_ok = garbage_ok
        full_env = dict(os.environ)
        full_env.pop("HEARTH_PLUGIN_ID", None)
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=full_env,
        )
        self.lines = queue.Queue()
        self.raw = []
        self.stderr = []
        self.sent = 0
        self.seen = []
        self._out = threading.Thread(target=self._read_stdout, daemon=True)
        self._err = threading.Thread(target=self._read_stderr, daemon=True)
        self._out.start()
        self._err.start()
        test.addCleanup(self.close)

    def _read_stdout(self):
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8")
            self.raw.append(text)
            try:
                message = strict_json(text)
            except ValueError:
                message = None
            self.lines.put(message if isinstance(message, dict) else Garbage(text))
        self.lines.put(None)

    def _read_stderr(self):
        for raw in iter(self.proc.stderr.readline, b""):
            self.stderr.append(raw.decode("utf-8", "replace"))

    def stderr_text(self):
        return "".join(self.stderr)

    def send(self, message):
        """Write one line (a dict as compact JSON, a str as it is); its line number."""
        line = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        self.proc.stdin.write(line.encode("utf-8") + b"\n")
        self.proc.stdin.flush()
        self.sent += 1
        return self.sent

    def next(self, timeout=3.0, allow_garbage=False):
        """The next line from the plugin, or None at end of stdout; fails after `timeout`."""
        try:
            m = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.test.fail(f"nothing from the plugin in {timeout} s; stderr:\n{self.stderr_text()}")
        if isinstance(m, Garbage) and not allow_garbage:
            self.test.fail(f"the plugin wrote a line that is not a JSON object: {m.text!r}")
        if m is not None:
            self.seen.append(m)
        return m

    def expect(self, kind, timeout=3.0, **fields):
        """Skip messages until one of type `kind` with these fields comes; return it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.test.fail(f"no `{kind}` {fields} within {timeout} s; seen: {self.seen}\nstderr:\n"
                               f"{self.stderr_text()}")
            m = self.next(left)
            if m is None:
                self.test.fail(f"stdout closed before a `{kind}` {fields}; seen: {self.seen}\nstderr:\n"
                               f"{self.stderr_text()}")
            if m.get("type") == kind and all(m.get(k) == v for k, v in fields.items()):
                return m

    def quiet(self, seconds):
        """Everything the plugin writes in the next `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                m = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if m is None:
                break
            if isinstance(m, Garbage):
                self.test.fail(f"the plugin wrote a line that is not a JSON object: {m.text!r}")
            self.seen.append(m)
            got.append(m)
        return got

    def handshake(self, config=None, protocols=(1,)):
        """hello, secrets, inbox, ready; the plugin's hello."""
        self.send({"type": "hello", "protocol": list(protocols), "hub": "0.1.0", "schema": 1, "config": config or {}})
        hello = self.next()
        self.test.assertIsNotNone(hello, self.stderr_text())
        self.test.assertEqual(hello.get("type"), "hello", hello)
        self.send({"type": "secrets", "secrets": {}})
        self.send({"type": "inbox", "decisions": {}})
        self.send({"type": "ready"})
        return hello

    def wait(self, timeout):
        """The exit status within `timeout` seconds, and how long it took."""
        began = time.monotonic()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.test.fail(f"the plugin did not exit within {timeout} s; stderr:\n{self.stderr_text()}")
        self._out.join(2)
        self._err.join(2)
        return code, time.monotonic() - began

    def close_stdin(self):
        self.proc.stdin.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        self._out.join(2)
        self._err.join(2)
        if not self.garbage_ok:
            for text in self.raw:
                # Every line is one JSON object, strictly: no NaN, no Infinity, no pretty-printing.
                self.test.assertIsInstance(strict_json(text), dict, text)
                self.test.assertTrue(text.endswith("\n") and "\n" not in text[:-1], text)


def weather(test, config=None):
    p = Plugin(test, [str(WEATHER_DIR / "weather.py")], cwd=str(WEATHER_DIR))
    p.handshake(config)
    return p


def script(test, source, env=None):
    """A plugin written for one test, using the module from its place in the tree."""
    folder = tempfile.mkdtemp(prefix="hearth-plugin-test-")
    test.addCleanup(shutil.rmtree, folder, True)
    path = os.path.join(folder, "plugin.py")
    header = f"import sys, time, math\nsys.path.insert(0, {str(SDK_DIR)!r})\nimport hearth_plugin as hp\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(header + textwrap.dedent(source))
    return Plugin(test, [path], cwd=folder, env=env)


# ---- the weather example --------------------------------------------------------------------


class WeatherTest(unittest.TestCase):
    def test_handshake_then_device_availability_state_after_ready(self):
        p = Plugin(self, [str(WEATHER_DIR / "weather.py")], cwd=str(WEATHER_DIR))
        p.send({"type": "hello", "protocol": [1], "hub": "0.1.0", "schema": 1, "config": {}})
        hello = p.next()
        self.assertEqual(
            hello,
            {"type": "hello", "protocol": 1, "id": "weather", "name": "Virtual weather station",
             "version": "1.0.0", "discovers": {}, "actions": ["identify"]},
        )
        self.assertTrue(p.raw[0].startswith('{"type":"hello",'), p.raw[0])
        self.assertEqual(p.raw[0], json.dumps(hello, separators=(",", ":"), ensure_ascii=False) + "\n")
        p.send({"type": "secrets", "secrets": {}})
        p.send({"type": "inbox", "decisions": {}})
        self.assertEqual(p.quiet(0.3), [], "nothing but hello, log or error before ready")
        p.send({"type": "ready"})

        device = p.next()
        self.assertEqual(device["type"], "device", "the device comes first after ready")
        d = device["device"]
        self.assertEqual(d["id"], "weather:station-1")
        self.assertEqual(d["name"], "Garden")
        features = {f["key"]: f for f in d["features"]}
        self.assertEqual(
            {k: (f["capability"], f.get("unit")) for k, f in features.items()},
            {
                "temperature": ("temperature", "°C"),
                "humidity": ("humidity", "%"),
                "pressure": ("pressure", "hPa"),
                "wind_speed": ("other", "m/s"),
                "illuminance": ("illuminance", "lx"),
            },
        )
        for f in features.values():
            self.assertEqual(f["type"], "number")
            self.assertEqual(f["access"], {"observe": True, "set": False, "get": True})
        self.assertEqual(
            p.next(),
            {"type": "availability", "device": "weather:station-1", "availability": {"state": "online"}},
        )
        state = p.next()
        self.assertEqual(state["type"], "state")
        self.assertNotIn("cause", state)
        self.assertEqual(sorted(state["values"]), sorted(features))
        for v in state["values"].values():
            self.assertIsInstance(v, float)
        state_line = next(line for line in p.raw if line.startswith('{"type":"state",'))
        numbers = re.findall(r":(-?[0-9][0-9.eE+-]*)[,}]", state_line)
        self.assertEqual(len(numbers), 5, state_line)
        self.assertTrue(all("." in n for n in numbers), f"every number a float: {state_line}")
        self.assertLess(-40.0, state["values"]["temperature"])
        self.assertLess(state["values"]["temperature"], 60.0)
        self.assertTrue(0.0 <= state["values"]["humidity"] <= 100.0)
        self.assertTrue(900.0 <= state["values"]["pressure"] <= 1100.0)
        p.expect("status", status={"state": "running"})
        p.expect("log", level="info")

    def test_ping_pong(self):
        p = weather(self)
        p.expect("state")
        p.send({"type": "ping", "id": 1})
        p.expect("pong", id=1)
        p.send({"type": "ping", "id": 2})
        self.assertEqual(p.expect("pong"), {"type": "pong", "id": 2})

    def test_refresh_command_is_answered_with_the_context_as_cause(self):
        p = weather(self)
        first = p.expect("state")
        p.send({"type": "command", "device": "weather:station-1", "refresh": ["temperature", "pressure"],
                "context": CONTEXT})
        answer = p.expect("state", cause=CONTEXT)
        self.assertEqual(answer["device"], "weather:station-1")
        self.assertEqual(sorted(answer["values"]), ["pressure", "temperature"])
        self.assertEqual(answer["values"]["temperature"], first["values"]["temperature"])
        p.send({"type": "command", "device": "weather:station-1", "refresh": True, "context": ALICE,
                "future_field": 1})
        everything = p.expect("state", cause=ALICE)
        self.assertEqual(len(everything["values"]), 5)

    def test_refresh_message_sends_the_full_picture_again(self):
        p = weather(self)
        first = p.expect("state")
        p.expect("status")
        p.send({"type": "refresh"})
        self.assertEqual(p.expect("device")["device"]["id"], "weather:station-1")
        self.assertEqual(p.next()["type"], "availability")
        again = p.next()
        self.assertEqual(again, {"type": "state", "device": "weather:station-1", "values": first["values"]})

    def test_unknown_type_is_answered_with_its_line_number(self):
        p = weather(self)
        p.expect("state")
        p.send("")  # a blank line counts, and is not an error
        line = p.send({"type": "flush", "x": 1})
        self.assertEqual(line, 6)
        self.assertEqual(
            p.expect("error"),
            {"type": "error", "code": "unknown_type", "message": "unknown message type `flush`", "line": 6,
             "refused_type": "flush"},
        )
        p.send({"type": "ping", "id": 7})
        p.expect("pong", id=7)

    def test_unreadable_and_malformed_lines(self):
        p = weather(self)
        p.expect("state")
        cases = [
            ("this is not json", "not_json", None),
            ('{"type":"ping","id":NaN}', "not_json", None),
            ("[1,2]", "not_an_object", None),
            ('{"kind":"ping"}', "no_type", None),
            ('{"type":5}', "no_type", None),
            ({"type": "command", "device": "weather:station-1", "refresh": True}, "bad_message", "command"),
            ({"type": "command", "device": 5, "refresh": True, "context": ALICE}, "bad_message", "command"),
            ({"type": "command", "device": "weather:station-1", "set": [], "context": ALICE}, "bad_message",
             "command"),
            ({"type": "ping"}, "bad_message", "ping"),
            ({"type": "config", "config": []}, "bad_message", "config"),
        ]
        for line_text, code, refused in cases:
            line = p.send(line_text)
            e = p.expect("error")
            self.assertEqual((e["code"], e["line"], e.get("refused_type")), (code, line, refused), e)
            self.assertTrue(e["message"])

    def test_not_utf8_is_not_json(self):
        p = weather(self)
        p.expect("state")
        p.proc.stdin.write(b'{"type":"ping","id":1,"x":"\xff"}\n')
        p.proc.stdin.flush()
        self.assertEqual(p.expect("error")["code"], "not_json")

    def test_an_error_is_never_answered(self):
        p = weather(self)
        p.expect("state")
        p.send({"type": "error", "code": "invalid", "message": "no", "line": 3, "refused_type": "state"})
        p.send({"type": "error"})
        p.send({"type": "ping", "id": 9})
        got = p.expect("pong", id=9)
        self.assertEqual(got["id"], 9)
        self.assertFalse([m for m in p.seen if m.get("type") == "error"], p.seen)
        time.sleep(0.1)
        self.assertIn("the hub refused our line 3 (state): invalid: no", p.stderr_text())

    def test_command_for_an_unknown_device(self):
        p = weather(self)
        p.expect("state")
        line = p.send({"type": "command", "device": "weather:station-9", "set": {"x": True}, "context": ALICE})
        e = p.expect("error")
        self.assertEqual((e["code"], e["line"], e["refused_type"]), ("unknown_device", line, "command"))
        self.assertIn("weather:station-9", e["message"])

    def test_actions_are_answered_exactly_once(self):
        p = weather(self)
        p.expect("state")
        p.send({"type": "action", "id": "a1", "action": "identify", "params": {}, "context": ALICE})
        self.assertEqual(p.expect("action_result"), {"type": "action_result", "id": "a1", "result": {"blinked": True}})
        p.send({"type": "action", "id": "a2", "action": "permit_join", "params": {}, "context": ALICE})
        r = p.expect("action_result")
        self.assertEqual((r["id"], r["error"]["code"]), ("a2", "not_found"))
        line = p.send({"type": "action", "id": "a3", "action": "identify", "params": [1]})
        e = p.expect("error")
        self.assertEqual((e["code"], e["line"], e["refused_type"]), ("bad_message", line, "action"))
        r = p.expect("action_result")
        self.assertEqual((r["id"], r["error"]["code"]), ("a3", "bad_params"))
        p.send({"type": "ping", "id": 3})
        p.expect("pong", id=3)
        results = [m["id"] for m in p.seen if m.get("type") == "action_result"]
        self.assertEqual(results, ["a1", "a2", "a3"])

    def test_config_changes_the_name_and_the_interval(self):
        p = weather(self)
        p.expect("status", status={"state": "running"})
        p.send({"type": "config", "config": {"station_name": "Roof", "interval_secs": 1}})
        self.assertEqual(p.expect("device")["device"]["name"], "Roof")
        began = time.monotonic()
        tick = p.expect("state", timeout=2.5)
        self.assertNotIn("cause", tick)
        p.expect("state", timeout=2.5)
        self.assertLess(time.monotonic() - began, 3.0)
        p.send({"type": "config", "config": {"station_name": "Roof", "interval_secs": 0}})
        status = p.expect("status", status={"state": "degraded", "reason": unittest.mock.ANY, "code": "bad_config"})
        self.assertIn("`interval_secs`", status["status"]["reason"])

    def test_shutdown_exits_0_within_5_seconds(self):
        p = weather(self)
        p.expect("state")
        p.send({"type": "shutdown"})
        code, took = p.wait(5)
        self.assertEqual(code, 0, p.stderr_text())
        self.assertLess(took, 2.0)
        self.assertEqual(p.expect("log", message="Virtual weather station stopped.")["level"], "info")

    def test_end_of_file_exits_at_once(self):
        p = weather(self)
        p.expect("state")
        p.close_stdin()
        code, took = p.wait(3)
        self.assertEqual(code, 0, p.stderr_text())
        self.assertLess(took, 1.5)

    def test_end_of_file_before_anything(self):
        p = Plugin(self, [str(WEATHER_DIR / "weather.py")], cwd=str(WEATHER_DIR))
        p.close_stdin()
        code, _ = p.wait(3)
        self.assertEqual(code, 0)
        self.assertEqual(p.raw, [])

    def test_runs_with_the_module_next_to_it(self):
        folder = tempfile.mkdtemp(prefix="hearth-weather-")
        self.addCleanup(shutil.rmtree, folder, True)
        shutil.copy(WEATHER_DIR / "weather.py", folder)
        shutil.copy(SDK_DIR / "hearth_plugin.py", folder)
        p = Plugin(self, [os.path.join(folder, "weather.py")], cwd=folder)
        p.handshake()
        p.expect("state")
        p.close_stdin()
        p.wait(3)

    def test_version_choice_and_bye(self):
        p = Plugin(self, [str(WEATHER_DIR / "weather.py")], cwd=str(WEATHER_DIR))
        p.send({"type": "hello", "protocol": [1, 2], "hub": "9.0.0", "schema": 1, "config": {}})
        self.assertEqual(p.next()["protocol"], 1)

        p = Plugin(self, [str(WEATHER_DIR / "weather.py")], cwd=str(WEATHER_DIR))
        p.send({"type": "hello", "protocol": [2, 3], "hub": "9.0.0", "schema": 2, "config": {}})
        self.assertEqual(p.next()["protocol"], 1, "it answers with its own version so the hub can report it")
        reason = "the plugin chose protocol 1; this hub speaks 2, 3"
        p.send({"type": "bye", "code": "protocol_unsupported", "reason": reason})
        code, took = p.wait(3)
        self.assertLess(took, 2.0)
        self.assertNotEqual(code, None)
        self.assertIn("this hub speaks 2, 3", p.stderr_text())
        self.assertEqual(len(p.raw), 1)


# ---- the module itself ----------------------------------------------------------------------


class ModuleTest(unittest.TestCase):
    def test_ping_is_answered_while_a_hook_is_busy(self):
        p = script(self, """
            class Slow(hp.Plugin):
                id = "slow"; name = "Slow"; version = "1"
                def start(self, config):
                    self.announce(hp.device("slow:a", "A", [hp.switch()]))
                    self.online("slow:a")
                def command(self, device_id, set_values, refresh, transition, context):
                    time.sleep(1.5)
                    self.state(device_id, set_values, cause=context)
            hp.main(Slow)
        """)
        p.handshake()
        p.expect("availability")
        p.send({"type": "command", "device": "slow:a", "set": {"state": True}, "context": ALICE})
        time.sleep(0.1)
        began = time.monotonic()
        p.send({"type": "ping", "id": 1})
        self.assertEqual(p.next(), {"type": "pong", "id": 1})
        self.assertLess(time.monotonic() - began, 1.0, "the pong came at once, not after the 1.5 s hook")
        state = p.next()
        self.assertEqual(state, {"type": "state", "device": "slow:a", "values": {"state": True}, "cause": ALICE})

    def test_nan_is_never_written(self):
        p = script(self, """
            class Bad(hp.Plugin):
                id = "bad"; name = "Bad"; version = "1"; actions = ["nan"]
                def start(self, config):
                    self.announce(hp.device("bad:a", "A", [hp.sensor("temperature"), hp.sensor("humidity")]))
                    self.state("bad:a", {"temperature": float("nan"), "humidity": 40})
                    self.state("bad:a", {"temperature": float("inf")})
                    self.after(0, self.later)
                def later(self):
                    self.event("bad:a", "temperature", "x", {"v": float("nan")})
                def action(self, name, params, context):
                    return {"value": float("nan")}
            hp.main(Bad)
        """)
        p.handshake()
        p.expect("device")
        warn = p.next()
        self.assertEqual((warn["type"], warn["level"], warn["fields"]["feature"]), ("log", "warn", "temperature"))
        self.assertEqual(p.next(), {"type": "state", "device": "bad:a", "values": {"humidity": 40.0}})
        self.assertTrue([line for line in p.raw if '"values":{"humidity":40.0}' in line], p.raw)
        failed = p.expect("log", level="error")
        self.assertEqual(failed["fields"]["hook"], "timer later")
        self.assertIn("not a finite number", failed["fields"]["error"])
        p.send({"type": "action", "id": "n1", "action": "nan", "params": {}})
        r = p.expect("action_result", id="n1")
        self.assertEqual(r["error"]["code"], "failed")

    def test_start_failing_is_fatal(self):
        p = script(self, """
            class Fails(hp.Plugin):
                id = "fails"; name = "Fails"; version = "1"
                def start(self, config):
                    raise ValueError("cannot start")
            hp.main(Fails)
        """)
        p.handshake()
        code, _ = p.wait(3)
        self.assertEqual(code, 1)
        self.assertIn("Traceback", p.stderr_text())
        self.assertIn("ValueError: cannot start", p.stderr_text())

    def test_a_failing_command_is_logged_and_the_plugin_goes_on(self):
        p = script(self, """
            class Oops(hp.Plugin):
                id = "oops"; name = "Oops"; version = "1"
                def start(self, config):
                    self.announce(hp.device("oops:a", "A", [hp.switch()]))
                def command(self, device_id, set_values, refresh, transition, context):
                    raise KeyError("no such relay")
            hp.main(Oops)
        """)
        p.handshake()
        p.expect("device")
        p.send({"type": "command", "device": "oops:a", "set": {"state": True}, "context": ALICE})
        log = p.expect("log", level="warn")
        self.assertEqual(log["fields"]["device"], "oops:a")
        self.assertIn("no such relay", log["fields"]["error"])
        p.send({"type": "ping", "id": 4})
        p.expect("pong", id=4)

    def test_prints_go_to_stderr_and_config_secrets_inbox_reach_the_plugin(self):
        p = script(self, """
            import os
            print("printed at import time, after hearth_plugin")
            class Talk(hp.Plugin):
                id = "talk"; name = "Talk"; version = "1"
                secrets_description = {"names": "a device id", "values": "its key"}
                discovers = {"mdns": ["_talk._tcp"], "ble": []}
                def start(self, config):
                    print("printed by start")
                    os.system("echo echoed by a child process")
                    os.write(1, b"written to fd 1\\n")
                    self.info("started", config=config, secret_names=sorted(self.secrets),
                              decisions=self.decisions)
                def secrets_changed(self, secrets):
                    self.info("secrets", names=sorted(secrets))
                def config_changed(self, config):
                    self.info("config", config=config)
                def inbox_changed(self, decisions):
                    self.info("inbox", decisions=decisions)
            hp.main(Talk)
        """, env={"HEARTH_PLUGIN_DATA": "/nonexistent"})
        p.send({"type": "hello", "protocol": [1], "hub": "0.1.0", "schema": 1, "config": {"a": 1}})
        hello = p.next()
        self.assertEqual(hello["secrets"], {"names": "a device id", "values": "its key"})
        self.assertEqual(hello["discovers"], {"mdns": ["_talk._tcp"]})
        self.assertNotIn("actions", hello)
        p.send({"type": "secrets", "secrets": {"dev1": "s3cr3t"}})
        p.send({"type": "inbox", "decisions": {"k": "accepted"}})
        p.send({"type": "ready"})
        started = p.expect("log", message="started")
        self.assertEqual(started["fields"],
                         {"config": {"a": 1}, "secret_names": ["dev1"], "decisions": {"k": "accepted"}})
        p.send({"type": "config", "config": {"a": 2}})
        self.assertEqual(p.expect("log", message="config")["fields"], {"config": {"a": 2}})
        p.send({"type": "secrets", "secrets": {"dev2": "s3cr3t"}})
        self.assertEqual(p.expect("log", message="secrets")["fields"], {"names": ["dev2"]})
        p.send({"type": "inbox", "decisions": {}})
        self.assertEqual(p.expect("log", message="inbox")["fields"], {"decisions": {}})
        p.send({"type": "shutdown"})
        self.assertEqual(p.wait(5)[0], 0)
        err = p.stderr_text()
        for text in ("printed at import time, after hearth_plugin", "printed by start", "echoed by a child process",
                     "written to fd 1"):
            self.assertIn(text, err)
            self.assertFalse([line for line in p.raw if text in line])
        self.assertNotIn("s3cr3t", err)
        self.assertFalse([line for line in p.raw if "s3cr3t" in line])

    def test_timers_state_before_ready_and_helpers(self):
        p = script(self, """
            class Tick(hp.Plugin):
                id = "tick"; name = "Tick"; version = "1"
                def __init__(self):
                    super().__init__()
                    self.n = 0
                    self.timer = self.every(0.1, self.tick)   # starts after start()
                    try:
                        self.online("tick:a")
                    except RuntimeError as e:
                        print("refused before ready:", e)
                def start(self, config):
                    self.announce(hp.device("tick:a", "A", [hp.sensor("duration"), hp.button()]))
                    try:
                        self.state("tick:b", {"duration": 1})
                    except ValueError as e:
                        self.info("refused", error=str(e))
                    try:
                        self.announce(hp.device("other:a", "A", []))
                    except ValueError as e:
                        self.info("refused", error=str(e))
                    try:
                        self.offline("tick:a", "")
                    except ValueError as e:
                        self.info("refused", error=str(e))
                    self.offline("tick:a", "no answer for 60 s", "device_offline")
                    self.event("tick:a", "action", "single")
                    self.found("k1", "tick:k1", "K1", "wifi", address="192.0.2.1")
                def tick(self):
                    self.n += 1
                    self.state("tick:a", {"duration": self.n})
                    if self.n == 3:
                        self.timer.cancel()
                        self.after(0.05, self.done)
                def done(self):
                    self.info("done", n=self.n)
            hp.main(Tick)
        """)
        p.handshake()
        self.assertEqual(p.next()["type"], "device")
        self.assertIn("was not announced", p.expect("log", message="refused")["fields"]["error"])
        self.assertIn("must start with `tick:`", p.expect("log", message="refused")["fields"]["error"])
        self.assertIn("without a reason", p.expect("log", message="refused")["fields"]["error"])
        self.assertEqual(p.next()["availability"],
                         {"state": "offline", "reason": "no answer for 60 s", "code": "device_offline"})
        self.assertEqual(p.next(), {"type": "event", "device": "tick:a", "feature": "action", "event": "single"})
        self.assertEqual(p.next()["found"], {"key": "k1", "device": "tick:k1", "name": "K1", "transport": "wifi",
                                             "address": "192.0.2.1", "supported": True})
        for n in (1.0, 2.0, 3.0):
            self.assertEqual(p.next()["values"], {"duration": n})
        self.assertEqual(p.next()["fields"], {"n": 3})
        self.assertEqual(p.quiet(0.3), [])
        self.assertIn("refused before ready", p.stderr_text())

    def test_action_timeout_and_errors(self):
        p = script(self, """
            class Act(hp.Plugin):
                id = "act"; name = "Act"; version = "1"; actions = ["slow", "bad", "boom", "none"]
                action_timeout = 0.3
                def action(self, name, params, context):
                    if name == "slow":
                        time.sleep(1)
                        return {"late": True}
                    if name == "bad":
                        raise hp.ActionError("bad_params", "`outlet` must be l1 or l2")
                    if name == "boom":
                        raise RuntimeError("it broke")
            hp.main(Act)
        """)
        p.handshake()
        for aid, name in (("1", "slow"), ("2", "bad"), ("3", "boom"), ("4", "none")):
            p.send({"type": "action", "id": aid, "action": name, "params": {}, "context": ALICE})
        results = {}
        while len(results) < 4:
            r = p.expect("action_result")
            results[r["id"]] = r.get("error", r.get("result"))
        self.assertEqual(results["1"]["code"], "timeout")
        self.assertEqual(results["2"], {"code": "bad_params", "message": "`outlet` must be l1 or l2"})
        self.assertEqual(results["3"], {"code": "failed", "message": "RuntimeError: it broke"})
        self.assertEqual(results["4"], {})
        time.sleep(0.9)
        p.send({"type": "ping", "id": 1})
        p.expect("pong", id=1)
        self.assertEqual([m["id"] for m in p.seen if m.get("type") == "action_result"].count("1"), 1)

    def test_builders(self):
        p = script(self, """
            import json
            out = {
                "feature": hp.feature("setpoint", "setpoint", "number", set=True, get=True, min=5, max=30, step=0.5),
                "enum": hp.feature("mode", "hvac_mode", "enum", set=True, values=["off", "heat", "auto"]),
                "relay": hp.switch("state_l2", endpoint="l2", label="Right"),
                "flow": hp.sensor("flow_rate", "other", unit="L/min", min=0),
                "button": hp.button(),
            }
            for bad in (lambda: hp.sensor("t", "temperature", unit="°F"),
                        lambda: hp.feature("Bad Key", "other", "bool"),
                        lambda: hp.feature("m", "other", "enum"),
                        lambda: hp.device("nocolon", "A", [])):
                try:
                    bad()
                    out.setdefault("accepted", []).append(1)
                except ValueError as e:
                    out.setdefault("refused", []).append(str(e))
            sys.stderr.write(json.dumps(out) + "\\n")
        """)
        code, _ = p.wait(3)
        self.assertEqual(code, 0, p.stderr_text())
        out = json.loads(p.stderr[-1])
        self.assertEqual(out["feature"], {"key": "setpoint", "capability": "setpoint", "type": "number", "min": 5.0,
                                          "max": 30.0, "step": 0.5, "unit": "°C",
                                          "access": {"observe": True, "set": True, "get": True}, "category": "primary"})
        self.assertEqual(list(out["feature"]), ["key", "capability", "type", "min", "max", "step", "unit", "access",
                                                "category"])
        self.assertEqual(out["enum"]["values"], ["off", "heat", "auto"])
        self.assertNotIn("unit", out["enum"])
        self.assertEqual(out["relay"], {"key": "state_l2", "capability": "on_off", "type": "bool",
                                        "access": {"observe": True, "set": True, "get": False}, "endpoint": "l2",
                                        "category": "primary", "label": "Right"})
        self.assertEqual(out["flow"]["unit"], "L/min")
        self.assertEqual(out["button"]["access"], {"observe": False, "set": False, "get": False})
        self.assertNotIn("accepted", out)
        self.assertEqual(len(out["refused"]), 4)
        self.assertIn("°C, not °F", out["refused"][0])

    def test_shutdown_waits_for_a_command_in_flight_and_calls_stop(self):
        p = script(self, """
            class Busy(hp.Plugin):
                id = "busy"; name = "Busy"; version = "1"
                def start(self, config):
                    self.announce(hp.device("busy:a", "A", [hp.switch()]))
                def command(self, device_id, set_values, refresh, transition, context):
                    time.sleep(0.5)
                    self.state(device_id, set_values, cause=context)
                def stop(self):
                    self.info("stopped")
            hp.main(Busy)
        """)
        p.handshake()
        p.expect("device")
        p.send({"type": "command", "device": "busy:a", "set": {"state": True}, "context": ALICE})
        p.send({"type": "shutdown"})
        p.close_stdin()
        code, _ = p.wait(5)
        self.assertEqual(code, 0)
        self.assertEqual(p.expect("state")["cause"], ALICE)
        p.expect("log", message="stopped")


# ---- the misbehaving test plugins ----------------------------------------------------------


def misbehave(test, mode, plugin_id=None):
    env = {"HEARTH_PLUGIN_ID": plugin_id} if plugin_id else None
    p = Plugin(test, [str(MISBEHAVE), mode], env=env, garbage_ok=mode == "garbage")
    hello = p.handshake()
    test.assertEqual(hello["id"], plugin_id or "misbehave")
    thing = f"{plugin_id or 'misbehave'}:thing-1"
    device = p.next(allow_garbage=False)
    test.assertEqual(device["type"], "device", device)
    test.assertEqual(device["device"]["id"], thing)
    test.assertEqual([(f["key"], f["capability"], f["access"]) for f in device["device"]["features"]],
                     [("state", "on_off", {"observe": True, "set": True, "get": False})])
    test.assertEqual(p.next(), {"type": "availability", "device": thing, "availability": {"state": "online"}})
    test.assertEqual(p.next(), {"type": "state", "device": thing, "values": {"state": False}})
    return p


class MisbehaveTest(unittest.TestCase):
    def test_normal(self):
        p = misbehave(self, "normal", "mb_two")
        p.send({"type": "command", "device": "mb_two:thing-1", "set": {"state": True}, "context": ALICE})
        self.assertEqual(p.next(),
                         {"type": "state", "device": "mb_two:thing-1", "values": {"state": True}, "cause": ALICE})
        p.send({"type": "ping", "id": 1})
        p.expect("pong", id=1)
        p.send({"type": "shutdown"})
        self.assertEqual(p.wait(5)[0], 0)

    def test_panic(self):
        p = misbehave(self, "panic")
        code, _ = p.wait(3)
        self.assertEqual(code, 1)
        self.assertIn("Traceback", p.stderr_text())
        self.assertIn("panicking on purpose", p.stderr_text())

    def test_exit(self):
        p = misbehave(self, "exit")
        code, _ = p.wait(3)
        self.assertEqual(code, 0, p.stderr_text())
        self.assertNotIn("Traceback", p.stderr_text())

    def test_hang(self):
        p = misbehave(self, "hang")
        time.sleep(0.5)
        p.send({"type": "ping", "id": 2})
        self.assertEqual(p.quiet(1.0), [])
        self.assertIsNone(p.proc.poll(), "a hung plugin is still running")

    def test_garbage(self):
        p = misbehave(self, "garbage")
        lines = [p.next(allow_garbage=True) for _ in range(4)]
        for line in lines:
            self.assertIsInstance(line, Garbage)
            with self.assertRaises(ValueError):
                strict_json(line.text)

    def test_foreign(self):
        p = misbehave(self, "foreign")
        self.assertEqual(p.next(), {"type": "state", "device": "demo:living_lamp", "values": {"state": True}})
        self.assertEqual(p.next()["device"]["id"], "shelly:intruder")
        p.send({"type": "ping", "id": 5})
        p.expect("pong", id=5)
        p.send({"type": "command", "device": "misbehave:thing-1", "set": {"state": True}, "context": ALICE})
        self.assertEqual(p.expect("state")["cause"], ALICE)

    def test_broken(self):
        p = misbehave(self, "broken")
        p.send({"type": "command", "device": "misbehave:thing-1", "set": {"state": True}, "context": ALICE})
        p.send({"type": "ping", "id": 1})
        self.assertEqual(p.next(), {"type": "pong", "id": 1})
        self.assertEqual(p.quiet(0.3), [])
        p.send({"type": "flush"})
        code, _ = p.wait(3)
        self.assertEqual(code, 3)

    def test_unknown_mode(self):
        p = Plugin(self, [str(MISBEHAVE), "sulk"])
        code, _ = p.wait(3)
        self.assertEqual(code, 2)
        self.assertIn("usage", p.stderr_text())


if __name__ == "__main__":
    unittest.main()
