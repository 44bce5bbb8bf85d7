//! Utility statements whose names or spelling pg_query's fingerprint ignores: role, temporary
//! table, prepared-statement and cursor names, FETCH directions, keyword synonyms. Each head is
//! written in one canonical form; the names stay in the normalised text (the detectors read
//! them) but not in the hash.

use super::key::Edit;
use super::rules::{Tokens, TIME, ZONE};
use super::words::{
    ABORT, ALL, BY, DO, END, FETCH, FROM, GROUP, LOCAL, NOTIFY, PREPARE, RELEASE, ROLE, ROLLBACK, SAVEPOINT, SELECT,
    SESSION, SET, TABLE, TO, UPDATE, WITH,
};
use super::{Fingerprinter, Prev};
use crate::keywords::{known, Known};
use crate::lexer::Token;

/// The kind of statement, from its first words, for statement-specific rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatementKind {
    /// `SET name = value`: values are constants.
    Set,
    /// SAVEPOINT, RELEASE, ROLLBACK, LISTEN, UNLISTEN, NOTIFY, CLOSE: the names they take are not
    /// part of the shape.
    NamesIgnored,
    /// `DECLARE name CURSOR FOR ...`: the cursor name is not part of the shape.
    Declare,
    /// GRANT: the roles after TO are not part of the shape.
    Grant,
    /// REVOKE: the roles after FROM are not part of the shape.
    Revoke,
    /// ALTER: the role after OWNER TO is not part of the shape.
    Alter,
    /// CREATE or ALTER SEQUENCE, OPERATOR CLASS | FAMILY (`OPERATOR 1 <`): its numbers are options, part of the shape (pg_query keeps a
    /// DefElem's value and an Integer node; strings too, but by value, which the text does not
    /// normalise).
    Options,
    /// CREATE [OR REPLACE] FUNCTION | PROCEDURE: its options (LANGUAGE, the body string,
    /// volatility, COST...) are not part of the shape (pg_query skips them).
    Function,
    /// DO: nothing after DO is part of the shape (pg_query skips its arguments).
    Do,
    /// A query (SELECT, INSERT, UPDATE, DELETE, WITH, VALUES, TABLE, MERGE, EXPLAIN): any word
    /// before a string constant in operand position is a type (`func_name Sconst`), and the
    /// schema of a relation it reads or writes is not part of the shape.
    Query,
    /// Anything else.
    Other,
}

const LISTEN: Known = known("listen");
const UNLISTEN: Known = known("unlisten");
const CLOSE: Known = known("close");
const DECLARE: Known = known("declare");
const GRANT: Known = known("grant");
const REVOKE: Known = known("revoke");
const ALTER: Known = known("alter");
const INSERT: Known = known("insert");
const DELETE: Known = known("delete");
const VALUES: Known = known("values");
const EXPLAIN: Known = known("explain");
const MOVE: Known = known("move");
const DEALLOCATE: Known = known("deallocate");
const CREATE: Known = known("create");
const DROP: Known = known("drop");
const USER: Known = known("user");
const MAPPING: Known = known("mapping");
const IF: Known = known("if");
const EXISTS: Known = known("exists");
const NOT: Known = known("not");
const OR: Known = known("or");
const REPLACE: Known = known("replace");
const TEMP: Known = known("temp");
const TEMPORARY: Known = known("temporary");
const GLOBAL: Known = known("global");
const RECURSIVE: Known = known("recursive");
const VIEW: Known = known("view");
const SEQUENCE: Known = known("sequence");
const FUNCTION: Known = known("function");
const PROCEDURE: Known = known("procedure");
const IN: Known = known("in");
const NEXT: Known = known("next");
const PRIOR: Known = known("prior");
const FIRST: Known = known("first");
const LAST: Known = known("last");
const ABSOLUTE: Known = known("absolute");
const RELATIVE: Known = known("relative");
const FORWARD: Known = known("forward");
const BACKWARD: Known = known("backward");

impl StatementKind {
    /// Classifies the statement starting at token `i`.
    pub(super) fn of(t: &Tokens, i: usize) -> Self {
        match t.known(i) {
            SET => Self::Set,
            SAVEPOINT | RELEASE | ROLLBACK | LISTEN | UNLISTEN | NOTIFY | CLOSE => Self::NamesIgnored,
            DECLARE => Self::Declare,
            GRANT => Self::Grant,
            REVOKE => Self::Revoke,
            ALTER if t.is(i + 1, SEQUENCE) => Self::Options,
            CREATE if (1..4).any(|k| t.is(i + k, SEQUENCE)) => Self::Options,
            CREATE | ALTER if t.word_is(i + 1, "operator") => Self::Options,
            ALTER => Self::Alter,
            CREATE if t.is(i + 1, FUNCTION) || t.is(i + 1, PROCEDURE) => Self::Function,
            CREATE if t.is(i + 1, OR) && (t.is(i + 3, FUNCTION) || t.is(i + 3, PROCEDURE)) => Self::Function,
            DO => Self::Do,
            SELECT | INSERT | UPDATE | DELETE | WITH | VALUES | TABLE | EXPLAIN => Self::Query,
            _ if t.word_is(i, "merge") || t.at(i) == Some(Token::Punct(b'(')) => Self::Query,
            _ => Self::Other,
        }
    }
}

impl Fingerprinter {
    /// Writes the head of a statement starting at `i` in its canonical form when it is one pg_query
    /// reads past its spelling (END, ABORT, FETCH, DEALLOCATE, role statements, temporary
    /// relations); returns the index of the first token left to the generic rules.
    pub(super) fn statement_head(&mut self, t: &Tokens, i: usize, prev: &mut Prev) -> Option<usize> {
        let k = t.known(i);
        let end = match k {
            END | ABORT => {
                *prev = self.keyword(if k == END { b"COMMIT" } else { b"ROLLBACK" }, *prev);
                i + 1
            }
            FETCH | MOVE => self.fetch(t, i, prev),
            DEALLOCATE => {
                *prev = self.keyword(b"DEALLOCATE", *prev);
                let j = i + 1 + usize::from(t.is(i + 1, PREPARE));
                if t.is(j, ALL) {
                    *prev = self.keyword(b"ALL", *prev);
                } else if t.at(j).is_some() {
                    *prev = self.anonymous(*prev);
                }
                j + 1
            }
            CREATE | ALTER | DROP => match self.role_head(t, i, prev) {
                Some(end) => end,
                None if k == CREATE => self.temporary_head(t, i, prev)?,
                None => return None,
            },
            _ => return None,
        };
        let end = end.min(t.toks.len());
        self.show(t, i, end);
        Some(end)
    }

    /// `CREATE | ALTER | DROP  ROLE | USER | GROUP [IF EXISTS] name [, ...] [WITH]`: pg_query
    /// ignores the role names (RoleSpec), and DROP and ALTER do not tell USER, GROUP and ROLE apart.
    fn role_head(&mut self, t: &Tokens, i: usize, prev: &mut Prev) -> Option<usize> {
        let k = t.known(i);
        let what = t.known(i + 1);
        if !matches!(what, ROLE | USER | GROUP) || t.is(i + 2, MAPPING) {
            return None;
        }
        *prev = self.keyword(
            if k == CREATE {
                b"CREATE"
            } else if k == ALTER {
                b"ALTER"
            } else {
                b"DROP"
            },
            *prev,
        );
        let canonical: &[u8] = match (k, what) {
            (CREATE, USER) => b"USER",
            (CREATE, GROUP) => b"GROUP",
            _ => b"ROLE",
        };
        *prev = self.keyword(canonical, *prev);
        let mut j = i + 2;
        if k == DROP && t.is(j, IF) && t.is(j + 1, EXISTS) {
            *prev = self.keyword(b"IF EXISTS", *prev);
            j += 2;
        }
        while t.is_name(j) {
            *prev = self.unhashed_name(t, j, *prev);
            j += 1;
            if k != DROP || t.at(j) != Some(Token::Punct(b',')) {
                break;
            }
            *prev = self.push_normalised(t.src, Token::Punct(b','), t.spans[j], *prev);
            j += 1;
        }
        // `CREATE ROLE r WITH LOGIN` is `CREATE ROLE r LOGIN`.
        if k != DROP && t.is(j, WITH) {
            j += 1;
        }
        Some(j)
    }

    /// `CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP | TEMPORARY [RECURSIVE] TABLE | VIEW | SEQUENCE
    /// [IF NOT EXISTS] name`: pg_query ignores a temporary relation's name.
    fn temporary_head(&mut self, t: &Tokens, i: usize, prev: &mut Prev) -> Option<usize> {
        let mut j = i + 1;
        let replace = t.is(j, OR) && t.is(j + 1, REPLACE);
        if replace {
            j += 2;
        }
        if t.is(j, GLOBAL) || t.is(j, LOCAL) {
            j += 1;
        }
        if !(t.is(j, TEMP) || t.is(j, TEMPORARY)) {
            return None;
        }
        j += 1;
        let recursive = t.is(j, RECURSIVE);
        j += usize::from(recursive);
        let what: &[u8] = match t.known(j) {
            TABLE => b"TABLE",
            VIEW => b"VIEW",
            SEQUENCE => b"SEQUENCE",
            _ => return None,
        };
        j += 1;
        let if_not_exists = t.is(j, IF) && t.is(j + 1, NOT) && t.is(j + 2, EXISTS);
        j += 3 * usize::from(if_not_exists);
        if !t.is_name(j) {
            return None;
        }
        *prev = self.keyword(b"CREATE", *prev);
        if replace {
            *prev = self.keyword(b"OR REPLACE", *prev);
        }
        *prev = self.keyword(b"TEMP", *prev);
        if recursive {
            *prev = self.keyword(b"RECURSIVE", *prev);
        }
        *prev = self.keyword(what, *prev);
        if if_not_exists {
            *prev = self.keyword(b"IF NOT EXISTS", *prev);
        }
        *prev = self.unhashed_name(t, j, *prev);
        Some(j + 1)
    }

    /// `FETCH | MOVE [direction] [FROM | IN] cursor`, written as `FETCH <FORWARD | BACKWARD |
    /// ABSOLUTE | RELATIVE> <count | ALL> FROM _` (gram.y's fetch_args: `NEXT`, `1` and nothing
    /// are all FORWARD 1; the count is part of the shape, the cursor name is not).
    fn fetch(&mut self, t: &Tokens, i: usize, prev: &mut Prev) -> usize {
        let verb: &[u8] = if t.is(i, FETCH) { b"FETCH" } else { b"MOVE" };
        let count = |j: usize| -> Option<&[u8]> {
            match t.at(j)? {
                Token::Const(s, e) => {
                    let n = t.src.get(s..e)?;
                    Some(n.strip_prefix(b"+").unwrap_or(n))
                }
                _ if t.is(j, ALL) => Some(b"ALL"),
                _ => None,
            }
        };
        let mut j = i + 1;
        let (direction, n, words): (&[u8], &[u8], usize) = match t.known(j) {
            NEXT => (b"FORWARD", b"1", 1),
            PRIOR => (b"BACKWARD", b"1", 1),
            FIRST => (b"ABSOLUTE", b"1", 1),
            LAST => (b"ABSOLUTE", b"-1", 1),
            ABSOLUTE | RELATIVE | FORWARD | BACKWARD => {
                let direction: &[u8] = match t.known(j) {
                    ABSOLUTE => b"ABSOLUTE",
                    RELATIVE => b"RELATIVE",
                    FORWARD => b"FORWARD",
                    _ => b"BACKWARD",
                };
                match count(j + 1) {
                    Some(n) => (direction, n, 2),
                    None => (direction, b"1", 1),
                }
            }
            _ => match count(j) {
                Some(n) => (b"FORWARD", n, 1),
                None => (b"FORWARD", b"1", 0),
            },
        };
        j += words;
        *prev = self.keyword(verb, *prev);
        *prev = self.keyword(direction, *prev);
        *prev = self.keyword(n, *prev);
        if t.is(j, FROM) || t.is(j, IN) {
            j += 1;
        }
        *prev = self.keyword(b"FROM", *prev);
        if t.is_name(j) {
            *prev = self.anonymous(*prev);
            j += 1;
        }
        j
    }

    /// Writes the name at `j` as it normalises, left out of the hash.
    pub(super) fn unhashed_name(&mut self, t: &Tokens, j: usize, prev: Prev) -> Prev {
        let before = self.out.len();
        let tok = match t.at(j) {
            Some(Token::QuotedIdent(s, e)) => match super::rules::plain_quoted(t.src, s, e) {
                Some(_) => Token::Word(s + 1, e - 1),
                None => Token::QuotedIdent(s, e),
            },
            Some(tok) => tok,
            None => return prev,
        };
        let prev = self.push_normalised(t.src, tok, t.spans[j], prev);
        self.unhashed(before, Edit::Omit);
        prev
    }
}

pub(super) const XML: Known = known("xml");
const SHOW: Known = known("show");
const RESET: Known = known("reset");

impl Fingerprinter {
    /// `SET [LOCAL | SESSION] TIME ZONE v`, `SHOW TIME ZONE`, `RESET TIME ZONE` and `SET XML
    /// OPTION v` at `i` (TIME or XML): gram.y reads them as the settings `timezone` and
    /// `xmloption`, so they are written `SET timezone TO v`... (and `SET TIME ZONE LOCAL` as `SET
    /// timezone TO DEFAULT`). Returns the index past what was written and whether values follow.
    pub(super) fn setting_synonym(&mut self, t: &Tokens, i: usize, prev: &mut Prev) -> Option<(usize, bool)> {
        let before = t.known(i.wrapping_sub(1));
        let set = matches!(before, SET | LOCAL | SESSION);
        if !set && !matches!(before, SHOW | RESET) {
            return None;
        }
        let (name, end): (&[u8], usize) = match t.known(i) {
            TIME if t.is(i + 1, ZONE) => (b"timezone", i + 2),
            XML if t.word_is(i + 1, "option") => (b"xmloption", i + 2),
            _ => return None,
        };
        self.show(t, i, end);
        *prev = self.word_as(t.src, t.toks[i], name, *prev);
        if !set {
            return Some((end, false));
        }
        *prev = self.keyword(b"TO", *prev);
        if name == b"timezone" && t.is(end, LOCAL) {
            self.show(t, end, end + 1);
            *prev = self.keyword(b"DEFAULT", *prev);
            return Some((end + 1, false));
        }
        Some((end, true))
    }
}

/// True when role names follow the keyword at `i` in a statement (first token at `head`) that is
/// not a GRANT or REVOKE:
/// `[DROP | REASSIGN] OWNED BY r, ...`, REASSIGN's `TO r`, `CREATE ROLE ... IN ROLE r, ...` and
/// `ALTER ROLE ... RENAME TO r` (pg_query ignores role names, RoleSpec).
pub(super) fn starts_role_list(t: &Tokens, head: usize, i: usize) -> bool {
    const RENAME: Known = known("rename");
    let before = i.wrapping_sub(1);
    match t.known(i) {
        BY => t.word_is(before, "owned") && (t.is(head, DROP) || t.word_is(head, "reassign")),
        TO => {
            t.word_is(head, "reassign")
                || (t.is(before, RENAME) && t.is(head, ALTER) && matches!(t.known(head + 1), ROLE | USER | GROUP))
        }
        ROLE => t.is(before, IN) && matches!(t.known(head + 1), ROLE | USER | GROUP),
        _ => false,
    }
}
