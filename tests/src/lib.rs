//! Harness for end-to-end tests: starts the real `hearth` binary on free ports in a temporary
//! data directory and talks to it with real HTTP and WebSocket clients.
#![allow(clippy::unwrap_used)]
// These tests drive a separate process from plain threads: blocking sleeps are fine here.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod bluez;
pub mod browser;
pub mod door;
pub mod harness;
pub mod mosquitto;
pub mod session;

/// Device simulators speaking the real wire protocols over real sockets (`tests/sim/`).
#[path = "../sim/mod.rs"]
pub mod sim;

/// The `hearth` binary, built once per test run with the same profile as the tests.
pub fn hearth_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/<test exe> -> target/<profile>/hearth
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir").to_owned();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "hearth", "--bin", "hearth"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the hearth binary");
        assert!(status.success(), "building the hearth binary failed");
        profile_dir.join("hearth")
    })
    .clone()
}

/// A JSON file of this repository, by its path from the repository's root (fixtures).
pub fn repo_json(path: &str) -> serde_json::Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", file.display()))
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running hub process.
pub struct Hub {
    /// The process.
    pub child: Option<Child>,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// The HTTP address.
    pub http: SocketAddr,
    /// The MQTT address (if the broker runs).
    pub mqtt: Option<SocketAddr>,
    /// Extra arguments it was started with.
    pub args: Vec<String>,
    /// Everything it wrote to stderr.
    pub log: Arc<Mutex<String>>,
    /// Extra environment variables it runs with.
    pub env: Vec<(String, String)>,
    agent: ureq::Agent,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("http", &self.http).field("data_dir", &self.data_dir).finish()
    }
}

/// An HTTP answer: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body as JSON.
    pub body: Value,
    /// Body as text.
    pub text: String,
    /// Body as bytes.
    pub bytes: Vec<u8>,
    /// Response headers, names in lowercase, in order.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Set-Cookie` header that sets cookie `name`, whole (with its attributes).
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .find(|v| v.split(';').next().is_some_and(|kv| kv.trim().starts_with(&format!("{name}="))))
    }

    /// The value cookie `name` is set to (`name=value` as a `Cookie` header sends it back).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name).and_then(|v| v.split(';').next()).map(|kv| kv.trim().to_owned())
    }
}

impl Hub {
    /// Starts a hub with `args` (e.g. `["--demo"]`) in a new temporary data directory.
    pub fn start(args: &[&str]) -> Hub {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        let mut hub = Hub::new_in(data_dir, args);
        hub._tmp = Some(tmp);
        hub.spawn();
        hub
    }

    /// Starts a hub with a configuration file of `config` (TOML) and `args`.
    pub fn start_with_config(config: &str, args: &[&str]) -> Hub {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = tmp.path().join("hearth.toml");
        std::fs::write(&file, config).expect("write the configuration");
        let mut all = vec!["--config", file.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let mut hub = Hub::new_in(tmp.path().join("data"), &all);
        hub._tmp = Some(tmp);
        hub.spawn();
        hub
    }

    /// Adds a member account `name` (as the administrator with `admin_token`) and returns a
    /// session token of it.
    pub fn member(&self, admin_token: &str, name: &str) -> String {
        let password = "a long password";
        let made = self.post(
            "/api/v1/users",
            Some(admin_token),
            serde_json::json!({"name": name, "password": password, "role": "member"}),
        );
        assert_eq!(made.status, 201, "{}", made.text);
        let login = self.post("/api/v1/auth/login", None, serde_json::json!({"name": name, "password": password}));
        assert_eq!(login.status, 200, "{}", login.text);
        login.body["token"].as_str().expect("a token").to_owned()
    }

    /// Starts a hub with a configuration file of `config` and extra environment variables.
    pub fn start_with_config_env(config: &str, env: &[(&str, &str)]) -> Hub {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = tmp.path().join("hearth.toml");
        std::fs::write(&file, config).expect("write the configuration");
        let mut hub = Hub::new_in(tmp.path().join("data"), &["--config", file.to_str().expect("utf-8 path")]);
        hub.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        hub._tmp = Some(tmp);
        hub.spawn();
        hub
    }

    /// Starts a hub with its built-in broker off (`--mqtt off`), e.g. to use an external one.
    pub fn start_without_broker(args: &[&str]) -> Hub {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut hub = Hub::new_in(tmp.path().join("data"), args);
        hub.mqtt = None;
        hub._tmp = Some(tmp);
        hub.spawn();
        hub
    }

    fn new_in(data_dir: PathBuf, args: &[&str]) -> Hub {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Hub {
            child: None,
            data_dir,
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            mqtt: Some(SocketAddr::from(([127, 0, 0, 1], free_port()))),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            log: Arc::new(Mutex::new(String::new())),
            env: Vec::new(),
            agent,
            _tmp: None,
        }
    }

    /// Starts the process and waits until `/healthz` answers.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(hearth_bin());
        cmd.arg("run")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http")
            .arg(self.http.to_string())
            .arg("--mqtt")
            .arg(self.mqtt.map_or_else(|| "off".to_owned(), |a| a.to_string()))
            .args(&self.args)
            .env("HEARTH_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start hearth");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("wait") {
                panic!("hearth exited with {status} before serving:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&self.http, Duration::from_millis(200)).is_ok()
                && self.get("/healthz", None).status == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "hearth did not serve within 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the hub logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Panics when `secret` is in the database file or its WAL in clear, or in the log. Call
    /// after [`Hub::stop`], so everything is on disk.
    pub fn assert_nowhere_in_clear(&self, secret: &str) {
        for f in ["hearth.db", "hearth.db-wal"] {
            let bytes = std::fs::read(self.data_dir.join(f)).unwrap_or_default();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{f} holds the secret in clear");
        }
        assert!(!self.log().contains(secret), "the secret is never logged");
    }

    /// Stops with SIGTERM and waits; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills with SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops and starts again on the same data directory and ports.
    pub fn restart(&mut self) {
        assert!(self.stop(), "hearth did not stop cleanly:\n{}", self.log());
        self.spawn();
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hearth.db")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Any request; `token` as bearer, `body` as JSON.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        self.request_with(method, path, &headers, body)
    }

    /// Any request with these headers (`Cookie`, `Origin`, ...), `body` as JSON.
    pub fn request_with(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Answer {
        let mut b = ureq::http::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let result = match body {
            Some(v) => {
                let req = b.header("content-type", "application/json").body(v.to_string()).expect("request");
                self.agent.run(req)
            }
            None => self.agent.run(b.body(()).expect("request")),
        };
        let resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        answer(resp)
    }

    /// The address to send as `Origin` for requests from the hub's own pages.
    pub fn origin(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Any request with a text body (YAML, say).
    pub fn request_text(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Answer {
        let mut b = ureq::http::Request::builder().method(method).uri(self.url(path));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b.header("content-type", "application/yaml").body(body.to_owned()).expect("request");
        let resp = self.agent.run(req).unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        answer(resp)
    }

    /// GET.
    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.request("GET", path, token, None)
    }

    /// POST with a JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.request("POST", path, token, Some(&body))
    }

    /// Creates the owner through onboarding and returns a session token.
    pub fn onboard(&self) -> String {
        let a = self.post("/api/v1/onboarding", None, json!({"name": "owner", "password": "correct horse battery"}));
        assert_eq!(a.status, 201, "onboarding: {}", a.text);
        a.body["token"].as_str().expect("token").to_owned()
    }

    /// Runs `hearth <args>` against this hub's data directory; returns (status ok, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(hearth_bin());
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run hearth");
        if let Some(input) = stdin {
            // A command that refuses its arguments exits before reading: its status says so.
            let _ = child.stdin.take().expect("stdin").write_all(input.as_bytes());
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("output");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
    }

    /// Opens an authenticated WebSocket.
    pub fn ws(&self, token: &str) -> Ws {
        let mut ws = Ws::connect(self.http);
        ws.send(json!({"type": "auth", "token": token}));
        let ok = ws.recv_type("auth_ok", Duration::from_secs(10));
        assert!(ok["user"]["name"].as_str().is_some(), "{ok}");
        ws
    }

    /// Polls `f` until it returns `Some`, for at most `timeout`.
    pub fn wait_for<T>(&self, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "condition not met within {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn answer(mut resp: ureq::http::Response<ureq::Body>) -> Answer {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let bytes = resp.body_mut().with_config().limit(256 << 20).read_to_vec().unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text, bytes, headers }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A WebSocket client session.
pub struct Ws {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ws")
    }
}

impl Ws {
    /// Connects without authenticating.
    pub fn connect(addr: SocketAddr) -> Ws {
        Ws::connect_with(addr, &[]).unwrap_or_else(|status| panic!("websocket handshake refused with {status}"))
    }

    /// Connects with extra headers on the upgrade request (`Origin`, `Cookie`); a refused
    /// handshake gives its HTTP status.
    pub fn connect_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        use tungstenite::client::IntoClientRequest;
        let stream = TcpStream::connect(addr).expect("connect");
        let mut request = format!("ws://{addr}/api/v1/ws").into_client_request().expect("request");
        for (k, v) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name");
            request.headers_mut().insert(name, v.parse().expect("header value"));
        }
        match tungstenite::client::client(request, stream) {
            Ok((socket, _)) => Ok(Ws { socket }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => Err(r.status().as_u16()),
            Err(e) => panic!("websocket handshake: {e}"),
        }
    }

    /// Sends a JSON message.
    pub fn send(&mut self, v: Value) {
        self.socket.send(tungstenite::Message::text(v.to_string())).expect("ws send");
    }

    /// The next JSON message within `timeout`; `None` when the socket closed.
    pub fn recv(&mut self, timeout: Duration) -> Option<Value> {
        self.socket.get_mut().set_read_timeout(Some(timeout)).expect("timeout");
        loop {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(t)) => return Some(serde_json::from_str(&t).expect("json message")),
                Ok(tungstenite::Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return None,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    panic!("no WebSocket message within {timeout:?}")
                }
                Err(e) => panic!("websocket error: {e}"),
            }
        }
    }

    /// Skips messages until one of type `ty` arrives.
    pub fn recv_type(&mut self, ty: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let m = self.recv(left).unwrap_or_else(|| panic!("socket closed while waiting for `{ty}`"));
            if m["type"] == ty {
                return m;
            }
            assert!(Instant::now() < deadline, "no `{ty}` message within {timeout:?}");
        }
    }

    /// Skips messages until `pred` holds for one.
    pub fn recv_until(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            let m = self.recv(left).expect("socket closed");
            if pred(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "no matching message within {timeout:?}");
        }
    }
}

/// Reads a whole stream to a string (for child outputs).
pub fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}
