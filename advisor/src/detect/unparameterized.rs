//! `unparameterized`: one query shape arriving as many different SQL texts through the simple
//! query protocol, the values written into the SQL as literals.
//!
//! Across all sessions (an application's pool spreads one code path over many connections): per
//! shape, the distinct literal sets seen within `--unparameterized-window` (default 60 s); at
//! `--unparameterized-min` (default 50) the advice fires, and it is updated each time the count
//! doubles. Literal sets are kept as 64-bit hashes, never as values.
//!
//! Sessions of pgbench (application_name `pgbench`) are not counted: `pgbench -M simple` writes
//! its `\set` variables into the SQL by design, and whoever runs a load test has no code to fix.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::advice::{Finding, Kind, Occurrence, Severity};
use crate::events::{Statement, StatementEvent};
use crate::fingerprint::Fingerprint;

/// Thresholds (`--unparameterized-min`, `--unparameterized-window`).
#[derive(Debug, Clone)]
pub struct UnparameterizedConfig {
    /// Distinct literal texts of one shape that make the advice.
    pub min_texts: usize,
    /// How long a text counts after it was last seen.
    pub window: Duration,
}

impl Default for UnparameterizedConfig {
    fn default() -> Self {
        Self { min_texts: 50, window: Duration::from_secs(60) }
    }
}

/// Most shapes tracked at once.
const MAX_SHAPES: usize = 2_000;
/// Most distinct texts remembered per shape.
const MAX_TEXTS: usize = 100_000;
/// How often a shape's old texts are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Shape {
    statement: Arc<Statement>,
    /// Hash of the literals -> last seen.
    texts: HashMap<u64, SystemTime>,
    swept: SystemTime,
    reported_at: usize,
    last_seen: SystemTime,
}

/// Distinct literal texts per shape.
#[derive(Debug, Default)]
pub struct UnparameterizedWatch {
    shapes: HashMap<Fingerprint, Shape>,
}

impl UnparameterizedWatch {
    /// Notes one finished statement; returns a finding when a shape crosses the threshold or
    /// doubles.
    pub fn observe(&mut self, e: &StatementEvent, config: &UnparameterizedConfig) -> Option<Finding> {
        let literals = e.literals?;
        // EXECUTE passes values to a statement the server already prepared: parameters, as SQL.
        if is_pgbench(&e.application_name) || e.statement.text.starts_with("EXECUTE ") {
            return None;
        }
        let (now, fp) = (e.finished_at, e.statement.fingerprint);
        if !self.shapes.contains_key(&fp) && self.shapes.len() >= MAX_SHAPES {
            self.shapes.retain(|_, s| now.duration_since(s.last_seen).unwrap_or_default() <= config.window);
            if self.shapes.len() >= MAX_SHAPES {
                self.shapes.clear();
            }
        }
        let shape = self.shapes.entry(fp).or_insert_with(|| Shape {
            statement: e.statement.clone(),
            texts: HashMap::new(),
            swept: now,
            reported_at: 0,
            last_seen: now,
        });
        shape.last_seen = now;
        if now.duration_since(shape.swept).unwrap_or_default() >= SWEEP_EVERY {
            shape.swept = now;
            shape.texts.retain(|_, seen| now.duration_since(*seen).unwrap_or_default() <= config.window);
            if shape.texts.is_empty() {
                shape.reported_at = 0;
            }
        }
        if shape.texts.len() < MAX_TEXTS || shape.texts.contains_key(&literals) {
            shape.texts.insert(literals, now);
        }
        let distinct = shape.texts.len();
        let occurrence = match shape.reported_at {
            0 if distinct >= config.min_texts => Occurrence::New,
            n if n > 0 && distinct >= n * 2 => Occurrence::Update,
            _ => return None,
        };
        shape.reported_at = distinct;
        Some(finding(&shape.statement, distinct, config, occurrence))
    }
}

/// True for pgbench's sessions: it names itself `pgbench` unless told otherwise.
fn is_pgbench(application_name: &str) -> bool {
    application_name.eq_ignore_ascii_case("pgbench")
}

fn finding(statement: &Statement, distinct: usize, config: &UnparameterizedConfig, occurrence: Occurrence) -> Finding {
    let window_s = config.window.as_secs_f64();
    Finding {
        kind: Kind::Unparameterized,
        key: statement.fingerprint.to_string(),
        occurrence,
        severity: Severity::Warning,
        title: format!("Values written into the SQL: {distinct} different texts of one query"),
        message: format!(
            "`{}` arrived as {distinct} different SQL texts within {window_s:.0} s, through the simple query protocol \
             with the values written into the SQL as literals. PostgreSQL parses and plans every text from scratch \
             (no prepared plan can be reused), and SQL assembled from values is how SQL injection happens.",
            statement.text
        ),
        suggestion: "Send the values as bind parameters, separately from the SQL: placeholders with the driver's \
                     parameter API (`$1` in node-postgres and Go's pgx, `?` in a JDBC PreparedStatement, `%s` with \
                     psycopg 3), never string formatting. If the code already passes parameters and this still shows, \
                     the driver interpolates them on the client (psycopg2, PDO with emulated prepares, ActiveRecord \
                     with prepared_statements: false): the values are escaped, but every call is still parsed and \
                     planned anew; switch to server-side binding (psycopg 3, PDO::ATTR_EMULATE_PREPARES => false, \
                     prepared_statements: true)."
            .into(),
        fingerprints: vec![statement.fingerprint],
        evidence: json!({
            "query": statement.text.to_string(),
            "distinct_texts": distinct,
            "window_s": window_s,
            "protocol": "simple",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sql: &str, literals: Option<u64>, at: SystemTime) -> StatementEvent {
        StatementEvent { rows: 1, finished_at: at, literals, ..StatementEvent::sample(sql) }
    }

    #[test]
    fn many_literal_texts_of_one_shape() {
        let (t0, config) = (SystemTime::now(), UnparameterizedConfig::default());
        let mut w = UnparameterizedWatch::default();
        let found: Vec<Finding> = (0..100u64)
            .filter_map(|i| w.observe(&event("select * from users where id = 1", Some(i), t0), &config))
            .collect();
        assert_eq!(found.len(), 2, "new at 50, update at 100");
        assert_eq!((found[0].kind, found[0].occurrence), (Kind::Unparameterized, Occurrence::New));
        assert_eq!(found[0].evidence["distinct_texts"], 50);
        assert_eq!(found[0].evidence["query"], "SELECT * FROM users WHERE id = $1");
        assert_eq!(found[1].occurrence, Occurrence::Update);
    }

    #[test]
    fn parameters_few_texts_or_texts_spread_out_are_fine() {
        let (t0, config) = (SystemTime::now(), UnparameterizedConfig::default());
        let mut w = UnparameterizedWatch::default();
        // Extended protocol with parameters: no literals.
        for _ in 0..200 {
            assert!(w.observe(&event("select * from users where id = $1", None, t0), &config).is_none());
        }
        // The same few texts again and again.
        for i in 0..200u64 {
            assert!(w.observe(&event("select * from orders where id = 1", Some(i % 5), t0), &config).is_none());
        }
        // One new text every 2 s: never 50 within 60 s.
        for i in 0..100u64 {
            let at = t0 + Duration::from_secs(i * 2);
            assert!(w.observe(&event("select * from items where id = 1", Some(i), at), &config).is_none());
        }
    }

    #[test]
    fn execute_of_prepared_statements_is_not_counted() {
        let (t0, config) = (SystemTime::now(), UnparameterizedConfig::default());
        let mut w = UnparameterizedWatch::default();
        // Every PREPAREd statement's EXECUTE shares one fingerprint: none is a literal text.
        let found = (0..200u64).filter(|i| {
            let sql = format!("execute q{}({i}, 'x')", i % 7);
            w.observe(&event(&sql, Some(*i), t0), &config).is_some()
        });
        assert_eq!(found.count(), 0);
        // The detector does run: a literal query is still counted.
        let literal = (0..50u64).filter_map(|i| w.observe(&event("select * from t where a = 1", Some(i), t0), &config));
        assert_eq!(literal.count(), 1);
    }

    #[test]
    fn pgbench_interpolating_its_variables_is_not_counted() {
        let (t0, config) = (SystemTime::now(), UnparameterizedConfig::default());
        let mut w = UnparameterizedWatch::default();
        let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 4242";
        let pgbench = |i: u64| StatementEvent { application_name: "pgbench".into(), ..event(sql, Some(i), t0) };
        assert!((0..500u64).all(|i| w.observe(&pgbench(i), &config).is_none()));
        let app = (0..50u64).filter_map(|i| w.observe(&event(sql, Some(i), t0), &config)).count();
        assert_eq!(app, 1, "the same texts from an application are");
    }
}
