// The advice feed: one card per finding, newest first, changed in place when the finding is
// updated (count, last seen, evidence).

import { ago, el, fmtMs, fmtNumber, setRich, setText } from "./format.js";

const $ = (id) => document.getElementById(id);
const cards = new Map(); // id -> { data, el, receivedAt }

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

export function updateAdviceCount() {
  const n = cards.size;
  $("advice-empty").hidden = n > 0;
  const pill = $("advice-count");
  pill.hidden = n === 0;
  pill.textContent = String(n);
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
  const fix = el("div", { class: "fix" }, el("h4", { text: "Suggestion" }), el("p", { class: "suggestion" }));
  const evidence = el("details", { class: "evidence", open: true }, el("summary", { text: "Evidence" }), el("dl"));
  art.append(head, el("h3", { id: titleId, class: "title" }), el("p", { class: "msg" }), fix, evidence);
  li.append(art);
  return li;
}

function fillAdviceCard(li, a) {
  const sev = a.severity || "info";
  li.className = `card ${sev}`;
  const q = (sel) => li.querySelector(sel);
  setText(q(".sev"), sev);
  setText(q(".kind"), a.kind);
  setText(q(".count"), String(a.count));
  const time = q(".last-seen");
  time.dateTime = a.last_seen;
  time.title = new Date(a.last_seen).toLocaleString();
  setText(time, ago(a.last_seen));
  setRich(q(".title"), a.title);
  setRich(q(".msg"), a.message);
  setRich(q(".suggestion"), a.suggestion || "");
  q(".fix").hidden = !a.suggestion;
  const dl = q(".evidence dl");
  const fresh = evidenceList(a.evidence || {}, 0);
  dl.replaceWith(fresh);
  q(".evidence").hidden = fresh.childElementCount === 0;
}

const SQL_KEY = /(query|statement)s?$/;

// Short facts flow side by side; statements, lists and nested objects take a whole line.
function evidenceList(obj, depth) {
  const dl = el("dl");
  for (const [key, value] of Object.entries(obj)) {
    if (value === null || value === undefined) continue;
    const shown = evidenceValue(key, value, depth);
    const wide = typeof shown !== "string" || shown.length > 40;
    const label = key.endsWith("_ms") && typeof value === "number" ? key.slice(0, -3) : key;
    dl.append(el("div", { class: wide ? "kv wide" : "kv" }, el("dt", { text: label.replace(/_/g, " ") }), el("dd", {}, shown)));
  }
  return dl;
}

// Identifiers are numbers too, but not quantities: no thousands separators for them.
const ID_KEY = /(^|_)(pid|pids|session|id)$/;

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
    if (key.endsWith("_ms")) return `${fmtMs(value)} ms`;
    return ID_KEY.test(key) ? String(value) : fmtNumber(value);
  }
  if (SQL_KEY.test(key)) return el("code", { text: String(value) });
  return String(value);
}
