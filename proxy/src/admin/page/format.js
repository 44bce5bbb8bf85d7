// Building the page's pieces from API values: elements, text, SQL, numbers and times. Values
// always go in as text (textContent), never as HTML: query text and application names come from
// the clients.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// Advice text quotes SQL in `backticks`: show those parts as code.
export function setRich(node, text) {
  if (node.dataset.text === text) return;
  node.dataset.text = text;
  node.replaceChildren(...text.split(/`([^`]*)`/).map((part, i) => (i % 2 ? el("code", { text: part }) : part)));
}

// Keywords in their own colour, $n placeholders in another, and line breaks before the main
// clauses of a long statement (outside parentheses), so a normalized query reads like code.
const KEYWORDS = new Set(
  ("select from where and or not in is null as on join left right inner outer full cross group by order " +
    "having limit offset insert into values update set delete returning with union all distinct case when " +
    "then else end exists between like ilike any asc desc for share nowait skip locked begin commit " +
    "rollback create table index drop alter copy true false lateral using").split(" "),
);
const BREAK_BEFORE = new Set(["from", "where", "group", "order", "having", "limit", "offset", "values", "set", "returning", "union", "join", "left", "right", "inner", "full", "cross"]);

export function highlightSql(text) {
  const long = text.length > 70;
  const out = [];
  let depth = 0;
  let prevWord = "";
  const tokens = text.match(/'(?:[^']|'')*'?|"(?:[^"]|"")*"?|\$\d+|[A-Za-z_][A-Za-z0-9_$]*|\s+|./gs) || [];
  for (const tok of tokens) {
    const lower = tok.toLowerCase();
    if (tok === "(") depth += 1;
    else if (tok === ")") depth = Math.max(0, depth - 1);
    if (/^\s+$/.test(tok)) {
      out.push(tok);
      continue;
    }
    if (/^\$\d+$/.test(tok)) {
      out.push(el("span", { class: "param", text: tok }));
    } else if (/^[A-Za-z_]/.test(tok) && KEYWORDS.has(lower)) {
      const joinAfterModifier = lower === "join" && ["left", "right", "inner", "full", "cross", "outer"].includes(prevWord);
      if (long && depth === 0 && BREAK_BEFORE.has(lower) && !joinAfterModifier && out.length > 0) {
        if (typeof out[out.length - 1] === "string" && /^\s+$/.test(out[out.length - 1])) out.pop();
        out.push("\n");
      }
      out.push(el("span", { class: "kw", text: tok }));
    } else {
      out.push(tok);
    }
    prevWord = lower;
  }
  return out;
}

const intFormat = new Intl.NumberFormat("en-US");

export function fmtNumber(n) {
  return Number.isInteger(n) ? intFormat.format(n) : String(Math.round(n * 1000) / 1000);
}

export function fmtMs(v) {
  if (v == null || Number.isNaN(v)) return "–";
  if (v < 1) return v.toFixed(3);
  if (v < 100) return v.toFixed(2);
  return intFormat.format(Math.round(v));
}

const secondsFormat = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

// One unit style for durations everywhere on the page: milliseconds below a second ("0.412 ms",
// "3.25 ms", "120 ms"), seconds with one decimal from there on ("14.2 s", "1,250.0 s"), as
// pgvisor's own advice titles write them.
export function fmtDuration(ms) {
  if (ms == null || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${fmtMs(ms)} ms`;
  return `${secondsFormat.format(ms / 1000)} s`;
}

export function ago(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (!Number.isFinite(s)) return iso;
  if (s < 2) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}
