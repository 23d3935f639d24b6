//! The config loader on arbitrary JSON text (the same schema as TOML): never panics; every error names a place; what it
//! accepts builds a plan (the server's first step after loading).
#![no_main]

use leased_core::Plan;
use leased_config::{Format, load_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(text, "fuzz.json", Format::Json) {
        Ok(config) => {
            let _ = Plan::new(config.network);
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
});
