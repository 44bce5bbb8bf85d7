//! What a session shows the advisor, beside the forwarding path.
//!
//! The relay calls the tap synchronously for each framed message; the observer only reads the
//! borrowed bytes and never blocks (its events go out through a channel that drops when full),
//! so forwarding never waits for observation.

use advisor::observer::SessionObserver;
use protocol::{FrontendTag, ScannedMessage};
use tracing::warn;

/// Per-session observation: none for replication connections, which are forwarded only.
#[derive(Default)]
pub struct SessionTap {
    observer: Option<SessionObserver>,
}

impl SessionTap {
    /// A tap feeding `observer`.
    pub fn observing(observer: SessionObserver) -> Self {
        Self { observer: Some(observer) }
    }

    /// A message from the client.
    pub fn frontend(&mut self, message: ScannedMessage<'_>) {
        if let FrontendTag::Unknown(tag) = FrontendTag::from_byte(message.tag) {
            // Forwarded as is: PostgreSQL answers it with its own error and closes the session.
            warn!(tag = %(tag as char).escape_default(), len = message.body_len, "client sent a message type the protocol does not define");
        }
        if let Some(o) = &mut self.observer {
            o.frontend(message);
        }
    }

    /// The session ended: let the observer report what it still holds.
    pub fn finish(&mut self) {
        if let Some(o) = &mut self.observer {
            o.finish();
        }
    }

    /// A message from the server.
    pub fn backend(&mut self, message: ScannedMessage<'_>) {
        if let Some(o) = &mut self.observer {
            o.backend(message);
        }
    }
}
