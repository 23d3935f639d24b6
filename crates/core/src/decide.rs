//! The one entry point: packet + config + leases + time → reply + lease changes.
//!
//! The walk: [`classify`] (message type, client identity) → [`select_subnet`] (link
//! selection → 118 → giaddr → ciaddr → interface) → a handler per message type, which uses
//! `alloc` for addresses and `reply` to build the answer.

use std::net::Ipv4Addr;

use leased_wire::{MessageType, Packet};

use crate::classify::{Classified, Selected, classify, nonzero, select_subnet};
use crate::config::{Reservation, Subnet};
use crate::decision::{Decision, DropReason, Event, NakReason, Outcome};
use crate::lease::{
    ClientId, Durability, HwAddr, Lease, LeaseChange, LeaseState, LeaseTable, Timestamp,
};
use crate::plan::{Plan, SubnetPlan};
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
    let client = match classify(pkt) {
        Ok(c) => c,
        Err(reason) => return dropped(event, reason, Vec::new()),
    };
    let Selected { subnet, server_id } = match select_subnet(req, plan) {
        Ok(s) => s,
        Err(reason) => return dropped(event, reason, Vec::new()),
    };
    let (Some(subnet_cfg), Some(sp)) = (plan.config.subnets.get(subnet), plan.subnet_plan(subnet))
    else {
        return dropped(event, DropReason::NoSubnet, Vec::new());
    };
    let reservation = plan.reservation_for(subnet, &client.client_id, &client.hwaddr);
    let mut d = Decider {
        pkt,
        plan,
        leases,
        now,
        subnet: subnet_cfg,
        sp,
        server_id,
        reservation,
        event,
        c: client,
    };
    d.event.hostname = d.c.hostname.clone();
    match d.c.msg {
        MessageType::Discover => d.discover(),
        MessageType::Request => d.request(),
        MessageType::Decline => d.decline(),
        MessageType::Release => d.release(),
        MessageType::Inform => d.inform(),
        MessageType::Offer | MessageType::Ack | MessageType::Nak => {
            d.drop(DropReason::UnsupportedMessage, Vec::new())
        }
    }
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
    pub(crate) pkt: &'a Packet,
    pub(crate) plan: &'a Plan,
    pub(crate) leases: &'a LeaseTable,
    pub(crate) now: Timestamp,
    pub(crate) subnet: &'a Subnet,
    pub(crate) sp: &'a SubnetPlan,
    pub(crate) server_id: Ipv4Addr,
    /// This client's reservation in the selected subnet.
    pub(crate) reservation: Option<&'a Reservation>,
    pub(crate) event: Event,
    pub(crate) c: Classified,
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
        self.plan.config.banned_macs.contains_key(&self.c.hwaddr)
    }

    /// True when option 54 names another server (a malformed 54 is not ours either).
    fn for_other_server(&self) -> bool {
        matches!(self.c.server_id, Some(sid) if sid != Some(self.server_id))
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
        if !self.plan.config.server.authoritative {
            return self.drop(DropReason::NotAuthoritative, Vec::new());
        }
        self.event.nak = Some(reason);
        let reply = self.build_nak(reason);
        self.reply(reply, Vec::new())
    }

    /// Lease time for this subnet.
    pub(crate) fn lease_time(&self) -> u32 {
        self.subnet
            .lease_time
            .unwrap_or(self.plan.config.server.lease_time)
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
        }
    }

    /// Gives up the client's other active offers (and, when `bindings_too`, bindings) in this
    /// subnet: one client, one address per subnet.
    fn let_go_of_others(&self, keep: Ipv4Addr, bindings_too: bool) -> Vec<LeaseChange> {
        self.leases
            .leases_of(self.client_id())
            .filter(|l| l.ip != keep && l.is_active(self.now))
            .filter(|l| self.subnet.network.contains(&l.ip))
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

    // ----- DISCOVER -------------------------------------------------------------------------

    fn discover(mut self) -> Decision {
        if self.banned() {
            return self.drop(DropReason::BannedClient, Vec::new());
        }
        let Some(ip) = self.allocate() else {
            return self.drop(DropReason::PoolExhausted, Vec::new());
        };
        self.event.ip = Some(ip);
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
                self.now.plus(self.plan.config.server.offer_hold),
            );
            let h = lease.hostname.clone();
            changes.push(LeaseChange {
                lease,
                durability: Durability::Volatile,
            });
            h
        };
        changes.extend(self.let_go_of_others(ip, false));
        self.event.hostname = self.event.hostname.take().or(hostname);
        let reply = self.build_reply(MessageType::Offer, ip, Ipv4Addr::UNSPECIFIED, true);
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
        if self.plan.config.server.authoritative {
            self.nak(NakReason::BannedClient, None)
        } else {
            self.drop(DropReason::BannedClient, Vec::new())
        }
    }

    fn ack(mut self, ip: Ipv4Addr) -> Decision {
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
                expires: self.now.plus(self.plan.config.server.decline_quarantine),
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
