-- ORM-like read for bench/pgbench.sh: one query returning 50 rows of 10 columns (about 10 kB),
-- as a page of model objects would; exercises DataRow traffic rather than round trips.
-- Needs :scale, which pgbench sets from -s for custom scripts (bench/pgbench.sh passes it).
\set aid random(1, 100000 * :scale - 49)
SELECT aid, bid, abalance, filler, aid + 1 AS a1, aid + 2 AS a2, bid * 2 AS b2, abalance * 2 AS ab2, md5(filler) AS h, now() AS t FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 49;
