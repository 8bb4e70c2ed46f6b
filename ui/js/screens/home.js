// Home: the areas of the home, each with its device cards; cards update in place from live events.

import { h, replace } from "../dom.js";
import { t } from "../i18n.js";
import { state, isAdmin } from "../live.js";
import { deviceCard } from "../controls.js";
import { pageHead, loading, empty } from "../ui.js";

export function renderHome(root) {
  const chips = h("nav", { class: "chips", "aria-label": t("home.jump") });
  const body = h("div", { class: "areas", testid: "home-screen" });
  root.append(pageHead(t("home.title")), chips, body);
  const cards = new Map();
  let layoutKey = null;

  function layout() {
    if (!state.ready) {
      layoutKey = null;
      replace(body, loading());
      return;
    }
    const devices = [...state.devices.values()];
    const key = JSON.stringify([state.areas.map((a) => [a.id, a.name]), devices.map((d) => [d.id, d.area || null, d.name]).sort()]);
    if (key === layoutKey) {
      for (const d of devices) cards.get(d.id)?.update(d);
      return;
    }
    layoutKey = key;
    if (!devices.length) {
      replace(chips);
      replace(body, empty(t("home.empty"), "home-empty"), isAdmin() ? h("a", { class: "btn primary", href: "#/discovery" }, t("home.add_devices")) : null);
      return;
    }
    const known = new Set(state.areas.map((a) => a.id));
    const groups = state.areas.map((a) => [a.id, a.name]).concat([[null, t("home.no_area")]]);
    const sections = [];
    const chipList = [];
    const seen = new Set();
    for (const [id, name] of groups) {
      const list = devices.filter((d) => (id === null ? !d.area || !known.has(d.area) : d.area === id))
        .sort((a, b) => String(a.name).localeCompare(String(b.name)));
      if (!list.length) continue;
      const hid = `area-${id === null ? "none" : id}`;
      const grid = h("div", { class: "cards" });
      for (const d of list) {
        seen.add(d.id);
        let c = cards.get(d.id);
        if (c) c.update(d);
        else {
          c = deviceCard(d);
          cards.set(d.id, c);
        }
        grid.append(c.el);
      }
      sections.push(h("section", { class: "area", testid: "area-section", dataset: { areaId: id === null ? "" : id }, "aria-labelledby": hid },
        h("h2", { id: hid }, name, h("span", { class: "count" }, ` ${list.length}`)), grid));
      chipList.push(h("button", { type: "button", class: "chip-btn", on: { click: () => document.getElementById(hid)?.scrollIntoView({ behavior: "smooth", block: "start" }) } }, name));
    }
    for (const id of [...cards.keys()]) if (!seen.has(id)) cards.delete(id);
    replace(body, ...sections);
    replace(chips, ...(chipList.length > 1 ? chipList : []));
  }

  layout();
  return {
    onChange(change) {
      if ((change.type === "state" || change.type === "device_event") && cards.has(change.id)) {
        const d = state.devices.get(change.id);
        if (d) cards.get(change.id).update(d);
        return;
      }
      if (change.type === "device" && cards.has(change.id) && !change.added) {
        const d = state.devices.get(change.id);
        const before = layoutKey;
        layout();
        if (before === layoutKey && d) cards.get(change.id)?.update(d);
        return;
      }
      if (["snapshot", "device", "device_removed", "areas"].includes(change.type)) layout();
    },
  };
}
