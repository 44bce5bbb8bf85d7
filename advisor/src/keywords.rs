//! The SQL keywords the fingerprint upper-cases for display and treats as non-operands, and the
//! other words its rules look for (type names, utility-statement words), in one table looked up
//! once per word by the lexer: rules then compare [`Known`] ids instead of bytes.
//!
//! Not PostgreSQL's whole list (kwlist.h has ~470 entries): the reserved words and the ones ORMs
//! and drivers commonly send. A word missing here is shown in lower case, which is harmless:
//! both spellings still hash the same because case is normalised first.

/// Longest word in the table, in bytes.
const MAX_WORD_LEN: usize = 17;

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

/// Words that are not keywords (they stay identifiers, lower case) but that rules look for.
const MARKERS: &[&str] = &[
    "atomic",
    "authorization",
    "content",
    "document",
    "extract",
    "global",
    "mapping",
    "owner",
    "return",
    "role",
    "sequence",
    "setof",
    "standalone",
    "user",
    "version",
];

/// Type names that prefix a typed literal (`DATE '2024-01-01'`, `INTERVAL '1 day'`); `interval`
/// is a keyword and marked as a type separately.
const TYPES: &[&str] = &[
    "bigint",
    "bit",
    "bool",
    "boolean",
    "box",
    "bpchar",
    "bytea",
    "char",
    "character",
    "cidr",
    "circle",
    "date",
    "daterange",
    "dec",
    "decimal",
    "double",
    "float",
    "float4",
    "float8",
    "inet",
    "int",
    "int2",
    "int4",
    "int4range",
    "int8",
    "int8range",
    "integer",
    "json",
    "jsonb",
    "jsonpath",
    "line",
    "lseg",
    "macaddr",
    "macaddr8",
    "money",
    "name",
    "national",
    "nchar",
    "numeric",
    "numrange",
    "oid",
    "path",
    "pg_lsn",
    "point",
    "polygon",
    "real",
    "regclass",
    "regproc",
    "regtype",
    "smallint",
    "text",
    "tid",
    "time",
    "timestamp",
    "timestamptz",
    "timetz",
    "tsquery",
    "tsrange",
    "tstzrange",
    "tsvector",
    "uuid",
    "varbit",
    "varchar",
    "xid",
    "xml",
];

/// A word of the table, by index (keywords, then markers, then types), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known(u16);

impl Default for Known {
    fn default() -> Self {
        Known::NONE
    }
}

impl Known {
    /// Not a word of the table.
    pub const NONE: Known = Known(u16::MAX);

    /// Not a word but a quoted identifier that means the same unquoted (`"users"`: lower case,
    /// not a keyword), as the lexer found while reading it.
    pub const PLAIN_QUOTED: Known = Known(u16::MAX - 1);

    /// True for a keyword: shown upper case, never a name.
    #[inline]
    pub fn is_keyword(self) -> bool {
        usize::from(self.0) < KEYWORDS.len()
    }

    /// A keyword's text in upper case (empty for other words).
    #[inline]
    pub fn upper(self) -> &'static [u8] {
        match UPPER.get(usize::from(self.0)) {
            Some((bytes, len)) => &bytes[..usize::from(*len)],
            None => &[],
        }
    }

    /// True for a type name that can prefix a typed literal (`DATE '2024-01-01'`).
    #[inline]
    pub fn is_literal_type(self) -> bool {
        const FIRST_TYPE: usize = KEYWORDS.len() + MARKERS.len();
        const INTERVAL: Known = known("interval");
        let i = usize::from(self.0);
        (FIRST_TYPE..WORDS).contains(&i) || self == INTERVAL
    }
}

/// The word at index `i` of the table (keywords, markers, types).
const fn word_at(i: usize) -> &'static str {
    if i < KEYWORDS.len() {
        KEYWORDS[i]
    } else if i < KEYWORDS.len() + MARKERS.len() {
        MARKERS[i - KEYWORDS.len()]
    } else {
        TYPES[i - KEYWORDS.len() - MARKERS.len()]
    }
}

const WORDS: usize = KEYWORDS.len() + MARKERS.len() + TYPES.len();

/// The id of `word` (lower case), at compile time: a word missing from the table fails the build.
pub const fn known(word: &str) -> Known {
    let mut i = 0;
    while i < WORDS {
        let w = word_at(i).as_bytes();
        let b = word.as_bytes();
        if w.len() == b.len() {
            let mut k = 0;
            while k < w.len() && w[k] == b[k] {
                k += 1;
            }
            if k == w.len() {
                return Known(i as u16);
            }
        }
        i += 1;
    }
    panic!("not a known word")
}

/// Slots of the open-addressing table: a power of two, over three times the words, so a word
/// that is not in the table (most words) usually meets an empty slot at once.
const SLOTS: usize = 1024;

/// Hash of a word from its length and three of its bytes, case-folded (`| 0x20` maps ASCII
/// letters to lower case; the same fold of any byte on both sides keeps lookups consistent).
const fn slot(word: &[u8]) -> usize {
    let n = word.len();
    let (a, b, c) = (word[0] | 0x20, word[n / 2] | 0x20, word[n - 1] | 0x20);
    let h = (a as u32).wrapping_mul(31) ^ (b as u32).wrapping_mul(131) ^ (c as u32).wrapping_mul(7) ^ ((n as u32) << 5);
    (h.wrapping_mul(0x9e37_79b1) >> 22) as usize & (SLOTS - 1)
}

/// Each keyword in upper case, as the normalised text writes it.
static UPPER: [([u8; MAX_WORD_LEN], u8); KEYWORDS.len()] = {
    let mut upper = [([0u8; MAX_WORD_LEN], 0u8); KEYWORDS.len()];
    let mut k = 0;
    while k < KEYWORDS.len() {
        let w = KEYWORDS[k].as_bytes();
        let mut b = 0;
        while b < w.len() {
            upper[k].0[b] = w[b].to_ascii_uppercase();
            b += 1;
        }
        upper[k].1 = w.len() as u8;
        k += 1;
    }
    upper
};

/// Every word of the table, by id.
static ALL: [&str; WORDS] = {
    let mut all = [""; WORDS];
    let mut k = 0;
    while k < WORDS {
        all[k] = word_at(k);
        k += 1;
    }
    all
};

/// Index + 1 of each word at its slot (linear probing), 0 for an empty slot, and the word's
/// length, so most words that are not in the table are told apart without comparing bytes.
static TABLE: ([u16; SLOTS], [u8; SLOTS]) = {
    let mut table = [0u16; SLOTS];
    let mut lens = [0u8; SLOTS];
    let mut k = 0;
    while k < WORDS {
        let mut i = slot(word_at(k).as_bytes());
        while table[i] != 0 {
            i = (i + 1) & (SLOTS - 1);
        }
        table[i] = k as u16 + 1;
        lens[i] = word_at(k).len() as u8;
        k += 1;
    }
    (table, lens)
};

/// The id of `word` (any case), or [`Known::NONE`].
#[inline]
pub fn lookup(word: &[u8]) -> Known {
    if word.is_empty() || word.len() > MAX_WORD_LEN {
        return Known::NONE;
    }
    let mut i = slot(word);
    loop {
        let k = TABLE.0[i];
        if k == 0 {
            return Known::NONE;
        }
        let k = usize::from(k) - 1;
        if usize::from(TABLE.1[i]) == word.len() && ALL[k].as_bytes().eq_ignore_ascii_case(word) {
            return Known(k as u16);
        }
        i = (i + 1) & (SLOTS - 1);
    }
}

/// True when `word` (any case) is a keyword in the table.
#[inline]
pub fn is_keyword(word: &[u8]) -> bool {
    lookup(word).is_keyword()
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
        for w in super::MARKERS.iter().chain(super::TYPES) {
            assert!(!is_keyword(w.as_bytes()), "{w}");
            assert_eq!(super::lookup(w.to_uppercase().as_bytes()), super::known(w), "{w}");
        }
        assert!(super::known("date").is_literal_type() && super::known("interval").is_literal_type());
        assert!(!super::known("select").is_literal_type() && !super::known("role").is_literal_type());
        assert_eq!(super::lookup(b"users"), super::Known::NONE);
        assert_eq!(super::known("select").upper(), b"SELECT");
        assert_eq!(super::known("current_timestamp").upper(), b"CURRENT_TIMESTAMP");
        assert_eq!(super::known("role").upper(), b"");
    }
}
