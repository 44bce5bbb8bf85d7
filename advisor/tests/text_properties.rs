//! No panic is reachable from SQL text: every function of the advisor that reads statement text,
//! normalised text, plan text or raw bytes runs on arbitrary input, and on input biased to the
//! shapes that broke it before (Unicode spaces between keywords, multi-byte identifiers next to
//! a parameter, unterminated quotes, deep nesting, very long statements).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use advisor::advice::Occurrence;
use advisor::capture::{literal_value, text_key, value_text, Params, ResultFormats, MAX_SAMPLED_COLUMNS};
use advisor::detect::deadlock;
use advisor::detect::error_spike::{ErrorSpikeConfig, ErrorSpikeWatch};
use advisor::detect::lock_contention::{self, BlockingReport};
use advisor::detect::lock_hazard_ddl::{classify, DdlWatch, Executed};
use advisor::detect::missing_index::{self, IndexCandidate, SeqScan};
use advisor::detect::n_plus_one::{Execution, NPlusOneConfig, NPlusOneDetector, ResultDigest};
use advisor::detect::repeated_query::{RepeatedQueryConfig, RepeatedQueryDetector};
use advisor::detect::select_star;
use advisor::detect::session_checks::FinishedStatement;
use advisor::detect::transactions::{TransactionThresholds, TransactionWatch};
use advisor::detect::unbounded_result::{self, UnboundedResultConfig};
use advisor::detect::unparameterized::{UnparameterizedConfig, UnparameterizedWatch};
use advisor::events::SessionOrigin;
use advisor::events::{SqlState, Statement, StatementEvent};
use advisor::fingerprint::{Fingerprint, Fingerprinter, LiteralMask};
use advisor::keywords::is_keyword;
use advisor::lexer::{split_statements, Lexer, Token};
use advisor::orm::OrmStyle;
use advisor::sessions::{SessionActivity, SessionIdentity, SessionState};
use advisor::sql_shape;
use proptest::prelude::*;
use proptest::sample::Index;
use protocol::frontend::Format;

/// Pieces of SQL that steer the lexer, the fingerprint rules and the detectors' text matching.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "SELECT ", "select", " FROM ", "from", " WHERE ", " AND ", " OR ", " IN (", "in", "ARRAY[", " VALUES ", "values",
    "INSERT INTO ", "UPDATE ", "DELETE FROM ", " SET ", "set", " TO ", "WITH ", " AS ", "as", "CAST(", " JOIN ",
    " LIMIT ", " ALL", " FETCH FIRST ", " NEXT ", " OFFSET ", " ORDER BY ", "DISTINCT ", "DISTINCT ON () ", "*", "t.*",
    "count(*)", "ALTER TABLE ", "alter", " TABLE ", " IF EXISTS ", " ONLY ", " ADD ", " COLUMN ", " DROP ", " RENAME ",
    " DEFAULT ", "random()", "gen_random_uuid ()", " bigserial", " GENERATED ALWAYS AS (1) STORED", " CHECK (",
    " CONSTRAINT ", " FOREIGN KEY ", " REFERENCES ", " NOT VALID", " UNIQUE ", " PRIMARY KEY", " USING INDEX ",
    " TYPE ", " SET NOT NULL", " SET STATISTICS ", " VALIDATE CONSTRAINT ", "CREATE INDEX ON ", "CREATE UNIQUE INDEX ",
    " CONCURRENTLY ", " ON ", "CREATE FUNCTION ", "CREATE OR REPLACE PROCEDURE ", "create", " BEGIN ", "begin",
    " ATOMIC ", " CASE ", " END", "end", " COMMIT", "ROLLBACK", "SAVEPOINT ", "RELEASE ", "DECLARE ", " CURSOR FOR ",
    "FETCH ", "MOVE ", "ABORT", "SET lock_timeout = ", "SET LOCAL lock_timeout TO ", "RESET ALL", "DISCARD ALL",
    "DEFAULT", "DATE ", "interval ", "timestamp with time zone", "double precision", "true", "null", "IS", "NOT",
    "UESCAPE ", " FOR UPDATE", ".", ",", ";", "=", " = ", "<>", "->>", "@>", "-", "+", ">=", "~~", "$1", "$2", "$12",
    "$", "$$", "$tag$", "$a", "'", "''", "'x'", "E'", "E'\\'", "\\", "B'", "X'", "N'", "U&'", "U&\"", "\"", "\"\"",
    "\"Users\"", "\"public\".\"", "\"posts\".* from \"", "/*application:", "--", "/*", "*/", "\r", "\n", "\t", "\x0b",
    "\x0c", " ", "  ", "::", "::int", "::timestamp(3)[]", "(", ")", "((", "))", "[", "]", "0x1F", "0b101", "1.5e3",
    "1..5", ".5", "-1", "42", "1_000", "%(param_1)s", " AS users_id", "users.", "o1_0.", "product0_.",
    "events_2024_01", "w€", "ü", "日本", "€", "\u{a0}", "\u{3000}", "\u{2003}", "\u{feff}", "\u{0}", "\u{10ffff}", "é",
];

/// Whitespace as PostgreSQL sees it (and comments), and Unicode whitespace that it does not
/// treat as such but `split_whitespace` does.
#[rustfmt::skip]
const SPACES: &[&str] = &[
    " ", "  ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "/* c */", "-- c\n", "-- c\r", "\u{a0}", "\u{3000}",
    "\u{2003}", "\u{85}", "\u{2028}", "\u{1680}",
];

/// Statement heads the detectors dispatch on.
#[rustfmt::skip]
const HEADS: &[&str] = &[
    "ALTER TABLE", "alter table if exists", "ALTER TABLE ONLY", "CREATE INDEX", "CREATE UNIQUE INDEX", "SELECT",
    "SELECT * FROM", "WITH x AS", "UPDATE", "INSERT INTO", "SET LOCK_TIMEOUT", "SET LOCAL lock_timeout",
    "SET SESSION LOCK_TIMEOUT", "RESET", "ROLLBACK", "CREATE FUNCTION", "CREATE OR REPLACE PROCEDURE",
];

/// Words of DDL and queries.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "ALTER", "TABLE", "IF", "EXISTS", "ONLY", "t", "w€", "日本", "\"T x\"", "public.t", "t*", "*", "ADD", "COLUMN",
    "DROP", "CREATE", "UNIQUE", "INDEX", "ON", "CONCURRENTLY", "USING", "btree", "(a)", "SELECT", "FROM", "WHERE",
    "JOIN", "INTO", "=", "$1", "$2", "x", "int", "DEFAULT", "random()", "nextval('s')", "SET", "NOT", "NULL", "TYPE",
    "RENAME", "TO", "CONSTRAINT", "CHECK", "(a > 0)", "FOREIGN", "KEY", "REFERENCES", "VALID", "PRIMARY", "ALL",
    "LIMIT", "FETCH", "FIRST", "BEGIN", "ATOMIC", "CASE", "END", ",", ";", "(", ")", "'x'", "'", "\"", "$$",
];

/// Statement heads and words separated by any whitespace, Unicode included.
fn spaced_words() -> BoxedStrategy<String> {
    let space = prop::collection::vec(prop::sample::select(SPACES), 1..4).prop_map(|v| v.concat());
    let words = (prop::sample::select(HEADS), prop::collection::vec(prop::sample::select(WORDS), 0..12))
        .prop_map(|(head, tail)| head.split(' ').chain(tail).map(str::to_owned).collect::<Vec<_>>());
    (prop::collection::vec(space.clone(), 0..3), words, prop::collection::vec(space, 16))
        .prop_map(|(lead, words, spaces)| {
            let mut out = lead.concat();
            for (i, word) in words.iter().enumerate() {
                if i > 0 {
                    out.push_str(&spaces[i % spaces.len()]);
                }
                out.push_str(word);
            }
            out
        })
        .boxed()
}

/// Nested lists the fingerprint folds or keeps: VALUES rows, IN lists, arrays, casts, calls and
/// subqueries, of constants, parameters and columns.
fn nested_lists() -> BoxedStrategy<String> {
    let leaf = prop::sample::select(&["1", "'a'", "$1", "x", "now()", "null", ""][..]).prop_map(str::to_owned);
    let list = leaf.prop_recursive(3, 24, 3, |inner| {
        let open = prop::sample::select(&["(", "(", "(", "VALUES (", " IN (", "ARRAY[", "CAST(", "f(", "(SELECT "][..]);
        (open, prop::collection::vec(inner, 0..3)).prop_map(|(open, items)| {
            let close = if open == "ARRAY[" { "]" } else { ")" };
            format!("{open}{}{close}", items.join(", "))
        })
    });
    let head = prop::sample::select(&["INSERT INTO t VALUES ", "VALUES", "SELECT * FROM t WHERE a IN ", "SELECT "][..]);
    (head, prop::collection::vec(list, 1..4)).prop_map(|(head, rows)| format!("{head}{}", rows.join(", "))).boxed()
}

/// Arbitrary text, or a concatenation of SQL fragments, identifiers and arbitrary characters.
fn sql() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
        2 => "[a-zA-Z_][a-zA-Z0-9_$]{0,8}",
        1 => "[0-9]{1,4}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop_oneof![
        1 => any::<String>(),
        4 => prop::collection::vec(piece, 0..48).prop_map(|v| v.concat()),
        2 => spaced_words(),
        2 => nested_lists(),
    ]
    .boxed()
}

/// Very long statements and deep nesting.
fn big_sql() -> BoxedStrategy<String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..3000).prop_map(|v| v.concat()),
        (0usize..3000, sql(), 0usize..3000).prop_map(|(open, middle, close)| {
            format!("SELECT * FROM t WHERE a IN {}{middle}{}", "(".repeat(open), ")".repeat(close))
        }),
        (1usize..2000, sql()).prop_map(|(n, s)| s.repeat(n.min(40_000 / (s.len() + 1) + 1))),
    ]
    .boxed()
}

/// SQL as bytes: UTF-8 text, the same cut at any byte (a capped prefix), or arbitrary bytes.
fn sql_bytes() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        2 => sql().prop_map(String::into_bytes),
        1 => (sql(), any::<Index>()).prop_map(|(s, cut)| {
            let bytes = s.into_bytes();
            let at = if bytes.is_empty() { 0 } else { cut.index(bytes.len() + 1) };
            bytes[..at].to_vec()
        }),
        1 => any::<Vec<u8>>(),
    ]
    .boxed()
}

/// The normalised text of `sql`, as detectors get it.
fn normalised(sql: &[u8]) -> Arc<Statement> {
    let n = advisor::fingerprint(sql);
    let text: Arc<str> = n.text.into();
    let tags = Some(advisor::tags::parse(sql)).filter(|t| !t.is_empty()).map(Arc::new);
    Arc::new(Statement::new(n.fingerprint, text.clone(), text, OrmStyle::detect(sql), tags))
}

/// Raw text as it is, as the proxy may keep it (the Inspector's statements, session snapshots).
fn raw(sql: &str) -> Arc<Statement> {
    Arc::new(Statement::new(
        advisor::fingerprint(sql.as_bytes()).fingerprint,
        sql.into(),
        sql.into(),
        OrmStyle::Unknown,
        None,
    ))
}

/// Both readings of a text: normalised, and raw.
fn statements(sql: &str) -> [Arc<Statement>; 2] {
    [normalised(sql.as_bytes()), raw(sql)]
}

fn identity(id: u64) -> SessionIdentity {
    SessionIdentity {
        id,
        user: "u".into(),
        database: "d".into(),
        application_name: format!("app{id}"),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
        tls: false,
        connected_at: SystemTime::now(),
    }
}

fn session(id: u64, state: SessionState, statements: &[&str]) -> (SessionIdentity, SessionActivity) {
    let now = SystemTime::now();
    let activity = SessionActivity {
        state,
        state_since: now - Duration::from_secs(60),
        statement_started: Some(now - Duration::from_secs(3)),
        backend_pid: Some(100 + id as u32),
        current_statement: statements.last().map(|s| Arc::from(*s)),
        transaction_started: Some(now - Duration::from_secs(60)),
        transaction_statements: statements.iter().map(|s| Arc::from(*s)).collect(),
        previous_transaction: statements.iter().map(|s| Arc::from(*s)).collect(),
        previous_transaction_ended: Some(now),
        terminated: false,
    };
    (identity(id), activity)
}

/// Byte offset of `part` inside `whole` (it must be a subslice).
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

fn check_lexer(src: &[u8]) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(src).ok();
    let mut lexer = Lexer::new(src);
    let mut last_end = 0;
    while let Some(tok) = lexer.next() {
        prop_assert!(lexer.pos() <= src.len());
        let range = match tok {
            Token::Const(s, e)
            | Token::Word(s, e)
            | Token::Keyword(s, e)
            | Token::QuotedIdent(s, e)
            | Token::Operator(s, e) => Some((s, e)),
            Token::Param | Token::Cast | Token::Punct(_) => None,
        };
        if let Some((s, e)) = range {
            prop_assert!(last_end <= s && s < e && e <= src.len(), "{tok:?} after {last_end} in {} bytes", src.len());
            // Token boundaries of UTF-8 text are character boundaries: detectors slice `&str` there.
            if let Some(t) = text {
                prop_assert!(t.is_char_boundary(s) && t.is_char_boundary(e), "{tok:?} splits a character");
            }
            last_end = e;
        }
        if let Token::Keyword(s, e) = tok {
            prop_assert!(is_keyword(&src[s..e]));
        }
    }
    Ok(())
}

fn check_fingerprint(src: &[u8], reused: &mut Fingerprinter) -> Result<(), TestCaseError> {
    let once = advisor::fingerprint(src);
    let again = advisor::fingerprint(src);
    prop_assert_eq!(&once, &again);
    // Buffers kept from an earlier statement change nothing.
    prop_assert_eq!(reused.fingerprint(src), once.fingerprint);
    prop_assert_eq!(reused.text(), once.text.as_str());
    prop_assert!(!once.text.ends_with(' ') && !once.text.ends_with(';'), "{:?}", once.text);
    if src.is_ascii() {
        prop_assert!(once.text.is_ascii());
    }
    // Valid UTF-8 in, valid UTF-8 out without repair: no token split a character.
    if std::str::from_utf8(src).is_ok_and(|s| !s.contains('\u{fffd}')) {
        prop_assert!(!once.text.contains('\u{fffd}'), "{:?}", once.text);
    }
    let mut last_end = 0;
    for &(s, e) in reused.constants() {
        prop_assert!(last_end <= s && s < e && e <= src.len());
        last_end = e;
        let _ = literal_value(&src[s..e]);
    }
    Ok(())
}

fn check_split(src: &[u8]) -> Result<(), TestCaseError> {
    let pieces = split_statements(src);
    let mut last_end = 0;
    for piece in &pieces {
        let start = offset_in(src, piece);
        prop_assert!(last_end <= start && start + piece.len() <= src.len(), "pieces out of order or outside");
        prop_assert!(!piece.is_empty());
        last_end = start + piece.len();
    }
    if !src.contains(&b';') {
        prop_assert!(pieces.len() <= 1);
        if let Some(only) = pieces.first() {
            prop_assert_eq!(*only, src);
        }
    }
    Ok(())
}

/// The literal scan: no panic, its literals in order within the input, and where it says the
/// text is one statement, the splitter agrees.
fn check_literal_mask(src: &[u8], mask: &mut LiteralMask) -> Result<(), TestCaseError> {
    if mask.scan(src).is_none() {
        return Ok(());
    }
    let mut last_end = 0;
    for &(start, end) in mask.ranges() {
        prop_assert!(last_end <= start && start < end && end <= src.len(), "literals out of order or outside");
        last_end = end;
    }
    if let Some(end) = mask.one_statement(src) {
        prop_assert_eq!(split_statements(src), vec![&src[..end]]);
    }
    Ok(())
}

fn check_classify(text: &str) -> Result<(), TestCaseError> {
    if let Some(ddl) = classify(text) {
        prop_assert!(!ddl.table.is_empty());
        let distinct: HashSet<_> = ddl.hazards.iter().collect();
        prop_assert_eq!(distinct.len(), ddl.hazards.len(), "hazards repeat");
    }
    Ok(())
}

fn check_shape(text: &str) -> Result<(), TestCaseError> {
    let _ = (sql_shape::is_read(text), sql_shape::has_table(text), sql_shape::bare_name(text));
    // The verb is the first word, as `split_whitespace` finds it (the fast path reads bytes).
    prop_assert_eq!(sql_shape::verb(text), text.split_whitespace().next().unwrap_or_default());
    for t in sql_shape::tables(text) {
        prop_assert!(!t.is_empty());
    }
    for n in [0, 1, 2, 3, 12, usize::MAX] {
        let column = sql_shape::column_for_param(text, n);
        let batched = sql_shape::batched(text, n);
        prop_assert_eq!(column.is_some(), batched.is_some());
        if let (Some(column), Some(batched)) = (column, batched) {
            prop_assert!(!column.is_empty());
            let any = format!("{column} = ANY(${n})");
            prop_assert!(batched.contains(&any), "{:?} lacks {:?}", batched, any);
        }
    }
    Ok(())
}

/// Every per-statement text helper of the advisor, on the raw text and on its normalised form.
fn check_text(sql: &str) -> Result<(), TestCaseError> {
    let normal = advisor::fingerprint(sql.as_bytes()).text;
    for text in [sql, normal.as_str()] {
        check_classify(text)?;
        check_shape(text)?;
        let columns = missing_index::filter_columns(text);
        prop_assert!(columns.len() <= 3);
        let _ = (select_star::star_items(text), unbounded_result::top_level(text), unbounded_result::has_limit(text));
        let _ = deadlock::pids_in_detail(text);
        let _ = OrmStyle::detect(text.as_bytes()).eager_loading();
    }
    Ok(())
}

fn executed(session: u64, statement: &Arc<Statement>, at: SystemTime) -> Executed<'_> {
    Executed { session, statement, duration: Duration::from_secs(2), failed: false, finished_at: at }
}

fn finished(statement: &Arc<Statement>, rows: u64, at: Instant) -> FinishedStatement {
    FinishedStatement {
        statement: statement.clone(),
        params: Some(7),
        rows,
        bytes: rows.saturating_mul(4096),
        columns: 40,
        duration: Duration::from_millis(3),
        at,
    }
}

fn event(session: u64, statement: &Arc<Statement>, error: Option<SqlState>, at: SystemTime) -> StatementEvent {
    StatementEvent {
        session,
        statement: statement.clone(),
        duration: Duration::from_secs(2),
        rows: 3,
        error,
        finished_at: at,
        literals: Some(at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)),
        application_name: "app".into(),
        params: Params::from_texts(["1"]),
        result: None,
        origin: Arc::new(SessionOrigin::default()),
    }
}

/// The per-execution and per-session checks, with thresholds low enough that they report.
fn check_session_detectors(sql: &str) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    for statement in statements(sql) {
        let rows = 50_000;
        let wide = select_star::check(&finished(&statement, rows, t0), &Default::default());
        let unbounded =
            unbounded_result::check(&finished(&statement, rows, t0), &UnboundedResultConfig::default(), sql);
        for f in wide.iter().chain(&unbounded) {
            prop_assert!(!f.title.is_empty());
        }
        let mut repeated =
            RepeatedQueryDetector::new(RepeatedQueryConfig { min_repeats: 2, window: Duration::from_secs(5) });
        for i in 0..4 {
            let _ = repeated.observe(&finished(&statement, 1, t0 + Duration::from_millis(i)), sql);
        }
    }
    Ok(())
}

/// The engine-side detectors fed statement events of this text from two sessions.
fn check_engine_detectors(sql: &str) -> Result<(), TestCaseError> {
    let now = SystemTime::now();
    let sessions = vec![session(1, SessionState::IdleInTransaction, &[sql]), session(2, SessionState::Active, &[sql])];
    for statement in statements(sql) {
        let mut unparameterized = UnparameterizedWatch::default();
        let config = UnparameterizedConfig { min_texts: 2, window: Duration::from_secs(60) };
        let mut spikes = ErrorSpikeWatch::default();
        let spike_config = ErrorSpikeConfig { min_errors: 2, ..Default::default() };
        for i in 0..5 {
            let e = event(1 + i % 2, &statement, SqlState::parse("23505"), now + Duration::from_millis(i));
            let _ = unparameterized.observe(&e, &config);
            let _ = spikes.observe(&e, &spike_config);
        }
        // lock_hazard_ddl: session 2 used the table the DDL names, then session 1 ran the DDL.
        let mut ddl = DdlWatch::default();
        let table = classify(&statement.text).map(|d| d.table).unwrap_or_else(|| "t".into());
        let reader = raw(&format!("SELECT * FROM {table}"));
        let snapshot = || sessions.clone();
        let _ = ddl.statement(executed(2, &reader, now), snapshot);
        let hazardous = classify(&statement.text).filter(|d| {
            sql_shape::tables(&reader.text).contains(&d.table) && (d.lock.is_strong() || !d.hazards.is_empty())
        });
        let found = ddl.statement(executed(1, &statement, now), snapshot);
        prop_assert_eq!(found.is_some(), hazardous.is_some());
        let report =
            BlockingReport { waiter_pid: 102, blockers: vec![101], roots: vec![101], wait_event: Some(sql.into()) };
        let _ = ddl.blocking(2, sql, &report, &sessions);
        let waiter = (&sessions[1].0, &sessions[1].1);
        for report in [Some(&report), None] {
            let f = lock_contention::finding(
                waiter,
                &statement.text,
                report,
                &sessions,
                Duration::from_secs(6),
                Occurrence::New,
                now,
            );
            // The statement is cut to about 60 characters in the title.
            prop_assert!(f.title.chars().count() <= 100, "{:?}", f.title);
        }
        let _ = lock_contention::suspects(2, &statement.text, &sessions);
        let _ = deadlock::finding(1, &statement.text, &[sql.to_string()], sql, &sessions, now);
    }
    let mut transactions = TransactionWatch::default();
    let _ = transactions.check(&sessions, now, &TransactionThresholds::default());
    Ok(())
}

/// missing_index's text helpers on plan text (the filter) and statement text.
fn check_missing_index(sql: &str, name: &str) -> Result<(), TestCaseError> {
    let plan = serde_json::json!([{ "Plan": { "Node Type": "Seq Scan", "Relation Name": name, "Schema": name,
        "Filter": sql, "Plan Rows": 3.0, "Total Cost": 100.0 } }]);
    let scans = missing_index::seq_scans(&plan);
    prop_assert_eq!(scans.len(), 1);
    let scan = SeqScan { schema: Some(name.into()), table: name.into(), filter: sql.into(), plan_rows: 3.0 };
    let columns = missing_index::filter_columns(sql);
    let candidate = IndexCandidate {
        scan,
        table_rows: 1e6,
        columns: if columns.is_empty() { vec![name.into()] } else { columns },
        cost_before: 100.0,
        cost_with_index: Some(1.0),
    };
    let ddl = missing_index::create_index(&candidate);
    prop_assert!(ddl.starts_with("CREATE INDEX CONCURRENTLY ON "));
    let f = missing_index::finding(Fingerprint(1), sql, &candidate, Some(1.5));
    // The plan's literals never reach the advice: the filter is shown normalised.
    let filter = advisor::fingerprint(sql.as_bytes()).text;
    prop_assert_eq!(f.evidence["filter"].as_str(), Some(filter.as_str()));
    Ok(())
}

/// A parent query returning `values`, then one child per value, all in one burst: the N+1
/// finding's title, message and suggestion are built from both texts.
fn check_n_plus_one(parent_sql: &str, child_sql: &str, column: &str, values: &[String]) -> Result<(), TestCaseError> {
    let parent = normalised(format!("SELECT {parent_sql}").as_bytes());
    let child = normalised(format!("SELECT {child_sql}").as_bytes());
    let config = NPlusOneConfig { min_children: 2, gap: Duration::from_secs(1), log_params: true };
    let mut d = NPlusOneDetector::new(config, "Session 1".into());
    let mut t = Instant::now();
    let mut found = Vec::new();
    let keys: Vec<u64> = values.iter().map(|v| text_key(v.as_bytes())).collect();
    let result = ResultDigest::new(vec![None, Some(Arc::from(column))].into(), [Vec::new(), keys]);
    found.extend(d.observe(Execution {
        statement: parent.clone(),
        style: OrmStyle::detect(parent_sql.as_bytes()),
        params: Params::default(),
        param_texts: None,
        result: Arc::new(result),
        rows: values.len() as u64,
        duration: Duration::from_millis(1),
        at: t,
    }));
    for (i, value) in values.iter().enumerate() {
        t += Duration::from_millis(1);
        found.extend(d.observe(Execution {
            statement: child.clone(),
            style: OrmStyle::detect(child_sql.as_bytes()),
            params: Params::from_texts([value.as_str(), &format!("{i}"), child_sql]),
            param_texts: Some(vec![value.clone(), format!("{i}"), child_sql.into()].into()),
            result: Arc::default(),
            rows: 0,
            duration: Duration::from_millis(1),
            at: t,
        }));
    }
    found.extend(d.finish());
    let burst = sql_shape::is_read(&parent.text)
        && sql_shape::is_read(&child.text)
        && parent.fingerprint != child.fingerprint
        && values.len() >= 2;
    if burst {
        prop_assert!(!found.is_empty(), "no N+1 finding for {:?} after {:?}", child.text, parent.text);
    }
    for f in &found {
        prop_assert!(f.message.contains(&*child.text));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn lexer_tokens_stay_in_order_and_on_character_boundaries(src in sql_bytes()) {
        check_lexer(&src)?;
    }

    #[test]
    fn fingerprints_are_stable(src in sql_bytes(), before in sql_bytes()) {
        let mut reused = Fingerprinter::default();
        reused.fingerprint(&before);
        check_fingerprint(&src, &mut reused)?;
    }

    #[test]
    fn statements_split_in_order_within_the_input(src in sql_bytes()) {
        check_split(&src)?;
        check_literal_mask(&src, &mut LiteralMask::default())?;
    }

    #[test]
    fn keyword_lookup_takes_any_bytes(word in any::<Vec<u8>>()) {
        prop_assert_eq!(is_keyword(&word), is_keyword(&word.to_ascii_uppercase()));
    }

    #[test]
    fn text_helpers_take_any_text(sql in sql()) {
        check_text(&sql)?;
    }

    #[test]
    fn orm_style_takes_any_bytes(src in sql_bytes()) {
        let _ = OrmStyle::detect(&src);
    }

    #[test]
    fn captured_values_take_any_bytes(bytes in any::<Vec<u8>>(), codes in any::<Vec<u8>>(), columns in 0usize..64) {
        let _ = literal_value(&bytes);
        for format in [Format::Text, Format::Binary] {
            if value_text(&bytes, format).is_some() {
                prop_assert!(bytes.len() <= advisor::capture::MAX_VALUE);
            }
        }
        let formats = ResultFormats::from_codes(&codes);
        let code = |i: usize| codes.get(2 * i..2 * i + 2).map(|c| i16::from_be_bytes([c[0], c[1]]));
        for column in 0..columns {
            // The protocol's rule: no code is text, one code is every column's, else one each.
            let expected = match codes.len() / 2 {
                0 => None,
                1 => code(0),
                _ => code(column),
            };
            let binary = column < MAX_SAMPLED_COLUMNS && expected == Some(1);
            prop_assert_eq!(formats.get(column) == Format::Binary, binary, "column {}", column);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn session_detectors_take_any_text(sql in sql()) {
        check_session_detectors(&sql)?;
    }

    #[test]
    fn engine_detectors_take_any_text(sql in sql()) {
        check_engine_detectors(&sql)?;
    }

    #[test]
    fn missing_index_takes_any_plan_text(sql in sql(), name in sql()) {
        check_missing_index(&sql, &name)?;
    }

    #[test]
    fn n_plus_one_advice_takes_any_text(
        parent in sql(),
        child in sql(),
        column in sql(),
        values in prop::collection::vec(sql(), 1..8),
    ) {
        check_n_plus_one(&parent, &child, &column, &values)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn long_and_deeply_nested_statements(sql in big_sql()) {
        let src = sql.as_bytes();
        check_lexer(src)?;
        check_fingerprint(src, &mut Fingerprinter::default())?;
        check_split(src)?;
        check_literal_mask(src, &mut LiteralMask::default())?;
        check_text(&sql)?;
        check_session_detectors(&sql)?;
    }
}

/// The inputs of the bug reports, and their neighbours.
#[test]
fn reported_inputs() {
    let ddl = classify("ALTER\u{a0}\u{3000}\u{a0}TABLE t ADD x int").expect("an ALTER TABLE");
    assert_eq!(ddl.table, "t");
    let text = advisor::fingerprint("SELECT id FROM ptab WHERE w€ = $1".as_bytes()).text;
    assert_eq!(sql_shape::column_for_param(&text, 1).as_deref(), Some("w€"));
    check_n_plus_one("id FROM parents", "id FROM ptab WHERE w€ = $1", "id", &["1".into(), "2".into(), "3".into()])
        .unwrap();
    check_n_plus_one("id FROM parents", "id FROM ptab WHERE x€ = $2", "id", &["1".into(), "2".into(), "3".into()])
        .unwrap();
}
