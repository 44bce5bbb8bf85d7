//! `pgvisor check` in CI, on the example applications' own test suites (examples/): the real
//! `pgvisor` binary, an embedded PostgreSQL per run, real test runners (pytest with SQLAlchemy and
//! google-cloud-sqlcommenter; node's built-in runner with node-postgres).
//!
//! The Python suite goes through the whole life of a baseline: a clean run passes; the change that
//! introduces a lazy-loading N+1 fails and the reports name the test and the fix; the accepted
//! state is written with --update-baseline and passes; a change that doubles a test's queries fails
//! under the ratchet; `pgvisor diff` shows the N+1's new query. Plus the errors a user meets first.
//!
//! Needs target/pyvenv (pytest, SQLAlchemy, psycopg, sqlcommenter: tests/python/requirements.txt)
//! and examples/node/node_modules (`npm ci`); `./dev test` installs both. Without them these tests
//! skip, unless `PGVISOR_REQUIRE_EXAMPLES` is set (`./dev test` sets it): then they fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pgvisor_tests::binary::pgvisor_binary;
use serde_json::Value;

/// One `pgvisor check` run: an embedded PostgreSQL and a test suite of a few seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
const PYTEST_TEST: &str = "tests/test_shop.py::test_users_with_orders";
const NODE_TEST: &str = "test/shop.test.js > lists users with their orders";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Skips (`None`), or fails when `PGVISOR_REQUIRE_EXAMPLES` says the examples must run.
fn skip_or_fail<T>(problem: &str) -> Option<T> {
    let fix = "`./dev test` installs them (tests/python/requirements.txt into target/pyvenv, `npm ci` in \
               examples/node)";
    let required = std::env::var("PGVISOR_REQUIRE_EXAMPLES").is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(!required, "PGVISOR_REQUIRE_EXAMPLES is set but {problem}; {fix}");
    eprintln!("SKIPPED: {problem}; {fix} (set PGVISOR_REQUIRE_EXAMPLES=1 to make this a failure)");
    None
}

/// The venv's Python when it has what the Python example needs.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("PGVISOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/pyvenv/bin/python"));
    let probe = std::process::Command::new(&python)
        .args(["-c", "import pytest, sqlalchemy, psycopg, google.cloud.sqlcommenter"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => skip_or_fail(&format!(
            "{} cannot import the example's packages: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => skip_or_fail(&format!("{}: {e}", python.display())),
    }
}

/// What one pgvisor invocation did.
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn context(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `pgvisor ARGS` in `dir` with `env`, without the caller's PGVISOR_*, libpq and DATABASE_URL
/// settings (the run must find its embedded server on its own).
async fn pgvisor<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(dir: &Path, args: &[S], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = tokio::process::Command::new(pgvisor_binary());
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("PGVISOR_") || name.starts_with("PG") || name == "DATABASE_URL" || name == "RUST_LOG" {
            cmd.env_remove(name);
        }
    }
    cmd.env("PYTHONDONTWRITEBYTECODE", "1").envs(env.iter().copied());
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("pgvisor {args:?} took more than {RUN_TIMEOUT:?}"))
        .expect("run pgvisor");
    Outcome {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_example_through_a_baseline_and_its_ratchet() {
    let Some(python) = python() else { return };
    let python = python.to_str().expect("a UTF-8 path").to_string();
    let app = repo_root().join("examples/python");
    let work = tempfile::tempdir().unwrap();
    let out = |name: &str| work.path().join(name);
    let report = |name: &str| out(name).to_str().unwrap().to_string();
    let baseline = report("pgvisor-baseline.json");
    let pytest = [python.as_str(), "-m", "pytest", "-q", "-p", "no:cacheprovider"];
    let check = |extra: Vec<String>| {
        let mut args: Vec<String> = vec!["check".into()];
        args.extend(extra);
        args.push("--".into());
        args.extend(pytest.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>, env: &'static [(&'static str, &'static str)]| {
        let app = app.clone();
        async move { pgvisor(&app, &args, env).await }
    };

    // 1. The clean suite passes; the report has the tests as scopes.
    let clean = run(check(vec!["--report".into(), report("clean")]), &[]).await;
    assert_eq!(clean.status, 0, "a clean run passes\n{}", clean.context());
    assert!(clean.stdout.contains("3 passed"), "pytest's own output passes through\n{}", clean.context());
    let clean_report = json(&out("clean/pgvisor-report.json"));
    let scope = &clean_report["scopes"][PYTEST_TEST];
    assert!(scope["statements"].as_u64() > Some(0), "per-test scope {PYTEST_TEST}: {clean_report:#}");
    assert!(read(&out("clean/summary.md")).contains("## pgvisor check: passed"));

    // 2. The lazy-loading N+1 fails, and every report names the test, the proof and the fix.
    let n1 = run(check(vec!["--report".into(), report("n1")]), &[("EXAMPLE_N_PLUS_ONE", "1")]).await;
    assert_eq!(n1.status, 1, "an N+1 fails the check\n{}", n1.context());
    assert!(n1.stdout.contains("3 passed"), "the suite itself still passes\n{}", n1.context());
    assert!(n1.stderr.contains(&format!("n_plus_one in {PYTEST_TEST}")), "{}", n1.context());
    let summary = read(&out("n1/summary.md"));
    for needle in ["## pgvisor check: FAILED", PYTEST_TEST, "users.id -> orders.user_id", "**Fix:**", "selectinload"] {
        assert!(summary.contains(needle), "summary.md lacks {needle:?}:\n{summary}");
    }
    let junit = read(&out("n1/junit.xml"));
    let case = junit
        .split("<testcase ")
        .find(|c| c.starts_with(&format!("name=\"{PYTEST_TEST}\"")))
        .unwrap_or_else(|| panic!("no testcase for {PYTEST_TEST}:\n{junit}"));
    assert!(case.contains("<failure") && case.contains("selectinload"), "the failing testcase names the fix:\n{case}");
    assert!(junit.contains("failures=\"1\""), "only that test fails:\n{junit}");
    let n1_report = json(&out("n1/pgvisor-report.json"));
    let advice = &n1_report["scopes"][PYTEST_TEST]["advice"][0];
    assert_eq!(advice["kind"], "n_plus_one", "{n1_report:#}");
    assert_eq!(advice["evidence"]["confirmed"], true, "proven from the parent's rows: {advice:#}");
    assert_eq!(advice["evidence"]["children"], 10, "{advice:#}");
    assert_eq!(n1_report["check"]["new_findings"][0]["scope"], PYTEST_TEST);

    // 3. The accepted state becomes the baseline, and passes against itself.
    let update = run(
        check(vec![
            "--baseline".into(),
            baseline.clone(),
            "--update-baseline".into(),
            "--report".into(),
            report("update"),
        ]),
        &[],
    )
    .await;
    assert_eq!(update.status, 0, "{}", update.context());
    let written = json(&out("pgvisor-baseline.json"));
    assert_eq!(written["pgvisor_baseline"], 1);
    let calls = &written["scopes"]["tests/test_shop.py::test_user_summary"]["queries"];
    assert!(calls.as_array().is_some_and(|q| !q.is_empty()), "{written:#}");
    let again = run(check(vec!["--baseline".into(), baseline.clone(), "--report".into(), report("again")]), &[]).await;
    assert_eq!(again.status, 0, "the same suite passes against its own baseline\n{}", again.context());

    // 4. Twice the queries in one test: past the baseline's 10%.
    let doubled = run(
        check(vec!["--baseline".into(), baseline.clone(), "--report".into(), report("doubled")]),
        &[("EXAMPLE_DOUBLE_QUERIES", "1")],
    )
    .await;
    assert_eq!(doubled.status, 1, "doubled queries fail under the ratchet\n{}", doubled.context());
    let summary = read(&out("doubled/summary.md"));
    assert!(summary.contains("### Query counts past the baseline"), "{summary}");
    assert!(summary.contains("tests/test_shop.py::test_user_summary"), "{summary}");
    let regression = &json(&out("doubled/pgvisor-report.json"))["check"]["regressions"];
    let grew = regression
        .as_array()
        .and_then(|r| r.iter().find(|r| r["scope"] == "tests/test_shop.py::test_user_summary"))
        .unwrap_or_else(|| panic!("{regression:#}"));
    assert_eq!((grew["baseline_calls"].as_u64(), grew["calls"].as_u64()), (Some(3), Some(6)), "{grew:#}");

    // 5. `pgvisor diff` shows the N+1's query as new in that test, and the advice.
    let clean_json = report("clean/pgvisor-report.json");
    let n1_json = report("n1/pgvisor-report.json");
    let diff = pgvisor(work.path(), &["diff", &clean_json, &n1_json], &[]).await;
    assert_eq!(diff.status, 0, "{}", diff.context());
    let section =
        diff.stdout.split("\n\n").find(|s| s.starts_with(PYTEST_TEST)).unwrap_or_else(|| panic!("{}", diff.stdout));
    let child = advice["fingerprints"][1].as_str().expect("parent and repeated query").to_string();
    assert!(
        section.lines().any(|l| l.trim_start().starts_with("new") && l.contains(&child) && l.contains("- -> 10")),
        "the lazy load ({child}) is a new query, 10 calls:\n{section}"
    );
    assert!(section.contains("+ advice [warning] n_plus_one"), "{section}");
    let diff = pgvisor(work.path(), &["diff", "--json", &clean_json, &n1_json], &[]).await;
    let parsed: Value = serde_json::from_str(&diff.stdout).unwrap_or_else(|e| panic!("{e}: {}", diff.context()));
    let new =
        parsed["scopes"][PYTEST_TEST]["queries"].as_array().unwrap().iter().find(|q| q["change"] == "new").cloned();
    assert_eq!(new.map(|q| q["calls"]["after"].clone()), Some(10.into()), "{parsed:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_example_n_plus_one_fails_naming_the_test() {
    let app = repo_root().join("examples/node");
    let node_ok = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok || !app.join("node_modules/pg/package.json").is_file() {
        return skip_or_fail("node or examples/node/node_modules is missing").unwrap_or(());
    }
    let work = tempfile::tempdir().unwrap();
    let dir = |name: &str| work.path().join(name).to_str().unwrap().to_string();
    let args = |report: &str| -> Vec<String> {
        ["check", "--report", report, "--", "node", "--test", "--test-concurrency=1", "test/"]
            .map(String::from)
            .to_vec()
    };
    let (clean_args, n1_args) = (args(&dir("clean")), args(&dir("n1")));

    let clean = pgvisor(&app, &clean_args, &[]).await;
    assert_eq!(clean.status, 0, "{}", clean.context());
    let n1 = pgvisor(&app, &n1_args, &[("EXAMPLE_N_PLUS_ONE", "1")]).await;
    assert_eq!(n1.status, 1, "{}", n1.context());
    let report = json(&work.path().join("n1/pgvisor-report.json"));
    let advice = &report["scopes"][NODE_TEST]["advice"][0];
    assert_eq!(advice["kind"], "n_plus_one", "the N+1 lands in the test that ran it: {report:#}");
    assert_eq!(advice["evidence"]["link"], "users.id -> orders.user_id", "{advice:#}");
    assert!(read(&work.path().join("n1/summary.md")).contains(NODE_TEST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_errors_and_exit_statuses() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    let typo = pgvisor(dir, &["check", "--", "pytset", "-q"], &[]).await;
    assert_eq!(typo.status, 127, "{}", typo.context());
    assert_eq!(typo.stderr.trim(), "pgvisor check: cannot run 'pytset': not found on PATH");

    std::fs::write(
        dir.join("pgvisor-baseline.json"),
        r#"{"pgvisor_baseline": 1, "scopes": {"t1": {"queries": [{"fingerprint": "0123456789abcdef", "calls": "3"}]}}}"#,
    )
    .unwrap();
    let bad = pgvisor(dir, &["check", "--baseline", "pgvisor-baseline.json", "--", "true"], &[]).await;
    assert_eq!(bad.status, 2, "{}", bad.context());
    assert_eq!(
        bad.stderr.trim(),
        "pgvisor check: pgvisor-baseline.json: scopes[\"t1\"].queries[0].calls: expected a number, got \"3\""
    );
    let missing = pgvisor(dir, &["check", "--baseline", "nope.json", "--", "true"], &[]).await;
    assert_eq!(missing.status, 2);
    assert!(
        missing.stderr.contains("nope.json: no such file; create it with --update-baseline"),
        "{}",
        missing.context()
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let taken = pgvisor(dir, &["check", "--listen", &port, "--", "true"], &[]).await;
    assert_eq!(taken.status, 2, "{}", taken.context());
    assert!(taken.stderr.contains(&format!("cannot listen on {port}: address already in use")), "{}", taken.context());

    // CMD's own failure is the status; `run` passes CMD's status on and still writes the report.
    let failed = pgvisor(dir, &["check", "--", "sh", "-c", "exit 3"], &[]).await;
    assert_eq!(failed.status, 3, "{}", failed.context());
    let psql = "psql -X -tAc \"select 1 /*test='psql%20smoke'*/\" && exit 4";
    let ran = pgvisor(dir, &["run", "--report", "ran", "--", "sh", "-c", psql], &[]).await;
    assert_eq!(ran.status, 4, "{}", ran.context());
    assert_eq!(ran.stdout.trim(), "1", "psql reached the embedded server through PGHOST/PGPORT/PGUSER");
    let report = json(&dir.join("ran/pgvisor-report.json"));
    assert_eq!(report["scopes"]["psql smoke"]["statements"], 1, "{report:#}");
    assert!(report.get("check").is_none(), "run does not judge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_command_and_leaves_a_partial_report() {
    let work = tempfile::tempdir().unwrap();
    let pid_file = work.path().join("cmd.pid");
    let script = format!("echo $$ > '{}'; exec sleep 60", pid_file.display());
    let mut cmd = tokio::process::Command::new(pgvisor_binary());
    cmd.args(["check", "--report", "r", "--", "sh", "-c", &script])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PGVISOR_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd.spawn().expect("run pgvisor");
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while !std::fs::read_to_string(&pid_file).is_ok_and(|p| p.ends_with('\n')) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(started.is_ok(), "CMD never started");
    let cmd_pid: i32 = read(&pid_file).trim().parse().unwrap();
    let pgvisor_pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pgvisor_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.expect("pgvisor stops").unwrap();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(cmd_pid), None).is_err();
    assert!(gone, "CMD (pid {cmd_pid}) was stopped with pgvisor");
    let report = json(&work.path().join("r/pgvisor-report.json"));
    assert_eq!(report["interrupted"], true, "{report:#}");
    assert!(report.get("check").is_none(), "an interrupted run is not judged");
}
