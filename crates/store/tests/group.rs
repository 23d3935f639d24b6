//! GroupCommitter: many submitters, few fsyncs, every `done` called in order with the result.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{expected, lease};
use leased_core::Lease;
use leased_store::{EmbeddedStore, GroupCommitter, LeaseStore, StoreError};

/// The real journal, with extra fsync latency so that groups form even on a tmpfs /tmp.
struct SlowDisk(EmbeddedStore, Duration);

impl LeaseStore for SlowDisk {
    fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
        self.0.load()
    }
    fn commit(&mut self, leases: &[Lease]) -> Result<(), StoreError> {
        std::thread::sleep(self.1);
        self.0.commit(leases)
    }
}

/// A disk that is full: every commit fails.
struct FullDisk;

impl LeaseStore for FullDisk {
    fn load(&mut self) -> Result<Vec<Lease>, StoreError> {
        Ok(vec![])
    }
    fn commit(&mut self, _: &[Lease]) -> Result<(), StoreError> {
        Err(StoreError::Io {
            path: "full".into(),
            source: std::io::Error::from_raw_os_error(28),
        })
    }
}

#[test]
fn concurrent_submits_are_grouped_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.journal");
    let store = EmbeddedStore::open(&path).unwrap();
    let (committer, thread) =
        GroupCommitter::spawn(Box::new(SlowDisk(store, Duration::from_millis(2))));

    const THREADS: u16 = 8;
    const PER_THREAD: u16 = 100;
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let committer = committer.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    // Each submitter waits for its ACK, like a server answering a REQUEST.
                    let (done_tx, done_rx) = mpsc::channel();
                    let l = lease(t * PER_THREAD + i, 1);
                    committer
                        .submit(vec![l], Box::new(move |r| done_tx.send(r.is_ok()).unwrap()))
                        .unwrap();
                    let ok = done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
                    tx.send(ok).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    let oks: Vec<bool> = rx.iter().collect();
    assert_eq!(oks.len(), usize::from(THREADS * PER_THREAD));
    assert!(oks.iter().all(|ok| *ok));

    let stats = committer.stats();
    assert_eq!(stats.submissions, u64::from(THREADS * PER_THREAD));
    assert_eq!(stats.leases, u64::from(THREADS * PER_THREAD));
    assert!(
        stats.groups < stats.submissions / 2,
        "fsyncs were shared: {stats:?}"
    );
    assert!(stats.mean_group_leases() > 2.0, "{stats:?}");
    assert_eq!(stats.failed_groups, 0);

    drop(committer);
    thread.join().unwrap();
    let all: Vec<Vec<Lease>> = (0..THREADS * PER_THREAD)
        .map(|n| vec![lease(n, 1)])
        .collect();
    assert_eq!(EmbeddedStore::read_only(&path).unwrap(), expected(&all));
}

#[test]
fn dones_run_in_submission_order_and_the_thread_flushes_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.journal");
    let store = EmbeddedStore::open(&path).unwrap();
    let (committer, thread) =
        GroupCommitter::spawn(Box::new(SlowDisk(store, Duration::from_millis(5))));
    let order = Arc::new(Mutex::new(Vec::new()));
    // Same address every time: the last submission must be the one that survives.
    for v in 0..500u64 {
        let order = Arc::clone(&order);
        committer
            .submit(
                vec![lease(1, v)],
                Box::new(move |r| {
                    assert!(r.is_ok());
                    order.lock().unwrap().push(v);
                }),
            )
            .unwrap();
    }
    // An empty submission is a barrier: its done runs after everything before it.
    let (tx, rx) = mpsc::channel();
    committer
        .submit(vec![], Box::new(move |r| tx.send(r.is_ok()).unwrap()))
        .unwrap();
    drop(committer);
    thread.join().unwrap();
    assert!(rx.try_recv().unwrap());
    assert_eq!(*order.lock().unwrap(), (0..500).collect::<Vec<_>>());
    assert_eq!(
        EmbeddedStore::read_only(&path).unwrap(),
        vec![lease(1, 499)]
    );
}

#[test]
fn large_submissions_are_split_across_groups_but_never_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.journal");
    let store = EmbeddedStore::open(&path).unwrap();
    let (committer, thread) =
        GroupCommitter::spawn(Box::new(SlowDisk(store, Duration::from_millis(1))));
    for chunk in 0..10u16 {
        let batch: Vec<Lease> = (0..3000).map(|n| lease(n, u64::from(chunk))).collect();
        committer
            .submit(batch, Box::new(|r| assert!(r.is_ok())))
            .unwrap();
    }
    // A barrier, then the counters (a live handle would keep the thread running).
    let (tx, rx) = mpsc::channel();
    committer
        .submit(vec![], Box::new(move |_| tx.send(()).unwrap()))
        .unwrap();
    rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let stats = committer.stats();
    drop(committer);
    thread.join().unwrap();
    // 3000 + 3000 > 4096: each submission is its own group.
    assert_eq!(stats.groups, 10, "{stats:?}");
    let want: Vec<Lease> = (0..3000).map(|n| lease(n, 9)).collect();
    assert_eq!(EmbeddedStore::read_only(&path).unwrap(), want);
}

#[test]
fn a_failed_group_reports_the_error_to_every_submitter() {
    let (committer, thread) = GroupCommitter::spawn(Box::new(FullDisk));
    let (tx, rx) = mpsc::channel();
    for n in 0..20 {
        let tx = tx.clone();
        committer
            .submit(
                vec![lease(n, 1)],
                Box::new(move |r| tx.send(r.map_err(|e| e.to_string())).unwrap()),
            )
            .unwrap();
    }
    drop(tx);
    drop(committer);
    thread.join().unwrap();
    let results: Vec<_> = rx.iter().collect();
    assert_eq!(results.len(), 20);
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
}

#[test]
fn a_panicking_callback_does_not_strand_the_others() {
    let (committer, thread) = GroupCommitter::spawn(Box::new(FullDisk));
    let (tx, rx) = mpsc::channel();
    committer
        .submit(vec![], Box::new(|_| panic!("callback bug")))
        .unwrap();
    committer
        .submit(vec![], Box::new(move |_| tx.send(()).unwrap()))
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Still running.
    let (tx, rx) = mpsc::channel();
    committer
        .submit(vec![], Box::new(move |_| tx.send(()).unwrap()))
        .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    drop(committer);
    thread.join().unwrap();
}

#[test]
fn the_handle_is_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<GroupCommitter>();
}

#[test]
fn back_to_back_groups_start_at_least_the_minimum_interval_apart() {
    // A disk that takes no time: without the interval every job would be its own fsync at
    // once. Each job here waits for the previous one, so each is its own group; the groups
    // after the first must be paced.
    let (committer, thread) = GroupCommitter::spawn(Box::new(FullDisk));
    let started = std::time::Instant::now();
    let groups = 6u32;
    for _ in 0..groups {
        let (tx, rx) = mpsc::channel();
        committer
            .submit(vec![], Box::new(move |_| tx.send(()).unwrap()))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    assert!(
        started.elapsed() >= leased_store::MIN_GROUP_INTERVAL * (groups - 1),
        "{groups} groups in {:?}",
        started.elapsed()
    );
    drop(committer);
    thread.join().unwrap();
}
