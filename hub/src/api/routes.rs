//! The route table and its handlers: every HTTP route of the hub, with its access level.

use std::sync::Arc;
use std::time::Instant;

use hearth_automations::say::Say;
use hearth_sdk::{CommandRequest, DeviceId, Origin, SCHEMA_VERSION, Timestamp};
use serde::Deserialize;
use warp::http::StatusCode;

use super::automations as a;
use super::{ApiError, App, Reply, Req};
use crate::auth;
use crate::store::{HistoryQuery, StoreError};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the allow-list: health, onboarding, login).
    Public,
    /// Any signed-in user.
    User,
    /// Administrators only.
    Admin,
}

type Handler = fn(Arc<App>, Req) -> hearth_sdk::BoxFuture<Result<Reply, ApiError>>;

/// One route.
#[derive(Debug)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern; `{name}` matches one segment.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it does, for the docs.
    pub summary: &'static str,
    /// The audit log's action for a successful call, when the dispatcher records it. (Account,
    /// session and token routes record their own entries, with more to say.)
    pub audit: Option<&'static str>,
    pub(super) handler: Handler,
}

macro_rules! route {
    ($method:literal, $path:literal, $access:ident, $summary:literal, $handler:path) => {
        route!(@row $method, $path, $access, $summary, $handler, None)
    };
    ($method:literal, $path:literal, $access:ident, $summary:literal, $handler:path, audit = $audit:literal) => {
        route!(@row $method, $path, $access, $summary, $handler, Some($audit))
    };
    (@row $method:literal, $path:literal, $access:ident, $summary:literal, $handler:path, $audit:expr) => {
        Route {
            method: $method,
            path: $path,
            access: Access::$access,
            summary: $summary,
            audit: $audit,
            handler: |app, req| Box::pin($handler(app, req)),
        }
    };
}

/// Every route the hub serves. The WebSocket (`GET /api/v1/ws`) is served beside this table: it
/// authenticates with its first message.
///
/// Members (`User`) read devices, areas, adapters, automations and scenes, send commands, apply
/// scenes and call webhooks, within their areas; everything that changes the home's setup is
/// `Admin`.
pub static ROUTES: &[Route] = &[
    route!("GET", "/healthz", Public, "liveness and version", healthz),
    route!("GET", "/metrics", User, "Prometheus metrics", metrics),
    route!("GET", "/api/v1/onboarding", Public, "whether the first account is still to be created", onboarding_status),
    route!("POST", "/api/v1/onboarding", Public, "create the first account (an administrator)", onboarding),
    route!("POST", "/api/v1/auth/login", Public, "exchange name and password for a session (cookie and token)", login),
    route!("POST", "/api/v1/auth/logout", User, "revoke the token of this request and clear the cookie", logout),
    route!("GET", "/api/v1/auth/me", User, "the signed-in account", me),
    route!("POST", "/api/v1/auth/password", User, "change the own password (other sessions end)", change_password),
    route!("GET", "/api/v1/users", Admin, "every account", users),
    route!("POST", "/api/v1/users", Admin, "add an account", create_user),
    route!("PATCH", "/api/v1/users/{name}", Admin, "change an account's role, areas or password", patch_user),
    route!("DELETE", "/api/v1/users/{name}", Admin, "remove an account and its tokens", delete_user),
    route!("GET", "/api/v1/tokens", Admin, "every token and session (never the secrets)", tokens),
    route!("POST", "/api/v1/tokens", Admin, "create an API token (shown once)", create_token),
    route!("DELETE", "/api/v1/tokens/{id}", Admin, "revoke a token or session", delete_token),
    route!("GET", "/api/v1/audit", Admin, "the audit log, newest first", audit),
    route!("GET", "/api/v1/backup", Admin, "a backup archive: database snapshot, configuration, secrets key", backup),
    route!("GET", "/api/v1/backup/status", Admin, "scheduled backups: the last, the next, the files", backup_status),
    route!("GET", "/api/v1/devices", User, "every device with its state", devices),
    route!("GET", "/api/v1/devices/{id}", User, "one device", device),
    route!(
        "PATCH",
        "/api/v1/devices/{id}",
        Admin,
        "rename a device or move it to an area",
        patch_device,
        audit = "device.update"
    ),
    route!("DELETE", "/api/v1/devices/{id}", Admin, "remove a device", delete_device, audit = "device.remove"),
    route!("POST", "/api/v1/devices/{id}/commands", User, "send a command", command),
    route!("GET", "/api/v1/devices/{id}/history", User, "state changes and events", history),
    route!("GET", "/api/v1/areas", User, "every area", areas),
    route!("POST", "/api/v1/areas", Admin, "create an area", create_area, audit = "area.create"),
    route!("PATCH", "/api/v1/areas/{id}", Admin, "rename or reorder an area", patch_area, audit = "area.update"),
    route!("DELETE", "/api/v1/areas/{id}", Admin, "remove an area", delete_area, audit = "area.remove"),
    route!("GET", "/api/v1/adapters", User, "every adapter with its status", adapters),
    route!(
        "POST",
        "/api/v1/adapters/{id}/actions/{action}",
        Admin,
        "a management action of an adapter",
        action,
        audit = "adapter.action"
    ),
    route!(
        "GET",
        "/api/v1/adapters/{id}/secrets",
        Admin,
        "an adapter's secrets, by name (never their values)",
        secrets
    ),
    route!(
        "PUT",
        "/api/v1/adapters/{id}/secrets/{name}",
        Admin,
        "set a secret of an adapter (a bind key): stored sealed",
        secret_put,
        audit = "secret.set"
    ),
    route!(
        "DELETE",
        "/api/v1/adapters/{id}/secrets/{name}",
        Admin,
        "remove a secret of an adapter",
        secret_delete,
        audit = "secret.delete"
    ),
    route!("GET", "/api/v1/storage", Admin, "the database's size, history rows and disk budget", storage),
    route!("GET", "/api/v1/cloud", Admin, "the cloud link: connected or why not, backlog, last error, counts", cloud),
    route!(
        "GET",
        "/api/v1/plugins",
        Admin,
        "every installed plugin: manifest, configuration, status, last stderr lines",
        plugins
    ),
    route!("GET", "/api/v1/plugins/{id}", Admin, "one plugin", plugin),
    route!(
        "POST",
        "/api/v1/plugins/{id}/enable",
        Admin,
        "start a plugin (again, when quarantined)",
        plugin_enable,
        audit = "plugin.enable"
    ),
    route!("POST", "/api/v1/plugins/{id}/disable", Admin, "stop a plugin", plugin_disable, audit = "plugin.disable"),
    route!(
        "PUT",
        "/api/v1/plugins/{id}/config",
        Admin,
        "set a plugin's configuration, checked against its schema",
        plugin_config,
        audit = "plugin.config"
    ),
    route!("GET", "/api/v1/inbox", Admin, "what adapters found: the discovery inbox", inbox),
    route!(
        "POST",
        "/api/v1/inbox/{adapter}/{key}/accept",
        Admin,
        "accept a found device",
        inbox_accept,
        audit = "inbox.accept"
    ),
    route!(
        "POST",
        "/api/v1/inbox/{adapter}/{key}/ignore",
        Admin,
        "ignore a found device",
        inbox_ignore,
        audit = "inbox.ignore"
    ),
    route!(
        "DELETE",
        "/api/v1/inbox/{adapter}/{key}",
        Admin,
        "forget a found device (offered again when found)",
        inbox_forget,
        audit = "inbox.forget"
    ),
    route!("GET", "/api/v1/automations", User, "every automation with its version and last run", a::list),
    route!("POST", "/api/v1/automations", Admin, "create an automation (JSON)", a::create, audit = "automation.create"),
    route!("POST", "/api/v1/automations/validate", Admin, "check an automation without saving it", a::check),
    route!("GET", "/api/v1/automations/export", User, "every automation as YAML", a::export),
    route!(
        "POST",
        "/api/v1/automations/import",
        Admin,
        "create or update automations from YAML",
        a::import,
        audit = "automation.import"
    ),
    route!("GET", "/api/v1/automations/{id}", User, "one automation", a::get),
    route!(
        "PUT",
        "/api/v1/automations/{id}",
        Admin,
        "replace an automation (a new version)",
        a::replace,
        audit = "automation.update"
    ),
    route!(
        "DELETE",
        "/api/v1/automations/{id}",
        Admin,
        "delete an automation with its versions and traces",
        a::delete,
        audit = "automation.delete"
    ),
    route!("GET", "/api/v1/automations/{id}/yaml", User, "one automation as YAML", a::yaml),
    route!(
        "POST",
        "/api/v1/automations/{id}/enable",
        Admin,
        "turn an automation on",
        a::enable,
        audit = "automation.enable"
    ),
    route!(
        "POST",
        "/api/v1/automations/{id}/disable",
        Admin,
        "turn an automation off (its runs stop)",
        a::disable,
        audit = "automation.disable"
    ),
    route!(
        "POST",
        "/api/v1/automations/{id}/trigger",
        Admin,
        "run an automation now",
        a::trigger,
        audit = "automation.trigger"
    ),
    route!(
        "POST",
        "/api/v1/automations/{id}/dry-run",
        User,
        "conditions now and the actions it would take",
        a::dry_run
    ),
    route!("GET", "/api/v1/automations/{id}/traces", User, "the last runs, newest first", a::traces),
    route!("GET", "/api/v1/automations/{id}/traces/{run}", User, "one run's trace", a::trace),
    route!("GET", "/api/v1/automations/{id}/versions", User, "saved versions, newest first", a::versions),
    route!("GET", "/api/v1/automations/{id}/versions/{version}", User, "one saved version", a::version),
    route!("GET", "/api/v1/automations/{id}/diff", User, "the difference between two versions", a::difference),
    route!(
        "POST",
        "/api/v1/automations/{id}/rollback",
        Admin,
        "save an earlier version as the newest",
        a::rollback,
        audit = "automation.rollback"
    ),
    route!("GET", "/api/v1/automation-runs", User, "runs going or waiting now", a::runs),
    route!("POST", "/api/v1/webhooks/{id}", User, "call a webhook trigger", a::webhook),
    route!("GET", "/api/v1/scenes", User, "every scene (a member: those within its areas)", a::scenes),
    route!(
        "POST",
        "/api/v1/scenes",
        Admin,
        "create a scene, or capture one from devices' current state",
        a::create_scene,
        audit = "scene.create"
    ),
    route!("GET", "/api/v1/scenes/{id}", User, "one scene", a::scene),
    route!("PUT", "/api/v1/scenes/{id}", Admin, "replace a scene", a::replace_scene, audit = "scene.update"),
    route!("DELETE", "/api/v1/scenes/{id}", Admin, "delete a scene", a::delete_scene, audit = "scene.delete"),
    route!("POST", "/api/v1/scenes/{id}/apply", User, "apply a scene as one batch", a::apply_scene),
];

/// The audit entry of a successful call of a row with an audit action: its target is the path's
/// parameters, or for a creation the id the reply names; its note the version saved, if any.
pub fn audit_entry(
    action: &str,
    actor: Option<&str>,
    params: &[String],
    reply: Option<&serde_json::Value>,
) -> crate::audit::Entry {
    let mut e = crate::audit::Entry::new(actor, action);
    let null = serde_json::Value::Null;
    let reply = reply.unwrap_or(&null);
    let target = if params.is_empty() {
        let saved: Vec<&str> =
            reply["saved"].as_array().map(|l| l.iter().filter_map(|s| s["id"].as_str()).collect()).unwrap_or_default();
        reply["id"]
            .as_str()
            .or_else(|| reply["automation"]["id"].as_str())
            .map(str::to_owned)
            .or_else(|| (!saved.is_empty()).then(|| saved.join(", ")))
    } else {
        Some(params.join("/"))
    };
    if let Some(t) = target {
        e = e.target(t);
    }
    if let Some(v) = reply["version"].as_u64() {
        e = e.note(Say::AuditVersion { version: v });
    }
    e
}

/// How long an adapter action may take before the caller gets 504.
pub const ACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

fn device_id(req: &Req) -> Result<DeviceId, ApiError> {
    let raw = req.params.first().map(String::as_str).unwrap_or_default();
    DeviceId::parse(raw)
        .ok_or_else(|| ApiError::not_found(format!("no device `{raw}`: device ids look like `<adapter>:<native id>`")))
}

async fn healthz(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "schema_version": SCHEMA_VERSION,
        "uptime_secs": app.started.elapsed().as_secs(),
    }))
}

async fn metrics(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let adapters = app.core.adapters().await?;
    Ok(Reply::Text("text/plain; version=0.0.4", crate::metrics::render(&app, &adapters)))
}

async fn onboarding_status(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let users = app.readers.with(|c| auth::user_count(c).map_err(|e| StoreError::Write(e.to_string()))).await?;
    Reply::json(&serde_json::json!({"needed": users == 0}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    name: String,
    password: String,
}

fn auth_error(e: auth::AuthError) -> ApiError {
    match e {
        auth::AuthError::AlreadyOnboarded => ApiError::new(StatusCode::CONFLICT, "already_onboarded", e.to_string()),
        auth::AuthError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
        auth::AuthError::LastAdmin(_) => ApiError::new(StatusCode::CONFLICT, "last_admin", e.to_string()),
        auth::AuthError::BadName | auth::AuthError::WeakPassword => {
            ApiError::bad_request("invalid_account", e.to_string())
        }
        auth::AuthError::NoUser(_) | auth::AuthError::NoToken(_) => ApiError::not_found(e.to_string()),
        auth::AuthError::Hash(_) | auth::AuthError::Store(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

/// Runs `f` in the writer's transaction; a refusal (an account error) undoes what `f` wrote, in
/// a savepoint of its own, and becomes the API error. (Refusals are answers, not failed writes:
/// the writer does not log them.)
async fn write<T, F>(app: &App, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&rusqlite::Connection) -> Result<T, auth::AuthError> + Send + 'static,
{
    let out = app
        .writer
        .exec(move |c| {
            c.execute_batch("SAVEPOINT api_write")?;
            match f(c) {
                Ok(v) => {
                    c.execute_batch("RELEASE api_write")?;
                    Ok(Ok(v))
                }
                Err(e) => {
                    c.execute_batch("ROLLBACK TO api_write; RELEASE api_write")?;
                    Ok(Err(e))
                }
            }
        })
        .await?;
    out.map_err(auth_error)
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(auth_error)
}

/// Checks a password off the runtime (argon2 is slow on purpose); an unknown account is checked
/// against a dummy hash, so both take as long.
async fn verify(hash: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        auth::verify_password(hash.as_deref().unwrap_or_else(|| auth::dummy_hash()), &password)
    })
    .await
    .unwrap_or(false)
}

/// Creates a session for `name` (removing expired ones on the way) and records `action` in the
/// audit log; answers with the token in the body and in the cookie.
async fn start_session(
    app: &App,
    req: &Req,
    name: String,
    status: StatusCode,
    action: &'static str,
) -> Result<Reply, ApiError> {
    let ttl = app.security.session_ttl_secs;
    let ip = req.ip;
    let (user, token) = write(app, move |c| {
        auth::delete_expired(c)?;
        let (id, token) = auth::create_session(c, &name, ttl)?;
        let user = auth::user(c, &name)?;
        let entry = crate::audit::Entry::new(Some(&user.name), action)
            .target(user.name.clone())
            .note(Say::AuditSession { session: id })
            .ip(ip);
        crate::audit::record(c, &entry)?;
        Ok((user, token))
    })
    .await?;
    let cookie = app.security.session_cookie(&token, req.tls);
    Ok(Reply::status(status, &serde_json::json!({"token": token, "user": user_json(&user)}))?
        .with_header("set-cookie", cookie))
}

fn user_json(u: &auth::User) -> serde_json::Value {
    serde_json::json!({"name": u.name, "role": u.role, "admin": u.admin, "areas": u.areas})
}

async fn onboarding(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let c: Credentials = req.json()?;
    auth::check_name(&c.name).map_err(auth_error)?;
    let hashed = hash(c.password).await?;
    let name = c.name.clone();
    write(&app, move |conn| auth::onboard(conn, &name, &hashed)).await?;
    tracing::info!(user = %c.name, "The first account was created.");
    start_session(&app, &req, c.name, StatusCode::CREATED, "auth.onboarding").await
}

async fn login(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let c: Credentials = req.json()?;
    // A locked account or address is refused before any password is looked at.
    let attempt = app.security.throttle.begin(&c.name, req.ip, Instant::now()).map_err(ApiError::too_many_attempts)?;
    let found = if auth::check_name(&c.name).is_ok() {
        let name = c.name.clone();
        app.readers.with(move |conn| auth::find_user(conn, &name).map_err(|e| StoreError::Write(e.to_string()))).await?
    } else {
        None
    };
    let ok = verify(found.as_ref().map(|(_, _, h)| h.clone()), c.password).await && found.is_some();
    if ok {
        attempt.succeeded();
        return start_session(&app, &req, c.name, StatusCode::OK, "auth.login").await;
    }
    let lockouts = attempt.failed(Instant::now());
    // The name tried is recorded only when such an account exists: an unknown "name" may be a
    // password typed into the wrong field.
    let known = found.is_some().then_some(c.name.as_str());
    let client = req.ip.map(|i| i.to_string()).unwrap_or_default();
    match known {
        Some(name) => tracing::warn!(user = %name, ip = %client, "A login failed."),
        None => tracing::warn!(ip = %client, "A login with an unknown name failed."),
    }
    let mut first = crate::audit::Entry::new(known, "auth.login_failed").ip(req.ip);
    if known.is_none() {
        first = first.note(Say::AuditUnknownAccount);
    }
    let mut entries = vec![first];
    for l in lockouts {
        let (scope, secs) = (l.scope.name(), l.duration.as_secs());
        tracing::warn!(scope, secs, ip = %client, "Too many failed logins: locked for a while.");
        // An unknown account's name is not recorded (it may be a mistyped password).
        let target = match l.scope {
            crate::throttle::Scope::Account => known.map(str::to_owned),
            crate::throttle::Scope::Address => Some(client.clone()),
        };
        let mut entry = crate::audit::Entry::new(known, "auth.lockout")
            .note(Say::AuditLocked { scope: scope.to_string(), secs })
            .ip(req.ip);
        entry.target = target;
        entries.push(entry);
    }
    write(&app, move |conn| {
        for e in &entries {
            crate::audit::record(conn, e)?;
        }
        Ok(())
    })
    .await?;
    Err(ApiError::new(StatusCode::UNAUTHORIZED, "login_failed", "wrong name or password"))
}

async fn logout(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let p = req.user()?;
    let (id, name) = (p.token_id, p.name.clone());
    let entry = crate::audit::Entry::new(Some(&name), "auth.logout").target(name.clone()).ip(req.ip);
    write(&app, move |conn| {
        auth::revoke_token(conn, id)?;
        crate::audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(Reply::Empty.with_header("set-cookie", super::security::Security::clear_cookie(req.tls)))
}

async fn me(_: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    Reply::json(req.user()?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

async fn change_password(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: PasswordChange = req.json()?;
    let p = req.user()?.clone();
    if body.new.chars().count() < auth::MIN_PASSWORD {
        return Err(auth_error(auth::AuthError::WeakPassword));
    }
    // Guessing the current password through this route is throttled like logins.
    let attempt = app.security.throttle.begin(&p.name, req.ip, Instant::now()).map_err(ApiError::too_many_attempts)?;
    let name = p.name.clone();
    let found = app
        .readers
        .with(move |conn| auth::find_user(conn, &name).map_err(|e| StoreError::Write(e.to_string())))
        .await?;
    if !verify(found.map(|(_, _, h)| h), body.current).await {
        attempt.failed(Instant::now());
        let entry = crate::audit::Entry::new(Some(&p.name), "auth.password_failed").target(p.name.clone()).ip(req.ip);
        write(&app, move |conn| Ok(crate::audit::record(conn, &entry)?)).await?;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is not right; nothing was changed",
        ));
    }
    attempt.succeeded();
    let hashed = hash(body.new).await?;
    let keep = p.session.then_some(p.token_id);
    let entry = crate::audit::Entry::new(Some(&p.name), "auth.password")
        .target(p.name.clone())
        .note(Say::AuditOtherSessionsEnded)
        .ip(req.ip);
    write(&app, move |conn| {
        auth::change_password(conn, p.user_id, &hashed, keep)?;
        crate::audit::record(conn, &entry)?;
        Ok(())
    })
    .await?;
    Ok(Reply::Empty)
}

// ----- accounts, tokens, audit, backup (administrators) ------------------------------------------

async fn users(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let list = app.readers.with(|c| auth::list_users(c).map_err(|e| StoreError::Write(e.to_string()))).await?;
    Reply::json(
        &list
            .iter()
            .map(|u| {
                let mut v = user_json(u);
                v["created_at"] = serde_json::json!(u.created_at);
                v
            })
            .collect::<Vec<_>>(),
    )
}

fn role(value: &str) -> Result<bool, ApiError> {
    match value {
        "admin" => Ok(true),
        "member" => Ok(false),
        other => {
            Err(ApiError::bad_request("invalid_role", format!("`{other}` is not a role: use `admin` or `member`")))
        }
    }
}

/// Checks that every area exists; returns them sorted without repeats.
async fn known_areas(app: &App, areas: Vec<String>) -> Result<Vec<String>, ApiError> {
    let known: Vec<String> = app.core.areas().await?.into_iter().map(|a| a.id).collect();
    let mut out = Vec::new();
    for a in areas {
        if !known.contains(&a) {
            let mut e = ApiError::bad_request(
                "unknown_area",
                format!("there is no area `{a}`; the areas are: {}", known.join(", ")),
            );
            e.details = serde_json::json!({"area": a, "areas": known});
            return Err(e);
        }
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out.sort();
    Ok(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    areas: Vec<String>,
}

async fn create_user(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: NewUser = req.json()?;
    auth::check_name(&body.name).map_err(auth_error)?;
    let admin = role(body.role.as_deref().unwrap_or("member"))?;
    let areas = known_areas(&app, body.areas).await?;
    let hashed = hash(body.password).await?;
    let actor = req.user()?.name.clone();
    let name = body.name;
    let entry = crate::audit::Entry::new(Some(&actor), "user.add")
        .target(name.clone())
        .note(describe_user(Some(admin), Some(&areas), false))
        .ip(req.ip);
    let user = write(&app, move |c| {
        auth::insert_user(c, &name, &hashed, admin)?;
        auth::set_user_areas(c, &name, &areas)?;
        crate::audit::record(c, &entry)?;
        auth::user(c, &name)
    })
    .await?;
    let mut v = user_json(&user);
    v["created_at"] = serde_json::json!(user.created_at);
    Reply::status(StatusCode::CREATED, &v)
}

/// What an account change did, for the audit log (never the password itself).
fn describe_user(admin: Option<bool>, areas: Option<&[String]>, password: bool) -> Say {
    let mut changes = Vec::new();
    if let Some(a) = admin {
        changes.push(Say::AuditRole { role: auth::role_name(a).to_owned() });
    }
    if let Some(areas) = areas {
        changes.push(if areas.is_empty() { Say::AuditEveryArea } else { Say::AuditAreas { areas: areas.to_vec() } });
    }
    if password {
        changes.push(Say::AuditPasswordSet);
    }
    Say::AuditChanges { changes }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    areas: Option<Vec<String>>,
    #[serde(default)]
    password: Option<String>,
}

async fn patch_user(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let name = req.params.first().cloned().unwrap_or_default();
    let body: UserPatch = req.json()?;
    if body.role.is_none() && body.areas.is_none() && body.password.is_none() {
        return Err(ApiError::bad_request("invalid_body", "say what to change: `role`, `areas` or `password`"));
    }
    let admin = body.role.as_deref().map(role).transpose()?;
    let areas = match body.areas {
        Some(a) => Some(known_areas(&app, a).await?),
        None => None,
    };
    let hashed = match body.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let actor = req.user()?.name.clone();
    let entry = crate::audit::Entry::new(Some(&actor), "user.change")
        .target(name.clone())
        .note(describe_user(admin, areas.as_deref(), hashed.is_some()))
        .ip(req.ip);
    let user = write(&app, move |c| {
        if let Some(a) = admin {
            auth::set_admin(c, &name, a)?;
        }
        if let Some(areas) = &areas {
            auth::set_user_areas(c, &name, areas)?;
        }
        if let Some(h) = &hashed {
            auth::set_password(c, &name, h)?;
        }
        let user = auth::user(c, &name)?;
        crate::audit::record(c, &entry.target(user.name.clone()))?;
        Ok(user)
    })
    .await?;
    let mut v = user_json(&user);
    v["created_at"] = serde_json::json!(user.created_at);
    Reply::json(&v)
}

async fn delete_user(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let name = req.params.first().cloned().unwrap_or_default();
    let entry = crate::audit::Entry::new(Some(&req.user()?.name), "user.remove").target(name.clone()).ip(req.ip);
    write(&app, move |c| {
        auth::remove_user(c, &name)?;
        crate::audit::record(c, &entry)?;
        Ok(())
    })
    .await?;
    Ok(Reply::Empty)
}

async fn tokens(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let current = req.user()?.token_id;
    let list = app.readers.with(|c| auth::list_tokens(c, None).map_err(|e| StoreError::Write(e.to_string()))).await?;
    Reply::json(
        &list
            .iter()
            .map(|t| {
                let mut v = serde_json::to_value(t).unwrap_or_default();
                v["current"] = serde_json::json!(t.id == current);
                v
            })
            .collect::<Vec<_>>(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
}

async fn create_token(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: NewToken = req.json()?;
    let label = body.name.trim().to_owned();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a token's name is 1 to 64 characters without control characters, like `home assistant`",
        ));
    }
    let user = req.user()?.name.clone();
    let ip = req.ip;
    let (id, token) = write(&app, move |c| {
        let (id, token) = auth::create_token(c, &user, &label, "api")?;
        let entry = crate::audit::Entry::new(Some(&user), "token.create")
            .target(id.to_string())
            .note(Say::AuditLabel { label })
            .ip(ip);
        crate::audit::record(c, &entry)?;
        Ok((id, token))
    })
    .await?;
    Reply::status(StatusCode::CREATED, &serde_json::json!({"id": id, "token": token, "kind": "api"}))
}

async fn delete_token(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let raw = req.params.first().cloned().unwrap_or_default();
    let id: i64 = raw.parse().map_err(|_| ApiError::not_found(format!("no token with id `{raw}`")))?;
    let entry = crate::audit::Entry::new(Some(&req.user()?.name), "token.revoke").target(id.to_string()).ip(req.ip);
    write(&app, move |c| {
        let info = auth::list_tokens(c, None)?.into_iter().find(|t| t.id == id);
        auth::revoke_token(c, id)?;
        let entry = match info {
            Some(t) => entry.note(Say::AuditToken { token_kind: t.kind.to_string(), name: t.name, user: t.user }),
            None => entry,
        };
        crate::audit::record(c, &entry)?;
        Ok(())
    })
    .await?;
    Ok(Reply::Empty)
}

async fn audit(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    for key in req.query.keys() {
        if key != "limit" {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter `{key}`; this route takes limit"),
            ));
        }
    }
    let limit = match req.query.get("limit") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=10_000) => n,
            _ => return Err(ApiError::bad_request("invalid_query", format!("`limit` must be 1 to 10000, not `{v}`"))),
        },
    };
    Reply::json(&app.readers.with(move |c| crate::audit::list(c, limit)).await?)
}

/// `GET /api/v1/backup`: the archive `hearth backup` writes (`crate::backup`: the database's
/// snapshot, the configuration, the secrets key), streamed as it is made. Not encrypted: it goes
/// to a signed-in administrator (off the LAN, serve the hub through a TLS proxy; for an
/// encrypted archive use `hearth backup --passphrase-file`). The snapshot's scratch file, in
/// the data directory, is unlinked as soon as it is open.
async fn backup(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let sources = crate::backup::schedule::hub().map(|h| h.sources.clone()).unwrap_or_else(|| {
        let dir = app.readers.path().parent().map(std::path::Path::to_path_buf).unwrap_or_default();
        crate::backup::Sources { data_dir: dir, config_file: None }
    });
    let scratch = sources.data_dir.clone();
    let snapshot = tokio::task::spawn_blocking(move || crate::backup::Snapshot::take(&sources, &scratch))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "A backup for the API failed.");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup_failed", e.to_string())
        })?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || crate::backup::send_archive(snapshot, tx));
    let entry = crate::audit::Entry::new(Some(&req.user()?.name), "backup").ip(req.ip);
    write(&app, move |c| Ok(crate::audit::record(c, &entry)?)).await?;
    let date = Timestamp::now().to_string();
    let name = format!("hearth-backup-{}.{}", date.get(..10).unwrap_or("today"), crate::backup::EXTENSION);
    Ok(Reply::Download("application/x-tar", name, rx))
}

/// `GET /api/v1/backup/status`: the scheduled backups' settings, the last one (or failure),
/// the next, and the files (`crate::backup::schedule::Status`).
async fn backup_status(_: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let status = tokio::task::spawn_blocking(|| crate::backup::schedule::hub().map(|h| h.status()))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    match status {
        Some(s) => Reply::json(&s),
        None => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", "the hub's backups are not set up yet")),
    }
}

// ----- devices and areas --------------------------------------------------------------------------

async fn devices(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let mut devices = app.core.snapshot().await?.devices;
    devices.retain(|d| user.sees(d.area.as_deref()));
    Reply::json(&devices)
}

/// A device this user may see; others are as absent as devices that do not exist.
async fn visible_device(app: &App, req: &Req, id: &DeviceId) -> Result<hearth_sdk::Device, ApiError> {
    let d = app.core.device(id).await?.ok_or_else(|| ApiError::not_found(format!("no device `{id}`")))?;
    req.check_device(&d)?;
    Ok(d)
}

async fn device(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    Reply::json(&visible_device(&app, &req, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicePatch {
    name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    area: Option<Option<String>>,
}

/// `absent` -> None, `null` -> Some(None), `"x"` -> Some(Some("x")).
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

async fn patch_device(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    let patch: DevicePatch = req.json()?;
    Reply::json(&app.core.patch_device(&id, patch.name, patch.area).await?)
}

async fn delete_device(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    app.core.remove_device(&id).await?;
    Ok(Reply::Empty)
}

async fn command(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    let request: CommandRequest = req.json()?;
    if req.user()?.limited() {
        visible_device(&app, &req, &id).await?;
    }
    let user = req.user()?.name.clone();
    let context = app.core.command(id, request, Origin::User { name: user }).await?;
    Reply::status(StatusCode::ACCEPTED, &serde_json::json!({"accepted": true, "context": context}))
}

fn time_param(req: &Req, key: &str) -> Result<Option<Timestamp>, ApiError> {
    req.query
        .get(key)
        .map(|v| v.parse::<Timestamp>().map_err(|e| ApiError::bad_request("invalid_query", format!("`{key}`: {e}"))))
        .transpose()
}

/// `GET /api/v1/devices/{id}/history?feature=&from=&to=&limit=&resolution=`: raw, `{"device",
/// "entries": [{"feature", "kind": "state"|"event", "value", "at", "context"}], "truncated"}`,
/// oldest first. `context` says who or what caused a change; it is `null` for a device's own
/// reports (origin device, no parent), which history stores without one. With `resolution=5m`
/// or `1h`: `{"device", "resolution", "periods": [{"feature", "at", "count", "min", "max",
/// "mean"}], "truncated"}`.
async fn history(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    for key in req.query.keys() {
        if !matches!(key.as_str(), "feature" | "from" | "to" | "limit" | "resolution") {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter `{key}`; this route takes feature, from, to, limit, resolution"),
            ));
        }
    }
    let table = match req.query.get("resolution").map(String::as_str) {
        None | Some("raw") => None,
        Some("5m") => Some("history_5m"),
        Some("1h") => Some("history_1h"),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`resolution` is raw (every change), 5m or 1h (aggregates), not `{other}`"),
            ));
        }
    };
    let limit = match req.query.get("limit") {
        None => 1000,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=10_000) => n,
            _ => return Err(ApiError::bad_request("invalid_query", format!("`limit` must be 1 to 10000, not `{v}`"))),
        },
    };
    let q = HistoryQuery {
        feature: req.query.get("feature").cloned(),
        from: time_param(&req, "from")?,
        to: time_param(&req, "to")?,
        limit,
    };
    let device = visible_device(&app, &req, &id).await?;
    if let Some(f) = &q.feature
        && device.feature(f).is_none()
    {
        let known: Vec<&str> = device.features.iter().map(|f| f.key.as_str()).collect();
        return Err(ApiError::bad_request(
            "unknown_feature",
            format!("device `{id}` has no feature `{f}`; its features are: {}", known.join(", ")),
        ));
    }
    // Read your writes: the writer may be gathering recent changes into its next commit (its
    // commit window); a flush commits them first, so history holds every change the hub has
    // shown. A failing writer is not this request's error: the read says what is committed.
    if let Err(e) = app.writer.flush().await {
        tracing::debug!(error = %e, "History read without a flush.");
    }
    let did = id.clone();
    if let Some(table) = table {
        let (periods, truncated) =
            app.readers.with(move |c| crate::store::upkeep::aggregated(c, table, &did, &q)).await?;
        let resolution = req.query.get("resolution").cloned();
        return Reply::json(
            &serde_json::json!({"device": id, "resolution": resolution, "periods": periods, "truncated": truncated}),
        );
    }
    let (entries, truncated) = app.readers.with(move |c| crate::store::history(c, &did, &q)).await?;
    // Written straight out: up to 10,000 entries, no JSON tree in between.
    #[derive(serde::Serialize)]
    struct History<'a, E: serde::Serialize> {
        device: &'a DeviceId,
        entries: E,
        truncated: bool,
    }
    Reply::json(&History { device: &id, entries, truncated })
}

async fn areas(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let user = req.user()?;
    let mut areas = app.core.areas().await?;
    areas.retain(|a| user.sees(Some(&a.id)));
    Reply::json(&areas)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AreaBody {
    name: Option<String>,
    order: Option<i64>,
}

async fn create_area(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: AreaBody = req.json()?;
    let name = body.name.ok_or_else(|| ApiError::bad_request("invalid_body", "an area needs a `name`"))?;
    Reply::status(StatusCode::CREATED, &app.core.create_area(name, body.order).await?)
}

async fn patch_area(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let body: AreaBody = req.json()?;
    let id = req.params.first().cloned().unwrap_or_default();
    Reply::json(&app.core.patch_area(id, body.name, body.order).await?)
}

async fn delete_area(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    app.core.remove_area(id).await?;
    Ok(Reply::Empty)
}

/// The secrets rule of adapter `id`, or why there is none.
async fn secret_spec(app: &App, id: &str) -> Result<hearth_sdk::SecretSpec, ApiError> {
    let manifest = app
        .core
        .adapters()
        .await?
        .into_iter()
        .find(|a| a.manifest.id == id)
        .map(|a| a.manifest)
        .ok_or_else(|| ApiError::not_found(format!("no adapter `{id}` runs in this hub")))?;
    manifest.secrets.ok_or_else(|| ApiError::not_found(format!("adapter `{id}` keeps no secrets")))
}

/// `GET /api/v1/adapters/{id}/secrets`: what its secrets are, and their names and times.
async fn secrets(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    let spec = secret_spec(&app, &id).await?;
    let adapter = id.clone();
    let list = app.readers.with(move |c| crate::secrets::list(c, &adapter)).await?;
    Reply::json(&serde_json::json!({"names": spec.names, "values": spec.values, "secrets": list}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

/// `PUT /api/v1/adapters/{id}/secrets/{name}` with `{"value": "..."}`: checked by the adapter's
/// rule, sealed, stored, then handed to the adapter. The value is never returned or logged.
async fn secret_put(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    let name = req.params.get(1).cloned().unwrap_or_default();
    let spec = secret_spec(&app, &id).await?;
    let body: SecretBody = req.json()?;
    (spec.check)(&name, &body.value).map_err(|e| ApiError::bad_request("invalid_secret", e))?;
    let (nonce, sealed) = app.secrets.seal(&id, &name, &body.value);
    let (adapter, slot) = (id.clone(), name.clone());
    write(&app, move |c| Ok(crate::secrets::store(c, &adapter, &slot, &nonce, &sealed)?)).await?;
    app.secrets.publish(&id, &name, Some(hearth_sdk::Secret::new(body.value)));
    Ok(Reply::Empty)
}

async fn secret_delete(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    let name = req.params.get(1).cloned().unwrap_or_default();
    secret_spec(&app, &id).await?;
    let (adapter, slot) = (id.clone(), name.clone());
    if !write(&app, move |c| Ok(crate::secrets::delete(c, &adapter, &slot)?)).await? {
        return Err(ApiError::not_found(format!("adapter `{id}` has no secret `{name}`")));
    }
    app.secrets.publish(&id, &name, None);
    Ok(Reply::Empty)
}

/// `GET /api/v1/storage`: the database's size, its budget, history rows by resolution, and what
/// backups take (beside the database: the budget bounds the database only).
async fn storage(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    let backups = match crate::backup::schedule::hub() {
        Some(b) => tokio::task::spawn_blocking(move || Some(b.disk_use())).await.unwrap_or_default(),
        None => None,
    };
    let u = &app.writer.stats().upkeep;
    let r = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let used = app.readers.with(crate::store::upkeep::used_bytes).await?;
    let budget = r(&u.budget_bytes);
    let last = u.last_run_ms.load(std::sync::atomic::Ordering::Relaxed);
    Reply::json(&serde_json::json!({
        "database_bytes": app.readers.bytes_on_disk(),
        "used_bytes": used,
        "budget_bytes": budget,
        "budget_used": if budget == 0 { None } else { Some((used as f64 / budget as f64 * 1000.0).round() / 1000.0) },
        "over_budget": u.over_budget.load(std::sync::atomic::Ordering::Relaxed),
        "history": {
            "raw_rows": r(&u.raw_rows),
            "five_minute_rows": r(&u.five_minute_rows),
            "hourly_rows": r(&u.hourly_rows),
            "counted_at": (last > 0).then(|| Timestamp::from_millis(last)),
            "removed_by_retention": r(&u.removed_by_retention),
            "removed_by_budget": r(&u.removed_by_budget),
        },
        "backups": backups,
    }))
}

/// `GET /api/v1/cloud`: the cloud link's status (`{"enabled": false}` when it is off).
async fn cloud(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.cloud.status())
}

/// `GET /api/v1/plugins`: `{"dir": ..., "plugins": [...]}`.
async fn plugins(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    app.plugins.apply().await;
    Reply::json(&serde_json::json!({"dir": app.plugins.dir().display().to_string(), "plugins": app.plugins.list()}))
}

/// One plugin; a plugin installed since the last scan is found by scanning again.
async fn plugin_view(app: &App, id: &str) -> Result<crate::plugins::PluginView, ApiError> {
    if !app.plugins.list().iter().any(|p| p.id == id) {
        app.plugins.apply().await;
    }
    app.plugins.list().into_iter().find(|p| p.id == id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no plugin `{id}` is installed: put its directory, with its plugin.toml, in {}",
            app.plugins.dir().display()
        ))
    })
}

/// The manifest of an installed plugin whose `plugin.toml` can be used.
async fn plugin_manifest(app: &App, id: &str) -> Result<hearth_plugin::manifest::Manifest, ApiError> {
    plugin_view(app, id).await?;
    match app.plugins.manifest(id) {
        Some(Ok(m)) => Ok(m),
        Some(Err(problem)) => Err(ApiError::new(StatusCode::CONFLICT, "plugin_invalid", problem)),
        None => Err(ApiError::not_found(format!("no plugin `{id}` is installed"))),
    }
}

async fn plugin(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    Reply::json(&plugin_view(&app, &id).await?)
}

/// `POST /api/v1/plugins/{id}/enable`: refused while its configuration does not fit its schema.
async fn plugin_enable(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    let manifest = plugin_manifest(&app, &id).await?;
    let entered = plugin_view(&app, &id).await?.config;
    manifest.validate_config(&entered).map_err(|e| {
        ApiError::bad_request(
            "invalid_config",
            format!(
                "plugin `{id}` cannot start with its configuration: {e}; set it with PUT /api/v1/plugins/{id}/config"
            ),
        )
    })?;
    set_plugin_enabled(&app, id, true).await
}

async fn plugin_disable(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    plugin_view(&app, &id).await?;
    set_plugin_enabled(&app, id, false).await
}

/// Stores whether a plugin runs, has the host apply it, and answers with the plugin.
async fn set_plugin_enabled(app: &App, id: String, enabled: bool) -> Result<Reply, ApiError> {
    let key = id.clone();
    write(app, move |c| Ok(crate::plugins::set_enabled(c, &key, enabled).map_err(StoreError::from)?)).await?;
    app.plugins.apply().await;
    Reply::json(&plugin_view(app, &id).await?)
}

/// `PUT /api/v1/plugins/{id}/config` with the whole configuration as a JSON object: checked
/// against the schema of its `plugin.toml`, stored as entered, and sent to the running plugin.
async fn plugin_config(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.params.first().cloned().unwrap_or_default();
    let manifest = plugin_manifest(&app, &id).await?;
    let config: serde_json::Value = req.json()?;
    if !config.is_object() {
        return Err(ApiError::bad_request("invalid_body", "a plugin's configuration is a JSON object of its settings"));
    }
    manifest
        .validate_config(&config)
        .map_err(|e| ApiError::bad_request("invalid_config", format!("plugin `{id}`: {e}")))?;
    let key = id.clone();
    write(&app, move |c| Ok(crate::plugins::set_config(c, &key, &config).map_err(StoreError::from)?)).await?;
    app.plugins.apply().await;
    Reply::json(&plugin_view(&app, &id).await?)
}

/// `GET /api/v1/inbox`: `{"entries": [...]}`, what is new and what was ignored; with
/// `?all=true` also what was accepted.
async fn inbox(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    if let Some(key) = req.query.keys().find(|k| *k != "all") {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("unknown query parameter `{key}`; this route takes all"),
        ));
    }
    let all = match req.query.get("all").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request("invalid_query", format!("`all` is true or false, not `{other}`")));
        }
    };
    let entries: Vec<hearth_sdk::InboxEntry> =
        app.core.inbox().await?.into_iter().filter(|e| all || e.status != hearth_sdk::InboxStatus::Accepted).collect();
    Reply::json(&serde_json::json!({ "entries": entries }))
}

async fn inbox_decide(app: &App, req: &Req, decision: Option<hearth_sdk::Decision>) -> Result<Reply, ApiError> {
    let adapter = req.params.first().cloned().unwrap_or_default();
    let key = req.params.get(1).cloned().unwrap_or_default();
    match app.core.decide(adapter, key, decision).await? {
        Some(entry) => Reply::json(&entry),
        None => Ok(Reply::Empty),
    }
}

async fn inbox_accept(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    inbox_decide(&app, &req, Some(hearth_sdk::Decision::Accepted)).await
}

async fn inbox_ignore(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    inbox_decide(&app, &req, Some(hearth_sdk::Decision::Ignored)).await
}

async fn inbox_forget(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    inbox_decide(&app, &req, None).await
}

async fn adapters(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.core.adapters().await?)
}

async fn action(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let adapter = req.params.first().cloned().unwrap_or_default();
    let action = req.params.get(1).cloned().unwrap_or_default();
    let params: serde_json::Value = if req.body.is_empty() { serde_json::json!({}) } else { req.json()? };
    if !params.is_object() {
        return Err(ApiError::bad_request("invalid_body", "the action's parameters must be a JSON object"));
    }
    let user = req.user()?.name.clone();
    let answer = app.core.action(adapter.clone(), action.clone(), params, Origin::User { name: user }).await?;
    match tokio::time::timeout(ACTION_TIMEOUT, answer).await {
        Ok(Ok(Ok(result))) => Reply::json(&serde_json::json!({"result": result})),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "adapter_not_running",
            format!("adapter `{adapter}` stopped before answering `{action}`"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "adapter_timeout",
            format!("adapter `{adapter}` did not answer `{action}` within {} seconds", ACTION_TIMEOUT.as_secs()),
        )),
    }
}
