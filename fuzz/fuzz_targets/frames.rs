//! Tagged-message framing on arbitrary bytes cut into arbitrary chunks, as the relay sees a stream:
//! `FrameScanner` must find exactly the messages `parse_message` finds on the whole buffer, show
//! each one's capped prefix, and fail exactly when it does. Every typed view in `protocol::frontend`
//! and `protocol::backend` then runs on each body, whole and capped, and must not panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use protocol::backend::{
    Authentication, BackendKeyData, CommandComplete, DataRow, ErrorFields, NegotiateProtocolVersion, ParameterStatus,
    ReadyForQuery, RowDescription,
};
use protocol::frontend::{Bind, Execute, Parse, Query, Target};
use protocol::{parse_message, BackendTag, FrameScanner, FrontendTag, MAX_MESSAGE_LEN};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Sizes of the reads the stream arrives in (0 counts as 1; what is left is one last read).
    reads: Vec<u16>,
    /// How much of each body the observer may see.
    prefix_cap: u16,
    /// Largest body accepted (`None`: the proxy's own limit); small values exercise length checks.
    max_len: Option<u16>,
    /// The byte stream.
    stream: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let max_len = input.max_len.map_or(MAX_MESSAGE_LEN, usize::from);
    let cap = usize::from(input.prefix_cap);

    // Reference: whole messages, one after another, from the whole buffer.
    let mut expected = Vec::new();
    let mut rest = input.stream;
    let reference_failed = loop {
        match parse_message(rest, max_len) {
            Ok(Some((frame, used))) => {
                assert_eq!(used, 5 + frame.body.len());
                inspect(frame.tag, frame.body);
                expected.push(frame);
                rest = &rest[used..];
            }
            Ok(None) => break false,
            Err(_) => break true,
        }
    };

    let mut scanner = FrameScanner::new(max_len, cap);
    let mut seen = 0;
    let mut scan_failed = false;
    let mut reads = input.reads.iter().map(|&n| usize::from(n).max(1));
    let mut offset = 0;
    while offset < input.stream.len() {
        let n = reads.next().unwrap_or(usize::MAX).min(input.stream.len() - offset);
        let chunk = &input.stream[offset..offset + n];
        offset += n;
        let fed = scanner.feed(chunk, |m| {
            let want = expected.get(seen).expect("the scanner found a message parse_message did not");
            assert_eq!((m.tag, m.body_len), (want.tag, want.body.len()));
            assert_eq!(m.body, &want.body[..want.body.len().min(cap)]);
            assert_eq!(m.is_whole(), m.body.len() == want.body.len());
            // The session tap parses capped prefixes too.
            inspect(m.tag, m.body);
            seen += 1;
        });
        if fed.is_err() {
            scan_failed = true;
            break;
        }
    }
    assert_eq!(seen, expected.len(), "the scanner missed messages");
    assert_eq!(scan_failed, reference_failed, "the scanner and parse_message disagree on an error");
    if !scan_failed {
        assert_eq!(scanner.at_boundary(), rest.is_empty());
    }
});

/// Runs every typed view that applies to `tag`, read as a client message and as a server message.
fn inspect(tag: u8, body: &[u8]) {
    assert_eq!(FrontendTag::from_byte(tag).byte(), tag);
    assert_eq!(BackendTag::from_byte(tag).byte(), tag);
    match FrontendTag::from_byte(tag) {
        FrontendTag::Query => {
            let _ = Query::parse(body);
        }
        FrontendTag::Parse => {
            let _ = Parse::parse(body);
        }
        FrontendTag::Bind => {
            if let Ok(bind) = Bind::parse(body) {
                assert_eq!(bind.params().count(), bind.param_count());
            }
        }
        FrontendTag::Execute => {
            let _ = Execute::parse(body);
        }
        FrontendTag::Close => {
            let _ = Target::parse(body, "Close");
        }
        FrontendTag::Describe => {
            let _ = Target::parse(body, "Describe");
        }
        _ => {}
    }
    match BackendTag::from_byte(tag) {
        BackendTag::Authentication => {
            let _ = Authentication::parse(body);
        }
        BackendTag::BackendKeyData => {
            let _ = BackendKeyData::parse(body);
        }
        BackendTag::ParameterStatus => {
            let _ = ParameterStatus::parse(body);
        }
        BackendTag::ReadyForQuery => {
            let _ = ReadyForQuery::parse(body);
        }
        BackendTag::CommandComplete => {
            if let Ok(done) = CommandComplete::parse(body) {
                let _ = (done.rows(), done.command());
            }
        }
        BackendTag::ErrorResponse | BackendTag::NoticeResponse => {
            if let Ok(fields) = ErrorFields::parse(body) {
                let _ =
                    (fields.iter().count(), fields.sqlstate(), fields.message(), fields.detail(), fields.severity());
            }
        }
        BackendTag::RowDescription => {
            let _ = RowDescription::parse(body);
        }
        BackendTag::DataRow => {
            if let Ok(row) = DataRow::parse(body) {
                assert!(row.values().count() <= row.len());
            }
        }
        BackendTag::NegotiateProtocolVersion => {
            let _ = NegotiateProtocolVersion::parse(body);
        }
        _ => {}
    }
}
