// A line chart of one numeric feature over time, drawn locally as SVG (no library).

import { svg, h, replace } from "./dom.js";
import { fmtNum, fmtAxis } from "./i18n.js";

// Round numbers for the y axis: four steps of 1, 2, 2.5 or 5 times a power of ten.
function niceRange(min, max) {
  if (min === max) {
    const pad = Math.abs(min) * 0.05 || 1;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const lo = Math.floor(min / step) * step;
  return [lo, lo + step * Math.max(4, Math.ceil((max - lo) / step - 1e-9)), step];
}

/**
 * Draws `points` ([{t: ms, v: number}], oldest first) between `from` and `to` (ms) into `box`.
 * `step`: values hold until the next change (settable features); else straight lines.
 */
export function drawChart(box, points, { from, to, unit, step, label }) {
  const width = Math.max(280, Math.round(box.clientWidth || 320));
  const height = 200;
  const m = { l: 48, r: 10, t: 22, b: 26 };
  const w = width - m.l - m.r;
  const ht = height - m.t - m.b;
  const root = svg("svg", { class: "chart-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, testid: "history-svg" });
  const vals = points.map((p) => p.v);
  const [lo, hi, tick] = vals.length ? niceRange(Math.min(...vals), Math.max(...vals)) : [0, 1, 0.25];
  const ticks = Math.round((hi - lo) / tick);
  const x = (tm) => m.l + ((tm - from) / (to - from)) * w;
  const y = (v) => m.t + (1 - (v - lo) / (hi - lo)) * ht;
  const digits = Math.max(0, Math.min(3, Math.ceil(-Math.log10(tick) - 1e-9)));
  const fmt = (v) => fmtNum(v, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  // Grid and y labels.
  for (let i = 0; i <= ticks; i++) {
    const v = lo + tick * i;
    const yy = y(v);
    root.append(svg("line", { x1: m.l, x2: width - m.r, y1: yy, y2: yy, class: "grid" }));
    root.append(svg("text", { x: m.l - 6, y: yy + 4, class: "axis", "text-anchor": "end", text: fmt(v) }));
  }
  const long = to - from > 26 * 3600 * 1000;
  for (let i = 0; i <= 3; i++) {
    const tm = from + ((to - from) * i) / 3;
    root.append(svg("text", { x: x(tm), y: height - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle", text: fmtAxis(tm, long) }));
  }
  if (unit) root.append(svg("text", { x: 4, y: 11, class: "axis unit", text: unit }));
  if (points.length) {
    let d = "";
    points.forEach((p, i) => {
      const px = x(Math.max(p.t, from)).toFixed(1);
      const py = y(p.v).toFixed(1);
      if (i === 0) d += `M${px},${py}`;
      else if (step) d += `H${px}V${py}`;
      else d += `L${px},${py}`;
    });
    const last = points[points.length - 1];
    d += step ? `H${x(to).toFixed(1)}` : "";
    root.append(svg("path", { d, class: "line" }));
    if (!step) root.append(svg("line", { x1: x(Math.max(last.t, from)), x2: x(to), y1: y(last.v), y2: y(last.v), class: "line dashed" }));
    root.append(svg("circle", { cx: x(Math.max(last.t, from)), cy: y(last.v), r: 3.5, class: "dot" }));
  }
  replace(box, root);
  return root;
}

/** A compact summary line: min, max, latest. */
export function summary(points, f, fmtValue, t) {
  if (!points.length) return h("p", { class: "muted" }, t("history.no_data"));
  const vals = points.map((p) => p.v);
  return h("p", { class: "chart-summary", testid: "history-summary" },
    t("history.summary", { min: fmtValue(f, Math.min(...vals)), max: fmtValue(f, Math.max(...vals)), latest: fmtValue(f, vals[vals.length - 1]) }));
}
