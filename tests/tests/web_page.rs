//! The admin web page in a real headless Chromium (Debian's package, driven by playwright-core
//! from Node: `tests/browser/page.mjs`). This test owns pgvisor and the database traffic; the
//! script owns the browser and asks for each step of traffic with a `wait <action>` line.
//!
//! Needs `node`, `tests/browser/node_modules` (`npm ci` there) and `/usr/bin/chromium` (or
//! `PGVISOR_CHROMIUM`). Without them the test is skipped, unless `PGVISOR_REQUIRE_BROWSER` is set
//! (`./dev test` and so CI set it, after installing them): then it fails.
//! Screenshots land in `target/browser-artifacts/`; with `PGVISOR_UPDATE_DOCS_SCREENSHOT=1` the
//! whole page at 1280 px wide (`page-full.png`) is also copied to `docs/img/page.png`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use pgvisor::{Proxy, ProxyHandle, ProxySettings};
use pgvisor_tests::cli::pgbench;
use pgvisor_tests::{
    connect, connect_config, eventually, shared_cluster, start_proxy_with, unique_name, Cluster, TestProxy,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio_postgres::Client;

/// How long one browser scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);
const ADMIN_TOKEN: &str = "web-page-test-token";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn chromium() -> PathBuf {
    std::env::var_os("PGVISOR_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// `Ok(())` when node, playwright-core and Chromium are there; otherwise what is missing.
fn browser_prerequisites() -> Result<(), String> {
    let mut missing = Vec::new();
    if std::process::Command::new("node").arg("--version").output().map_or(true, |o| !o.status.success()) {
        missing.push("node (apt-get install nodejs)".to_string());
    }
    if !repo_root().join("tests/browser/node_modules/playwright-core").is_dir() {
        missing.push("tests/browser/node_modules (run `npm ci` in tests/browser)".to_string());
    }
    let chromium = chromium();
    if !chromium.exists() {
        missing.push(format!("{} (apt-get install chromium)", chromium.display()));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// Whether the browser test can run here; panics when it must (`PGVISOR_REQUIRE_BROWSER`) but
/// cannot.
fn browser_available() -> bool {
    match browser_prerequisites() {
        Ok(()) => true,
        Err(missing) if std::env::var_os("PGVISOR_REQUIRE_BROWSER").is_some() => {
            panic!("PGVISOR_REQUIRE_BROWSER is set but the browser test cannot run: missing {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED: the web page browser test needs {missing}; `./dev test` installs them");
            false
        }
    }
}

fn artifacts_dir() -> PathBuf {
    repo_root().join("target/browser-artifacts")
}

/// The browser script, running.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    transcript: Vec<String>,
}

impl Browser {
    fn start(admin_url: &str, scenario: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg(repo_root().join("tests/browser/page.mjs"))
            .args([admin_url, scenario])
            .env("PGVISOR_BROWSER_ARTIFACTS", artifacts_dir())
            .env("PGVISOR_CHROMIUM", chromium())
            .envs(env.iter().copied())
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run node: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self { child, stdin, lines, transcript: Vec::new() }
    }

    /// The next action the script waits for, or `None` when it has finished.
    async fn next_action(&mut self) -> Option<String> {
        while let Some(line) = self.lines.next_line().await.expect("read the script's output") {
            eprintln!("browser: {line}");
            self.transcript.push(line.clone());
            if let Some(action) = line.strip_prefix("wait ") {
                return Some(action.to_string());
            }
        }
        None
    }

    async fn done(&mut self, action: &str) {
        self.stdin.write_all(format!("done {action}\n").as_bytes()).await.expect("write to the script");
        self.stdin.flush().await.expect("flush to the script");
    }

    /// Waits for the script to exit and asserts that every check passed.
    async fn assert_passed(mut self) {
        let status = self.child.wait().await.expect("wait for node");
        let transcript = self.transcript.join("\n");
        assert!(
            status.success() && self.transcript.iter().any(|l| l.starts_with("PASS ")),
            "the browser script failed ({status}); screenshots in {}:\n{transcript}",
            artifacts_dir().display()
        );
        assert!(!transcript.contains("\nFAIL"), "{transcript}");
    }
}

/// A database of its own with `users` (10 rows) and `orders` (3 per user), made directly on the
/// cluster so none of it shows through pgvisor.
async fn shop_database(cluster: &Cluster) -> String {
    let db = unique_name("web");
    let admin = connect(&cluster.endpoint()).await.expect("connect directly");
    admin.batch_execute(&format!("create database {db}")).await.expect("create database");
    let shop = connect(&cluster.endpoint().with_dbname(&db)).await.expect("connect to the new database");
    shop.batch_execute(
        "create table users (id int primary key, name text not null);
         create table orders (id serial primary key, user_id int not null references users, total numeric not null);
         create index on orders (user_id);
         insert into users select i, 'user ' || i from generate_series(1, 10) i;
         insert into orders (user_id, total) select u, 10 * o from generate_series(1, 10) u, generate_series(1, 3) o;",
    )
    .await
    .expect("create the shop tables");
    db
}

fn page_settings(s: &mut ProxySettings, token: Option<&str>) {
    s.admin_token = token.map(str::to_owned);
    s.shutdown_grace = Duration::from_millis(200);
    // Quicker than the default 2 s, so the idle-in-transaction step costs a second.
    s.advisor.transactions.idle_in_transaction = Duration::from_secs(1);
}

async fn proxy_for_page(cluster: &Cluster, token: Option<&str>) -> TestProxy {
    start_proxy_with(cluster, |s| page_settings(s, token)).await
}

/// A new pgvisor on the admin address a stopped one used. The old admin task is aborted, not
/// awaited, by the shutdown, so its socket may take a moment to close: retry the bind briefly.
async fn restart_on(cluster: &Cluster, admin: SocketAddr) -> ProxyHandle {
    let mut settings = ProxySettings::for_upstream(cluster.upstream());
    page_settings(&mut settings, None);
    settings.admin = Some(admin);
    let mut tries = 0;
    loop {
        match Proxy::bind(settings.clone()).await {
            Ok(proxy) => return proxy.spawn(),
            Err(e) if tries < 40 => {
                tries += 1;
                eprintln!("restart on {admin}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot restart pgvisor on {admin}: {e}"),
        }
    }
}

/// Waits until the engine has counted the `COMMIT` that `client` ran, so a reset after it
/// leaves nothing to arrive late.
async fn committed(proxy: &TestProxy, client: Client) {
    client.batch_execute("commit").await.unwrap();
    let seen = eventually(Duration::from_secs(5), || async {
        let queries = proxy.admin_get("/api/queries?sort=calls&limit=1000").await;
        queries["queries"].as_array()?.iter().any(|q| q["query"] == "commit").then_some(())
    })
    .await;
    assert!(seen.is_some(), "the COMMIT never showed on /api/queries");
}

/// The parent query, then one query per row it returned: an N+1 of 10 children.
async fn n_plus_one_burst(client: &Client) {
    let users = client.query("select id from users", &[]).await.unwrap();
    assert_eq!(users.len(), 10);
    let child = client.prepare("select * from orders where user_id = $1").await.unwrap();
    for user in &users {
        let id: i32 = user.get(0);
        assert_eq!(client.query(&child, &[&id]).await.unwrap().len(), 3);
    }
}

/// Statements with the callers' tags that frameworks write into SQL comments (sqlcommenter,
/// URL-encoded): two routes of one controller, and a route whose name is HTML, which the page must
/// show as text.
async fn tagged_statements(client: &Client) {
    for id in 1..=3 {
        client
            .query("select name from users where id = $1 /*controller='users',route='%2Fusers%2F%3Aid'*/", &[&id])
            .await
            .unwrap();
    }
    client
        .query("select name from users where id = $1 /*controller='users',route='%2Fadmin%2Fusers'*/", &[&4])
        .await
        .unwrap();
    client
        .query("select count(*) from orders /*controller='reports',route='%3Cb%3Ereports%3C%2Fb%3E'*/", &[])
        .await
        .unwrap();
}

/// What a migration or a fixture runs before the application does: DDL, a bulk INSERT ... SELECT,
/// COPY and ANALYZE. The page hides these from Top queries unless asked.
async fn setup_statements(client: &Client) {
    client.batch_execute("create table setup_scratch (id int primary key, note text)").await.unwrap();
    client
        .batch_execute("insert into setup_scratch select i, 'row ' || i from generate_series(1, 1000) i")
        .await
        .unwrap();
    client.batch_execute("alter table setup_scratch add column created timestamptz").await.unwrap();
    let sink = client.copy_in("copy setup_scratch (id, note) from stdin").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(b"1001\tcopied\n1002\tcopied\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    client.batch_execute("analyze setup_scratch").await.unwrap();
}

/// Live advice, queries, sessions, the traffic chart, reset and a pgvisor that goes away and
/// comes back, as a user sees them in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_live_advice_queries_and_sessions() {
    if !browser_available() {
        return;
    }
    let cluster = shared_cluster();
    let db = shop_database(cluster).await;
    let mut proxy = Some(proxy_for_page(cluster, None).await);
    let mut restarted: Option<ProxyHandle> = None;
    let admin = proxy.as_ref().unwrap().admin_addr();
    let target = proxy.as_ref().unwrap().endpoint().with_dbname(&db);
    // pgbench's tables, made through pgvisor before the page opens; its DDL would fill the table.
    let init = pgbench(&target, &["-i", "-s", "1", "-q"]).await;
    assert_eq!(init.code(), 0, "{}", init.stderr);
    let app = connect(&target).await.expect("connect through pgvisor");
    // The engine applies events asynchronously: reset until nothing of pgbench's comes in late.
    let empty = eventually(Duration::from_secs(5), || async {
        let p = proxy.as_ref().unwrap();
        p.admin_json("POST", "/api/reset").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        (p.admin_get("/api/queries").await["queries"] == serde_json::json!([])).then_some(())
    })
    .await;
    assert!(empty.is_some(), "the statistics never stayed empty after a reset");
    let mut idle: Option<Client> = None;

    let mut browser = Browser::start(&format!("http://{admin}/"), "live", &[]);
    let run = async {
        while let Some(action) = browser.next_action().await {
            match action.as_str() {
                "n_plus_one" => n_plus_one_burst(&app).await,
                "setup" => setup_statements(&app).await,
                "tagged" => tagged_statements(&app).await,
                "pgbench" => {
                    let run = pgbench(&target, &["-S", "-t", "200"]).await;
                    assert_eq!(run.code(), 0, "{}{}", run.stdout, run.stderr);
                }
                "idle_in_transaction" => {
                    let mut config = target.config();
                    config.application_name("checkout-worker");
                    let client = connect_config(&config).await.unwrap();
                    client.batch_execute("begin; select * from orders where user_id = 3 for update").await.unwrap();
                    idle = Some(client);
                }
                "commit" => committed(proxy.as_ref().unwrap(), idle.take().expect("a transaction is open")).await,
                "stop" => proxy.take().expect("pgvisor runs").shutdown().await,
                "start" => restarted = Some(restart_on(cluster, admin).await),
                other => panic!("the browser script asked for an unknown action: {other}"),
            }
            browser.done(&action).await;
        }
        browser.assert_passed().await;
    };
    tokio::time::timeout(SCENARIO_TIMEOUT, run).await.expect("the browser scenario timed out");
    if let Some(pgvisor) = restarted {
        pgvisor.shutdown().await;
    }

    for name in ["page.png", "page-full.png", "page-dark.png", "page-narrow.png", "page-offline.png"] {
        let shot = artifacts_dir().join(name);
        assert!(std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000), "no screenshot at {}", shot.display());
    }
    if std::env::var_os("PGVISOR_UPDATE_DOCS_SCREENSHOT").is_some() {
        let docs = repo_root().join("docs/img");
        std::fs::create_dir_all(&docs).expect("create docs/img");
        std::fs::copy(artifacts_dir().join("page-full.png"), docs.join("page.png")).expect("copy the screenshot");
    }
}

/// With `--admin-token`, the page loads without it, asks for it, keeps it, and streams with it;
/// the API itself still refuses requests without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_asks_for_the_admin_token_and_keeps_it() {
    if !browser_available() {
        return;
    }
    let cluster = shared_cluster();
    let db = shop_database(cluster).await;
    let proxy = proxy_for_page(cluster, Some(ADMIN_TOKEN)).await;
    let admin = proxy.admin_addr();

    // The page and its files are open; the API is not.
    let files = [
        "/",
        "/page.css",
        "/page.js",
        "/http.js",
        "/feed.js",
        "/tables.js",
        "/callers.js",
        "/format.js",
        "/suggestion.js",
        "/setup.js",
        "/chart.js",
        "/favicon.svg",
    ];
    for path in files {
        pgvisor::cli::report::http_get(admin, path, None)
            .await
            .unwrap_or_else(|e| panic!("GET {path} without a token: {e}"));
    }
    for path in ["/api/queries", "/api/advice", "/api/advice/stream", "/api/sessions", "/metrics", "/nope"] {
        let refused = pgvisor::cli::report::http_get(admin, path, None).await;
        assert!(
            matches!(refused, Err(pgvisor::cli::report::ReportError::Http { ref status, .. }) if status.contains("401")),
            "GET {path} without the token: {refused:?}"
        );
    }

    let app = connect(&proxy.endpoint().with_dbname(&db)).await.expect("connect through pgvisor");
    let mut browser = Browser::start(&format!("http://{admin}/"), "token", &[("PGVISOR_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let run = async {
        while let Some(action) = browser.next_action().await {
            match action.as_str() {
                "n_plus_one" => n_plus_one_burst(&app).await,
                other => panic!("the browser script asked for an unknown action: {other}"),
            }
            browser.done(&action).await;
        }
        browser.assert_passed().await;
    };
    tokio::time::timeout(SCENARIO_TIMEOUT, run).await.expect("the browser scenario timed out");
}
