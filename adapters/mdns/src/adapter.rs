//! The network discovery adapter: devices announced over mDNS that no adapter of this hub
//! speaks yet (HomeKit accessories, Hue bridges) are listed in the discovery inbox as "seen, not
//! supported yet", keyed by their own identity (a HomeKit device id, a Hue bridge id), so an
//! address that changes is the same entry.
//!
//! Configuration (`[adapters.mdns]`): `{"enabled": false, "interfaces": ["eth0"]}`; interfaces
//! empty means every interface.

use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, BoxFuture,
    DeviceId, Discovers, Found, Transport,
};
use serde::Deserialize;

use crate::{Announcement, Browser, Seen};

/// The adapter id.
pub const ADAPTER_ID: &str = "mdns";

/// Service types of devices seen but not supported yet, with their kind and maker.
const SEEN: &[(&str, &str, &str)] =
    &[("_hap._tcp.local.", "homekit", "HomeKit accessory"), ("_hue._tcp.local.", "hue", "Philips Hue")];

/// The adapter's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run it.
    pub enabled: bool,
    /// The interfaces to speak mDNS on; every interface when empty.
    pub interfaces: Vec<String>,
}

/// The network discovery adapter.
#[derive(Debug, Clone, Default)]
pub struct MdnsAdapter;

impl MdnsAdapter {
    /// The adapter.
    pub fn new() -> MdnsAdapter {
        MdnsAdapter
    }
}

impl Adapter for MdnsAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER_ID,
            name: "Network discovery",
            discovers: Discovers {
                mdns: SEEN.iter().map(|(t, _, _)| (*t).to_owned()).collect(),
                ..Discovers::default()
            },
            actions: &[],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

/// What a seen-but-unsupported announcement is, for the inbox.
pub fn found(a: &Announcement) -> Option<Found> {
    let (_, kind, maker) = SEEN.iter().find(|(t, _, _)| *t == a.service_type)?;
    let identity = match *kind {
        "homekit" => a.txt.get("id"),
        _ => a.txt.get("bridgeid"),
    }
    .filter(|v| !v.trim().is_empty())
    .cloned()
    .unwrap_or_else(|| a.name.clone());
    let key = format!("{kind}:{}", identity.to_lowercase());
    let model = match *kind {
        "homekit" => a.txt.get("md"),
        _ => a.txt.get("modelid"),
    }
    .cloned();
    Some(Found {
        device: DeviceId::new(ADAPTER_ID, &key),
        key,
        name: a.name.clone(),
        manufacturer: Some((*maker).to_owned()),
        model,
        transport: Transport::Wifi,
        address: a.addresses.first().map(ToString::to_string),
        supported: false,
        kind: Some((*kind).to_owned()),
    })
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config: Config = if ctx.config.is_null() {
        Config::default()
    } else {
        serde_json::from_value(ctx.config.clone()).map_err(|e| AdapterError(format!("[adapters.mdns]: {e}")))?
    };
    let browser = match Browser::start(&config.interfaces) {
        Ok(b) => b,
        Err(e) => {
            let status = AdapterStatus::with(AdapterState::Unavailable, e.to_string()).with_code("no_network");
            ctx.events.status(status).await?;
            ctx.shutdown.wait().await;
            return Ok(());
        }
    };
    let types: Vec<&str> = SEEN.iter().map(|(t, _, _)| *t).collect();
    let mut seen = browser.browse(&types).map_err(|e| AdapterError(e.to_string()))?;
    ctx.events.status(AdapterStatus::running()).await?;
    loop {
        tokio::select! {
            () = ctx.shutdown.wait() => return Ok(()),
            s = seen.recv() => match s {
                Some(Seen::Resolved(a)) => {
                    if let Some(found) = found(&a) {
                        ctx.events.send(AdapterEvent::Found { found }).await?;
                    }
                }
                Some(Seen::Removed { .. }) => {}
                None => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_homekit_accessory_is_keyed_by_its_device_id_not_its_address() {
        let mut a = Announcement {
            service_type: "_hap._tcp.local.".into(),
            instance: "Living room TV._hap._tcp.local.".into(),
            name: "Living room TV".into(),
            host: "tv.local.".into(),
            addresses: vec!["192.168.1.61".parse().expect("ip")],
            port: 8080,
            txt: BTreeMap::from([
                ("id".to_owned(), "AA:BB:CC:DD:EE:01".to_owned()),
                ("md".to_owned(), "LG TV".to_owned()),
            ]),
        };
        let f = found(&a).expect("seen");
        assert_eq!(
            (f.key.as_str(), f.device.as_str()),
            ("homekit:aa:bb:cc:dd:ee:01", "mdns:homekit:aa:bb:cc:dd:ee:01")
        );
        assert_eq!((f.model.as_deref(), f.supported, f.transport), (Some("LG TV"), false, Transport::Wifi));
        assert_eq!(f.address.as_deref(), Some("192.168.1.61"));
        a.addresses = vec!["192.168.1.77".parse().expect("ip")];
        assert_eq!(found(&a).expect("seen").key, f.key, "a new address, the same device");
        a.service_type = "_printer._tcp.local.".into();
        assert_eq!(found(&a), None);
    }

    #[test]
    fn a_hue_bridge_is_seen_not_supported_keyed_by_its_bridge_id_with_its_model() {
        // What a Hue bridge (v2) announces: `_hue._tcp` with TXT `bridgeid` and `modelid`.
        let mut a = Announcement {
            service_type: "_hue._tcp.local.".into(),
            instance: "Philips Hue - 6B4A1C._hue._tcp.local.".into(),
            name: "Philips Hue - 6B4A1C".into(),
            host: "ecb5fafffe6b4a1c.local.".into(),
            addresses: vec!["192.168.1.40".parse().expect("ip")],
            port: 443,
            txt: BTreeMap::from([
                ("bridgeid".to_owned(), "ECB5FAFFFE6B4A1C".to_owned()),
                ("modelid".to_owned(), "BSB002".to_owned()),
            ]),
        };
        let f = found(&a).expect("seen");
        assert_eq!(
            f,
            Found {
                device: DeviceId::new(ADAPTER_ID, "hue:ecb5fafffe6b4a1c"),
                key: "hue:ecb5fafffe6b4a1c".into(),
                name: "Philips Hue - 6B4A1C".into(),
                manufacturer: Some("Philips Hue".into()),
                model: Some("BSB002".into()),
                transport: Transport::Wifi,
                address: Some("192.168.1.40".into()),
                supported: false,
                kind: Some("hue".into()),
            }
        );
        // DHCP moves it: the same entry, at the new address.
        a.addresses = vec!["192.168.1.41".parse().expect("ip")];
        let moved = found(&a).expect("seen");
        assert_eq!((moved.key, moved.address.as_deref()), (f.key, Some("192.168.1.41")));
        // Hue is browsed by this adapter.
        assert!(MdnsAdapter::new().manifest().discovers.mdns.contains(&"_hue._tcp.local.".to_owned()));
    }
}
