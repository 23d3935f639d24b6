//! Differential: our decoder against dhcproto's borrowed (lazy, zero-copy) decoder.
//!
//! Where they must agree: a datagram shorter than 240 bytes is refused by both; for everything we
//! accept, every header field agrees, `sname`/`file` agree up to dhcproto's first NUL, and, when
//! no option overload is in effect (dhcproto does not read `sname`/`file` as options), every
//! option's value equals the concatenation (RFC 3396) of the instances dhcproto yields. Known and
//! intended differences: dhcproto stops silently at an option that overruns the buffer (we
//! refuse the packet: a truncated option must not be half-read) and only joins *adjacent*
//! repeats (we join all, as RFC 3396 says), so the comparison joins dhcproto's instances by code.
#![no_main]

use std::collections::BTreeMap;

use dhcproto::v4::borrowed::Message;
use leased_wire::{Packet, code};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ours = Packet::decode(data);
    let theirs = Message::new(data);
    if data.len() < 240 {
        assert!(ours.is_err() && theirs.is_err());
        return;
    }
    let (Ok(p), Ok(m)) = (ours, theirs) else {
        return;
    };
    assert_eq!(p.op, u8::from(m.opcode()));
    assert_eq!(p.htype, u8::from(m.htype()));
    assert_eq!(p.hlen, m.hlen());
    assert_eq!(p.hops, m.hops());
    assert_eq!(p.xid, m.xid());
    assert_eq!(p.secs, m.secs());
    assert_eq!(p.flags, u16::from(m.flags()));
    assert_eq!(p.ciaddr, m.ciaddr());
    assert_eq!(p.yiaddr, m.yiaddr());
    assert_eq!(p.siaddr, m.siaddr());
    assert_eq!(p.giaddr, m.giaddr());
    // Safe to ask dhcproto: we accepted, so hlen <= 16 (dhcproto would slice past it otherwise).
    assert_eq!(p.chaddr(), m.chaddr());
    let upto_nul = |v: &[u8]| v.split(|b| *b == 0).next().unwrap_or(&[]).to_vec();
    // dhcproto reads the main area only: that is also where overload (52) is decided, before
    // `file`/`sname` can add more instances of 52 to our (joined) view.
    let mut joined: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    for opt in m.opts() {
        joined
            .entry(u8::from(opt.code()))
            .or_default()
            .extend_from_slice(opt.data());
    }
    let overload = match joined.get(&code::OVERLOAD).map(Vec::as_slice) {
        Some(&[v @ 1..=3]) => v,
        _ => 0,
    };
    if overload & 2 == 0 {
        assert_eq!(upto_nul(&p.sname), m.sname());
    }
    if overload & 1 == 0 {
        assert_eq!(upto_nul(&p.file), m.fname());
    }
    if overload != 0 {
        return;
    }
    let ours: BTreeMap<u8, Vec<u8>> = p.options.iter().map(|(c, v)| (c, v.to_vec())).collect();
    assert_eq!(ours, joined);
});
