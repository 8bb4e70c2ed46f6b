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

    /// One plain listener on 127.0.0.1 with an account (`user`, `password`); anonymous clients
    /// are refused. Its files go to `dir`.
    pub fn start_plain_with_account(dir: &Path, user: &str, password: &str) -> Mosquitto {
        let passwd = dir.join("passwd");
        run(Command::new("mosquitto_passwd").args(["-b", "-c"]).arg(&passwd).args([user, password]));
        let port = free_port();
        let listener =
            format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n", passwd.display());
        Mosquitto::start_with(dir, &listener, &[port])
    }

    /// An account (`user`, `password`) on two listeners: plain first, then TLS with a certificate
    /// for `localhost` and 127.0.0.1 signed by a CA of the test's own (`dir/ca.pem`, made by
    /// [`certificates`]). Anonymous clients are refused on both.
    pub fn start_tls_with_account(dir: &Path, user: &str, password: &str) -> Mosquitto {
        Mosquitto::start_tls_for(dir, user, password, "DNS:localhost,IP:127.0.0.1")
    }

    /// [`Mosquitto::start_tls_with_account`] with a certificate for `names` (a subjectAltName
    /// value, like `DNS:localhost`).
    pub fn start_tls_for(dir: &Path, user: &str, password: &str, names: &str) -> Mosquitto {
        Mosquitto::start_tls_configured(dir, user, password, names, "", "")
    }

    /// [`Mosquitto::start_tls_for`] with more configuration lines: `more` for the whole broker
    /// (`persistence true`, say), `tls_more` for the TLS listener (`require_certificate true`).
    pub fn start_tls_configured(
        dir: &Path,
        user: &str,
        password: &str,
        names: &str,
        more: &str,
        tls_more: &str,
    ) -> Mosquitto {
        certificates(dir, names);
        let passwd = dir.join("passwd");
        run(Command::new("mosquitto_passwd").args(["-b", "-c"]).arg(&passwd).args([user, password]));
        let (plain, tls) = (free_port(), free_port());
        let d = |f: &str| dir.join(f).display().to_string();
        let listeners = format!(
            "{more}listener {plain} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n\
             listener {tls} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n\
             cafile {ca}\ncertfile {cert}\nkeyfile {key}\n{tls_more}",
            pw = passwd.display(),
            ca = d("ca.pem"),
            cert = d("server.pem"),
            key = d("server.key"),
        );
        Mosquitto::start_with(dir, &listeners, &[plain, tls])
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

    /// Stops it with SIGTERM, as an administrator does: it saves its persistence file (when the
    /// configuration has `persistence true`) and exits. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Mosquitto::kill`] or [`Mosquitto::stop`], same configuration and ports; returns once it
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

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (tests/run installs it)"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`dir/ca.pem`, `ca.key`) and a server certificate signed by it (`server.pem`,
/// `server.key`) for `names`, a subjectAltName value (`DNS:localhost,IP:127.0.0.1`).
pub fn certificates(dir: &Path, names: &str) {
    let p = |f: &str| dir.join(f);
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Hearth test CA"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr")));
    std::fs::write(p("san.ext"), format!("subjectAltName={names}\n")).expect("write san.ext");
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("san.ext"))
        .arg("-out")
        .arg(p("server.pem")));
}

/// A client certificate and key (`dir/<name>.pem`, `dir/<name>.key`) signed by the CA that
/// [`certificates`] made in `dir`.
pub fn client_certificate(dir: &Path, name: &str) {
    let p = |f: &str| dir.join(f);
    // Extensions make it an X.509 v3 certificate, the only version TLS libraries accept.
    std::fs::write(p(&format!("{name}.ext")), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        .expect("write the extensions");
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj"])
        .arg(format!("/CN={name}"))
        .arg("-keyout")
        .arg(p(&format!("{name}.key")))
        .arg("-out")
        .arg(p(&format!("{name}.csr"))));
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p(&format!("{name}.csr")))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p(&format!("{name}.ext")))
        .arg("-out")
        .arg(p(&format!("{name}.pem"))));
}
