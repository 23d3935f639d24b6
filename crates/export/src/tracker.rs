//! Which bindings are live, so that each one's end is reported exactly once.
//!
//! Why: the seed kept every lease forever and re-sent long-expired ones each cycle. Here a
//! binding is live from its `Bound` event until a release, a NAK or its expiry; the first of
//! those is reported and removes it, so later ones (the server's own expiry after the timer's,
//! a RELEASE after a lapse) are not. The table is saved to `bindings.json` (atomically) so a
//! relay that restarts still reports the expiries of bindings made before.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use leased_core::{BindingEvent, BindingKind, HwAddr, Timestamp};
use serde::{Deserialize, Serialize};

/// One live binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Live {
    mac: HwAddr,
    ip: Ipv4Addr,
    expires: Option<Timestamp>,
    event: BindingEvent,
}

/// The live bindings, keyed by MAC and address.
#[derive(Debug, Default)]
pub struct Tracker {
    live: BTreeMap<(HwAddr, Ipv4Addr), Live>,
    path: Option<PathBuf>,
    dirty: bool,
}

impl Tracker {
    /// Loads the table saved in `dir` (empty when none).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("bindings.json");
        let list: Vec<Live> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            live: list
                .into_iter()
                .map(|l| ((l.mac.clone(), l.ip), l))
                .collect(),
            path: Some(path),
            dirty: false,
        })
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
        let key = (ev.mac.clone(), ev.ip);
        if ev.kind == BindingKind::Bound {
            self.live.insert(
                key,
                Live {
                    mac: ev.mac.clone(),
                    ip: ev.ip,
                    expires: ev.expires,
                    event: ev.clone(),
                },
            );
            self.dirty = true;
            Some(ev)
        } else if self.live.remove(&key).is_some() {
            self.dirty = true;
            Some(ev)
        } else {
            None
        }
    }

    /// Ends every binding whose expiry is at or before `now`, returning one `Expired` each.
    pub fn tick(&mut self, now: Timestamp) -> Vec<BindingEvent> {
        let due: Vec<(HwAddr, Ipv4Addr)> = self
            .live
            .iter()
            .filter(|(_, l)| l.expires.is_some_and(|e| e <= now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in due {
            if let Some(l) = self.live.remove(&k) {
                self.dirty = true;
                out.push(BindingEvent {
                    kind: BindingKind::Expired,
                    at: now,
                    lease_time: None,
                    expires: None,
                    ..l.event
                });
            }
        }
        out
    }

    /// Saves the table if it changed (write, fsync, rename).
    pub fn save(&mut self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let list: Vec<&Live> = self.live.values().collect();
        let bytes = serde_json::to_vec(&list).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        self.dirty = false;
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
}
