//! The one entry point: packet + config + leases + time → reply + lease changes.

use crate::decision::Decision;
use crate::lease::{LeaseTable, Timestamp};
use crate::plan::Plan;
use crate::request::Request;

/// Decides the reply to one request. Pure: same inputs, same output.
///
/// `now` must not go backwards between calls on one table (io samples it once per packet).
pub fn decide(req: &Request, plan: &Plan, leases: &LeaseTable, now: Timestamp) -> Decision {
    let _ = (req, plan, leases, now);
    unimplemented!("core helper implements this")
}
