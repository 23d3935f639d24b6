//! The neutral model the readers produce. It says what an ISC dhcpd is configured to serve and
//! what it has handed out, without ISC's syntax, so that the API, the importer and the stats can
//! share one reading of the files.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::time::IscTime;

/// Something the reader skipped or could not use, with its place, so an operator can see why a
/// value is missing without the read failing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Warning {
    /// The file the statement is in (as given or resolved for includes).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub col: u32,
    /// What was skipped and why.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// A hardware address as written by `hardware TYPE ADDR;`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hardware {
    /// `ethernet`, `token-ring`, `fddi`, `infiniband`, … (lower case).
    pub htype: String,
    /// The address, lower case, every octet two hex digits (`52:54:00:0a:0b:0c`); kept as
    /// written (lower-cased) if it is not colon-separated hex.
    pub address: String,
}

/// A `host` declaration: a static (fixed-address) reservation or a per-client override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscHost {
    /// The declaration's name (`host NAME { … }`).
    pub name: String,
    /// `hardware ethernet …;`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
    /// `fixed-address` entries that are IPv4 literals, in order.
    pub fixed_addresses: Vec<Ipv4Addr>,
    /// `fixed-address` entries that are DNS names; dhcpd resolves them at start-up, this crate
    /// does not (it does no IO besides reading files), so they are listed apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixed_address_names: Vec<String>,
    /// `option host-name "…";`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_name: Option<String>,
    /// `use-host-decl-names on;` is in force for this host (in its own block or an enclosing
    /// scope): dhcpd then sends the declaration's name when there is no `option host-name`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub use_host_decl_names: bool,
    /// `option dhcp-client-identifier …;` (or `uid` in the leases file), raw bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<Vec<u8>>,
    /// The network of the subnet the declaration is written in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_in: Option<Ipv4Net>,
    /// Where it is declared.
    pub file: String,
    /// Line of the `host` keyword.
    pub line: u32,
}

impl IscHost {
    /// The host name dhcpd sends this client: `option host-name`, else the declaration's name
    /// when `use-host-decl-names` is on, else none (dhcpd sends no option 12 then).
    pub fn sent_host_name(&self) -> Option<&str> {
        self.host_name
            .as_deref()
            .or_else(|| self.use_host_decl_names.then_some(self.name.as_str()))
    }
}

/// One `subnet A netmask M { … }` with the options it inherits resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscSubnet {
    /// The network (host bits cleared).
    pub network: Ipv4Net,
    /// The `shared-network` it is declared in, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_network: Option<String>,
    /// Dynamic ranges, from `range` statements directly in the subnet and in its pools (and
    /// pools of its shared network whose range lies in this subnet), each `(low, high)` with
    /// `low <= high`, in declaration order. `dynamic-bootp` ranges are included.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// `option routers`, nearest scope wins (subnet, then groups / shared-network, then global).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routers: Option<Vec<Ipv4Addr>>,
    /// `option domain-name-servers`, inherited the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_servers: Option<Vec<Ipv4Addr>>,
    /// `option ntp-servers`, inherited the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ntp_servers: Option<Vec<Ipv4Addr>>,
    /// `option domain-name`, inherited the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_name: Option<String>,
    /// `ddns-domainname`, inherited the same way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddns_domain_name: Option<String>,
    /// DHCPStats' description: the text of the last `#$ …` or `#! …` comment line directly in
    /// the subnet's block (not in a pool or host inside it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// DHCPStats' `monitor`: false when that last annotation is `#!` (its combiner then
    /// prefers another server's copy of the subnet).
    pub monitor: bool,
    /// The subnet's statics: hosts declared inside it, plus hosts declared anywhere else whose
    /// fixed address lies in it.
    pub hosts: Vec<IscHost>,
    /// Where it is declared.
    pub file: String,
    /// Line of the `subnet` keyword.
    pub line: u32,
}

/// What a `dhcpd.conf` (with its includes) configures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IscConfig {
    /// Subnets in declaration order.
    pub subnets: Vec<IscSubnet>,
    /// Hosts declared outside any subnet (global, in groups, in shared-networks), in order.
    /// Those with a fixed address in a subnet also appear in that subnet's `hosts`.
    pub hosts: Vec<IscHost>,
    /// Every file read (the main file first, then includes), so a watcher can re-read on change.
    pub files: Vec<PathBuf>,
    /// What was skipped.
    pub warnings: Vec<Warning>,
}

/// A lease's `binding state`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingState {
    /// Held by a client.
    Active,
    /// Available.
    Free,
    /// Failover: available to the secondary.
    Backup,
    /// Released by the client.
    Released,
    /// Lease time ran out.
    Expired,
    /// Declined or found in use by ping; not handed out.
    Abandoned,
    /// Failover: reset by an operator.
    Reset,
    /// BOOTP lease.
    Bootp,
    /// Anything else, kept as written (lower case).
    #[serde(untagged)]
    Other(String),
}

impl BindingState {
    /// Reads a state word (case-insensitive).
    pub fn parse(s: &str) -> BindingState {
        match s.to_ascii_lowercase().as_str() {
            "active" => BindingState::Active,
            "free" => BindingState::Free,
            "backup" => BindingState::Backup,
            "released" => BindingState::Released,
            "expired" => BindingState::Expired,
            "abandoned" => BindingState::Abandoned,
            "reset" => BindingState::Reset,
            "bootp" => BindingState::Bootp,
            other => BindingState::Other(other.to_string()),
        }
    }

    /// The word dhcpd writes.
    pub fn as_str(&self) -> &str {
        match self {
            BindingState::Active => "active",
            BindingState::Free => "free",
            BindingState::Backup => "backup",
            BindingState::Released => "released",
            BindingState::Expired => "expired",
            BindingState::Abandoned => "abandoned",
            BindingState::Reset => "reset",
            BindingState::Bootp => "bootp",
            BindingState::Other(s) => s,
        }
    }
}

impl fmt::Display for BindingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `lease IP { … }` entry (the last one in the file for its address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IscLease {
    /// The leased address.
    pub ip: Ipv4Addr,
    /// `starts`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts: Option<IscTime>,
    /// `ends` (`never` for infinite leases)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends: Option<IscTime>,
    /// `tstp`: time sent to the failover peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tstp: Option<IscTime>,
    /// `tsfp`: time the peer acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsfp: Option<IscTime>,
    /// `atsfp`: actual time the peer acknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub atsfp: Option<IscTime>,
    /// `cltt`: client's last transaction time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cltt: Option<IscTime>,
    /// `binding state`; `None` when the entry has none (old files; DHCPStats crashed on those).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_state: Option<BindingState>,
    /// `next binding state`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_binding_state: Option<BindingState>,
    /// `rewind binding state`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewind_binding_state: Option<BindingState>,
    /// `hardware TYPE ADDR;`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
    /// `uid`: the client identifier, raw bytes (see [`crate::isc_escape`] for ISC's text form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<Vec<u8>>,
    /// `uid` exactly as the file wrote it (colon-hex as is; a quoted string without its quotes,
    /// escapes kept), which is what DHCPStats clients compare against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid_text: Option<String>,
    /// `client-hostname "…";`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_hostname: Option<String>,
    /// `option agent.circuit-id …;` (Option 82 sub-option 1), raw bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<Vec<u8>>,
    /// `option agent.remote-id …;` (Option 82 sub-option 2), raw bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<Vec<u8>>,
    /// `set NAME = VALUE;` variables (e.g. `ddns-fwd-name`, `vendor-class-identifier`), values
    /// as written (a string without its quotes, escapes such as `\001` kept, as DHCPStats
    /// shows them); also the old bare `ddns-fwd-name "…";` style.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, String>,
    /// The entry has an `on expiry { … }` or `on release { … }` hook: with no binding state,
    /// dhcpd then treats it as active whatever its end time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub on_expiry_or_release: bool,
    /// Line of the `lease` keyword of this (winning) entry.
    pub line: u32,
}

impl IscLease {
    /// An entry with only its address, as a starting point for the reader and for tests.
    pub fn new(ip: Ipv4Addr) -> IscLease {
        IscLease {
            ip,
            starts: None,
            ends: None,
            tstp: None,
            tsfp: None,
            atsfp: None,
            cltt: None,
            binding_state: None,
            next_binding_state: None,
            rewind_binding_state: None,
            hardware: None,
            uid: None,
            uid_text: None,
            client_hostname: None,
            circuit_id: None,
            remote_id: None,
            vars: BTreeMap::new(),
            on_expiry_or_release: false,
            line: 0,
        }
    }

    /// The binding state dhcpd gives this entry when it loads the file at `now` (Unix
    /// seconds): the written one, or for an entry without one (old files), `active` while
    /// `ends` is in the future (or `never`, or with an expiry/release hook) and `free`
    /// otherwise — dhcpd's own rule. `now` is passed in, never read here.
    pub fn binding_state_at(&self, now: i64) -> BindingState {
        if let Some(b) = &self.binding_state {
            return b.clone();
        }
        let live = match self.ends {
            Some(IscTime::Never) => true,
            Some(IscTime::At(t)) => t > now,
            None => false,
        };
        if live || self.on_expiry_or_release {
            BindingState::Active
        } else {
            BindingState::Free
        }
    }
}

/// A `failover peer "NAME" state { … }` record of the leases file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailoverPeerState {
    /// The peer's name.
    pub name: String,
    /// `my state X at T;`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_state: Option<String>,
    /// `partner state X at T;`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partner_state: Option<String>,
}

/// What a `dhcpd.leases` file holds, after "last entry wins".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IscLeases {
    /// One entry per address (the last in the file), sorted by address.
    pub leases: Vec<IscLease>,
    /// `server-duid`, raw bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_duid: Option<Vec<u8>>,
    /// Failover peer state records (last per name).
    pub failover_peers: Vec<FailoverPeerState>,
    /// Hosts created through OMAPI (`host` blocks; a later `deleted;` entry removes one).
    pub hosts: Vec<IscHost>,
    /// `lease` entries read, counting superseded ones.
    pub entries_read: usize,
    /// What was skipped (including an incomplete last entry while dhcpd is writing).
    pub warnings: Vec<Warning>,
}
