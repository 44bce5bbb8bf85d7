//! `lock_hazard_ddl` through pgvisor against real PostgreSQL, judged on `GET /api/advice`: a
//! migration's DDL on a table the application is using, with the sessions it blocked; the safe
//! forms that must not fire; and dismissing a finding with `POST /api/advice/{id}/dismiss`.

mod advice_common;

use std::time::Duration;

use advice_common::{
    advice_of, backend_pid, connect_in, create_schema, drained, inspector_dsn, pretty, setup, wait_for_advice,
};
use pgvisor::ProxySettings;
use pgvisor_tests::{shared_cluster, start_proxy_with, TestProxy};
use serde_json::Value;
use tokio_postgres::Client;

/// The application's read of `orders`, as pgvisor normalises it.
const APP_SELECT: &str = "SELECT id, total FROM orders WHERE user_id = $1";

/// A proxy (with the Inspector), an "app" session that has just read `orders`, and a
/// "migration" session, both in a fresh schema holding `orders`.
async fn app_and_migration() -> (TestProxy, Client, Client) {
    app_and_migration_with(|_| {}).await
}

async fn app_and_migration_with(adjust: impl FnOnce(&mut ProxySettings)) -> (TestProxy, Client, Client) {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(
        cluster,
        &schema,
        "create table orders (id int primary key, user_id int not null, total numeric not null);
         insert into orders select i, i % 20, i * 1.5 from generate_series(1, 2000) i;
         create table audit_log (id int primary key, note text);",
    )
    .await;
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = start_proxy_with(cluster, |s| {
        s.inspector_dsn = Some(dsn);
        adjust(s);
    })
    .await;
    let app = connect_in(&proxy.endpoint(), &schema).await;
    let migration = connect_in(&proxy.endpoint(), &schema).await;
    for user in 1..=3 {
        app.simple_query(&format!("select id, total from orders where user_id = {user}")).await.unwrap();
    }
    (proxy, app, migration)
}

fn hazards(advice: &Value) -> Vec<String> {
    advice_common::strings(&advice["evidence"]["hazards"])
}

/// CREATE INDEX without CONCURRENTLY on a table the app just read: the advice names the
/// statement, the app's query among the recent users, and the concurrent form as the fix.
/// Dismissing it hides it; an unknown id is 404; reset forgets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_index_on_a_table_in_use() {
    let (proxy, _app, migration) = app_and_migration().await;
    migration.simple_query("create index orders_total on orders (total)").await.unwrap();
    let advice = wait_for_advice(&proxy, "lock_hazard_ddl", Duration::from_secs(2), |_| true)
        .await
        .unwrap_or_else(|all| panic!("no lock_hazard_ddl:\n{all}"));
    let e = &advice["evidence"];
    assert_eq!(e["statement"], "CREATE INDEX orders_total ON orders(total)", "{advice:#}");
    assert_eq!(e["table"], "orders", "{advice:#}");
    assert_eq!(e["lock"], "SHARE", "{advice:#}");
    assert_eq!(hazards(&advice), vec!["index_without_concurrently", "no_lock_timeout"], "{advice:#}");
    assert_eq!(e["lock_timeout_set"], false, "{advice:#}");
    assert!(e["duration_ms"].as_f64().is_some(), "{advice:#}");
    let users = e["recent_users"].as_array().unwrap();
    assert!(users.iter().any(|u| u["statement"] == APP_SELECT && u["calls"] == 3), "{advice:#}");
    let suggestion = advice["suggestion"].as_str().unwrap();
    assert!(suggestion.contains("CREATE INDEX CONCURRENTLY orders_total ON orders(total)"), "{suggestion}");
    assert!(suggestion.contains("SET lock_timeout"), "{suggestion}");
    assert_eq!(advice["fingerprints"].as_array().map(Vec::len), Some(1), "{advice:#}");

    let id = advice["id"].as_str().unwrap();
    let answer = proxy.admin_json("POST", &format!("/api/advice/{id}/dismiss")).await;
    assert_eq!(answer["dismissed"], id);
    assert!(advice_of(&proxy, "lock_hazard_ddl").await.is_empty(), "dismissed advice is hidden");
    let unknown =
        pgvisor::cli::report::http_request(proxy.admin_addr(), "POST", "/api/advice/0123456789abcdef/dismiss", None)
            .await;
    assert!(unknown.as_ref().is_err_and(|e| e.to_string().contains("404")), "{unknown:?}");
    proxy.admin_json("POST", "/api/reset").await;
    migration.simple_query("drop index orders_total").await.unwrap();
    migration.simple_query("create index orders_total on orders (total)").await.unwrap();
    wait_for_advice(&proxy, "lock_hazard_ddl", Duration::from_secs(2), |a| a["id"] == id)
        .await
        .unwrap_or_else(|all| panic!("after reset the same DDL is advice again:\n{all}"));
}

/// A migration adds a column with a volatile default in an open transaction; the app's SELECT
/// waits for it. The advice (critical) names the app's session and its statement as blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_default_names_the_session_it_blocked() {
    let (proxy, app, migration) = app_and_migration().await;
    let app_pid = backend_pid(&app).await;
    migration.simple_query("begin").await.unwrap();
    migration.simple_query("alter table orders add column token uuid default gen_random_uuid()").await.unwrap();
    let waiter =
        tokio::spawn(
            async move { app.simple_query("select id, total from orders where user_id = 7").await.map(|_| app) },
        );
    let blocked = wait_for_advice(&proxy, "lock_hazard_ddl", Duration::from_secs(3), |a| {
        a["evidence"]["blocked_sessions"].as_array().is_some_and(|b| !b.is_empty())
    })
    .await;
    migration.simple_query("commit").await.unwrap();
    waiter.await.unwrap().expect("the app's SELECT goes through after the commit");
    let advice = blocked.unwrap_or_else(|all| panic!("no lock_hazard_ddl naming a blocked session:\n{all}"));
    let e = &advice["evidence"];
    assert_eq!(e["statement"], "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid()", "{advice:#}");
    assert_eq!(e["lock"], "ACCESS EXCLUSIVE", "{advice:#}");
    assert_eq!(hazards(&advice), vec!["volatile_default_rewrites_table", "no_lock_timeout"], "{advice:#}");
    assert_eq!(e["blocked_sessions"][0]["pid"], app_pid, "{advice:#}");
    assert_eq!(e["blocked_sessions"][0]["statement"], APP_SELECT, "{advice:#}");
    assert_eq!(advice["severity"], "critical", "{advice:#}");
    assert!(advice["message"].as_str().unwrap().contains("waiting for it"), "{advice:#}");
    assert!(advice["suggestion"].as_str().unwrap().contains("backfill"), "{advice:#}");
    let all = advice_of(&proxy, "lock_hazard_ddl").await;
    assert_eq!(all.len(), 1, "{}", pretty(&all));
}

/// The safe forms stay quiet: CREATE INDEX CONCURRENTLY, DDL with lock_timeout where only the
/// timeout rule would apply (a plain ADD COLUMN, FK NOT VALID then VALIDATE), and hazardous DDL
/// on a table no other session used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_forms_do_not_fire() {
    let (proxy, _app, migration) = app_and_migration().await;
    migration.simple_query("create index concurrently orders_user on orders (user_id)").await.unwrap();
    migration.simple_query("set lock_timeout = '2s'").await.unwrap();
    migration.simple_query("alter table orders add column note text").await.unwrap();
    migration.simple_query("alter table orders add column created timestamptz default now()").await.unwrap();
    migration
        .simple_query("alter table orders add constraint total_positive check (total >= 0) not valid")
        .await
        .unwrap();
    migration.simple_query("alter table orders validate constraint total_positive").await.unwrap();
    migration.simple_query("reset lock_timeout").await.unwrap();
    // Nobody but the migration touches audit_log.
    migration.simple_query("insert into audit_log values (1, 'x')").await.unwrap();
    migration.simple_query("alter table audit_log alter column note type varchar(200)").await.unwrap();
    migration.simple_query("create index audit_note on audit_log (note)").await.unwrap();
    drained(&proxy, &migration).await;
    let all = advice_of(&proxy, "lock_hazard_ddl").await;
    assert!(all.is_empty(), "safe DDL flagged:\n{}", pretty(&all));
}

/// `[advice] disabled = ["lock_hazard_ddl"]` (or `--disable-advice`): the same hazard is dropped
/// before the book; the query statistics still see the DDL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_kind_is_not_reported() {
    let kind = pgvisor::config::parse_kind("lock_hazard_ddl").unwrap();
    let (proxy, _app, migration) = app_and_migration_with(|s| {
        s.advisor.filter.disabled.insert(kind);
    })
    .await;
    migration.simple_query("create index orders_total on orders (total)").await.unwrap();
    drained(&proxy, &migration).await;
    let all = advice_of(&proxy, "lock_hazard_ddl").await;
    assert!(all.is_empty(), "disabled kind reported:\n{}", pretty(&all));
}
