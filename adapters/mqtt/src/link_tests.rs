//! [`Link`] against a broker written here: MQTT 3.1.1 framed by hand over real TCP, so a test
//! can keep it down, count how often the link knocks, flood the link, and see what arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// What the broker saw.
#[derive(Debug, Default)]
struct Seen {
    published: Vec<(String, Vec<u8>)>,
    subscribed: Vec<String>,
    disconnects: usize,
}

/// A broker on `addr`: while `up` is false it accepts and closes every connection at once,
/// counting them (a host that answers, a service that is down); while up it speaks MQTT.
struct Broker {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    knocks: Arc<AtomicUsize>,
    seen: Arc<Mutex<Seen>>,
    /// The connection to the link, to push messages to it.
    conn: Arc<Mutex<Option<TcpStream>>>,
}

impl Broker {
    fn start(up: bool) -> Broker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker {
            addr,
            up: Arc::new(AtomicBool::new(up)),
            knocks: Arc::new(AtomicUsize::new(0)),
            seen: Arc::default(),
            conn: Arc::default(),
        };
        let (up, knocks, seen, conn) =
            (broker.up.clone(), broker.knocks.clone(), broker.seen.clone(), broker.conn.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                knocks.fetch_add(1, Ordering::SeqCst);
                if !up.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                *conn.lock().unwrap() = Some(stream.try_clone().unwrap());
                let seen = seen.clone();
                std::thread::spawn(move || serve(stream, &seen));
            }
        });
        broker
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new("link-test", self.addr.ip().to_string(), self.addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    fn published(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().unwrap().published.clone()
    }

    /// Sends `n` messages (QoS 0) on `topic/<i>` to the connected link, as fast as TCP takes them.
    fn flood(&self, topic: &str, n: usize) {
        let mut s = self.conn.lock().unwrap().as_ref().expect("the link is connected").try_clone().unwrap();
        let topic = topic.to_owned();
        std::thread::spawn(move || {
            for i in 0..n {
                let _ = s.write_all(&publish_packet(&format!("{topic}/{i}"), i.to_string().as_bytes()));
            }
        });
    }
}

/// A QoS 0 PUBLISH.
fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(topic.len()).unwrap().to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(payload);
    let mut out = vec![0x30];
    let mut len = body.len();
    loop {
        let mut b = u8::try_from(len % 128).unwrap();
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&body);
    out
}

/// One packet: its first byte and its body; `None` when the link closed the connection.
fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut first = [0u8; 1];
    s.read_exact(&mut first).ok()?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((first[0], body))
}

/// Speaks MQTT with one connection: CONNACK, PUBACK, SUBACK, PINGRESP; records what came.
fn serve(mut s: TcpStream, seen: &Mutex<Seen>) {
    while let Some((first, body)) = read_packet(&mut s) {
        let answer: Vec<u8> = match first >> 4 {
            1 => vec![0x20, 0x02, 0x00, 0x00],
            3 => {
                let qos = (first >> 1) & 3;
                let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
                let at = 2 + tlen + if qos > 0 { 2 } else { 0 };
                seen.lock().unwrap().published.push((topic, body[at..].to_vec()));
                if qos > 0 { vec![0x40, 0x02, body[2 + tlen], body[3 + tlen]] } else { Vec::new() }
            }
            8 => {
                let flen = usize::from(u16::from_be_bytes([body[2], body[3]]));
                seen.lock().unwrap().subscribed.push(String::from_utf8_lossy(&body[4..4 + flen]).into_owned());
                vec![0x90, 0x03, body[0], body[1], 0x01]
            }
            12 => vec![0xd0, 0x00],
            14 => {
                seen.lock().unwrap().disconnects += 1;
                return;
            }
            _ => Vec::new(),
        };
        if !answer.is_empty() && s.write_all(&answer).is_err() {
            return;
        }
    }
}

/// Takes events until `done` holds or `within` has passed; gives every event taken.
async fn pump(link: &mut Link, within: Duration, mut done: impl FnMut(&Link) -> bool) -> Vec<LinkEvent> {
    let deadline = tokio::time::Instant::now() + within;
    let mut events = Vec::new();
    while !done(link) && tokio::time::Instant::now() < deadline {
        // Short waits, so `done` is looked at again while no event comes.
        match tokio::time::timeout(Duration::from_millis(20), link.next()).await {
            Ok(Some(e)) => events.push(e),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    events
}

/// Connection attempts one link makes in `secs` after losing its broker, with the shortest
/// waits (0.5 s, doubling to 30 s; jitter only lengthens them), the first at once.
fn attempts_within(secs: f64) -> usize {
    let (mut at, mut wait, mut n) = (0.0, FIRST_RETRY.as_secs_f64(), 1);
    loop {
        at += wait;
        if at > secs {
            return n;
        }
        n += 1;
        wait = (wait * 2.0).min(LONGEST_RETRY.as_secs_f64());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_broker_is_down_messages_wait_the_link_backs_off_and_all_arrive_in_order_later() {
    let broker = Broker::start(false);
    let mut link = Link::start("test", broker.options(), 8);
    // 4 s of outage while the owner publishes every 10 ms and takes events between: the
    // publishing never waits and never disturbs a connection attempt.
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut lost = Vec::new();
    while started.elapsed() < Duration::from_secs(4) {
        let payload = format!("m{}", sent.len());
        link.publish("hearth/out", QoS::AtLeastOnce, false, payload.clone()).unwrap();
        sent.push(payload);
        if let Ok(Some(LinkEvent::Lost { reason, retry_in })) =
            tokio::time::timeout(Duration::from_millis(10), link.next()).await
        {
            lost.push((reason, retry_in));
        }
    }
    let knocks = broker.knocks.load(Ordering::SeqCst);
    let most = attempts_within(started.elapsed().as_secs_f64()) + 1;
    assert!(knocks >= 2, "the link tried again after the first failure: {knocks} attempts");
    assert!(knocks <= most, "{knocks} connection attempts in 4 s: a reconnect storm (at most {most})");
    assert_eq!(link.waiting(), sent.len(), "every message waits while the broker is down");
    let (reason, _) = lost.first().expect("a lost connection is reported");
    assert!(reason.starts_with(&format!("MQTT broker {} unreachable (", broker.addr)), "{reason}");
    // Waits double (0.5 s, 1 s, 2 s …), each with up to half again.
    for (i, (_, wait)) in lost.iter().enumerate() {
        let base = FIRST_RETRY * 2u32.pow(u32::try_from(i).unwrap());
        assert!(*wait >= base && *wait <= base + base / 2, "wait {i}: {wait:?} (base {base:?})");
    }

    broker.up.store(true, Ordering::SeqCst);
    let n = sent.len();
    let events = pump(&mut link, Duration::from_secs(30), |_| broker.published().len() >= n).await;
    assert!(events.contains(&LinkEvent::Connected), "{events:?}");
    let got: Vec<String> = broker.published().iter().map(|(_, p)| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(got, sent, "what the broker received, in order");
    assert_eq!((link.waiting(), link.dropped()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_answers_a_flood_with_a_flood_never_stops_the_link() {
    // The hub's Home Assistant publisher used to await room in its client's queue while the task
    // that empties that queue waited for the publisher to take the next incoming message.
    let broker = Broker::start(true);
    let mut link = Link::start("test", broker.options(), 4).with_waiting_limit(100_000);
    let events = pump(&mut link, Duration::from_secs(10), Link::connected).await;
    assert_eq!(events, [LinkEvent::Connected]);
    assert!(link.subscribe("in/#", QoS::AtMostOnce));
    const N: usize = 5_000;
    broker.flood("in", N);
    let mut answered = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while answered < N {
        match tokio::time::timeout_at(deadline, link.next()).await {
            Ok(Some(LinkEvent::Message { topic, payload })) => {
                // Three answers for each message: far more than the client's queue holds.
                for k in 0..3 {
                    link.publish(format!("out/{k}"), QoS::AtLeastOnce, false, payload.clone()).unwrap();
                }
                assert_eq!(topic, format!("in/{answered}"));
                answered += 1;
            }
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Ok(None) | Err(_) => panic!("the link stopped after {answered} of {N} messages"),
        }
    }
    pump(&mut link, Duration::from_secs(60), |_| broker.published().len() >= 3 * N).await;
    let published = broker.published();
    assert_eq!(published.len(), 3 * N, "every answer reached the broker");
    let firsts: Vec<String> =
        published.iter().filter(|(t, _)| t == "out/0").map(|(_, p)| String::from_utf8_lossy(p).into_owned()).collect();
    assert_eq!(firsts, (0..N).map(|i| i.to_string()).collect::<Vec<_>>(), "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_wait_until_released_and_close_says_goodbye() {
    let broker = Broker::start(true);
    let mut link = Link::start("test", broker.options(), 8);
    pump(&mut link, Duration::from_secs(10), Link::connected).await;
    link.hold(true);
    link.publish("held/1", QoS::AtLeastOnce, true, "a").unwrap();
    // A round trip through the broker, so anything the link would send has gone before it.
    assert!(link.subscribe("ping", QoS::AtMostOnce));
    pump(&mut link, Duration::from_secs(10), |_| broker.seen.lock().unwrap().subscribed.len() == 1).await;
    broker.flood("ping", 1);
    let echo = tokio::time::timeout(Duration::from_secs(10), link.next()).await;
    assert!(matches!(&echo, Ok(Some(LinkEvent::Message { topic, .. })) if topic == "ping/0"), "{echo:?}");
    assert!(broker.published().is_empty(), "a held message went out: {:?}", broker.published());
    assert_eq!(link.waiting(), 1);
    link.hold(false);
    pump(&mut link, Duration::from_secs(10), |_| !broker.published().is_empty()).await;
    assert_eq!(broker.published(), [("held/1".to_owned(), b"a".to_vec())]);
    let err = link.publish("a/+/b", QoS::AtLeastOnce, false, "x").unwrap_err();
    assert_eq!(err, "`a/+/b` is no MQTT topic to publish on");
    link.close(Duration::from_secs(2)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.seen.lock().unwrap().disconnects == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(broker.seen.lock().unwrap().disconnects, 1, "DISCONNECT, so the broker sends no last will");
}
