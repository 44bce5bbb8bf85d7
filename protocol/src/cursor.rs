//! A bounds-checked reader over a message body: every read checks the bytes present.

use crate::ProtocolError;

/// Reads big-endian integers, C strings and byte runs from a borrowed message body.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf`; `what` names the message in errors.
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.buf.len() {
            return Err(ProtocolError::Truncated(self.what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a big-endian `i16`.
    pub fn i16(&mut self) -> Result<i16, ProtocolError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian `i32`.
    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, ProtocolError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a non-negative `i16` count (parameter, column or format counts).
    pub fn count16(&mut self) -> Result<usize, ProtocolError> {
        usize::try_from(self.i16()?)
            .map_err(|_| ProtocolError::InvalidField { what: self.what, detail: "negative count" })
    }

    /// Reads a NUL-terminated string, without the NUL.
    pub fn cstr(&mut self) -> Result<&'a [u8], ProtocolError> {
        let end = self.buf.iter().position(|&b| b == 0).ok_or(ProtocolError::UnterminatedString(self.what))?;
        let s = &self.buf[..end];
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// Reads a length-prefixed value (`Int32` length, -1 for NULL) as in Bind and DataRow.
    pub fn value(&mut self) -> Result<Option<&'a [u8]>, ProtocolError> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len)
            .map_err(|_| ProtocolError::InvalidField { what: self.what, detail: "negative value length" })?;
        self.bytes(len).map(Some)
    }
}

/// Lossy UTF-8 view for text fields that are shown to people (never used to forward bytes).
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
