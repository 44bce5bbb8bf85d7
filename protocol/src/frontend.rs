//! Typed views over the bodies of client messages the observer inspects.
//!
//! Each `parse` takes a message body (without type byte and length) and borrows from it. A body
//! cut short by the scanner's prefix cap yields [`ProtocolError::Truncated`].

use crate::cursor::Cursor;
use crate::ProtocolError;

/// Query: a simple-protocol query string (may hold several statements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The SQL text, without its NUL.
    pub sql: &'a [u8],
}

impl<'a> Query<'a> {
    /// Decodes a Query body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        // The whole text is one string: memchr finds its end (names elsewhere are short, and a
        // byte loop finds theirs sooner).
        let end = memchr::memchr(0, body).ok_or(ProtocolError::UnterminatedString("Query"))?;
        Ok(Self { sql: &body[..end] })
    }
}

/// Parse: create a prepared statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name; empty for the unnamed statement.
    pub name: &'a [u8],
    /// The SQL text.
    pub sql: &'a [u8],
    /// Number of parameter types the client specified.
    pub param_type_count: usize,
}

// "Parse" is the protocol's name for the message, and every view here decodes with `parse`.
#[allow(clippy::self_named_constructors)]
impl<'a> Parse<'a> {
    /// Decodes a Parse body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "Parse");
        let name = c.cstr()?;
        let sql = c.cstr()?;
        let param_type_count = c.count16()?;
        c.bytes(param_type_count.checked_mul(4).ok_or(ProtocolError::Truncated("Parse"))?)?;
        Ok(Self { name, sql, param_type_count })
    }

    /// The statement name and as much of the SQL text as `body` holds: for a Parse larger than
    /// the capped prefix the observer sees.
    pub fn head(body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ProtocolError> {
        let mut c = Cursor::new(body, "Parse");
        let name = c.cstr()?;
        let rest = c.remaining();
        let sql = rest.iter().position(|&b| b == 0).map_or(rest, |end| &rest[..end]);
        Ok((name, sql))
    }
}

/// Wire format of a parameter or result column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Text format (0).
    Text,
    /// Binary format (1).
    Binary,
}

impl Format {
    fn from_code(code: i16, what: &'static str) -> Result<Self, ProtocolError> {
        match code {
            0 => Ok(Self::Text),
            1 => Ok(Self::Binary),
            _ => Err(ProtocolError::InvalidField { what, detail: "format code is neither 0 nor 1" }),
        }
    }
}

/// Bind: bind parameter values to a prepared statement, creating a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Destination portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Source statement name; empty for the unnamed statement.
    pub statement: &'a [u8],
    param_formats: &'a [u8],
    params: &'a [u8],
    param_count: usize,
    /// Raw result-column format codes (`Int16` each).
    pub result_formats: &'a [u8],
}

impl<'a> Bind<'a> {
    /// Decodes a Bind body, checking every length.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "Bind");
        let portal = c.cstr()?;
        let statement = c.cstr()?;
        let nformats = c.count16()?;
        let param_formats = c.bytes(nformats * 2)?;
        for f in param_formats.chunks_exact(2) {
            Format::from_code(i16::from_be_bytes([f[0], f[1]]), "Bind")?;
        }
        let param_count = c.count16()?;
        if nformats > 1 && nformats != param_count {
            return Err(ProtocolError::InvalidField {
                what: "Bind",
                detail: "format count differs from parameter count",
            });
        }
        let start = c.remaining();
        for _ in 0..param_count {
            c.value()?;
        }
        let params = &start[..start.len() - c.remaining().len()];
        let nresult = c.count16()?;
        let result_formats = c.bytes(nresult * 2)?;
        Ok(Self { portal, statement, param_formats, params, param_count, result_formats })
    }

    /// The portal and statement names alone: they lead the body, so they can be read from the
    /// capped prefix of a Bind too large to see whole.
    pub fn names(body: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), ProtocolError> {
        let mut c = Cursor::new(body, "Bind");
        Ok((c.cstr()?, c.cstr()?))
    }

    /// Number of parameter values.
    pub fn param_count(&self) -> usize {
        self.param_count
    }

    /// Iterates parameter values with their formats (`None` value is SQL NULL).
    pub fn params(&self) -> impl Iterator<Item = (Format, Option<&'a [u8]>)> + '_ {
        let mut c = Cursor::new(self.params, "Bind");
        (0..self.param_count).map(move |i| {
            let value = c.value().expect("validated in parse");
            (self.param_format(i), value)
        })
    }

    fn param_format(&self, i: usize) -> Format {
        let code = match self.param_formats.len() / 2 {
            0 => 0,
            1 => i16::from_be_bytes([self.param_formats[0], self.param_formats[1]]),
            _ => i16::from_be_bytes([self.param_formats[2 * i], self.param_formats[2 * i + 1]]),
        };
        if code == 1 {
            Format::Binary
        } else {
            Format::Text
        }
    }
}

/// Execute: run a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    /// Portal name; empty for the unnamed portal.
    pub portal: &'a [u8],
    /// Row limit; 0 means no limit.
    pub max_rows: i32,
}

impl<'a> Execute<'a> {
    /// Decodes an Execute body.
    pub fn parse(body: &'a [u8]) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, "Execute");
        Ok(Self { portal: c.cstr()?, max_rows: c.i32()? })
    }
}

/// What a Close or Describe refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A prepared statement (`S`).
    Statement(&'a [u8]),
    /// A portal (`P`).
    Portal(&'a [u8]),
}

impl<'a> Target<'a> {
    /// Decodes the body of Close or Describe (`what` names which).
    pub fn parse(body: &'a [u8], what: &'static str) -> Result<Self, ProtocolError> {
        let mut c = Cursor::new(body, what);
        let kind = c.u8()?;
        let name = c.cstr()?;
        match kind {
            b'S' => Ok(Self::Statement(name)),
            b'P' => Ok(Self::Portal(name)),
            _ => Err(ProtocolError::InvalidField { what, detail: "target is neither 'S' nor 'P'" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use pgwire::messages::extendedquery::{Bind as PgBind, Execute as PgExecute, Parse as PgParse};
    use pgwire::messages::simplequery::Query as PgQuery;
    use pgwire::messages::Message;

    /// Encodes with pgwire and returns the body (without tag and length).
    fn body(m: impl Message) -> Vec<u8> {
        let mut buf = BytesMut::new();
        m.encode(&mut buf).unwrap();
        buf[5..].to_vec()
    }

    #[test]
    fn query() {
        let b = body(PgQuery::new("select 1; select 2".into()));
        assert_eq!(Query::parse(&b).unwrap().sql, b"select 1; select 2");
        assert!(Query::parse(&b[..4]).is_err());
    }

    proptest::proptest! {
        /// Any bytes: the text is what comes before the first NUL, and without one it is an error.
        #[test]
        fn a_query_is_its_bytes_up_to_the_first_nul(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let expected = b.iter().position(|&c| c == 0).map(|end| &b[..end]);
            proptest::prop_assert_eq!(Query::parse(&b).ok().map(|q| q.sql), expected);
        }
    }

    #[test]
    fn parse_and_execute() {
        let b = body(PgParse::new(Some("s1".into()), "select $1::int".into(), vec![23]));
        let p = Parse::parse(&b).unwrap();
        assert_eq!((p.name, p.sql, p.param_type_count), (&b"s1"[..], &b"select $1::int"[..], 1));
        let b = body(PgExecute::new(None, 10));
        let e = Execute::parse(&b).unwrap();
        assert_eq!((e.portal, e.max_rows), (&b""[..], 10));
    }

    #[test]
    fn bind_values_and_formats() {
        let b = body(PgBind::new(
            Some("p".into()),
            Some("s".into()),
            vec![0, 1],
            vec![Some(bytes::Bytes::from_static(b"42")), None],
            vec![1],
        ));
        let bind = Bind::parse(&b).unwrap();
        assert_eq!((bind.portal, bind.statement, bind.param_count()), (&b"p"[..], &b"s"[..], 2));
        let params: Vec<_> = bind.params().collect();
        assert_eq!(params, vec![(Format::Text, Some(&b"42"[..])), (Format::Binary, None)]);
        for cut in 0..b.len() {
            assert!(Bind::parse(&b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn bind_rejects_lying_lengths() {
        // portal "", statement "", 0 formats, 1 param with length 1000 but 2 bytes present.
        let b = [0, 0, 0, 0, 0, 1, 0, 0, 0x03, 0xe8, b'a', b'b'];
        assert!(Bind::parse(&b).is_err());
        // negative parameter count
        let b = [0, 0, 0, 0, 0xff, 0xff];
        assert!(Bind::parse(&b).is_err());
    }

    #[test]
    fn close_and_describe_targets() {
        assert_eq!(Target::parse(b"Sstmt\0", "Close").unwrap(), Target::Statement(b"stmt"));
        assert_eq!(Target::parse(b"P\0", "Describe").unwrap(), Target::Portal(b""));
        assert!(Target::parse(b"Xa\0", "Close").is_err());
    }
}
