//! The HTTP server: REST API, WebSocket, `/healthz`, `/metrics` and the embedded web UI.
//!
//! Every route is a row of one table ([`routes::ROUTES`]) with its access level. Requests are
//! dispatched through that table only, and authentication is checked from the row before any
//! handler runs, so a new route is authenticated unless it is deliberately marked public; tests
//! walk the same table. The allow-list of public rows: `/healthz`, onboarding, login. The
//! WebSocket authenticates with its first message; static UI files need no token.

pub mod automations;
pub mod routes;
pub mod ui;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
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
            "this route needs a valid token: send `Authorization: Bearer <token>`; get one with \
             POST /api/v1/auth/login or `hearth token create --user NAME`",
        )
    }

    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut r = warp::Reply::into_response(warp::reply::with_status(warp::reply::json(&body), self.status));
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Bearer".parse()
        {
            r.headers_mut().insert("www-authenticate", v);
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
#[derive(Debug)]
pub enum Reply {
    /// JSON.
    Json(StatusCode, serde_json::Value),
    /// Plain text with a content type.
    Text(&'static str, String),
    /// No content.
    Empty,
}

impl Reply {
    /// 200 with this value as JSON.
    pub fn json<T: Serialize>(value: &T) -> Result<Reply, ApiError> {
        Self::status(StatusCode::OK, value)
    }

    /// This status with this value as JSON.
    pub fn status<T: Serialize>(status: StatusCode, value: &T) -> Result<Reply, ApiError> {
        serde_json::to_value(value)
            .map(|v| Reply::Json(status, v))
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
    }

    fn into_response(self) -> Response {
        match self {
            Reply::Json(status, v) => {
                warp::Reply::into_response(warp::reply::with_status(warp::reply::json(&v), status))
            }
            Reply::Text(ct, body) => warp::Reply::into_response(warp::reply::with_header(body, "content-type", ct)),
            Reply::Empty => warp::Reply::into_response(StatusCode::NO_CONTENT),
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

/// Looks up the principal for a token.
pub async fn principal_for(app: &App, token: String) -> Result<Option<Principal>, ApiError> {
    app.readers
        .with(move |c| crate::auth::authenticate(c, &token).map_err(|e| StoreError::Write(e.to_string())))
        .await
        .map_err(ApiError::from)
}

async fn dispatch(
    app: Arc<App>,
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::metrics::HTTP_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match dispatch_inner(app, method, &path, &query, &headers, body).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(
    app: Arc<App>,
    method: Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Reply, ApiError> {
    let matches: Vec<(&routes::Route, Vec<String>)> =
        routes::ROUTES.iter().filter_map(|r| match_path(r.path, path).map(|p| (r, p))).collect();
    let hit = matches.iter().find(|(r, _)| r.method == method.as_str());
    // Authenticate before revealing anything about the route, unless the route is public.
    let public = hit.is_some_and(|(r, _)| r.access == routes::Access::Public);
    let principal = match bearer(headers) {
        Some(token) => principal_for(&app, token).await?,
        None => None,
    };
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
    if route.access == routes::Access::Admin && !principal.as_ref().is_some_and(|p| p.admin) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route needs an administrator account"));
    }
    let query: HashMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request("invalid_query", format!("the query string is not valid: {e}")))?;
    let req = Req { principal, params: params.clone(), query, body };
    (route.handler)(app, req).await
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
    let ws = warp::path!("api" / "v1" / "ws").and(warp::ws()).and(with_app.clone()).map(
        |ws: warp::ws::Ws, app: Arc<App>| {
            warp::Reply::into_response(ws.max_message_size(MAX_BODY).on_upgrade(move |s| ws::session(app, s)))
        },
    );
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
        .and(warp::body::stream().and_then(read_body))
        .then(|path: String, app: Arc<App>, method: Method, query: String, headers: HeaderMap, body: Bytes| {
            dispatch(app, method, path, query, headers, body)
        });
    ws.or(table).unify().or(ui::filter()).unify().recover(recover).unify()
}

/// Serves until `shutdown` resolves; returns the bound address through `bound`.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    warp::serve(filter(app)).incoming(listener).graceful(shutdown).run().await;
}
