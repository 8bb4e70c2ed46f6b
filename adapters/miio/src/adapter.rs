//! The miIO adapter: Xiaomi devices announced over mDNS (`_miio._udp`), offered in the
//! discovery inbox by their device id, and once accepted kept connected by the Wi-Fi runner
//! ([`hearth_mdns::lan`]) with one polling session each ([`crate::session`]).
//!
//! A device announces itself as `<model with - for .>_miio<did>` (`zhimi-airpurifier-mb3_miio123456789`):
//! the model and the device id (`did`) come from that name. The inbox key is the did, the
//! device is `miio:<did>`, made by Xiaomi, of that model.
//!
//! Secrets: each device's token (32 hex digits), named by its did. Without it the device is
//! offline, refused, saying to enter it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hearth_mdns::lan::{Link, Protocol};
use hearth_mdns::{Announcement, Browser};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, BoxFuture,
    DeviceId, Discovers, Found, SecretSpec, Transport,
};
use serde::Deserialize;

use crate::packet::Token;
use crate::spec::Catalogue;

/// The adapter id.
pub const ADAPTER_ID: &str = "miio";

/// The mDNS service type miIO devices announce.
pub const SERVICE_TYPE: &str = "_miio._udp.local.";

/// The maker every miIO device is listed under.
pub const MANUFACTURER: &str = "Xiaomi";

/// The adapter's configuration (`[adapters.miio]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run the adapter. Default `false`.
    pub enabled: bool,
    /// The interfaces to speak mDNS on (`["eth0"]`); every interface when empty (the default).
    pub interfaces: Vec<String>,
    /// Seconds without an answer before a device is offline. Default 60, at least 1.
    pub offline_after_secs: u64,
    /// Seconds between two reads of a device's properties (miIO devices push nothing on the
    /// LAN). Default 10, at least 1.
    pub poll_secs: u64,
    /// A directory of MIoT-Spec files (`<model>.json`) for models Hearth does not ship, or to
    /// replace a shipped one. Default: none.
    pub specs_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: false, interfaces: Vec::new(), offline_after_secs: 60, poll_secs: 10, specs_dir: None }
    }
}

impl Config {
    /// Reads `[adapters.miio]`; errors name the section and the key.
    pub fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        let c: Config = if json.is_null() {
            Config::default()
        } else {
            serde_json::from_value(json.clone()).map_err(|e| format!("[adapters.{ADAPTER_ID}]: {e}"))?
        };
        if c.offline_after_secs == 0 {
            return Err(format!("[adapters.{ADAPTER_ID}] offline_after_secs must be at least 1"));
        }
        if c.poll_secs == 0 {
            return Err(format!("[adapters.{ADAPTER_ID}] poll_secs must be at least 1"));
        }
        if c.specs_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(format!("[adapters.{ADAPTER_ID}] specs_dir must name a directory (or be left out)"));
        }
        Ok(c)
    }
}

/// What an announced name says: the model and the device id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The model (`zhimi.airpurifier.mb3`).
    pub model: String,
    /// The device id, in decimal (`123456789`).
    pub did: String,
}

/// Reads `zhimi-airpurifier-mb3_miio123456789`: the model with `-` for `.`, then `_miio` and
/// the did in decimal. `None` for any other name.
pub fn parse_name(name: &str) -> Option<Name> {
    let (model, did) = name.rsplit_once("_miio")?;
    let did_number: u32 = did.parse().ok().filter(|_| did.bytes().all(|b| b.is_ascii_digit()))?;
    if did_number == 0 || model.is_empty() || !model.contains('-') {
        return None;
    }
    let model = model.to_ascii_lowercase().replace('-', ".");
    if !model.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_') {
        return None;
    }
    Some(Name { model, did: did_number.to_string() })
}

/// The miIO protocol over the Wi-Fi runner: what an announcement is, and one session.
#[derive(Debug, Clone)]
pub struct MiioProtocol {
    /// How often to read a device.
    pub poll: Duration,
    /// Where the user's spec files are.
    pub specs_dir: Option<PathBuf>,
}

impl MiioProtocol {
    /// The protocol as `config` sets it up.
    pub fn new(config: &Config) -> MiioProtocol {
        MiioProtocol { poll: Duration::from_secs(config.poll_secs), specs_dir: config.specs_dir.clone() }
    }

    /// The specs now: the shipped ones and the user's directory, read again each time (a file
    /// dropped there is used at the device's next connection).
    pub fn catalogue(&self) -> Result<Catalogue, String> {
        match &self.specs_dir {
            None => Ok(Catalogue::builtin()),
            Some(dir) => Catalogue::with_dir(dir).map(|(c, _)| c).map_err(|e| e.to_string()),
        }
    }

    /// The name a model goes by: its spec's description, or the model.
    fn model_name(&self, model: &str) -> String {
        Catalogue::builtin()
            .get(model)
            .and_then(|s| s.as_ref().ok())
            .and_then(|s| s.description.clone())
            .unwrap_or_else(|| model.to_owned())
    }
}

impl Protocol for MiioProtocol {
    fn adapter(&self) -> &'static str {
        ADAPTER_ID
    }

    fn service_types(&self) -> &'static [&'static str] {
        &[SERVICE_TYPE]
    }

    fn identify(&self, announcement: &Announcement) -> Option<Found> {
        let found = identify(announcement)?;
        let name = self.model_name(found.model.as_deref().unwrap_or_default());
        Some(Found { name, ..found })
    }

    fn session(self: Arc<Self>, link: Link) -> BoxFuture<Result<(), String>> {
        Box::pin(crate::session::run(self, link))
    }
}

/// What a `_miio._udp` announcement is, for the inbox: keyed by its did, of the model its name
/// gives. `None` for another service type or a name that is not `<model>_miio<did>`.
pub fn identify(a: &Announcement) -> Option<Found> {
    if !a.service_type.eq_ignore_ascii_case(SERVICE_TYPE) {
        return None;
    }
    let Some(name) = parse_name(&a.name) else {
        tracing::debug!(instance = %a.instance, "A miIO announcement whose name is not <model>_miio<did> was skipped.");
        return None;
    };
    Some(Found {
        device: DeviceId::new(ADAPTER_ID, &name.did),
        key: name.did,
        name: name.model.clone(),
        manufacturer: Some(MANUFACTURER.to_owned()),
        model: Some(name.model),
        transport: Transport::Wifi,
        address: a.addresses.first().map(ToString::to_string),
        supported: true,
        kind: Some("miio".to_owned()),
    })
}

/// Checks a secret before the hub stores it: named by a device id, holding a token.
pub fn check_secret(name: &str, value: &str) -> Result<(), String> {
    let did = name.trim();
    if did.is_empty() || !did.bytes().all(|b| b.is_ascii_digit()) || did.parse::<u32>().is_err() {
        return Err(format!(
            "`{name}` is not a miIO device id: name the token by the device's did, the digits after `miio:` in its id (123456789)"
        ));
    }
    Token::parse(value).map(|_| ()).map_err(|e| e.to_string())
}

/// The miIO adapter.
#[derive(Debug, Clone, Default)]
pub struct MiioAdapter;

impl MiioAdapter {
    /// The adapter.
    pub fn new() -> MiioAdapter {
        MiioAdapter
    }
}

impl Adapter for MiioAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Xiaomi miIO",
            discovers: Discovers { mdns: vec![SERVICE_TYPE.to_owned()], ..Discovers::default() },
            actions: &[],
            secrets: Some(SecretSpec {
                names: "a Xiaomi device's did, the digits of its device id after `miio:` (123456789)",
                values: "the device's miIO token: 32 hex digits, from the Mi Home app's account (a token extractor) or the device's own hello while it is not paired",
                check: check_secret,
            }),
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

/// Runs the adapter: reads its configuration and the user's specs, browses `_miio._udp`, and
/// hands the rest to the Wi-Fi runner.
async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config).map_err(AdapterError)?;
    let protocol = MiioProtocol::new(&config);
    if let Some(dir) = &config.specs_dir {
        // Bad files are said once here; a device of their model says why it is not described.
        match Catalogue::with_dir(dir) {
            Ok((catalogue, bad)) => {
                let models: Vec<&str> = catalogue.models().collect();
                tracing::info!(dir = %dir.display(), models = models.len(), "The MIoT specs were read.");
                for e in bad {
                    tracing::warn!(error = %e, "A MIoT spec file cannot be used; devices of its model stay undescribed.");
                    ctx.events
                        .send(AdapterEvent::InputRejected { source: e.file.clone(), reason: e.to_string() })
                        .await?;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "The MIoT specs directory cannot be read; only the shipped specs are used.");
                ctx.events
                    .send(AdapterEvent::InputRejected { source: dir.display().to_string(), reason: e.to_string() })
                    .await?;
            }
        }
    }
    let idle = Duration::from_secs(config.offline_after_secs);
    let browser = match Browser::start(&config.interfaces) {
        Ok(b) => b,
        Err(e) => {
            let status = AdapterStatus::with(AdapterState::Unavailable, e.to_string()).with_code("no_network");
            ctx.events.status(status).await?;
            ctx.shutdown.wait().await;
            return Ok(());
        }
    };
    let seen = browser.browse(protocol.service_types()).map_err(|e| AdapterError(e.to_string()))?;
    let result = hearth_mdns::lan::run_on(Arc::new(protocol), ctx, idle, seen).await;
    drop(browser);
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn announcement(service_type: &str, name: &str) -> Announcement {
        Announcement {
            service_type: service_type.to_owned(),
            instance: format!("{name}.{service_type}"),
            name: name.to_owned(),
            host: format!("{name}.local."),
            addresses: vec!["192.168.1.31".parse().unwrap()],
            port: 54321,
            txt: BTreeMap::new(),
        }
    }

    #[test]
    fn an_announcement_gives_the_model_and_the_did() {
        // The form python-miio's mDNS discovery reads: `yeelink-light-color1_miioXXXX._miio._udp.local.`.
        let found = identify(&announcement(SERVICE_TYPE, "zhimi-airpurifier-mb3_miio123456789")).unwrap();
        assert_eq!(
            found,
            Found {
                key: "123456789".into(),
                device: DeviceId::new("miio", "123456789"),
                name: "zhimi.airpurifier.mb3".into(),
                manufacturer: Some("Xiaomi".into()),
                model: Some("zhimi.airpurifier.mb3".into()),
                transport: Transport::Wifi,
                address: Some("192.168.1.31".into()),
                supported: true,
                kind: Some("miio".into()),
            }
        );
        let named = MiioProtocol::new(&Config::default())
            .identify(&announcement(SERVICE_TYPE, "zhimi-airpurifier-mb3_miio123456789"));
        assert_eq!(named.unwrap().name, "Mi Air Purifier 3H", "a shipped model goes by its name");
        let other =
            MiioProtocol::new(&Config::default()).identify(&announcement(SERVICE_TYPE, "lumi-gateway-v3_miio61443391"));
        assert_eq!(other.unwrap().name, "lumi.gateway.v3");
        assert_eq!(
            parse_name("yeelink-light-color1_miio54321"),
            Some(Name { model: "yeelink.light.color1".into(), did: "54321".into() })
        );
        assert_eq!(parse_name("chuangmi-plug-m1_miio0012").map(|n| n.did), Some("12".into()));
    }

    #[test]
    fn other_names_and_services_are_not_miio_devices() {
        for name in [
            "zhimi-airpurifier-mb3",
            "zhimi-airpurifier-mb3_miio",
            "zhimi-airpurifier-mb3_miioabc",
            "_miio123",
            "plug_miio123",
            "a-b_miio99999999999",
            "a-b_miio-5",
            "a b-c_miio1",
        ] {
            assert_eq!(identify(&announcement(SERVICE_TYPE, name)), None, "{name}");
        }
        assert_eq!(identify(&announcement("_http._tcp.local.", "zhimi-airpurifier-mb3_miio123")), None);
        assert!(identify(&announcement("_MIIO._udp.local.", "zhimi-airpurifier-mb3_miio123")).is_some());
    }

    #[test]
    fn the_configuration_is_checked() {
        assert_eq!(Config::from_json(&serde_json::Value::Null), Ok(Config::default()));
        assert_eq!(
            Config::default(),
            Config { enabled: false, interfaces: vec![], offline_after_secs: 60, poll_secs: 10, specs_dir: None }
        );
        let c = Config::from_json(
            &json!({"enabled": true, "interfaces": ["eth0"], "poll_secs": 5, "specs_dir": "/etc/hearth/miot"}),
        )
        .unwrap();
        assert_eq!((c.poll_secs, c.specs_dir.as_deref()), (5, Some(std::path::Path::new("/etc/hearth/miot"))));
        let e = Config::from_json(&json!({"poll_interval": 5})).unwrap_err();
        assert!(e.starts_with("[adapters.miio]: unknown field `poll_interval`"), "{e}");
        assert_eq!(
            Config::from_json(&json!({"poll_secs": 0})).unwrap_err(),
            "[adapters.miio] poll_secs must be at least 1"
        );
        assert_eq!(
            Config::from_json(&json!({"offline_after_secs": 0})).unwrap_err(),
            "[adapters.miio] offline_after_secs must be at least 1"
        );
        assert!(Config::from_json(&json!({"specs_dir": ""})).unwrap_err().contains("specs_dir"));
        assert!(Config::from_json(&json!({"poll_secs": "10"})).unwrap_err().contains("[adapters.miio]"));
    }

    #[test]
    fn secrets_are_named_by_a_did_and_hold_a_token() {
        assert_eq!(check_secret("123456789", "00112233445566778899aabbccddeeff"), Ok(()));
        let e = check_secret("miio:123456789", "00112233445566778899aabbccddeeff").unwrap_err();
        assert!(e.contains("is not a miIO device id") && e.contains("123456789"), "{e}");
        let e = check_secret("123456789", "secret-token-value").unwrap_err();
        assert_eq!(e, "a miIO token is 32 hex digits, not 18 characters");
        assert!(!e.contains("secret-token-value"));
    }

    #[test]
    fn the_manifest_names_the_service_type_and_the_secrets() {
        let m = MiioAdapter::new().manifest();
        assert_eq!((m.id, m.name), ("miio", "Xiaomi miIO"));
        assert_eq!(m.discovers.mdns, ["_miio._udp.local."]);
        let spec = m.secrets.unwrap();
        assert!(spec.names.contains("did") && spec.values.contains("32 hex digits"));
        assert_eq!((spec.check)("1", "zz"), Err("a miIO token is 32 hex digits, not 2 characters".into()));
    }
}
