//! Reading what a normalised statement touches: its first table, the column a parameter is
//! compared with, and the statement rewritten to take all values at once.

/// The statement's verb, upper-cased (`SELECT`, `UPDATE`...).
pub fn verb(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or_default()
}

/// True for a statement that only reads (SELECT, or WITH ... SELECT without writes).
pub fn is_read(text: &str) -> bool {
    match verb(text) {
        "SELECT" | "VALUES" | "TABLE" => true,
        "WITH" => !["INSERT INTO", "UPDATE ", "DELETE FROM"].iter().any(|w| text.contains(w)),
        _ => false,
    }
}

/// The tables a statement names after FROM, JOIN, UPDATE or INTO, unquoted, without schema.
pub fn tables(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    for pair in words.windows(2) {
        if matches!(pair[0], "FROM" | "JOIN" | "UPDATE" | "INTO") {
            let name = bare_name(pair[1]);
            if !name.is_empty() && !name.starts_with('(') && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// `"public"."Users"` -> `Users`; `app.users(` -> `users`.
pub fn bare_name(qualified: &str) -> String {
    let base = qualified.split('(').next().unwrap_or_default().trim_end_matches([',', ';', ')']);
    let last = base.rsplit('.').next().unwrap_or_default();
    last.trim_matches('"').to_string()
}

/// The column compared with parameter `$n` in `<column> = $n`, e.g. `orders.user_id`.
pub fn column_for_param(text: &str, n: usize) -> Option<String> {
    let needle = format!(" = ${n}");
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(&needle).map(|p| p + from) {
        let end = pos + needle.len();
        if bytes.get(end).is_some_and(u8::is_ascii_digit) {
            from = end;
            continue;
        }
        let before = &text[..pos];
        let start = before.rfind(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '"'))).map_or(0, |i| i + 1);
        let column = &before[start..];
        return (!column.is_empty()).then(|| column.to_string());
    }
    None
}

/// The statement with `<column> = $n` replaced by `<column> = ANY($n)`: one execution with an
/// array of all the values replaces one execution per value.
pub fn batched(text: &str, n: usize) -> Option<String> {
    let column = column_for_param(text, n)?;
    let from = format!("{column} = ${n}");
    let pos = text.find(&from)?;
    let end = pos + from.len();
    Some(format!("{}{column} = ANY(${n}){}", &text[..pos], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_and_columns() {
        let t = "SELECT orders.id, orders.total FROM orders WHERE orders.user_id = $1 AND orders.state = $12";
        assert!(is_read(t));
        assert!(!is_read("UPDATE t SET a = $1"));
        assert_eq!(tables(t), vec!["orders"]);
        assert_eq!(tables("SELECT * FROM \"public\".\"Post\" JOIN users u ON u.id = x"), vec!["Post", "users"]);
        assert_eq!(column_for_param(t, 1).as_deref(), Some("orders.user_id"));
        assert_eq!(column_for_param(t, 12).as_deref(), Some("orders.state"));
        assert_eq!(column_for_param(t, 2), None);
        assert_eq!(
            batched(t, 1).as_deref(),
            Some("SELECT orders.id, orders.total FROM orders WHERE orders.user_id = ANY($1) AND orders.state = $12")
        );
        assert_eq!(bare_name("\"blog_post\".\"author_id\""), "author_id");
    }
}
