//! The forwarding loops: sessions spread over single-threaded runtimes, one per thread.
//!
//! Each loop is a tokio current-thread runtime; the listener's own is the first, the others run
//! on threads of their own (`pgvisor-fwd-N`). A new session goes to the loop with the fewest open
//! sessions and stays there, both its legs included. Once placed, a session's forwarding shares
//! nothing with other loops: no work-stealing queue, no wake-up of another thread (placing it on
//! another loop wakes that loop once). With one loop per CPU the sessions' forwarding runs side
//! by side instead of taking turns on one thread, which with many busy sessions is what limits a
//! single-threaded proxy (docs/performance.md).
//!
//! A loop that cannot start (the system refuses a thread or a runtime) is logged and left out:
//! its sessions go to the others. The other loops stop when the [`Loops`] is dropped (at the end
//! of `Proxy::run`, after the grace period and the forced close): a session still open on one of
//! them is then dropped, its connections closed without a message. Sessions on the listener's
//! own loop live as long as that runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use crate::logging::LogLimiter;

/// How long a stopping loop waits for its blocking tasks (name lookups) before it lets them go.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// Most threads a loop starts for blocking work (the upstream's name lookup, per connection when
/// it is given as a host name): tokio's default is 512 per runtime.
const BLOCKING_THREADS: usize = 16;

/// The forwarding loops of one proxy.
pub struct Loops {
    /// Open sessions per loop; index 0 is the listener's own.
    open: Vec<Arc<AtomicUsize>>,
    /// The other loops' runtimes (index `i + 1` of `open`).
    others: Vec<Handle>,
    /// Stops the other loops when dropped.
    _stop: DropGuard,
}

impl Loops {
    /// `count` loops (at least the listener's own): `count - 1` threads are started.
    pub fn start(count: usize) -> Self {
        let stop = CancellationToken::new();
        let others: Vec<Handle> = (1..count).filter_map(|n| start_loop(n, stop.clone())).collect();
        let open = (0..=others.len()).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        Self { open, others, _stop: stop.drop_guard() }
    }

    /// Picks the loop for session `id`: the one with the fewest open sessions, looking from a
    /// place that rotates with `id` so that ties spread. The session counts as open on it until
    /// the returned [`Placed`] is dropped (its task's end).
    pub fn place(&self, id: u64) -> Placed {
        let n = self.open.len();
        let start = (id % n as u64) as usize;
        let index = (0..n)
            .map(|i| (start + i) % n)
            .min_by_key(|&i| self.open.get(i).map_or(usize::MAX, |o| o.load(Ordering::Relaxed)))
            .unwrap_or(0);
        let open = self.open.get(index).cloned().unwrap_or_else(|| Arc::new(AtomicUsize::new(0)));
        open.fetch_add(1, Ordering::Relaxed);
        Placed { handle: index.checked_sub(1).and_then(|i| self.others.get(i)).cloned(), open: OpenOn(open) }
    }
}

/// Where a session runs: another loop's runtime, or `None` for the listener's own.
pub struct Placed {
    /// The runtime to spawn the session on; `None`: the listener's.
    pub handle: Option<Handle>,
    /// Counts the session on its loop while held.
    pub open: OpenOn,
}

/// One open session on a loop; dropping it (the session's end, even by a panic) uncounts it.
pub struct OpenOn(Arc<AtomicUsize>);

impl Drop for OpenOn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts loop `n` on a thread of its own, running until `stop` is cancelled.
fn start_loop(n: usize, stop: CancellationToken) -> Option<Handle> {
    let (started, handle) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new().name(format!("pgvisor-fwd-{n}")).spawn(move || {
        let built =
            tokio::runtime::Builder::new_current_thread().enable_all().max_blocking_threads(BLOCKING_THREADS).build();
        let runtime = match built {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = started.send(Err(e));
                return;
            }
        };
        let _ = started.send(Ok(runtime.handle().clone()));
        runtime.block_on(stop.cancelled());
        runtime.shutdown_timeout(STOP_WAIT);
    });
    let failed = match thread {
        Ok(_) => match handle.recv() {
            Ok(Ok(handle)) => return Some(handle),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "its thread stopped while starting".to_string(),
        },
        Err(e) => e.to_string(),
    };
    warn!(error = %failed, "cannot start forwarding loop {n}; its sessions go to the other loops");
    None
}

/// Runs `session` on the loop `placed` names; `tcp` moves to that loop's runtime first.
/// Returns the future to spawn and the runtime to spawn it on.
pub fn moved_to<F, Fut>(
    placed: Placed,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    session: F,
) -> (Option<Handle>, impl Future<Output = ()> + Send + 'static)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let Placed { handle, open } = placed;
    // A socket is registered with one runtime's reactor: it leaves this one as a plain socket
    // and joins the other's on its thread.
    let arrival = match &handle {
        None => Ok(Arrival::Here(tcp)),
        Some(_) => tcp.into_std().map(Arrival::Moved),
    };
    let task = async move {
        let _open = open;
        let tcp = match arrival.and_then(Arrival::into_tokio) {
            Ok(tcp) => tcp,
            Err(e) => {
                // Out of memory or file descriptors, and then for every new client: rate-limited.
                static MOVE_FAILED: LogLimiter = LogLimiter::per_second();
                if let Some(suppressed) = MOVE_FAILED.allow() {
                    warn!(error = %e, client = %peer, suppressed, "cannot move a new connection to its forwarding loop; it is closed");
                }
                return;
            }
        };
        session(tcp).await;
    };
    (handle, task)
}

/// An accepted connection on its way to its loop.
enum Arrival {
    /// Staying on the listener's loop.
    Here(tokio::net::TcpStream),
    /// Leaving it for another.
    Moved(std::net::TcpStream),
}

impl Arrival {
    /// The connection on the current loop's reactor.
    fn into_tokio(self) -> std::io::Result<tokio::net::TcpStream> {
        match self {
            Arrival::Here(tcp) => Ok(tcp),
            Arrival::Moved(tcp) => tokio::net::TcpStream::from_std(tcp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_go_to_the_loop_with_fewest_open() {
        let loops = Loops::start(3);
        assert_eq!(loops.open.len(), 3);
        let placed: Vec<Placed> = (0..6).map(|id| loops.place(id)).collect();
        let counts: Vec<usize> = loops.open.iter().map(|o| o.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, [2, 2, 2]);
        // The listener's own loop has no handle; the others do.
        assert_eq!(placed.iter().filter(|p| p.handle.is_none()).count(), 2);
        // Sessions ending on one loop make it the next choice, whatever the id.
        let mut placed = placed;
        placed.retain(|p| p.handle.is_some());
        let next = loops.place(1);
        assert!(next.handle.is_none(), "the emptied loop is chosen");
        drop(placed);
        drop(next);
        assert!(loops.open.iter().all(|o| o.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn one_loop_is_the_listeners_own() {
        let loops = Loops::start(1);
        assert_eq!(loops.open.len(), 1);
        assert!(loops.place(7).handle.is_none());
    }

    #[tokio::test]
    async fn a_session_moved_to_another_loop_runs_there_and_its_loop_stops_with_the_loops() {
        let loops = Loops::start(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut got = String::new();
            tcp.read_to_string(&mut got).await.unwrap();
            got
        });
        let (tcp, _) = listener.accept().await.unwrap();
        // Both loops are empty: id 1 starts looking at the other loop.
        let placed = loops.place(1);
        assert!(placed.handle.is_some());
        let (handle, task) = moved_to(placed, tcp, addr, |mut tcp| async move {
            use tokio::io::AsyncWriteExt;
            let name = std::thread::current().name().unwrap_or_default().to_string();
            tcp.write_all(name.as_bytes()).await.unwrap();
        });
        let other = handle.unwrap();
        other.spawn(task).await.unwrap();
        assert_eq!(client.await.unwrap(), "pgvisor-fwd-1");
        assert!(loops.open.iter().all(|o| o.load(Ordering::Relaxed) == 0), "the session was uncounted");
        // Dropped, the loops stop: a task given to the other loop then never runs.
        drop(loops);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while other.spawn(async {}).await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "the other loop still runs tasks");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
