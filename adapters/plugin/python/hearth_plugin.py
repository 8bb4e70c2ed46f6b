"""Hearth adapter plugins in Python: protocol version 1, standard library only.

This one file speaks the whole plugin protocol of ``adapters/sdk/PLUGINS.md`` so that a plugin
is a small class. Copy it next to your plugin, or put its directory on ``sys.path``::

    import hearth_plugin as hp

    class Lamp(hp.Plugin):
        id = "lamp"
        name = "Virtual lamp"
        version = "1.0.0"

        def start(self, config):
            self.on = False
            self.announce(hp.device("lamp:lamp-1", "Lamp", [hp.switch()]))
            self.online("lamp:lamp-1")
            self.state("lamp:lamp-1", {"state": self.on})

        def command(self, device_id, set_values, refresh, transition, context):
            if "state" in set_values:
                self.on = set_values["state"]
            self.state(device_id, {"state": self.on}, cause=context)

    if __name__ == "__main__":
        hp.main(Lamp)

What the module does for you:

- It answers the hub's ``hello`` (choosing protocol 1), keeps ``config``, ``secrets`` and the
  inbox ``decisions``, and calls ``start(config)`` once ``ready`` has come.
- It reads stdin on a thread of its own and answers ``ping`` at once, whatever your code is doing.
- Device messages (``announce``, ``state``, ...) before ``ready`` raise ``RuntimeError``, and
  device ids that are not the plugin's own (or not announced yet) raise ``ValueError``; ``send()``
  writes a raw message unchecked.
- It writes each message as one compact JSON line under a lock and flushes it. ``NaN`` and
  ``Infinity`` are never written: a state value that is not a finite number is left out (with a
  ``log`` at ``warn``), anything else that is not JSON raises ``ValueError``.
- Importing it takes the real stdout for the protocol and points ``sys.stdout`` (and file
  descriptor 1, so child processes and C libraries too) at stderr: ``print`` is safe from then
  on. So import it first, before anything that might print.
- It answers unknown message types (``unknown_type``), malformed ones (``bad_message``), and
  commands for devices it was not told about (``unknown_device``); it never answers an ``error``.
- It remembers every device you announce, its availability and its latest values, so the default
  ``refresh()`` sends the full picture again.
- It answers every ``action`` exactly once: with what ``action()`` returns, with the
  ``ActionError`` it raises, with ``failed`` for any other exception, or with ``timeout`` when it
  takes longer than ``action_timeout`` seconds (14).
- It exits with status 0 within 5 seconds of ``shutdown`` (after calling ``stop()``), at once on
  end of file on stdin, and with status 1 after ``bye`` (its reason goes to stderr).

Threads: the hooks (``start``, ``command``, ``config_changed``, ``secrets_changed``,
``inbox_changed``, ``refresh``, ``stop``) run one at a time, in the order their messages came, on
one worker thread, holding ``self.lock``. Callbacks of ``every()`` and ``after()`` hold
``self.lock`` too, so none of that code ever runs at the same time as the rest. ``action()`` runs
on a thread of its own without the lock (actions may be slow, and several may run at once): take
``with self.lock:`` there when it touches what the hooks touch. All the helpers that send
(``state``, ``online``, ``log``, ...) may be called from any thread.

Errors: an exception in ``start`` is fatal (traceback on stderr, exit status 1, and the hub
restarts the plugin). An exception in any other hook or callback is written to stderr and sent as
a ``log``, and the plugin goes on. ``SystemExit`` raised anywhere in your code (``sys.exit(2)``)
ends the process with that status.

Python 3.9 or later.
"""

from __future__ import annotations

import collections
import json
import math
import os
import queue
import re
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

__all__ = [
    "PROTOCOL",
    "PROTOCOLS",
    "CANONICAL_UNITS",
    "ActionError",
    "Plugin",
    "Timer",
    "access",
    "binary_sensor",
    "button",
    "device",
    "feature",
    "main",
    "preset",
    "sensor",
    "switch",
]

#: The protocol version this module speaks by default.
PROTOCOL = 1
#: Every protocol version this module speaks.
PROTOCOLS = (1,)

#: The canonical unit of each capability (MODEL.md, "Capabilities"); None means unitless.
CANONICAL_UNITS: Dict[str, Optional[str]] = {
    "on_off": None,
    "brightness": "%",
    "color_temperature": "K",
    "color": None,
    "effect": None,
    "temperature": "°C",
    "humidity": "%",
    "pressure": "hPa",
    "illuminance": "lx",
    "battery": "%",
    "battery_low": None,
    "contact": None,
    "occupancy": None,
    "water_leak": None,
    "smoke": None,
    "gas": None,
    "carbon_monoxide": None,
    "tamper": None,
    "vibration": None,
    "power": "W",
    "energy": "kWh",
    "voltage": "V",
    "current": "A",
    "co2": "ppm",
    "pm25": "µg/m³",
    "pm10": "µg/m³",
    "voc": "ppb",
    "formaldehyde": "mg/m³",
    "moisture": "%",
    "lock": None,
    "cover_position": "%",
    "cover_state": None,
    "tilt": "%",
    "hvac_mode": None,
    "hvac_action": None,
    "setpoint": "°C",
    "fan_mode": None,
    "fan_speed": "%",
    "action": None,
    "signal_strength": "dBm",
    "link_quality": None,
    "duration": "s",
    "other": None,
}

VALUE_TYPES = ("bool", "number", "enum", "text", "color", "list", "object")
CATEGORIES = ("primary", "config", "diagnostic")
POWER_SOURCES = ("mains", "battery", "dc", "unknown")
TRANSPORTS = ("wifi", "ble", "zigbee", "other")
AVAILABILITY_STATES = ("online", "offline", "unknown")
STATUS_STATES = ("starting", "running", "degraded", "unavailable", "stopped", "failed")
LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
ACTION_ERROR_CODES = ("bad_params", "not_found", "failed", "timeout", "unavailable")

#: The longest line the hub reads (1 MiB, without the newline).
MAX_LINE = 1024 * 1024

_ADAPTER_ID = re.compile(r"[a-z][a-z0-9_]*\Z")
_FEATURE_KEY = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*\Z")

# Seconds: how long shutdown waits for hooks already queued, and for stop() (both within the
# hub's 5 s); how long stop() may take after end of file on stdin.
_SHUTDOWN_DRAIN = 2.0
_SHUTDOWN_TOTAL = 3.5
_EOF_STOP = 1.0


class ActionError(Exception):
    """Raise from ``Plugin.action`` to answer the action with an error.

    ``code`` is one of ``bad_params`` (name the parameter), ``not_found``, ``failed`` (the
    device's or bridge's own words), ``timeout``, ``unavailable``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = str(message)


class _BadMessage(Exception):
    """A hub message of a known type with a missing or malformed field."""


class _NotFinite(ValueError):
    pass


# --------------------------------------------------------------------------------------------
# Values and the device model (MODEL.md)


def _value(v: Any, where: str) -> Any:
    """A model value: every number a finite float, objects in key order, no null."""
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise _NotFinite(f"{where} is {v!r}, not a finite number")
        return float(v)
    if isinstance(v, int):
        try:
            return float(v)
        except OverflowError:
            raise _NotFinite(f"{where} is too large for a 64-bit float") from None
    if isinstance(v, Mapping):
        out = {}
        for k in sorted(v, key=str):
            out[str(k)] = _value(v[k], f"{where}.{k}")
        return out
    if isinstance(v, (list, tuple)):
        return [_value(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if v is None:
        raise _NotFinite(f"{where} is None; the model has no null value")
    if hasattr(v, "__float__"):  # numpy numbers, Decimal, Fraction
        return _value(float(v), where)
    raise TypeError(f"{where} is a {type(v).__name__}, which is no model value")


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not hasattr(v, "__float__"):
        raise TypeError(f"{what} must be a number, not {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{what} must be a finite number, not {v!r}")
    return f


def _jsonable(v: Any) -> Any:
    """Anything, made JSON for a log field: what is not JSON becomes its str()."""
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


def access(observe: bool = True, set: bool = False, get: bool = False) -> Dict[str, bool]:  # noqa: A002
    """The ``access`` of a feature: observe (reports on its own), set (commands), get (refresh)."""
    return {"observe": bool(observe), "set": bool(set), "get": bool(get)}


def preset(name: str, value: Optional[float] = None, description: Optional[str] = None) -> Dict[str, Any]:
    """A named value of a number feature (``value`` absent when the preset is no number)."""
    out: Dict[str, Any] = {"name": str(name)}
    if value is not None:
        out["value"] = _number(value, f"preset `{name}` value")
    if description is not None:
        out["description"] = str(description)
    return out


def feature(
    key: str,
    capability: str,
    type: str,  # noqa: A002
    *,
    observe: bool = True,
    set: bool = False,  # noqa: A002
    get: bool = False,
    unit: Optional[str] = None,
    min: Optional[float] = None,  # noqa: A002
    max: Optional[float] = None,  # noqa: A002
    step: Optional[float] = None,
    values: Optional[Sequence[str]] = None,
    max_length: Optional[int] = None,
    endpoint: Optional[str] = None,
    category: str = "primary",
    label: Optional[str] = None,
    presets: Optional[Sequence[Mapping[str, Any]]] = None,
) -> Dict[str, Any]:
    """A feature in the JSON form of MODEL.md.

    ``unit`` defaults to the capability's canonical unit for a number; giving another unit for a
    capability that has one is an error (convert to the canonical unit at the edge). ``type`` is
    one of bool, number, enum, text, color, list, object; ``values`` is required for an enum.
    """
    if not isinstance(key, str) or not _FEATURE_KEY.match(key):
        raise ValueError(f"feature key {key!r} is not snake_case (lowercase letters, digits and _)")
    if not isinstance(capability, str) or not _ADAPTER_ID.match(capability):
        raise ValueError(f"feature `{key}`: capability {capability!r} is not a capability name")
    if type not in VALUE_TYPES:
        raise ValueError(f"feature `{key}`: type {type!r} is not one of {', '.join(VALUE_TYPES)}")
    if category not in CATEGORIES:
        raise ValueError(f"feature `{key}`: category {category!r} is not one of {', '.join(CATEGORIES)}")
    canonical = CANONICAL_UNITS.get(capability)
    if unit is None and type == "number":
        unit = canonical
    elif unit is not None and canonical is not None and unit != canonical:
        raise ValueError(
            f"feature `{key}`: capability `{capability}` is in {canonical}, not {unit}; convert the values"
        )
    out: Dict[str, Any] = {"key": key, "capability": capability, "type": type}
    if type == "number":
        for name, limit in (("min", min), ("max", max), ("step", step)):
            if limit is not None:
                out[name] = _number(limit, f"feature `{key}` {name}")
    elif min is not None or max is not None or step is not None:
        raise ValueError(f"feature `{key}`: min, max and step are for numbers, not {type}")
    if type == "enum":
        if not values or isinstance(values, str) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"feature `{key}`: an enum needs `values`, a list of strings")
        out["values"] = list(values)
    elif values is not None:
        raise ValueError(f"feature `{key}`: values are for enums, not {type}")
    if type == "text" and max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0:
            raise ValueError(f"feature `{key}`: max_length must be a whole number of characters")
        out["max_length"] = max_length
    elif max_length is not None:
        raise ValueError(f"feature `{key}`: max_length is for text, not {type}")
    if unit is not None:
        out["unit"] = str(unit)
    out["access"] = access(observe, set, get)
    if endpoint is not None:
        out["endpoint"] = str(endpoint)
    out["category"] = category
    if label is not None:
        out["label"] = str(label)
    if presets:
        if type != "number":
            raise ValueError(f"feature `{key}`: presets are for numbers, not {type}")
        out["presets"] = [preset(p["name"], p.get("value"), p.get("description")) for p in presets]
    return out


def sensor(
    key: str,
    capability: Optional[str] = None,
    *,
    unit: Optional[str] = None,
    min: Optional[float] = None,  # noqa: A002
    max: Optional[float] = None,  # noqa: A002
    step: Optional[float] = None,
    get: bool = False,
    endpoint: Optional[str] = None,
    category: str = "primary",
    label: Optional[str] = None,
) -> Dict[str, Any]:
    """A read-only number the device reports (capability defaults to the key)."""
    return feature(
        key,
        capability or key,
        "number",
        observe=True,
        set=False,
        get=get,
        unit=unit,
        min=min,
        max=max,
        step=step,
        endpoint=endpoint,
        category=category,
        label=label,
    )


def binary_sensor(
    key: str,
    capability: Optional[str] = None,
    *,
    get: bool = False,
    endpoint: Optional[str] = None,
    category: str = "primary",
    label: Optional[str] = None,
) -> Dict[str, Any]:
    """A read-only bool the device reports (contact, occupancy, ...; capability defaults to the key)."""
    return feature(
        key, capability or key, "bool", observe=True, get=get, endpoint=endpoint, category=category, label=label
    )


def switch(
    key: str = "state",
    *,
    get: bool = False,
    endpoint: Optional[str] = None,
    category: str = "primary",
    label: Optional[str] = None,
) -> Dict[str, Any]:
    """An ``on_off`` bool that the device reports and a command sets."""
    return feature(
        key, "on_off", "bool", observe=True, set=True, get=get, endpoint=endpoint, category=category, label=label
    )


def button(
    key: str = "action",
    values: Sequence[str] = ("single", "double", "hold"),
    *,
    endpoint: Optional[str] = None,
    label: Optional[str] = None,
) -> Dict[str, Any]:
    """A button's ``action`` feature: its presses are events (``Plugin.event``), never state."""
    return feature(
        key, "action", "enum", observe=False, values=values, endpoint=endpoint, category="primary", label=label
    )


def device(
    id: str,  # noqa: A002
    name: str,
    features: Iterable[Mapping[str, Any]],
    *,
    suggested_area: Optional[str] = None,
    manufacturer: Optional[str] = None,
    model: Optional[str] = None,
    firmware: Optional[str] = None,
    via: Optional[str] = None,
    power_source: Optional[str] = None,
) -> Dict[str, Any]:
    """A DeviceDescriptor in the JSON form of MODEL.md; send it with ``Plugin.announce``."""
    if not isinstance(id, str) or ":" not in id or not id.split(":", 1)[1]:
        raise ValueError(f"device id {id!r} is not `<adapter id>:<native id>`")
    if not isinstance(name, str) or not name:
        raise ValueError(f"device `{id}`: name must be a non-empty string")
    if power_source is not None and power_source not in POWER_SOURCES:
        raise ValueError(f"device `{id}`: power_source {power_source!r} is not one of {', '.join(POWER_SOURCES)}")
    out: Dict[str, Any] = {"id": id, "name": name}
    for field, value in (
        ("suggested_area", suggested_area),
        ("manufacturer", manufacturer),
        ("model", model),
        ("firmware", firmware),
        ("via", via),
        ("power_source", power_source),
    ):
        if value is not None:
            out[field] = str(value)
    out["features"] = [dict(f) for f in features]
    return out


# --------------------------------------------------------------------------------------------
# Streams


def _stderr(text: str) -> None:
    """One line of the module's own on stderr (never a secret)."""
    try:
        err = sys.__stderr__ or sys.stderr
        err.write(f"hearth_plugin: {text}\n")
        err.flush()
    except Exception:
        pass


_protocol_out = None
_claim_lock = threading.Lock()


def _claim_stdout():
    """Keep the real stdout for the protocol; everything else that writes to stdout goes to stderr.

    File descriptor 1 is pointed at stderr (so child processes and C libraries are covered too),
    and ``sys.stdout`` becomes ``sys.stderr``. Returns a binary stream onto the real stdout.
    """
    global _protocol_out
    with _claim_lock:
        if _protocol_out is not None:
            return _protocol_out
        out = None
        try:
            fd = os.dup(1)
            try:
                os.dup2(2, 1)
            except OSError:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.close(devnull)
            out = os.fdopen(fd, "wb")
        except OSError:
            out = None
        try:
            if sys.stdout is not None:
                sys.stdout.flush()  # what was printed so far goes to fd 1, which is stderr now
        except Exception:
            pass
        if out is None:  # no file descriptors to play with: keep what we have
            out = sys.__stdout__.buffer if sys.__stdout__ is not None else open(os.devnull, "wb")
        sys.stdout = sys.stderr
        _protocol_out = out
        return out


class _Output:
    """The protocol stream: whole lines, under a lock, flushed one by one."""

    def __init__(self, stream, on_closed: Callable[[], None]) -> None:
        self._stream = stream
        self._on_closed = on_closed
        self.lock = threading.Lock()
        self.lines = 0
        self.closed = False
        self.recent: collections.deque = collections.deque(maxlen=512)

    @staticmethod
    def encode(message: Mapping[str, Any]) -> bytes:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = text.encode("utf-8")
        if len(data) > MAX_LINE:
            raise ValueError(f"a `{message.get('type')}` message of {len(data)} bytes is over the 1 MiB line limit")
        return data + b"\n"

    def write(self, message: Mapping[str, Any]) -> bool:
        """Write one message; False if stdout is closed. Raises ValueError if it is not JSON."""
        data = self.encode(message)
        closed_now = False
        with self.lock:
            if self.closed:
                return False
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError):
                self.closed = True
                closed_now = True
            else:
                self.lines += 1
                self.recent.append((self.lines, message.get("type")))
        if closed_now:
            self._on_closed()
            return False
        return True

    def type_of_line(self, line: int) -> Optional[str]:
        with self.lock:
            for n, t in self.recent:
                if n == line:
                    return t
        return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# --------------------------------------------------------------------------------------------
# Timers


class Timer:
    """Periodic or one-shot work made by ``Plugin.every`` or ``Plugin.after``.

    The callback runs on the timer's own thread holding ``plugin.lock``; an exception is logged
    and the timer goes on. The delay is counted from the end of the previous run. Set
    ``interval`` to change it (takes effect at once), ``cancel()`` to stop it. Every timer stops
    when the plugin stops.
    """

    def __init__(self, plugin: "Plugin", interval: float, fn: Callable[..., Any], args: tuple, repeat: bool,
                 first: Optional[float]) -> None:
        self._plugin = plugin
        self._interval = _positive(interval, "interval")
        self._first = None if first is None else _not_negative(first, "first")
        self._fn = fn
        self._args = args
        self._repeat = repeat
        self._cond = threading.Condition()
        self._cancelled = False
        self._changed = False
        self._since = time.monotonic()
        self._thread: Optional[threading.Thread] = None

    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        seconds = _positive(seconds, "interval")
        with self._cond:
            self._interval = seconds
            self._changed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    @property
    def active(self) -> bool:
        return not self._cancelled and self._thread is not None and self._thread.is_alive()

    def _start(self) -> None:
        if self._thread is None and not self._cancelled:
            self._since = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="hearth-timer", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self._first if self._first is not None else self._interval
        due = self._since + delay
        while True:
            with self._cond:
                while True:
                    if self._cancelled or self._plugin.stopping.is_set():
                        return
                    if self._changed:
                        self._changed = False
                        due = self._since + self._interval
                    remaining = due - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            self._plugin._call_locked(self._fn, self._args, f"timer {getattr(self._fn, '__name__', 'callback')}")
            if not self._repeat:
                self._cancelled = True
                return
            self._since = time.monotonic()
            due = self._since + self._interval


def _positive(seconds: Any, what: str) -> float:
    f = _number(seconds, what)
    if f <= 0:
        raise ValueError(f"{what} must be more than 0 seconds, not {seconds!r}")
    return f


def _not_negative(seconds: Any, what: str) -> float:
    f = _number(seconds, what)
    if f < 0:
        raise ValueError(f"{what} must be 0 seconds or more, not {seconds!r}")
    return f


# --------------------------------------------------------------------------------------------
# The plugin


class _Record:
    __slots__ = ("descriptor", "availability", "values")

    def __init__(self, descriptor: Dict[str, Any]) -> None:
        self.descriptor = descriptor
        self.availability: Optional[Dict[str, Any]] = None
        self.values: Dict[str, Any] = {}


class Plugin:
    """Subclass this, set the class attributes, override the hooks, and call ``run()``.

    Class attributes (or keyword arguments of the constructor):

    - ``id``: the adapter id, as in ``plugin.toml``; default: ``$HEARTH_PLUGIN_ID``.
    - ``name``, ``version``: the human name and the plugin's version, as in ``plugin.toml``.
    - ``discovers``: ``{"mdns": [...], "ble": [...], "mqtt": [...]}``, each list optional.
    - ``actions``: the names of the management actions ``action()`` takes.
    - ``secrets_description``: ``{"names": "...", "values": "..."}`` if the plugin takes secrets.
    - ``action_timeout``: seconds before an unanswered action is answered with ``timeout`` (14).

    At run time: ``self.config``, ``self.secrets`` and ``self.decisions`` hold the latest the hub
    sent; ``self.data_dir`` is ``$HEARTH_PLUGIN_DATA``; ``self.stopping`` is set once the plugin
    stops; ``self.lock`` is held while hooks and timer callbacks run.
    """

    id: Optional[str] = None
    name: str = ""
    version: str = ""
    discovers: Mapping[str, Sequence[str]] = {}
    actions: Sequence[str] = ()
    secrets_description: Optional[Mapping[str, str]] = None
    action_timeout: float = 14.0

    def __init__(self, **attributes: Any) -> None:
        for key, value in attributes.items():
            if key not in ("id", "name", "version", "discovers", "actions", "secrets_description", "action_timeout"):
                raise TypeError(f"Plugin() got an unknown argument `{key}`")
            setattr(self, key, value)
        if self.id is None:
            self.id = os.environ.get("HEARTH_PLUGIN_ID")
        if not isinstance(self.id, str) or not _ADAPTER_ID.match(self.id):
            raise ValueError(
                f"plugin id {self.id!r} is not an adapter id (lowercase letters, digits and _, starting with a letter)"
            )
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("the plugin's `name` must be a non-empty string")
        if not isinstance(self.version, str) or not self.version:
            raise ValueError("the plugin's `version` must be a non-empty string")
        self._discovers = self._check_discovers(self.discovers)
        if isinstance(self.actions, str) or not all(isinstance(a, str) and a for a in self.actions):
            raise ValueError("the plugin's `actions` must be a list of names")
        self.actions = list(self.actions)
        if self.secrets_description is not None:
            sd = self.secrets_description
            if not isinstance(sd, Mapping) or not isinstance(sd.get("names"), str) or not isinstance(
                sd.get("values"), str
            ):
                raise ValueError('`secrets_description` must be {"names": "...", "values": "..."}')
        self.action_timeout = _positive(self.action_timeout, "action_timeout")

        self.config: Dict[str, Any] = {}
        self.secrets: Dict[str, str] = {}
        self.decisions: Dict[str, str] = {}
        self.data_dir: Optional[str] = os.environ.get("HEARTH_PLUGIN_DATA")
        self.protocol: Optional[int] = None
        self.hub_version: Optional[str] = None
        self.lock = threading.RLock()
        self.stopping = threading.Event()

        self._out = _Output(_claim_stdout(), self._output_closed)  # claimed at import already
        self._registry_lock = threading.Lock()
        self._devices: "collections.OrderedDict[str, _Record]" = collections.OrderedDict()
        self._dropped: set = set()
        self._jobs: "queue.Queue[Optional[Callable[[], None]]]" = queue.Queue()
        self._timers: List[Timer] = []
        self._timers_lock = threading.Lock()
        self._hello_sent = False
        self._ready = threading.Event()
        self._started = False
        self._exit_lock = threading.Lock()
        self._exit_kind: Optional[str] = None
        self._exit_code = 0
        self._exit_requested = threading.Event()
        self._running = False

    # ---- hooks ---------------------------------------------------------------------------

    def start(self, config: Dict[str, Any]) -> None:
        """The hub sent ``ready``: announce the devices, report availability and state."""

    def command(
        self,
        device_id: str,
        set_values: Dict[str, Any],
        refresh: List[str],
        transition: Optional[float],
        context: Dict[str, Any],
    ) -> None:
        """A command for one of the plugin's devices (only devices announced during this run).

        ``set_values``: feature key -> value, validated by the hub. ``refresh``: the keys to read
        again (``refresh: true`` comes as every feature with ``get`` access). ``transition``:
        seconds, or None. Report the result with ``self.state(device_id, values, cause=context)``.
        """
        self.log("warn", "The plugin does not handle commands.", device=device_id)

    def config_changed(self, config: Dict[str, Any]) -> None:
        """The administrator changed the config (``self.config`` is already the new one)."""

    def secrets_changed(self, secrets: Dict[str, str]) -> None:
        """The secrets changed (the full current set). Never log them."""

    def inbox_changed(self, decisions: Dict[str, str]) -> None:
        """The user's inbox decisions changed: found key -> ``accepted`` or ``ignored``."""

    def action(self, name: str, params: Dict[str, Any], context: Optional[Dict[str, Any]]) -> Any:
        """A management action named in ``actions``: return a JSON-able result or raise ActionError."""
        raise ActionError("not_found", f"the plugin does not handle the action `{name}`")

    def refresh(self) -> None:
        """The hub wants the full picture: by default every known device, availability and state."""
        self.resend_all()

    def stop(self) -> None:
        """The plugin is stopping (``shutdown``, or end of file on stdin): close politely, quickly."""

    def hub_error(self, error: Dict[str, Any]) -> None:
        """The hub refused one of our lines. By default it is written to stderr."""
        what = error.get("refused_type") or error.get("our_type") or "?"
        _stderr(
            f"the hub refused our line {error.get('line', '?')} ({what}): "
            f"{error.get('code', '?')}: {error.get('message', '')}"
        )

    # ---- sending ---------------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> bool:
        """Write one raw protocol message, unchecked. False if the hub is gone."""
        return self._out.write(message)

    def announce(self, descriptor: Mapping[str, Any]) -> None:
        """Send ``device``: announce a device or its changed description (see ``device()``)."""
        self._need_ready("device")
        if not isinstance(descriptor, Mapping):
            raise TypeError("announce() takes a device descriptor (see hearth_plugin.device)")
        d = dict(descriptor)
        did = d.get("id")
        self._check_own(did, "device.id")
        if d.get("via") is not None:
            self._check_own(d["via"], "device.via")
        if not isinstance(d.get("name"), str) or not d["name"]:
            raise ValueError(f"device `{did}`: name must be a non-empty string")
        features = d.get("features")
        if not isinstance(features, list) or not all(isinstance(f, Mapping) for f in features):
            raise ValueError(f"device `{did}`: features must be a list of features (see hearth_plugin.feature)")
        keys = [f.get("key") for f in features]
        dupes = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        if dupes:
            raise ValueError(f"device `{did}`: duplicate feature keys: {', '.join(map(str, dupes))}")
        with self._registry_lock:
            record = self._devices.get(did)
            if record is None:
                self._devices[did] = _Record(d)
            else:
                record.descriptor = d
                known = set(keys)
                record.values = {k: v for k, v in record.values.items() if k in known}
        self._out.write({"type": "device", "device": d})

    def remove_device(self, device_id: str) -> None:
        """Send ``device_removed``: the device is gone at its source (not merely unreachable)."""
        self._need_ready("device_removed")
        self._check_known(device_id)
        with self._registry_lock:
            self._devices.pop(device_id, None)
        self._out.write({"type": "device_removed", "device": device_id})

    def state(self, device_id: str, values: Mapping[str, Any], cause: Optional[Mapping[str, Any]] = None) -> None:
        """Send ``state``: values the device reported, in canonical units.

        Pass ``cause=context`` when the report answers a command. A value that is not a finite
        number (NaN, None) is left out, with a ``log`` at ``warn`` the first time.
        """
        self._need_ready("state")
        self._check_known(device_id)
        if not isinstance(values, Mapping):
            raise TypeError("state() takes values as a mapping of feature key -> value")
        if cause is not None and not isinstance(cause, Mapping):
            raise TypeError("state()'s cause must be the command's context (a dict) or None")
        clean: Dict[str, Any] = {}
        for key in sorted(values, key=str):
            spot = (device_id, str(key))
            try:
                clean[str(key)] = _value(values[key], f"feature `{key}` of `{device_id}`")
            except _NotFinite as e:
                if spot not in self._dropped:
                    self._dropped.add(spot)
                    self.log("warn", "A value was left out of a state report.", device=device_id, feature=str(key),
                             error=str(e))
                continue
            self._dropped.discard(spot)
        if not clean:
            return
        message: Dict[str, Any] = {"type": "state", "device": device_id, "values": clean}
        if cause is not None:
            message["cause"] = dict(cause)
        with self._registry_lock:
            record = self._devices.get(device_id)
            if record is not None:
                record.values.update(clean)
        self._out.write(message)

    def event(self, device_id: str, feature: str, event: str, data: Any = None) -> None:
        """Send ``event``: a momentary event (a button's ``single``), never state."""
        self._need_ready("event")
        self._check_known(device_id)
        message: Dict[str, Any] = {"type": "event", "device": device_id, "feature": str(feature), "event": str(event)}
        if data is not None:
            message["data"] = _value(data, f"event data of `{device_id}`")
        self._out.write(message)

    def availability(
        self, device_id: str, state: str, reason: Optional[str] = None, code: Optional[str] = None,
        since: Optional[str] = None,
    ) -> None:
        """Send ``availability``; prefer ``online()`` and ``offline()``."""
        self._need_ready("availability")
        self._check_known(device_id)
        if state not in AVAILABILITY_STATES:
            raise ValueError(f"availability state {state!r} is not one of {', '.join(AVAILABILITY_STATES)}")
        if state == "offline" and (not isinstance(reason, str) or not reason):
            raise ValueError(f"`{device_id}` goes offline without a reason: say why")
        a: Dict[str, Any] = {"state": state}
        if reason is not None:
            a["reason"] = str(reason)
        if code is not None:
            a["code"] = str(code)
        if since is not None:
            a["since"] = str(since)
        with self._registry_lock:
            record = self._devices.get(device_id)
            if record is not None:
                record.availability = a
        self._out.write({"type": "availability", "device": device_id, "availability": a})

    def online(self, device_id: str) -> None:
        """The device can be reached."""
        self.availability(device_id, "online")

    def offline(self, device_id: str, reason: str, code: Optional[str] = None) -> None:
        """The device cannot be reached, because ``reason`` (lowercase, no final period)."""
        self.availability(device_id, "offline", reason, code)

    def status(self, state: str, reason: Optional[str] = None, code: Optional[str] = None) -> None:
        """Send the plugin's own ``status`` (running, degraded, unavailable, ...)."""
        self._need_ready("status")
        if state not in STATUS_STATES:
            raise ValueError(f"status state {state!r} is not one of {', '.join(STATUS_STATES)}")
        s: Dict[str, Any] = {"state": state}
        if reason is not None:
            s["reason"] = str(reason)
        if code is not None:
            s["code"] = str(code)
        self._out.write({"type": "status", "status": s})

    def found(
        self,
        key: str,
        device_id: str,
        name: str,
        transport: str = "other",
        *,
        supported: bool = True,
        manufacturer: Optional[str] = None,
        model: Optional[str] = None,
        address: Optional[str] = None,
        kind: Optional[str] = None,
    ) -> None:
        """Send ``found``: something for the discovery inbox; announce it once it is accepted."""
        self._need_ready("found")
        self._check_own(device_id, "found.device")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        f: Dict[str, Any] = {"key": str(key), "device": device_id, "name": str(name)}
        if manufacturer is not None:
            f["manufacturer"] = str(manufacturer)
        if model is not None:
            f["model"] = str(model)
        f["transport"] = transport
        if address is not None:
            f["address"] = str(address)
        f["supported"] = bool(supported)
        if kind is not None:
            f["kind"] = str(kind)
        self._out.write({"type": "found", "found": f})

    def input_rejected(self, source: str, reason: str) -> None:
        """Send ``input_rejected``: input from ``source`` that the plugin could not use."""
        self._need_ready("input_rejected")
        self._out.write({"type": "input_rejected", "source": str(source), "reason": str(reason)})

    def log(self, level: str, message: str, /, **fields: Any) -> None:
        """Send a ``log`` line (allowed at any time). Never put a secret in it."""
        if level not in LOG_LEVELS:
            raise ValueError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}")
        m: Dict[str, Any] = {"type": "log", "level": level, "message": str(message)}
        if fields:
            m["fields"] = {k: _jsonable(v) for k, v in fields.items()}
        if not self._hello_sent:  # nothing but hello may open stdout
            _stderr(f"{level}: {m['message']} {json.dumps(m.get('fields', {}), ensure_ascii=False)}")
            return
        self._out.write(m)

    def error(self, message: str, /, **fields: Any) -> None:
        self.log("error", message, **fields)

    def warn(self, message: str, /, **fields: Any) -> None:
        self.log("warn", message, **fields)

    def info(self, message: str, /, **fields: Any) -> None:
        self.log("info", message, **fields)

    def debug(self, message: str, /, **fields: Any) -> None:
        self.log("debug", message, **fields)

    def resend_all(self) -> None:
        """Send every known device again, then its availability and its latest values (no cause)."""
        with self._registry_lock:
            records = [(did, dict(r.descriptor), r.availability, dict(r.values)) for did, r in self._devices.items()]
        for did, descriptor, availability, values in records:
            self._out.write({"type": "device", "device": descriptor})
            if availability is not None:
                self._out.write({"type": "availability", "device": did, "availability": availability})
            if values:
                self._out.write({"type": "state", "device": did, "values": values})

    # ---- what the plugin knows -------------------------------------------------------------

    def device_ids(self) -> List[str]:
        """The ids of the devices announced during this run, in order."""
        with self._registry_lock:
            return list(self._devices)

    def descriptor(self, device_id: str) -> Optional[Dict[str, Any]]:
        with self._registry_lock:
            r = self._devices.get(device_id)
            return None if r is None else dict(r.descriptor)

    def last_values(self, device_id: str) -> Dict[str, Any]:
        """The latest values reported for the device (empty if none)."""
        with self._registry_lock:
            r = self._devices.get(device_id)
            return {} if r is None else dict(r.values)

    # ---- timers ------------------------------------------------------------------------------

    def every(self, seconds: float, fn: Callable[..., Any], *args: Any, first: Optional[float] = None) -> Timer:
        """Call ``fn(*args)`` every ``seconds`` (the first time after ``first`` seconds, default
        ``seconds``), holding ``self.lock``, until the plugin stops. Timers made before ``ready``
        start once ``start()`` has returned."""
        return self._timer(seconds, fn, args, True, first)

    def after(self, seconds: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """Call ``fn(*args)`` once, ``seconds`` from now, holding ``self.lock``."""
        delay = _not_negative(seconds, "seconds")
        return self._timer(delay if delay > 0 else 1.0, fn, args, False, delay)

    def _timer(
        self, seconds: float, fn: Callable[..., Any], args: tuple, repeat: bool, first: Optional[float]
    ) -> Timer:
        if not callable(fn):
            raise TypeError("a timer needs a function to call")
        timer = Timer(self, seconds, fn, args, repeat, first)
        with self._timers_lock:
            self._timers = [t for t in self._timers if not t._cancelled]
            if self.stopping.is_set():
                timer._cancelled = True
            else:
                self._timers.append(timer)
                if self._started:
                    timer._start()
        return timer

    # ---- running -------------------------------------------------------------------------

    def run(self) -> None:
        """Speak the protocol until the hub stops the plugin; then exit the process. Never returns."""
        if self._running:
            raise RuntimeError("run() was called twice")
        self._running = True
        stdin = sys.stdin.buffer if sys.stdin is not None else None
        threading.Thread(target=self._read_loop, args=(stdin,), name="hearth-reader", daemon=True).start()
        threading.Thread(target=self._work_loop, name="hearth-worker", daemon=True).start()
        try:
            while not self._exit_requested.wait(1.0):
                pass
        except KeyboardInterrupt:
            self._request_exit("interrupt", 130)
        self._finish()

    def _finish(self) -> None:
        began = time.monotonic()
        kind, code = self._exit_kind, self._exit_code
        self.stopping.set()
        with self._timers_lock:
            timers = list(self._timers)
        for t in timers:
            t._wake()
        if kind == "shutdown":
            drained = threading.Event()
            self._jobs.put(drained.set)
            drained.wait(_SHUTDOWN_DRAIN)
        if self._started and kind in ("shutdown", "eof", "output_closed", "interrupt"):
            budget = _SHUTDOWN_TOTAL - (time.monotonic() - began) if kind == "shutdown" else _EOF_STOP
            stopper = threading.Thread(target=self._call_stop, args=(budget,), name="hearth-stop", daemon=True)
            stopper.start()
            stopper.join(max(0.0, budget))
        self._jobs.put(None)
        self._exit(code)

    def _call_stop(self, budget: float) -> None:
        if self.lock.acquire(timeout=max(0.0, budget)):
            try:
                self.stop()
            except SystemExit:
                pass
            except Exception as e:
                self._hook_failed("stop", e)
            finally:
                self.lock.release()

    def _exit(self, code: int) -> None:
        """Leave now: no half-written line, buffers flushed, whatever other threads are doing."""
        got = self._out.lock.acquire(timeout=1.0)
        try:
            if not self._out.closed:
                self._out._stream.flush()
        except Exception:
            pass
        try:
            import logging

            logging.shutdown()
        except Exception:
            pass
        for stream in (sys.stdout, sys.stderr, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        del got
        os._exit(code)

    def _request_exit(self, kind: str, code: int) -> None:
        with self._exit_lock:
            if self._exit_kind is not None:
                return
            self._exit_kind = kind
            self._exit_code = code
        self.stopping.set()
        self._exit_requested.set()

    def _output_closed(self) -> None:
        _stderr("stdout is closed: the hub has gone; stopping")
        self._request_exit("output_closed", 0)

    # ---- reading ---------------------------------------------------------------------------

    def _read_loop(self, stdin) -> None:
        line = 0
        while True:
            try:
                raw = stdin.readline() if stdin is not None else b""
            except (OSError, ValueError):
                raw = b""
            if not raw:
                self._request_exit("eof", 0)
                return
            line += 1
            try:
                self._handle_line(line, raw)
            except Exception as e:  # never let a line stop the reading
                _stderr(f"line {line} of the hub could not be handled: {e!r}")
                traceback.print_exc(file=sys.stderr)

    def _handle_line(self, line: int, raw: bytes) -> None:
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self._send_error("not_json", f"the line is not UTF-8: {e.reason} at byte {e.start}", line)
            return
        if not text.strip():
            return
        try:
            msg = json.loads(text, parse_constant=_reject_constant)
        except ValueError as e:
            self._send_error("not_json", f"the line is not JSON: {e}", line)
            return
        if not isinstance(msg, dict):
            self._send_error("not_an_object", f"the line is JSON but a {_json_kind(msg)}, not an object", line)
            return
        kind = msg.get("type")
        if not isinstance(kind, str):
            self._send_error("no_type", "the object has no string `type`", line)
            return
        if kind == "error":
            self._on_hub_error(msg)
            return
        handler = self._handlers().get(kind)
        if handler is None:
            shown = kind if len(kind) <= 100 else kind[:100] + "…"
            self._send_error("unknown_type", f"unknown message type `{shown}`", line, shown)
            return
        try:
            handler(line, msg)
        except _BadMessage as e:
            self._send_error("bad_message", f"`{kind}`: {e}", line, kind)

    def _handlers(self) -> Dict[str, Callable[[int, Dict[str, Any]], None]]:
        return {
            "hello": self._on_hello,
            "secrets": self._on_secrets,
            "inbox": self._on_inbox,
            "ready": self._on_ready,
            "bye": self._on_bye,
            "config": self._on_config,
            "command": self._on_command,
            "refresh": self._on_refresh,
            "action": self._on_action,
            "ping": self._on_ping,
            "shutdown": self._on_shutdown,
        }

    def _send_error(
        self, code: str, message: str, line: Optional[int] = None, refused_type: Optional[str] = None
    ) -> None:
        m: Dict[str, Any] = {"type": "error", "code": code, "message": message}
        if line is not None:
            m["line"] = line
        if refused_type is not None:
            m["refused_type"] = refused_type
        try:
            self._out.write(m)
        except ValueError:
            pass

    def _on_hub_error(self, msg: Dict[str, Any]) -> None:
        error = dict(msg)
        line = error.get("line")
        if isinstance(line, int) and not isinstance(line, bool) and "refused_type" not in error:
            ours = self._out.type_of_line(line)
            if ours is not None:
                error["our_type"] = ours
        try:
            self.hub_error(error)
        except Exception as e:
            self._hook_failed("hub_error", e)

    def _on_hello(self, line: int, msg: Dict[str, Any]) -> None:
        offered = msg.get("protocol")
        if not isinstance(offered, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in offered):
            raise _BadMessage("`protocol` must be an array of integers")
        config = msg.get("config", {})
        if not isinstance(config, dict):
            raise _BadMessage("`config` must be an object")
        if self._hello_sent:
            _stderr(f"the hub sent a second hello (line {line}); ignored")
            return
        common = [v for v in offered if v in PROTOCOLS]
        self.protocol = max(common) if common else max(PROTOCOLS)
        hub = msg.get("hub")
        self.hub_version = hub if isinstance(hub, str) else None
        self.config = config
        hello: Dict[str, Any] = {
            "type": "hello",
            "protocol": self.protocol,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "discovers": self._discovers,
        }
        if self.actions:
            hello["actions"] = list(self.actions)
        if self.secrets_description is not None:
            hello["secrets"] = {
                "names": self.secrets_description["names"],
                "values": self.secrets_description["values"],
            }
        self._hello_sent = True
        self._out.write(hello)
        if not common:
            _stderr(f"the hub offers protocol {offered}; this plugin speaks {list(PROTOCOLS)}")

    def _on_secrets(self, line: int, msg: Dict[str, Any]) -> None:
        secrets = msg.get("secrets")
        if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
            raise _BadMessage("`secrets` must be an object of strings")  # never name a value
        self._jobs.put(lambda: self._apply("secrets", secrets, self.secrets_changed))

    def _on_inbox(self, line: int, msg: Dict[str, Any]) -> None:
        decisions = msg.get("decisions")
        if not isinstance(decisions, dict) or not all(isinstance(v, str) for v in decisions.values()):
            raise _BadMessage("`decisions` must be an object of strings")
        self._jobs.put(lambda: self._apply("decisions", decisions, self.inbox_changed))

    def _on_config(self, line: int, msg: Dict[str, Any]) -> None:
        config = msg.get("config")
        if not isinstance(config, dict):
            raise _BadMessage("`config` must be an object")
        self._jobs.put(lambda: self._apply("config", config, self.config_changed))

    def _apply(self, attribute: str, value: Dict[str, Any], hook: Callable[[Dict[str, Any]], None]) -> None:
        with self.lock:
            setattr(self, attribute, value)
            if self._started:
                self._call(hook, (value,), hook.__name__)

    def _on_ready(self, line: int, msg: Dict[str, Any]) -> None:
        if not self._hello_sent:
            _stderr(f"the hub sent ready (line {line}) before hello; ignored")
            return
        if self._ready.is_set():
            _stderr(f"the hub sent a second ready (line {line}); ignored")
            return
        self._ready.set()
        self._jobs.put(self._job_start)

    def _job_start(self) -> None:
        try:
            with self.lock:
                self.start(self.config)
        except SystemExit as e:
            self._exit(_exit_status(e))
        except BaseException:
            _stderr("start() failed; the plugin cannot run:")
            traceback.print_exc(file=sys.stderr)
            self._exit(1)
        with self._timers_lock:
            self._started = True
            for t in self._timers:
                t._start()

    def _on_bye(self, line: int, msg: Dict[str, Any]) -> None:
        code = msg.get("code")
        reason = msg.get("reason")
        _stderr(f"the hub refused this plugin ({code if isinstance(code, str) else '?'}): "
                f"{reason if isinstance(reason, str) else 'no reason given'}")
        self._request_exit("bye", 1)

    def _on_shutdown(self, line: int, msg: Dict[str, Any]) -> None:
        self._request_exit("shutdown", 0)

    def _on_ping(self, line: int, msg: Dict[str, Any]) -> None:
        pid = msg.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise _BadMessage("`id` must be an integer")
        self._out.write({"type": "pong", "id": pid})

    def _on_refresh(self, line: int, msg: Dict[str, Any]) -> None:
        self._jobs.put(lambda: self._call_if_started(self.refresh, (), "refresh"))

    def _on_command(self, line: int, msg: Dict[str, Any]) -> None:
        device_id = msg.get("device")
        if not isinstance(device_id, str) or not device_id:
            raise _BadMessage("`device` must be a device id")
        set_values = msg.get("set", {})
        if not isinstance(set_values, dict):
            raise _BadMessage("`set` must be an object of feature key to value")
        transition = msg.get("transition")
        if transition is not None:
            if isinstance(transition, bool) or not isinstance(transition, (int, float)):
                raise _BadMessage("`transition` must be a number of seconds")
            transition = float(transition)
        refresh = msg.get("refresh", False)
        if not isinstance(refresh, bool) and not (
            isinstance(refresh, list) and all(isinstance(k, str) for k in refresh)
        ):
            raise _BadMessage("`refresh` must be true, false or an array of feature keys")
        context = msg.get("context")
        if not isinstance(context, dict):
            raise _BadMessage("`context` must be an object")
        if not isinstance(context.get("id"), str) or not isinstance(context.get("origin"), dict):
            raise _BadMessage("`context` must have a string `id` and an object `origin`")
        self._jobs.put(lambda: self._job_command(line, device_id, set_values, refresh, transition, context))

    def _job_command(self, line: int, device_id: str, set_values: Dict[str, Any], refresh: Any,
                     transition: Optional[float], context: Dict[str, Any]) -> None:
        with self._registry_lock:
            record = self._devices.get(device_id)
            features = list(record.descriptor.get("features", [])) if record is not None else []
        if record is None:
            self._send_error("unknown_device", f"this plugin has no device `{device_id}`", line, "command")
            return
        if refresh is True:
            keys = [f.get("key") for f in features if isinstance(f.get("access"), Mapping) and f["access"].get("get")]
        elif refresh is False:
            keys = []
        else:
            keys = list(refresh)
        try:
            with self.lock:
                self.command(device_id, set_values, keys, transition, context)
        except SystemExit as e:
            self._exit(_exit_status(e))
        except Exception as e:
            _stderr(f"command() for {device_id} failed:")
            traceback.print_exc(file=sys.stderr)
            self._try_log("warn", "The command failed.", device=device_id, error=_describe(e))

    def _on_action(self, line: int, msg: Dict[str, Any]) -> None:
        aid = msg.get("id")
        if not isinstance(aid, str):
            raise _BadMessage("`id` must be a string")
        name = msg.get("action")
        params = msg.get("params", {})
        context = msg.get("context")
        problem = None
        if not isinstance(name, str):
            problem = "`action` must be a string"
        elif not isinstance(params, dict):
            problem = "`params` must be an object"
        elif context is not None and not isinstance(context, dict):
            problem = "`context` must be an object"
        if problem is not None:
            # A malformed message, but its id is readable: answer it, so the caller need not wait.
            self._send_error("bad_message", f"`action`: {problem}", line, "action")
            self._answer_action(aid, error={"code": "bad_params", "message": problem})
            return
        if name not in self.actions:
            takes = ", ".join(self.actions) if self.actions else "none"
            self._answer_action(
                aid, error={"code": "not_found", "message": f"this plugin takes no action `{name}`; it takes: {takes}"}
            )
            return
        threading.Thread(
            target=self._run_action, args=(aid, name, params, context), name=f"hearth-action-{aid}", daemon=True
        ).start()

    def _run_action(self, aid: str, name: str, params: Dict[str, Any], context: Optional[Dict[str, Any]]) -> None:
        answered = threading.Lock()
        done = [False]

        def answer(**kw: Any) -> None:
            with answered:
                if done[0]:
                    return
                done[0] = True
            self._answer_action(aid, **kw)

        def work() -> None:
            try:
                result = self.action(name, params, context)
            except ActionError as e:
                answer(error={"code": e.code, "message": e.message})
            except SystemExit as e:
                answer(error={"code": "failed", "message": "the plugin is exiting"})
                self._exit(_exit_status(e))
            except Exception as e:
                _stderr(f"action `{name}` ({aid}) failed:")
                traceback.print_exc(file=sys.stderr)
                answer(error={"code": "failed", "message": _describe(e)})
            else:
                answer(result={} if result is None else result)

        worker = threading.Thread(target=work, name=f"hearth-action-{aid}-work", daemon=True)
        worker.start()
        worker.join(self.action_timeout)
        if worker.is_alive():
            took = f"the action `{name}` took longer than {self.action_timeout:g} s"
            answer(error={"code": "timeout", "message": took})

    def _answer_action(self, aid: str, result: Any = None, error: Optional[Dict[str, str]] = None) -> None:
        m: Dict[str, Any] = {"type": "action_result", "id": aid}
        if error is not None:
            m["error"] = error
        else:
            m["result"] = result
        try:
            self._out.write(m)
        except (TypeError, ValueError) as e:
            self._out.write({
                "type": "action_result",
                "id": aid,
                "error": {"code": "failed", "message": f"the plugin's answer is not JSON: {e}"},
            })

    # ---- calling the author's code -------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as e:
                _stderr(f"internal error: {e!r}")
                traceback.print_exc(file=sys.stderr)

    def _call_if_started(self, fn: Callable[..., Any], args: tuple, what: str) -> None:
        if self._started:
            self._call_locked(fn, args, what)

    def _call_locked(self, fn: Callable[..., Any], args: tuple, what: str) -> None:
        with self.lock:
            self._call(fn, args, what)

    def _call(self, fn: Callable[..., Any], args: tuple, what: str) -> None:
        try:
            fn(*args)
        except SystemExit as e:
            self._exit(_exit_status(e))
        except Exception as e:
            self._hook_failed(what, e)

    def _hook_failed(self, what: str, e: BaseException) -> None:
        _stderr(f"{what} failed:")
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        self._try_log("error", "The plugin's code failed.", hook=what, error=_describe(e))

    def _try_log(self, level: str, message: str, **fields: Any) -> None:
        try:
            self.log(level, message, **fields)
        except Exception:
            pass

    # ---- checks ------------------------------------------------------------------------------

    def _need_ready(self, what: str) -> None:
        if not self._ready.is_set():
            raise RuntimeError(f"`{what}` may be sent only after the hub's `ready` (send it from start() on)")

    def _check_own(self, device_id: Any, where: str) -> None:
        prefix = f"{self.id}:"
        if not isinstance(device_id, str) or not device_id.startswith(prefix) or len(device_id) == len(prefix):
            raise ValueError(f"{where} {device_id!r}: device ids of plugin `{self.id}` must start with `{prefix}`")

    def _check_known(self, device_id: Any) -> None:
        self._check_own(device_id, "device")
        with self._registry_lock:
            known = device_id in self._devices
        if not known:
            raise ValueError(f"device `{device_id}` was not announced: call announce() first")

    @staticmethod
    def _check_discovers(discovers: Any) -> Dict[str, List[str]]:
        if not isinstance(discovers, Mapping):
            raise ValueError('`discovers` must be like {"mdns": ["_http._tcp"], "ble": [...], "mqtt": [...]}')
        out: Dict[str, List[str]] = {}
        for kind in ("mdns", "ble", "mqtt"):
            items = discovers.get(kind) or []
            if isinstance(items, str) or not all(isinstance(i, str) and i for i in items):
                raise ValueError(f"`discovers.{kind}` must be a list of strings")
            if items:
                out[kind] = list(items)
        unknown = set(discovers) - {"mdns", "ble", "mqtt"}
        if unknown:
            raise ValueError(f"`discovers` has unknown kinds: {', '.join(sorted(map(str, unknown)))}")
        return out


def _exit_status(e: SystemExit) -> int:
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    _stderr(str(code))
    return 1


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _json_kind(v: Any) -> str:
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "boolean"
    if v is None:
        return "null"
    return "number"


def main(plugin_class: Callable[[], Plugin]) -> None:
    """Make the plugin and run it: ``hp.main(MyPlugin)``. A failing constructor exits with 1."""
    try:
        plugin = plugin_class()
    except Exception:
        _stderr("the plugin could not be made:")
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    plugin.run()


# Nothing but protocol on stdout, from the moment a plugin imports this module.
_claim_stdout()
