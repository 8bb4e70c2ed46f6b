// Discovery inbox: Zigbee permit join with its countdown, devices that joined while this page was
// open, and what adapters found on the network and nearby (Wi-Fi, Bluetooth), to accept or
// ignore; ignored ones can be shown again. Live from the WebSocket's inbox events.

import { h, field, select, replace } from "../dom.js";
import { t, tv, fmtCountdown, fmtWhen, fmtRelative } from "../i18n.js";
import { api, seg } from "../api.js";
import { state, subscribe, isAdmin } from "../live.js";
import { pageHead, section, empty, errorText, toast, loading, reasonText } from "../ui.js";

// Devices added since the app started (kept while the app is open), newest first.
const joined = [];
const dismissed = new Set();
subscribe((c) => {
  if (c.type === "device" && c.added) joined.unshift({ id: c.id, at: new Date().toISOString() });
});

const Z2M = "zigbee2mqtt";

function coordinator() {
  for (const d of state.devices.values()) {
    if (d.adapter === Z2M && (d.features || []).some((f) => f.key === "permit_join")) return d;
  }
  return null;
}

export function renderDiscovery(root) {
  root.append(pageHead(t("discovery.title")));
  const zig = h("div", { class: "panel", testid: "zigbee-panel" }, loading());
  const newList = h("div", { testid: "new-devices" });
  const foundBox = h("div", { testid: "found" }, isAdmin() ? loading() : h("div", { class: "panel" }, empty(t("discovery.ask_admin"), "found-ask-admin")));
  /** Inbox entries by "adapter/key". */
  const found = new Map();
  let foundLoaded = false;

  const entryId = (e) => `${e.adapter}/${e.key}`;

  async function decide(e, what, btn) {
    btn.disabled = true;
    try {
      if (what === "forget") await api("DELETE", `/inbox/${seg(e.adapter)}/${seg(e.key)}`);
      else {
        const now = await api("POST", `/inbox/${seg(e.adapter)}/${seg(e.key)}/${what}`, {});
        found.set(entryId(now), now);
      }
      // Forgotten, it may be found again at once: the hub's list says how it stands now.
      if (what === "forget") loadFound();
      toast(t(what === "accept" ? "discovery.accepted" : what === "ignore" ? "discovery.ignored" : "discovery.forgotten", { name: e.name }));
      renderFound();
    } catch (err) {
      toast(errorText(err), "error");
      btn.disabled = false;
    }
  }

  function foundRow(e) {
    const transport = h("span", { class: "badge", testid: "found-transport" }, tv("transport", e.transport));
    const facts = [e.manufacturer, e.model, e.address].filter(Boolean).join(" · ");
    const actions = [];
    if (e.status === "ignored") {
      actions.push(h("button", { type: "button", class: "btn", testid: "found-forget", on: { click: (ev) => decide(e, "forget", ev.currentTarget) } }, t("discovery.show_again")));
    } else {
      if (e.supported) actions.push(h("button", { type: "button", class: "btn primary", testid: "found-accept", on: { click: (ev) => decide(e, "accept", ev.currentTarget) } }, t("discovery.accept")));
      actions.push(h("button", { type: "button", class: "btn", testid: "found-ignore", on: { click: (ev) => decide(e, "ignore", ev.currentTarget) } }, t("discovery.ignore")));
    }
    return h("li", { class: "list-row", testid: "found-entry", dataset: { adapter: e.adapter, key: e.key, status: e.status } },
      h("div", { class: "grow" },
        h("h3", { class: "row-title", testid: "found-name" }, e.name, " ", transport),
        facts ? h("p", { class: "muted small" }, facts) : null,
        e.supported ? null : h("p", { class: "small", testid: "found-unsupported" }, t("discovery.unsupported")),
        h("p", { class: "muted small" }, t("discovery.first_seen", { when: fmtRelative(e.first_seen) }))),
      h("div", { class: "row-actions" }, actions));
  }

  function renderFound() {
    if (!isAdmin() || !foundLoaded) return;
    const all = [...found.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const waiting = all.filter((e) => e.status === "new");
    const ignored = all.filter((e) => e.status === "ignored");
    replace(foundBox,
      waiting.length ? h("ul", { class: "list", testid: "found-list" }, waiting.map(foundRow))
        : h("div", { class: "panel" }, empty(t("discovery.wifi_ble_empty"), "found-empty")),
      ignored.length ? h("details", { class: "details", testid: "ignored" }, h("summary", null, t("discovery.ignored_n", { n: ignored.length })),
        h("ul", { class: "list", testid: "ignored-list" }, ignored.map(foundRow))) : null);
  }

  // Live events count up; an entry an event touched after a list was asked for keeps what the
  // event said (the list may have been read before it).
  let events = 0;
  const touched = new Map();

  function loadFound() {
    if (!isAdmin()) return;
    const asked = events;
    api("GET", "/inbox").then((r) => {
      if (!root.isConnected) return;
      const fresh = (id) => (touched.get(id) || 0) <= asked;
      const listed = new Map(((r && r.entries) || []).map((e) => [entryId(e), e]));
      for (const id of [...found.keys()]) if (!listed.has(id) && fresh(id)) found.delete(id);
      for (const [id, e] of listed) if (fresh(id)) found.set(id, e);
      foundLoaded = true;
      renderFound();
    }).catch((e) => replace(foundBox, h("p", { class: "error-box", role: "alert" }, errorText(e))));
  }
  root.append(
    h("div", { testid: "discovery-screen" },
      section(t("discovery.wifi_ble"), "found-section", foundBox),
      section(t("discovery.zigbee"), "zigbee-section", zig),
      section(t("discovery.new_devices"), "new-devices-section", newList)));

  let adapter = null;
  let endsAt = 0; // when the permit-join window closes (ms), 0 when closed, Infinity without end
  let timer = null;
  const countdown = h("p", { class: "countdown", testid: "permit-join-countdown" });
  const status = h("p", { class: "muted", testid: "zigbee-status" });
  const time = select({ class: "select", testid: "permit-join-time" }, [["60", t("discovery.minutes", { n: 1 })], ["120", t("discovery.minutes", { n: 2 })], ["254", t("discovery.minutes", { n: 4 })]], "120");
  const openBtn = h("button", { type: "button", class: "btn primary", testid: "permit-join-button", on: { click: () => permit(Number(time.value)) } }, t("discovery.permit_join"));
  const stopBtn = h("button", { type: "button", class: "btn", testid: "permit-join-stop", on: { click: () => permit(0) } }, t("discovery.permit_stop"));

  function fromState() {
    const c = coordinator();
    if (!c || !c.state) return;
    const open = c.state.permit_join && c.state.permit_join.value === true;
    const rem = c.state.permit_join_remaining && c.state.permit_join_remaining.value;
    if (!open) endsAt = 0;
    else if (typeof rem === "number") endsAt = Date.now() + rem * 1000;
    else if (!endsAt) endsAt = Infinity;
  }

  function tick() {
    const left = endsAt === Infinity ? Infinity : Math.ceil((endsAt - Date.now()) / 1000);
    const open = endsAt && left > 0;
    countdown.hidden = !open;
    countdown.dataset.remaining = open ? String(left) : "0";
    countdown.textContent = !open ? "" : left === Infinity ? t("discovery.open_no_end") : t("discovery.open_for", { time: fmtCountdown(left) });
    openBtn.hidden = !!open;
    time.closest(".field")?.toggleAttribute("hidden", !!open);
    stopBtn.hidden = !open;
    if (!open) endsAt = 0;
  }

  async function permit(secs) {
    openBtn.disabled = stopBtn.disabled = true;
    try {
      const r = await api("POST", `/adapters/${Z2M}/actions/permit_join`, { time: secs });
      const res = r && r.result;
      const answered = res && typeof res === "object" && typeof res.time === "number" ? res.time : secs;
      endsAt = answered > 0 ? Date.now() + answered * 1000 : 0;
      toast(answered > 0 ? t("discovery.opened") : t("discovery.closed"));
    } catch (e) {
      toast(errorText(e), "error");
    } finally {
      openBtn.disabled = stopBtn.disabled = false;
      tick();
    }
  }

  function renderZigbee() {
    if (!adapter) {
      replace(zig, empty(t("discovery.zigbee_missing"), "zigbee-missing"));
      return;
    }
    const st = state.adapterStatus.get(Z2M) || adapter.status || {};
    status.textContent = t("discovery.adapter_status", { state: tv("adapter_state", st.state || "unknown") }) + (st.reason ? ` — ${reasonText(st)}` : "");
    const parts = [status, h("p", null, t("discovery.zigbee_help")), countdown];
    if (isAdmin()) parts.push(h("div", { class: "inline-form" }, field(t("discovery.duration"), time), openBtn, stopBtn));
    else parts.push(h("p", { class: "muted" }, t("discovery.ask_admin")));
    replace(zig, ...parts);
    tick();
  }

  function renderNew() {
    const items = joined.filter((j) => !dismissed.has(j.id) && state.devices.has(j.id));
    if (!items.length) {
      replace(newList, h("div", { class: "panel" }, empty(t("discovery.no_new"), "new-devices-empty")));
      return;
    }
    replace(newList, h("ul", { class: "list" }, items.map((j) => {
      const d = state.devices.get(j.id);
      return h("li", { class: "list-row", testid: "new-device", dataset: { deviceId: j.id } },
        h("div", { class: "grow" }, h("a", { href: `#/device/${encodeURIComponent(j.id)}` }, d.name),
          h("p", { class: "muted small" }, [d.manufacturer, d.model].filter(Boolean).join(" · ") || d.id, " · ", fmtWhen(j.at))),
        h("a", { class: "btn", href: `#/device/${encodeURIComponent(j.id)}`, testid: "new-device-accept" }, isAdmin() ? t("discovery.set_up") : t("discovery.open")),
        h("button", { type: "button", class: "btn", testid: "new-device-dismiss", on: { click: () => { dismissed.add(j.id); renderNew(); } } }, t("discovery.dismiss")));
    })));
  }

  api("GET", "/adapters").then((list) => {
    if (!root.isConnected) return;
    adapter = (list || []).find((a) => a.id === Z2M) || null;
    fromState();
    renderZigbee();
  }).catch((e) => replace(zig, h("p", { class: "error-box", role: "alert" }, errorText(e))));
  renderNew();
  loadFound();
  timer = setInterval(() => { if (adapter) tick(); }, 1000);

  return {
    onChange(c) {
      if (c.type === "adapter" && c.id === Z2M) renderZigbee();
      const coord = coordinator();
      if (c.type === "snapshot" || (c.type === "state" && coord && c.id === coord.id)) {
        fromState();
        if (adapter) tick();
      }
      if (c.type === "device" || c.type === "device_removed" || c.type === "snapshot") renderNew();
      if (c.type === "inbox") {
        const ev = c.event;
        const id = ev.type === "inbox_changed" ? entryId(ev.entry) : `${ev.adapter}/${ev.key}`;
        touched.set(id, ++events);
        if (ev.type === "inbox_changed") found.set(id, ev.entry);
        else found.delete(id);
        renderFound();
      }
      // After a reconnection the inbox may have changed meanwhile.
      if (c.type === "snapshot") loadFound();
    },
    destroy() {
      clearInterval(timer);
    },
  };
}
