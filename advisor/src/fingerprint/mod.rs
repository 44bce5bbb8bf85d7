//! Query fingerprints: constants become `$n`, constant lists collapse, whitespace, comments and
//! keyword case are normalised, and the normalised text hashes to 64 bits. The same pass writes
//! the display text: the statement as written, with constants as `$n` (docs/fingerprints.md).
//!
//! Two queries share a fingerprint when they differ only in constants, parameter numbering,
//! the length of `IN (...)` / `ARRAY[...]` constant lists or of multi-row `VALUES` lists,
//! whitespace, comments, or the case of unquoted words.

use std::fmt;

use crate::lexer::{Lexer, Token};

mod display;
mod rules;
use display::{DisplayText, Mark};
use rules::{
    cast_of_constant, constant_end, is_literal_type, is_name, is_string_const, is_word, plain_quoted,
    precedes_relation, skip_type_name, StatementKind,
};

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

/// A fingerprint with the normalised text it was computed from and the display text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// The normalised SQL (`$1, $2 ...` for constants).
    pub text: String,
    /// The SQL as written, constants as `$n`, comments removed, whitespace collapsed.
    pub display: String,
}

/// Fingerprints `sql` (one statement).
pub fn fingerprint(sql: &[u8]) -> Normalized {
    let mut f = Fingerprinter::default();
    let fingerprint = f.fingerprint(sql);
    Normalized { fingerprint, text: f.text().to_string(), display: f.display().to_string() }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    /// `IN (...)`: collapses when all constants.
    In,
    /// `ARRAY[...]`: collapses when all constants.
    Array,
    /// One row of a `VALUES` list: repeated rows of the same shape collapse into the first.
    ValuesRow,
    /// `CAST(... AS type)`: its AS is not an alias.
    Cast,
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
    /// The display text after the first item of an `IN` or `ARRAY` list, once a comma followed it.
    first_item: Option<Mark>,
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
    Cast,
    Is,
    Not,
    /// A keyword that is a value (`CURRENT_DATE`) or ends one (`CASE ... END`): a `-` after it is binary.
    Operand,
    Other,
}

/// Reusable fingerprinting state (buffers are kept between calls).
#[derive(Debug, Default)]
pub struct Fingerprinter {
    tokens: Vec<Token>,
    /// Source range of each token.
    spans: Vec<(usize, usize)>,
    display: DisplayText,
    /// Source ranges of the literal constants of the last statement, in order.
    constants: Vec<(usize, usize)>,
    /// Output ranges holding relation names, where digit runs do not count (partitions).
    relations: Vec<(usize, usize)>,
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
    /// The display text after the first row.
    display: Mark,
}

impl Fingerprinter {
    /// Source ranges of the literal constants of the last fingerprinted statement, in order.
    pub fn constants(&self) -> &[(usize, usize)] {
        &self.constants
    }

    /// The normalised text of the last fingerprinted statement.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.out).unwrap_or("<invalid UTF-8>")
    }

    /// The display text of the last fingerprinted statement: as written, constants as `$n`.
    pub fn display(&self) -> &str {
        std::str::from_utf8(&self.display.out).unwrap_or("<invalid UTF-8>")
    }

    /// Fingerprints `sql`; the normalised text is then available from [`Fingerprinter::text`]
    /// and the display text from [`Fingerprinter::display`].
    pub fn fingerprint(&mut self, sql: &[u8]) -> Fingerprint {
        self.out.clear();
        self.stack.clear();
        self.params = 0;
        self.values = None;
        self.relations.clear();
        self.constants.clear();
        let mut toks = std::mem::take(&mut self.tokens);
        let mut spans = std::mem::take(&mut self.spans);
        toks.clear();
        spans.clear();
        let mut lexer = Lexer::new(sql);
        while let Some(tok) = lexer.next() {
            toks.push(tok);
            spans.push((lexer.token_start(), lexer.pos()));
        }
        self.display.reset(lexer.max_param());
        // Neither text outgrows the statement by much: one reservation instead of growth checks.
        self.out.reserve(sql.len() + 16);
        self.display.out.reserve(sql.len() + 16);
        self.rewrite(sql, &toks, &spans);
        self.tokens = toks;
        self.spans = spans;
        while self.out.last() == Some(&b';') || self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        self.display.finish(sql);
        if !sql.is_ascii() {
            for out in [&mut self.out, &mut self.display.out] {
                if std::str::from_utf8(out).is_err() {
                    *out = String::from_utf8_lossy(out).into_owned().into_bytes();
                }
            }
        }
        Fingerprint(self.hash())
    }

    /// Hashes the output, skipping runs of two or more digits inside relation names, so
    /// `events_2024_01` and `events_2024_02` (partitions) group together as pg_query does.
    fn hash(&self) -> u64 {
        if self.relations.is_empty() {
            return xxhash_rust::xxh3::xxh3_64(&self.out);
        }
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        let mut from = 0;
        for &(s, e) in &self.relations {
            if s < from || e > self.out.len() || e < s {
                continue;
            }
            h.update(&self.out[from..s]);
            let name = &self.out[s..e];
            let (mut k, mut segment) = (0, 0);
            while k < name.len() {
                let run = name[k..].iter().take_while(|b| b.is_ascii_digit()).count();
                if run >= 2 {
                    h.update(&name[segment..k]);
                    segment = k + run;
                }
                k += run.max(1);
            }
            h.update(&name[segment..]);
            from = e;
        }
        h.update(&self.out[from..]);
        h.digest()
    }

    /// Walks the tokens, applying the rules of [`rules`] before the generic normalisation.
    fn rewrite(&mut self, sql: &[u8], toks: &[Token], spans: &[(usize, usize)]) {
        let mut prev = Prev::Start;
        let mut kind = StatementKind::Other;
        let mut set_values = false;
        let mut declare_named = false;
        let mut i = 0;
        while i < toks.len() {
            let tok = toks[i];
            let span = spans[i];
            let next = toks.get(i + 1).copied();
            let at_top = self.stack.is_empty();
            if matches!(prev, Prev::Start | Prev::Semicolon) {
                kind = StatementKind::of(sql, Some(tok));
                set_values = false;
                declare_named = false;
                let synonym: Option<&[u8]> = match kind {
                    StatementKind::End => Some(b"COMMIT"),
                    StatementKind::Abort => Some(b"ROLLBACK"),
                    _ => None,
                };
                if let Some(canonical) = synonym {
                    self.display.token(sql, span);
                    prev = self.keyword(canonical, prev);
                    i += 1;
                    continue;
                }
            }
            let anonymise = match kind {
                StatementKind::NamesIgnored | StatementKind::Fetch => true,
                StatementKind::Declare => !declare_named,
                _ => false,
            };
            if anonymise && at_top && matches!(tok, Token::Word(..) | Token::QuotedIdent(..)) {
                declare_named = true;
                self.display.token(sql, span);
                prev = self.anonymous(prev);
                i += 1;
                continue;
            }
            let set_value = kind == StatementKind::Set && set_values;
            let previous = i.checked_sub(1).map(|p| toks[p]);
            let relation = matches!(previous, Some(Token::Keyword(..)))
                && matches!(tok, Token::Word(..) | Token::QuotedIdent(..))
                && precedes_relation(sql, previous);
            let before = self.out.len();
            match tok {
                Token::Const(s, e) if kind == StatementKind::Fetch => {
                    // FETCH's row count is part of its shape (pg_query keeps it).
                    self.display.token(sql, span);
                    self.space_before(prev, false);
                    self.out.extend_from_slice(&sql[s..e]);
                    prev = Prev::Operand;
                }
                Token::Const(..) | Token::Param => {
                    if let Token::Const(s, e) = tok {
                        self.constants.push((s, e));
                    }
                    prev = self.push(sql, tok, span, prev);
                    // A cast of a constant is not part of the shape.
                    if next == Some(Token::Cast) {
                        let j = skip_type_name(sql, toks, i + 2);
                        if j > i + 2 {
                            self.show(sql, spans, i + 1, j);
                            i = j;
                            continue;
                        }
                    }
                }
                Token::Operator(s, e)
                    if e == s + 1
                        && matches!(sql[s], b'-' | b'+')
                        && matches!(
                            prev,
                            Prev::Operator | Prev::Open | Prev::Comma | Prev::Start | Prev::Keyword(_)
                        )
                        && prev != Prev::Keyword(KeywordKind::Operand)
                        && matches!(next, Some(Token::Const(c, _)) if sql[c].is_ascii_digit() || sql[c] == b'.') =>
                {
                    // `- 5` is the constant -5 (gram.y's doNegate), as `-5` is.
                    self.display.token(sql, span);
                }
                Token::Word(s, e) | Token::Keyword(s, e) | Token::QuotedIdent(s, e)
                    if set_value && !is_word(sql, Some(tok), "default") =>
                {
                    prev = self.push(sql, Token::Const(s, e), span, prev);
                }
                Token::Operator(s, e) if kind == StatementKind::Set && !set_values && at_top && &sql[s..e] == b"=" => {
                    set_values = true;
                    self.display.token(sql, span);
                    prev = self.keyword(b"TO", prev);
                }
                Token::Word(s, e) | Token::Keyword(s, e) => {
                    let w = &sql[s..e];
                    let in_cast = self.stack.last().is_some_and(|o| o.kind == ListKind::Cast);
                    if kind == StatementKind::Set && at_top && w.eq_ignore_ascii_case(b"to") {
                        set_values = true;
                    }
                    if w.len() == 2 && w.eq_ignore_ascii_case(b"as") && !in_cast && is_name(next) {
                        // Column and table aliases are not part of the shape.
                        self.show(sql, spans, i, i + 2);
                        i += 2;
                        continue;
                    }
                    if is_string_const(sql, next) && is_literal_type(sql, Some(tok)) {
                        // `DATE '2024-01-01'` is a constant, like `'2024-01-01'::date`.
                        self.display.token(sql, span);
                        i += 1;
                        continue;
                    }
                    if let Some(close) = cast_of_constant(sql, toks, i) {
                        // `CAST(5 AS int)` is the constant, like `5::int`.
                        self.show(sql, spans, i, i + 2);
                        prev = self.push(sql, toks[i + 2], spans[i + 2], prev);
                        if let Token::Const(s, e) = toks[i + 2] {
                            self.constants.push((s, e));
                        }
                        self.show(sql, spans, i + 3, close + 1);
                        i = close + 1;
                        continue;
                    }
                    let offset = w.eq_ignore_ascii_case(b"offset");
                    if let Some((constant, end)) = offset.then(|| constant_end(sql, toks, i + 1)).flatten() {
                        // A constant OFFSET, cast or not, is not part of the shape (pg_query).
                        self.show(sql, spans, i, constant);
                        match toks[constant] {
                            Token::Const(s, e) => {
                                self.constants.push((s, e));
                                self.display.constant(sql, spans[constant]);
                            }
                            _ => self.display.token(sql, spans[constant]),
                        }
                        self.show(sql, spans, constant + 1, end);
                        i = end;
                        continue;
                    }
                    let literal = matches!(tok, Token::Keyword(..))
                        && match w.len() {
                            4 => w.eq_ignore_ascii_case(b"true") || w.eq_ignore_ascii_case(b"null"),
                            5 => w.eq_ignore_ascii_case(b"false"),
                            _ => false,
                        };
                    let test = matches!(prev, Prev::Keyword(KeywordKind::Is) | Prev::Keyword(KeywordKind::Not));
                    let tok = if literal && !test { Token::Const(s, e) } else { tok };
                    prev = self.push(sql, tok, span, prev);
                }
                Token::QuotedIdent(s, e) => {
                    let tok = match plain_quoted(sql, s, e) {
                        Some(_) => Token::Word(s + 1, e - 1),
                        None => tok,
                    };
                    // Shown with its quotes, as written.
                    self.display.token(sql, span);
                    prev = self.push_normalised(sql, tok, span, prev);
                }
                _ => prev = self.push(sql, tok, span, prev),
            }
            if relation {
                let start = before + usize::from(self.out.get(before) == Some(&b' '));
                if has_digit_run(&self.out[start..]) {
                    self.relations.push((start, self.out.len()));
                }
            }
            i += 1;
        }
    }

    /// Shows tokens `from..to` as written.
    fn show(&mut self, sql: &[u8], spans: &[(usize, usize)], from: usize, to: usize) {
        for &span in spans.get(from..to).unwrap_or_default() {
            self.display.token(sql, span);
        }
    }

    fn keyword(&mut self, word: &[u8], prev: Prev) -> Prev {
        self.space_before(prev, false);
        self.out.extend_from_slice(word);
        Prev::Keyword(KeywordKind::Other)
    }

    /// A name that is not part of the shape (a savepoint, cursor, channel): shown as `_`.
    fn anonymous(&mut self, prev: Prev) -> Prev {
        self.space_before(prev, false);
        self.out.push(b'_');
        Prev::Word
    }

    #[inline(always)]
    fn space_before(&mut self, prev: Prev, tight: bool) {
        let glue = matches!(prev, Prev::Start | Prev::Open | Prev::Dot | Prev::Cast);
        if !tight && !glue && !self.out.is_empty() {
            self.out.push(b' ');
        }
    }

    #[inline(always)]
    fn placeholder(&mut self, prev: Prev) {
        self.space_before(prev, false);
        self.params += 1;
        push_param(&mut self.out, self.params);
    }

    #[inline(always)]
    fn note_inside(&mut self, tok: &Token) {
        let Some(top) = self.stack.last_mut() else { return };
        match tok {
            Token::Const(..) | Token::Param => top.consts += 1,
            Token::Punct(b',') => {}
            Token::Cast => {
                top.after_cast = true;
                return;
            }
            Token::Word(..) | Token::Keyword(..) | Token::QuotedIdent(..) if top.after_cast => {}
            _ => top.only_consts = false,
        }
        top.after_cast = false;
    }

    /// Writes `tok` (at `span` of `src`) to the display text and the normalised text.
    #[inline(always)]
    fn push(&mut self, src: &[u8], tok: Token, span: (usize, usize), prev: Prev) -> Prev {
        match tok {
            // Shown by `close`, between collapsing a list and collapsing a VALUES row.
            Token::Punct(b')' | b']') => {}
            Token::Const(..) => self.display.constant(src, span),
            Token::Punct(b',') => {
                if let Some(top) = self.stack.last_mut() {
                    if matches!(top.kind, ListKind::In | ListKind::Array) && top.first_item.is_none() {
                        top.first_item = Some(self.display.mark(src));
                    }
                }
                self.display.token(src, span);
            }
            _ => self.display.token(src, span),
        }
        self.push_normalised(src, tok, span, prev)
    }

    /// Writes `tok` to the normalised text (and, for a closing bracket, to the display text).
    #[inline(always)]
    fn push_normalised(&mut self, src: &[u8], tok: Token, span: (usize, usize), prev: Prev) -> Prev {
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
            Token::Const(..) | Token::Param => {
                self.placeholder(prev);
                Prev::Operand
            }
            Token::Keyword(s, e) => {
                let word = &src[s..e];
                self.space_before(prev, false);
                let at = self.out.len();
                self.out.extend_from_slice(word);
                self.out[at..].make_ascii_uppercase();
                Prev::Keyword(keyword_kind(word))
            }
            Token::Word(s, e) => {
                self.space_before(prev, false);
                let at = self.out.len();
                self.out.extend_from_slice(&src[s..e]);
                self.out[at..].make_ascii_lowercase();
                Prev::Word
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
                // Only a comma between rows announces another row, not one inside a row.
                if let Some(run) = self.values.as_mut().filter(|run| run.depth == depth) {
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
                    (b'(', Prev::Keyword(KeywordKind::Cast)) => ListKind::Cast,
                    (b'(', Prev::Comma) if self.values.is_some_and(|run| run.depth == depth) => ListKind::ValuesRow,
                    _ => ListKind::Other,
                };
                // A row folds into the first row of its own list only: truncating the output to a
                // list at another depth would cut through parentheses still open.
                let values_first = match (kind, self.values) {
                    (ListKind::ValuesRow, Some(run)) if run.depth == depth => Some((run.first_end, run.first_params)),
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
                    first_item: None,
                });
                Prev::Open
            }
            Token::Punct(close @ (b')' | b']')) => {
                self.close(close, src, span);
                Prev::Close
            }
            Token::Punct(other) => {
                self.space_before(prev, other == b':');
                self.out.push(other);
                Prev::Operator
            }
        }
    }

    fn close(&mut self, close: u8, src: &[u8], span: (usize, usize)) {
        let Some(open) = self.stack.pop() else {
            self.out.push(close);
            self.display.token(src, span);
            return;
        };
        let collapsible = matches!(open.kind, ListKind::In | ListKind::Array) && open.only_consts && open.consts > 0;
        if collapsible {
            self.out.truncate(open.start + 1);
            self.params = open.params + 1;
            push_param(&mut self.out, self.params);
            if let Some(first) = open.first_item {
                self.display.collapse_to(src, first);
            }
        }
        self.out.push(close);
        self.display.token(src, span);
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
                        self.display.collapse_to(src, run.display);
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
                        display: self.display.mark(src),
                    })
                }
            }
        }
    }
}

fn keyword_kind(word: &[u8]) -> KeywordKind {
    // Dispatch on length first: this runs for every keyword of every statement.
    let is = |k: &[u8]| word.eq_ignore_ascii_case(k);
    match word.len() {
        2 if is(b"in") => KeywordKind::In,
        2 if is(b"is") => KeywordKind::Is,
        3 if is(b"not") => KeywordKind::Not,
        3 if is(b"end") => KeywordKind::Operand,
        12 | 17 if word[..8].eq_ignore_ascii_case(b"current_") => KeywordKind::Operand,
        4 if is(b"cast") => KeywordKind::Cast,
        5 if is(b"array") => KeywordKind::Array,
        6 if is(b"values") => KeywordKind::Values,
        _ => KeywordKind::Other,
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

/// True when `name` holds two or more digits in a row.
fn has_digit_run(name: &[u8]) -> bool {
    name.windows(2).any(|w| w[0].is_ascii_digit() && w[1].is_ascii_digit())
}

/// Appends `$n` without allocating.
fn push_param(out: &mut Vec<u8>, n: u32) {
    out.push(b'$');
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests;
