//! Writing the normalised text: spacing, keyword and identifier case, placeholders, and the
//! bracketed lists that collapse (`IN (...)` and `ARRAY[...]` of constants, repeated `VALUES`
//! rows), with the display text beside it.

use super::display::Mark;
use super::key::{Edit, KeyEdit};
use super::rules::Tokens;
use super::words::{ARRAY, CAST, END, IN, VALUES};
use super::{Fingerprinter, KeywordKind, Prev};
use crate::keywords::{known, Known};
use crate::lexer::Token;

/// What an open bracket is, for how it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    /// `IN (...)`: collapses when all constants.
    In,
    /// `ARRAY[...]`: collapses when all constants.
    Array,
    /// One row of a `VALUES` list: repeated rows of the same shape collapse into the first.
    ValuesRow,
    /// `CAST(... AS type)`: its AS is not an alias.
    Cast,
    /// A row (`ROW(1, 2)`, `(1, 2)` as an operand, a partition bound `FROM (1, 2)`): made only of
    /// constants, it collapses to one placeholder as an `IN` list does (pg_query ignores constants
    /// in it), shown as written.
    Row,
    /// The column list of `INSERT INTO t (...)`: its order is not part of the hash.
    Columns,
    /// Any other parenthesis or bracket.
    Other,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Open {
    pub(super) kind: ListKind,
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
    /// An option list of a utility statement (`WITH (fillfactor = 70)`): its constants are values
    /// pg_query keeps (DefElem), not constants.
    pub(super) options: bool,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ValuesRun {
    pub(super) depth: usize,
    first_end: usize,
    first_params: u32,
    shape: u64,
    /// A comma followed the last row, so a `(` at `depth` starts another row.
    expecting_row: bool,
    /// The display text after the first row.
    display: Mark,
}

/// The shape of a VALUES row of constants and DEFAULTs only, whatever its length: pg_query
/// ignores both, so `VALUES (1, DEFAULT)` and `VALUES (2, 3)` are one shape.
pub(super) const CONSTANT_ROW: u64 = 0;

impl Fingerprinter {
    /// Leaves what was written since output length `before` (without its leading space) out of
    /// the hash, or hashes it as `edit` says.
    pub(super) fn unhashed(&mut self, before: usize, edit: Edit) {
        let start = before + usize::from(self.out.get(before) == Some(&b' '));
        self.key.push(KeyEdit { start, end: self.out.len(), edit });
    }

    /// Cuts the output back to `len`, with the hash edits of what is cut.
    pub(super) fn truncate_out(&mut self, len: usize) {
        self.out.truncate(len);
        self.key.retain(|e| e.end <= len);
    }

    /// Shows tokens `from..to` as written.
    pub(super) fn show(&mut self, t: &Tokens, from: usize, to: usize) {
        for &span in t.spans.get(from..to).unwrap_or_default() {
            self.display.token(t.src, span);
        }
    }

    /// Writes `word` as a keyword (upper case).
    pub(super) fn keyword(&mut self, word: &[u8], prev: Prev) -> Prev {
        self.space_before(prev, false);
        let at = self.out.len();
        self.out.extend_from_slice(word);
        self.out[at..].make_ascii_uppercase();
        Prev::Keyword(KeywordKind::Other)
    }

    /// A name that is not part of the shape (a savepoint, cursor, channel): shown as `_`.
    pub(super) fn anonymous(&mut self, prev: Prev) -> Prev {
        self.space_before(prev, false);
        self.out.push(b'_');
        Prev::Word
    }

    #[inline(always)]
    pub(super) fn space_before(&mut self, prev: Prev, tight: bool) {
        let glue = matches!(prev, Prev::Start | Prev::Open | Prev::Dot | Prev::Cast);
        if !tight && !glue && !self.out.is_empty() {
            self.out.push(b' ');
        }
    }

    #[inline(always)]
    pub(super) fn placeholder(&mut self, prev: Prev) {
        self.space_before(prev, false);
        self.params += 1;
        push_param(&mut self.out, self.params);
    }

    #[inline(always)]
    pub(super) fn note_inside(&mut self, src: &[u8], tok: &Token) {
        let Some(top) = self.stack.last_mut() else { return };
        match tok {
            Token::Const(..) | Token::Param => top.consts += 1,
            Token::Punct(b',') => {}
            Token::Cast => {
                top.after_cast = true;
                return;
            }
            Token::Word(..) | Token::Keyword(..) | Token::QuotedIdent(..) if top.after_cast => {}
            // pg_query ignores DEFAULT in a VALUES row as it ignores constants.
            Token::Keyword(s, e) if top.kind == ListKind::ValuesRow && src[*s..*e].eq_ignore_ascii_case(b"default") => {
                top.consts += 1
            }
            _ => top.only_consts = false,
        }
        top.after_cast = false;
    }

    /// Writes the word `tok` to the normalised text as `text` (a synonym's canonical spelling);
    /// the caller shows it.
    pub(super) fn word_as(&mut self, src: &[u8], tok: Token, text: &[u8], prev: Prev) -> Prev {
        self.note_inside(src, &tok);
        self.end_values_run(tok);
        self.space_before(prev, false);
        self.out.extend_from_slice(text);
        Prev::Word
    }

    /// Writes `tok` (at `span` of `src`) to the display text and the normalised text.
    #[inline(always)]
    pub(super) fn push(&mut self, src: &[u8], tok: Token, span: (usize, usize), prev: Prev) -> Prev {
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
    pub(super) fn push_normalised(&mut self, src: &[u8], tok: Token, span: (usize, usize), prev: Prev) -> Prev {
        if !matches!(tok, Token::Punct(b')') | Token::Punct(b']')) {
            self.note_inside(src, &tok);
        }
        self.end_values_run(tok);
        let depth = self.stack.len();
        match tok {
            Token::Const(..) | Token::Param => {
                self.placeholder(prev);
                Prev::Operand
            }
            Token::Keyword(s, e) => {
                let word = &src[s..e];
                self.space_before(prev, false);
                // The rewrite loop says which keyword it is; other callers look it up.
                let k = match std::mem::replace(&mut self.keyword, Known::NONE) {
                    Known::NONE => crate::keywords::lookup(word),
                    k => k,
                };
                let upper = k.upper();
                if upper.len() == word.len() {
                    k.push_upper(&mut self.out);
                } else {
                    let at = self.out.len();
                    self.out.extend_from_slice(word);
                    self.out[at..].make_ascii_uppercase();
                }
                Prev::Keyword(keyword_kind(k))
            }
            Token::Word(s, e) => {
                self.space_before(prev, false);
                let at = self.out.len();
                push_slice(&mut self.out, src, s, e);
                self.out[at..].make_ascii_lowercase();
                Prev::Word
            }
            Token::QuotedIdent(s, e) => {
                self.space_before(prev, false);
                push_slice(&mut self.out, src, s, e);
                Prev::Operand
            }
            Token::Operator(s, e) => {
                self.space_before(prev, false);
                let op = &src[s..e];
                self.out.extend_from_slice(canonical_operator(op));
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
                    (b'(', _) if std::mem::take(&mut self.open_columns) => ListKind::Columns,
                    (b'(', _) if std::mem::take(&mut self.open_row) => ListKind::Row,
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
                    options: std::mem::take(&mut self.open_options),
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

    /// Ends the run of VALUES rows open at this depth unless `tok` continues it.
    #[inline(always)]
    pub(super) fn end_values_run(&mut self, tok: Token) {
        let depth = self.stack.len();
        if let Some(run) = self.values.filter(|run| run.depth == depth) {
            let continues = match tok {
                Token::Punct(b',') => !run.expecting_row,
                Token::Punct(b'(') => run.expecting_row,
                _ => false,
            };
            if !continues {
                self.values = None;
            }
        }
    }

    pub(super) fn close(&mut self, close: u8, src: &[u8], span: (usize, usize)) {
        let Some(open) = self.stack.pop() else {
            self.out.push(close);
            self.display.token(src, span);
            return;
        };
        // A row collapses only when it starts with a constant (`(, 1)` is no row): the one pass
        // gives up at a constant right after `(`, so the two agree.
        let collapsible = open.only_consts
            && open.consts > 0
            && (matches!(open.kind, ListKind::In | ListKind::Array)
                || (open.kind == ListKind::Row && self.out.get(open.start + 1) == Some(&b'$')));
        if collapsible {
            self.truncate_out(open.start + 1);
            self.params = open.params + 1;
            push_param(&mut self.out, self.params);
            if let Some(first) = open.first_item {
                self.display.collapse_to(src, first);
            }
        }
        self.out.push(close);
        self.display.token(src, span);
        if open.kind == ListKind::Columns {
            let end = self.out.len() - 1;
            self.key.push(KeyEdit { start: open.start + 1, end, edit: Edit::Unordered });
        }
        if let Some(parent) = self.stack.last_mut() {
            // A non-empty nested list (a subquery, a call) is not a constant.
            if open.consts > 0 || self.out.len() > open.start + 2 {
                parent.only_consts = false;
            }
            parent.after_cast = false;
        }
        if open.kind == ListKind::ValuesRow {
            let constant = open.only_consts && open.consts > 0;
            let shape = if constant { CONSTANT_ROW } else { row_shape(&self.out[open.start..]) };
            if constant {
                self.key.push(KeyEdit { start: open.start, end: self.out.len(), edit: Edit::Replace(b"($)") });
            }
            match open.values_first {
                Some((first_end, first_params)) if self.values.is_some_and(|r| r.shape == shape) => {
                    // Same shape as the first row: drop ", (row)" and reuse its numbering.
                    self.truncate_out(first_end);
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

pub(super) fn keyword_kind(k: Known) -> KeywordKind {
    const IS: Known = known("is");
    const NOT: Known = known("not");
    const CURRENT_DATE: Known = known("current_date");
    const CURRENT_TIME: Known = known("current_time");
    const CURRENT_TIMESTAMP: Known = known("current_timestamp");
    const CURRENT_USER: Known = known("current_user");
    match k {
        IN => KeywordKind::In,
        IS => KeywordKind::Is,
        NOT => KeywordKind::Not,
        END | CURRENT_DATE | CURRENT_TIME | CURRENT_TIMESTAMP | CURRENT_USER => KeywordKind::Operand,
        CAST => KeywordKind::Cast,
        ARRAY => KeywordKind::Array,
        VALUES => KeywordKind::Values,
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

/// An operator as the fingerprint writes it: `!=` is `<>` (scan.l turns one into the other) and
/// `:=` is `=>` (gram.y reads both as a named argument).
#[inline]
pub(super) fn canonical_operator(op: &[u8]) -> &[u8] {
    match op {
        b"!=" => b"<>",
        b":=" => b"=>",
        op => op,
    }
}

/// Appends `src[start..end]`; a name or keyword of up to 16 bytes with 16 bytes of `src` from
/// its start is copied as one fixed 16-byte block and the output cut back to its length, which
/// the compiler does in two instructions where a copy of a length known only at run time calls
/// `memcpy`.
#[inline(always)]
pub(super) fn push_slice(out: &mut Vec<u8>, src: &[u8], start: usize, end: usize) {
    let len = out.len();
    match src.get(start..start + 16).and_then(|block| <&[u8; 16]>::try_from(block).ok()) {
        Some(block) if end.wrapping_sub(start) <= 16 => {
            out.extend_from_slice(block);
            out.truncate(len + (end - start));
        }
        _ => out.extend_from_slice(src.get(start..end).unwrap_or_default()),
    }
}

/// Appends `$n` without allocating.
#[inline]
pub(super) fn push_param(out: &mut Vec<u8>, n: u32) {
    if n < 10 {
        // Most statements have fewer than ten constants.
        out.extend_from_slice(&[b'$', b'0' + n as u8]);
        return;
    }
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
