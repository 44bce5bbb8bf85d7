#!/usr/bin/env python3
"""Generate queries.jsonl: a SQL fingerprinting corpus for the pgvisor advisor.

Each line of queries.jsonl is {"group", "source", "sql"}.  Entries with the
same group must share a fingerprint; entries in different groups must not.
No SQL text appears twice.  Every statement parses with PostgreSQL's own
grammar (checked through pglast / libpg_query).

The grouping is pg_query's fingerprint (libpg_query), the reference: the
partition into groups was checked against pglast 8.8 (libpg_query, PG 18
grammar) and pglast 7.22 (PG 17 grammar) and is identical under both.

Group ids starting with "pgq-" hold queries that pg_query fingerprints
together although a purely token-based normalisation (constants and $n ->
placeholder, constant lists collapsed, identifiers/keywords/operators kept,
TRUE/FALSE/NULL kept as keywords) would keep them apart.  Every other group
is expected to agree under both models.  The pgq- equivalences are:
  * END == COMMIT
  * savepoint, cursor (DECLARE/FETCH/CLOSE), DEALLOCATE names are ignored
  * LISTEN/UNLISTEN/NOTIFY channel names are ignored
  * select-list aliases (`expr AS name`) are ignored
  * a cast of a constant or parameter is dropped: $1::VARCHAR == 'x',
    INTERVAL '1 day' == $1::interval, DATE '...' == TIMESTAMP '...'
  * an OFFSET whose value is a constant/parameter is invisible, so
    LIMIT 10 OFFSET 20 == LIMIT 10
  * TRUE, FALSE and NULL are constants like any other
  * x = $1 == x IN (1, 2, 3) == x = ANY($1) == x = ANY('{1,2}')
  * AND/OR operands are sorted (and de-duplicated)
  * SET values are constants even as bare words; SET x = v == SET x TO v
  * runs of 2+ digits in relation names are ignored (events_2024_01)

Kept out entirely because the PG 17 and PG 18 builds of pg_query disagree:
schema-qualified vs unqualified names (PG 18 ignores the schema), table
alias names (PG 17 ignores them), NOTIFY payloads (PG 17 keeps them),
BEGIN vs BEGIN ISOLATION LEVEL ... (PG 17 ignores the options).

Usage:
  python3 make_corpus.py                 # write queries.jsonl
  PY check                               # verify groups with PY's pglast
  PY fingerprints KEY                    # set KEY in pg_query_fingerprints.jsonl
where PY is a python with pglast installed, e.g.
  python3 -m venv /tmp/pglast-venv && /tmp/pglast-venv/bin/pip install pglast
  /tmp/pglast-venv/bin/python make_corpus.py check
  /tmp/pglast-venv/bin/python make_corpus.py fingerprints pg_query
  (and with pglast==7.* for the key pg_query_pg17)
"""
import json
import os
import sys

ENTRIES = []


def g(group, source, *sqls):
    for s in sqls:
        ENTRIES.append({"group": group, "source": source, "sql": s})


# ---------------------------------------------------------------- pgbench
# Built-in "tpcb-like" script (-M simple inlines values, -M extended/prepared
# sends $n) and the "select-only" (-S) script.
g("txn-begin", "pgbench",
  "BEGIN;",
  "begin;",
  "BEGIN")
g("pgbench-update-accounts", "pgbench",
  "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
  "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 99;",
  "UPDATE pgbench_accounts SET abalance = abalance + 2754 WHERE aid = 7321904;")
g("pgbench-select-abalance", "pgbench",
  "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
  "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
  "SELECT abalance FROM pgbench_accounts WHERE aid = 99;",
  "select abalance from pgbench_accounts where aid = 4096")
g("pgbench-update-tellers", "pgbench",
  "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
  "UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 7;",
  "UPDATE pgbench_tellers SET tbalance = tbalance + 310 WHERE tid = 1;")
g("pgbench-update-branches", "pgbench",
  "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
  "UPDATE pgbench_branches SET bbalance = bbalance + -4321 WHERE bid = 1;",
  "UPDATE pgbench_branches SET bbalance = bbalance + 4999 WHERE bid = 3;")
g("pgbench-insert-history", "pgbench",
  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 99, -4321, CURRENT_TIMESTAMP);",
  "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 55012, 17, CURRENT_TIMESTAMP);")
# pg_query parses END as COMMIT (TransactionStmt kind COMMIT): same fingerprint.
g("pgq-txn-commit", "pgbench",
  "END;")
g("pgbench-count-branches", "pgbench",
  "select count(*) from pgbench_branches")
g("pgbench-init-create-history", "pgbench",
  "create table pgbench_history(tid int,bid int,aid    int,delta int,mtime timestamp,filler char(22))",
  "create table pgbench_history(tid int,bid int,aid int,delta int,mtime timestamp,filler char(42))")
g("pgbench-init-truncate", "pgbench",
  "truncate table pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers")
g("pgbench-init-insert-branches", "pgbench",
  "insert into pgbench_branches(bid,bbalance) values(1,0)",
  "insert into pgbench_branches(bid,bbalance) values(2,0)")
g("pgbench-init-insert-accounts-generate", "pgbench",
  "insert into pgbench_accounts(aid,bid,abalance,filler) select aid, (aid - 1) / 100000 + 1, 0, '' from generate_series(1, 100000) as aid",
  "insert into pgbench_accounts(aid,bid,abalance,filler) select aid, (aid - 1) / 100000 + 1, 0, '' from generate_series(1, 5000000) as aid")
g("pgbench-init-copy-accounts", "pgbench",
  "copy pgbench_accounts from stdin with (freeze on)")
g("pgbench-init-pkey-branches", "pgbench",
  "alter table pgbench_branches add primary key (bid)")
g("pgbench-init-vacuum", "pgbench",
  "vacuum analyze pgbench_branches")

# ---------------------------------------------------------------- generic txn control
g("pgq-txn-commit", "psql",
  "COMMIT",
  "commit;",
  "COMMIT;")
g("txn-begin", "psql",
  "BEGIN ;",
  "Begin")
g("txn-rollback", "psql",
  "ROLLBACK",
  "rollback;")
g("txn-start-transaction", "typeorm",
  "START TRANSACTION",
  "start transaction;")
g("txn-set-transaction-rr-ro", "pg_dump",
  "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
g("txn-set-local-statement-timeout", "misc",
  "SET LOCAL statement_timeout = '5s'",
  "SET LOCAL statement_timeout = '10s'",
  "set local statement_timeout = 30000;")
g("txn-set-local-lock-timeout", "migration",
  "SET LOCAL lock_timeout = '2s'",
  "SET LOCAL lock_timeout = '500ms'")
g("set-statement-timeout", "pg_dump",
  "SET statement_timeout = 0;",
  "SET statement_timeout = '30s';")
g("set-lock-timeout", "pg_dump",
  "SET lock_timeout = 0;")
g("set-idle-in-txn-timeout", "pg_dump",
  "SET idle_in_transaction_session_timeout = 0;")
g("set-client-encoding", "pg_dump",
  "SET client_encoding = 'UTF8';",
  "SET client_encoding = 'LATIN1';")
g("set-standard-conforming-strings", "pg_dump",
  "SET standard_conforming_strings = on;")
g("set-config-search-path", "pg_dump",
  "SELECT pg_catalog.set_config('search_path', '', false);",
  "SELECT pg_catalog.set_config('search_path', 'app, public', false);")
g("set-check-function-bodies", "pg_dump",
  "SET check_function_bodies = false;")
g("set-xmloption", "pg_dump",
  "SET xmloption = content;")
g("pgq-set-client-min-messages", "pg_dump",
  "SET client_min_messages = warning;")
g("set-row-security", "pg_dump",
  "SET row_security = off;")
g("set-application-name", "misc",
  "SET application_name = 'x'",
  "SET application_name = 'billing-worker'",
  "SET application_name = 'PostgreSQL JDBC Driver'")
g("set-extra-float-digits", "hibernate",
  "SET extra_float_digits = 3",
  "SET extra_float_digits = 2")
g("set-time-zone", "django",
  "SET TIME ZONE 'UTC'",
  "SET TIME ZONE 'Europe/Paris'")
g("set-datestyle", "misc",
  "SET DateStyle = 'ISO'",
  "SET datestyle = 'ISO, MDY'")
g("show-transaction-isolation", "hibernate",
  "SHOW TRANSACTION ISOLATION LEVEL",
  "show transaction isolation level")
g("show-server-version", "misc",
  "SHOW server_version",
  "show server_version;")
g("show-search-path", "rails",
  "SHOW search_path")
g("show-max-identifier-length", "rails",
  "SHOW max_identifier_length")
g("show-standard-conforming-strings", "sqlalchemy",
  "show standard_conforming_strings")
g("reset-all", "misc",
  "RESET ALL")
g("discard-all", "misc",
  "DISCARD ALL",
  "discard all;")

# ---------------------------------------------------------------- Django ORM
g("django-auth-user-get", "django",
  'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."id" = 1 LIMIT 21',
  'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."id" = 1337 LIMIT 21',
  'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."id" = $1 LIMIT 21')
g("django-auth-user-by-username", "django",
  'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."username" = \'admin\' LIMIT 21',
  'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."username" = \'o\'\'brien\' LIMIT 21')
g("django-app-user-get", "django",
  'SELECT "app_user"."id", "app_user"."name" FROM "app_user" WHERE "app_user"."id" = 1 LIMIT 21',
  'SELECT "app_user"."id", "app_user"."name" FROM "app_user" WHERE "app_user"."id" = 987654 LIMIT 21',
  'SELECT "app_user"."id", "app_user"."name" FROM "app_user" WHERE "app_user"."id" = $1 LIMIT 21')
g("django-app-user-get-email", "django",
  'SELECT "app_user"."id", "app_user"."name", "app_user"."email" FROM "app_user" WHERE "app_user"."id" = 1 LIMIT 21')
g("django-app-user-insert-returning", "django",
  'INSERT INTO "app_user" ("name", "email", "created_at") VALUES (\'alice\', \'alice@example.com\', \'2024-01-15T10:00:00+00:00\'::timestamptz) RETURNING "app_user"."id"',
  'INSERT INTO "app_user" ("name", "email", "created_at") VALUES (\'bob\', \'bob@example.org\', \'2024-02-01T08:30:12.345678+00:00\'::timestamptz) RETURNING "app_user"."id"',
  'INSERT INTO "app_user" ("name", "email", "created_at") VALUES (\'carol\', \'c@example.com\', \'2024-03-01T00:00:00+00:00\'::timestamptz), (\'dave\', \'d@example.com\', \'2024-03-01T00:00:01+00:00\'::timestamptz) RETURNING "app_user"."id"',
  'INSERT INTO "app_user" ("name", "email", "created_at") VALUES ($1, $2, $3::timestamptz) RETURNING "app_user"."id"')
g("django-blog-comment-prefetch", "django",
  'SELECT "blog_comment"."id", "blog_comment"."post_id", "blog_comment"."author_id", "blog_comment"."body" FROM "blog_comment" WHERE "blog_comment"."post_id" IN (1, 2, 3)',
  'SELECT "blog_comment"."id", "blog_comment"."post_id", "blog_comment"."author_id", "blog_comment"."body" FROM "blog_comment" WHERE "blog_comment"."post_id" IN (7)',
  'SELECT "blog_comment"."id", "blog_comment"."post_id", "blog_comment"."author_id", "blog_comment"."body" FROM "blog_comment" WHERE "blog_comment"."post_id" IN (10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)')
g("django-blog-tag-m2m-prefetch", "django",
  'SELECT ("blog_post_tags"."post_id") AS "_prefetch_related_val_post_id", "blog_tag"."id", "blog_tag"."name" FROM "blog_tag" INNER JOIN "blog_post_tags" ON ("blog_tag"."id" = "blog_post_tags"."tag_id") WHERE "blog_post_tags"."post_id" IN (1, 2)',
  'SELECT ("blog_post_tags"."post_id") AS "_prefetch_related_val_post_id", "blog_tag"."id", "blog_tag"."name" FROM "blog_tag" INNER JOIN "blog_post_tags" ON ("blog_tag"."id" = "blog_post_tags"."tag_id") WHERE "blog_post_tags"."post_id" IN (5, 8, 13, 21)')
g("django-blog-post-select-related", "django",
  'SELECT "blog_post"."id", "blog_post"."title", "blog_post"."author_id", "auth_user"."id", "auth_user"."username" FROM "blog_post" INNER JOIN "auth_user" ON ("blog_post"."author_id" = "auth_user"."id") WHERE "blog_post"."id" = 10 LIMIT 21',
  'SELECT "blog_post"."id", "blog_post"."title", "blog_post"."author_id", "auth_user"."id", "auth_user"."username" FROM "blog_post" INNER JOIN "auth_user" ON ("blog_post"."author_id" = "auth_user"."id") WHERE "blog_post"."id" = 4242 LIMIT 21')
g("django-blog-post-list-page", "django",
  'SELECT "blog_post"."id", "blog_post"."title", "blog_post"."created_at" FROM "blog_post" WHERE "blog_post"."author_id" = 5 ORDER BY "blog_post"."created_at" DESC LIMIT 10 OFFSET 20',
  'SELECT "blog_post"."id", "blog_post"."title", "blog_post"."created_at" FROM "blog_post" WHERE "blog_post"."author_id" = 77 ORDER BY "blog_post"."created_at" DESC LIMIT 25 OFFSET 0')
g("django-blog-post-count", "django",
  'SELECT COUNT(*) AS "__count" FROM "blog_post" WHERE "blog_post"."author_id" = 5',
  'SELECT COUNT(*) AS "__count" FROM "blog_post" WHERE "blog_post"."author_id" = 9001')
g("django-blog-post-count-all", "django",
  'SELECT COUNT(*) AS "__count" FROM "blog_post"')
g("django-blog-post-icontains", "django",
  'SELECT "blog_post"."id", "blog_post"."title" FROM "blog_post" WHERE UPPER("blog_post"."title"::text) LIKE UPPER(\'%django%\') ORDER BY "blog_post"."id" ASC',
  'SELECT "blog_post"."id", "blog_post"."title" FROM "blog_post" WHERE UPPER("blog_post"."title"::text) LIKE UPPER(\'%postgres\\_14%\') ORDER BY "blog_post"."id" ASC')
g("django-blog-post-update", "django",
  'UPDATE "blog_post" SET "title" = \'Hello\', "updated_at" = \'2024-05-05T12:00:00+00:00\'::timestamptz WHERE "blog_post"."id" = 3',
  'UPDATE "blog_post" SET "title" = \'Another title\', "updated_at" = \'2024-05-06T09:15:00+00:00\'::timestamptz WHERE "blog_post"."id" = 12')
g("django-blog-comment-delete-in", "django",
  'DELETE FROM "blog_comment" WHERE "blog_comment"."id" IN (4, 5)',
  'DELETE FROM "blog_comment" WHERE "blog_comment"."id" IN (99)')
g("django-exists-username", "django",
  'SELECT 1 AS "a" FROM "auth_user" WHERE "auth_user"."username" = \'bob\' LIMIT 1',
  'SELECT 1 AS "a" FROM "auth_user" WHERE "auth_user"."username" = \'alice\' LIMIT 1')
g("django-session-get", "django",
  'SELECT "django_session"."session_key", "django_session"."session_data", "django_session"."expire_date" FROM "django_session" WHERE ("django_session"."expire_date" > \'2024-03-01T12:00:00.123456+00:00\'::timestamptz AND "django_session"."session_key" = \'k2x9a8b7c6d5e4f3g2h1\') LIMIT 21',
  'SELECT "django_session"."session_key", "django_session"."session_data", "django_session"."expire_date" FROM "django_session" WHERE ("django_session"."expire_date" > \'2024-03-02T00:00:00+00:00\'::timestamptz AND "django_session"."session_key" = \'zz11yy22\') LIMIT 21')
g("django-session-update", "django",
  'UPDATE "django_session" SET "session_data" = \'e30:1rXYZ:abc\', "expire_date" = \'2024-03-15T12:00:00+00:00\'::timestamptz WHERE "django_session"."session_key" = \'k2x9a8b7c6d5e4f3g2h1\'')
g("django-content-type-get", "django",
  'SELECT "django_content_type"."id", "django_content_type"."app_label", "django_content_type"."model" FROM "django_content_type" WHERE ("django_content_type"."app_label" = \'auth\' AND "django_content_type"."model" = \'user\') LIMIT 21',
  'SELECT "django_content_type"."id", "django_content_type"."app_label", "django_content_type"."model" FROM "django_content_type" WHERE ("django_content_type"."app_label" = \'blog\' AND "django_content_type"."model" = \'post\') LIMIT 21')
g("django-migrations-list", "django",
  'SELECT "django_migrations"."id", "django_migrations"."app", "django_migrations"."name", "django_migrations"."applied" FROM "django_migrations"')
g("django-migrations-insert", "django",
  'INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (\'blog\', \'0001_initial\', \'2024-01-01T00:00:00+00:00\'::timestamptz) RETURNING "django_migrations"."id"',
  'INSERT INTO "django_migrations" ("app", "name", "applied") VALUES (\'auth\', \'0012_alter_user_first_name_max_length\', \'2024-01-01T00:00:01+00:00\'::timestamptz) RETURNING "django_migrations"."id"')
g("django-jsonfield-contains", "django",
  'SELECT "app_event"."id", "app_event"."payload" FROM "app_event" WHERE "app_event"."payload" @> \'{"type": "click"}\'::jsonb',
  'SELECT "app_event"."id", "app_event"."payload" FROM "app_event" WHERE "app_event"."payload" @> \'{"type": "signup", "plan": "pro"}\'::jsonb')
g("django-jsonfield-key-transform", "django",
  'SELECT "app_event"."id" FROM "app_event" WHERE ("app_event"."payload" -> \'user\' -> \'id\') = \'42\'::jsonb',
  'SELECT "app_event"."id" FROM "app_event" WHERE ("app_event"."payload" -> \'order\' -> \'total\') = \'199\'::jsonb')
g("django-aggregate-annotate", "django",
  'SELECT "auth_user"."id", "auth_user"."username", COUNT("blog_post"."id") AS "num_posts" FROM "auth_user" LEFT OUTER JOIN "blog_post" ON ("auth_user"."id" = "blog_post"."author_id") GROUP BY "auth_user"."id", "auth_user"."username" HAVING COUNT("blog_post"."id") > 3 ORDER BY "num_posts" DESC')
# Django savepoint names embed thread ids and counters; pg_query ignores
# TransactionStmt.savepoint_name so all of these fingerprint together.
g("pgq-django-savepoint", "django",
  'SAVEPOINT "s139960312345_x1"',
  'SAVEPOINT "s139960312345_x2"',
  'SAVEPOINT "s140213371337_x15"')
g("pgq-django-release-savepoint", "django",
  'RELEASE SAVEPOINT "s139960312345_x1"',
  'RELEASE SAVEPOINT "s140213371337_x15"')
g("pgq-django-rollback-to-savepoint", "django",
  'ROLLBACK TO SAVEPOINT "s139960312345_x1"',
  'ROLLBACK TO SAVEPOINT "s139960312345_x7"')
g("django-create-table-migration", "django",
  'CREATE TABLE "blog_post" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "title" varchar(200) NOT NULL, "body" text NOT NULL, "created_at" timestamp with time zone NOT NULL, "author_id" integer NOT NULL)')
g("django-add-fk-constraint", "django",
  'ALTER TABLE "blog_post" ADD CONSTRAINT "blog_post_author_id_dd7a8485_fk_auth_user_id" FOREIGN KEY ("author_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED')
g("django-create-index-like", "django",
  'CREATE INDEX "blog_post_title_3d3f3a1b_like" ON "blog_post" ("title" varchar_pattern_ops)')

# ---------------------------------------------------------------- SQLAlchemy
g("pgq-sqla-users-get", "sqlalchemy",
  "SELECT users.id AS users_id, users.name AS users_name, users.fullname AS users_fullname FROM users WHERE users.id = 5",
  "SELECT users.id AS users_id, users.name AS users_name, users.fullname AS users_fullname \nFROM users \nWHERE users.id = 123",
  "SELECT users.id AS users_id, users.name AS users_name, users.fullname AS users_fullname FROM users WHERE users.id = $1")
g("pgq-sqla-users-get", "sqlalchemy",
  "SELECT users.id, users.name, users.fullname \nFROM users \nWHERE users.id = $1::INTEGER",
  "SELECT users.id, users.name, users.fullname FROM users WHERE users.id = 17::INTEGER")
g("pgq-sqla-users-name-in", "sqlalchemy",
  "SELECT users.id, users.name \nFROM users \nWHERE users.name IN ('spongebob', 'sandy', 'patrick')",
  "SELECT users.id, users.name \nFROM users \nWHERE users.name IN ('squidward')",
  "SELECT users.id, users.name \nFROM users \nWHERE users.name IN ($1, $2)")
g("pgq-sqla-users-name-in", "sqlalchemy",
  "SELECT users.id, users.name \nFROM users \nWHERE users.name IN ($1::VARCHAR, $2::VARCHAR, $3::VARCHAR)",
  "SELECT users.id, users.name \nFROM users \nWHERE users.name IN ($1::VARCHAR)")
g("sqla-users-page", "sqlalchemy",
  "SELECT users.id AS users_id, users.name AS users_name, users.fullname AS users_fullname \nFROM users ORDER BY users.id \n LIMIT 10 OFFSET 0",
  "SELECT users.id AS users_id, users.name AS users_name, users.fullname AS users_fullname \nFROM users ORDER BY users.id \n LIMIT 10 OFFSET 40")
g("pgq-sqla-users-insert-returning", "sqlalchemy",
  "INSERT INTO users (name, fullname) VALUES ('spongebob', 'Spongebob Squarepants') RETURNING users.id",
  "INSERT INTO users (name, fullname) VALUES ($1::VARCHAR, $2::VARCHAR) RETURNING users.id")
g("sqla-addresses-insertmanyvalues", "sqlalchemy",
  "INSERT INTO addresses (user_id, email_address) VALUES (1, 'spongebob@sqlalchemy.org'), (2, 'sandy@sqlalchemy.org'), (2, 'sandy@squirrelpower.org') RETURNING addresses.id",
  "INSERT INTO addresses (user_id, email_address) VALUES (3, 'patrick@sqlalchemy.org') RETURNING addresses.id")
g("sqla-join-users-addresses", "sqlalchemy",
  "SELECT users.name, addresses.email_address \nFROM users JOIN addresses ON users.id = addresses.user_id \nWHERE users.name = 'sandy'",
  "SELECT users.name, addresses.email_address \nFROM users JOIN addresses ON users.id = addresses.user_id \nWHERE users.name = $1")
g("sqla-count-subquery", "sqlalchemy",
  "SELECT count(*) AS count_1 \nFROM (SELECT users.id AS users_id, users.name AS users_name \nFROM users \nWHERE users.name LIKE 'ed%') AS anon_1",
  "SELECT count(*) AS count_1 \nFROM (SELECT users.id AS users_id, users.name AS users_name \nFROM users \nWHERE users.name LIKE '%a%') AS anon_1")
g("pgq-sqla-update-users", "sqlalchemy",
  "UPDATE users SET fullname='Sandy Squirrel' WHERE users.name = 'sandy'",
  "UPDATE users SET fullname=$1::VARCHAR WHERE users.name = $2::VARCHAR")
g("sqla-delete-users", "sqlalchemy",
  "DELETE FROM users WHERE users.name = 'patrick'")
g("sqla-version", "sqlalchemy",
  "select pg_catalog.version()")
g("sqla-current-schema", "sqlalchemy",
  "select current_schema()")
g("sqla-has-table", "sqlalchemy",
  "SELECT pg_catalog.pg_class.relname \nFROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relname = 'users' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p', 'f', 'v', 'm']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'",
  "SELECT pg_catalog.pg_class.relname \nFROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace \nWHERE pg_catalog.pg_class.relname = 'addresses' AND pg_catalog.pg_class.relkind = ANY (ARRAY['r', 'p']) AND pg_catalog.pg_table_is_visible(pg_catalog.pg_class.oid) AND pg_catalog.pg_namespace.nspname != 'pg_catalog'")
g("sqla-create-table", "sqlalchemy",
  "\nCREATE TABLE users (\n\tid SERIAL NOT NULL, \n\tname VARCHAR(30) NOT NULL, \n\tfullname VARCHAR, \n\tPRIMARY KEY (id)\n)\n\n",
  "CREATE TABLE users (id SERIAL NOT NULL, name VARCHAR(50) NOT NULL, fullname VARCHAR, PRIMARY KEY (id))")
g("sqla-exists-subquery", "sqlalchemy",
  "SELECT users.name \nFROM users \nWHERE EXISTS (SELECT addresses.id \nFROM addresses \nWHERE addresses.user_id = users.id AND addresses.email_address LIKE '%@gmail.com')")

# ---------------------------------------------------------------- Rails / ActiveRecord
g("rails-posts-by-user", "rails",
  'SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = $1 LIMIT $2',
  'SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = $1 LIMIT $2 /*application:Blog,controller:posts,action:index*/',
  '/*application:Blog,controller:posts,action:show*/ SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = 7 LIMIT 11',
  'SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = 42 LIMIT 1')
g("rails-users-find", "rails",
  'SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2',
  'SELECT "users".* FROM "users" WHERE "users"."id" = $1 LIMIT $2 /*application:Blog,controller:sessions,action:create*/',
  'SELECT "users".* FROM "users" WHERE "users"."id" = 1 LIMIT 1')
g("rails-users-exists-email", "rails",
  'SELECT 1 AS one FROM "users" WHERE "users"."email" = $1 LIMIT $2',
  'SELECT 1 AS one FROM "users" WHERE "users"."email" = \'jane@example.com\' LIMIT 1')
g("rails-users-exists-email-lower", "rails",
  'SELECT 1 AS one FROM "users" WHERE LOWER("users"."email") = LOWER($1) LIMIT $2')
g("rails-posts-insert", "rails",
  'INSERT INTO "posts" ("title", "body", "user_id", "created_at", "updated_at") VALUES ($1, $2, $3, $4, $5) RETURNING "id"',
  'INSERT INTO "posts" ("title", "body", "user_id", "created_at", "updated_at") VALUES (\'Hello\', \'World\', 3, \'2024-04-01 10:00:00.123456\', \'2024-04-01 10:00:00.123456\') RETURNING "id"')
g("rails-posts-update", "rails",
  'UPDATE "posts" SET "title" = $1, "updated_at" = $2 WHERE "posts"."id" = $3',
  'UPDATE "posts" SET "title" = \'Edited\', "updated_at" = \'2024-04-02 11:11:11.000001\' WHERE "posts"."id" = 5')
g("rails-posts-counter-cache", "rails",
  'UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) + $1 WHERE "posts"."id" = $2',
  'UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) + 1 WHERE "posts"."id" = 17')
g("rails-posts-counter-cache-decrement", "rails",
  'UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) - $1 WHERE "posts"."id" = $2',
  'UPDATE "posts" SET "comments_count" = COALESCE("comments_count", 0) - 1 WHERE "posts"."id" = 17')
g("rails-posts-destroy", "rails",
  'DELETE FROM "posts" WHERE "posts"."id" = $1')
g("rails-comments-preload", "rails",
  'SELECT "comments".* FROM "comments" WHERE "comments"."post_id" IN ($1, $2, $3)',
  'SELECT "comments".* FROM "comments" WHERE "comments"."post_id" IN ($1)',
  'SELECT "comments".* FROM "comments" WHERE "comments"."post_id" IN (1, 2, 3, 4, 5, 6, 7, 8)')
g("rails-posts-count", "rails",
  'SELECT COUNT(*) FROM "posts" WHERE "posts"."user_id" = $1',
  'SELECT COUNT(*) FROM "posts" WHERE "posts"."user_id" = 3')
g("rails-find-each", "rails",
  'SELECT "users".* FROM "users" WHERE "users"."id" > $1 ORDER BY "users"."id" ASC LIMIT $2',
  'SELECT "users".* FROM "users" WHERE "users"."id" > 1000 ORDER BY "users"."id" ASC LIMIT 1000')
g("rails-find-each-first-batch", "rails",
  'SELECT "users".* FROM "users" ORDER BY "users"."id" ASC LIMIT $1')
g("rails-pluck-between", "rails",
  'SELECT "users"."email" FROM "users" WHERE "users"."created_at" BETWEEN $1 AND $2',
  'SELECT "users"."email" FROM "users" WHERE "users"."created_at" BETWEEN \'2024-01-01 00:00:00\' AND \'2024-01-31 23:59:59.999999\'')
g("rails-schema-migrations", "rails",
  'SELECT "schema_migrations"."version" FROM "schema_migrations" ORDER BY "schema_migrations"."version" ASC')
g("rails-ar-internal-metadata", "rails",
  'SELECT "ar_internal_metadata"."value" FROM "ar_internal_metadata" WHERE "ar_internal_metadata"."key" = $1 LIMIT $2',
  'SELECT "ar_internal_metadata"."value" FROM "ar_internal_metadata" WHERE "ar_internal_metadata"."key" = \'environment\' LIMIT 1')
g("rails-type-map-load", "rails",
  "SELECT t.oid, t.typname\nFROM pg_type as t\nWHERE t.typname IN ('int2', 'int4', 'int8', 'oid', 'float4', 'float8', 'numeric', 'bool', 'timestamp', 'timestamptz')",
  "SELECT t.oid, t.typname\nFROM pg_type as t\nWHERE t.typname IN ('hstore', 'citext')")
g("pgq-set-client-min-messages", "rails",
  "SET client_min_messages TO 'warning'",
  "SET client_min_messages TO 'notice'")
g("rails-intervalstyle", "rails",
  "SET intervalstyle = iso_8601")
g("rails-advisory-lock-try", "rails",
  "SELECT pg_try_advisory_lock(4101937812316034510)",
  "SELECT pg_try_advisory_lock(2)")
g("rails-advisory-unlock", "rails",
  "SELECT pg_advisory_unlock(4101937812316034510)")
g("rails-posts-join-tags-distinct", "rails",
  'SELECT DISTINCT "posts".* FROM "posts" INNER JOIN "taggings" ON "taggings"."post_id" = "posts"."id" INNER JOIN "tags" ON "tags"."id" = "taggings"."tag_id" WHERE "tags"."name" IN ($1, $2) ORDER BY "posts"."created_at" DESC LIMIT $3 OFFSET $4',
  'SELECT DISTINCT "posts".* FROM "posts" INNER JOIN "taggings" ON "taggings"."post_id" = "posts"."id" INNER JOIN "tags" ON "tags"."id" = "taggings"."tag_id" WHERE "tags"."name" IN (\'ruby\') ORDER BY "posts"."created_at" DESC LIMIT 20 OFFSET 40')
g("rails-upsert-all", "rails",
  'INSERT INTO "settings" ("key","value","created_at","updated_at") VALUES (\'theme\', \'dark\', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), (\'lang\', \'en\', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) ON CONFLICT ("key") DO UPDATE SET "value"=excluded."value","updated_at"=excluded."updated_at" RETURNING "id"',
  'INSERT INTO "settings" ("key","value","created_at","updated_at") VALUES (\'tz\', \'UTC\', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP) ON CONFLICT ("key") DO UPDATE SET "value"=excluded."value","updated_at"=excluded."updated_at" RETURNING "id"')
g("rails-migration-add-column", "rails",
  'ALTER TABLE "users" ADD "login_count" integer DEFAULT 0 NOT NULL',
  'ALTER TABLE "users" ADD "login_count" integer DEFAULT 1 NOT NULL')

# ---------------------------------------------------------------- Prisma
g("prisma-user-find-unique", "prisma",
  'SELECT "public"."User"."id", "public"."User"."email", "public"."User"."name" FROM "public"."User" WHERE ("public"."User"."id" = $1 AND 1=1) LIMIT $2 OFFSET $3',
  'SELECT "public"."User"."id", "public"."User"."email", "public"."User"."name" FROM "public"."User" WHERE ("public"."User"."id" = 5 AND 1=1) LIMIT 1 OFFSET 0')
g("prisma-user-find-first-offset", "prisma",
  'SELECT "public"."User"."id" FROM "public"."User" WHERE ("public"."User"."id" = $1 AND 1=1) OFFSET $2',
  'SELECT "public"."User"."id" FROM "public"."User" WHERE ("public"."User"."id" = 12 AND 1=1) OFFSET 0')
g("prisma-posts-by-authors", "prisma",
  'SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."authorId" FROM "public"."Post" WHERE "public"."Post"."authorId" IN ($1,$2,$3) OFFSET $4',
  'SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."authorId" FROM "public"."Post" WHERE "public"."Post"."authorId" IN ($1) OFFSET $2')
g("prisma-user-create", "prisma",
  'INSERT INTO "public"."User" ("email","name") VALUES ($1,$2) RETURNING "public"."User"."id", "public"."User"."email", "public"."User"."name"',
  'INSERT INTO "public"."User" ("email","name") VALUES (\'ann@prisma.io\',\'Ann\') RETURNING "public"."User"."id", "public"."User"."email", "public"."User"."name"')
g("prisma-post-count", "prisma",
  'SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."Post"."id" FROM "public"."Post" WHERE "public"."Post"."authorId" = $1 OFFSET $2) AS "sub"')
g("prisma-user-update", "prisma",
  'UPDATE "public"."User" SET "name" = $1 WHERE ("public"."User"."id" = $2 AND 1=1)')
g("prisma-user-delete", "prisma",
  'DELETE FROM "public"."User" WHERE ("public"."User"."id" = $1 AND 1=1)')
g("prisma-post-contains-insensitive", "prisma",
  'SELECT "public"."Post"."id", "public"."Post"."title" FROM "public"."Post" WHERE "public"."Post"."title"::text ILIKE $1 ORDER BY "public"."Post"."id" ASC OFFSET $2',
  'SELECT "public"."Post"."id", "public"."Post"."title" FROM "public"."Post" WHERE "public"."Post"."title"::text ILIKE \'%prisma%\' ORDER BY "public"."Post"."id" ASC OFFSET 0')
g("prisma-migrate-advisory-lock", "prisma",
  "SELECT pg_advisory_lock(72707369)",
  "SELECT pg_advisory_lock($1)")
g("prisma-migrations-table", "prisma",
  'SELECT "id", "checksum", "finished_at", "migration_name", "logs", "rolled_back_at", "started_at", "applied_steps_count" FROM "_prisma_migrations" ORDER BY "started_at" ASC')

# Quoted vs unquoted identifier case: "Users" is a different relation from users.
g("quoted-Users-by-id", "sequelize",
  'SELECT * FROM "Users" WHERE id = 1',
  'SELECT * FROM "Users" WHERE id = 2')
g("unquoted-users-by-id", "misc",
  "SELECT * FROM users WHERE id = 1",
  "SELECT * FROM USERS WHERE id = 2",
  'SELECT * FROM "users" WHERE "id" = 3',
  "select * from Users where ID = $1")

# ---------------------------------------------------------------- Hibernate / JDBC
g("hibernate6-user-find", "hibernate",
  "select u1_0.id,u1_0.email,u1_0.name from users u1_0 where u1_0.id=$1",
  "select u1_0.id,u1_0.email,u1_0.name from users u1_0 where u1_0.id=42")
g("hibernate6-user-by-email", "hibernate",
  "select u1_0.id,u1_0.email,u1_0.name from users u1_0 where u1_0.email=$1")
g("hibernate5-user-find", "hibernate",
  "select user0_.id as id1_0_0_, user0_.email as email2_0_0_, user0_.name as name3_0_0_ from users user0_ where user0_.id=$1",
  "select user0_.id as id1_0_0_, user0_.email as email2_0_0_, user0_.name as name3_0_0_ from users user0_ where user0_.id=7")
g("hibernate-user-insert", "hibernate",
  "insert into users (email,name,id) values ($1,$2,$3)",
  "insert into users (email,name,id) values ('x@y.z','X',501)")
g("hibernate-user-update", "hibernate",
  "update users set email=$1,name=$2 where id=$3")
g("hibernate-user-delete", "hibernate",
  "delete from users where id=$1")
g("hibernate-nextval", "hibernate",
  "select nextval('users_seq')",
  "select nextval('orders_seq')")
g("hibernate6-orders-paged", "hibernate",
  "select o1_0.id,o1_0.customer_id,o1_0.status,o1_0.total from orders o1_0 where o1_0.customer_id=$1 order by o1_0.created_at desc offset $2 rows fetch first $3 rows only",
  "select o1_0.id,o1_0.customer_id,o1_0.status,o1_0.total from orders o1_0 where o1_0.customer_id=$1 order by o1_0.created_at desc offset 0 rows fetch first 50 rows only")
g("hibernate6-orders-join-fetch", "hibernate",
  "select o1_0.id,c1_0.id,c1_0.name,o1_0.total from orders o1_0 join customers c1_0 on c1_0.id=o1_0.customer_id where o1_0.status in ($1,$2)",
  "select o1_0.id,c1_0.id,c1_0.name,o1_0.total from orders o1_0 join customers c1_0 on c1_0.id=o1_0.customer_id where o1_0.status in ($1,$2,$3,$4)")
g("hibernate-pessimistic-lock", "hibernate",
  "select a1_0.id,a1_0.balance from accounts a1_0 where a1_0.id=$1 for no key update")
g("jdbc-typname-by-oid", "jdbc",
  "SELECT typname FROM pg_type WHERE oid = 23",
  "SELECT typname FROM pg_type WHERE oid = 1043",
  "SELECT typname FROM pg_type WHERE oid = $1")
g("jdbc-type-info-by-oid", "jdbc",
  "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = $1",
  "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 3802")
g("jdbc-array-elem-type", "jdbc",
  "SELECT e.typdelim FROM pg_catalog.pg_type t, pg_catalog.pg_type e WHERE t.oid = $1 and t.typelem = e.oid")
g("jdbc-get-tables", "jdbc",
  "SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relname LIKE 'orders' ORDER BY TABLE_SCHEM, TABLE_NAME",
  "SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c WHERE c.relnamespace = n.oid AND c.relname LIKE 'cust%' ORDER BY TABLE_SCHEM, TABLE_NAME")

# ---------------------------------------------------------------- TypeORM
g("typeorm-user-find-one", "typeorm",
  'SELECT "User"."id" AS "User_id", "User"."firstName" AS "User_firstName", "User"."lastName" AS "User_lastName", "User"."age" AS "User_age" FROM "user" "User" WHERE (("User"."id" = $1)) LIMIT 1',
  'SELECT "User"."id" AS "User_id", "User"."firstName" AS "User_firstName", "User"."lastName" AS "User_lastName", "User"."age" AS "User_age" FROM "user" "User" WHERE (("User"."id" = 77)) LIMIT 1')
g("typeorm-user-find-by-ids", "typeorm",
  'SELECT "User"."id" AS "User_id", "User"."firstName" AS "User_firstName" FROM "user" "User" WHERE "User"."id" IN ($1, $2, $3)',
  'SELECT "User"."id" AS "User_id", "User"."firstName" AS "User_firstName" FROM "user" "User" WHERE "User"."id" IN ($1)')
g("typeorm-user-insert", "typeorm",
  'INSERT INTO "user"("firstName", "lastName", "age") VALUES ($1, $2, $3) RETURNING "id"',
  'INSERT INTO "user"("firstName", "lastName", "age") VALUES ($1, $2, $3), ($4, $5, $6) RETURNING "id"')
g("typeorm-user-update", "typeorm",
  'UPDATE "user" SET "age" = $1 WHERE "id" IN ($2)')
g("typeorm-migrations-select", "typeorm",
  'SELECT * FROM "migrations" "migrations" ORDER BY "id" DESC')
g("typeorm-migrations-insert", "typeorm",
  'INSERT INTO "migrations"("timestamp", "name") VALUES ($1, $2)')
g("typeorm-current-schema", "typeorm",
  "SELECT * FROM current_schema()")
g("typeorm-version", "typeorm",
  "SELECT version()",
  "select version();")
g("typeorm-post-left-join-category", "typeorm",
  'SELECT "post"."id" AS "post_id", "post"."title" AS "post_title", "category"."id" AS "category_id", "category"."name" AS "category_name" FROM "post" "post" LEFT JOIN "post_categories_category" "post_category" ON "post_category"."postId"="post"."id" LEFT JOIN "category" "category" ON "category"."id"="post_category"."categoryId" WHERE "post"."title" = $1',
  'SELECT "post"."id" AS "post_id", "post"."title" AS "post_title", "category"."id" AS "category_id", "category"."name" AS "category_name" FROM "post" "post" LEFT JOIN "post_categories_category" "post_category" ON "post_category"."postId"="post"."id" LEFT JOIN "category" "category" ON "category"."id"="post_category"."categoryId" WHERE "post"."title" = \'TypeORM rocks\'')
g("pgq-typeorm-skip-take", "typeorm",
  'SELECT DISTINCT "distinctAlias"."post_id" AS "ids_post_id" FROM (SELECT "post"."id" AS "post_id", "post"."title" AS "post_title" FROM "post" "post") "distinctAlias" ORDER BY "post_id" ASC LIMIT 10 OFFSET 20',
  'SELECT DISTINCT "distinctAlias"."post_id" AS "ids_post_id" FROM (SELECT "post"."id" AS "post_id", "post"."title" AS "post_title" FROM "post" "post") "distinctAlias" ORDER BY "post_id" ASC LIMIT 5')

# ---------------------------------------------------------------- Sequelize
g("sequelize-user-find-by-pk", "sequelize",
  'SELECT "id", "username", "createdAt", "updatedAt" FROM "Users" AS "User" WHERE "User"."id" = 1;',
  'SELECT "id", "username", "createdAt", "updatedAt" FROM "Users" AS "User" WHERE "User"."id" = 314;')
g("sequelize-user-insert", "sequelize",
  'INSERT INTO "Users" ("id","username","createdAt","updatedAt") VALUES (DEFAULT,$1,$2,$3) RETURNING "id","username","createdAt","updatedAt";')
g("sequelize-user-count", "sequelize",
  'SELECT count(*) AS "count" FROM "Users" AS "User";')
g("sequelize-user-update", "sequelize",
  'UPDATE "Users" SET "username"=$1,"updatedAt"=$2 WHERE "id" = $3',
  'UPDATE "Users" SET "username"=$1,"updatedAt"=$2 WHERE "id" = 9')
g("sequelize-user-delete", "sequelize",
  'DELETE FROM "Users" WHERE "id" = 5',
  'DELETE FROM "Users" WHERE "id" = 6')
g("sequelize-posts-include", "sequelize",
  'SELECT "id", "title", "UserId" FROM "Posts" AS "Post" WHERE "Post"."UserId" IN (1, 2, 3);',
  'SELECT "id", "title", "UserId" FROM "Posts" AS "Post" WHERE "Post"."UserId" IN (4);')
g("sequelize-show-all-tables", "sequelize",
  "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type LIKE '%TABLE' AND table_name != 'spatial_ref_sys';")
g("sequelize-create-table", "sequelize",
  'CREATE TABLE IF NOT EXISTS "Users" ("id"   SERIAL , "username" VARCHAR(255), "createdAt" TIMESTAMP WITH TIME ZONE NOT NULL, "updatedAt" TIMESTAMP WITH TIME ZONE NOT NULL, PRIMARY KEY ("id"));')
# pg_query ignores CreateFunctionStmt options (body, LANGUAGE) so Sequelize's
# per-call temp functions group together; for a token-based fingerprint the
# dollar-quoted body is one string constant, so they also agree.
g("sequelize-temp-upsert-function", "sequelize",
  "CREATE OR REPLACE FUNCTION pg_temp.testfunc(OUT response \"Users\", OUT sequelize_caught_exception text) RETURNS RECORD AS $func_3a8f$ BEGIN INSERT INTO \"Users\" (\"username\") VALUES ('x') RETURNING * INTO response; EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL; END $func_3a8f$ LANGUAGE plpgsql;",
  "CREATE OR REPLACE FUNCTION pg_temp.testfunc(OUT response \"Users\", OUT sequelize_caught_exception text) RETURNS RECORD AS $func_91bc$ BEGIN INSERT INTO \"Users\" (\"username\") VALUES ('yy') RETURNING * INTO response; EXCEPTION WHEN unique_violation THEN GET STACKED DIAGNOSTICS sequelize_caught_exception = PG_EXCEPTION_DETAIL; END $func_91bc$ LANGUAGE plpgsql;")
g("sequelize-drop-temp-function", "sequelize",
  "DROP FUNCTION IF EXISTS pg_temp.testfunc();")

# ---------------------------------------------------------------- other drivers / ORMs
g("knex-select-where-in", "knex",
  'select "id", "email" from "accounts" where "org_id" in ($1, $2, $3) and "deleted_at" is null',
  'select "id", "email" from "accounts" where "org_id" in ($1) and "deleted_at" is null')
g("knex-migrations-lock", "knex",
  'select * from "knex_migrations_lock" where "is_locked" = $1 for update')
g("gorm-find-first", "gorm",
  'SELECT * FROM "products" WHERE code = $1 AND "products"."deleted_at" IS NULL ORDER BY "products"."id" LIMIT 1',
  'SELECT * FROM "products" WHERE code = \'D42\' AND "products"."deleted_at" IS NULL ORDER BY "products"."id" LIMIT 1')
g("gorm-soft-delete", "gorm",
  'UPDATE "products" SET "deleted_at"=$1 WHERE "products"."id" = $2 AND "products"."deleted_at" IS NULL')
g("pgx-type-lookup", "pgx",
  "select oid, typname from pg_type where typname = any($1)")
g("pgq-pgx-deallocate", "pgx",
  'deallocate "stmtcache_5c1bd5f6a8b3e0d2"',
  'deallocate "stmtcache_0e7a34b9f1c2d8aa"')
g("asyncpg-type-introspection", "asyncpg",
  "SELECT t.oid, t.typelem AS elemtype, t.typtype AS kind FROM pg_catalog.pg_type AS t WHERE t.oid = any($1::oid[])")
g("npgsql-load-types", "npgsql",
  "SELECT ns.nspname, t.oid, t.typname, t.typtype, t.typnotnull, t.elemtypoid FROM pg_type AS t JOIN pg_namespace AS ns ON ns.oid = t.typnamespace WHERE t.typtype IN ('b', 'r', 'm', 'e', 'd') ORDER BY t.typtype")
g("node-pg-healthcheck", "node-postgres",
  "SELECT 1",
  "select 1;",
  "SELECT 1 ;",
  "SELECT 42")
g("current-database", "misc",
  "SELECT current_database()")
g("current-user", "misc",
  "SELECT current_user")
g("pg-is-in-recovery", "pg_dump",
  "SELECT pg_catalog.pg_is_in_recovery()")

# ---------------------------------------------------------------- psql backslash commands
g("psql-dt", "psql",
  "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE c.relkind IN ('r','p','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname !~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;")
g("psql-d-lookup", "psql",
  "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;",
  "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname OPERATOR(pg_catalog.~) '^(pgbench_accounts)$' COLLATE pg_catalog.default\n  AND pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;")
g("psql-d-columns", "psql",
  "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod),\n  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   FROM pg_catalog.pg_attrdef d\n   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  a.attnotnull,\n  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  a.attidentity,\n  a.attgenerated\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped\nORDER BY a.attnum;",
  "SELECT a.attname,\n  pg_catalog.format_type(a.atttypid, a.atttypmod),\n  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)\n   FROM pg_catalog.pg_attrdef d\n   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),\n  a.attnotnull,\n  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t\n   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,\n  a.attidentity,\n  a.attgenerated\nFROM pg_catalog.pg_attribute a\nWHERE a.attrelid = '24601' AND a.attnum > 0 AND NOT a.attisdropped\nORDER BY a.attnum;")
g("psql-d-indexes", "psql",
  "SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),\n  pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace\nFROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i\n  LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))\nWHERE c.oid = '16384' AND c.oid = i.indrelid AND i.indexrelid = c2.oid\nORDER BY i.indisprimary DESC, c2.relname;")
g("psql-l", "psql",
  "SELECT\n  d.datname as \"Name\",\n  pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\",\n  pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\",\n  d.datcollate as \"Collate\",\n  d.datctype as \"Ctype\",\n  pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\"\nFROM pg_catalog.pg_database d\nORDER BY 1;")
g("psql-dn", "psql",
  "SELECT n.nspname AS \"Name\",\n  pg_catalog.pg_get_userbyid(n.nspowner) AS \"Owner\"\nFROM pg_catalog.pg_namespace n\nWHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'\nORDER BY 1;")
g("psql-du", "psql",
  "SELECT r.rolname, r.rolsuper, r.rolinherit,\n  r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,\n  r.rolconnlimit, r.rolvaliduntil,\n  r.rolreplication, r.rolbypassrls\nFROM pg_catalog.pg_roles r\nWHERE r.rolname !~ '^pg_'\nORDER BY 1;")
g("psql-df-pattern", "psql",
  "SELECT n.nspname as \"Schema\", p.proname as \"Name\", pg_catalog.pg_get_function_result(p.oid) as \"Result data type\" FROM pg_catalog.pg_proc p LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.proname OPERATOR(pg_catalog.~) '^(now)$' COLLATE pg_catalog.default AND pg_catalog.pg_function_is_visible(p.oid) ORDER BY 1, 2;",
  "SELECT n.nspname as \"Schema\", p.proname as \"Name\", pg_catalog.pg_get_function_result(p.oid) as \"Result data type\" FROM pg_catalog.pg_proc p LEFT JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE p.proname OPERATOR(pg_catalog.~) '^(jsonb_.*)$' COLLATE pg_catalog.default AND pg_catalog.pg_function_is_visible(p.oid) ORDER BY 1, 2;")

# ---------------------------------------------------------------- pg_dump output / catalog work
g("pgdump-create-table", "pg_dump",
  "CREATE TABLE public.users (\n    id integer NOT NULL,\n    name text NOT NULL,\n    email character varying(255),\n    created_at timestamp with time zone DEFAULT now() NOT NULL\n);",
  "CREATE TABLE public.users (\n    id integer NOT NULL,\n    name text NOT NULL,\n    email character varying(320),\n    created_at timestamp with time zone DEFAULT now() NOT NULL\n);")
g("pgdump-create-sequence", "pg_dump",
  "CREATE SEQUENCE public.users_id_seq\n    AS integer\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n    NO MAXVALUE\n    CACHE 1;")
g("pgdump-sequence-owned-by", "pg_dump",
  "ALTER SEQUENCE public.users_id_seq OWNED BY public.users.id;")
g("pgdump-set-default-nextval", "pg_dump",
  "ALTER TABLE ONLY public.users ALTER COLUMN id SET DEFAULT nextval('public.users_id_seq'::regclass);")
g("pgdump-add-pkey", "pg_dump",
  "ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_pkey PRIMARY KEY (id);")
g("pgdump-copy-users-from-stdin", "pg_dump",
  "COPY public.users (id, name, email, created_at) FROM stdin;")
g("pgdump-copy-users-to-stdout", "pg_dump",
  "COPY public.users (id, name, email, created_at) TO stdout;")
g("pgdump-setval", "pg_dump",
  "SELECT pg_catalog.setval('public.users_id_seq', 42, true);",
  "SELECT pg_catalog.setval('public.users_id_seq', 100000, true);")
g("pgdump-create-index-btree", "pg_dump",
  "CREATE INDEX users_email_idx ON public.users USING btree (email);")
g("pgdump-lock-table", "pg_dump",
  "LOCK TABLE public.users IN ACCESS SHARE MODE")
g("pgdump-comment-extension", "pg_dump",
  "COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';")

# ---------------------------------------------------------------- COPY
g("copy-csv-header-from-stdin", "misc",
  "COPY users (id, name) FROM STDIN WITH (FORMAT csv, HEADER true)",
  "copy users (id, name) from stdin with (format csv, header true);")
g("copy-query-to-stdout-csv", "analytics",
  "COPY (SELECT id, email FROM users WHERE created_at > '2024-01-01') TO STDOUT WITH CSV HEADER",
  "COPY (SELECT id, email FROM users WHERE created_at > '2023-06-30') TO STDOUT WITH CSV HEADER")
g("copy-binary-to-stdout", "misc",
  "COPY events TO STDOUT (FORMAT binary)")
g("copy-binary-from-stdin", "misc",
  "COPY events (id, kind, payload) FROM STDIN (FORMAT binary)")

# ---------------------------------------------------------------- migrations / DDL
g("mig-add-column-default", "migration",
  "ALTER TABLE orders ADD COLUMN discount integer DEFAULT 0 NOT NULL",
  "ALTER TABLE orders ADD COLUMN discount integer DEFAULT 5 NOT NULL",
  "alter table ORDERS add column DISCOUNT integer default -1 not null")
g("mig-add-column-nullable", "migration",
  "ALTER TABLE orders ADD COLUMN discount integer")
g("mig-add-column-if-not-exists", "migration",
  "ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text")
g("mig-create-index-concurrently", "migration",
  "CREATE INDEX CONCURRENTLY idx_orders_customer_id ON orders (customer_id)",
  "CREATE INDEX CONCURRENTLY idx_orders_customer_id ON orders (customer_id);",
  "create index concurrently idx_orders_customer_id on orders(customer_id)")
g("mig-create-index-concurrently-ine-partial", "migration",
  "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_orders_pending ON orders (created_at) WHERE status = 'pending'",
  "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_orders_pending ON orders (created_at) WHERE status = 'queued'")
g("mig-create-unique-index", "migration",
  "CREATE UNIQUE INDEX index_users_on_lower_email ON users (lower(email))")
g("mig-create-gin-index", "migration",
  "CREATE INDEX idx_events_payload ON events USING gin (payload jsonb_path_ops)")
g("mig-drop-index-concurrently", "migration",
  "DROP INDEX CONCURRENTLY IF EXISTS idx_orders_customer_id")
g("mig-add-fk-not-valid", "migration",
  "ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID")
g("mig-validate-constraint", "migration",
  "ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_customer")
g("mig-rename-column", "migration",
  "ALTER TABLE users RENAME COLUMN fullname TO display_name")
g("mig-alter-column-type", "migration",
  "ALTER TABLE users ALTER COLUMN id TYPE bigint")
g("mig-alter-column-type-using", "migration",
  "ALTER TABLE users ALTER COLUMN id TYPE bigint USING id::bigint")
g("mig-set-not-null", "migration",
  "ALTER TABLE users ALTER COLUMN email SET NOT NULL")
g("mig-create-extension-uuid-ossp", "migration",
  'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
g("mig-create-extension-pgcrypto", "migration",
  "CREATE EXTENSION IF NOT EXISTS pgcrypto")
g("mig-create-enum", "migration",
  "CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled')")
g("mig-create-table-full", "migration",
  "CREATE TABLE IF NOT EXISTS orders (\n  id bigserial PRIMARY KEY,\n  customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,\n  status order_status NOT NULL DEFAULT 'pending',\n  total numeric(12, 2) NOT NULL DEFAULT 0,\n  tags text[] NOT NULL DEFAULT '{}',\n  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,\n  created_at timestamptz NOT NULL DEFAULT now(),\n  CONSTRAINT orders_total_check CHECK (total >= 0)\n)",
  "CREATE TABLE IF NOT EXISTS orders (\n  id bigserial PRIMARY KEY,\n  customer_id bigint NOT NULL REFERENCES customers(id) ON DELETE CASCADE,\n  status order_status NOT NULL DEFAULT 'new',\n  total numeric(14, 4) NOT NULL DEFAULT 0.00,\n  tags text[] NOT NULL DEFAULT '{}',\n  metadata jsonb NOT NULL DEFAULT '{\"v\": 1}'::jsonb,\n  created_at timestamptz NOT NULL DEFAULT now(),\n  CONSTRAINT orders_total_check CHECK (total >= -1)\n)")
g("mig-create-table-partitioned", "migration",
  "CREATE TABLE measurement (city_id int NOT NULL, logdate date NOT NULL, peaktemp int) PARTITION BY RANGE (logdate)")
g("mig-create-partition", "migration",
  "CREATE TABLE measurement_y2024m01 PARTITION OF measurement FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')")
g("mig-create-view", "migration",
  "CREATE OR REPLACE VIEW active_users AS SELECT id, email FROM users WHERE deleted_at IS NULL")
g("mig-create-matview", "migration",
  "CREATE MATERIALIZED VIEW daily_sales AS SELECT date_trunc('day', created_at) AS day, sum(total) AS revenue FROM orders GROUP BY 1 WITH NO DATA")
g("mig-refresh-matview", "migration",
  "REFRESH MATERIALIZED VIEW CONCURRENTLY daily_sales")
g("mig-drop-table", "migration",
  "DROP TABLE IF EXISTS legacy_sessions CASCADE")
g("mig-truncate-restart", "migration",
  "TRUNCATE TABLE audit_log RESTART IDENTITY")
g("mig-create-trigger-function", "migration",
  "CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND;\n$$",
  "CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $fn$\nBEGIN\n  NEW.updated_at = clock_timestamp();\n  RETURN NEW;\nEND\n$fn$")
g("mig-create-trigger", "migration",
  "CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at()")
g("mig-create-sql-function", "migration",
  "CREATE FUNCTION add_tax(amount numeric) RETURNS numeric AS $body$ SELECT amount * 1.2 $body$ LANGUAGE sql IMMUTABLE")
g("mig-do-block", "migration",
  "DO $$\nBEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'order_status') THEN\n    CREATE TYPE order_status AS ENUM ('pending', 'paid');\n  END IF;\nEND\n$$;",
  "DO $do$ BEGIN RAISE NOTICE 'it''s done'; END $do$",
  "do $$ begin perform pg_sleep(1); end $$")
g("mig-grant-select", "migration",
  "GRANT SELECT ON ALL TABLES IN SCHEMA public TO readonly")
g("mig-alter-default-privileges", "migration",
  "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO readonly")
g("mig-create-schema", "migration",
  "CREATE SCHEMA IF NOT EXISTS analytics")

# ---------------------------------------------------------------- maintenance / admin
g("admin-vacuum-analyze-table", "misc",
  "VACUUM (VERBOSE, ANALYZE) orders")
g("admin-analyze", "misc",
  "ANALYZE orders")
g("admin-explain-analyze", "psql",
  "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM orders WHERE customer_id = 42",
  "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM orders WHERE customer_id = 7")
g("admin-explain-plain", "psql",
  "EXPLAIN SELECT * FROM orders WHERE customer_id = 42")
g("admin-pg-stat-activity", "psql",
  "SELECT pid, usename, state, wait_event_type, wait_event, now() - query_start AS duration, query FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() ORDER BY duration DESC",
  "select pid, usename, state, wait_event_type, wait_event, now() - query_start as duration, query from pg_stat_activity where state <> 'idle' and pid <> pg_backend_pid() order by duration desc")
g("admin-cancel-backend", "psql",
  "SELECT pg_cancel_backend(12345)",
  "SELECT pg_cancel_backend(987)")
g("admin-terminate-backend", "psql",
  "SELECT pg_terminate_backend(12345)")
g("admin-pg-stat-statements-top", "analytics",
  "SELECT queryid, calls, total_exec_time, mean_exec_time, rows, query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 20",
  "SELECT queryid, calls, total_exec_time, mean_exec_time, rows, query FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 50")
g("admin-table-sizes", "psql",
  "SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) AS total_size FROM pg_catalog.pg_statio_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 10")
g("admin-locks", "psql",
  "SELECT l.locktype, l.mode, l.granted, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted")
g("admin-replication-lag", "misc",
  "SELECT client_addr, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes FROM pg_stat_replication")

# ---------------------------------------------------------------- LISTEN / NOTIFY / prepared / cursors
# pg_query ignores channel names, so only one channel appears per statement type.
# pg_query ignores LISTEN/UNLISTEN/NOTIFY channel names (per-user channels would
# otherwise explode the number of fingerprints); a token-based fingerprint
# keeps the channel identifier.
g("pgq-listen", "misc",
  "LISTEN jobs",
  "listen jobs;",
  'LISTEN "user_123_events"')
g("unlisten-all", "misc",
  "UNLISTEN *")
# PG17-based pg_query fingerprints the NOTIFY payload, PG18-based does not, so
# the payload is kept identical here.
g("pgq-notify", "misc",
  "NOTIFY jobs, 'payload'",
  "NOTIFY orders_changed, 'payload'")
g("pg-notify-function", "misc",
  "SELECT pg_notify('jobs', 'payload')",
  "SELECT pg_notify($1, $2)")
g("prepare-stmt", "misc",
  "PREPARE get_user (int) AS SELECT id, email FROM users WHERE id = $1")
g("execute-stmt", "misc",
  "EXECUTE get_user(1)",
  "EXECUTE get_user(31337)")
g("declare-cursor", "misc",
  "DECLARE c1 NO SCROLL CURSOR WITH HOLD FOR SELECT id, payload FROM events ORDER BY id")
g("fetch-forward", "misc",
  "FETCH FORWARD 1000 FROM c1")
# pg_query ignores cursor names in DECLARE/FETCH/CLOSE.
g("pgq-close-cursor", "misc",
  "CLOSE c1",
  'CLOSE "_django_curs_139912345678_sync_1"')
g("two-phase-prepare", "misc",
  "PREPARE TRANSACTION 'tx-2024-0001'",
  "PREPARE TRANSACTION 'tx-2024-0002'")
g("two-phase-commit", "misc",
  "COMMIT PREPARED 'tx-2024-0001'")

# ---------------------------------------------------------------- job queues / locking
g("queue-skip-locked", "misc",
  "SELECT id, payload FROM jobs WHERE queue = 'default' AND run_at <= now() ORDER BY priority, run_at LIMIT 10 FOR UPDATE SKIP LOCKED",
  "SELECT id, payload FROM jobs WHERE queue = 'mailers' AND run_at <= now() ORDER BY priority, run_at LIMIT 1 FOR UPDATE SKIP LOCKED",
  "SELECT id, payload FROM jobs WHERE queue = $1 AND run_at <= now() ORDER BY priority, run_at LIMIT $2 FOR UPDATE SKIP LOCKED")
g("queue-for-update-nowait", "misc",
  "SELECT id, payload FROM jobs WHERE queue = 'default' AND run_at <= now() ORDER BY priority, run_at LIMIT 10 FOR UPDATE NOWAIT")
g("queue-delete-returning", "misc",
  "DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE queue = 'default' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, payload",
  "DELETE FROM jobs WHERE id = (SELECT id FROM jobs WHERE queue = $1 ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, payload")
g("queue-update-returning", "misc",
  "UPDATE jobs SET locked_at = now(), locked_by = 'worker-1' WHERE id IN (SELECT id FROM jobs WHERE locked_at IS NULL ORDER BY id LIMIT 5 FOR UPDATE SKIP LOCKED) RETURNING *",
  "UPDATE jobs SET locked_at = now(), locked_by = 'host-b:4711' WHERE id IN (SELECT id FROM jobs WHERE locked_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED) RETURNING *")
g("select-for-share", "misc",
  "SELECT * FROM accounts WHERE id = 1 FOR SHARE")
g("advisory-xact-lock", "misc",
  "SELECT pg_advisory_xact_lock(hashtext('reindex'))",
  "SELECT pg_advisory_xact_lock(hashtext('nightly-rollup'))")

# ---------------------------------------------------------------- UPSERT / MERGE
g("upsert-do-update-excluded", "misc",
  "INSERT INTO counters (key, value) VALUES ('a', 1) ON CONFLICT (key) DO UPDATE SET value = counters.value + EXCLUDED.value",
  "INSERT INTO counters (key, value) VALUES ('a', 1), ('b', 2), ('c', 3) ON CONFLICT (key) DO UPDATE SET value = counters.value + EXCLUDED.value",
  "insert into counters (key, value) values ($1, $2) on conflict (key) do update set value = counters.value + excluded.value")
g("upsert-do-update-set-literal", "misc",
  "INSERT INTO counters (key, value) VALUES ('a', 1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
g("upsert-do-nothing", "misc",
  "INSERT INTO counters (key, value) VALUES ('a', 1) ON CONFLICT DO NOTHING",
  "INSERT INTO counters (key, value) VALUES ('zz', 99), ('yy', 98) ON CONFLICT DO NOTHING")
g("upsert-on-constraint", "misc",
  "INSERT INTO user_roles (user_id, role_id) VALUES (1, 2) ON CONFLICT ON CONSTRAINT user_roles_pkey DO NOTHING")
g("upsert-where", "misc",
  "INSERT INTO prices (sku, price, updated_at) VALUES ('A-1', 9.99, now()) ON CONFLICT (sku) DO UPDATE SET price = EXCLUDED.price, updated_at = EXCLUDED.updated_at WHERE prices.price IS DISTINCT FROM EXCLUDED.price",
  "INSERT INTO prices (sku, price, updated_at) VALUES ('B-22', 1e2, now()) ON CONFLICT (sku) DO UPDATE SET price = EXCLUDED.price, updated_at = EXCLUDED.updated_at WHERE prices.price IS DISTINCT FROM EXCLUDED.price")
g("merge-into", "misc",
  "MERGE INTO inventory AS t USING incoming AS s ON t.sku = s.sku WHEN MATCHED THEN UPDATE SET qty = t.qty + s.qty WHEN NOT MATCHED THEN INSERT (sku, qty) VALUES (s.sku, s.qty)")
g("insert-select", "misc",
  "INSERT INTO archive_orders SELECT * FROM orders WHERE created_at < now() - interval '90 days'",
  "INSERT INTO archive_orders SELECT * FROM orders WHERE created_at < now() - interval '1 year'")
g("insert-default-values", "misc",
  "INSERT INTO heartbeats DEFAULT VALUES RETURNING id")

# ---------------------------------------------------------------- literal forms (all constants)
g("literal-string-forms", "misc",
  "SELECT id FROM notes WHERE body = 'it''s'",
  r"SELECT id FROM notes WHERE body = E'it\'s'",
  "SELECT id FROM notes WHERE body = $$it's$$",
  "SELECT id FROM notes WHERE body = $q$it's$q$",
  r"SELECT id FROM notes WHERE body = U&'it\0027s'")
g("literal-escape-newline", "misc",
  r"INSERT INTO notes (body) VALUES (E'line1\nline2\ttab \\ backslash')",
  r"INSERT INTO notes (body) VALUES (E'\x41\u00e9\'')",
  "INSERT INTO notes (body) VALUES ('plain')")
g("literal-unicode-uescape", "misc",
  "SELECT id FROM notes WHERE title = U&'d!0061t!+000061' UESCAPE '!'",
  "SELECT id FROM notes WHERE title = 'data'")
g("literal-bit-strings", "misc",
  "SELECT id FROM flags WHERE mask = B'101'",
  "SELECT id FROM flags WHERE mask = X'FF'",
  "SELECT id FROM flags WHERE mask = b'0000000011111111'")
g("literal-bit-and", "misc",
  "SELECT id FROM flags WHERE mask & B'100' <> B'000'",
  "SELECT id FROM flags WHERE mask & X'0F' <> X'00'")
g("literal-numeric-forms", "misc",
  "SELECT id FROM products WHERE price > 1.5",
  "SELECT id FROM products WHERE price > .5",
  "SELECT id FROM products WHERE price > 1e10",
  "SELECT id FROM products WHERE price > 0x1F",
  "SELECT id FROM products WHERE price > 1_000_000",
  "SELECT id FROM products WHERE price > -2.5E-3")
g("literal-negative-numbers", "misc",
  "SELECT * FROM readings WHERE temp BETWEEN -5 AND 5",
  "SELECT * FROM readings WHERE temp BETWEEN -40.5 AND -10",
  "SELECT * FROM readings WHERE temp BETWEEN 0 AND 100")
g("pgq-literal-interval", "misc",
  "SELECT count(*) FROM events WHERE created_at > now() - INTERVAL '1 day'",
  "SELECT count(*) FROM events WHERE created_at > now() - interval '7 days'",
  "SELECT count(*) FROM events WHERE created_at > now() - INTERVAL '2 hours 30 minutes'")
g("pgq-literal-interval", "misc",
  "SELECT count(*) FROM events WHERE created_at > now() - $1::interval",
  "SELECT count(*) FROM events WHERE created_at > now() - '15 minutes'::interval")
g("pgq-literal-typed-date-timestamp", "misc",
  "SELECT count(*) FROM events WHERE created_at >= TIMESTAMP '2024-01-01 00:00:00'",
  "SELECT count(*) FROM events WHERE created_at >= timestamp '2023-12-31 23:59:59.999'")
g("pgq-literal-typed-date-timestamp", "misc",
  "SELECT count(*) FROM events WHERE created_at >= DATE '2024-01-01'")
g("cast-const-int", "misc",
  "SELECT id FROM accounts WHERE balance > '5'::int",
  "SELECT id FROM accounts WHERE balance > 7::int",
  "SELECT id FROM accounts WHERE balance > $1::int")
g("cast-col-int", "misc",
  "SELECT external_id::int FROM imports")
g("cast-col-bigint", "misc",
  "SELECT external_id::bigint FROM imports")
g("cast-function-syntax", "misc",
  "SELECT CAST(external_id AS numeric(20, 0)) FROM imports",
  "SELECT CAST(external_id AS numeric(38, 4)) FROM imports")
g("cast-to-date-cast-fn", "misc",
  "SELECT CAST(created_at AS date), count(*) FROM events GROUP BY CAST(created_at AS date)")
g("array-literal-string", "misc",
  "SELECT * FROM items WHERE tags @> '{1,2,3}'::int[]",
  "SELECT * FROM items WHERE tags @> '{42}'::int[]")
g("array-constructor", "misc",
  "SELECT * FROM items WHERE tags @> ARRAY[1,2,3]",
  "SELECT * FROM items WHERE tags @> ARRAY[7]",
  "SELECT * FROM items WHERE tags @> ARRAY[$1, $2]")
g("array-overlap", "misc",
  "SELECT id FROM items WHERE tags && ARRAY['red', 'blue']::text[]",
  "SELECT id FROM items WHERE tags && ARRAY['green']::text[]")
g("array-contained-by", "misc",
  "SELECT id FROM items WHERE tags <@ '{a,b,c}'::text[]")
g("array-not-in-list", "misc",
  "SELECT id, name FROM items WHERE status NOT IN ('deleted', 'archived')",
  "SELECT id, name FROM items WHERE status NOT IN ('hidden')")
g("array-unnest", "misc",
  "SELECT unnest(ARRAY[1, 2, 3]) AS n",
  "SELECT unnest(ARRAY[4]) AS n")
g("array-agg-order", "analytics",
  "SELECT customer_id, array_agg(id ORDER BY created_at DESC) FROM orders GROUP BY customer_id")
g("string-concat", "misc",
  "SELECT first_name || ' ' || last_name AS full_name FROM people WHERE id = 3",
  "SELECT first_name || ', ' || last_name AS full_name FROM people WHERE id = 10")
g("regex-case-insensitive", "misc",
  "SELECT id FROM people WHERE email ~* '^[a-z0-9._%+-]+@example\\.com$'",
  "SELECT id FROM people WHERE email ~* '@gmail'")
g("regex-not-match", "misc",
  "SELECT id FROM people WHERE email !~ '@'")
g("ilike-pattern", "misc",
  "SELECT id, name FROM people WHERE name ILIKE '%smith%'",
  "SELECT id, name FROM people WHERE name ILIKE 'jo%'",
  "SELECT id, name FROM people WHERE name ILIKE $1")
g("like-pattern", "misc",
  "SELECT id, name FROM people WHERE name LIKE '%smith%'")
g("not-ilike-pattern", "misc",
  "SELECT id, name FROM people WHERE name NOT ILIKE '%test%'")
g("similar-to", "misc",
  "SELECT id FROM people WHERE phone SIMILAR TO '\\+?[0-9 ]+'")
g("is-distinct-from", "misc",
  "SELECT id FROM people WHERE manager_id IS DISTINCT FROM 5",
  "SELECT id FROM people WHERE manager_id IS DISTINCT FROM $1")
g("is-null", "misc",
  "SELECT id FROM people WHERE manager_id IS NULL")
g("is-not-null", "misc",
  "SELECT id FROM people WHERE manager_id IS NOT NULL")
g("coalesce-nullif", "misc",
  "SELECT COALESCE(NULLIF(nickname, ''), first_name, 'anonymous') FROM people",
  "SELECT COALESCE(NULLIF(nickname, '-'), first_name, 'n/a') FROM people")
g("case-when", "analytics",
  "SELECT id, CASE WHEN total >= 1000 THEN 'gold' WHEN total >= 100 THEN 'silver' ELSE 'bronze' END AS tier FROM customers",
  "SELECT id, CASE WHEN total >= 5000 THEN 'platinum' WHEN total >= 50 THEN 'basic' ELSE 'none' END AS tier FROM customers")
g("date-trunc-group", "analytics",
  "SELECT date_trunc('month', created_at) AS m, count(*) FROM orders GROUP BY 1 ORDER BY 1",
  "SELECT date_trunc('week', created_at) AS m, count(*) FROM orders GROUP BY 1 ORDER BY 1")
g("extract-epoch", "analytics",
  "SELECT EXTRACT(EPOCH FROM (finished_at - started_at)) AS seconds FROM runs WHERE id = 8")

# ---------------------------------------------------------------- comments / whitespace / case
g("comments-orders-by-customer", "misc",
  "SELECT id, total FROM orders WHERE customer_id = 10",
  "-- fetch orders for a customer\nSELECT id, total FROM orders WHERE customer_id = 11",
  "SELECT id, total /* the amount */ FROM orders WHERE customer_id = 12 -- trailing",
  "/* outer /* nested */ still comment */ SELECT id, total FROM orders WHERE customer_id = 13",
  "select   id,\n\ttotal\nfrom    orders\nwhere customer_id=14;")
g("comments-orders-by-customer-with-status", "misc",
  "SELECT id, total FROM orders WHERE customer_id = 10 AND status = 'paid'",
  "SELECT id, total FROM orders WHERE customer_id = 10 AND status = 'refunded' -- status filter")
g("sqlcommenter-traceparent", "misc",
  "SELECT * FROM carts WHERE session_id = 'abc' /*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01',route='%2Fcart'*/",
  "SELECT * FROM carts WHERE session_id = 'def' /*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',route='%2Fcheckout'*/")
g("keyword-case-mixed", "misc",
  "SELECT name FROM products WHERE price < 10 ORDER BY name",
  "select name from products where price < 20 order by name",
  "SeLeCt NAME fRoM Products WhErE Price < 30 OrDeR bY Name")
g("quoted-Products-mixed-case", "misc",
  'SELECT name FROM "Products" WHERE price < 10 ORDER BY name')

# ---------------------------------------------------------------- JSON / JSONB
g("json-arrow-text", "json",
  "SELECT data->>'name' FROM events WHERE data->>'type' = 'signup'",
  "SELECT data->>'email' FROM events WHERE data->>'kind' = 'login'")
g("json-arrow-json", "json",
  "SELECT data->'user'->'address' FROM events WHERE id = 1")
g("json-contains", "json",
  "SELECT id FROM events WHERE data @> '{\"type\":\"signup\"}'",
  "SELECT id FROM events WHERE data @> '{\"type\":\"purchase\",\"currency\":\"EUR\"}'",
  "SELECT id FROM events WHERE data @> $1")
g("json-contained-by", "json",
  "SELECT id FROM events WHERE data <@ '{\"a\":1,\"b\":2}'::jsonb")
g("json-key-exists", "json",
  "SELECT id FROM events WHERE data ? 'email'",
  "SELECT id FROM events WHERE data ? 'phone'")
g("json-any-key-exists", "json",
  "SELECT id FROM events WHERE data ?| array['email', 'phone']",
  "SELECT id FROM events WHERE data ?| array['fax']")
g("json-all-keys-exist", "json",
  "SELECT id FROM events WHERE data ?& array['email', 'phone']")
g("json-path-extract", "json",
  "SELECT data #> '{user,address,city}' FROM events",
  "SELECT data #> '{items,0}' FROM events")
g("json-path-extract-text", "json",
  "SELECT data #>> '{user,address,city}' FROM events")
g("json-jsonb-path-query", "json",
  "SELECT jsonb_path_query(data, '$.items[*].price') FROM orders_json",
  "SELECT jsonb_path_query(data, '$.items[*] ? (@.qty > 2)') FROM orders_json")
g("json-jsonpath-exists-op", "json",
  "SELECT id FROM orders_json WHERE data @? '$.items[*] ? (@.price > 100)'")
g("json-jsonpath-match-op", "json",
  "SELECT id FROM orders_json WHERE data @@ '$.total > 500'")
g("json-set", "json",
  "UPDATE profiles SET settings = jsonb_set(settings, '{theme}', '\"dark\"') WHERE user_id = 5",
  "UPDATE profiles SET settings = jsonb_set(settings, '{notifications,email}', 'false') WHERE user_id = 6")
g("json-concat-update", "json",
  "UPDATE profiles SET settings = settings || '{\"beta\": true}'::jsonb WHERE user_id = 5")
g("json-delete-key", "json",
  "UPDATE profiles SET settings = settings - 'legacy_flag' WHERE user_id = 5")
g("json-array-elements-lateral", "json",
  "SELECT o.id, item->>'sku' AS sku, (item->>'qty')::int AS qty FROM orders_json o, jsonb_array_elements(o.data->'items') AS item WHERE o.id = 100")
g("json-each-text", "json",
  "SELECT key, value FROM jsonb_each_text('{\"a\":\"1\",\"b\":\"2\"}'::jsonb)")
g("json-build-object-agg", "json",
  "SELECT jsonb_build_object('id', u.id, 'email', u.email, 'orders', (SELECT jsonb_agg(o.id) FROM orders o WHERE o.customer_id = u.id)) FROM users u WHERE u.id = 1",
  "SELECT jsonb_build_object('id', u.id, 'email', u.email, 'orders', (SELECT jsonb_agg(o.id) FROM orders o WHERE o.customer_id = u.id)) FROM users u WHERE u.id = $1")
g("json-row-to-json", "json",
  "SELECT row_to_json(t) FROM (SELECT id, name FROM products WHERE id = 3) t")
g("json-agg-postgrest", "json",
  "SELECT coalesce(json_agg(_postgrest_t), '[]') AS body FROM (SELECT \"products\".* FROM \"public\".\"products\" WHERE \"products\".\"id\" = $1) _postgrest_t")

# ---------------------------------------------------------------- CTEs, windows, lateral, set ops
g("cte-simple", "analytics",
  "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '30 days') SELECT customer_id, count(*) FROM recent GROUP BY customer_id",
  "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '7 days') SELECT customer_id, count(*) FROM recent GROUP BY customer_id")
g("cte-materialized", "analytics",
  "WITH recent AS MATERIALIZED (SELECT * FROM orders WHERE created_at > now() - interval '30 days') SELECT customer_id, count(*) FROM recent GROUP BY customer_id")
g("cte-recursive-tree", "analytics",
  "WITH RECURSIVE tree AS (SELECT id, parent_id, name, 1 AS depth FROM categories WHERE id = 1 UNION ALL SELECT c.id, c.parent_id, c.name, t.depth + 1 FROM categories c JOIN tree t ON c.parent_id = t.id) SELECT * FROM tree ORDER BY depth",
  "WITH RECURSIVE tree AS (SELECT id, parent_id, name, 1 AS depth FROM categories WHERE id = 42 UNION ALL SELECT c.id, c.parent_id, c.name, t.depth + 1 FROM categories c JOIN tree t ON c.parent_id = t.id) SELECT * FROM tree ORDER BY depth")
g("cte-recursive-series", "analytics",
  "WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 100) SELECT sum(n) FROM t",
  "WITH RECURSIVE t(n) AS (VALUES (0) UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t")
g("cte-data-modifying", "misc",
  "WITH moved AS (DELETE FROM inbox WHERE received_at < now() - interval '30 days' RETURNING *) INSERT INTO inbox_archive SELECT * FROM moved")
g("window-running-total", "analytics",
  "SELECT customer_id, order_date, amount, SUM(amount) OVER (PARTITION BY customer_id ORDER BY order_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_total FROM orders WHERE order_date >= '2024-01-01'",
  "SELECT customer_id, order_date, amount, SUM(amount) OVER (PARTITION BY customer_id ORDER BY order_date ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_total FROM orders WHERE order_date >= $1")
g("window-row-number-top-n", "analytics",
  "SELECT * FROM (SELECT id, customer_id, total, row_number() OVER (PARTITION BY customer_id ORDER BY total DESC) AS rn FROM orders) ranked WHERE rn <= 3",
  "SELECT * FROM (SELECT id, customer_id, total, row_number() OVER (PARTITION BY customer_id ORDER BY total DESC) AS rn FROM orders) ranked WHERE rn <= 10")
g("window-rank", "analytics",
  "SELECT name, score, rank() OVER (ORDER BY score DESC) FROM players")
g("window-dense-rank", "analytics",
  "SELECT name, score, dense_rank() OVER (ORDER BY score DESC) FROM players")
g("window-lag-lead", "analytics",
  "SELECT day, revenue, revenue - lag(revenue, 1) OVER w AS delta, lead(revenue) OVER w AS next_day FROM daily_sales WINDOW w AS (ORDER BY day)",
  "SELECT day, revenue, revenue - lag(revenue, 7) OVER w AS delta, lead(revenue) OVER w AS next_day FROM daily_sales WINDOW w AS (ORDER BY day)")
g("window-ntile", "analytics",
  "SELECT id, ntile(4) OVER (ORDER BY total) AS quartile FROM customers",
  "SELECT id, ntile(10) OVER (ORDER BY total) AS quartile FROM customers")
g("window-moving-avg-range", "analytics",
  "SELECT day, avg(revenue) OVER (ORDER BY day RANGE BETWEEN INTERVAL '6 days' PRECEDING AND CURRENT ROW) FROM daily_sales",
  "SELECT day, avg(revenue) OVER (ORDER BY day RANGE BETWEEN INTERVAL '29 days' PRECEDING AND CURRENT ROW) FROM daily_sales")
g("agg-filter", "analytics",
  "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) FILTER (WHERE status = 'refunded') AS refunded FROM orders",
  "SELECT count(*) FILTER (WHERE status = 'open') AS paid, count(*) FILTER (WHERE status = 'void') AS refunded FROM orders")
g("agg-percentile", "analytics",
  "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) FROM requests",
  "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM requests")
g("agg-percentile-array", "analytics",
  "SELECT percentile_disc(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY duration_ms) FROM requests")
g("agg-string-agg", "analytics",
  "SELECT team_id, string_agg(name, ', ' ORDER BY name) FROM players GROUP BY team_id",
  "SELECT team_id, string_agg(name, ' | ' ORDER BY name) FROM players GROUP BY team_id")
g("group-by-having", "analytics",
  "SELECT customer_id, count(*) AS n, sum(total) FROM orders GROUP BY customer_id HAVING count(*) > 5 ORDER BY n DESC",
  "SELECT customer_id, count(*) AS n, sum(total) FROM orders GROUP BY customer_id HAVING count(*) > 100 ORDER BY n DESC")
g("group-by-rollup", "analytics",
  "SELECT region, product, sum(amount) FROM sales GROUP BY ROLLUP (region, product)")
g("group-by-cube", "analytics",
  "SELECT region, product, sum(amount) FROM sales GROUP BY CUBE (region, product)")
g("group-by-grouping-sets", "analytics",
  "SELECT region, product, sum(amount), grouping(region, product) FROM sales GROUP BY GROUPING SETS ((region), (product), ())")
g("lateral-top-n", "analytics",
  "SELECT u.id, o.id AS order_id, o.total FROM users u CROSS JOIN LATERAL (SELECT id, total FROM orders WHERE orders.customer_id = u.id ORDER BY created_at DESC LIMIT 3) o",
  "SELECT u.id, o.id AS order_id, o.total FROM users u CROSS JOIN LATERAL (SELECT id, total FROM orders WHERE orders.customer_id = u.id ORDER BY created_at DESC LIMIT 1) o")
g("lateral-left-join", "analytics",
  "SELECT u.id, last_o.created_at FROM users u LEFT JOIN LATERAL (SELECT created_at FROM orders WHERE orders.customer_id = u.id ORDER BY created_at DESC LIMIT 1) last_o ON true")
g("generate-series-dates", "analytics",
  "SELECT d::date, count(o.id) FROM generate_series('2024-01-01'::date, '2024-01-31'::date, '1 day'::interval) d LEFT JOIN orders o ON o.created_at::date = d::date GROUP BY 1 ORDER BY 1",
  "SELECT d::date, count(o.id) FROM generate_series('2023-06-01'::date, '2023-12-31'::date, '1 week'::interval) d LEFT JOIN orders o ON o.created_at::date = d::date GROUP BY 1 ORDER BY 1")
g("distinct-on", "analytics",
  "SELECT DISTINCT ON (customer_id) customer_id, id, created_at FROM orders ORDER BY customer_id, created_at DESC")
g("select-distinct", "analytics",
  "SELECT DISTINCT customer_id FROM orders")
g("union-all", "analytics",
  "SELECT id, 'order' AS kind, created_at FROM orders WHERE customer_id = 5 UNION ALL SELECT id, 'refund' AS kind, created_at FROM refunds WHERE customer_id = 5 ORDER BY created_at DESC",
  "SELECT id, 'o' AS kind, created_at FROM orders WHERE customer_id = 8 UNION ALL SELECT id, 'r' AS kind, created_at FROM refunds WHERE customer_id = 8 ORDER BY created_at DESC")
g("union-distinct", "analytics",
  "SELECT id, 'order' AS kind, created_at FROM orders WHERE customer_id = 5 UNION SELECT id, 'refund' AS kind, created_at FROM refunds WHERE customer_id = 5 ORDER BY created_at DESC")
g("intersect", "analytics",
  "SELECT customer_id FROM orders INTERSECT SELECT customer_id FROM refunds")
g("except", "analytics",
  "SELECT customer_id FROM orders EXCEPT SELECT customer_id FROM refunds")
g("exists-subquery", "misc",
  "SELECT id, email FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id AND o.total > 100)",
  "SELECT id, email FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id AND o.total > 2500.00)")
g("not-exists-subquery", "misc",
  "SELECT id, email FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id AND o.total > 100)")
g("not-in-subquery", "misc",
  "SELECT id FROM users WHERE id NOT IN (SELECT customer_id FROM orders WHERE customer_id IS NOT NULL)")
g("in-subquery", "misc",
  "SELECT id FROM users WHERE id IN (SELECT customer_id FROM orders WHERE total > 50)",
  "SELECT id FROM users WHERE id IN (SELECT customer_id FROM orders WHERE total > 5000)")
g("scalar-subquery", "misc",
  "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.customer_id = u.id) AS order_count FROM users u WHERE u.id < 100",
  "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.customer_id = u.id) AS order_count FROM users u WHERE u.id < 20")
g("join-three-way", "misc",
  "SELECT o.id, c.name, p.title FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id WHERE o.id = 77",
  "SELECT o.id, c.name, p.title FROM orders o JOIN customers c ON c.id = o.customer_id JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id WHERE o.id = $1")
g("join-left-is-null", "misc",
  "SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL")
g("join-full-outer", "misc",
  "SELECT a.id, b.id FROM left_side a FULL OUTER JOIN right_side b ON a.key = b.key")
g("join-using", "misc",
  "SELECT * FROM orders JOIN order_items USING (order_id) WHERE order_id = 3")
g("pgq-limit-offset", "misc",
  "SELECT id, title FROM articles ORDER BY published_at DESC LIMIT 10 OFFSET 0",
  "SELECT id, title FROM articles ORDER BY published_at DESC LIMIT 20 OFFSET 100",
  "SELECT id, title FROM articles ORDER BY published_at DESC LIMIT $1 OFFSET $2")
g("pgq-limit-offset", "misc",
  "SELECT id, title FROM articles ORDER BY published_at DESC LIMIT 10")
g("order-by-asc-nulls-last", "misc",
  "SELECT id, title FROM articles ORDER BY published_at ASC NULLS LAST")
g("keyset-pagination-row", "misc",
  "SELECT id, created_at FROM events WHERE (created_at, id) < ('2024-03-01 10:00:00', 5000) ORDER BY created_at DESC, id DESC LIMIT 50",
  "SELECT id, created_at FROM events WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3")
g("values-standalone", "misc",
  "VALUES (1, 'one'), (2, 'two'), (3, 'three')",
  "VALUES (9, 'nine')")
g("values-join", "misc",
  "SELECT v.id, p.name FROM (VALUES (1), (2), (3)) AS v(id) JOIN products p ON p.id = v.id",
  "SELECT v.id, p.name FROM (VALUES (10), (20)) AS v(id) JOIN products p ON p.id = v.id")
g("multi-row-insert", "misc",
  "INSERT INTO tags (id, name) VALUES (1, 'a'), (2, 'b')",
  "INSERT INTO tags (id, name) VALUES (3, 'c')",
  "INSERT INTO tags (id, name) VALUES ($1, $2), ($3, $4), ($5, $6)")
g("insert-no-column-list", "misc",
  "INSERT INTO tags VALUES (1, 'a')")
g("update-from", "misc",
  "UPDATE orders o SET status = 'shipped' FROM shipments s WHERE s.order_id = o.id AND s.shipped_at IS NOT NULL AND o.status = 'paid'",
  "UPDATE orders o SET status = 'delivered' FROM shipments s WHERE s.order_id = o.id AND s.shipped_at IS NOT NULL AND o.status = 'shipped'")
g("delete-using", "misc",
  "DELETE FROM order_items oi USING orders o WHERE oi.order_id = o.id AND o.status = 'cancelled'")
g("delete-older-than", "misc",
  "DELETE FROM sessions WHERE expires_at < now()")
g("text-search", "misc",
  "SELECT id, ts_rank(search_vector, q) AS rank FROM articles, to_tsquery('english', 'postgres & proxy') q WHERE search_vector @@ q ORDER BY rank DESC LIMIT 10",
  "SELECT id, ts_rank(search_vector, q) AS rank FROM articles, to_tsquery('english', 'rust') q WHERE search_vector @@ q ORDER BY rank DESC LIMIT 25")
g("collate-order", "misc",
  "SELECT name FROM people ORDER BY name COLLATE \"C\"")
g("uuid-lookup", "misc",
  "SELECT * FROM api_keys WHERE id = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
  "SELECT * FROM api_keys WHERE id = $1::uuid")
g("gen-random-uuid-insert", "misc",
  "INSERT INTO api_keys (id, owner_id, created_at) VALUES (gen_random_uuid(), 5, now()) RETURNING id")
g("tablesample", "analytics",
  "SELECT * FROM events TABLESAMPLE SYSTEM (1)",
  "SELECT * FROM events TABLESAMPLE SYSTEM (0.5)")
g("count-estimate-reltuples", "misc",
  "SELECT reltuples::bigint AS estimate FROM pg_class WHERE relname = 'events'",
  "SELECT reltuples::bigint AS estimate FROM pg_class WHERE relname = 'orders'")
g("information-schema-columns", "misc",
  "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'users' ORDER BY ordinal_position",
  "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'orders' ORDER BY ordinal_position")
g("sleep", "misc",
  "SELECT pg_sleep(1)",
  "SELECT pg_sleep(0.25)")
g("now-function", "misc",
  "SELECT now()")
g("txid-current", "misc",
  "SELECT txid_current()")


# ---------------------------------------------------------------- more pg_query-specific equivalences
# Group ids starting with "pgq-" hold queries that pg_query fingerprints
# together although a purely token-based normalisation (constants -> ?,
# identifiers and keywords kept) would not.  See the module docstring.
g("pgq-django-server-side-cursor-declare", "django",
  'DECLARE "_django_curs_139912345678_sync_1" NO SCROLL CURSOR WITH HOLD FOR SELECT "blog_post"."id", "blog_post"."title" FROM "blog_post" ORDER BY "blog_post"."id" ASC',
  'DECLARE "_django_curs_140055512345_sync_3" NO SCROLL CURSOR WITH HOLD FOR SELECT "blog_post"."id", "blog_post"."title" FROM "blog_post" ORDER BY "blog_post"."id" ASC')
g("pgq-django-server-side-cursor-fetch", "django",
  'FETCH FORWARD 2000 FROM "_django_curs_139912345678_sync_1"',
  'FETCH FORWARD 2000 FROM "_django_curs_140055512345_sync_3"')
# Booleans are A_Const nodes in pg_query (PG15+ parse trees).
g("pgq-rails-users-active-bool", "rails",
  'SELECT "users".* FROM "users" WHERE "users"."active" = $1',
  'SELECT "users".* FROM "users" WHERE "users"."active" = TRUE',
  'SELECT "users".* FROM "users" WHERE "users"."active" = FALSE')
# psycopg2 interpolates None as NULL: pg_query treats NULL as a constant.
g("pgq-sqla-users-insert-returning", "sqlalchemy",
  "INSERT INTO users (name, fullname) VALUES ('squidward', NULL) RETURNING users.id",
  "INSERT INTO users (name, fullname) VALUES ('sandy', 'Sandy Cheeks') RETURNING users.id",
  "INSERT INTO users (name, fullname) VALUES ($1, $2) RETURNING users.id")
# pg_query: `x = $1`, `x IN (...)` and `x = ANY($1)` all fingerprint alike.
g("pgq-any-vs-in-list", "pgx",
  "SELECT id, name FROM items WHERE id = ANY($1)",
  "SELECT id, name FROM items WHERE id = ANY('{1,2,3}')",
  "SELECT id, name FROM items WHERE id IN (1, 2, 3)",
  "SELECT id, name FROM items WHERE id = $1")
# pg_query ignores select-list aliases (Hibernate 5 alias suffixes shift when
# entity mappings change between deploys).
g("pgq-hibernate5-alias-suffix", "hibernate",
  "select product0_.id as id1_4_, product0_.sku as sku2_4_ from products product0_ where product0_.sku=$1",
  "select product0_.id as id1_7_, product0_.sku as sku2_7_ from products product0_ where product0_.sku=$1")
# pg_query sorts AND/OR operands.
g("pgq-and-operand-order", "misc",
  "SELECT id FROM tickets WHERE project_id = 3 AND state = 'open'",
  "SELECT id FROM tickets WHERE state = 'open' AND project_id = 3")
# SET values are constants even when written as bare words; `=` and TO are
# the same statement.  (Schema-per-tenant apps switch search_path per request.)
g("pgq-set-search-path-tenant", "rails",
  "SET search_path TO tenant_acme, public",
  "SET search_path TO tenant_globex, public",
  "SET search_path = 'tenant_initech', 'public'")
# pg_query ignores runs of 2+ digits in relation names (time partitions).
g("pgq-partition-digits", "analytics",
  "SELECT count(*) FROM events_2024_01 WHERE kind = 'click'",
  "SELECT count(*) FROM events_2024_02 WHERE kind = 'view'")
# A cast of a constant or parameter is dropped by pg_query.
g("pgq-const-cast-dropped", "asyncpg",
  "SELECT id FROM sessions WHERE token = $1::text AND expires_at > $2::timestamptz",
  "SELECT id FROM sessions WHERE token = 'abc' AND expires_at > '2024-06-01 00:00:00+00'")

# ---------------------------------------------------------------- whitespace / case / comment / constant variants
# Second members for statements above that would otherwise be singletons.
g("pgbench-count-branches", "pgbench",
  "SELECT count(*) FROM pgbench_branches;")
g("pgbench-init-truncate", "pgbench",
  "TRUNCATE TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers;")
g("pgbench-init-vacuum", "pgbench",
  "VACUUM ANALYZE pgbench_branches")
g("pgbench-init-pkey-branches", "pgbench",
  "ALTER TABLE pgbench_branches ADD PRIMARY KEY (bid);")
g("set-lock-timeout", "misc",
  "SET lock_timeout = '3s'")
g("set-idle-in-txn-timeout", "misc",
  "SET idle_in_transaction_session_timeout = '60s'")
g("show-search-path", "psql",
  "show search_path;")
g("reset-all", "misc",
  "reset all;")
g("django-blog-post-count-all", "django",
  'SELECT COUNT(*) AS "__count" FROM "blog_post";')
g("django-session-update", "django",
  'UPDATE "django_session" SET "session_data" = \'.eJxVjEEOgjAQRe_StSFQp0Nx6d4zNNPOVFDTJhRWxrsLCQvd_vfef6tA6zKGtcocJlYX5dTpd4uUnlJ2wA8q96pTLcs8Rb0r-qBV3yrL63q4fwcj1XGryYJQT2fD3tjBg0jbA8QujYmtg0yx8c5mQZ-5E2LjIyYPuWXX4CDq8wXmUDdP\', "expire_date" = \'2024-04-01T00:00:00+00:00\'::timestamptz WHERE "django_session"."session_key" = \'q1w2e3r4t5y6\'')
g("django-add-fk-constraint", "django",
  'ALTER TABLE "blog_post" ADD CONSTRAINT "blog_post_author_id_dd7a8485_fk_auth_user_id" FOREIGN KEY ("author_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;')
g("sqla-delete-users", "sqlalchemy",
  "DELETE FROM users WHERE users.name = $1")
g("sqla-exists-subquery", "sqlalchemy",
  "SELECT users.name FROM users WHERE EXISTS (SELECT addresses.id FROM addresses WHERE addresses.user_id = users.id AND addresses.email_address LIKE $1)")
g("rails-users-exists-email-lower", "rails",
  'SELECT 1 AS one FROM "users" WHERE LOWER("users"."email") = LOWER(\'Jane@Example.com\') LIMIT 1')
g("rails-posts-destroy", "rails",
  'DELETE FROM "posts" WHERE "posts"."id" = 3 /*application:Blog,controller:posts,action:destroy*/')
g("rails-find-each-first-batch", "rails",
  'SELECT "users".* FROM "users" ORDER BY "users"."id" ASC LIMIT 1000')
g("rails-advisory-unlock", "rails",
  "SELECT pg_advisory_unlock(2)")
g("prisma-user-update", "prisma",
  'UPDATE "public"."User" SET "name" = \'Bob\' WHERE ("public"."User"."id" = 7 AND 1=1)')
g("prisma-user-delete", "prisma",
  'DELETE FROM "public"."User" WHERE ("public"."User"."id" = 7 AND 1=1)')
g("hibernate6-user-by-email", "hibernate",
  "select u1_0.id,u1_0.email,u1_0.name from users u1_0 where u1_0.email='a@b.c'")
g("hibernate-user-update", "hibernate",
  "update users set email='n@ex.com',name='New' where id=501")
g("hibernate-user-delete", "hibernate",
  "delete from users where id=501")
g("hibernate-pessimistic-lock", "hibernate",
  "select a1_0.id,a1_0.balance from accounts a1_0 where a1_0.id=9 for no key update")
g("typeorm-user-update", "typeorm",
  'UPDATE "user" SET "age" = $1 WHERE "id" IN ($2, $3, $4)')
g("typeorm-migrations-insert", "typeorm",
  'INSERT INTO "migrations"("timestamp", "name") VALUES (1700000000000, \'InitSchema1700000000000\')')
g("sequelize-user-count", "sequelize",
  'SELECT count(*) AS "count" FROM "Users" AS "User"')
g("sequelize-show-all-tables", "sequelize",
  "SELECT table_name FROM information_schema.tables WHERE table_schema = 'app' AND table_type LIKE '%TABLE' AND table_name != 'spatial_ref_sys'")
g("gorm-soft-delete", "gorm",
  'UPDATE "products" SET "deleted_at"=\'2024-05-01 10:00:00.123\' WHERE "products"."id" = 3 AND "products"."deleted_at" IS NULL')
g("current-database", "misc",
  "select current_database();")
g("pgdump-copy-users-from-stdin", "psql",
  "copy public.users (id, name, email, created_at) from stdin")
g("pgdump-lock-table", "pg_dump",
  "LOCK TABLE public.users IN ACCESS SHARE MODE;")
g("mig-add-column-if-not-exists", "migration",
  "alter table orders add column if not exists note text;")
g("mig-drop-index-concurrently", "migration",
  "DROP INDEX CONCURRENTLY IF EXISTS idx_orders_customer_id;")
g("mig-validate-constraint", "migration",
  "ALTER TABLE orders VALIDATE CONSTRAINT fk_orders_customer;")
g("mig-set-not-null", "migration",
  "alter table users alter column email set not null")
g("mig-create-partition", "migration",
  "CREATE TABLE measurement_y2024m01 PARTITION OF measurement FOR VALUES FROM ('2024-03-01') TO ('2024-04-01')")
g("mig-refresh-matview", "migration",
  "refresh materialized view concurrently daily_sales;")
g("mig-create-sql-function", "migration",
  "CREATE FUNCTION add_tax(amount numeric) RETURNS numeric AS $$ SELECT amount * 1.25 $$ LANGUAGE sql IMMUTABLE")
g("mig-create-schema", "migration",
  "create schema if not exists analytics;")
g("admin-explain-plain", "psql",
  "explain select * from orders where customer_id = 1")
g("admin-terminate-backend", "psql",
  "SELECT pg_terminate_backend($1)")
g("two-phase-commit", "misc",
  "COMMIT PREPARED 'tx-2024-0002'")
g("select-for-share", "misc",
  "SELECT * FROM accounts WHERE id = $1 FOR SHARE")
g("upsert-on-constraint", "misc",
  "INSERT INTO user_roles (user_id, role_id) VALUES (3, 4), (3, 5) ON CONFLICT ON CONSTRAINT user_roles_pkey DO NOTHING")
g("merge-into", "misc",
  "merge into inventory as t using incoming as s on t.sku = s.sku\nwhen matched then update set qty = t.qty + s.qty\nwhen not matched then insert (sku, qty) values (s.sku, s.qty)")
g("regex-not-match", "misc",
  "SELECT id FROM people WHERE email !~ '^admin'")
g("like-pattern", "misc",
  "SELECT id, name FROM people WHERE name LIKE 'A%'")
g("not-ilike-pattern", "misc",
  "SELECT id, name FROM people WHERE name NOT ILIKE $1")
g("extract-epoch", "analytics",
  "SELECT EXTRACT(EPOCH FROM (finished_at - started_at)) AS seconds FROM runs WHERE id = $1")
g("json-arrow-json", "json",
  "SELECT data->'account'->'billing' FROM events WHERE id = 2")
g("json-path-extract-text", "json",
  "SELECT data #>> '{meta,source}' FROM events")
g("json-jsonpath-exists-op", "json",
  "SELECT id FROM orders_json WHERE data @? '$.items[*] ? (@.price > 5)'")
g("json-jsonpath-match-op", "json",
  "SELECT id FROM orders_json WHERE data @@ '$.total < 10'")
g("json-delete-key", "json",
  "UPDATE profiles SET settings = settings - 'old_ui' WHERE user_id = 9")
g("json-row-to-json", "json",
  "SELECT row_to_json(t) FROM (SELECT id, name FROM products WHERE id = $1) t")
g("cte-data-modifying", "misc",
  "WITH moved AS (DELETE FROM inbox WHERE received_at < now() - interval '1 year' RETURNING *) INSERT INTO inbox_archive SELECT * FROM moved")
g("window-rank", "analytics",
  "select name, score, rank() over (order by score desc) from players;")
g("agg-percentile-array", "analytics",
  "SELECT percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY duration_ms) FROM requests")
g("union-distinct", "analytics",
  "SELECT id, 'o' AS kind, created_at FROM orders WHERE customer_id = $1 UNION SELECT id, 'r' AS kind, created_at FROM refunds WHERE customer_id = $2 ORDER BY created_at DESC")
g("not-exists-subquery", "misc",
  "SELECT id, email FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = u.id AND o.total > $1)")
g("join-using", "misc",
  "SELECT * FROM orders JOIN order_items USING (order_id) WHERE order_id = 4")
g("insert-no-column-list", "misc",
  "INSERT INTO tags VALUES (2, 'b'), (3, 'c')")
g("delete-using", "misc",
  "DELETE FROM order_items oi USING orders o WHERE oi.order_id = o.id AND o.status = 'refunded'")
g("gen-random-uuid-insert", "misc",
  "INSERT INTO api_keys (id, owner_id, created_at) VALUES (gen_random_uuid(), $1, now()) RETURNING id")
g("quoted-Products-mixed-case", "misc",
  'select name from "Products" where price < 99 order by name')
g("array-contained-by", "misc",
  "SELECT id FROM items WHERE tags <@ '{x}'::text[]")
g("json-contained-by", "json",
  "SELECT id FROM events WHERE data <@ '{\"plan\":\"free\"}'::jsonb")
g("json-concat-update", "json",
  "UPDATE profiles SET settings = settings || '{\"lang\": \"de\"}'::jsonb WHERE user_id = 11")
g("json-all-keys-exist", "json",
  "SELECT id FROM events WHERE data ?& array['sku']")


HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = os.path.join(HERE, "queries.jsonl")
FINGERPRINTS = os.path.join(HERE, "pg_query_fingerprints.jsonl")


def write_corpus():
    seen = {}
    for e in ENTRIES:
        if e["sql"] in seen:
            raise SystemExit("duplicate sql text (groups %r / %r): %r"
                             % (seen[e["sql"]], e["group"], e["sql"]))
        seen[e["sql"]] = e["group"]
    with open(QUERIES, "w", encoding="utf-8") as f:
        for e in ENTRIES:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    groups = {e["group"] for e in ENTRIES}
    print("wrote %d entries in %d groups to %s" % (len(ENTRIES), len(groups), QUERIES))


def pg_query_fingerprints():
    import pglast
    from pglast.parser import fingerprint
    return pglast.__version__, {e["sql"]: fingerprint(e["sql"]) for e in ENTRIES}


def check():
    version, fps = pg_query_fingerprints()
    by_group, by_fp = {}, {}
    for e in ENTRIES:
        fp = fps[e["sql"]]
        by_group.setdefault(e["group"], set()).add(fp)
        by_fp.setdefault(fp, set()).add(e["group"])
    split = sorted(g for g, s in by_group.items() if len(s) > 1)
    merged = sorted(sorted(s) for s in by_fp.values() if len(s) > 1)
    for g in split:
        print("group with several pg_query fingerprints:", g)
    for gs in merged:
        print("groups sharing one pg_query fingerprint:", gs)
    print("pglast %s: %d entries, %d groups, %d split, %d merged"
          % (version, len(ENTRIES), len(by_group), len(split), len(merged)))
    return 1 if split or merged else 0


def write_fingerprints(key):
    version, fps = pg_query_fingerprints()
    old = {}
    if os.path.exists(FINGERPRINTS):
        with open(FINGERPRINTS, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                old[row["sql"]] = row
    with open(FINGERPRINTS, "w", encoding="utf-8") as f:
        for e in ENTRIES:
            row = {"sql": e["sql"]}
            row.update({k: v for k, v in old.get(e["sql"], {}).items() if k != "sql"})
            row[key] = fps[e["sql"]]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print("set %r (pglast %s) for %d entries in %s" % (key, version, len(ENTRIES), FINGERPRINTS))


def main():
    args = sys.argv[1:]
    if not args:
        write_corpus()
    elif args == ["check"]:
        sys.exit(check())
    elif len(args) == 2 and args[0] == "fingerprints":
        write_fingerprints(args[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
