// Which statements are setup rather than the application's work: DDL and maintenance that a
// migration, a fixture or a test run once (and that, being slow, would top the queries table).
//
// The rule reads the statement's first keyword (after comments and opening parentheses):
// CREATE, ALTER, DROP, TRUNCATE, COMMENT, GRANT, REVOKE, SECURITY LABEL, COPY, ANALYZE, VACUUM,
// REINDEX, CLUSTER, REFRESH, CHECKPOINT, LOAD and DO are setup; so is an INSERT whose rows come from
// a query (INSERT INTO t [(columns)] SELECT/WITH/TABLE ..., a bulk fill such as
// `INSERT ... SELECT ... FROM generate_series(...)`), but not one with VALUES.

const SETUP_KEYWORDS = new Set([
  "create", "alter", "drop", "truncate", "comment", "grant", "revoke", "security", "copy", "analyze",
  "analyse", "vacuum", "reindex", "cluster", "refresh", "checkpoint", "load", "do",
]);

const LEADING = /^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/|\()+/;
const BULK_INSERT = /^insert\s+into\s+(?:"[^"]*"|[^\s(])+(?:\s*\([^)]*\))?\s*(?:overriding\s+\w+\s+value\s+)?(?:select|with|table|\(\s*(?:select|with))\b/i;

/** True when `sql` is DDL or maintenance by the rule above. */
export function isSetupStatement(sql) {
  const text = (sql || "").replace(LEADING, "");
  const first = (text.match(/^[A-Za-z]+/) || [""])[0].toLowerCase();
  if (SETUP_KEYWORDS.has(first)) return true;
  return first === "insert" && BULK_INSERT.test(text);
}
