//! One pgbench `-S -M prepared` session, N transactions, through a session observer and the
//! engine exactly as the proxy runs them (no sockets): for instruction counts per transaction
//! under `valgrind --tool=callgrind`, which unlike timings do not depend on what else the
//! machine is doing. See docs/performance.md.
//!
//!   cargo build --release -p pgvisor-bench --example observer_loop
//!   valgrind --tool=callgrind target/release/examples/observer_loop 5000 [tpcb|orm|simple|tpcb-simple]   (minus N = 0)
//!
//! Each statement is the messages libpq sends and PostgreSQL answers: Bind, Describe, Execute
//! and Sync, then BindComplete, RowDescription and DataRow (or NoData), CommandComplete and
//! ReadyForQuery, handed to the observer in two chunks, one a direction as the relay does. The
//! transaction is `pgbench -S`'s one select, with `tpcb` the seven statements of pgbench's
//! default TPC-B-like script, with `orm` bench/pgbench-scripts/orm-50x10.sql's select of 50 rows
//! of 10 columns, with `simple` the select-only transaction as `-M simple` sends it (a Query with
//! its value inline), with `tpcb-simple` the TPC-B-like transaction so (pgbench's default).

use std::net::SocketAddr;
use std::time::SystemTime;

use advisor::engine::{Advisor, AdvisorConfig, Engine};
use advisor::observer::SessionObserver;
use advisor::sessions::SessionIdentity;
use protocol::ScannedMessage;

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

fn i16be(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn i32be(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// One extended-protocol statement of a transaction, as pgbench runs it.
struct Step {
    /// Its Bind messages, one used per transaction in turn (parameters vary).
    binds: Vec<Vec<u8>>,
    /// Its RowDescription when it returns rows (else NoData answers the Describe).
    columns: Option<Vec<u8>>,
    /// Its DataRows.
    rows: Vec<Vec<u8>>,
    /// CommandComplete's tag.
    tag: &'static [u8],
    /// ReadyForQuery's status after it.
    status: u8,
}

/// Bind messages made per statement, used in turn: as many as a run has transactions, so that
/// parameter values repeat about as rarely as in pgbench (random ids among a million).
const BINDS: usize = 8192;

/// `pgbench -S`: the one select-only statement.
const SELECT_ONLY: &[(&str, usize, bool, &str, u8)] =
    &[("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 1, true, "SELECT 1", b'I')];

/// `bench/pgbench-scripts/orm-50x10.sql`: one select returning 50 rows of 10 columns.
const ORM: &[(&str, usize, bool, &str, u8)] = &[(
    "SELECT aid, bid, abalance, filler, aid + 1 AS a1, aid + 2 AS a2, bid * 2 AS b2, abalance * 2 AS ab2, \
     md5(filler) AS h, now() AS t FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1 + 49;",
    1,
    true,
    "SELECT 50",
    b'I',
)];

/// pgbench's built-in TPC-B-like script, each command a statement of its own.
const TPCB: &[(&str, usize, bool, &str, u8)] = &[
    ("BEGIN;", 0, false, "BEGIN", b'T'),
    ("UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;", 2, false, "UPDATE 1", b'T'),
    ("SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 1, true, "SELECT 1", b'T'),
    ("UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;", 2, false, "UPDATE 1", b'T'),
    ("UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;", 2, false, "UPDATE 1", b'T'),
    (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
        4,
        false,
        "INSERT 0 1",
        b'T',
    ),
    ("END;", 0, false, "COMMIT", b'I'),
];

/// The Bind of statement `name` with `params` text parameters drawn from `seed`.
fn bind(name: &str, params: usize, seed: &mut u32) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, b"");
    cstr(&mut b, name.as_bytes());
    i16be(&mut b, 0);
    i16be(&mut b, params as i16);
    for _ in 0..params {
        // A multiplicative hash of a counter: ids spread over a million, none repeated in a run.
        *seed += 1;
        let value = ((u64::from(*seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1_000_000 + 1).to_string();
        i32be(&mut b, value.len() as i32);
        b.extend_from_slice(value.as_bytes());
    }
    i16be(&mut b, 0);
    b
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let (script, columns, rows_per_result) = match args.get(2).map(String::as_str) {
        Some("tpcb") => (TPCB, 1, 1),
        Some("orm") => (ORM, 10, 50),
        Some("simple") => (SELECT_ONLY, 1, 1),
        Some("tpcb-simple") => (TPCB, 1, 1),
        _ => (SELECT_ONLY, 1, 1),
    };
    let config = AdvisorConfig::default();
    let n_plus_one = config.n_plus_one.clone();
    let checks = config.session_checks.clone();
    let (advisor, _inputs) = Advisor::new(config);
    let (events, mut queue) = advisor::events::channel(1 << 16);
    let entry = advisor.sessions.open(SessionIdentity {
        id: 1,
        user: "postgres".into(),
        database: "bench".into(),
        application_name: "pgbench".into(),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
        tls: false,
        connected_at: SystemTime::now(),
    });
    let mut observer = SessionObserver::new(1, entry, events, n_plus_one).with_checks(checks);
    let mut engine = Engine::new(advisor.clone(), Box::new(|_: &advisor::advice::Advice| {}), None);

    let client = |o: &mut SessionObserver, tag: u8, body: &[u8]| {
        o.frontend(ScannedMessage { tag, body_len: body.len(), body });
    };
    let server = |o: &mut SessionObserver, tag: u8, body: &[u8]| {
        o.backend(ScannedMessage { tag, body_len: body.len(), body });
    };
    let mut row_description = Vec::new();
    i16be(&mut row_description, columns as i16);
    for c in 0..columns {
        cstr(&mut row_description, if c == 0 { b"abalance".to_vec() } else { format!("c{c}").into_bytes() }.as_slice());
        i32be(&mut row_description, 16400);
        i16be(&mut row_description, 3);
        i32be(&mut row_description, 23);
        i16be(&mut row_description, 4);
        i32be(&mut row_description, -1);
        i16be(&mut row_description, 0);
    }
    // Each result's rows, with values as long as the ORM script's (ids, balances, a filler).
    let results: Vec<Vec<u8>> = (0..rows_per_result)
        .map(|r| {
            let mut row = Vec::new();
            i16be(&mut row, columns as i16);
            for c in 0..columns {
                let value = match (columns, c) {
                    (1, _) => "0".to_string(),
                    (_, 3) => format!("{:<84}", ""),
                    (_, 8) => format!("{:032x}", r * 7919 + c),
                    _ => (1000 + r * 10 + c).to_string(),
                };
                i32be(&mut row, value.len() as i32);
                row.extend_from_slice(value.as_bytes());
            }
            row
        })
        .collect();

    // Prepared once, as pgbench -M prepared does; the Binds are built before the loop, so that
    // the loop counts pgvisor's work only.
    let mut seed: u32 = 12345;
    let mut steps = Vec::new();
    for (i, &(sql, params, rows, tag, status)) in script.iter().enumerate() {
        let name = format!("P0_{}", i + 1);
        let mut parse = Vec::new();
        cstr(&mut parse, name.as_bytes());
        cstr(&mut parse, sql.as_bytes());
        i16be(&mut parse, 0);
        observer.chunk_arrived();
        client(&mut observer, b'P', &parse);
        client(&mut observer, b'S', b"");
        observer.chunk_arrived();
        server(&mut observer, b'1', b"");
        server(&mut observer, b'Z', b"I");
        let binds = (0..BINDS).map(|_| bind(&name, params, &mut seed)).collect();
        let columns = rows.then(|| row_description.clone());
        let mut complete = tag.as_bytes().to_vec();
        complete.push(0);
        steps.push(Step { binds, columns, rows: results.clone(), tag: complete.leak(), status });
    }
    // `-M simple`: each statement as a Query with its values inline, as pgbench sends it.
    let simple = args.get(2).is_some_and(|m| m.ends_with("simple"));
    let mut value = 0u64;
    let queries: Vec<Vec<Vec<u8>>> = script
        .iter()
        .filter(|_| simple)
        .map(|&(sql, params, ..)| {
            (0..BINDS)
                .map(|_| {
                    let mut text = sql.to_string();
                    for p in (1..=params).rev() {
                        value += 1;
                        let v = (value.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1_000_000;
                        // pgbench's deltas are from -5000 to 5000: half of them negative.
                        let v = if p == 1 && params > 1 { v as i64 % 10_001 - 5000 } else { v as i64 + 1 };
                        text = text.replace(&format!("${p}"), &v.to_string());
                    }
                    text.push('\0');
                    text.into_bytes()
                })
                .collect()
        })
        .collect();
    let describe = b"P\0".to_vec();
    let execute = [0u8, 0, 0, 0, 0].to_vec();
    for i in 0..n {
        for (texts, step) in queries.iter().zip(&steps) {
            observer.chunk_arrived();
            client(&mut observer, b'Q', &texts[i as usize % texts.len()]);
            observer.chunk_arrived();
            if let Some(columns) = &step.columns {
                server(&mut observer, b'T', columns);
                server(&mut observer, b'D', &results[0]);
            }
            server(&mut observer, b'C', step.tag);
            server(&mut observer, b'Z', &[step.status]);
        }
        for step in steps.iter().filter(|_| !simple) {
            observer.chunk_arrived();
            client(&mut observer, b'B', &step.binds[i as usize % step.binds.len()]);
            client(&mut observer, b'D', &describe);
            client(&mut observer, b'E', &execute);
            client(&mut observer, b'S', b"");
            observer.chunk_arrived();
            server(&mut observer, b'2', b"");
            match &step.columns {
                Some(columns) => {
                    server(&mut observer, b'T', columns);
                    for row in &step.rows {
                        server(&mut observer, b'D', row);
                    }
                }
                None => server(&mut observer, b'n', b""),
            }
            server(&mut observer, b'C', step.tag);
            server(&mut observer, b'Z', &[step.status]);
        }
        // The engine drains its queue in batches, as its thread does every 50 ms.
        if i % 256 == 255 {
            while let Ok(event) = queue.try_recv() {
                engine.apply(event);
            }
        }
    }
    while let Ok(event) = queue.try_recv() {
        engine.apply(event);
    }
    println!("{} statements recorded", advisor.stats.recorded());
    for advice in advisor.advice.list() {
        println!("advice: {:?} seen {}x: {}", advice.kind, advice.count, advice.title);
    }
}
