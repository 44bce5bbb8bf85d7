//! Shared by the `drivers_*` tests: a real driver's workload script runs once directly against
//! PostgreSQL and once through pgvisor, each on a fresh database of its own, and prints a
//! canonical JSON of everything it saw; the two outputs must be identical byte for byte. Then
//! pgvisor's statistics must be sane: every listed statement ran, errors only where the workload
//! erred, no dropped events.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use pgvisor_tests::{connect, unique_name, Cluster, Endpoint, TestProxy};
use serde_json::Value;

/// How long one run of a workload script may take.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// True when the environment variable is set to something other than empty or `0`.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips (returns `None`) with a message, or panics when `require_var` demands the test run.
pub fn skip_or_fail<T>(require_var: &str, problem: &str, fix: &str) -> Option<T> {
    assert!(!required(require_var), "{require_var} is set but this driver test cannot run: {problem}\n{fix}");
    eprintln!("SKIPPED: {problem}; {fix} (set {require_var}=1 to make this a failure)");
    None
}

/// The test venv's Python (`$PGVISOR_PYTHON`, else `target/pyvenv/bin/python`) when it can
/// import `modules`; `None` means skip, and a panic instead when `PGVISOR_REQUIRE_ORM` is set
/// (`./dev test` sets it after creating the venv).
pub async fn python_with(modules: &str) -> Option<PathBuf> {
    let python = std::env::var_os("PGVISOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pyvenv/bin/python"));
    let probe = tokio::process::Command::new(&python).args(["-c", &format!("import {modules}")]).output().await;
    let problem = match probe {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!("{} cannot import {modules}: {}", python.display(), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("{}: {e}", python.display()),
    };
    let fix = "`./dev test` creates the venv, or: python3 -m venv target/pyvenv && \
               target/pyvenv/bin/pip install -r tests/python/requirements.txt";
    skip_or_fail("PGVISOR_REQUIRE_ORM", &problem, fix)
}

/// A new empty database on `cluster`, created directly.
pub async fn fresh_database(cluster: &Cluster) -> String {
    let db = unique_name("drv");
    connect(&cluster.endpoint())
        .await
        .expect("connect directly")
        .batch_execute(&format!("create database {db}"))
        .await
        .expect("create a database");
    db
}

/// Runs `program args... --host H --port P --user U --dbname D` (the password in `PGPASSWORD`)
/// and returns its standard output; panics when it fails or takes longer than
/// [`SCRIPT_TIMEOUT`].
pub async fn run_workload(what: &str, program: &PathBuf, args: &[PathBuf], endpoint: &Endpoint) -> String {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .args(["--host", &endpoint.host, "--port", &endpoint.port.to_string()])
        .args(["--user", &endpoint.user, "--dbname", &endpoint.dbname])
        .env("PGPASSWORD", endpoint.password.as_deref().unwrap_or_default())
        .current_dir(repo_root())
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Result<Value, _> = serde_json::from_str(stdout.trim());
    assert!(parsed.is_ok(), "{what} printed no JSON: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// Runs the workload directly (on a fresh database) and through `proxy` (on another), and
/// asserts the two outputs are byte for byte the same. Returns the output.
pub async fn same_both_ways(
    what: &str,
    cluster: &Cluster,
    proxy: &TestProxy,
    program: &PathBuf,
    args: &[PathBuf],
) -> Value {
    let direct_db = fresh_database(cluster).await;
    let proxied_db = fresh_database(cluster).await;
    let direct =
        run_workload(&format!("{what} (direct)"), program, args, &cluster.endpoint().with_dbname(&direct_db)).await;
    let proxied =
        run_workload(&format!("{what} (through pgvisor)"), program, args, &proxy.endpoint().with_dbname(&proxied_db))
            .await;
    assert_same_json(what, &direct, &proxied);
    serde_json::from_str(direct.trim()).expect("checked to be JSON")
}

/// Byte-for-byte equality of two JSON outputs; on a difference, the first differing line of
/// their pretty-printed forms with some context, and both written to
/// `target/driver-artifacts/` for a full diff.
pub fn assert_same_json(what: &str, direct: &str, proxied: &str) {
    if direct == proxied {
        return;
    }
    let pretty = |s: &str| {
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(s.trim()).expect("JSON")).expect("print JSON")
    };
    let (d, p) = (pretty(direct), pretty(proxied));
    let dir = repo_root().join("target/driver-artifacts");
    let name: String = what.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let files = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.direct.json")), &d))
        .and_then(|()| std::fs::write(dir.join(format!("{name}.proxied.json")), &p))
        .map_or_else(
            |e| format!("(could not write them: {e})"),
            |()| format!("{}/{name}.{{direct,proxied}}.json", dir.display()),
        );
    let (dl, pl): (Vec<&str>, Vec<&str>) = (d.lines().collect(), p.lines().collect());
    let at = dl.iter().zip(&pl).position(|(a, b)| a != b).unwrap_or(dl.len().min(pl.len()));
    let context = |lines: &[&str]| lines[at.saturating_sub(12)..(at + 4).min(lines.len())].join("\n");
    panic!(
        "{what} differs direct vs proxied at line {} of the pretty-printed JSON (both in {files}):\n\
         --- direct ---\n{}\n--- proxied ---\n{}",
        at + 1,
        context(&dl),
        context(&pl)
    );
}

/// The `results` entry named `step` (`[step, value]` pairs), for assertions on what the driver
/// saw.
pub fn step<'a>(output: &'a Value, step: &str) -> &'a Value {
    output["results"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e[0] == step))
        .map(|e| &e[1])
        .unwrap_or_else(|| panic!("no step {step} in the output: {output}"))
}

/// Runs a statement with a fresh marker through the proxy and waits until `/api/queries` lists
/// it: every statement of sessions that ended before it has been counted by then.
pub async fn drained(proxy: &TestProxy) {
    let client = connect(&proxy.endpoint()).await.expect("connect through the proxy");
    proxy.drained_through(&client).await;
}

/// `GET /metrics` as text.
pub async fn metrics(proxy: &TestProxy) -> String {
    pgvisor::cli::report::http_request(proxy.admin_addr(), "GET", "/metrics", None).await.expect("GET /metrics")
}

/// Statistics sanity after a workload through `proxy`: every statement on `/api/queries` has
/// `calls > 0` and no more errors than calls; for each `(marker, n)` the statements whose
/// normalised text contains `marker` have `n` errors in all, and there are no other errors;
/// `/metrics` reports no dropped events. Returns the statements.
pub async fn assert_stats_sane(proxy: &TestProxy, expected_errors: &[(&str, u64)]) -> Vec<Value> {
    drained(proxy).await;
    let body = proxy.admin_get("/api/queries?sort=calls&limit=100000").await;
    let queries = body["queries"].as_array().unwrap_or_else(|| panic!("no queries in {body}")).clone();
    let listing = queries
        .iter()
        .map(|q| format!("  calls={:<5} rows={:<6} errors={} {}", q["calls"], q["rows"], q["errors"], q["query"]))
        .collect::<Vec<_>>()
        .join("\n");
    let errors = |q: &Value| q["errors"].as_u64().unwrap_or_else(|| panic!("errors is not a count: {q}"));
    for q in &queries {
        let calls = q["calls"].as_u64().unwrap_or_else(|| panic!("calls is not a count: {q}"));
        assert!(calls > 0, "a statement listed with no calls: {q}\n/api/queries:\n{listing}");
        assert!(errors(q) <= calls, "more errors than calls: {q}\n/api/queries:\n{listing}");
    }
    for (marker, expected) in expected_errors {
        let matching: Vec<&Value> =
            queries.iter().filter(|q| q["query"].as_str().is_some_and(|t| t.contains(marker))).collect();
        assert!(!matching.is_empty(), "no statement on /api/queries contains {marker:?}\n/api/queries:\n{listing}");
        let got: u64 = matching.iter().map(|q| errors(q)).sum();
        assert_eq!(got, *expected, "errors of the statements containing {marker:?}\n/api/queries:\n{listing}");
    }
    let total: u64 = queries.iter().map(errors).sum();
    let want: u64 = expected_errors.iter().map(|(_, n)| n).sum();
    assert_eq!(total, want, "errors in all, where the workload erred {want} times\n/api/queries:\n{listing}");

    let metrics = metrics(proxy).await;
    assert!(
        metrics.lines().any(|l| l.trim() == "pgvisor_events_dropped_total 0"),
        "events were dropped (or the counter is missing):\n{}",
        metrics.lines().filter(|l| l.contains("dropped")).collect::<Vec<_>>().join("\n")
    );
    queries
}

/// The one statement whose normalised text contains `marker` (panics on none or several).
pub fn query_with<'a>(queries: &'a [Value], marker: &str) -> &'a Value {
    let matching: Vec<&Value> =
        queries.iter().filter(|q| q["query"].as_str().is_some_and(|t| t.contains(marker))).collect();
    assert_eq!(matching.len(), 1, "statements containing {marker:?}: {matching:#?}");
    matching[0]
}
