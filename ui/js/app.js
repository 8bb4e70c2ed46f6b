// Hearth web UI: the shell (header, navigation, connection banner, toasts), sign-in state and the
// hash router (#/home, #/device/<id>, #/automations, ...). Plain ES modules, no build step.
//
// The data-testid hooks for browser tests are listed in ui/TESTIDS.md.

import { h, icon, replace } from "./dom.js";
import { t, setLang, detectLang, onLangChange } from "./i18n.js";
import { api, onUnauthorized } from "./api.js";
import { state, subscribe, connect, disconnect, setUser, isAdmin, reconnectNow } from "./live.js";
import { toast } from "./ui.js";
import { renderLogin, renderOnboarding } from "./screens/auth.js";
import { renderHome } from "./screens/home.js";
import { renderDevice } from "./screens/device.js";
import { renderDiscovery } from "./screens/discovery.js";
import { renderAutomations, renderAutomation, renderNewAutomation, renderTrace } from "./screens/automations.js";
import { renderScenes } from "./screens/scenes.js";
import { renderSettings } from "./screens/settings.js";
import { renderPlugins } from "./screens/plugins.js";

const NAV = [
  ["home", "#/home", "nav.home"],
  ["automations", "#/automations", "nav.automations"],
  ["scenes", "#/scenes", "nav.scenes"],
  ["discovery", "#/discovery", "nav.discovery"],
  ["settings", "#/settings", "nav.settings"],
];

// pattern, render, section of the navigation, whether it needs an administrator
const ROUTES = [
  [/^home$/, renderHome, "home"],
  [/^device\/(.+)$/, renderDevice, "home"],
  [/^discovery$/, renderDiscovery, "discovery"],
  [/^automations$/, renderAutomations, "automations"],
  [/^automations\/new(?:\/code)?$/, renderNewAutomation, "automations", true],
  [/^automation\/([^/]+)\/trace\/(\d+)$/, renderTrace, "automations"],
  [/^automation\/([^/]+)(?:\/(form|code|traces|versions))?$/, renderAutomation, "automations"],
  [/^scenes$/, renderScenes, "scenes"],
  [/^settings$/, renderSettings, "settings"],
  [/^plugins$/, renderPlugins, "settings", true],
];

const app = {
  onboardingNeeded: false,
  /** Navigates to a hash route. */
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  /** After login or onboarding: remember the user, open the socket, show the app. */
  signedIn(user) {
    setUser(user);
    app.onboardingNeeded = false;
    connect();
    const back = sessionStorage.getItem("hearth.return");
    sessionStorage.removeItem("hearth.return");
    renderShell();
    // Where the user was going before signing in; else, after a reload, the screen reloaded.
    const inApp = (hash) => !!hash && hash.startsWith("#/") && !/^#\/(login|onboarding)/.test(hash);
    app.go(inApp(back) ? back : inApp(location.hash) ? location.hash : "#/home");
    // The login answer may lack role and areas; /auth/me has them.
    api("GET", "/auth/me", undefined, { quiet401: true }).then((me) => {
      if (me && me.name) {
        const before = isAdmin();
        setUser(me);
        renderShell();
        if (before !== isAdmin()) route();
      }
    }).catch(() => {});
  },
  async signOut() {
    try { await api("POST", "/auth/logout", undefined, { quiet401: true }); } catch { /* the session may be gone already */ }
    endSession();
    app.go("#/login");
  },
};

function endSession() {
  disconnect();
  setUser(null);
  renderShell();
}

let screen = null; // {destroy?, onChange?}
let screenRoot = null;

function currentPath() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(2) : "";
  return raw || "home";
}

function route() {
  const path = currentPath();
  if (location.hash && !location.hash.startsWith("#/")) return; // an in-page anchor
  if (screen && screen.destroy) screen.destroy();
  screen = null;
  const main = document.getElementById("main");
  screenRoot = h("div", { class: "screen" });
  replace(main, screenRoot);
  if (!state.user) {
    if (path !== "login" && path !== "onboarding") sessionStorage.setItem("hearth.return", "#/" + path);
    const want = app.onboardingNeeded ? "onboarding" : "login";
    if (path !== want) {
      history.replaceState(null, "", "#/" + want);
    }
    screen = (want === "onboarding" ? renderOnboarding : renderLogin)(screenRoot, [], app) || null;
    document.title = t(want === "onboarding" ? "onboarding.title" : "login.title") + " · " + t("app.name");
    setNavCurrent(null);
    return;
  }
  if (path === "login" || path === "onboarding") {
    history.replaceState(null, "", "#/home");
    return route();
  }
  for (const [re, render, nav, adminOnly] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    setNavCurrent(nav);
    if (adminOnly && !isAdmin()) {
      screenRoot.append(h("p", { class: "error-box", role: "alert", testid: "forbidden" }, t("err.forbidden")));
      return;
    }
    const params = m.slice(1).map((x) => (x === undefined ? undefined : decodeURIComponent(x)));
    screen = render(screenRoot, params, app) || null;
    const title = screenRoot.querySelector("h1");
    document.title = (title ? title.textContent + " · " : "") + t("app.name");
    // After navigating, focus moves to the new screen's heading, so a screen reader announces it.
    if (title && routed) title.focus({ preventScroll: true });
    routed = true;
    document.getElementById("main").scrollTop = 0;
    return;
  }
  screenRoot.append(h("p", { class: "empty", testid: "not-found" }, t("state.no_such_page")), h("a", { href: "#/home", class: "btn" }, t("nav.home")));
}
let routed = false;

function setNavCurrent(which) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.nav === which) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function renderShell() {
  const signed = !!state.user;
  document.body.classList.toggle("signed-in", signed);
  const header = document.getElementById("top");
  const skip = h("a", { class: "skip", href: "#main", on: { click: (e) => { e.preventDefault(); document.getElementById("main").focus(); } } }, t("shell.skip"));
  replace(header, skip,
    h("a", { class: "brand", href: "#/home", testid: "brand" }, h("img", { src: "/icons/icon.svg", alt: "", width: 28, height: 28 }), h("span", null, t("app.name"))),
    signed ? h("a", { class: "who", href: "#/settings", testid: "user-name", "aria-label": t("shell.signed_in_as", { name: state.user.name }) }, state.user.name) : null);
  const nav = document.getElementById("nav");
  nav.setAttribute("aria-label", t("nav.label"));
  nav.hidden = !signed;
  replace(nav, h("ul", null, NAV.map(([key, href, label]) => h("li", null,
    h("a", { href, testid: `nav-${key}`, dataset: { nav: key } }, icon(key), h("span", null, t(label)))))));
  renderBanner();
}

function renderBanner() {
  const b = document.getElementById("banner");
  const down = !!state.user && state.conn === "down";
  b.hidden = !down;
  document.body.classList.toggle("conn-down", down);
  b.dataset.state = state.conn;
  if (down) {
    replace(b, h("span", { class: "pulse", "aria-hidden": "true" }), h("span", { testid: "connection-text" }, t("conn.lost")),
      h("button", { type: "button", class: "btn small", testid: "connection-retry", on: { click: reconnectNow } }, t("conn.retry")));
  } else replace(b);
}

subscribe((change) => {
  if (change.type === "conn") renderBanner();
  if (change.type === "notification") {
    const ev = change.event;
    toast(ev.message, "notification", ev.title);
  }
  if (screen && screen.onChange) {
    try { screen.onChange(change); } catch (e) { console.error(e); }
  }
});

onUnauthorized(() => {
  if (!state.user) return;
  // Signing in again returns to this screen.
  const path = currentPath();
  if (path !== "login" && path !== "onboarding") sessionStorage.setItem("hearth.return", "#/" + path);
  endSession();
  toast(t("auth.session_ended"), "error");
  app.go("#/login");
});

window.addEventListener("hashchange", route);

let booted = false;
async function boot() {
  if (!booted) {
    booted = true;
    setLang(detectLang());
    onLangChange(() => {
      renderShell();
      route();
    });
  }
  renderShell();
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((e) => console.warn("service worker", e));
  }
  let me = null;
  try {
    me = await api("GET", "/auth/me", undefined, { quiet401: true });
  } catch (e) {
    if (e.status !== 401) {
      // The hub is unreachable: say so, and try again shortly.
      replace(document.getElementById("main"), h("div", { class: "screen" }, h("p", { class: "error-box", role: "alert", testid: "boot-error" }, t("error.network")),
        h("button", { type: "button", class: "btn", on: { click: () => location.reload() } }, t("conn.retry"))));
      setTimeout(boot, 5000);
      return;
    }
  }
  if (me && me.name) {
    app.signedIn(me);
    return;
  }
  try {
    const r = await api("GET", "/onboarding", undefined, { quiet401: true });
    app.onboardingNeeded = !!(r && r.needed);
  } catch { app.onboardingNeeded = false; }
  renderShell();
  route();
}

boot();
