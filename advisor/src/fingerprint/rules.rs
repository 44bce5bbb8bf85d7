//! Expression rules that make our grouping agree with pg_query's fingerprint where a lexer can
//! see it: typed literals, casts of constants, constant OFFSETs, signs and EXTRACT fields are
//! constants, not part of a query's shape (gram.y's AexprConst, TypeCast and doNegate).

use super::words::{AS, CAST, FALSE, NULL, TRUE, WITH};
use crate::keywords::{known, Known};
use crate::lexer::Token;

/// The tokens of a statement with their source ranges and word ids, for rules to look around.
pub(super) struct Tokens<'a> {
    pub(super) src: &'a [u8],
    pub(super) toks: &'a [Token],
    pub(super) spans: &'a [(usize, usize)],
    pub(super) known: &'a [Known],
}

impl Tokens<'_> {
    /// The token at `i`, if any.
    #[inline]
    pub(super) fn at(&self, i: usize) -> Option<Token> {
        self.toks.get(i).copied()
    }

    /// True when the token at `i` is the word `word` (from [`known`]).
    #[inline]
    pub(super) fn is(&self, i: usize, word: Known) -> bool {
        self.known.get(i) == Some(&word)
    }

    /// The word id of the token at `i` ([`Known::NONE`] past the end or for a non-word).
    #[inline]
    pub(super) fn known(&self, i: usize) -> Known {
        self.known.get(i).copied().unwrap_or(Known::NONE)
    }

    /// The text of the word at `i`, if it is a word.
    pub(super) fn word(&self, i: usize) -> Option<&[u8]> {
        match self.at(i)? {
            Token::Word(s, e) | Token::Keyword(s, e) => self.src.get(s..e),
            _ => None,
        }
    }

    /// True when the word at `i` is `w` (any case); for words outside the table.
    pub(super) fn word_is(&self, i: usize, w: &str) -> bool {
        self.word(i).is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
    }

    /// True for a name at `i`: an unquoted non-keyword word or a quoted identifier.
    #[inline]
    pub(super) fn is_name(&self, i: usize) -> bool {
        matches!(self.at(i), Some(Token::Word(..)) | Some(Token::QuotedIdent(..)))
    }

    /// True for any word or quoted identifier at `i`.
    fn is_word_like(&self, i: usize) -> bool {
        matches!(self.at(i), Some(Token::Word(..)) | Some(Token::Keyword(..)) | Some(Token::QuotedIdent(..)))
    }

    /// True for a string constant (any quoting) at `i`, as opposed to a number.
    pub(super) fn is_string_const(&self, i: usize) -> bool {
        match self.at(i) {
            Some(Token::Const(s, _)) => {
                matches!(self.src.get(s), Some(b'\'' | b'e' | b'E' | b'u' | b'U' | b'n' | b'N' | b'$'))
            }
            _ => false,
        }
    }

    /// True for a number at `i` written without a sign.
    fn is_unsigned_number(&self, i: usize) -> bool {
        matches!(self.at(i), Some(Token::Const(c, _)) if self.src.get(c).is_some_and(|b| b.is_ascii_digit() || *b == b'.'))
    }

    /// True for a one-character operator `op` at `i`.
    pub(super) fn is_operator(&self, i: usize, op: u8) -> bool {
        matches!(self.at(i), Some(Token::Operator(s, e)) if e == s + 1 && self.src.get(s) == Some(&op))
    }
}

const INTERVAL: Known = known("interval");
const TIMESTAMP: Known = known("timestamp");
pub(super) const TIME: Known = known("time");
const WITHOUT: Known = known("without");
pub(super) const ZONE: Known = known("zone");
const DOUBLE: Known = known("double");
const CHARACTER: Known = known("character");
const CHAR: Known = known("char");
const NATIONAL: Known = known("national");
const BIT: Known = known("bit");

/// Names before a type's own in a qualified type name (`catalog.schema.type`).
const MAX_TYPE_QUALIFIERS: usize = 2;

/// Index just past a type name starting at `i`, or `i` when there is none: `schema.type`,
/// multi-word types (`double precision`, `timestamp (3) with time zone`), a `(typmod)` and, when
/// `arrays`, `[]` suffixes.
pub(super) fn type_name_end(t: &Tokens, mut i: usize, arrays: bool) -> usize {
    if !t.is_word_like(i) {
        return i;
    }
    let first = i;
    let k = t.known(first);
    i += 1;
    // At most `catalog.schema.type`: a longer chain is no type name, and following it whole
    // from every word of `int.int.int...` would cost the square of its length.
    let mut qualifiers = 0;
    while qualifiers < MAX_TYPE_QUALIFIERS && t.at(i) == Some(Token::Punct(b'.')) && t.is_word_like(i + 1) {
        i += 2;
        qualifiers += 1;
    }
    if (k == DOUBLE && t.word_is(i, "precision")) || (k == NATIONAL && t.is(i, CHARACTER)) {
        i += 1;
    }
    if matches!(t.known(i - 1), CHARACTER | CHAR | BIT) && t.word_is(i, "varying") {
        i += 1;
    }
    if t.at(i) == Some(Token::Punct(b'(')) {
        let mut j = i + 1;
        while let Some(end) = type_modifier_end(t, j) {
            j = end;
            if t.at(j) != Some(Token::Punct(b',')) {
                break;
            }
            j += 1;
        }
        if t.at(j) == Some(Token::Punct(b')')) && j > i + 1 {
            i = j + 1;
        }
    }
    if (k == TIMESTAMP || k == TIME) && (t.is(i, WITH) || t.is(i, WITHOUT)) && t.is(i + 1, TIME) && t.is(i + 2, ZONE) {
        i += 3;
    }
    while arrays && t.at(i) == Some(Token::Punct(b'[')) && t.at(i + 1) == Some(Token::Punct(b']')) {
        i += 2;
    }
    i
}

/// At a type modifier starting at `i` (`20`, `-2`, `- 2`, `20::int`, `CAST(20 AS integer)`):
/// the index just past it. gram.y reads type modifiers as expressions, and pg_query ignores a
/// constant however written there as anywhere; a cast's own type takes no modifier here, so
/// this never recurses.
fn type_modifier_end(t: &Tokens, i: usize) -> Option<usize> {
    let plain_cast = |j: usize| t.is(j, CAST) && t.at(j + 1) == Some(Token::Punct(b'(')) && t.is(j + 3, AS);
    if plain_cast(i) && matches!(t.at(i + 2), Some(Token::Const(..))) {
        let close = i + 4 + usize::from(t.is_word_like(i + 4));
        return (close > i + 4 && t.at(close) == Some(Token::Punct(b')'))).then_some(close + 1);
    }
    let mut j = i + usize::from(t.is_operator(i, b'-'));
    if !matches!(t.at(j), Some(Token::Const(..)) | Some(Token::Param)) {
        return None;
    }
    j += 1;
    while t.at(j) == Some(Token::Cast) && t.is_word_like(j + 1) {
        j += 2;
    }
    Some(j)
}

/// The fields that may follow an interval literal (`INTERVAL '1' DAY TO SECOND`).
fn is_interval_field(t: &Tokens, i: usize) -> bool {
    ["year", "month", "day", "hour", "minute", "second"].iter().any(|f| t.word_is(i, f))
}

/// At a typed literal starting at `i` (`DATE '2024-01-01'`, `timestamp(3) with time zone '...'`,
/// `INTERVAL (0) '1' DAY TO SECOND`, `pg_catalog.int4 '5'`): the index of its string constant
/// and the index just past the literal. A type name the table does not know counts only where
/// `any_type` (an operand position of a query, where gram.y reads `func_name Sconst` as a cast);
/// after a known one a `$n` parameter counts too (pg_query's normalised form, `INTERVAL (0) $2`).
pub(super) fn typed_literal(t: &Tokens, i: usize, any_type: bool) -> Option<(usize, usize)> {
    let known_type = t.known(i).is_literal_type();
    let unknown_word = matches!(t.at(i), Some(Token::Word(..))) && t.known(i) == Known::NONE;
    if !(known_type || (any_type && unknown_word)) {
        return None;
    }
    let c = type_name_end(t, i, false);
    if c == i || !(t.is_string_const(c) || (known_type && t.at(c) == Some(Token::Param))) {
        return None;
    }
    let mut end = c + 1;
    if t.is(i, INTERVAL) && is_interval_field(t, end) {
        end += 1;
        if t.word_is(end, "to") && is_interval_field(t, end + 1) {
            end += 2;
        }
        if t.at(end) == Some(Token::Punct(b'('))
            && matches!(t.at(end + 1), Some(Token::Const(..)))
            && t.at(end + 2) == Some(Token::Punct(b')'))
        {
            end += 3;
        }
    }
    Some((c, end))
}

/// At `CAST ( constant AS type )` starting at `i`: the index of its closing parenthesis.
pub(super) fn cast_of_constant(t: &Tokens, i: usize) -> Option<usize> {
    let shape = t.is(i, CAST)
        && t.at(i + 1) == Some(Token::Punct(b'('))
        && matches!(t.at(i + 2), Some(Token::Const(..)) | Some(Token::Param))
        && !is_sign_operator(t, i + 2)
        && t.is(i + 3, AS);
    if !shape {
        return None;
    }
    let close = type_name_end(t, i + 4, true);
    (close > i + 4 && t.at(close) == Some(Token::Punct(b')'))).then_some(close)
}

/// True when the constant at `i` starts with a sign that gram.y reads as an operator: `+5` (only
/// `-` folds into a number, doNegate) and `-5::int` (the cast binds first: `-(5::int)`).
pub(super) fn is_sign_operator(t: &Tokens, i: usize) -> bool {
    match t.at(i) {
        Some(Token::Const(s, _)) => match t.src.get(s) {
            Some(b'+') => true,
            Some(b'-') => t.at(i + 1) == Some(Token::Cast),
            _ => false,
        },
        _ => false,
    }
}

/// At a `-` operator at `i` that folds into the number after it (`- 5`, gram.y's doNegate).
pub(super) fn folding_minus(t: &Tokens, i: usize) -> bool {
    t.is_operator(i, b'-') && t.is_unsigned_number(i + 1) && t.at(i + 2) != Some(Token::Cast)
}

/// At a constant written any way PostgreSQL folds to one (`5`, `-5`, `'5'::int`, `$1::int`,
/// `CAST(5 AS int)`, `int '5'`) starting at `i`: the index of the constant token and the index
/// just past the whole expression.
pub(super) fn constant_end(t: &Tokens, i: usize) -> Option<(usize, usize)> {
    match t.at(i)? {
        Token::Const(..) | Token::Param if !is_sign_operator(t, i) => Some((i, cast_end(t, i + 1))),
        Token::Operator(..) if folding_minus(t, i) => Some((i + 1, i + 2)),
        Token::Keyword(..) if matches!(t.known(i), TRUE | FALSE | NULL) => Some((i, cast_end(t, i + 1))),
        Token::Word(..) | Token::Keyword(..) => match typed_literal(t, i, false) {
            Some(literal) => Some(literal),
            None => cast_of_constant(t, i).map(|close| (i + 2, close + 1)),
        },
        _ => None,
    }
}

/// Past the `::type` at `i` that casts a constant, or `i` when there is none.
fn cast_end(t: &Tokens, i: usize) -> usize {
    if t.at(i) == Some(Token::Cast) {
        let past = type_name_end(t, i + 1, true);
        if past > i + 1 {
            return past;
        }
    }
    i
}

/// Parentheses around one constant beyond this many are left as written.
const MAX_PARENTHESES: usize = 16;

/// At `(` at `i` opening a constant in parentheses (`(5)`, `((5))`, `('x'::text)`, `(-5)`):
/// the index of the constant token and the index just past the last `)`. gram.y's
/// `'(' a_expr ')'` is the expression itself, so pg_query sees the constant alone. The
/// parentheses are counted first, so nesting costs no recursion.
pub(super) fn parenthesised_constant(t: &Tokens, i: usize) -> Option<(usize, usize)> {
    let mut opens = 0;
    while t.at(i + opens) == Some(Token::Punct(b'(')) {
        opens += 1;
        if opens > MAX_PARENTHESES {
            // Every `(` of a long run is tried: a bound keeps the run linear, not quadratic.
            return None;
        }
    }
    if opens == 0 || is_sign_operator(t, i + opens) {
        return None;
    }
    let (constant, mut end) = constant_end(t, i + opens)?;
    for _ in 0..opens {
        if t.at(end) != Some(Token::Punct(b')')) {
            return None;
        }
        end += 1;
    }
    Some((constant, end))
}

/// At a `-` operator at `i` before a number in parentheses, with no cast inside or after
/// (`-(5)`, `-((-5))`): gram.y's doNegate folds it into the number, as it folds `- 5`.
pub(super) fn negated_parenthesised_number(t: &Tokens, i: usize) -> bool {
    let number = |c: usize| matches!(t.at(c), Some(Token::Const(s, _)) if t.src.get(s).is_some_and(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-')));
    t.is_operator(i, b'-')
        && parenthesised_constant(t, i + 1).is_some_and(|(c, end)| {
            number(c) && t.at(c + 1) == Some(Token::Punct(b')')) && t.at(end) != Some(Token::Cast)
        })
}

/// At `(` at `i` opening a list of constants only (`EXECUTE q(1, 'a')`): the index past `)`.
pub(super) fn constant_list_end(t: &Tokens, i: usize) -> Option<usize> {
    if t.at(i) != Some(Token::Punct(b'(')) {
        return None;
    }
    let mut j = i + 1;
    loop {
        let (_, end) = constant_end(t, j)?;
        j = end;
        match t.at(j)? {
            Token::Punct(b',') => j += 1,
            Token::Punct(b')') => return Some(j + 1),
            _ => return None,
        }
    }
}

/// A quoted identifier that means the same as its unquoted, lower-case spelling (`"users"`).
pub(super) fn plain_quoted(src: &[u8], s: usize, e: usize) -> Option<&[u8]> {
    if src.get(s) != Some(&b'"') {
        return None;
    }
    let inner = src.get(s + 1..e.checked_sub(1)?)?;
    let (&first, rest) = inner.split_first()?;
    let plain = (first.is_ascii_lowercase() || first == b'_')
        && rest.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    (plain && !crate::keywords::is_keyword(inner)).then_some(inner)
}

/// At a type name written as one of gram.y's synonyms (`integer` and `int`, `decimal` and
/// `numeric`, `character varying` and `varchar`, `double precision` and `float`, `timestamp
/// without time zone` and `timestamp`): the spelling the fingerprint writes and the index past it.
pub(super) fn type_synonym(t: &Tokens, i: usize) -> Option<(&'static [u8], usize)> {
    const INTEGER: Known = known("integer");
    const DEC: Known = known("dec");
    const DECIMAL: Known = known("decimal");
    let k = t.known(i);
    match k {
        INTEGER => Some((b"int", i + 1)),
        DEC | DECIMAL => Some((b"numeric", i + 1)),
        CHARACTER | CHAR if t.word_is(i + 1, "varying") => Some((b"varchar", i + 2)),
        CHARACTER => Some((b"char", i + 1)),
        DOUBLE if t.word_is(i + 1, "precision") => Some((b"float", i + 2)),
        TIMESTAMP | TIME if t.is(i + 1, WITHOUT) && t.is(i + 2, TIME) && t.is(i + 3, ZONE) => {
            Some((if k == TIME { b"time" } else { b"timestamp" }, i + 4))
        }
        _ => None,
    }
}
