//! The observer's clock: read once per chunk of bytes the relay hands over, not once per message.
//!
//! A pgbench transaction is six to eight messages in two chunks; reading the clocks for each
//! message cost more than observing most of them. Every message of one read arrived at the same
//! moment as far as a statement's timing can tell, so the relay reads the clock once per chunk
//! and the observer is given that time ([`ChunkClock::tick_at`]) when it sees the chunk, which
//! may be a little later, on the observation worker's thread. Wall-clock times are derived from the monotonic one and an anchor re-read every
//! second, so they follow the system clock's adjustments within a second.

use std::time::{Duration, Instant, SystemTime};

/// How often the wall clock is read again.
const REANCHOR_EVERY: Duration = Duration::from_secs(1);

/// One session's clock.
#[derive(Debug)]
pub(super) struct ChunkClock {
    /// The time of the current chunk, when the relay gave one; otherwise each call reads it.
    chunk: Option<Instant>,
    /// The current chunk's wall-clock time, once asked for (a statement's events ask up to
    /// three times per chunk; deriving it costs more than keeping it).
    chunk_wall: Option<SystemTime>,
    /// A monotonic instant and the wall-clock time read with it.
    anchor: (Instant, SystemTime),
}

impl Default for ChunkClock {
    fn default() -> Self {
        Self { chunk: None, chunk_wall: None, anchor: (Instant::now(), SystemTime::now()) }
    }
}

impl ChunkClock {
    /// A new chunk of bytes arrived now.
    pub(super) fn tick(&mut self) {
        self.tick_at(Instant::now());
    }

    /// A new chunk of bytes arrived at `at` (read by the relay, observed later).
    pub(super) fn tick_at(&mut self, at: Instant) {
        self.chunk = Some(at);
        self.chunk_wall = None;
    }

    /// Now: the current chunk's time (or the clock, when no chunk was announced).
    pub(super) fn now(&self) -> Instant {
        self.chunk.unwrap_or_else(Instant::now)
    }

    /// Now on the wall clock.
    pub(super) fn wall(&mut self) -> SystemTime {
        if let Some(wall) = self.chunk_wall {
            return wall;
        }
        let now = self.now();
        let wall = Self::derive(self.anchor, now).unwrap_or_else(|| {
            // Both clocks read together; the chunk's time may be a little earlier than that.
            self.anchor = (Instant::now(), SystemTime::now());
            Self::derive(self.anchor, now).unwrap_or(self.anchor.1)
        });
        if self.chunk.is_some() {
            self.chunk_wall = Some(wall);
        }
        wall
    }

    /// The wall-clock time of `now` from `anchor`, unless the anchor is a second old or more.
    fn derive((at, wall): (Instant, SystemTime), now: Instant) -> Option<SystemTime> {
        match now.checked_duration_since(at) {
            Some(since) if since < REANCHOR_EVERY => Some(wall + since),
            Some(_) => None,
            None => wall.checked_sub(at.duration_since(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_has_one_time_and_the_wall_clock_follows_it() {
        let mut clock = ChunkClock::default();
        clock.tick();
        let first = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), first, "one time for every message of a chunk");
        let wall = clock.wall();
        clock.tick();
        assert!(clock.now() >= first + Duration::from_millis(5), "the next chunk reads the clock again");
        let later = clock.wall();
        let step = later.duration_since(wall).expect("the wall clock moves on with the chunks");
        assert!(step >= Duration::from_millis(5) && step < Duration::from_secs(1), "{step:?}");
        let real = SystemTime::now();
        let off = real.duration_since(later).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_millis(100), "within a second of the system clock: {off:?}");
    }

    #[test]
    fn a_chunk_read_before_the_anchor_is_placed_before_it() {
        let mut clock = ChunkClock::default();
        clock.tick();
        let chunk_wall = clock.wall();
        std::thread::sleep(Duration::from_millis(5));
        // A stale chunk time, re-anchored now: its wall time stays where it was.
        clock.anchor = (Instant::now() - Duration::from_secs(2), SystemTime::now() - Duration::from_secs(2));
        let again = clock.wall();
        let off = again.duration_since(chunk_wall).unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_millis(3), "the chunk's wall time moved by {off:?}");
    }

    #[test]
    fn without_chunks_every_reading_is_fresh() {
        let clock = ChunkClock::default();
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now() > a);
    }
}
