// The form editor of an automation: header fields, and the common triggers (state, event,
// availability, time, sun, interval), conditions (state, time) and actions (set on one or several
// devices, scene, delay, notify). Anything else in a definition (choose, mqtt, an area target,
// ...) is kept as it is and shown read-only, to be edited in the code view.

import { h, field, select, replace } from "../dom.js";
import { t, tv } from "../i18n.js";
import { state, areaName } from "../live.js";
import { featureLabel, fmtValue } from "../controls.js";
import { say } from "../say.js";

export const TRIGGER_KINDS = ["state", "event", "availability", "time", "sun", "interval"];
export const CONDITION_KINDS = ["state", "time"];
export const ACTION_KINDS = ["set", "scene", "delay", "notify"];
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const DEFAULTS = {
  trigger: {
    state: () => ({ state: { devices: [], feature: "" } }),
    event: () => ({ event: { devices: [] } }),
    availability: () => ({ availability: { devices: [], to: "offline" } }),
    time: () => ({ time: { at: "07:00" } }),
    sun: () => ({ sun: { event: "sunset" } }),
    interval: () => ({ interval: { every: "15m" } }),
  },
  condition: {
    state: () => ({ state: { devices: [], feature: "" } }),
    time: () => ({ time: { after: "22:00", before: "06:00" } }),
  },
  action: {
    set: () => ({ set: { devices: [], values: {} } }),
    scene: () => ({ scene: { id: "" } }),
    delay: () => ({ delay: "30s" }),
    notify: () => ({ notify: { message: "" } }),
  },
};

// Keys the form edits, per group and kind; an item with other keys is kept read-only.
const EDITABLE = {
  trigger: { state: ["devices", "feature", "from", "to", "above", "below", "for"], event: ["devices", "feature", "events"], availability: ["devices", "to", "for"], time: ["at", "weekdays"], sun: ["event", "offset_secs"], interval: ["every"] },
  condition: { state: ["devices", "feature", "is", "above", "below", "match"], time: ["after", "before", "weekdays"] },
  action: { set: ["devices", "values", "toggle", "transition"], scene: ["id", "transition"], delay: null, notify: ["message", "title"] },
};
const BESIDE = { trigger: ["id"], condition: [], action: ["alias"] };
const LABELS = {
  trigger: { n: "auto.trigger_n", none: "auto.no_triggers", add: "auto.add_trigger" },
  condition: { n: "auto.condition_n", none: "auto.no_conditions", add: "auto.add_condition" },
  action: { n: "auto.action_n", none: "auto.no_actions", add: "auto.add_action" },
};

/** The kind of an item: its one key besides `id` / `alias`. */
function kindOf(item) {
  return Object.keys(item || {}).find((k) => k !== "id" && k !== "alias") || "";
}

function editable(group, item) {
  const kind = kindOf(item);
  const spec = EDITABLE[group][kind];
  if (spec === undefined) return false;
  if (Object.keys(item).some((k) => k !== kind && !BESIDE[group].includes(k))) return false;
  const body = item[kind];
  if (spec === null) return typeof body === "string" || typeof body === "number";
  if (!body || typeof body !== "object" || Array.isArray(body)) return false;
  if (Object.keys(body).some((k) => !spec.includes(k))) return false;
  const many = group === "action" && kind === "set";
  if ("devices" in body && (!Array.isArray(body.devices) || (!many && body.devices.length > 1))) return false;
  if (group === "action" && kind === "set" && body.values && Object.values(body.values).some((v) => v === null)) return false;
  return true;
}

function deviceOptions(filter) {
  const list = [...state.devices.values()].filter(filter || (() => true))
    .sort((a, b) => (a.area ? areaName(a.area) : "~").localeCompare(b.area ? areaName(b.area) : "~") || String(a.name).localeCompare(String(b.name)));
  return [["", t("auto.choose_device")], ...list.map((d) => [d.id, d.area ? `${d.name} (${areaName(d.area)})` : d.name])];
}

function dev(id) {
  return id ? state.devices.get(id) : undefined;
}

function parseValue(f, raw) {
  if (raw === "") return undefined;
  if (!f) return raw;
  if (f.type === "bool") return raw === "true";
  if (f.type === "number") {
    const n = Number(raw);
    return Number.isFinite(n) ? n : undefined;
  }
  return raw;
}

/** An input for a value of feature `f`: `any` adds an empty "any value" choice. */
function valueInput(f, current, onChange, { any = true, toggle = false, testid, label }) {
  const attrs = { testid, "aria-label": label };
  if (f && f.type === "bool") {
    const opts = [...(any ? [["", t("auto.any_value")]] : []), ["true", fmtValue(f, true)], ["false", fmtValue(f, false)], ...(toggle ? [["toggle", t("auto.toggle")]] : [])];
    const s = select(Object.assign({ class: "select", on: { change: () => onChange(s.value === "toggle" ? "toggle" : parseValue(f, s.value)) } }, attrs), opts, current === undefined ? "" : String(current));
    return s;
  }
  if (f && f.type === "enum") {
    const s = select(Object.assign({ class: "select", on: { change: () => onChange(parseValue(f, s.value)) } }, attrs),
      [...(any ? [["", t("auto.any_value")]] : []), ...(f.values || []).map((v) => [v, fmtValue(f, v)])], current === undefined ? "" : String(current));
    return s;
  }
  if (f && f.type === "color") {
    const c = current && typeof current === "object" ? current : { hue: 0, saturation: 100 };
    const hue = h("input", { type: "number", min: 0, max: 360, step: 1, value: String(c.hue), class: "input short", "aria-label": t("color.hue"), testid: testid && `${testid}-hue` });
    const sat = h("input", { type: "number", min: 0, max: 100, step: 1, value: String(c.saturation), class: "input short", "aria-label": t("color.saturation"), testid: testid && `${testid}-saturation` });
    const fire = () => onChange({ hue: Number(hue.value) || 0, saturation: Number(sat.value) || 0 });
    hue.addEventListener("change", fire);
    sat.addEventListener("change", fire);
    if (!current) queueMicrotask(fire);
    return h("span", { class: "pair" }, hue, sat);
  }
  const isNum = f && f.type === "number";
  const input = h("input", Object.assign({ type: isNum ? "number" : "text", class: "input", step: isNum ? f.step || "any" : undefined, min: isNum ? f.min : undefined, max: isNum ? f.max : undefined,
    inputmode: isNum ? "decimal" : undefined, placeholder: any ? t("auto.any_value") : "", value: current === undefined ? "" : String(current) }, attrs));
  input.addEventListener("change", () => onChange(parseValue(f || { type: "text" }, input.value)));
  return input;
}

function setOrDelete(obj, key, v) {
  if (v === undefined || v === "" || (Array.isArray(v) && !v.length)) delete obj[key];
  else obj[key] = v;
}

function textInput(value, onChange, attrs = {}) {
  const el = h("input", Object.assign({ type: "text", class: "input", value: value === undefined ? "" : String(value), autocomplete: "off" }, attrs));
  el.addEventListener("change", () => onChange(el.value.trim()));
  return el;
}

function numberInput(value, onChange, attrs = {}) {
  const el = h("input", Object.assign({ type: "number", class: "input", step: "any", inputmode: "decimal", value: value === undefined ? "" : String(value) }, attrs));
  el.addEventListener("change", () => onChange(el.value === "" ? undefined : Number(el.value)));
  return el;
}

function weekdayChecks(selected, onChange) {
  const sel = new Set(selected || []);
  const boxes = WEEKDAYS.map((d) => {
    const cb = h("input", { type: "checkbox", value: d, checked: sel.has(d), testid: `weekday-${d}` });
    cb.addEventListener("change", () => onChange(WEEKDAYS.filter((x) => boxes.some((b) => b.value === x && b.checked))));
    return cb;
  });
  return h("fieldset", { class: "checks days" }, h("legend", null, t("auto.weekdays")), h("p", { class: "hint" }, t("auto.weekdays_hint")),
    boxes.map((cb) => h("label", { class: "check" }, cb, h("span", null, tv("weekday", cb.value)))));
}

// ----- the fields of each kind ---------------------------------------------------------------

function deviceAndFeature(body, { featureFilter, deviceFilter, onDevice, testPrefix }) {
  const parts = [];
  const id = (body.devices || [])[0] || "";
  const d = dev(id);
  const devSel = select({ class: "select", testid: "field-device" }, deviceOptions(deviceFilter), id);
  devSel.addEventListener("change", () => {
    body.devices = devSel.value ? [devSel.value] : [];
    onDevice();
  });
  parts.push(field(t("auto.device"), devSel));
  if (id && !d) parts.push(h("p", { class: "error-box" }, t("auto.device_missing", { id })));
  let f;
  if (d && "feature" in body) {
    const feats = (d.features || []).filter(featureFilter);
    if (!body.feature && feats.length) body.feature = feats[0].key;
    f = feats.find((x) => x.key === body.feature);
    const fSel = select({ class: "select", testid: `${testPrefix || "field"}-feature` }, feats.map((x) => [x.key, featureLabel(d, x)]), body.feature);
    fSel.addEventListener("change", () => {
      body.feature = fSel.value;
      for (const k of ["to", "from", "is", "above", "below"]) delete body[k];
      onDevice();
    });
    parts.push(field(t("auto.feature"), fSel));
  }
  return { parts, device: d, feature: f };
}

const observable = (f) => f.access && f.access.observe !== false && f.capability !== "action";

// Rows of a device list still empty (chosen with "add a device"), per body being edited.
const emptyRows = new WeakMap();

/** Several devices: a select per device, one more on "add a device", each removable. */
function deviceList(body, { deviceFilter, onDevice }) {
  const ids = body.devices || [];
  const blanks = emptyRows.get(body) || (ids.length ? 0 : 1);
  const rows = [...ids, ...Array(blanks).fill("")];
  const parts = rows.map((id, i) => {
    const taken = (d) => d.id === id || !ids.includes(d.id);
    const sel = select({ class: "select", testid: "field-device", dataset: { index: String(i) } },
      deviceOptions((d) => (!deviceFilter || deviceFilter(d)) && taken(d)), id);
    sel.addEventListener("change", () => {
      const next = rows.slice();
      next[i] = sel.value;
      body.devices = next.filter(Boolean);
      emptyRows.set(body, next.filter((x) => !x).length);
      onDevice();
    });
    const remove = rows.length > 1 ? h("button", { type: "button", class: "btn small", testid: "remove-device", "aria-label": t("auto.remove_device_n", { n: i + 1 }),
      on: { click: () => {
        const next = rows.slice();
        next.splice(i, 1);
        body.devices = next.filter(Boolean);
        emptyRows.set(body, next.filter((x) => !x).length);
        onDevice();
      } } }, t("btn.remove")) : null;
    const missing = id && !dev(id) ? h("p", { class: "error-box" }, t("auto.device_missing", { id })) : null;
    return h("div", { class: "device-row" }, field(i === 0 ? t("auto.device") : t("auto.device_n", { n: i + 1 }), sel), remove, missing);
  });
  const add = h("button", { type: "button", class: "btn small", testid: "add-device", on: { click: () => {
    emptyRows.set(body, blanks + 1);
    onDevice();
  } } }, t("auto.add_device"));
  return [...parts, blanks ? null : add];
}

function stateTrigger(body, redraw) {
  const { parts, feature } = deviceAndFeature(body, { featureFilter: observable, onDevice: redraw });
  if (!feature) return parts;
  parts.push(h("div", { class: "grid2" },
    field(t("auto.to"), valueInput(feature, body.to, (v) => setOrDelete(body, "to", v), { testid: "field-to" })),
    field(t("auto.from"), valueInput(feature, body.from, (v) => setOrDelete(body, "from", v), { testid: "field-from" }))));
  if (feature.type === "number") {
    parts.push(h("div", { class: "grid2" },
      field(t("auto.above"), numberInput(body.above, (v) => setOrDelete(body, "above", v), { testid: "field-above" })),
      field(t("auto.below"), numberInput(body.below, (v) => setOrDelete(body, "below", v), { testid: "field-below" }))));
  }
  parts.push(field(t("auto.for"), textInput(body.for, (v) => setOrDelete(body, "for", v), { testid: "field-for", placeholder: "2m" }), t("auto.duration_hint")));
  return parts;
}

function eventTrigger(body, redraw) {
  const eventFeature = (f) => f.capability === "action" || (f.access && f.access.observe === false && f.type === "enum");
  const { parts, device } = deviceAndFeature(body, { deviceFilter: (d) => (d.features || []).some(eventFeature), featureFilter: eventFeature, onDevice: redraw });
  if (!device) return parts;
  const feats = (device.features || []).filter(eventFeature);
  const f = feats.find((x) => x.key === (body.feature || "action")) || feats[0];
  if (!f) return parts;
  if (feats.length > 1) {
    const fSel = select({ class: "select", testid: "field-feature" }, feats.map((x) => [x.key, featureLabel(device, x)]), f.key);
    fSel.addEventListener("change", () => { body.feature = fSel.value; delete body.events; redraw(); });
    parts.push(field(t("auto.feature"), fSel));
  }
  const sel = new Set(body.events || []);
  const boxes = (f.values || []).map((v) => {
    const cb = h("input", { type: "checkbox", value: v, checked: sel.has(v), testid: `event-${v}` });
    cb.addEventListener("change", () => setOrDelete(body, "events", boxes.filter((b) => b.checked).map((b) => b.value)));
    return cb;
  });
  parts.push(h("fieldset", { class: "checks" }, h("legend", null, t("auto.events")), h("p", { class: "hint" }, t("auto.events_hint")),
    boxes.map((cb) => h("label", { class: "check" }, cb, h("span", null, tv("val.action", cb.value))))));
  return parts;
}

function timeInput(value, onChange, testid) {
  const el = h("input", { type: "time", class: "input", value: value || "", testid, step: value && value.length > 5 ? 1 : 60 });
  el.addEventListener("change", () => onChange(el.value || undefined));
  return el;
}

function timeTrigger(body) {
  return [field(t("auto.at"), timeInput(body.at, (v) => setOrDelete(body, "at", v), "field-at")),
    weekdayChecks(body.weekdays, (v) => setOrDelete(body, "weekdays", v))];
}

function sunTrigger(body) {
  const ev = select({ class: "select", testid: "field-sun-event", on: { change: () => { body.event = ev.value; } } },
    ["sunrise", "sunset", "dawn", "dusk"].map((e) => [e, tv("sun_event", e)]), body.event || "sunset");
  const mins = numberInput(body.offset_secs ? body.offset_secs / 60 : undefined, (v) => setOrDelete(body, "offset_secs", v === undefined ? undefined : Math.round(v * 60)), { testid: "field-offset", step: 1 });
  return [field(t("auto.sun_event"), ev), field(t("auto.offset_minutes"), mins, t("auto.offset_hint"))];
}

function intervalTrigger(body) {
  return [field(t("auto.every"), textInput(body.every, (v) => setOrDelete(body, "every", v), { testid: "field-every", placeholder: "15m" }), t("auto.duration_hint"))];
}

function stateCondition(body, redraw) {
  const { parts, feature } = deviceAndFeature(body, { featureFilter: observable, onDevice: redraw });
  if (!feature) return parts;
  parts.push(field(t("auto.is"), valueInput(feature, body.is, (v) => setOrDelete(body, "is", v), { testid: "field-is" })));
  if (feature.type === "number") {
    parts.push(h("div", { class: "grid2" },
      field(t("auto.above"), numberInput(body.above, (v) => setOrDelete(body, "above", v), { testid: "field-above" })),
      field(t("auto.below"), numberInput(body.below, (v) => setOrDelete(body, "below", v), { testid: "field-below" }))));
  }
  return parts;
}

function timeCondition(body) {
  return [h("div", { class: "grid2" },
    field(t("auto.after"), timeInput(body.after, (v) => setOrDelete(body, "after", v), "field-after")),
    field(t("auto.before"), timeInput(body.before, (v) => setOrDelete(body, "before", v), "field-before"))),
  weekdayChecks(body.weekdays, (v) => setOrDelete(body, "weekdays", v))];
}

function setAction(body, redraw) {
  const settable = (f) => f.access && f.access.set;
  const parts = deviceList(body, { deviceFilter: (d) => (d.features || []).some(settable), onDevice: () => {
    // Keep only what every chosen device can still be set to.
    const keys = commonKeys(body.devices || [], settable);
    for (const k of Object.keys(body.values || {})) if (!keys.has(k)) delete body.values[k];
    if (body.toggle) body.toggle = body.toggle.filter((k) => keys.has(k));
    if (body.toggle && !body.toggle.length) delete body.toggle;
    redraw();
  } });
  const devices = (body.devices || []).map(dev).filter(Boolean);
  const device = devices[0];
  if (!device) return parts;
  body.values = body.values || {};
  const keys = commonKeys(body.devices, settable);
  if (!keys.size) {
    parts.push(h("p", { class: "hint", testid: "no-common-features" }, t("auto.no_common_features")));
    return parts;
  }
  const rows = (device.features || []).filter((f) => settable(f) && keys.has(f.key)).map((f) => {
    const inToggle = (body.toggle || []).includes(f.key);
    const on = f.key in body.values || inToggle;
    const cb = h("input", { type: "checkbox", checked: on, testid: `value-include-${f.key}` });
    const label = featureLabel(device, f);
    const holder = h("span", { class: "value-holder" });
    const setValue = (v) => {
      body.toggle = (body.toggle || []).filter((k) => k !== f.key);
      if (v === "toggle") {
        delete body.values[f.key];
        body.toggle.push(f.key);
      } else if (v === undefined) delete body.values[f.key];
      else body.values[f.key] = v;
      if (!body.toggle.length) delete body.toggle;
    };
    const initial = inToggle ? "toggle" : body.values[f.key];
    const draw = () => {
      replace(holder, cb.checked ? valueInput(f, initial === undefined ? defaultValue(f) : initial, setValue, { any: false, toggle: f.type === "bool", testid: `value-${f.key}`, label }) : "");
    };
    cb.addEventListener("change", () => {
      if (cb.checked) setValue(defaultValue(f));
      else setValue(undefined);
      draw();
    });
    draw();
    return h("div", { class: "value-row" }, h("label", { class: "check" }, cb, h("span", null, label)), holder);
  });
  parts.push(h("fieldset", { class: "checks" }, h("legend", null, t("auto.values")), rows));
  parts.push(field(t("auto.transition"), numberInput(body.transition, (v) => setOrDelete(body, "transition", v), { testid: "field-transition", min: 0, max: 3600 }), t("auto.transition_hint")));
  return parts;
}

/** Keys of the features every device of `ids` has and `pick` accepts (with the same type). */
function commonKeys(ids, pick) {
  const devices = ids.map(dev).filter(Boolean);
  if (!devices.length) return new Set();
  const [first, ...rest] = devices;
  return new Set((first.features || []).filter(pick)
    .filter((f) => rest.every((d) => (d.features || []).some((g) => g.key === f.key && g.type === f.type && pick(g))))
    .map((f) => f.key));
}

function availabilityTrigger(body, redraw) {
  const { parts } = deviceAndFeature(body, { onDevice: redraw });
  const to = select({ class: "select", testid: "field-availability-to", on: { change: () => { body.to = to.value; } } },
    ["offline", "online"].map((v) => [v, tv("avail", v)]), body.to || "offline");
  parts.push(field(t("auto.becomes"), to),
    field(t("auto.for"), textInput(body.for, (v) => setOrDelete(body, "for", v), { testid: "field-for", placeholder: "10m" }), t("auto.duration_hint")));
  return parts;
}

function defaultValue(f) {
  if (f.type === "bool") return true;
  if (f.type === "enum") return (f.values || [])[0];
  if (f.type === "number") return typeof f.max === "number" ? f.max : typeof f.min === "number" ? f.min : 0;
  if (f.type === "color") return { hue: 30, saturation: 80 };
  return "";
}

function sceneAction(body, _redraw, ctx) {
  const opts = [["", t("auto.choose_scene")], ...(ctx.scenes || []).map((s) => [s.id, s.name])];
  if (body.id && !(ctx.scenes || []).some((s) => s.id === body.id)) opts.push([body.id, body.id]);
  const s = select({ class: "select", testid: "field-scene", on: { change: () => { body.id = s.value; } } }, opts, body.id || "");
  return [field(t("auto.scene"), s), field(t("auto.transition"), numberInput(body.transition, (v) => setOrDelete(body, "transition", v), { testid: "field-transition", min: 0, max: 3600 }))];
}

function notifyAction(body) {
  const msg = h("textarea", { class: "input", rows: 2, testid: "field-message" }, body.message || "");
  msg.addEventListener("change", () => { body.message = msg.value; });
  return [field(t("auto.title_field"), textInput(body.title, (v) => setOrDelete(body, "title", v), { testid: "field-title" })),
    field(t("auto.message"), msg, t("auto.message_hint"))];
}

const FIELDS = {
  trigger: { state: stateTrigger, event: eventTrigger, availability: availabilityTrigger, time: timeTrigger, sun: sunTrigger, interval: intervalTrigger },
  condition: { state: stateCondition, time: timeCondition },
  action: { set: setAction, scene: sceneAction, notify: notifyAction },
};

// ----- items and lists --------------------------------------------------------------------

function itemEditor(group, list, index, redrawList, ctx) {
  const item = list[index];
  const kind = kindOf(item);
  const kinds = group === "trigger" ? TRIGGER_KINDS : group === "condition" ? CONDITION_KINDS : ACTION_KINDS;
  const box = h("div", { class: "item", testid: `${group}-item`, dataset: { index, kind } });
  const redraw = () => box.replaceWith(itemEditor(group, list, index, redrawList, ctx));
  const title = h("h4", { class: "item-title" }, t(LABELS[group].n, { n: index + 1 }));
  const tools = h("div", { class: "item-tools" },
    group === "action" && index > 0 ? h("button", { type: "button", class: "icon-btn", "aria-label": t("auto.move_up"), title: t("auto.move_up"), testid: "move-up",
      on: { click: () => { [list[index - 1], list[index]] = [list[index], list[index - 1]]; redrawList(); } } }, "↑") : null,
    group === "action" && index < list.length - 1 ? h("button", { type: "button", class: "icon-btn", "aria-label": t("auto.move_down"), title: t("auto.move_down"), testid: "move-down",
      on: { click: () => { [list[index + 1], list[index]] = [list[index], list[index + 1]]; redrawList(); } } }, "↓") : null,
    h("button", { type: "button", class: "btn small danger", testid: `remove-${group}`, "aria-label": t("auto.remove_n", { what: title.textContent }),
      on: { click: () => { list.splice(index, 1); redrawList(); } } }, t("btn.remove")));
  box.append(h("div", { class: "item-head" }, title, tools));
  if (!editable(group, item)) {
    box.classList.add("raw");
    box.append(h("p", { class: "hint" }, t("auto.raw_item", { kind: tv(group, kind) })), h("pre", { class: "mono out", testid: "raw-item" }, JSON.stringify(item, null, 2)));
    return box;
  }
  const kindSel = select({ class: "select", testid: `${group}-kind` }, kinds.map((k) => [k, tv(group, k)]), kind);
  kindSel.addEventListener("change", () => {
    const fresh = DEFAULTS[group][kindSel.value]();
    if (item.id) fresh.id = item.id;
    if (item.alias) fresh.alias = item.alias;
    list[index] = fresh;
    redraw();
    box.isConnected || document.querySelector(`[data-testid="${group}-item"][data-index="${index}"] [data-testid="${group}-kind"]`)?.focus();
  });
  box.append(field(t("auto.kind"), kindSel));
  const fields = FIELDS[group][kind];
  if (kind === "delay") {
    box.append(field(t("auto.delay"), textInput(item.delay, (v) => { item.delay = v; }, { testid: "field-delay", placeholder: "30s" }), t("auto.duration_hint")));
  } else if (fields) {
    box.append(...fields(item[kind], redraw, ctx));
  }
  if (group === "trigger") {
    box.append(h("details", { class: "details", open: !!item.id }, h("summary", null, t("auto.more")),
      field(t("auto.trigger_id"), textInput(item.id, (v) => setOrDelete(item, "id", v), { testid: "field-trigger-id" }), t("auto.trigger_id_hint"))));
  }
  return box;
}

function listEditor(group, list, ctx, label) {
  const wrap = h("fieldset", { class: "group", testid: `${group}s` });
  const draw = () => {
    replace(wrap, h("legend", null, label),
      list.length ? null : h("p", { class: "hint" }, t(LABELS[group].none)),
      list.map((_, i) => itemEditor(group, list, i, draw, ctx)),
      h("button", { type: "button", class: "btn", testid: `add-${group}`, on: { click: () => {
        list.push(DEFAULTS[group][group === "action" ? "set" : "state"]());
        draw();
        wrap.querySelector(`[data-testid="${group}-item"]:last-of-type [data-testid="${group}-kind"]`)?.focus();
      } } }, t(LABELS[group].add)));
  };
  draw();
  return wrap;
}

function slug(name) {
  const s = String(name).toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
  return s || "automation";
}

/**
 * The form for `def` (a copy is edited). `ctx`: {isNew, scenes, save(def) -> Promise, check(def) -> Promise}.
 * Returns the form element; faults from the hub are shown by `showFaults(faults)`.
 */
export function automationForm(def, ctx) {
  const m = JSON.parse(JSON.stringify(def));
  m.triggers = m.triggers || [];
  m.conditions = m.conditions || [];
  m.actions = m.actions || [];
  let idTouched = !ctx.isNew;
  const name = h("input", { value: m.name || "", required: true, testid: "automation-name", autocomplete: "off", maxlength: 200 });
  const id = h("input", { value: m.id || "", required: true, testid: "automation-id", autocomplete: "off", pattern: "[a-z0-9_]+", readOnly: !ctx.isNew, autocapitalize: "none", spellcheck: "false" });
  name.addEventListener("input", () => {
    m.name = name.value;
    if (!idTouched) { id.value = slug(name.value); m.id = id.value; }
  });
  id.addEventListener("input", () => { idTouched = true; m.id = id.value.trim(); });
  const desc = h("textarea", { class: "input", rows: 2, testid: "automation-description" }, m.description || "");
  desc.addEventListener("change", () => setOrDelete(m, "description", desc.value.trim()));
  const mode = select({ class: "select", testid: "automation-mode", on: { change: () => { m.mode = mode.value; } } }, ["single", "restart", "queued", "parallel"].map((x) => [x, tv("mode", x)]), m.mode || "single");
  const enabledBox = h("input", { type: "checkbox", checked: m.enabled !== false, testid: "automation-enabled-field" });
  enabledBox.addEventListener("change", () => { m.enabled = enabledBox.checked; });
  const faults = h("div", { testid: "automation-faults", "aria-live": "assertive" });
  const save = h("button", { class: "btn primary", testid: "save-automation" }, t("btn.save"));
  const check = h("button", { type: "button", class: "btn", testid: "check-automation" }, t("auto.check"));
  const form = h("form", { class: "form automation-form", testid: "automation-form", novalidate: true },
    field(t("auto.name"), name),
    field(t("auto.id"), id, ctx.isNew ? t("auto.id_hint") : t("auto.id_fixed")),
    field(t("auto.description"), desc),
    h("div", { class: "grid2" }, field(t("auto.mode"), mode, t("auto.mode_hint")), h("label", { class: "check" }, enabledBox, h("span", null, t("auto.enabled")))),
    listEditor("trigger", m.triggers, ctx, t("auto.triggers")),
    listEditor("condition", m.conditions, ctx, t("auto.conditions")),
    listEditor("action", m.actions, ctx, t("auto.actions")),
    faults,
    h("div", { class: "actions" }, check, save));
  const clean = () => {
    const out = JSON.parse(JSON.stringify(m));
    out.name = name.value.trim();
    out.id = id.value.trim();
    if (!out.conditions.length) delete out.conditions;
    return out;
  };
  function showFaults(e) {
    replace(faults);
    for (const el of form.querySelectorAll(".item.has-fault")) el.classList.remove("has-fault");
    for (const el of form.querySelectorAll(".item-fault")) el.remove();
    if (!e) return;
    const list = (e.details && Array.isArray(e.details.faults) && e.details.faults) || (Array.isArray(e.faults) && e.faults) || null;
    faults.append(h("p", { class: "error-box", role: "alert" }, list ? t("auto.has_faults", { n: list.length }) : e.message));
    if (list) {
      faults.append(h("ul", { class: "faults" }, list.map((f) => h("li", null, f.path ? h("code", null, f.path) : null, f.path ? " " : null, say(f.say, f.message)))));
      for (const f of list) {
        const mt = /^(triggers|conditions|actions)\[(\d+)\]/.exec(f.path || "");
        if (!mt) continue;
        const group = mt[1].slice(0, -1);
        const el = form.querySelector(`[data-testid="${group}-item"][data-index="${mt[2]}"]`);
        if (el) {
          el.classList.add("has-fault");
          el.append(h("p", { class: "item-fault" }, say(f.say, f.message)));
        }
      }
    }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showFaults(null);
    const out = clean();
    if (!out.name) return showFaults({ message: t("error.name_required") });
    if (!/^[a-z0-9_]+$/.test(out.id)) return showFaults({ message: t("auto.bad_id") });
    save.disabled = true;
    try { await ctx.save(out); } catch (err) { showFaults(err); }
    save.disabled = false;
  });
  check.addEventListener("click", async () => {
    showFaults(null);
    try {
      const r = await ctx.check(clean());
      if (r.valid) faults.append(h("p", { class: "ok-box", role: "status" }, t("auto.valid")));
      else showFaults({ faults: r.faults });
    } catch (err) { showFaults(err); }
  });
  return form;
}


