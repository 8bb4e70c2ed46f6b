#!/usr/bin/env python3
"""A virtual weather station: an example Hearth plugin (protocol 1).

One device, `weather:station-1`, with temperature, humidity, air pressure, wind speed and
illuminance. The readings drift plausibly through the day and are reported every
`interval_secs` seconds (config, default 30); `station_name` (default "Garden") is the name the
device gets. A command with `refresh` is answered at once with the current readings. The action
`identify` "blinks" the station's LED and answers `{"blinked": true}`.

Run by the hub from this directory (see plugin.toml), or by hand:

    printf '%s\\n' '{"type":"hello","protocol":[1],"hub":"0.1.0","schema":1,"config":{}}' \\
        '{"type":"secrets","secrets":{}}' '{"type":"inbox","decisions":{}}' '{"type":"ready"}' \\
        | python3 weather.py
"""

import math
import os
import random
import sys
import time

try:
    import hearth_plugin as hp
except ImportError:  # run in-tree: the module is two directories up
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    import hearth_plugin as hp

VERSION = "1.0.0"
STATION = "weather:station-1"
DEFAULT_NAME = "Garden"
DEFAULT_INTERVAL = 30


class Sky:
    """Readings that wander like the weather: a daily cycle, slow fronts, gusts and clouds."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.offset = rng.uniform(-2.0, 2.0)  # a warmer or cooler day than usual, in °C
        self.pressure = rng.uniform(1005.0, 1021.0)
        self.wind = rng.uniform(1.0, 5.0)
        self.clouds = rng.uniform(0.2, 0.8)  # 0 clear, 1 overcast
        self.last = time.time()
        self.values = {}
        self.step(0.0)

    def step(self, seconds: float) -> None:
        rng = self.rng
        minutes = max(seconds, 0.0) / 60.0
        wobble = math.sqrt(minutes) if minutes > 0 else 0.0
        hour = _local_hour()

        # Slow things: mean-reverting random walks, scaled so the pace does not depend on the interval.
        self.offset += (0.0 - self.offset) * min(1.0, minutes / 720.0) + rng.gauss(0.0, 0.05) * wobble
        self.pressure += (1013.25 - self.pressure) * min(1.0, minutes / 2880.0) + rng.gauss(0.0, 0.08) * wobble
        self.wind += (3.5 - self.wind) * min(1.0, minutes / 30.0) + rng.gauss(0.0, 0.6) * wobble
        self.clouds += (0.5 - self.clouds) * min(1.0, minutes / 240.0) + rng.gauss(0.0, 0.04) * wobble
        self.offset = _clamp(self.offset, -8.0, 8.0)
        self.pressure = _clamp(self.pressure, 960.0, 1050.0)
        self.wind = _clamp(self.wind, 0.0, 25.0)
        self.clouds = _clamp(self.clouds, 0.0, 1.0)

        # The day: warmest around 15:00, the sun up from 6:00 to 18:00.
        temperature = 12.0 + 6.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0) + self.offset - 2.0 * self.clouds
        humidity = 70.0 - 2.2 * (temperature - 12.0) + 15.0 * self.clouds
        sun = max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))
        illuminance = 0.5 + 60000.0 * sun**1.5 * (1.0 - 0.8 * self.clouds)

        self.values = {
            "temperature": round(temperature, 1),
            "humidity": round(_clamp(humidity, 5.0, 100.0), 1),
            "pressure": round(self.pressure, 1),
            "wind_speed": round(self.wind, 1),
            "illuminance": float(round(illuminance)),
        }

    def read(self) -> dict:
        now = time.time()
        self.step(now - self.last)
        self.last = now
        return dict(self.values)


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


def _local_hour() -> float:
    t = time.localtime()
    return t.tm_hour + t.tm_min / 60.0 + t.tm_sec / 3600.0


def station(name: str) -> dict:
    return hp.device(
        STATION,
        name,
        [
            hp.sensor("temperature", min=-40.0, max=60.0, step=0.1, get=True),
            hp.sensor("humidity", min=0.0, max=100.0, step=0.1, get=True),
            hp.sensor("pressure", min=870.0, max=1085.0, step=0.1, get=True),
            # No capability means wind: `other`, in its own unit.
            hp.sensor("wind_speed", "other", unit="m/s", min=0.0, max=60.0, step=0.1, get=True, label="Wind speed"),
            hp.sensor("illuminance", min=0.0, max=150000.0, step=1.0, get=True),
        ],
        manufacturer="Hearth examples",
        model="Virtual weather station",
        firmware=VERSION,
        power_source="mains",
    )


def read_config(config: dict) -> tuple:
    """The name and interval from the config, with the problems found (each naming its key)."""
    problems = []
    name = config.get("station_name", DEFAULT_NAME)
    if not isinstance(name, str) or not name.strip():
        problems.append(f"`station_name` must be a non-empty string, not {name!r}; using {DEFAULT_NAME!r}")
        name = DEFAULT_NAME
    interval = config.get("interval_secs", DEFAULT_INTERVAL)
    if isinstance(interval, float) and interval.is_integer():
        interval = int(interval)  # numbers may come as they were entered
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        problems.append(f"`interval_secs` must be a whole number of at least 1, not {interval!r}; "
                        f"using {DEFAULT_INTERVAL}")
        interval = DEFAULT_INTERVAL
    return name.strip(), interval, problems


class WeatherStation(hp.Plugin):
    id = "weather"
    name = "Virtual weather station"
    version = VERSION
    actions = ["identify"]

    def start(self, config):
        self.sky = Sky(random.Random())
        self.station_name, interval, problems = read_config(config)
        self.announce(station(self.station_name))
        self.online(STATION)
        self.state(STATION, self.sky.read())
        self.report_status(problems)
        self.ticker = self.every(interval, self.tick)
        self.info("Virtual weather station started.", station=self.station_name, interval_secs=interval)

    def tick(self):
        self.state(STATION, self.sky.read())

    def command(self, device_id, set_values, refresh, transition, context):
        if set_values:
            self.warn("The station has nothing to set.", device=device_id, features=sorted(set_values))
        if refresh:
            current = self.sky.values
            self.state(device_id, {k: current[k] for k in refresh if k in current}, cause=context)

    def config_changed(self, config):
        name, interval, problems = read_config(config)
        if name != self.station_name:
            self.station_name = name
            self.announce(station(name))
        if interval != self.ticker.interval:
            self.ticker.interval = interval
        self.report_status(problems)
        self.info("Configuration applied.", station=name, interval_secs=interval)

    def report_status(self, problems):
        if problems:
            self.status("degraded", "the configuration has a problem: " + "; ".join(problems), "bad_config")
        else:
            self.status("running")

    def action(self, name, params, context):
        # `identify` is the only action in `actions`; the module refuses any other.
        self.info("Blinking the station's LED.", device=STATION)
        return {"blinked": True}

    def stop(self):
        self.info("Virtual weather station stopped.")


if __name__ == "__main__":
    hp.main(WeatherStation)
