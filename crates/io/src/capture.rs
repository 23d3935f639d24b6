//! Binding capture in server mode: each durable lease event of the engine, as a
//! [`BindingEvent`] for the billing export. The engine emits an event only once its change is
//! durable (an ACK whose commit failed never left, so billing never hears of it), so this is a
//! plain translation; with no sink set (no `[export]`) it costs one atomic load.

use leased_core::{BindingEvent, BindingKind};
use leased_engine::{LeaseEvent, LeaseEventKind};

use crate::shared::SharedState;

/// The billing view of `ev`: a binding made, renewed, released, expired, or a NAK (which ends
/// a binding the client thought it had); a DECLINE is none of these.
pub(crate) fn binding_of(ev: &LeaseEvent) -> Option<BindingEvent> {
    match ev.kind {
        LeaseEventKind::Nak => (!ev.ip.is_unspecified()).then(|| BindingEvent {
            kind: BindingKind::Nak,
            mac: ev.hwaddr.clone(),
            ip: ev.ip,
            at: ev.at,
            lease_time: None,
            expires: None,
            remote_id: None,
            circuit_id: None,
            hostname: None,
            giaddr: ev.giaddr,
        }),
        _ => ev
            .lease
            .as_ref()
            .and_then(|l| BindingEvent::from_lease(l, ev.at, ev.giaddr)),
    }
}

/// Reports `ev` to the export, if one listens.
pub(crate) fn lease_event(shared: Option<&SharedState>, ev: &LeaseEvent) {
    let Some(sink) = shared.and_then(|s| s.bindings.get()) else {
        return;
    };
    if let Some(b) = binding_of(ev) {
        let _ = sink.send(b);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use leased_core::{BindingKind, ClientId, HwAddr, Lease, LeaseState, Timestamp};
    use leased_engine::{LeaseEvent, LeaseEventKind};

    use super::binding_of;

    fn event(kind: LeaseEventKind, state: Option<LeaseState>) -> LeaseEvent {
        let lease = state.map(|state| Lease {
            ip: Ipv4Addr::new(198, 18, 0, 10),
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
        });
        LeaseEvent {
            kind,
            at: Timestamp(100),
            ip: Ipv4Addr::new(198, 18, 0, 10),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, 1]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            hostname: None,
            circuit_id: None,
            remote_id: Some(vec![2, 0, 0, 0, 0, 0xaa]),
            giaddr: Some(Ipv4Addr::new(198, 18, 1, 1)),
            lease,
            vars: None,
            client_fqdn: None,
        }
    }

    #[test]
    fn lease_events_become_binding_events() {
        let b = binding_of(&event(LeaseEventKind::AckNew, Some(LeaseState::Bound))).unwrap();
        assert_eq!((b.kind, b.lease_time), (BindingKind::Bound, Some(60)));
        assert_eq!(b.giaddr, Some(Ipv4Addr::new(198, 18, 1, 1)));
        assert_eq!(b.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 0xaa][..]));
        let r = binding_of(&event(LeaseEventKind::Release, Some(LeaseState::Released))).unwrap();
        assert_eq!(r.kind, BindingKind::Released);
        let e = binding_of(&event(LeaseEventKind::Expire, Some(LeaseState::Expired))).unwrap();
        assert_eq!(e.kind, BindingKind::Expired);
        assert!(binding_of(&event(LeaseEventKind::Decline, Some(LeaseState::Declined))).is_none());
        let n = binding_of(&event(LeaseEventKind::Nak, None)).unwrap();
        assert_eq!(n.kind, BindingKind::Nak);
        let mut unknown = event(LeaseEventKind::Nak, None);
        unknown.ip = Ipv4Addr::UNSPECIFIED;
        assert!(
            binding_of(&unknown).is_none(),
            "a NAK for no address ends nothing"
        );
    }
}
