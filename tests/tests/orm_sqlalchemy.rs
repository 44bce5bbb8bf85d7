//! A real ORM through pgvisor: SQLAlchemy's default lazy loading (one SELECT on `addresses` per
//! user) is a confirmed `n_plus_one` that names the join and SQLAlchemy's `selectinload`, and the
//! same page with `selectinload` (one `SELECT ... IN (...)`) is not flagged. Each case runs on both
//! of SQLAlchemy's PostgreSQL drivers: psycopg2 interpolates parameters client-side (simple Query
//! messages with literals), psycopg 3 binds them server-side (Parse/Bind/Execute).
//!
//! The application is `tests/python/sqlalchemy_n_plus_one.py`, run by the Python in
//! `target/pyvenv` (or `$PGVISOR_PYTHON`) with the packages of `tests/python/requirements.txt`;
//! `./dev test` creates that venv. Without it these tests skip, unless `PGVISOR_REQUIRE_ORM` is
//! set (`./dev test` and so CI set it), in which case they fail.

use std::path::PathBuf;
use std::time::Duration;

use pgvisor_tests::{connect, eventually, shared_cluster, start_proxy, unique_name, Endpoint, TestProxy};
use serde_json::Value;

/// How long one run of the Python script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug)]
enum Driver {
    /// psycopg2: client-side interpolation, simple Query messages.
    Psycopg2,
    /// psycopg 3: server-side binding, extended protocol.
    Psycopg3,
}

impl Driver {
    fn arg(self) -> &'static str {
        match self {
            Driver::Psycopg2 => "psycopg2",
            Driver::Psycopg3 => "psycopg",
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn script() -> PathBuf {
    repo_root().join("tests/python/sqlalchemy_n_plus_one.py")
}

/// True when CI (or `./dev test`) demands the ORM tests run instead of skipping.
fn required() -> bool {
    std::env::var("PGVISOR_REQUIRE_ORM").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The venv's Python when it can import SQLAlchemy and both drivers; `None` means skip (and
/// panics instead when `PGVISOR_REQUIRE_ORM` is set).
async fn python() -> Option<PathBuf> {
    let python = std::env::var_os("PGVISOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pyvenv/bin/python"));
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import sqlalchemy, psycopg2, psycopg; print(sqlalchemy.__version__)"])
        .output()
        .await;
    let problem = match probe {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!("{} cannot import the packages: {}", python.display(), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("{}: {e}", python.display()),
    };
    let fix = "`./dev test` creates it, or: python3 -m venv target/pyvenv && \
               target/pyvenv/bin/pip install -r tests/python/requirements.txt";
    assert!(!required(), "PGVISOR_REQUIRE_ORM is set but the SQLAlchemy venv is not usable: {problem}\n{fix}");
    eprintln!("SKIPPED: no SQLAlchemy venv ({problem}); {fix} (set PGVISOR_REQUIRE_ORM=1 to make this a failure)");
    None
}

/// Runs the script in `mode` against `endpoint`; returns its JSON report.
async fn run_script(python: &PathBuf, endpoint: &Endpoint, driver: Driver, mode: &str) -> Value {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script())
        .arg(mode)
        .args(["--driver", driver.arg(), "--host", &endpoint.host])
        .args(["--port", &endpoint.port.to_string(), "--user", &endpoint.user, "--dbname", &endpoint.dbname])
        .env("PGPASSWORD", endpoint.password.as_deref().unwrap_or_default())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{mode} ({driver:?}) took more than {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode} ({driver:?}) failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{mode} ({driver:?}) printed no JSON ({e}): {stdout}"))
}

/// A fresh database with the seeded tables (set up directly, not through a proxy), and a proxy
/// in front of the cluster.
async fn prepare(driver: Driver) -> Option<(PathBuf, TestProxy, Endpoint)> {
    let python = python().await?;
    let cluster = shared_cluster();
    let db = unique_name("orm");
    connect(&cluster.endpoint()).await.unwrap().batch_execute(&format!("create database {db}")).await.unwrap();
    run_script(&python, &cluster.endpoint().with_dbname(&db), driver, "setup").await;
    let proxy = start_proxy(cluster).await;
    let target = proxy.endpoint().with_dbname(&db);
    Some((python, proxy, target))
}

fn n_plus_one(advice: &Value) -> Vec<Value> {
    advice["advice"]
        .as_array()
        .expect("advice is a list")
        .iter()
        .filter(|a| a["kind"] == "n_plus_one")
        .cloned()
        .collect()
}

/// The statements the script handed the driver, one per line, for failure messages.
fn sent(report: &Value) -> String {
    report["statements"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| {
                    format!("  {} -- {}", s["sql"].as_str().unwrap_or_default().replace('\n', " "), s["parameters"])
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

async fn lazy_loading_is_a_confirmed_n_plus_one(driver: Driver) {
    let Some((python, proxy, target)) = prepare(driver).await else { return };
    let report = run_script(&python, &target, driver, "lazy").await;
    assert_eq!((report["users"].as_u64(), report["addresses"].as_u64()), (Some(10), Some(20)), "{report}");

    let found = eventually(Duration::from_secs(5), || async {
        let all = proxy.admin_get("/api/advice").await;
        n_plus_one(&all).into_iter().next()
    })
    .await;
    let all = proxy.admin_get("/api/advice").await;
    let context = format!("/api/advice: {all:#}\nSQLAlchemy sent ({driver:?}):\n{}", sent(&report));
    let advice = found.unwrap_or_else(|| panic!("no n_plus_one advice for lazy loading\n{context}"));
    assert_eq!(n_plus_one(&all).len(), 1, "one burst, one advice\n{context}");

    let evidence = &advice["evidence"];
    assert_eq!(evidence["confirmed"], true, "the parent link is provable\n{context}");
    assert_eq!(evidence["link"], "users.id -> addresses.user_id", "\n{context}");
    assert_eq!(evidence["children"], 10, "one lazy load per user\n{context}");
    assert_eq!(evidence["distinct_parameters"], 10, "\n{context}");
    let parent = evidence["parent_query"].as_str().unwrap_or_default();
    let child = evidence["child_query"].as_str().unwrap_or_default();
    assert!(parent.starts_with("SELECT") && parent.contains("FROM users"), "parent_query\n{context}");
    assert!(child.starts_with("SELECT") && child.contains("FROM addresses"), "child_query\n{context}");
    assert!(evidence.get("sample_parameters").is_none(), "parameter values only with --log-params\n{context}");
    assert_eq!(advice["fingerprints"].as_array().map(Vec::len), Some(2), "parent and child\n{context}");
    let suggestion = advice["suggestion"].as_str().unwrap_or_default();
    assert!(suggestion.contains("selectinload"), "the SQLAlchemy eager-loading call\n{context}");
}

async fn selectinload_is_not_flagged(driver: Driver) {
    let Some((python, proxy, target)) = prepare(driver).await else { return };
    let report = run_script(&python, &target, driver, "selectin").await;
    assert_eq!((report["users"].as_u64(), report["addresses"].as_u64()), (Some(10), Some(20)), "{report}");

    // The engine has seen the whole run once the eager load's statistics are in and the session
    // is gone; advice appears within 1 s of its evidence, so wait that long again.
    let drained = eventually(Duration::from_secs(5), || async {
        let queries = proxy.admin_get("/api/queries?sort=calls&limit=100").await;
        let sessions = proxy.admin_get("/api/sessions").await;
        let eager = queries["queries"].as_array()?.iter().any(|q| {
            q["query"].as_str().is_some_and(|t| t.contains("FROM addresses") && t.contains("addresses.user_id IN"))
        });
        (eager && sessions["sessions"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let queries = proxy.admin_get("/api/queries?sort=calls&limit=100").await;
    assert!(drained.is_some(), "the eager load never showed up on /api/queries: {queries:#}\n{}", sent(&report));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let all = proxy.admin_get("/api/advice").await;
    assert!(
        n_plus_one(&all).is_empty(),
        "selectinload was flagged\n/api/advice: {all:#}\nSQLAlchemy sent ({driver:?}):\n{}",
        sent(&report)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_loading_psycopg2() {
    lazy_loading_is_a_confirmed_n_plus_one(Driver::Psycopg2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_loading_psycopg3() {
    lazy_loading_is_a_confirmed_n_plus_one(Driver::Psycopg3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectinload_psycopg2() {
    selectinload_is_not_flagged(Driver::Psycopg2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectinload_psycopg3() {
    selectinload_is_not_flagged(Driver::Psycopg3).await;
}
