//! The built-in MQTT broker, so zigbee2mqtt and Tasmota devices can point at the hub with no
//! other install.
//!
//! Behind this small interface sits rumqttd (MQTT 3.1.1), run on its own threads. It has no
//! shutdown API and lives until the process ends; keeping it behind [`start`] lets another broker
//! replace it without touching the rest of the hub.
//!
//! Security: on loopback the broker accepts local clients without an account; beyond loopback
//! the configuration must name accounts (checked in `config`), and the hub adds an internal
//! account of its own with a random password for its adapters.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use hearth_sdk::MqttSettings;

use crate::config::MqttConfig;

/// A running built-in broker.
#[derive(Debug, Clone)]
pub struct BrokerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// How the hub's own adapters reach it.
    pub internal: MqttSettings,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address is taken or not ours.
    #[error(
        "the built-in MQTT broker cannot listen on {addr}: {source}; another broker may be running there: \
         choose another port with --mqtt ADDR:PORT, or turn the built-in broker off with --mqtt off"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// It did not come up.
    #[error("the built-in MQTT broker did not start on {0} within 5 seconds")]
    NotReady(SocketAddr),
    /// Its configuration was refused.
    #[error("the built-in MQTT broker refused its configuration: {0}")]
    Config(String),
}

/// Starts the broker and waits until it accepts connections.
pub async fn start(cfg: &MqttConfig) -> Result<BrokerHandle, BrokerError> {
    let addr = cfg.listen;
    // rumqttd reports a failed bind only in its log; find out first, with a clear message.
    drop(TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source })?);

    let needs_auth = !cfg.users.is_empty() || !addr.ip().is_loopback();
    let internal_user = "hearth-internal".to_owned();
    let internal_password = {
        let mut b = [0u8; 24];
        OsRng.fill_bytes(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    };
    let auth: Option<HashMap<String, String>> = needs_auth.then(|| {
        let mut m: HashMap<String, String> =
            cfg.users.iter().map(|u| (u.username.clone(), u.password.clone())).collect();
        m.insert(internal_user.clone(), internal_password.clone());
        m
    });
    let settings = serde_json::json!({
        "id": 0,
        "router": {
            "max_connections": 1024,
            "max_outgoing_packet_count": 1000,
            // rumqttd keeps what it routes in memory, per subscription filter, for subscribers
            // that read slowly: at most (count + 1) segments of this size. 100 MB segments let
            // the hub grow by a gigabyte per filter under load; 1 MiB ones hold the last few
            // seconds of a 20,000 msg/s flood, and memory stays put.
            "max_segment_size": 1_048_576,
            "max_segment_count": 4,
        },
        "v4": {
            "1": {
                "name": "hearth-v4",
                "listen": addr.to_string(),
                "next_connection_delay_ms": 1,
                "connections": {
                    "connection_timeout_ms": 60_000,
                    "max_payload_size": 4 * 1024 * 1024,
                    "max_inflight_count": 1000,
                    "auth": auth,
                    "dynamic_filters": true,
                }
            }
        }
    });
    let config: rumqttd::Config = serde_json::from_value(settings).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "The built-in MQTT broker stopped.");
            }
        })
        .map_err(|e| BrokerError::Config(e.to_string()))?;

    let deadline = Instant::now() + Duration::from_secs(5);
    let probe = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let credentials = needs_auth.then_some((internal_user.as_str(), internal_password.as_str()));
    while !mqtt_ping(probe, credentials).await {
        if Instant::now() > deadline {
            return Err(BrokerError::NotReady(addr));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // rumqttd has no option for TCP_NODELAY; without it a command to a client that only reads
    // (zigbee2mqtt) can wait up to 40 ms for that client's delayed ACK. See `hearth_sys`.
    match hearth_sys::nodelay_on_listeners(addr.port()) {
        Ok(n) if n > 0 => {}
        Ok(_) => {
            tracing::warn!(%addr, "The built-in MQTT broker's listener was not found to turn Nagle's algorithm off: messages to clients may be delayed by up to 40 ms.")
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "Could not turn Nagle's algorithm off on the built-in MQTT broker's listener: messages to clients may be delayed by up to 40 ms.")
        }
    }
    tracing::info!(%addr, accounts = needs_auth, "The built-in MQTT broker is listening.");
    Ok(BrokerHandle {
        addr,
        internal: MqttSettings {
            host: probe.ip().to_string(),
            port: addr.port(),
            username: needs_auth.then_some(internal_user),
            password: needs_auth.then_some(internal_password),
            tls: None,
        },
    })
}

/// Connects as an MQTT 3.1.1 client, waits for a successful CONNACK, and disconnects cleanly:
/// the broker is up and accepts the hub's own account.
async fn mqtt_ping(addr: SocketAddr, credentials: Option<(&str, &str)>) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let field = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&u16::try_from(s.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let mut body = Vec::new();
    field(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(if credentials.is_some() { 0b1100_0010 } else { 0b0000_0010 }); // clean session
    body.extend_from_slice(&10u16.to_be_bytes()); // keep alive
    field(&mut body, "hearth-probe");
    if let Some((user, password)) = credentials {
        field(&mut body, user);
        field(&mut body, password);
    }
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        stream.write_all(&packet).await.ok()?;
        let mut ack = [0u8; 4];
        stream.read_exact(&mut ack).await.ok()?;
        let _ = stream.write_all(&[0xE0, 0x00]).await;
        (ack == [0x20, 0x02, 0x00, 0x00]).then_some(())
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), attempt).await, Ok(Some(())))
}
