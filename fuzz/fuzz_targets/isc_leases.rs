//! The ISC dhcpd.leases reader on arbitrary bytes: never fails or panics (dhcpd may be appending
//! while we read), and the counts run over what it found.
#![no_main]

use leased_isc::{IscConfig, parse_leases, subnet_stats, total_counts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let leases = parse_leases(data, "fuzz.leases");
    let stats = subnet_stats(&IscConfig::default(), &leases.leases, 0);
    let _ = total_counts(&stats);
});
