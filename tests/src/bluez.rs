//! A mock BlueZ on a private D-Bus system bus, for testing the BLE adapter's radio path without
//! Bluetooth hardware: Debian's `dbus-daemon` and `python3-dbusmock` (its `bluez5` template),
//! with advertisements sent as the `PropertiesChanged` signals real BlueZ sends. A hub started
//! with [`MockBluez::env`] talks to it through btleplug exactly as it would to `bluetoothd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private system bus with a mock BlueZ on it; both stop when this is dropped.
#[derive(Debug)]
pub struct MockBluez {
    daemon: Child,
    mock: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

/// Sends one advertisement of a mock device: service data under a UUID, and the RSSI.
const ADVERTISE: &str = r#"
import dbus, sys
path, uuid, data, rssi = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
device = dbus.Interface(dbus.SystemBus().get_object('org.bluez', path), 'org.freedesktop.DBus.Mock')
service_data = dbus.Dictionary({uuid: dbus.Array(list(data), signature='y', variant_level=1)}, signature='sv')
changed = dbus.Dictionary({'ServiceData': dbus.Dictionary(service_data, signature='sv', variant_level=1),
                           'RSSI': dbus.Int16(rssi, variant_level=1)}, signature='sv')
device.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
                  ['org.bluez.Device1', changed, dbus.Array([], signature='s')])
"#;

impl MockBluez {
    /// Starts the bus and the mock, with one adapter `hci0`.
    pub fn start() -> MockBluez {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, BUS_CONFIG.replace("SOCKET", socket.to_str().expect("utf-8 path"))).expect("config");
        let daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon (Debian package dbus-daemon)");
        wait_for(&socket);
        let mock = Command::new("/usr/bin/python3")
            .args(["-m", "dbusmock", "--system", "--template", "bluez5"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3-dbusmock (Debian package python3-dbusmock)");
        let bluez = MockBluez { daemon, mock, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !bluez.call("org.bluez.Mock.AddAdapter", &["string:hci0", "string:hearth-test"]) {
            assert!(Instant::now() < deadline, "the mock BlueZ did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        bluez
    }

    /// The environment a hub needs to use this bus as its system bus.
    pub fn env(&self) -> (&'static str, String) {
        ("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", self.socket.display()))
    }

    fn call(&self, method: &str, args: &[&str]) -> bool {
        Command::new("dbus-send")
            .args(["--system", "--print-reply", "--dest=org.bluez", "/org/bluez", method])
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", self.socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Adds a device the adapter has seen.
    pub fn add_device(&self, address: &str, name: &str) {
        assert!(
            self.call(
                "org.bluez.Mock.AddDevice",
                &["string:hci0", &format!("string:{address}"), &format!("string:{name}")]
            ),
            "AddDevice {address}"
        );
    }

    /// The device at `address` advertises `data` (hex) as service data of the 16-bit `uuid`.
    pub fn advertise(&self, address: &str, uuid: u16, data: &str, rssi: i16) {
        let path = format!("/org/bluez/hci0/dev_{}", address.replace(':', "_"));
        let uuid = format!("0000{uuid:04x}-0000-1000-8000-00805f9b34fb");
        let status = Command::new("/usr/bin/python3")
            .args(["-c", ADVERTISE, &path, &uuid, data, &rssi.to_string()])
            .env("DBUS_SYSTEM_BUS_ADDRESS", format!("unix:path={}", self.socket.display()))
            .status()
            .expect("python3");
        assert!(status.success(), "advertise {address}");
    }
}

fn wait_for(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "dbus-daemon did not listen on {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for MockBluez {
    fn drop(&mut self) {
        for child in [&mut self.mock, &mut self.daemon] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
