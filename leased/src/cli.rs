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
      sudo leased demo\n  \
      sudo leased demo --ha"
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
    /// With `--ha`, an HA pair: two servers, the primary killed, the standby taking over, the
    /// primary back. Needs root; never touches the real network (addresses in 198.18.0.0/15
    /// only).
    Demo(DemoArgs),
    /// Allocation counts (last 1m/1h/24h/7d/30d; current, expiring, expired), or with
    /// `--details` every address (IP Type MAC AllocatedAt Elapsed Remaining Hostname), or with
    /// `--grid` a block grid of each subnet. Reads the running server's API when the config
    /// has one that answers, else the lease store.
    Stats(StatsArgs),
    /// Add or remove a reservation in the config file (validated, written atomically, comments
    /// kept); a running server is told to reload.
    Manage(ManageArgs),
    /// Validate the config file, then make the running server reload it (SIGHUP through the
    /// PID file, or to `--pid`). An invalid config is refused (exit 1) and nothing is signalled.
    Reload(ReloadArgs),
    /// The HA pair (`[ha]`) of a running server, through its `[api]`: `status` (this server's
    /// state, the partner's, last contact, unsent updates), `maintenance` (stop serving on
    /// purpose: the partner takes over at once), `resume`, `sync` (fetch the partner's table
    /// again).
    Ha(HaArgs),
    /// The live log of a running server: `console attach`.
    Console(ConsoleArgs),
    /// The DHCPStats API over an ISC dhcpd's files: `isc serve`.
    Isc(IscArgs),
    /// Import another server's configuration and leases: `import isc`.
    Import(ImportArgs),
    /// Run a DHCP relay agent (RFC 1542 / RFC 3046) from the `[relay]` section of a config
    /// file, or from flags alone (`--interface`, `--upstream`, …; `--print-config` shows the
    /// file they make): client requests on the listed interfaces go to every upstream server
    /// with giaddr and Option 82 set; replies go back to the clients. Bindings seen in ACKs are
    /// exported when `[export]` (or a `--sonar-url`/`--webhook-url`) is set. SIGTERM/SIGINT
    /// stop it.
    Relay(Box<RelayArgs>),
    /// Billing export: `status` (queue depth, last success, last error), `test` (check the
    /// destinations' credentials), `hash-password` (a router secret for `[[export.routers]]`).
    Export(ExportArgs),
    /// The shared SQL lease store: `db init` creates its tables (idempotent).
    Db(crate::cmd_db::DbArgs),
    /// Lease events (ACK of a new lease, renewal, RELEASE, DECLINE, expiry, NAK) with time,
    /// MAC, client-id, IP, hostname, giaddr, circuit-id and remote-id; filters `--mac`,
    /// `--ip`, `--since`; `--json` for JSON lines.
    History(crate::cmd_history::HistoryArgs),
    /// Print a shell completion script for bash, zsh or fish, e.g.
    /// `leased completions bash > /usr/share/bash-completion/completions/leased`.
    Completions(CompletionsArgs),
    /// Write a man page for leased and for every verb (`leased-serve.1`, …) into a directory:
    /// for packaging.
    #[command(hide = true)]
    Man(ManArgs),
}

/// `leased completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells `leased completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// GNU bash (bash-completion).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// `leased man` (hidden).
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `leased relay`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
      leased relay -c leased-relay.toml\n  \
      leased relay --interface eth1 --upstream 198.18.1.1 --upstream 198.18.2.1 \\\n    \
      --circuit-id 'olt-7/{vlan}' --rewrite-server-id \\\n    \
      --sonar-url https://example.sonar.software --sonar-user leased \\\n    \
      --sonar-password-env SONAR_PASSWORD --interval 60s\n  \
      leased relay --interface eth1 --upstream 198.18.1.1 --print-config > leased-relay.toml")]
pub struct RelayArgs {
    /// Config file with a `[relay]` section (or give the flags below instead).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        conflicts_with = "relay_flags"
    )]
    pub config: Option<PathBuf>,
    /// Print the config file the flags make (validated) and exit, instead of relaying.
    #[arg(long = "print-config", conflicts_with = "config")]
    pub print_config: bool,
    /// The relay's settings as flags: each is a key of `[relay]`, `[export]`, `[server]` or
    /// `[logging]` (docs/config.md), and together they are loaded as that file would be.
    #[command(flatten)]
    pub flags: RelayFlags,
}

/// `leased relay` without a config file. The flags become a config text that the normal
/// loader checks, so flags and file can never mean different things.
#[derive(Debug, Clone, Default, Args)]
#[group(id = "relay_flags", multiple = true)]
pub struct RelayFlags {
    /// A client-facing interface, optionally with the giaddr to use on it (`eth1`,
    /// `eth1=198.18.0.1`); repeatable. `[[relay.interfaces]] name`/`address`.
    #[arg(long = "interface", value_name = "NAME[=ADDRESS]")]
    pub interfaces: Vec<String>,
    /// A server every request is sent to; repeatable or comma-separated. `[relay] upstreams`.
    #[arg(long = "upstream", value_name = "IP", value_delimiter = ',')]
    pub upstreams: Vec<String>,
    /// Circuit-id template for every interface: `{interface}`, `{vlan}`, `{ifindex}`, or a
    /// fixed string (default `{interface}`).
    #[arg(long = "circuit-id", value_name = "TEMPLATE")]
    pub circuit_id: Option<String>,
    /// Remote-id template for every interface: `{mac}` (the interface's MAC, the default) or
    /// a fixed string.
    #[arg(long = "remote-id", value_name = "TEMPLATE")]
    pub remote_id: Option<String>,
    /// Drop requests whose hop count already exceeds this (default 4).
    #[arg(long = "max-hops", value_name = "N")]
    pub max_hops: Option<i64>,
    /// Do not insert Option 82.
    #[arg(long = "no-option82")]
    pub no_option82: bool,
    /// A request that already carries Option 82: `keep`, `replace` or `drop`.
    #[arg(long = "existing-option82", value_name = "POLICY")]
    pub existing_option82: Option<String>,
    /// Add sub-option 5 (RFC 3527 link selection).
    #[arg(long = "link-selection")]
    pub link_selection: bool,
    /// Add sub-option 11 (RFC 5107 server identifier override).
    #[arg(long = "server-id-override")]
    pub server_id_override: bool,
    /// Name the relay in option 54 of replies, so renewals come through it.
    #[arg(long = "rewrite-server-id")]
    pub rewrite_server_id: bool,
    /// Sign our Option 82 (RFC 4030) with the key in this environment variable (the printed
    /// config then holds the key itself, as `[relay] auth_key`).
    #[arg(long = "auth-key-env", value_name = "VAR")]
    pub auth_key_env: Option<String>,
    /// Drop root to this user once the sockets are open (`[server] user`).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// …and this group (`[server] group`).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Log filter, e.g. `info` or `leased=debug` (`[logging] level`).
    #[arg(long = "log-level", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// `text` or `json` (`[logging] format`).
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Directory of the export outboxes (`[export] outbox`, default `leased.outbox`).
    #[arg(long, value_name = "DIR")]
    pub outbox: Option<String>,
    /// Export bindings to this Sonar instance (`[export.sonar] url`).
    #[arg(long = "sonar-url", value_name = "URL")]
    pub sonar_url: Option<String>,
    /// Sonar API user (`[export.sonar] username`).
    #[arg(long = "sonar-user", value_name = "USER")]
    pub sonar_user: Option<String>,
    /// Environment variable holding the Sonar password (`[export.sonar] password_env`; the
    /// password never appears on the command line or in the printed config).
    #[arg(long = "sonar-password-env", value_name = "VAR")]
    pub sonar_password_env: Option<String>,
    /// Export bindings to this webhook too (`[export.webhook] url`).
    #[arg(long = "webhook-url", value_name = "URL")]
    pub webhook_url: Option<String>,
    /// An extra webhook request header, `Name: value`; repeatable.
    #[arg(long = "webhook-header", value_name = "HEADER")]
    pub webhook_headers: Vec<String>,
    /// Upload cycle of every export destination, e.g. `60s`, `5m` (default 60 s).
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Per-request timeout of every export destination (default 30 s).
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
    /// Most entries per upload (default 5000).
    #[arg(long = "chunk-size", value_name = "N")]
    pub chunk_size: Option<i64>,
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

/// `leased stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Config file (subnets, reservations, banned MACs; the API or store to read).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Lease store to read instead of the config's `[store] path` (implies `--from store`
    /// when the API is not reachable).
    #[arg(long, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// Where to read leases from.
    #[arg(long, value_enum, default_value_t = crate::view::From::Auto)]
    pub from: crate::view::From,
    /// Every address: IP Type MAC AllocatedAt Elapsed Remaining Hostname.
    #[arg(long, conflicts_with = "grid")]
    pub details: bool,
    /// A block grid of each subnet with a legend (honours COLUMNS and NO_COLOR).
    #[arg(long)]
    pub grid: bool,
    /// A current lease is "expiring" when it ends within this many seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    pub expiring: u64,
    /// Pretend the time is this (unix seconds), for reproducible output.
    #[arg(long, hide = true)]
    pub now: Option<u64>,
}

/// `leased manage`.
#[derive(Debug, Args)]
pub struct ManageArgs {
    /// Config file to edit.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        global = true,
        default_value = "leased.toml"
    )]
    pub config: PathBuf,
    /// Only edit the file; do not signal a running server.
    #[arg(long = "no-reload", global = true)]
    pub no_reload: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: ManageCommand,
}

/// The verbs of `leased manage`.
#[derive(Debug, Subcommand)]
pub enum ManageCommand {
    /// Reserve IP for MAC (moves an existing reservation of that MAC); warns when the address
    /// is leased to another MAC or outside every subnet.
    Add {
        /// The client's MAC.
        mac: String,
        /// The address to reserve.
        ip: Ipv4Addr,
        /// A note kept with the reservation (the rest of the line).
        note: Vec<String>,
    },
    /// Remove the reservation(s) of MAC.
    Remove {
        /// The client's MAC.
        mac: String,
    },
}

/// `leased reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Config file to validate (the server's own).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// PID file to read instead of the config's `[server] pid_file`.
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Signal this process instead of reading a PID file (systemd: `--pid $MAINPID`).
    #[arg(long, value_name = "PID", conflicts_with = "pid_file",
          value_parser = clap::value_parser!(i32).range(2..))]
    pub pid: Option<i32>,
}

/// `leased ha`.
#[derive(Debug, Args)]
pub struct HaArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HaCommand,
    /// The server's config file (its plain-HTTP `[api]` address and key are used).
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print the status as JSON (as `GET /ha` returns it).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `leased ha` verbs.
#[derive(Debug, Subcommand)]
pub enum HaCommand {
    /// State, partner state, link, last contact, unsent updates and counters.
    Status,
    /// Take this server out of service on purpose; the partner serves every client at once.
    Maintenance,
    /// End a maintenance: sync if needed, then take up the role again.
    Resume,
    /// Fetch the partner's whole lease table again (this server stops serving until done).
    Sync,
}

/// `leased console`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ConsoleCommand,
}

/// The verbs of `leased console`.
#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Show the server's recent log lines, then follow it live (Ctrl-C to stop).
    Attach(ConsoleAttachArgs),
}

/// `leased console attach`.
#[derive(Debug, Args)]
pub struct ConsoleAttachArgs {
    /// Config file whose `[console] socket` to use.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The console's UNIX socket.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub socket: Option<PathBuf>,
    /// Connect over TCP to the console's `tcp_listen` instead (needs --key).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["config", "socket"])]
    pub tcp: Option<String>,
    /// API key for --tcp.
    #[arg(long, env = "LEASED_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Speak TLS to --tcp (a server with [api.tls]); the certificate is checked against the
    /// Mozilla roots, or --ca.
    #[arg(long, requires = "tcp")]
    pub tls: bool,
    /// Trust the PEM certificates in FILE (a private CA, or the server's self-signed
    /// certificate) for --tls; implies --tls.
    #[arg(long, value_name = "FILE", requires = "tcp")]
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of --tcp).
    #[arg(long, value_name = "NAME", requires = "tcp")]
    pub tls_name: Option<String>,
    /// How many recent lines to show first.
    #[arg(long, short = 'n', default_value_t = 50, value_name = "N")]
    pub lines: usize,
}

/// `leased isc`.
#[derive(Debug, Args)]
pub struct IscArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: IscCommand,
}

/// The verbs of `leased isc`.
#[derive(Debug, Subcommand)]
pub enum IscCommand {
    /// Serve /, /subnets, /subnets/list, /subnets/all, /subnets/{network} and /counts over an
    /// ISC dhcpd's files (X-Api-Key auth), re-reading them when they change.
    Serve(IscServeArgs),
}

/// `leased isc serve`.
#[derive(Debug, Args)]
pub struct IscServeArgs {
    /// dhcpd.conf (includes are followed).
    #[arg(long, value_name = "FILE")]
    pub conf: PathBuf,
    /// dhcpd.leases.
    #[arg(long, value_name = "FILE")]
    pub leases: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8067", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Accepted X-Api-Key, at least 16 characters (repeatable; also LEASED_API_KEYS="k1,k2").
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// A client must send a request's headers within this (also the wait for the next
    /// request on a kept-alive connection).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = timeout)]
    pub header_timeout: std::time::Duration,
    /// A request must be answered within this (later: 408).
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = timeout)]
    pub request_timeout: std::time::Duration,
    /// A connection whose read or write waits this long with no byte moving is closed.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = timeout)]
    pub idle_timeout: std::time::Duration,
    /// Connections at once; one more is closed at once.
    #[arg(long, default_value_t = 256, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub max_connections: u32,
}

/// A timeout on the command line: seconds or e.g. "10s", "2m"; 1 s to a day.
fn timeout(text: &str) -> Result<std::time::Duration, String> {
    match crate::timefmt::parse_duration(text)? {
        n @ 1..=86_400 => Ok(std::time::Duration::from_secs(n.into())),
        _ => Err("must be between 1 second and a day".into()),
    }
}

/// `leased import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What to import.
    #[command(subcommand)]
    pub command: ImportCommand,
}

/// The sources `leased import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// An ISC dhcpd: subnets, pools, options and hosts become a leased config (checked with
    /// the loader before anything is written); active leases go into the lease store.
    Isc(ImportIscArgs),
    /// Kea (kea-dhcp4): subnets, pools, shared networks, option-data, reservations (hw-address,
    /// client-id, circuit-id, flex-id on a relay sub-option) and the client classes leased can
    /// express become a leased config; leases come from the memfile CSV (and its LFC files).
    /// Every construct that does not map is listed. The config is checked with the loader
    /// before anything is written.
    Kea(ImportKeaArgs),
    /// dnsmasq: dhcp-range, dhcp-host, dhcp-option (and interface, domain, dhcp-boot,
    /// vendor/user class and MAC tags) become a leased config; leases come from dnsmasq.leases.
    /// Every line that does not map is listed.
    Dnsmasq(ImportDnsmasqArgs),
    /// dhcplane: its JSON config (pools, exclusions, reservations with metadata, banned MACs,
    /// device and class overrides, detection) and reservations file become a leased config;
    /// leases come from its lease DB. Every key that does not map is listed.
    Dhcplane(ImportDhcplaneArgs),
}

/// What every `leased import` of another server writes.
#[derive(Debug, Args)]
pub struct ImportTarget {
    /// The leased config to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The lease store to create (named in the config's `[store] path`).
    #[arg(long, value_name = "PATH")]
    pub store: PathBuf,
    /// Overwrite --out and add to an existing --store.
    #[arg(long)]
    pub force: bool,
}

/// `leased import kea`.
#[derive(Debug, Args)]
pub struct ImportKeaArgs {
    /// kea-dhcp4.conf (JSON with comments).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The memfile lease CSV (default: the config's lease-database name). Its LFC files
    /// (`.completed`, or `.2` and `.1`) beside it are read first, as Kea does.
    #[arg(long, value_name = "FILE")]
    pub leases: Option<PathBuf>,
    /// Where to write.
    #[command(flatten)]
    pub target: ImportTarget,
}

/// `leased import dnsmasq`.
#[derive(Debug, Args)]
pub struct ImportDnsmasqArgs {
    /// dnsmasq.conf.
    #[arg(long, value_name = "FILE")]
    pub conf: PathBuf,
    /// dnsmasq.leases (default: the config's dhcp-leasefile).
    #[arg(long, value_name = "FILE")]
    pub leases: Option<PathBuf>,
    /// Where to write.
    #[command(flatten)]
    pub target: ImportTarget,
}

/// `leased import dhcplane`.
#[derive(Debug, Args)]
pub struct ImportDhcplaneArgs {
    /// dhcplane's config (JSON).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The lease DB (default: the config's lease_db_path, beside the config).
    #[arg(long, value_name = "FILE")]
    pub leases: Option<PathBuf>,
    /// The reservations file (default: the config's reservations_path, else
    /// `dhcplane.reservations` beside the config when it exists).
    #[arg(long, value_name = "FILE")]
    pub reservations: Option<PathBuf>,
    /// Where to write.
    #[command(flatten)]
    pub target: ImportTarget,
}

/// `leased import isc`.
#[derive(Debug, Args)]
pub struct ImportIscArgs {
    /// dhcpd.conf.
    #[arg(long, value_name = "FILE")]
    pub conf: PathBuf,
    /// dhcpd.leases.
    #[arg(long, value_name = "FILE")]
    pub leases: PathBuf,
    /// The leased config to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The lease store to create (named in the config's `[store] path`).
    #[arg(long, value_name = "PATH")]
    pub store: PathBuf,
    /// Overwrite --out and add to an existing --store.
    #[arg(long)]
    pub force: bool,
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
    #[arg(long, short = 'i', value_name = "IFACE", required_unless_present_any = ["giaddr", "inform", "renew"])]
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
    /// Where --option82 is written: the options area (as a relay writes it), or hidden in the
    /// overloaded `file` or `sname` field (option 52), as a client forging relay data might;
    /// for checking that a server or relay ignores it there.
    #[arg(long = "option82-in", value_enum, default_value_t = Option82Area::Options, requires = "option82")]
    pub option82_in: Option82Area,
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
    /// Renew this (already configured) address as a RENEWING client does (RFC 2131 §4.3.2):
    /// a REQUEST with ciaddr set and no option 50 or 54, unicast from IP:68 to --server. With
    /// --interface, replies are read from an AF_PACKET socket (root), so that a broadcast NAK
    /// is seen too.
    #[arg(long, value_name = "IP", requires = "server",
          conflicts_with_all = ["inform", "giaddr", "discover_only", "request_ip"])]
    pub renew: Option<Ipv4Addr>,
    /// Clear the broadcast flag; replies are then read from an AF_PACKET socket (root).
    #[arg(long = "no-broadcast-flag")]
    pub no_broadcast_flag: bool,
    /// Seconds to wait for each reply (the request is retransmitted within this time).
    #[arg(long, default_value_t = 5, value_name = "SECS")]
    pub timeout: u64,
    /// Retransmit every SECS seconds until --timeout, with no doubling and no cap on the count,
    /// as a client waiting for a server that is down keeps asking (dhclient's
    /// `backoff-cutoff`). An HA server decides that its partner is gone from such retries (their
    /// `secs` growing past `max_ack_delay`). Default: 1 s, doubling, at most five sends.
    #[arg(long = "retry-every", value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub retry_every: Option<u64>,
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

/// Where `leased probe --option82` puts the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Option82Area {
    /// The main options area.
    Options,
    /// The `file` field, declared as options by option 52 = 1.
    File,
    /// The `sname` field, declared as options by option 52 = 2.
    Sname,
}

/// `leased demo`. The lab itself has no options (it is fixed so that it is safe); only which
/// lab runs is chosen.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Show a high-availability pair instead (`[ha]`, hot-standby): two servers replicating
    /// their leases, `kill -9` of the primary, the standby taking over, the primary's return
    /// and sync. Takes a few seconds.
    #[arg(long)]
    pub ha: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("leased").chain(args.iter().copied()))
    }

    #[test]
    fn demo_takes_only_ha() {
        let Command::Demo(d) = parse(&["demo"]).unwrap().command else {
            panic!("not demo")
        };
        assert!(!d.ha);
        let Command::Demo(d) = parse(&["demo", "--ha"]).unwrap().command else {
            panic!("not demo")
        };
        assert!(d.ha);
        assert!(parse(&["demo", "--interface", "eth0"]).is_err());
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
    fn completions_and_man() {
        let cli = parse(&["completions", "zsh"]).unwrap();
        let Command::Completions(a) = cli.command else {
            panic!("not completions")
        };
        assert_eq!(a.shell, Shell::Zsh);
        assert!(parse(&["completions", "tcsh"]).is_err());
        assert!(parse(&["man", "--out", "d"]).is_ok());
        let help = Cli::command().render_help().to_string();
        assert!(!help.contains("\n  man "), "man is hidden: {help}");
    }

    #[test]
    fn reload_pid_or_pid_file() {
        assert!(parse(&["reload", "-c", "x", "--pid", "123"]).is_ok());
        assert!(parse(&["reload", "-c", "x", "--pid", "1"]).is_err());
        assert!(parse(&["reload", "-c", "x", "--pid", "9", "--pid-file", "p"]).is_err());
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
