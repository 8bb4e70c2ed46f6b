// First-run onboarding (the owner account) and sign-in, with the throttling countdown.

import { h, field, replace } from "../dom.js";
import { t, fmtCountdown } from "../i18n.js";
import { api } from "../api.js";
import { errorBox } from "../ui.js";

function brandHead(title, intro) {
  return h("div", { class: "auth-head" },
    h("img", { src: "/icons/icon.svg", alt: "", width: 64, height: 64, class: "auth-logo" }),
    h("h1", { tabindex: "-1", id: "page-title" }, title), intro ? h("p", { class: "lead" }, intro) : null);
}

/** Onboarding: creates the first (admin) account; `done(user)` signs in. */
export function renderOnboarding(root, _params, app) {
  const name = h("input", { name: "name", autocomplete: "username", required: true, maxlength: 64, testid: "onboarding-name", autocapitalize: "none", spellcheck: "false" });
  const pw = h("input", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 8, testid: "onboarding-password" });
  const pw2 = h("input", { name: "confirm", type: "password", autocomplete: "new-password", required: true, minlength: 8, testid: "onboarding-password-confirm" });
  const err = h("div", { class: "form-error" });
  const submit = h("button", { class: "btn primary wide", testid: "onboarding-submit" }, t("onboarding.submit"));
  const form = h("form", { class: "form auth-form", testid: "onboarding-form", novalidate: true }, field(t("field.name"), name, t("onboarding.name_hint")),
    field(t("field.password"), pw, t("onboarding.password_hint")), field(t("field.password_confirm"), pw2), err, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(err);
    if (!name.value.trim()) return err.append(errorBox({ message: t("error.name_required") }));
    if (pw.value.length < 8) return err.append(errorBox({ message: t("error.password_short") }));
    if (pw.value !== pw2.value) return err.append(errorBox({ message: t("error.password_mismatch") }));
    submit.disabled = true;
    try {
      const r = await api("POST", "/onboarding", { name: name.value.trim(), password: pw.value }, { quiet401: true });
      app.signedIn(r.user || { name: name.value.trim(), role: "admin", admin: true });
    } catch (e2) {
      if (e2.code === "already_onboarded") {
        app.onboardingNeeded = false;
        return app.go("#/login");
      }
      err.append(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  root.append(h("div", { class: "auth" }, brandHead(t("onboarding.title"), t("onboarding.intro")), form));
  setTimeout(() => name.focus(), 0);
}

/** Sign-in, with a countdown while the hub refuses attempts (429). */
export function renderLogin(root, _params, app) {
  const name = h("input", { name: "name", autocomplete: "username", required: true, testid: "login-name", autocapitalize: "none", spellcheck: "false" });
  const pw = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, testid: "login-password" });
  const err = h("div", { class: "form-error" });
  const submit = h("button", { class: "btn primary wide", testid: "login-submit" }, t("login.submit"));
  let timer = null;
  function countdown(secs) {
    clearInterval(timer);
    const until = Date.now() + secs * 1000;
    // The countdown ticks silently; the refusal itself is announced once.
    const p = h("p", { class: "error-box", testid: "login-countdown" });
    replace(err, h("span", { class: "sr-only", role: "alert" }, t("err.too_many_attempts")), p);
    submit.disabled = true;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0 || !root.isConnected) {
        clearInterval(timer);
        submit.disabled = false;
        p.textContent = t("login.try_again_now");
        p.dataset.remaining = "0";
        return;
      }
      p.dataset.remaining = String(left);
      p.textContent = t("login.too_many", { time: fmtCountdown(left) });
    };
    tick();
    timer = setInterval(tick, 1000);
  }
  const form = h("form", { class: "form auth-form", testid: "login-form", novalidate: true },
    field(t("field.name"), name), field(t("field.password"), pw), err, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (submit.disabled) return;
    replace(err);
    if (!name.value.trim() || !pw.value) return err.append(errorBox({ message: t("login.fill_both") }, "login-error"));
    submit.disabled = true;
    let throttled = false;
    try {
      const r = await api("POST", "/auth/login", { name: name.value.trim(), password: pw.value }, { quiet401: true });
      app.signedIn(r.user || { name: name.value.trim() });
    } catch (e2) {
      if (e2.status === 429 || e2.code === "too_many_attempts") {
        throttled = true;
        const secs = Number(e2.details && e2.details.retry_after_secs) || 60;
        countdown(secs);
      } else {
        err.append(errorBox(e2, "login-error"));
        pw.value = "";
        pw.focus();
      }
    } finally {
      if (!throttled) submit.disabled = false;
    }
  });
  root.append(h("div", { class: "auth" }, brandHead(t("login.title")), form));
  setTimeout(() => name.focus(), 0);
  return { destroy: () => clearInterval(timer) };
}
