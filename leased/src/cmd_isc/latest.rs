//! The current entry of every address of a streamed dhcpd.leases, in little memory.
//!
//! dhcpd's file holds every change of a lease (the last entry of an address wins), and a later
//! entry can end a lease an earlier one made active, so nothing can be written to the store
//! before the whole file is read. What is kept per address is only what the import writes: a
//! slot in an ordered map (16 bytes) and, for a lease to import, its record packed in one byte
//! arena (about 50 bytes plus its host name, client identifier and Option 82 values), instead of
//! an `IscLease` and a `Lease` with their strings and vectors (several hundred bytes). Records
//! superseded by a later entry are squeezed out of the arena in place once they are a third of
//! it, so the arena stays within 1.5 times the live records whatever the file's churn.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};

/// No record: the address's current entry is not imported.
const NONE: u64 = u64::MAX;
/// A field that is `None`.
const ABSENT: u32 = u32::MAX;
/// Record header: the address (so compaction can tell a live record from a superseded one)
/// and the record's length.
const HEADER: usize = 8;
/// Garbage below this is never worth a compaction pass.
const COMPACT_MIN: usize = 1 << 20;

/// One address's current entry.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Offset of its record in the arena, or [`NONE`].
    rec: u64,
    /// Line and column of the entry's `lease` keyword when it has no `binding state` (line 0:
    /// it has one), for the warning the whole-file reader gives about it.
    line: u32,
    col: u32,
}

/// Last entry per address, with the lease to import when there is one.
#[derive(Debug, Default)]
pub struct LatestLeases {
    slots: BTreeMap<u32, Slot>,
    arena: Vec<u8>,
    /// Bytes of the arena that belong to a current record.
    live_bytes: usize,
    /// Slots with a record.
    live: usize,
}

impl LatestLeases {
    /// Records the entry for `ip` read after every earlier one: `lease` is what to import for
    /// it (none when the entry is not an active lease inside the subnets), `no_state_at` the
    /// place of an entry without a `binding state`.
    pub fn set(&mut self, ip: Ipv4Addr, lease: Option<&Lease>, no_state_at: Option<(u32, u32)>) {
        let rec = match lease {
            Some(l) => {
                let at = self.arena.len();
                encode(l, &mut self.arena);
                self.live_bytes += self.arena.len() - at;
                self.live += 1;
                at as u64
            }
            None => NONE,
        };
        let (line, col) = no_state_at.unwrap_or((0, 0));
        let old = self.slots.insert(u32::from(ip), Slot { rec, line, col });
        if let Some(old) = old.filter(|o| o.rec != NONE) {
            self.live -= 1;
            self.live_bytes -= record_len(&self.arena, old.rec);
            self.maybe_compact();
        }
    }

    /// Leases to import.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Addresses whose current entry has no `binding state`, with its place, by address.
    pub fn without_state(&self) -> impl Iterator<Item = (Ipv4Addr, u32, u32)> + '_ {
        self.slots
            .iter()
            .filter(|(_, s)| s.line != 0)
            .map(|(ip, s)| (Ipv4Addr::from(*ip), s.line, s.col))
    }

    /// The leases to import, by address.
    pub fn leases(&self) -> impl Iterator<Item = Lease> + '_ {
        self.slots.iter().filter_map(|(ip, s)| {
            let rec = usize::try_from(s.rec).ok()?;
            decode(Ipv4Addr::from(*ip), self.arena.get(rec..)?)
        })
    }

    /// Slides the current records down over the superseded ones once those are a third of
    /// the arena (amortised O(1) per byte written, no second arena).
    fn maybe_compact(&mut self) {
        let garbage = self.arena.len() - self.live_bytes;
        if garbage < COMPACT_MIN.max(self.live_bytes / 2) {
            return;
        }
        let (mut read, mut write) = (0usize, 0usize);
        while read + HEADER <= self.arena.len() {
            let (ip, len) = header(&self.arena, read);
            let live = self.slots.get_mut(&ip).filter(|s| s.rec == read as u64);
            if let Some(slot) = live.filter(|_| read + len <= self.arena.len()) {
                slot.rec = write as u64;
                self.arena.copy_within(read..read + len, write);
                write += len;
            }
            read += len.max(HEADER);
        }
        self.arena.truncate(write);
        self.arena.shrink_to(write + write / 2);
    }
}

fn header(arena: &[u8], at: usize) -> (u32, usize) {
    let word = |i: usize| {
        arena
            .get(at + i..at + i + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, u32::from_le_bytes)
    };
    (word(0), word(4) as usize)
}

fn record_len(arena: &[u8], rec: u64) -> usize {
    usize::try_from(rec).map_or(0, |r| header(arena, r).1)
}

/// Appends `l`'s record: header, `starts`, `expires`, then the hardware address, client
/// identifier, host name, circuit-id and remote-id, each length-prefixed ([`ABSENT`] for none).
/// The state (bound), `first_seen` (= `starts`) and subscriber-id (none) are the import's own.
fn encode(l: &Lease, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&u32::from(l.ip).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&l.starts.0.to_le_bytes());
    out.extend_from_slice(&l.expires.0.to_le_bytes());
    let mut field = |f: Option<&[u8]>| match f {
        Some(b) => {
            // A field is at most one statement of the leases file, far below 4 GiB.
            out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(ABSENT - 1).to_le_bytes());
            out.extend_from_slice(b.get(..b.len().min((ABSENT - 1) as usize)).unwrap_or(b));
        }
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    };
    field(Some(&l.hwaddr.0));
    field(Some(&l.client_id.0));
    field(l.hostname.as_deref().map(str::as_bytes));
    field(l.circuit_id.as_deref());
    field(l.remote_id.as_deref());
    let len = u32::try_from(out.len() - at).unwrap_or(u32::MAX);
    if let Some(h) = out.get_mut(at + 4..at + 8) {
        h.copy_from_slice(&len.to_le_bytes());
    }
}

/// The lease of the record at the start of `b` (which may run on into later records).
fn decode(ip: Ipv4Addr, b: &[u8]) -> Option<Lease> {
    let mut at = HEADER;
    let u64_at = |at: &mut usize| {
        let v = u64::from_le_bytes(b.get(*at..*at + 8)?.try_into().ok()?);
        *at += 8;
        Some(v)
    };
    let starts = u64_at(&mut at)?;
    let expires = u64_at(&mut at)?;
    let mut field = || -> Option<Option<Vec<u8>>> {
        let len = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len == ABSENT {
            return Some(None);
        }
        let len = len as usize;
        let v = b.get(at..at + len)?.to_vec();
        at += len;
        Some(Some(v))
    };
    let hwaddr = field()??;
    let client_id = field()??;
    let hostname = field()?.map(|h| String::from_utf8_lossy(&h).into_owned());
    let circuit_id = field()?;
    let remote_id = field()?;
    Some(Lease {
        ip,
        client_id: ClientId(client_id),
        hwaddr: HwAddr(hwaddr),
        hostname,
        state: LeaseState::Bound,
        starts: Timestamp(starts),
        expires: Timestamp(expires),
        first_seen: Timestamp(starts),
        circuit_id,
        remote_id,
        subscriber_id: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lease(n: u32, host: Option<&str>) -> Lease {
        let ip = Ipv4Addr::from(0xC612_0000 + n);
        Lease {
            ip,
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, n as u8]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, (n >> 8) as u8, n as u8]),
            hostname: host.map(str::to_string),
            state: LeaseState::Bound,
            starts: Timestamp(1000 + u64::from(n)),
            expires: Timestamp(5000 + u64::from(n)),
            first_seen: Timestamp(1000 + u64::from(n)),
            circuit_id: n.is_multiple_of(2).then(|| b"eth0/1".to_vec()),
            remote_id: n.is_multiple_of(3).then(Vec::new),
            subscriber_id: None,
        }
    }

    #[test]
    fn records_round_trip_and_the_last_entry_wins() {
        let mut t = LatestLeases::default();
        t.set(lease(1, None).ip, Some(&lease(1, None)), None);
        t.set(lease(2, Some("b")).ip, Some(&lease(2, Some("old"))), None);
        t.set(lease(2, Some("b")).ip, Some(&lease(2, Some("b"))), None);
        t.set(lease(3, None).ip, Some(&lease(3, None)), None);
        t.set(lease(3, None).ip, None, Some((7, 1)));
        assert_eq!(t.len(), 2);
        let got: Vec<Lease> = t.leases().collect();
        assert_eq!(got, [lease(1, None), lease(2, Some("b"))]);
        let no_state: Vec<_> = t.without_state().collect();
        assert_eq!(no_state, [(lease(3, None).ip, 7, 1)]);
    }

    #[test]
    fn churn_is_compacted_away_and_keeps_every_current_record() {
        let mut t = LatestLeases::default();
        // Forty rounds over 2000 addresses: far more superseded records than live ones.
        for round in 0..40u32 {
            for n in 0..2000u32 {
                let host = format!("h{n}-{round}");
                let l = lease(n, Some(&host));
                // Every seventh address ends inactive in the last round.
                let keep = round < 39 || n % 7 != 0;
                t.set(l.ip, keep.then_some(&l), None);
            }
        }
        let got: Vec<Lease> = t.leases().collect();
        let want: Vec<Lease> = (0..2000u32)
            .filter(|n| n % 7 != 0)
            .map(|n| lease(n, Some(&format!("h{n}-39"))))
            .collect();
        assert_eq!(got, want);
        assert_eq!(t.len(), want.len());
        assert!(
            t.arena.len() <= t.live_bytes + COMPACT_MIN.max(t.live_bytes / 2),
            "arena {} for {} live bytes",
            t.arena.len(),
            t.live_bytes
        );
    }
}
