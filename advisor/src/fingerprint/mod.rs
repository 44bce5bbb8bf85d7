//! Query fingerprints: constants become `$n`, constant lists collapse, whitespace, comments and
//! keyword case are normalised, and the normalised text hashes to 64 bits. The same pass writes
//! the display text: the statement as written, with constants as `$n` (docs/fingerprints.md).
//!
//! Two queries share a fingerprint when they differ only in constants, parameter numbering,
//! the length of `IN (...)` / `ARRAY[...]` constant lists or of multi-row `VALUES` lists,
//! whitespace, comments, the case of unquoted words, or what pg_query's fingerprint also ignores
//! where a lexer can see it ([`rules`], [`utility`], [`key`]).

use std::fmt;

use crate::keywords::Known;
use crate::lexer::{Lexer, Token};

mod display;
mod key;
mod literals;
mod plain;
mod rewrite;
mod rules;
mod utility;
mod words;
mod writer;
use display::DisplayText;
use key::KeyEdit;
pub use literals::{LiteralMask, MAX_LITERALS, MAX_SCANNED};
use rules::Tokens;
use words::*;
use writer::{Open, ValuesRun};

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

/// True when `bytes` holds a byte outside ASCII: one OR over every byte, which the compiler
/// vectorises whole (`is_ascii` checks the tail of a statement one byte at a time).
fn has_non_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | b) >= 0x80
}

impl Fingerprinter {
    /// True when `(` at `i`, after `prev`, may open a parenthesised expression rather than a
    /// call, a list or a row: after an operator, a comma that is not between VALUES rows, an
    /// opening parenthesis, or a keyword after which an expression starts.
    fn operand_parenthesis(&self, t: &Tokens, i: usize, prev: Prev) -> bool {
        match prev {
            Prev::Operator | Prev::Open => true,
            Prev::Comma => self.values.is_none_or(|run| run.depth != self.stack.len()),
            Prev::Keyword(_) => matches!(
                t.known(i.wrapping_sub(1)),
                SELECT
                    | WHERE
                    | AND
                    | OR
                    | NOT
                    | THEN
                    | ELSE
                    | WHEN
                    | CASE
                    | BETWEEN
                    | LIMIT
                    | OFFSET
                    | RETURNING
                    | HAVING
                    | BY
                    | ON
                    | DISTINCT
                    | DEFAULT
            ),
            _ => false,
        }
    }
}

/// What the previous token written was, for spacing and for the rules that look back.
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

/// The keywords whose kind the writer and the rules look back at.
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

/// Most bytes a buffer of the fingerprinter keeps between statements ([`Fingerprinter::trim`]):
/// a 200-byte statement's tokens take about 1 KiB.
const KEPT_BUFFER_BYTES: usize = 16 * 1024;

/// Reusable fingerprinting state (buffers are kept between calls, up to [`KEPT_BUFFER_BYTES`]
/// each once trimmed).
#[derive(Debug, Default)]
pub struct Fingerprinter {
    tokens: Vec<Token>,
    /// Source range of each token.
    spans: Vec<(usize, usize)>,
    /// Word id of each token ([`Known::NONE`] for non-words and unknown words).
    known: Vec<Known>,
    display: DisplayText,
    /// Source ranges of the literal constants of the last statement, in order.
    constants: Vec<(usize, usize)>,
    /// Ranges of the output the hash leaves out, replaces or reorders ([`key`]).
    key: Vec<KeyEdit>,
    out: Vec<u8>,
    stack: Vec<Open>,
    params: u32,
    /// After a VALUES row closed at this depth: (depth, first row end, params after first row, shape hash).
    values: Option<ValuesRun>,
    /// The next `(` opens an INSERT's column list.
    open_columns: bool,
    /// The next `(` opens a utility statement's option list.
    open_options: bool,
    /// The next `(` opens a row ([`writer::ListKind::Row`]).
    open_row: bool,
    /// Target lists and GROUP BY clauses still open.
    clauses: Vec<Clause>,
    /// What the hash reads when [`Fingerprinter::key`] edits the output.
    key_text: Vec<u8>,
    /// The keyword about to be written, when the caller knows it.
    keyword: Known,
    /// The statement being written has a SELECT (a utility statement's query: `CREATE VIEW v
    /// AS SELECT ...`).
    query_seen: bool,
}

/// A clause the rewrite tracks, open at a bracket depth from an output offset: a SELECT's target
/// list (where a name after an item is a column alias) or a GROUP BY (whose constant items
/// pg_query drops).
#[derive(Debug, Clone, Copy)]
struct Clause {
    depth: usize,
    start: usize,
    group_by: bool,
    /// GROUP BY clauses open around this one.
    within_group_by: usize,
}

impl Fingerprinter {
    /// Opens a clause inside those open now.
    fn open_clause(&mut self, depth: usize, start: usize, group_by: bool) {
        let within_group_by = self.clauses.last().map_or(0, |c| c.within_group_by + usize::from(c.group_by));
        self.clauses.push(Clause { depth, start, group_by, within_group_by });
    }

    /// Lets go of the buffers a long statement grew, once its texts and constants have been
    /// read: a session that once sent a 64 KiB statement of tokens would otherwise hold a few
    /// MiB of them for the rest of its life. Buffers a typical statement needs are kept.
    pub fn trim(&mut self) {
        fn trim<T>(v: &mut Vec<T>) {
            if v.capacity().saturating_mul(std::mem::size_of::<T>()) > KEPT_BUFFER_BYTES {
                *v = Vec::new();
            }
        }
        trim(&mut self.tokens);
        trim(&mut self.spans);
        trim(&mut self.known);
        trim(&mut self.display.out);
        trim(&mut self.constants);
        trim(&mut self.key);
        trim(&mut self.out);
        trim(&mut self.stack);
        trim(&mut self.clauses);
        trim(&mut self.key_text);
    }

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
        self.start(sql);
        if self.plain_select(sql).is_err() {
            self.start(sql);
            self.full(sql);
        }
        self.finish(sql)
    }

    /// Fingerprints `sql` with the full rewrite only, never the one pass of [`plain`]: what the
    /// one pass must agree with.
    #[cfg(test)]
    fn fingerprint_full(&mut self, sql: &[u8]) -> Fingerprint {
        self.start(sql);
        self.full(sql);
        self.finish(sql)
    }

    /// Clears the state of the last statement.
    fn start(&mut self, sql: &[u8]) {
        self.out.clear();
        self.stack.clear();
        self.params = 0;
        self.values = None;
        self.open_columns = false;
        self.open_options = false;
        self.open_row = false;
        self.query_seen = false;
        self.clauses.clear();
        self.key.clear();
        self.constants.clear();
        // Neither text outgrows the statement by much: one reservation instead of growth checks.
        self.out.reserve(sql.len() + 16);
        self.display.out.reserve(sql.len() + 16);
    }

    /// Lexes `sql` into the token vectors, then rewrites it with every rule.
    fn full(&mut self, sql: &[u8]) {
        let mut toks = std::mem::take(&mut self.tokens);
        let mut spans = std::mem::take(&mut self.spans);
        let mut known = std::mem::take(&mut self.known);
        toks.clear();
        spans.clear();
        known.clear();
        let mut lexer = Lexer::new(sql);
        while let Some(tok) = lexer.next() {
            toks.push(tok);
            spans.push((lexer.token_start(), lexer.pos()));
            known.push(lexer.known());
        }
        self.display.reset(lexer.max_param());
        self.rewrite(&Tokens { src: sql, toks: &toks, spans: &spans, known: &known });
        while let Some(clause) = self.clauses.pop() {
            self.end_clause(clause);
        }
        self.tokens = toks;
        self.spans = spans;
        self.known = known;
    }

    /// Ends both texts and hashes the normalised one.
    fn finish(&mut self, sql: &[u8]) -> Fingerprint {
        while self.out.last() == Some(&b';') || self.out.last() == Some(&b' ') {
            self.out.pop();
        }
        self.display.finish(sql);
        // Hashed before any lossy repair below: the key's edits point at bytes of `out` as it is.
        let fingerprint = Fingerprint(key::hash(&self.out, &mut self.key, &mut self.key_text));
        if has_non_ascii(sql) {
            for out in [&mut self.out, &mut self.display.out] {
                if std::str::from_utf8(out).is_err() {
                    *out = String::from_utf8_lossy(out).into_owned().into_bytes();
                }
            }
        }
        fingerprint
    }
}

#[cfg(test)]
mod linear_tests;
#[cfg(test)]
mod tests;
