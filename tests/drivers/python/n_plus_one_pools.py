"""Pool workloads for tests/tests/n_plus_one_pools.rs through asyncpg, run through pgvisor so the
test can judge the n_plus_one advice it gives.

Usage: python n_plus_one_pools.py SCENARIO --host H --port P --user U --dbname D --schema S
(password from PGPASSWORD). Every connection has `search_path` set to S in its startup packet; S
holds `users` (ids 1..=20) and `orders` (3 per user). Prints one JSON object with what asyncpg got.

Scenarios:
  parallel  the users, then one orders query per user, all at once over a pool
            (`asyncio.gather` over `pool.fetch`): a parallel N+1.
  unlinked  one connection runs 30 lookups with ids from a hard-coded list, then another
            statement: a loop whose parameters came from no result.

The pool stays open (idle) for LINGER_S after the work, as a server's pool does between requests:
pgvisor judges a burst once it has ended while its sessions live on.
"""

import argparse
import asyncio
import json
import os

import asyncpg

LINGER_S = 1.5
PARENT = "SELECT id FROM users ORDER BY id"
CHILD = "SELECT * FROM orders WHERE user_id = $1"


def connect_args(a):
    return dict(
        host=a.host,
        port=int(a.port),
        user=a.user,
        database=a.dbname,
        password=os.environ.get("PGPASSWORD"),
        server_settings={"search_path": a.schema},
    )


async def parallel(a):
    pool = await asyncpg.create_pool(min_size=4, max_size=8, **connect_args(a))
    ids = [r["id"] for r in await pool.fetch(PARENT)]
    orders = await asyncio.gather(*(pool.fetch(CHILD, i) for i in ids))
    await asyncio.sleep(LINGER_S)
    await pool.close()
    return {"users": len(ids), "orders": sum(len(o) for o in orders)}


async def unlinked(a):
    conn = await asyncpg.connect(**connect_args(a))
    # Ids from the application itself (a request body, a cache), not from an earlier result.
    ids = [3, 17, 5, 11, 2, 19, 8, 14, 1, 20, 6, 9, 12, 4, 16, 7, 18, 10, 13, 15]
    rows = 0
    for i in range(30):
        rows += len(await conn.fetch("SELECT * FROM orders WHERE id = $1", ids[i % 20] + 20 * (i // 20)))
    await conn.fetchval("SELECT count(*) FROM users")
    await asyncio.sleep(LINGER_S)
    await conn.close()
    return {"lookups": 30, "rows": rows}


SCENARIOS = {"parallel": parallel, "unlinked": unlinked}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    for name in ("host", "port", "user", "dbname", "schema"):
        p.add_argument(f"--{name}", required=True)
    a = p.parse_args()
    print(json.dumps(asyncio.run(SCENARIOS[a.scenario](a))))


if __name__ == "__main__":
    main()
