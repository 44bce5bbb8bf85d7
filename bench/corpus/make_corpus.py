#!/usr/bin/env python3
"""Build the fingerprint *measuring* corpus and its reference grouping (libpg_query via pglast).

This corpus is kept apart from the one the fingerprint rules are tuned on
(advisor/tests/corpus/): nothing here was looked at while writing the rules, and no rule may be
tuned to a query of it. Its queries are generated, deterministically (fixed seeds):

  * orm.jsonl: SQL shaped as SQLAlchemy, Django, ActiveRecord, Sequelize and Prisma send it
    (as it reaches PostgreSQL: client-side interpolation such as psycopg2's %s or JDBC's ? arrives
    as literals, server-side binding as $n), then variants of each: other constants, casts added
    (::type, CAST(.. AS ..), typed literals), IN lists lengthened, NULL items, E'' and dollar-quoted
    strings, negative numbers, more VALUES rows.
  * external.jsonl (optional, `--external DIR`): statements of PostgreSQL's regression suite and
    libpg_query's fingerprint tests, read from a libpg_query checkout (test/sql/postgres_regress,
    test/fingerprint_tests.c), with the same kinds of variants. Not written into the repository:
    it is text of those projects; give `--out` a path outside the repository and point the
    agreement test at it with PGVISOR_EXTRA_CORPUS.

Each line: {"source", "base", "sql", "pg_query", "adjusted"}.
  pg_query  libpg_query's fingerprint (pglast.parser.fingerprint), 16 hex digits.
  adjusted  a hash of pg_query's fingerprint together with the parts of the statement that
            pgvisor keeps apart on purpose (docs/fingerprints.md, "Deliberate differences"):
            the kind of each comparison (`= $1`, `IN (...)`, `= ANY(...)`) with its operator and
            left column, in written order (pg_query sorts AND/OR operands), and each function
            call's name and number of arguments (pg_query ignores constant arguments). Two
            queries share `adjusted` when pg_query groups them and they differ in none of those.

Usage (pglast is only needed here, never in CI):
  python3 -m venv /tmp/pglast-venv && /tmp/pglast-venv/bin/pip install pglast
  /tmp/pglast-venv/bin/python bench/corpus/make_corpus.py                # writes bench/corpus/orm.jsonl
  /tmp/pglast-venv/bin/python bench/corpus/make_corpus.py --external /path/to/libpg_query --out /tmp/external.jsonl
  /tmp/pglast-venv/bin/python bench/corpus/make_corpus.py --external /path/to/libpg_query \
      --development /tmp/external.jsonl --out /tmp/development.jsonl   # PGVISOR_DEVELOPMENT_CORPUS
"""
import argparse
import hashlib
import json
import os
import random
import re
import sys

from pglast.parser import fingerprint, parse_sql_json, scan, split

HERE = os.path.dirname(os.path.abspath(__file__))


# ------------------------------------------------------------------ reference grouping
def deliberate_signature(sql):
    """What pgvisor keeps apart on purpose and pg_query does not (see the module doc)."""
    out = []

    def colref(node):
        if isinstance(node, dict) and "ColumnRef" in node:
            return ".".join(f.get("String", {}).get("sval", "*") for f in node["ColumnRef"].get("fields", []))
        return ""

    def constant(node):
        if isinstance(node, dict) and "TypeCast" in node:
            node = node["TypeCast"].get("arg")
        return isinstance(node, dict) and ("A_Const" in node or "ParamRef" in node)

    def columns(node):
        found = []

        def collect(n):
            if isinstance(n, dict):
                if "ColumnRef" in n:
                    found.append(colref(n))
                for v in n.values():
                    collect(v)
            elif isinstance(n, list):
                for v in n:
                    collect(v)

        collect(node)
        return found

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "A_Expr" and isinstance(value, dict):
                    names = ".".join(n.get("String", {}).get("sval", "") for n in value.get("name", []))
                    out.append(("expr", value.get("kind"), names, colref(value.get("lexpr"))))
                elif key == "FuncCall" and isinstance(value, dict):
                    names = ".".join(n.get("String", {}).get("sval", "") for n in value.get("funcname", []))
                    # pgvisor keeps constant arguments as placeholders, in place: their number and
                    # positions count (pg_query drops them).
                    out.append(("call", names, "".join("c" if constant(a) else "x" for a in value.get("args", []))))
                elif key == "BoolExpr" and isinstance(value, dict):
                    # pgvisor does not reorder AND / OR operands (pg_query sorts them): the columns
                    # each operand names, in written order.
                    out.append(("bool", value.get("boolop"), [columns(a) for a in value.get("args", [])]))
                elif key == "RangeVar" and isinstance(value, dict) and value.get("alias"):
                    # pg_query hashes an aliased relation by its alias alone; pgvisor keeps the
                    # table (as it reads it: runs of two or more digits ignored, as pg_query does).
                    out.append(("aliased", re.sub(r"[0-9]{2,}", "", value.get("relname", ""))))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(parse_sql_json(sql)))
    return out


def reference(sql):
    """(pg_query fingerprint, adjusted key) or None when PostgreSQL's grammar rejects `sql`."""
    try:
        fp = fingerprint(sql)
        sig = deliberate_signature(sql)
    except Exception:
        return None
    adjusted = hashlib.sha256(json.dumps([fp, sig]).encode()).hexdigest()[:16]
    return fp, adjusted


# ------------------------------------------------------------------ constants, rendered variously
class Style:
    """How one variant writes its constants."""

    def __init__(self, rng, plain=False):
        self.rng = rng
        self.plain = plain

    def pick(self, *options):
        return self.rng.choice(options)

    def int(self, lo=1, hi=100000):
        v = self.rng.randint(lo, hi)
        if self.plain:
            return str(v)
        return self.pick(str(v), str(v), f"{v}::int", f"{v}::integer", f"'{v}'::int", f"CAST({v} AS integer)",
                         f"int '{v}'", f"{v}::bigint", f"-{v}")

    def text(self):
        word = self.rng.choice(["alice", "bob", "o'brien", "x y", "ünï", "paid", "new", "a\\b", ""])
        q = word.replace("'", "''")
        if self.plain:
            return f"'{q}'"
        return self.pick(f"'{q}'", f"'{q}'", f"'{q}'::text", f"'{q}'::varchar", f"E'{q.replace(chr(92), chr(92) * 2)}'",
                         f"$${word}$$" if "$$" not in word else f"'{q}'", f"$q${word}$q$", f"CAST('{q}' AS text)",
                         f"text '{q}'")

    def ts(self):
        d = f"2024-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"
        if self.plain:
            return f"'{d} 10:00:00+00'"
        return self.pick(f"'{d} 10:00:00+00'", f"'{d}'::timestamptz", f"timestamp '{d} 10:00:00'",
                         f"CAST('{d}' AS timestamp with time zone)", f"'{d}'::date")

    def bool(self):
        return self.pick("true", "false", "TRUE", "'t'::boolean") if not self.plain else "true"

    def item(self, kind):
        return {"n": self.int, "s": self.text, "t": self.ts, "b": self.bool}[kind]()

    def in_list(self, kind, nulls=True):
        n = 1 if self.plain else self.rng.choice([1, 2, 3, 5, 10, 40, 200])
        items = [self.item(kind) for _ in range(n)]
        if not self.plain and nulls and n > 1 and self.rng.random() < 0.3:
            items[self.rng.randrange(n)] = "NULL"
        return ", ".join(items)

    def rows(self, kinds):
        n = 1 if self.plain else self.rng.choice([1, 2, 3, 10, 50])
        rows = []
        for _ in range(n):
            cells = [self.item(k) for k in kinds]
            if not self.plain and self.rng.random() < 0.2:
                cells[self.rng.randrange(len(cells))] = "NULL"
            rows.append("(" + ", ".join(cells) + ")")
        return ", ".join(rows)


SLOT = re.compile(r"\{(n|s|t|b|L:[nst]|R:[nstb]+|P)\}")


def render(template, style):
    counter = [0]

    def fill(m):
        slot = m.group(1)
        if slot == "P":
            counter[0] += 1
            return f"${counter[0]}"
        if slot.startswith("L:"):
            return style.in_list(slot[2])
        if slot.startswith("R:"):
            return style.rows(slot[2:])
        return style.item(slot)

    return SLOT.sub(fill, template)


# ------------------------------------------------------------------ ORM-shaped templates
def orm_templates():
    t = {}
    t["django"] = [
        'SELECT "shop_order"."id", "shop_order"."user_id", "shop_order"."total", "shop_order"."created_at" FROM "shop_order" WHERE "shop_order"."user_id" = {n} ORDER BY "shop_order"."created_at" DESC LIMIT 21',
        'SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."email" FROM "auth_user" WHERE "auth_user"."username" = {s} LIMIT 21',
        'SELECT "shop_item"."id", "shop_item"."order_id", "shop_item"."sku" FROM "shop_item" WHERE "shop_item"."order_id" IN ({L:n})',
        'SELECT COUNT(*) AS "__count" FROM "shop_order" WHERE ("shop_order"."status" = {s} AND "shop_order"."created_at" >= {t})',
        'INSERT INTO "shop_order" ("user_id", "total", "status", "created_at") VALUES ({n}, {n}, {s}, {t}) RETURNING "shop_order"."id"',
        'INSERT INTO "shop_item" ("order_id", "sku", "qty") VALUES {R:nsn}',
        'UPDATE "shop_order" SET "status" = {s}, "updated_at" = {t} WHERE "shop_order"."id" = {n}',
        'DELETE FROM "django_session" WHERE "django_session"."expire_date" < {t}',
        'SELECT "django_session"."session_key", "django_session"."session_data", "django_session"."expire_date" FROM "django_session" WHERE ("django_session"."expire_date" > {t} AND "django_session"."session_key" = {s}) LIMIT 21',
        'SELECT (1) AS "a" FROM "shop_order" WHERE "shop_order"."id" = {n} LIMIT 1',
        'SELECT "shop_order"."id", "auth_user"."email" FROM "shop_order" INNER JOIN "auth_user" ON ("shop_order"."user_id" = "auth_user"."id") WHERE ("auth_user"."is_active" AND "shop_order"."total" > {n}) ORDER BY "shop_order"."id" ASC LIMIT 50 OFFSET {n}',
        'SELECT "shop_order"."status", SUM("shop_order"."total") AS "total__sum" FROM "shop_order" WHERE "shop_order"."status" IN ({L:s}) GROUP BY "shop_order"."status"',
    ]
    t["sqlalchemy"] = [
        "SELECT users.id AS users_id, users.name AS users_name, users.email AS users_email FROM users WHERE users.id = {n}",
        "SELECT users.id AS users_id, users.name AS users_name FROM users WHERE users.name = {P} LIMIT {P} OFFSET {P}",
        "SELECT addresses.id AS addresses_id, addresses.user_id AS addresses_user_id, addresses.email_address AS addresses_email_address FROM addresses WHERE addresses.user_id IN ({L:n})",
        "INSERT INTO users (name, email, created_at) VALUES ({s}, {s}, {t}) RETURNING users.id",
        "INSERT INTO addresses (user_id, email_address) VALUES {R:ns}",
        "UPDATE users SET name={s}, updated_at={t} WHERE users.id = {n}",
        "DELETE FROM addresses WHERE addresses.id = {n}",
        "SELECT count(*) AS count_1 FROM (SELECT users.id AS users_id FROM users WHERE users.created_at > {t}) AS anon_1",
        "SELECT users.id, users.name, anon_1.n FROM users JOIN (SELECT addresses.user_id AS user_id, count(*) AS n FROM addresses GROUP BY addresses.user_id) AS anon_1 ON users.id = anon_1.user_id WHERE anon_1.n > {n}",
        "SELECT users.id AS users_id FROM users WHERE users.id = ANY ({P}::INTEGER[])",
        "SELECT users.id AS users_id FROM users WHERE users.status IN ({L:s}) AND users.deleted_at IS NULL ORDER BY users.id LIMIT {n}",
        "SELECT pg_catalog.pg_class.relname FROM pg_catalog.pg_class JOIN pg_catalog.pg_namespace ON pg_catalog.pg_namespace.oid = pg_catalog.pg_class.relnamespace WHERE pg_catalog.pg_class.relname = {s} AND pg_catalog.pg_class.relkind = ANY (ARRAY[{L:s}])",
    ]
    t["activerecord"] = [
        'SELECT "users".* FROM "users" WHERE "users"."id" = {P} LIMIT {P}',
        'SELECT "users".* FROM "users" WHERE "users"."id" = {n} LIMIT {n}',
        'SELECT "posts".* FROM "posts" WHERE "posts"."user_id" IN ({L:n})',
        'SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = {n} AND "posts"."published" = {b} ORDER BY "posts"."created_at" DESC LIMIT {n} OFFSET {n}',
        'INSERT INTO "posts" ("title", "body", "user_id", "created_at", "updated_at") VALUES ({s}, {s}, {n}, {t}, {t}) RETURNING "id"',
        'UPDATE "posts" SET "title" = {s}, "updated_at" = {t} WHERE "posts"."id" = {n}',
        'DELETE FROM "comments" WHERE "comments"."post_id" = {n}',
        'SELECT COUNT(*) FROM "comments" WHERE "comments"."post_id" = {n}',
        'SELECT 1 AS one FROM "users" WHERE "users"."email" = {s} LIMIT {n}',
        'SELECT "tags".* FROM "tags" INNER JOIN "taggings" ON "tags"."id" = "taggings"."tag_id" WHERE "taggings"."taggable_id" = {n} AND "taggings"."taggable_type" = {s}',
        'SELECT "schema_migrations"."version" FROM "schema_migrations" ORDER BY "schema_migrations"."version" ASC',
        'INSERT INTO "taggings" ("tag_id","taggable_id","taggable_type") VALUES {R:nns} ON CONFLICT ("tag_id","taggable_id") DO NOTHING RETURNING "id"',
    ]
    t["sequelize"] = [
        'SELECT "id", "name", "email", "createdAt", "updatedAt" FROM "Users" AS "User" WHERE "User"."id" = {n};',
        'SELECT "id", "title", "UserId" FROM "Posts" AS "Post" WHERE "Post"."UserId" IN ({L:n});',
        'SELECT "User"."id", "User"."name", "Posts"."id" AS "Posts.id", "Posts"."title" AS "Posts.title" FROM "Users" AS "User" LEFT OUTER JOIN "Posts" AS "Posts" ON "User"."id" = "Posts"."UserId" WHERE "User"."name" = {s};',
        'INSERT INTO "Users" ("id","name","email","createdAt","updatedAt") VALUES (DEFAULT,{P},{P},{P},{P}) RETURNING "id","name","email","createdAt","updatedAt";',
        'INSERT INTO "Posts" ("id","title","UserId","createdAt","updatedAt") VALUES {R:nsntt} RETURNING "id","title","UserId","createdAt","updatedAt";',
        'UPDATE "Users" SET "name"={s},"updatedAt"={t} WHERE "id" = {n}',
        'DELETE FROM "Posts" WHERE "id" IN ({L:n})',
        'SELECT count(*) AS "count" FROM "Posts" AS "Post" WHERE "Post"."UserId" = {n};',
        'SELECT "id", "name" FROM "Users" AS "User" ORDER BY "User"."createdAt" DESC LIMIT {n} OFFSET {n};',
        'SELECT "id" FROM "Users" AS "User" WHERE ("User"."deletedAt" IS NULL AND ("User"."email" ILIKE {s} OR "User"."name" ILIKE {s}));',
        'SELECT "id", "status" FROM "Orders" AS "Order" WHERE "Order"."status" IN ({L:s}) AND "Order"."total" BETWEEN {n} AND {n};',
    ]
    t["prisma"] = [
        'SELECT "public"."User"."id", "public"."User"."email", "public"."User"."name" FROM "public"."User" WHERE "public"."User"."email" = $1 LIMIT $2 OFFSET $3',
        'SELECT "public"."Post"."id", "public"."Post"."title", "public"."Post"."authorId" FROM "public"."Post" WHERE "public"."Post"."authorId" IN ({L:n}) OFFSET $1',
        'SELECT "public"."Post"."id", "public"."Post"."title" FROM "public"."Post" WHERE ("public"."Post"."published" = $1 AND "public"."Post"."authorId" = $2) ORDER BY "public"."Post"."createdAt" DESC LIMIT $3 OFFSET $4',
        'INSERT INTO "public"."User" ("email","name") VALUES ($1,$2) RETURNING "public"."User"."id", "public"."User"."email", "public"."User"."name"',
        'UPDATE "public"."User" SET "name" = $1 WHERE ("public"."User"."id" = $2 AND 1=1) RETURNING "public"."User"."id"',
        'DELETE FROM "public"."Post" WHERE ("public"."Post"."id" = $1 AND 1=1)',
        'SELECT COUNT(*) AS "_count._all" FROM (SELECT "public"."Post"."id" FROM "public"."Post" WHERE "public"."Post"."published" = $1 OFFSET $2) AS "sub"',
        'SELECT "public"."User"."id", "public"."User"."email" FROM "public"."User" WHERE "public"."User"."id" IN ({L:n}) OFFSET {n}',
        'INSERT INTO "public"."Tag" ("name") VALUES {R:s} ON CONFLICT DO NOTHING',
        'SELECT "public"."Profile"."id", "public"."Profile"."bio" FROM "public"."Profile" WHERE "public"."Profile"."userId" = {n} LIMIT {n}',
    ]
    return t


def orm_corpus(variants_per_template=14):
    rng = random.Random(20240521)
    out = []
    for source, templates in orm_templates().items():
        for k, template in enumerate(templates):
            base = f"{source}-{k}"
            seen = set()
            for v in range(variants_per_template + 1):
                style = Style(rng, plain=(v == 0))
                sql = render(template, style)
                if sql in seen:
                    continue
                seen.add(sql)
                out.append({"source": source, "base": base, "sql": sql})
    return out


# ------------------------------------------------------------------ variants of existing SQL
def variant(sql, rng):
    """`sql` with its constants rewritten the ways the corpus varies them; None if unchanged."""
    try:
        toks = scan(sql)
    except Exception:
        return None
    pieces, pos, changed = [], 0, False
    for i, tok in enumerate(toks):
        start, end = tok.start, tok.end + 1
        prev = toks[i - 1].name if i > 0 else ""
        nxt = toks[i + 1].name if i + 1 < len(toks) else ""
        text = sql[start:end]
        new = text
        if tok.name == "ICONST" and prev != "TYPECAST" and nxt not in ("TYPECAST", "ASCII_46"):
            v = rng.randint(0, 100000)
            new = rng.choice([str(v), f"{v}::int", f"CAST({v} AS integer)",
                              f"-{v}" if prev in ("ASCII_61", "ASCII_40", "ASCII_44") else str(v)])
        elif tok.name == "SCONST" and text.startswith("'") and prev not in ("TYPECAST", "IDENT") and nxt != "TYPECAST":
            body = text[1:-1]
            if "\\" not in body and "$" not in body:
                new = rng.choice([text, f"E{text}", f"$${body.replace(chr(39) * 2, chr(39))}$$", f"{text}::text"])
        elif tok.name == "ASCII_40" and prev == "IN_P":
            # Lengthen an IN list of constants: copy its first item a few times.
            j = i + 1
            while j < len(toks) and toks[j].name in ("ICONST", "SCONST", "FCONST", "ASCII_44", "ASCII_45"):
                j += 1
            if j < len(toks) and toks[j].name == "ASCII_41" and j > i + 1 and toks[i + 1].name in ("ICONST", "SCONST", "FCONST"):
                first = sql[toks[i + 1].start:toks[i + 1].end + 1]
                extra = ", ".join([first] * rng.choice([1, 3, 20]) + (["NULL"] if rng.random() < 0.3 else []))
                pieces.append(sql[pos:end])
                pieces.append(extra + ", ")
                pos = end
                changed = True
                continue
        if new != text:
            pieces.append(sql[pos:start])
            pieces.append(new)
            pos = end
            changed = True
    pieces.append(sql[pos:])
    out = "".join(pieces)
    return out if changed and out != sql else None


def c_strings(path):
    """The string literals of a C file (libpg_query's test/fingerprint_tests.c), in order."""
    src = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"', src):
        out.append(bytes(m.group(1), "utf-8").decode("unicode_escape"))
    return out


def regress_pool(root, rng):
    """The statements of PostgreSQL's regression files in a libpg_query checkout, shuffled by `rng`."""
    regress = os.path.join(root, "test", "sql", "postgres_regress")
    pool = []
    for name in sorted(os.listdir(regress)):
        if not name.endswith(".sql"):
            continue
        text = open(os.path.join(regress, name), encoding="utf-8", errors="replace").read()
        # psql meta-commands are not SQL.
        text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("\\"))
        try:
            stmts = split(text)
        except Exception:
            continue
        for s in stmts:
            s = s.strip()
            if 10 <= len(s) <= 600 and "\\" not in s and ":" + "'" not in s:
                pool.append((name[:-4], s))
    rng.shuffle(pool)
    return pool


def external_corpus(root, statements=2600, seed=7):
    rng = random.Random(seed)
    out = []
    strings = c_strings(os.path.join(root, "test", "fingerprint_tests.c"))
    for k, s in enumerate(strings[0::2]):
        out.append({"source": "libpg_query-tests", "base": f"lpq-{k}", "sql": s})
    pool = regress_pool(root, rng)
    for k, (name, s) in enumerate(pool[:statements]):
        out.append({"source": f"regress-{name}", "base": f"reg-{k}", "sql": s})
        if rng.random() < 0.6:
            v = variant(s, rng)
            if v:
                out.append({"source": f"regress-{name}", "base": f"reg-{k}", "sql": v})
    return out


def held_out(base):
    """True when `base` falls in the held-out half (bench/tests/corpus_agreement.rs, `half`)."""
    h = 0xCBF29CE484222325
    for b in base.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h % 2 == 1


def development_corpus(root, external, statements=2600, seed=7):
    """The regression statements external_corpus did not take, with the same variants, less any
    whose pg_query fingerprint is that of a held-out query of `external` (the file
    external_corpus wrote): material for writing rules that reads no held-out statement."""
    rng = random.Random(seed)
    pool = regress_pool(root, rng)
    held = set()
    with open(external, encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            if held_out(e["base"]):
                held.add(e["pg_query"])
    variants = random.Random(11)
    out = []
    for k, (name, s) in enumerate(pool[statements:]):
        ref = reference(s)
        if ref is None or ref[0] in held:
            continue
        out.append({"source": f"regress-{name}", "base": f"dev2-{k}", "sql": s})
        if variants.random() < 0.6:
            v = variant(s, variants)
            ref = v and reference(v)
            if ref and ref[0] not in held:
                out.append({"source": f"regress-{name}", "base": f"dev2-{k}", "sql": v})
    return out


def write(entries, path):
    kept, seen = 0, set()
    with open(path, "w", encoding="utf-8") as f:
        for e in entries:
            if e["sql"] in seen:
                continue
            ref = reference(e["sql"])
            if ref is None:
                continue
            seen.add(e["sql"])
            e["pg_query"], e["adjusted"] = ref
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
            kept += 1
    print(f"{path}: {kept} queries", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--external", help="a libpg_query checkout: also build the external corpus")
    ap.add_argument("--out", help="where the external corpus goes (outside the repository)")
    ap.add_argument("--development", metavar="EXTERNAL_JSONL",
                    help="with --external: build the second development corpus instead, leaving out "
                         "statements that share a pg_query fingerprint with a held-out query of this file")
    args = ap.parse_args()
    if args.external and args.development:
        write(development_corpus(args.external, args.development), args.out or "/tmp/pgvisor-development-corpus.jsonl")
    elif args.external:
        write(external_corpus(args.external), args.out or "/tmp/pgvisor-external-corpus.jsonl")
    else:
        write(orm_corpus(), os.path.join(HERE, "orm.jsonl"))


if __name__ == "__main__":
    main()
