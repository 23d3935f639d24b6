//! Durable-commit throughput of the embedded journal.
//!
//! ```text
//! cargo run --release -p leased-store --example commit_bench [DIR]
//! ```
//!
//! How it measures: a fresh journal in a temporary directory under `DIR` (default: the current
//! directory — put it on the disk you care about; a tmpfs makes fsync free and the numbers
//! meaningless). Every number is wall-clock time around calls that returned `Ok`, i.e. leases
//! that are durable (written and `fdatasync`ed):
//! 1. 1,000 commits of one lease each (one fsync per lease);
//! 2. 20,000 leases in commits of 64 (one fsync per 64 leases), the setup of
//!    `rust-deps.md` §4.1;
//! 3. 64 threads each submitting single leases through a [`GroupCommitter`] and waiting for
//!    the ACK (the server's pattern) for 20,000 leases in total, reporting the mean group size
//!    the fsync latency produced;
//! 4. reopening the journal (replay) once it holds 100,000 live leases.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::Instant;

use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::{EmbeddedStore, GroupCommitter, LeaseStore};

fn lease(n: u32, v: u64) -> Lease {
    let b = n.to_be_bytes();
    Lease {
        ip: Ipv4Addr::from(0xC612_0000 | (n & 0x1_ffff)),
        client_id: ClientId(vec![1, 0x02, 0, b[1], b[2], b[3]]),
        hwaddr: HwAddr(vec![0x02, 0, 0, b[1], b[2], b[3]]),
        hostname: Some(format!("host-{n}")),
        state: LeaseState::Bound,
        starts: Timestamp(1_700_000_000 + v),
        expires: Timestamp(1_700_003_600 + v),
        first_seen: Timestamp(1_700_000_000),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    }
}

fn main() {
    let base = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let path = dir.path().join("bench.journal");
    let mut store = EmbeddedStore::open(&path).unwrap();

    let t = Instant::now();
    for n in 0..1_000 {
        store.commit(&[lease(n, 0)]).unwrap();
    }
    let single = 1_000.0 / t.elapsed().as_secs_f64();
    println!("groups of 1:  {single:>9.0} durable leases/s");

    let all: Vec<Lease> = (0..20_000).map(|n| lease(n, 1)).collect();
    let t = Instant::now();
    for chunk in all.chunks(64) {
        store.commit(chunk).unwrap();
    }
    let grouped = 20_000.0 / t.elapsed().as_secs_f64();
    println!("groups of 64: {grouped:>9.0} durable leases/s");

    let (committer, thread) = GroupCommitter::spawn(Box::new(store));
    let t = Instant::now();
    let workers: Vec<_> = (0..64u32)
        .map(|w| {
            let committer = committer.clone();
            std::thread::spawn(move || {
                for i in 0..(20_000 / 64) {
                    let (tx, rx) = mpsc::channel();
                    committer
                        .submit(
                            vec![lease(w * 1000 + i, 2)],
                            Box::new(move |r| {
                                let _ = tx.send(r.is_ok());
                            }),
                        )
                        .unwrap();
                    assert!(rx.recv().unwrap());
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let stats = committer.stats();
    println!(
        "GroupCommitter, 64 waiting submitters: {:>9.0} durable leases/s, mean group {:.1} leases",
        stats.leases as f64 / elapsed,
        stats.mean_group_leases()
    );
    drop(committer);
    thread.join().unwrap();

    let mut store = EmbeddedStore::open(&path).unwrap();
    let fill: Vec<Lease> = (0..100_000).map(|n| lease(n, 3)).collect();
    for chunk in fill.chunks(4096) {
        store.commit(chunk).unwrap();
    }
    let bytes = store.journal_bytes();
    drop(store);
    let t = Instant::now();
    let mut store = EmbeddedStore::open(&path).unwrap();
    let n = store.load().unwrap().len();
    println!(
        "replay: {n} live leases ({} records, {:.1} MB) in {:.0} ms",
        store.journal_records(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64() * 1e3
    );
}
