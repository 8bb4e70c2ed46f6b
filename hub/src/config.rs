//! `hearth.toml` to a typed configuration, with errors that name the file, line, column and the
//! nearest valid key.
//!
//! Every key is optional. The file holds what the machine needs to start (ports, paths, adapters,
//! the cloud link); everything a user edits in the UI lives in the database.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the hub looks for its configuration when `--config` is not given, in order.
pub const DEFAULT_PATHS: &[&str] = &["hearth.toml", "/etc/hearth/hearth.toml"];

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database lives (`./data` unless set here or with `--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// The web UI and API.
    pub http: HttpConfig,
    /// The built-in MQTT broker, or the external one adapters use instead.
    pub mqtt: MqttConfig,
    /// Logging.
    pub log: LogConfig,
    /// Built-in adapters, one section each.
    pub adapters: AdaptersConfig,
    /// Where the home is and its time zone, for time and sun triggers.
    pub location: LocationConfig,
    /// The discovery inbox.
    pub inbox: InboxConfig,
    /// Hearth's devices in Home Assistant (MQTT discovery).
    pub home_assistant: HomeAssistantConfig,
    /// Adapter plugins: out-of-process adapters in any language.
    pub plugins: PluginsConfig,
    /// The optional cloud link.
    pub cloud: CloudConfig,
    /// How long history is kept, its aggregates, and the database's disk budget.
    pub history: HistoryConfig,
    /// Scheduled backups.
    pub backup: BackupConfig,
}

/// `[history]`: how long each resolution of history is kept, and the database's disk budget.
///
/// Every state change is kept raw for `raw_days`; numbers and on/off values are also rolled up
/// into 5-minute and hourly aggregates (count, min, max, mean), kept for `five_minute_days` and
/// `hourly_days`. Per capability (`[history.capabilities.power]`) or per device or device feature
/// (`[history.devices."zigbee2mqtt:0x00158d0001a2b3c4"]`, `[history.devices."demo:plug/power"]`)
/// any of the three can be set differently; a device rule wins over a capability rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Days every change is kept as it happened.
    pub raw_days: u32,
    /// Days the 5-minute aggregates are kept.
    pub five_minute_days: u32,
    /// Days the hourly aggregates are kept.
    pub hourly_days: u32,
    /// The most the database may take on disk, in MB (0: no budget). When it is reached, the
    /// oldest raw history goes first; current state is never removed.
    pub max_db_mb: u64,
    /// Rules per capability (`power`, `temperature`, ...).
    pub capabilities: std::collections::BTreeMap<String, KeepRule>,
    /// Rules per device id, or per `device/feature`.
    pub devices: std::collections::BTreeMap<String, KeepRule>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        // A Raspberry Pi's SD card: ten days of every change, three months of 5-minute and two
        // years of hourly figures, and the database within 512 MB.
        HistoryConfig {
            raw_days: 10,
            five_minute_days: 90,
            hourly_days: 730,
            max_db_mb: 512,
            capabilities: Default::default(),
            devices: Default::default(),
        }
    }
}

/// A retention rule for some history; what it leaves out is the general setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeepRule {
    /// Days raw history is kept.
    pub raw_days: Option<u32>,
    /// Days 5-minute aggregates are kept.
    pub five_minute_days: Option<u32>,
    /// Days hourly aggregates are kept.
    pub hourly_days: Option<u32>,
}

impl HistoryConfig {
    fn validate(&self) -> Result<(), String> {
        for c in self.capabilities.keys() {
            let known: hearth_sdk::Capability =
                serde_json::from_value(serde_json::json!(c)).unwrap_or(hearth_sdk::Capability::Other);
            if known == hearth_sdk::Capability::Other && c != "other" {
                return Err(format!(
                    "[history.capabilities.{c}]: `{c}` is not a capability of the device model (see adapters/sdk/MODEL.md)"
                ));
            }
        }
        for d in self.devices.keys() {
            if hearth_sdk::DeviceId::parse(d).is_none() || d.ends_with('/') {
                return Err(format!(
                    "[history.devices.\"{d}\"]: name a device by its id (`adapter:device`), or one feature as `adapter:device/feature`"
                ));
            }
        }
        if self.max_db_mb != 0 && self.max_db_mb < 4 {
            return Err(format!(
                "[history] max_db_mb = {}: the database needs at least 4 MB (or 0 for no budget)",
                self.max_db_mb
            ));
        }
        Ok(())
    }
}

/// `[cloud]`: the optional link to a cloud MQTT broker. Off by default; the hub never needs it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudConfig {
    /// Whether the link runs.
    pub enabled: bool,
    /// `mqtt` (any MQTT 5 broker: EMQX, Mosquitto, HiveMQ) or `alink` (Alibaba Cloud IoT).
    pub profile: CloudProfile,
    /// The broker: `mqtts://host:8883` (TLS), or `mqtt://host:1883` (plain, only to this machine
    /// unless `allow_plaintext`).
    pub url: String,
    /// TLS files (`[cloud.tls]`); the system's roots when absent. The broker's certificate and
    /// host name are always verified.
    pub tls: Option<TlsFiles>,
    /// Allows `mqtt://` to another machine: the link, its password and the home's data then
    /// travel in clear. Off by default.
    pub allow_plaintext: bool,
    /// User name at the broker.
    pub username: Option<String>,
    /// Password or token at the broker. Never logged.
    pub password: Option<String>,
    /// This hub's id: its topics are `<topic_prefix>/<hub_id>/...`, and hubs on one broker are
    /// kept apart by it.
    pub hub_id: String,
    /// The first level of every topic.
    pub topic_prefix: String,
    /// Whether commands from the cloud are carried out (off by default).
    pub accept_commands: bool,
    /// What is shared (`[cloud.share]`); everything when empty.
    pub share: ShareConfig,
    /// The most messages the outbox keeps while the link is down (see `cloud/outbox.rs`).
    pub outbox_max: u64,
    /// Messages per second sent from the backlog after a reconnect.
    pub drain_per_sec: u32,
    /// Alibaba Cloud IoT (`[cloud.alink]`), for `profile = "alink"`.
    pub alink: Option<AlinkConfig>,
}

impl std::fmt::Debug for CloudConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudConfig")
            .field("enabled", &self.enabled)
            .field("profile", &self.profile)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("hub_id", &self.hub_id)
            .finish_non_exhaustive()
    }
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            enabled: false,
            profile: CloudProfile::Mqtt,
            url: String::new(),
            tls: None,
            allow_plaintext: false,
            username: None,
            password: None,
            hub_id: String::new(),
            topic_prefix: "hearth".into(),
            accept_commands: false,
            share: ShareConfig::default(),
            outbox_max: 100_000,
            drain_per_sec: 100,
            alink: None,
        }
    }
}

/// The cloud's protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudProfile {
    /// Any MQTT 5 broker, with Hearth's topics and the device model's JSON.
    #[default]
    Mqtt,
    /// Alibaba Cloud IoT's Alink, the hub as a gateway.
    Alink,
}

/// `[cloud.share]`: a device is shared when it is in one of `areas` or is one of `devices` (or
/// both lists are empty); of a shared device, the features of `capabilities` (or all when empty).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareConfig {
    /// Area ids.
    pub areas: Vec<String>,
    /// Device ids.
    pub devices: Vec<String>,
    /// Capabilities (`on_off`, `temperature`).
    pub capabilities: Vec<String>,
}

/// `[cloud.alink]`: the gateway's device triple, and the sub-devices' (`[cloud.alink.devices]`).
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlinkConfig {
    /// The gateway's product key.
    pub product_key: String,
    /// The gateway's device name.
    pub device_name: String,
    /// The gateway's device secret. Never logged.
    pub device_secret: String,
    /// Each shared Hearth device's sub-device triple at Alibaba, by Hearth device id.
    pub devices: std::collections::BTreeMap<String, AlinkDevice>,
}

impl std::fmt::Debug for AlinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlinkConfig")
            .field("product_key", &self.product_key)
            .field("device_name", &self.device_name)
            .field("devices", &self.devices.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A sub-device's triple at Alibaba Cloud IoT.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlinkDevice {
    /// Its product key.
    pub product_key: String,
    /// Its device name.
    pub device_name: String,
    /// Its device secret. Never logged.
    pub device_secret: String,
}

impl std::fmt::Debug for AlinkDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlinkDevice")
            .field("product_key", &self.product_key)
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

impl CloudConfig {
    /// Host, port and whether TLS is on, from `url`; the error says what a URL looks like.
    pub fn endpoint(&self) -> Result<(String, u16, bool), String> {
        let (tls, rest, default_port) = if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r, 8883)
        } else if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r, 1883)
        } else {
            return Err(format!(
                "[cloud] url = {:?} is not a broker URL: write mqtts://host:8883 (TLS) or mqtt://host:1883",
                self.url
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                let port =
                    p.parse().map_err(|_| format!("[cloud] url: the port `{p}` is not a number from 1 to 65535"))?;
                (h.trim_start_matches('[').trim_end_matches(']').to_owned(), port)
            }
            _ => (rest.to_owned(), default_port),
        };
        if host.is_empty() {
            return Err("[cloud] url names no host".into());
        }
        Ok((host, port, tls))
    }

    fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        let (host, _, tls) = self.endpoint()?;
        let local = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !tls && !local && !self.allow_plaintext {
            return Err(format!(
                "[cloud] url = {:?} sends the home's data and the broker password in clear: use mqtts:// (TLS), or set allow_plaintext = true if you really mean it",
                self.url
            ));
        }
        if self.hub_id.is_empty() || !self.hub_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!(
                "[cloud] hub_id = {:?}: give this hub an id of letters, digits, `-` and `_` (it is part of every topic, and keeps hubs on one broker apart)",
                self.hub_id
            ));
        }
        if self.topic_prefix.is_empty() || self.topic_prefix.contains(['+', '#']) {
            return Err("[cloud] topic_prefix must not be empty or hold `+` or `#`".into());
        }
        for c in &self.share.capabilities {
            let known: hearth_sdk::Capability =
                serde_json::from_value(serde_json::json!(c)).unwrap_or(hearth_sdk::Capability::Other);
            if known == hearth_sdk::Capability::Other && c != "other" {
                return Err(format!(
                    "[cloud.share] capabilities: `{c}` is not a capability of the device model (see adapters/sdk/MODEL.md)"
                ));
            }
        }
        if self.drain_per_sec == 0 {
            return Err("[cloud] drain_per_sec must be at least 1".into());
        }
        if self.outbox_max < 100 {
            return Err("[cloud] outbox_max must be at least 100".into());
        }
        if self.profile == CloudProfile::Alink {
            let Some(a) = &self.alink else {
                return Err(
                    "[cloud] profile = \"alink\" needs [cloud.alink] with product_key, device_name and device_secret"
                        .into(),
                );
            };
            // The device secrets may be sealed in the hub instead (`hearth secret set cloud ...`).
            if a.product_key.is_empty() || a.device_name.is_empty() {
                return Err(
                    "[cloud.alink] needs product_key, device_name and device_secret (the gateway's triple)".into()
                );
            }
        }
        Ok(())
    }
}

/// `[backup]`: the hub's scheduled backups (`hub/src/backup.rs` describes the archive).
///
/// On by default: a daily snapshot costs seconds of disk reading once a day, and protects the
/// home against a mistake, a bad upgrade or a damaged database file. The copies are on the same
/// disk unless `dir` points elsewhere (a USB stick, a network share), so they do not protect
/// against the SD card failing; `keep` copies take at most `keep` times the database's size.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Whether the hub makes backups by itself.
    pub enabled: bool,
    /// Hours between backups (fractions allowed, from one minute).
    pub interval_hours: f64,
    /// How many of its own backups the hub keeps; older ones are removed (never other files).
    pub keep: u32,
    /// Where they go (`<data_dir>/backups` when absent).
    pub dir: Option<PathBuf>,
    /// A file whose first line is the passphrase to encrypt them with (not encrypted when absent).
    pub passphrase_file: Option<PathBuf>,
    /// When the database is found damaged at start, restore the newest of these backups (that
    /// verifies) instead of starting empty. The damaged file is kept either way.
    pub restore_on_damage: bool,
}

impl Default for BackupConfig {
    fn default() -> Self {
        // Restoring the last backup loses at most a day, where starting empty loses the home.
        BackupConfig {
            enabled: true,
            interval_hours: 24.0,
            keep: 7,
            dir: None,
            passphrase_file: None,
            restore_on_damage: true,
        }
    }
}

impl BackupConfig {
    fn validate(&self) -> Result<(), String> {
        if !self.interval_hours.is_finite() || !(1.0 / 60.0..=8760.0).contains(&self.interval_hours) {
            return Err(format!(
                "[backup] interval_hours = {} must be from one minute (0.0167) to a year (8760)",
                self.interval_hours
            ));
        }
        if !(1..=1000).contains(&self.keep) {
            return Err(format!(
                "[backup] keep = {} must be from 1 to 1000 (turn backups off with enabled = false)",
                self.keep
            ));
        }
        Ok(())
    }
}

/// `[plugins]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// The plugins directory: one directory per plugin, each with its `plugin.toml`
    /// (`<data_dir>/plugins` when absent).
    pub dir: Option<PathBuf>,
}

/// `[home_assistant]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantConfig {
    /// Publish every device on the MQTT broker in Home Assistant's discovery format, with its
    /// state and a command topic (off by default).
    pub publish: bool,
    /// Home Assistant's discovery prefix.
    pub prefix: String,
    /// The base of Hearth's state and command topics.
    pub base_topic: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        HomeAssistantConfig { publish: false, prefix: "homeassistant".into(), base_topic: "hearth".into() }
    }
}

/// `[inbox]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxConfig {
    /// Adapters (`"demo"`), or kinds of an adapter's finds (`"ble:bthome"`), that become devices
    /// without asking; none by default.
    pub auto_accept: Vec<String>,
}

/// `[location]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocationConfig {
    /// Degrees north (negative south); sun triggers need it.
    pub latitude: Option<f64>,
    /// Degrees east (negative west); sun triggers need it.
    pub longitude: Option<f64>,
    /// IANA time zone (`Europe/Berlin`); the system's (`/etc/localtime`) when absent.
    pub timezone: Option<String>,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the web UI and API; the LAN by default, so phones can reach it.
    pub listen: SocketAddr,
    /// How long a login session lasts, in seconds (30 days).
    pub session_ttl_secs: u64,
    /// Mark the session cookie `Secure` on every response, for a hub served over TLS (a reverse
    /// proxy's `X-Forwarded-Proto: https` does the same per request).
    pub secure_cookies: bool,
    /// Reverse proxies (addresses or networks like `10.0.0.0/8`) whose `X-Forwarded-For` names
    /// the client; from any other peer the header is ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// Failed logins of one account within the window that lock it.
    pub login_max_failures: u32,
    /// Failed logins from one client address within the window that lock the address.
    pub login_ip_max_failures: u32,
    /// The window failures are counted in, in seconds.
    pub login_window_secs: u64,
    /// The first lockout, in seconds; each further one doubles it.
    pub login_lockout_secs: u64,
    /// The longest lockout, in seconds: lockouts always expire.
    pub login_lockout_max_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            session_ttl_secs: 30 * 86_400,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            login_max_failures: 5,
            login_ip_max_failures: 20,
            login_window_secs: 15 * 60,
            login_lockout_secs: 60,
            login_lockout_max_secs: 15 * 60,
        }
    }
}

/// An address or a network (`192.168.1.2`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The address (host bits beyond the prefix are ignored).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(a: [u8; 16], prefix: u8) -> u128 {
            let v = u128::from_be_bytes(a);
            if prefix == 0 { 0 } else { v >> (128 - u32::from(prefix)) }
        }
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                bits(n.to_ipv6_mapped().octets(), self.prefix + 96)
                    == bits(a.to_ipv6_mapped().octets(), self.prefix + 96)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => bits(n.octets(), self.prefix) == bits(a.octets(), self.prefix),
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an address or network like 192.168.1.2 or 10.0.0.0/8");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Run the built-in broker.
    pub enabled: bool,
    /// Where the built-in broker listens; loopback by default.
    pub listen: SocketAddr,
    /// Accounts of the built-in broker; required when it listens beyond loopback.
    pub users: Vec<MqttUser>,
    /// The broker adapters use when the built-in one is off.
    pub external: Option<ExternalMqtt>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            users: Vec::new(),
            external: None,
        }
    }
}

/// `[[mqtt.users]]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttUser {
    /// User name.
    pub username: String,
    /// Password (at least 8 characters). Never logged. Left out (or empty) when it is sealed in
    /// the hub instead: `hearth secret set mqtt users.<username>.password`.
    #[serde(default)]
    pub password: String,
}

impl fmt::Debug for MqttUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttUser").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// `[mqtt.external]`
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalMqtt {
    /// Host name or address.
    pub host: String,
    /// Port (1883).
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// User name.
    pub username: Option<String>,
    /// Password. Never logged. Left out when it is sealed in the hub instead:
    /// `hearth secret set mqtt external.password`.
    pub password: Option<String>,
    /// TLS (`[mqtt.external.tls]`): certificate and host name are always verified.
    pub tls: Option<TlsFiles>,
}

/// TLS files of an MQTT connection.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file of the certificate authority to trust; the system's roots when absent.
    pub ca_file: Option<String>,
    /// PEM file of a client certificate, for brokers that ask for one.
    pub client_cert_file: Option<String>,
    /// PEM file of its private key.
    pub client_key_file: Option<String>,
}

fn default_mqtt_port() -> u16 {
    1883
}

impl fmt::Debug for ExternalMqtt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalMqtt")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, optionally per module (`info,hearth::api=debug`).
    pub level: String,
    /// How each line is written to standard error.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Auto }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `journal` under systemd (when standard error is the journal), else `text`.
    #[default]
    Auto,
    /// Time, level, where, the message and `key=value` fields; colored at a terminal.
    Text,
    /// For the systemd journal: each line starts with its syslog priority (`<3>` error to `<7>`
    /// debug), so `journalctl -p warning` filters by level; no time (the journal adds it).
    Journal,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`), for log collectors.
    Json,
}

/// `[adapters]`: one section per built-in adapter.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdaptersConfig {
    /// `[adapters.demo]`: simulated devices.
    pub demo: DemoConfig,
    /// `[adapters.zigbee2mqtt]`: Zigbee devices through zigbee2mqtt.
    pub zigbee2mqtt: Zigbee2mqttConfig,
    /// `[adapters.ble]`: Bluetooth Low Energy devices.
    pub ble: BleConfig,
    /// `[adapters.mdns]`: devices announced on the network that no adapter speaks yet.
    pub mdns: MdnsConfig,
    /// `[adapters.shelly]`: Shelly Gen2+ devices over their local RPC.
    pub shelly: WifiConfig,
    /// `[adapters.wled]`: WLED light controllers.
    pub wled: WifiConfig,
    /// `[adapters.esphome]`: ESPHome devices over the native API.
    pub esphome: WifiConfig,
    /// `[adapters.yeelight]`: Yeelight lights over their LAN control protocol.
    pub yeelight: WifiConfig,
    /// `[adapters.miio]`: Xiaomi devices over miIO with MIoT-Spec.
    pub miio: MiioConfig,
    /// `[adapters.tasmota]`: Tasmota devices over their native MQTT discovery.
    pub tasmota: TasmotaConfig,
    /// `[adapters.mqtt_discovery]`: devices that describe themselves in Home Assistant's MQTT
    /// discovery format.
    pub mqtt_discovery: MqttDiscoveryConfig,
}

/// `[adapters.mqtt_discovery]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttDiscoveryConfig {
    /// Read Home Assistant MQTT discovery configs on the broker (on by default; it waits
    /// quietly until a device publishes one).
    pub enabled: bool,
    /// The discovery prefix devices publish under.
    pub prefix: String,
    /// Devices whose config names one of these origins are left out (by default zigbee2mqtt's,
    /// which the zigbee2mqtt adapter already speaks natively). Hearth's own are always left out.
    pub ignore_origins: Vec<String>,
    /// Another broker than the hub's (built-in or `[mqtt.external]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<ExternalMqtt>,
}

impl Default for MqttDiscoveryConfig {
    fn default() -> Self {
        MqttDiscoveryConfig {
            enabled: true,
            prefix: "homeassistant".into(),
            ignore_origins: vec!["Zigbee2MQTT".into()],
            mqtt: None,
        }
    }
}

/// `[adapters.tasmota]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TasmotaConfig {
    /// Listen for Tasmota devices on the broker (on by default; it waits quietly until one
    /// appears).
    pub enabled: bool,
    /// Where Tasmota publishes its discovery (`SetOption19 0`, the default).
    pub discovery_prefix: String,
    /// Another broker than the hub's (built-in or `[mqtt.external]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<ExternalMqtt>,
}

impl Default for TasmotaConfig {
    fn default() -> Self {
        TasmotaConfig { enabled: true, discovery_prefix: "tasmota/discovery".into(), mqtt: None }
    }
}

/// `[adapters.miio]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MiioConfig {
    /// Find Xiaomi devices on the network (mDNS `_miio._udp`) and offer them in the inbox (off by
    /// default: it speaks mDNS on the interfaces listed).
    pub enabled: bool,
    /// The interfaces to speak mDNS on; every interface when empty.
    pub interfaces: Vec<String>,
    /// Seconds without an answer before a device is offline.
    pub offline_after_secs: u64,
    /// Seconds between two readings of a device's properties (miIO does not push them).
    pub poll_secs: u64,
    /// A directory of MIoT spec files for models Hearth does not ship (`<model>.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub specs_dir: Option<PathBuf>,
}

impl Default for MiioConfig {
    fn default() -> Self {
        MiioConfig { enabled: false, interfaces: Vec::new(), offline_after_secs: 60, poll_secs: 10, specs_dir: None }
    }
}

/// `[adapters.shelly]`, `[adapters.wled]`, `[adapters.esphome]`: Wi-Fi devices found over mDNS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WifiConfig {
    /// Find these devices on the network and offer them in the inbox (off by default: it speaks
    /// mDNS, multicast, on the interfaces listed).
    pub enabled: bool,
    /// The interfaces to speak mDNS on (`["eth0"]`); every interface when empty.
    pub interfaces: Vec<String>,
    /// Seconds without an answer before a device is offline.
    pub offline_after_secs: u64,
}

impl Default for WifiConfig {
    fn default() -> Self {
        WifiConfig { enabled: false, interfaces: Vec::new(), offline_after_secs: 60 }
    }
}

/// `[adapters.mdns]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MdnsConfig {
    /// List devices seen on the network (HomeKit, Hue) in the inbox (off by default for now).
    pub enabled: bool,
    /// The interfaces to speak mDNS on (`["eth0"]`); every interface when empty.
    pub interfaces: Vec<String>,
}

/// `[adapters.ble]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BleConfig {
    /// Listen for Bluetooth devices (off by default: it needs a Bluetooth adapter).
    pub enabled: bool,
    /// The Bluetooth adapter (`hci0`); the first when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Replay a recording of advertisements (JSON lines) instead of scanning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<PathBuf>,
    /// How fast to replay: 1 as recorded, 0 as fast as possible.
    pub replay_speed: f64,
    /// Seconds without an advertisement before a device is offline; by kind when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_after_secs: Option<u64>,
    /// Bind keys of encrypted devices, by address (hex).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub keys: std::collections::BTreeMap<String, String>,
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig {
            enabled: false,
            adapter: None,
            replay: None,
            replay_speed: 1.0,
            offline_after_secs: None,
            keys: Default::default(),
        }
    }
}

/// `[adapters.zigbee2mqtt]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Zigbee2mqttConfig {
    /// Listen to zigbee2mqtt (on by default; it waits quietly until a bridge appears).
    pub enabled: bool,
    /// zigbee2mqtt's base topic.
    pub base_topic: String,
    /// Another broker than the hub's (built-in or `[mqtt.external]`).
    pub mqtt: Option<ExternalMqtt>,
}

impl Default for Zigbee2mqttConfig {
    fn default() -> Self {
        Zigbee2mqttConfig { enabled: true, base_topic: "zigbee2mqtt".into(), mqtt: None }
    }
}

/// `[adapters.demo]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Run the demo home (also `hearth run --demo`).
    pub enabled: bool,
    /// Seconds between simulated sensor updates.
    pub interval_secs: f64,
    /// Also "find" a few more devices for the discovery inbox.
    pub finds: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig { enabled: false, interval_secs: 10.0, finds: true }
    }
}

/// A configuration error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what to do.
    pub message: String,
    /// The offending line of the file, for context.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let (Some(snippet), Some((l, c))) = (&self.snippet, self.position) {
            let gutter = l.to_string().len();
            write!(f, "\n{:gutter$} |\n{l} | {snippet}\n{:gutter$} | {}^", "", "", " ".repeat(c.saturating_sub(1)))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Line and column (1-based, in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a message with the nearest key.
fn explain(message: &str) -> String {
    let message = message.trim();
    let Some(rest) = message.strip_prefix("unknown field `") else { return message.to_owned() };
    let Some((key, expected)) = rest.split_once('`') else { return message.to_owned() };
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let nearest = valid.iter().min_by_key(|v| distance(key, v)).copied();
    let list = valid.join(", ");
    match nearest {
        Some(n) if distance(key, n) <= n.len().max(key.len()) / 2 + 1 => {
            format!("unknown key `{key}`; did you mean `{n}`? (valid keys here: {list})")
        }
        _ if valid.is_empty() => format!("unknown key `{key}`; this section takes no keys"),
        _ => format!("unknown key `{key}` (valid keys here: {list})"),
    }
}

impl Config {
    /// Reads a configuration from TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let position = e.span().map(|s| line_col(text, s.start));
            let mut message = explain(e.message());
            if let Some(key) = e.span().and_then(|s| key_of_value(text, s.start)) {
                message = format!("`{key}`: {message}");
            }
            ConfigError {
                file: file.to_owned(),
                position,
                message,
                snippet: position.and_then(|(l, _)| text.lines().nth(l - 1).map(str::to_owned)),
            }
        })?;
        config.validate().map_err(|message| {
            let position = find_key(text, &message);
            ConfigError {
                file: file.to_owned(),
                position,
                message,
                snippet: position.and_then(|(l, _)| text.lines().nth(l - 1).map(str::to_owned)),
            }
        })?;
        Ok(config)
    }

    /// Reads the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            message: format!("cannot read the configuration file: {e}"),
            snippet: None,
        })?;
        Config::parse(&text, path)
    }

    /// The file to read: `explicit` if given, else the first of [`DEFAULT_PATHS`] that exists.
    pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = explicit {
            return Some(p.to_owned());
        }
        DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.exists())
    }

    /// Checks what the types cannot: rules across keys.
    pub fn validate(&self) -> Result<(), String> {
        let m = &self.mqtt;
        if m.enabled && !m.listen.ip().is_loopback() && m.users.is_empty() {
            return Err(format!(
                "[mqtt] listen = \"{}\" makes the built-in broker reachable from the network, so it needs \
                 at least one account: add [[mqtt.users]] with username and password",
                m.listen
            ));
        }
        if m.enabled && m.external.is_some() {
            return Err("[mqtt.external] names an external broker while the built-in one is enabled: \
                        set [mqtt] enabled = false to use the external broker"
                .into());
        }
        for u in &m.users {
            if u.username.trim().is_empty() {
                return Err("[[mqtt.users]] username must not be empty".into());
            }
            // Empty: sealed in the hub (`hearth secret set mqtt users.<name>.password`), checked
            // at start.
            if !u.password.is_empty() && u.password.chars().count() < 8 {
                return Err(format!(
                    "[[mqtt.users]] password of `{}` is too short: use at least 8 characters",
                    u.username
                ));
            }
        }
        self.cloud.validate()?;
        self.history.validate()?;
        self.backup.validate()?;
        #[cfg(feature = "ble")]
        hearth_ble::Config::from_json(&serde_json::to_value(&self.adapters.ble).unwrap_or_default())?;
        #[cfg(feature = "miio")]
        hearth_miio::Config::from_json(&serde_json::to_value(&self.adapters.miio).unwrap_or_default())?;
        #[cfg(feature = "tasmota")]
        hearth_tasmota::Config::from_json(&serde_json::to_value(&self.adapters.tasmota).unwrap_or_default())?;
        #[cfg(feature = "mqtt_discovery")]
        hearth_mqtt_discovery::Config::from_json(
            &serde_json::to_value(&self.adapters.mqtt_discovery).unwrap_or_default(),
        )?;
        let m = &self.adapters.miio;
        if m.poll_secs >= m.offline_after_secs {
            return Err(format!(
                "[adapters.miio] poll_secs = {} must be less than offline_after_secs = {}: a device is read every poll_secs, \
                 and offline when it has not answered for offline_after_secs",
                m.poll_secs, m.offline_after_secs
            ));
        }
        for (id, c) in [
            ("shelly", &self.adapters.shelly),
            ("wled", &self.adapters.wled),
            ("esphome", &self.adapters.esphome),
            ("yeelight", &self.adapters.yeelight),
        ] {
            if c.offline_after_secs == 0 {
                return Err(format!("[adapters.{id}] offline_after_secs must be at least 1"));
            }
        }
        let base = &self.adapters.zigbee2mqtt.base_topic;
        if base.trim().is_empty() || base.contains(['#', '+']) {
            return Err(format!(
                "[adapters.zigbee2mqtt] base_topic = \"{base}\" must be a topic without wildcards, like \"zigbee2mqtt\""
            ));
        }
        let ha = &self.home_assistant;
        for (key, topic) in [("prefix", &ha.prefix), ("base_topic", &ha.base_topic)] {
            if topic.trim().is_empty() || topic.contains(['#', '+']) || topic.starts_with('/') || topic.ends_with('/') {
                return Err(format!(
                    "[home_assistant] {key} = \"{topic}\" must be a topic without wildcards or slashes at either end, like \"{}\"",
                    if key == "prefix" { "homeassistant" } else { "hearth" }
                ));
            }
        }
        if ha.publish && ha.prefix == ha.base_topic {
            return Err("[home_assistant] prefix and base_topic must differ".into());
        }
        let l = &self.location;
        match (l.latitude, l.longitude) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    return Err(format!(
                        "[location] latitude = {lat}, longitude = {lon} is not a place: latitude is from -90 to 90, \
                         longitude from -180 to 180"
                    ));
                }
            }
            (None, None) => {}
            _ => return Err("[location] needs both latitude and longitude, or neither".into()),
        }
        if let Some(name) = &l.timezone {
            hearth_automations::zone::Zone::named(name).map_err(|e| format!("[location] timezone: {e}"))?;
        }
        let known: Vec<&str> = crate::adapters::builtin().iter().map(|b| b.id).collect();
        for entry in &self.inbox.auto_accept {
            let id = entry.split_once(':').map_or(entry.as_str(), |(a, _)| a);
            if !known.contains(&id) || entry.ends_with(':') {
                return Err(format!(
                    "[inbox] auto_accept names `{entry}`: write an adapter of this hub ({}), or adapter:kind like ble:bthome",
                    known.join(", ")
                ));
            }
        }
        let h = &self.http;
        const TEN_YEARS: u64 = 10 * 366 * 86_400;
        for (key, value) in [
            ("session_ttl_secs", h.session_ttl_secs),
            ("login_window_secs", h.login_window_secs),
            ("login_lockout_secs", h.login_lockout_secs),
            ("login_lockout_max_secs", h.login_lockout_max_secs),
        ] {
            if value == 0 || value > TEN_YEARS {
                return Err(format!("[http] {key} = {value} must be from 1 second to 10 years"));
            }
        }
        for (key, value) in
            [("login_max_failures", h.login_max_failures), ("login_ip_max_failures", h.login_ip_max_failures)]
        {
            if value == 0 {
                return Err(format!("[http] {key} = 0 would lock every login at once: use 1 or more"));
            }
        }
        if h.login_lockout_max_secs < h.login_lockout_secs {
            return Err(format!(
                "[http] login_lockout_max_secs = {} is shorter than login_lockout_secs = {}: the cap must be at least the first lockout",
                h.login_lockout_max_secs, h.login_lockout_secs
            ));
        }
        if !(self.adapters.demo.interval_secs.is_finite() && self.adapters.demo.interval_secs >= 0.01) {
            return Err("[adapters.demo] interval_secs must be at least 0.01".into());
        }
        Ok(())
    }
}

/// The dotted key whose value starts at byte `offset` (`adapters.demo.enabled`), when the offset
/// points into a `key = value` line rather than at a key.
fn key_of_value(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = line.split('\n').next().unwrap_or(line);
    let (key, _) = line.split_once('=')?;
    if line_start + key.len() >= offset {
        return None; // the error points at the key itself
    }
    let key = key.trim().trim_matches('"');
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim().to_owned());
    Some(match section {
        Some(sec) if !sec.is_empty() => format!("{sec}.{key}"),
        _ => key.to_owned(),
    })
}

/// Finds the line of the first key named in a validation message (`[mqtt] listen` -> `listen`).
fn find_key(text: &str, message: &str) -> Option<(usize, usize)> {
    let key = message.split(['[', ']', ' ', '=']).filter(|w| !w.is_empty()).nth(1)?;
    let offset = text.lines().scan(0usize, |pos, line| {
        let start = *pos;
        *pos += line.len() + 1;
        Some((start, line))
    });
    for (start, line) in offset {
        let t = line.trim_start();
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return Some(line_col(text, start + (line.len() - t.len())));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("hearth.toml")).map(|_| ()).expect_err("should fail").to_string()
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("", Path::new("x.toml")).expect("defaults");
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.mqtt.listen.to_string(), "127.0.0.1:1883");
        assert!(c.mqtt.enabled && !c.adapters.demo.enabled);
    }

    #[test]
    fn unknown_keys_name_file_line_column_and_the_nearest_key() {
        assert_eq!(
            err("[http]\nlisten = \"127.0.0.1:8080\"\n\n[mqtt]\nlisen = \"127.0.0.1:1883\"\n"),
            "hearth.toml:5:1: unknown key `lisen`; did you mean `listen`? (valid keys here: enabled, listen, users, external)\n  |\n5 | lisen = \"127.0.0.1:1883\"\n  | ^"
        );
        let e = err("htpp = 1\n");
        assert!(e.starts_with("hearth.toml:1:1: unknown key `htpp`; did you mean `http`?"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_position() {
        let e = err("[adapters.demo]\nenabled = \"yes\"\n");
        assert!(
            e.starts_with(
                "hearth.toml:2:11: `adapters.demo.enabled`: invalid type: string \"yes\", expected a boolean"
            ),
            "{e}"
        );
        let e = err("[http]\nlisten = \"everywhere\"\n");
        assert!(e.starts_with("hearth.toml:2:10: `http.listen`: invalid socket address syntax"), "{e}");
        let e = err("data_dir = 5\n");
        assert!(e.starts_with("hearth.toml:1:12: `data_dir`: invalid type: integer `5`"), "{e}");
    }

    #[test]
    fn a_broker_on_the_lan_needs_accounts() {
        let e = err("[mqtt]\nlisten = \"0.0.0.0:1883\"\n");
        assert!(
            e.starts_with("hearth.toml:2:1: [mqtt] listen = \"0.0.0.0:1883\" makes the built-in broker reachable"),
            "{e}"
        );
        let ok = "[mqtt]\nlisten = \"0.0.0.0:1883\"\n[[mqtt.users]]\nusername = \"z2m\"\npassword = \"long enough\"\n";
        assert!(Config::parse(ok, Path::new("x")).is_ok());
        let short = "[[mqtt.users]]\nusername = \"z2m\"\npassword = \"short\"\n";
        assert!(err(short).contains("too short"));
    }

    #[test]
    fn the_shipped_example_configuration_is_valid() {
        let text = include_str!("../../packaging/hearth.toml");
        let c = Config::parse(text, Path::new("packaging/hearth.toml")).expect("valid");
        assert_eq!(c.http.listen, HttpConfig::default().listen);
    }

    #[test]
    fn history_rules_name_known_capabilities_and_devices() {
        let ok = "[history]\nmax_db_mb = 64\n[history.capabilities.power]\nraw_days = 2\n\
                  [history.devices.\"demo:plug/power\"]\nhourly_days = 0\n";
        let c = Config::parse(ok, Path::new("x")).expect("valid");
        assert_eq!(c.history.capabilities["power"].raw_days, Some(2));
        assert_eq!(c.history.devices["demo:plug/power"].hourly_days, Some(0));
        let e = err("[history.capabilities.wattage]\nraw_days = 2\n");
        assert!(e.contains("[history.capabilities.wattage]: `wattage` is not a capability"), "{e}");
        let e = err("[history.devices.plug]\nraw_days = 2\n");
        assert!(e.contains("name a device by its id (`adapter:device`)"), "{e}");
        let e = err("[history]\nmax_db_mb = 1\n");
        assert!(e.contains("max_db_mb = 1: the database needs at least 4 MB"), "{e}");
        let e = err("[history.capabilities.power]\nraw_dayz = 2\n");
        assert!(e.contains("unknown key `raw_dayz`; did you mean `raw_days`?"), "{e}");
    }

    #[test]
    fn a_location_needs_both_coordinates_in_range() {
        let ok = Config::parse(
            "[location]\nlatitude = 52.5\nlongitude = 13.4\ntimezone = \"Europe/Berlin\"\n",
            Path::new("x"),
        );
        assert_eq!(ok.expect("valid").location.timezone.as_deref(), Some("Europe/Berlin"));
        let half = Config::parse("[location]\nlatitude = 52.5\n", Path::new("x")).expect_err("half");
        assert!(half.to_string().contains("needs both latitude and longitude"), "{half}");
        let far = Config::parse("[location]\nlatitude = 95.0\nlongitude = 13.4\n", Path::new("x")).expect_err("far");
        assert!(far.to_string().contains("latitude is from -90 to 90"), "{far}");
        let zone = Config::parse("[location]\ntimezone = \"Europe/Berlni\"\n", Path::new("x")).expect_err("zone");
        assert!(zone.to_string().contains("unknown time zone `Europe/Berlni`"), "{zone}");
        let typo = Config::parse("[location]\nlatitud = 52.5\n", Path::new("x")).expect_err("typo");
        assert!(typo.to_string().contains("did you mean `latitude`"), "{typo}");
    }

    #[test]
    fn http_security_keys_have_defaults_and_are_checked() {
        let c = Config::parse("", Path::new("x")).expect("defaults");
        assert_eq!(
            (c.http.session_ttl_secs, c.http.login_max_failures, c.http.login_ip_max_failures),
            (2_592_000, 5, 20)
        );
        assert_eq!(
            (c.http.login_window_secs, c.http.login_lockout_secs, c.http.login_lockout_max_secs),
            (900, 60, 900)
        );
        let c = Config::parse(
            "[http]\nsession_ttl_secs = 2\ntrusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"]\n",
            Path::new("x"),
        )
        .expect("valid");
        let nets = &c.http.trusted_proxies;
        assert!(
            nets[0].contains("127.0.0.1".parse().expect("ip")) && !nets[0].contains("127.0.0.2".parse().expect("ip"))
        );
        assert!(
            nets[1].contains("10.200.3.4".parse().expect("ip")) && !nets[1].contains("11.0.0.1".parse().expect("ip"))
        );
        assert!(nets[1].contains("::ffff:10.0.0.1".parse().expect("ip")), "IPv4-mapped peers count as IPv4");
        assert!(nets[2].contains("fd12::1".parse().expect("ip")) && !nets[2].contains("fe80::1".parse().expect("ip")));
        let e = err("[http]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
        assert!(e.starts_with("hearth.toml:2:") && e.contains("not an address or network"), "{e}");
        let e = err("[http]\nsession_ttl_secs = 0\n");
        assert!(e.starts_with("hearth.toml:2:1: [http] session_ttl_secs = 0 must be from 1 second"), "{e}");
        let e = err("[http]\nlogin_lockout_secs = 60\nlogin_lockout_max_secs = 30\n");
        assert!(e.contains("cap must be at least the first lockout"), "{e}");
        let e = err("[http]\nlogin_max_failures = 0\n");
        assert!(e.contains("use 1 or more"), "{e}");
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c = Config::parse("[[mqtt.users]]\nusername = \"z2m\"\npassword = \"hunter2hunter2\"\n", Path::new("x"))
            .expect("ok");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
