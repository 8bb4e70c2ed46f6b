//! The HTTP server: REST API, WebSocket, `/healthz`, `/metrics` and the embedded web UI.
//!
//! Every route is a row of one table ([`routes::ROUTES`]) with its access level. Requests are
//! dispatched through that table only, and authentication is checked from the row before any
//! handler runs, so a new route is authenticated unless it is deliberately marked public; tests
//! walk the same table. The allow-list of public rows: `/healthz`, onboarding, login. The
//! WebSocket authenticates with its first message; static UI files need no token.
//!
//! A request authenticates with `Authorization: Bearer <token>` or the session cookie. A
//! state-changing request authenticated by the cookie must come from this origin (see
//! [`security`]); so must any login or onboarding that names an origin. Rows marked with an audit
//! action are recorded in the audit log when they succeed. Every response carries the headers of
//! [`security::harden`].

pub mod automations;
pub mod routes;
pub mod security;
pub mod ui;
pub mod ws;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use serde::Serialize;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::Response;

use crate::auth::Principal;
use crate::core::{CoreError, CoreHandle, RegistryError};
use crate::store::{Readers, StoreError, StoreWriter};

/// The largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// What handlers share.
#[derive(Debug)]
pub struct App {
    /// The core.
    pub core: CoreHandle,
    /// The automation engine.
    pub automations: crate::automations::AutomationsHandle,
    /// The store's writer (accounts, tokens).
    pub writer: StoreWriter,
    /// Read-only database connections.
    pub readers: Readers,
    /// When the hub started.
    pub started: Instant,
    /// Where the built-in broker listens, if it runs.
    pub broker: Option<SocketAddr>,
    /// Whether the home's location is configured (sun triggers need it).
    pub location: bool,
    /// Sessions, cookies, trusted proxies and the login throttle (`[http]`).
    pub security: security::Security,
    /// Adapters' secrets, sealed.
    pub secrets: Arc<crate::secrets::SecretStore>,
    /// The plugin host.
    pub plugins: crate::plugins::PluginsHandle,
    /// The cloud link's status.
    pub cloud: crate::cloud::CloudHandle,
}

/// An API error: JSON `{"error": {"code", "message", "details"}}` with a status code.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// Facts behind the message.
    pub details: serde_json::Value,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: serde_json::json!({}) }
    }

    /// 400 with a code and message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a thing by name.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this route needs a valid token or session: send `Authorization: Bearer <token>` or the session \
             cookie; get one with POST /api/v1/auth/login or `hearth token create --user NAME`",
        )
    }

    /// 403 for a member on an administrator's route.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403 for a request that a cookie authenticates but that comes from another origin.
    pub fn cross_site() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_site",
            "this request carries the session cookie but does not come from this hub's own pages \
             (its Origin or Referer names another host, or it names none); API clients send \
             `Authorization: Bearer <token>` instead",
        )
    }

    /// 429 with the time to wait (also sent as `Retry-After`).
    pub fn too_many_attempts(locked: crate::throttle::Locked) -> ApiError {
        let secs = locked.retry_after_secs();
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins for this {}: try again in {secs} seconds", locked.scope.name()),
        );
        e.details = serde_json::json!({"retry_after_secs": secs, "scope": locked.scope.name()});
        e
    }

    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut r = warp::Reply::into_response(warp::reply::with_status(warp::reply::json(&body), self.status));
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer".parse()
        {
            r.headers_mut().insert("www-authenticate", v);
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS
            && let Some(secs) = self.details["retry_after_secs"].as_u64()
            && let Ok(v) = secs.to_string().parse()
        {
            r.headers_mut().insert("retry-after", v);
        }
        r
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Registry(RegistryError::NoDevice(_)) => ApiError::not_found(e.to_string()),
            CoreError::Registry(RegistryError::NoArea(_)) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            CoreError::Registry(RegistryError::BadName(m)) => ApiError::bad_request("invalid_name", m),
            CoreError::Registry(RegistryError::ToggleUnknown(_)) => {
                ApiError::new(StatusCode::CONFLICT, "state_unknown", e.to_string())
            }
            CoreError::Registry(RegistryError::Command(c)) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: c.code(),
                message: c.to_string(),
                details: c.details(),
            },
            CoreError::AdapterNotRunning { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "adapter_not_running", e.to_string())
            }
            CoreError::AdapterBusy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "adapter_busy", e.to_string()),
            CoreError::UnknownAdapter(_) => ApiError::not_found(e.to_string()),
            CoreError::UnknownAction { ref known, .. } => {
                let mut err = ApiError::not_found(e.to_string());
                err.details = serde_json::json!({"actions": known});
                err
            }
            CoreError::Store(s) => ApiError::from(s),
            CoreError::Inbox(crate::inbox::InboxError::NotFound { .. }) => ApiError::not_found(e.to_string()),
            CoreError::Inbox(crate::inbox::InboxError::Unsupported(_)) => {
                ApiError::new(StatusCode::CONFLICT, "unsupported", e.to_string())
            }
            CoreError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", e.to_string()),
        }
    }
}

impl From<hearth_sdk::ActionError> for ApiError {
    fn from(e: hearth_sdk::ActionError) -> Self {
        use hearth_sdk::ActionError as A;
        let (status, code) = match &e {
            A::BadParams(_) => (StatusCode::BAD_REQUEST, "invalid_params"),
            A::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            A::Failed(_) => (StatusCode::BAD_GATEWAY, "adapter_error"),
            A::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "adapter_timeout"),
            A::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "adapter_unavailable"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "A request failed on the database.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", e.to_string())
    }
}

/// A successful reply: a status and a JSON or text body.
pub enum Reply {
    /// JSON, already written out: a list of 10,000 devices went through a JSON tree of 60 MB
    /// when it was built as a `serde_json::Value` first.
    Json(StatusCode, String),
    /// Plain text with a content type.
    Text(&'static str, String),
    /// No content.
    Empty,
    /// A download: content type, file name, and the bytes as they come.
    Download(&'static str, String, tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>),
    /// Another reply with extra headers (`Set-Cookie`).
    Headers(Box<Reply>, Vec<(&'static str, String)>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Json(s, v) => f.debug_tuple("Json").field(s).field(&v.len()).finish(),
            Reply::Text(ct, body) => f.debug_tuple("Text").field(ct).field(&body.len()).finish(),
            Reply::Empty => f.write_str("Empty"),
            Reply::Download(ct, name, _) => f.debug_tuple("Download").field(ct).field(name).finish(),
            // Header values may be session cookies: never printed.
            Reply::Headers(r, h) => {
                f.debug_tuple("Headers").field(r).field(&h.iter().map(|(k, _)| *k).collect::<Vec<_>>()).finish()
            }
        }
    }
}

impl Reply {
    /// 200 with this value as JSON.
    pub fn json<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
        Self::status(StatusCode::OK, value)
    }

    /// This status with this value as JSON.
    pub fn status<T: Serialize>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
        serde_json::to_string(value)
            .map(|v| Reply::Json(status, v))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
    }

    /// This reply with a header added.
    pub fn with_header(self, name: &'static str, value: String) -> Reply {
        match self {
            Reply::Headers(r, mut h) => {
                h.push((name, value));
                Reply::Headers(r, h)
            }
            r => Reply::Headers(Box::new(r), vec![(name, value)]),
        }
    }

    /// The JSON body, if there is one, read back (only the audit log asks, for small replies).
    fn body(&self) -> Option<serde_json::Value> {
        match self {
            Reply::Json(_, v) => serde_json::from_str(v).ok(),
            Reply::Headers(r, _) => r.body(),
            _ => None,
        }
    }

    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, v) => warp::Reply::into_response(warp::reply::with_status(
                warp::reply::with_header(v, "content-type", "application/json"),
                status,
            )),
            Reply::Text(ct, body) => warp::Reply::into_response(warp::reply::with_header(body, "content-type", ct)),
            Reply::Empty => warp::Reply::into_response(StatusCode::NO_CONTENT),
            Reply::Download(ct, name, rx) => {
                let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
                let mut r = warp::Reply::into_response(warp::reply::stream(stream));
                let h = r.headers_mut();
                if let Ok(v) = ct.parse() {
                    h.insert("content-type", v);
                }
                if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
                    h.insert("content-disposition", v);
                }
                if let Ok(v) = "no-store".parse() {
                    h.insert("cache-control", v);
                }
                r
            }
            Reply::Headers(inner, headers) => {
                let mut r = inner.into_response();
                for (k, v) in headers {
                    if let Ok(v) = warp::http::HeaderValue::from_str(&v) {
                        r.headers_mut().append(k, v);
                    }
                }
                r
            }
        }
    }
}

/// A request as handlers see it.
#[derive(Debug)]
pub struct Req {
    /// The signed-in user (`None` on public routes without a token).
    pub principal: Option<Principal>,
    /// Path parameters, in order, percent-decoded.
    pub params: Vec<String>,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// The body.
    pub body: Bytes,
    /// The client's address (the peer, or what a trusted proxy says).
    pub ip: Option<IpAddr>,
    /// Whether the request came over TLS (cookies get `Secure`).
    pub tls: bool,
}

impl Req {
    /// The body as JSON of type `T`, with a clear error.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("invalid_body", "the request needs a JSON body"));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request("invalid_body", format!("the JSON body is not valid: {e}")))
    }

    /// The principal (present on every authenticated route).
    pub fn user(&self) -> Result<&Principal, ApiError> {
        self.principal.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// Refuses a device this user may not see with the same 404 as a device that does not
    /// exist, so a member learns nothing about other areas.
    pub fn check_device(&self, device: &hearth_sdk::Device) -> Result<(), ApiError> {
        if self.user()?.sees(device.area.as_deref()) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("no device `{}`", device.id)))
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Matches a path against a pattern like `/api/v1/devices/{id}`; returns the parameters.
pub fn match_path(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut p = pattern.trim_end_matches('/').split('/');
    let mut s = path.trim_end_matches('/').split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(params),
            (Some(pp), Some(ss)) if pp.starts_with('{') => {
                if ss.is_empty() {
                    return None;
                }
                params.push(percent_decode(ss)?);
            }
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Looks up the principal for a token; an expired one is refused and deleted.
pub async fn principal_for(app: &App, token: String) -> Result<Option<Principal>, ApiError> {
    principal_of(app, token, false).await
}

/// [`principal_for`]; `session_only` refuses API tokens (a cookie may only carry a session).
async fn principal_of(app: &App, token: String, session_only: bool) -> Result<Option<Principal>, ApiError> {
    let found =
        app.readers.with(move |c| crate::auth::lookup(c, &token).map_err(|e| StoreError::Write(e.to_string()))).await?;
    match found {
        crate::auth::Lookup::Valid(p) if p.session || !session_only => Ok(Some(p)),
        crate::auth::Lookup::Valid(_) | crate::auth::Lookup::Unknown => Ok(None),
        crate::auth::Lookup::Expired(id) => {
            app.writer
                .exec(move |c| {
                    c.execute("DELETE FROM tokens WHERE id = ?1", [id])?;
                    Ok(())
                })
                .await?;
            Ok(None)
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Bearer,
    Cookie,
    Nothing,
}

/// The principal of a request: its bearer token, else its session cookie.
async fn authenticate(app: &App, headers: &HeaderMap) -> Result<(Option<Principal>, Via), ApiError> {
    if let Some(token) = bearer(headers) {
        return Ok((principal_of(app, token, false).await?, Via::Bearer));
    }
    if let Some(token) = security::cookie(headers, security::SESSION_COOKIE) {
        let p = principal_of(app, token, true).await?;
        let via = if p.is_some() { Via::Cookie } else { Via::Nothing };
        return Ok((p, via));
    }
    Ok((None, Via::Nothing))
}

/// The session token of a WebSocket upgrade's cookie, if it is a valid session now.
pub async fn cookie_session(app: &App, headers: &HeaderMap) -> Option<String> {
    let token = security::cookie(headers, security::SESSION_COOKIE)?;
    principal_of(app, token.clone(), true).await.ok().flatten().map(|_| token)
}

struct Request {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    body: Bytes,
}

async fn dispatch(app: Arc<App>, request: Request) -> Response {
    crate::metrics::HTTP_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match dispatch_inner(app, request).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(app: Arc<App>, request: Request) -> Result<Reply, ApiError> {
    let Request { method, path, query, headers, peer, body } = request;
    let path = path.as_str();
    let matches: Vec<(&routes::Route, Vec<String>)> =
        routes::ROUTES.iter().filter_map(|r| match_path(r.path, path).map(|p| (r, p))).collect();
    let hit = matches.iter().find(|(r, _)| r.method == method.as_str());
    // Authenticate before revealing anything about the route, unless the route is public.
    let public = hit.is_some_and(|(r, _)| r.access == routes::Access::Public);
    let (principal, via) = authenticate(&app, &headers).await?;
    if !public && principal.is_none() {
        return Err(ApiError::unauthorized());
    }
    let Some((route, params)) = hit else {
        if matches.is_empty() {
            return Err(ApiError::not_found(format!("no route {path}; the API is described in the README")));
        }
        let allowed: Vec<&str> = matches.iter().map(|(r, _)| r.method).collect();
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not take {method}; it takes {}", allowed.join(", ")),
        );
        e.details = serde_json::json!({"allowed": allowed});
        return Err(e);
    };
    // Cross-site requests: a state change the cookie authenticates must come from this origin;
    // a login or onboarding from a page that names another origin is refused too.
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if changes {
        let origin = security::same_origin(&headers);
        let refused = match via {
            Via::Cookie => origin != Some(true),
            Via::Bearer => false,
            Via::Nothing => public && origin == Some(false),
        };
        if refused {
            return Err(ApiError::cross_site());
        }
    }
    if route.access == routes::Access::Admin && !principal.as_ref().is_some_and(|p| p.admin) {
        return Err(ApiError::forbidden("this route needs an administrator account"));
    }
    let query: HashMap<String, String> = serde_urlencoded::from_str(&query)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("the query string is not valid: {e}")))?;
    let ip = app.security.client_ip(peer, &headers);
    let tls = app.security.tls(&headers);
    let actor = principal.as_ref().map(|p| p.name.clone());
    let req = Req { principal, params: params.clone(), query, body, ip, tls };
    let reply = (route.handler)(app.clone(), req).await?;
    if let Some(action) = route.audit {
        let entry = routes::audit_entry(action, actor.as_deref(), params, reply.body().as_ref()).ip(ip);
        if let Err(e) = app.writer.exec(move |c| crate::audit::record(c, &entry)).await {
            tracing::error!(error = %e, action, "An audit log entry could not be written.");
        }
    }
    Ok(reply)
}

async fn read_body(
    mut stream: impl futures_util::Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Bytes, warp::Rejection> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| warp::reject::reject())?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(warp::reject::custom(TooLarge));
        }
        while chunk.has_remaining() {
            let c = chunk.chunk();
            out.extend_from_slice(c);
            let n = c.len();
            chunk.advance(n);
        }
    }
    Ok(Bytes::from(out))
}

#[derive(Debug)]
struct TooLarge;
impl warp::reject::Reject for TooLarge {}

async fn recover(r: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    let e = if r.find::<TooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    } else if r.is_not_found() {
        ApiError::not_found("not found")
    } else {
        ApiError::bad_request("bad_request", format!("the request could not be read: {r:?}"))
    };
    Ok(e.into_response())
}

/// Every filter of the server.
pub fn filter(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let with_app = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let ws = warp::path!("api" / "v1" / "ws")
        .and(warp::ws())
        .and(with_app.clone())
        .and(warp::header::headers_cloned())
        .then(|ws: warp::ws::Ws, app: Arc<App>, headers: HeaderMap| async move {
            // A page of another origin must not open a socket with this hub's cookie.
            if security::foreign_origin(&headers) {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "cross_site",
                    "this WebSocket was opened from a page of another origin",
                )
                .into_response();
            }
            let cookie = cookie_session(&app, &headers).await;
            warp::Reply::into_response(ws.max_message_size(MAX_BODY).on_upgrade(move |s| ws::session(app, s, cookie)))
        });
    let table = warp::any()
        .and(warp::path::full())
        .and_then(|p: warp::path::FullPath| async move {
            let s = p.as_str();
            if routes::ROUTES.iter().any(|r| r.path.split('/').nth(1) == s.split('/').nth(1)) {
                Ok(s.to_owned())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .and(with_app)
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream().and_then(read_body))
        .then(
            |path: String,
             app: Arc<App>,
             method: Method,
             query: String,
             headers: HeaderMap,
             peer: Option<SocketAddr>,
             body: Bytes| { dispatch(app, Request { method, path, query, headers, peer, body }) },
        );
    ws.or(table).unify().or(ui::filter()).unify().recover(recover).unify().map(security::harden)
}

/// Serves until `shutdown` resolves; returns the bound address through `bound`.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    warp::serve(filter(app)).incoming(listener).graceful(shutdown).run().await;
}
