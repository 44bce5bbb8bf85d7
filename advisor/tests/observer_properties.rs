//! A session observer fed any sequence of client and server messages: valid conversations with
//! arbitrary SQL, the same reordered, truncated bodies (a capped prefix, or a malformed message)
//! and random bodies under valid tags. It must not panic, its pending requests stay bounded and
//! ReadyForQuery still drains them; the events it sends then go through the engine's detectors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use advisor::detect::lock_contention::BlockingReport;
use advisor::detect::n_plus_one::NPlusOneConfig;
use advisor::detect::repeated_query::RepeatedQueryConfig;
use advisor::detect::select_star::SelectStarConfig;
use advisor::detect::session_checks::SessionChecksConfig;
use advisor::detect::unbounded_result::UnboundedResultConfig;
use advisor::engine::{Advisor, AdvisorConfig, Engine};
use advisor::events::{channel, Event};
use advisor::limits::Limit;
use advisor::observer::{SessionObserver, MAX_PENDING};
use advisor::sessions::{SessionIdentity, MAX_TRANSACTION_STATEMENTS};
use proptest::prelude::*;
use proptest::sample::Index;
use protocol::ScannedMessage;

/// SQL worth sending: reads with parameters (N+1, repeated_query), DDL, transaction control,
/// several statements in one Query, Unicode, unterminated quotes, or anything at all.
fn sql() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        prop::sample::select(
            &[
                "SELECT * FROM t WHERE id = $1",
                "select id, name from users",
                "SELECT id FROM ptab WHERE w€ = $1",
                "select * from orders where user_id = 5",
                "ALTER\u{a0}\u{3000}\u{a0}TABLE t ADD x int",
                "alter table t add column c uuid default gen_random_uuid()",
                "create index on t (a)",
                "create function f() returns int language sql begin atomic select 1; end",
                "BEGIN",
                "COMMIT",
                "SET lock_timeout = '1s'",
                "insert into t values (1, 'x'), (2, 'y')",
                "update t set a = 1 where b = 2",
                "SELECT x.begin atomic FROM (select 1 as begin) x",
                "-- c\rselect 2",
                "select 'unterminated",
                "select $q$ never closed",
                "/* open",
                "; ;",
                "日本",
                "\u{2003}",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|v| v.join("; ")).boxed()
}

/// One message in one direction: its tag and whole body.
#[derive(Debug, Clone)]
enum Msg {
    Client(u8, Vec<u8>),
    Server(u8, Vec<u8>),
}

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(&["", "s1", "s2", "p1"][..]).prop_map(|n| n.as_bytes().to_vec())
}

fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        3 => "[0-9]{1,3}".prop_map(|v| Some(v.into_bytes())),
        1 => any::<String>().prop_map(|v| Some(v.into_bytes())),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Some),
        1 => Just(None),
    ]
}

fn values(out: &mut Vec<u8>, values: &[Option<Vec<u8>>]) {
    out.extend_from_slice(&(values.len() as i16).to_be_bytes());
    for v in values {
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}

fn formats(out: &mut Vec<u8>, formats: &[i16]) {
    out.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for f in formats {
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// A well-formed client message.
fn client() -> BoxedStrategy<Msg> {
    let format = prop_oneof![Just(0i16), Just(1i16), any::<i16>()];
    prop_oneof![
        4 => sql().prop_map(|sql| {
            let mut b = Vec::new();
            cstr(&mut b, sql.as_bytes());
            Msg::Client(b'Q', b)
        }),
        3 => (name(), sql(), prop::collection::vec(any::<u32>(), 0..3)).prop_map(|(name, sql, oids)| {
            let mut b = Vec::new();
            cstr(&mut b, &name);
            cstr(&mut b, sql.as_bytes());
            b.extend_from_slice(&(oids.len() as i16).to_be_bytes());
            oids.iter().for_each(|o| b.extend_from_slice(&o.to_be_bytes()));
            Msg::Client(b'P', b)
        }),
        3 => (
            name(),
            name(),
            prop::collection::vec(format.clone(), 0..3),
            prop::collection::vec(value(), 0..4),
            prop::collection::vec(format, 0..3),
        )
            .prop_map(|(portal, statement, param_formats, params, result_formats)| {
                let mut b = Vec::new();
                cstr(&mut b, &portal);
                cstr(&mut b, &statement);
                formats(&mut b, &param_formats);
                values(&mut b, &params);
                formats(&mut b, &result_formats);
                Msg::Client(b'B', b)
            }),
        2 => (prop::sample::select(&[b'S', b'P'][..]), name()).prop_map(|(kind, name)| {
            let mut b = vec![kind];
            cstr(&mut b, &name);
            Msg::Client(b'D', b)
        }),
        3 => (name(), any::<i32>()).prop_map(|(portal, rows)| {
            let mut b = Vec::new();
            cstr(&mut b, &portal);
            b.extend_from_slice(&rows.to_be_bytes());
            Msg::Client(b'E', b)
        }),
        1 => (prop::sample::select(&[b'S', b'P'][..]), name()).prop_map(|(kind, name)| {
            let mut b = vec![kind];
            cstr(&mut b, &name);
            Msg::Client(b'C', b)
        }),
        3 => Just(Msg::Client(b'S', Vec::new())),
        1 => Just(Msg::Client(b'H', Vec::new())),
        1 => prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| Msg::Client(b'F', b)),
    ]
    .boxed()
}

/// A well-formed server message.
fn server() -> BoxedStrategy<Msg> {
    let column = (prop_oneof![Just("id".to_string()), any::<String>()], prop_oneof![Just(0i16), Just(1i16)]);
    let sqlstate = prop_oneof![
        prop::sample::select(&["40P01", "23505", "57014", "55P03", "25P02"][..]).prop_map(str::to_owned),
        "[0-9A-Z]{5}",
        any::<String>(),
    ];
    prop_oneof![
        2 => prop::collection::vec(column, 0..4).prop_map(|fields| {
            let mut b = (fields.len() as i16).to_be_bytes().to_vec();
            for (name, format) in fields {
                cstr(&mut b, name.as_bytes());
                b.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 23, 0, 4, 255, 255, 255, 255]);
                b.extend_from_slice(&format.to_be_bytes());
            }
            Msg::Server(b'T', b)
        }),
        4 => data_row(),
        4 => prop_oneof![
            (prop::sample::select(&["SELECT", "INSERT 0", "UPDATE", "DELETE", "FETCH", "MOVE", "COPY"][..]), any::<u32>())
                .prop_map(|(verb, n)| format!("{verb} {n}")),
            prop::sample::select(&["BEGIN", "COMMIT", "ROLLBACK", "CREATE INDEX", "ALTER TABLE", "SET"][..])
                .prop_map(str::to_owned),
            any::<String>(),
        ]
        .prop_map(|tag| {
            let mut b = Vec::new();
            cstr(&mut b, tag.as_bytes());
            Msg::Server(b'C', b)
        }),
        2 => (sqlstate, any::<String>()).prop_map(|(code, detail)| {
            let mut b = Vec::new();
            for (field, text) in [(b'S', "ERROR"), (b'C', code.as_str()), (b'M', "boom")] {
                b.push(field);
                cstr(&mut b, text.as_bytes());
            }
            b.push(b'D');
            cstr(&mut b, format!("Process 101 waits for ShareLock; blocked by process 102. {detail}").as_bytes());
            b.push(0);
            Msg::Server(b'E', b)
        }),
        4 => prop::sample::select(&[b'I', b'T', b'E', b'x'][..]).prop_map(|s| Msg::Server(b'Z', vec![s])),
        2 => prop::sample::select(&[b'1', b'2', b'3', b'n', b'I', b's'][..]).prop_map(|t| Msg::Server(t, Vec::new())),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(pid, key)| {
            let mut b = pid.to_be_bytes().to_vec();
            b.extend_from_slice(&key.to_be_bytes());
            Msg::Server(b'K', b)
        }),
        1 => (prop_oneof![Just("application_name".to_string()), any::<String>()], any::<String>()).prop_map(|(k, v)| {
            let mut b = Vec::new();
            cstr(&mut b, k.as_bytes());
            cstr(&mut b, v.as_bytes());
            Msg::Server(b'S', b)
        }),
    ]
    .boxed()
}

/// A DataRow.
fn data_row() -> impl Strategy<Value = Msg> {
    prop::collection::vec(value(), 0..4).prop_map(|row| {
        let mut b = Vec::new();
        values(&mut b, &row);
        Msg::Server(b'D', b)
    })
}

/// Tags the observer dispatches on, with a random body each.
fn random_body() -> BoxedStrategy<Msg> {
    let body = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        (prop::sample::select(&b"QPBDECSHFXdcf"[..]), body.clone()).prop_map(|(t, b)| Msg::Client(t, b)),
        (prop::sample::select(&b"TDCEZ123nIsKSNtGHWcdA"[..]), body).prop_map(|(t, b)| Msg::Server(t, b)),
    ]
    .boxed()
}

/// A message, and how much of its body the observer sees: all of it, a capped prefix (the
/// body is longer on the wire), or a truncated body (the message itself is cut short).
#[derive(Debug, Clone)]
struct Step {
    msg: Msg,
    cut: Option<(Index, bool)>,
}

fn step() -> impl Strategy<Value = Step> {
    let msg = prop_oneof![5 => client(), 5 => server(), 1 => random_body()];
    let cut = prop_oneof![4 => Just(None), 1 => (any::<Index>(), any::<bool>()).prop_map(Some)];
    (msg, cut).prop_map(|(msg, cut)| Step { msg, cut })
}

/// A conversation as clients send it (requests, then their answers in order), then shuffled
/// locally: some messages swap places with a later one.
fn conversation() -> impl Strategy<Value = Vec<Step>> {
    (prop::collection::vec(step(), 0..48), prop::collection::vec((any::<Index>(), any::<Index>()), 0..6)).prop_map(
        |(mut steps, swaps)| {
            if !steps.is_empty() {
                for (a, b) in swaps {
                    let (a, b) = (a.index(steps.len()), b.index(steps.len()));
                    steps.swap(a, b);
                }
            }
            steps
        },
    )
}

/// Request/answer pairs in protocol order: a simple query cycle (answered with any messages),
/// then an extended batch that runs a prepared statement and returns rows.
fn ordered() -> impl Strategy<Value = Vec<Step>> {
    let whole = |msg| Step { msg, cut: None };
    (sql(), prop::collection::vec(server(), 0..6), name(), sql(), prop::collection::vec(data_row(), 0..6)).prop_map(
        move |(query, answers, statement, prepared, rows)| {
            let mut out = Vec::new();
            let mut q = Vec::new();
            cstr(&mut q, query.as_bytes());
            out.push(whole(Msg::Client(b'Q', q)));
            out.extend(answers.into_iter().map(whole));
            out.push(whole(Msg::Server(b'Z', vec![b'T'])));
            let mut p = Vec::new();
            cstr(&mut p, &statement);
            cstr(&mut p, prepared.as_bytes());
            p.extend_from_slice(&[0, 0]);
            let mut b = vec![0];
            cstr(&mut b, &statement);
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]);
            out.push(whole(Msg::Client(b'P', p)));
            out.push(whole(Msg::Client(b'B', b)));
            out.push(whole(Msg::Client(b'E', vec![0, 0, 0, 0, 0])));
            out.push(whole(Msg::Client(b'S', Vec::new())));
            out.push(whole(Msg::Server(b'1', Vec::new())));
            out.push(whole(Msg::Server(b'2', Vec::new())));
            out.extend(rows.into_iter().map(whole));
            out.push(whole(Msg::Server(b'C', b"SELECT 1\0".to_vec())));
            out.push(whole(Msg::Server(b'Z', vec![b'I'])));
            out
        },
    )
}

/// Thresholds low enough that every detector speaks.
fn eager_config() -> AdvisorConfig {
    let mut config = AdvisorConfig { lock_wait: Duration::ZERO, ..AdvisorConfig::default() };
    config.n_plus_one = NPlusOneConfig { min_children: 2, gap: Duration::from_secs(5), log_params: true };
    config.transactions.idle_in_transaction = Duration::ZERO;
    config.transactions.long_transaction = Duration::ZERO;
    config.slow_query.threshold = Duration::ZERO;
    config.slow_query.min_calls = 1;
    config.unparameterized.min_texts = 1;
    config.error_spike.min_errors = 1;
    config.session_checks = SessionChecksConfig {
        repeated_query: RepeatedQueryConfig { min_repeats: 2, window: Duration::from_secs(5) },
        unbounded_result: UnboundedResultConfig { rows: 1, bytes: 1 },
        select_star: SelectStarConfig { row_bytes: 0, columns: 0 },
    };
    config
}

struct Wire {
    observer: SessionObserver,
    rx: advisor::events::EventReceiver,
    /// The observer's sending side, for the bounds it counts there.
    tx: advisor::events::EventSender,
    engine: Engine,
    advisor: Arc<Advisor>,
    /// Requests fed that a ReadyForQuery ends (Query, Sync, FunctionCall).
    cycles: usize,
}

impl Wire {
    fn new() -> Self {
        let config = eager_config();
        let n_plus_one = config.n_plus_one.clone();
        let checks = config.session_checks.clone();
        let (advisor, _inputs) = Advisor::new(config);
        let entry = advisor.sessions.open(SessionIdentity {
            id: 7,
            user: "u".into(),
            database: "d".into(),
            application_name: String::new(),
            client_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            tls: false,
            connected_at: SystemTime::now(),
        });
        let (tx, rx) = channel(256);
        let observer = SessionObserver::new(7, entry, tx.clone(), n_plus_one).with_checks(checks);
        let sink = Box::new(|advice: &advisor::advice::Advice| {
            assert!(!advice.to_block().is_empty());
        });
        let (explainer, _) = tokio::sync::mpsc::channel(1);
        let engine = Engine::new(advisor.clone(), sink, None).with_explainer(explainer);
        Self { observer, rx, tx, engine, advisor, cycles: 0 }
    }

    fn feed(&mut self, step: &Step) {
        let (client, tag, whole) = match &step.msg {
            Msg::Client(t, b) => (true, *t, &b[..]),
            Msg::Server(t, b) => (false, *t, &b[..]),
        };
        let (body, body_len) = match step.cut {
            None => (whole, whole.len()),
            Some((at, capped)) => {
                let body = &whole[..at.index(whole.len() + 1)];
                (body, if capped { whole.len() } else { body.len() })
            }
        };
        let m = ScannedMessage { tag, body_len, body };
        if client {
            self.cycles += usize::from(matches!(tag, b'Q' | b'S' | b'F'));
            self.observer.frontend(m);
        } else {
            self.observer.backend(m);
        }
        self.drain();
    }

    /// Moves the observer's events through the engine, as the engine task would.
    fn drain(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            self.engine.apply(event);
        }
    }

    fn check_bounds(&self) -> Result<(), TestCaseError> {
        prop_assert!(self.observer.pending_requests() <= MAX_PENDING);
        // What readers see: the published copy, equal to the observer's own record.
        let (_, activity) = self.advisor.sessions.get(7).expect("the session is open");
        prop_assert_eq!(activity.state, self.observer.record().activity.state);
        prop_assert!(activity.transaction_statements.len() <= MAX_TRANSACTION_STATEMENTS);
        prop_assert!(activity.previous_transaction.len() <= MAX_TRANSACTION_STATEMENTS);
        Ok(())
    }

    /// Runs the engine's periodic checks twice, with an Inspector answer (naming `statement` as
    /// its wait event) in between, so lock, transaction and slow-query advice are written from
    /// the text the session sent.
    fn settle(&mut self, statement: &str, pids: &[u32]) {
        self.observer.finish();
        self.drain();
        self.engine.check();
        let started = self.observer.record().activity.statement_started;
        if let Some(statement_started) = started {
            let report = BlockingReport {
                waiter_pid: 1,
                blockers: pids.to_vec(),
                roots: pids.iter().rev().copied().collect(),
                wait_event: Some(statement.into()),
            };
            self.engine.apply(Event::Blocking { session: 7, statement_started, report: Some(report) });
        }
        self.engine.check();
        for advice in self.advisor.advice.list() {
            assert!(!advice.to_block().is_empty());
        }
    }

    /// ReadyForQuery ends every cycle: one per Query, Sync or FunctionCall fed, and one more
    /// for requests sent without a Sync, drains what is pending.
    fn close_cycles(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..=self.cycles {
            self.observer.backend(ScannedMessage { tag: b'Z', body_len: 1, body: b"I" });
        }
        self.drain();
        prop_assert_eq!(self.observer.pending_requests(), 0);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_message_sequence(steps in conversation(), statement in sql(), pids in prop::collection::vec(100u32..110, 0..3)) {
        let mut wire = Wire::new();
        for step in &steps {
            wire.feed(step);
            wire.check_bounds()?;
        }
        wire.settle(&statement, &pids);
        wire.close_cycles()?;
    }

    #[test]
    fn ordered_conversations(cycles in prop::collection::vec(ordered(), 1..4), statement in sql()) {
        let mut wire = Wire::new();
        for step in cycles.iter().flatten() {
            wire.feed(step);
            wire.check_bounds()?;
        }
        wire.settle(&statement, &[101]);
        // Each cycle's prepared statement ran to completion: slow_query (threshold 0) reported it.
        prop_assert!(!wire.advisor.advice.is_empty());
        wire.close_cycles()?;
    }
}

/// Requests nobody answers are forgotten past the cap.
#[test]
fn pending_requests_are_capped() {
    let mut wire = Wire::new();
    let parse = Step { msg: Msg::Client(b'P', b"\0select 1\0\0\0".to_vec()), cut: None };
    for _ in 0..MAX_PENDING + 50 {
        wire.observer.frontend(ScannedMessage { tag: b'P', body_len: 12, body: b"\0select 1\0\0\0" });
    }
    assert_eq!(wire.observer.pending_requests(), MAX_PENDING);
    wire.feed(&parse);
    assert_eq!(wire.observer.pending_requests(), MAX_PENDING);
    assert_eq!(wire.tx.limits().reached(Limit::PendingRequests), 51, "each request forgotten is counted");
    assert_eq!(wire.tx.limits().reached(Limit::PreparedStatements), 0, "unnamed statements are not held");
}
