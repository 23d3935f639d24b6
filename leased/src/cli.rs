//! The command line, declared with clap's derive API. Only shapes and help texts live here; each
//! verb's behaviour is in its own `cmd_*` module.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// leased: a DHCPv4 server with durable leases, strict config checking and a built-in test client.
#[derive(Debug, Parser)]
#[command(
    name = "leased",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
      leased check -c leased.toml\n  \
      leased serve -c leased.toml\n  \
      leased serve --interface eth0 --range 192.168.1.100-192.168.1.200 --dns 192.168.1.1\n  \
      leased leases -c leased.toml --json\n  \
      leased probe --interface eth0 --discover-only\n  \
      sudo leased demo"
)]
pub struct Cli {
    /// The verb to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs of `leased`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the DHCP server (until SIGTERM/SIGINT; SIGHUP reloads the config file).
    ///
    /// Either with a config file (`-c leased.toml`), or as a quick start without one:
    /// `leased serve --interface eth0 --range 192.168.1.100-192.168.1.200`.
    Serve(ServeArgs),
    /// Validate a config file: prints `OK: FILE (N subnets, M reservations)` or every error as
    /// `file:line:col: key: message`. Exit 0 when valid, 1 when not, 2 on other failures.
    Check(CheckArgs),
    /// Print the leases of a store as a table or JSON (safe while a server is running).
    Leases(LeasesArgs),
    /// A DHCP test client: runs DISCOVER/OFFER/REQUEST/ACK against a server and prints every
    /// option it got back. Exit 0 on ACK (or OFFER with --discover-only), 3 on NAK, 4 on timeout.
    Probe(ProbeArgs),
    /// A safe lab for newcomers: builds two network namespaces joined by a veth pair, runs a
    /// server in one and probes in the other, shows leases and logs, then removes everything.
    /// Needs root; never touches the real network (addresses in 198.18.0.0/15 only).
    Demo(DemoArgs),
    /// Run a DHCP relay agent (RFC 1542 / RFC 3046) from the `[relay]` section of a config
    /// file: client requests on the listed interfaces go to every upstream server with giaddr
    /// and Option 82 set; replies go back to the clients. Bindings seen in ACKs are exported
    /// when `[export]` is configured. SIGTERM/SIGINT stop it.
    Relay(RelayArgs),
    /// Billing export: `status` (queue depth, last success, last error), `test` (check the
    /// destinations' credentials), `hash-password` (a router secret for `[[export.routers]]`).
    Export(ExportArgs),
}

/// `leased relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Config file with a `[relay]` section.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}

/// `leased export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ExportAction,
}

/// The verbs of `leased export`.
#[derive(Debug, Subcommand)]
pub enum ExportAction {
    /// Per destination: records waiting in the outbox, last success, last error.
    Status {
        /// Config file with an `[export]` section.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check each destination's credentials (Sonar: GET ticket groups, as `sonar:test`).
    /// Exit 0 when all succeed, 2 otherwise.
    Test {
        /// Config file with an `[export]` section.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print an Argon2id hash of a router secret read from stdin (one line), for
    /// `[[export.routers]] password_hash`.
    HashPassword,
}

/// `leased serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML, or JSON when it ends in `.json`).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// UDP port the server listens on.
    #[arg(long, default_value_t = 67, value_name = "PORT")]
    pub port: u16,
    /// UDP port replies to direct clients are sent to.
    #[arg(long = "client-port", default_value_t = 68, value_name = "PORT")]
    pub client_port: u16,
    /// Quick start: serve the subnet of this interface (no config file).
    #[arg(long, value_name = "IFACE", requires = "range")]
    pub interface: Option<String>,
    /// Quick start: the pool to hand out, `A-B` (inside the interface's subnet).
    #[arg(
        long,
        value_name = "A-B",
        requires = "interface",
        conflicts_with = "config"
    )]
    pub range: Option<String>,
    /// Quick start: lease store file (default `./leased.leases`).
    #[arg(long, value_name = "PATH", requires = "range")]
    pub store: Option<PathBuf>,
    /// Quick start: lease time, e.g. `3600`, `90m`, `1h`, `1d`.
    #[arg(long = "lease-time", value_name = "DURATION", requires = "range")]
    pub lease_time: Option<String>,
    /// Quick start: DNS servers to hand out (option 6); repeat or separate with commas.
    #[arg(long, value_name = "IP", value_delimiter = ',', num_args = 1.., requires = "range")]
    pub dns: Vec<Ipv4Addr>,
}

/// `leased check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Config file to validate.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}

/// `leased leases`.
#[derive(Debug, Args)]
pub struct LeasesArgs {
    /// Config file; the store path is read from its `[store] path`.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        required_unless_present = "store"
    )]
    pub config: Option<PathBuf>,
    /// Lease store file to read directly, instead of taking it from a config.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub store: Option<PathBuf>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `leased probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Interface to send on (broadcast mode). Required unless --giaddr is given.
    #[arg(long, short = 'i', value_name = "IFACE", required_unless_present_any = ["giaddr", "inform"])]
    pub interface: Option<String>,
    /// Client hardware address (default: a random locally administered MAC, 02:…).
    #[arg(long, value_name = "MAC")]
    pub mac: Option<String>,
    /// Client identifier (option 61) as hex, e.g. `01:02:00:00:00:00:01`.
    #[arg(long = "client-id", value_name = "HEX")]
    pub client_id: Option<String>,
    /// Host name to send (option 12).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Address to ask for in the DISCOVER (option 50).
    #[arg(long = "request-ip", value_name = "IP")]
    pub request_ip: Option<Ipv4Addr>,
    /// Raw Option 82 value to include (hex), as a relay agent would add it.
    #[arg(long, value_name = "HEX")]
    pub option82: Option<String>,
    /// Act as a relay agent with this address: bind GIADDR:67 and unicast to --server.
    #[arg(long, value_name = "IP", requires = "server")]
    pub giaddr: Option<Ipv4Addr>,
    /// Server to unicast to (relay mode, or INFORM without broadcast).
    #[arg(long, value_name = "IP")]
    pub server: Option<Ipv4Addr>,
    /// Extra option to send, `CODE:HEX` (repeatable), e.g. `--option 60:6d7366742035`. Applied
    /// last, so it overrides the probe's own (e.g. `--option 50:c6120063` REQUESTs 198.18.0.99).
    #[arg(long = "option", value_name = "CODE:HEX")]
    pub options: Vec<String>,
    /// Stop after the OFFER (no REQUEST).
    #[arg(long = "discover-only", conflicts_with_all = ["release", "decline", "inform"])]
    pub discover_only: bool,
    /// After the ACK, give the address back (RELEASE).
    #[arg(long, conflicts_with = "decline")]
    pub release: bool,
    /// After the ACK, refuse the address (DECLINE), as a client that found it in use would.
    #[arg(long)]
    pub decline: bool,
    /// Send an INFORM for this (already configured) address, from a socket bound to IP:68.
    #[arg(long, value_name = "IP")]
    pub inform: Option<Ipv4Addr>,
    /// Clear the broadcast flag; replies are then read from an AF_PACKET socket (root).
    #[arg(long = "no-broadcast-flag")]
    pub no_broadcast_flag: bool,
    /// Seconds to wait for each reply (the request is retransmitted within this time).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
    /// Server port to send to.
    #[arg(long = "server-port", default_value_t = 67, value_name = "PORT")]
    pub server_port: u16,
    /// Client port to bind (relay mode binds --server-port on the giaddr instead).
    #[arg(long = "client-port", default_value_t = 68, value_name = "PORT")]
    pub client_port: u16,
    /// Print the exchange as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `leased demo` (no options: the lab is fixed so that it is safe).
#[derive(Debug, Args)]
pub struct DemoArgs {}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("leased").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_with_config() {
        let cli = parse(&["serve", "-c", "x.toml", "--port", "1067"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert_eq!(a.port, 1067);
        assert_eq!(a.client_port, 68);
    }

    #[test]
    fn serve_refuses_config_with_range() {
        assert!(
            parse(&[
                "serve",
                "-c",
                "x.toml",
                "--interface",
                "eth0",
                "--range",
                "a-b"
            ])
            .is_err()
        );
    }

    #[test]
    fn serve_range_needs_interface_and_back() {
        assert!(parse(&["serve", "--range", "1.2.3.4-1.2.3.5"]).is_err());
        assert!(parse(&["serve", "--interface", "eth0"]).is_err());
        assert!(parse(&["serve", "--interface", "eth0", "--range", "1.2.3.4-1.2.3.5"]).is_ok());
    }

    #[test]
    fn serve_dns_list() {
        let cli = parse(&[
            "serve",
            "--interface",
            "eth0",
            "--range",
            "a-b",
            "--dns",
            "1.1.1.1,9.9.9.9",
            "--dns",
            "8.8.8.8",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.dns.len(), 3);
    }

    #[test]
    fn leases_needs_config_or_store() {
        assert!(parse(&["leases"]).is_err());
        assert!(parse(&["leases", "--store", "x"]).is_ok());
        assert!(parse(&["leases", "-c", "x", "--json"]).is_ok());
        assert!(parse(&["leases", "-c", "x", "--store", "y"]).is_err());
    }

    #[test]
    fn probe_needs_interface_unless_relay() {
        assert!(parse(&["probe"]).is_err());
        assert!(parse(&["probe", "--interface", "eth0"]).is_ok());
        assert!(parse(&["probe", "--giaddr", "198.18.1.1"]).is_err());
        assert!(parse(&["probe", "--giaddr", "198.18.1.1", "--server", "198.18.0.1"]).is_ok());
        assert!(parse(&["probe", "--interface", "x", "--release", "--decline"]).is_err());
        assert!(parse(&["probe", "--interface", "x", "--discover-only", "--release"]).is_err());
    }

    #[test]
    fn probe_repeated_options() {
        let cli = parse(&[
            "probe", "-i", "x", "--option", "60:01", "--option", "77:0203",
        ])
        .unwrap();
        let Command::Probe(a) = cli.command else {
            panic!("not probe")
        };
        assert_eq!(a.options, vec!["60:01", "77:0203"]);
        assert_eq!(a.timeout, 5);
    }
}
