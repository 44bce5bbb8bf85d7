// Who ran each query: the tags /api/queries counts per fingerprint (sqlcommenter, Marginalia and
// `key=value` comments, application_name), shown as a compact cell of the Top queries table, with
// the full lists in its tooltip, and as the choices of the tag filter. The same rules as
// `pgvisor report` (docs/cli.md): the top value of each key, code keys first; a tag that every
// listed query ran with, with one value, is said once above the table instead of in each row.

import { el, fmtNumber } from "./format.js";

// Keys that name the code that ran a statement come first, then the others alphabetically, then
// application_name (the program, not the code path).
const FIRST_KEYS = ["route", "controller", "action", "job"];
const LAST_KEY = "application_name";
// The column is narrow: application_name is `app` there (in full in the tooltip and the filter).
const SHORT_KEYS = { application_name: "app" };
// Keys shown in a cell; the rest are in its tooltip.
const CELL_KEYS = 3;
// Suggestions offered by the tag filter.
const MAX_OPTIONS = 50;

function keyRank(key) {
  const i = FIRST_KEYS.indexOf(key);
  if (i >= 0) return [i, ""];
  return key === LAST_KEY ? [FIRST_KEYS.length + 1, ""] : [FIRST_KEYS.length, key];
}

function byKeyRank(a, b) {
  const [ra, ka] = keyRank(a);
  const [rb, kb] = keyRank(b);
  return ra - rb || (ka < kb ? -1 : ka > kb ? 1 : 0);
}

const tagsOf = (q) => (q && typeof q.tags === "object" && q.tags) || {};
const valuesOf = (tags, key) => (Array.isArray(tags[key]) ? tags[key] : []);

/** `[key, value]` pairs that every one of `rows` (two or more) ran with, and with nothing else. */
export function commonTags(rows) {
  if (rows.length < 2) return [];
  const only = (q, key) => {
    const values = valuesOf(tagsOf(q), key);
    return values.length === 1 ? String(values[0].value) : null;
  };
  return Object.keys(tagsOf(rows[0]))
    .filter((key) => {
      const value = only(rows[0], key);
      return value !== null && rows.every((q) => only(q, key) === value);
    })
    .sort(byKeyRank)
    .map((key) => [key, only(rows[0], key)]);
}

/** The `key:value` filter that selects the queries run with `value` of `key`. */
export const tagFilter = (key, value) => `${key}:${value}`;

/** True when `text` is a filter the API takes: `key:value`, split at the first colon. */
export function isTagFilter(text) {
  const colon = text.indexOf(":");
  return colon > 0 && text.slice(0, colon).trim() !== "";
}

/**
 * Fills the callers cell `td` of query `q`, leaving out the keys of `common`; each shown value is
 * a button that calls `onPick(filter)`. Returns whether the cell shows anything. Rebuilt only
 * when the tags or the common keys changed, so a tooltip being read stays.
 */
export function fillCallers(td, q, common, onPick) {
  const skip = new Set(common.map(([key]) => key));
  const tags = tagsOf(q);
  const keys = Object.keys(tags).filter((k) => !skip.has(k) && valuesOf(tags, k).length > 0).sort(byKeyRank);
  const signature = JSON.stringify([tags, q.calls, q.tags_cut || 0, [...skip]]);
  if (td.dataset.signature === signature) return keys.length > 0;
  td.dataset.signature = signature;
  const chips = keys.slice(0, CELL_KEYS).map((key) => {
    const values = valuesOf(tags, key);
    const top = values[0];
    const notes = [];
    if (top.calls < q.calls) notes.push(fmtNumber(top.calls));
    if (values.length > 1) notes.push(`+${values.length - 1} more`);
    const filter = tagFilter(key, String(top.value));
    const chip = el("button", { type: "button", class: "tag", "data-filter": filter },
      el("span", { class: "tag-key", text: `${SHORT_KEYS[key] || key}=` }),
      el("span", { class: "tag-text", text: String(top.value) }),
      notes.length ? el("small", { text: ` (${notes.join(", ")})` }) : null);
    chip.addEventListener("click", () => onPick(filter));
    return chip;
  });
  const hidden = keys.length - chips.length;
  if (hidden > 0) chips.push(el("small", { class: "tag-rest", text: `+${hidden} ${hidden === 1 ? "key" : "keys"}` }));
  td.replaceChildren(...chips);
  const lines = Object.keys(tags).sort(byKeyRank).map((key) =>
    `${key}: ${valuesOf(tags, key).map((v) => `${v.value} (${fmtNumber(v.calls)} ${v.calls === 1 ? "call" : "calls"})`).join(", ")}`);
  if (q.tags_cut) lines.push(`${fmtNumber(q.tags_cut)} more tag values counted but not listed`);
  if (lines.length) td.title = `Who ran this query (click a value to show only its queries):\n${lines.join("\n")}`;
  else td.removeAttribute("title");
  return keys.length > 0;
}

/** `key:value` suggestions for the tag filter from `rows`, the most used first. */
export function tagOptions(rows) {
  const calls = new Map();
  for (const q of rows) {
    const tags = tagsOf(q);
    for (const key of Object.keys(tags)) {
      for (const v of valuesOf(tags, key)) {
        const filter = tagFilter(key, String(v.value));
        calls.set(filter, (calls.get(filter) || 0) + (Number(v.calls) || 0));
      }
    }
  }
  return [...calls].sort((a, b) => b[1] - a[1]).slice(0, MAX_OPTIONS).map(([filter]) => filter);
}
