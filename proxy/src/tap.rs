//! What a session learns from the frames passing through it, beside the forwarding path.
//!
//! The relay calls the tap synchronously for each framed message; the tap only reads the
//! borrowed bytes and never blocks, so forwarding never waits for observation.

use protocol::backend::{BackendKeyData, ReadyForQuery, TransactionStatus};
use protocol::{BackendTag, ScannedMessage};

/// Per-session observations.
#[derive(Debug, Default)]
pub struct SessionTap {
    /// Backend process id from BackendKeyData.
    pub backend_pid: Option<u32>,
    /// Transaction status from the last ReadyForQuery.
    pub transaction: Option<TransactionStatus>,
    /// Messages seen from the client.
    pub frontend_messages: u64,
    /// Messages seen from the server.
    pub backend_messages: u64,
}

impl SessionTap {
    /// A message from the client.
    pub fn frontend(&mut self, _message: ScannedMessage<'_>) {
        self.frontend_messages += 1;
    }

    /// A message from the server.
    pub fn backend(&mut self, message: ScannedMessage<'_>) {
        self.backend_messages += 1;
        match BackendTag::from_byte(message.tag) {
            BackendTag::BackendKeyData => {
                if let Ok(key) = BackendKeyData::parse(message.body) {
                    self.backend_pid = Some(key.pid);
                }
            }
            BackendTag::ReadyForQuery => {
                if let Ok(ready) = ReadyForQuery::parse(message.body) {
                    self.transaction = Some(ready.status);
                }
            }
            _ => {}
        }
    }
}
