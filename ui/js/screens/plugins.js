// Plugins (administrators only): the adapter plugins installed in the hub's plugins directory,
// each with its state, a switch to run it or not, a settings form built from the schema of its
// plugin.toml, and the last lines it wrote to stderr when it stopped for good. The list is read
// again after each action, on adapter status events and every few seconds while it is open;
// rows are updated in place, and a form being edited is left alone.

import { h, field, select, replace } from "../dom.js";
import { t, tv, fmtNum, fmtRelative } from "../i18n.js";
import { api, seg } from "../api.js";
import { pageHead, empty, errorBox, errorText, toast, loading } from "../ui.js";

const REFRESH_MS = 3000;
/** States in which the plugin no longer runs by itself until enabled again. */
const STOPPED_FOR_GOOD = new Set(["quarantined", "refused", "failed"]);
const BADGE = { running: "ok", starting: "warn", restarting: "warn", disabled: "", stopped: "" };

/** The API's error as text; the hub's message says which setting is wrong, so it follows. */
function pluginError(e) {
  if (e && e.code === "invalid_config") return `${t("plugins.err_invalid_config")} ${e.message}`;
  if (e && e.code === "plugin_invalid") return `${t("plugins.err_plugin_invalid")} ${e.message}`;
  return errorText(e);
}

function errorLine(e, testid) {
  return h("p", { class: "error-box", role: "alert", testid }, pluginError(e));
}

function display(v) {
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "boolean") return t(v ? "bool.yes" : "bool.no");
  return String(v);
}

/** What a setting takes, for its hint: type, range, default, whether it is required. */
function ruleText(rule) {
  const parts = [];
  if (rule.description) parts.push(String(rule.description));
  if (rule.type === "integer") parts.push(t("plugins.type_integer"));
  if (rule.type === "number") parts.push(t("plugins.type_number"));
  const hasMin = typeof rule.min === "number";
  const hasMax = typeof rule.max === "number";
  if (hasMin && hasMax) parts.push(t("plugins.range", { min: fmtNum(rule.min), max: fmtNum(rule.max) }));
  else if (hasMin) parts.push(t("plugins.at_least", { min: fmtNum(rule.min) }));
  else if (hasMax) parts.push(t("plugins.at_most", { max: fmtNum(rule.max) }));
  // An enum's default is named by its first option.
  if (rule.default !== undefined && rule.default !== null && rule.type !== "enum") parts.push(t("plugins.default", { value: display(rule.default) }));
  if (rule.required) parts.push(t("plugins.required"));
  return parts.join(" ");
}

/** One control per setting: `read()` gives {set, value} or {bad} for what cannot be sent. */
function settingControl(key, rule, entered) {
  const has = entered !== undefined && entered !== null;
  const hint = ruleText(rule);
  const common = { testid: "plugin-setting", dataset: { key, type: rule.type }, required: !!rule.required };
  if (rule.type === "boolean") {
    const cb = h("input", { type: "checkbox", ...common, checked: has ? entered === true : rule.default === true });
    const wrap = h("div", { class: "field" }, h("label", { class: "check" }, cb, h("span", null, key)), hint ? h("p", { class: "hint" }, hint) : null);
    return { el: wrap, read: () => ({ set: true, value: cb.checked }) };
  }
  if (rule.type === "enum") {
    const values = Array.isArray(rule.values) ? rule.values.map(String) : [];
    const none = rule.default !== undefined && rule.default !== null ? t("plugins.use_default", { value: String(rule.default) })
      : rule.required ? t("plugins.choose") : t("plugins.not_set");
    const sel = select({ class: "select", ...common }, [["", none], ...values.map((v) => [v, v])], has ? String(entered) : "");
    return { el: field(key, sel, hint), read: () => (sel.value === "" ? { set: false } : { set: true, value: sel.value }) };
  }
  const numeric = rule.type === "integer" || rule.type === "number";
  const input = h("input", {
    ...common,
    type: numeric ? "number" : "text",
    step: rule.type === "integer" ? "1" : numeric ? "any" : undefined,
    inputmode: rule.type === "integer" ? "numeric" : numeric ? "decimal" : undefined,
    min: numeric && typeof rule.min === "number" ? String(rule.min) : undefined,
    max: numeric && typeof rule.max === "number" ? String(rule.max) : undefined,
    placeholder: rule.default !== undefined && rule.default !== null ? String(rule.default) : undefined,
    autocomplete: "off",
    spellcheck: numeric ? undefined : "false",
    value: has ? (typeof entered === "string" || typeof entered === "number" ? String(entered) : JSON.stringify(entered)) : "",
  });
  return {
    el: field(key, input, hint),
    read: () => {
      if (numeric && input.validity.badInput) return { bad: t("plugins.not_a_number", { key }) };
      if (input.value === "") return { set: false };
      return { set: true, value: numeric ? Number(input.value) : input.value };
    },
  };
}

export function renderPlugins(root) {
  root.append(pageHead(t("plugins.title"), { back: "#/settings" }));
  const dirLine = h("p", { class: "muted small", testid: "plugins-dir", hidden: true });
  const loadError = h("div", { "aria-live": "polite" });
  const listBox = h("div", null, loading());
  root.append(h("div", { testid: "plugins-screen" }, h("p", { class: "lead" }, t("plugins.intro")), dirLine, loadError, listBox));

  const rows = new Map(); // plugin id -> row
  const list = h("ul", { class: "list plugins", testid: "plugin-list" });
  let asked = 0;
  let loading_ = false;

  async function load() {
    const mine = ++asked;
    loading_ = true;
    try {
      const r = await api("GET", "/plugins");
      if (mine !== asked || !root.isConnected) return;
      replace(loadError);
      show(r || {});
    } catch (e) {
      if (mine === asked && root.isConnected) replace(loadError, errorBox(e, "plugins-load-error"));
    } finally {
      if (mine === asked) loading_ = false;
    }
  }

  function show(r) {
    const plugins = Array.isArray(r.plugins) ? r.plugins : [];
    const dir = String(r.dir || "");
    dirLine.hidden = !dir;
    dirLine.textContent = dir ? t("plugins.dir", { dir }) : "";
    if (!plugins.length) {
      rows.clear();
      list.replaceChildren();
      replace(listBox, h("div", { class: "panel" }, empty(t("plugins.empty", { dir }), "plugins-empty"), h("p", { class: "hint" }, t("plugins.empty_help"))));
      return;
    }
    if (list.parentNode !== listBox) replace(listBox, list);
    plugins.sort((a, b) => String(a.name || a.id).localeCompare(String(b.name || b.id)) || String(a.id).localeCompare(String(b.id)));
    const seen = new Set();
    for (const p of plugins) {
      seen.add(p.id);
      let row = rows.get(p.id);
      if (!row) {
        row = pluginRow(p.id);
        rows.set(p.id, row);
      }
      row.update(p);
    }
    for (const [id, row] of rows) if (!seen.has(id)) { row.el.remove(); rows.delete(id); }
    // Reorder only when the order changed: moving a row would take the focus out of its form.
    const order = plugins.map((p) => rows.get(p.id).el);
    if (order.some((el, i) => list.children[i] !== el)) list.append(...order);
  }

  function pluginRow(id) {
    let plugin = null;
    const name = h("span", { testid: "plugin-name" });
    const version = h("span", { class: "muted small", testid: "plugin-version" });
    const badge = h("span", { class: "badge", testid: "plugin-state" });
    const idLine = h("p", { class: "muted small" }, t("plugins.adapter_id"), " ", h("code", { testid: "plugin-id" }, id));
    const description = h("p", { class: "small", testid: "plugin-description" });
    const problem = h("div", { class: "error-box", role: "alert", testid: "plugin-problem", hidden: true });
    const reason = h("p", { class: "small", testid: "plugin-reason" });
    const counts = h("p", { class: "muted small", testid: "plugin-counts" });
    const more = h("p", { class: "muted small", testid: "plugin-diagnostics" });
    const actionError = h("div", { "aria-live": "polite" });
    const sw = h("button", { type: "button", role: "switch", class: "switch", "aria-checked": "false", testid: "plugin-enabled" },
      h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
      h("span", { class: "switch-text" }, t("plugins.enabled")));
    sw.addEventListener("click", () => act(sw.getAttribute("aria-checked") === "true" ? "disable" : "enable", sw));

    const stderrPre = h("pre", { class: "mono out", testid: "plugin-stderr" });
    const stderrNone = h("p", { class: "muted small", testid: "plugin-stderr-none" }, t("plugins.stderr_none"));
    const again = h("button", { type: "button", class: "btn primary", testid: "plugin-enable-again", on: { click: () => act("enable", again, true) } }, t("plugins.enable_again"));
    const stoppedBox = h("div", { class: "plugin-stopped", testid: "plugin-stopped", hidden: true },
      h("h3", null, t("plugins.stderr_title")), stderrPre, stderrNone, h("p", { class: "hint" }, t("plugins.enable_again_help")), again);
    const recentSummary = h("summary");
    const recentPre = h("pre", { class: "mono out", testid: "plugin-stderr-recent" });
    const recent = h("details", { class: "details", testid: "plugin-stderr-details", hidden: true }, recentSummary, recentPre);

    // The settings form, built from the schema; rebuilt when the schema changes, or when the
    // stored settings change while nobody is editing them.
    const formError = h("div", { "aria-live": "polite" });
    const formBody = h("div");
    const save = h("button", { class: "btn primary", testid: "plugin-config-save" }, t("btn.save"));
    const form = h("form", { class: "form", testid: "plugin-config-form", novalidate: true }, formBody, formError, save);
    const noSettings = h("p", { class: "muted small", testid: "plugin-no-settings" }, t("plugins.no_settings"));
    const settings = h("details", { class: "details", testid: "plugin-config" }, h("summary", null, t("plugins.settings")), form, noSettings);
    let controls = [];
    let builtSchema = null;
    let builtConfig = null;
    let dirty = false;
    form.addEventListener("input", () => { dirty = true; });
    form.addEventListener("change", () => { dirty = true; });

    function buildForm(p) {
      const schema = p.schema && typeof p.schema === "object" ? p.schema : {};
      const config = p.config && typeof p.config === "object" ? p.config : {};
      builtSchema = JSON.stringify(schema);
      builtConfig = JSON.stringify(config);
      dirty = false;
      const keys = Object.keys(schema).sort();
      controls = keys.map((key) => ({ key, ...settingControl(key, schema[key] || {}, config[key]) }));
      replace(formBody, controls.map((c) => c.el));
      form.hidden = !keys.length;
      noSettings.hidden = !!keys.length;
    }

    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      replace(formError);
      const body = {};
      for (const c of controls) {
        const r = c.read();
        if (r.bad) return replace(formError, errorLine({ message: r.bad }, "plugin-config-error"));
        if (r.set) body[c.key] = r.value;
      }
      save.disabled = true;
      try {
        const p = await api("PUT", `/plugins/${seg(id)}/config`, body);
        if (p && p.id) {
          update(p);
          buildForm(p);
        }
        toast(t("plugins.saved", { name: label() }));
        load();
      } catch (err) {
        replace(formError, errorLine(err, "plugin-config-error"));
      }
      save.disabled = false;
    });

    function label() {
      return plugin ? plugin.name || plugin.id : id;
    }

    async function act(what, btn, afresh = false) {
      replace(actionError);
      btn.disabled = true;
      btn.setAttribute("aria-busy", "true");
      try {
        const p = await api("POST", `/plugins/${seg(id)}/${what}`, {});
        if (p && p.id) update(p);
        toast(t(afresh ? "plugins.started_again" : what === "enable" ? "plugins.turned_on" : "plugins.turned_off", { name: label() }));
      } catch (err) {
        replace(actionError, errorLine(err, "plugin-error"));
        // A configuration that does not fit: the form is where to fix it.
        if (err.code === "invalid_config") {
          settings.open = true;
          replace(formError, errorLine(err, "plugin-config-error"));
        }
      }
      btn.disabled = false;
      btn.removeAttribute("aria-busy");
      load();
    }

    function update(p) {
      plugin = p;
      const st = String(p.state || "stopped");
      const shownName = p.name || p.id;
      el.dataset.state = st;
      el.dataset.enabled = String(!!p.enabled);
      name.textContent = shownName;
      version.textContent = p.version ? t("plugins.version", { version: p.version }) : "";
      badge.textContent = tv("plugin_state", st);
      badge.dataset.state = st;
      badge.className = ["badge", BADGE[st] ?? "danger"].filter(Boolean).join(" ");
      description.textContent = p.description || "";
      description.hidden = !p.description;
      problem.hidden = !p.problem;
      replace(problem, p.problem ? [h("strong", null, t("plugins.problem")), " ", String(p.problem)] : []);
      reason.textContent = p.reason ? t("plugins.reason", { reason: p.reason }) : "";
      reason.hidden = !p.reason;
      const facts = [t("plugins.counts", { restarts: fmtNum(p.restarts || 0), crashes: fmtNum(p.crashes || 0) })];
      if (st === "running" && p.ready_at) facts.push(t("plugins.ready_since", { when: fmtRelative(p.ready_at) }));
      if (p.pid) facts.push(t("plugins.pid", { pid: String(p.pid) }));
      if (p.reported_version && p.reported_version !== p.version) facts.push(t("plugins.reported_version", { version: p.reported_version }));
      counts.textContent = facts.join(" · ");
      const odd = (p.unreadable_lines || 0) + (p.refused_messages || 0) + (p.errors_from_plugin || 0);
      more.hidden = !odd;
      more.textContent = odd ? t("plugins.diagnostics", { unreadable: fmtNum(p.unreadable_lines || 0), refused: fmtNum(p.refused_messages || 0), errors: fmtNum(p.errors_from_plugin || 0) }) : "";
      sw.setAttribute("aria-checked", String(!!p.enabled));
      sw.setAttribute("aria-label", t("plugins.enabled_for", { name: shownName }));

      const lines = Array.isArray(p.stderr) ? p.stderr.map(String) : [];
      const text = lines.join("\n");
      const stopped = STOPPED_FOR_GOOD.has(st);
      stoppedBox.hidden = !stopped;
      el.classList.toggle("stopped", stopped);
      if (stopped) {
        if (stderrPre.textContent !== text) stderrPre.textContent = text;
        stderrPre.hidden = !lines.length;
        stderrNone.hidden = !!lines.length;
      }
      recent.hidden = stopped || !lines.length;
      if (!recent.hidden) {
        recentSummary.textContent = t("plugins.stderr_recent", { n: fmtNum(lines.length) });
        if (recentPre.textContent !== text) recentPre.textContent = text;
      }

      const schema = JSON.stringify(p.schema && typeof p.schema === "object" ? p.schema : {});
      const config = JSON.stringify(p.config && typeof p.config === "object" ? p.config : {});
      if (schema !== builtSchema || (!dirty && config !== builtConfig)) buildForm(p);
    }

    const el = h("li", { class: "plugin", testid: "plugin-row", dataset: { pluginId: id } },
      h("div", { class: "plugin-head" },
        h("div", { class: "grow" }, h("h2", { class: "row-title" }, name, " ", version), idLine),
        badge, sw),
      problem, description, reason, counts, more, actionError, stoppedBox, recent, settings);
    return { el, update };
  }

  load();
  const timer = setInterval(() => { if (!loading_ && !document.hidden) load(); }, REFRESH_MS);
  return {
    onChange(c) {
      if ((c.type === "adapter" && rows.has(c.id)) || c.type === "snapshot") load();
    },
    destroy() {
      clearInterval(timer);
    },
  };
}
