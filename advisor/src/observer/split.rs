//! A simple Query's statements: most Query messages hold one plain statement (`pgbench -M
//! simple`, an ORM without server-side parameters), which a byte scan can prove without the
//! lexer pass of [`split_statements`].

use crate::lexer::split_statements;

/// The statements of a Query's text, as [`split_statements`] finds them.
pub(super) fn statements(sql: &[u8]) -> Vec<&[u8]> {
    match one_plain_statement(sql) {
        Some(statement) => vec![statement],
        None => split_statements(sql),
    }
}

/// `sql` as one statement, when a byte scan shows the lexer would find exactly that: it starts
/// with a word, holds no quote, dollar, comment or bracket that could hide or nest a `;`, no
/// `CREATE` (whose function bodies may hold one), and at most one `;`, at the end.
fn one_plain_statement(sql: &[u8]) -> Option<&[u8]> {
    let start = sql.iter().position(|b| !b.is_ascii_whitespace())?;
    if !sql[start].is_ascii_alphabetic() || sql[start..].get(..6).is_some_and(|w| w.eq_ignore_ascii_case(b"create")) {
        return None;
    }
    let mut end = sql.len();
    let mut previous = 0u8;
    for (i, &b) in sql.iter().enumerate().skip(start) {
        match b {
            b'\'' | b'"' | b'$' | b'(' | b')' | b'[' | b']' | b'\\' | 0 => return None,
            b'-' if previous == b'-' => return None,
            b'*' if previous == b'/' => return None,
            b';' if end == sql.len() => end = i,
            b';' => return None,
            _ if end < sql.len() && !b.is_ascii_whitespace() => return None,
            _ => {}
        }
        previous = b;
    }
    Some(&sql[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_plain_statement_or_the_lexer() {
        let sql = b"SELECT abalance FROM pgbench_accounts WHERE aid = 12;\n";
        assert_eq!(one_plain_statement(sql), Some(&sql[..sql.len() - 2]));
        assert_eq!(one_plain_statement(b"  select 1"), Some(&b"  select 1"[..]));
        for other in [
            &b"select 1; select 2"[..],
            b"select ';'",
            b"select 1 -- ;",
            b"select (1;",
            b"create function f() begin atomic select 1; end",
            b"; select 1",
            b"/* x */ select 1;",
            b"select 1;;",
            b"",
        ] {
            assert_eq!(one_plain_statement(other), None, "{}", String::from_utf8_lossy(other));
            assert_eq!(statements(other), split_statements(other));
        }
    }

    fn sql_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"SELECT"[..]),
            Just(&b" "[..]),
            Just(&b";"[..]),
            Just(&b"\n"[..]),
            Just(&b"a"[..]),
            Just(&b"1"[..]),
            Just(&b"-"[..]),
            Just(&b"/"[..]),
            Just(&b"*"[..]),
            Just(&b"'"[..]),
            Just(&b"("[..]),
            Just(&b"create"[..]),
            Just(&b"begin"[..]),
            Just(&b"end"[..]),
            Just("é".as_bytes()),
            Just(&b"\x0b"[..]),
        ];
        prop_oneof![
            proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat()),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #[test]
        fn the_byte_scan_agrees_with_the_lexer(sql in sql_like()) {
            prop_assert_eq!(statements(&sql), split_statements(&sql));
        }
    }
}
