//! A DHCPv4 *client*, **sans IO**: what a client sends, which replies it takes, when it
//! retransmits and what it then holds, with no socket, no async runtime and no clock read.
//!
//! Why a crate of its own: two drivers need the same client. `leased probe` (the operator's test
//! client) carries its packets over real sockets and real time; the engine's deterministic
//! simulation (`crates/engine/tests/sim.rs`) hands them to the server engine on a virtual clock.
//! Keeping the protocol here means both exercise one client, and the binary keeps only its
//! sockets and its report.
//!
//! Driven as quinn-proto's `Connection` is:
//! - inputs: `start_*` ([`Client::start_dora`], [`Client::start_discover`],
//!   [`Client::start_renew`], [`Client::start_rebind`], [`Client::start_reboot`],
//!   [`Client::start_inform`]), [`Client::release`], [`Client::decline`], [`Client::abandon`],
//!   [`Client::handle_reply`] and [`Client::handle_timeout`];
//! - outputs: [`Client::poll_transmit`] (a message to send now, and where),
//!   [`Client::poll_timeout`] (when to call `handle_timeout`), [`Client::poll_event`] (what was
//!   received or given up, for a report) and [`Client::state`] / [`Client::binding`].
//!
//! Time is a parameter: a [`Duration`] since any epoch the driver likes, never going backwards.
//! Transaction ids come from the caller, so a seeded driver is deterministic. After every input,
//! drain `poll_transmit` and `poll_event`, then wait for a reply until `poll_timeout`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use leased_wire::{BOOTREPLY, BOOTREQUEST, MessageType, Options, Packet, code};

pub mod leasequery;

/// At most this many events wait for [`Client::poll_event`]; older ones are dropped first, so
/// a driver that never reads them (a simulation) does not grow the client.
pub const MAX_EVENTS: usize = 16;

/// When a message is sent again and when the client gives up on it.
///
/// Each new message (a DISCOVER, then its REQUEST) starts its own schedule: the first wait is
/// `first`, each later one doubles, up to `max_wait`; after `max_sends` transmissions, or once
/// `give_up_after` has passed since the first, the client stops waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The wait after the first transmission.
    pub first: Duration,
    /// The longest wait between two transmissions.
    pub max_wait: Duration,
    /// Transmissions of one message, the first included (0 counts as 1).
    pub max_sends: u32,
    /// The longest the client waits for an answer to one message, from its first transmission;
    /// `None`: until the last wait after `max_sends` transmissions has passed.
    pub give_up_after: Option<Duration>,
}

impl Retransmit {
    /// RFC 2131 §4.1: 4 s before the first retransmission, doubling up to 64 s, five
    /// transmissions. Without the RFC's ±1 s jitter, so that a run on a virtual clock repeats.
    pub const RFC2131: Self = Self {
        first: Duration::from_secs(4),
        max_wait: Duration::from_secs(64),
        max_sends: 5,
        give_up_after: None,
    };

    /// The wait after the `sends`-th transmission (1-based).
    fn wait_after(&self, sends: u32) -> Duration {
        let doublings = sends.saturating_sub(1).min(31);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max_wait)
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        Self::RFC2131
    }
}

/// Who the client is and what it puts in every message, fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The Ethernet address, in chaddr; replies for another chaddr are not ours.
    pub mac: [u8; 6],
    /// Option 61, when the client identifies itself by more than its MAC.
    pub client_id: Option<Vec<u8>>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Play the relay agent too: giaddr is set and hops is 1, as a relay forwards the message.
    pub giaddr: Option<Ipv4Addr>,
    /// Option 82 as a relay agent adds it (with `giaddr`), or as a client forging it would.
    pub option82: Option<Vec<u8>>,
    /// Set the broadcast bit (RFC 2131 §4.1) in everything but a RELEASE, so the server
    /// broadcasts its replies to a client that cannot yet receive unicast.
    pub broadcast_flag: bool,
    /// Option 55 in DISCOVER, REQUEST and INFORM; empty: none.
    pub param_request_list: Vec<u8>,
    /// Option 57 in DISCOVER, REQUEST and INFORM.
    pub max_message_size: Option<u16>,
    /// Option 50 in every DISCOVER: the address the client would like (RFC 2131 §4.4.1).
    pub requested_ip: Option<Ipv4Addr>,
    /// Further options, set last in every message, so they override the client's own (e.g. a
    /// REQUEST's option 50, to provoke a NAK).
    pub extra_options: Vec<(u8, Vec<u8>)>,
    /// The retransmission schedule.
    pub retransmit: Retransmit,
}

impl ClientConfig {
    /// A plain direct client with this MAC: no options beyond the message type, broadcast bit
    /// clear, RFC 2131 retransmissions. Callers set the fields they need.
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            client_id: None,
            hostname: None,
            giaddr: None,
            option82: None,
            broadcast_flag: false,
            param_request_list: Vec::new(),
            max_message_size: None,
            requested_ip: None,
            extra_options: Vec::new(),
            retransmit: Retransmit::RFC2131,
        }
    }
}

/// Where a message goes, as an RFC 2131 client would send it. A driver playing the relay
/// agent sends everything to its server instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// 255.255.255.255:67 (the client has no server to talk to, or may talk to any).
    Broadcast,
    /// This server's port 67 (renewing, releasing, an INFORM to a known server).
    Server(Ipv4Addr),
}

/// One message to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The message, ready for [`Packet::encode`].
    pub packet: Packet,
    /// Where it goes.
    pub to: Destination,
    /// 1 for its first transmission, 2 for the first retransmission, …, so a report can list
    /// each message once.
    pub attempt: u32,
}

/// A reply the client took, with the address it came from (a report shows both; an OFFER
/// without option 54 is answered to its sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply as decoded.
    pub packet: Packet,
    /// Its IP source address.
    pub from: Ipv4Addr,
}

/// A lease the client was granted, kept until it runs out, a NAK, a RELEASE or DECLINE, or a
/// new ACK replaces it, also while another exchange is under way: the server still holds it
/// for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// yiaddr of the ACK.
    pub ip: Ipv4Addr,
    /// The server that granted it: the ACK's option 54, else the one the REQUEST went to.
    pub server: Ipv4Addr,
    /// Option 51. An ACK without one is taken as infinite (0xffffffff, RFC 2132 §9.2): a
    /// test client should still be able to release what such a server handed out.
    pub lease: Duration,
    /// When its REQUEST was first sent: the lease counts from then (RFC 2131 §4.4.1), which
    /// is never later than the server's own start.
    pub bound_at: Duration,
    /// When to renew: option 58 after `bound_at`, else half the lease (RFC 2131 §4.4.5).
    pub t1: Duration,
    /// When to rebind: option 59 after `bound_at`, else 7/8 of the lease.
    pub t2: Duration,
}

impl Binding {
    /// When the lease ends; from then the client holds nothing.
    pub fn expires(&self) -> Duration {
        self.bound_at.saturating_add(self.lease)
    }
}

/// What the client is doing (RFC 2131 figure 5), or how its last exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Nothing under way and no lease in use: fresh, started over, released, declined, or its
    /// lease ran out.
    Init,
    /// A DISCOVER is out; waiting for an OFFER.
    Selecting,
    /// A REQUEST for an offered address is out; waiting for ACK or NAK.
    Requesting {
        /// The offered address.
        ip: Ipv4Addr,
        /// The server whose offer it took.
        server: Ipv4Addr,
    },
    /// An INIT-REBOOT REQUEST (option 50, no server id) is out.
    Rebooting {
        /// The address it asks to keep.
        ip: Ipv4Addr,
    },
    /// Holding a lease, nothing under way.
    Bound(Binding),
    /// A RENEWING REQUEST (ciaddr, unicast to the server) is out.
    Renewing {
        /// ciaddr.
        ip: Ipv4Addr,
        /// The server it goes to.
        server: Ipv4Addr,
    },
    /// A REBINDING REQUEST (ciaddr, broadcast) is out.
    Rebinding {
        /// ciaddr.
        ip: Ipv4Addr,
    },
    /// An INFORM is out; waiting for its ACK.
    Informing {
        /// ciaddr.
        ip: Ipv4Addr,
    },
    /// [`Client::start_discover`] ended with an OFFER (no REQUEST follows).
    Offered {
        /// yiaddr of the OFFER.
        ip: Ipv4Addr,
        /// Its option 54, else its sender.
        server: Ipv4Addr,
    },
    /// An INFORM was answered (no lease: the address was the client's already).
    Informed {
        /// ciaddr of the INFORM.
        ip: Ipv4Addr,
    },
    /// The server refused the REQUEST; the client holds nothing.
    Naked,
    /// No answer came in time and the client holds no lease.
    TimedOut,
}

/// Something that happened, in order, for a driver's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An OFFER was taken.
    Offer(Reply),
    /// An ACK was taken (a lease, or the answer to an INFORM).
    Ack(Reply),
    /// A NAK was taken.
    Nak(Reply),
    /// The client gave up waiting for this kind of reply.
    TimedOut {
        /// [`MessageType::Offer`] or [`MessageType::Ack`].
        waiting_for: MessageType,
    },
    /// The lease on this address ran out.
    Expired {
        /// The address.
        ip: Ipv4Addr,
    },
}

/// Asked to give back or refuse a lease the client does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoBinding;

impl fmt::Display for NoBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client holds no lease")
    }
}

impl std::error::Error for NoBinding {}

/// The exchange under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// DISCOVER; `then_request`: a REQUEST follows the OFFER.
    Discover {
        then_request: bool,
    },
    Request {
        ip: Ipv4Addr,
        server: Ipv4Addr,
    },
    Reboot {
        ip: Ipv4Addr,
    },
    Renew {
        ip: Ipv4Addr,
        server: Ipv4Addr,
    },
    Rebind {
        ip: Ipv4Addr,
    },
    Inform {
        ip: Ipv4Addr,
    },
}

impl Kind {
    /// The state while this exchange is under way.
    fn state(self) -> State {
        match self {
            Kind::Discover { .. } => State::Selecting,
            Kind::Request { ip, server } => State::Requesting { ip, server },
            Kind::Reboot { ip } => State::Rebooting { ip },
            Kind::Renew { ip, server } => State::Renewing { ip, server },
            Kind::Rebind { ip } => State::Rebinding { ip },
            Kind::Inform { ip } => State::Informing { ip },
        }
    }

    /// True when `t` answers this exchange.
    fn wants(self, t: MessageType) -> bool {
        match self {
            Kind::Discover { .. } => t == MessageType::Offer,
            Kind::Inform { .. } => t == MessageType::Ack,
            _ => matches!(t, MessageType::Ack | MessageType::Nak),
        }
    }
}

/// One message and its retransmission timer.
#[derive(Debug, Clone)]
struct Exchange {
    kind: Kind,
    xid: u32,
    packet: Packet,
    to: Destination,
    sends: u32,
    first_sent: Option<Duration>,
    /// When to retransmit or give up; `None` while the packet waits for `poll_transmit`.
    wake: Option<Duration>,
}

/// The client. See the crate documentation for how to drive it.
#[derive(Debug, Clone)]
pub struct Client {
    config: ClientConfig,
    state: State,
    binding: Option<Binding>,
    exchange: Option<Exchange>,
    /// A RELEASE or DECLINE: sent once, never answered.
    one_shot: Option<Transmit>,
    events: VecDeque<Event>,
}

impl Client {
    /// A client in [`State::Init`] holding nothing.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            state: State::Init,
            binding: None,
            exchange: None,
            one_shot: None,
            events: VecDeque::new(),
        }
    }

    /// Who the client is.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// What it is doing, or how its last exchange ended.
    pub fn state(&self) -> State {
        self.state
    }

    /// The lease it holds, if any (also while renewing or starting over).
    pub fn binding(&self) -> Option<&Binding> {
        self.binding.as_ref()
    }

    /// The transaction id replies must carry, while an exchange is under way.
    pub fn xid(&self) -> Option<u32> {
        self.exchange.as_ref().map(|x| x.xid)
    }

    /// True while an exchange waits for a reply or a message waits to be sent.
    pub fn busy(&self) -> bool {
        self.exchange.is_some() || self.one_shot.is_some()
    }

    /// DISCOVER → OFFER → REQUEST → ACK/NAK with transaction id `xid` (the REQUEST reuses it).
    pub fn start_dora(&mut self, now: Duration, xid: u32) {
        self.start_discovery(now, xid, true);
    }

    /// DISCOVER → OFFER, then stop in [`State::Offered`]: what a server would offer, without
    /// taking it.
    pub fn start_discover(&mut self, now: Duration, xid: u32) {
        self.start_discovery(now, xid, false);
    }

    fn start_discovery(&mut self, now: Duration, xid: u32, then_request: bool) {
        self.expire(now);
        let mut p = self.packet(MessageType::Discover, xid);
        if let Some(ip) = self.config.requested_ip {
            p.options.set(code::REQUESTED_IP, ip.octets().to_vec());
        }
        self.begin(Kind::Discover { then_request }, p, Destination::Broadcast);
    }

    /// A RENEWING client's REQUEST (RFC 2131 §4.3.2): ciaddr `ip`, no option 50 or 54, unicast
    /// to `server`. Needs no binding: an address configured elsewhere can be renewed too.
    pub fn start_renew(&mut self, now: Duration, xid: u32, ip: Ipv4Addr, server: Ipv4Addr) {
        self.expire(now);
        let mut p = self.packet(MessageType::Request, xid);
        p.ciaddr = ip;
        self.begin(Kind::Renew { ip, server }, p, Destination::Server(server));
    }

    /// A REBINDING client's REQUEST: as a renewal, but broadcast, for any server to answer.
    pub fn start_rebind(&mut self, now: Duration, xid: u32, ip: Ipv4Addr) {
        self.expire(now);
        let mut p = self.packet(MessageType::Request, xid);
        p.ciaddr = ip;
        self.begin(Kind::Rebind { ip }, p, Destination::Broadcast);
    }

    /// An INIT-REBOOT client's REQUEST (RFC 2131 §4.3.2): option 50 `ip`, no server id, no
    /// ciaddr, broadcast.
    pub fn start_reboot(&mut self, now: Duration, xid: u32, ip: Ipv4Addr) {
        self.expire(now);
        let mut p = self.packet(MessageType::Request, xid);
        p.options.set(code::REQUESTED_IP, ip.octets().to_vec());
        self.begin(Kind::Reboot { ip }, p, Destination::Broadcast);
    }

    /// An INFORM for an address the client has already (ciaddr `ip`), asking for options only;
    /// to `server` (with its option 54) when given, else broadcast. A binding, if any, is kept.
    pub fn start_inform(
        &mut self,
        now: Duration,
        xid: u32,
        ip: Ipv4Addr,
        server: Option<Ipv4Addr>,
    ) {
        self.expire(now);
        let mut p = self.packet(MessageType::Inform, xid);
        p.ciaddr = ip;
        if let Some(s) = server {
            p.options.set(code::SERVER_ID, s.octets().to_vec());
        }
        let to = server.map_or(Destination::Broadcast, Destination::Server);
        self.begin(Kind::Inform { ip }, p, to);
    }

    /// Gives the lease back (RELEASE: ciaddr, option 54, broadcast bit clear, to its server),
    /// ending any exchange; sent once. The client is then in [`State::Init`].
    pub fn release(&mut self, now: Duration, xid: u32) -> Result<(), NoBinding> {
        self.expire(now);
        let b = self.binding.take().ok_or(NoBinding)?;
        let mut p = self.packet(MessageType::Release, xid);
        p.flags = 0;
        p.ciaddr = b.ip;
        p.options.set(code::SERVER_ID, b.server.octets().to_vec());
        self.end_with_one_shot(p, Destination::Server(b.server));
        Ok(())
    }

    /// Refuses the lease as a client that found its address in use (DECLINE: option 50 and
    /// 54, broadcast), ending any exchange; sent once. The client is then in [`State::Init`].
    pub fn decline(&mut self, now: Duration, xid: u32) -> Result<(), NoBinding> {
        self.expire(now);
        let b = self.binding.take().ok_or(NoBinding)?;
        let mut p = self.packet(MessageType::Decline, xid);
        p.options.set(code::REQUESTED_IP, b.ip.octets().to_vec());
        p.options.set(code::SERVER_ID, b.server.octets().to_vec());
        self.end_with_one_shot(p, Destination::Broadcast);
        Ok(())
    }

    /// Gives up the exchange under way, as a client restarted by its user: back to
    /// [`State::Init`]. A binding is kept until it ends: the server still holds it.
    pub fn abandon(&mut self, now: Duration) {
        self.expire(now);
        if self.exchange.take().is_some() {
            self.state = State::Init;
        }
    }

    /// Offers a received reply from `from`; true when the client took it. A reply is ignored
    /// (false) when it is not a BOOTREPLY, carries another xid or chaddr, or is not what the
    /// exchange waits for (an OFFER while requesting, a NAK to an INFORM, …).
    pub fn handle_reply(&mut self, now: Duration, p: &Packet, from: Ipv4Addr) -> bool {
        self.expire(now);
        let Some(x) = &self.exchange else {
            return false;
        };
        if p.op != BOOTREPLY || p.xid != x.xid || p.chaddr.get(..6) != Some(&self.config.mac[..]) {
            return false;
        }
        let Some(t) = p.message_type().filter(|t| x.kind.wants(*t)) else {
            return false;
        };
        let (kind, xid, sent) = (x.kind, x.xid, x.first_sent.unwrap_or(now));
        let reply = Reply {
            packet: p.clone(),
            from,
        };
        match (kind, t) {
            (Kind::Discover { then_request }, _) => {
                let ip = p.yiaddr;
                let server = option_ip(p, code::SERVER_ID).unwrap_or(from);
                self.push_event(Event::Offer(reply));
                if then_request {
                    let mut r = self.packet(MessageType::Request, xid);
                    r.options.set(code::REQUESTED_IP, ip.octets().to_vec());
                    r.options.set(code::SERVER_ID, server.octets().to_vec());
                    self.begin(Kind::Request { ip, server }, r, Destination::Broadcast);
                } else {
                    self.exchange = None;
                    self.state = State::Offered { ip, server };
                }
            }
            (Kind::Inform { ip }, _) => {
                self.push_event(Event::Ack(reply));
                self.exchange = None;
                self.state = self.binding.map_or(State::Informed { ip }, State::Bound);
            }
            (_, MessageType::Nak) => {
                self.push_event(Event::Nak(reply));
                self.exchange = None;
                self.binding = None;
                self.state = State::Naked;
            }
            (kind, _) => {
                let fallback = match kind {
                    Kind::Request { server, .. } | Kind::Renew { server, .. } => server,
                    _ => from,
                };
                let b = binding_of(p, fallback, sent);
                self.push_event(Event::Ack(reply));
                self.exchange = None;
                self.binding = Some(b);
                self.state = State::Bound(b);
                // An ACK so late that the lease, counted from the first REQUEST, is over.
                self.expire(now);
            }
        }
        true
    }

    /// Time passed: retransmits, gives up or drops a lease that ran out, when due.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.expire(now);
        let Some(x) = &mut self.exchange else {
            return;
        };
        if x.wake.is_none_or(|w| now < w) {
            return;
        }
        let r = self.config.retransmit;
        let in_time = match (r.give_up_after, x.first_sent) {
            (Some(g), Some(first)) => now < first.saturating_add(g),
            _ => true,
        };
        if x.sends < r.max_sends.max(1) && in_time {
            x.wake = None;
            return;
        }
        let waiting_for = match x.kind {
            Kind::Discover { .. } => MessageType::Offer,
            _ => MessageType::Ack,
        };
        self.exchange = None;
        self.state = self.binding.map_or(State::TimedOut, State::Bound);
        self.push_event(Event::TimedOut { waiting_for });
    }

    /// The next message to send now, if any; its retransmission timer starts at `now`.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Transmit> {
        if let Some(t) = self.one_shot.take() {
            return Some(t);
        }
        let x = self.exchange.as_mut().filter(|x| x.wake.is_none())?;
        let r = self.config.retransmit;
        x.sends = x.sends.saturating_add(1);
        let first = *x.first_sent.get_or_insert(now);
        let mut wake = now.saturating_add(r.wait_after(x.sends));
        if let Some(g) = r.give_up_after {
            wake = wake.min(first.saturating_add(g));
        }
        x.wake = Some(wake);
        Some(Transmit {
            packet: x.packet.clone(),
            to: x.to,
            attempt: x.sends,
        })
    }

    /// When to call [`Client::handle_timeout`] next: the exchange's retransmission or give-up
    /// time, or the lease's end; `None` when nothing is due.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let wake = self.exchange.as_ref().and_then(|x| x.wake);
        let ends = self.binding.map(|b| b.expires());
        match (wake, ends) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A client message of type `kind` with the options every message carries; the caller
    /// adds 50/54/ciaddr, then [`Client::begin`] or [`Client::end_with_one_shot`] applies the
    /// extra options.
    fn packet(&self, kind: MessageType, xid: u32) -> Packet {
        let c = &self.config;
        let mut chaddr = [0u8; 16];
        if let Some(dst) = chaddr.get_mut(..6) {
            dst.copy_from_slice(&c.mac);
        }
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![kind.code()]);
        if let Some(id) = &c.client_id {
            options.set(code::CLIENT_ID, id.clone());
        }
        if let Some(h) = &c.hostname {
            options.set(code::HOSTNAME, h.as_bytes().to_vec());
        }
        if matches!(
            kind,
            MessageType::Discover | MessageType::Request | MessageType::Inform
        ) {
            if !c.param_request_list.is_empty() {
                options.set(code::PARAM_REQUEST_LIST, c.param_request_list.clone());
            }
            if let Some(max) = c.max_message_size {
                options.set(code::MAX_MESSAGE_SIZE, max.to_be_bytes().to_vec());
            }
        }
        if let Some(v) = &c.option82 {
            options.set(code::RELAY_AGENT_INFO, v.clone());
        }
        Packet {
            op: BOOTREQUEST,
            htype: 1,
            hlen: 6,
            hops: u8::from(c.giaddr.is_some()),
            xid,
            secs: 0,
            flags: if c.broadcast_flag { 0x8000 } else { 0 },
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: c.giaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            chaddr,
            sname: Vec::new(),
            file: Vec::new(),
            options,
            option82_in_overload: false,
        }
    }

    /// The extra options, set last.
    fn finish(&self, mut p: Packet) -> Packet {
        for (c, v) in &self.config.extra_options {
            p.options.set(*c, v.clone());
        }
        p
    }

    /// Starts an exchange for `p` (replacing any), queued for `poll_transmit` after a RELEASE
    /// or DECLINE still waiting there.
    fn begin(&mut self, kind: Kind, p: Packet, to: Destination) {
        let packet = self.finish(p);
        self.state = kind.state();
        self.exchange = Some(Exchange {
            kind,
            xid: packet.xid,
            packet,
            to,
            sends: 0,
            first_sent: None,
            wake: None,
        });
    }

    /// Ends any exchange and queues `p` to be sent once.
    fn end_with_one_shot(&mut self, p: Packet, to: Destination) {
        let packet = self.finish(p);
        self.exchange = None;
        self.state = State::Init;
        self.one_shot = Some(Transmit {
            packet,
            to,
            attempt: 1,
        });
    }

    /// Drops the lease once it has run out, with what was being done for it.
    fn expire(&mut self, now: Duration) {
        let Some(b) = self.binding.filter(|b| now >= b.expires()) else {
            return;
        };
        self.binding = None;
        self.push_event(Event::Expired { ip: b.ip });
        let for_it = matches!(
            self.exchange.as_ref().map(|x| x.kind),
            Some(Kind::Renew { .. } | Kind::Rebind { .. })
        );
        if for_it {
            self.exchange = None;
        }
        if for_it || matches!(self.state, State::Bound(_)) {
            self.state = State::Init;
        }
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

/// A single-address option (54, 50, …) of a packet.
fn option_ip(p: &Packet, c: u8) -> Option<Ipv4Addr> {
    let b: [u8; 4] = p.options.get(c)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// A seconds option (51, 58, 59) of a packet.
fn option_secs(p: &Packet, c: u8) -> Option<u64> {
    let b: [u8; 4] = p.options.get(c)?.try_into().ok()?;
    Some(u64::from(u32::from_be_bytes(b)))
}

/// The lease an ACK grants, counted from `bound_at`.
fn binding_of(ack: &Packet, server_fallback: Ipv4Addr, bound_at: Duration) -> Binding {
    let lease = option_secs(ack, code::LEASE_TIME).unwrap_or(u64::from(u32::MAX));
    let t1 = option_secs(ack, code::RENEWAL_TIME).unwrap_or(lease / 2);
    let t2 = option_secs(ack, code::REBINDING_TIME).unwrap_or(lease - lease / 8);
    Binding {
        ip: ack.yiaddr,
        server: option_ip(ack, code::SERVER_ID).unwrap_or(server_fallback),
        lease: Duration::from_secs(lease),
        bound_at,
        t1: bound_at.saturating_add(Duration::from_secs(t1)),
        t2: bound_at.saturating_add(Duration::from_secs(t2)),
    }
}

#[cfg(test)]
mod tests;
