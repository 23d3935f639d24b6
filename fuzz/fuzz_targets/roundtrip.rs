//! decode → encode → decode is lossless (option 52 aside, which the encoder never writes, and
//! `sname`/`file` when they carried overloaded options), and encoding is a fixed point after one
//! round. Also: encoding at any client limit never panics and always decodes.
#![no_main]

use leased_wire::{Packet, code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p1) = Packet::decode(data) else {
        return;
    };
    // The client limit to try comes from the input too (the `secs` field), so raw packets work
    // as seeds unchanged.
    let limit = p1.secs;
    let mut b1 = Vec::new();
    p1.encode(usize::MAX, &mut b1);
    let p2 = Packet::decode(&b1).expect("an unlimited encoding decodes");

    // Header fields survive unchanged.
    assert_eq!(
        (p1.op, p1.htype, p1.hlen, p1.hops, p1.xid, p1.secs, p1.flags),
        (p2.op, p2.htype, p2.hlen, p2.hops, p2.xid, p2.secs, p2.flags)
    );
    assert_eq!(
        (p1.ciaddr, p1.yiaddr, p1.siaddr, p1.giaddr, p1.chaddr),
        (p2.ciaddr, p2.yiaddr, p2.siaddr, p2.giaddr, p2.chaddr)
    );
    // sname/file: decode keeps them only when they held no options, and trims trailing NULs.
    assert_eq!(p1.sname, p2.sname);
    assert_eq!(p1.file, p2.file);
    // Every option but 52 survives with the same value; nothing is invented.
    for (c, v) in p1.options.iter() {
        if c == code::OVERLOAD {
            continue;
        }
        assert_eq!(p2.options.get(c), Some(v), "option {c} changed");
    }
    assert!(p2.options.get(code::OVERLOAD).is_none());
    let kept = p1
        .options
        .iter()
        .filter(|(c, _)| *c != code::OVERLOAD)
        .count();
    assert_eq!(p2.options.len(), kept, "options invented");

    // Fixed point: encoding what we decoded from our own encoding gives the same bytes.
    let mut b2 = Vec::new();
    p2.encode(usize::MAX, &mut b2);
    assert_eq!(b1, b2);

    // A client's limit: never panics, always decodes, keeps 53 and 82.
    let mut b3 = Vec::new();
    p1.encode(usize::from(limit), &mut b3);
    let p3 = Packet::decode(&b3).expect("a limited encoding decodes");
    assert_eq!(
        p3.options.get(code::MESSAGE_TYPE),
        p1.options.get(code::MESSAGE_TYPE)
    );
    assert_eq!(
        p3.options.get(code::RELAY_AGENT_INFO),
        p1.options.get(code::RELAY_AGENT_INFO)
    );
});
