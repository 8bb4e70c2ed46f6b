// Hearth web UI (minimal): onboarding, sign-in, and a live list of devices by area.
"use strict";
const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("hearth.token");
let devices = new Map();
let areas = [];

async function api(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: Object.assign({ "content-type": "application/json" }, token ? { authorization: "Bearer " + token } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(data && data.error ? data.error.message : r.statusText);
  return data;
}

function show(id) {
  for (const s of ["onboarding", "login", "home"]) $(s).hidden = s !== id;
}

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function start() {
  $("error").textContent = "";
  if (!token) {
    const { needed } = await api("GET", "/api/v1/onboarding");
    show(needed ? "onboarding" : "login");
    return;
  }
  connect();
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/v1/ws");
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "auth_failed") { localStorage.removeItem("hearth.token"); token = null; start(); return; }
    if (msg.type === "auth_ok") { $("who").textContent = msg.user.name; ws.send(JSON.stringify({ type: "subscribe" })); show("home"); }
    if (msg.type === "snapshot") { devices = new Map(msg.devices.map((d) => [d.id, d])); areas = msg.areas; render(); }
    if (msg.type === "event") { apply(msg.event); render(); }
    if (msg.type === "result" && !msg.ok) $("error").textContent = msg.error.message;
  };
  ws.onclose = () => setTimeout(() => token && connect(), 2000);
  window.hearthSocket = ws;
}

function apply(ev) {
  const d = devices.get(ev.device && ev.device.id ? ev.device.id : ev.device);
  if (ev.type === "device_added" || ev.type === "device_updated") devices.set(ev.device.id, ev.device);
  else if (ev.type === "device_removed") devices.delete(ev.device);
  else if (ev.type === "state_changed" && d) d.state[ev.feature] = { value: ev.new, changed_at: ev.at, reported_at: ev.at };
  else if (ev.type === "availability_changed" && d) d.availability = ev.availability;
  else if (ev.type === "area_updated") { areas = areas.filter((a) => a.id !== ev.area.id).concat([ev.area]); }
  else if (ev.type === "area_removed") { areas = areas.filter((a) => a.id !== ev.area); }
}

function command(id, set) {
  window.hearthSocket.send(JSON.stringify({ type: "command", id: Date.now(), device: id, set }));
}

function card(d) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.device = d.id;
  const h = document.createElement("h3");
  h.textContent = d.name;
  el.append(h);
  if (d.availability && d.availability.state === "offline") {
    const o = document.createElement("div");
    o.className = "offline";
    o.textContent = "Offline: " + (d.availability.reason || "");
    el.append(o);
  }
  for (const f of d.features) {
    if (f.category !== "primary") continue;
    const st = d.state[f.key];
    if (f.capability === "on_off" && f.access.set) {
      const b = document.createElement("input");
      b.type = "checkbox"; b.checked = !!(st && st.value); b.setAttribute("aria-label", d.name + " " + f.key);
      b.onchange = () => command(d.id, { [f.key]: b.checked });
      el.append(b);
    } else if (st && f.capability !== "action") {
      const r = document.createElement("div");
      r.className = "reading";
      r.textContent = f.key + ": " + (typeof st.value === "object" ? JSON.stringify(st.value) : st.value) + (f.unit ? " " + f.unit : "");
      el.append(r);
    }
  }
  return el;
}

function render() {
  const home = $("home");
  home.replaceChildren();
  const groups = [...areas.map((a) => [a.id, a.name]), [null, "No area"]];
  for (const [id, name] of groups) {
    const list = [...devices.values()].filter((d) => (d.area || null) === id);
    if (!list.length) continue;
    const sec = document.createElement("div");
    sec.className = "area";
    const h = document.createElement("h2");
    h.textContent = name;
    const cards = document.createElement("div");
    cards.className = "cards";
    list.sort((a, b) => a.name.localeCompare(b.name)).forEach((d) => cards.append(card(d)));
    sec.append(h, cards);
    home.append(sec);
  }
}

async function signIn(path, form) {
  try {
    const r = await api("POST", path, formData(form));
    token = r.token;
    localStorage.setItem("hearth.token", token);
    start();
  } catch (e) { $("error").textContent = e.message; }
}

$("onboard-form").onsubmit = (e) => { e.preventDefault(); signIn("/api/v1/onboarding", e.target); };
$("login-form").onsubmit = (e) => { e.preventDefault(); signIn("/api/v1/auth/login", e.target); };
start().catch((e) => { $("error").textContent = e.message; });
