// The queries and sessions tables, updated in place from each poll.

import { commonTags, fillCallers } from "./callers.js";
import { el, fmtDuration, fmtMs, fmtNumber, highlightSql, setText } from "./format.js";

const $ = (id) => document.getElementById(id);
let latency = { lo: 0, hi: 0 };
let common = []; // tags every row shares, said once above the table (callers.js)
let anyCallers = false;
let pickTag = () => {};

// `onPickTag(filter)` runs when a value in the callers column is clicked.
export function renderQueries(rows, { onPickTag } = {}) {
  $("queries-empty").hidden = rows.length > 0;
  $("queries-table").hidden = rows.length === 0;
  latency = latencyScale(rows);
  pickTag = onPickTag || (() => {});
  common = commonTags(rows);
  anyCallers = false;
  syncRows($("queries-body"), rows, (q) => q.fingerprint, buildQueryRow, fillQueryRow);
  // No column of empty cells: the shared tags, if any, are in the line above the table.
  $("queries-table").classList.toggle("no-callers", !anyCallers);
  const shared = common.map(([key, value]) => `${key}=${value}`).join(", ");
  setText($("queries-common"), shared ? `All of them ran with ${shared}` : "");
  $("queries-common").hidden = !shared;
}

function buildQueryRow(q) {
  const tr = el("tr", { role: "row", "data-fingerprint": q.fingerprint });
  tr.append(
    el("td", { role: "cell", class: "sql-cell" }, el("div", { class: "sql" }), el("span", { class: "fp" })),
    el("td", { role: "cell", class: "callers", "data-label": "Callers" }),
    el("td", { role: "cell", class: "num calls", "data-label": "Calls" }),
    el("td", { role: "cell", class: "num total", "data-label": "Total ms" }),
    el("td", { role: "cell", class: "num mean", "data-label": "Mean ms" }),
    el("td", { role: "cell", class: "num p99", "data-label": "p99 ms" }),
    el("td", { role: "cell", class: "lat" }),
  );
  return tr;
}

function fillQueryRow(tr, q) {
  const sql = tr.querySelector(".sql");
  if (sql.dataset.query !== q.query) {
    sql.dataset.query = q.query;
    sql.replaceChildren(...highlightSql(q.query));
  }
  const c = (name) => tr.querySelector(`.${name}`);
  setText(c("calls"), fmtNumber(q.calls));
  const errors = q.errors ? ` · ${fmtNumber(q.errors)} ${q.errors === 1 ? "error" : "errors"}` : "";
  setText(c("fp"), `${q.fingerprint} · ${fmtNumber(q.rows)} ${q.rows === 1 ? "row" : "rows"}${errors}`);
  setText(c("total"), fmtMs(q.total_ms));
  setText(c("mean"), fmtMs(q.mean_ms));
  setText(c("p99"), fmtMs(q.p99_ms));
  c("lat").replaceChildren(latencyBars(q));
  if (fillCallers(c("callers"), q, common, (filter) => pickTag(filter))) anyCallers = true;
}

// One log scale for the whole table, so bars compare across queries.
function latencyScale(rows) {
  let lo = Infinity;
  let hi = 0;
  for (const q of rows) {
    if (q.calls === 0) continue;
    lo = Math.min(lo, Math.max(q.p50_ms, 0.001));
    hi = Math.max(hi, q.max_ms);
  }
  return { lo: Math.min(lo, hi), hi };
}

const SVG = "http://www.w3.org/2000/svg";

function latencyBars(q) {
  const { lo, hi } = latency;
  const marks = [["p50", q.p50_ms], ["p95", q.p95_ms], ["p99", q.p99_ms], ["max", q.max_ms]];
  const label = marks.map(([n, v]) => `${n} ${fmtMs(v)} ms`).join(", ");
  const w = 84;
  const h = 24;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Latency: ${label}`);
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.append(title);
  const span = Math.log(hi / lo);
  marks.forEach(([name, v], i) => {
    const frac = !(span > 0) ? 1 : Math.min(1, Math.max(0, Math.log(Math.max(v, lo) / lo) / span));
    const bh = Math.max(2, Math.round(2 + frac * (h - 3)));
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(i * 21 + 1));
    rect.setAttribute("y", String(h - 1 - bh));
    rect.setAttribute("width", "18");
    rect.setAttribute("height", String(bh));
    rect.setAttribute("rx", "2");
    rect.setAttribute("class", name === "max" ? "m" : "b");
    svg.append(rect);
  });
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("x1", "0");
  base.setAttribute("x2", String(w));
  base.setAttribute("y1", String(h - 0.5));
  base.setAttribute("y2", String(h - 0.5));
  base.setAttribute("class", "base");
  svg.append(base);
  return svg;
}

export function renderSessions(rows) {
  $("sessions-empty").hidden = rows.length > 0;
  $("sessions-table").hidden = rows.length === 0;
  const pill = $("sessions-count");
  pill.hidden = rows.length === 0;
  pill.textContent = String(rows.length);
  syncRows($("sessions-body"), rows, (s) => String(s.id), buildSessionRow, fillSessionRow);
}

function buildSessionRow(s) {
  const tr = el("tr", { role: "row", "data-session": s.id });
  tr.append(
    el("td", { role: "cell", class: "who id" }),
    el("td", { role: "cell", class: "who client" }),
    el("td", { role: "cell", class: "state-cell" }, el("span", { class: "state" })),
    el("td", { role: "cell", class: "num txn", "data-label": "Transaction" }),
    el("td", { role: "cell", class: "sql-cell" }, el("div", { class: "sql stmt" })),
  );
  return tr;
}

function fillSessionRow(tr, s) {
  const id = tr.querySelector(".id");
  id.replaceChildren(`#${s.id}`, el("small", { text: s.pid ? `pid ${s.pid}` : "no pid yet" }));
  const app = s.application_name ? ` · ${s.application_name}` : "";
  tr.querySelector(".client").replaceChildren(
    `${s.user}@${s.database}`,
    el("small", { text: `${s.client_addr}${s.tls ? " · TLS" : ""}${app}` }),
  );
  const state = tr.querySelector(".state");
  state.className = `state ${s.state}`;
  setText(state, s.state.replace(/_/g, " "));
  setText(tr.querySelector(".txn"), s.transaction_ms == null ? "–" : fmtDuration(s.transaction_ms));
  const stmt = tr.querySelector(".stmt");
  const text = s.current_statement || "";
  if (stmt.dataset.query !== text) {
    stmt.dataset.query = text;
    stmt.replaceChildren(...(text ? highlightSql(text) : ["–"]));
  }
}

// Updates rows in place by key and puts them in the API's order, so a row being read or
// selected is not rebuilt every second.
function syncRows(tbody, items, key, build, fill) {
  const existing = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  let cursor = tbody.firstElementChild;
  for (const item of items) {
    const k = key(item);
    let tr = existing.get(k);
    if (tr) existing.delete(k);
    else {
      tr = build(item);
      tr.dataset.key = k;
    }
    fill(tr, item);
    if (tr !== cursor) tbody.insertBefore(tr, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const tr of existing.values()) tr.remove();
}
