//! The full rewrite: every token of a statement through the rules of [`super::rules`],
//! [`super::words`] and [`super::utility`], then the generic normalisation of [`super::writer`].

use super::key::{has_digit_run, Edit, KeyEdit};
use super::rules::{
    folding_minus, is_sign_operator, negated_parenthesised_number, parenthesised_constant, type_synonym, Tokens, TIME,
};
use super::utility::{starts_role_list, StatementKind, XML};
use super::words::*;
use super::{writer, Fingerprinter, KeywordKind, Prev};
use crate::keywords::Known;
use crate::lexer::Token;

impl Fingerprinter {
    /// Walks the tokens, applying the rules of [`super::rules`] and [`super::utility`] before the generic
    /// normalisation.
    pub(super) fn rewrite(&mut self, t: &Tokens) {
        let sql = t.src;
        let mut prev = Prev::Start;
        let mut kind = StatementKind::Other;
        // The index of the current statement's first token.
        let mut head = 0;
        let mut set_values = false;
        let mut declare_named = false;
        // A name to write as `_` (an EXTRACT field, a prepared statement's name).
        let mut anonymous_at = usize::MAX;
        // A name to write but leave out of the hash (OWNER TO role, a relation's schema).
        let mut unhashed_at = usize::MAX;
        // In the role list of a GRANT or REVOKE: its names are left out of the hash.
        let mut roles = false;
        // The token that is a relation name though no keyword precedes it (after `schema.`).
        let mut relation_at = usize::MAX;
        let mut columns_at = usize::MAX;
        // From this token on, the statement is left out of the hash (a function's options, DO).
        let mut omit_at = usize::MAX;
        // Output offset where the part left out of the hash started.
        let mut omit_from: Option<usize> = None;
        // A comma between SET values, at this output offset, before this token.
        let mut set_comma: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < t.toks.len() {
            let tok = t.toks[i];
            let span = t.spans[i];
            let k = t.known[i];
            let at_top = self.stack.is_empty();
            if matches!(prev, Prev::Start | Prev::Semicolon) {
                if let Some(from) = omit_from.take() {
                    // Up to the `;` that ended the statement.
                    let end = self.out.len().saturating_sub(usize::from(prev == Prev::Semicolon));
                    self.key.push(KeyEdit { start: from, end, edit: Edit::Omit });
                }
                omit_at = usize::MAX;
                kind = StatementKind::of(t, i);
                head = i;
                self.query_seen = false;
                set_values = false;
                declare_named = false;
                roles = false;
                if let Some(next) = self.statement_head(t, i, &mut prev) {
                    i = next;
                    continue;
                }
            }
            let is_name = matches!(tok, Token::Word(..) | Token::QuotedIdent(..));
            // Queries skip the checks of utility statements and of marks no rule has set: this
            // loop runs for every token of every statement.
            let mut option_value = false;
            if kind != StatementKind::Query || i == anonymous_at || i == unhashed_at || i == columns_at {
                if i == omit_at {
                    omit_from = Some(self.out.len());
                }
                if omit_from.is_some() && at_top && (t.is(i, RETURN) || t.is(i, BEGIN)) {
                    // A function's SQL body (RETURN expr, BEGIN ATOMIC ... END) is part of the shape.
                    let from = omit_from.take().unwrap_or_default();
                    self.key.push(KeyEdit { start: from, end: self.out.len(), edit: Edit::Omit });
                }
                match kind {
                    StatementKind::Do if i > 0 && t.is(i - 1, DO) => omit_from = Some(self.out.len()),
                    StatementKind::NamesIgnored
                        if at_top && tok == Token::Punct(b',') && t.known.first() == Some(&NOTIFY) =>
                    {
                        // NOTIFY's payload is not part of the shape.
                        omit_from = Some(self.out.len());
                    }
                    StatementKind::Function if at_top && k == RETURNS => omit_at = function_options(t, i + 1),
                    StatementKind::Function
                        if omit_at == usize::MAX
                            && tok == Token::Punct(b')')
                            && depth_is(self, 1)
                            && !t.is(i + 1, RETURNS) =>
                    {
                        omit_at = i + 1
                    }
                    _ => {}
                }
                let anonymise = match kind {
                    StatementKind::NamesIgnored => at_top,
                    StatementKind::Declare => at_top && !declare_named,
                    _ => false,
                };
                if (anonymise && is_name) || (i == anonymous_at && (is_name || matches!(tok, Token::Keyword(..)))) {
                    declare_named = true;
                    self.display.token(sql, span);
                    prev = self.anonymous(prev);
                    i += 1;
                    continue;
                }
                if roles && at_top {
                    if is_name && !t.word_is(i, "public") {
                        self.display.token(sql, span);
                        prev = self.unhashed_name(t, i, prev);
                        // A list of names goes on only after a comma (`IN ROLE b LOGIN`: LOGIN is
                        // an option).
                        roles = t.at(i + 1) == Some(Token::Punct(b','));
                        i += 1;
                        continue;
                    }
                    roles = tok == Token::Punct(b',');
                }
                if i == unhashed_at {
                    self.display.token(sql, span);
                    prev = self.unhashed_name(t, i, prev);
                    i += 1;
                    continue;
                }
                if i == columns_at {
                    self.open_columns = true;
                }
                if tok == Token::Punct(b'(')
                    && matches!(kind, StatementKind::Alter | StatementKind::Other)
                    && matches!(t.known(i.wrapping_sub(1)), WITH | SET | RESET)
                {
                    self.open_options = true;
                }
                // Numbers only: a string value's quoting (`'x'`, `E'x'`, `$$x$$`) is not part of
                // it, and the text keeps the quoting.
                // A role's `CONNECTION LIMIT 5` is a DefElem's value too.
                let connection_limit = t.is(i.wrapping_sub(1), LIMIT) && t.word_is(i.wrapping_sub(2), "connection");
                option_value = (kind == StatementKind::Options
                    || connection_limit
                    || self.stack.last().is_some_and(|o| o.options))
                    && matches!(tok, Token::Const(s, _) if sql.get(s).is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.')));
            }
            let depth = self.stack.len();
            while let Some(&clause) = self.clauses.last() {
                let may_end = matches!(tok, Token::Keyword(..) | Token::Punct(b')' | b';'));
                if clause.depth < depth || (clause.depth == depth && !(may_end && ends_clause(t, i, clause.group_by))) {
                    break;
                }
                self.clauses.pop();
                self.end_clause(clause);
            }
            if self.clauses.last().is_some_and(|c| c.depth == depth && !c.group_by) && is_column_alias(t, i, prev) {
                // `SELECT a b`: a column alias, as `SELECT a AS b`, is not part of the shape.
                self.display.token(sql, span);
                i += 1;
                continue;
            }
            let set_value = kind == StatementKind::Set && set_values;
            let relation = (is_name
                && i > 0
                && matches!(t.known[i - 1], FROM | JOIN | UPDATE | INTO | TABLE)
                && !(kind == StatementKind::Revoke && t.is(i - 1, FROM)))
                || i == relation_at;
            let before = self.out.len();
            match tok {
                Token::Const(s, e) if option_value => {
                    // An option's value is part of the shape (pg_query keeps a DefElem's value).
                    self.display.token(sql, span);
                    self.space_before(prev, false);
                    self.out.extend_from_slice(&sql[s..e]);
                    self.note_inside(sql, &tok);
                    prev = Prev::Operand;
                }
                Token::Const(s, e) if is_sign_operator(t, i) => {
                    // `+5` and `-5::int` are an operator and a constant (gram.y: only `-` folds
                    // into a bare number).
                    self.display.token(sql, (s, s + 1));
                    prev = self.push_normalised(sql, Token::Operator(s, s + 1), span, prev);
                    self.constants.push((s + 1, e));
                    prev = self.push(sql, Token::Const(s + 1, e), (s + 1, e), prev);
                    if let Some(j) = self.skip_cast(t, i + 1) {
                        i = j;
                        continue;
                    }
                }
                Token::Const(..) | Token::Param => {
                    if let Token::Const(s, e) = tok {
                        self.constants.push((s, e));
                    }
                    prev = self.push(sql, tok, span, prev);
                    // A cast of a constant is not part of the shape.
                    if let Some(j) = self.skip_cast(t, i + 1) {
                        i = j;
                        continue;
                    }
                }
                Token::Operator(..)
                    if matches!(prev, Prev::Operator | Prev::Open | Prev::Comma | Prev::Start | Prev::Keyword(_))
                        && prev != Prev::Keyword(KeywordKind::Operand)
                        && (folding_minus(t, i) || negated_parenthesised_number(t, i)) =>
                {
                    // `- 5` and `-(5)` are the constant -5 (gram.y's doNegate), as `-5` is.
                    self.display.token(sql, span);
                }
                Token::Punct(b'(') if self.operand_parenthesis(t, i, prev) => {
                    if let Some((c, end)) = parenthesised_constant(t, i) {
                        // `(5)` is `5`: the parentheses are not part of the shape.
                        self.show(t, i, c);
                        prev = self.constant(t, c, prev);
                        self.show(t, c + 1, end);
                        // A cast of a bare constant in parentheses is a cast constant; of a cast
                        // one, a cast (pg_query folds one TypeCast of a constant, not two).
                        let bare = t.at(c + 1) == Some(Token::Punct(b')'));
                        i = if bare { self.skip_cast(t, end).unwrap_or(end) } else { end };
                        continue;
                    }
                    self.open_row = true;
                    prev = self.push(sql, tok, span, prev);
                }
                Token::Punct(b'(') if matches!(t.known(i.wrapping_sub(1)), ROW | FROM | TO) => {
                    self.open_row = true;
                    prev = self.push(sql, tok, span, prev);
                }
                Token::Word(s, e) | Token::Keyword(s, e) | Token::QuotedIdent(s, e) if set_value && k != DEFAULT => {
                    prev = self.push(sql, Token::Const(s, e), span, prev);
                }
                Token::Punct(b',') if set_value && at_top => {
                    // `SET search_path TO a, b` is `TO a` (pg_query ignores its constants).
                    set_comma = Some((self.out.len(), i + 1));
                    prev = self.push(sql, tok, span, prev);
                }
                Token::Operator(s, e) if kind == StatementKind::Set && !set_values && at_top && &sql[s..e] == b"=" => {
                    set_values = true;
                    self.display.token(sql, span);
                    prev = self.keyword(b"TO", prev);
                }
                Token::Word(s, e) | Token::Keyword(s, e) => {
                    let mut noise = false;
                    if matches!(k, TIME | XML) && kind != StatementKind::Query {
                        if let Some((next, values)) = self.setting_synonym(t, i, &mut prev) {
                            set_values |= values;
                            i = next;
                            continue;
                        }
                    }
                    if let Some(next) = self.word_rules(t, i, kind, &mut prev) {
                        i = next;
                        continue;
                    }
                    // Only where a type is written: after `::`, in CAST's `AS`, in a utility statement
                    // (a column definition); `SELECT dec FROM t` names a column.
                    let type_position = || {
                        prev == Prev::Cast
                            || kind != StatementKind::Query
                            || self.stack.last().is_some_and(|o| o.kind == writer::ListKind::Cast)
                    };
                    if let Some((text, next)) =
                        (k.is_literal_type() && type_position()).then(|| type_synonym(t, i)).flatten()
                    {
                        self.show(t, i, next);
                        prev = self.word_as(sql, tok, text, prev);
                        i = next;
                        continue;
                    }
                    match k {
                        TO | AUTHORIZATION if kind == StatementKind::Set && at_top => set_values = true,
                        ROLE if kind == StatementKind::Set
                            && matches!(t.known(i.wrapping_sub(1)), SET | SESSION | LOCAL) =>
                        {
                            set_values = true
                        }
                        EXTRACT if t.at(i + 1) == Some(Token::Punct(b'(')) && t.is(i + 3, FROM) => anonymous_at = i + 2,
                        EXECUTE | PREPARE if t.is_name(i + 1) => anonymous_at = i + 1,
                        OWNER if matches!(kind, StatementKind::Alter | StatementKind::Options) && t.is(i + 1, TO) => {
                            unhashed_at = i + 2
                        }
                        TO if kind == StatementKind::Grant && at_top => roles = true,
                        // Noise words: `BEGIN WORK`, `COMMIT TRANSACTION`, `RELEASE SAVEPOINT s`.
                        WORK | TRANSACTION
                            if i == 1
                                && matches!(t.known[0], BEGIN | COMMIT | END | ROLLBACK | ABORT)
                                && kind != StatementKind::Set =>
                        {
                            noise = true
                        }
                        SAVEPOINT
                            if t.is(i.wrapping_sub(1), RELEASE)
                                || (t.is(i.wrapping_sub(1), TO) && t.is(i.wrapping_sub(2), ROLLBACK)) =>
                        {
                            noise = true
                        }
                        FROM if kind == StatementKind::Revoke && at_top => roles = true,
                        BY | TO | ROLE
                            if matches!(kind, StatementKind::Other | StatementKind::Alter | StatementKind::Options)
                                && at_top
                                && starts_role_list(t, head, i) =>
                        {
                            roles = true
                        }
                        _ => {}
                    }
                    let literal = matches!(k, TRUE | FALSE | NULL);
                    let test = matches!(prev, Prev::Keyword(KeywordKind::Is) | Prev::Keyword(KeywordKind::Not));
                    let tok = if literal && !test { Token::Const(s, e) } else { tok };
                    self.keyword = k;
                    prev = self.push(sql, tok, span, prev);
                    self.keyword = Known::NONE;
                    if literal && !test {
                        // `NULL::int` is a cast constant (an A_Const since PostgreSQL 15), as `5::int` is.
                        if let Some(j) = self.skip_cast(t, i + 1) {
                            i = j;
                            continue;
                        }
                    }
                    if noise {
                        self.key.push(KeyEdit { start: before, end: self.out.len(), edit: Edit::Omit });
                    }
                    if k == LEVEL && t.is(i.wrapping_sub(1), ISOLATION) {
                        // The isolation level is a constant (pg_query: DefElem of an A_Const).
                        let words = match t.known(i + 1) {
                            READ | REPEATABLE => 2,
                            _ => 1,
                        };
                        let from = self.out.len();
                        self.show(t, i + 1, i + 1 + words);
                        for j in i + 1..(i + 1 + words).min(t.toks.len()) {
                            prev = self.push_normalised(sql, t.toks[j], t.spans[j], prev);
                        }
                        self.key.push(KeyEdit { start: from, end: self.out.len(), edit: Edit::Replace(b" $") });
                        i += 1 + words;
                        continue;
                    }
                    if k == READ && matches!(t.known(i + 1), ONLY | WRITE) && !t.is(i.wrapping_sub(1), LEVEL) {
                        // `READ ONLY` and `READ WRITE` are one setting of a constant.
                        let from = self.out.len();
                        self.display.token(sql, t.spans[i + 1]);
                        prev = self.push_normalised(sql, t.toks[i + 1], t.spans[i + 1], prev);
                        self.key.push(KeyEdit { start: from, end: self.out.len(), edit: Edit::Replace(b" $") });
                        i += 2;
                        continue;
                    }
                    self.query_seen |= k == SELECT;
                    match k {
                        SELECT if !(t.is(i + 1, DISTINCT) && t.is(i + 2, ON)) => {
                            self.open_clause(depth, self.out.len(), false);
                        }
                        DISTINCT | ALL if t.is(i.wrapping_sub(1), SELECT) => {
                            if let Some(c) = self.clauses.last_mut().filter(|c| c.depth == depth && !c.group_by) {
                                c.start = self.out.len();
                            }
                        }
                        GROUP if t.is(i + 1, BY) => self.open_clause(depth, before, true),
                        // `INNER JOIN` is `JOIN`, `LEFT OUTER JOIN` is `LEFT JOIN`.
                        INNER | OUTER if t.is(i + 1, JOIN) => {
                            self.key.push(KeyEdit { start: before, end: self.out.len(), edit: Edit::Omit })
                        }
                        _ => {}
                    }
                }
                Token::QuotedIdent(s, e) => {
                    // Shown with its quotes, as written.
                    self.display.token(sql, span);
                    if k == Known::PLAIN_QUOTED {
                        // `"users"` is `users` (the lexer checked it is lower case already).
                        self.note_inside(sql, &tok);
                        self.end_values_run(tok);
                        self.space_before(prev, false);
                        writer::push_slice(&mut self.out, sql, s + 1, e - 1);
                        prev = Prev::Word;
                    } else {
                        prev = self.push_normalised(sql, tok, span, prev);
                    }
                }
                _ => prev = self.push(sql, tok, span, prev),
            }
            if let Some((start, value)) = set_comma.filter(|&(_, value)| value == i) {
                if matches!(
                    tok,
                    Token::Const(..) | Token::Param | Token::Word(..) | Token::Keyword(..) | Token::QuotedIdent(..)
                ) {
                    self.key.push(KeyEdit { start, end: self.out.len(), edit: Edit::Omit });
                }
                let _ = value;
                set_comma = None;
            }
            if relation {
                let start = before + usize::from(self.out.get(before) == Some(&b' '));
                if has_digit_run(self.out.get(start..).unwrap_or_default()) {
                    self.key.push(KeyEdit { start, end: self.out.len(), edit: Edit::DigitRuns });
                }
                let mut j = i + 1;
                if kind == StatementKind::Query
                    && t.at(j) == Some(Token::Punct(b'.'))
                    && t.is_name(j + 1)
                    && t.at(j + 2) != Some(Token::Punct(b'('))
                    && t.at(j + 2) != Some(Token::Punct(b'.'))
                    && !t.is(i.wrapping_sub(1), TABLE)
                {
                    // The schema of a relation a query reads or writes (PostgreSQL 18's jumbling).
                    self.display.token(sql, t.spans[j]);
                    prev = self.push_normalised(sql, Token::Punct(b'.'), t.spans[j], prev);
                    self.key.push(KeyEdit { start, end: self.out.len(), edit: Edit::Omit });
                    relation_at = j + 1;
                    i = j + 1;
                    continue;
                }
                while t.at(j) == Some(Token::Punct(b'.')) && t.is_name(j + 1) {
                    j += 2;
                }
                if (t.is(i.wrapping_sub(1), INTO) || i == relation_at) && t.at(j) == Some(Token::Punct(b'(')) {
                    columns_at = j;
                }
            }
            i += 1;
        }
        if let Some(from) = omit_from {
            let end = self.out.len() - usize::from(self.out.last() == Some(&b';'));
            self.key.push(KeyEdit { start: from, end: end.max(from), edit: Edit::Omit });
        }
    }
}
