// DOM helpers. Elements are built from text only (textContent and text nodes), never from HTML
// strings, so names and messages from devices, users and automations can never become markup.

const SVGNS = "http://www.w3.org/2000/svg";
// Attributes set as properties (value last, after min/max/step, so a range is not clamped).
const PROPS = new Set(["checked", "disabled", "selected", "hidden", "readOnly", "required", "multiple", "open", "indeterminate"]);

function setAttrs(el, attrs) {
  let value;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "testid") el.dataset.testid = v;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === "dataset") for (const [dk, dv] of Object.entries(v)) { if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv); }
    else if (k === "value") value = v;
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  if (value !== undefined) el.value = value;
}

/** Appends children: strings and numbers become text nodes; null, false and undefined are skipped. */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
  return el;
}

/** `h("button", {class: "x", on: {click}}, "text", child)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) setAttrs(el, attrs);
  return append(el, children);
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "testid") el.setAttribute("data-testid", v);
    else el.setAttribute(k, String(v));
  }
  return append(el, children);
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let uid = 0;
/** A unique id for label/control pairs. */
export function nextId(prefix = "f") {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled field: `<div class="field"><label for=id>label</label>control hint</div>`. */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId();
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hid = nextId("hint");
    control.setAttribute("aria-describedby", hid);
    parts.push(h("p", { class: "hint", id: hid }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/** `<select>` from [value, label] pairs. */
export function select(attrs, options, selected) {
  const el = h("select", attrs);
  for (const [value, label] of options) {
    el.append(h("option", { value, selected: String(value) === String(selected) }, label));
  }
  if (selected !== undefined && selected !== null) el.value = String(selected);
  return el;
}

const ICONS = {
  home: "M4 11 12 4l8 7v9h-5v-6H9v6H4z",
  automations: "M13 2 4 14h7l-1 8 9-12h-7z",
  scenes: "M12 3l2.6 5.6 6.1.7-4.5 4.2 1.2 6L12 16.6 6.6 19.5l1.2-6L3.3 9.3l6.1-.7z",
  discovery: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM12 8v8M8 12h8",
  settings: "M12 8.5a3.5 3.5 0 1 0 0 7 3.5 3.5 0 0 0 0-7zM10.3 2h3.4l.5 2.6 2 1.1 2.5-.9 1.7 2.9-2 1.8v2.2l2 1.8-1.7 2.9-2.5-.9-2 1.1-.5 2.6h-3.4l-.5-2.6-2-1.1-2.5.9-1.7-2.9 2-1.8v-2.2l-2-1.8 1.7-2.9 2.5.9 2-1.1z",
  back: "M15 5l-7 7 7 7",
  bell: "M12 3a6 6 0 0 0-6 6v4l-2 3h16l-2-3V9a6 6 0 0 0-6-6zM10 19a2 2 0 0 0 4 0",
  close: "M6 6l12 12M18 6 6 18",
  battery: "M3 8h15v8H3zM18 10.5h2v3h-2",
  signal: "M4 20v-3M9 20v-7M14 20v-11M19 20V4",
};

/** A decorative icon (hidden from assistive technology; its control carries the label). */
export function icon(name) {
  return svg("svg", { class: "icon", viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false" },
    svg("path", { d: ICONS[name] || "" }));
}
