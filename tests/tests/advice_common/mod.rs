//! Helpers shared by the advice tests: reading `/api/advice` as a user would, waiting for a
//! finding with a deadline, and a schema of its own per test so table names read naturally
//! (`users`, `orders`) in the advice while tests sharing the cluster stay apart.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use pgvisor_tests::{connect, connect_config, unique_name, Cluster, Endpoint, TestProxy};
use serde_json::Value;
use tokio_postgres::Client;

/// Every advice on `GET /api/advice`.
pub async fn advice(proxy: &TestProxy) -> Vec<Value> {
    let body = proxy.admin_get("/api/advice").await;
    body["advice"].as_array().unwrap_or_else(|| panic!("no advice array in {body}")).clone()
}

/// The advice of one kind.
pub async fn advice_of(proxy: &TestProxy, kind: &str) -> Vec<Value> {
    advice(proxy).await.into_iter().filter(|a| a["kind"] == kind).collect()
}

/// Polls `/api/advice` until an advice of `kind` satisfies `check`, or `timeout` passes; the
/// error is everything the API showed last, for the failure message.
pub async fn wait_for_advice(
    proxy: &TestProxy,
    kind: &str,
    timeout: Duration,
    check: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let all = advice(proxy).await;
        if let Some(found) = all.iter().find(|a| a["kind"] == kind && check(a)) {
            return Ok(found.clone());
        }
        if Instant::now() >= deadline {
            return Err(pretty(&all));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Pretty JSON of a list of advice, for assertion messages.
pub fn pretty(all: &[Value]) -> String {
    serde_json::to_string_pretty(all).unwrap_or_default()
}

/// Runs a statement whose normalised text contains a fresh marker (a column name: aliases are
/// not part of a statement's shape), and waits until
/// `/api/queries` lists it: the engine applies events in order, so every finding the statements
/// before it produced is on `/api/advice` by then.
pub async fn drained(proxy: &TestProxy, client: &Client) {
    proxy.drained_through(client).await;
}

/// A fresh schema on `cluster`; returns its name.
pub async fn create_schema(cluster: &Cluster) -> String {
    let schema = unique_name("adv");
    let admin = connect(&cluster.endpoint()).await.expect("connect directly");
    admin.batch_execute(&format!("create schema {schema}")).await.expect("create schema");
    schema
}

/// Runs `sql` directly on the cluster (not through pgvisor) with `schema` first on the search path.
pub async fn setup(cluster: &Cluster, schema: &str, sql: &str) {
    let client = connect_in(&cluster.endpoint(), schema).await;
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("setup failed: {e}\n{sql}"));
}

/// Connects to `endpoint` (directly or through pgvisor) with `schema` as the search path, set in
/// the startup packet so no extra statement shows up in the session.
pub async fn connect_in(endpoint: &Endpoint, schema: &str) -> Client {
    let mut config = endpoint.config();
    config.options(format!("-c search_path={schema}"));
    connect_config(&config).await.unwrap_or_else(|e| panic!("connect to {}: {e}", endpoint.address()))
}

/// `users` (ids 1..=20) and `orders` (three per user, ids 1..=60).
pub const USERS_AND_ORDERS: &str = "
    create table users (id int primary key, name text not null);
    create table orders (id int primary key, user_id int not null references users, total numeric not null);
    insert into users select i, 'user ' || i from generate_series(1, 20) i;
    insert into orders select i, (i - 1) % 20 + 1, i * 1.5 from generate_series(1, 60) i;
";

/// The superuser's connection string straight to the cluster, as `--inspector-dsn` takes it.
pub fn inspector_dsn(cluster: &Cluster, password: &str) -> String {
    let e = cluster.endpoint();
    format!("host={} port={} user={} password={password} dbname={}", e.host, e.port, e.user, e.dbname)
}

/// The backend pid of a client's session.
pub async fn backend_pid(client: &Client) -> u32 {
    let row = client.query_one("select pg_backend_pid()", &[]).await.expect("pg_backend_pid");
    row.get::<_, i32>(0) as u32
}

/// The statements an evidence object lists under `key`, as strings.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}
