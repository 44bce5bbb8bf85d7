//! Containment for analysis: a panic anywhere in observing, fingerprinting, detecting or the
//! engine is caught where it happens, counted by stage, logged once, and never reaches the
//! forwarding path or other sessions.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// Where analysis failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A session's observer (pairing, fingerprinting, per-session detectors).
    Observer,
    /// The engine (statistics, cross-session detectors, the advice book).
    Engine,
    /// The Inspector's side connection task.
    Inspector,
    /// An admin API handler.
    Admin,
}

impl Stage {
    /// Every stage, in the order of [`AnalysisHealth::failures`].
    pub const ALL: [Stage; 4] = [Stage::Observer, Stage::Engine, Stage::Inspector, Stage::Admin];

    /// The stage's label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Observer => "observer",
            Stage::Engine => "engine",
            Stage::Inspector => "inspector",
            Stage::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One contained failure, as the log and `/healthz` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Where.
    pub stage: Stage,
    /// The panic message and source location.
    pub what: String,
    /// When.
    #[serde(serialize_with = "crate::advice::rfc3339")]
    pub at: SystemTime,
}

/// How often the same failure site may be logged again.
const LOG_AGAIN_AFTER: Duration = Duration::from_secs(60);
/// Most distinct failure sites remembered for log rate limiting.
const MAX_SITES: usize = 64;

/// Failures contained so far, shared by every session and the engine.
#[derive(Debug, Default)]
pub struct AnalysisHealth {
    failures: [AtomicU64; 4],
    last: Mutex<Option<Failure>>,
    logged: Mutex<Vec<(String, Instant)>>,
}

impl AnalysisHealth {
    /// Runs `f`, containing a panic: `None` when it panicked (then counted and logged, at most
    /// once a minute per failure site).
    pub fn contain<R>(&self, stage: Stage, context: impl FnOnce() -> String, f: impl FnOnce() -> R) -> Option<R> {
        install_panic_hook();
        CONTAINED.with(|c| c.set(c.get() + 1));
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        CONTAINED.with(|c| c.set(c.get() - 1));
        match result {
            Ok(r) => Some(r),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                let location = LAST_LOCATION.with(|l| l.borrow_mut().take()).unwrap_or_default();
                self.record(stage, format!("{message} at {location}"), context);
                None
            }
        }
    }

    /// Counts a failure (a panic caught elsewhere, such as a task's `JoinError`) and logs it,
    /// rate-limited per site.
    pub fn record(&self, stage: Stage, what: String, context: impl FnOnce() -> String) {
        self.failures[stage.index()].fetch_add(1, Ordering::Relaxed);
        let failure = Failure { stage, what, at: SystemTime::now() };
        if self.should_log(&failure.what) {
            tracing::error!(
                stage = stage.as_str(),
                failure = %failure.what,
                "analysis failed and was contained: {}; forwarding goes on",
                context()
            );
        }
        *crate::sync::lock(&self.last) = Some(failure);
    }

    fn should_log(&self, site: &str) -> bool {
        let mut logged = crate::sync::lock(&self.logged);
        let now = Instant::now();
        if let Some((_, at)) = logged.iter_mut().find(|(s, _)| s == site) {
            if at.elapsed() < LOG_AGAIN_AFTER {
                return false;
            }
            *at = now;
            return true;
        }
        if logged.len() >= MAX_SITES {
            logged.retain(|(_, at)| at.elapsed() < LOG_AGAIN_AFTER);
        }
        if logged.len() < MAX_SITES {
            logged.push((site.to_string(), now));
        }
        true
    }

    /// Failures contained at `stage` since start.
    pub fn failures(&self, stage: Stage) -> u64 {
        self.failures[stage.index()].load(Ordering::Relaxed)
    }

    /// The last failure contained, if any.
    pub fn last_failure(&self) -> Option<Failure> {
        crate::sync::lock(&self.last).clone()
    }
}

thread_local! {
    /// Depth of `contain` calls on this thread: their panics are recorded, not printed.
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
    /// Where the last contained panic on this thread happened.
    static LAST_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps the process's panic hook once: a panic inside [`AnalysisHealth::contain`] is noted for
/// the one log line `contain` writes; any other panic goes to the previous hook as before.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if CONTAINED.with(Cell::get) > 0 {
                let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
                LAST_LOCATION.with(|l| *l.borrow_mut() = Some(location));
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_contained_counted_and_remembered() {
        let health = AnalysisHealth::default();
        assert_eq!(health.contain(Stage::Engine, String::new, || 7), Some(7));
        let caught = health.contain(Stage::Observer, || "session 1".into(), || -> u32 { panic!("boom {}", 42) });
        assert_eq!(caught, None);
        assert_eq!(health.failures(Stage::Observer), 1);
        assert_eq!(health.failures(Stage::Engine), 0);
        let last = health.last_failure().unwrap();
        assert_eq!(last.stage, Stage::Observer);
        assert!(last.what.starts_with("boom 42 at ") && last.what.contains("health.rs"), "{}", last.what);
        // The same site again: counted, not logged again (no way to see the log here, but the
        // rate limiter says so).
        assert!(!health.should_log(&last.what));
    }
}
