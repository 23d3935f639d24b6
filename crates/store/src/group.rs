//! Group commit: many callers, one fsync.
//!
//! A dedicated OS thread owns the store. It blocks until work arrives, then takes everything
//! already queued (up to [`MAX_GROUP_LEASES`]) and commits it in one [`LeaseStore::commit`].
//! While that fsync runs, new submissions queue up and become the next group, so the group
//! size follows the fsync latency and the load by itself, with no timer adding latency when the
//! server is idle.
//!
//! Under load, a group also starts no sooner than [`MIN_GROUP_INTERVAL`] after the previous one
//! started: an fsync costs tens of microseconds of CPU whatever it carries, and a fast disk
//! would otherwise turn a steady stream of requests into one fsync per lease. Every lease is
//! still durable before its callback runs; a busy server's ACK waits at most that interval
//! longer, an idle server's not at all.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;

use leased_core::Lease;

use crate::{LeaseStore, StoreError};

/// A group stops growing once it holds this many leases (a single larger submission is still
/// committed whole, alone). Bounds the latency one group adds to the submissions behind it.
pub const MAX_GROUP_LEASES: usize = 4096;

/// The shortest time between the starts of two group commits. A job that arrives later than
/// this after the previous group started is committed at once (no added latency when idle);
/// an earlier one waits for the rest of the interval, gathering the jobs behind it. Caps the
/// commit rate at 500 fsyncs a second, which is what costs CPU under load.
pub const MIN_GROUP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Called once with the outcome of the group a submission was committed in. `Ok` means the
/// leases are durable. The error is shared by every submission of the failed group.
pub type CommitDone = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;

/// The commit thread has stopped (it panicked); nothing more can be made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease commit thread has stopped")]
pub struct Closed;

/// Counters of what the commit thread has done, for benchmarks and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Groups committed successfully (one fsync each).
    pub groups: u64,
    /// Leases in those groups.
    pub leases: u64,
    /// Submissions in those groups (what callers asked for; `submissions / groups` is the
    /// fsync saving).
    pub submissions: u64,
    /// Groups whose commit failed.
    pub failed_groups: u64,
}

impl CommitStats {
    /// Mean leases per successful group (0 before the first one).
    pub fn mean_group_leases(&self) -> f64 {
        if self.groups == 0 {
            0.0
        } else {
            self.leases as f64 / self.groups as f64
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    groups: AtomicU64,
    leases: AtomicU64,
    submissions: AtomicU64,
    failed_groups: AtomicU64,
}

struct Job {
    leases: Vec<Lease>,
    done: CommitDone,
}

/// A handle for submitting leases to the commit thread. Cheap to clone; the thread flushes what
/// is queued and exits once every handle is dropped.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: Sender<Job>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommitter")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GroupCommitter {
    /// Starts the commit thread, which owns `store` from now on. Join the returned handle after
    /// dropping every `GroupCommitter` to know that everything submitted has been committed
    /// (and every `done` called).
    ///
    /// # Panics
    /// If the OS refuses to create a thread (as `std::thread::spawn` does).
    pub fn spawn(store: Box<dyn LeaseStore>) -> (GroupCommitter, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let handle = std::thread::Builder::new()
            .name("lease-commit".into())
            .spawn(move || run(store, &rx, &thread_counters))
            .unwrap_or_else(|e| panic!("cannot start the lease commit thread: {e}"));
        (GroupCommitter { tx, counters }, handle)
    }

    /// Queues `leases` for the next group; `done` is called on the commit thread once that
    /// group's commit has returned (calls follow submission order). Keep `done` short — it
    /// delays the next group — e.g. send on a channel.
    ///
    /// An empty `leases` is allowed: `done` runs after the group in flight, a durability barrier.
    /// On `Err(Closed)` `done` is dropped uncalled.
    pub fn submit(&self, leases: Vec<Lease>, done: CommitDone) -> Result<(), Closed> {
        self.tx.send(Job { leases, done }).map_err(|_| Closed)
    }

    /// What the commit thread has done so far.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            groups: self.counters.groups.load(Ordering::Relaxed),
            leases: self.counters.leases.load(Ordering::Relaxed),
            submissions: self.counters.submissions.load(Ordering::Relaxed),
            failed_groups: self.counters.failed_groups.load(Ordering::Relaxed),
        }
    }
}

fn run(mut store: Box<dyn LeaseStore>, rx: &Receiver<Job>, counters: &Counters) {
    let mut carry: Option<Job> = None;
    let mut leases: Vec<Lease> = Vec::new();
    let mut dones: Vec<CommitDone> = Vec::new();
    let mut last_start: Option<std::time::Instant> = None;
    loop {
        // Block for the first job of a group (unless one was left over from the last group).
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                // Every handle is gone and the queue is empty: all work is flushed.
                Err(_) => return,
            },
        };
        // Under load, let the next few requests join this group (see MIN_GROUP_INTERVAL).
        if let Some(wait) = last_start.and_then(|t| MIN_GROUP_INTERVAL.checked_sub(t.elapsed())) {
            std::thread::sleep(wait);
        }
        last_start = Some(std::time::Instant::now());
        leases.clear();
        dones.clear();
        leases.extend(first.leases);
        dones.push(first.done);
        // Then everything that queued while the last fsync ran, without waiting for more.
        while leases.len() < MAX_GROUP_LEASES {
            match rx.try_recv() {
                Ok(job) if leases.len() + job.leases.len() > MAX_GROUP_LEASES => {
                    carry = Some(job);
                    break;
                }
                Ok(job) => {
                    leases.extend(job.leases);
                    dones.push(job.done);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }

        let result = store.commit(&leases).map_err(Arc::new);
        match &result {
            Ok(()) => {
                counters.groups.fetch_add(1, Ordering::Relaxed);
                counters
                    .leases
                    .fetch_add(leases.len() as u64, Ordering::Relaxed);
                counters
                    .submissions
                    .fetch_add(dones.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed_groups.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, leases = leases.len(), "lease group commit failed");
            }
        }
        for done in dones.drain(..) {
            // One caller's panicking callback must not strand everybody else's.
            let r = result.clone();
            if catch_unwind(AssertUnwindSafe(move || done(r))).is_err() {
                tracing::error!("a lease commit callback panicked");
            }
        }
    }
}
