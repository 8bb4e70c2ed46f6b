//! The simulation: each device's state, how commands change it, and how it drifts every tick.
//!
//! Everything here is synchronous and produces the [`AdapterEvent`]s to send; the run loop in
//! `lib.rs` owns the timers and the channels. One tick stands for [`SIM_SECS_PER_TICK`] simulated
//! seconds whatever the configured interval, so a fast interval speeds the whole home up.

use std::collections::BTreeMap;
use std::time::Duration;

use hearth_sdk::{
    AdapterEvent, AdapterStatus, Availability, Capability, Color, Command, Context, DeviceDescriptor, Refresh,
    Timestamp, Value, check_value,
};
use tokio::time::Instant;

use crate::catalog;
use crate::rng::Rng;

/// Simulated seconds one tick stands for (energy counters, the kettle's timer).
pub(crate) const SIM_SECS_PER_TICK: f64 = 10.0;
/// Ticks the kettle stays on before it switches itself off: 3 simulated minutes.
pub(crate) const KETTLE_TICKS: u32 = 18;
/// How far the blind moves per tick, in %.
pub(crate) const BLIND_STEP: f64 = 10.0;
/// The temperature an unheated room settles at, °C.
const ROOM_BASE_TEMPERATURE: f64 = 19.0;

type Values = BTreeMap<String, Value>;

/// `v` rounded to `dp` decimals (dividing by a power of ten gives the closest double).
fn round_dp(v: f64, dp: i32) -> f64 {
    let f = 10f64.powi(dp);
    (v * f).round() / f
}

fn put(values: &mut Values, key: &str, value: impl Into<Value>) {
    values.insert(key.to_owned(), value.into());
}

/// A light: on/off, brightness, white color temperature and color (each model reports the ones it has).
#[derive(Debug, Clone)]
pub(crate) struct Light {
    on: bool,
    brightness: f64,
    color_temperature: f64,
    color: Color,
}

impl Light {
    pub(crate) fn new(on: bool, brightness: f64, color_temperature: f64, color: Color) -> Light {
        Light { on, brightness, color_temperature, color }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "state", self.on);
        put(&mut v, "brightness", self.brightness);
        put(&mut v, "color_temperature", self.color_temperature);
        put(&mut v, "color", self.color);
        v
    }

    /// Applies a command's `set`; returns the brightness ramp `(from, to)` when a transition asks for one.
    ///
    /// Brightness above 0 turns an off light on unless `state: false` is given too; turning a
    /// light on whose brightness is 0 brings it to 100.
    fn apply(&mut self, set: &Values, transition: Option<f64>, out: &mut Values) -> Option<(f64, f64)> {
        if let Some(Value::Color(c)) = set.get("color") {
            self.color = *c;
            put(out, "color", self.color);
        }
        if let Some(ct) = set.get("color_temperature").and_then(Value::as_f64) {
            self.color_temperature = ct.round().clamp(2200.0, 6500.0);
            put(out, "color_temperature", self.color_temperature);
        }
        let was_on = self.on;
        let state = set.get("state").and_then(Value::as_bool);
        let brightness = set.get("brightness").and_then(Value::as_f64).map(|b| b.round().clamp(0.0, 100.0));
        self.on = state.unwrap_or(was_on || brightness.is_some_and(|b| b > 0.0));
        if state.is_some() || self.on != was_on {
            put(out, "state", self.on);
        }
        let target = match brightness {
            Some(b) => Some(b),
            None if self.on && !was_on && self.brightness <= 0.0 => Some(100.0),
            None => None,
        };
        let transition = transition.filter(|t| *t > 0.0);
        // Ramping from black when the light was off.
        let from = if was_on { self.brightness } else { 0.0 };
        match (target, transition) {
            (Some(to), Some(_)) if self.on && to != from => Some((from, to)),
            (Some(to), _) => {
                self.brightness = to;
                put(out, "brightness", to);
                None
            }
            (None, Some(_)) if self.on && !was_on => Some((0.0, self.brightness)),
            (None, _) => None,
        }
    }
}

/// What hangs on a plug, which fixes how much power it draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// A television: about 85 W on, 0.3 W standby.
    Tv,
    /// A kettle: about 2 kW, switches itself off after [`KETTLE_TICKS`].
    Kettle,
}

/// A metering plug.
#[derive(Debug, Clone)]
pub(crate) struct Plug {
    load: Load,
    on: bool,
    power: f64,
    energy: f64,
    voltage: f64,
    /// Ticks left before the kettle switches itself off.
    auto_off: Option<u32>,
}

impl Plug {
    pub(crate) fn new(load: Load, on: bool, energy: f64) -> Plug {
        let mut plug = Plug { load, on, power: 0.0, energy, voltage: 230.0, auto_off: None };
        plug.power = plug.draw(&mut Rng::new(0));
        plug
    }

    fn draw(&self, rng: &mut Rng) -> f64 {
        match (self.load, self.on) {
            (Load::Tv, true) => 85.0 + rng.noise(3.0),
            (Load::Tv, false) => 0.3,
            (Load::Kettle, true) => 2000.0 + rng.noise(25.0),
            (Load::Kettle, false) => 0.0,
        }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        let power = round_dp(self.power, 1);
        let voltage = round_dp(self.voltage, 1);
        put(&mut v, "state", self.on);
        put(&mut v, "power", power);
        put(&mut v, "energy", round_dp(self.energy, 3));
        put(&mut v, "voltage", voltage);
        put(&mut v, "current", if voltage > 0.0 { round_dp(power / voltage, 2) } else { 0.0 });
        v
    }

    fn switch(&mut self, on: bool, rng: &mut Rng) {
        self.on = on;
        self.power = self.draw(rng);
        self.auto_off = (on && self.load == Load::Kettle).then_some(KETTLE_TICKS);
    }

    fn apply(&mut self, set: &Values, rng: &mut Rng, out: &mut Values) {
        if let Some(on) = set.get("state").and_then(Value::as_bool) {
            self.switch(on, rng);
            out.extend(self.values());
        }
    }

    fn tick(&mut self, rng: &mut Rng) -> Values {
        self.energy += self.power * SIM_SECS_PER_TICK / 3_600_000.0;
        self.voltage = (self.voltage + (230.0 - self.voltage) * 0.2 + rng.noise(0.6)).clamp(220.0, 240.0);
        match self.auto_off {
            Some(left) if left <= 1 => self.switch(false, rng),
            Some(left) => self.auto_off = Some(left - 1),
            None => {}
        }
        if self.on {
            self.power = self.draw(rng);
        }
        self.values()
    }
}

/// A climate sensor (each model reports the values it has).
#[derive(Debug, Clone)]
pub(crate) struct Climate {
    temperature: f64,
    base_temperature: f64,
    humidity: f64,
    base_humidity: f64,
    pressure: f64,
    battery: f64,
    signal: f64,
}

impl Climate {
    pub(crate) fn new(temperature: f64, humidity: f64, battery: f64) -> Climate {
        Climate {
            temperature,
            base_temperature: temperature,
            humidity,
            base_humidity: humidity,
            pressure: 1013.2,
            battery,
            signal: -62.0,
        }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "temperature", round_dp(self.temperature, 1));
        put(&mut v, "humidity", round_dp(self.humidity, 0));
        put(&mut v, "pressure", round_dp(self.pressure, 1));
        put(&mut v, "battery", round_dp(self.battery, 0));
        put(&mut v, "signal_strength", round_dp(self.signal, 0));
        v
    }

    fn tick(&mut self, rng: &mut Rng) -> Values {
        // Random walks pulled back toward where each value started.
        self.temperature += (self.base_temperature - self.temperature) * 0.05 + rng.noise(0.08);
        self.humidity =
            (self.humidity + (self.base_humidity - self.humidity) * 0.05 + rng.noise(0.6)).clamp(0.0, 100.0);
        self.pressure = (self.pressure + (1013.0 - self.pressure) * 0.02 + rng.noise(0.15)).clamp(950.0, 1050.0);
        self.signal = (self.signal + (-62.0 - self.signal) * 0.2 + rng.noise(2.0)).clamp(-100.0, -30.0);
        self.battery = (self.battery - 0.002).max(0.0);
        self.values()
    }
}

/// A door contact: closed most of the time, now and then open for a few ticks.
#[derive(Debug, Clone)]
pub(crate) struct Door {
    closed: bool,
    open_ticks: u32,
    battery: f64,
}

impl Door {
    pub(crate) fn new(battery: f64) -> Door {
        Door { closed: true, open_ticks: 0, battery }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "contact", self.closed);
        put(&mut v, "battery", round_dp(self.battery, 0));
        v
    }

    /// Reports only when the door opens or closes, as contact sensors do.
    fn tick(&mut self, rng: &mut Rng) -> Values {
        self.battery = (self.battery - 0.001).max(0.0);
        if self.closed {
            if rng.chance(0.04) {
                self.closed = false;
                self.open_ticks = 1 + rng.below(3);
                self.battery = (self.battery - 0.01).max(0.0);
                return self.values();
            }
        } else {
            self.open_ticks = self.open_ticks.saturating_sub(1);
            if self.open_ticks == 0 {
                self.closed = true;
                return self.values();
            }
        }
        Values::new()
    }
}

/// A motion sensor with a light sensor.
#[derive(Debug, Clone)]
pub(crate) struct Motion {
    occupied: bool,
    hold_ticks: u32,
    illuminance: f64,
    battery: f64,
}

impl Motion {
    pub(crate) fn new(illuminance: f64, battery: f64) -> Motion {
        Motion { occupied: false, hold_ticks: 0, illuminance, battery }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "occupancy", self.occupied);
        put(&mut v, "illuminance", round_dp(self.illuminance, 0));
        put(&mut v, "battery", round_dp(self.battery, 0));
        v
    }

    fn tick(&mut self, rng: &mut Rng) -> Values {
        if self.occupied {
            self.hold_ticks = self.hold_ticks.saturating_sub(1);
            if self.hold_ticks == 0 {
                self.occupied = false;
            }
        } else if rng.chance(0.08) {
            self.occupied = true;
            self.hold_ticks = 2 + rng.below(2);
        }
        let drift = self.illuminance * rng.noise(0.1) + (150.0 - self.illuminance) * 0.03;
        self.illuminance = (self.illuminance + drift).clamp(1.0, 2000.0);
        self.battery = (self.battery - 0.002).max(0.0);
        self.values()
    }
}

/// A wireless button: fires `single`, `double` or `hold` now and then.
#[derive(Debug, Clone)]
pub(crate) struct Button {
    battery: f64,
}

impl Button {
    pub(crate) fn new(battery: f64) -> Button {
        Button { battery }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "battery", round_dp(self.battery, 0));
        v
    }

    fn tick(&mut self, rng: &mut Rng) -> Option<&'static str> {
        if !rng.chance(0.08) {
            return None;
        }
        self.battery = (self.battery - 0.01).max(0.0);
        let r = rng.unit();
        Some(if r < 0.6 {
            "single"
        } else if r < 0.85 {
            "double"
        } else {
            "hold"
        })
    }
}

/// A room thermostat driving a heater.
#[derive(Debug, Clone)]
pub(crate) struct Thermostat {
    temperature: f64,
    setpoint: f64,
    mode: &'static str,
    heating: bool,
}

impl Thermostat {
    pub(crate) fn new(temperature: f64, setpoint: f64) -> Thermostat {
        let mut t = Thermostat { temperature, setpoint, mode: "heat", heating: false };
        t.decide();
        t
    }

    /// Heats while the mode allows it and the room is below the setpoint.
    fn decide(&mut self) {
        self.heating = self.mode != "off" && self.setpoint > self.temperature + 0.05;
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "temperature", round_dp(self.temperature, 1));
        put(&mut v, "setpoint", self.setpoint);
        put(&mut v, "hvac_mode", self.mode);
        put(&mut v, "hvac_action", if self.heating { "heat" } else { "idle" });
        v
    }

    fn apply(&mut self, set: &Values, out: &mut Values) {
        if let Some(sp) = set.get("setpoint").and_then(Value::as_f64) {
            self.setpoint = ((sp * 2.0).round() / 2.0).clamp(5.0, 30.0);
        }
        match set.get("hvac_mode").and_then(Value::as_str) {
            Some("off") => self.mode = "off",
            Some("heat") => self.mode = "heat",
            Some("auto") => self.mode = "auto",
            Some(other) => tracing::warn!(mode = other, "demo thermostat: ignoring an unknown hvac_mode"),
            None => {}
        }
        if set.contains_key("setpoint") || set.contains_key("hvac_mode") {
            self.decide();
            out.extend(self.values());
        }
    }

    fn tick(&mut self, rng: &mut Rng) -> Values {
        if self.heating {
            self.temperature += 0.1 + rng.noise(0.03);
        } else {
            self.temperature += (ROOM_BASE_TEMPERATURE - self.temperature) * 0.02 + rng.noise(0.02);
        }
        self.decide();
        let mut v = Values::new();
        let all = self.values();
        for key in ["temperature", "hvac_action"] {
            if let Some(value) = all.get(key) {
                v.insert(key.to_owned(), value.clone());
            }
        }
        v
    }
}

/// A roller blind moving [`BLIND_STEP`] % per tick toward its target.
#[derive(Debug, Clone)]
pub(crate) struct Blind {
    position: f64,
    target: f64,
    /// The command that set it moving, for the reports of its motion.
    cause: Option<Context>,
}

impl Blind {
    pub(crate) fn new(position: f64) -> Blind {
        Blind { position, target: position, cause: None }
    }

    fn motion(&self) -> &'static str {
        if self.target > self.position {
            "open"
        } else if self.target < self.position {
            "close"
        } else {
            "stop"
        }
    }

    fn values(&self) -> Values {
        let mut v = Values::new();
        put(&mut v, "cover_position", self.position);
        put(&mut v, "cover_state", self.motion());
        v
    }

    /// `cover_position` sets the target; otherwise `cover_state` open/close targets 100/0, stop halts.
    fn apply(&mut self, set: &Values, context: &Context, out: &mut Values) {
        if let Some(p) = set.get("cover_position").and_then(Value::as_f64) {
            self.target = p.round().clamp(0.0, 100.0);
        } else {
            match set.get("cover_state").and_then(Value::as_str) {
                Some("open") => self.target = 100.0,
                Some("close") => self.target = 0.0,
                Some("stop") => self.target = self.position,
                Some(other) => tracing::warn!(state = other, "demo blind: ignoring an unknown cover_state"),
                None => return,
            }
        }
        self.cause = (self.target != self.position).then(|| context.clone());
        out.extend(self.values());
    }

    fn tick(&mut self) -> (Values, Option<Context>) {
        if self.target == self.position {
            return (Values::new(), None);
        }
        let delta = (self.target - self.position).clamp(-BLIND_STEP, BLIND_STEP);
        self.position += delta;
        let cause = if self.target == self.position { self.cause.take() } else { self.cause.clone() };
        (self.values(), cause)
    }
}

/// A simulated device's behaviour and state.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Light(Light),
    Plug(Plug),
    Climate(Climate),
    Door(Door),
    Motion(Motion),
    Button(Button),
    Thermostat(Thermostat),
    Blind(Blind),
}

/// What one device does in one tick.
#[derive(Debug, Default)]
struct TickOut {
    values: Values,
    cause: Option<Context>,
    event: Option<&'static str>,
}

impl Kind {
    /// Every value the simulation knows; reports keep only the device's declared features.
    fn values(&self) -> Values {
        match self {
            Kind::Light(l) => l.values(),
            Kind::Plug(p) => p.values(),
            Kind::Climate(c) => c.values(),
            Kind::Door(d) => d.values(),
            Kind::Motion(m) => m.values(),
            Kind::Button(b) => b.values(),
            Kind::Thermostat(t) => t.values(),
            Kind::Blind(b) => b.values(),
        }
    }

    fn tick(&mut self, rng: &mut Rng) -> TickOut {
        let values = |values| TickOut { values, ..TickOut::default() };
        match self {
            Kind::Light(_) => TickOut::default(),
            Kind::Plug(p) => values(p.tick(rng)),
            Kind::Climate(c) => values(c.tick(rng)),
            Kind::Door(d) => values(d.tick(rng)),
            Kind::Motion(m) => values(m.tick(rng)),
            Kind::Button(b) => match b.tick(rng) {
                Some(event) => TickOut { values: b.values(), cause: None, event: Some(event) },
                None => TickOut::default(),
            },
            Kind::Thermostat(t) => values(t.tick(rng)),
            Kind::Blind(b) => {
                let (values, cause) = b.tick();
                TickOut { values, cause, event: None }
            }
        }
    }
}

#[derive(Debug)]
struct SimDevice {
    descriptor: DeviceDescriptor,
    kind: Kind,
}

/// A light's brightness moving from `from` to `to` over `duration`, reported in `steps` reports.
#[derive(Debug)]
struct Ramp {
    device: usize,
    from: f64,
    to: f64,
    start: Instant,
    duration: Duration,
    steps: u32,
    done: u32,
    cause: Context,
}

impl Ramp {
    /// Reports per second of transition, and the bounds on their number.
    const STEPS_PER_SEC: f64 = 4.0;
    const MIN_STEPS: u32 = 3;
    const MAX_STEPS: u32 = 10;

    fn new(device: usize, from: f64, to: f64, secs: f64, start: Instant, cause: Context) -> Ramp {
        let steps = ((secs * Self::STEPS_PER_SEC).ceil() as u32).clamp(Self::MIN_STEPS, Self::MAX_STEPS);
        Ramp { device, from, to, start, duration: Duration::from_secs_f64(secs), steps, done: 0, cause }
    }

    fn step_at(&self, k: u32) -> Instant {
        if k >= self.steps {
            self.start + self.duration
        } else {
            self.start + self.duration.mul_f64(f64::from(k) / f64::from(self.steps))
        }
    }

    fn next_at(&self) -> Instant {
        self.step_at(self.done + 1)
    }

    /// The brightness after the steps done: rounded in between, exact at the end.
    fn value(&self) -> f64 {
        if self.done >= self.steps {
            self.to
        } else {
            (self.from + (self.to - self.from) * f64::from(self.done) / f64::from(self.steps)).round()
        }
    }
}

/// A state report of `values`, keeping only observed features the device declares, with values
/// of their type (any other is a bug of the simulation: logged and left out). `None` when empty.
fn report(descriptor: &DeviceDescriptor, values: Values, cause: Option<Context>) -> Option<AdapterEvent> {
    let mut kept = Values::new();
    for (key, value) in values {
        let Some(feature) = descriptor.feature(&key) else { continue };
        // Actions are events, never state.
        if !feature.access.observe || feature.capability == Capability::Action {
            continue;
        }
        match check_value(feature, &value) {
            Ok(()) => {
                kept.insert(key, value);
            }
            Err(e) => tracing::warn!(device = %descriptor.id, "demo: dropping a simulated value: {e}"),
        }
    }
    (!kept.is_empty()).then(|| AdapterEvent::State { device: descriptor.id.clone(), values: kept, cause })
}

/// The whole simulated home.
#[derive(Debug)]
pub(crate) struct Home {
    devices: Vec<SimDevice>,
    rng: Rng,
    ramps: Vec<Ramp>,
}

impl Home {
    pub(crate) fn new(rng: Rng) -> Home {
        let devices = catalog::home().into_iter().map(|(descriptor, kind)| SimDevice { descriptor, kind }).collect();
        Home { devices, rng, ramps: Vec::new() }
    }

    /// The start-up sequence: every device, then each one's state, then each online, then running.
    pub(crate) fn announce(&self) -> Vec<AdapterEvent> {
        let mut events: Vec<AdapterEvent> =
            self.devices.iter().map(|d| AdapterEvent::Device { device: d.descriptor.clone() }).collect();
        events.extend(self.devices.iter().filter_map(|d| report(&d.descriptor, d.kind.values(), None)));
        let now = Timestamp::now();
        events.extend(self.devices.iter().map(|d| AdapterEvent::Availability {
            device: d.descriptor.id.clone(),
            availability: Availability::online(now),
        }));
        events.push(AdapterEvent::Status { status: AdapterStatus::running() });
        events
    }

    /// Adds a device (one the user accepted from the inbox): its announcement, state and
    /// availability. Nothing when it is already here.
    pub(crate) fn add(&mut self, descriptor: DeviceDescriptor, kind: Kind) -> Vec<AdapterEvent> {
        if self.devices.iter().any(|d| d.descriptor.id == descriptor.id) {
            return Vec::new();
        }
        let mut events = vec![AdapterEvent::Device { device: descriptor.clone() }];
        events.extend(report(&descriptor, kind.values(), None));
        events.push(AdapterEvent::Availability {
            device: descriptor.id.clone(),
            availability: Availability::online(Timestamp::now()),
        });
        self.devices.push(SimDevice { descriptor, kind });
        events
    }

    /// Takes a device out of the home; whether it was here.
    pub(crate) fn remove(&mut self, id: &hearth_sdk::DeviceId) -> bool {
        let Some(index) = self.devices.iter().position(|d| d.descriptor.id == *id) else { return false };
        self.devices.remove(index);
        self.ramps.retain(|r| r.device != index);
        for r in &mut self.ramps {
            if r.device > index {
                r.device -= 1;
            }
        }
        true
    }

    /// Whether a device is here.
    pub(crate) fn has(&self, id: &hearth_sdk::DeviceId) -> bool {
        self.devices.iter().any(|d| d.descriptor.id == *id)
    }

    /// Makes something happen in the home, as the `simulate` action asks:
    /// `{"device": "hall_button", "event": "single"}` presses a button;
    /// `{"device": "hall_motion", "values": {"occupancy": true}}` reports sensor values (until the
    /// simulation's next tick changes them).
    pub(crate) fn simulate(&mut self, params: &serde_json::Value) -> Result<Vec<AdapterEvent>, String> {
        let native = params.get("device").and_then(|d| d.as_str()).ok_or("give `device`, a demo device's id")?;
        let native = native.strip_prefix("demo:").unwrap_or(native);
        let Some(device) = self.devices.iter().find(|d| d.descriptor.id.native() == native) else {
            let ids: Vec<&str> = self.devices.iter().map(|d| d.descriptor.id.native()).collect();
            return Err(format!("no demo device `{native}`; they are: {}", ids.join(", ")));
        };
        let d = &device.descriptor;
        match (params.get("event"), params.get("values")) {
            (Some(event), None) => {
                let event = event.as_str().ok_or("`event` is text, like \"single\"")?;
                let feature = d
                    .features
                    .iter()
                    .find(|f| f.capability == Capability::Action)
                    .ok_or_else(|| format!("`{native}` has no events"))?;
                check_value(feature, &hearth_sdk::Value::Text(event.to_owned())).map_err(|e| e.to_string())?;
                Ok(vec![AdapterEvent::Event {
                    device: d.id.clone(),
                    feature: feature.key.clone(),
                    event: event.to_owned(),
                    data: None,
                }])
            }
            (None, Some(values)) => {
                let values: Values = serde_json::from_value(values.clone())
                    .map_err(|e| format!("`values` is not an object of values: {e}"))?;
                for (key, value) in &values {
                    let feature = d.feature(key).ok_or_else(|| format!("`{native}` has no feature `{key}`"))?;
                    check_value(feature, value).map_err(|e| e.to_string())?;
                }
                Ok(report(d, values, None).into_iter().collect())
            }
            _ => Err("give either `event` or `values`".into()),
        }
    }

    /// Applies a (hub-validated) command; the reports carry the command's context as their cause.
    pub(crate) fn command(&mut self, command: &Command, now: Instant) -> Vec<AdapterEvent> {
        let Some(index) = self.devices.iter().position(|d| d.descriptor.id == command.device) else {
            tracing::warn!(device = %command.device, "demo: command for an unknown device");
            return Vec::new();
        };
        let request = &command.request;
        let Some(device) = self.devices.get_mut(index) else { return Vec::new() };
        let mut out = Values::new();
        let mut ramp = None;
        match &mut device.kind {
            Kind::Light(light) => {
                if request.set.contains_key("state") || request.set.contains_key("brightness") {
                    // A new command supersedes a transition in progress.
                    self.ramps.retain(|r| r.device != index);
                }
                ramp = light.apply(&request.set, request.transition, &mut out);
            }
            Kind::Plug(plug) => plug.apply(&request.set, &mut self.rng, &mut out),
            Kind::Thermostat(thermostat) => thermostat.apply(&request.set, &mut out),
            Kind::Blind(blind) => blind.apply(&request.set, &command.context, &mut out),
            Kind::Climate(_) | Kind::Door(_) | Kind::Motion(_) | Kind::Button(_) => {}
        }
        match &request.refresh {
            None | Some(Refresh::All(false)) => {}
            Some(Refresh::All(true)) => out.extend(device.kind.values()),
            Some(Refresh::Features(keys)) => {
                out.extend(device.kind.values().into_iter().filter(|(k, _)| keys.contains(k)));
            }
        }
        let mut events: Vec<AdapterEvent> =
            report(&device.descriptor, out, Some(command.context.clone())).into_iter().collect();
        if let (Some((from, to)), Some(secs)) = (ramp, request.transition) {
            let ramp = Ramp::new(index, from, to, secs, now, command.context.clone());
            // A transition shorter than a step or already due is reported at once.
            events.extend(self.step_ramp(ramp, now));
        }
        events
    }

    /// One simulated tick of every device.
    pub(crate) fn tick(&mut self) -> Vec<AdapterEvent> {
        let mut events = Vec::new();
        for device in &mut self.devices {
            let out = device.kind.tick(&mut self.rng);
            if let Some(event) = out.event {
                events.push(AdapterEvent::Event {
                    device: device.descriptor.id.clone(),
                    feature: "action".to_owned(),
                    event: event.to_owned(),
                    data: None,
                });
            }
            events.extend(report(&device.descriptor, out.values, out.cause));
        }
        events
    }

    /// When the next transition step is due.
    pub(crate) fn next_ramp_at(&self) -> Option<Instant> {
        self.ramps.iter().map(Ramp::next_at).min()
    }

    /// Reports every transition step due by `now`.
    pub(crate) fn advance_ramps(&mut self, now: Instant) -> Vec<AdapterEvent> {
        let ramps = std::mem::take(&mut self.ramps);
        ramps.into_iter().flat_map(|r| self.step_ramp(r, now)).collect()
    }

    /// Moves one ramp to the last step due by `now`, keeps it if unfinished, and reports its value.
    fn step_ramp(&mut self, mut ramp: Ramp, now: Instant) -> Option<AdapterEvent> {
        let before = ramp.done;
        while ramp.done < ramp.steps && now >= ramp.next_at() {
            ramp.done += 1;
        }
        let event = if ramp.done == before {
            None
        } else {
            let value = ramp.value();
            match self.devices.get_mut(ramp.device) {
                Some(SimDevice { descriptor, kind: Kind::Light(light) }) => {
                    light.brightness = value;
                    let mut values = Values::new();
                    put(&mut values, "brightness", value);
                    report(descriptor, values, Some(ramp.cause.clone()))
                }
                _ => None,
            }
        };
        if ramp.done < ramp.steps {
            self.ramps.push(ramp);
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::{CommandRequest, DeviceId, Origin};

    fn set(pairs: &[(&str, Value)]) -> Values {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn light(on: bool, brightness: f64) -> Light {
        Light::new(on, brightness, 2700.0, Color { hue: 0.0, saturation: 0.0 })
    }

    #[test]
    fn brightness_turns_an_off_light_on_unless_state_says_off() {
        let mut l = light(false, 60.0);
        let mut out = Values::new();
        assert_eq!(l.apply(&set(&[("brightness", 30.0.into())]), None, &mut out), None);
        assert_eq!(out, set(&[("state", true.into()), ("brightness", 30.0.into())]));

        let mut l = light(false, 60.0);
        let mut out = Values::new();
        l.apply(&set(&[("brightness", 30.0.into()), ("state", false.into())]), None, &mut out);
        assert_eq!(out, set(&[("state", false.into()), ("brightness", 30.0.into())]));
        assert!(!l.on);

        // Brightness 0 does not turn an off light on; turning on at 0 goes to 100.
        let mut l = light(false, 0.0);
        let mut out = Values::new();
        l.apply(&set(&[("state", true.into())]), None, &mut out);
        assert_eq!(out, set(&[("state", true.into()), ("brightness", 100.0.into())]));
    }

    #[test]
    fn a_transition_asks_for_a_ramp_from_the_current_brightness() {
        let mut l = light(true, 80.0);
        let mut out = Values::new();
        assert_eq!(l.apply(&set(&[("brightness", 20.0.into())]), Some(2.0), &mut out), Some((80.0, 20.0)));
        assert!(out.is_empty(), "{out:?}");
        // Off, turned on with a transition: from black to its brightness.
        let mut l = light(false, 70.0);
        let mut out = Values::new();
        assert_eq!(l.apply(&set(&[("state", true.into())]), Some(1.0), &mut out), Some((0.0, 70.0)));
        assert_eq!(out, set(&[("state", true.into())]));
        // A zero transition is no transition.
        let mut l = light(true, 80.0);
        let mut out = Values::new();
        assert_eq!(l.apply(&set(&[("brightness", 20.0.into())]), Some(0.0), &mut out), None);
        assert_eq!(out, set(&[("brightness", 20.0.into())]));
    }

    #[test]
    fn ramp_steps_are_evenly_spaced_and_end_exactly() {
        let start = Instant::now();
        let cause = Context::new("c", Origin::System);
        let mut r = Ramp::new(0, 0.0, 40.0, 1.0, start, cause);
        assert_eq!(r.steps, 4);
        let mut values = Vec::new();
        while r.done < r.steps {
            let at = r.next_at();
            assert!(at > start && at <= start + Duration::from_secs(1));
            r.done += 1;
            values.push(r.value());
        }
        assert_eq!(values, vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(Ramp::new(0, 0.0, 1.0, 0.01, start, Context::new("c", Origin::System)).steps, Ramp::MIN_STEPS);
        assert_eq!(Ramp::new(0, 0.0, 1.0, 600.0, start, Context::new("c", Origin::System)).steps, Ramp::MAX_STEPS);
    }

    #[test]
    fn reports_keep_only_declared_observed_features_of_the_right_type() {
        let home = Home::new(Rng::new(1));
        let kettle = home.devices.iter().find(|d| d.descriptor.id.native() == "plug_kettle").expect("kettle");
        let Some(AdapterEvent::State { values, .. }) = report(&kettle.descriptor, kettle.kind.values(), None) else {
            panic!("the kettle reports its state");
        };
        let keys: Vec<&str> = values.keys().map(String::as_str).collect();
        assert_eq!(keys, ["energy", "power", "state"], "no voltage or current on the kettle's model");
        let bad = set(&[("power", "lots".into()), ("nonsense", 1.0.into())]);
        assert_eq!(report(&kettle.descriptor, bad, None), None);
    }

    #[test]
    fn thermostat_heats_toward_the_setpoint_and_idles_when_off() {
        let mut rng = Rng::new(3);
        let mut t = Thermostat::new(18.0, 21.0);
        assert!(t.heating);
        for _ in 0..10 {
            t.tick(&mut rng);
        }
        assert!(t.temperature > 18.5, "{}", t.temperature);
        let mut out = Values::new();
        t.apply(&set(&[("hvac_mode", "off".into())]), &mut out);
        assert_eq!(out.get("hvac_action"), Some(&Value::from("idle")));
        let before = t.temperature;
        for _ in 0..10 {
            t.tick(&mut rng);
        }
        assert!(t.temperature < before, "cools toward {ROOM_BASE_TEMPERATURE}: {before} -> {}", t.temperature);
    }

    #[test]
    fn commands_report_with_the_command_as_cause() {
        let mut home = Home::new(Rng::new(1));
        let context = Context::new("ctx", Origin::User { name: "alice".into() });
        let command = Command {
            device: DeviceId::new("demo", "bedroom_blind"),
            request: CommandRequest { set: set(&[("cover_state", "close".into())]), ..Default::default() },
            context: context.clone(),
        };
        let events = home.command(&command, Instant::now());
        assert_eq!(
            events,
            vec![AdapterEvent::State {
                device: command.device.clone(),
                values: set(&[("cover_position", 100.0.into()), ("cover_state", "close".into())]),
                cause: Some(context.clone()),
            }]
        );
        let unknown = Command { device: DeviceId::new("demo", "nope"), ..command };
        assert!(home.command(&unknown, Instant::now()).is_empty());
    }
}
