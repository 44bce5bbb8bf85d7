// A tiny shop: users and their orders. EXAMPLE_N_PLUS_ONE=1 stands for a change that loads the
// orders one user at a time (an N+1) instead of in one query for all users.

import { query } from "./db.js";

export async function createSchema() {
  await query("DROP TABLE IF EXISTS orders, users");
  await query("CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL)");
  await query(
    "CREATE TABLE orders (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users, total_cents int NOT NULL)",
  );
  await query("CREATE INDEX ON orders (user_id)");
}

export async function seed(users = 10, ordersPerUser = 3) {
  await query("TRUNCATE users, orders RESTART IDENTITY");
  await query("INSERT INTO users (name) SELECT 'user ' || n FROM generate_series(1, $1) n", [users]);
  await query(
    "INSERT INTO orders (user_id, total_cents) SELECT u, 100 * u + o FROM generate_series(1, $1) u, generate_series(0, $2 - 1) o",
    [users, ordersPerUser],
  );
}

export async function usersWithOrders() {
  const { rows: users } = await query("SELECT id, name FROM users ORDER BY id");
  if (process.env.EXAMPLE_N_PLUS_ONE && process.env.EXAMPLE_N_PLUS_ONE !== "0") {
    for (const user of users) {
      const { rows } = await query("SELECT total_cents FROM orders WHERE user_id = $1 ORDER BY id", [user.id]);
      user.orders = rows.map((r) => r.total_cents);
    }
  } else {
    const { rows } = await query(
      "SELECT user_id, total_cents FROM orders WHERE user_id = ANY($1) ORDER BY id",
      [users.map((u) => u.id)],
    );
    for (const user of users) {
      user.orders = rows.filter((r) => r.user_id === user.id).map((r) => r.total_cents);
    }
  }
  return users.map((u) => ({ name: u.name, orders: u.orders }));
}

export async function placeOrder(userId, totalCents) {
  const { rows } = await query("INSERT INTO orders (user_id, total_cents) VALUES ($1, $2) RETURNING id", [
    userId,
    totalCents,
  ]);
  return rows[0].id;
}

export async function orderCount(userId) {
  const { rows } = await query("SELECT count(*)::int AS n FROM orders WHERE user_id = $1", [userId]);
  return rows[0].n;
}
