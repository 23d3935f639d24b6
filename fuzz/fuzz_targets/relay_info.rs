//! Option 82: `leased_wire::relay_suboptions` and core's `RelayInfo::parse` never panic, agree
//! with each other, and every relay-key extractor (built-in, or a pydhcpdb-style slice spec
//! taken from the input) runs on what they produce.
#![no_main]

use leased_core::{Extractor, RelayInfo};
use leased_wire::relay_suboptions;
use libfuzzer_sys::fuzz_target;

/// Input: an Option 82 value, or `@<slice spec>\n<value>` to try a pydhcpdb-style extractor too
/// (raw option values from captures work as seeds unchanged).
fn split(data: &[u8]) -> (&str, &[u8]) {
    if let Some(rest) = data.strip_prefix(b"@") {
        if let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (spec, value) = rest.split_at(nl);
            let spec = std::str::from_utf8(spec).unwrap_or("");
            return (spec, value.get(1..).unwrap_or(&[]));
        }
    }
    ("", data)
}

fuzz_target!(|data: &[u8]| {
    let (spec, value) = split(data);
    let subs = relay_suboptions(value);
    let info = RelayInfo::parse(value);
    assert_eq!(info.raw, value, "the raw value is kept for the echo");
    assert_eq!(info.well_formed, subs.is_ok());
    match subs {
        Ok(subs) => {
            // The sub-options tile the value exactly.
            let total: usize = subs.iter().map(|(_, v)| v.len() + 2).sum();
            assert_eq!(total, value.len());
            let first = |c: u8| subs.iter().find(|(code, _)| *code == c).map(|(_, v)| *v);
            // A zero-length sub-option counts as absent, so a later non-empty one is used.
            let nonempty = |c: u8| {
                subs.iter()
                    .find(|(code, v)| *code == c && !v.is_empty())
                    .map(|(_, v)| v.to_vec())
            };
            assert_eq!(info.circuit_id, nonempty(1));
            assert_eq!(info.remote_id, nonempty(2));
            assert_eq!(info.subscriber_id, nonempty(6));
            assert_eq!(info.relay_port, first(19).is_some());
        }
        Err(_) => {
            assert!(info.circuit_id.is_none() && info.remote_id.is_none());
            assert!(info.link_selection.is_none() && info.server_id_override.is_none());
        }
    }
    let keys = info.keys();
    let _ = keys.is_empty();
    for name in Extractor::BUILTINS {
        if let Some(x) = Extractor::builtin(name) {
            let _ = x.extract(&keys);
        }
    }
    if let Ok((_, x)) = Extractor::parse_slice(spec) {
        let _ = x.extract(&keys);
    }
});
