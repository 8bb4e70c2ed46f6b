//! systemd's notify protocol (`sd_notify`), written here in a few lines: `READY=1` once the hub
//! serves, `WATCHDOG=1` from a loop that first checks the state store answers, `STOPPING=1` at
//! shutdown, with a `STATUS=` line people see in `systemctl status`.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd with `Type=notify`) every call does nothing.
//! The socket may be a path or, with a leading `@`, an abstract name.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification (lines like `READY=1\nSTATUS=...`); false when there is no socket or
/// it could not be sent.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return false };
    let Ok(socket) = UnixDatagram::unbound() else { return false };
    let path = path.to_string_lossy().into_owned();
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = &sent {
        tracing::debug!(error = %e, "Cannot notify systemd.");
    }
    sent.is_ok()
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, when systemd asks for pings for
/// this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog while the state store answers within the interval; a hub whose core hangs
/// stops pinging, and systemd restarts it.
pub fn spawn_watchdog(core: crate::core::CoreHandle) -> Option<tokio::task::JoinHandle<()>> {
    let every = watchdog_interval()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(every, core.adapters()).await {
                Ok(Ok(_)) => {
                    notify("WATCHDOG=1");
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::error!("The state store did not answer within {every:?}; the watchdog is not pinged.")
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_socket_nothing_happens() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!super::notify("READY=1"));
        }
    }
}
