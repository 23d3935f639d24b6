//! One log line per event, at target `leased::event`, with structured fields so that the JSON
//! formatter (set up by the binary) gives one JSON object per event.
//!
//! The received line names what came in (`DISCOVER mac=.. xid=..`); the sent line is written
//! only once the reply really left (an ACK after its commit), so the log never claims an ACK
//! that a crash could take back.

use std::net::Ipv4Addr;

use leased_core::{DropReason, Event, Lease, LeaseState};
use leased_wire::MessageType;

/// The tracing target of every event line; operators filter on it.
pub(crate) const TARGET: &str = "leased::event";

/// `xid` as operators see it in packet captures: `0x` and eight hex digits.
pub(crate) struct Xid(pub u32);

impl std::fmt::Display for Xid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// The request line: `DISCOVER mac=.. xid=.. hostname=..`.
pub(crate) fn received(ev: &Event, iface: Option<&str>) {
    let Some(t) = ev.received else {
        tracing::debug!(
            target: TARGET,
            mac = %ev.hwaddr, xid = %Xid(ev.xid), iface = iface.map(display),
            "request without a known message type"
        );
        return;
    };
    // For a DISCOVER, `ip` is what we will offer: that belongs on the OFFER line.
    let ip = (t != MessageType::Discover).then_some(ev.ip).flatten();
    tracing::info!(
        target: TARGET,
        mac = %ev.hwaddr,
        xid = %Xid(ev.xid),
        ip = ip.map(display),
        hostname = ev.hostname.as_deref().map(display),
        iface = iface.map(display),
        "{}",
        t.name()
    );
}

/// The reply line, once the reply has left: `OFFER ip=.. mac=.. xid=..`, `NAK reason=..`.
pub(crate) fn sent(ev: &Event, sent: Option<MessageType>, yiaddr: Ipv4Addr) {
    let name = sent.map_or("REPLY", MessageType::name);
    if sent == Some(MessageType::Nak) {
        tracing::info!(
            target: TARGET,
            mac = %ev.hwaddr,
            xid = %Xid(ev.xid),
            ip = ev.ip.map(display),
            reason = ev.nak.map_or("unspecified", |n| n.text()),
            "{name}"
        );
        return;
    }
    let ip = if yiaddr.is_unspecified() {
        ev.ip
    } else {
        Some(yiaddr)
    };
    tracing::info!(
        target: TARGET,
        ip = ip.map(display),
        mac = %ev.hwaddr,
        xid = %Xid(ev.xid),
        "{name}"
    );
}

/// Why a request got no reply. `subnet` names the subnet when known (for pool exhaustion).
pub(crate) fn dropped(ev: &Event, reason: DropReason, subnet: Option<&str>) {
    match reason {
        // RELEASE and DECLINE: the request line already said everything.
        DropReason::NoReplyNeeded => {}
        DropReason::BannedClient => tracing::info!(
            target: TARGET,
            mac = %ev.hwaddr,
            xid = %Xid(ev.xid),
            reason = reason.label(),
            "banned client"
        ),
        DropReason::PoolExhausted => {
            let subnet = subnet.unwrap_or("?");
            tracing::warn!(
                target: TARGET,
                mac = %ev.hwaddr,
                xid = %Xid(ev.xid),
                subnet,
                reason = reason.label(),
                "pool exhausted for subnet {subnet}: no OFFER"
            );
        }
        _ => tracing::info!(
            target: TARGET,
            mac = %ev.hwaddr,
            xid = %Xid(ev.xid),
            ip = ev.ip.map(display),
            reason = reason.label(),
            "DROP"
        ),
    }
}

/// A reply whose lease did not become durable: not sent, the client will retry.
pub(crate) fn commit_failed(ev: &Event, sent: Option<MessageType>, error: &dyn std::fmt::Display) {
    tracing::error!(
        target: TARGET,
        mac = %ev.hwaddr,
        xid = %Xid(ev.xid),
        ip = ev.ip.map(display),
        error = %error,
        reason = "store_error",
        "{} not sent: lease store commit failed",
        sent.map_or("reply", MessageType::name)
    );
}

/// A lease change made by the expiry timer.
pub(crate) fn expired(lease: &Lease) {
    match lease.state {
        LeaseState::Expired => tracing::info!(
            target: TARGET,
            ip = %lease.ip,
            mac = %lease.hwaddr,
            "EXPIRE"
        ),
        other => tracing::debug!(
            target: TARGET,
            ip = %lease.ip,
            mac = %lease.hwaddr,
            state = ?other,
            "lease timer"
        ),
    }
}
