//! The WLED adapter: controllers found over mDNS (`_wled._tcp`), offered in the discovery inbox
//! by their MAC, and kept connected by `hearth_mdns::lan` with [`crate::session`].
//!
//! WLED announces `_wled._tcp` (next to `_http._tcp`) with one TXT record, `mac=<12 hex>`, the
//! MAC as its own `info.mac` writes it; the instance name is its mDNS host name (`wled-0455f0`
//! unless the user changed it). The inbox key is that MAC, normalised (lowercase, no
//! separators), so the device is `wled:<mac>`, the id [`crate::json::device_id`] gives from
//! `/json/info`, whatever address DHCP hands out.
//!
//! The announcement says nothing of the hardware, and the hub asks a device nothing before it is
//! accepted, so a controller waits in the inbox with model `WLED` (its firmware, all the
//! announcement tells); once accepted and connected, the device's model comes from `/json/info`
//! (`WLED on esp32`, `WLED on ESP32-S3`).
//!
//! Configuration (`[adapters.wled]`): the runner's `LanConfig`,
//! `{"enabled": false, "interfaces": ["eth0"], "offline_after_secs": 60}`.

use std::sync::Arc;

use hearth_mdns::Announcement;
use hearth_mdns::lan::{Link, Protocol};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterManifest, BoxFuture, DeviceId, Discovers, Found, Transport,
};

use crate::json::{ADAPTER, MANUFACTURER, normalize_mac};

/// The mDNS service type WLED announces.
pub const SERVICE_TYPE: &str = "_wled._tcp.local.";

/// The model of a controller in the inbox, before a connection reads its board from
/// `/json/info` (its announcement carries only its MAC).
pub const MODEL_UNTIL_CONNECTED: &str = "WLED";

/// The WLED adapter.
#[derive(Debug, Clone, Default)]
pub struct WledAdapter;

impl WledAdapter {
    /// The adapter.
    pub fn new() -> WledAdapter {
        WledAdapter
    }
}

impl Adapter for WledAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: ADAPTER,
            name: "WLED",
            discovers: Discovers { mdns: vec![SERVICE_TYPE.to_owned()], ..Discovers::default() },
            actions: &[],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(hearth_mdns::lan::run(WledProtocol, ctx))
    }
}

/// WLED as a `hearth_mdns::lan` protocol: what its announcements are, and one connection
/// ([`crate::session::run`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct WledProtocol;

impl Protocol for WledProtocol {
    fn adapter(&self) -> &'static str {
        ADAPTER
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

/// What a `_wled._tcp` announcement is: a WLED controller keyed by the MAC of its `mac` TXT
/// record. `None` for another service type, or without a usable MAC (WLED before 0.10 sent
/// none: its id could only come from a connection, so it is not offered).
pub fn identify(a: &Announcement) -> Option<Found> {
    if !a.service_type.eq_ignore_ascii_case(SERVICE_TYPE) {
        return None;
    }
    let Some(mac) = a.txt.get("mac").and_then(|m| normalize_mac(m)) else {
        tracing::debug!(instance = %a.instance, txt = ?a.txt, "A WLED announcement without a usable `mac` TXT record was skipped.");
        return None;
    };
    let name = a.name.trim();
    Some(Found {
        device: DeviceId::new(ADAPTER, &mac),
        name: if name.is_empty() { format!("WLED {mac}") } else { name.to_owned() },
        manufacturer: Some(MANUFACTURER.to_owned()),
        // Only the firmware is known before a connection; the board comes from `/json/info`.
        model: Some(MODEL_UNTIL_CONNECTED.to_owned()),
        transport: Transport::Wifi,
        address: a.addresses.first().map(ToString::to_string),
        supported: true,
        kind: Some("wled".to_owned()),
        key: mac,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::json::{Info, device_id};

    fn announcement(service_type: &str, txt: &[(&str, &str)]) -> Announcement {
        Announcement {
            service_type: service_type.to_owned(),
            instance: "wled-0455f0._wled._tcp.local.".to_owned(),
            name: "wled-0455f0".to_owned(),
            host: "wled-0455f0.local.".to_owned(),
            addresses: vec!["10.10.10.120".parse().unwrap(), "fe80::1".parse().unwrap()],
            port: 80,
            txt: txt.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn an_announcement_is_keyed_by_the_mac_its_info_also_gives() {
        // WLED's own announcement: `MDNS.addServiceTxt("wled", "tcp", "mac", escapedMac)`.
        let found = identify(&announcement(SERVICE_TYPE, &[("mac", "8813bf0455f0")])).unwrap();
        assert_eq!(
            found,
            Found {
                key: "8813bf0455f0".into(),
                device: DeviceId::new("wled", "8813bf0455f0"),
                name: "wled-0455f0".into(),
                manufacturer: Some("WLED".into()),
                model: Some("WLED".into()),
                transport: Transport::Wifi,
                address: Some("10.10.10.120".into()),
                supported: true,
                kind: Some("wled".into()),
            }
        );
        let info = Info { mac: Some("8813bf0455f0".into()), ..Info::default() };
        assert_eq!(found.device, device_id(&info).unwrap());
        // Another spelling of the same MAC is the same device.
        let colons = identify(&announcement("_WLED._tcp.local.", &[("mac", "88:13:BF:04:55:F0")])).unwrap();
        assert_eq!(colons.device, found.device);
    }

    #[test]
    fn other_services_and_announcements_without_a_mac_are_not_offered() {
        assert_eq!(identify(&announcement("_http._tcp.local.", &[("mac", "8813bf0455f0")])), None);
        assert_eq!(identify(&announcement(SERVICE_TYPE, &[])), None);
        assert_eq!(identify(&announcement(SERVICE_TYPE, &[("mac", "")])), None);
        assert_eq!(identify(&announcement(SERVICE_TYPE, &[("mac", "000000000000")])), None);
        assert_eq!(identify(&announcement(SERVICE_TYPE, &[("mac", "not-a-mac")])), None);
    }

    #[test]
    fn the_manifest_names_the_service_type() {
        let m = WledAdapter::new().manifest();
        assert_eq!((m.id, m.discovers.mdns.as_slice()), ("wled", &["_wled._tcp.local.".to_owned()][..]));
        assert_eq!(WledProtocol.service_types(), &["_wled._tcp.local."]);
        assert_eq!(WledProtocol.adapter(), "wled");
    }
}
