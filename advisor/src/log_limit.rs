//! A rate limit for log lines that client input can trigger: shared by the proxy (bad messages,
//! refused logins) and the observers (bounds reached), so a flood of either never floods the log.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// One line per interval, each saying how many were suppressed before it; lock-free.
#[derive(Debug)]
pub struct LogLimiter {
    interval_ms: u64,
    /// Milliseconds since the process's first use of any limiter when a line was last allowed.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogLimiter {
    /// At most one line a second.
    pub const fn per_second() -> Self {
        Self::every_ms(1000)
    }

    /// At most one line a minute.
    pub const fn per_minute() -> Self {
        Self::every_ms(60_000)
    }

    const fn every_ms(interval_ms: u64) -> Self {
        Self { interval_ms, last_ms: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// Lines suppressed since the last one allowed: for tests, it shows a line was asked for
    /// even when another test's line used this interval's allowance.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Relaxed)
    }

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        static START: OnceLock<Instant> = OnceLock::new();
        // + interval + 1 so that the first call (at 0 ms) is allowed.
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64 + self.interval_ms + 1;
        let last = self.last_ms.load(Relaxed);
        if now.saturating_sub(last) < self.interval_ms
            || self.last_ms.compare_exchange(last, now, Relaxed, Relaxed).is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::LogLimiter;

    #[test]
    fn one_line_per_interval_then_the_count_of_suppressed_ones() {
        for limiter in [LogLimiter::per_second(), LogLimiter::per_minute()] {
            assert_eq!(limiter.allow(), Some(0));
            assert_eq!(limiter.allow(), None);
            assert_eq!(limiter.allow(), None);
            assert_eq!(limiter.suppressed(), 2);
        }
    }
}
