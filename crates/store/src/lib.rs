//! Lease persistence. The promise every backend keeps: when [`LeaseStore::commit`] returns
//! `Ok`, the leases it was given survive a crash (kill -9, power loss) and come back from
//! [`LeaseStore::load`].
//!
//! Callers batch: one `commit` carries the changes of many packets, so one fsync covers them all
//! (group commit). The embedded journal is the default backend; SQL backends come later behind
//! the same trait.
#![forbid(unsafe_code)]

mod embedded;
mod format;
mod group;

pub use embedded::{COMPACT_RATIO, DEFAULT_COMPACT_FLOOR, EmbeddedStore};
pub use group::{Closed, CommitDone, CommitStats, GroupCommitter, MAX_GROUP_LEASES};

use leased_core::Lease;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("lease store I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("lease store {path} is corrupt at byte {offset}: {why}")]
    Corrupt {
        path: String,
        offset: u64,
        why: String,
    },
    #[error("lease store {path} is in use by another process")]
    Locked { path: String },
}

/// A durable home for leases.
pub trait LeaseStore: Send {
    /// Every lease's latest record, as of the last successful commit.
    fn load(&mut self) -> Result<Vec<Lease>, StoreError>;
    /// Makes `leases` durable (upserts keyed by `ip`) before returning `Ok`. One call is one
    /// group: at most one fsync. On `Err`, none of them may be assumed durable.
    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError>;
}
