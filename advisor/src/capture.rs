//! Capturing values for the detectors: parameters of each execution and a sample of each
//! result, as text, bounded in count and size. Values stay in memory; they reach logs or the
//! API only with `--log-params`.

use std::sync::Arc;

use protocol::backend::{DataRow, RowDescription};
use protocol::frontend::{Bind, Format};

/// Most parameters captured per execution.
pub const MAX_PARAMS: usize = 8;
/// Longest value captured, in bytes; longer values are not useful as join keys.
pub const MAX_VALUE: usize = 64;
/// Rows sampled per result.
pub const MAX_SAMPLED_ROWS: u64 = 200;
/// Columns sampled per result.
pub const MAX_SAMPLED_COLUMNS: usize = 16;

/// A value as comparable text: text-format values as they are; binary integers (2, 4, 8
/// bytes) as decimal and 16-byte values as UUIDs, so a binary parameter matches a text result.
/// Used only where values are shown (`--log-params`); matching uses [`value_key`].
pub fn value_text(bytes: &[u8], format: Format) -> Option<String> {
    let mut buf = [0u8; 40];
    canonical(bytes, format, &mut buf).map(|t| String::from_utf8_lossy(t).into_owned())
}

/// A captured value as a 64-bit key: the hash of its canonical text (see [`value_text`]), so
/// a binary parameter matches a text result. No allocation: this runs for every sampled cell.
/// `None` for values too long to be join keys.
pub fn value_key(bytes: &[u8], format: Format) -> Option<ValueKey> {
    let mut buf = [0u8; 40];
    canonical(bytes, format, &mut buf).map(text_key)
}

/// The key of a value's canonical text.
pub fn text_key(text: &[u8]) -> ValueKey {
    // 0 marks "no value" in [`Params`].
    xxhash_rust::xxh3::xxh3_64(text).max(1)
}

/// The canonical text of a value, in `buf` when it has to be formatted.
fn canonical<'a>(bytes: &'a [u8], format: Format, buf: &'a mut [u8; 40]) -> Option<&'a [u8]> {
    use std::io::Write;
    if bytes.len() > MAX_VALUE {
        return None;
    }
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let written = match (format, bytes.len()) {
        (Format::Text, _) => return Some(bytes),
        (Format::Binary, 2) => write!(cursor, "{}", i16::from_be_bytes([bytes[0], bytes[1]])),
        (Format::Binary, 4) => write!(cursor, "{}", i32::from_be_bytes(bytes.try_into().ok()?)),
        (Format::Binary, 8) => write!(cursor, "{}", i64::from_be_bytes(bytes.try_into().ok()?)),
        (Format::Binary, 16) => {
            let mut result = Ok(());
            for (i, b) in bytes.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    result = result.and(cursor.write_all(b"-"));
                }
                result = result.and(write!(cursor, "{b:02x}"));
            }
            result
        }
        (Format::Binary, _) => return std::str::from_utf8(bytes).ok().map(str::as_bytes),
    };
    written.ok()?;
    let len = usize::try_from(cursor.position()).ok()?;
    buf.get(..len)
}

/// A captured value: [`text_key`] of its canonical text.
pub type ValueKey = u64;

/// The parameters of one execution as keys, by position (0 where a value was NULL or too long
/// to be a join key), at most [`MAX_PARAMS`]. Copied, never allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params {
    keys: [ValueKey; MAX_PARAMS],
    len: u8,
}

impl Params {
    /// Parameters from keys in order (`None`: no value at that position).
    pub fn from_keys(keys: impl IntoIterator<Item = Option<ValueKey>>) -> Self {
        let mut p = Self::default();
        for key in keys.into_iter().take(MAX_PARAMS) {
            p.keys[usize::from(p.len)] = key.unwrap_or(0);
            p.len += 1;
        }
        p
    }

    /// Parameters from canonical texts (tests, literals).
    pub fn from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        Self::from_keys(texts.into_iter().map(|t| Some(text_key(t.as_bytes()))))
    }

    /// (position, key) of every parameter that has a value.
    pub fn iter(&self) -> impl Iterator<Item = (usize, ValueKey)> + '_ {
        self.keys[..usize::from(self.len)].iter().copied().enumerate().filter(|(_, k)| *k != 0)
    }

    /// True when no parameter has a value.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// One hash of all the parameters (tells distinct parameter sets apart).
    pub fn hash(&self) -> u64 {
        // One-shot over a stack buffer: xxh3's streaming state is larger than the keys.
        let mut bytes = [0u8; MAX_PARAMS * 8];
        for (chunk, k) in bytes.chunks_exact_mut(8).zip(&self.keys[..usize::from(self.len)]) {
            chunk.copy_from_slice(&k.to_le_bytes());
        }
        xxhash_rust::xxh3::xxh3_64(&bytes[..usize::from(self.len) * 8])
    }
}

/// The parameters of a Bind as keys.
pub fn bind_params(bind: &Bind<'_>) -> Params {
    Params::from_keys(bind.params().map(|(format, value)| value.and_then(|v| value_key(v, format))))
}

/// The parameters of a Bind as text, for `--log-params` evidence only.
pub fn bind_param_texts(bind: &Bind<'_>) -> Vec<String> {
    bind.params().take(MAX_PARAMS).filter_map(|(format, value)| value.and_then(|v| value_text(v, format))).collect()
}

/// The value of a literal constant as the server would see it: quotes and prefixes removed.
pub fn literal_value(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_VALUE + 8 {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    let text = text.trim_start_matches(['+']);
    if let Some(body) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Some(body.replace("''", "'"));
    }
    for prefix in ["E'", "e'", "N'", "n'"] {
        if let Some(body) = text.strip_prefix(prefix).and_then(|t| t.strip_suffix('\'')) {
            return Some(body.replace("''", "'").replace("\\'", "'"));
        }
    }
    if let Some(rest) = text.strip_prefix('$') {
        let tag_end = rest.find('$')? + 2;
        return text.get(tag_end..text.len().checked_sub(tag_end)?).map(str::to_owned);
    }
    Some(text.replace('_', ""))
}

/// The result of one execution, sampled as its rows pass: the keys of the values of the first
/// [`MAX_SAMPLED_ROWS`] rows, row after row in one buffer (no allocation per row or cell).
#[derive(Debug, Default)]
pub struct ResultSample {
    names: Arc<[Option<Arc<str>>]>,
    /// Format of each column (text unless the Bind asked for binary).
    formats: ResultFormats,
    /// Columns sampled per row (0 until the first row says).
    columns: usize,
    /// Row-major keys, `columns` per row; 0 where a cell had no usable value.
    keys: Vec<ValueKey>,
    rows: u64,
}

impl ResultSample {
    /// A sample whose columns are named `names` (from a RowDescription; empty when unknown).
    pub fn with_names(names: &Arc<[Option<Arc<str>>]>, formats: ResultFormats) -> Self {
        Self { names: names.clone(), formats, columns: 0, keys: Vec::new(), rows: 0 }
    }

    /// Adds one row's values (only the first rows are kept).
    pub fn add(&mut self, row: &DataRow<'_>) {
        self.rows += 1;
        if self.rows > MAX_SAMPLED_ROWS {
            return;
        }
        if self.columns == 0 {
            self.columns = row.len().min(MAX_SAMPLED_COLUMNS);
            // One row's worth, exactly: most results are one row (then `finish` has no slack to
            // give back), and the buffer doubles as more rows come.
            self.keys.reserve_exact(self.columns);
        }
        let start = self.keys.len();
        for (i, value) in row.values().enumerate().take(self.columns) {
            let format = self.formats.get(i);
            self.keys.push(value.and_then(|v| value_key(v, format)).unwrap_or(0));
        }
        // A short row (malformed) still fills its slots, so rows stay aligned.
        self.keys.resize(start + self.columns, 0);
    }

    /// The sampled values.
    pub fn finish(self) -> ResultDigest {
        let mut keys = self.keys;
        // It may wait in the engine's queue and as a parent: no slack carried along.
        keys.shrink_to_fit();
        ResultDigest::from_rows(self.names, self.columns, keys)
    }
}

/// The names of a RowDescription's columns (at most [`MAX_SAMPLED_COLUMNS`]).
pub fn column_names(description: &RowDescription<'_>) -> Vec<Option<Arc<str>>> {
    description
        .fields
        .iter()
        .take(MAX_SAMPLED_COLUMNS)
        .map(|f| Some(Arc::from(String::from_utf8_lossy(f.name).as_ref())))
        .collect()
}

/// The result formats a Bind requested, for the sampled columns only: the protocol's zero codes
/// (all text), one code (for every column) or one code per column, kept as one bit a column so
/// that a Bind allocates nothing for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResultFormats {
    /// Bit `i`: column `i` is binary.
    binary: u16,
}

const _: () = assert!(MAX_SAMPLED_COLUMNS <= u16::BITS as usize);

impl ResultFormats {
    /// Every column as text (a simple Query, or a Bind with no format codes).
    pub const TEXT: Self = Self { binary: 0 };

    /// From a Bind's result-format codes, as they are on the wire (Int16 each, big-endian); a
    /// trailing odd byte is ignored.
    pub fn from_codes(codes: &[u8]) -> Self {
        let binary = |pair: &[u8]| pair.len() == 2 && i16::from_be_bytes([pair[0], pair[1]]) == 1;
        let mut pairs = codes.chunks_exact(2);
        match codes.len() / 2 {
            0 => Self::TEXT,
            1 => Self { binary: if pairs.next().is_some_and(binary) { u16::MAX } else { 0 } },
            _ => Self {
                binary: pairs.take(MAX_SAMPLED_COLUMNS).enumerate().fold(0, |bits, (i, pair)| {
                    if binary(pair) {
                        bits | 1 << i
                    } else {
                        bits
                    }
                }),
            },
        }
    }

    /// The format of column `column` (text beyond the sampled columns).
    pub fn get(self, column: usize) -> Format {
        if column < MAX_SAMPLED_COLUMNS && self.binary & (1 << column) != 0 {
            Format::Binary
        } else {
            Format::Text
        }
    }
}

/// The sampled values of one result (capped by the observer), row after row as they came: a
/// result is only searched when it turns out to be the parent of a burst, so it is not sorted
/// or indexed up front (most results never are).
#[derive(Debug, Clone, Default)]
pub struct ResultDigest {
    names: Arc<[Option<Arc<str>>]>,
    columns: usize,
    /// Row-major keys, `columns` per row; 0 where a cell had no usable value.
    keys: Vec<ValueKey>,
}

impl ResultDigest {
    /// A digest of row-major `keys`, `columns` per row (0 means no value).
    pub fn from_rows(names: Arc<[Option<Arc<str>>]>, columns: usize, keys: Vec<ValueKey>) -> Self {
        Self { names, columns, keys }
    }

    /// A digest of `columns` given column by column (tests).
    pub fn new(names: Arc<[Option<Arc<str>>]>, columns: impl IntoIterator<Item = Vec<ValueKey>>) -> Self {
        let columns: Vec<Vec<ValueKey>> = columns.into_iter().collect();
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        let mut keys = Vec::with_capacity(rows * columns.len());
        for r in 0..rows {
            keys.extend(columns.iter().map(|c| c.get(r).copied().unwrap_or(0)));
        }
        Self { names, columns: columns.len(), keys }
    }

    /// Columns sampled.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// True when nothing was sampled.
    pub fn is_empty(&self) -> bool {
        self.keys.iter().all(|k| *k == 0)
    }

    /// Column `column`'s name from RowDescription, when known.
    pub fn name(&self, column: usize) -> Option<&str> {
        self.names.get(column).and_then(|n| n.as_deref())
    }

    /// True when column `column` held a value with this key.
    pub fn contains(&self, column: usize, key: ValueKey) -> bool {
        key != 0
            && column < self.columns
            && self.keys.get(column..).is_some_and(|from| from.iter().step_by(self.columns).any(|k| *k == key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_text_values_compare() {
        assert_eq!(value_text(&42i32.to_be_bytes(), Format::Binary).as_deref(), Some("42"));
        assert_eq!(value_text(&42i64.to_be_bytes(), Format::Binary).as_deref(), Some("42"));
        assert_eq!(value_text(b"42", Format::Text).as_deref(), Some("42"));
        assert_eq!(value_text(&[0u8; 100], Format::Text), None);
        let uuid = [0x55u8, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00];
        assert_eq!(value_text(&uuid, Format::Binary).as_deref(), Some("550e8400-e29b-41d4-a716-446655440000"));
        // Keys agree across formats, with no allocation.
        assert_eq!(value_key(&(-7i16).to_be_bytes(), Format::Binary), value_key(b"-7", Format::Text));
        assert_eq!(value_key(&uuid, Format::Binary), value_key(b"550e8400-e29b-41d4-a716-446655440000", Format::Text));
        assert_eq!(
            value_key(&i64::MIN.to_be_bytes(), Format::Binary),
            value_key(b"-9223372036854775808", Format::Text)
        );
        let p = Params::from_keys([Some(5), None, Some(7)]);
        assert_eq!(p.iter().collect::<Vec<_>>(), vec![(0, 5), (2, 7)]);
        assert_ne!(p.hash(), Params::from_keys([Some(5), Some(7)]).hash());
    }

    #[test]
    fn literals() {
        assert_eq!(literal_value(b"'it''s'").as_deref(), Some("it's"));
        assert_eq!(literal_value(b"E'a\\'b'").as_deref(), Some("a'b"));
        assert_eq!(literal_value(b"$$x$$").as_deref(), Some("x"));
        assert_eq!(literal_value(b"$t$x$t$").as_deref(), Some("x"));
        assert_eq!(literal_value(b"1_000").as_deref(), Some("1000"));
        assert_eq!(literal_value(b"-5").as_deref(), Some("-5"));
    }

    #[test]
    fn a_digest_holds_each_columns_values() {
        // Two columns, three rows, row-major; 0 is "no value".
        let d = ResultDigest::from_rows(vec![Some(Arc::from("id")), None].into(), 2, vec![5, 9, 3, 0, 5, 9]);
        assert_eq!(d.columns(), 2);
        assert!(d.contains(0, 5) && d.contains(0, 3) && !d.contains(0, 9));
        assert!(d.contains(1, 9) && !d.contains(1, 0) && !d.contains(1, 5));
        assert!(!d.contains(2, 5), "no such column");
        assert_eq!((d.name(0), d.name(1)), (Some("id"), None));
        let same = ResultDigest::new(vec![Some(Arc::from("id")), None].into(), [vec![5, 3, 5], vec![9, 0, 9]]);
        assert_eq!(same.keys, d.keys);
        assert!(ResultDigest::from_rows(Arc::from([]), 0, Vec::new()).is_empty());
    }
}
