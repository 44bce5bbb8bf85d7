//! Startup-phase packets: untagged, `Int32 length` then `Int32 code` (protocol document,
//! "Message Formats": StartupMessage, SSLRequest, GSSENCRequest, CancelRequest).

use crate::cursor::Cursor;
use crate::{ProtocolError, MAX_STARTUP_PACKET_LEN};

/// Request code of SSLRequest.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// Request code of GSSENCRequest.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// Request code of CancelRequest.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Longest cancel key protocol 3.2 allows (256 bytes).
pub const MAX_CANCEL_KEY_LEN: usize = 256;
/// First byte of a TLS handshake record: a client using direct SSL (PostgreSQL 17+
/// `sslnegotiation=direct`) starts with a ClientHello instead of an SSLRequest.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// One startup-phase packet, borrowing the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// Cancel the query running on backend `pid`, proven by `key` (4 bytes in 3.0, up to 256 in 3.2).
    CancelRequest {
        /// Backend process id from BackendKeyData.
        pid: u32,
        /// Secret key from BackendKeyData.
        key: &'a [u8],
    },
    /// Start a session with protocol `major.minor` and the given parameters.
    Startup {
        /// Protocol major version (3).
        major: u16,
        /// Protocol minor version (0 or 2).
        minor: u16,
        /// Raw `name\0value\0...\0` parameter list.
        params: StartupParams<'a>,
    },
}

/// The parameter list of a StartupMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupParams<'a>(&'a [u8]);

impl<'a> StartupParams<'a> {
    /// Iterates `(name, value)` pairs; stops at the terminating empty name or on malformed input.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let mut cur = Cursor::new(self.0, "StartupMessage");
        std::iter::from_fn(move || {
            let name = cur.cstr().ok().filter(|n| !n.is_empty())?;
            let value = cur.cstr().ok()?;
            Some((name, value))
        })
    }

    /// The value of parameter `name`, if present.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }
}

/// Parses one startup-phase packet from the front of `buf`.
///
/// Returns `Ok(None)` until the whole packet is present, else the packet and its length.
pub fn parse_startup(buf: &[u8]) -> Result<Option<(StartupPacket<'_>, usize)>, ProtocolError> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if !(8..=MAX_STARTUP_PACKET_LEN).contains(&len_usize) {
        return Err(ProtocolError::BadLength {
            what: "startup packet",
            len: len.into(),
            min: 8,
            max: MAX_STARTUP_PACKET_LEN,
        });
    }
    let Some(packet) = buf.get(..len_usize) else {
        return Ok(None);
    };
    let mut cur = Cursor::new(&packet[4..], "startup packet");
    let code = cur.u32()?;
    let parsed = match code {
        SSL_REQUEST_CODE => exact_len(StartupPacket::SslRequest, len_usize, "SSLRequest")?,
        GSSENC_REQUEST_CODE => exact_len(StartupPacket::GssEncRequest, len_usize, "GSSENCRequest")?,
        CANCEL_REQUEST_CODE => {
            let pid = cur.u32()?;
            let key = cur.remaining();
            if key.len() < 4 || key.len() > MAX_CANCEL_KEY_LEN {
                return Err(ProtocolError::BadLength {
                    what: "CancelRequest",
                    len: len.into(),
                    min: 16,
                    max: 12 + MAX_CANCEL_KEY_LEN,
                });
            }
            StartupPacket::CancelRequest { pid, key }
        }
        code if code >> 16 == 3 => {
            let params = cur.remaining();
            if params.last() != Some(&0) {
                return Err(ProtocolError::UnterminatedString("StartupMessage"));
            }
            StartupPacket::Startup { major: 3, minor: (code & 0xffff) as u16, params: StartupParams(params) }
        }
        other => return Err(ProtocolError::UnknownStartupCode(other)),
    };
    Ok(Some((parsed, len_usize)))
}

fn exact_len<'a>(
    packet: StartupPacket<'a>,
    len: usize,
    what: &'static str,
) -> Result<StartupPacket<'a>, ProtocolError> {
    if len == 8 {
        Ok(packet)
    } else {
        Err(ProtocolError::BadLength { what, len: len as u64, min: 8, max: 8 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, rest: &[u8]) -> Vec<u8> {
        let len = (8 + rest.len()) as u32;
        let mut v = len.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn ssl_and_gss_requests() {
        let ssl = packet(SSL_REQUEST_CODE, &[]);
        assert_eq!(parse_startup(&ssl).unwrap(), Some((StartupPacket::SslRequest, 8)));
        let gss = packet(GSSENC_REQUEST_CODE, &[]);
        assert_eq!(parse_startup(&gss).unwrap(), Some((StartupPacket::GssEncRequest, 8)));
    }

    #[test]
    fn needs_more_bytes_until_whole() {
        let p = packet(196_608, b"user\0bob\0\0");
        for cut in 0..p.len() {
            assert_eq!(parse_startup(&p[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (parsed, used) = parse_startup(&p).unwrap().unwrap();
        assert_eq!(used, p.len());
        let StartupPacket::Startup { major, minor, params } = parsed else { panic!() };
        assert_eq!((major, minor), (3, 0));
        assert_eq!(params.get("user"), Some(&b"bob"[..]));
        assert_eq!(params.get("database"), None);
    }

    #[test]
    fn protocol_3_2_startup() {
        let p = packet(196_610, b"user\0a\0database\0d\0\0");
        let (StartupPacket::Startup { minor, params, .. }, _) = parse_startup(&p).unwrap().unwrap() else { panic!() };
        assert_eq!(minor, 2);
        assert_eq!(params.iter().count(), 2);
    }

    #[test]
    fn cancel_with_4_byte_and_long_keys() {
        let mut rest = 42u32.to_be_bytes().to_vec();
        rest.extend_from_slice(&[1, 2, 3, 4]);
        let p = packet(CANCEL_REQUEST_CODE, &rest);
        assert_eq!(parse_startup(&p).unwrap().unwrap().0, StartupPacket::CancelRequest { pid: 42, key: &[1, 2, 3, 4] });
        let mut rest = 7u32.to_be_bytes().to_vec();
        rest.extend_from_slice(&[9; 32]);
        let p = packet(CANCEL_REQUEST_CODE, &rest);
        let (StartupPacket::CancelRequest { pid, key }, _) = parse_startup(&p).unwrap().unwrap() else { panic!() };
        assert_eq!((pid, key.len()), (7, 32));
        let mut rest = 7u32.to_be_bytes().to_vec();
        rest.extend_from_slice(&[9; 2]);
        assert!(parse_startup(&packet(CANCEL_REQUEST_CODE, &rest)).is_err());
    }

    #[test]
    fn rejects_bad_lengths_and_codes() {
        assert!(matches!(parse_startup(&[0, 0, 0, 4]), Err(ProtocolError::BadLength { .. })));
        assert!(matches!(parse_startup(&[0xff, 0xff, 0xff, 0xff]), Err(ProtocolError::BadLength { .. })));
        assert!(matches!(parse_startup(&[0x16, 3, 1, 0]), Err(ProtocolError::BadLength { .. })));
        let p = packet(0x0002_0000, b"\0");
        assert_eq!(parse_startup(&p), Err(ProtocolError::UnknownStartupCode(0x0002_0000)));
        let p = packet(SSL_REQUEST_CODE, b"xx");
        assert!(parse_startup(&p).is_err());
        let p = packet(196_608, b"user\0bob");
        assert!(parse_startup(&p).is_err());
    }
}
