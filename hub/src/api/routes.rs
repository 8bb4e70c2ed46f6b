//! The route table and its handlers: every HTTP route of the hub, with its access level.

use std::sync::Arc;

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
    pub(super) handler: Handler,
}

macro_rules! route {
    ($method:literal, $path:literal, $access:ident, $summary:literal, $handler:path) => {
        Route {
            method: $method,
            path: $path,
            access: Access::$access,
            summary: $summary,
            handler: |app, req| Box::pin($handler(app, req)),
        }
    };
}

/// Every route the hub serves. The WebSocket (`GET /api/v1/ws`) is served beside this table: it
/// authenticates with its first message.
pub static ROUTES: &[Route] = &[
    route!("GET", "/healthz", Public, "liveness and version", healthz),
    route!("GET", "/metrics", User, "Prometheus metrics", metrics),
    route!("GET", "/api/v1/onboarding", Public, "whether the first account is still to be created", onboarding_status),
    route!("POST", "/api/v1/onboarding", Public, "create the first account (an administrator)", onboarding),
    route!("POST", "/api/v1/auth/login", Public, "exchange name and password for a session token", login),
    route!("POST", "/api/v1/auth/logout", User, "revoke the token of this request", logout),
    route!("GET", "/api/v1/auth/me", User, "the signed-in account", me),
    route!("GET", "/api/v1/devices", User, "every device with its state", devices),
    route!("GET", "/api/v1/devices/{id}", User, "one device", device),
    route!("PATCH", "/api/v1/devices/{id}", User, "rename a device or move it to an area", patch_device),
    route!("DELETE", "/api/v1/devices/{id}", User, "remove a device", delete_device),
    route!("POST", "/api/v1/devices/{id}/commands", User, "send a command", command),
    route!("GET", "/api/v1/devices/{id}/history", User, "state changes and events", history),
    route!("GET", "/api/v1/areas", User, "every area", areas),
    route!("POST", "/api/v1/areas", User, "create an area", create_area),
    route!("PATCH", "/api/v1/areas/{id}", User, "rename or reorder an area", patch_area),
    route!("DELETE", "/api/v1/areas/{id}", User, "remove an area", delete_area),
    route!("GET", "/api/v1/adapters", User, "every adapter with its status", adapters),
    route!("POST", "/api/v1/adapters/{id}/actions/{action}", Admin, "a management action of an adapter", action),
    route!("GET", "/api/v1/automations", User, "every automation with its version and last run", a::list),
    route!("POST", "/api/v1/automations", User, "create an automation (JSON)", a::create),
    route!("POST", "/api/v1/automations/validate", User, "check an automation without saving it", a::check),
    route!("GET", "/api/v1/automations/export", User, "every automation as YAML", a::export),
    route!("POST", "/api/v1/automations/import", User, "create or update automations from YAML", a::import),
    route!("GET", "/api/v1/automations/{id}", User, "one automation", a::get),
    route!("PUT", "/api/v1/automations/{id}", User, "replace an automation (a new version)", a::replace),
    route!("DELETE", "/api/v1/automations/{id}", User, "delete an automation with its versions and traces", a::delete),
    route!("GET", "/api/v1/automations/{id}/yaml", User, "one automation as YAML", a::yaml),
    route!("POST", "/api/v1/automations/{id}/enable", User, "turn an automation on", a::enable),
    route!("POST", "/api/v1/automations/{id}/disable", User, "turn an automation off (its runs stop)", a::disable),
    route!("POST", "/api/v1/automations/{id}/trigger", User, "run an automation now", a::trigger),
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
    route!("POST", "/api/v1/automations/{id}/rollback", User, "save an earlier version as the newest", a::rollback),
    route!("GET", "/api/v1/automation-runs", User, "runs going or waiting now", a::runs),
    route!("POST", "/api/v1/webhooks/{id}", User, "call a webhook trigger", a::webhook),
    route!("GET", "/api/v1/scenes", User, "every scene", a::scenes),
    route!(
        "POST",
        "/api/v1/scenes",
        User,
        "create a scene, or capture one from devices' current state",
        a::create_scene
    ),
    route!("GET", "/api/v1/scenes/{id}", User, "one scene", a::scene),
    route!("PUT", "/api/v1/scenes/{id}", User, "replace a scene", a::replace_scene),
    route!("DELETE", "/api/v1/scenes/{id}", User, "delete a scene", a::delete_scene),
    route!("POST", "/api/v1/scenes/{id}/apply", User, "apply a scene as one batch", a::apply_scene),
];

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
    Ok(Reply::Text("text/plain; version=0.0.4", crate::metrics::render(&app)))
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
        auth::AuthError::BadName | auth::AuthError::WeakPassword => {
            ApiError::bad_request("invalid_account", e.to_string())
        }
        auth::AuthError::NoUser(_) | auth::AuthError::NoToken(_) => ApiError::not_found(e.to_string()),
        auth::AuthError::Hash(_) | auth::AuthError::Store(_) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        }
    }
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(auth_error)
}

async fn onboarding(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let c: Credentials = req.json()?;
    auth::check_name(&c.name).map_err(auth_error)?;
    let hashed = hash(c.password).await?;
    let name = c.name.clone();
    let token = app
        .writer
        .exec(move |conn| {
            let r = auth::onboard(conn, &name, &hashed).and_then(|_| auth::create_token(conn, &name, "web", "session"));
            Ok(r)
        })
        .await?
        .map_err(auth_error)?;
    tracing::info!(user = %c.name, "The first account was created.");
    Reply::status(StatusCode::CREATED, &serde_json::json!({"token": token.1, "user": {"name": c.name, "admin": true}}))
}

async fn login(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let c: Credentials = req.json()?;
    let name = c.name.clone();
    let found = app
        .readers
        .with(move |conn| auth::find_user(conn, &name).map_err(|e| StoreError::Write(e.to_string())))
        .await?;
    let (hash, admin) = match &found {
        Some((_, admin, hash)) => (Some(hash.clone()), *admin),
        None => (None, false),
    };
    let password = c.password.clone();
    // Verify against a dummy hash for unknown names, so both take as long (both off the runtime).
    let ok = tokio::task::spawn_blocking(move || {
        auth::verify_password(hash.as_deref().unwrap_or_else(|| auth::dummy_hash()), &password)
    })
    .await
    .unwrap_or(false);
    if !ok || found.is_none() {
        tracing::warn!(user = %c.name, "A login failed.");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "login_failed", "wrong name or password"));
    }
    let name = c.name.clone();
    let (_, token) = app
        .writer
        .exec(move |conn| Ok(auth::create_token(conn, &name, "web", "session")))
        .await?
        .map_err(auth_error)?;
    Reply::json(&serde_json::json!({"token": token, "user": {"name": c.name, "admin": admin}}))
}

async fn logout(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = req.user()?.token_id;
    app.writer.exec(move |conn| Ok(auth::revoke_token(conn, id))).await?.map_err(auth_error)?;
    Ok(Reply::Empty)
}

async fn me(_: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    Reply::json(req.user()?)
}

async fn devices(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.core.snapshot().await?.devices)
}

async fn device(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    match app.core.device(&id).await? {
        Some(d) => Reply::json(&d),
        None => Err(ApiError::not_found(format!("no device `{id}`"))),
    }
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

async fn history(app: Arc<App>, req: Req) -> Result<Reply, ApiError> {
    let id = device_id(&req)?;
    for key in req.query.keys() {
        if !matches!(key.as_str(), "feature" | "from" | "to" | "limit") {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("unknown query parameter `{key}`; this route takes feature, from, to, limit"),
            ));
        }
    }
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
    let Some(device) = app.core.device(&id).await? else {
        return Err(ApiError::not_found(format!("no device `{id}`")));
    };
    if let Some(f) = &q.feature
        && device.feature(f).is_none()
    {
        let known: Vec<&str> = device.features.iter().map(|f| f.key.as_str()).collect();
        return Err(ApiError::bad_request(
            "unknown_feature",
            format!("device `{id}` has no feature `{f}`; its features are: {}", known.join(", ")),
        ));
    }
    let did = id.clone();
    let (entries, truncated) = app.readers.with(move |c| crate::store::history(c, &did, &q)).await?;
    Reply::json(&serde_json::json!({"device": id, "entries": entries, "truncated": truncated}))
}

async fn areas(app: Arc<App>, _: Req) -> Result<Reply, ApiError> {
    Reply::json(&app.core.areas().await?)
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
