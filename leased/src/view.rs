//! Where the CLI views get the lease table: the running server's API when the config has an
//! `[api]` that answers (live, offers included), else the lease store read directly (works
//! with the server stopped, and beside a running one: the journal is read without locking).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use leased_config::Config;
use leased_core::{ClientId, HwAddr, Lease, LeaseState, Timestamp};
use leased_store::EmbeddedStore;
use serde_json::Value;

/// Which source to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// The API when configured and reachable, else the store.
    Auto,
    /// The running server's API (an error when it does not answer).
    Api,
    /// The lease store file.
    Store,
}

/// The lease table and where it came from (for a note on stderr).
#[derive(Debug)]
pub struct Table {
    /// Every lease record, in address order.
    pub leases: Vec<Lease>,
    /// `API http://…` or `store PATH`.
    pub source: String,
}

/// The API address and key the config names, when it has a plain-HTTP `[api]` and a key.
pub fn api_target(config: &Config) -> Option<(SocketAddr, String)> {
    let api = config.api.as_ref().filter(|a| a.tls.is_none())?;
    let key = leased_api::keys_with_env(api).into_iter().next()?;
    let mut addr = api.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Some((addr, key))
}

/// Reads the lease table from `from` (store path: `store`, else the config's).
pub fn load(config: &Config, store: Option<&Path>, from: From) -> anyhow::Result<Table> {
    if from != From::Store {
        match api_target(config) {
            Some((addr, key)) => match from_api(addr, &key) {
                Ok(leases) => {
                    return Ok(Table {
                        leases,
                        source: format!("API http://{addr}"),
                    });
                }
                Err(e) if from == From::Api => return Err(e),
                Err(_) => {}
            },
            None if from == From::Api => {
                anyhow::bail!("the config has no plain-HTTP [api] with a key to read from")
            }
            None => {}
        }
    }
    let path = store.unwrap_or(&config.store.path);
    let mut leases = EmbeddedStore::read_only(path)
        .with_context(|| format!("cannot read lease store {}", path.display()))?;
    leases.sort_by_key(|l| u32::from(l.ip));
    Ok(Table {
        leases,
        source: format!("store {}", path.display()),
    })
}

/// Every lease over `/leases`, page by page.
fn from_api(addr: SocketAddr, key: &str) -> anyhow::Result<Vec<Lease>> {
    const PAGE: usize = 10_000;
    let mut out = Vec::new();
    for page in 0..10_000usize {
        let body = crate::http::get(
            addr,
            key,
            &format!("/leases?limit={PAGE}&offset={}", page * PAGE),
            Duration::from_secs(5),
        )?;
        let v: Value = serde_json::from_str(&body).context("the API's /leases is not JSON")?;
        let items = v["leases"].as_array().context("/leases has no leases")?;
        for item in items {
            out.push(lease_of(item).context("a lease from the API")?);
        }
        let total = v["total"].as_u64().unwrap_or(0);
        if items.len() < PAGE || out.len() as u64 >= total {
            break;
        }
    }
    out.sort_by_key(|l| u32::from(l.ip));
    Ok(out)
}

fn hex_bytes(s: &str) -> Vec<u8> {
    s.split(':')
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// A `/leases` item back into a lease record.
fn lease_of(v: &Value) -> anyhow::Result<Lease> {
    let ip: Ipv4Addr = v["ip"].as_str().context("ip")?.parse().context("ip")?;
    let hwaddr = v["mac"]
        .as_str()
        .and_then(HwAddr::parse_mac)
        .unwrap_or(HwAddr(Vec::new()));
    let state = match v["state"].as_str().unwrap_or("") {
        "offered" => LeaseState::Offered,
        "bound" => LeaseState::Bound,
        "released" => LeaseState::Released,
        "declined" => LeaseState::Declined,
        _ => LeaseState::Expired,
    };
    let t = |k: &str| Timestamp(v[k].as_u64().unwrap_or(0));
    Ok(Lease {
        ip,
        client_id: ClientId(hex_bytes(v["client_id"].as_str().unwrap_or(""))),
        hwaddr,
        hostname: v["hostname"].as_str().map(String::from),
        state,
        starts: t("starts"),
        expires: t("expires"),
        first_seen: t("first_seen"),
        circuit_id: None,
        remote_id: None,
        subscriber_id: None,
    })
}
