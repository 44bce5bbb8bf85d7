//! tokio-postgres through pgvisor: simple and extended queries, binary results, COPY in and out,
//! LISTEN/NOTIFY, notices, and query cancellation, compared with the same calls made directly.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};
use pgvisor_tests::{
    connect, connect_config, connect_with_messages, eventually, shared_cluster, sqlstate, start_proxy, unique_name,
    Endpoint,
};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls, SimpleQueryMessage};

/// A column's value exactly as the server sent it (binary format), whatever its type.
#[derive(Debug, PartialEq, Eq)]
struct RawValue(Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// What a client sees of a simple query: rows as text and command tags' row counts.
fn simple_query_view(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                let cols: Vec<String> = (0..row.len()).map(|i| format!("{:?}", row.get(i))).collect();
                format!("row {}", cols.join(" | "))
            }
            SimpleQueryMessage::CommandComplete(n) => format!("complete {n}"),
            SimpleQueryMessage::RowDescription(cols) => {
                format!("columns {}", cols.iter().map(|c| c.name()).collect::<Vec<_>>().join(","))
            }
            _ => "other".into(),
        })
        .collect()
}

async fn both(direct: &Endpoint, proxied: &Endpoint) -> (Client, Client) {
    let d = connect(direct).await.expect("connect directly");
    let p = connect(proxied).await.expect("connect through the proxy");
    (d, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_query_with_several_statements_matches_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let (direct, proxied) = both(&cluster.endpoint(), &proxy.endpoint()).await;
    let sql = "create temp table t (id int, v text); insert into t select g, 'v' || g from generate_series(1, 50) g; \
               select id, v, null::text as n from t where id % 10 = 0 order by id; update t set v = upper(v) where id < 5; \
               select count(*) from t; drop table t";
    let d = direct.simple_query(sql).await.expect("direct");
    let p = proxied.simple_query(sql).await.expect("proxied");
    assert_eq!(simple_query_view(&d), simple_query_view(&p));
    assert!(simple_query_view(&p).contains(&"complete 50".to_string()), "INSERT 0 50 seen");

    let d = direct.simple_query("select 1; select 1/0; select 2").await.unwrap_err();
    let p = proxied.simple_query("select 1; select 1/0; select 2").await.unwrap_err();
    assert_eq!((sqlstate(&p), p.to_string()), (sqlstate(&d), d.to_string()));
    assert_eq!(sqlstate(&p), Some("22012"));
    // The session is usable after the error.
    assert_eq!(
        simple_query_view(&proxied.simple_query("select 'still here'").await.unwrap())[1],
        "row Some(\"still here\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_queries_with_parameters_match_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let (direct, proxied) = both(&cluster.endpoint(), &proxy.endpoint()).await;
    for client in [&direct, &proxied] {
        let stmt = client
            .prepare("select $1::int + $2::int as sum, $3::text || '!' as shout, $4::bool as flag")
            .await
            .unwrap();
        for i in 0..20 {
            let row = client.query_one(&stmt, &[&i, &(i * 2), &format!("hi {i}"), &(i % 2 == 0)]).await.unwrap();
            assert_eq!(row.get::<_, i32>("sum"), i * 3);
            assert_eq!(row.get::<_, String>("shout"), format!("hi {i}!"));
            assert_eq!(row.get::<_, bool>("flag"), i % 2 == 0);
        }
        let none: Option<i32> = None;
        let row = client.query_one("select $1::int is null, coalesce($1::int, -1)", &[&none]).await.unwrap();
        assert!(row.get::<_, bool>(0));
        assert_eq!(row.get::<_, i32>(1), -1);
        let rows = client.query("select g from generate_series(1, $1::int) g", &[&1000]).await.unwrap();
        assert_eq!(rows.len(), 1000);
    }
    for (sql, code) in [("select 1 / $1::int", "22012"), ("select * from no_such_table where id = $1::int", "42P01")] {
        let d = direct.query(sql, &[&0i32]).await.unwrap_err();
        let p = proxied.query(sql, &[&0i32]).await.unwrap_err();
        assert_eq!(sqlstate(&p), Some(code));
        assert_eq!(p.to_string(), d.to_string());
    }
    let mut tx_client = connect(&proxy.endpoint()).await.unwrap();
    let tx = tx_client.transaction().await.unwrap();
    tx.execute("create temp table tx_t (id int)", &[]).await.unwrap();
    assert_eq!(tx.execute("insert into tx_t select generate_series(1, $1::int)", &[&7]).await.unwrap(), 7);
    tx.rollback().await.unwrap();
    let err = tx_client.query("select * from tx_t", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err), Some("42P01"), "the rolled-back table is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_for_common_types_match_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let (direct, proxied) = both(&cluster.endpoint(), &proxy.endpoint()).await;
    let sql = "select 42::int2, 2147483647::int4, (-9007199254740993)::int8, 3.5::float8, true, 'grüße'::text, \
               '\\xdeadbeef00'::bytea, 12345678901234567890.0123456789::numeric, \
               '2024-02-29 12:34:56.789012+00'::timestamptz, '{\"a\": [1, 2, {\"b\": null}]}'::jsonb, \
               array[1, null, 3]::int4[], array['x', 'y z']::text[], \
               '0e9c2d64-6b4f-4c3a-9a5e-2f1d5c1b7a00'::uuid, interval '1 day 2 hours', null::int";
    let d = direct.query_one(sql, &[]).await.unwrap();
    let p = proxied.query_one(sql, &[]).await.unwrap();
    assert_eq!(p.len(), 15);
    for i in 0..p.len() {
        let (dv, pv) = (d.get::<_, Option<RawValue>>(i), p.get::<_, Option<RawValue>>(i));
        assert_eq!(dv, pv, "column {i} ({}) differs in binary", p.columns()[i].type_());
    }
    assert_eq!(p.get::<_, i16>(0), 42);
    assert_eq!(p.get::<_, i32>(1), i32::MAX);
    assert_eq!(p.get::<_, i64>(2), -9_007_199_254_740_993);
    assert_eq!(p.get::<_, f64>(3), 3.5);
    assert!(p.get::<_, bool>(4));
    assert_eq!(p.get::<_, &str>(5), "grüße");
    assert_eq!(p.get::<_, &[u8]>(6), &[0xde, 0xad, 0xbe, 0xef, 0x00]);
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_709_210_096_789_012);
    assert_eq!(p.get::<_, SystemTime>(8), at);
    assert_eq!(p.get::<_, serde_json::Value>(9), serde_json::json!({"a": [1, 2, {"b": null}]}));
    assert_eq!(p.get::<_, Vec<Option<i32>>>(10), vec![Some(1), None, Some(3)]);
    assert_eq!(p.get::<_, Vec<String>>(11), vec!["x".to_string(), "y z".to_string()]);
    assert_eq!(p.get::<_, Option<i32>>(14), None);
    // numeric has no built-in Rust decoding: its binary form is compared above, its value here.
    let text: String = proxied
        .query_one("select $1::text::numeric::text", &[&"12345678901234567890.0123456789"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "12345678901234567890.0123456789");

    // Binary parameters travel the other way unchanged.
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let row =
        proxied.query_one("select $1::bytea = $2::bytea, length($1::bytea), $1::bytea", &[&blob, &blob]).await.unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i32>(1), 100_000);
    assert_eq!(row.get::<_, Vec<u8>>(2), blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_copy_out_match_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let (direct, proxied) = both(&cluster.endpoint(), &proxy.endpoint()).await;
    let mut data = String::new();
    for i in 0..30_000 {
        data.push_str(&format!(
            "{i}\tname {i}\t{}\n",
            if i % 7 == 0 { "\\N".to_string() } else { (i * 11).to_string() }
        ));
    }
    let mut outputs = Vec::new();
    for client in [&direct, &proxied] {
        client.batch_execute("create temp table c (id int, name text, n int)").await.unwrap();
        let sink = client.copy_in("copy c from stdin").await.unwrap();
        futures_util::pin_mut!(sink);
        // Uneven chunks, so COPY data messages do not line up with rows.
        for chunk in data.as_bytes().chunks(7_919) {
            sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        assert_eq!(sink.finish().await.unwrap(), 30_000);
        let out: Vec<Bytes> =
            client.copy_out("copy (select * from c order by id) to stdout").await.unwrap().try_collect().await.unwrap();
        outputs.push(out.concat());
    }
    assert_eq!(outputs[0].len(), data.len());
    assert!(outputs[0] == outputs[1], "COPY OUT differs direct vs proxied");
    assert!(outputs[1] == data.as_bytes(), "COPY round trip through the proxy changed the data");

    // A COPY the server rejects mid-stream reports the same error.
    let mut errors = Vec::new();
    for client in [&direct, &proxied] {
        let sink = client.copy_in("copy c from stdin").await.unwrap();
        futures_util::pin_mut!(sink);
        sink.send(Bytes::from_static(b"1\tok\t1\nnot a number\tx\t2\n")).await.unwrap();
        errors.push(sink.finish().await.unwrap_err());
    }
    assert_eq!(sqlstate(&errors[1]), Some("22P02"));
    assert_eq!(errors[0].to_string(), errors[1].to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_and_notices_are_delivered_through_the_proxy() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let channel = unique_name("chan");
    let (listener, mut messages) = connect_with_messages(&proxy.endpoint().config()).await.unwrap();
    listener.batch_execute(&format!("listen {channel}")).await.unwrap();
    let direct = connect(&cluster.endpoint()).await.unwrap();
    let proxied = connect(&proxy.endpoint()).await.unwrap();
    let direct_pid: i32 = direct.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let proxied_pid: i32 = proxied.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    direct.execute("select pg_notify($1, 'from direct')", &[&channel]).await.unwrap();
    proxied.batch_execute(&format!("notify {channel}, 'from the proxy'")).await.unwrap();

    let mut received = Vec::new();
    while received.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the connection stays open")
            .expect("no connection error");
        if let AsyncMessage::Notification(n) = message {
            received.push((n.channel().to_string(), n.payload().to_string(), n.process_id()));
        }
    }
    assert_eq!(
        received,
        vec![
            (channel.clone(), "from direct".to_string(), direct_pid),
            (channel.clone(), "from the proxy".to_string(), proxied_pid)
        ]
    );

    // Notices arrive as they are raised, with their SQLSTATE.
    listener.batch_execute("do $$ begin raise notice 'first %', 1; raise warning 'second'; end $$").await.unwrap();
    let mut notices = Vec::new();
    while notices.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.recv()).await.unwrap().unwrap().unwrap();
        if let AsyncMessage::Notice(n) = message {
            notices.push((n.severity().to_string(), n.code().code().to_string(), n.message().to_string()));
        }
    }
    assert_eq!(
        notices,
        vec![
            ("NOTICE".to_string(), "00000".to_string(), "first 1".to_string()),
            ("WARNING".to_string(), "01000".to_string(), "second".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_token_cancels_a_query_through_the_proxy() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let app = unique_name("cancel");
    let mut config = proxy.endpoint().config();
    config.application_name(&app);
    let client = connect_config(&config).await.unwrap();
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = tokio::spawn(async move {
        let result = client.simple_query("select pg_sleep(10)").await;
        (client, result)
    });
    let observer = connect(&cluster.endpoint()).await.unwrap();
    let running = eventually(Duration::from_secs(5), || async {
        let n: i64 = observer
            .query_one(
                "select count(*) from pg_stat_activity where application_name = $1 and state = 'active' and query like '%pg_sleep%'",
                &[&app],
            )
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    assert!(running.is_some(), "the query did not start");
    token.cancel_query(NoTls).await.expect("send the cancel request through the proxy");
    let (client, result) =
        tokio::time::timeout(Duration::from_secs(5), sleeper).await.expect("cancelled in time").unwrap();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(sqlstate(&err), Some("57014"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(8), "ended by the cancel, not by finishing");
    assert_eq!(proxy.counter(|s| &s.cancel_requests), 1);
    let row = client.query_one("select 'usable after cancel'", &[]).await.unwrap();
    assert_eq!(row.get::<_, &str>(0), "usable after cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_pid_through_the_proxy_is_the_upstream_backend() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let app = unique_name("pid");
    let mut config = proxy.endpoint().config();
    config.application_name(&app);
    let client = connect_config(&config).await.unwrap();
    let pid: i32 = client.query_one("select pg_backend_pid()", &[]).await.unwrap().get(0);
    let observer = connect(&cluster.endpoint()).await.unwrap();
    let seen: Vec<i32> = observer
        .query("select pid from pg_stat_activity where application_name = $1", &[&app])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seen, vec![pid]);
}
