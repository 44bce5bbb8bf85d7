// A node-postgres (`pg`) workload for tests/tests/drivers_node_pg.rs: run once directly against
// PostgreSQL and once through pgvisor, the two outputs must be identical byte for byte.
//
// node-postgres sends a query without parameters as a simple Query, and one with parameters (or a
// name) as Parse/Bind/Describe/Execute/Sync, with the unnamed statement unless it is named (then
// parsed once per connection and re-used). Results come back in text format and are parsed by
// pg-types.
//
// Usage: node workload.mjs --host H --port P --user U --dbname D (password from PGPASSWORD; no TLS,
// node-postgres' default). The database must be empty: the workload creates its own tables.
// Prints one canonical JSON object: every result in order, nothing that legitimately differs
// between two sessions (backend pids, times of day).

import crypto from "node:crypto";
import { createRequire } from "node:module";

import pg from "pg";

const require = createRequire(import.meta.url);
const PG_VERSION = require("pg/package.json").version;

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, "")] = argv[i + 1];
  }
  for (const need of ["host", "port", "user", "dbname"]) {
    if (!out[need]) throw new Error(`missing --${need}`);
  }
  return out;
}

// A JSON-able, type-tagged form of what pg returned.
function canon(value) {
  if (value === null || value === undefined) return null;
  if (typeof value === "bigint") return { bigint: value.toString() };
  if (typeof value === "number") return Number.isInteger(value) ? value : { float: String(value) };
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (Buffer.isBuffer(value)) return { bytes: value.toString("hex") };
  if (value instanceof Date) return { date: Number.isNaN(value.getTime()) ? "invalid" : value.toISOString() };
  if (Array.isArray(value)) return value.map(canon);
  if (typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value).sort()) out[key] = canon(value[key]);
    return { object: out };
  }
  return { [typeof value]: String(value) };
}

// What a user sees of a query result (a multi-statement Query gives one per statement).
function result(r) {
  if (Array.isArray(r)) return r.map(result);
  return {
    command: r.command,
    rowCount: r.rowCount,
    fields: r.fields.map((f) => [f.name, f.dataTypeID, f.format]),
    rows: canon(r.rows),
  };
}

// What a user sees of a server error: every field node-postgres exposes.
function error(e) {
  const fields = {};
  for (const key of ["name", "message", "severity", "code", "detail", "hint", "position", "internalPosition",
    "internalQuery", "where", "schema", "table", "column", "dataType", "constraint", "routine"]) {
    if (e[key] !== undefined) fields[key] = e[key];
  }
  return { error: fields };
}

const RESULTS = [];
const record = (step, value) => RESULTS.push([step, value]);

async function expectError(step, promise) {
  try {
    const r = await promise;
    record(step, { unexpected_success: result(r) });
  } catch (e) {
    record(step, error(e));
  }
}

function connectionConfig(a) {
  return {
    host: a.host,
    port: Number(a.port),
    user: a.user,
    database: a.dbname,
    password: process.env.PGPASSWORD,
    ssl: false,
    connectionTimeoutMillis: 10000,
  };
}

async function workload(client, a) {
  const version = await client.query("select current_setting('server_version_num')::int / 10000 as major");
  record("server_major", version.rows[0].major);

  // A multi-statement simple Query.
  record("setup", result(await client.query(`
    create table users (id serial primary key, name text not null unique, born date, score numeric(6,2),
                        tags text[], profile jsonb, avatar bytea);
    create table fails_unique (id int primary key);
    insert into fails_unique values (1);
  `)));

  // Parameterized queries (the unnamed statement, text format), types pg-types parses.
  for (const [i, name] of ["ada", "brian", "chloé", "dmitri ✓"].entries()) {
    await client.query(
      "insert into users (name, born, score, tags, profile, avatar) values ($1, $2, $3, $4, $5, $6)",
      [name, `19${50 + i}-0${i + 1}-1${i}`, 10.5 * i, [name.slice(0, 2), "x,y", null], { i, name }, Buffer.from([i, 255])]);
  }
  record("parameterized", result(await client.query(
    "select id, name, born::text, score, tags, profile, avatar, score * 2 as double from users where id > $1 order by id",
    [1])));
  record("types", result(await client.query(
    `select 1::int2 as i2, 2147483647::int4 as i4, 9007199254740993::int8 as i8, 1.5::float4 as f4, 0.1::float8 as f8,
            '12345678901234567890.5'::numeric as num, true as b, null::text as n, 'é'::char(3) as c,
            '2024-02-29 12:34:56.789+02'::timestamptz as tz, '2024-02-29 12:34:56'::timestamp as ts,
            '1 day 02:03:04'::interval as iv, '{1,2,NULL}'::int[] as arr, '{"a":1}'::json as js,
            '\\xdeadbeef'::bytea as by, '(1,2)'::point as pt, $1::text as p1, $2::int as p2`,
    ["param", 42])));
  record("row_mode_array", result(await client.query({ text: "select $1::int as a, $2::text as b", values: [7, "seven"], rowMode: "array" })));

  // Named prepared statements: parsed once on this connection, then Bind/Execute only.
  const named = { name: "user_by_name", text: "select id, name, score from users where name = $1" };
  const byName = [];
  for (const name of ["ada", "chloé", "nobody", "ada"]) {
    byName.push(result(await client.query({ ...named, values: [name] })));
  }
  record("named_prepared", byName);
  const counter = { name: "count_above", text: "select count(*)::int from users where score > $1" };
  record("named_prepared_2", [
    result(await client.query({ ...counter, values: [0] })),
    result(await client.query({ ...counter, values: [15] })),
  ]);

  // A transaction committed, one rolled back, a savepoint.
  await client.query("begin");
  await client.query("update users set score = score + 1 where name = $1", ["ada"]);
  await client.query("savepoint s1");
  await expectError("savepoint_unique_violation", client.query("insert into fails_unique values ($1)", [1]));
  await client.query("rollback to savepoint s1");
  await client.query("update users set score = score + 1 where name = $1", ["brian"]);
  await client.query("commit");
  await client.query("begin");
  await client.query("delete from users");
  await client.query("rollback");
  record("after_transactions", result(await client.query("select name, score from users order by id")));

  // A failed transaction: 25P02 until rollback.
  await client.query("begin");
  await expectError("division_by_zero", client.query("select 1 / (count(*) - count(*)) from users"));
  await expectError("in_failed_transaction", client.query("select fails_25p02 from (select 1 as fails_25p02) s"));
  await client.query("rollback");

  // Errors, simple and extended, with their fields.
  await expectError("undefined_table", client.query("select * from fails_missing_table"));
  await expectError("syntax_error", client.query("selec fails_syntax"));
  await expectError("unique_violation_extended", client.query("insert into fails_unique values ($1)", [1]));
  await expectError("not_null", client.query("insert into users (name) values ($1)", [null]));
  await expectError("bad_parameter", client.query("select fails_param from (select $1::int as fails_param) s", ["not a number"]));
  await expectError("named_statement_error", client.query({ name: "fails_named", text: "select 1 / fails_named from (select $1::int as fails_named) s", values: [0] }));
  await expectError("raise", client.query(
    "do $$ begin raise exception using errcode = 'P0099', message = 'custom', detail = 'd', hint = 'h'; end $$"));
  record("still_usable", result(await client.query("select count(*)::int as n from users")));

  // Notices.
  const notices = [];
  client.on("notice", (n) => notices.push([n.severity, n.code, n.message]));
  await client.query("do $$ begin raise notice 'hello %', 42; raise warning 'careful'; end $$");
  record("notices", notices);

  // LISTEN/NOTIFY: a second client notifies, this one listens; payloads in order, and the
  // notifier's own transaction delivers only on commit.
  const notifier = new pg.Client(connectionConfig(a));
  await notifier.connect();
  const received = [];
  let wake = null;
  client.on("notification", (n) => {
    received.push([n.channel, n.payload]);
    if (wake) wake();
  });
  await client.query("listen drv_channel");
  await notifier.query("notify drv_channel, 'one'");
  await notifier.query("select pg_notify('drv_channel', $1)", ["two"]);
  await notifier.query("begin");
  await notifier.query("notify drv_channel, 'three (committed)'");
  await notifier.query("commit");
  await notifier.query("begin");
  await notifier.query("notify drv_channel, 'never (rolled back)'");
  await notifier.query("rollback");
  await notifier.query("notify drv_channel, 'four'");
  const deadline = Date.now() + 10000;
  while (received.length < 4 && Date.now() < deadline) {
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 100);
    });
  }
  // Anything wrongly delivered after 'four' would show here.
  await client.query("select 1 as settle");
  record("notifications", received);
  await client.query("unlisten drv_channel");
  await notifier.end();

  // A large result: 50 000 rows, parameterized (extended protocol), and as a simple Query.
  const big = await client.query("select g, md5(g::text) as h, repeat('z', g % 100) as pad from generate_series(1, $1::int) g", [50000]);
  const digest = crypto.createHash("sha256").update(JSON.stringify(big.rows)).digest("hex");
  record("large_result", [big.rowCount, big.rows.length, digest]);
  const bigSimple = await client.query("select g from generate_series(1, 50000) g where g % 2 = 0");
  record("large_result_simple", [bigSimple.rowCount, bigSimple.rows.at(-1).g]);

  // A statement timeout on the server.
  await client.query("set statement_timeout = '100ms'");
  await expectError("statement_timeout", client.query("select pg_sleep(5)"));
  await client.query("reset statement_timeout");

  record("done", true);
}

async function main() {
  const a = args();
  const client = new pg.Client(connectionConfig(a));
  await client.connect();
  try {
    await workload(client, a);
  } finally {
    await client.end();
  }
  process.stdout.write(JSON.stringify({ pg: PG_VERSION, results: RESULTS }) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
