//! The forwarding path: the listener accepts clients, each session negotiates TLS and startup,
//! connects upstream and relays both directions, showing each message to its observation.

pub mod backlog;
pub mod error;
pub mod listener;
pub mod loops;
pub mod observation;
pub mod relay;
pub mod session;
pub mod shared;
pub mod stream;
pub mod tls;
pub mod upstream;
