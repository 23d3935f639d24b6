//! The ISC dhcpd.conf reader on arbitrary text (with `include`s served from the input itself):
//! never panics, and the DHCPStats-style counts run on whatever it accepts.
#![no_main]

use std::path::Path;

use leased_isc::{parse_conf, parse_leases, subnet_stats, total_counts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Any include resolves to the same bytes: recursion must stop at the depth limit.
    let loader = |_: &Path| -> std::io::Result<Vec<u8>> { Ok(data.to_vec()) };
    let Ok(config) = parse_conf(Path::new("/fuzz/dhcpd.conf"), data, &loader) else {
        return;
    };
    let leases = parse_leases(data, "fuzz.leases");
    let stats = subnet_stats(&config, &leases.leases, 0);
    let _ = total_counts(&stats);
});
