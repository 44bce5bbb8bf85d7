//! Unit tests of the observer: statements shared among texts, results carried to the engine.

use super::*;
use crate::engine::{Advisor, AdvisorConfig};
use crate::events::StatementEvent;
use crate::sessions::SessionIdentity;

/// One observed session, and the events its observer sent.
struct Session {
    observer: SessionObserver,
    events: crate::events::EventReceiver,
}

impl Session {
    /// A session whose events wait in a channel of `capacity`.
    fn new(capacity: usize) -> Self {
        let (advisor, _inputs) = Advisor::new(AdvisorConfig::default());
        let (tx, events) = crate::events::channel(capacity);
        let entry = advisor.sessions.open(SessionIdentity::sample(1));
        Self { observer: SessionObserver::new(1, entry, tx, NPlusOneConfig::default()), events }
    }

    /// Runs `sql` as a simple Query, answered by `rows` (DataRow bodies), CommandComplete
    /// `tag` and ReadyForQuery.
    fn query(&mut self, sql: &str, rows: &[&[u8]], tag: &str) {
        let body = format!("{sql}\0");
        self.observer.frontend(ScannedMessage { tag: b'Q', body_len: body.len(), body: body.as_bytes() });
        for row in rows {
            self.observer.backend(ScannedMessage { tag: b'D', body_len: row.len(), body: row });
        }
        let tag = format!("{tag}\0");
        self.observer.backend(ScannedMessage { tag: b'C', body_len: tag.len(), body: tag.as_bytes() });
        self.observer.backend(ScannedMessage { tag: b'Z', body_len: 1, body: b"I" });
    }

    /// How many times this session's observer reached `limit`.
    fn limit_reached(&self, limit: Limit) -> u64 {
        self.observer.events.limits().reached(limit)
    }

    /// The statement events sent so far, in order.
    fn statements(&mut self) -> Vec<StatementEvent> {
        std::iter::from_fn(|| self.events.try_recv().ok())
            .filter_map(|e| match e {
                Event::Statement(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_backlog_of_events_carries_no_more_results() {
    let mut session = Session::new(2 * crate::events::MAX_QUEUED_RESULTS);
    let mut row = 1u16.to_be_bytes().to_vec();
    row.extend_from_slice(&1i32.to_be_bytes());
    row.push(b'7');
    for i in 0..crate::events::MAX_QUEUED_RESULTS + 2 {
        session.query(&format!("select v from t where id = {i}"), &[&row], "SELECT 1");
    }
    let results: Vec<bool> = session.statements().iter().map(|s| s.result.is_some()).collect();
    let dropped = results.iter().filter(|r| !**r).count() as u64;
    assert!(dropped >= 2 && session.observer.events.results_dropped() == dropped, "each refused result counted");
    assert_eq!(results.len(), crate::events::MAX_QUEUED_RESULTS + 2, "every statement is still counted");
    let with = results.iter().take_while(|r| **r).count();
    assert!(with > 0 && with <= crate::events::MAX_QUEUED_RESULTS, "results while there is room: {with}");
    assert!(!results[with..].iter().any(|r| *r), "none once the backlog reached its bound");
}

#[test]
fn texts_differing_only_in_literals_share_a_statement() {
    let mut session = Session::new(64);
    for sql in [
        "update t set n = n + 1 where id = 5",
        "update t set n = n + 1 where id = 77",
        "UPDATE \"t\" SET \"n\" = \"n\" + 1 WHERE \"id\" = 5",
        "update t set n = n + 1 where id = 5 /*route='/a'*/",
    ] {
        session.query(sql, &[], "UPDATE 1");
    }
    let s: Vec<Arc<Statement>> = session.statements().into_iter().map(|e| e.statement).collect();
    assert_eq!(s.len(), 4);
    assert!(Arc::ptr_eq(&s[0], &s[1]), "only the literal differs");
    assert_eq!(s[2].fingerprint, s[0].fingerprint);
    assert!(!Arc::ptr_eq(&s[2], &s[0]), "written otherwise: its own display text");
    assert_eq!(&*s[2].display, "UPDATE \"t\" SET \"n\" = \"n\" + $1 WHERE \"id\" = $2");
    assert!(s[3].tags.is_some() && !Arc::ptr_eq(&s[3], &s[0]), "tags are per text");
}

/// Sends `body` as a Query message whose length is `body_len` (more than `body` when the relay
/// observed a prefix only).
fn send_query(session: &mut Session, body: &[u8], body_len: usize) {
    session.observer.frontend(ScannedMessage { tag: b'Q', body_len, body });
}

/// Answers `statements` statements with CommandComplete each, then ReadyForQuery.
fn answer(session: &mut Session, statements: usize) {
    for _ in 0..statements {
        session.observer.backend(ScannedMessage { tag: b'C', body_len: 9, body: b"SELECT 0\0" });
    }
    session.observer.backend(ScannedMessage { tag: b'Z', body_len: 1, body: b"I" });
}

#[test]
fn a_query_longer_than_the_scan_takes_is_split_and_each_statement_shares_by_shape() {
    let mut session = Session::new(4096);
    let n = 800;
    let text: String = (0..n).map(|i| format!("select v from t where id = {i};")).collect();
    assert!(text.len() > crate::fingerprint::MAX_SCANNED);
    send_query(&mut session, format!("{text}\0").as_bytes(), text.len() + 1);
    answer(&mut session, n);
    let statements = session.statements();
    assert_eq!(statements.len(), n, "every statement counted");
    assert!(statements.iter().all(|s| Arc::ptr_eq(&s.statement, &statements[0].statement)), "one shape");
    assert_eq!(&*statements[0].statement.text, "SELECT v FROM t WHERE id = $1");
}

#[test]
fn a_statement_with_more_literals_than_the_scan_masks_is_fingerprinted() {
    let mut session = Session::new(64);
    let many = crate::fingerprint::MAX_LITERALS + 44;
    for first in [1, 1000] {
        let list: Vec<String> = (first..first + many).map(|v| v.to_string()).collect();
        session.query(&format!("select v from t where id in ({})", list.join(", ")), &[], "SELECT 0");
    }
    let statements = session.statements();
    assert_eq!(statements.len(), 2);
    assert_eq!(statements[0].statement.fingerprint, statements[1].statement.fingerprint);
    assert_eq!(&*statements[0].statement.text, "SELECT v FROM t WHERE id IN ($1)");
}

#[test]
fn a_query_observed_by_its_prefix_is_counted() {
    let mut session = Session::new(64);
    let long = format!("insert into t values ('{}')", "x".repeat(70_000));
    let prefix = &long.as_bytes()[..64 * 1024];
    send_query(&mut session, prefix, long.len() + 1);
    answer(&mut session, 1);
    let statements = session.statements();
    assert_eq!(statements.len(), 1, "counted from the text it starts with");
    assert!(statements[0].statement.text.starts_with("INSERT INTO t VALUES"), "{}", statements[0].statement.text);
}

#[test]
fn queries_of_many_tiny_statements_queue_a_bounded_number_of_runs() {
    let mut session = Session::new(2 * MAX_QUEUED_RUNS);
    // `a;a;a;...` as long as the observed prefix, pipelined four times without an answer: each
    // two bytes would otherwise be a statement record (about 250 bytes) kept until answered.
    let text = "a;".repeat(OBSERVED_PREFIX_FOR_TEST / 2);
    for _ in 0..4 {
        send_query(&mut session, format!("{text}\0").as_bytes(), text.len() + 1);
    }
    assert_eq!(session.observer.pending_requests(), 4, "every Query still awaits its answer");
    assert_eq!(session.observer.pending.query_runs(), MAX_QUEUED_RUNS + 3, "the budget, then one a Query past it");
    assert_eq!(session.limit_reached(Limit::QueryStatements), 4, "each Query cut short is counted");
    // Answered in full: the statements the observer times come out, the rest are forwarded
    // and answered as ever, and as the answers come the budget frees up.
    for _ in 0..4 {
        answer(&mut session, text.len() / 2);
    }
    assert_eq!(session.observer.pending_requests(), 0);
    assert_eq!(session.statements().len(), MAX_QUEUED_RUNS + 3, "each queued statement timed once");
    send_query(&mut session, b"select 1; select 2\0", 19);
    answer(&mut session, 2);
    assert_eq!(session.statements().len(), 2, "a Query after a break is timed whole");
}

/// The relay's observed prefix (`proxy`'s `OBSERVED_PREFIX`), the longest Query text observed.
const OBSERVED_PREFIX_FOR_TEST: usize = 64 * 1024;

#[test]
fn statement_names_are_read_as_postgresql_reads_them() {
    // PostgreSQL keys prepared statements and portals by their first 63 bytes: a Bind naming a
    // longer name that starts the same finds the statement, and nothing past them is kept.
    let mut session = Session::new(64);
    let (parsed, bound) = (format!("{}tail-one", "s".repeat(63)), format!("{}tail-two", "s".repeat(63)));
    let client = |session: &mut Session, tag: u8, body: Vec<u8>| {
        session.observer.frontend(ScannedMessage { tag, body_len: body.len(), body: &body });
    };
    let server = |session: &mut Session, tag: u8, body: &[u8]| {
        session.observer.backend(ScannedMessage { tag, body_len: body.len(), body });
    };
    client(&mut session, b'P', [parsed.as_bytes(), b"\0select v from t where id = $1\0\0\0"].concat());
    let portal = "p".repeat(100);
    let bind = [portal.as_bytes(), b"\0", bound.as_bytes(), b"\0\0\0\0\x01\0\0\0\x017\0\0"].concat();
    client(&mut session, b'B', bind);
    let other_portal = format!("{}other", &portal[..63]);
    client(&mut session, b'E', [other_portal.as_bytes(), b"\0\0\0\0\0"].concat());
    client(&mut session, b'S', Vec::new());
    server(&mut session, b'1', b"");
    server(&mut session, b'2', b"");
    server(&mut session, b'C', b"SELECT 0\0");
    server(&mut session, b'Z', b"I");
    let statements = session.statements();
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(&*statements[0].statement.text, "SELECT v FROM t WHERE id = $1");
    let (statements, portals) = (&session.observer.statements.held.entries, &session.observer.portals.held.entries);
    assert!(statements.keys().chain(portals.keys()).all(|k| k.len() == 63));
    assert!(Limit::ALL.iter().all(|&l| session.limit_reached(l) == 0), "no bound reached");
}

#[test]
fn prepared_statements_hold_a_bounded_amount_of_text() {
    // Named statements of long, distinct texts: past the budget the session forgets them all
    // (as past the count), and a statement closed gives its bytes back.
    let mut session = Session::new(64);
    // Constants do not stay in a statement's texts; names do.
    let columns: Vec<String> = (0..2_000).map(|c| format!("c{c}")).collect();
    let long = |i: usize| format!("select {} from t{i}\0\0\0", columns.join(", "));
    let mut most = 0;
    for i in 0..200 {
        let body = [format!("s{i}\0").as_bytes(), long(i).as_bytes()].concat();
        session.observer.frontend(ScannedMessage { tag: b'P', body_len: body.len(), body: &body });
        most = most.max(session.observer.statements.held.text_bytes);
        assert!(session.observer.statements.held.text_bytes <= MAX_NAMED_TEXT_BYTES, "{i}");
    }
    assert!(most > MAX_NAMED_TEXT_BYTES / 2, "the budget was approached: {most}");
    let held = session.observer.statements.held.entries.len();
    assert!(held > 0 && held < 200, "forgotten past the budget: {held} held");
    let forgotten = session.limit_reached(Limit::PreparedStatements);
    assert!((1..20).contains(&forgotten), "each time it forgot them all counted, once: {forgotten}");
    let before = session.observer.statements.held.text_bytes;
    session.observer.frontend(ScannedMessage { tag: b'C', body_len: 6, body: b"Ss199\0" });
    assert!(session.observer.statements.held.text_bytes < before, "a Close gives its bytes back");
    assert!(session.observer.statements.get(b"s199").is_none());
}

#[test]
fn portals_past_the_count_are_forgotten_and_counted() {
    // A client that binds named portals without closing them (each in its own transaction they
    // would be closed by the server, but the observer cannot know): past the count the session
    // forgets them all, once.
    let mut session = Session::new(64);
    let parse = b"s\0select 1\0\0\0";
    session.observer.frontend(ScannedMessage { tag: b'P', body_len: parse.len(), body: parse });
    for i in 0..MAX_NAMED + 1 {
        let bind = [format!("p{i}\0s\0").as_bytes(), b"\0\0\0\0\0\0"].concat();
        session.observer.frontend(ScannedMessage { tag: b'B', body_len: bind.len(), body: &bind });
        session.observer.backend(ScannedMessage { tag: b'2', body_len: 0, body: b"" });
    }
    assert_eq!(session.observer.portals.held.entries.len(), 1, "forgotten, then the new one kept");
    assert_eq!(session.limit_reached(Limit::Portals), 1);
    assert_eq!(session.limit_reached(Limit::PreparedStatements), 0);
}

#[test]
fn names_prepared_again_with_longer_texts_stay_within_the_text_budget() {
    // Every name held, then each Parsed again with a long text (the server refuses a duplicate
    // name, but the observer has already replaced it): replacing counts against the budget.
    let mut session = Session::new(64);
    let parse = |session: &mut Session, name: &str, sql: &str| {
        let body = [name.as_bytes(), b"\0", sql.as_bytes(), b"\0\0\0"].concat();
        session.observer.frontend(ScannedMessage { tag: b'P', body_len: body.len(), body: &body });
    };
    for i in 0..100 {
        parse(&mut session, &format!("s{i}"), "select 1");
    }
    let columns: Vec<String> = (0..2_000).map(|c| format!("c{c}")).collect();
    for i in 0..100 {
        parse(&mut session, &format!("s{i}"), &format!("select {} from t{i}", columns.join(", ")));
        assert!(session.observer.statements.held.text_bytes <= MAX_NAMED_TEXT_BYTES, "{i}");
    }
    assert!(session.limit_reached(Limit::PreparedStatements) >= 1, "forgetting them is counted");
}

#[test]
fn a_query_sent_during_copy_in_awaits_no_answer() {
    // PostgreSQL consumes any message but CopyData, CopyDone, CopyFail, Flush and Sync during
    // COPY FROM STDIN and fails the COPY: nothing answers the Query itself.
    let mut session = Session::new(64);
    for _ in 0..3 {
        send_query(&mut session, b"copy t from stdin\0", 18);
        session.observer.backend(ScannedMessage { tag: b'G', body_len: 3, body: b"\0\0\0" });
        send_query(&mut session, b"select 1\0", 9);
        assert_eq!(session.observer.pending_requests(), 1, "only the COPY awaits its answer");
        let error = b"SERROR\0C08P01\0Munexpected message type 0x51 during COPY from stdin\0\0";
        session.observer.backend(ScannedMessage { tag: b'E', body_len: error.len(), body: error });
        session.observer.backend(ScannedMessage { tag: b'Z', body_len: 1, body: b"I" });
        assert_eq!(session.observer.pending_requests(), 0, "nothing left waiting");
    }
    send_query(&mut session, b"select 2\0", 9);
    answer(&mut session, 1);
    let statements = session.statements();
    assert_eq!(statements.last().map(|s| &*s.statement.text), Some("SELECT $1"), "{statements:?}");
    assert!(statements.last().is_some_and(|s| s.error.is_none()), "timed against its own answer");
}

#[test]
fn long_texts_fingerprinted_once_each_hold_a_bounded_cache() {
    // Distinct long Queries (too long to share a statement by their normalised text) each add
    // a cached fingerprint: the session holds at most MAX_CACHED_TEXT_BYTES of their texts.
    let mut session = Session::new(4096);
    let columns: Vec<String> = (0..1_500).map(|c| format!("c{c}")).collect();
    let mut most = 0;
    for i in 0..600 {
        let sql = format!("select {} from t{i}", columns.join(", "));
        send_query(&mut session, format!("{sql}\0").as_bytes(), sql.len() + 1);
        answer(&mut session, 1);
        most = most.max(session.observer.by_text.text_bytes);
        assert!(session.observer.by_text.text_bytes <= MAX_CACHED_TEXT_BYTES, "{i}");
        assert!(session.observer.by_text.entries.len() <= MAX_CACHED_TEXTS, "{i}");
    }
    assert!(most > MAX_CACHED_TEXT_BYTES / 2, "the budget was approached: {most}");
    assert_eq!(session.statements().len(), 600, "every statement still timed");
}

/// A message of the small alphabet the running count of Query statements is checked over.
#[derive(Debug, Clone)]
enum Step {
    Query(usize),
    Parse,
    Bind,
    Execute,
    Sync,
    Complete,
    Error,
    Ready,
    CopyIn,
    CopyDone,
    ParseComplete,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (1usize..4).prop_map(Step::Query),
        Just(Step::Parse),
        Just(Step::Bind),
        Just(Step::Execute),
        Just(Step::Sync),
        Just(Step::Complete),
        Just(Step::Error),
        Just(Step::Ready),
        Just(Step::CopyIn),
        Just(Step::CopyDone),
        Just(Step::ParseComplete),
    ]
}

proptest::proptest! {
    #[test]
    fn the_count_of_query_statements_is_the_queue_walked(steps in proptest::collection::vec(step(), 0..80)) {
        let mut session = Session::new(4096);
        for step in steps {
            let (client, server) = (
                |s: &mut Session, tag: u8, body: &[u8]| s.observer.frontend(ScannedMessage { tag, body_len: body.len(), body }),
                |s: &mut Session, tag: u8, body: &[u8]| s.observer.backend(ScannedMessage { tag, body_len: body.len(), body }),
            );
            match step {
                Step::Query(n) => client(&mut session, b'Q', format!("{}\0", "select 1;".repeat(n)).as_bytes()),
                Step::Parse => client(&mut session, b'P', b"\0select 1\0\0\0"),
                Step::Bind => client(&mut session, b'B', b"\0\0\0\0\0\0\0\0"),
                Step::Execute => client(&mut session, b'E', b"\0\0\0\0\0"),
                Step::Sync => client(&mut session, b'S', b""),
                Step::Complete => server(&mut session, b'C', b"SELECT 1\0"),
                Step::Error => server(&mut session, b'E', b"SERROR\0C42P01\0Mno\0\0"),
                Step::Ready => server(&mut session, b'Z', b"I"),
                Step::CopyIn => server(&mut session, b'G', b"\0\0\0"),
                Step::CopyDone => client(&mut session, b'c', b""),
                Step::ParseComplete => server(&mut session, b'1', b""),
            }
            let pending = &session.observer.pending;
            proptest::prop_assert_eq!(pending.query_runs(), pending.query_runs_walked());
        }
        let _ = session.statements();
    }
}

#[test]
fn after_a_reset_a_session_reports_again_what_it_had_reported() {
    // `select_star` is reported once per session and shape; a reset forgets the advice, so the
    // session must be able to report it again (and no more often than that).
    let mut session = Session::new(64);
    let mut row = 1u16.to_be_bytes().to_vec();
    row.extend_from_slice(&2000i32.to_be_bytes());
    row.extend_from_slice(&[b'x'; 2000]);
    let reported = |session: &mut Session| {
        session.query("select * from wide", &[&row], "SELECT 1");
        let events: Vec<Event> = std::iter::from_fn(|| session.events.try_recv().ok()).collect();
        events.iter().filter(|e| matches!(e, Event::Finding(f, _) if f.kind == crate::advice::Kind::SelectStar)).count()
    };
    assert_eq!(reported(&mut session), 1, "the first wide `select *` is reported");
    assert_eq!(reported(&mut session), 0, "once per session and shape");
    session.observer.events.count_reset();
    assert_eq!(reported(&mut session), 1, "reported again after a reset");
    assert_eq!(reported(&mut session), 0);
}

#[test]
fn a_terminate_marks_the_session_as_ended_at_once() {
    // The API lists a session until its client sends Terminate, not until its backend has exited.
    let mut session = Session::new(64);
    session.query("select 1", &[], "SELECT 1");
    assert!(!session.observer.entry.record().activity.terminated);
    session.observer.frontend(ScannedMessage { tag: b'X', body_len: 0, body: b"" });
    assert!(session.observer.entry.record().activity.terminated, "published as ended");
    assert_eq!(session.observer.pending_requests(), 0, "nothing awaits an answer");
}
