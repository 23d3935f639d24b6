//! System tests of `leased`: the real binary in private network namespaces, real DHCP peers
//! (dhclient, udhcpc, dhcpcd, perfdhcp), results read back from the clients and from
//! `leased leases --json`. They need root and the peers; without them each test prints
//! `SKIP: …` (or fails under `CI=true`). Every address is in 198.18.0.0/15 and every wait is
//! bounded. `LEASED_SYSTEM_KEEP=1` keeps each lab's files (configs, logs, captures).

// `argv![…]` builds a Vec (some callers push to it); borrowing it at once is fine in tests.
#![allow(clippy::useless_vec)]

#[path = "support/mod.rs"]
mod support;

#[path = "system/api.rs"]
mod api;
#[path = "system/harness.rs"]
mod harness;
#[path = "system/interop.rs"]
mod interop;
#[path = "system/load.rs"]
mod load;
#[path = "system/persistence.rs"]
mod persistence;
#[path = "system/policy.rs"]
mod policy;
#[path = "system/protocol.rs"]
mod protocol;
#[path = "system/relay.rs"]
mod relay;
#[path = "system/robustness.rs"]
mod robustness;

/// Not a test of its own: the raw-UDP helper that `support::raw::send_from_ns` runs inside a
/// namespace. Without its environment variable it returns at once.
#[test]
fn udp_send_helper() {
    support::raw::helper_main();
}
