// Hearth's service worker: keeps the app shell so Hearth opens from the home screen, also when
// the hub is briefly unreachable. Network first for everything; /api/ is never intercepted or
// cached (live data and the session stay with the network). The hub fills in VERSION, a hash of
// the shell, so a new UI replaces the old cache.

const VERSION = "@@VERSION@@";
const CACHE = `hearth-shell-${VERSION}`;
const SHELL = [
  "/",
  "/index.html",
  "/manifest.webmanifest",
  "/css/app.css",
  "/icons/icon.svg",
  "/icons/maskable.svg",
  "/i18n/en.js",
  "/i18n/zh.js",
  "/js/api.js",
  "/js/app.js",
  "/js/chart.js",
  "/js/controls.js",
  "/js/dom.js",
  "/js/i18n.js",
  "/js/live.js",
  "/js/say.js",
  "/js/ui.js",
  "/js/vocab.js",
  "/js/screens/auth.js",
  "/js/screens/autoform.js",
  "/js/screens/automations.js",
  "/js/screens/device.js",
  "/js/screens/discovery.js",
  "/js/screens/home.js",
  "/js/screens/plugins.js",
  "/js/screens/scenes.js",
  "/js/screens/settings.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("hearth-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isApi(url) {
  return url.pathname.startsWith("/api/") || url.pathname === "/healthz" || url.pathname === "/metrics";
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || isApi(url)) return;
  event.respondWith(networkFirst(req));
});

async function networkFirst(req) {
  const cache = await caches.open(CACHE);
  const key = req.mode === "navigate" ? "/index.html" : req;
  try {
    const res = await fetch(req);
    if (res.ok && res.type === "basic") cache.put(key, res.clone());
    return res;
  } catch (err) {
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit) return hit;
    throw err;
  }
}
