//! The dashboard's live view: DORA/s, drops by reason and reply latency over the last hour.
//!
//! Why a sampler and not a feed of every event: the engine and its driver already count every
//! packet received, reply sent, drop (by reason) and reply latency (a histogram) in io's
//! [`Metrics`] atomics. Once a second this task reads those counters — one `snapshot` and one
//! `latency` call, nothing on the packet path, nothing the engine waits for — and keeps the
//! differences in a ring of [`SLOTS`] samples (an hour), dropping the oldest in O(1). New
//! samples are also sent on a small `tokio::sync::broadcast` channel, which the server-sent
//! event streams of open dashboards read; a stream that falls behind skips samples instead of
//! holding memory. The ring is a fixed ~1 MiB whatever the load, and a dashboard that opens
//! gets the past hour at once.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leased_io::{LatencySnapshot, Metrics, SharedState, Shutdown};
use serde::Serialize;
use tokio::sync::broadcast;

/// Samples kept: one per second for an hour.
pub const SLOTS: usize = 3600;
/// How often the counters are read.
pub const EVERY: Duration = Duration::from_secs(1);
/// Samples a slow event stream may fall behind before it skips some.
const CHANNEL: usize = 16;

/// What happened in one second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Unix seconds at the end of the second.
    pub t: u64,
    /// DISCOVERs received.
    pub discover: u64,
    /// OFFERs sent.
    pub offer: u64,
    /// REQUESTs received.
    pub request: u64,
    /// ACKs sent.
    pub ack: u64,
    /// NAKs sent.
    pub nak: u64,
    /// RELEASEs received.
    pub release: u64,
    /// DECLINEs received.
    pub decline: u64,
    /// INFORMs received.
    pub inform: u64,
    /// Packets that got no reply, by reason (`dropped.*` counters), and datagrams that did not
    /// decode (`malformed.*`, as `malformed:<label>`); only reasons that occurred.
    pub drops: BTreeMap<String, u64>,
    /// Replies whose latency was measured.
    pub replies: u64,
    /// Their mean latency, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_mean_ms: Option<f64>,
    /// The upper bound of the histogram bucket holding the median, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    /// The same for the 99th percentile (the last bucket's bound when slower).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
}

/// The counters at one instant, as read from [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Every counter by its `Metrics::snapshot` name.
    pub values: BTreeMap<String, u64>,
    /// The reply-latency histogram.
    pub latency: Option<LatencySnapshot>,
}

impl Counters {
    /// Reads `metrics` now.
    pub fn read(metrics: &Metrics) -> Self {
        Self {
            values: metrics.snapshot().into_iter().collect(),
            latency: Some(metrics.latency()),
        }
    }

    fn get(&self, name: &str) -> u64 {
        self.values.get(name).copied().unwrap_or(0)
    }
}

/// The bound (ms) of the bucket where the `q`-quantile of `count` observations falls, from
/// per-bucket counts `(bound in s, count in that bucket)` and the slower rest.
fn quantile(buckets: &[(f64, u64)], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    // Ceil of q * count without floats going astray: at least one observation.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
    let mut seen = 0;
    for (bound, n) in buckets {
        seen += n;
        if seen >= rank {
            return Some(bound * 1000.0);
        }
    }
    buckets.last().map(|(b, _)| b * 1000.0)
}

/// What happened between `prev` and `cur`, stamped `t`. A counter that went backwards (it
/// never does; a reset would) counts as zero.
pub fn delta(prev: &Counters, cur: &Counters, t: u64) -> Sample {
    let d = |name: &str| cur.get(name).saturating_sub(prev.get(name));
    let mut drops = BTreeMap::new();
    for (name, v) in &cur.values {
        let label = if let Some(r) = name.strip_prefix("dropped.") {
            r.to_string()
        } else if let Some(r) = name.strip_prefix("malformed.") {
            format!("malformed:{r}")
        } else {
            continue;
        };
        let n = v.saturating_sub(prev.get(name));
        if n > 0 {
            drops.insert(label, n);
        }
    }
    let mut s = Sample {
        t,
        discover: d("received.DISCOVER"),
        offer: d("sent.OFFER"),
        request: d("received.REQUEST"),
        ack: d("sent.ACK"),
        nak: d("sent.NAK"),
        release: d("received.RELEASE"),
        decline: d("received.DECLINE"),
        inform: d("received.INFORM"),
        drops,
        ..Sample::default()
    };
    if let Some(c) = &cur.latency {
        let zero = LatencySnapshot {
            buckets: c.buckets.iter().map(|(b, _)| (*b, 0)).collect(),
            count: 0,
            sum_secs: 0.0,
        };
        let p = prev.latency.as_ref().unwrap_or(&zero);
        let count = c.count.saturating_sub(p.count);
        // Cumulative bucket counts to per-bucket ones, for this second only.
        let mut per = Vec::with_capacity(c.buckets.len());
        let mut before = 0u64;
        for (i, (bound, cum)) in c.buckets.iter().enumerate() {
            let pc = p.buckets.get(i).map_or(0, |(_, n)| *n);
            let now_cum = cum.saturating_sub(pc);
            per.push((*bound, now_cum.saturating_sub(before)));
            before = now_cum;
        }
        s.replies = count;
        if count > 0 {
            #[allow(clippy::cast_precision_loss)]
            let mean = (c.sum_secs - p.sum_secs).max(0.0) / count as f64 * 1000.0;
            s.latency_mean_ms = Some(mean);
            s.latency_p50_ms = quantile(&per, count, 0.5);
            s.latency_p99_ms = quantile(&per, count, 0.99);
        }
    }
    s
}

/// The last hour of samples and the channel new ones go out on.
#[derive(Debug)]
pub struct Live {
    ring: Mutex<VecDeque<Arc<Sample>>>,
    /// `None` once the server stops: every stream then ends.
    tx: Mutex<Option<broadcast::Sender<Arc<Sample>>>>,
}

impl Live {
    /// An empty ring.
    pub fn new() -> Arc<Self> {
        let (tx, _) = broadcast::channel(CHANNEL);
        Arc::new(Self {
            ring: Mutex::new(VecDeque::with_capacity(SLOTS)),
            tx: Mutex::new(Some(tx)),
        })
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Sample>>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a sample, dropping the oldest beyond [`SLOTS`], and sends it to every stream.
    pub fn push(&self, s: Sample) {
        let s = Arc::new(s);
        {
            let mut r = self.ring();
            if r.len() >= SLOTS {
                r.pop_front();
            }
            r.push_back(Arc::clone(&s));
        }
        if let Some(tx) = self.sender().as_ref() {
            // No stream listening is fine.
            let _ = tx.send(s);
        }
    }

    fn sender(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<Sample>>>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every stream (the server is stopping); later subscribers get none.
    pub fn close(&self) {
        self.sender().take();
    }

    /// The samples held, oldest first.
    pub fn history(&self) -> Vec<Arc<Sample>> {
        self.ring().iter().cloned().collect()
    }

    /// A receiver of the samples pushed from now on; `None` once closed.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Arc<Sample>>> {
        self.sender().as_ref().map(broadcast::Sender::subscribe)
    }

    /// Samples `shared`'s counters every [`EVERY`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shared: Arc<SharedState>, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut prev = Counters::read(shared.metrics());
        tick.tick().await;
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => {
                    self.close();
                    return;
                }
                _ = tick.tick() => {}
            }
            let cur = Counters::read(shared.metrics());
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.push(delta(&prev, &cur, t));
            prev = cur;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use leased_wire::MessageType;

    #[test]
    fn a_second_of_counters() {
        let m = Metrics::default();
        let prev = Counters::read(&m);
        for _ in 0..5 {
            m.received(Some(MessageType::Discover));
            m.sent(Some(MessageType::Offer));
        }
        for _ in 0..3 {
            m.received(Some(MessageType::Request));
            m.sent(Some(MessageType::Ack));
        }
        m.dropped("pool_exhausted");
        m.dropped("pool_exhausted");
        m.malformed("truncated");
        for _ in 0..98 {
            m.reply_latency(Duration::from_micros(300));
        }
        m.reply_latency(Duration::from_millis(20));
        m.reply_latency(Duration::from_secs(5));
        let cur = Counters::read(&m);
        let s = delta(&prev, &cur, 42);
        assert_eq!(
            (s.t, s.discover, s.offer, s.request, s.ack, s.nak),
            (42, 5, 5, 3, 3, 0)
        );
        assert_eq!(s.drops.get("pool_exhausted"), Some(&2));
        assert_eq!(s.drops.get("malformed:truncated"), Some(&1));
        assert_eq!(s.replies, 100);
        assert_eq!(s.latency_p50_ms, Some(0.5));
        assert_eq!(s.latency_p99_ms, Some(25.0));
        let mean = s.latency_mean_ms.unwrap();
        assert!(
            (mean - (98.0 * 0.3 + 20.0 + 5000.0) / 100.0).abs() < 1e-6,
            "{mean}"
        );
        // The next second starts from here: nothing new happened.
        let quiet = delta(&cur, &Counters::read(&m), 43);
        assert_eq!(
            quiet,
            Sample {
                t: 43,
                ..Sample::default()
            }
        );
    }

    #[test]
    fn the_ring_holds_an_hour() {
        let live = Live::new();
        let mut rx = live.subscribe().unwrap();
        for t in 0..(SLOTS as u64 + 10) {
            live.push(Sample {
                t,
                ..Sample::default()
            });
        }
        let h = live.history();
        assert_eq!(h.len(), SLOTS);
        assert_eq!(h.first().unwrap().t, 10);
        assert_eq!(h.last().unwrap().t, SLOTS as u64 + 9);
        // A receiver that fell behind is told so and goes on with the newest.
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        assert!(rx.try_recv().is_ok());
        live.close();
        assert!(live.subscribe().is_none());
        while rx.try_recv().is_ok() {}
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Closed)
        ));
    }

    #[test]
    fn quantiles() {
        let b = [(0.001, 0), (0.01, 9), (0.1, 1)];
        assert_eq!(quantile(&b, 10, 0.5), Some(10.0));
        assert_eq!(quantile(&b, 10, 0.99), Some(100.0));
        assert_eq!(quantile(&b, 0, 0.5), None);
        // Slower than every bucket: the last bound.
        assert_eq!(quantile(&b, 20, 0.99), Some(100.0));
    }
}
