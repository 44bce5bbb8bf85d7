//! The `callers` column of `pgvisor report`: who ran each query, from the tags `/api/queries`
//! counts per fingerprint (sqlcommenter, Marginalia and `key=value` comments, application_name;
//! docs/cli.md, "pgvisor report"). One cell per query, the top value of each key:
//! `route=/users/:id (4, +1 more), controller=users`. A tag every listed query ran with, with one
//! value, tells the queries apart no better than nothing: it is said once above the table.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Widest callers cell, in characters; the full lists are on `/api/queries`.
pub const WIDTH: usize = 50;

/// Keys that name the code that ran a statement come first, in this order; then the other keys
/// alphabetically; application_name (the client program, not the code path) last.
const FIRST_KEYS: [&str; 4] = ["route", "controller", "action", "job"];
const LAST_KEY: &str = "application_name";

/// One value of a tag key and the calls that ran with it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TagValue {
    /// The value, as decoded by pgvisor.
    pub value: String,
    /// Calls that ran with it.
    pub calls: u64,
}

/// Per tag key, its values by calls, most first (the `tags` of `/api/queries`).
pub type TagCounts = BTreeMap<String, Vec<TagValue>>;

/// The `key=value` pairs every one of `queries` (two or more) ran with, and with nothing else.
pub fn common(queries: &[&TagCounts]) -> Vec<(String, String)> {
    let [first, rest @ ..] = queries else { return Vec::new() };
    if rest.is_empty() {
        return Vec::new();
    }
    let only = |tags: &TagCounts, key: &str| match tags.get(key).map(Vec::as_slice) {
        Some([one]) => Some(one.value.clone()),
        _ => None,
    };
    let mut pairs: Vec<(String, String)> = first
        .keys()
        .filter_map(|key| {
            let value = only(first, key)?;
            rest.iter().all(|tags| only(tags, key).as_deref() == Some(&value)).then(|| (key.clone(), value))
        })
        .collect();
    pairs.sort_by(|a, b| key_rank(&a.0).cmp(&key_rank(&b.0)));
    pairs
}

/// The cell of one query that ran `calls` times, without the keys in `skip`, at most [`WIDTH`]
/// characters. A count in parentheses is there only when the value did not run every call.
pub fn cell(tags: &TagCounts, calls: u64, skip: &[(String, String)]) -> String {
    let mut keys: Vec<&String> = tags.keys().filter(|k| !skip.iter().any(|(s, _)| s == *k)).collect();
    keys.sort_by(|a, b| key_rank(a).cmp(&key_rank(b)));
    let parts: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            let values = &tags[key];
            let top = values.first()?;
            let mut notes = Vec::new();
            if top.calls < calls {
                notes.push(top.calls.to_string());
            }
            if values.len() > 1 {
                notes.push(format!("+{} more", values.len() - 1));
            }
            let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
            Some(format!("{key}={}{notes}", top.value))
        })
        .collect();
    cut(&printable(&parts.join(", ")), WIDTH)
}

/// Where `key` sorts in a cell.
fn key_rank(key: &str) -> (usize, &str) {
    match FIRST_KEYS.iter().position(|k| *k == key) {
        Some(i) => (i, ""),
        None if key == LAST_KEY => (FIRST_KEYS.len() + 1, ""),
        None => (FIRST_KEYS.len(), key),
    }
}

/// `text` with control characters (a terminal escape written into a SQL comment) shown as `?`.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// `text` cut to at most `width` characters, ending in `...` when cut.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let keep = width.saturating_sub(3);
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(json: serde_json::Value) -> TagCounts {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_top_value_per_key_code_keys_first_counts_only_when_partial() {
        let t = tags(serde_json::json!({
            "application_name": [{"value": "shop-web", "calls": 7}],
            "action": [{"value": "show", "calls": 6}, {"value": "index", "calls": 1}],
            "route": [{"value": "/users/:id", "calls": 4}, {"value": "/admin/users", "calls": 2}],
            "controller": [{"value": "users", "calls": 7}],
        }));
        assert_eq!(cell(&t, 7, &[]), "route=/users/:id (4, +1 more), controller=users...");
        let common = [("application_name".to_string(), "shop-web".to_string())];
        let narrow = tags(serde_json::json!({
            "application_name": [{"value": "shop-web", "calls": 3}],
            "controller": [{"value": "users", "calls": 3}],
        }));
        assert_eq!(cell(&narrow, 3, &common), "controller=users");
        assert_eq!(cell(&narrow, 3, &[]), "controller=users, application_name=shop-web");
        assert_eq!(cell(&TagCounts::new(), 3, &[]), "");
    }

    #[test]
    fn common_tags_are_single_valued_on_every_query() {
        let a = tags(serde_json::json!({
            "application_name": [{"value": "shop-web", "calls": 3}],
            "framework": [{"value": "django", "calls": 3}],
            "route": [{"value": "/a", "calls": 3}],
        }));
        let b = tags(serde_json::json!({
            "application_name": [{"value": "shop-web", "calls": 1}],
            "framework": [{"value": "django", "calls": 1}, {"value": "flask", "calls": 1}],
            "route": [{"value": "/b", "calls": 1}],
        }));
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(common(&[&a, &b]), vec![pair("application_name", "shop-web")]);
        assert_eq!(
            common(&[&a, &a]),
            vec![pair("route", "/a"), pair("framework", "django"), pair("application_name", "shop-web")]
        );
        assert!(common(&[&a]).is_empty(), "one query: its tags are its callers, not background");
        assert!(common(&[]).is_empty());
    }

    #[test]
    fn cells_are_cut_at_characters_and_escape_control_characters() {
        let t = tags(serde_json::json!({"route": [{"value": "/ünïcödé/\u{1b}[31m/".repeat(5), "calls": 1}]}));
        let shown = cell(&t, 1, &[]);
        assert_eq!(shown.chars().count(), WIDTH);
        assert!(shown.ends_with("...") && !shown.contains('\u{1b}'), "{shown}");
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "...");
    }
}
