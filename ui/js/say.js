// What the automation engine says in traces and dry runs, in the user's language. The hub gives
// each saying as data, {code, ...values}, next to its English words; the catalogs hold a text
// "say.<code>" for every code (a test of the automations crate checks both ways). A value is
// shown by its name: devices by their names, features by their labels, values with their
// units, times and durations in the language, trigger kinds and weekdays translated.

import { t, tv, hasTv, fmtNum, fmtDateTime, getLang } from "./i18n.js";
import { state, areaName } from "./live.js";
import { fmtValue, featureLabel } from "./controls.js";

const TIMES = new Set(["due", "until", "made"]);
const DURATIONS = new Set(["every", "hold", "delay", "timeout"]);
const DEVICES = new Set(["device", "devices", "missing"]);
const VALUES = new Set(["value", "old", "new"]);

/** The saying `s` in the language; `fallback` (the hub's English) when it is not a known saying.
 * A saying inside another takes the outer one's device and feature, so `= false` reads "off". */
export function say(s, fallback = "", outer = null) {
  if (!s || typeof s !== "object" || typeof s.code !== "string" || !hasTv("say", s.code)) return fallback || "";
  const ctx = context(s, outer);
  const params = {};
  for (const [k, v] of Object.entries(s)) if (k !== "code") params[k] = arg(k, v, ctx);
  const key = "say." + s.code;
  return t(key, params);
}

/** One value of a saying, by its name, as text in the language (`device` and `feature` say
 * which device and feature it belongs to, for names, labels and units). */
export function sayValue(name, value, device, feature) {
  return arg(name, value, context({ device, feature }, null));
}

function context(s, outer) {
  if (typeof s.device === "string") {
    const dev = state.devices.get(s.device) || null;
    const feat = dev && typeof s.feature === "string" ? (dev.features || []).find((f) => f.key === s.feature) || null : null;
    return { dev, feat, feature: s.feature };
  }
  if (Array.isArray(s.readings) && s.readings[0] && typeof s.readings[0] === "object") return context(s.readings[0], outer);
  if (typeof s.feature === "string") return { dev: null, feat: null, feature: s.feature };
  return outer || { dev: null, feat: null, feature: null };
}

function arg(k, v, ctx) {
  const { dev, feat } = ctx;
  if (Array.isArray(v)) return list(v.map((x) => arg(k, x, ctx)), k === "kinds" ? "disjunction" : "conjunction");
  if (v && typeof v === "object" && typeof v.code === "string") return say(v, "", ctx);
  if (v === null || v === undefined) return t("value.none");
  if (DEVICES.has(k)) return deviceName(String(v));
  if (k === "feature") return feat ? featureLabel(dev, feat) : hasTv("cap", v) ? tv("cap", v) : String(v);
  if (VALUES.has(k) || (k === "event" && feat)) return feat ? fmtValue(feat, v) : plain(v);
  if (TIMES.has(k)) return fmtDateTime(v);
  if (DURATIONS.has(k)) return fmtDuration(String(v));
  if (k === "kind" || k === "kinds") return tv("trigger", v);
  if (k === "weekday") return tv("weekday", v);
  if (k === "value_type") return tv("value_type", v);
  if (k === "scope" || k === "token_kind" || k === "role") return tv(k, v);
  if (k === "areas" || k === "area") return areaName(String(v));
  if (k === "event" && !dev && hasTv("sun_event", v)) return tv("sun_event", v);
  return plain(v);
}

function plain(v) {
  if (typeof v === "number") return fmtNum(v);
  if (typeof v === "boolean") return t(v ? "bool.yes" : "bool.no");
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function deviceName(id) {
  const d = state.devices.get(id);
  return d && d.name ? d.name : id;
}

function list(items, type) {
  try {
    return new Intl.ListFormat(getLang(), { style: "long", type }).format(items);
  } catch {
    return items.join(", ");
  }
}

const UNIT_NAMES = { d: "day", h: "hour", m: "minute", s: "second", ms: "millisecond" };

/** A duration as the hub writes it (`1h30m`, `90s`) in the language: "1 hr 30 min". */
export function fmtDuration(text) {
  const parts = [...String(text).matchAll(/(\d+)(ms|d|h|m|s)/g)];
  if (!parts.length) return String(text);
  return parts.map(([, n, u]) => {
    try {
      return new Intl.NumberFormat(getLang(), { style: "unit", unit: UNIT_NAMES[u], unitDisplay: "short" }).format(Number(n));
    } catch {
      return `${n}${u}`;
    }
  }).join(" ");
}
