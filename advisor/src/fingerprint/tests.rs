//! Grouping and normalised-text tests of the fingerprint.
use super::*;

fn norm(sql: &str) -> String {
    fingerprint(sql.as_bytes()).text
}

fn same(a: &str, b: &str) {
    assert_eq!(
        fingerprint(a.as_bytes()).fingerprint,
        fingerprint(b.as_bytes()).fingerprint,
        "{a:?} vs {b:?}: {} | {}",
        norm(a),
        norm(b)
    );
}

fn differ(a: &str, b: &str) {
    assert_ne!(
        fingerprint(a.as_bytes()).fingerprint,
        fingerprint(b.as_bytes()).fingerprint,
        "{a:?} vs {b:?}: {}",
        norm(a)
    );
}

#[test]
fn normalised_text() {
    assert_eq!(
        norm("select  abalance from pgbench_accounts where aid = 42;"),
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
    );
    assert_eq!(
        norm("SELECT * FROM t WHERE id IN (1, 2, 3) AND x = 'a'"),
        "SELECT * FROM t WHERE id IN ($1) AND x = $2"
    );
    assert_eq!(
        norm("select count(*) from \"Users\" u where u.id = any(array[1,2])"),
        "SELECT count(*) FROM \"Users\" u WHERE u.id = ANY (ARRAY[$1])"
    );
    assert_eq!(
        norm("insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z') returning id"),
        "INSERT INTO t(a, b) VALUES ($1, $2) RETURNING id"
    );
    assert_eq!(norm("select '5'::int, x::text[] from t"), "SELECT $1, x::text[] FROM t");
}

#[test]
fn constants_do_not_matter() {
    same("SELECT * FROM users WHERE id = 1", "select * from USERS where id = 99 -- comment");
    same("SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = 'abc'");
    same("SELECT * FROM t WHERE a IN (1,2,3)", "SELECT * FROM t WHERE a IN ($1)");
    same("SELECT * FROM t WHERE a IN ('x')", "SELECT * FROM t /* c */ WHERE a IN ('y', E'z\\'', $$w$$)");
    same("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (2, 'b'), (3, 'c')");
    same("SELECT x - 1 FROM t", "SELECT x - 2 FROM t");
    same("SELECT * FROM t WHERE a = -5", "SELECT * FROM t WHERE a = 5");
    same("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT 5 OFFSET 0");
    same("SET LOCAL statement_timeout = '5s'", "set local statement_timeout = '10s'");
    same("SELECT 1;", "SELECT 1");
}

#[test]
fn structure_matters() {
    differ("SELECT * FROM users WHERE id = 1", "SELECT * FROM orders WHERE id = 1");
    differ("SELECT * FROM \"Users\"", "SELECT * FROM users");
    differ("SELECT * FROM t WHERE a = ANY($1)", "SELECT * FROM t WHERE a IN (1, 2)");
    differ("SELECT x::int FROM t", "SELECT x::bigint FROM t");
    differ("SELECT * FROM t WHERE a IN (SELECT b FROM u)", "SELECT * FROM t WHERE a IN (1)");
    differ("SELECT f(1, 2)", "SELECT f(1)");
    differ("INSERT INTO t VALUES (1, 2)", "INSERT INTO t VALUES (1, now())");
    differ("SELECT a FROM t WHERE a > 1", "SELECT a FROM t WHERE a < 1");
}

#[test]
fn pg_query_equivalences() {
    same("END", "COMMIT");
    same("SAVEPOINT \"s1_x1\"", "savepoint s2_x9");
    same("SET client_min_messages = warning", "SET client_min_messages TO 'notice'");
    same("SELECT u.id AS user_id FROM users u", "SELECT u.id AS uid FROM users u");
    same("SELECT * FROM t WHERE d >= DATE '2024-01-01'", "SELECT * FROM t WHERE d >= '2024-02-01'::date");
    same("SELECT * FROM t WHERE x = $1::integer", "SELECT * FROM t WHERE x = 5");
    same("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT 10");
    same("SELECT * FROM t WHERE active = TRUE", "SELECT * FROM t WHERE active = $1");
    same("SELECT * FROM \"users\"", "SELECT * FROM users");
    same("LISTEN jobs", "LISTEN \"user_1_events\"");
    differ("SELECT * FROM t WHERE x IS NULL", "SELECT * FROM t WHERE x IS NOT NULL");
    differ("SELECT CAST(x AS int) FROM t", "SELECT CAST(x AS bigint) FROM t");
    assert_eq!(norm("set search_path = tenant_a, public"), "SET search_path TO $1, $2");
    assert_eq!(
        norm("DECLARE \"c1\" NO SCROLL CURSOR WITH HOLD FOR SELECT 1"),
        "DECLARE _ NO SCROLL CURSOR WITH HOLD FOR SELECT $1"
    );
}

#[test]
fn values_rows_of_another_shape_stay() {
    assert_eq!(norm("values (1, 2), (3, now())"), "VALUES ($1, $2), ($3, now())");
}

#[test]
fn parentheses_inside_a_values_row_are_not_rows() {
    // A parenthesis after a comma inside a row used to fold into the first row, cutting the
    // output below the row still open (an index panic when that row closed).
    assert_eq!(norm("INSERT INTO t VALUES (1), (2, (3))"), "INSERT INTO t VALUES ($1), ($2, ($3))");
    assert_eq!(norm("VALUES(),(,())"), "VALUES (), (, ())");
    assert_eq!(norm("values (1), (2, (values (3)))"), "VALUES ($1), ($2, (VALUES ($3)))");
    same("values (1, 2), (3, 4)", "values (1, 2), (3, 4), (5, 6)");
}

#[test]
fn display_is_16_hex() {
    let f = fingerprint(b"select 1").fingerprint.to_string();
    assert_eq!(f.len(), 16);
    assert!(f.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

fn display(sql: &str) -> String {
    fingerprint(sql.as_bytes()).display
}

#[test]
fn display_keeps_the_text_as_written() {
    assert_eq!(display("SELECT pg_sleep(0.1), 1::int AS acc_slow"), "SELECT pg_sleep($1), $2::int AS acc_slow");
    assert_eq!(
        display("select x.begin, \"Users\".id from \"Users\" x"),
        "select x.begin, \"Users\".id from \"Users\" x"
    );
    assert_eq!(
        display("  SELECT  a -- why\n  FROM t /* c */ WHERE b = 'x' ;  "),
        "SELECT a FROM t WHERE b = $1",
        "whitespace runs are one space, comments go, the trailing semicolon goes"
    );
    assert_eq!(display("select a/**/from t"), "select a from t", "a comment between words leaves a space");
    assert_eq!(
        display("select count(*) from t where d > DATE '2024-01-01'"),
        "select count(*) from t where d > DATE $1"
    );
    assert_eq!(
        display("update t set a = true, b = null where c is null"),
        "update t set a = $1, b = $2 where c is null"
    );
    assert_eq!(display("SET search_path = tenant_a, public"), "SET search_path = $1, $2");
    assert_eq!(display("savepoint s1; end"), "savepoint s1; end");
    assert_eq!(display("select 1 limit 10 offset 20"), "select $1 limit $2 offset $3");
    assert_eq!(display("select CAST(5 AS int), - 5"), "select CAST($1 AS int), - $2");
}

#[test]
fn display_numbers_constants_after_the_parameters_present() {
    assert_eq!(
        display("select * from t where a = 5 and b = $2 and c = 'x'"),
        "select * from t where a = $3 and b = $2 and c = $4"
    );
    assert_eq!(display("select $1, 7"), "select $1, $2");
}

#[test]
fn display_collapses_constant_lists() {
    assert_eq!(display("select * from t where id in (1, 2, 3)"), "select * from t where id in ($1 /*, ... */)");
    assert_eq!(display("select * from t where id in (7)"), "select * from t where id in ($1)");
    assert_eq!(
        display("select * from t where id in ('a'::text, 'b'::text) and x = 1"),
        "select * from t where id in ($1::text /*, ... */) and x = $2"
    );
    assert_eq!(
        display("select * from t where id in ($1, $2, $3) and x = 1"),
        "select * from t where id in ($1 /*, ... */) and x = $4"
    );
    assert_eq!(
        display("select array[1, 2, 3], x in (select 1, 2)"),
        "select array[$1 /*, ... */], x in (select $2, $3)"
    );
    assert_eq!(
        display("insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z') returning id"),
        "insert into t (a, b) values ($1, $2) /*, ... */ returning id"
    );
    assert_eq!(display("values (1, 2), (3, now())"), "values ($1, $2), ($3, now())");
    let long =
        format!("select * from t where id in ({})", (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
    assert_eq!(display(&long), "select * from t where id in ($1 /*, ... */)");
}

#[test]
fn constants_and_their_casts_are_one_group() {
    let group = [
        "SELECT CAST(5 AS int) FROM t",
        "SELECT '5'::int FROM t",
        "SELECT int '5' FROM t",
        "SELECT 5 FROM t",
        "SELECT -5 FROM t",
        "SELECT - 5 FROM t",
        "SELECT E'5' FROM t",
        "SELECT $$5$$ FROM t",
        "SELECT $tag$5$tag$ FROM t",
        "SELECT CAST($1 AS integer) FROM t",
        "SELECT '5'::pg_catalog.int4 FROM t",
        "SELECT NULL FROM t",
    ];
    for q in &group[1..] {
        same(group[0], q);
    }
    differ("SELECT CAST(x AS int) FROM t", "SELECT x FROM t");
    differ("SELECT x - 5 FROM t", "SELECT x FROM t");
}

#[test]
fn constant_lists_are_one_group_whatever_their_items() {
    let in_lists = [
        "SELECT * FROM t WHERE a IN (1)",
        "SELECT * FROM t WHERE a IN (1, NULL, 3)",
        "SELECT * FROM t WHERE a IN ('a'::text, 'b'::text)",
        "SELECT * FROM t WHERE a IN (CAST(1 AS int), -2, E'x', $$y$$)",
        "SELECT * FROM t WHERE a IN ($1, $2, $3, $4)",
    ];
    for q in &in_lists[1..] {
        same(in_lists[0], q);
    }
    same("SELECT ARRAY[1, 2]", "SELECT ARRAY[NULL, '3'::int, -4]");
    let values = [
        "INSERT INTO t (a, b) VALUES (1, 'x')",
        "INSERT INTO t (a, b) VALUES (1, NULL), (NULL, 'y')",
        "INSERT INTO t (a, b) VALUES (1::int, 'x'::text), (2, 'y'), ('3'::int, E'z')",
        "INSERT INTO t (a, b) VALUES (CAST(1 AS int), -1), (-2, $$w$$)",
    ];
    for q in &values[1..] {
        same(values[0], q);
    }
}

#[test]
fn a_constant_offset_is_not_part_of_the_shape_however_written() {
    for q in [
        "SELECT a FROM t LIMIT 5 OFFSET 10::bigint",
        "SELECT a FROM t LIMIT 5 OFFSET CAST(10 AS int)",
        "SELECT a FROM t LIMIT 5 OFFSET $2::int",
        "SELECT a FROM t LIMIT 5 OFFSET - 1",
        "SELECT a FROM t LIMIT 5 OFFSET int '7'",
    ] {
        same("SELECT a FROM t LIMIT 5", q);
    }
    assert_eq!(display("select a from t offset 10::bigint"), "select a from t offset $1::bigint");
    differ("SELECT a FROM t OFFSET x", "SELECT a FROM t");
    differ("SELECT CASE WHEN a THEN 1 END - 5 FROM t", "SELECT CASE WHEN a THEN 1 END + 5 FROM t");
}
