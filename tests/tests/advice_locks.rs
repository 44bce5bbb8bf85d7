//! Lock advice through pgvisor between real sessions, judged on `GET /api/advice`:
//! `lock_contention` with the Inspector (PostgreSQL names the blocker; pgvisor adds what its
//! transaction ran), without it (`inspector_unavailable` once, then suspects from the wire),
//! and `deadlock` (both sides named, with their statements).

mod advice_common;

use std::time::{Duration, Instant};

use advice_common::{
    advice_of, backend_pid, connect_in, create_schema, inspector_dsn, pretty, setup, strings, wait_for_advice,
};
use pgvisor_tests::{shared_cluster, sqlstate, start_proxy_with, TestProxy};
use serde_json::Value;
use tokio_postgres::Client;

/// A's write, as pgvisor normalises it.
const A_UPDATE: &str = "UPDATE t SET v = v + $1 WHERE id = $2";
/// B's write, which waits for A's row lock.
const B_UPDATE: &str = "UPDATE t SET v = $1 WHERE id = $2";

/// A proxy with the given Inspector connection string (or none), and two sessions through it in a
/// fresh schema holding `t`.
async fn two_sessions(inspector: Option<String>) -> (TestProxy, Client, Client) {
    let cluster = shared_cluster();
    let schema = create_schema(cluster).await;
    setup(
        cluster,
        &schema,
        "create table t (id int primary key, v int not null default 0, a int not null default 0, b int not null default 0);
         insert into t (id) values (1), (2);",
    )
    .await;
    let proxy = start_proxy_with(cluster, |s| s.inspector_dsn = inspector).await;
    let a = connect_in(&proxy.endpoint(), &schema).await;
    let b = connect_in(&proxy.endpoint(), &schema).await;
    (proxy, a, b)
}

/// A opens a transaction and updates row 1; B then updates row 1 and waits until A commits
/// after `hold`. Returns B's client and how long B's UPDATE took as B saw it. `during` runs
/// while B waits.
async fn contend<F: std::future::Future<Output = ()>>(
    a: &Client,
    b: Client,
    hold: Duration,
    during: impl FnOnce(Instant) -> F,
) -> (Client, Duration) {
    a.simple_query("begin").await.unwrap();
    a.simple_query("update t set v = v + 1 where id = 1").await.unwrap();
    let held = Instant::now();
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let result = b.simple_query("update t set v = 0 where id = 1").await;
        (b, result, started.elapsed())
    });
    during(held).await;
    tokio::time::sleep(hold.saturating_sub(held.elapsed())).await;
    a.simple_query("commit").await.unwrap();
    let (b, result, waited) = waiter.await.unwrap();
    result.expect("B's update goes through once A commits");
    (b, waited)
}

fn blocker_with_pid(advice: &Value, pid: u32) -> Option<&Value> {
    advice["evidence"]["blockers"].as_array()?.iter().find(|s| s["pid"] == pid)
}

/// A blocker entry is A: its pid, and A's UPDATE among its transaction's statements.
fn names_a(advice: &Value, a_pid: u32) -> bool {
    blocker_with_pid(advice, a_pid).is_some_and(|s| strings(&s["statements"]).iter().any(|t| t == A_UPDATE))
}

/// What the API showed while B waited and after, with the Inspector configured.
struct InspectedWait {
    proxy: TestProxy,
    a_pid: u32,
    b_pid: u32,
    /// The first confirmed lock_contention advice while B waited, or everything the API showed.
    during: Result<Value, String>,
    /// How long B's UPDATE took, as B saw it.
    b_waited: Duration,
}

/// A holds row 1 for 2.5 s while B waits for it, through a proxy whose Inspector can log in.
/// (The Inspector must answer while B still waits, 200 ms of lock wait plus a check or two in;
/// on a loaded 2-CPU machine 1.5 s was once not enough.)
async fn inspected_wait() -> InspectedWait {
    let cluster = shared_cluster();
    let (proxy, a, b) = two_sessions(Some(inspector_dsn(cluster, cluster.password()))).await;
    let (a_pid, b_pid) = (backend_pid(&a).await, backend_pid(&b).await);
    let mut during = None;
    let (_b, b_waited) = contend(&a, b, Duration::from_millis(2500), |_| {
        let proxy = &proxy;
        let seen = &mut during;
        async move {
            // lock_wait is 200 ms; the advice is due within 1 s after that.
            *seen = Some(
                wait_for_advice(proxy, "lock_contention", Duration::from_millis(2200), |x| {
                    x["evidence"]["confirmed"] == true
                })
                .await,
            );
        }
    })
    .await;
    assert!(b_waited > Duration::from_millis(1200), "B waited only {b_waited:?}");
    InspectedWait { proxy, a_pid, b_pid, during: during.unwrap(), b_waited }
}

/// With the Inspector, while B waits: PostgreSQL confirms A blocks B, and the advice shows A's
/// transaction (BEGIN, then its UPDATE, idle in it) and B's statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_names_the_blocker_and_its_update() {
    let InspectedWait { proxy, a_pid, b_pid, during, .. } = inspected_wait().await;
    let during = during.unwrap_or_else(|all| panic!("no confirmed lock_contention while B waited:\n{all}"));
    let e = &during["evidence"];
    assert_eq!(e["waiter"]["pid"], b_pid, "{during:#}");
    assert_eq!(e["waiter_statement"], B_UPDATE, "{during:#}");
    assert_eq!(e["blocking_pids"], serde_json::json!([a_pid]), "{during:#}");
    assert_eq!(e["root_blocker_pids"], serde_json::json!([a_pid]), "{during:#}");
    let blocker =
        blocker_with_pid(&during, a_pid).unwrap_or_else(|| panic!("A (pid {a_pid}) not a blocker: {during:#}"));
    assert_eq!(strings(&blocker["statements"]), vec!["BEGIN", A_UPDATE], "A's transaction: {during:#}");
    assert_eq!(blocker["state"], "idle_in_transaction", "{during:#}");
    assert!(blocker["transaction_ms"].as_f64().is_some_and(|ms| ms >= 200.0), "{during:#}");
    assert!(e["wait_ms"].as_f64().is_some_and(|ms| ms >= 200.0), "{during:#}");
    assert!(e["wait_event"].as_str().is_some_and(|w| w.starts_with("Lock:")), "{during:#}");
    let message = during["message"].as_str().unwrap_or_default();
    assert!(message.contains(A_UPDATE) && message.contains("is idle in it"), "message: {message}");

    // B waited about 2.4 s: an advice naming A's UPDATE says more than 1 s (the stricter
    // "final update when the wait ends" is lock_wait_final_update_keeps_the_blocker).
    let long = wait_for_advice(&proxy, "lock_contention", Duration::from_secs(1), |x| {
        x["evidence"]["confirmed"] == true
            && names_a(x, a_pid)
            && x["evidence"]["wait_ms"].as_f64().is_some_and(|ms| ms > 1000.0)
    })
    .await;
    long.unwrap_or_else(|all| panic!("no confirmed lock_contention naming A with wait_ms > 1000:\n{all}"));
    assert!(advice_of(&proxy, "inspector_unavailable").await.is_empty());
}

/// With the Inspector, after B's UPDATE went through: one advice for the one wait, carrying
/// B's whole wait (above 1 s for a 2.5 s hold) and still naming A and its UPDATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_wait_final_update_keeps_the_blocker() {
    let InspectedWait { proxy, a_pid, b_waited, .. } = inspected_wait().await;
    let done = wait_for_advice(&proxy, "lock_contention", Duration::from_secs(2), |x| {
        x["evidence"]["confirmed"] == true
            && x["evidence"]["waiter"]["state"] != "active"
            && x["evidence"]["wait_ms"].as_f64().is_some_and(|ms| ms > 1000.0)
            && names_a(x, a_pid)
    })
    .await
    .unwrap_or_else(|all| {
        panic!(
            "after B's UPDATE ended ({b_waited:?}), no confirmed lock_contention with the final wait_ms > 1000 that \
             still names A's UPDATE; /api/advice:\n{all}"
        )
    });
    let wait_ms = done["evidence"]["wait_ms"].as_f64().unwrap();
    assert!(wait_ms <= b_waited.as_secs_f64() * 1000.0 + 50.0, "wait_ms {wait_ms} > B's own {b_waited:?}: {done:#}");
    let all = advice_of(&proxy, "lock_contention").await;
    assert_eq!(all.len(), 1, "one wait is one advice:\n{}", pretty(&all));
    assert_eq!(all[0]["count"], 1, "{}", pretty(&all));
}

/// The Inspector cannot log in (wrong password): `inspector_unavailable` once, with the reason
/// and the flag, and lock waits fall back to the wire: A, which wrote to `t` in its open
/// transaction, is the suspect, unconfirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_inspector_login_the_suspect_comes_from_the_wire() {
    let cluster = shared_cluster();
    let (proxy, a, b) = two_sessions(Some(inspector_dsn(cluster, "not-the-password"))).await;
    let a_pid = backend_pid(&a).await;

    let mut seen_during = None;
    let (b, _) = contend(&a, b, Duration::from_millis(1200), |_| {
        let proxy = &proxy;
        let seen = &mut seen_during;
        async move {
            *seen = Some(
                wait_for_advice(proxy, "lock_contention", Duration::from_millis(1100), |x| names_a(x, a_pid)).await,
            );
        }
    })
    .await;
    let during =
        seen_during.unwrap().unwrap_or_else(|all| panic!("no lock_contention naming A while B waited:\n{all}"));
    assert_eq!(during["evidence"]["confirmed"], false, "nobody asked PostgreSQL: {during:#}");
    assert_eq!(during["evidence"]["waiter_statement"], B_UPDATE, "{during:#}");
    assert_eq!(during["evidence"]["blocking_pids"], Value::Null, "{during:#}");

    let unavailable = advice_of(&proxy, "inspector_unavailable").await;
    assert_eq!(unavailable.len(), 1, "{}", pretty(&unavailable));
    let u = &unavailable[0];
    assert_eq!(u["evidence"]["flag"], "--inspector-dsn", "{u:#}");
    let reason = u["evidence"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("password authentication failed"), "reason: {reason}: {u:#}");
    assert!(u["message"].as_str().is_some_and(|m| m.contains(reason)), "{u:#}");
    assert!(u["suggestion"].as_str().is_some_and(|s| s.contains("--inspector-dsn")), "{u:#}");

    // A second wait: the Inspector is still down, and says so only once.
    let (_b, _) = contend(&a, b, Duration::from_millis(700), |_| async {}).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let unavailable = advice_of(&proxy, "inspector_unavailable").await;
    assert_eq!(unavailable.len(), 1, "{}", pretty(&unavailable));
    assert_eq!(unavailable[0]["count"], 1, "said once: {}", pretty(&unavailable));
}

/// No Inspector configured at all (`inspector_dsn: None`): the wire alone still names A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_inspector_still_names_the_suspect() {
    let (proxy, a, b) = two_sessions(None).await;
    let a_pid = backend_pid(&a).await;
    let mut seen_during = None;
    contend(&a, b, Duration::from_millis(1000), |_| {
        let proxy = &proxy;
        let seen = &mut seen_during;
        async move {
            *seen = Some(
                wait_for_advice(proxy, "lock_contention", Duration::from_millis(900), |x| names_a(x, a_pid)).await,
            );
        }
    })
    .await;
    let during =
        seen_during.unwrap().unwrap_or_else(|all| panic!("no lock_contention naming A while B waited:\n{all}"));
    assert_eq!(during["evidence"]["confirmed"], false, "{during:#}");
    let blocker = blocker_with_pid(&during, a_pid).unwrap();
    assert_eq!(strings(&blocker["statements"]), vec!["BEGIN", A_UPDATE], "{during:#}");
}

/// Without an Inspector, after B's UPDATE went through: the advice gets B's whole wait too,
/// still naming A (the suspect) and its UPDATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_inspector_final_update_keeps_the_suspect() {
    let (proxy, a, b) = two_sessions(None).await;
    let a_pid = backend_pid(&a).await;
    let (_b, b_waited) = contend(&a, b, Duration::from_millis(1300), |_| async {}).await;
    let done = wait_for_advice(&proxy, "lock_contention", Duration::from_secs(2), |x| {
        x["evidence"]["waiter"]["state"] != "active"
            && x["evidence"]["wait_ms"].as_f64().is_some_and(|ms| ms > 1000.0)
            && names_a(x, a_pid)
    })
    .await
    .unwrap_or_else(|all| {
        panic!(
            "after B's UPDATE ended ({b_waited:?}), no lock_contention with the final wait_ms > 1000 that still \
             names A's UPDATE; /api/advice:\n{all}"
        )
    });
    assert_eq!(done["evidence"]["confirmed"], false, "{done:#}");
    let all = advice_of(&proxy, "lock_contention").await;
    assert_eq!(all.len(), 1, "one wait is one advice:\n{}", pretty(&all));
}

/// Two sessions update two rows in opposite order: PostgreSQL aborts one with 40P01, and the
/// advice names both backends with the UPDATE each ran in its transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlock_names_both_sides() {
    let (proxy, a, b) = two_sessions(None).await;
    let (a_pid, b_pid) = (backend_pid(&a).await, backend_pid(&b).await);
    a.simple_query("begin").await.unwrap();
    a.simple_query("update t set a = 1 where id = 1").await.unwrap();
    b.simple_query("begin").await.unwrap();
    b.simple_query("update t set b = 1 where id = 2").await.unwrap();
    let (a_second, b_second) = tokio::join!(a.simple_query("update t set a = 2 where id = 2"), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.simple_query("update t set b = 2 where id = 1").await
    });
    let codes = [a_second.as_ref().err().and_then(sqlstate), b_second.as_ref().err().and_then(sqlstate)];
    let victims = codes.iter().filter(|c| **c == Some("40P01")).count();
    assert_eq!(victims, 1, "exactly one side gets 40P01: a {a_second:?}, b {b_second:?}");
    assert!(a_second.is_ok() || b_second.is_ok(), "the other side goes on: a {a_second:?}, b {b_second:?}");
    let (victim_pid, victim_update) = if a_second.is_err() {
        (a_pid, "UPDATE t SET a = $1 WHERE id = $2")
    } else {
        (b_pid, "UPDATE t SET b = $1 WHERE id = $2")
    };

    let d = wait_for_advice(&proxy, "deadlock", Duration::from_secs(1), |_| true)
        .await
        .unwrap_or_else(|all| panic!("no deadlock advice within 1 s of the 40P01:\n{all}"));
    let processes = d["evidence"]["processes"].as_array().unwrap_or_else(|| panic!("no processes: {d:#}"));
    let mut pids: Vec<u64> = processes.iter().filter_map(|p| p["pid"].as_u64()).collect();
    pids.sort_unstable();
    let mut want = vec![u64::from(a_pid), u64::from(b_pid)];
    want.sort_unstable();
    assert_eq!(pids, want, "both backends: {d:#}");
    for (pid, update) in [(a_pid, "UPDATE t SET a = $1 WHERE id = $2"), (b_pid, "UPDATE t SET b = $1 WHERE id = $2")] {
        let p = processes.iter().find(|p| p["pid"] == pid).unwrap();
        let session = p["session"].as_str().unwrap_or_default();
        assert!(session.starts_with("Session ") && session.contains(&format!("backend pid {pid}")), "{d:#}");
        let statements = strings(&p["statements"]);
        assert!(statements.iter().any(|s| s == update), "pid {pid} ran {update}: {d:#}");
    }
    assert_eq!(d["evidence"]["victim_statement"], victim_update, "the victim (pid {victim_pid}): {d:#}");
    assert_eq!(d["severity"], "critical", "{d:#}");
    assert_eq!(d["count"], 1, "{d:#}");
    assert!(d["suggestion"].as_str().is_some_and(|s| s.contains("order")), "{d:#}");
    assert_eq!(advice_of(&proxy, "deadlock").await.len(), 1);
    let _ = a.simple_query("rollback").await;
    let _ = b.simple_query("rollback").await;
}
