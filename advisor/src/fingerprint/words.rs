//! The words the rules look for, and the rules that start at a word and consume tokens:
//! aliases, typed literals, `CAST(constant AS type)`, a constant OFFSET, `LIMIT ALL`,
//! EXECUTE's arguments, and the clauses (target lists, GROUP BY) the rewrite tracks.

use super::key::{self, Edit, KeyEdit};
use super::rules::{
    cast_of_constant, constant_end, constant_list_end, parenthesised_constant, type_name_end, typed_literal, Tokens,
};
use super::utility::StatementKind;
use super::writer::ListKind;
use super::{Clause, Fingerprinter, KeywordKind, Prev};
use crate::keywords::{known, Known};
use crate::lexer::Token;

pub(super) const AS: Known = known("as");
pub(super) const CAST: Known = known("cast");
pub(super) const OFFSET: Known = known("offset");
pub(super) const LIMIT: Known = known("limit");
pub(super) const ALL: Known = known("all");
pub(super) const EXTRACT: Known = known("extract");
pub(super) const EXECUTE: Known = known("execute");
pub(super) const PREPARE: Known = known("prepare");
pub(super) const OWNER: Known = known("owner");
pub(super) const TO: Known = known("to");
pub(super) const ROW: Known = known("row");
pub(super) const FROM: Known = known("from");
pub(super) const JOIN: Known = known("join");
pub(super) const UPDATE: Known = known("update");
pub(super) const INTO: Known = known("into");
pub(super) const TABLE: Known = known("table");
pub(super) const SET: Known = known("set");
pub(super) const SELECT: Known = known("select");
pub(super) const DISTINCT: Known = known("distinct");
pub(super) const ON: Known = known("on");
pub(super) const GROUP: Known = known("group");
pub(super) const BY: Known = known("by");
pub(super) const HAVING: Known = known("having");
pub(super) const WINDOW: Known = known("window");
pub(super) const ORDER: Known = known("order");
pub(super) const FETCH: Known = known("fetch");
pub(super) const FOR: Known = known("for");
pub(super) const UNION: Known = known("union");
pub(super) const INTERSECT: Known = known("intersect");
pub(super) const EXCEPT: Known = known("except");
pub(super) const RETURNING: Known = known("returning");
pub(super) const WHERE: Known = known("where");
pub(super) const INNER: Known = known("inner");
pub(super) const RETURN: Known = known("return");
pub(super) const DO: Known = known("do");
pub(super) const RETURNS: Known = known("returns");
pub(super) const BEGIN: Known = known("begin");
pub(super) const NOTIFY: Known = known("notify");
pub(super) const SETOF: Known = known("setof");
pub(super) const WORK: Known = known("work");
pub(super) const TRANSACTION: Known = known("transaction");
pub(super) const COMMIT: Known = known("commit");
pub(super) const END: Known = known("end");
pub(super) const ROLLBACK: Known = known("rollback");
pub(super) const ABORT: Known = known("abort");
pub(super) const SAVEPOINT: Known = known("savepoint");
pub(super) const RELEASE: Known = known("release");
pub(super) const LEVEL: Known = known("level");
pub(super) const ISOLATION: Known = known("isolation");
pub(super) const READ: Known = known("read");
pub(super) const REPEATABLE: Known = known("repeatable");
pub(super) const ONLY: Known = known("only");
pub(super) const WRITE: Known = known("write");
pub(super) const OUTER: Known = known("outer");
pub(super) const RESET: Known = known("reset");
pub(super) const WITH: Known = known("with");
pub(super) const SESSION: Known = known("session");
pub(super) const LOCAL: Known = known("local");
pub(super) const ROLE: Known = known("role");
pub(super) const AUTHORIZATION: Known = known("authorization");
pub(super) const DEFAULT: Known = known("default");
pub(super) const TRUE: Known = known("true");
pub(super) const FALSE: Known = known("false");
pub(super) const NULL: Known = known("null");
pub(super) const IN: Known = known("in");
pub(super) const AND: Known = known("and");
pub(super) const OR: Known = known("or");
pub(super) const NOT: Known = known("not");
pub(super) const THEN: Known = known("then");
pub(super) const ELSE: Known = known("else");
pub(super) const WHEN: Known = known("when");
pub(super) const CASE: Known = known("case");
pub(super) const BETWEEN: Known = known("between");
pub(super) const ARRAY: Known = known("array");
pub(super) const VALUES: Known = known("values");

impl Fingerprinter {
    /// Rules that start at a word and consume tokens: aliases, typed literals, `CAST(constant AS
    /// type)`, a constant OFFSET, `LIMIT ALL`, EXECUTE's constant arguments. Returns the index
    /// of the next token when one applied.
    pub(super) fn word_rules(&mut self, t: &Tokens, i: usize, kind: StatementKind, prev: &mut Prev) -> Option<usize> {
        let sql = t.src;
        let k = t.known(i);
        let next_const = matches!(t.at(i + 1), Some(Token::Const(..)))
            || (t.at(i + 1) == Some(Token::Punct(b'.')) && matches!(t.at(i + 3), Some(Token::Const(..))));
        if !k.is_keyword() && !k.is_literal_type() && !next_const {
            // An identifier no rule starts at: the common case.
            return None;
        }
        // In a utility statement AS names a type (`CREATE DOMAIN d AS int`, `CREATE CAST (a AS b)
        // AS IMPLICIT`, `CREATE SEQUENCE s AS bigint`), except in the query it holds (`CREATE VIEW
        // v AS SELECT a AS b`).
        if k == AS
            && (kind == StatementKind::Query || self.query_seen)
            && (t.is_name(i + 1) || matches!(t.known(i + 1), TRUE | FALSE | NULL))
            && self.stack.last().is_none_or(|o| o.kind != ListKind::Cast)
        {
            // Column and table aliases are not part of the shape.
            self.show(t, i, i + 2);
            return Some(i + 2);
        }
        let operand = matches!(*prev, Prev::Operator | Prev::Open | Prev::Comma | Prev::Keyword(_))
            && *prev != Prev::Keyword(KeywordKind::Operand);
        let maybe_literal = k.is_literal_type() || next_const;
        if let Some((c, end)) =
            maybe_literal.then(|| typed_literal(t, i, kind == StatementKind::Query && operand)).flatten()
        {
            // `DATE '2024-01-01'` is a constant, like `'2024-01-01'::date`.
            self.show(t, i, c);
            *prev = self.constant(t, c, *prev);
            self.show(t, c + 1, end);
            return Some(end);
        }
        if k == CAST {
            let close = cast_of_constant(t, i)?;
            // `CAST(5 AS int)` is the constant, like `5::int`.
            self.show(t, i, i + 2);
            *prev = self.constant(t, i + 2, *prev);
            self.show(t, i + 3, close + 1);
            return Some(close + 1);
        }
        if matches!(k, LIMIT | OFFSET | FETCH) && (kind == StatementKind::Query || self.query_seen) {
            if let Some(clause) = constant_limit(t, i) {
                // A limit clause of constants (`LIMIT 10`, `LIMIT ALL`, `OFFSET 5`, `LIMIT $1
                // OFFSET $2`, `FETCH FIRST 5 ROWS ONLY`) is one shape for pg_query, apart from
                // no clause; the text keeps it as written, the hash reads `LIMIT $n`.
                let before = self.out.len();
                let first = self.params + 1;
                let mut j = i;
                while j < clause.end {
                    match clause.operands.iter().flatten().find(|o| o.start == j) {
                        Some(o) => {
                            self.show(t, j, o.constant);
                            *prev = self.constant(t, o.constant, *prev);
                            self.show(t, o.constant + 1, o.end);
                            j = o.end;
                        }
                        None => {
                            *prev = self.push(sql, t.toks[j], t.spans[j], *prev);
                            if t.is(j, ALL) {
                                // Numbered as the constant it stands for.
                                self.params += 1;
                            }
                            j += 1;
                        }
                    }
                }
                // `LIMIT $n` is hashed as written: the one pass writes it so too.
                let canonical = k == LIMIT && !t.is(i + 1, ALL) && clause.end == i + 2 && self.params == first;
                if !canonical {
                    self.unhashed(before, Edit::Limit(first));
                }
                // The clause takes one number, however many constants it has, so that the
                // placeholders after it are numbered alike (`$n` after `OFFSET $n` in the text
                // repeats one of the clause's).
                self.params = first;
                return Some(clause.end);
            }
        }
        if k == EXECUTE && t.is_name(i + 1) {
            // EXECUTE's name and constant arguments are not part of the shape.
            *prev = self.push(sql, t.toks[i], t.spans[i], *prev);
            self.display.token(sql, t.spans[i + 1]);
            *prev = self.anonymous(*prev);
            let Some(end) = constant_list_end(t, i + 2) else { return Some(i + 2) };
            for j in i + 2..end {
                match t.toks[j] {
                    Token::Const(s, e) => {
                        self.constants.push((s, e));
                        self.display.constant(sql, t.spans[j]);
                    }
                    _ => self.display.token(sql, t.spans[j]),
                }
            }
            return Some(end);
        }
        None
    }

    /// Closes a target list or GROUP BY clause at the current end of the output.
    pub(super) fn end_clause(&mut self, clause: Clause) {
        if clause.within_group_by >= key::MAX_NESTED {
            // Not read inside that many GROUP BYs: each level's list holds every level inside
            // it, so reading them all would cost the square of the text (`GROUP BY (SELECT 1
            // GROUP BY (...))` thousands deep). `key::render` applies no edit nested that deep
            // either, unless some of the GROUP BYs around it had nothing to drop.
            return;
        }
        let end = self.out.len();
        let Some(list) = self.out.get(clause.start..end) else { return };
        if clause.group_by
            && key::items(list.get(key::GROUP_BY.len()..).unwrap_or_default()).iter().any(|i| key::is_placeholder(i))
        {
            self.key.push(KeyEdit { start: clause.start, end, edit: Edit::GroupBy });
        }
        // pg_query also reads a target list as a set (`SELECT a, b` is `SELECT b, a`); sorting
        // every query's target list costs more than the rare reordered pair is worth.
    }

    /// Writes the constant token at `c` and records it; a keyword there (`TRUE`, `NULL`) is
    /// written as the constant it is, not recorded (it has no literal value).
    pub(super) fn constant(&mut self, t: &Tokens, c: usize, prev: Prev) -> Prev {
        let tok = match t.toks[c] {
            Token::Const(s, e) => {
                self.constants.push((s, e));
                t.toks[c]
            }
            Token::Keyword(s, e) => Token::Const(s, e),
            tok => tok,
        };
        self.push(t.src, tok, t.spans[c], prev)
    }

    /// At `::` at `i` after a constant: shows the cast and returns the index past its type name.
    pub(super) fn skip_cast(&mut self, t: &Tokens, i: usize) -> Option<usize> {
        if t.at(i) != Some(Token::Cast) {
            return None;
        }
        let j = type_name_end(t, i + 1, true);
        if j == i + 1 {
            return None;
        }
        self.show(t, i, j);
        Some(j)
    }
}

/// True when the bracket depth is `depth`.
pub(super) fn depth_is(f: &Fingerprinter, depth: usize) -> bool {
    f.stack.len() == depth
}

/// At the type after a function's RETURNS starting at `i` (`int`, `SETOF t`, `TABLE (a int)`):
/// the index of the first option after it.
pub(super) fn function_options(t: &Tokens, mut i: usize) -> usize {
    if t.is(i, SETOF) {
        i += 1;
    }
    if t.is(i, TABLE) && t.at(i + 1) == Some(Token::Punct(b'(')) {
        let mut depth = 0usize;
        while let Some(tok) = t.at(i) {
            i += 1;
            match tok {
                Token::Punct(b'(') => depth += 1,
                Token::Punct(b')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
        }
        return i;
    }
    type_name_end(t, i, true)
}

/// True when the token at `i` ends a target list (`group_by` false) or a GROUP BY clause open at
/// the current depth.
pub(super) fn ends_clause(t: &Tokens, i: usize, group_by: bool) -> bool {
    ends_clause_at(t.toks[i], t.known[i], group_by)
}

/// True when token `tok` (word id `k`) ends a target list (`group_by` false) or a GROUP BY
/// clause open at the current depth.
#[inline]
pub(super) fn ends_clause_at(tok: Token, k: Known, group_by: bool) -> bool {
    match tok {
        Token::Punct(b')' | b';') => true,
        Token::Keyword(..) => match k {
            HAVING | WINDOW | ORDER | LIMIT | OFFSET | FETCH | FOR | UNION | INTERSECT | EXCEPT | RETURNING => true,
            FROM | INTO | WHERE | GROUP => !group_by,
            _ => false,
        },
        _ => false,
    }
}

/// True when the name at `i` is a column alias written without AS: a name right after a whole
/// item of a target list and before the end of the item.
pub(super) fn is_column_alias(t: &Tokens, i: usize, prev: Prev) -> bool {
    let name = match t.toks[i] {
        Token::Word(..) => t.known[i] == Known::NONE,
        Token::QuotedIdent(..) => true,
        _ => false,
    };
    name && matches!(prev, Prev::Word | Prev::Operand | Prev::Close)
        && (!t.known(i.wrapping_sub(1)).is_literal_type() || t.at(i.wrapping_sub(2)) == Some(Token::Cast))
        && (t.at(i + 1).is_none() || t.at(i + 1) == Some(Token::Punct(b',')) || ends_clause(t, i + 1, false))
}

/// A limit clause made only of constants: where it ends and its constants.
struct ConstantLimit {
    end: usize,
    operands: [Option<Operand>; 3],
}

/// A constant operand of a limit clause: from `start` to `end`, its constant token at `constant`.
#[derive(Clone, Copy)]
struct Operand {
    start: usize,
    constant: usize,
    end: usize,
}

/// At LIMIT, OFFSET or FETCH at `i`: the limit clause starting there when it is made only of
/// constants (`LIMIT 10`, `LIMIT ALL`, `OFFSET 5 ROWS`, `FETCH FIRST [5] ROWS ONLY`, in any
/// order) and ends the query level (a keyword, `)`, `;` or the end follows it).
fn constant_limit(t: &Tokens, mut i: usize) -> Option<ConstantLimit> {
    let rows = |j: usize| t.word_is(j, "rows") || t.word_is(j, "row");
    let mut operands = [None; 3];
    let start = i;
    // Each item at most once (`LIMIT 1 LIMIT 2` is not one clause).
    let mut seen = [false; 3];
    for slot in &mut operands {
        let k = t.known(i);
        let item = match k {
            LIMIT => 0,
            OFFSET => 1,
            FETCH => 2,
            _ => break,
        };
        if std::mem::replace(&mut seen[item], true) {
            break;
        }
        match k {
            LIMIT if t.is(i + 1, ALL) => i += 2,
            LIMIT | OFFSET => {
                let o = operand(t, i + 1)?;
                i = o.end + usize::from(k == OFFSET && rows(o.end));
                *slot = Some(o);
            }
            FETCH if t.word_is(i + 1, "first") || t.word_is(i + 1, "next") => {
                let mut j = i + 2;
                if !rows(j) {
                    let o = operand(t, j)?;
                    j = o.end;
                    *slot = Some(o);
                }
                if !rows(j) || !t.word_is(j + 1, "only") {
                    return None;
                }
                i = j + 2;
            }
            _ => break,
        }
    }
    let ends = matches!(t.at(i), None | Some(Token::Punct(b')' | b';')) | Some(Token::Keyword(..)));
    (ends && i > start).then_some(ConstantLimit { end: i, operands })
}

/// The constant operand starting at `i` (`5`, `$1`, `5::int`, `(5)`, `CAST(5 AS int)`, `NULL`).
fn operand(t: &Tokens, i: usize) -> Option<Operand> {
    let (constant, end) =
        if t.at(i) == Some(Token::Punct(b'(')) { parenthesised_constant(t, i)? } else { constant_end(t, i)? };
    Some(Operand { start: i, constant, end })
}
