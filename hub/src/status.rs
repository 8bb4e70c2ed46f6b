//! `hearth status`: a summary of a hub from the command line, for a person at a terminal (or a
//! script, with `--json`).
//!
//! It asks the hub's `/healthz` whether it serves (and its version and uptime), and reads the
//! database read-only for what it holds: devices by adapter, automations, accounts, plugins,
//! history by resolution against the disk budget, the cloud backlog, the newest backup and
//! what the backup directory takes.
//! With a token (`--token` or `HEARTH_TOKEN`), it also shows each adapter's state and the cloud
//! link's, which only the running hub knows.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::{Value, json};

use crate::config::Config;

/// What to summarise.
#[derive(Debug)]
pub struct StatusInput<'a> {
    /// The configuration in use.
    pub config: &'a Config,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the hub's HTTP API listens.
    pub http: SocketAddr,
    /// A token for the details only the running hub knows.
    pub token: Option<String>,
}

/// The summary, as JSON; `running` says whether the hub answered.
pub fn gather(input: &StatusInput<'_>) -> Value {
    let mut http = input.http;
    if http.ip().is_unspecified() {
        http.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let get = |path: &str, token: Option<&str>| -> Result<(u16, Value), String> {
        let mut req = agent.get(format!("http://{http}{path}"));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let mut answer = req.call().map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let body = answer.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    };
    let mut out = json!({"http": http.to_string(), "data_dir": input.data_dir.display().to_string()});
    match get("/healthz", None) {
        Ok((200, h)) => {
            out["running"] = json!(true);
            out["version"] = h["version"].clone();
            out["uptime_secs"] = h["uptime_secs"].clone();
        }
        Ok((code, _)) => {
            out["running"] = json!(false);
            out["problem"] = json!(format!("http://{http}/healthz answered {code}"));
        }
        Err(e) => {
            out["running"] = json!(false);
            out["problem"] = json!(format!("no hub answers at http://{http}/ ({e})"));
        }
    }
    match database(&input.data_dir, input.config) {
        Ok(db) => out["database"] = db,
        Err(e) => out["database"] = json!({"problem": e}),
    }
    let backups = backups_dir(input);
    out["last_backup"] = newest_backup(&backups).unwrap_or(Value::Null);
    out["backups"] = json!(crate::backup::schedule::disk_use(&backups, &input.data_dir));
    if let (Some(token), true) = (&input.token, out["running"] == json!(true)) {
        match get("/api/v1/adapters", Some(token)) {
            Ok((200, adapters)) => {
                out["adapters"] = Value::Array(
                    adapters
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| json!({"id": a["id"], "state": a["status"]["state"], "reason": a["status"]["reason"]}))
                        .collect(),
                );
            }
            Ok((401 | 403, _)) => out["adapters"] = json!({"problem": "the token was refused"}),
            Ok((code, _)) => out["adapters"] = json!({"problem": format!("answered {code}")}),
            Err(e) => out["adapters"] = json!({"problem": e}),
        }
        if let Ok((200, cloud)) = get("/api/v1/cloud", Some(token)) {
            out["cloud"] = cloud;
        }
    }
    out
}

fn backups_dir(input: &StatusInput<'_>) -> PathBuf {
    input.config.backup.dir.clone().unwrap_or_else(|| input.data_dir.join("backups"))
}

/// The newest backup archive in `dir`: its name, size and time. Only files whose start shows a
/// Hearth backup count (any other file, whatever its name, is not a backup); the newest by
/// modification time, its time the one its manifest gives when it is not encrypted.
fn newest_backup(dir: &Path) -> Option<Value> {
    let mut candidates: Vec<(std::time::SystemTime, PathBuf, u64)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(&format!(".{}", crate::backup::EXTENSION)))
        .filter_map(|e| {
            let m = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((m.modified().ok()?, e.path(), m.len()))
        })
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    candidates.into_iter().find_map(|(modified, path, bytes)| {
        let peeked = crate::backup::peek(&path)?;
        let at = peeked.created_at.unwrap_or_else(|| {
            let ms = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            hearth_sdk::Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        });
        Some(json!({
            "file": path.display().to_string(),
            "bytes": bytes,
            "at": at,
            "encrypted": peeked.encrypted,
        }))
    })
}

/// What the database holds, read without taking any lock the hub needs.
fn database(data_dir: &Path, config: &Config) -> Result<Value, String> {
    let path = data_dir.join(crate::store::DB_FILE);
    if !path.exists() {
        return Err(format!("there is no database at {}", path.display()));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let q = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).optional().ok().flatten() };
    let mut adapters = serde_json::Map::new();
    if let Ok(mut stmt) = conn.prepare("SELECT adapter, COUNT(*) FROM devices GROUP BY adapter ORDER BY adapter")
        && let Ok(rows) = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
    {
        for (adapter, n) in rows.flatten() {
            adapters.insert(adapter, json!(n));
        }
    }
    let used = crate::store::upkeep::used_bytes(&conn).unwrap_or(0);
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let on_disk = size(path.clone()) + size(PathBuf::from(format!("{}-wal", path.display())));
    let budget = config.history.max_db_mb * 1024 * 1024;
    Ok(json!({
        "file": path.display().to_string(),
        "schema_version": q("PRAGMA user_version"),
        "bytes": on_disk,
        "used_bytes": used,
        "budget_bytes": budget,
        "devices": q("SELECT COUNT(*) FROM devices"),
        "devices_by_adapter": adapters,
        "areas": q("SELECT COUNT(*) FROM areas"),
        "automations": q("SELECT COUNT(*) FROM automations"),
        "users": q("SELECT COUNT(*) FROM users"),
        "plugins_enabled": q("SELECT COUNT(*) FROM plugins WHERE enabled = 1"),
        "history_rows": q("SELECT COUNT(*) FROM history"),
        "history_5m_rows": q("SELECT COUNT(*) FROM history_5m"),
        "history_1h_rows": q("SELECT COUNT(*) FROM history_1h"),
        "oldest_history": q("SELECT MIN(at) FROM history").map(hearth_sdk::Timestamp::from_millis),
        "cloud_backlog": q("SELECT n FROM outbox_size"),
    }))
}

/// The summary for a person: one line per fact.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let mb = |v: &Value| v.as_u64().map_or_else(|| "?".to_owned(), |b| format!("{:.1} MB", b as f64 / 1_048_576.0));
    let n = |v: &Value| v.as_i64().map_or_else(|| "?".to_owned(), |n| n.to_string());
    if s["running"] == json!(true) {
        let up = s["uptime_secs"].as_u64().unwrap_or(0);
        out += &format!(
            "Hearth {} is running at http://{}/ (up {}d {}h {}m).\n",
            s["version"].as_str().unwrap_or("?"),
            s["http"].as_str().unwrap_or("?"),
            up / 86_400,
            up % 86_400 / 3600,
            up % 3600 / 60
        );
    } else {
        out += &format!("Hearth is NOT running: {}.\n", s["problem"].as_str().unwrap_or("no answer"));
    }
    let db = &s["database"];
    if let Some(p) = db["problem"].as_str() {
        out += &format!("Database: {p}.\n");
    } else {
        let by: Vec<String> =
            db["devices_by_adapter"].as_object().into_iter().flatten().map(|(a, c)| format!("{a} {}", n(c))).collect();
        out += &format!("Database: {} (schema {}).\n", db["file"].as_str().unwrap_or("?"), n(&db["schema_version"]));
        out += &format!(
            "  Devices: {}{}; areas {}; automations {}; accounts {}; plugins enabled {}.\n",
            n(&db["devices"]),
            if by.is_empty() { String::new() } else { format!(" ({})", by.join(", ")) },
            n(&db["areas"]),
            n(&db["automations"]),
            n(&db["users"]),
            n(&db["plugins_enabled"])
        );
        out += &format!(
            "  History: {} raw rows, {} 5-minute and {} hourly figures.\n",
            n(&db["history_rows"]),
            n(&db["history_5m_rows"]),
            n(&db["history_1h_rows"])
        );
        let budget = db["budget_bytes"].as_u64().unwrap_or(0);
        if budget == 0 {
            out += &format!("  Size: {} on disk, {} in use, no budget.\n", mb(&db["bytes"]), mb(&db["used_bytes"]));
        } else {
            let used = db["used_bytes"].as_u64().unwrap_or(0);
            out += &format!(
                "  Size: {} on disk, {} in use of a {} budget ({:.0} %).\n",
                mb(&db["bytes"]),
                mb(&db["used_bytes"]),
                mb(&db["budget_bytes"]),
                used as f64 * 100.0 / budget as f64
            );
        }
        if db["cloud_backlog"].as_i64().is_some_and(|b| b > 0) {
            out += &format!("  Cloud backlog: {} messages waiting.\n", n(&db["cloud_backlog"]));
        }
    }
    match &s["last_backup"] {
        Value::Null => out += "Last backup: none found.\n",
        b => {
            out += &format!(
                "Last backup: {} ({}, {}).\n",
                b["file"].as_str().unwrap_or("?"),
                mb(&b["bytes"]),
                b["at"].as_str().unwrap_or("?")
            )
        }
    }
    let b = &s["backups"];
    match b["files"].as_u64() {
        Some(0) | None => out += &format!("Backups: none in {}.\n", b["dir"].as_str().unwrap_or("?")),
        Some(files) => {
            out += &format!(
                "Backups: {files} file{} in {}, {} on disk (beside the database and its budget).\n",
                if files == 1 { "" } else { "s" },
                b["dir"].as_str().unwrap_or("?"),
                mb(&b["bytes"])
            );
        }
    }
    match &s["adapters"] {
        Value::Array(list) => {
            out += "Adapters:\n";
            for a in list {
                let reason =
                    a["reason"].as_str().filter(|r| !r.is_empty()).map(|r| format!(": {r}")).unwrap_or_default();
                out +=
                    &format!("  {} {}{reason}\n", a["id"].as_str().unwrap_or("?"), a["state"].as_str().unwrap_or("?"));
            }
        }
        Value::Object(p) => {
            out += &format!("Adapters: {}.\n", p.get("problem").and_then(Value::as_str).unwrap_or("unknown"));
        }
        _ if s["running"] == json!(true) => {
            out += "Adapters: give a token (--token or HEARTH_TOKEN; `hearth token create`) to see their states.\n";
        }
        _ => {}
    }
    if let Some(c) = s.get("cloud").filter(|c| c["enabled"] == json!(true)) {
        if c["connected"] == json!(true) {
            out += &format!("Cloud: connected, {} waiting.\n", n(&c["backlog"]));
        } else {
            out += &format!("Cloud: NOT connected: {}.\n", c["reason"].as_str().unwrap_or("unknown"));
        }
    }
    out
}
