//! `/metrics` in the Prometheus text exposition format (0.0.4), written by hand.
//!
//! Why by hand: every value is either one of io's counters or a gauge computed at scrape time
//! from the plan and the lease snapshot, so there is no registry to keep; a small writer with
//! label escaping is all a text exposition needs.

use std::fmt::Write;

use leased_core::{Plan, Timestamp};
use leased_io::SharedState;

use crate::stats::{PoolGauges, leases_in, pool_gauges, state_name};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Message types, in option 53 order, as io's counters name them.
const TYPES: [&str; 8] = [
    "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM",
];

/// leased's lease states, as `/leases` names them.
const STATES: [&str; 5] = ["offered", "bound", "released", "expired", "declined"];

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Renders every metric for the state as it is now.
pub fn render(shared: &SharedState, now: Timestamp) -> String {
    let plan = shared.plan();
    let snapshot = shared.leases();
    let mut out = Out(String::with_capacity(8192));
    address_gauges(&mut out, &plan, &snapshot.leases, now);
    counters(&mut out, shared);
    monitor_gauges(&mut out, shared);
    export_metrics(&mut out, shared);
    ha_metrics(&mut out, shared);
    let h = shared.metrics().latency();
    out.head(
        "leased_reply_latency_seconds",
        "histogram",
        "Time from a request's arrival to its reply leaving (an ACK waits for its fsync).",
    );
    for (le, count) in &h.buckets {
        out.sample(
            "leased_reply_latency_seconds_bucket",
            &[("le", &le.to_string())],
            count,
        );
    }
    out.sample(
        "leased_reply_latency_seconds_bucket",
        &[("le", "+Inf")],
        h.count,
    );
    out.sample("leased_reply_latency_seconds_sum", &[], h.sum_secs);
    out.sample("leased_reply_latency_seconds_count", &[], h.count);
    out.head(
        "leased_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
    );
    out.sample("leased_uptime_seconds", &[], shared.uptime().as_secs_f64());
    out.0
}

fn address_gauges(out: &mut Out, plan: &Plan, leases: &[leased_core::Lease], now: Timestamp) {
    let mut per_subnet = Vec::new();
    let mut per_pool = Vec::new();
    for s in &plan.network.subnets {
        let cidr = s.network.to_string();
        let mut sum = PoolGauges::default();
        for p in &s.pools {
            let g = pool_gauges(s, p, leases, now);
            sum.total += g.total;
            sum.assigned += g.assigned;
            sum.declined += g.declined;
            sum.free += g.free;
            per_pool.push((cidr.clone(), format!("{}-{}", p.start, p.end), g));
        }
        per_subnet.push((cidr, sum));
    }
    type Field = fn(&PoolGauges) -> u64;
    let fields: [(&str, &str, Field); 4] = [
        ("total", "Addresses in the pools.", |g| g.total),
        (
            "assigned",
            "Pool addresses held by a client (bound or offered, not expired).",
            |g| g.assigned,
        ),
        ("declined", "Pool addresses in DECLINE quarantine.", |g| {
            g.declined
        }),
        (
            "free",
            "Pool addresses allocatable now (not assigned, declined, excluded, reserved or \
             the network/broadcast/router/server address).",
            |g| g.free,
        ),
    ];
    for (field, help, get) in fields {
        let name = format!("leased_subnet_addresses_{field}");
        out.head(
            &name,
            "gauge",
            &format!("{help} Per subnet (sum of its pools)."),
        );
        for (cidr, g) in &per_subnet {
            out.sample(&name, &[("subnet", cidr)], get(g));
        }
        let name = format!("leased_pool_addresses_{field}");
        out.head(&name, "gauge", &format!("{help} Per pool."));
        for (cidr, pool, g) in &per_pool {
            out.sample(&name, &[("subnet", cidr), ("pool", pool)], get(g));
        }
    }
    out.head(
        "leased_leases",
        "gauge",
        "Lease records per subnet and state (any address of the subnet, in or out of pools).",
    );
    for s in &plan.network.subnets {
        let cidr = s.network.to_string();
        let mut counts = [0u64; STATES.len()];
        for l in leases_in(leases, s.network.network(), s.network.broadcast()) {
            let st = state_name(l, now);
            if let Some(i) = STATES.iter().position(|x| *x == st)
                && let Some(c) = counts.get_mut(i)
            {
                *c += 1;
            }
        }
        for (st, c) in STATES.iter().zip(counts) {
            out.sample("leased_leases", &[("subnet", &cidr), ("state", st)], c);
        }
    }
    out.head(
        "leased_reservations",
        "gauge",
        "Reservations configured per subnet.",
    );
    for s in &plan.network.subnets {
        out.sample(
            "leased_reservations",
            &[("subnet", &s.network.to_string())],
            s.reservations.len(),
        );
    }
}

/// The network monitors' current state: foreign DHCP servers known, ARP findings by kind
/// (every kind, zeros included, so an alert can watch one series).
fn monitor_gauges(out: &mut Out, shared: &SharedState) {
    out.head(
        "leased_foreign_dhcp_servers",
        "gauge",
        "Foreign DHCP servers seen on the served links ([rogue_servers]).",
    );
    out.sample(
        "leased_foreign_dhcp_servers",
        &[],
        shared.foreign_servers().len(),
    );
    let findings = shared.arp_findings();
    out.head(
        "leased_arp_findings",
        "gauge",
        "ARP anomalies present at the latest scan, by kind ([arp_watch]).",
    );
    for kind in leased_io::ArpKind::ALL {
        let n = findings.iter().filter(|f| f.kind == kind).count();
        out.sample("leased_arp_findings", &[("kind", kind.as_str())], n);
    }
}

/// Every HA state a server can be in, for the one-hot state gauge.
const HA_STATES: [&str; 9] = [
    "waiting",
    "syncing",
    "ready",
    "hot-standby",
    "load-balancing",
    "partner-down",
    "in-maintenance",
    "partner-in-maintenance",
    "terminated",
];

/// The HA side: state (one series per state, 1 for the current one), the partner link, the
/// update counters and the last sync; nothing without `[ha]`.
fn ha_metrics(out: &mut Out, shared: &SharedState) {
    let Some(s) = shared.ha_status() else { return };
    out.head(
        "leased_ha_state",
        "gauge",
        "1 for this server's current HA state, 0 for the others.",
    );
    for st in HA_STATES {
        out.sample(
            "leased_ha_state",
            &[("state", st)],
            u64::from(s.state == st),
        );
    }
    out.head(
        "leased_ha_partner_reachable",
        "gauge",
        "1 while the partner answers in time (ACKs then wait for its durable copy).",
    );
    out.sample(
        "leased_ha_partner_reachable",
        &[],
        u64::from(s.partner_reachable),
    );
    out.head(
        "leased_ha_link_up",
        "gauge",
        "1 while the partner link is connected and authenticated.",
    );
    out.sample("leased_ha_link_up", &[], u64::from(s.link_up));
    out.head(
        "leased_ha_unsent_updates",
        "gauge",
        "Lease changes queued or unacknowledged for the partner.",
    );
    out.sample("leased_ha_unsent_updates", &[], s.unsent_updates);
    out.head(
        "leased_ha_updates_total",
        "counter",
        "Lease updates since start: sent (leases), acked and failed (commits), received \
         (leases from the partner).",
    );
    for (kind, n) in [
        ("sent", s.updates_sent),
        ("acked", s.updates_acked),
        ("failed", s.updates_failed),
        ("received", s.updates_received),
    ] {
        out.sample("leased_ha_updates_total", &[("kind", kind)], n);
    }
    out.head(
        "leased_ha_state_changes_total",
        "counter",
        "HA state changes since start.",
    );
    out.sample("leased_ha_state_changes_total", &[], s.state_changes);
    out.head(
        "leased_ha_syncs_total",
        "counter",
        "Bulk syncs from the partner completed since start.",
    );
    out.sample("leased_ha_syncs_total", &[], s.syncs);
    if let Some((took, _)) = s.last_sync {
        out.head(
            "leased_ha_last_sync_duration_seconds",
            "gauge",
            "How long the last completed bulk sync took.",
        );
        out.sample(
            "leased_ha_last_sync_duration_seconds",
            &[],
            took.as_secs_f64(),
        );
    }
}

/// The billing export's per-destination upload counters; nothing when no export runs.
fn export_metrics(out: &mut Out, shared: &SharedState) {
    let list = shared.export_metrics();
    if list.is_empty() {
        return;
    }
    out.head(
        "leased_export_uploads_total",
        "counter",
        "Export uploads (POSTs) since start, by destination and result (ok: 2xx).",
    );
    for m in &list {
        let d = m.destination.as_str();
        out.sample(
            "leased_export_uploads_total",
            &[("destination", d), ("result", "ok")],
            m.uploads_ok,
        );
        out.sample(
            "leased_export_uploads_total",
            &[("destination", d), ("result", "failed")],
            m.uploads_failed,
        );
    }
    out.head(
        "leased_export_entries_sent_total",
        "counter",
        "Binding entries delivered (acknowledged by a 2xx) since start, by destination.",
    );
    for m in &list {
        let d = [("destination", m.destination.as_str())];
        out.sample("leased_export_entries_sent_total", &d, m.entries_sent);
    }
    out.head(
        "leased_export_outbox_depth",
        "gauge",
        "Records waiting in the destination's durable outbox.",
    );
    for m in &list {
        let d = [("destination", m.destination.as_str())];
        out.sample("leased_export_outbox_depth", &d, m.outbox_depth);
    }
    out.head(
        "leased_export_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the destination's last successful upload since start (0: none yet).",
    );
    for m in &list {
        let d = [("destination", m.destination.as_str())];
        let t = m.last_success.unwrap_or(0);
        out.sample("leased_export_last_success_timestamp_seconds", &d, t);
    }
    out.head(
        "leased_export_upload_duration_seconds",
        "summary",
        "Time spent per export upload (ok or failed), by destination.",
    );
    for m in &list {
        let d = [("destination", m.destination.as_str())];
        out.sample(
            "leased_export_upload_duration_seconds_sum",
            &d,
            m.upload_seconds_sum,
        );
        out.sample(
            "leased_export_upload_duration_seconds_count",
            &d,
            m.uploads_ok + m.uploads_failed,
        );
    }
}

fn counters(out: &mut Out, shared: &SharedState) {
    let snap = shared.metrics().snapshot();
    let get = |name: &str| snap.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
    for (family, name, help) in [
        (
            "received",
            "leased_packets_received_total",
            "Decoded requests received, by DHCP message type.",
        ),
        (
            "sent",
            "leased_packets_sent_total",
            "Replies handed to the kernel, by DHCP message type.",
        ),
    ] {
        out.head(name, "counter", help);
        for t in TYPES.iter().chain(std::iter::once(&"unknown")) {
            out.sample(name, &[("type", t)], get(&format!("{family}.{t}")));
        }
    }
    for (family, name, help) in [
        (
            "dropped",
            "leased_packets_dropped_total",
            "Requests that got no reply, by reason.",
        ),
        (
            "malformed",
            "leased_packets_malformed_total",
            "Datagrams that did not decode, by reason.",
        ),
        (
            "sql_assignment_skipped",
            "leased_sql_assignment_skipped_total",
            "SQL assignment rows whose address the client was not served (another client's \
             lease holds it, it lies outside every subnet, or it may never be handed out), by \
             reason; the client was served from the pools.",
        ),
        (
            "untrusted_option82",
            "leased_untrusted_option82_total",
            "Requests whose Option 82 was ignored (client-written, unlisted relay, or hidden \
             in file/sname), by reason; they are served as clients without relay data.",
        ),
    ] {
        out.head(name, "counter", help);
        let prefix = format!("{family}.");
        for (n, v) in &snap {
            if let Some(reason) = n.strip_prefix(&prefix) {
                out.sample(name, &[("reason", reason)], v);
            }
        }
    }
    for (key, name, help) in [
        (
            "store_errors",
            "leased_store_errors_total",
            "Failed lease store commits.",
        ),
        (
            "send_errors",
            "leased_send_errors_total",
            "Replies the kernel refused.",
        ),
        (
            "expired",
            "leased_leases_expired_total",
            "Leases that reached their end.",
        ),
        (
            "history_records_written",
            "leased_history_records_written_total",
            "Lease history records written (to the history file or leased_history).",
        ),
        (
            "history_records_durable",
            "leased_history_records_durable_total",
            "Lease history records known durable (covered by an fsync, or committed).",
        ),
        (
            "history_fsyncs",
            "leased_history_fsyncs_total",
            "Completed fsyncs of the lease history file.",
        ),
        (
            "history_records_dropped",
            "leased_history_records_dropped_total",
            "Lease history records lost before they were written (a queue full, a write failed).",
        ),
        (
            "history_errors",
            "leased_history_errors_total",
            "Failed lease history writes and fsyncs.",
        ),
    ] {
        out.head(name, "counter", help);
        out.sample(name, &[], get(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_labels() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut o = Out(String::new());
        o.sample("m", &[("a", "x"), ("b", "y")], 3);
        assert_eq!(o.0, "m{a=\"x\",b=\"y\"} 3\n");
    }
}
