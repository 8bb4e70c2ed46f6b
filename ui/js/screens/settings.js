// Settings: my account (password, sign-out), language, and for administrators areas, users,
// tokens, adapter actions, the link to the plugins screen, backup and the audit log; adapters
// and the cloud link for everyone.

import { h, field, select, replace, append } from "../dom.js";
import { t, tv, LANGUAGES, getLang, setLang, fmtDateTime, fmtWhen, fmtNum } from "../i18n.js";
import { api, seg } from "../api.js";
import { state, isAdmin } from "../live.js";
import { pageHead, section, empty, errorBox, errorText, toast, loading, confirmDialog, showFormError, reasonText } from "../ui.js";
import { say } from "../say.js";

function listOf(r, key) {
  if (Array.isArray(r)) return r;
  if (r && Array.isArray(r[key])) return r[key];
  return [];
}

function when(v) {
  return v ? fmtDateTime(v) : t("value.none");
}

export function renderSettings(root, _params, app) {
  root.append(pageHead(t("settings.title")));
  const admin = isAdmin();
  const body = h("div", { class: "settings", testid: "settings-screen" });
  root.append(body);
  const adaptersBox = h("div", { class: "panel" }, loading());
  const areas = admin ? areasSection() : null;
  append(body, [
    accountSection(app),
    languageSection(),
    areas ? areas.sec : null,
    admin ? usersSection() : null,
    admin ? tokensSection() : null,
    section(t("settings.adapters"), "adapters-section", adaptersBox),
    admin ? section(t("settings.plugins"), "plugins-section", h("div", { class: "panel" }, h("p", { class: "hint" }, t("settings.plugins_help")),
      h("a", { class: "btn", href: "#/plugins", testid: "plugins-link" }, t("settings.plugins_manage")))) : null,
    section(t("settings.cloud"), "cloud-section", h("div", { class: "panel" }, h("p", { testid: "cloud-status" }, t("settings.cloud_not_set_up")))),
    admin ? section(t("settings.backup"), "backup-section", h("div", { class: "panel" }, h("p", { class: "hint" }, t("settings.backup_help")),
      h("a", { class: "btn", href: "/api/v1/backup", download: "", testid: "backup-download" }, t("settings.backup_download")))) : null,
    admin ? auditSection() : null,
    aboutSection(),
  ]);
  let adapters = [];
  function renderAdapters() {
    if (!adapters.length) return replace(adaptersBox, empty(t("settings.no_adapters")));
    replace(adaptersBox, h("ul", { class: "list" }, adapters.map((a) => {
      const st = state.adapterStatus.get(a.id) || a.status || {};
      const s = st.state || "unknown";
      return h("li", { class: "list-row wrap", testid: "adapter-row", dataset: { adapterId: a.id } },
        h("div", { class: "grow" }, h("h3", { class: "row-title" }, a.name || a.id),
          h("p", { class: "muted small" }, t("settings.adapter_devices", { n: fmtNum(a.devices || 0) })),
          st.reason ? h("p", { class: "small", testid: "adapter-reason" }, reasonText(st)) : null),
        h("span", { class: ["badge", s === "running" ? "ok" : s === "degraded" || s === "starting" ? "warn" : "danger"], testid: "adapter-status", dataset: { state: s } }, tv("adapter_state", s)),
        admin && a.actions && a.actions.length ? actionRunner(a) : null);
    })));
  }
  api("GET", "/adapters").then((r) => { adapters = listOf(r, "adapters"); if (root.isConnected) renderAdapters(); })
    .catch((e) => replace(adaptersBox, errorBox(e)));
  return {
    onChange(c) {
      if (c.type === "adapter" && adapters.length) renderAdapters();
      if ((c.type === "areas" || c.type === "snapshot") && areas) areas.render();
    },
  };
}

function accountSection(app) {
  const u = state.user || {};
  const cur = h("input", { type: "password", autocomplete: "current-password", required: true, testid: "password-current" });
  const nw = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 8, testid: "password-new" });
  const nw2 = h("input", { type: "password", autocomplete: "new-password", required: true, minlength: 8, testid: "password-confirm" });
  const err = h("div");
  const submit = h("button", { class: "btn primary", testid: "password-submit" }, t("settings.change_password"));
  const form = h("form", { class: "form", testid: "password-form", novalidate: true },
    h("h3", null, t("settings.change_password")),
    h("input", { type: "text", autocomplete: "username", value: u.name || "", hidden: true, readOnly: true, tabindex: "-1", "aria-hidden": "true" }),
    field(t("settings.current_password"), cur), field(t("settings.new_password"), nw, t("onboarding.password_hint")), field(t("field.password_confirm"), nw2), err, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(err);
    if (nw.value.length < 8) return err.append(errorBox({ message: t("error.password_short") }));
    if (nw.value !== nw2.value) return err.append(errorBox({ message: t("error.password_mismatch") }));
    submit.disabled = true;
    try {
      await api("POST", "/auth/password", { current: cur.value, new: nw.value }, { quiet401: true });
      form.reset();
      toast(t("settings.password_changed"));
    } catch (e2) {
      err.append(errorBox(e2.status === 401 ? { code: "wrong_password" } : e2));
    }
    submit.disabled = false;
  });
  const logout = h("button", { type: "button", class: "btn", testid: "logout", on: { click: () => app.signOut() } }, t("settings.logout"));
  return section(t("settings.account"), "account-section", h("div", { class: "panel" },
    h("p", null, t("settings.signed_in_as", { name: u.name || "" }), " ", h("span", { class: "badge", testid: "account-role" }, tv("role", u.role || "member"))),
    logout, form));
}

function languageSection() {
  const sel = select({ class: "select", testid: "lang-select", on: { change: () => setLang(sel.value, true) } },
    LANGUAGES.map((l) => [l.code, t(l.label)]), getLang());
  return section(t("settings.language"), "language-section", h("div", { class: "panel" }, field(t("settings.language"), sel)));
}

function areasSection() {
  const box = h("div");
  const render = () => {
    replace(box, state.areas.length ? h("ul", { class: "list" }, state.areas.map((a) => {
      const name = h("input", { value: a.name, "aria-label": t("settings.area_name"), testid: "area-name-input", maxlength: 64 });
      const form = h("form", { class: "list-row", testid: "area-row", dataset: { areaId: a.id } }, h("div", { class: "grow" }, name),
        h("button", { class: "btn", testid: "area-rename" }, t("btn.save")),
        h("button", { type: "button", class: "btn danger", testid: "area-delete", on: { click: async () => {
          if (!(await confirmDialog({ title: t("settings.area_delete_title", { name: a.name }), message: t("settings.area_delete_text"), ok: t("btn.delete"), danger: true }))) return;
          try { await api("DELETE", `/areas/${seg(a.id)}`); toast(t("settings.area_deleted")); } catch (e) { toast(errorText(e), "error"); }
        } } }, t("btn.delete")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try { await api("PATCH", `/areas/${seg(a.id)}`, { name: name.value.trim() }); toast(t("settings.area_saved")); } catch (err) { toast(errorText(err), "error"); }
      });
      return h("li", null, form);
    })) : empty(t("settings.no_areas")));
  };
  render();
  const nm = h("input", { testid: "new-area-name", maxlength: 64, autocomplete: "off" });
  const add = h("form", { class: "inline-form" }, field(t("settings.new_area"), nm), h("button", { class: "btn primary", testid: "add-area" }, t("btn.add")));
  add.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!nm.value.trim()) return;
    try { await api("POST", "/areas", { name: nm.value.trim() }); nm.value = ""; toast(t("settings.area_added")); } catch (err) { toast(errorText(err), "error"); }
  });
  // Areas change through live events (area_updated, area_removed); the screen redraws them.
  return { sec: section(t("settings.areas"), "areas-section", h("div", { class: "panel" }, box, add)), render };
}

function areaChecks(selected) {
  const boxes = state.areas.map((a) => {
    const cb = h("input", { type: "checkbox", value: a.id, checked: selected.includes(a.id), testid: "user-area", dataset: { areaId: a.id } });
    return [cb, h("label", { class: "check" }, cb, h("span", null, a.name))];
  });
  return { el: h("fieldset", { class: "checks" }, h("legend", null, t("settings.user_areas")), h("p", { class: "hint" }, t("settings.user_areas_hint")), boxes.map((b) => b[1])),
    value: () => boxes.filter(([cb]) => cb.checked).map(([cb]) => cb.value) };
}

function usersSection() {
  const box = h("div", null, loading());
  const load = async () => {
    try {
      const users = listOf(await api("GET", "/users"), "users");
      replace(box, h("ul", { class: "list" }, users.map((u) => {
        const role = u.role || (u.admin ? "admin" : "member");
        const me = state.user && u.name === state.user.name;
        const roleSel = select({ class: "select", testid: "user-role", disabled: me, on: { change: async () => {
          try { await api("PATCH", `/users/${seg(u.name)}`, { role: roleSel.value }); toast(t("settings.user_saved")); load(); } catch (e) { toast(errorText(e), "error"); load(); }
        } } }, [["admin", tv("role", "admin")], ["member", tv("role", "member")]], role);
        const areas = Array.isArray(u.areas) ? u.areas : [];
        let areaEdit = null;
        if (role === "member") {
          const ac = areaChecks(areas);
          const saveAreas = h("button", { type: "button", class: "btn", testid: "user-areas-save", on: { click: async () => {
            try { await api("PATCH", `/users/${seg(u.name)}`, { areas: ac.value() }); toast(t("settings.user_saved")); } catch (e) { toast(errorText(e), "error"); }
          } } }, t("btn.save"));
          areaEdit = h("details", { class: "details" }, h("summary", null, areas.length ? t("settings.user_limited", { areas: areas.map((id) => state.areas.find((a) => a.id === id)?.name || id).join(", ") }) : t("settings.user_all_areas")), ac.el, saveAreas);
        }
        const del = me ? null : h("button", { type: "button", class: "btn danger", testid: "user-remove", on: { click: async () => {
          if (!(await confirmDialog({ title: t("settings.user_remove_title", { name: u.name }), message: t("settings.user_remove_text"), ok: t("btn.remove"), danger: true }))) return;
          try { await api("DELETE", `/users/${seg(u.name)}`); toast(t("settings.user_removed")); load(); } catch (e) { toast(errorText(e), "error"); }
        } } }, t("btn.remove"));
        return h("li", { class: "list-row wrap", testid: "user-row", dataset: { userName: u.name } },
          h("div", { class: "grow" }, h("h3", { class: "row-title" }, u.name, me ? h("span", { class: "muted small" }, ` (${t("settings.you")})`) : null), areaEdit),
          field(t("settings.role"), roleSel), del);
      })));
    } catch (e) { replace(box, errorBox(e)); }
  };
  load();
  const name = h("input", { testid: "new-user-name", autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true, maxlength: 64 });
  const pw = h("input", { type: "password", testid: "new-user-password", autocomplete: "new-password", required: true, minlength: 8 });
  const role = select({ class: "select", testid: "new-user-role" }, [["member", tv("role", "member")], ["admin", tv("role", "admin")]], "member");
  const ac = areaChecks([]);
  role.addEventListener("change", () => { ac.el.hidden = role.value !== "member"; });
  const err = h("div");
  const add = h("form", { class: "form", testid: "add-user-form", novalidate: true }, h("h3", null, t("settings.add_user")),
    field(t("field.name"), name), field(t("field.password"), pw, t("onboarding.password_hint")), field(t("settings.role"), role), ac.el, err,
    h("button", { class: "btn primary", testid: "add-user-submit" }, t("settings.add_user")));
  add.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(err);
    if (!name.value.trim()) return showFormError(err, { message: t("error.name_required") });
    if (pw.value.length < 8) return showFormError(err, { message: t("error.password_short") });
    const body = { name: name.value.trim(), password: pw.value, role: role.value };
    if (role.value === "member") body.areas = ac.value();
    try {
      await api("POST", "/users", body);
      add.reset();
      ac.el.hidden = false;
      toast(t("settings.user_added", { name: body.name }));
      load();
    } catch (e2) { showFormError(err, e2); }
  });
  return section(t("settings.users"), "users-section", h("div", { class: "panel" }, box, add));
}

function tokensSection() {
  const box = h("div", null, loading());
  const shown = h("div", { "aria-live": "polite" });
  const load = async () => {
    try {
      const tokens = listOf(await api("GET", "/tokens"), "tokens");
      const row = (tk) => h("li", { class: "list-row wrap", testid: "token-row", dataset: { tokenId: tk.id, kind: tk.kind } },
        h("div", { class: "grow" }, h("h3", { class: "row-title" }, tk.name || String(tk.id), tk.current ? h("span", { class: "badge ok", testid: "token-current" }, t("settings.this_session")) : null),
          h("p", { class: "muted small" }, [tk.user ? t("settings.token_user", { name: tk.user }) : null, t("settings.token_created", { when: when(tk.created_at) }),
            tk.expires_at ? t("settings.token_expires", { when: when(tk.expires_at) }) : null].filter(Boolean).join(" · "))),
        tk.current ? null : h("button", { type: "button", class: "btn danger", testid: "token-revoke", on: { click: async () => {
          if (!(await confirmDialog({ title: t("settings.token_revoke_title", { name: tk.name || tk.id }), message: t("settings.token_revoke_text"), ok: t("settings.revoke"), danger: true }))) return;
          try { await api("DELETE", `/tokens/${seg(String(tk.id))}`); load(); } catch (e) { toast(errorText(e), "error"); }
        } } }, t("settings.revoke")));
      const apiTokens = tokens.filter((tk) => tk.kind !== "session");
      const sessions = tokens.filter((tk) => tk.kind === "session");
      replace(box, apiTokens.length ? h("ul", { class: "list" }, apiTokens.map(row)) : empty(t("settings.no_tokens")),
        sessions.length ? h("details", { class: "details", testid: "sessions" }, h("summary", null, t("settings.sessions", { n: sessions.length })), h("ul", { class: "list" }, sessions.map(row))) : null);
    } catch (e) { replace(box, errorBox(e)); }
  };
  load();
  const name = h("input", { testid: "new-token-name", autocomplete: "off", required: true, maxlength: 64 });
  const form = h("form", { class: "inline-form" }, field(t("settings.token_name"), name, t("settings.token_help")), h("button", { class: "btn primary", testid: "create-token" }, t("settings.create_token")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) return;
    try {
      const r = await api("POST", "/tokens", { name: name.value.trim() });
      name.value = "";
      const value = h("input", { readOnly: true, value: r.token || "", class: "mono", testid: "token-value", "aria-label": t("settings.token_value") });
      const copy = h("button", { type: "button", class: "btn", on: { click: async () => {
        try { await navigator.clipboard.writeText(value.value); toast(t("settings.copied")); } catch { value.select(); }
      } } }, t("settings.copy"));
      replace(shown, h("div", { class: "notice", testid: "token-created" }, h("p", null, t("settings.token_once")), h("div", { class: "inline-form" }, value, copy)));
      value.select();
      load();
    } catch (e2) { toast(errorText(e2), "error"); }
  });
  return section(t("settings.tokens"), "tokens-section", h("div", { class: "panel" }, box, shown, form));
}

function actionRunner(a) {
  const sel = select({ class: "select", testid: "adapter-action" }, a.actions.map((x) => [x, x]), a.actions[0]);
  const params = h("textarea", { class: "mono", rows: 2, testid: "adapter-action-params", spellcheck: "false" }, "{}");
  const out = h("pre", { class: "mono out", testid: "adapter-action-result", hidden: true });
  const run = h("button", { type: "button", class: "btn", testid: "adapter-action-run", on: { click: async () => {
    let body;
    try { body = JSON.parse(params.value || "{}"); } catch { out.hidden = false; out.textContent = t("settings.bad_json"); return; }
    run.disabled = true;
    try {
      const r = await api("POST", `/adapters/${seg(a.id)}/actions/${seg(sel.value)}`, body);
      out.textContent = JSON.stringify(r && "result" in r ? r.result : r, null, 2);
    } catch (e) { out.textContent = errorText(e); }
    out.hidden = false;
    run.disabled = false;
  } } }, t("settings.run_action"));
  return h("details", { class: "details full" }, h("summary", null, t("settings.adapter_actions")),
    a.id === "zigbee2mqtt" ? h("p", null, h("a", { class: "btn", href: "#/discovery" }, t("settings.permit_join_link"))) : null,
    field(t("settings.action"), sel), field(t("settings.action_params"), params), run, out);
}

function auditSection() {
  const box = h("div", null, loading());
  api("GET", "/audit?limit=50").then((r) => {
    const rows = listOf(r, "entries");
    if (!rows.length) return replace(box, empty(t("settings.audit_empty")));
    replace(box, h("ol", { class: "log", testid: "audit-log" }, rows.map((e) => {
      const at = e.at || e.time;
      const who = e.actor || e.user || t("settings.audit_unknown_actor");
      const what = e.action ? tv("audit", String(e.action).replace(".", "_")) : "";
      const note = e.detail ? say(e.say, e.detail) : "";
      const rest = [e.target, note, e.ip].filter((x) => x !== undefined && x !== null && x !== "").map(String).join(" · ");
      return h("li", { class: "log-entry", testid: "audit-row", dataset: { action: e.action || "" } }, h("time", { class: "log-time", datetime: at }, at ? fmtWhen(at) : ""),
        h("span", { class: "log-what" }, [who, what].filter(Boolean).join(" — ")), rest ? h("span", { class: "log-origin" }, rest) : null);
    })));
  }).catch((e) => replace(box, errorBox(e)));
  return section(t("settings.audit"), "audit-section", h("div", { class: "panel" }, box));
}

function aboutSection() {
  const p = h("p", { class: "muted", testid: "about-version" });
  fetch("/healthz", { cache: "no-store" }).then((r) => r.json()).then((j) => { p.textContent = t("settings.version", { version: j.version || "?" }); }).catch(() => {});
  return section(t("settings.about"), "about-section", h("div", { class: "panel" }, p));
}
