//! The ESPHome adapter: devices announced as `_esphomelib._tcp` over mDNS, offered in the
//! discovery inbox by their MAC, and once accepted kept connected by the Wi-Fi runner
//! ([`hearth_mdns::lan`]) with one native API session each ([`crate::session`]).
//!
//! Configuration (`[adapters.esphome]`) is the runner's:
//! `{"enabled": false, "interfaces": ["eth0"], "offline_after_secs": 60}`.
//!
//! Secrets: a device whose API is encrypted (`api: encryption: key:` in its YAML) needs that key,
//! entered as a secret of this adapter named by the device's MAC address (`acbc32890ea9`, its
//! inbox key, or `AC:BC:32:89:0E:A9`).

use std::sync::Arc;

use hearth_mdns::Announcement;
use hearth_mdns::lan::{Link, Protocol};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterManifest, BoxFuture, DeviceId, Discovers, Found, SecretSpec,
    Transport,
};

use crate::api::{NoiseKey, native_id};

/// The adapter id.
pub const ADAPTER_ID: &str = "esphome";

/// The mDNS service type ESPHome devices with the native API announce.
pub const SERVICE_TYPE: &str = "_esphomelib._tcp.local.";

/// The native API over the Wi-Fi runner: what an announcement is, and one session.
#[derive(Debug, Clone, Copy, Default)]
pub struct EsphomeProtocol;

impl Protocol for EsphomeProtocol {
    fn adapter(&self) -> &'static str {
        ADAPTER_ID
    }

    fn service_types(&self) -> &'static [&'static str] {
        &[SERVICE_TYPE]
    }

    fn identify(&self, announcement: &Announcement) -> Option<Found> {
        identify(announcement)
    }

    fn session(self: Arc<Self>, link: Link) -> BoxFuture<Result<(), String>> {
        Box::pin(crate::session::run(link))
    }
}

/// What an `_esphomelib._tcp` announcement is, for the inbox: keyed by its MAC (TXT `mac`, 12
/// hex digits, lowercase), named by its `friendly_name` or else its node name (the instance
/// name). `None` for another service type or an announcement without a MAC (firmware older
/// than 2021), which has no stable identity to follow.
///
/// Maker and model: those of its `project_name` (`athom.smart-plug-v2`: `athom`,
/// `smart-plug-v2`) when it has one, else `ESPHome` and its board (`esp32dev`).
pub fn identify(a: &Announcement) -> Option<Found> {
    if a.service_type != SERVICE_TYPE {
        return None;
    }
    let key = native_id(a.txt.get("mac")?).ok()?;
    let txt = |k: &str| a.txt.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let name = txt("friendly_name").unwrap_or(&a.name).to_owned();
    let (manufacturer, model) = match txt("project_name").and_then(|p| p.split_once('.')) {
        Some((maker, product)) if !maker.is_empty() && !product.is_empty() => {
            (maker.to_owned(), Some(product.to_owned()))
        }
        _ => ("ESPHome".to_owned(), txt("board").or(txt("platform")).map(str::to_owned)),
    };
    Some(Found {
        device: DeviceId::new(ADAPTER_ID, &key),
        key,
        name,
        manufacturer: Some(manufacturer),
        model,
        transport: Transport::Wifi,
        address: a.addresses.first().map(|ip| ip.to_string()),
        supported: true,
        kind: Some("esphome".into()),
    })
}

/// Checks a secret before the hub stores it: named by a MAC address, holding a 32-byte key in
/// base64.
pub fn check_secret(name: &str, value: &str) -> Result<(), String> {
    native_id(name).map_err(|_| {
        format!(
            "`{name}` is not a MAC address: name the key by the device's MAC, like acbc32890ea9 (its inbox key) or AC:BC:32:89:0E:A9"
        )
    })?;
    NoiseKey::from_base64(value).map(|_| ()).map_err(|e| e.to_string())
}

/// The ESPHome adapter.
#[derive(Debug, Clone, Default)]
pub struct EsphomeAdapter;

impl EsphomeAdapter {
    /// The adapter.
    pub fn new() -> EsphomeAdapter {
        EsphomeAdapter
    }
}

impl Adapter for EsphomeAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "ESPHome",
            discovers: Discovers { mdns: vec![SERVICE_TYPE.to_owned()], ..Discovers::default() },
            actions: &[],
            secrets: Some(SecretSpec {
                names: "an ESPHome device's MAC address, as its inbox key shows it (acbc32890ea9) or with colons (AC:BC:32:89:0E:A9), for its API encryption key",
                values: "the device's API encryption key: the `api: encryption: key:` of its YAML, 32 bytes in base64 (44 characters)",
                check: check_secret,
            }),
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(hearth_mdns::lan::run(EsphomeProtocol, ctx))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use hearth_sdk::{Secret, Secrets};

    use super::*;
    use crate::session::find_key;

    /// An announcement with the TXT records ESPHome's mDNS component (`mdns_component.cpp`)
    /// sets for the native API: friendly_name, version, config_hash, mac, platform, board,
    /// network, api_encryption (or api_encryption_supported), project_name, project_version.
    fn announcement(txt: &[(&str, &str)]) -> Announcement {
        Announcement {
            service_type: SERVICE_TYPE.into(),
            instance: "living-room-plug._esphomelib._tcp.local.".into(),
            name: "living-room-plug".into(),
            host: "living-room-plug.local.".into(),
            addresses: vec!["192.168.1.23".parse::<IpAddr>().unwrap()],
            port: 6053,
            txt: txt.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        }
    }

    const PLUG: &[(&str, &str)] = &[
        ("friendly_name", "Living room plug"),
        ("version", "2025.5.0"),
        ("config_hash", "5c1d0f2a"),
        ("mac", "08f9e0a1b2c3"),
        ("platform", "ESP8266"),
        ("board", "esp8285"),
        ("network", "wifi"),
        ("api_encryption", "Noise_NNpsk0_25519_ChaChaPoly_SHA256"),
        ("project_name", "athom.smart-plug-v2"),
        ("project_version", "1.0.3"),
    ];

    #[test]
    fn an_announcement_is_keyed_by_its_mac_and_named_by_its_friendly_name() {
        let found = identify(&announcement(PLUG)).unwrap();
        assert_eq!(
            found,
            Found {
                key: "08f9e0a1b2c3".into(),
                device: DeviceId::new("esphome", "08f9e0a1b2c3"),
                name: "Living room plug".into(),
                manufacturer: Some("athom".into()),
                model: Some("smart-plug-v2".into()),
                transport: Transport::Wifi,
                address: Some("192.168.1.23".into()),
                supported: true,
                kind: Some("esphome".into()),
            }
        );
        // Without a friendly name nor a project: the node name, ESPHome and the board.
        let bare = announcement(&[("version", "2024.6.1"), ("mac", "08F9E0A1B2C3"), ("board", "esp32dev")]);
        let found = identify(&bare).unwrap();
        assert_eq!(found.key, "08f9e0a1b2c3");
        assert_eq!(found.name, "living-room-plug");
        assert_eq!((found.manufacturer.as_deref(), found.model.as_deref()), (Some("ESPHome"), Some("esp32dev")));
    }

    #[test]
    fn announcements_without_an_identity_or_of_another_type_are_not_esphome_devices() {
        assert_eq!(identify(&announcement(&[("version", "1.14.0")])), None);
        assert_eq!(identify(&announcement(&[("mac", "not-a-mac")])), None);
        let mut other = announcement(PLUG);
        other.service_type = "_http._tcp.local.".into();
        assert_eq!(identify(&other), None);
    }

    #[test]
    fn secrets_are_named_by_a_mac_and_hold_a_key() {
        let key = "QRTIErOb/fcE9Ukd/5qA3RGYMn0Y+p06U58SCtOXvPc=";
        assert_eq!(check_secret("08f9e0a1b2c3", key), Ok(()));
        assert_eq!(check_secret("08:F9:E0:A1:B2:C3", key), Ok(()));
        let e = check_secret("living-room-plug", key).unwrap_err();
        assert!(e.contains("is not a MAC address") && e.contains("acbc32890ea9"), "{e}");
        let e = check_secret("08f9e0a1b2c3", "QRTIErOb/fcE9Ukd").unwrap_err();
        assert_eq!(e, "the encryption key must be 32 bytes (44 base64 characters), not 12 bytes");
        let e = check_secret("08f9e0a1b2c3", "not base64!").unwrap_err();
        assert!(!e.contains("not base64!"), "{e}");
    }

    #[test]
    fn the_key_is_found_by_the_mac_in_any_notation() {
        let secrets = |name: &str| {
            Secrets::channel(BTreeMap::from([(name.to_owned(), Secret::new("k")), ("other".into(), Secret::new("x"))]))
                .1
        };
        for name in ["08f9e0a1b2c3", "08:F9:E0:A1:B2:C3", "08-f9-e0-a1-b2-c3"] {
            assert_eq!(find_key(&secrets(name), "08f9e0a1b2c3").map(|s| s.expose().to_owned()), Some("k".into()));
        }
        assert_eq!(find_key(&secrets("aabbccddeeff"), "08f9e0a1b2c3"), None);
    }

    #[test]
    fn the_manifest_names_the_service_type_and_the_secrets() {
        let m = EsphomeAdapter::new().manifest();
        assert_eq!((m.id, m.name), ("esphome", "ESPHome"));
        assert_eq!(m.discovers.mdns, ["_esphomelib._tcp.local."]);
        let spec = m.secrets.unwrap();
        assert!(spec.names.contains("MAC") && spec.values.contains("base64"));
        assert_eq!(EsphomeProtocol.service_types(), [SERVICE_TYPE]);
    }
}
