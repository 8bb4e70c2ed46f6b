// Device detail: every feature with its control, a history chart of numeric features (hour, day,
// week), the event log, rename / area / remove (administrators), and diagnostics.

import { h, field, select, replace } from "../dom.js";
import { t, tv, fmtDateTime, fmtRelative, fmtWhen } from "../i18n.js";
import { api, seg } from "../api.js";
import { state, isAdmin, command, areaName } from "../live.js";
import { controls, featureLabel, fmtValue, badges } from "../controls.js";
import { drawChart, summary } from "../chart.js";
import { pageHead, loading, errorBox, errorText, confirmDialog, toast, section, empty, reasonText } from "../ui.js";

const RANGES = [["hour", 3600e3, "history.hour"], ["day", 86400e3, "history.day"], ["week", 7 * 86400e3, "history.week"]];
const rangeLabel = (r) => t(RANGES.find((x) => x[0] === r)[2]);

export function originText(ctx) {
  const o = ctx && ctx.origin;
  if (!o) return "";
  if (o.kind === "user") return t("origin.by_user", { name: o.name || "" });
  if (o.kind === "automation") return t("origin.by_automation", { id: o.id || "" });
  return tv("origin", o.kind);
}

/** The secret each adapter keeps per device (named by the device's native id), and its words:
 * a Bluetooth sensor's bind key, a Shelly's password, an ESPHome device's API key. */
const SECRETS = {
  ble: { title: "device.bind_key_title", label: "device.bind_key", hint: "device.bind_key_hint", set: "device.bind_key_set", none: "device.bind_key_none", saved: "device.bind_key_saved", removed: "device.bind_key_removed" },
  shelly: { title: "device.password_title", label: "device.password", hint: "device.password_hint", set: "device.password_set", none: "device.password_none", saved: "device.password_saved", removed: "device.password_removed" },
  esphome: { title: "device.bind_key_title", label: "device.api_key", hint: "device.api_key_hint", set: "device.bind_key_set", none: "device.bind_key_none", saved: "device.bind_key_saved", removed: "device.bind_key_removed" },
};

/** A device's secret (see SECRETS): set or removed, never shown. */
function buildKey(d) {
  const words = SECRETS[d.adapter];
  const name = d.id.slice(d.id.indexOf(":") + 1);
  const path = `/adapters/${seg(d.adapter)}/secrets/${seg(name)}`;
  const status = h("p", { class: "muted", testid: "bind-key-status" }, loading());
  const input = h("input", { type: "password", class: "input", autocomplete: "off", spellcheck: "false", testid: "bind-key-input" });
  const save = h("button", { type: "submit", class: "btn primary", testid: "bind-key-save" }, t("btn.save"));
  const remove = h("button", { type: "button", class: "btn", testid: "bind-key-remove", hidden: true }, t("btn.remove"));
  const err = h("div", { "aria-live": "assertive" });
  function show() {
    api("GET", `/adapters/${seg(d.adapter)}/secrets`).then((r) => {
      const s = ((r && r.secrets) || []).find((x) => x.name === name);
      status.textContent = s ? t(words.set, { when: fmtRelative(s.updated_at) }) : t(words.none);
      status.dataset.set = String(!!s);
      remove.hidden = !s;
    }).catch((e) => replace(status, errorText(e)));
  }
  const form = h("form", { class: "inline-form", testid: "bind-key-form", on: { submit: async (e) => {
    e.preventDefault();
    replace(err);
    save.disabled = true;
    try {
      await api("PUT", path, { value: input.value.trim() });
      input.value = "";
      toast(t(words.saved));
      show();
    } catch (x) { replace(err, errorBox(x)); }
    save.disabled = false;
  } } }, field(t(words.label), input, t(words.hint)), save);
  remove.addEventListener("click", async () => {
    try { await api("DELETE", path); toast(t(words.removed)); show(); } catch (x) { toast(errorText(x), "error"); }
  });
  show();
  return section(t(words.title), "bind-key-section", h("div", { class: "panel" }, status, form, remove, err));
}

export function renderDevice(root, [id], app) {
  const head = h("div");
  const body = h("div", { class: "device-detail", testid: "device-detail", dataset: { deviceId: id } });
  root.append(head, body);
  let built = null;
  let chartState = { feature: null, range: "day", points: [], token: 0 };
  let logEntries = [];
  let ro = null;

  function device() {
    return state.devices.get(id);
  }

  function build() {
    const d = device();
    if (!state.ready) {
      replace(head, pageHead(t("device.title"), { back: "#/home" }));
      replace(body, loading());
      built = null;
      return;
    }
    if (!d) {
      replace(head, pageHead(t("device.title"), { back: "#/home" }));
      replace(body, empty(t("device.gone"), "device-gone"));
      built = null;
      return;
    }
    const b = badges(d);
    const title = pageHead(d.name, { back: "#/home", testid: "device-title" });
    title.append(b.el);
    replace(head, title);

    const groups = [["primary", "device.controls"], ["config", "device.settings"], ["diagnostic", "device.diagnostic_values"]];
    const parts = [];
    const secs = [];
    for (const [cat, label] of groups) {
      const feats = (d.features || []).filter((f) => (f.category || "primary") === cat);
      if (!feats.length) continue;
      const cs = controls(d, feats);
      parts.push(...cs);
      secs.push(section(t(label), `features-${cat}`, h("div", { class: "panel" }, cs.map((c) => c.el))));
    }
    const canRefresh = (d.features || []).some((f) => f.access && f.access.get);
    if (canRefresh) {
      secs[0]?.append(h("button", { type: "button", class: "btn", testid: "device-refresh", on: { click: async (e) => {
        e.currentTarget.disabled = true;
        try { await command(d.id, { refresh: true }); toast(t("device.refresh_sent")); } catch (err) { toast(errorText(err), "error"); }
        e.currentTarget.disabled = false;
      } } }, t("device.refresh")));
    }

    const chartSec = buildChart(d);
    const logSec = buildLog();
    const manageSec = isAdmin() ? buildManage(d) : null;
    const keySec = isAdmin() && SECRETS[d.adapter] ? buildKey(d) : null;
    const diag = h("dl", { class: "diag", testid: "diagnostics" });
    const diagSec = section(t("device.diagnostics"), "diagnostics-section", diag);
    replace(body, ...secs, chartSec, logSec, manageSec, keySec, diagSec);
    built = { parts, badges: b, diag, sig: JSON.stringify([d.name, d.area, (d.features || []).map((f) => [f.key, f.type, f.category, f.access])]) };
    fillDiag(d);
  }

  function fillDiag(d) {
    const av = d.availability || { state: "unknown" };
    const rows = [
      ["device.id", d.id],
      ["device.adapter", d.adapter],
      ["device.manufacturer", d.manufacturer],
      ["device.model", d.model],
      ["device.firmware", d.firmware],
      ["device.power_source", d.power_source ? tv("power_source", d.power_source) : null],
      ["device.via", d.via ? (state.devices.get(d.via)?.name || d.via) : null],
      ["device.area", d.area ? areaName(d.area) : t("home.no_area")],
      ["device.last_seen", d.last_seen ? `${fmtDateTime(d.last_seen)} (${fmtRelative(d.last_seen)})` : t("value.none")],
      ["device.availability", tv("avail", av.state) + (av.since ? ` · ${t("device.since", { when: fmtDateTime(av.since) })}` : "")],
      ["device.reason", reasonText(av) || null],
    ];
    replace(built.diag, ...rows.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) =>
      [h("dt", null, t(k)), h("dd", { testid: k.replace("device.", "diag-") }, v)]));
  }

  // ----- history chart -----
  function buildChart(d) {
    const numeric = (d.features || []).filter((f) => f.type === "number" && f.access && f.access.observe !== false);
    if (!numeric.length) return null;
    if (!chartState.feature || !numeric.some((f) => f.key === chartState.feature)) {
      chartState.feature = (numeric.find((f) => (f.category || "primary") === "primary") || numeric[0]).key;
    }
    const sel = select({ class: "select", testid: "history-feature-select", on: { change: () => { chartState.feature = sel.value; load(); } } },
      numeric.map((f) => [f.key, featureLabel(d, f)]), chartState.feature);
    const rangeBtns = RANGES.map(([r]) => h("button", { type: "button", class: "btn seg", testid: `history-range-${r}`, "aria-pressed": String(r === chartState.range),
      on: { click: () => { chartState.range = r; for (const b of rangeBtns) b.setAttribute("aria-pressed", String(b.dataset.testid === `history-range-${r}`)); load(); } } }, rangeLabel(r)));
    const box = h("div", { class: "chart", testid: "history-chart" });
    const sum = h("div");
    const note = h("p", { class: "hint" });
    const sec = section(t("device.history"), "history-section", field(t("history.feature"), sel),
      h("div", { class: "btn-group", role: "group", "aria-label": t("history.range") }, rangeBtns), box, sum, note);
    async function load() {
      const token = ++chartState.token;
      const span = RANGES.find(([r]) => r === chartState.range)[1];
      const to = Date.now();
      const from = to - span;
      replace(box, loading());
      const q = (p) => `/devices/${seg(id)}/history?${new URLSearchParams(p)}`;
      try {
        const [r, before] = await Promise.all([
          api("GET", q({ feature: chartState.feature, from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: "5000" })),
          api("GET", q({ feature: chartState.feature, to: new Date(from).toISOString(), limit: "1" })).catch(() => ({ entries: [] })),
        ]);
        if (token !== chartState.token || !root.isConnected) return;
        const pts = [];
        for (const e of before.entries || []) if (typeof e.value === "number") pts.push({ t: from, v: e.value });
        for (const e of r.entries || []) if (typeof e.value === "number" && e.kind !== "event") pts.push({ t: Date.parse(e.at), v: e.value });
        chartState.points = pts;
        chartState.from = from;
        chartState.span = span;
        note.textContent = r.truncated ? t("history.truncated") : "";
        draw();
      } catch (e) {
        if (token === chartState.token) replace(box, errorBox(e));
      }
    }
    function draw() {
      const dev = device();
      if (!dev || !chartState.span) return;
      const f = (dev.features || []).find((x) => x.key === chartState.feature);
      if (!f) return;
      const to = Date.now();
      const from = to - chartState.span;
      const pts = chartState.points.filter((p, i, all) => p.t >= from || (all[i + 1] && all[i + 1].t > from) || i === all.length - 1)
        .map((p) => (p.t < from ? { t: from, v: p.v } : p));
      drawChart(box, pts, { from, to, unit: f.unit, step: !!(f.access && f.access.set),
        label: t("history.chart_label", { what: featureLabel(dev, f), range: rangeLabel(chartState.range) }) });
      replace(sum, summary(pts, f, fmtValue, t));
    }
    chartState.draw = draw;
    load();
    if (ro) ro.disconnect();
    if ("ResizeObserver" in window) {
      let last = 0;
      ro = new ResizeObserver(() => {
        const w = box.clientWidth;
        if (Math.abs(w - last) > 8 && chartState.points) { last = w; draw(); }
      });
      ro.observe(box);
    }
    return sec;
  }

  // ----- event log -----
  function buildLog() {
    const list = h("ol", { class: "log", testid: "event-log" });
    const sec = section(t("device.event_log"), "event-log-section", list);
    const render = () => {
      const d = device();
      if (!d) return;
      if (!logEntries.length) {
        replace(list, h("li", { class: "empty" }, t("device.log_empty")));
        return;
      }
      replace(list, ...logEntries.slice(0, 100).map((e) => {
        const f = (d.features || []).find((x) => x.key === e.feature) || { key: e.feature, capability: "other" };
        const what = e.kind === "event" ? tv("val.action", e.value) : fmtValue(f, e.value);
        return h("li", { class: "log-entry", testid: "event-log-entry", dataset: { kind: e.kind, feature: e.feature } },
          h("time", { datetime: e.at, class: "log-time" }, fmtWhen(e.at)),
          h("span", { class: "log-what" }, `${featureLabel(d, f)}: ${what}`),
          // History keeps no context for a device's own reports: null means "by the device".
          h("span", { class: "log-origin" }, originText(e.context || { origin: { kind: "device" } })));
      }));
    };
    logRender = render;
    replace(list, h("li", null, loading()));
    api("GET", `/devices/${seg(id)}/history?limit=50`).then((r) => {
      if (!root.isConnected) return;
      const old = (r.entries || []).slice().reverse();
      // Keep live entries that arrived meanwhile.
      const seen = new Set(old.map((e) => e.at + e.feature));
      logEntries = logEntries.filter((e) => !seen.has(e.at + e.feature)).concat(old);
      render();
    }).catch((e) => replace(list, h("li", null, errorBox(e))));
    return sec;
  }
  let logRender = () => {};

  // ----- manage (administrators) -----
  function buildManage(d) {
    const name = h("input", { value: d.name, maxlength: 128, testid: "device-rename-input", autocomplete: "off" });
    const saveName = h("button", { class: "btn primary", testid: "device-rename-save" }, t("btn.save"));
    const renameForm = h("form", { class: "inline-form" }, field(t("device.name"), name), saveName);
    renameForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const v = name.value.trim();
      if (!v) return toast(t("error.name_required"), "error");
      saveName.disabled = true;
      try {
        await api("PATCH", `/devices/${seg(id)}`, { name: v });
        toast(t("device.renamed"));
      } catch (err) { toast(errorText(err), "error"); }
      saveName.disabled = false;
    });
    const area = select({ class: "select", testid: "device-area-select", on: { change: async () => {
      try {
        await api("PATCH", `/devices/${seg(id)}`, { area: area.value || null });
        toast(t("device.area_changed"));
      } catch (err) { toast(errorText(err), "error"); }
    } } }, [["", t("home.no_area")], ...state.areas.map((a) => [a.id, a.name])], d.area || "");
    const remove = h("button", { type: "button", class: "btn danger", testid: "device-remove", on: { click: async () => {
      const ok = await confirmDialog({ title: t("device.remove_title", { name: device()?.name || id }), message: t("device.remove_text"), ok: t("btn.remove"), danger: true });
      if (!ok) return;
      try {
        await api("DELETE", `/devices/${seg(id)}`);
        toast(t("device.removed"));
        app.go("#/home");
      } catch (err) { toast(errorText(err), "error"); }
    } } }, t("device.remove"));
    return section(t("device.manage"), "manage-section", h("div", { class: "panel" }, renameForm, field(t("device.area"), area), remove));
  }

  build();
  return {
    onChange(change) {
      if (change.type === "snapshot" || change.type === "areas") {
        if (!built) build();
        else {
          const d = device();
          if (!d) return build();
          for (const p of built.parts) p.update(d);
          built.badges.update(d);
          fillDiag(d);
        }
        return;
      }
      if (change.id !== id) return;
      const d = device();
      if (change.type === "device_removed" || !d) return build();
      if (change.type === "device") {
        const sig = JSON.stringify([d.name, d.area, (d.features || []).map((f) => [f.key, f.type, f.category, f.access])]);
        if (!built || sig !== built.sig) {
          // The name, area or features changed: keep the form state simple and rebuild.
          const focused = document.activeElement && body.contains(document.activeElement) && document.activeElement.dataset.testid;
          build();
          if (focused) body.querySelector(`[data-testid="${focused}"]`)?.focus();
          return;
        }
      }
      if (!built) return;
      for (const p of built.parts) p.update(d);
      built.badges.update(d);
      fillDiag(d);
      if (change.type === "state") {
        const ev = change.event;
        logEntries.unshift({ feature: ev.feature, value: ev.new, at: ev.at, kind: "state", context: ev.context });
        logRender();
        if (ev.feature === chartState.feature && typeof ev.new === "number" && chartState.draw) {
          chartState.points.push({ t: Date.parse(ev.at), v: ev.new });
          chartState.draw();
        }
      } else if (change.type === "device_event") {
        const ev = change.event;
        logEntries.unshift({ feature: ev.feature, value: ev.event, at: ev.at, kind: "event", context: ev.context });
        logRender();
      }
    },
    destroy() {
      if (ro) ro.disconnect();
    },
  };
}
