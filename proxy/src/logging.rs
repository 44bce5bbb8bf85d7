//! Log set-up: human-readable lines or JSON lines, filtered by RUST_LOG (default info).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")));
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Colour codes only on a terminal, and not when `NO_COLOR` is set to anything but the empty
/// string (no-color.org): a log redirected to a file or a collector must stay plain text.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && !matches!(no_color, Some(v) if !v.is_empty())
}

/// A rate limit for log lines that client input can trigger (a flood of bad messages must not
/// flood the log): one line per interval, each saying how many were suppressed before it.
#[derive(Debug)]
pub struct LogLimiter {
    interval_ms: u64,
    /// Milliseconds since the process's first use of any limiter when a line was last allowed.
    last_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimiter {
    /// At most one line a second.
    pub const fn per_second() -> Self {
        Self {
            interval_ms: 1000,
            last_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Lines suppressed since the last one allowed: for tests, it shows a line was asked for
    /// even when another test's line used this second's allowance.
    #[cfg(test)]
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `Some(lines suppressed since the last one)` when a line may be written now.
    pub fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        // +1 so that the first call (at 0 ms) is allowed.
        let now = START.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + self.interval_ms + 1;
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
    use super::{colour, LogLimiter};

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())), "an empty NO_COLOR does not count");
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn one_line_per_interval_then_the_count_of_suppressed_ones() {
        let limiter = LogLimiter::per_second();
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.allow(), None);
        assert_eq!(limiter.suppressed.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
