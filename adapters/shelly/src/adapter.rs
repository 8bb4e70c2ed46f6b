//! The Shelly adapter in the Wi-Fi runner: which announcements are Shelly devices, the secrets
//! it takes (device passwords), and its manifest.
//!
//! Gen2 and later devices announce `_shelly._tcp` and `_http._tcp` (instance name = the device's
//! id, `shellyplus1pm-a8032ab12345`; TXT `gen=2`, `app=Plus1PM`, `ver=1.0.8`, sometimes `id`,
//! `fw_id`, `arch`). Gen1 devices announce only `_http._tcp` with a `shelly...` name and no
//! `gen`: they are listed in the inbox as not supported (they have no RPC API).

use std::sync::Arc;

use hearth_mdns::Announcement;
use hearth_mdns::lan::{Link, Protocol};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterManifest, BoxFuture, DeviceId, Discovers, Found, SecretSpec,
    Transport,
};

use crate::rpc::{ADAPTER_ID, MANUFACTURER};

/// The service types browsed: Gen2+ devices' own, and the generic HTTP one (Shelly names only).
pub const SERVICE_TYPES: &[&str] = &["_shelly._tcp.local.", "_http._tcp.local."];

/// The longest password a device takes.
pub const MAX_PASSWORD_CHARS: usize = 64;

/// The Shelly adapter: Gen2 and later devices (Plus, Pro, Gen3, Gen4) over their local RPC.
///
/// Configuration: the Wi-Fi runner's (`{"enabled", "interfaces", "offline_after_secs"}`).
/// Secrets: a password-protected device's password, under the device's id.
#[derive(Debug, Clone, Default)]
pub struct ShellyAdapter;

impl ShellyAdapter {
    /// The adapter.
    pub fn new() -> ShellyAdapter {
        ShellyAdapter
    }
}

impl Adapter for ShellyAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Shelly",
            discovers: Discovers {
                mdns: SERVICE_TYPES.iter().map(|t| (*t).to_owned()).collect(),
                ..Discovers::default()
            },
            actions: &[],
            secrets: Some(SecretSpec {
                names: "a password-protected Shelly's device id, as it shows it, like shellyplus1pm-a8032ab12345",
                values: "the password set on the device (its web page or the Shelly app; the user is always admin), 1 to 64 characters",
                check: check_secret,
            }),
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(hearth_mdns::lan::run(Shelly, ctx))
    }
}

/// The Shelly protocol, for the Wi-Fi runner.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shelly;

impl Protocol for Shelly {
    fn adapter(&self) -> &'static str {
        ADAPTER_ID
    }

    fn service_types(&self) -> &'static [&'static str] {
        SERVICE_TYPES
    }

    fn identify(&self, announcement: &Announcement) -> Option<Found> {
        identify(announcement)
    }

    fn session(self: Arc<Self>, link: Link) -> BoxFuture<Result<(), String>> {
        Box::pin(crate::session::run(link))
    }
}

/// What an announcement is: a Shelly keyed by its device id in lowercase (TXT `id`, else the
/// instance name), or `None` when it is not a Shelly (an `_http._tcp` service whose name does
/// not start with `shelly`, or a name that cannot be a device id). Gen1 devices (no `gen`, or
/// `gen=1`) are found but not supported.
pub fn identify(a: &Announcement) -> Option<Found> {
    let own_type = a.service_type.starts_with("_shelly._tcp");
    let shelly_http = a.service_type.starts_with("_http._tcp") && a.name.to_ascii_lowercase().starts_with("shelly");
    if !(own_type || shelly_http) {
        return None;
    }
    let txt = |key: &str| a.txt.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let key = txt("id").unwrap_or(&a.name).to_ascii_lowercase();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        tracing::debug!(adapter = ADAPTER_ID, name = %a.name, "an announcement whose name is not a Shelly device id is skipped");
        return None;
    }
    // `_shelly._tcp` is announced by Gen2 and later only; `_http._tcp` by Gen1 too, which
    // sends no `gen`.
    let generation = match txt("gen").map(str::parse::<u64>) {
        Some(Ok(g)) => g,
        Some(Err(_)) => return None,
        None if own_type => 2,
        None => 1,
    };
    let supported = generation >= 2;
    Some(Found {
        device: DeviceId::new(ADAPTER_ID, &key),
        key,
        name: a.name.clone(),
        manufacturer: Some(MANUFACTURER.to_owned()),
        model: txt("app").map(str::to_owned),
        transport: Transport::Wifi,
        address: a.addresses.first().map(ToString::to_string),
        supported,
        kind: Some(if supported { "shelly" } else { "shelly_gen1" }.to_owned()),
    })
}

/// Checks a secret entered through the API: named after a device id (lowercase letters,
/// digits and `-`), a password of 1 to 64 printable characters.
pub fn check_secret(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(format!(
            "{name:?} is not a Shelly device id: name the secret after the device's id, in lowercase, like shellyplus1pm-a8032ab12345"
        ));
    }
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "the password of {name} has {chars} characters; a Shelly password has 1 to {MAX_PASSWORD_CHARS}"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("the password of {name} holds a control character; a Shelly password is printable text"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn announcement(service_type: &str, name: &str, txt: &[(&str, &str)]) -> Announcement {
        Announcement {
            service_type: service_type.into(),
            instance: format!("{name}.{service_type}"),
            name: name.into(),
            host: format!("{name}.local."),
            addresses: vec!["192.168.1.23".parse().expect("ip")],
            port: 80,
            txt: txt.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_gen2_device_is_keyed_by_its_id() {
        let a = announcement(
            "_shelly._tcp.local.",
            "ShellyPlus1PM-A8032AB12345",
            &[("gen", "2"), ("app", "Plus1PM"), ("ver", "1.0.8"), ("arch", "esp8266")],
        );
        let f = identify(&a).expect("a Shelly");
        assert_eq!(f.key, "shellyplus1pm-a8032ab12345");
        assert_eq!(f.device, DeviceId::new("shelly", &f.key));
        assert_eq!(f.device.as_str(), "shelly:shellyplus1pm-a8032ab12345");
        assert_eq!(f.name, "ShellyPlus1PM-A8032AB12345");
        assert_eq!((f.manufacturer.as_deref(), f.model.as_deref()), (Some("Shelly"), Some("Plus1PM")));
        assert_eq!((f.transport, f.supported, f.kind.as_deref()), (Transport::Wifi, true, Some("shelly")));
        assert_eq!(f.address.as_deref(), Some("192.168.1.23"));

        // The TXT id wins over the instance name; the same device over `_http._tcp` is the same key.
        let a = announcement(
            "_http._tcp.local.",
            "shellyplus1pm-a8032ab12345",
            &[("gen", "2"), ("id", "shellyplus1pm-a8032ab12345"), ("app", "Plus1PM")],
        );
        assert_eq!(identify(&a).expect("a Shelly").device.as_str(), "shelly:shellyplus1pm-a8032ab12345");
        let a = announcement("_shelly._tcp.local.", "Kitchen", &[("gen", "3"), ("id", "shelly1pmg3-34cdb0770c5c")]);
        assert_eq!(identify(&a).expect("a Shelly").key, "shelly1pmg3-34cdb0770c5c");
        // `_shelly._tcp` without `gen` is still Gen2+.
        let a = announcement("_shelly._tcp.local.", "shellypro4pm-f008d1d8b8b8", &[]);
        assert!(identify(&a).expect("a Shelly").supported);
    }

    #[test]
    fn gen1_devices_are_seen_but_not_supported() {
        let a = announcement("_http._tcp.local.", "shelly1-34945472A190", &[]);
        let f = identify(&a).expect("a Shelly");
        assert_eq!(
            (f.key.as_str(), f.supported, f.kind.as_deref()),
            ("shelly1-34945472a190", false, Some("shelly_gen1"))
        );
        let a = announcement("_http._tcp.local.", "shellyswitch25-ABCDEF", &[("gen", "1")]);
        assert!(!identify(&a).expect("a Shelly").supported);
    }

    #[test]
    fn other_http_services_and_odd_names_are_not_shellies() {
        assert_eq!(identify(&announcement("_http._tcp.local.", "My NAS", &[])), None);
        assert_eq!(identify(&announcement("_http._tcp.local.", "printer", &[("gen", "2")])), None);
        assert_eq!(identify(&announcement("_wled._tcp.local.", "shelly-lookalike", &[])), None);
        assert_eq!(identify(&announcement("_shelly._tcp.local.", "a b/c", &[])), None);
        assert_eq!(identify(&announcement("_shelly._tcp.local.", "shellyplus1-x", &[("gen", "two")])), None);
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(check_secret("shellyplus1pm-a8032ab12345", "secret pw"), Ok(()));
        assert_eq!(check_secret("shellyplus1pm-a8032ab12345", &"x".repeat(64)), Ok(()));
        assert_eq!(check_secret("shellyplus1pm-a8032ab12345", "pässwörd"), Ok(()));
        for (name, value, says) in [
            ("ShellyPlus1PM-A8032AB12345", "pw", "in lowercase"),
            ("", "pw", "not a Shelly device id"),
            ("shelly:shellyplus1pm-a8032ab12345", "pw", "not a Shelly device id"),
            ("shellyplus1pm-a8032ab12345", "", "has 0 characters"),
            ("shellyplus1pm-a8032ab12345", &"x".repeat(65), "has 65 characters"),
            ("shellyplus1pm-a8032ab12345", "tab\there", "control character"),
        ] {
            let e = check_secret(name, value).expect_err(name);
            assert!(e.contains(says), "{name:?}: {e}");
        }
    }

    #[test]
    fn the_manifest_lists_the_service_types_and_the_secrets() {
        let m = ShellyAdapter::new().manifest();
        assert_eq!(m.id, "shelly");
        assert_eq!(m.discovers.mdns, vec!["_shelly._tcp.local.", "_http._tcp.local."]);
        let spec = m.secrets.expect("secrets");
        assert!(spec.names.contains("shellyplus1pm-a8032ab12345"));
        assert_eq!((spec.check)("shellyplus1pm-a8032ab12345", "pw"), Ok(()));
    }
}
