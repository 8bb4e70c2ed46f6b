//! Connecting to the MQTT broker the hub gives adapters ([`MqttSettings`]): the built-in one, or
//! an external one with credentials and TLS. One place for the client options, so every MQTT
//! adapter and the hub's automation engine connect the same way.

use std::time::Duration;

mod link;
pub use link::{Link, LinkEvent};

use hearth_sdk::{AdapterContext, AdapterState, AdapterStatus, HubGone, MqttSettings};
use rumqttc::MqttOptions;

/// The largest MQTT packet accepted from the broker (zigbee2mqtt's device lists are large).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Client options for `settings`: keep-alive, packet sizes, credentials and TLS.
pub fn options(client_id: &str, settings: &MqttSettings) -> Result<MqttOptions, String> {
    let mut opts = MqttOptions::new(client_id, &settings.host, settings.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(MAX_PAYLOAD, 64 * 1024);
    if let (Some(u), Some(p)) = (&settings.username, &settings.password) {
        opts.set_credentials(u, p);
    }
    if let Some(tls) = &settings.tls {
        let config = tls_config(tls).map_err(|e| format!("TLS to the MQTT broker: {e}"))?;
        opts.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
            std::sync::Arc::new(config),
        )));
    }
    Ok(opts)
}

/// A client and its event loop for `opts`, queueing up to `capacity` requests, with Nagle's
/// algorithm off. With it on, a small packet written right after another (a PUBACK, then the
/// command an automation publishes) waits for the broker's delayed ACK: 30-40 ms of latency on
/// every reaction, measured by `hearth-bench`'s echo workload.
pub fn client(opts: MqttOptions, capacity: usize) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, capacity);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// A rustls client configuration: the CA file's certificates (or the system's roots), with a
/// client certificate when given. The broker's certificate and host name are always verified.
pub fn tls_config(tls: &hearth_sdk::MqttTls) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .map_err(|e| format!("cannot read the CA file {file}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the CA file {file} is not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err(format!("the CA file {file} holds no certificate"));
            }
            for c in certs {
                roots.add(c).map_err(|e| format!("a certificate in {file} is not usable: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no system root certificates found: set ca_file".into());
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("cannot read the client certificate {cert}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the client certificate {cert} is not valid PEM: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read the client key {key}: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("the client certificate is not usable: {e}"))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err("client_cert_file and client_key_file go together".into()),
    }
}

/// The broker an MQTT adapter uses: its own (`own`, from its `mqtt` config key), else the hub's.
/// Without either, the adapter says it is unavailable (code `no_broker`, `why` naming what to
/// set) and this waits for the hub to stop, then gives `None`: the adapter returns.
pub async fn broker_or_wait(
    ctx: &mut AdapterContext,
    own: Option<MqttSettings>,
    why: &str,
) -> Result<Option<MqttSettings>, HubGone> {
    if let Some(m) = own.or_else(|| ctx.mqtt.clone()) {
        return Ok(Some(m));
    }
    ctx.events.status(AdapterStatus::with(AdapterState::Unavailable, why).with_code("no_broker")).await?;
    ctx.shutdown.wait().await;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_sdk::testing::Harness;
    use hearth_sdk::{Adapter, AdapterError, AdapterEvent, AdapterManifest, BoxFuture, Discovers};

    /// An adapter that only asks for its broker, and says which it got.
    struct Asker(Option<MqttSettings>);

    impl Adapter for Asker {
        fn manifest(&self) -> AdapterManifest {
            AdapterManifest { id: "asker", name: "Asker", discovers: Discovers::default(), actions: &[], secrets: None }
        }

        fn run(self: Box<Self>, mut ctx: AdapterContext) -> BoxFuture<Result<(), AdapterError>> {
            Box::pin(async move {
                match broker_or_wait(&mut ctx, self.0, "no broker: set [adapters.asker] mqtt").await? {
                    Some(m) => ctx.events.status(AdapterStatus::with(AdapterState::Running, m.host)).await?,
                    None => ctx.events.status(AdapterStatus::with(AdapterState::Stopped, "stopped")).await?,
                }
                Ok(())
            })
        }
    }

    fn broker(host: &str) -> MqttSettings {
        MqttSettings { host: host.into(), port: 1883, username: None, password: None, tls: None }
    }

    async fn said(own: Option<MqttSettings>, hub: Option<MqttSettings>, stop: bool) -> Vec<(AdapterState, String)> {
        let (mut h, run) = Harness::new(Box::new(Asker(own)), serde_json::Value::Null, hub);
        let task = tokio::spawn(run);
        let mut out = Vec::new();
        while let Some(e) = h.next().await {
            if let AdapterEvent::Status { status } = e {
                let unavailable = status.state == AdapterState::Unavailable;
                out.push((
                    status.state,
                    format!("{} {}", status.reason.unwrap_or_default(), status.code.unwrap_or_default()),
                ));
                if unavailable && stop {
                    h.shutdown.send(true).expect("stop");
                }
            }
        }
        task.await.expect("joined").expect("ok");
        out
    }

    #[tokio::test]
    async fn the_adapters_own_broker_wins_then_the_hubs_and_without_one_it_says_so() {
        let own = said(Some(broker("own")), Some(broker("hub")), false).await;
        assert_eq!(own, [(AdapterState::Running, "own ".to_owned())]);
        let hub = said(None, Some(broker("hub")), false).await;
        assert_eq!(hub, [(AdapterState::Running, "hub ".to_owned())]);
        let none = said(None, None, true).await;
        assert_eq!(
            none,
            [
                (AdapterState::Unavailable, "no broker: set [adapters.asker] mqtt no_broker".to_owned()),
                (AdapterState::Stopped, "stopped ".to_owned())
            ]
        );
    }
}
