//! Capturing values for the detectors: parameters of each execution and a sample of each
//! result, as text, bounded in count and size. Values stay in memory; they reach logs or the
//! API only with `--log-params`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

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

/// True when [`value_key`] has a key for this value (it is short enough and, if binary, of a
/// form it can read), found without computing it.
pub fn has_key(bytes: &[u8], format: Format) -> bool {
    bytes.len() <= MAX_VALUE
        && (format == Format::Text || matches!(bytes.len(), 2 | 4 | 8 | 16) || std::str::from_utf8(bytes).is_ok())
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

/// One hash of a sequence of values (`None`: NULL, apart from `''`): each value hashed on its
/// own, seeded with what came before and its length; xxh3's streaming state costs more than the
/// short values of a statement.
pub fn chain_hash<'a>(values: impl IntoIterator<Item = Option<&'a [u8]>>) -> u64 {
    values.into_iter().fold(0, |h: u64, value| {
        let len = value.map_or(u64::MAX, |v| v.len() as u64);
        xxhash_rust::xxh3::xxh3_64_with_seed(value.unwrap_or_default(), h.rotate_left(17) ^ len)
    })
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
pub fn literal_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    if raw.len() > MAX_VALUE + 8 {
        return None;
    }
    // Borrowed unless a quote or an underscore has to go: this runs for every constant of every
    // simple Query.
    let text = std::str::from_utf8(raw).ok()?;
    let text = text.trim_start_matches(['+']);
    if let Some(body) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Some(if body.contains("''") { Cow::Owned(body.replace("''", "'")) } else { Cow::Borrowed(body) });
    }
    for prefix in ["E'", "e'", "N'", "n'"] {
        if let Some(body) = text.strip_prefix(prefix).and_then(|t| t.strip_suffix('\'')) {
            return Some(Cow::Owned(body.replace("''", "'").replace("\\'", "'")));
        }
    }
    if let Some(rest) = text.strip_prefix('$') {
        let tag_end = rest.find('$')? + 2;
        return text.get(tag_end..text.len().checked_sub(tag_end)?).map(Cow::Borrowed);
    }
    if text.contains('_') {
        Some(Cow::Owned(text.replace('_', "")))
    } else {
        Some(Cow::Borrowed(text))
    }
}

/// Bytes of rows a result keeps as they came, unkeyed; rows past it are keyed as they pass.
pub const MAX_RAW_BYTES: usize = 16 * 1024;

/// The result of one execution, sampled as its rows pass: the first [`MAX_SAMPLED_ROWS`] rows.
///
/// Rows are kept as bytes, back to back in one buffer (up to [`MAX_RAW_BYTES`]), and keyed only
/// if the result is ever searched as the parent of a burst: keying every value of every row cost
/// more than all the rest of a many-row statement's analysis, and most results are never
/// searched. Rows that do not fit are keyed as they pass, so a wide row is still sampled.
#[derive(Debug, Default)]
pub struct ResultSample {
    names: Arc<[Option<Arc<str>>]>,
    /// Format of each column (text unless the Bind asked for binary).
    formats: ResultFormats,
    /// Columns sampled per row (0 until the first row says).
    columns: usize,
    /// Rows as they came, their first `columns` values only: per row the count of values kept
    /// (2 bytes), their length (4 bytes), then the values as DataRow lays them out; in a row
    /// longer than sampled values can be, a value longer than [`MAX_VALUE`] is written as NULL
    /// (it is never a key).
    raw: Vec<u8>,
    /// Row-major keys of the rows that did not fit in `raw`, `columns` per row; 0 where a cell
    /// had no usable value.
    keys: Vec<ValueKey>,
    /// Some cell had a usable value (one that has a key): a result without one is no parent.
    any_key: bool,
    rows: u64,
}

/// Longest row kept whole: as long as its sampled values can be when each is kept.
const MAX_KEPT_ROW: usize = MAX_SAMPLED_COLUMNS * (MAX_VALUE + 4);

/// A kept row's header in [`ResultSample`]'s layout: its count of values, then their length
/// ([`raw_rows`] reads it back).
fn row_header(count: u16, len: u32) -> [u8; 6] {
    let [c0, c1] = count.to_be_bytes();
    let [l0, l1, l2, l3] = len.to_be_bytes();
    [c0, c1, l0, l1, l2, l3]
}

/// Appends `row`'s first `columns` values to `raw` in [`ResultSample`]'s layout; false, with
/// nothing appended, when they would take `raw` past [`MAX_RAW_BYTES`].
fn keep_row(raw: &mut Vec<u8>, row: &DataRow<'_>, columns: usize) -> bool {
    let bytes = row.values_bytes();
    let start = raw.len();
    if row.len() <= columns && bytes.len() <= MAX_KEPT_ROW {
        // Nearly every row: every value is sampled and the row is no longer than sampled values
        // can be, so it is kept whole, unwalked (a long value in it is never a key either).
        let (Ok(count), Ok(len)) = (u16::try_from(row.len()), u32::try_from(bytes.len())) else { return false };
        if start + 6 + bytes.len() > MAX_RAW_BYTES {
            return false;
        }
        raw.extend_from_slice(&row_header(count, len));
        raw.extend_from_slice(bytes);
        return true;
    }
    raw.extend_from_slice(&[0; 6]);
    // Walked by their length prefixes; copied in runs, a run ending before each value too long
    // to keep. A value cut short (a malformed row) ends the row, as DataRow::values does.
    let (mut count, mut at, mut run) = (0u16, 0usize, 0usize);
    while usize::from(count) < columns.min(row.len()) {
        let Some(len) = bytes.get(at..at + 4).map(|l| i32::from_be_bytes([l[0], l[1], l[2], l[3]])) else { break };
        let len = usize::try_from(len).unwrap_or(0);
        let Some(end) = (at + 4).checked_add(len).filter(|end| *end <= bytes.len()) else { break };
        if len > MAX_VALUE {
            raw.extend_from_slice(&bytes[run..at]);
            raw.extend_from_slice(&(-1i32).to_be_bytes());
            run = end;
        }
        (at, count) = (end, count + 1);
    }
    raw.extend_from_slice(&bytes[run..at]);
    let kept = raw.len() - start - 6;
    match u32::try_from(kept) {
        Ok(len) if raw.len() <= MAX_RAW_BYTES => {
            raw[start..start + 6].copy_from_slice(&row_header(count, len));
            true
        }
        _ => {
            raw.truncate(start);
            false
        }
    }
}

/// Appends the keys of `row`'s first `columns` values (0 for NULL, too long or missing).
fn key_row(keys: &mut Vec<ValueKey>, row: &DataRow<'_>, columns: usize, formats: ResultFormats) {
    let start = keys.len();
    for (i, value) in row.values().enumerate().take(columns) {
        keys.push(value.and_then(|v| value_key(v, formats.get(i))).unwrap_or(0));
    }
    // A short row (malformed) still fills its slots, so rows stay aligned.
    keys.resize(start + columns, 0);
}

/// The rows `raw` holds (as [`ResultSample`] lays them out), in order.
fn raw_rows(mut raw: &[u8]) -> impl Iterator<Item = DataRow<'_>> {
    std::iter::from_fn(move || {
        let (count, rest) = raw.split_first_chunk::<2>()?;
        let (len, rest) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let values = rest.get(..len)?;
        raw = &rest[len..];
        Some(DataRow::from_values(usize::from(u16::from_be_bytes(*count)), values))
    })
}

impl ResultSample {
    /// A sample whose columns are named `names` (from a RowDescription; empty when unknown).
    pub fn with_names(names: &Arc<[Option<Arc<str>>]>, formats: ResultFormats) -> Self {
        Self { names: names.clone(), formats, ..Self::default() }
    }

    /// Adds one row (only the first rows are kept).
    pub fn add(&mut self, row: &DataRow<'_>) {
        self.rows += 1;
        if self.rows > MAX_SAMPLED_ROWS {
            return;
        }
        if self.columns == 0 {
            self.columns = row.len().min(MAX_SAMPLED_COLUMNS);
        }
        if !self.any_key {
            // Usually settled by the first cell of the first row, without hashing it.
            let formats = self.formats;
            self.any_key =
                row.values().enumerate().take(self.columns).any(|(i, v)| v.is_some_and(|v| has_key(v, formats.get(i))));
        }
        if self.raw.is_empty() {
            // One row's worth: most results are one row (then `finish` has no slack to give back).
            self.raw.reserve_exact(6 + row.values_bytes().len().min(MAX_SAMPLED_COLUMNS * (MAX_VALUE + 4)));
        } else if self.raw.len() == self.raw.capacity() {
            // A second row: room for a page of them at once rather than doubling.
            self.raw.reserve(MAX_RAW_BYTES.min(self.raw.len() * 32));
        }
        if !keep_row(&mut self.raw, row, self.columns) {
            key_row(&mut self.keys, row, self.columns, self.formats);
        }
    }

    /// Makes room for `bytes` of kept rows at once (what the statement's last result kept), so a
    /// result as long as the last grows no further and has no slack to give back.
    pub fn expect(&mut self, bytes: usize) {
        let bytes = bytes.min(MAX_RAW_BYTES);
        if self.raw.capacity() < bytes {
            self.raw.reserve_exact(bytes - self.raw.len());
        }
    }

    /// Bytes of rows kept so far (see [`Self::expect`]).
    pub fn kept_bytes(&self) -> usize {
        self.raw.len()
    }

    /// The sampled rows.
    pub fn finish(self) -> ResultDigest {
        let (mut raw, mut keys) = (self.raw, self.keys);
        // It may wait in the engine's queue and as a parent: no more than a little slack.
        if raw.capacity() > raw.len() + 256 {
            raw.shrink_to_fit();
        }
        keys.shrink_to_fit();
        ResultDigest {
            names: self.names,
            columns: self.columns,
            formats: self.formats,
            raw,
            keyed: keys,
            any_key: self.any_key,
            ..Default::default()
        }
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

/// The sampled rows of one result (capped by the observer), as they came: a result is only
/// searched when it turns out to be the parent of a burst, so its rows are keyed then, once,
/// and never sorted or indexed (most results never are searched).
#[derive(Debug, Clone, Default)]
pub struct ResultDigest {
    names: Arc<[Option<Arc<str>>]>,
    columns: usize,
    formats: ResultFormats,
    /// Rows kept as bytes ([`ResultSample`]'s layout), keyed at the first search.
    raw: Vec<u8>,
    /// The keys of `raw`'s rows, row-major, `columns` per row (0 where a cell had no usable value).
    raw_keys: OnceLock<Vec<ValueKey>>,
    /// The keys of the rows that were keyed as they came, laid out the same way.
    keyed: Vec<ValueKey>,
    /// Some cell has a key.
    any_key: bool,
}

impl ResultDigest {
    /// A digest of `columns` given column by column (tests).
    pub fn new(names: Arc<[Option<Arc<str>>]>, columns: impl IntoIterator<Item = Vec<ValueKey>>) -> Self {
        let columns: Vec<Vec<ValueKey>> = columns.into_iter().collect();
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        let mut keys = Vec::with_capacity(rows * columns.len());
        for r in 0..rows {
            keys.extend(columns.iter().map(|c| c.get(r).copied().unwrap_or(0)));
        }
        let any_key = keys.iter().any(|k| *k != 0);
        Self { names, columns: columns.len(), keyed: keys, any_key, ..Self::default() }
    }

    /// Columns sampled.
    pub fn columns(&self) -> usize {
        self.columns
    }

    /// True when no sampled cell has a usable value (none, or all NULL or too long): such a
    /// result can be no parent.
    pub fn is_empty(&self) -> bool {
        !self.any_key
    }

    /// Column `column`'s name from RowDescription, when known.
    pub fn name(&self, column: usize) -> Option<&str> {
        self.names.get(column).and_then(|n| n.as_deref())
    }

    /// True when column `column` held a value with this key.
    pub fn contains(&self, column: usize, key: ValueKey) -> bool {
        let search = |keys: &[ValueKey]| {
            keys.get(column..).is_some_and(|from| from.iter().step_by(self.columns).any(|k| *k == key))
        };
        key != 0 && column < self.columns && (search(&self.keyed) || search(self.raw_keys()))
    }

    /// The keys of the rows kept as bytes, computed at the first call. The observer and the
    /// engine may search one result at once: the second then waits for the first to key it
    /// (microseconds, once per parent).
    fn raw_keys(&self) -> &[ValueKey] {
        self.raw_keys.get_or_init(|| {
            let mut keys = Vec::new();
            for row in raw_rows(&self.raw) {
                key_row(&mut keys, &row, self.columns, self.formats);
            }
            keys
        })
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

    /// A DataRow body with these text values (`None`: NULL).
    fn row(values: &[Option<&str>]) -> Vec<u8> {
        let mut body = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                Some(v) => {
                    body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    body.extend_from_slice(v.as_bytes());
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        body
    }

    fn key(v: &str) -> ValueKey {
        value_key(v.as_bytes(), Format::Text).unwrap()
    }

    #[test]
    fn a_digest_holds_each_columns_values() {
        let mut sample = ResultSample::with_names(&vec![Some(Arc::from("id")), None].into(), ResultFormats::TEXT);
        for r in [row(&[Some("5"), Some("9")]), row(&[Some("3"), None]), row(&[Some("5"), Some("9")])] {
            sample.add(&DataRow::parse(&r).unwrap());
        }
        let d = sample.finish();
        assert_eq!(d.columns(), 2);
        assert!(d.keyed.is_empty() && !d.raw.is_empty(), "small rows are kept unkeyed");
        assert!(d.contains(0, key("5")) && d.contains(0, key("3")) && !d.contains(0, key("9")));
        assert!(d.contains(1, key("9")) && !d.contains(1, 0) && !d.contains(1, key("5")));
        assert!(!d.contains(2, key("5")), "no such column");
        assert_eq!((d.name(0), d.name(1)), (Some("id"), None));
        let same = ResultDigest::new(
            vec![Some(Arc::from("id")), None].into(),
            [vec![key("5"), key("3"), key("5")], vec![key("9"), 0, key("9")]],
        );
        assert_eq!(same.keyed, d.raw_keys(), "keyed at the first search, as if keyed as they came");
        assert!(ResultDigest::default().is_empty());
    }

    #[test]
    fn a_result_as_long_as_the_last_is_kept_in_one_allocation() {
        let rows: Vec<Vec<u8>> = (0..50).map(|i| row(&[Some(&i.to_string()), Some("abc")])).collect();
        let sample_of = |expected: Option<usize>| {
            let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::TEXT);
            for (i, r) in rows.iter().enumerate() {
                if i == 1 {
                    if let Some(bytes) = expected {
                        sample.expect(bytes);
                    }
                }
                sample.add(&DataRow::parse(r).unwrap());
            }
            sample
        };
        let first = sample_of(None);
        let bytes = first.kept_bytes();
        let digest = first.finish();
        let second = sample_of(Some(bytes));
        let room = second.raw.capacity();
        assert!(room >= bytes && room <= bytes + 256, "room made once, and no slack for finish to give back: {room}");
        assert_eq!(second.finish().raw, digest.raw, "the same rows kept");
        // A hint past the cap, or below what is already kept, changes nothing but the room.
        let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::TEXT);
        sample.add(&DataRow::parse(&rows[0]).unwrap());
        sample.expect(0);
        sample.expect(usize::MAX);
        assert!(sample.raw.capacity() >= MAX_RAW_BYTES && sample.raw.capacity() < 2 * MAX_RAW_BYTES);
    }

    #[test]
    fn only_sampled_columns_and_short_values_are_kept() {
        let long = "y".repeat(MAX_VALUE + 1);
        let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::TEXT);
        sample.add(&DataRow::parse(&row(&[None, Some(&long)])).unwrap());
        assert!(sample.finish().is_empty(), "NULL and too long: nothing to match a child against");
        let many: Vec<String> = (0..40).map(|i| format!("{i}{long}")).collect();
        let mut cells: Vec<Option<&str>> = many.iter().map(|s| Some(s.as_str())).collect();
        cells[1] = Some("7");
        let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::TEXT);
        sample.add(&DataRow::parse(&row(&cells)).unwrap());
        let d = sample.finish();
        assert!(!d.is_empty() && d.contains(1, key("7")) && !d.contains(0, text_key(many[0].as_bytes())));
        assert_eq!(d.raw.len(), 6 + 4 + 5 + 14 * 4, "16 columns: 15 long ones as NULL, one value");
    }

    #[test]
    fn rows_past_the_byte_cap_are_keyed_as_they_pass() {
        let wide = "x".repeat(MAX_VALUE);
        let mut sample = ResultSample::with_names(&Arc::from([]), ResultFormats::TEXT);
        // About 290 bytes a row: 56 rows fit, the next 44 do not.
        let rows = 100;
        for i in 0..rows {
            let i = i.to_string();
            sample.add(&DataRow::parse(&row(&[Some(&i), Some(&wide), Some(&wide), Some(&wide), Some(&wide)])).unwrap());
        }
        let d = sample.finish();
        assert!(d.raw.len() <= MAX_RAW_BYTES && !d.keyed.is_empty(), "{} bytes, {} keys", d.raw.len(), d.keyed.len());
        assert!((0..rows).all(|i| d.contains(0, key(&i.to_string()))), "every row is found, kept or keyed");
        assert!(d.contains(1, key(&wide)) && !d.contains(0, key(&wide)));
    }
}
