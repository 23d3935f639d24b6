//! A `Lab` is a private piece of network: a server namespace and a client namespace joined by a
//! veth pair (`srv0` ⇄ `cli0`), IPv6 off, the server side addressed in 198.18.0.0/15. Names are
//! unique per process and lab (`lt-<pid>-<n>-srv`), so labs can run concurrently. Dropping a lab
//! stops every process still inside its namespaces (by PID) and deletes the namespaces.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipnet::Ipv4Net;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::proc::{must, pid_alive, run};
use crate::argv;

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);
static STALE_SWEEP: std::sync::Once = std::sync::Once::new();

/// Namespace name prefix of every lab.
pub const PREFIX: &str = "lt-";

/// Server-side interface name inside the server namespace.
pub const SRV_IF: &str = "srv0";
/// Client-side interface name inside the client namespace(s).
pub const CLI_IF: &str = "cli0";

/// One isolated server/client topology.
pub struct Lab {
    /// `lt-<pid>-<n>`
    pub name: String,
    pub srv_ns: String,
    pub cli_ns: String,
    /// The served link's network, e.g. 198.18.7.0/24.
    pub net: Ipv4Net,
    /// The server's address on `srv0` (first host of `net`).
    pub srv_ip: Ipv4Addr,
    /// Scratch directory (configs, logs, lease files); kept when `LEASED_SYSTEM_KEEP=1`.
    pub dir: tempfile::TempDir,
    namespaces: Mutex<Vec<String>>,
    extra: AtomicU32,
}

/// A client namespace with its own interface (a macvlan on the lab's `cli0`), so several
/// clients with their own MACs can run at once.
#[derive(Debug, Clone)]
pub struct ClientNs {
    pub ns: String,
    pub iface: String,
    pub mac: String,
}

impl Lab {
    /// A lab on 198.18.X.0/24 with X unique in this test process.
    pub fn new() -> Lab {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let x = (n % 250) + 1;
        Self::build(n, format!("198.18.{x}.0/24").parse().expect("net"))
    }

    /// A lab on a caller-chosen network (must be inside 198.18.0.0/15).
    pub fn with_net(net: &str) -> Lab {
        let n = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        Self::build(n, net.parse().expect("network"))
    }

    fn build(n: u32, net: Ipv4Net) -> Lab {
        let bench: Ipv4Net = "198.18.0.0/15".parse().expect("net");
        assert!(
            bench.contains(&net),
            "lab network {net} outside 198.18.0.0/15"
        );
        STALE_SWEEP.call_once(sweep_stale);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempdir()
            .expect("tempdir");
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let srv_ip = net.hosts().next().expect("host");
        let lab = Lab {
            srv_ns: format!("{name}-srv"),
            cli_ns: format!("{name}-cli"),
            name,
            net,
            srv_ip,
            dir,
            namespaces: Mutex::new(Vec::new()),
            extra: AtomicU32::new(0),
        };
        lab.add_ns(&lab.srv_ns);
        lab.add_ns(&lab.cli_ns);
        must(
            None,
            &argv![
                "ip", "link", "add", CLI_IF, "netns", lab.cli_ns, "type", "veth", "peer", "name",
                SRV_IF, "netns", lab.srv_ns
            ],
        );
        for (ns, ifc) in [(&lab.srv_ns, SRV_IF), (&lab.cli_ns, CLI_IF)] {
            let _ = run(
                Some(ns),
                &argv![
                    "sysctl",
                    "-qw",
                    format!("net.ipv6.conf.{ifc}.disable_ipv6=1")
                ],
                Duration::from_secs(5),
            );
        }
        must(
            Some(&lab.srv_ns),
            &argv![
                "ip",
                "addr",
                "add",
                format!("{}/{}", srv_ip, net.prefix_len()),
                "dev",
                SRV_IF
            ],
        );
        must(Some(&lab.srv_ns), &argv!["ip", "link", "set", SRV_IF, "up"]);
        must(
            Some(&lab.cli_ns),
            &argv!["ip", "link", "set", CLI_IF, "address", lab.mac(0xff, 0xfe)],
        );
        must(Some(&lab.cli_ns), &argv!["ip", "link", "set", CLI_IF, "up"]);
        lab.wait_link_up();
        lab
    }

    /// Creates a namespace owned (and deleted) by this lab: lo up, IPv6 off.
    pub fn add_ns(&self, ns: &str) {
        // record first, so a failure half-way still gets cleaned up
        self.namespaces.lock().expect("lock").push(ns.to_string());
        must(None, &argv!["ip", "netns", "add", ns]);
        must(Some(ns), &argv!["ip", "link", "set", "lo", "up"]);
        must(
            Some(ns),
            &argv![
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1"
            ],
        );
    }

    fn wait_link_up(&self) {
        let ok = super::proc::poll(Duration::from_secs(5), || {
            let o = run(
                Some(&self.srv_ns),
                &argv!["ip", "-br", "link", "show", SRV_IF],
                Duration::from_secs(5),
            );
            (o.ok() && o.stdout.contains("UP")).then_some(())
        });
        assert!(
            ok.is_some(),
            "veth {SRV_IF} in {} did not come up within 5 s",
            self.srv_ns
        );
    }

    /// The lab's third octet-ish tag, for MACs: unique per lab in this process.
    fn tag(&self) -> u8 {
        self.name
            .rsplit('-')
            .next()
            .and_then(|s| s.parse::<u32>().ok())
            .map(|n| (n % 256) as u8)
            .unwrap_or(0)
    }

    /// A locally administered MAC unique to this lab: `02:1b:<lab>:<pid>:<a>:<b>`.
    pub fn mac(&self, a: u8, b: u8) -> String {
        format!(
            "02:1b:{:02x}:{:02x}:{a:02x}:{b:02x}",
            self.tag(),
            (std::process::id() % 256) as u8
        )
    }

    /// Host number `n` of the lab network (`ip(1)` is the server).
    pub fn ip(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net.network()) + n)
    }

    /// Path of a file in the lab's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the MAC of `cli0` in the client namespace (link down/up, addresses flushed).
    pub fn set_client_mac(&self, mac: &str) {
        must(
            Some(&self.cli_ns),
            &argv!["ip", "link", "set", CLI_IF, "down"],
        );
        must(
            Some(&self.cli_ns),
            &argv!["ip", "addr", "flush", "dev", CLI_IF],
        );
        must(
            Some(&self.cli_ns),
            &argv!["ip", "link", "set", CLI_IF, "address", mac],
        );
        must(
            Some(&self.cli_ns),
            &argv!["ip", "link", "set", CLI_IF, "up"],
        );
    }

    /// Adds an address (e.g. `198.18.7.2/24`) to `cli0` in the client namespace.
    pub fn add_client_addr(&self, cidr: &str) {
        must(
            Some(&self.cli_ns),
            &argv!["ip", "addr", "replace", cidr, "dev", CLI_IF],
        );
    }

    /// One more client namespace, with a macvlan on `cli0` (renamed `cli0` inside) and its own MAC.
    pub fn add_client(&self) -> ClientNs {
        let k = self.extra.fetch_add(1, Ordering::SeqCst) + 1;
        let ns = format!("{}-c{k}", self.name);
        self.add_ns(&ns);
        let tmp = format!("mv{k}");
        let mac = self.mac(0xfd, k as u8);
        must(
            Some(&self.cli_ns),
            &argv![
                "ip", "link", "add", tmp, "link", CLI_IF, "address", mac, "type", "macvlan",
                "mode", "bridge"
            ],
        );
        must(
            Some(&self.cli_ns),
            &argv!["ip", "link", "set", tmp, "netns", ns],
        );
        must(Some(&ns), &argv!["ip", "link", "set", tmp, "name", CLI_IF]);
        let _ = run(
            Some(&ns),
            &argv![
                "sysctl",
                "-qw",
                format!("net.ipv6.conf.{CLI_IF}.disable_ipv6=1")
            ],
            Duration::from_secs(5),
        );
        must(Some(&ns), &argv!["ip", "link", "set", CLI_IF, "up"]);
        ClientNs {
            ns,
            iface: CLI_IF.to_string(),
            mac,
        }
    }

    /// The namespaces this lab owns (server, client, extra clients).
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.lock().expect("lock").clone()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// PIDs of the processes inside a namespace.
pub fn ns_pids(ns: &str) -> Vec<u32> {
    let o = run(
        None,
        &argv!["ip", "netns", "pids", ns],
        Duration::from_secs(5),
    );
    o.stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Stops every process inside `ns` by PID (SIGTERM, 1 s, SIGKILL), then deletes the namespace.
pub fn teardown_ns(ns: &str) {
    let pids = ns_pids(ns);
    for p in &pids {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGTERM);
    }
    if !pids.is_empty() {
        let _ = super::proc::poll(Duration::from_secs(1), || {
            pids.iter().all(|p| !pid_alive(*p)).then_some(())
        });
        for p in ns_pids(ns) {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        let _ = super::proc::poll(Duration::from_secs(2), || {
            ns_pids(ns).is_empty().then_some(())
        });
    }
    let o = run(
        None,
        &argv!["ip", "netns", "del", ns],
        Duration::from_secs(10),
    );
    if !o.ok() {
        eprintln!("warning: could not delete netns {ns}: {}", o.all());
    }
}

/// Deletes namespaces left by earlier test processes that died without cleaning up
/// (`lt-<pid>-…` whose pid no longer exists).
fn sweep_stale() {
    let o = run(None, &argv!["ip", "netns", "list"], Duration::from_secs(5));
    for line in o.stdout.lines() {
        let Some(ns) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("removing stale namespace {ns} (its test process {pid} is gone)");
            teardown_ns(ns);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut nss = self.namespaces();
        nss.reverse();
        for ns in &nss {
            teardown_ns(ns);
        }
        if std::env::var("LEASED_SYSTEM_KEEP").is_ok_and(|v| v == "1") || std::thread::panicking() {
            let p = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")).keep();
            eprintln!("lab {}: files kept in {}", self.name, p.display());
        }
    }
}
