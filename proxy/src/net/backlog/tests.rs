//! Tests of the backlog and the observation worker.

use std::net::SocketAddr;
use std::time::SystemTime;

use advisor::engine::{Advisor, AdvisorConfig};
use advisor::observer::SessionObserver;
use advisor::sessions::{SessionIdentity, SessionState};
use proptest::prelude::*;

use super::*;

/// A backlog observed by `worker`, for session 1 of a new advisor.
fn observed_backlog(worker: &ObservationWorker) -> (Arc<Backlog>, Arc<Advisor>) {
    let (advisor, _inputs) = Advisor::new(AdvisorConfig::default());
    (observed_backlog_of(worker, &advisor, 1), advisor)
}

/// A backlog for session `id` of `advisor`, whose observer panics on the advisor's injected
/// marker as a session's does (`net::session`).
fn observed_backlog_of(worker: &ObservationWorker, advisor: &Arc<Advisor>, id: u64) -> Arc<Backlog> {
    let entry = advisor.sessions.open(SessionIdentity {
        id,
        user: "app".into(),
        database: "app".into(),
        application_name: "test".into(),
        client_addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
        tls: false,
        connected_at: SystemTime::now(),
    });
    let observer = SessionObserver::new(id, entry.clone(), advisor.events.clone(), advisor.config.n_plus_one.clone())
        .with_injected_panic(advisor.config.injected_panics.observer.clone());
    let tap = SessionObservation::observing(id, observer, advisor.clone());
    Backlog::new(tap, Some(entry), worker)
}

/// Queues `messages` from `side` as one chunk; returns the chunk's number.
fn send(backlog: &Arc<Backlog>, side: Side, messages: &[(u8, &[u8])], stats: &ProxyCounters) -> u64 {
    queue_at(backlog, side, messages, Instant::now(), stats)
}

/// Queues `messages` from `side` as one chunk read at `at`; returns the chunk's number.
fn queue_at(backlog: &Arc<Backlog>, side: Side, messages: &[(u8, &[u8])], at: Instant, stats: &ProxyCounters) -> u64 {
    let number = backlog.forwarding();
    let (result, count) = backlog.queue(side, number, at, List(messages), stats);
    assert_eq!((result, count), (Ok(()), messages.len() as u64));
    number
}

/// Whole messages, as a test queues them.
struct List<'a>(&'a [(u8, &'a [u8])]);

impl Messages for List<'_> {
    type Error = ();

    fn scan(self, mut sink: impl FnMut(ScannedMessage<'_>)) -> Result<(), ()> {
        for &(tag, body) in self.0 {
            sink(ScannedMessage { tag, body_len: body.len(), body });
        }
        Ok(())
    }
}

/// The session runs BEGIN, and is answered: it is then idle in a transaction.
fn begin(backlog: &Arc<Backlog>, stats: &ProxyCounters) {
    send(backlog, Side::Client, &[(b'Q', b"BEGIN\0")], stats);
    send(backlog, Side::Server, &[(b'C', b"BEGIN\0"), (b'Z', b"T")], stats);
}

/// Every chunk the session announced has been observed (what the admin API waits for).
fn assert_all_observed(backlog: &Backlog) {
    let progress = backlog.progress.as_ref().expect("an observed session tracks its progress");
    assert!(progress.all_observed(), "chunks announced but not observed");
}

fn state(advisor: &Advisor) -> (SessionState, Option<Arc<str>>) {
    let (_, activity) = advisor.sessions.get(1).expect("session 1 is open");
    (activity.state, activity.transaction_statements.last().cloned())
}

#[test]
fn the_worker_observes_both_directions_in_order_and_reports_progress() {
    let worker = ObservationWorker::start();
    let (backlog, advisor) = observed_backlog(&worker);
    let stats = ProxyCounters::default();
    begin(&backlog, &stats);
    send(&backlog, Side::Client, &[(b'Q', b"SELECT 1\0")], &stats);
    let last = send(&backlog, Side::Server, &[(b'C', b"SELECT 1\0"), (b'Z', b"T")], &stats);
    assert_eq!(last, 4);
    let deadline = Instant::now() + Duration::from_secs(5);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    while state(&advisor).0 != SessionState::IdleInTransaction && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // What the API waits for: every chunk announced has been observed.
    runtime.block_on(advisor.sessions.wait_observed(Duration::from_secs(5)));
    assert_all_observed(&backlog);
    let (state, last_statement) = state(&advisor);
    assert_eq!(state, SessionState::IdleInTransaction, "the worker observed the session");
    assert_eq!(last_statement.as_deref(), Some("SELECT $1"));
    assert_eq!(ProxyCounters::get(&stats.observed_inline), 0, "no backlog filled up");
}

#[test]
fn a_full_backlog_is_observed_by_its_relay_and_nothing_is_lost() {
    let worker = ObservationWorker::asleep_for_ever();
    let (backlog, advisor) = observed_backlog(&worker);
    let stats = ProxyCounters::default();
    begin(&backlog, &stats);
    assert_eq!(state(&advisor).0, SessionState::Idle, "nothing observed yet: the worker does not run");
    // ParameterStatus messages the observer does not keep, until the backlog is full.
    let filler: Vec<(u8, &[u8])> = vec![(b'S', b"x\0y\0"); MAX_BACKLOG_ITEMS];
    send(&backlog, Side::Server, &filler, &stats);
    assert_eq!(ProxyCounters::get(&stats.observed_inline), 1);
    assert_eq!(state(&advisor).0, SessionState::IdleInTransaction, "observed in order, on the relay");
    // What is queued after that waits for the worker, or for the session's end.
    send(&backlog, Side::Client, &[(b'Q', b"COMMIT\0")], &stats);
    send(&backlog, Side::Server, &[(b'C', b"COMMIT\0"), (b'Z', b"I")], &stats);
    assert_eq!(state(&advisor).0, SessionState::IdleInTransaction);
    assert_eq!(lock(&worker.shared.listed).len(), 1, "listed for the worker");
    // The worker's thread ends: what it had listed is observed then.
    drop(Running(worker.shared.clone()));
    assert_eq!(state(&advisor).0, SessionState::Idle, "the rest was observed");
    assert!(!worker.shared.running.load(Ordering::Acquire));
    assert!(lock(&worker.shared.listed).is_empty());
    // From then on each chunk is observed by its relay, and the session's end by its relay.
    begin(&backlog, &stats);
    assert_eq!(state(&advisor).0, SessionState::IdleInTransaction);
    send(&backlog, Side::Client, &[(b'Q', b"COMMIT\0")], &stats);
    backlog.finish();
    assert_all_observed(&backlog);
    assert!(lock(&backlog.queued).items.is_empty(), "the session's end observed the rest");
}

#[test]
fn a_session_end_is_observed_on_its_relay_before_it_returns() {
    let worker = ObservationWorker::asleep_for_ever();
    let (backlog, advisor) = observed_backlog(&worker);
    let stats = ProxyCounters::default();
    begin(&backlog, &stats);
    assert_eq!(state(&advisor).0, SessionState::Idle, "left to the (sleeping) worker");
    backlog.finish();
    assert_eq!(state(&advisor).0, SessionState::IdleInTransaction, "observed by finish itself");
    assert_all_observed(&backlog);
}

#[test]
fn without_a_worker_each_chunk_is_observed_at_once() {
    let worker = ObservationWorker::without_thread();
    let (backlog, advisor) = observed_backlog(&worker);
    let stats = ProxyCounters::default();
    begin(&backlog, &stats);
    assert_eq!(state(&advisor).0, SessionState::IdleInTransaction);
    assert!(lock(&worker.shared.listed).is_empty(), "nothing listed for a worker that does not run");
    assert_eq!(ProxyCounters::get(&stats.observed_inline), 0, "not counted as a full backlog");
    assert_all_observed(&backlog);
    assert!(lock(&backlog.queued).items.capacity() == 0, "a drained backlog keeps no buffer");
}

#[test]
fn one_pass_shows_chunks_of_all_sessions_in_the_order_they_were_read() {
    let worker = ObservationWorker::asleep_for_ever();
    let (a, advisor) = observed_backlog(&worker);
    let b = observed_backlog_of(&worker, &advisor, 2);
    let stats = ProxyCounters::default();
    let t0 = Instant::now();
    // b is listed first, but a's chunk was read before b's second one.
    queue_at(&b, Side::Client, &[(b'Q', b"BEGIN\0")], t0, &stats);
    queue_at(&a, Side::Client, &[(b'Q', b"SELECT 1\0")], t0 + Duration::from_micros(1), &stats);
    queue_at(&b, Side::Server, &[(b'C', b"BEGIN\0"), (b'Z', b"T")], t0 + Duration::from_micros(2), &stats);
    let order = RefCell::new(Vec::new());
    let taken: Vec<Queued> = lock(&worker.shared.listed).iter().map(|x| lock(&x.queued).take()).collect();
    let mut done = Vec::new();
    replay_merged(
        &taken,
        |i, queue, from| {
            queue.replay_chunk(from, |item| {
                if let Replayed::Message(_, m) = item {
                    order.borrow_mut().push((i, m.tag));
                }
            })
        },
        |i| done.push((i, order.borrow().len())),
    );
    let order = order.into_inner();
    assert_eq!(done, vec![(1, 2), (0, 4)], "a's queue ends after its one chunk, b's last");
    assert_eq!(order, vec![(0, b'Q'), (1, b'Q'), (0, b'C'), (0, b'Z')], "b listed first: index 0");
    // And observe_together itself, on fresh chunks: both sessions end up observed.
    queue_at(&b, Side::Client, &[(b'Q', b"COMMIT\0")], t0 + Duration::from_micros(3), &stats);
    queue_at(&a, Side::Server, &[(b'C', b"SELECT 1\0"), (b'Z', b"I")], t0 + Duration::from_micros(4), &stats);
    queue_at(&b, Side::Server, &[(b'C', b"COMMIT\0"), (b'Z', b"I")], t0 + Duration::from_micros(5), &stats);
    observe_together(&[b.as_ref(), a.as_ref()]);
    assert_all_observed(&a);
    assert_all_observed(&b);
    for id in [1, 2] {
        let (_, activity) = advisor.sessions.get(id).unwrap();
        assert_eq!(activity.state, SessionState::Idle, "session {id}");
    }
}

#[test]
fn rows_past_the_sampled_ones_are_counted_not_copied() {
    let mut queued = Queued::default();
    let row = [0u8, 1, 0, 0, 0, 3, b'a', b'b', b'c'];
    let rows = MAX_SAMPLED_ROWS as usize + 500;
    for _ in 0..rows {
        queued.push_message(Side::Server, ScannedMessage { tag: DATA_ROW, body_len: row.len(), body: &row });
    }
    queued.push_message(Side::Client, ScannedMessage { tag: COPY_DATA, body_len: 3, body: b"xyz" });
    queued.push_message(Side::Server, ScannedMessage { tag: b'C', body_len: 9, body: b"SELECT 1\0" });
    assert_eq!(queued.items.len(), MAX_SAMPLED_ROWS as usize + 2, "sampled rows, one count, the completion");
    assert_eq!(queued.arena.len(), MAX_SAMPLED_ROWS as usize * row.len() + 9);
    let (mut seen, mut bytes, mut bodies) = (0, 0, 0);
    queued.replay_chunk(0, |item| {
        if let Replayed::Message(Side::Server, m) = item {
            if m.tag == DATA_ROW {
                seen += 1;
                bytes += m.body_len;
                bodies += m.body.len();
            }
        }
    });
    assert_eq!((seen, bytes, bodies), (rows, rows * row.len(), MAX_SAMPLED_ROWS as usize * row.len()));
}

#[test]
fn a_queue_taken_empty_keeps_the_sizes_of_the_last_pass_that_took_something() {
    let mut queued = Queued::default();
    queued.start_filling();
    queued.push_message(Side::Client, ScannedMessage { tag: b'Q', body_len: 2, body: b"x\0" });
    drop(queued.take());
    drop(queued.take());
    assert_eq!(queued.last_taken, (1, 2));
}

#[test]
fn an_unobserved_session_queues_nothing() {
    let worker = ObservationWorker::asleep_for_ever();
    let backlog = Backlog::new(SessionObservation::default(), None, &worker);
    let stats = ProxyCounters::default();
    let number = send(&backlog, Side::Client, &[(b'Q', b"START_REPLICATION\0")], &stats);
    assert_eq!(number, 0, "no progress to report");
    assert!(lock(&backlog.queued).items.is_empty());
    assert!(lock(&worker.shared.listed).is_empty());
}

/// A message: from the client?, its tag (DataRow and CopyData often), body, bytes cut off
/// the body, and how many times it comes in a row.
fn message() -> impl Strategy<Value = (bool, u8, Vec<u8>, usize, usize)> {
    let tag = prop_oneof![Just(DATA_ROW), Just(COPY_DATA), any::<u8>()];
    let repeat = prop_oneof![4 => Just(1usize), 1 => 1usize..400];
    (any::<bool>(), tag, proptest::collection::vec(any::<u8>(), 0..300), 0usize..100_000, repeat)
}

type Seen = (Option<Side>, u64, u8, Vec<u8>, usize);

/// `seen` with the lengths of server DataRows past the sampled ones zeroed, and their sum.
fn counted_rows_apart(mut seen: Vec<Seen>) -> (Vec<Seen>, usize) {
    let (mut rows, mut total) = (0, 0);
    for (side, _, tag, _, body_len) in &mut seen {
        if *side == Some(Side::Server) {
            rows = if *tag == DATA_ROW { rows + 1 } else { 0 };
            if rows > MAX_SAMPLED_ROWS {
                total += std::mem::take(body_len);
            }
        }
    }
    (seen, total)
}

proptest! {
    /// Whatever the messages (any tag, any bytes, bodies cut to a prefix, long runs of rows),
    /// they come back as queued, in order, with their chunk marks; but CopyData, which is
    /// not queued, and the bodies of server DataRows past the sampled ones, whose lengths
    /// still add up.
    #[test]
    fn queued_messages_replay_as_given(chunks in proptest::collection::vec(proptest::collection::vec(message(), 0..8), 0..12)) {
        let mut queued = Queued::default();
        let at = Instant::now();
        let mut expected = Vec::new();
        let mut rows = 0u64;
        for (number, chunk) in chunks.iter().enumerate() {
            queued.items.push(Item::Chunk { at, number: number as u64 });
            expected.push((None, number as u64, 0, Vec::new(), 0));
            for (client, tag, body, cut, repeat) in chunk {
                let side = if *client { Side::Client } else { Side::Server };
                let body_len = body.len() + cut;
                for _ in 0..*repeat {
                    queued.push_message(side, ScannedMessage { tag: *tag, body_len, body });
                    if *tag == COPY_DATA {
                        continue;
                    }
                    let mut kept = body.clone();
                    if side == Side::Server {
                        rows = if *tag == DATA_ROW { rows + 1 } else { 0 };
                        if rows > MAX_SAMPLED_ROWS {
                            kept.clear();
                        }
                    }
                    expected.push((Some(side), 0, *tag, kept, body_len));
                }
            }
        }
        let mut replayed = Vec::new();
        replay_merged(std::slice::from_ref(&queued), |i, queue, from| {
            assert_eq!(i, 0);
            queue.replay_chunk(from, |item| match item {
                Replayed::Chunk { at: when, number } => {
                    assert_eq!(when, at);
                    replayed.push((None, number, 0, Vec::new(), 0));
                }
                Replayed::Message(side, m) => replayed.push((Some(side), 0, m.tag, m.body.to_vec(), m.body_len)),
            })
        }, |_| {});
        // Counted rows come back with their total length shared out: compare the totals.
        prop_assert_eq!(counted_rows_apart(replayed), counted_rows_apart(expected));
        let taken = queued.take();
        prop_assert_eq!(taken.last_chunk(), chunks.len().checked_sub(1).map(|n| n as u64));
        prop_assert!(queued.items.is_empty());
        prop_assert_eq!(queued.arena.capacity(), 0);
    }
}

#[test]
fn a_long_body_is_queued_up_to_the_observed_prefix() {
    let mut queued = Queued::default();
    let body = vec![7u8; OBSERVED_PREFIX + 10];
    queued.push_message(Side::Server, ScannedMessage { tag: b'E', body_len: body.len(), body: &body });
    assert_eq!(queued.arena.len(), OBSERVED_PREFIX);
    assert!(matches!(queued.items[0], Item::Message { body_len, .. } if body_len as usize == body.len()));
}

/// Log lines written under a test's own subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn unknown_message_types_are_still_logged_after_the_observer_failed() {
    const MARKER: &str = "pgvisor_test_observer_panic";
    let worker = ObservationWorker::without_thread();
    let mut config = AdvisorConfig::default();
    config.injected_panics.observer = Some(Arc::from(MARKER));
    let (advisor, _inputs) = Advisor::new(config);
    let backlog = observed_backlog_of(&worker, &advisor, 1);
    let stats = ProxyCounters::default();
    let query = format!("select '{MARKER}'\0");
    send(&backlog, Side::Client, &[(b'Q', query.as_bytes())], &stats);
    assert!(!backlog.tap().is_observing(), "the injected panic switched the session's observation off");

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let suppressed_before = crate::net::observation::UNKNOWN_TAG_LOG.suppressed();
    tracing::subscriber::with_default(subscriber, || {
        send(&backlog, Side::Client, &[(b'~', b"junk")], &stats);
    });
    let logged = String::from_utf8_lossy(&lock(&captured.0)).into_owned();
    // Another test may have had this second's line: then the warning was asked for and counted.
    let suppressed = crate::net::observation::UNKNOWN_TAG_LOG.suppressed() > suppressed_before;
    assert!(
        logged.contains("client sent a message type the protocol does not define") || suppressed,
        "no warning for the unknown message type: {logged:?}"
    );
    assert_all_observed(&backlog);
}
