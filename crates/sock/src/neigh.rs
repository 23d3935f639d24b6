//! The kernel's IPv4 neighbour (ARP) table over rtnetlink: one `RTM_GETNEIGH` dump request on a
//! `NETLINK_ROUTE` socket, the answer parsed by `parse_dump` (pure, unit-tested on bytes). The ARP watch
//! reads it to see which MAC the host last saw at each address.
//!
//! Why raw netlink rather than `ip -j neigh`: no child process per scan, no dependence on the
//! iproute2 version's JSON, and no new crates in the lock file for ~100 lines of protocol.
//! The read is blocking with a receive timeout, so callers run it on a blocking thread. All
//! safe `socket2` calls.

use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NDMSG_LEN: usize = 12;

/// `NUD_REACHABLE`: confirmed recently.
pub const NUD_REACHABLE: u16 = 0x02;
/// `NUD_PERMANENT`: configured by an operator.
pub const NUD_PERMANENT: u16 = 0x80;

/// One neighbour entry with a link-layer address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour's IPv4 address (`NDA_DST`).
    pub ip: Ipv4Addr,
    /// Its link-layer address (`NDA_LLADDR`).
    pub mac: [u8; 6],
    /// The interface it was seen on.
    pub ifindex: u32,
    /// `NUD_*` bits.
    pub state: u16,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// What one received buffer held.
#[derive(Debug, Default, PartialEq, Eq)]
struct Batch {
    entries: Vec<Neighbour>,
    /// The dump is complete (`NLMSG_DONE`).
    done: bool,
    /// The kernel answered with an error (negative errno).
    error: Option<i32>,
}

/// Parses the netlink messages in `buf`; entries without an IPv4 destination or a 6-byte
/// link-layer address (incomplete, failed, non-Ethernet) are skipped. Malformed input ends the
/// parse; it never panics.
fn parse_dump(buf: &[u8]) -> Batch {
    let mut out = Batch::default();
    let mut at = 0usize;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        let Some(msg) = buf.get(at..at + len).filter(|_| len >= NLMSG_HDRLEN) else {
            break;
        };
        match kind {
            NLMSG_DONE => {
                out.done = true;
                break;
            }
            NLMSG_ERROR => {
                let errno = u32_at(msg, NLMSG_HDRLEN).map_or(-1, |e| e as i32);
                if errno != 0 {
                    out.error = Some(errno);
                }
                out.done = true;
                break;
            }
            RTM_NEWNEIGH => {
                if let Some(n) = parse_neigh(msg.get(NLMSG_HDRLEN..).unwrap_or_default()) {
                    out.entries.push(n);
                }
            }
            _ => {}
        }
        at += align4(len);
    }
    out
}

fn parse_neigh(nd: &[u8]) -> Option<Neighbour> {
    if *nd.first()? != libc::AF_INET as u8 {
        return None;
    }
    let ifindex = u32_at(nd, 4)?;
    let state = u16_at(nd, 8)?;
    let (mut ip, mut mac) = (None, None);
    let mut at = NDMSG_LEN;
    while let (Some(len), Some(kind)) = (u16_at(nd, at), u16_at(nd, at + 2)) {
        let len = usize::from(len);
        if len < 4 {
            break;
        }
        let Some(data) = nd.get(at + 4..at + len) else {
            break;
        };
        match kind {
            NDA_DST => ip = <[u8; 4]>::try_from(data).ok().map(Ipv4Addr::from),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(data).ok(),
            _ => {}
        }
        at += align4(len);
    }
    Some(Neighbour {
        ip: ip?,
        mac: mac?,
        ifindex,
        state,
    })
}

/// Dumps the IPv4 neighbour table of this thread's network namespace (blocking, at most a few
/// seconds: receive timeout of 2 s, at most 1024 reads). Needs no privilege.
pub fn dump() -> io::Result<Vec<Neighbour>> {
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::RAW,
        Some(Protocol::from(libc::NETLINK_ROUTE)),
    )?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let seq: u32 = 1;
    let mut req = Vec::with_capacity(NLMSG_HDRLEN + NDMSG_LEN);
    req.extend_from_slice(&((NLMSG_HDRLEN + NDMSG_LEN) as u32).to_ne_bytes());
    req.extend_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.push(libc::AF_INET as u8);
    req.resize(NLMSG_HDRLEN + NDMSG_LEN, 0);
    // Unconnected: a netlink socket's default peer is the kernel.
    sock.send(&req)?;
    let mut buf = vec![0u8; 32 * 1024];
    let mut all = Vec::new();
    for _ in 0..1024 {
        let n = (&sock).read(&mut buf)?;
        let batch = parse_dump(buf.get(..n).unwrap_or_default());
        all.extend(batch.entries);
        if let Some(errno) = batch.error {
            return Err(io::Error::from_raw_os_error(-errno));
        }
        if batch.done || n == 0 {
            return Ok(all);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn msg(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    fn neigh(ip: [u8; 4], mac: Option<[u8; 6]>, state: u16) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, 0, 0, 0];
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&state.to_ne_bytes());
        b.extend_from_slice(&[0, 1]);
        b.extend(attr(NDA_DST, &ip));
        if let Some(m) = mac {
            b.extend(attr(NDA_LLADDR, &m));
        }
        msg(RTM_NEWNEIGH, &b)
    }

    #[test]
    fn reads_entries_skips_incomplete_and_stops_at_done() {
        let mut buf = neigh([198, 18, 0, 5], Some([2, 0, 0, 0, 0, 5]), NUD_REACHABLE);
        buf.extend(neigh([198, 18, 0, 6], None, 0x01));
        buf.extend(msg(NLMSG_DONE, &[0; 4]));
        let b = parse_dump(&buf);
        assert!(b.done);
        assert_eq!(
            b.entries,
            vec![Neighbour {
                ip: Ipv4Addr::new(198, 18, 0, 5),
                mac: [2, 0, 0, 0, 0, 5],
                ifindex: 7,
                state: NUD_REACHABLE,
            }]
        );
    }

    #[test]
    fn malformed_input_is_not_a_panic() {
        let good = neigh([198, 18, 0, 5], Some([2, 0, 0, 0, 0, 5]), NUD_REACHABLE);
        for cut in 0..good.len() {
            let _ = parse_dump(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[0] = 3; // length below the header
        assert_eq!(parse_dump(&bad), Batch::default());
        let err = msg(NLMSG_ERROR, &(-13i32).to_ne_bytes());
        assert_eq!(parse_dump(&err).error, Some(-13));
    }

    #[test]
    fn dumps_the_real_table() {
        // Whatever the host has; it must simply answer.
        assert!(dump().is_ok());
    }
}
