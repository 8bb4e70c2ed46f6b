//! Starting the hub's long-lived parts in order, and stopping them in stages.
//!
//! The long-lived parts, and what happens to each at shutdown (SIGINT or SIGTERM):
//! - **adapter tasks** (one each): get the shutdown signal first, have [`ADAPTER_STOP`] to return;
//!   an adapter still running after that is abandoned with a warning.
//! - **the core task** (state store, bus, command router): asked to stop once the adapters are
//!   done; it applies every adapter event still queued, then ends.
//! - **the SQLite writer thread**: flushed last; everything queued before is committed
//!   (`synchronous = FULL`) before the process exits.
//! - **the HTTP server**: stops accepting at the start of shutdown, and gets [`HTTP_STOP`] to finish
//!   requests in flight.
//! - **the built-in MQTT broker** (its own threads): ends with the process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hearth_sdk::{AdapterContext, EventSender, MqttSettings, Shutdown};
use tokio::sync::mpsc;

use crate::api::{self, App};
use crate::config::Config;
use crate::core::{self, AdapterSlot, Bus, CoreInit, Registry};
use crate::store::{self, Readers, StoreWriter};

/// Time adapters get to stop.
pub const ADAPTER_STOP: Duration = Duration::from_secs(5);
/// Time the core gets to apply what is queued.
pub const CORE_STOP: Duration = Duration::from_secs(5);
/// Time the last database writes get.
pub const STORE_STOP: Duration = Duration::from_secs(15);
/// Time requests in flight get.
pub const HTTP_STOP: Duration = Duration::from_secs(3);
/// When the hub first gives back memory it no longer uses, counted from serving: start-up's work
/// (migrations, adapters' set-up, the first reports) is over by then.
const FIRST_RELEASE: Duration = Duration::from_secs(5);
/// How often it does so afterwards.
const RELEASE_EVERY: Duration = Duration::from_secs(300);

/// What `hearth run` was asked for, after flags and the file are merged.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration.
    pub config: Config,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The configuration file read, if any (scheduled backups include it).
    pub config_file: Option<PathBuf>,
}

/// Runs the hub until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let started = Instant::now();
    let Settings { config, data_dir, config_file } = settings;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    // One hub per data directory, and none while `hearth restore` works on it.
    let _lock = crate::backup::lock_for_hub(&data_dir)?;

    // Storage first: nothing else is worth starting without it.
    let (conn, db_path) = store::open_for_hub_recovering(&data_dir, &mut |dir| {
        crate::backup::schedule::recover_database(&config.backup, dir)
    })?;
    let loaded = store::load(&conn)?;
    let automations_loaded = crate::automations::load(&conn)?;
    let inbox_loaded = crate::inbox::load(&conn)?;
    let secrets = Arc::new(crate::secrets::SecretStore::open(&data_dir, &conn)?);
    let engine_settings = engine_settings(&config)?;
    let location = engine_settings.location.is_some();
    tracing::info!(
        path = %db_path.display(),
        devices = loaded.devices.len(),
        areas = loaded.areas.len(),
        "The database is open."
    );
    let (writer, _writer_thread) = StoreWriter::start(conn);

    // The MQTT broker adapters use, its passwords completed from the sealed secrets.
    let (mqtt_config, in_clear) =
        crate::broker::with_sealed_passwords(config.mqtt.clone(), &secrets.view_for(crate::broker::SECRETS))
            .map_err(anyhow::Error::msg)?;
    warn_in_clear(&in_clear, "mqtt");
    let (broker_addr, mqtt) = if mqtt_config.enabled {
        let handle = crate::broker::start(&mqtt_config).await?;
        (Some(handle.addr), Some(handle.internal))
    } else {
        let external = mqtt_config.external.as_ref().map(|e| MqttSettings {
            host: e.host.clone(),
            port: e.port,
            username: e.username.clone(),
            password: e.password.clone(),
            tls: e.tls.as_ref().map(|t| hearth_sdk::MqttTls {
                ca_file: t.ca_file.clone(),
                client_cert_file: t.client_cert_file.clone(),
                client_key_file: t.client_key_file.clone(),
            }),
        });
        (None, external)
    };

    // Adapters, from the explicit list.
    let (events_tx, events_rx) = mpsc::channel(core::ADAPTER_QUEUE);
    let (stop_adapters, shutdown) = Shutdown::channel();
    let mut slots = Vec::new();
    let mut to_start = Vec::new();
    let mut inbox = crate::inbox::InboxState::new(inbox_loaded, config.inbox.auto_accept.iter().cloned().collect());
    for b in crate::adapters::builtin().into_iter().filter(|b| (b.enabled)(&config)) {
        let adapter = (b.make)();
        let (cmd_tx, cmd_rx) = mpsc::channel(core::COMMAND_QUEUE);
        let (act_tx, act_rx) = mpsc::channel(core::ACTION_QUEUE);
        slots.push(AdapterSlot { manifest: adapter.manifest(), commands: cmd_tx, actions: act_tx });
        let ctx = AdapterContext {
            config: (b.config)(&config),
            events: EventSender::new(b.id, events_tx.clone()),
            commands: cmd_rx,
            actions: act_rx,
            shutdown: shutdown.clone(),
            mqtt: mqtt.clone(),
            inbox: inbox.view_for(b.id),
            secrets: secrets.view_for(b.id),
        };
        to_start.push((b.id, adapter, ctx));
    }
    let builtin_ids: Vec<&'static str> = crate::adapters::builtin().iter().map(|b| b.id).collect();
    let plugin_events = events_tx.clone();
    drop(events_tx);

    let bus = Bus::new();
    let registry = Registry::new(loaded.devices, loaded.areas);
    let (core, core_task) = core::spawn(CoreInit {
        registry,
        bus,
        writer: writer.clone(),
        adapter_events: events_rx,
        adapters: slots,
        inbox,
        cloud: config
            .cloud
            .enabled
            .then(|| (crate::cloud::share::Share::new(&config.cloud.share), config.cloud.outbox_max)),
    });

    let (automations, automations_task) = crate::automations::spawn(crate::automations::AutomationsInit {
        settings: engine_settings,
        core: core.clone(),
        writer: writer.clone(),
        mqtt: mqtt.clone(),
        loaded: automations_loaded,
    });

    // Hearth's devices in Home Assistant, when asked.
    let home_assistant = match (&config.home_assistant, &mqtt) {
        (h, Some(settings)) if h.publish => {
            let s = crate::home_assistant::Settings { prefix: h.prefix.clone(), base: h.base_topic.clone() };
            Some(crate::home_assistant::spawn(s, core.clone(), settings).map_err(anyhow::Error::msg)?)
        }
        (h, None) if h.publish => {
            tracing::warn!(
                "[home_assistant] publish = true, but there is no MQTT broker: turn on the built-in one or configure [mqtt.external]."
            );
            None
        }
        _ => None,
    };

    let mut adapter_tasks = Vec::new();
    for (id, adapter, ctx) in to_start {
        let core = core.clone();
        let task = tokio::spawn(adapter.run(ctx));
        adapter_tasks.push(tokio::spawn(async move {
            let result = match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("it crashed ({e})")),
            };
            if let Err(e) = &result {
                tracing::error!(adapter = id, error = %e, "An adapter failed; its devices are offline.");
            }
            core.adapter_ended(id, result).await;
        }));
        tracing::info!(adapter = id, "Started adapter.");
    }

    // Plugins: each enabled one in its own process, under a supervisor.
    let plugins_dir = crate::plugins::dir(&config, &data_dir);
    let (plugins, plugins_task) = crate::plugins::spawn(crate::plugins::PluginsInit {
        dir: plugins_dir.clone(),
        data_dir: data_dir.clone(),
        events: plugin_events,
        core: core.clone(),
        secrets: secrets.clone(),
        readers: Readers::new(db_path.clone()),
        shutdown: shutdown.clone(),
        builtin: builtin_ids,
    });
    tracing::info!(dir = %plugins_dir.display(), "Looking for plugins.");

    // The cloud link, when configured: it reads the outbox the core fills.
    let (cloud, cloud_task) = if config.cloud.enabled {
        let (cloud_config, in_clear) =
            crate::cloud::with_sealed_credentials(config.cloud.clone(), &secrets.view_for(crate::cloud::SECRETS))
                .map_err(anyhow::Error::msg)?;
        warn_in_clear(&in_clear, "cloud");
        let (handle, task) = crate::cloud::spawn(crate::cloud::CloudInit {
            config: cloud_config,
            core: core.clone(),
            readers: Readers::new(db_path.clone()),
            writer: writer.clone(),
            shutdown: shutdown.clone(),
        });
        (handle, Some(task))
    } else {
        (crate::cloud::disabled(), None)
    };

    // History roll-ups, retention and the disk budget.
    let upkeep = crate::store::upkeep::spawn(crate::store::upkeep::UpkeepInit {
        config: config.history.clone(),
        core: core.clone(),
        writer: writer.clone(),
        readers: Readers::new(db_path.clone()),
    });

    // Scheduled backups ([backup]); the API's download and status use the same settings.
    let backups = crate::backup::schedule::spawn(crate::backup::schedule::ScheduleInit {
        config: config.backup.clone(),
        data_dir: data_dir.clone(),
        config_file,
    });

    // The API last: when it answers, everything behind it is up.
    let listener = tokio::net::TcpListener::bind(config.http.listen).await.with_context(|| {
        format!(
            "cannot listen for HTTP on {}: choose another address with --http ADDR:PORT or [http] listen",
            config.http.listen
        )
    })?;
    let http_addr: SocketAddr = listener.local_addr()?;
    let app = Arc::new(App {
        core: core.clone(),
        automations: automations.clone(),
        writer: writer.clone(),
        readers: Readers::new(db_path.clone()),
        started,
        broker: broker_addr,
        location,
        security: api::security::Security::from_config(&config.http),
        secrets,
        plugins,
        cloud,
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(app, listener, async move {
        let _ = http_stopped.await;
    }));
    crate::notify::notify(&format!("READY=1\nSTATUS=Serving on http://{http_addr}/"));
    let watchdog = crate::notify::spawn_watchdog(core.clone());
    tracing::info!(
        http = %http_addr,
        mqtt = %broker_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        ms = started.elapsed().as_millis() as u64,
        "Hearth is serving on http://{http_addr}/."
    );
    // History's tables are checked now, not before serving (see `store::check_after_start`).
    if let Err(e) = store::check_after_start(db_path) {
        tracing::warn!(error = %e, "Could not start the database check.");
    }
    let release = spawn_memory_release();

    wait_for_signal().await;
    crate::notify::notify("STOPPING=1\nSTATUS=Shutting down");
    // The watchdog keeps pinging while the state store answers, through the shutdown.
    drop(watchdog);
    tracing::info!("Shutting down: stopping adapters.");
    let _ = stop_http.send(());
    if tokio::time::timeout(CORE_STOP, automations.stop()).await.is_err() {
        tracing::warn!("The automation engine did not stop within {CORE_STOP:?}.");
    }
    let _ = tokio::time::timeout(CORE_STOP, automations_task).await;
    if let Some(task) = home_assistant {
        task.abort();
    }
    let _ = stop_adapters.send(true);
    // Plugins get their own 5 s to exit after `shutdown`, at the same time as the adapters.
    let plugins_stopped = tokio::spawn(tokio::time::timeout(ADAPTER_STOP + Duration::from_secs(2), plugins_task));
    for t in adapter_tasks {
        if tokio::time::timeout(ADAPTER_STOP, t).await.is_err() {
            tracing::warn!("An adapter did not stop within {ADAPTER_STOP:?}; it is abandoned.");
        }
    }
    if let Some(task) = cloud_task
        && tokio::time::timeout(ADAPTER_STOP, task).await.is_err()
    {
        tracing::warn!("The cloud link did not stop in time.");
    }
    if !matches!(plugins_stopped.await, Ok(Ok(_))) {
        tracing::warn!("Plugins did not stop in time; they were killed.");
    }
    upkeep.abort();
    release.abort();
    backups.stop();
    tracing::info!("Shutting down: applying queued events.");
    if tokio::time::timeout(CORE_STOP, core.stop()).await.is_err() {
        tracing::warn!("The state store did not stop within {CORE_STOP:?}.");
    }
    let _ = tokio::time::timeout(CORE_STOP, core_task).await;
    tracing::info!("Shutting down: final database write.");
    match tokio::time::timeout(STORE_STOP, writer.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "The final database write failed."),
        Err(_) => tracing::error!("The final database write did not finish within {STORE_STOP:?}."),
    }
    let _ = tokio::time::timeout(HTTP_STOP, server).await;
    tracing::info!("Hearth has stopped.");
    Ok(())
}

/// The engine's time zone and location from `[location]`.
fn engine_settings(config: &Config) -> anyhow::Result<hearth_automations::engine::Settings> {
    use hearth_automations::zone::Zone;
    let l = &config.location;
    let zone = match &l.timezone {
        Some(name) => Zone::named(name).map_err(|e| anyhow::anyhow!("[location] timezone: {e}"))?,
        None => {
            let (zone, problem) = Zone::system();
            if let Some(p) = problem {
                tracing::warn!("Using UTC for automations: {p}. Set [location] timezone to your zone.");
            }
            zone
        }
    };
    let location = match (l.latitude, l.longitude) {
        (Some(lat), Some(lon)) => {
            Some(hearth_automations::sun::Location::new(lat, lon).map_err(|e| anyhow::anyhow!("[location]: {e}"))?)
        }
        _ => None,
    };
    tracing::info!(zone = %zone.name(), sun = location.is_some(), "Automations use this local time.");
    Ok(hearth_automations::engine::Settings { zone, location, ..Default::default() })
}

/// Gives back memory the hub holds but does not use: the mappings of code that only start-up
/// ran, and the allocator's free pages (see `hearth_sys`). What is used again comes back as it is
/// used. First at [`FIRST_RELEASE`] after serving, then every [`RELEASE_EVERY`].
fn spawn_memory_release() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut wait = FIRST_RELEASE;
        loop {
            tokio::time::sleep(wait).await;
            wait = RELEASE_EVERY;
            let released =
                tokio::task::spawn_blocking(|| (hearth_sys::release_code_pages(), hearth_sys::release_free_heap()))
                    .await;
            match released {
                Ok((Ok(code), heap)) => tracing::debug!(
                    code_kib = code.kib,
                    code_mappings = code.mappings,
                    heap_trimmed = heap,
                    "Gave back memory the hub does not use."
                ),
                Ok((Err(e), _)) => tracing::debug!(error = %e, "Could not give back the mappings of unused code."),
                Err(_) => {}
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Warns about each secret of `slot` still written in the configuration file in clear.
fn warn_in_clear(keys: &[String], slot: &str) {
    for key in keys {
        tracing::warn!(
            "{key} is written in the configuration file in clear: seal it with `hearth secret set {slot} ...` \
             (see `hearth secret --help`) and remove it from the file."
        );
    }
}
