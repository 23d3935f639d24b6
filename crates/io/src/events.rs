//! One log line per event, at target `leased::event`, with structured fields so that the JSON
//! formatter (set up by the binary) gives one JSON object per event.
//!
//! The received line names what came in (`DISCOVER mac=.. xid=..`); the sent line is written
//! only once the reply really left (an ACK after its commit), so the log never claims an ACK
//! that a crash could take back.

use std::net::Ipv4Addr;

use leased_core::relay::to_hex;
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
///
/// `relay`: the request's Option 82, read for `circuit_limit` so the line names the circuit
/// (circuit-id and remote-id in hex) that hit its cap.
pub(crate) fn dropped(
    ev: &Event,
    reason: DropReason,
    subnet: Option<&str>,
    relay: Option<&leased_core::RelayInfo>,
) {
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
        DropReason::CircuitLimit => {
            let hex = |v: Option<&Vec<u8>>| v.map_or_else(|| "-".into(), |b| to_hex(b));
            tracing::info!(
                target: TARGET,
                mac = %ev.hwaddr,
                xid = %Xid(ev.xid),
                circuit_id = %hex(relay.and_then(|r| r.circuit_id.as_ref())),
                remote_id = %hex(relay.and_then(|r| r.remote_id.as_ref())),
                reason = reason.label(),
                "DROP"
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use leased_core::{DropReason, Event, HwAddr, RelayInfo};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The `circuit_limit` line names the circuit that hit its cap, in hex.
    #[test]
    fn circuit_limit_line_has_circuit_and_remote_id() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        let ev = Event {
            received: None,
            sent: None,
            xid: 7,
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            ip: None,
            hostname: None,
            nak: None,
            drop: Some(DropReason::CircuitLimit),
        };
        // Option 82: circuit-id "eth1" (65 74 68 31), remote-id 02:00:00:00:00:aa.
        let info = RelayInfo::parse(&[1, 4, b'e', b't', b'h', b'1', 2, 6, 2, 0, 0, 0, 0, 0xaa]);
        tracing::subscriber::with_default(sub, || {
            super::dropped(&ev, DropReason::CircuitLimit, None, Some(&info));
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("circuit_id=65746831"), "{out}");
        assert!(out.contains("remote_id=0200000000aa"), "{out}");
        assert!(out.contains("reason=\"circuit_limit\""), "{out}");
    }
}
