//! An ESPHome device, simulated over its native API: a TCP server speaking the real frames,
//! plaintext or Noise-encrypted (`Noise_NNpsk0_25519_ChaChaPoly_SHA256`, the responder side
//! built with `snow` as ESPHome's `api_frame_helper_noise.cpp` does it), with a configurable
//! list of entities.
//!
//! ```no_run
//! # use hearth_tests::sim::esphome::{EsphomeSim, EsphomeOptions, RELAY, TEMPERATURE, THERMOSTAT};
//! # use std::time::Duration;
//! let sim = EsphomeSim::start(EsphomeOptions::default()); // plaintext, every kind of entity
//! let noise = EsphomeSim::start(EsphomeOptions::encrypted()); // Noise, key `EsphomeOptions::KEY`
//! // sim.announce(&browser): `_esphomelib._tcp` with the TXT records a real device sends.
//! // sim.target(): where a session connects, as the Wi-Fi runner would hand it over.
//! sim.wait_for_command("switch relay state=true", Duration::from_secs(5));
//! sim.set_sensor(TEMPERATURE, 22.5); // pushed to every subscribed client
//! sim.set_switch_physically(RELAY, false);
//! sim.set_climate(THERMOSTAT, 22.6, "idle"); // the room warmed up: it stopped heating
//! sim.reboot(); // closes every connection, keeps listening
//! sim.freeze(true); // reads, never answers (new connections too)
//! ```
//!
//! What it does, as a device with `api:` does:
//! - Plaintext: a client that speaks Noise gets `00 "Bad indicator byte"` and is closed. Noise:
//!   it reads the client's hello frame (the prologue is `NoiseAPIInit`, the hello's length and
//!   body), answers with its hello (`01`, node name, NUL, MAC in lowercase hex, NUL), reads the
//!   handshake (`00` + Noise message), answers `00` + its Noise message, or `01 "Handshake MAC
//!   failure"` for another key and closes; a plaintext client gets `01 "Bad indicator byte"`.
//! - A client must say hello first (anything else closes the connection); `ConnectRequest` is
//!   answered (no password; or not, as firmware since 2026.1 does, with
//!   [`EsphomeOptions::connect_response`] false), `DeviceInfoRequest`, `ListEntitiesRequest` (every entity, then
//!   done), `SubscribeStatesRequest` (every state now, each change later), `PingRequest`,
//!   `DisconnectRequest` (answered, then closed).
//! - Commands (`SwitchCommandRequest` ...) change the entity as the device would, are recorded
//!   as a line ([`EsphomeSim::commands`]: `switch relay state=true`,
//!   `light ceiling_light state=true brightness=0.4`, `cover blind position=0.3`,
//!   `cover blind stop`, `button restart press`, `number target_temperature state=21.5`,
//!   `select mode state=comfort`, `fan fan state=true speed_level=2`,
//!   `climate thermostat mode=heat target_temperature=22.5`), and the new state goes to every
//!   subscribed client. A cover goes to its position at once. A climate entity takes only the
//!   fields whose `has_*` flag is set, and of those only what it supports (a mode or fan mode
//!   it does not list, a setpoint of the other kind or NaN is ignored, as ESPHome's
//!   `ClimateCall` does; the line shows what was sent); its action then follows its mode, the
//!   room and the setpoint (see [`thermostat_action`]).
//! - What a device asks of its clients: [`EsphomeSim::ping_clients`] (their `PingResponse`s are
//!   counted), [`EsphomeSim::request_time`] (their `GetTimeResponse`s are kept),
//!   [`EsphomeSim::disconnect_clients`] (their `DisconnectResponse`s are counted, then closed).
//! - [`EsphomeSim::send_raw`] sends any frame (a malformed payload) to every subscribed client.
//!
//! Dropping it closes the listener and every connection.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hearth_esphome::api::frame::{
    FrameError, NoiseFrameDecoder, PlaintextDecoder, decode_noise_plaintext, encode_noise_frame,
    encode_noise_plaintext, encode_plaintext,
};
use hearth_esphome::api::messages::*;
use hearth_esphome::api::noise::NOISE_PATTERN;
use hearth_esphome::api::{Message, NoiseKey, native_id};
use hearth_mdns::lan::Target;
use hearth_mdns::{Announcement, Browser};
use hearth_sdk::DeviceId;

/// The mDNS service type.
pub const SERVICE_TYPE: &str = "_esphomelib._tcp.local.";
/// The value of the `api_encryption` TXT record.
pub const NOISE: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";

/// Key of the default switch `relay` ("Relay", off).
pub const RELAY: u32 = 0x6f3a_0001;
/// Key of the default light `ceiling_light` ("Ceiling light", brightness; off at 50 %).
pub const LIGHT: u32 = 0x6f3a_0002;
/// Key of the default sensor `temperature` ("Temperature", °C, 1 decimal; 21.5).
pub const TEMPERATURE: u32 = 0x6f3a_0003;
/// Key of the default binary sensor `motion` ("Motion", device class motion; clear).
pub const MOTION: u32 = 0x6f3a_0004;
/// Key of the default cover `blind` ("Blind", position and stop; closed).
pub const BLIND: u32 = 0x6f3a_0005;
/// Key of the default button `restart` ("Restart", device class restart).
pub const RESTART: u32 = 0x6f3a_0006;
/// Key of the default number `target_temperature` ("Target temperature", 5–30 °C by 0.5; 21).
pub const TARGET: u32 = 0x6f3a_0007;
/// Key of the default select `mode` ("Mode": eco, comfort, away; eco).
pub const MODE: u32 = 0x6f3a_0008;
/// Key of the default text sensor `status` ("Status"; "ok").
pub const STATUS: u32 = 0x6f3a_0009;
/// Key of the default fan `fan` ("Fan", 3 speeds, oscillating; off).
pub const FAN: u32 = 0x6f3a_000a;
/// Key of the default climate `thermostat` ("Thermostat": modes off, cool, heat, auto; setpoint
/// 5–30 °C by 0.5; fan modes auto, low, high; off at 21 °C with the room at 20.5 °C, fan auto).
pub const THERMOSTAT: u32 = 0x6f3a_000b;

/// ESPHome's `ClimateMode` names, by wire value.
pub const CLIMATE_MODES: [&str; 7] = ["off", "heat_cool", "cool", "heat", "fan_only", "dry", "auto"];
/// ESPHome's `ClimateAction` names, by wire value (1 is not used).
pub const CLIMATE_ACTIONS: [&str; 8] = ["off", "", "cooling", "heating", "idle", "drying", "fan", "defrosting"];
/// ESPHome's `ClimateFanMode` names, by wire value.
pub const CLIMATE_FAN_MODES: [&str; 10] =
    ["on", "off", "auto", "low", "medium", "high", "middle", "focus", "diffuse", "quiet"];

/// The wire value of the name `name` in `names` (one of the tables above); panics naming `what`
/// if there is none.
pub fn wire_value(names: &[&str], name: &str, what: &str) -> u32 {
    let i = names.iter().position(|n| !n.is_empty() && *n == name);
    i.unwrap_or_else(|| panic!("ESPHome has no {what} `{name}`; it has {names:?}")) as u32
}

/// The name of the wire value `v` in `names`, or the number when it has none.
fn wire_name(names: &[&str], v: u32) -> String {
    match names.get(v as usize) {
        Some(n) if !n.is_empty() => (*n).to_owned(),
        _ => v.to_string(),
    }
}

/// What a thermostat in `mode` (a `ClimateMode`) does with the room at `current` °C: heat below
/// `heat_at`, cool above `cool_at` (both the setpoint for a single-setpoint device), else idle;
/// off when off. A `ClimateAction`.
pub fn thermostat_action(mode: u32, current: f32, (heat_at, cool_at): (f32, f32)) -> u32 {
    let action = match wire_name(&CLIMATE_MODES, mode).as_str() {
        "off" => "off",
        "heat" if current < heat_at => "heating",
        "cool" if current > cool_at => "cooling",
        "heat_cool" | "auto" if current < heat_at => "heating",
        "heat_cool" | "auto" if current > cool_at => "cooling",
        "fan_only" => "fan",
        "dry" => "drying",
        _ => "idle",
    };
    wire_value(&CLIMATE_ACTIONS, action, "climate action")
}

/// One entity: its `ListEntities*Response` and its current state message (none for a button).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// What `ListEntitiesRequest` answers for it.
    pub info: Message,
    /// Its state as `SubscribeStatesRequest` sends it.
    pub state: Option<Message>,
}

impl Entity {
    /// A switch.
    pub fn switch(key: u32, object_id: &str, name: &str, on: bool) -> Entity {
        Entity {
            info: ListEntitiesSwitchResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                device_class: "switch".into(),
                ..Default::default()
            }
            .into(),
            state: Some(SwitchStateResponse { key, state: on, ..Default::default() }.into()),
        }
    }

    /// A dimmable light (color modes on/off and brightness).
    pub fn light(key: u32, object_id: &str, name: &str, on: bool, brightness: f32) -> Entity {
        Entity {
            info: ListEntitiesLightResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                supported_color_modes: vec![2],
                legacy_supports_brightness: true,
                ..Default::default()
            }
            .into(),
            state: Some(LightStateResponse { key, state: on, brightness, color_mode: 2, ..Default::default() }.into()),
        }
    }

    /// A numeric sensor.
    pub fn sensor(
        key: u32,
        object_id: &str,
        name: &str,
        device_class: &str,
        unit: &str,
        decimals: i32,
        value: f32,
    ) -> Entity {
        Entity {
            info: ListEntitiesSensorResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                device_class: device_class.into(),
                unit_of_measurement: unit.into(),
                accuracy_decimals: decimals,
                state_class: 1,
                ..Default::default()
            }
            .into(),
            state: Some(SensorStateResponse { key, state: value, ..Default::default() }.into()),
        }
    }

    /// A binary sensor.
    pub fn binary_sensor(key: u32, object_id: &str, name: &str, device_class: &str, on: bool) -> Entity {
        Entity {
            info: ListEntitiesBinarySensorResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                device_class: device_class.into(),
                ..Default::default()
            }
            .into(),
            state: Some(BinarySensorStateResponse { key, state: on, ..Default::default() }.into()),
        }
    }

    /// A cover that goes to positions and stops, at `position` (0 closed to 1 open).
    pub fn cover(key: u32, object_id: &str, name: &str, position: f32) -> Entity {
        Entity {
            info: ListEntitiesCoverResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                supports_position: true,
                supports_stop: true,
                device_class: "blind".into(),
                ..Default::default()
            }
            .into(),
            state: Some(cover_state(key, position)),
        }
    }

    /// A button.
    pub fn button(key: u32, object_id: &str, name: &str, device_class: &str) -> Entity {
        Entity {
            info: ListEntitiesButtonResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                device_class: device_class.into(),
                entity_category: 1,
                ..Default::default()
            }
            .into(),
            state: None,
        }
    }

    /// A number within `min..=max` by `step`.
    pub fn number(
        key: u32,
        object_id: &str,
        name: &str,
        (min, max, step): (f32, f32, f32),
        unit: &str,
        value: f32,
    ) -> Entity {
        Entity {
            info: ListEntitiesNumberResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                min_value: min,
                max_value: max,
                step,
                unit_of_measurement: unit.into(),
                mode: 2,
                ..Default::default()
            }
            .into(),
            state: Some(NumberStateResponse { key, state: value, ..Default::default() }.into()),
        }
    }

    /// A select of `options`, at `value`.
    pub fn select(key: u32, object_id: &str, name: &str, options: &[&str], value: &str) -> Entity {
        Entity {
            info: ListEntitiesSelectResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                options: options.iter().map(|o| (*o).to_owned()).collect(),
                ..Default::default()
            }
            .into(),
            state: Some(SelectStateResponse { key, state: value.into(), ..Default::default() }.into()),
        }
    }

    /// A text sensor.
    pub fn text_sensor(key: u32, object_id: &str, name: &str, value: &str) -> Entity {
        Entity {
            info: ListEntitiesTextSensorResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                ..Default::default()
            }
            .into(),
            state: Some(TextSensorStateResponse { key, state: value.into(), ..Default::default() }.into()),
        }
    }

    /// A fan with `speeds` speed levels that oscillates.
    pub fn fan(key: u32, object_id: &str, name: &str, speeds: i32) -> Entity {
        Entity {
            info: ListEntitiesFanResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                supports_speed: true,
                supported_speed_count: speeds,
                supports_oscillation: true,
                ..Default::default()
            }
            .into(),
            state: Some(FanStateResponse { key, ..Default::default() }.into()),
        }
    }

    /// A single-setpoint thermostat, as ESPHome's `thermostat` climate sends it: modes off, cool,
    /// heat and auto, setpoint 5–30 °C by 0.5, reporting the room's temperature and its action
    /// (`supports_current_temperature`, `supports_action`; no `feature_flags`, as before
    /// 2025.11), with `fan_modes` (`ClimateFanMode` names such as `auto`, `low`; it starts in
    /// the first; none: no fan mode). It starts in `mode` at setpoint `target` °C with the room
    /// at `current` °C, its action following ([`thermostat_action`]).
    pub fn climate(
        key: u32,
        object_id: &str,
        name: &str,
        mode: &str,
        (current, target): (f32, f32),
        fan_modes: &[&str],
    ) -> Entity {
        let fan_modes: Vec<u32> =
            fan_modes.iter().map(|f| wire_value(&CLIMATE_FAN_MODES, f, "climate fan mode")).collect();
        let mode = wire_value(&CLIMATE_MODES, mode, "climate mode");
        Entity {
            info: ListEntitiesClimateResponse {
                object_id: object_id.into(),
                key,
                name: name.into(),
                supports_current_temperature: true,
                // A set on the device: sorted by value.
                supported_modes: ["off", "cool", "heat", "auto"]
                    .iter()
                    .map(|m| wire_value(&CLIMATE_MODES, m, "climate mode"))
                    .collect(),
                visual_min_temperature: 5.0,
                visual_max_temperature: 30.0,
                visual_target_temperature_step: 0.5,
                visual_current_temperature_step: 0.1,
                supports_action: true,
                supported_fan_modes: fan_modes.clone(),
                ..Default::default()
            }
            .into(),
            state: Some(
                ClimateStateResponse {
                    key,
                    mode,
                    current_temperature: current,
                    target_temperature: target,
                    action: thermostat_action(mode, current, (target, target)),
                    fan_mode: fan_modes.first().copied().unwrap_or_default(),
                    ..Default::default()
                }
                .into(),
            ),
        }
    }

    /// Its key.
    pub fn key(&self) -> u32 {
        info_fields(&self.info).map_or(0, |(k, _, _)| k)
    }

    /// Its `object_id`.
    pub fn object_id(&self) -> String {
        info_fields(&self.info).map(|(_, id, _)| id.to_owned()).unwrap_or_default()
    }

    /// Its domain (`switch`, `light` ...).
    pub fn domain(&self) -> &'static str {
        info_fields(&self.info).map_or("unknown", |(_, _, d)| d)
    }
}

fn info_fields(m: &Message) -> Option<(u32, &str, &'static str)> {
    Some(match m {
        Message::ListEntitiesSwitchResponse(e) => (e.key, &e.object_id, "switch"),
        Message::ListEntitiesLightResponse(e) => (e.key, &e.object_id, "light"),
        Message::ListEntitiesSensorResponse(e) => (e.key, &e.object_id, "sensor"),
        Message::ListEntitiesBinarySensorResponse(e) => (e.key, &e.object_id, "binary_sensor"),
        Message::ListEntitiesCoverResponse(e) => (e.key, &e.object_id, "cover"),
        Message::ListEntitiesButtonResponse(e) => (e.key, &e.object_id, "button"),
        Message::ListEntitiesNumberResponse(e) => (e.key, &e.object_id, "number"),
        Message::ListEntitiesSelectResponse(e) => (e.key, &e.object_id, "select"),
        Message::ListEntitiesTextSensorResponse(e) => (e.key, &e.object_id, "text_sensor"),
        Message::ListEntitiesFanResponse(e) => (e.key, &e.object_id, "fan"),
        Message::ListEntitiesClimateResponse(e) => (e.key, &e.object_id, "climate"),
        _ => return None,
    })
}

fn cover_state(key: u32, position: f32) -> Message {
    CoverStateResponse { key, legacy_state: u32::from(position <= 0.0), position, ..Default::default() }.into()
}

/// The default entities: one of each kind, keys [`RELAY`] to [`THERMOSTAT`].
pub fn default_entities() -> Vec<Entity> {
    vec![
        Entity::switch(RELAY, "relay", "Relay", false),
        Entity::light(LIGHT, "ceiling_light", "Ceiling light", false, 0.5),
        Entity::sensor(TEMPERATURE, "temperature", "Temperature", "temperature", "°C", 1, 21.5),
        Entity::binary_sensor(MOTION, "motion", "Motion", "motion", false),
        Entity::cover(BLIND, "blind", "Blind", 0.0),
        Entity::button(RESTART, "restart", "Restart", "restart"),
        Entity::number(TARGET, "target_temperature", "Target temperature", (5.0, 30.0, 0.5), "°C", 21.0),
        Entity::select(MODE, "mode", "Mode", &["eco", "comfort", "away"], "eco"),
        Entity::text_sensor(STATUS, "status", "Status", "ok"),
        Entity::fan(FAN, "fan", "Fan", 3),
        Entity::climate(THERMOSTAT, "thermostat", "Thermostat", "off", (20.5, 21.0), &["auto", "low", "high"]),
    ]
}

/// What the simulated device is.
#[derive(Debug, Clone)]
pub struct EsphomeOptions {
    /// The node name (`esphome: name:`), also the mDNS instance and host name.
    pub name: String,
    /// `esphome: friendly_name:`.
    pub friendly_name: String,
    /// The MAC address, as `DeviceInfoResponse` gives it (`AC:BC:32:89:0E:A9`).
    pub mac: String,
    /// The API encryption key (`api: encryption: key:`, base64): with one the device speaks only
    /// Noise, without one only plaintext.
    pub key: Option<String>,
    /// The ESPHome version.
    pub version: String,
    /// `esphome: project:` name and version, when set.
    pub project: Option<(String, String)>,
    /// The entities.
    pub entities: Vec<Entity>,
    /// Answer `ConnectRequest` (default); firmware since 2026.1 no longer does (a client
    /// without a password is logged in by its hello).
    pub connect_response: bool,
}

impl Default for EsphomeOptions {
    fn default() -> EsphomeOptions {
        EsphomeOptions {
            name: "kitchen-node".into(),
            friendly_name: "Kitchen node".into(),
            mac: "AC:BC:32:89:0E:A9".into(),
            key: None,
            version: "2025.5.0".into(),
            project: None,
            entities: default_entities(),
            connect_response: true,
        }
    }
}

impl EsphomeOptions {
    /// The key [`EsphomeOptions::encrypted`] uses.
    pub const KEY: &'static str = "QRTIErOb/fcE9Ukd/5qA3RGYMn0Y+p06U58SCtOXvPc=";

    /// The default device with API encryption, key [`EsphomeOptions::KEY`].
    pub fn encrypted() -> EsphomeOptions {
        EsphomeOptions { key: Some(Self::KEY.into()), ..EsphomeOptions::default() }
    }
}

/// What the device recorded of its clients.
#[derive(Debug, Default)]
struct Record {
    commands: Vec<String>,
    hellos: Vec<String>,
    subscriptions: usize,
    pongs: usize,
    times: Vec<u32>,
    disconnect_responses: usize,
}

/// One client connection.
struct Conn {
    id: u64,
    stream: TcpStream,
    /// The write side with the Noise transport (`None`: plaintext or handshake not done),
    /// locked for each frame so encryption order is wire order.
    out: Mutex<Option<snow::TransportState>>,
    subscribed: AtomicBool,
}

impl Conn {
    fn write_raw(&self, bytes: &[u8]) {
        let _guard = self.out.lock().unwrap();
        let _ = (&self.stream).write_all(bytes);
    }

    fn send(&self, encrypted: bool, msg: &Message) {
        self.send_frame(encrypted, msg.msg_type(), &msg.encode());
    }

    fn send_frame(&self, encrypted: bool, msg_type: u32, payload: &[u8]) {
        let mut out = self.out.lock().unwrap();
        let bytes = if encrypted {
            let Some(t) = out.as_mut() else { return };
            let plain = encode_noise_plaintext(msg_type as u16, payload).unwrap();
            let mut buf = vec![0u8; plain.len() + 16];
            let n = t.write_message(&plain, &mut buf).unwrap();
            encode_noise_frame(&buf[..n]).unwrap()
        } else {
            encode_plaintext(msg_type, payload)
        };
        let _ = (&self.stream).write_all(&bytes);
    }

    fn close(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

struct Inner {
    opts: EsphomeOptions,
    key: Option<NoiseKey>,
    entities: Mutex<Vec<Entity>>,
    conns: Mutex<Vec<Arc<Conn>>>,
    record: Mutex<Record>,
    changed: Condvar,
    frozen: AtomicBool,
    stop: AtomicBool,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Inner {
    fn encrypted(&self) -> bool {
        self.key.is_some()
    }

    fn note(&self, f: impl FnOnce(&mut Record)) {
        f(&mut self.record.lock().unwrap());
        self.changed.notify_all();
    }

    fn subscribed(&self) -> Vec<Arc<Conn>> {
        self.conns.lock().unwrap().iter().filter(|c| c.subscribed.load(Ordering::SeqCst)).cloned().collect()
    }

    /// Sends a state to every subscribed client (not while frozen).
    fn push(&self, msg: &Message) {
        if self.frozen.load(Ordering::SeqCst) {
            return;
        }
        for c in self.subscribed() {
            c.send(self.encrypted(), msg);
        }
    }
}

/// A simulated ESPHome device; see the module documentation.
pub struct EsphomeSim {
    inner: Arc<Inner>,
    port: u16,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EsphomeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsphomeSim").field("name", &self.inner.opts.name).field("port", &self.port).finish()
    }
}

impl EsphomeSim {
    /// Starts the device on a free port of 127.0.0.1.
    pub fn start(opts: EsphomeOptions) -> EsphomeSim {
        EsphomeSim::start_on(0, opts)
    }

    /// Starts the device on `port` of 127.0.0.1 (again after a stop: the same address).
    pub fn start_on(port: u16, opts: EsphomeOptions) -> EsphomeSim {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind the ESPHome simulator");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let key = opts.key.as_deref().map(|k| NoiseKey::from_base64(k).expect("a valid simulator key"));
        let inner = Arc::new(Inner {
            entities: Mutex::new(opts.entities.clone()),
            opts,
            key,
            conns: Mutex::new(Vec::new()),
            record: Mutex::new(Record::default()),
            changed: Condvar::new(),
            frozen: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            threads: Mutex::new(Vec::new()),
        });
        let i = inner.clone();
        let accept = std::thread::Builder::new()
            .name("esphome-sim-accept".into())
            .spawn(move || accept_loop(&i, &listener))
            .unwrap();
        EsphomeSim { inner, port, accept: Some(accept) }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// Its node name.
    pub fn name(&self) -> &str {
        &self.inner.opts.name
    }

    /// Its inbox key: the MAC in lowercase hex (`acbc32890ea9`).
    pub fn key(&self) -> String {
        native_id(&self.inner.opts.mac).unwrap()
    }

    /// Its Hearth device id, `esphome:<mac>`.
    pub fn device_id(&self) -> DeviceId {
        DeviceId::new("esphome", &self.key())
    }

    /// The TXT records it announces, as ESPHome's mDNS component writes them.
    pub fn txt(&self) -> Vec<(String, String)> {
        let o = &self.inner.opts;
        let mut txt = vec![
            ("friendly_name".to_owned(), o.friendly_name.clone()),
            ("version".to_owned(), o.version.clone()),
            ("config_hash".to_owned(), "5c1d0f2a".to_owned()),
            ("mac".to_owned(), self.key()),
            ("platform".to_owned(), "ESP32".to_owned()),
            ("board".to_owned(), "esp32dev".to_owned()),
            ("network".to_owned(), "wifi".to_owned()),
        ];
        let encryption = if o.key.is_some() { "api_encryption" } else { "api_encryption_supported" };
        txt.push((encryption.to_owned(), NOISE.to_owned()));
        if let Some((name, version)) = &o.project {
            txt.push(("project_name".to_owned(), name.clone()));
            txt.push(("project_version".to_owned(), version.clone()));
        }
        txt
    }

    /// Its announcement as a browser resolves it.
    pub fn announcement(&self) -> Announcement {
        let name = self.inner.opts.name.clone();
        Announcement {
            service_type: SERVICE_TYPE.into(),
            instance: format!("{name}.{SERVICE_TYPE}"),
            host: format!("{name}.local."),
            name,
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: self.port,
            txt: self.txt().into_iter().collect::<BTreeMap<_, _>>(),
        }
    }

    /// Where a session finds it, as the Wi-Fi runner hands it over after the announcement.
    pub fn target(&self) -> Target {
        let a = self.announcement();
        Target {
            key: self.key(),
            device: self.device_id(),
            name: a.name,
            address: a.addresses[0],
            port: a.port,
            txt: a.txt,
        }
    }

    /// Announces it over mDNS on `browser`: `_esphomelib._tcp`, instance and host named after the
    /// node, 127.0.0.1, its port, its TXT records.
    pub fn announce(&self, browser: &Browser) {
        let txt = self.txt();
        let pairs: Vec<(&str, &str)> = txt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let name = &self.inner.opts.name;
        browser
            .announce(SERVICE_TYPE, name, &format!("{name}.local."), IpAddr::V4(Ipv4Addr::LOCALHOST), self.port, &pairs)
            .expect("announce the ESPHome simulator");
    }

    /// The commands received, one line each, in order.
    pub fn commands(&self) -> Vec<String> {
        self.inner.record.lock().unwrap().commands.clone()
    }

    /// Waits for the command `line`; panics with the commands received if it does not come.
    pub fn wait_for_command(&self, line: &str, timeout: Duration) {
        self.wait("the command", timeout, |r| r.commands.iter().any(|c| c == line));
    }

    /// The `client_info` of every hello, in order.
    pub fn hellos(&self) -> Vec<String> {
        self.inner.record.lock().unwrap().hellos.clone()
    }

    /// How many times clients subscribed to states.
    pub fn subscriptions(&self) -> usize {
        self.inner.record.lock().unwrap().subscriptions
    }

    /// Waits until clients subscribed to states `n` times in all.
    pub fn wait_subscriptions(&self, n: usize, timeout: Duration) {
        self.wait("subscriptions", timeout, |r| r.subscriptions >= n);
    }

    /// How many connections are open.
    pub fn connections(&self) -> usize {
        self.inner.conns.lock().unwrap().len()
    }

    /// Waits until `pred` holds for the record; panics with it if not.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&Record) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut r = self.inner.record.lock().unwrap();
        while !pred(&r) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "ESPHome simulator: no {what} within {timeout:?}; record: {r:?}");
            r = self.inner.changed.wait_timeout(r, left).unwrap().0;
        }
    }

    /// The current state of an entity.
    pub fn state(&self, key: u32) -> Option<Message> {
        self.inner.entities.lock().unwrap().iter().find(|e| e.key() == key).and_then(|e| e.state.clone())
    }

    /// Replaces an entity's state (by the key the message carries) and pushes it, as if the
    /// device changed by itself.
    pub fn set_state(&self, msg: impl Into<Message>) {
        let msg = msg.into();
        let key = hearth_esphome::api::state_key(&msg).expect("a state message");
        {
            let mut entities = self.inner.entities.lock().unwrap();
            let e = entities.iter_mut().find(|e| e.key() == key).expect("an entity of the simulator");
            e.state = Some(msg.clone());
        }
        self.inner.push(&msg);
    }

    /// A new sensor reading.
    pub fn set_sensor(&self, key: u32, value: f32) {
        self.set_state(SensorStateResponse { key, state: value, ..Default::default() });
    }

    /// The switch turned on or off at the device (its button).
    pub fn set_switch_physically(&self, key: u32, on: bool) {
        self.set_state(SwitchStateResponse { key, state: on, ..Default::default() });
    }

    /// A binary sensor changed.
    pub fn set_binary_sensor(&self, key: u32, on: bool) {
        self.set_state(BinarySensorStateResponse { key, state: on, ..Default::default() });
    }

    /// The room's temperature at a climate entity is now `current_temperature` °C and it is
    /// `action` (a `ClimateAction` name: `off`, `cooling`, `heating`, `idle`, `drying`, `fan`,
    /// `defrosting`), as its sensor and relay report it; the rest of its state stays.
    pub fn set_climate(&self, key: u32, current_temperature: f32, action: &str) {
        let Some(Message::ClimateStateResponse(mut s)) = self.state(key) else {
            panic!("ESPHome simulator: no climate entity with key {key:#x}")
        };
        s.current_temperature = current_temperature;
        s.action = wire_value(&CLIMATE_ACTIONS, action, "climate action");
        self.set_state(s);
    }

    /// Restarts: every connection is closed at once; it keeps listening (and is not frozen).
    pub fn reboot(&self) {
        self.inner.frozen.store(false, Ordering::SeqCst);
        for c in self.inner.conns.lock().unwrap().drain(..) {
            c.close();
        }
    }

    /// Freezes (reads everything, answers nothing, pushes nothing; connections are still
    /// accepted) or thaws. What arrives while frozen is dropped.
    pub fn freeze(&self, frozen: bool) {
        self.inner.frozen.store(frozen, Ordering::SeqCst);
    }

    /// Pings every subscribed client, as a device does after a minute without traffic.
    pub fn ping_clients(&self) {
        self.inner.push(&PingRequest::default().into());
    }

    /// How many `PingResponse`s clients sent.
    pub fn pongs(&self) -> usize {
        self.inner.record.lock().unwrap().pongs
    }

    /// Waits until clients answered `n` pings in all.
    pub fn wait_pongs(&self, n: usize, timeout: Duration) {
        self.wait("pongs", timeout, |r| r.pongs >= n);
    }

    /// Asks every subscribed client for the time (`time: platform: homeassistant`).
    pub fn request_time(&self) {
        self.inner.push(&GetTimeRequest::default().into());
    }

    /// The `epoch_seconds` of every `GetTimeResponse` received.
    pub fn times(&self) -> Vec<u32> {
        self.inner.record.lock().unwrap().times.clone()
    }

    /// Waits until clients told the time `n` times in all.
    pub fn wait_times(&self, n: usize, timeout: Duration) {
        self.wait("time answers", timeout, |r| r.times.len() >= n);
    }

    /// Asks every subscribed client to disconnect, as a device does before it restarts; each
    /// connection closes when its client answers.
    pub fn disconnect_clients(&self) {
        self.inner.push(&DisconnectRequest::default().into());
    }

    /// How many `DisconnectResponse`s clients sent.
    pub fn disconnect_responses(&self) -> usize {
        self.inner.record.lock().unwrap().disconnect_responses
    }

    /// Waits until clients answered `n` disconnect requests in all.
    pub fn wait_disconnect_responses(&self, n: usize, timeout: Duration) {
        self.wait("disconnect responses", timeout, |r| r.disconnect_responses >= n);
    }

    /// Sends a frame of `msg_type` with `payload` as it is (malformed or not) to every subscribed
    /// client.
    pub fn send_raw(&self, msg_type: u32, payload: &[u8]) {
        for c in self.inner.subscribed() {
            c.send_frame(self.inner.encrypted(), msg_type, payload);
        }
    }

    /// Sends raw bytes, outside any frame, to every subscribed client.
    pub fn send_bytes(&self, bytes: &[u8]) {
        for c in self.inner.subscribed() {
            c.write_raw(bytes);
        }
    }

    /// Stops: closes the listener and every connection (also on drop).
    pub fn stop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for c in self.inner.conns.lock().unwrap().drain(..) {
            c.close();
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let threads: Vec<JoinHandle<()>> = self.inner.threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for EsphomeSim {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(inner: &Arc<Inner>, listener: &TcpListener) {
    while !inner.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_nodelay(true);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                let Ok(write_side) = stream.try_clone() else { continue };
                let conn = Arc::new(Conn {
                    id: inner.next_id.fetch_add(1, Ordering::SeqCst),
                    stream: write_side,
                    out: Mutex::new(None),
                    subscribed: AtomicBool::new(false),
                });
                inner.conns.lock().unwrap().push(conn.clone());
                let i = inner.clone();
                let t = std::thread::Builder::new()
                    .name("esphome-sim-conn".into())
                    .spawn(move || {
                        serve(&i, &conn, stream);
                        conn.close();
                        i.conns.lock().unwrap().retain(|c| c.id != conn.id);
                        i.changed.notify_all();
                    })
                    .unwrap();
                let mut threads = inner.threads.lock().unwrap();
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Where a connection is.
enum Phase {
    Plain(PlaintextDecoder),
    NoiseHello(NoiseFrameDecoder),
    NoiseHandshake(NoiseFrameDecoder, Box<snow::HandshakeState>),
    NoiseData(NoiseFrameDecoder),
}

/// What to do after some bytes.
enum Next {
    Go,
    Close,
}

fn serve(inner: &Arc<Inner>, conn: &Arc<Conn>, mut stream: TcpStream) {
    let mut phase = if inner.encrypted() {
        Phase::NoiseHello(NoiseFrameDecoder::new())
    } else {
        Phase::Plain(PlaintextDecoder::new())
    };
    let mut hello_done = false;
    let mut buf = [0u8; 4096];
    loop {
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue;
            }
            Err(_) => return,
        };
        if inner.frozen.load(Ordering::SeqCst) {
            continue;
        }
        if let Next::Close = take(inner, conn, &mut phase, &mut hello_done, &buf[..n]) {
            return;
        }
    }
}

/// Takes bytes a client sent, in the connection's phase.
fn take(inner: &Inner, conn: &Conn, phase: &mut Phase, hello_done: &mut bool, bytes: &[u8]) -> Next {
    match phase {
        Phase::Plain(d) => {
            d.push(bytes);
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        if let Next::Close = handle(inner, conn, hello_done, f.msg_type, &f.payload) {
                            return Next::Close;
                        }
                    }
                    Ok(None) => return Next::Go,
                    Err(FrameError::RequiresEncryption) => {
                        // A Noise client: say so in plaintext, as ESPHome does, and close.
                        conn.write_raw(b"\x00Bad indicator byte");
                        return Next::Close;
                    }
                    Err(_) => return Next::Close,
                }
            }
        }
        Phase::NoiseHello(_) | Phase::NoiseHandshake(..) | Phase::NoiseData(_) => {
            let Some(d) = noise_decoder(phase) else { return Next::Close };
            d.push(bytes);
            loop {
                let Some(d) = noise_decoder(phase) else { return Next::Close };
                let body = match d.next_body() {
                    Ok(Some(b)) => b,
                    Ok(None) => return Next::Go,
                    Err(FrameError::RequiresPlaintext) => {
                        reject(conn, "Bad indicator byte");
                        return Next::Close;
                    }
                    Err(_) => return Next::Close,
                };
                if let Next::Close = noise_step(inner, conn, phase, hello_done, &body) {
                    return Next::Close;
                }
            }
        }
    }
}

fn noise_decoder(phase: &mut Phase) -> Option<&mut NoiseFrameDecoder> {
    match phase {
        Phase::NoiseHello(d) | Phase::NoiseHandshake(d, _) | Phase::NoiseData(d) => Some(d),
        Phase::Plain(_) => None,
    }
}

/// An explicit handshake rejection: `01` and the reason, in a Noise frame.
fn reject(conn: &Conn, reason: &str) {
    let mut body = vec![0x01];
    body.extend_from_slice(reason.as_bytes());
    conn.write_raw(&encode_noise_frame(&body).unwrap());
}

fn noise_step(inner: &Inner, conn: &Conn, phase: &mut Phase, hello_done: &mut bool, body: &[u8]) -> Next {
    let key = inner.key.as_ref().expect("a Noise phase has a key");
    match std::mem::replace(phase, Phase::Plain(PlaintextDecoder::new())) {
        Phase::NoiseHello(d) => {
            // The prologue: "NoiseAPIInit", the client hello's length (2 bytes) and the hello.
            let mut prologue = b"NoiseAPIInit".to_vec();
            prologue.extend_from_slice(&(body.len() as u16).to_be_bytes());
            prologue.extend_from_slice(body);
            let mut hello = vec![0x01];
            hello.extend_from_slice(inner.opts.name.as_bytes());
            hello.push(0);
            hello.extend_from_slice(native_id(&inner.opts.mac).unwrap().as_bytes());
            hello.push(0);
            conn.write_raw(&encode_noise_frame(&hello).unwrap());
            let hs = snow::Builder::new(NOISE_PATTERN.parse().unwrap())
                .prologue(&prologue)
                .unwrap()
                .psk(0, key.as_bytes())
                .unwrap()
                .build_responder()
                .unwrap();
            *phase = Phase::NoiseHandshake(d, Box::new(hs));
            Next::Go
        }
        Phase::NoiseHandshake(d, mut hs) => {
            let Some((&0x00, msg)) = body.split_first() else {
                reject(conn, if body.is_empty() { "Empty handshake message" } else { "Bad handshake error byte" });
                return Next::Close;
            };
            let mut payload = [0u8; 256];
            if hs.read_message(msg, &mut payload).is_err() {
                reject(conn, "Handshake MAC failure");
                return Next::Close;
            }
            let mut answer = [0u8; 256];
            let n = hs.write_message(&[], &mut answer).unwrap();
            let mut frame_body = vec![0x00];
            frame_body.extend_from_slice(&answer[..n]);
            {
                // Under the write lock: the transport is in place before anything is encrypted.
                let mut out = conn.out.lock().unwrap();
                let _ = (&conn.stream).write_all(&encode_noise_frame(&frame_body).unwrap());
                *out = Some(hs.into_transport_mode().unwrap());
            }
            *phase = Phase::NoiseData(d);
            Next::Go
        }
        Phase::NoiseData(d) => {
            let frame = {
                let mut out = conn.out.lock().unwrap();
                let Some(t) = out.as_mut() else { return Next::Close };
                let mut plain = vec![0u8; body.len()];
                match t.read_message(body, &mut plain) {
                    Ok(n) => decode_noise_plaintext(&plain[..n]),
                    Err(_) => None,
                }
            };
            *phase = Phase::NoiseData(d);
            match frame {
                Some(f) => handle(inner, conn, hello_done, f.msg_type, &f.payload),
                None => Next::Close,
            }
        }
        Phase::Plain(_) => Next::Close,
    }
}

/// One message from a client, answered as the device does.
fn handle(inner: &Inner, conn: &Conn, hello_done: &mut bool, msg_type: u32, payload: &[u8]) -> Next {
    let Ok(msg) = Message::decode(msg_type, payload) else { return Next::Go };
    let enc = inner.encrypted();
    let o = &inner.opts;
    if !*hello_done
        && !matches!(msg, Message::HelloRequest(_) | Message::PingRequest(_) | Message::DisconnectRequest(_))
    {
        // Like ESPHome: nothing before the hello.
        return Next::Close;
    }
    match msg {
        Message::HelloRequest(h) => {
            *hello_done = true;
            inner.note(|r| r.hellos.push(h.client_info.clone()));
            let answer = HelloResponse {
                api_version_major: 1,
                api_version_minor: 10,
                server_info: format!("{} (esphome v{})", o.name, o.version),
                name: o.name.clone(),
            };
            conn.send(enc, &answer.into());
        }
        Message::ConnectRequest(_) => {
            if o.connect_response {
                conn.send(enc, &ConnectResponse { invalid_password: false }.into());
            }
        }
        Message::DeviceInfoRequest(_) => {
            let (project_name, project_version) = o.project.clone().unwrap_or_default();
            let info = DeviceInfoResponse {
                name: o.name.clone(),
                mac_address: o.mac.clone(),
                esphome_version: o.version.clone(),
                compilation_time: "Jun 21 2025, 10:00:00".into(),
                model: "esp32dev".into(),
                project_name,
                project_version,
                manufacturer: "Espressif".into(),
                friendly_name: o.friendly_name.clone(),
                api_encryption_supported: true,
                ..Default::default()
            };
            conn.send(enc, &info.into());
        }
        Message::ListEntitiesRequest(_) => {
            let infos: Vec<Message> = inner.entities.lock().unwrap().iter().map(|e| e.info.clone()).collect();
            for i in &infos {
                conn.send(enc, i);
            }
            conn.send(enc, &ListEntitiesDoneResponse::default().into());
        }
        Message::SubscribeStatesRequest(_) => {
            conn.subscribed.store(true, Ordering::SeqCst);
            inner.note(|r| r.subscriptions += 1);
            let states: Vec<Message> = inner.entities.lock().unwrap().iter().filter_map(|e| e.state.clone()).collect();
            for s in &states {
                conn.send(enc, s);
            }
        }
        Message::PingRequest(_) => conn.send(enc, &PingResponse::default().into()),
        Message::PingResponse(_) => inner.note(|r| r.pongs += 1),
        Message::GetTimeResponse(t) => inner.note(|r| r.times.push(t.epoch_seconds)),
        Message::DisconnectRequest(_) => {
            conn.send(enc, &DisconnectResponse::default().into());
            return Next::Close;
        }
        Message::DisconnectResponse(_) => {
            inner.note(|r| r.disconnect_responses += 1);
            return Next::Close;
        }
        other => {
            let applied = apply(&mut inner.entities.lock().unwrap(), &other);
            if let Some((line, state)) = applied {
                inner.note(|r| r.commands.push(line));
                if let Some(s) = state {
                    inner.push(&s);
                }
            }
        }
    }
    Next::Go
}

/// Carries out a command on the entities: the line it is recorded as, and the new state.
fn apply(entities: &mut [Entity], msg: &Message) -> Option<(String, Option<Message>)> {
    let key = hearth_esphome::api::command_key(msg)?;
    let e = entities.iter_mut().find(|e| e.key() == key)?;
    let mut line = format!("{} {}", e.domain(), e.object_id());
    let mut add = |part: String| {
        line.push(' ');
        line.push_str(&part);
    };
    let state = match (msg, e.state.clone()) {
        (Message::SwitchCommandRequest(c), _) => {
            add(format!("state={}", c.state));
            Some(SwitchStateResponse { key, state: c.state, ..Default::default() }.into())
        }
        (Message::LightCommandRequest(c), Some(Message::LightStateResponse(mut s))) => {
            if c.has_state {
                add(format!("state={}", c.state));
                s.state = c.state;
            }
            if c.has_brightness {
                add(format!("brightness={}", c.brightness));
                s.brightness = c.brightness;
            }
            if c.has_rgb {
                add(format!("rgb={},{},{}", c.red, c.green, c.blue));
                (s.red, s.green, s.blue) = (c.red, c.green, c.blue);
            }
            if c.has_color_temperature {
                add(format!("color_temperature={}", c.color_temperature));
                s.color_temperature = c.color_temperature;
            }
            if c.has_effect {
                add(format!("effect={}", c.effect));
                s.effect = c.effect.clone();
            }
            if c.has_transition_length {
                add(format!("transition_length={}", c.transition_length));
            }
            Some(s.into())
        }
        (Message::CoverCommandRequest(c), Some(Message::CoverStateResponse(s))) => {
            let mut position = s.position;
            if c.stop {
                add("stop".into());
            }
            if c.has_position {
                add(format!("position={}", c.position));
                position = c.position;
            }
            if c.has_tilt {
                add(format!("tilt={}", c.tilt));
            }
            Some(cover_state(key, position))
        }
        (Message::FanCommandRequest(c), Some(Message::FanStateResponse(mut s))) => {
            if c.has_state {
                add(format!("state={}", c.state));
                s.state = c.state;
            }
            if c.has_speed_level {
                add(format!("speed_level={}", c.speed_level));
                s.speed_level = c.speed_level;
            }
            if c.has_oscillating {
                add(format!("oscillating={}", c.oscillating));
                s.oscillating = c.oscillating;
            }
            if c.has_direction {
                add(format!("direction={}", c.direction));
                s.direction = c.direction;
            }
            Some(s.into())
        }
        (Message::ClimateCommandRequest(c), Some(Message::ClimateStateResponse(mut s))) => {
            let Message::ListEntitiesClimateResponse(info) = &e.info else { return None };
            let two_point = info.supports_two_point_target_temperature || info.feature_flags & (2 | 4) != 0;
            if c.has_mode {
                add(format!("mode={}", wire_name(&CLIMATE_MODES, c.mode)));
                if info.supported_modes.contains(&c.mode) {
                    s.mode = c.mode;
                }
            }
            if c.has_target_temperature {
                add(format!("target_temperature={}", c.target_temperature));
                if !two_point && !c.target_temperature.is_nan() {
                    s.target_temperature = c.target_temperature;
                }
            }
            if c.has_target_temperature_low {
                add(format!("target_temperature_low={}", c.target_temperature_low));
                if two_point && !c.target_temperature_low.is_nan() {
                    s.target_temperature_low = c.target_temperature_low;
                }
            }
            if c.has_target_temperature_high {
                add(format!("target_temperature_high={}", c.target_temperature_high));
                if two_point && !c.target_temperature_high.is_nan() {
                    s.target_temperature_high = c.target_temperature_high;
                }
            }
            if c.has_fan_mode {
                add(format!("fan_mode={}", wire_name(&CLIMATE_FAN_MODES, c.fan_mode)));
                if info.supported_fan_modes.contains(&c.fan_mode) {
                    s.fan_mode = c.fan_mode;
                    s.custom_fan_mode.clear();
                }
            }
            if c.has_custom_fan_mode {
                add(format!("custom_fan_mode={}", c.custom_fan_mode));
                if info.supported_custom_fan_modes.contains(&c.custom_fan_mode) {
                    s.custom_fan_mode = c.custom_fan_mode.clone();
                }
            }
            if c.has_swing_mode {
                add(format!("swing_mode={}", c.swing_mode));
                if info.supported_swing_modes.contains(&c.swing_mode) {
                    s.swing_mode = c.swing_mode;
                }
            }
            if c.has_preset {
                add(format!("preset={}", c.preset));
                if info.supported_presets.contains(&c.preset) {
                    s.preset = c.preset;
                }
            }
            if info.supports_action {
                let setpoints = if two_point {
                    (s.target_temperature_low, s.target_temperature_high)
                } else {
                    (s.target_temperature, s.target_temperature)
                };
                s.action = thermostat_action(s.mode, s.current_temperature, setpoints);
            }
            Some(s.into())
        }
        (Message::NumberCommandRequest(c), _) => {
            add(format!("state={}", c.state));
            Some(NumberStateResponse { key, state: c.state, ..Default::default() }.into())
        }
        (Message::SelectCommandRequest(c), _) => {
            add(format!("state={}", c.state));
            let valid = matches!(&e.info, Message::ListEntitiesSelectResponse(i) if i.options.contains(&c.state));
            valid.then(|| SelectStateResponse { key, state: c.state.clone(), ..Default::default() }.into())
        }
        (Message::ButtonCommandRequest(_), _) => {
            add("press".into());
            None
        }
        _ => None,
    };
    if let Some(s) = &state {
        e.state = Some(s.clone());
    }
    Some((line, state))
}
