//! `pgvisor report` as a user runs it, against a real pgvisor and PostgreSQL: the callers column
//! shows who ran each query from its sqlcommenter, `key='value'` comments (decoded), an
//! application_name every query shares is said once above the table, and `--tag key:value`
//! (a route holds `/` and `:`, so it must be escaped on the way) shows only the queries run with it.
//!
//! Needs the binary built (`cargo test --workspace` does; else `cargo build -p pgvisor`).

use std::process::Output;

use pgvisor_tests::binary::pgvisor_binary;
use pgvisor_tests::{connect_config, shared_cluster, start_proxy};

/// `pgvisor report --admin ADMIN ARGS`, without any inherited `PGVISOR_*` setting.
async fn report(admin: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(pgvisor_binary());
    command.args(["report", "--admin", admin]).args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os().filter(|(n, _)| n.to_string_lossy().starts_with("PGVISOR_")) {
        command.env_remove(name);
    }
    command.output().await.expect("run pgvisor report")
}

/// Stdout of a report that succeeded; panics with stderr otherwise.
async fn table(admin: &str, args: &[&str]) -> String {
    let out = report(admin, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "pgvisor report {args:?}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The table line of the query whose text contains `needle`.
fn line_of<'a>(table: &'a str, needle: &str) -> &'a str {
    table.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in:\n{table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_shows_callers_from_sql_comments_and_filters_by_tag() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let mut config = proxy.endpoint().config();
    config.application_name("report-test");
    let client = connect_config(&config).await.expect("connect through pgvisor");
    for i in 0..4 {
        let route = if i < 3 { "%2Fusers%2F%3Aid" } else { "%2Fadmin%2Fusers" };
        let sql = format!("SELECT {i} AS user_id /*controller='users',route='{route}'*/");
        client.simple_query(&sql).await.unwrap();
    }
    // Shapes of their own: an alias alone would not make another fingerprint.
    client.simple_query("SELECT count(*) FROM generate_series(1, 3) /*job='nightly'*/").await.unwrap();
    client.simple_query("SELECT now()").await.unwrap();
    proxy.drained_through(&client).await;
    let admin = proxy.admin_addr().to_string();

    let all = table(&admin, &["--sort", "calls"]).await;
    assert!(all.contains("\nAll of them ran with application_name=report-test\n"), "{all}");
    let header = line_of(&all, "fingerprint");
    let column = header.find("callers").unwrap_or_else(|| panic!("no callers column:\n{all}"));
    let users = line_of(&all, "AS user_id");
    assert_eq!(
        users.get(column..),
        Some(&*format!("{:<50}  SELECT $1 AS user_id", "route=/users/:id (3, +1 more), controller=users")),
        "the top route with its share, then the controller that ran every call:\n{all}"
    );
    assert!(line_of(&all, "generate_series").get(column..).is_some_and(|c| c.starts_with("job=nightly  ")), "{all}");
    assert!(line_of(&all, "now()").get(column..).is_some_and(|c| c.starts_with("   ")), "{all}");

    let by_route = table(&admin, &["--sort", "calls", "--tag", "route:/users/:id"]).await;
    assert!(by_route.starts_with("Top 1 queries by calls, tagged route:/users/:id\n"), "{by_route}");
    assert!(by_route.contains("SELECT $1 AS user_id"), "{by_route}");
    assert!(!by_route.contains("generate_series") && !by_route.contains("now()"), "{by_route}");
    // One query listed: nothing to compare it with, so its tags all stay in its row.
    assert!(!by_route.contains("All of them ran with"), "{by_route}");

    let by_job = table(&admin, &["--tag", "job:nightly"]).await;
    assert!(by_job.contains("generate_series") && !by_job.contains("AS user_id"), "{by_job}");
    let by_app = table(&admin, &["--tag", "application_name:report-test", "--limit", "100"]).await;
    for query in ["AS user_id", "generate_series", "now()"] {
        assert!(by_app.contains(query), "{query} ran from report-test:\n{by_app}");
    }

    let nowhere = table(&admin, &["--tag", "route:/nowhere"]).await;
    assert!(nowhere.starts_with("No query ran with the tag route:/nowhere."), "{nowhere}");

    let mistake = report(&admin, &["--tag", "nightly"]).await;
    let stderr = String::from_utf8_lossy(&mistake.stderr);
    assert_eq!(mistake.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tag: expected KEY:VALUE such as route:/users/:id, got \"nightly\""), "{stderr}");
    proxy.shutdown().await;
}
