//! The WebSocket at `/api/v1/ws`: authenticate with the first message, subscribe, then a full
//! snapshot followed by deltas; commands over the same socket.
//!
//! The upgrade is refused (403) when its `Origin` names another host than `Host`, so a page of
//! another site cannot open a socket with this hub's cookie.
//!
//! Protocol (JSON text frames; every client message may carry an `id` echoed in the answer):
//! - client `{"type": "auth", "token": "hearth_…"}` first, within 10 s, or `{"type": "auth"}` when
//!   the upgrade request carried a valid session cookie; server `{"type": "auth_ok",
//!   "user": {...}, "schema_version": 1}` or `{"type": "auth_failed", "message": …}` and close.
//! - the session is checked again every [`RECHECK`]: once its token is revoked or expired, the
//!   server sends `{"type": "auth_expired"}` and closes; when the account's role or areas
//!   changed, a subscribed socket gets a fresh `{"type": "snapshot", "reason": "access_changed"}`.
//! - a member limited to some areas sees only their devices and areas, in snapshots and events;
//!   a device that moves out of them arrives as `device_removed`; commands to other devices
//!   answer `not_found`.
//! - client `{"type": "subscribe"}`; server `{"type": "snapshot", "devices": [...], "areas": [...]}`,
//!   then `{"type": "event", "event": {...}}` for every bus event.
//! - client `{"type": "command", "id": 7, "device": "demo:lamp", "set": {...}, "transition": 2}`;
//!   server `{"type": "result", "id": 7, "ok": true, "context": {...}}` or `"ok": false, "error": {...}`.
//! - client `{"type": "ping", "id": 1}`; server `{"type": "pong", "id": 1}`.
//! - a session that falls behind the bus gets a fresh `{"type": "snapshot", "reason": "lagged", …}`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_sdk::{CommandRequest, DeviceId, Event, Origin, SCHEMA_VERSION};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use warp::ws::{Message, WebSocket};

use super::{ApiError, App};
use crate::auth::Principal;
use crate::core::Snapshot;

/// How long a new socket may take to authenticate.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an open socket's token is checked again (revoked, expired, role or areas changed).
pub const RECHECK: Duration = Duration::from_secs(30);
/// The most events written to a session before one flush.
const BURST: usize = 256;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Auth {
        #[serde(default)]
        token: Option<String>,
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

/// Reads one client message as the socket does: its `type`, and for a command the request the
/// socket would check. Only for the fuzz targets (`fuzz/`), which cannot reach the private type.
#[doc(hidden)]
pub fn parse_client_message(text: &str) -> Result<(&'static str, Option<CommandRequest>), String> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Auth { .. }) => Ok(("auth", None)),
        Ok(ClientMessage::Subscribe) => Ok(("subscribe", None)),
        Ok(ClientMessage::Command { set, transition, refresh, toggle, .. }) => {
            Ok(("command", Some(CommandRequest { set, transition, refresh, toggle })))
        }
        Ok(ClientMessage::Ping { .. }) => Ok(("ping", None)),
        Err(e) => Err(e.to_string()),
    }
}

fn error_json(e: &ApiError) -> serde_json::Value {
    json!({"code": e.code, "message": e.message, "details": e.details})
}

/// What one user may see: every device and area, or a member's areas only.
struct View {
    principal: Principal,
    /// The devices of the last snapshot and events this user may see (limited users only).
    visible: HashSet<DeviceId>,
}

impl View {
    fn new(principal: Principal) -> View {
        View { principal, visible: HashSet::new() }
    }

    fn snapshot(&mut self, s: &Snapshot, reason: Option<&str>) -> serde_json::Value {
        let p = &self.principal;
        let devices: Vec<&hearth_sdk::Device> = s.devices.iter().filter(|d| p.sees(d.area.as_deref())).collect();
        let areas: Vec<&hearth_sdk::Area> = s.areas.iter().filter(|a| p.sees(Some(&a.id))).collect();
        self.visible = devices.iter().map(|d| d.id.clone()).collect();
        let mut v = json!({"type": "snapshot", "devices": devices, "areas": areas});
        if let Some(r) = reason {
            v["reason"] = json!(r);
        }
        v
    }

    /// The message for a bus event, or nothing when this user may not see it. Written straight
    /// to text: at thousands of events a second, building a JSON tree first showed in profiles.
    fn event(&mut self, ev: &Event) -> Option<String> {
        #[derive(serde::Serialize)]
        struct EventMessage<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            event: &'a Event,
        }
        let wrap = |ev: &Event| serde_json::to_string(&EventMessage { kind: "event", event: ev }).ok();
        // The discovery inbox is the administrators'.
        if matches!(ev, Event::InboxChanged { .. } | Event::InboxRemoved { .. }) && !self.principal.admin {
            return None;
        }
        if !self.principal.limited() {
            return wrap(ev);
        }
        match ev {
            Event::DeviceAdded { device } | Event::DeviceUpdated { device } => {
                if self.principal.sees(device.area.as_deref()) {
                    self.visible.insert(device.id.clone());
                    wrap(ev)
                } else if self.visible.remove(&device.id) {
                    wrap(&Event::DeviceRemoved { device: device.id.clone() })
                } else {
                    None
                }
            }
            Event::DeviceRemoved { device } => self.visible.remove(device).then(|| wrap(ev)).flatten(),
            Event::StateChanged { device, .. }
            | Event::DeviceEvent { device, .. }
            | Event::AvailabilityChanged { device, .. } => self.visible.contains(device).then(|| wrap(ev)).flatten(),
            Event::AreaUpdated { area } => self.principal.sees(Some(&area.id)).then(|| wrap(ev)).flatten(),
            Event::AreaRemoved { area } => self.principal.sees(Some(area)).then(|| wrap(ev)).flatten(),
            _ => wrap(ev),
        }
    }
}

/// Runs one WebSocket session to its end. `cookie` is the session token the upgrade request's
/// cookie carried, if it was valid then.
pub async fn session(app: Arc<App>, socket: WebSocket, cookie: Option<String>) {
    crate::metrics::WS_SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run(app, socket, cookie).await;
    crate::metrics::WS_SESSIONS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
}

async fn run(app: Arc<App>, socket: WebSocket, cookie: Option<String>) {
    let (mut tx, mut rx) = socket.split();
    let send = |v: serde_json::Value| Message::text(v.to_string());

    // 1. Authentication, first message only.
    let first = tokio::time::timeout(AUTH_TIMEOUT, rx.next()).await;
    let token = match first {
        Ok(Some(Ok(msg))) if msg.is_text() => match serde_json::from_str::<ClientMessage>(msg.to_str().unwrap_or("")) {
            Ok(ClientMessage::Auth { token }) => token.or(cookie),
            _ => None,
        },
        _ => None,
    };
    let principal = match &token {
        Some(t) => super::principal_for(&app, t.clone()).await.ok().flatten(),
        None => None,
    };
    let (Some(token), Some(principal)) = (token, principal) else {
        let _ = tx
            .send(send(json!({"type": "auth_failed", "message":
                "the first message must be {\"type\": \"auth\", \"token\": \"<token>\"} with a valid token (or {\"type\": \"auth\"} with a session cookie), within 10 seconds"})))
            .await;
        let _ = tx.close().await;
        return;
    };
    let ok = json!({"type": "auth_ok", "user": principal, "schema_version": SCHEMA_VERSION, "version": env!("CARGO_PKG_VERSION")});
    if tx.send(send(ok)).await.is_err() {
        return;
    }
    let mut view = View::new(principal);

    // 2. Messages and, once subscribed, bus events.
    let mut events: Option<tokio::sync::broadcast::Receiver<Arc<Event>>> = None;
    let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
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
                            view.snapshot(&snapshot, None)
                        }
                        Err(e) => json!({"type": "error", "error": error_json(&e.into())}),
                    },
                    Ok(ClientMessage::Command { id, device, set, transition, refresh, toggle }) => {
                        let request = CommandRequest { set, transition, refresh, toggle };
                        let r = command(&app, &view.principal, &device, request).await;
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
                    Ok(ev) => {
                        // What else the bus holds already goes out with it, flushed once: one
                        // write for a burst instead of one per event.
                        let mut burst: Vec<String> = view.event(&ev).into_iter().collect();
                        if let Some(rx) = events.as_mut() {
                            while burst.len() < BURST {
                                match rx.try_recv() {
                                    Ok(ev) => burst.extend(view.event(&ev)),
                                    // Lagged or closed: the next receive says so and is handled there.
                                    Err(_) => break,
                                }
                            }
                        }
                        let n = burst.len();
                        let mut sent = true;
                        for (i, text) in burst.into_iter().enumerate() {
                            let msg = Message::text(text);
                            let r = if i + 1 == n { tx.send(msg).await } else { tx.feed(msg).await };
                            if r.is_err() {
                                sent = false;
                                break;
                            }
                        }
                        if !sent {
                            break;
                        }
                        continue;
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::info!(missed = n, "A WebSocket session fell behind; sending it a fresh snapshot.");
                        match app.core.subscribe().await {
                            Ok((snapshot, rx)) => {
                                events = Some(rx);
                                view.snapshot(&snapshot, Some("lagged"))
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
            _ = recheck.tick() => {
                match super::principal_for(&app, token.clone()).await {
                    Ok(Some(p)) => {
                        if p.admin != view.principal.admin || p.areas != view.principal.areas {
                            view.principal = p;
                            if events.is_some() {
                                match app.core.subscribe().await {
                                    Ok((snapshot, rx)) => {
                                        events = Some(rx);
                                        let v = view.snapshot(&snapshot, Some("access_changed"));
                                        if tx.send(send(v)).await.is_err() {
                                            break;
                                        }
                                    }
                                    Err(_) => break,
                                }
                            }
                        }
                    }
                    Ok(None) => {
                        let _ = tx.send(send(json!({"type": "auth_expired", "message": "this session has ended: log in again"}))).await;
                        break;
                    }
                    // The database is busy or failing: keep the socket, check again later.
                    Err(_) => {}
                }
            }
        }
    }
    let _ = tx.close().await;
}

/// A command over the socket; devices beyond a member's areas are as absent as unknown ones.
async fn command(
    app: &App,
    principal: &Principal,
    device: &str,
    request: CommandRequest,
) -> Result<hearth_sdk::Context, ApiError> {
    let Some(id) = DeviceId::parse(device) else {
        return Err(ApiError::not_found(format!("no device `{device}`")));
    };
    if principal.limited() {
        let d = app.core.device(&id).await?;
        if !d.is_some_and(|d| principal.sees(d.area.as_deref())) {
            return Err(ApiError::not_found(format!("no device `{id}`")));
        }
    }
    Ok(app.core.command(id, request, Origin::User { name: principal.name.clone() }).await?)
}

#[cfg(test)]
mod tests {
    use hearth_sdk::{Area, Context, Device, DeviceDescriptor, Timestamp, Value};

    use super::*;

    fn device(id: &str, area: Option<&str>) -> Device {
        let mut d = Device::from_descriptor(DeviceDescriptor::new(DeviceId::new("demo", id), id, Vec::new()));
        d.area = area.map(str::to_owned);
        d
    }

    fn member(areas: &[&str]) -> Principal {
        Principal {
            user_id: 2,
            name: "kid".into(),
            role: "member",
            admin: false,
            areas: areas.iter().map(|a| (*a).to_owned()).collect(),
            token_id: 1,
            session: true,
        }
    }

    fn changed(id: &str) -> Event {
        Event::StateChanged {
            device: DeviceId::new("demo", id),
            feature: "state".into(),
            old: None,
            new: Value::Bool(true),
            at: Timestamp::from_millis(1),
            context: Context::new("c", Origin::User { name: "owner".into() }),
        }
    }

    #[test]
    fn a_member_limited_to_areas_sees_only_them_in_snapshots_and_events() {
        let snapshot = Snapshot {
            devices: vec![device("stove", Some("kitchen")), device("lamp", Some("living")), device("loose", None)],
            areas: vec![
                Area { id: "kitchen".into(), name: "Kitchen".into(), order: 0 },
                Area { id: "living".into(), name: "Living".into(), order: 1 },
            ],
        };
        let mut view = View::new(member(&["kitchen"]));
        let s = view.snapshot(&snapshot, None);
        assert_eq!(s["devices"].as_array().map(Vec::len), Some(1));
        assert_eq!(s["areas"], json!([{"id": "kitchen", "name": "Kitchen", "order": 0}]));
        assert!(view.event(&changed("stove")).is_some());
        assert!(view.event(&changed("lamp")).is_none());
        assert!(view.event(&changed("loose")).is_none());
        assert!(view.event(&Event::AreaRemoved { area: "living".into() }).is_none());
        // A device moving out of the member's areas is removed for it; moving in, it appears.
        let out = view.event(&Event::DeviceUpdated { device: device("stove", Some("living")) }).expect("removal");
        let out: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(out["type"], "event");
        assert_eq!(out["event"], json!({"type": "device_removed", "device": "demo:stove"}));
        assert!(view.event(&changed("stove")).is_none());
        assert!(view.event(&Event::DeviceUpdated { device: device("lamp", Some("kitchen")) }).is_some());
        assert!(view.event(&changed("lamp")).is_some());
        assert!(view.event(&Event::DeviceRemoved { device: DeviceId::new("demo", "stove") }).is_none());

        // No areas: everything.
        let mut all = View::new(member(&[]));
        assert_eq!(all.snapshot(&snapshot, None)["devices"].as_array().map(Vec::len), Some(3));
        assert!(all.event(&changed("loose")).is_some());
    }

    #[test]
    fn only_administrators_hear_of_the_inbox() {
        let removed = Event::InboxRemoved { adapter: "demo".into(), key: "desk_plug".into() };
        assert!(View::new(member(&[])).event(&removed).is_none());
        assert!(View::new(member(&["kitchen"])).event(&removed).is_none());
        let admin = Principal { admin: true, role: "admin", ..member(&[]) };
        let out: serde_json::Value =
            serde_json::from_str(&View::new(admin).event(&removed).expect("for the admin")).expect("JSON");
        assert_eq!(out["event"]["type"], "inbox_removed");
    }
}
