//! The one entry point: packet + config + leases + time → reply + lease changes.
//!
//! The walk: [`classify`] (message type, client identity) → [`select_subnet`] (link
//! selection → 118 → giaddr → ciaddr → interface) → a handler per message type, which uses
//! `alloc` for addresses and `reply` to build the answer.

use std::net::Ipv4Addr;

use leased_wire::{MessageType, Packet, code};

use crate::class::class_of;
use crate::classify::{Classified, classify, nonzero, select_subnet};
use crate::decision::{Decision, DropReason, Event, NakReason, Outcome};
use crate::lease::{
    ClientId, Durability, HwAddr, Lease, LeaseChange, LeaseState, LeaseTable, Timestamp,
};
use crate::model::{ClientClass, Reservation, Subnet};
use crate::plan::{Plan, SubnetPlan};
use crate::relay::{RelayInfo, RelayKeys};
use crate::request::Request;

/// Decides the reply to one request. Pure: same inputs, same output.
///
/// `now` must not go backwards between calls on one table (io samples it once per packet).
/// io applies `changes` to `leases` before deciding the next packet, so that an address offered
/// here is seen as taken by the next DISCOVER.
pub fn decide(req: &Request, plan: &Plan, leases: &LeaseTable, now: Timestamp) -> Decision {
    let pkt = &req.packet;
    let event = Event {
        received: pkt.message_type(),
        sent: None,
        xid: pkt.xid,
        hwaddr: HwAddr(pkt.chaddr().to_vec()),
        ip: None,
        hostname: None,
        nak: None,
        drop: None,
    };
    let relay_trusted = crate::trust::judge(req, &plan.network.relay_trust).is_ok();
    let client = match classify(pkt, relay_trusted) {
        Ok(c) => c,
        Err(reason) => return dropped(event, reason, Vec::new()),
    };
    let sel = match select_subnet(req, plan, client.relay.as_ref()) {
        Ok(s) => s,
        Err(reason) => return dropped(event, reason, Vec::new()),
    };
    let relay = effective_relay(&client, pkt, leases);
    let group = plan.link_group(sel.subnet);
    let class = class_of(&plan.network, pkt, client.hostname.as_deref(), &relay);
    // An SQL assignment (io ran the chain before this packet reached us) comes first: it is
    // a fixed address for this client, placed exactly like a reservation so that every rule
    // for reservations (never a network/broadcast/router address, another client's active
    // lease blocks it, REQUESTs for another address are NAKed) holds for it too.
    let assigned = req
        .assignment
        .as_ref()
        .and_then(|a| assignment_reservation(a, &client.client_id, plan, group));
    let reservation = assigned
        .as_ref()
        .map(|(si, r)| (*si, r))
        .or_else(|| plan.reservation_among(group, &client.client_id, &client.hwaddr, &relay));
    let class_subnet = class
        .and_then(|c| plan.network.classes.get(c)?.pool)
        .map(|(si, _)| si)
        .filter(|si| group.contains(si));
    let in_group = |ip: Ipv4Addr| {
        group.iter().copied().find(|i| {
            plan.network
                .subnets
                .get(*i)
                .is_some_and(|s| s.network.contains(&ip))
        })
    };
    let first = if let Some((si, _)) = reservation {
        si
    } else if client.msg == MessageType::Discover {
        class_subnet
            .or_else(|| {
                leases
                    .by_client(&client.client_id)
                    .and_then(|l| in_group(l.ip))
            })
            .unwrap_or(sel.subnet)
    } else {
        client
            .requested_ip
            .or_else(|| nonzero(pkt.ciaddr))
            .and_then(in_group)
            .unwrap_or(sel.subnet)
    };
    let mut order = Vec::with_capacity(group.len().max(1));
    order.push(first);
    // Only dynamic allocation moves on to the link's other subnets; a reservation or a class
    // pool pins the subnet.
    if reservation.is_none() && class_subnet.is_none() {
        order.extend(group.iter().copied().filter(|i| *i != first));
    }
    let mut last = None;
    for si in order {
        let (Some(subnet_cfg), Some(base)) = (plan.network.subnets.get(si), plan.subnet_plan(si))
        else {
            continue;
        };
        let class_plan = class
            .filter(|_| class_subnet == Some(si))
            .and_then(|c| plan.class_plan(c));
        let mut d = Decider {
            req,
            pkt,
            plan,
            leases,
            now,
            subnet: subnet_cfg,
            sp: class_plan.unwrap_or(base),
            group,
            server_id: sel.server_id,
            own_server_id: sel.own_server_id,
            reservation: reservation.filter(|(rs, _)| *rs == si).map(|(_, r)| r),
            class: class.and_then(|c| plan.network.classes.get(c)),
            relay: relay.clone(),
            event: event.clone(),
            c: client.clone(),
            assigned_lease_time: req
                .assignment
                .as_ref()
                .filter(|_| assigned.is_some())
                .and_then(|a| a.lease_time),
            port_owned: match (&assigned, reservation) {
                (Some(_), Some(_)) => {
                    plan.network.sql_assignment_owner == Some(crate::sql::SqlOwner::Port)
                }
                (None, Some((_, r))) => r.key.is_relay(),
                (_, None) => false,
            },
        };
        d.event.hostname = d.c.hostname.clone();
        let decision = match d.c.msg {
            MessageType::Discover => d.discover(),
            MessageType::Request => d.request(),
            MessageType::Decline => d.decline(),
            MessageType::Release => d.release(),
            MessageType::Inform => d.inform(),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                d.drop(DropReason::UnsupportedMessage, Vec::new())
            }
        };
        if decision.drop_reason() == Some(DropReason::PoolExhausted) {
            last = Some(decision);
            continue;
        }
        return decision;
    }
    last.unwrap_or_else(|| dropped(event, DropReason::NoSubnet, Vec::new()))
}

/// The relay data this client is known by: its Option 82 when well formed; else (a unicast
/// renewal, or a relay that mangled the option) what its lease at the address it asks about
/// remembers.
fn effective_relay(c: &Classified, pkt: &Packet, leases: &LeaseTable) -> RelayKeys {
    if let Some(keys) = c
        .relay
        .as_ref()
        .map(RelayInfo::keys)
        .filter(|k| !k.is_empty())
    {
        return keys;
    }
    c.requested_ip
        .or_else(|| nonzero(pkt.ciaddr))
        .and_then(|ip| leases.by_ip(ip))
        .filter(|l| l.client_id == c.client_id)
        .map(|l| RelayKeys {
            circuit_id: l.circuit_id.clone(),
            remote_id: l.remote_id.clone(),
            subscriber_id: l.subscriber_id.clone(),
            raw: None,
        })
        .unwrap_or_default()
}

/// The SQL assignment as a reservation for this client in the link's subnet that contains
/// its address (`None` when no subnet of the link does: leased cannot speak for an address it
/// has no subnet for, so the client is then served like one without an assignment).
fn assignment_reservation(
    a: &crate::request::Assignment,
    client_id: &ClientId,
    plan: &Plan,
    group: &[usize],
) -> Option<(usize, Reservation)> {
    let si = group.iter().copied().find(|i| {
        plan.network
            .subnets
            .get(*i)
            .is_some_and(|s| s.network.contains(&a.ip))
    })?;
    let mut options = crate::model::OptionSet::default();
    if let Some(m) = a.mask {
        options.values.insert(1, m.octets().to_vec());
    }
    let list = |v: &[Ipv4Addr]| v.iter().flat_map(|ip| ip.octets()).collect::<Vec<u8>>();
    if !a.router.is_empty() {
        options.values.insert(3, list(&a.router));
    }
    if !a.dns.is_empty() {
        options.values.insert(6, list(&a.dns));
    }
    for (code, v) in &a.options {
        // Codes core owns (53, 54, 51, 58, 59, 82, pad, end) are not the row's to set.
        if !matches!(code, 0 | 51 | 53 | 54 | 58 | 59 | 82 | 255) {
            options.values.insert(*code, v.clone());
        }
    }
    Some((
        si,
        Reservation {
            key: crate::model::ReservationKey::ClientId(client_id.clone()),
            ip: a.ip,
            hostname: a.hostname.clone(),
            metadata: crate::model::Metadata::default(),
            options,
        },
    ))
}

/// A finished drop.
fn dropped(mut event: Event, reason: DropReason, changes: Vec<LeaseChange>) -> Decision {
    event.drop = Some(reason);
    Decision {
        outcome: Outcome::Drop(reason),
        changes,
        event,
    }
}

/// Everything one decision reads, gathered once.
pub(crate) struct Decider<'a> {
    pub(crate) req: &'a Request,
    pub(crate) pkt: &'a Packet,
    pub(crate) plan: &'a Plan,
    pub(crate) leases: &'a LeaseTable,
    pub(crate) now: Timestamp,
    pub(crate) subnet: &'a Subnet,
    /// The subnet's plan, or the client's class pool plan.
    pub(crate) sp: &'a SubnetPlan,
    /// The subnets sharing this link.
    pub(crate) group: &'a [usize],
    /// Option 54 of replies (the relay's override, else ours).
    pub(crate) server_id: Ipv4Addr,
    /// Our own identifier here, accepted as ours even under an override.
    pub(crate) own_server_id: Ipv4Addr,
    /// This client's reservation in the selected subnet.
    pub(crate) reservation: Option<&'a Reservation>,
    /// The client's class, if one matched.
    pub(crate) class: Option<&'a ClientClass>,
    /// The client's relay data (packet, else lease).
    pub(crate) relay: RelayKeys,
    pub(crate) event: Event,
    pub(crate) c: Classified,
    /// Lease time from the client's SQL assignment, over the subnet's.
    pub(crate) assigned_lease_time: Option<u32>,
    /// The reservation is the port's, not the client's: a relay-keyed reservation, or an SQL
    /// row with `owner = "port"`. The device now on the port takes its address over.
    pub(crate) port_owned: bool,
}

/// The REQUEST variants of RFC 2131 §4.3.2.
enum RequestState {
    Selecting,
    InitReboot(Ipv4Addr),
    Renewing(Ipv4Addr),
}

impl Decider<'_> {
    fn client_id(&self) -> &ClientId {
        &self.c.client_id
    }

    fn banned(&self) -> bool {
        self.plan.network.banned_macs.contains_key(&self.c.hwaddr)
    }

    /// True when option 54 names another server (a malformed 54 is not ours either).
    fn for_other_server(&self) -> bool {
        matches!(self.c.server_id,
            Some(sid) if sid != Some(self.server_id) && sid != Some(self.own_server_id))
    }

    /// True when `ip` lies in one of the subnets of this link.
    fn on_link(&self, ip: Ipv4Addr) -> bool {
        self.group.iter().any(|i| {
            self.plan
                .network
                .subnets
                .get(*i)
                .is_some_and(|s| s.network.contains(&ip))
        }) || self.subnet.network.contains(&ip)
    }

    /// True when a new lease for this client would exceed a per-circuit or per-remote-id cap
    /// (its own leases do not count).
    fn over_circuit_cap(&self) -> bool {
        // A port reservation already means one address per port; the device replacing the
        // old one on that port must not be refused because the old lease still counts.
        if self.port_owned {
            return false;
        }
        let server = &self.plan.network.server;
        let remote = self.relay.remote_id.as_deref();
        let cap_c = self
            .subnet
            .max_leases_per_circuit_id
            .or(server.max_leases_per_circuit_id);
        if let (Some(cap), Some(c)) = (cap_c, self.relay.circuit_id.as_deref())
            && self
                .leases
                .active_on_circuit(remote, c, &self.c.client_id, self.now)
                >= usize::try_from(cap).unwrap_or(usize::MAX)
        {
            return true;
        }
        let cap_r = self
            .subnet
            .max_leases_per_remote_id
            .or(server.max_leases_per_remote_id);
        matches!((cap_r, remote), (Some(cap), Some(r))
            if self.leases.active_on_remote(r, &self.c.client_id, self.now)
                >= usize::try_from(cap).unwrap_or(usize::MAX))
    }

    fn drop(mut self, reason: DropReason, changes: Vec<LeaseChange>) -> Decision {
        self.event.drop = Some(reason);
        Decision {
            outcome: Outcome::Drop(reason),
            changes,
            event: self.event,
        }
    }

    fn reply(mut self, reply: crate::decision::Reply, changes: Vec<LeaseChange>) -> Decision {
        self.event.sent = reply.packet.message_type();
        Decision {
            outcome: Outcome::Reply(reply),
            changes,
            event: self.event,
        }
    }

    /// A NAK when authoritative, silence otherwise. Never changes a lease.
    fn nak(mut self, reason: NakReason, ip: Option<Ipv4Addr>) -> Decision {
        self.event.ip = ip.or(self.event.ip);
        if !self.plan.network.server.authoritative {
            return self.drop(DropReason::NotAuthoritative, Vec::new());
        }
        self.event.nak = Some(reason);
        let reply = self.build_nak(reason);
        self.reply(reply, Vec::new())
    }

    /// Lease time for this subnet.
    pub(crate) fn lease_time(&self) -> u32 {
        self.assigned_lease_time
            .or(self.subnet.lease_time)
            .unwrap_or(self.plan.network.server.lease_time)
    }

    /// The hostname to record: the client's, else its reservation's, else what we knew.
    fn hostname_for(&self, previous: Option<&Lease>) -> Option<String> {
        self.c
            .hostname
            .clone()
            .or_else(|| self.reservation.and_then(|r| r.hostname.clone()))
            .or_else(|| previous.and_then(|l| l.hostname.clone()))
    }

    /// The client's own lease at `ip`, in any state.
    fn own_lease(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.leases
            .by_ip(ip)
            .filter(|l| l.client_id == self.c.client_id)
    }

    /// A new lease record for this client at `ip`.
    fn lease(&self, ip: Ipv4Addr, state: LeaseState, expires: Timestamp) -> Lease {
        let previous = self.own_lease(ip);
        Lease {
            ip,
            client_id: self.c.client_id.clone(),
            hwaddr: self.c.hwaddr.clone(),
            hostname: self.hostname_for(previous),
            state,
            starts: self.now,
            expires,
            first_seen: previous.map_or(self.now, |l| l.first_seen),
            circuit_id: self.relay.circuit_id.clone(),
            remote_id: self.relay.remote_id.clone(),
            subscriber_id: self.relay.subscriber_id.clone(),
        }
    }

    /// Gives up the client's other active offers (and, when `bindings_too`, bindings) in this
    /// subnet: one client, one address per subnet.
    fn let_go_of_others(&self, keep: Ipv4Addr, bindings_too: bool) -> Vec<LeaseChange> {
        self.leases
            .leases_of(self.client_id())
            .filter(|l| l.ip != keep && l.is_active(self.now))
            .filter(|l| self.on_link(l.ip))
            .filter(|l| {
                l.state == LeaseState::Offered || (bindings_too && l.state == LeaseState::Bound)
            })
            .map(|l| LeaseChange {
                durability: if l.state == LeaseState::Offered {
                    Durability::Volatile
                } else {
                    Durability::Lazy
                },
                lease: Lease {
                    state: LeaseState::Released,
                    expires: self.now,
                    ..l.clone()
                },
            })
            .collect()
    }

    /// RFC 8925 for this client: its class's setting, else its subnet's, and only when the
    /// client listed option 108 in its parameter request list (§3.3: never unasked).
    pub(crate) fn ipv6_only(&self) -> Option<crate::model::Ipv6Only> {
        let asked = self
            .pkt
            .options
            .get(code::PARAM_REQUEST_LIST)
            .is_some_and(|prl| prl.contains(&code::IPV6_ONLY_PREFERRED));
        if !asked {
            return None;
        }
        self.class
            .and_then(|c| c.ipv6_only)
            .or(self.subnet.ipv6_only)
    }

    /// RFC 4039: this subnet answers rapid commit and the DISCOVER carries option 80.
    fn rapid_commit(&self) -> bool {
        self.subnet.rapid_commit && self.pkt.options.get(code::RAPID_COMMIT).is_some()
    }

    /// The release of another device's binding at `ip` when this client takes a port's address
    /// over: the store must forget that binding too, or a restart would bring it back. The old
    /// device's binding ends first (a RELEASE of its own row, which a shared store accepts),
    /// then the new lease is written over it.
    fn take_over(&self, ip: Ipv4Addr) -> Option<LeaseChange> {
        self.leases
            .by_ip(ip)
            .filter(|l| {
                l.client_id != self.c.client_id
                    && l.state == LeaseState::Bound
                    && l.is_active(self.now)
            })
            .map(|old| LeaseChange {
                lease: Lease {
                    state: LeaseState::Released,
                    expires: self.now,
                    ..old.clone()
                },
                durability: Durability::Lazy,
            })
    }

    // ----- DISCOVER -------------------------------------------------------------------------

    fn discover(mut self) -> Decision {
        if self.banned() {
            return self.drop(DropReason::BannedClient, Vec::new());
        }
        // RFC 8925 §3.3: an IPv6-only capable client is offered no address at all; nothing is
        // taken from the pool and nothing is bound (rapid commit has nothing to commit).
        if self
            .ipv6_only()
            .is_some_and(|v| v.address == crate::model::Ipv6OnlyAddress::None)
        {
            let reply = self.build_reply(
                MessageType::Offer,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                false,
            );
            return self.reply(reply, Vec::new());
        }
        if self.over_circuit_cap() {
            return self.drop(DropReason::CircuitLimit, Vec::new());
        }
        let Some(ip) = self.allocate() else {
            return self.drop(DropReason::PoolExhausted, Vec::new());
        };
        self.event.ip = Some(ip);
        if self.rapid_commit() {
            return self.rapid_ack(ip);
        }
        let mut changes = Vec::with_capacity(1);
        let keep_binding = self
            .own_lease(ip)
            .is_some_and(|l| l.state == LeaseState::Bound && l.is_active(self.now));
        let hostname = if keep_binding {
            self.own_lease(ip).and_then(|l| l.hostname.clone())
        } else {
            let lease = self.lease(
                ip,
                LeaseState::Offered,
                self.now.plus(self.plan.network.server.offer_hold),
            );
            let h = lease.hostname.clone();
            let taken = self.take_over(ip);
            let takes_over = taken.is_some();
            changes.extend(taken);
            changes.push(LeaseChange {
                lease,
                durability: if takes_over {
                    Durability::Lazy
                } else {
                    Durability::Volatile
                },
            });
            h
        };
        changes.extend(self.let_go_of_others(ip, false));
        self.event.hostname = self.event.hostname.take().or(hostname);
        let reply = self.build_reply(MessageType::Offer, ip, Ipv4Addr::UNSPECIFIED, true);
        self.reply(reply, changes)
    }

    /// RFC 4039 §4: the DISCOVER is answered as if it were the REQUEST for `ip`: the lease is
    /// bound and must be durable before the ACK leaves, exactly like an ACK to a REQUEST. The
    /// caps and the allocation rules were applied as for an offer.
    fn rapid_ack(mut self, ip: Ipv4Addr) -> Decision {
        let lease = self.lease(ip, LeaseState::Bound, self.now.plus(self.lease_time()));
        self.event.hostname = lease.hostname.clone();
        let mut changes = Vec::with_capacity(2);
        changes.extend(self.take_over(ip));
        changes.push(LeaseChange {
            lease,
            durability: Durability::BeforeReply,
        });
        changes.extend(self.let_go_of_others(ip, true));
        let reply = self.build_rapid_ack(ip);
        self.reply(reply, changes)
    }

    // ----- REQUEST --------------------------------------------------------------------------

    fn request(self) -> Decision {
        let state = if self.c.server_id.is_some() {
            RequestState::Selecting
        } else if let Some(ip) = self.c.requested_ip {
            RequestState::InitReboot(ip)
        } else if let Some(ip) = nonzero(self.pkt.ciaddr) {
            RequestState::Renewing(ip)
        } else {
            if self.banned() {
                return self.refuse_banned();
            }
            return self.nak(NakReason::NoLease, None);
        };

        if let RequestState::Selecting = state
            && self.for_other_server()
        {
            // The client chose another server: our offer is free again.
            let changes: Vec<LeaseChange> = self
                .leases
                .leases_of(self.client_id())
                .filter(|l| l.state == LeaseState::Offered && l.is_active(self.now))
                .map(|l| LeaseChange {
                    lease: Lease {
                        state: LeaseState::Released,
                        expires: self.now,
                        ..l.clone()
                    },
                    durability: Durability::Volatile,
                })
                .collect();
            return self.drop(DropReason::NotForUs, changes);
        }
        if self.banned() {
            return self.refuse_banned();
        }
        let ip = match state {
            RequestState::Selecting => {
                match self.c.requested_ip.or_else(|| nonzero(self.pkt.ciaddr)) {
                    Some(ip) => ip,
                    None => return self.nak(NakReason::NoLease, None),
                }
            }
            RequestState::InitReboot(ip) | RequestState::Renewing(ip) => ip,
        };
        if let Err(reason) = self.check_allocatable(ip) {
            return self.nak(reason, Some(ip));
        }
        if !matches!(state, RequestState::Selecting)
            && let Some(r) = self.reservation
            && r.ip != ip
            && self.reservation_usable(r)
        {
            return self.nak(NakReason::ReservedElsewhere, Some(ip));
        }
        self.ack(ip)
    }

    /// Banned client's REQUEST: NAK when authoritative (so it stops using the address).
    fn refuse_banned(self) -> Decision {
        if self.plan.network.server.authoritative {
            self.nak(NakReason::BannedClient, None)
        } else {
            self.drop(DropReason::BannedClient, Vec::new())
        }
    }

    fn ack(mut self, ip: Ipv4Addr) -> Decision {
        let renewing = self
            .held_by_client(ip)
            .is_some_and(|l| l.is_active(self.now));
        if !renewing && self.over_circuit_cap() {
            self.event.ip = Some(ip);
            return self.drop(DropReason::CircuitLimit, Vec::new());
        }
        let lease = self.lease(ip, LeaseState::Bound, self.now.plus(self.lease_time()));
        self.event.ip = Some(ip);
        self.event.hostname = lease.hostname.clone();
        let mut changes = vec![LeaseChange {
            lease,
            durability: Durability::BeforeReply,
        }];
        changes.extend(self.let_go_of_others(ip, true));
        let reply = self.build_reply(MessageType::Ack, ip, self.pkt.ciaddr, true);
        self.reply(reply, changes)
    }

    // ----- DECLINE / RELEASE / INFORM -------------------------------------------------------

    fn decline(mut self) -> Decision {
        if self.for_other_server() {
            return self.drop(DropReason::NotForUs, Vec::new());
        }
        let Some(ip) = self.c.requested_ip else {
            return self.drop(DropReason::NotOwner, Vec::new());
        };
        self.event.ip = Some(ip);
        let Some(lease) = self.held_by_client(ip) else {
            return self.drop(DropReason::NotOwner, Vec::new());
        };
        let change = LeaseChange {
            lease: Lease {
                state: LeaseState::Declined,
                starts: self.now,
                expires: self.now.plus(self.plan.network.server.decline_quarantine),
                ..lease.clone()
            },
            durability: Durability::Lazy,
        };
        self.drop(DropReason::NoReplyNeeded, vec![change])
    }

    fn release(mut self) -> Decision {
        if self.for_other_server() {
            return self.drop(DropReason::NotForUs, Vec::new());
        }
        let Some(ip) = nonzero(self.pkt.ciaddr) else {
            return self.drop(DropReason::NotOwner, Vec::new());
        };
        self.event.ip = Some(ip);
        let Some(lease) = self.held_by_client(ip) else {
            return self.drop(DropReason::NotOwner, Vec::new());
        };
        let change = LeaseChange {
            lease: Lease {
                state: LeaseState::Released,
                expires: self.now,
                ..lease.clone()
            },
            durability: Durability::Lazy,
        };
        self.drop(DropReason::NoReplyNeeded, vec![change])
    }

    /// The client's offer or binding at `ip` (even if lapsed and not yet expired).
    fn held_by_client(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.own_lease(ip)
            .filter(|l| matches!(l.state, LeaseState::Offered | LeaseState::Bound))
    }

    fn inform(mut self) -> Decision {
        if self.banned() {
            return self.drop(DropReason::BannedClient, Vec::new());
        }
        self.event.ip = nonzero(self.pkt.ciaddr);
        let reply = self.build_reply(
            MessageType::Ack,
            Ipv4Addr::UNSPECIFIED,
            self.pkt.ciaddr,
            false,
        );
        self.reply(reply, Vec::new())
    }
}
