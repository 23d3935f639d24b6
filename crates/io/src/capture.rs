//! Binding capture in server mode: the lease changes and NAKs of each decision, and the
//! expiries of the timer, turned into [`BindingEvent`]s for the billing export.
//!
//! The engine calls [`decision`] and [`expiries`] and nothing else; when no sink is set (no
//! `[export]`) they cost one atomic load.

use leased_core::{BindingEvent, BindingKind, Event, HwAddr, LeaseChange, Timestamp};

use crate::shared::SharedState;

/// The events of one decision: bindings made, renewed or released by `changes`, and the end
/// of a binding a NAK announces (for the address the client asked for).
pub(crate) fn decision(
    shared: Option<&SharedState>,
    changes: &[LeaseChange],
    event: &Event,
    giaddr: std::net::Ipv4Addr,
    now: Timestamp,
) {
    let Some(sink) = shared.and_then(|s| s.bindings.get()) else {
        return;
    };
    let giaddr = Some(giaddr);
    for c in changes {
        if let Some(ev) = BindingEvent::from_lease(&c.lease, now, giaddr) {
            let _ = sink.send(ev);
        }
    }
    if event.nak.is_some()
        && let Some(ip) = event.ip
    {
        let _ = sink.send(BindingEvent {
            kind: BindingKind::Nak,
            mac: HwAddr(event.hwaddr.0.clone()),
            ip,
            at: now,
            lease_time: None,
            expires: None,
            remote_id: None,
            circuit_id: None,
            hostname: None,
            giaddr: giaddr.filter(|g| !g.is_unspecified()),
        });
    }
}

/// The events of a timer run: every binding that lapsed.
pub(crate) fn expiries(shared: Option<&SharedState>, changes: &[LeaseChange], now: Timestamp) {
    let Some(sink) = shared.and_then(|s| s.bindings.get()) else {
        return;
    };
    for c in changes {
        if c.lease.state == leased_core::LeaseState::Expired
            && let Some(ev) = BindingEvent::from_lease(&c.lease, now, None)
        {
            let _ = sink.send(ev);
        }
    }
}
