// Automations: the list (enable/disable, last run), and one automation's page with tabs: the
// form editor, the code view (YAML or JSON), traces, and versions with diff and rollback; run now
// and dry run. Members see automations and their traces, but edit nothing.

import { h, field, select, replace, nextId } from "../dom.js";
import { t, tv, fmtWhen, fmtRelative, fmtDateTime, fmtNum } from "../i18n.js";
import { api, seg } from "../api.js";
import { isAdmin } from "../live.js";
import { pageHead, section, empty, errorBox, errorText, toast, loading, confirmDialog } from "../ui.js";
import { automationForm } from "./autoform.js";
import { originText } from "./device.js";
import { say, sayValue } from "../say.js";

const POLL_MS = 5000;

// A run's end and a change of an automation come as `automation_ran` / `automation_changed`
// events: reload at once (coalesced). Device changes and events may start runs that are still
// going: reload soon after them too (at most every 2 s), besides the slow poll.
function soonAfterEvents(reload) {
  let timer = null;
  let last = 0;
  return (c) => {
    const now = c.type === "automation";
    if ((!now && c.type !== "state" && c.type !== "device_event") || timer) return;
    const wait = now ? 100 : Math.max(800, 2000 - (Date.now() - last));
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      if (document.visibilityState === "visible") reload();
    }, wait);
  };
}

function endingBadge(ending) {
  const kind = ending && ending.kind ? ending.kind : "";
  const cls = kind === "finished" ? "ok" : ["error", "loop", "timeout"].includes(kind) ? "danger" : "muted";
  return h("span", { class: ["badge", cls], testid: "ending", dataset: { kind }, title: ending && ending.message ? say(ending.say, ending.message) : null }, tv("ending", kind));
}

function enabledSwitch(id, enabled, onDone) {
  const btn = h("button", { type: "button", role: "switch", class: "switch", "aria-checked": String(!!enabled), testid: "automation-enabled", "aria-label": t("auto.enabled") },
    h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })));
  btn.addEventListener("click", async () => {
    const next = btn.getAttribute("aria-checked") !== "true";
    btn.setAttribute("aria-busy", "true");
    try {
      await api("POST", `/automations/${seg(id)}/${next ? "enable" : "disable"}`);
      btn.setAttribute("aria-checked", String(next));
      toast(next ? t("auto.turned_on") : t("auto.turned_off"));
      if (onDone) onDone(next);
    } catch (e) { toast(errorText(e), "error"); }
    btn.removeAttribute("aria-busy");
  });
  return btn;
}

// ----- the list ---------------------------------------------------------------------------------

export function renderAutomations(root) {
  const admin = isAdmin();
  const actions = [h("a", { class: "btn", href: "/api/v1/automations/export", download: "automations.yaml", testid: "export-automations" }, t("auto.export"))];
  if (admin) actions.push(h("a", { class: "btn primary", href: "#/automations/new", testid: "new-automation" }, t("auto.new")));
  root.append(pageHead(t("auto.title"), { actions }));
  const list = h("div", { testid: "automations-screen" }, loading());
  root.append(list);
  let timer = null;
  let items = [];
  async function load() {
    try {
      items = await api("GET", "/automations");
      if (root.isConnected) draw();
    } catch (e) {
      if (root.isConnected) replace(list, errorBox(e));
    }
  }
  // Rows are kept by id and updated in place, so polling never replaces what a finger (or a
  // test) is about to press.
  const rows = new Map();
  let order = "";
  function row(id) {
    const link = h("a", { href: `#/automation/${encodeURIComponent(id)}`, testid: "automation-open", id: nextId("auto") });
    const last = h("p", { class: "muted small", testid: "last-run" });
    const running = h("p", { class: "small", testid: "running" });
    let a = null;
    const sw = admin ? enabledSwitch(id, false, (v) => { if (a) a.enabled = v; }) : h("span", { class: "badge" });
    if (admin) {
      sw.removeAttribute("aria-label");
      sw.setAttribute("aria-labelledby", link.id);
    }
    const el = h("li", { class: "list-row", testid: "automation-row", dataset: { automationId: id } },
      h("div", { class: "grow" }, h("h3", { class: "row-title" }, link), last, running), sw);
    function update(next) {
      a = next;
      const def = a.automation || {};
      link.textContent = def.name || id;
      const lr = a.last_run;
      replace(last, lr ? [endingBadge(lr.ending), " ", fmtRelative(lr.started_at), lr.trigger ? ` · ${lr.trigger}` : ""] : t("auto.never_ran"));
      running.hidden = !a.running;
      running.textContent = a.running ? t("auto.running", { n: fmtNum(a.running) }) : "";
      el.dataset.enabled = String(!!a.enabled);
      if (admin) {
        if (!sw.hasAttribute("aria-busy")) sw.setAttribute("aria-checked", String(!!a.enabled));
      } else {
        sw.className = `badge ${a.enabled ? "ok" : "muted"}`;
        sw.textContent = a.enabled ? t("auto.on") : t("auto.off");
      }
    }
    return { el, update };
  }
  function draw() {
    if (!items.length) {
      rows.clear();
      order = "";
      replace(list, empty(t("auto.empty"), "automations-empty"));
      return;
    }
    const ids = items.map((a) => (a.automation || {}).id);
    if (ids.join("\n") !== order) {
      order = ids.join("\n");
      for (const id of [...rows.keys()]) if (!ids.includes(id)) rows.delete(id);
      for (const id of ids) if (!rows.has(id)) rows.set(id, row(id));
      replace(list, h("ul", { class: "list" }, ids.map((id) => rows.get(id).el)));
    }
    for (const a of items) rows.get(a.automation.id).update(a);
  }
  load();
  timer = setInterval(() => { if (document.visibilityState === "visible" && !list.querySelector("[aria-busy]")) load(); }, POLL_MS);
  return { destroy: () => clearInterval(timer), onChange: soonAfterEvents(() => { if (root.isConnected) load(); }) };
}

// ----- one automation ------------------------------------------------------------------------

const TABS = ["form", "code", "traces", "versions"];
const TAB_LABELS = { form: "auto.tab_form", code: "auto.tab_code", traces: "auto.tab_traces", versions: "auto.tab_versions" };

export function renderNewAutomation(root, _params, app) {
  return renderAutomation(root, [null, location.hash.endsWith("/code") ? "code" : "form"], app);
}

export function renderAutomation(root, [id, tab], app) {
  const admin = isAdmin();
  const isNew = !id;
  const tabs = admin ? TABS : ["code", "traces", "versions"];
  tab = tab && tabs.includes(tab) ? tab : isNew ? "form" : admin ? "form" : "traces";
  const head = h("div");
  const content = h("div", { testid: `tab-panel-${tab}` }, loading());
  root.append(head, content);
  let timers = [];
  let stored = null;
  let onEvents = null;

  const base = isNew ? "#/automations/new" : `#/automation/${encodeURIComponent(id)}`;
  function tabBar() {
    const visible = isNew ? ["form", "code"] : tabs;
    return h("nav", { class: "tabs", "aria-label": t("auto.sections") }, visible.map((x) => h("a", {
      href: isNew ? (x === "form" ? "#/automations/new" : "#/automations/new/code") : `${base}/${x}`,
      testid: `tab-${x}`, "aria-current": x === tab ? "page" : null }, t(TAB_LABELS[x]))));
  }

  function drawHead() {
    const def = stored ? stored.automation : null;
    const actions = [];
    if (!isNew) {
      if (admin) actions.push(h("button", { type: "button", class: "btn", testid: "run-now", on: { click: runNow } }, t("auto.run_now")));
      actions.push(h("button", { type: "button", class: "btn", testid: "dry-run", on: { click: dryRun } }, t("auto.dry_run")));
      if (admin && stored) actions.push(enabledSwitch(id, stored.enabled, (v) => { stored.enabled = v; }));
    }
    replace(head, pageHead(isNew ? t("auto.new") : def ? def.name || id : id, { back: "#/automations", actions, testid: "automation-title" }),
      !isNew && stored ? h("p", { class: "muted small" }, t("auto.version_info", { version: stored.version, when: fmtDateTime(stored.updated_at) })) : null,
      dryBox, tabBar());
  }
  const dryBox = h("div", { "aria-live": "polite" });

  async function runNow() {
    try {
      const r = await api("POST", `/automations/${seg(id)}/trigger`, {});
      toast(t("auto.run_started", { run: r.run }));
      if (tab === "traces") setTimeout(() => app.go(`${base}/traces`), 600);
    } catch (e) { toast(errorText(e), "error"); }
  }

  async function dryRun() {
    replace(dryBox, loading());
    try {
      const r = await api("POST", `/automations/${seg(id)}/dry-run`, {});
      replace(dryBox, h("div", { class: "panel notice", testid: "dry-run-result", dataset: { wouldRun: String(!!r.would_run) } },
        h("div", { class: "row" }, h("h2", null, t("auto.dry_run_title")), h("button", { type: "button", class: "icon-btn", "aria-label": t("btn.dismiss"), on: { click: () => replace(dryBox) } }, "×")),
        h("p", null, r.would_run ? t("auto.would_run") : t("auto.would_not_run")),
        conditionList(r.conditions || []),
        (r.actions || []).length ? h("div", null, h("h3", null, t("auto.would_do")), h("ol", { class: "plain", testid: "dry-run-plan" }, planLines(r).map(([depth, text]) => h("li", { class: "plan-line", dataset: { depth: String(Math.min(depth, 6)) } }, text)))) : null));
    } catch (e) { replace(dryBox, errorBox(e)); }
  }

  async function load() {
    if (isNew) return;
    stored = await api("GET", `/automations/${seg(id)}`);
  }

  const scenesP = api("GET", "/scenes").catch(() => []);

  async function showForm() {
    const scenes = await scenesP;
    const def = stored ? stored.automation : { id: "", name: "", enabled: true, mode: "single", triggers: [{ state: { devices: [], feature: "" } }], actions: [{ set: { devices: [], values: {} } }] };
    const form = automationForm(def, {
      isNew,
      scenes,
      check: (d) => api("POST", "/automations/validate", d),
      save: async (d) => {
        if (isNew) {
          await api("POST", "/automations", d);
          toast(t("auto.created", { name: d.name }));
          app.go(`#/automation/${encodeURIComponent(d.id)}/form`);
        } else {
          const r = await api("PUT", `/automations/${seg(id)}`, d);
          toast(t("auto.saved", { version: r.version }));
          stored = await api("GET", `/automations/${seg(id)}`);
          drawHead();
          replace(content, await showFormEl());
        }
      },
    });
    const parts = [form];
    if (!isNew && admin) {
      parts.push(section(t("auto.danger_zone"), "danger-zone", h("button", { type: "button", class: "btn danger", testid: "automation-delete", on: { click: async () => {
        if (!(await confirmDialog({ title: t("auto.delete_title", { name: stored.automation.name || id }), message: t("auto.delete_text"), ok: t("btn.delete"), danger: true }))) return;
        try {
          await api("DELETE", `/automations/${seg(id)}`);
          toast(t("auto.deleted"));
          app.go("#/automations");
        } catch (e) { toast(errorText(e), "error"); }
      } } }, t("auto.delete"))));
    }
    return h("div", null, parts);
  }
  const showFormEl = showForm;

  async function showCode() {
    let format = "yaml";
    const area = h("textarea", { class: "code", rows: 22, spellcheck: "false", autocapitalize: "none", testid: "code-editor", "aria-label": t("auto.code"), readOnly: !admin });
    const err = h("div", { "aria-live": "assertive", testid: "code-errors" });
    const fmtBtns = ["yaml", "json"].map((f) => h("button", { type: "button", class: "btn seg", testid: `code-format-${f}`, "aria-pressed": String(f === format),
      on: { click: () => { if (format !== f) { format = f; fill(); } } } }, t(f === "yaml" ? "auto.format_yaml" : "auto.format_json")));
    const hint = h("p", { class: "hint" });
    async function fill() {
      hint.textContent = admin ? (format === "yaml" ? t("auto.code_hint_yaml") : t("auto.code_hint")) : t("auto.code_readonly");
      for (const b of fmtBtns) b.setAttribute("aria-pressed", String(b.dataset.testid === `code-format-${format}`));
      replace(err);
      area.value = "";
      if (isNew) {
        area.value = format === "yaml" ? `# ${t("auto.yaml_comment")}\nid: my_automation\nname: ""\ntriggers:\n  - time:\n      at: '07:00'\nactions:\n  - notify:\n      message: ""\n` : JSON.stringify({ id: "my_automation", name: "", triggers: [{ time: { at: "07:00" } }], actions: [{ notify: { message: "" } }] }, null, 2);
        return;
      }
      try {
        if (format === "yaml") area.value = await api("GET", `/automations/${seg(id)}/yaml`);
        else area.value = JSON.stringify((await api("GET", `/automations/${seg(id)}`)).automation, null, 2);
      } catch (e) { replace(err, errorBox(e)); }
    }
    const save = admin ? h("button", { type: "button", class: "btn primary", testid: "save-code", on: { click: async () => {
      replace(err);
      save.disabled = true;
      try {
        let savedId = id;
        if (format === "yaml") {
          const r = await api("POST", "/automations/import", area.value);
          savedId = r && r.saved && r.saved[0] ? r.saved[0].id : id;
        } else if (isNew) {
          const r = await api("POST", "/automations", area.value, { contentType: "application/json" });
          savedId = r.automation.id;
        } else {
          await api("PUT", `/automations/${seg(id)}`, area.value, { contentType: "application/json" });
        }
        toast(t("auto.code_saved"));
        if (isNew || savedId !== id) app.go(`#/automation/${encodeURIComponent(savedId)}/code`);
        else { stored = await api("GET", `/automations/${seg(id)}`); drawHead(); }
      } catch (e) {
        replace(err, errorBox(e));
        const d = e.details || {};
        const faults = Array.isArray(d.faults) ? d.faults : [];
        if (faults.length) err.append(h("ul", { class: "faults" }, faults.map((f) => h("li", null, h("code", null, f.path), " ", say(f.say, f.message)))));
        if (typeof d.line === "number") {
          err.append(h("p", { class: "hint" }, t("auto.at_line", { line: d.line, column: d.column || 1 })));
          const lines = area.value.split("\n");
          const start = lines.slice(0, d.line - 1).reduce((n, l) => n + l.length + 1, 0) + Math.max(0, (d.column || 1) - 1);
          area.focus();
          area.setSelectionRange(start, start + Math.max(1, (lines[d.line - 1] || "").length - (d.column || 1) + 1));
        }
      }
      save.disabled = false;
    } } }, isNew ? t("auto.create_from_code") : t("btn.save")) : null;
    const el = h("div", { class: "code-view" },
      h("div", { class: "btn-group", role: "group", "aria-label": t("auto.format") }, fmtBtns),
      hint, area, err, save ? h("div", { class: "actions" }, save) : null);
    await fill();
    return el;
  }

  async function showTraces() {
    const box = h("div", { testid: "traces" }, loading());
    const traceRows = new Map();
    let shownKey = null;
    async function refresh() {
      try {
        const list = await api("GET", `/automations/${seg(id)}/traces`);
        if (!root.isConnected) return;
        const key = list.map((tr) => tr.run).join(",");
        if (key === shownKey) return;
        shownKey = key;
        replace(box, list.length ? h("ul", { class: "list" }, list.map((tr) => {
          if (!traceRows.has(tr.run)) {
            traceRows.set(tr.run, h("li", { class: "list-row", testid: "trace-row", dataset: { run: tr.run } },
              h("div", { class: "grow" }, h("a", { href: `${base}/trace/${tr.run}`, testid: "trace-open" }, t("auto.run_n", { run: tr.run })),
                h("p", { class: "muted small" }, fmtWhen(tr.started_at), " · ", tr.trigger ? `${tv("trigger", tr.trigger.kind)}: ${say(tr.trigger.say, tr.trigger.description)}` : "")),
              endingBadge(tr.ending)));
          }
          return traceRows.get(tr.run);
        })) : empty(t("auto.no_traces"), "traces-empty"));
      } catch (e) { replace(box, errorBox(e)); }
    }
    await refresh();
    timers.push(setInterval(() => { if (document.visibilityState === "visible") refresh(); }, POLL_MS));
    onEvents = soonAfterEvents(() => { if (root.isConnected) refresh(); });
    return box;
  }

  async function showVersions() {
    const list = await api("GET", `/automations/${seg(id)}/versions`);
    const diffBox = h("div", { "aria-live": "polite" });
    const nums = list.map((v) => v.version);
    const current = nums[0];
    const fromSel = select({ class: "select", testid: "diff-from" }, nums.map((n) => [n, `v${n}`]), nums[1] || current);
    const toSel = select({ class: "select", testid: "diff-to" }, nums.map((n) => [n, `v${n}`]), current);
    async function showDiff(from, to) {
      replace(diffBox, loading());
      try {
        const d = await api("GET", `/automations/${seg(id)}/diff?from=${from}&to=${to}`);
        const lines = d.lines || [];
        replace(diffBox, h("h3", null, t("auto.diff_title", { from: d.from, to: d.to })),
          lines.some((l) => l.op !== "same") ? null : h("p", { class: "muted" }, t("auto.no_difference")),
          h("pre", { class: "diff", testid: "diff-view" }, lines.map((l) => h("span", { class: `diff-${l.op}`, dataset: { op: l.op } },
            (l.op === "added" ? "+ " : l.op === "removed" ? "- " : "  ") + l.text + "\n"))));
      } catch (e) { replace(diffBox, errorBox(e)); }
    }
    const compare = h("button", { type: "button", class: "btn", testid: "diff-compare", on: { click: () => showDiff(fromSel.value, toSel.value) } }, t("auto.compare"));
    const rows = h("ul", { class: "list" }, list.map((v) => h("li", { class: "list-row wrap", testid: "version-row", dataset: { version: v.version } },
      h("div", { class: "grow" }, h("h3", { class: "row-title" }, `v${v.version}`, v.version === current ? h("span", { class: "badge ok" }, t("auto.current")) : null),
        h("p", { class: "muted small" }, [fmtDateTime(v.saved_at), v.saved_by ? t("auto.saved_by", { name: v.saved_by }) : null, v.note].filter(Boolean).join(" · "))),
      v.version !== current ? h("button", { type: "button", class: "btn", testid: "version-diff", on: { click: () => showDiff(v.version, current) } }, t("auto.diff_with_current")) : null,
      v.version !== current && admin ? h("button", { type: "button", class: "btn", testid: "rollback-button", on: { click: async () => {
        if (!(await confirmDialog({ title: t("auto.rollback_title", { version: v.version }), message: t("auto.rollback_text"), ok: t("auto.rollback") }))) return;
        try {
          const r = await api("POST", `/automations/${seg(id)}/rollback`, { version: v.version });
          toast(t("auto.rolled_back", { version: v.version, new: r.version }));
          app.go(`${base}/versions`);
          stored = await api("GET", `/automations/${seg(id)}`);
          drawHead();
          replace(content, await showVersions());
        } catch (e) { toast(errorText(e), "error"); }
      } } }, t("auto.rollback")) : null)));
    return h("div", { testid: "versions" }, rows, list.length > 1 ? h("div", { class: "inline-form" }, field(t("auto.from_version"), fromSel), field(t("auto.to_version"), toSel), compare) : null, diffBox);
  }

  (async () => {
    try {
      await load();
      if (!root.isConnected) return;
      drawHead();
      const el = tab === "form" ? await showForm() : tab === "code" ? await showCode() : tab === "traces" ? await showTraces() : await showVersions();
      if (root.isConnected) replace(content, el);
    } catch (e) {
      drawHead();
      replace(content, errorBox(e));
    }
  })();
  return { destroy: () => timers.forEach(clearInterval), onChange: (c) => onEvents && onEvents(c) };
}

/** A dry run's plan as [depth, text] lines: from `plan` (said in the language), else `actions`. */
function planLines(r) {
  if (Array.isArray(r.plan) && r.plan.length === (r.actions || []).length) {
    return r.plan.map((l, i) => [l.depth || 0, (l.alias ? `${l.alias}: ` : "") + say(l.say, String(r.actions[i]).trim())]);
  }
  return (r.actions || []).map((a) => [0, typeof a === "string" ? a : JSON.stringify(a)]);
}

function conditionList(conds, heading = true) {
  if (!conds.length) return null;
  return h("div", null, heading ? h("h3", null, t("auto.conditions")) : null, h("ul", { class: "checklist", testid: "trace-conditions" }, conds.map((c) => h("li", { class: c.result ? "pass" : "fail", dataset: { result: String(!!c.result) } },
    h("span", { class: "mark", "aria-hidden": "true" }, c.result ? "✓" : "✗"),
    h("span", { class: "sr-only" }, c.result ? t("auto.held") : t("auto.did_not_hold")),
    h("span", null, h("code", null, c.path), " ", say(c.say, c.detail))))));
}

// ----- one trace -----------------------------------------------------------------------------

export function renderTrace(root, [id, run]) {
  const back = `#/automation/${encodeURIComponent(id)}/traces`;
  root.append(pageHead(t("auto.run_n", { run }), { back, testid: "trace-title" }));
  const box = h("div", { testid: "trace-detail" }, loading());
  root.append(box);
  api("GET", `/automations/${seg(id)}/traces/${seg(run)}`).then((tr) => {
    const trig = tr.trigger || {};
    const dl = (rows) => h("dl", { class: "diag" }, rows.filter(([, v]) => v !== undefined && v !== null && v !== "").flatMap(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
    const known = (v, name) => (v === undefined ? undefined : sayValue(name, v, trig.device, trig.feature));
    replace(box, 
      h("p", { class: "muted" }, t("auto.trace_meta", { version: tr.version, started: fmtDateTime(tr.started_at), ended: tr.ended_at ? fmtDateTime(tr.ended_at) : "…" })),
      section(t("auto.trace_trigger"), "trace-trigger", h("div", { class: "panel" }, dl([
        [t("auto.kind"), tv("trigger", trig.kind)], [t("auto.trigger_id"), trig.id], [t("auto.what_happened"), say(trig.say, trig.description)], [t("auto.when"), trig.at ? fmtDateTime(trig.at) : undefined],
        [t("auto.device"), known(trig.device, "device")], [t("auto.feature"), known(trig.feature, "feature")], [t("auto.from"), known(trig.old, "old")], [t("auto.to"), known(trig.new, "new")], [t("auto.event"), known(trig.event, "event")],
        [t("auto.caused_by"), trig.context ? originText(trig.context) : undefined]]))),
      section(t("auto.conditions"), "trace-conditions-section", h("div", { class: "panel" }, conditionList(tr.conditions || [], false) || h("p", { class: "muted" }, t("auto.no_conditions_checked")))),
      section(t("auto.steps"), "trace-steps", h("div", { class: "panel" }, (tr.steps || []).length ? h("ol", { class: "steps" }, tr.steps.map((s) => h("li", { class: s.ok === false ? "fail" : "pass", testid: "trace-step" },
        h("div", { class: "row" }, h("strong", null, s.alias || tv("action", s.action)), h("span", { class: "muted small" }, fmtWhen(s.at))),
        h("code", { class: "small" }, s.path), h("p", { testid: "step-outcome" }, s.ok === false ? `${t("auto.step_failed")}: ` : "", say(s.say, s.outcome))))) : h("p", { class: "muted" }, t("auto.no_steps")),
      tr.steps_dropped ? h("p", { class: "hint" }, t("auto.steps_dropped", { n: tr.steps_dropped })) : null)),
      section(t("auto.ending"), "trace-ending", h("div", { class: "panel" }, h("p", null, endingBadge(tr.ending), " ", h("span", { testid: "ending-message" }, tr.ending ? say(tr.ending.say, tr.ending.message) : "")))),
    );
  }).catch((e) => replace(box, errorBox(e)));
}
