//! Reading a Server-Sent Events response body, sans I/O: the HTTP/1.1 chunked transfer coding
//! (RFC 9112 §7.1) and the event stream format (HTML Living Standard, "Server-sent events",
//! §9.2.6 "Interpreting an event stream"). The caller feeds bytes as they arrive.

/// Longest chunk-size line or event-stream line accepted; past it the stream is not pgvisor's.
const MAX_LINE: usize = 4 << 20;

/// The body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// A chunk-size line was not hexadecimal, or a chunk did not end with CRLF.
    #[error("malformed chunked encoding: {0}")]
    Chunked(&'static str),
    /// A line grew past the limit.
    #[error("a line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading `<hex size>[;extensions]\r\n`.
    Size,
    /// This many data bytes remain in the chunk.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The last (zero-size) chunk was seen.
    Done,
}

/// Decodes `Transfer-Encoding: chunked` incrementally.
#[derive(Debug)]
pub struct Dechunker {
    pending: Vec<u8>,
    state: ChunkState,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self { pending: Vec::new(), state: ChunkState::Size }
    }
}

impl Dechunker {
    /// Decodes what `input` completes, appending the body bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        self.pending.extend_from_slice(input);
        let mut at = 0;
        loop {
            let rest = &self.pending[at..];
            match self.state {
                ChunkState::Done => {
                    at = self.pending.len();
                    break;
                }
                ChunkState::Size => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > 1024 {
                            return Err(SseError::Chunked("chunk-size line too long"));
                        }
                        break;
                    };
                    let line = std::str::from_utf8(&rest[..end]).map_err(|_| SseError::Chunked("chunk size"))?;
                    let hex = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(hex, 16).map_err(|_| SseError::Chunked("chunk size"))?;
                    at += end + 2;
                    self.state = if size == 0 { ChunkState::Done } else { ChunkState::Data(size) };
                }
                ChunkState::Data(left) => {
                    if rest.is_empty() {
                        break;
                    }
                    let take = left.min(rest.len());
                    out.extend_from_slice(&rest[..take]);
                    at += take;
                    self.state = if take == left { ChunkState::DataEnd } else { ChunkState::Data(left - take) };
                }
                ChunkState::DataEnd => {
                    if rest.len() < 2 {
                        break;
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(SseError::Chunked("chunk data not followed by CRLF"));
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
        self.pending.drain(..at);
        Ok(())
    }

    /// True once the terminating zero-size chunk has been read: the server ended the response.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `id:` field of this event, if it had one.
    pub id: Option<String>,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Splits an event stream into events.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a CR, so a following LF belongs to the same line break.
    after_cr: bool,
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Parses what `input` completes and returns the events it dispatched, in order.
    pub fn feed(&mut self, input: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        for &byte in input {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.line_ended(&String::from_utf8_lossy(&line)) {
                        events.push(event);
                    }
                }
                _ if self.line.len() >= MAX_LINE => return Err(SseError::LineTooLong),
                _ => self.line.push(byte),
            }
        }
        Ok(events)
    }

    fn line_ended(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = self.event.take().unwrap_or_else(|| "message".into());
            let id = self.id.take();
            return self.data.take().map(|data| SseEvent { event, id, data });
        }
        if line.starts_with(':') {
            return None; // a comment: pgvisor's keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "id" => self.id = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // `retry:` and unknown fields
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_across_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            d.feed(&wire[..split], &mut out).unwrap();
            d.feed(&wire[split..], &mut out).unwrap();
            assert_eq!(out, b"hello, world", "split at {split}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn rejects_bad_chunks() {
        let mut out = Vec::new();
        assert!(Dechunker::default().feed(b"zz\r\n", &mut out).is_err());
        assert!(Dechunker::default().feed(b"2\r\nabXY", &mut out).is_err());
        assert!(Dechunker::default().feed(&[b'1'; 2000], &mut out).is_err());
    }

    #[test]
    fn events_comments_and_line_endings() {
        let stream = b": keep-alive\n\nevent: advice\r\nid: 42\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nevent: advice\rdata: z\r\r";
        for split in 0..stream.len() {
            let mut p = SseParser::default();
            let mut events = p.feed(&stream[..split]).unwrap();
            events.extend(p.feed(&stream[split..]).unwrap());
            assert_eq!(
                events,
                vec![
                    SseEvent { event: "advice".into(), id: Some("42".into()), data: "{\"a\":1}".into() },
                    SseEvent { event: "message".into(), id: None, data: "x\ny".into() },
                    SseEvent { event: "advice".into(), id: None, data: "z".into() },
                ],
                "split at {split}"
            );
        }
    }
}
