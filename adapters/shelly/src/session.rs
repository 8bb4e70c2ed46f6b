//! One connection to a Shelly Gen2+ device, from its description to its live updates.
//!
//! 1. Over HTTP (`POST /rpc`, one request per connection): `Shelly.GetDeviceInfo` (who it is;
//!    it must be the device the runner asked for), `Shelly.GetConfig` and `Shelly.GetStatus`.
//!    The device is described ([`DeviceMapping`]) and its values reported.
//! 2. The WebSocket `/rpc`: a first `Shelly.GetStatus` with this session's `src` makes the
//!    device send its notifications here; its answer brings the values up to date and the
//!    device online. Then `NotifyStatus` and `NotifyFullStatus` become state, `NotifyEvent`
//!    button events (and a changed configuration a new description), and commands become
//!    calls, answered by id. A device that refuses a call says why in the log.
//! 3. When the device has been silent for a third of the idle time it is asked for its status;
//!    after the whole idle time the session ends with [`Link::no_answer`].
//!
//! A device with a password asks for it (digest authentication, see [`crate::digest`]); it is
//! the adapter's secret named after the device id. Without it, or when the device refuses it,
//! the session ends with a sentence saying so, and the runner's backoff spaces the retries.
//!
//! State reported within a few seconds of a command, for a component the command touched,
//! carries the command's context as its cause, unless the component's `source` says something
//! else changed it (its wall switch, a timer).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_mdns::lan::{HttpResponse, Link, WebSocket, WsMessage};
use hearth_sdk::{AdapterEvent, Command, Context, HubGone, Secret};
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::digest::{self, HttpChallenge, WsChallenge};
use crate::rpc::{self, Call, DeviceInfo, DeviceMapping, Frame, Notification, NotifyMethod, RemoteError, RpcError};

/// How long after a command the reports of the components it touched carry its context.
const CAUSE_WINDOW: Duration = Duration::from_secs(3);

/// The shortest time between two new descriptions asked for by the status itself (a changed
/// configuration always asks at once).
const REBUILD_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// How often a battery device (Plus H&T) wakes when its status does not say
/// (`sys.wakeup_period`).
const DEFAULT_WAKEUP: Duration = Duration::from_secs(2 * 3600);

/// The `source` of a change the device made on a request that came in over the WebSocket.
const COMMAND_SOURCE: &str = "WS_in";

/// The error code of a call that needs the password.
const UNAUTHORIZED: i64 = 401;

/// Runs one session; see the module docs.
pub(crate) async fn run(link: Link) -> Result<(), String> {
    let password = link.secrets.get(&link.target.key);
    let src = format!("hearth-{:08x}", digest::cnonce());
    let mut http = Http { link: &link, password: password.clone(), src: src.clone(), challenge: None, next_id: 1 };
    let info = http.device_info().await?;
    let config = http.call(&Call::get_config()).await?;
    let status = http.call(&Call::get_status()).await?;
    let next_id = http.next_id;
    let id = info.id.clone();
    let mapping = DeviceMapping::new(info, &config, &status)
        .map_err(|e| format!("{id} described itself in a way Hearth cannot read ({e})"))?;
    link.events.device(mapping.descriptor().clone()).await.map_err(hub_gone)?;
    let values = mapping.values(&status).map_err(|e| format!("{id} sent a status Hearth cannot read ({e})"))?;
    if !values.is_empty() {
        link.events.state(&link.target.device, values, None).await.map_err(hub_gone)?;
    }
    if mapping.is_sleepy() {
        // A battery device is awake for a few seconds: what it said is in, so it is online, and
        // kept so while it sleeps; it is read again when it wakes and announces itself.
        link.sleeps(wakeup_period(&status));
        link.up().await.map_err(hub_gone)?;
    }
    let ws = link.websocket("/rpc", &[]).await?;
    let now = Instant::now();
    let live = Live {
        link,
        id,
        mapping,
        password,
        src,
        next_id,
        auth: None,
        pending: HashMap::new(),
        recent: Vec::new(),
        ready: false,
        rebuilding: false,
        last_rebuild: None,
        last_heard: now,
        last_poll: now,
        bad_frames: 0,
    };
    live.run(ws).await
}

/// How often a battery device wakes: `sys.wakeup_period` of its status (seconds), else
/// [`DEFAULT_WAKEUP`].
fn wakeup_period(status: &Json) -> Duration {
    status
        .pointer("/sys/wakeup_period")
        .and_then(Json::as_u64)
        .filter(|p| *p > 0)
        .map_or(DEFAULT_WAKEUP, Duration::from_secs)
}

fn hub_gone(e: HubGone) -> String {
    e.to_string()
}

fn asks_for_password(id: &str) -> String {
    format!("{id} asks for a password: enter it under the adapter's secrets, named {id}")
}

fn refused_password(id: &str) -> String {
    format!("{id} refused the password: correct it under the adapter's secrets, named {id}")
}

fn cannot_answer(id: &str, e: &digest::DigestError) -> String {
    format!("{id} asks for a password in a way Hearth cannot answer ({e})")
}

fn refused_call(id: &str, method: &str, e: &RemoteError) -> String {
    format!("{id} refused {method}: {} (error {})", e.message, e.code)
}

/// The HTTP side of a session: one call per connection, with digest authentication.
struct Http<'a> {
    link: &'a Link,
    password: Option<Secret>,
    src: String,
    /// The last challenge and how many times its nonce was used.
    challenge: Option<(HttpChallenge, u32)>,
    next_id: u64,
}

impl Http<'_> {
    /// `Shelly.GetDeviceInfo`, checked: a Gen2+ device whose id is the one announced.
    async fn device_info(&mut self) -> Result<DeviceInfo, String> {
        let result = self.call(&Call::get_device_info()).await?;
        let key = &self.link.target.key;
        let mut info = DeviceInfo::parse(&result).map_err(|e| match e {
            RpcError::Generation { .. } => e.to_string(),
            e => format!("{key} answered Shelly.GetDeviceInfo with something Hearth cannot read ({e})"),
        })?;
        info.id = info.id.to_ascii_lowercase();
        if info.id != *key {
            return Err(format!(
                "the device at {} is {}, not {key}: another device has its address now",
                self.link.target.address, info.id
            ));
        }
        Ok(info)
    }

    /// One call over `POST /rpc`; a 401 is answered with the password, once.
    async fn call(&mut self, call: &Call) -> Result<Json, String> {
        let key = self.link.target.key.clone();
        let id = self.next_id;
        self.next_id += 1;
        let body = call.request(id, &self.src).to_json();
        let mut fresh = false;
        loop {
            let authorization = match (&self.password, &mut self.challenge) {
                (Some(password), Some((challenge, uses))) => {
                    *uses += 1;
                    let cnonce = digest::cnonce().to_string();
                    Some(challenge.authorization(password.expose(), "POST", "/rpc", *uses, &cnonce))
                }
                _ => None,
            };
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &authorization {
                headers.push(("Authorization", a.as_str()));
            }
            let answer = self.link.http("POST", "/rpc", &headers, Some(body.as_bytes())).await?;
            if answer.status != 401 {
                return read_http_answer(&key, &call.method, &answer);
            }
            if self.password.is_none() {
                return Err(self.link.refused(asks_for_password(&key)));
            }
            if fresh {
                return Err(self.link.refused(refused_password(&key)));
            }
            let header = answer.header("www-authenticate").ok_or_else(|| {
                format!("{key} refused {} (HTTP 401) without saying how to authenticate", call.method)
            })?;
            let challenge = HttpChallenge::parse(header).map_err(|e| self.link.refused(cannot_answer(&key, &e)))?;
            self.challenge = Some((challenge, 0));
            fresh = true;
        }
    }
}

/// The result in an HTTP answer, or what went wrong, in a sentence.
fn read_http_answer(key: &str, method: &str, answer: &HttpResponse) -> Result<Json, String> {
    let text = String::from_utf8_lossy(&answer.body);
    match rpc::parse_frame(&text) {
        Ok(Frame::Response(r)) => r.result.map_err(|e| refused_call(key, method, &e)),
        Ok(Frame::Notification(_)) => Err(format!("{key} answered {method} with a notification")),
        Err(e) if (200..300).contains(&answer.status) => {
            Err(format!("{key} answered {method} with a frame Hearth cannot read ({e})"))
        }
        Err(_) => {
            let hint = if answer.status == 404 {
                ": it has no RPC API (a Gen1 device?); only Gen2 and later devices are supported"
            } else {
                ""
            };
            Err(format!("{key} answered {method} with HTTP {}{hint}", answer.status))
        }
    }
}

/// Why a request was sent, for its answer.
enum Purpose {
    /// The first request: it subscribes this `src` to notifications.
    Subscribe,
    /// Asking a silent device for its status.
    Poll,
    /// Carrying out a command.
    Command(Context),
    /// A new description: first the configuration ...
    RebuildConfig,
    /// ... then the status, with the configuration read.
    RebuildStatus(Json),
}

/// A request waiting for its answer.
struct Pending {
    call: Call,
    purpose: Purpose,
    /// The nonce of the `auth` object it carried.
    nonce: Option<Json>,
    /// It was already sent again after a 401.
    retried: bool,
}

/// A command's context, for the reports of the component it touched.
struct Recent {
    component: String,
    context: Context,
    until: Instant,
}

/// What woke the session up.
enum Input {
    Frame(Option<Result<WsMessage, String>>),
    Command(Option<Command>),
    Wake,
}

/// The WebSocket side of a session.
struct Live {
    link: Link,
    /// The device's own id: the realm of its password and its secret's name.
    id: String,
    mapping: DeviceMapping,
    password: Option<Secret>,
    src: String,
    next_id: u64,
    /// What every request carries once the device asked for the password.
    auth: Option<Json>,
    pending: HashMap<u64, Pending>,
    recent: Vec<Recent>,
    /// The subscription was answered: commands are taken.
    ready: bool,
    rebuilding: bool,
    last_rebuild: Option<Instant>,
    last_heard: Instant,
    last_poll: Instant,
    bad_frames: u64,
}

impl Live {
    async fn run(mut self, mut ws: WebSocket) -> Result<(), String> {
        self.send(&mut ws, Call::get_status(), Purpose::Subscribe, false).await?;
        loop {
            let wake = self.wake_at();
            let input = tokio::select! {
                frame = ws.next() => Input::Frame(frame.map(|r| r.map_err(|e| e.to_string()))),
                command = self.link.commands.recv(), if self.ready => Input::Command(command),
                () = tokio::time::sleep_until(wake) => Input::Wake,
            };
            match input {
                Input::Frame(None) => return Err(format!("{} closed the connection", self.id)),
                Input::Frame(Some(Err(e))) => return Err(format!("the connection to {} failed ({e})", self.id)),
                Input::Frame(Some(Ok(message))) => self.message(&mut ws, message).await?,
                Input::Command(None) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), SinkExt::close(&mut ws)).await;
                    return Ok(());
                }
                Input::Command(Some(command)) => self.command(&mut ws, command).await?,
                Input::Wake => self.wake(&mut ws).await?,
            }
        }
    }

    fn poll_every(&self) -> Duration {
        (self.link.idle / 3).max(Duration::from_millis(100))
    }

    /// The next moment to ask a silent device, or to give it up.
    fn wake_at(&self) -> Instant {
        let give_up = self.last_heard + self.link.idle;
        let poll = self.last_heard.max(self.last_poll) + self.poll_every();
        give_up.min(poll)
    }

    async fn wake(&mut self, ws: &mut WebSocket) -> Result<(), String> {
        let now = Instant::now();
        if now >= self.last_heard + self.link.idle {
            return Err(self.link.no_answer());
        }
        if now >= self.last_heard.max(self.last_poll) + self.poll_every() {
            self.last_poll = now;
            self.send(ws, Call::get_status(), Purpose::Poll, false).await?;
        }
        Ok(())
    }

    /// Sends a request (with the `auth` object once there is one), remembering why.
    async fn send(&mut self, ws: &mut WebSocket, call: Call, purpose: Purpose, retried: bool) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = serde_json::to_value(call.request(id, &self.src))
            .map_err(|e| format!("cannot write a request for {} ({e})", self.id))?;
        if let (Some(auth), Some(object)) = (&self.auth, frame.as_object_mut()) {
            object.insert("auth".into(), auth.clone());
        }
        let nonce = self.auth.as_ref().and_then(|a| a.get("nonce")).cloned();
        self.pending.insert(id, Pending { call, purpose, nonce, retried });
        match tokio::time::timeout(self.link.idle, ws.send(WsMessage::text(frame.to_string()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot send to {} ({e})", self.id)),
            Err(_) => Err(self.link.no_answer()),
        }
    }

    async fn message(&mut self, ws: &mut WebSocket, message: WsMessage) -> Result<(), String> {
        self.last_heard = Instant::now();
        self.link.heard();
        match message {
            WsMessage::Text(text) => match rpc::parse_frame(text.as_str()) {
                Ok(Frame::Response(r)) => self.response(ws, r).await,
                Ok(Frame::Notification(n)) => self.notification(ws, n).await,
                Err(e) => self.reject(e.to_string()).await,
            },
            WsMessage::Binary(_) => self.reject("a binary message, where JSON text was expected".into()).await,
            WsMessage::Close(_) => Err(format!("{} closed the connection", self.id)),
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Ok(()),
        }
    }

    /// A frame that cannot be read: counted by the hub, logged once per session.
    async fn reject(&mut self, reason: String) -> Result<(), String> {
        self.bad_frames += 1;
        if self.bad_frames == 1 {
            tracing::warn!(device = %self.link.target.device, "{} sent a frame Hearth cannot read ({reason}); such frames are skipped", self.id);
        } else {
            tracing::debug!(device = %self.link.target.device, "another frame that cannot be read ({reason})");
        }
        let source = format!("ws://{}/rpc", self.link.target.socket());
        self.link.events.send(AdapterEvent::InputRejected { source, reason }).await.map_err(hub_gone)
    }

    async fn response(&mut self, ws: &mut WebSocket, response: rpc::Response) -> Result<(), String> {
        let Some(pending) = self.pending.remove(&response.id) else {
            tracing::debug!(device = %self.link.target.device, id = response.id, "an answer to no request waiting");
            return Ok(());
        };
        let result = match response.result {
            Ok(result) => result,
            Err(e) if e.code == UNAUTHORIZED => return self.authenticate(ws, pending, &e.message).await,
            Err(e) => return self.refused(pending, &e),
        };
        match pending.purpose {
            Purpose::Subscribe => {
                self.status(ws, &result, None).await?;
                self.ready = true;
                self.link.up().await.map_err(hub_gone)
            }
            Purpose::Poll => self.status(ws, &result, None).await,
            Purpose::Command(context) if pending.call.method == "Shelly.GetStatus" => {
                self.status(ws, &result, Some(context)).await
            }
            Purpose::Command(_) => Ok(()),
            Purpose::RebuildConfig => self.send(ws, Call::get_status(), Purpose::RebuildStatus(result), false).await,
            Purpose::RebuildStatus(config) => self.rebuilt(&config, &result).await,
        }
    }

    /// The device asks for the password: answer with it once per request, or give up.
    async fn authenticate(&mut self, ws: &mut WebSocket, pending: Pending, message: &str) -> Result<(), String> {
        let Some(password) = &self.password else { return Err(self.link.refused(asks_for_password(&self.id))) };
        let challenge = WsChallenge::parse(message).map_err(|e| self.link.refused(cannot_answer(&self.id, &e)))?;
        if pending.retried || pending.nonce.as_ref() == Some(&challenge.nonce) {
            return Err(self.link.refused(refused_password(&self.id)));
        }
        self.auth = Some(challenge.auth(password.expose(), digest::cnonce()));
        self.send(ws, pending.call, pending.purpose, true).await
    }

    /// The device refused a call (not for the password): say so in its words.
    fn refused(&mut self, pending: Pending, e: &RemoteError) -> Result<(), String> {
        let sentence = refused_call(&self.id, &pending.call.method, e);
        match pending.purpose {
            Purpose::Subscribe => return Err(sentence),
            Purpose::RebuildConfig | Purpose::RebuildStatus(_) => self.rebuilding = false,
            Purpose::Poll | Purpose::Command(_) => {}
        }
        tracing::warn!(device = %self.link.target.device, "{sentence}");
        Ok(())
    }

    /// A status, whole or partial: its values, and a new description when it shows new things.
    async fn status(&mut self, ws: &mut WebSocket, status: &Json, cause: Option<Context>) -> Result<(), String> {
        if self.mapping.needs_rebuild(status) {
            self.rebuild(ws, false).await?;
        }
        match self.mapping.values(status) {
            Ok(values) if values.is_empty() => Ok(()),
            Ok(values) => self.link.events.state(&self.link.target.device, values, cause).await.map_err(hub_gone),
            Err(e) => self.reject(format!("a status that cannot be read: {e}")).await,
        }
    }

    async fn notification(&mut self, ws: &mut WebSocket, n: Notification) -> Result<(), String> {
        match n.method {
            NotifyMethod::Status => {
                let cause = self.cause_for(&n.params);
                self.status(ws, &n.params, cause).await
            }
            NotifyMethod::FullStatus => self.status(ws, &n.params, None).await,
            NotifyMethod::Event => {
                let events = self.mapping.events(&n.params);
                for button in events.buttons {
                    let event = button.into_adapter_event(self.link.target.device.clone());
                    self.link.events.send(event).await.map_err(hub_gone)?;
                }
                if events.config_changed {
                    self.rebuild(ws, true).await?;
                }
                Ok(())
            }
            NotifyMethod::Other(method) => {
                tracing::debug!(device = %self.link.target.device, %method, "a notification this adapter does not use");
                Ok(())
            }
        }
    }

    /// Reads the configuration and status again, for a new description.
    async fn rebuild(&mut self, ws: &mut WebSocket, forced: bool) -> Result<(), String> {
        if self.rebuilding || (!forced && self.last_rebuild.is_some_and(|t| t.elapsed() < REBUILD_AT_MOST_EVERY)) {
            return Ok(());
        }
        self.rebuilding = true;
        self.last_rebuild = Some(Instant::now());
        self.send(ws, Call::get_config(), Purpose::RebuildConfig, false).await
    }

    async fn rebuilt(&mut self, config: &Json, status: &Json) -> Result<(), String> {
        self.rebuilding = false;
        let mapping = match DeviceMapping::new(self.mapping.info().clone(), config, status) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(device = %self.link.target.device, "{} changed in a way Hearth cannot read ({e}); its description stays as it was", self.id);
                return Ok(());
            }
        };
        let changed = mapping.descriptor() != self.mapping.descriptor();
        self.mapping = mapping;
        if changed {
            tracing::info!(device = %self.link.target.device, "{} changed: described again", self.id);
            self.link.events.device(self.mapping.descriptor().clone()).await.map_err(hub_gone)?;
        }
        match self.mapping.values(status) {
            Ok(values) if !values.is_empty() => {
                self.link.events.state(&self.link.target.device, values, None).await.map_err(hub_gone)
            }
            _ => Ok(()),
        }
    }

    async fn command(&mut self, ws: &mut WebSocket, command: Command) -> Result<(), String> {
        if command.device != self.link.target.device {
            tracing::warn!(device = %command.device, "a command for another device reached {}'s connection", self.id);
            return Ok(());
        }
        let calls = match self.mapping.command(&command.request) {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(device = %command.device, "a command cannot be carried out: {e}");
                return Ok(());
            }
        };
        for call in calls {
            if let Some(component) = component_of(&call) {
                self.recent.push(Recent {
                    component,
                    context: command.context.clone(),
                    until: Instant::now() + CAUSE_WINDOW,
                });
            }
            self.send(ws, call, Purpose::Command(command.context.clone()), false).await?;
        }
        Ok(())
    }

    /// The context of the latest command that touched a component in `status`, lately. A
    /// component whose `source` says something else changed it (`button`, `switch`, `timer` ...
    /// anything but `WS_in`, the WebSocket the commands came in on) is no longer the command's
    /// doing.
    fn cause_for(&mut self, status: &Json) -> Option<Context> {
        let now = Instant::now();
        let status = status.as_object()?;
        self.recent.retain(|r| {
            let source = status.get(&r.component).and_then(|c| c.get("source")).and_then(Json::as_str);
            r.until > now && source.is_none_or(|s| s.eq_ignore_ascii_case(COMMAND_SOURCE))
        });
        self.recent.iter().rev().find(|r| status.contains_key(&r.component)).map(|r| r.context.clone())
    }
}

/// The component a call acts on: `Switch.Set {"id": 0}` acts on `switch:0`.
fn component_of(call: &Call) -> Option<String> {
    let (namespace, _) = call.method.split_once('.')?;
    let kind = match namespace {
        "Switch" | "Light" | "Cover" => namespace.to_ascii_lowercase(),
        _ => return None,
    };
    let id = call.params.get("id").and_then(Json::as_u64)?;
    Some(format!("{kind}:{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_names_the_component_it_acts_on() {
        assert_eq!(
            component_of(&Call::new("Switch.Set").param("id", 0).param("on", true)).as_deref(),
            Some("switch:0")
        );
        assert_eq!(component_of(&Call::new("Cover.GoToPosition").param("id", 1)).as_deref(), Some("cover:1"));
        assert_eq!(component_of(&Call::new("Light.Toggle").param("id", 2)).as_deref(), Some("light:2"));
        assert_eq!(component_of(&Call::get_status()), None);
        assert_eq!(component_of(&Call::new("Switch.Set")), None);
    }

    #[test]
    fn a_battery_device_wakes_as_its_status_says_or_every_two_hours() {
        let ht = serde_json::json!({"sys": {"wakeup_period": 600, "wakeup_reason": {"boot": "deepsleep_wake"}}});
        assert_eq!(wakeup_period(&ht), Duration::from_secs(600));
        assert_eq!(wakeup_period(&serde_json::json!({"sys": {"wakeup_period": 0}})), DEFAULT_WAKEUP);
        assert_eq!(wakeup_period(&serde_json::json!({"sys": {}})), Duration::from_secs(7200));
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn http_answers_become_results_or_sentences() {
        let ok = answer(200, r#"{"id": 1, "src": "shellyplus1pm-a8032ab12345", "result": {"was_on": false}}"#);
        assert_eq!(read_http_answer("d", "Switch.Set", &ok), Ok(serde_json::json!({"was_on": false})));
        let refused =
            answer(500, r#"{"id": 1, "src": "d", "error": {"code": -103, "message": "Invalid argument 'id'!"}}"#);
        assert_eq!(
            read_http_answer("d", "Switch.Set", &refused),
            Err("d refused Switch.Set: Invalid argument 'id'! (error -103)".into())
        );
        let gen1 = answer(404, "Not Found");
        let e = read_http_answer("shelly1-34945472a190", "Shelly.GetDeviceInfo", &gen1).expect_err("404");
        assert!(e.contains("HTTP 404") && e.contains("Gen1"), "{e}");
        let garbage = answer(200, "<html>");
        let e = read_http_answer("d", "Shelly.GetStatus", &garbage).expect_err("not JSON");
        assert!(e.starts_with("d answered Shelly.GetStatus with a frame Hearth cannot read"), "{e}");
    }
}
