//! Typed views over the bodies of server messages the proxy and observer inspect.

use crate::cursor::{text, Cursor};
use crate::ProtocolError;

/// Authentication request code for SASL (AuthenticationSASL).
pub const AUTH_SASL: i32 = 10;
/// Authentication code for success (AuthenticationOk).
pub const AUTH_OK: i32 = 0;

/// Authentication ('R') message, decoded as far as the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// AuthenticationSASL with the offered mechanism names.
    Sasl(Vec<&'a [u8]>),
    /// Any other authentication message, by code (0 = Ok, 3 = cleartext, 5 = MD5, 11/12 = SASL steps).
    Other(i32),
}

impl<'a> Authentication<'a> {
    /// Decodes an Authentication body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "Authentication");
        let code = c.i32()?;
        if code != AUTH_SASL {
            return Ok(Self::Other(code));
        }
        let mut mechanisms = Vec::new();
        loop {
            let m = c.cstr()?;
            if m.is_empty() {
                break;
            }
            mechanisms.push(m);
        }
        Ok(Self::Sasl(mechanisms))
    }
}

/// BackendKeyData: the backend's process id and cancellation key (4 bytes in 3.0, up to 256 in 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData<'a> {
    /// Backend process id.
    pub pid: u32,
    /// Secret cancellation key.
    pub key: &'a [u8],
}

impl<'a> BackendKeyData<'a> {
    /// Decodes a BackendKeyData body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "BackendKeyData");
        let pid = c.u32()?;
        let key = c.remaining();
        if key.len() < 4 || key.len() > crate::startup::MAX_CANCEL_KEY_LEN {
            return Err(ProtocolError::InvalidField { what: "BackendKeyData", detail: "key length out of range" });
        }
        Ok(Self { pid, key })
    }
}

/// ParameterStatus: a run-time parameter's current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    /// Parameter name.
    pub name: &'a [u8],
    /// Parameter value.
    pub value: &'a [u8],
}

impl<'a> ParameterStatus<'a> {
    /// Decodes a ParameterStatus body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "ParameterStatus");
        Ok(Self { name: c.cstr()?, value: c.cstr()? })
    }
}

/// Transaction status carried by ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block (`I`).
    Idle,
    /// In a transaction block (`T`).
    InTransaction,
    /// In a failed transaction block (`E`).
    Failed,
}

/// ReadyForQuery: the server waits for the next query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// Transaction status after the last command.
    pub status: TransactionStatus,
}

impl ReadyForQuery {
    /// Decodes a ReadyForQuery body.
    pub fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        let status = match Cursor::new(body, "ReadyForQuery").u8()? {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            _ => {
                return Err(ProtocolError::InvalidField { what: "ReadyForQuery", detail: "unknown transaction status" })
            }
        };
        Ok(Self { status })
    }
}

/// CommandComplete: a statement finished; carries its command tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    /// The command tag, e.g. `SELECT 5`, `INSERT 0 1`, `UPDATE 3`.
    pub tag: &'a [u8],
}

impl<'a> CommandComplete<'a> {
    /// Decodes a CommandComplete body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        Ok(Self { tag: Cursor::new(body, "CommandComplete").cstr()? })
    }

    /// Rows affected or returned: the tag's last word when it is a number.
    pub fn rows(&self) -> Option<u64> {
        // Read for every statement: the digits after the last space, as bytes (`str::parse`
        // would check UTF-8 first and also take a leading `+`, which no tag has).
        let last = self.tag.rsplit(|&b| b == b' ').next()?;
        if last.is_empty() {
            return None;
        }
        last.iter().try_fold(0u64, |n, &b| match b {
            b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
            _ => None,
        })
    }

    /// The command word(s) before the row count, e.g. `SELECT`, `INSERT`, `CREATE TABLE`.
    pub fn command(&self) -> std::borrow::Cow<'a, str> {
        let end = if self.rows().is_some() {
            self.tag.iter().position(|&b| b.is_ascii_digit()).map_or(self.tag.len(), |p| p.saturating_sub(1))
        } else {
            self.tag.len()
        };
        text(&self.tag[..end])
    }
}

/// ErrorResponse or NoticeResponse fields (protocol document, "Error and Notice Message Fields").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    body: &'a [u8],
}

impl<'a> ErrorFields<'a> {
    /// Checks and wraps an ErrorResponse or NoticeResponse body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "ErrorResponse");
        loop {
            if c.u8()? == 0 {
                return Ok(Self { body });
            }
            c.cstr()?;
        }
    }

    /// Iterates `(field code, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> {
        let mut c = Cursor::new(self.body, "ErrorResponse");
        std::iter::from_fn(move || match c.u8() {
            Ok(0) | Err(_) => None,
            Ok(code) => c.cstr().ok().map(|v| (code, v)),
        })
    }

    /// The value of field `code` (e.g. `b'C'` for SQLSTATE).
    pub fn field(&self, code: u8) -> Option<&'a [u8]> {
        self.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// The SQLSTATE code (field `C`).
    pub fn sqlstate(&self) -> Option<&'a str> {
        std::str::from_utf8(self.field(b'C')?).ok()
    }

    /// The primary message (field `M`).
    pub fn message(&self) -> std::borrow::Cow<'a, str> {
        text(self.field(b'M').unwrap_or_default())
    }

    /// The detail (field `D`).
    pub fn detail(&self) -> Option<std::borrow::Cow<'a, str>> {
        self.field(b'D').map(text)
    }

    /// The non-localized severity (field `V`), or the localized one (`S`).
    pub fn severity(&self) -> std::borrow::Cow<'a, str> {
        text(self.field(b'V').or(self.field(b'S')).unwrap_or_default())
    }
}

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDescription<'a> {
    /// Column name.
    pub name: &'a [u8],
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number in the source table, or 0.
    pub column_attr: i16,
    /// Data type OID.
    pub type_oid: u32,
    /// Format code (0 text, 1 binary).
    pub format: i16,
}

/// RowDescription: the columns of the rows to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDescription<'a> {
    /// The columns, in order.
    pub fields: Vec<FieldDescription<'a>>,
}

impl<'a> RowDescription<'a> {
    /// Decodes a RowDescription body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "RowDescription");
        let n = c.count16()?;
        let mut fields = Vec::with_capacity(n.min(1600));
        for _ in 0..n {
            let name = c.cstr()?;
            let table_oid = c.u32()?;
            let column_attr = c.i16()?;
            let type_oid = c.u32()?;
            let _typlen = c.i16()?;
            let _typmod = c.i32()?;
            let format = c.i16()?;
            fields.push(FieldDescription { name, table_oid, column_attr, type_oid, format });
        }
        Ok(Self { fields })
    }

    /// The number of columns a RowDescription body announces, without decoding them.
    pub fn field_count(body: &[u8]) -> Result<usize, ProtocolError> {
        Cursor::new(body, "RowDescription").count16()
    }
}

/// DataRow: one result row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRow<'a> {
    count: usize,
    values: &'a [u8],
}

impl<'a> DataRow<'a> {
    /// Wraps a DataRow body; values are checked lazily by [`DataRow::values`].
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "DataRow");
        let count = c.count16()?;
        Ok(Self { count, values: c.remaining() })
    }

    /// A row of `count` columns whose values are `values`, as [`DataRow::values_bytes`] gave
    /// them (a row kept as bytes to be read later); values are checked lazily, as by
    /// [`DataRow::parse`].
    pub fn from_values(count: usize, values: &'a [u8]) -> Self {
        Self { count, values }
    }

    /// The values as they came, after the column count.
    pub fn values_bytes(&self) -> &'a [u8] {
        self.values
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True for a row with no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates column values (`None` is SQL NULL); stops early at a value cut short.
    pub fn values(&self) -> impl Iterator<Item = Option<&'a [u8]>> {
        let mut c = Cursor::new(self.values, "DataRow");
        (0..self.count).map_while(move |_| c.value().ok())
    }
}

/// NegotiateProtocolVersion: the newest minor version the server supports and options it ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiateProtocolVersion<'a> {
    /// Newest minor protocol version the server supports.
    pub newest_minor: i32,
    /// Protocol options the server did not recognise.
    pub unrecognized: Vec<&'a [u8]>,
}

impl<'a> NegotiateProtocolVersion<'a> {
    /// Decodes a NegotiateProtocolVersion body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "NegotiateProtocolVersion");
        let newest_minor = c.i32()?;
        let n = usize::try_from(c.i32()?).map_err(|_| ProtocolError::InvalidField {
            what: "NegotiateProtocolVersion",
            detail: "negative option count",
        })?;
        let mut unrecognized = Vec::new();
        for _ in 0..n {
            unrecognized.push(c.cstr()?);
        }
        Ok(Self { newest_minor, unrecognized })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pgwire::messages::data::{DataRow as PgDataRow, FieldDescription as PgField, RowDescription as PgRowDesc};
    use pgwire::messages::response::{
        CommandComplete as PgCC, ErrorResponse as PgErr, ReadyForQuery as PgRfq, TransactionStatus as PgTs,
    };
    use pgwire::messages::startup::{Authentication as PgAuth, BackendKeyData as PgKey};
    use pgwire::messages::Message;

    fn body(m: impl Message) -> Vec<u8> {
        let mut buf = BytesMut::new();
        m.encode(&mut buf).unwrap();
        buf[5..].to_vec()
    }

    #[test]
    fn sasl_mechanisms() {
        let b = body(PgAuth::SASL(vec!["SCRAM-SHA-256-PLUS".into(), "SCRAM-SHA-256".into()]));
        assert_eq!(
            Authentication::parse(&b).unwrap(),
            Authentication::Sasl(vec![&b"SCRAM-SHA-256-PLUS"[..], &b"SCRAM-SHA-256"[..]])
        );
        assert_eq!(Authentication::parse(&body(PgAuth::Ok)).unwrap(), Authentication::Other(0));
    }

    #[test]
    fn key_data_and_ready() {
        let b = body(PgKey::new(1234, pgwire::messages::startup::SecretKey::I32(99)));
        let k = BackendKeyData::parse(&b).unwrap();
        assert_eq!((k.pid, k.key), (1234, &99i32.to_be_bytes()[..]));
        assert_eq!(
            ReadyForQuery::parse(&body(PgRfq::new(PgTs::Transaction))).unwrap().status,
            TransactionStatus::InTransaction
        );
        assert!(ReadyForQuery::parse(b"Q").is_err());
    }

    #[test]
    fn command_complete_rows() {
        let cases = [
            ("SELECT 5", Some(5), "SELECT"),
            ("INSERT 0 3", Some(3), "INSERT"),
            ("CREATE TABLE", None, "CREATE TABLE"),
            ("COPY 10", Some(10), "COPY"),
        ];
        for (tag, rows, cmd) in cases {
            let b = body(PgCC::new(tag.into()));
            let cc = CommandComplete::parse(&b).unwrap();
            assert_eq!(cc.rows(), rows, "{tag}");
            assert_eq!(cc.command(), cmd, "{tag}");
        }
    }

    #[test]
    fn error_fields() {
        let b = body(PgErr::new(vec![
            (b'S', "ERROR".into()),
            (b'C', "40P01".into()),
            (b'M', "deadlock detected".into()),
            (b'D', "Process 1 waits".into()),
        ]));
        let e = ErrorFields::parse(&b).unwrap();
        assert_eq!(e.sqlstate(), Some("40P01"));
        assert_eq!(e.message(), "deadlock detected");
        assert_eq!(e.detail().as_deref(), Some("Process 1 waits"));
        assert!(ErrorFields::parse(&b[..b.len() - 1]).is_err());
    }

    #[test]
    fn row_description_and_data_row() {
        let f = PgField::new("id".into(), 16384, 1, 23, 4, -1, 0);
        let b = body(PgRowDesc::new(vec![f]));
        let rd = RowDescription::parse(&b).unwrap();
        assert_eq!((rd.fields[0].name, rd.fields[0].table_oid, rd.fields[0].type_oid), (&b"id"[..], 16384, 23));
        let mut row = BytesMut::new();
        row.extend_from_slice(&2i32.to_be_bytes());
        row.extend_from_slice(b"42");
        row.extend_from_slice(&(-1i32).to_be_bytes());
        let b = body(PgDataRow::new(row, 2));
        let dr = DataRow::parse(&b).unwrap();
        assert_eq!(dr.values().collect::<Vec<_>>(), vec![Some(&b"42"[..]), None]);
        let cut = DataRow::parse(&b[..8]).unwrap();
        assert_eq!(cut.values().count(), 1, "a cut value stops iteration");
    }

    #[test]
    fn row_counts_up_to_u64_max() {
        let rows = |tag: &[u8]| CommandComplete { tag }.rows();
        assert_eq!(rows(b"SELECT 18446744073709551615"), Some(u64::MAX));
        assert_eq!(rows(b"SELECT 18446744073709551616"), None);
        assert_eq!(rows(b"INSERT 0 7"), Some(7));
        assert_eq!(rows(b"CREATE TABLE"), None);
        assert_eq!(rows(b"SELECT "), None);
    }

    proptest::proptest! {
        /// A tag's row count is the number after its last space, for any bytes (as `str::parse`
        /// reads it, but for the `+` no tag has).
        #[test]
        fn rows_read_the_last_number_of_any_tag(tag in proptest::collection::vec(proptest::prop_oneof![
            proptest::prelude::Just(b' '), proptest::prelude::Just(b'+'), b'0'..=b'9', proptest::prelude::any::<u8>()], 0..40)) {
            let expected = tag.rsplit(|&b| b == b' ').next()
                .filter(|last| !last.starts_with(b"+"))
                .and_then(|last| std::str::from_utf8(last).ok()?.parse::<u64>().ok());
            proptest::prop_assert_eq!(CommandComplete { tag: &tag }.rows(), expected);
        }

        /// A row kept as its values' bytes reads back as the row it was, for any bytes.
        #[test]
        fn a_row_kept_as_bytes_reads_back_the_same(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Ok(row) = DataRow::parse(&b) {
                let again = DataRow::from_values(row.len(), row.values_bytes());
                proptest::prop_assert_eq!(again, row);
                proptest::prop_assert!(again.values().eq(row.values()));
            }
        }
    }

    #[test]
    fn negotiate_protocol_version() {
        let mut b = 0i32.to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(b"_pq_.foo\0");
        let n = NegotiateProtocolVersion::parse(&b).unwrap();
        assert_eq!((n.newest_minor, n.unrecognized), (0, vec![&b"_pq_.foo"[..]]));
    }
}
