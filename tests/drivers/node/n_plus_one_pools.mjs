// Pool workloads for tests/tests/n_plus_one_pools.rs: what an application does through a
// node-postgres `Pool` (and Sequelize, which pools node-postgres clients), run through pgvisor so
// the test can judge the n_plus_one advice it gives.
//
// Usage: node n_plus_one_pools.mjs SCENARIO --host H --port P --user U --dbname D --schema S
// (password from PGPASSWORD). Every connection starts with `search_path` set to S in its startup
// packet, so no extra statement shows up; S holds `users` (ids 1..=20) and `orders` (3 per user).
// Prints one JSON object with what the driver got back.
//
// Scenarios:
//   parallel      on a pool whose 8 connections are open (a server after its first requests):
//                 the users, then one orders query per user, all at once over the pool
//                 (`Promise.all`): a parallel N+1.
//   parallel_cold the same on a fresh pool, which opens its connections while the children
//                 queue, so the parent's connection runs many of them.
//   sequelize     the same (warm pool) through Sequelize's lazy loading (`user.getOrders()` in
//                 `Promise.all`).
//   two_requests  two requests at once, each reading its own 4 users and then their orders over
//                 the pool: two small loops, each under the threshold, interleaved.
//   independent   20 API requests spread over 2 s, each looking up one user by id and keeping its
//                 connection while it does other work: no parent, no loop.
//   unlinked      one connection runs 30 lookups with ids from a hard-coded list, then another
//                 statement: a loop whose parameters came from no result.
//
// The pool stays open (idle) for LINGER_MS after the work, as a server's pool does between
// requests: pgvisor judges a burst once it has ended while its sessions live on.

import pg from "pg";

const LINGER_MS = 1500;
const PARENT = "SELECT id FROM users ORDER BY id";
const CHILD = "SELECT * FROM orders WHERE user_id = $1";
const LOOKUP = "SELECT * FROM users WHERE id = $1";

function args() {
  const argv = process.argv.slice(2);
  const out = { scenario: argv[0] };
  for (let i = 1; i < argv.length; i += 2) {
    out[argv[i].replace(/^--/, "")] = argv[i + 1];
  }
  for (const need of ["scenario", "host", "port", "user", "dbname", "schema"]) {
    if (!out[need]) throw new Error(`missing ${need}`);
  }
  return out;
}

function poolConfig(a, max) {
  return {
    host: a.host,
    port: Number(a.port),
    user: a.user,
    database: a.dbname,
    password: process.env.PGPASSWORD,
    options: `-c search_path=${a.schema}`,
    max,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A deterministic pseudo-random sequence (mulberry32), so a failure can be replayed.
function random(seed) {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r);
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

// Children per connection: pg-pool hands each query the client it acquires.
function countAcquires(pool) {
  const counts = new Map();
  pool.on("acquire", (client) => counts.set(client, (counts.get(client) ?? 0) + 1));
  return counts;
}

async function parallel(a, { warm }) {
  const pool = new pg.Pool(poolConfig(a, 8));
  if (warm) {
    // A server's pool after its first requests: all 8 connections open and idle.
    await Promise.all(Array.from({ length: 8 }, () => pool.query("SELECT 1 AS warm")));
  }
  let parentConnection;
  pool.once("acquire", (client) => (parentConnection = client));
  const users = (await pool.query(PARENT)).rows;
  const acquired = countAcquires(pool);
  const orders = await Promise.all(users.map((u) => pool.query(CHILD, [u.id])));
  await sleep(LINGER_MS);
  await pool.end();
  return {
    users: users.length,
    orders: orders.reduce((n, r) => n + r.rowCount, 0),
    childrenPerConnection: [...acquired.values()].sort((x, y) => y - x),
    childrenOnParentConnection: acquired.get(parentConnection) ?? 0,
  };
}

async function sequelize(a) {
  const { Sequelize, DataTypes } = await import("sequelize");
  const db = new Sequelize(a.dbname, a.user, process.env.PGPASSWORD, {
    host: a.host,
    port: Number(a.port),
    dialect: "postgres",
    dialectOptions: { options: `-c search_path=${a.schema}` },
    pool: { max: 8, min: 0 },
    logging: false,
  });
  const User = db.define("User", { name: DataTypes.TEXT }, { tableName: "users", timestamps: false });
  const Order = db.define("Order", { total: DataTypes.DECIMAL }, { tableName: "orders", timestamps: false });
  User.hasMany(Order, { foreignKey: "user_id" });
  // A server's pool after its first requests: all 8 connections open and idle.
  await Promise.all(Array.from({ length: 8 }, () => db.query("SELECT 1 AS warm")));
  const users = await User.findAll({ attributes: ["id"], order: [["id", "ASC"]] });
  // Lazy loading, one getter per user, awaited together.
  const orders = await Promise.all(users.map((u) => u.getOrders()));
  await sleep(LINGER_MS);
  await db.close();
  return { users: users.length, orders: orders.reduce((n, o) => n + o.length, 0) };
}

async function twoRequests(a) {
  const pool = new pg.Pool(poolConfig(a, 8));
  const request = async (from, to) => {
    const users = (await pool.query("SELECT id FROM users WHERE id BETWEEN $1 AND $2 ORDER BY id", [from, to])).rows;
    const orders = await Promise.all(users.map((u) => pool.query(CHILD, [u.id])));
    return { users: users.length, orders: orders.reduce((n, r) => n + r.rowCount, 0) };
  };
  const requests = await Promise.all([request(1, 4), request(11, 14)]);
  await sleep(LINGER_MS);
  await pool.end();
  return { requests };
}

async function independent(a) {
  const pool = new pg.Pool(poolConfig(a, 8));
  const next = random(42);
  // Arrivals at random moments over 2 s; each request holds its connection for 700 to 1000 ms
  // (a handler that checks out a client per request and calls another service before it
  // answers), so the pool spreads the requests over several connections.
  const request = async (at, id) => {
    await sleep(at);
    const client = await pool.connect();
    try {
      const r = await client.query(LOOKUP, [id]);
      await sleep(700 + next() * 300);
      return { pid: client.processID, rows: r.rowCount };
    } finally {
      client.release();
    }
  };
  const ids = Array.from({ length: 20 }, (_, i) => (i * 7) % 20 + 1);
  const done = await Promise.all(ids.map((id) => request(next() * 2000, id)));
  await sleep(LINGER_MS);
  await pool.end();
  const perConnection = {};
  for (const d of done) perConnection[d.pid] = (perConnection[d.pid] ?? 0) + 1;
  return { lookups: done.length, rows: done.reduce((n, d) => n + d.rows, 0), perConnection: Object.values(perConnection) };
}

async function unlinked(a) {
  const client = new pg.Client(poolConfig(a, 1));
  await client.connect();
  // Ids from the application itself (a request body, a cache), not from an earlier result.
  const ids = [3, 17, 5, 11, 2, 19, 8, 14, 1, 20, 6, 9, 12, 4, 16, 7, 18, 10, 13, 15];
  let rows = 0;
  for (let i = 0; i < 30; i++) {
    rows += (await client.query("SELECT * FROM orders WHERE id = $1", [ids[i % 20] + 20 * Math.floor(i / 20)])).rowCount;
  }
  await client.query("SELECT count(*) FROM users");
  await sleep(LINGER_MS);
  await client.end();
  return { lookups: 30, rows };
}

const SCENARIOS = {
  parallel: (a) => parallel(a, { warm: true }),
  parallel_cold: (a) => parallel(a, { warm: false }),
  sequelize,
  two_requests: twoRequests,
  independent,
  unlinked,
};

const a = args();
const run = SCENARIOS[a.scenario];
if (!run) throw new Error(`unknown scenario ${a.scenario}`);
process.stdout.write(JSON.stringify(await run(a)) + "\n");
