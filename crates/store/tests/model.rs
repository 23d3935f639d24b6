//! Property: any sequence of commits, reopens and compactions loads the last value per address.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::lease;
use leased_core::{Lease, LeaseState};
use leased_store::{EmbeddedStore, LeaseStore};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// (address index, version, offered?)
    Commit(Vec<(u16, u64, bool)>),
    Reopen,
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u16..24, 0u64..1000, prop::bool::weighted(0.1)), 0..12)
            .prop_map(Op::Commit),
        1 => Just(Op::Reopen),
        1 => Just(Op::Compact),
    ]
}

fn sorted(map: &HashMap<Ipv4Addr, Lease>) -> Vec<Lease> {
    let mut v: Vec<Lease> = map.values().cloned().collect();
    v.sort_by_key(|l| l.ip);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn load_returns_the_last_write_per_ip(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leases.journal");
        let mut store = EmbeddedStore::open(&path).unwrap();
        // Small floor, so that automatic compaction happens within the test too.
        store.set_compact_floor(30);
        let mut model: HashMap<Ipv4Addr, Lease> = HashMap::new();
        for op in ops {
            match op {
                Op::Commit(writes) => {
                    let leases: Vec<Lease> = writes
                        .iter()
                        .map(|(n, v, offered)| {
                            let mut l = lease(*n, *v);
                            if *offered {
                                l.state = LeaseState::Offered;
                            }
                            l
                        })
                        .collect();
                    let records_before = store.journal_records();
                    store.commit(&leases).unwrap();
                    for l in &leases {
                        model.insert(l.ip, l.clone());
                    }
                    if store.journal_records() < records_before + leases.len() {
                        // Auto-compaction ran: Offered leases are not kept.
                        model.retain(|_, l| l.state != LeaseState::Offered);
                    }
                }
                Op::Reopen => {
                    drop(store);
                    store = EmbeddedStore::open(&path).unwrap();
                    store.set_compact_floor(30);
                }
                Op::Compact => {
                    store.compact().unwrap();
                    model.retain(|_, l| l.state != LeaseState::Offered);
                }
            }
            prop_assert_eq!(store.load().unwrap(), sorted(&model));
        }
        prop_assert_eq!(EmbeddedStore::read_only(&path).unwrap(), sorted(&model));
        drop(store);
        let mut reopened = EmbeddedStore::open(&path).unwrap();
        prop_assert_eq!(reopened.load().unwrap(), sorted(&model));
    }
}
