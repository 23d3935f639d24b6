//! Appending to the embedded journal without a lease table in memory: a bulk import (a
//! million leases from another server) writes its leases in commits of a few thousand and
//! needs memory for one commit, not for the whole table. The journal's rule that the last
//! record of an address wins is what lets records go out in file order, unmerged; the next
//! `leased serve` compacts the journal on its first commit when it holds many superseded ones.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;

use leased_core::Lease;

use crate::{StoreError, format};

/// A locked journal taking appends (from [`crate::EmbeddedStore::into_appender`]).
#[derive(Debug)]
pub struct JournalAppender {
    pub(crate) path: PathBuf,
    /// Open for append at `len`, exclusively locked.
    pub(crate) file: File,
    /// End of the last durable commit.
    pub(crate) len: u64,
    /// Lease records in the journal.
    pub(crate) records: usize,
    /// Set after a failed fsync: every later append fails.
    pub(crate) poisoned: bool,
}

impl JournalAppender {
    /// Appends `leases` as one commit (one write, one fdatasync), as
    /// [`crate::LeaseStore::commit`] does, but keeps none of them.
    pub fn append(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        let io = |path: &PathBuf, source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        if leases.is_empty() {
            return Ok(());
        }
        if self.poisoned {
            return Err(io(
                &self.path,
                std::io::Error::other("an earlier fsync failed; reopen the store"),
            ));
        }
        let mut buf = Vec::with_capacity(leases.len() * 256);
        format::encode_commit(leases, &mut buf)
            .map_err(|e| io(&self.path, std::io::Error::other(e)))?;
        if let Err(e) = self.file.write_all(&buf) {
            let restored = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
            if restored.is_err() {
                self.poisoned = true;
            }
            return Err(io(&self.path, e));
        }
        if let Err(e) = self.file.sync_data() {
            self.poisoned = true;
            return Err(io(&self.path, e));
        }
        self.len += buf.len() as u64;
        self.records += leases.len();
        Ok(())
    }

    /// Lease records in the journal, superseded ones included.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The journal's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use leased_core::{ClientId, HwAddr, LeaseState, Timestamp};

    use crate::{EmbeddedStore, LeaseStore};

    use super::*;

    fn lease(n: u8, state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, n),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, n]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, n]),
            hostname: None,
            state,
            starts: Timestamp(1),
            expires: Timestamp(100),
            first_seen: Timestamp(1),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn appended_records_replay_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut a = EmbeddedStore::open(&path).unwrap().into_appender().unwrap();
        a.append(&[lease(1, LeaseState::Bound), lease(2, LeaseState::Bound)])
            .unwrap();
        a.append(&[lease(1, LeaseState::Released)]).unwrap();
        assert_eq!(a.records(), 3);
        // The lock is held: a second opener is refused until the appender goes.
        assert!(matches!(
            EmbeddedStore::open(&path),
            Err(StoreError::Locked { .. })
        ));
        drop(a);
        let mut s = EmbeddedStore::open(&path).unwrap();
        let got = s.load().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].state, LeaseState::Released);
        assert_eq!(got[1].state, LeaseState::Bound);
        assert_eq!(s.journal_records(), 3);
    }
}
