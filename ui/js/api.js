// The REST API under /api/v1. Authentication is the HttpOnly session cookie only: fetch sends it
// on same-origin requests, and the UI never sees or stores a token.

/** An error answer: `{"error": {"code", "message", "details"}}`, or a network failure (`network`). */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const unauthorizedHandlers = new Set();
/** Called when a request answers 401 (the session ended). */
export function onUnauthorized(fn) {
  unauthorizedHandlers.add(fn);
}

/**
 * `api("GET", "/devices")`. A body that is a string is sent as text (YAML); anything else as JSON.
 * Options: `text` reads the answer as text; `quiet401` does not report a 401 as a lost session.
 */
export async function api(method, path, body, opts = {}) {
  const headers = { accept: "application/json" };
  let payload;
  if (typeof body === "string") {
    headers["content-type"] = opts.contentType || "application/yaml; charset=utf-8";
    payload = body;
  } else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch("/api/v1" + path, { method, headers, body: payload, credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "network", e && e.message ? e.message : "network error", {});
  }
  if (r.status === 204) return null;
  const type = r.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) {
    try { data = await r.json(); } catch { data = null; }
  } else {
    data = await r.text();
  }
  if (!r.ok) {
    const err = data && data.error ? data.error : {};
    const e = new ApiError(r.status, err.code || "http_" + r.status, err.message || r.statusText || String(r.status), err.details);
    if (r.status === 401 && !opts.quiet401) for (const fn of unauthorizedHandlers) fn(e);
    throw e;
  }
  return data;
}

/** Path segment encoding for ids (device ids contain `:`). */
export function seg(s) {
  return encodeURIComponent(s);
}
