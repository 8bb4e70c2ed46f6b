// Scenes: list and apply; administrators create one from the current state of chosen devices
// (POST /scenes with "capture") and delete them.

import { h, field, replace } from "../dom.js";
import { t } from "../i18n.js";
import { api, seg } from "../api.js";
import { state, isAdmin } from "../live.js";
import { featureLabel, fmtValue } from "../controls.js";
import { pageHead, empty, errorBox, errorText, toast, loading, confirmDialog, showFormError } from "../ui.js";

export function renderScenes(root) {
  const newBtn = isAdmin() ? h("button", { type: "button", class: "btn primary", testid: "new-scene", on: { click: () => { formBox.hidden = !formBox.hidden; if (!formBox.hidden) buildForm(); } } }, t("scenes.new")) : null;
  root.append(pageHead(t("scenes.title"), { actions: newBtn }));
  const formBox = h("div", { hidden: true });
  const list = h("div", { testid: "scenes-screen" }, loading());
  root.append(formBox, list);
  let scenes = [];

  async function load() {
    try {
      scenes = await api("GET", "/scenes");
      if (root.isConnected) renderList();
    } catch (e) {
      replace(list, errorBox(e));
    }
  }

  function deviceName(id) {
    return state.devices.get(id)?.name || id;
  }

  function renderList() {
    if (!scenes.length) {
      replace(list, empty(t("scenes.empty"), "scenes-empty"));
      return;
    }
    replace(list, h("ul", { class: "list" }, scenes.map((s) => {
      const devices = Object.entries(s.devices || {});
      const apply = h("button", { type: "button", class: "btn primary", testid: "scene-apply", on: { click: async () => {
        apply.disabled = true;
        try {
          const r = await api("POST", `/scenes/${seg(s.id)}/apply`, {});
          const failed = (r.results || []).filter((x) => !x.ok);
          if (failed.length) toast(t("scenes.partly", { names: failed.map((x) => deviceName(x.device)).join(", ") }), "error");
          else toast(t("scenes.applied", { name: s.name }));
        } catch (e) { toast(errorText(e), "error"); }
        apply.disabled = false;
      } } }, t("scenes.apply"));
      const del = isAdmin() ? h("button", { type: "button", class: "btn danger", testid: "scene-delete", on: { click: async () => {
        if (!(await confirmDialog({ title: t("scenes.delete_title", { name: s.name }), ok: t("btn.delete"), danger: true }))) return;
        try {
          await api("DELETE", `/scenes/${seg(s.id)}`);
          load();
        } catch (e) { toast(errorText(e), "error"); }
      } } }, t("btn.delete")) : null;
      const details = h("details", { class: "details" }, h("summary", null, t("scenes.devices_count", { n: devices.length })),
        h("ul", { class: "plain" }, devices.map(([id, values]) => {
          const d = state.devices.get(id);
          const vals = Object.entries(values).map(([k, v]) => {
            const f = d && (d.features || []).find((x) => x.key === k);
            return f ? `${featureLabel(d, f)}: ${fmtValue(f, v)}` : `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`;
          });
          return h("li", null, h("strong", null, deviceName(id)), " — ", vals.join(", "));
        })));
      return h("li", { class: "list-row wrap", testid: "scene-row", dataset: { sceneId: s.id } },
        h("div", { class: "grow" }, h("h3", { class: "row-title" }, s.name), details), apply, del);
    })));
  }

  function buildForm() {
    const name = h("input", { testid: "scene-name", required: true, maxlength: 100, autocomplete: "off" });
    const err = h("div");
    const capturable = [...state.devices.values()].filter((d) => (d.features || []).some((f) => f.access && f.access.set && d.state && d.state[f.key] !== undefined));
    const byArea = new Map();
    for (const d of capturable) {
      const k = d.area || "";
      if (!byArea.has(k)) byArea.set(k, []);
      byArea.get(k).push(d);
    }
    const checks = [];
    const groups = [...state.areas.map((a) => [a.id, a.name]), ["", t("home.no_area")]].filter(([id]) => byArea.has(id)).map(([id, label]) =>
      h("fieldset", { class: "checks" }, h("legend", null, label), byArea.get(id).sort((a, b) => a.name.localeCompare(b.name)).map((d) => {
        const cb = h("input", { type: "checkbox", value: d.id, testid: "scene-device", dataset: { deviceId: d.id } });
        checks.push(cb);
        return h("label", { class: "check" }, cb, h("span", null, d.name));
      })));
    const onlyPower = h("input", { type: "checkbox", testid: "scene-only-power" });
    const save = h("button", { class: "btn primary", testid: "save-scene" }, t("scenes.save"));
    const form = h("form", { class: "form panel", testid: "scene-form" },
      h("h2", null, t("scenes.new")), h("p", { class: "hint" }, t("scenes.capture_help")),
      field(t("scenes.name"), name), groups,
      h("label", { class: "check" }, onlyPower, h("span", null, t("scenes.only_power"))),
      err, h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", on: { click: () => { formBox.hidden = true; } } }, t("btn.cancel")), save));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const ids = checks.filter((c) => c.checked).map((c) => c.value);
      if (!name.value.trim()) return showFormError(err, { message: t("error.name_required") });
      if (!ids.length) return showFormError(err, { message: t("scenes.pick_devices") });
      const body = { name: name.value.trim(), capture: ids };
      if (onlyPower.checked) body.features = ["state", "brightness", "color_temperature", "color"];
      save.disabled = true;
      try {
        await api("POST", "/scenes", body);
        toast(t("scenes.created", { name: body.name }));
        formBox.hidden = true;
        load();
      } catch (e2) { showFormError(err, e2); }
      save.disabled = false;
    });
    replace(formBox, capturable.length ? form : empty(t("scenes.nothing_to_capture")));
    name.focus();
  }

  load();
  return {};
}
