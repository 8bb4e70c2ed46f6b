#!/usr/bin/env python3
"""A Hearth plugin that misbehaves on purpose, for the hub's end-to-end tests.

    python3 misbehave.py MODE

Every mode starts normally: it answers hello and, after ready, announces `<id>:thing-1` (one
on_off feature `state`, observe and set), reports it online and its state false. `<id>` is
$HEARTH_PLUGIN_ID, default `misbehave`. Then, by MODE (see README.md):

    normal   runs normally forever: commands applied and reported with their context as cause
    panic    raises an uncaught exception 0.3 s after ready (traceback on stderr, exit status 1)
    exit     exits with status 0, 0.3 s after ready
    hang     stops reading stdin and never answers a ping again, 0.3 s after ready
    garbage  writes a line that is not JSON every 50 ms, forever, after ready
    foreign  also reports a state of `demo:living_lamp` and a device `shelly:intruder`, then runs normally
    broken   answers hello and pings, announces its device, ignores commands, and exits with
             status 3 on a message type it does not know (fails the conformance kit)

normal, panic, exit and foreign use hearth_plugin.py; hang, garbage and broken speak the
protocol by hand, since the module would not let them misbehave that way.
"""

import json
import os
import sys
import threading
import time

# The real stdout, for the modes that write the protocol by hand: importing hearth_plugin points
# file descriptor 1 and sys.stdout at stderr.
_out = os.fdopen(os.dup(1), "wb")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "adapters", "plugin", "python"))
import hearth_plugin as hp  # noqa: E402

PLUGIN_ID = os.environ.get("HEARTH_PLUGIN_ID") or "misbehave"
THING = f"{PLUGIN_ID}:thing-1"
NAME = "Misbehaving test plugin"
VERSION = "1.0.0"
MODES = ("normal", "panic", "exit", "hang", "garbage", "foreign", "broken", "flood", "stubborn")


def thing() -> dict:
    return hp.device(THING, "Thing 1", [hp.switch("state")], manufacturer="Hearth tests", model="Misbehave")


# ---- with the module ----------------------------------------------------------------------


class Misbehave(hp.Plugin):
    id = PLUGIN_ID
    name = NAME
    version = VERSION

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.on = False

    def start(self, config):
        self.announce(thing())
        self.online(THING)
        self.state(THING, {"state": self.on})
        if self.mode == "panic":
            time.sleep(0.3)
            raise RuntimeError("misbehave: panicking on purpose, 0.3 s after ready")
        if self.mode == "exit":
            self.after(0.3, sys.exit, 0)
        if self.mode == "foreign":
            self.send({"type": "state", "device": "demo:living_lamp", "values": {"state": True}})
            self.send({
                "type": "device",
                "device": hp.device("shelly:intruder", "Intruder", [hp.switch("state")]),
            })

    def command(self, device_id, set_values, refresh, transition, context):
        if "state" in set_values:
            self.on = bool(set_values["state"])
        self.state(device_id, {"state": self.on}, cause=context)


# ---- by hand --------------------------------------------------------------------------------

_write_lock = threading.Lock()


def write_line(data: bytes) -> None:
    with _write_lock:
        _out.write(data + b"\n")
        _out.flush()


def send(message: dict) -> None:
    write_line(json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def read_messages():
    """(line number, message or None) for each line of stdin; None for what is not a JSON object."""
    number = 0
    for raw in iter(sys.stdin.buffer.readline, b""):
        number += 1
        if not raw.strip():
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        yield number, message if isinstance(message, dict) else None


def hello() -> dict:
    return {"type": "hello", "protocol": 1, "id": PLUGIN_ID, "name": NAME, "version": VERSION, "discovers": {}}


def handshake(messages) -> None:
    """Answer hello, wait for ready, then announce the thing."""
    for _, m in messages:
        if m is None:
            continue
        kind = m.get("type")
        if kind == "hello":
            send(hello())
        elif kind == "ping":
            send({"type": "pong", "id": m.get("id")})
        elif kind == "shutdown":
            sys.exit(0)
        elif kind == "ready":
            send({"type": "device", "device": thing()})
            send({"type": "availability", "device": THING, "availability": {"state": "online"}})
            send({"type": "state", "device": THING, "values": {"state": False}})
            return
    sys.exit(0)  # end of file


def exit_at_eof(messages, on_message=None) -> None:
    """Read on until the end of file, then exit at once."""
    for number, m in messages:
        if on_message is not None:
            on_message(number, m)
    os._exit(0)


def hang(messages) -> None:
    hung = threading.Event()

    def reader() -> None:
        for _, m in messages:
            if hung.is_set():
                break
            if m is not None and m.get("type") == "ping":
                send({"type": "pong", "id": m.get("id")})
            if m is not None and m.get("type") == "shutdown":
                os._exit(0)
        if not hung.is_set():
            os._exit(0)  # end of file before hanging
        threading.Event().wait()  # stop reading, forever

    threading.Thread(target=reader, daemon=True).start()
    time.sleep(0.3)
    hung.set()
    while True:
        time.sleep(3600)


def garbage(messages) -> None:
    threading.Thread(target=exit_at_eof, args=(messages,), daemon=True).start()
    n = 0
    while True:
        n += 1
        write_line(f"this is not JSON, line {n} of garbage {{".encode())
        time.sleep(0.05)


def answer_pings(stop_on_shutdown: bool):
    def on_message(_number, m) -> None:
        if m is None:
            return
        if m.get("type") == "ping":
            send({"type": "pong", "id": m.get("id")})
        elif m.get("type") == "shutdown" and stop_on_shutdown:
            os._exit(0)

    return on_message


def flood(messages) -> None:
    """2000 log lines at once (over the burst of 1000), then one line of 2 MiB, then quiet."""
    threading.Thread(target=exit_at_eof, args=(messages, answer_pings(True)), daemon=True).start()
    for n in range(2000):
        send({"type": "log", "level": "debug", "message": f"flood line {n}"})
    write_line(b'{"type":"log","level":"debug","message":"' + b"x" * (2 * 1024 * 1024) + b'"}')
    while True:
        time.sleep(3600)


def stubborn(messages) -> None:
    """Runs normally but ignores `shutdown`: the hub must kill it."""
    threading.Thread(target=exit_at_eof, args=(messages, answer_pings(False)), daemon=True).start()
    while True:
        time.sleep(3600)


KNOWN = {"hello", "secrets", "inbox", "ready", "bye", "config", "command", "refresh", "action", "ping", "shutdown",
         "error"}


def broken(messages) -> None:
    for _, m in messages:
        if m is None:
            continue
        kind = m.get("type")
        if kind == "ping":
            send({"type": "pong", "id": m.get("id")})
        elif kind in ("shutdown", "bye"):
            sys.exit(0)
        elif kind not in KNOWN:
            sys.stderr.write(f"misbehave: unknown message type {kind!r}; crashing on purpose\n")
            sys.stderr.flush()
            os._exit(3)
        # commands, refreshes, actions and config are ignored
    sys.exit(0)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in MODES:
        sys.stderr.write(f"usage: misbehave.py MODE, MODE one of {', '.join(MODES)}; got {mode!r}\n")
        sys.exit(2)
    if mode in ("normal", "panic", "exit", "foreign"):
        hp.main(lambda: Misbehave(mode))
        return
    messages = read_messages()
    handshake(messages)
    {"hang": hang, "garbage": garbage, "broken": broken, "flood": flood, "stubborn": stubborn}[mode](messages)


if __name__ == "__main__":
    main()
