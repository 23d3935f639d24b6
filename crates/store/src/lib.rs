//! Lease persistence. The promise every backend keeps: when [`LeaseStore::commit`] returns
//! `Ok`, the leases it was given survive a crash (kill -9, power loss) and come back from
//! [`LeaseStore::load`].
//!
//! Callers batch: one `commit` carries the changes of many packets, so one fsync covers them all
//! (group commit). The embedded journal is the default backend; SQL backends come later behind
//! the same trait.
#![forbid(unsafe_code)]

mod append;
mod embedded;
mod format;
mod group;
pub mod history;
mod keyed;
mod mode;
#[cfg(feature = "sql")]
pub mod sql;

pub use append::JournalAppender;
pub use embedded::{COMPACT_RATIO, DEFAULT_COMPACT_FLOOR, EmbeddedStore};
pub use group::{
    Closed, CommitDone, CommitStats, GroupCommitter, MAX_GROUP_LEASES, MIN_GROUP_INTERVAL,
};
pub use keyed::{KeyedError, KeyedFile};
pub use mode::{FileMode, mode_of};

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
    /// The SQL database failed or could not be reached.
    #[error("lease database: {message}")]
    Sql { message: String },
    /// Shared stores only: these addresses are held by another client (another server gave
    /// them out). Every *other* lease of the commit was made durable.
    #[error("lease store: {} address(es) held by another client: {ips:?}", ips.len())]
    Conflict { ips: Vec<std::net::Ipv4Addr> },
}

/// A durable home for leases.
pub trait LeaseStore: Send {
    /// Every lease's latest record, as of the last successful commit.
    fn load(&mut self) -> Result<Vec<Lease>, StoreError>;
    /// Makes `leases` durable (upserts keyed by `ip`) before returning `Ok`. One call is one
    /// group: at most one fsync. On `Err`, none of them may be assumed durable, except after
    /// [`StoreError::Conflict`], which means every lease not listed in it *is* durable.
    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError>;
}
