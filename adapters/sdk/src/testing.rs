//! A harness for testing adapters: run one with real channels and watch what it sends.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, watch};

use crate::adapter::{
    ActionRequest, Adapter, AdapterContext, AdapterError, AdapterEvent, BoxFuture, EventSender, MqttSettings, Shutdown,
};
use crate::command::Command;
use crate::inbox::{Decision, Inbox};
use crate::secrets::{Secret, Secrets};

/// One adapter wired to channels a test controls.
///
/// Typical use: `let (mut h, run) = Harness::new(Box::new(adapter), config, None);`, spawn `run`,
/// then `h.next().await` for each event and `h.commands.send(..)` to drive it.
#[derive(Debug)]
pub struct Harness {
    /// Everything the adapter sends, tagged with its id.
    pub events: mpsc::Receiver<(&'static str, AdapterEvent)>,
    /// Where to send commands for its devices.
    pub commands: mpsc::Sender<Command>,
    /// Where to send management actions.
    pub actions: mpsc::Sender<ActionRequest>,
    /// Send `true` to shut it down.
    pub shutdown: watch::Sender<bool>,
    /// The user's decisions about what the adapter found (send to change them).
    pub inbox: watch::Sender<BTreeMap<String, Decision>>,
    /// The adapter's secrets (send to change them).
    pub secrets: watch::Sender<BTreeMap<String, Secret>>,
}

impl Harness {
    /// Wires `adapter` up with `config`; returns the harness and the adapter's future to spawn.
    pub fn new(
        adapter: Box<dyn Adapter>,
        config: serde_json::Value,
        mqtt: Option<MqttSettings>,
    ) -> (Harness, BoxFuture<Result<(), AdapterError>>) {
        let id = adapter.manifest().id;
        let (etx, erx) = mpsc::channel(256);
        let (ctx_tx, ctx_rx) = mpsc::channel(64);
        let (stop, signal) = Shutdown::channel();
        let (atx, arx) = mpsc::channel(16);
        let (inbox_tx, inbox) = Inbox::channel(BTreeMap::new());
        let (secrets_tx, secrets) = Secrets::channel(BTreeMap::new());
        let ctx = AdapterContext {
            config,
            events: EventSender::new(id, etx),
            commands: ctx_rx,
            actions: arx,
            shutdown: signal,
            mqtt,
            inbox,
            secrets,
        };
        let h = Harness {
            events: erx,
            commands: ctx_tx,
            actions: atx,
            shutdown: stop,
            inbox: inbox_tx,
            secrets: secrets_tx,
        };
        (h, adapter.run(ctx))
    }

    /// The next event, or `None` when the adapter has stopped.
    pub async fn next(&mut self) -> Option<AdapterEvent> {
        self.events.recv().await.map(|(_, e)| e)
    }
}
