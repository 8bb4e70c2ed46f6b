//! Adapter plugins: out-of-process adapters in any language (`adapters/sdk/PLUGINS.md`).
//!
//! A plugin is a directory with a `plugin.toml` under the plugins directory (`[plugins] dir`,
//! `<data_dir>/plugins` by default). Whether it is enabled and its configuration as entered are
//! rows of the `plugins` table, written by the API and by `hearth plugin enable|disable`.
//!
//! The host task keeps one [`supervisor::Supervisor`] per enabled plugin. It reads the table
//! when the API pokes it and every two seconds (so the command line's changes apply to a running
//! hub), and rescans the directory when the table changed. Every installed plugin is an adapter
//! of the core from the start, so `GET /api/v1/adapters` lists it, its devices keep their
//! owner, and commands to it are refused with its status while it is not running.

pub mod supervisor;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hearth_plugin::manifest::{self, Manifest};
use hearth_sdk::{
    AdapterEvent, AdapterManifest, AdapterState, AdapterStatus, DeviceId, Discovers, EventSender, Secrets, Shutdown,
    Timestamp,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::core::{AdapterSlot, CoreHandle};
use crate::store::{Readers, StoreError};
use supervisor::{Control, Live, Shared, Supervisor, Timing};

/// Keeps a string for the life of the process, once per distinct value. Adapter manifests hold
/// `&'static str`; a plugin's come from its files and its `hello`, so they are kept here. The
/// memory is bounded by the distinct values plugins ever state.
pub fn intern(s: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = seen.get(s) {
        return k;
    }
    let k: &'static str = Box::leak(s.to_owned().into_boxed_str());
    seen.insert(k);
    k
}

/// [`intern`] for a list.
pub fn intern_list(list: &[String]) -> &'static [&'static str] {
    static SEEN: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(k) = seen.get(list) {
        return k;
    }
    let k: &'static [&'static str] = Box::leak(list.iter().map(|s| intern(s)).collect::<Vec<_>>().into_boxed_slice());
    seen.insert(list.to_vec(), k);
    k
}

/// The check of a plugin's secret at the API: the hub checks only that name and value are not
/// empty and at most 4096 bytes; the plugin judges the value when it arrives.
pub fn check_plugin_secret(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || value.is_empty() {
        return Err("a secret needs a name and a value".into());
    }
    if name.len() > 4096 || value.len() > 4096 {
        return Err("a secret's name and value may each be at most 4096 bytes".into());
    }
    Ok(())
}

/// The plugins directory.
pub fn dir(config: &crate::config::Config, data_dir: &Path) -> PathBuf {
    config.plugins.dir.clone().unwrap_or_else(|| data_dir.join("plugins"))
}

/// A plugin found in the plugins directory.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its id (the directory's name when the manifest cannot be read).
    pub id: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest, or why it cannot be used.
    pub manifest: Result<Manifest, String>,
}

/// Every plugin in `dir`, by id. A directory without `plugin.toml` is not a plugin; a manifest
/// that cannot be read, an id used twice or an id of a built-in adapter is reported as the
/// plugin's problem.
pub fn scan(dir: &Path, builtin: &[&str]) -> Vec<Installed> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join(manifest::FILE).is_file()).collect();
    dirs.sort();
    let mut out: Vec<Installed> = Vec::new();
    for d in dirs {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut manifest = Manifest::load(&d).map_err(|e| e.to_string());
        let id = manifest.as_ref().map(|m| m.id.clone()).unwrap_or(name);
        if manifest.is_ok() {
            if builtin.contains(&id.as_str()) {
                manifest = Err(format!(
                    "{}: id `{id}` is a built-in adapter's; choose another",
                    d.join(manifest::FILE).display()
                ));
            } else if let Some(first) = out.iter().find(|p| p.id == id) {
                manifest = Err(format!(
                    "{}: id `{id}` is already used by the plugin in {}",
                    d.join(manifest::FILE).display(),
                    first.dir.display()
                ));
            }
        }
        out.push(Installed { id, dir: d, manifest });
    }
    out
}

/// A plugin's row: enabled or not, its configuration as entered, and when it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Whether it runs.
    pub enabled: bool,
    /// Its configuration as entered.
    pub config: serde_json::Value,
    /// When it last changed (ms since 1970).
    pub updated_at: i64,
}

/// Every plugin's row.
pub fn rows(conn: &Connection) -> Result<BTreeMap<String, Row>, StoreError> {
    let mut st = conn.prepare("SELECT id, enabled, config, updated_at FROM plugins")?;
    let rows = st.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (id, enabled, config, updated_at) = row?;
        let config = serde_json::from_str(&config).unwrap_or_else(|_| serde_json::json!({}));
        out.insert(id, Row { enabled, config, updated_at });
    }
    Ok(out)
}

/// Enables or disables a plugin (enabling a quarantined one starts it again).
pub fn set_enabled(conn: &Connection, id: &str, enabled: bool) -> Result<(), rusqlite::Error> {
    let now = next_change(conn, id)?;
    conn.execute(
        "INSERT INTO plugins (id, enabled, config, updated_at) VALUES (?1, ?2, '{}', ?3)
         ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
        params![id, enabled, now],
    )?;
    Ok(())
}

/// Stores a plugin's configuration as entered.
pub fn set_config(conn: &Connection, id: &str, config: &serde_json::Value) -> Result<(), rusqlite::Error> {
    let now = next_change(conn, id)?;
    conn.execute(
        "INSERT INTO plugins (id, enabled, config, updated_at) VALUES (?1, 0, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
        params![id, config.to_string(), now],
    )?;
    Ok(())
}

/// A change time after the row's last one, so every change is seen even within a millisecond.
fn next_change(conn: &Connection, id: &str) -> Result<i64, rusqlite::Error> {
    let last: Option<i64> =
        conn.query_row("SELECT updated_at FROM plugins WHERE id = ?1", [id], |r| r.get(0)).optional()?;
    Ok(Timestamp::now().as_millis().max(last.map_or(0, |l| l + 1)))
}

/// A plugin as the API and `hearth plugin list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginView {
    /// Its id.
    pub id: String,
    /// Its name (from `plugin.toml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its version (from `plugin.toml`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// One sentence about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its directory.
    pub dir: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its configuration as entered.
    pub config: serde_json::Value,
    /// Its config schema.
    pub schema: serde_json::Value,
    /// Why it cannot run (a bad manifest, a configuration its schema refuses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// What it is doing.
    #[serde(flatten)]
    pub live: Live,
}

struct Entry {
    installed: Installed,
    row: Option<Row>,
    shared: Arc<Shared>,
    secrets: Option<Secrets>,
    control: Option<mpsc::Sender<Control>>,
    task: Option<tokio::task::JoinHandle<()>>,
    problem: Option<String>,
    registered: bool,
}

impl Entry {
    fn view(&self) -> PluginView {
        let m = self.installed.manifest.as_ref().ok();
        let mut live = self.shared.live();
        if live.state.is_empty() {
            live.state = if self.row.as_ref().is_some_and(|r| r.enabled) { "stopped" } else { "disabled" };
        }
        PluginView {
            id: self.installed.id.clone(),
            name: m.map(|m| m.name.clone()),
            version: m.map(|m| m.version.clone()),
            description: m.and_then(|m| m.description.clone()),
            dir: self.installed.dir.display().to_string(),
            enabled: self.row.as_ref().is_some_and(|r| r.enabled),
            config: self.row.as_ref().map_or_else(|| serde_json::json!({}), |r| r.config.clone()),
            schema: m.map_or(serde_json::json!({}), |m| serde_json::to_value(&m.config).unwrap_or_default()),
            problem: self.installed.manifest.as_ref().err().cloned().or_else(|| self.problem.clone()),
            live,
        }
    }

    fn running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

/// What the plugin host starts with.
#[derive(Debug)]
pub struct PluginsInit {
    /// The plugins directory.
    pub dir: PathBuf,
    /// The hub's data directory (each plugin writes under `plugin-data/<id>`).
    pub data_dir: PathBuf,
    /// The adapters' channel to the core.
    pub events: mpsc::Sender<(&'static str, AdapterEvent)>,
    /// The core.
    pub core: CoreHandle,
    /// Adapters' secrets.
    pub secrets: Arc<crate::secrets::SecretStore>,
    /// Database readers.
    pub readers: Readers,
    /// The hub's shutdown.
    pub shutdown: Shutdown,
    /// Ids of the built-in adapters (a plugin may not take one).
    pub builtin: Vec<&'static str>,
}

/// A handle to the plugin host, for the API.
#[derive(Debug, Clone)]
pub struct PluginsHandle {
    dir: PathBuf,
    state: Arc<Mutex<BTreeMap<String, Entry>>>,
    poke: mpsc::Sender<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("id", &self.installed.id).finish_non_exhaustive()
    }
}

impl PluginsHandle {
    /// The plugins directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every installed plugin.
    pub fn list(&self) -> Vec<PluginView> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).values().map(Entry::view).collect()
    }

    /// One plugin's manifest (to check a configuration against), or why there is none.
    pub fn manifest(&self, id: &str) -> Option<Result<Manifest, String>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|e| e.installed.manifest.clone())
    }

    /// Applies the table and the directory now (after the API changed them); returns once done.
    pub async fn apply(&self) {
        let (tx, rx) = oneshot::channel();
        if self.poke.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Starts the plugin host: the handle, and the task to await at shutdown (it ends once every
/// plugin has stopped).
pub fn spawn(init: PluginsInit) -> (PluginsHandle, tokio::task::JoinHandle<()>) {
    let (poke, pokes) = mpsc::channel(8);
    let handle = PluginsHandle { dir: init.dir.clone(), state: Arc::default(), poke };
    let host =
        Host { init, state: handle.state.clone(), last_rows: None, known: BTreeMap::new(), timing: Timing::from_env() };
    let task = tokio::spawn(host.run(pokes));
    (handle, task)
}

struct Host {
    init: PluginsInit,
    state: Arc<Mutex<BTreeMap<String, Entry>>>,
    last_rows: Option<BTreeMap<String, Row>>,
    known: BTreeMap<String, BTreeSet<DeviceId>>,
    timing: Timing,
}

impl Host {
    async fn run(mut self, mut pokes: mpsc::Receiver<oneshot::Sender<()>>) {
        if let Ok(snapshot) = self.init.core.snapshot().await {
            for d in snapshot.devices {
                self.known.entry(d.adapter.clone()).or_default().insert(d.id);
            }
        }
        self.reload(true).await;
        let mut every = tokio::time::interval(Duration::from_secs(2));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.init.shutdown.clone();
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                p = pokes.recv() => {
                    self.reload(true).await;
                    if let Some(done) = p {
                        let _ = done.send(());
                    }
                }
                _ = every.tick() => self.reload(false).await,
            }
        }
        // Every supervisor got the shutdown signal; wait for them to stop their plugins.
        let tasks: Vec<_> = {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.values_mut().filter_map(|e| e.task.take()).collect()
        };
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Reads the table; when it changed (or `force`), rescans the directory and starts, stops
    /// and reconfigures plugins to match.
    async fn reload(&mut self, force: bool) {
        let rows = match self.init.readers.with(rows).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the plugins table.");
                return;
            }
        };
        if !force && self.last_rows.as_ref() == Some(&rows) {
            return;
        }
        let builtin = self.init.builtin.clone();
        let dir = self.init.dir.clone();
        let installed = tokio::task::spawn_blocking(move || scan(&dir, &builtin)).await.unwrap_or_default();
        let mut actions = Vec::new();
        {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let present: BTreeSet<String> = installed.iter().map(|i| i.id.clone()).collect();
            for i in installed {
                let row = rows.get(&i.id).cloned();
                let e = state.entry(i.id.clone()).or_insert_with(|| Entry {
                    installed: i.clone(),
                    row: None,
                    shared: Arc::default(),
                    secrets: None,
                    control: None,
                    task: None,
                    problem: None,
                    registered: false,
                });
                let manifest_changed = e.installed.manifest != i.manifest;
                let changed =
                    manifest_changed || e.row.as_ref().map(|r| r.updated_at) != row.as_ref().map(|r| r.updated_at);
                e.installed = i;
                e.row = row;
                actions.push((e.installed.id.clone(), changed, manifest_changed));
            }
            for (id, e) in state.iter_mut() {
                if !present.contains(id) && e.running() {
                    tracing::warn!(plugin = %id, "A plugin's directory is gone; stopping it.");
                    if let Some(c) = &e.control {
                        let _ = c.try_send(Control::Stop);
                    }
                    e.problem = Some(format!("its directory is gone from {}", self.init.dir.display()));
                }
            }
        }
        for (id, changed, manifest_changed) in actions {
            self.apply(&id, changed, manifest_changed).await;
        }
        self.last_rows = Some(rows);
    }

    /// Makes one plugin match its row (and its `plugin.toml`: a change restarts it).
    async fn apply(&mut self, id: &str, changed: bool, manifest_changed: bool) {
        let (manifest, row, running, live_state, registered) = {
            let state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(e) = state.get(id) else { return };
            (e.installed.manifest.clone(), e.row.clone(), e.running(), e.shared.live().state, e.registered)
        };
        let Ok(manifest) = manifest else { return };
        let enabled = row.as_ref().is_some_and(|r| r.enabled);
        let entered = row.as_ref().map_or_else(|| serde_json::json!({}), |r| r.config.clone());
        let config = manifest.validate_config(&entered);
        let key = intern(id);
        if !registered {
            // Known to the core from the start, so its devices keep their owner and commands get
            // a clear refusal while it is not running.
            let status = if enabled {
                AdapterStatus::bare(AdapterState::Starting)
            } else {
                AdapterStatus::with(AdapterState::Stopped, "the plugin is disabled").with_code("disabled")
            };
            let (cmd_tx, _) = mpsc::channel(1);
            let (act_tx, _) = mpsc::channel(1);
            let slot =
                AdapterSlot { manifest: placeholder_manifest(key, &manifest), commands: cmd_tx, actions: act_tx };
            let _ = self.init.core.register(slot, status).await;
            let secrets = self.init.secrets.view_for(id);
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(e) = state.get_mut(id) {
                e.registered = true;
                e.secrets = Some(secrets);
                if !enabled {
                    e.shared.update(|l| l.state = "disabled");
                }
            }
        }
        enum Then {
            Nothing,
            Restart(tokio::task::JoinHandle<()>, serde_json::Value),
            Start(serde_json::Value),
            Failed(String),
        }
        let then = {
            let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(e) = state.get_mut(id) else { return };
            match (enabled, running) {
                (true, true) if changed => match config {
                    Ok(c) => {
                        e.problem = None;
                        if ["quarantined", "refused"].contains(&live_state) || manifest_changed {
                            // Enabled again, or its plugin.toml changed: a fresh start.
                            if let Some(ctl) = &e.control {
                                let _ = ctl.try_send(Control::Restart);
                            }
                            match e.task.take() {
                                Some(t) => Then::Restart(t, c),
                                None => Then::Start(c),
                            }
                        } else {
                            if let Some(ctl) = &e.control {
                                let _ = ctl.try_send(Control::Config(c));
                            }
                            Then::Nothing
                        }
                    }
                    Err(problem) => {
                        tracing::warn!(plugin = id, %problem, "A plugin's new configuration is refused by its schema; it keeps the one it has.");
                        e.problem = Some(format!("configuration: {problem}"));
                        Then::Nothing
                    }
                },
                (true, false) => match config {
                    Ok(c) => {
                        e.problem = None;
                        Then::Start(c)
                    }
                    Err(problem) => {
                        let reason = format!("its configuration does not fit its schema: {problem}");
                        e.problem = Some(format!("configuration: {problem}"));
                        e.shared.update(|l| {
                            l.state = "failed";
                            l.reason = Some(reason.clone());
                        });
                        Then::Failed(reason)
                    }
                },
                (false, true) => {
                    if let Some(ctl) = &e.control {
                        let _ = ctl.try_send(Control::Stop);
                    }
                    Then::Nothing
                }
                _ => Then::Nothing,
            }
        };
        match then {
            Then::Nothing => {}
            Then::Restart(old, c) => {
                let _ = old.await;
                self.start(id, manifest, c);
            }
            Then::Start(c) => self.start(id, manifest, c),
            Then::Failed(reason) => {
                let events = EventSender::new(key, self.init.events.clone());
                let _ = events.status(AdapterStatus::with(AdapterState::Failed, reason).with_code("bad_config")).await;
            }
        }
    }

    fn start(&mut self, id: &str, manifest: Manifest, config: serde_json::Value) {
        let key = intern(id);
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(e) = state.get_mut(id) else { return };
        let (control_tx, control) = mpsc::channel(8);
        let sup = Supervisor {
            id: key,
            manifest,
            dir: e.installed.dir.clone(),
            data: self.init.data_dir.join("plugin-data").join(id),
            config,
            events: EventSender::new(key, self.init.events.clone()),
            core: self.init.core.clone(),
            secrets: e.secrets.clone().unwrap_or_else(Secrets::none),
            control,
            shutdown: self.init.shutdown.clone(),
            shared: e.shared.clone(),
            timing: self.timing,
            known: self.known.get(id).cloned().unwrap_or_default(),
        };
        e.control = Some(control_tx);
        e.task = Some(tokio::spawn(sup.run()));
    }
}

/// The manifest a plugin has until its `hello` says more: its id and name from `plugin.toml`.
fn placeholder_manifest(id: &'static str, m: &Manifest) -> AdapterManifest {
    AdapterManifest { id, name: intern(&m.name), discovers: Discovers::default(), actions: &[], secrets: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_plugin(root: &Path, dir: &str, id: &str) {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(
            d.join("plugin.toml"),
            format!("id = \"{id}\"\nname = \"N\"\nversion = \"1\"\nprotocol = 1\ncommand = [\"./run\"]\n"),
        )
        .expect("write");
    }

    #[test]
    fn the_directory_scan_reports_each_problem_on_its_plugin() {
        let root = tempfile::tempdir().expect("temp");
        write_plugin(root.path(), "a", "weather");
        write_plugin(root.path(), "b", "weather");
        write_plugin(root.path(), "c", "demo");
        std::fs::create_dir_all(root.path().join("d")).expect("no manifest");
        std::fs::create_dir_all(root.path().join("e")).expect("bad manifest");
        std::fs::write(root.path().join("e/plugin.toml"), "id = 3").expect("write");
        let found = scan(root.path(), &["demo"]);
        let problems: Vec<(String, Option<String>)> =
            found.iter().map(|i| (i.id.clone(), i.manifest.as_ref().err().cloned())).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].1.is_none());
        assert!(problems[1].1.as_deref().is_some_and(|p| p.contains("already used")), "{problems:?}");
        assert!(problems[2].1.as_deref().is_some_and(|p| p.contains("built-in adapter")), "{problems:?}");
        assert_eq!(problems[3].0, "e");
        assert!(problems[3].1.as_deref().is_some_and(|p| p.contains("plugin.toml")), "{problems:?}");
    }

    #[test]
    fn rows_record_every_change() {
        let dir = tempfile::tempdir().expect("temp");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        set_config(&conn, "weather", &serde_json::json!({"interval_secs": 5})).expect("config");
        let before = rows(&conn).expect("rows")["weather"].clone();
        assert!(!before.enabled);
        set_enabled(&conn, "weather", true).expect("enable");
        set_enabled(&conn, "weather", true).expect("enable again");
        let after = rows(&conn).expect("rows")["weather"].clone();
        assert!(after.enabled && after.updated_at >= before.updated_at + 2);
        assert_eq!(after.config, serde_json::json!({"interval_secs": 5}));
    }

    #[test]
    fn interned_strings_are_shared() {
        assert!(std::ptr::eq(intern("abc"), intern(String::from("abc").as_str())));
        let l = intern_list(&["x".to_owned()]);
        assert!(std::ptr::eq(l, intern_list(&["x".to_owned()])));
        assert!(check_plugin_secret("k", "").is_err() && check_plugin_secret("k", "v").is_ok());
    }
}
