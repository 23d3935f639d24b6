//! dnsmasq: the DHCP part of `dnsmasq.conf` (`dhcp-range`, `dhcp-host`, `dhcp-option`, …) and
//! its lease file (`dnsmasq.leases`: `expiry mac ip hostname client-id` per line).
//!
//! Every line of the config is either mapped or listed as not mapped (`dnsmasq.conf:12:
//! …`), the DNS and TFTP parts of dnsmasq included: leased is a DHCP server only.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::leases::{Line, next_line};
use crate::options::{self, Data, Placed};
use crate::{
    ClassPart, Expiry, Imported, LeaseError, LeaseRecord, MatchPart, MetaPart, Opts, RecordState,
    ReservationPart, SubnetPart, Unmapped,
};

/// dnsmasq's lease time when a `dhcp-range` gives none.
const DEFAULT_LEASE: u64 = 3600;

/// What [`import_config`] found beside the config itself.
#[derive(Debug, Clone, Default)]
pub struct DnsmasqConfig {
    /// The leased config and the list of what does not map.
    pub imported: Imported,
    /// `dhcp-leasefile=`, when set.
    pub lease_file: Option<String>,
}

/// An address of this machine with its prefix (`198.18.0.1/24`), for `dhcp-range`s without a
/// netmask (dnsmasq takes the netmask of the interface the range is on) and for option values
/// `0.0.0.0` ("this server").
pub type LocalAddr = Ipv4Net;

/// Why a key is not mapped, for keys whose reason is known.
fn reason(key: &str) -> &'static str {
    match key {
        "server"
        | "local"
        | "address"
        | "no-resolv"
        | "no-hosts"
        | "addn-hosts"
        | "cache-size"
        | "domain-needed"
        | "bogus-priv"
        | "strict-order"
        | "no-poll"
        | "resolv-file"
        | "expand-hosts"
        | "listen-address"
        | "cname"
        | "mx-host"
        | "srv-host"
        | "txt-record"
        | "ptr-record"
        | "host-record"
        | "neg-ttl"
        | "local-ttl"
        | "auth-zone"
        | "auth-server"
        | "dnssec"
        | "trust-anchor"
        | "all-servers"
        | "log-queries"
        | "stop-dns-rebind"
        | "rebind-localhost-ok"
        | "ipset"
        | "nftset"
        | "edns-packet-max"
        | "query-port"
        | "min-port"
        | "max-port" => "DNS is not part of leased (a DHCP server only)",
        "enable-tftp" | "tftp-root" | "tftp-secure" | "tftp-no-blocksize" | "tftp-port-range"
        | "tftp-unique-root" | "tftp-lowercase" | "tftp-max" | "tftp-no-fail" => {
            "TFTP is not part of leased"
        }
        "enable-ra" | "ra-param" | "dhcp-duid" => "DHCPv6 and router advertisements are not served",
        "log-dhcp" | "log-facility" | "log-async" | "quiet-dhcp" | "quiet-dhcp6" | "quiet-ra" => {
            "logging is set in leased's [logging]"
        }
        "user" | "group" | "pid-file" | "keep-in-foreground" | "no-daemon" | "bind-interfaces"
        | "bind-dynamic" => {
            "a process setting of dnsmasq; leased has its own ([server] user/group/pid_file)"
        }
        "conf-file" | "conf-dir" | "servers-file" => {
            "not followed: import the included file's lines (put them in one file)"
        }
        "dhcp-lease-max" => "leased bounds leases by its pools",
        "dhcp-script" | "dhcp-luascript" | "dhcp-scriptuser" => {
            "leased runs no scripts; use its history (`leased history`) or billing export"
        }
        "dhcp-ignore" | "dhcp-ignore-names" | "dhcp-match" | "tag-if" | "dhcp-circuitid"
        | "dhcp-remoteid" | "dhcp-subscrid" | "dhcp-name-match" | "dhcp-proxy" => {
            "tag logic beyond option 60/77 and MAC prefixes has no leased equivalent"
        }
        "dhcp-no-override"
        | "dhcp-broadcast"
        | "dhcp-rapid-commit"
        | "dhcp-sequential-ip"
        | "dhcp-generate-names"
        | "dhcp-fqdn"
        | "read-ethers"
        | "dhcp-hostsfile"
        | "dhcp-optsfile"
        | "dhcp-hostsdir"
        | "dhcp-optsdir"
        | "dhcp-reply-delay"
        | "dhcp-ttl"
        | "no-ping"
        | "dhcp-client-update"
        | "leasefile-ro"
        | "dhcp-alternate-port"
        | "bootp-dynamic"
        | "dhcp-relay"
        | "dhcp-pxe-vendor"
        | "pxe-service"
        | "pxe-prompt" => "not mapped",
        "except-interface" | "no-dhcp-interface" => {
            "leased serves exactly [server] interfaces (or every interface with a subnet)"
        }
        _ => "not mapped",
    }
}

/// Splits a value at commas, keeping quoted text (which may hold commas) whole, quotes off.
fn tokens(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next()
                    && let Some(l) = out.last_mut()
                {
                    l.push(n);
                }
            }
            ',' if !quoted => out.push(String::new()),
            c => {
                if let Some(l) = out.last_mut() {
                    l.push(c);
                }
            }
        }
    }
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

/// A dnsmasq lease time: seconds, or with `m`/`h`/`d`/`w` suffix, or `infinite`.
fn lease_time(t: &str) -> Option<Option<u64>> {
    if t == "infinite" {
        return Some(None);
    }
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (t.get(..i)?, c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    Some(Some(n.checked_mul(mult)?))
}

fn is_mac(t: &str) -> bool {
    let t = t.split_once('-').map_or(t, |(ty, rest)| {
        if ty.len() <= 2 && ty.chars().all(|c| c.is_ascii_hexdigit()) && rest.contains(':') {
            rest
        } else {
            t
        }
    });
    let parts: Vec<&str> = t.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| {
            p == &"*" || (p.len() <= 2 && !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
        })
}

/// A `dhcp-range`, after parsing.
struct Range {
    line: String,
    tags_set: Vec<String>,
    tag_only: Option<String>,
    start: Ipv4Addr,
    end: Option<Ipv4Addr>,
    net: Ipv4Net,
    lease: Option<Option<u64>>,
}

/// Per-tag classes from `dhcp-vendorclass`, `dhcp-userclass`, `dhcp-mac`.
struct TagClass {
    class: ClassPart,
}

struct Walk<'a> {
    notes: Vec<Unmapped>,
    local: &'a [LocalAddr],
    file: String,
}

impl Walk<'_> {
    fn at(&self, n: usize) -> String {
        format!("{}:{n}", self.file)
    }

    /// The network of a range starting at `start`: from its netmask, else from this
    /// machine's address in it.
    fn network(&self, start: Ipv4Addr, mask: Option<Ipv4Addr>) -> Option<Ipv4Net> {
        match mask {
            Some(m) => {
                let len = ipnet::ipv4_mask_to_prefix(m).ok()?;
                Ipv4Net::new(start, len).ok().map(|n| n.trunc())
            }
            None => self
                .local
                .iter()
                .find(|l| l.contains(&start))
                .map(|l| l.trunc()),
        }
    }

    /// This machine's address in `net` (what dnsmasq's `0.0.0.0` means in an option).
    fn me_in(&self, net: Ipv4Net) -> Option<Ipv4Addr> {
        self.local
            .iter()
            .find(|l| net.contains(&l.addr()))
            .map(Ipv4Net::addr)
    }
}

/// Reads the DHCP part of a dnsmasq config. `file` names it in the not-mapped list; `local`
/// are this machine's addresses (for ranges without a netmask).
pub fn import_config(text: &str, file: &str, local: &[LocalAddr]) -> DnsmasqConfig {
    let mut w = Walk {
        notes: Vec::new(),
        local,
        file: file.to_string(),
    };
    let mut out = DnsmasqConfig::default();
    let mut ranges: Vec<Range> = Vec::new();
    let mut hosts: Vec<(usize, String)> = Vec::new();
    let mut option_lines: Vec<(usize, String, bool)> = Vec::new();
    let mut boots: Vec<(usize, String)> = Vec::new();
    let mut domains: Vec<(usize, String)> = Vec::new();
    let mut tag_classes: BTreeMap<String, TagClass> = BTreeMap::new();
    let mut authoritative = false;
    let mut interfaces: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        let key = key.trim_start_matches("--");
        match key {
            "interface" => {
                for t in tokens(value) {
                    if !t.is_empty() && !interfaces.contains(&t) {
                        interfaces.push(t);
                    }
                }
            }
            "dhcp-range" => {
                if let Some(r) = parse_range(&mut w, n, value) {
                    ranges.push(r);
                }
            }
            "dhcp-host" => hosts.push((n, value.to_string())),
            "dhcp-option" => option_lines.push((n, value.to_string(), false)),
            "dhcp-option-force" => option_lines.push((n, value.to_string(), true)),
            "dhcp-boot" => boots.push((n, value.to_string())),
            "domain" => domains.push((n, value.to_string())),
            "dhcp-authoritative" => authoritative = true,
            "dhcp-leasefile" | "dhcp-lease-file" => out.lease_file = Some(value.to_string()),
            "port" if value == "0" => {}
            "dhcp-vendorclass" | "dhcp-userclass" | "dhcp-mac" => {
                tag_class(&mut w, n, key, value, &mut tag_classes);
            }
            _ => w
                .notes
                .push(Unmapped::new(w.at(n), format!("{line}: {}", reason(key)))),
        }
    }
    let cfg = &mut out.imported.config;
    cfg.server.interfaces = interfaces;
    cfg.server.authoritative = Some(authoritative);
    // One leased subnet per network, its ranges as pools.
    let mut subnets: Vec<SubnetPart> = Vec::new();
    let mut subnet_tags: BTreeMap<String, usize> = BTreeMap::new();
    for r in &ranges {
        let idx = match subnets.iter().position(|s| s.network == r.net.to_string()) {
            Some(i) => i,
            None => {
                subnets.push(SubnetPart {
                    origin: r.line.clone(),
                    network: r.net.to_string(),
                    lease_time: Some(DEFAULT_LEASE),
                    ..SubnetPart::default()
                });
                subnets.len() - 1
            }
        };
        if let Some(s) = subnets.get_mut(idx) {
            match r.lease {
                Some(Some(secs)) if s.pools.is_empty() => s.lease_time = Some(secs),
                Some(None) => w.notes.push(Unmapped::new(
                    r.line.clone(),
                    "an infinite lease time: leased leases end; the subnet keeps dnsmasq's \
                     default of 1h",
                )),
                Some(Some(secs)) if s.lease_time != Some(secs) => w.notes.push(Unmapped::new(
                    r.line.clone(),
                    format!(
                        "lease time {secs}s differs from the first range of {}: leased has one \
                         lease time per subnet",
                        r.net
                    ),
                )),
                _ => {}
            }
            let range_text = r.end.map(|e| format!("{}-{e}", r.start));
            match (&r.tag_only, range_text) {
                (Some(tag), Some(text)) => match tag_classes.get_mut(tag) {
                    Some(tc) if tc.class.pool.is_none() => {
                        tc.class.pool = Some(text.clone());
                        s.pools.push(text);
                    }
                    _ => w.notes.push(Unmapped::new(
                        r.line.clone(),
                        format!(
                            "a range for tag {tag}: the tag is not a vendor/user class or MAC \
                             prefix leased can match (or already has a pool); the range is \
                             not imported"
                        ),
                    )),
                },
                (None, Some(text)) => s.pools.push(text),
                (_, None) => {}
            }
            for t in &r.tags_set {
                subnet_tags.insert(t.clone(), idx);
            }
        }
    }
    // Options: global, per range tag, or per class tag.
    let mut global = Opts::default();
    for (n, value, force) in &option_lines {
        dhcp_option(
            &mut w,
            *n,
            value,
            *force,
            &mut global,
            &mut subnets,
            &subnet_tags,
            &mut tag_classes,
        );
    }
    for (n, value) in &boots {
        let t = tokens(value);
        if t.first()
            .is_some_and(|x| x.starts_with("tag:") || x.starts_with("net:"))
        {
            w.notes.push(Unmapped::new(
                w.at(*n),
                format!("dhcp-boot={value}: a tagged boot file is not mapped"),
            ));
            continue;
        }
        if let Some(f) = t.first().filter(|f| !f.is_empty()) {
            global.bootfile = Some(f.clone());
        }
        if let Some(addr) = t.get(2) {
            global.next_server = Some(addr.clone());
        }
        if t.get(1).is_some_and(|x| !x.is_empty()) {
            w.notes.push(Unmapped::new(
                w.at(*n),
                "dhcp-boot server name: the BOOTP sname field is not set by leased",
            ));
        }
    }
    for (n, value) in &domains {
        let t = tokens(value);
        let name = t.first().cloned().unwrap_or_default();
        match t.get(1) {
            None => global.domain_name = Some(name),
            Some(scope) => {
                let net = scope.parse::<Ipv4Net>().ok().map(|x| x.trunc().to_string());
                match net.and_then(|net| subnets.iter_mut().find(|s| s.network == net)) {
                    Some(s) => s.options.domain_name = Some(name),
                    None => w.notes.push(Unmapped::new(
                        w.at(*n),
                        format!("domain={value}: only a domain for a whole dhcp-range subnet maps"),
                    )),
                }
            }
        }
    }
    cfg.options = global;
    // Hosts.
    let mut reservations = Vec::new();
    for (n, value) in &hosts {
        dhcp_host(&mut w, *n, value, &mut reservations, &mut cfg.banned_macs);
    }
    cfg.subnets = subnets;
    cfg.reservations = reservations;
    cfg.classes = tag_classes.into_values().map(|t| t.class).collect();
    if cfg.classes.len() > 1 {
        w.notes.push(Unmapped::new(
            w.file.clone(),
            "a client matching several tags gets only the first class's options and pool in \
             leased (dnsmasq merges them)",
        ));
    }
    out.imported.unmapped = w.notes;
    out
}

fn parse_range(w: &mut Walk<'_>, n: usize, value: &str) -> Option<Range> {
    let at = w.at(n);
    let mut t: Vec<String> = tokens(value);
    let mut tags_set = Vec::new();
    let mut tag_only = None;
    while let Some(first) = t.first().cloned() {
        if let Some(tag) = first
            .strip_prefix("set:")
            .or_else(|| first.strip_prefix("net:"))
        {
            tags_set.push(tag.to_string());
        } else if let Some(tag) = first.strip_prefix("tag:") {
            if tag.starts_with('!') || tag_only.is_some() {
                w.notes.push(Unmapped::new(
                    at,
                    format!("dhcp-range={value}: negated or several tags are not mapped"),
                ));
                return None;
            }
            tag_only = Some(tag.to_string());
        } else if first.contains(':') && first.parse::<Ipv4Addr>().is_err() {
            // An IPv6 range or a constructor: not DHCPv4.
            w.notes.push(Unmapped::new(
                at,
                format!("dhcp-range={value}: DHCPv6 is not served by leased"),
            ));
            return None;
        } else {
            break;
        }
        t.remove(0);
    }
    let Some(start) = t.first().and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
        w.notes.push(Unmapped::new(
            at,
            format!("dhcp-range={value}: no IPv4 start address (DHCPv6 is not served)"),
        ));
        return None;
    };
    let mut rest = t.iter().skip(1).peekable();
    let end = match rest.peek().map(|s| s.as_str()) {
        Some("static") => {
            rest.next();
            None
        }
        Some("proxy") => {
            w.notes.push(Unmapped::new(
                at,
                format!("dhcp-range={value}: proxy DHCP is not served by leased"),
            ));
            return None;
        }
        Some(s) => match s.parse::<Ipv4Addr>() {
            Ok(e) => {
                rest.next();
                Some(e)
            }
            Err(_) => None,
        },
        None => None,
    };
    let mut addrs = Vec::new();
    let mut lease = None;
    for x in rest {
        if let Ok(a) = x.parse::<Ipv4Addr>() {
            addrs.push(a);
        } else if let Some(l) = lease_time(x) {
            lease = Some(l);
        } else {
            w.notes.push(Unmapped::new(
                at.clone(),
                format!("dhcp-range={value}: {x:?} not understood; ignored"),
            ));
        }
    }
    if addrs.len() > 1 {
        w.notes.push(Unmapped::new(
            at.clone(),
            "dhcp-range broadcast address: leased derives it from the subnet",
        ));
    }
    let Some(net) = w.network(start, addrs.first().copied()) else {
        w.notes.push(Unmapped::new(
            at,
            format!(
                "dhcp-range={value}: no netmask, and no address of this machine lies in the \
                 range's subnet: add the netmask to the line and import again"
            ),
        ));
        return None;
    };
    if let Some(e) = end
        && !net.contains(&e)
    {
        w.notes.push(Unmapped::new(
            at,
            format!("dhcp-range={value}: {e} is not in {net}"),
        ));
        return None;
    }
    Some(Range {
        line: w.at(n),
        tags_set,
        tag_only,
        start,
        end,
        net,
        lease,
    })
}

fn tag_class(
    w: &mut Walk<'_>,
    n: usize,
    key: &str,
    value: &str,
    classes: &mut BTreeMap<String, TagClass>,
) {
    let at = w.at(n);
    let t = tokens(value);
    let (tag, what) = match (t.first(), t.get(1)) {
        (Some(a), Some(b)) if a.starts_with("set:") || a.starts_with("net:") => {
            (a.get(4..).unwrap_or_default().to_string(), b.clone())
        }
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        _ => {
            w.notes
                .push(Unmapped::new(at, format!("{key}={value}: not understood")));
            return;
        }
    };
    let mut m = MatchPart::default();
    match key {
        // dnsmasq matches the vendor and user class as substrings.
        "dhcp-vendorclass" if !what.contains(['*', '?']) => {
            m.vendor_class = Some(format!("*{what}*"));
        }
        "dhcp-userclass" if !what.contains(['*', '?']) => {
            m.user_class = Some(format!("*{what}*"));
        }
        "dhcp-mac" => {
            let groups: Vec<&str> = what.split(':').collect();
            let fixed: Vec<&str> = groups.iter().copied().take_while(|g| *g != "*").collect();
            let tail_wild = groups.iter().skip(fixed.len()).all(|g| *g == "*");
            match options::parse_hex(&fixed.join(":")) {
                Some(b) if groups.len() == 6 && tail_wild && !b.is_empty() => {
                    m.mac_prefix = Some(options::hex(&b));
                }
                _ => {
                    w.notes.push(Unmapped::new(
                        at,
                        format!("{key}={value}: only a MAC prefix with trailing wildcards maps"),
                    ));
                    return;
                }
            }
        }
        _ => {
            w.notes
                .push(Unmapped::new(at, format!("{key}={value}: not mapped")));
            return;
        }
    }
    if classes.contains_key(&tag) {
        w.notes.push(Unmapped::new(
            at,
            format!("{key}={value}: tag {tag} is set more than once; only the first maps"),
        ));
        return;
    }
    classes.insert(
        tag.clone(),
        TagClass {
            class: ClassPart {
                origin: at,
                name: tag,
                matcher: m,
                ..ClassPart::default()
            },
        },
    );
}

#[allow(clippy::too_many_arguments)]
fn dhcp_option(
    w: &mut Walk<'_>,
    n: usize,
    value: &str,
    force: bool,
    global: &mut Opts,
    subnets: &mut [SubnetPart],
    subnet_tags: &BTreeMap<String, usize>,
    classes: &mut BTreeMap<String, TagClass>,
) {
    let at = w.at(n);
    let key = if force {
        "dhcp-option-force"
    } else {
        "dhcp-option"
    };
    let mut t = tokens(value);
    let mut tags = Vec::new();
    while let Some(first) = t.first().cloned() {
        if let Some(tag) = first
            .strip_prefix("tag:")
            .or_else(|| first.strip_prefix("net:"))
        {
            tags.push(tag.to_string());
            t.remove(0);
        } else if first.starts_with("encap:")
            || first.starts_with("vi-encap:")
            || first.starts_with("vendor:")
        {
            w.notes.push(Unmapped::new(
                at,
                format!("{key}={value}: encapsulated and vendor option spaces are not mapped"),
            ));
            return;
        } else {
            break;
        }
    }
    let Some(opt) = t.first().cloned() else {
        w.notes
            .push(Unmapped::new(at, format!("{key}={value}: no option")));
        return;
    };
    if opt.starts_with("option6:") {
        w.notes.push(Unmapped::new(
            at,
            format!("{key}={value}: DHCPv6 is not served"),
        ));
        return;
    }
    let code = match opt.strip_prefix("option:") {
        Some(name) => options::by_dnsmasq_name(name).map(|d| d.code),
        None => opt.parse::<u8>().ok(),
    };
    let Some(code) = code else {
        w.notes.push(Unmapped::new(
            at,
            format!("{key}={value}: unknown option {opt:?}"),
        ));
        return;
    };
    let values: Vec<String> = t.iter().skip(1).cloned().collect();
    if values.is_empty() || values.iter().all(String::is_empty) {
        w.notes.push(Unmapped::new(
            at,
            format!(
                "{key}={value}: an empty option (\"send nothing\") is not mapped: leased sends \
                 only the options it is given"
            ),
        ));
        return;
    }
    if tags.iter().any(|t| t.starts_with('!')) || tags.len() > 1 {
        w.notes.push(Unmapped::new(
            at,
            format!("{key}={value}: negated or several tags are not mapped"),
        ));
        return;
    }
    enum Target {
        Global,
        Subnet(usize),
        Class(String),
    }
    let target = match tags.first() {
        None => Target::Global,
        Some(tag) => match (subnet_tags.get(tag), classes.contains_key(tag)) {
            (Some(i), _) => Target::Subnet(*i),
            (None, true) => Target::Class(tag.clone()),
            (None, false) => {
                w.notes.push(Unmapped::new(
                    at,
                    format!(
                        "{key}={value}: tag {tag} is set by nothing leased maps (only dhcp-range \
                         set:, dhcp-vendorclass, dhcp-userclass and dhcp-mac tags map)"
                    ),
                ));
                return;
            }
        },
    };
    // dnsmasq's 0.0.0.0 means "the address of this machine" on the link.
    let scope_net = match &target {
        Target::Subnet(i) => subnets
            .get(*i)
            .and_then(|s| s.network.parse::<Ipv4Net>().ok()),
        _ if subnets.len() == 1 => subnets.first().and_then(|s| s.network.parse().ok()),
        _ => None,
    };
    let mut values = values;
    if values.iter().any(|v| v == "0.0.0.0")
        && matches!(target, Target::Global)
        && scope_net.is_none()
    {
        // "This server" differs per subnet: the option goes to each subnet with its address.
        for s in subnets.iter_mut() {
            let me = s
                .network
                .parse::<Ipv4Net>()
                .ok()
                .and_then(|net| w.me_in(net));
            let Some(me) = me else {
                w.notes.push(Unmapped::new(
                    at.clone(),
                    format!(
                        "{key}={value}: 0.0.0.0 (\"this server\") for subnet {}: no address of \
                         this machine lies in it; not mapped there",
                        s.network
                    ),
                ));
                continue;
            };
            let v: Vec<String> = values
                .iter()
                .map(|x| {
                    if x == "0.0.0.0" {
                        me.to_string()
                    } else {
                        x.clone()
                    }
                })
                .collect();
            match options::set(&mut s.options, code, None, &Data::Values(v)) {
                Ok(Placed::Set) => {}
                Ok(Placed::Routers(rs)) => s.routers = rs.iter().map(ToString::to_string).collect(),
                Ok(_) => w.notes.push(Unmapped::new(
                    at.clone(),
                    format!("{key}={value}: not mapped"),
                )),
                Err(why) => w
                    .notes
                    .push(Unmapped::new(at.clone(), format!("{key}={value}: {why}"))),
            }
        }
        return;
    }
    if values.iter().any(|v| v == "0.0.0.0") {
        match scope_net.and_then(|net| w.me_in(net)) {
            Some(me) => {
                for v in &mut values {
                    if v == "0.0.0.0" {
                        *v = me.to_string();
                    }
                }
            }
            None => {
                w.notes.push(Unmapped::new(
                    at,
                    format!(
                        "{key}={value}: 0.0.0.0 (\"this server\") needs this machine's address \
                         in the subnet; not mapped"
                    ),
                ));
                return;
            }
        }
    }
    if force {
        w.notes.push(Unmapped::new(
            at.clone(),
            "dhcp-option-force: leased sends a configured option whether or not the client asks",
        ));
    }
    let data = Data::Values(values);
    let result = match &target {
        Target::Global => options::set(global, code, None, &data),
        Target::Subnet(i) => match subnets.get_mut(*i) {
            Some(s) => options::set(&mut s.options, code, None, &data),
            None => Err("no subnet".into()),
        },
        Target::Class(tag) => match classes.get_mut(tag) {
            Some(c) => options::set(&mut c.class.options, code, None, &data),
            None => Err("no class".into()),
        },
    };
    match result {
        Ok(Placed::Set) => {}
        Ok(Placed::Routers(rs)) => {
            let mut placed = Vec::new();
            for r in &rs {
                let subnet = match &target {
                    Target::Subnet(i) => subnets.get_mut(*i),
                    Target::Global => subnets
                        .iter_mut()
                        .find(|s| s.network.parse::<Ipv4Net>().is_ok_and(|n| n.contains(r))),
                    Target::Class(_) => None,
                };
                if let Some(s) = subnet
                    && !s.routers.contains(&r.to_string())
                {
                    s.routers.push(r.to_string());
                    placed.push(*r);
                }
            }
            if placed.len() != rs.len() {
                w.notes.push(Unmapped::new(
                    at,
                    format!("{key}={value}: leased sets routers per subnet, inside it"),
                ));
            }
        }
        Ok(Placed::Hostname(_)) => w.notes.push(Unmapped::new(
            at,
            format!("{key}={value}: a host name for many clients is not mapped"),
        )),
        Ok(Placed::Mask(m)) => {
            if scope_net.is_none_or(|net| net.netmask() != m) {
                w.notes.push(Unmapped::new(
                    at,
                    format!("{key}={value}: leased derives the netmask from the subnet"),
                ));
            }
        }
        Err(why) => w
            .notes
            .push(Unmapped::new(at, format!("{key}={value}: {why}"))),
    }
}

fn dhcp_host(
    w: &mut Walk<'_>,
    n: usize,
    value: &str,
    reservations: &mut Vec<ReservationPart>,
    banned: &mut BTreeMap<String, MetaPart>,
) {
    let at = w.at(n);
    let mut macs = Vec::new();
    let mut client_id = None;
    let mut ip = None;
    let mut hostname = None;
    let mut ignore = false;
    let mut wildcard = false;
    let mut leftovers = Vec::new();
    for t in tokens(value) {
        if t.is_empty() {
            continue;
        }
        if t == "ignore" {
            ignore = true;
        } else if let Some(id) = t.strip_prefix("id:") {
            if id == "*" {
                leftovers.push("id:* (ignore the client-id)".to_string());
            } else {
                let bytes = options::parse_hex(id)
                    .filter(|_| id.contains(':'))
                    .unwrap_or_else(|| id.as_bytes().to_vec());
                client_id = Some(options::hex(&bytes));
            }
        } else if t.starts_with("set:") || t.starts_with("tag:") || t.starts_with("net:") {
            leftovers.push(format!("tag {t}"));
        } else if t.starts_with('[') {
            leftovers.push(format!("IPv6 {t}"));
        } else if let Ok(a) = t.parse::<Ipv4Addr>() {
            ip = Some(a);
        } else if is_mac(&t) {
            if t.contains('*') {
                wildcard = true;
                leftovers.push(format!("wildcard MAC {t}"));
            } else {
                macs.push(t);
            }
        } else if lease_time(&t).is_some() {
            leftovers.push(format!("lease time {t}"));
        } else {
            hostname = Some(t);
        }
    }
    if ignore {
        if macs.is_empty() {
            w.notes.push(Unmapped::new(
                at.clone(),
                format!("dhcp-host={value}: ignore without a MAC is not mapped"),
            ));
        }
        for m in macs {
            banned.insert(
                m,
                MetaPart {
                    note: Some(format!("dnsmasq dhcp-host … ignore ({at})")),
                    ..MetaPart::default()
                },
            );
        }
        return;
    }
    if !leftovers.is_empty() {
        w.notes.push(Unmapped::new(
            at.clone(),
            format!("dhcp-host={value}: not mapped: {}", leftovers.join(", ")),
        ));
    }
    let Some(ip) = ip else {
        w.notes.push(Unmapped::new(
            at,
            format!(
                "dhcp-host={value}: no address: a host name or options alone are not a leased \
                 reservation"
            ),
        ));
        return;
    };
    let mut r = ReservationPart {
        origin: at.clone(),
        ip: ip.to_string(),
        hostname,
        ..ReservationPart::default()
    };
    let mut macs = macs.into_iter();
    match (macs.next(), client_id) {
        (Some(m), _) => r.mac = Some(m),
        (None, Some(c)) => r.client_id = Some(c),
        (None, None) => {
            if !wildcard {
                w.notes.push(Unmapped::new(
                    at,
                    format!("dhcp-host={value}: a reservation by host name only is not mapped"),
                ));
            }
            return;
        }
    }
    let more: Vec<String> = macs.collect();
    if !more.is_empty() {
        w.notes.push(Unmapped::new(
            at,
            format!(
                "dhcp-host={value}: further MACs {} for the same address: leased reserves an \
                 address for one client",
                more.join(", ")
            ),
        ));
    }
    reservations.push(r);
}

/// Reads `dnsmasq.leases` line by line.
pub struct LeaseLines<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
}

impl<R: BufRead> LeaseLines<R> {
    /// A reader over one lease file.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            line: 0,
        }
    }
}

impl<R: BufRead> Iterator for LeaseLines<R> {
    type Item = Result<LeaseRecord, LeaseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match next_line(&mut self.reader, &mut self.buf) {
                Err(e) => return Some(Err(LeaseError::Io(e))),
                Ok(None) => return None,
                Ok(Some(l)) => l,
            };
            self.line += 1;
            let n = self.line;
            let text = match line {
                Line::TooLong => {
                    return Some(Err(LeaseError::Line {
                        line: n,
                        message: "line too long".into(),
                    }));
                }
                Line::Text(t) => t,
            };
            if text.trim().is_empty() || text.starts_with("duid ") {
                continue;
            }
            return Some(
                parse_lease(&text).map_err(|message| LeaseError::Line { line: n, message }),
            );
        }
    }
}

fn parse_lease(text: &str) -> Result<LeaseRecord, String> {
    let f: Vec<&str> = text.split_whitespace().collect();
    let [expiry, mac, ip, host, rest @ ..] = f.as_slice() else {
        return Err("expected `expiry mac ip hostname client-id`".into());
    };
    let expiry: u64 = expiry
        .parse()
        .map_err(|_| format!("expiry {expiry:?} is not a number"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IPv4 address (DHCPv6 leases are not imported)"))?;
    // Non-Ethernet hardware is written `<type>-<address>`.
    let hw = match mac.split_once('-') {
        Some((ty, rest)) if ty.len() <= 2 && rest.contains(':') => rest,
        _ => mac,
    };
    let hwaddr = options::parse_hex(hw).ok_or_else(|| format!("{mac:?} is not a MAC"))?;
    let client_id = match rest.first() {
        None | Some(&"*") => None,
        Some(c) => {
            Some(options::parse_hex(c).ok_or_else(|| format!("client-id {c:?} is not hex"))?)
        }
    };
    Ok(LeaseRecord {
        ip,
        hwaddr,
        client_id,
        hostname: (*host != "*").then(|| (*host).to_string()),
        starts: None,
        expires: if expiry == 0 {
            Expiry::Never
        } else {
            Expiry::At(expiry)
        },
        state: RecordState::Active,
        first_seen: None,
        circuit_id: None,
        remote_id: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn token_and_times() {
        assert_eq!(tokens("a, \"b,c\" ,d"), ["a", "b,c", "d"]);
        assert_eq!(lease_time("12h"), Some(Some(43_200)));
        assert_eq!(lease_time("600"), Some(Some(600)));
        assert_eq!(lease_time("infinite"), Some(None));
        assert_eq!(lease_time("host"), None);
        assert!(is_mac("00:11:22:33:44:55"));
        assert!(is_mac("00:11:22:*:*:*"));
        assert!(is_mac("06-00:11:22:33:44:55"));
        assert!(!is_mac("printer"));
    }

    #[test]
    fn lease_lines() {
        let text = "1700003600 02:00:00:00:00:01 198.18.0.100 one 01:02:00:00:00:00:01\n\
                    0 02:00:00:00:00:02 198.18.0.101 * *\n\
                    duid 00:01:00:01\n\
                    1700003600 02:00:00:00:00:03 fd00::1 * *\n";
        let got: Vec<_> = LeaseLines::new(text.as_bytes()).collect();
        assert_eq!(got.len(), 3);
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.hostname.as_deref(), Some("one"));
        assert_eq!(a.expires, Expiry::At(1_700_003_600));
        assert_eq!(a.client_id.as_deref(), Some(&[1, 2, 0, 0, 0, 0, 1][..]));
        let b = got[1].as_ref().unwrap();
        assert_eq!(
            (b.expires, b.hostname.clone(), b.client_id.clone()),
            (Expiry::Never, None, None)
        );
        assert!(got[2].is_err());
    }
}
