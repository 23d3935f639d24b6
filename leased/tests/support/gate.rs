//! Skip-or-fail gating: these tests need root and real peer binaries. On a developer machine
//! without them a test prints `SKIP: reason` and passes; with `CI=true` a missing prerequisite
//! is a failure, because CI is supposed to have everything installed.

use super::proc::find_bin;

/// Binaries every namespaced test needs.
pub const BASE_BINS: &[&str] = &["ip", "ss", "sysctl"];

/// Returns true when the test may run. Otherwise prints `SKIP: …` and returns false, or panics
/// when `CI=true`.
pub fn require(test: &str, bins: &[&str]) -> bool {
    let mut why = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        why.push("not running as root (network namespaces need root)".to_string());
    }
    let missing: Vec<&str> = BASE_BINS
        .iter()
        .chain(bins)
        .copied()
        .filter(|b| find_bin(b).is_none())
        .collect();
    if !missing.is_empty() {
        why.push(format!("missing binaries: {}", missing.join(", ")));
    }
    if why.is_empty() {
        return true;
    }
    let reason = why.join("; ");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: prerequisites missing under CI=true: {reason}");
    }
    eprintln!("SKIP: {test}: {reason}");
    false
}

/// `if !gate!(…) { return; }` with the current function's name as the test name.
#[macro_export]
macro_rules! gate {
    ($($bin:expr),* $(,)?) => {{
        fn __f() {}
        let name = ::std::any::type_name_of_val(&__f).trim_end_matches("::__f");
        $crate::support::gate::require(name, &[$($bin),*])
    }};
}
