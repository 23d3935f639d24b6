//! What the HA state machine reads from `[ha]`, as the config crate hands it over. Defined here,
//! beside the rules that read it; the config crate parses and checks it (and keeps the transport's
//! TLS paths and key, which this crate never sees).

use std::net::SocketAddr;
use std::time::Duration;

/// How the two servers share the clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaMode {
    /// The primary serves every client; the standby only takes over once the primary is gone.
    HotStandby,
    /// Each server serves the clients of its RFC 3074 hash buckets; one serves all when its
    /// partner is gone.
    LoadBalancing,
}

impl HaMode {
    /// The name used in the config file and in logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::HotStandby => "hot-standby",
            Self::LoadBalancing => "load-balancing",
        }
    }
}

/// A server's part in its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves every client in hot-standby, the even buckets in load-balancing.
    Primary,
    /// Serves the odd buckets in load-balancing.
    Secondary,
    /// Serves nothing in hot-standby until its partner is down.
    Standby,
}

impl Role {
    /// The name used in the config file and in logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
            Self::Standby => "standby",
        }
    }
}

/// One server of the pair, as both servers' configs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its name, unique in the pair; the partner's hello must carry it.
    pub name: String,
    /// Where its partner link listens (the transport's business; kept for status output).
    pub address: SocketAddr,
    /// Its part.
    pub role: Role,
}

/// The HA settings the state machine runs on. Both servers must agree on the mode and the
/// peers ([`HaConfig::config_version`] is compared in the hello); the timers may differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// Hot-standby or load-balancing.
    pub mode: HaMode,
    /// Which of `peers` this server is.
    pub this_server: String,
    /// Exactly two: this server and its partner.
    pub peers: Vec<Peer>,
    /// How often a heartbeat goes to the partner when nothing else did.
    pub heartbeat_delay: Duration,
    /// With no message from the partner for this long (or an update unacknowledged for this
    /// long), communication is interrupted: failure detection starts and ACKs stop waiting for
    /// the partner.
    pub max_response_delay: Duration,
    /// A client whose `secs` field exceeds this has waited too long for an answer: it counts as
    /// unacknowledged by the partner (Kea's `max-ack-delay`).
    pub max_ack_delay: Duration,
    /// Partner-down needs more than this many distinct unacknowledged clients while
    /// communication is interrupted (0: one is enough; never zero clients).
    pub max_unacked_clients: u32,
    /// Most leases in one bulk-sync page.
    pub sync_page_limit: u32,
    /// Most lease changes kept for the partner (queued and unacknowledged). Beyond it the queue
    /// is dropped and the partner is told to sync from us instead.
    pub update_queue_limit: u32,
}

impl HaConfig {
    /// This server's entry, when `this_server` names one.
    pub fn me(&self) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == self.this_server)
    }

    /// The partner's entry: the one peer that is not this server.
    pub fn partner(&self) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name != self.this_server)
    }

    /// The value both servers compare in their hello: the mode and every peer's name and role,
    /// in a fixed order, hashed (FNV-1a). Timers and addresses are left out, so that one can be
    /// tuned on one box at a time; a partner with another mode or pair is refused.
    pub fn config_version(&self) -> u32 {
        let mut peers: Vec<(&str, Role)> = self
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.role))
            .collect();
        peers.sort_by(|a, b| a.0.cmp(b.0));
        let mut h: u32 = 0x811c_9dc5;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u32::from(*b);
                h = h.wrapping_mul(0x0100_0193);
            }
        };
        eat(self.mode.label().as_bytes());
        for (name, role) in peers {
            eat(&[0]);
            eat(name.as_bytes());
            eat(&[0]);
            eat(role.label().as_bytes());
        }
        h
    }
}

impl Default for HaConfig {
    /// Kea's defaults for the timers; a hot-standby pair named `a` (primary) and `b`.
    fn default() -> Self {
        Self {
            mode: HaMode::HotStandby,
            this_server: "a".into(),
            peers: vec![
                Peer {
                    name: "a".into(),
                    address: SocketAddr::from(([198, 18, 0, 1], 8647)),
                    role: Role::Primary,
                },
                Peer {
                    name: "b".into(),
                    address: SocketAddr::from(([198, 18, 0, 2], 8647)),
                    role: Role::Standby,
                },
            ],
            heartbeat_delay: Duration::from_secs(10),
            max_response_delay: Duration::from_secs(60),
            max_ack_delay: Duration::from_secs(10),
            max_unacked_clients: 10,
            sync_page_limit: 10_000,
            update_queue_limit: 10_000,
        }
    }
}
