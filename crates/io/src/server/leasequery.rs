//! The driver's side of leasequery: UDP queries answered from the engine's table, the steps of
//! bulk answers and catch-ups asked for by TCP connections, and the active queries' streams
//! fed from the lease events the driver already fans out.
//!
//! Exactly once, in order: an active query's catch-up walks the table in address order; a
//! lease event of an address the walk has passed is queued for the stream (it is newer than
//! what the walk sent), one of an address still ahead is left to the walk (which will send its
//! newest state). Addresses whose change waits for a commit are left out of the walk: their
//! event follows the commit. The stream's queue is bounded; a reader that lets it fill is cut
//! off (DataMissing), never buffered without bound.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use leased_core::Route;
use leased_engine::LeaseEvent;
use leased_engine::leasequery::{self as lq, Context, Transport};
use leased_wire::Packet;
use leased_wire::leasequery::msg;
use tokio::sync::mpsc;

use super::Driver;
use crate::leasequery::{LqRequest, STEP};
use crate::recv::Inbound;

/// One active query's stream.
#[derive(Debug)]
pub(super) struct Sub {
    xid: u32,
    server_id: Ipv4Addr,
    tx: mpsc::Sender<Packet>,
    cut: Arc<AtomicBool>,
    /// The catch-up has walked up to here (`None`: not begun).
    walked: Option<Ipv4Addr>,
    /// The catch-up is over: every change goes to the stream.
    live: bool,
}

/// The driver's leasequery state. Subscribers are bounded by the listener's connection limit.
#[derive(Debug, Default)]
pub(super) struct LqSide {
    pub(super) rx: Option<mpsc::Receiver<LqRequest>>,
    subs: HashMap<u64, Sub>,
}

impl LqSide {
    /// The next request from a connection, or never without a listener.
    pub(super) async fn next(&mut self) -> Option<LqRequest> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// True for a datagram of leasequery's message types (10–18).
pub(super) fn is_leasequery(p: &Packet) -> bool {
    lq::message_type(p).is_some_and(msg::is_leasequery)
}

impl Driver {
    /// A UDP leasequery (RFC 4388): requestors outside `[leasequery] allow` (by source and by
    /// giaddr, where the answer goes) are dropped and counted, as is anything but a
    /// DHCPLEASEQUERY; the answer goes to giaddr on port 67.
    pub(super) fn udp_leasequery(&mut self, inbound: Inbound) {
        let loaded = self.current.load();
        let Some(settings) = &loaded.config.leasequery else {
            self.metrics.dropped("leasequery_refused");
            return;
        };
        let packet = &inbound.req.packet;
        let src = inbound.origin.src.map(|a| *a.ip());
        let giaddr = packet.giaddr;
        if !src.is_some_and(|a| settings.acl.allows(a))
            || giaddr.is_unspecified()
            || !settings.acl.allows(giaddr)
        {
            self.metrics.dropped("leasequery_refused");
            tracing::debug!(src = ?src, %giaddr, "leasequery from outside the ACL dropped");
            return;
        }
        if lq::message_type(packet) != Some(msg::LEASEQUERY) {
            self.metrics.dropped("leasequery_malformed");
            return;
        }
        let parsed = match lq::parse(packet, false) {
            Ok(p) => p,
            Err(r) => {
                self.metrics.dropped("leasequery_malformed");
                tracing::debug!(src = ?src, reason = r.label, "malformed leasequery dropped");
                return;
            }
        };
        let cx = Context {
            server_id: inbound.origin.local.unwrap_or(Ipv4Addr::UNSPECIFIED),
            now: self.now().wall,
            transport: Transport::Udp,
        };
        let answer = lq::answer_udp(self.engine.table(), self.engine.plan(), &parsed, &cx);
        let max_len = packet
            .options
            .get(leased_wire::code::MAX_MESSAGE_SIZE)
            .and_then(|v| <[u8; 2]>::try_from(v).ok())
            .map_or(576, |b| usize::from(u16::from_be_bytes(b)));
        tracing::info!(
            src = ?src, query = ?parsed.query,
            answer = msg::name(lq::message_type(&answer).unwrap_or(0)),
            ip = %answer.ciaddr,
            "LEASEQUERY answered"
        );
        let reply = leased_core::Reply {
            packet: answer,
            max_len,
            route: Route::Relay { giaddr, port: 67 },
        };
        if let Err(e) = self.out.send(&reply, &inbound.origin) {
            self.metrics.send_error();
            tracing::warn!(%giaddr, error = %e, "leasequery answer not sent");
        }
    }

    /// A request from a TCP connection.
    pub(super) fn lq_request(&mut self, req: LqRequest) {
        match req {
            LqRequest::Step {
                mut cursor,
                server_id,
                sub,
                reply,
            } => {
                let cx = Context {
                    server_id,
                    now: self.now().wall,
                    transport: Transport::Tcp,
                };
                let skip = self.engine.pending_addresses();
                let answers = cursor.step(self.engine.table(), &skip, STEP, &cx);
                if let Some(s) = sub.and_then(|id| self.lq.subs.get_mut(&id)) {
                    s.walked = cursor.position();
                    s.live = cursor.finished();
                }
                // The connection may have gone; then nobody wants the answers.
                let _ = reply.send((cursor, answers));
            }
            LqRequest::Subscribe {
                id,
                xid,
                server_id,
                tx,
                cut,
            } => {
                self.lq.subs.insert(
                    id,
                    Sub {
                        xid,
                        server_id,
                        tx,
                        cut,
                        walked: None,
                        live: false,
                    },
                );
            }
            LqRequest::Unsubscribe { id } => {
                self.lq.subs.remove(&id);
            }
        }
    }

    /// A durable lease change: to every active query whose catch-up has passed its address.
    pub(super) fn lq_event(&mut self, ev: &LeaseEvent) {
        if self.lq.subs.is_empty() {
            return;
        }
        let Some(lease) = &ev.lease else { return };
        let now = self.now().wall;
        self.lq.subs.retain(|_, s| {
            if !s.live && s.walked.is_none_or(|w| lease.ip > w) {
                return true;
            }
            let cx = Context {
                server_id: s.server_id,
                now,
                transport: Transport::Tcp,
            };
            match s.tx.try_send(lq::update(lease, s.xid, &cx)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.cut.store(true, Ordering::Release);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}
