//! Attribution: tags that frameworks write into SQL comments (sqlcommenter, Marginalia,
//! `key=value`) and the session's application_name show who ran each fingerprint on
//! `/api/queries` (with a `tag=` filter) and in the evidence of advice; they never split a
//! fingerprint, and trace ids are links, not grouping keys.

mod advice_common;

use std::time::Duration;

use advice_common::{advice_of, connect_in, create_schema, setup, USERS_AND_ORDERS};
use pgvisor_tests::{eventually, shared_cluster, start_proxy};
use serde_json::Value;

fn rows_for<'a>(queries: &'a Value, prefix: &str) -> Vec<&'a Value> {
    queries["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| {
            q["query"].as_str().is_some_and(|t| t.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_name_the_callers_of_a_fingerprint_and_filter_the_list() {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, USERS_AND_ORDERS).await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    client.batch_execute("set application_name = 'shop-web'").await.unwrap();

    for i in 0..6 {
        let trace = format!("00-{i:032x}-c532cb4098ac3dd2-01");
        let route = if i < 4 { "%2Fusers%2F%3Aid" } else { "%2Fadmin%2Fusers" };
        let sql = format!(
            "SELECT id, name FROM users WHERE id = $1 /*action='show',controller='users',route='{route}',traceparent='{trace}'*/"
        );
        client.query(sql.as_str(), &[&(i % 3 + 1)]).await.unwrap();
    }
    client
        .query("/*application:Blog,controller:posts,action:index*/ SELECT id, name FROM users WHERE id = $1", &[&1])
        .await
        .unwrap();
    client.query("SELECT count(*) FROM orders -- job=nightly", &[]).await.unwrap();

    let queries = proxy.admin_get("/api/queries?sort=calls&limit=100").await;
    let users = rows_for(&queries, "SELECT id, name FROM users");
    assert_eq!(users.len(), 1, "comments never split a fingerprint: {queries:#}");
    let tags = &users[0]["tags"];
    assert_eq!(users[0]["calls"], 7, "{queries:#}");
    assert_eq!(tags["route"][0], serde_json::json!({"value": "/users/:id", "calls": 4}), "{tags:#}");
    assert_eq!(tags["route"][1], serde_json::json!({"value": "/admin/users", "calls": 2}), "{tags:#}");
    assert_eq!(tags["controller"].as_array().unwrap().len(), 2, "users and posts: {tags:#}");
    assert_eq!(tags["application_name"][0]["value"], "shop-web");
    assert!(tags.get("traceparent").is_none(), "a trace is a link, not a caller: {tags:#}");
    let orders = rows_for(&queries, "SELECT count(*) FROM orders");
    assert_eq!(orders[0]["tags"]["job"][0]["value"], "nightly", "{queries:#}");

    let filtered = proxy.admin_get("/api/queries?tag=route:/admin/users").await;
    assert_eq!(filtered["queries"].as_array().unwrap().len(), 1, "{filtered:#}");
    let none = proxy.admin_get("/api/queries?tag=route:/nowhere").await;
    assert!(none["queries"].as_array().unwrap().is_empty(), "{none:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_n_plus_one_names_the_route_that_ran_it() {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(cluster, &schema, USERS_AND_ORDERS).await;
    let proxy = start_proxy(cluster).await;
    let client = connect_in(&proxy.endpoint(), &schema).await;
    let tag =
        "/*controller='users',route='%2Fusers',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/";
    let users = client.query(format!("SELECT id FROM users ORDER BY id {tag}").as_str(), &[]).await.unwrap();
    for row in &users {
        let id: i32 = row.get(0);
        client.query(format!("SELECT id, total FROM orders WHERE user_id = $1 {tag}").as_str(), &[&id]).await.unwrap();
    }
    client.simple_query("select 1").await.unwrap();
    let found = eventually(Duration::from_secs(5), || async {
        let all = advice_of(&proxy, "n_plus_one").await;
        (!all.is_empty()).then_some(all)
    })
    .await
    .expect("the N+1 is found");
    let evidence = &found[0]["evidence"];
    assert_eq!(evidence["tags"]["route"], "/users", "{evidence:#}");
    assert_eq!(evidence["trace_ids"], serde_json::json!(["5bd66ef5095369c7b0d1f8f4bd33716a"]), "{evidence:#}");
    assert!(found[0]["message"].as_str().unwrap().contains("route /users"), "{:#}", found[0]);
}
