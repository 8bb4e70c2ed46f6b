//! Yeelight's discovery: a search sent to the multicast group 239.255.255.250:1982 on each
//! configured interface (at start, again after [`SECOND_SEARCH`], then every [`SEARCH_EVERY`]),
//! the bulbs' unicast answers to it, and the advertisements (`NOTIFY`) bulbs send to the group
//! when they join the network, heard on a socket bound to port 1982 with address reuse (other
//! apps, and other bulbs in tests, share the port) and joined to the group on each interface.
//!
//! Each answer or advertisement becomes a [`Seen::Resolved`] for the Wi-Fi runner
//! ([`crate::adapter::announcement`]). A datagram that is neither a bulb nor a search is sent as
//! `InputRejected` (logged once per source) and skipped.
//!
//! The interfaces are looked up again before each search, so one that comes up later (Wi-Fi
//! after boot) is searched on from then.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use hearth_mdns::Seen;
use hearth_sdk::{AdapterEvent, EventSender};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::api::{DISCOVERY_PORT, GROUP, SEARCH, parse_datagram};

/// When the search is sent again after the first (a datagram may be lost).
pub const SECOND_SEARCH: Duration = Duration::from_secs(3);
/// How often the search is sent after that.
pub const SEARCH_EVERY: Duration = Duration::from_secs(180);
/// The most sources whose bad datagrams are remembered as logged.
const MAX_LOGGED_SOURCES: usize = 256;

/// The IPv4 addresses of `interfaces` (names such as `eth0`, `wlan0`, `lo`); for an empty list,
/// those of every interface but loopback. A named interface without an IPv4 address is an
/// error naming it.
pub fn interface_addresses(interfaces: &[String]) -> Result<Vec<Ipv4Addr>, String> {
    let all = if_addrs::get_if_addrs().map_err(|e| format!("cannot list the network interfaces ({e})"))?;
    let v4 = |i: &if_addrs::Interface| match i.ip() {
        std::net::IpAddr::V4(a) => Some(a),
        std::net::IpAddr::V6(_) => None,
    };
    let mut out = BTreeSet::new();
    if interfaces.is_empty() {
        out.extend(all.iter().filter(|i| !i.is_loopback()).filter_map(v4));
    } else {
        for name in interfaces {
            let mine: Vec<Ipv4Addr> = all.iter().filter(|i| &i.name == name).filter_map(v4).collect();
            if mine.is_empty() {
                return Err(format!(
                    "no interface `{name}` with an IPv4 address (see `ip addr`; fix `interfaces` in [adapters.yeelight])"
                ));
            }
            out.extend(mine);
        }
    }
    Ok(out.into_iter().collect())
}

/// A socket bound to `0.0.0.0:1982` with address reuse, joined to the group on each of
/// `interfaces` (by their IPv4 address; the system's choice when the list is empty), with
/// multicast loop on: it hears the bulbs' advertisements (and every search). Blocking; the
/// simulators use it as it is.
pub fn group_socket(interfaces: &[Ipv4Addr]) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DISCOVERY_PORT)).into())?;
    socket.set_multicast_loop_v4(true)?;
    if interfaces.is_empty() {
        socket.join_multicast_v4(&GROUP, &Ipv4Addr::UNSPECIFIED)?;
    }
    let mut joined = 0;
    let mut last = None;
    for a in interfaces {
        match socket.join_multicast_v4(&GROUP, a) {
            Ok(()) => joined += 1,
            Err(e) => last = Some(e),
        }
    }
    if let (0, Some(e)) = (joined, last) {
        return Err(e);
    }
    Ok(socket.into())
}

/// Sends `datagram` to the group out of the interface with address `from` (the system's choice
/// for `None`), from `socket`.
pub fn send_to_group(socket: &std::net::UdpSocket, from: Option<Ipv4Addr>, datagram: &[u8]) -> io::Result<()> {
    let s = SockRef::from(socket);
    s.set_multicast_loop_v4(true)?;
    if let Some(a) = from {
        s.set_multicast_if_v4(&a)?;
    }
    socket.send_to(datagram, SocketAddrV4::new(GROUP, DISCOVERY_PORT)).map(|_| ())
}

/// The discovery's sockets, ready to run.
#[derive(Debug)]
pub struct Discovery {
    interfaces: Vec<String>,
    addresses: Vec<Ipv4Addr>,
    group: UdpSocket,
    search: UdpSocket,
}

impl Discovery {
    /// Binds the sockets on `interfaces` (see [`interface_addresses`]); an error says what is
    /// wrong, in a sentence for the adapter's status.
    pub fn start(interfaces: &[String]) -> Result<Discovery, String> {
        let addresses = interface_addresses(interfaces)?;
        let group = group_socket(&addresses)
            .and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            })
            .map_err(|e| format!("cannot listen on the Yeelight discovery port {DISCOVERY_PORT} ({e})"))?;
        let search = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            })
            .map_err(|e| format!("cannot open a socket to search for Yeelight bulbs ({e})"))?;
        Ok(Discovery { interfaces: interfaces.to_vec(), addresses, group, search })
    }

    /// Searches, listens, and sends every bulb heard to `seen`, until the runner stops taking
    /// them (or the task is aborted).
    pub async fn run(mut self, seen: mpsc::Sender<Seen>, events: EventSender) {
        let mut logged: HashSet<SocketAddr> = HashSet::new();
        let mut group_buf = vec![0u8; 4096];
        let mut search_buf = vec![0u8; 4096];
        let mut next_search = Instant::now();
        let mut searches = 0u32;
        loop {
            let (bytes, from) = tokio::select! {
                r = self.group.recv_from(&mut group_buf) => match r {
                    Ok((n, from)) => (&group_buf[..n], from),
                    Err(e) => {
                        tracing::debug!(error = %e, "Reading the Yeelight discovery port failed.");
                        continue;
                    }
                },
                r = self.search.recv_from(&mut search_buf) => match r {
                    Ok((n, from)) => (&search_buf[..n], from),
                    Err(e) => {
                        tracing::debug!(error = %e, "Reading answers to the Yeelight search failed.");
                        continue;
                    }
                },
                () = tokio::time::sleep_until(next_search) => {
                    self.search_once();
                    searches += 1;
                    next_search = Instant::now() + if searches == 1 { SECOND_SEARCH } else { SEARCH_EVERY };
                    continue;
                }
            };
            match parse_datagram(bytes) {
                Ok(Some(bulb)) => {
                    tracing::debug!(id = %bulb.key, address = %bulb.address, advertised = bulb.advertised, "A Yeelight bulb was heard.");
                    if seen.send(Seen::Resolved(crate::adapter::announcement(&bulb))).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let source = format!("udp://{from}");
                    if logged.len() < MAX_LOGGED_SOURCES && logged.insert(from) {
                        tracing::warn!(%source, reason = %e, "A datagram on the Yeelight discovery port cannot be read; it was skipped (further ones are counted, not logged).");
                    }
                    let event = AdapterEvent::InputRejected { source, reason: e.to_string() };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Sends the search on every interface, after joining the group on any that came up.
    fn search_once(&mut self) {
        match interface_addresses(&self.interfaces) {
            Ok(now) => {
                for a in &now {
                    if !self.addresses.contains(a) {
                        match self.group.join_multicast_v4(GROUP, *a) {
                            Ok(()) => tracing::info!(address = %a, "Listening for Yeelight bulbs on a new interface."),
                            Err(e) => tracing::debug!(address = %a, error = %e, "Joining the Yeelight group failed."),
                        }
                    }
                }
                self.addresses = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "The interfaces to search for Yeelight bulbs on were not found; searching on those known before.")
            }
        }
        let std_search = SockRef::from(&self.search);
        let targets: Vec<Option<Ipv4Addr>> =
            if self.addresses.is_empty() { vec![None] } else { self.addresses.iter().copied().map(Some).collect() };
        for from in targets {
            let sent = (|| {
                std_search.set_multicast_loop_v4(true)?;
                if let Some(a) = from {
                    std_search.set_multicast_if_v4(&a)?;
                }
                self.search.try_send_to(SEARCH.as_bytes(), SocketAddr::V4(SocketAddrV4::new(GROUP, DISCOVERY_PORT)))
            })();
            match sent {
                Ok(_) => tracing::debug!(interface = ?from, "Searched for Yeelight bulbs."),
                Err(e) => {
                    tracing::warn!(interface = ?from, error = %e, "The search for Yeelight bulbs could not be sent.")
                }
            }
        }
    }
}
