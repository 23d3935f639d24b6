//! Where the DHCPStats routes (`/`, `/subnets*`, `/counts`) get their numbers: the running
//! leased ([`LiveStats`], from io's shared snapshot) or an ISC dhcpd's files
//! ([`crate::isc::IscSource`]).
//!
//! Why a trait: `leased isc serve` must answer with exactly the shapes, routes, auth and error
//! answers of `leased serve`'s API. The handlers are written once against [`Stats`] and the
//! two data sources only differ in how they fill a [`SubnetView`].

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::FromRef;
use ipnet::Ipv4Net;
use leased_io::SharedState;

use crate::AppState;
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::stats::{self, Counts, Keyed, SubnetView};

/// A source of DHCPStats numbers.
pub trait StatsSource: Send + Sync + std::fmt::Debug + 'static {
    /// Every subnet keyed by CIDR, in configuration order; `full` adds `statics` and `leases`.
    fn subnets(&self, full: bool) -> Keyed<SubnetView>;
    /// One subnet named by network address or CIDR, full detail, with `subnet` set.
    fn subnet(&self, text: &str) -> Result<SubnetView, ApiError>;
    /// Every subnet's `ips` summed.
    fn counts(&self) -> Counts;
    /// DHCPStats' `POST /refresh`: read the data again now. `Err` is the reason the new
    /// reading was refused (the previous one stays). A live server has nothing to re-read.
    fn refresh(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The state the DHCPStats handlers extract: a shared [`StatsSource`].
#[derive(Debug, Clone)]
pub struct Stats(pub Arc<dyn StatsSource>);

impl FromRef<AppState> for Stats {
    fn from_ref(state: &AppState) -> Stats {
        state.stats.clone()
    }
}

/// Picks the item whose network `text` names: a network address (`198.18.0.0`) or a CIDR
/// (`198.18.0.0/24`, host bits ignored). Unknown → 404, neither form → 400.
pub fn pick_network<'a, T>(
    items: &'a [T],
    network: impl Fn(&T) -> Ipv4Net,
    text: &str,
) -> Result<&'a T, ApiError> {
    let text = text.trim();
    let found = if let Ok(net) = text.parse::<Ipv4Net>() {
        items.iter().find(|s| network(s) == net.trunc())
    } else if let Ok(addr) = text.parse::<Ipv4Addr>() {
        items.iter().find(|s| network(s).network() == addr)
    } else {
        return Err(ApiError::bad_request(format!(
            "{text:?} is neither a network address nor a CIDR"
        )));
    };
    found.ok_or_else(|| ApiError::not_found(format!("no subnet {text}")))
}

/// The running server's numbers: its live plan and the engine's published lease table.
#[derive(Debug)]
pub struct LiveStats(pub Arc<SharedState>);

impl StatsSource for LiveStats {
    fn subnets(&self, full: bool) -> Keyed<SubnetView> {
        let plan = self.0.plan();
        let snap = self.0.leases();
        stats::subnets(&plan, &snap.leases, unix_now(), full)
    }

    fn subnet(&self, text: &str) -> Result<SubnetView, ApiError> {
        let plan = self.0.plan();
        let snap = self.0.leases();
        let subnet = pick_network(&plan.network.subnets, |s| s.network, text)?;
        let mut v = stats::subnet_view(subnet, &snap.leases, unix_now(), true);
        v.ddns_domain_name = stats::ddns_domain_name(&plan, subnet);
        Ok(v)
    }

    fn counts(&self) -> Counts {
        let plan = self.0.plan();
        let snap = self.0.leases();
        stats::counts(&plan, &snap.leases, unix_now())
    }
}
