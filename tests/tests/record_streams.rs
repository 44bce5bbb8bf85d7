//! Regenerates advisor/tests/streams/*.stream: real clients (psql, pgbench, tokio-postgres)
//! talking to a real PostgreSQL, recorded chunk by chunk. Run on purpose only:
//! `cargo test -p pgvisor-tests --test record_streams -- --ignored`; review and commit the files.

use std::path::PathBuf;

use futures_util::{future, pin_mut, TryStreamExt};
use pgvisor_tests::cli::{pgbench, run, CliOutput};
use pgvisor_tests::recorder::Recorder;
use pgvisor_tests::{connect, shared_cluster, unique_name, Endpoint};

fn streams_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../advisor/tests/streams")
}

/// Saves the largest recording (the session under test, not pgbench's set-up connections).
fn save(recorder: &Recorder, name: &str) {
    let recording = recorder.recordings().into_iter().max_by_key(Vec::len).expect("a connection was recorded");
    std::fs::create_dir_all(streams_dir()).unwrap();
    std::fs::write(streams_dir().join(format!("{name}.stream")), recording).unwrap();
}

fn plain(endpoint: &Endpoint, recorder: &Recorder) -> Endpoint {
    endpoint.at("127.0.0.1", recorder.addr().port())
}

async fn no_tls(program: &str, endpoint: &Endpoint, args: &[&str], stdin: Option<&str>) -> CliOutput {
    run(program, endpoint, args, stdin, &std::env::temp_dir(), &[("PGSSLMODE", "disable")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regenerates committed fixtures; run on purpose"]
async fn record_real_client_streams() {
    let cluster = shared_cluster();
    let db = unique_name("rec");
    connect(&cluster.endpoint()).await.unwrap().batch_execute(&format!("create database {db}")).await.unwrap();
    let direct = cluster.endpoint().with_dbname(&db);
    assert_eq!(pgbench(&direct, &["-i", "-s", "1", "-q"]).await.code(), 0);
    let upstream = format!("127.0.0.1:{}", cluster.endpoint().port).parse().unwrap();

    for (name, args) in [
        ("pgbench_select_prepared", vec!["-S", "-M", "prepared", "-t", "20", "-n"]),
        ("pgbench_select_simple", vec!["-S", "-M", "simple", "-t", "20", "-n"]),
        ("pgbench_tpcb_extended", vec!["-M", "extended", "-t", "20", "-n"]),
    ] {
        let recorder = Recorder::start(upstream).await;
        let out = no_tls("pgbench", &plain(&direct, &recorder), &args, None).await;
        assert_eq!(out.code(), 0, "{name}: {}", out.stderr);
        save(&recorder, name);
    }

    let recorder = Recorder::start(upstream).await;
    let script = "\
create temp table t (id int primary key, name text);
insert into t values (1, 'a'), (2, 'b'); select * from t order by id;
select 1/0;
\\copy t from stdin
3\tc
4\td
\\.
\\copy t to stdout
do $$ begin raise notice 'hello'; end $$;
begin; update t set name = 'x' where id = 1; select count(*) from t; commit;
";
    let out = no_tls("psql", &plain(&direct, &recorder), &["-X", "-q", "-f", "-"], Some(script)).await;
    assert!(out.stderr.contains("division by zero"), "{}", out.stderr);
    save(&recorder, "psql_script");

    let recorder = Recorder::start(upstream).await;
    let mut config = plain(&direct, &recorder).config();
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    let conn = tokio::spawn(connection);
    let stmt = client.prepare("select aid, abalance from pgbench_accounts where aid = $1").await.unwrap();
    // Pipelined: ten executions in flight at once.
    let runs = (1..=10i32).map(|aid| {
        let (client, stmt) = (&client, &stmt);
        async move { client.query_one(stmt, &[&aid]).await }
    });
    future::try_join_all(runs).await.unwrap();
    // A row-limited portal: 25 rows fetched 10 at a time (PortalSuspended twice).
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    let portal = tx.bind("select aid from pgbench_accounts where aid <= $1 order by aid", &[&25i32]).await.unwrap();
    let mut fetched = 0;
    loop {
        let rows = tx.query_portal_raw(&portal, 10).await.unwrap();
        pin_mut!(rows);
        let mut n = 0;
        while rows.try_next().await.unwrap().is_some() {
            n += 1;
        }
        fetched += n;
        if n < 10 {
            break;
        }
    }
    assert_eq!(fetched, 25);
    tx.commit().await.unwrap();
    // An error in the extended protocol, then the session goes on.
    assert!(client.query("select $1::int / 0", &[&1i32]).await.is_err());
    client.query_one("select 2", &[]).await.unwrap();
    drop(client);
    let _ = conn.await;
    save(&recorder, "tokio_postgres_pipeline");
}
