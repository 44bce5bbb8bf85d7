//! Who ran the statement a finding is about, in its evidence: the tags frameworks wrote
//! (route, controller, test...) and links to the traces of the last few occurrences.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Finding;
use crate::model::Caller;
use crate::tags::TRACE_KEYS;

/// Trace ids kept per finding.
const TRACES_PER_FINDING: usize = 5;
/// Findings whose trace ids are remembered.
const MAX_FINDINGS: usize = 1_000;

/// Per finding key, the trace ids of its latest occurrences.
#[derive(Debug, Default)]
pub struct CallerLinks {
    traces: HashMap<String, VecDeque<Arc<str>>>,
}

impl CallerLinks {
    /// Adds `caller`'s tags to `finding`'s evidence (`"tags"`, `"trace_ids"`) and names the
    /// caller in its message.
    pub fn describe(&mut self, finding: &mut Finding, caller: &Caller) {
        let Some(tags) = caller.tags.as_deref() else { return };
        let named: Map<String, Value> = tags
            .0
            .iter()
            .filter(|(k, _)| !TRACE_KEYS.contains(&&**k))
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        let trace_ids = tags.trace_id().map(|id| {
            if !self.traces.contains_key(&finding.key) && self.traces.len() >= MAX_FINDINGS {
                self.traces.clear();
            }
            let ids = self.traces.entry(finding.key.clone()).or_default();
            if !ids.iter().any(|known| &**known == id) {
                if ids.len() >= TRACES_PER_FINDING {
                    ids.pop_front();
                }
                ids.push_back(id.into());
            }
            ids.iter().map(|id| Value::String(id.to_string())).collect::<Vec<_>>()
        });
        if !named.is_empty() {
            let list: Vec<String> =
                named.iter().map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or_default())).collect();
            finding.message.push_str(&format!(" The statement was tagged {}.", list.join(", ")));
        }
        let Some(evidence) = finding.evidence.as_object_mut() else { return };
        if !named.is_empty() {
            evidence.insert("tags".into(), Value::Object(named));
        }
        if let Some(ids) = trace_ids {
            evidence.insert("trace_ids".into(), Value::Array(ids));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advice::{Kind, Occurrence, Severity};

    #[test]
    fn tags_go_to_the_evidence_and_traces_are_links() {
        let mut links = CallerLinks::default();
        let finding = || Finding {
            kind: Kind::NPlusOne,
            key: "a:b".into(),
            occurrence: Occurrence::New,
            severity: Severity::Warning,
            title: "t".into(),
            message: "m.".into(),
            suggestion: "s".into(),
            fingerprints: Vec::new(),
            evidence: serde_json::json!({"children": 5}),
        };
        for trace in ["5bd66ef5095369c7b0d1f8f4bd33716a", "6bd66ef5095369c7b0d1f8f4bd33716a"] {
            let sql = format!(
                "select 1 /*controller='users',route='%2Fusers',traceparent='00-{trace}-c532cb4098ac3dd2-01'*/"
            );
            let caller =
                Caller { tags: Some(Arc::new(crate::tags::parse(sql.as_bytes()))), application_name: "shop".into() };
            let mut f = finding();
            links.describe(&mut f, &caller);
            assert_eq!(f.evidence["tags"], serde_json::json!({"controller": "users", "route": "/users"}));
            assert!(f.message.ends_with("The statement was tagged controller users, route /users."), "{}", f.message);
            if trace.starts_with('6') {
                assert_eq!(f.evidence["trace_ids"].as_array().unwrap().len(), 2);
            }
        }
        let mut untagged = finding();
        links.describe(&mut untagged, &Caller::default());
        assert_eq!(untagged.evidence, serde_json::json!({"children": 5}));
    }
}
