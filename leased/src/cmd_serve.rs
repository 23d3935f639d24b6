//! `leased serve`: set up logging (see `logging`) and hand over to the io shell. Also the quick start, which
//! turns `--interface IFACE --range A-B` into a config text and validates it with the same
//! loader as a file, so a quick-start server obeys every rule a configured one does.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use ipnet::Ipv4Net;
use leased_config::{Config, Format, load_str};

use crate::cli::ServeArgs;
use crate::logging::Buffering;
use crate::timefmt::parse_duration;
use leased_io::{ConfigSource, ServeHooks, ServeParams, serve_with};

/// Default store file of the quick start, in the working directory.
const QUICK_STORE: &str = "./leased.leases";

/// Runs the server until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (source, config) = match (&args.config, &args.interface, &args.range) {
        (Some(_), _, Some(_)) => bail!("-c/--config and --range exclude each other"),
        (Some(path), _, _) => {
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
            let config = leased_config::load(path)?;
            (ConfigSource::File(path.clone()), config)
        }
        (None, Some(iface), Some(range)) => {
            let config = quick_start(&args, iface, range)?;
            (ConfigSource::Inline(config.clone()), config)
        }
        _ => bail!(
            "give a config file (`leased serve -c leased.toml`) or a quick start \
             (`leased serve --interface eth0 --range 192.168.1.100-192.168.1.200`)"
        ),
    };
    // The live console's ring is fed from the first log line on.
    let hub = config
        .console
        .as_ref()
        .map(|c| crate::console::Hub::new(c.replay, crate::console::LIVE_CAPACITY));
    // Event lines gather in memory and reach stderr, the journal or the log file in large
    // writes from their own thread; whatever is still buffered is written when `log` drops
    // (return, error or unwind).
    let log = crate::logging::init(&config.logging, hub.clone(), Buffering::Thread)?;
    crate::rlimit::raise_open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    log.reopen_on_sigusr1(&runtime)?;
    // The HTTP API, when configured, runs beside the engine as io's sidecar. Its settings are
    // read at start: a reload that changes [api] takes effect after a restart.
    // With [export], the exporter (and the router endpoint on the API) joins the sidecar.
    let hooks = ServeHooks {
        sidecar: crate::sidecars::compose(
            &config,
            &source,
            crate::cmd_export::sidecar(
                config.api.clone(),
                config.export.clone(),
                leased_export::Perms::for_group(config.process.group.is_some()),
            ),
            hub,
        ),
        stop: None,
    };
    runtime.block_on(serve_with(
        ServeParams {
            source,
            server_port: args.port,
            client_port: args.client_port,
        },
        hooks,
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Builds and validates the quick-start config for `iface`.
fn quick_start(args: &ServeArgs, iface: &str, range: &str) -> anyhow::Result<Config> {
    let net = interface_net(iface)?;
    let lease_time = args
        .lease_time
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--lease-time: {e}"))?;
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from(QUICK_STORE));
    let spec = QuickStart {
        interface: iface.to_string(),
        address: net,
        range: parse_range(range)?,
        store,
        lease_time,
        dns: args.dns.clone(),
    };
    let text = spec.config_text()?;
    let origin = format!("quick start for {iface}");
    Ok(load_str(&text, &origin, Format::Toml)?)
}

/// The interface's first IPv4 address with its prefix (`192.168.1.1/24`).
fn interface_net(iface: &str) -> anyhow::Result<Ipv4Net> {
    let addrs = nix::ifaddrs::getifaddrs().context("cannot list interface addresses")?;
    let mut seen = false;
    for a in addrs.filter(|a| a.interface_name == iface) {
        seen = true;
        let ip = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        let mask = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip());
        if let (Some(ip), Some(mask)) = (ip, mask) {
            let prefix = ipnet::ipv4_mask_to_prefix(mask)
                .with_context(|| format!("{iface} has a non-contiguous netmask {mask}"))?;
            return Ipv4Net::new(ip, prefix).context("bad interface prefix");
        }
    }
    if seen {
        bail!("interface {iface} has no IPv4 address: give it one, or use a config file")
    }
    bail!("no interface named {iface}")
}

/// Parses `A-B` into an inclusive range.
pub fn parse_range(text: &str) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let (a, b) = text.split_once('-').with_context(|| {
        format!("--range {text:?}: expected FIRST-LAST, e.g. 192.168.1.100-192.168.1.200")
    })?;
    let start: Ipv4Addr = a
        .trim()
        .parse()
        .with_context(|| format!("--range: {a:?} is not an IPv4 address"))?;
    let end: Ipv4Addr = b
        .trim()
        .parse()
        .with_context(|| format!("--range: {b:?} is not an IPv4 address"))?;
    if end < start {
        bail!("--range {text}: the last address comes before the first");
    }
    Ok((start, end))
}

/// Everything the quick start knows; turned into TOML by [`QuickStart::config_text`].
#[derive(Debug, Clone)]
pub struct QuickStart {
    /// Interface to serve.
    pub interface: String,
    /// Its address and prefix; the address is the server id and the router.
    pub address: Ipv4Net,
    /// Pool, inclusive.
    pub range: (Ipv4Addr, Ipv4Addr),
    /// Lease store file.
    pub store: PathBuf,
    /// Lease time in seconds; the config default when `None`.
    pub lease_time: Option<u32>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
}

impl QuickStart {
    /// Checks the range against the interface's subnet and renders the config text.
    pub fn config_text(&self) -> anyhow::Result<String> {
        let net = self.address.trunc();
        let (start, end) = self.range;
        let (first, last) = usable(net);
        if !(net.contains(&start) && net.contains(&end)) {
            bail!(
                "--range {start}-{end} is not inside {net}, the subnet of {} ({})",
                self.interface,
                self.address
            );
        }
        if start < first || end > last {
            bail!(
                "--range {start}-{end} includes the network or broadcast address of {net}; \
                 use addresses from {first} to {last}"
            );
        }
        let me = self.address.addr();
        if start <= me && me <= end {
            bail!(
                "--range {start}-{end} includes {me}, the address of {} itself",
                self.interface
            );
        }
        let mut t = String::new();
        t.push_str(&format!(
            "# Quick start: leased serve --interface {} --range {start}-{end}\n",
            self.interface
        ));
        t.push_str("[server]\n");
        t.push_str(&format!("interfaces = [{}]\n", q(&self.interface)));
        if let Some(secs) = self.lease_time {
            t.push_str(&format!("lease_time = {secs}\n"));
        }
        t.push_str("\n[store]\n");
        t.push_str(&format!("path = {}\n", q(&self.store.to_string_lossy())));
        t.push_str("\n[logging]\nformat = \"text\"\nlevel = \"info\"\n");
        if !self.dns.is_empty() {
            t.push_str("\n[options]\n");
            t.push_str(&format!("dns = {}\n", ip_array(&self.dns)));
        }
        t.push_str("\n[[subnets]]\n");
        t.push_str(&format!("network = {}\n", q(&net.to_string())));
        t.push_str(&format!("interface = {}\n", q(&self.interface)));
        t.push_str(&format!("server_id = {}\n", q(&me.to_string())));
        t.push_str(&format!("routers = {}\n", ip_array(&[me])));
        t.push_str(&format!("pools = [{}]\n", q(&format!("{start}-{end}"))));
        Ok(t)
    }
}

/// First and last host address of a subnet (the whole /31 or /32 when there is no room for
/// network and broadcast addresses).
fn usable(net: Ipv4Net) -> (Ipv4Addr, Ipv4Addr) {
    if net.prefix_len() >= 31 {
        (net.network(), net.broadcast())
    } else {
        (
            Ipv4Addr::from(u32::from(net.network()).saturating_add(1)),
            Ipv4Addr::from(u32::from(net.broadcast()).saturating_sub(1)),
        )
    }
}

/// A TOML basic string. JSON string escapes are a subset of TOML's, so serde_json quotes it.
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A TOML array of quoted addresses.
fn ip_array(ips: &[Ipv4Addr]) -> String {
    let items: Vec<String> = ips.iter().map(|ip| q(&ip.to_string())).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addr: &str, range: &str) -> QuickStart {
        QuickStart {
            interface: "eth0".into(),
            address: addr.parse().unwrap(),
            range: parse_range(range).unwrap(),
            store: PathBuf::from(QUICK_STORE),
            lease_time: Some(3600),
            dns: vec![Ipv4Addr::new(198, 18, 0, 53)],
        }
    }

    #[test]
    fn range_parsing() {
        assert_eq!(
            parse_range("198.18.0.100-198.18.0.150").unwrap(),
            (
                Ipv4Addr::new(198, 18, 0, 100),
                Ipv4Addr::new(198, 18, 0, 150)
            )
        );
        assert!(parse_range("198.18.0.100").is_err());
        assert!(parse_range("198.18.0.150-198.18.0.100").is_err());
        assert!(parse_range("x-198.18.0.100").is_err());
        assert!(parse_range("198.18.0.1-198.18.0.300").is_err());
    }

    #[test]
    fn range_inside_subnet_renders() {
        let t = spec("198.18.0.1/24", "198.18.0.100-198.18.0.150")
            .config_text()
            .unwrap();
        assert!(t.contains("network = \"198.18.0.0/24\""), "{t}");
        assert!(t.contains("routers = [\"198.18.0.1\"]"), "{t}");
        assert!(t.contains("server_id = \"198.18.0.1\""), "{t}");
        assert!(t.contains("pools = [\"198.18.0.100-198.18.0.150\"]"), "{t}");
        assert!(t.contains("interfaces = [\"eth0\"]"), "{t}");
        assert!(t.contains("lease_time = 3600"), "{t}");
        assert!(t.contains("path = \"./leased.leases\""), "{t}");
        assert!(t.contains("dns = [\"198.18.0.53\"]"), "{t}");
    }

    #[test]
    fn range_outside_subnet_refused() {
        let e = spec("198.18.0.1/24", "198.18.1.10-198.18.1.20")
            .config_text()
            .unwrap_err();
        assert!(e.to_string().contains("not inside 198.18.0.0/24"), "{e}");
        // Straddling the end of the subnet.
        assert!(
            spec("198.18.0.1/24", "198.18.0.200-198.18.1.5")
                .config_text()
                .is_err()
        );
    }

    #[test]
    fn range_with_network_broadcast_or_self_refused() {
        assert!(
            spec("198.18.0.1/24", "198.18.0.0-198.18.0.10")
                .config_text()
                .is_err()
        );
        assert!(
            spec("198.18.0.1/24", "198.18.0.200-198.18.0.255")
                .config_text()
                .is_err()
        );
        let e = spec("198.18.0.1/24", "198.18.0.1-198.18.0.10")
            .config_text()
            .unwrap_err();
        assert!(e.to_string().contains("address of eth0 itself"), "{e}");
    }

    #[test]
    fn generated_config_passes_the_real_loader() {
        let t = spec("198.18.0.1/24", "198.18.0.100-198.18.0.150")
            .config_text()
            .unwrap();
        let c = load_str(&t, "quick start", Format::Toml).unwrap();
        assert_eq!(c.network.subnets.len(), 1);
        let s = &c.network.subnets[0];
        assert_eq!(s.network.to_string(), "198.18.0.0/24");
        assert_eq!(s.routers, vec![Ipv4Addr::new(198, 18, 0, 1)]);
        assert_eq!(s.server_id, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(s.interface.as_deref(), Some("eth0"));
        assert_eq!(s.pools.len(), 1);
        assert_eq!(s.pools[0].len(), 51);
        assert_eq!(c.network.server.lease_time, 3600);
        assert_eq!(c.store.path, PathBuf::from("./leased.leases"));
        assert_eq!(
            s.options.values.get(&6),
            Some(&vec![198, 18, 0, 53]),
            "dns reaches the subnet's options"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = spec("198.18.0.1/24", "198.18.0.100-198.18.0.150");
        s.store = PathBuf::from("/tmp/a \"b\"\\c.leases");
        let t = s.config_text().unwrap();
        assert!(t.contains(r#"path = "/tmp/a \"b\"\\c.leases""#), "{t}");
    }

    #[test]
    fn small_prefixes() {
        assert_eq!(
            usable("198.18.0.0/31".parse().unwrap()),
            (Ipv4Addr::new(198, 18, 0, 0), Ipv4Addr::new(198, 18, 0, 1))
        );
        assert_eq!(
            usable("198.18.0.0/30".parse().unwrap()),
            (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2))
        );
    }
}
