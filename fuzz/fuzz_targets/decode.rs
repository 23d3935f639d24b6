//! The packet decoder over arbitrary bytes: never panics, and whatever it accepts can be
//! encoded again (at the client's size limit from option 57, or the default) and decoded again.
#![no_main]

use leased_wire::{Packet, code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(pkt) = Packet::decode(data) else {
        return;
    };
    let _ = pkt.message_type();
    let _ = pkt.chaddr();
    let max_len = match pkt.options.get(code::MAX_MESSAGE_SIZE) {
        Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
        _ => 576,
    };
    let mut out = Vec::new();
    pkt.encode(max_len, &mut out);
    assert!(
        Packet::decode(&out).is_ok(),
        "our own encoding must decode: {pkt:?}"
    );
});
