//! Pairing on recorded conversations of real clients with a real PostgreSQL (psql, pgbench in
//! each query mode, tokio-postgres pipelining and row-limited portals). The streams are in
//! `streams/`, recorded chunk by chunk as read off the socket by
//! `tests/tests/record_streams.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use advisor::events::{channel, Event, StatementEvent};
use advisor::observer::SessionObserver;
use advisor::sessions::{SessionIdentity, SessionRegistry, SessionState};
use protocol::{parse_startup, FrameScanner};

/// Replays a stream file through an observer, as the proxy would feed it.
fn replay(name: &str) -> (Vec<StatementEvent>, SessionState) {
    let path = format!("{}/tests/streams/{name}.stream", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rest = bytes.strip_prefix(b"pgvisor-stream 1\n".as_slice()).expect("stream header");
    let (tx, mut rx) = channel(100_000);
    let registry = SessionRegistry::default();
    let entry = registry.open(SessionIdentity {
        id: 1,
        user: "u".into(),
        database: "d".into(),
        application_name: String::new(),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 1)),
        tls: false,
        connected_at: SystemTime::now(),
    });
    let mut observer = SessionObserver::new(1, entry.clone(), tx, Default::default());
    let mut client = FrameScanner::new(1 << 30, 1 << 16);
    let mut server = FrameScanner::new(1 << 30, 1 << 16);
    let mut startup_done = false;
    while !rest.is_empty() {
        let dir = rest[0];
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        let mut chunk = &rest[5..5 + len];
        rest = &rest[5 + len..];
        if dir == b'F' {
            if !startup_done {
                // The untagged StartupMessage is the proxy's to handle, not the observer's.
                let (_, used) = parse_startup(chunk).unwrap().expect("whole startup packet");
                chunk = &chunk[used..];
                startup_done = true;
            }
            client.feed(chunk, |m| observer.frontend(m)).unwrap();
        } else {
            server.feed(chunk, |m| observer.backend(m)).unwrap();
        }
    }
    let mut events = Vec::new();
    while let Ok(event) = rx.try_recv() {
        if let Event::Statement(e) = event {
            events.push(e);
        }
    }
    let state = observer.record().activity.state;
    (events, state)
}

/// Calls and rows per normalised statement.
fn summary(events: &[StatementEvent]) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in events {
        let s = out.entry(e.statement.text.to_string()).or_default();
        s.0 += 1;
        s.1 += e.rows;
    }
    out
}

#[test]
fn pgbench_prepared_and_simple_select() {
    for name in ["pgbench_select_prepared", "pgbench_select_simple"] {
        let (events, state) = replay(name);
        let s = summary(&events);
        assert_eq!(s.get("SELECT abalance FROM pgbench_accounts WHERE aid = $1"), Some(&(20, 20)), "{name}: {s:#?}");
        assert!(events.iter().all(|e| e.error.is_none()));
        assert_eq!(state, SessionState::Idle);
    }
}

#[test]
fn pgbench_tpcb_extended() {
    let (events, _) = replay("pgbench_tpcb_extended");
    let s = summary(&events);
    let expected = [
        ("BEGIN", 20, 0),
        ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", 20, 20),
        ("SELECT abalance FROM pgbench_accounts WHERE aid = $1", 20, 20),
        ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2", 20, 20),
        ("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2", 20, 20),
        ("INSERT INTO pgbench_history(tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)", 20, 20),
        ("COMMIT", 20, 0),
    ];
    for (text, calls, rows) in expected {
        assert_eq!(s.get(text), Some(&(calls, rows)), "{text}: {s:#?}");
    }
    assert_eq!(events.len(), 140, "{s:#?}");
}

#[test]
fn psql_script_with_error_copy_and_transaction() {
    let (events, state) = replay("psql_script");
    let got: Vec<(String, u64, Option<String>)> = events
        .iter()
        .map(|e| (e.statement.text.to_string(), e.rows, e.error.map(|s| s.as_str().to_string())))
        .collect();
    let expected: Vec<(&str, u64, Option<&str>)> = vec![
        ("CREATE TEMP TABLE t(id int PRIMARY KEY, name text)", 0, None),
        ("INSERT INTO t VALUES ($1, $2)", 2, None),
        ("SELECT * FROM t ORDER BY id", 2, None),
        ("SELECT $1 / $2", 0, Some("22012")),
        ("COPY t FROM STDIN", 2, None),
        ("COPY t TO STDOUT", 4, None),
        ("DO $1", 0, None),
        ("BEGIN", 0, None),
        ("UPDATE t SET name = $1 WHERE id = $2", 1, None),
        ("SELECT count(*) FROM t", 1, None),
        ("COMMIT", 0, None),
    ];
    let expected: Vec<(String, u64, Option<String>)> =
        expected.into_iter().map(|(t, r, e)| (t.to_string(), r, e.map(String::from))).collect();
    assert_eq!(got, expected);
    assert_eq!(state, SessionState::Idle);
}

#[test]
fn tokio_postgres_pipeline_portal_and_error() {
    let (events, state) = replay("tokio_postgres_pipeline");
    let s = summary(&events);
    assert_eq!(s.get("SELECT aid, abalance FROM pgbench_accounts WHERE aid = $1"), Some(&(10, 10)), "{s:#?}");
    // 25 rows fetched 10 at a time: one execution per Execute, rows as they arrived.
    let portal: Vec<u64> = events
        .iter()
        .filter(|e| &*e.statement.text == "SELECT aid FROM pgbench_accounts WHERE aid <= $1 ORDER BY aid")
        .map(|e| e.rows)
        .collect();
    assert_eq!(portal.iter().sum::<u64>(), 25, "{portal:?}");
    assert_eq!(portal.len(), 3, "{portal:?}");
    let failed: Vec<_> =
        events.iter().filter(|e| e.error.is_some()).map(|e| e.error.unwrap().as_str().to_string()).collect();
    assert_eq!(failed, vec!["22012"]);
    assert_eq!(s.get("SELECT $1"), Some(&(1, 1)), "the session goes on after the error: {s:#?}");
    assert_eq!(state, SessionState::Idle);
}
