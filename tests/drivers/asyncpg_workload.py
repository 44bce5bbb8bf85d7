#!/usr/bin/env python3
"""An asyncpg workload for tests/tests/drivers_asyncpg.rs: run once directly against PostgreSQL
and once through pgvisor, the two outputs must be identical byte for byte.

asyncpg speaks the extended protocol only, in its own way: Parse/Describe then Flush or Sync to
learn a statement's types before binding, binary formats for nearly every type, a per-connection
prepared statement cache, pipelined Bind/Execute batches for executemany, COPY FROM STDIN in
binary for copy_records_to_table, portals fetched in chunks (Execute with a row limit,
PortalSuspended) for cursors, and a CancelRequest on a timeout.

Connection: --host, --port, --user, --dbname, the password from PGPASSWORD; asyncpg's default
ssl='prefer' (TLS when the server offers it). The database must be empty: the workload creates
its own tables.

Prints one canonical JSON object on stdout: every result in order, with types tagged, and
nothing that legitimately differs between two sessions (backend pids, times of day).
"""

import argparse
import asyncio
import datetime
import decimal
import hashlib
import io
import ipaddress
import json
import os
import sys
import uuid

import asyncpg

RESULTS = []


def canon(value):
    """A JSON-able, type-tagged form of whatever asyncpg returned."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"numeric": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, datetime.datetime):
        return {"timestamp": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat()}
    if isinstance(value, datetime.time):
        return {"time": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"interval": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network,
                          ipaddress.IPv6Network, ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return {"inet": str(value)}
    if isinstance(value, asyncpg.Record):
        return {"record": [[k, canon(v)] for k, v in value.items()]}
    if isinstance(value, asyncpg.Range):
        return {"range": [canon(value.lower), canon(value.upper), value.lower_inc, value.upper_inc, value.isempty]}
    if isinstance(value, (list, tuple)):
        return [canon(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): canon(v) for k, v in value.items()}}
    return {type(value).__name__: str(value)}


def record(step, value):
    RESULTS.append([step, canon(value)])


def error(e):
    """What a user sees of a server error: its class, SQLSTATE and fields."""
    if isinstance(e, asyncpg.PostgresError):
        fields = {
            "class": type(e).__name__,
            "sqlstate": e.sqlstate,
            "severity": e.severity,
            "message": e.message,
            "detail": e.detail,
            "hint": e.hint,
            "position": e.position,
            "schema_name": e.schema_name,
            "table_name": e.table_name,
            "column_name": e.column_name,
            "constraint_name": e.constraint_name,
        }
        return {"error": fields}
    return {"error": {"class": type(e).__name__, "message": str(e)}}


async def expect_error(step, coro):
    try:
        value = await coro
    except (asyncpg.PostgresError, asyncio.TimeoutError) as e:
        RESULTS.append([step, error(e)])
        return
    RESULTS.append([step, {"unexpected_success": canon(value)}])


async def workload(conn, args):
    record("server_version", list(conn.get_server_version()))
    settings = conn.get_settings()
    record("settings", {k: getattr(settings, k) for k in ("client_encoding", "DateStyle", "integer_datetimes",
                                                          "server_encoding", "standard_conforming_strings",
                                                          "TimeZone", "IntervalStyle")})

    # Simple-protocol script (execute without arguments sends a Query message).
    status = await conn.execute("""
        create table items (id int primary key, name text not null, price numeric(10,2),
                            tags text[], meta jsonb, created timestamptz, blob bytea);
        create table copied (id int, label text, amount float8, day date, flags bool[]);
        create table fails_unique (id int primary key, note text);
        insert into fails_unique values (1, 'first');
    """)
    record("script_status", status)

    # Binary formats for many types, one statement, parameters of every kind.
    row = await conn.fetchrow(
        """select $1::int2 as i2, $2::int4 as i4, $3::int8 as i8, $4::float4 as f4, $5::float8 as f8,
                  $6::numeric as num, $7::text as t, $8::bytea as b, $9::bool as bo, $10::date as d,
                  $11::timestamp as ts, $12::timestamptz as tstz, $13::interval as iv, $14::uuid as u,
                  $15::jsonb as jb, $16::json as js, $17::int4[] as arr, $18::text[] as tarr,
                  $19::inet as ip, $20::int4range as r, null::text as nothing, 'NaN'::numeric as nan,
                  '-infinity'::timestamp as neg_inf, row(1, 'x', null)::record is not null as rec_ok""",
        -32768, 2147483647, -9223372036854775808, 1.5, 3.141592653589793,
        decimal.Decimal("12345678901234567890.000000001"), "héllo wörld ✓", b"\x00\x01\xfe\xff", True,
        datetime.date(2024, 2, 29), datetime.datetime(2001, 2, 3, 4, 5, 6, 789012),
        datetime.datetime(2020, 1, 1, 12, 0, tzinfo=datetime.timezone.utc), datetime.timedelta(days=3, seconds=7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"), '{"a": [1, 2, {"b": null}]}', '{"k": "v"}',
        [1, None, 3], ["a", "b c", ""], ipaddress.ip_interface("192.168.0.1/24"), asyncpg.Range(1, 10))
    record("binary_types", row)

    # Composite and nested array results.
    record("composite", await conn.fetchval("select row(1, 'two', array[3,4])::record"))
    record("nested_array", await conn.fetchval("select array[[1,2],[3,4]]::int8[]"))

    # The statement cache: the same text many times re-uses one server-side prepared statement.
    for i in range(5):
        await conn.execute("insert into items (id, name, price, tags, meta, created, blob) "
                           "values ($1, $2, $3, $4, $5, $6, $7)",
                           i, f"item {i}", decimal.Decimal(i) / 4, [f"t{i}", "common"],
                           json.dumps({"n": i}), datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
                           + datetime.timedelta(hours=i), bytes([i]) * i)
    record("cached_fetch", [await conn.fetchval("select count(*) from items where id >= $1", i) for i in range(3)])

    # An explicit prepared statement: parameter and result types from Describe.
    stmt = await conn.prepare("select id, name, price, tags, meta from items where id = any($1::int[]) order by id")
    record("prepared_parameters", [t.name for t in stmt.get_parameters()])
    record("prepared_attributes", [[a.name, a.type.name] for a in stmt.get_attributes()])
    record("prepared_fetch", await stmt.fetch([1, 3, 4]))
    record("prepared_fetchrow", await stmt.fetchrow([2]))
    record("prepared_fetchval", await stmt.fetchval([0], column=1))
    record("prepared_explain_shape", sorted((await stmt.explain([1]))[0]["Plan"].keys()) != [])

    # executemany: Bind/Execute pipelined for every argument tuple, one Sync at the end.
    await conn.executemany("insert into items (id, name, price) values ($1, $2, $3)",
                           [(i, f"bulk {i}", decimal.Decimal(i)) for i in range(100, 400)])
    record("after_executemany", await conn.fetchrow("select count(*), sum(price), min(name), max(name) from items"))

    # executemany that fails half-way: nothing of it stays (it runs in an implicit transaction).
    await expect_error("executemany_unique_violation", conn.executemany(
        "insert into fails_unique (id, note) values ($1, $2)", [(10, "a"), (11, "b"), (1, "dup"), (12, "c")]))
    record("after_failed_executemany", await conn.fetch("select id, note from fails_unique order by id"))

    # COPY FROM STDIN, binary: copy_records_to_table.
    records = [(i, f"label {i}" if i % 7 else None, i * 0.5, datetime.date(2024, 1, 1) + datetime.timedelta(days=i),
                [i % 2 == 0, None]) for i in range(5000)]
    record("copy_records", await conn.copy_records_to_table("copied", records=records))
    # COPY FROM STDIN, text from a file-like object.
    text = "".join(f"{i}\ttext {i}\t{i}.25\t2023-06-{1 + i % 28:02d}\t{{t,f}}\n" for i in range(5000, 5100))
    record("copy_to_table", await conn.copy_to_table("copied", source=io.BytesIO(text.encode()), format="text"))
    record("copied_summary", await conn.fetchrow(
        "select count(*), count(label), sum(amount), min(day), max(day), sum(cardinality(flags)) from copied"))
    # COPY TO STDOUT, csv and binary.
    out = io.BytesIO()
    record("copy_from_query_status",
           await conn.copy_from_query("select * from copied where id % 1000 = 0 order by id", output=out,
                                      format="csv", header=True))
    record("copy_from_query_csv", out.getvalue().decode())
    out = io.BytesIO()
    record("copy_from_table_status", await conn.copy_from_table("copied", output=out, format="binary"))
    record("copy_from_table_binary_sha256", hashlib.sha256(out.getvalue()).hexdigest())

    # Cursors: a portal fetched in chunks (Execute with a row limit: PortalSuspended in between).
    async with conn.transaction():
        seen = [r["id"] async for r in conn.cursor("select id from copied where id < $1 order by id", 53, prefetch=7)]
        record("cursor_iteration", seen)
        cur = await conn.cursor("select id, label from copied order by id")
        first = await cur.fetch(5)
        await cur.forward(100)
        one = await cur.fetchrow()
        more = await cur.fetch(3)
        record("cursor_manual", [first, one, more])

    # Transactions: commit, rollback, savepoints (nested transaction blocks), isolation levels.
    async with conn.transaction(isolation="serializable"):
        await conn.execute("update items set name = name || ' (committed)' where id = 1")
        record("isolation_in_tx", await conn.fetchval("show transaction_isolation"))
    try:
        async with conn.transaction():
            await conn.execute("update items set name = 'rolled back' where id = 2")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    async with conn.transaction():
        await conn.execute("update items set name = 'outer' where id = 3")
        try:
            async with conn.transaction():  # SAVEPOINT
                await conn.execute("update items set name = 'inner' where id = 4")
                await conn.execute("insert into fails_unique (id, note) values (1, 'savepoint dup')")
        except asyncpg.UniqueViolationError as e:
            RESULTS.append(["savepoint_error", error(e)])
        record("after_savepoint_rollback", await conn.fetch("select id, name from items where id < 5 order by id"))
    tx = conn.transaction(readonly=True)
    await tx.start()
    await expect_error("read_only_violation", conn.execute("insert into fails_unique (id, note) values (50, 'read only')"))
    await tx.rollback()
    record("in_transaction_after", conn.is_in_transaction())

    # Server errors come back with their SQLSTATE and fields.
    await expect_error("division_by_zero", conn.fetchval("select 1 / (id - id) from items where id = $1", 1))
    await expect_error("undefined_table", conn.fetch("select * from fails_missing_table"))
    await expect_error("syntax_error", conn.fetch("selec fails_syntax from items"))
    await expect_error("not_null", conn.execute("insert into items (id, name) values ($1, $2)", 999, None))
    await expect_error("wrong_parameter_type", conn.fetchval("select $1::int + 1", "not an int"))
    await expect_error("raise_exception", conn.execute(
        "do $$ begin raise exception using errcode = 'P0099', message = 'fails_custom', "
        "detail = 'a detail', hint = 'a hint'; end $$"))
    record("still_usable", await conn.fetchval("select count(*) from items"))

    # Notices reach the log listener.
    notices = []
    conn.add_log_listener(lambda _conn, msg: notices.append([msg.severity, msg.sqlstate, msg.message]))
    await conn.execute("do $$ begin raise notice 'hello %', 42; raise warning 'careful'; end $$")
    for _ in range(500):  # listeners are called soon after, not during, the statement
        if len(notices) >= 2:
            break
        await asyncio.sleep(0.01)
    record("notices", notices)

    # A statement timeout on the client: asyncpg sends a CancelRequest, the server answers 57014,
    # and the connection goes on.
    await expect_error("client_timeout_cancel", conn.fetchval("select pg_sleep(30)", timeout=0.3))
    record("after_cancel", await conn.fetchval("select 'alive'"))
    # The server's own statement_timeout.
    await conn.execute("set statement_timeout = '100ms'")
    await expect_error("statement_timeout", conn.execute("select pg_sleep(5)"))
    await conn.execute("reset statement_timeout")

    # LISTEN/NOTIFY between two connections, payloads in order.
    other = await asyncpg.connect(host=args.host, port=args.port, user=args.user, database=args.dbname,
                                  password=os.environ.get("PGPASSWORD"))
    got = asyncio.Queue()
    def listener(_conn, _pid, channel, payload):
        got.put_nowait([channel, payload])

    await conn.add_listener("drv_channel", listener)
    for i in range(3):
        await other.execute(f"notify drv_channel, 'payload {i}'")
    await other.execute("select pg_notify('drv_channel', $1)", "from a function")
    received = [await asyncio.wait_for(got.get(), 10) for _ in range(4)]
    record("notifications", received)
    await conn.remove_listener("drv_channel", listener)
    await other.close()

    # A large result, and a large value.
    rows = await conn.fetch("select g, md5(g::text) from generate_series(1, 20000) g")
    record("large_result", [len(rows), hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()])
    record("large_value_length", await conn.fetchval("select length($1::text)", "x" * 3_000_000))

    # The statement cache after DDL changes a result type: asyncpg retries transparently.
    record("before_alter", await conn.fetch("select * from fails_unique order by id"))
    await conn.execute("alter table fails_unique add column extra int default 7")
    record("after_alter", await conn.fetch("select * from fails_unique order by id"))

    record("done", True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--dbname", required=True)
    args = parser.parse_args()
    conn = await asyncpg.connect(host=args.host, port=args.port, user=args.user, database=args.dbname,
                                 password=os.environ.get("PGPASSWORD"))
    try:
        await workload(conn, args)
    finally:
        await conn.close()
    json.dump({"asyncpg": asyncpg.__version__, "results": RESULTS}, sys.stdout, sort_keys=True, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
