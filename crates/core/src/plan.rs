//! The address plan: a validated [`Config`] plus the indexes decisions need to be fast
//! (reservations by client and by address, subnet lookup). Built once per config load/reload.

use crate::config::Config;

/// Config plus lookup indexes. io builds one per (re)load and swaps it atomically.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The validated configuration this plan was built from.
    pub config: Config,
    // core helper: indexes (reservations by key / by ip, subnet lookup, …)
}

impl Plan {
    /// Builds the indexes for `config`. Infallible: the loader already validated it.
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}
