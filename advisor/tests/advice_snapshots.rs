//! The wording of every advice kind, reviewed like code: one snapshot per kind
//! (`snapshots/advice_snapshots__<kind>.snap`), each with a few representative findings built
//! through the detectors' public APIs, the way squawk keeps one snapshot per rule. A change in
//! a title, message or suggestion shows up in review as a diff of its snapshot.
//!
//! Every input is fixed (durations, timestamps, session ids, backend pids, client ports), so the
//! numbers in the text are stable. Each finding is rendered as its kind, severity, title,
//! message, suggestion and the names (not values) of its evidence fields.
//!
//! Update after a deliberate change with
//! `INSTA_UPDATE=always cargo test -p pgvisor-advisor --test advice_snapshots`, then review the
//! `.snap` diff.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use advisor::advice::{CallerLinks, Finding, Kind, Occurrence};
use advisor::capture::{text_key, Params};
use advisor::detect::deadlock;
use advisor::detect::error_spike::{ErrorSpikeConfig, ErrorSpikeWatch};
use advisor::detect::lock_contention::{self, BlockingReport};
use advisor::detect::lock_hazard_ddl::{DdlWatch, Executed};
use advisor::detect::missing_index::{self, IndexCandidate, SeqScan};
use advisor::detect::n_plus_one::{BurstWatch, Execution, NPlusOneConfig, NPlusOneDetector, ResultDigest};
use advisor::detect::repeated_query::{RepeatedQueryConfig, RepeatedQueryDetector};
use advisor::detect::select_star::{self, SelectStarConfig};
use advisor::detect::session_checks::FinishedStatement;
use advisor::detect::slow_query::{SlowQueryConfig, SlowQueryWatch};
use advisor::detect::transactions::{session_label, TransactionThresholds, TransactionWatch};
use advisor::detect::unbounded_result::{self, UnboundedResultConfig};
use advisor::detect::unparameterized::{UnparameterizedConfig, UnparameterizedWatch};
use advisor::events::{Caller, SessionOrigin, SqlState, Statement, StatementEvent};
use advisor::orm::OrmStyle;
use advisor::sessions::{SessionActivity, SessionIdentity, SessionState};
use advisor::stats::QueryStats;

// ---------------------------------------------------------------------------------------------
// Fixed inputs.

/// The clock every finding is written at: 2024-05-01T12:00:00Z.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A statement as the observer builds it from the raw text.
fn statement(sql: &str) -> Arc<Statement> {
    let n = advisor::fingerprint(sql.as_bytes());
    let tags = Some(advisor::tags::parse(sql.as_bytes())).filter(|t| !t.is_empty()).map(Arc::new);
    Arc::new(Statement::new(n.fingerprint, n.text.into(), n.display.into(), OrmStyle::detect(sql.as_bytes()), tags))
}

/// Session `id` of application `app`, connected from 10.0.0.`id` port 50000 + id.
fn identity(id: u64, app: &str) -> SessionIdentity {
    SessionIdentity {
        id,
        user: "shop".into(),
        database: "shop".into(),
        application_name: app.into(),
        client_addr: SocketAddr::from(([10, 0, 0, 7], 50_000 + id as u16)),
        tls: false,
        connected_at: t0() - Duration::from_secs(600),
    }
}

/// Backend pid of session `id`.
fn pid(id: u64) -> u32 {
    4200 + id as u32
}

/// A session's activity: `state` since `idle` before `t0()`, in a transaction opened `open`
/// before `t0()` that ran `statements`.
fn activity(
    id: u64,
    state: SessionState,
    idle: Duration,
    open: Option<Duration>,
    statements: &[&str],
) -> SessionActivity {
    let active = state == SessionState::Active;
    SessionActivity {
        state,
        state_since: t0() - idle,
        statement_started: active.then(|| t0() - idle),
        backend_pid: Some(pid(id)),
        current_statement: statements.last().map(|s| Arc::from(*s)),
        transaction_started: open.map(|o| t0() - o),
        transaction_statements: statements.iter().map(|s| Arc::from(*s)).collect(),
        previous_transaction: Vec::new(),
        previous_transaction_ended: None,
        terminated: false,
    }
}

/// A finished statement event of session `id` (application "web"), finishing at `at`.
fn event(id: u64, sql: &str, params: &[&str], duration: Duration, at: SystemTime) -> StatementEvent {
    let identity = identity(id, "web");
    StatementEvent {
        session: id,
        statement: statement(sql),
        duration,
        rows: 1,
        error: None,
        finished_at: at,
        literals: None,
        application_name: "web".into(),
        params: Params::from_texts(params.iter().copied()),
        result: None,
        origin: Arc::new(SessionOrigin::of(&identity, Some(pid(id)))),
    }
}

/// A result of one column named `name` holding `values`.
fn column(name: &str, values: &[String]) -> Arc<ResultDigest> {
    let keys: Vec<u64> = values.iter().map(|v| text_key(v.as_bytes())).collect();
    Arc::new(ResultDigest::new(vec![Some(Arc::from(name))].into(), [keys]))
}

fn ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

fn finished(sql: &str, rows: u64, bytes: u64, columns: usize, duration: Duration, at: Instant) -> FinishedStatement {
    FinishedStatement { statement: statement(sql), params: None, rows, bytes, columns, duration, at }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// The findings as a reviewer reads them: what a user sees of each, and which evidence fields it
/// carries (their values are in the detectors' unit tests).
fn render(kind: Kind, cases: &[(&str, Finding)]) -> String {
    let mut out = String::new();
    for (case, f) in cases {
        assert_eq!(f.kind, kind, "{case}: a {} finding in the {} snapshot", f.kind.as_str(), kind.as_str());
        let mut fields: Vec<&str> =
            f.evidence.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        fields.sort_unstable();
        out.push_str(&format!("=== {case}\n"));
        out.push_str(&format!("severity: {}\n", serde_json::to_value(f.severity).unwrap().as_str().unwrap()));
        out.push_str(&format!("title: {}\n", f.title));
        out.push_str(&format!("message:\n{}\n", indent(&f.message)));
        out.push_str(&format!("suggestion:\n{}\n", indent(&f.suggestion)));
        out.push_str(&format!("evidence fields: {}\n\n", fields.join(", ")));
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

fn last(findings: Vec<Finding>, what: &str) -> Finding {
    findings.into_iter().last().unwrap_or_else(|| panic!("{what}: no finding"))
}

// ---------------------------------------------------------------------------------------------
// n_plus_one

/// One session: the parent's result, then one child per row (`children` of them, 400 µs each).
fn per_session_burst(parent: &str, child: &str, children: usize, tags: bool) -> Finding {
    let label = session_label(&identity(3, "web"), Some(pid(3)));
    let mut d = NPlusOneDetector::new(NPlusOneConfig::default(), label);
    let start = Instant::now();
    let execution = |sql: &str, params: &[&str], result: Arc<ResultDigest>, rows: u64, i: u64| Execution {
        statement: statement(sql),
        style: OrmStyle::detect(sql.as_bytes()),
        params: Params::from_texts(params.iter().copied()),
        param_texts: None,
        result,
        rows,
        duration: Duration::from_micros(400),
        at: start + ms(i),
    };
    let mut found = d.observe(execution(parent, &["7"], column("id", &ids(children)), children as u64, 0));
    for (i, id) in ids(children).iter().enumerate() {
        found.extend(d.observe(execution(child, &[id], Arc::default(), 3, 1 + i as u64)));
    }
    found.extend(d.finish());
    let mut f = last(found, "per-session burst");
    if tags {
        let caller = Caller { tags: statement(child).tags.clone(), application_name: "web".into() };
        CallerLinks::default().describe(&mut f, &caller);
    }
    f
}

#[test]
fn n_plus_one() {
    let confirmed = per_session_burst(
        "select id, name from users where org_id = $1",
        "select * from orders where user_id = $1",
        12,
        false,
    );
    let orm = per_session_burst(
        "SELECT users.id AS users_id, users.name AS users_name FROM users WHERE users.org_id = 7",
        "SELECT orders.id AS orders_id, orders.total AS orders_total FROM orders WHERE 1 = orders.user_id",
        60,
        false,
    );
    let tagged = per_session_burst(
        "select id, name from users where org_id = $1",
        "select * from orders where user_id = $1 /*controller='orders',action='index',\
         traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
        12,
        true,
    );

    // Across a pool: the parent on session 1, twelve children over sessions 2 to 5, 1 ms each.
    let mut watch = BurstWatch::new(NPlusOneConfig::default());
    let mut found = Vec::new();
    let mut at = t0();
    let mut parent = event(1, "select id from users order by id", &[], ms(2), at);
    parent.result = Some(column("id", &ids(12)));
    found.extend(watch.statement(&parent).into_iter().map(|(f, _)| f));
    for (i, id) in ids(12).iter().enumerate() {
        at += ms(2);
        found.extend(
            watch
                .statement(&event(2 + (i % 4) as u64, "select * from orders where user_id = $1", &[id], ms(1), at))
                .into_iter()
                .map(|(f, _)| f),
        );
    }
    found.extend(watch.check(at + Duration::from_secs(2)).into_iter().map(|(f, _)| f));
    let parallel = last(found, "parallel burst");

    // No parent: thirty lookups by id on one session, then COMMIT.
    let mut watch = BurstWatch::new(NPlusOneConfig::default());
    let mut found = Vec::new();
    let mut at = t0();
    for id in ids(30) {
        at += ms(2);
        found.extend(
            watch
                .statement(&event(6, "select * from products where id = $1", &[&id], ms(1), at))
                .into_iter()
                .map(|(f, _)| f),
        );
    }
    found.extend(watch.statement(&event(6, "commit", &[], ms(1), at + ms(2))).into_iter().map(|(f, _)| f));
    let unlinked = last(found, "unlinked burst");

    let cases = [
        ("confirmed in one session (12 children, hand-written SQL)", confirmed),
        ("confirmed in one session, 60 children from SQLAlchemy (critical, ORM hint)", orm),
        ("confirmed, the child tagged by sqlcommenter (tags and trace id in evidence)", tagged),
        ("parallel over four connections of one pool", parallel),
        ("unlinked: a bounded burst with no parent, ended by COMMIT", unlinked),
    ];
    insta::assert_snapshot!("n_plus_one", render(Kind::NPlusOne, &cases));
}

// ---------------------------------------------------------------------------------------------
// lock_contention, deadlock, inspector_unavailable

#[test]
fn lock_contention() {
    let blocker_statements = ["BEGIN", "UPDATE accounts SET balance = balance - $1 WHERE id = $2"];
    let sessions = vec![
        (
            identity(1, "web"),
            activity(
                1,
                SessionState::Active,
                ms(3200),
                Some(ms(3200)),
                &["UPDATE accounts SET balance = balance + $1 WHERE id = $2"],
            ),
        ),
        (
            identity(2, "billing"),
            activity(2, SessionState::IdleInTransaction, ms(4000), Some(ms(9500)), &blocker_statements),
        ),
    ];
    let waiter = (&sessions[0].0, &sessions[0].1);
    let waiting = "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
    let report = BlockingReport {
        waiter_pid: pid(1),
        blockers: vec![pid(2)],
        roots: vec![pid(2)],
        wait_event: Some("Lock/transactionid".into()),
    };
    let confirmed =
        lock_contention::finding(waiter, waiting, Some(&report), &sessions, ms(3200), Occurrence::New, t0());
    let finished = {
        let mut done = sessions.clone();
        done[0].1.state = SessionState::Idle;
        let waiter = (&done[0].0, &done[0].1);
        lock_contention::finding(waiter, waiting, Some(&report), &done, ms(7400), Occurrence::Update, t0())
    };
    let outside = BlockingReport { blockers: vec![9999], roots: vec![9999], ..report.clone() };
    let unknown = lock_contention::finding(waiter, waiting, Some(&outside), &sessions, ms(1200), Occurrence::New, t0());
    let suspected = lock_contention::finding(waiter, waiting, None, &sessions, ms(2500), Occurrence::New, t0());
    let cases = [
        ("blocked by a session idle in its transaction (the Inspector confirms)", confirmed),
        ("the final size, once the waiter's statement finished (7.4 s: critical)", finished),
        ("blocked by a backend not connected through pgvisor", unknown),
        ("no Inspector: the likely blocker from the wire", suspected),
    ];
    insta::assert_snapshot!("lock_contention", render(Kind::LockContention, &cases));
}

#[test]
fn deadlock() {
    let transfer = ["BEGIN", "UPDATE accounts SET balance = balance - $1 WHERE id = $2"];
    let mut survivor = activity(2, SessionState::IdleInTransaction, ms(10), Some(ms(1200)), &transfer);
    survivor.transaction_statements.push(Arc::from("UPDATE accounts SET balance = balance + $1 WHERE id = $2"));
    let sessions = vec![
        (identity(1, "web"), activity(1, SessionState::IdleInTransactionFailed, ms(5), Some(ms(1100)), &transfer)),
        (identity(2, "web"), survivor),
    ];
    let detail = format!(
        "Process {} waits for ShareLock on transaction 777; blocked by process {}.\nProcess {} waits for ShareLock on \
         transaction 776; blocked by process {}.",
        pid(1),
        pid(2),
        pid(2),
        pid(1)
    );
    let victim: Vec<String> = transfer.iter().map(|s| s.to_string()).collect();
    let both = deadlock::finding(1, transfer[1], &victim, &detail, &sessions, t0());
    let other = "Process 4201 waits for ShareLock on transaction 780; blocked by process 31337.";
    let outside = deadlock::finding(1, transfer[1], &victim, other, &sessions, t0());
    let cases = [("two sessions through pgvisor", both), ("the other side is not connected through pgvisor", outside)];
    insta::assert_snapshot!("deadlock", render(Kind::Deadlock, &cases));
}

#[test]
fn inspector_unavailable() {
    let cases = [(
        "the side connection was refused",
        lock_contention::inspector_unavailable(
            "connection to 127.0.0.1:5432 failed: FATAL: password authentication failed for user \"pgvisor\"",
        ),
    )];
    insta::assert_snapshot!("inspector_unavailable", render(Kind::InspectorUnavailable, &cases));
}

// ---------------------------------------------------------------------------------------------
// idle_in_transaction, long_transaction

fn transactions(kind: Kind) -> Vec<(&'static str, Finding)> {
    let sessions = vec![
        (
            identity(1, "web"),
            activity(
                1,
                SessionState::IdleInTransaction,
                ms(12_500),
                Some(ms(13_000)),
                &["BEGIN", "SELECT * FROM carts WHERE id = $1 FOR UPDATE"],
            ),
        ),
        (
            identity(2, ""),
            activity(
                2,
                SessionState::IdleInTransactionFailed,
                ms(45_000),
                Some(ms(46_000)),
                &["BEGIN", "INSERT INTO audit VALUES ($1, $2)"],
            ),
        ),
        (
            identity(3, "nightly-export"),
            activity(
                3,
                SessionState::Active,
                ms(200),
                Some(ms(95_000)),
                &[
                    "BEGIN",
                    "SELECT * FROM orders WHERE id > $1 ORDER BY id LIMIT $2",
                    "UPDATE orders SET exported = true WHERE id = ANY($1)",
                ],
            ),
        ),
        (
            identity(4, "web"),
            activity(
                4,
                SessionState::Active,
                ms(100),
                Some(ms(25_000)),
                &["BEGIN", "DELETE FROM sessions WHERE expires_at < now()"],
            ),
        ),
    ];
    let found = TransactionWatch::default().check(&sessions, t0(), &TransactionThresholds::default());
    let labels = [
        (Kind::IdleInTransaction, 1, "idle 12.5 s after SELECT ... FOR UPDATE"),
        (
            Kind::IdleInTransaction,
            2,
            "a failed transaction idle 45 s, awaiting ROLLBACK (critical), no application_name",
        ),
        (Kind::LongTransaction, 1, "open 13 s, idle in it"),
        (Kind::LongTransaction, 2, "open 46 s, failed"),
        (Kind::LongTransaction, 3, "a batch job open 95 s (critical)"),
        (Kind::LongTransaction, 4, "open 25 s, running"),
    ];
    labels
        .into_iter()
        .filter(|(k, _, _)| *k == kind)
        .map(|(k, session, label)| {
            let f = found
                .iter()
                .find(|f| f.kind == k && f.evidence["session"] == session)
                .unwrap_or_else(|| panic!("no {} finding for session {session}", k.as_str()));
            (label, f.clone())
        })
        .collect()
}

#[test]
fn idle_in_transaction() {
    insta::assert_snapshot!(
        "idle_in_transaction",
        render(Kind::IdleInTransaction, &transactions(Kind::IdleInTransaction))
    );
}

#[test]
fn long_transaction() {
    insta::assert_snapshot!("long_transaction", render(Kind::LongTransaction, &transactions(Kind::LongTransaction)));
}

// ---------------------------------------------------------------------------------------------
// slow_query, missing_index

/// The slow_query findings after `durations` of `sql` (each returning `rows`).
fn slow(sql: &str, durations: &[u64], rows: u64) -> Finding {
    let (stats, config) = (QueryStats::new(100), SlowQueryConfig::default());
    let mut watch = SlowQueryWatch::default();
    for (i, d) in durations.iter().enumerate() {
        let mut e = event(1, sql, &[], ms(*d), t0() + ms(i as u64 * 1000));
        e.rows = rows;
        stats.record(&e);
        watch.observe(&e, &config);
    }
    last(watch.check(&stats, &config), sql)
}

#[test]
fn slow_query() {
    let cases = [
        ("steadily slow", slow("SELECT * FROM reports WHERE account_id = $1", &[180, 190, 210, 205, 220, 230], 12)),
        (
            "mostly fast, a slow tail (median far below the p95)",
            slow("SELECT * FROM orders WHERE status = $1", &[5, 6, 5, 7, 6, 5, 6, 900, 950, 1000], 3),
        ),
        (
            "very slow and returning thousands of rows per call (critical)",
            slow("SELECT * FROM events ORDER BY created_at", &[1500, 1600, 1700, 1800, 2100], 40_000),
        ),
        ("one call over --slow-once (1 s), its shape's first", {
            let mut e = event(3, "SELECT sum(total) FROM orders WHERE created_at > $1", &[], ms(1520), t0());
            e.rows = 1;
            SlowQueryWatch::default().observe(&e, &SlowQueryConfig::default()).expect("one call of 1.52 s")
        }),
    ];
    insta::assert_snapshot!("slow_query", render(Kind::SlowQuery, &cases));
}

#[test]
fn missing_index() {
    let statement = statement("SELECT * FROM orders WHERE customer_id = $1 AND status = $2");
    let candidate = IndexCandidate {
        scan: SeqScan {
            schema: Some("public".into()),
            table: "orders".into(),
            filter: "((customer_id = 42) AND (status = 'open'::text))".into(),
            plan_rows: 12.0,
        },
        table_rows: 250_000.0,
        columns: vec!["customer_id".into(), "status".into()],
        cost_before: 5400.0,
        cost_with_index: Some(12.5),
    };
    let fp = statement.fingerprint;
    let text = &statement.text;
    let big = IndexCandidate { table_rows: 3_000_000.0, cost_with_index: None, ..candidate.clone() };
    let not_halved = IndexCandidate { cost_with_index: Some(4000.0), ..candidate.clone() };
    let cases = [
        ("HypoPG confirms the index", missing_index::finding(fp, text, &candidate, Some(48.0))),
        ("HypoPG does not halve the cost", missing_index::finding(fp, text, &not_halved, Some(48.0))),
        ("no HypoPG, a table of 3 million rows (critical), no timing", missing_index::finding(fp, text, &big, None)),
    ];
    insta::assert_snapshot!("missing_index", render(Kind::MissingIndex, &cases));
}

// ---------------------------------------------------------------------------------------------
// repeated_query, unbounded_result, select_star

#[test]
fn repeated_query() {
    let label = session_label(&identity(3, "web"), Some(pid(3)));
    let run = |sql: &str, params: Option<u64>, every: u64, times: usize| {
        let mut d = RepeatedQueryDetector::new(RepeatedQueryConfig::default());
        let start = Instant::now();
        let mut found = Vec::new();
        for i in 0..times {
            let mut s = finished(sql, 1, 120, 3, Duration::from_micros(600), start + ms(i as u64 * every));
            s.params = params;
            found.extend(d.observe(&s, &label));
        }
        last(found, sql)
    };
    let cases = [
        ("10 times in 90 ms with the same parameters", run("SELECT * FROM settings WHERE key = $1", Some(42), 10, 10)),
        ("a statement without parameters, 1.8 s", run("SELECT * FROM feature_flags", None, 200, 10)),
        ("grown to 160 repeats (critical)", run("SELECT * FROM settings WHERE key = $1", Some(42), 5, 160)),
    ];
    insta::assert_snapshot!("repeated_query", render(Kind::RepeatedQuery, &cases));
}

#[test]
fn unbounded_result() {
    let label = session_label(&identity(3, "reports"), Some(pid(3)));
    let config = UnboundedResultConfig::default();
    let check = |sql: &str, rows: u64, bytes: u64, duration: u64| {
        let s = finished(sql, rows, bytes, 4, ms(duration), Instant::now());
        unbounded_result::check(&s, &config, &label).unwrap_or_else(|| panic!("{sql}: no finding"))
    };
    let cases = [
        ("25,000 rows", check("SELECT id, email, name, created_at FROM users", 25_000, 3_400_000, 180)),
        ("120 MB (critical)", check("SELECT * FROM documents WHERE folder_id = $1", 4_000, 120 * 1024 * 1024, 2400)),
    ];
    insta::assert_snapshot!("unbounded_result", render(Kind::UnboundedResult, &cases));
}

#[test]
fn select_star() {
    let config = SelectStarConfig::default();
    let check = |sql: &str, rows: u64, bytes: u64, columns: usize| {
        let s = finished(sql, rows, bytes, columns, ms(3), Instant::now());
        select_star::check(&s, &config).unwrap_or_else(|| panic!("{sql}: no finding"))
    };
    let cases = [
        ("wide rows", check("SELECT * FROM articles WHERE id = $1", 1, 48_000, 9)),
        (
            "many columns, t.* in a join",
            check("SELECT o.*, c.name FROM orders o JOIN customers c ON c.id = o.customer_id", 40, 24_000, 34),
        ),
    ];
    insta::assert_snapshot!("select_star", render(Kind::SelectStar, &cases));
}

// ---------------------------------------------------------------------------------------------
// unparameterized, lock_hazard_ddl, error_spike

#[test]
fn unparameterized() {
    let (config, mut watch) = (UnparameterizedConfig::default(), UnparameterizedWatch::default());
    let mut found = Vec::new();
    for i in 0..50u64 {
        let mut e = event(
            1,
            &format!("SELECT * FROM users WHERE email = 'user{i}@example.com'"),
            &[],
            ms(1),
            t0() + ms(i * 100),
        );
        e.literals = Some(1000 + i);
        found.extend(watch.observe(&e, &config));
    }
    let cases = [("50 literal texts of one shape in 5 s", last(found, "unparameterized"))];
    insta::assert_snapshot!("unparameterized", render(Kind::Unparameterized, &cases));
}

#[test]
fn lock_hazard_ddl() {
    let sessions = || {
        vec![
            (identity(1, "web"), activity(1, SessionState::Idle, ms(100), None, &[])),
            (identity(2, "migrate"), activity(2, SessionState::Active, ms(10), None, &[])),
        ]
    };
    let ddl = |sql: &str, duration: u64, setup: &[&str]| {
        let mut w = DdlWatch::default();
        let mut at = t0() - Duration::from_secs(30);
        let used = ["SELECT id, total FROM orders WHERE user_id = $1", "UPDATE orders SET total = $1 WHERE id = $2"];
        for (session, sql) in used.iter().map(|s| (1, *s)).chain(setup.iter().map(|s| (2, *s))) {
            at += Duration::from_secs(1);
            let s = statement(sql);
            let e = Executed { session, statement: &s, duration: ms(1), failed: false, finished_at: at };
            assert!(w.statement(e, sessions).is_none(), "{sql}");
        }
        let s = statement(sql);
        let e = Executed { session: 2, statement: &s, duration: ms(duration), failed: false, finished_at: t0() };
        w.statement(e, sessions).unwrap_or_else(|| panic!("{sql}: no finding"))
    };
    let cases = [
        (
            "CREATE INDEX without CONCURRENTLY, 1.5 s (critical)",
            ddl("CREATE INDEX orders_total ON orders (total)", 1500, &[]),
        ),
        ("a column type change", ddl("ALTER TABLE orders ALTER COLUMN total TYPE numeric(12,2)", 300, &[])),
        (
            "a volatile default, with lock_timeout set",
            ddl("ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid()", 80, &["SET lock_timeout = '2s'"]),
        ),
        ("only without lock_timeout, quick (info)", ddl("ALTER TABLE orders ADD COLUMN note text", 5, &[])),
    ];
    insta::assert_snapshot!("lock_hazard_ddl", render(Kind::LockHazardDdl, &cases));
}

#[test]
fn error_spike() {
    let config = ErrorSpikeConfig::default();
    let spike = |sql: &str, state: &str, calls: usize, every_nth_fails: usize| {
        let mut watch = ErrorSpikeWatch::default();
        let mut found = Vec::new();
        for i in 0..calls {
            let mut e = event(1, sql, &[], ms(1), t0() + ms(i as u64 * 200));
            e.error = (i % every_nth_fails == 0).then(|| SqlState::parse(state).unwrap());
            found.extend(watch.observe(&e, &config));
        }
        last(found, sql)
    };
    let cases = [
        ("unique violations piling up", spike("INSERT INTO users (email) VALUES ($1)", "23505", 30, 2)),
        (
            "a statement that always fails (critical)",
            spike("SELECT * FROM user_settings WHERE user_id = $1", "42P01", 12, 1),
        ),
        ("serialization failures", spike("UPDATE stock SET quantity = quantity - $1 WHERE sku = $2", "40001", 20, 1)),
        ("statement timeouts", spike("SELECT * FROM events WHERE payload @> $1", "57014", 10, 1)),
        ("a SQLSTATE without its own advice", spike("SELECT total / $1 FROM orders", "22012", 10, 1)),
    ];
    insta::assert_snapshot!("error_spike", render(Kind::ErrorSpike, &cases));
}

// ---------------------------------------------------------------------------------------------

/// A new kind without a snapshot here fails: its wording would go unreviewed.
#[test]
fn every_kind_has_a_snapshot() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let missing: Vec<&str> = Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !dir.join(format!("advice_snapshots__{k}.snap")).is_file())
        .collect();
    assert!(missing.is_empty(), "no snapshot of the advice wording of {missing:?} (add a test to this file)");
}
