//! The wall clock as the core counts it: the API's one clock read (views, counts and metrics
//! judge leases at the time of the request).

use std::time::{SystemTime, UNIX_EPOCH};

use leased_core::Timestamp;

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}
