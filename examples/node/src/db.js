// The shop's database handle: one node-postgres pool configured from the environment
// (DATABASE_URL, else libpq's PGHOST, PGPORT, PGUSER...), and a query function that tags each
// statement with a sqlcommenter comment naming the caller (here: the running test).

import pg from "pg";

// application_name: statements without a test tag (the schema set-up) count under it.
const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL || undefined,
  application_name: "example-shop",
});

let tags = {};

/** Tags every statement from now on, e.g. `{ test: "shop > lists users" }`; `{}` clears them. */
export function setTags(next) {
  tags = next;
}

/** sqlcommenter: key='value' pairs, URL-encoded (encodeURIComponent leaves ' alone: encode it too). */
function comment() {
  const pairs = Object.entries(tags)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}='${encodeURIComponent(v).replaceAll("'", "%27")}'`);
  return pairs.length ? ` /*${pairs.join(",")}*/` : "";
}

export function query(text, values) {
  return pool.query(text + comment(), values);
}

export function end() {
  return pool.end();
}
