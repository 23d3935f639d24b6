//! Leasequery answers, sans IO: who may ask (the `[leasequery] allow` list), what a query asks
//! (RFC 4388 by address, MAC or client-id; RFC 6148 by remote-id; RFC 6926 bulk by remote-id
//! or all bindings, within query-start/end-time), and the messages that answer it, read from
//! the engine's lease table at a time the driver passes in.
//!
//! Why here: the answer is a protocol decision over the lease table the engine owns; the
//! driver only moves bytes. A bulk answer or an active query's catch-up is produced by a
//! [`Cursor`] in bounded steps, so neither a million leases nor a slow reader makes the driver
//! hold more than one step's messages.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use leased_core::{ClientId, Lease, LeaseState, LeaseTable, Plan, Timestamp};
use leased_wire::leasequery::{DhcpState, Status, msg, opt, status_option, sub};
use leased_wire::{BOOTREPLY, Options, Packet, code};

/// Who may send leasequeries: requestors whose source address (and, over UDP, giaddr, where
/// the answer goes) lies in one of these networks. Empty: nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// The allowed networks.
    pub allow: Vec<Ipv4Net>,
}

impl Acl {
    /// True when `addr` may ask.
    pub fn allows(&self, addr: Ipv4Addr) -> bool {
        self.allow.iter().any(|n| n.contains(&addr))
    }
}

/// What a query asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The binding of one address (ciaddr).
    Ip(Ipv4Addr),
    /// The bindings of a hardware address (htype, chaddr).
    Mac(Vec<u8>),
    /// The bindings of a client-id (option 61).
    ClientId(Vec<u8>),
    /// The bindings made through a relay's remote-id (Option 82 sub-option 2), narrowed to one
    /// circuit when sub-option 1 is given too.
    RemoteId {
        /// The remote-id.
        remote_id: Vec<u8>,
        /// The circuit-id, when given.
        circuit_id: Option<Vec<u8>>,
    },
    /// The bindings made through a relay-id (Option 82 sub-option 12, RFC 6925): leases do not
    /// record it, so this query is refused with NotAllowed.
    RelayId(Vec<u8>),
    /// Every binding (RFC 6926 "all configured", and every active query).
    All,
}

/// The query-start-time / query-end-time window (RFC 6926 §6.2.5–6): only bindings whose
/// state began inside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// At or after this, when set.
    pub start: Option<Timestamp>,
    /// At or before this, when set.
    pub end: Option<Timestamp>,
}

impl Window {
    fn contains(&self, t: Timestamp) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// A query the server will not answer as asked: over TCP it becomes a DHCPLEASEQUERYSTATUS;
/// over UDP the query is dropped and counted under [`Refusal::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The status to report.
    pub status: Status,
    /// Its message, also the metrics label.
    pub label: &'static str,
}

const fn refuse(status: Status, label: &'static str) -> Refusal {
    Refusal { status, label }
}

/// A parsed query: what it asks, its window, and what the reply must echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// What is asked.
    pub query: Query,
    /// The time window.
    pub window: Window,
    /// The query's xid, echoed in every answer.
    pub xid: u32,
    /// The query's giaddr (UDP answers go there).
    pub giaddr: Ipv4Addr,
    /// The option codes the requestor listed in option 55.
    pub prl: Vec<u8>,
    /// The query's htype, hlen and chaddr, echoed in answers that name no client.
    pub hw: (u8, u8, [u8; 16]),
}

/// The raw option 53 value of `packet`, if it is one byte.
pub fn message_type(packet: &Packet) -> Option<u8> {
    match packet.options.get(code::MESSAGE_TYPE) {
        Some(&[t]) => Some(t),
        _ => None,
    }
}

fn time_option(packet: &Packet, code: u8) -> Result<Option<Timestamp>, Refusal> {
    match packet.options.get(code) {
        None => Ok(None),
        Some(&[a, b, c, d]) => Ok(Some(Timestamp(u64::from(u32::from_be_bytes([a, b, c, d]))))),
        Some(_) => Err(refuse(Status::MalformedQuery, "bad_query_time")),
    }
}

/// Sub-option `want` of an Option 82 value, if well formed.
fn suboption(value: &[u8], want: u8) -> Option<Vec<u8>> {
    leased_wire::relay_suboptions(value)
        .ok()?
        .into_iter()
        .find(|(c, _)| *c == want)
        .map(|(_, v)| v.to_vec())
}

/// Reads a query. `bulk`: it came over TCP (RFC 6926 rules: exactly one query type, none
/// meaning all bindings); otherwise it is an RFC 4388 UDP query, where ciaddr wins over
/// client-id, which wins over chaddr, and some query type is required.
pub fn parse(packet: &Packet, bulk: bool) -> Result<Parsed, Refusal> {
    let window = Window {
        start: time_option(packet, opt::QUERY_START_TIME)?,
        end: time_option(packet, opt::QUERY_END_TIME)?,
    };
    let mut found = Vec::new();
    if !packet.ciaddr.is_unspecified() {
        found.push(Query::Ip(packet.ciaddr));
    }
    if let Some(id) = packet
        .options
        .get(code::CLIENT_ID)
        .filter(|v| !v.is_empty())
    {
        found.push(Query::ClientId(id.to_vec()));
    }
    let chaddr = packet.chaddr();
    if !chaddr.is_empty() && chaddr.iter().any(|b| *b != 0) {
        found.push(Query::Mac(chaddr.to_vec()));
    }
    if let Some(o82) = packet.options.get(code::RELAY_AGENT_INFO) {
        if let Some(r) = suboption(o82, sub::RELAY_ID) {
            found.push(Query::RelayId(r));
        } else if let Some(remote_id) = suboption(o82, sub::REMOTE_ID) {
            found.push(Query::RemoteId {
                remote_id,
                circuit_id: suboption(o82, sub::CIRCUIT_ID),
            });
        } else {
            return Err(refuse(Status::MalformedQuery, "bad_option82_query"));
        }
    }
    let query = if bulk {
        if message_type(packet) == Some(msg::ACTIVELEASEQUERY) {
            // RFC 7724: an active query asks for every binding.
            Query::All
        } else if found.len() > 1 {
            return Err(refuse(Status::MalformedQuery, "several_query_types"));
        } else {
            found.into_iter().next().unwrap_or(Query::All)
        }
    } else {
        found
            .into_iter()
            .next()
            .ok_or(refuse(Status::MalformedQuery, "no_query"))?
    };
    if let Query::RelayId(_) = query {
        return Err(refuse(Status::NotAllowed, "relay_id_not_recorded"));
    }
    Ok(Parsed {
        query,
        window,
        xid: packet.xid,
        giaddr: packet.giaddr,
        prl: packet
            .options
            .get(code::PARAM_REQUEST_LIST)
            .unwrap_or_default()
            .to_vec(),
        hw: (packet.htype, packet.hlen, packet.chaddr),
    })
}

/// When a binding entered its current state: a binding (or offer, or quarantine) when it was
/// made or renewed, a released or expired address when it ended.
pub fn state_since(lease: &Lease) -> Timestamp {
    match lease.state {
        LeaseState::Offered | LeaseState::Bound | LeaseState::Declined => lease.starts,
        LeaseState::Released | LeaseState::Expired => lease.expires,
    }
}

/// RFC 6926's dhcp-state of a lease at `now`.
pub fn dhcp_state(lease: &Lease, now: Timestamp) -> DhcpState {
    match lease.state {
        LeaseState::Bound if lease.expires > now => DhcpState::Active,
        LeaseState::Bound | LeaseState::Expired => DhcpState::Expired,
        LeaseState::Released => DhcpState::Released,
        LeaseState::Declined => DhcpState::Abandoned,
        LeaseState::Offered => DhcpState::Transitioning,
    }
}

fn bound(lease: &Lease, now: Timestamp) -> bool {
    lease.state == LeaseState::Bound && lease.expires > now
}

fn secs(n: u64) -> Vec<u8> {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes().to_vec()
}

/// A query by MAC matches the chaddr the lease was made for, whatever its client-id.
fn matches_mac(lease: &Lease, mac: &[u8]) -> bool {
    lease.hwaddr.0 == mac
}

fn matches(query: &Query, lease: &Lease) -> bool {
    match query {
        Query::Ip(ip) => lease.ip == *ip,
        Query::Mac(mac) => matches_mac(lease, mac),
        Query::ClientId(id) => lease.client_id.0 == *id,
        Query::RemoteId {
            remote_id,
            circuit_id,
        } => {
            lease.remote_id.as_deref() == Some(remote_id.as_slice())
                && circuit_id
                    .as_ref()
                    .is_none_or(|c| lease.circuit_id.as_deref() == Some(c.as_slice()))
        }
        Query::RelayId(_) => false,
        Query::All => true,
    }
}

/// How an answer is built: over UDP only what the requestor asked for in option 55 beyond
/// RFC 4388's own options; over TCP the RFC 6926 state options always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 4388 over UDP.
    Udp,
    /// RFC 6926 / RFC 7724 over TCP.
    Tcp,
}

/// What every answer shares.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The server's address, sent as option 54.
    pub server_id: Ipv4Addr,
    /// The time now (base-time).
    pub now: Timestamp,
    /// UDP or TCP.
    pub transport: Transport,
}

fn header(t: u8, xid: u32, giaddr: Ipv4Addr, hw: (u8, u8, [u8; 16]), cx: &Context) -> Packet {
    let mut options = Options::new();
    options.set(code::MESSAGE_TYPE, vec![t]);
    options.set(code::SERVER_ID, cx.server_id.octets().to_vec());
    Packet {
        op: BOOTREPLY,
        htype: hw.0,
        hlen: hw.1,
        hops: 0,
        xid,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr,
        chaddr: hw.2,
        sname: Vec::new(),
        file: Vec::new(),
        options,
        option82_in_overload: false,
    }
}

fn client_hw(lease: &Lease) -> (u8, u8, [u8; 16]) {
    let mut chaddr = [0u8; 16];
    let n = lease.hwaddr.0.len().min(16);
    if let (Some(dst), Some(src)) = (chaddr.get_mut(..n), lease.hwaddr.0.get(..n)) {
        dst.copy_from_slice(src);
    }
    // Leases keep the chaddr only; Ethernet is what every served link is.
    (1, u8::try_from(n).unwrap_or(16), chaddr)
}

fn relay_info(lease: &Lease) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for (c, val) in [
        (sub::CIRCUIT_ID, &lease.circuit_id),
        (sub::REMOTE_ID, &lease.remote_id),
    ] {
        if let Some(val) = val {
            let len = u8::try_from(val.len()).ok()?;
            v.push(c);
            v.push(len);
            v.extend_from_slice(val);
        }
    }
    (!v.is_empty() && v.len() <= 255).then_some(v)
}

/// The message describing `lease` to a requestor: DHCPLEASEACTIVE while it is bound, else
/// DHCPLEASEUNASSIGNED (the address is ours and free, quarantined or offered).
/// `associated`: the client's bound addresses for option 92 (queries by client).
pub fn describe(lease: &Lease, parsed: &Parsed, associated: &[Ipv4Addr], cx: &Context) -> Packet {
    let tcp = cx.transport == Transport::Tcp;
    let asked = |c: u8| tcp || parsed.prl.contains(&c);
    let active = bound(lease, cx.now);
    let mut p = if active || tcp {
        let t = if active {
            msg::LEASEACTIVE
        } else {
            msg::LEASEUNASSIGNED
        };
        header(t, parsed.xid, parsed.giaddr, client_hw(lease), cx)
    } else {
        header(
            msg::LEASEUNASSIGNED,
            parsed.xid,
            parsed.giaddr,
            parsed.hw,
            cx,
        )
    };
    p.ciaddr = lease.ip;
    let o = &mut p.options;
    if active {
        o.set(
            code::LEASE_TIME,
            secs(lease.expires.0.saturating_sub(cx.now.0)),
        );
        o.set(code::CLIENT_ID, lease.client_id.0.clone());
        o.set(
            opt::CLIENT_LAST_TRANSACTION_TIME,
            secs(cx.now.0.saturating_sub(lease.starts.0)),
        );
        if !associated.is_empty() {
            o.set(
                opt::ASSOCIATED_IP,
                associated.iter().flat_map(|a| a.octets()).collect(),
            );
        }
    } else if tcp {
        o.set(code::CLIENT_ID, lease.client_id.0.clone());
    }
    if asked(opt::BASE_TIME) {
        o.set(opt::BASE_TIME, secs(cx.now.0));
    }
    if asked(opt::START_TIME_OF_STATE) {
        o.set(
            opt::START_TIME_OF_STATE,
            secs(cx.now.0.saturating_sub(state_since(lease).0)),
        );
    }
    if asked(opt::DHCP_STATE) {
        o.set(opt::DHCP_STATE, vec![dhcp_state(lease, cx.now).code()]);
    }
    if asked(opt::DATA_SOURCE) {
        // Every lease described here is this server's own.
        o.set(opt::DATA_SOURCE, vec![0]);
    }
    if (active || tcp)
        && asked(code::RELAY_AGENT_INFO)
        && let Some(ri) = relay_info(lease)
    {
        o.set(code::RELAY_AGENT_INFO, ri);
    }
    p
}

/// A message of no binding: DHCPLEASEUNKNOWN, DHCPLEASEUNASSIGNED for an address of ours
/// nobody holds, DHCPLEASEQUERYDONE, or a DHCPLEASEQUERYSTATUS.
pub fn bare(t: u8, parsed: &Parsed, cx: &Context) -> Packet {
    header(t, parsed.xid, parsed.giaddr, parsed.hw, cx)
}

/// A DHCPLEASEQUERYSTATUS carrying `status` and its message, for the query `xid`.
pub fn status(xid: u32, status: Status, message: &str, cx: &Context) -> Packet {
    let mut p = header(
        msg::LEASEQUERYSTATUS,
        xid,
        Ipv4Addr::UNSPECIFIED,
        (0, 0, [0; 16]),
        cx,
    );
    p.options
        .set(opt::STATUS_CODE, status_option(status, message));
    p
}

/// A DHCPLEASEQUERYDONE for the query `xid`.
pub fn done(xid: u32, cx: &Context) -> Packet {
    header(
        msg::LEASEQUERYDONE,
        xid,
        Ipv4Addr::UNSPECIFIED,
        (0, 0, [0; 16]),
        cx,
    )
}

/// A DHCPTLS answer: success (TLS follows on the same connection) or TLSConnectionRefused.
pub fn tls_answer(xid: u32, accept: bool, cx: &Context) -> Packet {
    let mut p = header(
        msg::DHCPTLS,
        xid,
        Ipv4Addr::UNSPECIFIED,
        (0, 0, [0; 16]),
        cx,
    );
    if !accept {
        p.options.set(
            opt::STATUS_CODE,
            status_option(Status::TlsConnectionRefused, "TLS is not configured"),
        );
    }
    p
}

fn authoritative(plan: &Plan, ip: Ipv4Addr) -> bool {
    plan.network.subnets.iter().any(|s| s.network.contains(&ip))
}

/// The RFC 4388 / RFC 6148 answer to a UDP DHCPLEASEQUERY: DHCPLEASEACTIVE for the client's
/// most recent binding (with every bound address in option 92 for a query by client),
/// DHCPLEASEUNASSIGNED for an address of ours with no binding, DHCPLEASEUNKNOWN otherwise.
pub fn answer_udp(table: &LeaseTable, plan: &Plan, parsed: &Parsed, cx: &Context) -> Packet {
    if let Query::Ip(ip) = parsed.query {
        return match table.by_ip(ip) {
            Some(l) if bound(l, cx.now) => describe(l, parsed, &[], cx),
            Some(l) if authoritative(plan, ip) && parsed.window.contains(state_since(l)) => {
                describe(l, parsed, &[], cx)
            }
            _ if authoritative(plan, ip) => {
                let mut p = bare(msg::LEASEUNASSIGNED, parsed, cx);
                p.ciaddr = ip;
                p
            }
            _ => bare(msg::LEASEUNKNOWN, parsed, cx),
        };
    }
    let held: Vec<&Lease> = match &parsed.query {
        // The client-id index first; the scan finds leases of clients keyed otherwise.
        Query::ClientId(id) => table.leases_of(&ClientId(id.clone())).collect(),
        q => table.iter().filter(|l| matches(q, l)).collect(),
    };
    let mut active: Vec<&Lease> = held.into_iter().filter(|l| bound(l, cx.now)).collect();
    active.sort_by_key(|l| (l.starts, l.ip));
    match active.last() {
        Some(latest) => {
            let ips: Vec<Ipv4Addr> = active.iter().map(|l| l.ip).collect();
            describe(latest, parsed, &ips, cx)
        }
        None => bare(msg::LEASEUNKNOWN, parsed, cx),
    }
}

/// Most leases looked at per [`Cursor::step`]: bounds how long the driver is busy with one
/// step of a sparse query over a large table.
pub const SCAN_PER_STEP: usize = 16_384;

/// A bulk query (RFC 6926) or an active query's catch-up (RFC 7724) in progress: walks the
/// table in address order, a bounded step at a time, from where it stopped.
#[derive(Debug, Clone)]
pub struct Cursor {
    parsed: Parsed,
    after: Option<Ipv4Addr>,
    finished: bool,
}

impl Cursor {
    /// A walk answering `parsed`.
    pub fn new(parsed: Parsed) -> Self {
        Self {
            parsed,
            after: None,
            finished: false,
        }
    }

    /// The query being answered.
    pub fn parsed(&self) -> &Parsed {
        &self.parsed
    }

    /// The highest address already walked past (`None`: none yet).
    pub fn position(&self) -> Option<Ipv4Addr> {
        self.after
    }

    /// True once every lease has been looked at.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Up to `max` more answers. A lease matches its query and window; offers are no
    /// bindings and are left out; so are `skip`'s addresses (changes waiting for their commit,
    /// whose lease event follows).
    pub fn step(
        &mut self,
        table: &LeaseTable,
        skip: &HashSet<Ipv4Addr>,
        max: usize,
        cx: &Context,
    ) -> Vec<Packet> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        let start = match (&self.parsed.query, self.after) {
            // One address: start just below it.
            (Query::Ip(ip), None) => u32::from(*ip).checked_sub(1).map(Ipv4Addr::from),
            (_, after) => after,
        };
        let mut scanned = 0;
        let mut iter = table.iter_after(start);
        loop {
            if out.len() >= max || scanned >= SCAN_PER_STEP {
                return out;
            }
            let Some(lease) = iter.next() else { break };
            scanned += 1;
            self.after = Some(lease.ip);
            if let Query::Ip(ip) = self.parsed.query
                && lease.ip > ip
            {
                break;
            }
            if lease.state == LeaseState::Offered
                || skip.contains(&lease.ip)
                || !matches(&self.parsed.query, lease)
                || !self.parsed.window.contains(state_since(lease))
            {
                continue;
            }
            out.push(describe(lease, &self.parsed, &[], cx));
        }
        self.finished = true;
        out
    }
}

/// The update an active query's stream carries for a lease as it now stands.
pub fn update(lease: &Lease, xid: u32, cx: &Context) -> Packet {
    let parsed = Parsed {
        query: Query::All,
        window: Window::default(),
        xid,
        giaddr: Ipv4Addr::UNSPECIFIED,
        prl: Vec::new(),
        hw: (0, 0, [0; 16]),
    };
    describe(lease, &parsed, &[], cx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn acl_matches_networks() {
        let acl = Acl {
            allow: vec!["198.18.0.0/24".parse().unwrap()],
        };
        assert!(acl.allows(Ipv4Addr::new(198, 18, 0, 9)));
        assert!(!acl.allows(Ipv4Addr::new(198, 18, 1, 9)));
        assert!(!Acl::default().allows(Ipv4Addr::new(198, 18, 0, 9)));
    }
}
