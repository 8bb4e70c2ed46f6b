//! One connection to a WLED controller, from `GET /json` to the WebSocket's last message.
//!
//! 1. `GET /json`: state, info, effect and palette names together (the names from `/json/eff`
//!    and `/json/pal` when an old firmware leaves them out). The controller must be the one
//!    announced: its `info.mac` gives the device id the inbox accepted.
//! 2. The WebSocket `/ws`. WLED sends `{"state": …, "info": …}` on connect and on every change;
//!    each becomes a state report (and a new descriptor when the layout changed: a segment added,
//!    a name changed). When the number of effects or palettes changes, their names are read again.
//! 3. Commands go over the same WebSocket as a state patch with `"v": true`, which WLED answers
//!    with its full state (or its next push to every client). The first state, within
//!    [`CAUSE_WINDOW`], that shows what the command asked for ([`reflects`]) carries the
//!    command's context as its cause; a push already on its way when the command left (the
//!    greeting, a button press) is reported without it.
//! 4. Keep-alive: after [`Link::idle`]/3 without a word from the device the session sends
//!    `{"v":true}` (WLED answers with its state); after [`Link::idle`] of silence it fails with
//!    `no answer from <address> for <n> s`.
//!
//! Nothing the device sends can panic the session: a frame that cannot be read is sent as
//! `InputRejected` (and logged once per session) and the session goes on.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hearth_mdns::lan::{HttpResponse, Link, WebSocket, WsMessage};
use hearth_sdk::{AdapterEvent, Command, Context};
use tokio::time::Instant;

use crate::json::{Controller, Info, Message, SegmentColor, State, StatePatch, Switch, parse_names};

/// How long after a command a state showing its result is attributed to it.
pub const CAUSE_WINDOW: Duration = Duration::from_secs(5);

/// The most commands waiting for their result at once; older ones are forgotten.
const MAX_PENDING: usize = 8;

/// What WLED's effect and palette counts were, to know when to read their names again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    effects: Option<u16>,
    palettes: Option<u16>,
    custom_palettes: Option<u16>,
}

impl Counts {
    fn of(info: &Info) -> Counts {
        Counts { effects: info.fxcount, palettes: info.palcount, custom_palettes: info.cpalcount }
    }

    /// Takes what `info` says; `true` when a count it gives differs from the one known.
    fn changed(&mut self, info: &Info) -> bool {
        let new = Counts::of(info);
        let mut changed = false;
        for (known, now) in [
            (&mut self.effects, new.effects),
            (&mut self.palettes, new.palettes),
            (&mut self.custom_palettes, new.custom_palettes),
        ] {
            if let Some(now) = now {
                changed |= known.is_some_and(|k| k != now);
                *known = Some(now);
            }
        }
        changed
    }
}

/// A command sent, waiting for the state that shows its result.
struct Pending {
    patch: StatePatch,
    context: Context,
    sent: Instant,
}

/// The state of one session.
struct Session {
    link: Link,
    controller: Controller,
    counts: Counts,
    /// Commands sent whose result the device has not shown yet, oldest first.
    pending: VecDeque<Pending>,
    /// Whether an unreadable frame was logged already (once per session).
    rejected_logged: bool,
    /// Where frames come from, for `InputRejected` and the log.
    source: String,
}

/// One connection to the WLED controller at `link.target`, until it fails (`Err`, a sentence
/// for the log) or the command channel closes (`Ok`).
pub async fn run(link: Link) -> Result<(), String> {
    let address = link.target.address;
    let json = get(&link, "/json").await?;
    let unusable = |e: crate::json::Error| format!("the WLED controller at {address} sent an unusable /json ({e})");
    let first = Message::from_json(&json.body).map_err(unusable)?;
    let mut controller = Controller::from_message(&first).map_err(unusable)?;
    if controller.id() != &link.target.device {
        return Err(format!(
            "the WLED controller at {address} is {}, not the {} announced there",
            controller.id(),
            link.target.device
        ));
    }
    if first.effects.is_none()
        && let Some(names) = names(&link, "/json/eff").await?
    {
        controller.set_effects(&names);
    }
    if first.palettes.is_none()
        && let Some(names) = names(&link, "/json/pal").await?
    {
        controller.set_palettes(&names);
    }
    let ws = link.websocket("/ws", &[]).await?;
    let counts = first.info.as_ref().map(Counts::of).unwrap_or_default();
    let source = format!("ws://{}/ws", link.target.socket());
    let session = Session { link, controller, counts, pending: VecDeque::new(), rejected_logged: false, source };
    session.link.events.device(session.controller.descriptor().clone()).await.map_err(|e| e.to_string())?;
    session.link.up().await.map_err(|e| e.to_string())?;
    tracing::info!(device = %session.controller.id(), %address, "The WLED controller is connected.");
    let values = session.controller.values(first.state.as_ref(), first.info.as_ref());
    if !values.is_empty() {
        session.link.events.state(session.controller.id(), values, None).await.map_err(|e| e.to_string())?;
    }
    session.stream(ws).await
}

/// `GET path`, which must answer 200.
async fn get(link: &Link, path: &str) -> Result<HttpResponse, String> {
    let r = link.http("GET", path, &[("Accept", "application/json")], None).await?;
    if r.status != 200 {
        return Err(format!("{} answered GET {path} with HTTP status {}", link.target.address, r.status));
    }
    Ok(r)
}

/// The names of `/json/eff` or `/json/pal`; `None` (logged) when the device has no such list or
/// sends one that cannot be read: the features are then left out, the session goes on.
async fn names(link: &Link, path: &str) -> Result<Option<Vec<String>>, String> {
    let r = link.http("GET", path, &[("Accept", "application/json")], None).await?;
    if r.status != 200 {
        tracing::warn!(device = %link.target.device, path, status = r.status, "The WLED controller has no name list there.");
        return Ok(None);
    }
    match parse_names(&r.body) {
        Ok(names) => Ok(Some(names)),
        Err(e) => {
            tracing::warn!(device = %link.target.device, path, error = %e, "The WLED controller's name list cannot be read.");
            Ok(None)
        }
    }
}

impl Session {
    /// Reads the WebSocket and carries out commands until the socket fails, the device goes
    /// silent, or the commands close.
    async fn stream(mut self, mut ws: WebSocket) -> Result<(), String> {
        let address = self.link.target.address;
        let idle = self.link.idle;
        let ping_every = (idle / 3).max(Duration::from_millis(100));
        let mut last_heard = Instant::now();
        let mut last_ping = last_heard;
        loop {
            let give_up = last_heard + idle;
            let ping_at = last_heard.max(last_ping) + ping_every;
            tokio::select! {
                frame = ws.next() => {
                    let frame = match frame {
                        None => return Err(format!("the WLED controller at {address} closed its WebSocket")),
                        Some(Err(e)) => return Err(format!("the WebSocket to the WLED controller at {address} failed ({e})")),
                        Some(Ok(frame)) => frame,
                    };
                    last_heard = Instant::now();
                    self.link.heard();
                    match frame {
                        WsMessage::Text(text) => self.message(text.as_bytes()).await?,
                        WsMessage::Close(_) => {
                            return Err(format!("the WLED controller at {address} closed its WebSocket"));
                        }
                        // Pings are answered by the library; binary frames are WLED's live LED
                        // stream, asked for with `lv` (never by this session).
                        _ => {}
                    }
                }
                command = self.link.commands.recv() => {
                    let Some(command) = command else {
                        let _ = ws.close(None).await;
                        return Ok(());
                    };
                    self.command(&mut ws, command).await?;
                }
                () = tokio::time::sleep_until(give_up.min(ping_at)) => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(self.link.no_answer());
                    }
                    last_ping = now;
                    send(&mut ws, address, r#"{"v":true}"#.to_owned()).await?;
                }
            }
        }
    }

    /// One text message of the device.
    async fn message(&mut self, text: &[u8]) -> Result<(), String> {
        let m = match Message::from_json(text) {
            Ok(m) => m,
            Err(e) => return self.reject(e.to_string()).await,
        };
        if let Some(code) = m.error {
            tracing::warn!(device = %self.controller.id(), code, "The WLED controller reported an error (3: it had no memory free for a message, 9: a message split across frames); a command may not have been carried out.");
        }
        if m.state.is_none() && m.info.is_none() {
            return Ok(());
        }
        let mut changed = self.controller.update(&m);
        if let Some(info) = &m.info
            && self.counts.changed(info)
        {
            changed |= self.refresh_names().await?;
        }
        if changed {
            self.link.events.device(self.controller.descriptor().clone()).await.map_err(|e| e.to_string())?;
        }
        let cause = m.state.as_ref().and_then(|state| self.cause(state));
        let values = self.controller.values(m.state.as_ref(), m.info.as_ref());
        if !values.is_empty() {
            self.link.events.state(self.controller.id(), values, cause).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Reads the effect and palette names again; `true` when the descriptor changed.
    async fn refresh_names(&mut self) -> Result<bool, String> {
        let mut changed = false;
        match names(&self.link, "/json/eff").await {
            Ok(Some(names)) => changed |= self.controller.set_effects(&names),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(device = %self.controller.id(), error = %e, "The WLED controller's effect names could not be read again.")
            }
        }
        match names(&self.link, "/json/pal").await {
            Ok(Some(names)) => changed |= self.controller.set_palettes(&names),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(device = %self.controller.id(), error = %e, "The WLED controller's palette names could not be read again.")
            }
        }
        Ok(changed)
    }

    /// A frame that cannot be read: counted by the hub, logged once per session.
    async fn reject(&mut self, reason: String) -> Result<(), String> {
        if !self.rejected_logged {
            self.rejected_logged = true;
            tracing::warn!(device = %self.controller.id(), source = %self.source, %reason, "The WLED controller sent a message that cannot be read; it was skipped (further ones are counted, not logged).");
        }
        self.link
            .events
            .send(AdapterEvent::InputRejected { source: self.source.clone(), reason })
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends a command as a state patch asking for the full state back.
    async fn command(&mut self, ws: &mut WebSocket, command: Command) -> Result<(), String> {
        if &command.device != self.controller.id() {
            tracing::warn!(device = %command.device, connected = %self.controller.id(), "A command for another device reached this WLED session; it was dropped.");
            return Ok(());
        }
        let mut patch = match self.controller.patch(&command.request) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(device = %command.device, error = %e, "A command could not be sent to the WLED controller.");
                return Ok(());
            }
        };
        patch.v = Some(true);
        tracing::debug!(device = %command.device, patch = %patch.to_json(), "Sending a state patch.");
        let json = patch.to_json();
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending { patch, context: command.context, sent: Instant::now() });
        send(ws, self.link.target.address, json).await
    }

    /// The context of the latest command whose result `state` shows; that command and the
    /// ones before it stop waiting.
    fn cause(&mut self, state: &State) -> Option<Context> {
        self.pending.retain(|p| p.sent.elapsed() <= CAUSE_WINDOW);
        let main = self.controller.main_segment();
        let latest = self.pending.iter().rposition(|p| reflects(&p.patch, state, main))?;
        self.pending.drain(..=latest).next_back().map(|p| p.context)
    }
}

/// Sends a text frame.
async fn send(ws: &mut WebSocket, address: std::net::IpAddr, text: String) -> Result<(), String> {
    ws.send(WsMessage::text(text))
        .await
        .map_err(|e| format!("cannot send to the WLED controller at {address} over its WebSocket ({e})"))
}

/// Whether `state` shows what `patch` asked for: every value it sets is the one reported (a
/// toggle is anything; brightness 0 is off, as WLED keeps the brightness it turns on with).
/// Segments without an id are matched by position, as WLED reads them.
pub fn reflects(patch: &StatePatch, state: &State, main_segment: u8) -> bool {
    let switch = |want: Option<Switch>, now: Option<bool>| match want {
        None | Some(Switch::Toggle) => true,
        Some(Switch::On) => now == Some(true),
        Some(Switch::Off) => now == Some(false),
    };
    let top_bri = match patch.bri {
        None => true,
        Some(0) => state.on == Some(false),
        Some(b) => state.bri == Some(b),
    };
    if !(switch(patch.on, state.on)
        && top_bri
        && patch.transition.is_none_or(|t| state.transition == Some(u32::from(t))))
    {
        return false;
    }
    let segments = state.seg.as_deref().unwrap_or_default();
    patch.seg.iter().all(|p| {
        let found = segments
            .iter()
            .enumerate()
            .find(|(i, s)| s.id.or_else(|| u8::try_from(*i).ok()).unwrap_or(main_segment) == p.id);
        let Some((_, s)) = found else { return false };
        let seg_bri = match p.bri {
            None => true,
            Some(0) => s.on == Some(false),
            Some(b) => s.bri == Some(b),
        };
        let color = match (&p.col, s.col.as_ref().and_then(|c| c.first()).and_then(SegmentColor::rgb)) {
            (None, _) => true,
            (Some(want), Some((r, g, b))) => want.first().is_none_or(|c| *c == [r, g, b]),
            (Some(_), None) => false,
        };
        switch(p.on, s.on)
            && seg_bri
            && color
            && p.cct.is_none_or(|c| s.cct == Some(u16::from(c)))
            && p.fx.is_none_or(|fx| s.fx == Some(fx))
            && p.pal.is_none_or(|pal| s.pal == Some(pal))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> StatePatch {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let seg = v["seg"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|s| crate::json::SegmentPatch {
                        id: s["id"].as_u64().unwrap() as u8,
                        on: s["on"].as_bool().map(Switch::from),
                        bri: s["bri"].as_u64().map(|b| b as u8),
                        cct: s["cct"].as_u64().map(|c| c as u8),
                        col: s["col"].as_array().map(|c| {
                            c.iter()
                                .map(|c| {
                                    let c: Vec<u8> =
                                        c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u8).collect();
                                    [c[0], c[1], c[2]]
                                })
                                .collect()
                        }),
                        fx: s["fx"].as_u64().map(|f| f as u16),
                        pal: s["pal"].as_u64().map(|p| p as u16),
                    })
                    .collect()
            })
            .unwrap_or_default();
        StatePatch {
            on: match &v["on"] {
                serde_json::Value::Bool(b) => Some(Switch::from(*b)),
                serde_json::Value::String(_) => Some(Switch::Toggle),
                _ => None,
            },
            bri: v["bri"].as_u64().map(|b| b as u8),
            transition: v["transition"].as_u64().map(|t| t as u16),
            tt: None,
            seg,
            v: Some(true),
        }
    }

    /// A two-segment state, as WLED 0.15 writes it (trimmed to what is compared).
    const STATE: &str = r#"{"on": true, "bri": 128, "transition": 7, "mainseg": 0, "seg": [
        {"id": 0, "on": true, "bri": 255, "cct": 127, "col": [[255, 0, 0], [0, 0, 0], [0, 0, 0]], "fx": 9, "pal": 6},
        {"id": 1, "on": false, "bri": 40, "cct": 0, "col": [[0, 0, 255, 0]], "fx": 0, "pal": 0}]}"#;

    #[test]
    fn a_state_reflects_a_patch_when_it_shows_every_value_asked_for() {
        let state = State::from_json(STATE.as_bytes()).unwrap();
        for shown in [
            r#"{}"#,
            r#"{"on": true, "bri": 128, "transition": 7}"#,
            r#"{"on": "t"}"#,
            r#"{"seg": [{"id": 0, "col": [[255, 0, 0]], "fx": 9, "pal": 6, "cct": 127}]}"#,
            r#"{"seg": [{"id": 1, "on": false}]}"#,
            r#"{"seg": [{"id": 1, "bri": 0}]}"#,
            r#"{"bri": 128, "seg": [{"id": 0, "on": true, "bri": 255}, {"id": 1, "bri": 40, "col": [[0, 0, 255]]}]}"#,
        ] {
            assert!(reflects(&patch(shown), &state, 0), "{shown}");
        }
        for not_shown in [
            r#"{"on": false}"#,
            r#"{"bri": 0}"#,
            r#"{"bri": 129}"#,
            r#"{"transition": 8}"#,
            r#"{"seg": [{"id": 0, "fx": 10}]}"#,
            r#"{"seg": [{"id": 0, "col": [[255, 0, 1]]}]}"#,
            r#"{"seg": [{"id": 1, "pal": 6}]}"#,
            r#"{"seg": [{"id": 2, "on": true}]}"#,
            r#"{"on": true, "seg": [{"id": 1, "on": true}]}"#,
        ] {
            assert!(!reflects(&patch(not_shown), &state, 0), "{not_shown}");
        }
        // Off with brightness 0: WLED reports off, and the brightness it turns on with.
        let off = State::from_json(br#"{"on": false, "bri": 128}"#).unwrap();
        assert!(reflects(&patch(r#"{"bri": 0}"#), &off, 0));
        // Old firmware: segments without ids are matched by position.
        let old = State::from_json(br#"{"seg": [{"fx": 1}, {"fx": 2}]}"#).unwrap();
        assert!(reflects(&patch(r#"{"seg": [{"id": 1, "fx": 2}]}"#), &old, 0));
        // A partial state shows nothing it leaves out.
        assert!(!reflects(&patch(r#"{"on": true}"#), &State::default(), 0));
    }

    #[test]
    fn counts_change_only_when_a_known_count_differs() {
        let info = |fx: Option<u16>, pal: Option<u16>| Info { fxcount: fx, palcount: pal, ..Info::default() };
        let mut c = Counts::of(&info(Some(187), Some(71)));
        assert!(!c.changed(&info(Some(187), Some(71))));
        assert!(!c.changed(&info(None, None)), "a push without counts changes nothing");
        assert!(c.changed(&info(Some(187), Some(72))));
        assert!(!c.changed(&info(Some(187), Some(72))));
        let mut unknown = Counts::default();
        assert!(!unknown.changed(&info(Some(10), Some(10))), "the first counts are learnt");
    }
}
