//! What every session of one proxy shares: TLS set-up, the upstream connector, counters, the
//! shutdown signal and the advisor. The listener builds it; sessions and the log summary read it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use advisor::engine::Advisor;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::counters::ProxyCounters;
use crate::net::backlog::ObservationWorker;
use crate::net::upstream::UpstreamConnector;

/// State shared by all sessions of one proxy.
pub struct Shared {
    /// Client-leg TLS, when on.
    pub acceptor: Option<TlsAcceptor>,
    /// Offer client-leg TLS only while the upstream offers it (the default).
    pub tls_like_upstream: bool,
    /// The certificate the client leg presents.
    pub client_leaf: Option<Vec<u8>>,
    /// Set once the channel-binding warning has been logged.
    pub warned_channel_binding: AtomicBool,
    /// Opens upstream connections.
    pub upstream: UpstreamConnector,
    /// Counters.
    pub stats: Arc<ProxyCounters>,
    /// Fires when the grace period is over: every session closes.
    pub force_close: ForceClose,
    /// Statistics, sessions and advice.
    pub advisor: Arc<Advisor>,
    /// The thread that observes what sessions forward.
    pub observation: ObservationWorker,
}

impl Shared {
    /// The acceptor to answer an SSLRequest with, or `None` to answer 'N'.
    pub fn client_tls(&self) -> Option<&TlsAcceptor> {
        let offer = !self.tls_like_upstream || self.upstream.offers_tls() == Some(true);
        self.acceptor.as_ref().filter(|_| offer)
    }
}

/// The signal that closes every session at once, cheap to wait for: a relay waits for it beside
/// its two directions and so polls it on every wake-up of its task, which with tokio's
/// `CancellationToken` took two mutexes each time (shared by all sessions).
#[derive(Default)]
pub struct ForceClose {
    closed: AtomicBool,
    notify: Notify,
}

impl ForceClose {
    /// Closes every session waiting in [`Self::closed`], and any that waits later.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Resolves once [`Self::close`] has been called. The waiter is registered on the first poll
    /// and again only when the task's waker changes; other polls read one flag.
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        let mut notified = Box::pin(self.notify.notified());
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(move |cx| {
            if !registered.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                registered = Some(cx.waker().clone());
            }
            // Read after registering: a close between the two is seen here, one after wakes us.
            if self.closed.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_wakes_waiters_before_and_after() {
        let close = Arc::new(ForceClose::default());
        let waiting = tokio::spawn({
            let close = close.clone();
            async move { close.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        close.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        // A waiter that starts after the close returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(5), close.closed()).await.unwrap();
    }

    #[tokio::test]
    async fn an_unclosed_signal_stays_pending() {
        let close = ForceClose::default();
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), close.closed()).await.is_err());
    }
}
