//! Tagged-message framing: `Byte1 type`, `Int32 length` (counting itself), body.
//!
//! Two entry points: [`parse_message`] for a buffer that holds whole messages, and
//! [`FrameScanner`] for the proxy's forwarding path, which sees a stream in arbitrary chunks,
//! never buffers a message whole, and hands the observer at most a capped prefix of each body.

use crate::ProtocolError;

/// Bytes in a tagged message header: the type byte and the 4-byte length.
pub const HEADER_LEN: usize = 5;

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// The type byte.
    pub tag: u8,
    /// Length of the body (the wire length minus the 4 bytes of the length itself).
    pub body_len: usize,
}

impl MessageHeader {
    /// Decodes and checks a 5-byte header; the body may be at most `max_len` bytes.
    pub fn decode(bytes: [u8; HEADER_LEN], max_len: usize) -> Result<Self, ProtocolError> {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        // The length is an Int32 on the wire: a set high bit is a negative length.
        let body_len = i32::try_from(len)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .and_then(|l| l.checked_sub(4))
            .filter(|&l| l <= max_len)
            .ok_or(ProtocolError::BadLength {
                what: "message",
                len: len.into(),
                min: 4,
                max: max_len.saturating_add(4),
            })?;
        Ok(Self { tag: bytes[0], body_len })
    }

    /// Bytes the whole message occupies on the wire.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.body_len
    }
}

/// A whole message borrowed from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The type byte.
    pub tag: u8,
    /// The whole body.
    pub body: &'a [u8],
}

/// Parses one whole message from the front of `buf`: `Ok(None)` until it is all there, else the
/// message and the bytes it used.
pub fn parse_message(buf: &[u8], max_len: usize) -> Result<Option<(Frame<'_>, usize)>, ProtocolError> {
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = MessageHeader::decode(*head, max_len)?;
    let Some(frame) = buf.get(..header.frame_len()) else {
        return Ok(None);
    };
    Ok(Some((Frame { tag: header.tag, body: &frame[HEADER_LEN..] }, frame.len())))
}

/// A message seen by [`FrameScanner`]: its header and the first bytes of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedMessage<'a> {
    /// The type byte.
    pub tag: u8,
    /// Length of the whole body on the wire.
    pub body_len: usize,
    /// The body, or its first `prefix_cap` bytes when it is longer.
    pub body: &'a [u8],
}

impl ScannedMessage<'_> {
    /// True when `body` holds the whole body, not a capped prefix.
    pub fn is_whole(&self) -> bool {
        self.body.len() == self.body_len
    }
}

#[derive(Debug, Clone, Copy)]
enum ScanState {
    /// Collecting a header; `have` bytes of it are in `header`.
    Header { have: usize },
    /// Inside a body; `seen` of its bytes have passed, the first of them are in `scratch`.
    Body { header: MessageHeader, seen: usize },
    /// A framing error happened; the stream cannot be framed any further.
    Broken,
}

/// Scratch capacity a scanner keeps between messages.
const KEPT_SCRATCH: usize = 8 * 1024;

/// Finds message boundaries in a byte stream fed in arbitrary chunks, without copying messages
/// that arrive whole in one chunk, and copying at most `prefix_cap` bytes of those that do not.
#[derive(Debug)]
pub struct FrameScanner {
    max_len: usize,
    prefix_cap: usize,
    state: ScanState,
    header: [u8; HEADER_LEN],
    scratch: Vec<u8>,
}

impl FrameScanner {
    /// A scanner accepting bodies up to `max_len` bytes that shows observers up to `prefix_cap`.
    pub fn new(max_len: usize, prefix_cap: usize) -> Self {
        Self { max_len, prefix_cap, state: ScanState::Header { have: 0 }, header: [0; HEADER_LEN], scratch: Vec::new() }
    }

    /// True when no message is partially scanned (the stream is at a message boundary).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, ScanState::Header { have: 0 })
    }

    /// Scans `chunk`, calling `on_message` for every message that ends inside it.
    ///
    /// After an error the scanner stays broken: the stream has no trustworthy boundaries left.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_message: impl FnMut(ScannedMessage<'_>),
    ) -> Result<(), ProtocolError> {
        while !chunk.is_empty() {
            if let ScanState::Header { have: 0 } = self.state {
                // Most chunks are whole messages: pass them without touching the state.
                chunk = self.whole_messages(chunk, &mut on_message);
                if chunk.is_empty() {
                    break;
                }
            }
            match self.state {
                ScanState::Broken => {
                    return Err(ProtocolError::InvalidField {
                        what: "stream",
                        detail: "framing lost after an earlier error",
                    })
                }
                ScanState::Header { have: 0 } if chunk.len() >= HEADER_LEN => {
                    // Fast path: the header is whole in this chunk, and often the body too.
                    let head = *chunk.first_chunk::<HEADER_LEN>().expect("length checked");
                    let header = self.decode(head)?;
                    chunk = &chunk[HEADER_LEN..];
                    if chunk.len() >= header.body_len {
                        let (body, rest) = chunk.split_at(header.body_len);
                        on_message(ScannedMessage {
                            tag: header.tag,
                            body_len: header.body_len,
                            body: self.capped(body),
                        });
                        chunk = rest;
                    } else {
                        self.begin_body(header);
                    }
                }
                ScanState::Header { have } => {
                    let take = (HEADER_LEN - have).min(chunk.len());
                    self.header[have..have + take].copy_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if have + take < HEADER_LEN {
                        self.state = ScanState::Header { have: have + take };
                    } else {
                        let header = self.decode(self.header)?;
                        self.begin_body(header);
                    }
                }
                ScanState::Body { header, seen } => {
                    let take = (header.body_len - seen).min(chunk.len());
                    let room = self.prefix_cap.saturating_sub(self.scratch.len()).min(take);
                    self.scratch.extend_from_slice(&chunk[..room]);
                    chunk = &chunk[take..];
                    self.state = ScanState::Body { header, seen: seen + take };
                }
            }
            if let ScanState::Body { header, seen } = self.state {
                if seen == header.body_len {
                    on_message(ScannedMessage { tag: header.tag, body_len: header.body_len, body: &self.scratch });
                    self.scratch.clear();
                    if self.scratch.capacity() > KEPT_SCRATCH {
                        // One large message must not keep its prefix's memory for the session's life.
                        self.scratch = Vec::new();
                    }
                    self.state = ScanState::Header { have: 0 };
                }
            }
        }
        Ok(())
    }

    /// Calls `on_message` for each whole message at the front of `chunk` whose length is valid;
    /// returns the rest (a partial message, or one whose header `feed` must refuse).
    #[inline]
    fn whole_messages<'a>(&self, mut chunk: &'a [u8], on_message: &mut impl FnMut(ScannedMessage<'_>)) -> &'a [u8] {
        while let Some((head, rest)) = chunk.split_first_chunk::<HEADER_LEN>() {
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            // Exactly the lengths `MessageHeader::decode` accepts; the others are refused there.
            let Some(body_len) = len.checked_sub(4).filter(|&l| l <= self.max_len && len <= i32::MAX as usize) else {
                break;
            };
            let Some((body, after)) = rest.split_at_checked(body_len) else { break };
            on_message(ScannedMessage { tag: head[0], body_len, body: self.capped(body) });
            chunk = after;
        }
        chunk
    }

    fn decode(&mut self, head: [u8; HEADER_LEN]) -> Result<MessageHeader, ProtocolError> {
        MessageHeader::decode(head, self.max_len).inspect_err(|_| self.state = ScanState::Broken)
    }

    fn begin_body(&mut self, header: MessageHeader) {
        self.scratch.clear();
        self.state = ScanState::Body { header, seen: 0 };
    }

    fn capped<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        &body[..body.len().min(self.prefix_cap)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn scan_all(scanner: &mut FrameScanner, chunks: &[&[u8]]) -> Vec<(u8, usize, Vec<u8>)> {
        let mut out = Vec::new();
        for c in chunks {
            scanner.feed(c, |m| out.push((m.tag, m.body_len, m.body.to_vec()))).unwrap();
        }
        out
    }

    #[test]
    fn parse_message_waits_for_whole_frame() {
        let m = msg(b'Q', b"select 1\0");
        for cut in 0..m.len() {
            assert_eq!(parse_message(&m[..cut], 1 << 20).unwrap(), None);
        }
        let (frame, used) = parse_message(&m, 1 << 20).unwrap().unwrap();
        assert_eq!((frame.tag, frame.body, used), (b'Q', &b"select 1\0"[..], m.len()));
    }

    #[test]
    fn impossible_lengths_are_errors() {
        assert!(parse_message(&[b'Q', 0, 0, 0, 3], 100).is_err());
        assert!(parse_message(&[b'Q', 0xff, 0xff, 0xff, 0xff], usize::MAX).is_err());
        assert!(parse_message(&[b'D', 0, 0, 0, 200], 100).is_err());
        let mut s = FrameScanner::new(100, 10);
        assert!(s.feed(&[b'Q', 0, 0, 0, 1], |_| {}).is_err());
        assert!(s.feed(&msg(b'Q', b"x"), |_| {}).is_err(), "a broken scanner stays broken");
    }

    #[test]
    fn big_message_streams_with_capped_prefix() {
        let body = vec![7u8; 100_000];
        let m = msg(b'D', &body);
        let mut s = FrameScanner::new(1 << 20, 64);
        let chunks: Vec<&[u8]> = m.chunks(4096).collect();
        let seen = scan_all(&mut s, &chunks);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].1, 100_000);
        assert_eq!(seen[0].2.len(), 64);
        assert!(s.at_boundary());
    }

    #[test]
    fn empty_body_messages() {
        let mut bytes = msg(b'S', b"");
        bytes.extend(msg(b'H', b""));
        let mut s = FrameScanner::new(100, 100);
        let seen = scan_all(&mut s, &[&bytes[..3], &bytes[3..7], &bytes[7..]]);
        assert_eq!(seen, vec![(b'S', 0, vec![]), (b'H', 0, vec![])]);
    }

    proptest! {
        /// Any sequence of messages, cut into any chunks, scans back to the same messages.
        #[test]
        fn scanner_round_trip(
            messages in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20),
            cuts in prop::collection::vec(1usize..50, 0..40),
            cap in 0usize..400,
        ) {
            let stream: Vec<u8> = messages.iter().flat_map(|(t, b)| msg(*t, b)).collect();
            let mut chunks = Vec::new();
            let mut rest = &stream[..];
            for c in cuts {
                let c = c.min(rest.len());
                let (a, b) = rest.split_at(c);
                chunks.push(a);
                rest = b;
            }
            chunks.push(rest);
            let mut s = FrameScanner::new(1 << 20, cap);
            let seen = scan_all(&mut s, &chunks);
            prop_assert_eq!(seen.len(), messages.len());
            for ((tag, len, prefix), (t, b)) in seen.iter().zip(&messages) {
                prop_assert_eq!(*tag, *t);
                prop_assert_eq!(*len, b.len());
                prop_assert_eq!(&prefix[..], &b[..b.len().min(cap)]);
            }
            prop_assert!(s.at_boundary());
            // parse_message agrees on whole buffers.
            let mut buf = &stream[..];
            let mut n = 0;
            while let Some((frame, used)) = parse_message(buf, 1 << 20).unwrap() {
                prop_assert_eq!(frame.body, &messages[n].1[..]);
                buf = &buf[used..];
                n += 1;
            }
            prop_assert_eq!(n, messages.len());
        }

        /// Any bytes, valid or not, cut into any chunks: the scanner finds the messages
        /// `parse_message` finds in the whole buffer, and fails exactly where it fails.
        #[test]
        fn scanner_agrees_with_parse_message_on_any_bytes(
            parts in prop::collection::vec(
                prop_oneof![
                    // A header with a small length, valid or not (0 to 3 are too short).
                    (any::<u8>(), 0u32..40).prop_map(|(t, l)| { let mut v = vec![t]; v.extend(l.to_be_bytes()); v }),
                    // A header with any length (negative, huge).
                    (any::<u8>(), any::<u32>()).prop_map(|(t, l)| { let mut v = vec![t]; v.extend(l.to_be_bytes()); v }),
                    prop::collection::vec(any::<u8>(), 0..40),
                ],
                0..12,
            ),
            cuts in prop::collection::vec(1usize..30, 0..30),
            max_len in 0usize..30,
            cap in 0usize..50,
        ) {
            let stream: Vec<u8> = parts.concat();
            let mut expected = Vec::new();
            let mut buf = &stream[..];
            let fails = loop {
                match parse_message(buf, max_len) {
                    Ok(Some((frame, used))) => {
                        expected.push((frame.tag, frame.body.len(), frame.body[..frame.body.len().min(cap)].to_vec()));
                        buf = &buf[used..];
                    }
                    Ok(None) => break false,
                    Err(_) => break true,
                }
            };
            let mut scanner = FrameScanner::new(max_len, cap);
            let mut seen = Vec::new();
            let mut failed = false;
            let mut rest = &stream[..];
            for c in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
                let (chunk, after) = rest.split_at(c.min(rest.len()));
                rest = after;
                if scanner.feed(chunk, |m| seen.push((m.tag, m.body_len, m.body.to_vec()))).is_err() {
                    failed = true;
                    break;
                }
            }
            prop_assert_eq!(seen, expected);
            prop_assert_eq!(failed, fails);
        }
    }
}
