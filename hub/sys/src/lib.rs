//! The few system calls the hub needs that the standard library does not offer, each behind a
//! safe function. The rest of the workspace forbids unsafe code; this crate keeps what cannot do
//! without it small enough to read in one sitting.

use std::io;

mod memory;
pub use memory::{ReleasedCode, release_code_pages, release_free_heap};

/// Tests that read the process's resident memory take this, so that no other test allocates
/// while they measure.
#[cfg(test)]
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Fixes glibc's threshold for serving an allocation with its own `mmap` at 128 KiB, its
/// default, instead of letting it rise. Call once, first thing, before other threads start.
///
/// Why: glibc raises the threshold to the size of each large block freed (up to 32 MiB), and the
/// trim threshold with it. One password hash (argon2 uses 19 MiB) is enough: from then on blocks
/// of up to 19 MiB come from the heap, and what they leave is kept rather than given back. Fixed,
/// the hub with 1,000 devices stayed at 33 MiB resident instead of 52 (hearth-bench).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn fix_allocator_thresholds() -> bool {
    // Setting it also ends glibc's dynamic adjustment of both thresholds.
    // SAFETY: mallopt takes two integers and changes only the allocator's parameters.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) == 1 }
}

/// Other C libraries do not adjust it: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn fix_allocator_thresholds() -> bool {
    false
}

/// Turns Nagle's algorithm off on every listening TCP socket of this process bound to `port`;
/// returns how many it changed (0 when none listens there).
///
/// Why: the built-in broker (rumqttd) binds its own listener and offers no option for
/// `TCP_NODELAY`. Without it, a small packet the broker writes to a client that only reads
/// (zigbee2mqtt waiting for `/set`, a dashboard subscribed to state) waits for the client's
/// delayed ACK of the previous one: up to 40 ms on every command. Linux copies `TCP_NODELAY`
/// from a listening socket to each connection it accepts, so setting it once on the listener
/// covers every client that connects afterwards.
///
/// It walks `/proc/self/fd`, and changes a descriptor only after checking, right before, that it
/// is a listening TCP socket on `port`.
#[cfg(target_os = "linux")]
pub fn nodelay_on_listeners(port: u16) -> io::Result<usize> {
    let mut changed = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<libc::c_int>().ok()) else { continue };
        // Only sockets: the link reads `socket:[inode]`.
        let is_socket = std::fs::read_link(entry.path())
            .map(|target| target.to_string_lossy().starts_with("socket:"))
            .unwrap_or(false);
        if is_socket && is_listener_on(fd, port) {
            set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Elsewhere: nothing to change, nothing changed.
#[cfg(not(target_os = "linux"))]
pub fn nodelay_on_listeners(_port: u16) -> io::Result<usize> {
    Ok(0)
}

/// Whether `fd` is a listening TCP socket bound to `port` (IPv4 or IPv6).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn is_listener_on(fd: libc::c_int, port: u16) -> bool {
    if get_int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) != Some(1)
        || get_int_option(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) != Some(libc::IPPROTO_TCP)
    {
        return false;
    }
    let mut addr: libc::sockaddr_storage = zeroed_storage();
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>()).unwrap_or(0);
    // SAFETY: `addr` is a writable sockaddr_storage and `len` holds its size, as getsockname
    // requires; the kernel writes at most `len` bytes. A descriptor that is not a socket (or was
    // closed meanwhile) makes the call fail, which is handled.
    let rc = unsafe { libc::getsockname(fd, (&raw mut addr).cast::<libc::sockaddr>(), &raw mut len) };
    if rc != 0 {
        return false;
    }
    let bound = match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let v4 = unsafe { &*(&raw const addr).cast::<libc::sockaddr_in>() };
            u16::from_be(v4.sin_port)
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(&raw const addr).cast::<libc::sockaddr_in6>() };
            u16::from_be(v6.sin6_port)
        }
        _ => return false,
    };
    bound == port
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value of it.
    unsafe { std::mem::zeroed() }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn get_int_option(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).ok()?;
    // SAFETY: `value` is a writable c_int and `len` its size; a failing call is handled.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &raw mut len) };
    (rc == 0).then_some(value)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn set_int_option(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).map_err(io::Error::other)?;
    // SAFETY: `value` is a readable c_int and `len` its size; a failing call is handled.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn nodelay_of_accepted(listener: &TcpListener) -> bool {
        let addr = listener.local_addr().expect("address");
        let _client = TcpStream::connect(addr).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        accepted.nodelay().expect("nodelay")
    }

    #[test]
    fn connections_accepted_after_the_call_have_nagle_off_and_other_ports_are_left_alone() {
        let ours = TcpListener::bind("127.0.0.1:0").expect("bind");
        let other = TcpListener::bind("127.0.0.1:0").expect("bind");
        assert!(!nodelay_of_accepted(&ours), "Linux's default is Nagle on");

        let port = ours.local_addr().expect("address").port();
        assert_eq!(nodelay_on_listeners(port).expect("walk the descriptors"), 1);
        assert!(nodelay_of_accepted(&ours), "accepted connections inherit TCP_NODELAY");
        assert!(!nodelay_of_accepted(&other), "a listener on another port is untouched");
    }

    #[test]
    fn a_port_nobody_listens_on_changes_nothing() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("address").port();
        drop(l);
        assert_eq!(nodelay_on_listeners(port).expect("walk the descriptors"), 0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod allocator_tests {
    /// Resident anonymous memory of this process, in KiB.
    fn rss_anon_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("status");
        let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("number")
    }

    /// What a password hash does: one large block, used and freed; then many blocks below it,
    /// used and freed (a burst of work). With the thresholds fixed, the large block is its own
    /// mapping and goes back whole, and the burst leaves little behind.
    #[test]
    fn after_a_large_block_is_freed_later_blocks_do_not_stay_resident() {
        let _alone = super::MEASURING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assert!(super::fix_allocator_thresholds(), "glibc accepts the setting");
        let big = vec![1u8; 19 * 1024 * 1024];
        std::hint::black_box(&big);
        drop(big);
        let before = rss_anon_kib();
        // 8 MiB in 1 MiB blocks, each touched, then freed.
        let blocks: Vec<Vec<u8>> = (0..8).map(|_| vec![1u8; 1024 * 1024]).collect();
        std::hint::black_box(&blocks);
        drop(blocks);
        let after = rss_anon_kib();
        assert!(after < before + 2 * 1024, "{} KiB stayed resident after the burst", after.saturating_sub(before));
    }
}
