//! Counters of what the server received, sent and dropped, and why.
//!
//! Why plain atomics and a small locked map: the engine, the receive tasks and the commit thread
//! all count, and nothing here may ever wait for long; labelled families (drop reasons, malformed
//! labels) are few and static, so a map keyed by `&'static str` behind a mutex that is never
//! held across an await is enough. An HTTP `/metrics` endpoint will read [`Metrics::snapshot`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use leased_store::history::HistoryCounters;
use leased_wire::MessageType;

/// Every message type, in option 53 order, for indexing the per-type counters.
const TYPES: [MessageType; 8] = [
    MessageType::Discover,
    MessageType::Offer,
    MessageType::Request,
    MessageType::Decline,
    MessageType::Ack,
    MessageType::Nak,
    MessageType::Release,
    MessageType::Inform,
];

/// The server's counters. Shared as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Index 0 counts packets with no (known) message type; 1..=8 by option 53 code.
    received: [AtomicU64; 9],
    sent: [AtomicU64; 9],
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    malformed: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests whose Option 82 was not believed and removed, by `trust::Untrusted::label`.
    untrusted_option82: Mutex<BTreeMap<&'static str, u64>>,
    /// SQL assignment rows not served, by reason (`held`, `outside`, `unusable`).
    sql_assignment_skipped: Mutex<BTreeMap<&'static str, u64>>,
    store_errors: AtomicU64,
    send_errors: AtomicU64,
    expired: AtomicU64,
    /// Reply latency (request received → reply handed to the kernel): one count per bucket of
    /// [`LATENCY_BUCKETS`], the last slot for slower replies; plus the sum in microseconds.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    /// OFFER/ACK frames from foreign DHCP servers seen by the rogue-server monitor.
    foreign_replies: AtomicU64,
    /// Foreign DHCP servers known (a gauge).
    foreign_servers: AtomicU64,
    /// The lease history's writes, fsyncs and losses (counted by its writers).
    history: std::sync::Arc<HistoryCounters>,
}

/// Upper bounds, in seconds, of the reply-latency histogram's buckets. An ACK waits for its
/// fsync, so the interesting range runs from sub-millisecond (OFFER) to tens of milliseconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A copy of the reply-latency histogram, Prometheus style.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencySnapshot {
    /// `(upper bound in seconds, cumulative count)` for each of [`LATENCY_BUCKETS`].
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// Sum of all observations, in seconds.
    pub sum_secs: f64,
}

fn slot(t: Option<MessageType>) -> usize {
    t.map_or(0, |t| usize::from(t.code()))
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, label: &'static str) {
    // A poisoned lock only means another thread panicked mid-increment; the counts stay usable.
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(label).or_default() += 1;
}

impl Metrics {
    /// A received, decoded request of type `t` (`None`: no or unknown option 53).
    pub fn received(&self, t: Option<MessageType>) {
        if let Some(c) = self.received.get(slot(t)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A reply of type `t` handed to the kernel.
    pub fn sent(&self, t: Option<MessageType>) {
        if let Some(c) = self.sent.get(slot(t)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A packet that got no reply, by reason label (`DropReason::label`, or io's own:
    /// `overload`, `store_error`).
    pub fn dropped(&self, label: &'static str) {
        bump(&self.dropped, label);
    }

    /// A datagram that did not decode, by `Malformed::label`.
    pub fn malformed(&self, label: &'static str) {
        bump(&self.malformed, label);
    }

    /// An SQL assignment row whose address the client was not served.
    pub fn sql_assignment_skipped(&self, reason: &'static str) {
        bump(&self.sql_assignment_skipped, reason);
    }

    /// A request whose relay data was removed as untrusted (it is still served, without it).
    pub fn untrusted_option82(&self, label: &'static str) {
        bump(&self.untrusted_option82, label);
    }

    /// A failed store commit (each affected packet is also counted as dropped if it lost its
    /// reply).
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply the kernel refused.
    pub fn send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply from a foreign DHCP server seen on a served link.
    pub fn foreign_reply(&self) {
        self.foreign_replies.fetch_add(1, Ordering::Relaxed);
    }

    /// How many foreign DHCP servers are known now.
    pub fn set_foreign_servers(&self, n: u64) {
        self.foreign_servers.store(n, Ordering::Relaxed);
    }

    /// The lease history's counters, for its writers to count into.
    pub fn history(&self) -> &std::sync::Arc<HistoryCounters> {
        &self.history
    }

    /// A lease that reached its end (from the expiry timer).
    pub fn expired(&self, n: u64) {
        self.expired.fetch_add(n, Ordering::Relaxed);
    }

    /// One reply's latency, from the request's arrival to the reply leaving (after the fsync for
    /// an ACK).
    pub fn reply_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(c) = self.latency.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The reply-latency histogram, with cumulative bucket counts (for `/metrics`).
    pub fn latency(&self) -> LatencySnapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (bound, c) in LATENCY_BUCKETS.iter().zip(self.latency.iter()) {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let slow = self
            .latency
            .get(LATENCY_BUCKETS.len())
            .map_or(0, |c| c.load(Ordering::Relaxed));
        // Microseconds to seconds; precision beyond 2^53 µs (285 years) does not matter.
        #[allow(clippy::cast_precision_loss)]
        let sum_secs = self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        LatencySnapshot {
            buckets,
            count: cumulative + slow,
            sum_secs,
        }
    }

    /// Every non-zero counter as `(name, value)`, names like `received.DISCOVER`,
    /// `sent.ACK`, `dropped.pool_exhausted`, `malformed.truncated`, `store_errors`,
    /// `history_fsyncs`.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let name = |i: usize| {
            i.checked_sub(1)
                .and_then(|j| TYPES.get(j))
                .map_or("unknown", |t| t.name())
        };
        for (family, arr) in [("received", &self.received), ("sent", &self.sent)] {
            for (i, c) in arr.iter().enumerate() {
                let v = c.load(Ordering::Relaxed);
                if v > 0 {
                    out.push((format!("{family}.{}", name(i)), v));
                }
            }
        }
        for (family, map) in [
            ("dropped", &self.dropped),
            ("malformed", &self.malformed),
            ("untrusted_option82", &self.untrusted_option82),
            ("sql_assignment_skipped", &self.sql_assignment_skipped),
        ] {
            let m = map.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(m.iter().map(|(k, v)| (format!("{family}.{k}"), *v)));
        }
        for (n, c) in [
            ("store_errors", &self.store_errors),
            ("send_errors", &self.send_errors),
            ("expired", &self.expired),
            ("foreign_dhcp_replies", &self.foreign_replies),
            ("foreign_dhcp_servers", &self.foreign_servers),
        ] {
            let v = c.load(Ordering::Relaxed);
            if v > 0 {
                out.push((n.to_string(), v));
            }
        }
        let h = self.history.stats();
        for (n, v) in [
            ("history_records_written", h.written),
            ("history_records_durable", h.durable),
            ("history_fsyncs", h.fsyncs),
            ("history_records_dropped", h.dropped),
            ("history_errors", h.errors),
        ] {
            if v > 0 {
                out.push((n.to_string(), v));
            }
        }
        out
    }

    /// The value of one counter by its [`Metrics::snapshot`] name (0 when never counted).
    pub fn get(&self, name: &str) -> u64 {
        self.snapshot()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        let m = Metrics::default();
        m.received(Some(MessageType::Discover));
        m.received(None);
        m.sent(Some(MessageType::Ack));
        m.dropped("overload");
        m.dropped("overload");
        m.malformed("truncated");
        m.store_error();
        assert_eq!(m.get("received.DISCOVER"), 1);
        assert_eq!(m.get("received.unknown"), 1);
        assert_eq!(m.get("sent.ACK"), 1);
        assert_eq!(m.get("dropped.overload"), 2);
        assert_eq!(m.get("malformed.truncated"), 1);
        assert_eq!(m.get("store_errors"), 1);
        assert_eq!(m.get("sent.OFFER"), 0);
    }

    #[test]
    fn latency_histogram_is_cumulative() {
        let m = Metrics::default();
        m.reply_latency(Duration::from_micros(300));
        m.reply_latency(Duration::from_millis(3));
        m.reply_latency(Duration::from_secs(10));
        let h = m.latency();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets.first(), Some(&(0.0005, 1)));
        assert_eq!(h.buckets.get(3), Some(&(0.005, 2)));
        assert_eq!(h.buckets.last(), Some(&(2.5, 2)));
        assert!((h.sum_secs - 10.0033).abs() < 1e-9);
    }
}
