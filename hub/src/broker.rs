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

/// The secrets' slot of the broker's passwords (`hearth secret set mqtt NAME`).
pub const SECRETS: &str = "mqtt";

/// The names the MQTT passwords may be sealed under: `users.<username>.password` for each
/// `[[mqtt.users]]` account, and `external.password` for `[mqtt.external]`.
pub fn secret_names(config: &MqttConfig) -> Vec<String> {
    let mut names: Vec<String> = config.users.iter().map(|u| format!("users.{}.password", u.username)).collect();
    names.push("external.password".to_owned());
    names
}

/// Checks a password to seal under `name` (one of [`secret_names`]).
pub fn check_secret(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the secret `{name}` must not be empty"));
    }
    if name.starts_with("users.") && value.chars().count() < 8 {
        return Err(format!("the password `{name}` is too short: use at least 8 characters"));
    }
    Ok(())
}

/// Completes the MQTT passwords from the sealed secrets where the configuration file leaves them
/// out, and says (without values) which are still written in the file in clear. Fails, naming
/// the command that fixes it, when an account of the built-in broker has a password in neither
/// place.
pub fn with_sealed_passwords(
    mut config: MqttConfig,
    sealed: &hearth_sdk::Secrets,
) -> Result<(MqttConfig, Vec<String>), String> {
    let mut in_clear = Vec::new();
    for u in &mut config.users {
        if !u.password.is_empty() {
            in_clear.push(format!("the [[mqtt.users]] password of `{}`", u.username));
            continue;
        }
        let name = format!("users.{}.password", u.username);
        match sealed.get(&name) {
            Some(s) => s.expose().clone_into(&mut u.password),
            None if config.enabled => {
                return Err(format!(
                    "the [[mqtt.users]] account `{}` has no password: it is neither in the configuration file nor \
                     sealed in the hub: run `hearth secret set mqtt {name}` (or write it in the file)",
                    u.username
                ));
            }
            None => {}
        }
    }
    if let Some(e) = config.external.as_mut() {
        match &e.password {
            Some(p) if !p.is_empty() => in_clear.push("[mqtt.external] password".to_owned()),
            _ => e.password = sealed.get("external.password").map(|s| s.expose().to_owned()),
        }
    }
    Ok((config, in_clear))
}

/// Starts the broker and waits until it accepts connections.
pub async fn start(cfg: &MqttConfig) -> Result<BrokerHandle, BrokerError> {
    if let Some(u) = cfg.users.iter().find(|u| u.password.is_empty()) {
        return Err(BrokerError::Config(format!(
            "the account `{}` has no password: run `hearth secret set mqtt users.{}.password`",
            u.username, u.username
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExternalMqtt, MqttUser};
    use hearth_sdk::Secret;

    fn sealed(pairs: &[(&str, &str)]) -> hearth_sdk::Secrets {
        hearth_sdk::Secrets::channel(pairs.iter().map(|(k, v)| ((*k).to_owned(), Secret::new(*v))).collect()).1
    }

    #[test]
    fn passwords_left_out_of_the_file_come_from_the_sealed_secrets() {
        let user = |name: &str, password: &str| MqttUser { username: name.into(), password: password.into() };
        let config =
            MqttConfig { users: vec![user("z2m", ""), user("tasmota", "in the file")], ..MqttConfig::default() };
        let secrets = sealed(&[("users.z2m.password", "sealed long password")]);
        let (filled, in_clear) = with_sealed_passwords(config.clone(), &secrets).expect("filled");
        assert_eq!(filled.users[0].password, "sealed long password");
        assert_eq!(filled.users[1].password, "in the file");
        assert_eq!(in_clear, ["the [[mqtt.users]] password of `tasmota`"]);
        assert_eq!(secret_names(&config), ["users.z2m.password", "users.tasmota.password", "external.password"]);

        let e = with_sealed_passwords(config, &sealed(&[])).expect_err("no password anywhere");
        assert!(e.contains("run `hearth secret set mqtt users.z2m.password`"), "{e}");

        let external = |password: Option<&str>| MqttConfig {
            enabled: false,
            external: Some(ExternalMqtt {
                host: "broker".into(),
                port: 1883,
                username: Some("hearth".into()),
                password: password.map(str::to_owned),
                tls: None,
            }),
            ..MqttConfig::default()
        };
        let secrets = sealed(&[("external.password", "the broker's")]);
        let (filled, in_clear) = with_sealed_passwords(external(None), &secrets).expect("filled");
        assert_eq!(filled.external.and_then(|e| e.password).as_deref(), Some("the broker's"));
        assert!(in_clear.is_empty());
        let (filled, in_clear) = with_sealed_passwords(external(Some("written")), &secrets).expect("kept");
        assert_eq!(filled.external.and_then(|e| e.password).as_deref(), Some("written"));
        assert_eq!(in_clear, ["[mqtt.external] password"]);

        assert!(check_secret("users.z2m.password", "short").unwrap_err().contains("too short"));
        assert!(check_secret("external.password", "short").is_ok());
    }
}
