//! A WebSocket session that falls behind the bus gets a fresh snapshot instead of a silent gap.
//!
//! In process (the real API over a real socket), with a bus of 8 events so lag is certain.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::api::{self, App};
use hearth::core::{self, Bus, CoreInit, Registry};
use hearth::store::{self, Readers, StoreWriter};
use hearth_sdk::{Area, Event};
use hearth_tests::Ws;
use serde_json::json;
use tokio::sync::mpsc;

#[test]
fn a_lagging_session_gets_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (conn, db) = store::open_and_migrate(dir.path()).unwrap();
    let hash = hearth::auth::hash_password("correct horse battery").unwrap();
    hearth::auth::onboard(&conn, "owner", &hash).unwrap();
    let (_, token) = hearth::auth::create_token(&conn, "owner", "test", "api").unwrap();
    let secrets = Arc::new(hearth::secrets::SecretStore::open(dir.path(), &conn).unwrap());
    let (addr, core) = rt.block_on(async {
        let (writer, _thread) = StoreWriter::start(conn);
        let (_adapters, erx) = mpsc::channel(8);
        let (core, _task) = core::spawn(CoreInit {
            registry: Registry::default(),
            bus: Bus::with_capacity(8),
            writer: writer.clone(),
            adapter_events: erx,
            adapters: vec![],
            inbox: hearth::inbox::InboxState::new(Vec::new(), Default::default()),
            cloud: None,
        });
        let (automations, _engine) = hearth::automations::spawn(hearth::automations::AutomationsInit {
            settings: Default::default(),
            core: core.clone(),
            writer: writer.clone(),
            mqtt: None,
            loaded: Default::default(),
        });
        let (plugin_events, _) = mpsc::channel(8);
        let (_stop, shutdown) = hearth_sdk::Shutdown::channel();
        let (plugins, _host) = hearth::plugins::spawn(hearth::plugins::PluginsInit {
            dir: dir.path().join("plugins"),
            data_dir: dir.path().to_owned(),
            events: plugin_events,
            core: core.clone(),
            secrets: secrets.clone(),
            readers: Readers::new(db.clone()),
            shutdown,
            builtin: vec![],
        });
        let app = Arc::new(App {
            core: core.clone(),
            automations,
            writer,
            readers: Readers::new(db),
            started: Instant::now(),
            broker: None,
            location: false,
            security: Default::default(),
            secrets,
            plugins,
            cloud: hearth::cloud::disabled(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(api::serve(app, listener, std::future::pending()));
        (addr, core)
    });

    let mut ws = Ws::connect(addr);
    ws.send(json!({"type": "auth", "token": token}));
    ws.recv_type("auth_ok", Duration::from_secs(10));
    ws.send(json!({"type": "subscribe"}));
    let first = ws.recv_type("snapshot", Duration::from_secs(10));
    assert!(first.get("reason").is_none());

    // Far more events than the bus holds, published without yielding: the session must lag.
    for i in 0..200 {
        core.bus().publish(Event::AreaUpdated { area: Area { id: format!("a{i}"), name: format!("A{i}"), order: i } });
    }
    let mut events = 0;
    let snapshot = ws.recv_until(Duration::from_secs(10), |m| {
        if m["type"] == "event" {
            events += 1;
        }
        m["type"] == "snapshot"
    });
    assert_eq!(snapshot["reason"], "lagged");
    assert!(events < 200, "a lagging session cannot have seen every event ({events})");
    // After the fresh snapshot the session is live again. (Events the publisher sent while the
    // session resubscribed may come first: the publishing loop runs beside the session.)
    core.bus().publish(Event::AreaRemoved { area: "a1".into() });
    let next = ws.recv_until(Duration::from_secs(10), |m| m["type"] == "event" && m["event"]["type"] == "area_removed");
    assert_eq!(next["event"], json!({"type": "area_removed", "area": "a1"}));
}
