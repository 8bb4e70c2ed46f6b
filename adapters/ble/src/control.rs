//! Controlling BLE devices over GATT, starting with the SwitchBot Bot (OpenWonderLabs
//! "SwitchBotAPI-BLE", `devicetypes/bot.md`).
//!
//! Three layers:
//!
//! - [`GattLink`]: connect to an address, subscribe to a characteristic's notifications, write,
//!   wait for one notification, disconnect. `BluezLink` does it with btleplug (feature `bluez`);
//!   tests use a scripted fake.
//! - The Bot's protocol, pure: [`bot_actions`] maps a [`CommandRequest`] to [`BotAction`]s,
//!   [`BotAction::frame`] gives the bytes, [`bot_answer`] reads the answer's status byte and
//!   [`parse_bot_info`] the answer to a refresh.
//! - [`Controller`]: runs a command on a device: one command at a time per device, connecting
//!   on demand, retrying a failed connection or write with exponential backoff ([`RetryPolicy`]),
//!   and returning the values to report as state, or why it failed ([`ControlError`]).
//!
//! # The Bot on the wire
//!
//! Service `cba20d00-224d-11e6-9fb8-0002a5d5c51b`; requests are written (without response) to
//! `cba20002-…`, answers come as notifications of `cba20003-…`. A request is `0x57`, a header
//! byte (bits 5-4: encryption, bits 3-0: the command), then the payload. Command `0x01` executes
//! an action: `57 01 00` press (push and pull back), `57 01 01` on, `57 01 02` off. Command `0x02`
//! asks for the basic info (`57 02`). A Bot with a password takes the same commands with
//! encryption mode 1 and the CRC-32 (IEEE, as zlib) of its password, big-endian, after the
//! header: `57 11 <crc32> 01` turns it on, `57 12 <crc32>` asks for its info. Every answer starts
//! with a status byte: 1 done, 3 busy, 5 not supported in its current mode, 7 the Bot has a
//! password, 8 it has none, 9 wrong password (the others: see [`bot_answer`]).
//!
//! # The model
//!
//! A Bot has `state` (on/off, [`BOT_STATE`]), `mode` (`press` or `switch`, [`BOT_MODE`]) and
//! `battery` ([`BOT_BATTERY`]). Only `state` can be set:
//!
//! | request | switch mode | press mode | mode unknown |
//! |---|---|---|---|
//! | `set {"state": true}` | on (`57 01 01`) | press (`57 01 00`) | on |
//! | `set {"state": false}` | off (`57 01 02`) | refused: a press has no off | off |
//! | `toggle ["state"]` | refused (the hub turns toggles into `set`) | press | refused |
//! | `refresh` (all, or any of `state`, `mode`, `battery`) | info (`57 02`) | info | info |
//!
//! In press mode the Bot presses and lets go, and its own state stays off (its advertisement
//! says so), so a press is asked with `state: true` and its result reported as `state: false`,
//! as the Bot will report it; the user's toggle works too, since the hub turns it into
//! `state: true`. A press is never sent to a Bot in switch mode: such a Bot answers "not
//! supported" and yet moves its arm (SwitchBotAPI-BLE issue #35). `mode` is changed in the
//! SwitchBot app (setting it here would also reset the Bot's inverted-direction setting, which
//! the hub cannot read from the advertisement). A `transition` is ignored.
//!
//! # Retries
//!
//! A failed connection (or subscription) and a failed write are retried, and so is a "busy"
//! answer: the Bot has not acted. A write that timed out or got no answer may have been carried
//! out: it is repeated only when doing it twice does no harm (on, off, info), never for a press,
//! which would press twice. Any other answer of the Bot is final.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hearth_sdk::{CommandRequest, Refresh, Secret, Value};

use crate::decode::Address;

#[cfg(feature = "bluez")]
pub use self::bluez_link::BluezLink;

/// The SwitchBot communication service.
pub const BOT_SERVICE: u128 = 0xcba2_0d00_224d_11e6_9fb8_0002_a5d5_c51b;
/// The characteristic requests are written to.
pub const BOT_WRITE: u128 = 0xcba2_0002_224d_11e6_9fb8_0002_a5d5_c51b;
/// The characteristic answers are notified on.
pub const BOT_NOTIFY: u128 = 0xcba2_0003_224d_11e6_9fb8_0002_a5d5_c51b;

/// The Bot's on/off feature (settable; in press mode `true` presses).
pub const BOT_STATE: &str = "state";
/// The Bot's mode feature (`press` or `switch`; read-only here).
pub const BOT_MODE: &str = "mode";
/// The Bot's battery feature (%).
pub const BOT_BATTERY: &str = "battery";

/// The first byte of every request.
const MAGIC: u8 = 0x57;
/// Header bits 5-4 = 1: the request carries the password's CRC-32.
const ENCRYPTED: u8 = 0x10;
/// Command 0x01: execute an action.
const EXECUTE: u8 = 0x01;
/// Command 0x02: get the basic info.
const GET_INFO: u8 = 0x02;

/// A future of a [`GattLink`] operation.
pub type LinkFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LinkError>> + Send + 'a>>;

/// Why a link operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// There is no Bluetooth to try with (no D-Bus, no BlueZ, no adapter): not worth retrying.
    #[error("{0}")]
    Unavailable(String),
    /// This attempt failed (the device was not found, did not accept the connection, the write
    /// failed, the connection dropped); another may succeed.
    #[error("{0}")]
    Failed(String),
}

/// A GATT connection to BLE devices, by address. Implementations keep whatever they need per
/// connected address; the [`Controller`] calls them for one address at a time in the order
/// connect, subscribe, (write, notification)…, disconnect, and may drop a future at a timeout.
pub trait GattLink: Send + Sync + fmt::Debug {
    /// Connects to the device (a no-op when connected) and discovers its services.
    fn connect(&self, address: Address) -> LinkFuture<'_, ()>;
    /// Turns on notifications of `characteristic` and starts collecting them for
    /// [`GattLink::notification`].
    fn subscribe(&self, address: Address, characteristic: u128) -> LinkFuture<'_, ()>;
    /// Writes `data` to `characteristic`, as a request (`with_response`) or a command.
    fn write<'a>(
        &'a self,
        address: Address,
        characteristic: u128,
        data: &'a [u8],
        with_response: bool,
    ) -> LinkFuture<'a, ()>;
    /// The next notification of `characteristic` since it was subscribed to; waits for it (the
    /// caller bounds the wait).
    fn notification(&self, address: Address, characteristic: u128) -> LinkFuture<'_, Vec<u8>>;
    /// Disconnects (a no-op when not connected).
    fn disconnect(&self, address: Address) -> LinkFuture<'_, ()>;
}

/// The Bot's mode, as its advertisement says (the decoder's `mode` reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotMode {
    /// One-state mode: each action presses and lets go.
    Press,
    /// On/off mode (the app's "switch mode"): on pushes, off pulls.
    Switch,
}

impl BotMode {
    /// Reads the `mode` reading's text (`press` or `switch`).
    pub fn parse(text: &str) -> Option<BotMode> {
        match text {
            "press" => Some(BotMode::Press),
            "switch" => Some(BotMode::Switch),
            _ => None,
        }
    }

    /// The mode's name in the model (`press`, `switch`).
    pub fn as_str(self) -> &'static str {
        match self {
            BotMode::Press => "press",
            BotMode::Switch => "switch",
        }
    }
}

/// One request to a Bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotAction {
    /// Push and pull back (press mode).
    Press,
    /// Switch on (switch mode).
    On,
    /// Switch off (switch mode).
    Off,
    /// Ask for the basic info: battery, mode, state.
    Info,
}

impl BotAction {
    /// The request's bytes; with the Bot's password, in the password form. Errs for a password
    /// that cannot be the Bot's (empty, or not ASCII).
    pub fn frame(self, password: Option<&Secret>) -> Result<Vec<u8>, String> {
        let (command, payload): (u8, &[u8]) = match self {
            BotAction::Press => (EXECUTE, &[0x00]),
            BotAction::On => (EXECUTE, &[0x01]),
            BotAction::Off => (EXECUTE, &[0x02]),
            BotAction::Info => (GET_INFO, &[]),
        };
        let mut frame = Vec::with_capacity(7);
        match password {
            None => frame.extend([MAGIC, command]),
            Some(p) => {
                frame.extend([MAGIC, ENCRYPTED | command]);
                frame.extend(password_crc(p.expose())?.to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        Ok(frame)
    }

    /// Whether doing it twice does no harm, so that it may be repeated when unsure it was done.
    pub fn repeatable(self) -> bool {
        !matches!(self, BotAction::Press)
    }

    /// What it does, for messages (`press`, `turn on` …).
    pub fn describe(self) -> &'static str {
        match self {
            BotAction::Press => "press",
            BotAction::On => "turn on",
            BotAction::Off => "turn off",
            BotAction::Info => "report its state",
        }
    }
}

/// The CRC-32 of a Bot's password, as its password requests carry it.
fn password_crc(password: &str) -> Result<u32, String> {
    if password.is_empty() {
        return Err("the Bot's password is empty: set the password given in the SwitchBot app, or none".into());
    }
    if !password.is_ascii() {
        return Err("the Bot's password has characters the SwitchBot app does not allow (only ASCII)".into());
    }
    Ok(crc32(password.as_bytes()))
}

/// CRC-32/ISO-HDLC (zlib's `crc32`): reflected polynomial 0xEDB88320, initial and final XOR
/// 0xFFFFFFFF.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Maps a command to the Bot's actions, in order (see the table in the module docs). `mode` is
/// the Bot's mode as last advertised. Errs, saying why, for what a Bot cannot do.
pub fn bot_actions(request: &CommandRequest, mode: Option<BotMode>) -> Result<Vec<BotAction>, String> {
    let mut actions = Vec::new();
    for (key, value) in &request.set {
        match key.as_str() {
            BOT_STATE => {
                let Value::Bool(on) = value else {
                    return Err(format!("feature `{BOT_STATE}` takes true or false, not {}", value.kind()));
                };
                actions.push(match (mode, *on) {
                    (Some(BotMode::Press), true) => BotAction::Press,
                    (Some(BotMode::Press), false) => {
                        return Err(format!(
                            "a Bot in press mode cannot be turned off: it presses and lets go; set `{BOT_STATE}` to \
                             true to press, or put the Bot in switch mode in the SwitchBot app"
                        ));
                    }
                    (_, true) => BotAction::On,
                    (_, false) => BotAction::Off,
                });
            }
            BOT_MODE => {
                return Err(format!(
                    "the Bot's `{BOT_MODE}` is changed in the SwitchBot app; settable features are: {BOT_STATE}"
                ));
            }
            other => {
                return Err(format!("a SwitchBot Bot cannot set `{other}`; settable features are: {BOT_STATE}"));
            }
        }
    }
    for key in &request.toggle {
        if key != BOT_STATE {
            return Err(format!("a SwitchBot Bot cannot toggle `{key}`; toggleable features are: {BOT_STATE}"));
        }
        if mode != Some(BotMode::Press) {
            return Err(format!(
                "toggling `{BOT_STATE}` of a Bot in switch mode needs its current state: send `set` (the hub turns \
                 toggles into `set` before they reach the adapter)"
            ));
        }
        actions.push(BotAction::Press);
    }
    let refresh = match &request.refresh {
        None | Some(Refresh::All(false)) => false,
        Some(Refresh::All(true)) => true,
        Some(Refresh::Features(keys)) => {
            if let Some(other) = keys.iter().find(|k| ![BOT_STATE, BOT_MODE, BOT_BATTERY].contains(&k.as_str())) {
                return Err(format!(
                    "a SwitchBot Bot cannot refresh `{other}`; refreshable features are: {BOT_STATE}, {BOT_MODE}, \
                     {BOT_BATTERY}"
                ));
            }
            !keys.is_empty()
        }
    };
    if refresh {
        actions.push(BotAction::Info);
    }
    if actions.is_empty() {
        return Err(format!("the command asks nothing of the Bot: set `{BOT_STATE}`, or refresh"));
    }
    Ok(actions)
}

/// The bytes of each request a command asks of a Bot (see [`bot_actions`] and
/// [`BotAction::frame`]).
pub fn bot_commands(
    request: &CommandRequest,
    mode: Option<BotMode>,
    password: Option<&Secret>,
) -> Result<Vec<Vec<u8>>, String> {
    bot_actions(request, mode)?.into_iter().map(|a| a.frame(password)).collect()
}

/// What the Bot's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotAnswer {
    /// Status 1: done.
    Done,
    /// Status 3: busy, nothing done; try again later.
    Busy,
    /// Any other status (or an empty answer): why, as a phrase (`its password is wrong`).
    Refused(String),
}

/// Reads the status byte that starts every answer of a Bot.
pub fn bot_answer(answer: &[u8]) -> BotAnswer {
    let Some(&status) = answer.first() else {
        return BotAnswer::Refused("it sent an empty answer".into());
    };
    let why = match status {
        0x01 => return BotAnswer::Done,
        0x03 => return BotAnswer::Busy,
        0x02 => "it could not carry out the action (status 2)",
        0x04 => "it speaks another version of the protocol (status 4)",
        0x05 => "it does not support this command in its current mode, and may still have moved (status 5)",
        0x06 => "its battery is too low (status 6)",
        0x07 => "it is password protected: give the hub the password set in the SwitchBot app (status 7)",
        0x08 => "it has no password: remove the password the hub has for it (status 8)",
        0x09 => "its password is wrong: give the hub the password set in the SwitchBot app (status 9)",
        0x0A => "it does not support this encryption (status 10)",
        0x0B => "it failed to reach a nearby mesh device (status 11)",
        0x0C => "it failed to connect to the network (status 12)",
        other => return BotAnswer::Refused(format!("it answered with the unknown status 0x{other:02X}")),
    };
    BotAnswer::Refused(why.to_owned())
}

/// Reads the Bot's answer to [`BotAction::Info`] (status 1 already checked): `battery` (byte 1),
/// `mode` (byte 9, bits 7-4: 0 press, 1 switch) and, when the answer carries the advertisement's
/// first two service-data bytes (bytes 11-12, the first being the type `H`), `state` read from
/// the second as the advertisement is read: on only in switch mode with bit 6 clear.
pub fn parse_bot_info(answer: &[u8]) -> Result<BTreeMap<String, Value>, String> {
    if answer.len() < 10 {
        return Err(format!("the Bot's info has {} bytes, needs at least 10", answer.len()));
    }
    let mut values = BTreeMap::new();
    let battery = answer[1];
    if battery <= 100 {
        values.insert(BOT_BATTERY.to_owned(), Value::Number(f64::from(battery)));
    }
    let mode = match answer[9] >> 4 {
        0 => Some(BotMode::Press),
        1 => Some(BotMode::Switch),
        _ => None,
    };
    if let Some(m) = mode {
        values.insert(BOT_MODE.to_owned(), Value::Text(m.as_str().to_owned()));
    }
    if let Some(&[kind, status]) = answer.get(11..13)
        && kind & 0x7F == b'H'
    {
        let on = status & 0x80 != 0 && status & 0x40 == 0;
        values.insert(BOT_STATE.to_owned(), Value::Bool(on));
    }
    Ok(values)
}

/// How a device is controlled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Kind {
    /// A SwitchBot Bot.
    SwitchBotBot(BotSettings),
}

/// What the controller needs to know of a Bot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BotSettings {
    /// Its mode, as last advertised (`None` before it is known).
    pub mode: Option<BotMode>,
    /// Whether its advertisement says it has a password (bit 7 of the service data's first byte).
    pub password_protected: bool,
    /// Its password, when the user gave it. Never shown by `Debug`.
    pub password: Option<Secret>,
}

/// A device to control.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its address.
    pub address: Address,
    /// What it is.
    pub kind: Kind,
}

impl Target {
    /// A SwitchBot Bot at `address`.
    pub fn bot(address: Address, settings: BotSettings) -> Target {
        Target { address, kind: Kind::SwitchBotBot(settings) }
    }
}

/// Why a command failed. The message reads after "the command failed because" or "offline
/// because": lowercase, no trailing period, naming the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The device cannot do what was asked (or its password is missing): nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// There is no Bluetooth to send with.
    #[error("{0}")]
    Unavailable(String),
    /// The device could not be reached, or did not answer, after every attempt: it is offline.
    #[error("{0}")]
    Unreachable(String),
    /// The device answered that it did not do it.
    #[error("{0}")]
    Device(String),
}

impl ControlError {
    /// A short machine-readable code: `refused`, `no_bluetooth`, `unreachable`, `device_error`.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Refused(_) => "refused",
            ControlError::Unavailable(_) => "no_bluetooth",
            ControlError::Unreachable(_) => "unreachable",
            ControlError::Device(_) => "device_error",
        }
    }

    /// Whether the device should be marked offline with this as the reason.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ControlError::Unreachable(_))
    }
}

/// How hard the controller tries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (at least 1).
    pub attempts: u32,
    /// The wait after the first failed attempt; each next wait doubles.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// How much a wait varies at random, as a fraction of it (0 to 1): 0.2 waits 80-120 %.
    pub jitter: f64,
    /// How long a connection (with service discovery) may take.
    pub connect_timeout: Duration,
    /// How long a subscription, a write or a disconnection may take.
    pub io_timeout: Duration,
    /// How long to wait for the device's answer to a write.
    pub answer_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 0.5, 1, 2 and 4 s (±20 %) between them; 10 s to connect, 5 s for a
    /// write and 5 s for the answer.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            jitter: 0.2,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(5),
            answer_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1: the first), before jitter:
    /// `first_delay * 2^(attempt - 1)`, at most `max_delay`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first_delay.saturating_mul(1u32 << doublings).min(self.max_delay)
    }

    /// [`RetryPolicy::delay`] varied by `jitter`, with `unit` in 0..1 picking where in the range.
    fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.delay(attempt);
        let jitter = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        if jitter == 0.0 {
            return base;
        }
        let factor = 1.0 + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }
}

/// A random number in 0..1, from the standard library's per-instance hash keys.
fn random_unit() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The values a successful command leaves, by feature key, to report as state with the
/// command's context as the cause.
pub type Values = BTreeMap<String, Value>;

/// Runs commands on BLE devices: one at a time per device, connecting on demand, retrying with
/// backoff. Cheap to clone (clones share the link and the per-device order), so each command can
/// run in its own task while the adapter goes on.
#[derive(Debug, Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    link: Box<dyn GattLink>,
    policy: RetryPolicy,
    /// One lock per device address, so its commands run one after the other.
    devices: std::sync::Mutex<HashMap<Address, Arc<tokio::sync::Mutex<()>>>>,
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// No Bluetooth: final.
    Unavailable(String),
    /// Connecting or subscribing failed: nothing was sent.
    Connect(String),
    /// The write failed: nothing was sent.
    Write(String),
    /// The write did not finish in time, or no answer came: it may have been done.
    Unsure(String),
    /// The device said it is busy: nothing was done.
    Busy,
}

impl Failure {
    fn retryable(&self, action: BotAction) -> bool {
        match self {
            Failure::Unavailable(_) => false,
            Failure::Connect(_) | Failure::Write(_) | Failure::Busy => true,
            Failure::Unsure(_) => action.repeatable(),
        }
    }

    fn reason(&self) -> String {
        match self {
            Failure::Unavailable(why) | Failure::Connect(why) | Failure::Write(why) | Failure::Unsure(why) => {
                why.clone()
            }
            Failure::Busy => "it stayed busy (status 3)".into(),
        }
    }
}

/// The connection state of one command's run.
struct Session<'a> {
    link: &'a dyn GattLink,
    policy: &'a RetryPolicy,
    address: Address,
    connected: bool,
}

impl Session<'_> {
    async fn ensure_connected(&mut self) -> Result<(), Failure> {
        if self.connected {
            return Ok(());
        }
        let p = self.policy;
        match tokio::time::timeout(p.connect_timeout, self.link.connect(self.address)).await {
            Err(_) => {
                return Err(Failure::Connect(format!("no connection within {}", secs(p.connect_timeout))));
            }
            Ok(Err(LinkError::Unavailable(why))) => return Err(Failure::Unavailable(why)),
            Ok(Err(LinkError::Failed(why))) => return Err(Failure::Connect(why)),
            Ok(Ok(())) => {}
        }
        self.connected = true;
        match tokio::time::timeout(p.io_timeout, self.link.subscribe(self.address, BOT_NOTIFY)).await {
            Err(_) => Err(Failure::Connect(format!("no subscription to its answers within {}", secs(p.io_timeout)))),
            Ok(Err(LinkError::Unavailable(why))) => Err(Failure::Unavailable(why)),
            Ok(Err(LinkError::Failed(why))) => Err(Failure::Connect(why)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Writes one request and waits for its answer.
    async fn exchange(&mut self, frame: &[u8]) -> Result<Vec<u8>, Failure> {
        self.ensure_connected().await?;
        let p = self.policy;
        match tokio::time::timeout(p.io_timeout, self.link.write(self.address, BOT_WRITE, frame, false)).await {
            Err(_) => return Err(Failure::Unsure(format!("the write did not finish within {}", secs(p.io_timeout)))),
            Ok(Err(LinkError::Unavailable(why))) => return Err(Failure::Unavailable(why)),
            Ok(Err(LinkError::Failed(why))) => return Err(Failure::Write(why)),
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout(p.answer_timeout, self.link.notification(self.address, BOT_NOTIFY)).await {
            Err(_) => Err(Failure::Unsure(format!("no answer within {}", secs(p.answer_timeout)))),
            Ok(Err(e)) => Err(Failure::Unsure(format!("no answer: {e}"))),
            Ok(Ok(answer)) => Ok(answer),
        }
    }

    /// Disconnects, ignoring failures (the device may be gone already).
    async fn close(&mut self) {
        self.connected = false;
        let _ = tokio::time::timeout(self.policy.io_timeout, self.link.disconnect(self.address)).await;
    }
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl Controller {
    /// A controller sending through `link`, with the default [`RetryPolicy`].
    pub fn new(link: Box<dyn GattLink>) -> Controller {
        Controller::with_policy(link, RetryPolicy::default())
    }

    /// A controller sending through `link`, trying as `policy` says.
    pub fn with_policy(link: Box<dyn GattLink>, policy: RetryPolicy) -> Controller {
        Controller { inner: Arc::new(Inner { link, policy, devices: std::sync::Mutex::new(HashMap::new()) }) }
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.inner.policy
    }

    /// Runs `request` on `target`, after any command still running on it: maps it to the
    /// device's requests (refusing, before connecting, what the device cannot do), connects,
    /// sends each request and reads each answer, retrying as the [`RetryPolicy`] allows, then
    /// disconnects. Returns the values to report as state, or why it failed.
    pub async fn execute(&self, target: &Target, request: &CommandRequest) -> Result<Values, ControlError> {
        let Kind::SwitchBotBot(bot) = &target.kind;
        let address = target.address;
        let name = format!("the SwitchBot Bot {address}");
        let actions = bot_actions(request, bot.mode).map_err(|why| ControlError::Refused(format!("{name}: {why}")))?;
        if bot.password_protected && bot.password.is_none() {
            return Err(ControlError::Refused(format!(
                "{name} is password protected: give the hub the password set in the SwitchBot app"
            )));
        }
        let mut frames = Vec::with_capacity(actions.len());
        for action in actions {
            let frame =
                action.frame(bot.password.as_ref()).map_err(|why| ControlError::Refused(format!("{name}: {why}")))?;
            frames.push((action, frame));
        }

        let lock = self.device_lock(address);
        let _turn = lock.lock().await;
        let mut session =
            Session { link: self.inner.link.as_ref(), policy: &self.inner.policy, address, connected: false };
        let mut values = Values::new();
        let mut result = Ok(());
        for (action, frame) in &frames {
            match self.run(&mut session, &name, *action, frame).await {
                Ok(answer) => match action {
                    BotAction::On => {
                        values.insert(BOT_STATE.to_owned(), Value::Bool(true));
                    }
                    // A press leaves the Bot off, as its advertisement will say.
                    BotAction::Off | BotAction::Press => {
                        values.insert(BOT_STATE.to_owned(), Value::Bool(false));
                    }
                    BotAction::Info => match parse_bot_info(&answer) {
                        Ok(v) => values.extend(v),
                        Err(why) => {
                            result =
                                Err(ControlError::Device(format!("{name} sent an answer that cannot be read: {why}")));
                        }
                    },
                },
                Err(e) => result = Err(e),
            }
            if let Err(e) = &result {
                // A refresh after a change that was done: the change is reported, not failed
                // (a failed command invites a retry, which would press again).
                if *action == BotAction::Info && !values.is_empty() {
                    tracing::warn!("BLE: {e}; reporting the change that was made");
                    result = Ok(());
                }
                break;
            }
        }
        if session.connected {
            session.close().await;
        }
        result.map(|()| values)
    }

    /// The lock that orders the commands of one device.
    fn device_lock(&self, address: Address) -> Arc<tokio::sync::Mutex<()>> {
        let mut devices = self.inner.devices.lock().unwrap_or_else(PoisonError::into_inner);
        devices.entry(address).or_default().clone()
    }

    /// Sends one request until it is answered, fails for good, or the attempts run out.
    async fn run(
        &self,
        session: &mut Session<'_>,
        name: &str,
        action: BotAction,
        frame: &[u8],
    ) -> Result<Vec<u8>, ControlError> {
        let policy = &self.inner.policy;
        let attempts = policy.attempts.max(1);
        let started = tokio::time::Instant::now();
        let mut attempt = 1;
        loop {
            let failure = match session.exchange(frame).await {
                Ok(answer) => match bot_answer(&answer) {
                    BotAnswer::Done => return Ok(answer),
                    BotAnswer::Busy => Failure::Busy,
                    BotAnswer::Refused(why) => {
                        return Err(ControlError::Device(format!("{name} did not {}: {why}", action.describe())));
                    }
                },
                Err(f) => f,
            };
            if let Failure::Unavailable(why) = &failure {
                return Err(ControlError::Unavailable(format!("cannot {} {name}: {why}", action.describe())));
            }
            session.close().await;
            let retryable = failure.retryable(action);
            if !retryable || attempt >= attempts {
                let why = failure.reason();
                let tries = if attempt == 1 {
                    "after 1 attempt".to_owned()
                } else {
                    format!("after {attempt} attempts over {}", secs(started.elapsed()))
                };
                return Err(match failure {
                    Failure::Busy => {
                        ControlError::Device(format!("{name} did not {}: {why}, {tries}", action.describe()))
                    }
                    Failure::Unsure(_) if !retryable => ControlError::Unreachable(format!(
                        "{name} did not confirm the {}: {why}; it may have pressed, and is not asked again so as not \
                         to press twice",
                        action.describe()
                    )),
                    _ => ControlError::Unreachable(format!("cannot {} {name}: {why}, {tries}", action.describe())),
                });
            }
            let delay = policy.jittered(attempt, random_unit());
            tracing::debug!(
                "BLE: cannot {} {name} (attempt {attempt} of {attempts}): {}; trying again in {}",
                action.describe(),
                failure.reason(),
                secs(delay)
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The standard text form of a 128-bit UUID (`cba20d00-224d-11e6-9fb8-0002a5d5c51b`), as the
/// manifest and messages write it.
pub fn uuid_text(uuid: u128) -> String {
    let h = format!("{uuid:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(feature = "bluez")]
mod bluez_link {
    //! [`GattLink`] with btleplug (BlueZ over D-Bus on Linux).

    use std::collections::HashMap;
    use std::fmt;
    use std::pin::Pin;
    use std::sync::{Arc, PoisonError};

    use btleplug::api::{Central as _, Characteristic, Manager as _, Peripheral as _, ValueNotification, WriteType};
    use btleplug::platform::{Adapter, Manager, Peripheral};
    use futures_util::{Stream, StreamExt};
    use tokio::sync::Mutex;

    use super::{GattLink, LinkError, LinkFuture, uuid_text};
    use crate::decode::Address;

    type Notifications = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;

    /// A connected device: its peripheral and, once subscribed, its notifications.
    struct Connection {
        peripheral: Peripheral,
        notifications: Mutex<Option<Notifications>>,
    }

    /// [`GattLink`] through the system's Bluetooth adapter with btleplug. It connects to devices
    /// the adapter has heard (the scanner keeps BlueZ hearing them).
    pub struct BluezLink {
        wanted: Option<String>,
        adapter: Mutex<Option<Adapter>>,
        connections: std::sync::Mutex<HashMap<Address, Arc<Connection>>>,
    }

    impl fmt::Debug for BluezLink {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("BluezLink").field("adapter", &self.wanted).finish_non_exhaustive()
        }
    }

    impl BluezLink {
        /// A link through the adapter named `adapter` (`hci0`), or the first.
        pub fn new(adapter: Option<String>) -> BluezLink {
            BluezLink { wanted: adapter, adapter: Mutex::new(None), connections: std::sync::Mutex::new(HashMap::new()) }
        }

        async fn adapter(&self) -> Result<Adapter, LinkError> {
            let mut cached = self.adapter.lock().await;
            if let Some(a) = cached.as_ref() {
                return Ok(a.clone());
            }
            let manager = Manager::new()
                .await
                .map_err(|e| LinkError::Unavailable(format!("the D-Bus system bus cannot be reached ({e})")))?;
            let adapters = manager
                .adapters()
                .await
                .map_err(|e| LinkError::Unavailable(format!("BlueZ does not answer on D-Bus ({e})")))?;
            let mut names = Vec::new();
            for a in adapters {
                let info = a.adapter_info().await.unwrap_or_default();
                let found = match self.wanted.as_deref() {
                    None => true,
                    Some(w) => info.split_whitespace().next() == Some(w) || info == w,
                };
                if found {
                    *cached = Some(a.clone());
                    return Ok(a);
                }
                names.push(info);
            }
            Err(LinkError::Unavailable(match &self.wanted {
                None => "no Bluetooth adapter found".into(),
                Some(w) => format!("no Bluetooth adapter `{w}`; the adapters are: {}", names.join(", ")),
            }))
        }

        fn connection(&self, address: Address) -> Result<Arc<Connection>, LinkError> {
            let connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
            connections.get(&address).cloned().ok_or_else(|| LinkError::Failed(format!("{address} is not connected")))
        }

        fn characteristic(peripheral: &Peripheral, uuid: u128) -> Result<Characteristic, LinkError> {
            peripheral
                .characteristics()
                .into_iter()
                .find(|c| c.uuid.as_u128() == uuid)
                .ok_or_else(|| LinkError::Failed(format!("it has no characteristic {}", uuid_text(uuid))))
        }

        async fn do_connect(&self, address: Address) -> Result<(), LinkError> {
            let adapter = self.adapter().await?;
            let peripherals =
                adapter.peripherals().await.map_err(|e| LinkError::Failed(format!("BlueZ lists no devices ({e})")))?;
            let peripheral =
                peripherals.into_iter().find(|p| p.address().into_inner() == address.0).ok_or_else(|| {
                    LinkError::Failed(format!("{address} has not been heard by the Bluetooth adapter lately"))
                })?;
            if !peripheral.is_connected().await.unwrap_or(false)
                && let Err(e) = peripheral.connect().await
            {
                // BlueZ may still hold the connection of an attempt that failed later on.
                let text = e.to_string();
                if !(text.contains("AlreadyConnected") || text.contains("Already Connected")) {
                    return Err(LinkError::Failed(format!("the connection failed ({text})")));
                }
            }
            peripheral
                .discover_services()
                .await
                .map_err(|e| LinkError::Failed(format!("its services cannot be read ({e})")))?;
            let connection = Arc::new(Connection { peripheral, notifications: Mutex::new(None) });
            self.connections.lock().unwrap_or_else(PoisonError::into_inner).insert(address, connection);
            Ok(())
        }

        async fn do_subscribe(&self, address: Address, uuid: u128) -> Result<(), LinkError> {
            let c = self.connection(address)?;
            let characteristic = Self::characteristic(&c.peripheral, uuid)?;
            let stream = c
                .peripheral
                .notifications()
                .await
                .map_err(|e| LinkError::Failed(format!("its notifications cannot be read ({e})")))?;
            *c.notifications.lock().await = Some(stream);
            c.peripheral
                .subscribe(&characteristic)
                .await
                .map_err(|e| LinkError::Failed(format!("the subscription to its answers failed ({e})")))
        }

        async fn do_write(&self, address: Address, uuid: u128, data: &[u8], response: bool) -> Result<(), LinkError> {
            let c = self.connection(address)?;
            let characteristic = Self::characteristic(&c.peripheral, uuid)?;
            let kind = if response { WriteType::WithResponse } else { WriteType::WithoutResponse };
            c.peripheral
                .write(&characteristic, data, kind)
                .await
                .map_err(|e| LinkError::Failed(format!("the write failed ({e})")))
        }

        async fn do_notification(&self, address: Address, uuid: u128) -> Result<Vec<u8>, LinkError> {
            let c = self.connection(address)?;
            let mut notifications = c.notifications.lock().await;
            let Some(stream) = notifications.as_mut() else {
                return Err(LinkError::Failed(format!("not subscribed to {}", uuid_text(uuid))));
            };
            while let Some(n) = stream.next().await {
                if n.uuid.as_u128() == uuid {
                    return Ok(n.value);
                }
            }
            Err(LinkError::Failed("the connection closed before the answer".into()))
        }

        async fn do_disconnect(&self, address: Address) -> Result<(), LinkError> {
            let removed = self.connections.lock().unwrap_or_else(PoisonError::into_inner).remove(&address);
            if let Some(c) = removed
                && c.peripheral.is_connected().await.unwrap_or(true)
            {
                c.peripheral
                    .disconnect()
                    .await
                    .map_err(|e| LinkError::Failed(format!("disconnecting failed ({e})")))?;
            }
            Ok(())
        }
    }

    impl GattLink for BluezLink {
        fn connect(&self, address: Address) -> LinkFuture<'_, ()> {
            Box::pin(self.do_connect(address))
        }

        fn subscribe(&self, address: Address, characteristic: u128) -> LinkFuture<'_, ()> {
            Box::pin(self.do_subscribe(address, characteristic))
        }

        fn write<'a>(
            &'a self,
            address: Address,
            characteristic: u128,
            data: &'a [u8],
            with_response: bool,
        ) -> LinkFuture<'a, ()> {
            Box::pin(self.do_write(address, characteristic, data, with_response))
        }

        fn notification(&self, address: Address, characteristic: u128) -> LinkFuture<'_, Vec<u8>> {
            Box::pin(self.do_notification(address, characteristic))
        }

        fn disconnect(&self, address: Address) -> LinkFuture<'_, ()> {
            Box::pin(self.do_disconnect(address))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    const BOT: Address = Address([0xC1, 0x2D, 0x3E, 0x4F, 0x50, 0x61]);
    const OTHER: Address = Address([0xC1, 0x2D, 0x3E, 0x4F, 0x50, 0x62]);

    fn req(json: &str) -> CommandRequest {
        serde_json::from_str(json).expect("request")
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn to_hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    // ---- the protocol -------------------------------------------------------------------------

    #[test]
    fn uuids_are_the_documented_ones() {
        assert_eq!(uuid_text(BOT_SERVICE), "cba20d00-224d-11e6-9fb8-0002a5d5c51b");
        assert_eq!(uuid_text(BOT_WRITE), "cba20002-224d-11e6-9fb8-0002a5d5c51b");
        assert_eq!(uuid_text(BOT_NOTIFY), "cba20003-224d-11e6-9fb8-0002a5d5c51b");
    }

    #[test]
    fn crc32_is_zlibs() {
        // The CRC-32/ISO-HDLC check value, and the password "1234" as a captured password-change
        // request of a Bot carries it (9B E3 E0 A3; "1235": EC E4 D0 35).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"1234"), 0x9BE3_E0A3);
        assert_eq!(crc32(b"1235"), 0xECE4_D035);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn every_command_maps_to_its_bytes() {
        let press = Some(BotMode::Press);
        let switch = Some(BotMode::Switch);
        let cases: &[(&str, Option<BotMode>, &[&str])] = &[
            (r#"{"set": {"state": true}}"#, switch, &["570101"]),
            (r#"{"set": {"state": false}}"#, switch, &["570102"]),
            (r#"{"set": {"state": true}}"#, press, &["570100"]),
            (r#"{"set": {"state": true}}"#, None, &["570101"]),
            (r#"{"set": {"state": false}}"#, None, &["570102"]),
            (r#"{"toggle": ["state"]}"#, press, &["570100"]),
            (r#"{"refresh": true}"#, switch, &["5702"]),
            (r#"{"refresh": ["battery"]}"#, press, &["5702"]),
            (r#"{"refresh": ["state", "mode"]}"#, None, &["5702"]),
            // A transition is ignored; a set and a refresh: the action, then the info.
            (r#"{"set": {"state": true}, "transition": 2}"#, switch, &["570101"]),
            (r#"{"set": {"state": false}, "refresh": true}"#, switch, &["570102", "5702"]),
        ];
        for (json, mode, expected) in cases {
            let frames = bot_commands(&req(json), *mode, None).expect(json);
            let frames: Vec<String> = frames.iter().map(|f| to_hex(f)).collect();
            assert_eq!(frames, *expected, "{json} in {mode:?}");
        }
    }

    #[test]
    fn every_command_maps_to_its_password_form() {
        let password = Secret::new("1234");
        let cases: &[(&str, Option<BotMode>, &str)] = &[
            (r#"{"set": {"state": true}}"#, Some(BotMode::Switch), "57119be3e0a301"),
            (r#"{"set": {"state": false}}"#, Some(BotMode::Switch), "57119be3e0a302"),
            (r#"{"set": {"state": true}}"#, Some(BotMode::Press), "57119be3e0a300"),
            (r#"{"refresh": true}"#, None, "57129be3e0a3"),
        ];
        for (json, mode, expected) in cases {
            let frames = bot_commands(&req(json), *mode, Some(&password)).expect(json);
            assert_eq!(frames.iter().map(|f| to_hex(f)).collect::<Vec<_>>(), [*expected], "{json}");
        }
        // A CRC with a leading zero byte keeps its four bytes.
        let frame = BotAction::On.frame(Some(&Secret::new("k"))).expect("frame");
        assert_eq!(frame.len(), 7);
        assert_eq!(frame[2..6], crc32(b"k").to_be_bytes());
        assert!(BotAction::On.frame(Some(&Secret::new(""))).expect_err("empty").contains("empty"));
        assert!(BotAction::On.frame(Some(&Secret::new("pässword"))).expect_err("non-ascii").contains("ASCII"));
    }

    #[test]
    fn what_a_bot_cannot_do_is_refused_with_why() {
        let press = Some(BotMode::Press);
        let switch = Some(BotMode::Switch);
        let cases: &[(&str, Option<BotMode>, &str)] = &[
            (r#"{"set": {"state": false}}"#, press, "a Bot in press mode cannot be turned off"),
            (r#"{"set": {"mode": "switch"}}"#, switch, "changed in the SwitchBot app"),
            (r#"{"set": {"battery": 50}}"#, switch, "cannot set `battery`; settable features are: state"),
            (r#"{"set": {"state": "on"}}"#, switch, "takes true or false, not text"),
            (r#"{"toggle": ["state"]}"#, switch, "needs its current state"),
            (r#"{"toggle": ["state"]}"#, None, "needs its current state"),
            (r#"{"toggle": ["mode"]}"#, press, "cannot toggle `mode`"),
            (r#"{"refresh": ["temperature"]}"#, switch, "cannot refresh `temperature`"),
            (r#"{}"#, switch, "asks nothing of the Bot"),
            (r#"{"refresh": false}"#, switch, "asks nothing of the Bot"),
            (r#"{"refresh": []}"#, switch, "asks nothing of the Bot"),
        ];
        for (json, mode, expected) in cases {
            let err = bot_actions(&req(json), *mode).expect_err(json);
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn modes_read_as_the_decoder_writes_them() {
        assert_eq!(BotMode::parse("press"), Some(BotMode::Press));
        assert_eq!(BotMode::parse("switch"), Some(BotMode::Switch));
        assert_eq!(BotMode::parse("Switch"), None);
        for m in [BotMode::Press, BotMode::Switch] {
            assert_eq!(BotMode::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn answers_are_read_by_status() {
        assert_eq!(bot_answer(&hex("01ff00")), BotAnswer::Done);
        assert_eq!(bot_answer(&hex("03")), BotAnswer::Busy);
        let refused = |b: &str| match bot_answer(&hex(b)) {
            BotAnswer::Refused(why) => why,
            other => panic!("{b}: {other:?}"),
        };
        // The documented answer of a Bot in switch mode to a press.
        assert!(refused("0548c0").contains("current mode"));
        assert!(refused("07").contains("password protected"));
        assert!(refused("08").contains("no password"));
        assert!(refused("09").contains("password is wrong"));
        assert!(refused("06").contains("battery"));
        assert!(refused("").contains("empty"));
        assert!(refused("ee").contains("0xEE"));
    }

    #[test]
    fn the_info_answer_gives_battery_mode_and_state() {
        // The documented example: 100 %, firmware 4.4, press mode, service data 48 00.
        let v = parse_bot_info(&hex("01 64 2c 64 0000 00a1 00 00 00 48 00")).expect("info");
        assert_eq!(
            v,
            Values::from([
                (BOT_BATTERY.into(), Value::Number(100.0)),
                (BOT_MODE.into(), Value::Text("press".into())),
                (BOT_STATE.into(), Value::Bool(false)),
            ])
        );
        // Built from the table: 90 %, switch mode (0x10), service data C8 80 (password bit,
        // switch mode, on).
        let v = parse_bot_info(&hex("01 5a 2c 64 0000 00a1 00 10 00 c8 80")).expect("info");
        assert_eq!(v.get(BOT_STATE), Some(&Value::Bool(true)));
        assert_eq!(v.get(BOT_MODE), Some(&Value::Text("switch".into())));
        // Switch mode, off (bit 6 set).
        let v = parse_bot_info(&hex("01 5a 2c 64 0000 00a1 00 10 00 48 c0")).expect("info");
        assert_eq!(v.get(BOT_STATE), Some(&Value::Bool(false)));
        // Without the service data bytes: no state; a battery over 100 % is dropped; an unknown
        // act mode gives no mode.
        let v = parse_bot_info(&hex("01 ff 2c 64 0000 00a1 00 20 00")).expect("info");
        assert!(v.is_empty(), "{v:?}");
        // Bytes 11-12 that are not a Bot's service data are not read.
        let v = parse_bot_info(&hex("01 64 2c 64 0000 00a1 00 10 00 54 80")).expect("info");
        assert_eq!(v.get(BOT_STATE), None);
        assert!(parse_bot_info(&hex("01 64 2c")).expect_err("short").contains("needs at least 10"));
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<Duration> = (1..=6).map(|a| p.delay(a)).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 4000, 4000].map(Duration::from_millis));
        assert_eq!(p.delay(0), Duration::from_millis(500));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(4));
        for unit in [0.0, 0.3, 0.999, 1.0] {
            let d = p.jittered(3, unit);
            assert!(d >= Duration::from_millis(1600) && d <= Duration::from_millis(2400), "{d:?}");
        }
        let odd = RetryPolicy { jitter: f64::NAN, max_delay: Duration::MAX, ..RetryPolicy::default() };
        assert_eq!(odd.jittered(2, 0.5), Duration::from_secs(1));
        let huge = RetryPolicy { jitter: 5.0, first_delay: Duration::MAX, max_delay: Duration::MAX, ..odd };
        let _ = huge.jittered(40, 1.0);
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn random_input_never_panics() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let keys = ["state", "mode", "battery", "x", ""];
        let values = [
            Value::Bool(true),
            Value::Bool(false),
            Value::Number(1.0),
            Value::Text("press".into()),
            Value::List(vec![]),
        ];
        let modes = [None, Some(BotMode::Press), Some(BotMode::Switch)];
        for _ in 0..3000 {
            let bytes: Vec<u8> = (0..next() % 20).map(|_| next() as u8).collect();
            let _ = bot_answer(&bytes);
            let _ = parse_bot_info(&bytes);
            let mut r = CommandRequest::default();
            for _ in 0..next() % 3 {
                r.set.insert(
                    keys[(next() % 5) as usize].into(),
                    values[(next() % values.len() as u64) as usize].clone(),
                );
            }
            for _ in 0..next() % 2 {
                r.toggle.push(keys[(next() % 5) as usize].into());
            }
            r.refresh = match next() % 4 {
                0 => None,
                1 => Some(Refresh::All(next() % 2 == 0)),
                _ => Some(Refresh::Features((0..next() % 3).map(|_| keys[(next() % 5) as usize].into()).collect())),
            };
            let password = (next() % 2 == 0).then(|| Secret::new(String::from_utf8_lossy(&bytes).into_owned()));
            let _ = bot_commands(&r, modes[(next() % 3) as usize], password.as_ref());
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let t = Target::bot(
            BOT,
            BotSettings { mode: None, password_protected: true, password: Some(Secret::new("hunter22")) },
        );
        let shown = format!("{t:?}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    // ---- the controller -----------------------------------------------------------------------

    /// What the fake link does.
    #[derive(Debug, Default)]
    struct Script {
        /// Connections that fail before one succeeds.
        fail_connects: u32,
        /// Writes that fail before one succeeds.
        fail_writes: u32,
        /// Every connection fails with "no Bluetooth".
        unavailable: bool,
        /// How long a connection takes.
        connect_takes: Duration,
        /// The answers to writes, in order; `None`: no answer. When empty: `01`.
        answers: VecDeque<Option<Vec<u8>>>,
    }

    #[derive(Debug)]
    struct FakeState {
        script: Script,
        start: tokio::time::Instant,
        log: Vec<String>,
        /// The answer to the last write, until read.
        pending: Option<Vec<u8>>,
    }

    /// A scripted link that logs each call with the (paused) time since the start, in ms.
    #[derive(Debug, Clone)]
    struct Fake(Arc<Mutex<FakeState>>);

    impl Fake {
        fn new(script: Script) -> Fake {
            Fake(Arc::new(Mutex::new(FakeState {
                script,
                start: tokio::time::Instant::now(),
                log: Vec::new(),
                pending: None,
            })))
        }

        fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }

        fn note(&self, what: String) {
            let mut s = self.state();
            let at = s.start.elapsed().as_millis();
            s.log.push(format!("{at} {what}"));
        }

        fn log(&self) -> Vec<String> {
            self.state().log.clone()
        }

        fn times_of(&self, what: &str) -> Vec<u128> {
            self.log()
                .iter()
                .filter_map(|l| l.split_once(' ').filter(|(_, w)| w.starts_with(what)))
                .filter_map(|(at, _)| at.parse().ok())
                .collect()
        }
    }

    impl GattLink for Fake {
        fn connect(&self, address: Address) -> LinkFuture<'_, ()> {
            Box::pin(async move {
                let takes = self.state().script.connect_takes;
                tokio::time::sleep(takes).await;
                self.note(format!("connect {address}"));
                let mut s = self.state();
                if s.script.unavailable {
                    return Err(LinkError::Unavailable("no Bluetooth adapter found".into()));
                }
                if s.script.fail_connects > 0 {
                    s.script.fail_connects -= 1;
                    return Err(LinkError::Failed("le-connection-abort-by-local".into()));
                }
                Ok(())
            })
        }

        fn subscribe(&self, address: Address, characteristic: u128) -> LinkFuture<'_, ()> {
            Box::pin(async move {
                self.note(format!("subscribe {address} {}", uuid_text(characteristic)));
                Ok(())
            })
        }

        fn write<'a>(
            &'a self,
            address: Address,
            characteristic: u128,
            data: &'a [u8],
            with_response: bool,
        ) -> LinkFuture<'a, ()> {
            Box::pin(async move {
                assert_eq!(characteristic, BOT_WRITE);
                assert!(!with_response);
                self.note(format!("write {address} {}", to_hex(data)));
                let mut s = self.state();
                if s.script.fail_writes > 0 {
                    s.script.fail_writes -= 1;
                    return Err(LinkError::Failed("the write failed".into()));
                }
                s.pending = s.script.answers.pop_front().unwrap_or(Some(vec![0x01]));
                Ok(())
            })
        }

        fn notification(&self, _address: Address, characteristic: u128) -> LinkFuture<'_, Vec<u8>> {
            Box::pin(async move {
                assert_eq!(characteristic, BOT_NOTIFY);
                let answer = self.state().pending.take();
                match answer {
                    Some(a) => Ok(a),
                    None => std::future::pending().await,
                }
            })
        }

        fn disconnect(&self, address: Address) -> LinkFuture<'_, ()> {
            Box::pin(async move {
                self.note(format!("disconnect {address}"));
                Ok(())
            })
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { jitter: 0.0, ..RetryPolicy::default() }
    }

    fn controller(script: Script) -> (Controller, Fake) {
        let fake = Fake::new(script);
        (Controller::with_policy(Box::new(fake.clone()), policy()), fake)
    }

    fn bot(mode: Option<BotMode>) -> Target {
        Target::bot(BOT, BotSettings { mode, ..BotSettings::default() })
    }

    fn state(on: bool) -> Values {
        Values::from([(BOT_STATE.into(), Value::Bool(on))])
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_connects_writes_reads_the_answer_and_disconnects() {
        let (c, fake) = controller(Script::default());
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(true)));
        assert_eq!(
            fake.log(),
            [
                "0 connect C1:2D:3E:4F:50:61",
                "0 subscribe C1:2D:3E:4F:50:61 cba20003-224d-11e6-9fb8-0002a5d5c51b",
                "0 write C1:2D:3E:4F:50:61 570101",
                "0 disconnect C1:2D:3E:4F:50:61",
            ]
        );
        // Off, and a press (which leaves the Bot off).
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": false}}"#)).await;
        assert_eq!(r, Ok(state(false)));
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(false)));
        assert_eq!(fake.times_of("write").len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_and_a_refresh_share_one_connection() {
        let fake = Fake::new(Script {
            answers: VecDeque::from([Some(vec![0x01]), Some(hex("01 5a 2c 64 0000 00a1 00 10 00 48 80"))]),
            ..Script::default()
        });
        let c = Controller::with_policy(Box::new(fake.clone()), policy());
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}, "refresh": true}"#)).await;
        assert_eq!(
            r,
            Ok(Values::from([
                (BOT_BATTERY.into(), Value::Number(90.0)),
                (BOT_MODE.into(), Value::Text("switch".into())),
                (BOT_STATE.into(), Value::Bool(true)),
            ]))
        );
        assert_eq!(fake.times_of("connect").len(), 1);
        assert_eq!(fake.times_of("write").len(), 2);
        assert_eq!(fake.times_of("disconnect").len(), 1);
        // An info answer that cannot be read fails the command.
        let fake = Fake::new(Script { answers: VecDeque::from([Some(vec![0x01, 0x64])]), ..Script::default() });
        let c = Controller::with_policy(Box::new(fake), policy());
        let r = c.execute(&bot(None), &req(r#"{"refresh": true}"#)).await;
        assert!(matches!(&r, Err(ControlError::Device(m)) if m.contains("cannot be read")), "{r:?}");
        // A refresh that fails after a change was made: the change is reported.
        let fake = Fake::new(Script { answers: VecDeque::from([Some(vec![0x01]), None]), ..Script::default() });
        let c = Controller::with_policy(Box::new(fake.clone()), RetryPolicy { attempts: 2, ..policy() });
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}, "refresh": true}"#)).await;
        assert_eq!(r, Ok(state(false)));
        assert_eq!(fake.times_of("write"), [0, 0, 5500]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_connections_are_retried_with_backoff() {
        let (c, fake) = controller(Script { fail_connects: 3, ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(true)));
        assert_eq!(fake.times_of("connect"), [0, 500, 1500, 3500]);
        assert_eq!(fake.times_of("write"), [3500]);
        // Each failed connection is cleaned up before the next.
        assert_eq!(fake.times_of("disconnect"), [0, 500, 1500, 3500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_never_connects_is_unreachable_after_the_last_attempt() {
        let (c, fake) = controller(Script { fail_connects: 100, ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(fake.times_of("connect"), [0, 500, 1500, 3500, 7500]);
        assert!(fake.times_of("write").is_empty());
        let e = r.expect_err("unreachable");
        assert!(e.is_unreachable());
        assert_eq!(e.code(), "unreachable");
        assert_eq!(
            e.to_string(),
            "cannot turn on the SwitchBot Bot C1:2D:3E:4F:50:61: le-connection-abort-by-local, after 5 attempts \
             over 7.5 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connection_timeouts_count_as_failed_attempts() {
        let fake = Fake::new(Script { connect_takes: Duration::from_secs(60), ..Script::default() });
        let p = RetryPolicy { attempts: 2, connect_timeout: Duration::from_secs(10), ..policy() };
        let c = Controller::with_policy(Box::new(fake.clone()), p);
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        let e = r.expect_err("timeout");
        assert!(e.to_string().contains("no connection within 10 s, after 2 attempts over 20.5 s"), "{e}");
        assert_eq!(fake.times_of("disconnect"), [10000, 20500]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_writes_are_retried_on_a_fresh_connection() {
        let (c, fake) = controller(Script { fail_writes: 2, ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(false)));
        assert_eq!(fake.times_of("write"), [0, 500, 1500]);
        assert_eq!(fake.times_of("connect"), [0, 500, 1500]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_switch_is_asked_again_but_a_press_is_not() {
        let (c, fake) = controller(Script { answers: VecDeque::from([None, Some(vec![0x01])]), ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": false}}"#)).await;
        assert_eq!(r, Ok(state(false)));
        assert_eq!(fake.times_of("write"), [0, 5500]);

        let (c, fake) = controller(Script { answers: VecDeque::from([None, Some(vec![0x01])]), ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(fake.times_of("write"), [0]);
        let e = r.expect_err("no answer");
        assert!(e.is_unreachable());
        assert!(e.to_string().contains("did not confirm the press: no answer within 5 s; it may have pressed"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_bot_is_asked_again_and_a_refusal_is_final() {
        let (c, fake) = controller(Script { answers: VecDeque::from([Some(vec![0x03])]), ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(false)));
        assert_eq!(fake.times_of("write"), [0, 500]);

        let (c, fake) = controller(Script { answers: vec![Some(vec![0x03]); 5].into(), ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(fake.times_of("write").len(), 5);
        let e = r.expect_err("busy");
        assert_eq!(e.code(), "device_error");
        assert!(e.to_string().contains("stayed busy"), "{e}");

        let (c, fake) = controller(Script { answers: VecDeque::from([Some(vec![0x06])]), ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(fake.times_of("write"), [0]);
        assert_eq!(
            r.expect_err("battery").to_string(),
            "the SwitchBot Bot C1:2D:3E:4F:50:61 did not turn on: its battery is too low (status 6)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_bluetooth_nothing_is_retried() {
        let (c, fake) = controller(Script { unavailable: true, ..Script::default() });
        let r = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await;
        let e = r.expect_err("unavailable");
        assert_eq!(e.code(), "no_bluetooth");
        assert!(!e.is_unreachable());
        assert_eq!(fake.times_of("connect"), [0]);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_commands_never_connect() {
        let (c, fake) = controller(Script::default());
        let r = c.execute(&bot(Some(BotMode::Press)), &req(r#"{"set": {"state": false}}"#)).await;
        let e = r.expect_err("refused");
        assert_eq!(e.code(), "refused");
        assert!(e.to_string().starts_with("the SwitchBot Bot C1:2D:3E:4F:50:61: a Bot in press mode"), "{e}");
        let r = c.execute(&bot(None), &req(r#"{"set": {"mode": "press"}}"#)).await;
        assert_eq!(r.expect_err("mode").code(), "refused");
        assert!(fake.log().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn password_protected_bots() {
        // Without its password: refused before connecting.
        let (c, fake) = controller(Script::default());
        let locked = |password: Option<&str>| {
            Target::bot(
                BOT,
                BotSettings {
                    mode: Some(BotMode::Switch),
                    password_protected: true,
                    password: password.map(Secret::new),
                },
            )
        };
        let r = c.execute(&locked(None), &req(r#"{"set": {"state": true}}"#)).await;
        let e = r.expect_err("no password");
        assert_eq!(e.code(), "refused");
        assert!(e.to_string().contains("is password protected: give the hub the password"), "{e}");
        assert!(fake.log().is_empty());

        // With it: the password form.
        let r = c.execute(&locked(Some("1234")), &req(r#"{"set": {"state": true}}"#)).await;
        assert_eq!(r, Ok(state(true)));
        assert!(fake.log().iter().any(|l| l.ends_with("write C1:2D:3E:4F:50:61 57119be3e0a301")), "{:?}", fake.log());

        // A wrong password, and a Bot whose protection the advertisement did not show: final.
        let (c, fake) = controller(Script { answers: VecDeque::from([Some(vec![0x09])]), ..Script::default() });
        let e = c.execute(&locked(Some("4321")), &req(r#"{"set": {"state": true}}"#)).await.expect_err("wrong");
        assert!(e.to_string().contains("its password is wrong"), "{e}");
        assert_eq!(fake.times_of("write").len(), 1);
        let (c, _) = controller(Script { answers: VecDeque::from([Some(vec![0x07])]), ..Script::default() });
        let e = c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await.expect_err("locked");
        assert!(e.to_string().contains("it is password protected"), "{e}");
        // Messages never carry the password.
        assert!(!e.to_string().contains("1234"));
    }

    #[tokio::test(start_paused = true)]
    async fn commands_to_one_device_run_one_after_the_other() {
        let fake = Fake::new(Script { connect_takes: Duration::from_millis(100), ..Script::default() });
        let c = Controller::with_policy(Box::new(fake.clone()), policy());
        let on = req(r#"{"set": {"state": true}}"#);
        let off = req(r#"{"set": {"state": false}}"#);
        let target = bot(Some(BotMode::Switch));
        let (a, b) = tokio::join!(c.execute(&target, &on), c.execute(&target, &off));
        assert_eq!((a, b), (Ok(state(true)), Ok(state(false))));
        let steps: Vec<String> = fake.log().iter().map(|l| l.split(' ').skip(1).take(1).collect::<String>()).collect();
        assert_eq!(
            steps,
            ["connect", "subscribe", "write", "disconnect", "connect", "subscribe", "write", "disconnect"]
        );
        assert_eq!(fake.times_of("connect"), [100, 200]);

        // Two devices go side by side.
        let fake = Fake::new(Script { connect_takes: Duration::from_millis(100), ..Script::default() });
        let c = Controller::with_policy(Box::new(fake.clone()), policy());
        let other = Target::bot(OTHER, BotSettings { mode: Some(BotMode::Switch), ..BotSettings::default() });
        let (a, b) = tokio::join!(c.execute(&target, &on), c.execute(&other, &on));
        assert_eq!((a, b), (Ok(state(true)), Ok(state(true))));
        assert_eq!(fake.times_of("connect"), [100, 100]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_controller_runs_in_spawned_tasks() {
        let (c, _) = controller(Script::default());
        let task = {
            let c = c.clone();
            tokio::spawn(
                async move { c.execute(&bot(Some(BotMode::Switch)), &req(r#"{"set": {"state": true}}"#)).await },
            )
        };
        assert_eq!(task.await.expect("joined"), Ok(state(true)));
        assert_eq!(c.policy().attempts, 5);
    }
}
