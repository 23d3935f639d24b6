//! Rogue DHCP server detection, the pure part: read a sniffed Ethernet frame as a DHCP reply,
//! and keep the table of foreign servers (first and last seen, replies), deciding when a
//! `FOREIGN-DHCP-SERVER` line may be logged.
//!
//! Never flagged: frames this host sent (the socket marks them outgoing; that also covers
//! replies our own relay forwards), frames from one of our interfaces' MACs, and whitelisted
//! server addresses or MACs. A foreign frame that claims *our* server identifier from another
//! MAC is flagged: that is an impersonation, not us.

use hashlink::LruCache;
use std::net::Ipv4Addr;

use leased_config::RogueSettings;
use leased_wire::{BOOTREPLY, MessageType, Packet, code};

/// A DHCP reply seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeenReply {
    /// Option 54, else the IP source address.
    pub server_ip: Ipv4Addr,
    /// Ethernet source address.
    pub mac: [u8; 6],
    /// OFFER or ACK.
    pub msg: MessageType,
}

/// Why a frame is not a reply worth judging (for debugging; never counted as an error).
pub(crate) type Skip = &'static str;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The UDP checksum over the IPv4 pseudo-header (RFC 768); 0 means correct.
fn udp_checksum(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |w: u16| sum += u32::from(w);
    add(u16::from_be_bytes([src[0], src[1]]));
    add(u16::from_be_bytes([src[2], src[3]]));
    add(u16::from_be_bytes([dst[0], dst[1]]));
    add(u16::from_be_bytes([dst[2], dst[3]]));
    add(17);
    add(u16::try_from(udp.len()).unwrap_or(u16::MAX));
    for pair in udp.chunks(2) {
        let hi = pair.first().copied().unwrap_or(0);
        let lo = pair.get(1).copied().unwrap_or(0);
        add(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Reads an Ethernet frame as an OFFER or ACK. `csum_not_ready`: the kernel said the UDP
/// checksum is not filled in yet (`TP_STATUS_CSUMNOTREADY`), so it must not be checked.
pub(crate) fn parse_frame(frame: &[u8], csum_not_ready: bool) -> Result<SeenReply, Skip> {
    let mac: [u8; 6] = frame
        .get(6..12)
        .and_then(|m| m.try_into().ok())
        .ok_or("short")?;
    if be16(frame, 12) != Some(0x0800) {
        return Err("not ipv4");
    }
    let ip = frame.get(14..).ok_or("short")?;
    let ihl = usize::from(ip.first().ok_or("short")? & 0x0f) * 4;
    if ihl < 20 || ip.first().map(|b| b >> 4) != Some(4) {
        return Err("bad ip header");
    }
    if ip.get(9) != Some(&17) {
        return Err("not udp");
    }
    let total = usize::from(be16(ip, 2).ok_or("short")?);
    let ip = ip.get(..total).ok_or("truncated ip")?;
    let src: [u8; 4] = ip
        .get(12..16)
        .and_then(|s| s.try_into().ok())
        .ok_or("short")?;
    let dst: [u8; 4] = ip
        .get(16..20)
        .and_then(|s| s.try_into().ok())
        .ok_or("short")?;
    let udp = ip.get(ihl..).ok_or("short")?;
    let ulen = usize::from(be16(udp, 4).ok_or("short")?);
    let udp = udp.get(..ulen).ok_or("truncated udp")?;
    if ulen < 8 || be16(udp, 2) != Some(68) {
        return Err("not to port 68");
    }
    if !csum_not_ready && be16(udp, 6) != Some(0) && udp_checksum(src, dst, udp) != 0 {
        return Err("bad checksum");
    }
    let pkt = Packet::decode(udp.get(8..).unwrap_or_default()).map_err(|_| "not dhcp")?;
    if pkt.op != BOOTREPLY {
        return Err("not a reply");
    }
    let msg = match pkt.message_type() {
        Some(m @ (MessageType::Offer | MessageType::Ack)) => m,
        _ => return Err("not offer/ack"),
    };
    let server_ip = match pkt.options.get(code::SERVER_ID) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => Ipv4Addr::from(src),
    };
    Ok(SeenReply {
        server_ip,
        mac,
        msg,
    })
}

/// One foreign server as we know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignServer {
    /// Its server identifier (or source address).
    pub server_ip: Ipv4Addr,
    /// The MAC its replies come from.
    pub mac: [u8; 6],
    /// Interface it was seen on (the first time).
    pub iface: String,
    /// Unix seconds of the first and the latest reply.
    pub first_seen: u64,
    /// See `first_seen`.
    pub last_seen: u64,
    /// Replies seen.
    pub replies: u64,
    /// The `FOREIGN-DHCP-SERVER` line has been logged.
    pub announced: bool,
}

/// What to do about one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ours or whitelisted.
    Ignored,
    /// Known, or new but the log is over its rate: nothing to log now.
    Quiet,
    /// Log the `FOREIGN-DHCP-SERVER` line now; `suppressed` lines were held back before it.
    Announce { suppressed: u64 },
}

/// The foreign servers seen so far, and the log's rate limit.
pub(crate) struct Tracker {
    /// By (address, MAC); at most [`MAX_SERVERS`], the one heard from least recently making
    /// room for a new one, so a flood of forged OFFERs from random MACs cannot blind the
    /// monitor: a real rogue that keeps answering stays.
    servers: LruCache<(Ipv4Addr, [u8; 6]), ForeignServer>,
    window_start: u64,
    in_window: u32,
    suppressed: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            servers: LruCache::new(MAX_SERVERS),
            window_start: 0,
            in_window: 0,
            suppressed: 0,
        }
    }
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("servers", &self.servers.len())
            .finish()
    }
}

/// At most this many foreign servers are remembered (a spoofing flood must not grow memory).
const MAX_SERVERS: usize = 4096;

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl Tracker {
    /// Judges `reply` seen on `iface` at `now` (Unix seconds). `own_macs`: our interfaces.
    pub(crate) fn observe(
        &mut self,
        reply: &SeenReply,
        iface: &str,
        settings: &RogueSettings,
        own_macs: &[[u8; 6]],
        now: u64,
    ) -> Verdict {
        if own_macs.contains(&reply.mac)
            || settings.whitelist_ips.contains(&reply.server_ip)
            || settings.whitelist_macs.iter().any(|m| m.0 == reply.mac)
        {
            return Verdict::Ignored;
        }
        let key = (reply.server_ip, reply.mac);
        if !self.servers.contains_key(&key) {
            self.servers.insert(
                key,
                ForeignServer {
                    server_ip: reply.server_ip,
                    mac: reply.mac,
                    iface: iface.to_string(),
                    first_seen: now,
                    last_seen: now,
                    replies: 0,
                    announced: false,
                },
            );
        }
        let Some(s) = self.servers.get_mut(&key) else {
            return Verdict::Quiet;
        };
        s.last_seen = now;
        s.replies += 1;
        if s.announced {
            return Verdict::Quiet;
        }
        if now >= self.window_start + 60 {
            self.window_start = now;
            self.in_window = 0;
        }
        if self.in_window >= settings.log_per_minute {
            self.suppressed += 1;
            return Verdict::Quiet;
        }
        self.in_window += 1;
        s.announced = true;
        Verdict::Announce {
            suppressed: std::mem::take(&mut self.suppressed),
        }
    }
}

impl Tracker {
    /// The servers known, in (address, MAC) order.
    pub(crate) fn list(&self) -> Vec<ForeignServer> {
        let mut v: Vec<ForeignServer> = self.servers.iter().map(|(_, s)| s.clone()).collect();
        v.sort_by_key(|s| (s.server_ip, s.mac));
        v
    }

    /// How many servers are known.
    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }
}

/// The log line's MAC text.
pub(crate) fn mac_string(m: &[u8; 6]) -> String {
    mac_text(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use leased_core::HwAddr;

    /// An Ethernet/IPv4/UDP frame carrying `dhcp` from `src`:67 to `dst`:68.
    fn frame(mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dhcp: &[u8], csum: bool) -> Vec<u8> {
        let mut udp = vec![0, 67, 0, 68];
        udp.extend_from_slice(&u16::try_from(dhcp.len() + 8).unwrap().to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(dhcp);
        if csum {
            let c = udp_checksum(src, dst, &udp);
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&u16::try_from(udp.len() + 20).unwrap().to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&udp);
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&ip);
        f
    }

    fn offer(server_id: Option<[u8; 4]>, op: u8, msg: u8) -> Vec<u8> {
        let mut p = Packet::decode(&{
            let mut b = vec![0u8; 236];
            b[0] = op;
            b.extend_from_slice(&leased_wire::MAGIC_COOKIE);
            b.extend_from_slice(&[53, 1, msg, 255]);
            b
        })
        .unwrap();
        if let Some(s) = server_id {
            p.options.set(code::SERVER_ID, s.to_vec());
        }
        let mut out = Vec::new();
        p.encode(576, &mut out);
        out
    }

    const ROGUE: [u8; 6] = [2, 0, 0, 0, 0, 0x66];
    const SRC: [u8; 4] = [198, 18, 0, 66];
    const BCAST: [u8; 4] = [255, 255, 255, 255];

    fn settings() -> RogueSettings {
        RogueSettings {
            log_per_minute: 2,
            ..RogueSettings::default()
        }
    }

    #[test]
    fn reads_offer_and_ack_with_server_id_or_source() {
        let f = frame(
            ROGUE,
            SRC,
            BCAST,
            &offer(Some([198, 18, 0, 67]), 2, 2),
            true,
        );
        let r = parse_frame(&f, false).unwrap();
        assert_eq!(r.server_ip, Ipv4Addr::new(198, 18, 0, 67));
        assert_eq!(r.mac, ROGUE);
        assert_eq!(r.msg, MessageType::Offer);
        let f = frame(ROGUE, SRC, BCAST, &offer(None, 2, 5), true);
        assert_eq!(
            parse_frame(&f, false).unwrap().server_ip,
            Ipv4Addr::from(SRC)
        );
        // Requests, NAKs and garbage are not judged.
        let f = frame(ROGUE, SRC, BCAST, &offer(None, 1, 1), true);
        assert!(parse_frame(&f, false).is_err());
        let f = frame(ROGUE, SRC, BCAST, &offer(None, 2, 6), true);
        assert!(parse_frame(&f, false).is_err());
        for n in 0..f.len() {
            let _ = parse_frame(&f[..n], false);
        }
    }

    #[test]
    fn checksums_are_checked_unless_the_kernel_says_not_ready() {
        let mut f = frame(ROGUE, SRC, BCAST, &offer(None, 2, 2), true);
        assert!(parse_frame(&f, false).is_ok());
        let last = f.len() - 1;
        f[last] ^= 0x55;
        assert_eq!(parse_frame(&f, false), Err("bad checksum"));
        // veth/CHECKSUM_PARTIAL: the checksum field holds a partial sum; accepted when marked.
        assert!(parse_frame(&f, true).is_ok());
        // A zero checksum means "none" (UDP over IPv4).
        let f = frame(ROGUE, SRC, BCAST, &offer(None, 2, 2), false);
        assert!(parse_frame(&f, false).is_ok());
    }

    #[test]
    fn announces_each_new_server_once_rate_limited_and_never_ours_or_whitelisted() {
        let mut t = Tracker::default();
        let s = settings();
        let ours = [[2, 0, 0, 0, 0, 1]];
        let reply = |ip: u8, mac: u8| SeenReply {
            server_ip: Ipv4Addr::new(198, 18, 0, ip),
            mac: [2, 0, 0, 0, 0, mac],
            msg: MessageType::Offer,
        };
        assert_eq!(
            t.observe(&reply(1, 1), "eth0", &s, &ours, 100),
            Verdict::Ignored
        );
        let a = t.observe(&reply(66, 0x66), "eth0", &s, &ours, 100);
        assert_eq!(a, Verdict::Announce { suppressed: 0 });
        assert_eq!(
            t.observe(&reply(66, 0x66), "eth0", &s, &ours, 101),
            Verdict::Quiet
        );
        assert!(matches!(
            t.observe(&reply(67, 0x67), "eth0", &s, &ours, 102),
            Verdict::Announce { .. }
        ));
        // Over 2 a minute: held back, then announced in the next window with the count.
        assert_eq!(
            t.observe(&reply(68, 0x68), "eth0", &s, &ours, 103),
            Verdict::Quiet
        );
        assert_eq!(
            t.observe(&reply(68, 0x68), "eth0", &s, &ours, 161),
            Verdict::Announce { suppressed: 1 }
        );
        let list = t.list();
        let srv = list
            .iter()
            .find(|s| {
                (s.server_ip, s.mac) == (Ipv4Addr::new(198, 18, 0, 66), [2, 0, 0, 0, 0, 0x66])
            })
            .unwrap();
        assert_eq!((srv.first_seen, srv.last_seen, srv.replies), (100, 101, 2));
        // Our own server id from another MAC is an impersonation, flagged.
        assert!(matches!(
            t.observe(&reply(1, 0x99), "eth0", &s, &ours, 300),
            Verdict::Announce { .. }
        ));
        // Whitelisted by address or by MAC.
        let w = RogueSettings {
            whitelist_ips: vec![Ipv4Addr::new(198, 18, 0, 70)],
            whitelist_macs: vec![HwAddr(vec![2, 0, 0, 0, 0, 0x71])],
            ..settings()
        };
        assert_eq!(
            t.observe(&reply(70, 0x70), "eth0", &w, &ours, 400),
            Verdict::Ignored
        );
        assert_eq!(
            t.observe(&reply(72, 0x71), "eth0", &w, &ours, 400),
            Verdict::Ignored
        );
    }

    #[test]
    fn a_flood_of_forged_offers_does_not_blind_the_monitor() {
        let mut t = Tracker::default();
        let s = RogueSettings {
            log_per_minute: 1_000_000,
            ..RogueSettings::default()
        };
        let real = SeenReply {
            server_ip: Ipv4Addr::new(198, 18, 0, 66),
            mac: ROGUE,
            msg: MessageType::Offer,
        };
        assert!(matches!(
            t.observe(&real, "eth0", &s, &[], 1),
            Verdict::Announce { .. }
        ));
        // Twice the table's size in forged OFFERs from distinct MACs; the real rogue keeps
        // answering now and then.
        for i in 0..(2 * MAX_SERVERS as u32) {
            let b = i.to_be_bytes();
            let forged = SeenReply {
                server_ip: Ipv4Addr::new(198, 18, 1, b[3]),
                mac: [2, 1, b[0], b[1], b[2], b[3]],
                msg: MessageType::Offer,
            };
            let _ = t.observe(&forged, "eth0", &s, &[], 2);
            if i % 1000 == 0 {
                let _ = t.observe(&real, "eth0", &s, &[], 2);
            }
        }
        assert_eq!(t.len(), MAX_SERVERS);
        assert!(
            t.list().iter().any(|f| f.mac == ROGUE),
            "the real rogue was forgotten"
        );
        // A new server after the flood is still seen and announced.
        let late = SeenReply {
            server_ip: Ipv4Addr::new(198, 18, 2, 2),
            mac: [2, 0, 0, 0, 0, 0x77],
            msg: MessageType::Offer,
        };
        assert!(matches!(
            t.observe(&late, "eth0", &s, &[], 3),
            Verdict::Announce { .. }
        ));
    }
}
