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
