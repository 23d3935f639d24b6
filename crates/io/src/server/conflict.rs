//! Conflict check before OFFER (`[server] conflict_check`, off by default): is the address the
//! core chose really free? On-link an RFC 5227 ARP probe, behind a relay (or with `ping`) an
//! ICMP echo, each with a short timeout.
//!
//! Why it never serialises the server: core stays pure and decides as always (the offer is held
//! in the table for its client, so nobody else is offered the address meanwhile). Instead of
//! sending the OFFER, the engine hands it to a check task and goes on serving; the task's verdict
//! comes back through the engine's `select!`. Free: the held OFFER leaves, and the address is
//! not checked again for `conflict_check_cache`. Answered: the address is quarantined exactly as
//! a DECLINE would (state `Declined` for `decline_quarantine`), logged as `CONFLICT`, and the
//! request is decided again — core now picks another address, which is checked in turn (at most
//! [`MAX_ATTEMPTS`] addresses per request; then the client's retry starts over).
//!
//! Without CAP_NET_RAW a check cannot be made: the OFFER leaves unchecked and that is logged
//! once. At most [`MAX_IN_FLIGHT`] checks run at once; beyond that offers leave unchecked, so a
//! flood cannot pile up tasks.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hashlink::LruCache;
use leased_core::config::ConflictCheckMode;
use leased_core::{Durability, Event, LeaseChange, LeaseState, Plan, Reply, Request};
use leased_wire::MessageType;
use tokio::sync::mpsc;

use super::{Engine, Inbound, deliver, lazy_done};
use crate::monitor::{arp_sock, iface_mac, ping};
use crate::send::Origin;

/// Addresses tried for one request before giving up until the client retries.
pub(crate) const MAX_ATTEMPTS: u8 = 4;
/// Checks running at once, at most.
pub(crate) const MAX_IN_FLIGHT: usize = 1024;
/// Entries in the "checked and free" cache, at most.
const MAX_CACHE: usize = 65_536;

/// An OFFER waiting for its check.
#[derive(Debug)]
pub(crate) struct Pending {
    req: Request,
    origin: Origin,
    reply: Reply,
    event: Event,
    received: Instant,
    attempt: u8,
}

/// Who answered at the address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    via: &'static str,
    mac: Option<[u8; 6]>,
}

/// A finished check.
#[derive(Debug)]
pub(crate) struct Done {
    pending: Pending,
    answer: Option<Answer>,
}

/// The engine's conflict-check state.
pub(crate) struct ConflictCheck {
    tx: Option<mpsc::UnboundedSender<Done>>,
    rx: Option<mpsc::UnboundedReceiver<Done>>,
    /// Addresses that did not answer, until when they count as free.
    free_until: LruCache<Ipv4Addr, Instant>,
    in_flight: usize,
    /// The attempt number of the request being decided again (0: a fresh request).
    attempt: u8,
}

impl Default for ConflictCheck {
    fn default() -> Self {
        Self {
            tx: None,
            rx: None,
            free_until: LruCache::new(MAX_CACHE),
            in_flight: 0,
            attempt: 0,
        }
    }
}

impl std::fmt::Debug for ConflictCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConflictCheck")
            .field("cached_free", &self.free_until.len())
            .field("in_flight", &self.in_flight)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl ConflictCheck {
    /// The next finished check; pending forever while none was ever started.
    pub(crate) async fn next_done(&mut self) -> Option<Done> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    fn cached_free(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        match self.free_until.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.free_until.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Remembers `ip` as free for `for_secs`; a full cache forgets the address remembered
    /// least recently (O(1)), which is at worst checked again.
    fn remember_free(&mut self, ip: Ipv4Addr, for_secs: u32) {
        if for_secs == 0 {
            return;
        }
        self.free_until.insert(
            ip,
            Instant::now() + Duration::from_secs(u64::from(for_secs)),
        );
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// ARP-probes `ip` on interface `ifindex` (two probes, the second halfway through `timeout`);
/// the MAC that answered, if any.
async fn arp_answer(
    ifindex: u32,
    our_mac: [u8; 6],
    ip: Ipv4Addr,
    timeout: Duration,
) -> std::io::Result<Option<[u8; 6]>> {
    let sock = arp_sock::ArpSocket::open(ifindex)?;
    let probe = arp_sock::probe_payload(our_mac, ip);
    sock.send(&probe)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut resent = false;
    loop {
        let half = deadline - timeout / 2;
        let until = if resent { deadline } else { half };
        match tokio::time::timeout_at(until, sock.recv()).await {
            Ok(Ok(s)) if s.ip == ip => return Ok(Some(s.mac)),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) if !resent => {
                resent = true;
                // A lost probe is not a free address: ask once more.
                let _ = sock.send(&probe);
            }
            Err(_) => return Ok(None),
        }
    }
}

impl Engine {
    /// Called instead of sending a reply that needs no commit: true when it is an OFFER that
    /// the conflict check holds back (it will be sent, or replaced, by [`Engine::conflict_done`]).
    pub(super) fn conflict_hold(
        &mut self,
        plan: &Plan,
        req: &Request,
        reply: &Reply,
        origin: &Origin,
        event: &Event,
        received: Instant,
    ) -> bool {
        let settings = &plan.config.conflict_check;
        let ip = reply.packet.yiaddr;
        if settings.mode == ConflictCheckMode::Off
            || reply.packet.message_type() != Some(MessageType::Offer)
            || ip.is_unspecified()
            || self.conflict.cached_free(ip, Instant::now())
        {
            return false;
        }
        if self.conflict.in_flight >= MAX_IN_FLIGHT {
            tracing::debug!(%ip, "conflict checks at their limit: offering unchecked");
            return false;
        }
        let link = self.out.links.get(origin.link);
        let on_link = req.packet.giaddr.is_unspecified();
        let arp_via = link
            .filter(|_| on_link && settings.mode == ConflictCheckMode::Arp)
            .filter(|l| l.index != 0)
            .and_then(|l| Some((l.index, iface_mac(&l.name)?)));
        let timeout = Duration::from_millis(u64::from(settings.timeout_ms));
        if self.conflict.tx.is_none() {
            let (tx, rx) = mpsc::unbounded_channel();
            self.conflict.tx = Some(tx);
            self.conflict.rx = Some(rx);
        }
        let Some(tx) = self.conflict.tx.clone() else {
            return false;
        };
        let pending = Pending {
            req: req.clone(),
            origin: *origin,
            reply: reply.clone(),
            event: event.clone(),
            received,
            attempt: self.conflict.attempt,
        };
        self.conflict.in_flight += 1;
        tokio::spawn(async move {
            let result = match arp_via {
                Some((ifindex, mac)) => arp_answer(ifindex, mac, ip, timeout).await.map(|m| {
                    m.map(|mac| Answer {
                        via: "arp",
                        mac: Some(mac),
                    })
                }),
                None => ping::answers(ip, timeout).await.map(|yes| {
                    yes.then_some(Answer {
                        via: "ping",
                        mac: None,
                    })
                }),
            };
            let answer = match result {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(%ip, error = %e, "conflict check failed (needs CAP_NET_RAW); offering unchecked");
                    None
                }
            };
            // The engine may be shutting down; then nobody needs the verdict.
            let _ = tx.send(Done { pending, answer });
        });
        true
    }

    /// A check finished: send the held OFFER, or quarantine the address and decide again.
    pub(super) fn conflict_done(&mut self, done: Done) {
        self.conflict.in_flight = self.conflict.in_flight.saturating_sub(1);
        let Done { pending, answer } = done;
        let ip = pending.reply.packet.yiaddr;
        let plan = self.plan.load_full();
        let now = self.now();
        // The offer must still be this client's (it is held far longer than any timeout).
        let held = self
            .table
            .by_ip(ip)
            .filter(|l| {
                l.state == LeaseState::Offered
                    && l.is_active(now)
                    && l.hwaddr.0 == pending.req.packet.chaddr()
            })
            .cloned();
        let Some(lease) = held else {
            tracing::debug!(%ip, "offer changed while its conflict check ran; not sent");
            return;
        };
        let Some(answer) = answer else {
            self.conflict
                .remember_free(ip, plan.config.conflict_check.cache_secs);
            deliver(
                &self.out,
                &self.metrics,
                &pending.reply,
                &pending.origin,
                &pending.event,
                pending.received,
            );
            return;
        };
        let quarantine = plan.config.server.decline_quarantine;
        tracing::warn!(
            "CONFLICT ip={ip} answered_by={} via={} client={} attempt={}: quarantined for {quarantine}s, choosing another address",
            answer
                .mac
                .as_ref()
                .map_or_else(|| "-".to_string(), mac_text),
            answer.via,
            pending.event.hwaddr,
            pending.attempt + 1,
        );
        let change = LeaseChange {
            lease: leased_core::Lease {
                state: LeaseState::Declined,
                starts: now,
                expires: now.plus(quarantine),
                ..lease
            },
            durability: Durability::Lazy,
        };
        self.table.apply(std::slice::from_ref(&change));
        self.dirty = true;
        self.submit(
            vec![change.lease],
            lazy_done(std::sync::Arc::clone(&self.metrics)),
        );
        if pending.attempt + 1 >= MAX_ATTEMPTS {
            tracing::warn!(
                client = %pending.event.hwaddr,
                "{MAX_ATTEMPTS} addresses in a row answered; no offer now (the client's retry starts over)"
            );
            return;
        }
        self.conflict.attempt = pending.attempt + 1;
        self.handle(Inbound {
            req: pending.req,
            origin: pending.origin,
            received: pending.received,
        });
        self.conflict.attempt = 0;
    }
}
