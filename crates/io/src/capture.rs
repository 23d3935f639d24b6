//! Binding capture in server mode: the lease changes and NAKs of each decision, and the
//! expiries of the timer, turned into [`BindingEvent`]s for the billing export.
//!
//! The engine calls [`decision`] and [`expiries`] and nothing else; when no sink is set (no
//! `[export]`) they cost one atomic load. The bindings an ACK makes come back as [`Acked`],
//! sent only once their commit succeeded: an ACK whose commit fails never leaves, so billing
//! must not hear of it either.

use leased_core::{BindingEvent, BindingKind, Event, HwAddr, LeaseChange, Timestamp};
use tokio::sync::mpsc::UnboundedSender;

use crate::shared::SharedState;

/// Bindings made or renewed by one decision, held back until the ACK is durable.
#[derive(Debug, Default)]
#[must_use = "send with `committed` once the commit succeeded, or drop"]
pub(crate) struct Acked {
    sink: Option<UnboundedSender<BindingEvent>>,
    events: Vec<BindingEvent>,
}

impl Acked {
    /// The commit succeeded: report the bindings.
    pub(crate) fn committed(self) {
        if let Some(sink) = self.sink {
            for ev in self.events {
                let _ = sink.send(ev);
            }
        }
    }
}

/// The events of one decision: the end of bindings released by `changes` and of a binding a
/// NAK announces (for the address the client asked for) are sent at once; the bindings made
/// or renewed are returned, to be sent with [`Acked::committed`] after their commit.
pub(crate) fn decision(
    shared: Option<&SharedState>,
    changes: &[LeaseChange],
    event: &Event,
    giaddr: std::net::Ipv4Addr,
    now: Timestamp,
) -> Acked {
    let Some(sink) = shared.and_then(|s| s.bindings.get()) else {
        return Acked::default();
    };
    let giaddr = Some(giaddr);
    let mut acked = Vec::new();
    for c in changes {
        if let Some(ev) = BindingEvent::from_lease(&c.lease, now, giaddr) {
            if ev.kind == BindingKind::Bound {
                acked.push(ev);
            } else {
                let _ = sink.send(ev);
            }
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
    Acked {
        sink: (!acked.is_empty()).then(|| sink.clone()),
        events: acked,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::time::Instant;

    use arc_swap::ArcSwap;
    use leased_core::{
        ClientId, Durability, Event, HwAddr, Lease, LeaseChange, LeaseState, NakReason, Plan,
        Timestamp,
    };
    use tokio::sync::mpsc;

    use crate::shared::{LeaseSnapshot, SharedState};

    fn shared() -> SharedState {
        let config = crate::testutil::config_with(&["198.18.0.0/24"], &["eth0"], &[Some("eth0")]);
        let (reload_tx, _rx) = mpsc::channel(1);
        SharedState {
            plan: Arc::new(ArcSwap::from_pointee(Plan::new(config.clone()))),
            leases: ArcSwap::from_pointee(LeaseSnapshot::default()),
            metrics: Arc::default(),
            source: crate::ConfigSource::Inline(config),
            reload_tx,
            started: Instant::now(),
            bindings: std::sync::OnceLock::new(),
            export_metrics: std::sync::OnceLock::new(),
            monitors: Default::default(),
        }
    }

    fn change(state: LeaseState, ip: u8) -> LeaseChange {
        LeaseChange {
            lease: Lease {
                ip: Ipv4Addr::new(198, 18, 0, ip),
                client_id: ClientId(vec![1, 2, 0, 0, 0, 0, 1]),
                hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
                hostname: None,
                state,
                starts: Timestamp(100),
                expires: Timestamp(160),
                first_seen: Timestamp(100),
                circuit_id: None,
                remote_id: Some(vec![2, 0, 0, 0, 0, 0xaa]),
                subscriber_id: None,
            },
            durability: Durability::BeforeReply,
        }
    }

    fn event(nak: Option<NakReason>, ip: Option<Ipv4Addr>) -> Event {
        Event {
            received: None,
            sent: None,
            xid: 1,
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            ip,
            hostname: None,
            nak,
            drop: None,
        }
    }

    #[test]
    fn decisions_and_expiries_become_binding_events() {
        let s = shared();
        // No sink: nothing happens (and nothing panics).
        super::decision(
            Some(&s),
            &[change(LeaseState::Bound, 10)],
            &event(None, None),
            Ipv4Addr::UNSPECIFIED,
            Timestamp(100),
        )
        .committed();
        let (tx, mut rx) = mpsc::unbounded_channel();
        assert!(s.set_binding_sink(tx.clone()));
        assert!(!s.set_binding_sink(tx));
        let gi = Ipv4Addr::new(198, 18, 1, 1);
        let acked = super::decision(
            Some(&s),
            &[
                change(LeaseState::Offered, 11),
                change(LeaseState::Bound, 10),
            ],
            &event(None, None),
            gi,
            Timestamp(100),
        );
        assert!(rx.try_recv().is_err(), "a binding waits for its commit");
        acked.committed();
        let b = rx.try_recv().unwrap();
        assert_eq!(
            (b.kind, b.ip.octets()[3], b.lease_time),
            (leased_core::BindingKind::Bound, 10, Some(60))
        );
        assert_eq!(b.giaddr, Some(gi));
        assert_eq!(b.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 0xaa][..]));
        assert!(rx.try_recv().is_err(), "offers are not bindings");
        // A commit that fails drops the held binding: nothing is reported.
        drop(super::decision(
            Some(&s),
            &[change(LeaseState::Bound, 14)],
            &event(None, None),
            gi,
            Timestamp(100),
        ));
        assert!(rx.try_recv().is_err());
        let _ = super::decision(
            Some(&s),
            &[],
            &event(
                Some(NakReason::WrongSubnet),
                Some(Ipv4Addr::new(198, 18, 0, 10)),
            ),
            Ipv4Addr::UNSPECIFIED,
            Timestamp(120),
        );
        let n = rx.try_recv().unwrap();
        assert_eq!((n.kind, n.giaddr), (leased_core::BindingKind::Nak, None));
        let _ = super::decision(
            Some(&s),
            &[change(LeaseState::Released, 10)],
            &event(None, None),
            gi,
            Timestamp(130),
        );
        assert_eq!(
            rx.try_recv().unwrap().kind,
            leased_core::BindingKind::Released
        );
        super::expiries(
            Some(&s),
            &[
                change(LeaseState::Expired, 12),
                change(LeaseState::Declined, 13),
            ],
            Timestamp(200),
        );
        let e = rx.try_recv().unwrap();
        assert_eq!(
            (e.kind, e.ip.octets()[3]),
            (leased_core::BindingKind::Expired, 12)
        );
        assert!(rx.try_recv().is_err());
        super::expiries(None, &[change(LeaseState::Expired, 12)], Timestamp(200));
    }
}
