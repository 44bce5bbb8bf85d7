//! The Inspector never has more rights than the session it analyses, on real PostgreSQL: code the
//! planner runs while the Inspector EXPLAINs an unprivileged role's statement runs as that role
//! and cannot switch back to the Inspector's superuser login; what follows the first statement of
//! a multi-statement trick never runs on the Inspector; an Inspector that cannot act as the role
//! skips and counts; a superuser session's unindexed scan still gets its `missing_index` advice.

mod advice_common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use advice_common::{inspector_dsn, wait_for_advice};
use pgvisor::counters::ExplainOutcomes;
use pgvisor::inspector::explain::{plan_as, ExplainError};
use pgvisor_tests::{connect, connect_config, eventually, shared_cluster, unique_name, Cluster, Endpoint, TestProxy};
use tokio_postgres::Client;

/// The Inspector's backends, as PostgreSQL names them.
const INSPECTOR_APP: &str = "pgvisor-inspector";

/// A fresh login role (not a superuser) owning a schema of its name in a fresh database, where
/// `sql` runs as that role: `"$user", public` finds its tables only when the Inspector is it.
struct AppRole {
    name: String,
    password: String,
    database: String,
}

impl AppRole {
    async fn create(cluster: &Cluster, sql: &str) -> Self {
        let name = unique_name("app");
        let password = unique_name("pw");
        let database = unique_name("ip");
        let admin = connect(&cluster.endpoint()).await.unwrap();
        admin.batch_execute(&format!("create role {name} login password '{password}'")).await.unwrap();
        admin.batch_execute(&format!("create database {database}")).await.unwrap();
        let admin_db = connect(&cluster.endpoint().with_dbname(&database)).await.unwrap();
        admin_db.batch_execute(&format!("create schema {name} authorization {name}")).await.unwrap();
        let role = Self { name, password, database };
        let direct = connect(&role.at(&cluster.endpoint())).await.unwrap();
        direct.batch_execute(sql).await.unwrap_or_else(|e| panic!("setup as the role failed: {e}\n{sql}"));
        role
    }

    /// `endpoint` (the cluster or a proxy in front of it) with this role's login and database.
    fn at(&self, endpoint: &Endpoint) -> Endpoint {
        Endpoint {
            user: self.name.clone(),
            password: Some(self.password.clone()),
            ..endpoint.with_dbname(&self.database)
        }
    }
}

/// Every EXPLAIN outcome so far: explained, skipped_role, skipped_unexplainable, failed.
fn explains(proxy: &TestProxy) -> [u64; 4] {
    let c: &ExplainOutcomes = &proxy.stats().inspector_explains;
    [&c.explained, &c.skipped_role, &c.skipped_unexplainable, &c.failed].map(|a| a.load(Ordering::Relaxed))
}

/// Waits until the Inspector has reached `at_least` EXPLAIN outcomes in all.
async fn wait_for_explains(proxy: &TestProxy, at_least: u64) -> [u64; 4] {
    let done = eventually(Duration::from_secs(10), || async {
        let now = explains(proxy);
        (now.iter().sum::<u64>() >= at_least).then_some(now)
    })
    .await;
    done.unwrap_or_else(|| panic!("the Inspector never explained (outcomes so far: {:?})", explains(proxy)))
}

/// The outcomes once no EXPLAIN has finished for 1.5 s (the Inspector does one a second).
async fn settled(proxy: &TestProxy) -> [u64; 4] {
    let mut last = explains(proxy);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = explains(proxy);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the Inspector kept explaining: {last:?}");
}

/// Advisory locks (two-key form: `(classid, objid)`) the Inspector's backends hold now.
async fn inspector_locks(admin: &Client) -> Vec<(i64, i64)> {
    let rows = admin
        .query(
            "select l.classid::text::int8, l.objid::text::int8 from pg_locks l \
             join pg_stat_activity a on a.pid = l.pid \
             where l.locktype = 'advisory' and l.granted and a.application_name = $1",
            &[&INSPECTOR_APP],
        )
        .await
        .unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// An IMMUTABLE function the planner folds, owned by the role: it first tries to get back to the
/// Inspector's login (`set_config('role', 'none')`, which plain `SET ROLE` would allow), then
/// records who it runs as in a (shared) advisory lock on its own backend, `(1, 4242)` for a
/// superuser and `(2, 4242)` otherwise, held for 150 ms so a poller sees it, and takes a session
/// lock `(3, 4242)` the Inspector must release afterwards. Shared, so the application's own
/// session (which folds it too) does not block the Inspector.
const PROBE: &str = "
create table t (id int, val int);
insert into t select g, g % 100 from generate_series(1, 1000) g;
analyze t;
create function probe(k int) returns int language plpgsql immutable as $f$
declare
    superuser bool;
begin
    begin
        perform pg_catalog.set_config('role', 'none', true);
    exception when others then
        null;
    end;
    select rolsuper into superuser from pg_roles where rolname = current_user;
    perform pg_advisory_xact_lock_shared(case when superuser then 1 else 2 end, 4242);
    perform pg_advisory_lock_shared(3, 4242);
    perform pg_sleep(0.15);
    return k;
end
$f$;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_folded_code_runs_as_the_session_role() {
    let cluster = shared_cluster();
    let role = AppRole::create(cluster, PROBE).await;
    // The default Inspector: the cluster's superuser.
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;

    // Watch the Inspector's advisory locks from the side while it works.
    let admin = Arc::new(connect(&cluster.endpoint()).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (admin, stop) = (admin.clone(), stop.clone());
        async move {
            let mut seen = HashSet::new();
            while !stop.load(Ordering::Relaxed) {
                seen.extend(inspector_locks(&admin).await);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        }
    });

    let client = connect(&role.at(&proxy.endpoint())).await.unwrap();
    let rows = client.query("select id from t where val = probe(7) order by id limit 3", &[]).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>(), [7, 107, 207]);

    let outcomes = wait_for_explains(&proxy, 1).await;
    // The Inspector's backend leaves no lock behind once done: let the watcher see that too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.await.unwrap();

    assert_eq!(outcomes, [1, 0, 0, 0], "the statement is explained, as the role");
    assert!(!seen.contains(&(1, 4242)), "the role's function got the Inspector's superuser rights: {seen:?}");
    assert!(seen.contains(&(2, 4242)), "the planner ran the role's function on the Inspector as the role: {seen:?}");
    assert_eq!(inspector_locks(&admin).await, [], "DISCARD ALL releases the session lock the function took");
}

/// A function with a side effect that outlives its transaction: a row naming who ran it from which
/// application.
const MARK: &str = "
create table t (id int, val int);
insert into t select g, g % 100 from generate_series(1, 1000) g;
create table marks (who text, app text, via text);
create function mark(via text) returns int language sql volatile as $f$
    insert into marks values (current_user, current_setting('application_name'), via) returning 1
$f$;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_statement_never_reaches_the_inspector() {
    let cluster = shared_cluster();
    let role = AppRole::create(cluster, MARK).await;
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&role.at(&proxy.endpoint())).await.unwrap();

    // PostgreSQL runs three statements here (`begin` is a column, `atomic` its alias), and two in
    // the next (a `--` comment ends at a carriage return); a splitter that sees one statement
    // would once have let the Inspector run the rest as its own login, outside READ ONLY.
    // (`mark` is schema-qualified: after COMMIT the Inspector's search path would not find it.)
    let tricks = [
        format!(
            "SELECT x.begin atomic FROM (select 1 as begin) x WHERE pg_sleep(0.02) IS NOT NULL; COMMIT; \
             SELECT {}.mark('begin_atomic')",
            role.name
        ),
        format!("SELECT count(*), pg_sleep(0.02) FROM t -- note\r; SELECT {}.mark('carriage_return')", role.name),
    ];
    for sql in &tricks {
        client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // Each trick is at least one slow statement to explain (more if pgvisor splits it).
    wait_for_explains(&proxy, 2).await;
    let [explained, skipped_role, unexplainable, failed] = settled(&proxy).await;
    assert_eq!((skipped_role, failed), (0, 0), "{:?}", explains(&proxy));
    assert!(explained + unexplainable >= 2, "the Inspector looked at both: {:?}", explains(&proxy));

    // Whatever pgvisor's splitter makes of them, the Inspector's EXPLAIN of the whole text as the
    // role: PostgreSQL's Parse refuses the second statement, and the connection is left clean.
    let mut side = cluster.endpoint().with_dbname(&role.database).config();
    side.application_name(INSPECTOR_APP);
    let side = connect_config(&side).await.unwrap();
    for sql in &tricks {
        match plan_as(&side, &role.name, sql).await {
            Err(ExplainError::NotExplainable(e)) => assert!(e.contains("multiple commands"), "{sql}: {e}"),
            other => panic!("{sql}: {other:?}"),
        }
    }
    let row = side.query_one("select current_user::text, current_setting('transaction_read_only')", &[]).await;
    let row = row.unwrap();
    assert_eq!((row.get::<_, String>(0), row.get::<_, String>(1)), (cluster.endpoint().user, "off".into()));

    let admin = connect(&cluster.endpoint().with_dbname(&role.database)).await.unwrap();
    let marks: Vec<(String, String, String)> = admin
        .query(&format!("select who, app, via from {}.marks order by via", role.name), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    // The application's own session ran each trailing statement once, as PostgreSQL should.
    let vias: Vec<&str> = marks.iter().map(|(_, _, via)| via.as_str()).collect();
    assert_eq!(vias, ["begin_atomic", "carriage_return"], "{marks:?}");
    assert!(marks.iter().all(|(who, app, _)| who == &role.name && app != INSPECTOR_APP), "{marks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inspector_that_cannot_be_the_role_skips_and_counts() {
    let cluster = shared_cluster();
    let role = AppRole::create(
        cluster,
        "create table t (id int, val int); insert into t select g, g % 100 from generate_series(1, 20000) g; analyze t;",
    )
    .await;
    // The documented minimal Inspector: pg_monitor, not (yet) a member of the application's role.
    let inspector = unique_name("inspector");
    let password = unique_name("pw");
    let admin = connect(&cluster.endpoint()).await.unwrap();
    admin
        .batch_execute(&format!("create role {inspector} login password '{password}'; grant pg_monitor to {inspector}"))
        .await
        .unwrap();
    let e = cluster.endpoint();
    let dsn = format!("host={} port={} user={inspector} password={password} dbname={}", e.host, e.port, e.dbname);
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&role.at(&proxy.endpoint())).await.unwrap();

    let row = client.query_one("select count(*), pg_sleep(0.02) from t where val = 3", &[]).await;
    assert_eq!(row.unwrap().get::<_, i64>(0), 200, "the application's statement works as usual");
    assert_eq!(wait_for_explains(&proxy, 1).await, [0, 1, 0, 0], "skipped: cannot act as {}", role.name);
    let metrics = pgvisor::cli::report::http_request(proxy.admin_addr(), "GET", "/metrics", None).await.unwrap();
    assert!(metrics.contains("pgvisor_inspector_explains_total{outcome=\"skipped_role\"} 1"), "{metrics}");

    // Granted the role, as docs/inspector.md says, the same Inspector explains it.
    admin.batch_execute(&format!("grant {} to {inspector}", role.name)).await.unwrap();
    // Another statement: the engine does not ask about the skipped one again soon.
    client.query_one("select max(id), pg_sleep(0.02) from t where val = 5", &[]).await.unwrap();
    assert_eq!(wait_for_explains(&proxy, 2).await, [1, 1, 0, 0], "explained once the Inspector may be the role");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superuser_session_still_gets_missing_index_advice() {
    let cluster = shared_cluster();
    let db = unique_name("ip");
    connect(&cluster.endpoint()).await.unwrap().batch_execute(&format!("create database {db}")).await.unwrap();
    connect(&cluster.endpoint().with_dbname(&db))
        .await
        .unwrap()
        .batch_execute(
            "create table big (id int primary key, val int not null, note text not null);
             insert into big select g, g % 1000, md5(g::text) from generate_series(1, 50000) g;
             analyze big;",
        )
        .await
        .unwrap();
    let dsn = inspector_dsn(cluster, cluster.password());
    let proxy = pgvisor_tests::start_proxy_with(cluster, |s| s.inspector_dsn = Some(dsn)).await;
    let client = connect(&proxy.endpoint().with_dbname(&db)).await.unwrap();
    // A parameter: PREPAREd on the Inspector and planned generically with a NULL.
    let stmt = client.prepare("select count(*), pg_sleep(0.02) from big where val = $1").await.unwrap();
    client.query(&stmt, &[&42i32]).await.unwrap();

    let advice = wait_for_advice(&proxy, "missing_index", Duration::from_secs(10), |a| a["evidence"]["table"] == "big")
        .await
        .unwrap_or_else(|all| panic!("no missing_index for big (EXPLAINs {:?}):\n{all}", explains(&proxy)));
    assert_eq!(advice["evidence"]["columns"], serde_json::json!(["val"]), "{advice:#}");
    assert_eq!(explains(&proxy), [1, 0, 0, 0]);
}
