//! The Wi-Fi runner end to end, with a toy protocol (a line protocol over TCP) and toy devices
//! announced over real mDNS inside a network namespace of the test's own: found devices are
//! offered, accepted ones connected; a frozen device goes offline with the reason while another
//! device is served on time; a device that comes back (at another address, announced) is
//! followed by its identity; a stopped device is reconnected after its backoff; a device that
//! refuses every connection is tried again after waits that grow, never in a tight loop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearth_mdns::lan::{Link, Protocol};
use hearth_mdns::testing::in_namespace;
use hearth_mdns::{Announcement, Browser, Seen};
use hearth_sdk::testing::Harness;
use hearth_sdk::{
    Access, Adapter, AdapterContext, AdapterError, AdapterEvent, AdapterManifest, AvailabilityState, BoxFuture,
    Capability, Command, CommandRequest, Context, Decision, DeviceDescriptor, DeviceId, Discovers, Feature, Found,
    Transport, Value, ValueType,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

const T: Duration = Duration::from_secs(20);

// ---- The toy protocol: the device says `hello <id>`, answers `ping` with `pong` and
// ---- `set <v>` with `state <v>`.

struct Toy;

impl Protocol for Toy {
    fn adapter(&self) -> &'static str {
        "toy"
    }

    fn service_types(&self) -> &'static [&'static str] {
        &["_toy._tcp.local."]
    }

    fn identify(&self, a: &Announcement) -> Option<Found> {
        let id = a.txt.get("id")?.to_lowercase();
        Some(Found {
            device: DeviceId::new("toy", &id),
            key: id,
            name: a.name.clone(),
            manufacturer: Some("Toys".into()),
            model: None,
            transport: Transport::Wifi,
            address: a.addresses.first().map(ToString::to_string),
            supported: true,
            kind: Some("toy".into()),
        })
    }

    fn session(self: Arc<Self>, mut link: Link) -> BoxFuture<Result<(), String>> {
        Box::pin(async move {
            let stream = link.connect().await?;
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            let hello = tokio::time::timeout(link.idle, lines.next_line())
                .await
                .map_err(|_| link.no_answer())?
                .map_err(|e| e.to_string())?
                .ok_or("closed before saying hello")?;
            if hello != format!("hello {}", link.target.key) {
                return Err(format!("said {hello:?}"));
            }
            let id = link.target.device.clone();
            let level = Feature::new(
                "level",
                Capability::Brightness,
                ValueType::Number { min: None, max: None, step: None },
                Access::READ_WRITE,
            );
            link.events
                .device(DeviceDescriptor::new(id.clone(), &link.target.name, vec![level]))
                .await
                .map_err(|e| e.to_string())?;
            link.up().await.map_err(|e| e.to_string())?;
            let mut ping = tokio::time::interval(link.idle / 4);
            let mut cause: Option<Context> = None;
            loop {
                tokio::select! {
                    line = lines.next_line() => match line {
                        Ok(Some(l)) => {
                            link.heard();
                            if let Some(v) = l.strip_prefix("state ") {
                                let v: f64 = v.parse().map_err(|_| format!("said {l:?}"))?;
                                let values = BTreeMap::from([("level".to_owned(), Value::Number(v))]);
                                link.events.state(&id, values, cause.take()).await.map_err(|e| e.to_string())?;
                            }
                        }
                        Ok(None) => return Err(format!("{} closed the connection", link.target.address)),
                        Err(e) => return Err(e.to_string()),
                    },
                    _ = ping.tick() => {
                        if link.silence() >= link.idle {
                            return Err(link.no_answer());
                        }
                        write.write_all(b"ping\n").await.map_err(|e| e.to_string())?;
                    }
                    c = link.commands.recv() => match c {
                        Some(c) => {
                            let Some(Value::Number(v)) = c.request.set.get("level") else { continue };
                            cause = Some(c.context);
                            write.write_all(format!("set {v}\n").as_bytes()).await.map_err(|e| e.to_string())?;
                        }
                        None => return Ok(()),
                    },
                }
            }
        })
    }
}

struct ToyAdapter;

impl Adapter for ToyAdapter {
    fn manifest(&self) -> AdapterManifest {
        AdapterManifest {
            id: "toy",
            name: "Toys",
            discovers: Discovers { mdns: vec!["_toy._tcp.local.".into()], ..Discovers::default() },
            actions: &[],
            secrets: None,
        }
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(hearth_mdns::lan::run(Toy, ctx))
    }
}

// ---- A toy device on plain threads.

struct ToyDevice {
    port: u16,
    stop: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    sets: Arc<Mutex<Vec<String>>>,
}

impl ToyDevice {
    fn start(ip: Ipv4Addr, port: u16, id: &'static str) -> ToyDevice {
        let listener = TcpListener::bind((ip, port)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let frozen = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let sets: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, f, c, sets2) = (stop.clone(), frozen.clone(), conns.clone(), sets.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        stream.set_nonblocking(false).expect("blocking");
                        c.lock().expect("conns").push(stream.try_clone().expect("clone"));
                        let (f, sets) = (f.clone(), sets2.clone());
                        std::thread::spawn(move || {
                            let _ = writeln!(stream, "hello {id}");
                            let reader = BufReader::new(stream.try_clone().expect("clone"));
                            for line in reader.lines() {
                                let Ok(line) = line else { return };
                                if f.load(Ordering::SeqCst) {
                                    continue;
                                }
                                if line == "ping" {
                                    let _ = writeln!(stream, "pong");
                                } else if let Some(v) = line.strip_prefix("set ") {
                                    sets.lock().expect("sets").push(v.to_owned());
                                    let _ = writeln!(stream, "state {v}");
                                }
                            }
                        });
                    }
                    #[allow(clippy::disallowed_methods)] // a thread of the test's own
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        ToyDevice { port, stop, frozen, conns, sets }
    }

    fn freeze(&self, on: bool) {
        self.frozen.store(on, Ordering::SeqCst);
    }
}

impl Drop for ToyDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for c in self.conns.lock().expect("conns").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn announce(browser: &Browser, name: &str, id: &str, ip: Ipv4Addr, port: u16) {
    browser
        .announce("_toy._tcp.local.", name, &format!("{name}.local."), IpAddr::V4(ip), port, &[("id", id)])
        .expect("announce");
}

async fn expect<T>(h: &mut Harness, what: &str, mut f: impl FnMut(&AdapterEvent) -> Option<T>) -> T {
    let found = tokio::time::timeout(T, async {
        loop {
            match h.next().await {
                Some(e) => {
                    if let Some(t) = f(&e) {
                        return t;
                    }
                }
                None => panic!("the adapter stopped while waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} in {T:?}"))
}

fn set_level(device: &str, v: f64) -> Command {
    Command {
        device: DeviceId::parse(device).expect("id"),
        request: CommandRequest {
            set: BTreeMap::from([("level".to_owned(), Value::Number(v))]),
            ..CommandRequest::default()
        },
        context: Context::new("c1", hearth_sdk::Origin::User { name: "test".into() }),
    }
}

#[test]
fn accepted_devices_are_kept_connected_each_on_its_own() {
    in_namespace("accepted_devices_are_kept_connected_each_on_its_own", || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        rt.block_on(async {
            let lo = vec!["lo".to_owned()];
            let net = Browser::start(&lo).expect("mdns");
            let a = ToyDevice::start(Ipv4Addr::LOCALHOST, 0, "a1");
            let b = ToyDevice::start(Ipv4Addr::LOCALHOST, 0, "b2");
            announce(&net, "toy-a", "a1", Ipv4Addr::LOCALHOST, a.port);
            announce(&net, "toy-b", "b2", Ipv4Addr::LOCALHOST, b.port);

            let config = serde_json::json!({"enabled": true, "interfaces": ["lo"], "offline_after_secs": 2});
            let (mut h, run) = Harness::new(Box::new(ToyAdapter), config, None);
            let adapter = tokio::spawn(run);

            // Both are offered, by their identity, with their address; nothing connects yet.
            let mut offered = BTreeMap::new();
            while offered.len() < 2 {
                let f = expect(&mut h, "a find", |e| match e {
                    AdapterEvent::Found { found } => Some(found.clone()),
                    AdapterEvent::Device { device } => panic!("{} announced before it was accepted", device.id),
                    _ => None,
                })
                .await;
                assert_eq!(f.address.as_deref(), Some("127.0.0.1"));
                offered.insert(f.key.clone(), f);
            }
            assert_eq!(offered.keys().collect::<Vec<_>>(), ["a1", "b2"]);
            assert_eq!(offered["a1"].device.as_str(), "toy:a1");

            // Accepted: each is connected, described and online.
            h.inbox.send_modify(|d| {
                d.insert("a1".into(), Decision::Accepted);
                d.insert("b2".into(), Decision::Accepted);
            });
            let mut online = Vec::new();
            while online.len() < 2 {
                let id = expect(&mut h, "a device online", |e| match e {
                    AdapterEvent::Availability { device, availability }
                        if availability.state == AvailabilityState::Online =>
                    {
                        Some(device.to_string())
                    }
                    _ => None,
                })
                .await;
                online.push(id);
            }
            online.sort();
            assert_eq!(online, ["toy:a1", "toy:b2"]);

            // A freezes (its socket stays open, it answers nothing). B is served meanwhile,
            // before A is given up; then A goes offline, saying why.
            a.freeze(true);
            h.commands.send(set_level("toy:b2", 40.0)).await.expect("send");
            let mut b_answered = false;
            let reason = expect(&mut h, "A offline", |e| match e {
                AdapterEvent::State { device, values, cause } if device.as_str() == "toy:b2" => {
                    assert_eq!(values.get("level"), Some(&Value::Number(40.0)));
                    assert!(cause.is_some(), "the state names the command that caused it");
                    b_answered = true;
                    None
                }
                AdapterEvent::Availability { device, availability } if device.as_str() == "toy:a1" => {
                    assert_eq!(availability.state, AvailabilityState::Offline);
                    Some((availability.reason.clone(), availability.code.clone()))
                }
                _ => None,
            })
            .await;
            assert!(b_answered, "B's command was answered before A was given up");
            assert_eq!(reason, (Some("no answer from 127.0.0.1 for 2 s".to_owned()), Some("no_answer".to_owned())));
            assert_eq!(b.sets.lock().expect("sets").as_slice(), ["40"]);

            // A comes back at another address (DHCP) and announces itself: followed by its id.
            drop(a);
            drop(net);
            let net = Browser::start(&lo).expect("mdns");
            let moved = Ipv4Addr::new(127, 0, 0, 2);
            let a = ToyDevice::start(moved, 0, "a1");
            announce(&net, "toy-a", "a1", moved, a.port);
            announce(&net, "toy-b", "b2", Ipv4Addr::LOCALHOST, b.port);
            expect(&mut h, "A online again", |e| match e {
                AdapterEvent::Availability { device, availability }
                    if device.as_str() == "toy:a1" && availability.state == AvailabilityState::Online =>
                {
                    Some(())
                }
                AdapterEvent::Found { found } if found.key == "a1" => {
                    assert_eq!(found.address.as_deref(), Some("127.0.0.2"));
                    None
                }
                _ => None,
            })
            .await;
            h.commands.send(set_level("toy:a1", 7.0)).await.expect("send");
            expect(&mut h, "A's state", |e| match e {
                AdapterEvent::State { device, values, .. } if device.as_str() == "toy:a1" => {
                    assert_eq!(values.get("level"), Some(&Value::Number(7.0)));
                    Some(())
                }
                _ => None,
            })
            .await;
            assert_eq!(a.sets.lock().expect("sets").as_slice(), ["7"], "the command reached A at its new address");

            // B stops altogether, then starts again on its port without announcing: offline,
            // then reconnected by the backoff alone.
            let port = b.port;
            drop(b);
            expect(&mut h, "B offline", |e| match e {
                AdapterEvent::Availability { device, availability } if device.as_str() == "toy:b2" => {
                    assert_eq!(availability.state, AvailabilityState::Offline);
                    Some(())
                }
                _ => None,
            })
            .await;
            let _b = ToyDevice::start(Ipv4Addr::LOCALHOST, port, "b2");
            expect(&mut h, "B online again", |e| match e {
                AdapterEvent::Availability { device, availability } if device.as_str() == "toy:b2" => {
                    assert_eq!(availability.state, AvailabilityState::Online);
                    Some(())
                }
                _ => None,
            })
            .await;

            // Forgetting a device stops its connection: no more events about it.
            h.inbox.send_modify(|d| {
                d.remove("a1");
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            h.commands.send(set_level("toy:a1", 9.0)).await.expect("send");
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(a.sets.lock().expect("sets").as_slice(), ["7"], "a forgotten device gets no commands");

            h.shutdown.send(true).expect("stop");
            tokio::time::timeout(T, adapter).await.expect("stops").expect("joined").expect("ok");
            drop(net);
        });
    });
}

/// The toy protocol fed its announcements by the test instead of mDNS (`lan::run_on`).
struct FedToyAdapter {
    seen: mpsc::Receiver<Seen>,
}

impl Adapter for FedToyAdapter {
    fn manifest(&self) -> AdapterManifest {
        ToyAdapter.manifest()
    }

    fn run(self: Box<Self>, ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
        Box::pin(hearth_mdns::lan::run_on(Arc::new(Toy), ctx, Duration::from_secs(300), self.seen))
    }
}

/// A device that takes every connection and closes it at once, saying nothing; it notes when
/// each connection came.
struct RefusingDevice {
    port: u16,
    attempts: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl RefusingDevice {
    fn start() -> RefusingDevice {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let attempts: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (attempts.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        a.lock().expect("attempts").push(Instant::now());
                        drop(stream);
                    }
                    #[allow(clippy::disallowed_methods)] // a thread of the test's own
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        RefusingDevice { port, attempts, stop }
    }
}

impl Drop for RefusingDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The runner's schedule: after the n-th failed attempt (n from 1) it waits between half and all
/// of 1 s doubled n-1 times (at most 30 s): 0.5–1 s, 1–2 s, 2–4 s, 4–8 s...
fn shortest_wait_after(n: u32) -> Duration {
    (Duration::from_secs(1) * 2u32.pow(n - 1)).min(Duration::from_secs(30)) / 2
}

/// The most attempts the schedule allows within `window` of the first: the first, and each one
/// after whose shortest waits add up to no more than `window`.
fn most_attempts_within(window: Duration) -> usize {
    let mut at = Duration::ZERO;
    let mut n = 1;
    loop {
        at += shortest_wait_after(n as u32);
        if at > window {
            return n;
        }
        n += 1;
    }
}

#[test]
fn a_device_that_refuses_is_tried_again_after_growing_waits_not_in_a_loop() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async {
        let device = RefusingDevice::start();
        let (seen_tx, seen) = mpsc::channel(8);
        seen_tx
            .send(Seen::Resolved(Announcement {
                service_type: "_toy._tcp.local.".into(),
                instance: "toy-r._toy._tcp.local.".into(),
                name: "toy-r".into(),
                host: "toy-r.local.".into(),
                addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
                port: device.port,
                txt: BTreeMap::from([("id".to_owned(), "r1".to_owned())]),
            }))
            .await
            .expect("announce");
        let (mut h, run) = Harness::new(Box::new(FedToyAdapter { seen }), serde_json::Value::Null, None);
        let adapter = tokio::spawn(run);
        expect(&mut h, "the find", |e| matches!(e, AdapterEvent::Found { .. }).then_some(())).await;
        h.inbox.send_modify(|d| {
            d.insert("r1".into(), Decision::Accepted);
        });

        // Four attempts: the first at once, then after waits of 0.5–1, 1–2 and 2–4 s (at most 7 s
        // in all, however slow the sessions; far less than the deadline). The adapter's events
        // are read meanwhile, so it never waits on the test.
        const ATTEMPTS: usize = 4;
        let deadline = Instant::now() + Duration::from_secs(40);
        let attempts = loop {
            let now = device.attempts.lock().expect("attempts").clone();
            if now.len() >= ATTEMPTS {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "only {} attempts in 40 s; the schedule makes {ATTEMPTS} within 7 s",
                now.len()
            );
            tokio::select! {
                e = h.next() => {
                    let e = e.expect("the adapter runs");
                    if let AdapterEvent::Availability { availability, .. } = &e {
                        assert_ne!(availability.state, AvailabilityState::Online, "a device that refuses is not online");
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        };

        // Never sooner than the schedule allows: each wait at least half its step, so the waits
        // grow, and in any time since the first attempt there were no more attempts than the
        // shortest waits fit. (A slow machine only makes attempts later: these bounds hold.)
        let first = attempts[0];
        let waits: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, wait) in waits.iter().enumerate() {
            let least = shortest_wait_after(i as u32 + 1);
            assert!(*wait >= least, "wait {} was {wait:?}, shorter than {least:?}; all waits: {waits:?}", i + 1);
        }
        for (i, at) in attempts.iter().enumerate() {
            let (count, within) = (i + 1, *at - first);
            let most = most_attempts_within(within);
            assert!(count <= most, "{count} attempts within {within:?} of the first; the schedule allows {most}");
        }
        assert_eq!(most_attempts_within(Duration::from_millis(499)), 1);
        assert_eq!(most_attempts_within(Duration::from_millis(1500)), 3);
        assert_eq!(most_attempts_within(Duration::from_millis(3499)), 3);

        h.shutdown.send(true).expect("stop");
        tokio::time::timeout(T, adapter).await.expect("stops").expect("joined").expect("ok");
    });
}
