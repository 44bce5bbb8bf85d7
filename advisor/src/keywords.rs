//! The SQL keywords the fingerprint upper-cases for display and treats as non-operands.
//!
//! Not PostgreSQL's whole list (kwlist.h has ~470 entries): the reserved words and the ones ORMs
//! and drivers commonly send. A word missing here is shown in lower case, which is harmless:
//! both spellings still hash the same because case is normalised first.

/// Longest keyword in the table, in bytes.
const MAX_KEYWORD_LEN: usize = 17;

/// The keywords, lower case.
const KEYWORDS: &[&str] = &[
    "abort",
    "absolute",
    "action",
    "add",
    "all",
    "alter",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "at",
    "backward",
    "begin",
    "between",
    "binary",
    "both",
    "by",
    "cascade",
    "case",
    "cast",
    "check",
    "checkpoint",
    "close",
    "cluster",
    "collate",
    "collation",
    "column",
    "commit",
    "committed",
    "concurrently",
    "conflict",
    "constraint",
    "copy",
    "create",
    "cross",
    "cube",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "cursor",
    "deallocate",
    "declare",
    "default",
    "deferrable",
    "definer",
    "delete",
    "desc",
    "discard",
    "distinct",
    "do",
    "drop",
    "else",
    "end",
    "enum",
    "except",
    "execute",
    "exists",
    "explain",
    "false",
    "fetch",
    "filter",
    "first",
    "for",
    "foreign",
    "forward",
    "freeze",
    "from",
    "full",
    "function",
    "grant",
    "group",
    "grouping",
    "having",
    "hold",
    "if",
    "ilike",
    "immutable",
    "in",
    "index",
    "inner",
    "insensitive",
    "insert",
    "intersect",
    "interval",
    "into",
    "invoker",
    "is",
    "isnull",
    "isolation",
    "join",
    "key",
    "language",
    "last",
    "lateral",
    "leading",
    "left",
    "level",
    "like",
    "limit",
    "listen",
    "local",
    "lock",
    "locked",
    "materialized",
    "move",
    "natural",
    "next",
    "no",
    "not",
    "nothing",
    "notify",
    "notnull",
    "nowait",
    "null",
    "nulls",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "ordinality",
    "outer",
    "over",
    "overlaps",
    "partition",
    "prepare",
    "primary",
    "prior",
    "procedure",
    "range",
    "read",
    "recursive",
    "references",
    "reindex",
    "relative",
    "release",
    "rename",
    "repeatable",
    "replace",
    "reset",
    "restrict",
    "returning",
    "returns",
    "revoke",
    "right",
    "rollback",
    "rollup",
    "row",
    "rows",
    "savepoint",
    "schema",
    "scroll",
    "security",
    "select",
    "serializable",
    "session",
    "set",
    "sets",
    "share",
    "show",
    "similar",
    "skip",
    "some",
    "stable",
    "start",
    "stdin",
    "stdout",
    "strict",
    "symmetric",
    "table",
    "tablesample",
    "temp",
    "temporary",
    "then",
    "to",
    "trailing",
    "transaction",
    "trigger",
    "true",
    "truncate",
    "type",
    "union",
    "unique",
    "unlisten",
    "unlogged",
    "update",
    "using",
    "vacuum",
    "values",
    "verbose",
    "view",
    "volatile",
    "when",
    "where",
    "window",
    "with",
    "within",
    "without",
    "work",
    "write",
    "zone",
];

/// Slots of the open-addressing table: a power of two, over four times the keywords, so a word
/// that is not a keyword (most words) usually meets an empty slot at once.
const SLOTS: usize = 1024;

/// Hash of a word from its length and three of its bytes, case-folded (`| 0x20` maps ASCII
/// letters to lower case; a keyword holds only letters and `_`, and `_ | 0x20` is `_`).
const fn slot(word: &[u8]) -> usize {
    let n = word.len();
    let (a, b, c) = (word[0] | 0x20, word[n / 2] | 0x20, word[n - 1] | 0x20);
    let h = (a as u32).wrapping_mul(31) ^ (b as u32).wrapping_mul(131) ^ (c as u32).wrapping_mul(7) ^ ((n as u32) << 5);
    (h.wrapping_mul(0x9e37_79b1) >> 22) as usize & (SLOTS - 1)
}

/// Index + 1 of each keyword in [`KEYWORDS`] at its slot (linear probing), 0 for an empty slot.
const TABLE: [u16; SLOTS] = {
    let mut table = [0u16; SLOTS];
    let mut k = 0;
    while k < KEYWORDS.len() {
        let mut i = slot(KEYWORDS[k].as_bytes());
        while table[i] != 0 {
            i = (i + 1) & (SLOTS - 1);
        }
        table[i] = k as u16 + 1;
        k += 1;
    }
    table
};

/// True when `word` (any case) is a keyword in the table.
#[inline]
pub fn is_keyword(word: &[u8]) -> bool {
    if word.is_empty() || word.len() > MAX_KEYWORD_LEN {
        return false;
    }
    let mut i = slot(word);
    loop {
        match TABLE[i] {
            0 => return false,
            k => {
                if KEYWORDS[usize::from(k) - 1].as_bytes().eq_ignore_ascii_case(word) {
                    return true;
                }
            }
        }
        i = (i + 1) & (SLOTS - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::is_keyword;

    #[test]
    fn keywords_any_case() {
        assert!(is_keyword(b"SELECT") && is_keyword(b"select") && is_keyword(b"Values"));
        assert!(!is_keyword(b"users") && !is_keyword(b"") && !is_keyword(b"a_very_long_identifier_name"));
    }

    #[test]
    fn every_keyword_is_found_and_near_misses_are_not() {
        for k in super::KEYWORDS {
            assert!(is_keyword(k.as_bytes()) && is_keyword(k.to_uppercase().as_bytes()), "{k}");
            let mut longer = k.to_string();
            longer.push('x');
            assert!(!is_keyword(longer.as_bytes()) || super::KEYWORDS.contains(&longer.as_str()), "{longer}");
            assert!(!is_keyword(&k.as_bytes()[1..]) || super::KEYWORDS.contains(&&k[1..]), "{}", &k[1..]);
        }
    }
}
