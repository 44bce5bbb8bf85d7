// The advice feed: one card per finding, newest first, changed in place when the finding is
// updated (count, last seen, evidence). A card shows its severity, kind, title and message; the
// fix and the evidence open with a click. Filters by severity and by kind hide cards.

import { ago, el, fmtDuration, fmtNumber, setRich, setText } from "./format.js";
import { renderSuggestion } from "./suggestion.js";

const $ = (id) => document.getElementById(id);
const cards = new Map(); // id -> { data, el, receivedAt }
const SEVERITIES = ["critical", "warning", "info"];
const filter = { severities: new Set(SEVERITIES), kind: "" };

// `source` (stream or list) is kept on the card as data-source: where the finding first came
// from, which the browser test reads to tell the live stream from the periodic check.
export function upsertAdvice(a, { quiet = false, source } = {}) {
  let entry = cards.get(a.id);
  if (!entry) {
    entry = { data: a, el: buildAdviceCard(a), receivedAt: performance.now() };
    entry.el.dataset.source = source;
    cards.set(a.id, entry);
    insertByFirstSeen(entry);
  } else {
    entry.data = a;
    entry.receivedAt = performance.now();
  }
  fillAdviceCard(entry.el, a);
  if (!quiet) {
    entry.el.classList.remove("flash");
    void entry.el.offsetWidth; // restart the animation
    entry.el.classList.add("flash");
  }
  updateAdviceCount();
}

// Newest first by first_seen: an update changes a card in place, it does not move it.
function insertByFirstSeen(entry) {
  const list = $("advice-list");
  const first = entry.data.first_seen;
  for (const li of list.children) {
    const other = cards.get(li.dataset.id);
    if (other && other.data.first_seen < first) {
      list.insertBefore(entry.el, li);
      return;
    }
  }
  list.append(entry.el);
}

export function removeAdvice(id) {
  const entry = cards.get(id);
  if (!entry) return;
  entry.el.remove();
  cards.delete(id);
  updateAdviceCount();
}

export function clearAdvice() {
  for (const id of [...cards.keys()]) removeAdvice(id);
}

/** Shows or hides each card by the filters, and says how many are shown and hidden. */
export function updateAdviceCount() {
  const n = cards.size;
  const bySeverity = new Map(SEVERITIES.map((s) => [s, 0]));
  const byKind = new Map();
  let shown = 0;
  for (const { data, el: li } of cards.values()) {
    const severity = SEVERITIES.includes(data.severity) ? data.severity : "info";
    bySeverity.set(severity, bySeverity.get(severity) + 1);
    byKind.set(data.kind, (byKind.get(data.kind) || 0) + 1);
    const visible = filter.severities.has(severity) && (!filter.kind || filter.kind === data.kind);
    li.hidden = !visible;
    if (visible) shown += 1;
  }
  $("advice-empty").hidden = n > 0;
  $("advice-filters").hidden = n === 0;
  const pill = $("advice-count");
  pill.hidden = n === 0;
  setText(pill, shown === n ? String(n) : `${shown} of ${n}`);
  for (const button of document.querySelectorAll(".sev-filter")) {
    setText(button.querySelector(".n"), String(bySeverity.get(button.dataset.severity)));
  }
  kindOptions(byKind, n);
  $("advice-filtered").hidden = shown === n;
  setText($("advice-filtered-text"), `${n - shown} of ${n} ${n === 1 ? "finding is" : "findings are"} hidden by the filters.`);
}

// "All kinds (6)", then each kind present with its count; a chosen kind stays listed at 0.
function kindOptions(byKind, total) {
  const select = $("kind-filter");
  if (filter.kind && !byKind.has(filter.kind)) byKind.set(filter.kind, 0);
  const wanted = [["", `All kinds (${total})`], ...[...byKind].sort().map(([k, c]) => [k, `${k} (${c})`])];
  const now = [...select.options].map((o) => [o.value, o.textContent]);
  if (JSON.stringify(now) === JSON.stringify(wanted)) return;
  select.replaceChildren(...wanted.map(([value, label]) => el("option", { value, text: label })));
  select.value = filter.kind;
}

for (const button of document.querySelectorAll(".sev-filter")) {
  button.addEventListener("click", () => {
    const severity = button.dataset.severity;
    if (filter.severities.has(severity)) filter.severities.delete(severity);
    else filter.severities.add(severity);
    button.setAttribute("aria-pressed", String(filter.severities.has(severity)));
    updateAdviceCount();
  });
}

$("kind-filter").addEventListener("change", (ev) => {
  filter.kind = ev.target.value;
  updateAdviceCount();
});

$("advice-show-all").addEventListener("click", () => {
  filter.severities = new Set(SEVERITIES);
  filter.kind = "";
  for (const button of document.querySelectorAll(".sev-filter")) button.setAttribute("aria-pressed", "true");
  updateAdviceCount();
});

/** When each finding was first seen, for the chart's markers: `{ at (ms), severity, label }`. */
export function adviceMarks() {
  return [...cards.values()].map(({ data }) => ({
    at: Date.parse(data.first_seen),
    severity: data.severity,
    label: `${data.severity} ${data.kind}: ${data.title}`,
  }));
}

/**
 * Drops the cards of findings missing from `/api/advice` (`list`, asked for at `asked`), and
 * adds or refreshes the others. The stream has no "removed" event: a reset by someone else, or a
 * finding evicted from the bounded list, shows only as a missing id. A card that arrived after
 * the list was asked for stays.
 */
export function reconcileAdvice(list, asked) {
  const current = new Set(list.map((a) => a.id));
  for (const [id, entry] of cards) {
    if (!current.has(id) && entry.receivedAt < asked) removeAdvice(id);
  }
  for (const a of list) {
    const known = cards.get(a.id);
    if (!known || known.data.last_seen < a.last_seen) upsertAdvice(a, { quiet: true, source: "list" });
  }
}

/** Moves every "12 s ago" on, without asking the server. */
export function tickTimes() {
  for (const t of document.querySelectorAll("time.last-seen")) setText(t, ago(t.dateTime));
}

function buildAdviceCard(a) {
  const titleId = `advice-${a.id}`;
  const li = el("li", { class: "card", "data-id": a.id, "data-kind": a.kind });
  const art = el("article", { "aria-labelledby": titleId });
  const head = el(
    "div",
    { class: "card-head" },
    el("span", { class: "sev" }),
    el("span", { class: "kind" }),
    el("span", { class: "seen" }, "seen ", el("b", { class: "count" }), "× · last ", el("time", { class: "last-seen" })),
  );
  // Closed at first: a feed of open cards is thousands of pixels tall. Updates keep it as the
  // user left it.
  const fix = el("div", { class: "fix" }, el("h4", { text: "Suggestion" }), el("div", { class: "suggestion" }));
  const evidence = el("div", { class: "evidence" }, el("h4", { text: "Evidence" }), el("dl"));
  const more = el("details", { class: "more" }, el("summary", { class: "more-label" }), fix, evidence);
  more.addEventListener("toggle", () => li.classList.toggle("open", more.open));
  art.append(head, el("h3", { id: titleId, class: "title" }), el("p", { class: "msg" }), more);
  li.append(art);
  return li;
}

function fillAdviceCard(li, a) {
  const sev = a.severity || "info";
  li.classList.remove(...SEVERITIES.filter((s) => s !== sev));
  li.classList.add(sev);
  li.dataset.severity = sev;
  const q = (sel) => li.querySelector(sel);
  const badge = q(".sev");
  badge.className = `sev ${sev}`;
  setText(badge, sev);
  setText(q(".kind"), a.kind);
  setText(q(".count"), String(a.count));
  const time = q(".last-seen");
  time.dateTime = a.last_seen;
  time.title = new Date(a.last_seen).toLocaleString();
  setText(time, ago(a.last_seen));
  setRich(q(".title"), a.title);
  setRich(q(".msg"), a.message);
  renderSuggestion(q(".suggestion"), a.suggestion || "");
  q(".fix").hidden = !a.suggestion;
  const dl = q(".evidence dl");
  const fresh = evidenceList(a.evidence || {}, 0);
  dl.replaceWith(fresh);
  q(".evidence").hidden = fresh.childElementCount === 0;
  const parts = [a.suggestion ? "fix" : "", fresh.childElementCount ? "evidence" : ""].filter(Boolean);
  setText(q(".more-label"), parts.length ? `Show ${parts.join(" and ")}` : "No fix or evidence");
  q(".more").hidden = parts.length === 0;
}

const SQL_KEY = /(query|statement)s?$/;

// Short facts flow side by side; statements, lists and nested objects take a whole line.
function evidenceList(obj, depth) {
  const dl = el("dl");
  for (const [key, value] of Object.entries(obj)) {
    if (value === null || value === undefined) continue;
    const shown = evidenceValue(key, value, depth);
    const wide = typeof shown !== "string" || shown.length > 40;
    const label = typeof value === "number" && DURATION_KEY.test(key) ? key.replace(DURATION_KEY, "") : key;
    dl.append(el("div", { class: wide ? "kv wide" : "kv" }, el("dt", { text: label.replace(/_/g, " ") }), el("dd", {}, shown)));
  }
  return dl;
}

// Identifiers are numbers too, but not quantities: no thousands separators for them.
const ID_KEY = /(^|_)(pid|pids|session|id)$/;
// Durations in milliseconds or seconds: shown in one unit style (format.js, fmtDuration).
const DURATION_KEY = /_(ms|s)$/;

function evidenceValue(key, value, depth) {
  if (Array.isArray(value)) {
    if (value.length === 0) return "none";
    const flat = value.every((v) => typeof v !== "object" || v === null);
    if (flat && !SQL_KEY.test(key) && value.length <= 12) return value.map((v) => evidenceValue(key, v, depth)).join(", ");
    return el("ol", {}, ...value.map((v) => el("li", {}, evidenceValue(key, v, depth + 1))));
  }
  if (typeof value === "object") {
    if (depth >= 2) return el("code", { text: JSON.stringify(value) });
    return evidenceList(value, depth + 1);
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") {
    if (key.endsWith("_ms")) return fmtDuration(value);
    if (key.endsWith("_s")) return fmtDuration(value * 1000);
    return ID_KEY.test(key) ? String(value) : fmtNumber(value);
  }
  if (SQL_KEY.test(key)) return el("code", { text: String(value) });
  return String(value);
}
