//! The hub's network ports, as the real binary opens them: the sockets the process holds (read
//! from `/proc/<pid>/fd` and `/proc/<pid>/net/{tcp,tcp6,udp,udp6,raw,raw6}`, so only the hub's
//! own count) against the table in SECURITY.md ("Network ports"), and the built-in MQTT broker
//! refusing clients without an account once it listens beyond loopback.
//!
//! The hub runs on the configuration the Debian package installs. A test cannot take ports 8080
//! and 1883, so the hub is given free ports on the documented addresses; that the built-in
//! defaults are the documented address and port is checked with `hearth check-config`.
#![allow(clippy::unwrap_used)]
// Plain test threads driving a separate process: blocking sleeps are fine here.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_tests::{free_port, hearth_bin};

/// Where the ports are documented, and the section that lists them.
const DOC: &str = "SECURITY.md";
const SECTION: &str = "## Network ports";
/// The configuration the Debian package installs as /etc/hearth/hearth.toml.
const PACKAGED_CONFIG: &str = "packaging/debian/hearth.toml";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    Tcp,
    Udp,
    Raw,
}

/// A listening TCP socket, or a UDP or raw socket (bound, whatever its state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Sock {
    proto: Proto,
    addr: SocketAddr,
}

impl fmt::Display for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "TCP",
            Proto::Udp => "UDP",
            Proto::Raw => "raw",
        };
        write!(f, "{proto} {} port {}", self.addr.ip(), self.addr.port())
    }
}

/// One row of the documentation's table.
#[derive(Debug, Clone)]
struct Documented {
    sock: Sock,
    /// The command-line flag that moves it (`--http`).
    flag: String,
    /// What it is, as the table says.
    what: String,
    /// Its line in [`DOC`], from 1.
    line: usize,
}

impl Documented {
    fn place(&self) -> String {
        format!("{DOC}:{} documents {} for {}", self.line, self.sock, self.what)
    }
}

/// The table of [`SECTION`] in [`DOC`]: `| TCP | \`ADDR:PORT\` ... | what | set with ... \`--flag ...\` |`.
fn documented() -> Vec<Documented> {
    let path = root().join(DOC);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = text.lines().position(|l| l.trim() == SECTION).unwrap_or_else(|| {
        panic!("{DOC} has no `{SECTION}` section: the ports the hub opens must be documented there")
    });
    let mut rows = Vec::new();
    let mut in_table = false;
    for (i, line) in text.lines().enumerate().skip(start + 1) {
        if line.starts_with("## ") {
            break;
        }
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        let proto = match cells[0] {
            "TCP" => Proto::Tcp,
            "UDP" => Proto::Udp,
            _ => continue, // the header and the separator
        };
        let at = format!("{DOC}:{}", i + 1);
        assert_eq!(cells.len(), 4, "{at}: a row of the ports table has 4 cells (socket, address, what, set with)");
        let addr = cells[1]
            .split('`')
            .nth(1)
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("{at}: the address cell `{}` has no `ADDR:PORT` in backticks", cells[1]));
        let flag = cells[3]
            .split('`')
            .skip(1)
            .step_by(2)
            .find(|c| c.starts_with("--"))
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or_else(|| panic!("{at}: the last cell names no command-line flag (`--http ADDR:PORT`)"))
            .to_owned();
        rows.push(Documented { sock: Sock { proto, addr }, flag, what: cells[2].to_owned(), line: i + 1 });
    }
    assert!(!rows.is_empty(), "{DOC}: the `{SECTION}` section has no table of ports");
    rows
}

/// The hub process, stopped (SIGKILL) when dropped.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    /// Runs `hearth run --config CONFIG --data-dir DIR ARGS` and waits until `http` answers /healthz.
    fn start(config: &Path, data_dir: &Path, args: &[String], http: SocketAddr) -> Running {
        let mut child = Command::new(hearth_bin())
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("HEARTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hearth");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut hub = Running { child, log };
        let url = format!("http://{}/healthz", reachable(http));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = hub.child.try_wait().expect("wait") {
                panic!("hearth exited with {status} before serving:\n{}", hub.log());
            }
            if agent.get(&url).call().is_ok_and(|r| r.status() == 200) {
                return hub;
            }
            assert!(Instant::now() < deadline, "hearth did not serve on {url} within 60 s:\n{}", hub.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The sockets it holds, over a few seconds of running (one opened late counts too).
    fn sockets(&self) -> BTreeSet<Sock> {
        let mut all = BTreeSet::new();
        for i in 0..3 {
            if i > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            all.extend(sockets_of(self.child.id()));
        }
        all
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where to connect to reach a listener on `addr` (on this machine when it is every interface).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

/// The listening TCP sockets and the UDP and raw sockets process `pid` holds.
fn sockets_of(pid: u32) -> BTreeSet<Sock> {
    let fd_dir = format!("/proc/{pid}/fd");
    let inodes: HashSet<u64> = std::fs::read_dir(&fd_dir)
        .unwrap_or_else(|e| panic!("cannot list {fd_dir}: {e}"))
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut found = BTreeSet::new();
    for (table, proto) in [
        ("tcp", Proto::Tcp),
        ("tcp6", Proto::Tcp),
        ("udp", Proto::Udp),
        ("udp6", Proto::Udp),
        ("raw", Proto::Raw),
        ("raw6", Proto::Raw),
    ] {
        let path = format!("/proc/{pid}/net/{table}");
        // A kernel without IPv6 has no tcp6 table; the process may have ended (its log says why).
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let inode: u64 = f[9].parse().unwrap_or_else(|_| panic!("{path}: inode `{}` is not a number", f[9]));
            // TCP's state 0A is LISTEN; connections (the hub's adapters to its own broker) are not ports.
            if !inodes.contains(&inode) || (proto == Proto::Tcp && f[3] != "0A") {
                continue;
            }
            let addr = proc_addr(f[1]).unwrap_or_else(|| panic!("{path}: cannot read the address `{}`", f[1]));
            found.insert(Sock { proto, addr });
        }
    }
    found
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the kernel prints each 32-bit word
/// of the address as a number in the machine's byte order, and the port as a number.
fn proc_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Compares the hub's sockets with what is expected (each with where that is said), and lists
/// every difference.
fn assert_sockets(found: &BTreeSet<Sock>, expected: &[(Sock, String)], log: &str) {
    eprintln!("the hub's sockets: {}", found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "));
    let mut problems = Vec::new();
    for s in found {
        if !expected.iter().any(|(e, _)| e == s) {
            let said: Vec<String> = expected.iter().map(|(e, w)| format!("{e} ({w})")).collect();
            problems.push(format!(
                "the hub has {s} open, which the documentation ({DOC}, \"{}\") does not list; it should have only: {}",
                SECTION.trim_start_matches("## "),
                said.join("; ")
            ));
        }
    }
    for (e, said) in expected {
        if !found.contains(e) {
            let open: Vec<String> = found.iter().map(ToString::to_string).collect();
            problems.push(format!(
                "the hub does not listen on {e} ({said}); its sockets: {}",
                if open.is_empty() { "none".to_owned() } else { open.join(", ") }
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n--- the hub's log:\n{log}", problems.join("\n"));
}

/// `hearth check-config --config FILE`: the addresses the hub would use, by flag (`--http`).
fn configured_addresses(config: &Path) -> BTreeMap<String, String> {
    let out = Command::new(hearth_bin()).arg("check-config").arg("--config").arg(config).output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-config {} failed: {stdout}{}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // "http: 0.0.0.0:8080; mqtt: 127.0.0.1:1883; data: /var/lib/hearth"
    let line = stdout.lines().find(|l| l.starts_with("http: ")).unwrap_or_else(|| panic!("no addresses in: {stdout}"));
    line.split("; ").filter_map(|part| part.split_once(": ")).map(|(k, v)| (format!("--{k}"), v.to_owned())).collect()
}

#[test]
fn the_hub_listens_only_where_the_documentation_says() {
    let rows = documented();
    let config = root().join(PACKAGED_CONFIG);

    // The packaged configuration leaves every address at the built-in default: the documented one.
    let defaults = configured_addresses(&config);
    for row in &rows {
        let actual = defaults.get(&row.flag).unwrap_or_else(|| {
            panic!("{}, set with {}, which `hearth check-config` does not report ({defaults:?})", row.place(), row.flag)
        });
        assert_eq!(
            actual,
            &row.sock.addr.to_string(),
            "{}, but with {PACKAGED_CONFIG} (the packaged defaults) the hub would use {actual}",
            row.place()
        );
    }

    // Run it on the documented addresses, with free ports standing in for the documented ones.
    let tmp = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    let mut expected = Vec::new();
    let mut http = None;
    for row in &rows {
        let addr = SocketAddr::new(row.sock.addr.ip(), free_port());
        args.extend([row.flag.clone(), addr.to_string()]);
        if row.flag == "--http" {
            http = Some(addr);
        }
        let said = format!("{}; a free port stands in for {}", row.place(), row.sock.addr.port());
        expected.push((Sock { proto: row.sock.proto, addr }, said));
    }
    let http = http.unwrap_or_else(|| panic!("{DOC} lists no `--http` listener: the web UI's port must be documented"));
    let hub = Running::start(&config, &tmp.path().join("data"), &args, http);
    assert_sockets(&hub.sockets(), &expected, &hub.log());
}

/// How the broker answered a client.
#[derive(Debug, PartialEq)]
enum Answer {
    Accepted,
    /// A CONNACK with this refusal.
    Refused(rumqttc::ConnectReturnCode),
    /// The broker closed the connection after the CONNECT, without a CONNACK.
    Closed(String),
}

fn mqtt_connect(addr: SocketAddr, client_id: &str, credentials: Option<(&str, &str)>) -> Answer {
    use rumqttc::{ConnectionError, Event, MqttOptions, Packet, StateError};
    let mut opts = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = credentials {
        opts.set_credentials(user, password);
    }
    let (_client, mut conn) = rumqttc::Client::new(opts, 10);
    for event in conn.iter().take(5) {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == rumqttc::ConnectReturnCode::Success => {
                return Answer::Accepted;
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => return Answer::Refused(code),
            Err(e @ ConnectionError::MqttState(StateError::ConnectionAborted | StateError::Io(_))) => {
                return Answer::Closed(e.to_string());
            }
            Err(e) => panic!("MQTT client {client_id} to {addr}: no answer from the broker ({e})"),
        }
    }
    panic!("MQTT client {client_id} to {addr}: no CONNACK and no refusal")
}

/// Subscribes and publishes as `user`; the message comes back through the broker.
fn round_trip(addr: SocketAddr, user: (&str, &str)) {
    use rumqttc::{Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new("ports-test-round-trip", addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_credentials(user.0, user.1);
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    client.subscribe("ports-test/#", QoS::AtLeastOnce).unwrap();
    let mut published = false;
    for event in conn.iter().take(50) {
        match event.unwrap_or_else(|e| panic!("{} on {addr}: {e}", user.0)) {
            Event::Incoming(Packet::SubAck(_)) if !published => {
                client.publish("ports-test/hello", QoS::AtLeastOnce, false, "hello").unwrap();
                published = true;
            }
            Event::Incoming(Packet::Publish(p)) => {
                assert_eq!((p.topic.as_str(), &p.payload[..]), ("ports-test/hello", &b"hello"[..]));
                return;
            }
            _ => {}
        }
    }
    panic!("no message came back through the broker on {addr} for {}", user.0);
}

/// An address of this machine other than loopback, when it has one: the system picks the
/// outgoing address of a UDP socket "connected" to a documentation address (nothing is sent).
fn lan_address() -> Option<IpAddr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn a_broker_listening_beyond_loopback_refuses_clients_without_an_account() {
    const USER: (&str, &str) = ("zigbee2mqtt", "a long enough password");
    let tmp = tempfile::tempdir().unwrap();
    let mqtt_port = free_port();
    let config = tmp.path().join("hearth.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nlisten = \"0.0.0.0:{mqtt_port}\"\n\n[[mqtt.users]]\nusername = \"{}\"\npassword = \"{}\"\n",
            USER.0, USER.1
        ),
    )
    .unwrap();
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let hub = Running::start(&config, &tmp.path().join("data"), &["--http".into(), http.to_string()], http);

    // Exactly what was asked for: the broker on every interface, the web UI on loopback.
    let mqtt = SocketAddr::from((Ipv4Addr::UNSPECIFIED, mqtt_port));
    assert_sockets(
        &hub.sockets(),
        &[
            (Sock { proto: Proto::Tcp, addr: http }, "asked for with --http".into()),
            (Sock { proto: Proto::Tcp, addr: mqtt }, "asked for with [mqtt] listen".into()),
        ],
        &hub.log(),
    );

    // A client from the network, when this machine has a network address; else from loopback
    // (the broker's accounts hold for the whole listener either way).
    let target = SocketAddr::new(lan_address().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), mqtt_port);
    let refused = |answer: &Answer| matches!(answer, Answer::Refused(_) | Answer::Closed(_));
    let anonymous = mqtt_connect(target, "ports-test-anonymous", None);
    assert!(
        refused(&anonymous),
        "the broker on {mqtt} accepted a client without an account through {target}: {anonymous:?}"
    );
    let wrong = mqtt_connect(target, "ports-test-wrong", Some((USER.0, "not the password")));
    assert!(refused(&wrong), "the broker accepted {} with a wrong password: {wrong:?}", USER.0);
    let empty = mqtt_connect(target, "ports-test-empty", Some((USER.0, "")));
    assert!(refused(&empty), "the broker accepted {} with an empty password: {empty:?}", USER.0);
    // The hub's own account has a random password; its name alone opens nothing.
    let internal = mqtt_connect(target, "ports-test-internal", Some(("hearth-internal", "")));
    assert!(refused(&internal), "the broker accepted its internal account without its password: {internal:?}");
    let nobody = mqtt_connect(target, "ports-test-nobody", Some(("nobody", USER.1)));
    assert!(refused(&nobody), "the broker accepted an unknown account: {nobody:?}");

    assert_eq!(mqtt_connect(target, "ports-test-user", Some(USER)), Answer::Accepted, "{}", hub.log());
    round_trip(target, USER);
    assert!(!hub.log().contains(USER.1), "the broker account's password is in the log:\n{}", hub.log());
    eprintln!("anonymous client through {target}: {anonymous:?}; wrong password: {wrong:?}");
}
