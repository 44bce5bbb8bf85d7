//! Which findings the user switched off: kinds disabled and fingerprints ignored (the config
//! file's `[advice]` table, or `--disable-advice` / `--ignore-fingerprints`).

use std::collections::HashSet;

use super::{Finding, Kind};
use crate::fingerprint::Fingerprint;

/// Findings to drop before they reach the [`super::AdviceBook`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdviceFilter {
    /// Kinds switched off.
    pub disabled: HashSet<Kind>,
    /// A finding involving any of these fingerprints is dropped.
    pub ignored: HashSet<Fingerprint>,
}

impl AdviceFilter {
    /// True when `finding` should be recorded.
    pub fn allows(&self, finding: &Finding) -> bool {
        !self.disabled.contains(&finding.kind) && !finding.fingerprints.iter().any(|f| self.ignored.contains(f))
    }
}

/// Parses 16 hex digits (as the API shows a fingerprint).
pub fn parse_fingerprint(s: &str) -> Option<Fingerprint> {
    let s = s.trim();
    (s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
        .map(Fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::{Occurrence, Severity};

    fn finding(kind: Kind, fingerprints: Vec<Fingerprint>) -> Finding {
        Finding {
            kind,
            key: "k".into(),
            occurrence: Occurrence::New,
            severity: Severity::Info,
            title: String::new(),
            message: String::new(),
            suggestion: String::new(),
            fingerprints,
            evidence: serde_json::Value::Null,
        }
    }

    #[test]
    fn drops_disabled_kinds_and_ignored_fingerprints() {
        let fp = parse_fingerprint("52867f37ae911b51").unwrap();
        assert_eq!(fp.to_string(), "52867f37ae911b51");
        assert_eq!(parse_fingerprint("52867F37AE911B51"), Some(fp));
        assert_eq!(parse_fingerprint("52867f37ae911b5"), None);
        assert_eq!(parse_fingerprint("52867f37ae911b5g"), None);
        assert_eq!(parse_fingerprint("+2867f37ae911b51"), None);
        let filter = AdviceFilter { disabled: [Kind::SelectStar].into(), ignored: [fp].into() };
        assert!(!filter.allows(&finding(Kind::SelectStar, vec![])));
        assert!(!filter.allows(&finding(Kind::NPlusOne, vec![Fingerprint(1), fp])));
        assert!(filter.allows(&finding(Kind::NPlusOne, vec![Fingerprint(1)])));
        assert!(AdviceFilter::default().allows(&finding(Kind::SelectStar, vec![fp])));
    }
}
