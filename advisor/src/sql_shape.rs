//! Reading what a normalised statement touches: its first table, the column a parameter is
//! compared with, and the statement rewritten to take all values at once.

/// The statement's verb, upper-cased (`SELECT`, `UPDATE`...).
pub fn verb(text: &str) -> &str {
    // Runs for every statement: ASCII text (nearly all) is read as bytes, where an ASCII
    // byte is always a char boundary; a non-ASCII byte before the verb's end leaves it to
    // `split_whitespace`, which also splits at Unicode spaces.
    let blank = |b: u8| b.is_ascii() && char::from(b).is_whitespace();
    let bytes = text.as_bytes();
    let start = bytes.iter().position(|&b| !blank(b)).unwrap_or(bytes.len());
    match bytes[start..].iter().position(|&b| blank(b) || !b.is_ascii()) {
        Some(len) if bytes[start + len].is_ascii() => &text[start..start + len],
        None => &text[start..],
        Some(_) => text.split_whitespace().next().unwrap_or_default(),
    }
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

/// True when the statement names a table (as [`tables`] would find one), without allocating:
/// it runs for every statement.
pub fn has_table(text: &str) -> bool {
    let mut words = text.split_ascii_whitespace().peekable();
    while let Some(w) = words.next() {
        if matches!(w, "FROM" | "JOIN" | "UPDATE" | "INTO") {
            if let Some(next) = words.peek() {
                let name = next.split('(').next().unwrap_or_default();
                if !name.is_empty() {
                    return true;
                }
            }
        }
    }
    false
}

/// `"public"."Users"` -> `Users`; `app.users(` -> `users`.
pub fn bare_name(qualified: &str) -> String {
    let base = qualified.split('(').next().unwrap_or_default().trim_end_matches([',', ';', ')']);
    let last = base.rsplit('.').next().unwrap_or_default();
    last.trim_matches('"').to_string()
}

/// A character of a (qualified) column name; like scan.l's `ident_cont`, every non-ASCII
/// character is one.
fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || !c.is_ascii() || matches!(c, '_' | '.' | '"')
}

/// Where `<column> = $n` or `$n = <column>` (SQLAlchemy writes the latter) appears: the byte
/// range of the whole comparison and the column, e.g. `orders.user_id`.
fn comparison(text: &str, n: usize) -> Option<(usize, usize, String)> {
    let param = format!("${n}");
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(pos) = text[from..].find(&param).map(|p| p + from) {
        let end = pos + param.len();
        from = end;
        if bytes.get(end).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        if let Some(before) = text[..pos].strip_suffix(" = ") {
            // Just past the last character that is not part of the column (it may be multi-byte).
            let start =
                before.char_indices().rev().find(|&(_, c)| !is_ident_char(c)).map_or(0, |(i, c)| i + c.len_utf8());
            if start < before.len() {
                return Some((start, end, before[start..].to_string()));
            }
        }
        if let Some(after) = text[end..].strip_prefix(" = ") {
            let len = after.find(|c: char| !is_ident_char(c)).unwrap_or(after.len());
            if len > 0 && !after.starts_with('$') {
                return Some((pos, end + 3 + len, after[..len].to_string()));
            }
        }
    }
    None
}

/// The column compared with parameter `$n` (`<column> = $n` or `$n = <column>`).
pub fn column_for_param(text: &str, n: usize) -> Option<String> {
    comparison(text, n).map(|(_, _, column)| column)
}

/// The statement with that comparison written as `<column> = ANY($n)`: one execution with an
/// array of all the values replaces one execution per value.
pub fn batched(text: &str, n: usize) -> Option<String> {
    let (start, end, column) = comparison(text, n)?;
    Some(format!("{}{column} = ANY(${n}){}", &text[..start], &text[end..]))
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
        assert!(has_table(t) && !has_table("SELECT $1") && !has_table("SELECT * FROM (VALUES ($1)) v"));
        assert_eq!(tables("SELECT * FROM \"public\".\"Post\" JOIN users u ON u.id = x"), vec!["Post", "users"]);
        assert_eq!(column_for_param(t, 1).as_deref(), Some("orders.user_id"));
        assert_eq!(column_for_param(t, 12).as_deref(), Some("orders.state"));
        assert_eq!(column_for_param(t, 2), None);
        assert_eq!(
            batched(t, 1).as_deref(),
            Some("SELECT orders.id, orders.total FROM orders WHERE orders.user_id = ANY($1) AND orders.state = $12")
        );
        assert_eq!(bare_name("\"blog_post\".\"author_id\""), "author_id");
        // Non-ASCII characters belong to identifiers, as in PostgreSQL.
        assert_eq!(column_for_param("SELECT id FROM ptab WHERE w€ = $1", 1).as_deref(), Some("w€"));
        assert_eq!(column_for_param("SELECT id FROM t WHERE (€ü = $1)", 1).as_deref(), Some("€ü"));
        assert_eq!(column_for_param("SELECT id FROM t WHERE $1 = t.ü€ AND", 1).as_deref(), Some("t.ü€"));
        assert_eq!(
            batched("SELECT id FROM t WHERE 日本 = $1", 1).as_deref(),
            Some("SELECT id FROM t WHERE 日本 = ANY($1)")
        );
        let sqla = "SELECT addresses.id FROM addresses WHERE $1 = addresses.user_id ORDER BY addresses.id";
        assert_eq!(column_for_param(sqla, 1).as_deref(), Some("addresses.user_id"));
        assert_eq!(
            batched(sqla, 1).as_deref(),
            Some("SELECT addresses.id FROM addresses WHERE addresses.user_id = ANY($1) ORDER BY addresses.id")
        );
    }
}
