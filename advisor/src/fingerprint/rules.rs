//! Rewrites that make our grouping agree with pg_query's fingerprint where a lexer can see it:
//! utility-statement names, SET values, aliases, typed literals, casts of constants, constant
//! OFFSETs and boolean/NULL constants are not part of a query's shape.

use crate::keywords::is_keyword;
use crate::lexer::Token;

/// The kind of statement, from its first word, for statement-specific rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatementKind {
    /// `SET name = value`: values are constants.
    Set,
    /// SAVEPOINT, RELEASE, ROLLBACK, DEALLOCATE, LISTEN, UNLISTEN, NOTIFY, CLOSE:
    /// the names they take are not part of the shape.
    NamesIgnored,
    /// FETCH, MOVE: the cursor name is not part of the shape, the row count is.
    Fetch,
    /// `DECLARE name CURSOR FOR ...`: the cursor name is not part of the shape.
    Declare,
    /// `END` (a synonym of COMMIT).
    End,
    /// `ABORT` (a synonym of ROLLBACK).
    Abort,
    /// Anything else.
    Other,
}

impl StatementKind {
    /// Classifies a statement by its first token.
    pub(super) fn of(src: &[u8], first: Option<Token>) -> Self {
        let (Some(Token::Word(s, e)) | Some(Token::Keyword(s, e))) = first else { return Self::Other };
        let w = &src[s..e];
        let is = |k: &str| w.eq_ignore_ascii_case(k.as_bytes());
        if is("set") {
            Self::Set
        } else if ["savepoint", "release", "rollback", "deallocate", "listen", "unlisten", "notify", "close"]
            .iter()
            .any(|k| is(k))
        {
            Self::NamesIgnored
        } else if is("fetch") || is("move") {
            Self::Fetch
        } else if is("declare") {
            Self::Declare
        } else if is("end") {
            Self::End
        } else if is("abort") {
            Self::Abort
        } else {
            Self::Other
        }
    }
}

/// The word of a `Word` token, if it is one.
pub(super) fn word(src: &[u8], tok: Option<Token>) -> Option<&[u8]> {
    match tok {
        Some(Token::Word(s, e)) | Some(Token::Keyword(s, e)) => Some(&src[s..e]),
        _ => None,
    }
}

/// True when `tok` is the word `kw` (any case).
pub(super) fn is_word(src: &[u8], tok: Option<Token>, kw: &str) -> bool {
    word(src, tok).is_some_and(|w| w.eq_ignore_ascii_case(kw.as_bytes()))
}

/// True for an identifier: an unquoted non-keyword word or a quoted identifier.
pub(super) fn is_name(tok: Option<Token>) -> bool {
    matches!(tok, Some(Token::Word(..)) | Some(Token::QuotedIdent(..)))
}

/// True for a string constant (any quoting), as opposed to a number.
pub(super) fn is_string_const(src: &[u8], tok: Option<Token>) -> bool {
    match tok {
        Some(Token::Const(s, _)) => matches!(src[s], b'\'' | b'e' | b'E' | b'u' | b'U' | b'n' | b'N' | b'$'),
        _ => false,
    }
}

/// Type names that prefix a typed literal (`DATE '2024-01-01'`, `INTERVAL '1 day'`).
pub(super) fn is_literal_type(src: &[u8], tok: Option<Token>) -> bool {
    const TYPES: &[&str] = &[
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "json",
        "jsonb",
        "uuid",
        "inet",
        "cidr",
        "numeric",
        "bool",
        "boolean",
        "int",
        "int2",
        "int4",
        "int8",
        "integer",
        "bigint",
        "smallint",
        "text",
        "varchar",
        "bytea",
        "money",
        "point",
        "real",
        "float4",
        "float8",
        "decimal",
        "xml",
        "tsquery",
        "tsvector",
        "macaddr",
    ];
    word(src, tok).is_some_and(|w| TYPES.iter().any(|t| w.eq_ignore_ascii_case(t.as_bytes())))
}

/// Index just past a type name starting at `i` (after `::`), or `i` when there is none:
/// `schema.type`, multi-word types, a `(typmod)` and `[]` suffixes.
pub(super) fn skip_type_name(src: &[u8], toks: &[Token], mut i: usize) -> usize {
    let at = |j: usize| toks.get(j).copied();
    if !matches!(at(i), Some(Token::Word(..)) | Some(Token::Keyword(..)) | Some(Token::QuotedIdent(..))) {
        return i;
    }
    let first = i;
    i += 1;
    while at(i) == Some(Token::Punct(b'.'))
        && matches!(at(i + 1), Some(Token::Word(..)) | Some(Token::Keyword(..)) | Some(Token::QuotedIdent(..)))
    {
        i += 2;
    }
    let two = |a: &str, b: &str| is_word(src, at(first), a) && is_word(src, at(i), b);
    if two("double", "precision") || two("character", "varying") || two("bit", "varying") {
        i += 1;
    } else if (is_word(src, at(first), "timestamp") || is_word(src, at(first), "time"))
        && (is_word(src, at(i), "with") || is_word(src, at(i), "without"))
        && is_word(src, at(i + 1), "time")
        && is_word(src, at(i + 2), "zone")
    {
        i += 3;
    }
    if at(i) == Some(Token::Punct(b'(')) {
        let mut j = i + 1;
        while matches!(at(j), Some(Token::Const(..)) | Some(Token::Punct(b','))) {
            j += 1;
        }
        if at(j) == Some(Token::Punct(b')')) {
            i = j + 1;
        }
    }
    while at(i) == Some(Token::Punct(b'[')) && at(i + 1) == Some(Token::Punct(b']')) {
        i += 2;
    }
    i
}

/// At `CAST ( constant AS type )` starting at `i`: the index of its closing parenthesis.
pub(super) fn cast_of_constant(src: &[u8], toks: &[Token], i: usize) -> Option<usize> {
    let at = |j: usize| toks.get(j).copied();
    let shape = is_word(src, at(i), "cast")
        && at(i + 1) == Some(Token::Punct(b'('))
        && matches!(at(i + 2), Some(Token::Const(..)) | Some(Token::Param))
        && is_word(src, at(i + 3), "as");
    if !shape {
        return None;
    }
    let close = skip_type_name(src, toks, i + 4);
    (close > i + 4 && at(close) == Some(Token::Punct(b')'))).then_some(close)
}

/// At a constant written any way PostgreSQL folds to one (`5`, `-5`, `'5'::int`, `$1::int`,
/// `CAST(5 AS int)`, `int '5'`) starting at `i`: the index of the constant token and the index
/// just past the whole expression.
pub(super) fn constant_end(src: &[u8], toks: &[Token], i: usize) -> Option<(usize, usize)> {
    let at = |j: usize| toks.get(j).copied();
    match at(i)? {
        Token::Const(..) | Token::Param => {
            let mut end = i + 1;
            while at(end) == Some(Token::Cast) {
                let past = skip_type_name(src, toks, end + 1);
                if past == end + 1 {
                    break;
                }
                end = past;
            }
            Some((i, end))
        }
        Token::Operator(s, e) if e == s + 1 && matches!(src[s], b'-' | b'+') => match at(i + 1)? {
            Token::Const(c, _) if src[c].is_ascii_digit() || src[c] == b'.' => constant_end(src, toks, i + 1),
            _ => None,
        },
        Token::Word(..) | Token::Keyword(..) if is_string_const(src, at(i + 1)) && is_literal_type(src, at(i)) => {
            Some((i + 1, i + 2))
        }
        Token::Word(..) | Token::Keyword(..) => cast_of_constant(src, toks, i).map(|close| (i + 2, close + 1)),
        _ => None,
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
    (plain && !is_keyword(inner)).then_some(inner)
}

/// True when `tok` is a keyword after which a relation name follows.
pub(super) fn precedes_relation(src: &[u8], tok: Option<Token>) -> bool {
    ["from", "join", "update", "into", "table"].iter().any(|k| is_word(src, tok, k))
}
