//! Which bindings are live, so that each one's end is reported exactly once.
//!
//! Why: dhcp-batcher kept every lease forever and re-sent long-expired ones each cycle. Here a
//! binding is live from its `Bound` event until a release, a NAK or its expiry; the first of
//! those is reported and removes it, so later ones (the server's own expiry after the timer's,
//! a RELEASE after a lapse) are not.
//!
//! Durable, so that a restarted relay or server still reports the expiries of bindings made
//! before: every change is appended to `bindings.journal` (length + CRC framed JSON, fsync'ed
//! in the same step as the outbox append), and the journal is folded into the snapshot
//! `bindings.json` (written atomically) once it outgrows it. Replaying a journal over a newer
//! snapshot is harmless: each key ends as its last operation says, which the snapshot holds.
//! Expiries are found through an index by time, so a tick costs only what is due.
//!
//! Its files are created with the outbox's [`Perms`] (owner-only by default). Every method
//! that takes `&mut self` may do blocking file IO ([`Tracker::save`]): the exporter calls it
//! on a blocking thread.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use leased_core::{BindingEvent, BindingKind, HwAddr, Timestamp};
use serde::{Deserialize, Serialize};

use crate::files::{self, Perms};

/// One live binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Live {
    mac: HwAddr,
    ip: Ipv4Addr,
    expires: Option<Timestamp>,
    event: BindingEvent,
}

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Op {
    Put(Live),
    Del(HwAddr, Ipv4Addr),
}

type Key = (HwAddr, Ipv4Addr);

/// The live bindings, keyed by MAC and address.
#[derive(Debug, Default)]
pub struct Tracker {
    live: BTreeMap<Key, Live>,
    /// (expiry, key) of every live binding that expires by time.
    by_expiry: BTreeSet<(Timestamp, Key)>,
    dir: Option<PathBuf>,
    journal: Option<std::fs::File>,
    perms: Perms,
    journal_len: u64,
    ops: Vec<Op>,
}

/// The journal is folded into the snapshot once it is larger than this and than the table.
const COMPACT_MIN: u64 = 1 << 20;

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Whole records of `data` (a torn or corrupt tail ends the list) and the bytes they span.
fn unframe(data: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(rec) = data.get(pos..) {
        let len = rec
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        let crc = rec
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        let (Some(len), Some(crc)) = (len, crc) else {
            break;
        };
        let Some(payload) = rec.get(8..8 + len as usize) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        out.push(payload);
        pos += 8 + len as usize;
    }
    (out, pos)
}

impl Tracker {
    /// Loads the table kept in `dir` (snapshot, then journal; empty when none).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        Self::open_with(dir, Perms::PRIVATE)
    }

    /// [`Tracker::open`] with the given modes for what it creates.
    pub fn open_with(dir: &Path, perms: Perms) -> std::io::Result<Self> {
        files::create_dir_all(dir, perms)?;
        let mut t = Self {
            dir: Some(dir.to_path_buf()),
            perms,
            ..Self::default()
        };
        match std::fs::read(dir.join("bindings.json")) {
            Ok(b) => {
                let list: Vec<Live> = serde_json::from_slice(&b).map_err(std::io::Error::other)?;
                for l in list {
                    t.put(l);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let path = dir.join("bindings.journal");
        let mut file = files::open_append(&path, perms)?;
        if let Ok(snapshot) = std::fs::File::open(dir.join("bindings.json")) {
            files::narrow(&snapshot, &dir.join("bindings.json"), perms)?;
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (records, used) = unframe(&data);
        for r in records {
            match serde_json::from_slice::<Op>(r) {
                Ok(Op::Put(l)) => t.put(l),
                Ok(Op::Del(mac, ip)) => {
                    t.del(&(mac, ip));
                }
                Err(e) => tracing::warn!(error = %e, "bindings journal: unreadable record skipped"),
            }
        }
        if used < data.len() {
            tracing::warn!(
                dropped = data.len() - used,
                "bindings journal: cut a torn tail"
            );
            file.set_len(used as u64)?;
            file.sync_all()?;
        }
        t.journal_len = used as u64;
        t.journal = Some(file);
        Ok(t)
    }

    fn put(&mut self, l: Live) {
        let key = (l.mac.clone(), l.ip);
        self.del(&key);
        if let Some(e) = l.expires {
            self.by_expiry.insert((e, key.clone()));
        }
        self.live.insert(key, l);
    }

    fn del(&mut self, key: &Key) -> Option<Live> {
        let old = self.live.remove(key)?;
        if let Some(e) = old.expires {
            self.by_expiry.remove(&(e, key.clone()));
        }
        Some(old)
    }

    /// Number of live bindings.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Takes in one event; returns it if it is to be reported. A `Bound` always is (a renewal
    /// refreshes the expiry); an end only when the binding is live (and then it stops being so).
    /// Router-reported entries (`expires: None` on a `Bound`) never expire by time.
    pub fn on_event(&mut self, ev: BindingEvent) -> Option<BindingEvent> {
        if ev.kind == BindingKind::Bound {
            let l = Live {
                mac: ev.mac.clone(),
                ip: ev.ip,
                expires: ev.expires,
                event: ev.clone(),
            };
            self.ops.push(Op::Put(l.clone()));
            self.put(l);
            Some(ev)
        } else if self.del(&(ev.mac.clone(), ev.ip)).is_some() {
            self.ops.push(Op::Del(ev.mac.clone(), ev.ip));
            Some(ev)
        } else {
            None
        }
    }

    /// Ends every binding whose expiry is at or before `now`, returning one `Expired` each.
    pub fn tick(&mut self, now: Timestamp) -> Vec<BindingEvent> {
        let mut out = Vec::new();
        while let Some((e, key)) = self.by_expiry.first().cloned() {
            if e > now {
                break;
            }
            if let Some(l) = self.del(&key) {
                self.ops.push(Op::Del(key.0, key.1));
                out.push(BindingEvent {
                    kind: BindingKind::Expired,
                    at: now,
                    lease_time: None,
                    expires: None,
                    ..l.event
                });
            } else {
                self.by_expiry.remove(&(e, key));
            }
        }
        out
    }

    /// Makes the changes since the last call durable (one append + fsync), folding the
    /// journal into the snapshot when it has grown large.
    pub fn save(&mut self) -> std::io::Result<()> {
        let (Some(dir), Some(journal)) = (&self.dir, &mut self.journal) else {
            self.ops.clear();
            return Ok(());
        };
        if self.ops.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for op in &self.ops {
            frame(
                &serde_json::to_vec(op).map_err(std::io::Error::other)?,
                &mut buf,
            );
        }
        journal.write_all(&buf)?;
        journal.sync_data()?;
        self.ops.clear();
        self.journal_len += buf.len() as u64;
        // Fold when the journal is both past the minimum and bigger than the table would be.
        let table_guess = (self.live.len() as u64).saturating_mul(300);
        if self.journal_len > COMPACT_MIN && self.journal_len > table_guess {
            let list: Vec<&Live> = self.live.values().collect();
            let bytes = serde_json::to_vec(&list).map_err(std::io::Error::other)?;
            files::write_atomic(dir, "bindings.json", &bytes, self.perms)?;
            journal.set_len(0)?;
            journal.sync_all()?;
            self.journal_len = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ev(kind: BindingKind, ip: u8, expires: Option<u64>) -> BindingEvent {
        BindingEvent {
            kind,
            mac: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(198, 18, 0, ip),
            at: Timestamp(0),
            lease_time: expires.map(|_| 60),
            expires: expires.map(Timestamp),
            remote_id: None,
            circuit_id: None,
            hostname: None,
            giaddr: None,
        }
    }

    #[test]
    fn each_end_reported_once_and_survives_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Tracker::open(d.path()).unwrap();
        assert!(t.on_event(ev(BindingKind::Bound, 10, Some(100))).is_some());
        assert!(t.on_event(ev(BindingKind::Bound, 10, Some(200))).is_some()); // renewal
        assert!(t.on_event(ev(BindingKind::Bound, 11, Some(50))).is_some());
        assert!(t.on_event(ev(BindingKind::Bound, 12, None)).is_some());
        assert_eq!(t.tick(Timestamp(100)).len(), 1); // .11 only; .10 was renewed
        assert!(t.tick(Timestamp(100)).is_empty());
        assert!(t.on_event(ev(BindingKind::Expired, 11, None)).is_none()); // server's own expiry
        t.save().unwrap();
        let mut t = Tracker::open(d.path()).unwrap();
        assert_eq!(t.len(), 2);
        let e = t.tick(Timestamp(1_000_000));
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].kind, e[0].ip),
            (BindingKind::Expired, Ipv4Addr::new(198, 18, 0, 10))
        );
        assert!(t.on_event(ev(BindingKind::Released, 10, None)).is_none());
        assert!(t.on_event(ev(BindingKind::Released, 12, None)).is_some());
        assert!(t.on_event(ev(BindingKind::Nak, 12, None)).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn journal_survives_a_torn_tail_and_compaction() {
        let d = tempfile::tempdir().unwrap();
        let mut t = Tracker::open(d.path()).unwrap();
        for i in 1..=200u8 {
            t.on_event(ev(BindingKind::Bound, i, Some(1000 + u64::from(i))));
        }
        t.on_event(ev(BindingKind::Released, 7, None));
        t.save().unwrap();
        // A torn record at the end (crash mid-append) is cut, the rest kept.
        let mut j = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("bindings.journal"))
            .unwrap();
        j.write_all(&[50, 0, 0, 0, 1, 2, 3]).unwrap();
        let mut t = Tracker::open(d.path()).unwrap();
        assert_eq!(t.len(), 199);
        // Force compaction with a big journal, then reopen from snapshot + empty journal.
        for round in 0..40u64 {
            for i in 1..=200u8 {
                if i != 7 {
                    t.on_event(ev(BindingKind::Bound, i, Some(2000 + round)));
                }
            }
            t.save().unwrap();
        }
        assert!(
            std::fs::metadata(d.path().join("bindings.json")).is_ok(),
            "snapshot written"
        );
        let mut t = Tracker::open(d.path()).unwrap();
        assert_eq!(t.len(), 199);
        assert_eq!(t.tick(Timestamp(2038)).len(), 0);
        assert_eq!(t.tick(Timestamp(2039)).len(), 199);
        t.save().unwrap();
        assert!(Tracker::open(d.path()).unwrap().is_empty());
        use std::os::unix::fs::PermissionsExt;
        for f in ["bindings.json", "bindings.journal"] {
            let m = std::fs::metadata(d.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o777, 0o600, "{f}");
        }
    }
}
