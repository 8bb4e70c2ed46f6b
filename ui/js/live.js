// Live state: the devices and areas of the WebSocket snapshot, kept current by its events, and
// the socket itself (authenticated by the session cookie), which reconnects by itself with
// backoff and resubscribes, so the fresh snapshot refreshes everything.

import { api, ApiError, seg } from "./api.js";

export const state = {
  /** The signed-in user: {name, role, admin, areas}. */
  user: null,
  /** Device id to device (the model's JSON). */
  devices: new Map(),
  /** Areas, sorted by order then name. */
  areas: [],
  /** Adapter id to status, from adapter_status_changed events. */
  adapterStatus: new Map(),
  /** Device id to its last momentary event {feature, event, at}. */
  lastEvents: new Map(),
  /** Notifications from automations, newest first. */
  notifications: [],
  /** idle | connecting | live | down */
  conn: "idle",
  /** Whether a snapshot has arrived since sign-in. */
  ready: false,
};

const listeners = new Set();
/** `fn(change)` for every change: {type: snapshot|device|device_removed|state|device_event|areas|adapter|inbox|notification|conn}. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
function emit(change) {
  for (const fn of [...listeners]) {
    try { fn(change); } catch (e) { console.error(e); }
  }
}

export function isAdmin() {
  return !!(state.user && (state.user.admin || state.user.role === "admin"));
}

/** The user as the API gives it, with `role` filled in from `admin` for older answers. */
export function setUser(u) {
  if (!u) {
    state.user = null;
    return;
  }
  const role = u.role || (u.admin ? "admin" : "member");
  state.user = { name: u.name, role, admin: role === "admin", areas: Array.isArray(u.areas) ? u.areas : [] };
}

function sortAreas() {
  state.areas.sort((a, b) => (a.order || 0) - (b.order || 0) || String(a.name).localeCompare(String(b.name)));
}

export function areaName(id) {
  const a = state.areas.find((x) => x.id === id);
  return a ? a.name : id;
}

// ----- the socket --------------------------------------------------------------------------

let ws = null;
let stopped = true;
let attempt = 0;
let retryTimer = null;
let pingTimer = null;
let lastMessage = 0;
let nextId = 1;
const pending = new Map();

function setConn(c) {
  if (state.conn === c) return;
  state.conn = c;
  emit({ type: "conn", conn: c });
}

/** Starts the socket (after sign-in). */
export function connect() {
  stopped = false;
  attempt = 0;
  open();
  if (!pingTimer) pingTimer = setInterval(heartbeat, 15000);
}

/** Stops the socket (sign-out). */
export function disconnect() {
  stopped = true;
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  pingTimer = null;
  if (ws) {
    ws.onclose = null;
    ws.close();
    ws = null;
  }
  failPending();
  state.ready = false;
  state.devices = new Map();
  state.areas = [];
  setConn("idle");
}

/** Reconnects at once (the banner's "retry now"). */
export function reconnectNow() {
  if (!stopped && state.conn !== "live") open();
}

function open() {
  clearTimeout(retryTimer);
  if (ws) {
    ws.onclose = null;
    ws.close();
    ws = null;
  }
  if (state.conn !== "down") setConn("connecting");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws";
  let sock;
  try {
    sock = new WebSocket(url);
  } catch {
    lost();
    return;
  }
  ws = sock;
  lastMessage = Date.now();
  sock.onopen = () => sock.send(JSON.stringify({ type: "auth" }));
  sock.onmessage = (m) => {
    lastMessage = Date.now();
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    onMessage(sock, msg);
  };
  sock.onclose = () => {
    if (ws === sock) lost();
  };
}

function lost() {
  if (ws) {
    ws.onclose = null;
    try { ws.close(); } catch { /* ignore */ }
    ws = null;
  }
  failPending();
  if (stopped) return;
  setConn("down");
  const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
  attempt = Math.min(attempt + 1, 6);
  clearTimeout(retryTimer);
  retryTimer = setTimeout(open, delay);
}

function heartbeat() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - lastMessage > 40000) {
    lost();
    return;
  }
  ws.send(JSON.stringify({ type: "ping", id: "hb" }));
}

window.addEventListener("online", () => reconnectNow());
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") reconnectNow();
});

function failPending() {
  for (const [, p] of pending) {
    clearTimeout(p.timer);
    p.reject(new ApiError(0, "network", "connection lost"));
  }
  pending.clear();
}

async function onMessage(sock, msg) {
  switch (msg.type) {
    case "auth_ok":
      if (msg.user && msg.user.name && !state.user) setUser(msg.user);
      sock.send(JSON.stringify({ type: "subscribe" }));
      break;
    case "auth_failed":
      sock.onclose = null;
      ws = null;
      // The session may have ended: /auth/me answers 401 then, and the app shows the login.
      try {
        await api("GET", "/auth/me");
        lost();
      } catch (e) {
        if (e.status !== 401) lost();
      }
      break;
    case "snapshot":
      state.devices = new Map((msg.devices || []).map((d) => [d.id, d]));
      state.areas = msg.areas || [];
      sortAreas();
      state.ready = true;
      attempt = 0;
      setConn("live");
      emit({ type: "snapshot", reason: msg.reason });
      break;
    case "event":
      if (msg.event) apply(msg.event);
      break;
    case "result": {
      const p = pending.get(msg.id);
      if (p) {
        pending.delete(msg.id);
        clearTimeout(p.timer);
        if (msg.ok) p.resolve({ context: msg.context });
        else p.reject(new ApiError(422, (msg.error && msg.error.code) || "error", (msg.error && msg.error.message) || "error", msg.error && msg.error.details));
      }
      break;
    }
    default:
      break;
  }
}

function apply(ev) {
  switch (ev.type) {
    case "device_added":
    case "device_updated":
      if (ev.device && ev.device.id) {
        const isNew = !state.devices.has(ev.device.id);
        state.devices.set(ev.device.id, ev.device);
        emit({ type: "device", id: ev.device.id, added: ev.type === "device_added" && isNew, device: ev.device });
      }
      break;
    case "device_removed":
      state.devices.delete(ev.device);
      emit({ type: "device_removed", id: ev.device });
      break;
    case "state_changed": {
      const d = state.devices.get(ev.device);
      if (!d) return;
      d.state = d.state || {};
      d.state[ev.feature] = { value: ev.new, changed_at: ev.at, reported_at: ev.at };
      d.last_seen = ev.at;
      emit({ type: "state", id: ev.device, feature: ev.feature, event: ev });
      break;
    }
    case "device_event":
      state.lastEvents.set(ev.device, { feature: ev.feature, event: ev.event, at: ev.at });
      emit({ type: "device_event", id: ev.device, event: ev });
      break;
    case "availability_changed": {
      const d = state.devices.get(ev.device);
      if (!d) return;
      d.availability = ev.availability;
      emit({ type: "device", id: ev.device, device: d });
      break;
    }
    case "area_updated":
      state.areas = state.areas.filter((a) => a.id !== ev.area.id).concat([ev.area]);
      sortAreas();
      emit({ type: "areas" });
      break;
    case "area_removed":
      state.areas = state.areas.filter((a) => a.id !== ev.area);
      for (const d of state.devices.values()) if (d.area === ev.area) delete d.area;
      emit({ type: "areas" });
      break;
    case "adapter_status_changed":
      state.adapterStatus.set(ev.adapter, ev.status);
      emit({ type: "adapter", id: ev.adapter, status: ev.status });
      break;
    case "automation_ran":
    case "automation_changed":
      emit({ type: "automation", id: ev.automation, event: ev });
      break;
    case "inbox_changed":
    case "inbox_removed":
      emit({ type: "inbox", event: ev });
      break;
    case "notification":
      state.notifications.unshift(ev);
      state.notifications.length = Math.min(state.notifications.length, 50);
      emit({ type: "notification", event: ev });
      break;
    default:
      break;
  }
}

/** Sends a command (over the socket when it is live, else through REST). */
export function command(device, body) {
  if (ws && ws.readyState === WebSocket.OPEN && state.conn === "live") {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new ApiError(0, "timeout", "no answer"));
      }, 10000);
      pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify(Object.assign({ type: "command", id, device }, body)));
    });
  }
  return api("POST", `/devices/${seg(device)}/commands`, body);
}
