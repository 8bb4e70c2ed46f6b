//! The Yeelight adapter: bulbs found by Yeelight's own multicast search ([`crate::discovery`]),
//! offered in the discovery inbox by their id, and kept connected by `hearth_mdns::lan`
//! (`run_on`) with [`crate::session`].
//!
//! Every answer or advertisement becomes an announcement of service type [`SERVICE_TYPE`] whose
//! TXT records are its headers (names in lowercase: `id`, `model`, `fw_ver`, `support`, `name`,
//! `power` …), at the address and port of its `Location`. The inbox key is the bulb's `id` as 16
//! lowercase hex digits (`000000000015243f`), so the device is `yeelight:000000000015243f`
//! whatever address DHCP hands out.
//!
//! Configuration (`[adapters.yeelight]`), the Wi-Fi runner's keys:
//! `{"enabled": false, "interfaces": ["eth0"], "offline_after_secs": 60}`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_mdns::lan::{LanConfig, Link, Protocol};
use hearth_mdns::{Announcement, Seen};
use hearth_sdk::{
    Adapter, AdapterContext, AdapterError, AdapterManifest, AdapterState, AdapterStatus, BoxFuture, DeviceId,
    Discovers, Found, Transport,
};
use tokio::sync::mpsc;

use crate::api::{Bulb, normalize_id};
use crate::budget::Budget;
use crate::map::{ADAPTER, MANUFACTURER, default_name};

/// The service type of the announcements Yeelight's discovery makes (not an mDNS type).
pub const SERVICE_TYPE: &str = "yeelight";

/// `[adapters.yeelight]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Run the adapter (default `false`): it searches the network with multicast.
    pub enabled: bool,
    /// The interfaces to search on and listen for advertisements (`["eth0"]`); when empty,
    /// every interface with an IPv4 address but loopback (default empty).
    pub interfaces: Vec<String>,
    /// Seconds without an answer before a bulb is offline (default 60, at least 1).
    pub offline_after_secs: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config::from(LanConfig::default())
    }
}

impl From<LanConfig> for Config {
    fn from(c: LanConfig) -> Config {
        Config { enabled: c.enabled, interfaces: c.interfaces, offline_after_secs: c.offline_after_secs }
    }
}

impl Config {
    /// Reads `[adapters.yeelight]` (JSON `null` is the defaults); errors name the section and
    /// the key.
    pub fn from_json(json: &serde_json::Value) -> Result<Config, String> {
        LanConfig::from_json(ADAPTER, json).map(Config::from)
    }
}

/// The Yeelight adapter.
#[derive(Debug, Clone, Default)]
pub struct YeelightAdapter;

impl YeelightAdapter {
    /// The adapter.
    pub fn new() -> YeelightAdapter {
        YeelightAdapter
    }
}

impl Adapter for YeelightAdapter {
    fn manifest(&self) -> AdapterManifest {
        // Its discovery is neither mDNS, BLE nor MQTT: a search on 239.255.255.250:1982.
        AdapterManifest { id: ADAPTER, name: "Yeelight", discovers: Discovers::default(), actions: &[], secrets: None }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(run(ctx))
    }
}

async fn run(mut ctx: AdapterContext) -> Result<(), AdapterError> {
    let config = Config::from_json(&ctx.config).map_err(AdapterError)?;
    let idle = Duration::from_secs(config.offline_after_secs);
    let discovery = match crate::discovery::Discovery::start(&config.interfaces) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "Yeelight discovery cannot start.");
            let status = AdapterStatus::with(AdapterState::Unavailable, e).with_code("no_network");
            ctx.events.status(status).await?;
            ctx.shutdown.wait().await;
            return Ok(());
        }
    };
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>(64);
    let search = tokio::spawn(discovery.run(seen_tx, ctx.events.clone()));
    let result = hearth_mdns::lan::run_on(Arc::new(YeelightProtocol::new()), ctx, idle, seen_rx).await;
    search.abort();
    result
}

/// Yeelight as a `hearth_mdns::lan` protocol: what its announcements are, and one connection
/// ([`crate::session::run`]). It keeps each bulb's command budget across its connections.
#[derive(Debug, Default)]
pub struct YeelightProtocol {
    budgets: Mutex<HashMap<DeviceId, Arc<Mutex<Budget>>>>,
}

impl YeelightProtocol {
    /// A protocol with no budgets spent yet.
    pub fn new() -> YeelightProtocol {
        YeelightProtocol::default()
    }

    /// The command budget of `device` (full the first time).
    pub fn budget(&self, device: &DeviceId) -> Arc<Mutex<Budget>> {
        let mut budgets = self.budgets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        budgets
            .entry(device.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Budget::new(tokio::time::Instant::now()))))
            .clone()
    }
}

impl Protocol for YeelightProtocol {
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
        let budget = self.budget(&link.target.device);
        Box::pin(crate::session::run(link, budget))
    }
}

/// The announcement a bulb's answer or advertisement makes: named by its own name (else its
/// model and id), at its `Location`, its headers as TXT records.
pub fn announcement(bulb: &Bulb) -> Announcement {
    let name = bulb.header("name").map_or_else(|| default_name(bulb.header("model"), &bulb.key), str::to_owned);
    Announcement {
        service_type: SERVICE_TYPE.to_owned(),
        instance: format!("{}.{SERVICE_TYPE}", bulb.key),
        name,
        host: bulb.address.ip().to_string(),
        addresses: vec![bulb.address.ip()],
        port: bulb.address.port(),
        txt: bulb.headers.clone(),
    }
}

/// What an announcement is: a Yeelight bulb keyed by its `id`. `None` for another service type
/// or without a usable id.
pub fn identify(a: &Announcement) -> Option<Found> {
    if a.service_type != SERVICE_TYPE {
        return None;
    }
    let key = a.txt.get("id").and_then(|id| normalize_id(id))?;
    let model = a.txt.get("model").filter(|m| !m.is_empty()).cloned();
    let name = a.name.trim();
    Some(Found {
        device: DeviceId::new(ADAPTER, &key),
        name: if name.is_empty() { default_name(model.as_deref(), &key) } else { name.to_owned() },
        manufacturer: Some(MANUFACTURER.to_owned()),
        model,
        transport: Transport::Wifi,
        address: a.addresses.first().map(IpAddr::to_string),
        supported: true,
        kind: Some(SERVICE_TYPE.to_owned()),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parse_datagram;

    const ANSWER: &str = "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nDate: \r\nExt: \r\n\
        Location: yeelight://192.168.1.239:55443\r\nServer: POSIX UPnP/1.0 YGLC/1\r\n\
        id: 0x000000000015243f\r\nmodel: color\r\nfw_ver: 18\r\nsupport: get_prop set_power set_bright\r\n\
        power: on\r\nbright: 100\r\ncolor_mode: 2\r\nct: 4000\r\nrgb: 16711680\r\nhue: 100\r\nsat: 35\r\nname: my_bulb\r\n";

    #[test]
    fn an_answer_is_offered_by_the_bulbs_id_at_its_location() {
        let bulb = parse_datagram(ANSWER.as_bytes()).unwrap().unwrap();
        let a = announcement(&bulb);
        assert_eq!((a.addresses.clone(), a.port), (vec!["192.168.1.239".parse::<IpAddr>().unwrap()], 55443));
        assert_eq!(a.txt.get("support").map(String::as_str), Some("get_prop set_power set_bright"));
        let found = identify(&a).unwrap();
        assert_eq!(
            found,
            Found {
                key: "000000000015243f".into(),
                device: DeviceId::new("yeelight", "000000000015243f"),
                name: "my_bulb".into(),
                manufacturer: Some("Yeelight".into()),
                model: Some("color".into()),
                transport: Transport::Wifi,
                address: Some("192.168.1.239".into()),
                supported: true,
                kind: Some("yeelight".into()),
            }
        );
        // A bulb without a name of its own is named by its model and id.
        let unnamed = parse_datagram(ANSWER.replace("name: my_bulb", "name:").as_bytes()).unwrap().unwrap();
        assert_eq!(identify(&announcement(&unnamed)).unwrap().name, "Yeelight color 15243f");
    }

    #[test]
    fn other_announcements_are_not_offered() {
        let bulb = parse_datagram(ANSWER.as_bytes()).unwrap().unwrap();
        let mut a = announcement(&bulb);
        a.service_type = "_wled._tcp.local.".into();
        assert_eq!(identify(&a), None);
        let mut a = announcement(&bulb);
        a.txt.remove("id");
        assert_eq!(identify(&a), None);
    }

    #[test]
    fn the_configuration_takes_the_wifi_keys_and_refuses_others() {
        assert_eq!(
            Config::from_json(&serde_json::Value::Null),
            Ok(Config { enabled: false, interfaces: Vec::new(), offline_after_secs: 60 })
        );
        assert_eq!(
            Config::from_json(&serde_json::json!({"enabled": true, "interfaces": ["wlan0"], "offline_after_secs": 30})),
            Ok(Config { enabled: true, interfaces: vec!["wlan0".into()], offline_after_secs: 30 })
        );
        let e = Config::from_json(&serde_json::json!({"music_mode": true})).unwrap_err();
        assert!(e.contains("[adapters.yeelight]") && e.contains("unknown field `music_mode`"), "{e}");
        let e = Config::from_json(&serde_json::json!({"offline_after_secs": 0})).unwrap_err();
        assert!(e.contains("[adapters.yeelight] offline_after_secs must be at least 1"), "{e}");
    }

    #[test]
    fn the_manifest_is_the_adapters() {
        let m = YeelightAdapter::new().manifest();
        assert_eq!((m.id, m.name), ("yeelight", "Yeelight"));
        assert_eq!(YeelightProtocol::new().adapter(), "yeelight");
    }
}
