//! mDNS discovery for Hearth's Wi-Fi adapters (Shelly, WLED, ESPHome, and devices seen but not
//! supported yet), on the interfaces the configuration allows.
//!
//! mdns-sd answers and queries on every interface by default, the machine's real network
//! included. [`Browser::start`] takes the list of interfaces to use (empty: all), so a hub on a
//! machine with several networks speaks only on the home's, and tests use a network namespace's
//! loopback only.
//!
//! Every answer about a service type becomes a [`Seen`] on a tokio channel: an instance resolved
//! with its host, addresses, port and TXT records, or removed. The adapters decide what an
//! instance is (its stable identity comes from the TXT records or the instance name, never from
//! the address, which DHCP may change).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

pub mod adapter;
pub mod lan;
pub mod testing;

use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

/// Why discovery cannot run.
#[derive(Debug, thiserror::Error)]
#[error("mDNS discovery: {0}")]
pub struct MdnsError(pub String);

/// A service instance as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The service type (`_wled._tcp.local.`).
    pub service_type: String,
    /// The instance's full name (`wled-kitchen._wled._tcp.local.`).
    pub instance: String,
    /// The instance name alone (`wled-kitchen`).
    pub name: String,
    /// The host (`wled-kitchen.local.`).
    pub host: String,
    /// Its addresses, IPv4 first.
    pub addresses: Vec<IpAddr>,
    /// Its port.
    pub port: u16,
    /// Its TXT records.
    pub txt: BTreeMap<String, String>,
}

/// What discovery learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// An instance was resolved (again: its address may have changed).
    Resolved(Announcement),
    /// An instance said goodbye (or its records expired).
    Removed {
        /// The service type.
        service_type: String,
        /// The instance's full name.
        instance: String,
    },
}

/// A running mDNS responder and browser; stops when dropped.
pub struct Browser {
    daemon: ServiceDaemon,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Browser")
    }
}

impl Browser {
    /// Starts mDNS on `interfaces` (names like `eth0`, `wlan0`, `lo`; empty: every interface).
    pub fn start(interfaces: &[String]) -> Result<Browser, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(|e| MdnsError(format!("cannot start ({e})")))?;
        if !interfaces.is_empty() {
            daemon.disable_interface(IfKind::All).map_err(|e| MdnsError(e.to_string()))?;
            for name in interfaces {
                daemon.enable_interface(IfKind::Name(name.clone())).map_err(|e| MdnsError(e.to_string()))?;
                if name == "lo" {
                    daemon.enable_interface(IfKind::LoopbackV4).map_err(|e| MdnsError(e.to_string()))?;
                }
            }
        }
        Ok(Browser { daemon })
    }

    /// Browses `service_types` (`_shelly._tcp.local.`); what is seen arrives on the channel,
    /// which closes when the browser stops.
    pub fn browse(&self, service_types: &[&str]) -> Result<mpsc::Receiver<Seen>, MdnsError> {
        let (tx, rx) = mpsc::channel(256);
        for ty in service_types {
            let events = self.daemon.browse(ty).map_err(|e| MdnsError(format!("cannot browse {ty} ({e})")))?;
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("mdns-browse".into())
                .spawn(move || {
                    while let Ok(event) = events.recv() {
                        let seen = match event {
                            ServiceEvent::ServiceResolved(s) => {
                                let mut addresses: Vec<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
                                addresses.sort_by_key(|a| (a.is_ipv6(), *a));
                                let name = s
                                    .fullname
                                    .strip_suffix(&format!(".{}", s.ty_domain))
                                    .unwrap_or(&s.fullname)
                                    .to_owned();
                                Seen::Resolved(Announcement {
                                    service_type: s.ty_domain.clone(),
                                    instance: s.fullname.clone(),
                                    name,
                                    host: s.host.clone(),
                                    addresses,
                                    port: s.port,
                                    txt: s
                                        .txt_properties
                                        .iter()
                                        .map(|p| (p.key().to_owned(), p.val_str().to_owned()))
                                        .collect(),
                                })
                            }
                            ServiceEvent::ServiceRemoved(service_type, instance) => {
                                Seen::Removed { service_type, instance }
                            }
                            _ => continue,
                        };
                        if tx.blocking_send(seen).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| MdnsError(format!("cannot start a thread ({e})")))?;
        }
        Ok(rx)
    }

    /// Announces a service (for device simulators and tests): `name` of `service_type` on
    /// `host` at `ip`:`port` with `txt`.
    pub fn announce(
        &self,
        service_type: &str,
        name: &str,
        host: &str,
        ip: IpAddr,
        port: u16,
        txt: &[(&str, &str)],
    ) -> Result<(), MdnsError> {
        let info = ServiceInfo::new(service_type, name, host, ip.to_string(), port, txt)
            .map_err(|e| MdnsError(format!("cannot describe {name} ({e})")))?;
        self.daemon.register(info).map_err(|e| MdnsError(format!("cannot announce {name} ({e})")))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}
