//! A connection to the broker that keeps itself up: [`Link`].
//!
//! rumqttc's event loop both connects and moves packets, and it only does either while it is
//! polled. Polled inside an adapter's `select!` next to commands and timers, it went wrong three
//! ways: a command or a tick that won the race dropped a connection half made, and the client
//! began another at once (a reconnect storm); the wait before the next attempt kept commands out
//! until they found the adapter busy; and a task that awaited room in the client's queue while
//! the same task was the one to empty it stopped for good.
//!
//! A [`Link`] drives its event loop in a task of its own, retries with jittered backoff there,
//! and hands what happens to its owner as [`LinkEvent`]s over a channel. Its owner never awaits
//! the client: [`Link::publish`] queues (in order, bounded) and the link hands messages to the
//! client as it takes them, while connected and not held ([`Link::hold`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, ClientError, Event, MqttOptions, Outgoing, Packet, QoS, Request};
use tokio::sync::mpsc;

/// The first wait after a failed connection; it doubles with each failure in a row.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts, before jitter (which adds up to half again).
pub const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// How many messages wait for the broker by default before the oldest is dropped.
pub const DEFAULT_WAITING: usize = 10_000;
/// Events the driver hands over before it waits for its owner (which slows the broker down).
const EVENTS: usize = 256;

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected, for the first time or again. Subscriptions do not survive a lost connection:
    /// subscribe now.
    Connected,
    /// A message on a subscribed topic.
    Message { topic: String, payload: bytes::Bytes },
    /// The connection was lost, or an attempt failed: `reason` says why, for a user
    /// ("MQTT broker 10.0.0.2:1883 unreachable (…)"). The link tries again after `retry_in`.
    Lost { reason: String, retry_in: Duration },
}

/// A message waiting for the client.
#[derive(Debug)]
struct Waiting {
    topic: String,
    qos: QoS,
    retain: bool,
    payload: bytes::Bytes,
}

type Sending = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A connection to an MQTT broker, kept up by a task of its own. See the module's text.
pub struct Link {
    client: AsyncClient,
    events: mpsc::Receiver<LinkEvent>,
    driver: tokio::task::JoinHandle<()>,
    closing: Arc<AtomicBool>,
    waiting: VecDeque<Waiting>,
    /// The message the client had no room for, being handed over as soon as it has (the future
    /// lives here, so a `select!` that drops [`Link::next`] loses nothing).
    sending: Option<Sending>,
    max_waiting: usize,
    dropped: u64,
    connected: bool,
    held: bool,
    name: &'static str,
}

impl Link {
    /// Connects with `opts` (see [`crate::options`]), with room for `capacity` requests in the
    /// client's own queue; `name` says whose link it is in logs ("zigbee2mqtt"). Call inside a
    /// Tokio runtime.
    pub fn start(name: &'static str, opts: MqttOptions, capacity: usize) -> Link {
        let (host, port) = opts.broker_address();
        let (client, eventloop) = crate::client(opts, capacity);
        let (tx, events) = mpsc::channel(EVENTS);
        let closing = Arc::new(AtomicBool::new(false));
        let driver = tokio::spawn(drive(eventloop, tx, closing.clone(), format!("{host}:{port}"), name));
        Link {
            client,
            events,
            driver,
            closing,
            waiting: VecDeque::new(),
            sending: None,
            max_waiting: DEFAULT_WAITING,
            dropped: 0,
            connected: false,
            held: false,
            name,
        }
    }

    /// At most `n` messages wait for the broker; beyond, the oldest is dropped (and counted).
    #[must_use]
    pub fn with_waiting_limit(mut self, n: usize) -> Link {
        self.max_waiting = n.max(1);
        self
    }

    /// The next event. Cancel-safe: nothing is lost when another branch of a `select!` wins.
    /// Meanwhile it hands waiting messages to the client as it makes room. `None` once the
    /// driver has ended (after [`Link::close`]).
    pub async fn next(&mut self) -> Option<LinkEvent> {
        loop {
            self.flush();
            tokio::select! {
                event = self.events.recv() => {
                    match &event {
                        Some(LinkEvent::Connected) => self.connected = true,
                        Some(LinkEvent::Lost { .. }) | None => self.connected = false,
                        Some(LinkEvent::Message { .. }) => {}
                    }
                    return event;
                }
                () = async { if let Some(f) = self.sending.as_mut() { f.await } }, if self.sending.is_some() => {
                    self.sending = None;
                }
            }
        }
    }

    /// Whether the broker is connected now (as of the last event [`Link::next`] gave).
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Keeps messages waiting even while connected (`true`), e.g. until the service on the far
    /// side says it is back; `false` lets them go, in order.
    pub fn hold(&mut self, held: bool) {
        self.held = held;
        self.flush();
    }

    /// Queues a message. It goes out in order, once connected and not held; the link never
    /// makes its owner wait. A topic no broker takes (empty, or with `+` or `#`) is refused
    /// with the reason.
    pub fn publish(
        &mut self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<bytes::Bytes>,
    ) -> Result<(), String> {
        let topic = topic.into();
        if topic.is_empty() || topic.contains(['+', '#', '\0']) {
            return Err(format!("`{topic}` is no MQTT topic to publish on"));
        }
        self.waiting.push_back(Waiting { topic, qos, retain, payload: payload.into() });
        while self.waiting.len() > self.max_waiting {
            self.waiting.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    link = self.name,
                    dropped = self.dropped,
                    waiting = self.max_waiting,
                    "The MQTT broker takes no messages; the oldest waiting ones were dropped."
                );
            }
        }
        self.flush();
        Ok(())
    }

    /// Messages waiting for the broker now.
    pub fn waiting(&self) -> usize {
        self.waiting.len() + usize::from(self.sending.is_some())
    }

    /// Messages dropped so far because too many waited.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Forgets every waiting message (an owner that sends everything again once connected).
    pub fn discard_waiting(&mut self) {
        self.waiting.clear();
    }

    /// Asks for a subscription without waiting; `false` when the client's queue is full now
    /// (ask again later) or the filter is not valid.
    pub fn subscribe(&self, filter: impl Into<String>, qos: QoS) -> bool {
        self.client.try_subscribe(filter, qos).is_ok()
    }

    /// Drops a subscription without waiting; `false` when the client's queue is full now.
    pub fn unsubscribe(&self, filter: impl Into<String>) -> bool {
        self.client.try_unsubscribe(filter).is_ok()
    }

    /// Hands the broker what waits, says goodbye with DISCONNECT (so no last will is sent), and
    /// waits at most `within` for that to go out.
    pub async fn close(mut self, within: Duration) {
        let handed = async {
            loop {
                self.flush();
                match self.sending.take() {
                    Some(f) => f.await,
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(within, handed).await;
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
        // The driver may be waiting to hand over an event: nobody will take it now.
        self.events.close();
        // Dropping the link ends the driver if it is not done by then.
        let _ = tokio::time::timeout(within, &mut self.driver).await;
    }

    fn open(&self) -> bool {
        self.connected && !self.held
    }

    /// Hands waiting messages to the client, in order, until its queue is full; the next one
    /// then goes as soon as there is room (see `sending`).
    fn flush(&mut self) {
        while self.sending.is_none()
            && self.open()
            && let Some(w) = self.waiting.pop_front()
        {
            match self.client.try_publish(w.topic, w.qos, w.retain, w.payload) {
                Ok(()) => {}
                Err(ClientError::TryRequest(Request::Publish(p)) | ClientError::Request(Request::Publish(p))) => {
                    let client = self.client.clone();
                    self.sending = Some(Box::pin(async move {
                        // An error means the event loop is gone: the link is closing.
                        let _ = client.publish(p.topic, p.qos, p.retain, p.payload).await;
                    }));
                }
                // The event loop is gone: the link is closing.
                Err(_) => break,
            }
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("name", &self.name)
            .field("connected", &self.connected)
            .field("held", &self.held)
            .field("waiting", &self.waiting())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// The driver: polls the event loop for good, hands events over, waits between attempts.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    tx: mpsc::Sender<LinkEvent>,
    closing: Arc<AtomicBool>,
    broker: String,
    name: &'static str,
) {
    let mut backoff = FIRST_RETRY;
    loop {
        let event = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = FIRST_RETRY;
                tracing::debug!(link = name, broker = %broker, "Connected to the MQTT broker.");
                LinkEvent::Connected
            }
            Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message { topic: p.topic, payload: p.payload },
            Ok(Event::Outgoing(Outgoing::Disconnect)) if closing.load(Ordering::SeqCst) => return,
            Ok(_) => continue,
            Err(e) => {
                if closing.load(Ordering::SeqCst) || tx.is_closed() {
                    return;
                }
                let retry_in = backoff + jitter(backoff);
                backoff = (backoff * 2).min(LONGEST_RETRY);
                let reason = format!("MQTT broker {broker} unreachable ({e})");
                tracing::debug!(link = name, "{reason}; next attempt in {:.1} s.", retry_in.as_secs_f64());
                if tx.send(LinkEvent::Lost { reason, retry_in }).await.is_err() {
                    return;
                }
                tokio::time::sleep(retry_in).await;
                continue;
            }
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Up to half of `backoff` again, so clients that lost the same broker do not all come back in
/// the same instant.
fn jitter(backoff: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    backoff.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
