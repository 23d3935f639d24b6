//! Lease records from another server's lease file, and their conversion into leased's.
//!
//! Sources append: Kea's memfile writes a line per change (a renewal, a release, a deletion
//! with valid lifetime 0), so one address can appear many times and the last line wins. leased's
//! journal has the same rule, so records are converted and written in file order, one at a
//! time, and nothing needs to hold the whole file. What the converter remembers is one bit per
//! address of the imported subnets (is its last written record a binding?), bounded by the
//! config, not by the file.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};

/// When a record's lease ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Unix seconds.
    At(u64),
    /// Never (dnsmasq's `0`, an infinite lease).
    Never,
}

/// What the source says about the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Bound until `expires` (a lapsed one counts as expired).
    Active,
    /// Declined: quarantined until `expires`.
    Declined,
    /// Given back by the client.
    Released,
    /// Reached its end (Kea's expired-reclaimed).
    Expired,
    /// Removed (Kea writes a deletion as the lease with valid lifetime 0).
    Deleted,
}

/// One lease as a source's file records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The address.
    pub ip: Ipv4Addr,
    /// Client hardware address.
    pub hwaddr: Vec<u8>,
    /// Option 61 as the client sent it.
    pub client_id: Option<Vec<u8>>,
    /// Host name.
    pub hostname: Option<String>,
    /// When the binding was made or last renewed, if the source says.
    pub starts: Option<u64>,
    /// When it ends.
    pub expires: Expiry,
    /// Its state.
    pub state: RecordState,
    /// When the client was first given the address, if the source says.
    pub first_seen: Option<u64>,
    /// Option 82 circuit-id the binding was made through.
    pub circuit_id: Option<Vec<u8>>,
    /// Option 82 remote-id.
    pub remote_id: Option<Vec<u8>>,
}

/// One bit per address of a set of networks.
#[derive(Debug, Clone)]
pub struct AddrSet {
    nets: Vec<(u32, u32, Vec<u64>)>,
}

impl AddrSet {
    /// An empty set over `nets` (memory: one bit per address of each network).
    pub fn new(nets: &[Ipv4Net]) -> Self {
        let nets = nets
            .iter()
            .map(|n| {
                let base = u32::from(n.network());
                let size = 1u64 << (32 - u32::from(n.prefix_len()));
                let words = usize::try_from(size.div_ceil(64)).unwrap_or(0);
                (
                    base,
                    u32::try_from(size - 1).unwrap_or(u32::MAX),
                    vec![0u64; words],
                )
            })
            .collect();
        Self { nets }
    }

    fn slot(&self, ip: Ipv4Addr) -> Option<(usize, usize, u64)> {
        let a = u32::from(ip);
        self.nets
            .iter()
            .enumerate()
            .find_map(|(i, (base, last, _))| {
                let off = a.checked_sub(*base).filter(|o| o <= last)?;
                Some((i, (off / 64) as usize, 1u64 << (off % 64)))
            })
    }

    /// True when `ip` lies in one of the networks.
    pub fn covers(&self, ip: Ipv4Addr) -> bool {
        self.slot(ip).is_some()
    }

    /// Sets or clears the bit of `ip` (outside the networks: nothing).
    pub fn set(&mut self, ip: Ipv4Addr, on: bool) {
        if let Some((i, w, bit)) = self.slot(ip)
            && let Some(word) = self.nets.get_mut(i).and_then(|n| n.2.get_mut(w))
        {
            if on {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// The bit of `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> bool {
        self.slot(ip)
            .and_then(|(i, w, bit)| self.nets.get(i)?.2.get(w).map(|x| x & bit != 0))
            .unwrap_or(false)
    }

    /// How many bits are set.
    pub fn count(&self) -> u64 {
        self.nets
            .iter()
            .flat_map(|n| &n.2)
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }
}

/// What the converter did with the records it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// Records given.
    pub records: u64,
    /// Records written to the store (bindings, and the ends of bindings written earlier).
    pub written: u64,
    /// Records outside every imported subnet.
    pub outside: u64,
    /// Records without a usable hardware address.
    pub no_hwaddr: u64,
    /// Ended leases (expired, released, deleted) kept so their clients get the same address
    /// back first (leased's sticky window).
    pub ended_kept: u64,
    /// Ended longer ago than the sticky window and never bound in this file: not written.
    pub ended_dropped: u64,
}

/// Ten years: a lease the source says never ends is written as ending then.
const NEVER: u64 = 10 * 365 * 86_400;

/// Turns [`LeaseRecord`]s into leased [`Lease`]s, in file order.
#[derive(Debug, Clone)]
pub struct LeaseConverter {
    now: u64,
    sticky: u64,
    bound: AddrSet,
    declined: AddrSet,
    stats: ConvertStats,
}

impl LeaseConverter {
    /// A converter for leases inside `nets`, at time `now` (unix seconds), keeping ended
    /// leases younger than `sticky_window` seconds.
    pub fn new(nets: &[Ipv4Net], now: u64, sticky_window: u32) -> Self {
        Self {
            now,
            sticky: u64::from(sticky_window),
            bound: AddrSet::new(nets),
            declined: AddrSet::new(nets),
            stats: ConvertStats::default(),
        }
    }

    /// The lease to write for `rec`, or `None` when it is not worth writing (outside the
    /// subnets, no hardware address, long over and never bound in this file).
    pub fn convert(&mut self, rec: LeaseRecord) -> Option<Lease> {
        self.stats.records += 1;
        if !self.bound.covers(rec.ip) {
            self.stats.outside += 1;
            return None;
        }
        if rec.hwaddr.is_empty() || rec.hwaddr.len() > 16 {
            self.stats.no_hwaddr += 1;
            return None;
        }
        let expires = match rec.expires {
            Expiry::At(t) => t,
            Expiry::Never => self.now.saturating_add(NEVER),
        };
        let state = match rec.state {
            RecordState::Active if expires > self.now => LeaseState::Bound,
            RecordState::Declined if expires > self.now => LeaseState::Declined,
            RecordState::Released | RecordState::Deleted => LeaseState::Released,
            _ => LeaseState::Expired,
        };
        let ended = matches!(state, LeaseState::Released | LeaseState::Expired);
        let was_written = self.bound.get(rec.ip) || self.declined.get(rec.ip);
        if ended && !was_written && expires.saturating_add(self.sticky) <= self.now {
            self.stats.ended_dropped += 1;
            return None;
        }
        self.bound.set(rec.ip, state == LeaseState::Bound);
        self.declined.set(rec.ip, state == LeaseState::Declined);
        if ended {
            self.stats.ended_kept += 1;
        }
        self.stats.written += 1;
        let starts = rec.starts.unwrap_or(self.now).min(expires);
        let client_id = match rec.client_id {
            Some(id) if id.len() >= 2 => id,
            _ => std::iter::once(1u8)
                .chain(rec.hwaddr.iter().copied())
                .collect(),
        };
        Some(Lease {
            ip: rec.ip,
            client_id: ClientId(client_id),
            hwaddr: HwAddr(rec.hwaddr),
            hostname: rec.hostname.filter(|h| !h.is_empty()),
            state,
            starts: Timestamp(starts),
            expires: Timestamp(expires),
            first_seen: Timestamp(rec.first_seen.unwrap_or(starts)),
            circuit_id: rec.circuit_id.filter(|c| !c.is_empty()),
            remote_id: rec.remote_id.filter(|c| !c.is_empty()),
            subscriber_id: None,
        })
    }

    /// Counts so far.
    pub fn stats(&self) -> ConvertStats {
        self.stats
    }

    /// Addresses whose last written record is a binding (the leases served on start).
    pub fn active(&self) -> u64 {
        self.bound.count()
    }

    /// Addresses whose last written record is a decline still in quarantine.
    pub fn declined(&self) -> u64 {
        self.declined.count()
    }
}

/// Why a lease file line was not read.
#[derive(Debug)]
pub enum LeaseError {
    /// A line that does not parse: counted and skipped.
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// Reading failed: the import stops.
    Io(std::io::Error),
}

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line { line, message } => write!(f, "line {line}: {message}"),
            Self::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

impl std::error::Error for LeaseError {}

/// Longest lease file line read; a longer one is skipped as an error (a lease line is well
/// under a kilobyte, so this bounds what one line can make us hold).
pub const MAX_LINE: usize = 64 * 1024;

/// One line of a lease file.
pub(crate) enum Line {
    /// The text (invalid UTF-8 replaced), without the line end.
    Text(String),
    /// Longer than [`MAX_LINE`]: skipped to its end.
    TooLong,
}

/// Reads the next line of `r` into a fresh string, never holding more than [`MAX_LINE`]
/// bytes of it; `None` at the end of the file.
pub(crate) fn next_line(
    r: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            let room = MAX_LINE.saturating_sub(buf.len());
            let part = chunk.get(..take).unwrap_or_default();
            if part.len() > room + 1 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        r.consume(take);
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(Line::Text(String::from_utf8_lossy(buf).into_owned())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(ip: [u8; 4], state: RecordState, expires: u64) -> LeaseRecord {
        LeaseRecord {
            ip: Ipv4Addr::from(ip),
            hwaddr: vec![2, 0, 0, 0, 0, ip[3]],
            client_id: None,
            hostname: None,
            starts: Some(expires.saturating_sub(100)),
            expires: Expiry::At(expires),
            state,
            first_seen: None,
            circuit_id: None,
            remote_id: None,
        }
    }

    #[test]
    fn the_last_record_of_an_address_wins() {
        let net: Ipv4Net = "198.18.0.0/24".parse().unwrap();
        let mut c = LeaseConverter::new(&[net], 10_000, 3600);
        let l = c
            .convert(rec([198, 18, 0, 10], RecordState::Active, 20_000))
            .unwrap();
        assert_eq!(l.state, LeaseState::Bound);
        assert_eq!(l.client_id.0, vec![1, 2, 0, 0, 0, 0, 10]);
        assert_eq!(c.active(), 1);
        // The deletion of a lease written before is written (it ends that binding), even
        // though it is long over.
        let l = c
            .convert(rec([198, 18, 0, 10], RecordState::Deleted, 10))
            .unwrap();
        assert_eq!(l.state, LeaseState::Released);
        assert_eq!(c.active(), 0);
        // An old ended lease never bound here is not worth a record; a recent one is (sticky).
        assert!(
            c.convert(rec([198, 18, 0, 11], RecordState::Expired, 10))
                .is_none()
        );
        let l = c
            .convert(rec([198, 18, 0, 12], RecordState::Active, 9_000))
            .unwrap();
        assert_eq!(l.state, LeaseState::Expired);
        assert!(
            c.convert(rec([198, 18, 1, 1], RecordState::Active, 20_000))
                .is_none()
        );
        let d = c
            .convert(rec([198, 18, 0, 13], RecordState::Declined, 20_000))
            .unwrap();
        assert_eq!(d.state, LeaseState::Declined);
        let s = c.stats();
        assert_eq!(
            (
                s.records,
                s.written,
                s.outside,
                s.ended_dropped,
                s.ended_kept
            ),
            (6, 4, 1, 1, 2)
        );
        assert_eq!((c.active(), c.declined()), (0, 1));
    }

    #[test]
    fn lines_are_bounded() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("one\r\n{long}\nthree");
        let mut r = std::io::BufReader::with_capacity(16, text.as_bytes());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(l) = next_line(&mut r, &mut buf).unwrap() {
            got.push(match l {
                Line::Text(t) => t,
                Line::TooLong => "<long>".into(),
            });
        }
        assert_eq!(got, ["one", "<long>", "three"]);
    }

    #[test]
    fn never_ending_leases_and_bits() {
        let net: Ipv4Net = "198.18.0.0/30".parse().unwrap();
        let mut c = LeaseConverter::new(&[net], 5, 0);
        let mut r = rec([198, 18, 0, 3], RecordState::Active, 0);
        r.expires = Expiry::Never;
        r.client_id = Some(vec![0xff, 1, 2]);
        let l = c.convert(r).unwrap();
        assert_eq!(l.state, LeaseState::Bound);
        assert_eq!(l.expires.0, 5 + NEVER);
        assert_eq!(l.client_id.0, vec![0xff, 1, 2]);
        let mut s = AddrSet::new(&[net, "198.18.1.0/24".parse().unwrap()]);
        s.set(Ipv4Addr::new(198, 18, 1, 255), true);
        s.set(Ipv4Addr::new(198, 18, 0, 0), true);
        s.set(Ipv4Addr::new(198, 18, 2, 0), true);
        assert_eq!(s.count(), 2);
        assert!(s.get(Ipv4Addr::new(198, 18, 1, 255)));
    }
}
