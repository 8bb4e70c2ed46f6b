//! systemd's notify protocol with a fake notify socket: the hub says `READY=1` once it serves
//! (not before), pings `WATCHDOG=1` at half of `WATCHDOG_USEC` while it runs, and says
//! `STOPPING=1` when it shuts down; without `NOTIFY_SOCKET` it runs as before.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use hearth_tests::Hub;

fn next(socket: &UnixDatagram, within: Duration) -> Option<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    socket.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let mut hub = Hub::start_with_config_env("", &[("NOTIFY_SOCKET", path.as_str()), ("WATCHDOG_USEC", "400000")]);
    // READY first, once it serves: `Hub::start…` returned only after /healthz answered.
    let ready = next(&socket, Duration::from_secs(10)).expect("READY");
    assert!(ready.starts_with("READY=1\nSTATUS=Serving on http://"), "{ready}");
    // Then the watchdog, every 0.2 s.
    let began = Instant::now();
    let mut pings = 0;
    while began.elapsed() < Duration::from_secs(2) {
        match next(&socket, Duration::from_secs(2)) {
            Some(m) if m == "WATCHDOG=1" => pings += 1,
            Some(other) => panic!("unexpected notification {other:?}"),
            None => break,
        }
    }
    assert!(pings >= 4, "{pings} watchdog pings in 2 s at a 0.4 s watchdog");
    // STOPPING at shutdown.
    assert!(hub.stop(), "{}", hub.log());
    let mut rest = Vec::new();
    while let Some(m) = next(&socket, Duration::from_millis(500)) {
        rest.push(m);
    }
    assert!(rest.iter().any(|m| m.starts_with("STOPPING=1")), "{rest:?}");
}

#[test]
fn a_watchdog_for_another_process_is_not_pinged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let _hub = Hub::start_with_config_env(
        "",
        &[("NOTIFY_SOCKET", path.as_str()), ("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
    );
    assert!(next(&socket, Duration::from_secs(10)).unwrap().starts_with("READY=1"));
    assert_eq!(next(&socket, Duration::from_secs(1)), None, "no pings: WATCHDOG_PID names another process");
}
