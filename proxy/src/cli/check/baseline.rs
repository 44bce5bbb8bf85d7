//! pgvisor-baseline.json: what a project accepts today, committed next to its tests. Per scope,
//! the calls of each fingerprint and the findings known to exist. Written sorted (scopes by name,
//! queries by fingerprint, advice by kind and key) so that its diffs read well in review.
//!
//! Read by hand rather than through serde's derive: a mistake in a hand-edited file is reported
//! with its place, `pgvisor-baseline.json: scopes["t1"].queries[0].calls: expected a number`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::report::Report;

/// The baseline's conventional file name.
pub const BASELINE_FILE: &str = "pgvisor-baseline.json";
/// The format version this pgvisor writes and reads.
pub const BASELINE_VERSION: u64 = 1;

/// The accepted state of a test suite.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Baseline {
    /// Format version ([`BASELINE_VERSION`]).
    pub pgvisor_baseline: u64,
    /// Per scope, by name.
    pub scopes: BTreeMap<String, BaselineScope>,
}

/// One scope's accepted query counts and findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BaselineScope {
    /// Calls per fingerprint, sorted by fingerprint.
    pub queries: Vec<BaselineQuery>,
    /// Known findings, sorted by kind and key.
    pub advice: Vec<BaselineAdvice>,
}

/// A fingerprint's accepted calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineQuery {
    /// 16 hex digits.
    pub fingerprint: String,
    /// Calls in the scope.
    pub calls: u64,
    /// Display text, for the reader (not compared).
    pub query: String,
}

/// A known finding: tolerated wherever it appears again (same kind and key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineAdvice {
    /// Kind.
    pub kind: String,
    /// Merge key within the kind.
    pub key: String,
    /// Severity when accepted (for the reader).
    pub severity: String,
    /// Title when accepted (for the reader).
    pub title: String,
    /// Fingerprints involved (for `n_plus_one`: the parent when proven, then the repeated query).
    pub fingerprints: Vec<String>,
}

/// A baseline that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file does not exist.
    #[error("{file}: no such file; create it with --update-baseline")]
    Missing {
        /// The file.
        file: String,
    },
    /// The file could not be read or written.
    #[error("cannot {what} {file}: {source}")]
    Io {
        /// read or write.
        what: &'static str,
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not valid JSON: {reason}")]
    Syntax {
        /// The file.
        file: String,
        /// serde_json's message, with line and column.
        reason: String,
    },
    /// A field is missing or has the wrong type.
    #[error("{file}: {path}: {reason}")]
    Field {
        /// The file.
        file: String,
        /// Where, e.g. `scopes["t1"].queries[0].calls`.
        path: String,
        /// What was expected and what was found.
        reason: String,
    },
}

/// A field's place and what is wrong with it.
type FieldError = (String, String);

impl Baseline {
    /// The baseline that accepts `report` as it is.
    pub fn from_report(report: &Report) -> Self {
        let scopes = report
            .scopes
            .iter()
            .map(|(name, scope)| {
                let mut queries: Vec<BaselineQuery> = scope
                    .queries
                    .iter()
                    .map(|q| BaselineQuery {
                        fingerprint: q.fingerprint.clone(),
                        calls: q.calls,
                        query: q.query.clone(),
                    })
                    .collect();
                queries.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
                let mut advice: Vec<BaselineAdvice> = scope
                    .advice
                    .iter()
                    .map(|a| BaselineAdvice {
                        kind: a.kind.clone(),
                        key: a.key.clone(),
                        severity: a.severity.clone(),
                        title: a.title.clone(),
                        fingerprints: a.fingerprints.clone(),
                    })
                    .collect();
                advice.sort_by(|a, b| (&a.kind, &a.key).cmp(&(&b.kind, &b.key)));
                advice.dedup_by(|a, b| a.kind == b.kind && a.key == b.key);
                (name.clone(), BaselineScope { queries, advice })
            })
            .collect();
        Self { pgvisor_baseline: BASELINE_VERSION, scopes }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BaselineError::Missing { file }),
            Err(source) => return Err(BaselineError::Io { what: "read", file, source }),
        };
        Self::parse(&text).map_err(|e| match e {
            ParseError::Syntax(reason) => BaselineError::Syntax { file, reason },
            ParseError::Field((path, reason)) => BaselineError::Field { file: file.clone(), path, reason },
        })
    }

    /// Writes the baseline as sorted, pretty JSON with a final newline.
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        let mut json = serde_json::to_string_pretty(self).expect("a baseline serializes");
        json.push('\n');
        std::fs::write(path, json).map_err(|source| BaselineError::Io {
            what: "write",
            file: path.display().to_string(),
            source,
        })
    }

    /// Known findings over all scopes.
    pub fn finding_count(&self) -> usize {
        self.scopes.values().map(|s| s.advice.len()).sum()
    }

    /// The repeated queries of the N+1s the baseline knows.
    pub fn n_plus_one_children(&self) -> impl Iterator<Item = &str> {
        self.scopes
            .values()
            .flat_map(|s| &s.advice)
            .filter(|a| a.kind == "n_plus_one")
            .filter_map(|a| a.fingerprints.last().map(String::as_str))
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let root: Value = serde_json::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let root = object(&root, "the file")?;
        let version = field(root, "", "pgvisor_baseline").and_then(|v| number(v, "pgvisor_baseline"))?;
        if version != BASELINE_VERSION {
            return Err(ParseError::Field((
                "pgvisor_baseline".into(),
                format!("version {version}; this pgvisor reads version {BASELINE_VERSION}"),
            )));
        }
        let mut scopes = BTreeMap::new();
        for (name, scope) in object(field(root, "", "scopes")?, "scopes")? {
            let at = format!("scopes[{}]", Value::String(name.clone()));
            scopes.insert(name.clone(), parse_scope(scope, &at)?);
        }
        Ok(Self { pgvisor_baseline: version, scopes })
    }
}

enum ParseError {
    Syntax(String),
    Field(FieldError),
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        ParseError::Field(e)
    }
}

fn parse_scope(value: &Value, at: &str) -> Result<BaselineScope, FieldError> {
    let scope = object(value, at)?;
    let mut out = BaselineScope::default();
    for (i, q) in optional_array(scope, at, "queries")?.iter().enumerate() {
        let at = format!("{at}.queries[{i}]");
        let q = object(q, &at)?;
        out.queries.push(BaselineQuery {
            fingerprint: fingerprint(field(q, &at, "fingerprint")?, &format!("{at}.fingerprint"))?,
            calls: number(field(q, &at, "calls")?, &format!("{at}.calls"))?,
            query: optional_string(q, &at, "query")?,
        });
    }
    for (i, a) in optional_array(scope, at, "advice")?.iter().enumerate() {
        let at = format!("{at}.advice[{i}]");
        let a = object(a, &at)?;
        let mut fingerprints = Vec::new();
        for (j, fp) in optional_array(a, &at, "fingerprints")?.iter().enumerate() {
            fingerprints.push(fingerprint(fp, &format!("{at}.fingerprints[{j}]"))?);
        }
        out.advice.push(BaselineAdvice {
            kind: string(field(a, &at, "kind")?, &format!("{at}.kind"))?,
            key: string(field(a, &at, "key")?, &format!("{at}.key"))?,
            severity: optional_string(a, &at, "severity")?,
            title: optional_string(a, &at, "title")?,
            fingerprints,
        });
    }
    Ok(out)
}

/// What a value is, for messages: JSON for scalars (cut), the type for containers.
fn shown(value: &Value) -> String {
    match value {
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        scalar => super::shorten(&scalar.to_string(), 40),
    }
}

fn joined(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_string()
    } else {
        format!("{at}.{name}")
    }
}

fn field<'v>(object: &'v Map<String, Value>, at: &str, name: &str) -> Result<&'v Value, FieldError> {
    object.get(name).ok_or_else(|| (joined(at, name), "missing".to_string()))
}

fn object<'v>(value: &'v Value, at: &str) -> Result<&'v Map<String, Value>, FieldError> {
    value.as_object().ok_or_else(|| (at.to_string(), format!("expected an object, got {}", shown(value))))
}

fn optional_array<'v>(object: &'v Map<String, Value>, at: &str, name: &str) -> Result<&'v [Value], FieldError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err((joined(at, name), format!("expected an array, got {}", shown(other)))),
    }
}

fn number(value: &Value, at: &str) -> Result<u64, FieldError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| (at.to_string(), format!("expected a whole number of at least 0, got {}", shown(value)))),
        other => Err((at.to_string(), format!("expected a number, got {}", shown(other)))),
    }
}

fn string(value: &Value, at: &str) -> Result<String, FieldError> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| (at.to_string(), format!("expected a string, got {}", shown(value))))
}

fn optional_string(object: &Map<String, Value>, at: &str, name: &str) -> Result<String, FieldError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(value) => string(value, &joined(at, name)),
    }
}

fn fingerprint(value: &Value, at: &str) -> Result<String, FieldError> {
    let text = string(value, at)?;
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err((at.to_string(), format!("expected 16 hex digits, got {}", shown(value))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BASELINE_FILE);
        std::fs::write(&path, text).unwrap();
        let e = Baseline::load(&path).unwrap_err().to_string();
        e.replace(&dir.path().display().to_string(), "DIR")
    }

    #[test]
    fn mistakes_name_the_file_and_the_field() {
        let good = r#"{"pgvisor_baseline": 1, "scopes": {"t1": {"queries": [{"fingerprint": "00000000000000aa", "calls": 3}]}}}"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(&path, good).unwrap();
        let loaded = Baseline::load(&path).unwrap();
        assert_eq!(loaded.scopes["t1"].queries[0].calls, 3);

        let f = "DIR/pgvisor-baseline.json";
        assert_eq!(
            error(&good.replace("\"calls\": 3", "\"calls\": \"3\"")),
            format!("{f}: scopes[\"t1\"].queries[0].calls: expected a number, got \"3\"")
        );
        assert_eq!(
            error(&good.replace("\"calls\": 3", "\"calls\": -1")),
            format!("{f}: scopes[\"t1\"].queries[0].calls: expected a whole number of at least 0, got -1")
        );
        assert_eq!(
            error(&good.replace("00000000000000aa", "xyz")),
            format!("{f}: scopes[\"t1\"].queries[0].fingerprint: expected 16 hex digits, got \"xyz\"")
        );
        assert_eq!(
            error(&good.replace(", \"calls\": 3", "")),
            format!("{f}: scopes[\"t1\"].queries[0].calls: missing")
        );
        assert_eq!(
            error(r#"{"pgvisor_baseline": 2, "scopes": {}}"#),
            format!("{f}: pgvisor_baseline: version 2; this pgvisor reads version 1")
        );
        assert_eq!(error(r#"{"scopes": {}}"#), format!("{f}: pgvisor_baseline: missing"));
        assert_eq!(
            error(r#"{"pgvisor_baseline": 1, "scopes": {"t\"1": {"advice": [{"kind": 5}]}}}"#),
            format!("{f}: scopes[\"t\\\"1\"].advice[0].kind: expected a string, got 5")
        );
        assert!(error("{").starts_with(&format!("{f}: not valid JSON: EOF while parsing")), "{}", error("{"));
        let missing = Baseline::load(&dir.path().join("nope.json")).unwrap_err().to_string();
        assert!(missing.ends_with("nope.json: no such file; create it with --update-baseline"), "{missing}");
    }

    #[test]
    fn written_baselines_read_back_sorted() {
        let mut report: Report = serde_json::from_value(serde_json::json!({
            "pgvisor_report": 1,
            "scopes": {
                "b": {"statements": 3, "queries": [
                    {"fingerprint": "00000000000000bb", "query": "SELECT 2", "calls": 2},
                    {"fingerprint": "00000000000000aa", "query": "SELECT 1", "calls": 1}
                ], "advice": [
                    {"kind": "select_star", "key": "k2", "severity": "info"},
                    {"kind": "n_plus_one", "key": "k1", "severity": "warning", "fingerprints": ["00000000000000aa", "00000000000000bb"]}
                ]},
                "a": {"statements": 0, "queries": []}
            }
        }))
        .unwrap();
        report.check = None;
        let baseline = Baseline::from_report(&report);
        assert_eq!(baseline.scopes["b"].queries[0].fingerprint, "00000000000000aa");
        assert_eq!(baseline.scopes["b"].advice[0].kind, "n_plus_one");
        assert_eq!(baseline.n_plus_one_children().collect::<Vec<_>>(), vec!["00000000000000bb"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(BASELINE_FILE);
        baseline.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap(), "scopes sorted:\n{text}");
        assert!(text.ends_with("}\n"));
        assert_eq!(Baseline::load(&path).unwrap(), baseline);
    }
}
