//! The fields of a Server-Sent Events stream, sans I/O (HTML Living Standard, "Server-sent
//! events", §9.2.6 "Interpreting an event stream"): lines ending in CRLF, LF or CR; `event:`,
//! `data:` and `id:` fields; `:` comments (pgvisor's keep-alive); a blank line dispatches. HTTP
//! framing and the chunked transfer coding are hyper's: the caller feeds body bytes as they arrive.

/// Longest event-stream line accepted; past it the stream is not pgvisor's.
const MAX_LINE: usize = 4 << 20;

/// The stream could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SseError {
    /// A line grew past the limit.
    #[error("a line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The last event ID: the latest `id:` field of this event or an earlier one, if any.
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
    /// A line has ended: a byte order mark can no longer start the stream.
    past_first_line: bool,
    event: Option<String>,
    data: Option<String>,
    last_id: String,
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
                    let line = String::from_utf8_lossy(&line);
                    let first = !std::mem::replace(&mut self.past_first_line, true);
                    // "The stream may begin with a U+FEFF BYTE ORDER MARK, which is ignored."
                    let line = if first { line.strip_prefix('\u{feff}').unwrap_or(&line) } else { &line };
                    if let Some(event) = self.line_ended(line) {
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
            // Dispatch: an event without data lines is dropped, its `event:` field with it.
            let event = self.event.take().unwrap_or_else(|| "message".into());
            let id = (!self.last_id.is_empty()).then(|| self.last_id.clone());
            return self.data.take().map(|data| SseEvent { event, id, data });
        }
        if line.starts_with(':') {
            return None; // a comment: pgvisor's keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.last_id = value.to_string(),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {} // `retry:`, an `id:` with NULL, and unknown fields are ignored
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn event(event: &str, id: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.into(), id: id.map(Into::into), data: data.into() }
    }

    #[test]
    fn events_comments_and_line_endings_across_any_split() {
        let stream = b": keep-alive\n\nevent: advice\r\nid: 42\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nevent: advice\rdata: z\r\r";
        for split in 0..stream.len() {
            let mut p = SseParser::default();
            let mut events = p.feed(&stream[..split]).unwrap();
            events.extend(p.feed(&stream[split..]).unwrap());
            assert_eq!(
                events,
                vec![
                    event("advice", Some("42"), "{\"a\":1}"),
                    event("message", Some("42"), "x\ny"),
                    event("advice", Some("42"), "z"),
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn the_spec_corner_cases() {
        let mut p = SseParser::default();
        // A leading byte order mark is ignored; a field without a colon has an empty value.
        let events = p.feed("\u{feff}data\n\n".as_bytes()).unwrap();
        assert_eq!(events, vec![event("message", None, "")]);
        // No data: nothing dispatched, and the event type does not leak into the next event.
        assert!(p.feed(b"event: advice\n\n").unwrap().is_empty());
        assert_eq!(p.feed(b"data:a\n\n").unwrap(), vec![event("message", None, "a")]);
        // Only one space after the colon is removed; `id:` with NULL is ignored; unknown fields too.
        let events = p.feed(b"id: 7\nid: x\0y\nretry: 10\nwhat: ever\ndata:  two\n\n").unwrap();
        assert_eq!(events, vec![event("message", Some("7"), " two")]);
        // An event cut off by the end of the stream is never dispatched.
        assert!(p.feed(b"data: half").unwrap().is_empty());
    }

    #[test]
    fn a_line_past_the_limit_is_an_error() {
        let mut p = SseParser::default();
        assert_eq!(p.feed(&vec![b'x'; MAX_LINE + 1]), Err(SseError::LineTooLong));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut p = SseParser::default();
            for chunk in &chunks {
                let _ = p.feed(chunk);
            }
        }

        #[test]
        fn events_survive_any_split(
            data in prop::collection::vec("[^\r\n]{0,20}", 1..4),
            split in any::<prop::sample::Index>(),
        ) {
            let mut wire = String::from("event: advice\n");
            for line in &data {
                wire.push_str(&format!("data: {line}\r\n"));
            }
            wire.push('\n');
            let at = split.index(wire.len() + 1);
            let mut p = SseParser::default();
            let mut events = p.feed(&wire.as_bytes()[..at]).unwrap();
            events.extend(p.feed(&wire.as_bytes()[at..]).unwrap());
            prop_assert_eq!(events, vec![event("advice", None, &data.join("\n"))]);
        }
    }
}
