//! The engine's door to the store's group commit ([`GroupCommitter`]).
//!
//! The engine never waits for the disk: it submits leases with a completion callback and goes
//! on deciding. The store's commit thread folds everything submitted while the previous
//! write + fsync ran into one commit, then calls each callback; an ACK is sent from its
//! callback, so it leaves only once its lease is durable.

use leased_core::Lease;
use leased_store::{CommitDone, GroupCommitter, LeaseStore};

/// A running commit thread: submit from the engine, [`Committer::finish`] at shutdown to flush
/// and join.
pub(crate) struct Committer {
    handle: GroupCommitter,
    join: std::thread::JoinHandle<()>,
}

impl Committer {
    /// Starts the commit thread that owns `store`.
    pub(crate) fn spawn(store: Box<dyn LeaseStore>) -> Self {
        let (handle, join) = GroupCommitter::spawn(store);
        Self { handle, join }
    }

    /// Queues `leases` for the next group; `done` runs on the commit thread afterwards. If the
    /// thread has died, `done` is dropped uncalled — a waiting reply is never sent — and the
    /// caller learns it from the return value.
    #[must_use = "a false return means the leases were not queued"]
    pub(crate) fn submit(&self, leases: Vec<Lease>, done: CommitDone) -> bool {
        self.handle.submit(leases, done).is_ok()
    }

    /// Stops accepting work, lets the thread commit what is queued (calling every callback),
    /// and waits for it.
    pub(crate) fn finish(self) {
        let stats = self.handle.stats();
        drop(self.handle);
        if self.join.join().is_err() {
            tracing::error!("lease store commit thread panicked");
        }
        tracing::debug!(
            groups = stats.groups,
            leases = stats.leases,
            submissions = stats.submissions,
            failed_groups = stats.failed_groups,
            "commit thread stopped"
        );
    }
}
