// Languages: every visible text goes through `t(key, params)`; values of the API's closed
// vocabularies through `tv(group, value)`. Numbers and dates are formatted with Intl for the
// chosen language. The choice is remembered in localStorage (only the language is stored there).

import en from "../i18n/en.js";
import zh from "../i18n/zh.js";

export const LANGUAGES = [
  { code: "en", dict: en, label: "lang.en" },
  { code: "zh-CN", dict: zh, label: "lang.zh" },
];
const STORE_KEY = "hearth.lang";
let current = "en";
let dict = en;
const listeners = new Set();

/** The language from the saved choice, else the browser's languages, else English. */
export function detectLang() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (LANGUAGES.some((l) => l.code === saved)) return saved;
  } catch { /* storage may be off */ }
  for (const l of navigator.languages || [navigator.language || "en"]) {
    const x = String(l).toLowerCase();
    if (x.startsWith("zh")) return "zh-CN";
    if (x.startsWith("en")) return "en";
  }
  return "en";
}

export function getLang() {
  return current;
}

/** Sets the language; `remember` saves it. Tells listeners so screens re-render. */
export function setLang(code, remember = false) {
  const l = LANGUAGES.find((x) => x.code === code) || LANGUAGES[0];
  current = l.code;
  dict = l.dict;
  fmtCache.clear();
  document.documentElement.lang = current;
  if (remember) {
    try { localStorage.setItem(STORE_KEY, current); } catch { /* ignore */ }
  }
  for (const fn of listeners) fn(current);
}

export function onLangChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The text for `key`, with `{name}` placeholders filled from `params`. */
export function t(key, params) {
  let s = dict[key];
  if (s === undefined) s = en[key];
  if (s === undefined) {
    console.warn("missing translation", key);
    s = key;
  }
  if (params) s = s.replace(/\{(\w+)\}/g, (m, p) => (p in params ? String(params[p]) : m));
  return s;
}

/** A value of a closed vocabulary (`cap`, `ending`, ...), translated when known, else as it is. */
export function tv(group, value) {
  const key = `${group}.${value}`;
  if (key in dict) return t(key);
  if (key in en) return en[key];
  return String(value);
}

/** Whether `tv(group, value)` has a translation. */
export function hasTv(group, value) {
  return `${group}.${value}` in dict;
}

const fmtCache = new Map();
function cached(kind, opts, make) {
  const k = kind + JSON.stringify(opts || {});
  let f = fmtCache.get(k);
  if (!f) {
    f = make();
    fmtCache.set(k, f);
  }
  return f;
}

/** A number in the language's format. */
export function fmtNum(n, opts) {
  if (typeof n !== "number" || !Number.isFinite(n)) return String(n);
  return cached("n", opts, () => new Intl.NumberFormat(current, opts)).format(n);
}

/** Fraction digits for a feature's step: 0.5 gives 1, 0.01 gives 2, none gives up to 2. */
export function digitsFor(step) {
  if (typeof step !== "number" || step <= 0) return { maximumFractionDigits: 2 };
  if (step >= 1) return { maximumFractionDigits: 0 };
  const d = Math.min(3, Math.ceil(-Math.log10(step) - 1e-9));
  return { minimumFractionDigits: 0, maximumFractionDigits: d };
}

function toDate(ts) {
  if (ts instanceof Date) return ts;
  if (typeof ts === "number") return new Date(ts);
  return new Date(String(ts));
}

/** Date and time, short. */
export function fmtDateTime(ts) {
  const d = toDate(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return cached("dt", null, () => new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "medium" })).format(d);
}

/** Time of day, or date and time when not today. */
export function fmtWhen(ts) {
  const d = toDate(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return cached("t", null, () => new Intl.DateTimeFormat(current, { timeStyle: "medium" })).format(d);
  }
  return fmtDateTime(d);
}

/** Axis label for a chart: time for short ranges, day and time for longer ones. */
export function fmtAxis(ts, long) {
  const opts = long ? { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
  return cached("ax" + long, opts, () => new Intl.DateTimeFormat(current, opts)).format(toDate(ts));
}

/** "3 minutes ago", in the language. */
export function fmtRelative(ts) {
  const d = toDate(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  const secs = Math.round((d.getTime() - Date.now()) / 1000);
  const rtf = cached("r", null, () => new Intl.RelativeTimeFormat(current, { numeric: "auto" }));
  const abs = Math.abs(secs);
  if (abs < 45) return rtf.format(0, "second");
  if (abs < 3600) return rtf.format(Math.round(secs / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(secs / 3600), "hour");
  return rtf.format(Math.round(secs / 86400), "day");
}

/** A count of seconds as m:ss. */
export function fmtCountdown(secs) {
  const s = Math.max(0, Math.round(secs));
  const m = Math.floor(s / 60);
  return `${fmtNum(m)}:${String(s % 60).padStart(2, "0")}`;
}
