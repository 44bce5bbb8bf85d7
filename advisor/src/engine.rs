//! The engine: drains observer events into the statistics registry, off the forwarding path.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::events::{self, Event, EventSender};
use crate::sessions::SessionRegistry;
use crate::stats::QueryStats;

/// Capacity of the observer-to-engine channel.
pub const EVENT_CHANNEL_CAPACITY: usize = 65_536;

/// Shared advisor state: what the admin API reads.
#[derive(Debug)]
pub struct Advisor {
    /// Per-fingerprint statistics.
    pub stats: QueryStats,
    /// Live sessions.
    pub sessions: SessionRegistry,
    /// Where observers send events.
    pub events: EventSender,
}

impl Advisor {
    /// A new advisor and the receiving end the engine task must drain ([`run`]).
    pub fn new(max_fingerprints: usize) -> (Arc<Self>, mpsc::Receiver<Event>) {
        let (events, rx) = events::channel(EVENT_CHANNEL_CAPACITY);
        (Arc::new(Self { stats: QueryStats::new(max_fingerprints), sessions: SessionRegistry::default(), events }), rx)
    }

    /// Applies one event.
    pub fn apply(&self, event: &Event) {
        match event {
            Event::Statement(s) => self.stats.record(s),
        }
    }
}

/// Drains events into `advisor` until every sender is gone.
pub async fn run(advisor: Arc<Advisor>, mut rx: mpsc::Receiver<Event>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for event in batch.drain(..) {
            advisor.apply(&event);
        }
    }
}
