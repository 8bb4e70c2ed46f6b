// Shared pieces of screens: page heads, toasts, the confirm dialog, error and empty states.

import { h, icon, replace, append } from "./dom.js";
import { t, tv, hasTv } from "./i18n.js";
import { say } from "./say.js";

/** A short message at the bottom of the screen. Errors are announced assertively. */
export function toast(message, kind = "info", title) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const close = h("button", { type: "button", class: "icon-btn", "aria-label": t("btn.dismiss"), on: { click: () => el.remove() } }, icon("close"));
  const el = h("div", { class: ["toast", kind], role: kind === "error" ? "alert" : "status", testid: kind === "notification" ? "notification" : "toast" },
    h("div", { class: "toast-text" }, title ? h("strong", null, title) : null, h("span", null, message)), close);
  box.append(el);
  setTimeout(() => el.remove(), kind === "error" || kind === "notification" ? 10000 : 4000);
  while (box.children.length > 2) box.firstElementChild.remove();
}

/** Asks for confirmation in a modal dialog; resolves true when confirmed. */
export function confirmDialog({ title, message, ok, danger = false }) {
  return new Promise((resolve) => {
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": "dlg-title", testid: "confirm-dialog" });
    const done = (v) => {
      resolve(v);
      dlg.close();
      dlg.remove();
    };
    append(dlg, [
      h("h2", { id: "dlg-title" }, title),
      message ? h("p", null, message) : null,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "btn", testid: "confirm-cancel", on: { click: () => done(false) } }, t("btn.cancel")),
        h("button", { type: "button", class: ["btn", danger ? "danger" : "primary"], testid: "confirm-ok", on: { click: () => done(true) } }, ok || t("btn.ok"))),
    ]);
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** The heading of a screen (focused after navigation), with an optional back link and actions. */
export function pageHead(title, { back, actions, testid } = {}) {
  const h1 = h("h1", { tabindex: "-1", id: "page-title", testid }, title);
  return h("div", { class: "page-head" },
    back ? h("a", { class: "icon-btn back", href: back, "aria-label": t("btn.back"), testid: "back" }, icon("back")) : null,
    h1, actions ? h("div", { class: "page-actions" }, actions) : null);
}

// Error codes whose server message adds facts worth showing after the translated text.
const WITH_DETAIL = new Set(["invalid_secret", "invalid_body", "invalid_params", "adapter_error", "invalid_name", "invalid_query", "invalid_version"]);

/** An API error as text in the language: known codes translated, else the hub's message; a
 * definition's faults follow unless `withFaults` is false (where they are listed apart). */
export function errorText(e, withFaults = true) {
  if (!e) return "";
  const faults = withFaults && e.details && Array.isArray(e.details.faults) ? e.details.faults : null;
  if (e.code && hasTv("err", e.code) && faults && faults.length) {
    return `${tv("err", e.code)} ${faults.map((f) => (f.path ? `${f.path}: ` : "") + say(f.say, f.message)).join("; ")}`;
  }
  if (e.code && hasTv("err", e.code)) {
    const base = tv("err", e.code);
    return WITH_DETAIL.has(e.code) && e.message ? `${base} ${e.message}` : base;
  }
  if (e.status === 403) return tv("err", "forbidden");
  return e.message || String(e);
}

// Reason codes whose words add facts (an error's text) worth showing after the translation.
const REASON_DETAIL = new Set(["broker_unreachable", "failed", "adapter_failed", "no_advertisement", "no_bluetooth", "unreachable", "no_network", "no_answer", "not_announced", "refused"]);

/** An adapter's or a device's reason ({reason, code}) in the language: a known code translated,
 * else the adapter's own words. */
export function reasonText(x) {
  if (!x || !x.reason) return "";
  if (x.code && hasTv("reason", x.code)) {
    const base = tv("reason", x.code);
    return REASON_DETAIL.has(x.code) ? `${base} (${x.reason})` : base;
  }
  return x.reason;
}

/** An error message in place. */
export function errorBox(e, testid = "error") {
  return h("p", { class: "error-box", role: "alert", testid }, errorText(e, false));
}

/** Text shown where a list is empty. */
export function empty(text, testid) {
  return h("p", { class: "empty", testid }, text);
}

export function loading() {
  return h("p", { class: "loading", role: "status" }, t("state.loading"));
}

/** A section with a heading. */
export function section(title, testid, ...children) {
  return h("section", { class: "section", testid }, h("h2", null, title), children);
}

/** Puts a form's error (or nothing) into its error slot. */
export function showFormError(slot, e) {
  replace(slot);
  if (!e) return;
  slot.append(errorBox(e, "form-error"));
  const faults = e.details && Array.isArray(e.details.faults) ? e.details.faults : null;
  if (faults && faults.length) {
    slot.append(h("ul", { class: "faults", testid: "faults" }, faults.map((f) => h("li", null, f.path ? h("code", null, f.path) : null, f.path ? " " : null, f.message))));
  }
}
