//! The real `hearth` binary as a child process: started in a temporary data directory with its
//! built-in broker, signed in to through onboarding, measured through `/proc`, stopped with SIGTERM.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    child: Option<Child>,
    pub http: SocketAddr,
    pub mqtt: SocketAddr,
    log: PathBuf,
    data: PathBuf,
    agent: ureq::Agent,
    /// When `hearth run` was spawned.
    pub spawned: Instant,
    _dir: Option<tempfile::TempDir>,
}

/// The largest answer body read (a list of 10,000 devices is several MB).
const MAX_BODY: u64 = 512 << 20;

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a loopback port to find a free one")?;
    Ok(l.local_addr()?.port())
}

impl Hub {
    /// Starts `bin run` in a new temporary data directory and waits until `/healthz` answers (at
    /// most 60 s).
    pub fn start(bin: &Path) -> Result<Hub> {
        let dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let mut hub = Hub::spawn(bin, dir.path(), None)?;
        hub._dir = Some(dir);
        hub.wait_healthy(Duration::from_millis(50), Duration::from_secs(60))?;
        Ok(hub)
    }

    /// Spawns `bin run` with its data directory (`<home>/data`), log and configuration (when
    /// given, written to `<home>/hearth.toml`) in `home`, on fresh loopback ports; returns at once.
    pub fn spawn(bin: &Path, home: &Path, config: Option<&str>) -> Result<Hub> {
        let data = home.join("data");
        let log = home.join("hearth.log");
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mqtt = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening the hub's log file {}", log.display()))?;
        let mut command = Command::new(bin);
        command.arg("run").arg("--data-dir").arg(&data).arg("--http").arg(http.to_string());
        command.arg("--mqtt").arg(mqtt.to_string());
        if let Some(text) = config {
            let path = home.join("hearth.toml");
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            command.arg("--config").arg(path);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let spawned = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Hub { child: Some(child), http, mqtt, log, data, agent, spawned, _dir: None })
    }

    /// Polls `/healthz` every `poll` until it answers 200 (at most `within`); returns when it did.
    pub fn wait_healthy(&mut self, poll: Duration, within: Duration) -> Result<Instant> {
        let deadline = self.spawned + within;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("hearth exited with {status} before serving; its log:\n{}", self.log_tail());
            }
            if let Ok((200, _)) = self.request("GET", "/healthz", None, None) {
                return Ok(Instant::now());
            }
            if Instant::now() > deadline {
                bail!("hearth did not answer /healthz within {} s; its log:\n{}", within.as_secs(), self.log_tail());
            }
            std::thread::sleep(poll);
        }
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data.join("hearth.db")
    }

    /// The process id.
    pub fn pid(&self) -> Result<u32> {
        self.child.as_ref().map(Child::id).ok_or_else(|| anyhow!("the hub is not running"))
    }

    /// The last lines the hub logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Any request; returns the status and the body parsed as JSON (null when it is not JSON).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<(u16, Value)> {
        let mut b = ureq::http::Request::builder().method(method).uri(format!("http://{}{path}", self.http));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let result = match body {
            Some(v) => self.agent.run(b.header("content-type", "application/json").body(v.to_string())?),
            None => self.agent.run(b.body(())?),
        };
        let mut resp = result.with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().with_config().limit(MAX_BODY).read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Creates the owner through onboarding and returns a session token.
    pub fn onboard(&self) -> Result<String> {
        let body = json!({"name": "owner", "password": "correct horse battery"});
        let (status, answer) = self.request("POST", "/api/v1/onboarding", None, Some(&body))?;
        if status != 201 {
            bail!("onboarding answered {status}: {answer}");
        }
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("onboarding answered without a token: {answer}"))
    }

    /// Resident memory in bytes (VmRSS).
    pub fn rss_bytes(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.pid()?);
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow!("no VmRSS in {path}"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| anyhow!("unreadable VmRSS line in {path}: {line}"))?;
        Ok(kib * 1024)
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64> {
        let path = format!("/proc/{}/stat", self.pid()?);
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // The command name may hold spaces and parentheses: the fields start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| anyhow!("unreadable {path}"))?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field 3 (state) is index 0 here, so utime (14) is 11 and stime (15) is 12.
        let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        match (tick(11), tick(12)) {
            (Some(u), Some(s)) => Ok(u + s),
            _ => bail!("unreadable utime/stime in {path}"),
        }
    }

    /// Stops with SIGTERM and waits (at most 30 s, then SIGKILL); returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`), 100 when that cannot be read.
pub fn clock_ticks_per_second() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .map_or((100, false), |t| (t, true))
}
