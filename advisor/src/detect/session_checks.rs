//! The checks a session's observer runs on each statement that completed without error (a
//! portal suspended at its row limit has not completed):
//! `repeated_query` (per session, over time), `unbounded_result` and `select_star` (per
//! execution, from the result's size and shape).

use std::collections::HashSet;

use crate::advice::Finding;
use crate::detect::repeated_query::{RepeatedQueryConfig, RepeatedQueryDetector};
use crate::detect::select_star::{self, SelectStarConfig};
use crate::detect::unbounded_result::{self, UnboundedResultConfig};
use crate::fingerprint::Fingerprint;
pub use crate::model::FinishedStatement;

/// Thresholds of the per-session checks.
#[derive(Debug, Clone, Default)]
pub struct SessionChecksConfig {
    /// `repeated_query`.
    pub repeated_query: RepeatedQueryConfig,
    /// `unbounded_result`.
    pub unbounded_result: UnboundedResultConfig,
    /// `select_star`.
    pub select_star: SelectStarConfig,
}

/// Shapes a session reports `select_star` for at most once.
const MAX_REPORTED: usize = 1_000;

/// One session's checks.
#[derive(Debug, Default)]
pub struct SessionChecks {
    config: SessionChecksConfig,
    repeated: RepeatedQueryDetector,
    select_star_reported: HashSet<Fingerprint>,
    label: String,
}

impl SessionChecks {
    /// Checks with these thresholds, naming the session `label` in messages.
    pub fn new(config: SessionChecksConfig, label: String) -> Self {
        let repeated = RepeatedQueryDetector::new(config.repeated_query.clone());
        Self { config, repeated, select_star_reported: HashSet::new(), label }
    }

    /// Renames the session in messages (once its backend pid is known).
    pub fn set_label(&mut self, label: String) {
        self.label = label;
    }

    /// Forgets which shapes were reported (after a reset: they may be reported again).
    pub fn forget_reported(&mut self) {
        self.select_star_reported.clear();
    }

    /// Checks one statement that finished without error.
    pub fn observe(&mut self, s: &FinishedStatement) -> Vec<Finding> {
        let mut out = Vec::new();
        out.extend(self.repeated.observe(s, &self.label));
        out.extend(unbounded_result::check(s, &self.config.unbounded_result, &self.label));
        let fp = s.statement.fingerprint;
        if !self.select_star_reported.contains(&fp) {
            if let Some(f) = select_star::check(s, &self.config.select_star) {
                if self.select_star_reported.len() >= MAX_REPORTED {
                    self.select_star_reported.clear();
                }
                self.select_star_reported.insert(fp);
                out.push(f);
            }
        }
        out
    }
}
