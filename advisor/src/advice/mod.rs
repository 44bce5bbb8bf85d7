//! Advice: what happened, the evidence, and the fix, in the shape the admin API promises.

mod book;
mod callers;
mod filter;

use std::time::SystemTime;

use serde::Serialize;

use crate::fingerprint::Fingerprint;

pub use book::{AdviceBook, UPDATE_INTERVAL};
pub use callers::CallerLinks;
pub use filter::{parse_fingerprint, AdviceFilter};

/// The kinds of advice (stable identifiers used in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The same query run once per row of a previous query.
    NPlusOne,
    /// A statement waited on a lock held by another session.
    LockContention,
    /// PostgreSQL detected a deadlock.
    Deadlock,
    /// A transaction sits idle while holding its locks and snapshot.
    IdleInTransaction,
    /// A transaction has been open for a long time.
    LongTransaction,
    /// The side connection for pg_locks/EXPLAIN could not be made.
    InspectorUnavailable,
    /// A query shape whose p95 exceeds `--slow`.
    SlowQuery,
    /// A slow or frequent query scans a large table sequentially where an index would serve it.
    MissingIndex,
    /// The same query with the same parameters many times in a short window.
    RepeatedQuery,
    /// A SELECT without LIMIT returning many rows or bytes.
    UnboundedResult,
    /// `SELECT *` on a wide table.
    SelectStar,
    /// One query shape sent as many distinct literal texts.
    Unparameterized,
    /// DDL that takes a strong lock on a table in use.
    LockHazardDdl,
    /// A jump in errors for a query shape or SQLSTATE.
    ErrorSpike,
}

impl Kind {
    /// Every kind, in the order of the docs.
    pub const ALL: [Kind; 14] = [
        Kind::NPlusOne,
        Kind::LockContention,
        Kind::Deadlock,
        Kind::IdleInTransaction,
        Kind::LongTransaction,
        Kind::InspectorUnavailable,
        Kind::SlowQuery,
        Kind::MissingIndex,
        Kind::RepeatedQuery,
        Kind::UnboundedResult,
        Kind::SelectStar,
        Kind::Unparameterized,
        Kind::LockHazardDdl,
        Kind::ErrorSpike,
    ];

    /// The kind named `name` (as in the API), if any.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The identifier used in the API and docs (`docs/advice/<kind>.md`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NPlusOne => "n_plus_one",
            Kind::LockContention => "lock_contention",
            Kind::Deadlock => "deadlock",
            Kind::IdleInTransaction => "idle_in_transaction",
            Kind::LongTransaction => "long_transaction",
            Kind::InspectorUnavailable => "inspector_unavailable",
            Kind::SlowQuery => "slow_query",
            Kind::MissingIndex => "missing_index",
            Kind::RepeatedQuery => "repeated_query",
            Kind::UnboundedResult => "unbounded_result",
            Kind::SelectStar => "select_star",
            Kind::Unparameterized => "unparameterized",
            Kind::LockHazardDdl => "lock_hazard_ddl",
            Kind::ErrorSpike => "error_spike",
        }
    }
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Costs time or capacity now.
    Warning,
    /// Hurts users or will under load.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    /// The name the API, the log and reports use (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Whether a finding is a new occurrence or an update of one still in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occurrence {
    /// Another occurrence: the count goes up.
    New,
    /// The same occurrence, with fresher evidence (a wait that went on, a burst that grew).
    Update,
}

/// What a detector reports; the book turns it into [`Advice`].
#[derive(Debug, Clone)]
pub struct Finding {
    /// Kind.
    pub kind: Kind,
    /// Findings with the same kind and key merge.
    pub key: String,
    /// New occurrence or update.
    pub occurrence: Occurrence,
    /// Severity.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What happened, for someone who does not know pgvisor.
    pub message: String,
    /// The concrete fix.
    pub suggestion: String,
    /// Fingerprints involved.
    pub fingerprints: Vec<Fingerprint>,
    /// Numbers and statements.
    pub evidence: serde_json::Value,
}

/// A finding as the API shows it, merged over occurrences.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// Stable id: 16 hex digits of the kind and key.
    pub id: String,
    /// Kind.
    pub kind: Kind,
    /// Severity of the latest occurrence.
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// What happened.
    pub message: String,
    /// The fix.
    pub suggestion: String,
    /// Fingerprints involved, 16 hex digits each.
    pub fingerprints: Vec<Fingerprint>,
    /// Numbers and statements of the latest occurrence.
    pub evidence: serde_json::Value,
    /// Occurrences merged.
    pub count: u64,
    /// First occurrence (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: SystemTime,
    /// Latest occurrence or update (RFC 3339).
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: SystemTime,
}

pub(crate) fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// The id of a finding: 16 hex digits of its kind and key.
pub fn advice_id(kind: Kind, key: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind.as_str().as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    format!("{:016x}", h.digest())
}

impl Advice {
    /// A readable multi-line block for logs and terminals.
    pub fn to_block(&self) -> String {
        let mut out = format!(
            "[{}] {} ({}, seen {}x)\n  {}\n",
            self.severity.as_str(),
            self.title,
            self.kind.as_str(),
            self.count,
            self.message
        );
        if !self.suggestion.is_empty() {
            out.push_str("  Fix: ");
            out.push_str(&self.suggestion.replace('\n', "\n       "));
            out.push('\n');
        }
        if let Ok(evidence) = serde_json::to_string(&self.evidence) {
            out.push_str("  Evidence: ");
            out.push_str(&evidence);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Severity;

    #[test]
    fn a_severity_is_named_as_it_serializes() {
        for s in Severity::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
