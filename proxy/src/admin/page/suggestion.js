// A suggestion's SQL apart from its prose: the statements it gives (`CREATE INDEX ...`,
// `SELECT ... = ANY($1)`) go in a code block with a Copy button, the words around them stay text.
//
// pgvisor writes suggestions as prose, so the SQL is found here:
// - text in `backticks` that starts with a statement keyword (SELECT, CREATE, SET...);
// - outside backticks, a SELECT ... FROM, CREATE [UNIQUE] INDEX ... ON, INSERT INTO, UPDATE ... SET
//   or DELETE FROM, up to the first `;` (kept), the end of the sentence, or where the prose picks up again
//   (", with the first query's...", " with an array of...").
// A statement with "..." in it is an outline, not something to run: it stays in the prose.

import { el, highlightSql } from "./format.js";

const QUOTED_SQL = /^(select|insert|update|delete|create|alter|drop|set|reset|analyze|vacuum|reindex|explain|truncate|refresh)\s/i;
const STATEMENT_START = /\b(select\s|create\s+(?:unique\s+)?index\s|insert\s+into\s|update\s|delete\s+from\s)/gi;
const STATEMENT_BODY = { select: /\sfrom\s/i, create: /\son\s/i, insert: /./, update: /^update\s+\S+\s+set\s/i, delete: /./ };
// Where the prose picks up again after a statement, at parenthesis depth 0.
const PROSE_AGAIN = /^(\.(\s|$)|\n|,\s+(with|and|or|then|so|but|which|instead|for|to|if)\s|\s+with\s+(an?|the|all)\s|\s+instead\s)/i;

/** `text` as segments: `{ prose }` and `{ sql }`, in order. */
export function splitSuggestion(text) {
  const out = [];
  const prose = (t) => {
    if (!t) return;
    const last = out[out.length - 1];
    if (last && "prose" in last) last.prose += t;
    else out.push({ prose: t });
  };
  text.split(/(`[^`]*`)/).forEach((part) => {
    const quoted = part.length > 1 && part.startsWith("`") && part.endsWith("`") ? part.slice(1, -1) : null;
    if (quoted !== null) {
      if (QUOTED_SQL.test(quoted) && !isOutline(quoted)) out.push({ sql: quoted.trim() });
      else prose(part);
      return;
    }
    let at = 0;
    for (const m of part.matchAll(STATEMENT_START)) {
      if (m.index < at) continue;
      const end = statementEnd(part, m.index);
      const sql = part.slice(m.index, end).trim();
      const body = STATEMENT_BODY[m[1].trim().split(/\s/)[0].toLowerCase()];
      if (isOutline(sql) || !body.test(sql)) continue;
      prose(part.slice(at, m.index));
      out.push({ sql });
      at = end;
    }
    prose(part.slice(at));
  });
  return out.map((s) => ("prose" in s ? { prose: s.prose.replace(/^[ \t]+|[ \t]+$/g, "") } : s)).filter((s) => s.sql || s.prose);
}

function isOutline(sql) {
  return sql.includes("...") || sql.includes("…");
}

function statementEnd(text, from) {
  let depth = 0;
  let quote = "";
  for (let i = from; i < text.length; i += 1) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = "";
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === "(") depth += 1;
    else if (c === ")") depth = Math.max(0, depth - 1);
    else if (c === "." && (text[i - 1] === "." || text[i + 1] === ".")) continue; // an ellipsis
    else if (depth === 0 && c === ";") return i + 1;
    else if (depth === 0 && PROSE_AGAIN.test(text.slice(i, i + 24))) return i;
  }
  return text.length;
}

/** Fills `node` with the suggestion: paragraphs of prose (`quoted` parts as code) and SQL blocks. */
export function renderSuggestion(node, text) {
  if (node.dataset.text === text) return;
  node.dataset.text = text;
  node.replaceChildren(
    ...splitSuggestion(text).map((s) => (s.sql ? sqlBlock(s.sql) : el("p", {}, ...richParts(s.prose)))),
  );
}

function richParts(text) {
  return text.split(/`([^`]*)`/).map((part, i) => (i % 2 ? el("code", { text: part }) : part));
}

function sqlBlock(sql) {
  const pre = el("pre", { class: "sql" }, ...highlightSql(sql));
  const button = el("button", { type: "button", class: "copy", title: "Copy this SQL to the clipboard" }, "Copy");
  button.addEventListener("click", () => copy(button, sql, pre));
  return el("div", { class: "sql-block", "data-sql": sql }, pre, button);
}

// The Clipboard API needs a secure context: http://localhost and 127.0.0.1 are, a remote admin
// address over plain HTTP is not. There the SQL is selected, for Ctrl+C.
async function copy(button, sql, pre) {
  try {
    await navigator.clipboard.writeText(sql);
    say(button, "Copied");
  } catch {
    const range = document.createRange();
    range.selectNodeContents(pre);
    const selection = getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    say(button, "Selected: press Ctrl+C");
  }
}

function say(button, text) {
  button.textContent = text;
  clearTimeout(button.resetTimer);
  button.resetTimer = setTimeout(() => { button.textContent = "Copy"; }, 2000);
}
