//! Property tests: the decoder never panics, encode→decode round-trips, and on well-formed
//! packets we agree with dhcproto.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use dhcproto::{Decodable, Decoder, v4};
use leased_wire::{MAGIC_COOKIE, Options, Packet, code};
use proptest::prelude::*;

fn discover_bytes() -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&[1, 2, 3, 4]);
    b[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    b.extend_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(&[
        53, 1, 1, 61, 7, 1, 2, 0, 0, 0, 0, 1, 52, 1, 3, 12, 4, b'h', b'o', b's', b't', 55, 4, 1, 3,
        6, 15, 57, 2, 5, 220, 82, 4, 1, 2, 0xab, 0xcd, 255,
    ]);
    b
}

/// Strips trailing NULs, as the decoder does for `sname`/`file`.
fn trimmed(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn ip() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

prop_compose! {
    fn header()(
        op in 1u8..=2, htype in any::<u8>(), hlen in 0u8..=16, hops in any::<u8>(),
        xid in any::<u32>(), secs in any::<u16>(), flags in any::<u16>(),
        ciaddr in ip(), yiaddr in ip(), siaddr in ip(), giaddr in ip(),
        chaddr in any::<[u8; 16]>(),
        sname in prop::collection::vec(any::<u8>(), 0..=64),
        file in prop::collection::vec(any::<u8>(), 0..=128),
    ) -> Packet {
        Packet {
            op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
            sname: trimmed(sname),
            file: trimmed(file),
            options: Options::new(),
            option82_in_overload: false,
        }
    }
}

fn option_code() -> impl Strategy<Value = u8> {
    (1u8..=254).prop_filter("overload is never encoded", |c| *c != code::OVERLOAD)
}

fn options(max_value: usize) -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (
            option_code(),
            prop::collection::vec(any::<u8>(), 0..=max_value),
        ),
        0..8,
    )
}

/// The order the encoder writes: 53, the rest as stored, 82.
fn wire_order(opts: &Options) -> Options {
    let mut out = Options::new();
    if let Some(v) = opts.get(53) {
        out.set(53, v.to_vec());
    }
    for (c, v) in opts.iter() {
        if c != 53 && c != 82 {
            out.set(c, v.to_vec());
        }
    }
    if let Some(v) = opts.get(82) {
        out.set(82, v.to_vec());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(buf in prop::collection::vec(any::<u8>(), 0..1500)) {
        let _ = Packet::decode(&buf);
    }

    #[test]
    fn decode_never_panics_past_the_cookie(
        hdr in prop::collection::vec(any::<u8>(), 236),
        area in prop::collection::vec(any::<u8>(), 0..600),
        overload in 0u8..=4,
    ) {
        let mut buf = hdr;
        buf[2] %= 18;
        buf.extend_from_slice(&MAGIC_COOKIE);
        buf.extend_from_slice(&[52, 1, overload]);
        buf.extend_from_slice(&area);
        if let Ok(p) = Packet::decode(&buf) {
            // Whatever decodes re-encodes and decodes again.
            let mut out = Vec::new();
            p.encode(usize::MAX, &mut out);
            prop_assert!(Packet::decode(&out).is_ok());
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_discover(
        edits in prop::collection::vec((0usize..400, any::<u8>()), 1..12),
        cut in 0usize..400,
    ) {
        let mut buf = discover_bytes();
        for (at, byte) in edits {
            if let Some(slot) = buf.get_mut(at % 280) {
                *slot = byte;
            }
        }
        buf.truncate(cut.max(200));
        let _ = Packet::decode(&buf);
    }

    #[test]
    fn encode_decode_round_trip(mut p in header(), opts in options(600)) {
        for (c, v) in opts {
            p.options.set(c, v);
        }
        let mut out = Vec::new();
        p.encode(usize::MAX, &mut out);
        let back = Packet::decode(&out).unwrap();
        for (c, v) in p.options.iter() {
            prop_assert_eq!(back.options.get(c), Some(v), "option {}", c);
        }
        let mut want = p.clone();
        want.options = wire_order(&p.options);
        prop_assert_eq!(back, want);
    }

    #[test]
    fn encode_respects_max_len(
        mut p in header(),
        opts in options(300),
        relay in prop::collection::vec(any::<u8>(), 0..=40),
        max_len in 0usize..1500,
    ) {
        for (c, v) in opts {
            p.options.set(c, v);
        }
        p.options.set(code::MESSAGE_TYPE, vec![5]);
        p.options.set(code::RELAY_AGENT_INFO, relay.clone());
        let mut out = Vec::new();
        p.encode(max_len, &mut out);
        prop_assert!(out.len() <= max_len.max(576));
        let back = Packet::decode(&out).unwrap();
        prop_assert_eq!(back.options.get(53), Some(&[5][..]));
        prop_assert_eq!(back.options.get(82), Some(&relay[..]));
        // Whatever went in is intact; nothing new appeared.
        for (c, v) in back.options.iter() {
            prop_assert_eq!(p.options.get(c), Some(v));
        }
    }
}

/// Options that dhcproto types without surprises, with well-formed values.
fn simple_option() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let addrs = |n| prop::collection::vec(any::<u8>(), n);
    prop_oneof![
        addrs(4).prop_map(|v| (1, v)),
        (1usize..=4)
            .prop_flat_map(move |n| addrs(4 * n))
            .prop_map(|v| (3, v)),
        (1usize..=4)
            .prop_flat_map(move |n| addrs(4 * n))
            .prop_map(|v| (6, v)),
        "[a-z0-9-]{1,30}".prop_map(|s| (12, s.into_bytes())),
        any::<u32>().prop_map(|t| (51, t.to_be_bytes().to_vec())),
        addrs(4).prop_map(|v| (54, v)),
        prop::collection::vec(1u8..=254, 1..20).prop_map(|v| (55, v)),
        prop::collection::vec(any::<u8>(), 2..20).prop_map(|v| (61, v)),
        (224u8..=240, prop::collection::vec(any::<u8>(), 0..300)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn agrees_with_dhcproto(
        mut p in header(),
        msg_type in 1u8..=8,
        opts in prop::collection::vec(simple_option(), 0..8),
    ) {
        // dhcproto stops `sname`/`file` at the first NUL; keep them NUL-free for comparison.
        p.sname.retain(|&b| b != 0);
        p.file.retain(|&b| b != 0);
        p.options.set(code::MESSAGE_TYPE, vec![msg_type]);
        for (c, v) in opts {
            p.options.set(c, v);
        }
        let mut buf = Vec::new();
        p.encode(usize::MAX, &mut buf);
        let ours = Packet::decode(&buf).unwrap();

        let b = v4::borrowed::Message::new(&buf).unwrap();
        prop_assert_eq!(u8::from(b.opcode()), ours.op);
        prop_assert_eq!(u8::from(b.htype()), ours.htype);
        prop_assert_eq!(b.hlen(), ours.hlen);
        prop_assert_eq!(b.hops(), ours.hops);
        prop_assert_eq!(b.xid(), ours.xid);
        prop_assert_eq!(b.secs(), ours.secs);
        prop_assert_eq!(u16::from(b.flags()), ours.flags);
        prop_assert_eq!(b.ciaddr(), ours.ciaddr);
        prop_assert_eq!(b.yiaddr(), ours.yiaddr);
        prop_assert_eq!(b.siaddr(), ours.siaddr);
        prop_assert_eq!(b.giaddr(), ours.giaddr);
        prop_assert_eq!(b.chaddr(), ours.chaddr());
        prop_assert_eq!(b.sname(), &ours.sname[..]);
        prop_assert_eq!(b.fname(), &ours.file[..]);
        let theirs: Vec<(u8, Vec<u8>)> =
            b.opts().map(|o| (u8::from(o.code()), o.data().to_vec())).collect();
        let mine: Vec<(u8, Vec<u8>)> = ours.options.iter().map(|(c, v)| (c, v.to_vec())).collect();
        prop_assert_eq!(theirs, mine);

        let owned = v4::Message::decode(&mut Decoder::new(&buf)).unwrap();
        prop_assert_eq!(owned.xid(), ours.xid);
        prop_assert_eq!(owned.yiaddr(), ours.yiaddr);
        prop_assert_eq!(owned.giaddr(), ours.giaddr);
        prop_assert_eq!(owned.chaddr(), ours.chaddr());
        let mut their_codes: Vec<u8> = owned.opts().iter().map(|(c, _)| u8::from(*c)).collect();
        let mut my_codes: Vec<u8> = ours.options.iter().map(|(c, _)| c).collect();
        their_codes.sort_unstable();
        my_codes.sort_unstable();
        prop_assert_eq!(their_codes, my_codes);
    }
}
