//! [`HaState`]: the states of one server of a pair, and their bytes on the wire.

/// Where a server is in its life as half of a pair (Kea's HA states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaState {
    /// Started, or lost its partner before it was in step: serves nothing, waits for the
    /// partner (or for clients' evidence that the partner is gone).
    Waiting,
    /// Fetching the partner's lease table page by page; serves nothing.
    Syncing,
    /// In step with the partner and waiting for it to take up its role; serves nothing.
    Ready,
    /// Normal operation in hot-standby: the primary serves all, the standby none.
    HotStandby,
    /// Normal operation in load-balancing: each serves its own buckets.
    LoadBalancing,
    /// The partner is gone: this server serves every client.
    PartnerDown,
    /// An operator took this server out of service: it serves nothing.
    InMaintenance,
    /// The partner is in maintenance: this server serves every client, with no delay.
    PartnerInMaintenance,
    /// The clocks are too far apart: each serves its normal scope, nothing is replicated,
    /// until an operator restarts it.
    Terminated,
}

impl HaState {
    const ALL: [Self; 9] = [
        Self::Waiting,
        Self::Syncing,
        Self::Ready,
        Self::HotStandby,
        Self::LoadBalancing,
        Self::PartnerDown,
        Self::InMaintenance,
        Self::PartnerInMaintenance,
        Self::Terminated,
    ];

    /// The state's name in logs, metrics and status output (Kea's names).
    pub fn label(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Syncing => "syncing",
            Self::Ready => "ready",
            Self::HotStandby => "hot-standby",
            Self::LoadBalancing => "load-balancing",
            Self::PartnerDown => "partner-down",
            Self::InMaintenance => "in-maintenance",
            Self::PartnerInMaintenance => "partner-in-maintenance",
            Self::Terminated => "terminated",
        }
    }

    /// Its byte on the wire.
    pub(crate) fn code(self) -> u8 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as u8
    }

    /// The state of a wire byte.
    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Self::ALL.get(usize::from(c)).copied()
    }

    /// The pair's normal operation (hot-standby or load-balancing), where ACKs wait for the
    /// partner.
    pub(crate) fn is_normal(self) -> bool {
        matches!(self, Self::HotStandby | Self::LoadBalancing)
    }
}
