//! A PostgreSQL-aware SQL lexer (scan.l, simplified): enough to tell constants, parameters,
//! identifiers, keywords, operators and punctuation apart, never to parse.

use crate::keywords::{lookup, lookup_lower, Known};

/// One lexical token, as a byte range of the source where it has text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// A literal constant: string (any quoting), number, bit string; its source range.
    Const(usize, usize),
    /// A `$n` parameter.
    Param,
    /// An unquoted identifier.
    Word(usize, usize),
    /// An unquoted keyword (see [`crate::keywords`]).
    Keyword(usize, usize),
    /// A double-quoted identifier, quotes included.
    QuotedIdent(usize, usize),
    /// An operator such as `=`, `<>`, `->>`, `@>`.
    Operator(usize, usize),
    /// `::`.
    Cast,
    /// One of `( ) [ ] , ; . :`.
    Punct(u8),
}

/// Iterates the tokens of `sql`, skipping whitespace and comments.
#[derive(Clone)]
pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    /// True when the previous token can end an operand (so a following `-` is binary).
    after_operand: bool,
    /// Byte offset where the last token returned starts.
    start: usize,
    /// Highest `$n` parameter number seen so far (saturating).
    max_param: u32,
    /// The table id of the last word returned ([`Known::NONE`] for other tokens).
    known: Known,
}

const OP_CHARS: &[u8] = b"+-*/<>=~!@#%^&|`?";

/// Byte classes, looked up once per byte instead of comparing against each member.
const IDENT_START: u8 = 1;
const IDENT_CONT: u8 = 2;
const OP_CHAR: u8 = 4;
const SPACE: u8 = 8;
/// What a quoted identifier holds when it means the same unquoted: `[a-z0-9_]`.
const PLAIN: u8 = 16;

static CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            t[b] |= IDENT_START | IDENT_CONT;
        }
        if c.is_ascii_digit() || c == b'$' {
            t[b] |= IDENT_CONT;
        }
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' {
            t[b] |= PLAIN;
        }
        // scan.l's whitespace: space, \t, \n, \r, \v, \f.
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c') {
            t[b] |= SPACE;
        }
        b += 1;
    }
    let mut k = 0;
    while k < OP_CHARS.len() {
        t[OP_CHARS[k] as usize] |= OP_CHAR;
        k += 1;
    }
    t
};

#[inline]
fn is_ident_start(b: u8) -> bool {
    CLASSES[usize::from(b)] & IDENT_START != 0
}

/// True for a byte that continues an identifier: letters, digits, `_`, `$`, non-ASCII.
#[inline]
pub(crate) fn is_ident_cont(b: u8) -> bool {
    CLASSES[usize::from(b)] & IDENT_CONT != 0
}

/// True for scan.l's whitespace: space, tab, newline, carriage return, vertical tab, form feed.
#[inline]
pub(crate) fn is_space(b: u8) -> bool {
    CLASSES[usize::from(b)] & SPACE != 0
}

#[inline]
fn is_op_char(b: u8) -> bool {
    CLASSES[usize::from(b)] & OP_CHAR != 0
}

/// The length of the run of `[a-z0-9_]` bytes that starts `bytes`: what a quoted identifier
/// holds when it means the same unquoted. Eight bytes at a time (the common name fits in one or
/// two steps), then one at a time for the tail.
#[inline(always)]
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte of `t` (7 bits, so no sum carries into the next byte): high bit set when `t >= n`.
    let at_least = |t: u64, n: u8| t.wrapping_add(ONES * u64::from(0x80 - n));
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let t = x & !HIGH;
        let lower = at_least(t, b'a') & !at_least(t, b'z' + 1);
        let digit = at_least(t, b'0') & !at_least(t, b'9' + 1);
        let underscore = !at_least(t ^ (ONES * u64::from(b'_')), 1);
        let outside = !(lower | digit | underscore) & HIGH | x & HIGH;
        if outside != 0 {
            return i + (outside.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes[i..].iter().position(|&b| CLASSES[usize::from(b)] & PLAIN == 0).unwrap_or(bytes.len() - i)
}

impl<'a> Lexer<'a> {
    /// A lexer over `src`.
    pub fn new(src: &'a [u8]) -> Self {
        Self { src, pos: 0, after_operand: false, start: 0, max_param: 0, known: Known::NONE }
    }

    /// The byte offset of the next unread byte.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The byte offset where the last token returned starts; it ends at [`Lexer::pos`].
    pub fn token_start(&self) -> usize {
        self.start
    }

    /// For a word ([`Token::Word`] or [`Token::Keyword`]) just returned: its id in the table of
    /// [`crate::keywords`], [`Known::NONE`] when it is not there or the token is not a word.
    pub fn known(&self) -> Known {
        self.known
    }

    /// The highest `$n` parameter number among the tokens returned so far (0 when none).
    pub fn max_param(&self) -> u32 {
        self.max_param
    }

    fn peek(&self, ahead: usize) -> u8 {
        self.src.get(self.pos + ahead).copied().unwrap_or(0)
    }

    #[inline]
    fn skip_space_and_comments(&mut self) {
        loop {
            let b = self.peek(0);
            if is_space(b) {
                self.pos += 1;
                continue;
            }
            match b {
                b'-' if self.peek(1) == b'-' => {
                    // scan.l: a comment runs to the end of the line, `non_newline [^\n\r]`.
                    while self.pos < self.src.len() && !matches!(self.src[self.pos], b'\n' | b'\r') {
                        self.pos += 1;
                    }
                }
                b'/' if self.peek(1) == b'*' => {
                    // Block comments nest in PostgreSQL.
                    let mut depth = 0usize;
                    while self.pos < self.src.len() {
                        if self.peek(0) == b'/' && self.peek(1) == b'*' {
                            depth += 1;
                            self.pos += 2;
                        } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                            depth -= 1;
                            self.pos += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            self.pos += 1;
                        }
                    }
                    self.pos = self.pos.min(self.src.len());
                }
                _ => return,
            }
        }
    }

    /// Skips a quoted run opened at `self.pos` by `quote`; doubled quotes escape, and with
    /// `backslash` a backslash escapes the next byte (E'' strings).
    fn skip_quoted(&mut self, quote: u8, backslash: bool) {
        let src = self.src;
        let mut i = self.pos + 1;
        while let Some(&b) = src.get(i) {
            if !backslash {
                // Most of a quoted run is plain bytes: find the next quote in one sweep.
                match src.get(i..).and_then(|rest| rest.iter().position(|&c| c == quote)) {
                    Some(k) => i += k,
                    None => break,
                }
            }
            let b = if backslash { b } else { quote };
            if b == quote {
                if src.get(i + 1) == Some(&quote) {
                    i += 2;
                    continue;
                }
                self.pos = i + 1;
                return;
            }
            i += if backslash && b == b'\\' { 2 } else { 1 };
        }
        self.pos = src.len();
    }

    /// At `"`: reads a quoted identifier that means the same unquoted (`"users"`, the common
    /// case from ORMs) in one sweep and notes it as [`Known::PLAIN_QUOTED`]; false, having read
    /// nothing, for any other.
    #[inline(always)]
    fn plain_quoted(&mut self) -> bool {
        let src = self.src;
        let first = self.pos + 1;
        let rest = src.get(first..).unwrap_or_default();
        let i = first + plain_run(rest);
        let closed = src.get(i) == Some(&b'"') && src.get(i + 1) != Some(&b'"');
        let leads = src.get(first).is_some_and(|&b| b.is_ascii_lowercase() || b == b'_');
        if !(closed && leads) || lookup_lower(&src[first..i]).is_keyword() {
            return false;
        }
        self.pos = i + 1;
        self.known = Known::PLAIN_QUOTED;
        true
    }

    /// At `$`: a dollar-quoted string (`$$...$$`, `$tag$...$tag$`) if the tag closes.
    fn try_dollar_quote(&mut self) -> bool {
        let start = self.pos;
        let mut end = start + 1;
        if end < self.src.len() && is_ident_start(self.src[end]) {
            while end < self.src.len() && is_ident_cont(self.src[end]) && self.src[end] != b'$' {
                end += 1;
            }
        }
        if self.src.get(end) != Some(&b'$') {
            return false;
        }
        let tag = &self.src[start..=end];
        let body = end + 1;
        self.pos = match self.src[body..].windows(tag.len()).position(|w| w == tag) {
            Some(i) => body + i + tag.len(),
            None => self.src.len(),
        };
        true
    }

    /// After a `U&'...'` string: an optional `UESCAPE 'c'` clause belongs to the constant.
    fn skip_uescape(&mut self) {
        let save = self.pos;
        self.skip_space_and_comments();
        let word = self.src.get(self.pos..self.pos + 7);
        if word.is_some_and(|w| w.eq_ignore_ascii_case(b"uescape")) && !is_ident_cont(self.peek(7)) {
            self.pos += 7;
            self.skip_space_and_comments();
            if self.peek(0) == b'\'' {
                self.skip_quoted(b'\'', false);
                return;
            }
        }
        self.pos = save;
    }

    fn number(&mut self) {
        let digits = |lx: &mut Self| {
            while lx.peek(0).is_ascii_alphanumeric() || lx.peek(0) == b'_' {
                lx.pos += 1;
            }
        };
        if self.peek(0) == b'0' && matches!(self.peek(1), b'x' | b'X' | b'o' | b'O' | b'b' | b'B') {
            self.pos += 2;
            digits(self);
            return;
        }
        while self.peek(0).is_ascii_digit() || self.peek(0) == b'_' {
            self.pos += 1;
        }
        // `1..5` is not a decimal point (array slice `a[1:5]` uses ':', but ranges appear in text).
        if self.peek(0) == b'.' && self.peek(1) != b'.' {
            self.pos += 1;
            while self.peek(0).is_ascii_digit() || self.peek(0) == b'_' {
                self.pos += 1;
            }
        }
        if matches!(self.peek(0), b'e' | b'E')
            && (self.peek(1).is_ascii_digit() || (matches!(self.peek(1), b'+' | b'-') && self.peek(2).is_ascii_digit()))
        {
            self.pos += 2;
            while self.peek(0).is_ascii_digit() {
                self.pos += 1;
            }
        }
    }

    fn operator(&mut self) -> (usize, usize) {
        let start = self.pos;
        let mut end = start;
        while end < self.src.len() && is_op_char(self.src[end]) {
            // A comment start ends the operator (scan.l).
            if end > start && matches!(&self.src[end..], [b'-', b'-', ..] | [b'/', b'*', ..]) {
                break;
            }
            end += 1;
        }
        // An operator may only end in + or - if it holds one of ~ ! @ # % ^ & | ` ? (scan.l),
        // so `=-1` is `=` then `-1`.
        if end - start > 1 && !self.src[start..end].iter().any(|b| b"~!@#%^&|`?".contains(b)) {
            while end - start > 1 && matches!(self.src[end - 1], b'+' | b'-') {
                end -= 1;
            }
        }
        self.pos = end;
        (start, end)
    }

    #[inline(always)]
    fn next_token(&mut self) -> Option<Token> {
        self.skip_space_and_comments();
        let b = *self.src.get(self.pos)?;
        let next = self.peek(1);
        let start = self.pos;
        self.start = start;
        self.known = Known::NONE;
        let tok = match b {
            b'\'' => {
                self.skip_quoted(b'\'', false);
                Token::Const(start, self.pos)
            }
            b'e' | b'E' if next == b'\'' => {
                self.pos += 1;
                self.skip_quoted(b'\'', true);
                Token::Const(start, self.pos)
            }
            b'b' | b'B' | b'x' | b'X' | b'n' | b'N' if next == b'\'' => {
                self.pos += 1;
                self.skip_quoted(b'\'', false);
                Token::Const(start, self.pos)
            }
            b'u' | b'U' if next == b'&' && self.peek(2) == b'\'' => {
                self.pos += 2;
                self.skip_quoted(b'\'', false);
                self.skip_uescape();
                Token::Const(start, self.pos)
            }
            b'u' | b'U' if next == b'&' && self.peek(2) == b'"' => {
                let start = self.pos;
                self.pos += 2;
                self.skip_quoted(b'"', false);
                Token::QuotedIdent(start, self.pos)
            }
            b'"' => {
                let start = self.pos;
                if !self.plain_quoted() {
                    self.skip_quoted(b'"', false);
                }
                Token::QuotedIdent(start, self.pos)
            }
            b'$' if next.is_ascii_digit() => {
                self.pos += 1;
                let mut n = 0u32;
                while self.peek(0).is_ascii_digit() {
                    n = n.saturating_mul(10).saturating_add(u32::from(self.peek(0) - b'0'));
                    self.pos += 1;
                }
                self.max_param = self.max_param.max(n);
                Token::Param
            }
            b'$' if self.try_dollar_quote() => Token::Const(start, self.pos),
            b'0'..=b'9' => {
                self.number();
                Token::Const(start, self.pos)
            }
            b'.' if next.is_ascii_digit() => {
                self.number();
                Token::Const(start, self.pos)
            }
            b'-' | b'+'
                if !self.after_operand
                    && (next.is_ascii_digit() || (next == b'.' && self.peek(2).is_ascii_digit())) =>
            {
                self.pos += 1;
                self.number();
                Token::Const(start, self.pos)
            }
            b':' if next == b':' => {
                self.pos += 2;
                Token::Cast
            }
            b':' if next == b'=' => {
                // `:=` names a function argument, as `=>` does (scan.l's COLON_EQUALS).
                self.pos += 2;
                Token::Operator(start, self.pos)
            }
            b'(' | b')' | b'[' | b']' | b',' | b';' | b'.' | b':' => {
                self.pos += 1;
                Token::Punct(b)
            }
            b if is_ident_start(b) => {
                let start = self.pos;
                while self.pos < self.src.len() && is_ident_cont(self.src[self.pos]) {
                    self.pos += 1;
                }
                self.known = lookup(&self.src[start..self.pos]);
                if self.known.is_keyword() {
                    Token::Keyword(start, self.pos)
                } else {
                    Token::Word(start, self.pos)
                }
            }
            b if is_op_char(b) => {
                let (s, e) = self.operator();
                Token::Operator(s, e)
            }
            _ => {
                // A byte no token starts with: keep it as one-byte punctuation.
                self.pos += 1;
                Token::Punct(b)
            }
        };
        self.after_operand = matches!(
            tok,
            Token::Const(..)
                | Token::Param
                | Token::QuotedIdent(..)
                | Token::Word(..)
                | Token::Punct(b')')
                | Token::Punct(b']')
        );
        Some(tok)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    #[inline]
    fn next(&mut self) -> Option<Token> {
        self.next_token()
    }
}

/// Splits a simple-query string into its statements (top-level `;`), skipping empty ones.
pub fn split_statements(sql: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut lexer = Lexer::new(sql);
    let mut depth = 0usize;
    let mut start = 0;
    let mut has_tokens = false;
    let mut body = FunctionBody::default();
    let mut after_dot = false;
    while let Some(tok) = lexer.next() {
        match tok {
            Token::Punct(b'(') | Token::Punct(b'[') => depth += 1,
            Token::Punct(b')') | Token::Punct(b']') => depth = depth.saturating_sub(1),
            Token::Punct(b';') if depth == 0 && body.depth == 0 => {
                if has_tokens {
                    out.push(&sql[start..lexer.pos() - 1]);
                }
                start = lexer.pos();
                has_tokens = false;
                body = FunctionBody::default();
                after_dot = false;
                continue;
            }
            // A word after `.` is a column or field name (`x.begin`), never a keyword.
            Token::Word(s, e) | Token::Keyword(s, e) => body.word(&sql[s..e], depth == 0 && !after_dot),
            _ => {}
        }
        after_dot = tok == Token::Punct(b'.');
        has_tokens = true;
    }
    if has_tokens {
        out.push(&sql[start..]);
    }
    out
}

/// psql's heuristic for SQL-standard function bodies (psqlscan.l), whose semicolons do not end
/// the statement: in a statement that starts with CREATE [OR REPLACE] FUNCTION|PROCEDURE, at
/// parenthesis depth 0, BEGIN opens a block, CASE inside one opens another, and END closes one.
#[derive(Debug, Default)]
struct FunctionBody {
    /// Words of the statement so far.
    words: usize,
    /// Per leading word: its first letter when it is create, or, replace, function or procedure.
    head: [u8; 4],
    /// Blocks open.
    depth: usize,
}

impl FunctionBody {
    /// Notes the next word; `counts` is false where it cannot be a keyword of the body.
    fn word(&mut self, w: &[u8], counts: bool) {
        let is = |k: &[u8]| w.eq_ignore_ascii_case(k);
        if let Some(slot) = self.head.get_mut(self.words) {
            if ["create", "or", "replace", "function", "procedure"].iter().any(|k| is(k.as_bytes())) {
                *slot = w[0].to_ascii_lowercase();
            }
        }
        self.words = self.words.saturating_add(1);
        let routine = matches!(self.head, [b'c', b'f' | b'p', ..] | [b'c', b'o', b'r', b'f' | b'p']);
        if !routine || !counts {
            return;
        }
        if is(b"begin") || (is(b"case") && self.depth > 0) {
            self.depth += 1;
        } else if is(b"end") {
            self.depth = self.depth.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<String> {
        let src = sql.as_bytes();
        Lexer::new(src)
            .map(|t| match t {
                Token::Const(..) => "C".to_string(),
                Token::Param => "P".to_string(),
                Token::Word(s, e) | Token::Keyword(s, e) => format!("w:{}", String::from_utf8_lossy(&src[s..e])),
                Token::QuotedIdent(s, e) => format!("q:{}", String::from_utf8_lossy(&src[s..e])),
                Token::Operator(s, e) => format!("o:{}", String::from_utf8_lossy(&src[s..e])),
                Token::Cast => "::".to_string(),
                Token::Punct(b) => (b as char).to_string(),
            })
            .collect()
    }

    proptest::proptest! {
        /// The eight-bytes-at-a-time scan of a plain quoted identifier stops where the byte
        /// class table says, on any bytes.
        #[test]
        fn plain_run_agrees_with_the_byte_classes(bytes in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::any::<u8>(), proptest::sample::select(b"az09_\"AZ`{/:^".to_vec())], 0..40)
        ) {
            let expected = bytes.iter().position(|&b| CLASSES[usize::from(b)] & PLAIN == 0).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(plain_run(&bytes), expected);
        }
    }

    #[test]
    fn strings_of_every_kind_are_constants() {
        assert_eq!(kinds("'it''s' E'a\\'b' B'101' X'ff' U&'d\\0061t' N'x' U&'d!0061t' UESCAPE '!'"), vec!["C"; 7]);
        assert_eq!(kinds("$$a;b$$ $fn$ select 'x' $fn$ $1"), vec!["C", "C", "P"]);
    }

    #[test]
    fn comments_and_numbers() {
        assert_eq!(
            kinds("select /* a /* nested */ b */ 1.5e3, .5, 0x1F -- tail"),
            vec!["w:select", "C", ",", "C", ",", "C"]
        );
        assert_eq!(kinds("x-1"), vec!["w:x", "o:-", "C"]);
        assert_eq!(kinds("x = -1"), vec!["w:x", "o:=", "C"]);
        assert_eq!(kinds("x=-1"), vec!["w:x", "o:=", "C"]);
        assert_eq!(kinds("a->>'k' @> '{}'"), vec!["w:a", "o:->>", "C", "o:@>", "C"]);
    }

    #[test]
    fn identifiers_casts_and_params() {
        assert_eq!(kinds("\"Users\".id::int8 = $12"), vec!["q:\"Users\"", ".", "w:id", "::", "w:int8", "o:=", "P"]);
    }

    #[test]
    fn statements_split_on_top_level_semicolons() {
        let sql = b"select 1; select ';' ;; create function f() returns int language sql begin atomic select 1; end; select $$;$$";
        let parts: Vec<_> =
            split_statements(sql).iter().map(|s| String::from_utf8_lossy(s).trim().to_string()).collect();
        assert_eq!(
            parts,
            vec![
                "select 1",
                "select ';'",
                "create function f() returns int language sql begin atomic select 1; end",
                "select $$;$$"
            ]
        );
        assert!(split_statements(b" ; -- nothing\n").is_empty());
    }

    fn split(sql: &str) -> Vec<String> {
        split_statements(sql.as_bytes()).iter().map(|s| String::from_utf8_lossy(s).trim().to_string()).collect()
    }

    #[test]
    fn a_line_comment_ends_at_a_carriage_return() {
        assert_eq!(split("select 1 -- c\r; select 2"), vec!["select 1 -- c", "select 2"]);
        assert_eq!(kinds("select 1 -- c\rx"), vec!["w:select", "C", "w:x"]);
        assert_eq!(kinds("a\x0bb"), vec!["w:a", "w:b"], "\\v is whitespace (scan.l)");
    }

    #[test]
    fn begin_opens_a_body_only_in_create_function_or_procedure() {
        assert_eq!(
            split("SELECT x.begin atomic FROM (select 1 as begin) x; COMMIT; SELECT f()"),
            vec!["SELECT x.begin atomic FROM (select 1 as begin) x", "COMMIT", "SELECT f()"]
        );
        assert_eq!(split("begin; select 1; end"), vec!["begin", "select 1", "end"]);
        assert_eq!(
            split(
                "create function f() returns int language sql begin atomic select case when true then 1 end; \
                 select 2; end; select 3"
            ),
            vec![
                "create function f() returns int language sql begin atomic select case when true then 1 end; \
                 select 2; end",
                "select 3"
            ]
        );
        assert_eq!(
            split("CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC insert into t values (1); END; call p()"),
            vec!["CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC insert into t values (1); END", "call p()"]
        );
        // Only at parenthesis depth 0, and never a field named begin or end.
        assert_eq!(
            split("create function f(begin int) returns int language sql return 1; select 2"),
            vec!["create function f(begin int) returns int language sql return 1", "select 2"]
        );
        assert_eq!(
            split("create function f() returns int begin atomic select t.end from t; end; select 2"),
            vec!["create function f() returns int begin atomic select t.end from t; end", "select 2"]
        );
        // CASE counts only inside a body.
        assert_eq!(
            split("create function f() returns int language sql return case when true then 1 end; select 2"),
            vec!["create function f() returns int language sql return case when true then 1 end", "select 2"]
        );
    }
}
