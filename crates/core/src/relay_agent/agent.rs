//! [`RelayAgent`]: what `leased relay` decides about each datagram, and what it remembers
//! between a request and its replies.
//!
//! Calling order for the driver: build the agent once from the settings ([`AgentConfig`]);
//! for every datagram read call [`RelayAgent::handle_client`] (a client-facing link's socket)
//! or [`RelayAgent::handle_upstream`] (the upstream socket) with the time; then drain
//! [`RelayAgent::poll_event`] (billing, counters, logs) and [`RelayAgent::poll_transmit`]
//! (sends). The agent never reads a clock: `now` is a parameter, its `mono` part only ever
//! compared with earlier `mono` values.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use hashlink::LruCache;
use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Packet};

use super::rewrite::{
    AgentLink, AgentPolicy, RelayDrop, binding_from_reply, option82_value, relay_reply,
    relay_request, requested_address, rewrite_server_id, server_id,
};
use crate::binding::{BindingEvent, BindingKind};
use crate::decision::Route;
use crate::lease::{HwAddr, Timestamp};
use crate::relay::RelayInfo;
use crate::relay_auth;

/// How many clients (and, separately, requests in flight and rewritten server identifiers) the
/// agent remembers unless told otherwise. The least recently used entry makes room for a new
/// one, so a flood of new clients costs O(1) per packet and evicts the oldest memories, never
/// the whole table.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// How long after a request a reply to it (same xid and chaddr) is accepted. Servers answer in
/// milliseconds; several upstreams may answer one request, so the entry is not removed on the
/// first reply.
pub const REPLY_WINDOW: Duration = Duration::from_secs(30);

/// The time, as the driver read it: the agent has no clock of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Since the Unix epoch: binding times (seconds) and the RFC 4030 replay counter
    /// (nanoseconds, so that it keeps rising across restarts).
    pub wall: Duration,
    /// A monotonic clock (any origin): the reply window, immune to clock steps.
    pub mono: Duration,
}

impl Now {
    fn timestamp(self) -> Timestamp {
        Timestamp(self.wall.as_secs())
    }
}

/// One datagram as a socket read it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The sender, when the socket said: only listed upstreams are believed.
    pub src: Option<SocketAddrV4>,
    /// The destination address (IP_PKTINFO), when known.
    pub dst: Option<Ipv4Addr>,
    /// The DHCP message.
    pub bytes: &'a [u8],
}

/// One client-facing link as the relay presents it to servers; resolved by the driver at start
/// (addresses and templates need the system), then owned by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Our address on the link: giaddr of its requests, and how its replies are recognised.
    pub address: Ipv4Addr,
    /// Sub-option 1 of our Option 82 (already expanded).
    pub circuit_id: Vec<u8>,
    /// Sub-option 2 of our Option 82 (already expanded).
    pub remote_id: Vec<u8>,
}

/// Everything the agent is built from: `[relay]` with the links resolved.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The client-facing links, in the driver's order: [`RelayAgent::handle_client`]'s `link`
    /// and a delivery's `link` index this list.
    pub links: Vec<LinkConfig>,
    /// The servers every request goes to, and the only sources whose replies are believed.
    pub upstreams: Vec<Ipv4Addr>,
    /// How requests are rewritten.
    pub policy: AgentPolicy,
    /// Replies name us as their server (option 54), and requests naming us get the real one
    /// back, so that unicast renewals, releases and declines come through the relay.
    pub rewrite_server_id: bool,
    /// RFC 4030: sign every request carrying our Option 82 with this key.
    pub auth_key: Option<Vec<u8>>,
    /// The bound of each table (clients, requests in flight, rewritten server identifiers).
    pub capacity: usize,
}

/// A datagram the agent wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a transmit the agent released must be sent"]
pub enum Transmit {
    /// A client's request, rewritten, to every listed upstream (each its own send, so that
    /// one that is down costs only its own copy).
    Upstream {
        /// The link the request came in on, for logs.
        link: usize,
        /// The servers (port 67) it goes to.
        to: Arc<[Ipv4Addr]>,
        /// The datagram.
        bytes: Vec<u8>,
        /// Option 53 of the request, to name it in logs.
        message_type: Option<MessageType>,
    },
    /// A server's reply, Option 82 removed, for a client on one of our links.
    Client {
        /// The link (index into [`AgentConfig::links`]) it leaves on.
        link: usize,
        /// Where on that link (RFC 1542 §4.1.2).
        route: Route,
        /// The datagram.
        bytes: Vec<u8>,
        /// Option 53 of the reply, to name it in logs.
        message_type: Option<MessageType>,
    },
}

/// Something that happened, for billing, counters and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// A binding seen in relayed traffic (an upstream's ACK or NAK, a client's RELEASE), for
    /// export.
    Binding(BindingEvent),
    /// A datagram not relayed, and why.
    Dropped {
        /// Why; one metric label each.
        reason: RelayDrop,
        /// The client-facing link it came in on; `None` from the upstream side.
        link: Option<usize>,
        /// Its sender, when known.
        src: Option<SocketAddrV4>,
        /// Its transaction id, when it has one, to find it in a capture.
        xid: Option<u32>,
    },
    /// An Option 82 hidden in the overloaded `file`/`sname` fields of a request was blanked.
    HiddenOption82Blanked {
        /// The link it came in on.
        link: usize,
    },
    /// A request is forwarded without our Option 82 because it did not fit (RFC 3046 §2.1).
    Option82DidNotFit {
        /// The link it came in on.
        link: usize,
    },
    /// With an `auth_key`: a request is forwarded unsigned (no Option 82 of ours in it).
    Unsigned {
        /// The link it came in on.
        link: usize,
    },
}

/// What the relay remembers of a client between its request and the server's reply.
#[derive(Debug, Default, Clone)]
struct Memo {
    hostname: Option<String>,
    requested: Option<Ipv4Addr>,
}

/// The relay agent's state and decisions, sans IO.
#[derive(Debug)]
pub struct RelayAgent {
    links: Vec<LinkConfig>,
    upstreams: Arc<[Ipv4Addr]>,
    policy: AgentPolicy,
    rewrite_sid: bool,
    auth_key: Option<Vec<u8>>,
    /// The last RFC 4030 replay counter used.
    auth_counter: u64,
    /// Requests forwarded, by (xid, chaddr): when each was last seen (`Now::mono`).
    in_flight: LruCache<(u32, [u8; 16]), Duration>,
    /// By chaddr.
    memo: LruCache<Vec<u8>, Memo>,
    /// The real server behind each (chaddr, address) we answered for as ourselves.
    server_ids: LruCache<(Vec<u8>, Ipv4Addr), Ipv4Addr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RelayEvent>,
}

/// The transaction id of a datagram too broken to decode, when its header has one.
fn raw_xid(bytes: &[u8]) -> Option<u32> {
    bytes
        .get(4..8)
        .and_then(|x| <[u8; 4]>::try_from(x).ok())
        .map(u32::from_be_bytes)
}

impl RelayAgent {
    /// An agent with empty tables. A capacity of 0 is taken as 1: the tables are bounded, never
    /// absent.
    pub fn new(config: AgentConfig) -> Self {
        let cap = config.capacity.max(1);
        Self {
            links: config.links,
            upstreams: config.upstreams.into(),
            policy: config.policy,
            rewrite_sid: config.rewrite_server_id,
            auth_key: config.auth_key,
            auth_counter: 0,
            in_flight: LruCache::new(cap),
            memo: LruCache::new(cap),
            server_ids: LruCache::new(cap),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A datagram read on client-facing link `link`: a request is rewritten and queued for
    /// every upstream; a reply (a server sitting on a client link) is believed only from a
    /// listed upstream. Anything else is not DHCP for a relay and is ignored.
    pub fn handle_client(&mut self, now: Now, link: usize, rx: Received<'_>) {
        match rx.bytes.first() {
            Some(&BOOTREQUEST) => self.on_request(now, link, rx.bytes),
            Some(&BOOTREPLY) if self.listed(rx.src) => self.on_reply(now, rx.bytes),
            Some(&BOOTREPLY) => self.dropped(RelayDrop::NotFromUpstream, Some(link), &rx),
            _ => {}
        }
    }

    /// A datagram read on the upstream socket. That socket is unbound, so client broadcasts
    /// reach it too (their link's socket handles them): only unicast replies count here, and
    /// only from a listed upstream.
    pub fn handle_upstream(&mut self, now: Now, rx: Received<'_>) {
        if rx.bytes.first() != Some(&BOOTREPLY) || rx.dst == Some(Ipv4Addr::BROADCAST) {
            return;
        }
        if self.listed(rx.src) {
            self.on_reply(now, rx.bytes);
        } else {
            self.dropped(RelayDrop::NotFromUpstream, None, &rx);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// How many entries each table holds: (clients, requests in flight, server identifiers).
    /// For tests and status; each is at most the configured capacity.
    pub fn table_sizes(&self) -> (usize, usize, usize) {
        (self.memo.len(), self.in_flight.len(), self.server_ids.len())
    }

    fn listed(&self, src: Option<SocketAddrV4>) -> bool {
        src.is_some_and(|s| self.upstreams.contains(s.ip()))
    }

    fn dropped(&mut self, reason: RelayDrop, link: Option<usize>, rx: &Received<'_>) {
        self.events.push_back(RelayEvent::Dropped {
            reason,
            link,
            src: rx.src,
            xid: raw_xid(rx.bytes),
        });
    }

    fn drop_bytes(&mut self, reason: RelayDrop, link: Option<usize>, bytes: &[u8]) {
        self.events.push_back(RelayEvent::Dropped {
            reason,
            link,
            src: None,
            xid: raw_xid(bytes),
        });
    }

    /// The next RFC 4030 replay counter: the wall clock in nanoseconds, and always above the
    /// previous one, so that it keeps rising across restarts (the server remembers the last
    /// one it accepted) as long as the clock does not go back.
    fn next_counter(&mut self, now: Now) -> u64 {
        let wall = u64::try_from(now.wall.as_nanos()).unwrap_or(u64::MAX);
        self.auth_counter = wall.max(self.auth_counter.saturating_add(1));
        self.auth_counter
    }

    fn on_request(&mut self, now: Now, i: usize, data: &[u8]) {
        let signature = self.auth_key.is_some().then(|| self.next_counter(now));
        let Some(link) = self.links.get(i) else {
            return self.drop_bytes(RelayDrop::UnknownLink, Some(i), data);
        };
        let address = link.address;
        let agent = AgentLink {
            address,
            circuit_id: &link.circuit_id,
            remote_id: &link.remote_id,
            signature,
        };
        let mut fwd = match relay_request(data, &agent, &self.policy) {
            Ok(f) => f,
            Err(why) => return self.drop_bytes(why, Some(i), data),
        };
        if fwd.scrubbed_overload {
            self.events
                .push_back(RelayEvent::HiddenOption82Blanked { link: i });
        }
        if fwd.did_not_fit {
            self.events
                .push_back(RelayEvent::Option82DidNotFit { link: i });
        }
        let requested = requested_address(data);
        // relay_request decoded it already; this cannot fail, and costs nothing to check.
        let Ok(p) = Packet::decode(data) else {
            return self.drop_bytes(RelayDrop::Malformed, Some(i), data);
        };
        let chaddr = p.chaddr().to_vec();
        self.in_flight.insert((p.xid, p.chaddr), now.mono);
        let mut m = self.memo.remove(&chaddr).unwrap_or_default();
        if fwd.hostname.is_some() {
            m.hostname.clone_from(&fwd.hostname);
        }
        if requested.is_some() {
            m.requested = requested;
        }
        self.memo.insert(chaddr.clone(), m);
        if fwd.message_type == Some(MessageType::Release) && !p.ciaddr.is_unspecified() {
            self.events.push_back(RelayEvent::Binding(BindingEvent {
                kind: BindingKind::Released,
                mac: HwAddr(chaddr.clone()),
                ip: p.ciaddr,
                at: now.timestamp(),
                lease_time: None,
                expires: None,
                remote_id: None,
                circuit_id: None,
                hostname: None,
                giaddr: Some(address),
            }));
        }
        // A request naming us as its server (we rewrote option 54) gets the real one back.
        if self.rewrite_sid && server_id(&fwd.bytes) == Some(address) {
            let key = (chaddr, requested.unwrap_or(Ipv4Addr::UNSPECIFIED));
            if let Some(real) = self.server_ids.peek(&key).copied() {
                rewrite_server_id(&mut fwd.bytes, Some(address), real);
            }
        }
        // Signed last: nothing may change the bytes after the MAC (option 54 above did).
        if let Some(key) = &self.auth_key
            && !(fwd.inserted && relay_auth::sign(&mut fwd.bytes, key))
        {
            self.events.push_back(RelayEvent::Unsigned { link: i });
        }
        self.transmits.push_back(Transmit::Upstream {
            link: i,
            to: Arc::clone(&self.upstreams),
            bytes: fwd.bytes,
            message_type: fwd.message_type,
        });
    }

    /// True when `p` answers a request forwarded within [`REPLY_WINDOW`] of `now`.
    fn answers_in_flight(&mut self, now: Now, p: &Packet) -> bool {
        self.in_flight
            .get(&(p.xid, p.chaddr))
            .is_some_and(|at| now.mono.saturating_sub(*at) <= REPLY_WINDOW)
    }

    fn on_reply(&mut self, now: Now, data: &[u8]) {
        let p = match Packet::decode(data) {
            Ok(p) => p,
            Err(_) => return self.drop_bytes(RelayDrop::Malformed, None, data),
        };
        if !self.answers_in_flight(now, &p) {
            return self.drop_bytes(RelayDrop::Unsolicited, None, data);
        }
        let links = &self.links;
        let mut d = match relay_reply(data, |g| links.iter().any(|l| l.address == g)) {
            Ok(d) => d,
            Err(why) => return self.drop_bytes(why, None, data),
        };
        let Some(i) = self.links.iter().position(|l| l.address == d.giaddr) else {
            return self.drop_bytes(RelayDrop::NotOurs, None, data);
        };
        let Some(link) = self.links.get(i) else {
            return self.drop_bytes(RelayDrop::NotOurs, None, data);
        };
        let address = link.address;
        let chaddr = p.chaddr().to_vec();
        // The Option 82 we inserted, for a server that does not echo it.
        let ours = self.policy.option82.then(|| {
            let agent = AgentLink {
                address,
                circuit_id: &link.circuit_id,
                remote_id: &link.remote_id,
                signature: None,
            };
            RelayInfo::parse(&option82_value(&agent, &self.policy))
        });
        let memo = self.memo.peek(&chaddr).cloned().unwrap_or_default();
        if let Some(ev) = binding_from_reply(
            data,
            now.timestamp(),
            memo.hostname,
            memo.requested,
            ours.as_ref(),
        ) {
            self.events.push_back(RelayEvent::Binding(ev));
        }
        if self.rewrite_sid
            && let Some(real) = rewrite_server_id(&mut d.bytes, None, address)
            && real != address
        {
            let ip = if p.yiaddr.is_unspecified() {
                p.ciaddr
            } else {
                p.yiaddr
            };
            self.server_ids.insert((chaddr, ip), real);
        }
        self.transmits.push_back(Transmit::Client {
            link: i,
            route: d.route,
            bytes: d.bytes,
            message_type: d.message_type,
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::relay_agent::ExistingOption82;
    use leased_wire::{Options, code};

    const LINK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const OTHER_LINK: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const XID: u32 = 0x1234_5678;

    fn config(capacity: usize) -> AgentConfig {
        AgentConfig {
            links: vec![
                LinkConfig {
                    address: LINK,
                    circuit_id: b"eth1".to_vec(),
                    remote_id: vec![2, 0, 0, 0, 0, 0xaa],
                },
                LinkConfig {
                    address: OTHER_LINK,
                    circuit_id: b"eth2".to_vec(),
                    remote_id: vec![],
                },
            ],
            upstreams: vec![SERVER, Ipv4Addr::new(198, 19, 0, 3)],
            policy: AgentPolicy {
                max_hops: 4,
                option82: true,
                existing: Some(ExistingOption82::Replace),
                link_selection: false,
                server_id_override: false,
                relay_port: false,
            },
            rewrite_server_id: false,
            auth_key: None,
            capacity,
        }
    }

    fn agent() -> RelayAgent {
        RelayAgent::new(config(DEFAULT_CAPACITY))
    }

    fn at(secs: u64) -> Now {
        Now {
            wall: Duration::from_secs(1_700_000_000 + secs),
            mono: Duration::from_secs(secs),
        }
    }

    fn packet(op: u8, msg: MessageType, mac: [u8; 6], extra: &[(u8, &[u8])]) -> Packet {
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![msg.code()]);
        for (c, v) in extra {
            options.set(*c, v.to_vec());
        }
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        Packet {
            op,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: XID,
            secs: 0,
            flags: 0,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            sname: vec![],
            file: vec![],
            options,
            option82_in_overload: false,
        }
    }

    fn bytes(p: &Packet) -> Vec<u8> {
        let mut out = Vec::new();
        p.encode(1500, &mut out);
        out
    }

    fn request(msg: MessageType, mac: [u8; 6], extra: &[(u8, &[u8])]) -> Vec<u8> {
        bytes(&packet(BOOTREQUEST, msg, mac, extra))
    }

    /// A server's reply through link `giaddr`, to `mac`, yiaddr set.
    fn reply(msg: MessageType, mac: [u8; 6], giaddr: Ipv4Addr, extra: &[(u8, &[u8])]) -> Vec<u8> {
        let mut p = packet(BOOTREPLY, msg, mac, extra);
        p.giaddr = giaddr;
        p.yiaddr = CLIENT_IP;
        bytes(&p)
    }

    fn from(src: Ipv4Addr, bytes: &[u8]) -> Received<'_> {
        Received {
            src: Some(SocketAddrV4::new(src, 67)),
            dst: Some(LINK),
            bytes,
        }
    }

    fn client(bytes: &[u8]) -> Received<'_> {
        Received {
            src: Some(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68)),
            dst: Some(Ipv4Addr::BROADCAST),
            bytes,
        }
    }

    fn events(a: &mut RelayAgent) -> Vec<RelayEvent> {
        std::iter::from_fn(|| a.poll_event()).collect()
    }

    fn transmits(a: &mut RelayAgent) -> Vec<Transmit> {
        std::iter::from_fn(|| a.poll_transmit()).collect()
    }

    fn bindings(evs: &[RelayEvent]) -> Vec<&BindingEvent> {
        evs.iter()
            .filter_map(|e| match e {
                RelayEvent::Binding(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    fn drop_reasons(evs: &[RelayEvent]) -> Vec<RelayDrop> {
        evs.iter()
            .filter_map(|e| match e {
                RelayEvent::Dropped { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect()
    }

    /// A DISCOVER from `mac` on link 0, forwarded.
    fn forward_discover(a: &mut RelayAgent, now: Now, mac: [u8; 6]) {
        a.handle_client(now, 0, client(&request(MessageType::Discover, mac, &[])));
        assert_eq!(transmits(a).len(), 1);
        assert!(drop_reasons(&events(a)).is_empty());
    }

    #[test]
    fn a_request_goes_to_every_upstream_rewritten() {
        let mut a = agent();
        a.handle_client(at(0), 0, client(&request(MessageType::Discover, MAC, &[])));
        assert!(events(&mut a).is_empty());
        let [
            Transmit::Upstream {
                link,
                to,
                bytes,
                message_type,
            },
        ] = &transmits(&mut a)[..]
        else {
            panic!("one upstream transmit");
        };
        assert_eq!((*link, *message_type), (0, Some(MessageType::Discover)));
        assert_eq!(&to[..], &[SERVER, Ipv4Addr::new(198, 19, 0, 3)]);
        let p = Packet::decode(bytes).unwrap();
        assert_eq!((p.giaddr, p.hops), (LINK, 1));
        let info = RelayInfo::parse(p.options.get(code::RELAY_AGENT_INFO).unwrap());
        assert_eq!(info.circuit_id.as_deref(), Some(&b"eth1"[..]));
    }

    #[test]
    fn a_forged_reply_from_an_unlisted_source_is_dropped() {
        let mut a = agent();
        forward_discover(&mut a, at(0), MAC);
        let ack = reply(MessageType::Ack, MAC, LINK, &[(51, &[0, 0, 14, 16])]);
        let forger = Ipv4Addr::new(198, 18, 0, 66);
        // On a client link and on the upstream socket alike, even though it matches the
        // outstanding request.
        a.handle_client(at(1), 0, from(forger, &ack));
        a.handle_upstream(at(1), from(forger, &ack));
        // No source at all is not a listed one either.
        a.handle_upstream(
            at(1),
            Received {
                src: None,
                dst: Some(LINK),
                bytes: &ack,
            },
        );
        let evs = events(&mut a);
        assert_eq!(drop_reasons(&evs), vec![RelayDrop::NotFromUpstream; 3]);
        assert!(bindings(&evs).is_empty());
        assert!(transmits(&mut a).is_empty());
        let RelayEvent::Dropped { link, src, xid, .. } = &evs[0] else {
            panic!()
        };
        assert_eq!(
            (*link, *src, *xid),
            (Some(0), Some(SocketAddrV4::new(forger, 67)), Some(XID))
        );
        // The real server's copy still gets through.
        a.handle_upstream(at(1), from(SERVER, &ack));
        assert_eq!(transmits(&mut a).len(), 1);
    }

    #[test]
    fn a_reply_with_no_outstanding_request_is_dropped() {
        let mut a = agent();
        let offer = reply(MessageType::Offer, MAC, LINK, &[]);
        let unsolicited = |a: &mut RelayAgent| {
            let evs = events(a);
            assert!(bindings(&evs).is_empty());
            assert_eq!(drop_reasons(&evs), vec![RelayDrop::Unsolicited]);
        };
        a.handle_upstream(at(0), from(SERVER, &offer));
        unsolicited(&mut a);
        // Another client's request does not make it one.
        forward_discover(&mut a, at(0), [2, 0, 0, 0, 0, 2]);
        a.handle_upstream(at(0), from(SERVER, &offer));
        unsolicited(&mut a);
        // Its own request, but too long ago.
        forward_discover(&mut a, at(10), MAC);
        a.handle_upstream(at(10) + REPLY_WINDOW, from(SERVER, &offer));
        assert_eq!(transmits(&mut a).len(), 1, "within the window");
        a.handle_upstream(at(11) + REPLY_WINDOW, from(SERVER, &offer));
        unsolicited(&mut a);
        assert!(transmits(&mut a).is_empty());
    }

    impl std::ops::Add<Duration> for Now {
        type Output = Self;
        fn add(self, d: Duration) -> Self {
            Self {
                wall: self.wall + d,
                mono: self.mono + d,
            }
        }
    }

    #[test]
    fn a_release_becomes_a_released_event() {
        let mut a = agent();
        let mut p = packet(BOOTREQUEST, MessageType::Release, MAC, &[]);
        p.ciaddr = CLIENT_IP;
        a.handle_client(at(5), 0, client(&bytes(&p)));
        let evs = events(&mut a);
        let [b] = bindings(&evs)[..] else {
            panic!("{evs:?}")
        };
        assert_eq!(b.kind, BindingKind::Released);
        assert_eq!(b.mac, HwAddr(MAC.to_vec()));
        assert_eq!(b.ip, CLIENT_IP);
        assert_eq!(b.at, Timestamp(1_700_000_005));
        assert_eq!(b.giaddr, Some(LINK));
        assert_eq!(transmits(&mut a).len(), 1, "and is forwarded");
        // Without ciaddr it names no address: forwarded, no event.
        let release = request(MessageType::Release, MAC, &[]);
        a.handle_client(at(6), 0, client(&release));
        assert!(bindings(&events(&mut a)).is_empty());
        assert_eq!(transmits(&mut a).len(), 1);
    }

    #[test]
    fn an_ack_carries_the_memos_hostname_and_the_option82_we_inserted() {
        let mut a = agent();
        let req = request(
            MessageType::Request,
            MAC,
            &[
                (code::HOSTNAME, b"cam"),
                (code::REQUESTED_IP, &CLIENT_IP.octets()),
            ],
        );
        a.handle_client(at(0), 0, client(&req));
        let _ = transmits(&mut a);
        // The server does not echo Option 82 and sends no host name.
        let ack = reply(MessageType::Ack, MAC, LINK, &[(51, &[0, 0, 14, 16])]);
        a.handle_upstream(at(1), from(SERVER, &ack));
        let evs = events(&mut a);
        let [b] = bindings(&evs)[..] else {
            panic!("{evs:?}")
        };
        assert_eq!(b.kind, BindingKind::Bound);
        assert_eq!((b.ip, b.lease_time), (CLIENT_IP, Some(3600)));
        assert_eq!(b.expires, Some(Timestamp(1_700_000_001 + 3600)));
        assert_eq!(b.hostname.as_deref(), Some("cam"));
        assert_eq!(b.circuit_id.as_deref(), Some(&b"eth1"[..]));
        assert_eq!(b.remote_id.as_deref(), Some(&[2, 0, 0, 0, 0, 0xaa][..]));
        assert_eq!(b.giaddr, Some(LINK));
        let [
            Transmit::Client {
                link, route, bytes, ..
            },
        ] = &transmits(&mut a)[..]
        else {
            panic!("one delivery");
        };
        assert_eq!(*link, 0);
        assert_eq!(
            *route,
            Route::Hardware {
                yiaddr: CLIENT_IP,
                chaddr: HwAddr(MAC.to_vec()),
                htype: 1
            }
        );
        assert!(
            Packet::decode(bytes)
                .unwrap()
                .options
                .get(code::RELAY_AGENT_INFO)
                .is_none()
        );
        // A NAK ends the binding of the address the client asked for.
        let nak = reply(MessageType::Nak, MAC, LINK, &[]);
        a.handle_upstream(at(2), from(SERVER, &nak));
        let evs = events(&mut a);
        let [b] = bindings(&evs)[..] else {
            panic!("{evs:?}")
        };
        assert_eq!((b.kind, b.ip), (BindingKind::Nak, CLIENT_IP));
        // An OFFER is no binding.
        let offer = reply(MessageType::Offer, MAC, LINK, &[(51, &[0, 0, 14, 16])]);
        a.handle_upstream(at(3), from(SERVER, &offer));
        assert!(events(&mut a).is_empty());
        assert_eq!(transmits(&mut a).len(), 2);
    }

    #[test]
    fn a_reply_leaves_on_the_link_its_giaddr_names() {
        let mut a = agent();
        a.handle_client(at(0), 1, client(&request(MessageType::Discover, MAC, &[])));
        let _ = transmits(&mut a);
        a.handle_upstream(
            at(0),
            from(SERVER, &reply(MessageType::Offer, MAC, OTHER_LINK, &[])),
        );
        assert!(matches!(
            &transmits(&mut a)[..],
            [Transmit::Client { link: 1, .. }]
        ));
        // A giaddr that is none of ours.
        let stray = Ipv4Addr::new(198, 18, 9, 1);
        a.handle_upstream(
            at(0),
            from(SERVER, &reply(MessageType::Offer, MAC, stray, &[])),
        );
        assert_eq!(drop_reasons(&events(&mut a)), vec![RelayDrop::NotOurs]);
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_distinct_chaddrs() {
        let cap = 64;
        let mut a = RelayAgent::new(AgentConfig {
            rewrite_server_id: true,
            ..config(cap)
        });
        let mac = |n: u32| {
            let b = n.to_be_bytes();
            [2, 0xf1, b[0], b[1], b[2], b[3]]
        };
        let sid = SERVER.octets();
        for n in 0..5_000u32 {
            let req = request(MessageType::Request, mac(n), &[(code::HOSTNAME, b"h")]);
            a.handle_client(at(0), 0, client(&req));
            let ack = reply(
                MessageType::Ack,
                mac(n),
                LINK,
                &[(54, &sid), (51, &[0, 0, 0, 60])],
            );
            a.handle_upstream(at(0), from(SERVER, &ack));
            let (clients, in_flight, server_ids) = a.table_sizes();
            assert!(clients <= cap && in_flight <= cap && server_ids <= cap);
        }
        assert_eq!(a.table_sizes(), (cap, cap, cap));
        assert!(drop_reasons(&events(&mut a)).is_empty());
        assert_eq!(transmits(&mut a).len(), 10_000);
        // The newest are remembered; the oldest were evicted, so a late reply to one of them
        // is unsolicited.
        let offer = |n| reply(MessageType::Offer, mac(n), LINK, &[]);
        a.handle_upstream(at(1), from(SERVER, &offer(4_999)));
        a.handle_upstream(at(1), from(SERVER, &offer(0)));
        assert_eq!(drop_reasons(&events(&mut a)), vec![RelayDrop::Unsolicited]);
        assert_eq!(transmits(&mut a).len(), 1);
    }

    #[test]
    fn server_id_rewrite_sends_renewals_to_the_real_server() {
        let mut a = RelayAgent::new(AgentConfig {
            rewrite_server_id: true,
            ..config(DEFAULT_CAPACITY)
        });
        forward_discover(&mut a, at(0), MAC);
        let ack = reply(
            MessageType::Ack,
            MAC,
            LINK,
            &[(54, &SERVER.octets()), (51, &[0, 0, 0, 60])],
        );
        a.handle_upstream(at(0), from(SERVER, &ack));
        let _ = events(&mut a);
        let [Transmit::Client { bytes, .. }] = &transmits(&mut a)[..] else {
            panic!()
        };
        assert_eq!(server_id(bytes), Some(LINK), "the client sees us");
        // Its REQUEST naming us goes upstream naming the real server.
        let req = request(
            MessageType::Request,
            MAC,
            &[(54, &LINK.octets()), (50, &CLIENT_IP.octets())],
        );
        a.handle_client(at(1), 0, client(&req));
        let [Transmit::Upstream { bytes, .. }] = &transmits(&mut a)[..] else {
            panic!()
        };
        assert_eq!(server_id(bytes), Some(SERVER));
        // Another client naming us has no real server on record: left as it is.
        let req = request(
            MessageType::Request,
            [2, 0, 0, 0, 0, 9],
            &[(54, &LINK.octets()), (50, &CLIENT_IP.octets())],
        );
        a.handle_client(at(1), 0, client(&req));
        let [Transmit::Upstream { bytes, .. }] = &transmits(&mut a)[..] else {
            panic!()
        };
        assert_eq!(server_id(bytes), Some(LINK));
    }

    #[test]
    fn signed_requests_carry_a_rising_counter_even_when_the_clock_goes_back() {
        let key = b"relay-key-0123456789".to_vec();
        let mut a = RelayAgent::new(AgentConfig {
            auth_key: Some(key.clone()),
            ..config(DEFAULT_CAPACITY)
        });
        let mut counters = Vec::new();
        for now in [at(10), at(10), at(5)] {
            a.handle_client(now, 0, client(&request(MessageType::Discover, MAC, &[])));
            let [Transmit::Upstream { bytes, .. }] = &transmits(&mut a)[..] else {
                panic!()
            };
            counters.push(relay_auth::verify(bytes, &key).unwrap());
        }
        assert!(
            counters[0] < counters[1] && counters[1] < counters[2],
            "{counters:?}"
        );
        assert!(events(&mut a).is_empty());
        // Without our Option 82 there is nothing to sign: forwarded unsigned, and said so.
        let mut no82 = config(DEFAULT_CAPACITY);
        no82.policy.option82 = false;
        let mut a = RelayAgent::new(AgentConfig {
            auth_key: Some(key),
            ..no82
        });
        a.handle_client(at(0), 0, client(&request(MessageType::Discover, MAC, &[])));
        assert_eq!(events(&mut a), vec![RelayEvent::Unsigned { link: 0 }]);
        assert_eq!(transmits(&mut a).len(), 1);
    }

    #[test]
    fn what_is_not_for_the_relay_is_ignored_and_what_is_broken_has_a_reason() {
        let mut a = agent();
        // The upstream socket sees client broadcasts and broadcast replies: their links'
        // sockets handle them.
        let discover = request(MessageType::Discover, MAC, &[]);
        a.handle_upstream(at(0), client(&discover));
        let offer = reply(MessageType::Offer, MAC, LINK, &[]);
        a.handle_upstream(
            at(0),
            Received {
                dst: Some(Ipv4Addr::BROADCAST),
                ..from(SERVER, &offer)
            },
        );
        a.handle_client(at(0), 0, client(&[7; 300]));
        a.handle_client(at(0), 0, client(&[]));
        assert!(events(&mut a).is_empty());
        assert!(transmits(&mut a).is_empty());
        // Broken requests and replies, and a link the agent does not know.
        a.handle_client(at(0), 0, client(&[BOOTREQUEST; 100]));
        a.handle_upstream(at(0), from(SERVER, &[BOOTREPLY; 100]));
        a.handle_client(at(0), 9, client(&discover));
        let mut hops = packet(BOOTREQUEST, MessageType::Discover, MAC, &[]);
        hops.hops = 5;
        a.handle_client(at(0), 0, client(&bytes(&hops)));
        assert_eq!(
            drop_reasons(&events(&mut a)),
            vec![
                RelayDrop::Malformed,
                RelayDrop::Malformed,
                RelayDrop::UnknownLink,
                RelayDrop::HopLimit
            ]
        );
        assert!(transmits(&mut a).is_empty());
    }

    #[test]
    fn no_panic_on_any_prefix() {
        let mut a = agent();
        forward_discover(&mut a, at(0), MAC);
        let mut req = request(MessageType::Request, MAC, &[(12, b"abc")]);
        req.extend_from_slice(&[82, 9, 1]);
        let ack = reply(MessageType::Ack, MAC, LINK, &[(51, &[0, 0, 0, 60])]);
        for n in 0..req.len().max(ack.len()) {
            a.handle_client(at(0), 0, client(&req[..n.min(req.len())]));
            a.handle_upstream(at(0), from(SERVER, &ack[..n.min(ack.len())]));
        }
        let _ = (events(&mut a), transmits(&mut a));
    }
}
