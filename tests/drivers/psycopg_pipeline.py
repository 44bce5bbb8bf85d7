#!/usr/bin/env python3
"""A psycopg 3 pipeline-mode workload for tests/tests/drivers_psycopg_pipeline.rs: run once
directly against PostgreSQL and once through pgvisor, the two outputs must be identical byte for
byte.

In pipeline mode (libpq's PQenterPipelineMode) psycopg sends Parse/Bind/Describe/Execute for
many statements without waiting for their results, with a Sync only where asked (p.sync(), the end
of the block, a transaction boundary). An error aborts every statement after it up to the next
Sync; the server then answers nothing for them and libpq reports them as PIPELINE_ABORTED, and
after the Sync the pipeline works again.

Connection: --host, --port, --user, --dbname, the password from PGPASSWORD; sslmode=require (--sslmode),
channel_binding=disable (channel binding cannot cross a TLS-terminating proxy). The database must
be empty: the workload creates its own tables.

Prints one canonical JSON object on stdout: every result in order, nothing that legitimately
differs between two sessions.
"""

import argparse
import datetime
import decimal
import json
import os
import sys

import psycopg
from psycopg import errors, pq

RESULTS = []


def canon(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"numeric": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return {type(value).__name__: value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {"interval": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, (list, tuple)):
        return [canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canon(v) for k, v in value.items()}
    return {type(value).__name__: str(value)}


def record(step, value):
    RESULTS.append([step, canon(value)])


def error(e):
    """What a user sees of an error: its class, SQLSTATE and the server's fields."""
    diag = e.diag if isinstance(e, psycopg.Error) else None
    fields = {"class": type(e).__name__, "sqlstate": getattr(e, "sqlstate", None)}
    if diag is not None:
        fields.update(severity=diag.severity, message=diag.message_primary, detail=diag.message_detail,
                      hint=diag.message_hint, position=diag.statement_position,
                      constraint=diag.constraint_name)
    if diag is None or diag.message_primary is None:
        fields["text"] = str(e)
    return {"error": fields}


def outcome(cursor):
    """A cursor's result after a pipeline sync: libpq's result status, the command status and rows,
    or the error fetching raises."""
    result = pq.ExecStatus(cursor.pgresult.status).name if cursor.pgresult is not None else None
    try:
        rows = cursor.fetchall() if cursor.description is not None else None
        return {"result": result, "status": cursor.statusmessage, "rows": canon(rows)}
    except psycopg.Error as e:
        return {"result": result, **error(e)}


def statuses(conn):
    return [conn.info.transaction_status.name, conn.info.pipeline_status.name]


def workload(conn):
    record("server_version", conn.info.server_version // 10000)
    record("libpq_pipeline_supported", psycopg.Pipeline.is_supported())

    conn.execute("create table events (id int primary key, kind text not null, payload jsonb, at timestamptz)")
    conn.execute("create table fails_unique (id int primary key)")
    conn.execute("insert into fails_unique values (1)")

    # Many statements in flight: 200 queries sent before the first result is read.
    with conn.pipeline() as p:
        cursors = [conn.execute("select %s::int * 2, %s::text || '!'", [i, f"q{i}"]) for i in range(200)]
        record("in_pipeline_status", statuses(conn))
        p.sync()
        record("many_in_flight", [c.fetchone() for c in cursors])

    # executemany in a pipeline (psycopg pipelines it anyway), prepared and binary statements.
    cur = conn.cursor()
    with conn.pipeline():
        cur.executemany(
            "insert into events (id, kind, payload, at) values (%s, %s, %s, %s)",
            [(i, "kind" + str(i % 3), json.dumps({"i": i}),
              datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=i))
             for i in range(500)])
        prepared = [conn.execute("select count(*) from events where kind = %s", [f"kind{i % 3}"], prepare=True)
                    for i in range(6)]
        binary = conn.cursor(binary=True)
        binary.execute("select id, kind, payload, at, id::numeric / 7 from events where id < %s order by id", [5])
    # Read after the pipeline: inside it, how many results have arrived depends on timing.
    record("executemany_rowcount", cur.rowcount)
    record("prepared_counts", [c.fetchone() for c in prepared])
    record("binary_rows", binary.fetchall())

    # An error mid-pipeline: the statements after it are skipped until the Sync, then the
    # pipeline goes on. psycopg raises the error at the first call that reads results after it
    # arrived: p.sync() or, when the results come back while statements are still being queued,
    # one of those conn.execute() calls (and then PipelineAborted from the sync): how far the loop
    # got depends on timing, even directly, so only the first error is recorded, and what ran is
    # read back from the table.
    issued = []
    first_error = None
    with conn.pipeline() as p:
        try:
            issued.append(conn.execute("insert into events (id, kind) values (1000, 'before') returning id, kind"))
            issued.append(conn.execute("select count(*) from events"))
            issued.append(conn.execute("select 10 / (count(*) - count(*)) from events"))
            for i in range(3):
                issued.append(conn.execute("insert into events (kind, id) values ('skipped_after_error', %s)",
                                           [2000 + i]))
            issued.append(conn.execute("select skipped_after_error from (select 1 as skipped_after_error) s"))
            p.sync()
        except psycopg.Error as e:
            first_error = error(e)
            try:
                p.sync()
            except errors.PipelineAborted:
                pass
        RESULTS.append(["error_mid_pipeline", first_error])
        record("status_after_failed_sync", statuses(conn))
        record("before_error", [outcome(c) for c in issued[:2]])
        record("skipped_results", sorted({outcome(c)["result"] or "none" for c in issued[2:]}))
        recovered = conn.execute("select 'recovered', count(*) from events where kind = 'skipped_after_error'")
        after = conn.execute("select id, kind from events where id >= 1000 order by id")
        p.sync()
        record("recovered", [outcome(recovered), outcome(after)])

    # An error in a pipeline block without an explicit sync raises at the latest when the block
    # exits (earlier when its result arrives while statements are still being queued: same error).
    try:
        with conn.pipeline():
            conn.execute("insert into fails_unique values (%s)", [5])
            conn.execute("insert into fails_unique values (%s)", [1])
            conn.execute("insert into fails_unique values (%s)", [6])
    except psycopg.Error as e:
        RESULTS.append(["error_at_block_exit", error(e)])
    record("fails_unique_after", conn.execute("select id from fails_unique order by id").fetchall())

    # A transaction inside a pipeline: the error rolls it back, the savepoint one only the savepoint.
    try:
        with conn.pipeline():
            with conn.transaction():
                conn.execute("update events set kind = 'tx' where id < 10")
                try:
                    with conn.transaction():
                        conn.execute("insert into fails_unique values (1)")
                except errors.UniqueViolation as e:
                    RESULTS.append(["savepoint_in_pipeline", error(e)])
                conn.execute("update events set kind = 'tx2' where id < 5")
                conn.execute("select * from fails_missing_table")
    except psycopg.Error as e:
        RESULTS.append(["transaction_in_pipeline", error(e)])
    record("after_rolled_back_tx", conn.execute("select kind, count(*) from events group by kind order by kind")
           .fetchall())
    record("status_after_tx", statuses(conn))

    # A non-autocommit connection: the pipeline runs in a transaction that the error aborts
    # (25P02 for what follows) until rollback.
    conn.autocommit = False
    try:
        with conn.pipeline() as p:
            conn.execute("insert into events (id, kind) values (3000, 'implicit tx')")
            conn.execute("select fails_in_tx / 0 from (select 1 as fails_in_tx) s")
            p.sync()
    except psycopg.Error as e:
        RESULTS.append(["error_in_implicit_tx", error(e)])
    record("status_in_failed_tx", statuses(conn))
    try:
        conn.execute("select fails_25p02 from (select 'in failed transaction' as fails_25p02) s")
    except psycopg.Error as e:
        RESULTS.append(["in_failed_transaction", error(e)])
    conn.rollback()
    record("after_rollback", conn.execute("select count(*) from events where id = 3000").fetchone())
    conn.commit()
    conn.autocommit = True

    # Describe-heavy: result columns of statements never executed before.
    with conn.pipeline():
        curs = [conn.execute(f"select {i} as c{i}, 'x'::varchar({i + 1}) as v, now() is not null as n") for i in range(20)]
    record("descriptions", [[[d.name, d.type_code, d.internal_size] for d in c.description] + [c.fetchone()]
                            for c in curs])

    # A large result streamed in a pipeline.
    with conn.pipeline():
        big = conn.execute("select g, repeat('y', g % 50) from generate_series(1, 30000) g")
    rows = big.fetchall()
    record("large_result", [len(rows), sum(len(r[1]) for r in rows)])

    record("final_status", statuses(conn))
    record("done", True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--sslmode", default="require")
    args = parser.parse_args()
    with psycopg.connect(host=args.host, port=args.port, user=args.user, dbname=args.dbname,
                         password=os.environ.get("PGPASSWORD"), sslmode=args.sslmode, channel_binding="disable",
                         autocommit=True, connect_timeout=10) as conn:
        workload(conn)
    json.dump({"psycopg": psycopg.__version__, "libpq": pq.version(), "results": RESULTS}, sys.stdout,
              sort_keys=True, ensure_ascii=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
