// Feature controls and device cards. Every control is `{el, update(device)}`: live events update
// values in place, so a slider being dragged or a focused control is never rebuilt under a finger.

import { h, field, nextId, icon, select, replace } from "./dom.js";
import { t, tv, hasTv, fmtNum, digitsFor, fmtRelative } from "./i18n.js";
import { state, command } from "./live.js";
import { toast, errorText, reasonText } from "./ui.js";

// ----- text for features and values ----------------------------------------------------------

function humanKey(key) {
  const s = String(key).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A feature's label: its capability in the language, or the adapter's label for `other`. */
export function featureLabel(device, f) {
  if (f.capability === "other" || !hasTv("cap", f.capability)) return f.label || humanKey(f.key);
  const base = tv("cap", f.capability);
  if (f.endpoint) return `${base} (${f.label || f.endpoint})`;
  const same = (device.features || []).filter((x) => x.capability === f.capability && !x.endpoint);
  if (same.length > 1 && same[0] !== f) return `${base} (${f.label || humanKey(f.key)})`;
  return base;
}

const BOOL_TEXT = {
  on_off: ["bool.on", "bool.off"],
  contact: ["bool.closed", "bool.open"],
  occupancy: ["bool.motion", "bool.no_motion"],
  water_leak: ["bool.leak", "bool.dry"],
  smoke: ["bool.detected", "bool.clear"],
  gas: ["bool.detected", "bool.clear"],
  carbon_monoxide: ["bool.detected", "bool.clear"],
  tamper: ["bool.tampered", "bool.ok"],
  vibration: ["bool.vibration", "bool.still"],
  battery_low: ["bool.low", "bool.ok"],
};
const ALERT_TRUE = new Set(["water_leak", "smoke", "gas", "carbon_monoxide", "tamper", "battery_low"]);

/** A number with its feature's precision and unit. */
function fmtNumber(f, v) {
  return fmtNum(v, digitsFor(f.step)) + (f.unit ? (f.unit === "%" ? "\u202f%" : "\u202f" + f.unit) : "");
}

/** A value as text, in the language. */
export function fmtValue(f, v) {
  if (v === undefined || v === null) return t("value.none");
  if (typeof v === "boolean") {
    const pair = BOOL_TEXT[f.capability] || ["bool.yes", "bool.no"];
    return t(v ? pair[0] : pair[1]);
  }
  if (typeof v === "number") return fmtNumber(f, v);
  if (typeof v === "string") {
    const group = `val.${f.capability}`;
    return hasTv(group, v) ? tv(group, v) : v;
  }
  if (f.type === "color" || (v && typeof v === "object" && "hue" in v && "saturation" in v)) {
    return t("color.value", { hue: fmtNum(v.hue, { maximumFractionDigits: 0 }), saturation: fmtNum(v.saturation, { maximumFractionDigits: 0 }) });
  }
  if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ");
  return JSON.stringify(v);
}

function isAlert(f, v) {
  return v === true && ALERT_TRUE.has(f.capability);
}

function valueOf(device, key) {
  const s = device.state && device.state[key];
  return s ? s.value : undefined;
}

// ----- sending ------------------------------------------------------------------------------

/** Sends `set` to a device; marks `el` busy meanwhile and shows errors. */
export async function send(device, set, el) {
  if (el) el.setAttribute("aria-busy", "true");
  try {
    await command(device.id, { set });
  } catch (e) {
    toast(t("error.command", { name: device.name, message: errorText(e) }), "error");
  } finally {
    if (el) setTimeout(() => el.removeAttribute("aria-busy"), 300);
  }
}

function offline(device) {
  return device.availability && device.availability.state === "offline";
}

// ----- controls -----------------------------------------------------------------------------

function toggleControl(device, f) {
  const label = featureLabel(device, f);
  const lid = nextId("l");
  const text = h("span", { class: "switch-text" });
  const btn = h("button", {
    type: "button", role: "switch", class: "switch", testid: `toggle-${f.key}`, dataset: { feature: f.key },
    "aria-labelledby": lid,
    on: { click: () => send(current, { [f.key]: !(valueOf(current, f.key) === true) }, btn) },
  }, h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })), text);
  let current = device;
  const row = h("div", { class: "row ctl" }, h("span", { id: lid, class: "ctl-label" }, label), btn);
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    btn.setAttribute("aria-checked", v === true ? "true" : "false");
    btn.dataset.value = v === undefined ? "" : String(v);
    text.textContent = v === undefined ? t("value.none") : fmtValue(f, v);
    btn.disabled = offline(d);
  }
  update(device);
  return { el: row, update };
}

function rangeControl(device, f, opts = {}) {
  const label = featureLabel(device, f);
  const min = typeof f.min === "number" ? f.min : 0;
  const max = typeof f.max === "number" ? f.max : 100;
  const step = typeof f.step === "number" && f.step > 0 ? f.step : (max - min) / 100;
  const out = h("output", { class: "ctl-value", "aria-hidden": "true" });
  let current = device;
  let dragging = false;
  const input = h("input", {
    type: "range", min, max, step, class: ["range", opts.className], testid: `slider-${f.key}`, dataset: { feature: f.key },
    "aria-label": `${label}`,
    on: {
      pointerdown: () => { dragging = true; },
      input: () => { out.textContent = fmtNumber(f, Number(input.value)); input.setAttribute("aria-valuetext", out.textContent); },
      change: () => {
        dragging = false;
        send(current, { [f.key]: Number(input.value) }, input);
      },
      blur: () => { dragging = false; },
    },
  });
  const row = h("div", { class: "ctl ctl-range" }, h("div", { class: "row" }, h("label", { for: input.id || (input.id = nextId()), class: "ctl-label" }, label), out), input);
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    input.disabled = offline(d);
    if (dragging && document.activeElement === input) return;
    if (typeof v === "number") {
      input.value = String(v);
      out.textContent = fmtNumber(f, v);
    } else out.textContent = t("value.none");
    input.setAttribute("aria-valuetext", out.textContent);
  }
  update(device);
  return { el: row, update };
}

function stepperControl(device, f) {
  const label = featureLabel(device, f);
  const step = typeof f.step === "number" && f.step > 0 ? f.step : 0.5;
  const value = h("output", { class: "stepper-value", testid: `value-${f.key}`, "aria-live": "polite" });
  let current = device;
  let target;
  let timer;
  const clamp = (x) => Math.min(typeof f.max === "number" ? f.max : Infinity, Math.max(typeof f.min === "number" ? f.min : -Infinity, x));
  const bump = (dir) => {
    const base = target !== undefined ? target : valueOf(current, f.key);
    if (typeof base !== "number") return;
    target = clamp(Math.round((base + dir * step) / step) * step);
    value.textContent = fmtNumber(f, target);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const v = target;
      target = undefined;
      send(current, { [f.key]: v }, value);
    }, 600);
  };
  const down = h("button", { type: "button", class: "btn round", testid: `step-down-${f.key}`, "aria-label": t("ctl.decrease", { what: label }), on: { click: () => bump(-1) } }, "−");
  const up = h("button", { type: "button", class: "btn round", testid: `step-up-${f.key}`, "aria-label": t("ctl.increase", { what: label }), on: { click: () => bump(1) } }, "+");
  const row = h("div", { class: "row ctl" }, h("span", { class: "ctl-label" }, label), h("div", { class: "stepper", role: "group", "aria-label": label }, down, value, up));
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    down.disabled = up.disabled = offline(d);
    if (target === undefined) value.textContent = typeof v === "number" ? fmtNumber(f, v) : t("value.none");
  }
  update(device);
  return { el: row, update };
}

function enumControl(device, f) {
  const label = featureLabel(device, f);
  let current = device;
  const sel = select({ class: "select", testid: `select-${f.key}`, dataset: { feature: f.key },
    on: { change: () => send(current, { [f.key]: sel.value }, sel) } },
  (f.values || []).map((v) => [v, fmtValue(f, v)]));
  const row = h("div", { class: "ctl" }, field(label, sel));
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    sel.disabled = offline(d);
    if (document.activeElement !== sel) sel.value = v === undefined ? "" : String(v);
  }
  update(device);
  return { el: row, update };
}

// A preview of a color without brightness: paler as it is less saturated, as a lamp looks.
function hsl(c) {
  const l = 50 + (100 - c.saturation) * 0.35;
  return `hsl(${Math.round(c.hue)} ${Math.round(c.saturation)}% ${Math.round(l)}%)`;
}

function colorControl(device, f) {
  const label = featureLabel(device, f);
  const pid = nextId("color");
  const chip = h("span", { class: "chip", "aria-hidden": "true" });
  const valueText = h("span", { class: "ctl-value", id: nextId("cv") });
  const btn = h("button", { type: "button", class: "btn swatch", testid: `color-${f.key}`, "aria-expanded": "false", "aria-controls": pid, "aria-describedby": valueText.id,
    on: { click: () => { panel.hidden = !panel.hidden; btn.setAttribute("aria-expanded", String(!panel.hidden)); } } },
  chip, h("span", null, label));
  let current = device;
  let busy = false;
  const hue = h("input", { type: "range", min: 0, max: 360, step: 1, class: "range hue", testid: `hue-${f.key}`, "aria-label": t("color.hue"),
    on: { pointerdown: () => { busy = true; }, input: preview, change: commit } });
  const sat = h("input", { type: "range", min: 0, max: 100, step: 1, class: "range sat", testid: `saturation-${f.key}`, "aria-label": t("color.saturation"),
    on: { pointerdown: () => { busy = true; }, input: preview, change: commit } });
  const presets = h("div", { class: "presets", role: "group", "aria-label": t("color.presets") },
    [[0, 100, "color.red"], [30, 100, "color.orange"], [55, 100, "color.yellow"], [120, 100, "color.green"], [200, 100, "color.cyan"], [240, 100, "color.blue"], [290, 100, "color.purple"], [330, 60, "color.pink"], [30, 20, "color.warm_white"]]
      .map(([hu, sa, name]) => {
        const b = h("button", { type: "button", class: "preset", "aria-label": t(name), title: t(name), on: { click: () => { hue.value = hu; sat.value = sa; preview(); commit(); } } });
        b.style.backgroundColor = hsl({ hue: hu, saturation: sa });
        return b;
      }));
  const panel = h("div", { class: "color-panel", id: pid, hidden: true },
    h("label", { class: "ctl-label", for: hue.id || (hue.id = nextId()) }, t("color.hue")), hue,
    h("label", { class: "ctl-label", for: sat.id || (sat.id = nextId()) }, t("color.saturation")), sat, presets);
  function preview() {
    const c = { hue: Number(hue.value), saturation: Number(sat.value) };
    chip.style.backgroundColor = hsl(c);
    sat.style.setProperty("--hue", String(c.hue));
    valueText.textContent = fmtValue(f, c);
    hue.setAttribute("aria-valuetext", fmtNum(c.hue) + "°");
    sat.setAttribute("aria-valuetext", fmtNum(c.saturation) + "\u202f%");
  }
  function commit() {
    busy = false;
    send(current, { [f.key]: { hue: Number(hue.value), saturation: Number(sat.value) } }, btn);
  }
  const row = h("div", { class: "ctl" }, h("div", { class: "row" }, btn, valueText), panel);
  function update(d) {
    current = d;
    btn.disabled = offline(d);
    const v = valueOf(d, f.key);
    if (busy || !v || typeof v !== "object") {
      if (!v) valueText.textContent = t("value.none");
      return;
    }
    hue.value = String(v.hue);
    sat.value = String(v.saturation);
    preview();
  }
  update(device);
  return { el: row, update };
}

function coverControl(device, stateF, posF) {
  let current = device;
  const parts = [];
  const updates = [];
  if (stateF && stateF.access && stateF.access.set) {
    const vals = stateF.values || ["open", "stop", "close"];
    const mk = (v, key) => vals.includes(v) && h("button", { type: "button", class: "btn", testid: `cover-${v}`,
      on: { click: (e) => send(current, { [stateF.key]: v }, e.currentTarget) } }, t(key));
    const group = h("div", { class: "btn-group", role: "group", "aria-label": featureLabel(device, stateF) },
      mk("open", "cover.open"), mk("stop", "cover.stop"), mk("close", "cover.close"));
    parts.push(group);
    updates.push((d) => { for (const b of group.querySelectorAll("button")) b.disabled = offline(d); });
  } else if (posF && posF.access && posF.access.set) {
    const group = h("div", { class: "btn-group", role: "group", "aria-label": featureLabel(device, posF) },
      h("button", { type: "button", class: "btn", testid: "cover-open", on: { click: (e) => send(current, { [posF.key]: 100 }, e.currentTarget) } }, t("cover.open")),
      h("button", { type: "button", class: "btn", testid: "cover-close", on: { click: (e) => send(current, { [posF.key]: 0 }, e.currentTarget) } }, t("cover.close")));
    parts.push(group);
  }
  if (posF) {
    const c = posF.access && posF.access.set ? rangeControl(device, posF) : reading(device, posF);
    parts.unshift(c.el);
    updates.push(c.update);
  }
  const el = h("div", { class: "ctl cover" }, parts);
  function update(d) {
    current = d;
    for (const u of updates) u(d);
  }
  update(device);
  return { el, update };
}

function textControl(device, f) {
  const label = featureLabel(device, f);
  let current = device;
  const input = h("input", { type: "text", class: "input", maxlength: f.max_length, testid: `text-${f.key}` });
  const save = h("button", { type: "button", class: "btn", on: { click: () => send(current, { [f.key]: input.value }, save) } }, t("btn.set"));
  const el = h("div", { class: "ctl" }, field(label, input), save);
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    if (document.activeElement !== input) input.value = v === undefined ? "" : String(v);
  }
  update(device);
  return { el, update };
}

function numberInputControl(device, f) {
  const label = featureLabel(device, f);
  let current = device;
  const input = h("input", { type: "number", class: "input", step: f.step || "any", min: f.min, max: f.max, testid: `number-${f.key}`, inputmode: "decimal" });
  const save = h("button", { type: "button", class: "btn", on: { click: () => input.value !== "" && send(current, { [f.key]: Number(input.value) }, save) } }, t("btn.set"));
  const el = h("div", { class: "ctl" }, field(label + (f.unit ? ` (${f.unit})` : ""), input), save);
  function update(d) {
    current = d;
    const v = valueOf(d, f.key);
    if (document.activeElement !== input) input.value = typeof v === "number" ? String(v) : "";
  }
  update(device);
  return { el, update };
}

function reading(device, f) {
  const label = featureLabel(device, f);
  const value = h("span", { class: "reading-value" });
  const el = h("div", { class: "row reading", testid: `reading-${f.key}`, dataset: { feature: f.key } }, h("span", { class: "ctl-label" }, label), value);
  function update(d) {
    const v = valueOf(d, f.key);
    value.textContent = fmtValue(f, v);
    el.classList.toggle("alert", isAlert(f, v));
    el.dataset.value = v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  update(device);
  return { el, update };
}

function lastEventControl(device, f) {
  const value = h("span", { class: "reading-value" });
  const el = h("div", { class: "row reading", testid: `event-${f.key}` }, h("span", { class: "ctl-label" }, t("device.last_event")), value);
  function update(d) {
    const e = state.lastEvents.get(d.id);
    value.textContent = e && e.feature === f.key ? `${tv("val.action", e.event)} · ${fmtRelative(e.at)}` : t("value.none");
  }
  update(device);
  return { el, update };
}

/** The control for one feature (readings for what cannot be set). */
export function control(device, f) {
  const settable = f.access && f.access.set;
  if (f.capability === "action" || (f.access && !f.access.observe && !settable)) return lastEventControl(device, f);
  if (!settable) return reading(device, f);
  switch (f.type) {
    case "bool": return toggleControl(device, f);
    case "color": return colorControl(device, f);
    case "enum": return enumControl(device, f);
    case "text": return textControl(device, f);
    case "number":
      if (f.capability === "setpoint") return stepperControl(device, f);
      if (typeof f.min === "number" && typeof f.max === "number") {
        const cls = f.capability === "color_temperature" ? "ct" : f.capability === "brightness" ? "bri" : undefined;
        return rangeControl(device, f, { className: cls });
      }
      return numberInputControl(device, f);
    default: return reading(device, f);
  }
}

/** Controls for a list of features: a cover's state and position become one control. */
export function controls(device, features) {
  const out = [];
  const coverState = features.find((f) => f.capability === "cover_state");
  const coverPos = features.find((f) => f.capability === "cover_position");
  if (coverState || coverPos) out.push(coverControl(device, coverState, coverPos));
  for (const f of features) {
    if (f === coverState || f === coverPos) continue;
    out.push(control(device, f));
  }
  return out;
}

// ----- badges and cards ---------------------------------------------------------------------

function badges(device) {
  const el = h("div", { class: "badges" });
  function update(d) {
    replace(el);
    const av = d.availability || { state: "unknown" };
    if (av.state === "offline") el.append(h("span", { class: "badge danger", testid: "badge-offline" }, tv("avail", "offline")));
    else if (av.state === "unknown") el.append(h("span", { class: "badge muted", testid: "badge-unknown" }, t("avail.unknown_short")));
    const bat = (d.features || []).find((f) => f.capability === "battery");
    const low = (d.features || []).find((f) => f.capability === "battery_low");
    if (bat || low) {
      const v = bat ? valueOf(d, bat.key) : undefined;
      const isLow = (typeof v === "number" && v < 20) || (low && valueOf(d, low.key) === true);
      if (v !== undefined || isLow) {
        const text = typeof v === "number" ? fmtNumber(bat, v) : t("bool.low");
        el.append(h("span", { class: ["badge", isLow && "warn"], testid: "badge-battery", title: t("cap.battery"), "aria-label": `${t("cap.battery")} ${text}` },
          icon("battery"), h("span", { "aria-hidden": "true" }, text)));
      }
    }
    const sig = (d.features || []).find((f) => f.capability === "signal_strength" || f.capability === "link_quality");
    if (sig) {
      const v = valueOf(d, sig.key);
      if (typeof v === "number") {
        const weak = sig.capability === "signal_strength" ? v < -80 : v < 30;
        const text = fmtNumber(sig, v);
        el.append(h("span", { class: ["badge", weak && "warn"], testid: "badge-signal", title: tv("cap", sig.capability), "aria-label": `${tv("cap", sig.capability)} ${text}` },
          icon("signal"), h("span", { "aria-hidden": "true" }, text)));
      }
    }
  }
  update(device);
  return { el, update };
}

function cardFeatures(device) {
  return (device.features || []).filter((f) => (f.category || "primary") === "primary");
}

function signature(device) {
  return JSON.stringify([device.name, device.area, (device.features || []).map((f) => [f.key, f.type, f.capability, f.category, f.access, f.min, f.max, f.values])]);
}

/** A device card for the home screen. */
export function deviceCard(device) {
  let sig = signature(device);
  const link = h("a", { class: "card-title", href: `#/device/${encodeURIComponent(device.id)}`, testid: "device-link" }, device.name);
  const b = badges(device);
  const reason = h("p", { class: "offline-reason", testid: "availability" });
  const body = h("div", { class: "card-body" });
  let parts = controls(device, cardFeatures(device));
  body.append(...parts.map((p) => p.el));
  const el = h("article", { class: "card", testid: "device-card", dataset: { deviceId: device.id }, "aria-label": device.name },
    h("header", { class: "card-head" }, h("h3", { testid: "device-name" }, link), b.el), reason, body);
  function update(d) {
    const s = signature(d);
    if (s !== sig) {
      sig = s;
      link.textContent = d.name;
      el.setAttribute("aria-label", d.name);
      parts = controls(d, cardFeatures(d));
      replace(body, ...parts.map((p) => p.el));
    } else for (const p of parts) p.update(d);
    b.update(d);
    const av = d.availability || { state: "unknown" };
    el.classList.toggle("is-offline", av.state === "offline");
    el.dataset.availability = av.state;
    reason.hidden = av.state !== "offline";
    reason.textContent = av.state === "offline" ? (av.reason ? t("avail.offline_because", { reason: reasonText(av) }) : tv("avail", "offline")) : "";
  }
  update(device);
  return { el, update };
}

export { badges };
