// The traffic chart: statements per second and a latency line over the last 10 minutes, with a
// mark where each finding was first seen. Hand-written SVG, fed by page.js's polls; nothing is
// kept on the server for it, so it starts empty when the page opens.
//
// - Statements per second: the difference of pgvisor_statements_total (GET /metrics) between
//   two polls, divided by the time between them.
// - Latency: pgvisor keeps one latency histogram per query since it started (or was reset), not
//   per second. The line shows, for each poll, the highest p95 among the queries of
//   /api/queries (the top 100) whose calls grew since the previous poll: "the slowest query that
//   ran in that second, by its p95". No query ran: no point.

import { fmtDuration, fmtNumber } from "./format.js";

const WINDOW_MS = 10 * 60 * 1000;
const MIN_SPAN_MS = 60 * 1000;
/** Polls further apart than this (a hidden tab, pgvisor away) break the lines. */
const GAP_MS = 5000;
const HEIGHT = 170;
const PAD = { left: 46, right: 58, top: 12, bottom: 24 };
const SVG = "http://www.w3.org/2000/svg";

const samples = []; // { at, rate, p95 } or { at, gap: true }
let previous = null; // { at, statements, calls: Map(fingerprint -> calls) }

/**
 * One poll's numbers: `at` (ms since the epoch), `statements` (pgvisor_statements_total, or null
 * when /metrics had none) and the rows of /api/queries.
 */
export function recordSample(at, statements, queries) {
  const calls = new Map(queries.map((q) => [q.fingerprint, q.calls]));
  const usable = previous && statements != null && previous.statements != null;
  if (usable && at - previous.at <= GAP_MS && statements >= previous.statements && at > previous.at) {
    const rate = (statements - previous.statements) / ((at - previous.at) / 1000);
    let p95 = null;
    for (const q of queries) {
      const before = previous.calls.get(q.fingerprint) || 0;
      // Fewer calls than before: the statistics were reset, and it ran since.
      const ran = q.calls > 0 && q.calls !== before;
      if (ran && (p95 === null || q.p95_ms > p95)) p95 = q.p95_ms;
    }
    samples.push({ at, rate, p95 });
  } else if (previous) {
    samples.push({ at, gap: true });
  }
  previous = { at, statements, calls };
  while (samples.length && samples[0].at < at - WINDOW_MS) samples.shift();
}

/** Marks a poll that failed, so the lines do not bridge the time pgvisor was away. */
export function recordGap(at) {
  if (previous) samples.push({ at, gap: true });
  previous = null;
}

/** Draws the chart into `box`; `marks` are `{ at, severity, label }` (feed.js, adviceMarks). */
export function renderChart(box, empty, marks) {
  const points = samples.filter((s) => !s.gap);
  empty.hidden = points.length > 0;
  box.hidden = points.length === 0;
  if (!points.length) return;
  const now = samples[samples.length - 1].at;
  const x0 = Math.max(now - WINDOW_MS, Math.min(points[0].at, now - MIN_SPAN_MS));
  const width = Math.max(280, Math.floor(box.clientWidth || 600));
  const plotW = width - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const rateMax = niceCeiling(Math.max(1, ...points.map((s) => s.rate)));
  const p95s = points.map((s) => s.p95).filter((v) => v !== null);
  const p95Max = niceCeiling(Math.max(1, ...p95s));
  const x = (at) => PAD.left + ((at - x0) / (now - x0 || 1)) * plotW;
  const yRate = (v) => PAD.top + plotH - (v / rateMax) * plotH;
  const yP95 = (v) => PAD.top + plotH - (v / p95Max) * plotH;

  const latest = points[points.length - 1];
  const minutes = Math.round((now - x0) / 60000);
  const summary =
    `Statements per second and p95 latency over the last ${minutes} ${minutes === 1 ? "minute" : "minutes"}: ` +
    `now ${fmtNumber(round1(latest.rate))} statements/s` +
    (latest.p95 === null ? "" : `, p95 ${fmtDuration(latest.p95)} for the slowest query that ran`);
  const svg = node("svg", {
    width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": summary,
    "data-points": String(points.length), "data-p95-points": String(p95s.length),
  });
  svg.append(node("title", {}, summary));

  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH - f * plotH;
    svg.append(node("line", { class: "grid", x1: PAD.left, x2: PAD.left + plotW, y1: y, y2: y }));
    svg.append(node("text", { class: "axis rate", x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, compact(rateMax * f)));
    svg.append(node("text", { class: "axis p95", x: PAD.left + plotW + 6, y: y + 4 }, f ? axisDuration(p95Max * f) : "0"));
  }
  svg.append(node("text", { class: "axis", x: PAD.left, y: HEIGHT - 6 }, `${minutes} min ago`));
  svg.append(node("text", { class: "axis", x: PAD.left + plotW, y: HEIGHT - 6, "text-anchor": "end" }, "now"));

  for (const m of marks) {
    if (!(m.at >= x0 && m.at <= now)) continue;
    const g = node("g", { class: `mark ${m.severity}` });
    g.append(node("title", {}, m.label));
    g.append(node("line", { x1: x(m.at), x2: x(m.at), y1: PAD.top, y2: PAD.top + plotH }));
    g.append(node("circle", { cx: x(m.at), cy: PAD.top, r: 4 }));
    svg.append(g);
  }

  const visible = samples.filter((s) => s.at >= x0);
  const rateLine = path(visible, (s) => s.rate, x, yRate);
  svg.append(node("path", { class: "area", d: `${rateLine.area}` }));
  svg.append(node("path", { class: "line rate", d: rateLine.d }));
  svg.append(node("path", { class: "line p95", d: path(visible, (s) => s.p95, x, yP95).d }));
  box.replaceChildren(svg);
}

// Line segments through the samples, broken at gaps and missing values; `area` fills under them.
function path(list, value, x, y) {
  let d = "";
  let area = "";
  let run = [];
  const flush = () => {
    if (run.length) {
      d += run.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)} ${py.toFixed(1)}`).join("");
      const base = y(0).toFixed(1);
      area += `M${run[0][0].toFixed(1)} ${base}` + run.map(([px, py]) => `L${px.toFixed(1)} ${py.toFixed(1)}`).join("") +
        `L${run[run.length - 1][0].toFixed(1)} ${base}Z`;
    }
    run = [];
  };
  for (const s of list) {
    const v = s.gap ? null : value(s);
    if (v === null || v === undefined) flush();
    else run.push([x(s.at), y(v)]);
  }
  flush();
  return { d, area };
}

function niceCeiling(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const round1 = (v) => Math.round(v * 10) / 10;

// Axis ticks are round numbers: "2.5 ms", "5 ms", "1.5 s" (the page's units, without padding zeros).
function axisDuration(ms) {
  return ms < 1000 ? `${Number(ms.toPrecision(3))} ms` : `${Number((ms / 1000).toPrecision(3))} s`;
}

function compact(v) {
  if (v >= 10000) return `${fmtNumber(Math.round(v / 1000))}k`;
  return fmtNumber(round1(v));
}

function node(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
