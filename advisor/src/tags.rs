//! Attribution tags that frameworks write into SQL comments: sqlcommenter
//! (`/*action='show',route='%2Fusers%2F%3Aid'*/`, used by Rails 7.1, Django/SQLAlchemy/Flask,
//! Spring, Knex, Sequelize, Prisma and OpenTelemetry), Marginalia
//! (`/*application:Blog,controller:posts,action:index*/`) and plain `key=value` comments.
//!
//! Tags never change a statement's fingerprint or display text; they say who ran it.

use std::sync::Arc;

/// Most tags read from one statement.
pub const MAX_TAGS: usize = 16;
/// Longest tag key kept, in bytes.
pub const MAX_KEY: usize = 64;
/// Longest tag value kept, in bytes (longer values are cut at a character boundary).
pub const MAX_VALUE: usize = 256;
/// Keys that link to a trace rather than name a caller: kept in advice evidence, never counted
/// per fingerprint (every request has its own).
pub const TRACE_KEYS: [&str; 2] = ["traceparent", "tracestate"];

/// The tags of one statement, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(pub Vec<(Arc<str>, Arc<str>)>);

impl Tags {
    /// The value of `key`, if tagged.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// True when no tag was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The trace id of a W3C `traceparent` tag (`00-<trace id>-<span id>-<flags>`).
    pub fn trace_id(&self) -> Option<&str> {
        let parent = self.get("traceparent")?;
        let id = parent.split('-').nth(1)?;
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }
}

/// The tags in the comments of `sql` (raw statement text), wherever the comments sit.
pub fn parse(sql: &[u8]) -> Tags {
    let mut tags = Tags::default();
    // Most statements carry no comment at all: skip the scan.
    let starts_comment = |i: usize| matches!(sql.get(i..i + 2), Some(b"/*" | b"--"));
    if !memchr::memchr2_iter(b'/', b'-', sql).any(starts_comment) {
        return tags;
    }
    for comment in comments(sql) {
        if tags.0.len() >= MAX_TAGS {
            break;
        }
        let Ok(text) = std::str::from_utf8(comment) else { continue };
        read_comment(text.trim(), &mut tags);
    }
    tags
}

/// The bodies of the comments of `sql`, outside strings, quoted identifiers and dollar quotes.
fn comments(sql: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < sql.len() {
        match sql[i] {
            b'\'' => {
                let escapes = i > 0 && matches!(sql[i - 1], b'e' | b'E');
                i = skip_quoted(sql, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(sql, i, b'"', false),
            b'$' => i = skip_dollar_quote(sql, i),
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                let start = i + 2;
                let end = sql[start..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(sql.len(), |p| start + p);
                out.push(&sql[start..end]);
                i = end;
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                // Block comments nest in PostgreSQL.
                let start = i + 2;
                let mut depth = 1usize;
                let mut j = start;
                while j < sql.len() && depth > 0 {
                    if sql[j..].starts_with(b"/*") {
                        depth += 1;
                        j += 2;
                    } else if sql[j..].starts_with(b"*/") {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                let end = if depth == 0 { j - 2 } else { sql.len() };
                out.push(&sql[start..end]);
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// The index just past the quoted run that opens at `start`.
fn skip_quoted(sql: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < sql.len() {
        match sql[i] {
            b'\\' if escapes => i += 2,
            b if b == quote && sql.get(i + 1) == Some(&quote) => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    sql.len()
}

/// At `$`: past a dollar-quoted string when one opens here, else past the `$`.
fn skip_dollar_quote(sql: &[u8], start: usize) -> usize {
    let tag_end = sql[start + 1..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80))
        .map(|p| start + 1 + p);
    let Some(tag_end) = tag_end.filter(|&e| sql[e] == b'$') else { return start + 1 };
    if sql.get(start + 1).is_some_and(u8::is_ascii_digit) {
        return start + 1; // `$1` is a parameter
    }
    let tag = &sql[start..=tag_end];
    let body = tag_end + 1;
    match sql[body..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => body + p + tag.len(),
        None => sql.len(),
    }
}

/// Reads one comment's `key='value'`, `key:value` or `key=value` pairs into `tags`. A comment
/// that is prose (any pair without a separator) gives nothing.
fn read_comment(text: &str, tags: &mut Tags) {
    let pairs: Vec<&str> = split_pairs(text);
    let mut found = Vec::new();
    for pair in pairs {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((key, value)) = split_pair(pair) else { return };
        let key = url_decode(key.trim());
        let value = url_decode(unquote(value.trim()));
        if !is_key(&key) || value.is_empty() {
            return;
        }
        found.push((key, value));
    }
    for (key, value) in found {
        if tags.0.len() >= MAX_TAGS {
            return;
        }
        if tags.get(&key).is_none() {
            tags.0.push((key.into(), cut(&value, MAX_VALUE).into()));
        }
    }
}

/// Splits at commas outside single quotes (sqlcommenter values are quoted, Marginalia's are not);
/// a comment with no comma is split at spaces (`key=value key2=value2`).
fn split_pairs(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    if out.len() == 1 && !text.contains('\'') {
        return text.split_whitespace().collect();
    }
    out
}

/// `key='v'`, `key=v` or `key:v`.
fn split_pair(pair: &str) -> Option<(&str, &str)> {
    let at = pair.find(['=', ':'])?;
    Some((pair.get(..at)?, pair.get(at + 1..)?))
}

fn unquote(value: &str) -> &str {
    value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(value)
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY
        && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.starts_with(|c: char| c.is_ascii_digit())
}

/// Percent-decoding (sqlcommenter URL-encodes values); invalid escapes stay as written.
fn url_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Most tag keys counted per fingerprint.
pub const MAX_KEYS: usize = 8;
/// Most values counted per key of a fingerprint.
pub const MAX_VALUES: usize = 10;

/// The values of one tag key with their calls.
type ValueCounts = Vec<(Arc<str>, u64)>;

/// Who ran a fingerprint: per tag key, the values seen with their calls, bounded. A value that
/// no longer fits is counted in `cut`, never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagCounts {
    keys: Vec<(Arc<str>, ValueCounts)>,
    cut: u64,
}

impl TagCounts {
    /// Counts one call with `tags` (trace links excluded) and the session's `application_name`.
    pub fn add(&mut self, tags: Option<&Tags>, application_name: &Arc<str>) {
        if !application_name.is_empty() {
            self.count("application_name", application_name);
        }
        for (key, value) in tags.map(|t| t.0.as_slice()).unwrap_or_default() {
            if !TRACE_KEYS.contains(&&**key) {
                self.count(key, value);
            }
        }
    }

    fn count(&mut self, key: &str, value: &Arc<str>) {
        let values = match self.keys.iter().position(|(k, _)| &**k == key) {
            Some(i) => &mut self.keys[i].1,
            None if self.keys.len() < MAX_KEYS => {
                self.keys.push((key.into(), Vec::new()));
                &mut self.keys.last_mut().expect("just pushed").1
            }
            None => {
                self.cut += 1;
                return;
            }
        };
        // The same Arc most of the time (a session's application_name): no bytes compared.
        if let Some((_, calls)) = values.iter_mut().find(|(v, _)| Arc::ptr_eq(v, value) || v == value) {
            *calls += 1;
        } else if values.len() < MAX_VALUES {
            values.push((value.clone(), 1));
        } else {
            self.cut += 1;
        }
    }

    /// True when `key` was seen with `value`.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.keys.iter().any(|(k, values)| &**k == key && values.iter().any(|(v, _)| &**v == value))
    }

    /// Tag values that did not fit the bounds, counted.
    pub fn cut(&self) -> u64 {
        self.cut
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Per key, the values by calls, most first: `{"route": [{"value": "/users/:id", "calls": 120}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (key, values) in &self.keys {
            let mut values: Vec<&(Arc<str>, u64)> = values.iter().collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let list = values.iter().map(|(v, calls)| serde_json::json!({"value": &**v, "calls": calls})).collect();
            out.insert(key.to_string(), serde_json::Value::Array(list));
        }
        serde_json::Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(sql: &str) -> Vec<(String, String)> {
        parse(sql.as_bytes()).0.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn sqlcommenter_values_are_url_decoded() {
        let sql = "SELECT * FROM users WHERE id = $1 /*action='show',controller='users',\
                   route='%2Fusers%2F%3Aid',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/";
        let tags = parse(sql.as_bytes());
        assert_eq!(tags.get("route"), Some("/users/:id"));
        assert_eq!(tags.get("controller"), Some("users"));
        assert_eq!(tags.trace_id(), Some("5bd66ef5095369c7b0d1f8f4bd33716a"));
        // A comma inside a quoted value is part of it.
        assert_eq!(
            pairs("select 1 /*db_driver='psycopg2%3A2.9',framework='django%3A4.2,x'*/")[1],
            p("framework", "django:4.2,x")
        );
    }

    #[test]
    fn marginalia_at_the_start_or_end_and_plain_key_value() {
        assert_eq!(
            pairs("/*application:Blog,controller:posts,action:index*/ SELECT * FROM posts"),
            vec![p("application", "Blog"), p("controller", "posts"), p("action", "index")]
        );
        assert_eq!(
            pairs("select 1 -- test=tests/test_orders.py::test_list"),
            vec![p("test", "tests/test_orders.py::test_list")]
        );
        assert_eq!(pairs("select 1 /* job=nightly worker=3 */"), vec![p("job", "nightly"), p("worker", "3")]);
    }

    #[test]
    fn prose_strings_and_identifiers_are_not_tags() {
        assert!(parse(b"select 1 /* this is a note: ok */").is_empty());
        assert!(parse(b"select '/*a=b*/', \"--c=d\", $$ /*e=f*/ $$").is_empty());
        assert!(parse(b"select E'\\' /*a=b*/'").is_empty());
        assert!(parse(b"select 1").is_empty());
        assert_eq!(pairs("select $1 /*a=b*/"), vec![p("a", "b")]);
    }

    #[test]
    fn counts_per_fingerprint_are_bounded_and_skip_trace_links() {
        let mut counts = TagCounts::default();
        let app: Arc<str> = "shop".into();
        for i in 0..30 {
            let sql = format!(
                "select 1 /*route='%2Fu%2F{}',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
                i % 12
            );
            counts.add(Some(&parse(sql.as_bytes())), &app);
        }
        let json = counts.to_json();
        assert_eq!(json["application_name"], serde_json::json!([{"value": "shop", "calls": 30}]));
        assert_eq!(json["route"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(json["route"][0], serde_json::json!({"value": "/u/0", "calls": 3}));
        assert!(json.get("traceparent").is_none());
        assert_eq!(counts.cut(), 4, "two values that did not fit, twice each");
        assert!(counts.has("route", "/u/1") && !counts.has("route", "/u/11"));
    }

    #[test]
    fn bounded() {
        let many: Vec<String> = (0..40).map(|i| format!("k{i}='v'")).collect();
        assert_eq!(parse(format!("select 1 /*{}*/", many.join(",")).as_bytes()).0.len(), MAX_TAGS);
        let long = "é".repeat(400);
        let tags = parse(format!("select 1 /*k='{long}'*/").as_bytes());
        assert!(tags.get("k").unwrap().len() <= MAX_VALUE);
    }
}
