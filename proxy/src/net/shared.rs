//! What every session of one proxy shares: TLS set-up, the upstream connector, counters, the
//! shutdown signal and the advisor. The listener builds it; sessions and the log summary read it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use advisor::engine::Advisor;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

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
    pub force_close: CancellationToken,
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
