//! One pgbench `-S -M prepared` session, N transactions, through a session observer and the
//! engine exactly as the proxy runs them (no sockets): for instruction counts per transaction
//! under `valgrind --tool=callgrind`, which unlike timings do not depend on what else the
//! machine is doing. See docs/performance.md.
//!
//!   cargo build --release -p pgvisor-bench --example observer_loop
//!   valgrind --tool=callgrind target/release/examples/observer_loop 20000   (minus the run with 0)
//!
//! Each transaction is the messages libpq sends and PostgreSQL answers for
//! `SELECT abalance FROM pgbench_accounts WHERE aid = $1`: Bind, Describe, Execute and Sync,
//! then BindComplete, RowDescription, DataRow, CommandComplete and ReadyForQuery. The relay
//! hands the observer two chunks per transaction, one a direction.

use std::net::SocketAddr;
use std::time::SystemTime;

use advisor::engine::{Advisor, AdvisorConfig, Engine};
use advisor::observer::SessionObserver;
use advisor::sessions::SessionIdentity;
use protocol::ScannedMessage;

const SQL: &[u8] = b"SELECT abalance FROM pgbench_accounts WHERE aid = $1;";

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

/// The Bind of one transaction: statement `P0_1`, one text parameter.
fn bind(aid: u32) -> Vec<u8> {
    let mut b = Vec::new();
    cstr(&mut b, b"");
    cstr(&mut b, b"P0_1");
    i16be(&mut b, 0);
    i16be(&mut b, 1);
    let value = aid.to_string();
    i32be(&mut b, value.len() as i32);
    b.extend_from_slice(value.as_bytes());
    i16be(&mut b, 0);
    b
}

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
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

    let mut parse = Vec::new();
    cstr(&mut parse, b"P0_1");
    cstr(&mut parse, SQL);
    i16be(&mut parse, 0);
    let describe = b"P\0".to_vec();
    let execute = [0u8, 0, 0, 0, 0].to_vec();
    let mut row_description = Vec::new();
    i16be(&mut row_description, 1);
    cstr(&mut row_description, b"abalance");
    i32be(&mut row_description, 16400);
    i16be(&mut row_description, 3);
    i32be(&mut row_description, 23);
    i16be(&mut row_description, 4);
    i32be(&mut row_description, -1);
    i16be(&mut row_description, 0);
    let mut data_row = Vec::new();
    i16be(&mut data_row, 1);
    i32be(&mut data_row, 1);
    data_row.push(b'0');
    let command_complete = b"SELECT 1\0".to_vec();
    let ready = b"I".to_vec();

    let client = |o: &mut SessionObserver, tag: u8, body: &[u8]| {
        o.frontend(ScannedMessage { tag, body_len: body.len(), body });
    };
    let server = |o: &mut SessionObserver, tag: u8, body: &[u8]| {
        o.backend(ScannedMessage { tag, body_len: body.len(), body });
    };
    observer.chunk_arrived();
    client(&mut observer, b'P', &parse);
    client(&mut observer, b'S', b"");
    observer.chunk_arrived();
    server(&mut observer, b'1', b"");
    server(&mut observer, b'Z', &ready);
    // Built before the loop, so that the loop counts pgvisor's work only.
    let mut aid: u32 = 12345;
    let binds: Vec<Vec<u8>> = (0..1024)
        .map(|_| {
            aid = aid.wrapping_mul(1_103_515_245).wrapping_add(12_345) % 1_000_000 + 1;
            bind(aid)
        })
        .collect();
    for i in 0..n {
        observer.chunk_arrived();
        client(&mut observer, b'B', &binds[i as usize % binds.len()]);
        client(&mut observer, b'D', &describe);
        client(&mut observer, b'E', &execute);
        client(&mut observer, b'S', b"");
        observer.chunk_arrived();
        server(&mut observer, b'2', b"");
        server(&mut observer, b'T', &row_description);
        server(&mut observer, b'D', &data_row);
        server(&mut observer, b'C', &command_complete);
        server(&mut observer, b'Z', &ready);
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
}
