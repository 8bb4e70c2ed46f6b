//! The WebSocket at `/api/v1/ws`: authenticate with the first message, subscribe, then a full
//! snapshot followed by deltas; commands over the same socket.
//!
//! Protocol (JSON text frames; every client message may carry an `id` echoed in the answer):
//! - client `{"type": "auth", "token": "hearth_…"}` first, within 10 s; server `{"type": "auth_ok",
//!   "user": {...}, "schema_version": 1}` or `{"type": "auth_failed", "message": …}` and close.
//! - client `{"type": "subscribe"}`; server `{"type": "snapshot", "devices": [...], "areas": [...]}`,
//!   then `{"type": "event", "event": {...}}` for every bus event.
//! - client `{"type": "command", "id": 7, "device": "demo:lamp", "set": {...}, "transition": 2}`;
//!   server `{"type": "result", "id": 7, "ok": true, "context": {...}}` or `"ok": false, "error": {...}`.
//! - client `{"type": "ping", "id": 1}`; server `{"type": "pong", "id": 1}`.
//! - a session that falls behind the bus gets a fresh `{"type": "snapshot", "reason": "lagged", …}`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_sdk::{CommandRequest, DeviceId, Event, Origin, SCHEMA_VERSION};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use warp::ws::{Message, WebSocket};

use super::{ApiError, App};
use crate::core::Snapshot;

/// How long a new socket may take to authenticate.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        token: String,
    },
    Subscribe,
    Command {
        #[serde(default)]
        id: Option<serde_json::Value>,
        device: String,
        #[serde(default)]
        set: std::collections::BTreeMap<String, hearth_sdk::Value>,
        #[serde(default)]
        transition: Option<f64>,
        #[serde(default)]
        refresh: Option<hearth_sdk::Refresh>,
        #[serde(default)]
        toggle: Vec<String>,
    },
    Ping {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
}

fn error_json(e: &ApiError) -> serde_json::Value {
    json!({"code": e.code, "message": e.message, "details": e.details})
}

fn snapshot_json(s: &Snapshot, reason: Option<&str>) -> serde_json::Value {
    let mut v = json!({"type": "snapshot", "devices": s.devices, "areas": s.areas});
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    v
}

/// Runs one WebSocket session to its end.
pub async fn session(app: Arc<App>, socket: WebSocket) {
    crate::metrics::WS_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run(app, socket).await;
    crate::metrics::WS_SESSIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn run(app: Arc<App>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let send = |v: serde_json::Value| Message::text(v.to_string());

    // 1. Authentication, first message only.
    let first = tokio::time::timeout(AUTH_TIMEOUT, rx.next()).await;
    let principal = match first {
        Ok(Some(Ok(msg))) if msg.is_text() => match serde_json::from_str::<ClientMessage>(msg.to_str().unwrap_or("")) {
            Ok(ClientMessage::Auth { token }) => super::principal_for(&app, token).await.ok().flatten(),
            _ => None,
        },
        _ => None,
    };
    let Some(principal) = principal else {
        let _ = tx
            .send(send(json!({"type": "auth_failed", "message":
                "the first message must be {\"type\": \"auth\", \"token\": \"<token>\"} with a valid token, within 10 seconds"})))
            .await;
        let _ = tx.close().await;
        return;
    };
    let ok = json!({"type": "auth_ok", "user": principal, "schema_version": SCHEMA_VERSION, "version": env!("CARGO_PKG_VERSION")});
    if tx.send(send(ok)).await.is_err() {
        return;
    }

    // 2. Messages and, once subscribed, bus events.
    let mut events: Option<tokio::sync::broadcast::Receiver<Arc<Event>>> = None;
    loop {
        let bus = async {
            match events.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break };
                if msg.is_close() {
                    break;
                }
                if !msg.is_text() {
                    continue;
                }
                let reply = match serde_json::from_str::<ClientMessage>(msg.to_str().unwrap_or("")) {
                    Ok(ClientMessage::Subscribe) => match app.core.subscribe().await {
                        Ok((snapshot, rx)) => {
                            events = Some(rx);
                            snapshot_json(&snapshot, None)
                        }
                        Err(e) => json!({"type": "error", "error": error_json(&e.into())}),
                    },
                    Ok(ClientMessage::Command { id, device, set, transition, refresh, toggle }) => {
                        let request = CommandRequest { set, transition, refresh, toggle };
                        let r = match DeviceId::parse(&device) {
                            Some(d) => app.core.command(d, request, Origin::User { name: principal.name.clone() }).await.map_err(ApiError::from),
                            None => Err(ApiError::not_found(format!("no device `{device}`"))),
                        };
                        match r {
                            Ok(context) => json!({"type": "result", "id": id, "ok": true, "context": context}),
                            Err(e) => json!({"type": "result", "id": id, "ok": false, "error": error_json(&e)}),
                        }
                    }
                    Ok(ClientMessage::Ping { id }) => json!({"type": "pong", "id": id}),
                    Ok(ClientMessage::Auth { .. }) => json!({"type": "error", "error": {"code": "already_authenticated", "message": "this socket is authenticated already", "details": {}}}),
                    Err(e) => json!({"type": "error", "error": {"code": "invalid_message", "message": format!("the message is not valid: {e}"), "details": {}}}),
                };
                if tx.send(send(reply)).await.is_err() {
                    break;
                }
            }
            ev = bus => {
                let out = match ev {
                    Ok(ev) => json!({"type": "event", "event": &*ev}),
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(missed = n, "A WebSocket session fell behind; sending it a fresh snapshot.");
                        match app.core.subscribe().await {
                            Ok((snapshot, rx)) => {
                                events = Some(rx);
                                snapshot_json(&snapshot, Some("lagged"))
                            }
                            Err(_) => break,
                        }
                    }
                    Err(RecvError::Closed) => break,
                };
                if tx.send(send(out)).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = tx.close().await;
}
