//! Reply building: the BOOTREPLY header, the option set in the client's order (option 55),
//! its size limit (option 57), RFC 6842 / RFC 3046 echoes, and the RFC 2131 §4.1 route.

use std::net::Ipv4Addr;

use leased_wire::{BOOTREPLY, MessageType, Options, Packet, code};

use crate::classify::nonzero;
use crate::decide::Decider;
use crate::decision::{NakReason, Reply, Route};
use crate::lease::HwAddr;
use crate::model::OptionSet;

/// The DHCP server port, where relays listen.
const SERVER_PORT: u16 = 67;
/// RFC 2131 §2: every client takes 576 bytes.
const MIN_MAX_LEN: usize = 576;
/// Broadcast bit of `flags`.
const BROADCAST_FLAG: u16 = 0x8000;
/// Sent even when the client's option 55 does not list them (when configured).
const ALWAYS_SENT: [u8; 6] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::DOMAIN_NAME,
    code::HOSTNAME,
    code::BROADCAST,
];

/// Codes the core writes itself, never taken from configuration.
fn core_owned(c: u8) -> bool {
    matches!(
        c,
        code::PAD
            | code::END
            | code::OVERLOAD
            | code::MESSAGE_TYPE
            | code::SERVER_ID
            | code::LEASE_TIME
            | code::RENEWAL_TIME
            | code::REBINDING_TIME
            | code::CLIENT_ID
            | code::CLIENT_FQDN
            | code::RELAY_AGENT_INFO
            | code::PARAM_REQUEST_LIST
            | code::MESSAGE
            | code::MAX_MESSAGE_SIZE
            | code::REQUESTED_IP
            | code::RAPID_COMMIT
            | code::IPV6_ONLY_PREFERRED
            | code::AUTO_CONFIGURE
    )
}

/// The configuration layers for one client, merged by reference (no copy of the sets):
/// subnet < class < device override < reservation, then the reservation's hostname in 12.
struct Layers<'a> {
    values: [Option<&'a [u8]>; 256],
    next_server: Option<Ipv4Addr>,
    boot_file: Option<&'a str>,
    mirror_249: bool,
}

impl<'a> Layers<'a> {
    fn new(sets: &[&'a OptionSet], hostname: Option<&'a str>) -> Self {
        let mut layers = Self {
            values: [None; 256],
            next_server: None,
            boot_file: None,
            mirror_249: false,
        };
        let mut mirror = None;
        for set in sets {
            for (c, v) in &set.values {
                if !core_owned(*c)
                    && let Some(slot) = layers.values.get_mut(usize::from(*c))
                {
                    *slot = Some(v.as_slice());
                }
            }
            layers.next_server = set.next_server.or(layers.next_server);
            layers.boot_file = set.boot_file.as_deref().or(layers.boot_file);
            mirror = set.mirror_routes_to_249.or(mirror);
        }
        if let Some(h) = hostname
            && let Some(slot) = layers.values.get_mut(usize::from(code::HOSTNAME))
        {
            *slot = Some(h.as_bytes());
        }
        layers.mirror_249 = mirror.unwrap_or(false);
        layers
    }

    fn get(&self, c: u8) -> Option<&'a [u8]> {
        self.values.get(usize::from(c)).copied().flatten()
    }

    /// The value sent for `c` when the client asked for it (249 may mirror 121).
    fn requested(&self, c: u8) -> Option<&'a [u8]> {
        self.get(c).or_else(|| {
            (c == code::MS_CLASSLESS_ROUTES && self.mirror_249)
                .then(|| self.get(code::CLASSLESS_ROUTES))
                .flatten()
        })
    }
}

impl Decider<'_> {
    /// OFFER or ACK (also the ACK to an INFORM, with `with_lease` false: no 51/58/59).
    pub(crate) fn build_reply(
        &self,
        msg: MessageType,
        yiaddr: Ipv4Addr,
        ciaddr: Ipv4Addr,
        with_lease: bool,
    ) -> Reply {
        self.build(msg, yiaddr, ciaddr, with_lease, false)
    }

    /// The ACK to a DISCOVER under rapid commit: an ACK with option 80 (RFC 4039 §4), which
    /// tells the client this server committed the lease and no REQUEST is needed.
    pub(crate) fn build_rapid_ack(&self, yiaddr: Ipv4Addr) -> Reply {
        self.build(MessageType::Ack, yiaddr, Ipv4Addr::UNSPECIFIED, true, true)
    }

    fn build(
        &self,
        msg: MessageType,
        yiaddr: Ipv4Addr,
        ciaddr: Ipv4Addr,
        with_lease: bool,
        rapid: bool,
    ) -> Reply {
        let cfg = &self.plan.network;
        let mut sets: Vec<&OptionSet> = Vec::with_capacity(4);
        sets.push(&self.subnet.options);
        if let Some(c) = self.class {
            sets.push(&c.options);
        }
        if let Some(o) = cfg.device_overrides.get(&self.c.hwaddr) {
            sets.push(o);
        }
        if let Some(r) = self.reservation {
            sets.push(&r.options);
        }
        let layers = Layers::new(&sets, self.reservation.and_then(|r| r.hostname.as_deref()));

        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![msg.code()]);
        options.set(code::SERVER_ID, self.server_id.octets().to_vec());
        if with_lease {
            let lease = self.lease_time();
            let t2 = cfg
                .server
                .rebinding_time
                .unwrap_or_else(|| scale(lease, 7, 8))
                .min(lease);
            let t1 = cfg
                .server
                .renewal_time
                .unwrap_or_else(|| scale(lease, 1, 2))
                .min(t2);
            options.set(code::LEASE_TIME, lease.to_be_bytes().to_vec());
            options.set(code::RENEWAL_TIME, t1.to_be_bytes().to_vec());
            options.set(code::REBINDING_TIME, t2.to_be_bytes().to_vec());
        }
        let mut sent = [false; 256];
        let mut put = |options: &mut Options, c: u8, v: &[u8]| {
            if let Some(s) = sent.get_mut(usize::from(c))
                && !*s
            {
                *s = true;
                options.set(c, v.to_vec());
            }
        };
        if rapid {
            options.set(code::RAPID_COMMIT, Vec::new());
        }
        // RFC 8925 §3.3: only to a client that listed 108, in its place in the list.
        let v6only = self.ipv6_only().map(|v| v.wait.to_be_bytes());
        match self.pkt.options.get(code::PARAM_REQUEST_LIST) {
            Some(prl) => {
                for &c in prl {
                    if c == code::IPV6_ONLY_PREFERRED {
                        if let Some(w) = &v6only {
                            put(&mut options, c, w);
                        }
                        continue;
                    }
                    if let Some(v) = layers.requested(c).filter(|_| !core_owned(c)) {
                        put(&mut options, c, v);
                    }
                }
                for c in ALWAYS_SENT {
                    if let Some(v) = layers.get(c) {
                        put(&mut options, c, v);
                    }
                }
            }
            None => {
                for c in 1..=254u8 {
                    if let Some(v) = layers.get(c) {
                        put(&mut options, c, v);
                    }
                }
            }
        }
        // RFC 2563 §2.3: a client that sent Auto-Configure and is offered no address (only
        // an IPv6-only preferred OFFER has none) is told not to configure IPv4 link-local
        // either. Clients that predate RFC 8925's update of RFC 2563 (dhcpcd before 10.0.9)
        // honour option 108 in a 0.0.0.0 OFFER only beside it.
        if msg == MessageType::Offer
            && yiaddr.is_unspecified()
            && self.pkt.options.get(code::AUTO_CONFIGURE).is_some()
        {
            options.set(code::AUTO_CONFIGURE, vec![0]);
        }
        self.echo(&mut options);
        self.client_fqdn(&mut options);

        let packet = Packet {
            siaddr: layers.next_server.unwrap_or(Ipv4Addr::UNSPECIFIED),
            file: layers
                .boot_file
                .map(|f| f.as_bytes().to_vec())
                .unwrap_or_default(),
            ..self.header(yiaddr, ciaddr, self.pkt.flags, options)
        };
        let route = self.route(yiaddr, false);
        Reply {
            packet,
            max_len: self.max_len(),
            route,
        }
    }

    /// A NAK: 53, 54, 56, echoes; no address, no configuration; broadcast (via the relay
    /// with the broadcast bit set when relayed).
    pub(crate) fn build_nak(&self, reason: NakReason) -> Reply {
        let mut options = Options::new();
        options.set(code::MESSAGE_TYPE, vec![MessageType::Nak.code()]);
        options.set(code::SERVER_ID, self.server_id.octets().to_vec());
        options.set(code::MESSAGE, reason.text().as_bytes().to_vec());
        self.echo(&mut options);
        let relayed = nonzero(self.pkt.giaddr).is_some();
        let flags = if relayed {
            self.pkt.flags | BROADCAST_FLAG
        } else {
            self.pkt.flags
        };
        Reply {
            packet: self.header(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, flags, options),
            max_len: self.max_len(),
            route: self.route(Ipv4Addr::UNSPECIFIED, true),
        }
    }

    /// RFC 4702: a client that sent option 81 learns the name the server will use and who
    /// updates DNS, when its subnet does DDNS (a server that does not update sends nothing).
    fn client_fqdn(&self, options: &mut Options) {
        let Some(policy) = self
            .plan
            .network
            .client_fqdn
            .for_subnet(self.subnet.network)
        else {
            return;
        };
        let Some(client) = self
            .pkt
            .options
            .get(code::CLIENT_FQDN)
            .and_then(crate::fqdn::ClientFqdn::parse)
        else {
            return;
        };
        let hostname = self
            .c
            .hostname
            .as_deref()
            .or_else(|| self.reservation.and_then(|r| r.hostname.as_deref()));
        options.set(code::CLIENT_FQDN, policy.reply_option(&client, hostname));
    }

    /// RFC 6842: echo the client identifier; RFC 3046: echo Option 82 byte for byte.
    fn echo(&self, options: &mut Options) {
        if let Some(v) = self.pkt.options.get(code::CLIENT_ID) {
            options.set(code::CLIENT_ID, v.to_vec());
        }
        // Only relay data we believed is echoed (see `crate::trust`).
        if let Some(r) = &self.c.relay {
            options.set(code::RELAY_AGENT_INFO, r.raw.clone());
        }
    }

    fn header(&self, yiaddr: Ipv4Addr, ciaddr: Ipv4Addr, flags: u16, options: Options) -> Packet {
        let p = self.pkt;
        Packet {
            op: BOOTREPLY,
            htype: p.htype,
            hlen: p.hlen,
            hops: 0,
            xid: p.xid,
            secs: 0,
            flags,
            ciaddr,
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: p.giaddr,
            chaddr: p.chaddr,
            sname: Vec::new(),
            file: Vec::new(),
            options,
            option82_in_overload: false,
        }
    }

    /// Option 57 (at least 576); a malformed 57 counts as absent.
    fn max_len(&self) -> usize {
        match self.pkt.options.get(code::MAX_MESSAGE_SIZE) {
            Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])).max(MIN_MAX_LEN),
            _ => MIN_MAX_LEN,
        }
    }

    /// RFC 2131 §4.1: giaddr → relay; NAK → broadcast; ciaddr → unicast; broadcast bit (or
    /// nothing to unicast to) → broadcast; else unicast to yiaddr at chaddr.
    fn route(&self, yiaddr: Ipv4Addr, nak: bool) -> Route {
        let p = self.pkt;
        if let Some(giaddr) = nonzero(p.giaddr) {
            // RFC 8357: a relay that sent sub-option 19 listens on the port it sent from.
            let relay_port = self
                .c
                .relay
                .as_ref()
                .is_some_and(|r| r.relay_port)
                .then_some(self.req.src_port)
                .flatten()
                .filter(|_| {
                    crate::trust::relay_port_allowed(
                        self.req,
                        &self.plan.network.relay_trust,
                        giaddr,
                    )
                });
            return Route::Relay {
                giaddr,
                port: relay_port.unwrap_or(SERVER_PORT),
            };
        }
        if nak {
            return Route::Broadcast;
        }
        if let Some(ciaddr) = nonzero(p.ciaddr) {
            return Route::Unicast(ciaddr);
        }
        if p.broadcast() || yiaddr.is_unspecified() || p.chaddr().is_empty() {
            return Route::Broadcast;
        }
        Route::Hardware {
            yiaddr,
            chaddr: HwAddr(p.chaddr().to_vec()),
            htype: p.htype,
        }
    }
}

/// `value * num / den` without overflow.
fn scale(value: u32, num: u64, den: u64) -> u32 {
    u32::try_from(u64::from(value) * num / den).unwrap_or(u32::MAX)
}
