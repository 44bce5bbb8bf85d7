//! `error_spike`: errors of one SQLSTATE piling up, or one query shape failing on most calls.
//!
//! Two rules over a sliding window (`--error-spike-window`, default 10 s): at least
//! `--error-spike-min` errors of one SQLSTATE, or a shape with at least that many calls of which
//! `--error-spike-ratio` failed. Both report under the SQLSTATE (a shape's most frequent one), so
//! one cause is one advice, naming every shape that failed with it. Only shapes that failed
//! within the window are tracked.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::events::{SqlState, Statement, StatementEvent};
use crate::fingerprint::Fingerprint;

/// Thresholds (`--error-spike-min`, `--error-spike-window`, `--error-spike-ratio`).
#[derive(Debug, Clone)]
pub struct ErrorSpikeConfig {
    /// Errors of one SQLSTATE in the window, or calls of one failing shape, that make a spike.
    pub min_errors: usize,
    /// The sliding window.
    pub window: Duration,
    /// Share of a shape's calls in the window that must fail.
    pub ratio: f64,
}

impl Default for ErrorSpikeConfig {
    fn default() -> Self {
        Self { min_errors: 10, window: Duration::from_secs(10), ratio: 0.5 }
    }
}

/// Most entries kept per window; enough to count far past any threshold.
const MAX_WINDOW: usize = 10_000;
/// Most shapes (that failed recently) tracked at once.
const MAX_SHAPES: usize = 1_000;
/// Shapes named in the evidence.
const SHOWN_SHAPES: usize = 5;

#[derive(Debug)]
struct ShapeWindow {
    statement: Arc<Statement>,
    calls: VecDeque<(SystemTime, Option<SqlState>)>,
}

#[derive(Debug, Default)]
struct Spike {
    /// Errors of this SQLSTATE since the spike started.
    errors: usize,
    /// `errors` when last reported.
    reported_at: usize,
}

/// Recent errors by SQLSTATE and by shape, and the spikes in progress.
#[derive(Debug, Default)]
pub struct ErrorSpikeWatch {
    by_state: HashMap<SqlState, VecDeque<(SystemTime, Fingerprint)>>,
    shapes: HashMap<Fingerprint, ShapeWindow>,
    spikes: HashMap<SqlState, Spike>,
}

fn prune<T>(q: &mut VecDeque<(SystemTime, T)>, now: SystemTime, window: Duration) {
    while q.front().is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() > window) {
        q.pop_front();
    }
}

impl ErrorSpikeWatch {
    /// Notes one finished statement; returns a finding when a spike starts or doubles.
    pub fn observe(&mut self, e: &StatementEvent, config: &ErrorSpikeConfig) -> Option<Finding> {
        let (now, fp) = (e.finished_at, e.statement.fingerprint);
        if let Some(state) = e.error {
            let errors = self.by_state.entry(state).or_default();
            prune(errors, now, config.window);
            if errors.is_empty() {
                // Quiet for a whole window: whatever spike there was is over.
                self.spikes.remove(&state);
            }
            if errors.len() >= MAX_WINDOW {
                errors.pop_front();
            }
            errors.push_back((now, fp));
            if let Some(spike) = self.spikes.get_mut(&state) {
                spike.errors += 1;
            }
            if !self.shapes.contains_key(&fp) && self.shapes.len() >= MAX_SHAPES {
                self.forget_quiet_shapes(now, config.window);
            }
            self.shapes
                .entry(fp)
                .or_insert_with(|| ShapeWindow { statement: e.statement.clone(), calls: VecDeque::new() });
        }
        let shape = self.shapes.get_mut(&fp)?;
        prune(&mut shape.calls, now, config.window);
        if shape.calls.len() >= MAX_WINDOW {
            shape.calls.pop_front();
        }
        shape.calls.push_back((now, e.error));
        let failed = shape.calls.iter().filter(|(_, s)| s.is_some()).count();
        if failed == 0 {
            self.shapes.remove(&fp);
            return None;
        }
        let calls = shape.calls.len();
        let shape_spike = (calls >= config.min_errors && failed as f64 >= config.ratio * calls as f64)
            .then(|| dominant(&shape.calls))
            .flatten();
        let state_spike = e.error.filter(|s| self.by_state.get(s).is_some_and(|q| q.len() >= config.min_errors));
        let state = state_spike.or(shape_spike)?;
        let in_window = self.by_state.get(&state).map_or(0, VecDeque::len);
        let spike = self.spikes.entry(state).or_insert_with(|| Spike { errors: in_window, reported_at: 0 });
        let occurrence = match spike.reported_at {
            0 => Occurrence::New,
            n if spike.errors >= n * 2 => Occurrence::Update,
            _ => return None,
        };
        spike.reported_at = spike.errors.max(1);
        let total = spike.errors;
        Some(self.finding(state, total, now, config, occurrence))
    }

    fn forget_quiet_shapes(&mut self, now: SystemTime, window: Duration) {
        self.shapes
            .retain(|_, s| s.calls.back().is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() <= window));
        if self.shapes.len() >= MAX_SHAPES {
            self.shapes.clear();
        }
    }

    fn finding(
        &self,
        state: SqlState,
        total: usize,
        now: SystemTime,
        config: &ErrorSpikeConfig,
        occurrence: Occurrence,
    ) -> Finding {
        let recent: Vec<Fingerprint> = self.by_state.get(&state).map_or_else(Vec::new, |q| {
            q.iter()
                .filter(|(t, _)| now.duration_since(*t).unwrap_or_default() <= config.window)
                .map(|(_, f)| *f)
                .collect()
        });
        let mut per_shape: HashMap<Fingerprint, usize> = HashMap::new();
        for fp in &recent {
            *per_shape.entry(*fp).or_default() += 1;
        }
        let mut shapes: Vec<(Fingerprint, usize)> = per_shape.into_iter().collect();
        shapes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        shapes.truncate(SHOWN_SHAPES);
        let statements: Vec<serde_json::Value> = shapes
            .iter()
            .filter_map(|(fp, errors)| {
                let s = self.shapes.get(fp)?;
                Some(json!({
                    "fingerprint": fp.to_string(),
                    "query": s.statement.text.to_string(),
                    "errors": errors,
                    "calls": s.calls.len(),
                }))
            })
            .collect();
        let top = shapes.first().and_then(|(fp, _)| self.shapes.get(fp)).map(|s| s.statement.text.to_string());
        let all_failed = shapes
            .first()
            .and_then(|(fp, _)| self.shapes.get(fp))
            .is_some_and(|s| s.calls.len() >= config.min_errors && s.calls.iter().all(|(_, e)| e.is_some()));
        let window_s = config.window.as_secs_f64();
        let (name, advice) = (condition_name(state), explain(state));
        let title_state = named(state);
        let state_text = match name {
            Some(name) => format!("SQLSTATE {} ({name})", state.as_str()),
            None => format!("SQLSTATE {}", state.as_str()),
        };
        let severity =
            if recent.len() >= config.min_errors * 10 || all_failed { Severity::Critical } else { Severity::Warning };
        let query = top.as_deref().unwrap_or("?");
        Finding {
            kind: Kind::ErrorSpike,
            key: state.as_str().to_string(),
            occurrence,
            severity,
            title: format!("{} errors {title_state} in {window_s:.0} s", recent.len()),
            message: format!(
                "{} statements failed with {state_text} in the last {window_s:.0} s ({total} since this started), \
                 most of them `{query}`. Errors in a loop cost a round trip each, abort the transaction they happen in, \
                 and fill the server log.",
                recent.len(),
            ),
            suggestion: advice.to_string(),
            fingerprints: shapes.iter().map(|(fp, _)| *fp).collect(),
            evidence: json!({
                "sqlstate": state.as_str(),
                "condition": name,
                "errors_in_window": recent.len(),
                "window_s": window_s,
                "errors_total": total,
                "statements": statements,
            }),
        }
    }
}

/// The most frequent SQLSTATE among failed calls.
fn dominant(calls: &VecDeque<(SystemTime, Option<SqlState>)>) -> Option<SqlState> {
    let mut counts: HashMap<SqlState, usize> = HashMap::new();
    for state in calls.iter().filter_map(|(_, s)| *s) {
        *counts.entry(state).or_default() += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(s, _)| s)
}

/// Condition names of the SQLSTATEs an application most often meets (PostgreSQL, Appendix A
/// "Error Codes"), sorted by code.
const CONDITIONS: &[(&str, &str)] = &[
    ("08006", "connection_failure"),
    ("0A000", "feature_not_supported"),
    ("21000", "cardinality_violation"),
    ("22001", "string_data_right_truncation"),
    ("22003", "numeric_value_out_of_range"),
    ("22004", "null_value_not_allowed"),
    ("22007", "invalid_datetime_format"),
    ("22008", "datetime_field_overflow"),
    ("22012", "division_by_zero"),
    ("22021", "character_not_in_repertoire"),
    ("22023", "invalid_parameter_value"),
    ("22P02", "invalid_text_representation"),
    ("23502", "not_null_violation"),
    ("23503", "foreign_key_violation"),
    ("23505", "unique_violation"),
    ("23514", "check_violation"),
    ("23P01", "exclusion_violation"),
    ("25001", "active_sql_transaction"),
    ("25006", "read_only_sql_transaction"),
    ("25P02", "in_failed_sql_transaction"),
    ("26000", "invalid_sql_statement_name"),
    ("28000", "invalid_authorization_specification"),
    ("28P01", "invalid_password"),
    ("2BP01", "dependent_objects_still_exist"),
    ("34000", "invalid_cursor_name"),
    ("3D000", "invalid_catalog_name"),
    ("3F000", "invalid_schema_name"),
    ("40001", "serialization_failure"),
    ("40P01", "deadlock_detected"),
    ("42501", "insufficient_privilege"),
    ("42601", "syntax_error"),
    ("42702", "ambiguous_column"),
    ("42703", "undefined_column"),
    ("42710", "duplicate_object"),
    ("42804", "datatype_mismatch"),
    ("42883", "undefined_function"),
    ("42P01", "undefined_table"),
    ("42P07", "duplicate_table"),
    ("42P18", "indeterminate_datatype"),
    ("53100", "disk_full"),
    ("53200", "out_of_memory"),
    ("53300", "too_many_connections"),
    ("54000", "program_limit_exceeded"),
    ("55000", "object_not_in_prerequisite_state"),
    ("55006", "object_in_use"),
    ("55P03", "lock_not_available"),
    ("57014", "query_canceled"),
    ("57P01", "admin_shutdown"),
    ("57P03", "cannot_connect_now"),
    ("P0001", "raise_exception"),
    ("XX000", "internal_error"),
];

/// The condition name of `state` (`division_by_zero` for 22012), when it is a common one.
pub fn condition_name(state: SqlState) -> Option<&'static str> {
    CONDITIONS.binary_search_by(|(code, _)| code.cmp(&state.as_str())).ok().map(|i| CONDITIONS[i].1)
}

/// How the SQLSTATE reads in a title: `22012 (division_by_zero)`, or `SQLSTATE 22Z99` when its
/// name is not known here.
fn named(state: SqlState) -> String {
    match condition_name(state) {
        Some(name) => format!("{} ({name})", state.as_str()),
        None => format!("SQLSTATE {}", state.as_str()),
    }
}

/// What to do about errors of `state`.
pub fn explain(state: SqlState) -> &'static str {
    match state.as_str() {
        "23505" => {
            "Let the database resolve duplicates instead of inserting and catching the error: INSERT ... ON CONFLICT \
             (key columns) DO NOTHING, or DO UPDATE SET ... to upsert. Checking with a SELECT first does not help: \
             two sessions can both see no row and both insert."
        }
        "23503" => {
            "Rows reference rows that do not exist (yet): insert parents before children in the same transaction, \
             or delete children first (or use ON DELETE CASCADE where that is the intent)."
        }
        "23502" => "A required column gets NULL: validate input before sending it, or give the column a DEFAULT.",
        "40001" => {
            "Expected under SERIALIZABLE or REPEATABLE READ when transactions conflict: retry the whole transaction \
             in a loop (with a small random backoff and a retry limit). To make it rarer, keep those transactions \
             short and touch rows in a consistent order."
        }
        "40P01" => {
            "Two transactions lock the same rows in opposite orders: lock in a consistent order (e.g. by primary \
             key) and retry the victim transaction. See the deadlock advice for the statements on both sides."
        }
        "57014" => {
            "statement_timeout (or a client-side cancel) is stopping these statements: make the query faster (see \
             slow_query advice) or, for a job that legitimately runs long, raise the limit for it alone with SET \
             LOCAL statement_timeout inside its transaction."
        }
        "55P03" => {
            "lock_timeout or NOWAIT gave up waiting for a lock: find what holds it (lock_contention advice), or \
             use SKIP LOCKED for queue-style work."
        }
        "53300" => {
            "The server ran out of connection slots: use a connection pool with a bounded size below \
             max_connections, and make sure connections are returned and closed."
        }
        "25P02" => {
            "The application keeps sending statements after an error inside a transaction, and PostgreSQL \
             ignores them all until the end of the transaction block: ROLLBACK (or ROLLBACK TO SAVEPOINT) as soon \
             as a statement fails, and look for the first error of the transaction."
        }
        "42P01" | "42703" | "42883" => {
            "The SQL names an object the database does not have: the code and the schema are out of step (a \
             migration not run, or run against another database or search_path)."
        }
        "22P02" | "22001" | "22003" => {
            "Input values do not fit their columns: validate and convert them in the application before sending \
             them, and send them as typed bind parameters."
        }
        "22012" => {
            "A division by zero: guard the divisor in the SQL (NULLIF(divisor, 0) gives NULL instead of an error) \
             or check the value in the application before sending it."
        }
        _ => {
            "Look up the error message in the application's log (or the PostgreSQL log) for one of these \
             statements: the same failure repeating points to a bug or a missing check in the code path that \
             sends it."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sql: &str, error: Option<&str>, at: SystemTime) -> StatementEvent {
        StatementEvent { error: error.and_then(SqlState::parse), finished_at: at, ..StatementEvent::sample(sql) }
    }

    fn feed(w: &mut ErrorSpikeWatch, events: impl IntoIterator<Item = StatementEvent>) -> Vec<Finding> {
        events.into_iter().filter_map(|e| w.observe(&e, &ErrorSpikeConfig::default())).collect()
    }

    #[test]
    fn unique_violations_in_a_loop() {
        let t0 = SystemTime::now();
        let mut w = ErrorSpikeWatch::default();
        let found = feed(
            &mut w,
            (0..40).map(|i| event("insert into t(id) values (1)", Some("23505"), t0 + Duration::from_millis(i * 10))),
        );
        assert_eq!(found.len(), 3, "new at 10, updates at 20 and 40: {found:?}");
        let f = &found[0];
        assert_eq!((f.kind, f.occurrence, &*f.key), (Kind::ErrorSpike, Occurrence::New, "23505"));
        assert_eq!(f.evidence["errors_in_window"], 10);
        assert_eq!(f.evidence["condition"], "unique_violation");
        assert_eq!(f.evidence["statements"][0]["query"], "INSERT INTO t(id) VALUES ($1)");
        assert!(f.suggestion.contains("ON CONFLICT"));
        assert_eq!(f.severity, Severity::Critical, "every call failed");
        assert_eq!(found[2].evidence["errors_total"], 40);
        // After a quiet window, a new spike is a new occurrence.
        let later = t0 + Duration::from_secs(60);
        let again = feed(
            &mut w,
            (0..10).map(|i| event("insert into t(id) values (1)", Some("23505"), later + Duration::from_millis(i))),
        );
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].occurrence, Occurrence::New);
    }

    #[test]
    fn a_shape_failing_half_its_calls() {
        let t0 = SystemTime::now();
        let mut w = ErrorSpikeWatch::default();
        let events = (0..12).map(|i| {
            let error = (i % 2 == 0).then_some("40001");
            event("update acct set n = n + 1 where id = 7", error, t0 + Duration::from_millis(i * 10))
        });
        let found = feed(&mut w, events);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].evidence["sqlstate"], "40001");
        assert!(found[0].suggestion.contains("retry"));
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn occasional_errors_are_not_a_spike() {
        let t0 = SystemTime::now();
        let mut w = ErrorSpikeWatch::default();
        // One error every 2 s: never 10 in 10 s.
        let spread =
            (0..30).map(|i| event("insert into t(id) values (1)", Some("23505"), t0 + Duration::from_secs(i * 2)));
        assert!(feed(&mut w, spread).is_empty());
        // A few errors among many successful calls of the same shape.
        let mut w = ErrorSpikeWatch::default();
        let mostly_fine = (0..200).map(|i| {
            let error = (i % 25 == 0).then_some("23505");
            event("insert into u(id) values (1)", error, t0 + Duration::from_millis(i * 10))
        });
        assert!(feed(&mut w, mostly_fine).is_empty());
    }

    #[test]
    fn sqlstates_are_named_where_known() {
        assert!(CONDITIONS.windows(2).all(|w| w[0].0 < w[1].0), "sorted by code, for the binary search");
        let name = |s: &str| condition_name(SqlState::parse(s).unwrap());
        assert_eq!(name("22012"), Some("division_by_zero"));
        assert_eq!(name("42703"), Some("undefined_column"));
        assert_eq!(name("08006"), Some("connection_failure"));
        assert_eq!(name("XX000"), Some("internal_error"));
        assert_eq!(name("22Z99"), None);

        let t0 = SystemTime::now();
        let burst = |state: &'static str| {
            let mut w = ErrorSpikeWatch::default();
            feed(&mut w, (0..10).map(|i| event("select 1 / 0", Some(state), t0 + Duration::from_millis(i)))).remove(0)
        };
        let zero = burst("22012");
        assert_eq!(zero.title, "10 errors 22012 (division_by_zero) in 10 s");
        assert!(zero.message.contains("with SQLSTATE 22012 (division_by_zero) in the last"), "{}", zero.message);
        assert!(zero.suggestion.contains("NULLIF"), "{}", zero.suggestion);
        let unknown = burst("22Z99");
        assert_eq!(unknown.title, "10 errors SQLSTATE 22Z99 in 10 s");
        assert!(unknown.message.contains("with SQLSTATE 22Z99 in the last"), "{}", unknown.message);
        assert_eq!(unknown.evidence["condition"], serde_json::Value::Null);
    }
}
