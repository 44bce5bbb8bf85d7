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
    "variadic",
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

    /// Appends the keyword's upper-case text (nothing for other words): as one fixed 16-byte
    /// block cut back to its length, which needs no `memcpy` call, for all but the longest.
    #[inline(always)]
    pub fn push_upper(self, out: &mut Vec<u8>) {
        let Some((bytes, len)) = UPPER.get(usize::from(self.0)) else { return };
        let (at, len) = (out.len(), usize::from(*len));
        match <&[u8; 16]>::try_from(&bytes[..16]) {
            Ok(block) if len <= 16 => {
                out.extend_from_slice(block);
                out.truncate(at + len);
            }
            _ => out.extend_from_slice(&bytes[..len]),
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

/// A word of at most [`MAX_WORD_LEN`] bytes, lower-cased and zero-padded into three words of
/// eight bytes, with its length: compared and hashed as integers rather than byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u64; 3], u8);

/// Lower-cases the ASCII letters of eight bytes at once (other bytes stay as they are).
#[inline(always)]
const fn fold(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let t = x & LOW7;
    // Per byte: the high bit says `t >= b'A'`, then `t > b'Z'`; bytes >= 0x80 are never letters.
    let at_least_a = t.wrapping_add(0x3f3f_3f3f_3f3f_3f3f);
    let past_z = t.wrapping_add(0x2525_2525_2525_2525);
    let upper = at_least_a & !past_z & !x & HIGH;
    x | (upper >> 2)
}

/// Eight bytes of `w` from `at` (zero past its end), little-endian.
#[inline(always)]
const fn word8(w: &[u8], at: usize) -> u64 {
    let mut x = 0u64;
    let mut k = 0;
    while k < 8 && at + k < w.len() {
        x |= (w[at + k] as u64) << (8 * k);
        k += 1;
    }
    x
}

impl Key {
    /// The key of `word` (at most [`MAX_WORD_LEN`] bytes), at compile time.
    const fn of_const(word: &[u8]) -> Key {
        Key([fold(word8(word, 0)), fold(word8(word, 8)), fold(word8(word, 16))], word.len() as u8)
    }

    /// The key of `word`, 1 to [`MAX_WORD_LEN`] bytes, at run time: whole eight-byte loads where
    /// the word has them, and overlapping loads for the tail, instead of a loop per byte.
    /// `fold` lower-cases it; a caller whose word has no upper-case letter skips that.
    #[inline(always)]
    fn of(word: &[u8], lower: fn(u64) -> u64) -> Key {
        let n = word.len();
        let load = |at: usize| u64::from_le_bytes(word[at..at + 8].try_into().unwrap_or_default());
        let k = match n {
            0 => [0; 3],
            1..=3 => {
                let (a, b, c) = (word[0] as u64, word[n / 2] as u64, word[n - 1] as u64);
                [lower(a | b << (8 * (n / 2)) | c << (8 * (n - 1))), 0, 0]
            }
            4..=7 => {
                let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) as u64;
                let hi = u32::from_le_bytes([word[n - 4], word[n - 3], word[n - 2], word[n - 1]]) as u64;
                [lower(lo | hi << (8 * (n - 4))), 0, 0]
            }
            8 => [lower(load(0)), 0, 0],
            9..=16 => [lower(load(0)), lower(load(n - 8) >> (8 * (16 - n))), 0],
            _ => [lower(load(0)), lower(load(8)), lower(load(n - 8) >> (8 * (24 - n.min(24))))],
        };
        Key(k, n as u8)
    }

    /// The key's slot in the table.
    #[inline(always)]
    const fn slot(&self) -> usize {
        let h = self.0[0] ^ self.0[1].rotate_left(21) ^ self.0[2].rotate_left(42) ^ self.1 as u64;
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (SLOTS - 1)
    }
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
#[cfg(test)]
static ALL_WORDS: [&str; WORDS] = {
    let mut all = [""; WORDS];
    let mut k = 0;
    while k < WORDS {
        all[k] = word_at(k);
        k += 1;
    }
    all
};

/// The key of every word of the table, by id.
static KEYS: [Key; WORDS] = {
    let mut keys = [Key([0; 3], 0); WORDS];
    let mut k = 0;
    while k < WORDS {
        keys[k] = Key::of_const(word_at(k).as_bytes());
        k += 1;
    }
    keys
};

/// Index + 1 of each word at its slot (linear probing), 0 for an empty slot.
static TABLE: [u16; SLOTS] = {
    let mut table = [0u16; SLOTS];
    let mut k = 0;
    while k < WORDS {
        let mut i = Key::of_const(word_at(k).as_bytes()).slot();
        while table[i] != 0 {
            i = (i + 1) & (SLOTS - 1);
        }
        table[i] = k as u16 + 1;
        k += 1;
    }
    table
};

/// Per word length, per first byte (`& 31`, the same for both cases of a letter): a bit per last
/// byte (`& 31`) that some word of the table has. Most names (`id`, `user_id`) are told apart
/// from every word of the table here, before their key is built.
static ENDS: [[u32; 32]; MAX_WORD_LEN + 1] = {
    let mut ends = [[0u32; 32]; MAX_WORD_LEN + 1];
    let mut k = 0;
    while k < WORDS {
        let w = word_at(k).as_bytes();
        ends[w.len()][(w[0] & 31) as usize] |= 1 << (w[w.len() - 1] & 31);
        k += 1;
    }
    ends
};

/// The id of `word` (any case), or [`Known::NONE`].
#[inline]
pub fn lookup(word: &[u8]) -> Known {
    find(word, fold)
}

/// The id of `word`, which has no upper-case ASCII letter (a quoted identifier the lexer found
/// to be `[a-z0-9_]`), or [`Known::NONE`]: [`lookup`] without lower-casing.
#[inline]
pub fn lookup_lower(word: &[u8]) -> Known {
    find(word, |x| x)
}

#[inline(always)]
fn find(word: &[u8], lower: fn(u64) -> u64) -> Known {
    let (Some(&first), Some(&last)) = (word.first(), word.last()) else { return Known::NONE };
    match ENDS.get(word.len()) {
        Some(ends) if ends[usize::from(first & 31)] & (1 << (last & 31)) != 0 => {}
        _ => return Known::NONE,
    }
    let key = Key::of(word, lower);
    let mut i = key.slot();
    loop {
        let k = TABLE[i];
        if k == 0 {
            return Known::NONE;
        }
        let k = usize::from(k) - 1;
        if KEYS[k] == key {
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
        for k in 0..super::WORDS {
            let mut out = b"x".to_vec();
            super::Known(k as u16).push_upper(&mut out);
            assert_eq!(&out[1..], super::Known(k as u16).upper(), "{}", super::word_at(k));
        }
    }

    proptest::proptest! {
        /// The run-time key (overlapping loads) is the compile-time one (a loop per byte), and a
        /// lookup finds exactly the words equal to a table word ignoring ASCII case.
        #[test]
        fn lookup_is_a_case_insensitive_match(word in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), pick in 0..super::WORDS) {
            if (1..=super::MAX_WORD_LEN).contains(&word.len()) {
                proptest::prop_assert_eq!(super::Key::of(&word, super::fold), super::Key::of_const(&word));
                if !word.iter().any(u8::is_ascii_uppercase) {
                    proptest::prop_assert_eq!(super::lookup_lower(&word), super::lookup(&word));
                }
            }
            let expected = super::ALL_WORDS.iter().position(|w| w.as_bytes().eq_ignore_ascii_case(&word));
            proptest::prop_assert_eq!(super::lookup(&word), expected.map_or(super::Known::NONE, |k| super::Known(k as u16)));
            let mut table_word = super::word_at(pick).as_bytes().to_vec();
            if let Some(b) = table_word.get_mut(word.len() % 4) {
                *b = b.to_ascii_uppercase();
            }
            proptest::prop_assert_eq!(super::lookup(&table_word), super::Known(pick as u16));
        }
    }
}
