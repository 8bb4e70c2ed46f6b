//! A mosquitto broker of a test's own on free loopback ports: anonymous on one port by default
//! ([`Mosquitto::start`]), or with listeners the test writes itself, TLS and accounts say
//! ([`Mosquitto::start_with`]). It can be killed and started again on the same ports to play an
//! outage, and is killed when dropped. `tests/run` installs mosquitto.
//!
//! ```no_run
//! # use hearth_tests::mosquitto::Mosquitto;
//! let mut broker = Mosquitto::start();
//! let settings = broker.settings(); // for an adapter under `hearth_sdk::testing::Harness`
//! broker.kill(); // the broker dies
//! broker.restart(); // and comes back, same address
//! ```

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_sdk::MqttSettings;

use crate::free_port;

/// How long mosquitto may take to listen on every port.
const START: Duration = Duration::from_secs(30);

/// A running mosquitto (or one killed until [`Mosquitto::restart`]); killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    conf: PathBuf,
    log: PathBuf,
    addrs: Vec<SocketAddr>,
    child: Option<Child>,
    /// The directory of the configuration, when the broker made it.
    _dir: Option<tempfile::TempDir>,
}

impl Mosquitto {
    /// Anonymous access on one free loopback port, nothing persisted; its configuration in a
    /// temporary directory of its own.
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("a temporary directory for mosquitto");
        let port = free_port();
        let listener = format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
        let mut broker = Mosquitto::start_with(dir.path(), &listener, &[port]);
        broker._dir = Some(dir);
        broker
    }

    /// With `listeners`, the configuration's lines after the common ones (`persistence false`,
    /// `per_listener_settings true`, `user root`, logging to `mosquitto.log`), written to
    /// `dir/mosquitto.conf`; `ports` are the ones they listen on (on 127.0.0.1), in the order
    /// [`Mosquitto::addrs`] gives them. Returns once every port accepts connections.
    pub fn start_with(dir: &Path, listeners: &str, ports: &[u16]) -> Mosquitto {
        assert!(!ports.is_empty(), "mosquitto needs a port to listen on");
        let conf = dir.join("mosquitto.conf");
        // `user root`: started as root (CI), mosquitto would otherwise switch to its own account,
        // which cannot read the test's files; for any other user the setting does nothing.
        let common = "per_listener_settings true\npersistence false\nlog_dest stderr\nuser root\n";
        std::fs::write(&conf, format!("{common}{listeners}")).expect("write mosquitto.conf");
        let mut broker = Mosquitto {
            conf,
            log: dir.join("mosquitto.log"),
            addrs: ports.iter().map(|p| SocketAddr::from(([127, 0, 0, 1], *p))).collect(),
            child: None,
            _dir: None,
        };
        broker.spawn();
        broker
    }

    /// The address of its first listener.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The addresses of its listeners, in the order of the ports it was started with.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Settings for an adapter to use it: its first listener, no account, no TLS.
    pub fn settings(&self) -> MqttSettings {
        MqttSettings { host: "127.0.0.1".into(), port: self.addr().port(), username: None, password: None, tls: None }
    }

    /// Kills it (SIGKILL: clients see the connection drop, as when a broker dies) and waits for
    /// it to exit. Does nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Mosquitto::kill`], same configuration and ports; returns once it
    /// listens.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "mosquitto is still running: kill it first");
        self.spawn();
    }

    /// What it logged so far (every run of it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = File::options().create(true).append(true).open(&self.log).expect("open mosquitto.log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto is installed (tests/run installs it)");
        let child = self.child.insert(child);
        let deadline = Instant::now() + START;
        while self.addrs.iter().any(|a| TcpStream::connect(a).is_err()) {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                panic!("mosquitto exited with {status} before listening:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "mosquitto did not listen on {:?} within {START:?}", self.addrs);
            // A blocking wait between connection attempts, from a test's own thread.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}
