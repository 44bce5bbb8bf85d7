//! Query fingerprints: constants become `$n`, constant lists collapse, whitespace, comments and
//! keyword case are normalised, and the normalised text hashes to 64 bits.
//!
//! Two queries share a fingerprint when they differ only in constants, parameter numbering,
//! the length of `IN (...)` / `ARRAY[...]` constant lists or of multi-row `VALUES` lists,
//! whitespace, comments, or the case of unquoted words.

use std::fmt;

use crate::keywords::is_keyword;
use crate::lexer::{Lexer, Token};

/// A 64-bit query fingerprint, shown as 16 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A fingerprint with the normalised text it was computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// The normalised SQL (`$1, $2 ...` for constants).
    pub text: String,
}

/// Fingerprints `sql` (one statement).
pub fn fingerprint(sql: &[u8]) -> Normalized {
    let mut f = Fingerprinter::default();
    let fingerprint = f.fingerprint(sql);
    Normalized { fingerprint, text: f.text().to_string() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// `IN (...)`: collapses when all constants.
    In,
    /// `ARRAY[...]`: collapses when all constants.
    Array,
    /// One row of a `VALUES` list: repeated rows of the same shape collapse into the first.
    ValuesRow,
    /// Any other parenthesis or bracket.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    kind: ListKind,
    /// Output length before the opening character.
    start: usize,
    /// Parameter counter at the opening.
    params: u32,
    /// Only constants, commas and casts seen inside so far.
    only_consts: bool,
    consts: u32,
    /// The previous token inside was `::`, so a type name may follow.
    after_cast: bool,
    /// The output length and parameter counter after the first row when this is the row after it.
    values_first: Option<(usize, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    Keyword(KeywordKind),
    Word,
    Operand,
    Open,
    Close,
    Comma,
    Dot,
    Cast,
    Operator,
    Semicolon,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeywordKind {
    In,
    Array,
    Values,
    Other,
}

/// Reusable fingerprinting state (buffers are kept between calls).
#[derive(Debug, Default)]
pub struct Fingerprinter {
    out: Vec<u8>,
    stack: Vec<Open>,
    params: u32,
    /// After a VALUES row closed at this depth: (depth, first row end, params after first row, shape hash).
    values: Option<ValuesRun>,
}

#[derive(Debug, Clone, Copy)]
struct ValuesRun {
    depth: usize,
    first_end: usize,
    first_params: u32,
    shape: u64,
    /// A comma followed the last row, so a `(` at `depth` starts another row.
    expecting_row: bool,
}

impl Fingerprinter {
    /// The normalised text of the last fingerprinted statement.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.out).unwrap_or("<invalid UTF-8>")
    }

    /// Fingerprints `sql`; the normalised text is then available from [`Fingerprinter::text`].
    pub fn fingerprint(&mut self, sql: &[u8]) -> Fingerprint {
        self.out.clear();
        self.stack.clear();
        self.params = 0;
        self.values = None;
        let mut prev = Prev::Start;
        for tok in Lexer::new(sql) {
            prev = self.push(sql, tok, prev);
        }
        while self.out.last() == Some(&b';') || self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        if std::str::from_utf8(&self.out).is_err() {
            let lossy = String::from_utf8_lossy(&self.out).into_owned();
            self.out = lossy.into_bytes();
        }
        Fingerprint(xxhash_rust::xxh3::xxh3_64(&self.out))
    }

    fn space_before(&mut self, prev: Prev, tight: bool) {
        let glue = matches!(prev, Prev::Start | Prev::Open | Prev::Dot | Prev::Cast);
        if !tight && !glue && !self.out.is_empty() {
            self.out.push(b' ');
        }
    }

    fn placeholder(&mut self, prev: Prev) {
        self.space_before(prev, false);
        self.params += 1;
        self.out.push(b'$');
        self.out.extend_from_slice(itoa(self.params).as_bytes());
    }

    fn note_inside(&mut self, tok: &Token) {
        let Some(top) = self.stack.last_mut() else { return };
        match tok {
            Token::Const | Token::Param => top.consts += 1,
            Token::Punct(b',') => {}
            Token::Cast => {
                top.after_cast = true;
                return;
            }
            Token::Word(..) | Token::QuotedIdent(..) if top.after_cast => {}
            _ => top.only_consts = false,
        }
        top.after_cast = false;
    }

    fn push(&mut self, src: &[u8], tok: Token, prev: Prev) -> Prev {
        if !matches!(tok, Token::Punct(b')') | Token::Punct(b']')) {
            self.note_inside(&tok);
        }
        let depth = self.stack.len();
        if let Some(run) = self.values.filter(|run| run.depth == depth) {
            let continues = match tok {
                Token::Punct(b',') => run.depth == depth && !run.expecting_row,
                Token::Punct(b'(') => run.depth == depth && run.expecting_row,
                _ => false,
            };
            if !continues {
                self.values = None;
            }
        }
        match tok {
            Token::Const | Token::Param => {
                self.placeholder(prev);
                Prev::Operand
            }
            Token::Word(s, e) => {
                let word = &src[s..e];
                self.space_before(prev, false);
                if is_keyword(word) {
                    self.out.extend(word.iter().map(u8::to_ascii_uppercase));
                    let kind = if word.eq_ignore_ascii_case(b"in") {
                        KeywordKind::In
                    } else if word.eq_ignore_ascii_case(b"array") {
                        KeywordKind::Array
                    } else if word.eq_ignore_ascii_case(b"values") {
                        KeywordKind::Values
                    } else {
                        KeywordKind::Other
                    };
                    Prev::Keyword(kind)
                } else {
                    self.out.extend(word.iter().map(u8::to_ascii_lowercase));
                    Prev::Word
                }
            }
            Token::QuotedIdent(s, e) => {
                self.space_before(prev, false);
                self.out.extend_from_slice(&src[s..e]);
                Prev::Operand
            }
            Token::Operator(s, e) => {
                self.space_before(prev, false);
                self.out.extend_from_slice(&src[s..e]);
                Prev::Operator
            }
            Token::Cast => {
                self.out.extend_from_slice(b"::");
                Prev::Cast
            }
            Token::Punct(b'.') => {
                self.out.push(b'.');
                Prev::Dot
            }
            Token::Punct(b',') => {
                self.out.push(b',');
                if let Some(run) = &mut self.values {
                    run.expecting_row = true;
                }
                Prev::Comma
            }
            Token::Punct(b';') => {
                self.out.push(b';');
                Prev::Semicolon
            }
            Token::Punct(open @ (b'(' | b'[')) => {
                let kind = match (open, prev) {
                    (b'(', Prev::Keyword(KeywordKind::In)) => ListKind::In,
                    (b'[', Prev::Keyword(KeywordKind::Array)) => ListKind::Array,
                    (b'(', Prev::Keyword(KeywordKind::Values)) => ListKind::ValuesRow,
                    (b'(', Prev::Comma) if self.values.is_some() => ListKind::ValuesRow,
                    _ => ListKind::Other,
                };
                let values_first = match (kind, self.values) {
                    (ListKind::ValuesRow, Some(run)) => Some((run.first_end, run.first_params)),
                    _ => None,
                };
                // Function calls and array subscripts hug their name; keywords keep a space.
                let tight = matches!(prev, Prev::Word | Prev::Operand | Prev::Close) || open == b'[';
                self.space_before(prev, tight);
                let start = self.out.len();
                self.out.push(open);
                self.stack.push(Open {
                    kind,
                    start,
                    params: self.params,
                    only_consts: true,
                    consts: 0,
                    after_cast: false,
                    values_first,
                });
                Prev::Open
            }
            Token::Punct(close @ (b')' | b']')) => {
                self.close(close);
                Prev::Close
            }
            Token::Punct(other) => {
                self.space_before(prev, other == b':');
                self.out.push(other);
                Prev::Operator
            }
        }
    }

    fn close(&mut self, close: u8) {
        let Some(open) = self.stack.pop() else {
            self.out.push(close);
            return;
        };
        let collapsible = matches!(open.kind, ListKind::In | ListKind::Array) && open.only_consts && open.consts > 0;
        if collapsible {
            self.out.truncate(open.start + 1);
            self.params = open.params + 1;
            self.out.push(b'$');
            self.out.extend_from_slice(itoa(self.params).as_bytes());
        }
        self.out.push(close);
        if let Some(parent) = self.stack.last_mut() {
            // A non-empty nested list (a subquery, a call) is not a constant.
            if open.consts > 0 || self.out.len() > open.start + 2 {
                parent.only_consts = false;
            }
            parent.after_cast = false;
        }
        if open.kind == ListKind::ValuesRow {
            let shape = row_shape(&self.out[open.start..]);
            match open.values_first {
                Some((first_end, first_params)) if self.values.is_some_and(|r| r.shape == shape) => {
                    // Same shape as the first row: drop ", (row)" and reuse its numbering.
                    self.out.truncate(first_end);
                    self.params = first_params;
                    if let Some(run) = &mut self.values {
                        run.expecting_row = false;
                    }
                }
                Some(_) => self.values = None,
                None => {
                    self.values = Some(ValuesRun {
                        depth: self.stack.len(),
                        first_end: self.out.len(),
                        first_params: self.params,
                        shape,
                        expecting_row: false,
                    })
                }
            }
        }
    }
}

/// Hash of a VALUES row's text with parameter numbers removed.
fn row_shape(row: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut after_dollar = false;
    for &b in row {
        if after_dollar && b.is_ascii_digit() {
            continue;
        }
        after_dollar = b == b'$';
        h.update(&[b]);
    }
    h.digest()
}

fn itoa(n: u32) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(sql: &str) -> String {
        fingerprint(sql.as_bytes()).text
    }

    fn same(a: &str, b: &str) {
        assert_eq!(
            fingerprint(a.as_bytes()).fingerprint,
            fingerprint(b.as_bytes()).fingerprint,
            "{a:?} vs {b:?}: {} | {}",
            norm(a),
            norm(b)
        );
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(
            fingerprint(a.as_bytes()).fingerprint,
            fingerprint(b.as_bytes()).fingerprint,
            "{a:?} vs {b:?}: {}",
            norm(a)
        );
    }

    #[test]
    fn normalised_text() {
        assert_eq!(
            norm("select  abalance from pgbench_accounts where aid = 42;"),
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
        );
        assert_eq!(
            norm("SELECT * FROM t WHERE id IN (1, 2, 3) AND x = 'a'"),
            "SELECT * FROM t WHERE id IN ($1) AND x = $2"
        );
        assert_eq!(
            norm("select count(*) from \"Users\" u where u.id = any(array[1,2])"),
            "SELECT count(*) FROM \"Users\" u WHERE u.id = ANY (ARRAY[$1])"
        );
        assert_eq!(
            norm("insert into t (a, b) values (1, 'x'), (2, 'y'), (3, 'z') returning id"),
            "INSERT INTO t(a, b) VALUES ($1, $2) RETURNING id"
        );
        assert_eq!(norm("select '5'::int, x::text[] from t"), "SELECT $1::int, x::text[] FROM t");
    }

    #[test]
    fn constants_do_not_matter() {
        same("SELECT * FROM users WHERE id = 1", "select * from USERS where id = 99 -- comment");
        same("SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = 'abc'");
        same("SELECT * FROM t WHERE a IN (1,2,3)", "SELECT * FROM t WHERE a IN ($1)");
        same("SELECT * FROM t WHERE a IN ('x')", "SELECT * FROM t /* c */ WHERE a IN ('y', E'z\\'', $$w$$)");
        same("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (2, 'b'), (3, 'c')");
        same("SELECT x - 1 FROM t", "SELECT x - 2 FROM t");
        same("SELECT * FROM t WHERE a = -5", "SELECT * FROM t WHERE a = 5");
        same("SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT 5 OFFSET 0");
        same("SET LOCAL statement_timeout = '5s'", "set local statement_timeout = '10s'");
        same("SELECT 1;", "SELECT 1");
    }

    #[test]
    fn structure_matters() {
        differ("SELECT * FROM users WHERE id = 1", "SELECT * FROM orders WHERE id = 1");
        differ("SELECT * FROM \"Users\"", "SELECT * FROM users");
        differ("SELECT * FROM t WHERE a = ANY($1)", "SELECT * FROM t WHERE a IN (1, 2)");
        differ("SELECT x::int FROM t", "SELECT x::bigint FROM t");
        differ("SELECT * FROM t WHERE a IN (SELECT b FROM u)", "SELECT * FROM t WHERE a IN (1)");
        differ("SELECT f(1, 2)", "SELECT f(1)");
        differ("INSERT INTO t VALUES (1, 2)", "INSERT INTO t VALUES (1, now())");
        differ("SELECT a FROM t WHERE a > 1", "SELECT a FROM t WHERE a < 1");
    }

    #[test]
    fn values_rows_of_another_shape_stay() {
        assert_eq!(norm("values (1, 2), (3, now())"), "VALUES ($1, $2), ($3, now())");
    }

    #[test]
    fn display_is_16_hex() {
        let f = fingerprint(b"select 1").fingerprint.to_string();
        assert_eq!(f.len(), 16);
        assert!(f.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
