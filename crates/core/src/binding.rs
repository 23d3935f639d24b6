//! Binding events: who holds which address, from when to when. Billing export (Sonar, webhooks)
//! is fed from these, whether leased served the ACK itself or only relayed it.
//!
//! Pure data plus the pure rules that turn a packet or a lease change into an event; io emits
//! them, the export crate makes them durable and delivers them.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::lease::{HwAddr, Lease, LeaseState, Timestamp};

/// What happened to a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingKind {
    /// An ACK was served or relayed: the client holds the address until `expires`.
    Bound,
    /// The client gave the address back (RELEASE).
    Released,
    /// A server NAKed the client: whatever it held there is gone.
    Nak,
    /// The binding reached `expires` without renewal.
    Expired,
}

impl BindingKind {
    /// True for every kind that ends a binding (Sonar's `expired: true`).
    pub fn ends(self) -> bool {
        !matches!(self, Self::Bound)
    }
}

/// One binding event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingEvent {
    /// Start or end, and why.
    pub kind: BindingKind,
    /// Client hardware address (chaddr).
    pub mac: HwAddr,
    /// The address bound (or ended). For a NAK, the address the client asked for, if known.
    pub ip: Ipv4Addr,
    /// When it happened (Unix seconds).
    pub at: Timestamp,
    /// Lease time granted (option 51), for `Bound`.
    #[serde(default)]
    pub lease_time: Option<u32>,
    /// End of validity, for `Bound`.
    #[serde(default)]
    pub expires: Option<Timestamp>,
    /// Option 82 remote-id the binding came through.
    #[serde(default)]
    pub remote_id: Option<Vec<u8>>,
    /// Option 82 circuit-id the binding came through.
    #[serde(default)]
    pub circuit_id: Option<Vec<u8>>,
    /// Client host name (option 12).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Relay address the client is behind.
    #[serde(default)]
    pub giaddr: Option<Ipv4Addr>,
}

impl BindingEvent {
    /// The event a lease change stands for, if it is one export cares about: a binding made or
    /// renewed (`Bound`), given back (`Released`) or lapsed (`Expired`). Offers and declines are
    /// not bindings.
    pub fn from_lease(lease: &Lease, at: Timestamp, giaddr: Option<Ipv4Addr>) -> Option<Self> {
        let kind = match lease.state {
            LeaseState::Bound => BindingKind::Bound,
            LeaseState::Released => BindingKind::Released,
            LeaseState::Expired => BindingKind::Expired,
            LeaseState::Offered | LeaseState::Declined => return None,
        };
        let bound = kind == BindingKind::Bound;
        Some(Self {
            kind,
            mac: lease.hwaddr.clone(),
            ip: lease.ip,
            at,
            lease_time: bound
                .then(|| u32::try_from(lease.expires.0.saturating_sub(lease.starts.0)).ok())
                .flatten(),
            expires: bound.then_some(lease.expires),
            remote_id: lease.remote_id.clone(),
            circuit_id: lease.circuit_id.clone(),
            hostname: lease.hostname.clone(),
            giaddr: giaddr.filter(|g| !g.is_unspecified()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lease::ClientId;

    fn lease(state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, 10),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, 1]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, 1]),
            hostname: Some("cam".into()),
            state,
            starts: Timestamp(1000),
            expires: Timestamp(4600),
            first_seen: Timestamp(1000),
            circuit_id: Some(b"eth1".to_vec()),
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn lease_states_map_to_kinds() {
        let b = BindingEvent::from_lease(&lease(LeaseState::Bound), Timestamp(1000), None).unwrap();
        assert_eq!(b.kind, BindingKind::Bound);
        assert_eq!(b.lease_time, Some(3600));
        assert_eq!(b.expires, Some(Timestamp(4600)));
        assert_eq!(b.circuit_id.as_deref(), Some(&b"eth1"[..]));
        let r = BindingEvent::from_lease(
            &lease(LeaseState::Released),
            Timestamp(2000),
            Some(Ipv4Addr::new(198, 18, 1, 1)),
        )
        .unwrap();
        assert!(r.kind.ends());
        assert_eq!(r.expires, None);
        assert_eq!(r.giaddr, Some(Ipv4Addr::new(198, 18, 1, 1)));
        let e = BindingEvent::from_lease(&lease(LeaseState::Expired), Timestamp(5000), None);
        assert_eq!(e.unwrap().kind, BindingKind::Expired);
        assert!(
            BindingEvent::from_lease(&lease(LeaseState::Offered), Timestamp(0), None).is_none()
        );
        assert!(
            BindingEvent::from_lease(&lease(LeaseState::Declined), Timestamp(0), None).is_none()
        );
    }
}
