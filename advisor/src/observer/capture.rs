//! Capturing values for the detectors: parameters of each execution and a sample of each
//! result, as text, bounded in count and size. Values stay in memory; they reach logs or the
//! API only with `--log-params`.

use std::collections::HashSet;

use protocol::backend::{DataRow, RowDescription};
use protocol::frontend::{Bind, Format};

use crate::detect::n_plus_one::ColumnSample;

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
pub fn value_text(bytes: &[u8], format: Format) -> Option<String> {
    if bytes.len() > MAX_VALUE {
        return None;
    }
    match format {
        Format::Text => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Format::Binary => Some(match bytes.len() {
            2 => i16::from_be_bytes([bytes[0], bytes[1]]).to_string(),
            4 => i32::from_be_bytes(bytes.try_into().ok()?).to_string(),
            8 => i64::from_be_bytes(bytes.try_into().ok()?).to_string(),
            16 => {
                let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
            }
            _ => std::str::from_utf8(bytes).ok()?.to_owned(),
        }),
    }
}

/// The parameters of a Bind, as text (NULLs and oversized values skipped).
pub fn bind_params(bind: &Bind<'_>) -> Vec<String> {
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

/// The result of one execution, sampled as its rows pass.
#[derive(Debug, Default)]
pub struct ResultSample {
    /// Per column: name and values seen.
    pub columns: Vec<ColumnSample>,
    /// Format of each column (text unless the Bind asked for binary).
    pub formats: Vec<Format>,
    rows: u64,
}

impl ResultSample {
    /// A sample whose columns are named by `description`.
    pub fn named(description: &RowDescription<'_>) -> Self {
        let columns = description
            .fields
            .iter()
            .take(MAX_SAMPLED_COLUMNS)
            .map(|f| ColumnSample { name: Some(String::from_utf8_lossy(f.name).into_owned()), values: HashSet::new() })
            .collect();
        let formats =
            description.fields.iter().map(|f| if f.format == 1 { Format::Binary } else { Format::Text }).collect();
        Self { columns, formats, rows: 0 }
    }

    /// Column names from a sample made earlier (a prepared statement's description).
    pub fn with_names(names: &[Option<String>], formats: Vec<Format>) -> Self {
        // An empty name list: columns are created from the first row.
        let columns = names.iter().map(|n| ColumnSample { name: n.clone(), values: HashSet::new() }).collect();
        Self { columns, formats, rows: 0 }
    }

    /// Adds one row's values (only the first rows are kept).
    pub fn add(&mut self, row: &DataRow<'_>) {
        self.rows += 1;
        if self.rows > MAX_SAMPLED_ROWS {
            return;
        }
        if self.columns.is_empty() {
            self.columns = (0..row.len().min(MAX_SAMPLED_COLUMNS)).map(|_| ColumnSample::default()).collect();
        }
        for (i, value) in row.values().enumerate().take(self.columns.len()) {
            let format = self.formats.get(i).copied().unwrap_or(Format::Text);
            if let Some(text) = value.and_then(|v| value_text(v, format)) {
                self.columns[i].values.insert(text);
            }
        }
    }

    /// Column names, for remembering a prepared statement's description.
    pub fn names(&self) -> Vec<Option<String>> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// Result formats a Bind requested, for `columns` columns.
pub fn result_formats(codes: &[u8], columns: usize) -> Vec<Format> {
    let code = |i: usize| {
        if i16::from_be_bytes([codes[2 * i], codes[2 * i + 1]]) == 1 {
            Format::Binary
        } else {
            Format::Text
        }
    };
    match codes.len() / 2 {
        0 => vec![Format::Text; columns],
        1 => vec![code(0); columns],
        n => (0..n).map(code).collect(),
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
}
