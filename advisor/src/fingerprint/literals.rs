//! A statement's text with its literal constants masked: the key under which texts that differ
//! only in their literals (a load test in simple mode, an ORM without server-side parameters)
//! find the statement the first of them was fingerprinted as, without fingerprinting again.
//!
//! One byte scan, conservative: it masks unsigned numbers (`12`, `1.5`), a `-` and the digits
//! after it where no word, quote or closing bracket comes before the `-` (`= -5`), and quoted
//! strings not prefixed by a word byte (`'a''b'`); it keeps every other byte as it is (so the key
//! also holds whitespace, keyword case and quoting), and gives up (`None`) on comments, dollar
//! quotes (any `$` not followed by a digit), backslashes, strings prefixed by a word (`E'..'`,
//! `B'..'`), numbers with exponents, underscores or a leading dot, NUL, and texts longer than
//! [`MAX_SCANNED`] or with more than [`MAX_LITERALS`] literals (those are fingerprinted once per
//! distinct text, as before). Where it still reads a literal otherwise than the lexer (`select
//! -5`, whose sign the lexer folds in after a keyword; `U&'..'`), its ranges are not the
//! fingerprint's constants and nothing is shared.
//!
//! The key alone proves nothing: a masked number may be something the fingerprint keeps (a
//! `FETCH` count, a role's `CONNECTION LIMIT`). The caller shares a statement under a key only
//! when the fingerprinter's constants of the text it came from were exactly the masked ranges
//! ([`LiteralMask::matches`]); two texts with one key then differ only inside literals of one
//! kind each, which the fingerprint reads as constants whatever their value.

use crate::lexer::{is_ident_cont, is_space};

/// The masked form of the last text scanned, and where its literals were.
#[derive(Debug, Default)]
pub struct LiteralMask {
    masked: Vec<u8>,
    ranges: Vec<(usize, usize)>,
    /// The `;` outside quotes, how many and where the first was.
    semicolons: usize,
    first_semicolon: usize,
    /// A `;` came inside brackets, or a bracket closed that was not open.
    nested_semicolon: bool,
    /// A word was `CREATE` (a routine's body may hold `;` at the top level).
    create: bool,
}

/// Longest text scanned: a longer one (a bulk INSERT, whose row count changes its shape anyway)
/// is fingerprinted as it comes.
pub const MAX_SCANNED: usize = 16 * 1024;
/// Most literals masked in one text; with more, the text is fingerprinted as it comes.
pub const MAX_LITERALS: usize = 256;
/// Most bytes of masked text a session keeps between scans.
const KEPT_MASK: usize = 4096;

/// What a masked literal becomes in the key: NUL (which a scanned text never holds) and its kind.
const NUMBER: [u8; 2] = [0, b'n'];
const STRING: [u8; 2] = [0, b's'];
const NEGATIVE: [u8; 2] = [0, b'm'];

/// What the scan does with a byte: a word starts (letters, `_`, non-ASCII), nothing (spaces,
/// most operators), or it looks closer (digits, quotes, `$`, `-`, `/`, `.`, `\\`, NUL, `;`,
/// brackets).
const WORD: u8 = 0;
const PLAIN: u8 = 1;
const CLOSER: u8 = 2;

static CLASSES: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            t[b] = WORD;
        } else if c.is_ascii_digit()
            || matches!(c, b'\'' | b'"' | b'$' | b'-' | b'/' | b'.' | b'\\' | 0 | b';' | b'(' | b')' | b'[' | b']')
        {
            t[b] = CLOSER;
        }
        b += 1;
    }
    t
};

/// The end of the digits from `i`.
fn digits(sql: &[u8], mut i: usize) -> usize {
    while sql.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// The end of the unsigned number whose digits start at `i`: digits, then a dot and digits
/// maybe; `None` when a dot or a word's byte follows (`1.2.3`, `1e5`, `1_000`, `0x1f`).
fn number_end(sql: &[u8], i: usize) -> Option<usize> {
    let mut end = digits(sql, i);
    if sql.get(end) == Some(&b'.') {
        end = digits(sql, end + 1);
    }
    (!sql.get(end).is_some_and(|&c| c == b'.' || is_ident_cont(c))).then_some(end)
}

/// True when the last byte before `i` other than whitespace ends an operand: a word, a quoted
/// name or string, a closing bracket.
fn after_operand(sql: &[u8], i: usize) -> bool {
    let before = sql[..i].iter().rev().find(|&&b| !is_space(b));
    before.is_some_and(|&b| is_ident_cont(b) || matches!(b, b')' | b']' | b'"' | b'\''))
}

/// The end of the quoted text opening at `i` with `quote` (a doubled quote stays inside), or
/// `None` when it does not end or, for a string, holds a backslash (whose meaning depends on
/// `standard_conforming_strings`).
fn quoted_end(sql: &[u8], i: usize, quote: u8) -> Option<usize> {
    let mut j = i + 1;
    loop {
        let b = *sql.get(j)?;
        if b == quote {
            if sql.get(j + 1) != Some(&quote) {
                return Some(j + 1);
            }
            j += 2;
        } else if b == b'\\' && quote == b'\'' || b == 0 {
            return None;
        } else {
            j += 1;
        }
    }
}

impl LiteralMask {
    /// Scans `sql`; the hash of its masked form, or `None` when the scan gives up.
    pub fn scan(&mut self, sql: &[u8]) -> Option<u64> {
        let key = self.mask(sql);
        // Only the ranges are read after the scan: a long text's masked copy is not kept.
        if self.masked.capacity() > KEPT_MASK {
            self.masked = Vec::new();
        }
        key
    }

    fn mask(&mut self, sql: &[u8]) -> Option<u64> {
        self.masked.clear();
        self.ranges.clear();
        (self.semicolons, self.first_semicolon, self.nested_semicolon, self.create) = (0, 0, false, false);
        if sql.len() > MAX_SCANNED {
            return None;
        }
        let mut depth = 0usize;
        // Start of the bytes not yet copied to `masked`.
        let mut run = 0;
        let mut i = 0;
        // The byte before `i` continues a word, or is a dot.
        let mut word = false;
        let mut dot = false;
        while let Some(&b) = sql.get(i) {
            // Most bytes are words and spaces: skipped a run at a time.
            match CLASSES[usize::from(b)] {
                WORD => {
                    let start = i;
                    i += 1;
                    while sql.get(i).is_some_and(|&c| is_ident_cont(c)) {
                        i += 1;
                    }
                    self.create |= i - start == 6 && sql[start..i].eq_ignore_ascii_case(b"create");
                    (word, dot) = (true, false);
                    continue;
                }
                PLAIN => {
                    i += 1;
                    (word, dot) = (false, false);
                    continue;
                }
                _ => {}
            }
            let literal = match b {
                b'0'..=b'9' if !word => {
                    if dot {
                        return None;
                    }
                    Some((number_end(sql, i)?, NUMBER))
                }
                // `-5` after an operator, a comma or a bracket: the lexer reads one negative
                // constant there (after an operand, `a-5`, it reads an operator).
                b'-' if sql.get(i + 1).is_some_and(u8::is_ascii_digit) && !word && !dot && !after_operand(sql, i) => {
                    Some((number_end(sql, i + 1)?, NEGATIVE))
                }
                b'\'' if !word => Some((quoted_end(sql, i, b'\'')?, STRING)),
                b'\'' | 0 | b'\\' => return None,
                b'"' => {
                    i = quoted_end(sql, i, b'"')?;
                    (word, dot) = (true, false);
                    continue;
                }
                // Inside a word a `$` is consumed with it; here it starts a token: a parameter
                // (`$1`) or a dollar quote, even right after a quoted name or a parameter.
                b'$' if !sql.get(i + 1).is_some_and(u8::is_ascii_digit) => return None,
                b'-' if sql.get(i + 1) == Some(&b'-') => return None,
                b'/' if sql.get(i + 1) == Some(&b'*') => return None,
                b'(' | b'[' => {
                    depth += 1;
                    None
                }
                b')' | b']' => {
                    self.nested_semicolon |= depth == 0;
                    depth = depth.saturating_sub(1);
                    None
                }
                b';' => {
                    if self.semicolons == 0 {
                        self.first_semicolon = i;
                    }
                    self.semicolons += 1;
                    self.nested_semicolon |= depth > 0;
                    None
                }
                _ => None,
            };
            match literal {
                Some(_) if self.ranges.len() >= MAX_LITERALS => return None,
                Some((end, kind)) => {
                    self.masked.extend_from_slice(&sql[run..i]);
                    self.masked.extend_from_slice(&kind);
                    self.ranges.push((i, end));
                    (run, i) = (end, end);
                    (word, dot) = (false, false);
                }
                None => {
                    (word, dot) = (is_ident_cont(b), b == b'.');
                    i += 1;
                }
            }
        }
        self.masked.extend_from_slice(&sql[run..]);
        Some(xxhash_rust::xxh3::xxh3_64(&self.masked))
    }

    /// Where the one statement of the last text scanned (successfully) ends, when the text holds
    /// exactly one as [`crate::lexer::split_statements`] splits them: it has a token, no word
    /// `CREATE` (a routine's body may hold `;`), and its only `;`, if any, is outside brackets
    /// and followed by whitespace alone. A simple Query is then not split again.
    pub fn one_statement(&self, sql: &[u8]) -> Option<usize> {
        let end = match self.semicolons {
            0 => sql.len(),
            1 if !self.nested_semicolon && sql.get(self.first_semicolon + 1..)?.iter().all(|&b| is_space(b)) => {
                self.first_semicolon
            }
            _ => return None,
        };
        let tokens = sql.get(..end)?.iter().any(|&b| !is_space(b));
        (tokens && !self.create).then_some(end)
    }

    /// Source ranges of the literals the last successful scan masked, in order.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// True when the fingerprinter's constants of the same text are exactly the masked literals:
    /// only then may texts with this key share what the fingerprint made of the first.
    pub fn matches(&self, constants: &[(usize, usize)]) -> bool {
        self.ranges == constants
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Fingerprinter;
    use crate::lexer::split_statements;
    use proptest::prelude::*;

    fn scan(sql: &str) -> Option<(u64, Vec<&str>)> {
        let mut mask = LiteralMask::default();
        let key = mask.scan(sql.as_bytes())?;
        Some((key, mask.ranges().iter().map(|&(s, e)| &sql[s..e]).collect()))
    }

    #[test]
    fn literals_are_masked_and_everything_else_kept() {
        let (a, literals) = scan("UPDATE pgbench_accounts SET abalance = abalance + -12 WHERE aid = 345;").unwrap();
        assert_eq!(literals, ["-12", "345"]);
        let (b, _) = scan("UPDATE pgbench_accounts SET abalance = abalance + -7 WHERE aid = 1.5;").unwrap();
        assert_eq!(a, b);
        let (c, literals) = scan("select * from t1 where a = 'it''s' and \"c2\" = $1 and b = 'x'").unwrap();
        assert_eq!(literals, ["'it''s'", "'x'"]);
        assert_eq!(scan("select * from t1 where a = 'other' and \"c2\" = $1 and b = ''").unwrap().0, c);
        // Case, spacing and quoting are part of the key.
        assert_ne!(scan("SELECT 1").unwrap().0, scan("select 1").unwrap().0);
        assert_ne!(scan("SELECT 1").unwrap().0, scan("SELECT  1").unwrap().0);
        // A number or a string: not the same key.
        assert_ne!(scan("SELECT 1").unwrap().0, scan("SELECT '1'").unwrap().0);
        // Digits inside words and parameters are not literals.
        assert_eq!(scan("select c1, $2 from t_9 where x = y1").unwrap().1, Vec::<&str>::new());
    }

    #[test]
    fn the_scan_gives_up_on_what_it_does_not_read_as_the_lexer() {
        for sql in [
            "select 1 -- 2",
            "select /* 1 */ 2",
            "select $$a$$",
            "select $q$a$q$",
            "select E'a'",
            "select B'01'",
            "select 'a\\'",
            "select 1e5",
            "select 1_000",
            "select 0x1f",
            "select .5",
            "select 1.2.3",
            "select 'unterminated",
            "select \"unterminated",
            "select a\0",
        ] {
            assert_eq!(scan(sql), None, "{sql}");
        }
        // The bounds: a longer text, or more literals, is not scanned.
        let many = format!("select {}", vec!["1"; MAX_LITERALS + 1].join(", "));
        let long = format!("select '{}'", "x".repeat(MAX_SCANNED));
        assert!(scan(&format!("select {}", vec!["1"; MAX_LITERALS].join(", "))).is_some());
        for sql in [many.as_str(), long.as_str()] {
            assert_eq!(scan(sql), None, "{sql}");
        }
    }

    #[test]
    fn one_statement_or_none() {
        fn one(sql: &str) -> Option<&str> {
            let mut mask = LiteralMask::default();
            mask.scan(sql.as_bytes()).and_then(|_| mask.one_statement(sql.as_bytes())).map(|end| &sql[..end])
        }
        assert_eq!(one("UPDATE t SET a = 'x;y' WHERE b = 1;\n"), Some("UPDATE t SET a = 'x;y' WHERE b = 1"));
        assert_eq!(one(" insert into t (a, b) values (1, 2)"), Some(" insert into t (a, b) values (1, 2)"));
        assert_eq!(one("(select 1)"), Some("(select 1)"));
        for sql in [
            "select \"text\"$$ 'x$$; select \"text\"$$ 'x$$",
            "select $1$$;$$",
            "U&\"x\" create function f() begin atomic select 1;",
            "select 1; select 2",
            "select (1;",
            "select 1) ;",
            "create table t (a int);",
            "select 1;;",
            ";",
            "",
            " \n",
        ] {
            assert_eq!(one(sql), None, "{sql}");
        }
    }

    /// Numbers and strings other than those in `sql`, of other lengths (negative numbers stay
    /// negative).
    fn other_literals(sql: &str, ranges: &[(usize, usize)], salt: usize) -> String {
        let mut out = String::new();
        let mut at = 0;
        for (n, &(s, e)) in ranges.iter().enumerate() {
            out.push_str(&sql[at..s]);
            let v = (n * 7919 + salt * 104_729) % 100_000;
            if sql.as_bytes()[s] == b'\'' {
                out.push_str(&if salt == 3 { format!("'v{v}; -- /* $$ \"q\" 1'") } else { format!("'v{v} é'''") });
                at = e;
                continue;
            }
            if sql.as_bytes()[s] == b'-' {
                out.push('-');
            }
            if salt.is_multiple_of(2) {
                out.push_str(&v.to_string());
            } else {
                out.push_str(&format!("{v}.{}", salt % 10));
            }
            at = e;
        }
        out.push_str(&sql[at..]);
        out
    }

    /// What sharing a statement by key relies on: when the first text's constants are its masked
    /// literals, any text with the same key fingerprints alike, and its constants are its own
    /// masked literals too.
    /// True when `sql` can share (the check ran), false when its key is not used.
    fn check_sharing(sql: &str) -> Result<bool, TestCaseError> {
        let (mut mask, mut fp) = (LiteralMask::default(), Fingerprinter::default());
        let Some(key) = mask.scan(sql.as_bytes()) else { return Ok(false) };
        let first = fp.fingerprint(sql.as_bytes());
        if !mask.matches(fp.constants()) {
            return Ok(false);
        }
        let (text, display) = (fp.text().to_string(), fp.display().to_string());
        let ranges = mask.ranges().to_vec();
        for salt in 1..4 {
            let other = other_literals(sql, &ranges, salt);
            prop_assert_eq!(mask.scan(other.as_bytes()), Some(key), "{} vs {}", sql, other);
            prop_assert_eq!(fp.fingerprint(other.as_bytes()), first, "{} vs {}", sql, other);
            prop_assert_eq!(fp.text(), text.as_str(), "{} vs {}", sql, other);
            prop_assert_eq!(fp.display(), display.as_str(), "{} vs {}", sql, other);
            prop_assert!(mask.matches(fp.constants()), "{} vs {}: {:?}", sql, other, fp.constants());
        }
        Ok(true)
    }

    #[test]
    fn texts_sharing_a_key_share_a_fingerprint() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "UPDATE pgbench_tellers SET tbalance = tbalance + 5 WHERE tid = 3;",
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP);",
            "select * from t where id in (1, 2, 3) and name = 'x' limit 10 offset 20",
            "insert into t values (1, 'a'), (2, 'b')",
            "select 1 group by 1 order by 2",
            "fetch 5 from c",
            "alter role r connection limit 5",
            "select x::numeric(10, 2) from t where y = '2020-01-01'::date",
            "select interval '1 day', date '2020-01-01', - 5, -(5), +5, 3 - 2",
            "set statement_timeout = 5000",
            "select * from t where a = any(array[1, 2]) and b between 1 and 2",
            "create table t (a varchar(20) default 'x', b int check (b > 0))",
            "execute q(1, 'a')",
        ] {
            check_sharing(sql).unwrap();
        }
        // The load-test statements do share.
        assert!(check_sharing("UPDATE pgbench_branches SET bbalance = bbalance + -3 WHERE bid = 1;").unwrap());
        assert!(check_sharing("select * from t where id in (1, 2) and name = 'x' limit 10").unwrap());
    }

    /// Every query of the fingerprint corpus and of the benchmark's ORM corpus.
    #[test]
    fn texts_sharing_a_key_share_a_fingerprint_over_the_corpora() {
        let corpora =
            [include_str!("../../tests/corpus/queries.jsonl"), include_str!("../../../bench/corpus/orm.jsonl")];
        let (mut checked, mut shared) = (0, 0);
        for line in corpora.iter().flat_map(|c| c.lines()).filter(|l| !l.trim().is_empty()) {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let sql = entry["sql"].as_str().unwrap();
            shared += usize::from(check_sharing(sql).unwrap());
            checked += 1;
        }
        eprintln!("{shared} of {checked} corpus texts share by key");
        assert!(checked > 1000 && shared > checked / 2, "{shared} of {checked}");
    }

    fn sql_like() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("SELECT "),
            Just("select "),
            Just("FROM t "),
            Just("WHERE "),
            Just("a"),
            Just(" "),
            Just("1"),
            Just("23.5"),
            Just("'x'"),
            Just("'it''s'"),
            Just("("),
            Just(")"),
            Just(","),
            Just("."),
            Just("-"),
            Just("+"),
            Just("="),
            Just("::"),
            Just("int"),
            Just("IN "),
            Just("VALUES "),
            Just("LIMIT "),
            Just("FETCH "),
            Just("GROUP BY "),
            Just("CONNECTION "),
            Just("interval "),
            Just("$1"),
            Just("\"q\""),
            Just("é"),
            Just("e"),
            Just(";"),
            Just(";"),
            Just("\n"),
            Just("\x0b"),
            Just("["),
            Just("]"),
            Just("create function f() begin atomic "),
            Just("$$"),
            Just("$q$"),
            Just("\"text\""),
            Just("U&"),
            Just("x "),
            Just("CREATE "),
            Just("END"),
            Just("--"),
            Just("/*"),
        ];
        proptest::collection::vec(piece, 0..32).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn sharing_holds_for_sql_like_text(sql in sql_like()) {
            check_sharing(&sql)?;
        }

        #[test]
        fn one_statement_is_what_the_lexer_splits(sql in sql_like(), noise in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut mask = LiteralMask::default();
            for text in [sql.as_bytes(), &noise] {
                if mask.scan(text).is_some() {
                    if let Some(end) = mask.one_statement(text) {
                        prop_assert_eq!(split_statements(text), vec![&text[..end]]);
                    }
                }
            }
        }

        #[test]
        fn the_scan_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut mask = LiteralMask::default();
            if mask.scan(&bytes).is_some() {
                for &(s, e) in mask.ranges() {
                    prop_assert!(s < e && e <= bytes.len());
                }
            }
        }
    }
}
