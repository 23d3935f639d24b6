//! ARP anomaly detection (`[arp_watch]`): who really uses the addresses of the served
//! subnets, judged against the leases, the reservations and the banned MACs.
//!
//! Evidence, per scan: the kernel's neighbour table (entries confirmed `REACHABLE` or set
//! `PERMANENT`; a `STALE` entry is an old memory, not a host), plus every ARP packet another
//! host sent on a served link recently (our RFC 5227 probes of the pool and reserved addresses
//! make silent hosts answer; see [`super::arp_sock`]). Findings:
//! - `banned-mac`: a banned MAC uses an address of a served subnet;
//! - `mac-mismatch`: a reserved address used by another MAC than its reservation's, or a
//!   leased address used by another MAC than the lease's;
//! - `unknown`: an address of a served subnet with no active lease and no reservation.
//!
//! Never findings: routers and server identifiers (static by design), the network and
//! broadcast addresses, addresses the config excludes from the pools (the operator declared
//! them as used elsewhere), addresses reserved by client-id or Option 82 with no lease (we cannot
//! know the MAC to expect).
//!
//! Why a tracker with appear/clear: logging every finding on every scan buries the one line
//! that matters. Here a finding is logged once when it appears (`ARP-ANOMALY`) and
//! once when it clears (`ARP-ANOMALY-CLEARED`); the current set is in the API and the metrics.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashlink::LruCache;
use leased_core::model::ReservationKey;
use leased_core::{HwAddr, LeaseState, Plan, Timestamp};
use leased_sock::neigh;

use super::arp_sock::{ArpSender, ArpSocket, probe_payload};
use super::rogue::mac_string;
use super::{Watched, iface_mac};
use crate::snapshot::LeaseSnapshot;

/// What the ARP watch reads of the running server: the plan, the latest lease snapshot, and
/// where its findings go (shared with the API and the metrics).
#[derive(Clone)]
pub(crate) struct ArpWatchView {
    /// The plan being served (reloads are seen at once).
    pub(crate) plan: crate::loaded::Current,
    /// The latest published lease snapshot.
    pub(crate) leases: Arc<dyn Fn() -> Arc<LeaseSnapshot> + Send + Sync>,
    /// The current findings.
    pub(crate) findings: ArpFindings,
}

/// What kind of anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ArpKind {
    /// No lease and no reservation for the address.
    Unknown,
    /// Another MAC than the lease's or the reservation's.
    MacMismatch,
    /// A banned MAC.
    BannedMac,
}

impl ArpKind {
    /// Every kind, for metrics that show zeros too.
    pub const ALL: [ArpKind; 3] = [Self::Unknown, Self::MacMismatch, Self::BannedMac];

    /// The name in logs, the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::MacMismatch => "mac-mismatch",
            Self::BannedMac => "banned-mac",
        }
    }
}

/// One current finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpFinding {
    /// What is wrong (the metrics and the API group by it).
    pub kind: ArpKind,
    /// The address in use.
    pub ip: Ipv4Addr,
    /// The MAC using it.
    pub mac: [u8; 6],
    /// Interface it was seen on.
    pub iface: String,
    /// For `mac-mismatch`: the MAC the lease or reservation names, as text.
    pub expected_mac: Option<String>,
    /// For `mac-mismatch`: `lease` or `reservation`.
    pub against: Option<&'static str>,
    /// Unix seconds: when the finding appeared, and the latest scan that still saw it.
    pub first_seen: u64,
    /// See `first_seen`.
    pub last_seen: u64,
}

/// A host seen using an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sighting {
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub iface: String,
}

/// The verdict on one sighting: kind, expected MAC, and what it was checked against.
type Verdict = (ArpKind, Option<String>, Option<&'static str>);

fn hw_text(h: &HwAddr) -> String {
    h.0.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Judges one sighting against the plan and the lease table at `now` (pure).
pub(crate) fn judge(
    plan: &Plan,
    leases: &LeaseSnapshot,
    s: &Sighting,
    now: Timestamp,
) -> Option<Verdict> {
    let subnet = plan
        .network
        .subnets
        .get(plan.subnet_index_containing(s.ip)?)?;
    let mac = HwAddr(s.mac.to_vec());
    if plan.network.banned_macs.contains_key(&mac) {
        return Some((ArpKind::BannedMac, None, None));
    }
    let net = subnet.network;
    if s.ip == net.network()
        || s.ip == net.broadcast()
        || subnet.routers.contains(&s.ip)
        || subnet.server_id == Some(s.ip)
        || plan.network.server.server_id == Some(s.ip)
    {
        return None;
    }
    let reservation = plan.reservation_at(s.ip);
    if let Some(r) = reservation
        && let ReservationKey::Mac(want) = &r.key
    {
        return (want.0 != mac.0).then(|| {
            (
                ArpKind::MacMismatch,
                Some(hw_text(want)),
                Some("reservation"),
            )
        });
    }
    if let Some(l) = leases
        .by_ip(s.ip)
        .filter(|l| l.is_active(now) && l.state != LeaseState::Declined)
    {
        return (l.hwaddr.0 != mac.0).then(|| {
            (
                ArpKind::MacMismatch,
                Some(hw_text(&l.hwaddr)),
                Some("lease"),
            )
        });
    }
    if reservation.is_some() || subnet.exclusions.iter().any(|x| x.contains(s.ip)) {
        return None;
    }
    Some((ArpKind::Unknown, None, None))
}

/// What changed between two scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Appeared(ArpFinding),
    Cleared(ArpFinding),
}

/// At most this many findings are kept (a spoofing flood must not grow memory).
const MAX_FINDINGS: usize = 4096;

/// The current findings, keyed by (address, MAC).
#[derive(Debug, Default)]
pub struct ArpTracker {
    findings: BTreeMap<(Ipv4Addr, [u8; 6]), ArpFinding>,
}

impl ArpTracker {
    /// The current findings, in address order.
    pub fn list(&self) -> Vec<ArpFinding> {
        self.findings.values().cloned().collect()
    }

    /// Replaces the finding set with this scan's, returning what appeared and what cleared
    /// (a finding whose kind or expectation changed clears and appears again).
    pub(crate) fn update(&mut self, scan: Vec<(Sighting, Verdict)>, now: u64) -> Vec<Change> {
        let mut next = BTreeMap::new();
        let mut changes = Vec::new();
        for (s, (kind, expected_mac, against)) in scan {
            let key = (s.ip, s.mac);
            if next.contains_key(&key) || next.len() >= MAX_FINDINGS {
                continue;
            }
            let finding = match self.findings.remove(&key) {
                Some(mut old) if old.kind == kind && old.expected_mac == expected_mac => {
                    old.last_seen = now;
                    old
                }
                old => {
                    if let Some(o) = old {
                        changes.push(Change::Cleared(o));
                    }
                    let f = ArpFinding {
                        kind,
                        ip: s.ip,
                        mac: s.mac,
                        iface: s.iface,
                        expected_mac,
                        against,
                        first_seen: now,
                        last_seen: now,
                    };
                    changes.push(Change::Appeared(f.clone()));
                    f
                }
            };
            next.insert(key, finding);
        }
        changes.extend(
            std::mem::take(&mut self.findings)
                .into_values()
                .map(Change::Cleared),
        );
        self.findings = next;
        changes
    }
}

/// The findings, shared with readers (the API, metrics).
pub type ArpFindings = Arc<Mutex<ArpTracker>>;

/// (address, MAC) → (interface, when heard); the pair heard least recently makes room.
type HeardMap = LruCache<(Ipv4Addr, [u8; 6]), (String, Instant)>;

/// ARP packets other hosts sent recently.
struct Heard {
    seen: Mutex<HeardMap>,
    /// Seconds the latest full probe cycle took (so evidence outlives a slow cycle).
    cycle_secs: AtomicU64,
}

/// At most this many heard (address, MAC) pairs are remembered between scans.
const MAX_HEARD: usize = 65_536;

impl Default for Heard {
    fn default() -> Self {
        Self {
            seen: Mutex::new(LruCache::new(MAX_HEARD)),
            cycle_secs: AtomicU64::new(0),
        }
    }
}

impl Heard {
    /// Records a sender in O(1); a full map forgets the pair heard least recently.
    fn record(&self, s: ArpSender, iface: &str) {
        let mut m = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        m.insert((s.ip, s.mac), (iface.to_string(), Instant::now()));
    }

    /// The pairs heard within `window`; older ones are forgotten.
    fn fresh(&self, window: Duration) -> Vec<Sighting> {
        let mut m = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, at)| at.elapsed() <= window);
        m.iter()
            .map(|((ip, mac), (iface, _))| Sighting {
                ip: *ip,
                mac: *mac,
                iface: iface.clone(),
            })
            .collect()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Starts the ARP watch when `[arp_watch]` is enabled: one listener per link (when
/// CAP_NET_RAW allows), the prober, and the scanner. Reloads change interval, probing and
/// rate at once; turning the watch on needs a restart.
pub(crate) fn spawn(links: &[Watched], shared: &ArpWatchView) -> Vec<tokio::task::JoinHandle<()>> {
    if !shared.plan.load().config.arp_watch.enabled {
        return Vec::new();
    }
    let heard = Arc::new(Heard::default());
    let mut tasks = Vec::new();
    let mut probed = Vec::new();
    for link in links.iter().filter(|l| l.index != 0) {
        match ArpSocket::open(link.index) {
            Ok(sock) => {
                let sock = Arc::new(sock);
                if let Some(mac) = iface_mac(&link.name) {
                    probed.push((link.clone(), mac, Arc::clone(&sock)));
                }
                tasks.push(tokio::spawn(listen(
                    sock,
                    link.name.clone(),
                    Arc::clone(&heard),
                )));
            }
            Err(e) => tracing::warn!(
                iface = %link.name, error = %e,
                "ARP listening and probing off on this interface (needs CAP_NET_RAW); \
                 the neighbour table is still read"
            ),
        }
    }
    if !probed.is_empty() {
        tasks.push(tokio::spawn(probe(
            probed,
            shared.clone(),
            Arc::clone(&heard),
        )));
    }
    tracing::info!(links = links.len(), "ARP watch started");
    tasks.push(tokio::spawn(scan_loop(
        links.to_vec(),
        shared.clone(),
        heard,
    )));
    tasks
}

async fn listen(sock: Arc<ArpSocket>, iface: String, heard: Arc<Heard>) {
    loop {
        match sock.recv().await {
            Ok(s) => heard.record(s, &iface),
            Err(e) => {
                tracing::debug!(iface = %iface, error = %e, "ARP receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The addresses to probe on a link: its subnets' pool addresses and reservations (at most
/// 65536 a link a cycle).
fn targets(plan: &Plan, link: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for &i in plan.subnet_indexes_on(link) {
        let Some(s) = plan.network.subnets.get(i) else {
            continue;
        };
        for p in &s.pools {
            let (a, b) = (u32::from(p.start), u32::from(p.end));
            out.extend((a..=b).take(65_536).map(Ipv4Addr::from));
        }
        out.extend(s.reservations.iter().map(|r| r.ip));
    }
    out.sort_unstable();
    out.dedup();
    out.truncate(65_536);
    out
}

async fn probe(
    links: Vec<(Watched, [u8; 6], Arc<ArpSocket>)>,
    shared: ArpWatchView,
    heard: Arc<Heard>,
) {
    loop {
        let settings = shared.plan.load().config.arp_watch.clone();
        if !settings.enabled || !settings.probe {
            tokio::time::sleep(Duration::from_secs(u64::from(settings.interval).min(5))).await;
            continue;
        }
        let gap = Duration::from_secs(1) / settings.probe_rate.max(1);
        let started = Instant::now();
        let plan = Arc::clone(&shared.plan.load().plan);
        for (link, mac, sock) in &links {
            for ip in targets(&plan, &link.name) {
                if let Err(e) = sock.send(&probe_payload(*mac, ip)) {
                    tracing::debug!(iface = %link.name, %ip, error = %e, "ARP probe not sent");
                }
                tokio::time::sleep(gap).await;
            }
        }
        heard
            .cycle_secs
            .store(started.elapsed().as_secs(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(u64::from(settings.interval))).await;
    }
}

async fn scan_loop(links: Vec<Watched>, shared: ArpWatchView, heard: Arc<Heard>) {
    loop {
        let settings = shared.plan.load().config.arp_watch.clone();
        let every = Duration::from_secs(u64::from(settings.interval));
        if settings.enabled {
            let window =
                every * 3 + Duration::from_secs(heard.cycle_secs.load(Ordering::Relaxed) * 2 + 1);
            let table = tokio::task::spawn_blocking(neigh::dump)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r);
            let mut sightings = heard.fresh(window);
            match table {
                Ok(entries) => sightings.extend(
                    entries
                        .into_iter()
                        .filter(|n| n.state & (neigh::NUD_REACHABLE | neigh::NUD_PERMANENT) != 0)
                        .map(|n| Sighting {
                            ip: n.ip,
                            mac: n.mac,
                            iface: links
                                .iter()
                                .find(|l| l.index == n.ifindex)
                                .map_or_else(|| format!("if{}", n.ifindex), |l| l.name.clone()),
                        }),
                ),
                Err(e) => tracing::warn!(error = %e, "cannot read the neighbour table"),
            }
            scan_once(&shared, sightings);
        }
        tokio::time::sleep(every).await;
    }
}

/// Judges the sightings, updates the shared findings and logs what appeared and cleared.
fn scan_once(shared: &ArpWatchView, sightings: Vec<Sighting>) {
    let plan = Arc::clone(&shared.plan.load().plan);
    let leases = (shared.leases)();
    let now = unix_now();
    let scan: Vec<_> = sightings
        .into_iter()
        .filter_map(|s| judge(&plan, &leases, &s, Timestamp(now)).map(|v| (s, v)))
        .collect();
    let changes = {
        let mut t = shared.findings.lock().unwrap_or_else(|p| p.into_inner());
        t.update(scan, now)
    };
    for c in changes {
        match c {
            Change::Appeared(f) => tracing::warn!(
                "ARP-ANOMALY kind={} ip={} mac={} iface={}{}",
                f.kind.as_str(),
                f.ip,
                mac_string(&f.mac),
                f.iface,
                f.expected_mac
                    .as_ref()
                    .map(|m| format!(" expected_mac={m} against={}", f.against.unwrap_or("")))
                    .unwrap_or_default(),
            ),
            Change::Cleared(f) => tracing::info!(
                "ARP-ANOMALY-CLEARED kind={} ip={} mac={} iface={} seen_for={}s",
                f.kind.as_str(),
                f.ip,
                mac_string(&f.mac),
                f.iface,
                f.last_seen.saturating_sub(f.first_seen),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use leased_config::{Format, load_str};
    use leased_core::{ClientId, Lease};

    const CONF: &str = r#"
[store]
path = "x"
[banned_macs]
"02:00:00:00:00:bb" = { note = "stolen" }
[[subnets]]
network = "198.18.0.0/24"
routers = ["198.18.0.1"]
pools = ["198.18.0.10-198.18.0.20"]
exclusions = ["198.18.0.20"]
[[reservations]]
mac = "02:00:00:00:00:50"
ip = "198.18.0.50"
[[reservations]]
client_id = "01:02:03"
ip = "198.18.0.51"
"#;

    fn sight(ip: u8, mac: u8) -> Sighting {
        Sighting {
            ip: Ipv4Addr::new(198, 18, 0, ip),
            mac: [2, 0, 0, 0, 0, mac],
            iface: "eth0".into(),
        }
    }

    fn lease(ip: u8, mac: u8, state: LeaseState) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, ip),
            client_id: ClientId(vec![1, 2, 0, 0, 0, 0, mac]),
            hwaddr: HwAddr(vec![2, 0, 0, 0, 0, mac]),
            hostname: None,
            state,
            starts: Timestamp(0),
            expires: Timestamp(1000),
            first_seen: Timestamp(0),
            circuit_id: None,
            remote_id: None,
            subscriber_id: None,
        }
    }

    #[test]
    fn judges_unknown_mismatch_banned_and_leaves_the_expected_alone() {
        let plan = Plan::new(load_str(CONF, "t.toml", Format::Toml).unwrap().network);
        let snap = LeaseSnapshot {
            leases: vec![
                lease(11, 0x11, LeaseState::Bound),
                lease(12, 0x12, LeaseState::Expired),
            ],
            taken_at: Timestamp(10),
        };
        let now = Timestamp(10);
        let kind = |ip, mac| judge(&plan, &snap, &sight(ip, mac), now).map(|v| v.0);
        assert_eq!(kind(15, 0x15), Some(ArpKind::Unknown), "free pool address");
        assert_eq!(
            kind(200, 0x99),
            Some(ArpKind::Unknown),
            "outside pools, in subnet"
        );
        assert_eq!(kind(12, 0x12), Some(ArpKind::Unknown), "expired lease");
        assert_eq!(kind(11, 0x11), None, "the lease holder");
        let v = judge(&plan, &snap, &sight(11, 0x77), now).unwrap();
        assert_eq!(
            v,
            (
                ArpKind::MacMismatch,
                Some("02:00:00:00:00:11".into()),
                Some("lease")
            )
        );
        assert_eq!(kind(50, 0x50), None, "the reserved MAC");
        let v = judge(&plan, &snap, &sight(50, 0x77), now).unwrap();
        assert_eq!(v.0, ArpKind::MacMismatch);
        assert_eq!(v.2, Some("reservation"));
        assert_eq!(
            kind(51, 0x77),
            None,
            "client-id reservation without a lease"
        );
        assert_eq!(kind(15, 0xbb), Some(ArpKind::BannedMac));
        assert_eq!(kind(1, 0x01), None, "router");
        assert_eq!(kind(20, 0x20), None, "excluded");
        assert_eq!(kind(255, 0x20), None, "broadcast");
        let outside = Sighting {
            ip: Ipv4Addr::new(198, 19, 0, 1),
            ..sight(1, 1)
        };
        assert_eq!(
            judge(&plan, &snap, &outside, now),
            None,
            "not a served subnet"
        );
    }

    #[test]
    fn findings_are_reported_once_when_they_appear_and_once_when_they_clear() {
        let mut t = ArpTracker::default();
        let unknown = (ArpKind::Unknown, None, None);
        let c = t.update(vec![(sight(15, 1), unknown.clone())], 100);
        assert!(matches!(&c[..], [Change::Appeared(f)] if f.ip == sight(15, 1).ip));
        assert!(
            t.update(vec![(sight(15, 1), unknown.clone())], 101)
                .is_empty()
        );
        assert!(
            t.update(vec![(sight(15, 1), unknown.clone())], 102)
                .is_empty()
        );
        let f = &t.list()[0];
        assert_eq!((f.first_seen, f.last_seen), (100, 102));
        assert_eq!(t.list().len(), 1);
        let mism = (ArpKind::MacMismatch, Some("x".into()), Some("lease"));
        let c = t.update(vec![(sight(15, 1), mism)], 103);
        assert!(
            matches!(&c[..], [Change::Cleared(_), Change::Appeared(_)]),
            "{c:?}"
        );
        let c = t.update(Vec::new(), 104);
        assert!(matches!(&c[..], [Change::Cleared(f)] if f.kind == ArpKind::MacMismatch));
        assert!(t.list().is_empty());
        assert!(t.update(Vec::new(), 105).is_empty());
    }
}
