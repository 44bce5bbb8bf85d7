//! What a session shows the advisor, beside the forwarding path.
//!
//! The observation worker (`net::backlog`) shows it each framed message, in the order forwarded,
//! after the relay has forwarded it; the observer only reads the bytes it is given and never
//! blocks (its events go out through a channel that drops when full). A panic in the observer is
//! contained here: the session goes on being forwarded, unobserved, and the failure is counted
//! and logged once.

use std::sync::Arc;

use advisor::engine::Advisor;
use advisor::health::Stage;
use advisor::observer::SessionObserver;
use protocol::{FrontendTag, ScannedMessage};
use tracing::warn;

use crate::logging::LogLimiter;

/// Client-triggered warnings about unknown message types: at most one line a second.
pub(super) static UNKNOWN_TAG_LOG: LogLimiter = LogLimiter::per_second();

/// Per-session observation: none for replication connections, which are forwarded only.
pub struct SessionObservation {
    observed: Option<Observed>,
    /// The session's span, entered for the log lines written while relaying (the relay itself
    /// runs outside it: see `net::session::serve`).
    pub span: tracing::Span,
}

struct Observed {
    session: u64,
    observer: SessionObserver,
    advisor: Arc<Advisor>,
}

impl Default for SessionObservation {
    /// No observation (a replication connection), no span.
    fn default() -> Self {
        Self { observed: None, span: tracing::Span::none() }
    }
}

impl SessionObservation {
    /// A tap feeding `observer`, whose failures count in `advisor`'s health.
    pub fn observing(session: u64, observer: SessionObserver, advisor: Arc<Advisor>) -> Self {
        Self { observed: Some(Observed { session, observer, advisor }), span: tracing::Span::none() }
    }

    /// Whether there is an observer (not for a replication connection).
    pub fn is_observing(&self) -> bool {
        self.observed.is_some()
    }

    /// Shows the observer what `show` passes on (a chunk's time and messages), under one
    /// containment: per message it would cost more than observing most messages.
    pub fn show(&mut self, show: impl FnOnce(&mut Showing<'_>)) {
        let span = &self.span;
        contain(&mut self.observed, |observer| show(&mut Showing { observer, span }));
    }

    /// A message from the client that no observer sees (its observer failed): still logged if
    /// its type is one the protocol does not define.
    pub fn unobserved_frontend(&self, message: ScannedMessage<'_>) {
        warn_unknown(&self.span, message);
    }

    /// The session ended: let the observer report what it still holds.
    pub fn finish(&mut self) {
        contain(&mut self.observed, SessionObserver::finish);
    }
}

/// Runs `f` on the observer; a panic switches observation off for this session only.
fn contain(observed: &mut Option<Observed>, f: impl FnOnce(&mut SessionObserver)) {
    let Some(Observed { session, observer, advisor }) = observed else { return };
    let session = *session;
    let context = || format!("session {session} is forwarded unobserved from now on");
    if advisor.health.contain(Stage::Observer, context, || f(observer)).is_none() {
        // Its registry entry would go stale (a statement "active" for ever): drop it too.
        advisor.sessions.close(session);
        *observed = None;
    }
}

/// The observer while [`SessionObservation::show`] shows it messages.
pub struct Showing<'a> {
    observer: &'a mut SessionObserver,
    span: &'a tracing::Span,
}

impl Showing<'_> {
    /// A chunk of bytes read at `at` is about to be shown, message by message: one clock reading
    /// for all.
    pub fn chunk_at(&mut self, at: std::time::Instant) {
        self.observer.chunk_arrived_at(at);
    }

    /// A message from the client.
    pub fn frontend(&mut self, message: ScannedMessage<'_>) {
        warn_unknown(self.span, message);
        self.observer.frontend(message);
    }

    /// A message from the server.
    pub fn backend(&mut self, message: ScannedMessage<'_>) {
        self.observer.backend(message);
    }
}

/// Logs (at most once a second) a client message whose type the protocol does not define: it is
/// forwarded as is, and PostgreSQL answers it with its own error and closes the session.
fn warn_unknown(span: &tracing::Span, message: ScannedMessage<'_>) {
    if let FrontendTag::Unknown(tag) = FrontendTag::from_byte(message.tag) {
        if let Some(suppressed) = UNKNOWN_TAG_LOG.allow() {
            let _in_span = span.enter();
            warn!(tag = %(tag as char).escape_default(), len = message.body_len, suppressed, "client sent a message type the protocol does not define");
        }
    }
}
