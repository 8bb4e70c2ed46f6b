//! The server side the HTTP simulators share ([`super::shelly`], [`super::wled`]): a TCP server
//! on 127.0.0.1 that serves every connection on a thread of its own, HTTP/1.1 requests read and
//! answered, and WebSockets taken over from an upgrade request and served until they close.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::time::Duration;
//! # use hearth_tests::sim::http::{self, Control, Server};
//! let control = Arc::new(Control::new(Duration::from_millis(20)));
//! let c = control.clone();
//! let server = Server::start(0, "demo-sim", control.clone(), move |_number, mut stream| {
//!     let Some(request) = http::read_request(&mut stream, &c) else { return };
//!     if c.wait_thawed() {
//!         http::respond(&mut stream, 200, &[("Content-Type", "text/plain")], request.path());
//!     }
//! });
//! control.freeze(true); // connections are accepted and read, nothing is answered
//! drop(server); // the listener and every connection closed
//! ```
//!
//! - [`Control`]: a simulator's switches, stopped (for good) and frozen (for a while), and the
//!   tick at which its threads look at them (also every connection's read timeout).
//! - [`Server`]: binds the port, accepts, keeps a handle on every open connection and, when
//!   stopped or dropped, closes the listener and every connection and joins their threads.
//! - [`read_request`], [`respond`]: one request in, one answer out (`Connection: close`).
//! - [`accept_websocket`], [`serve_websocket`]: the `101 Switching Protocols` answer, then a
//!   loop sending what the simulator queued and answering the client's text messages.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// The longest request head read; a longer one closes the connection.
const MAX_HEAD: usize = 64 * 1024;
/// How long the accept loop waits when nobody is calling.
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);

/// A simulator's switches, shared by its threads.
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    frozen: AtomicBool,
    tick: Duration,
}

impl Control {
    /// Running and not frozen; its threads look at the switches every `tick`.
    pub fn new(tick: Duration) -> Control {
        Control { stop: AtomicBool::new(false), frozen: AtomicBool::new(false), tick }
    }

    /// How often threads look at the switches: the read timeout of every connection.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Whether the simulator stopped (for good: its [`Server`] stopped).
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Whether it is frozen: connected, silent.
    pub fn frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Freezes it (`true`) or thaws it (`false`).
    pub fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }

    /// Waits while frozen; `false` when it stopped meanwhile (or before).
    pub fn wait_thawed(&self) -> bool {
        while self.frozen() {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(self.tick);
        }
        !self.stopped()
    }
}

/// The open connections of a [`Server`] and their threads.
#[derive(Debug, Default)]
struct Connections {
    /// A clone of every open connection, by number, shut down when the server stops.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Connection threads, joined when the server stops.
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicU64,
}

/// A lock that a panicked test thread does not make unusable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TCP server on 127.0.0.1 serving every connection on a thread of its own; stopped (the
/// listener and every connection closed) when dropped.
#[derive(Debug)]
pub struct Server {
    port: u16,
    control: Arc<Control>,
    connections: Arc<Connections>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `127.0.0.1:port` (0: a free one; panics when it is taken) and calls
    /// `serve(number, stream)` for every connection on a thread named `<name>-conn`, `number`
    /// counting connections from 1. The stream is blocking, without Nagle's delay, and its read
    /// timeout is `control`'s tick. The connection is closed when `serve` returns.
    pub fn start(
        port: u16,
        name: &str,
        control: Arc<Control>,
        serve: impl Fn(u64, TcpStream) + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("{name}: cannot listen on 127.0.0.1:{port}: {e}"));
        listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{name}: a non-blocking listener: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let connections = Arc::new(Connections { next: AtomicU64::new(1), ..Connections::default() });
        let (c, conns, serve) = (control.clone(), connections.clone(), Arc::new(serve));
        let conn_name = format!("{name}-conn");
        let accept = std::thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                while !c.stopped() {
                    match listener.accept() {
                        Ok((stream, _)) => conns.open(stream, &c, &conn_name, serve.clone()),
                        // Nobody calling (or a failed accept): look again soon.
                        Err(_) => std::thread::sleep(ACCEPT_PAUSE),
                    }
                }
            })
            .unwrap_or_else(|e| panic!("{name}: cannot spawn its accept thread: {e}"));
        Server { port, control, connections, accept: Some(accept) }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it: sets the stop switch, closes the listener and every connection, and waits for
    /// their threads. Dropping it does the same.
    pub fn stop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, stream) in lock(&self.connections.open).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.connections.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Connections {
    /// Serves a new connection on a thread of its own, keeping a clone to close it on stop.
    fn open(
        self: &Arc<Self>,
        stream: TcpStream,
        control: &Control,
        name: &str,
        serve: Arc<impl Fn(u64, TcpStream) + Send + Sync + 'static>,
    ) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(control.tick()));
        // One that could not be closed on stop is not served.
        let Ok(copy) = stream.try_clone() else { return };
        let number = self.next.fetch_add(1, Ordering::SeqCst);
        lock(&self.open).insert(number, copy);
        let conns = self.clone();
        let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            serve(number, stream);
            conns.close(number);
        });
        match spawned {
            Ok(t) => {
                let mut threads = lock(&self.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            }
            Err(_) => self.close(number),
        }
    }

    /// Closes connection `number` for good (the clone kept for stopping would hold it open).
    fn close(&self, number: u64) {
        if let Some(stream) = lock(&self.open).remove(&number) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

// ------------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------------

/// An HTTP/1.1 request as read from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The target as sent, path and query (`/rpc/Switch.Set?id=0&on=true`).
    pub target: String,
    /// The headers, names in lowercase.
    pub headers: BTreeMap<String, String>,
    /// The body: `Content-Length` bytes.
    pub body: Vec<u8>,
    /// What the client sent after the body (a WebSocket client's first frames).
    pub rest: Vec<u8>,
}

impl Request {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The target's path, without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(path, _)| path)
    }

    /// The target's query, after `?` (empty without).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// Whether it asks to upgrade the connection to a WebSocket.
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    }
}

/// Reads more of a request into `raw`; `false` when the client left or the simulator stopped.
fn read_more(stream: &mut TcpStream, raw: &mut Vec<u8>, control: &Control) -> bool {
    if control.stopped() {
        return false;
    }
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            raw.extend_from_slice(&chunk[..n]);
            true
        }
        // The read timeout (the tick): look at the stop switch, read on.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
        Err(_) => false,
    }
}

/// Reads one request (head and `Content-Length` body) even while frozen; `None` when the client
/// leaves, the simulator stops, or what it sends is not HTTP.
pub fn read_request(stream: &mut TcpStream, control: &Control) -> Option<Request> {
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if raw.len() > MAX_HEAD || !read_more(stream, &mut raw, control) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    while raw.len() < head_end + length {
        if !read_more(stream, &mut raw, control) {
            return None;
        }
    }
    let rest = raw.split_off(head_end + length);
    let body = raw.split_off(head_end);
    Some(Request { method, target, headers, body, rest })
}

/// The reason phrase of the statuses the simulators answer with.
fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Answers with `status`, `headers`, `Content-Length`, `Connection: close` and `body`.
pub fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &str) {
    let mut text = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

// ------------------------------------------------------------------------------------------------
// WebSocket
// ------------------------------------------------------------------------------------------------

/// Takes an upgrade request's connection over as the server side of a WebSocket: answers
/// `101 Switching Protocols` with the `Sec-WebSocket-Accept` derived from the request's key, and
/// keeps what the client sent after its request. A request without a key is answered `400` with
/// `headers`, and `None`; so is a client gone meanwhile.
pub fn accept_websocket(
    mut stream: TcpStream,
    request: &Request,
    headers: &[(&str, &str)],
) -> Option<WebSocket<TcpStream>> {
    let Some(key) = request.header("sec-websocket-key") else {
        respond(&mut stream, 400, headers, "");
        return None;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n",
        reason(101)
    );
    stream.write_all(head.as_bytes()).ok()?;
    Some(WebSocket::from_partially_read(stream, request.rest.clone(), Role::Server, None))
}

/// What a WebSocket does while its simulator is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhileFrozen {
    /// Neither reads nor sends: what the client sends and what is queued wait until it thaws.
    Wait,
    /// Reads what the client sends and drops it, and drops what is queued.
    Drop,
}

/// Serves a WebSocket until the client closes it, a send fails or the simulator stops: every tick
/// (the read timeout) it sends what is queued on `outgoing`, then reads a message and answers a
/// text with what `on_text` returns, if anything. Other messages are ignored; a close is
/// answered.
pub fn serve_websocket<T: Into<Message>>(
    ws: &mut WebSocket<TcpStream>,
    control: &Control,
    while_frozen: WhileFrozen,
    outgoing: &Receiver<T>,
    mut on_text: impl FnMut(&str) -> Option<Message>,
) {
    while !control.stopped() {
        if while_frozen == WhileFrozen::Wait && control.frozen() {
            std::thread::sleep(control.tick());
            continue;
        }
        for message in outgoing.try_iter() {
            // Looked at for every message: a test freezes it and changes it at once.
            let dropped = while_frozen == WhileFrozen::Drop && control.frozen();
            if !dropped && ws.send(message.into()).is_err() {
                return;
            }
        }
        match ws.read() {
            Ok(Message::Text(text)) => {
                if while_frozen == WhileFrozen::Drop && control.frozen() {
                    continue;
                }
                if let Some(answer) = on_text(text.as_str())
                    && ws.send(answer).is_err()
                {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
