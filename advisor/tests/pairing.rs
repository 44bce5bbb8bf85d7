//! Request/response pairing, fed the message sequences real clients and servers exchange.

use std::net::SocketAddr;
use std::time::SystemTime;

use advisor::events::EventReceiver;
use advisor::events::{channel, Event, StatementEvent};
use advisor::observer::SessionObserver;
use advisor::sessions::{SessionIdentity, SessionRegistry, SessionState};
use bytes::{Bytes, BytesMut};
use pgwire::messages::data::{DataRow, NoData, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Flush, Parse, ParseComplete, PortalSuspended, Sync,
};
use pgwire::messages::response::{
    CommandComplete, EmptyQueryResponse, ErrorResponse, ReadyForQuery, TransactionStatus,
};
use pgwire::messages::simplequery::Query;
use pgwire::messages::Message;
use protocol::{FrameScanner, ScannedMessage};

enum Dir {
    Client(BytesMut),
    Server(BytesMut),
}

fn enc(m: impl Message) -> BytesMut {
    let mut b = BytesMut::new();
    m.encode(&mut b).unwrap();
    b
}

fn c(m: impl Message) -> Dir {
    Dir::Client(enc(m))
}

fn s(m: impl Message) -> Dir {
    Dir::Server(enc(m))
}

struct Harness {
    observer: SessionObserver,
    rx: EventReceiver,
}

fn harness() -> Harness {
    let (tx, rx) = channel(1024);
    let registry = SessionRegistry::default();
    let entry = registry.open(SessionIdentity {
        id: 7,
        user: "u".into(),
        database: "d".into(),
        application_name: String::new(),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        tls: false,
        connected_at: SystemTime::now(),
    });
    Harness { observer: SessionObserver::new(7, entry, tx, Default::default()), rx }
}

impl Harness {
    /// Feeds each direction through a frame scanner, as the proxy does.
    fn feed(&mut self, steps: Vec<Dir>) -> Vec<StatementEvent> {
        let mut client = FrameScanner::new(1 << 20, 1 << 16);
        let mut server = FrameScanner::new(1 << 20, 1 << 16);
        for step in steps {
            match step {
                Dir::Client(b) => client.feed(&b, |m: ScannedMessage<'_>| self.observer.frontend(m)).unwrap(),
                Dir::Server(b) => server.feed(&b, |m: ScannedMessage<'_>| self.observer.backend(m)).unwrap(),
            }
        }
        let mut out = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            if let Event::Statement(e) = event {
                out.push(e);
            }
        }
        out
    }
}

fn texts(events: &[StatementEvent]) -> Vec<(String, u64, Option<String>)> {
    events.iter().map(|e| (e.statement.text.to_string(), e.rows, e.error.map(|s| s.as_str().to_string()))).collect()
}

fn rfq(status: TransactionStatus) -> Dir {
    s(ReadyForQuery::new(status))
}

fn err(code: &str) -> Dir {
    s(ErrorResponse::new(vec![(b'S', "ERROR".into()), (b'C', code.into()), (b'M', "boom".into())]))
}

fn row() -> Dir {
    s(DataRow::new(BytesMut::from(&[0u8, 0, 0, 1, b'1'][..]), 1))
}

#[test]
fn multi_statement_query_times_each_statement() {
    let mut h = harness();
    let events = h.feed(vec![
        c(Query::new("select 1; select 2 from t; ".into())),
        s(RowDescription::new(vec![])),
        row(),
        s(CommandComplete::new("SELECT 1".into())),
        row(),
        row(),
        s(CommandComplete::new("SELECT 2".into())),
        rfq(TransactionStatus::Idle),
    ]);
    assert_eq!(texts(&events), vec![("SELECT $1".into(), 1, None), ("SELECT $1 FROM t".into(), 2, None)]);
}

#[test]
fn error_in_query_skips_the_rest() {
    let mut h = harness();
    let events = h.feed(vec![
        c(Query::new("select 1/0; select 2".into())),
        err("22012"),
        rfq(TransactionStatus::Idle),
        c(Query::new("".into())),
        s(EmptyQueryResponse::new()),
        rfq(TransactionStatus::Idle),
    ]);
    assert_eq!(texts(&events), vec![("SELECT $1 / $2".into(), 0, Some("22012".into()))]);
}

fn extended(name: &str, sql: &str) -> Vec<Dir> {
    vec![
        c(Parse::new(Some(name.into()), sql.into(), vec![])),
        c(Bind::new(None, Some(name.into()), vec![], vec![Some(Bytes::from_static(b"1"))], vec![])),
        c(Describe::new(b'P', None)),
        c(Execute::new(None, 0)),
        c(Sync::new()),
    ]
}

#[test]
fn prepared_once_executed_many_times_and_pipelined() {
    let mut h = harness();
    let mut steps = extended("s1", "select abalance from pgbench_accounts where aid = $1");
    steps.extend([
        s(ParseComplete::new()),
        s(BindComplete::new()),
        s(NoData::new()),
        row(),
        s(CommandComplete::new("SELECT 1".into())),
        rfq(TransactionStatus::Idle),
    ]);
    // Pipelined: two Bind/Execute pairs of the prepared statement before one Sync.
    for _ in 0..2 {
        steps.push(c(Bind::new(None, Some("s1".into()), vec![], vec![Some(Bytes::from_static(b"2"))], vec![])));
        steps.push(c(Execute::new(None, 0)));
    }
    steps.push(c(Sync::new()));
    for _ in 0..2 {
        steps.extend([s(BindComplete::new()), row(), s(CommandComplete::new("SELECT 1".into()))]);
    }
    steps.push(rfq(TransactionStatus::Idle));
    let events = h.feed(steps);
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| &*e.statement.text == "SELECT abalance FROM pgbench_accounts WHERE aid = $1" && e.rows == 1));
}

#[test]
fn error_in_pipeline_skips_until_sync() {
    let mut h = harness();
    let mut steps = vec![
        c(Parse::new(None, "insert into t values ($1)".into(), vec![])),
        c(Bind::new(None, None, vec![], vec![Some(Bytes::from_static(b"1"))], vec![])),
        c(Execute::new(None, 0)),
        c(Parse::new(None, "select 2".into(), vec![])),
        c(Bind::new(None, None, vec![], vec![], vec![])),
        c(Execute::new(None, 0)),
        c(Sync::new()),
    ];
    steps.extend([s(ParseComplete::new()), s(BindComplete::new()), err("23505"), rfq(TransactionStatus::Idle)]);
    let events = h.feed(steps);
    assert_eq!(texts(&events), vec![("INSERT INTO t VALUES ($1)".into(), 0, Some("23505".into()))]);
    // The observer is back in step: the next statement pairs normally.
    let mut steps = extended("", "select 3");
    steps.extend([
        s(ParseComplete::new()),
        s(BindComplete::new()),
        s(NoData::new()),
        s(CommandComplete::new("SELECT 0".into())),
        rfq(TransactionStatus::Idle),
    ]);
    assert_eq!(texts(&h.feed(steps)), vec![("SELECT $1".into(), 0, None)]);
}

#[test]
fn portal_suspended_is_one_execution_per_execute() {
    let mut h = harness();
    let events = h.feed(vec![
        c(Parse::new(None, "select * from big".into(), vec![])),
        c(Bind::new(Some("c1".into()), None, vec![], vec![], vec![])),
        c(Execute::new(Some("c1".into()), 2)),
        c(Sync::new()),
        s(ParseComplete::new()),
        s(BindComplete::new()),
        row(),
        row(),
        s(PortalSuspended::new()),
        rfq(TransactionStatus::Transaction),
        c(Execute::new(Some("c1".into()), 2)),
        c(Sync::new()),
        row(),
        s(CommandComplete::new("SELECT 1".into())),
        rfq(TransactionStatus::Transaction),
    ]);
    assert_eq!(texts(&events), vec![("SELECT * FROM big".into(), 2, None), ("SELECT * FROM big".into(), 1, None)]);
}

#[test]
fn transaction_state_follows_ready_for_query() {
    let mut h = harness();
    h.feed(vec![
        c(Query::new("begin".into())),
        s(CommandComplete::new("BEGIN".into())),
        rfq(TransactionStatus::Transaction),
    ]);
    {
        let a = h.observer.record().activity.clone();
        assert_eq!(a.state, SessionState::IdleInTransaction);
        assert!(a.transaction_started.is_some());
    }
    h.feed(vec![c(Query::new("update t set x = 1".into())), s(CommandComplete::new("UPDATE 1".into()))]);
    assert_eq!(h.observer.record().activity.clone().state, SessionState::Active);
    h.feed(vec![
        rfq(TransactionStatus::Transaction),
        c(Query::new("select x".into())),
        err("42703"),
        rfq(TransactionStatus::Error),
    ]);
    {
        let a = h.observer.record().activity.clone();
        assert_eq!(a.state, SessionState::IdleInTransactionFailed);
        let stmts: Vec<&str> = a.transaction_statements.iter().map(|s| &**s).collect();
        assert_eq!(stmts, vec!["BEGIN", "UPDATE t SET x = $1", "SELECT x"]);
    }
    h.feed(vec![
        c(Query::new("rollback".into())),
        s(CommandComplete::new("ROLLBACK".into())),
        rfq(TransactionStatus::Idle),
    ]);
    let a = h.observer.record().activity.clone();
    assert_eq!(a.state, SessionState::Idle);
    assert!(a.transaction_started.is_none() && a.transaction_statements.is_empty());
}

/// After an extended-protocol error and before the client's Sync, the server discards every
/// message, a Query included: the statements after the Sync are still paired with their results.
#[test]
fn messages_after_an_extended_error_are_discarded_until_sync() {
    let mut h = harness();
    let events = h.feed(vec![
        c(Parse::new(None, "select 1/0".into(), vec![])),
        c(Bind::new(None, None, vec![], vec![], vec![])),
        c(Execute::new(None, 0)),
        c(Flush::new()),
        s(ParseComplete::new()),
        s(BindComplete::new()),
        err("22012"),
        // The client has not seen the error yet: this Query is discarded by the server.
        c(Query::new("select 'discarded'".into())),
        c(Sync::new()),
        rfq(TransactionStatus::Idle),
        c(Query::new("select 2 from t".into())),
        row(),
        s(CommandComplete::new("SELECT 1".into())),
        rfq(TransactionStatus::Idle),
    ]);
    assert_eq!(
        texts(&events),
        vec![("SELECT $1 / $2".into(), 0, Some("22012".into())), ("SELECT $1 FROM t".into(), 1, None)]
    );
}
