//! psql through pgvisor prints exactly what it prints directly: results of multi-statement
//! strings, errors with their SQLSTATE, notices, ON_ERROR_STOP exits, and `\copy` in and out.

use pgvisor_tests::compare::{assert_same_text, psql_same_both_ways};
use pgvisor_tests::{shared_cluster, start_proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_results_errors_and_notices_match_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = r#"
\set VERBOSITY verbose
create temp table fruit (id int primary key, name text not null, price numeric(6,2));
insert into fruit values (1, 'apple', 0.5), (2, 'pear', 0.75); insert into fruit values (3, 'fig', null);
select * from fruit order by id;
select 1/0;
insert into fruit values (1, 'duplicate', 1);
select nosuchcolumn from fruit;
do $$ begin raise notice 'hello from %', 'plpgsql'; raise warning 'a warning with detail' using detail = 'the detail'; end $$;
select 'one' as a \; select 'two' as b \; select count(*) as fruits from fruit;
begin;
select 1/0;
select 'ignored in an aborted transaction';
rollback;
select name, price * 2 as doubled from fruit where price is not null order by name;
"#;
    let (direct, proxied) = psql_same_both_ways(&cluster.endpoint(), &proxy.endpoint(), &[], Some(script), &[]).await;
    let (out, err) = (&proxied.output.stdout, &proxied.output.stderr);
    assert_eq!(proxied.output.code(), 0, "psql keeps going without ON_ERROR_STOP; stderr:\n{err}");
    assert!(out.contains(" 3 | fig   |"), "rows of the multi-statement insert:\n{out}");
    assert!(out.contains("fruits") && out.contains("      3"), "last result of the \\; batch:\n{out}");
    for expected in [
        "ERROR:  22012: division by zero",
        "ERROR:  23505: duplicate key value violates unique constraint \"fruit_pkey\"",
        "ERROR:  42703: column \"nosuchcolumn\" does not exist",
        "NOTICE:  00000: hello from plpgsql",
        "WARNING:  01000: a warning with detail",
        "DETAIL:  the detail",
        "ERROR:  25P02: current transaction is aborted",
    ] {
        assert!(err.contains(expected), "stderr lacks {expected:?}:\n{err}");
    }
    assert!(direct.output.stderr.contains("LOCATION:"), "VERBOSITY verbose shows the source location");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_stop_exits_at_the_first_error_like_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let script = "select 'before' as step;\nselect * from no_such_table;\nselect 'after' as step;\n";
    let (_, proxied) =
        psql_same_both_ways(&cluster.endpoint(), &proxy.endpoint(), &["-v", "ON_ERROR_STOP=1"], Some(script), &[])
            .await;
    assert_eq!(proxied.output.code(), 3, "psql exits 3 when a script stops on an error");
    assert!(proxied.output.stdout.contains("before") && !proxied.output.stdout.contains("after"));
    assert!(proxied.output.stderr.contains("relation \"no_such_table\" does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_string_with_several_statements_is_one_query() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    // -c sends the whole string as one simple Query message; psql shows every result.
    let sql = "select 1 as one; select 'x' || repeat('y', 3) as s; values (1, null), (2, 'b')";
    let (_, proxied) = psql_same_both_ways(&cluster.endpoint(), &proxy.endpoint(), &["-A", "-c", sql], None, &[]).await;
    assert_eq!(proxied.output.code(), 0);
    assert_eq!(proxied.output.stdout, "one\n1\n(1 row)\ns\nxyyy\n(1 row)\ncolumn1|column2\n1|\n2|b\n(2 rows)\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_through_psql_match_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    // Enough rows that COPY data spans many reads on each leg; quoting, NULLs and UTF-8 included.
    let mut csv = String::new();
    for i in 0..20_000 {
        match i % 4 {
            0 => csv.push_str(&format!("{i},\"comma, quoted \"\"{i}\"\"\",\n")),
            1 => csv.push_str(&format!("{i},plain {i},{}.25\n", i * 3)),
            2 => csv.push_str(&format!("{i},grüße ✓ {i},-{i}\n")),
            _ => csv.push_str(&format!("{i},,0\n")),
        }
    }
    let script = r#"
create temp table items (id int primary key, label text, amount numeric);
\copy items from 'in.csv' with (format csv)
select count(*), count(label), sum(amount) from items;
\copy (select * from items order by id) to 'out.csv' with (format csv)
\copy (select id, label from items where id < 8 order by id) to stdout
"#;
    let (direct, proxied) =
        psql_same_both_ways(&cluster.endpoint(), &proxy.endpoint(), &[], Some(script), &[("in.csv", &csv)]).await;
    assert_eq!(proxied.output.code(), 0, "stderr:\n{}", proxied.output.stderr);
    assert!(proxied.output.stdout.contains("20000 | 15000 |"), "row counts:\n{}", proxied.output.stdout);
    assert!(proxied.output.stdout.contains("2\tgrüße ✓ 2\n"), "COPY TO STDOUT:\n{}", proxied.output.stdout);
    let out = proxied.file("out.csv");
    assert_same_text("\\copy out file", &direct.file("out.csv"), &out);
    assert_same_text("\\copy round trip", &csv, &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_over_tls_reaches_a_tls_upstream() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    // The harness runs psql with sslmode=require: it fails unless the proxy answers SSLRequest
    // with 'S'. pg_stat_ssl shows the upstream leg, encrypted too (prefer, the server has TLS).
    let sql = "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()";
    let (_, proxied) =
        psql_same_both_ways(&cluster.endpoint(), &proxy.endpoint(), &["-A", "-t", "-c", sql], None, &[]).await;
    assert_eq!(proxied.output.code(), 0, "stderr:\n{}", proxied.output.stderr);
    assert_eq!(proxied.output.stdout, "t|TLSv1.3\n");
}
