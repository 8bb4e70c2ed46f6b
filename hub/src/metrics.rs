//! `/metrics` in the Prometheus text format, from the counters of the core, the store and the API.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::App;

/// HTTP requests dispatched through the route table.
pub static HTTP_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Open WebSocket sessions.
pub static WS_SESSIONS: AtomicU64 = AtomicU64::new(0);

/// The metrics text.
pub fn render(app: &App, adapters: &[crate::core::AdapterInfo]) -> String {
    let c = app.core.stats();
    let w = app.writer.stats();
    let a = app.automations.stats();
    let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let rows: [(&str, &str, &str, u64); 21] = [
        ("hearth_adapter_events_total", "counter", "Events received from adapters.", r(&c.adapter_events)),
        ("hearth_state_changes_total", "counter", "Feature values that changed.", r(&c.state_changes)),
        ("hearth_device_events_total", "counter", "Momentary device events.", r(&c.device_events)),
        (
            "hearth_reports_refused_total",
            "counter",
            "Adapter reports refused (unknown device or feature, wrong type).",
            r(&c.refused),
        ),
        (
            "hearth_adapter_input_rejected_total",
            "counter",
            "Adapter input refused (malformed payloads, unknown devices).",
            r(&c.input_rejected),
        ),
        ("hearth_commands_total", "counter", "Commands routed to adapters.", r(&c.commands)),
        ("hearth_automation_runs_total", "counter", "Automation runs that ended, for any reason.", r(&a.runs)),
        ("hearth_automation_loops_total", "counter", "Automation runs stopped as loops.", r(&a.loops)),
        ("hearth_automation_commands_total", "counter", "Commands sent by automations.", r(&a.commands)),
        (
            "hearth_automation_command_failures_total",
            "counter",
            "Commands of automations the hub refused.",
            r(&a.command_failures),
        ),
        ("hearth_automation_published_total", "counter", "MQTT messages published by automations.", r(&a.published)),
        ("hearth_devices", "gauge", "Devices in the registry.", r(&c.devices)),
        ("hearth_store_writes_total", "counter", "Database writes committed.", r(&w.ops)),
        ("hearth_store_transactions_total", "counter", "Database transactions committed.", r(&w.batches)),
        ("hearth_store_write_failures_total", "counter", "Database writes that failed.", r(&w.failures)),
        ("hearth_store_queue", "gauge", "Writes waiting for the database writer.", app.writer.queued() as u64),
        ("hearth_adapter_queue", "gauge", "Adapter events waiting for the state store.", r(&c.adapter_queue)),
        ("hearth_core_request_queue", "gauge", "Requests waiting for the state store.", r(&c.request_queue)),
        ("hearth_bus_subscribers", "gauge", "Subscribers of the event bus.", app.core.bus().subscribers() as u64),
        ("hearth_http_requests_total", "counter", "HTTP requests to the API.", r(&HTTP_REQUESTS)),
        ("hearth_websocket_sessions", "gauge", "Open WebSocket sessions.", r(&WS_SESSIONS)),
    ];
    let mut out = String::new();
    write_rows(&mut out, &rows);
    let _ = writeln!(
        out,
        "# HELP hearth_database_bytes Bytes of the database on disk (its file and write-ahead log).\n# TYPE hearth_database_bytes gauge\nhearth_database_bytes {}",
        app.readers.bytes_on_disk()
    );
    let u = &w.upkeep;
    let storage: [(&str, &str, &str, u64); 6] = [
        (
            "hearth_database_budget_bytes",
            "gauge",
            "The database's disk budget ([history] max_db_mb; 0: none).",
            r(&u.budget_bytes),
        ),
        ("hearth_history_rows", "gauge", "Raw history rows, as of the last upkeep.", r(&u.raw_rows)),
        (
            "hearth_history_aggregate_rows",
            "gauge",
            "5-minute and hourly aggregate rows, as of the last upkeep.",
            r(&u.five_minute_rows) + r(&u.hourly_rows),
        ),
        (
            "hearth_history_removed_by_retention_total",
            "counter",
            "History rows removed as older than their retention.",
            r(&u.removed_by_retention),
        ),
        (
            "hearth_history_removed_by_budget_total",
            "counter",
            "History rows removed to keep the database within its budget.",
            r(&u.removed_by_budget),
        ),
        (
            "hearth_database_over_budget",
            "gauge",
            "1 when the database is over its budget with no history left to remove.",
            u64::from(u.over_budget.load(Ordering::Relaxed)),
        ),
    ];
    write_rows(&mut out, &storage);
    if let Some(b) = crate::backup::schedule::hub() {
        let st = b.status();
        let last = st.last_success.as_ref().map_or(0, |m| m.at.as_millis() / 1000);
        let _ = writeln!(
            out,
            "# HELP hearth_backup_last_success_timestamp_seconds When the hub last wrote a backup (0: not since it started).\n# TYPE hearth_backup_last_success_timestamp_seconds gauge\nhearth_backup_last_success_timestamp_seconds {last}\n# HELP hearth_backup_failing 1 when the last scheduled backup failed.\n# TYPE hearth_backup_failing gauge\nhearth_backup_failing {}",
            u8::from(st.last_error.is_some())
        );
        let _ = writeln!(
            out,
            "# HELP hearth_backup_bytes Bytes of the files in the backup directory (archives and copies made before upgrades).\n# TYPE hearth_backup_bytes gauge\nhearth_backup_bytes {}",
            b.disk_use().bytes
        );
    }
    // Each adapter's state, one line each (1 for its current state); ids need no escaping.
    let _ = writeln!(out, "# HELP hearth_adapter_state An adapter's current state.\n# TYPE hearth_adapter_state gauge");
    for a in adapters {
        let state =
            serde_json::to_value(a.status.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let _ = writeln!(out, "hearth_adapter_state{{adapter=\"{}\",state=\"{state}\"}} 1", a.manifest.id);
    }
    let cloud = app.cloud.status();
    if cloud.enabled {
        let rows: [(&str, &str, &str, u64); 5] = [
            ("hearth_cloud_connected", "gauge", "Whether the cloud link is connected.", u64::from(cloud.connected)),
            ("hearth_cloud_backlog", "gauge", "Messages waiting in the cloud outbox.", cloud.backlog),
            ("hearth_cloud_sent_total", "counter", "Messages the cloud broker acknowledged.", cloud.sent),
            ("hearth_cloud_dropped_total", "counter", "Messages dropped (outbox cap, broker refusals).", cloud.dropped),
            ("hearth_cloud_connects_total", "counter", "Connections made to the cloud broker.", cloud.connects),
        ];
        write_rows(&mut out, &rows);
    }
    // Per plugin, labelled by its id (ids are `[a-z][a-z0-9_]*`: nothing to escape).
    let plugins = app.plugins.list();
    type Count = fn(&crate::plugins::PluginView) -> u64;
    let per_plugin: [(&str, &str, Count); 5] = [
        ("hearth_plugin_restarts_total", "Restarts of a plugin after a crash.", |p| p.live.restarts),
        ("hearth_plugin_crashes_total", "Crashes of a plugin (unasked exits, hangs, floods).", |p| p.live.crashes),
        ("hearth_plugin_unreadable_lines_total", "Lines of a plugin that were not protocol messages.", |p| {
            p.live.unreadable_lines
        }),
        ("hearth_plugin_refused_total", "Messages of a plugin the hub refused.", |p| p.live.refused_messages),
        ("hearth_plugin_errors_total", "`error` messages a plugin sent.", |p| p.live.errors_from_plugin),
    ];
    for (name, help, get) in per_plugin {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for p in &plugins {
            let _ = writeln!(out, "{name}{{plugin=\"{}\"}} {}", p.id, get(p));
        }
    }
    let _ = writeln!(
        out,
        "# HELP hearth_plugin_running Whether a plugin runs (1) or not (0).\n# TYPE hearth_plugin_running gauge"
    );
    for p in &plugins {
        let _ = writeln!(out, "hearth_plugin_running{{plugin=\"{}\"}} {}", p.id, u8::from(p.live.state == "running"));
    }
    let _ = writeln!(
        out,
        "# HELP hearth_uptime_seconds Seconds since the hub started.\n# TYPE hearth_uptime_seconds gauge\nhearth_uptime_seconds {}",
        app.started.elapsed().as_secs()
    );
    out
}

/// One unlabelled metric per row: name, type, help and value.
fn write_rows(out: &mut String, rows: &[(&str, &str, &str, u64)]) {
    for (name, kind, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
}
