// The shop's tests, on node's built-in runner. beforeEach names the running test in every
// statement (a sqlcommenter `test` tag), so `pgvisor check` reports per test.

import assert from "node:assert/strict";
import path from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { fileURLToPath } from "node:url";

import { end, setTags } from "../src/db.js";
import * as shop from "../src/shop.js";

const file = path.relative(process.cwd(), fileURLToPath(import.meta.url));

before(() => shop.createSchema());
beforeEach(async (t) => {
  setTags({ test: `${file} > ${t.fullName}` });
  await shop.seed();
});
after(() => end());

test("lists users with their orders", async () => {
  const users = await shop.usersWithOrders();
  assert.equal(users.length, 10);
  assert.deepEqual(users[0], { name: "user 1", orders: [100, 101, 102] });
});

test("places an order", async () => {
  await shop.placeOrder(4, 999);
  assert.equal(await shop.orderCount(4), 4);
});
