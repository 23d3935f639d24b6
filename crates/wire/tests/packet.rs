//! Decoder and encoder behaviour on hand-built datagrams.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use leased_wire::{DHCP_MIN_LEN, MAGIC_COOKIE, Malformed, MessageType, Options, Packet, code};

/// A 236-byte header with recognisable field values, followed by the magic cookie.
fn header() -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1; // op
    b[1] = 1; // htype
    b[2] = 6; // hlen
    b[3] = 2; // hops
    b[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    b[8..10].copy_from_slice(&7u16.to_be_bytes());
    b[10..12].copy_from_slice(&0x8000u16.to_be_bytes());
    b[12..16].copy_from_slice(&[198, 18, 0, 10]);
    b[16..20].copy_from_slice(&[198, 18, 0, 11]);
    b[20..24].copy_from_slice(&[198, 18, 0, 1]);
    b[24..28].copy_from_slice(&[198, 18, 1, 1]);
    b[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x42]);
    b.extend_from_slice(&MAGIC_COOKIE);
    b
}

fn with_options(opts: &[u8]) -> Vec<u8> {
    let mut b = header();
    b.extend_from_slice(opts);
    b
}

fn discover() -> Vec<u8> {
    with_options(&[
        53, 1, 1, // DISCOVER
        61, 7, 1, 2, 0, 0, 0, 0, 0x42, // client id
        55, 4, 1, 3, 6, 15, // PRL
        255,
    ])
}

#[test]
fn decodes_header_and_options() {
    let p = Packet::decode(&discover()).unwrap();
    assert_eq!(p.op, 1);
    assert_eq!(p.htype, 1);
    assert_eq!(p.hlen, 6);
    assert_eq!(p.hops, 2);
    assert_eq!(p.xid, 0xdead_beef);
    assert_eq!(p.secs, 7);
    assert!(p.broadcast());
    assert_eq!(p.ciaddr, Ipv4Addr::new(198, 18, 0, 10));
    assert_eq!(p.yiaddr, Ipv4Addr::new(198, 18, 0, 11));
    assert_eq!(p.siaddr, Ipv4Addr::new(198, 18, 0, 1));
    assert_eq!(p.giaddr, Ipv4Addr::new(198, 18, 1, 1));
    assert_eq!(p.chaddr(), &[0x02, 0, 0, 0, 0, 0x42]);
    assert!(p.sname.is_empty());
    assert!(p.file.is_empty());
    assert_eq!(p.message_type(), Some(MessageType::Discover));
    let codes: Vec<u8> = p.options.iter().map(|(c, _)| c).collect();
    assert_eq!(codes, [53, 61, 55]);
    assert_eq!(p.options.get(55), Some(&[1, 3, 6, 15][..]));
}

#[test]
fn truncated_at_several_lengths() {
    let full = discover();
    for len in [0, 1, 4, 27, 100, 235, 236, 237, 239] {
        assert_eq!(
            Packet::decode(&full[..len]),
            Err(Malformed::Truncated),
            "len {len}"
        );
    }
    // Header and cookie alone: a packet without options is structurally fine.
    assert!(Packet::decode(&full[..240]).is_ok());
}

#[test]
fn bad_magic_cookie() {
    let mut b = discover();
    b[239] = 98;
    assert_eq!(Packet::decode(&b), Err(Malformed::BadMagicCookie));
    assert_eq!(Malformed::BadMagicCookie.label(), "bad_magic_cookie");
}

#[test]
fn hlen_17_rejected_16_accepted() {
    let mut b = discover();
    b[2] = 17;
    assert_eq!(Packet::decode(&b), Err(Malformed::BadHlen));
    b[2] = 16;
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.chaddr().len(), 16);
}

#[test]
fn option_overrun_in_main_area() {
    // Value runs past the end.
    let b = with_options(&[53, 1, 1, 61, 7, 1, 2, 3]);
    assert_eq!(Packet::decode(&b), Err(Malformed::OptionOverrun));
    // Length byte missing.
    let b = with_options(&[53, 1, 1, 61]);
    assert_eq!(Packet::decode(&b), Err(Malformed::OptionOverrun));
    assert_eq!(Malformed::OptionOverrun.label(), "option_overrun");
}

#[test]
fn missing_end_tolerated_and_pad_skipped() {
    let b = with_options(&[0, 0, 53, 1, 3, 0, 50, 4, 198, 18, 0, 5]);
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.message_type(), Some(MessageType::Request));
    assert_eq!(p.options.get(50), Some(&[198, 18, 0, 5][..]));
    assert_eq!(p.options.len(), 2);
}

#[test]
fn end_stops_parsing() {
    // Garbage after END is ignored, even if it would overrun.
    let b = with_options(&[53, 1, 1, 255, 61, 200, 1]);
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.len(), 1);
}

#[test]
fn non_adjacent_repeats_concatenate() {
    let b = with_options(&[
        43, 2, 0xaa, 0xbb, 53, 1, 1, 43, 1, 0xcc, 12, 1, b'h', 43, 0, 43, 2, 0xdd, 0xee, 255,
    ]);
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.get(43), Some(&[0xaa, 0xbb, 0xcc, 0xdd, 0xee][..]));
    let codes: Vec<u8> = p.options.iter().map(|(c, _)| c).collect();
    assert_eq!(codes, [43, 53, 12], "order of first appearance");
}

fn overloaded(overload: u8, file_opts: &[u8], sname_opts: &[u8]) -> Vec<u8> {
    let mut b = header();
    b[44..44 + sname_opts.len()].copy_from_slice(sname_opts);
    b[108..108 + file_opts.len()].copy_from_slice(file_opts);
    b.extend_from_slice(&[53, 1, 1, 52, 1, overload, 12, 2, b'a', b'b', 255]);
    b
}

#[test]
fn overload_file_then_sname() {
    let file = [12, 1, b'c', 66, 3, b'x', b'y', b'z', 255];
    let sname = [12, 1, b'd', 67, 2, b'f', b'g', 255];
    let p = Packet::decode(&overloaded(3, &file, &sname)).unwrap();
    // Main area, then file, then sname (RFC 2132 §9.3).
    assert_eq!(p.options.get(12), Some(&b"abcd"[..]));
    assert_eq!(p.options.get(66), Some(&b"xyz"[..]));
    assert_eq!(p.options.get(67), Some(&b"fg"[..]));
    assert!(p.sname.is_empty());
    assert!(p.file.is_empty());

    // Overload 1: only file is options; sname stays a name.
    let mut b = overloaded(1, &file, b"server\0");
    b[44..50].copy_from_slice(b"server");
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.get(12), Some(&b"abc"[..]));
    assert_eq!(p.sname, b"server");
    assert!(p.file.is_empty());
    assert_eq!(p.options.get(67), None);

    // Overload 2: only sname is options.
    let mut b = overloaded(2, b"", &sname);
    b[108..117].copy_from_slice(b"pxe.0\0\0\0\0");
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.get(12), Some(&b"abd"[..]));
    assert_eq!(p.file, b"pxe.0");
    assert!(p.sname.is_empty());
}

#[test]
fn option82_only_from_the_main_area() {
    // A client hides relay sub-options (link selection 5, subscriber-id 6) in file and sname.
    let file = [82, 6, 5, 4, 198, 18, 9, 0, 255];
    let sname = [82, 4, 6, 2, b'v', b'1', 12, 1, b'c', 255];
    let mut b = overloaded(3, &file, &sname);
    // The main area (a relay's own Option 82 would be here) has none.
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.get(82), None, "never merged from file/sname");
    assert!(p.option82_in_overload);
    assert_eq!(
        p.options.get(12),
        Some(&b"abc"[..]),
        "other options still merge"
    );

    // With a relay's Option 82 in the main area, the hidden copies are not appended to it.
    let end = b.len() - 1;
    b.splice(end..end, [82, 4, 1, 2, b'c', b'1']);
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.options.get(82), Some(&[1, 2, b'c', b'1'][..]));
    assert!(p.option82_in_overload);

    // No overload: nothing hidden, nothing flagged.
    let p = Packet::decode(&with_options(&[53, 1, 1, 82, 4, 1, 2, b'c', b'1', 255])).unwrap();
    assert!(!p.option82_in_overload);
}

#[test]
fn overload_without_end_in_field_is_fine() {
    // All-PAD tail of the file field ends the area without END.
    let p = Packet::decode(&overloaded(1, &[66, 1, b'q'], b"")).unwrap();
    assert_eq!(p.options.get(66), Some(&b"q"[..]));
}

#[test]
fn option_overrun_in_overloaded_file_area() {
    let mut file = [0u8; 128];
    file[126] = 66;
    file[127] = 5; // claims 5 bytes, none left
    let b = overloaded(1, &file, b"");
    assert_eq!(Packet::decode(&b), Err(Malformed::OptionOverrun));
    // Without overload the same bytes are just a file name.
    let b = overloaded(0, &file, b"");
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.file.len(), 128);
}

#[test]
fn sname_file_trailing_nuls_trimmed() {
    let mut b = discover();
    b[44..48].copy_from_slice(b"srv\0");
    b[49] = b'x'; // inner NUL kept, trailing trimmed
    b[108..112].copy_from_slice(b"boot");
    let p = Packet::decode(&b).unwrap();
    assert_eq!(p.sname, b"srv\0\0x");
    assert_eq!(p.file, b"boot");
}

fn reply() -> Packet {
    let mut options = Options::new();
    options.set(code::SERVER_ID, vec![198, 18, 0, 1]);
    options.set(code::RELAY_AGENT_INFO, vec![1, 2, 0xab, 0xcd, 2, 1, 9]);
    options.set(code::LEASE_TIME, 3600u32.to_be_bytes().to_vec());
    options.set(code::MESSAGE_TYPE, vec![2]);
    options.set(code::SUBNET_MASK, vec![255, 255, 255, 0]);
    Packet {
        op: 2,
        htype: 1,
        hlen: 6,
        hops: 0,
        xid: 42,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::new(198, 18, 0, 20),
        siaddr: Ipv4Addr::new(198, 18, 0, 1),
        giaddr: Ipv4Addr::new(198, 18, 1, 1),
        chaddr: [2, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        sname: b"leased".to_vec(),
        file: b"pxelinux.0".to_vec(),
        options,
        option82_in_overload: false,
    }
}

/// The options area as (code, len) instances, up to and including END.
fn walk(buf: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut i = 240;
    while i < buf.len() {
        let c = buf[i];
        if c == 0 {
            i += 1;
            continue;
        }
        if c == 255 {
            out.push((255, 0));
            break;
        }
        let l = buf[i + 1] as usize;
        out.push((c, l));
        i += 2 + l;
    }
    out
}

#[test]
fn encode_order_and_padding() {
    let p = reply();
    let mut out = Vec::new();
    p.encode(0, &mut out);
    assert_eq!(out.len(), DHCP_MIN_LEN);
    let codes: Vec<u8> = walk(&out).iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [53, 54, 51, 1, 82, 255]);
    // Header fields land where RFC 2131 puts them.
    assert_eq!(out[0], 2);
    assert_eq!(&out[4..8], &42u32.to_be_bytes());
    assert_eq!(&out[16..20], &[198, 18, 0, 20]);
    assert_eq!(&out[44..50], b"leased");
    assert!(out[50..108].iter().all(|&b| b == 0));
    assert_eq!(&out[108..118], b"pxelinux.0");
    assert_eq!(&out[236..240], &MAGIC_COOKIE);
    // Everything after END is zero padding.
    let end = out.iter().rposition(|&b| b == 255).unwrap();
    assert!(out[end + 1..].iter().all(|&b| b == 0));

    let back = Packet::decode(&out).unwrap();
    assert_eq!(back, {
        let mut p = p.clone();
        // Decoding keeps first-seen order, which the encoder changed.
        let mut o = Options::new();
        for c in [53, 54, 51, 1, 82] {
            o.set(c, p.options.get(c).unwrap().to_vec());
        }
        p.options = o;
        p
    });

    // Deterministic and `out` is cleared first.
    let mut again = vec![1, 2, 3];
    p.encode(0, &mut again);
    assert_eq!(again, out);
}

#[test]
fn encode_truncates_long_sname_and_file() {
    let mut p = reply();
    p.sname = vec![b's'; 100];
    p.file = vec![b'f'; 200];
    let mut out = Vec::new();
    p.encode(576, &mut out);
    let back = Packet::decode(&out).unwrap();
    assert_eq!(back.sname, vec![b's'; 64]);
    assert_eq!(back.file, vec![b'f'; 128]);
}

#[test]
fn encode_skips_pad_end_and_overload() {
    let mut p = reply();
    p.options.set(0, vec![1]);
    p.options.set(255, vec![]);
    p.options.set(code::OVERLOAD, vec![3]);
    let mut out = Vec::new();
    p.encode(576, &mut out);
    let codes: Vec<u8> = walk(&out).iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [53, 54, 51, 1, 82, 255]);
    let back = Packet::decode(&out).unwrap();
    assert_eq!(back.file, b"pxelinux.0");
}

#[test]
fn long_value_split_and_rejoined() {
    let value: Vec<u8> = (0..600u32).map(|i| (i % 251) as u8).collect();
    let mut p = reply();
    p.options.set(code::VENDOR_SPECIFIC, value.clone());
    let mut out = Vec::new();
    p.encode(1500, &mut out);
    let inst: Vec<(u8, usize)> = walk(&out).into_iter().filter(|(c, _)| *c == 43).collect();
    assert_eq!(inst, [(43, 255), (43, 255), (43, 90)]);
    let back = Packet::decode(&out).unwrap();
    assert_eq!(back.options.get(43), Some(&value[..]));
}

#[test]
fn empty_value_written_as_zero_length() {
    let mut p = reply();
    p.options.set(80, vec![]); // rapid commit
    let mut out = Vec::new();
    p.encode(576, &mut out);
    assert!(walk(&out).contains(&(80, 0)));
    assert_eq!(Packet::decode(&out).unwrap().options.get(80), Some(&[][..]));
}

#[test]
fn max_len_trims_but_keeps_53_and_82() {
    let mut p = reply();
    let mut options = Options::new();
    options.set(code::VENDOR_SPECIFIC, vec![7; 250]); // fits
    options.set(code::DOMAIN_SEARCH, vec![8; 300]); // does not fit after 43
    options.set(code::HOSTNAME, vec![b'h'; 10]); // smaller, still fits
    let mut relay = vec![1, 61];
    relay.extend_from_slice(&[0x5a; 61]);
    options.set(code::RELAY_AGENT_INFO, relay);
    options.set(code::MESSAGE_TYPE, vec![5]);
    p.options = options;
    let mut out = Vec::new();
    p.encode(100, &mut out); // below the floor: 576 applies
    assert!(out.len() <= 576, "len {}", out.len());
    let codes: Vec<u8> = walk(&out).iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [53, 43, 12, 82, 255]);
    let back = Packet::decode(&out).unwrap();
    assert_eq!(back.options.get(82), p.options.get(82));

    // With more room, 119 goes in too.
    p.encode(1500, &mut out);
    let codes: Vec<u8> = walk(&out).iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [53, 43, 119, 119, 12, 82, 255]);
}

#[test]
fn max_len_exact_fit() {
    // Header 240 + 53 (3) + END (1) = 244; a value of 576 - 244 - 2 = 330 bytes needs two
    // instances (4 bytes overhead), so 328 bytes fill the packet exactly.
    let mut p = reply();
    p.options = Options::new();
    p.options.set(code::MESSAGE_TYPE, vec![5]);
    p.options.set(code::VENDOR_SPECIFIC, vec![1; 328]);
    let mut out = Vec::new();
    p.encode(576, &mut out);
    assert_eq!(out.len(), 576);
    p.options.set(code::VENDOR_SPECIFIC, vec![1; 329]);
    p.encode(576, &mut out);
    assert_eq!(out.len(), DHCP_MIN_LEN);
    assert_eq!(Packet::decode(&out).unwrap().options.get(43), None);
}

#[test]
fn labels_are_stable() {
    assert_eq!(Malformed::Truncated.label(), "truncated");
    assert_eq!(Malformed::BadHlen.label(), "bad_hlen");
}
