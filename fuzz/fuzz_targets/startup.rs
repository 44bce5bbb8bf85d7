//! `protocol::parse_startup` on arbitrary bytes: the first thing pgvisor parses from any client
//! that connects, before it knows anything about it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{parse_startup, StartupPacket, MAX_STARTUP_PACKET_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((packet, used))) = parse_startup(data) else {
        return;
    };
    // A packet is exactly as long as it says, within PostgreSQL's limit.
    assert!((8..=MAX_STARTUP_PACKET_LEN).contains(&used) && used <= data.len());
    assert_eq!(u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize, used);
    // The session reads the 4-byte length first and asks whether to read on: for a valid packet
    // that is "need more bytes", never an error.
    assert_eq!(parse_startup(&data[..4]), Ok(None));
    assert_eq!(parse_startup(&data[..used - 1]), Ok(None));
    // Then it reads exactly `used` bytes: those alone parse to the same packet.
    assert_eq!(parse_startup(&data[..used]), Ok(Some((packet.clone(), used))));
    match packet {
        StartupPacket::Startup { params, .. } => {
            for (name, value) in params.iter() {
                assert!(!name.is_empty() && !name.contains(&0) && !value.contains(&0));
            }
            let _ = params.get("user");
        }
        StartupPacket::CancelRequest { key, .. } => {
            assert!((4..=protocol::startup::MAX_CANCEL_KEY_LEN).contains(&key.len()))
        }
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => assert_eq!(used, 8),
    }
});
